//! The engine end to end over real (temporary) Kopia repositories created by kopia-repo:
//! popups, restarts, filesystem events, acknowledgements, offline queueing, wrong passwords,
//! settings, demo and first-run import. No Kopia binary, no keyring (memory secrets).

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use common::wait_event;
use kopia_notifications::kopia_store::KopiaManifests;
use kopia_notifications::ManifestAccess;
use kopia_notifications::{
    Draft, Identity, ListOptions, Notifications, Origin, Recipient, Severity,
};
use kopia_notifier_engine::*;
use kopia_repo::content::writer::SessionOwner;
use kopia_repo::repository::Repository;
use tokio::sync::mpsc::Receiver;
use tokio::time::{timeout, Instant};

const PASSWORD: &str = "correct horse";
const ME: &str = "alice@laptop";

fn me() -> Identity {
    ME.parse().unwrap()
}

fn owner(identity: &Identity) -> SessionOwner {
    SessionOwner {
        username: identity.user.clone(),
        hostname: identity.host.clone(),
    }
}

/// Another writer on the same repository, as `kopia-notify` on another machine would be.
struct Writer {
    manifests: KopiaManifests,
}

impl Writer {
    fn open(path: &Path, who: &Identity) -> Self {
        let repository = Repository::open_filesystem(path, PASSWORD).unwrap();
        Writer {
            manifests: KopiaManifests::new(repository, owner(who)).unwrap(),
        }
    }

    fn send(&mut self, severity: Severity, title: &str) -> String {
        self.send_at(severity, title, Utc::now())
    }

    /// As [`send`](Self::send), on a machine whose clock says `now`.
    fn send_at(&mut self, severity: Severity, title: &str, now: DateTime<Utc>) -> String {
        self.manifests.refresh().unwrap();
        let origin = Origin {
            user: "backup@nas".parse().unwrap(),
            command: None,
        };
        let draft = Draft::new(severity, Recipient::All, title, origin);
        Notifications::new(&mut self.manifests)
            .send(&draft, now)
            .unwrap()
    }

    /// `count` notifications for everyone in one write, as `kopia-notify send --batch` would.
    fn send_many(&mut self, severity: Severity, count: usize) {
        self.manifests.refresh().unwrap();
        let origin = Origin {
            user: "backup@nas".parse().unwrap(),
            command: None,
        };
        let manifests = (0..count)
            .map(|i| {
                Draft::new(
                    severity,
                    Recipient::All,
                    &format!("flood {i}"),
                    origin.clone(),
                )
                .to_manifest(Utc::now())
                .unwrap()
            })
            .collect();
        self.manifests.write(manifests, Vec::new()).unwrap();
    }

    fn ack(&mut self, who: &Identity, id: &str) {
        self.ack_at(who, id, Utc::now());
    }

    /// As [`ack`](Self::ack), on a machine whose clock says `now`.
    fn ack_at(&mut self, who: &Identity, id: &str, now: DateTime<Utc>) {
        self.manifests.refresh().unwrap();
        Notifications::new(&mut self.manifests)
            .ack(who, &[id.to_string()], now)
            .unwrap();
    }

    fn pending_ids(&mut self, who: &Identity) -> Vec<String> {
        self.manifests.refresh().unwrap();
        Notifications::new(&mut self.manifests)
            .list(who, Utc::now(), ListOptions::default())
            .unwrap()
            .items
            .into_iter()
            .map(|item| item.notification.id)
            .collect()
    }

    /// Acknowledgement manifests written by `who` for `id`.
    fn ack_count(&mut self, who: &Identity, id: &str) -> usize {
        self.manifests.refresh().unwrap();
        let inbox = Notifications::new(&mut self.manifests).inbox().unwrap();
        inbox
            .acknowledgements()
            .iter()
            .filter(|ack| ack.notification_id == id && &ack.user == who)
            .count()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    data_dir: PathBuf,
    repo_path: PathBuf,
    secrets: Arc<MemorySecrets>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo_path = dir.path().join("repo");
        Repository::create_filesystem(&repo_path, PASSWORD, &owner(&me())).unwrap();
        Fixture {
            data_dir: dir.path().join("data"),
            repo_path,
            secrets: Arc::new(MemorySecrets::default()),
            _dir: dir,
        }
    }

    fn options(&self) -> EngineOptions {
        EngineOptions {
            secrets: self.secrets.clone(),
            discover_kopia_configs: Arc::new(Vec::new),
            min_backoff: Duration::from_millis(300),
            max_backoff: Duration::from_secs(1),
            ..EngineOptions::default()
        }
    }

    async fn start(&self) -> (EngineHandle, Receiver<EngineEvent>) {
        self.start_with(self.options(), false).await
    }

