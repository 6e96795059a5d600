//! Tests of the harness itself against real Kopia: each helper does what it claims, so that
//! interop tests built on it judge `kopia-repo`, not the harness.
//! Every test makes its own repositories, so they run in parallel.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};

use kopia_fixtures::{
    require_kopia, CreateOptions, KopiaRepo, BLOCK_HASHES, ENCRYPTIONS, EPOCH_AGE_STEP, HOSTNAME,
    KEY_DERIVATIONS, KOPIA_VERSION, USERNAME,
};
use serde_json::Value;

fn content_format(repo: &KopiaRepo) -> Value {
    repo.status()["contentFormat"].clone()
}

#[test]
fn located_kopia_is_the_pinned_version() {
    let Some(kopia) = require_kopia() else { return };
    let out = std::process::Command::new(kopia.path())
        .arg("--version")
        .output()
        .expect("run kopia --version");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(KOPIA_VERSION));
}

#[test]
fn default_repository_has_kopia_defaults_and_self_contained_config() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());

    let format = content_format(&repo);
    assert_eq!(format["version"], 3);
    assert_eq!(format["hash"], "BLAKE2B-256-128");
    assert_eq!(format["encryption"], "AES256-GCM-HMAC-SHA256");
    assert_eq!(format["indexVersion"], 2);
    assert_eq!(format["epochParameters"]["Enabled"], true);
    assert_eq!(repo.format_blob_json()["keyAlgo"], "scrypt-65536-8-1");
    assert_eq!(repo.format_blob_json()["buildVersion"], KOPIA_VERSION);

    let config: Value = serde_json::from_slice(&fs::read(repo.config_file()).unwrap()).unwrap();
    assert_eq!(config["username"], USERNAME);
    assert_eq!(config["hostname"], HOSTNAME);
    assert_eq!(
        config["storage"]["config"]["path"],
        repo.repo_dir().to_str().unwrap()
    );
    // Kopia persists base64 of the password beside the config file.
    assert_eq!(
        fs::read_to_string(repo.password_file()).unwrap(),
        "a29waWEtaGFybmVzcy1wYXNzd29yZA=="
    );

    let maintenance: Value =
        serde_json::from_str(&repo.run_ok(&["maintenance", "info", "--json"])).unwrap();
    assert_eq!(maintenance["owner"], format!("{USERNAME}@{HOSTNAME}"));
}

#[test]
fn every_block_hash_is_applied_and_readable() {
    let Some(kopia) = require_kopia() else { return };
    for hash in BLOCK_HASHES {
        let repo = KopiaRepo::create(
            &kopia,
            &CreateOptions {
                block_hash: Some(hash),
                ..CreateOptions::default()
            },
        );
        assert_eq!(content_format(&repo)["hash"], hash);
        repo.snapshot(&repo.make_tree(1, 2));
        repo.content_verify();
    }
}

#[test]
fn every_encryption_and_key_derivation_is_applied() {
    let Some(kopia) = require_kopia() else { return };
    for encryption in ENCRYPTIONS {
        let repo = KopiaRepo::create(
            &kopia,
            &CreateOptions {
                encryption: Some(encryption),
                ..CreateOptions::default()
            },
        );
        assert_eq!(content_format(&repo)["encryption"], encryption);
        repo.snapshot(&repo.make_tree(1, 2));
        repo.content_verify();
    }
    for kdf in KEY_DERIVATIONS {
        let repo = KopiaRepo::create(
            &kopia,
            &CreateOptions {
                key_derivation: Some(kdf),
                ..CreateOptions::default()
            },
        );
        assert_eq!(repo.format_blob_json()["keyAlgo"], kdf);
    }
}

#[test]
fn format_and_index_versions_are_applied() {
    let Some(kopia) = require_kopia() else { return };
    // (format version, index version asked, index version expected, epochs enabled)
    let cases = [
        (1, None, 1, false),
        (1, Some(2), 2, false),
        (2, None, 2, true),
        (3, None, 2, true),
    ];
    for (format_version, index_version, expected_index, epochs) in cases {
        let repo = KopiaRepo::create(
            &kopia,
            &CreateOptions {
                format_version: Some(format_version),
                index_version,
                ..CreateOptions::default()
            },
        );
        let format = content_format(&repo);
        let case = format!("format {format_version}, index {index_version:?}");
        assert_eq!(format["version"], format_version, "{case}");
        assert_eq!(format["indexVersion"], expected_index, "{case}");
        assert_eq!(
            format["epochParameters"]["Enabled"]
                .as_bool()
                .unwrap_or(false),
            epochs,
            "{case}"
        );
        let index_blobs = repo.blob_list(if epochs { "xn0_" } else { "n" });
        assert!(!index_blobs.is_empty(), "{case}: no index blob");
    }
}

