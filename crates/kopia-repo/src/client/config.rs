//! The parts of Kopia's `repository.config` (§10.1) needed to open a repository: the storage
//! (type and raw config, opened by [`crate::storage::factory`]), who we are, caching.
//! Unknown keys are ignored; server connections are refused with [`Error::Unsupported`].
//! Nothing is ever written back.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Deserialize;

use crate::content::writer::SessionOwner;
use crate::error::{Error, Result};
use crate::storage::factory::{self, Access, StorageConfig, StorageKind};
use crate::storage::filesystem::FilesystemConfig;
use crate::storage::{io_error, point_in_time, Storage};

/// What we use of one `repository.config`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The config file this came from (the key of its password, see `resolve_password`).
    pub config_path: PathBuf,
    pub storage: StorageConfig,
    pub hostname: String,
    pub username: String,
    pub description: Option<String>,
    pub readonly: bool,
    /// `caching.maxListCacheDuration`: how long Kopia trusts a cached index listing.
    pub max_list_cache_duration: Option<Duration>,
    /// `caching.cacheDirectory`, resolved against the config file's directory.
    pub cache_directory: Option<PathBuf>,
}

impl ClientConfig {
    /// Opens the storage this config points at, read-only when the connection is `readonly`
    /// (then nothing is written, not even a missing `.shards`).
    pub fn open_storage(&self) -> Result<Storage> {
        factory::open(&self.storage, self.access())
    }

    pub fn access(&self) -> Access {
        if self.is_read_only() {
            Access::ReadOnly
        } else {
            Access::ReadWrite
        }
    }

    /// Why nothing may be written through this connection, if so: a point-in-time view of
    /// the storage (Kopia opens its storage read-only then, repo/blob/s3/s3_pit.go), or a
    /// `readonly` connection.
    pub fn read_only_reason(&self) -> Option<ReadOnlyReason> {
        match self.point_in_time() {
            Some(at) => Some(ReadOnlyReason::PointInTime(at)),
            None => self.readonly.then_some(ReadOnlyReason::Connection),
        }
    }

    pub fn is_read_only(&self) -> bool {
        self.read_only_reason().is_some()
    }

    /// `pointInTime` of the storage types that have it in Kopia v0.23.1. A malformed value is
    /// none here: opening the storage refuses it, naming the key.
    fn point_in_time(&self) -> Option<DateTime<Utc>> {
        match self.storage.kind {
            StorageKind::S3 | StorageKind::Gcs | StorageKind::AzureBlob => {
                point_in_time::parse(self.storage.config.get("pointInTime"))
                    .ok()
                    .flatten()
            }
            _ => None,
        }
    }

    /// The `user@host` this connection writes as (Kopia's username and hostname overrides).
    pub fn session_owner(&self) -> SessionOwner {
        SessionOwner {
            username: self.username.clone(),
            hostname: self.hostname.clone(),
        }
    }
}

/// Why a connection is never written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOnlyReason {
    /// `kopia repository connect --readonly`.
    Connection,
    /// `pointInTime` in the storage config (`--point-in-time`): the storage as it was then.
    PointInTime(DateTime<Utc>),
}

impl fmt::Display for ReadOnlyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadOnlyReason::Connection => f.write_str("connected read-only"),
            ReadOnlyReason::PointInTime(at) => write!(
                f,
                "a read-only point-in-time view (pointInTime {})",
                at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
            ),
        }
    }
}

#[derive(Deserialize)]
struct ConfigJson {
    #[serde(rename = "apiServer", default)]
    api_server: Option<serde_json::Value>,
    #[serde(default)]
    storage: Option<StorageJson>,
    #[serde(default)]
    caching: Option<CachingJson>,
    #[serde(default)]
    hostname: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    readonly: bool,
}

#[derive(Deserialize)]
struct StorageJson {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    config: serde_json::Value,
}

#[derive(Deserialize)]
struct CachingJson {
    #[serde(rename = "cacheDirectory", default)]
    cache_directory: Option<String>,
    /// Float seconds.
    #[serde(rename = "maxListCacheDuration", default)]
    max_list_cache_duration: Option<f64>,
}

/// Reads and parses a config file. A missing file is [`Error::Config`] naming it.
/// `KOPIA_CACHE_DIRECTORY`, when absolute, overrides the cache directory as in Kopia.
pub fn load(path: &Path) -> Result<ClientConfig> {
    let bytes = std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::Config {
            path: path.to_path_buf(),
            reason: "file not found (not connected to a repository?)".to_string(),
        },
        _ => io_error(path, e),
    })?;
    let mut config = parse_config(&bytes, path)?;
    if let Some(cache_directory) = std::env::var_os("KOPIA_CACHE_DIRECTORY")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
    {
        config.cache_directory = Some(cache_directory);
    }
    Ok(config)
}

