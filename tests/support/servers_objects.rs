//! The object-store emulators the GCS and Azure interop tests start on loopback:
//! fake-gcs-server (Google Cloud Storage's JSON API) and Azurite (Azure Blob Storage), plus a
//! server that refuses every request as a cloud refuses bad credentials.
//! `.ci/install-object-emulators.sh` installs both emulators. Like Kopia itself, a missing one
//! fails the test under `CI=true` and is a loud skip elsewhere.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::servers::free_port;

/// How long an emulator may take to accept connections after it was started.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);
/// Where `.ci/install-object-emulators.sh` puts Azurite unless told otherwise.
const AZURITE_VERSION: &str = "3.35.0";
/// The variable Google's clients (Kopia's among them) and ours read the emulator from.
pub const GCS_EMULATOR_ENV: &str = "STORAGE_EMULATOR_HOST";

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// `None` after a loud notice, or a panic under CI, when `found` failed.
pub(crate) fn required<T>(what: &str, found: Result<T, String>) -> Option<T> {
    match found {
        Ok(server) => Some(server),
        Err(reason) if in_ci() => panic!("CI=true requires {what}: {reason}"),
        Err(reason) => {
            let notice = format!(
                "\n*** SKIPPED: {what} not available: {reason}; run .ci/install-object-emulators.sh ***\n"
            );
            let _ = std::io::stderr().write_all(notice.as_bytes());
            None
        }
    }
}

/// `name` on PATH, else in the first of `dirs` that has it.
pub(crate) fn locate(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, String> {
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .iter()
        .chain(dirs)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| format!("{name} is not on PATH nor in {dirs:?}"))
}

pub(crate) fn wait_for_port(what: &str, port: u16) -> Result<(), String> {
    let started = Instant::now();
    while started.elapsed() < STARTUP_TIMEOUT {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!(
        "{what} did not listen on port {port} within {STARTUP_TIMEOUT:?}"
    ))
}

/// One plain HTTP/1.0 request (so the answer is never chunked); the status code and the body.
fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the emulator");
    let mut request = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    stream.write_all(body).expect("send body");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    crate::http_response::parse_http_response(&response)
}

/// fake-gcs-server, one per test process: Google's clients find an emulator only through the
/// process environment ([`GCS_EMULATOR_ENV`]), which every test of the process shares, so the
/// tests share the server and take a bucket each. The server runs under a shell that ends it
/// when this process goes away (its stdin closes), as a static is never dropped.
pub struct FakeGcsServer {
    port: u16,
    _child: Mutex<Child>,
    _lifeline: Mutex<ChildStdin>,
}

/// The process's fake-gcs-server, with [`GCS_EMULATOR_ENV`] pointing at it, or `None` (after a
/// loud notice) outside CI when it is not installed. Under `CI=true` a missing server panics.
pub fn require_fake_gcs() -> Option<&'static FakeGcsServer> {
    static SERVER: OnceLock<Result<FakeGcsServer, String>> = OnceLock::new();
    let server = SERVER.get_or_init(|| {
        let server = FakeGcsServer::start()?;
        // Set once, before any test of the process opens a GCS storage or starts Kopia.
        std::env::set_var(GCS_EMULATOR_ENV, server.host());
        Ok(server)
    });
    required("fake-gcs-server", server.as_ref().map_err(Clone::clone))
}

