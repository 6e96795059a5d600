//! The format blob `kopia.repository`: its clear JSON envelope, the password-encrypted
//! repository config inside it, and the checks Kopia makes before using a repository.
//! Key derivation and the AES-GCM envelope live in `crypto::kdf`; this module only shapes data.

use serde::{Deserialize, Serialize};

use crate::crypto::kdf;
use crate::crypto::{encryption, hashing};
use crate::{DecodeError, Error, Result};

/// Blob ID of the format blob.
pub const FORMAT_BLOB_ID: &str = "kopia.repository";
/// The only format-blob encryption Kopia knows (note the underscore).
pub const FORMAT_BLOB_ENCRYPTION: &str = "AES256_GCM";
/// Required features Kopia 0.23 understands (repo/open.go).
pub const SUPPORTED_FEATURES: &[&str] = &["index-v1", "index-v2"];

/// The clear JSON of `kopia.repository`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FormatBlob {
    #[serde(default)]
    pub tool: String,
    #[serde(default)]
    pub build_version: String,
    #[serde(default)]
    pub build_info: String,
    #[serde(rename = "uniqueID", with = "base64_bytes")]
    pub unique_id: Vec<u8>,
    #[serde(default)]
    pub key_algo: String,
    #[serde(default)]
    pub encryption: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "base64_bytes")]
    pub encrypted_block_format: Vec<u8>,
}

impl std::fmt::Debug for FormatBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FormatBlob")
            .field("build_version", &self.build_version)
            .field("key_algo", &self.key_algo)
            .field("encryption", &self.encryption)
            .finish_non_exhaustive()
    }
}

/// Epoch manager parameters. Kopia writes these keys in PascalCase; durations are nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EpochParameters {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub epoch_refresh_frequency: i64,
    #[serde(default)]
    pub full_checkpoint_frequency: i64,
    #[serde(default)]
    pub cleanup_safety_margin: i64,
    #[serde(default)]
    pub min_epoch_duration: i64,
    #[serde(default)]
    pub epoch_advance_on_count_threshold: i64,
    #[serde(default)]
    pub epoch_advance_on_total_size_bytes_threshold: i64,
    #[serde(default)]
    pub delete_parallelism: i64,
}

impl EpochParameters {
    /// What current Kopia writes for new repositories (internal/epoch/epoch_manager.go).
    pub fn kopia_defaults() -> Self {
        const MINUTE: i64 = 60_000_000_000;
        EpochParameters {
            enabled: true,
            epoch_refresh_frequency: 20 * MINUTE,
            full_checkpoint_frequency: 7,
            cleanup_safety_margin: 4 * 60 * MINUTE,
            min_epoch_duration: 24 * 60 * MINUTE,
            epoch_advance_on_count_threshold: 20,
            epoch_advance_on_total_size_bytes_threshold: 10 << 20,
            delete_parallelism: 4,
        }
    }
}

/// A feature a repository requires of its clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequiredFeature {
    pub feature: String,
    #[serde(default)]
    pub if_not_understood: IfNotUnderstood,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IfNotUnderstood {
    #[serde(default)]
    pub warn: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub upgrade_to_version: String,
}

/// The decrypted repository config (`{"format": …}` inside `encryptedBlockFormat`).
/// Field order and omission rules follow Kopia's Go structs so that a config we write reads
/// the same in Kopia.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RepositoryConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hash: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub encryption: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ecc: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ecc_overhead_percent: i64,
    #[serde(
        rename = "secret",
        default,
        skip_serializing_if = "Vec::is_empty",
        with = "base64_bytes"
    )]
    pub hmac_secret: Vec<u8>,
    #[serde(default, skip_serializing_if = "Vec::is_empty", with = "base64_bytes")]
    pub master_key: Vec<u8>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_pack_size: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub index_version: i64,
    #[serde(default = "disabled_epochs")]
    pub epoch_parameters: EpochParameters,
    #[serde(default)]
    pub enable_password_change: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub splitter: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrade_lock: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_features: Vec<RequiredFeature>,
}

impl std::fmt::Debug for RepositoryConfig {
    // Keys are secrets: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RepositoryConfig")
            .field("hash", &self.hash)
            .field("encryption", &self.encryption)
            .field("version", &self.version)
            .field("index_version", &self.index_version)
            .field("epoch_parameters", &self.epoch_parameters)
            .finish_non_exhaustive()
    }
}

