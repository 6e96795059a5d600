//! Kopia's `gcs` storage (repo/blob/gcs): a Google Cloud Storage bucket through its JSON API.
//! Reads the keys Kopia writes in `storage.config` and ignores the others; the objects are laid
//! out as [`ObjectStorage`] says (`<prefix><blob ID>`, gcs_storage.go getObjectNameString).
//!
//! Credentials are taken where Kopia takes them (gcs_storage.go New): the inline service-account
//! JSON (`credentials`), else the file it names (`credentialsFile`), else Google's Application
//! Default Credentials (`GOOGLE_APPLICATION_CREDENTIALS`, gcloud's well-known file, the VM's
//! metadata server). Like Google's Go client, `STORAGE_EMULATOR_HOST` points every request at
//! an emulator and sends them unauthenticated.
//!
//! Object mtimes: Kopia stores `Kopia-Mtime` user metadata only when `repository sync-to`
//! copies blobs (cli/command_repository_sync.go) and prefers it to the server's time.
//! OpenDAL 0.57's GCS listing does not carry user metadata (opendal-service-gcs lister.rs), so
//! listed timestamps are the server's `updated`; a stat per object on every refresh to find
//! the rare synced blob would cost a request per blob, so it is not done.

use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;

use super::gcs_pit::{google_signer, GcsPointInTime};
use super::object::ObjectStorage;
use super::operator;
use crate::client::Password;
use crate::error::{Error, Result};
use crate::storage::factory::Access;
use crate::storage::Storage;

const KIND: &str = "gcs";
const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// Google's Go client reads the emulator's address from here (cloud.google.com/go/storage).
pub const EMULATOR_ENV: &str = "STORAGE_EMULATOR_HOST";
/// Kopia's scopes: full control, or read-only when `readOnly` is set.
const SCOPE_FULL_CONTROL: &str = "https://www.googleapis.com/auth/devstorage.full_control";
const SCOPE_READ_ONLY: &str = "https://www.googleapis.com/auth/devstorage.read_only";

/// `storage.config` of a `gcs` storage (Kopia's gcs.Options).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GcsConfig {
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub credentials_file: String,
    /// The service-account key Kopia embeds (`--embed-credentials`): raw JSON in the config.
    #[serde(default, deserialize_with = "inline_json")]
    pub credentials: Option<Password>,
    #[serde(default)]
    pub read_only: bool,
    /// Kopia's point-in-time view (see [`open`]).
    #[serde(
        default,
        deserialize_with = "crate::storage::point_in_time::deserialize"
    )]
    pub point_in_time: Option<chrono::DateTime<chrono::Utc>>,
}

/// Go's json.RawMessage: the JSON value itself, kept as its text (a string holding the JSON is
/// taken as that text).
fn inline_json<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Password>, D::Error> {
    Ok(
        match Option::<serde_json::Value>::deserialize(deserializer)? {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(text)) if text.is_empty() => None,
            Some(serde_json::Value::String(text)) => Some(Password::new(text)),
            Some(value) => Some(Password::new(value.to_string())),
        },
    )
}

impl GcsConfig {
    pub fn from_json(config: &serde_json::Value) -> std::result::Result<Self, String> {
        let parsed = GcsConfig::deserialize(config).map_err(|e| e.to_string())?;
        if parsed.bucket.is_empty() {
            return Err("no bucket".to_string());
        }
        Ok(parsed)
    }

    /// What messages call this store: Kopia's `gcs://bucket/prefix`, plus the emulator when
    /// one answers instead of Google.
    pub fn describe(&self, emulator: Option<&str>) -> String {
        let name = format!("gcs://{}/{}", self.bucket, self.prefix);
        match emulator {
            Some(host) => format!("{name} at {host}"),
            None => name,
        }
    }

    fn scope(&self) -> &'static str {
        if self.read_only {
            SCOPE_READ_ONLY
        } else {
            SCOPE_FULL_CONTROL
        }
    }
}

