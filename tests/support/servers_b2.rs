//! A fake of Backblaze B2's native API (there is no emulator), on loopback, for the calls Kopia's
//! B2 client (gopkg.in/kothar/go-backblaze.v0, API v1) and ours (API v2) make:
//! b2_authorize_account, b2_list_buckets, b2_get_upload_url, uploads, b2_list_file_names,
//! b2_list_file_versions, b2_get_file_info, downloads by name (GET and HEAD, ranges),
//! b2_hide_file and b2_delete_file_version, answering as B2's documentation says
//! (https://www.backblaze.com/apidocs/). Files live in memory with their versions; every
//! request is counted by call name.
//!
//! Clients authorize at `https://api.backblazeb2.com` and may not be told otherwise, so the
//! fake is reached as a real user behind a proxy would reach B2: [`B2Fake::start`] points this
//! process's `HTTPS_PROXY` (inherited by the Kopia and kopia-notify processes it starts) at a
//! loopback proxy whose `CONNECT api.backblazeb2.com:443` tunnels into a TLS server with a
//! certificate for that name, signed by a CA of the test that `SSL_CERT_FILE` names (Go and
//! rustls-native-certs honour both). The authorization it answers sends the client on to the
//! fake's own plain-HTTP loopback address, which no proxy is asked for.

mod front;
pub(crate) mod http;

use std::collections::{BTreeMap, HashMap};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use self::http::{decode, encode, hex, parse_range, Listener, Request, Response};

/// One stored version of a file.
#[derive(Debug, Clone)]
struct Version {
    id: String,
    name: String,
    /// `upload` or `hide`.
    action: &'static str,
    data: Vec<u8>,
    sha1: String,
    content_type: String,
    info: BTreeMap<String, String>,
    uploaded_ms: i64,
}

#[derive(Debug, Default)]
struct State {
    /// Versions by file name, newest first.
    files: BTreeMap<String, Vec<Version>>,
    counts: BTreeMap<String, usize>,
    /// Injected failures: this many next calls of a name answer with this status.
    faults: HashMap<String, (usize, u16)>,
    upload_tokens: Vec<String>,
    /// Bumped by [`B2Fake::expire_tokens`]: older account tokens are expired.
    token_generation: usize,
    last_ms: i64,
    serial: usize,
}

struct Fake {
    bucket: String,
    bucket_id: String,
    account_id: String,
    key: String,
    port: u16,
    running: AtomicBool,
    state: Mutex<State>,
}

/// A B2 account with one private bucket and one application key. Dropping it stops it.
pub struct B2Fake {
    fake: Arc<Fake>,
    listener: Option<Listener>,
}

impl B2Fake {
    /// An empty bucket `bucket` that the key `key_id`/`key` may use.
    pub fn start(bucket: &str, key_id: &str, key: &str) -> B2Fake {
        let front = front::front();
        let port = free_port();
        let fake = Arc::new(Fake {
            bucket: bucket.to_owned(),
            bucket_id: format!("bkt{port}"),
            account_id: format!("acct{port}"),
            key: key.to_owned(),
            port,
            running: AtomicBool::new(false),
            state: Mutex::default(),
        });
        front
            .accounts
            .lock()
            .unwrap()
            .insert(key_id.to_owned(), Arc::downgrade(&fake));
        let mut server = B2Fake {
            fake,
            listener: None,
        };
        server.restart();
        server
    }

    /// Stops answering: the API port refuses connections, open ones are cut, and the
    /// authorization front drops this account's requests.
    pub fn stop(&mut self) {
        self.fake.running.store(false, Ordering::SeqCst);
        self.listener = None;
    }

    /// Answers again on the same port, with the files it had.
    pub fn restart(&mut self) {
        let fake = Arc::clone(&self.fake);
        let serve: Arc<dyn Fn(TcpStream) + Send + Sync> =
            Arc::new(move |stream| http::serve(stream, &|request| Some(fake.api(request))));
        self.listener =
            Some(Listener::start(self.fake.port, serve).expect("bind the B2 fake's port again"));
        self.fake.running.store(true, Ordering::SeqCst);
    }

