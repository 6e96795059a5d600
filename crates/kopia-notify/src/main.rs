//! `kopia-notify`: a thin command line over the kopia-repo library. It parses arguments,
//! calls the library and prints; errors become one readable line and exit code 2.

mod manifest_commands;
mod output;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Exit code for every error (bad input, unreachable repository, wrong password, …).
const EXIT_ERROR: u8 = 2;

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

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Low-level access to the repository's manifest store.
    #[command(subcommand)]
    Manifest(manifest_commands::ManifestCommand),
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
    let result = match cli.command {
        Command::Manifest(command) => manifest_commands::run(command, &config_file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kopia-notify: {}", output::one_line(&error));
            ExitCode::from(EXIT_ERROR)
        }
    }
}
