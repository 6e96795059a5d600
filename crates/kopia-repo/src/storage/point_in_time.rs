//! Point-in-time views of versioned object stores (`pointInTime` in the `storage.config` of
//! s3, gcs and azureBlob): the blobs as they were at one moment, read-only. Kopia's rule
//! (repo/blob/s3/s3_pit.go, `newestAtUnlessDeleted`): of a blob's versions, the newest one
//! written at or before the point in time is the blob; when that one is a delete marker, or
//! there is none, the blob did not exist then. This module holds the rule and the config
//! value; listing and reading versions is each backend's.

use chrono::{DateTime, Utc};
use serde::Deserialize;

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
}
