//! The GUI-free heart of Kopia Notifier: one poller per configured repository, the popup and
//! acknowledgement state kept in SQLite across restarts, settings and first-run import. The
//! Tauri shell drives it through [`EngineHandle`] and listens to [`EngineEvent`]s; it holds no
//! notification rules itself (those live in `kopia-notifications`).

mod diff;
mod engine;
mod error;
mod hub;
mod poller;
mod popup_budget;
mod refresh;
mod secrets;
mod source;
mod state;
mod types;
mod watch;

pub use diff::{diff_pending, PendingDiff, PendingEntry};
pub use engine::{Engine, EngineHandle, MAX_POLL_INTERVAL_SECS, MIN_POLL_INTERVAL_SECS};
pub use error::EngineError;
pub use hub::EngineOptions;
pub use poller::backoff;
pub use popup_budget::{PopupSummary, SINGLE_POPUPS_PER_WINDOW};
pub use secrets::{MemorySecrets, OsKeyring, SecretStore, KEYRING_SERVICE};
pub use source::{DEMO_DIR_NAME, DEMO_PASSWORD};
pub use state::STATE_FILE_NAME;
pub use types::{
    AckResult, AddRepository, EngineConfig, EngineEvent, NotificationView, Overview, RepoId,
    RepositoryStatus, RepositoryView, ResolvedView, Settings, TrayIcon, TrayState,
};
