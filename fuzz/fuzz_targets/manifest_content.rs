//! Manifest contents (§9): the input is the JSON inside the gzip, so the fuzzer mutates the
//! JSON rather than the deflate stream; large inputs take the streamed decoder, small ones the
//! buffered one, and both must agree with serde on what is valid.
#![no_main]
use kopia_repo::compression::gzip;
use kopia_repo::manifest::decode_manifest_content;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = decode_manifest_content(&gzip(data));
    if let Ok(entries) = &decoded {
        assert!(entries.iter().all(|entry| !entry.id.is_empty()));
    }
    // Raw bytes straight in: mostly gzip header errors, never a panic.
    let _ = decode_manifest_content(data);
});
