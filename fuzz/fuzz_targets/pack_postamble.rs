//! Pack tails (§5): the postamble and the encrypted local index it locates, and the framed
//! format blob copy Kopia keeps in packs.
#![no_main]
use kopia_repo::pack::{encrypted_local_index, recover_format_blob, Postamble};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok((_, local_index)) = encrypted_local_index(data) {
        assert!(local_index.len() <= data.len());
    }
    let _ = Postamble::decode(data);
    if let Ok(format) = recover_format_blob(data) {
        assert!(format.len() <= data.len());
    }
});
