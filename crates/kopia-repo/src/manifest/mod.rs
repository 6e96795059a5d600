//! The manifest store: small JSON documents with labels, kept in `m` contents. Loading merges
//! the entries of every live manifest content (latest `modified` wins, deletions hide), and a
//! refresh reads only index blobs and manifest contents it has not seen before.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::content::writer::{ContentWriter, NewContent};
use crate::content::{read_in_parallel, CommittedIndex, ContentReader, IndexScope};
use crate::go_json::{self, go_time};
use crate::index::{ContentId, IndexEntry};
use crate::verify::Damage;
use crate::{Error, Result};

mod content;
mod labels;
mod plain_entry;
pub use content::{decode_manifest_content, encode_manifest_content};
pub use labels::{LabelList, Labels};

/// Content-ID prefix of manifest contents.
pub const MANIFEST_CONTENT_PREFIX: char = 'm';
/// The label every manifest carries.
pub const TYPE_LABEL: &str = "type";

/// One manifest entry as stored (a deletion entry has no labels and `null` data).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub id: String,
    pub labels: LabelList,
    #[serde(with = "go_time")]
    pub modified: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    pub data: Box<RawValue>,
}

impl ManifestEntry {
    pub fn labels(&self) -> &LabelList {
        &self.labels
    }

    /// Kopia's metadata view: `{"id","length","labels","mtime"}`; length is of the raw data.
    pub fn metadata(&self) -> ManifestMetadata<'_> {
        ManifestMetadata {
            id: &self.id,
            length: self.data.get().len(),
            labels: self.labels(),
            mtime: self.modified,
        }
    }

    fn matches(&self, filter: &Labels) -> bool {
        let labels = self.labels();
        filter
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v.as_str()))
    }
}

/// What `kopia manifest list --json` prints for each entry, field for field.
#[derive(Debug, Serialize)]
pub struct ManifestMetadata<'a> {
    pub id: &'a str,
    pub length: usize,
    pub labels: &'a LabelList,
    #[serde(with = "go_time")]
    pub mtime: DateTime<Utc>,
}

impl ManifestMetadata<'_> {
    /// Appends this metadata as Kopia's `json.Marshal` prints it: these fields in this order,
    /// labels sorted by key, Go's string escaping (see `go_json`).
    pub fn append_go_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        go_json::append_string(out, self.id);
        out.extend_from_slice(b",\"length\":");
        go_json::append_decimal(out, self.length);
        out.extend_from_slice(b",\"labels\":{");
        for (i, (key, value)) in self.labels.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            go_json::append_string(out, key);
            out.push(b':');
            go_json::append_string(out, value);
        }
        out.extend_from_slice(b"},\"mtime\":\"");
        go_time::append(out, &self.mtime);
        out.extend_from_slice(b"\"}");
    }
}

/// A manifest to add.
#[derive(Debug, Clone)]
pub struct NewManifest {
    pub labels: Labels,
    pub data: Box<RawValue>,
}

impl NewManifest {
    /// The ID this manifest gets: derived from its labels and data, so that writing the same
    /// manifest again (a retry after a crash) yields the same entry instead of a duplicate.
    /// Kopia treats IDs as opaque 32-hex-digit strings.
    pub fn id(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(b"kopia-notifier manifest id v1\n");
        hasher.update(serde_json::to_vec(&self.labels).expect("labels serialize"));
        hasher.update(b"\n");
        hasher.update(self.data.get().as_bytes());
        hex::encode(&hasher.finalize()[..16])
    }
}

/// The entries of one manifest content, shared by the store's contents and its live set.
type ContentEntries = Arc<Vec<ManifestEntry>>;

/// An entry in a set keyed by its ID, without a second copy of the ID as the key: a position
/// in its content's entries (one shared list per content rather than an allocation per entry).
#[derive(Clone)]
struct ById {
    entries: ContentEntries,
    at: usize,
}

impl ById {
    fn entry(&self) -> &ManifestEntry {
        &self.entries[self.at]
    }
}

impl std::borrow::Borrow<str> for ById {
    fn borrow(&self) -> &str {
        &self.entry().id
    }
}

impl PartialEq for ById {
    fn eq(&self, other: &Self) -> bool {
        self.entry().id == other.entry().id
    }
}