impl FakeGcsServer {
    fn start() -> Result<FakeGcsServer, String> {
        let go_bin = Command::new("go")
            .args(["env", "GOPATH"])
            .output()
            .ok()
            .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("bin"));
        let bin = locate("fake-gcs-server", &go_bin.into_iter().collect::<Vec<_>>())?;
        let port = free_port();
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(r#""$0" "$@" & server=$!; read _ignored; kill "$server""#)
            .arg(&bin)
            .args([
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-backend",
                "memory",
            ])
            .args(["-port", &port.to_string()])
            .args(["-public-host", &format!("127.0.0.1:{port}")])
            .args(["-log-level", "error"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
        let lifeline = child.stdin.take().expect("piped stdin");
        let server = FakeGcsServer {
            port,
            _child: Mutex::new(child),
            _lifeline: Mutex::new(lifeline),
        };
        wait_for_port("fake-gcs-server", port)?;
        Ok(server)
    }

    /// `127.0.0.1:<port>`, as `STORAGE_EMULATOR_HOST` takes it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Creates a bucket (the emulator checks no credentials).
    pub fn create_bucket(&self, bucket: &str) {
        let body = format!(r#"{{"name":"{bucket}"}}"#);
        let (status, response) = http(
            self.port,
            "POST",
            "/storage/v1/b",
            &[("Content-Type", "application/json".to_owned())],
            body.as_bytes(),
        );
        assert_eq!(status, 200, "create bucket {bucket}: {response}");
    }

    /// Every object in `bucket` as the JSON API lists it (no delimiter), sorted by name.
    pub fn objects(&self, bucket: &str) -> Vec<serde_json::Value> {
        let (status, body) = http(
            self.port,
            "GET",
            &format!("/storage/v1/b/{bucket}/o"),
            &[],
            b"",
        );
        assert_eq!(status, 200, "list {bucket}: {body}");
        let listed: serde_json::Value = serde_json::from_str(&body).expect("a JSON listing");
        assert!(listed.get("nextPageToken").is_none(), "one page expected");
        let mut objects = listed["items"].as_array().cloned().unwrap_or_default();
        objects.sort_by_key(|item| item["name"].as_str().expect("object name").to_owned());
        objects
    }

    /// The names of every object in `bucket`, sorted.
    pub fn object_names(&self, bucket: &str) -> Vec<String> {
        self.objects(bucket)
            .iter()
            .map(|item| item["name"].as_str().expect("object name").to_owned())
            .collect()
    }
}

/// An azurite-blob process answering on a free loopback port, its account
/// [`AzuriteServer::ACCOUNT`] with a key of its own.
pub(crate) struct SpawnedAzurite {
    pub(crate) port: u16,
    pub(crate) key: String,
    pub(crate) child: Child,
    /// Its working directory (nothing is persisted; whatever Azurite writes beside that).
    pub(crate) dir: tempfile::TempDir,
}

/// Starts azurite-blob with `extra` arguments and waits until it answers; its standard output
/// (the access log) goes to `access_log` in its directory when named.
pub(crate) fn spawn_azurite(
    extra: &[&str],
    access_log: Option<&str>,
) -> Result<SpawnedAzurite, String> {
    let data = std::env::var_os("KOPIA_NOTIFIER_TOOLS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("XDG_DATA_HOME").map(|d| PathBuf::from(d).join("kopia-notifier"))
        })
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/kopia-notifier"))
        });
    let dirs: Vec<PathBuf> = data
        .map(|d| d.join(format!("azurite-{AZURITE_VERSION}/node_modules/.bin")))
        .into_iter()
        .collect();
    let bin = locate("azurite-blob", &dirs)?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let port = free_port();
    // A key of this server's own: nothing about it is secret, it only has to be 32 bytes.
    let seed = u64::from(std::process::id()) << 16 | u64::from(port);
    let key =
        base64::engine::general_purpose::STANDARD.encode(std::array::from_fn::<u8, 32, _>(|i| {
            (seed >> (i % 8 * 8)) as u8 ^ i as u8
        }));
    let stdout = match access_log {
        Some(name) => {
            Stdio::from(std::fs::File::create(dir.path().join(name)).map_err(|e| e.to_string())?)
        }
        None => Stdio::null(),
    };
    let child = Command::new(&bin)
        .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
        .args(["--loose", "--inMemoryPersistence", "--disableTelemetry"])
        // Kopia's Azure SDK speaks a newer API version than Azurite 3.35 knows by name.
        .arg("--skipApiVersionCheck")
        .args(extra)
        .current_dir(dir.path())
        .env(
            "AZURITE_ACCOUNTS",
            format!("{}:{key}", AzuriteServer::ACCOUNT),
        )
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", bin.display()))?;
    let mut spawned = SpawnedAzurite {
        port,
        key,
        child,
        dir,
    };
    if let Err(e) = wait_for_port("azurite-blob", port) {
        let _ = spawned.child.kill();
        let _ = spawned.child.wait();
        return Err(e);
    }
    Ok(spawned)
}

