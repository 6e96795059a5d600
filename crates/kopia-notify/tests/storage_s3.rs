//! Repositories in an S3 bucket, end to end: real Kopia creates one on a loopback moto server
//! and snapshots into it; `kopia-notify` opens it through the `repository.config` Kopia wrote,
//! lists manifests exactly as Kopia does, writes one that Kopia sees, and Kopia's full content
//! verification and full maintenance still pass afterwards.

use std::path::Path;
use std::process::Output;

use kopia_fixtures::cli;
use kopia_fixtures::servers::{require_moto, MotoServer};
use kopia_fixtures::shared_repo::{
    assert_refreshes_read_only_what_changed, kopia_repository_with_two_snapshots, our_blob_ids,
    snapshot_count, SharedRepo,
};
use kopia_fixtures::{require_kopia, KopiaRepo};

const BUCKET: &str = "kopia-notifier-test";
/// Not ending in `/` and with a `/` inside: Kopia concatenates, it does not join.
const PREFIX: &str = "team-a/host1-";

fn kopia_notify(config: &Path, args: &[&str]) -> Output {
    cli::output(env!("CARGO_BIN_EXE_kopia-notify"), config, args)
}

/// A repository Kopia created in the moto bucket, with two snapshots.
fn kopia_repository_on(moto: &MotoServer) -> Option<KopiaRepo> {
    let kopia = require_kopia()?;
    moto.create_bucket(BUCKET);
    Some(kopia_repository_with_two_snapshots(
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
    ))
}

#[test]
fn kopia_and_we_share_a_repository_in_an_s3_bucket() {
    let Some(moto) = require_moto() else { return };
    let Some(repo) = kopia_repository_on(&moto) else {
        return;
    };
    let config = repo.config_file();
    let shared = SharedRepo::new(&repo, |args| kopia_notify(&config, args));
    assert_eq!(snapshot_count(&shared.assert_same_manifests()), 2);
    let id = shared.put_manifest("s3Test", "Backup failed on S3");
    shared.assert_kopia_verifies_and_maintains(&[&id], || repo.maintenance_full());

    // Every object sits under the prefix, as `<prefix><blob ID>`.
    let blobs = repo.blob_list("");
    assert!(blobs.iter().any(|b| b.id == "kopia.repository"));
    let mut theirs: Vec<String> = blobs.into_iter().map(|b| b.id).collect();
    theirs.sort();
    assert_eq!(our_blob_ids(&repo), theirs);
}

#[test]
fn an_unchanged_bucket_refreshes_with_one_listing_and_no_reads() {
    let Some(moto) = require_moto() else { return };
    let Some(repo) = kopia_repository_on(&moto) else {
        return;
    };
    // One list call is one ListObjects request while the prefix holds under 1,000 index blobs.
    assert_refreshes_read_only_what_changed(&repo);
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
