//! Our manifest reader judged by real Kopia: for repositories Kopia creates with every format
//! option, snapshots, policies, maintenance, epoch advancement and compaction, our manifest list
//! equals `kopia manifest list --json` entry for entry and payloads are equal.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo, BLOCK_HASHES, PASSWORD};
use kopia_repo::content::{CommittedIndex, IndexScope};
use kopia_repo::manifest::Labels;
use kopia_repo::repository::Repository;
use kopia_repo::storage::counting::CountingStorage;
use kopia_repo::storage::filesystem::FilesystemStorage;
use kopia_repo::storage::BlobStorage;
use serde_json::Value;

/// Compares our manifest store with Kopia's view; returns the number of manifests.
fn assert_manifests_match_kopia(repo: &KopiaRepo) -> usize {
    let theirs = repo.manifest_list_json(&[]);
    let theirs: BTreeMap<String, Value> = theirs
        .as_array()
        .expect("kopia manifest list is an array")
        .iter()
        .map(|m| (m["id"].as_str().unwrap().to_owned(), m.clone()))
        .collect();

    let repository = Repository::open_filesystem(&repo.repo_dir(), PASSWORD).expect("open");
    let mut store = repository.manifest_store();
    store.refresh().expect("load manifests");
    let ours: BTreeMap<String, Value> = store
        .find(&Labels::new())
        .iter()
        .map(|e| (e.id.clone(), serde_json::to_value(e.metadata()).unwrap()))
        .collect();

    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "manifest IDs differ"
    );
    for (id, theirs) in &theirs {
        assert_eq!(&ours[id], theirs, "metadata of manifest {id} differs");
        let payload: Value = serde_json::from_slice(&repo.manifest_show(id)).unwrap();
        let ours: Value = serde_json::from_str(store.get(id).unwrap().data.get()).unwrap();
        assert_eq!(ours, payload, "payload of manifest {id} differs");
    }
    ours.len()
}

fn types_of(repo: &KopiaRepo) -> BTreeSet<String> {
    repo.manifest_list_json(&[])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["labels"]["type"].as_str().unwrap().to_owned())
        .collect()
}

/// Snapshots with a tag, a path policy: the usual manifest types.
fn populate(repo: &KopiaRepo) -> Vec<String> {
    let first = repo.make_tree(3, 4);
    let second = repo.make_tree(2, 2);
    let ids = vec![repo.snapshot(&first), repo.snapshot(&second)];
    repo.run_ok(&[
        "policy".as_ref(),
        "set".as_ref(),
        first.as_os_str(),
        "--keep-latest=3".as_ref(),
    ]);
    ids
}

fn check_repository(options: CreateOptions) {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &options);
    populate(&repo);
    let count = assert_manifests_match_kopia(&repo);
    assert!(
        count >= 5,
        "expected policies, maintenance and snapshots, got {count}"
    );
    assert_eq!(
        types_of(&repo),
        ["maintenance", "policy", "snapshot"]
            .map(String::from)
            .into_iter()
            .collect()
    );
}

macro_rules! block_hash_tests {
    ($($name:ident => $index:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            check_repository(CreateOptions {
                block_hash: Some(BLOCK_HASHES[$index]),
                ..Default::default()
            });
        }
    )*};
}

block_hash_tests! {
    block_hash_blake2b_256 => 0,
    block_hash_blake2b_256_128 => 1,
    block_hash_blake2s_128 => 2,
    block_hash_blake2s_256 => 3,
    block_hash_blake3_256 => 4,
    block_hash_blake3_256_128 => 5,
    block_hash_hmac_sha224 => 6,
    block_hash_hmac_sha256 => 7,
    block_hash_hmac_sha256_128 => 8,
    block_hash_hmac_sha3_224 => 9,
    block_hash_hmac_sha3_256 => 10,
}

#[test]
fn block_hash_list_is_complete() {
    let ours: BTreeSet<&str> = kopia_repo::crypto::hashing::HASH_ALGORITHMS
        .iter()
        .copied()
        .collect();
    assert_eq!(ours, BLOCK_HASHES.into_iter().collect());
}

#[test]
fn chacha20_encryption() {
    check_repository(CreateOptions {
        encryption: Some("CHACHA20-POLY1305-HMAC-SHA256"),
        ..Default::default()
    });
}

#[test]
fn pbkdf2_key_derivation() {
    check_repository(CreateOptions {
        key_derivation: Some("pbkdf2-sha256-600000"),
        ..Default::default()
    });
}

#[test]
fn format_version_1_legacy_indexes_v1() {
    check_repository(CreateOptions {
        format_version: Some(1),
        ..Default::default()
    });
}

#[test]
fn format_version_1_with_index_v2() {
    check_repository(CreateOptions {
        format_version: Some(1),
        index_version: Some(2),
        ..Default::default()
    });
}

#[test]
fn format_version_2() {
    check_repository(CreateOptions {
        format_version: Some(2),
        ..Default::default()
    });
}