/// The emulator's base URL from `STORAGE_EMULATOR_HOST` (`host:port`, or a URL), as Google's
/// client reads it; `None` when unset or empty.
pub fn emulator_endpoint(value: Option<&str>) -> Option<String> {
    let host = value?.trim().trim_end_matches('/');
    if host.is_empty() {
        None
    } else if host.contains("://") {
        Some(host.to_string())
    } else {
        Some(format!("http://{host}"))
    }
}

/// The service-account key JSON, checked as Kopia's client checks it (option.ServiceAccount):
/// an object of `"type": "service_account"`. `source` names where it came from.
fn service_account_key(json: &str, source: &str) -> std::result::Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(json)
        .map_err(|e| format!("the credentials in {source} are not JSON: {e}"))?;
    match value.get("type").and_then(|t| t.as_str()) {
        Some("service_account") => Ok(()),
        Some(other) => Err(format!(
            "the credentials in {source} are of type {other:?}; Kopia takes service-account keys only"
        )),
        None => Err(format!(
            "the credentials in {source} are not a service-account key (no \"type\")"
        )),
    }
}

/// The service-account key the config names (inline, else the file), checked; `None` for
/// Application Default Credentials.
fn service_account(config: &GcsConfig) -> std::result::Result<Option<Password>, String> {
    match (&config.credentials, config.credentials_file.as_str()) {
        (Some(inline), _) => {
            service_account_key(inline.expose(), "the config's credentials")?;
            Ok(Some(Password::new(inline.expose())))
        }
        (None, "") => Ok(None),
        (None, path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read credentialsFile {path}: {e}"))?;
            service_account_key(&text, path)?;
            Ok(Some(Password::new(text)))
        }
    }
}

