//! Kopia's `rclone` storage (repo/blob/rclone): any remote rclone reaches (OneDrive, Google
//! Drive, Dropbox…), served by a private `rclone serve webdav` started for this connection and
//! spoken to as the `webdav` backend speaks to any server.
//!
//! As Kopia does: loopback on a random port, random credentials, TLS with a fresh self-signed
//! certificate we pin by fingerprint, rclone's remote control beside it to flush its directory
//! cache before every listing and read, `--vfs-write-back=0s`. Secrets stay private: the
//! credentials reach rclone in its environment (readable by the same user only, never on its
//! command line), the TLS key and the `embeddedConfig` (which may hold tokens) are 0600 files
//! in a 0700 directory of our own that is removed, with the process killed, when the storage is
//! dropped or its start fails; the kernel kills rclone when our process ends anyhow (see
//! [`tied_to_this_process`]). Unlike Kopia (whose `rcloneEnv` replaces the whole
//! environment), rclone inherits ours with `rcloneEnv` added, so it still finds its config.

use std::fmt;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::error_chain;
use super::pinning::{certificate_fingerprint, PinnedCertificate};
use super::tree::FileTree;
use super::webdav::{self, WebdavConfig};
use crate::client::Password;
use crate::error::{Error, Result};
use crate::storage::factory::Access;
use crate::storage::{BlobMetadata, BlobReader, BlobWriter, Storage};

const DEFAULT_RCLONE_EXE: &str = "rclone";
/// Kopia's defaultRcloneStartupTimeout.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(15);
/// rclone's startup lines kept for the error when it fails to start.
const STARTUP_LINES_KEPT: usize = 5;
/// Tries of a `vfs/forget` request that does not get through, and the growing pause between.
const FORGET_ATTEMPTS: u32 = 4;
const FORGET_RETRY_DELAY: Duration = Duration::from_millis(200);

/// `storage.config` of an `rclone` storage (Kopia's rclone.Options). `Debug` shows neither
/// the embedded config nor the values of `rcloneEnv` or `rcloneArgs` (they may carry tokens).
#[derive(Clone, Default, Deserialize)]
pub struct RcloneConfig {
    #[serde(rename = "remotePath", default)]
    pub remote_path: String,
    #[serde(rename = "rcloneExe", default)]
    pub rclone_exe: String,
    #[serde(rename = "rcloneArgs", default, deserialize_with = "null_as_empty")]
    pub rclone_args: Vec<String>,
    #[serde(rename = "rcloneEnv", default, deserialize_with = "null_as_empty")]
    pub rclone_env: Vec<String>,
    /// Go's time.Duration as Kopia's jsonencoding writes it ("15s") or nanoseconds.
    #[serde(rename = "startupTimeout", default)]
    pub startup_timeout: Option<serde_json::Value>,
    #[serde(rename = "embeddedConfig", default, deserialize_with = "secret")]
    pub embedded_config: Option<Password>,
    #[serde(rename = "atomicWrites", default)]
    pub atomic_writes: bool,
    #[serde(rename = "dirShards", default)]
    pub dir_shards: Option<Vec<usize>>,
    #[serde(rename = "listParallelism", default)]
    pub list_parallelism: i64,
}

impl fmt::Debug for RcloneConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_names: Vec<&str> = self
            .rclone_env
            .iter()
            .map(|e| e.split_once('=').map_or(e.as_str(), |(name, _)| name))
            .collect();
        f.debug_struct("RcloneConfig")
            .field("remote_path", &self.remote_path)
            .field("rclone_exe", &self.rclone_exe)
            .field("rclone_args", &self.rclone_args.len())
            .field("rclone_env", &env_names)
            .field("startup_timeout", &self.startup_timeout)
            .field("embedded_config", &self.embedded_config)
            .field("atomic_writes", &self.atomic_writes)
            .field("dir_shards", &self.dir_shards)
            .field("list_parallelism", &self.list_parallelism)
            .finish()
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

fn secret<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Password>, D::Error> {
    Ok(Option::<Password>::deserialize(d)?.filter(|p| !p.expose().is_empty()))
}

impl RcloneConfig {
    pub fn from_json(config: &serde_json::Value) -> std::result::Result<Self, String> {
        let parsed = RcloneConfig::deserialize(config).map_err(|e| e.to_string())?;
        if parsed.remote_path.is_empty() {
            return Err("no remotePath".to_string());
        }
        if let Some(bad) = parsed.rclone_env.iter().find(|e| !e.contains('=')) {
            return Err(format!("rcloneEnv entry {bad:?} is not NAME=value"));
        }
        if let Some(value) = &parsed.startup_timeout {
            parsed.timeout_of(value)?;
        }
        Ok(parsed)
    }

