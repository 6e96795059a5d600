//! `kopia-notify check`'s upgrade check against a releases endpoint in GitHub's shape served on
//! loopback by the test itself (canned answers, every request counted): a newer Kopia notifies
//! once and Kopia lists it, the answer is remembered for the day, equal versions, drafts and
//! pre-releases say nothing, an endpoint that is down or silent costs no more than the time
//! limit, turned off asks nothing, and installing the newer version resolves it.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo, PASSWORD};
use serde_json::{json, Value};

const KOPIA_RELEASES: &str = "/repos/kopia/kopia/releases/latest";
const OUR_RELEASES: &str = "/repos/kopia-notifier/kopia-notifier/releases/latest";
const OUR_VERSION: &str = env!("CARGO_PKG_VERSION");

/// A releases endpoint on loopback: canned answers by path, and the paths asked.
struct Endpoint {
    url: String,
    answers: Arc<Mutex<BTreeMap<String, (u16, String)>>>,
    asked: Arc<Mutex<Vec<String>>>,
}

fn release(tag: &str, draft: bool, prerelease: bool) -> String {
    json!({
        "tag_name": tag,
        "name": tag,
        "html_url": format!("https://github.com/kopia/kopia/releases/tag/{tag}"),
        "draft": draft,
        "prerelease": prerelease,
        "assets": [],
    })
    .to_string()
}

impl Endpoint {
    fn start() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let answers = Arc::new(Mutex::new(BTreeMap::new()));
        let asked = Arc::new(Mutex::new(Vec::new()));
        let (answers_, asked_) = (Arc::clone(&answers), Arc::clone(&asked));
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                serve(stream, &answers_, &asked_);
            }
        });
        Endpoint {
            url,
            answers,
            asked,
        }
    }

    fn answer(&self, path: &str, body: String) {
        self.answers
            .lock()
            .unwrap()
            .insert(path.to_string(), (200, body));
    }

    fn requests(&self) -> usize {
        self.asked.lock().unwrap().len()
    }
}