#[test]
fn deletions_and_full_maintenance() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    let snapshots = populate(&repo);
    assert_manifests_match_kopia(&repo);

    repo.delete_snapshot(&snapshots[0]);
    let after_delete = assert_manifests_match_kopia(&repo);
    repo.maintenance_full();
    repo.maintenance_full();
    assert_eq!(assert_manifests_match_kopia(&repo), after_delete);
    assert!(
        !repo.blob_list("xw").is_empty(),
        "full maintenance should have written a deletion watermark"
    );
    repo.content_verify();
}

#[test]
fn epochs_advanced_compacted_and_checkpointed() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    repo.tune_epochs(2);
    populate(&repo);
    for _ in 0..3 {
        repo.advance_epoch();
    }
    assert!(
        !repo.blob_list("xs").is_empty(),
        "expected single-epoch compactions"
    );
    assert_manifests_match_kopia(&repo);

    let tree = repo.make_tree(1, 1);
    let doomed = repo.snapshot(&tree);
    for _ in 0..3 {
        repo.advance_epoch();
    }
    repo.delete_snapshot(&doomed);
    repo.compact_epochs();
    repo.compact_epochs();
    assert!(
        !repo.blob_list("xr").is_empty(),
        "expected a range checkpoint"
    );
    assert!(
        !repo.blob_list("xw").is_empty(),
        "expected a deletion watermark"
    );
    let epoch = repo.write_epoch();
    assert!(
        repo.blob_list("xn0_").is_empty(),
        "superseded xn blobs of epoch 0 should be gone at epoch {epoch}"
    );
    assert_manifests_match_kopia(&repo);
}

#[test]
fn refresh_without_changes_lists_once_and_reads_nothing() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    populate(&repo);

    let counting = Arc::new(CountingStorage::new(
        FilesystemStorage::open(&repo.repo_dir()).unwrap(),
    ));
    let repository =
        Repository::open(Arc::clone(&counting) as Arc<dyn BlobStorage>, PASSWORD).unwrap();
    let mut store = repository.manifest_store();
    let first = store.refresh().unwrap();
    assert!(first.changed && first.index_blobs_read > 0 && first.contents_read > 0);
    let before = store.len();

    counting.take_counts();
    let idle = store.refresh().unwrap();
    let counts = counting.take_counts();
    assert!(!idle.changed);
    assert_eq!(
        (counts.lists, counts.gets),
        (1, 0),
        "idle refresh did {counts:?}"
    );

    // One new snapshot: exactly the new index blob and the new manifest content are read.
    let tree = repo.make_tree(1, 1);
    repo.snapshot(&tree);
    let update = store.refresh().unwrap();
    let counts = counting.take_counts();
    assert!(update.changed);
    assert_eq!(store.len(), before + 1);
    assert_eq!(counts.lists, 1);
    assert_eq!(update.contents_read, 1, "{update:?}");
    assert_eq!(
        counts.gets as usize,
        update.index_blobs_read + update.contents_read
    );
    assert_eq!(counts.puts + counts.deletes, 0, "a reader never writes");
}

/// Every compressor Kopia writes, read back through our content reader and compared with
/// `kopia content show`.
#[test]
fn compressed_contents_read_like_kopia() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    let compressors = [
        "gzip",
        "gzip-best-speed",
        "gzip-best-compression",
        "zstd",
        "zstd-fastest",
        "zstd-better-compression",
        "s2-default",
        "s2-better",
        "s2-parallel-4",
        "s2-parallel-8",
        "pgzip",
        "pgzip-best-speed",
        "pgzip-best-compression",
        "deflate-default",
        "deflate-best-speed",
        "deflate-best-compression",
    ];
    for compressor in compressors {
        repo.set_global_policy(&[&format!("--compression={compressor}")]);
        let tree = repo.make_tree(1, 2);
        repo.snapshot(&tree);
    }

    let repository = Repository::open_filesystem(&repo.repo_dir(), PASSWORD).unwrap();
    let reader = repository.content_reader();
    let mut index = CommittedIndex::new(IndexScope::All);
    index.refresh(&reader).unwrap();
    let mut by_compressor: BTreeMap<u32, Vec<_>> = BTreeMap::new();
    for entry in index.live_entries() {
        by_compressor
            .entry(entry.compression_header_id)
            .or_default()
            .push(entry.clone());
    }
    for compressor in compressors {
        let id = kopia_repo::compression::header_id_for_name(compressor).unwrap();
        assert!(
            by_compressor.contains_key(&id),
            "no content compressed with {compressor} ({id:#x})"
        );
    }
    for entries in by_compressor.values() {
        for entry in entries.iter().take(2) {
            let ours = reader.read_content(entry).unwrap();
            let id = entry.content_id.to_string();
            let out = repo.run(&["content", "show", &id]);
            assert!(out.status.success(), "kopia content show {id} failed");
            assert_eq!(ours, out.stdout, "content {id} differs");
        }
    }
}

#[test]
fn open_through_kopia_client_config_and_password_file() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    assert!(repo.password_file().exists());
    let (repository, client) =
        Repository::open_with_client_config(&repo.config_file()).expect("open via config");
    assert_eq!(client.storage.local_path(), Some(repo.repo_dir()));
    let mut store = repository.manifest_store();
    store.refresh().unwrap();
    assert_eq!(
        store.len(),
        repo.manifest_list_json(&[]).as_array().unwrap().len()
    );
}
