//! What the health tests against real Kopia share: kopia-notify run as the user Kopia runs as
//! (`tests/support/unprivileged.rs`), at a fixed clock (`KOPIA_NOTIFY_NOW`), in UTC (the zone
//! Kopia's times of day and cron entries are read in), without the summary and the upgrade
//! check (both have tests of their own).

use std::path::Path;
use std::process::{Command, Output};

use chrono::{DateTime, Utc};
use kopia_fixtures::unprivileged::Unprivileged;
use kopia_fixtures::{Kopia, PASSWORD};
use serde_json::Value;

/// A repository Kopia creates as the unprivileged user, with our CLI beside Kopia.
pub fn unprivileged(kopia: &Kopia) -> Unprivileged {
    Unprivileged::create(kopia, &[Path::new(env!("CARGO_BIN_EXE_kopia-notify"))])
}

/// kopia-notify as the repository's user at `now`, ready for its arguments.
pub fn notify_command(repo: &Unprivileged, now: DateTime<Utc>) -> Command {
    let mut cmd = repo.command(&repo.path("bin").join("kopia-notify"));
    cmd.env("KOPIA_PASSWORD", PASSWORD)
        .env("TZ", "UTC")
        .env("KOPIA_NOTIFY_NOW", now.to_rfc3339())
        .env("KOPIA_NOTIFICATIONS", "hidden")
        .env("KOPIA_NOTIFY_NO_UPGRADE_CHECK", "1")
        .arg(format!("--config-file={}", repo.config_file().display()));
    cmd
}

pub fn notify(repo: &Unprivileged, now: DateTime<Utc>, args: &[&str]) -> Output {
    notify_command(repo, now)
        .args(args)
        .output()
        .expect("run kopia-notify")
}

/// `check --json` and `extra`, which must succeed.
#[track_caller]
pub fn check_json(repo: &Unprivileged, now: DateTime<Utc>, extra: &[&str]) -> Value {
    let mut args = vec!["check", "--json"];
    args.extend_from_slice(extra);
    let out = notify(repo, now, &args);
    assert!(
        out.status.success(),
        "check failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("check --json prints JSON")
}
