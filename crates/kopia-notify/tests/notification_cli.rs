//! `kopia-notify list|show|ack|send|run|gc` and the after-command summary end to end: the built
//! binary against repositories created by real Kopia, with Kopia itself as the judge of what
//! was written. Not a test of the library's rules in detail (the crates' unit tests do that).
//!
//! Every repository here uses PBKDF2 instead of Kopia's default scrypt for its password: each
//! kopia-notify process derives the key once, and the notification behaviour does not depend on
//! the key derivation. The clock is fixed with `KOPIA_NOTIFY_NOW` so dates print exactly.

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo, HOSTNAME, PASSWORD, USERNAME};
use serde_json::{json, Value};

/// The fixed "now" of most commands.
const T0: &str = "2022-05-19T03:00:12Z";

/// The connection's own identity, as Kopia's client config names it.
fn connection_identity() -> String {
    format!("{USERNAME}@{HOSTNAME}")
}

fn new_repo() -> Option<KopiaRepo> {
    let kopia = require_kopia()?;
    Some(KopiaRepo::create(
        &kopia,
        &CreateOptions {
            key_derivation: Some("pbkdf2-sha256-600000"),
            ..CreateOptions::default()
        },
    ))
}

/// Exit code and both outputs of one kopia-notify process.
#[derive(Debug)]
struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Outcome {
    /// Asserts everything the process did.
    #[track_caller]
    fn expect(&self, code: i32, stdout: &str, stderr: &str) {
        assert_eq!(
            (self.code, self.stdout.as_str(), self.stderr.as_str()),
            (code, stdout, stderr),
            "(exit code, stdout, stderr)"
        );
    }

    /// Asserts exit code and stderr; returns stdout.
    #[track_caller]
    fn stdout_with(&self, code: i32, stderr: &str) -> &str {
        assert_eq!(
            (self.code, self.stderr.as_str()),
            (code, stderr),
            "(exit code, stderr); stdout: {}",
            self.stdout
        );
        &self.stdout
    }

    /// Asserts exit code 2, nothing on stdout and one `kopia-notify: …` line on stderr
    /// containing every needle.
    #[track_caller]
    fn expect_error(&self, needles: &[&str]) {
        assert_eq!(self.code, 2, "{self:?}");
        assert_eq!(self.stdout, "", "{self:?}");
        assert!(
            self.stderr.starts_with("kopia-notify: ") && self.stderr.ends_with('\n'),
            "{self:?}"
        );
        assert_eq!(self.stderr.lines().count(), 1, "not one line: {self:?}");
        for needle in needles {
            assert!(self.stderr.contains(needle), "{needle:?} not in {self:?}");
        }
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}): {self:?}"))
    }
}

/// One kopia-notify invocation: `--config-file` of a repository, the clock, extra environment.
#[derive(Clone)]
struct Notify {
    config_file: PathBuf,
    now: Option<String>,
    env: Vec<(String, String)>,
}

impl Notify {
    fn new(repo: &KopiaRepo) -> Notify {
        Notify::with_config(repo.config_file())
    }

    fn with_config(config_file: PathBuf) -> Notify {
        Notify {
            config_file,
            now: Some(T0.to_owned()),
            env: vec![("KOPIA_CHECK_FOR_UPDATES".into(), "false".into())],
        }
    }

    /// The same invocation at another fixed time.
    fn at(&self, now: &str) -> Notify {
        Notify {
            now: Some(now.to_owned()),
            ..self.clone()
        }
    }

    /// The same invocation with one more environment variable.
    fn env(&self, name: &str, value: &str) -> Notify {
        let mut with = self.clone();
        with.env.push((name.to_owned(), value.to_owned()));
        with
    }

    fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Outcome {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kopia-notify"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KOPIA_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("KOPIA_PASSWORD", PASSWORD).env("TZ", "UTC");
        if let Some(now) = &self.now {
            cmd.env("KOPIA_NOTIFY_NOW", now);
        }
        for (name, value) in &self.env {
            cmd.env(name, value);
        }
        let out = cmd
            .arg(format!("--config-file={}", self.config_file.display()))
            .args(args)
            .output()
            .expect("run kopia-notify");
        Outcome {
            code: out.status.code().expect("kopia-notify exited normally"),
            stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
            stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
        }
    }

    /// `send ARGS`, expecting success and the summary `stderr`; returns the new ID.
    #[track_caller]
    fn send(&self, args: &[&str], code: i32, stderr: &str) -> String {
        let mut all = vec!["send"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        let id = out
            .stdout_with(code, stderr)
            .trim_end_matches('\n')
            .to_owned();
        assert!(is_manifest_id(&id), "not an ID: {out:?}");
        assert_eq!(out.stdout, format!("{id}\n"));
        id
    }
}

fn is_manifest_id(text: &str) -> bool {
    text.len() == 32
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

/// The summary line of the design.
fn notice(text: &str) -> String {
    format!("NOTICE: {text}\n")
}

/// `kopia manifest list --filter type:KIND --json`, sorted by ID.
fn kopia_manifests(repo: &KopiaRepo, kind: &str) -> Vec<Value> {
    let listed = repo.manifest_list_json(&[&format!("type:{kind}")]);
    let mut manifests = listed
        .as_array()
        .expect("manifest list is an array")
        .clone();
    manifests.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    manifests
}

fn kopia_ids(repo: &KopiaRepo, kind: &str) -> Vec<String> {
    kopia_manifests(repo, kind)
        .iter()
        .map(|m| m["id"].as_str().expect("manifest id").to_owned())
        .collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

/// The payload of a manifest as `kopia manifest show` prints it.
fn kopia_payload(repo: &KopiaRepo, id: &str) -> Value {
    serde_json::from_slice(&repo.manifest_show(id)).expect("manifest payload is JSON")
}

/// Every file of the repository's storage with its size and contents: "nothing written" means
/// this is unchanged.
fn repository_files(repo: &KopiaRepo) -> Vec<(PathBuf, Vec<u8>)> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                let bytes = fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    let mut files = Vec::new();
    walk(&repo.repo_dir(), &mut files);
    files.sort();
    files
}

/// `kopia-notify list`'s short ID: the shortest prefix of at least 8 characters that no other
/// notification of the repository shares.
fn short_id<'a>(id: &'a str, all: &[String]) -> &'a str {
    (8..id.len())
        .map(|n| &id[..n])
        .find(|prefix| !all.iter().any(|o| o != id && o.starts_with(prefix)))
        .unwrap_or(id)
}

