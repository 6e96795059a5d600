//! The engine's public data: what the window and tray show (all `Serialize`, camelCase, for
//! the webview), settings, requests and events. Plain data with a little presentation logic
//! (tray icon choice, status line); no I/O.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use kopia_notifications::{Severity, SnapshotSource, SourceKind};
use kopia_repo::client::Password;
use serde::{Deserialize, Serialize};

use crate::popup_budget::PopupSummary;

/// A configured repository's row ID in the state database.
pub type RepoId = i64;

/// Where the engine keeps its state and whether to run on a demo repository.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub data_dir: PathBuf,
    pub demo: bool,
}

/// Everything the window and tray show.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Overview {
    pub tray: TrayState,
    pub repositories: Vec<RepositoryView>,
    /// Pending and settled (acknowledged, resolved) history, newest first, without messages
    /// and details: [`crate::EngineHandle::notification`] has a notification's whole text.
    pub notifications: Vec<NotificationView>,
    /// No repositories configured: the window opens on onboarding.
    pub onboarding: bool,
}

/// What the tray icon and its status line summarise.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TrayState {
    pub errors: usize,
    pub warnings: usize,
    pub normal: usize,
    pub unreachable: usize,
    pub wrong_password: usize,
    pub paused_until: Option<DateTime<Utc>>,
}

/// The tray icon to show (files in `icons/`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TrayIcon {
    AllClear,
    Warnings,
    Errors,
    Unreachable,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryView {
    pub id: RepoId,
    pub name: String,
    pub location: String,
    pub status: RepositoryStatus,
    /// The `user@host` acknowledgements are written as.
    pub identity: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum RepositoryStatus {
    #[serde(rename_all = "camelCase")]
    Ok {
        checked_at: DateTime<Utc>,
    },
    #[serde(rename_all = "camelCase")]
    Unreachable {
        error: String,
        retry_at: DateTime<Utc>,
    },
    WrongPassword,
    Loading,
}

/// One notification as this machine's identity sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationView {
    pub repo: RepoId,
    pub repo_name: String,
    pub id: String,
    pub severity: Severity,
    /// What it is about: a snapshot, maintenance, corruption, an upgrade, or a message.
    #[serde(default = "custom")]
    pub kind: SourceKind,
    /// The Kopia snapshot source concerned, when there is one.
    #[serde(default)]
    pub snapshot_source: Option<SnapshotSource>,
    pub title: String,
    pub message: String,
    pub details: String,
    pub link: Option<String>,
    pub origin_host: String,
    pub created: DateTime<Utc>,
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// Acknowledged here while the repository was unreachable; written when it returns.
    pub ack_pending: bool,
    /// A derived notification whose cause is gone: history, never pending again.
    #[serde(default)]
    pub resolved: Option<ResolvedView>,
}

/// When and why a derived notification resolved itself, as the repository records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedView {
    pub at: DateTime<Utc>,
    pub reason: String,
}

/// Lists cached by a version without kinds held only messages and snapshot failures of `run`.
fn custom() -> SourceKind {
    SourceKind::Custom
}

impl NotificationView {
    /// The view without its message and details (up to 4,000 and 65,536 characters): what the
    /// window's list needs for each of possibly many thousands of rows.
    pub fn for_list(&self) -> NotificationView {
        NotificationView {
            message: String::new(),
            details: String::new(),
            ..self.clone()
        }
    }

    /// Still to be read by this identity: neither acknowledged (here or in the repository)
    /// nor resolved.
    pub fn is_pending(&self) -> bool {
        self.acknowledged_at.is_none() && self.resolved.is_none()
    }
}

