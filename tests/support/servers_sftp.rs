//! A private OpenSSH server for the SFTP interop tests: Debian's `/usr/sbin/sshd` run in the
//! foreground on a free loopback port with its own config, host key, authorized keys and pid
//! file in a temporary directory (the system's sshd and its config are never touched), serving
//! SFTP with `internal-sftp`. The login is the user running the tests, by key; a server with
//! password logins sees a one-line shadow file of its own, bind-mounted over `/etc/shadow` in
//! a private mount namespace (root only), so no system account changes.
//! `.ci/install-storage-servers.sh` installs what it needs. Under `CI=true` a missing sshd panics;
//! elsewhere it is a loud skip.

use std::fs;
use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long sshd may take to accept connections after it was started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(20);
/// sshd refuses to start without its privilege separation directory (Debian's package makes
/// it at boot through systemd, which a container may not run).
const PRIVSEP_DIR: &str = "/run/sshd";

/// A running sshd and the files a client needs to log in to it.
pub struct SshServer {
    dir: TempDir,
    sshd: PathBuf,
    port: u16,
    user: String,
    password: Option<String>,
    child: Option<Child>,
}

/// A key-login sshd for a test, or `None` (after a loud notice) outside CI when it cannot run.
pub fn require_sshd() -> Option<SshServer> {
    require(SshServer::start(None))
}

/// An sshd that also takes `password` for the current user (root only: the private shadow file
/// needs a mount namespace).
pub fn require_sshd_with_password(password: &str) -> Option<SshServer> {
    require(SshServer::start(Some(password)))
}

fn require(started: Result<SshServer, String>) -> Option<SshServer> {
    match started {
        Ok(server) => Some(server),
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true requires sshd: {reason}")
        }
        Err(reason) => {
            let notice = format!(
                "\n*** SKIPPED: sshd not available: {reason}; run .ci/install-storage-servers.sh ***\n"
            );
            let _ = std::io::stderr().write_all(notice.as_bytes());
            None
        }
    }
}

