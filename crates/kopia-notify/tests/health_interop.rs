//! Health checks against states only real Kopia makes: an upload killed after Kopia wrote its
//! checkpoint, cron schedules set at several policy levels and merged with intervals and times
//! of day, and damaged packs on which our `verify` and Kopia's `content verify --full` must
//! name the same broken contents. Kopia runs as an unprivileged user when the tests run as root
//! (`tests/support/unprivileged.rs`); every clock is fixed with `KOPIA_NOTIFY_NOW`.

use std::collections::BTreeSet;
use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use kopia_fixtures::unprivileged::Unprivileged;
use kopia_fixtures::{require_kopia, CreateOptions, Kopia, KopiaRepo, PASSWORD};
use serde_json::Value;

mod health_common;
use health_common::{check_json, unprivileged};

/// A source directory Kopia may read, holding one small file.
fn source(repo: &Unprivileged, relative: &str) -> PathBuf {
    let dir = repo.path("src").join(relative);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("f.txt"), relative).unwrap();
    repo.give_to_kopia(&repo.path("src"));
    dir
}

/// Kopia's snapshots of `dir`, checkpoints and canceled ones included.
fn all_snapshots(repo: &Unprivileged, dir: &Path) -> Vec<Value> {
    repo.json(&[
        OsStr::new("snapshot"),
        OsStr::new("list"),
        OsStr::new("--all"),
        OsStr::new("--incomplete"),
        OsStr::new("--json"),
        dir.as_os_str(),
    ])
    .as_array()
    .unwrap()
    .clone()
}

fn time_of(snapshot: &Value, field: &str) -> DateTime<Utc> {
    snapshot[field].as_str().unwrap().parse().unwrap()
}

