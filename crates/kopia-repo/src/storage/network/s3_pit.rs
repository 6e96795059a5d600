//! Kopia's point-in-time view of an S3 bucket (repo/blob/s3/s3_pit.go, s3_versioned.go): the
//! blobs under the prefix as they were at `pointInTime`, chosen from the bucket's object
//! versions by [`view_at`](crate::storage::point_in_time::view_at), each read at exactly that version. The view is a
//! [`BlobReader`] and nothing else: it has no way to write or delete.

use std::time::SystemTime;

use super::block_on;
use super::object::ObjectStorage;
use super::s3_versioning::Versioning;
use crate::error::{Error, Result};
use crate::storage::point_in_time::{read_version_range, ChosenVersions, ObjectVersion};
use crate::storage::{BlobMetadata, BlobReader};
use chrono::{DateTime, SecondsFormat, Utc};

/// S3's version ID of objects written while the bucket was not versioned.
const UNVERSIONED: &str = "null";

/// The view of `objects` at `at`.
#[derive(Debug)]
pub struct PointInTimeStorage {
    objects: ObjectStorage,
    at: DateTime<Utc>,
    chosen: ChosenVersions,
}

impl PointInTimeStorage {
    pub fn new(objects: ObjectStorage, at: DateTime<Utc>) -> Self {
        PointInTimeStorage {
            objects,
            at,
            chosen: ChosenVersions::default(),
        }
    }

    /// The moment as messages show it.
    pub fn moment(&self) -> String {
        self.at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// Refuses a bucket whose versioning is not `Enabled` (as GetBucketVersioning told it),
    /// where a view of the past would silently be the present, or be missing what was
    /// overwritten while versioning was suspended (Kopia: s3_pit.go maybePointInTimeStore).
    pub(super) fn require_versioned_bucket(
        &self,
        bucket: &str,
        versioning: &Versioning,
    ) -> Result<()> {
        if *versioning == Versioning::Enabled {
            return Ok(());
        }
        Err(Error::InvalidStorageConfig {
            kind: "s3".to_string(),
            reason: format!(
                "pointInTime {} needs a versioned bucket, and bucket {bucket} of {} {} \
                 (enable versioning, or connect without --point-in-time)",
                self.moment(),
                self.objects.describe(),
                versioning.described()
            ),
        })
    }

    /// Every version of the objects whose blob IDs start with `prefix`, delete markers
    /// included: one recursive ListObjectVersions walk, as Kopia's `listBlobVersions`.
    fn versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>> {
        let operator = self.objects.operator().clone();
        let path = self.objects.list_path(prefix);
        let entries = block_on(async move {
            operator
                .list_with(&path)
                .recursive(true)
                .versions(true)
                .deleted(true)
                .await
        })
        .map_err(|e| {
            self.objects
                .error(&format!("list versions {prefix:?}"), None, e)
        })?;
        Ok(entries
            .into_iter()
            .filter_map(|entry| {
                let id = self.objects.blob_id(entry.path(), prefix)?;
                let metadata = entry.metadata();
                let timestamp = metadata
                    .last_modified()
                    .map_or(SystemTime::UNIX_EPOCH, SystemTime::from);
                Some(ObjectVersion {
                    id: id.to_string(),
                    version: metadata.version().unwrap_or(UNVERSIONED).to_string(),
                    length: metadata.content_length(),
                    timestamp: DateTime::<Utc>::from(timestamp),
                    deleted: metadata.is_deleted(),
                    latest: metadata.is_current().unwrap_or(false),
                })
            })
            .collect())
    }

    /// The version of `id` the view shows, or [`Error::BlobNotFound`].
    fn chosen(&self, id: &str) -> Result<ObjectVersion> {
        self.objects.key(id)?;
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
        let key = self.objects.key(id)?;
        let operator = self.objects.operator().clone();
        let version = version.version.clone();
        let data = block_on(async move {
            let read = operator.read_with(&key).version(&version);
            match range {
                Some((start, end)) => read.range(start..end).await,
                None => read.await,
            }
        })
        .map_err(|e| self.objects.error("get", Some(id), e))?;
        Ok(data.to_vec())
    }
}

impl BlobReader for PointInTimeStorage {
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
        format!("{} as of {}", self.objects.describe(), self.moment())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_enabled_versioning_makes_a_view() {
        let operator = super::super::operator(opendal::services::Memory::default(), None).unwrap();
        let objects = ObjectStorage::new(operator, "p/", &[], "s3://b/p/ at s3.local".to_string());
        let view = PointInTimeStorage::new(objects, "2026-01-01T12:00:00Z".parse().unwrap());
        assert!(view
            .require_versioned_bucket("b", &Versioning::Enabled)
            .is_ok());
        for (versioning, said) in [
            (Versioning::Suspended, "has object versioning suspended"),
            (Versioning::Never, "keeps no object versions"),
            (
                Versioning::Other("Paused".to_string()),
                "has object versioning status \"Paused\"",
            ),
        ] {
            let message = view
                .require_versioned_bucket("b", &versioning)
                .unwrap_err()
                .to_string();
            assert!(
                message.contains("pointInTime 2026-01-01T12:00:00Z needs a versioned bucket")
                    && message.contains(&format!("bucket b of s3://b/p/ at s3.local {said}")),
                "{message}"
            );
        }
    }
}
