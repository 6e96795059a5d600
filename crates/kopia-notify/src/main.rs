//! `kopia-notify`: a thin command line over the kopia-repo and kopia-notifications libraries.
//! It parses arguments, calls the libraries and prints; errors become one readable line and
//! exit code 2; after each notification command comes the pending-notifications summary.

mod check_command;
mod manifest_commands;
mod notification_commands;
mod output;
mod policy_commands;
mod repository_access;
mod send_batch;
mod summary;
mod upgrade_check;
mod verify_command;

use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

use crate::notification_commands::{NotificationCommand, Session};
use crate::repository_access::LazyRepository;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for every error (bad input, unreachable repository, wrong password, …).
const EXIT_ERROR: u8 = 2;

/// Fixes "now" for tests of expiry (RFC 3339); not for everyday use.
const CLOCK_OVERRIDE_ENV: &str = "KOPIA_NOTIFY_NOW";

#[derive(Parser)]
#[command(
    name = "kopia-notify",
    version,
    about = "Notifications kept in a Kopia repository"
)]
struct Cli {
    /// Kopia client config file of the repository (as `kopia --config-file`).
    #[arg(long, global = true, env = "KOPIA_CONFIG_PATH", value_name = "PATH")]
    config_file: Option<PathBuf>,

    /// Act as this user instead of the connection's username@hostname.
    #[arg(long = "as", global = true, value_name = "USER@HOST")]
    as_identity: Option<String>,

    #[command(flatten)]
    summary: summary::SummaryArgs,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Notification(NotificationCommand),
    /// Low-level access to the repository's manifest store (prints exactly what Kopia prints,
    /// so no summary follows it).
    #[command(subcommand)]
    Manifest(manifest_commands::ManifestCommand),
    /// Check the repository's health once (what Kopia recorded about snapshots and
    /// maintenance) and write new derived notifications and resolutions in one write.
    Check(check_command::CheckArgs),
    /// Our notification policy: what `check` reports and to whom, per Kopia policy target.
    #[command(subcommand)]
    Policy(policy_commands::PolicyCommand),
    /// Verify the repository's contents (like `kopia content verify`); damage becomes an error
    /// notification to everyone.
    Verify(verify_command::VerifyArgs),
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KOPIA_NOTIFY_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let cli = Cli::parse();
    let config_file = cli
        .config_file
        .unwrap_or_else(kopia_repo::client::default_config_path);
    let outcome = match cli.command {
        Command::Manifest(command) => {
            manifest_commands::run(command, &config_file).map(|()| ExitCode::SUCCESS)
        }
        Command::Check(args) => {
            run_check(args, &config_file, cli.as_identity.as_deref()).map(|()| ExitCode::SUCCESS)
        }
        Command::Verify(args) => {
            repository_access::current_identity(cli.as_identity.as_deref(), &config_file)
                .and_then(|identity| {
                    verify_command::run(
                        args,
                        &config_file,
                        identity,
                        clock()?(),
                        &mut std::io::stdout(),
                    )
                })
                .map(ExitCode::from)
        }
        Command::Policy(command) => {
            repository_access::current_identity(cli.as_identity.as_deref(), &config_file)
                .and_then(|identity| {
                    policy_commands::run(command, &config_file, &identity, &mut std::io::stdout())
                })
                .map(|()| ExitCode::SUCCESS)
        }
        Command::Notification(command) => run_notification_command(
            command,
            config_file,
            cli.as_identity.as_deref(),
            cli.summary.mode,
        )
        .map(ExitCode::from),
    };
    outcome.unwrap_or_else(|error| {
        eprintln!("kopia-notify: {}", output::one_line(&error));
        ExitCode::from(EXIT_ERROR)
    })
}

fn run_notification_command(
    command: NotificationCommand,
    config_file: PathBuf,
    as_identity: Option<&str>,
    mode: summary::NotificationsMode,
) -> anyhow::Result<u8> {
    let identity = repository_access::current_identity(as_identity, &config_file)?;
    let clock = clock()?;
    let mut repository = LazyRepository::new(config_file);
    let mut session = Session {
        repository: &mut repository,
        identity: identity.clone(),
        clock: &clock,
    };
    let mut stdout = std::io::stdout();
    let code =
        notification_commands::run(command, &mut session, &mut stdout, &mut std::io::stderr())?;
    Ok(summary::after_command(
        mode,
        &mut repository,
        &identity,
        clock(),
        code,
        &mut std::io::stderr(),
    ))
}

fn run_check(
    args: check_command::CheckArgs,
    config_file: &std::path::Path,
    as_identity: Option<&str>,
) -> anyhow::Result<()> {
    let identity = repository_access::current_identity(as_identity, config_file)?;
    let now = clock()?();
    check_command::run(
        args,
        config_file,
        identity,
        now,
        &mut std::io::stdout(),
        &mut std::io::stderr(),
    )
}

fn clock() -> anyhow::Result<impl Fn() -> DateTime<Utc>> {
    let fixed = match std::env::var(CLOCK_OVERRIDE_ENV) {
        Ok(text) => Some(
            DateTime::parse_from_rfc3339(&text)
                .map_err(|e| anyhow::anyhow!("{CLOCK_OVERRIDE_ENV}={text:?}: {e}"))?
                .with_timezone(&Utc),
        ),
        Err(_) => None,
    };
    Ok(move || fixed.unwrap_or_else(Utc::now))
}
