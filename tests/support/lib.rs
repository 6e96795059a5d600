//! Harness around the real Kopia v0.23.1 binary, the judge of `kopia-repo`: it creates
//! throw-away filesystem repositories with chosen format options and drives snapshots,
//! maintenance and epoch advancement through `kopia` itself.
//! It is not a Kopia client: every operation shells out to the binary, and every failure panics.

pub mod bench;
pub mod cli;
pub mod http_response;
pub mod keyring;
pub mod link;
pub mod point_in_time;
pub mod servers;
pub mod servers_azure_versions;
pub mod servers_b2;
pub mod servers_entra;
pub mod servers_objects;
pub mod servers_sftp;
pub mod servers_webdav;
pub mod session_bus;
pub mod shared_repo;
pub mod unprivileged;
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use serde_json::Value;
use tempfile::TempDir;

/// The only Kopia version our reader and writer are judged against.
pub const KOPIA_VERSION: &str = "v0.23.1";

/// Password of every harness repository (also persisted next to its config file).
pub const PASSWORD: &str = "kopia-harness-password";

/// Username and hostname the harness connection writes into manifests and maintenance ownership.
pub const USERNAME: &str = "tester";
/// See [`USERNAME`].
pub const HOSTNAME: &str = "kopia-harness";

/// Every content hash algorithm Kopia v0.23.1 offers (`--block-hash`).
pub const BLOCK_HASHES: [&str; 11] = [
    "BLAKE2B-256",
    "BLAKE2B-256-128",
    "BLAKE2S-128",
    "BLAKE2S-256",
    "BLAKE3-256",
    "BLAKE3-256-128",
    "HMAC-SHA224",
    "HMAC-SHA256",
    "HMAC-SHA256-128",
    "HMAC-SHA3-224",
    "HMAC-SHA3-256",
];

/// Every content encryption algorithm Kopia v0.23.1 offers (`--encryption`).
pub const ENCRYPTIONS: [&str; 2] = ["AES256-GCM-HMAC-SHA256", "CHACHA20-POLY1305-HMAC-SHA256"];

/// Every password-to-key derivation for the format blob (`--format-block-key-derivation-algorithm`).
pub const KEY_DERIVATIONS: [&str; 2] = ["scrypt-65536-8-1", "pbkdf2-sha256-600000"];

/// Kopia refuses an epoch advance threshold below this many index blobs, so each
/// [`KopiaRepo::advance_epoch`] writes this many into the current epoch.
pub const EPOCH_ADVANCE_COUNT: usize = 10;

/// How far [`KopiaRepo::advance_epoch`] and [`KopiaRepo::compact_epochs`] move the storage
/// clock: above the 10 min minimum epoch duration and the 3 min cleanup margin set by
/// [`KopiaRepo::tune_epochs`].
pub const EPOCH_AGE_STEP: Duration = Duration::from_secs(3600);

/// A located `kopia` binary whose `--version` is [`KOPIA_VERSION`].
#[derive(Clone, Debug)]
pub struct Kopia {
    bin: PathBuf,
}

impl Kopia {
    /// Finds kopia in `$KOPIA_BIN`, then `PATH`, then `$(go env GOPATH)/bin`, and checks its
    /// version. The error says where it looked and what it found.
    pub fn locate() -> Result<Kopia, String> {
        let mut tried = Vec::new();
        for candidate in candidate_binaries() {
            match binary_version(&candidate) {
                Ok(version) if version == KOPIA_VERSION => return Ok(Kopia { bin: candidate }),
                Ok(version) => tried.push(format!("{} reports {version:?}", candidate.display())),
                Err(err) => tried.push(format!("{}: {err}", candidate.display())),
            }
        }
        if tried.is_empty() {
            tried.push("none in $KOPIA_BIN, PATH or $(go env GOPATH)/bin".to_owned());
        }
        Err(format!(
            "need {KOPIA_VERSION}, {}; run .ci/install-kopia.sh or set KOPIA_BIN",
            tried.join("; ")
        ))
    }

