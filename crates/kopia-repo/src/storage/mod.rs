//! Blob storage: the flat namespace of immutable blobs a Kopia repository is made of (§1).
//! This module defines the synchronous [`BlobStorage`] trait and its implementations; it knows
//! nothing about what blobs contain (no decryption, no index parsing).

pub mod counting;
pub mod filesystem;

use std::io;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::error::{Error, Result};

/// What a listing says about one blob: its ID, its size and its modification time (Kopia's
/// epoch logic and garbage collection look at these times).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobMetadata {
    pub id: String,
    pub length: u64,
    pub timestamp: DateTime<Utc>,
}

/// A store of blobs addressed by ID. Synchronous on purpose: async callers run it on a
/// blocking thread pool.
pub trait BlobStorage: Send + Sync + std::fmt::Debug {
    /// The whole blob. A missing blob is [`Error::BlobNotFound`].
    fn get_blob(&self, id: &str) -> Result<Vec<u8>>;

    /// Exactly `length` bytes starting at `offset`; fewer available bytes is
    /// [`Error::TruncatedBlob`].
    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>>;

    /// Every blob whose ID starts with `prefix`, in no particular order.
    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>>;

    /// Stores the blob atomically: readers see either nothing or all of `data`. An existing blob
    /// with the same ID is replaced.
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()>;

    /// Removes the blob; a blob that is already gone is not an error.
    fn delete_blob(&self, id: &str) -> Result<()>;

    /// A short human-readable name of the store for messages, e.g. `filesystem:/srv/repo`.
    fn describe(&self) -> String;
}

impl<S: BlobStorage + ?Sized> BlobStorage for Arc<S> {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        (**self).get_blob(id)
    }
    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        (**self).get_blob_range(id, offset, length)
    }
    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        (**self).list_blobs(prefix)
    }
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()> {
        (**self).put_blob(id, data)
    }
    fn delete_blob(&self, id: &str) -> Result<()> {
        (**self).delete_blob(id)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

impl<S: BlobStorage + ?Sized> BlobStorage for Box<S> {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        (**self).get_blob(id)
    }
    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        (**self).get_blob_range(id, offset, length)
    }
    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        (**self).list_blobs(prefix)
    }
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()> {
        (**self).put_blob(id, data)
    }
    fn delete_blob(&self, id: &str) -> Result<()> {
        (**self).delete_blob(id)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

/// Turns an I/O error on `path` into the crate's error: "permission denied" becomes
/// [`Error::PermissionDenied`] (so the UI can say which file to fix), anything else
/// [`Error::Io`]. "Not found" is not special here: only the caller knows whether it means a
/// missing blob or an unreachable storage.
pub fn io_error(path: &Path, source: io::Error) -> Error {
    if source.kind() == io::ErrorKind::PermissionDenied {
        Error::PermissionDenied {
            path: path.to_path_buf(),
        }
    } else {
        Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_denied_names_the_path() {
        let err = io_error(
            Path::new("/repo/p/abc.f"),
            io::Error::from(io::ErrorKind::PermissionDenied),
        );
        match err {
            Error::PermissionDenied { path } => assert_eq!(path, Path::new("/repo/p/abc.f")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn raw_eacces_maps_to_permission_denied() {
        // EACCES (13) and EPERM (1) both read as PermissionDenied on Unix.
        #[cfg(unix)]
        for code in [1, 13] {
            let err = io_error(Path::new("/x"), io::Error::from_raw_os_error(code));
            assert!(matches!(err, Error::PermissionDenied { .. }), "{err:?}");
        }
    }

    #[test]
    fn other_errors_keep_the_source() {
        let err = io_error(Path::new("/x"), io::Error::other("disk on fire"));
        match err {
            Error::Io { path, source } => {
                assert_eq!(path, Path::new("/x"));
                assert_eq!(source.to_string(), "disk on fire");
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
