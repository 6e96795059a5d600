//! Azure's List Blobs, spoken directly: OpenDAL 0.57's azblob lister asks for neither metadata
//! nor versions (opendal-service-azblob lister.rs), and Kopia needs both. A blob's time is its
//! `Kopiamtime` metadata when `repository sync-to --times` set it, else Last-Modified
//! (repo/blob/azure/azure_storage.go ListBlobs with `Metadata: true`, getBlobMeta,
//! internal/timestampmeta). Reads and writes stay on OpenDAL; [`AzureStorage`] puts the two
//! together. Requests are authorized as OpenDAL's are: reqsign's Shared Key or SAS signer, or
//! the Entra ID bearer token of [`super::azure_entra`].

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::object::ObjectStorage;
use super::{block_on, error_chain};
use crate::client::Password;
use crate::error::{Error, Result};
use crate::storage::{BlobMetadata, BlobReader, BlobWriter};

/// The Blob service version OpenDAL's azblob core sends (opendal-service-azblob core.rs):
/// Azurite knows it, and it lists versions (2019-12-12 and later).
const API_VERSION: &str = "2022-11-02";
/// Kopia's metadata key for a blob's modification time, nanoseconds since the epoch
/// (azure_storage.go timeMapKey; Azure lists metadata names as they were written, Kopia's
/// SDK looks them up lowercased, so the match is case-insensitive).
const MTIME_KEY: &str = "kopiamtime";
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Transient failures (429, 5xx, transport) are retried this often, 200 ms doubling between.
const ATTEMPTS: u32 = 4;

/// reqsign's signer for a Shared Key or a SAS token, as OpenDAL builds it.
pub type StaticSigner = reqsign_core::Signer<reqsign_azure_storage::Credential>;

/// How the requests of this module are authorized.
#[derive(Clone)]
pub enum Authorization {
    Signed(StaticSigner),
    /// The HTTP client OpenDAL's operator uses ([`super::azure_entra::BearerFetch`]): one
    /// token cache for both.
    Bearer(opendal::raw::HttpClient),
}

impl Authorization {
    /// The signer of `account`'s key (base64, as `storageKey` holds it).
    pub fn shared_key(account: &str, key: &str) -> Self {
        Self::with(reqsign_azure_storage::StaticCredentialProvider::new_shared_key(account, key))
    }

    /// The signer that appends the SAS `token` (without its `?`) to each request's query.
    pub fn sas_token(token: &str) -> Self {
        Self::with(reqsign_azure_storage::StaticCredentialProvider::new_sas_token(token))
    }

    fn with(provider: reqsign_azure_storage::StaticCredentialProvider) -> Self {
        Authorization::Signed(reqsign_core::Signer::new(
            reqsign_core::Context::new(),
            provider,
            reqsign_azure_storage::RequestSigner::new(),
        ))
    }
}

/// What a listing asks Azure to include besides names and properties.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Include {
    /// The current blobs with their metadata (Kopia's ListBlobs).
    Metadata,
    /// Every version, deleted blobs' included (Kopia's listBlobVersions, azure_pit.go).
    Versions,
}

impl Include {
    fn query(self) -> &'static str {
        match self {
            Include::Metadata => "metadata",
            Include::Versions => "metadata,versions,deletedwithversions",
        }
    }
}

/// One entry of a List Blobs answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedBlob {
    /// The object name, storage prefix included.
    pub name: String,
    pub length: u64,
    pub last_modified: DateTime<Utc>,
    /// `Kopiamtime`, when present and a number.
    pub mtime: Option<DateTime<Utc>>,
    /// `VersionId` (listings with versions only).
    pub version: Option<String>,
    /// `IsCurrentVersion`: the blob's current version.
    pub current: bool,
    /// `HasVersionsOnly`: what Kopia takes for a delete marker (azure_pit.go
    /// isAzureDeleteMarker).
    pub versions_only: bool,
}

impl ListedBlob {
    /// The blob's time as Kopia's getBlobMeta takes it.
    pub fn timestamp(&self) -> DateTime<Utc> {
        self.mtime.unwrap_or(self.last_modified)
    }
}

/// One page of a listing and the marker of the next, if any.
#[derive(Debug, PartialEq, Eq)]
pub struct Page {
    pub blobs: Vec<ListedBlob>,
    pub next_marker: Option<String>,
}