    /// Path of the binary.
    pub fn path(&self) -> &Path {
        &self.bin
    }

    /// Runs `kopia <args>` through the client config `config`, logging under `log_dir`, with a
    /// clean, self-contained environment.
    pub fn run_with_config<S: AsRef<OsStr>>(
        &self,
        config: &Path,
        log_dir: &Path,
        args: &[S],
    ) -> Output {
        let mut cmd = Command::new(self.path());
        // Inherited KOPIA_* settings (config path, keyring, log dir…) must not leak in.
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("KOPIA_") {
                cmd.env_remove(name);
            }
        }
        cmd.env("KOPIA_PASSWORD", PASSWORD)
            .env("KOPIA_CHECK_FOR_UPDATES", "false")
            .env("KOPIA_USE_KEYRING", "false")
            .arg(format!("--config-file={}", config.display()))
            .arg(format!("--log-dir={}", log_dir.display()))
            .arg("--no-auto-maintenance")
            .args(args);
        cmd.output()
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", self.path().display()))
    }
}

fn candidate_binaries() -> Vec<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(bin) = std::env::var_os("KOPIA_BIN").filter(|v| !v.is_empty()) {
        candidates.push(PathBuf::from(bin));
    }
    if let Some(path) = std::env::var_os("PATH") {
        candidates.extend(std::env::split_paths(&path).map(|dir| dir.join("kopia")));
    }
    if let Ok(out) = Command::new("go").args(["env", "GOPATH"]).output() {
        let gopath = String::from_utf8_lossy(&out.stdout);
        // GOPATH may list several directories; `go install` uses the first.
        if let Some(first) = std::env::split_paths(gopath.trim()).next() {
            candidates.push(first.join("bin").join("kopia"));
        }
    }
    let mut unique = Vec::new();
    for candidate in candidates {
        if candidate.is_file() && !unique.contains(&candidate) {
            unique.push(candidate);
        }
    }
    unique
}

/// First word of `kopia --version`, e.g. `v0.23.1` of `v0.23.1 build: 72ec… from: `.
fn binary_version(bin: &Path) -> Result<String, String> {
    let out = Command::new(bin)
        .arg("--version")
        .output()
        .map_err(|err| format!("cannot run: {err}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .split_whitespace()
        .next()
        .map(str::to_owned)
        .ok_or_else(|| format!("--version printed nothing ({})", out.status))
}

/// The kopia binary for a test, located once per test process.
///
/// Under CI (`CI=true`) a missing or wrong kopia panics, so CI cannot pass without the judge.
/// Elsewhere it prints a loud `SKIPPED: kopia not found` and returns `None`: the test should
/// return early.
pub fn require_kopia() -> Option<Kopia> {
    static LOCATED: OnceLock<Result<Kopia, String>> = OnceLock::new();
    match LOCATED.get_or_init(Kopia::locate) {
        Ok(kopia) => Some(kopia.clone()),
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true requires the real kopia, not found: {reason}")
        }
        Err(reason) => {
            // Written to the real stderr: libtest captures only the print macros, and a
            // skipped interop test must not look like a silent pass.
            let notice = format!("\n*** SKIPPED: kopia not found: {reason} ***\n");
            let _ = std::io::stderr().write_all(notice.as_bytes());
            None
        }
    }
}

/// Format choices for [`KopiaRepo::create`]; `None` keeps Kopia's default.
#[derive(Clone, Debug, Default)]
pub struct CreateOptions {
    /// `--format-version`: 1 (legacy indexes, no epochs), 2 or 3 (Kopia's default).
    pub format_version: Option<u8>,
    /// `--block-hash`, one of [`BLOCK_HASHES`].
    pub block_hash: Option<&'static str>,
    /// `--encryption`, one of [`ENCRYPTIONS`].
    pub encryption: Option<&'static str>,
    /// `--format-block-key-derivation-algorithm`, one of [`KEY_DERIVATIONS`].
    pub key_derivation: Option<&'static str>,
    /// Index format for new index blobs, set after creation with `repository set-parameters
    /// --index-version`. Kopia only upgrades it, and only format version 1 starts at index
    /// version 1, so `Some(2)` with format version 1 is the one combination this adds.
    pub index_version: Option<u8>,
}

/// One blob as listed by `kopia blob list --json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobInfo {
    /// Blob ID, e.g. `xn0_…`, `xe3`, `p…`.
    pub id: String,
    /// Size in bytes.
    pub length: u64,
    /// Modification time as the storage reports it.
    pub timestamp: DateTime<Utc>,
}

