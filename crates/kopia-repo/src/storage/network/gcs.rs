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
//! Object mtimes: Kopia stores `Kopia-Mtime` user metadata when `repository sync-to --times`
//! copies blobs (cli/command_repository_sync.go) and prefers it to the object's creation
//! (gcs_storage.go getBlobMeta). OpenDAL 0.57's GCS listing carries no user metadata
//! (opendal-service-gcs lister.rs), so [`GcsStorage`] lists through the JSON API itself
//! ([`super::gcs_json`], one `objects.list` per 1,000 objects as before) and leaves reads and
//! writes to OpenDAL.

use std::sync::Arc;

use base64::Engine;
use serde::Deserialize;

use super::gcs_json::{google_signer, JsonApi};
use super::gcs_pit::GcsPointInTime;
use super::object::ObjectStorage;
use super::operator;
use crate::client::Password;
use crate::error::{Error, Result};
use crate::storage::factory::Access;
use crate::storage::{BlobMetadata, BlobReader, BlobWriter, Storage};

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
    // Listings (and the point-in-time view) go through the JSON API, signed as OpenDAL signs.
    let signer = match &emulator {
        Some(_) => None,
        None => Some(google_signer(key.as_ref(), config.scope()).map_err(in_bucket)?),
    };
    let api = emulator.as_deref().unwrap_or(DEFAULT_ENDPOINT);
    if let Some(at) = config.point_in_time {
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
    let json = JsonApi::new(api, &config.bucket, signer).map_err(in_bucket)?;
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
    let storage = Arc::new(GcsStorage {
        objects: ObjectStorage::new(operator, &config.prefix, &[], name),
        json,
        prefix: config.prefix,
    });
    Ok(match (access, config.read_only) {
        (Access::ReadWrite, false) => Storage::read_write(storage),
        _ => Storage::read_only(storage),
    })
}

/// A live GCS storage: reads and writes through OpenDAL, listings through the JSON API so
/// that they carry Kopia's `Kopia-Mtime`.
#[derive(Debug)]
pub struct GcsStorage {
    objects: ObjectStorage,
    json: JsonApi,
    prefix: String,
}

impl BlobReader for GcsStorage {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        self.objects.get_blob(id)
    }

    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        self.objects.get_blob_range(id, offset, length)
    }

    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        let listed = self
            .json
            .list(&format!("{}{prefix}", self.prefix), false)
            .map_err(|f| f.into_error(self.describe(), &format!("list {prefix:?}"), None))?;
        let mut blobs: Vec<BlobMetadata> = listed
            .iter()
            .filter_map(|object| object.blob(&self.prefix))
            .collect();
        blobs.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(blobs)
    }

    fn describe(&self) -> String {
        self.objects.describe()
    }
}

impl BlobWriter for GcsStorage {
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()> {
        self.objects.put_blob(id, data)
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        self.objects.delete_blob(id)
    }
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
    fn listings_carry_kopias_mtimes_sorted_by_id() {
        let (api, served) = super::super::gcs_json::serve(vec![
            r#"{"items":[{"name":"p/q1","size":"7","timeCreated":"2026-01-02T00:00:00Z",
                "metadata":{"Kopia-Mtime":"1767265200000000000"}},
               {"name":"p/kopia.repository","size":"3","timeCreated":"2026-01-02T00:00:00Z"},
               {"name":"p/d/e","size":"1","timeCreated":"2026-01-02T00:00:00Z"}]}"#,
        ]);
        let memory = operator(opendal::services::Memory::default(), None).unwrap();
        let storage = GcsStorage {
            objects: ObjectStorage::new(memory, "p/", &[], "gcs://b/p/".to_string()),
            json: JsonApi::new(&api, "b", None).unwrap(),
            prefix: "p/".to_string(),
        };
        let listed: Vec<(String, u64, String)> = storage
            .list_blobs("")
            .unwrap()
            .into_iter()
            .map(|b| (b.id, b.length, b.timestamp.to_rfc3339()))
            .collect();
        assert_eq!(
            listed,
            [
                (
                    "kopia.repository".into(),
                    3,
                    "2026-01-02T00:00:00+00:00".into()
                ),
                ("q1".into(), 7, "2026-01-01T11:00:00+00:00".into()),
            ]
        );
        let head = &served.join().unwrap()[0];
        assert!(
            head.starts_with("GET /storage/v1/b/b/o?prefix=p%2F HTTP/1.1"),
            "{head}"
        );
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