impl SshServer {
    fn start(password: Option<&str>) -> Result<SshServer, String> {
        let sshd = locate("sshd", &["/usr/sbin/sshd", "/usr/local/sbin/sshd"])?;
        locate("ssh-keygen", &[])?;
        let user = current_user()?;
        if !Path::new(PRIVSEP_DIR).is_dir() {
            fs::create_dir_all(PRIVSEP_DIR)
                .map_err(|e| format!("cannot create {PRIVSEP_DIR}: {e}"))?;
        }
        let dir = tempfile::Builder::new()
            .prefix("kopia-sshd-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let path = dir.path();
        keygen(&path.join("host_ed25519"))?;
        keygen(&path.join("client_ed25519"))?;
        fs::copy(
            path.join("client_ed25519.pub"),
            path.join("authorized_keys"),
        )
        .map_err(|e| e.to_string())?;
        fs::create_dir(path.join("data")).map_err(|e| e.to_string())?;
        if let Some(password) = password {
            if !is_root() {
                return Err("password logins need root (a private /etc/shadow)".to_owned());
            }
            write_shadow(&path.join("shadow"), &user, password)?;
        }
        let config = format!(
            "ListenAddress 127.0.0.1\n\
             HostKey {dir}/host_ed25519\n\
             PidFile {dir}/sshd.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\n\
             StrictModes no\n\
             UsePAM no\n\
             PermitRootLogin yes\n\
             PasswordAuthentication {password}\n\
             KbdInteractiveAuthentication no\n\
             Subsystem sftp internal-sftp\n",
            dir = path.display(),
            password = if password.is_some() { "yes" } else { "no" },
        );
        fs::write(path.join("sshd_config"), config).map_err(|e| e.to_string())?;
        let mut server = SshServer {
            port: crate::servers::free_port(),
            dir,
            sshd,
            user,
            password: password.map(str::to_owned),
            child: None,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> Result<(), String> {
        let path = self.dir.path();
        let config = path.join("sshd_config");
        let mut command = if self.password.is_some() {
            // The shadow file is seen only by this sshd and its children.
            let mut command = Command::new("unshare");
            command
                .args(["--mount", "--propagation", "private", "sh", "-c"])
                .arg("mount --bind \"$1\" /etc/shadow && exec \"$2\" -D -e -f \"$3\" -p \"$4\"");
            command
                .arg("sh")
                .arg(path.join("shadow"))
                .arg(&self.sshd)
                .arg(&config)
                .arg(self.port.to_string());
            command
        } else {
            let mut command = Command::new(&self.sshd);
            command
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .arg("-p")
                .arg(self.port.to_string());
            command
        };
        let log = fs::File::create(path.join("sshd.log")).map_err(|e| e.to_string())?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.sshd.display()))?;
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < STARTUP_TIMEOUT {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                return Err(format!("sshd exited with {status}: {}", self.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "sshd did not listen on port {} within {STARTUP_TIMEOUT:?}: {}",
            self.port,
            self.log()
        ))
    }

    /// What sshd wrote so far (its `-e` log).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// The server's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The login name (the user running the tests).
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password logins take, for a server started with one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The private key (OpenSSH format, no passphrase) the server accepts.
    pub fn client_key(&self) -> PathBuf {
        self.dir.path().join("client_ed25519")
    }

    /// A directory on the server, empty at first, to keep repositories in.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The host's public key as a known_hosts line's key part: `ssh-ed25519 AAAA…`.
    pub fn host_key(&self) -> String {
        let public = fs::read_to_string(self.dir.path().join("host_ed25519.pub"))
            .expect("read the host's public key");
        public
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// A known_hosts file naming this server as OpenSSH writes it for a port other than 22:
    /// `[127.0.0.1]:<port> ssh-ed25519 …`.
    pub fn known_hosts(&self) -> PathBuf {
        let path = self.dir.path().join("known_hosts");
        fs::write(
            &path,
            format!("[127.0.0.1]:{} {}\n", self.port, self.host_key()),
        )
        .expect("write known_hosts");
        path
    }

    /// The same file with the host names hashed (`ssh-keygen -H`): `|1|salt|hash …` lines.
    pub fn hashed_known_hosts(&self) -> PathBuf {
        let path = self.dir.path().join("known_hosts_hashed");
        fs::copy(self.known_hosts(), &path).expect("copy known_hosts");
        let out = Command::new("ssh-keygen")
            .arg("-H")
            .arg("-f")
            .arg(&path)
            .output()
            .expect("run ssh-keygen -H");
        assert!(out.status.success(), "ssh-keygen -H: {out:?}");
        let _ = fs::remove_file(path.with_extension("old"));
        path
    }

    /// A new key pair the server does not accept; the private key's path.
    pub fn stranger_key(&self, name: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        keygen(&path).expect("make a key");
        path
    }

    /// Kills sshd and every connection it serves, as a rebooting server drops them.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // Each connection is a child process of the listener (its own session, so no group).
        let master = child.id();
        for pid in children_of(master) {
            let _ = Command::new("kill")
                .arg("-9")
                .arg(pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts sshd again on the same port with the same keys (after [`Self::stop`]).
    pub fn restart(&mut self) {
        self.spawn().expect("restart sshd");
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `name` on PATH, else the first of `fallbacks` that exists (sshd must be run by absolute
/// path: it re-executes itself).
fn locate(name: &str, fallbacks: &[&str]) -> Result<PathBuf, String> {
    std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|p| p.is_absolute() && p.is_file())
        .ok_or_else(|| format!("{name} is not on PATH nor in {fallbacks:?}"))
}

fn keygen(path: &Path) -> Result<(), String> {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "kopia-test", "-f"])
        .arg(path)
        .output()
        .map_err(|e| format!("cannot run ssh-keygen: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ssh-keygen failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

fn current_user() -> Result<String, String> {
    let out = Command::new("id")
        .arg("-un")
        .output()
        .map_err(|e| format!("cannot run id: {e}"))?;
    let user = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if user.is_empty() {
        Err("cannot tell the current user".to_owned())
    } else {
        Ok(user)
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// A shadow file with one line: `user` and the SHA-512 crypt of `password` (`openssl passwd`).
fn write_shadow(path: &Path, user: &str, password: &str) -> Result<(), String> {
    let mut child = Command::new("openssl")
        .args(["passwd", "-6", "-stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run openssl passwd: {e}"))?;
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(password.as_bytes())
        .map_err(|e| e.to_string())?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || !hash.starts_with("$6$") {
        return Err(format!("openssl passwd -6 failed: {out:?}"));
    }
    fs::write(path, format!("{user}:{hash}:19000:0:99999:7:::\n")).map_err(|e| e.to_string())?;
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).map_err(|e| e.to_string())
}

/// Pids whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    // "pid (comm) state ppid …": comm may hold spaces, so split after ')'.
                    let after = stat.rsplit_once(')')?.1;
                    after.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(parent)
        })
        .collect()
}