/// A fresh filesystem repository created by real Kopia in its own temporary directory, with
/// its own config file, persisted password, cache and log directories (nothing under `~`).
/// Everything is deleted when it is dropped.
pub struct KopiaRepo {
    kopia: Kopia,
    root: TempDir,
    trees_made: AtomicUsize,
}

impl KopiaRepo {
    /// Runs `kopia repository create filesystem` with `options` (plus `set-parameters` for the
    /// index version). Automatic maintenance stays off for every harness command, so the
    /// repository changes only through the helpers a test calls.
    pub fn create(kopia: &Kopia, options: &CreateOptions) -> KopiaRepo {
        let repo = KopiaRepo::empty(kopia);
        let mut args = repo.connection_args("create");
        if let Some(version) = options.format_version {
            args.push(format!("--format-version={version}"));
        }
        if let Some(hash) = options.block_hash {
            args.push(format!("--block-hash={hash}"));
        }
        if let Some(encryption) = options.encryption {
            args.push(format!("--encryption={encryption}"));
        }
        if let Some(kdf) = options.key_derivation {
            args.push(format!("--format-block-key-derivation-algorithm={kdf}"));
        }
        repo.run_ok(&args);

        if let Some(version) = options.index_version {
            repo.run_ok(&[
                "repository",
                "set-parameters",
                &format!("--index-version={version}"),
            ]);
        }
        repo
    }

    /// Connects real Kopia to a repository that `make` creates in the given (empty) storage
    /// directory — e.g. one our own writer creates — with the same isolated config as
    /// [`create`](Self::create).
    pub fn connect_to_new(kopia: &Kopia, make: impl FnOnce(&Path)) -> KopiaRepo {
        let repo = KopiaRepo::empty(kopia);
        make(&repo.repo_dir());
        let args = repo.connection_args("connect");
        repo.run_ok(&args);
        repo
    }

    /// Runs `kopia repository create <storage_args>` (e.g. `["s3", "--bucket=b", …]`) with
    /// the harness connection's isolated config, for repositories on other storages.
    pub fn create_on(kopia: &Kopia, storage_args: &[String]) -> KopiaRepo {
        let repo = KopiaRepo::empty(kopia);
        let mut args = vec!["repository".to_owned(), "create".to_owned()];
        args.extend_from_slice(storage_args);
        args.extend(repo.client_args());
        repo.run_ok(&args);
        repo
    }

    fn empty(kopia: &Kopia) -> KopiaRepo {
        let root = tempfile::Builder::new()
            .prefix("kopia-harness-")
            .tempdir()
            .expect("create temp dir for a Kopia repository");
        for dir in ["repo", "config", "cache", "logs", "sources"] {
            fs::create_dir_all(root.path().join(dir)).expect("create harness directory");
        }
        KopiaRepo {
            kopia: kopia.clone(),
            root,
            trees_made: AtomicUsize::new(0),
        }
    }

    /// `kopia repository create|connect filesystem` arguments of the harness connection.
    fn connection_args(&self, verb: &str) -> Vec<String> {
        let mut args = vec![
            "repository".to_owned(),
            verb.to_owned(),
            "filesystem".to_owned(),
            format!("--path={}", self.repo_dir().display()),
        ];
        args.extend(self.client_args());
        args
    }

