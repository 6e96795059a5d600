//! Writers killed with SIGKILL at random points of `kopia-notify manifest put|delete`, many
//! times, never leave a repository that Kopia's verification or maintenance rejects, and a
//! retried write neither loses nor duplicates its entry.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo, PASSWORD};

const ROUNDS: usize = 30;

fn notify(config: &Path, args: &[String]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kopia-notify"));
    cmd.env("KOPIA_PASSWORD", PASSWORD)
        .arg(format!("--config-file={}", config.display()))
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    cmd
}

/// Small deterministic generator; the seed is printed so a failure can be replayed.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % bound.max(1)
    }
}

/// Runs the command to completion, retrying until it succeeds (or reports the entry gone,
/// for a delete whose first attempt had already landed).
fn run_until_done(config: &Path, args: &[String]) {
    let out = notify(config, args).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let already_deleted = args[1] == "delete" && stderr.contains("not found");
    assert!(
        out.status.success() || already_deleted,
        "{args:?}: {stderr}"
    );
}

#[test]
fn killed_writers_never_break_kopia_and_retries_do_not_duplicate() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    let tree = repo.make_tree(2, 2);
    repo.snapshot(&tree);
    let config = repo.config_file();
    let payloads = tempfile::tempdir().unwrap();

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    println!("crash test seed {seed}");
    let mut random = Random(seed);

    // How long a whole put takes here, to spread the kills over its length.
    let started = Instant::now();
    run_until_done(&config, &put_args(payloads.path(), 1000));
    let full = started.elapsed().as_millis() as u64;

    let mut expected: BTreeMap<String, bool> = BTreeMap::from([("1000".to_string(), true)]);
    let mut interrupted = 0;
    for round in 0..ROUNDS {
        let args = if round % 4 == 3 {
            expected.insert((round - 1).to_string(), false);
            delete_args(&repo, round - 1)
        } else {
            expected.insert(round.to_string(), true);
            put_args(payloads.path(), round)
        };
        let mut child = notify(&config, &args).spawn().unwrap();
        // Key derivation takes the first part of a run; aim most kills at the writes after it.
        std::thread::sleep(Duration::from_millis(full / 4 + random.below(full)));
        if child.try_wait().unwrap().is_none() {
            interrupted += 1;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        if round % 10 == 9 {
            repo.content_verify();
        }
        run_until_done(&config, &args);
    }
    assert!(
        interrupted >= ROUNDS / 3,
        "only {interrupted} writers were killed mid-way"
    );

    repo.content_verify();
    repo.snapshot_verify();
    repo.maintenance_full();
    repo.content_verify();
    let listed = repo.manifest_list_json(&["type:crashTest"]);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for entry in listed.as_array().unwrap() {
        *seen
            .entry(entry["labels"]["round"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    let wanted: BTreeMap<String, usize> = expected
        .iter()
        .filter(|(_, live)| **live)
        .map(|(round, _)| (round.clone(), 1))
        .collect();
    assert_eq!(seen, wanted, "lost or duplicated entries (seed {seed})");
    let ours = notify(
        &config,
        &[
            "manifest".into(),
            "list".into(),
            "--json".into(),
            "--filter=type:crashTest".into(),
        ],
    )
    .stdout(Stdio::piped())
    .output()
    .unwrap();
    let theirs = repo.run_ok(&["manifest", "list", "--json", "--filter=type:crashTest"]);
    assert_eq!(String::from_utf8(ours.stdout).unwrap(), theirs);
}

fn put_args(dir: &Path, round: usize) -> Vec<String> {
    let payload = dir.join(format!("{round}.json"));
    fs::write(
        &payload,
        format!(
            r#"{{"round": {round}, "body": "{}"}}"#,
            "x".repeat(round * 37)
        ),
    )
    .unwrap();
    vec![
        "manifest".into(),
        "put".into(),
        "--label=type:crashTest".into(),
        format!("--label=round:{round}"),
        format!("--file={}", payload.display()),
    ]
}

fn delete_args(repo: &KopiaRepo, round: usize) -> Vec<String> {
    let listed = repo.manifest_list_json(&["type:crashTest", &format!("round:{round}")]);
    let id = listed[0]["id"]
        .as_str()
        .expect("entry to delete exists")
        .to_owned();
    vec!["manifest".into(), "delete".into(), id]
}
