//! Errors of the repository layer. Every variant names the thing it is about (blob, content,
//! manifest, file) so that the CLI and the app can print one readable line.

use std::path::PathBuf;

/// A structural problem found while decoding bytes, before we know which blob they came from.
/// Pure decoders return it; callers wrap it into [`Error::CorruptBlob`] or
/// [`Error::CorruptContent`] with the name of what they were reading.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DecodeError(pub String);

impl DecodeError {
    pub fn new(message: impl Into<String>) -> Self {
        DecodeError(message.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("blob {blob_id} not found in {storage}")]
    BlobNotFound { blob_id: String, storage: String },

    #[error("permission denied: {path}")]
    PermissionDenied { path: PathBuf },

    #[error("storage unreachable: {path}: {source}")]
    StorageUnreachable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path} is not a Kopia repository (no kopia.repository blob)")]
    NotARepository { path: String },

    #[error("invalid repository password")]
    InvalidPassword,

    #[error("unsupported repository feature: {0}")]
    Unsupported(String),

    #[error("blob {blob_id} is corrupt: {reason}")]
    CorruptBlob {
        blob_id: String,
        reason: DecodeError,
    },

    #[error(
        "blob {blob_id} is truncated: wanted {wanted} bytes at offset {offset}, blob has {actual}"
    )]
    TruncatedBlob {
        blob_id: String,
        offset: u64,
        wanted: u64,
        actual: u64,
    },

    #[error("content {content_id} (in blob {blob_id}) is corrupt: {reason}")]
    CorruptContent {
        content_id: String,
        blob_id: String,
        reason: DecodeError,
    },

    #[error("content {0} not found")]
    ContentNotFound(String),

    #[error("manifest {0} not found")]
    ManifestNotFound(String),

    #[error("invalid manifest: {0}")]
    InvalidManifest(String),

    #[error("repository {0} is being upgraded; writing is not allowed until the upgrade finishes")]
    UpgradeInProgress(String),

    /// A connection through which nothing is written: `readonly`, or a point-in-time view.
    #[error("repository {} is {reason}; not written", config.display())]
    ReadOnly {
        config: PathBuf,
        reason: crate::client::ReadOnlyReason,
    },

    #[error("repository {path} already exists")]
    AlreadyExists { path: String },

    #[error("config file {path}: {reason}")]
    Config { path: PathBuf, reason: String },

    #[error(
        "no password for {0}: set KOPIA_PASSWORD, or connect with kopia so that it stores one"
    )]
    PasswordMissing(String),

    #[error("OS keyring: {0}")]
    Keyring(String),

    /// The keyring did not answer in time (D-Bus activation stalling, a busy daemon): says
    /// nothing about the password, so callers retry soon instead of asking for it again.
    #[error("OS keyring unavailable: {0}")]
    KeyringUnavailable(String),

    #[error("storage type {kind} is not supported: {reason}")]
    UnsupportedStorage { kind: String, reason: String },

    #[error("invalid {kind} storage config: {reason}")]
    InvalidStorageConfig { kind: String, reason: String },

    #[error(
        "repository in {storage} locks every blob ({retention}); writing locked blobs is not \
         supported yet, so nothing was written"
    )]
    RetentionUnsupported { storage: String, retention: String },

    #[error("storage {storage} is opened read-only; nothing may be written to it")]
    ReadOnlyStorage { storage: String },

    /// The server refused our credentials (or their permissions): retrying will not help.
    #[error("access to {storage} denied: {reason}")]
    StorageAccessDenied { storage: String, reason: String },

    /// A request that failed for good (after the retries transient failures get).
    #[error("{operation} on {storage} failed: {reason}")]
    StorageRequest {
        storage: String,
        operation: String,
        reason: String,
    },
}

impl Error {
    pub fn corrupt_blob(blob_id: &str, reason: impl Into<DecodeError>) -> Self {
        Error::CorruptBlob {
            blob_id: blob_id.to_string(),
            reason: reason.into(),
        }
    }
}

impl From<&str> for DecodeError {
    fn from(s: &str) -> Self {
        DecodeError(s.to_string())
    }
}

impl From<String> for DecodeError {
    fn from(s: String) -> Self {
        DecodeError(s)
    }
}
