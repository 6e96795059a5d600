//! Storage servers the backend interop tests start on loopback, each on a free port of its own
//! and ended when dropped. `.ci/install-storage-servers.sh` installs them. Like Kopia itself,
//! a missing server fails the test under `CI=true` and is a loud skip elsewhere.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to accept connections after it was started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// `moto_server`: an S3 (and more) server in Python, with versioning and object lock.
pub struct MotoServer {
    bin: PathBuf,
    port: u16,
    child: Child,
}

/// The moto server for a test, or `None` (after a loud notice) outside CI when it is not
/// installed. Under `CI=true` a missing server panics.
pub fn require_moto() -> Option<MotoServer> {
    match locate_moto().and_then(|bin| MotoServer::start(bin, free_port())) {
        Ok(server) => Some(server),
        Err(reason) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true requires moto_server: {reason}")
        }
        Err(reason) => {
            let notice = format!(
                "\n*** SKIPPED: moto_server not available: {reason}; run .ci/install-storage-servers.sh ***\n"
            );
            let _ = std::io::stderr().write_all(notice.as_bytes());
            None
        }
    }
}

/// `moto_server` on PATH, else in the scripts directory of `python3` (where pip puts it).
fn locate_moto() -> Result<PathBuf, String> {
    let mut candidates: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join("moto_server"))
                .collect()
        })
        .unwrap_or_default();
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        candidates.push(PathBuf::from(dir).join("moto_server"));
    }
    candidates
        .into_iter()
        .find(|c| c.is_file())
        .ok_or_else(|| "not on PATH nor in python3's scripts directory".to_owned())
}

/// A loopback port nothing listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl MotoServer {
    fn start(bin: PathBuf, port: u16) -> Result<MotoServer, String> {
        let child = spawn_moto(&bin, port)?;
        let server = MotoServer { bin, port, child };
        server.wait_until_ready()?;
        Ok(server)
    }

    /// `127.0.0.1:<port>`, as Kopia's `--endpoint` takes it.
    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (moto does not check signatures, so a bare PUT will do).
    pub fn create_bucket(&self, bucket: &str) {
        let response = self.request("PUT", &format!("/{bucket}"));
        assert!(
            response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
            "create bucket {bucket}: {response}"
        );
    }

    /// Kills the server and starts it again on the same port. moto keeps its state in memory,
    /// so the buckets are gone afterwards: this is a server that lost everything, or a
    /// different one answering on the same address.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again (after [`Self::kill`]) on the same port.
    pub fn restart(&mut self) {
        self.child = spawn_moto(&self.bin, self.port).expect("restart moto_server");
        self.wait_until_ready().expect("moto_server back up");
    }

    fn wait_until_ready(&self) -> Result<(), String> {
        let started = Instant::now();
        while started.elapsed() < STARTUP_TIMEOUT {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!(
            "moto_server did not listen on port {} within {STARTUP_TIMEOUT:?}",
            self.port
        ))
    }

    /// One plain HTTP/1.1 request with an empty body; the whole response as text.
    fn request(&self, method: &str, path: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        );
        stream.write_all(request.as_bytes()).expect("send request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read response");
        response
    }
}

fn spawn_moto(bin: &PathBuf, port: u16) -> Result<Child, String> {
    Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.kill();
    }
}
