//! Kopia's `b2` storage (repo/blob/b2/b2_storage.go): a Backblaze B2 bucket through B2's native
//! API. The layout is the object stores' (a blob is the file `<prefix><blob ID>`, see
//! [`super::object`]); deleting hides the file as Kopia does, and a `kopia-mtime` file info
//! (nanoseconds, Kopia's internal/timestampmeta) overrides the upload time in listings.
//! Requests reach `api.backblazeb2.com` first, through the environment's `HTTPS_PROXY` if set,
//! trusting the system's roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured).

pub mod api;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;

use self::api::{B2Api, Failure, FileVersion, AUTHORIZE_URL};
use super::block_on;
use super::object::object_name;
use super::range::{read_range, RangeFailure};
use crate::client::Password;
use crate::error::{Error, Result};
use crate::storage::factory::Access;
use crate::storage::{BlobMetadata, BlobReader, BlobWriter, Storage};

/// What Kopia's B2 client uploads with: B2 picks the type from the name's extension.
const CONTENT_TYPE: &str = "b2/x-auto";
/// Kopia's file-info key for a blob's modification time (all lowercase, as B2 stores keys).
const MTIME_KEY: &str = "kopia-mtime";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One request's limit (a hung connection must not hang a refresh), and a body's stall limit.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// `storage.config` of a `b2` storage (Kopia's b2.Options); the key is a [`Password`], so
/// `Debug` never shows it.
#[derive(Debug, Clone, Deserialize)]
pub struct B2Config {
    #[serde(rename = "bucket")]
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(rename = "keyID", default)]
    pub key_id: String,
    #[serde(rename = "key", default, deserialize_with = "super::s3::secret")]
    pub key: Option<Password>,
}

impl B2Config {
    pub fn from_json(config: &serde_json::Value) -> std::result::Result<Self, String> {
        let parsed = B2Config::deserialize(config).map_err(|e| e.to_string())?;
        if parsed.bucket.is_empty() {
            return Err("no bucket".to_string());
        }
        if parsed.key_id.is_empty() || parsed.key.is_none() {
            return Err(format!(
                "no keyID or key for bucket {}: B2 needs an application key",
                parsed.bucket
            ));
        }
        Ok(parsed)
    }

    /// Kopia's name of the store: `b2://bucket/prefix`.
    pub fn describe(&self) -> String {
        format!("b2://{}/{}", self.bucket, self.prefix)
    }
}

/// Opens an existing B2 repository location with the capability `access` allows. Nothing is
/// sent yet: the first request authorizes.
pub fn open(config: &serde_json::Value, access: Access) -> Result<Storage> {
    let invalid = |reason: String| Error::InvalidStorageConfig {
        kind: "b2".to_string(),
        reason,
    };
    let config = B2Config::from_json(config).map_err(invalid)?;
    super::install_tls_provider();
    let http = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(REQUEST_TIMEOUT)
        .read_timeout(READ_TIMEOUT)
        .build()
        .map_err(|e| invalid(e.to_string()))?;
    let storage = Arc::new(B2Storage::new(&config, http, AUTHORIZE_URL));
    Ok(match access {
        Access::ReadWrite => Storage::read_write(storage),
        Access::ReadOnly => Storage::read_only(storage),
    })
}

/// One bucket and prefix on B2.
#[derive(Debug, Clone)]
pub struct B2Storage {
    api: Arc<B2Api>,
    prefix: String,
    name: String,
}

impl B2Storage {
    /// The storage of `config` over `http`, authorizing at `authorize_url`: [`AUTHORIZE_URL`]
    /// for Backblaze (what [`open`] uses), another address for a service speaking B2's API.
    pub fn new(config: &B2Config, http: reqwest::Client, authorize_url: &str) -> Self {
        let key = config.key.clone().unwrap_or_else(|| Password::new(""));
        B2Storage {
            api: Arc::new(B2Api::new(
                http,
                authorize_url,
                &config.key_id,
                key,
                &config.bucket,
            )),
            prefix: config.prefix.clone(),
            name: config.describe(),
        }
    }

