//! Writing contents as Kopia does, beside running Kopia clients: a session marker, one pack blob
//! (contents, padding, encrypted local index, postamble), one index blob in the current epoch
//! (or v0 naming), then the marker is deleted. Every write is read back and verified before it
//! is reported done. It never rewrites or deletes anything it did not write itself.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rand::RngCore;
use serde::Serialize;

use super::{ContentReader, IndexLayout, IndexScope};
use crate::crypto::blob_crypto;
use crate::epoch::{self, legacy::LEGACY_INDEX_PREFIX};
use crate::go_json::go_time;
use crate::index::{self, ContentId, IndexEntry};
use crate::pack::{self, PREAMBLE_LENGTH};
use crate::storage::BlobWriter;
use crate::{Error, Result};

/// Blob-ID prefix of session markers.
const SESSION_MARKER_PREFIX: &str = "s";
/// Session IDs end with the number of 30-day periods since 2000-01-01 (Kopia's scheme).
const SESSION_PERIOD_SECONDS: i64 = 30 * 24 * 3600;
const SESSION_EPOCH_START: i64 = 946_684_800; // 2000-01-01T00:00:00Z
/// How often the index write is redone when the epoch moved by two or more meanwhile.
const INDEX_WRITE_ATTEMPTS: usize = 3;

/// One content to write.
#[derive(Debug, Clone)]
pub struct NewContent {
    /// Content-ID prefix (`m` for manifests); `None` for file data.
    pub prefix: Option<char>,
    pub payload: Vec<u8>,
}

/// Who writes: recorded in session markers as Kopia records its own user and host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOwner {
    pub username: String,
    pub hostname: String,
}

/// Parameters of the repository that shape what is written.
#[derive(Debug, Clone)]
pub struct WriteFormat {
    pub index_version: u8,
    pub format_version: u8,
    /// Framed `kopia.repository` bytes that start every pack of format-v1 repositories.
    pub pack_prefix: Vec<u8>,
}

/// Writes contents into one repository.
pub struct ContentWriter {
    reader: ContentReader,
    /// The same storage as the reader's, with the capability to write.
    storage: Arc<dyn BlobWriter>,
    format: WriteFormat,
    owner: SessionOwner,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionInfo<'a> {
    id: &'a str,
    #[serde(with = "go_time")]
    start_time: DateTime<Utc>,
    #[serde(with = "go_time")]
    checkpoint_time: DateTime<Utc>,
    username: &'a str,
    hostname: &'a str,
}

/// Kopia's session ID: `s`, 16 random hex digits, then the 30-day period number in hex.
pub fn new_session_id(now: DateTime<Utc>) -> String {
    let random: u64 = rand::random();
    let period = (now.timestamp() - SESSION_EPOCH_START) / SESSION_PERIOD_SECONDS;
    format!("{SESSION_MARKER_PREFIX}{random:016x}{period:x}")
}

/// Name of a new pack: `q` for prefixed contents, `p` for file data, then 32 random hex digits
/// and the session ID.
fn new_pack_blob_id(prefixed: bool, session_id: &str) -> String {
    let mut random = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut random);
    let letter = if prefixed { 'q' } else { 'p' };
    format!("{letter}{}-{session_id}", hex::encode(random))
}

impl ContentWriter {
    pub fn new(
        reader: ContentReader,
        storage: Arc<dyn BlobWriter>,
        format: WriteFormat,
        owner: SessionOwner,
    ) -> Self {
        ContentWriter {
            reader,
            storage,
            format,
            owner,
        }
    }

    pub fn reader(&self) -> &ContentReader {
        &self.reader
    }

    /// Writes `contents` into one new pack and one new index blob; returns their index entries
    /// once both are durable and read back intact.
    pub fn write_contents(&self, contents: &[NewContent]) -> Result<Vec<IndexEntry>> {
        if contents.is_empty() {
            return Ok(Vec::new());
        }
        let prefixed = contents[0].prefix.is_some();
        if contents.iter().any(|c| c.prefix.is_some() != prefixed) {
            return Err(Error::Unsupported(
                "mixing prefixed and unprefixed contents in one pack".into(),
            ));
        }
        let now = Utc::now();
        let session_id = new_session_id(now);
        let marker = self.write_session_marker(&session_id, now)?;
        let written = self.write_pack_and_index(contents, &session_id, prefixed, now);
        // A marker left behind only keeps Kopia's GC away from our pack for a while; the write
        // itself has succeeded or failed by now.
        if let Err(e) = self.storage.delete_blob(&marker) {
            tracing::warn!(%marker, error = %e, "could not delete session marker");
        }
        written
    }

