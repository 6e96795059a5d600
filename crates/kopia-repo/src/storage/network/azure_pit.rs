//! Kopia's point-in-time view of an Azure container (repo/blob/azure/azure_pit.go,
//! azure_versioned.go): the blobs under the prefix as they were at `pointInTime`, from the
//! container's blob versions, each read at exactly its version (Get Blob with `versionid`).
//! Read-only: the view is a [`BlobReader`] and nothing else.
//!
//! The versions come from List Blobs with `include=metadata,versions,deletedwithversions`
//! ([`super::azure_list`]). Kopia's reading of them: a version's time is its `Kopiamtime`, else
//! Last-Modified; an entry with `HasVersionsOnly` is a delete marker whose version ID (an RFC
//! 3339 time) is when the blob went away (azure_pit.go getOlderThan, isAzureDeleteMarker).
//! [`view_at`](crate::storage::point_in_time::view_at) then picks as for s3 and gcs.

use chrono::{DateTime, SecondsFormat, Utc};

use super::azure_list::{Container, Include, ListedBlob};
use crate::error::{Error, Result};
use crate::storage::point_in_time::{read_version_range, ChosenVersions, ObjectVersion};
use crate::storage::{BlobMetadata, BlobReader};

/// The blob Kopia looks for when it checks that the container keeps versions
/// (maybePointInTimeStore).
const FORMAT_BLOB: &str = "kopia.repository";

/// The view of a container at `at`.
#[derive(Debug)]
pub struct AzurePointInTime {
    container: Container,
    at: DateTime<Utc>,
    chosen: ChosenVersions,
}

/// The versions of one listing as the view's rule sees them, newest first within a blob (Azure
/// lists them oldest first; versions written in the same second keep that order reversed), or
/// the name of a listed blob that has no version ID: a container that keeps no versions.
fn versions_of(
    listed: Vec<(String, ListedBlob)>,
) -> std::result::Result<Vec<ObjectVersion>, String> {
    let mut versions = Vec::with_capacity(listed.len());
    for (id, blob) in listed.into_iter().rev() {
        let Some(version) = blob.version.clone() else {
            return Err(blob.name);
        };
        let mut timestamp = blob.timestamp();
        if blob.versions_only {
            // Kopia hides the blob once either the marker's time or its version's is past.
            if let Ok(gone) = DateTime::parse_from_rfc3339(&version) {
                timestamp = timestamp.max(gone.with_timezone(&Utc));
            }
        }
        versions.push(ObjectVersion {
            id,
            version,
            length: blob.length,
            timestamp,
            deleted: blob.versions_only,
            latest: blob.current,
        });
    }
    Ok(versions)
}

impl AzurePointInTime {
    pub fn new(container: Container, at: DateTime<Utc>) -> Self {
        AzurePointInTime {
            container,
            at,
            chosen: ChosenVersions::default(),
        }
    }

    /// The moment as messages show it.
    pub fn moment(&self) -> String {
        self.at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    /// Refuses a container that keeps no versions, where a view of the past would silently be
    /// the present: as Kopia, the versions of the format blob tell (a listed blob without a
    /// version ID).
    pub fn require_versioned_container(&self, container: &str) -> Result<()> {
        let listed = self.container.list(FORMAT_BLOB, Include::Versions)?;
        match versions_of(listed) {
            Ok(_) => Ok(()),
            Err(blob) => Err(Error::InvalidStorageConfig {
                kind: "azureBlob".to_string(),
                reason: format!(
                    "pointInTime {} needs blob versioning, and container {container} of {} keeps \
                     no blob versions ({blob} has no version ID; enable versioning, or connect \
                     without --point-in-time)",
                    self.moment(),
                    self.container.describe()
                ),
            }),
        }
    }

    fn versions(&self, prefix: &str) -> Result<Vec<ObjectVersion>> {
        let listed = self.container.list(prefix, Include::Versions)?;
        versions_of(listed).map_err(|blob| Error::StorageRequest {
            storage: self.describe(),
            operation: format!("list versions {prefix:?}"),
            reason: format!("{blob} has no version ID"),
        })
    }

    /// The version of `id` the view shows, or [`Error::BlobNotFound`].
    fn chosen(&self, id: &str) -> Result<ObjectVersion> {
        super::object::object_name("", id, self.container.describe())?;
        let chosen = self.chosen.of(id, self.at, || self.versions(id))?;
        chosen.ok_or_else(|| Error::BlobNotFound {
            blob_id: id.to_string(),
            storage: self.describe(),
        })
    }
}

impl BlobReader for AzurePointInTime {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        let version = self.chosen(id)?;
        if version.length == 0 {
            return Ok(Vec::new());
        }
        self.container.read_version(id, &version.version, None)
    }

    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let version = self.chosen(id)?;
        read_version_range(id, &version, offset, length, |range| {
            self.container
                .read_version(id, &version.version, Some(range))
        })
    }

    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        Ok(self.chosen.list(self.versions(prefix)?, self.at))
    }

    fn describe(&self) -> String {
        format!("{} as of {}", self.container.describe(), self.moment())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::point_in_time::view_at;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn listed(id: &str, version: Option<&str>, modified: &str) -> (String, ListedBlob) {
        (
            id.to_string(),
            ListedBlob {
                name: format!("p/{id}"),
                length: 5,
                last_modified: at(modified),
                mtime: None,
                version: version.map(str::to_string),
                current: false,
                versions_only: false,
            },
        )
    }

    #[test]
    fn delete_markers_and_same_second_versions_read_as_kopia_reads_them() {
        let mut current = listed(
            "a",
            Some("2026-12-01T10:00:00.7000000Z"),
            "2026-12-01T10:00:00Z",
        );
        current.1.current = true;
        let mut marker = listed(
            "b",
            Some("2026-12-01T11:00:00.5000000Z"),
            "2026-12-01T11:00:00Z",
        );
        marker.1.versions_only = true;
        let listing = vec![
            // Oldest first, as Azure lists: two versions of a in the same second.
            listed(
                "a",
                Some("2026-12-01T10:00:00.1000000Z"),
                "2026-12-01T10:00:00Z",
            ),
            current,
            listed(
                "b",
                Some("2026-12-01T09:00:00.0000000Z"),
                "2026-12-01T09:00:00Z",
            ),
            marker,
        ];
        let versions = versions_of(listing).unwrap();
        let before_delete = view_at(versions.clone(), at("2026-12-01T11:00:00Z"));
        let chosen: Vec<(&str, &str)> = before_delete
            .iter()
            .map(|v| (v.id.as_str(), v.version.as_str()))
            .collect();
        // b was deleted at 11:00:00.5: still there at 11:00:00, gone a second later.
        assert_eq!(
            chosen,
            [
                ("a", "2026-12-01T10:00:00.7000000Z"),
                ("b", "2026-12-01T09:00:00.0000000Z")
            ]
        );
        let after = view_at(versions, at("2026-12-01T11:00:01Z"));
        assert_eq!(after.len(), 1, "{after:?}");
    }

    #[test]
    fn a_blob_without_a_version_id_means_no_versioning() {
        let listing = vec![listed("kopia.repository", None, "2026-12-01T10:00:00Z")];
        assert_eq!(versions_of(listing).unwrap_err(), "p/kopia.repository");
    }
}
