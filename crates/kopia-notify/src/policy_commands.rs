//! `kopia-notify policy set|show|list|remove`: our notification policy (what `check` reports
//! and to whom), attached to Kopia's policy targets and stored in the repository.

use std::io::Write;
use std::path::Path;

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use kopia_notifications::kopia_store::KopiaManifests;
use kopia_notifications::policy::{self, PolicyValues};
use kopia_notifications::target::PolicyTarget;
use kopia_notifications::Identity;

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Set options at a target: global, @host, user@host, user@host:/path, or a plain path
    /// (this machine's user@host and that path).
    Set(SetArgs),
    /// Print the effective options of a target and the level each comes from.
    Show(TargetArg),
    /// List every level that sets something.
    List,
    /// Remove the options set at a target.
    Remove(TargetArg),
}

#[derive(Args)]
pub struct TargetArg {
    target: String,
}

#[derive(Args)]
pub struct SetArgs {
    target: String,
    /// notify or none: fatal snapshot errors.
    #[arg(long, value_name = "notify|none")]
    on_snapshot_error: Option<String>,
    /// notify or none: snapshots with ignored errors only.
    #[arg(long, value_name = "notify|none")]
    on_ignored_errors: Option<String>,
    /// owner (the source's user@host, the maintenance owner), all, or user@host[,...].
    #[arg(long, value_name = "WHO")]
    notify: Option<String>,
    /// A duration (e.g. 3d), schedule (Kopia's, else 7 days), or never.
    #[arg(long, value_name = "WHEN")]
    overdue_after: Option<String>,
    /// normal, warning or error: findings below it are not written.
    #[arg(long, value_name = "SEVERITY")]
    min_severity: Option<String>,
}

/// Reads a target; a plain path is `identity`'s, made absolute against the working directory.
fn parse_target(text: &str, identity: &Identity) -> Result<PolicyTarget> {
    let looks_like_path = text.starts_with(['/', '.', '~']) || !text.contains('@');
    if text != "global" && looks_like_path {
        let path = std::path::absolute(text)?;
        return Ok(PolicyTarget::Path {
            user: identity.user.clone(),
            host: identity.host.clone(),
            path: path.display().to_string(),
        });
    }
    Ok(text.parse()?)
}

pub fn run(
    command: PolicyCommand,
    config_file: &Path,
    identity: &Identity,
    out: &mut dyn Write,
) -> Result<()> {
    let (mut store, client) = KopiaManifests::open_client_config(config_file)?;
    match command {
        PolicyCommand::Set(args) => {
            let target = parse_target(&args.target, identity)?;
            let values = PolicyValues {
                on_snapshot_error: args.on_snapshot_error.map(|v| v.parse()).transpose()?,
                on_ignored_errors: args.on_ignored_errors.map(|v| v.parse()).transpose()?,
                notify: args.notify.map(|v| v.parse()).transpose()?,
                overdue_after: args.overdue_after.map(|v| v.parse()).transpose()?,
                min_severity: args.min_severity.map(|v| v.parse()).transpose()?,
            };
            if values == PolicyValues::default() {
                bail!("nothing to set: give at least one option (see --help)");
            }
            if client.is_read_only() {
                bail!("the connection is read-only: nothing written");
            }
            policy::set(&mut store, &target, &values)?;
            writeln!(out, "Set the notification policy of {target}.")?;
        }
        PolicyCommand::Show(arg) => {
            let target = parse_target(&arg.target, identity)?;
            let (policies, problems) = policy::load(&store)?;
            for problem in problems {
                eprintln!("warning: skipping {problem}");
            }
            let effective = policies.effective_along(&target.lookup_order());
            writeln!(out, "Notification policy of {target}:")?;
            for (name, value, at) in effective.describe() {
                let from = at.map_or("(default)".to_string(), |t| format!("from {t}"));
                writeln!(out, "  {name:<18} {value:<24} {from}")?;
            }
        }
        PolicyCommand::List => {
            let (policies, problems) = policy::load(&store)?;
            for problem in problems {
                eprintln!("warning: skipping {problem}");
            }
            if policies.policies.is_empty() {
                writeln!(out, "No notification policies are set.")?;
            }
            for (target, (id, _)) in &policies.policies {
                let own = policies.effective_along(std::slice::from_ref(target));
                let set: Vec<String> = own
                    .describe()
                    .into_iter()
                    .filter(|(_, _, at)| at.is_some())
                    .map(|(name, value, _)| format!("{name}={value}"))
                    .collect();
                writeln!(out, "{target} ({id}): {}", set.join(" "))?;
            }
        }
        PolicyCommand::Remove(arg) => {
            let target = parse_target(&arg.target, identity)?;
            if client.is_read_only() {
                bail!("the connection is read-only: nothing written");
            }
            policy::remove(&mut store, &target)?;
            writeln!(out, "Removed the notification policy of {target}.")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_from_the_command_line() {
        let me: Identity = "alice@laptop".parse().unwrap();
        assert_eq!(
            parse_target("/home/alice", &me).unwrap().to_string(),
            "alice@laptop:/home/alice"
        );
        assert_eq!(parse_target("global", &me).unwrap(), PolicyTarget::Global);
        assert_eq!(
            parse_target("bob@desk:/srv", &me).unwrap().to_string(),
            "bob@desk:/srv"
        );
        assert_eq!(parse_target("@desk", &me).unwrap().to_string(), "@desk");
        let relative = parse_target("docs", &me).unwrap().to_string();
        assert!(relative.starts_with("alice@laptop:/") && relative.ends_with("/docs"));
    }
}
