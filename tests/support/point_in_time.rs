//! What the point-in-time interop tests share: the moment between two rounds of writes,
//! Kopia's own connection to the repository as it was then (Kopia writes `pointInTime` into
//! the config it makes), and what every view must do: refuse writes, list once.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use chrono::{SubsecRound, Utc};
use kopia_repo::client;
use kopia_repo::repository::Repository;
use kopia_repo::storage::counting::CountingStorage;
use kopia_repo::storage::BlobReader;

use crate::cli::stdout_ok;
use crate::{Kopia, KopiaRepo, HOSTNAME, PASSWORD, USERNAME};

/// The moment after everything written so far and before anything written from now on:
/// the next whole second (Kopia's flag takes RFC 3339 seconds), passed by a margin.
pub fn moment_between_writes() -> String {
    let at = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(1);
    while Utc::now() < at + chrono::Duration::milliseconds(1200) {
        std::thread::sleep(Duration::from_millis(100));
    }
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// `kopia repository connect <storage_args> --point-in-time=<at>` into a config of its own
/// in `dir`; returns the config and Kopia's output.
pub fn connect_at(
    kopia: &Kopia,
    storage_args: &[String],
    at: &str,
    dir: &Path,
) -> (PathBuf, Output) {
    let mut args = storage_args.to_vec();
    args.push(format!("--point-in-time={at}"));
    connect(kopia, &args, dir)
}

/// `kopia repository connect <storage_args>` into a config of its own in `dir` (for stores
/// whose moment travels in the arguments themselves, as a from-config token); returns the
/// config and Kopia's output.
pub fn connect(kopia: &Kopia, storage_args: &[String], dir: &Path) -> (PathBuf, Output) {
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

/// Writes to `pit` the client config `live` with `pointInTime` set to `at`: a view Kopia
/// itself would refuse to connect (a store without versions), said anyway.
pub fn write_config_at(live: &Path, at: &str, pit: &Path) {
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(live).unwrap()).unwrap();
    config["storage"]["config"]["pointInTime"] = serde_json::json!(at);
    std::fs::write(pit, config.to_string()).unwrap();
}

/// Asserts that opening a view was refused because of its store: exit 2, one line holding
/// every one of `fragments` (the moment, the bucket or container, the reason), nothing on
/// stdout.
#[track_caller]
pub fn assert_store_refused(out: &Output, fragments: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    for fragment in fragments {
        assert!(stderr.contains(fragment), "no {fragment:?} in {stderr}");
    }
    assert!(out.stdout.is_empty(), "{out:?}");
}

/// Asserts that `kopia-notify <args>` through the view `pit` at `at` was refused: exit 2, one
/// line naming the config and the moment, nothing on stdout.
#[track_caller]
pub fn assert_refused(out: &Output, args: &[&str], pit: &Path, at: &str) {
    let refusal = format!(
        "repository {} is a read-only point-in-time view (pointInTime {at}); not written",
        pit.display()
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    assert!(stderr.contains(&refusal), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}");
}

/// The view `pit` Kopia connected at `history.at` shows the past: our `manifest list --json`
/// is Kopia's ([`assert_lists_like_kopia`]) with both snapshots, the older one deleted since
/// (it is gone from the live repository `live`) and nothing sent after the moment; `list`
/// shows the notification sent before it, pending, as it was then. Returns our manifest list.
#[track_caller]
pub fn assert_view_shows_the_past(
    kopia: &Kopia,
    pit: &Path,
    live: &Path,
    history: &History,
    kopia_notify: impl Fn(&Path, &[&str]) -> Output,
) -> String {
    let ours = assert_lists_like_kopia(kopia, pit, &history.at, &kopia_notify);
    assert_eq!(ours.matches("\"type\":\"snapshot\"").count(), 2, "{ours}");
    assert!(
        ours.contains(&history.old_snapshot) && !ours.contains(&history.after),
        "{ours}"
    );
    let now = stdout_ok(kopia_notify(live, &["manifest", "list", "--json"]));
    assert!(!now.contains(&history.old_snapshot), "{now}");

    let listed: serde_json::Value =
        serde_json::from_str(&stdout_ok(kopia_notify(pit, &["list", "--all", "--json"]))).unwrap();
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], history.before.as_str());
    assert_eq!(listed[0]["status"], "pending");
    ours
}

