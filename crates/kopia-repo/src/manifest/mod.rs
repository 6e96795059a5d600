//! The manifest store: small JSON documents with labels, kept in `m` contents. Loading merges
//! the entries of every live manifest content (latest `modified` wins, deletions hide), and a
//! refresh reads only index blobs and manifest contents it has not seen before.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::compression;
use crate::content::writer::{ContentWriter, NewContent};
use crate::content::{read_in_parallel, CommittedIndex, ContentReader, IndexScope};
use crate::index::{ContentId, IndexEntry};
use crate::{DecodeError, Error, Result};

/// Content-ID prefix of manifest contents.
pub const MANIFEST_CONTENT_PREFIX: char = 'm';
/// The label every manifest carries.
pub const TYPE_LABEL: &str = "type";

pub type Labels = BTreeMap<String, String>;

/// One manifest entry as stored (a deletion entry has no labels and `null` data).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ManifestEntry {
    pub id: String,
    pub labels: Option<Labels>,
    #[serde(with = "go_time")]
    pub modified: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub deleted: bool,
    pub data: Box<RawValue>,
}

impl ManifestEntry {
    pub fn labels(&self) -> &Labels {
        static EMPTY: Labels = BTreeMap::new();
        self.labels.as_ref().unwrap_or(&EMPTY)
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
        filter.iter().all(|(k, v)| labels.get(k) == Some(v))
    }
}

/// What `kopia manifest list --json` prints for each entry, field for field.
#[derive(Debug, Serialize)]
pub struct ManifestMetadata<'a> {
    pub id: &'a str,
    pub length: usize,
    pub labels: &'a Labels,
    #[serde(with = "go_time")]
    pub mtime: DateTime<Utc>,
}

#[derive(Deserialize)]
struct ManifestContent {
    #[serde(alias = "Entries")]
    entries: Vec<ManifestEntry>,
}

#[derive(Serialize)]
struct ManifestContentRef<'a> {
    entries: &'a [ManifestEntry],
}

/// Encodes entries as a manifest content payload, as Kopia's JSON encoder and gzip write it.
pub fn encode_manifest_content(entries: &[ManifestEntry]) -> Vec<u8> {
    let mut json = serde_json::to_vec(&ManifestContentRef { entries }).expect("entries serialize");
    json.push(b'\n');
    compression::gzip(&json)
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

/// Decodes a manifest content payload: gzip of `{"entries":[…]}`.
pub fn decode_manifest_content(payload: &[u8]) -> Result<Vec<ManifestEntry>, DecodeError> {
    let json = compression::gunzip(payload)?;
    let content: ManifestContent = serde_json::from_slice(&json)
        .map_err(|e| DecodeError::new(format!("invalid manifest content JSON: {e}")))?;
    for entry in &content.entries {
        if entry.id.is_empty() {
            return Err(DecodeError::new("manifest entry without an id"));
        }
    }
    Ok(content.entries)
}

/// Merges entries by manifest ID: a strictly later `modified` wins, the first seen wins ties,
/// and IDs whose winner is a deletion disappear.
pub fn merge_entries<'a>(
    entries: impl IntoIterator<Item = &'a Arc<ManifestEntry>>,
) -> HashMap<String, Arc<ManifestEntry>> {
    let mut winners: HashMap<String, Arc<ManifestEntry>> = HashMap::new();
    for entry in entries {
        match winners.get(&entry.id) {
            Some(current) if entry.modified <= current.modified => {}
            _ => {
                winners.insert(entry.id.clone(), Arc::clone(entry));
            }
        }
    }
    winners.retain(|_, e| !e.deleted);
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
    contents: HashMap<ContentId, Arc<Vec<Arc<ManifestEntry>>>>,
    live: HashMap<String, Arc<ManifestEntry>>,
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
            live: HashMap::new(),
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
            let payload = reader.read_content(entry)?;
            let entries =
                decode_manifest_content(&payload).map_err(|reason| Error::CorruptContent {
                    content_id: entry.content_id.to_string(),
                    blob_id: entry.pack_blob_id.to_string(),
                    reason,
                })?;
            Ok((
                entry.content_id,
                Arc::new(entries.into_iter().map(Arc::new).collect()),
            ))
        })?;
        let read = fetched.len();
        self.contents.extend(fetched);
        let live_ids: HashSet<&ContentId> = wanted.iter().map(|e| &e.content_id).collect();
        self.contents.retain(|id, _| live_ids.contains(id));
        self.live = merge_entries(
            wanted
                .iter()
                .filter_map(|e| self.contents.get(&e.content_id))
                .flat_map(|entries| entries.iter()),
        );
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
        self.refresh()?;
        for put in puts {
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
                labels: None,
                modified,
                deleted: true,
                data: RawValue::from_string("null".into()).expect("null is JSON"),
            });
        }
        let ids: Vec<String> = puts.iter().map(NewManifest::id).collect();
        for (position, (put, id)) in puts.iter().zip(&ids).enumerate() {
            // Distinct times keep a batch in its given order in Kopia's oldest-first listing.
            let put_time = now + chrono::Duration::nanoseconds(position as i64);
            let modified = match self.live.get(id) {
                Some(existing) => {
                    put_time.max(existing.modified + chrono::Duration::nanoseconds(1))
                }
                None => put_time,
            };
            entries.push(ManifestEntry {
                id: id.clone(),
                labels: Some(put.labels.clone()),
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
        if let Some(missing) = ids.iter().find(|id| !self.live.contains_key(*id)) {
            return Err(Error::ManifestNotFound(format!(
                "{missing} (written, but not visible after reloading)"
            )));
        }
        Ok(ids)
    }

    /// Live manifests whose labels contain every pair of `filter`, oldest first (Kopia's order).
    pub fn find(&self, filter: &Labels) -> Vec<&ManifestEntry> {
        let mut found: Vec<&ManifestEntry> = self
            .live
            .values()
            .map(|e| e.as_ref())
            .filter(|e| e.matches(filter))
            .collect();
        found.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.id.cmp(&b.id)));
        found
    }

    /// A live manifest by ID.
    pub fn get(&self, id: &str) -> Result<&ManifestEntry> {
        self.live
            .get(id)
            .map(|e| e.as_ref())
            .ok_or_else(|| Error::ManifestNotFound(id.to_string()))
    }

    pub fn len(&self) -> usize {
        self.live.len()
    }

    pub fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    pub fn reader(&self) -> &ContentReader {
        &self.reader
    }
}

