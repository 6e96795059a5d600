//! Kopia's point-in-time view of a GCS bucket (repo/blob/gcs/gcs_pit.go, gcs_versioned.go):
//! the blobs under the prefix as they were at `pointInTime`, from the bucket's object
//! generations, each read at exactly its generation. Read-only: the view is a
//! [`BlobReader`] and nothing else.
//!
//! OpenDAL 0.57's gcs service lists no generations, so the view speaks the JSON API itself
//! ([`super::gcs_json`]: `objects.list` with `versions=true`, `objects.get` with
//! `alt=media&generation=`).
//!
//! GCS keeps no delete markers: overwriting or deleting a live object archives its
//! generation with a `timeDeleted`. Kopia's rule, applied through [`view_at`](crate::storage::point_in_time::view_at):
//! of the generations created at or before T (by `Kopia-Mtime`, else `timeCreated`, as Kopia's
//! getBlobMeta), the newest is the blob, unless it was deleted before T.

use chrono::{DateTime, SecondsFormat, Utc};

use super::gcs_json::{Failure, GoogleSigner, JsonApi, ListedObject};
use crate::error::{Error, Result};
use crate::storage::point_in_time::{read_version_range, ChosenVersions, ObjectVersion};
use crate::storage::{BlobMetadata, BlobReader};

/// The view of `gs://bucket/prefix` at `at`, through the JSON API.
#[derive(Debug)]
pub struct GcsPointInTime {
    json: JsonApi,
    bucket: String,
    prefix: String,
    at: DateTime<Utc>,
    name: String,
    chosen: ChosenVersions,
}

/// The blob versions of a listing, as the view rules see them at `at`: each generation made
/// a blob by Kopia's rule ([`ListedObject::blob`]), other "directories" and other prefixes
/// left out.
fn versions_of(items: Vec<ListedObject>, prefix: &str, at: DateTime<Utc>) -> Vec<ObjectVersion> {
    items
        .into_iter()
        .filter_map(|item| {
            let blob = item.blob(prefix)?;
            Some(ObjectVersion {
                id: blob.id,
                timestamp: blob.timestamp,
                version: item.generation,
                length: blob.length,
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
        Ok(GcsPointInTime {
            json: JsonApi::new(api, bucket, signer)?,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            at,
            name,
            chosen: ChosenVersions::default(),
        })
    }

    /// The moment as messages show it.
    pub fn moment(&self) -> String {
        self.at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    fn error(&self, operation: &str, blob_id: Option<&str>, failure: Failure) -> Error {
        failure.into_error(self.describe(), operation, blob_id)
    }

    /// Refuses a bucket without versioning, where a view of the past would silently be the
    /// present (Kopia: maybePointInTimeStore asks the bucket's attributes).
    pub fn require_versioned_bucket(&self) -> Result<()> {
        let body = self
            .json
            .get(self.json.bucket_url("fields=versioning"), None)
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

    /// Every generation of the objects whose blob IDs start with `prefix` (Kopia's
    /// listBlobVersions).
    fn versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>> {
        let listed = self
            .json
            .list(&format!("{}{prefix}", self.prefix), true)
            .map_err(|f| self.error(&format!("list versions {prefix:?}"), None, f))?;
        Ok(versions_of(listed, &self.prefix, self.at))
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
        let url = self
            .json
            .media_url(&format!("{}{id}", self.prefix), &version.version);
        self.json
            .get(url, range)
            .map_err(|f| self.error("get", Some(id), f))
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
    use super::super::gcs_json::serve;
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn generations_follow_kopias_rule() {
        let items: Vec<ListedObject> = serde_json::from_value(serde_json::json!([
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
        ]))
        .unwrap();
        let moment = at("2026-01-01T12:00:00Z");
        let view = crate::storage::point_in_time::view_at(versions_of(items, "p/", moment), moment);
        let chosen: Vec<(&str, &str, u64)> = view
            .iter()
            .map(|v| (v.id.as_str(), v.version.as_str(), v.length))
            .collect();
        assert_eq!(chosen, vec![("a", "1", 3), ("s", "7", 2)]);
        assert_eq!(view[1].timestamp, at("2026-01-01T11:00:00Z"));
    }

    #[test]
    fn requests_carry_the_signers_token() {
        let (api, served) = serve(vec![r#"{"versioning":{"enabled":true}}"#]);
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
        let head = served.join().unwrap()[0].to_ascii_lowercase();
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
        let (api, served) = serve(vec![r#"{}"#]);
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
        assert!(!served.join().unwrap()[0].contains("authorization"));
    }
}
