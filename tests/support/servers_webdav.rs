//! A real WebDAV server for the `webdav` and `rclone` backend tests: Debian's `rclone serve
//! webdav` over a directory of the test, on loopback, with basic auth, over plain HTTP or over
//! TLS with a self-signed certificate made by the `openssl` binary. Like every server of
//! [`super::servers`], a missing rclone fails under `CI=true` and is a loud skip elsewhere.

use std::io::Write;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use super::servers::free_port;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
pub const WEBDAV_USER: &str = "davuser";
pub const WEBDAV_PASSWORD: &str = "dav-secret-password";

/// A self-signed certificate for 127.0.0.1 and its key, in a directory of their own.
pub struct TestCertificate {
    dir: TempDir,
    /// Lowercase hex SHA-256 of the certificate's DER bytes (what Kopia pins).
    pub fingerprint: String,
}

impl TestCertificate {
    pub fn generate() -> Result<TestCertificate, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let out = Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args([
                "-subj",
                "/CN=127.0.0.1",
                "-addext",
                "subjectAltName=IP:127.0.0.1",
            ])
            .arg("-keyout")
            .arg(dir.path().join("key.pem"))
            .arg("-out")
            .arg(dir.path().join("cert.pem"))
            .output()
            .map_err(|e| format!("cannot run openssl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl req failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let out = Command::new("openssl")
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(dir.path().join("cert.pem"))
            .output()
            .map_err(|e| format!("cannot run openssl: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let hex = text
            .trim()
            .rsplit('=')
            .next()
            .unwrap_or_default()
            .replace(':', "")
            .to_lowercase();
        if hex.len() != 64 {
            return Err(format!("unexpected openssl fingerprint output {text:?}"));
        }
        Ok(TestCertificate {
            dir,
            fingerprint: hex,
        })
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }
}

/// `rclone serve webdav` over `root`, killed when dropped.
pub struct WebdavServer {
    child: Child,
    port: u16,
    tls: bool,
}

/// The path of Debian's (or any) rclone, or why there is none; `CI=true` makes its absence a
/// failure.
pub fn require_rclone() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("rclone"))
            .find(|c| c.is_file())
    });
    match found {
        Some(path) => Some(path),
        None if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true requires rclone on PATH (apt-get install rclone)")
        }
        None => {
            let notice = "\n*** SKIPPED: rclone not on PATH; apt-get install rclone ***\n";
            let _ = std::io::stderr().write_all(notice.as_bytes());
            None
        }
    }
}

impl WebdavServer {
    /// Serves `root` with basic auth ([`WEBDAV_USER`], [`WEBDAV_PASSWORD`]), over TLS with
    /// `certificate` when one is given.
    pub fn start(
        rclone: &Path,
        root: &Path,
        certificate: Option<&TestCertificate>,
    ) -> WebdavServer {
        let port = free_port();
        let mut command = Command::new(rclone);
        command
            .args(["serve", "webdav"])
            .arg(root)
            .args(["--addr", &format!("127.0.0.1:{port}")])
            .args(["--user", WEBDAV_USER, "--pass", WEBDAV_PASSWORD])
            // Every listing goes to the directory, so what another server wrote shows at once.
            .args(["--dir-cache-time", "0s"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(certificate) = certificate {
            command
                .arg("--cert")
                .arg(certificate.cert())
                .arg("--key")
                .arg(certificate.key());
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", rclone.display()));
        let server = WebdavServer {
            child,
            port,
            tls: certificate.is_some(),
        };
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < STARTUP_TIMEOUT,
                "rclone serve webdav did not listen on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// The server's root URL, as Kopia's `--url` takes it.
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WebdavServer {
    fn drop(&mut self) {
        self.kill();
    }
}