/// One HTTP/1.1 exchange: the request line and headers, then the canned answer (404 for an
/// unknown path) and the connection closed.
fn serve(
    stream: TcpStream,
    answers: &Mutex<BTreeMap<String, (u16, String)>>,
    asked: &Mutex<Vec<String>>,
) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        match reader.read_line(&mut header) {
            Ok(0) | Err(_) => return,
            Ok(_) if header == "\r\n" => break,
            Ok(_) => {}
        }
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    asked.lock().unwrap().push(path.clone());
    let (status, body) = answers
        .lock()
        .unwrap()
        .get(&path)
        .cloned()
        .unwrap_or((404, r#"{"message":"Not Found"}"#.into()));
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// `kopia` printing `version`, as an installation of another Kopia would.
fn fake_kopia(dir: &Path, version: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let path = dir.join("kopia");
    fs::write(&path, format!("#!/bin/sh\necho '{version} build: test'\n")).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

struct Machine<'a> {
    repo: &'a KopiaRepo,
    state: tempfile::TempDir,
    releases_url: String,
    /// `KOPIA_BIN`, or `None` to find `kopia` on `PATH`.
    kopia_bin: Option<PathBuf>,
    path: Option<PathBuf>,
}

impl Machine<'_> {
    fn command(&self, now: DateTime<Utc>, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kopia-notify"));
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KOPIA_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("KOPIA_PASSWORD", PASSWORD)
            .env("KOPIA_NOTIFY_NOW", now.to_rfc3339())
            .env("KOPIA_NOTIFICATIONS", "hidden")
            .env("KOPIA_NOTIFY_RELEASES_URL", &self.releases_url)
            .env("XDG_STATE_HOME", self.state.path())
            .arg(format!(
                "--config-file={}",
                self.repo.config_file().display()
            ))
            .args(args);
        if let Some(bin) = &self.kopia_bin {
            cmd.env("KOPIA_BIN", bin);
        }
        if let Some(dir) = &self.path {
            let path = std::env::var_os("PATH").unwrap_or_default();
            let mut dirs = vec![dir.clone()];
            dirs.extend(std::env::split_paths(&path));
            cmd.env("PATH", std::env::join_paths(dirs).unwrap());
        }
        cmd
    }

    fn run(&self, now: DateTime<Utc>, args: &[&str]) -> Output {
        self.command(now, args).output().unwrap()
    }

    #[track_caller]
    fn check(&self, now: DateTime<Utc>) -> Value {
        let out = self.run(now, &["check", "--json"]);
        assert!(
            out.status.success(),
            "check failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("check --json prints JSON")
    }

    fn state_file(&self) -> PathBuf {
        self.state
            .path()
            .join("kopia-notifier")
            .join("releases.json")
    }
}

fn upgrades(report: &Value) -> Vec<(String, String)> {
    report["new"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "upgrade-available")
        .map(|n| {
            (
                n["title"].as_str().unwrap().to_owned(),
                n["severity"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn machine<'a>(repo: &'a KopiaRepo, endpoint: &Endpoint, kopia_bin: &Path) -> Machine<'a> {
    Machine {
        repo,
        state: tempfile::tempdir().unwrap(),
        releases_url: endpoint.url.clone(),
        kopia_bin: Some(kopia_bin.to_path_buf()),
        path: None,
    }
}

#[test]
fn a_newer_release_notifies_once_a_day_until_installed() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    let endpoint = Endpoint::start();
    endpoint.answer(KOPIA_RELEASES, release("v0.99.0", false, false));
    endpoint.answer(
        OUR_RELEASES,
        release(&format!("v{OUR_VERSION}"), false, false),
    );
    let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
    let machine = machine(&repo, &endpoint, kopia.path());

    let report = machine.check(now);
    assert_eq!(
        upgrades(&report),
        [("Kopia v0.99.0 is available".into(), "normal".into())],
        "{report}"
    );
    assert_eq!(report["new"][0]["recipient"], "tester@kopia-harness");
    assert_eq!(endpoint.requests(), 2, "Kopia's releases and ours");
    let listed = repo.manifest_list_json(&["derived:upgrade-available"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["labels"]["severity"], "normal");
    assert_eq!(
        listed[0]["labels"]["subject"],
        "kopia on tester@kopia-harness"
    );
    assert_eq!(listed[0]["labels"]["trigger"], "v0.99.0");
    let state = machine.state_file();
    assert_eq!(
        fs::metadata(&state).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(fs::read_to_string(&state)
        .unwrap()
        .contains(&format!("{}{KOPIA_RELEASES}", endpoint.url)));

    // The same day: no request, nothing new written.
    let report = machine.check(now + chrono::Duration::hours(20));
    assert_eq!(endpoint.requests(), 2);
    assert_eq!(report["written"], false, "{report}");
    assert_eq!(report["unchanged"], 1);

    // Kopia Notifier has a release too: the next day asks again and notifies about it.
    endpoint.answer(OUR_RELEASES, release("v99.0.0", false, false));
    let next_day = now + chrono::Duration::days(1);
    let report = machine.check(next_day);
    assert_eq!(endpoint.requests(), 4);
    assert_eq!(
        upgrades(&report),
        [(
            "Kopia Notifier v99.0.0 is available".into(),
            "normal".into()
        )],
        "{report}"
    );

    // Kopia v0.99.0 gets installed (first on PATH): its notification resolves, from the
    // remembered answer; ours resolves once the endpoint withdraws that release.
    let bin = tempfile::tempdir().unwrap();
    fake_kopia(bin.path(), "v0.99.0");
    let installed = Machine {
        kopia_bin: None,
        path: Some(bin.path().to_path_buf()),
        ..machine
    };
    let report = installed.check(next_day);
    assert_eq!(endpoint.requests(), 4);
    let resolved = report["resolved"].as_array().unwrap();
    assert_eq!(resolved.len(), 1, "{report}");
    assert_eq!(resolved[0]["reason"], "Kopia v0.99.0 or later is installed");
    endpoint.answer(
        OUR_RELEASES,
        release(&format!("v{OUR_VERSION}"), false, false),
    );
    let report = installed.check(next_day + chrono::Duration::days(1));
    let resolved = report["resolved"].as_array().unwrap();
    assert_eq!(resolved.len(), 1, "{report}");
    assert_eq!(
        resolved[0]["reason"],
        "Kopia Notifier v99.0.0 is no longer the latest release"
    );
    assert!(report["new"].as_array().unwrap().is_empty(), "{report}");
}

#[test]
fn equal_versions_drafts_prereleases_and_no_endpoint_say_nothing() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    let endpoint = Endpoint::start();
    let now: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();

    endpoint.answer(
        KOPIA_RELEASES,
        release(kopia_fixtures::KOPIA_VERSION, false, false),
    );
    endpoint.answer(
        OUR_RELEASES,
        release(&format!("v{OUR_VERSION}"), false, false),
    );
    let report = machine(&repo, &endpoint, kopia.path()).check(now);
    assert_eq!(upgrades(&report), [], "{report}");
    assert_eq!(endpoint.requests(), 2);

    endpoint.answer(KOPIA_RELEASES, release("v0.99.0-rc1", false, true));
    endpoint.answer(OUR_RELEASES, release("v99.0.0", true, false));
    let report = machine(&repo, &endpoint, kopia.path()).check(now);
    assert_eq!(upgrades(&report), [], "{report}");
    assert_eq!(endpoint.requests(), 4);

    // Turned off, by flag or environment: not a single request.
    endpoint.answer(KOPIA_RELEASES, release("v0.99.0", false, false));
    let off = machine(&repo, &endpoint, kopia.path());
    let out = off.run(now, &["check", "--json", "--no-upgrade-check"]);
    assert!(out.status.success());
    let out = off
        .command(now, &["check", "--json"])
        .env("KOPIA_NOTIFY_NO_UPGRADE_CHECK", "1")
        .output()
        .unwrap();
    assert!(out.status.success());
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(upgrades(&report), []);
    assert_eq!(endpoint.requests(), 4);
    assert!(!off.state_file().exists());

    // Nobody listening, and a server that never answers: check succeeds, quietly, within the
    // time limit (3 s) plus opening the repository.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let closed_url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    std::thread::spawn(move || {
        let held: Vec<_> = silent.incoming().take(2).collect();
        std::thread::sleep(Duration::from_secs(30));
        drop(held);
    });
    for url in [closed_url, silent_url] {
        let offline = Machine {
            releases_url: url.clone(),
            ..machine(&repo, &endpoint, kopia.path())
        };
        let started = Instant::now();
        let out = offline.run(now, &["check", "--json"]);
        let took = started.elapsed();
        assert!(out.status.success(), "{url}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "",
            "{url}: nothing on stderr"
        );
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(upgrades(&report), [], "{url}: {report}");
        assert!(took < Duration::from_secs(8), "{url}: took {took:?}");
        assert!(!offline.state_file().exists(), "{url}: nothing remembered");
    }
    assert!(repo
        .manifest_list_json(&["derived:upgrade-available"])
        .as_array()
        .unwrap()
        .is_empty());
}
