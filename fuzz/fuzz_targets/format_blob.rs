//! The format blob `kopia.repository` (§2) and the `.shards` file of sharded stores.
#![no_main]
use kopia_repo::format::FormatBlob;
use kopia_repo::storage::sharded::ShardingParameters;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = FormatBlob::parse(data);
    if let Ok(sharding) = ShardingParameters::parse(data) {
        // What parses must survive its own round trip.
        let again = ShardingParameters::parse(sharding.to_json().as_bytes());
        assert!(again.is_ok(), "{:?} does not parse back", sharding.to_json());
    }
});