/// Opens an existing GCS repository location with the capability `access` allows; a
/// `readOnly` config is read-only whatever the connection asks. A `pointInTime` config opens
/// the read-only view of the bucket's past ([`GcsPointInTime`]), refused for a bucket without
/// versioning.
pub fn open(config: &serde_json::Value, access: Access) -> Result<Storage> {
    let invalid = |reason: String| Error::InvalidStorageConfig {
        kind: KIND.to_string(),
        reason,
    };
    let config = GcsConfig::from_json(config).map_err(invalid)?;
    let emulator = emulator_endpoint(std::env::var(EMULATOR_ENV).ok().as_deref());
    let name = config.describe(emulator.as_deref());
    let in_bucket = |reason: String| invalid(format!("{name}: {reason}"));
    // Google's client sends nothing but plain requests to an emulator.
    let key = match &emulator {
        Some(_) => None,
        None => service_account(&config).map_err(in_bucket)?,
    };
    if let Some(at) = config.point_in_time {
        let signer = match &emulator {
            Some(_) => None,
            None => Some(google_signer(key.as_ref(), config.scope()).map_err(in_bucket)?),
        };
        let api = emulator.as_deref().unwrap_or(DEFAULT_ENDPOINT);
        let view = GcsPointInTime::new(
            api,
            &config.bucket,
            &config.prefix,
            at,
            name.clone(),
            signer,
        )
        .map_err(in_bucket)?;
        view.require_versioned_bucket()?;
        return Ok(Storage::read_only(Arc::new(view)));
    }
    let mut builder = opendal::services::Gcs::default()
        .root("/")
        .bucket(&config.bucket)
        .scope(config.scope());
    match &emulator {
        Some(endpoint) => builder = builder.endpoint(endpoint).skip_signature(),
        None => {
            builder = builder.endpoint(DEFAULT_ENDPOINT);
            if let Some(key) = key {
                let encoded =
                    Password::new(base64::engine::general_purpose::STANDARD.encode(key.expose()));
                // An explicit key stands alone: no fallback to the environment's account.
                builder = builder
                    .credential(encoded.expose())
                    .disable_config_load()
                    .disable_vm_metadata();
            }
        }
    }
    let operator = operator(builder, None).map_err(|e| in_bucket(e.to_string()))?;
    let storage = Arc::new(ObjectStorage::new(operator, &config.prefix, &[], name));
    Ok(match (access, config.read_only) {
        (Access::ReadWrite, false) => Storage::read_write(storage),
        _ => Storage::read_only(storage),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kopia_keys_and_ignores_others() {
        let config = GcsConfig::from_json(&serde_json::json!({
            "bucket": "backups", "prefix": "host1-", "credentialsFile": "/etc/key.json",
            "credentials": {"type": "service_account", "private_key": "-----BEGIN hunter2"},
            "readOnly": true, "maxDownloadSpeedBytesPerSecond": 0, "futureKey": [1]
        }))
        .unwrap();
        assert_eq!(config.bucket, "backups");
        assert_eq!(config.prefix, "host1-");
        assert_eq!(config.credentials_file, "/etc/key.json");
        let inline: serde_json::Value =
            serde_json::from_str(config.credentials.as_ref().unwrap().expose()).unwrap();
        assert_eq!(inline["private_key"], "-----BEGIN hunter2");
        assert!(config.read_only);
        assert_eq!(config.scope(), SCOPE_READ_ONLY);
        assert!(!format!("{config:?}").contains("hunter2"));
        assert_eq!(config.describe(None), "gcs://backups/host1-");
        assert_eq!(
            config.describe(Some("http://127.0.0.1:4443")),
            "gcs://backups/host1- at http://127.0.0.1:4443"
        );

        let minimal = GcsConfig::from_json(&serde_json::json!({"bucket": "b"})).unwrap();
        assert!(minimal.credentials.is_none() && !minimal.read_only);
        assert_eq!(minimal.scope(), SCOPE_FULL_CONTROL);
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"bucket": ""}),
            serde_json::json!({"bucket": "b", "readOnly": "yes"}),
        ] {
            assert!(GcsConfig::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_emulator_is_found_as_googles_client_finds_it() {
        assert_eq!(emulator_endpoint(None), None);
        assert_eq!(emulator_endpoint(Some("")), None);
        assert_eq!(
            emulator_endpoint(Some("127.0.0.1:4443")).as_deref(),
            Some("http://127.0.0.1:4443")
        );
        assert_eq!(
            emulator_endpoint(Some("https://gcs.local:8443/")).as_deref(),
            Some("https://gcs.local:8443")
        );
    }

    #[test]
    fn credentials_must_be_a_service_account_key() {
        assert!(service_account_key(r#"{"type":"service_account"}"#, "x").is_ok());
        let wrong = service_account_key(r#"{"type":"authorized_user"}"#, "/k.json").unwrap_err();
        assert!(
            wrong.contains("/k.json") && wrong.contains("authorized_user"),
            "{wrong}"
        );
        assert!(service_account_key("{}", "x").is_err());
        assert!(service_account_key("not json", "x")
            .unwrap_err()
            .contains("not JSON"));
    }

    #[test]
    fn refused_configs_name_the_bucket() {
        // These run without STORAGE_EMULATOR_HOST in the test environment's view of the
        // config: the checks happen before any request.
        let err = open(&serde_json::json!({"prefix": "p"}), Access::ReadOnly).unwrap_err();
        assert!(matches!(err, Error::InvalidStorageConfig { ref kind, .. } if kind == "gcs"));
        if std::env::var_os(EMULATOR_ENV).is_none() {
            let missing = open(
                &serde_json::json!({"bucket": "b", "credentialsFile": "/nonexistent/key.json"}),
                Access::ReadOnly,
            )
            .unwrap_err()
            .to_string();
            assert!(
                missing.contains("gcs://b/") && missing.contains("/nonexistent/key.json"),
                "{missing}"
            );
        }
    }

    #[test]
    fn read_only_configs_open_read_only() {
        let key = serde_json::json!({"type": "service_account", "client_email": "a@b",
            "private_key": "unused before the first request"});
        let writable = open(
            &serde_json::json!({"bucket": "b", "credentials": key}),
            Access::ReadWrite,
        )
        .unwrap();
        assert!(!writable.is_read_only());
        let read_only = open(
            &serde_json::json!({"bucket": "b", "credentials": key, "readOnly": true}),
            Access::ReadWrite,
        )
        .unwrap();
        assert!(read_only.is_read_only());
        assert!(read_only
            .writer()
            .unwrap_err()
            .to_string()
            .contains("gcs://b/"));
    }
}