/// The `list` lines of one notification.
fn list_entry(date_severity_title: &str, id: &str, all: &[String], link: Option<&str>) -> String {
    let mut text = format!(
        "{date_severity_title}\n  To see the details 'kopia-notify show {}'\n",
        short_id(id, all)
    );
    if let Some(link) = link {
        text.push_str(&format!("  {link}\n"));
    }
    text
}

/// `entry` with the line naming its kind and snapshot source after its first line.
fn with_about(entry: String, about: &str) -> String {
    let (first, rest) = entry.split_once('\n').expect("an entry has lines");
    format!("{first}\n  {about}\n{rest}")
}

#[test]
fn send_list_show_and_ack_as_the_connection_identity() {
    let Some(repo) = new_repo() else {
        return;
    };
    let cli = Notify::new(&repo);
    let me = connection_identity();
    cli.run(&["list"])
        .expect(0, "There are no notifications.\n", "");
    cli.run(&["list", "--json"]).expect(0, "[]\n", "");

    let dir = tempfile::tempdir().unwrap();
    let details = dir.path().join("df.txt");
    fs::write(&details, "Filesystem  Use%\n/dev/sdb1    93%\n").unwrap();
    let details_arg = details.to_str().unwrap();
    let disk = cli.send(
        &[
            "--severity",
            "warning",
            "--to",
            "all",
            "--title",
            "Backup disk almost full on nas",
            "--message",
            "The repository disk is 93% full.",
            "--details-file",
            details_arg,
            "--link",
            "https://kopia.io/docs/advanced/maintenance/",
            "--expires-in",
            "7d",
            "--source",
            "snapshot",
            "--snapshot-source",
            "tester@kopia-harness:/srv/data",
        ],
        1,
        &notice(
            "There is 1 pending notification including 1 warning. To read it use kopia-notify list.",
        ),
    );
    let later = "2022-05-19T04:00:00Z";
    let out = cli.at(later).run(&[
        "send",
        "--to",
        &me,
        "--title",
        "Upgrade available",
        "--json",
    ]);
    let upgrade = out.json()["id"].as_str().unwrap().to_owned();
    out.stdout_with(
        1,
        &notice("There are 2 pending notifications including 1 warning. To read them use kopia-notify list."),
    );
    assert_eq!(out.stdout, format!("{}\n", json!({ "id": upgrade })));
    let ids = vec![disk.clone(), upgrade.clone()];
    assert_eq!(kopia_ids(&repo, "notification"), sorted(ids.clone()));

    // Oldest first; the link follows the hint; the summary follows on stderr.
    let two_pending = notice(
        "There are 2 pending notifications including 1 warning. To read them use kopia-notify list.",
    );
    let disk_entry = with_about(
        list_entry(
            "2022-05-19 WARNING Backup disk almost full on nas",
            &disk,
            &ids,
            Some("https://kopia.io/docs/advanced/maintenance/"),
        ),
        "snapshot tester@kopia-harness:/srv/data",
    );
    let upgrade_entry = list_entry("2022-05-19 NORMAL Upgrade available", &upgrade, &ids, None);
    let cli = cli.at(later);
    cli.run(&["list"])
        .expect(1, &format!("{disk_entry}{upgrade_entry}"), &two_pending);
    cli.run(&["ls", "--min-severity", "warning"])
        .expect(1, &disk_entry, &two_pending);
    cli.run(&["list", "--min-severity", "error"]).expect(
        1,
        "There are no notifications.\n",
        &two_pending,
    );

    let out = cli.run(&["list", "--json"]);
    out.stdout_with(1, &two_pending);
    assert_eq!(
        out.json(),
        json!([
            {
                "id": disk,
                "severity": "warning",
                "recipient": "*",
                "sourceKind": "snapshot",
                "originHost": HOSTNAME,
                "title": "Backup disk almost full on nas",
                "message": "The repository disk is 93% full.",
                "details": "Filesystem  Use%\n/dev/sdb1    93%\n",
                "created": "2022-05-19T03:00:12Z",
                "expires": "2022-05-26T03:00:12Z",
                "link": "https://kopia.io/docs/advanced/maintenance/",
                "origin": {"user": me, "command": "kopia-notify send"},
                "snapshotSource": {"host": "kopia-harness", "userName": "tester", "path": "/srv/data"},
                "schemaVersion": 1,
                "status": "pending",
                "acknowledgedAt": null
            },
            {
                "id": upgrade,
                "severity": "normal",
                "recipient": me,
                "sourceKind": "custom",
                "originHost": HOSTNAME,
                "title": "Upgrade available",
                "message": "",
                "details": "",
                "created": "2022-05-19T04:00:00Z",
                "expires": "2022-06-18T04:00:00Z",
                "link": null,
                "origin": {"user": me, "command": "kopia-notify send"},
                "snapshotSource": null,
                "schemaVersion": 1,
                "status": "pending",
                "acknowledgedAt": null
            }
        ])
    );

    // `show` by a unique prefix: every field, the message, details and acknowledgements.
    let disk_show = |status: &str, acks: &str| {
        format!(
            "Notification {disk}\n\
             Severity:  WARNING\n\
             To:        all users\n\
             Source:    snapshot\n\
             From:      {me} (kopia-notify send)\n\
             Created:   2022-05-19 03:00:12 UTC\n\
             Expires:   2022-05-26 03:00:12 UTC\n\
             Status:    {status}\n\
             Snapshot:  tester@kopia-harness:/srv/data\n\
             Link:      https://kopia.io/docs/advanced/maintenance/\n\
             \n\
             Backup disk almost full on nas\n\
             \n\
             The repository disk is 93% full.\n\
             \n\
             Details:\n\
             Filesystem  Use%\n\
             /dev/sdb1    93%\n\
             \n\
             Acknowledged by:{acks}\n"
        )
    };
    cli.run(&["show", &disk[..5]])
        .expect(1, &disk_show("pending", " nobody yet"), &two_pending);

    // ack --item: the text, then the same again is skipped.
    let ack_time = "2022-05-19T08:15:40Z";
    let one_pending = notice("There is 1 pending notification. To read it use kopia-notify list.");
    let cli = cli.at(ack_time);
    cli.run(&["ack", "--item", &disk[..10]]).expect(
        0,
        "Acknowledged 1 notification.\n",
        &one_pending,
    );
    cli.run(&["ack", &disk]).expect(
        0,
        &format!("Acknowledged 0 notifications.\nSkipped {disk}: already acknowledged.\n"),
        &one_pending,
    );
    let acks = kopia_ids(&repo, "notificationAck");
    assert_eq!(acks.len(), 1, "one acknowledgement, not two");

    cli.run(&["show", &disk]).expect(
        0,
        &disk_show(
            "acknowledged by you at 2022-05-19 08:15:40 UTC",
            &format!("\n  {me} at 2022-05-19 08:15:40 UTC"),
        ),
        &one_pending,
    );
    let out = cli.run(&["show", &disk, "--json"]);
    out.stdout_with(0, &one_pending);
    let shown = out.json();
    assert_eq!(shown["status"], "acknowledged");
    assert_eq!(shown["acknowledgedAt"], "2022-05-19T08:15:40Z");
    assert_eq!(
        shown["acknowledgements"],
        json!([{
            "id": acks[0],
            "notificationId": disk,
            "user": me,
            "acknowledgedAt": "2022-05-19T08:15:40Z"
        }])
    );

    // --all marks the acknowledged one; the plain list no longer has it.
    let disk_acked = with_about(
        list_entry(
            "2022-05-19 WARNING Backup disk almost full on nas [acknowledged]",
            &disk,
            &ids,
            Some("https://kopia.io/docs/advanced/maintenance/"),
        ),
        "snapshot tester@kopia-harness:/srv/data",
    );
    cli.run(&["list", "--all"])
        .expect(0, &format!("{disk_acked}{upgrade_entry}"), &one_pending);
    cli.run(&["list"]).expect(0, &upgrade_entry, &one_pending);

    // ack --all, twice.
    cli.run(&["ack", "--all"])
        .expect(0, "All pending notifications have been acknowledged.\n", "");
    cli.run(&["ack", "--all", "--json"]).expect(
        0,
        &format!(
            "{}\n",
            serde_json::to_string_pretty(
                &json!({"acknowledged": [], "alreadyAcknowledged": [], "expired": []})
            )
            .unwrap()
        ),
        "",
    );
    cli.run(&["list"])
        .expect(0, "There are no notifications.\n", "");

    // --auto-ack prints the pending ones, then acknowledges them.
    let news = cli.send(
        &["--severity", "error", "--title", "Snapshot failed on nas"],
        1,
        &notice(
            "There is 1 pending notification including 1 error. To read it use kopia-notify list.",
        ),
    );
    let ids = vec![disk.clone(), upgrade.clone(), news.clone()];
    cli.run(&["list", "--auto-ack"]).expect(
        0,
        &list_entry("2022-05-19 ERROR Snapshot failed on nas", &news, &ids, None),
        "",
    );
    cli.run(&["list"])
        .expect(0, "There are no notifications.\n", "");
    assert_eq!(kopia_ids(&repo, "notificationAck").len(), 3);
}

