//! Contents: the committed index (which index blobs are live, their entries merged per content
//! ID) and payload reads from packs, decrypted, decompressed and verified against the content's
//! own hash. It knows nothing about what contents mean (manifests are one layer up).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use crate::compression;
use crate::crypto::blob_crypto;
use crate::crypto::encryption::ContentEncryptor;
use crate::crypto::hashing::ContentHasher;
use crate::epoch::legacy::{CompactionLog, LEGACY_COMPACTION_LOG_PREFIX, LEGACY_INDEX_PREFIX};
use crate::epoch::{self, IndexBlobSet};
use crate::index::merge::{is_visible, MergedIndex};
use crate::index::{ContentId, IndexEntry, IndexView};
use crate::storage::{BlobMetadata, BlobReader};

pub mod writer;
use crate::{Error, Result};

/// Kopia loads manifest contents eight at a time; index blobs are read with the same width.
const PARALLEL_READS: usize = 8;

/// The keyed hash and the content encryptor of one repository.
pub struct ContentCrypto {
    pub hasher: ContentHasher,
    pub encryptor: ContentEncryptor,
}

/// How a repository keeps its index blobs (`epochParameters.Enabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexLayout {
    /// Epoch manager: `xn`/`xs`/`xr` index blobs, `xe` markers, `xw` watermarks.
    Epoch,
    /// Legacy v0: `n` index blobs and `m` compaction logs.
    Legacy,
}

/// Which entries of each index blob are kept in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexScope {
    /// Every content (needed to read arbitrary contents).
    All,
    /// Only contents with this ID prefix (the manifest store keeps `m`).
    Prefix(char),
}

/// What a refresh did, for callers that report or test I/O.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct IndexRefresh {
    pub changed: bool,
    pub index_blobs_read: usize,
    pub index_blobs_dropped: usize,
}

/// How old a prefetched index listing may be when a refresh takes it: a repository opened now
/// and refreshed only later lists again, and sees what is there then.
const PREFETCH_FRESH_FOR: Duration = Duration::from_secs(5);

/// The epoch index listing (`x…`) taken while the repository's key was derived (a listing
/// needs no key, see `Repository::open`): the first refresh soon after takes it instead of
/// listing again, so on network storage that request's round trip hides behind the scrypt.
#[derive(Debug, Default)]
pub(crate) struct IndexListingPrefetch(Mutex<Option<(Instant, Vec<BlobMetadata>)>>);

impl IndexListingPrefetch {
    /// A listing of the `x` prefix whose request started at `started`.
    pub(crate) fn new(started: Instant, listing: Vec<BlobMetadata>) -> Self {
        IndexListingPrefetch(Mutex::new(Some((started, listing))))
    }

    /// The listing, once, if it is still fresh.
    fn take_fresh(&self) -> Option<Vec<BlobMetadata>> {
        let (started, listing) = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        (started.elapsed() <= PREFETCH_FRESH_FOR).then_some(listing)
    }
}

/// Reads blobs and contents of one repository.
#[derive(Clone)]
pub struct ContentReader {
    storage: Arc<dyn BlobReader>,
    crypto: Arc<ContentCrypto>,
    layout: IndexLayout,
    index_listing: Arc<IndexListingPrefetch>,
}

impl ContentReader {
    pub fn new(
        storage: Arc<dyn BlobReader>,
        crypto: Arc<ContentCrypto>,
        layout: IndexLayout,
    ) -> Self {
        ContentReader {
            storage,
            crypto,
            layout,
            index_listing: Arc::default(),
        }
    }

    /// Takes its first epoch index listing from `prefetch` while that is fresh.
    pub(crate) fn with_index_listing(mut self, prefetch: Arc<IndexListingPrefetch>) -> Self {
        self.index_listing = prefetch;
        self
    }

    pub fn storage(&self) -> &Arc<dyn BlobReader> {
        &self.storage
    }

    pub fn crypto(&self) -> &ContentCrypto {
        &self.crypto
    }

    pub fn layout(&self) -> IndexLayout {
        self.layout
    }

