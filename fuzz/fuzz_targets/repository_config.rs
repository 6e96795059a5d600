//! Kopia's `repository.config` (§10.1) and KopiaUI's configs, as found on disk.
#![no_main]
use std::path::Path;

use kopia_repo::client::parse_config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = parse_config(data, Path::new("/home/user/.config/kopia/repository.config"));
});
