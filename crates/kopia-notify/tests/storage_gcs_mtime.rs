//! Blob times of a GCS repository that `kopia repository sync-to gcs --times` copied: Kopia
//! keeps each blob's original time in the object's `Kopia-Mtime` metadata and lists that time
//! instead of the server's (repo/blob/gcs/gcs_storage.go getBlobMeta). Real Kopia creates a
//! filesystem repository with snapshots, copies it to a loopback fake-gcs-server, and our
//! listing of the bucket equals Kopia's own, blob for blob, to the nanosecond.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kopia_fixtures::servers_objects::require_fake_gcs;
use kopia_fixtures::{require_kopia, CreateOptions, Kopia, KopiaRepo};
use kopia_repo::client;

const PREFIX: &str = "team-a/host1-";
const BUCKET: &str = "kopia-notifier-synced";

/// (blob ID, length, time) of every blob, sorted by ID.
type Listing = Vec<(String, u64, DateTime<Utc>)>;

/// `kopia repository connect gcs` to the copy into a config of its own in `dir`.
fn connect_to_copy(kopia: &Kopia, dir: &Path) -> PathBuf {
    let config = dir.join("repository.config");
    let out = kopia.run_with_config(
        &config,
        &dir.join("logs"),
        &[
            "repository".to_owned(),
            "connect".to_owned(),
            "gcs".to_owned(),
            format!("--bucket={BUCKET}"),
            format!("--prefix={PREFIX}"),
            format!("--cache-directory={}", dir.join("cache").display()),
            "--max-list-cache-duration=0s".to_owned(),
            "--persist-credentials".to_owned(),
        ],
    );
    assert!(
        out.status.success(),
        "kopia repository connect gcs: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    config
}

/// `kopia blob list --json` through `config`.
fn kopia_blob_list(kopia: &Kopia, config: &Path) -> Listing {
    let out = kopia.run_with_config(
        config,
        &config.with_extension("logs"),
        &["blob", "list", "--json"],
    );
    assert!(
        out.status.success(),
        "kopia blob list: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("blob list JSON");
    let mut blobs: Listing = listed
        .as_array()
        .expect("blob list is an array")
        .iter()
        .map(|b| {
            let time = b["timestamp"].as_str().expect("blob timestamp");
            (
                b["id"].as_str().expect("blob id").to_owned(),
                b["length"].as_u64().expect("blob length"),
                DateTime::parse_from_rfc3339(time)
                    .expect("an RFC 3339 time")
                    .with_timezone(&Utc),
            )
        })
        .collect();
    blobs.sort();
    blobs
}

#[test]
fn synced_blobs_list_with_the_times_kopia_kept() {
    let Some(gcs) = require_fake_gcs() else {
        return;
    };
    let Some(kopia) = require_kopia() else {
        return;
    };
    let source = KopiaRepo::create(&kopia, &CreateOptions::default());
    for _ in 0..2 {
        let tree = source.make_tree(2, 3);
        source.snapshot(&tree);
    }
    // Two days old: the kept times cannot be mistaken for the copy's.
    source.age_blobs(Duration::from_secs(2 * 24 * 3600));
    let original: Listing = source
        .blob_list("")
        .into_iter()
        .map(|b| (b.id, b.length, b.timestamp))
        .collect();
    gcs.create_bucket(BUCKET);
    source.run_ok(&[
        "repository".to_owned(),
        "sync-to".to_owned(),
        "gcs".to_owned(),
        format!("--bucket={BUCKET}"),
        format!("--prefix={PREFIX}"),
        "--times".to_owned(),
    ]);

    let dir = tempfile::tempdir().unwrap();
    let config = connect_to_copy(&kopia, dir.path());
    let theirs = kopia_blob_list(&kopia, &config);
    let storage = client::load(&config).unwrap().open_storage().unwrap();
    let ours: Listing = storage
        .reader()
        .list_blobs("")
        .unwrap()
        .into_iter()
        .map(|b| (b.id, b.length, b.timestamp))
        .collect();
    assert_eq!(ours, theirs);
    assert_eq!(ours.len(), original.len());

    // Every copied blob kept its original time, where the server's own times are the copy's:
    // without `Kopia-Mtime` every one would list differently. sync-to writes the format blob
    // anew (without a kept time), which lists with the object's creation, as Kopia lists it.
    let objects = gcs.objects(BUCKET);
    assert_eq!(objects.len(), ours.len());
    for ((listed, object), kept) in ours.iter().zip(&objects).zip(&original) {
        let (id, _, time) = listed;
        assert_eq!(object["name"], format!("{PREFIX}{id}"));
        let created: DateTime<Utc> = object["timeCreated"].as_str().unwrap().parse().unwrap();
        if id == "kopia.repository" {
            assert_eq!(*time, created);
            assert!(object.get("metadata").is_none(), "{object}");
            continue;
        }
        assert_eq!(listed, kept, "sync-to --times kept the time of {id}");
        for field in ["timeCreated", "updated"] {
            let server: DateTime<Utc> = object[field].as_str().unwrap().parse().unwrap();
            assert!(
                server - *time > chrono::Duration::days(1),
                "{id}: {field} {server} vs kept {time}"
            );
        }
    }
}
