//! `kopia-notify check` end to end against what real Kopia records: snapshots that really failed
//! (an unreadable file; Kopia runs as an unprivileged user when the tests run as root, so that
//! root's permission to read anything does not hide the failure), a canceled snapshot
//! (`--fail-fast`), a maintenance task that really failed (a pack blob it cannot delete),
//! Kopia's scheduling policies set with `kopia policy set` at several levels and judged at fixed
//! clocks, two checks at once, and resolution once the cause is gone.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, Utc};
use kopia_fixtures::unprivileged::Unprivileged;
use kopia_fixtures::{require_kopia, PASSWORD};
use serde_json::Value;

mod health_common;
use health_common::{check_json, notify, notify_command, unprivileged};

fn kinds(report: &Value, list: &str) -> Vec<String> {
    let mut kinds: Vec<String> = report[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            item["kind"]
                .as_str()
                .or(item["title"].as_str())
                .unwrap()
                .to_owned()
        })
        .collect();
    kinds.sort();
    kinds
}

fn list_json(repo: &Unprivileged, now: DateTime<Utc>, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["--as", "alice@laptop", "list", "--json"];
    args.extend_from_slice(extra);
    let out = notify(repo, now, &args);
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn failed_and_canceled_snapshots_notify_once_and_resolve() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let repo = unprivileged(&kopia);
    let (dir, secret) = repo.source_with_unreadable_file("home");

    // Kopia writes a complete manifest that counts the failure, and exits non-zero.
    let out = repo.kopia(&[
        OsStr::new("snapshot"),
        OsStr::new("create"),
        dir.as_os_str(),
    ]);
    assert!(
        !out.status.success(),
        "an unreadable file fails the snapshot"
    );
    let snapshots = repo.snapshots(&dir);
    assert_eq!(snapshots.len(), 1);
    assert!(snapshots[0].get("incomplete").is_none());
    assert_eq!(snapshots[0]["rootEntry"]["summ"]["numFailed"], 1);
    let failed_id = snapshots[0]["id"].as_str().unwrap().to_owned();

    // A read-only connection (Kopia's `connect --readonly`) finds it and writes nothing.
    let now = Utc::now();
    let config = repo.config_file();
    let original = fs::read_to_string(&config).unwrap();
    let mut read_only: Value = serde_json::from_str(&original).unwrap();
    read_only["readonly"] = true.into();
    fs::write(&config, read_only.to_string()).unwrap();
    let out = notify(&repo, now, &["check"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.ends_with("1 new, 0 resolved, 0 unchanged; read-only connection: nothing written.\n"),
        "{text}"
    );
    assert!(repo.manifests("type:notification").is_empty());
    fs::write(&config, original).unwrap();

    // Two checks at once write the derived notification exactly once.
    let [a, b] = [0, 1].map(|_| {
        notify_command(&repo, now)
            .args(["check", "--json"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    });
    for child in [a, b] {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(kinds(&report, "new").len() + report["unchanged"].as_u64().unwrap() as usize == 1);
    }
    let derived = repo.manifests("derived:snapshot-errors");
    assert_eq!(derived.len(), 1, "{derived:?}");
    assert_eq!(derived[0]["labels"]["trigger"], failed_id.as_str());
    assert_eq!(derived[0]["labels"]["recipient"], "alice@laptop");
    assert_eq!(derived[0]["labels"]["severity"], "error");
    let error_id = derived[0]["id"].as_str().unwrap().to_owned();

    let pending = list_json(&repo, now, &[]);
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0]["sourceKind"], "snapshot");
    assert_eq!(pending[0]["snapshotSource"]["path"], dir.to_str().unwrap());
    assert!(pending[0]["details"]
        .as_str()
        .unwrap()
        .contains("sub/secret.txt: "));
    let source = format!("alice@laptop:{}", dir.display());
    assert_eq!(list_json(&repo, now, &["--source", &source]).len(), 1);
    assert_eq!(
        list_json(&repo, now, &["--source", "alice@laptop:/other"]).len(),
        0
    );
    let text = notify(&repo, now, &["--as", "alice@laptop", "list"]);
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(text.contains(&format!("  snapshot {source}\n")), "{text}");

    // --fail-fast cancels at the first error: an incomplete "canceled" manifest.
    let out = repo.kopia(&[
        OsStr::new("snapshot"),
        OsStr::new("create"),
        OsStr::new("--fail-fast"),
        dir.as_os_str(),
    ]);
    assert!(!out.status.success());
    let newest = repo.snapshots(&dir).into_iter().last().unwrap();
    assert_eq!(newest["incomplete"], "canceled");
    let report = check_json(&repo, now, &[]);
    assert_eq!(kinds(&report, "new"), ["snapshot-interrupted"]);
    // A dry run finds nothing new either: all of it is written.
    let dry = notify(&repo, now, &["check", "--dry-run"]);
    assert_eq!(
        String::from_utf8(dry.stdout).unwrap(),
        "0 new, 0 resolved, 2 unchanged; nothing to write.\n"
    );

    // The file becomes readable: a clean complete snapshot resolves both.
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    repo.kopia_ok(&[
        OsStr::new("snapshot"),
        OsStr::new("create"),
        dir.as_os_str(),
    ]);
    let later = Utc::now();
    let report = check_json(&repo, later, &[]);
    assert_eq!(report["resolved"].as_array().unwrap().len(), 2, "{report}");
    assert_eq!(repo.manifests("type:notificationResolution").len(), 2);
    assert!(list_json(&repo, later, &[]).is_empty());
    let history = list_json(&repo, later, &["--all"]);
    assert_eq!(history.len(), 2);
    assert!(history.iter().all(|item| item["status"] == "resolved"));
    let shown = notify(&repo, later, &["--as", "alice@laptop", "show", &error_id]);
    let shown = String::from_utf8(shown.stdout).unwrap();
    assert!(shown.contains("Status:    resolved\n"), "{shown}");
    assert!(shown.contains("completed without errors"), "{shown}");
    // Resolved stays resolved: the next check writes nothing.
    let again = check_json(&repo, later, &[]);
    assert_eq!(again["written"], false);
}

#[test]
fn a_maintenance_task_that_really_failed_and_an_owner_that_never_runs() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let repo = unprivileged(&kopia);
    let dir = repo.path("src").join("data");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("a.txt"), "a\n").unwrap();
    repo.give_to_kopia(&dir);
    repo.kopia_ok(&[
        OsStr::new("snapshot"),
        OsStr::new("create"),
        dir.as_os_str(),
    ]);

    // An unreferenced pack blob in a shard directory Kopia may not change: full maintenance's
    // blob deletion fails, and Kopia records the failure in kopia.maintenance.
    let shard = repo.path("repo").join("p").join("bbc");
    fs::create_dir_all(&shard).unwrap();
    fs::write(shard.join("cddeeff00112233445566778899aa.f"), [7u8; 4096]).unwrap();
    repo.give_to_kopia(&shard);
    fs::set_permissions(&shard, fs::Permissions::from_mode(0o555)).unwrap();
    let _ = repo.kopia(&["maintenance", "run", "--full", "--safety=none"]);
    let info = repo.json(&["maintenance", "info", "--json"]);
    let runs = &info["schedule"]["runs"]["full-delete-blobs"][0];
    assert!(
        runs.get("success").is_none() && runs["error"].is_string(),
        "{info}"
    );

    let now = Utc::now();
    let report = check_json(&repo, now, &[]);
    assert_eq!(kinds(&report, "new"), ["maintenance-failed"], "{report}");
    let failed = repo.manifests("derived:maintenance-failed");
    assert_eq!(failed[0]["labels"]["subject"], "full-delete-blobs");
    assert_eq!(failed[0]["labels"]["recipient"], "alice@laptop");

    // The owner stops running maintenance: three days later both cycles are overdue.
    let report = check_json(&repo, now + Duration::days(3), &[]);
    assert_eq!(
        kinds(&report, "new"),
        ["maintenance-overdue", "maintenance-overdue"],
        "{report}"
    );

    // The blob may be deleted again: the next run succeeds and the failure resolves.
    fs::set_permissions(&shard, fs::Permissions::from_mode(0o755)).unwrap();
    repo.kopia_ok(&["maintenance", "run", "--full", "--safety=none"]);
    let report = check_json(&repo, Utc::now(), &[]);
    let resolved = report["resolved"].as_array().unwrap();
    assert!(
        resolved.iter().any(|r| r["reason"]
            .as_str()
            .unwrap()
            .starts_with("maintenance task full-delete-blobs succeeded")),
        "{report}"
    );
}

