//! Repositories in a Backblaze B2 bucket through B2's native API, end to end against the fake of
//! that API in `tests/support/servers_b2.rs` (B2 has no emulator): real Kopia creates the
//! repository there and snapshots; `kopia-notify` opens it from the `repository.config` Kopia
//! wrote, lists manifests exactly as Kopia does, writes one that Kopia sees, and Kopia's full
//! content verification and maintenance pass afterwards. Requests are counted at the fake.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use kopia_fixtures::cli;
use kopia_fixtures::servers_b2::B2Fake;
use kopia_fixtures::shared_repo::{
    kopia_repository_with_two_snapshots, our_blob_ids, snapshot_count, CountedStore, SharedRepo,
};
use kopia_fixtures::{require_kopia, KopiaRepo};
use kopia_repo::client;
use kopia_repo::error::Error;
use kopia_repo::storage::factory::{self, Access, StorageConfig, StorageKind};
use kopia_repo::storage::Storage;

const BUCKET: &str = "kopia-notifier-b2";
/// Not ending in `/` and with a `/` inside: Kopia concatenates, it does not join.
const PREFIX: &str = "team-a/host1-";
const KEY: &str = "K005kopiaNotifierApplicationKey";

/// Each test's own account: the fake's front routes authorizations by key ID.
fn fake(test: &str) -> B2Fake {
    B2Fake::start(BUCKET, &format!("005{test}"), KEY)
}

fn kopia_notify(config: &Path, args: &[&str]) -> Output {
    cli::output(env!("CARGO_BIN_EXE_kopia-notify"), config, args)
}

/// A repository Kopia created in the fake's bucket, with two snapshots.
fn kopia_repository_on(test: &str) -> Option<KopiaRepo> {
    let kopia = require_kopia()?;
    Some(kopia_repository_with_two_snapshots(
        &kopia,
        &[
            "b2".to_owned(),
            format!("--bucket={BUCKET}"),
            format!("--prefix={PREFIX}"),
            format!("--key-id=005{test}"),
            format!("--key={KEY}"),
        ],
    ))
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn kopia_and_we_share_a_repository_in_a_b2_bucket() {
    let b2 = fake("share");
    let Some(repo) = kopia_repository_on("share") else {
        return;
    };
    // Kopia's client spoke the fake's API (v1) all through: the fake is what it uses.
    let kopia_calls = b2.take_counts();
    for call in [
        "b2_authorize_account",
        "b2_list_buckets",
        "b2_get_upload_url",
        "b2_upload_file",
        "b2_list_file_names",
        "b2_download_file_by_name",
    ] {
        assert!(kopia_calls.contains_key(call), "{call}: {kopia_calls:?}");
    }
    let config = repo.config_file();
    let shared = SharedRepo::new(&repo, |args| kopia_notify(&config, args));
    assert_eq!(snapshot_count(&shared.assert_same_manifests()), 2);
    let id = shared.put_manifest("b2Test", "Backup failed on B2");
    shared.assert_kopia_verifies_and_maintains(&[&id], || {
        b2.take_counts();
        repo.maintenance_full();
        // Kopia deletes by hiding (the files Kopia dropped are hidden, not gone), and looks
        // blobs up by version (b2_list_file_versions, b2_get_file_info) on the way.
        let maintenance_calls = b2.take_counts();
        assert!(
            maintenance_calls.get("b2_hide_file") > Some(&0) && !b2.hidden_files().is_empty(),
            "{maintenance_calls:?}"
        );
    });

    // Every file sits under the prefix, as `<prefix><blob ID>`, and we list what Kopia lists.
    let visible = b2.visible_files();
    assert!(
        visible.iter().all(|name| name.starts_with(PREFIX)),
        "{visible:?}"
    );
    assert!(visible.contains(&format!("{PREFIX}kopia.repository")));
    let mut theirs: Vec<String> = repo.blob_list("").into_iter().map(|b| b.id).collect();
    theirs.sort();
    assert_eq!(our_blob_ids(&repo), theirs);

    // Deleting hides the file, as Kopia does; Kopia no longer sees it.
    let client = client::load(&config).unwrap();
    let storage = client.open_storage().unwrap();
    let writer = storage.writer().unwrap();
    writer.put_blob("xb2probe", b"probe").unwrap();
    assert_eq!(
        b2.file_info(&format!("{PREFIX}xb2probe")).unwrap().1,
        "application/octet-stream"
    );
    assert!(repo.blob_list("xb2probe").len() == 1);
    writer.delete_blob("xb2probe").unwrap();
    writer.delete_blob("xb2probe").unwrap();
    assert!(b2.hidden_files().contains(&format!("{PREFIX}xb2probe")));
    assert!(repo.blob_list("xb2probe").is_empty());
}

#[test]
fn an_unchanged_bucket_refreshes_with_one_listing_and_no_downloads() {
    let b2 = fake("refresh");
    let Some(repo) = kopia_repository_on("refresh") else {
        return;
    };
    let mut store = CountedStore::open(&repo);
    b2.take_counts();
    store.assert_unchanged_refresh_lists_once();
    assert_eq!(b2.take_counts(), counts(&[("b2_list_file_names", 1)]));

    repo.snapshot(&repo.make_tree(1, 1));
    b2.take_counts();
    let update = store.assert_changed_refresh_reads_only_what_changed();
    let seen = b2.take_counts();
    assert_eq!(seen.get("b2_list_file_names"), Some(&1), "{seen:?}");
    assert_eq!(
        seen.get("b2_download_file_by_name").copied().unwrap_or(0),
        update.index_blobs_read + update.contents_read,
        "{seen:?}"
    );
}

#[test]
fn a_wrong_key_is_refused_at_once_naming_the_bucket() {
    let b2 = fake("wrongkey");
    let Some(repo) = kopia_repository_on("wrongkey") else {
        return;
    };
    let config = repo.config_file();
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&config).unwrap()).unwrap();
    json["storage"]["config"]["key"] = "K005notTheKey".into();
    std::fs::write(&config, json.to_string()).unwrap();

    b2.take_counts();
    let out = kopia_notify(&config, &["manifest", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("b2://{BUCKET}/{PREFIX}")) && stderr.contains("denied"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("K005notTheKey") && !stderr.contains(KEY),
        "{stderr}"
    );
    assert_eq!(b2.take_counts(), counts(&[("b2_authorize_account", 1)]));
}

