//! Repositories behind a WebDAV server, end to end: real Kopia creates one on `rclone serve
//! webdav` (loopback, basic auth; plain HTTP, and TLS with a certificate pinned by fingerprint)
//! and snapshots into it; `kopia-notify` opens it through the `repository.config` Kopia wrote,
//! lists manifests exactly as Kopia does, writes a notification Kopia sees, and Kopia's full
//! content verification and full maintenance still pass. The directory the server serves is
//! checked to be Kopia's sharded `.f` layout, with our blobs in their shards.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use kopia_fixtures::cli::{self, stdout_ok};
use kopia_fixtures::servers_webdav::{
    require_rclone, TestCertificate, WebdavServer, WEBDAV_PASSWORD, WEBDAV_USER,
};
use kopia_fixtures::shared_repo::{
    assert_refreshes_read_only_what_changed, kopia_repository_with_two_snapshots, snapshot_count,
    SharedRepo,
};
use kopia_fixtures::{require_kopia, KopiaRepo};
use kopia_repo::client;
use kopia_repo::storage::sharded::{blob_file_path, ShardingParameters};
use tempfile::TempDir;

fn kopia_notify(config: &Path, args: &[&str]) -> Output {
    cli::output(env!("CARGO_BIN_EXE_kopia-notify"), config, args)
}

/// A directory served over WebDAV and the repository Kopia created in it, with two snapshots.
struct Setup {
    served: TempDir,
    server: WebdavServer,
    repo: KopiaRepo,
    rclone: PathBuf,
}

fn kopia_repository_over_webdav() -> Option<Setup> {
    let rclone = require_rclone()?;
    let kopia = require_kopia()?;
    let served = tempfile::tempdir().unwrap();
    let server = WebdavServer::start(&rclone, served.path(), None);
    let repo = kopia_repository_with_two_snapshots(
        &kopia,
        &[
            "webdav".to_owned(),
            format!("--url={}", server.url()),
            format!("--webdav-username={WEBDAV_USER}"),
            format!("--webdav-password={WEBDAV_PASSWORD}"),
        ],
    );
    Some(Setup {
        served,
        server,
        repo,
        rclone,
    })
}

/// Rewrites `storage.config` of Kopia's `repository.config` with `edit`.
fn edit_storage_config(config: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(config).unwrap()).unwrap();
    edit(&mut json["storage"]["config"]);
    fs::write(config, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
}

