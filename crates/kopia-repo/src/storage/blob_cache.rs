//! A persistent read-through cache of the immutable blobs of a network repository: index blobs
//! and `q` packs (manifests and other metadata), whose IDs are never reused for other bytes
//! (format guide §1.1). A new process then loads a repository from local disk instead of the
//! server, as Kopia does with its `index-blobs` and `metadata` caches (which fetch whole `q`
//! packs: repo/content/committed_read_manager.go, setupCachesAndIndexManagers).
//!
//! Each entry is one file named by the blob ID: the blob's bytes exactly as stored (encrypted
//! and authenticated, so nothing secret is in it), then a trailer with their length and
//! SHA-256, so a truncated or damaged file is noticed, dropped and fetched again. Files are
//! 0600 in 0700 directories, written to a temporary name and renamed. Least recently used
//! entries (by modification time, touched on use) go when the cache outgrows its capacity.
//! A cache that cannot be written is no cache: reads go to the storage, with a debug line.
//! Mutable blobs (`kopia.*`, epoch markers, watermarks, sessions, logs) always go to storage.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use super::{BlobMetadata, BlobReader};
use crate::error::{Error, Result};

/// How much a repository's cache may hold before the least recently used entries go.
pub const DEFAULT_CAPACITY: u64 = 1 << 30;

/// Marks a file as a cache entry of this layout (bump on any change of the trailer).
const MAGIC: &[u8; 8] = b"KNBLOB01";
/// `MAGIC`, the blob's length (u64 little-endian), SHA-256 of the blob.
const TRAILER_LEN: usize = 8 + 8 + 32;
/// Temporary files start with this; a crashed writer's are removed once this old.
const TEMP_PREFIX: &str = ".tmp-";
const STALE_TEMP_AGE: Duration = Duration::from_secs(3600);
/// An eviction frees down to this share of the capacity, so the next insert does not scan again.
const EVICT_TO_PERCENT: u64 = 80;

