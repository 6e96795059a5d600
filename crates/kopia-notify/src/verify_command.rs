//! `kopia-notify verify [--percent P] [--json]`: checks every content like `kopia content
//! verify` (packs present and long enough; `--percent` of the contents downloaded and
//! decrypted) and records damage as an error notification to everyone, or resolves an earlier
//! one when nothing is damaged any more. Exit code 1 when something is damaged.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Result};
use chrono::{DateTime, Utc};
use clap::Args;
use kopia_notifications::health::check::run_verify;
use kopia_notifications::kopia_store::KopiaManifests;
use kopia_notifications::{Identity, Origin};
use serde_json::json;

#[derive(Args)]
pub struct VerifyArgs {
    /// Share of the contents to download and decrypt, 0 to 100.
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    percent: f64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(
    args: VerifyArgs,
    config_file: &Path,
    identity: Identity,
    now: DateTime<Utc>,
    out: &mut dyn Write,
) -> Result<u8> {
    if !(0.0..=100.0).contains(&args.percent) {
        bail!("--percent {} is not between 0 and 100", args.percent);
    }
    let (mut manifests, client) = KopiaManifests::open_client_config_from_storage(config_file)?;
    let report = kopia_repo::verify::verify(manifests.repository(), args.percent)?;
    let origin = Origin {
        user: identity,
        command: Some("kopia-notify verify".into()),
    };
    let outcome = run_verify(
        &mut manifests,
        &report,
        &origin,
        now,
        !client.is_read_only(),
    )?;
    if args.json {
        let damaged: Vec<_> = report
            .damaged
            .iter()
            .map(|d| json!({"contentId": d.content_id, "packBlobId": d.pack_blob_id, "reason": d.reason}))
            .collect();
        let value = json!({
            "contents": report.contents,
            "downloaded": report.downloaded,
            "damaged": damaged,
            "notification": outcome.summary(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        writeln!(
            out,
            "Verified {} contents ({} downloaded): {} damaged.",
            report.contents,
            report.downloaded,
            report.damaged.len()
        )?;
        for damage in &report.damaged {
            writeln!(
                out,
                "  {} in {}: {}",
                damage.content_id, damage.pack_blob_id, damage.reason
            )?;
        }
    }
    Ok(u8::from(!report.damaged.is_empty()))
}