    /// Reads and decrypts a blob encrypted at blob level (index blobs, logs, sessions).
    pub fn read_encrypted_blob(&self, blob_id: &str) -> Result<Vec<u8>> {
        let decrypt = || {
            let stored = self.storage.get_blob(blob_id)?;
            blob_crypto::decrypt_blob(&self.crypto.encryptor, blob_id, &stored)
        };
        match decrypt() {
            // A cached copy that does not decrypt is never the answer: storage's is.
            Err(_) if self.storage.evict_cached(blob_id) => decrypt(),
            result => result,
        }
    }

    /// Lists the index blobs that are live right now, with the deletion watermark. Legacy
    /// compaction logs are immutable, so each is read once and kept in `compaction_logs`.
    pub fn list_index_blobs(
        &self,
        compaction_logs: &mut HashMap<String, CompactionLog>,
    ) -> Result<IndexBlobSet> {
        match self.layout {
            IndexLayout::Epoch => {
                let listing = match self.index_listing.take_fresh() {
                    Some(listing) => listing,
                    None => self.storage.list_blobs(epoch::EPOCH_MANAGER_PREFIX)?,
                };
                Ok(epoch::epoch_index_blob_set(&listing))
            }
            IndexLayout::Legacy => {
                let index_blobs = self.storage.list_blobs(LEGACY_INDEX_PREFIX)?;
                let log_blobs = self.storage.list_blobs(LEGACY_COMPACTION_LOG_PREFIX)?;
                compaction_logs.retain(|id, _| log_blobs.iter().any(|b| &b.id == id));
                for log in &log_blobs {
                    if !compaction_logs.contains_key(&log.id) {
                        let json = self.read_encrypted_blob(&log.id)?;
                        let parsed = epoch::parse_compaction_log(&json)
                            .map_err(|reason| Error::corrupt_blob(&log.id, reason))?;
                        compaction_logs.insert(log.id.clone(), parsed);
                    }
                }
                let logs: Vec<CompactionLog> = compaction_logs.values().cloned().collect();
                Ok(epoch::legacy_index_blob_set(&index_blobs, &logs))
            }
        }
    }

    /// Reads one index blob and keeps the entries within `scope`.
    pub fn read_index_entries(&self, blob_id: &str, scope: IndexScope) -> Result<Vec<IndexEntry>> {
        let bytes = self.read_encrypted_blob(blob_id)?;
        let view =
            IndexView::parse(&bytes).map_err(|reason| Error::corrupt_blob(blob_id, reason))?;
        let entries = match scope {
            IndexScope::All => view.iter().collect::<std::result::Result<Vec<_>, _>>(),
            IndexScope::Prefix(prefix) => view.entries_with_prefix(prefix),
        };
        entries.map_err(|reason| Error::corrupt_blob(blob_id, reason))
    }

    /// Reads a content's payload: fetch from its pack, decrypt, decompress, verify its hash.
    pub fn read_content(&self, entry: &IndexEntry) -> Result<Vec<u8>> {
        let content_id = entry.content_id.to_string();
        let corrupt = |reason| Error::CorruptContent {
            content_id: content_id.clone(),
            blob_id: entry.pack_blob_id.to_string(),
            reason,
        };
        if entry.encryption_key_id != 0 {
            return Err(Error::Unsupported(format!(
                "encryption key {} of content {content_id}",
                entry.encryption_key_id
            )));
        }
        let read = || {
            let stored = self.storage.get_blob_range(
                &entry.pack_blob_id,
                u64::from(entry.pack_offset),
                u64::from(entry.packed_length),
            )?;
            let plaintext = self
                .crypto
                .encryptor
                .decrypt(&stored, entry.content_id.iv())
                .map_err(corrupt)?;
            let payload = compression::decompress(entry.compression_header_id, &plaintext)
                .map_err(corrupt)?;
            if self.crypto.hasher.hash(&payload) != entry.content_id.hash() {
                return Err(corrupt("payload does not match its content ID".into()));
            }
            Ok(payload)
        };
        match read() {
            // A cached pack that does not decrypt is never the answer: storage's is.
            Err(Error::CorruptContent { .. } | Error::TruncatedBlob { .. })
                if self.storage.evict_cached(&entry.pack_blob_id) =>
            {
                read()
            }
            result => result,
        }
    }
}