#[test]
fn summary_modes_and_exit_codes() {
    let Some(repo) = new_repo() else {
        return;
    };
    let cli = Notify::new(&repo);
    let read = "To read them use kopia-notify list.";
    let me = connection_identity();
    let first = cli.send(
        &["--title", "First"],
        0,
        &notice("There is 1 pending notification. To read it use kopia-notify list."),
    );
    let second = cli.send(
        &["--title", "Second"],
        0,
        &notice(&format!("There are 2 pending notifications. {read}")),
    );
    let error = cli.at("2022-05-19T03:00:13Z").send(
        &["--severity", "error", "--title", "Third"],
        1,
        &notice(&format!(
            "There are 3 pending notifications including 1 error. {read}"
        )),
    );
    let warning = cli.at("2022-05-19T03:00:14Z").send(
        &["--severity", "warning", "--title", "Fourth"],
        1,
        &notice(&format!(
            "There are 4 pending notifications including 1 warning and 1 error. {read}"
        )),
    );
    let fifth = cli.at("2022-05-19T03:00:15Z").send(
        &["--severity", "warning", "--title", "Fifth"],
        1,
        &notice(&format!(
            "There are 5 pending notifications including 2 warnings and 1 error. {read}"
        )),
    );
    let five = notice(&format!(
        "There are 5 pending notifications including 2 warnings and 1 error. {read}"
    ));

    // hidden: no notice, and pending problems do not fail the command.
    let listing = cli.run(&["list", "--notifications=hidden"]);
    listing.stdout_with(0, "");
    let listing = listing.stdout.clone();
    assert_eq!(listing.lines().count(), 10, "{listing}");
    cli.run(&["--notifications", "hidden", "gc"]).expect(
        0,
        "Deleted 0 expired notifications and 0 acknowledgements.\n",
        "",
    );
    let env_hidden = cli.env("KOPIA_NOTIFICATIONS", "hidden");
    env_hidden.run(&["list"]).expect(0, &listing, "");
    // The flag wins over the environment.
    env_hidden
        .run(&["list", "--notifications=summary"])
        .expect(1, &listing, &five);
    cli.run(&["list", "--notifications=summary"])
        .expect(1, &listing, &five);

    // details: every pending notification in full, oldest first, as `show` prints it, then
    // the line.
    let mut same_time = [(&first, "First"), (&second, "Second")];
    same_time.sort();
    let full: String = [
        (same_time[0].0, "NORMAL", same_time[0].1, "03:00:12"),
        (same_time[1].0, "NORMAL", same_time[1].1, "03:00:12"),
        (&error, "ERROR", "Third", "03:00:13"),
        (&warning, "WARNING", "Fourth", "03:00:14"),
        (&fifth, "WARNING", "Fifth", "03:00:15"),
    ]
    .into_iter()
    .map(|(id, severity, title, time)| {
        format!(
            "Notification {id}\n\
             Severity:  {severity}\n\
             To:        all users\n\
             Source:    custom\n\
             From:      {me} (kopia-notify send)\n\
             Created:   2022-05-19 {time} UTC\n\
             Expires:   2022-06-18 {time} UTC\n\
             Status:    pending\n\
             \n\
             {title}\n\
             \n\
             Acknowledged by: nobody yet\n\
             \n"
        )
    })
    .collect();
    cli.env("KOPIA_NOTIFICATIONS", "details")
        .run(&["list"])
        .expect(1, &listing, &format!("{full}{five}"));
    cli.run(&["--notifications=details", "gc"]).expect(
        1,
        "Deleted 0 expired notifications and 0 acknowledgements.\n",
        &format!("{full}{five}"),
    );

    // The command's own failure wins over the pending problems; its output passes through.
    cli.run(&[
        "run",
        "--on-error-notify=none",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ])
    .expect(3, "out\n", &format!("err\n{five}"));
    // A command that succeeds gets exit code 1 from the pending problems, not with hidden.
    cli.run(&["run", "--", "true"]).expect(1, "", &five);
    cli.run(&["--notifications=hidden", "run", "--", "true"])
        .expect(0, "", "");

    // Acknowledging two of the problems: one warning is still pending, so still exit code 1.
    cli.run(&["ack", &error, &warning]).expect(
        1,
        "Acknowledged 2 notifications.\n",
        &notice(&format!(
            "There are 3 pending notifications including 1 warning. {read}"
        )),
    );
    // A bad mode is refused by argument parsing.
    assert_eq!(cli.run(&["list", "--notifications=loud"]).code, 2);
}