/// Azurite's blob service with one storage account of a key of its own, on its own port, ended
/// when dropped; its access log counts the requests it served.
///
/// How Kopia reaches it: Kopia builds the service URL as `<scheme>://<storageAccount>.<storageDomain>`
/// (repo/blob/azure/azure_storage.go New), and no `*.localhost` name resolves on a machine
/// without systemd-resolved, nor may the tests edit `/etc/hosts`. So the account is named
/// `127` (3 to 24 lowercase letters or digits: a valid account name) and the domain is
/// `0.0.1:<port>/127`: the concatenation is `127.0.0.1:<port>/127`, Azurite's path-style
/// address of account `127`, and the account key signs the same canonical resource for Kopia,
/// for us and for Azurite. `doNotUseTLS` keeps it plain HTTP.
pub struct AzuriteServer {
    port: u16,
    key: String,
    child: Child,
    access_log: PathBuf,
    _dir: tempfile::TempDir,
}

/// An Azurite server for a test, or `None` (after a loud notice) outside CI when it is not
/// installed. Under `CI=true` a missing server panics.
pub fn require_azurite() -> Option<AzuriteServer> {
    required("azurite-blob", AzuriteServer::start())
}

impl AzuriteServer {
    /// The storage account every Azurite test uses (see the type's documentation).
    pub const ACCOUNT: &'static str = "127";

    fn start() -> Result<AzuriteServer, String> {
        let spawned = spawn_azurite(&[], Some("access.log"))?;
        Ok(AzuriteServer {
            port: spawned.port,
            key: spawned.key,
            child: spawned.child,
            access_log: spawned.dir.path().join("access.log"),
            _dir: spawned.dir,
        })
    }

    /// The account key (base64), as Kopia's `storageKey` takes it.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Kopia's `storageDomain` that makes `<account>.<domain>` this server's address of the
    /// account (see the type's documentation).
    pub fn storage_domain(&self) -> String {
        format!("0.0.1:{}/{}", self.port, Self::ACCOUNT)
    }

    /// `127.0.0.1:<port>`, what error messages name.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The storage config Kopia writes for a container of this server.
    pub fn storage_config(&self, container: &str, prefix: &str) -> serde_json::Value {
        serde_json::json!({
            "container": container,
            "prefix": prefix,
            "storageAccount": Self::ACCOUNT,
            "storageKey": self.key,
            "storageDomain": self.storage_domain(),
            "doNotUseTLS": true,
        })
    }

