//! The object-store family (S3 and S3-compatible; GCS, Azure and B2 share the layout): a flat
//! namespace where a blob is the object `<prefix><blob ID>`, the prefix being plain string
//! concatenation (it need not end in `/`), listed with the `/` delimiter. Kopia: repo/blob/s3
//! (getObjectNameString, ListBlobs).

use super::range::{read_range, RangeFailure};
use super::{block_on, listed_blob, request_error};
use crate::client::Password;
use crate::error::{Error, Result};
use crate::storage::{BlobMetadata, BlobReader, BlobWriter};

/// Kopia's content type for every object it writes.
const CONTENT_TYPE: &str = "application/x-kopia";

/// The object `<prefix><blob ID>` of a blob of the store called `storage`, refusing IDs that
/// would name another object: blob IDs are ASCII without separators.
pub(super) fn object_name(prefix: &str, blob_id: &str, storage: &str) -> Result<String> {
    if blob_id.is_empty()
        || !blob_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
    {
        return Err(Error::StorageRequest {
            storage: storage.to_string(),
            operation: "address".to_string(),
            reason: format!("invalid blob ID {blob_id:?}"),
        });
    }
    Ok(format!("{prefix}{blob_id}"))
}

/// One bucket (or container) and prefix, through an OpenDAL operator rooted at the bucket.
#[derive(Debug, Clone)]
pub struct ObjectStorage {
    operator: opendal::Operator,
    prefix: String,
    /// Objects under the prefix that are the backend's own, not blobs (S3's `.storageconfig`).
    hidden: &'static [&'static str],
    name: String,
    /// Secrets the backend puts into request URLs (a SAS signature), cut out of every message.
    redacted: Vec<Password>,
}

impl ObjectStorage {
    /// `name` is what messages call the store, e.g. `s3://bucket/prefix`.
    pub fn new(
        operator: opendal::Operator,
        prefix: &str,
        hidden: &'static [&'static str],
        name: String,
    ) -> Self {
        ObjectStorage {
            operator,
            prefix: prefix.to_string(),
            hidden,
            name,
            redacted: Vec::new(),
        }
    }

    /// Never lets `secrets` appear in an error: OpenDAL names the request URL in connection
    /// errors, and some credentials (Azure's SAS tokens) travel in it.
    pub fn with_redacted(mut self, secrets: Vec<Password>) -> Self {
        self.redacted = secrets;
        self
    }

    /// The object name of a blob, refusing IDs that would name another object.
    pub(super) fn key(&self, blob_id: &str) -> Result<String> {
        object_name(&self.prefix, blob_id, &self.name)
    }

    /// The crate's error for a failed request on this store, with the secrets cut out.
    pub(super) fn error(
        &self,
        operation: &str,
        blob_id: Option<&str>,
        error: opendal::Error,
    ) -> Error {
        let mut error = request_error(&self.name, operation, blob_id, error);
        if let Error::StorageAccessDenied { reason, .. } | Error::StorageRequest { reason, .. } =
            &mut error
        {
            for secret in &self.redacted {
                *reason = reason.replace(secret.expose(), "***");
            }
        }
        error
    }

    pub(super) fn operator(&self) -> &opendal::Operator {
        &self.operator
    }

    /// The object name that lists the blobs whose IDs start with `blob_prefix`.
    pub(super) fn list_path(&self, blob_prefix: &str) -> String {
        format!("{}{blob_prefix}", self.prefix)
    }

    /// The blob ID of a listed object name, unless the object is no blob of this store: under
    /// another prefix, in a "subdirectory", or the backend's own (`hidden`).
    pub(super) fn blob_id<'a>(&self, object: &'a str, blob_prefix: &str) -> Option<&'a str> {
        let id = object.strip_prefix(self.prefix.as_str())?;
        (id.starts_with(blob_prefix) && !id.contains('/') && !self.hidden.contains(&id))
            .then_some(id)
    }
}

impl BlobReader for ObjectStorage {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        let key = self.key(id)?;
        let operator = self.operator.clone();
        let data = block_on(async move { operator.read(&key).await })
            .map_err(|e| self.error("get", Some(id), e))?;
        Ok(data.to_vec())
    }

    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let key = self.key(id)?;
        let size = || {
            let (operator, key) = (self.operator.clone(), key.clone());
            block_on(async move { operator.stat(&key).await })
                .map(|metadata| metadata.content_length())
                .map_err(|e| self.error("stat", Some(id), e))
        };
        read_range(id, offset, length, size, |range| {
            let (operator, key) = (self.operator.clone(), key.clone());
            block_on(async move { operator.read_with(&key).range(range).await })
                .map(|data| data.to_vec())
                .map_err(|e| match e.kind() {
                    opendal::ErrorKind::NotFound | opendal::ErrorKind::PermissionDenied => {
                        RangeFailure::Failed(self.error("get", Some(id), e))
                    }
                    _ => RangeFailure::PerhapsPastEnd(self.error("get", Some(id), e)),
                })
        })
    }

    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        let operator = self.operator.clone();
        let path = self.list_path(prefix);
        // Non-recursive: one ListObjects walk with delimiter "/", as Kopia lists.
        let entries = block_on(async move { operator.list_with(&path).recursive(false).await })
            .map_err(|e| self.error(&format!("list {prefix:?}"), None, e))?;
        let mut blobs: Vec<BlobMetadata> = entries
            .into_iter()
            .filter(|entry| entry.metadata().is_file())
            .filter_map(|entry| {
                let id = self.blob_id(entry.path(), prefix)?;
                Some(listed_blob(id, entry.metadata()))
            })
            .collect();
        blobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(blobs)
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