/// A prefix shared by two notifications is refused with the candidates; sends more
/// notifications until two IDs share their first digit (at most 17 IDs are needed).
#[test]
fn ambiguous_and_unknown_prefixes() {
    let Some(repo) = new_repo() else {
        return;
    };
    let cli = Notify::new(&repo).env("KOPIA_NOTIFICATIONS", "hidden");
    let mut ids: Vec<String> = Vec::new();
    let shared = loop {
        // Distinct titles: IDs are derived from the content, and the clock is fixed.
        let title = format!("Candidate {}", ids.len());
        let id = cli.send(&["--title", &title], 0, "");
        if let Some(other) = ids.iter().find(|other| other[..1] == id[..1]) {
            break (other.clone(), id);
        }
        ids.push(id);
        assert!(ids.len() <= 16);
    };
    let (a, b) = shared;
    let common = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let prefix = &a[..common];
    for command in ["show", "ack"] {
        let out = cli.run(&[command, prefix]);
        out.expect_error(&[&format!("{prefix:?} is ambiguous"), &a, &b]);
    }
    let unique = &b[..common + 1];
    let out = cli.run(&["show", unique]);
    assert!(out
        .stdout_with(0, "")
        .starts_with(&format!("Notification {b}\n")));
    // An unknown prefix.
    let unknown = (0..16)
        .map(|d| format!("{d:x}"))
        .find(|d| !ids.iter().chain([&b]).any(|id| id.starts_with(d.as_str())))
        .map(|d| format!("{d}0"))
        .unwrap_or_else(|| "g".to_owned());
    cli.run(&["show", &unknown])
        .expect_error(&[&format!("no notification with ID {unknown:?}")]);
}

#[test]
fn run_passes_output_through_and_reports_failures() {
    let Some(repo) = new_repo() else {
        return;
    };
    let cli = Notify::new(&repo);
    let ops = "ops@box";
    let before = repository_files(&repo);

    // Success: output passed through, exit 0, nothing written.
    cli.run(&[
        "--as",
        ops,
        "run",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2",
    ])
    .expect(0, "out\n", "err\n");
    // Failure with --on-error-notify=none: the code is kept, nothing written.
    cli.run(&[
        "--as",
        ops,
        "run",
        "--on-error-notify=none",
        "--",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ])
    .expect(3, "out\n", "err\n");
    assert!(
        repository_files(&repo) == before,
        "a successful or unreported command wrote something"
    );

    // Failure: the notification goes to the current user by default.
    let script = "echo progress; for i in $(seq 1 30); do echo \"line $i\" >&2; done; exit 3";
    let out = cli.run(&["--as", ops, "run", "--", "sh", "-c", script]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (3, "progress\n"),
        "{out:?}"
    );
    let written: Vec<&str> = out.stderr.lines().skip(30).collect();
    let id = written[0]
        .strip_prefix("kopia-notify: the command failed with exit code 3; notification ")
        .and_then(|rest| rest.strip_suffix(" written for ops@box"))
        .unwrap_or_else(|| panic!("{out:?}"))
        .to_owned();
    let stderr_lines: String = (1..=30).map(|i| format!("line {i}\n")).collect();
    assert_eq!(
        out.stderr,
        format!(
            "{stderr_lines}{}\n{}",
            written[0],
            notice("There is 1 pending notification including 1 error. To read it use kopia-notify list.")
        )
    );
    let command_line = format!("sh -c '{script}'");
    let out = cli.run(&["--as", ops, "show", &id, "--json"]);
    let shown = out.json();
    assert_eq!(
        shown["title"],
        format!("Command failed on box: {command_line}")
    );
    assert_eq!(
        shown["message"],
        format!("{command_line} exited with code 3 on box at 2022-05-19T03:00:12Z.")
    );
    let details = shown["details"].as_str().unwrap();
    assert!(details.ends_with("line 29\nline 30"), "{details}");
    assert!(
        !details.contains("progress"),
        "stdout is not in the details"
    );
    assert_eq!(shown["severity"], "error");
    assert_eq!(shown["recipient"], ops);
    assert_eq!(shown["sourceKind"], "custom");
    assert_eq!(
        shown["origin"],
        json!({"user": ops, "command": format!("kopia-notify run -- {command_line}")})
    );
    assert_eq!(shown["expires"], "2022-06-18T03:00:12Z");

    // Addressed to someone else: not pending for the one who ran it.
    let out = cli.run(&[
        "--as",
        ops,
        "run",
        "--on-error-notify=alice@h1",
        "--expires-in=2h",
        "--",
        "false",
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    let for_alice = out
        .stderr
        .lines()
        .next()
        .and_then(|l| {
            l.strip_prefix("kopia-notify: the command failed with exit code 1; notification ")
        })
        .and_then(|rest| rest.strip_suffix(" written for alice@h1"))
        .unwrap_or_else(|| panic!("{out:?}"))
        .to_owned();
    let out = cli.run(&["--as", "alice@h1", "list", "--json"]);
    let listed = out.json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["id"], for_alice.as_str());
    assert_eq!(listed[0]["title"], "Command failed on box: false");
    assert_eq!(listed[0]["expires"], "2022-05-19T05:00:12Z");

    // A program that does not exist: 127, and the notification says so.
    let out = cli.run(&[
        "--as",
        ops,
        "run",
        "--json",
        "--",
        "/nonexistent/program",
        "x",
    ]);
    assert_eq!(out.code, 127, "{out:?}");
    assert_eq!(
        out.stderr,
        format!(
            "kopia-notify: cannot start /nonexistent/program x: No such file or directory (os error 2)\n{}",
            notice("There are 2 pending notifications including 2 errors. To read them use kopia-notify list.")
        )
    );
    let report = out.json();
    assert_eq!(report["exitCode"], 127);
    let missing = report["notification"].as_str().unwrap().to_owned();
    let out = cli.run(&["--as", ops, "show", &missing, "--json"]);
    assert!(
        out.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("/nonexistent/program x could not be started on box at 2022-05-19T03:00:12Z (exit code 127)"),
        "{out:?}"
    );

    // Real Kopia failing to snapshot a missing directory, as the connection's identity.
    let kopia = require_kopia().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let out = cli.run(&[
        OsStr::new("run"),
        OsStr::new("--"),
        kopia.path().as_os_str(),
        OsStr::new(&format!("--config-file={}", repo.config_file().display())),
        OsStr::new(&format!("--log-dir={}", logs.path().display())),
        OsStr::new("snapshot"),
        OsStr::new("create"),
        OsStr::new("/missing/path"),
    ]);
    assert_eq!(out.code, 1, "kopia's own exit code: {out:?}");
    assert!(
        out.stderr
            .contains("lstat /missing/path: no such file or directory"),
        "kopia's stderr passes through: {out:?}"
    );
    let out = cli.run(&["list", "--json", "--min-severity=error"]);
    let listed = out.json();
    let snapshot = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["sourceKind"] == "snapshot")
        .unwrap_or_else(|| panic!("no snapshot notification: {listed}"));
    assert_eq!(snapshot["title"], format!("Snapshot failed on {HOSTNAME}"));
    assert_eq!(snapshot["recipient"], connection_identity());
    assert!(
        snapshot["details"]
            .as_str()
            .unwrap()
            .contains("lstat /missing/path"),
        "{snapshot}"
    );
    assert!(
        snapshot["message"]
            .as_str()
            .unwrap()
            .contains("snapshot create /missing/path exited with code 1 on kopia-harness"),
        "{snapshot}"
    );
    let written = kopia_manifests(&repo, "notification");
    assert_eq!(written.len(), 4, "{written:?}");
}

