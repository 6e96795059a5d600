//! Kopia's point-in-time view of a GCS bucket (repo/blob/gcs/gcs_pit.go, gcs_versioned.go):
//! the blobs under the prefix as they were at `pointInTime`, from the bucket's object
//! generations, each read at exactly its generation. Read-only: the view is a
//! [`BlobReader`] and nothing else.
//!
//! OpenDAL 0.57's gcs service lists no generations, so the view speaks the JSON API itself
//! (`objects.list` with `versions=true`, `objects.get` with `alt=media&generation=`), signed by
//! the same reqsign credential chain OpenDAL builds (none for an emulator).
//!
//! GCS keeps no delete markers: overwriting or deleting a live object archives its
//! generation with a `timeDeleted`. Kopia's rule, applied through [`view_at`](crate::storage::point_in_time::view_at):
//! of the generations created at or before T (by `Kopia-Mtime`, else `timeCreated`, as Kopia's
//! getBlobMeta), the newest is the blob, unless it was deleted before T.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

use super::block_on;
use crate::error::{Error, Result};
use crate::storage::point_in_time::{read_version_range, ChosenVersions, ObjectVersion};
use crate::storage::{BlobMetadata, BlobReader};

const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Transient failures (429, 5xx, transport) are retried this often, 200 ms doubling between.
const ATTEMPTS: u32 = 4;

/// Signs JSON API requests with Google's OAuth2 token (reqsign's Google signer).
pub type GoogleSigner = reqsign_core::Signer<reqsign_google::Credential>;

/// The view of `gs://bucket/prefix` at `at`, through the JSON API at `api`.
pub struct GcsPointInTime {
    http: reqwest::Client,
    api: String,
    bucket: String,
    prefix: String,
    at: DateTime<Utc>,
    name: String,
    signer: Option<GoogleSigner>,
    chosen: ChosenVersions,
}

impl std::fmt::Debug for GcsPointInTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcsPointInTime")
            .field("name", &self.name)
            .field("at", &self.at)
            .finish_non_exhaustive()
    }
}

/// One generation as `objects.list` describes it (the fields the view needs).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Generation {
    name: String,
    #[serde(default)]
    generation: String,
    #[serde(default)]
    size: String,
    time_created: DateTime<Utc>,
    #[serde(default)]
    time_deleted: Option<DateTime<Utc>>,
    #[serde(default)]
    metadata: HashMap<String, String>,
}

/// Kopia's user metadata key for a blob's modification time, set by `repository sync-to`
/// (gcs_storage.go timeMapKey); nanoseconds since the epoch (internal/timestampmeta).
const MTIME_KEY: &str = "Kopia-Mtime";