/// The merged view of all live index blobs, refreshed incrementally: a refresh lists the index
/// blobs once and reads only those it has not seen before.
pub struct CommittedIndex {
    scope: IndexScope,
    loaded: HashMap<String, Arc<[IndexEntry]>>,
    compaction_logs: HashMap<String, CompactionLog>,
    deletion_watermark: Option<DateTime<Utc>>,
    merged: MergedIndex,
}

impl CommittedIndex {
    pub fn new(scope: IndexScope) -> Self {
        CommittedIndex {
            scope,
            loaded: HashMap::new(),
            compaction_logs: HashMap::new(),
            deletion_watermark: None,
            merged: MergedIndex::default(),
        }
    }

    /// Brings the view up to date with storage.
    pub fn refresh(&mut self, reader: &ContentReader) -> Result<IndexRefresh> {
        let set = reader.list_index_blobs(&mut self.compaction_logs)?;
        let live: HashSet<&str> = set.blobs.iter().map(|b| b.id.as_str()).collect();
        let missing: Vec<&BlobMetadata> = set
            .blobs
            .iter()
            .filter(|b| !self.loaded.contains_key(&b.id))
            .collect();
        let before = self.loaded.len();
        self.loaded.retain(|id, _| live.contains(id.as_str()));
        let dropped = before - self.loaded.len();
        let watermark_moved = set.deletion_watermark != self.deletion_watermark;

        let fetched = read_in_parallel(&missing, |blob| {
            reader
                .read_index_entries(&blob.id, self.scope)
                .map(|entries| (blob.id.clone(), Arc::<[IndexEntry]>::from(entries)))
        })?;
        let read = fetched.len();
        self.loaded.extend(fetched);
        self.deletion_watermark = set.deletion_watermark;

        let changed = read > 0 || dropped > 0 || watermark_moved;
        if changed {
            self.rebuild_merged();
        }
        Ok(IndexRefresh {
            changed,
            index_blobs_read: read,
            index_blobs_dropped: dropped,
        })
    }

    fn rebuild_merged(&mut self) {
        let mut merged = MergedIndex::default();
        for entries in self.loaded.values() {
            for entry in entries.iter() {
                merged.add(entry.clone());
            }
        }
        let watermark = self.deletion_watermark.map(|w| w.timestamp());
        merged.retain(|entry| is_visible(entry, watermark) && !entry.deleted);
        self.merged = merged;
    }

    /// The live (not deleted) entry of a content.
    pub fn get(&self, content_id: &ContentId) -> Option<&IndexEntry> {
        self.merged.get(content_id)
    }

    /// Every live content entry, in no particular order.
    pub fn live_entries(&self) -> impl Iterator<Item = &IndexEntry> {
        self.merged.iter()
    }

    pub fn loaded_blob_count(&self) -> usize {
        self.loaded.len()
    }
}

/// Runs `read` over `items` with up to [`PARALLEL_READS`] threads; the first error wins.
pub(crate) fn read_in_parallel<T, R, F>(items: &[T], read: F) -> Result<Vec<R>>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> Result<R> + Sync,
{
    if items.len() <= 1 {
        return items.iter().map(&read).collect();
    }
    let chunk_size = items.len().div_ceil(PARALLEL_READS);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk_size)
            .map(|chunk| scope.spawn(|| chunk.iter().map(&read).collect::<Result<Vec<R>>>()))
            .collect();
        let mut results = Vec::with_capacity(items.len());
        for worker in workers {
            results.extend(worker.join().expect("reader thread panicked")?);
        }
        Ok(results)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing() -> Vec<BlobMetadata> {
        vec![BlobMetadata {
            id: "xn0_abc".into(),
            length: 10,
            timestamp: DateTime::UNIX_EPOCH,
        }]
    }

    #[test]
    fn a_prefetched_listing_serves_once_and_only_while_fresh() {
        let fresh = IndexListingPrefetch::new(Instant::now(), listing());
        assert_eq!(fresh.take_fresh(), Some(listing()));
        assert_eq!(fresh.take_fresh(), None);
        let Some(long_ago) = Instant::now().checked_sub(PREFETCH_FRESH_FOR * 2) else {
            return; // a monotonic clock this young cannot say "long ago"
        };
        assert_eq!(
            IndexListingPrefetch::new(long_ago, listing()).take_fresh(),
            None
        );
        assert_eq!(IndexListingPrefetch::default().take_fresh(), None);
    }
}
