//! What the point-in-time interop tests share: the moment between two rounds of writes, and
//! Kopia's own connection to the repository as it was then (Kopia writes `pointInTime` into
//! the config it makes).

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use chrono::{SubsecRound, Utc};

use crate::{Kopia, HOSTNAME, USERNAME};

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
