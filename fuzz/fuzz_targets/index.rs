//! Index blobs (v1 and v2, §6) as they are after decryption: parsing, every entry, lookups.
//! Lookups binary-search as Kopia's do, so an index whose entries are out of order may miss
//! entries it holds; that is no error, but nothing may panic or read out of bounds.
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
        let _ = view.find(&entry.content_id);
    }
    let _ = view.entries_with_prefix('m');
});
