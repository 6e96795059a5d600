//! Repositories behind rclone, end to end: real Kopia creates one with `kopia repository
//! create rclone --remote-path=<dir>` (rclone on PATH), and `kopia-notify` opens the same
//! `repository.config`, which makes it start its own private `rclone serve webdav`: it lists
//! exactly what Kopia lists, writes what Kopia sees, and leaves no rclone running (nor its
//! private files) once it exits.

use std::fs;
use std::path::Path;
use std::process::Output;

use kopia_fixtures::cli;
use kopia_fixtures::servers_webdav::require_rclone;
use kopia_fixtures::shared_repo::SharedRepo;
use kopia_fixtures::{require_kopia, KopiaRepo};
use tempfile::TempDir;

/// Runs our CLI with its own temporary directory, so what rclone needed can be seen gone.
fn kopia_notify(config: &Path, tmp: &Path, args: &[&str]) -> Output {
    cli::command(env!("CARGO_BIN_EXE_kopia-notify"), config)
        .env("TMPDIR", tmp)
        .args(args)
        .output()
        .expect("run kopia-notify")
}

/// The command lines of running rclone processes that serve `remote`.
fn rclone_processes_serving(remote: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_rclone = args.first().is_some_and(|a| a.ends_with("rclone"));
        if is_rclone && args.iter().any(|a| a == remote) {
            found.push(args.join(" "));
        }
    }
    found
}

fn no_rclone_left(remote: &str, tmp: &Path) {
    // Reaped before our CLI exits; allow the kernel a moment to drop the entry.
    for _ in 0..20 {
        if rclone_processes_serving(remote).is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(rclone_processes_serving(remote), Vec::<String>::new());
    let left: Vec<_> = fs::read_dir(tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "private files left behind: {left:?}");
}

#[test]
fn kopia_and_we_share_a_repository_behind_rclone() {
    if require_rclone().is_none() {
        return;
    }
    let Some(kopia) = require_kopia() else {
        return;
    };
    let remote_dir = TempDir::new().unwrap();
    let remote = remote_dir.path().to_string_lossy().into_owned();
    let repo = KopiaRepo::create_on(
        &kopia,
        &["rclone".to_owned(), format!("--remote-path={remote}")],
    );
    let tree = repo.make_tree(2, 2);
    repo.snapshot(&tree);
    let tmp = TempDir::new().unwrap();
    let config = repo.config_file();
    // Each run of our CLI starts its own rclone, and leaves none running once it exits.
    let shared = SharedRepo::new(&repo, |args| {
        let out = kopia_notify(&config, tmp.path(), args);
        no_rclone_left(&remote, tmp.path());
        out
    });
    shared.assert_same_manifests();
    let (id, _) = shared.send_notification("warning", "Backup failed behind rclone");
    shared.assert_kopia_verifies_and_maintains(&[&id], || repo.maintenance_full());
    // The remote holds Kopia's sharded layout, our blobs included.
    assert!(remote_dir.path().join(".shards").is_file());
    assert!(remote_dir.path().join("kopia.repository.f").is_file());
}

#[test]
fn an_unusable_remote_or_binary_is_an_error_naming_it() {
    if require_rclone().is_none() {
        return;
    }
    let dir = TempDir::new().unwrap();
    let tmp = TempDir::new().unwrap();
    let config = dir.path().join("repository.config");
    let write_config = |storage: serde_json::Value| {
        let json = serde_json::json!({
            "storage": {"type": "rclone", "config": storage},
            "caching": {"cacheDirectory": dir.path().join("cache")},
            "hostname": "h", "username": "u", "description": "", "enableActions": false,
            "formatBlobCacheDuration": 900000000000u64
        });
        fs::write(&config, serde_json::to_vec(&json).unwrap()).unwrap();
    };

    write_config(serde_json::json!({"remotePath": "nosuchremote:kopia", "startupTimeout": "10s"}));
    let out = kopia_notify(&config, tmp.path(), &["manifest", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("rclone:nosuchremote:kopia"), "{stderr}");
    no_rclone_left("nosuchremote:kopia", tmp.path());

    write_config(serde_json::json!({"remotePath": "/srv/r", "rcloneExe": "/nonexistent/rclone"}));
    let out = kopia_notify(&config, tmp.path(), &["manifest", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/nonexistent/rclone") && stderr.contains("not found"),
        "{stderr}"
    );
}
