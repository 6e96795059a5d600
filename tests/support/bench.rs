//! Small helpers shared by the side-by-side benchmarks (`cargo bench -p kopia-notify`).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::PASSWORD;

/// A whole-number setting from the environment, e.g. `BENCH_ROUNDS`.
pub fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The median of timing samples (the upper one of an even count).
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// `program --config-file=<config> <args>` as both `kopia` and `kopia-notify` take it, with the
/// harness password in the environment (so both pay the same key derivation).
pub fn repository_command(program: &Path, config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command
        .env("KOPIA_PASSWORD", PASSWORD)
        .env("KOPIA_CHECK_FOR_UPDATES", "false")
        .env("KOPIA_USE_KEYRING", "false")
        .arg(format!("--config-file={}", config.display()))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Runs `command` with `stdin` to completion; its wall time and standard output. Panics with its
/// standard error when it fails.
pub fn timed(mut command: Command, stdin: &[u8]) -> (Duration, Vec<u8>) {
    let started = Instant::now();
    let mut child = command.spawn().expect("start benchmark command");
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin)
        .expect("write benchmark input");
    let out = child
        .wait_with_output()
        .expect("wait for benchmark command");
    let elapsed = started.elapsed();
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (elapsed, out.stdout)
}