#[test]
fn snapshot_manifest_and_policy_helpers() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());

    let tree = repo.make_tree(3, 4);
    let id = repo.snapshot(&tree);

    let listed = repo.manifest_list_json(&["type:snapshot"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["id"], id.as_str());
    assert_eq!(listed[0]["labels"]["username"], USERNAME);
    assert_eq!(listed[0]["labels"]["hostname"], HOSTNAME);

    let manifest: Value = serde_json::from_slice(&repo.manifest_show(&id)).unwrap();
    assert_eq!(manifest["source"]["path"], tree.to_str().unwrap());
    assert_eq!(manifest["rootEntry"]["summ"]["files"], 12);
    assert_eq!(manifest["rootEntry"]["summ"]["dirs"], 4);

    repo.set_global_policy(&["--compression=zstd"]);
    let global = repo.manifest_list_json(&["type:policy", "policyType:global"]);
    let global_id = global[0]["id"].as_str().unwrap();
    let policy: Value = serde_json::from_slice(&repo.manifest_show(global_id)).unwrap();
    assert_eq!(policy["compression"]["compressorName"], "zstd");

    let second = repo.snapshot(&repo.make_tree(1, 1));
    assert_ne!(second, id);
    repo.snapshot_verify();
    repo.content_verify();
}

#[test]
fn run_reports_failures_and_run_ok_panics_with_output() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());

    assert!(!repo
        .run(&["manifest", "show", "0123456789abcdef"])
        .status
        .success());
    let panic = catch_unwind(AssertUnwindSafe(|| repo.run_ok(&["no-such-command"])))
        .expect_err("run_ok must panic on failure");
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("kopia no-such-command failed"),
        "{message}"
    );
    assert!(message.contains("--- stderr"), "{message}");
}

#[test]
fn age_blobs_moves_every_timestamp_back() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    let before = repo.blob_list("");
    repo.age_blobs(EPOCH_AGE_STEP);
    let after = repo.blob_list("");
    assert_eq!(before.len(), after.len());
    let step = chrono::Duration::from_std(EPOCH_AGE_STEP).unwrap();
    for (b, a) in before.iter().zip(&after) {
        assert_eq!(a.id, b.id);
        assert_eq!(a.timestamp, b.timestamp - step, "{}", a.id);
    }
}

fn ids(repo: &KopiaRepo, prefix: &str) -> Vec<String> {
    repo.blob_list(prefix).into_iter().map(|b| b.id).collect()
}

#[test]
fn epochs_advance_one_at_a_time_then_compact_checkpoint_and_clean_up() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    repo.tune_epochs(7);
    assert_eq!(repo.write_epoch(), 0);
    assert!(ids(&repo, "xe").is_empty());

    for epoch in 1..=9 {
        assert_eq!(repo.advance_epoch(), epoch);
        assert!(ids(&repo, "xe").contains(&format!("xe{epoch}")));
        // Epoch N is settled, hence compacted, once the write epoch reaches N + 2; quick
        // maintenance compacts before advancing, so xs0 appears with the advance to 3.
        let compacted = ids(&repo, "xs");
        for settled in 0..epoch.saturating_sub(2) {
            let prefix = format!("xs{settled}_");
            assert!(
                compacted.iter().any(|id| id.starts_with(&prefix)),
                "epoch {epoch}: no {prefix} in {compacted:?}"
            );
        }
        assert!(
            ids(&repo, "xr").is_empty(),
            "quick maintenance made a range"
        );
    }
    // Quick maintenance cleans nothing up: every uncompacted epoch is still there.
    assert!(!ids(&repo, "xn0_").is_empty());
    assert!(!ids(&repo, "xn6_").is_empty());

    repo.compact_epochs();
    let ranges = ids(&repo, "xr");
    assert!(
        ranges.iter().any(|id| id.starts_with("xr0_7_")),
        "no range checkpoint of epochs 0..=7: {ranges:?}"
    );
    // Uncompacted blobs of every epoch compacted by an earlier round are deleted.
    for epoch in 0..=6 {
        let prefix = format!("xn{epoch}_");
        assert!(ids(&repo, &prefix).is_empty(), "{prefix} blobs remain");
    }
    assert!(!ids(&repo, "xn9_").is_empty());
    // Markers below the previous epoch are deleted.
    assert_eq!(ids(&repo, "xe"), ["xe8", "xe9"]);
    assert_eq!(repo.write_epoch(), 9);
    repo.content_verify();
    repo.snapshot_verify();
}

#[test]
fn deleted_snapshot_is_dropped_behind_a_deletion_watermark() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    let id = repo.snapshot(&repo.make_tree(2, 3));
    assert!(!repo.blob_list("p").is_empty());
    assert!(repo.blob_list("xw").is_empty());

    let deleted_at = chrono::Utc::now().timestamp();
    repo.delete_snapshot(&id);
    assert_eq!(
        repo.manifest_list_json(&["type:snapshot"]),
        Value::Array(vec![])
    );
    repo.maintenance_full();

    let watermarks = ids(&repo, "xw");
    assert_eq!(watermarks.len(), 1, "{watermarks:?}");
    let at: i64 = watermarks[0].strip_prefix("xw").unwrap().parse().unwrap();
    assert!(
        at >= deleted_at,
        "watermark {at} before deletion {deleted_at}"
    );
    // The snapshot's file contents were garbage, dropped, and their packs deleted.
    assert!(repo.blob_list("p").is_empty());
    repo.content_verify();
}