#[test]
fn kopia_sees_exactly_what_we_wrote() {
    let Some(repo) = new_repo() else {
        return;
    };
    let cli = Notify::new(&repo).env("KOPIA_NOTIFICATIONS", "hidden");
    let dir = tempfile::tempdir().unwrap();
    let details = dir.path().join("log.txt");
    fs::write(&details, "ERROR error running maintenance: lock\n").unwrap();
    let full = cli.send(
        &[
            "--severity",
            "error",
            "--to",
            "all",
            "--title",
            "Maintenance failed on SOME_MACHINE",
            "--message",
            "kopia maintenance run --full exited with code 1.",
            "--details-file",
            details.to_str().unwrap(),
            "--link",
            "https://kopia.io/docs/advanced/maintenance/",
            "--expires-in",
            "1d12h",
            "--source",
            "maintenance",
            "--snapshot-source",
            "root@SOME_MACHINE:/etc",
        ],
        0,
        "",
    );
    let minimal = cli.send(&["--to", "bob@h2", "--title", "Hello Bob"], 0, "");
    let ack_time = "2022-05-19T08:15:40Z";
    cli.at(ack_time)
        .run(&["--as", "alice@h1", "ack", &full])
        .expect(0, "Acknowledged 1 notification.\n", "");

    let me = connection_identity();
    let mut expected = vec![
        (
            full.clone(),
            json!({
                "originHost": HOSTNAME,
                "recipient": "*",
                "schemaVersion": "1",
                "severity": "error",
                "sourceKind": "maintenance",
                "type": "notification"
            }),
            json!({
                "schemaVersion": 1,
                "title": "Maintenance failed on SOME_MACHINE",
                "message": "kopia maintenance run --full exited with code 1.",
                "details": "ERROR error running maintenance: lock\n",
                "created": "2022-05-19T03:00:12Z",
                "expires": "2022-05-20T15:00:12Z",
                "link": "https://kopia.io/docs/advanced/maintenance/",
                "origin": {"user": me, "command": "kopia-notify send"},
                "snapshotSource": {"host": "SOME_MACHINE", "userName": "root", "path": "/etc"}
            }),
        ),
        (
            minimal.clone(),
            json!({
                "originHost": HOSTNAME,
                "recipient": "bob@h2",
                "schemaVersion": "1",
                "severity": "normal",
                "sourceKind": "custom",
                "type": "notification"
            }),
            json!({
                "schemaVersion": 1,
                "title": "Hello Bob",
                "message": "",
                "details": "",
                "created": "2022-05-19T03:00:12Z",
                "expires": "2022-06-18T03:00:12Z",
                "origin": {"user": me, "command": "kopia-notify send"}
            }),
        ),
    ];
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    let listed = kopia_manifests(&repo, "notification");
    assert_eq!(listed.len(), 2, "{listed:?}");
    for (manifest, (id, labels, payload)) in listed.iter().zip(&expected) {
        assert_eq!(manifest["id"], id.as_str());
        assert_eq!(manifest["labels"], *labels, "labels of {id}");
        let shown = kopia_payload(&repo, id);
        assert_eq!(shown, *payload, "payload of {id}");
        // Kopia's length is the byte length of the compact payload we wrote.
        assert_eq!(
            manifest["length"],
            serde_json::to_string(&shown).unwrap().len(),
            "length of {id}"
        );
    }
    // The documented label filters select them.
    assert_eq!(
        repo.manifest_list_json(&["type:notification", "recipient:bob@h2"])[0]["id"],
        minimal.as_str()
    );
    assert_eq!(
        repo.manifest_list_json(&["type:notification", "severity:error", "schemaVersion:1"])
            .as_array()
            .unwrap()
            .len(),
        1
    );

    let acks = kopia_manifests(&repo, "notificationAck");
    assert_eq!(acks.len(), 1, "{acks:?}");
    let ack_id = acks[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        acks[0]["labels"],
        json!({"type": "notificationAck", "notificationId": full, "user": "alice@h1", "schemaVersion": "1"})
    );
    assert_eq!(
        kopia_payload(&repo, &ack_id),
        json!({"acknowledgedAt": ack_time, "notificationId": full, "schemaVersion": 1, "user": "alice@h1"})
    );
    assert_eq!(
        repo.manifest_list_json(&["type:notificationAck", "user:alice@h1"])[0]["id"],
        ack_id.as_str()
    );

    // Kopia deletes the notification: our list no longer has it, and gc drops the orphan ack.
    repo.run_ok(&["manifest", "delete", &full, "--dangerous-commands=enabled"]);
    let alice = cli.at(ack_time);
    alice.run(&["--as", "alice@h1", "list", "--all"]).expect(
        0,
        "There are no notifications.\n",
        "",
    );
    alice
        .run(&["show", &full])
        .expect_error(&[&format!("no notification with ID {full:?}")]);
    let out = alice.run(&["gc", "--json"]);
    assert_eq!(
        out.json(),
        json!({"notifications": [], "acknowledgements": [ack_id]}),
        "{out:?}"
    );
    assert_eq!(kopia_ids(&repo, "notificationAck"), Vec::<String>::new());
    assert_eq!(kopia_ids(&repo, "notification"), vec![minimal.clone()]);
    alice.run(&["--as", "bob@h2", "list"]).expect(
        0,
        &list_entry(
            "2022-05-19 NORMAL Hello Bob",
            &minimal,
            std::slice::from_ref(&minimal),
            None,
        ),
        "",
    );
}