    async fn start_with(
        &self,
        options: EngineOptions,
        demo: bool,
    ) -> (EngineHandle, Receiver<EngineEvent>) {
        let config = EngineConfig {
            data_dir: self.data_dir.clone(),
            demo,
        };
        Engine::start_with(config, options).await.unwrap()
    }

    /// A started engine acting as alice@laptop, with the fixture's repository added.
    async fn started_with_repo(&self) -> (EngineHandle, Receiver<EngineEvent>, RepoId) {
        let (engine, events) = self.start().await;
        let repo = self.add_repo_as_me(&engine, Some("Test")).await;
        wait_status(&engine, repo, |s| matches!(s, RepositoryStatus::Ok { .. })).await;
        (engine, events, repo)
    }

    /// Makes `engine` act as alice@laptop and adds the fixture's repository under `name`.
    async fn add_repo_as_me(&self, engine: &EngineHandle, name: Option<&str>) -> RepoId {
        engine
            .update_settings(Settings {
                identity_override: Some(ME.into()),
                ..Settings::default()
            })
            .await
            .unwrap();
        engine
            .add_repository(AddRepository::Filesystem {
                path: self.repo_path.clone(),
                password: kopia_repo::client::Password::new(PASSWORD),
                name: name.map(str::to_string),
            })
            .await
            .unwrap()
    }
}

/// Collects the events of the next `window`.
async fn events_during(events: &mut Receiver<EngineEvent>, window: Duration) -> Vec<EngineEvent> {
    let deadline = Instant::now() + window;
    let mut seen = Vec::new();
    while let Ok(Some(event)) = timeout(
        deadline.saturating_duration_since(Instant::now()),
        events.recv(),
    )
    .await
    {
        seen.push(event);
    }
    seen
}

async fn wait_status(
    engine: &EngineHandle,
    repo: RepoId,
    want: impl Fn(&RepositoryStatus) -> bool,
) -> Overview {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let overview = engine.overview().await;
        if let Some(view) = overview.repositories.iter().find(|r| r.id == repo) {
            if want(&view.status) {
                return overview;
            }
        }
        assert!(
            Instant::now() < deadline,
            "status never reached: {overview:#?}"
        );
        // Polls without consuming events: callers look at them afterwards.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn popped_ids(event: &EngineEvent) -> Vec<String> {
    match event {
        EngineEvent::NewPending { items, .. } => items.iter().map(|i| i.id.clone()).collect(),
        _ => Vec::new(),
    }
}

