//! Blob times of an Azure repository that `kopia repository sync-to azure --times` copied:
//! Kopia keeps each blob's original time in its `Kopiamtime` metadata and lists that, not the
//! copy's Last-Modified (repo/blob/azure/azure_storage.go getBlobMeta). Our listing of the
//! Azurite container must give every blob the ID, length and time Kopia gives it.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kopia_fixtures::servers_objects::require_azurite;
use kopia_fixtures::{require_kopia, BlobInfo, CreateOptions, KopiaRepo, HOSTNAME, USERNAME};
use kopia_repo::client;

const CONTAINER: &str = "kopia-notifier-synced";
const PREFIX: &str = "team-a/host1-";
/// How far in the past the source's blobs are: far from any upload time.
const AGE: Duration = Duration::from_secs(3 * 24 * 3600);

/// `kopia blob list --json` through `config`, sorted by ID.
fn kopia_blob_list(kopia: &kopia_fixtures::Kopia, config: &Path) -> Vec<BlobInfo> {
    let out = kopia.run_with_config(
        config,
        &config.with_extension("logs"),
        &["blob", "list", "--json"],
    );
    assert!(out.status.success(), "{out:?}");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut blobs: Vec<BlobInfo> = listed
        .as_array()
        .expect("a JSON array")
        .iter()
        .map(|b| BlobInfo {
            id: b["id"].as_str().unwrap().to_owned(),
            length: b["length"].as_u64().unwrap(),
            timestamp: DateTime::parse_from_rfc3339(b["timestamp"].as_str().unwrap())
                .unwrap()
                .with_timezone(&Utc),
        })
        .collect();
    blobs.sort_by(|a, b| a.id.cmp(&b.id));
    blobs
}

#[test]
fn blobs_synced_with_their_times_list_with_kopias_times() {
    let Some(azurite) = require_azurite() else {
        return;
    };
    let Some(kopia) = require_kopia() else { return };
    azurite.create_container(CONTAINER);
    let source = KopiaRepo::create(&kopia, &CreateOptions::default());
    source.snapshot(&source.make_tree(2, 3));
    source.snapshot(&source.make_tree(1, 2));
    source.age_blobs(AGE);
    let storage = azurite.kopia_create_args(CONTAINER, PREFIX);
    let mut sync = vec!["repository".to_owned(), "sync-to".to_owned()];
    sync.extend(storage.iter().cloned());
    sync.push("--times".to_owned());
    source.run_ok(&sync);

    // Kopia's own connection to the copy.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("azure.config");
    let mut connect = vec!["repository".to_owned(), "connect".to_owned()];
    connect.extend(storage);
    connect.extend([
        format!("--cache-directory={}", dir.path().join("cache").display()),
        "--max-list-cache-duration=0s".to_owned(),
        format!("--override-username={USERNAME}"),
        format!("--override-hostname={HOSTNAME}"),
    ]);
    let connected = kopia.run_with_config(&config, &config.with_extension("logs"), &connect);
    assert!(connected.status.success(), "{connected:?}");
    let theirs = kopia_blob_list(&kopia, &config);
    assert!(
        theirs.iter().any(|b| b.id == "kopia.repository"),
        "{theirs:?}"
    );

    let storage = client::load(&config).unwrap().open_storage().unwrap();
    let ours: Vec<BlobInfo> = storage
        .reader()
        .list_blobs("")
        .unwrap()
        .into_iter()
        .map(|b| BlobInfo {
            id: b.id,
            length: b.length,
            timestamp: b.timestamp,
        })
        .collect();
    assert_eq!(ours, theirs);

    // The times are the source's, days before the copy was uploaded (its Last-Modified): a
    // listing without the metadata would differ from Kopia's. Kopia writes the format blob
    // of the copy itself, without Kopiamtime: that one is listed with its Last-Modified.
    let uploaded = Utc::now() - chrono::Duration::hours(1);
    let (format, synced): (Vec<BlobInfo>, Vec<BlobInfo>) =
        theirs.into_iter().partition(|b| b.id == "kopia.repository");
    assert!(format[0].timestamp > uploaded, "{format:?}");
    let mut originals = source.blob_list("");
    originals.retain(|b| b.id != "kopia.repository");
    assert_eq!(synced, originals);
    assert!(
        synced
            .iter()
            .all(|b| b.timestamp < uploaded - chrono::Duration::days(2)),
        "{synced:?}"
    );
}