/// (kind, severity) of every new finding of a report.
fn found(report: &Value) -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = report["new"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["kind"].as_str().unwrap().to_owned(),
                n["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

/// Kopia writes a checkpoint manifest (`incomplete: checkpoint`) every checkpoint interval of a
/// long upload (snapshot/upload/upload.go, `periodicallyCheckpoint`; the interval is the hidden
/// `--checkpoint-interval` flag of `snapshot create`, 45 minutes by default). A 64 GiB sparse
/// file keeps the upload hashing long enough; Kopia is killed once its first checkpoint is in
/// the repository, so nothing newer is ever written. The source then reads as a dead upload
/// once the checkpoint is two default intervals old, and a clean snapshot resolves it.
#[test]
fn a_dead_uploads_checkpoint_warns_once_it_is_old_and_resolves() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let repo = unprivileged(&kopia);
    let dir = source(&repo, "upload");
    let big = dir.join("big.img");
    fs::File::create(&big)
        .unwrap()
        .set_len(64 << 30)
        .expect("a sparse file");
    repo.give_to_kopia(&big);

    // Kopia's progress goes to a file: a pipe nobody reads could block it.
    let stderr_file = repo.path("upload.stderr");
    let mut upload = repo
        .kopia_command(&[
            OsStr::new("snapshot"),
            OsStr::new("create"),
            OsStr::new("--checkpoint-interval=1s"),
            dir.as_os_str(),
        ])
        .stdout(Stdio::null())
        .stderr(fs::File::create(&stderr_file).unwrap())
        .spawn()
        .expect("start kopia snapshot create");
    let waited = Instant::now();
    let checkpointed = loop {
        let snapshots = all_snapshots(&repo, &dir);
        if snapshots.iter().any(|s| s["incomplete"] == "checkpoint") {
            break true;
        }
        if upload.try_wait().unwrap().is_some() || waited.elapsed().as_secs() > 120 {
            break false;
        }
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    // SIGKILL: no cleanup, no final manifest, as when the machine loses power.
    let _ = upload.kill();
    upload.wait().unwrap();
    assert!(
        checkpointed,
        "Kopia wrote no checkpoint: {}",
        fs::read_to_string(&stderr_file).unwrap_or_default()
    );
    let snapshots = all_snapshots(&repo, &dir);
    assert!(
        snapshots.iter().all(|s| s["incomplete"] == "checkpoint"),
        "{snapshots:?}"
    );
    let last = snapshots
        .iter()
        .max_by_key(|s| time_of(s, "endTime"))
        .unwrap();
    let last_written = time_of(last, "endTime");
    let last_id = last["id"].as_str().unwrap().to_owned();

    // Two default intervals (90 minutes) after the last checkpoint: not yet...
    let report = check_json(&repo, last_written + Duration::minutes(89), &[]);
    assert_eq!(found(&report), [], "{report}");
    // ...then a warning to the source's owner, naming the checkpoint.
    let dead = last_written + Duration::minutes(91);
    let report = check_json(&repo, dead, &[]);
    assert_eq!(
        found(&report),
        [("snapshot-interrupted".into(), "warning".into())],
        "{report}"
    );
    assert!(report["new"][0]["subject"]
        .as_str()
        .unwrap()
        .ends_with("/upload"));
    let derived = repo.manifests("derived:snapshot-interrupted");
    assert_eq!(derived.len(), 1, "{derived:?}");
    assert_eq!(derived[0]["labels"]["trigger"], last_id.as_str());
    assert_eq!(derived[0]["labels"]["recipient"], "alice@laptop");

    // The next snapshot completes: the warning resolves.
    fs::remove_file(&big).unwrap();
    repo.kopia_ok(&[
        OsStr::new("snapshot"),
        OsStr::new("create"),
        dir.as_os_str(),
    ]);
    let later = dead.max(Utc::now()) + Duration::minutes(1);
    let report = check_json(&repo, later, &[]);
    assert_eq!(found(&report), [], "{report}");
    assert_eq!(report["resolved"].as_array().unwrap().len(), 1, "{report}");
    assert_eq!(repo.manifests("type:notificationResolution").len(), 1);
}

/// 2026-06-01 (a Monday) at `hh:mm` UTC.
fn june_first(hour: u32, minute: u32) -> DateTime<Utc> {
    NaiveDate::from_ymd_opt(2026, 6, 1)
        .unwrap()
        .and_hms_opt(hour, minute, 0)
        .unwrap()
        .and_utc()
}

/// Cron entries at three levels, merged with a time of day and an interval from others, as
/// Kopia merges them (snapshot/policy/scheduling_policy.go `Merge`: the most specific
/// non-empty cron list wins, the most specific interval wins, times of day add up):
///
/// | level | sets |
/// |---|---|
/// | global | cron `0 */6 * * *` |
/// | alice@laptop | time of day 14:00 |
/// | path `inherits` | nothing: global's cron, alice's 14:00 |
/// | path `hourly` | cron `45 * * * *` (global's is not used) |
/// | path `group` | interval 4h |
/// | path `group/yearly` | cron `0 0 1 1 *`: group's interval decides |
///
/// Every snapshot starts at 10:20 (Kopia's `--start-time`), so the slots are known: inherits
/// 12:00, 14:00, 18:00; hourly 10:45, 11:45, 12:45 (14:00 comes later); yearly 12:00 (the
/// interval, truncated in UTC), 14:00, 16:00. A slot missed by more than 30 minutes is a
/// warning, three are an error.
#[test]
fn cron_policies_at_several_levels_judged_at_fixed_clocks() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let repo = unprivileged(&kopia);
    let names = ["inherits", "hourly", "group/yearly"];
    let dirs: Vec<PathBuf> = names.iter().map(|name| source(&repo, name)).collect();
    let group = repo.path("src").join("group");
    let set = |target: &OsStr, flag: &str| {
        repo.kopia_ok(&[
            OsStr::new("policy"),
            OsStr::new("set"),
            target,
            OsStr::new(flag),
        ]);
    };
    set(
        OsStr::new("--global"),
        "--snapshot-time-crontab=0 */6 * * *",
    );
    set(OsStr::new("alice@laptop"), "--snapshot-time=14:00");
    set(dirs[1].as_os_str(), "--snapshot-time-crontab=45 * * * *");
    set(group.as_os_str(), "--snapshot-interval=4h");
    set(dirs[2].as_os_str(), "--snapshot-time-crontab=0 0 1 1 *");
    let policies = repo.manifests("type:policy");
    assert_eq!(policies.len(), 5, "{policies:?}");

    for dir in &dirs {
        repo.kopia_ok(&[
            OsStr::new("snapshot"),
            OsStr::new("create"),
            OsStr::new("--start-time=2026-06-01 10:20:00 UTC"),
            OsStr::new("--end-time=2026-06-01 10:21:00 UTC"),
            dir.as_os_str(),
        ]);
        let snapshot = all_snapshots(&repo, dir).pop().unwrap();
        assert_eq!(time_of(&snapshot, "startTime"), june_first(10, 20));
    }

    // A dry run reports every finding as new: the state of each source at that clock.
    let overdue = |now: DateTime<Utc>| -> Vec<(String, String)> {
        let report = check_json(&repo, now, &["--dry-run"]);
        let mut found: Vec<(String, String)> = report["new"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                assert_eq!(n["kind"], "snapshot-overdue", "{n}");
                let subject = n["subject"].as_str().unwrap();
                let name = subject.rsplit('/').next().unwrap().to_owned();
                (name, n["severity"].as_str().unwrap().to_owned())
            })
            .collect();
        found.sort();
        found
    };
    // (hourly, inherits, yearly); "" for not overdue.
    let expect = |severities: [&str; 3]| -> Vec<(String, String)> {
        ["hourly", "inherits", "yearly"]
            .into_iter()
            .zip(severities)
            .filter(|(_, severity)| !severity.is_empty())
            .map(|(name, severity)| (name.to_owned(), severity.to_owned()))
            .collect()
    };
    let clocks = [
        (june_first(11, 14), expect(["", "", ""])),
        (june_first(11, 16), expect(["warning", "", ""])),
        (june_first(12, 29), expect(["warning", "", ""])),
        (
            june_first(12, 31),
            expect(["warning", "warning", "warning"]),
        ),
        (
            june_first(13, 14),
            expect(["warning", "warning", "warning"]),
        ),
        (june_first(13, 16), expect(["error", "warning", "warning"])),
        (june_first(16, 29), expect(["error", "warning", "warning"])),
        (june_first(16, 31), expect(["error", "warning", "error"])),
        (june_first(18, 29), expect(["error", "warning", "error"])),
        (june_first(18, 31), expect(["error", "error", "error"])),
    ];
    for (now, expected) in clocks {
        assert_eq!(overdue(now), expected, "at {now}");
    }
    // Nothing was written by the dry runs.
    assert!(repo.manifests("type:notification").is_empty());
}

