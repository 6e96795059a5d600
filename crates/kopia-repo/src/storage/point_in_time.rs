//! Point-in-time views of versioned object stores (`pointInTime` in the `storage.config` of
//! s3, gcs and azureBlob): the blobs as they were at one moment, read-only. Kopia's rule
//! (repo/blob/s3/s3_pit.go, `newestAtUnlessDeleted`): of a blob's versions, the newest one
//! written at or before the point in time is the blob; when that one is a delete marker, or
//! there is none, the blob did not exist then. This module holds the rule, the config value
//! and what a view remembers of its choices; listing and reading versions is each backend's.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::storage::BlobMetadata;

/// The moment a view shows, from `pointInTime`. Go writes RFC 3339 (with nanoseconds when it
/// has them); its zero time, and no value at all, mean "no view" as in Kopia
/// (`maybePointInTimeStore`: `pit == nil || pit.IsZero()`).
pub fn parse(value: Option<&serde_json::Value>) -> Result<Option<DateTime<Utc>>, String> {
    let text = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::String(text)) => text,
        Some(other) => return Err(format!("pointInTime {other} is not an RFC 3339 time")),
    };
    let time = DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("pointInTime {text:?} is not an RFC 3339 time: {e}"))?
        .with_timezone(&Utc);
    Ok((time != go_zero_time()).then_some(time))
}

/// [`parse`] as a serde field deserializer, for the backends' config structs.
pub fn deserialize<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<DateTime<Utc>>, D::Error> {
    let value = Option::<serde_json::Value>::deserialize(deserializer)?;
    parse(value.as_ref()).map_err(serde::de::Error::custom)
}

/// Go's `time.Time{}`: January 1 of year 1, UTC.
fn go_zero_time() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("0001-01-01T00:00:00Z")
        .expect("a valid constant")
        .with_timezone(&Utc)
}

/// One version of one object as a versioned listing reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    /// The blob ID (the object name without the storage prefix).
    pub id: String,
    /// The store's version ID, to read exactly this version.
    pub version: String,
    pub length: u64,
    pub timestamp: DateTime<Utc>,
    /// A delete marker: from this version on (until a newer one), the object is gone.
    pub deleted: bool,
    /// The store says this is the object's newest version (breaks ties between versions
    /// written in the same clock tick).
    pub latest: bool,
}

/// The blobs as they were at `at`: for each ID, its newest version not after `at`, unless
/// that version is a delete marker. The result is sorted by ID.
pub fn view_at(mut versions: Vec<ObjectVersion>, at: DateTime<Utc>) -> Vec<ObjectVersion> {
    // Newest first within each ID (the order Kopia's rule assumes the store lists them in;
    // OpenDAL hands versions and delete markers over as two separate lists).
    versions.sort_by(|a, b| {
        a.id.cmp(&b.id)
            .then(b.timestamp.cmp(&a.timestamp))
            .then(b.latest.cmp(&a.latest))
    });
    let mut view: Vec<ObjectVersion> = Vec::new();
    let mut previous: Option<String> = None;
    for version in versions {
        if previous.as_deref() == Some(version.id.as_str()) || version.timestamp > at {
            continue;
        }
        previous = Some(version.id.clone());
        if !version.deleted {
            view.push(version);
        }
    }
    view
}

/// What a view has chosen so far, by blob ID (`None`: absent at the moment). The past does not
/// change, so each blob's versions are listed at most once, and a listing of the view answers
/// the reads that follow it without listing again.
#[derive(Debug, Default)]
pub struct ChosenVersions(Mutex<HashMap<String, Option<ObjectVersion>>>);

impl ChosenVersions {
    /// The version of `id` at `at`: remembered, or chosen from `list_versions` (the versions
    /// under the prefix `id`; other IDs' are ignored) the first time.
    pub fn of(
        &self,
        id: &str,
        at: DateTime<Utc>,
        list_versions: impl FnOnce() -> Result<Vec<ObjectVersion>>,
    ) -> Result<Option<ObjectVersion>> {
        if let Some(known) = self.lock().get(id) {
            return Ok(known.clone());
        }
        let versions = list_versions()?
            .into_iter()
            .filter(|v| v.id == id)
            .collect();
        let chosen = view_at(versions, at).pop();
        self.lock().insert(id.to_string(), chosen.clone());
        Ok(chosen)
    }