/// Whether a blob's bytes can never change under its ID, so a cached copy is always right:
/// epoch index blobs (`xn`, `xs`, `xr`), legacy index blobs and compaction logs (`n`, `m`,
/// named by their content's hash) and metadata packs (`q`, written once). File-data packs
/// (`p`) are not read by anything that lists manifests, so they are not worth the disk.
pub fn is_cacheable(blob_id: &str) -> bool {
    let named = ["xn", "xs", "xr", "n", "m", "q"]
        .iter()
        .any(|prefix| blob_id.starts_with(prefix));
    named
        && blob_id.len() <= 200
        && blob_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Set to `off` (or `0`), no blob cache is used.
pub const DISABLE_ENV: &str = "KOPIA_NOTIFIER_BLOB_CACHE";

/// `<OS user cache dir>/kopia-notifier` (`$XDG_CACHE_HOME` or `~/.cache` on Linux), unless
/// [`DISABLE_ENV`] turns the cache off.
pub fn default_root() -> Option<PathBuf> {
    if matches!(std::env::var(DISABLE_ENV).as_deref(), Ok("off" | "0")) {
        return None;
    }
    dirs::cache_dir().map(|dir| dir.join("kopia-notifier"))
}

/// The directory of one repository under `root`: the first 16 hex digits of SHA-256 over its
/// `uniqueID` and the storage's name, so two repositories never share entries.
pub fn repository_dir(root: &Path, unique_id: &[u8], storage: &str) -> PathBuf {
    let mut hasher = Sha256::new();
    hasher.update(unique_id);
    hasher.update(storage.as_bytes());
    root.join(&hex::encode(hasher.finalize())[..16])
}

/// [`BlobReader`] over `inner` that keeps immutable blobs in `dir`.
#[derive(Debug)]
pub struct BlobCache {
    inner: Arc<dyn BlobReader>,
    dir: PathBuf,
    capacity: u64,
    /// Entries checked whole (or written) by this process, with their blob's length: later
    /// ranges of them are read without checking the file again.
    checked: Mutex<HashMap<String, u64>>,
    /// One lock per blob being fetched: parallel readers of one pack fetch it once.
    fetching: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Bytes of entries in `dir`, counted on the first insert.
    usage: Mutex<Option<u64>>,
    temp_counter: AtomicU64,
}

impl BlobCache {
    /// A cache in `dir` (created 0700 if missing) over `inner`, or `None` when the directory
    /// cannot be made: then there is no cache, which is said at debug level only.
    pub fn open(inner: Arc<dyn BlobReader>, dir: &Path, capacity: u64) -> Option<BlobCache> {
        if let Err(error) = create_private_dir(dir) {
            tracing::debug!(dir = %dir.display(), %error, "no blob cache: its directory cannot be created");
            return None;
        }
        Some(BlobCache {
            inner,
            dir: dir.to_path_buf(),
            capacity,
            checked: Mutex::new(HashMap::new()),
            fetching: Mutex::new(HashMap::new()),
            usage: Mutex::new(None),
            temp_counter: AtomicU64::new(0),
        })
    }

    /// `inner` behind a cache in `dir`, or `inner` itself when the cache cannot be made.
    pub fn wrap(inner: Arc<dyn BlobReader>, dir: &Path, capacity: u64) -> Arc<dyn BlobReader> {
        match BlobCache::open(Arc::clone(&inner), dir, capacity) {
            Some(cache) => Arc::new(cache),
            None => inner,
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, blob_id: &str) -> PathBuf {
        self.dir.join(blob_id)
    }

    /// The length of the checked entry of `blob_id`, with its bytes when this call checked
    /// (and so read) it. A damaged file is removed; any failure is a miss.
    fn entry(&self, blob_id: &str) -> Option<(u64, Option<Vec<u8>>)> {
        if let Some(&length) = self.checked.lock().unwrap().get(blob_id) {
            return Some((length, None));
        }
        let path = self.path(blob_id);
        let mut stored = match fs::read(&path) {
            Ok(stored) => stored,
            Err(error) if error.kind() == io::ErrorKind::NotFound => return None,
            Err(error) => {
                tracing::debug!(path = %path.display(), %error, "blob cache entry unreadable");
                return None;
            }
        };
        let Some(length) = check_trailer(&stored) else {
            tracing::debug!(path = %path.display(), "blob cache entry damaged; dropping it");
            let _ = fs::remove_file(&path);
            return None;
        };
        stored.truncate(length as usize);
        // Least recently used is by modification time: this use makes it recent.
        if let Ok(file) = File::options().append(true).open(&path) {
            let _ = file.set_modified(SystemTime::now());
        }
        self.checked
            .lock()
            .unwrap()
            .insert(blob_id.to_string(), length);
        Some((length, Some(stored)))
    }

    /// `length` bytes at `offset` of a checked entry; `None` when the file went away (another
    /// process evicted it) or was cut short since.
    fn read_checked(&self, blob_id: &str, offset: u64, length: u64) -> Option<Vec<u8>> {
        let read = File::open(self.path(blob_id)).and_then(|file| read_at(&file, offset, length));
        if read.is_err() {
            self.checked.lock().unwrap().remove(blob_id);
        }
        read.ok()
    }

    /// The cached blob, if there is a good copy.
    fn cached(&self, blob_id: &str) -> Option<Vec<u8>> {
        match self.entry(blob_id)? {
            (_, Some(bytes)) => Some(bytes),
            (length, None) => self.read_checked(blob_id, 0, length),
        }
    }

    /// The whole blob from the cache, or fetched from storage and kept.
    fn whole(&self, blob_id: &str) -> Result<Vec<u8>> {
        if let Some(bytes) = self.cached(blob_id) {
            return Ok(bytes);
        }
        let lock = Arc::clone(
            self.fetching
                .lock()
                .unwrap()
                .entry(blob_id.to_string())
                .or_default(),
        );
        let _fetching = lock.lock().unwrap();
        // Another thread may have fetched it while this one waited.
        if let Some(bytes) = self.cached(blob_id) {
            return Ok(bytes);
        }
        let fetched = self.inner.get_blob(blob_id);
        if let Ok(bytes) = &fetched {
            self.insert(blob_id, bytes);
        }
        self.fetching.lock().unwrap().remove(blob_id);
        fetched
    }

    /// Keeps `data` as the entry of `blob_id`; failing to is no error, only a debug line.
    fn insert(&self, blob_id: &str, data: &[u8]) {
        let size = (data.len() + TRAILER_LEN) as u64;
        if size > self.capacity {
            return;
        }
        let path = self.path(blob_id);
        if let Err(error) = self.write_entry(&path, data) {
            tracing::debug!(path = %path.display(), %error, "blob not cached: writing the cache failed");
            return;
        }
        self.checked
            .lock()
            .unwrap()
            .insert(blob_id.to_string(), data.len() as u64);
        let mut usage = self.usage.lock().unwrap();
        let used = match *usage {
            Some(used) => used + size,
            None => self.scan().iter().map(|f| f.length).sum(),
        };
        *usage = Some(if used > self.capacity {
            self.evict(blob_id)
        } else {
            used
        });
    }

    fn write_entry(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let temp = self.dir.join(format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            self.temp_counter.fetch_add(1, Ordering::Relaxed)
        ));
        replace_private_file(&temp, path, &[data, &trailer(data)])
    }

    /// The entries in the directory; stale temporary files are removed on the way.
    fn scan(&self) -> Vec<CachedFile> {
        let Ok(listing) = fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let now = SystemTime::now();
        let mut files = Vec::new();
        for item in listing.flatten() {
            let Ok(metadata) = item.metadata() else {
                continue;
            };
            let modified = metadata.modified().unwrap_or(SystemTime::UNIX_EPOCH);
            let name = item.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) {
                if now.duration_since(modified).unwrap_or_default() > STALE_TEMP_AGE {
                    let _ = fs::remove_file(item.path());
                }
                continue;
            }
            if metadata.is_file() {
                files.push(CachedFile {
                    name,
                    length: metadata.len(),
                    modified,
                });
            }
        }
        files
    }

    /// Removes least recently used entries (never `keep`, just written) until the cache holds
    /// at most [`EVICT_TO_PERCENT`] of its capacity; returns what it holds then.
    fn evict(&self, keep: &str) -> u64 {
        let mut files = self.scan();
        files.sort_by_key(|f| f.modified);
        let mut used: u64 = files.iter().map(|f| f.length).sum();
        let target = self.capacity / 100 * EVICT_TO_PERCENT;
        for file in files {
            if used <= target {
                break;
            }
            if file.name == keep {
                continue;
            }
            if fs::remove_file(self.dir.join(&file.name)).is_ok() {
                self.checked.lock().unwrap().remove(&file.name);
                used -= file.length;
                tracing::debug!(blob = %file.name, "evicted from the blob cache");
            }
        }
        used
    }
}