    fn write_session_marker(&self, session_id: &str, now: DateTime<Utc>) -> Result<String> {
        let info = SessionInfo {
            id: session_id,
            start_time: now,
            checkpoint_time: now,
            username: &self.owner.username,
            hostname: &self.owner.hostname,
        };
        let json = serde_json::to_vec(&info).expect("session info serializes");
        let crypto = self.reader.crypto();
        let (blob_id, bytes) = blob_crypto::encrypt_blob(
            &crypto.hasher,
            &crypto.encryptor,
            SESSION_MARKER_PREFIX,
            Some(session_id),
            &json,
        );
        self.storage.put_blob(&blob_id, &bytes)?;
        Ok(blob_id)
    }

    fn write_pack_and_index(
        &self,
        contents: &[NewContent],
        session_id: &str,
        prefixed: bool,
        now: DateTime<Utc>,
    ) -> Result<Vec<IndexEntry>> {
        let storage = &self.storage;
        let pack_blob_id = new_pack_blob_id(prefixed, session_id);
        let (pack, entries) = self.build_pack(contents, &pack_blob_id, now)?;
        storage.put_blob(&pack_blob_id, &pack)?;

        let index_bytes = index::build_index(self.format.index_version, &entries)
            .map_err(|reason| Error::corrupt_blob(&pack_blob_id, reason))?;
        // From here on the pack stays whatever happens. Once an index blob naming it may
        // exist (a failed put can leave one behind), Kopia can compact that index into `xs`/`xr`
        // blobs at any moment, and those would then point at a deleted pack. An unreferenced
        // pack is harmless: Kopia's blob GC deletes it (repo/maintenance/blob_gc.go, after its
        // safety margin).
        let index_blob_id = self.put_index_blob(&index_bytes, session_id)?;
        if let Err(e) = self.verify(&index_blob_id, &entries, contents) {
            // Our own index blob goes, so that a bad read-back is not left visible to Kopia;
            // a compaction that copied it already is left alone, and so is the pack.
            tracing::warn!(pack = %pack_blob_id, index = %index_blob_id, error = %e, "read-back failed; leaving the pack to Kopia's garbage collection");
            let _ = storage.delete_blob(&index_blob_id);
            return Err(e);
        }
        tracing::debug!(pack = %pack_blob_id, index = %index_blob_id, contents = entries.len(), "wrote contents");
        Ok(entries)
    }

    /// Encrypts the contents and lays out the pack; returns its bytes and the index entries.
    fn build_pack(
        &self,
        contents: &[NewContent],
        pack_blob_id: &str,
        now: DateTime<Utc>,
    ) -> Result<(Vec<u8>, Vec<IndexEntry>)> {
        let crypto = self.reader.crypto();
        let corrupt = |reason| Error::corrupt_blob(pack_blob_id, reason);
        let pack_name: Arc<str> = Arc::from(pack_blob_id);
        let mut encrypted = Vec::with_capacity(contents.len());
        let mut ids = Vec::with_capacity(contents.len());
        for content in contents {
            let id = ContentId::from_hash(content.prefix, &crypto.hasher.hash(&content.payload))
                .map_err(corrupt)?;
            encrypted.push(crypto.encryptor.encrypt(&content.payload, id.iv()));
            ids.push(id);
        }
        let lengths: Vec<usize> = encrypted.iter().map(Vec::len).collect();
        let plan = pack::plan_pack(self.format.pack_prefix.len(), &lengths).map_err(corrupt)?;
        let entries: Vec<IndexEntry> = ids
            .iter()
            .zip(contents)
            .zip(plan.content_offsets.iter().zip(&lengths))
            .map(|((id, content), (offset, length))| IndexEntry {
                content_id: *id,
                pack_blob_id: Arc::clone(&pack_name),
                timestamp_seconds: now.timestamp(),
                original_length: content.payload.len() as u32,
                packed_length: *length as u32,
                pack_offset: *offset,
                compression_header_id: 0,
                deleted: false,
                format_version: self.format.format_version,
                encryption_key_id: 0,
            })
            .collect();

        let local_index =
            index::build_index_with_random_suffix(self.format.index_version, &entries)
                .map_err(corrupt)?;
        let local_index_iv = crypto.hasher.hash(&local_index);
        let encrypted_local_index = crypto.encryptor.encrypt(&local_index, &local_index_iv);
        let mut preamble = [0u8; PREAMBLE_LENGTH];
        let mut padding = vec![0u8; plan.padding_length];
        rand::thread_rng().fill_bytes(&mut preamble);
        rand::thread_rng().fill_bytes(&mut padding);
        let (pack, _) = pack::assemble_pack(
            &self.format.pack_prefix,
            &preamble,
            &encrypted,
            &padding,
            &encrypted_local_index,
            &local_index_iv,
        )
        .map_err(corrupt)?;
        Ok((pack, entries))
    }

