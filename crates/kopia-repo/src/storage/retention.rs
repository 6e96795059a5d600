//! `kopia.blobcfg` (§2.6, Kopia's repo/format/blobcfg_blob.go): the object-lock retention every
//! blob write of the repository must carry. We cannot set locks yet, so a repository with
//! retention is refused for writing before anything is written; reading is unaffected.

use serde::Deserialize;

use crate::error::DecodeError;

/// Blob holding the retention config (encrypted like the format blob's inner JSON).
pub const BLOBCFG_BLOB_ID: &str = "kopia.blobcfg";

/// The decrypted JSON of `kopia.blobcfg`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct BlobRetention {
    /// `GOVERNANCE` or `COMPLIANCE`; empty when retention is off.
    #[serde(rename = "retentionMode", default)]
    pub mode: String,
    /// Go's time.Duration: nanoseconds.
    #[serde(rename = "retentionPeriod", default)]
    pub period_nanoseconds: i64,
}

impl BlobRetention {
    pub fn parse(json: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(json)
            .map_err(|e| DecodeError::new(format!("invalid blob retention config: {e}")))
    }

    /// Kopia's IsRetentionEnabled: both a mode and a period.
    pub fn is_enabled(&self) -> bool {
        !self.mode.is_empty() && self.period_nanoseconds != 0
    }

    /// "COMPLIANCE for 30 days"-style text for messages.
    pub fn describe(&self) -> String {
        const DAY_NS: i64 = 24 * 3_600_000_000_000;
        let days = self.period_nanoseconds as f64 / DAY_NS as f64;
        format!("{} for {days} days", self.mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kopia_retention_configs() {
        let off = BlobRetention::parse(b"{}").unwrap();
        assert!(!off.is_enabled());
        let on = BlobRetention::parse(
            br#"{"retentionMode":"COMPLIANCE","retentionPeriod":2592000000000000}"#,
        )
        .unwrap();
        assert!(on.is_enabled());
        assert_eq!(on.describe(), "COMPLIANCE for 30 days");
        // A mode without a period (Kopia's Validate refuses it) locks nothing.
        let half = BlobRetention::parse(br#"{"retentionMode":"GOVERNANCE"}"#).unwrap();
        assert!(!half.is_enabled());
        assert!(BlobRetention::parse(b"[").is_err());
    }
}