struct CachedFile {
    name: String,
    length: u64,
    modified: SystemTime,
}

impl BlobReader for BlobCache {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        if !is_cacheable(id) {
            return self.inner.get_blob(id);
        }
        self.whole(id)
    }

    /// A range of a cacheable blob comes from the cached copy; a miss fetches the whole blob
    /// once (one request instead of one per content, as Kopia's metadata cache does).
    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        if !is_cacheable(id) {
            return self.inner.get_blob_range(id, offset, length);
        }
        let slice = |bytes: &[u8]| {
            let end = offset.saturating_add(length);
            if end > bytes.len() as u64 {
                return Err(Error::TruncatedBlob {
                    blob_id: id.to_string(),
                    offset,
                    wanted: length,
                    actual: bytes.len() as u64,
                });
            }
            Ok(bytes[offset as usize..end as usize].to_vec())
        };
        match self.entry(id) {
            Some((_, Some(bytes))) => slice(&bytes),
            Some((blob_length, None)) if offset.saturating_add(length) <= blob_length => {
                match self.read_checked(id, offset, length) {
                    Some(bytes) => Ok(bytes),
                    None => slice(&self.whole(id)?),
                }
            }
            _ => slice(&self.whole(id)?),
        }
    }

    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        self.inner.list_blobs(prefix)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn evict_cached(&self, id: &str) -> bool {
        if !is_cacheable(id) {
            return false;
        }
        self.checked.lock().unwrap().remove(id);
        let removed = fs::remove_file(self.path(id)).is_ok();
        if removed {
            tracing::debug!(blob = id, "cached blob did not decrypt; dropped it");
        }
        removed
    }
}

fn trailer(data: &[u8]) -> [u8; TRAILER_LEN] {
    let mut trailer = [0u8; TRAILER_LEN];
    trailer[..8].copy_from_slice(MAGIC);
    trailer[8..16].copy_from_slice(&(data.len() as u64).to_le_bytes());
    trailer[16..].copy_from_slice(&Sha256::digest(data));
    trailer
}

/// The blob's length when `stored` is a whole entry: a blob and its own trailer.
fn check_trailer(stored: &[u8]) -> Option<u64> {
    let split = stored.len().checked_sub(TRAILER_LEN)?;
    let (data, found) = stored.split_at(split);
    (found == trailer(data)).then_some(split as u64)
}