/// Every file under `root`, relative, with `/` separators.
fn files_under(root: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                let relative = entry.path().strip_prefix(root).unwrap().to_owned();
                found.insert(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    found
}

/// The served directory is Kopia's layout: `.shards` plus one `<shards>/<rest>.f` per blob
/// Kopia lists, nothing else (no temporary files left by our writes).
fn assert_kopia_layout(repo: &KopiaRepo, served: &Path) {
    let shards = fs::read(served.join(".shards")).unwrap();
    let sharding = ShardingParameters::parse(&shards).unwrap();
    assert_eq!(sharding.default_shards, vec![1, 3]);
    let mut expected: BTreeSet<String> = repo
        .blob_list("")
        .into_iter()
        .map(|blob| {
            let (directories, file) = blob_file_path(&sharding, &blob.id).unwrap();
            let mut parts: Vec<String> = directories.iter().map(|d| d.to_string()).collect();
            parts.push(file);
            parts.join("/")
        })
        .collect();
    expected.insert(".shards".to_owned());
    assert_eq!(files_under(served), expected);
}

/// Ours equals Kopia's; what we send Kopia lists; Kopia verifies and maintains it after.
fn assert_shared_with_kopia(repo: &KopiaRepo, title: &str) {
    let config = repo.config_file();
    let shared = SharedRepo::new(repo, |args| kopia_notify(&config, args));
    let ours = shared.assert_same_manifests();
    assert!(snapshot_count(&ours) >= 2, "{ours}");
    let (id, _) = shared.send_notification("warning", title);
    shared.assert_kopia_verifies_and_maintains(&[&id], || repo.maintenance_full());
}

#[test]
fn kopia_and_we_share_a_repository_over_webdav() {
    let Some(setup) = kopia_repository_over_webdav() else {
        return;
    };
    let repo = &setup.repo;
    let before: BTreeSet<String> = repo.blob_list("").into_iter().map(|b| b.id).collect();
    assert_shared_with_kopia(repo, "Backup failed over WebDAV");
    assert_kopia_layout(repo, setup.served.path());

    // Our send added blobs (a pack and an index at least), and they sit in their shards.
    let after: BTreeSet<String> = repo.blob_list("").into_iter().map(|b| b.id).collect();
    assert!(after.difference(&before).count() >= 2, "{after:?}");

    // Our listing of the tree is Kopia's.
    let client = client::load(&repo.config_file()).unwrap();
    let storage = client.open_storage().unwrap();
    let ours: BTreeSet<String> = storage
        .reader()
        .list_blobs("")
        .unwrap()
        .into_iter()
        .map(|b| b.id)
        .collect();
    assert_eq!(ours, after);
    assert_eq!(
        storage.reader().describe(),
        format!("webdav:{}", setup.server.url())
    );
}

#[test]
fn a_refused_password_is_access_denied_naming_the_url() {
    let Some(setup) = kopia_repository_over_webdav() else {
        return;
    };
    let config = setup.repo.config_file();
    edit_storage_config(&config, |c| c["password"] = "wrong-password".into());
    let started = std::time::Instant::now();
    let out = kopia_notify(&config, &["manifest", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("denied") && stderr.contains(&setup.server.url()),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-password"), "{stderr}");
    // Not retried: retries back off for seconds.
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
}

#[test]
fn a_pinned_certificate_is_trusted_and_any_other_refused() {
    let Some(mut setup) = kopia_repository_over_webdav() else {
        return;
    };
    // The same directory, now served over TLS with a self-signed certificate Kopia and we
    // both pin (Kopia has no CLI flag for it: KopiaUI and hand-edited configs set it).
    setup.server.kill();
    let certificate = TestCertificate::generate().expect("openssl makes a certificate");
    let tls = WebdavServer::start(&setup.rclone, setup.served.path(), Some(&certificate));
    let config = setup.repo.config_file();
    edit_storage_config(&config, |c| {
        c["url"] = tls.url().into();
        c["trustedServerCertificateFingerprint"] = certificate.fingerprint.to_uppercase().into();
    });
    assert!(tls.url().starts_with("https://"));
    let tree = setup.repo.make_tree(1, 1);
    setup.repo.snapshot(&tree);
    assert_shared_with_kopia(&setup.repo, "Backup failed over pinned TLS");
    assert_kopia_layout(&setup.repo, setup.served.path());

    let other = TestCertificate::generate().unwrap();
    edit_storage_config(&config, |c| {
        c["trustedServerCertificateFingerprint"] = other.fingerprint.clone().into();
    });
    let out = kopia_notify(&config, &["manifest", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("127.0.0.1")
            && stderr.contains(&certificate.fingerprint)
            && stderr.contains(&other.fingerprint),
        "{stderr}"
    );
    // Without a pin the self-signed certificate is not trusted either.
    edit_storage_config(&config, |c| {
        c.as_object_mut()
            .unwrap()
            .remove("trustedServerCertificateFingerprint");
    });
    let out = kopia_notify(&config, &["manifest", "list", "--json"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn a_read_only_open_writes_no_shards_file() {
    let Some(setup) = kopia_repository_over_webdav() else {
        return;
    };
    let config = setup.repo.config_file();
    let theirs = setup.repo.run_ok(&["manifest", "list", "--json"]);
    // A tree without `.shards`: the layout then comes from `dirShards`.
    fs::remove_file(setup.served.path().join(".shards")).unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&fs::read(&config).unwrap()).unwrap();
    json["readonly"] = true.into();
    json["storage"]["config"]["dirShards"] = serde_json::json!([1, 3]);
    fs::write(&config, serde_json::to_vec(&json).unwrap()).unwrap();

    let ours = stdout_ok(kopia_notify(&config, &["manifest", "list", "--json"]));
    assert_eq!(ours, theirs);
    let out = kopia_notify(&config, &["send", "--to=all", "--title", "refused"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(!setup.served.path().join(".shards").exists());
}

#[test]
fn an_unchanged_tree_refreshes_with_one_listing_and_no_reads() {
    let Some(setup) = kopia_repository_over_webdav() else {
        return;
    };
    // One listing of one prefix: a PROPFIND of each shard level compatible with it.
    assert_refreshes_read_only_what_changed(&setup.repo);
}