    fn file_name(&self, blob_id: &str) -> Result<String> {
        object_name(&self.prefix, blob_id, &self.name)
    }

    /// The crate's error for `failure` of `operation` (on `blob_id`), naming the bucket and
    /// never the key.
    fn error(&self, operation: &str, blob_id: Option<&str>, failure: Failure) -> Error {
        let redact = |reason: String| self.api.redact(&reason);
        let operation = match blob_id {
            Some(id) => format!("{operation} {id}"),
            None => operation.to_string(),
        };
        match failure {
            Failure::NotFound if blob_id.is_some() => Error::BlobNotFound {
                blob_id: blob_id.unwrap_or_default().to_string(),
                storage: self.name.clone(),
            },
            Failure::Denied(reason) => Error::StorageAccessDenied {
                storage: self.name.clone(),
                reason: redact(reason),
            },
            Failure::NotFound => self.request_error(operation, "not found".into()),
            Failure::RangeNotSatisfiable => {
                self.request_error(operation, "range not satisfiable".into())
            }
            Failure::Expired => self.request_error(operation, "the token expired".into()),
            Failure::Transient(reason) | Failure::Other(reason) => {
                self.request_error(operation, redact(reason))
            }
        }
    }

    fn request_error(&self, operation: String, reason: String) -> Error {
        Error::StorageRequest {
            storage: self.name.clone(),
            operation,
            reason,
        }
    }

    fn length(&self, id: &str, name: &str) -> Result<u64> {
        let (api, name) = (Arc::clone(&self.api), name.to_string());
        block_on(async move { api.download(&name, None, true).await })
            .map(|(_, length)| length)
            .map_err(|f| self.error("stat", Some(id), f))
    }
}

/// A listed file as Kopia's ListBlobs reports it: the upload time unless Kopia recorded one.
fn blob_metadata(id: &str, file: &FileVersion) -> BlobMetadata {
    let mtime = file
        .file_info
        .get(MTIME_KEY)
        .and_then(|nanos| nanos.parse::<i64>().ok())
        .map(DateTime::<Utc>::from_timestamp_nanos);
    let uploaded = DateTime::<Utc>::from_timestamp_millis(file.upload_timestamp)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    BlobMetadata {
        id: id.to_string(),
        length: file.content_length,
        timestamp: mtime.unwrap_or(uploaded),
    }
}

impl BlobReader for B2Storage {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        let (api, name) = (Arc::clone(&self.api), self.file_name(id)?);
        block_on(async move { api.download(&name, None, false).await })
            .map(|(data, _)| data)
            .map_err(|f| self.error("get", Some(id), f))
    }

    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let name = self.file_name(id)?;
        read_range(
            id,
            offset,
            length,
            || self.length(id, &name),
            |range| {
                let (api, name) = (Arc::clone(&self.api), name.clone());
                // B2 takes an HTTP byte range: inclusive of its last byte.
                let inclusive = (range.start, range.end - 1);
                block_on(async move { api.download(&name, Some(inclusive), false).await })
                    .map(|(data, _)| data)
                    .map_err(|failure| match failure {
                        Failure::RangeNotSatisfiable => RangeFailure::PastEnd,
                        failure => RangeFailure::Failed(self.error("get", Some(id), failure)),
                    })
            },
        )
    }

    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        let full_prefix = format!("{}{prefix}", self.prefix);
        let mut blobs = Vec::new();
        let mut start: Option<String> = None;
        loop {
            let (api, path, from) = (Arc::clone(&self.api), full_prefix.clone(), start.take());
            let (files, next) =
                block_on(async move { api.list_page(&path, from.as_deref()).await })
                    .map_err(|f| self.error(&format!("list {prefix:?}"), None, f))?;
            for file in files.iter().filter(|f| f.action == "upload") {
                let Some(id) = file.file_name.strip_prefix(self.prefix.as_str()) else {
                    continue;
                };
                if id.starts_with(prefix) && !id.contains('/') {
                    blobs.push(blob_metadata(id, file));
                }
            }
            match next {
                Some(next) => start = Some(next),
                None => break,
            }
        }
        blobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(blobs)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

