//! A filesystem repository that real Kopia creates and writes as an unprivileged user:
//! `nobody` when the tests run as root, so that root's permission to read anything does not
//! hide a snapshot's failure to read a file; the current user otherwise.

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::{Kopia, PASSWORD};

/// The user and host Kopia writes as (`--override-username/hostname`).
pub const OWNER: &str = "alice@laptop";

pub struct Unprivileged {
    root: tempfile::TempDir,
    kopia: PathBuf,
    as_nobody: bool,
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

impl Unprivileged {
    /// Creates the repository (credentials persisted beside its config, as `kopia repository
    /// connect` does without a keyring). `binaries` are copied next to Kopia's, in `bin/`,
    /// where the unprivileged user can run them.
    pub fn create(kopia: &Kopia, binaries: &[&Path]) -> Unprivileged {
        let root = tempfile::Builder::new()
            .prefix("kopia-health-")
            .tempdir()
            .expect("temp dir");
        for dir in ["repo", "config", "cache", "logs", "src", "bin"] {
            fs::create_dir_all(root.path().join(dir)).unwrap();
        }
        // nobody cannot reach a binary under /root: it gets its own copy.
        let bin = root.path().join("bin").join("kopia");
        fs::copy(kopia.path(), &bin).expect("copy kopia");
        for binary in binaries {
            let name = binary.file_name().expect("a binary's file name");
            fs::copy(binary, root.path().join("bin").join(name)).expect("copy a binary");
        }
        let repo = Unprivileged {
            root,
            kopia: bin,
            as_nobody: is_root(),
        };
        fs::set_permissions(repo.root.path(), fs::Permissions::from_mode(0o755)).unwrap();
        repo.give_to_kopia(repo.root.path());
        let (user, host) = OWNER.split_once('@').unwrap();
        repo.kopia_ok(&[
            "repository",
            "create",
            "filesystem",
            &format!("--path={}", repo.path("repo").display()),
            &format!("--override-username={user}"),
            &format!("--override-hostname={host}"),
            "--format-block-key-derivation-algorithm=pbkdf2-sha256-600000",
            "--persist-credentials",
        ]);
        repo
    }

    /// Whether Kopia runs as `nobody` (the tests run as root) rather than as us.
    pub fn runs_as_nobody(&self) -> bool {
        self.as_nobody
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    pub fn config_file(&self) -> PathBuf {
        self.path("config").join("repository.config")
    }

    /// Makes `path` (recursively) the unprivileged user's.
    pub fn give_to_kopia(&self, path: &Path) {
        if self.as_nobody {
            let status = Command::new("chown")
                .args(["-R", "nobody:nogroup"])
                .arg(path)
                .status()
                .unwrap();
            assert!(status.success(), "chown {}", path.display());
        }
    }

    /// `program` as the repository's user, without inherited `KOPIA_*` settings.
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = if self.as_nobody {
            let mut cmd = Command::new("setpriv");
            cmd.args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
                .arg(program);
            cmd
        } else {
            Command::new(program)
        };
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KOPIA_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("HOME", self.root.path());
        cmd
    }

    /// Kopia with `args` as the repository's user, not started yet (to be spawned and killed).
    pub fn kopia_command<S: AsRef<OsStr>>(&self, args: &[S]) -> Command {
        let mut cmd = self.command(&self.kopia);
        cmd.env("KOPIA_PASSWORD", PASSWORD)
            .env("KOPIA_CHECK_FOR_UPDATES", "false")
            .env("KOPIA_USE_KEYRING", "false")
            .env("KOPIA_CACHE_DIRECTORY", self.path("cache"))
            .arg(format!("--config-file={}", self.config_file().display()))
            .arg(format!("--log-dir={}", self.path("logs").display()))
            .arg("--no-auto-maintenance")
            .args(args);
        cmd
    }

    pub fn kopia<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.kopia_command(args).output().expect("run kopia")
    }

    #[track_caller]
    pub fn kopia_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let out = self.kopia(args);
        assert!(
            out.status.success(),
            "kopia failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json<S: AsRef<OsStr>>(&self, args: &[S]) -> Value {
        serde_json::from_str(&self.kopia_ok(args)).expect("kopia printed JSON")
    }

    /// A source directory with one readable file and one only root may read.
    pub fn source_with_unreadable_file(&self, name: &str) -> (PathBuf, PathBuf) {
        let dir = self.path("src").join(name);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("ok.txt"), "fine\n").unwrap();
        self.give_to_kopia(&dir);
        let secret = dir.join("sub").join("secret.txt");
        fs::write(&secret, "secret\n").unwrap();
        fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
        (dir, secret)
    }

    /// `kopia manifest list --json --filter=…`.
    pub fn manifests(&self, filter: &str) -> Vec<Value> {
        self.json(&["manifest", "list", "--json", &format!("--filter={filter}")])
            .as_array()
            .unwrap()
            .clone()
    }

    /// Kopia's snapshots of `dir`, as `snapshot list --all --json` prints them.
    pub fn snapshots(&self, dir: &Path) -> Vec<Value> {
        self.json(&[
            OsStr::new("snapshot"),
            OsStr::new("list"),
            OsStr::new("--all"),
            OsStr::new("--json"),
            dir.as_os_str(),
        ])
        .as_array()
        .unwrap()
        .clone()
    }
}
