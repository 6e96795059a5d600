//! Point-in-time views of an Azure repository, end to end: Azurite keeps no blob versions,
//! so a versioning proxy in front of it (`servers_azure_versions`) records them as Azure does.
//! Real Kopia writes history through it around a moment T; a connection Kopia makes with
//! `--point-in-time=T` shows through `kopia-notify` exactly what Kopia shows, and every write
//! through it is refused with one line, writing nothing. A container without versions
//! (Azurite itself) is refused by name.

use std::path::{Path, PathBuf};
use std::process::Output;

use chrono::Utc;
use kopia_fixtures::cli::{self, stdout_ok};
use kopia_fixtures::point_in_time::{
    assert_lists_like_kopia, assert_refused, assert_view_lists_once, write_history, History,
};
use kopia_fixtures::servers_azure_versions::VersioningProxy;
use kopia_fixtures::servers_objects::require_azurite;
use kopia_fixtures::{require_kopia, Kopia, KopiaRepo, HOSTNAME, USERNAME};

const PREFIX: &str = "team-a/host1-";

fn kopia_notify(config: &Path, args: &[&str]) -> Output {
    cli::command(env!("CARGO_BIN_EXE_kopia-notify"), config)
        .env("KOPIA_NOTIFICATIONS", "hidden")
        .args(args)
        .output()
        .expect("run kopia-notify")
}

/// `kopia repository connect <storage_args>` into a config of its own in `dir` (the
/// point in time travels in the from-config token); the config and Kopia's output.
fn connect(kopia: &Kopia, storage_args: &[String], dir: &Path) -> (PathBuf, Output) {
    let config = dir.join("pit.config");
    let mut args = vec!["repository".to_owned(), "connect".to_owned()];
    args.extend_from_slice(storage_args);
    args.extend([
        format!("--cache-directory={}", dir.join("cache").display()),
        "--max-list-cache-duration=0s".to_owned(),
        format!("--override-username={USERNAME}"),
        format!("--override-hostname={HOSTNAME}"),
    ]);
    let out = kopia.run_with_config(&config, &config.with_extension("logs"), &args);
    (config, out)
}

#[test]
fn a_point_in_time_connection_shows_the_past_and_is_never_written() {
    let Some(azurite) = require_azurite() else {
        return;
    };
    let Some(kopia) = require_kopia() else { return };
    let container = "kopia-notifier-pit";
    azurite.create_container(container);
    let proxy = VersioningProxy::start(&azurite);
    let args = proxy.kopia_args(&azurite, container, PREFIX, None);
    let repo = KopiaRepo::create_on(&kopia, &args);
    let History {
        at,
        old_snapshot,
        before: sent_before,
        after: sent_after,
    } = write_history(&repo, kopia_notify);
    let (a, b) = (sent_before.as_str(), sent_after.as_str());
    let live = repo.config_file();

    let dir = tempfile::tempdir().unwrap();
    let (pit, connected) = connect(
        &kopia,
        &proxy.kopia_args(&azurite, container, PREFIX, Some(&at)),
        dir.path(),
    );
    assert!(connected.status.success(), "{connected:?}");
    let ours = assert_lists_like_kopia(&kopia, &pit, &at, kopia_notify);
    assert_eq!(ours.matches("\"type\":\"snapshot\"").count(), 2, "{ours}");
    assert!(ours.contains(&old_snapshot) && !ours.contains(b), "{ours}");
    let now = stdout_ok(kopia_notify(&live, &["manifest", "list", "--json"]));
    assert!(!now.contains(&old_snapshot), "{now}");

    let listed: serde_json::Value =
        serde_json::from_str(&stdout_ok(kopia_notify(&pit, &["list", "--all", "--json"]))).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], a);
    assert_eq!(listed[0]["status"], "pending");

    let before = proxy.versions_recorded();
    for args in [
        vec!["send", "--title", "C into the past"],
        vec!["ack", a],
        vec!["manifest", "delete", a],
    ] {
        let out = kopia_notify(&pit, &args);
        assert_refused(&out, &args, &pit, &at);
    }
    assert_eq!(proxy.versions_recorded(), before, "a refused write wrote");

    assert_view_lists_once(&pit, &at);
}

#[test]
fn a_point_in_time_of_a_container_without_versions_is_refused_naming_it() {
    let Some(azurite) = require_azurite() else {
        return;
    };
    let Some(kopia) = require_kopia() else { return };
    let container = "kopia-notifier-unversioned";
    azurite.create_container(container);
    let repo = KopiaRepo::create_on(&kopia, &azurite.kopia_create_args(container, PREFIX));
    let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.config_file()).unwrap()).unwrap();
    config["storage"]["config"]["pointInTime"] = serde_json::json!(at);
    let dir = tempfile::tempdir().unwrap();
    let pit = dir.path().join("unversioned.config");
    std::fs::write(&pit, config.to_string()).unwrap();
    let names = azurite.blob_names(container);
    let out = kopia_notify(&pit, &["list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("pointInTime {at} needs blob versioning"))
            && stderr.contains(&format!(
                "container {container} of azure://{container}/{PREFIX}"
            )),
        "{stderr}"
    );
    assert_eq!(azurite.blob_names(container), names);
}