/// Parses the JSON of a config file found at `config_path` (used to name it in errors and to
/// resolve the relative cache directory).
pub fn parse_config(json: &[u8], config_path: &Path) -> Result<ClientConfig> {
    let config_error = |reason: String| Error::Config {
        path: config_path.to_path_buf(),
        reason,
    };
    let parsed: ConfigJson =
        first_json_value(json).map_err(|e| config_error(format!("invalid JSON: {e}")))?;

    if parsed.api_server.as_ref().is_some_and(|v| !v.is_null()) {
        return Err(Error::Unsupported(
            "repository server connections".to_string(),
        ));
    }
    let storage = parsed
        .storage
        .ok_or_else(|| config_error("no storage configured".to_string()))?;
    let storage = StorageConfig {
        kind: StorageKind::from_type(&storage.kind),
        config: storage.config,
    };
    // A broken filesystem config is found here, naming the file, so that discovery can skip
    // it; other backends check their keys when they are opened.
    if storage.kind == StorageKind::Filesystem {
        FilesystemConfig::from_json(&storage.config)
            .map_err(|e| config_error(format!("invalid filesystem storage config: {e}")))?;
    }

    let caching = parsed.caching;
    let max_list_cache_duration = caching
        .as_ref()
        .and_then(|c| c.max_list_cache_duration)
        .and_then(|seconds| Duration::try_from_secs_f64(seconds).ok())
        .filter(|d| !d.is_zero());
    let config_dir = config_path.parent().unwrap_or(Path::new(""));
    let cache_directory = caching
        .and_then(|c| c.cache_directory)
        .filter(|d| !d.is_empty())
        .map(|d| {
            let d = PathBuf::from(d);
            if d.is_absolute() {
                d
            } else {
                config_dir.join(d)
            }
        });

    Ok(ClientConfig {
        config_path: config_path.to_path_buf(),
        storage,
        hostname: parsed.hostname.unwrap_or_default(),
        username: parsed.username.unwrap_or_default(),
        description: parsed.description.filter(|d| !d.is_empty()),
        readonly: parsed.readonly,
        max_list_cache_duration,
        cache_directory,
    })
}

