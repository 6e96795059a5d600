//! Stored content payloads (§4): the first four bytes pick the compressor header ID, the rest
//! is the stored payload (which itself starts with that ID); and gzip streams on their own.
#![no_main]
use kopia_repo::compression::{decompress, gunzip, MAX_DECOMPRESSED_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((header, stored)) = data.split_first_chunk::<4>() {
        if let Ok(payload) = decompress(u32::from_be_bytes(*header), stored) {
            assert!(payload.len() <= MAX_DECOMPRESSED_LEN);
        }
    }
    let _ = gunzip(data);
});