    /// Puts the index blob where readers look for it: the current epoch's `xn` blobs, or a v0
    /// `n` blob. Redone if the epoch moved by two or more during the write (readers would
    /// then ignore it).
    fn put_index_blob(&self, index_bytes: &[u8], session_id: &str) -> Result<String> {
        let storage = &self.storage;
        let crypto = self.reader.crypto();
        let encrypt = |prefix: &str, suffix: &str| {
            blob_crypto::encrypt_blob(
                &crypto.hasher,
                &crypto.encryptor,
                prefix,
                Some(suffix),
                index_bytes,
            )
        };
        if self.reader.layout() == IndexLayout::Legacy {
            let (blob_id, bytes) = encrypt(LEGACY_INDEX_PREFIX, session_id);
            storage.put_blob(&blob_id, &bytes)?;
            return Ok(blob_id);
        }
        let suffix = format!("{session_id}-c1");
        for _ in 0..INDEX_WRITE_ATTEMPTS {
            let epoch_before = epoch::write_epoch(&storage.list_blobs(epoch::EPOCH_MARKER_PREFIX)?);
            let (blob_id, bytes) = encrypt(&epoch::new_index_blob_prefix(epoch_before), &suffix);
            storage.put_blob(&blob_id, &bytes)?;
            let epoch_after = epoch::write_epoch(&storage.list_blobs(epoch::EPOCH_MARKER_PREFIX)?);
            if epoch_after < epoch_before + 2 {
                return Ok(blob_id);
            }
            tracing::warn!(%blob_id, epoch_before, epoch_after, "epoch advanced twice during index write; rewriting");
            storage.delete_blob(&blob_id)?;
        }
        Err(Error::Unsupported(
            "the repository's epoch keeps advancing faster than an index blob can be written"
                .into(),
        ))
    }