#[cfg(test)]
impl NotificationView {
    /// An unacknowledged error notification `id` of repository 1, for unit tests.
    pub(crate) fn example(id: &str, created: DateTime<Utc>) -> Self {
        NotificationView {
            repo: 1,
            repo_name: "r".into(),
            id: id.into(),
            severity: Severity::Error,
            kind: SourceKind::Custom,
            snapshot_source: None,
            title: "t".into(),
            message: String::new(),
            details: String::new(),
            link: None,
            origin_host: "h".into(),
            created,
            acknowledged_at: None,
            ack_pending: false,
            resolved: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// How often repositories on local disks are checked (besides their change events).
    pub poll_interval_secs: u64,
    /// How often repositories on network storage (object stores, SFTP, WebDAV, rclone) are
    /// checked: every check is a billed LIST request on object stores, and these have no
    /// change events. "Check now" is immediate either way.
    pub network_poll_interval_secs: u64,
    pub min_popup_severity: Severity,
    /// `user@host` to read and acknowledge as, instead of the Kopia connection's.
    pub identity_override: Option<String>,
    pub launch_at_login: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            poll_interval_secs: 60,
            network_poll_interval_secs: 900,
            min_popup_severity: Severity::Warning,
            identity_override: None,
            launch_at_login: false,
        }
    }
}

/// A repository to add from the settings window. Its `Debug` shows the password as `***`
/// (see [`Password`]), which is wiped from memory when the request is dropped.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum AddRepository {
    /// A Kopia client config (`repository.config`); the password comes from Kopia's keyring
    /// entry or password file.
    #[serde(rename_all = "camelCase")]
    KopiaConfig { path: PathBuf },
    /// A filesystem repository by path; the password goes to the OS keyring.
    #[serde(rename_all = "camelCase")]
    Filesystem {
        path: PathBuf,
        password: Password,
        name: Option<String>,
    },
}

/// The result of acknowledging one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum AckResult {
    /// Written to the repository.
    Written,
    /// The repository is unreachable: kept in the state database, written when it returns.
    Queued,
}

/// What the engine tells the shell.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum EngineEvent {
    /// New pending notifications at or above the minimum popup severity, never shown before
    /// (across restarts), not while popups are paused, within the repository's popup budget:
    /// one popup per item, or one `summary` popup standing for several (then `items` is
    /// empty). The engine has recorded them as shown before sending this.
    NewPending {
        repo: RepoId,
        items: Vec<NotificationView>,
        summary: Option<PopupSummary>,
    },
    /// Notifications no longer pending (acknowledged here or elsewhere, expired, deleted): the
    /// shell withdraws their open popups.
    Withdrawn { repo: RepoId, ids: Vec<String> },
    /// Anything the tray or window shows changed.
    Changed(TrayState),
}

impl TrayState {
    /// Errors first; then a repository we cannot read (new errors could be hiding there); then
    /// warnings. Normal notifications alone leave the icon all clear.
    pub fn icon(&self) -> TrayIcon {
        if self.errors > 0 {
            TrayIcon::Errors
        } else if self.unreachable + self.wrong_password > 0 {
            TrayIcon::Unreachable
        } else if self.warnings > 0 {
            TrayIcon::Warnings
        } else {
            TrayIcon::AllClear
        }
    }

    /// One line for the tray menu: "2 errors, 1 warning", "1 repository unreachable",
    /// "All clear"; " (popups paused)" appended while paused.
    pub fn status_line(&self) -> String {
        let mut parts = Vec::new();
        let mut count = |n: usize, one: &str, many: &str| {
            if n > 0 {
                parts.push(format!("{n} {}", if n == 1 { one } else { many }));
            }
        };
        count(self.errors, "error", "errors");
        count(self.warnings, "warning", "warnings");
        count(self.normal, "notice", "notices");
        count(
            self.unreachable,
            "repository unreachable",
            "repositories unreachable",
        );
        count(
            self.wrong_password,
            "repository with a wrong password",
            "repositories with a wrong password",
        );
        let mut line = if parts.is_empty() {
            "All clear".to_string()
        } else {
            parts.join(", ")
        };
        if self.paused_until.is_some() {
            line.push_str(" (popups paused)");
        }
        line
    }