impl Eq for ById {}

impl std::hash::Hash for ById {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes, so that lookups by `&str` find it (`Borrow` requires it).
        self.entry().id.as_str().hash(state);
    }
}

/// The live entries of a store, by ID.
type LiveEntries = HashSet<ById, foldhash::fast::RandomState>;

/// The live entries by their `type` label: nearly every lookup asks for one type (the
/// notifications, the acknowledgements, the snapshots), and a repository holds hundreds of
/// thousands of entries of a few types.
type ByType = HashMap<Box<str>, Vec<ById>, foldhash::fast::RandomState>;

fn by_type(live: &LiveEntries) -> ByType {
    let mut types = ByType::default();
    for entry in live {
        let Some(kind) = entry.entry().labels().get(TYPE_LABEL) else {
            continue;
        };
        match types.get_mut(kind) {
            Some(entries) => entries.push(entry.clone()),
            None => {
                types.insert(kind.into(), vec![entry.clone()]);
            }
        }
    }
    types
}

/// Merges entries by manifest ID: a strictly later `modified` wins, the first seen wins ties,
/// and IDs whose winner is a deletion disappear.
fn merge_entries(contents: &[&ContentEntries]) -> LiveEntries {
    // Presized: growing a set of tens of thousands rehashes every entry several times.
    let mut winners = LiveEntries::with_capacity_and_hasher(
        contents.iter().map(|entries| entries.len()).sum(),
        Default::default(),
    );
    for entries in contents {
        for (at, entry) in entries.iter().enumerate() {
            match winners.get(entry.id.as_str()) {
                Some(current) if entry.modified <= current.entry().modified => {}
                _ => {
                    winners.replace(ById {
                        entries: Arc::clone(entries),
                        at,
                    });
                }
            }
        }
    }
    winners.retain(|e| !e.entry().deleted);
    winners
}

/// What a refresh did, and where its time went.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ManifestRefresh {
    pub changed: bool,
    pub index_blobs_read: usize,
    pub contents_read: usize,
    /// Listing, reading and merging index blobs.
    pub index_time: Duration,
    /// Reading, decoding and merging manifest contents.
    pub manifest_time: Duration,
}

/// The manifest store of one repository, kept in memory and refreshed incrementally.
pub struct ManifestStore {
    reader: ContentReader,
    index: CommittedIndex,
    contents: HashMap<ContentId, ContentEntries>,
    /// Manifest contents that could not be read (damaged or cut short): the store goes on
    /// without their entries and names them, so that callers can report the damage instead of
    /// failing on every read. Read again whenever the index changes.
    damaged: HashMap<ContentId, Damage>,
    live: LiveEntries,
    by_type: ByType,
}

/// One manifest content as a load found it.
enum Loaded {
    Entries(ContentEntries),
    Damaged(Damage),
}

/// How often a load restarts when a manifest content vanishes under it (a concurrent
/// compaction deleted it), as Kopia restarts its own load.
const LOAD_ATTEMPTS: usize = 3;

impl ManifestStore {
    pub fn new(reader: ContentReader) -> Self {
        ManifestStore {
            reader,
            index: CommittedIndex::new(IndexScope::Prefix(MANIFEST_CONTENT_PREFIX)),
            contents: HashMap::new(),
            damaged: HashMap::new(),
            live: LiveEntries::default(),
            by_type: ByType::default(),
        }
    }

    /// Brings the store up to date: one listing; reads only new index blobs and contents.
    pub fn refresh(&mut self) -> Result<ManifestRefresh> {
        let mut outcome = ManifestRefresh::default();
        for attempt in 1..=LOAD_ATTEMPTS {
            let started = Instant::now();
            let index = self.index.refresh(&self.reader)?;
            outcome.index_time += started.elapsed();
            outcome.index_blobs_read += index.index_blobs_read;
            outcome.changed |= index.changed;
            if !index.changed && attempt == 1 {
                return Ok(outcome);
            }
            let started = Instant::now();
            let loaded = self.load_contents();
            outcome.manifest_time += started.elapsed();
            match loaded {
                Ok(read) => {
                    outcome.contents_read += read;
                    return Ok(outcome);
                }
                Err(Error::BlobNotFound { blob_id, .. }) if attempt < LOAD_ATTEMPTS => {
                    tracing::debug!(%blob_id, "manifest pack vanished during load; reloading index");
                }
                Err(e) => return Err(e),
            }
        }
        unreachable!("the last attempt returns")
    }

