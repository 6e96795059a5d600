//! Kopia's maintenance state, read natively: the `kopia.maintenance` blob (when each cycle is
//! next due and the history of every task's runs) and the `type=maintenance` parameters
//! manifest (owner, cycle intervals). See /work/shared/docs/kopia-health-signals.md §3 and
//! Kopia's repo/maintenance/maintenance_schedule.go and maintenance_params.go.
//!
//! The blob is raw (not a content): a 12-byte random nonce, then AES-256-GCM ciphertext and tag
//! with the associated data `maintenance`, under the key HKDF derives for the purpose
//! `maintenance schedule` ([`Repository::derive_key`]).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::Aes256Gcm;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Deserializer};

use crate::crypto::encryption::NONCE_LEN;
use crate::go_json::go_time;
use crate::repository::Repository;
use crate::{Error, Result};

/// Blob ID of the maintenance schedule.
pub const SCHEDULE_BLOB_ID: &str = "kopia.maintenance";
/// `type` label of the maintenance parameters manifest.
pub const PARAMS_MANIFEST_TYPE: &str = "maintenance";
/// HKDF purpose of the schedule key, and its length.
const SCHEDULE_KEY_PURPOSE: &str = "maintenance schedule";
const SCHEDULE_KEY_LENGTH: usize = 32;
/// Associated data of the schedule's AEAD.
const SCHEDULE_AAD: &[u8] = b"maintenance";

/// A maintenance task as Kopia names it (repo/maintenance/maintenance_run.go `TaskType`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Task {
    SnapshotGc,
    QuickDeleteBlobs,
    FullDeleteBlobs,
    QuickRewriteContents,
    FullRewriteContents,
    FullDropDeletedContent,
    IndexCompaction,
    ExtendBlobRetentionTime,
    CleanupLogs,
    AdvanceEpoch,
    CompactSingleEpoch,
    GenerateEpochRangeIndex,
    CleanupEpochMarkers,
    DeleteSupersededEpochIndexes,
    /// A task a newer Kopia added: kept by name so its failures still count.
    Other(String),
}

const TASK_NAMES: &[(Task, &str)] = &[
    (Task::SnapshotGc, "snapshot-gc"),
    (Task::QuickDeleteBlobs, "quick-delete-blobs"),
    (Task::FullDeleteBlobs, "full-delete-blobs"),
    (Task::QuickRewriteContents, "quick-rewrite-contents"),
    (Task::FullRewriteContents, "full-rewrite-contents"),
    (Task::FullDropDeletedContent, "full-drop-deleted-content"),
    (Task::IndexCompaction, "index-compaction"),
    (Task::ExtendBlobRetentionTime, "extend-blob-retention-time"),
    (Task::CleanupLogs, "cleanup-logs"),
    (Task::AdvanceEpoch, "advance-epoch"),
    (Task::CompactSingleEpoch, "compact-single-epoch"),
    (Task::GenerateEpochRangeIndex, "generate-epoch-range-index"),
    (Task::CleanupEpochMarkers, "cleanup-epoch-markers"),
    (
        Task::DeleteSupersededEpochIndexes,
        "delete-superseded-epoch-indexes",
    ),
];

impl Task {
    /// Kopia's spelling, e.g. `snapshot-gc`.
    pub fn as_str(&self) -> &str {
        match self {
            Task::Other(name) => name,
            known => TASK_NAMES
                .iter()
                .find(|(task, _)| task == known)
                .map(|(_, name)| *name)
                .expect("every known task has a name"),
        }
    }
}

impl FromStr for Task {
    type Err = std::convert::Infallible;

    fn from_str(name: &str) -> std::result::Result<Self, Self::Err> {
        Ok(TASK_NAMES
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(task, _)| task.clone())
            .unwrap_or_else(|| Task::Other(name.to_string())))
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Task {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(name.parse().expect("task parsing is infallible"))
    }
}

/// One run of a task (Kopia's `RunInfo`). `success` and `error` are omitted when empty.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RunInfo {
    #[serde(with = "go_time")]
    pub start: DateTime<Utc>,
    #[serde(with = "go_time")]
    pub end: DateTime<Utc>,
    #[serde(default)]
    pub success: bool,
    #[serde(default)]
    pub error: String,
}