    fn timeout_of(&self, value: &serde_json::Value) -> std::result::Result<Duration, String> {
        super::s3::duration_seconds(value)
            .map(|s| Duration::from_secs(u64::from(s)))
            .ok_or_else(|| format!("startupTimeout {value} is not a duration"))
    }

    /// How long rclone may take to say where it listens; Kopia's 15 s when unset or zero.
    pub fn startup_timeout(&self) -> Duration {
        self.startup_timeout
            .as_ref()
            .and_then(|v| self.timeout_of(v).ok())
            .filter(|d| !d.is_zero())
            .unwrap_or(DEFAULT_STARTUP_TIMEOUT)
    }

    pub fn executable(&self) -> &str {
        match self.rclone_exe.as_str() {
            "" => DEFAULT_RCLONE_EXE,
            exe => exe,
        }
    }

    /// What messages call this store: the remote, as Kopia's "RClone <remotePath>".
    pub fn describe(&self) -> String {
        format!("rclone:{}", self.remote_path)
    }

    /// rclone's arguments: the user's first, ours last so that they win (as in Kopia).
    fn arguments(&self, files: &PrivateFiles) -> Vec<String> {
        let mut arguments: Vec<String> = ["-v", "serve", "webdav", &self.remote_path]
            .map(String::from)
            .to_vec();
        arguments.extend(self.rclone_args.iter().cloned());
        if let Some(config) = &files.config {
            arguments.extend(["--config".to_string(), path_arg(config)]);
        }
        let (cert, key) = (path_arg(&files.certificate), path_arg(&files.key));
        arguments.extend(
            [
                "--addr",
                "127.0.0.1:0",
                "--rc",
                "--rc-addr",
                "127.0.0.1:0",
                "--rc-cert",
                &cert,
                "--rc-key",
                &key,
                "--cert",
                &cert,
                "--key",
                &key,
                // Writes must be on the remote when the PUT returns, not queued (Kopia).
                "--vfs-write-back=0s",
            ]
            .map(String::from),
        );
        arguments
    }
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Opens an existing repository behind rclone with the capability `access` allows.
pub fn open(config: &serde_json::Value, access: Access) -> Result<Storage> {
    let config = RcloneConfig::from_json(config).map_err(|reason| Error::InvalidStorageConfig {
        kind: "rclone".to_string(),
        reason,
    })?;
    let storage = Arc::new(RcloneStorage::start(&config)?);
    Ok(match access {
        Access::ReadWrite => Storage::read_write(storage),
        Access::ReadOnly => Storage::read_only(storage),
    })
}

/// A directory only we can enter, removed with everything in it when dropped.
#[derive(Debug)]
struct PrivateDir {
    path: PathBuf,
    /// Not removed yet.
    present: bool,
}

impl PrivateDir {
    fn create() -> std::io::Result<Self> {
        let name = format!("kopia-rclone-{}", hex::encode(rand::random::<[u8; 8]>()));
        let path = std::env::temp_dir().join(name);
        let mut builder = fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(&path)?;
        Ok(PrivateDir {
            path,
            present: true,
        })
    }

