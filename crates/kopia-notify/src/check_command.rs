//! `kopia-notify check [--dry-run] [--json]`: runs the repository health checks once and writes
//! the new derived notifications and resolutions in one write (made for cron and systemd
//! timers; see docs/systemd/). A read-only connection, like `--dry-run`, writes nothing.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use kopia_notifications::health::check::{run_check, CheckOutcome, Recorded};
use kopia_notifications::health::live::maintenance_schedule;
use kopia_notifications::health::upgrade::Versions;
use kopia_notifications::kopia_store::KopiaManifests;
use kopia_notifications::{Identity, Origin};

#[derive(Args)]
pub struct CheckArgs {
    /// Report what would be written, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(
    args: CheckArgs,
    config_file: &Path,
    identity: Identity,
    now: DateTime<Utc>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let (mut manifests, client) = KopiaManifests::open_client_config(config_file)?;
    let recorded = Recorded {
        schedule: maintenance_schedule(&manifests),
        versions: kopia_versions(config_file),
    };
    let write = !args.dry_run && !client.readonly;
    let origin = Origin {
        user: identity,
        command: Some("kopia-notify check".into()),
    };
    // Times of day and cron entries are the scheduling machine's wall clock: this one's.
    let outcome = run_check(
        &mut manifests,
        recorded,
        &origin,
        now,
        &chrono::Local,
        write,
    )?;
    for problem in &outcome.problems {
        writeln!(err, "warning: {problem}")?;
    }
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&outcome.summary())?)?;
    } else {
        out.write_all(render(&outcome, args.dry_run, client.readonly).as_bytes())?;
    }
    Ok(())
}

/// The installed Kopia (`kopia --version` from `KOPIA_BIN` or `PATH`) and the newest release
/// Kopia's own update check saw (`<config-file>.update-info.json`, `availableVersion`).
fn kopia_versions(config_file: &Path) -> Result<Versions, String> {
    let info_file = format!("{}.update-info.json", config_file.display());
    let info = std::fs::read_to_string(&info_file).map_err(|e| format!("{info_file}: {e}"))?;
    let info: serde_json::Value =
        serde_json::from_str(&info).map_err(|e| format!("{info_file}: {e}"))?;
    let available = info["availableVersion"]
        .as_str()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("{info_file} names no availableVersion"))?
        .to_string();
    let binary = std::env::var_os("KOPIA_BIN").unwrap_or_else(|| "kopia".into());
    let output = std::process::Command::new(&binary)
        .arg("--version")
        .output()
        .map_err(|e| format!("{}: {e}", binary.to_string_lossy()))?;
    let installed = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .next()
        .ok_or("kopia --version printed nothing")?
        .to_string();
    Ok(Versions {
        installed,
        available,
    })
}

fn short(id: &str) -> &str {
    id.get(..8).unwrap_or(id)
}

/// One line per new or resolved notification, then what was written.
fn render(outcome: &CheckOutcome, dry_run: bool, read_only: bool) -> String {
    let mut text = String::new();
    for (id, _, finding) in &outcome.plan.notifications {
        text.push_str(&format!(
            "new      {} {} {} {}: {}\n",
            short(id),
            finding.severity.shout(),
            finding.kind,
            finding.recipient.describe(),
            finding.title
        ));
    }
    for (_, _, note) in &outcome.plan.resolutions {
        text.push_str(&format!(
            "resolved {} {} ({})\n",
            short(&note.notification_id),
            note.title,
            note.reason
        ));
    }
    let counts = format!(
        "{} new, {} resolved, {} unchanged",
        outcome.plan.notifications.len(),
        outcome.plan.resolutions.len(),
        outcome.plan.unchanged
    );
    let what = if outcome.plan.is_empty() {
        "nothing to write"
    } else if outcome.written {
        "written"
    } else if read_only {
        "read-only connection: nothing written"
    } else if dry_run {
        "dry run: nothing written"
    } else {
        "nothing written"
    };
    text.push_str(&format!("{counts}; {what}.\n"));
    text
}
