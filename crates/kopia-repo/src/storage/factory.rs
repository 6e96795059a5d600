//! Opening a storage from what Kopia writes into `repository.config` (§10.1): `storage.type`
//! picks the backend, `storage.config` is handed to it raw, so each backend reads its own keys
//! and ignores the rest (newer Kopia versions add keys). Kopia's registry of backends is
//! repo/blob/registry.go; the types and keys are listed in kopia-storage-backends.md.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use super::filesystem::{FilesystemConfig, FilesystemStorage};
use super::Storage;
use crate::error::{Error, Result};

/// The backends Kopia v0.23.1 registers, by their `storage.type`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageKind {
    Filesystem,
    S3,
    Gcs,
    AzureBlob,
    B2,
    Sftp,
    Webdav,
    Rclone,
    Gdrive,
    /// A type Kopia v0.23.1 does not have (a newer Kopia's, or a typo).
    Other(String),
}

impl StorageKind {
    pub fn from_type(name: &str) -> Self {
        match name {
            "filesystem" => StorageKind::Filesystem,
            "s3" => StorageKind::S3,
            "gcs" => StorageKind::Gcs,
            "azureBlob" => StorageKind::AzureBlob,
            "b2" => StorageKind::B2,
            "sftp" => StorageKind::Sftp,
            "webdav" => StorageKind::Webdav,
            "rclone" => StorageKind::Rclone,
            "gdrive" => StorageKind::Gdrive,
            other => StorageKind::Other(other.to_string()),
        }
    }

    /// The `storage.type` string Kopia writes.
    pub fn as_str(&self) -> &str {
        match self {
            StorageKind::Filesystem => "filesystem",
            StorageKind::S3 => "s3",
            StorageKind::Gcs => "gcs",
            StorageKind::AzureBlob => "azureBlob",
            StorageKind::B2 => "b2",
            StorageKind::Sftp => "sftp",
            StorageKind::Webdav => "webdav",
            StorageKind::Rclone => "rclone",
            StorageKind::Gdrive => "gdrive",
            StorageKind::Other(name) => name,
        }
    }
}

/// How a connection may use its storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadWrite,
    /// `readonly` connections and point-in-time views: nothing is ever written, not even the
    /// `.shards` file a file-tree backend would otherwise create.
    ReadOnly,
}

/// `storage` of `repository.config`: the type and its config exactly as Kopia wrote them.
/// The raw config holds credentials (secret keys, passwords), so `Debug` shows only the type
/// and the names of the keys.
#[derive(Clone, PartialEq)]
pub struct StorageConfig {
    pub kind: StorageKind,
    pub config: serde_json::Value,
}

impl fmt::Debug for StorageConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&String> = self
            .config
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        f.debug_struct("StorageConfig")
            .field("kind", &self.kind)
            .field("keys", &keys)
            .finish()
    }
}

impl StorageConfig {
    /// The repository directory of a `filesystem` storage; `None` for every other type.
    pub fn local_path(&self) -> Option<PathBuf> {
        match self.kind {
            StorageKind::Filesystem => FilesystemConfig::from_json(&self.config)
                .ok()
                .map(|c| c.path),
            _ => None,
        }
    }

    fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::InvalidStorageConfig {
            kind: self.kind.as_str().to_string(),
            reason: reason.into(),
        }
    }

    fn unsupported(&self, reason: impl Into<String>) -> Error {
        Error::UnsupportedStorage {
            kind: self.kind.as_str().to_string(),
            reason: reason.into(),
        }
    }
}

