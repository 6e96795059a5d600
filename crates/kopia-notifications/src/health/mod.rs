//! Repository health: notifications derived from what Kopia already records (snapshot manifests,
//! its scheduling policies, the maintenance schedule blob). Every check is a pure function of
//! those records, our notification policy, `now` and the scheduling zone, and yields
//! [`Finding`]s whose manifest ID depends only on the kind, the subject and the record that
//! triggered it, so that any number of machines checking at once write each one once.
//! [`resolution`] decides which earlier findings are gone and records why.

pub mod check;
pub mod corruption;
pub mod cron;
pub mod live;
pub mod maintenance;
pub mod overdue;
pub mod releases;
pub mod resolution;
pub mod schedule;
pub mod snapshots;
pub mod upgrade;

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};

use crate::identity::{Identity, Recipient};
use crate::policy::NotifyWho;
use crate::schema::{limits, Draft, Origin, Severity, SnapshotSource, SourceKind};
use crate::store::NewManifest;
use crate::Error;

/// Labels of derived notifications, besides the notification labels.
pub mod label {
    /// The [`DerivedKind`].
    pub const DERIVED: &str = "derived";
    /// What it is about: a snapshot source `user@host:/path`, a maintenance task or cycle.
    pub const SUBJECT: &str = "subject";
    /// The record that triggered it: a snapshot manifest ID, a maintenance run's start.
    pub const TRIGGER: &str = "trigger";
}

/// What a derived notification reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DerivedKind {
    /// The newest complete snapshot of a source failed to read some entries.
    SnapshotErrors,
    /// The newest complete snapshot ignored errors (only when the policy asks for it).
    SnapshotIgnoredErrors,
    /// The newest snapshot of a source was canceled, hit a limit, or its upload died.
    SnapshotInterrupted,
    /// No snapshot of a source since its schedule said so.
    SnapshotOverdue,
    /// The latest run of a maintenance task failed.
    MaintenanceFailed,
    /// Nobody owns maintenance, so it never runs.
    MaintenanceUnowned,
    /// A maintenance cycle has not succeeded for twice its interval.
    MaintenanceOverdue,
    /// `kopia-notify verify` found damaged contents.
    Corruption,
    /// A manifest content could not be read (its pack is damaged or cut short): met by any
    /// read of the manifests, one per pack.
    UnreadableManifests,
    /// A newer release of Kopia or Kopia Notifier than the one installed here.
    UpgradeAvailable,
}

const KINDS: [(DerivedKind, &str); 10] = [
    (DerivedKind::SnapshotErrors, "snapshot-errors"),
    (
        DerivedKind::SnapshotIgnoredErrors,
        "snapshot-ignored-errors",
    ),
    (DerivedKind::SnapshotInterrupted, "snapshot-interrupted"),
    (DerivedKind::SnapshotOverdue, "snapshot-overdue"),
    (DerivedKind::MaintenanceFailed, "maintenance-failed"),
    (DerivedKind::MaintenanceUnowned, "maintenance-unowned"),
    (DerivedKind::MaintenanceOverdue, "maintenance-overdue"),
    (DerivedKind::Corruption, "corruption"),
    (DerivedKind::UnreadableManifests, "unreadable-manifests"),
    (DerivedKind::UpgradeAvailable, "upgrade-available"),
];

impl DerivedKind {
    pub fn as_str(self) -> &'static str {
        KINDS
            .iter()
            .find(|(kind, _)| *kind == self)
            .map(|(_, name)| *name)
            .expect("every kind has a name")
    }

    pub fn source_kind(self) -> SourceKind {
        match self {
            DerivedKind::SnapshotErrors
            | DerivedKind::SnapshotIgnoredErrors
            | DerivedKind::SnapshotInterrupted
            | DerivedKind::SnapshotOverdue => SourceKind::Snapshot,
            DerivedKind::MaintenanceFailed
            | DerivedKind::MaintenanceUnowned
            | DerivedKind::MaintenanceOverdue => SourceKind::Maintenance,
            DerivedKind::Corruption | DerivedKind::UnreadableManifests => SourceKind::Corruption,
            DerivedKind::UpgradeAvailable => SourceKind::Upgrade,
        }
    }
}

impl FromStr for DerivedKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        KINDS
            .iter()
            .find(|(_, name)| *name == text)
            .map(|(kind, _)| *kind)
            .ok_or_else(|| Error::InvalidPolicyValue {
                option: "derived kind",
                text: text.into(),
                reason: "not a kind of derived notification".into(),
            })
    }
}

impl fmt::Display for DerivedKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One derived notification a check wants to exist.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: DerivedKind,
    pub subject: String,
    pub trigger: String,
    pub severity: Severity,
    pub recipient: Recipient,
    /// Set when the policy names several users: each gets a notification of their own, and
    /// the ID must tell them apart.
    pub recipient_key: Option<String>,
    pub title: String,
    pub message: String,
    pub details: String,
    pub snapshot_source: Option<SnapshotSource>,
}

impl Finding {
    /// The manifest ID: a hash of kind, subject and trigger (and the recipient when the
    /// policy lists several), nothing else — no clock, no checking host.
    pub fn id(&self) -> String {
        let mut parts = vec![self.kind.as_str(), &self.subject, &self.trigger];
        if let Some(key) = &self.recipient_key {
            parts.push(key);
        }
        derived_id("notification", &parts)
    }