fn read_at(file: &File, offset: u64, length: u64) -> io::Result<Vec<u8>> {
    let mut buffer = vec![0u8; length as usize];
    #[cfg(unix)]
    std::os::unix::fs::FileExt::read_exact_at(file, &mut buffer, offset)?;
    #[cfg(windows)]
    {
        let mut done = 0;
        while done < buffer.len() {
            let n = std::os::windows::fs::FileExt::seek_read(
                file,
                &mut buffer[done..],
                offset + done as u64,
            )?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
    }
    Ok(buffer)
}

pub(crate) fn create_private_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Writes `parts` to the new private file `temp`, then renames it over `path`: readers see the
/// old file or the whole new one. A failed write leaves no temporary behind.
pub(crate) fn replace_private_file(temp: &Path, path: &Path, parts: &[&[u8]]) -> io::Result<()> {
    let written = (|| {
        let mut file = create_private_file(temp)?;
        for part in parts {
            file.write_all(part)?;
        }
        fs::rename(temp, path)
    })();
    if written.is_err() {
        let _ = fs::remove_file(temp);
    }
    written
}

fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Blobs in memory, counting the reads that reach it.
    #[derive(Debug, Default)]
    struct Memory {
        blobs: Mutex<HashMap<String, Vec<u8>>>,
        gets: AtomicUsize,
    }

    impl Memory {
        fn with(blobs: &[(&str, &[u8])]) -> Arc<Memory> {
            let memory = Memory::default();
            for (id, data) in blobs {
                memory
                    .blobs
                    .lock()
                    .unwrap()
                    .insert(id.to_string(), data.to_vec());
            }
            Arc::new(memory)
        }

        fn take_gets(&self) -> usize {
            self.gets.swap(0, Ordering::SeqCst)
        }
    }

    impl BlobReader for Memory {
        fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.blobs
                .lock()
                .unwrap()
                .get(id)
                .cloned()
                .ok_or_else(|| Error::BlobNotFound {
                    blob_id: id.to_string(),
                    storage: "memory".into(),
                })
        }
        fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
            let blob = self.get_blob(id)?;
            Ok(blob[offset as usize..(offset + length) as usize].to_vec())
        }
        fn list_blobs(&self, _prefix: &str) -> Result<Vec<BlobMetadata>> {
            Ok(Vec::new())
        }
        fn describe(&self) -> String {
            "memory".into()
        }
    }

    const PACK: &str = "q0123456789abcdef0123456789abcdef-s0123456789abcdef144";
    const INDEX: &str = "xn0_0123456789abcdef0123456789abcdef-s0123456789abcdef144-c1";

    fn cache(inner: &Arc<Memory>, dir: &Path, capacity: u64) -> BlobCache {
        BlobCache::open(Arc::clone(inner) as Arc<dyn BlobReader>, dir, capacity).unwrap()
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn only_immutable_blob_ids_are_cacheable() {
        for id in [
            PACK,
            INDEX,
            "xs3_00ff-s0011-c1",
            "xr0_2_00ff-s00-c1",
            "n00ff",
            "m00ff",
        ] {
            assert!(is_cacheable(id), "{id}");
        }
        for id in [
            "kopia.repository",
            "kopia.blobcfg",
            "kopia.maintenance",
            "kopia.repository.backup.me",
            "xe12",
            "xw1700000000",
            "s00ff-s0011",
            "_log_20260101",
            "p00ff-s0011",
            "q../escape",
            "q.hidden",
        ] {
            assert!(!is_cacheable(id), "{id}");
        }
    }

    #[test]
    fn a_second_process_reads_from_the_cache_and_mutable_blobs_from_storage() {
        let dir = tempfile::tempdir().unwrap();
        let inner = Memory::with(&[
            (PACK, b"pack bytes 0123456789"),
            (INDEX, b"index"),
            ("xe0", b"epoch-marker"),
        ]);
        let first = cache(&inner, dir.path(), DEFAULT_CAPACITY);
        assert_eq!(first.get_blob(INDEX).unwrap(), b"index");
        assert_eq!(first.get_blob_range(PACK, 5, 5).unwrap(), b"bytes");
        assert_eq!(first.get_blob_range(PACK, 0, 4).unwrap(), b"pack");
        assert_eq!(first.get_blob("xe0").unwrap(), b"epoch-marker");
        // A range miss fetches the whole pack once; the marker is never kept.
        assert_eq!(inner.take_gets(), 3);
        assert_eq!(entries(dir.path()), vec![PACK, INDEX]);

        let second = cache(&inner, dir.path(), DEFAULT_CAPACITY);
        assert_eq!(second.get_blob(INDEX).unwrap(), b"index");
        assert_eq!(second.get_blob_range(PACK, 11, 10).unwrap(), b"0123456789");
        assert_eq!(second.get_blob(PACK).unwrap(), b"pack bytes 0123456789");
        assert_eq!(second.get_blob_range(PACK, 20, 0).unwrap(), b"");
        assert_eq!(inner.take_gets(), 0);
        assert_eq!(second.get_blob("xe0").unwrap(), b"epoch-marker");
        assert_eq!(inner.take_gets(), 1);
        // Past the end is what storage would say, with the blob's true length.
        match second.get_blob_range(PACK, 15, 10).unwrap_err() {
            Error::TruncatedBlob {
                blob_id, actual, ..
            } => {
                assert_eq!((blob_id.as_str(), actual), (PACK, 21))
            }
            other => panic!("unexpected {other:?}"),
        }
        // A missing blob is storage's error, and nothing is kept.
        assert!(matches!(
            second.get_blob("q00ff").unwrap_err(),
            Error::BlobNotFound { .. }
        ));
        assert_eq!(entries(dir.path()), vec![PACK, INDEX]);
    }

    #[test]
    fn the_file_is_the_blob_as_stored_then_its_trailer() {
        let dir = tempfile::tempdir().unwrap();
        let inner = Memory::with(&[(INDEX, b"sealed")]);
        cache(&inner, dir.path(), DEFAULT_CAPACITY)
            .get_blob(INDEX)
            .unwrap();
        let stored = fs::read(dir.path().join(INDEX)).unwrap();
        assert_eq!(&stored[..6], b"sealed");
        assert_eq!(stored.len(), 6 + TRAILER_LEN);
        assert_eq!(check_trailer(&stored), Some(6));
    }

    #[test]
    fn damaged_or_truncated_entries_are_fetched_again_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let inner = Memory::with(&[(PACK, b"the real pack"), (INDEX, b"the real index")]);
        let warm = cache(&inner, dir.path(), DEFAULT_CAPACITY);
        warm.get_blob(PACK).unwrap();
        warm.get_blob(INDEX).unwrap();
        inner.take_gets();

        let pack_file = dir.path().join(PACK);
        let mut bytes = fs::read(&pack_file).unwrap();
        bytes[2] ^= 0x20;
        fs::write(&pack_file, &bytes).unwrap();
        let index_file = dir.path().join(INDEX);
        let bytes = fs::read(&index_file).unwrap();
        fs::write(&index_file, &bytes[..bytes.len() - 1]).unwrap();

        let cold = cache(&inner, dir.path(), DEFAULT_CAPACITY);
        assert_eq!(cold.get_blob_range(PACK, 4, 4).unwrap(), b"real");
        assert_eq!(cold.get_blob(INDEX).unwrap(), b"the real index");
        assert_eq!(inner.take_gets(), 2);
        assert_eq!(check_trailer(&fs::read(&pack_file).unwrap()), Some(13));
        assert_eq!(check_trailer(&fs::read(&index_file).unwrap()), Some(14));
    }

    #[test]
    fn an_entry_that_does_not_decrypt_is_dropped_on_request() {
        let dir = tempfile::tempdir().unwrap();
        let inner = Memory::with(&[(INDEX, b"index")]);
        let cache = cache(&inner, dir.path(), DEFAULT_CAPACITY);
        cache.get_blob(INDEX).unwrap();
        assert!(cache.evict_cached(INDEX));
        assert!(!cache.evict_cached(INDEX));
        assert!(!cache.evict_cached("kopia.repository"));
        assert!(entries(dir.path()).is_empty());
        inner.take_gets();
        assert_eq!(cache.get_blob(INDEX).unwrap(), b"index");
        assert_eq!(inner.take_gets(), 1);
    }

    #[test]
    fn parallel_readers_of_one_pack_fetch_it_once() {
        let dir = tempfile::tempdir().unwrap();
        let pack: Vec<u8> = (0..=255).collect();
        let inner = Memory::with(&[(PACK, &pack)]);
        let cache = cache(&inner, dir.path(), DEFAULT_CAPACITY);
        std::thread::scope(|scope| {
            for i in 0..8u64 {
                let cache = &cache;
                scope.spawn(move || {
                    let got = cache.get_blob_range(PACK, i * 16, 16).unwrap();
                    assert_eq!(got[0], (i * 16) as u8);
                });
            }
        });
        assert_eq!(inner.take_gets(), 1);
    }

    #[test]
    fn the_least_recently_used_entries_go_when_the_cache_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let data = [0u8; 100];
        let ids = ["qa", "qb", "qc", "qd"];
        let inner = Memory::with(&ids.map(|id| (id, &data[..])));
        let entry = (data.len() + TRAILER_LEN) as u64;
        let capacity = 3 * entry + 10;
        let first = cache(&inner, dir.path(), capacity);
        for id in &ids[..3] {
            first.get_blob(id).unwrap();
        }
        // Oldest first: qa, qb, qc; then a new process uses qa.
        let base = SystemTime::now() - Duration::from_secs(100);
        for (age, id) in ids[..3].iter().enumerate() {
            File::options()
                .append(true)
                .open(dir.path().join(id))
                .unwrap()
                .set_modified(base + Duration::from_secs(age as u64))
                .unwrap();
        }
        let second = cache(&inner, dir.path(), capacity);
        second.get_blob("qa").unwrap();
        second.get_blob("qd").unwrap();
        // Four entries outgrow it: qb, then qc go, down to 80% of the capacity.
        assert_eq!(entries(dir.path()), vec!["qa", "qd"]);
        inner.take_gets();
        second.get_blob("qb").unwrap();
        assert_eq!(inner.take_gets(), 1);
        // A blob larger than the whole cache is read, not kept.
        let big = Memory::with(&[("qbig", &[1u8; 1000][..])]);
        let small = cache(&big, dir.path(), capacity);
        assert_eq!(small.get_blob("qbig").unwrap().len(), 1000);
        assert!(!dir.path().join("qbig").exists());
    }

    #[cfg(unix)]
    #[test]
    fn directories_are_0700_and_entries_0600() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let dir = repository_dir(&root.path().join("kopia-notifier"), b"id", "s3://b/p");
        let inner = Memory::with(&[(INDEX, b"index")]);
        cache(&inner, &dir, DEFAULT_CAPACITY)
            .get_blob(INDEX)
            .unwrap();
        let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&root.path().join("kopia-notifier")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(INDEX)), 0o600);
        // No temporary file is left behind.
        assert_eq!(entries(&dir), vec![INDEX]);
    }

    #[test]
    fn an_unusable_cache_directory_means_reading_from_storage() {
        let root = tempfile::tempdir().unwrap();
        let inner = Memory::with(&[(INDEX, b"index")]);
        // Not a directory at all: no cache (this holds for root too, unlike permissions).
        let file = root.path().join("file");
        fs::write(&file, b"").unwrap();
        let reader = BlobCache::wrap(
            Arc::clone(&inner) as Arc<dyn BlobReader>,
            &file.join("cache"),
            DEFAULT_CAPACITY,
        );
        assert_eq!(reader.get_blob(INDEX).unwrap(), b"index");
        assert_eq!(reader.get_blob(INDEX).unwrap(), b"index");
        assert_eq!(inner.take_gets(), 2);

        // A directory that vanishes under an open cache: reads still answer, nothing is kept.
        let dir = root.path().join("gone");
        let cache = cache(&inner, &dir, DEFAULT_CAPACITY);
        fs::remove_dir(&dir).unwrap();
        fs::write(&dir, b"").unwrap();
        assert_eq!(cache.get_blob(INDEX).unwrap(), b"index");
        assert_eq!(cache.get_blob_range(INDEX, 1, 3).unwrap(), b"nde");
        assert_eq!(inner.take_gets(), 2);
    }

    #[test]
    fn repositories_get_directories_of_their_own() {
        let root = Path::new("/cache/kopia-notifier");
        let a = repository_dir(root, b"unique-a", "s3://b/p at h");
        assert_eq!(a.parent(), Some(root));
        assert_eq!(a.file_name().unwrap().len(), 16);
        assert_ne!(a, repository_dir(root, b"unique-b", "s3://b/p at h"));
        assert_ne!(a, repository_dir(root, b"unique-a", "s3://b/q at h"));
        assert_eq!(a, repository_dir(root, b"unique-a", "s3://b/p at h"));
    }
}
