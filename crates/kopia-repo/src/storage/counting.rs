//! A [`BlobReader`]/[`BlobWriter`] wrapper that counts the operations passing through it, so that tests and
//! benchmarks can assert costs ("a refresh when nothing changed lists once and reads nothing").
//! It changes no behaviour of the wrapped storage.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{BlobMetadata, BlobReader, BlobWriter};
use crate::error::Result;

/// How many calls of each kind reached the storage. Ranged reads count as gets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OperationCounts {
    pub lists: u64,
    pub gets: u64,
    pub puts: u64,
    pub deletes: u64,
}

#[derive(Debug)]
pub struct CountingStorage<S> {
    inner: S,
    lists: AtomicU64,
    gets: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
}

impl<S: BlobReader> CountingStorage<S> {
    pub fn new(inner: S) -> Self {
        CountingStorage {
            inner,
            lists: AtomicU64::new(0),
            gets: AtomicU64::new(0),
            puts: AtomicU64::new(0),
            deletes: AtomicU64::new(0),
        }
    }

    pub fn inner(&self) -> &S {
        &self.inner
    }

    pub fn counts(&self) -> OperationCounts {
        OperationCounts {
            lists: self.lists.load(Ordering::Relaxed),
            gets: self.gets.load(Ordering::Relaxed),
            puts: self.puts.load(Ordering::Relaxed),
            deletes: self.deletes.load(Ordering::Relaxed),
        }
    }

    /// Returns the counts so far and starts again from zero.
    pub fn take_counts(&self) -> OperationCounts {
        OperationCounts {
            lists: self.lists.swap(0, Ordering::Relaxed),
            gets: self.gets.swap(0, Ordering::Relaxed),
            puts: self.puts.swap(0, Ordering::Relaxed),
            deletes: self.deletes.swap(0, Ordering::Relaxed),
        }
    }
}

impl<S: BlobReader> BlobReader for CountingStorage<S> {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get_blob(id)
    }

    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.inner.get_blob_range(id, offset, length)
    }

    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        self.inner.list_blobs(prefix)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

impl<S: BlobWriter> BlobWriter for CountingStorage<S> {
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()> {
        self.puts.fetch_add(1, Ordering::Relaxed);
        self.inner.put_blob(id, data)
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        self.deletes.fetch_add(1, Ordering::Relaxed);
        self.inner.delete_blob(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::filesystem::FilesystemStorage;

    #[test]
    fn counts_each_operation_including_failures() {
        let dir = tempfile::tempdir().unwrap();
        let storage = CountingStorage::new(FilesystemStorage::create(dir.path()).unwrap());
        storage.put_blob("xe0", b"epoch-marker").unwrap();
        storage.get_blob("xe0").unwrap();
        storage.get_blob_range("xe0", 0, 5).unwrap();
        assert!(storage.get_blob("missing").is_err());
        storage.list_blobs("x").unwrap();
        storage.delete_blob("xe0").unwrap();
        assert_eq!(
            storage.take_counts(),
            OperationCounts {
                lists: 1,
                gets: 3,
                puts: 1,
                deletes: 1
            }
        );
        assert_eq!(storage.counts(), OperationCounts::default());
        assert!(storage.describe().starts_with("filesystem:"));
    }
}
