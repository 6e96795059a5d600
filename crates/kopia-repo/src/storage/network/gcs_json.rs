//! Google Cloud Storage's JSON API, spoken directly where OpenDAL 0.57's gcs service falls
//! short: its lister carries neither user metadata (Kopia's `Kopia-Mtime`) nor generations
//! (opendal-service-gcs lister.rs). Requests are signed by the same reqsign credential chain
//! OpenDAL builds (none for an emulator) and retried while a failure is transient.
//!
//! One listed object becomes a blob by Kopia's rule (repo/blob/gcs/gcs_storage.go
//! getBlobMeta): its time is `Kopia-Mtime` when that parses, else the object's creation; the
//! live listing ([`super::gcs`]) and the point-in-time view ([`super::gcs_pit`]) share it.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::block_on;
use super::reqsign_http::ReqwestSend;
use crate::error::Error;
use crate::storage::BlobMetadata;

const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Transient failures (429, 5xx, transport) are retried this often, 200 ms doubling between.
const ATTEMPTS: u32 = 4;

/// Kopia's user metadata key for a blob's modification time, set by `repository sync-to
/// --times` (gcs_storage.go timeMapKey); nanoseconds since the epoch (internal/timestampmeta).
const MTIME_KEY: &str = "Kopia-Mtime";

/// Signs JSON API requests with Google's OAuth2 token (reqsign's Google signer).
pub type GoogleSigner = reqsign_core::Signer<reqsign_google::Credential>;

/// One object (or, with `versions=true`, one generation) as `objects.list` describes it: the
/// fields Kopia's getBlobMeta and the point-in-time rules read.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListedObject {
    pub name: String,
    #[serde(default)]
    pub generation: String,
    #[serde(default)]
    pub size: String,
    pub time_created: DateTime<Utc>,
    #[serde(default)]
    pub time_deleted: Option<DateTime<Utc>>,
    #[serde(default)]
    pub metadata: HashMap<String, String>,
}

impl ListedObject {
    /// The blob this object is in the storage under `prefix`, as Kopia's getBlobMeta makes
    /// it; `None` for an object that is no blob of it (another prefix, a "subdirectory").
    pub fn blob(&self, prefix: &str) -> Option<BlobMetadata> {
        let id = self.name.strip_prefix(prefix)?;
        if id.is_empty() || id.contains('/') {
            return None;
        }
        let timestamp = self
            .metadata
            .get(MTIME_KEY)
            .and_then(|nanos| nanos.parse::<i64>().ok())
            .map(DateTime::<Utc>::from_timestamp_nanos)
            .unwrap_or(self.time_created);
        Some(BlobMetadata {
            id: id.to_string(),
            length: self.size.parse().unwrap_or(0),
            timestamp,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    #[serde(default)]
    items: Vec<ListedObject>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// A request's failure: its status (none for a transport failure) and what was said.
#[derive(Debug)]
pub(super) struct Failure {
    pub status: Option<u16>,
    pub reason: String,
}

impl Failure {
    fn transient(&self) -> bool {
        self.status.is_none_or(|s| s == 429 || s >= 500)
    }

    /// The crate's error for this failure of `operation` (on `blob_id`) on `storage`.
    pub fn into_error(self, storage: String, operation: &str, blob_id: Option<&str>) -> Error {
        match (self.status, blob_id) {
            (Some(404), Some(id)) => Error::BlobNotFound {
                blob_id: id.to_string(),
                storage,
            },
            (Some(401 | 403), _) => Error::StorageAccessDenied {
                storage,
                reason: self.reason,
            },
            _ => Error::StorageRequest {
                storage,
                operation: match blob_id {
                    Some(id) => format!("{operation} {id}"),
                    None => operation.to_string(),
                },
                reason: self.reason,
            },
        }
    }
}

/// The JSON API's percent-encoding of an object name or query value: all but unreserved.
pub(super) fn encode(text: &str) -> String {
    super::percent_encode(text, b"")
}

/// One bucket through the JSON API at `api` (Google's, or an emulator's).
pub(super) struct JsonApi {
    http: reqwest::Client,
    api: String,
    bucket: String,
    signer: Option<GoogleSigner>,
}

impl std::fmt::Debug for JsonApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonApi")
            .field("api", &self.api)
            .field("bucket", &self.bucket)
            .finish_non_exhaustive()
    }
}

impl JsonApi {
    pub fn new(
        api: &str,
        bucket: &str,
        signer: Option<GoogleSigner>,
    ) -> std::result::Result<Self, String> {
        Ok(JsonApi {
            http: http_client()?,
            api: api.trim_end_matches('/').to_string(),
            bucket: bucket.to_string(),
            signer,
        })
    }

    /// The bucket's resource (`buckets.get`), with `query`.
    pub fn bucket_url(&self, query: &str) -> String {
        format!("{}/storage/v1/b/{}?{query}", self.api, encode(&self.bucket))
    }

    /// The content of the object `name` at `generation` (`objects.get` with `alt=media`).
    pub fn media_url(&self, name: &str, generation: &str) -> String {
        format!(
            "{}/storage/v1/b/{}/o/{}?alt=media&generation={}",
            self.api,
            encode(&self.bucket),
            encode(name),
            encode(generation)
        )
    }

    /// Every object whose name starts with `prefix` (with `versions`, every generation):
    /// `objects.list` page by page, without a delimiter as Kopia's ListBlobs and
    /// listBlobVersions query.
    pub fn list(
        &self,
        prefix: &str,
        versions: bool,
    ) -> std::result::Result<Vec<ListedObject>, Failure> {
        let mut objects = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/storage/v1/b/{}/o?prefix={}",
                self.api,
                encode(&self.bucket),
                encode(prefix)
            );
            if versions {
                url.push_str("&versions=true");
            }
            if let Some(token) = &page {
                url.push_str(&format!("&pageToken={}", encode(token)));
            }
            let body = self.get(url, None)?;
            let listing: Listing = serde_json::from_slice(&body).map_err(|e| Failure {
                status: None,
                reason: format!("not a listing: {e}"),
            })?;
            objects.extend(listing.items);
            match listing.next_page_token.filter(|t| !t.is_empty()) {
                Some(token) => page = Some(token),
                None => return Ok(objects),
            }
        }
    }