    fn load_contents(&mut self) -> Result<usize> {
        let mut wanted: Vec<&IndexEntry> = self
            .index
            .live_entries()
            .filter(|e| e.content_id.prefix() == Some(MANIFEST_CONTENT_PREFIX))
            .collect();
        // A stable order makes tie-breaking between equal `modified` times deterministic.
        wanted.sort_by_key(|e| e.content_id);
        let missing: Vec<&IndexEntry> = wanted
            .iter()
            .copied()
            .filter(|e| !self.contents.contains_key(&e.content_id))
            .collect();
        let reader = &self.reader;
        let fetched = read_in_parallel(&missing, |entry| {
            let decoded = reader.read_content(entry).and_then(|payload| {
                decode_manifest_content(&payload).map_err(|reason| Error::CorruptContent {
                    content_id: entry.content_id.to_string(),
                    blob_id: entry.pack_blob_id.to_string(),
                    reason,
                })
            });
            let loaded = match decoded {
                Ok(entries) => Loaded::Entries(Arc::new(entries)),
                Err(e @ (Error::CorruptContent { .. } | Error::TruncatedBlob { .. })) => {
                    // Callers say so (see `damaged`); a warning here would repeat it.
                    tracing::debug!(content = %entry.content_id, pack = %entry.pack_blob_id, error = %e, "manifest content cannot be read; going on without it");
                    Loaded::Damaged(Damage {
                        content_id: entry.content_id.to_string(),
                        pack_blob_id: entry.pack_blob_id.to_string(),
                        reason: e.to_string(),
                    })
                }
                Err(e) => return Err(e),
            };
            Ok((entry.content_id, loaded))
        })?;
        let read = fetched.len();
        for (id, loaded) in fetched {
            match loaded {
                Loaded::Entries(entries) => {
                    self.damaged.remove(&id);
                    self.contents.insert(id, entries);
                }
                Loaded::Damaged(damage) => {
                    self.damaged.insert(id, damage);
                }
            }
        }
        let live_ids: HashSet<&ContentId> = wanted.iter().map(|e| &e.content_id).collect();
        self.contents.retain(|id, _| live_ids.contains(id));
        self.damaged.retain(|id, _| live_ids.contains(id));
        let live_contents: Vec<&ContentEntries> = wanted
            .iter()
            .filter_map(|e| self.contents.get(&e.content_id))
            .collect();
        self.live = merge_entries(&live_contents);
        self.by_type = by_type(&self.live);
        Ok(read)
    }

    /// Adds `puts` and deletes `deletes` in one manifest content (one pack, one index blob), as
    /// a Kopia session flush does, and reloads. Returns the IDs of `puts` in order. Nothing is
    /// written when a put has no `type` label or a deleted ID does not exist.
    pub fn write(
        &mut self,
        writer: &ContentWriter,
        puts: &[NewManifest],
        deletes: &[String],
    ) -> Result<Vec<String>> {
        let keyed: Vec<(String, NewManifest)> =
            puts.iter().map(|put| (put.id(), put.clone())).collect();
        self.write_with_ids(writer, &keyed, deletes)
    }