    /// `kopia repository create` arguments for a repository in `container` under `prefix`:
    /// Kopia's CLI has no flag for `doNotUseTLS`, so the storage goes in as a from-config
    /// token (base64url of `{"version":"1","storage":…,"password":…}`, Kopia's
    /// repo/token.go) holding the config of [`Self::storage_config`].
    pub fn kopia_create_args(&self, container: &str, prefix: &str) -> Vec<String> {
        let token = serde_json::json!({
            "version": "1",
            "storage": {"type": "azureBlob", "config": self.storage_config(container, prefix)},
            "password": crate::PASSWORD,
        });
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string());
        vec!["from-config".to_owned(), format!("--token={token}")]
    }

    /// An account SAS token (sv 2020-12-06: blob service, every resource type, read, write,
    /// delete, list, add, create; valid until 2099), as `sasToken` takes it.
    pub fn sas_token(&self) -> String {
        let (version, permissions, expiry, protocols) =
            ("2020-12-06", "rwdlac", "2099-01-01T00:00:00Z", "http,https");
        // account, permissions, services, resource types, start, expiry, IP, protocols,
        // version, encryption scope: the documented string to sign of an account SAS.
        let to_sign = format!(
            "{}\n{permissions}\nb\nsco\n\n{expiry}\n\n{protocols}\n{version}\n\n",
            Self::ACCOUNT
        );
        let signature = self.sign(&to_sign);
        let escape = |text: &str| {
            text.replace('%', "%25")
                .replace('+', "%2B")
                .replace('/', "%2F")
                .replace('=', "%3D")
                .replace(':', "%3A")
                .replace(',', "%2C")
        };
        format!(
            "sv={version}&ss=b&srt=sco&sp={permissions}&se={}&spr={}&sig={}",
            escape(expiry),
            escape(protocols),
            escape(&signature)
        )
    }

    /// HMAC-SHA256 of `text` with the account key, base64.
    fn sign(&self, text: &str) -> String {
        let key = base64::engine::general_purpose::STANDARD
            .decode(&self.key)
            .expect("base64 key");
        let mut mac = Hmac::<Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(text.as_bytes());
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    }

    /// Creates a container, signed with the account key.
    pub fn create_container(&self, container: &str) {
        let (status, body) = self.signed("PUT", container, &[("restype", "container")]);
        assert_eq!(status, 201, "create container {container}: {body}");
    }

    /// The names of every blob in `container` (one page: the tests hold far fewer than 5,000).
    pub fn blob_names(&self, container: &str) -> Vec<String> {
        let (status, body) = self.signed(
            "GET",
            container,
            &[("comp", "list"), ("restype", "container")],
        );
        assert_eq!(status, 200, "list {container}: {body}");
        let mut names: Vec<String> = body
            .split("<Name>")
            .skip(1)
            .filter_map(|rest| rest.split_once("</Name>").map(|(name, _)| name.to_owned()))
            .collect();
        names.sort();
        names
    }

    /// How many requests the server has answered so far (lines of its access log).
    pub fn requests_served(&self) -> usize {
        // The log is written as requests finish; give the last line a moment.
        std::thread::sleep(Duration::from_millis(300));
        let log = std::fs::File::open(&self.access_log).expect("azurite access log");
        BufReader::new(log)
            .lines()
            .map_while(Result::ok)
            .filter(|line| line.contains("\" ") && line.contains("HTTP/1.1"))
            .count()
    }

    /// A Shared Key request on the container (the Blob service's documented signature: verb,
    /// twelve standard headers, the x-ms headers, the canonical resource and its sorted query).
    fn signed(&self, method: &str, container: &str, query: &[(&str, &str)]) -> (u16, String) {
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let version = "2021-08-06";
        let mut sorted = query.to_vec();
        sorted.sort();
        let mut resource = format!("/{0}/{0}/{container}", Self::ACCOUNT);
        for (name, value) in &sorted {
            resource.push_str(&format!("\n{name}:{value}"));
        }
        let to_sign = format!(
            "{method}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{version}\n{resource}"
        );
        let signature = self.sign(&to_sign);
        let query: Vec<String> = query.iter().map(|(n, v)| format!("{n}={v}")).collect();
        http(
            self.port,
            method,
            &format!("/{}/{container}?{}", Self::ACCOUNT, query.join("&")),
            &[
                ("x-ms-date", date),
                ("x-ms-version", version.to_owned()),
                (
                    "Authorization",
                    format!("SharedKey {}:{signature}", Self::ACCOUNT),
                ),
            ],
            b"",
        )
    }
}

impl AzuriteServer {
    /// Ends the server: its address stops answering.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A loopback HTTP server that answers every request with one fixed refusal (a cloud's answer
/// to bad credentials) and counts the requests, to show they are not retried.
pub struct RefusingServer {
    port: u16,
    requests: Arc<AtomicUsize>,
}

impl RefusingServer {
    /// Answers `status` with the JSON `body` to every request, until the process ends.
    pub fn start(status: u16, reason: &str, body: &str) -> RefusingServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&requests);
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                counter.fetch_add(1, Ordering::SeqCst);
                answer(stream, &response);
            }
        });
        RefusingServer { port, requests }
    }

    /// `127.0.0.1:<port>`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Reads one request head (and drops its body) and sends `response`.
fn answer(stream: TcpStream, response: &str) {
    let mut reader = BufReader::new(&stream);
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    let _ = reader.read_exact(&mut body);
    let _ = (&stream).write_all(response.as_bytes());
}
