//! Point-in-time views of an Azure repository, end to end: Azurite keeps no blob versions,
//! so a versioning proxy in front of it (`servers_azure_versions`) records them as Azure does.
//! Real Kopia writes history through it around a moment T; a connection Kopia makes with
//! `--point-in-time=T` shows through `kopia-notify` exactly what Kopia shows, and every write
//! through it is refused with one line, writing nothing. A container without versions
//! (Azurite itself) is refused by name.

use std::path::Path;
use std::process::Output;

use chrono::Utc;
use kopia_fixtures::cli;
use kopia_fixtures::point_in_time::{
    assert_store_refused, assert_view_lists_once, assert_view_shows_the_past,
    assert_writes_refused, connect, write_config_at, write_history,
};
use kopia_fixtures::servers_azure_versions::VersioningProxy;
use kopia_fixtures::servers_objects::require_azurite;
use kopia_fixtures::{require_kopia, KopiaRepo};

const PREFIX: &str = "team-a/host1-";

fn kopia_notify(config: &Path, args: &[&str]) -> Output {
    cli::command(env!("CARGO_BIN_EXE_kopia-notify"), config)
        .env("KOPIA_NOTIFICATIONS", "hidden")
        .args(args)
        .output()
        .expect("run kopia-notify")
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
    let history = write_history(&repo, kopia_notify);
    let live = repo.config_file();

    let dir = tempfile::tempdir().unwrap();
    // Kopia's from-config takes no --point-in-time: the moment travels in the token.
    let (pit, connected) = connect(
        &kopia,
        &proxy.kopia_args(&azurite, container, PREFIX, Some(&history.at)),
        dir.path(),
    );
    assert!(connected.status.success(), "{connected:?}");
    assert_view_shows_the_past(&kopia, &pit, &live, &history, kopia_notify);

    let before = proxy.versions_recorded();
    assert_writes_refused(&pit, &history, kopia_notify);
    assert_eq!(proxy.versions_recorded(), before, "a refused write wrote");

    assert_view_lists_once(&pit, &history.at);
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
    let dir = tempfile::tempdir().unwrap();
    let pit = dir.path().join("unversioned.config");
    write_config_at(&repo.config_file(), &at, &pit);
    let names = azurite.blob_names(container);
    assert_store_refused(
        &kopia_notify(&pit, &["list"]),
        &[
            &format!("pointInTime {at} needs blob versioning"),
            &format!("container {container} of azure://{container}/{PREFIX}"),
        ],
    );
    assert_eq!(azurite.blob_names(container), names);
}
