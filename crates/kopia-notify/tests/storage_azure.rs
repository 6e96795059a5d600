//! Repositories in an Azure Blob Storage container, end to end: real Kopia creates one on a
//! loopback Azurite (reached through Kopia's own `storageAccount` + `storageDomain`
//! concatenation, see `AzuriteServer`) and snapshots into it; `kopia-notify` opens it through
//! the `repository.config` Kopia wrote, lists manifests exactly as Kopia does, sends a
//! notification Kopia sees, and Kopia's full content verification and full maintenance still
//! pass afterwards.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use kopia_fixtures::cli::{self, stdout_ok};
use kopia_fixtures::servers_objects::{require_azurite, AzuriteServer};
use kopia_fixtures::{require_kopia, KopiaRepo, PASSWORD};
use kopia_repo::client;
use kopia_repo::repository::Repository;
use kopia_repo::storage::counting::CountingStorage;
use kopia_repo::storage::BlobWriter;

const CONTAINER: &str = "kopia-notifier-test";
/// Not ending in `/` and with a `/` inside: Kopia concatenates, it does not join.
const PREFIX: &str = "team-a/host1-";

fn kopia_notify(config: &Path, args: &[&str]) -> Output {
    cli::command(env!("CARGO_BIN_EXE_kopia-notify"), config)
        .args(args)
        .output()
        .expect("run kopia-notify")
}

/// A repository Kopia created in the Azurite container, with two snapshots.
fn kopia_repository_on(azurite: &AzuriteServer) -> Option<KopiaRepo> {
    let kopia = require_kopia()?;
    azurite.create_container(CONTAINER);
    let repo = KopiaRepo::create_on(&kopia, &azurite.kopia_create_args(CONTAINER, PREFIX));
    for _ in 0..2 {
        let tree = repo.make_tree(2, 3);
        repo.snapshot(&tree);
    }
    Some(repo)
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
fn kopia_and_we_share_a_repository_in_an_azure_container() {
    let Some(azurite) = require_azurite() else {
        return;
    };
    let Some(repo) = kopia_repository_on(&azurite) else {
        return;
    };
    let config = repo.config_file();
    let ours = stdout_ok(kopia_notify(&config, &["manifest", "list", "--json"]));
    assert_eq!(ours, kopia_manifest_list(&repo));
    assert_eq!(ours.matches("\"type\":\"snapshot\"").count(), 2, "{ours}");

    // What we send, Kopia lists; the repository stays one Kopia verifies and maintains.
    let out = kopia_notify(
        &config,
        &[
            "send",
            "--severity=warning",
            "--to=all",
            "--title=Backup failed on Azure",
        ],
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
    let ours = stdout_ok(kopia_notify(&config, &["manifest", "list", "--json"]));
    assert_eq!(ours, kopia_manifest_list(&repo));
    assert!(ours.contains(&id));

    // Every blob of the container is `<prefix><blob ID>`, and we list the blobs Kopia lists.
    let theirs: Vec<String> = repo.blob_list("").into_iter().map(|b| b.id).collect();
    assert!(theirs.iter().any(|id| id == "kopia.repository"));
    let expected: Vec<String> = theirs.iter().map(|id| format!("{PREFIX}{id}")).collect();
    assert_eq!(azurite.blob_names(CONTAINER), expected);
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
fn an_unchanged_container_refreshes_with_one_request_and_no_reads() {
    let Some(azurite) = require_azurite() else {
        return;
    };
    let Some(repo) = kopia_repository_on(&azurite) else {
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
    let served = azurite.requests_served();
    let idle = store.refresh().unwrap();
    let counts = counting.take_counts();
    assert!(!idle.changed);
    assert_eq!((counts.lists, counts.gets), (1, 0), "{counts:?}");
    // Counted at the server too: one List Blobs request (under 5,000 index blobs a page).
    assert_eq!(azurite.requests_served() - served, 1);

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
fn a_wrong_key_is_an_error_naming_container_and_account_and_not_retried() {
    let Some(azurite) = require_azurite() else {
        return;
    };
    let Some(repo) = kopia_repository_on(&azurite) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let config = edited_config(&repo, dir.path(), |storage| {
        // Valid base64 of 32 bytes, not the account's key.
        storage["storageKey"] = "d3JvbmcgYWNjb3VudCBrZXkgd3Jvbmcga2V5ISEhISE=".into();
    });
    let served = azurite.requests_served();
    let out = kopia_notify(&config, &["manifest", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("azure://{CONTAINER}/{PREFIX}"))
            && stderr.contains(&format!("account {}", AzuriteServer::ACCOUNT))
            && stderr.contains("denied")
            && !stderr.contains(azurite.key()),
        "{stderr}"
    );
    assert_eq!(
        azurite.requests_served() - served,
        1,
        "a refusal is not retried"
    );
}

#[test]
fn a_server_that_went_away_is_an_error_naming_the_container_and_host() {
    let Some(mut azurite) = require_azurite() else {
        return;
    };
    let Some(repo) = kopia_repository_on(&azurite) else {
        return;
    };
    let address = azurite.address();
    azurite.stop();
    let out = kopia_notify(&repo.config_file(), &["manifest", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("azure://{CONTAINER}/{PREFIX}")) && stderr.contains(&address),
        "{stderr}"
    );
}

#[test]
fn a_sas_token_reads_and_writes_and_its_signature_is_never_shown() {
    let Some(mut azurite) = require_azurite() else {
        return;
    };
    let Some(repo) = kopia_repository_on(&azurite) else {
        return;
    };
    let token = azurite.sas_token();
    let signature = token.rsplit_once("sig=").unwrap().1.to_owned();
    let dir = tempfile::tempdir().unwrap();
    let config = edited_config(&repo, dir.path(), |storage| {
        storage.as_object_mut().unwrap().remove("storageKey");
        storage["sasToken"] = token.clone().into();
    });
    let ours = stdout_ok(kopia_notify(&config, &["manifest", "list", "--json"]));
    assert_eq!(ours, kopia_manifest_list(&repo));
    let payload = dir.path().join("payload.json");
    std::fs::write(&payload, r#"{"title": "written with a SAS token"}"#).unwrap();
    let id = stdout_ok(kopia_notify(
        &config,
        &[
            "manifest",
            "put",
            "--label=type:sasTest",
            &format!("--file={}", payload.display()),
        ],
    ));
    let listed = repo.manifest_list_json(&["type:sasTest"]);
    assert_eq!(listed[0]["id"], id.trim(), "{listed}");

    azurite.stop();
    let out = kopia_notify(&config, &["manifest", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("azure://{CONTAINER}/{PREFIX}")) && !stderr.contains(&signature),
        "{stderr}"
    );
    // The retries before the error were logged, and their lines name no signature either.
    assert!(stderr.contains("retrying"), "{stderr}");
}