/// Kopia's `content verify --full` logs one line per broken content
/// (repo/content/verify.go `verifyContentImpl`): "content <ID> depends on missing blob <pack>",
/// "content <ID> out of bounds of its pack blob <pack>", "content <ID> is invalid: <error>".
fn kopia_broken_contents(repo: &KopiaRepo) -> BTreeSet<String> {
    let out = repo.run(&["content", "verify", "--full"]);
    assert!(!out.status.success(), "Kopia's verify finds the damage");
    let text = String::from_utf8_lossy(&out.stderr);
    text.lines()
        .filter_map(|line| {
            let rest = &line[line.find("content ")? + "content ".len()..];
            let (id, what) = rest.split_once(' ')?;
            (what.starts_with("depends on missing blob")
                || what.starts_with("out of bounds")
                || what.starts_with("is invalid"))
            .then(|| id.to_owned())
        })
        .collect()
}

/// Our `verify --percent=100 --json`: the broken content IDs and the packs they are in.
fn our_broken_contents(repo: &KopiaRepo) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kopia-notify"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KOPIA_") {
            cmd.env_remove(name);
        }
    }
    let out = cmd
        .env("KOPIA_PASSWORD", PASSWORD)
        .env("KOPIA_NOTIFICATIONS", "hidden")
        .arg(format!("--config-file={}", repo.config_file().display()))
        .args(["verify", "--percent=100", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "damage makes verify exit 1");
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let damaged = report["damaged"].as_array().unwrap();
    let ids = damaged
        .iter()
        .map(|d| d["contentId"].as_str().unwrap().to_owned())
        .collect();
    let packs = damaged
        .iter()
        .map(|d| d["packBlobId"].as_str().unwrap().to_owned())
        .collect();
    (ids, packs)
}

/// A repository with a few snapshots' worth of data packs, and its largest data pack.
fn repository_with_packs(kopia: &Kopia) -> (KopiaRepo, PathBuf) {
    let repo = KopiaRepo::create(kopia, &CreateOptions::default());
    let tree = repo.make_tree(3, 6);
    repo.snapshot(&tree);
    let mut packs = Vec::new();
    let mut pending = vec![repo.repo_dir().join("p")];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                packs.push(path);
            }
        }
    }
    let largest = packs
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .expect("a data pack");
    (repo, largest)
}

/// `p/abc/def….f` is blob `pabcdef…`.
fn blob_id(pack: &Path) -> String {
    let shard = pack
        .parent()
        .unwrap()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap();
    let rest = pack.file_stem().unwrap().to_str().unwrap();
    format!("p{shard}{rest}")
}

#[test]
fn a_missing_pack_breaks_the_same_contents_for_kopia_and_us() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let (repo, pack) = repository_with_packs(&kopia);
    fs::remove_file(&pack).unwrap();
    let theirs = kopia_broken_contents(&repo);
    let (ours, packs) = our_broken_contents(&repo);
    assert!(!theirs.is_empty());
    assert_eq!(ours, theirs);
    assert_eq!(packs, BTreeSet::from([blob_id(&pack)]));
}

#[test]
fn a_flipped_byte_breaks_the_same_contents_for_kopia_and_us() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let (repo, pack) = repository_with_packs(&kopia);
    let mut bytes = fs::read(&pack).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    fs::write(&pack, &bytes).unwrap();
    let theirs = kopia_broken_contents(&repo);
    let (ours, packs) = our_broken_contents(&repo);
    assert!(!theirs.is_empty());
    assert_eq!(ours, theirs);
    assert_eq!(packs, BTreeSet::from([blob_id(&pack)]));
}