    /// A new 0600 file with `contents` (never an existing one: nobody may plant it).
    fn write(&self, name: &str, contents: &[u8]) -> std::io::Result<PathBuf> {
        let path = self.path.join(name);
        let mut options = fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(&path)?.write_all(contents)?;
        Ok(path)
    }
}

impl PrivateDir {
    /// Removes the directory now (idempotent; the drop then has nothing left to do).
    fn remove(&mut self) -> std::io::Result<()> {
        if std::mem::take(&mut self.present) {
            fs::remove_dir_all(&self.path)?;
        }
        Ok(())
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        if let Err(e) = self.remove() {
            tracing::warn!(dir = %self.path.display(), "cannot remove rclone's private directory: {e}");
        }
    }
}

/// What rclone reads from files: the TLS pair and the embedded config, in the private dir.
#[derive(Debug)]
struct PrivateFiles {
    certificate: PathBuf,
    key: PathBuf,
    config: Option<PathBuf>,
    /// Last, so the files go after the process that reads them.
    dir: PrivateDir,
}

impl PrivateFiles {
    /// rclone has read its files once it serves: they go at once, so no key or token is left
    /// on disk even when our process ends without dropping the storage. With an embedded
    /// config the directory stays (rclone saves refreshed tokens there) until the drop.
    fn loaded(&mut self) -> std::io::Result<()> {
        match &self.config {
            None => self.dir.remove(),
            Some(config) => [&self.certificate, &self.key, config]
                .into_iter()
                .try_for_each(fs::remove_file),
        }
    }
}

/// A running rclone, killed (and reaped) when dropped; its private files go with it.
#[derive(Debug)]
struct RcloneProcess {
    child: Child,
    files: PrivateFiles,
}

impl Drop for RcloneProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where rclone said it serves.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Addresses {
    webdav: Option<String>,
    remote_control: Option<String>,
}

impl Addresses {
    /// Reads one line of rclone's log: "…WebDav Server started on [https://127.0.0.1:N/]" and
    /// "…Serving remote control on https://127.0.0.1:N/" (the forms Kopia's regexps accept).
    fn take_line(&mut self, line: &str) {
        let lower = line.to_ascii_lowercase();
        for (marker, slot) in [
            ("webdav server started on ", &mut self.webdav),
            ("serving remote control on ", &mut self.remote_control),
        ] {
            if let Some(at) = lower.find(marker) {
                let rest = &line[at + marker.len()..];
                let url = rest.trim().trim_start_matches('[').trim_end_matches(']');
                if url.starts_with("https://") && url.ends_with('/') {
                    *slot = Some(url.to_string());
                }
            }
        }
    }

