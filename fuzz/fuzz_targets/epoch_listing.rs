//! Blob listings the epoch manager decides from (§8): one blob a line, `<id> <length>
//! <unix seconds>`, as hostile names and times may be; and legacy compaction logs.
#![no_main]
use chrono::{TimeZone, Utc};
use kopia_repo::epoch::{epoch_index_blob_set, parse_compaction_log};
use kopia_repo::storage::BlobMetadata;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_compaction_log(data);
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let listing: Vec<BlobMetadata> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let id = fields.next()?.to_string();
            let length = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
            let seconds = fields.next().and_then(|f| f.parse().ok()).unwrap_or(0);
            let timestamp = Utc.timestamp_opt(seconds, 0).single()?;
            Some(BlobMetadata {
                id,
                length,
                timestamp,
            })
        })
        .collect();
    let set = epoch_index_blob_set(&listing);
    for blob in &set.blobs {
        assert!(listing.contains(blob), "{} was not listed", blob.id);
    }
});
