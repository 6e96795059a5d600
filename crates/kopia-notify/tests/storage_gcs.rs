//! Repositories in a Google Cloud Storage bucket, end to end: real Kopia creates one on a
//! loopback fake-gcs-server (found, as by Google's clients, through `STORAGE_EMULATOR_HOST`)
//! and snapshots into it; `kopia-notify` opens it through the `repository.config` Kopia wrote,
//! lists manifests exactly as Kopia does, sends a notification Kopia sees, and Kopia's full
//! content verification and full maintenance still pass afterwards.

use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

use kopia_fixtures::cli;
use kopia_fixtures::servers_objects::{
    require_fake_gcs, FakeGcsServer, RefusingServer, GCS_EMULATOR_ENV,
};
use kopia_fixtures::shared_repo::{
    assert_refreshes_read_only_what_changed, edited_config, kopia_repository_with_two_snapshots,
    our_blob_ids, snapshot_count, SharedRepo,
};
use kopia_fixtures::{require_kopia, KopiaRepo};

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
    let repo = kopia_repository_with_two_snapshots(
        &kopia,
        &[
            "gcs".to_owned(),
            format!("--bucket={bucket}"),
            format!("--prefix={PREFIX}"),
        ],
    );
    Some((repo, bucket))
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
    let shared = SharedRepo::new(&repo, |args| kopia_notify(&config, args, None));
    assert_eq!(snapshot_count(&shared.assert_same_manifests()), 2);
    let (id, _) = shared.send_notification("warning", "Backup failed on GCS");
    shared.assert_kopia_verifies_and_maintains(&[&id], || repo.maintenance_full());

    // Every object of the bucket is `<prefix><blob ID>`, and we list the blobs Kopia lists.
    let theirs: Vec<String> = repo.blob_list("").into_iter().map(|b| b.id).collect();
    assert!(theirs.iter().any(|id| id == "kopia.repository"));
    let expected: Vec<String> = theirs.iter().map(|id| format!("{PREFIX}{id}")).collect();
    assert_eq!(gcs.object_names(&bucket), expected);
    assert_eq!(our_blob_ids(&repo), theirs);
}

#[test]
fn an_unchanged_bucket_refreshes_with_one_listing_and_no_reads() {
    let Some(gcs) = require_fake_gcs() else {
        return;
    };
    let Some((repo, _)) = kopia_repository_on(gcs) else {
        return;
    };
    // One list call is one objects.list request while the prefix holds under 1,000 index blobs.
    assert_refreshes_read_only_what_changed(&repo);
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
    let shared = SharedRepo::new(&repo, |args| kopia_notify(&config, args, None));
    shared.assert_same_manifests();
    let out = shared.kopia_notify(&["send", "--to=all", "--title=never written"]);
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