#[test]
fn two_identities_on_one_repository() {
    let Some(repo) = new_repo() else {
        return;
    };
    let cli = Notify::new(&repo);
    let hidden = cli.env("KOPIA_NOTIFICATIONS", "hidden");
    let everyone = hidden.send(&["--severity", "warning", "--title", "For everyone"], 0, "");
    let for_alice = hidden.send(&["--to", "alice@h1", "--title", "For Alice"], 0, "");
    let for_bob = hidden.send(&["--to", "bob@h2", "--title", "For Bob"], 0, "");
    let all = vec![everyone.clone(), for_alice.clone(), for_bob.clone()];
    let everyone_entry = list_entry("2022-05-19 WARNING For everyone", &everyone, &all, None);
    let ordered = |a: &str, b: &str| {
        // Equal creation times: ordered by ID.
        if a < b {
            (a.to_owned(), b.to_owned())
        } else {
            (b.to_owned(), a.to_owned())
        }
    };
    let two = notice(
        "There are 2 pending notifications including 1 warning. To read them use kopia-notify list.",
    );
    let one = notice(
        "There is 1 pending notification including 1 warning. To read it use kopia-notify list.",
    );
    for (who, own, title) in [
        ("alice@h1", &for_alice, "For Alice"),
        ("bob@h2", &for_bob, "For Bob"),
    ] {
        let own_entry = list_entry(&format!("2022-05-19 NORMAL {title}"), own, &all, None);
        let (first, _) = ordered(&everyone, own);
        let expected = if first == everyone {
            format!("{everyone_entry}{own_entry}")
        } else {
            format!("{own_entry}{everyone_entry}")
        };
        cli.run(&["--as", who, "list"]).expect(1, &expected, &two);
    }
    // The connection's own identity only has the one to everyone.
    cli.run(&["list"]).expect(1, &everyone_entry, &one);
    // Nobody may acknowledge someone else's notification.
    cli.run(&["--as", "bob@h2", "ack", &for_alice])
        .expect_error(&[&format!(
            "notification {for_alice} is addressed to alice@h1, not to bob@h2"
        )]);

    // Alice acknowledges everything: Bob and the connection still have the one to everyone.
    let ack_time = "2022-05-19T09:00:00Z";
    cli.at(ack_time)
        .run(&["--as", "alice@h1", "ack", "--all"])
        .expect(0, "All pending notifications have been acknowledged.\n", "");
    cli.run(&["--as", "alice@h1", "list"])
        .expect(0, "There are no notifications.\n", "");
    let out = cli.run(&["--as", "alice@h1", "list", "--all"]);
    let text = out.stdout_with(0, "");
    assert!(
        text.contains("WARNING For everyone [acknowledged]\n"),
        "{text}"
    );
    assert!(text.contains("NORMAL For Alice [acknowledged]\n"), "{text}");
    assert!(!text.contains("For Bob"), "{text}");
    let out = cli.run(&["--as", "bob@h2", "list", "--json"]);
    out.stdout_with(1, &two);
    let statuses: Vec<(String, String)> = out
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["title"].as_str().unwrap().to_owned(),
                n["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(statuses.len(), 2);
    assert!(statuses.iter().all(|(_, status)| status == "pending"));
    cli.run(&["list"]).expect(1, &everyone_entry, &one);
    // Bob sees who acknowledged it; it is still pending for him.
    let out = cli.run(&["--as", "bob@h2", "show", &everyone]);
    let text = out.stdout_with(1, &two);
    assert!(text.contains("\nStatus:    pending\n"), "{text}");
    assert!(
        text.ends_with("\nAcknowledged by:\n  alice@h1 at 2022-05-19 09:00:00 UTC\n"),
        "{text}"
    );
    // Bob's own acknowledgement is his alone, and `show` lists both, oldest first.
    let bob_time = "2022-05-19T10:00:00Z";
    cli.at(bob_time)
        .run(&["--as", "bob@h2", "ack", &everyone, &for_bob])
        .expect(0, "Acknowledged 2 notifications.\n", "");
    let out = cli.run(&["show", &everyone]);
    let text = out.stdout_with(1, &one);
    assert!(
        text.ends_with(
            "\nAcknowledged by:\n  alice@h1 at 2022-05-19 09:00:00 UTC\n  bob@h2 at 2022-05-19 10:00:00 UTC\n"
        ),
        "{text}"
    );
    // The acknowledgements are separate manifests, one per user and notification.
    let acks = kopia_manifests(&repo, "notificationAck");
    let mut pairs: Vec<(String, String)> = acks
        .iter()
        .map(|a| {
            (
                a["labels"]["user"].as_str().unwrap().to_owned(),
                a["labels"]["notificationId"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    pairs.sort();
    let mut expected = vec![
        ("alice@h1".to_owned(), everyone.clone()),
        ("alice@h1".to_owned(), for_alice.clone()),
        ("bob@h2".to_owned(), everyone.clone()),
        ("bob@h2".to_owned(), for_bob.clone()),
    ];
    expected.sort();
    assert_eq!(pairs, expected);
}

#[test]
fn expiry_with_a_fixed_clock() {
    let Some(repo) = new_repo() else {
        return;
    };
    let cli = Notify::new(&repo);
    let short = cli.send(
        &["--severity", "warning", "--title", "Short-lived", "--expires-in", "1d"],
        1,
        &notice(
            "There is 1 pending notification including 1 warning. To read it use kopia-notify list.",
        ),
    );
    let long = cli.at("2022-05-19T03:00:13Z").send(
        &["--title", "Long-lived"],
        1,
        &notice("There are 2 pending notifications including 1 warning. To read them use kopia-notify list."),
    );
    let ids = vec![short.clone(), long.clone()];
    let short_entry = |mark: &str| {
        list_entry(
            &format!("2022-05-19 WARNING Short-lived{mark}"),
            &short,
            &ids,
            None,
        )
    };
    let long_entry = list_entry("2022-05-19 NORMAL Long-lived", &long, &ids, None);
    let one_normal = notice("There is 1 pending notification. To read it use kopia-notify list.");

    // Just before the expiry it is pending; at the expiry (inclusive) it is not.
    cli.at("2022-05-20T03:00:11Z")
        .run(&["list", "--notifications=hidden"])
        .expect(0, &format!("{}{long_entry}", short_entry("")), "");
    let at_expiry = cli.at("2022-05-20T03:00:12Z");
    at_expiry.run(&["list"]).expect(0, &long_entry, &one_normal);

    // Two days later: not listed, not in the summary (so exit 0), marked in --all.
    let later = cli.at("2022-05-21T03:00:12Z");
    later.run(&["list"]).expect(0, &long_entry, &one_normal);
    later.run(&["list", "--all"]).expect(
        0,
        &format!("{}{long_entry}", short_entry(" [expired]")),
        &one_normal,
    );
    let out = later.run(&["show", &short, "--json"]);
    assert_eq!(out.json()["status"], "expired");
    // Expired notifications are not acknowledged.
    later.run(&["ack", &short]).expect(
        0,
        &format!("Acknowledged 0 notifications.\nSkipped {short}: expired.\n"),
        &one_normal,
    );
    assert_eq!(kopia_ids(&repo, "notificationAck"), Vec::<String>::new());

    // gc deletes it, in Kopia's view too.
    later.run(&["gc"]).expect(
        0,
        "Deleted 1 expired notification and 0 acknowledgements.\n",
        &one_normal,
    );
    assert_eq!(kopia_ids(&repo, "notification"), vec![long.clone()]);
    later.run(&["gc"]).expect(
        0,
        "Deleted 0 expired notifications and 0 acknowledgements.\n",
        &one_normal,
    );

    // The default lifetime is 30 days; an acknowledgement of an expired one goes with it.
    cli.at("2022-06-01T00:00:00Z")
        .run(&["ack", "--all"])
        .expect(0, "All pending notifications have been acknowledged.\n", "");
    let month_later = cli.at("2022-06-18T03:00:13Z");
    month_later
        .run(&["list"])
        .expect(0, "There are no notifications.\n", "");
    month_later.run(&["gc"]).expect(
        0,
        "Deleted 1 expired notification and 1 acknowledgement.\n",
        "",
    );
    assert_eq!(kopia_ids(&repo, "notification"), Vec::<String>::new());
    assert_eq!(kopia_ids(&repo, "notificationAck"), Vec::<String>::new());
}

#[test]
fn bad_input_is_one_line_exit_2_and_writes_nothing() {
    let Some(repo) = new_repo() else {
        return;
    };
    let cli = Notify::new(&repo).env("KOPIA_NOTIFICATIONS", "hidden");
    let for_alice = cli.send(&["--to", "alice@h1", "--title", "For Alice"], 0, "");
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = format!("touch {}", marker.display());
    let not_utf8 = dir.path().join("binary.bin");
    fs::write(&not_utf8, [0xff, 0xfe, 0x00]).unwrap();
    let unknown = "0123456789abcdef0123456789abcdef";
    let before = repository_files(&repo);

    let dir_path = dir.path().to_str().unwrap();
    let not_utf8_path = not_utf8.to_str().unwrap();
    let missing_file = dir.path().join("missing.txt");
    let missing_path = missing_file.to_str().unwrap();
    let long_title = "x".repeat(201);
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (vec!["show", unknown], vec![unknown, "no notification"]),
        (vec!["ack", unknown], vec![unknown, "no notification"]),
        // One bad ID among good ones acknowledges none of them.
        (
            vec![
                "--as", "alice@h1", "ack", "--item", &for_alice, "--item", unknown,
            ],
            vec![unknown],
        ),
        (
            vec!["ack", &for_alice],
            vec!["addressed to alice@h1, not to tester@kopia-harness"],
        ),
        (
            vec!["send", "--severity", "fatal", "--title", "x"],
            vec!["invalid severity \"fatal\""],
        ),
        (
            vec!["list", "--min-severity", "loud"],
            vec!["invalid severity \"loud\""],
        ),
        (
            vec!["send", "--to", "bob", "--title", "x"],
            vec!["invalid recipient \"bob\""],
        ),
        (
            vec!["send", "--to", "bob@h:/path", "--title", "x"],
            vec!["invalid recipient"],
        ),
        (vec!["send", "--title", ""], vec!["the title is empty"]),
        (vec!["send", "--title", "   "], vec!["title"]),
        (vec!["send", "--title", "two\nlines"], vec!["one line"]),
        (vec!["send", "--title", &long_title], vec!["title", "200"]),
        (
            vec!["send", "--title", "x", "--expires-in", "3x"],
            vec!["invalid duration \"3x\""],
        ),
        (
            vec!["send", "--title", "x", "--expires-in", "0d"],
            vec!["invalid duration"],
        ),
        (
            vec!["send", "--title", "x", "--expires-in", "3651d"],
            vec!["3650 days"],
        ),
        (
            vec!["send", "--title", "x", "--details-file", missing_path],
            vec!["cannot read details file", "missing.txt"],
        ),
        (
            vec!["send", "--title", "x", "--details-file", dir_path],
            vec!["cannot read details file", dir_path],
        ),
        (
            vec!["send", "--title", "x", "--details-file", not_utf8_path],
            vec!["binary.bin", "UTF-8"],
        ),
        (
            vec!["send", "--title", "x", "--link", "ftp://example.com/"],
            vec!["invalid link"],
        ),
        (
            vec!["send", "--title", "x", "--source", "weather"],
            vec!["weather"],
        ),
        (
            vec!["send", "--title", "x", "--snapshot-source", "/no/user"],
            vec!["invalid snapshot source"],
        ),
        (
            vec!["--as", "nobody", "list"],
            vec!["invalid identity \"nobody\""],
        ),
        (
            vec!["run", "--on-error-notify=bob", "--", "sh", "-c", &touch],
            vec!["invalid recipient \"bob\""],
        ),
        (
            vec!["run", "--expires-in=soon", "--", "sh", "-c", &touch],
            vec!["invalid duration \"soon\""],
        ),
    ];
    for (args, needles) in &cases {
        let out = cli.run(args);
        assert_eq!(out.code, 2, "{args:?}: {out:?}");
        out.expect_error(needles);
    }
    // The same with the summary on: an error is still one line (no notice after it).
    Notify::new(&repo)
        .run(&["show", unknown])
        .expect_error(&[unknown]);
    Notify::new(&repo)
        .at("yesterday")
        .run(&["list"])
        .expect_error(&["KOPIA_NOTIFY_NOW"]);
    assert!(
        !marker.exists(),
        "run started its command despite bad options"
    );
    assert!(
        repository_files(&repo) == before,
        "a refused command wrote something"
    );
}

#[test]
fn unreachable_repository() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("gone");
    let config = dir.path().join("repository.config");
    fs::write(
        &config,
        format!(
            r#"{{"storage":{{"type":"filesystem","config":{{"path":"{}"}}}},"hostname":"h","username":"u"}}"#,
            storage.display()
        ),
    )
    .unwrap();
    let cli = Notify::with_config(config);
    for args in [
        vec!["list"],
        vec!["show", "0123"],
        vec!["ack", "--all"],
        vec!["send", "--title", "x"],
        vec!["gc"],
    ] {
        cli.run(&args).expect_error(&["unreachable", "gone"]);
    }
    // `run` still runs the command and keeps its code; the notification cannot be written.
    let out = cli.run(&["run", "--", "sh", "-c", "echo out; exit 4"]);
    assert_eq!((out.code, out.stdout.as_str()), (4, "out\n"), "{out:?}");
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{out:?}");
    assert!(
        lines[0].starts_with("kopia-notify: could not write the failure notification: ")
            && lines[0].contains("gone"),
        "{out:?}"
    );
    assert!(
        lines[1].starts_with("kopia-notify: cannot check for pending notifications: "),
        "{out:?}"
    );
    assert!(!storage.exists(), "nothing was created");
}

/// A connection made with `kopia repository connect --readonly` is never written: every
/// writing command refuses with one line naming the config file, and the repository's files
/// stay as they were; reading works as usual.
#[test]
fn read_only_connections_are_never_written() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let repo = KopiaRepo::create(
        &kopia,
        &CreateOptions {
            key_derivation: Some("pbkdf2-sha256-600000"),
            ..CreateOptions::default()
        },
    );
    let writer = Notify::new(&repo).env("KOPIA_NOTIFICATIONS", "hidden");
    let id = writer.send(&["--title", "Disk full", "--expires-in", "1h"], 0, "");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("readonly.config");
    let connected = Command::new(kopia.path())
        .env("KOPIA_PASSWORD", PASSWORD)
        .env("KOPIA_CHECK_FOR_UPDATES", "false")
        .env("KOPIA_USE_KEYRING", "false")
        .arg(format!("--config-file={}", config.display()))
        .arg(format!("--log-dir={}", dir.path().join("logs").display()))
        .args(["repository", "connect", "filesystem", "--readonly"])
        .arg(format!("--path={}", repo.repo_dir().display()))
        .arg(format!(
            "--cache-directory={}",
            dir.path().join("cache").display()
        ))
        .arg(format!("--override-username={USERNAME}"))
        .arg(format!("--override-hostname={HOSTNAME}"))
        .output()
        .unwrap();
    assert!(connected.status.success(), "{connected:?}");
    let config_text = fs::read_to_string(&config).unwrap();
    assert!(config_text.contains("\"readonly\": true"), "{config_text}");

    let reader = Notify::with_config(config.clone()).env("KOPIA_NOTIFICATIONS", "hidden");
    let listed = reader.run(&["list", "--json"]);
    assert_eq!(listed.code, 0, "{listed:?}");
    assert_eq!(listed.json()[0]["id"], id.as_str());

    let before = repository_files(&repo);
    let refusal = format!(
        "repository {} is connected read-only; not written",
        config.display()
    );
    let later = reader.at("2022-05-19T05:00:00Z");
    let payload = dir.path().join("payload.json");
    fs::write(&payload, "{}").unwrap();
    let payload_arg = format!("--file={}", payload.display());
    let cases: Vec<(&Notify, Vec<&str>)> = vec![
        (&reader, vec!["send", "--title", "Nope"]),
        (&reader, vec!["ack", &id]),
        (&reader, vec!["ack", "--all"]),
        (&later, vec!["gc"]),
        (
            &reader,
            vec!["manifest", "put", "--label=type:x", &payload_arg],
        ),
        (&reader, vec!["manifest", "delete", &id]),
        (&reader, vec!["run", "--", "false"]),
    ];
    for (cli, args) in cases {
        let out = cli.run(&args);
        if args[0] == "run" {
            // `run` keeps its command's exit code and says why no notification was written.
            assert_eq!(out.code, 1, "{out:?}");
            assert!(out.stderr.contains(&refusal), "{args:?}: {out:?}");
        } else {
            out.expect_error(&[&refusal]);
        }
        assert!(
            repository_files(&repo) == before,
            "{args:?} wrote to the repository"
        );
    }
}