/// The decrypted `kopia.maintenance` blob. A missing blob is the empty schedule, as in Kopia.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Schedule {
    /// `None` when Kopia's zero time (never scheduled).
    #[serde(
        rename = "nextFullMaintenance",
        default,
        deserialize_with = "non_zero_time"
    )]
    pub next_full: Option<DateTime<Utc>>,
    #[serde(
        rename = "nextQuickMaintenance",
        default,
        deserialize_with = "non_zero_time"
    )]
    pub next_quick: Option<DateTime<Utc>>,
    /// Runs per task, newest first (at most 50 each).
    #[serde(default, deserialize_with = "null_as_empty")]
    pub runs: BTreeMap<Task, Vec<RunInfo>>,
}

impl Schedule {
    /// The newest run of `task`.
    pub fn latest_run(&self, task: &Task) -> Option<&RunInfo> {
        self.runs.get(task).and_then(|runs| runs.first())
    }

    /// The newest successful run of `task`.
    pub fn latest_success(&self, task: &Task) -> Option<&RunInfo> {
        self.runs
            .get(task)
            .and_then(|runs| runs.iter().find(|run| run.success))
    }
}

/// Go writes `time.Time{}` as `0001-01-01T00:00:00Z`.
fn non_zero_time<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<DateTime<Utc>>, D::Error> {
    let time = go_time::deserialize(d)?;
    Ok((time.timestamp() > GO_ZERO_TIME_SECONDS).then_some(time))
}

/// Seconds from 1970 to Go's zero time, 0001-01-01T00:00:00Z.
const GO_ZERO_TIME_SECONDS: i64 = -62_135_596_800;

/// A Go nil map is written as `null`.
fn null_as_empty<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<BTreeMap<Task, Vec<RunInfo>>, D::Error> {
    Ok(Option::deserialize(d)?.unwrap_or_default())
}

/// Decrypts and parses the schedule blob's bytes with the schedule key.
pub fn decrypt_schedule(key: &[u8], blob: &[u8]) -> Result<Schedule> {
    let corrupt = |reason: String| Error::corrupt_blob(SCHEDULE_BLOB_ID, reason);
    if blob.len() < NONCE_LEN {
        return Err(corrupt(format!(
            "{} bytes, shorter than its {NONCE_LEN}-byte nonce",
            blob.len()
        )));
    }
    let cipher = Aes256Gcm::new_from_slice(key)
        .map_err(|_| corrupt(format!("the schedule key is {} bytes, not 32", key.len())))?;
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    let json = cipher
        .decrypt(
            nonce.into(),
            Payload {
                msg: sealed,
                aad: SCHEDULE_AAD,
            },
        )
        .map_err(|_| corrupt("does not decrypt with the repository's schedule key".into()))?;
    serde_json::from_slice(&json).map_err(|e| corrupt(format!("schedule JSON: {e}")))
}

/// Reads the repository's schedule; the empty schedule when Kopia never wrote one.
pub fn read_schedule(repository: &Repository) -> Result<Schedule> {
    let blob = match repository.storage().get_blob(SCHEDULE_BLOB_ID) {
        Ok(blob) => blob,
        Err(Error::BlobNotFound { .. }) => return Ok(Schedule::default()),
        Err(e) => return Err(e),
    };
    let key = repository.derive_key(SCHEDULE_KEY_PURPOSE, SCHEDULE_KEY_LENGTH)?;
    decrypt_schedule(&key, &blob)
}

/// One maintenance cycle's parameters (Kopia's `CycleParams`; the interval in nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct CycleParams {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default, rename = "interval", deserialize_with = "nanoseconds")]
    pub interval: Duration,
}

/// The payload of the `type=maintenance` manifest (the parts that tell of health).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Params {
    /// `user@host` that runs maintenance; empty when nobody does.
    #[serde(default)]
    pub owner: String,
    #[serde(rename = "quick")]
    pub quick: CycleParams,
    #[serde(rename = "full")]
    pub full: CycleParams,
}

impl Params {
    /// Parses the manifest payload; `manifest_id` names it in errors.
    pub fn parse(manifest_id: &str, payload: &str) -> Result<Params> {
        serde_json::from_str(payload).map_err(|e| {
            Error::InvalidManifest(format!("maintenance parameters {manifest_id}: {e}"))
        })
    }
}

