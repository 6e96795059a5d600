//! Blob versions in front of Azurite, which keeps none (3.35: Put Blob answers no
//! `x-ms-version-id`, `include=versions` lists only the current blobs). A loopback HTTP proxy
//! forwards every request to Azurite unchanged, so Azurite still checks each Shared Key
//! signature and stores the current blobs, and adds what Azure's blob versioning documents:
//! each Put Blob and Delete Blob it forwarded is recorded as a version whose ID is the time of
//! the write (RFC 3339 with 7 fractional digits) and answered with `x-ms-version-id`; listings
//! with `include=versions` list the recorded versions oldest first (`IsCurrentVersion` on a
//! blob's live version; a deletion as an entry with `HasVersionsOnly`, its version ID the
//! time of the deletion, as Kopia's repo/blob/azure/azure_pit.go reads them); Get Blob with
//! `versionid` is answered from the records. Only what Kopia's and our requests need.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use base64::Engine;
use chrono::{DateTime, Utc};

use crate::servers_objects::AzuriteServer;

/// One recorded version of one blob.
#[derive(Clone)]
struct Version {
    id: String,
    written: DateTime<Utc>,
    /// `None`: the blob was deleted.
    body: Option<Vec<u8>>,
    metadata: Vec<(String, String)>,
}

type Records = Arc<Mutex<HashMap<String, Vec<Version>>>>;

/// The proxy, serving until dropped with the test.
pub struct VersioningProxy {
    port: u16,
    records: Records,
}