    /// How many requests each call got (`b2_download_file_by_name`, `b2_upload_file`…),
    /// authorizations included; the counts start again from zero.
    pub fn take_counts(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut self.fake.state.lock().unwrap().counts)
    }

    /// The next `times` requests of `call` answer `status` (e.g. 503), as a busy B2 does.
    pub fn fail_next(&self, call: &str, times: usize, status: u16) {
        let mut state = self.fake.state.lock().unwrap();
        state.faults.insert(call.to_owned(), (times, status));
    }

    /// Expires every account token handed out so far (B2's last 24 hours).
    pub fn expire_tokens(&self) {
        self.fake.state.lock().unwrap().token_generation += 1;
    }

    /// Names of the files whose latest version is a hide marker (Kopia's deletions).
    pub fn hidden_files(&self) -> Vec<String> {
        let state = self.fake.state.lock().unwrap();
        state
            .files
            .iter()
            .filter(|(_, versions)| versions[0].action == "hide")
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Names of the visible files.
    pub fn visible_files(&self) -> Vec<String> {
        let state = self.fake.state.lock().unwrap();
        state
            .files
            .iter()
            .filter(|(_, versions)| versions[0].action == "upload")
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// The file info (`X-Bz-Info-*`) and content type of the latest version of `name`.
    pub fn file_info(&self, name: &str) -> Option<(BTreeMap<String, String>, String)> {
        let state = self.fake.state.lock().unwrap();
        let latest = state.files.get(name)?.first()?;
        Some((latest.info.clone(), latest.content_type.clone()))
    }
}

impl Drop for B2Fake {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A free loopback port (the fake keeps it across restarts).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

impl Fake {
    fn token(&self) -> String {
        let generation = self.state.lock().unwrap().token_generation;
        format!("token-{}-{generation}", self.port)
    }

    /// B2's answers to a missing, wrong or expired account token.
    fn check_token(&self, request: &Request) -> Result<(), Response> {
        let given = request.header("authorization").unwrap_or_default();
        if given == self.token() {
            Ok(())
        } else if given.starts_with(&format!("token-{}-", self.port)) {
            Err(Response::error(
                401,
                "expired_auth_token",
                "Authorization token has expired",
            ))
        } else {
            Err(Response::error(
                401,
                "bad_auth_token",
                "invalid authorization token",
            ))
        }
    }

    fn count(&self, call: &str) -> Option<u16> {
        let mut state = self.state.lock().unwrap();
        *state.counts.entry(call.to_owned()).or_default() += 1;
        let fault = state.faults.get_mut(call)?;
        if fault.0 == 0 {
            return None;
        }
        fault.0 -= 1;
        Some(fault.1)
    }

    fn authorize(&self, key: &str) -> Response {
        if let Some(status) = self.count("b2_authorize_account") {
            return Response::error(status, "service_unavailable", "injected");
        }
        if key != self.key {
            return Response::error(401, "unauthorized", "invalid application key");
        }
        let base = format!("http://127.0.0.1:{}", self.port);
        Response::json(
            200,
            &json!({
                "accountId": self.account_id,
                "authorizationToken": self.token(),
                "apiUrl": base,
                "downloadUrl": base,
                "recommendedPartSize": 100_000_000,
                "absoluteMinimumPartSize": 5_000_000,
                "allowed": {"capabilities": ["listBuckets", "listFiles", "readFiles",
                    "writeFiles", "deleteFiles"], "bucketId": null, "bucketName": null,
                    "namePrefix": null},
            }),
        )
    }

    /// Everything after authorization: JSON calls, uploads and downloads.
    fn api(&self, request: &Request) -> Response {
        let path = request.path.clone();
        if let Some(rest) = path.strip_prefix("/file/") {
            return self.download(request, rest);
        }
        if path.starts_with("/upload/") {
            return self.upload(request);
        }
        let Some(call) = path
            .rsplit('/')
            .next()
            .filter(|_| path.starts_with("/b2api/v"))
        else {
            return Response::error(404, "not_found", "unknown path");
        };
        if let Some(status) = self.count(call) {
            return Response::error(status, "service_unavailable", "injected");
        }
        if let Err(refused) = self.check_token(request) {
            return refused;
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return Response::error(400, "bad_request", "body is not JSON");
        };
        let bucket_ok = |b: &Value| b["bucketId"] == self.bucket_id.as_str();
        match call {
            "b2_list_buckets" => self.list_buckets(&body),
            "b2_get_upload_url" if bucket_ok(&body) => {
                let mut state = self.state.lock().unwrap();
                state.serial += 1;
                let token = format!("upload-{}-{}", self.port, state.serial);
                state.upload_tokens.push(token.clone());
                Response::json(
                    200,
                    &json!({"bucketId": self.bucket_id, "authorizationToken": token,
                        "uploadUrl": format!("http://127.0.0.1:{}/upload/{}", self.port,
                        self.bucket_id)}),
                )
            }
            "b2_list_file_names" if bucket_ok(&body) => self.list_file_names(&body),
            "b2_list_file_versions" if bucket_ok(&body) => self.list_file_versions(&body),
            "b2_get_file_info" => self.get_file_info(&body),
            "b2_hide_file" if bucket_ok(&body) => self.hide_file(&body),
            "b2_delete_file_version" => self.delete_file_version(&body),
            "b2_get_upload_url"
            | "b2_list_file_names"
            | "b2_list_file_versions"
            | "b2_hide_file" => Response::error(400, "bad_request", "invalid bucketId"),
            _ => Response::error(400, "bad_request", &format!("unsupported call {call}")),
        }
    }

    fn file_json(&self, version: &Version) -> Value {
        // B2 reports no digest for a hide marker.
        let sha1 = if version.action == "upload" {
            version.sha1.as_str()
        } else {
            "none"
        };
        json!({
            "accountId": self.account_id,
            "action": version.action,
            "bucketId": self.bucket_id,
            "contentLength": version.data.len(),
            "contentSha1": sha1,
            "contentType": version.content_type,
            "fileId": version.id,
            "fileInfo": version.info,
            "fileName": version.name,
            "uploadTimestamp": version.uploaded_ms,
        })
    }

    fn list_buckets(&self, body: &Value) -> Response {
        if body["accountId"] != self.account_id.as_str() {
            return Response::error(401, "unauthorized", "wrong accountId");
        }
        let wanted = body["bucketName"].as_str();
        let buckets: Vec<Value> = [json!({
            "accountId": self.account_id, "bucketId": self.bucket_id,
            "bucketName": self.bucket, "bucketType": "allPrivate", "bucketInfo": {},
            "lifecycleRules": [], "revision": 1,
        })]
        .into_iter()
        .filter(|_| wanted.is_none_or(|w| w == self.bucket))
        .collect();
        Response::json(200, &json!({ "buckets": buckets }))
    }

    fn upload(&self, request: &Request) -> Response {
        if let Some(status) = self.count("b2_upload_file") {
            return Response::error(status, "service_unavailable", "injected");
        }
        let mut state = self.state.lock().unwrap();
        let token = request.header("authorization").unwrap_or_default();
        if !state.upload_tokens.iter().any(|t| t == token) {
            return Response::error(401, "bad_auth_token", "invalid upload token");
        }
        let Some(name) = request.header("x-bz-file-name").map(decode) else {
            return Response::error(400, "bad_request", "no X-Bz-File-Name");
        };
        let sha1 = hex(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            &request.body,
        ));
        if request.header("x-bz-content-sha1") != Some(sha1.as_str()) {
            return Response::error(400, "bad_request", "sha1 did not match data received");
        }
        let info = request
            .headers
            .iter()
            .filter_map(|(k, v)| Some((decode(k.strip_prefix("x-bz-info-")?), decode(v))))
            .collect();
        let content_type = match request.header("content-type") {
            Some("b2/x-auto") | None => "application/octet-stream",
            Some(other) => other,
        };
        let version = state.new_version(&name, "upload", request.body.clone(), sha1, info);
        let version = Version {
            content_type: content_type.to_owned(),
            ..version
        };
        let answer = self.file_json(&version);
        state.files.entry(name).or_default().insert(0, version);
        Response::json(200, &answer)
    }

    fn download(&self, request: &Request, rest: &str) -> Response {
        if let Some(status) = self.count("b2_download_file_by_name") {
            return Response::error(status, "service_unavailable", "injected");
        }
        if let Err(refused) = self.check_token(request) {
            return refused;
        }
        let Some(name) = rest.strip_prefix(&format!("{}/", self.bucket)).map(decode) else {
            return Response::error(404, "not_found", "no such bucket");
        };
        let state = self.state.lock().unwrap();
        let Some(file) = state
            .files
            .get(&name)
            .and_then(|v| v.first())
            .filter(|v| v.action == "upload")
        else {
            return Response::error(
                404,
                "not_found",
                &format!("File with such name does not exist: {name}"),
            );
        };
        let size = file.data.len();
        let mut headers = vec![
            ("Content-Type".to_owned(), file.content_type.clone()),
            ("X-Bz-File-Id".to_owned(), file.id.clone()),
            ("X-Bz-File-Name".to_owned(), encode(&file.name)),
            ("X-Bz-Content-Sha1".to_owned(), file.sha1.clone()),
            (
                "X-Bz-Upload-Timestamp".to_owned(),
                file.uploaded_ms.to_string(),
            ),
        ];
        for (key, value) in &file.info {
            headers.push((format!("X-Bz-Info-{}", encode(key)), encode(value)));
        }
        let range = request.header("range").and_then(parse_range);
        let (status, body) = match range {
            None => (200, file.data.clone()),
            Some((first, _)) if first >= size => {
                return Response::error(416, "range_not_satisfiable", "range past the end");
            }
            Some((first, last)) => {
                let last = last.unwrap_or(size - 1).min(size - 1);
                headers.push((
                    "Content-Range".to_owned(),
                    format!("bytes {first}-{last}/{size}"),
                ));
                (206, file.data[first..=last].to_vec())
            }
        };
        Response {
            status,
            headers,
            body,
        }
    }

    fn list_file_names(&self, body: &Value) -> Response {
        let prefix = body["prefix"].as_str().unwrap_or_default();
        let delimiter = body["delimiter"].as_str().filter(|d| !d.is_empty());
        let start = body["startFileName"].as_str().unwrap_or_default();
        let max = body["maxFileCount"]
            .as_u64()
            .unwrap_or(100)
            .clamp(1, 10_000) as usize;
        let state = self.state.lock().unwrap();
        // Visible files, and with a delimiter one `folder` entry per deeper name.
        let mut entries: BTreeMap<String, Value> = BTreeMap::new();
        for (name, versions) in state.files.range(prefix.to_owned()..) {
            if !name.starts_with(prefix) {
                break;
            }
            if versions[0].action != "upload" {
                continue;
            }
            let folder = delimiter.and_then(|d| {
                let rest = &name[prefix.len()..];
                rest.find(d)
                    .map(|i| format!("{prefix}{}", &rest[..i + d.len()]))
            });
            match folder {
                Some(folder) => {
                    entries.entry(folder.clone()).or_insert_with(|| {
                        json!({"action": "folder", "fileName": folder, "contentLength": 0,
                            "fileId": null, "fileInfo": {}, "uploadTimestamp": 0})
                    });
                }
                None => {
                    entries.insert(name.clone(), self.file_json(&versions[0]));
                }
            }
        }
        let mut page = entries
            .into_iter()
            .filter(|(name, _)| name.as_str() >= start);
        let files: Vec<Value> = page.by_ref().take(max).map(|(_, v)| v).collect();
        let next = page.next().map(|(name, _)| name);
        Response::json(200, &json!({"files": files, "nextFileName": next}))
    }

    fn list_file_versions(&self, body: &Value) -> Response {
        let prefix = body["prefix"].as_str().unwrap_or_default();
        let start = body["startFileName"].as_str().unwrap_or_default();
        let start_id = body["startFileId"].as_str().filter(|s| !s.is_empty());
        let max = body["maxFileCount"]
            .as_u64()
            .unwrap_or(100)
            .clamp(1, 10_000) as usize;
        let state = self.state.lock().unwrap();
        let mut all = state
            .files
            .range(start.to_owned()..)
            .filter(|(name, _)| name.starts_with(prefix))
            .flat_map(|(_, versions)| versions.iter())
            .skip_while(|v| start_id.is_some_and(|id| v.name == start && v.id != id));
        let files: Vec<Value> = all.by_ref().take(max).map(|v| self.file_json(v)).collect();
        let next = all.next();
        let (next_name, next_id) = (next.map(|v| &v.name), next.map(|v| &v.id));
        Response::json(
            200,
            &json!({"files": files, "nextFileName": next_name, "nextFileId": next_id}),
        )
    }

    fn find_version(&self, state: &State, id: &str) -> Option<Version> {
        state.files.values().flatten().find(|v| v.id == id).cloned()
    }

    fn get_file_info(&self, body: &Value) -> Response {
        let id = body["fileId"].as_str().unwrap_or_default();
        let state = self.state.lock().unwrap();
        match self.find_version(&state, id) {
            Some(version) => Response::json(200, &self.file_json(&version)),
            None => Response::error(400, "bad_request", &format!("Bad fileId: {id}")),
        }
    }

    fn hide_file(&self, body: &Value) -> Response {
        let name = body["fileName"].as_str().unwrap_or_default().to_owned();
        let mut state = self.state.lock().unwrap();
        match state.files.get(&name).and_then(|v| v.first()) {
            None => return Response::error(404, "no_such_file", &format!("no file {name}")),
            Some(latest) if latest.action == "hide" => {
                return Response::error(400, "already_hidden", &format!("{name} is hidden"))
            }
            Some(_) => {}
        }
        let marker = state.new_version(&name, "hide", Vec::new(), String::new(), BTreeMap::new());
        let answer = self.file_json(&marker);
        state.files.get_mut(&name).unwrap().insert(0, marker);
        Response::json(200, &answer)
    }

    fn delete_file_version(&self, body: &Value) -> Response {
        let name = body["fileName"].as_str().unwrap_or_default();
        let id = body["fileId"].as_str().unwrap_or_default();
        let mut state = self.state.lock().unwrap();
        let Some(versions) = state.files.get_mut(name) else {
            return Response::error(400, "file_not_present", &format!("no file {name}"));
        };
        let before = versions.len();
        versions.retain(|v| v.id != id);
        if versions.len() == before {
            return Response::error(400, "file_not_present", &format!("no version {id}"));
        }
        if versions.is_empty() {
            state.files.remove(name);
        }
        Response::json(200, &json!({"fileId": id, "fileName": name}))
    }
}

impl State {
    fn new_version(
        &mut self,
        name: &str,
        action: &'static str,
        data: Vec<u8>,
        sha1: String,
        info: BTreeMap<String, String>,
    ) -> Version {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        // Strictly increasing, so versions of one name have an order.
        self.last_ms = now.max(self.last_ms + 1);
        self.serial += 1;
        Version {
            id: format!("4_z{:024}", self.serial),
            name: name.to_owned(),
            action,
            data,
            sha1,
            content_type: String::new(),
            info,
            uploaded_ms: self.last_ms,
        }
    }
}
