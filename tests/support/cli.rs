//! `kopia-notify` as the storage interop tests run it: an environment cleaned of inherited
//! `KOPIA_*` settings and cloud credentials (`AWS_*`, `GOOGLE_*`, `AZURE_*`), so that only the
//! `repository.config` under test decides; the harness password; UTC; a cache directory of the
//! test's own.

use std::path::Path;
use std::process::{Command, Output};

use crate::PASSWORD;

const INHERITED_PREFIXES: [&str; 4] = ["KOPIA_", "AWS_", "GOOGLE_", "AZURE_"];

/// `bin --config-file=<config>`, ready for its arguments.
pub fn command(bin: &str, config: &Path) -> Command {
    let mut cmd = Command::new(bin);
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if INHERITED_PREFIXES
            .iter()
            .any(|prefix| text.starts_with(prefix))
        {
            cmd.env_remove(&name);
        }
    }
    // Network repositories' blob caches stay in the test's directory and go with it.
    if let Some(dir) = config.parent() {
        cmd.env("XDG_CACHE_HOME", dir.join("xdg-cache"));
    }
    cmd.env("KOPIA_PASSWORD", PASSWORD)
        .env("TZ", "UTC")
        .arg(format!("--config-file={}", config.display()));
    cmd
}

/// Runs `bin --config-file=<config> <args>` (as [`command`] prepares it) to completion.
pub fn output(bin: &str, config: &Path, args: &[&str]) -> Output {
    command(bin, config)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {bin}: {e}"))
}

/// The standard output of a run that must have succeeded (else its stderr is the panic).
#[track_caller]
pub fn stdout_ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "kopia-notify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
