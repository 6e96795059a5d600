//! Content verification, as `kopia content verify` does it (cli/command_content_verify.go):
//! every live content's pack must exist and hold the content's range; a share of the contents
//! (`percent`) is also downloaded, decrypted, decompressed and checked against its ID. Kopia
//! records nothing of this in the repository, so the caller reports what is found.

use std::collections::HashMap;

use crate::content::{CommittedIndex, IndexScope};
use crate::repository::Repository;
use crate::Result;

/// One damaged content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub content_id: String,
    pub pack_blob_id: String,
    pub reason: String,
}

/// What a verification looked at and found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub contents: usize,
    pub downloaded: usize,
    /// Ordered by pack, then content ID.
    pub damaged: Vec<Damage>,
}

/// Whether a content is among the `percent` downloaded: chosen by its ID's hash, so that a
/// given percentage always reads the same contents (and 100 reads all).
fn selected(content_id: &str, percent: f64) -> bool {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(content_id.as_bytes());
    let value = u16::from_le_bytes([digest[0], digest[1]]) as f64 / 65_536.0 * 100.0;
    value < percent
}

/// Verifies every live content of `repository`, downloading `percent` (0–100) of them.
pub fn verify(repository: &Repository, percent: f64) -> Result<VerifyReport> {
    // A damaged object on the server must be found, whatever a local cache holds.
    let reader = repository.storage_content_reader();
    let mut index = CommittedIndex::new(IndexScope::All);
    index.refresh(&reader)?;
    let mut packs: HashMap<String, u64> = HashMap::new();
    for prefix in ["p", "q"] {
        for blob in repository.storage().list_blobs(prefix)? {
            packs.insert(blob.id, blob.length);
        }
    }
    let mut report = VerifyReport::default();
    for entry in index.live_entries() {
        report.contents += 1;
        let content_id = entry.content_id.to_string();
        let damage = |reason: String| Damage {
            content_id: content_id.clone(),
            pack_blob_id: entry.pack_blob_id.to_string(),
            reason,
        };
        let end = u64::from(entry.pack_offset) + u64::from(entry.packed_length);
        match packs.get(entry.pack_blob_id.as_ref()) {
            None => {
                report.damaged.push(damage("pack blob is missing".into()));
                continue;
            }
            Some(&length) if length < end => {
                report.damaged.push(damage(format!(
                    "pack blob has {length} bytes, the content ends at {end}"
                )));
                continue;
            }
            Some(_) => {}
        }
        if selected(&content_id, percent) {
            report.downloaded += 1;
            if let Err(error) = reader.read_content(entry) {
                report.damaged.push(damage(error.to_string()));
            }
        }
    }
    report
        .damaged
        .sort_by(|a, b| (&a.pack_blob_id, &a.content_id).cmp(&(&b.pack_blob_id, &b.content_id)));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_follows_the_percentage() {
        let ids: Vec<String> = (0..2000).map(|i| format!("k{i:032x}")).collect();
        let count = |percent| ids.iter().filter(|id| selected(id, percent)).count();
        assert_eq!(count(100.0), 2000);
        assert_eq!(count(0.0), 0);
        let tenth = count(10.0);
        assert!((150..250).contains(&tenth), "{tenth}");
        // The same contents every time.
        assert_eq!(count(10.0), tenth);
    }
}