    /// The client side of every harness connection: its own cache, identity and password.
    fn client_args(&self) -> Vec<String> {
        vec![
            format!(
                "--cache-directory={}",
                self.root.path().join("cache").display()
            ),
            // Kopia caches index blob listings on disk for 30 s by default; a stale listing
            // would hide the timestamps `age_blobs` rewrites and blobs other processes wrote.
            "--max-list-cache-duration=0s".to_owned(),
            format!("--override-username={USERNAME}"),
            format!("--override-hostname={HOSTNAME}"),
            "--persist-credentials".to_owned(),
        ]
    }

    /// Root of the filesystem storage: what our reader opens.
    pub fn repo_dir(&self) -> PathBuf {
        self.root.path().join("repo")
    }

    /// Kopia's config file for this repository (a real client config, as the app would read).
    pub fn config_file(&self) -> PathBuf {
        self.root.path().join("config").join("repository.config")
    }

    /// The password Kopia persisted beside the config file (base64 of [`PASSWORD`]).
    pub fn password_file(&self) -> PathBuf {
        self.root
            .path()
            .join("config")
            .join("repository.config.kopia-password")
    }

    /// The plain `kopia.repository` format blob, parsed.
    pub fn format_blob_json(&self) -> Value {
        let path = self.repo_dir().join("kopia.repository.f");
        let bytes = fs::read(&path).unwrap_or_else(|err| panic!("read {}: {err}", path.display()));
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|err| panic!("{} is not JSON: {err}", path.display()))
    }

    /// Runs `kopia <args>` against this repository with a clean, self-contained environment.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Output {
        self.kopia
            .run_with_config(&self.config_file(), &self.root.path().join("logs"), args)
    }

    /// Like [`run`](Self::run) but panics, showing stdout and stderr, unless kopia succeeds;
    /// returns stdout.
    pub fn run_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let out = self.run(args);
        let shown: Vec<_> = args.iter().map(|a| a.as_ref().to_string_lossy()).collect();
        assert!(
            out.status.success(),
            "kopia {} failed ({})\n--- stdout\n{}\n--- stderr\n{}",
            shown.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("kopia stdout is UTF-8")
    }

    /// `kopia repository status --json`.
    pub fn status(&self) -> Value {
        parse_json(
            &self.run_ok(&["repository", "status", "--json"]),
            "repository status",
        )
    }

    /// Writes a fresh source tree of `n_dirs` directories with `files_per_dir` files each
    /// (distinct, deterministic contents of varied sizes) and returns its path.
    pub fn make_tree(&self, n_dirs: usize, files_per_dir: usize) -> PathBuf {
        let serial = self.trees_made.fetch_add(1, Ordering::Relaxed);
        let tree = self
            .root
            .path()
            .join("sources")
            .join(format!("tree-{serial}"));
        for d in 0..n_dirs {
            let dir = tree.join(format!("dir-{d:03}"));
            fs::create_dir_all(&dir).expect("create tree directory");
            for f in 0..files_per_dir {
                let line = format!("tree {serial} dir {d} file {f}\n");
                let body = line.repeat(1 + (d * 7 + f * 13) % 200);
                fs::write(dir.join(format!("file-{f:03}.txt")), body).expect("write tree file");
            }
        }
        fs::create_dir_all(&tree).expect("create tree root");
        tree
    }

    /// `kopia snapshot create <dir>`; returns the snapshot manifest ID.
    pub fn snapshot(&self, dir: &Path) -> String {
        let stdout = self.run_ok(&[
            OsStr::new("snapshot"),
            OsStr::new("create"),
            dir.as_os_str(),
            OsStr::new("--json"),
        ]);
        let manifest = parse_json(&stdout, "snapshot create");
        manifest["id"]
            .as_str()
            .unwrap_or_else(|| panic!("snapshot create printed no id: {stdout}"))
            .to_owned()
    }

    /// `kopia snapshot delete <id> --delete`: marks the snapshot manifest deleted; its contents
    /// become garbage for the next [`maintenance_full`](Self::maintenance_full).
    pub fn delete_snapshot(&self, id: &str) {
        self.run_ok(&["snapshot", "delete", id, "--delete"]);
    }

    /// `kopia policy set --global <args>`, e.g. `["--compression=zstd"]`.
    pub fn set_global_policy(&self, args: &[&str]) {
        let mut all = vec!["policy", "set", "--global"];
        all.extend_from_slice(args);
        self.run_ok(&all);
    }

    /// `kopia manifest list --json` with `--filter=key:value` for each of `filters`.
    pub fn manifest_list_json(&self, filters: &[&str]) -> Value {
        let mut args = vec![
            "manifest".to_owned(),
            "list".to_owned(),
            "--json".to_owned(),
        ];
        args.extend(filters.iter().map(|f| format!("--filter={f}")));
        parse_json(&self.run_ok(&args), "manifest list")
    }

    /// Payload of `kopia manifest show <id>`: the manifest's JSON as Kopia prints it
    /// (re-indented by two spaces, so compare parsed values, not bytes), without the
    /// `// id:`, `// length:`… header lines.
    pub fn manifest_show(&self, id: &str) -> Vec<u8> {
        let stdout = self.run_ok(&["manifest", "show", id]);
        stdout
            .lines()
            .skip_while(|line| line.starts_with("// "))
            .flat_map(|line| [line, "\n"])
            .collect::<String>()
            .into_bytes()
    }

    /// `kopia maintenance run --safety=none`, the quick cycle: on an epoch repository (format 2
    /// or 3) it only compacts the oldest settled epoch and advances the epoch if due.
    pub fn maintenance_quick(&self) {
        self.run_ok(&["maintenance", "run", "--safety=none"]);
    }

    /// `kopia maintenance run --full --safety=none`: snapshot GC, dropping deleted contents (which
    /// always writes a deletion watermark `xw<unix-seconds>`), orphaned pack deletion, epoch
    /// compaction, advance, range checkpoint, marker and superseded-index cleanup. The harness
    /// connection owns maintenance since it created the repository.
    pub fn maintenance_full(&self) {
        self.run_ok(&["maintenance", "run", "--full", "--safety=none"]);
    }

    /// `kopia content verify --full`: every content is downloaded and decrypted.
    pub fn content_verify(&self) {
        self.run_ok(&["content", "verify", "--full"]);
    }

    /// `kopia snapshot verify --verify-files-percent=100`: every file of every snapshot is read.
    pub fn snapshot_verify(&self) {
        self.run_ok(&["snapshot", "verify", "--verify-files-percent=100"]);
    }

    /// `kopia blob list --prefix=<prefix> --json`, sorted by ID.
    pub fn blob_list(&self, prefix: &str) -> Vec<BlobInfo> {
        let stdout = self.run_ok(&["blob", "list", &format!("--prefix={prefix}"), "--json"]);
        let listed = parse_json(&stdout, "blob list");
        let mut blobs: Vec<BlobInfo> = listed
            .as_array()
            .unwrap_or_else(|| panic!("blob list is not an array: {stdout}"))
            .iter()
            .map(|b| BlobInfo {
                id: b["id"].as_str().expect("blob id").to_owned(),
                length: b["length"].as_u64().expect("blob length"),
                timestamp: b["timestamp"]
                    .as_str()
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .expect("blob timestamp")
                    .with_timezone(&Utc),
            })
            .collect();
        blobs.sort_by(|a, b| a.id.cmp(&b.id));
        blobs
    }

    /// Makes epochs cheap to advance: the smallest values Kopia accepts (10 min minimum epoch
    /// duration, 1 min refresh, 3 min cleanup margin, advance at 10 index blobs) and a range
    /// checkpoint every `checkpoint_frequency` settled epochs (Kopia's default is 7).
    /// Call once before [`advance_epoch`](Self::advance_epoch).
    pub fn tune_epochs(&self, checkpoint_frequency: u32) {
        self.run_ok(&[
            "repository".to_owned(),
            "set-parameters".to_owned(),
            "--epoch-min-duration=10m".to_owned(),
            "--epoch-refresh-frequency=1m".to_owned(),
            "--epoch-cleanup-safety-margin=3m".to_owned(),
            format!("--epoch-advance-on-count={EPOCH_ADVANCE_COUNT}"),
            format!("--epoch-checkpoint-frequency={checkpoint_frequency}"),
        ]);
    }

    /// Moves every blob's modification time back by `by`, as if that much time had passed
    /// since it was written. Kopia judges epoch spans and cleanup margins by the storage's
    /// blob timestamps, so this stands in for a fake clock.
    pub fn age_blobs(&self, by: Duration) {
        age_blob_files(&self.repo_dir(), by);
    }

    /// Current write epoch: the highest `xe<N>` marker, 0 when there is none yet.
    pub fn write_epoch(&self) -> u32 {
        self.blob_list("xe")
            .iter()
            .filter_map(|b| b.id.strip_prefix("xe")?.parse().ok())
            .max()
            .unwrap_or(0)
    }

    /// Advances the write epoch by exactly one through real Kopia and returns the new epoch:
    /// writes [`EPOCH_ADVANCE_COUNT`] index blobs (snapshots of a small filler source), ages the
    /// storage by [`EPOCH_AGE_STEP`], writes one more so the epoch spans more than its minimum
    /// duration, then runs quick maintenance. Quick maintenance also compacts the oldest
    /// settled epoch (`xs<N>_…`) once the write epoch reaches 3. Needs
    /// [`tune_epochs`](Self::tune_epochs).
    pub fn advance_epoch(&self) -> u32 {
        let before = self.write_epoch();
        self.write_index_blobs(EPOCH_ADVANCE_COUNT);
        self.age_blobs(EPOCH_AGE_STEP);
        self.write_index_blobs(1);
        self.maintenance_quick();
        let after = self.write_epoch();
        assert_eq!(
            after,
            before + 1,
            "epoch did not advance from {before}; was tune_epochs called?"
        );
        after
    }

    /// Ages the storage by [`EPOCH_AGE_STEP`], writes one index blob (the storage clock Kopia's
    /// cleanup measures against) and runs full maintenance: Kopia then writes a range checkpoint
    /// `xr<A>_<B>_…` once `checkpoint_frequency` epochs have settled since the last one, and
    /// deletes the `xn<N>_…` blobs of every epoch whose `xs<N>_…` compaction is now older than
    /// the cleanup margin, as well as epoch markers below the previous epoch.
    pub fn compact_epochs(&self) {
        self.age_blobs(EPOCH_AGE_STEP);
        self.write_index_blobs(1);
        self.maintenance_full();
    }

    /// Writes `count` index blobs into the current epoch: one snapshot per source, flushed per
    /// source, of a one-file filler directory (`sources/epoch-filler`).
    fn write_index_blobs(&self, count: usize) {
        let filler = self.root.path().join("sources").join("epoch-filler");
        if !filler.exists() {
            fs::create_dir_all(&filler).expect("create epoch filler source");
            fs::write(filler.join("filler.txt"), "epoch filler\n").expect("write epoch filler");
        }
        let mut args = vec![
            OsStr::new("snapshot"),
            OsStr::new("create"),
            OsStr::new("--flush-per-source"),
        ];
        args.extend(std::iter::repeat_n(filler.as_os_str(), count));
        self.run_ok(&args);
    }
}

fn parse_json(stdout: &str, what: &str) -> Value {
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|err| panic!("kopia {what} printed invalid JSON ({err}):\n{stdout}"))
}

/// Shifts the mtime of every blob file (`*.f`) under `dir` back by `by`.
fn age_blob_files(dir: &Path, by: Duration) {
    let entries = fs::read_dir(dir).unwrap_or_else(|err| panic!("list {}: {err}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            age_blob_files(&path, by);
        } else if path.extension() == Some(OsStr::new("f")) {
            let file =
                File::open(&path).unwrap_or_else(|err| panic!("open {}: {err}", path.display()));
            let modified: SystemTime = file
                .metadata()
                .and_then(|m| m.modified())
                .expect("blob mtime");
            file.set_modified(modified - by)
                .unwrap_or_else(|err| panic!("set mtime of {}: {err}", path.display()));
        }
    }
}
