//! A small client of Backblaze B2's native API (version 2): the calls Kopia's b2 storage makes
//! through its client library (authorize, find the bucket, upload, list names, download by
//! name, hide), with the retry rules of B2's integration checklist: transient failures (5xx,
//! 408, 429, resets, timeouts) are retried with backoff, an expired token is renewed once, and
//! a refused key is never retried.
//! B2's documentation: https://www.backblaze.com/apidocs/ (b2_authorize_account and the rest).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::client::Password;
use crate::storage::network::error_chain;

/// Where every B2 session starts; the answer names the cluster's API and download hosts.
pub const AUTHORIZE_URL: &str = "https://api.backblazeb2.com/b2api/v2/b2_authorize_account";
/// One `b2_list_file_names` page: Kopia's size (B2 bills each 1,000 names as one call).
pub const LIST_PAGE: usize = 1000;
/// Transient failures are retried this many times, with exponential backoff and jitter
/// between these delays (the same budget as the OpenDAL backends in `network::operator`).
const RETRIES: u32 = 5;
const RETRY_MIN_DELAY: Duration = Duration::from_millis(200);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// Why a call failed, sorted by what the caller does about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 401 (other than an expired token) or 403: the key is wrong or lacks a capability.
    Denied(String),
    /// 404, or B2's `no_such_file`/`already_hidden`: there is no (visible) file.
    NotFound,
    /// 416: the range starts past the end of the file.
    RangeNotSatisfiable,
    /// Worth another attempt: 5xx, 408, 429, connection resets, timeouts.
    Transient(String),
    /// The session token expired (B2 tokens last 24 hours): authorize again, then retry.
    Expired,
    /// Anything else (a bad request, an answer that does not parse).
    Other(String),
}

impl Failure {
    /// Sorts a non-success answer by its HTTP status and B2's error code.
    pub fn from_status(status: u16, body: &str) -> Failure {
        let error: B2Error = serde_json::from_str(body).unwrap_or_default();
        let reason = if error.code.is_empty() {
            format!("HTTP {status}")
        } else {
            format!("HTTP {status} {}: {}", error.code, error.message)
        };
        match (status, error.code.as_str()) {
            (401, "expired_auth_token") => Failure::Expired,
            (401 | 403, _) => Failure::Denied(reason),
            (404, _) | (400, "no_such_file" | "already_hidden") => Failure::NotFound,
            (416, _) => Failure::RangeNotSatisfiable,
            (408 | 429, _) | (500..=599, _) => Failure::Transient(reason),
            _ => Failure::Other(reason),
        }
    }

