//! Repositories in an S3 bucket, end to end: real Kopia creates one on a loopback moto server
//! and snapshots into it; `kopia-notify` opens it through the `repository.config` Kopia wrote,
//! lists manifests exactly as Kopia does, writes one that Kopia sees, and Kopia's full content
//! verification and full maintenance still pass afterwards.

use std::path::Path;
use std::process::Output;
use std::sync::Arc;

use kopia_fixtures::cli::{self, stdout_ok};
use kopia_fixtures::servers::{require_moto, MotoServer};
use kopia_fixtures::{require_kopia, KopiaRepo, PASSWORD};
use kopia_repo::client;
use kopia_repo::repository::Repository;
use kopia_repo::storage::counting::CountingStorage;
use kopia_repo::storage::BlobWriter;

const BUCKET: &str = "kopia-notifier-test";
/// Not ending in `/` and with a `/` inside: Kopia concatenates, it does not join.
const PREFIX: &str = "team-a/host1-";

fn kopia_notify(config: &Path, args: &[&str]) -> Output {
    cli::command(env!("CARGO_BIN_EXE_kopia-notify"), config)
        .args(args)
        .output()
        .expect("run kopia-notify")
}

/// A repository Kopia created in the moto bucket, with two snapshots.
fn kopia_repository_on(moto: &MotoServer) -> Option<KopiaRepo> {
    let kopia = require_kopia()?;
    moto.create_bucket(BUCKET);
    let repo = KopiaRepo::create_on(
        &kopia,
        &[
            "s3".to_owned(),
            format!("--bucket={BUCKET}"),
            format!("--prefix={PREFIX}"),
            format!("--endpoint={}", moto.endpoint()),
            "--disable-tls".to_owned(),
            "--access-key=AKIAKOPIANOTIFIER".to_owned(),
            "--secret-access-key=kopia-notifier-secret".to_owned(),
        ],
    );
    for _ in 0..2 {
        let tree = repo.make_tree(2, 3);
        repo.snapshot(&tree);
    }
    Some(repo)
}

fn kopia_manifest_list(repo: &KopiaRepo) -> String {
    repo.run_ok(&["manifest", "list", "--json"])
}

#[test]
fn kopia_and_we_share_a_repository_in_an_s3_bucket() {
    let Some(moto) = require_moto() else { return };
    let Some(repo) = kopia_repository_on(&moto) else {
        return;
    };
    let config = repo.config_file();
    let ours = stdout_ok(kopia_notify(&config, &["manifest", "list", "--json"]));
    assert_eq!(ours, kopia_manifest_list(&repo));
    assert_eq!(ours.matches("\"type\":\"snapshot\"").count(), 2, "{ours}");

    // What we write, Kopia reads; the repository stays one Kopia verifies and maintains.
    let dir = tempfile::tempdir().unwrap();
    let payload = dir.path().join("payload.json");
    std::fs::write(&payload, r#"{"title": "Backup failed on S3"}"#).unwrap();
    let id = stdout_ok(kopia_notify(
        &config,
        &[
            "manifest",
            "put",
            "--label=type:s3Test",
            &format!("--file={}", payload.display()),
        ],
    ))
    .trim()
    .to_owned();
    let listed = repo.manifest_list_json(&["type:s3Test"]);
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    repo.content_verify();
    repo.maintenance_full();
    repo.content_verify();
    let ours = stdout_ok(kopia_notify(&config, &["manifest", "list", "--json"]));
    assert_eq!(ours, kopia_manifest_list(&repo));
    assert!(ours.contains(&id));

    // Every object sits under the prefix, as `<prefix><blob ID>`.
    let blobs = repo.blob_list("");
    assert!(blobs.iter().any(|b| b.id == "kopia.repository"));
    let client = client::load(&config).unwrap();
    let storage = client.open_storage().unwrap();
    let ours: Vec<String> = storage
        .reader()
        .list_blobs("")
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    let mut theirs: Vec<String> = blobs.into_iter().map(|b| b.id).collect();
    theirs.sort();
    assert_eq!(ours, theirs);
}

#[test]
fn an_unchanged_bucket_refreshes_with_one_listing_and_no_reads() {
    let Some(moto) = require_moto() else { return };
    let Some(repo) = kopia_repository_on(&moto) else {
        return;
    };
    let client = client::load(&repo.config_file()).unwrap();
    let writer = Arc::clone(client.open_storage().unwrap().writer().unwrap());
    let counting = Arc::new(CountingStorage::new(writer));
    let repository =
        Repository::open(Arc::clone(&counting) as Arc<dyn BlobWriter>, PASSWORD).unwrap();
    let mut store = repository.manifest_store();
    let first = store.refresh().unwrap();
    assert!(first.changed && first.contents_read > 0);

    counting.take_counts();
    let idle = store.refresh().unwrap();
    let counts = counting.take_counts();
    assert!(!idle.changed);
    // One list call is one ListObjects request while the prefix holds under 1,000 index blobs.
    assert_eq!((counts.lists, counts.gets), (1, 0), "{counts:?}");

    let tree = repo.make_tree(1, 1);
    repo.snapshot(&tree);
    let update = store.refresh().unwrap();
    let counts = counting.take_counts();
    assert!(update.changed);
    assert_eq!(counts.lists, 1);
    assert_eq!(
        counts.gets as usize,
        update.index_blobs_read + update.contents_read
    );
}

#[test]
fn a_server_that_went_away_is_an_error_naming_the_bucket_and_host() {
    let Some(mut moto) = require_moto() else {
        return;
    };
    let Some(repo) = kopia_repository_on(&moto) else {
        return;
    };
    let config = repo.config_file();
    moto.kill();
    let out = kopia_notify(&config, &["manifest", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(BUCKET) && stderr.contains(&moto.endpoint()),
        "{stderr}"
    );
    // Back up, but empty (moto keeps nothing): not a repository, said as such.
    moto.restart();
    moto.create_bucket(BUCKET);
    let out = kopia_notify(&config, &["manifest", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a Kopia repository"), "{stderr}");
}