#[test]
fn kopia_scheduling_policies_make_sources_overdue() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let repo = unprivileged(&kopia);
    let mut dirs = Vec::new();
    for name in ["hourly", "manual", "nightly"] {
        let dir = repo.path("src").join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("f.txt"), name).unwrap();
        repo.give_to_kopia(&dir);
        dirs.push(dir);
    }
    // Global: every hour. One path: manual. Another: a time of day as well, twelve hours away
    // so that it never falls inside the hours the test looks at; merged with the interval.
    repo.kopia_ok(&["policy", "set", "--global", "--snapshot-interval=1h"]);
    // No leading zero: Kopia reads the hour with Go's `%v`, which takes "08" and "09" for
    // octal and refuses them (snapshot/policy/scheduling_policy.go, TimeOfDay.Parse).
    let far_hour = (Utc::now() + Duration::hours(12))
        .format("%-H:00")
        .to_string();
    repo.kopia_ok(&[
        OsStr::new("policy"),
        OsStr::new("set"),
        dirs[1].as_os_str(),
        OsStr::new("--manual"),
    ]);
    repo.kopia_ok(&[
        OsStr::new("policy"),
        OsStr::new("set"),
        dirs[2].as_os_str(),
        OsStr::new(&format!("--snapshot-time={far_hour}")),
    ]);
    let mut started = Vec::new();
    for dir in &dirs {
        repo.kopia_ok(&[
            OsStr::new("snapshot"),
            OsStr::new("create"),
            dir.as_os_str(),
        ]);
        let snapshot = repo.snapshots(dir).pop().unwrap();
        let start: DateTime<Utc> = snapshot["startTime"].as_str().unwrap().parse().unwrap();
        started.push(start);
    }
    let last = *started.iter().max().unwrap();
    let subjects = |report: &Value| -> Vec<(String, String)> {
        let mut found: Vec<(String, String)> = report["new"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| {
                let subject = n["subject"].as_str().unwrap();
                let name = subject.rsplit('/').next().unwrap().to_owned();
                (name, n["severity"].as_str().unwrap().to_owned())
            })
            .collect();
        found.sort();
        found
    };
    // The hourly slot after a snapshot at hh:mm is (hh+1):00; half an hour of grace follows.
    let next_hour = {
        let plus = last + Duration::hours(1);
        plus - Duration::seconds(plus.timestamp() % 3600)
    };
    let report = check_json(&repo, next_hour + Duration::minutes(29), &[]);
    assert_eq!(subjects(&report), []);
    // The nightly path has the global interval as well (merged), so it is as overdue.
    let report = check_json(&repo, next_hour + Duration::minutes(31), &[]);
    assert_eq!(
        subjects(&report),
        [
            ("hourly".into(), "warning".into()),
            ("nightly".into(), "warning".into())
        ]
    );
    let report = check_json(
        &repo,
        next_hour + Duration::hours(2) + Duration::minutes(31),
        &[],
    );
    assert_eq!(
        subjects(&report),
        [
            ("hourly".into(), "error".into()),
            ("nightly".into(), "error".into())
        ]
    );
    assert_eq!(
        report["resolved"].as_array().unwrap().len(),
        2,
        "warnings give way"
    );
    assert!(report["resolved"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("higher severity"));
    // A snapshot of the hourly source resolves its error; manual never shows up.
    repo.kopia_ok(&[
        OsStr::new("snapshot"),
        OsStr::new("create"),
        dirs[0].as_os_str(),
    ]);
    let report = check_json(
        &repo,
        next_hour + Duration::hours(2) + Duration::minutes(31),
        &[],
    );
    assert_eq!(report["resolved"].as_array().unwrap().len(), 1, "{report}");
    let all = repo.manifests("derived:snapshot-overdue");
    assert!(all.iter().all(|m| !m["labels"]["subject"]
        .as_str()
        .unwrap()
        .ends_with("/manual")));
}

