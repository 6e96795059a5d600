//! Combining entries for the same content from several indexes (Kopia's "which entry wins"
//! rule) and the deletion-watermark rule. This is the in-memory merge only; which index blobs
//! to load and when is the epoch and content layers' business.

use std::collections::hash_map;
use std::collections::HashMap;

use super::{ContentId, DecodeError, IndexEntry, IndexView};

/// Whether `candidate` beats `current` for the same content: later timestamp wins; on a tie a
/// live entry beats a deleted one; then the larger pack name (byte-wise) wins, so every reader
/// picks the same entry.
pub fn supersedes(candidate: &IndexEntry, current: &IndexEntry) -> bool {
    if candidate.timestamp_seconds != current.timestamp_seconds {
        return candidate.timestamp_seconds > current.timestamp_seconds;
    }
    if candidate.deleted != current.deleted {
        return !candidate.deleted;
    }
    candidate.pack_blob_id.as_bytes() > current.pack_blob_id.as_bytes()
}

/// Whether a merged winner exists at all under the deletion watermark (unix seconds): a deleted
/// entry whose timestamp is not after the watermark is treated as absent. Live entries are
/// always visible; a visible deleted entry is still "not found" for normal reads.
pub fn is_visible(entry: &IndexEntry, deletion_watermark: Option<i64>) -> bool {
    match deletion_watermark {
        Some(watermark) if entry.deleted => entry.timestamp_seconds > watermark,
        _ => true,
    }
}

/// The winning entry per content ID across any number of indexes.
#[derive(Clone, Debug, Default)]
pub struct MergedIndex {
    winners: HashMap<ContentId, IndexEntry>,
}

impl MergedIndex {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_capacity(capacity: usize) -> Self {
        MergedIndex {
            winners: HashMap::with_capacity(capacity),
        }
    }

    /// Keeps `entry` if its content is new or it [`supersedes`] the current winner; returns
    /// whether it was kept.
    pub fn add(&mut self, entry: IndexEntry) -> bool {
        match self.winners.entry(entry.content_id) {
            hash_map::Entry::Vacant(slot) => {
                slot.insert(entry);
                true
            }
            hash_map::Entry::Occupied(mut slot) => {
                if supersedes(&entry, slot.get()) {
                    slot.insert(entry);
                    true
                } else {
                    false
                }
            }
        }
    }

    /// Adds every entry of one index.
    pub fn add_index(&mut self, index: &IndexView<'_>) -> Result<(), DecodeError> {
        self.winners.reserve(index.len());
        for entry in index.iter() {
            self.add(entry?);
        }
        Ok(())
    }

    pub fn get(&self, id: &ContentId) -> Option<&IndexEntry> {
        self.winners.get(id)
    }

    pub fn len(&self) -> usize {
        self.winners.len()
    }

    pub fn is_empty(&self) -> bool {
        self.winners.is_empty()
    }

    /// Winners in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &IndexEntry> + '_ {
        self.winners.values()
    }

    /// Keeps only the winners for which `keep` returns true (e.g. `is_visible` under a
    /// watermark).
    pub fn retain(&mut self, mut keep: impl FnMut(&IndexEntry) -> bool) {
        self.winners.retain(|_, entry| keep(entry));
    }
}

impl Extend<IndexEntry> for MergedIndex {
    fn extend<I: IntoIterator<Item = IndexEntry>>(&mut self, entries: I) {
        for entry in entries {
            self.add(entry);
        }
    }
}

impl IntoIterator for MergedIndex {
    type Item = IndexEntry;
    type IntoIter = hash_map::IntoValues<ContentId, IndexEntry>;

    fn into_iter(self) -> Self::IntoIter {
        self.winners.into_values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn entry(ts: i64, deleted: bool, pack: &str) -> IndexEntry {
        IndexEntry {
            content_id: ContentId::parse("m00112233445566778899aabbccddeeff").unwrap(),
            pack_blob_id: Arc::from(pack),
            timestamp_seconds: ts,
            original_length: 10,
            packed_length: 38,
            pack_offset: 32,
            compression_header_id: 0,
            deleted,
            format_version: 2,
            encryption_key_id: 0,
        }
    }

    #[test]
    fn later_timestamp_wins() {
        let old = entry(100, false, "q2");
        let new = entry(101, true, "q1");
        assert!(supersedes(&new, &old));
        assert!(!supersedes(&old, &new));
    }

    #[test]
    fn live_beats_deleted_on_timestamp_tie() {
        let live = entry(100, false, "q1");
        let deleted = entry(100, true, "q2");
        assert!(supersedes(&live, &deleted));
        assert!(!supersedes(&deleted, &live));
    }

    #[test]
    fn larger_pack_name_breaks_full_tie() {
        let a = entry(100, true, "qa");
        let b = entry(100, true, "qb");
        assert!(supersedes(&b, &a));
        assert!(!supersedes(&a, &b));
        assert!(!supersedes(&a, &a.clone()));
    }

    #[test]
    fn merged_index_keeps_winner_regardless_of_order() {
        let entries = [
            entry(100, false, "qa"),
            entry(102, true, "qb"),
            entry(102, false, "qc"),
            entry(101, false, "qd"),
        ];
        let forward: MergedIndex = {
            let mut m = MergedIndex::new();
            m.extend(entries.iter().cloned());
            m
        };
        let mut backward = MergedIndex::new();
        backward.extend(entries.iter().rev().cloned());
        let id = entries[0].content_id;
        assert_eq!(forward.get(&id), Some(&entries[2]));
        assert_eq!(backward.get(&id), Some(&entries[2]));
        assert_eq!(forward.len(), 1);
    }

    #[test]
    fn add_reports_whether_entry_won() {
        let mut m = MergedIndex::with_capacity(1);
        assert!(m.add(entry(100, false, "qa")));
        assert!(!m.add(entry(99, false, "qz")));
        assert!(m.add(entry(100, false, "qb")));
        assert_eq!(
            &*m.get(&entry(0, false, "").content_id).unwrap().pack_blob_id,
            "qb"
        );
    }

    #[test]
    fn deletion_watermark() {
        let deleted = entry(100, true, "q");
        let live = entry(100, false, "q");
        assert!(is_visible(&deleted, None));
        assert!(!is_visible(&deleted, Some(100)));
        assert!(!is_visible(&deleted, Some(150)));
        assert!(is_visible(&deleted, Some(99)));
        assert!(is_visible(&live, Some(150)));

        let mut m = MergedIndex::new();
        m.add(deleted);
        m.retain(|e| is_visible(e, Some(100)));
        assert!(m.is_empty());
    }
}
