//! Index blobs (v1 and v2, §6) as they are after decryption: parsing, every entry, lookups.
#![no_main]
use kopia_repo::index::IndexView;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(view) = IndexView::parse(data) else {
        return;
    };
    let entries: Vec<_> = view.iter().filter_map(Result::ok).collect();
    assert!(entries.len() <= view.len());
    for entry in entries.iter().take(64) {
        // Every entry the iterator yields must also be found by its ID.
        if let Ok(found) = view.find(&entry.content_id) {
            assert!(found.is_some(), "entry {} not found by its ID", entry.content_id);
        }
    }
    let _ = view.entries_with_prefix('m');
});