/// Our storage on a fresh fake account, opened as the factory opens Kopia's config.
fn our_storage(test: &str) -> (B2Fake, Storage) {
    let b2 = fake(test);
    let config = StorageConfig {
        kind: StorageKind::B2,
        config: serde_json::json!({
            "bucket": BUCKET, "prefix": PREFIX, "keyID": format!("005{test}"), "key": KEY,
        }),
    };
    (b2, factory::open(&config, Access::ReadWrite).unwrap())
}

#[test]
fn ranges_are_exact_and_a_missing_blob_is_named() {
    let (b2, storage) = our_storage("ranges");
    let writer = storage.writer().unwrap();
    writer.put_blob("xr", b"0123456789").unwrap();
    writer.put_blob("q", b"").unwrap();
    let reader = storage.reader();
    assert_eq!(reader.get_blob("xr").unwrap(), b"0123456789");
    assert_eq!(reader.get_blob("q").unwrap(), b"");
    assert_eq!(reader.get_blob_range("xr", 2, 3).unwrap(), b"234");
    assert_eq!(reader.get_blob_range("xr", 10, 0).unwrap(), b"");
    for (offset, length, actual) in [(8, 5, 10), (12, 1, 10), (11, 0, 10)] {
        match reader.get_blob_range("xr", offset, length).unwrap_err() {
            Error::TruncatedBlob { actual: got, .. } => assert_eq!(got, actual),
            other => panic!("unexpected {other:?}"),
        }
    }
    match reader.get_blob("xmissing").unwrap_err() {
        Error::BlobNotFound { blob_id, storage } => {
            assert_eq!(blob_id, "xmissing");
            assert_eq!(storage, format!("b2://{BUCKET}/{PREFIX}"));
        }
        other => panic!("unexpected {other:?}"),
    }
    let listed: Vec<(String, u64)> = reader
        .list_blobs("")
        .unwrap()
        .into_iter()
        .map(|b| (b.id, b.length))
        .collect();
    assert_eq!(listed, vec![("q".to_owned(), 0), ("xr".to_owned(), 10)]);
    // One authorization and one bucket lookup for the whole session.
    let seen = b2.take_counts();
    assert_eq!(seen["b2_authorize_account"], 1, "{seen:?}");
    assert_eq!(seen["b2_list_buckets"], 1, "{seen:?}");
}

#[test]
fn an_expired_token_is_renewed_and_a_busy_upload_retried_on_a_new_upload_url() {
    let (b2, storage) = our_storage("expiry");
    let writer = storage.writer().unwrap();
    writer.put_blob("xs", b"first").unwrap();
    b2.take_counts();

    b2.expire_tokens();
    b2.fail_next("b2_upload_file", 1, 503);
    writer.put_blob("xs", b"again").unwrap();
    assert_eq!(storage.reader().get_blob("xs").unwrap(), b"again");
    // The 503 drops the upload URL; asking for a new one meets the expired token, which is
    // renewed (authorize, find the bucket) once.
    assert_eq!(
        b2.take_counts(),
        counts(&[
            ("b2_authorize_account", 1),
            ("b2_list_buckets", 1),
            ("b2_get_upload_url", 2),
            ("b2_upload_file", 2),
            ("b2_download_file_by_name", 1),
        ])
    );
}

#[test]
fn busy_answers_are_retried_and_a_restarted_fake_is_used_again() {
    let mut b2 = fake("restart");
    let Some(repo) = kopia_repository_on("restart") else {
        return;
    };
    let config = repo.config_file();
    let client = client::load(&config).unwrap();
    let storage = client.open_storage().unwrap();
    let reader = storage.reader();
    let before = reader.list_blobs("").unwrap();

    b2.take_counts();
    b2.fail_next("b2_list_file_names", 2, 503);
    assert_eq!(reader.list_blobs("").unwrap(), before);
    assert_eq!(b2.take_counts(), counts(&[("b2_list_file_names", 3)]));

    b2.stop();
    let message = reader.list_blobs("").unwrap_err().to_string();
    assert!(
        message.contains(&format!("b2://{BUCKET}/{PREFIX}")),
        "{message}"
    );
    let out = kopia_notify(&config, &["manifest", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(BUCKET), "{stderr}");

    // Back, with its files: the same storage and a new process both carry on.
    b2.restart();
    assert_eq!(reader.list_blobs("").unwrap(), before);
    SharedRepo::new(&repo, |args| kopia_notify(&config, args)).assert_same_manifests();
}