impl BlobWriter for B2Storage {
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()> {
        let (api, name, data) = (Arc::clone(&self.api), self.file_name(id)?, data.to_vec());
        // One upload: a file version appears whole or not at all.
        block_on(async move { api.upload(&name, CONTENT_TYPE, &data).await })
            .map(drop)
            .map_err(|f| self.error("put", Some(id), f))
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        let (api, name) = (Arc::clone(&self.api), self.file_name(id)?);
        match block_on(async move { api.hide(&name).await }) {
            // Already hidden or never there: gone, which is what the trait asks for.
            Ok(()) | Err(Failure::NotFound) => Ok(()),
            Err(failure) => Err(self.error("delete", Some(id), failure)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_reads_kopias_keys_and_hides_the_key() {
        let config = B2Config::from_json(&serde_json::json!({
            "bucket": "kopia-b", "prefix": "host1-", "keyID": "0012ab", "key": "K001secret",
            "maxDownloadSpeedBytesPerSecond": 0
        }))
        .unwrap();
        assert_eq!(config.describe(), "b2://kopia-b/host1-");
        assert_eq!(config.key_id, "0012ab");
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("K001secret") && debug.contains("0012ab"),
            "{debug}"
        );
        let storage = B2Storage::new(&config, reqwest::Client::new(), AUTHORIZE_URL);
        let debug = format!("{storage:?}");
        assert!(!debug.contains("K001secret"), "{debug}");
    }

    #[test]
    fn configs_without_bucket_or_key_are_refused() {
        let err = B2Config::from_json(&serde_json::json!({"keyID": "k", "key": "s"})).unwrap_err();
        assert!(err.contains("bucket"), "{err}");
        let err =
            B2Config::from_json(&serde_json::json!({"bucket": "b", "keyID": "k"})).unwrap_err();
        assert!(err.contains("bucket b") && err.contains("key"), "{err}");
    }

    #[test]
    fn listings_take_kopias_mtime_over_the_upload_time() {
        let mut file = FileVersion {
            file_name: "p-xe0".into(),
            content_length: 7,
            content_sha1: None,
            action: "upload".into(),
            upload_timestamp: 1_700_000_000_123,
            file_info: Default::default(),
        };
        let uploaded = blob_metadata("xe0", &file);
        assert_eq!(uploaded.timestamp.timestamp_millis(), 1_700_000_000_123);
        assert_eq!(uploaded.length, 7);
        file.file_info
            .insert(MTIME_KEY.into(), "1600000000000000001".into());
        let kept = blob_metadata("xe0", &file);
        assert_eq!(
            kept.timestamp.timestamp_nanos_opt(),
            Some(1_600_000_000_000_000_001)
        );
        file.file_info.insert(MTIME_KEY.into(), "garbage".into());
        assert_eq!(blob_metadata("xe0", &file).timestamp, uploaded.timestamp);
    }

    #[test]
    fn errors_name_the_bucket_and_never_the_key() {
        let config = B2Config::from_json(&serde_json::json!({
            "bucket": "kopia-b", "keyID": "0012ab", "key": "K001secret"
        }))
        .unwrap();
        let storage = B2Storage::new(&config, reqwest::Client::new(), AUTHORIZE_URL);
        let denied = storage
            .error("list", None, Failure::Denied("bad key K001secret".into()))
            .to_string();
        assert_eq!(denied, "access to b2://kopia-b/ denied: bad key ***");
        match storage.error("get", Some("xe0"), Failure::NotFound) {
            Error::BlobNotFound { blob_id, storage } => {
                assert_eq!(
                    (blob_id.as_str(), storage.as_str()),
                    ("xe0", "b2://kopia-b/")
                )
            }
            other => panic!("unexpected {other:?}"),
        }
        let failed = storage
            .error("put", Some("q1"), Failure::Transient("HTTP 503".into()))
            .to_string();
        assert_eq!(failed, "put q1 on b2://kopia-b/ failed: HTTP 503");
        assert!(storage.file_name("a/b").is_err() && storage.file_name("").is_err());
    }
}