/// Go's decoder reads one JSON value and ignores what follows.
fn first_json_value<T: serde::de::DeserializeOwned>(json: &[u8]) -> std::result::Result<T, String> {
    match serde_json::Deserializer::from_slice(json)
        .into_iter::<T>()
        .next()
    {
        Some(Ok(value)) => Ok(value),
        Some(Err(e)) => Err(e.to_string()),
        None => Err("empty file".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sample of §10.1.
    const SAMPLE: &str = r#"{
  "storage": {
    "type": "filesystem",
    "config": {
      "path": "/srv/repo",
      "fileMode": 384,
      "dirMode": 448,
      "dirShards": null
    }
  },
  "caching": {
    "cacheDirectory": "../../.cache/kopia/0123456789abcdef",
    "maxCacheSize": 5242880000,
    "maxMetadataCacheSize": 5242880000,
    "maxListCacheDuration": 30
  },
  "hostname": "myhost",
  "username": "me",
  "description": "Repository in Filesystem: /srv/repo",
  "enableActions": false,
  "formatBlobCacheDuration": 900000000000
}"#;

    #[test]
    fn parses_the_guide_sample() {
        let path = Path::new("/home/me/.config/kopia/repository.config");
        let config = parse_config(SAMPLE.as_bytes(), path).unwrap();
        assert_eq!(
            config,
            ClientConfig {
                config_path: path.to_path_buf(),
                storage: StorageConfig {
                    kind: StorageKind::Filesystem,
                    config: serde_json::json!({
                        "path": "/srv/repo", "fileMode": 384, "dirMode": 448, "dirShards": null
                    }),
                },
                hostname: "myhost".to_string(),
                username: "me".to_string(),
                description: Some("Repository in Filesystem: /srv/repo".to_string()),
                readonly: false,
                max_list_cache_duration: Some(Duration::from_secs(30)),
                cache_directory: Some(PathBuf::from(
                    "/home/me/.config/kopia/../../.cache/kopia/0123456789abcdef"
                )),
            }
        );
        assert_eq!(
            config.storage.local_path(),
            Some(PathBuf::from("/srv/repo"))
        );
        assert_eq!(config.access(), Access::ReadWrite);
    }

    #[test]
    fn minimal_config_and_optional_fields() {
        let json = r#"{"storage":{"type":"filesystem","config":{"path":"/r","dirShards":[1,1]}},
            "caching":{"maxListCacheDuration":2.5},"readonly":true,"unknown":{"a":1}}"#;
        let config = parse_config(json.as_bytes(), Path::new("c.config")).unwrap();
        assert!(config.readonly);
        assert_eq!(config.access(), Access::ReadOnly);
        assert_eq!(
            config.storage.config["dirShards"],
            serde_json::json!([1, 1])
        );
        assert_eq!(
            config.max_list_cache_duration,
            Some(Duration::from_millis(2500))
        );
        assert_eq!(config.cache_directory, None);
        assert_eq!(config.description, None);
        assert_eq!(config.hostname, "");
    }

    #[test]
    fn refuses_servers_and_keeps_other_storages_raw() {
        let server = r#"{"apiServer":{"url":"https://host:51515","serverCertFingerprint":"ab"},"caching":{}}"#;
        match parse_config(server.as_bytes(), Path::new("x")).unwrap_err() {
            Error::Unsupported(what) => assert_eq!(what, "repository server connections"),
            other => panic!("unexpected {other:?}"),
        }
        let s3 = r#"{"storage":{"type":"s3","config":{"bucket":"b","prefix":"p-",
            "secretAccessKey":"s3cr3t","futureKey":[1]}}}"#;
        let config = parse_config(s3.as_bytes(), Path::new("x")).unwrap();
        assert_eq!(config.storage.kind, StorageKind::S3);
        assert_eq!(config.storage.config["prefix"], "p-");
        assert_eq!(config.storage.local_path(), None);
        assert!(!format!("{config:?}").contains("s3cr3t"));
        let unknown = r#"{"storage":{"type":"tape","config":{}}}"#;
        let config = parse_config(unknown.as_bytes(), Path::new("x")).unwrap();
        match config.open_storage().unwrap_err() {
            Error::UnsupportedStorage { kind, .. } => assert_eq!(kind, "tape"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_point_in_time_connection_is_read_only_and_says_why() {
        let connection = |storage: serde_json::Value, readonly: bool| {
            let json = serde_json::json!({"storage": storage, "readonly": readonly});
            parse_config(json.to_string().as_bytes(), Path::new("/c/pit.config")).unwrap()
        };
        let at = "2026-12-01T15:20:00Z";
        for kind in ["s3", "gcs", "azureBlob"] {
            let config = connection(
                serde_json::json!({"type": kind, "config": {"bucket": "b", "pointInTime": at}}),
                false,
            );
            assert_eq!(config.access(), Access::ReadOnly, "{kind}");
            let reason = config.read_only_reason().unwrap();
            let refusal = Error::ReadOnly {
                config: config.config_path.clone(),
                reason,
            };
            assert_eq!(
                refusal.to_string(),
                format!(
                    "repository /c/pit.config is a read-only point-in-time view \
                     (pointInTime {at}); not written"
                )
            );
        }
        // Go's zero time is no point in time; other types have no such key.
        let zero = serde_json::json!({"type": "s3",
            "config": {"bucket": "b", "pointInTime": "0001-01-01T00:00:00Z"}});
        assert_eq!(connection(zero.clone(), false).read_only_reason(), None);
        assert_eq!(
            connection(zero, true).read_only_reason(),
            Some(ReadOnlyReason::Connection)
        );
        let filesystem = serde_json::json!({"type": "filesystem",
            "config": {"path": "/r", "pointInTime": at}});
        assert!(!connection(filesystem, false).is_read_only());
        let readonly = Error::ReadOnly {
            config: PathBuf::from("/c/ro.config"),
            reason: ReadOnlyReason::Connection,
        };
        assert_eq!(
            readonly.to_string(),
            "repository /c/ro.config is connected read-only; not written"
        );
    }

    #[test]
    fn a_readonly_connection_opens_a_read_only_storage() {
        let dir = tempfile::tempdir().unwrap();
        let json = serde_json::json!({"storage": {"type": "filesystem",
            "config": {"path": dir.path()}}, "readonly": true});
        let config = parse_config(json.to_string().as_bytes(), Path::new("x")).unwrap();
        let storage = config.open_storage().unwrap();
        assert!(storage.is_read_only());
        assert!(matches!(
            storage.writer().unwrap_err(),
            Error::ReadOnlyStorage { .. }
        ));
        // No `.shards` was created in the empty directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn broken_configs_name_the_file() {
        for bad in [
            "",
            "{",
            "[]",
            r#"{"caching":{}}"#,
            r#"{"storage":{"type":"filesystem","config":{"fileMode":"x"}}}"#,
            r#"{"storage":{"type":"filesystem","config":{}}}"#,
        ] {
            match parse_config(bad.as_bytes(), Path::new("/c/repo.config")).unwrap_err() {
                Error::Config { path, .. } => assert_eq!(path, Path::new("/c/repo.config")),
                other => panic!("unexpected {other:?} for {bad:?}"),
            }
        }
    }

    #[test]
    fn load_missing_file_names_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("repository.config");
        match load(&path).unwrap_err() {
            Error::Config { path: p, .. } => assert_eq!(p, path),
            other => panic!("unexpected {other:?}"),
        }
        std::fs::write(&path, SAMPLE).unwrap();
        assert_eq!(
            load(&path).unwrap().storage.local_path(),
            Some(PathBuf::from("/srv/repo"))
        );
    }
}