/// Every write of ours through the view `pit` (`send`, `ack` of the notification sent before
/// the moment and `ack --all`, `manifest delete`) is refused ([`assert_refused`]).
#[track_caller]
pub fn assert_writes_refused(
    pit: &Path,
    history: &History,
    kopia_notify: impl Fn(&Path, &[&str]) -> Output,
) {
    let before = history.before.as_str();
    for args in [
        vec!["send", "--title", "C into the past"],
        vec!["ack", before],
        vec!["ack", "--all"],
        vec!["manifest", "delete", before],
    ] {
        assert_refused(&kopia_notify(pit, &args), &args, pit, &history.at);
    }
}

/// Opens the view `pit` (at `at`) as the app does and asserts that it is read-only and that a
/// second refresh lists once and reads nothing (the past does not change).
#[track_caller]
pub fn assert_view_lists_once(pit: &Path, at: &str) {
    let storage = client::load(pit).unwrap().open_storage().unwrap();
    assert!(storage.is_read_only());
    assert!(storage
        .reader()
        .describe()
        .ends_with(&format!("as of {at}")));
    let counting = Arc::new(CountingStorage::new(Arc::clone(storage.reader())));
    let repository =
        Repository::open(Arc::clone(&counting) as Arc<dyn BlobReader>, PASSWORD).unwrap();
    let mut store = repository.manifest_store();
    assert!(store.refresh().unwrap().changed);
    counting.take_counts();
    assert!(!store.refresh().unwrap().changed);
    let counts = counting.take_counts();
    assert_eq!((counts.lists, counts.gets), (1, 0), "{counts:?}");
}

/// What a point-in-time test's repository went through around the moment `at`.
pub struct History {
    pub at: String,
    /// Kopia's older snapshot, deleted (and its blobs with it) after the moment.
    pub old_snapshot: String,
    /// Our notification sent before the moment, acknowledged after it.
    pub before: String,
    /// Our notification sent after the moment.
    pub after: String,
}

/// Kopia snapshots twice and we send a notification; the moment passes; we send another and
/// acknowledge the first, and Kopia deletes the older snapshot and runs full maintenance.
/// `kopia_notify` runs ours through a config.
pub fn write_history(repo: &KopiaRepo, kopia_notify: impl Fn(&Path, &[&str]) -> Output) -> History {
    let old_snapshot = repo.snapshot(&repo.make_tree(2, 3));
    repo.snapshot(&repo.make_tree(1, 2));
    let live = repo.config_file();
    let send = |title| {
        stdout_ok(kopia_notify(&live, &["send", "--title", title]))
            .trim()
            .to_string()
    };
    let before = send("A before the moment");
    let at = moment_between_writes();
    let after = send("B after the moment");
    stdout_ok(kopia_notify(&live, &["ack", &before]));
    repo.delete_snapshot(&old_snapshot);
    repo.maintenance_full();
    History {
        at,
        old_snapshot,
        before,
        after,
    }
}

/// The config Kopia made for the view `pit` records the moment `at`, and our
/// `manifest list --json` through it is Kopia's, byte for byte; returns that list.
#[track_caller]
pub fn assert_lists_like_kopia(
    kopia: &Kopia,
    pit: &Path,
    at: &str,
    kopia_notify: impl Fn(&Path, &[&str]) -> Output,
) -> String {
    let config_text = std::fs::read_to_string(pit).unwrap();
    assert!(
        config_text.contains(&format!("\"pointInTime\": \"{at}\"")),
        "{config_text}"
    );
    let list = ["manifest", "list", "--json"];
    let theirs = kopia.run_with_config(pit, &pit.with_extension("logs"), &list);
    assert!(theirs.status.success(), "{theirs:?}");
    let theirs = String::from_utf8(theirs.stdout).unwrap();
    let ours = stdout_ok(kopia_notify(pit, &list));
    assert_eq!(ours, theirs);
    ours
}