impl Drop for RepositoryConfig {
    // The keys of every content: wiped when the config goes.
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.master_key.zeroize();
        self.hmac_secret.zeroize();
    }
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn disabled_epochs() -> EpochParameters {
    EpochParameters {
        enabled: false,
        epoch_refresh_frequency: 0,
        full_checkpoint_frequency: 0,
        cleanup_safety_margin: 0,
        min_epoch_duration: 0,
        epoch_advance_on_count_threshold: 0,
        epoch_advance_on_total_size_bytes_threshold: 0,
        delete_parallelism: 0,
    }
}

#[derive(Serialize, Deserialize)]
struct RepositoryConfigEnvelope {
    format: RepositoryConfig,
}

impl RepositoryConfig {
    /// Index format after Kopia's defaulting (0 means the legacy version 1).
    pub fn effective_index_version(&self) -> u8 {
        if self.index_version == 0 {
            1
        } else {
            self.index_version as u8
        }
    }

    /// Refuses what Kopia itself would refuse, and what we cannot handle (ECC), naming it.
    pub fn validate(&self) -> Result<()> {
        if !(1..=3).contains(&self.version) {
            return Err(Error::Unsupported(format!(
                "repository format version {} (supported: 1 to 3)",
                self.version
            )));
        }
        if !(0..=2).contains(&self.index_version) {
            return Err(Error::Unsupported(format!(
                "index version {}",
                self.index_version
            )));
        }
        if !self.ecc.is_empty() && self.ecc_overhead_percent > 0 {
            return Err(Error::Unsupported(format!(
                "error correction '{}' ({}% overhead)",
                self.ecc, self.ecc_overhead_percent
            )));
        }
        if !hashing::HASH_ALGORITHMS.contains(&self.hash.as_str()) {
            return Err(Error::Unsupported(format!(
                "hash algorithm '{}'",
                self.hash
            )));
        }
        if !encryption::ENCRYPTION_ALGORITHMS.contains(&self.encryption.as_str()) {
            return Err(Error::Unsupported(format!(
                "encryption algorithm '{}'",
                self.encryption
            )));
        }
        for required in &self.required_features {
            if !SUPPORTED_FEATURES.contains(&required.feature.as_str())
                && !required.if_not_understood.warn
            {
                let mut what = format!("required feature '{}'", required.feature);
                if !required.if_not_understood.message.is_empty() {
                    what.push_str(&format!(" ({})", required.if_not_understood.message));
                }
                return Err(Error::Unsupported(what));
            }
        }
        Ok(())
    }

    /// Whether a writer must stay away: an upgrade is in progress or about to start.
    pub fn upgrade_in_progress(&self) -> bool {
        self.upgrade_lock.is_some()
    }
}

impl FormatBlob {
    /// Parses the clear JSON of `kopia.repository`.
    pub fn parse(bytes: &[u8]) -> Result<Self, DecodeError> {
        let blob: FormatBlob = serde_json::from_slice(bytes)
            .map_err(|e| DecodeError::new(format!("invalid format blob JSON: {e}")))?;
        if blob.unique_id.is_empty() {
            return Err(DecodeError::new("format blob has no uniqueID"));
        }
        Ok(blob)
    }

    /// Serializes the way Kopia does: two-space indentation and a trailing newline.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = serde_json::to_vec_pretty(self).expect("format blob serializes");
        out.push(b'\n');
        out
    }

    /// Derives the format key from the password (the slow step: scrypt or PBKDF2).
    pub fn derive_format_key(&self, password: &str) -> Result<[u8; 32]> {
        kdf::derive_format_key(&self.key_algo, password, &self.unique_id)
    }

    /// Decrypts and parses the repository config with an already derived format key.
    pub fn decrypt_config(&self, format_key: &[u8]) -> Result<RepositoryConfig> {
        if self.encryption != FORMAT_BLOB_ENCRYPTION {
            return Err(Error::Unsupported(format!(
                "format blob encryption '{}'",
                self.encryption
            )));
        }
        if self.encrypted_block_format.is_empty() {
            return Err(Error::corrupt_blob(
                FORMAT_BLOB_ID,
                "no encryptedBlockFormat (unencrypted repositories are not supported)",
            ));
        }
        let plaintext =
            kdf::decrypt_format_block(format_key, &self.unique_id, &self.encrypted_block_format)?;
        let envelope: RepositoryConfigEnvelope =
            serde_json::from_slice(&plaintext).map_err(|e| {
                Error::corrupt_blob(FORMAT_BLOB_ID, format!("invalid repository config: {e}"))
            })?;
        Ok(envelope.format)
    }

    /// Encrypts `config` into this blob with `format_key` (used when creating repositories).
    pub fn encrypt_config(&mut self, format_key: &[u8], config: &RepositoryConfig) {
        let plaintext = serde_json::to_vec(&RepositoryConfigEnvelope {
            format: config.clone(),
        })
        .expect("repository config serializes");
        self.encrypted_block_format =
            kdf::encrypt_format_block(format_key, &self.unique_id, &plaintext);
    }
}