    fn both(&self) -> Option<(String, String)> {
        Some((self.webdav.clone()?, self.remote_control.clone()?))
    }
}

/// The repository behind a private rclone: the WebDAV tree, plus the flush of rclone's
/// directory cache Kopia does before every listing and read (another machine may have
/// written through the remote meanwhile).
#[derive(Debug)]
pub struct RcloneStorage {
    tree: FileTree,
    control: RemoteControl,
    name: String,
    _process: RcloneProcess,
}

impl RcloneStorage {
    /// Starts rclone for `config` and connects to it; nothing is left running on failure.
    pub fn start(config: &RcloneConfig) -> Result<Self> {
        let name = config.describe();
        let failed = |operation: &str, reason: String| Error::StorageRequest {
            storage: name.clone(),
            operation: operation.to_string(),
            reason,
        };
        let io = |what: &str| {
            let what = what.to_string();
            move |e: std::io::Error| failed("prepare rclone", format!("{what}: {e}"))
        };
        let dir = PrivateDir::create().map_err(io("private temporary directory"))?;
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
            .map_err(|e| failed("prepare rclone", format!("TLS certificate: {e}")))?;
        let fingerprint = certificate_fingerprint(certified.cert.der());
        let files = PrivateFiles {
            certificate: dir
                .write("webdav.cert", certified.cert.pem().as_bytes())
                .map_err(io("TLS certificate file"))?,
            key: dir
                .write("webdav.key", certified.key_pair.serialize_pem().as_bytes())
                .map_err(io("TLS key file"))?,
            config: match &config.embedded_config {
                Some(embedded) => Some(
                    dir.write("rclone.conf", embedded.expose().as_bytes())
                        .map_err(io("embedded rclone config file"))?,
                ),
                None => None,
            },
            dir,
        };
        let username = format!("u{}", hex::encode(rand::random::<[u8; 16]>()));
        let password = Password::new(format!("p{}", hex::encode(rand::random::<[u8; 16]>())));

        let executable = locate_executable(config.executable()).ok_or_else(|| {
            failed(
                &format!("start {}", config.executable()),
                "the rclone executable was not found (rcloneExe, else rclone on PATH)".into(),
            )
        })?;
        let mut command = tied_to_this_process(&executable);
        command
            .args(config.arguments(&files))
            .env("RCLONE_USER", &username)
            .env("RCLONE_PASS", password.expose())
            .env("RCLONE_RC_USER", &username)
            .env("RCLONE_RC_PASS", password.expose())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for entry in &config.rclone_env {
            if let Some((key, value)) = entry.split_once('=') {
                command.env(key, value);
            }
        }
        // Kopia keeps rclone out of the terminal's process group so Ctrl-C reaches us, and we
        // stop it ourselves (its osexec.DisableInterruptSignal).
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = spawn_from_lasting_thread(command)
            .map_err(|e| failed(&format!("start {}", executable.display()), e.to_string()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        let mut process = RcloneProcess { child, files };
        tracing::debug!(remote = %config.remote_path, "started rclone serve webdav");

        let (webdav_url, control_url) = wait_for_addresses(stderr, config.startup_timeout())
            .map_err(|reason| {
                let status = process.child.try_wait().ok().flatten();
                let reason = match status {
                    Some(status) => format!("rclone exited ({status}): {reason}"),
                    None => reason,
                };
                failed("start rclone serve webdav", reason)
            })?;
        let webdav = WebdavConfig {
            url: webdav_url,
            username: username.clone(),
            password: Some(Password::new(password.expose())),
            trusted_server_certificate_fingerprint: fingerprint.clone(),
            atomic_writes: config.atomic_writes,
            dir_shards: config.dir_shards.clone(),
            list_parallelism: config.list_parallelism,
        };
        let control = RemoteControl::new(control_url, username, password, &fingerprint)
            .map_err(|e| failed("connect to rclone's remote control", e))?;
        // On failure `process` drops here: rclone is killed and its files removed.
        let tree = webdav::connect(&webdav, name.clone())?;
        // rclone logs its addresses before its servers read the certificate and key: the
        // files may go only once both servers have answered over TLS (reading `.shards` and
        // this flush), or a server that found no files would never complete a handshake.
        control
            .forget()
            .map_err(|reason| failed("reach rclone's remote control", reason))?;
        if let Err(e) = process.files.loaded() {
            tracing::warn!("cannot remove rclone's private files: {e}");
        }
        Ok(RcloneStorage {
            tree,
            control,
            name,
            _process: process,
        })
    }

    fn forget(&self) -> Result<()> {
        self.control
            .forget()
            .map_err(|reason| Error::StorageRequest {
                storage: self.name.clone(),
                operation: "flush rclone's directory cache (vfs/forget)".to_string(),
                reason,
            })
    }
}

/// `exe` as given when it is a path, else the first match on PATH.
fn locate_executable(exe: &str) -> Option<PathBuf> {
    let candidate = Path::new(exe);
    if candidate.components().count() > 1 {
        return candidate.is_file().then(|| candidate.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(exe))
        .find(|path| path.is_file())
}

/// A command running `executable` that the kernel kills when we end, however we end (a
/// crash, SIGKILL, or a caller that never drops the storage): util-linux's `setpriv` sets the
/// parent-death signal and then becomes rclone. Without `setpriv`, rclone is run directly and
/// only dropping the storage stops it.
fn tied_to_this_process(executable: &Path) -> Command {
    match locate_executable("setpriv") {
        Some(setpriv) => {
            let mut command = Command::new(setpriv);
            command.args(["--pdeathsig", "KILL", "--"]).arg(executable);
            command
        }
        None => Command::new(executable),
    }
}

/// Spawns `command` from one thread that lives as long as the process: the parent-death
/// signal fires when the *thread* that forked ends, and callers' threads (a runtime's blocking
/// pool) may end long before the storage does.
fn spawn_from_lasting_thread(command: Command) -> std::io::Result<Child> {
    type Request = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: std::sync::OnceLock<std::sync::Mutex<mpsc::Sender<Request>>> =
        std::sync::OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (sender, receiver) = mpsc::channel::<Request>();
        let started = std::thread::Builder::new()
            .name("rclone-spawner".into())
            .spawn(move || {
                for (mut command, reply) in receiver {
                    let _ = reply.send(command.spawn());
                }
            });
        if let Err(e) = started {
            tracing::warn!("no thread to start rclone from: {e}");
        }
        std::sync::Mutex::new(sender)
    });
    let (reply, answer) = mpsc::channel();
    let gone = || std::io::Error::other("the thread that starts rclone is gone");
    spawner
        .lock()
        .map_err(|_| gone())?
        .send((command, reply))
        .map_err(|_| gone())?;
    answer.recv().map_err(|_| gone())?
}

/// Reads rclone's log until both addresses are known (then drains it on a thread of its own,
/// so rclone never blocks on a full pipe), rclone ends, or `timeout` passes.
fn wait_for_addresses(
    stderr: std::process::ChildStderr,
    timeout: Duration,
) -> std::result::Result<(String, String), String> {
    let (sender, receiver) = mpsc::channel();
    std::thread::Builder::new()
        .name("rclone-log".into())
        .spawn(move || {
            let mut addresses = Addresses::default();
            let mut last_lines: Vec<String> = Vec::new();
            let mut lines = BufReader::new(stderr).lines();
            let mut outcome = None;
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                addresses.take_line(&line);
                if let Some(both) = addresses.both() {
                    outcome = Some(both);
                    break;
                }
                last_lines.push(line);
                if last_lines.len() > STARTUP_LINES_KEPT {
                    last_lines.remove(0);
                }
            }
            let _ = sender.send(outcome.ok_or_else(|| {
                format!("rclone stopped before serving: {}", last_lines.join(" | "))
            }));
            lines.for_each(drop);
        })
        .map_err(|e| format!("cannot read rclone's output: {e}"))?;
    match receiver.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => Err(format!(
            "rclone did not report its WebDAV address within {timeout:?} (startupTimeout)"
        )),
    }
}

