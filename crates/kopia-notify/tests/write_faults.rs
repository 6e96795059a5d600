//! Writes that the operating system refuses halfway, end to end with the real CLI and real
//! Kopia: a file-size limit (`prlimit --fsize`, SIGXFSZ ignored, so `write` fails with EFBIG
//! as it would on a full disk) cuts the pack file of a large batch in the middle, and a shard
//! directory the writer may not enter refuses the index after the pack was stored. Each time:
//! one clear error naming the file, no temporary file left, nothing listed, and Kopia still
//! verifies and lists the repository exactly as we do; the same batch then goes through.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo, PASSWORD};

/// Our CLI on `config`, optionally under a file-size limit in bytes.
fn kopia_notify(config: &Path, fsize_limit: Option<u64>, args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_kopia-notify");
    let mut cmd = match fsize_limit {
        // Ignored signals stay ignored across exec: the write fails instead of killing us.
        Some(limit) => {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", r#"trap '' XFSZ; exec prlimit --fsize="$0" -- "$@""#])
                .arg(limit.to_string())
                .arg(bin);
            cmd
        }
        None => Command::new(bin),
    };
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KOPIA_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("KOPIA_PASSWORD", PASSWORD)
        .env("KOPIA_NOTIFICATIONS", "hidden")
        .arg(format!("--config-file={}", config.display()))
        .args(args)
        .output()
        .expect("run kopia-notify")
}

/// A batch of `count` notifications with text that does not compress away.
fn batch_file(dir: &Path, count: usize) -> PathBuf {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let lines: Vec<String> = (0..count)
        .map(|i| {
            let noise: String = (0..40)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    char::from(b'a' + (state % 26) as u8)
                })
                .collect();
            format!(r#"{{"severity":"warning","to":"all","title":"disk {i} {noise}","message":"{noise}{noise}"}}"#)
        })
        .collect();
    let path = dir.join("batch.jsonl");
    fs::write(&path, lines.join("\n")).unwrap();
    path
}

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
    files.sort();
    files
}

fn notification_count(config: &Path) -> usize {
    let out = kopia_notify(config, None, &["--as", "bob@desk", "list", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .len()
}

/// Kopia verifies every content and lists exactly what we list.
fn kopia_agrees(repo: &KopiaRepo, config: &Path) {
    repo.content_verify();
    let ours = kopia_notify(config, None, &["manifest", "list", "--json"]);
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    let theirs = repo.run_ok(&["manifest", "list", "--json"]);
    assert_eq!(String::from_utf8(ours.stdout).unwrap(), theirs);
}

#[test]
fn a_pack_cut_off_by_a_full_disk_leaves_nothing_half_written() {
    let Some(kopia) = require_kopia() else { return };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    repo.snapshot(&repo.make_tree(2, 2));
    let config = repo.config_file();
    let dir = tempfile::tempdir().unwrap();
    let batch = batch_file(dir.path(), 2_000);
    let before = files_under(&repo.repo_dir());

    let out = kopia_notify(
        &config,
        Some(16 * 1024),
        &["send", "--batch", batch.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "the limit must cut the pack: {stderr}"
    );
    assert!(stderr.contains("File too large"), "{stderr}");
    assert!(
        stderr.contains(&repo.repo_dir().display().to_string()),
        "names the file: {stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert_eq!(
        files_under(&repo.repo_dir()),
        before,
        "nothing stays behind"
    );
    assert_eq!(notification_count(&config), 0);
    kopia_agrees(&repo, &config);

    let out = kopia_notify(&config, None, &["send", "--batch", batch.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(notification_count(&config), 2_000);
    kopia_agrees(&repo, &config);
}

/// The index directory refuses the writer (permission denied) after the pack was stored: the
/// error names the directory, no index appears, the pack is left for Kopia's GC (an index
/// elsewhere may already name it), and Kopia verifies the repository.
#[test]
fn an_index_directory_that_refuses_us_leaves_the_repository_verifiable() {
    use kopia_fixtures::unprivileged::Unprivileged;
    use std::os::unix::fs::PermissionsExt;

    let Some(kopia) = require_kopia() else { return };
    let bin = Path::new(env!("CARGO_BIN_EXE_kopia-notify"));
    let repo = Unprivileged::create(&kopia, &[bin]);
    let (source, secret) = repo.source_with_unreadable_file("data");
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    repo.give_to_kopia(&source);
    repo.kopia_ok(&[
        std::ffi::OsStr::new("snapshot"),
        "create".as_ref(),
        source.as_os_str(),
    ]);
    let index_dirs: Vec<PathBuf> = fs::read_dir(repo.path("repo").join("x"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert!(!index_dirs.is_empty());
    for dir in &index_dirs {
        if repo.runs_as_nobody() {
            // Kopia runs as nobody: a directory of root's is closed to it.
            let status = Command::new("chown")
                .arg("root:root")
                .arg(dir)
                .status()
                .unwrap();
            assert!(status.success());
            fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).unwrap();
        } else {
            fs::set_permissions(dir, fs::Permissions::from_mode(0o555)).unwrap();
        }
    }
    let batch = batch_file(&repo.path("src"), 50);
    repo.give_to_kopia(&batch);
    let send = |args: &[&str]| {
        repo.command(&repo.path("bin").join("kopia-notify"))
            .env("KOPIA_PASSWORD", PASSWORD)
            .env("KOPIA_NOTIFICATIONS", "hidden")
            .arg(format!("--config-file={}", repo.config_file().display()))
            .args(args)
            .output()
            .unwrap()
    };
    let out = send(&["send", "--batch", batch.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("permission denied"), "{stderr}");
    assert!(
        index_dirs
            .iter()
            .any(|d| stderr.contains(&d.display().to_string())),
        "names the directory: {stderr}"
    );
    let listed = send(&["--as", "bob@desk", "list", "--json"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).trim(), "[]");
    repo.kopia_ok(&["content", "verify", "--full"]);
    let ours = send(&["manifest", "list", "--json"]);
    let theirs = repo.kopia_ok(&["manifest", "list", "--json"]);
    assert_eq!(String::from_utf8(ours.stdout).unwrap(), theirs);

    // Given the directory back, the same batch goes through.
    repo.give_to_kopia(&repo.path("repo"));
    for dir in &index_dirs {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
    }
    let out = send(&["send", "--batch", batch.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    repo.kopia_ok(&["content", "verify", "--full"]);
}