    /// The blobs of the view at `at` made of `versions`, remembering each one's version.
    pub fn list(&self, versions: Vec<ObjectVersion>, at: DateTime<Utc>) -> Vec<BlobMetadata> {
        let view = view_at(versions, at);
        let blobs = view
            .iter()
            .map(|v| BlobMetadata {
                id: v.id.clone(),
                length: v.length,
                timestamp: v.timestamp,
            })
            .collect();
        let mut chosen = self.lock();
        for version in view {
            chosen.insert(version.id.clone(), Some(version));
        }
        blobs
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Option<ObjectVersion>>> {
        // The map only ever gains correct entries: a panic elsewhere leaves it usable.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `length` bytes at `offset` of a chosen `version` of blob `id`, fetched by `read` (given the
/// range `[offset, end)`). The listing told the version's size, so a range past it is known
/// short without a request; an answer shorter than asked is [`Error::TruncatedBlob`] too.
pub fn read_version_range(
    id: &str,
    version: &ObjectVersion,
    offset: u64,
    length: u64,
    read: impl FnOnce((u64, u64)) -> Result<Vec<u8>>,
) -> Result<Vec<u8>> {
    let end = offset.saturating_add(length);
    let truncated = |actual| Error::TruncatedBlob {
        blob_id: id.to_string(),
        offset,
        wanted: length,
        actual,
    };
    if version.length < end {
        return Err(truncated(version.length));
    }
    if length == 0 {
        return Ok(Vec::new());
    }
    let mut data = read((offset, end))?;
    if (data.len() as u64) < length {
        return Err(truncated(offset + data.len() as u64));
    }
    data.truncate(length as usize);
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn version(id: &str, version: &str, time: &str, deleted: bool) -> ObjectVersion {
        ObjectVersion {
            id: id.to_string(),
            version: version.to_string(),
            length: if deleted { 0 } else { 10 },
            timestamp: at(time),
            deleted,
            latest: false,
        }
    }

    #[test]
    fn parses_go_times_and_treats_the_zero_time_as_none() {
        let json = |v: serde_json::Value| parse(Some(&v));
        assert_eq!(
            json(serde_json::json!("2026-12-01T15:20:00Z")).unwrap(),
            Some(at("2026-12-01T15:20:00Z"))
        );
        assert_eq!(
            json(serde_json::json!("2026-12-01T16:20:00.123456789+01:00")).unwrap(),
            Some(at("2026-12-01T15:20:00.123456789Z"))
        );
        assert_eq!(
            json(serde_json::json!("0001-01-01T00:00:00Z")).unwrap(),
            None
        );
        assert_eq!(json(serde_json::Value::Null).unwrap(), None);
        assert_eq!(parse(None).unwrap(), None);
        let bad = json(serde_json::json!("yesterday")).unwrap_err();
        assert!(
            bad.contains("\"yesterday\"") && bad.contains("RFC 3339"),
            "{bad}"
        );
        assert!(json(serde_json::json!(17)).is_err());
    }

    #[test]
    fn the_newest_version_not_after_the_moment_wins() {
        let versions = vec![
            version("a", "a1", "2026-01-01T10:00:00Z", false),
            version("a", "a2", "2026-01-01T12:00:00Z", false),
            version("a", "a3", "2026-01-01T14:00:00Z", false),
            // Deleted before the moment: absent.
            version("b", "b1", "2026-01-01T09:00:00Z", false),
            version("b", "b2", "2026-01-01T11:00:00Z", true),
            // Deleted after the moment: still there.
            version("c", "c1", "2026-01-01T09:00:00Z", false),
            version("c", "c2", "2026-01-01T13:00:00Z", true),
            // Written after the moment: not yet there.
            version("d", "d1", "2026-01-01T12:00:01Z", false),
            // Deleted, then written again before the moment.
            version("e", "e1", "2026-01-01T08:00:00Z", false),
            version("e", "e2", "2026-01-01T09:00:00Z", true),
            version("e", "e3", "2026-01-01T10:00:00Z", false),
        ];
        let view = view_at(versions, at("2026-01-01T12:00:00Z"));
        let chosen: Vec<(&str, &str)> = view
            .iter()
            .map(|v| (v.id.as_str(), v.version.as_str()))
            .collect();
        // Exactly at the moment counts (Kopia: `!Timestamp.After(pointInTime)`).
        assert_eq!(chosen, vec![("a", "a2"), ("c", "c1"), ("e", "e3")]);
    }

    #[test]
    fn ties_go_to_the_latest_version_whatever_the_listing_order() {
        let mut marker = version("a", "gone", "2026-01-01T10:00:00Z", true);
        marker.latest = true;
        let written = version("a", "a1", "2026-01-01T10:00:00Z", false);
        let moment = at("2026-01-01T10:00:00Z");
        assert!(view_at(vec![written.clone(), marker.clone()], moment).is_empty());
        assert!(view_at(vec![marker, written], moment).is_empty());
    }

    /// Each blob's versions are listed once; a listing of the view answers later reads; a
    /// blob absent at the moment stays absent without listing again.
    #[test]
    fn a_view_remembers_its_choices() {
        let chosen = ChosenVersions::default();
        let moment = at("2026-01-01T12:30:00Z");
        let listed = std::cell::Cell::new(0);
        let list = |versions: Vec<ObjectVersion>| {
            listed.set(listed.get() + 1);
            Ok(versions)
        };
        let a = vec![
            version("a", "a1", "2026-01-01T10:00:00Z", false),
            version("a", "a2", "2026-01-01T13:00:00Z", false),
            // Another ID under the same prefix: not a's.
            version("ab", "ab1", "2026-01-01T10:00:00Z", false),
        ];
        for _ in 0..2 {
            let got = chosen.of("a", moment, || list(a.clone())).unwrap();
            assert_eq!(got.map(|v| v.version), Some("a1".to_string()));
        }
        let late = vec![version("late", "l1", "2026-01-01T13:00:00Z", false)];
        for _ in 0..2 {
            assert_eq!(
                chosen.of("late", moment, || list(late.clone())).unwrap(),
                None
            );
        }
        assert_eq!(listed.get(), 2);

        let blobs = chosen.list(
            vec![version("b", "b1", "2026-01-01T11:00:00Z", false)],
            moment,
        );
        assert_eq!(blobs.len(), 1);
        assert_eq!((blobs[0].id.as_str(), blobs[0].length), ("b", 10));
        let got = chosen.of("b", moment, || panic!("listed already")).unwrap();
        assert_eq!(got.map(|v| v.version), Some("b1".to_string()));
    }

    #[test]
    fn ranges_past_the_listed_size_or_answered_short_are_truncated() {
        let v = version("a", "a1", "2026-01-01T10:00:00Z", false); // 10 bytes long
        let never = |_| -> Result<Vec<u8>> { panic!("no request expected") };
        let short = |err: Error| match err {
            Error::TruncatedBlob { actual, .. } => actual,
            other => panic!("expected TruncatedBlob, got {other}"),
        };
        assert_eq!(
            short(read_version_range("a", &v, 8, 4, never).unwrap_err()),
            10
        );
        assert!(read_version_range("a", &v, 10, 0, never)
            .unwrap()
            .is_empty());
        let answered = |bytes: usize| {
            move |(start, end): (u64, u64)| {
                assert_eq!((start, end), (2, 6));
                Ok(vec![7u8; bytes])
            }
        };
        assert_eq!(
            short(read_version_range("a", &v, 2, 4, answered(3)).unwrap_err()),
            5
        );
        assert_eq!(
            read_version_range("a", &v, 2, 4, answered(4)).unwrap(),
            [7; 4]
        );
        assert_eq!(
            read_version_range("a", &v, 2, 4, answered(9)).unwrap(),
            [7; 4]
        );
    }
}
