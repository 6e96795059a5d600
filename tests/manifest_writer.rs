//! Our manifest writer judged by real Kopia: what we put and delete is what Kopia sees, and
//! after our writes Kopia's verification and maintenance (epoch advancement and compaction
//! included) stay happy and keep every live entry we wrote — in repositories Kopia made, in
//! repositories we made, and while Kopia snapshots into the same repository.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo, HOSTNAME, PASSWORD, USERNAME};
use kopia_repo::content::writer::SessionOwner;
use kopia_repo::manifest::{Labels, ManifestStore, NewManifest};
use kopia_repo::repository::Repository;
use serde_json::value::RawValue;
use serde_json::{json, Value};

const OURS: &str = "notifierTest";

fn owner() -> SessionOwner {
    SessionOwner {
        username: USERNAME.into(),
        hostname: HOSTNAME.into(),
    }
}

fn manifest(n: usize, extra: &str) -> NewManifest {
    NewManifest {
        labels: Labels::from([
            ("type".to_string(), OURS.to_string()),
            ("n".to_string(), n.to_string()),
        ]),
        data: RawValue::from_string(
            json!({"n": n, "extra": extra, "text": "Ünïcödé <b>&</b>"}).to_string(),
        )
        .unwrap(),
    }
}

struct Ours {
    repository: Repository,
    store: ManifestStore,
}

impl Ours {
    fn open(repo: &KopiaRepo) -> Ours {
        let repository = Repository::open_filesystem(&repo.repo_dir(), PASSWORD).unwrap();
        let mut store = repository.manifest_store();
        store.refresh().unwrap();
        Ours { repository, store }
    }

    fn write(&mut self, puts: &[NewManifest], deletes: &[String]) -> Vec<String> {
        let writer = self.repository.content_writer(owner()).unwrap();
        self.store.write(&writer, puts, deletes).unwrap()
    }

    fn ids(&mut self) -> BTreeSet<String> {
        self.store.refresh().unwrap();
        let filter = Labels::from([("type".to_string(), OURS.to_string())]);
        self.store
            .find(&filter)
            .iter()
            .map(|e| e.id.clone())
            .collect()
    }
}

fn kopia_ids(repo: &KopiaRepo) -> BTreeSet<String> {
    repo.manifest_list_json(&[&format!("type:{OURS}")])
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn blob_count(repo: &KopiaRepo, prefix: &str) -> usize {
    repo.blob_list(prefix).len()
}

#[test]
fn what_we_put_and_delete_is_what_kopia_sees() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    let mut ours = Ours::open(&repo);

    let (packs, indexes) = (blob_count(&repo, "q"), blob_count(&repo, "xn"));
    let batch = ours.write(&[manifest(1, "a"), manifest(2, "b")], &[]);
    assert_eq!(blob_count(&repo, "q"), packs + 1, "a batch is one pack");
    assert_eq!(
        blob_count(&repo, "xn"),
        indexes + 1,
        "a batch is one index blob"
    );
    assert!(
        repo.blob_list("s").is_empty(),
        "the session marker is removed"
    );
    let single = ours.write(&[manifest(3, "c")], &[]);

    let listed = repo.manifest_list_json(&[&format!("type:{OURS}")]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 3);
    for (entry, n) in listed.iter().zip([1, 2, 3]) {
        assert_eq!(entry["labels"], json!({"type": OURS, "n": n.to_string()}));
        let id = entry["id"].as_str().unwrap();
        let shown: Value = serde_json::from_slice(&repo.manifest_show(id)).unwrap();
        let extra = ["a", "b", "c"][n - 1];
        assert_eq!(
            shown,
            json!({"n": n, "extra": extra, "text": "Ünïcödé <b>&</b>"})
        );
    }

    ours.write(&[], &[batch[0].clone()]);
    assert_eq!(
        kopia_ids(&repo),
        BTreeSet::from([batch[1].clone(), single[0].clone()])
    );

    repo.run_ok(&[
        "manifest",
        "delete",
        "--dangerous-commands=enabled",
        &single[0],
    ]);
    assert_eq!(ours.ids(), BTreeSet::from([batch[1].clone()]));

    // Putting the same manifest again is idempotent: a retry never duplicates.
    assert_eq!(ours.write(&[manifest(2, "b")], &[]), vec![batch[1].clone()]);
    assert_eq!(kopia_ids(&repo).len(), 1);
}

/// Puts, snapshots, full verification and several rounds of full maintenance.
fn check_writes_survive_maintenance(repo: &KopiaRepo) {
    let mut ours = Ours::open(repo);
    let first = ours.write(
        &(0..20).map(|n| manifest(n, "batch")).collect::<Vec<_>>(),
        &[],
    );
    let tree = repo.make_tree(2, 3);
    repo.snapshot(&tree);
    let mut expected: BTreeSet<String> = first.iter().cloned().collect();
    for n in 20..25 {
        expected.extend(ours.write(&[manifest(n, "single")], &[]));
    }
    ours.write(&[], &first[..5]);
    for id in &first[..5] {
        expected.remove(id);
    }

    for _ in 0..2 {
        repo.maintenance_full();
        repo.content_verify();
        repo.snapshot_verify();
    }
    assert_eq!(kopia_ids(repo), expected);
    assert_eq!(ours.ids(), expected);
}

