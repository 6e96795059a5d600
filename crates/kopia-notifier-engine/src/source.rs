//! Reaching a configured repository from its record: the identity we act as, where its
//! storage is, opening it with the right password source, and creating the seeded demo
//! repository. Blocking code (key derivation, file I/O): callers run it on `spawn_blocking`.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};
use kopia_notifications::kopia_store::KopiaManifests;
use kopia_notifications::{
    Draft, Identity, Notifications, Origin, Recipient, Severity, SnapshotSource, SourceKind,
};
use kopia_repo::client::{self, ReadOnlyReason};
use kopia_repo::content::writer::SessionOwner;
use kopia_repo::repository::Repository;

use crate::secrets::SecretStore;
use crate::state::{RepoKind, RepoRecord};

/// The demo repository's password. It protects nothing (the demo holds only made-up
/// notifications), so it is public and the demo needs no keyring.
pub const DEMO_PASSWORD: &str = "kopia-notifier-demo";
/// The demo repository's directory inside the data directory.
pub const DEMO_DIR_NAME: &str = "demo-repository";

/// Why a repository could not be read, as the poller reacts to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReachError {
    /// Wrong or missing password: retried only on request, never in a loop.
    WrongPassword(String),
    /// The OS keyring holding the password did not answer, is locked or failed: nothing is
    /// known about the password, so it is retried soon (see the poller's `KEYRING_RETRY`).
    KeyringUnavailable(String),
    /// Anything else (storage gone, I/O): retried with backoff.
    Unreachable(String),
}

impl ReachError {
    pub fn from_repo(error: &kopia_repo::Error) -> Self {
        match error {
            kopia_repo::Error::InvalidPassword | kopia_repo::Error::PasswordMissing(_) => {
                ReachError::WrongPassword(error.to_string())
            }
            kopia_repo::Error::KeyringUnavailable(_) | kopia_repo::Error::Keyring(_) => {
                ReachError::KeyringUnavailable(error.to_string())
            }
            _ => ReachError::Unreachable(error.to_string()),
        }
    }

    pub fn from_domain(error: &kopia_notifications::Error) -> Self {
        ReachError::Unreachable(error.to_string())
    }
}

/// Who we read and acknowledge as: the settings' override, else the Kopia connection's
/// `user@host`, else the OS user and host (as Kopia would default them).
pub fn identity_for(record: &RepoRecord, identity_override: Option<&str>) -> Identity {
    if let Some(identity) = identity_override.and_then(|text| text.parse().ok()) {
        return identity;
    }
    if record.kind == RepoKind::KopiaConfig {
        if let Ok(config) = client::load(&record.location) {
            if let Ok(identity) = Identity::new(&config.username, &config.hostname) {
                return identity;
            }
        }
    }
    os_identity()
}

/// The OS user name as Kopia finds it, and the host name lower-cased up to its first dot.
pub fn os_identity() -> Identity {
    let user = client::keyring_username();
    let raw_host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .or_else(|| std::env::var("COMPUTERNAME").ok())
        .unwrap_or_default();
    let host = raw_host
        .trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_lowercase();
    Identity::new(&user, &host)
        .or_else(|_| Identity::new(&user, "localhost"))
        .or_else(|_| Identity::new("nobody", "localhost"))
        .expect("a fixed identity is valid")
}

/// The repository directory to watch for changes.
pub fn storage_root(record: &RepoRecord) -> Option<PathBuf> {
    match record.kind {
        RepoKind::KopiaConfig => client::load(&record.location)
            .ok()
            .and_then(|config| config.storage.local_path()),
        RepoKind::Filesystem | RepoKind::Demo => Some(record.location.clone()),
    }
}

/// The client config of a Kopia connection that is never written (`kopia repository connect
/// --readonly`, or `--point-in-time`) and why, read from the file now: acknowledging through
/// it is refused up front instead of being queued for a write that can never happen.
pub fn read_only_config(record: &RepoRecord) -> Option<(PathBuf, ReadOnlyReason)> {
    if record.kind != RepoKind::KopiaConfig {
        return None;
    }
    let config = kopia_repo::client::load(&record.location).ok()?;
    let reason = config.read_only_reason()?;
    Some((record.location.clone(), reason))
}

/// Opens the repository's manifest store, writing as `identity`.
pub fn open_manifests(
    record: &RepoRecord,
    secrets: &dyn SecretStore,
    identity: &Identity,
) -> Result<KopiaManifests, ReachError> {
    let owner = SessionOwner {
        username: identity.user.clone(),
        hostname: identity.host.clone(),
    };
    let repository = match record.kind {
        RepoKind::KopiaConfig => {
            return KopiaManifests::open_client_config(&record.location)
                .map(|(manifests, _)| manifests)
                .map_err(|e| ReachError::from_repo(&e));
        }
        RepoKind::Demo => Repository::open_filesystem(&record.location, DEMO_PASSWORD),
        RepoKind::Filesystem => {
            let account = record
                .keyring_account
                .clone()
                .unwrap_or_else(|| record.location.to_string_lossy().into_owned());
            let password = match secrets.read(&account) {
                Ok(Some(password)) => zeroize::Zeroizing::new(password),
                Ok(None) => {
                    return Err(ReachError::WrongPassword(format!(
                        "no password for {} in the keyring",
                        record.location.display()
                    )))
                }
                Err(message) => return Err(ReachError::KeyringUnavailable(message)),
            };
            Repository::open_filesystem(&record.location, &password)
        }
    };
    let repository = repository.map_err(|e| ReachError::from_repo(&e))?;
    KopiaManifests::new(repository, owner).map_err(|e| ReachError::from_repo(&e))
}