/// rclone's remote control, reached with the same pinned certificate and credentials.
struct RemoteControl {
    client: reqwest::Client,
    url: String,
    username: String,
    password: Password,
}

impl fmt::Debug for RemoteControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteControl")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl RemoteControl {
    fn new(
        url: String,
        username: String,
        password: Password,
        fingerprint: &str,
    ) -> std::result::Result<Self, String> {
        super::install_tls_provider();
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(PinnedCertificate::new(fingerprint).client_config())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(RemoteControl {
            client,
            url,
            username,
            password,
        })
    }

    /// POSTs `vfs/forget`; a request that did not get through (a reset under load) is tried
    /// again a few times, as Kopia's retrying wrapper around the rclone storage would.
    fn forget(&self) -> std::result::Result<(), String> {
        let mut last_error = String::new();
        for attempt in 0..FORGET_ATTEMPTS {
            if attempt > 0 {
                std::thread::sleep(FORGET_RETRY_DELAY * attempt);
            }
            let request = self
                .client
                .post(format!("{}vfs/forget", self.url))
                .basic_auth(&self.username, Some(self.password.expose()))
                .header("Content-Type", "application/json")
                .body("{}");
            let sent = super::block_on(async move { request.send().await });
            match sent {
                Ok(response) if response.status().is_success() => return Ok(()),
                Ok(response) => return Err(format!("rclone answered {}", response.status())),
                Err(e) => last_error = error_chain(&e),
            }
        }
        Err(last_error)
    }
}

impl BlobReader for RcloneStorage {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        self.forget()?;
        self.tree.get_blob(id)
    }

    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.forget()?;
        self.tree.get_blob_range(id, offset, length)
    }

    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        self.forget()?;
        self.tree.list_blobs(prefix)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