macro_rules! maintenance_matrix {
    ($($name:ident => $options:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            let Some(kopia) = require_kopia() else { return };
            check_writes_survive_maintenance(&KopiaRepo::create(&kopia, &$options));
        }
    )*};
}

maintenance_matrix! {
    maintenance_default_format => CreateOptions::default(),
    maintenance_format_v1_index_v1 => CreateOptions { format_version: Some(1), ..Default::default() },
    maintenance_format_v1_index_v2 => CreateOptions {
        format_version: Some(1),
        index_version: Some(2),
        ..Default::default()
    },
    maintenance_format_v2 => CreateOptions { format_version: Some(2), ..Default::default() },
    maintenance_chacha_blake3 => CreateOptions {
        encryption: Some("CHACHA20-POLY1305-HMAC-SHA256"),
        block_hash: Some("BLAKE3-256"),
        ..Default::default()
    },
    maintenance_hmac_sha3_224 => CreateOptions {
        block_hash: Some("HMAC-SHA3-224"),
        key_derivation: Some("pbkdf2-sha256-600000"),
        ..Default::default()
    },
}

#[test]
fn repository_created_by_us_is_kopias_to_use() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::connect_to_new(&kopia, |path| {
        Repository::create_filesystem(path, PASSWORD, &owner()).unwrap();
    });
    let status = repo.status();
    let content_format = &status["contentFormat"];
    assert_eq!(content_format["hash"], "BLAKE2B-256-128", "{status}");
    assert_eq!(content_format["encryption"], "AES256-GCM-HMAC-SHA256");
    assert_eq!(content_format["version"], 3);
    assert_eq!(content_format["indexVersion"], 2);
    assert_eq!(content_format["epochParameters"]["Enabled"], true);
    assert_eq!(repo.format_blob_json()["keyAlgo"], "scrypt-65536-8-1");
    let maintenance = repo.run_ok(&["maintenance", "info", "--json"]);
    let maintenance: Value = serde_json::from_str(&maintenance).unwrap();
    assert_eq!(maintenance["owner"], format!("{USERNAME}@{HOSTNAME}"));

    check_writes_survive_maintenance(&repo);
}

#[test]
fn writes_survive_epoch_advancement_and_compaction() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    repo.tune_epochs(2);
    let mut ours = Ours::open(&repo);
    let mut expected = BTreeSet::new();
    for round in 0..6 {
        expected.extend(ours.write(&[manifest(round, "epoch")], &[]));
        repo.advance_epoch();
    }
    expected.extend(ours.write(&[manifest(100, "late")], &[]));
    repo.compact_epochs();
    repo.compact_epochs();
    assert!(!repo.blob_list("xs").is_empty() && !repo.blob_list("xr").is_empty());
    repo.content_verify();
    repo.snapshot_verify();
    assert_eq!(kopia_ids(&repo), expected);
    assert_eq!(ours.ids(), expected);
}

/// Kopia snapshots in a loop while we put 500 manifests and delete 100 of them.
#[test]
fn concurrent_with_kopia_snapshots() {
    let Some(kopia) = require_kopia() else { return };
    let repo = Arc::new(KopiaRepo::create(&kopia, &CreateOptions::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let snapshotter = {
        let (repo, stop) = (Arc::clone(&repo), Arc::clone(&stop));
        std::thread::spawn(move || {
            let mut snapshots = 0;
            while !stop.load(Ordering::Relaxed) {
                let tree = repo.make_tree(1, 2);
                repo.snapshot(&tree);
                snapshots += 1;
            }
            snapshots
        })
    };

    let mut ours = Ours::open(&repo);
    let mut expected = BTreeSet::new();
    let mut written = Vec::new();
    for n in 0..500 {
        let id = ours.write(&[manifest(n, "concurrent")], &[]).remove(0);
        written.push(id.clone());
        expected.insert(id);
        if n % 5 == 4 {
            let victim = written[n - 2].clone();
            ours.write(&[], std::slice::from_ref(&victim));
            expected.remove(&victim);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let snapshots = snapshotter.join().unwrap();
    assert!(
        snapshots >= 2,
        "Kopia ran only {snapshots} snapshots meanwhile"
    );

    assert_eq!(expected.len(), 400);
    assert_eq!(kopia_ids(&repo), expected);
    assert_eq!(ours.ids(), expected);
    repo.content_verify();
    repo.snapshot_verify();
    repo.maintenance_full();
    assert_eq!(kopia_ids(&repo), expected);
}