    /// As [`write`](Self::write), with each put's ID chosen by the caller (32 lowercase hex
    /// digits, like Kopia's): producers that derive an ID from what a manifest is about, rather
    /// than from its bytes, write the same entry from any number of machines. A put whose ID
    /// exists replaces it (the later modification time wins, as in Kopia).
    pub fn write_with_ids(
        &mut self,
        writer: &ContentWriter,
        puts: &[(String, NewManifest)],
        deletes: &[String],
    ) -> Result<Vec<String>> {
        for (id, _) in puts {
            if id.len() != 32 || !id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
                return Err(Error::InvalidManifest(format!(
                    "manifest ID {id:?} is not 32 lowercase hex digits"
                )));
            }
        }
        self.refresh()?;
        for (_, put) in puts {
            if put.labels.get(TYPE_LABEL).is_none_or(String::is_empty) {
                return Err(Error::InvalidManifest(format!(
                    "manifest without a '{TYPE_LABEL}' label"
                )));
            }
        }
        let now = Utc::now();
        let mut entries = Vec::with_capacity(puts.len() + deletes.len());
        for id in deletes {
            let existing = self.get(id)?;
            // A deletion hides an entry only when strictly later (see merge_entries).
            let modified = now.max(existing.modified + chrono::Duration::nanoseconds(1));
            entries.push(ManifestEntry {
                id: id.clone(),
                labels: LabelList::default(),
                modified,
                deleted: true,
                data: RawValue::from_string("null".into()).expect("null is JSON"),
            });
        }
        let ids: Vec<String> = puts.iter().map(|(id, _)| id.clone()).collect();
        for (position, ((_, put), id)) in puts.iter().zip(&ids).enumerate() {
            // Distinct times keep a batch in its given order in Kopia's oldest-first listing.
            let put_time = now + chrono::Duration::nanoseconds(position as i64);
            let modified = match self.live.get(id.as_str()) {
                Some(existing) => {
                    put_time.max(existing.entry().modified + chrono::Duration::nanoseconds(1))
                }
                None => put_time,
            };
            entries.push(ManifestEntry {
                id: id.clone(),
                labels: LabelList::from(&put.labels),
                modified,
                deleted: false,
                data: put.data.clone(),
            });
        }
        if entries.is_empty() {
            return Ok(ids);
        }
        writer.write_contents(&[NewContent {
            prefix: Some(MANIFEST_CONTENT_PREFIX),
            payload: encode_manifest_content(&entries),
        }])?;
        self.refresh()?;
        if let Some(missing) = ids.iter().find(|id| !self.live.contains(id.as_str())) {
            return Err(Error::ManifestNotFound(format!(
                "{missing} (written, but not visible after reloading)"
            )));
        }
        Ok(ids)
    }

    /// Live manifests whose labels contain every pair of `filter`, oldest first (Kopia's order).
    pub fn find(&self, filter: &Labels) -> Vec<&ManifestEntry> {
        // Sorting on a copy of the time, next to the reference, keeps the comparisons from
        // chasing pointers into tens of thousands of entries; IDs break (rare) ties.
        let candidates: Box<dyn Iterator<Item = &ById>> = match filter.get(TYPE_LABEL) {
            Some(kind) => Box::new(self.by_type.get(kind.as_str()).into_iter().flatten()),
            None => Box::new(self.live.iter()),
        };
        let mut found: Vec<(DateTime<Utc>, &ManifestEntry)> = candidates
            .map(ById::entry)
            .filter(|e| e.matches(filter))
            .map(|e| (e.modified, e))
            .collect();
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.id.cmp(&b.1.id)));
        found.into_iter().map(|(_, e)| e).collect()
    }

    /// A live manifest by ID.
    pub fn get(&self, id: &str) -> Result<&ManifestEntry> {
        self.live
            .get(id)
            .map(ById::entry)
            .ok_or_else(|| Error::ManifestNotFound(id.to_string()))
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// The manifest contents that could not be read, by pack and content ID.
    pub fn damaged(&self) -> Vec<&Damage> {
        let mut damaged: Vec<&Damage> = self.damaged.values().collect();
        damaged.sort_by(|a, b| {
            (&a.pack_blob_id, &a.content_id).cmp(&(&b.pack_blob_id, &b.content_id))
        });
        damaged
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    pub fn reader(&self) -> &ContentReader {
        &self.reader
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression;
    use chrono::TimeZone;

    fn entry(id: &str, nanos: i64, deleted: bool, labels: &[(&str, &str)]) -> ManifestEntry {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ManifestEntry {
            id: id.into(),
            labels: if deleted {
                LabelList::default()
            } else {
                LabelList::from(&labels)
            },
            modified: Utc.timestamp_nanos(1_700_000_000_000_000_000 + nanos),
            deleted,
            data: RawValue::from_string(if deleted { "null".into() } else { "{}".into() }).unwrap(),
        }
    }

    #[test]
    fn later_entry_wins_and_deletions_hide() {
        let entries = vec![
            entry("a", 0, false, &[("type", "x")]),
            entry("a", 5, true, &[]),
            entry("b", 5, false, &[("type", "old")]),
            entry("b", 9, false, &[("type", "new")]),
            entry("c", 3, false, &[("type", "x")]),
        ];
        let merged = merge_entries(&[&Arc::new(entries)]);
        assert!(!merged.contains("a"));
        assert_eq!(
            merged.get("b").unwrap().entry().labels().get("type"),
            Some("new")
        );
        assert!(merged.contains("c"));
    }

    #[test]
    fn deletion_needs_a_strictly_later_time() {
        let entries = vec![
            entry("a", 5, false, &[("type", "x")]),
            entry("a", 5, true, &[]),
        ];
        assert!(merge_entries(&[&Arc::new(entries)]).contains("a"));
    }

    #[test]
    fn labels_decode_sorted_with_the_last_repeat_winning_as_in_go() {
        let json = r#"{"id":"a","labels":{"type":"x","b":"1","a":"2","b":"3"},"modified":"2024-01-02T03:04:05Z","data":{}}"#;
        let entry: ManifestEntry = serde_json::from_str(json).unwrap();
        let pairs: Vec<_> = entry.labels().iter().collect();
        assert_eq!(pairs, [("a", "2"), ("b", "3"), ("type", "x")]);
        assert_eq!(entry.labels().get("b"), Some("3"));
        assert_eq!(entry.labels().get("c"), None);
        assert_eq!(entry.labels().to_labels()["type"], "x");

        let deleted = r#"{"id":"a","labels":null,"modified":"2024-01-02T03:04:05Z","deleted":true,"data":null}"#;
        let entry: ManifestEntry = serde_json::from_str(deleted).unwrap();
        assert!(entry.labels().is_empty());
        assert!(serde_json::to_string(&entry)
            .unwrap()
            .contains(r#""labels":null"#));
        assert!(serde_json::from_str::<ManifestEntry>(&json.replace(r#""1""#, "1")).is_err());
    }

    #[test]
    fn decodes_kopia_manifest_content_and_rejects_garbage() {
        let json = br#"{"entries":[{"id":"00112233445566778899aabbccddeeff","labels":{"profile":"example","type":"notificationProfile"},"modified":"2024-01-02T03:04:05.123456789Z","data":{"minSeverity":0}},{"id":"ff","labels":null,"modified":"2024-01-02T03:04:06Z","deleted":true,"data":null}]}
"#;
        let entries = decode_manifest_content(&compression::gzip(json)).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].labels().get("type"), Some("notificationProfile"));
        assert_eq!(entries[0].data.get(), r#"{"minSeverity":0}"#);
        assert!(entries[1].deleted);
        assert_eq!(
            go_time::format(&entries[0].modified),
            "2024-01-02T03:04:05.123456789Z"
        );

        assert!(decode_manifest_content(b"not gzip").is_err());
        assert!(decode_manifest_content(&compression::gzip(b"{\"entries\":5}")).is_err());
        let repeated = br#"{"entries":[],"entries":[]}"#;
        assert!(decode_manifest_content(&compression::gzip(repeated)).is_err());
    }

    #[test]
    fn metadata_matches_kopia_list_json_shape() {
        let e = entry("a", 0, false, &[("type", "snapshot"), ("hostname", "h")]);
        let json = serde_json::to_string(&e.metadata()).unwrap();
        let expected = r#"{"id":"a","length":2,"labels":{"hostname":"h","type":"snapshot"},"mtime":"2023-11-14T22:13:20Z"}"#;
        assert_eq!(json, expected);
        let mut go = Vec::new();
        e.metadata().append_go_json(&mut go);
        assert_eq!(String::from_utf8(go).unwrap(), expected);
    }

    #[test]
    fn go_json_metadata_escapes_labels_as_go_does() {
        let e = entry("b", 120, false, &[("type", "x"), ("note", "<a & b>")]);
        let mut go = Vec::new();
        e.metadata().append_go_json(&mut go);
        assert_eq!(
            String::from_utf8(go).unwrap(),
            r#"{"id":"b","length":2,"labels":{"note":"\u003ca \u0026 b\u003e","type":"x"},"mtime":"2023-11-14T22:13:20.00000012Z"}"#
        );
    }
}