impl Generation {
    /// The blob's time as Kopia's getBlobMeta takes it: `Kopia-Mtime` if it parses, else
    /// the generation's creation.
    fn timestamp(&self) -> DateTime<Utc> {
        self.metadata
            .get(MTIME_KEY)
            .and_then(|nanos| nanos.parse::<i64>().ok())
            .map(DateTime::<Utc>::from_timestamp_nanos)
            .unwrap_or(self.time_created)
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listing {
    #[serde(default)]
    items: Vec<Generation>,
    #[serde(default)]
    next_page_token: Option<String>,
}

/// A request's failure: its status (none for a transport failure) and what was said.
struct Failure {
    status: Option<u16>,
    reason: String,
}

impl Failure {
    fn transient(&self) -> bool {
        self.status.is_none_or(|s| s == 429 || s >= 500)
    }
}

/// The JSON API's percent-encoding of an object name or query value: all but unreserved.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The blob versions of one listing page, as the view rules see them at `at`: IDs without
/// the storage prefix, other "directories" and other prefixes left out.
fn versions_of(items: Vec<Generation>, prefix: &str, at: DateTime<Utc>) -> Vec<ObjectVersion> {
    items
        .into_iter()
        .filter_map(|item| {
            let id = item.name.strip_prefix(prefix)?;
            if id.is_empty() || id.contains('/') {
                return None;
            }
            Some(ObjectVersion {
                id: id.to_string(),
                timestamp: item.timestamp(),
                version: item.generation,
                length: item.size.parse().unwrap_or(0),
                // Kopia (gcs_versioned.go getVersionMetadata): a generation deleted before T
                // hides the blob; one deleted later was still there at T.
                deleted: item.time_deleted.is_some_and(|d| d < at),
                latest: item.time_deleted.is_none(),
            })
        })
        .collect()
}

impl GcsPointInTime {
    pub fn new(
        api: &str,
        bucket: &str,
        prefix: &str,
        at: DateTime<Utc>,
        name: String,
        signer: Option<GoogleSigner>,
    ) -> std::result::Result<Self, String> {
        super::install_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(GcsPointInTime {
            http,
            api: api.trim_end_matches('/').to_string(),
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            at,
            name,
            signer,
            chosen: ChosenVersions::default(),
        })
    }

    /// The moment as messages show it.
    pub fn moment(&self) -> String {
        self.at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// One GET of `url` (with `range`), signed, retried while the failure is transient; the
    /// body.
    fn get(&self, url: String, range: Option<(u64, u64)>) -> std::result::Result<Vec<u8>, Failure> {
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

    fn error(&self, operation: &str, blob_id: Option<&str>, failure: Failure) -> Error {
        match (failure.status, blob_id) {
            (Some(404), Some(id)) => Error::BlobNotFound {
                blob_id: id.to_string(),
                storage: self.describe(),
            },
            (Some(401 | 403), _) => Error::StorageAccessDenied {
                storage: self.describe(),
                reason: failure.reason,
            },
            _ => Error::StorageRequest {
                storage: self.describe(),
                operation: match blob_id {
                    Some(id) => format!("{operation} {id}"),
                    None => operation.to_string(),
                },
                reason: failure.reason,
            },
        }
    }

    /// Refuses a bucket without versioning, where a view of the past would silently be the
    /// present (Kopia: maybePointInTimeStore asks the bucket's attributes).
    pub fn require_versioned_bucket(&self) -> Result<()> {
        let url = format!(
            "{}/storage/v1/b/{}?fields=versioning",
            self.api,
            encode(&self.bucket)
        );
        let body = self
            .get(url, None)
            .map_err(|f| self.error("get bucket", None, f))?;
        let attrs: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        if attrs["versioning"]["enabled"].as_bool() == Some(true) {
            return Ok(());
        }
        Err(Error::InvalidStorageConfig {
            kind: "gcs".to_string(),
            reason: format!(
                "pointInTime {} needs a versioned bucket, and bucket {} of {} has no object \
                 versioning (enable it, or connect without --point-in-time)",
                self.moment(),
                self.bucket,
                self.name
            ),
        })
    }

    /// Every generation of the objects whose blob IDs start with `prefix`: `objects.list`
    /// with `versions=true`, page by page (Kopia's listBlobVersions).
    fn versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>> {
        let operation = format!("list versions {prefix:?}");
        let object_prefix = format!("{}{prefix}", self.prefix);
        let mut versions = Vec::new();
        let mut page: Option<String> = None;
        loop {
            let mut url = format!(
                "{}/storage/v1/b/{}/o?versions=true&prefix={}",
                self.api,
                encode(&self.bucket),
                encode(&object_prefix)
            );
            if let Some(token) = &page {
                url.push_str(&format!("&pageToken={}", encode(token)));
            }
            let body = self
                .get(url, None)
                .map_err(|f| self.error(&operation, None, f))?;
            let listing: Listing = serde_json::from_slice(&body).map_err(|e| {
                self.error(
                    &operation,
                    None,
                    Failure {
                        status: None,
                        reason: format!("not a listing: {e}"),
                    },
                )
            })?;
            versions.extend(versions_of(listing.items, &self.prefix, self.at));
            match listing.next_page_token.filter(|t| !t.is_empty()) {
                Some(token) => page = Some(token),
                None => return Ok(versions),
            }
        }
    }

    /// The generation of `id` the view shows, or [`Error::BlobNotFound`].
    fn chosen(&self, id: &str) -> Result<ObjectVersion> {
        if id.is_empty() || id.contains('/') {
            return Err(Error::StorageRequest {
                storage: self.describe(),
                operation: "address".to_string(),
                reason: format!("invalid blob ID {id:?}"),
            });
        }
        let chosen = self.chosen.of(id, self.at, || self.versions(id))?;
        chosen.ok_or_else(|| Error::BlobNotFound {
            blob_id: id.to_string(),
            storage: self.describe(),
        })
    }

    fn read(
        &self,
        id: &str,
        version: &ObjectVersion,
        range: Option<(u64, u64)>,
    ) -> Result<Vec<u8>> {
        let url = format!(
            "{}/storage/v1/b/{}/o/{}?alt=media&generation={}",
            self.api,
            encode(&self.bucket),
            encode(&format!("{}{id}", self.prefix)),
            encode(&version.version)
        );
        self.get(url, range)
            .map_err(|f| self.error("get", Some(id), f))
    }
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

/// The signer of a view on Google's servers: the service-account key `key` (its JSON, as
/// the config holds it) or, without one, Application Default Credentials; the chain and the
/// scope are the ones OpenDAL's gcs service builds for the same config (opendal-service-gcs
/// backend.rs), so the view is allowed exactly what the live storage is.
pub fn google_signer(
    key: Option<&crate::client::Password>,
    scope: &str,
) -> std::result::Result<GoogleSigner, String> {
    use reqsign_core::Env as _;
    use reqsign_google::{DefaultCredentialProvider, RequestSigner, StaticCredentialProvider};
    super::install_tls_provider();
    let http = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
    let os = reqsign_core::OsEnv;
    let mut envs = os.vars();
    envs.insert("GOOGLE_SCOPE".to_string(), scope.to_string());
    let context = reqsign_core::Context::new()
        .with_file_read(reqsign_file_read_tokio::TokioFileRead)
        .with_http_send(ReqwestSend(http))
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

/// reqsign's token requests (OAuth2 exchanges, the metadata server) through reqwest.
#[derive(Debug)]
struct ReqwestSend(reqwest::Client);

impl reqsign_core::HttpSend for ReqwestSend {
    async fn http_send(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> reqsign_core::Result<http::Response<bytes::Bytes>> {
        let unexpected = |e: reqwest::Error| reqsign_core::Error::unexpected(e.to_string());
        let request = reqwest::Request::try_from(request).map_err(unexpected)?;
        let answer = self.0.execute(request).await.map_err(unexpected)?;
        let mut response = http::Response::builder().status(answer.status());
        for (name, value) in answer.headers() {
            response = response.header(name, value);
        }
        let body = answer.bytes().await.map_err(unexpected)?;
        response
            .body(body)
            .map_err(|e| reqsign_core::Error::unexpected(e.to_string()))
    }
}

impl BlobReader for GcsPointInTime {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        let version = self.chosen(id)?;
        self.read(id, &version, None)
    }

    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let version = self.chosen(id)?;
        read_version_range(id, &version, offset, length, |range| {
            self.read(id, &version, Some(range))
        })
    }

    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        Ok(self.chosen.list(self.versions(prefix)?, self.at))
    }

    fn describe(&self) -> String {
        format!("{} as of {}", self.name, self.moment())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn generations_follow_kopias_rule() {
        let listing: Listing = serde_json::from_value(serde_json::json!({"items": [
            // Overwritten after T: the old generation was the blob at T.
            {"name": "p/a", "generation": "1", "size": "3",
             "timeCreated": "2026-01-01T10:00:00Z", "timeDeleted": "2026-01-01T13:00:00Z"},
            {"name": "p/a", "generation": "2", "size": "6", "timeCreated": "2026-01-01T13:00:00Z"},
            // Deleted before T: gone.
            {"name": "p/b", "generation": "3", "size": "1",
             "timeCreated": "2026-01-01T09:00:00Z", "timeDeleted": "2026-01-01T11:00:00Z"},
            // Written after T: not yet there.
            {"name": "p/c", "generation": "4", "size": "1", "timeCreated": "2026-01-01T12:30:00Z"},
            // Copied later by `repository sync-to`, with its original time (11:00) kept.
            {"name": "p/s", "generation": "7", "size": "2", "timeCreated": "2026-01-01T14:00:00Z",
             "metadata": {"Kopia-Mtime": "1767265200000000000"}},
            // A "subdirectory" and another prefix are no blobs of this storage.
            {"name": "p/d/e", "generation": "5", "size": "1", "timeCreated": "2026-01-01T09:00:00Z"},
            {"name": "q/a", "generation": "6", "size": "1", "timeCreated": "2026-01-01T09:00:00Z"}
        ], "nextPageToken": "next"}))
        .unwrap();
        assert_eq!(listing.next_page_token.as_deref(), Some("next"));
        let moment = at("2026-01-01T12:00:00Z");
        let view = crate::storage::point_in_time::view_at(
            versions_of(listing.items, "p/", moment),
            moment,
        );
        let chosen: Vec<(&str, &str, u64)> = view
            .iter()
            .map(|v| (v.id.as_str(), v.version.as_str(), v.length))
            .collect();
        assert_eq!(chosen, vec![("a", "1", 3), ("s", "7", 2)]);
        assert_eq!(view[1].timestamp, at("2026-01-01T11:00:00Z"));
    }

    /// A loopback server answering one request with `answer`; the request's head comes back
    /// through the handle.
    fn one_answer(answer: &'static str) -> (String, std::thread::JoinHandle<String>) {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let api = format!("http://{}", listener.local_addr().unwrap());
        let served = std::thread::spawn(move || {
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
            head
        });
        (api, served)
    }

    #[test]
    fn requests_carry_the_signers_token() {
        let (api, served) = one_answer(r#"{"versioning":{"enabled":true}}"#);
        let signer = reqsign_core::Signer::new(
            reqsign_core::Context::new(),
            reqsign_google::TokenCredentialProvider::new("ya29.test-token"),
            reqsign_google::RequestSigner::new("storage"),
        );
        let view = GcsPointInTime::new(
            &api,
            "my bucket",
            "p/",
            at("2026-01-01T12:00:00Z"),
            "gcs://my bucket/p/".to_string(),
            Some(signer),
        )
        .unwrap();
        view.require_versioned_bucket().unwrap();
        let head = served.join().unwrap().to_ascii_lowercase();
        assert!(
            head.starts_with("get /storage/v1/b/my%20bucket?fields=versioning http/1.1\r\n"),
            "{head}"
        );
        assert!(
            head.contains("authorization: bearer ya29.test-token\r\n"),
            "{head}"
        );
    }

    #[test]
    fn an_unversioned_bucket_is_refused_naming_it() {
        let (api, served) = one_answer(r#"{}"#);
        let view = GcsPointInTime::new(
            &api,
            "b",
            "p/",
            at("2026-01-01T12:00:00Z"),
            "gcs://b/p/".to_string(),
            None,
        )
        .unwrap();
        let message = view.require_versioned_bucket().unwrap_err().to_string();
        assert!(
            message.contains("pointInTime 2026-01-01T12:00:00Z needs a versioned bucket")
                && message.contains("bucket b of gcs://b/p/"),
            "{message}"
        );
        assert!(!served.join().unwrap().contains("authorization"));
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
}