#[derive(Deserialize)]
struct EnumerationResults {
    #[serde(rename = "Blobs", default)]
    blobs: Blobs,
    #[serde(rename = "NextMarker", default)]
    next_marker: Option<String>,
}

#[derive(Deserialize, Default)]
struct Blobs {
    #[serde(rename = "Blob", default)]
    blob: Vec<BlobItem>,
}

#[derive(Deserialize)]
struct BlobItem {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "VersionId", default)]
    version_id: Option<String>,
    #[serde(rename = "IsCurrentVersion", default)]
    is_current_version: Option<bool>,
    #[serde(rename = "HasVersionsOnly", default)]
    has_versions_only: Option<bool>,
    #[serde(rename = "Properties")]
    properties: Properties,
    #[serde(rename = "Metadata", default)]
    metadata: HashMap<String, String>,
}

#[derive(Deserialize)]
struct Properties {
    #[serde(rename = "Last-Modified")]
    last_modified: String,
    #[serde(rename = "Content-Length", default)]
    content_length: u64,
}

/// The blobs and next marker of one List Blobs answer (the `EnumerationResults` document).
pub fn parse_page(xml: &str) -> std::result::Result<Page, String> {
    // serde does not check the root's name, and an error document has none of its fields.
    if !xml.contains("<EnumerationResults") {
        let start: String = xml.chars().take(200).collect();
        return Err(format!("not a List Blobs answer: {start}"));
    }
    let results: EnumerationResults =
        quick_xml::de::from_str(xml).map_err(|e| format!("not a List Blobs answer: {e}"))?;
    let blobs = results
        .blobs
        .blob
        .into_iter()
        .map(|item| {
            let last_modified = DateTime::parse_from_rfc2822(&item.properties.last_modified)
                .map_err(|e| {
                    format!(
                        "blob {}: Last-Modified {:?}: {e}",
                        item.name, item.properties.last_modified
                    )
                })?
                .with_timezone(&Utc);
            let mtime = item
                .metadata
                .iter()
                .find(|(key, _)| key.eq_ignore_ascii_case(MTIME_KEY))
                .and_then(|(_, nanos)| nanos.trim().parse::<i64>().ok())
                .map(DateTime::<Utc>::from_timestamp_nanos);
            Ok(ListedBlob {
                name: item.name,
                length: item.properties.content_length,
                last_modified,
                mtime,
                version: item.version_id.filter(|v| !v.is_empty()),
                current: item.is_current_version.unwrap_or(false),
                versions_only: item.has_versions_only.unwrap_or(false),
            })
        })
        .collect::<std::result::Result<Vec<_>, String>>()?;
    Ok(Page {
        blobs,
        next_marker: results.next_marker.filter(|m| !m.is_empty()),
    })
}

/// Percent-encoding of a query value or object name: all but unreserved characters and `/`
/// (as OpenDAL encodes paths, so the Shared Key canonical resource is the one Azure derives).
fn encode(text: &str) -> String {
    super::percent_encode(text, b"/")
}

fn http_client() -> std::result::Result<reqwest::Client, String> {
    super::install_tls_provider();
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {}", error_chain(&e)))
}

/// A request's failure: its status (none for a transport failure) and what was said.
pub struct Failure {
    pub status: Option<u16>,
    pub reason: String,
}

impl Failure {
    fn transient(&self) -> bool {
        self.status.is_none_or(|s| s == 429 || s >= 500)
    }
}

/// Signed GETs on one container: listings, and (for point-in-time views) reads of versions.
pub struct Container {
    http: reqwest::Client,
    /// `<endpoint>/<container>`.
    url: String,
    prefix: String,
    authorization: Authorization,
    name: String,
    redacted: Vec<Password>,
}

impl std::fmt::Debug for Container {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Container")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Container {
    /// `container` at `endpoint` holding the blobs under `prefix`, called `name` in messages,
    /// which never show the `redacted` secrets.
    pub fn new(
        endpoint: &str,
        container: &str,
        prefix: &str,
        authorization: Authorization,
        name: String,
        redacted: Vec<Password>,
    ) -> std::result::Result<Self, String> {
        Ok(Container {
            http: http_client()?,
            url: format!("{}/{}", endpoint.trim_end_matches('/'), encode(container)),
            prefix: prefix.to_string(),
            authorization,
            name,
            redacted,
        })
    }