/// One HTTP request as read from the client.
struct Request {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    fn query(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            (n == name).then(|| decode(v))
        })
    }
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(byte) = u8::from_str_radix(&text[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let (method, target) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    let mut request = Request {
        method,
        target,
        headers,
        body: Vec::new(),
    };
    let length: usize = request
        .header("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    request.body = vec![0; length];
    reader.read_exact(&mut request.body).ok()?;
    Some(request)
}

/// Forwards `request` to Azurite on one connection of its own; its whole answer.
fn forward(azurite: &str, request: &Request) -> Vec<u8> {
    let mut upstream = TcpStream::connect(azurite).expect("connect to Azurite");
    let mut head = format!("{} {} HTTP/1.1\r\n", request.method, request.target);
    for (name, value) in &request.headers {
        if !name.eq_ignore_ascii_case("connection") {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    upstream.write_all(head.as_bytes()).unwrap();
    upstream.write_all(&request.body).unwrap();
    let mut answer = Vec::new();
    let _ = upstream.read_to_end(&mut answer);
    answer
}

fn status_of(answer: &[u8]) -> u16 {
    String::from_utf8_lossy(&answer[..answer.len().min(16)])
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn respond(status: &str, headers: &[(&str, String)], body: &[u8]) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn http_date(time: DateTime<Utc>) -> String {
    time.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

impl VersioningProxy {
    /// A proxy in front of `azurite`.
    pub fn start(azurite: &AzuriteServer) -> VersioningProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the versioning proxy");
        let port = listener.local_addr().unwrap().port();
        let records: Records = Arc::default();
        let upstream = azurite.address();
        let served = Arc::clone(&records);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let (records, upstream) = (Arc::clone(&served), upstream.clone());
                std::thread::spawn(move || serve(client, &upstream, &records));
            }
        });
        VersioningProxy { port, records }
    }

    /// Kopia's `storageDomain` that reaches Azurite's account through this proxy (see
    /// [`AzuriteServer`]).
    pub fn storage_domain(&self) -> String {
        format!("0.0.1:{}/{}", self.port, AzuriteServer::ACCOUNT)
    }

    /// `kopia repository create|connect` arguments for `container` under `prefix` through the
    /// proxy (a from-config token, as [`AzuriteServer::kopia_create_args`]), with the
    /// `pointInTime` `at` if given (Kopia's from-config has no `--point-in-time` flag).
    pub fn kopia_args(
        &self,
        azurite: &AzuriteServer,
        container: &str,
        prefix: &str,
        at: Option<&str>,
    ) -> Vec<String> {
        let mut config = azurite.storage_config(container, prefix);
        config["storageDomain"] = self.storage_domain().into();
        if let Some(at) = at {
            config["pointInTime"] = at.into();
        }
        let token = serde_json::json!({
            "version": "1",
            "storage": {"type": "azureBlob", "config": config},
            "password": crate::PASSWORD,
        });
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string());
        vec!["from-config".to_owned(), format!("--token={token}")]
    }

    /// How many versions (deletions included) the proxy has recorded.
    pub fn versions_recorded(&self) -> usize {
        self.records.lock().unwrap().values().map(Vec::len).sum()
    }
}

/// Answers one client connection, one request at a time.
fn serve(client: TcpStream, upstream: &str, records: &Records) {
    let mut reader = BufReader::new(client.try_clone().unwrap());
    let mut client = client;
    // Each answer says `Connection: close`: one request per connection.
    if let Some(request) = read_request(&mut reader) {
        let _ = client.write_all(&answer(&request, upstream, records));
    }
}

/// `/<account>/<container>/<blob>`: the container and blob of a path, if it names a blob.
fn blob_of(path: &str) -> Option<String> {
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (_, container, blob) = (parts.next()?, parts.next()?, parts.next()?);
    (!blob.is_empty()).then(|| format!("{container}/{}", decode(blob)))
}

fn next_version_id(records: &HashMap<String, Vec<Version>>) -> (String, DateTime<Utc>) {
    let latest = records
        .values()
        .flat_map(|v| v.iter().map(|v| v.written))
        .max();
    let mut now = Utc::now();
    if let Some(latest) = latest {
        if now <= latest {
            now = latest + chrono::Duration::microseconds(1);
        }
    }
    // Azure's 7 fractional digits (100 ns ticks), which chrono has no format for.
    let ticks = now.timestamp_subsec_nanos() / 100;
    let id = format!("{}.{ticks:07}Z", now.format("%Y-%m-%dT%H:%M:%S"));
    (id, now)
}

fn answer(request: &Request, upstream: &str, records: &Records) -> Vec<u8> {
    let versionid = request.query("versionid");
    let comp = request.query("comp");
    let include = request.query("include").unwrap_or_default();
    let upstream_answer = forward(upstream, request);
    let status = status_of(&upstream_answer);
    if matches!(status, 401 | 403) {
        return upstream_answer;
    }
    let blob = blob_of(request.path()).filter(|_| comp.is_none());
    match (request.method.as_str(), blob) {
        ("PUT", Some(blob)) if status == 201 => {
            let mut records = records.lock().unwrap();
            let (id, written) = next_version_id(&records);
            let metadata = request
                .headers
                .iter()
                .filter_map(|(n, v)| {
                    let name = n.to_ascii_lowercase();
                    let key = name.strip_prefix("x-ms-meta-")?;
                    Some((key.to_owned(), v.clone()))
                })
                .collect();
            records.entry(blob).or_default().push(Version {
                id: id.clone(),
                written,
                body: Some(request.body.clone()),
                metadata,
            });
            // The version ID goes in after the status line.
            let line_end = upstream_answer
                .windows(2)
                .position(|w| w == b"\r\n")
                .unwrap();
            let mut out = upstream_answer[..line_end + 2].to_vec();
            out.extend_from_slice(format!("x-ms-version-id: {id}\r\n").as_bytes());
            out.extend_from_slice(&upstream_answer[line_end + 2..]);
            out
        }
        ("DELETE", Some(blob)) if status == 202 => {
            let mut records = records.lock().unwrap();
            let (id, written) = next_version_id(&records);
            records.entry(blob).or_default().push(Version {
                id,
                written,
                body: None,
                metadata: Vec::new(),
            });
            upstream_answer
        }
        ("GET", Some(blob)) if versionid.is_some() => {
            let records = records.lock().unwrap();
            let wanted = versionid.unwrap();
            let found = records
                .get(&blob)
                .and_then(|versions| versions.iter().find(|v| v.id == wanted))
                .and_then(|v| Some((v, v.body.as_ref()?)));
            let Some((version, body)) = found else {
                return respond(
                    "404 The specified blob does not exist.",
                    &[("x-ms-error-code", "BlobNotFound".into())],
                    b"",
                );
            };
            let range = request
                .header("x-ms-range")
                .or(request.header("range"))
                .and_then(|r| r.strip_prefix("bytes="))
                .and_then(|r| r.split_once('-'))
                .map(|(a, b)| {
                    let start: usize = a.parse().unwrap_or(0);
                    let end: usize = b
                        .parse()
                        .map_or(body.len(), |e: usize| (e + 1).min(body.len()));
                    (start.min(body.len()), end)
                });
            let mut headers = vec![
                ("Last-Modified", http_date(version.written)),
                ("x-ms-version-id", version.id.clone()),
                ("x-ms-blob-type", "BlockBlob".to_owned()),
                ("Content-Type", "application/x-kopia".to_owned()),
                (
                    "ETag",
                    format!("\"0x{:X}\"", version.written.timestamp_micros()),
                ),
            ];
            match range {
                Some((start, end)) => {
                    headers.push((
                        "Content-Range",
                        format!("bytes {start}-{}/{}", end.max(1) - 1, body.len()),
                    ));
                    respond("206 Partial Content", &headers, &body[start..end])
                }
                None => respond("200 OK", &headers, body),
            }
        }
        ("GET", None) if comp.as_deref() == Some("list") && include.contains("versions") => {
            let container = request
                .path()
                .trim_start_matches('/')
                .split('/')
                .nth(1)
                .unwrap_or("")
                .to_owned();
            let prefix = request.query("prefix").unwrap_or_default();
            list_versions(&records.lock().unwrap(), &container, &prefix)
        }
        _ => upstream_answer,
    }
}

/// A List Blobs answer of every recorded version under `prefix`, oldest first per blob.
fn list_versions(
    records: &HashMap<String, Vec<Version>>,
    container: &str,
    prefix: &str,
) -> Vec<u8> {
    let mut names: Vec<&String> = records
        .keys()
        .filter(|k| {
            k.strip_prefix(&format!("{container}/"))
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    names.sort();
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?><EnumerationResults ContainerName=\"{}\"><Prefix>{}</Prefix><Blobs>",
        escape(container),
        escape(prefix)
    );
    for key in names {
        let name = &key[container.len() + 1..];
        let versions = &records[key];
        let live = versions.last().is_some_and(|v| v.body.is_some());
        for (i, version) in versions.iter().enumerate() {
            let current = live && i + 1 == versions.len();
            let (length, flags) = match &version.body {
                Some(body) if current => (body.len(), "<IsCurrentVersion>true</IsCurrentVersion>"),
                Some(body) => (body.len(), ""),
                None => (0, "<HasVersionsOnly>true</HasVersionsOnly>"),
            };
            let metadata: String = version
                .metadata
                .iter()
                .map(|(k, v)| format!("<{k}>{}</{k}>", escape(v)))
                .collect();
            xml.push_str(&format!(
                "<Blob><Name>{}</Name><VersionId>{}</VersionId>{flags}<Properties>\
                 <Last-Modified>{}</Last-Modified><Etag>0x{:X}</Etag>\
                 <Content-Length>{length}</Content-Length>\
                 <Content-Type>application/x-kopia</Content-Type><BlobType>BlockBlob</BlobType>\
                 </Properties><Metadata>{metadata}</Metadata></Blob>",
                escape(name),
                version.id,
                http_date(version.written),
                version.written.timestamp_micros(),
            ));
        }
    }
    xml.push_str("</Blobs><NextMarker /></EnumerationResults>");
    respond(
        "200 OK",
        &[
            ("Content-Type", "application/xml".to_owned()),
            ("x-ms-version", "2022-11-02".to_owned()),
        ],
        xml.as_bytes(),
    )
}