    /// Pending notifications of any severity.
    pub fn pending(&self) -> usize {
        self.errors + self.warnings + self.normal
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tray(errors: usize, warnings: usize, normal: usize) -> TrayState {
        TrayState {
            errors,
            warnings,
            normal,
            ..TrayState::default()
        }
    }

    #[test]
    fn status_lines() {
        assert_eq!(tray(0, 0, 0).status_line(), "All clear");
        assert_eq!(tray(2, 1, 0).status_line(), "2 errors, 1 warning");
        assert_eq!(
            tray(1, 3, 2).status_line(),
            "1 error, 3 warnings, 2 notices"
        );
        assert_eq!(tray(0, 0, 1).status_line(), "1 notice");
        let unreachable = TrayState {
            unreachable: 1,
            ..TrayState::default()
        };
        assert_eq!(unreachable.status_line(), "1 repository unreachable");
        let mixed = TrayState {
            warnings: 1,
            unreachable: 2,
            wrong_password: 1,
            paused_until: Some(DateTime::UNIX_EPOCH),
            ..TrayState::default()
        };
        assert_eq!(
            mixed.status_line(),
            "1 warning, 2 repositories unreachable, 1 repository with a wrong password (popups paused)"
        );
    }

    #[test]
    fn icons_by_priority() {
        assert_eq!(tray(0, 0, 0).icon(), TrayIcon::AllClear);
        assert_eq!(tray(0, 0, 5).icon(), TrayIcon::AllClear);
        assert_eq!(tray(0, 1, 5).icon(), TrayIcon::Warnings);
        assert_eq!(tray(1, 1, 0).icon(), TrayIcon::Errors);
        let unreachable = TrayState {
            warnings: 3,
            unreachable: 1,
            ..TrayState::default()
        };
        assert_eq!(unreachable.icon(), TrayIcon::Unreachable);
        let wrong_password = TrayState {
            wrong_password: 1,
            ..TrayState::default()
        };
        assert_eq!(wrong_password.icon(), TrayIcon::Unreachable);
        let errors_win = TrayState {
            errors: 1,
            unreachable: 1,
            ..TrayState::default()
        };
        assert_eq!(errors_win.icon(), TrayIcon::Errors);
        assert_eq!(tray(1, 2, 3).pending(), 6);
    }

    #[test]
    fn views_serialize_as_camel_case() {
        let status = serde_json::to_value(RepositoryStatus::Unreachable {
            error: "gone".into(),
            retry_at: DateTime::UNIX_EPOCH,
        })
        .unwrap();
        assert_eq!(status["state"], "unreachable");
        assert_eq!(status["retryAt"], "1970-01-01T00:00:00Z");
        let settings = serde_json::to_value(Settings::default()).unwrap();
        assert_eq!(settings["pollIntervalSecs"], 60);
        assert_eq!(settings["minPopupSeverity"], "warning");
        // A severity the domain does not know is refused where the window's JSON comes in.
        let unknown = serde_json::from_str::<Settings>(r#"{"minPopupSeverity":"urgent"}"#);
        assert!(unknown.is_err());
        let errors: Settings = serde_json::from_str(r#"{"minPopupSeverity":"error"}"#).unwrap();
        assert_eq!(errors.min_popup_severity, Severity::Error);
        let event = serde_json::to_value(EngineEvent::Changed(tray(1, 0, 0))).unwrap();
        assert_eq!(event["type"], "changed");
        let add: AddRepository =
            serde_json::from_str(r#"{"kind":"filesystem","path":"/r","password":"p","name":null}"#)
                .unwrap();
        assert!(matches!(add, AddRepository::Filesystem { .. }));
    }

    #[test]
    fn requests_never_show_their_password() {
        let add: AddRepository = serde_json::from_str(
            r#"{"kind":"filesystem","path":"/r","password":"hunter2-secret","name":"n"}"#,
        )
        .unwrap();
        let shown = format!("{add:?} {add:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("/r") && shown.contains("***"), "{shown}");
        let AddRepository::Filesystem { password, .. } = add else {
            panic!("filesystem");
        };
        assert_eq!(password.expose(), "hunter2-secret");
    }
}
