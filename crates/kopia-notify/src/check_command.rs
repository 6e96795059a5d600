//! `kopia-notify check [--dry-run] [--json]`: runs the repository health checks once and writes
//! the new derived notifications and resolutions in one write (made for cron and systemd
//! timers; see docs/systemd/). A read-only connection, like `--dry-run`, writes nothing. It also
//! compares the installed Kopia and Kopia Notifier against their latest releases
//! ([`crate::upgrade_check`]) unless told not to.

use std::io::Write;
use std::path::Path;

use anyhow::Result;
use chrono::{DateTime, Utc};
use clap::Args;
use kopia_notifications::health::check::{run_check, CheckOutcome, Recorded};
use kopia_notifications::health::live::maintenance_schedule;
use kopia_notifications::kopia_store::KopiaManifests;
use kopia_notifications::{Identity, Origin};

use crate::upgrade_check::{self, UpgradeArgs};

#[derive(Args)]
pub struct CheckArgs {
    /// Report what would be written, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    upgrade: UpgradeArgs,
}

pub fn run(
    args: CheckArgs,
    config_file: &Path,
    identity: Identity,
    now: DateTime<Utc>,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    // The release requests run while the repository opens (key derivation, index load).
    let (opened, versions) = std::thread::scope(|scope| {
        let versions = scope.spawn(|| upgrade_check::versions(&args.upgrade, now));
        let opened = KopiaManifests::open_client_config_from_storage(config_file);
        (opened, versions.join().unwrap_or_default())
    });
    let (mut manifests, client) = opened?;
    let recorded = Recorded {
        schedule: maintenance_schedule(&manifests),
        versions,
    };
    let write = !args.dry_run && !client.is_read_only();
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
        out.write_all(render(&outcome, args.dry_run, client.is_read_only()).as_bytes())?;
    }
    Ok(())
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