    /// One GET of `url` (with `range`), signed, retried while the failure is transient; the
    /// body.
    pub fn get(
        &self,
        url: String,
        range: Option<(u64, u64)>,
    ) -> std::result::Result<Vec<u8>, Failure> {
        let http = self.http.clone();
        let signer = self.signer.clone();
        block_on(async move {
            let mut attempt = 0;
            loop {
                let result = send(&http, signer.as_ref(), &url, range).await;
                match result {
                    Err(failure) if failure.transient() && attempt + 1 < ATTEMPTS => {
                        tracing::warn!(
                            attempt,
                            "GCS request failed ({}), retrying",
                            failure.reason
                        );
                        tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                        attempt += 1;
                    }
                    other => return other,
                }
            }
        })
    }
}

fn http_client() -> std::result::Result<reqwest::Client, String> {
    super::install_tls_provider();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// One signed GET; the body of a 2xx answer.
async fn send(
    http: &reqwest::Client,
    signer: Option<&GoogleSigner>,
    url: &str,
    range: Option<(u64, u64)>,
) -> std::result::Result<Vec<u8>, Failure> {
    let transport = |e: reqwest::Error| Failure {
        status: None,
        reason: e.to_string(),
    };
    let mut request = http::Request::get(url);
    if let Some((start, end)) = range {
        request = request.header("range", format!("bytes={start}-{}", end - 1));
    }
    let (mut parts, ()) = request
        .body(())
        .map_err(|e| Failure {
            status: None,
            reason: e.to_string(),
        })?
        .into_parts();
    if let Some(signer) = signer {
        signer.sign(&mut parts, None).await.map_err(|e| Failure {
            // A credential that cannot be had is a refusal, not worth a retry.
            status: Some(401),
            reason: format!("no Google credential: {e}"),
        })?;
        // Google's servers reset HTTP/2 streams that carry a Host header (as OpenDAL notes).
        parts.headers.remove(http::header::HOST);
    }
    let request = reqwest::Request::try_from(http::Request::from_parts(parts, Vec::<u8>::new()))
        .map_err(transport)?;
    let answer = http.execute(request).await.map_err(transport)?;
    let status = answer.status().as_u16();
    let body = answer.bytes().await.map_err(transport)?;
    if (200..300).contains(&status) {
        return Ok(body.to_vec());
    }
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let message = json["error"]["message"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
    Err(Failure {
        status: Some(status),
        reason: format!("HTTP {status}: {message}"),
    })
}

/// The signer of requests to Google's servers: the service-account key `key` (its JSON, as
/// the config holds it) or, without one, Application Default Credentials; the chain and the
/// scope are the ones OpenDAL's gcs service builds for the same config (opendal-service-gcs
/// backend.rs), so these requests are allowed exactly what OpenDAL's are.
pub fn google_signer(
    key: Option<&crate::client::Password>,
    scope: &str,
) -> std::result::Result<GoogleSigner, String> {
    use reqsign_core::Env as _;
    use reqsign_google::{DefaultCredentialProvider, RequestSigner, StaticCredentialProvider};
    let os = reqsign_core::OsEnv;
    let mut envs = os.vars();
    envs.insert("GOOGLE_SCOPE".to_string(), scope.to_string());
    let context = reqsign_core::Context::new()
        .with_file_read(reqsign_file_read_tokio::TokioFileRead)
        .with_http_send(ReqwestSend(http_client()?))
        .with_env(reqsign_core::StaticEnv {
            home_dir: os.home_dir(),
            envs,
        });
    let signer = RequestSigner::new("storage").with_scope(scope);
    Ok(match key {
        Some(key) => {
            let provider = StaticCredentialProvider::new(key.expose()).with_scope(scope);
            reqsign_core::Signer::new(context, provider, signer)
        }
        None => reqsign_core::Signer::new(context, DefaultCredentialProvider::new(), signer),
    })
}

/// A loopback server answering one request per answer of `answers`, in order, each with
/// status 200 and a JSON body; the requests' heads come back through the handle.
#[cfg(test)]
pub(super) fn serve(answers: Vec<&'static str>) -> (String, std::thread::JoinHandle<Vec<String>>) {
    use std::io::{BufRead, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    let served = std::thread::spawn(move || {
        let mut heads = Vec::new();
        for answer in answers {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = std::io::BufReader::new(stream);
            let mut head = String::new();
            while reader.read_line(&mut head).unwrap() > 2 && !head.ends_with("\r\n\r\n") {}
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{answer}",
                answer.len()
            );
            reader.get_mut().write_all(response.as_bytes()).unwrap();
            heads.push(head);
        }
        heads
    });
    (api, served)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn object(json: serde_json::Value) -> ListedObject {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn objects_become_blobs_by_kopias_rule() {
        // Written by Kopia itself: the creation time.
        let plain = object(serde_json::json!({"name": "p/xn0_1", "size": "42",
            "timeCreated": "2026-01-01T10:00:00.123456Z", "updated": "2026-01-01T12:00:00Z"}));
        assert_eq!(
            plain.blob("p/"),
            Some(BlobMetadata {
                id: "xn0_1".to_string(),
                length: 42,
                timestamp: at("2026-01-01T10:00:00.123456Z"),
            })
        );
        // Copied by `repository sync-to --times`: the original time, to the nanosecond.
        let synced = object(serde_json::json!({"name": "p/q1", "size": "7",
            "timeCreated": "2026-01-02T00:00:00Z",
            "metadata": {"Kopia-Mtime": "1767265200123456789", "other": "x"}}));
        let blob = synced.blob("p/").unwrap();
        assert_eq!(blob.timestamp, at("2026-01-01T11:00:00.123456789Z"));
        assert_eq!((blob.id.as_str(), blob.length), ("q1", 7));
        // A value that does not parse is ignored, as timestampmeta.FromValue ignores it.
        let garbled = object(serde_json::json!({"name": "p/q2", "size": "1",
            "timeCreated": "2026-01-02T00:00:00Z", "metadata": {"Kopia-Mtime": "soon"}}));
        assert_eq!(
            garbled.blob("p/").unwrap().timestamp,
            at("2026-01-02T00:00:00Z")
        );
        // Other prefixes, "subdirectories" and the prefix itself are no blobs.
        for name in ["q/xn0_1", "p/d/e", "p/"] {
            let other = object(serde_json::json!({"name": name, "size": "1",
                "timeCreated": "2026-01-02T00:00:00Z"}));
            assert_eq!(other.blob("p/"), None, "{name}");
        }
    }

    #[test]
    fn listings_follow_the_page_tokens() {
        let (api, served) = serve(vec![
            r#"{"items":[{"name":"p/a","size":"1","timeCreated":"2026-01-01T10:00:00Z"}],
                "nextPageToken":"page 2"}"#,
            r#"{"items":[{"name":"p/b","size":"2","timeCreated":"2026-01-01T10:00:00Z"}]}"#,
        ]);
        let json = JsonApi::new(&api, "my bucket", None).unwrap();
        let listed = json.list("p/", false).unwrap();
        let names: Vec<&str> = listed.iter().map(|o| o.name.as_str()).collect();
        assert_eq!(names, ["p/a", "p/b"]);
        let heads = served.join().unwrap();
        assert!(
            heads[0].starts_with("GET /storage/v1/b/my%20bucket/o?prefix=p%2F HTTP/1.1\r\n"),
            "{}",
            heads[0]
        );
        assert!(
            heads[1].starts_with("GET /storage/v1/b/my%20bucket/o?prefix=p%2F&pageToken=page%202 "),
            "{}",
            heads[1]
        );
        assert!(!heads[0].to_ascii_lowercase().contains("authorization"));
    }

    #[test]
    fn names_are_encoded_for_the_json_api() {
        assert_eq!(encode("team-a/host1-xe0"), "team-a%2Fhost1-xe0");
        assert_eq!(encode("a b+c~"), "a%20b%2Bc~");
    }

    #[test]
    fn failures_worth_retrying() {
        let failure = |status| Failure {
            status,
            reason: String::new(),
        };
        assert!(failure(None).transient() && failure(Some(503)).transient());
        assert!(failure(Some(429)).transient());
        assert!(!failure(Some(404)).transient() && !failure(Some(403)).transient());
    }

    #[test]
    fn failures_name_the_store() {
        let failure = |status| Failure {
            status: Some(status),
            reason: format!("HTTP {status}: no"),
        };
        let store = || "gcs://b/p/".to_string();
        assert!(matches!(
            failure(404).into_error(store(), "get", Some("xn0_1")),
            Error::BlobNotFound { ref blob_id, ref storage } if blob_id == "xn0_1" && storage == "gcs://b/p/"
        ));
        assert!(matches!(
            failure(403).into_error(store(), "list \"\"", None),
            Error::StorageAccessDenied { .. }
        ));
        let other = failure(400)
            .into_error(store(), "get", Some("q1"))
            .to_string();
        assert_eq!(other, "get q1 on gcs://b/p/ failed: HTTP 400: no");
    }
}