    /// Reads back the index blob and every content and compares them with what was meant.
    fn verify(
        &self,
        index_blob_id: &str,
        entries: &[IndexEntry],
        contents: &[NewContent],
    ) -> Result<()> {
        let mut stored = self
            .reader
            .read_index_entries(index_blob_id, IndexScope::All)?;
        let mut expected = entries.to_vec();
        stored.sort_by_key(|e| e.content_id);
        expected.sort_by_key(|e| e.content_id);
        if stored != expected {
            return Err(Error::corrupt_blob(
                index_blob_id,
                "index blob read back differs from what was written",
            ));
        }
        for (entry, content) in entries.iter().zip(contents) {
            if self.reader.read_content(entry)? != content.payload {
                return Err(Error::CorruptContent {
                    content_id: entry.content_id.to_string(),
                    blob_id: entry.pack_blob_id.to_string(),
                    reason: "content read back differs from what was written".into(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    use crate::repository::Repository;
    use crate::storage::filesystem::FilesystemStorage;
    use crate::storage::{BlobMetadata, BlobReader, BlobWriter, Storage};

    /// Filesystem storage that fails in one chosen way.
    #[derive(Debug)]
    struct Faulty {
        inner: FilesystemStorage,
        fault: Fault,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Fault {
        /// Packs read back with one byte flipped.
        CorruptPackReads,
        /// Writing an index blob fails (after which one may or may not exist).
        IndexPutFails,
    }

    impl BlobReader for Faulty {
        fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
            self.inner.get_blob(id)
        }
        fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
            let mut bytes = self.inner.get_blob_range(id, offset, length)?;
            if self.fault == Fault::CorruptPackReads && id.starts_with('q') {
                bytes[0] ^= 1;
            }
            Ok(bytes)
        }
        fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
            self.inner.list_blobs(prefix)
        }
        fn describe(&self) -> String {
            self.inner.describe()
        }
    }

    impl BlobWriter for Faulty {
        fn put_blob(&self, id: &str, data: &[u8]) -> Result<()> {
            if self.fault == Fault::IndexPutFails && id.starts_with("xn") {
                return Err(Error::Unsupported(format!("test: refusing {id}")));
            }
            self.inner.put_blob(id, data)
        }
        fn delete_blob(&self, id: &str) -> Result<()> {
            self.inner.delete_blob(id)
        }
    }

    /// A failed write after the pack is stored reports the error and leaves the pack, which
    /// an index (or Kopia's compaction of it) may already reference; the GC of Kopia owns it.
    #[test]
    fn a_failed_write_never_deletes_its_pack() {
        let owner = SessionOwner {
            username: "alice".into(),
            hostname: "laptop".into(),
        };
        for fault in [Fault::CorruptPackReads, Fault::IndexPutFails] {
            let dir = tempfile::tempdir().unwrap();
            Repository::create_filesystem(dir.path(), "pw", &owner).unwrap();
            let storage = Arc::new(Faulty {
                inner: FilesystemStorage::open(dir.path()).unwrap(),
                fault,
            });
            let ids = |prefix: &str| -> Vec<String> {
                let mut ids: Vec<String> = storage
                    .list_blobs(prefix)
                    .unwrap()
                    .into_iter()
                    .map(|b| b.id)
                    .collect();
                ids.sort();
                ids
            };
            let (packs_before, indexes_before) = (ids("q"), ids("xn"));
            let repository = Repository::open(Storage::read_write(storage.clone()), "pw").unwrap();
            let writer = repository.content_writer(owner.clone()).unwrap();
            let error = writer
                .write_contents(&[NewContent {
                    prefix: Some('m'),
                    payload: b"{\"hello\":1}".to_vec(),
                }])
                .unwrap_err();
            let packs = ids("q");
            assert_eq!(packs.len(), packs_before.len() + 1, "{fault:?}: {error}");
            assert!(packs_before.iter().all(|p| packs.contains(p)));
            // The index blob we wrote (if any) is withdrawn: only the earlier ones remain.
            assert_eq!(ids("xn"), indexes_before, "{fault:?}");
            match fault {
                Fault::CorruptPackReads => {
                    assert!(matches!(error, Error::CorruptContent { .. }), "{error}");
                }
                Fault::IndexPutFails => assert!(error.to_string().contains("refusing xn")),
            }
            // No session marker stays behind.
            assert!(storage.list_blobs("s").unwrap().is_empty());
        }
    }

    #[test]
    fn session_ids_follow_kopias_scheme() {
        // Aug 2026 is period 324 = 0x144 (format guide §8.6).
        let id = new_session_id(Utc.with_ymd_and_hms(2026, 8, 21, 0, 0, 0).unwrap());
        assert!(id.starts_with('s'));
        assert_eq!(id.len(), 1 + 16 + 3);
        assert!(id.ends_with("144"));
        assert_ne!(
            id,
            new_session_id(Utc.with_ymd_and_hms(2026, 8, 21, 0, 0, 0).unwrap())
        );
    }

    #[test]
    fn pack_names_carry_prefix_kind_and_session() {
        let q = new_pack_blob_id(true, "s0011223344556677144");
        assert!(q.starts_with('q') && q.ends_with("-s0011223344556677144"));
        assert_eq!(q.len(), 1 + 32 + 1 + 20);
        assert!(new_pack_blob_id(false, "s1").starts_with('p'));
    }
}
