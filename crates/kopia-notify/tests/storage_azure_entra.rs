//! An Azure Blob repository reached with an Entra ID service principal (Kopia's `TenantID`,
//! `ClientID`, `ClientSecret`), end to end: real Kopia creates the repository with the
//! account key on an Azurite that checks bearer tokens (`--oauth basic`, HTTPS); a
//! `repository.config` holding only the service principal lists what Kopia lists and sends
//! what Kopia sees, with one token from a fake Entra ID token endpoint (found through
//! `AZURE_AUTHORITY_HOST`, as Azure's SDKs find theirs) for all its requests; a wrong client
//! secret is one error naming the tenant and the container, asked once. A client certificate
//! (`clientCertificate`, PEM made by openssl) signs an assertion the fake verifies with the
//! registered certificate's public key, and real Kopia lists through the same certificate and
//! endpoint (its MSAL's instance discovery reaches the fake through `HTTPS_PROXY`); a
//! certificate the endpoint does not know is one such error.

use std::path::{Path, PathBuf};
use std::process::Output;

use kopia_fixtures::cli::{self, stdout_ok};
use kopia_fixtures::servers_entra::{
    client_certificate_pem, loopback_tls, require_azurite_oauth, token_for, AzuriteOAuth,
    TokenEndpoint,
};
use kopia_fixtures::{require_kopia, KopiaRepo};

const CONTAINER: &str = "kopia-notifier-entra";
const PREFIX: &str = "team-a/host1-";
const TENANT: &str = "4f6a1c2e-0b7d-4e59-9a0c-6b1f2e3d4c5a";
const CLIENT_ID: &str = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a";
const SECRET: &str = "s3cr3t~Value.With_Symbols+/=";

fn kopia_notify(config: &Path, authority: &str, args: &[&str]) -> Output {
    cli::command(env!("CARGO_BIN_EXE_kopia-notify"), config)
        .env("KOPIA_NOTIFICATIONS", "hidden")
        .env("AZURE_AUTHORITY_HOST", authority)
        .args(args)
        .output()
        .expect("run kopia-notify")
}

/// Kopia's `repository.config` with the account key replaced by the service principal of
/// `secret`, in `dir` with Kopia's password file beside it.
fn principal_config(repo: &KopiaRepo, dir: &Path, secret: &str) -> PathBuf {
    // Go's field name, as Kopia writes it (repo/blob/azure/azure_options.go).
    credential_config(repo, dir, ("ClientSecret", secret))
}

/// Kopia's `repository.config` with the account key replaced by the service principal
/// proven by `credential` (a key of Kopia's azure.Options and its value).
fn credential_config(repo: &KopiaRepo, dir: &Path, credential: (&str, &str)) -> PathBuf {
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.config_file()).unwrap()).unwrap();
    let storage = config["storage"]["config"].as_object_mut().unwrap();
    assert!(storage.remove("storageKey").is_some(), "{storage:?}");
    storage.insert("TenantID".into(), TENANT.into());
    storage.insert("ClientID".into(), CLIENT_ID.into());
    storage.insert(credential.0.into(), credential.1.into());
    // Kopia's cache directory is relative to the config file: a copy elsewhere would share
    // one outside the test (and another repository's cached format and indexes).
    config["caching"]["cacheDirectory"] = dir.join("kopia-cache").to_str().unwrap().into();
    let path = dir.join("repository.config");
    std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
    std::fs::copy(
        repo.password_file(),
        dir.join("repository.config.kopia-password"),
    )
    .unwrap();
    path
}

/// Azurite with OAuth, a repository Kopia created in it with two snapshots, and the fake
/// token endpoint of the test's principal.
fn setup() -> Option<(AzuriteOAuth, KopiaRepo, TokenEndpoint)> {
    loopback_tls();
    let azurite = require_azurite_oauth()?;
    let kopia = require_kopia()?;
    azurite.create_container(CONTAINER, TENANT);
    let repo = KopiaRepo::create_on(&kopia, &azurite.kopia_create_args(CONTAINER, PREFIX));
    for _ in 0..2 {
        repo.snapshot(&repo.make_tree(2, 3));
    }
    let endpoint = TokenEndpoint::start(TENANT, CLIENT_ID, SECRET);
    Some((azurite, repo, endpoint))
}