/// Go's `time.Time` JSON form: RFC 3339 with up to nine fractional digits, trailing zeros cut.
pub mod go_time {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn format(t: &DateTime<Utc>) -> String {
        let full = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
        // "…:05.120000000Z" → "…:05.12Z"; "…:05.000000000Z" → "…:05Z"
        let (body, _z) = full.split_at(full.len() - 1);
        let trimmed = body.trim_end_matches('0').trim_end_matches('.');
        format!("{trimmed}Z")
    }

    pub fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
        DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn entry(id: &str, nanos: i64, deleted: bool, labels: &[(&str, &str)]) -> ManifestEntry {
        let labels: Labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ManifestEntry {
            id: id.into(),
            labels: (!deleted).then_some(labels),
            modified: Utc.timestamp_nanos(1_700_000_000_000_000_000 + nanos),
            deleted,
            data: RawValue::from_string(if deleted { "null".into() } else { "{}".into() }).unwrap(),
        }
    }

    #[test]
    fn go_time_trims_trailing_zeros_like_rfc3339nano() {
        let t = Utc.timestamp_nanos(1_764_470_140_504_295_010);
        assert_eq!(go_time::format(&t), "2025-11-30T02:35:40.50429501Z");
        let whole = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(go_time::format(&whole), "2023-11-14T22:13:20Z");
        let t = go_time::parse("2026-11-30T02:35:40.8144024Z").unwrap();
        assert_eq!(go_time::format(&t), "2026-11-30T02:35:40.8144024Z");
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
        let entries: Vec<_> = entries.into_iter().map(Arc::new).collect();
        let merged = merge_entries(&entries);
        assert!(!merged.contains_key("a"));
        assert_eq!(merged["b"].labels()["type"], "new");
        assert!(merged.contains_key("c"));
    }

    #[test]
    fn deletion_needs_a_strictly_later_time() {
        let entries = vec![
            entry("a", 5, false, &[("type", "x")]),
            entry("a", 5, true, &[]),
        ];
        let entries: Vec<_> = entries.into_iter().map(Arc::new).collect();
        assert!(merge_entries(&entries).contains_key("a"));
    }

    #[test]
    fn decodes_kopia_manifest_content_and_rejects_garbage() {
        let json = br#"{"entries":[{"id":"00112233445566778899aabbccddeeff","labels":{"profile":"example","type":"notificationProfile"},"modified":"2024-01-02T03:04:05.123456789Z","data":{"minSeverity":0}},{"id":"ff","labels":null,"modified":"2024-01-02T03:04:06Z","deleted":true,"data":null}]}
"#;
        let entries = decode_manifest_content(&compression::gzip(json)).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].labels()["type"], "notificationProfile");
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
        assert_eq!(
            json,
            r#"{"id":"a","length":2,"labels":{"hostname":"h","type":"snapshot"},"mtime":"2023-11-14T22:13:20Z"}"#
        );
    }
}