fn nanoseconds<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Duration, D::Error> {
    Ok(Duration::nanoseconds(i64::deserialize(d)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aes_gcm::aead::AeadInPlace;

    fn seal(key: &[u8; 32], nonce: [u8; NONCE_LEN], json: &str) -> Vec<u8> {
        let cipher = Aes256Gcm::new_from_slice(key).unwrap();
        let mut sealed = json.as_bytes().to_vec();
        cipher
            .encrypt_in_place((&nonce).into(), SCHEDULE_AAD, &mut sealed)
            .unwrap();
        let mut blob = nonce.to_vec();
        blob.extend(sealed);
        blob
    }

    const SCHEDULE_JSON: &str = r#"{"nextFullMaintenance":"2026-12-02T08:00:00.123456789Z",
        "nextQuickMaintenance":"0001-01-01T00:00:00Z",
        "runs":{"snapshot-gc":[
            {"start":"2026-12-01T08:00:00Z","end":"2026-12-01T08:00:01Z","error":"unable to find manifest"},
            {"start":"2026-11-30T08:00:00Z","end":"2026-11-30T08:00:01Z","success":true,
             "extra":[{"kind":"snapshotGCStats","data":{"x":1}}]}],
          "future-task":[{"start":"2026-12-01T08:00:00Z","end":"2026-12-01T08:00:02Z","success":true}]}}"#;

    #[test]
    fn schedule_decrypts_and_parses_kopias_fields() {
        let key = [7u8; 32];
        let blob = seal(&key, [1; NONCE_LEN], SCHEDULE_JSON);
        let schedule = decrypt_schedule(&key, &blob).unwrap();
        assert_eq!(
            schedule.next_full.unwrap(),
            go_time::parse("2026-12-02T08:00:00.123456789Z").unwrap()
        );
        assert_eq!(schedule.next_quick, None, "Go's zero time is no time");
        let latest = schedule.latest_run(&Task::SnapshotGc).unwrap();
        assert!(!latest.success);
        assert_eq!(latest.error, "unable to find manifest");
        let success = schedule.latest_success(&Task::SnapshotGc).unwrap();
        assert_eq!(
            success.start,
            go_time::parse("2026-11-30T08:00:00Z").unwrap()
        );
        let other = Task::Other("future-task".into());
        assert!(schedule.latest_run(&other).unwrap().success);
        assert_eq!(schedule.latest_run(&Task::CleanupLogs), None);
    }

    #[test]
    fn wrong_key_short_blob_and_bad_json_name_the_blob() {
        let key = [7u8; 32];
        let blob = seal(&key, [1; NONCE_LEN], SCHEDULE_JSON);
        let mut other = key;
        other[0] ^= 1;
        for (key, blob, needle) in [
            (other, blob.clone(), "does not decrypt"),
            (key, blob[..5].to_vec(), "shorter"),
            (
                key,
                seal(&key, [2; NONCE_LEN], "{\"runs\":7}"),
                "schedule JSON",
            ),
        ] {
            let error = decrypt_schedule(&key, &blob).unwrap_err().to_string();
            assert!(
                error.contains(SCHEDULE_BLOB_ID) && error.contains(needle),
                "{error}"
            );
        }
        // Kopia's AAD is part of the authentication: a blob sealed without it is refused.
        let cipher = Aes256Gcm::new_from_slice(&key).unwrap();
        let mut no_aad = vec![3u8; NONCE_LEN];
        no_aad.extend(
            cipher
                .encrypt((&[3u8; NONCE_LEN]).into(), b"{}".as_slice())
                .unwrap(),
        );
        assert!(decrypt_schedule(&key, &no_aad).is_err());
    }

    #[test]
    fn empty_runs_and_null_map() {
        let key = [9u8; 32];
        let blob = seal(
            &key,
            [0; NONCE_LEN],
            r#"{"nextFullMaintenance":"0001-01-01T00:00:00Z","nextQuickMaintenance":"0001-01-01T00:00:00Z","runs":null}"#,
        );
        assert_eq!(decrypt_schedule(&key, &blob).unwrap(), Schedule::default());
    }

    #[test]
    fn params_read_nanosecond_intervals() {
        let params = Params::parse(
            "m1",
            r#"{"owner":"alice@laptop","quick":{"enabled":true,"interval":3600000000000},
                "full":{"enabled":false,"interval":86400000000000},"logRetention":{}}"#,
        )
        .unwrap();
        assert_eq!(params.owner, "alice@laptop");
        assert_eq!(params.quick.interval, Duration::hours(1));
        assert!(params.quick.enabled && !params.full.enabled);
        assert_eq!(params.full.interval, Duration::hours(24));
        let error = Params::parse("m2", r#"{"owner":3}"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("m2"), "{error}");
    }

    #[test]
    fn task_names_round_trip() {
        for (task, name) in TASK_NAMES {
            assert_eq!(name.parse::<Task>().unwrap(), *task);
            assert_eq!(task.as_str(), *name);
        }
        assert_eq!(Task::Other("x".into()).to_string(), "x");
    }
}
