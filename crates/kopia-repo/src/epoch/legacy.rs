//! Legacy (v0) index blob management (§8.1), for repositories whose epoch manager is disabled:
//! the live `n` index blobs are all listed ones minus those superseded by a valid compaction
//! log. Pure: the caller lists `n` and `m`, decrypts the `m` logs and passes their JSON here.

use std::collections::HashSet;

use serde::Deserialize;

use super::IndexBlobSet;
use crate::error::DecodeError;
use crate::storage::BlobMetadata;

/// Prefix of v0 index blobs (also of the poison blob written when upgrading to epochs).
pub const LEGACY_INDEX_PREFIX: &str = "n";
/// Prefix of v0 compaction logs (encrypted JSON, not manifests).
pub const LEGACY_COMPACTION_LOG_PREFIX: &str = "m";

/// One compaction log: `outputs` replace `inputs`, once all outputs exist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompactionLog {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
}

#[derive(Deserialize)]
struct CompactionLogJson {
    #[serde(rename = "inputMetadata", default)]
    inputs: Option<Vec<BlobMetadataJson>>,
    #[serde(rename = "outputMetadata", default)]
    outputs: Option<Vec<BlobMetadataJson>>,
}

/// Kopia's blob metadata JSON (`id`, `length`, `timestamp`); only the ID matters here.
#[derive(Deserialize)]
struct BlobMetadataJson {
    #[serde(default)]
    id: String,
}

/// Parses the decrypted JSON of an `m` blob:
/// `{"inputMetadata":[{"id":…,…}],"outputMetadata":[…]}`.
pub fn parse_compaction_log(json: &[u8]) -> Result<CompactionLog, DecodeError> {
    let invalid = |e: serde_json::Error| DecodeError::new(format!("invalid compaction log: {e}"));
    // Go's decoder stops after the first JSON value, treats `null` as "nothing" and refuses
    // anything but an object (serde alone would also take an array).
    let mut values = serde_json::Deserializer::from_slice(json).into_iter::<serde_json::Value>();
    let log = match values.next() {
        Some(Ok(serde_json::Value::Null)) => return Ok(CompactionLog::default()),
        Some(Ok(value @ serde_json::Value::Object(_))) => {
            serde_json::from_value::<CompactionLogJson>(value).map_err(invalid)?
        }
        Some(Ok(_)) => {
            return Err(DecodeError::new(
                "invalid compaction log: not a JSON object",
            ))
        }
        Some(Err(e)) => return Err(invalid(e)),
        None => return Err(DecodeError::new("empty compaction log")),
    };
    let ids = |entries: Option<Vec<BlobMetadataJson>>| {
        entries
            .unwrap_or_default()
            .into_iter()
            .map(|entry| entry.id)
            .collect()
    };
    Ok(CompactionLog {
        inputs: ids(log.inputs),
        outputs: ids(log.outputs),
    })
}

/// The live v0 index blobs: every listed `n` blob except the inputs of compaction logs whose
/// outputs are all listed. The watermark is always absent in v0 and the write epoch 0.
pub fn legacy_index_blob_set(
    n_blobs: &[BlobMetadata],
    compaction_logs: &[CompactionLog],
) -> IndexBlobSet {
    let listed: HashSet<&str> = n_blobs.iter().map(|b| b.id.as_str()).collect();
    let superseded: HashSet<&str> = compaction_logs
        .iter()
        .filter(|log| log.outputs.iter().all(|id| listed.contains(id.as_str())))
        .flat_map(|log| log.inputs.iter().map(String::as_str))
        .collect();
    IndexBlobSet {
        blobs: n_blobs
            .iter()
            .filter(|b| !superseded.contains(b.id.as_str()))
            .cloned()
            .collect(),
        deletion_watermark: None,
        write_epoch: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epoch::tests::blob;

    fn log(inputs: &[&str], outputs: &[&str]) -> CompactionLog {
        CompactionLog {
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn live(n: &[&str], logs: &[CompactionLog]) -> Vec<String> {
        let blobs: Vec<BlobMetadata> = n.iter().map(|id| blob(id)).collect();
        legacy_index_blob_set(&blobs, logs)
            .blobs
            .into_iter()
            .map(|b| b.id)
            .collect()
    }

    #[test]
    fn parses_kopia_compaction_log() {
        let json = br#"{"inputMetadata":[{"id":"n1-s01","length":10,"timestamp":"2023-03-16T20:46:59.70714Z"},
            {"id":"n2-s02","length":11,"timestamp":"2023-03-16T20:46:59Z"}],
            "outputMetadata":[{"id":"n3","length":20,"timestamp":"2023-03-16T20:47:00Z"}]}"#;
        let parsed = parse_compaction_log(json).unwrap();
        assert_eq!(parsed, log(&["n1-s01", "n2-s02"], &["n3"]));
        assert_eq!(
            parse_compaction_log(br#"{"inputMetadata":null,"outputMetadata":[]}"#).unwrap(),
            CompactionLog::default()
        );
        assert_eq!(
            parse_compaction_log(b"{}").unwrap(),
            CompactionLog::default()
        );
        assert_eq!(
            parse_compaction_log(b"null").unwrap(),
            CompactionLog::default()
        );
    }

    #[test]
    fn corrupt_compaction_log_is_an_error() {
        for bad in [
            &b""[..],
            b"{",
            b"[]",
            b"{\"inputMetadata\":[{\"id\":5}]}",
            b"\xff\xfe",
            b"7",
        ] {
            assert!(parse_compaction_log(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn valid_log_removes_its_inputs() {
        let logs = [log(&["n1", "n2"], &["n3"])];
        assert_eq!(live(&["n1", "n2", "n3", "n4"], &logs), vec!["n3", "n4"]);
    }

    #[test]
    fn log_with_a_missing_output_is_ignored() {
        let logs = [log(&["n1", "n2"], &["n3", "n5"])];
        assert_eq!(live(&["n1", "n2", "n3"], &logs), vec!["n1", "n2", "n3"]);
    }

    #[test]
    fn chained_compactions_and_absent_inputs() {
        let logs = [log(&["n1", "n2"], &["n3"]), log(&["n3", "n9"], &["n4"])];
        assert_eq!(live(&["n1", "n2", "n3", "n4"], &logs), vec!["n4"]);
        // A log without outputs is trivially valid (Kopia's rule: all outputs present).
        assert_eq!(live(&["n1", "n2"], &[log(&["n1"], &[])]), vec!["n2"]);
        assert_eq!(live(&["n1"], &[]), vec!["n1"]);
    }
}