/// Opens the storage `config` describes, with the capability `access` allows. An existing
/// storage is opened, never created.
pub fn open(config: &StorageConfig, access: Access) -> Result<Storage> {
    match &config.kind {
        StorageKind::Filesystem => {
            let filesystem = FilesystemConfig::from_json(&config.config)
                .map_err(|reason| config.invalid(reason))?;
            let storage =
                FilesystemStorage::open_with_options(&filesystem.path, &filesystem.options)?;
            Ok(with_access(Arc::new(storage), access))
        }
        #[cfg(feature = "network")]
        StorageKind::S3 => super::network::s3::open(&config.config, access),
        #[cfg(feature = "network")]
        StorageKind::Gcs => super::network::gcs::open(&config.config, access),
        #[cfg(feature = "network")]
        StorageKind::AzureBlob => super::network::azure::open(&config.config, access),
        #[cfg(feature = "network")]
        StorageKind::B2 => super::network::b2::open(&config.config, access),
        #[cfg(feature = "network")]
        StorageKind::Sftp => super::network::sftp::open(&config.config, access),
        #[cfg(feature = "network")]
        StorageKind::Webdav => super::network::webdav::open(&config.config, access),
        #[cfg(feature = "network")]
        StorageKind::Rclone => super::network::rclone::open(&config.config, access),
        #[cfg(not(feature = "network"))]
        StorageKind::S3
        | StorageKind::Gcs
        | StorageKind::AzureBlob
        | StorageKind::B2
        | StorageKind::Sftp
        | StorageKind::Webdav
        | StorageKind::Rclone => Err(config.unsupported(
            "this build has no network backends (kopia-repo without feature `network`)",
        )),
        StorageKind::Gdrive => Err(config.unsupported(
            "Kopia's Google Drive backend (gdrive) has no implementation here; \
             reach the folder through rclone instead",
        )),
        StorageKind::Other(_) => Err(config.unsupported("Kopia v0.23.1 has no such storage type")),
    }
}

/// The capability split applied to a backend that can do both.
fn with_access<S: super::BlobWriter + 'static>(storage: Arc<S>, access: Access) -> Storage {
    match access {
        Access::ReadWrite => Storage::read_write(storage),
        Access::ReadOnly => Storage::read_only(storage),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(kind: &str, json: serde_json::Value) -> StorageConfig {
        StorageConfig {
            kind: StorageKind::from_type(kind),
            config: json,
        }
    }

    #[test]
    fn kinds_round_trip_through_kopia_type_names() {
        for name in [
            "filesystem",
            "s3",
            "gcs",
            "azureBlob",
            "b2",
            "sftp",
            "webdav",
            "rclone",
            "gdrive",
            "ftp",
        ] {
            assert_eq!(StorageKind::from_type(name).as_str(), name);
        }
        assert_eq!(
            StorageKind::from_type("ftp"),
            StorageKind::Other("ftp".into())
        );
        // Type names are case-sensitive in Kopia's registry.
        assert_eq!(
            StorageKind::from_type("S3"),
            StorageKind::Other("S3".into())
        );
    }

    #[test]
    fn filesystem_opens_with_the_access_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        FilesystemStorage::create(dir.path()).unwrap();
        let fs = config(
            "filesystem",
            serde_json::json!({"path": dir.path(), "unknownKey": 1}),
        );
        let writable = open(&fs, Access::ReadWrite).unwrap();
        writable.writer().unwrap().put_blob("xe0", b"e").unwrap();
        let read_only = open(&fs, Access::ReadOnly).unwrap();
        assert!(read_only.is_read_only());
        assert_eq!(read_only.reader().get_blob("xe0").unwrap(), b"e");
        match read_only.writer().unwrap_err() {
            Error::ReadOnlyStorage { storage } => {
                assert_eq!(storage, format!("filesystem:{}", dir.path().display()))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(fs.local_path(), Some(dir.path().to_path_buf()));
    }

    #[test]
    fn a_read_only_open_never_writes_shards() {
        let dir = tempfile::tempdir().unwrap();
        let fs = config("filesystem", serde_json::json!({"path": dir.path()}));
        let storage = open(&fs, Access::ReadOnly).unwrap();
        assert!(storage.reader().list_blobs("").unwrap().is_empty());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn unsupported_types_are_named() {
        for (kind, hint) in [("gdrive", "rclone"), ("ftp", "no such storage type")] {
            let err = open(&config(kind, serde_json::json!({})), Access::ReadOnly).unwrap_err();
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("storage type {kind} is not supported")),
                "{message}"
            );
            assert!(message.contains(hint), "{message}");
        }
    }

    #[test]
    fn invalid_configs_name_the_type() {
        let err = open(
            &config("filesystem", serde_json::json!({"path": 7})),
            Access::ReadOnly,
        )
        .unwrap_err();
        match err {
            Error::InvalidStorageConfig { kind, .. } => assert_eq!(kind, "filesystem"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn debug_shows_no_secrets() {
        let s3 = config(
            "s3",
            serde_json::json!({"bucket": "b", "secretAccessKey": "hunter2", "sessionToken": "tok"}),
        );
        let debug = format!("{s3:?}");
        assert!(
            debug.contains("secretAccessKey") && debug.contains("S3"),
            "{debug}"
        );
        assert!(
            !debug.contains("hunter2") && !debug.contains("tok\""),
            "{debug}"
        );
        assert_eq!(s3.local_path(), None);
    }
}