#[test]
fn our_policy_in_the_repository_steers_the_checks() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let repo = unprivileged(&kopia);
    let (dir, _) = repo.source_with_unreadable_file("docs");
    repo.kopia_ok(&[
        OsStr::new("policy"),
        OsStr::new("set"),
        dir.as_os_str(),
        OsStr::new("--ignore-file-errors=true"),
    ]);
    repo.kopia_ok(&[
        OsStr::new("snapshot"),
        OsStr::new("create"),
        dir.as_os_str(),
    ]);
    let snapshot = repo.snapshots(&dir).pop().unwrap();
    assert_eq!(snapshot["rootEntry"]["summ"]["numIgnoredErrors"], 1);
    let now = Utc::now();
    // Ignored errors alone say nothing by default.
    assert_eq!(
        kinds(&check_json(&repo, now, &[]), "new"),
        Vec::<String>::new()
    );

    let ok = |args: &[&str]| {
        let out = notify(&repo, now, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    ok(&[
        "policy",
        "set",
        "global",
        "--on-ignored-errors=notify",
        "--notify=all",
    ]);
    let source = format!("alice@laptop:{}", dir.display());
    let shown = ok(&["policy", "show", &source]);
    assert!(
        shown.contains("  on-ignored-errors  notify                   from (global)\n"),
        "{shown}"
    );
    assert!(
        shown.contains("  overdue-after      schedule                 (default)\n"),
        "{shown}"
    );
    let report = check_json(&repo, now, &[]);
    assert_eq!(kinds(&report, "new"), ["snapshot-ignored-errors"]);
    assert_eq!(report["new"][0]["recipient"], "all users");

    // The path level says otherwise: the warning resolves.
    ok(&["policy", "set", &source, "--on-ignored-errors=none"]);
    let report = check_json(&repo, now, &[]);
    assert_eq!(
        report["resolved"][0]["reason"],
        "the notification policy no longer reports it"
    );
    let listed = ok(&["policy", "list"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert_eq!(repo.manifests("type:notificationPolicy").len(), 2);
    ok(&["policy", "remove", "global"]);
    assert_eq!(repo.manifests("type:notificationPolicy").len(), 1);
    let out = notify(&repo, now, &["policy", "set", "global"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to set"));
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn verify_names_damaged_packs_and_resolves_once_repaired() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let repo = kopia_fixtures::KopiaRepo::create(&kopia, &kopia_fixtures::CreateOptions::default());
    let tree = repo.make_tree(2, 4);
    repo.snapshot(&tree);
    let verify = |now: DateTime<Utc>| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kopia-notify"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KOPIA_") {
                cmd.env_remove(name);
            }
        }
        let out = cmd
            .env("KOPIA_PASSWORD", PASSWORD)
            .env("KOPIA_NOTIFY_NOW", now.to_rfc3339())
            .arg(format!("--config-file={}", repo.config_file().display()))
            .args(["verify", "--percent=100", "--json"])
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        (out.status.code(), report)
    };
    let now = Utc::now();
    let (code, report) = verify(now);
    assert_eq!(code, Some(0), "{report}");
    assert!(report["contents"].as_u64().unwrap() > 8);
    assert_eq!(report["downloaded"], report["contents"]);
    assert_eq!(report["damaged"].as_array().unwrap().len(), 0);

    // One flipped byte in a data pack: Kopia's own verification fails too.
    let pack = files_under(&repo.repo_dir().join("p"))
        .into_iter()
        .max_by_key(|p| fs::metadata(p).unwrap().len())
        .expect("a data pack");
    let original = fs::read(&pack).unwrap();
    let mut damaged = original.clone();
    damaged[original.len() / 3] ^= 0x40;
    fs::write(&pack, &damaged).unwrap();
    assert!(!repo.run(&["content", "verify", "--full"]).status.success());
    let (code, report) = verify(now);
    assert_eq!(code, Some(1));
    let listed = report["damaged"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{report}");
    let pack_id = listed[0]["packBlobId"].as_str().unwrap().to_owned();
    // Stored as p/<3 characters>/<the rest>.f.
    assert_eq!(
        pack.file_name().unwrap().to_str().unwrap(),
        format!("{}.f", &pack_id[4..])
    );
    assert_eq!(report["notification"]["new"][0]["kind"], "corruption");
    let found = repo.manifest_list_json(&["derived:corruption"]);
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["labels"]["recipient"], "*");
    // The same damage again: the same notification.
    let (_, report) = verify(now);
    assert_eq!(report["notification"]["unchanged"], 1);

    fs::write(&pack, &original).unwrap();
    let (code, report) = verify(now + Duration::minutes(1));
    assert_eq!(code, Some(0));
    assert_eq!(
        report["notification"]["resolved"][0]["reason"],
        "a later verification found no damaged contents"
    );
}