impl BlobWriter for ObjectStorage {
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()> {
        let key = self.key(id)?;
        let operator = self.operator.clone();
        let data = data.to_vec();
        // One PUT: an object appears whole or not at all.
        block_on(async move {
            operator
                .write_with(&key, data)
                .content_type(CONTENT_TYPE)
                .await
        })
        .map(drop)
        .map_err(|e| self.error("put", Some(id), e))
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        let key = self.key(id)?;
        let operator = self.operator.clone();
        // OpenDAL reports a missing object as deleted, which is what the trait asks for.
        block_on(async move { operator.delete(&key).await })
            .map_err(|e| self.error("delete", Some(id), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The family's behaviour without a server: OpenDAL's in-memory service behind the same
    /// code (the S3 interop tests run it against a real server).
    fn memory(prefix: &str) -> ObjectStorage {
        let operator = super::super::operator(opendal::services::Memory::default(), None).unwrap();
        ObjectStorage::new(
            operator,
            prefix,
            &[".storageconfig"],
            format!("memory://{prefix}"),
        )
    }

    #[test]
    fn blobs_are_prefix_concatenated_objects() {
        let storage = memory("repo1-");
        storage.put_blob("kopia.repository", b"format").unwrap();
        storage.put_blob("xe0", b"epoch").unwrap();
        storage.put_blob(".storageconfig", b"{}").unwrap();
        let raw = storage.operator.clone();
        let keys = block_on(async move { raw.list_with("").recursive(true).await }).unwrap();
        let mut keys: Vec<String> = keys.iter().map(|e| e.path().to_string()).collect();
        keys.sort();
        assert_eq!(
            keys,
            vec![
                "repo1-.storageconfig",
                "repo1-kopia.repository",
                "repo1-xe0"
            ]
        );
        // The storage config object is not a blob; other prefixes are other repositories.
        let other = memory("repo2/");
        other.put_blob("xe0", b"other").unwrap();
        let listed: Vec<String> = storage
            .list_blobs("")
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect();
        assert_eq!(listed, vec!["kopia.repository", "xe0"]);
        assert_eq!(storage.list_blobs("x").unwrap()[0].length, 5);
        assert!(storage.list_blobs("q").unwrap().is_empty());
    }

    #[test]
    fn redacted_secrets_never_appear_in_errors() {
        let storage = memory("p/").with_redacted(vec![Password::new("s1gn4ture")]);
        let sent = opendal::Error::new(opendal::ErrorKind::Unexpected, "send http request")
            .with_context("url", "http://a.blob/c/p/xe0?sv=1&sig=s1gn4ture");
        let message = storage.error("get", Some("xe0"), sent).to_string();
        assert!(
            !message.contains("s1gn4ture") && message.contains("sig=***"),
            "{message}"
        );
        let denied = opendal::Error::new(opendal::ErrorKind::PermissionDenied, "sig=s1gn4ture");
        let message = storage.error("list", None, denied).to_string();
        assert!(
            message.contains("denied") && !message.contains("s1gn4ture"),
            "{message}"
        );
    }

    #[test]
    fn reads_ranges_and_missing_blobs() {
        let storage = memory("p/");
        storage.put_blob("q0123", b"0123456789").unwrap();
        assert_eq!(storage.get_blob("q0123").unwrap(), b"0123456789");
        assert_eq!(storage.get_blob_range("q0123", 2, 3).unwrap(), b"234");
        assert_eq!(storage.get_blob_range("q0123", 10, 0).unwrap(), b"");
        let short = storage.get_blob_range("q0123", 8, 5);
        assert!(
            matches!(short, Err(Error::TruncatedBlob { actual: 10, .. })),
            "{short:?}"
        );
        match storage.get_blob("missing").unwrap_err() {
            Error::BlobNotFound { blob_id, storage } => {
                assert_eq!(
                    (blob_id.as_str(), storage.as_str()),
                    ("missing", "memory://p/")
                )
            }
            other => panic!("unexpected {other:?}"),
        }
        storage.delete_blob("q0123").unwrap();
        storage.delete_blob("q0123").unwrap();
        assert!(storage.list_blobs("").unwrap().is_empty());
        assert!(storage.get_blob("../escape").is_err());
        assert!(storage.put_blob("a/b", b"x").is_err());
    }
}
