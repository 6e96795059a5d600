//! Small helpers shared by the side-by-side benchmarks (`cargo bench -p kopia-notify`).

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{KopiaRepo, PASSWORD};

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

/// A snapshot payload with its start and end moved `back` into the past.
fn earlier(data: &str, back: chrono::Duration) -> Box<serde_json::value::RawValue> {
    use chrono::{DateTime, SecondsFormat, Utc};
    let mut snapshot: serde_json::Value = serde_json::from_str(data).unwrap();
    for field in ["startTime", "endTime"] {
        let time: DateTime<Utc> = snapshot[field].as_str().unwrap().parse().unwrap();
        snapshot[field] = (time - back)
            .to_rfc3339_opts(SecondsFormat::Nanos, true)
            .into();
    }
    serde_json::value::RawValue::from_string(snapshot.to_string()).unwrap()
}

/// Gives every snapshot Kopia made in `repository` `per_source - 1` older copies, an hour apart
/// each, written by our manifest writer 1,000 at a time as `owner`: a repository with
/// thousands of snapshots in seconds instead of thousands of uploads. Returns how many
/// snapshots Kopia had made.
pub fn add_older_snapshot_copies(
    repository: &kopia_repo::repository::Repository,
    per_source: usize,
    owner: &kopia_repo::content::writer::SessionOwner,
) -> usize {
    use kopia_repo::manifest::{Labels, NewManifest};
    let mut store = repository.manifest_store();
    store.refresh().unwrap();
    let snapshot_type = Labels::from([("type".to_string(), "snapshot".to_string())]);
    let originals: Vec<(Labels, String)> = store
        .find(&snapshot_type)
        .into_iter()
        .map(|entry| (entry.labels().to_labels(), entry.data.get().to_string()))
        .collect();
    let copies: Vec<NewManifest> = (1..per_source)
        .flat_map(|hours| {
            originals.iter().map(move |(labels, data)| NewManifest {
                labels: labels.clone(),
                data: earlier(data, chrono::Duration::hours(hours as i64)),
            })
        })
        .collect();
    for batch in copies.chunks(1_000) {
        let writer = repository.content_writer(owner.clone()).unwrap();
        store.write(&writer, batch, &[]).unwrap();
    }
    originals.len()
}

/// Kopia's part of a health benchmark's repository, all made by Kopia itself: `sources` source
/// directories; the global policy (given an interval) and, in one `policy set` over many
/// targets, `policies - 1` path policies of `path_policy` (e.g. `--snapshot-interval=1h`) on
/// the first sources; then one snapshot of every source in one `snapshot create`. Returns the
/// source directories, sorted.
pub fn kopia_sources_with_policies(
    repo: &KopiaRepo,
    sources: usize,
    policies: usize,
    path_policy: &[&str],
) -> Vec<PathBuf> {
    let tree = repo.make_tree(sources, 1);
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&tree)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    repo.set_global_policy(&["--snapshot-interval=6h"]);
    let mut args: Vec<&OsStr> = ["policy", "set"].iter().map(OsStr::new).collect();
    args.extend(path_policy.iter().map(OsStr::new));
    args.extend(dirs[..policies - 1].iter().map(|d| d.as_os_str()));
    repo.run_ok(&args);
    let mut args = vec![OsStr::new("snapshot"), OsStr::new("create")];
    args.extend(dirs.iter().map(|d| d.as_os_str()));
    repo.run_ok(&args);
    dirs
}

/// How many manifests of `manifest_type` (`snapshot`, `policy`) Kopia lists in `repo`.
pub fn kopia_manifest_count(repo: &KopiaRepo, manifest_type: &str) -> usize {
    let listed = repo.manifest_list_json(&[&format!("type:{manifest_type}")]);
    listed.as_array().unwrap().len()
}