impl BlobWriter for RcloneStorage {
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()> {
        self.tree.put_blob(id, data)
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        self.tree.delete_blob(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kopia_keys_and_keeps_secrets_out_of_debug() {
        let config = RcloneConfig::from_json(&serde_json::json!({
            "remotePath": "onedrive:backups/kopia", "rcloneExe": "/opt/rclone",
            "rcloneArgs": ["--onedrive-token", "tok-in-args"], "rcloneEnv": ["RCLONE_CONFIG_PASS=s3cret"],
            "startupTimeout": "1m0s", "embeddedConfig": "[onedrive]\ntoken = {\"access_token\":\"abc\"}\n",
            "atomicWrites": true, "dirShards": null, "debug": true, "noWaitForTransfers": false,
            "maxDownloadSpeedBytesPerSecond": 0
        }))
        .unwrap();
        assert_eq!(config.remote_path, "onedrive:backups/kopia");
        assert_eq!(config.executable(), "/opt/rclone");
        assert_eq!(config.startup_timeout(), Duration::from_secs(60));
        assert!(config.atomic_writes);
        assert!(config
            .embedded_config
            .as_ref()
            .unwrap()
            .expose()
            .contains("abc"));
        let debug = format!("{config:?}");
        for secret in ["s3cret", "access_token", "tok-in-args"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("RCLONE_CONFIG_PASS"), "{debug}");
        assert_eq!(config.describe(), "rclone:onedrive:backups/kopia");

        let minimal = RcloneConfig::from_json(&serde_json::json!({
            "remotePath": "/srv/r", "rcloneArgs": null, "startupTimeout": 0
        }))
        .unwrap();
        assert_eq!(minimal.executable(), "rclone");
        assert_eq!(minimal.startup_timeout(), DEFAULT_STARTUP_TIMEOUT);
        assert!(minimal.rclone_args.is_empty() && minimal.embedded_config.is_none());
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"remotePath": ""}),
            serde_json::json!({"remotePath": "r:", "rcloneEnv": ["NOEQUALS"]}),
            serde_json::json!({"remotePath": "r:", "startupTimeout": "soon"}),
        ] {
            assert!(RcloneConfig::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn our_arguments_come_last_and_carry_no_secrets() {
        let config = RcloneConfig {
            remote_path: "remote:path".into(),
            rclone_args: vec!["--addr".into(), "0.0.0.0:80".into()],
            ..RcloneConfig::default()
        };
        let dir = PrivateDir::create().unwrap();
        let files = PrivateFiles {
            certificate: dir.path.join("webdav.cert"),
            key: dir.path.join("webdav.key"),
            config: Some(dir.path.join("rclone.conf")),
            dir,
        };
        let arguments = config.arguments(&files);
        assert_eq!(
            arguments[..6],
            [
                "-v",
                "serve",
                "webdav",
                "remote:path",
                "--addr",
                "0.0.0.0:80"
            ]
        );
        let ours = arguments.iter().rposition(|a| a == "--addr").unwrap();
        assert_eq!(arguments[ours + 1], "127.0.0.1:0");
        assert!(arguments.contains(&"--vfs-write-back=0s".to_string()));
        assert!(arguments.iter().any(|a| a.ends_with("rclone.conf")));
        assert!(!arguments
            .iter()
            .any(|a| a.contains("user") || a.contains("pass")));
    }

    #[test]
    fn private_files_are_private_and_removed() {
        let dir = PrivateDir::create().unwrap();
        let path = dir.path.clone();
        let file = dir.write("rclone.conf", b"token").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o700);
            assert_eq!(mode(&file), 0o600);
        }
        assert!(dir.write("rclone.conf", b"again").is_err());
        drop(dir);
        assert!(!path.exists());

        // Once rclone serves, its key and certificate go; without an embedded config the
        // whole directory does.
        for embedded in [false, true] {
            let dir = PrivateDir::create().unwrap();
            let path = dir.path.clone();
            let mut files = PrivateFiles {
                certificate: dir.write("webdav.cert", b"c").unwrap(),
                key: dir.write("webdav.key", b"k").unwrap(),
                config: embedded.then(|| dir.write("rclone.conf", b"t").unwrap()),
                dir,
            };
            files.loaded().unwrap();
            assert_eq!(path.exists(), embedded);
            if embedded {
                assert_eq!(fs::read_dir(&path).unwrap().count(), 0);
            }
            drop(files);
            assert!(!path.exists());
        }
    }

    #[test]
    fn addresses_are_read_from_rclone_log_lines() {
        let mut addresses = Addresses::default();
        addresses
            .take_line("2026/12/01 NOTICE: Serving remote control on https://127.0.0.1:37513/");
        assert_eq!(addresses.both(), None);
        addresses.take_line("2026/12/01 INFO  : Using --user u… as authenticated user");
        addresses.take_line(
            "2026/12/01 NOTICE: Local file system at /r: WebDav Server started on [https://127.0.0.1:41173/]",
        );
        assert_eq!(
            addresses.both(),
            Some((
                "https://127.0.0.1:41173/".to_string(),
                "https://127.0.0.1:37513/".to_string()
            ))
        );
        // Plain HTTP would mean our TLS flags were overridden: not an address we talk to.
        let mut plain = Addresses::default();
        plain.take_line("NOTICE: x: WebDav Server started on http://127.0.0.1:41173/");
        assert_eq!(plain.webdav, None);
    }

    #[test]
    fn executables_are_found_as_given_or_on_path() {
        assert_eq!(locate_executable("/nonexistent/rclone"), None);
        assert_eq!(locate_executable("no-such-program-for-kopia"), None);
        let sh = locate_executable("sh").unwrap();
        assert!(sh.is_absolute() && sh.ends_with("sh"), "{sh:?}");
        assert_eq!(locate_executable(sh.to_str().unwrap()), Some(sh.clone()));
        let mut tied = tied_to_this_process(&sh);
        let status = spawn_from_lasting_thread({
            tied.arg("-c").arg("exit 3");
            tied
        })
        .unwrap()
        .wait()
        .unwrap();
        assert_eq!(status.code(), Some(3));
    }

    #[test]
    fn a_missing_rclone_is_an_error_naming_the_binary_and_the_remote() {
        let config =
            serde_json::json!({"remotePath": "gdrive:kopia", "rcloneExe": "/nonexistent/rclone"});
        let message = open(&config, Access::ReadOnly).unwrap_err().to_string();
        assert!(
            message.contains("/nonexistent/rclone")
                && message.contains("rclone:gdrive:kopia")
                && message.contains("not found"),
            "{message}"
        );
    }
}
