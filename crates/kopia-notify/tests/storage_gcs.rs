//! Repositories in a Google Cloud Storage bucket, end to end: real Kopia creates one on a
//! loopback fake-gcs-server (found, as by Google's clients, through `STORAGE_EMULATOR_HOST`)
//! and snapshots into it; `kopia-notify` opens it through the `repository.config` Kopia wrote,
//! lists manifests exactly as Kopia does, sends a notification Kopia sees, and Kopia's full
//! content verification and full maintenance still pass afterwards.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use kopia_fixtures::cli::{self, stdout_ok};
use kopia_fixtures::servers_objects::{
    require_fake_gcs, FakeGcsServer, RefusingServer, GCS_EMULATOR_ENV,
};
use kopia_fixtures::{require_kopia, KopiaRepo, PASSWORD};
use kopia_repo::client;
use kopia_repo::repository::Repository;
use kopia_repo::storage::counting::CountingStorage;
use kopia_repo::storage::BlobWriter;

/// Not ending in `/` and with a `/` inside: Kopia concatenates, it does not join.
const PREFIX: &str = "team-a/host1-";

/// The tests share the process's emulator: each takes a bucket of its own.
fn new_bucket(gcs: &FakeGcsServer) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let bucket = format!("kopia-notifier-{}", NEXT.fetch_add(1, Ordering::SeqCst));
    gcs.create_bucket(&bucket);
    bucket
}

fn kopia_notify(config: &Path, args: &[&str], emulator: Option<&str>) -> Output {
    let mut cmd = cli::command(env!("CARGO_BIN_EXE_kopia-notify"), config);
    if let Some(host) = emulator {
        cmd.env(GCS_EMULATOR_ENV, host);
    }
    cmd.args(args).output().expect("run kopia-notify")
}

/// A repository Kopia created in a new bucket of the emulator, with two snapshots.
fn kopia_repository_on(gcs: &FakeGcsServer) -> Option<(KopiaRepo, String)> {
    let kopia = require_kopia()?;
    let bucket = new_bucket(gcs);
    let repo = KopiaRepo::create_on(
        &kopia,
        &[
            "gcs".to_owned(),
            format!("--bucket={bucket}"),
            format!("--prefix={PREFIX}"),
        ],
    );
    for _ in 0..2 {
        let tree = repo.make_tree(2, 3);
        repo.snapshot(&tree);
    }
    Some((repo, bucket))
}

fn kopia_manifest_list(repo: &KopiaRepo) -> String {
    repo.run_ok(&["manifest", "list", "--json"])
}

/// A copy of Kopia's `repository.config` with `edit` applied to its storage config.
fn edited_config(
    repo: &KopiaRepo,
    dir: &Path,
    edit: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.config_file()).unwrap()).unwrap();
    edit(&mut config["storage"]["config"]);
    let path = dir.join("repository.config");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    std::fs::copy(
        repo.password_file(),
        dir.join("repository.config.kopia-password"),
    )
    .unwrap();
    path
}

#[test]
fn kopia_and_we_share_a_repository_in_a_gcs_bucket() {
    let Some(gcs) = require_fake_gcs() else {
        return;
    };
    let Some((repo, bucket)) = kopia_repository_on(gcs) else {
        return;
    };
    let config = repo.config_file();
    let ours = stdout_ok(kopia_notify(&config, &["manifest", "list", "--json"], None));
    assert_eq!(ours, kopia_manifest_list(&repo));
    assert_eq!(ours.matches("\"type\":\"snapshot\"").count(), 2, "{ours}");

    // What we send, Kopia lists; the repository stays one Kopia verifies and maintains.
    let out = kopia_notify(
        &config,
        &[
            "send",
            "--severity=warning",
            "--to=all",
            "--title=Backup failed on GCS",
        ],
        None,
    );
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let listed = repo.manifest_list_json(&["type:notification"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
    repo.content_verify();
    repo.maintenance_full();
    repo.content_verify();
    let ours = stdout_ok(kopia_notify(&config, &["manifest", "list", "--json"], None));
    assert_eq!(ours, kopia_manifest_list(&repo));
    assert!(ours.contains(&id));

    // Every object of the bucket is `<prefix><blob ID>`, and we list the blobs Kopia lists.
    let theirs: Vec<String> = repo.blob_list("").into_iter().map(|b| b.id).collect();
    assert!(theirs.iter().any(|id| id == "kopia.repository"));
    let expected: Vec<String> = theirs.iter().map(|id| format!("{PREFIX}{id}")).collect();
    assert_eq!(gcs.object_names(&bucket), expected);
    let client = client::load(&config).unwrap();
    let ours: Vec<String> = client
        .open_storage()
        .unwrap()
        .reader()
        .list_blobs("")
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(ours, theirs);
}

#[test]
fn an_unchanged_bucket_refreshes_with_one_listing_and_no_reads() {
    let Some(gcs) = require_fake_gcs() else {
        return;
    };
    let Some((repo, _)) = kopia_repository_on(gcs) else {
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
    // One list call is one objects.list request while the prefix holds under 1,000 index blobs.
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
fn a_read_only_config_reads_and_writes_nothing() {
    let Some(gcs) = require_fake_gcs() else {
        return;
    };
    let Some((repo, bucket)) = kopia_repository_on(gcs) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = edited_config(&repo, dir.path(), |storage| {
        storage["readOnly"] = serde_json::Value::Bool(true);
    });
    let before = gcs.object_names(&bucket);
    let ours = stdout_ok(kopia_notify(&config, &["manifest", "list", "--json"], None));
    assert_eq!(ours, kopia_manifest_list(&repo));
    let out = kopia_notify(
        &config,
        &["send", "--to=all", "--title=never written"],
        None,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("gcs://{bucket}/{PREFIX}")),
        "{stderr}"
    );
    assert_eq!(gcs.object_names(&bucket), before);
}

#[test]
fn refused_credentials_are_an_error_naming_the_bucket_and_not_retried() {
    let Some(gcs) = require_fake_gcs() else {
        return;
    };
    let Some((repo, bucket)) = kopia_repository_on(gcs) else {
        return;
    };
    // What Google answers a credential without access to the bucket.
    let refusing = RefusingServer::start(
        403,
        "Forbidden",
        r#"{"error":{"code":403,"message":"tester does not have storage.objects.list access","errors":[{"reason":"forbidden"}]}}"#,
    );
    let out = kopia_notify(
        &repo.config_file(),
        &["manifest", "list", "--json"],
        Some(&refusing.host()),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("access to gcs://{bucket}/{PREFIX}"))
            && stderr.contains("denied")
            && stderr.contains("storage.objects.list"),
        "{stderr}"
    );
    assert_eq!(refusing.requests(), 1, "a refusal is not retried");
}