    fn from_transport(error: reqwest::Error) -> Failure {
        // The URL in reqwest's message holds no secret (tokens travel in headers).
        let reason = error_chain(&error);
        if error.is_decode() || error.is_builder() {
            Failure::Other(reason)
        } else {
            Failure::Transient(reason)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
struct B2Error {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// A file (version) as B2's listing and upload answers describe it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileVersion {
    pub file_name: String,
    #[serde(default)]
    pub content_length: u64,
    #[serde(default)]
    pub content_sha1: Option<String>,
    /// `upload`, `hide`, `start` (an unfinished large file) or `folder`.
    #[serde(default)]
    pub action: String,
    /// Milliseconds since the epoch.
    #[serde(default)]
    pub upload_timestamp: i64,
    #[serde(default)]
    pub file_info: HashMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FileNames {
    files: Vec<FileVersion>,
    next_file_name: Option<String>,
}

/// What one authorization grants.
#[derive(Debug)]
struct Session {
    token: Password,
    api_url: String,
    download_url: String,
    bucket_id: String,
}

/// Where and with what token to upload: B2 hands these out per uploader and wants a fresh one
/// after any failed upload.
#[derive(Debug)]
struct UploadTarget {
    url: String,
    token: Password,
}

/// The client of one bucket, shared by every thread of a storage.
#[derive(Debug)]
pub struct B2Api {
    http: reqwest::Client,
    authorize_url: String,
    key_id: String,
    key: Password,
    bucket: String,
    /// Authorized lazily, once for all concurrent callers; dropped when the token expires.
    session: tokio::sync::Mutex<Option<Arc<Session>>>,
    uploads: Mutex<Vec<UploadTarget>>,
}

impl B2Api {
    pub fn new(
        http: reqwest::Client,
        authorize_url: &str,
        key_id: &str,
        key: Password,
        bucket: &str,
    ) -> Self {
        B2Api {
            http,
            authorize_url: authorize_url.to_string(),
            key_id: key_id.to_string(),
            key,
            bucket: bucket.to_string(),
            session: tokio::sync::Mutex::new(None),
            uploads: Mutex::new(Vec::new()),
        }
    }

    /// The current session, authorizing (and finding the bucket's ID) first if there is none.
    async fn session(&self) -> Result<Arc<Session>, Failure> {
        let mut slot = self.session.lock().await;
        if let Some(session) = slot.as_ref() {
            return Ok(Arc::clone(session));
        }
        let session = Arc::new(self.authorize().await?);
        *slot = Some(Arc::clone(&session));
        Ok(session)
    }

    /// Forgets `stale` (not a newer session another caller already made).
    async fn expire(&self, stale: &Arc<Session>) {
        let mut slot = self.session.lock().await;
        if slot.as_ref().is_some_and(|s| Arc::ptr_eq(s, stale)) {
            *slot = None;
        }
        self.uploads.lock().map(|mut u| u.clear()).ok();
    }

    async fn authorize(&self) -> Result<Session, Failure> {
        let answer = self
            .http
            .get(&self.authorize_url)
            .basic_auth(&self.key_id, Some(self.key.expose()))
            .send()
            .await
            .map_err(Failure::from_transport)?;
        let body = read_json(answer).await?;
        let text = |field: &str| body[field].as_str().map(str::to_string);
        let (Some(token), Some(api_url), Some(download_url)) = (
            text("authorizationToken"),
            text("apiUrl"),
            text("downloadUrl"),
        ) else {
            return Err(Failure::Other(
                "b2_authorize_account answered without a token, apiUrl or downloadUrl".into(),
            ));
        };
        let mut session = Session {
            token: Password::new(token),
            api_url,
            download_url,
            bucket_id: String::new(),
        };
        // A key restricted to one bucket names it; any other key looks the bucket up.
        let allowed = &body["allowed"];
        match (allowed["bucketName"].as_str(), allowed["bucketId"].as_str()) {
            (Some(name), Some(id)) if name == self.bucket => session.bucket_id = id.to_string(),
            (Some(name), Some(_)) => {
                return Err(Failure::Denied(format!(
                    "the application key {} is restricted to bucket {name}",
                    self.key_id
                )))
            }
            _ => {
                let account = text("accountId").unwrap_or_default();
                let buckets = self
                    .call_once(
                        &session,
                        "b2_list_buckets",
                        &json!({"accountId": account, "bucketName": self.bucket}),
                    )
                    .await?;
                session.bucket_id = buckets["buckets"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|b| b["bucketName"] == self.bucket.as_str())
                    .and_then(|b| b["bucketId"].as_str())
                    .map(str::to_string)
                    .ok_or_else(|| {
                        Failure::Denied(format!(
                            "no bucket {} is visible to the application key {}",
                            self.bucket, self.key_id
                        ))
                    })?;
            }
        }
        Ok(session)
    }

    /// Runs `attempt` with a session until it succeeds, fails for good, or runs out of retries.
    async fn retrying<T, F, Fut>(&self, operation: &str, attempt: F) -> Result<T, Failure>
    where
        F: Fn(Arc<Session>) -> Fut,
        Fut: std::future::Future<Output = Result<T, Failure>>,
    {
        let mut renewed = false;
        let mut tries = 0;
        loop {
            let result = match self.session().await {
                Ok(session) => {
                    let result = attempt(Arc::clone(&session)).await;
                    if matches!(result, Err(Failure::Expired)) {
                        self.expire(&session).await;
                    }
                    result
                }
                Err(failure) => Err(failure),
            };
            match result {
                Err(Failure::Expired) if !renewed => renewed = true,
                Err(Failure::Transient(reason)) if tries < RETRIES => {
                    tries += 1;
                    let delay = backoff(tries);
                    tracing::warn!(
                        operation,
                        attempt = tries,
                        ?delay,
                        "B2 request failed ({reason}), retrying"
                    );
                    tokio::time::sleep(delay).await;
                }
                Err(Failure::Expired) => {
                    return Err(Failure::Denied("the renewed token expired at once".into()))
                }
                other => return other,
            }
        }
    }

    /// One POST of a JSON API call.
    async fn call_once(
        &self,
        session: &Session,
        name: &str,
        body: &Value,
    ) -> Result<Value, Failure> {
        let answer = self
            .http
            .post(format!("{}/b2api/v2/{name}", session.api_url))
            .header("Authorization", session.token.expose())
            .body(body.to_string())
            .send()
            .await
            .map_err(Failure::from_transport)?;
        read_json(answer).await
    }

    /// One page of the visible files whose names start with `prefix`, from `start` on, with
    /// the `/` delimiter (deeper names come back as one `folder` entry).
    pub async fn list_page(
        &self,
        prefix: &str,
        start: Option<&str>,
    ) -> Result<(Vec<FileVersion>, Option<String>), Failure> {
        self.retrying("b2_list_file_names", |session| async move {
            let mut body = json!({
                "bucketId": session.bucket_id,
                "prefix": prefix,
                "delimiter": "/",
                "maxFileCount": LIST_PAGE,
            });
            if let Some(start) = start {
                body["startFileName"] = json!(start);
            }
            let page = self
                .call_once(&session, "b2_list_file_names", &body)
                .await?;
            let page: FileNames = serde_json::from_value(page)
                .map_err(|e| Failure::Other(format!("b2_list_file_names: {e}")))?;
            Ok((page.files, page.next_file_name))
        })
        .await
    }

    /// The file `name` (its latest version), whole or `range` (first and last byte), with the
    /// answer's length; `head` asks for the length only.
    pub async fn download(
        &self,
        name: &str,
        range: Option<(u64, u64)>,
        head: bool,
    ) -> Result<(Vec<u8>, u64), Failure> {
        self.retrying("b2_download_file_by_name", |session| async move {
            let url = format!(
                "{}/file/{}/{}",
                session.download_url,
                encode_name(&self.bucket),
                encode_name(name)
            );
            let request = if head {
                self.http.head(url)
            } else {
                self.http.get(url)
            };
            let mut request = request.header("Authorization", session.token.expose());
            if let Some((first, last)) = range {
                request = request.header("Range", format!("bytes={first}-{last}"));
            }
            let answer = request.send().await.map_err(Failure::from_transport)?;
            let status = answer.status().as_u16();
            if !answer.status().is_success() {
                let body = answer.text().await.unwrap_or_default();
                return Err(Failure::from_status(status, &body));
            }
            // The header, not the body's size (which a HEAD answer reports as 0).
            let length = answer
                .headers()
                .get(reqwest::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse().ok())
                .unwrap_or_default();
            if head {
                return Ok((Vec::new(), length));
            }
            let data = answer.bytes().await.map_err(Failure::from_transport)?;
            Ok((data.to_vec(), length))
        })
        .await
    }

    /// Uploads `data` as `name` (a new version; the old ones stay until hidden or deleted).
    pub async fn upload(
        &self,
        name: &str,
        content_type: &str,
        data: &[u8],
    ) -> Result<FileVersion, Failure> {
        let sha1 = hex::encode(ring::digest::digest(
            &ring::digest::SHA1_FOR_LEGACY_USE_ONLY,
            data,
        ));
        self.retrying("b2_upload_file", |session| {
            // A copy per attempt: retries are rare, and reqwest owns what it sends.
            let (sha1, data) = (sha1.clone(), data.to_vec());
            async move {
                let target = self.upload_target(&session).await?;
                let answer = self
                    .http
                    .post(&target.url)
                    .header("Authorization", target.token.expose())
                    .header("X-Bz-File-Name", encode_name(name))
                    .header("Content-Type", content_type)
                    .header("X-Bz-Content-Sha1", &sha1)
                    .body(data)
                    .send()
                    .await
                    .map_err(Failure::from_transport)?;
                // A failed upload's target is dropped: B2 wants a new upload URL after one.
                let file: FileVersion = serde_json::from_value(read_json(answer).await?)
                    .map_err(|e| Failure::Other(format!("b2_upload_file: {e}")))?;
                if file.content_sha1.as_deref() != Some(sha1.as_str()) {
                    return Err(Failure::Transient(format!(
                        "b2_upload_file stored SHA-1 {:?}, sent {sha1}",
                        file.content_sha1
                    )));
                }
                self.uploads.lock().map(|mut u| u.push(target)).ok();
                Ok(file)
            }
        })
        .await
    }

    async fn upload_target(&self, session: &Session) -> Result<UploadTarget, Failure> {
        if let Some(target) = self.uploads.lock().ok().and_then(|mut u| u.pop()) {
            return Ok(target);
        }
        let answer = self
            .call_once(
                session,
                "b2_get_upload_url",
                &json!({"bucketId": session.bucket_id}),
            )
            .await?;
        match (
            answer["uploadUrl"].as_str(),
            answer["authorizationToken"].as_str(),
        ) {
            (Some(url), Some(token)) => Ok(UploadTarget {
                url: url.to_string(),
                token: Password::new(token),
            }),
            _ => Err(Failure::Other(
                "b2_get_upload_url answered without an uploadUrl".into(),
            )),
        }
    }

    /// Hides `name`, as Kopia deletes: a hide marker becomes the latest version, so the name
    /// is neither listed nor downloadable; the bucket's lifecycle rules remove old versions.
    pub async fn hide(&self, name: &str) -> Result<(), Failure> {
        self.retrying("b2_hide_file", |session| async move {
            let body = json!({"bucketId": session.bucket_id, "fileName": name});
            self.call_once(&session, "b2_hide_file", &body)
                .await
                .map(drop)
        })
        .await
    }

    /// `text` without this client's key (B2's messages should not echo it; this makes sure).
    pub fn redact(&self, text: &str) -> String {
        text.replace(self.key.expose(), "***")
    }
}

/// The JSON answer of a successful call, else its [`Failure`].
async fn read_json(answer: reqwest::Response) -> Result<Value, Failure> {
    let status = answer.status().as_u16();
    let body = answer.text().await.map_err(Failure::from_transport)?;
    if !(200..300).contains(&status) {
        return Err(Failure::from_status(status, &body));
    }
    serde_json::from_str(&body).map_err(|e| Failure::Other(format!("unreadable answer: {e}")))
}

/// Exponential backoff with full jitter for the `attempt`-th retry (1-based).
fn backoff(attempt: u32) -> Duration {
    let ceiling = RETRY_MIN_DELAY
        .saturating_mul(1 << attempt.min(10))
        .min(RETRY_MAX_DELAY);
    let (floor, ceiling) = (
        RETRY_MIN_DELAY.as_millis() as u64,
        ceiling.as_millis() as u64,
    );
    Duration::from_millis(rand::thread_rng().gen_range(floor..=ceiling))
}

/// A file name as B2 wants it in a URL path and in `X-Bz-File-Name`: percent-encoded UTF-8,
/// `/` kept (B2's "String Encoding" rules).
pub fn encode_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_sorted_by_what_the_caller_does() {
        let body = |code: &str| format!(r#"{{"status":0,"code":"{code}","message":"m"}}"#);
        assert_eq!(
            Failure::from_status(401, &body("expired_auth_token")),
            Failure::Expired
        );
        assert!(matches!(
            Failure::from_status(401, &body("bad_auth_token")),
            Failure::Denied(reason) if reason.contains("bad_auth_token")
        ));
        assert!(matches!(Failure::from_status(403, ""), Failure::Denied(_)));
        assert_eq!(
            Failure::from_status(404, &body("not_found")),
            Failure::NotFound
        );
        assert_eq!(
            Failure::from_status(400, &body("already_hidden")),
            Failure::NotFound
        );
        assert_eq!(
            Failure::from_status(416, &body("range_not_satisfiable")),
            Failure::RangeNotSatisfiable
        );
        for status in [408, 429, 500, 503] {
            assert!(matches!(
                Failure::from_status(status, "not json"),
                Failure::Transient(_)
            ));
        }
        assert!(matches!(
            Failure::from_status(400, &body("bad_request")),
            Failure::Other(reason) if reason == "HTTP 400 bad_request: m"
        ));
    }

    #[test]
    fn names_are_percent_encoded_but_slashes_kept() {
        assert_eq!(encode_name("team-a/host1-xe0_1.f"), "team-a/host1-xe0_1.f");
        assert_eq!(encode_name("a b+c%"), "a%20b%2Bc%25");
        assert_eq!(encode_name("é"), "%C3%A9");
    }

    #[test]
    fn backoff_grows_within_its_bounds() {
        for attempt in 1..=RETRIES {
            let delay = backoff(attempt);
            assert!(
                delay >= RETRY_MIN_DELAY && delay <= RETRY_MAX_DELAY,
                "{delay:?}"
            );
        }
        assert!(backoff(1) <= RETRY_MIN_DELAY * 2);
    }
}