    /// The notification manifest, created `now` by `origin`. Text taken from the repository
    /// (paths, error messages) is fitted to the schema's rules, so that one odd file name
    /// cannot stop a check: control characters leave the title, every field is cut to its limit.
    pub fn to_manifest(&self, origin: &Origin, now: DateTime<Utc>) -> Result<NewManifest, Error> {
        let title: String = self
            .title
            .chars()
            .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
            .take(limits::TITLE)
            .collect();
        let cut = |text: &str, max| text.chars().take(max).collect::<String>();
        let draft = Draft {
            severity: self.severity,
            recipient: self.recipient.clone(),
            source_kind: self.kind.source_kind(),
            title,
            message: cut(&self.message, limits::MESSAGE),
            details: cut(&self.details, limits::DETAILS),
            link: None,
            expires_in: None,
            origin: origin.clone(),
            snapshot_source: self.snapshot_source.clone(),
        };
        let mut manifest = draft.to_manifest(now)?;
        for (key, value) in [
            (label::DERIVED, self.kind.as_str()),
            (label::SUBJECT, &self.subject),
            (label::TRIGGER, &self.trigger),
        ] {
            manifest.labels.insert(key.into(), value.to_string());
        }
        Ok(manifest)
    }
}

/// 32 hex digits (Kopia's manifest ID shape) hashed from a purpose and parts.
pub fn derived_id(purpose: &str, parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    hasher.update(b"kopia-notifier derived v1\n");
    hasher.update(purpose.as_bytes());
    for part in parts {
        hasher.update(b"\n");
        // Length-prefixed, so that parts cannot run into each other.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..16])
}

/// Recipients of a finding about something owned by `owner` (a source's `user@host`, the
/// maintenance owner), with the key that tells them apart when there are several.
pub fn recipients(
    notify: &NotifyWho,
    owner: Option<&Identity>,
) -> Vec<(Recipient, Option<String>)> {
    match notify {
        NotifyWho::Owner => vec![(
            owner.map_or(Recipient::All, |o| Recipient::User(o.clone())),
            None,
        )],
        NotifyWho::All => vec![(Recipient::All, None)],
        NotifyWho::Users(users) => users
            .iter()
            .map(|user| (Recipient::User(user.clone()), Some(user.to_string())))
            .collect(),
    }
}

/// `1d12h`, `45m`: the inverse of [`crate::duration::parse_duration`] for whole seconds.
pub fn format_duration(duration: Duration) -> String {
    let mut seconds = duration.num_seconds().max(0);
    if seconds == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)] {
        if seconds >= size {
            out.push_str(&format!("{}{unit}", seconds / size));
            seconds %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_kind_subject_trigger_only() {
        let finding = Finding {
            kind: DerivedKind::SnapshotErrors,
            subject: "alice@laptop:/home".into(),
            trigger: "0123456789abcdef0123456789abcdef".into(),
            severity: Severity::Error,
            recipient: Recipient::All,
            recipient_key: None,
            title: "t".into(),
            message: String::new(),
            details: String::new(),
            snapshot_source: None,
        };
        let id = finding.id();
        assert_eq!(id.len(), 32);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
        let other_text = Finding {
            title: "other".into(),
            severity: Severity::Warning,
            ..finding.clone()
        };
        assert_eq!(other_text.id(), id);
        for changed in [
            Finding {
                kind: DerivedKind::SnapshotInterrupted,
                ..finding.clone()
            },
            Finding {
                subject: "alice@laptop:/home/x".into(),
                ..finding.clone()
            },
            Finding {
                trigger: "x".into(),
                ..finding.clone()
            },
            Finding {
                recipient_key: Some("bob@desk".into()),
                ..finding.clone()
            },
        ] {
            assert_ne!(changed.id(), id);
        }
        // Parts cannot run into each other.
        assert_ne!(derived_id("p", &["ab", "c"]), derived_id("p", &["a", "bc"]));
    }

    #[test]
    fn repository_text_is_fitted_to_the_schema() {
        let finding = Finding {
            kind: DerivedKind::SnapshotErrors,
            subject: "alice@laptop:/a\nb".into(),
            trigger: "s1".into(),
            severity: Severity::Error,
            recipient: Recipient::All,
            recipient_key: None,
            title: format!("Snapshot of /a\nb\u{1b}[31m {}", "x".repeat(300)),
            message: "m".repeat(5000),
            details: String::new(),
            snapshot_source: None,
        };
        let origin = Origin {
            user: "alice@laptop".parse().unwrap(),
            command: None,
        };
        let manifest = finding.to_manifest(&origin, Utc::now()).unwrap();
        let title = manifest.data["title"].as_str().unwrap();
        assert!(title.starts_with("Snapshot of /a\u{FFFD}b\u{FFFD}[31m "));
        assert_eq!(title.chars().count(), limits::TITLE);
        assert_eq!(
            manifest.data["message"].as_str().unwrap().len(),
            limits::MESSAGE
        );
    }

    #[test]
    fn kinds_round_trip_and_durations_print() {
        for (kind, name) in KINDS {
            assert_eq!(name.parse::<DerivedKind>().unwrap(), kind);
        }
        assert!("weather".parse::<DerivedKind>().is_err());
        assert_eq!(format_duration(Duration::hours(36)), "1d12h");
        assert_eq!(format_duration(Duration::minutes(45)), "45m");
    }
}
