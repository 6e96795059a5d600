//! Blob storage: the flat namespace of immutable blobs a Kopia repository is made of (§1).
//! This module defines the synchronous [`BlobReader`] and [`BlobWriter`] traits, the factory
//! that opens a storage from Kopia's `storage.type`/`storage.config`, and the backends; it
//! knows nothing about what blobs contain (no decryption, no index parsing).

pub mod blob_cache;
pub mod counting;
pub mod factory;
pub mod filesystem;
#[cfg(feature = "network")]
pub mod network;
pub mod point_in_time;
pub mod retention;
pub mod sharded;

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

/// Reading a store of blobs addressed by ID: all a read-only connection (a `pointInTime` view,
/// a `readonly` client config) can do. Synchronous on purpose: async callers run it on a
/// blocking thread pool, and network backends drive their own runtime inside.
pub trait BlobReader: Send + Sync + std::fmt::Debug {
    /// The whole blob. A missing blob is [`Error::BlobNotFound`].
    fn get_blob(&self, id: &str) -> Result<Vec<u8>>;

    /// Exactly `length` bytes starting at `offset`; fewer available bytes is
    /// [`Error::TruncatedBlob`].
    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>>;

    /// Every blob whose ID starts with `prefix`, sorted by ID.
    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>>;

    /// A short human-readable name of the store for messages, e.g. `filesystem:/srv/repo`.
    fn describe(&self) -> String;

    /// Drops the local copy of a blob that did not decrypt, if this reader keeps one
    /// ([`blob_cache::BlobCache`]); `true` when it did, so the caller reads it again from
    /// storage. Readers without a cache have nothing to drop.
    fn evict_cached(&self, _id: &str) -> bool {
        false
    }
}

/// Writing to a store of blobs, on top of reading it (rustic_core splits its backends the same
/// way). Only connections that may write hand one out.
pub trait BlobWriter: BlobReader {
    /// Stores the blob atomically: readers see either nothing or all of `data`. An existing blob
    /// with the same ID is replaced.
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()>;

    /// Removes the blob; a blob that is already gone is not an error.
    fn delete_blob(&self, id: &str) -> Result<()>;
}

/// The read-write capability under the name callers knew before the split.
pub use self::BlobWriter as BlobStorage;

/// An opened storage with the capability its connection allows: every connection reads, only
/// a read-write one hands out a writer.
#[derive(Debug, Clone)]
pub struct Storage {
    reader: Arc<dyn BlobReader>,
    writer: Option<Arc<dyn BlobWriter>>,
}

impl Storage {
    pub fn read_only(reader: Arc<dyn BlobReader>) -> Self {
        Storage {
            reader,
            writer: None,
        }
    }

    pub fn read_write(writer: Arc<dyn BlobWriter>) -> Self {
        Storage {
            reader: Arc::clone(&writer) as Arc<dyn BlobReader>,
            writer: Some(writer),
        }
    }

    pub fn reader(&self) -> &Arc<dyn BlobReader> {
        &self.reader
    }

    /// The writer, or [`Error::ReadOnlyStorage`] naming the store for a read-only connection.
    pub fn writer(&self) -> Result<&Arc<dyn BlobWriter>> {
        self.writer.as_ref().ok_or_else(|| Error::ReadOnlyStorage {
            storage: self.reader.describe(),
        })
    }

    pub fn is_read_only(&self) -> bool {
        self.writer.is_none()
    }
}

impl From<Arc<dyn BlobWriter>> for Storage {
    fn from(writer: Arc<dyn BlobWriter>) -> Self {
        Storage::read_write(writer)
    }
}

impl From<Arc<dyn BlobReader>> for Storage {
    fn from(reader: Arc<dyn BlobReader>) -> Self {
        Storage::read_only(reader)
    }
}

impl<S: BlobReader + ?Sized> BlobReader for Arc<S> {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        (**self).get_blob(id)
    }
    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        (**self).get_blob_range(id, offset, length)
    }
    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        (**self).list_blobs(prefix)
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn evict_cached(&self, id: &str) -> bool {
        (**self).evict_cached(id)
    }
}

impl<S: BlobWriter + ?Sized> BlobWriter for Arc<S> {
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()> {
        (**self).put_blob(id, data)
    }
    fn delete_blob(&self, id: &str) -> Result<()> {
        (**self).delete_blob(id)
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