fn is_new_pending(event: &EngineEvent) -> bool {
    matches!(event, EngineEvent::NewPending { .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onboarding_then_existing_notifications_pop_once_across_restarts() {
    let fixture = Fixture::new();
    let mut writer = Writer::open(&fixture.repo_path, &me());
    let error = writer.send(Severity::Error, "Snapshot failed");
    let normal = writer.send(Severity::Normal, "Maintenance done");

    let (engine, _events) = fixture.start().await;
    let overview = engine.overview().await;
    assert!(overview.onboarding);
    assert!(overview.repositories.is_empty());
    drop(_events);
    engine.shutdown().await;

    let (engine, mut events) = fixture.start().await;
    let repo = fixture.add_repo_as_me(&engine, None).await;
    // Default minimum severity is warning: only the error pops.
    let event = wait_event(&mut events, Duration::from_secs(10), is_new_pending).await;
    assert_eq!(popped_ids(&event), [error.as_str()]);
    let overview = engine.overview().await;
    assert!(!overview.onboarding);
    assert_eq!(overview.repositories[0].name, "repo");
    assert_eq!(overview.repositories[0].identity, ME);
    assert_eq!(overview.notifications.len(), 2);
    assert_eq!(overview.notifications[0].id, normal, "newest first");
    assert_eq!((overview.tray.errors, overview.tray.normal), (1, 1));
    assert_eq!(overview.tray.icon(), TrayIcon::Errors);
    assert_eq!(overview.tray.status_line(), "1 error, 1 notice");
    // The password went to the secret store, keyed by the repository path.
    let account = fixture.repo_path.display().to_string();
    assert_eq!(
        fixture.secrets.read(&account).unwrap().as_deref(),
        Some(PASSWORD)
    );
    engine.shutdown().await;

    // Restart on the same data dir: the list is there at once, nothing pops again.
    let (engine, mut events) = fixture.start().await;
    let overview = engine.overview().await;
    assert_eq!(overview.repositories.len(), 1);
    wait_status(&engine, repo, |s| matches!(s, RepositoryStatus::Ok { .. })).await;
    let seen = events_during(&mut events, Duration::from_millis(800)).await;
    assert!(!seen.iter().any(is_new_pending), "{seen:?}");
    // A new one still pops, and only it.
    let warning = writer.send(Severity::Warning, "Disk almost full");
    let event = wait_event(&mut events, Duration::from_secs(5), is_new_pending).await;
    assert_eq!(popped_ids(&event), [warning]);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_entry_pops_within_two_seconds_through_filesystem_events() {
    let fixture = Fixture::new();
    let (engine, mut events, repo) = fixture.started_with_repo().await;
    assert_eq!(engine.settings().await.poll_interval_secs, 60);
    let mut writer = Writer::open(&fixture.repo_path, &me());
    // Let the engine's first refresh settle.
    events_during(&mut events, Duration::from_millis(300)).await;
    let started = Instant::now();
    let id = writer.send(Severity::Error, "Maintenance failed");
    let event = wait_event(&mut events, Duration::from_secs(2), is_new_pending).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    match event {
        EngineEvent::NewPending { repo: r, items, .. } => {
            assert_eq!(r, repo);
            assert_eq!(items.len(), 1);
            assert_eq!(items[0].id, id);
            assert_eq!(items[0].title, "Maintenance failed");
            assert_eq!(items[0].severity, Severity::Error);
            assert_eq!(items[0].origin_host, "nas");
            assert_eq!(items[0].repo_name, "Test");
        }
        other => panic!("{other:?}"),
    }
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledging_here_writes_and_acknowledging_elsewhere_withdraws() {
    let fixture = Fixture::new();
    let mut writer = Writer::open(&fixture.repo_path, &me());
    let first = writer.send(Severity::Error, "First");
    let second = writer.send(Severity::Warning, "Second");
    let (engine, mut events, repo) = fixture.started_with_repo().await;
    wait_event(&mut events, Duration::from_secs(5), is_new_pending).await;

    // Here: written, no longer pending for kopia-notify, withdrawn.
    assert_eq!(engine.ack(repo, &first).await.unwrap(), AckResult::Written);
    assert_eq!(writer.pending_ids(&me()), [second.as_str()]);
    wait_event(
        &mut events,
        Duration::from_secs(5),
        |e| matches!(e, EngineEvent::Withdrawn { ids, .. } if ids == std::slice::from_ref(&first)),
    )
    .await;
    let overview = engine.overview().await;
    let acked = overview
        .notifications
        .iter()
        .find(|n| n.id == first)
        .unwrap();
    assert!(acked.acknowledged_at.is_some() && !acked.ack_pending);
    assert_eq!((overview.tray.errors, overview.tray.warnings), (0, 1));
    // Again: nothing new is written.
    assert_eq!(engine.ack(repo, &first).await.unwrap(), AckResult::Written);
    assert_eq!(writer.ack_count(&me(), &first), 1);
    assert!(engine.ack(repo, "ffffffff").await.is_err());
    assert!(matches!(
        engine.ack(999, &first).await,
        Err(EngineError::UnknownRepository(999))
    ));

    // Someone else acknowledging changes nothing for us.
    let bob: Identity = "bob@desk".parse().unwrap();
    writer.ack(&bob, &second);
    let seen = events_during(&mut events, Duration::from_millis(800)).await;
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, EngineEvent::Withdrawn { .. })),
        "{seen:?}"
    );
    // The same identity acknowledging from another process: withdrawn.
    writer.ack(&me(), &second);
    wait_event(&mut events, Duration::from_secs(2), |e| {
        matches!(e, EngineEvent::Withdrawn { repo: r, ids } if *r == repo && ids == std::slice::from_ref(&second))
    })
    .await;
    let overview = engine.overview().await;
    assert_eq!(overview.tray.pending(), 0);
    assert_eq!(overview.tray.status_line(), "All clear");
    engine.shutdown().await;
}

/// Machines whose clocks disagree with ours by days: a writer ahead, an acknowledging machine
/// behind the writer, a writer weeks behind (within the default 30-day expiry). What counts is
/// which notifications exist and who acknowledged them, never whose clock was right: each
/// pops up, and the acknowledgement "before" the notification was written still withdraws it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clocks_days_apart_neither_hide_nor_keep_notifications() {
    let fixture = Fixture::new();
    let (engine, mut events, repo) = fixture.started_with_repo().await;
    let mut nas = Writer::open(&fixture.repo_path, &"backup@nas".parse().unwrap());
    let ahead = nas.send_at(
        Severity::Error,
        "Written three days ahead",
        Utc::now() + chrono::Duration::days(3),
    );
    let event = wait_event(&mut events, Duration::from_secs(10), is_new_pending).await;
    assert_eq!(popped_ids(&event), [ahead.as_str()]);
    let overview = engine.overview().await;
    let shown = overview
        .notifications
        .iter()
        .find(|n| n.id == ahead)
        .unwrap();
    assert!(shown.is_pending());
    assert_eq!(overview.tray.errors, 1);

    // alice on a desktop whose clock is two days behind: five days "before" the notification.
    let mut desktop = Writer::open(&fixture.repo_path, &me());
    desktop.ack_at(&me(), &ahead, Utc::now() - chrono::Duration::days(2));
    wait_event(&mut events, Duration::from_secs(10), |e| {
        matches!(e, EngineEvent::Withdrawn { repo: r, ids } if *r == repo && ids == std::slice::from_ref(&ahead))
    })
    .await;
    assert_eq!(engine.overview().await.tray.pending(), 0);

    let behind = nas.send_at(
        Severity::Error,
        "Written three weeks behind",
        Utc::now() - chrono::Duration::days(21),
    );
    let event = wait_event(&mut events, Duration::from_secs(10), is_new_pending).await;
    assert_eq!(popped_ids(&event), [behind.as_str()]);
    assert_eq!(engine.overview().await.tray.errors, 1);
    engine.shutdown().await;
}

/// The manifest packs of the repository at `path`.
fn manifest_packs(path: &Path) -> std::collections::BTreeSet<String> {
    use kopia_repo::storage::BlobReader;
    let storage = kopia_repo::storage::filesystem::FilesystemStorage::open(path).unwrap();
    storage
        .list_blobs("q")
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect()
}

/// A manifest pack that cannot be read: the engine goes on without it (the rest still pops)
/// and raises one corruption error naming the pack, written for every machine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_manifest_pack_pops_a_corruption_error() {
    let fixture = Fixture::new();
    let mut writer = Writer::open(&fixture.repo_path, &me());
    let before = manifest_packs(&fixture.repo_path);
    writer.send(Severity::Error, "Lost with its pack");
    let lost = manifest_packs(&fixture.repo_path)
        .difference(&before)
        .next()
        .unwrap()
        .clone();
    let kept = writer.send(Severity::Error, "Still here");
    let storage =
        kopia_repo::storage::filesystem::FilesystemStorage::open(&fixture.repo_path).unwrap();
    let path = storage.blob_path(&lost).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let half = bytes.len() / 2;
    for byte in bytes[..half].iter_mut().step_by(8) {
        *byte ^= 0x40;
    }
    std::fs::write(&path, bytes).unwrap();

    let (engine, mut events, _repo) = fixture.started_with_repo().await;
    let mut popped = Vec::new();
    while !popped
        .iter()
        .any(|n: &NotificationView| n.kind == kopia_notifications::SourceKind::Corruption)
    {
        let event = wait_event(&mut events, Duration::from_secs(10), is_new_pending).await;
        if let EngineEvent::NewPending { items, .. } = event {
            popped.extend(items);
        }
    }
    let report = popped
        .iter()
        .find(|n| n.kind == kopia_notifications::SourceKind::Corruption)
        .unwrap();
    assert_eq!(report.severity, Severity::Error);
    assert!(report.title.contains(&lost), "{}", report.title);
    let overview = engine.overview().await;
    let titles: Vec<&str> = overview
        .notifications
        .iter()
        .map(|n| n.title.as_str())
        .collect();
    assert!(
        overview.notifications.iter().any(|n| n.id == kept),
        "{titles:?}"
    );
    assert!(!titles.contains(&"Lost with its pack"), "{titles:?}");
    // Written to the repository: the CLI on another machine sees the same report.
    assert!(writer
        .pending_ids(&"bob@desk".parse().unwrap())
        .contains(&report.id));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_acks_are_queued_and_written_once_when_storage_returns() {
    let fixture = Fixture::new();
    let mut writer = Writer::open(&fixture.repo_path, &me());
    let first = writer.send(Severity::Error, "First");
    let second = writer.send(Severity::Error, "Second");
    let (engine, mut events, repo) = fixture.started_with_repo().await;

    let away = fixture.repo_path.with_file_name("repo-away");
    std::fs::rename(&fixture.repo_path, &away).unwrap();
    engine.check_now().await;
    wait_event(
        &mut events,
        Duration::from_secs(5),
        |e| matches!(e, EngineEvent::Changed(tray) if tray.unreachable == 1),
    )
    .await;
    let overview = engine.overview().await;
    assert!(matches!(
        overview.repositories[0].status,
        RepositoryStatus::Unreachable { .. }
    ));
    // The last known list stays viewable.
    assert_eq!(overview.notifications.len(), 2);
    assert_eq!(overview.tray.unreachable, 1);
    assert_eq!(overview.tray.icon(), TrayIcon::Errors);

    assert_eq!(engine.ack(repo, &first).await.unwrap(), AckResult::Queued);
    let overview = engine.overview().await;
    let queued = overview
        .notifications
        .iter()
        .find(|n| n.id == first)
        .unwrap();
    assert!(queued.ack_pending && queued.acknowledged_at.is_some());
    assert_eq!(overview.tray.errors, 1);
    engine.shutdown().await;

    // Restart while still offline (as after kill -9): the queue and the list survive.
    let (engine, _events) = fixture.start().await;
    wait_status(&engine, repo, |s| {
        matches!(s, RepositoryStatus::Unreachable { .. })
    })
    .await;
    let overview = engine.overview().await;
    assert!(overview
        .notifications
        .iter()
        .any(|n| n.id == first && n.ack_pending));
    assert_eq!(engine.ack_all().await.unwrap(), 1);
    assert_eq!(engine.overview().await.tray.errors, 0);

    // Storage returns: recovered by itself (backoff), both acknowledgements written once.
    std::fs::rename(&away, &fixture.repo_path).unwrap();
    wait_status(&engine, repo, |s| matches!(s, RepositoryStatus::Ok { .. })).await;
    let overview = engine.overview().await;
    assert!(overview
        .notifications
        .iter()
        .all(|n| n.acknowledged_at.is_some() && !n.ack_pending));
    assert!(writer.pending_ids(&me()).is_empty());
    assert_eq!(writer.ack_count(&me(), &first), 1);
    assert_eq!(writer.ack_count(&me(), &second), 1);
    engine.shutdown().await;

    // Nothing is replayed on the next start.
    let (engine, _events) = fixture.start().await;
    wait_status(&engine, repo, |s| matches!(s, RepositoryStatus::Ok { .. })).await;
    assert_eq!(writer.ack_count(&me(), &first), 1);
    engine.shutdown().await;
}

fn write_kopia_config(dir: &Path, repo: &Path, password: &str) -> PathBuf {
    let config = dir.join("repository.config");
    let json = serde_json::json!({
        "storage": {"type": "filesystem", "config": {"path": repo}},
        "hostname": "laptop",
        "username": "alice",
        "description": "My backups",
    });
    std::fs::write(&config, json.to_string()).unwrap();
    let encoded = base64_std(password.as_bytes());
    std::fs::write(dir.join("repository.config.kopia-password"), encoded).unwrap();
    config
}

/// Standard base64, as Kopia writes its password file.
fn base64_std(bytes: &[u8]) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_run_imports_kopia_connections_once_and_wrong_passwords_show() {
    let fixture = Fixture::new();
    let mut writer = Writer::open(&fixture.repo_path, &me());
    let id = writer.send(Severity::Error, "Imported");
    let kopia_dir = fixture.data_dir.with_file_name("kopia");
    std::fs::create_dir_all(&kopia_dir).unwrap();
    let config = write_kopia_config(&kopia_dir, &fixture.repo_path, "not the password");
    let found = config.clone();
    let options = EngineOptions {
        discover_kopia_configs: Arc::new(move || vec![found.clone()]),
        ..fixture.options()
    };
    let (engine, mut events) = fixture.start_with(options.clone(), false).await;
    let overview = engine.overview().await;
    assert_eq!(overview.repositories.len(), 1);
    let repo = overview.repositories[0].id;
    assert_eq!(overview.repositories[0].name, "My backups");
    assert_eq!(
        overview.repositories[0].location,
        fixture.repo_path.display().to_string()
    );
    let overview = wait_status(&engine, repo, |s| *s == RepositoryStatus::WrongPassword).await;
    assert_eq!(overview.tray.wrong_password, 1);
    assert_eq!(overview.tray.icon(), TrayIcon::Unreachable);
    // No retry storm: nothing happens by itself.
    events_during(&mut events, Duration::from_millis(300)).await;
    let seen = events_during(&mut events, Duration::from_millis(700)).await;
    assert!(seen.is_empty(), "{seen:?}");

    // Fixed with Kopia (its password file), then "check now": the connection's identity is
    // used and the notification pops.
    write_kopia_config(&kopia_dir, &fixture.repo_path, PASSWORD);
    engine.check_now().await;
    let event = wait_event(&mut events, Duration::from_secs(10), is_new_pending).await;
    assert_eq!(popped_ids(&event), [id]);
    assert_eq!(engine.overview().await.repositories[0].identity, ME);
    // Adding the same config again is refused.
    assert!(matches!(
        engine
            .add_repository(AddRepository::KopiaConfig {
                path: config.clone()
            })
            .await,
        Err(EngineError::AlreadyConfigured(_))
    ));
    // Removing it: not imported again on the next start (the first run is over).
    engine.remove_repository(repo).await.unwrap();
    assert!(engine.overview().await.onboarding);
    engine.shutdown().await;
    let (engine, _events) = fixture.start_with(options, false).await;
    assert!(engine.overview().await.onboarding);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_is_refused_when_adding_by_path() {
    let fixture = Fixture::new();
    let (engine, _events) = fixture.start().await;
    let result = engine
        .add_repository(AddRepository::Filesystem {
            path: fixture.repo_path.clone(),
            password: kopia_repo::client::Password::new("wrong"),
            name: None,
        })
        .await;
    assert!(
        matches!(
            result,
            Err(EngineError::Repository {
                source: kopia_repo::Error::InvalidPassword,
                ..
            })
        ),
        "{result:?}"
    );
    assert!(engine.overview().await.onboarding);
    let account = fixture.repo_path.display().to_string();
    assert_eq!(fixture.secrets.read(&account).unwrap(), None);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_whose_keyring_password_went_stale_shows_wrong_password() {
    let fixture = Fixture::new();
    let (engine, _events, repo) = fixture.started_with_repo().await;
    engine.shutdown().await;
    let account = fixture.repo_path.display().to_string();
    fixture.secrets.store(&account, "stale").unwrap();
    let (engine, _events) = fixture.start().await;
    wait_status(&engine, repo, |s| *s == RepositoryStatus::WrongPassword).await;
    // Removing forgets the keyring item.
    engine.remove_repository(repo).await.unwrap();
    assert_eq!(fixture.secrets.read(&account).unwrap(), None);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_round_trip_and_validation() {
    let fixture = Fixture::new();
    let (engine, _events) = fixture.start().await;
    assert_eq!(engine.settings().await, Settings::default());
    let settings = Settings {
        poll_interval_secs: 10,
        network_poll_interval_secs: 600,
        min_popup_severity: Severity::Error,
        identity_override: Some("bob@desk".into()),
        launch_at_login: true,
    };
    engine.update_settings(settings.clone()).await.unwrap();
    assert_eq!(engine.settings().await, settings);
    for bad in [
        Settings {
            poll_interval_secs: 0,
            ..settings.clone()
        },
        Settings {
            identity_override: Some("bob".into()),
            ..settings.clone()
        },
    ] {
        assert!(matches!(
            engine.update_settings(bad).await,
            Err(EngineError::InvalidSetting { .. })
        ));
    }
    engine.shutdown().await;
    let (engine, _events) = fixture.start().await;
    assert_eq!(engine.settings().await, settings);
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_popups_stay_quiet_and_are_not_shown_later() {
    let fixture = Fixture::new();
    let (engine, mut events, _repo) = fixture.started_with_repo().await;
    let mut writer = Writer::open(&fixture.repo_path, &me());
    let until = Utc::now() + chrono::Duration::hours(1);
    engine.pause_popups(Some(until)).await;
    let tray = engine.overview().await.tray;
    assert_eq!(tray.paused_until, Some(until));
    assert!(tray.status_line().ends_with("(popups paused)"));
    let quiet = writer.send(Severity::Error, "During the pause");
    // Listed (and counted), but not popped.
    wait_event(
        &mut events,
        Duration::from_secs(3),
        |e| matches!(e, EngineEvent::Changed(tray) if tray.errors == 1),
    )
    .await;
    let seen = events_during(&mut events, Duration::from_millis(500)).await;
    assert!(!seen.iter().any(is_new_pending), "{seen:?}");
    engine.pause_popups(None).await;
    let loud = writer.send(Severity::Error, "After the pause");
    let event = wait_event(&mut events, Duration::from_secs(3), is_new_pending).await;
    assert_eq!(popped_ids(&event), [loud]);
    assert!(engine
        .overview()
        .await
        .notifications
        .iter()
        .any(|n| n.id == quiet));
    engine.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_creates_a_seeded_repository_once() {
    let fixture = Fixture::new();
    let (engine, mut events) = fixture.start_with(fixture.options(), true).await;
    let event = wait_event(&mut events, Duration::from_secs(15), is_new_pending).await;
    let EngineEvent::NewPending { items, summary, .. } = event else {
        unreachable!()
    };
    // Warnings and errors pop (the default minimum): four at once are one summary.
    assert!(items.is_empty(), "{items:?}");
    let summary = summary.expect("a summary popup");
    assert_eq!(
        (
            summary.count,
            summary.errors,
            summary.warnings,
            summary.normal
        ),
        (4, 2, 2, 0)
    );
    assert_eq!(summary.repository, "Demo");
    let overview = engine.overview().await;
    assert_eq!(overview.repositories.len(), 1);
    assert_eq!(overview.repositories[0].name, "Demo");
    assert_eq!(overview.notifications.len(), 6);
    assert_eq!(
        (
            overview.tray.errors,
            overview.tray.warnings,
            overview.tray.normal
        ),
        (2, 2, 2)
    );
    assert!(overview.notifications.iter().any(|n| n.link.is_some()));
    engine.shutdown().await;

    let (engine, mut events) = fixture.start_with(fixture.options(), true).await;
    let repo = engine.overview().await.repositories[0].id;
    wait_status(&engine, repo, |s| matches!(s, RepositoryStatus::Ok { .. })).await;
    let seen = events_during(&mut events, Duration::from_millis(500)).await;
    assert!(!seen.iter().any(is_new_pending), "{seen:?}");
    let overview = engine.overview().await;
    assert_eq!(overview.repositories.len(), 1);
    assert_eq!(overview.notifications.len(), 6, "not seeded twice");
    engine.shutdown().await;
}

/// A snapshot manifest shaped as Kopia writes one that failed to read a file (Kopia
/// `snapshot/manifest.go`; the fields the checks read).
fn failed_snapshot(path: &str) -> kopia_notifications::NewManifest {
    let start = Utc::now() - chrono::Duration::minutes(5);
    let data = serde_json::json!({
        "id": "",
        "source": {"host": "laptop", "userName": "alice", "path": path},
        "description": "",
        "startTime": start.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "endTime": (start + chrono::Duration::seconds(5))
            .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "stats": {"errorCount": 1, "ignoredErrorCount": 0},
        "rootEntry": {"name": "x", "type": "d", "summ": {
            "numFailed": 1, "numIgnoredErrors": 0,
            "errors": [{"path": "sub/secret.txt", "error": "permission denied"}]}},
    });
    let labels = [
        ("type", "snapshot"),
        ("hostname", "laptop"),
        ("username", "alice"),
        ("path", path),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    kopia_notifications::NewManifest { labels, data }
}

/// Derived notifications in the repository (written by a health check).
fn derived_ids(writer: &mut Writer) -> Vec<String> {
    writer.manifests.refresh().unwrap();
    let filter = [("derived".to_string(), "snapshot-errors".to_string())].into();
    writer
        .manifests
        .find(&filter)
        .unwrap()
        .into_iter()
        .map(|m| m.id)
        .collect()
}

/// Only Kopia wrote to the repository (a failed snapshot): the engine's refresh runs the
/// checks, writes the error notification once and pops it; later refreshes write nothing more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_snapshot_pops_an_error_with_nothing_set_up() {
    let fixture = Fixture::new();
    let mut writer = Writer::open(&fixture.repo_path, &me());
    writer
        .manifests
        .write(vec![failed_snapshot("/home/alice")], Vec::new())
        .unwrap();
    let (engine, mut events) = fixture.start().await;
    let repo = fixture.add_repo_as_me(&engine, Some("Test")).await;
    let event = wait_event(&mut events, Duration::from_secs(10), is_new_pending).await;
    let popped = match event {
        EngineEvent::NewPending { repo: r, items, .. } => {
            assert_eq!(r, repo);
            assert_eq!(items.len(), 1, "{items:?}");
            assert_eq!(items[0].severity, Severity::Error);
            assert!(items[0].title.contains("/home/alice"), "{:?}", items[0]);
            items[0].id.clone()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(derived_ids(&mut writer), std::slice::from_ref(&popped));

    engine.check_now().await;
    events_during(&mut events, Duration::from_millis(500)).await;
    assert_eq!(derived_ids(&mut writer), [popped], "written once");
    engine.shutdown().await;
}

/// A read-only connection (`kopia repository connect --readonly`): the failed snapshot's error
/// is shown and popped locally, and nothing is written to the repository.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_connection_shows_findings_and_writes_nothing() {
    let fixture = Fixture::new();
    let mut writer = Writer::open(&fixture.repo_path, &me());
    writer
        .manifests
        .write(vec![failed_snapshot("/home/alice")], Vec::new())
        .unwrap();
    let config = fixture.data_dir.with_file_name("readonly.config");
    let json = serde_json::json!({
        "storage": {"type": "filesystem", "config": {"path": fixture.repo_path}},
        "readonly": true,
    });
    std::fs::write(&config, json.to_string()).unwrap();
    // Where Kopia persists the password beside its config, base64.
    let password_file = format!("{}.kopia-password", config.display());
    std::fs::write(password_file, base64_std(PASSWORD.as_bytes())).unwrap();
    let manifests_before = writer.manifests.find(&Default::default()).unwrap().len();

    let (engine, mut events) = fixture.start().await;
    engine
        .update_settings(Settings {
            identity_override: Some(ME.into()),
            ..Settings::default()
        })
        .await
        .unwrap();
    engine
        .add_repository(AddRepository::KopiaConfig { path: config })
        .await
        .unwrap();
    let event = wait_event(&mut events, Duration::from_secs(10), is_new_pending).await;
    match event {
        EngineEvent::NewPending { items, .. } => {
            assert_eq!(items.len(), 1, "{items:?}");
            assert_eq!(items[0].severity, Severity::Error);
            assert!(items[0].title.contains("/home/alice"), "{:?}", items[0]);
        }
        other => panic!("{other:?}"),
    }
    engine.check_now().await;
    events_during(&mut events, Duration::from_millis(500)).await;
    assert!(derived_ids(&mut writer).is_empty(), "nothing written");
    assert_eq!(
        writer.manifests.find(&Default::default()).unwrap().len(),
        manifests_before
    );
    engine.shutdown().await;
}

/// Popups under a flood: a thousand new errors arriving in ten bursts raise a few single popups
/// and one summary, not a thousand; every one is still counted, and none pops after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_notifications_raises_a_handful_of_popups() {
    let fixture = Fixture::new();
    let (engine, mut events, repo) = fixture.started_with_repo().await;
    let mut writer = Writer::open(&fixture.repo_path, &me());
    events_during(&mut events, Duration::from_millis(300)).await;
    let (mut singles, mut summaries) = (0, Vec::new());
    for _ in 0..10 {
        writer.send_many(Severity::Error, 100);
        engine.check_now().await;
        for event in events_during(&mut events, Duration::from_millis(400)).await {
            if let EngineEvent::NewPending {
                repo: r,
                items,
                summary,
            } = event
            {
                assert_eq!(r, repo);
                singles += items.len();
                summaries.extend(summary);
            }
        }
    }
    assert_eq!(
        singles, 0,
        "the first burst is past the single-popup budget"
    );
    assert_eq!(summaries.len(), 1, "{summaries:?}");
    assert_eq!(summaries[0].errors, 100);
    assert_eq!(summaries[0].repository, "Test");
    assert_eq!(engine.overview().await.tray.errors, 1_000);
    engine.shutdown().await;

    let (engine, mut events) = fixture.start().await;
    wait_status(&engine, repo, |s| matches!(s, RepositoryStatus::Ok { .. })).await;
    let seen = events_during(&mut events, Duration::from_millis(800)).await;
    assert!(!seen.iter().any(is_new_pending), "{seen:?}");
    assert_eq!(engine.overview().await.tray.errors, 1_000);
    engine.shutdown().await;
}

/// The overview carries no message or details, however many notifications there are; the
/// window fetches one notification's whole text when it opens it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn details_are_fetched_on_demand() {
    let fixture = Fixture::new();
    let mut writer = Writer::open(&fixture.repo_path, &me());
    let origin = Origin {
        user: "backup@nas".parse().unwrap(),
        command: None,
    };
    let mut draft = Draft::new(Severity::Error, Recipient::All, "Snapshot failed", origin);
    draft.message = "kopia snapshot create exited with 1".into();
    draft.details = "ERROR ".repeat(10_000);
    let id = Notifications::new(&mut writer.manifests)
        .send(&draft, Utc::now())
        .unwrap();
    let (engine, mut events, repo) = fixture.started_with_repo().await;
    wait_event(&mut events, Duration::from_secs(10), is_new_pending).await;
    let overview = engine.overview().await;
    let listed = &overview.notifications[0];
    assert_eq!(
        (listed.id.as_str(), listed.title.as_str()),
        (id.as_str(), "Snapshot failed")
    );
    assert!(listed.message.is_empty() && listed.details.is_empty());
    let full = engine.notification(repo, &id).await.unwrap();
    assert_eq!(full.message, draft.message);
    assert_eq!(full.details, draft.details);
    let unknown = engine.notification(repo, "0123abcd").await.unwrap_err();
    assert!(unknown.to_string().contains("0123abcd"), "{unknown}");
    assert!(matches!(
        engine.notification(repo + 1, &id).await,
        Err(EngineError::UnknownRepository(_))
    ));
    engine.shutdown().await;
}

/// The repository is replaced underneath the engine (restored from another copy, re-created
/// with the same password): its indexes no longer decrypt with the keys held, so the engine
/// opens it again and shows the new repository's notifications; nothing is written into it
/// on behalf of the old one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repository_replaced_underneath_is_opened_again() {
    let fixture = Fixture::new();
    let mut writer = Writer::open(&fixture.repo_path, &me());
    let old = writer.send(Severity::Error, "In the old repository");
    let (engine, mut events, repo) = fixture.started_with_repo().await;
    wait_event(&mut events, Duration::from_secs(10), is_new_pending).await;

    let moved = fixture.repo_path.with_file_name("old-repo");
    std::fs::rename(&fixture.repo_path, &moved).unwrap();
    Repository::create_filesystem(&fixture.repo_path, PASSWORD, &owner(&me())).unwrap();
    let mut writer = Writer::open(&fixture.repo_path, &me());
    let new = writer.send(Severity::Error, "In the new repository");
    let manifests_written = writer.manifests.find(&Default::default()).unwrap().len();
    engine.check_now().await;
    let event = wait_event(&mut events, Duration::from_secs(20), is_new_pending).await;
    assert_eq!(popped_ids(&event), std::slice::from_ref(&new));
    wait_status(&engine, repo, |s| matches!(s, RepositoryStatus::Ok { .. })).await;
    let listed: Vec<String> = engine
        .overview()
        .await
        .notifications
        .into_iter()
        .map(|n| n.id)
        .collect();
    assert_eq!(listed, [new]);
    assert!(!listed.contains(&old));
    writer.manifests.refresh().unwrap();
    assert_eq!(
        writer.manifests.find(&Default::default()).unwrap().len(),
        manifests_written,
        "nothing written on the old one's behalf"
    );
    engine.shutdown().await;
}
