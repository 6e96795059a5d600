//! The engine's error type: each variant names what failed (repository, setting, file) so the
//! window can show it as one line.

use std::path::PathBuf;

use crate::types::RepoId;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("state database {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no repository with ID {0}")]
    UnknownRepository(RepoId),
    #[error("repository {location}: {source}")]
    Repository {
        location: String,
        #[source]
        source: kopia_repo::Error,
    },
    #[error(transparent)]
    Notifications(#[from] kopia_notifications::Error),
    #[error("invalid setting {name}: {reason}")]
    InvalidSetting { name: &'static str, reason: String },
    #[error("{} is already configured", .0.display())]
    AlreadyConfigured(PathBuf),
    #[error("OS keyring: {0}")]
    Keyring(String),
    /// `readonly` or a point-in-time view: the reason says which.
    #[error("repository {} is {}; not written", .0.display(), .1)]
    ReadOnly(PathBuf, kopia_repo::client::ReadOnlyReason),
    #[error("the engine has stopped")]
    Stopped,
}