/// A short name for a Kopia config: its description, else the repository directory's name,
/// else the config file's name.
pub fn config_display_name(config_path: &Path) -> String {
    let from_config = client::load(config_path).ok().and_then(|config| {
        config
            .description
            .filter(|d| !d.trim().is_empty())
            .or_else(|| config.storage.local_path().as_deref().and_then(file_name))
    });
    from_config
        .or_else(|| file_name(config_path))
        .unwrap_or_else(|| config_path.display().to_string())
}

pub fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Creates the demo repository in `dir` and seeds two notifications of each severity, unless
/// a repository is already there (then it is left as it is).
pub fn create_demo_repository(dir: &Path, now: DateTime<Utc>) -> Result<(), kopia_repo::Error> {
    let server: Identity = "backup@nas".parse().expect("a fixed identity is valid");
    let owner = SessionOwner {
        username: server.user.clone(),
        hostname: server.host.clone(),
    };
    let repository = match Repository::create_filesystem(dir, DEMO_PASSWORD, &owner) {
        Ok(repository) => repository,
        Err(kopia_repo::Error::AlreadyExists { .. }) => return Ok(()),
        Err(error) => return Err(error),
    };
    let mut manifests = KopiaManifests::new(repository, owner)?;
    let mut notifications = Notifications::new(&mut manifests);
    for (age_minutes, draft) in demo_drafts(&server).into_iter().enumerate() {
        // Oldest first, a few minutes apart, so the list reads like a real history.
        let created = now - Duration::minutes(10 * (6 - age_minutes as i64));
        if let Err(error) = notifications.send(&draft, created) {
            tracing::warn!(%error, title = %draft.title, "demo notification not written");
        }
    }
    Ok(())
}

fn demo_drafts(server: &Identity) -> Vec<Draft> {
    let laptop: Identity = "alice@laptop".parse().expect("a fixed identity is valid");
    let origin = |user: &Identity, command: &str| Origin {
        user: user.clone(),
        command: Some(command.to_string()),
    };
    let draft = |severity, kind, title: &str, message: &str, details: &str, origin: Origin| {
        let mut draft = Draft::new(severity, Recipient::All, title, origin);
        draft.source_kind = kind;
        draft.message = message.to_string();
        draft.details = details.to_string();
        draft
    };
    let mut snapshot_failed = draft(
        Severity::Error,
        SourceKind::Snapshot,
        "Snapshot of /home/alice/Documents failed",
        "kopia snapshot create exited with status 1 after 2 errors.",
        "ERROR unable to read /home/alice/Documents/taxes.ods: permission denied\n\
         ERROR unable to read /home/alice/Documents/.cache: input/output error",
        origin(&laptop, "kopia snapshot create /home/alice/Documents"),
    );
    snapshot_failed.snapshot_source = Some(SnapshotSource {
        host: "laptop".into(),
        user_name: "alice".into(),
        path: "/home/alice/Documents".into(),
    });
    let mut release = draft(
        Severity::Normal,
        SourceKind::Upgrade,
        "Kopia 0.23.1 is available",
        "A new Kopia release is out; the repository format is unchanged.",
        "",
        origin(server, "kopia-notify send"),
    );
    release.link = Some("https://github.com/kopia/kopia/releases".into());
    vec![
        draft(
            Severity::Normal,
            SourceKind::Maintenance,
            "Weekly maintenance finished",
            "Full maintenance ran in 4 min 12 s and freed 1.8 GB.",
            "",
            origin(server, "kopia maintenance run --full"),
        ),
        release,
        draft(
            Severity::Warning,
            SourceKind::Custom,
            "Backup disk is 91% full",
            "The repository disk on nas has 42 GB left.",
            "Filesystem /mnt/backup: 458 GB used of 500 GB.",
            origin(server, "kopia-notify send"),
        ),
        draft(
            Severity::Warning,
            SourceKind::Snapshot,
            "Snapshot of /srv/photos skipped 3 files",
            "3 files changed while being read and were skipped.",
            "",
            origin(server, "kopia snapshot create /srv/photos"),
        ),
        snapshot_failed,
        draft(
            Severity::Error,
            SourceKind::Maintenance,
            "Maintenance failed: repository is locked",
            "Another maintenance run holds the lock; nothing was deleted.",
            "",
            origin(server, "kopia maintenance run"),
        ),
    ]
}