#[test]
fn a_service_principal_lists_and_sends_with_one_token() {
    let Some((azurite, repo, endpoint)) = setup() else {
        return;
    };
    // Azurite does check bearer tokens: none, or one for another audience, is refused.
    assert_eq!(azurite.list_status(CONTAINER, None), 403);
    let foreign = token_for(TENANT, "https://vault.azure.net");
    assert_eq!(
        azurite.list_status(CONTAINER, Some(format!("Bearer {foreign}"))),
        403
    );

    let dir = tempfile::tempdir().unwrap();
    let config = principal_config(&repo, dir.path(), SECRET);
    let authority = endpoint.authority();
    let ours = stdout_ok(kopia_notify(
        &config,
        &authority,
        &["manifest", "list", "--json"],
    ));
    assert_eq!(ours, repo.run_ok(&["manifest", "list", "--json"]));
    assert_eq!(ours.matches("\"type\":\"snapshot\"").count(), 2, "{ours}");
    // Many Blob requests (a list, index and pack reads), one token.
    assert_eq!(endpoint.requests(), 1);

    let id = stdout_ok(kopia_notify(
        &config,
        &authority,
        &["send", "--to=all", "--title=Sent with Entra ID"],
    ));
    let id = id.trim();
    assert_eq!(endpoint.requests(), 2, "one token per process");
    let listed = repo.manifest_list_json(&["type:notification"]);
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], id, "{listed}");
    repo.content_verify();

    let pending = stdout_ok(kopia_notify(&config, &authority, &["list", "--json"]));
    assert!(pending.contains(id), "{pending}");

    // A workload identity: the federated token comes from the file the config names.
    let token_file = dir.path().join("federated-token");
    std::fs::write(&token_file, format!("{SECRET}\n")).unwrap();
    let workload_dir = tempfile::tempdir().unwrap();
    let workload = credential_config(
        &repo,
        workload_dir.path(),
        ("azureFederatedTokenFile", token_file.to_str().unwrap()),
    );
    let before = endpoint.requests();
    let ours = stdout_ok(kopia_notify(
        &workload,
        &authority,
        &["manifest", "list", "--json"],
    ));
    assert_eq!(ours, repo.run_ok(&["manifest", "list", "--json"]));
    assert_eq!(endpoint.requests() - before, 1);
}

#[test]
fn a_wrong_client_secret_is_one_error_naming_tenant_and_container_never_retried() {
    let Some((_azurite, repo, endpoint)) = setup() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wrong = "not-the-secret-hunter2";
    let config = principal_config(&repo, dir.path(), wrong);
    let out = kopia_notify(&config, &endpoint.authority(), &["list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("azure://{CONTAINER}/{PREFIX}"))
            && stderr.contains(&format!("tenant {TENANT} at {}", endpoint.host()))
            && stderr.contains(&format!("client {CLIENT_ID}"))
            && stderr.contains("invalid_client")
            && stderr.contains("denied"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(wrong) && !stderr.contains(SECRET),
        "{stderr}"
    );
    assert_eq!(
        endpoint.requests(),
        1,
        "a refused credential is not retried"
    );
}

#[test]
fn a_client_certificate_lists_like_kopia_and_an_unknown_one_is_refused() {
    let Some((_azurite, repo, _)) = setup() else {
        return;
    };
    let pem = client_certificate_pem("kopia-notifier-app");
    let endpoint = TokenEndpoint::with_certificate(TENANT, CLIENT_ID, SECRET, &pem);
    let authority = endpoint.authority();
    let dir = tempfile::tempdir().unwrap();
    let config = credential_config(&repo, dir.path(), ("clientCertificate", &pem));
    let ours = stdout_ok(kopia_notify(
        &config,
        &authority,
        &["manifest", "list", "--json"],
    ));
    assert_eq!(ours, repo.run_ok(&["manifest", "list", "--json"]));
    assert_eq!(ours.matches("\"type\":\"snapshot\"").count(), 2, "{ours}");
    assert_eq!(endpoint.requests(), 1);

    // Kopia itself, through the same certificate and endpoint (its MSAL asks the public
    // authority for instance discovery first: the fake's proxy answers for it).
    let kopia = require_kopia().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let out = cli::command(kopia.path().to_str().unwrap(), &config)
        .env("AZURE_AUTHORITY_HOST", &authority)
        .env("HTTPS_PROXY", endpoint.proxy_url())
        .env("KOPIA_CHECK_FOR_UPDATES", "false")
        .arg(format!("--log-dir={}", logs.path().display()))
        .args(["manifest", "list", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        stdout_ok(out),
        ours,
        "Kopia lists the same through the certificate"
    );
    assert_eq!(endpoint.requests(), 2);

    // A certificate of the same application's name that Entra ID was never given.
    let stranger = client_certificate_pem("kopia-notifier-app");
    let other_dir = tempfile::tempdir().unwrap();
    let config = credential_config(&repo, other_dir.path(), ("clientCertificate", &stranger));
    let out = kopia_notify(&config, &authority, &["list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("azure://{CONTAINER}/{PREFIX}"))
            && stderr.contains(&format!("tenant {TENANT} at {}", endpoint.host()))
            && stderr.contains(&format!("client {CLIENT_ID}"))
            && stderr.contains("invalid_client")
            && stderr.contains("AADSTS700027")
            && stderr.contains("denied"),
        "{stderr}"
    );
    let key_lines = stranger
        .lines()
        .skip_while(|line| !line.contains("PRIVATE KEY"))
        .skip(1)
        .take(3);
    for line in key_lines {
        assert!(!stderr.contains(line), "{stderr}");
    }
    assert!(!stderr.contains("MII"), "{stderr}");
    assert_eq!(
        endpoint.requests(),
        3,
        "a refused certificate is not retried"
    );
}