/// Go encodes `[]byte` as standard base64 with padding; old blobs may contain line breaks.
pub(crate) mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text: Option<String> = Option::deserialize(d)?;
        let Some(text) = text else {
            return Ok(Vec::new());
        };
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The real `kopia.repository` of the format guide §12.6 (created by Kopia, password test123).
    pub(crate) const REAL_FORMAT_BLOB: &str = r#"{
  "tool": "https://github.com/kopia/kopia",
  "buildVersion": "v0.22.4-0.20260106004250-12e59e388d4a",
  "buildInfo": "2026-01-06T00:42:50Z-12e59e388d4adf2f1b62e332e2f31e05b19d0abd",
  "uniqueID": "tSlExrPCG1fbqPMmRdsna4OHyQ2UNYakf//HsT+1wAk=",
  "keyAlgo": "scrypt-65536-8-1",
  "encryption": "AES256_GCM",
  "encryptedBlockFormat": "CB2wHdKrMC8gG4iweG01AiGNkMkreOO+ER6QCP0cAcIcIoema3RL3Ra8P1yc9QARPFo1E6qSdIqDKpCtYCHDrBwE/YXmTG4/wPUcCeL2yG2ocmL6wy2kZauQzLSPigidZc4HmkzvdU5EIF/u5b+s5gEnMqwdZYlnzYParYZG3BbFBoLn65CPo420IoIU5Qexa0ydlZJg0GclAzKs4kSnvZRrdp7ydg56tg2USLxJHSFzcUmQpy2tMLjO5Nea4ZirNz8d7VybdcpMg+hOMbBIEADoT3zH/1stOVmhjqjn++RJUdDYbFrinttFAu/opYJIjtFM/C7BiFfpDfX4/FC4b2Ljhe3gAWud/9lQDIt9LD/R+UrLZTRmjFJ1amPC0P+2Hj5+7bqbl6G3KIamXvec+r+s2RuObsV9Rqj9+QdxheW30x2LSiHazOzpzG2XDa+acIodTzg/jeanK3wIcC+grb+9OZuijZYML+b4OSgLSbAc8C+5dvQcvQsBcNoUkfcXb56lSft9Pr5sF9msmqDBZ2LttCGHL7Vi12HmoWe0g5SIMsG7348Qw8x2l1ZWxreE7u900yu7Z8v0A1H/6BUYNJQxMNVt+CWU7Md3tQQq1vxd+McVhHjptAegKnL5htbyU7Dlrfbbv0R/AvEy64Om87pofR6hr3vBcmFNvNUyCWv2mGvJBcLfc4gVqItPDrHWeYYrzMrhbdpfrGdKfRzgQIyU5GLYP0iPqv/0vlYDuzvm+hSPGpN389X48EM2v6LhpsTfybx1DwSAY1PYczIcQdWv7WlKaLV2sqH6/eofZA=="
}
"#;

    #[test]
    fn decrypts_real_kopia_format_blob() {
        let blob = FormatBlob::parse(REAL_FORMAT_BLOB.as_bytes()).unwrap();
        assert_eq!(
            hex::encode(&blob.unique_id),
            "b52944c6b3c21b57dba8f32645db276b8387c90d943586a47fffc7b13fb5c009"
        );
        let key = blob.derive_format_key("test123").unwrap();
        let config = blob.decrypt_config(&key).unwrap();
        assert_eq!(config.hash, "BLAKE2B-256-128");
        assert_eq!(config.encryption, "AES256-GCM-HMAC-SHA256");
        assert_eq!(config.version, 3);
        assert_eq!(config.effective_index_version(), 2);
        assert_eq!(config.epoch_parameters, EpochParameters::kopia_defaults());
        assert!(config.enable_password_change);
        assert_eq!(
            hex::encode(&config.master_key),
            "a1cf9cedea32c24db3bcc704b9bcbe45e01914b857d151b64e48c974b63cbfd5"
        );
        assert_eq!(
            hex::encode(&config.hmac_secret),
            "f2b28d68687c94a79a1e31e78c1ba5eef9286a6f54ffd66a75aba33664c51500"
        );
        config.validate().unwrap();
    }

    #[test]
    fn wrong_password_is_reported_as_such() {
        let blob = FormatBlob::parse(REAL_FORMAT_BLOB.as_bytes()).unwrap();
        let key = blob.derive_format_key("not-the-password").unwrap();
        assert!(matches!(
            blob.decrypt_config(&key),
            Err(Error::InvalidPassword)
        ));
    }

    #[test]
    fn config_round_trips_through_our_encryption() {
        let blob = FormatBlob::parse(REAL_FORMAT_BLOB.as_bytes()).unwrap();
        let key = blob.derive_format_key("test123").unwrap();
        let config = blob.decrypt_config(&key).unwrap();
        let mut rewritten = blob.clone();
        rewritten.encrypt_config(&key, &config);
        let reparsed = FormatBlob::parse(&rewritten.to_bytes()).unwrap();
        let again = reparsed.decrypt_config(&key).unwrap();
        assert_eq!(
            serde_json::to_string(&again).unwrap(),
            serde_json::to_string(&config).unwrap()
        );
    }

    #[test]
    fn serialized_config_matches_kopia_byte_for_byte() {
        // §2.4: the exact plaintext Kopia produced for this repository.
        let expected = r#"{"format":{"hash":"BLAKE2B-256-128","encryption":"AES256-GCM-HMAC-SHA256","secret":"8rKNaGh8lKeaHjHnjBul7vkoam9U/9ZqdaujNmTFFQA=","masterKey":"oc+c7eoywk2zvMcEuby+ReAZFLhX0VG2TkjJdLY8v9U=","version":3,"maxPackSize":20971520,"indexVersion":2,"epochParameters":{"Enabled":true,"EpochRefreshFrequency":1200000000000,"FullCheckpointFrequency":7,"CleanupSafetyMargin":14400000000000,"MinEpochDuration":86400000000000,"EpochAdvanceOnCountThreshold":20,"EpochAdvanceOnTotalSizeBytesThreshold":10485760,"DeleteParallelism":4},"enablePasswordChange":true,"splitter":"DYNAMIC-4M-BUZHASH"}}"#;
        let envelope: RepositoryConfigEnvelope = serde_json::from_str(expected).unwrap();
        assert_eq!(serde_json::to_string(&envelope).unwrap(), expected);
    }

    fn valid_config() -> RepositoryConfig {
        let blob = FormatBlob::parse(REAL_FORMAT_BLOB.as_bytes()).unwrap();
        let key = blob.derive_format_key("test123").unwrap();
        blob.decrypt_config(&key).unwrap()
    }

    #[test]
    fn refuses_what_kopia_refuses_naming_it() {
        let unsupported = |mutate: fn(&mut RepositoryConfig)| {
            let mut config = valid_config();
            mutate(&mut config);
            match config.validate() {
                Err(Error::Unsupported(what)) => what,
                other => panic!("expected Unsupported, got {other:?}"),
            }
        };
        assert!(unsupported(|c| c.version = 4).contains("version 4"));
        assert!(unsupported(|c| c.index_version = 3).contains("index version 3"));
        assert!(unsupported(|c| c.hash = "MD5".into()).contains("'MD5'"));
        assert!(unsupported(|c| c.encryption = "NONE".into()).contains("'NONE'"));
        assert!(unsupported(|c| {
            c.ecc = "REED-SOLOMON-CRC32".into();
            c.ecc_overhead_percent = 10;
        })
        .contains("REED-SOLOMON-CRC32"));
        assert!(unsupported(|c| c.required_features = vec![RequiredFeature {
            feature: "future-thing".into(),
            if_not_understood: IfNotUnderstood::default(),
        }])
        .contains("future-thing"));
    }

    #[test]
    fn tolerates_warn_only_features_and_line_broken_base64() {
        let mut config = valid_config();
        config.required_features = vec![RequiredFeature {
            feature: "future-thing".into(),
            if_not_understood: IfNotUnderstood {
                warn: true,
                ..Default::default()
            },
        }];
        config.validate().unwrap();

        let broken = REAL_FORMAT_BLOB.replace("tSlExrPCG1fbqPMm", "tSlExrPC\\nG1fbqPMm");
        let blob = FormatBlob::parse(broken.as_bytes()).unwrap();
        assert_eq!(blob.unique_id.len(), 32);
    }

    #[test]
    fn malformed_format_blob_is_a_decode_error() {
        assert!(FormatBlob::parse(b"not json").is_err());
        assert!(FormatBlob::parse(b"{}").is_err());
        assert!(FormatBlob::parse(&REAL_FORMAT_BLOB.as_bytes()[..100]).is_err());
    }
}
