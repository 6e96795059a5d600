//! The parts of Kopia's `repository.config` (§10.1) needed to open a filesystem repository.
//! Unknown keys are ignored; server connections and non-filesystem storages are refused
//! with [`Error::Unsupported`]. Nothing is ever written back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::content::writer::SessionOwner;
use crate::error::{Error, Result};
use crate::storage::filesystem::{
    FilesystemOptions, FilesystemStorage, DEFAULT_DIR_MODE, DEFAULT_FILE_MODE,
};
use crate::storage::{io_error, BlobStorage};

/// What we use of one `repository.config`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The config file this came from (the key of its password, see `resolve_password`).
    pub config_path: PathBuf,
    pub storage: FilesystemConfig,
    pub hostname: String,
    pub username: String,
    pub description: Option<String>,
    pub readonly: bool,
    /// `caching.maxListCacheDuration`: how long Kopia trusts a cached index listing.
    pub max_list_cache_duration: Option<Duration>,
    /// `caching.cacheDirectory`, resolved against the config file's directory.
    pub cache_directory: Option<PathBuf>,
}

/// `storage.config` of a `filesystem` storage (§1.2.6).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesystemConfig {
    pub path: PathBuf,
    pub file_mode: Option<u32>,
    pub dir_mode: Option<u32>,
    pub dir_shards: Option<Vec<usize>>,
}

impl ClientConfig {
    /// Opens the storage this config points at (reading, never creating, its `.shards`).
    pub fn open_storage(&self) -> Result<Arc<dyn BlobStorage>> {
        let storage =
            FilesystemStorage::open_with_options(&self.storage.path, &self.storage.options())?;
        Ok(Arc::new(storage))
    }

    /// The `user@host` this connection writes as (Kopia's username and hostname overrides).
    pub fn session_owner(&self) -> SessionOwner {
        SessionOwner {
            username: self.username.clone(),
            hostname: self.hostname.clone(),
        }
    }
}

impl FilesystemConfig {
    /// The storage options, with Kopia's defaults for unset (or zero) modes.
    pub fn options(&self) -> FilesystemOptions {
        FilesystemOptions {
            file_mode: self.file_mode.unwrap_or(DEFAULT_FILE_MODE),
            dir_mode: self.dir_mode.unwrap_or(DEFAULT_DIR_MODE),
            dir_shards: self.dir_shards.clone(),
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
struct FilesystemJson {
    #[serde(default)]
    path: String,
    #[serde(rename = "fileMode", default)]
    file_mode: Option<u32>,
    #[serde(rename = "dirMode", default)]
    dir_mode: Option<u32>,
    #[serde(rename = "dirShards", default)]
    dir_shards: Option<Vec<usize>>,
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
    if storage.kind != "filesystem" {
        return Err(Error::Unsupported(format!(
            "storage type {:?}",
            storage.kind
        )));
    }
    let filesystem: FilesystemJson = serde_json::from_value(storage.config)
        .map_err(|e| config_error(format!("invalid filesystem storage config: {e}")))?;
    if filesystem.path.is_empty() {
        return Err(config_error(
            "filesystem storage without a path".to_string(),
        ));
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
        storage: FilesystemConfig {
            path: PathBuf::from(filesystem.path),
            // Go omits zero modes and treats them as "default".
            file_mode: filesystem.file_mode.filter(|m| *m != 0),
            dir_mode: filesystem.dir_mode.filter(|m| *m != 0),
            dir_shards: filesystem.dir_shards,
        },
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
                storage: FilesystemConfig {
                    path: PathBuf::from("/srv/repo"),
                    file_mode: Some(0o600),
                    dir_mode: Some(0o700),
                    dir_shards: None,
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
        let options = config.storage.options();
        assert_eq!((options.file_mode, options.dir_mode), (0o600, 0o700));
    }

    #[test]
    fn minimal_config_and_optional_fields() {
        let json = r#"{"storage":{"type":"filesystem","config":{"path":"/r","dirShards":[1,1]}},
            "caching":{"maxListCacheDuration":2.5},"readonly":true,"unknown":{"a":1}}"#;
        let config = parse_config(json.as_bytes(), Path::new("c.config")).unwrap();
        assert!(config.readonly);
        assert_eq!(config.storage.dir_shards, Some(vec![1, 1]));
        assert_eq!(config.storage.options().file_mode, DEFAULT_FILE_MODE);
        assert_eq!(
            config.max_list_cache_duration,
            Some(Duration::from_millis(2500))
        );
        assert_eq!(config.cache_directory, None);
        assert_eq!(config.description, None);
        assert_eq!(config.hostname, "");
    }

    #[test]
    fn refuses_servers_and_other_storages() {
        let server = r#"{"apiServer":{"url":"https://host:51515","serverCertFingerprint":"ab"},"caching":{}}"#;
        match parse_config(server.as_bytes(), Path::new("x")).unwrap_err() {
            Error::Unsupported(what) => assert_eq!(what, "repository server connections"),
            other => panic!("unexpected {other:?}"),
        }
        let s3 = r#"{"storage":{"type":"s3","config":{"bucket":"b"}}}"#;
        match parse_config(s3.as_bytes(), Path::new("x")).unwrap_err() {
            Error::Unsupported(what) => assert!(what.contains("s3"), "{what}"),
            other => panic!("unexpected {other:?}"),
        }
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
            load(&path).unwrap().storage.path,
            PathBuf::from("/srv/repo")
        );
    }
}
