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
    let config = dir.join("pit.config");
    let mut args = vec!["repository".to_owned(), "connect".to_owned()];
    args.extend_from_slice(storage_args);
    args.extend([
        format!("--point-in-time={at}"),
        format!("--cache-directory={}", dir.join("cache").display()),
        "--max-list-cache-duration=0s".to_owned(),
        format!("--override-username={USERNAME}"),
        format!("--override-hostname={HOSTNAME}"),
    ]);
    let out = kopia.run_with_config(&config, &config.with_extension("logs"), &args);
    (config, out)
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
