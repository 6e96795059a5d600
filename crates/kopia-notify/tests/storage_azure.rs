//! Repositories in an Azure Blob Storage container, end to end: real Kopia creates one on a
//! loopback Azurite (reached through Kopia's own `storageAccount` + `storageDomain`
//! concatenation, see `AzuriteServer`) and snapshots into it; `kopia-notify` opens it through
//! the `repository.config` Kopia wrote, lists manifests exactly as Kopia does, sends a
//! notification Kopia sees, and Kopia's full content verification and full maintenance still
//! pass afterwards.

use std::path::Path;
use std::process::Output;

use kopia_fixtures::cli;
use kopia_fixtures::servers_objects::{require_azurite, AzuriteServer};
use kopia_fixtures::shared_repo::{
    edited_config, kopia_repository_with_two_snapshots, our_blob_ids, snapshot_count, CountedStore,
    SharedRepo,
};
use kopia_fixtures::{require_kopia, KopiaRepo};

const CONTAINER: &str = "kopia-notifier-test";
/// Not ending in `/` and with a `/` inside: Kopia concatenates, it does not join.
const PREFIX: &str = "team-a/host1-";

fn kopia_notify(config: &Path, args: &[&str]) -> Output {
    cli::output(env!("CARGO_BIN_EXE_kopia-notify"), config, args)
}

/// A repository Kopia created in the Azurite container, with two snapshots.
fn kopia_repository_on(azurite: &AzuriteServer) -> Option<KopiaRepo> {
    let kopia = require_kopia()?;
    azurite.create_container(CONTAINER);
    Some(kopia_repository_with_two_snapshots(
        &kopia,
        &azurite.kopia_create_args(CONTAINER, PREFIX),
    ))
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
    let shared = SharedRepo::new(&repo, |args| kopia_notify(&config, args));
    assert_eq!(snapshot_count(&shared.assert_same_manifests()), 2);
    let (id, _) = shared.send_notification("warning", "Backup failed on Azure");
    shared.assert_kopia_verifies_and_maintains(&[&id], || repo.maintenance_full());

    // Every blob of the container is `<prefix><blob ID>`, and we list the blobs Kopia lists.
    let theirs: Vec<String> = repo.blob_list("").into_iter().map(|b| b.id).collect();
    assert!(theirs.iter().any(|id| id == "kopia.repository"));
    let expected: Vec<String> = theirs.iter().map(|id| format!("{PREFIX}{id}")).collect();
    assert_eq!(azurite.blob_names(CONTAINER), expected);
    assert_eq!(our_blob_ids(&repo), theirs);
}

#[test]
fn an_unchanged_container_refreshes_with_one_request_and_no_reads() {
    let Some(azurite) = require_azurite() else {
        return;
    };
    let Some(repo) = kopia_repository_on(&azurite) else {
        return;
    };
    let mut store = CountedStore::open(&repo);
    let served = azurite.requests_served();
    store.assert_unchanged_refresh_lists_once();
    // Counted at the server too: one List Blobs request (under 5,000 index blobs a page).
    assert_eq!(azurite.requests_served() - served, 1);

    repo.snapshot(&repo.make_tree(1, 1));
    store.assert_changed_refresh_reads_only_what_changed();
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
    let shared = SharedRepo::new(&repo, |args| kopia_notify(&config, args));
    shared.assert_same_manifests();
    shared.put_manifest("sasTest", "written with a SAS token");

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