    pub fn describe(&self) -> &str {
        &self.name
    }

    /// The blob ID of a listed object name, unless it is no blob of this store (another
    /// prefix, a "subdirectory").
    fn blob_id<'a>(&self, object: &'a str, blob_prefix: &str) -> Option<&'a str> {
        let id = object.strip_prefix(self.prefix.as_str())?;
        (!id.is_empty() && id.starts_with(blob_prefix) && !id.contains('/')).then_some(id)
    }

    /// Every entry whose blob ID starts with `blob_prefix`, with its blob ID, page by page
    /// (flat, as Kopia's ListBlobsFlatPager).
    pub fn list(&self, blob_prefix: &str, include: Include) -> Result<Vec<(String, ListedBlob)>> {
        let operation = match include {
            Include::Metadata => format!("list {blob_prefix:?}"),
            Include::Versions => format!("list versions {blob_prefix:?}"),
        };
        let mut listed = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let mut url = format!(
                "{}?restype=container&comp=list&include={}&prefix={}",
                self.url,
                encode(include.query()),
                encode(&format!("{}{blob_prefix}", self.prefix))
            );
            if let Some(marker) = &marker {
                url.push_str(&format!("&marker={}", encode(marker)));
            }
            let body = self
                .get(url, None)
                .map_err(|f| self.error(&operation, None, f))?;
            let page = parse_page(&String::from_utf8_lossy(&body)).map_err(|reason| {
                self.error(
                    &operation,
                    None,
                    Failure {
                        status: None,
                        reason,
                    },
                )
            })?;
            listed.extend(page.blobs.into_iter().filter_map(|blob| {
                let id = self.blob_id(&blob.name, blob_prefix)?.to_string();
                Some((id, blob))
            }));
            match page.next_marker {
                Some(next) => marker = Some(next),
                None => return Ok(listed),
            }
        }
    }

    /// `[start, end)` (or all) of version `version` of blob `id` (Get Blob with `versionid`).
    pub fn read_version(
        &self,
        id: &str,
        version: &str,
        range: Option<(u64, u64)>,
    ) -> Result<Vec<u8>> {
        let url = format!(
            "{}/{}?versionid={}",
            self.url,
            encode(&format!("{}{id}", self.prefix)),
            encode(version)
        );
        self.get(url, range)
            .map_err(|f| self.error("get", Some(id), f))
    }

    /// One GET of `url` (with `range`), authorized, retried while the failure is transient;
    /// the body.
    fn get(&self, url: String, range: Option<(u64, u64)>) -> std::result::Result<Vec<u8>, Failure> {
        let mut attempt = 0;
        loop {
            let result = block_on(send(
                self.http.clone(),
                self.authorization.clone(),
                url.clone(),
                range,
            ));
            match result {
                Err(failure) if failure.transient() && attempt + 1 < ATTEMPTS => {
                    tracing::warn!(
                        attempt,
                        "storage request failed ({}), retrying",
                        self.redact(failure.reason)
                    );
                    std::thread::sleep(Duration::from_millis(200 << attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn redact(&self, mut text: String) -> String {
        for secret in &self.redacted {
            text = text.replace(secret.expose(), "***");
        }
        text
    }

    /// The crate's error for a failed request, naming the store and never a secret.
    pub fn error(&self, operation: &str, blob_id: Option<&str>, failure: Failure) -> Error {
        let reason = self.redact(failure.reason);
        match (failure.status, blob_id) {
            (Some(404), Some(id)) => Error::BlobNotFound {
                blob_id: id.to_string(),
                storage: self.name.clone(),
            },
            (Some(401 | 403), _) => Error::StorageAccessDenied {
                storage: self.name.clone(),
                reason,
            },
            _ => Error::StorageRequest {
                storage: self.name.clone(),
                operation: match blob_id {
                    Some(id) => format!("{operation} {id}"),
                    None => operation.to_string(),
                },
                reason,
            },
        }
    }
}

/// One authorized GET; the body of a 2xx answer.
async fn send(
    http: reqwest::Client,
    authorization: Authorization,
    url: String,
    range: Option<(u64, u64)>,
) -> std::result::Result<Vec<u8>, Failure> {
    let transport = |e: reqwest::Error| Failure {
        status: None,
        reason: error_chain(&e),
    };
    let invalid = |reason: String| Failure {
        status: None,
        reason,
    };
    let mut request = http::Request::get(url.as_str()).header("x-ms-version", API_VERSION);
    if let Some((start, end)) = range {
        request = request.header("range", format!("bytes={start}-{}", end - 1));
    }
    let (mut parts, ()) = request
        .body(())
        .map_err(|e| invalid(e.to_string()))?
        .into_parts();
    match authorization {
        Authorization::Signed(signer) => {
            signer.sign(&mut parts, None).await.map_err(|e| Failure {
                // A key that cannot sign is a refusal, not worth a retry.
                status: Some(401),
                reason: format!("cannot sign the request: {e}"),
            })?
        }
        Authorization::Bearer(client) => {
            let request = http::Request::from_parts(parts, opendal::Buffer::new());
            let answer = client.send(request).await.map_err(|e| Failure {
                // A refused credential is final; a token endpoint that failed may recover.
                status: (e.kind() == opendal::ErrorKind::PermissionDenied).then_some(401),
                reason: e.to_string(),
            })?;
            let status = answer.status().as_u16();
            return answered(status, &answer.into_body().to_bytes());
        }
    }
    let request = reqwest::Request::try_from(http::Request::from_parts(parts, Vec::<u8>::new()))
        .map_err(transport)?;
    let answer = http.execute(request).await.map_err(transport)?;
    let status = answer.status().as_u16();
    let body = answer.bytes().await.map_err(transport)?;
    answered(status, &body)
}

/// The body of a 2xx answer, else the failure with Azure's error code.
fn answered(status: u16, body: &[u8]) -> std::result::Result<Vec<u8>, Failure> {
    if (200..300).contains(&status) {
        return Ok(body.to_vec());
    }
    let text = String::from_utf8_lossy(body);
    // Azure's error document: <Error><Code>…</Code><Message>…</Message></Error>.
    let code = text
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map_or("", |(code, _)| code);
    Err(Failure {
        status: Some(status),
        reason: format!("HTTP {status} {code}").trim_end().to_string(),
    })
}

/// An `azureBlob` store: reads and writes through OpenDAL, listings through [`Container`] so
/// that blob times are Kopia's.
#[derive(Debug)]
pub struct AzureStorage {
    objects: ObjectStorage,
    container: Container,
}

impl AzureStorage {
    pub fn new(objects: ObjectStorage, container: Container) -> Self {
        AzureStorage { objects, container }
    }
}

impl BlobReader for AzureStorage {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        self.objects.get_blob(id)
    }

    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.objects.get_blob_range(id, offset, length)
    }

    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        let mut blobs: Vec<BlobMetadata> = self
            .container
            .list(prefix, Include::Metadata)?
            .into_iter()
            .map(|(id, blob)| BlobMetadata {
                id,
                length: blob.length,
                timestamp: blob.timestamp(),
            })
            .collect();
        blobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(blobs)
    }

    fn describe(&self) -> String {
        self.objects.describe()
    }
}

impl BlobWriter for AzureStorage {
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()> {
        self.objects.put_blob(id, data)
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        self.objects.delete_blob(id)
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
    fn a_page_gives_names_sizes_kopias_times_and_the_next_marker() {
        let xml = r#"<?xml version="1.0" encoding="utf-8"?>
<EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/127" ContainerName="c">
  <Prefix>p/</Prefix><Marker /><MaxResults>5000</MaxResults>
  <Blobs>
    <Blob><Name>p/kopia.repository</Name>
      <Properties><Last-Modified>Tue, 01 Dec 2026 10:00:00 GMT</Last-Modified>
        <Content-Length>1101</Content-Length><BlobType>BlockBlob</BlobType></Properties>
      <Metadata><Kopiamtime>1764583200123456789</Kopiamtime><Other>x</Other></Metadata>
    </Blob>
    <Blob><Name>p/xn0_1</Name>
      <Properties><Last-Modified>Tue, 01 Dec 2026 11:00:00 GMT</Last-Modified>
        <Content-Length>7</Content-Length></Properties>
      <Metadata /></Blob>
    <Blob><Name>p/q1</Name><VersionId>2026-12-01T11:30:00.1234567Z</VersionId>
      <IsCurrentVersion>true</IsCurrentVersion><HasVersionsOnly>true</HasVersionsOnly>
      <Properties><Last-Modified>Tue, 01 Dec 2026 11:30:00 GMT</Last-Modified>
        <Content-Length>0</Content-Length></Properties>
      <Metadata><kopiamtime>not a number</kopiamtime></Metadata></Blob>
  </Blobs>
  <NextMarker>2!72!cC94bjBfMQ--</NextMarker>
</EnumerationResults>"#;
        let page = parse_page(xml).unwrap();
        assert_eq!(page.next_marker.as_deref(), Some("2!72!cC94bjBfMQ--"));
        let [synced, written, marker] = &page.blobs[..] else {
            panic!("{page:?}")
        };
        assert_eq!(
            (synced.name.as_str(), synced.length),
            ("p/kopia.repository", 1101)
        );
        // Kopiamtime wins over Last-Modified, to the nanosecond.
        assert_eq!(synced.timestamp(), at("2025-12-01T10:00:00.123456789Z"));
        assert_eq!(synced.last_modified, at("2026-12-01T10:00:00Z"));
        assert_eq!(written.mtime, None);
        assert_eq!(written.timestamp(), at("2026-12-01T11:00:00Z"));
        assert_eq!((written.version.as_deref(), written.current), (None, false));
        // An unparsable Kopiamtime is ignored, as timestampmeta.FromValue does.
        assert_eq!(marker.timestamp(), at("2026-12-01T11:30:00Z"));
        assert_eq!(
            marker.version.as_deref(),
            Some("2026-12-01T11:30:00.1234567Z")
        );
        assert!(marker.current && marker.versions_only);
    }

    #[test]
    fn an_empty_last_page_and_bad_documents() {
        let page = parse_page(
            r#"<EnumerationResults ContainerName="c"><Blobs /><NextMarker /></EnumerationResults>"#,
        )
        .unwrap();
        assert_eq!(
            page,
            Page {
                blobs: vec![],
                next_marker: None
            }
        );
        assert!(parse_page("<Error><Code>AuthenticationFailed</Code></Error>").is_err());
        let bad_time = parse_page(
            "<EnumerationResults><Blobs><Blob><Name>p/x</Name><Properties>\
             <Last-Modified>yesterday</Last-Modified></Properties></Blob></Blobs>\
             </EnumerationResults>",
        )
        .unwrap_err();
        assert!(
            bad_time.contains("p/x") && bad_time.contains("yesterday"),
            "{bad_time}"
        );
    }

    #[test]
    fn names_and_values_are_percent_encoded_but_slashes() {
        assert_eq!(encode("team-a/host1-"), "team-a/host1-");
        assert_eq!(encode("metadata,versions"), "metadata%2Cversions");
        assert_eq!(encode("2!72!cC9+="), "2%2172%21cC9%2B%3D");
    }

    #[test]
    fn failures_name_the_store_and_hide_secrets() {
        let container = Container::new(
            "http://127.0.0.1:1/127",
            "c",
            "p/",
            Authorization::sas_token("sv=1&sig=s3cr3t"),
            "azure://c/p/".to_string(),
            vec![Password::new("s3cr3t")],
        )
        .unwrap();
        let failure = |status, reason: &str| Failure {
            status,
            reason: reason.to_string(),
        };
        let message = container
            .error("list", None, failure(None, "url (http://x/c?sig=s3cr3t)"))
            .to_string();
        assert!(
            message.contains("azure://c/p/") && !message.contains("s3cr3t"),
            "{message}"
        );
        assert!(matches!(
            container.error("list", None, failure(Some(403), "HTTP 403")),
            Error::StorageAccessDenied { .. }
        ));
        assert!(matches!(
            container.error("get", Some("q1"), failure(Some(404), "HTTP 404")),
            Error::BlobNotFound { ref blob_id, .. } if blob_id == "q1"
        ));
        assert_eq!(container.blob_id("p/q1", "q"), Some("q1"));
        assert_eq!(container.blob_id("p/sub/q1", ""), None);
        assert_eq!(container.blob_id("other/q1", ""), None);
    }
}
