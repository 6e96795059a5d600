//! Kopia's `webdav` storage (repo/blob/webdav): the sharded file tree of the filesystem
//! backend behind a WebDAV URL, so a repository may be reached through either. Reads the keys
//! Kopia writes in `storage.config` and ignores the others; basic auth; an optional pinned
//! server certificate (`trustedServerCertificateFingerprint`, see [`super::pinning`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use opendal::raw::{HttpBody, HttpClient, HttpFetch};
use opendal::{Buffer, ErrorKind};
use serde::Deserialize;

use super::pinning::{Mismatch, PinnedCertificate};
use super::tree::{FileTree, TreeOptions};
use crate::client::Password;
use crate::error::{Error, Result};
use crate::storage::factory::Access;
use crate::storage::Storage;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `storage.config` of a `webdav` storage (Kopia's webdav.Options with the embedded
/// sharded.Options). The password is a [`Password`], so `Debug` never shows it.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct WebdavConfig {
    #[serde(default)]
    pub url: String,
    #[serde(default)]
    pub username: String,
    #[serde(default, deserialize_with = "secret")]
    pub password: Option<Password>,
    #[serde(rename = "trustedServerCertificateFingerprint", default)]
    pub trusted_server_certificate_fingerprint: String,
    #[serde(rename = "atomicWrites", default)]
    pub atomic_writes: bool,
    #[serde(rename = "dirShards", default)]
    pub dir_shards: Option<Vec<usize>>,
    /// Go's int: Kopia treats anything below 1 as 1.
    #[serde(rename = "listParallelism", default)]
    pub list_parallelism: i64,
}

fn secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Password>, D::Error> {
    Ok(Option::<Password>::deserialize(deserializer)?.filter(|p| !p.expose().is_empty()))
}

impl WebdavConfig {
    pub fn from_json(config: &serde_json::Value) -> std::result::Result<Self, String> {
        let parsed = WebdavConfig::deserialize(config).map_err(|e| e.to_string())?;
        let scheme_ok = parsed.url.starts_with("http://") || parsed.url.starts_with("https://");
        if !scheme_ok {
            return Err(format!("url {:?} is not an http(s) URL", parsed.url));
        }
        Ok(parsed)
    }

    /// What messages call this store: the URL, as Kopia's "WebDAV: <url>".
    pub fn describe(&self) -> String {
        format!("webdav:{}", self.url)
    }

    fn tree_options(&self) -> TreeOptions {
        TreeOptions {
            dir_shards: self.dir_shards.clone(),
            list_parallelism: usize::try_from(self.list_parallelism).unwrap_or(0),
            atomic_writes: self.atomic_writes,
        }
    }
}

/// Opens an existing WebDAV repository location with the capability `access` allows.
pub fn open(config: &serde_json::Value, access: Access) -> Result<Storage> {
    let config = WebdavConfig::from_json(config).map_err(|reason| Error::InvalidStorageConfig {
        kind: "webdav".to_string(),
        reason,
    })?;
    let name = config.describe();
    let tree = Arc::new(connect(&config, name)?);
    Ok(match access {
        Access::ReadWrite => Storage::read_write(tree),
        Access::ReadOnly => Storage::read_only(tree),
    })
}

/// The tree behind `config`'s URL, called `name` in messages (also what the rclone backend
/// talks to, under the remote's name).
pub fn connect(config: &WebdavConfig, name: String) -> Result<FileTree> {
    let invalid = |reason: String| Error::InvalidStorageConfig {
        kind: "webdav".to_string(),
        reason,
    };
    let mut builder = opendal::services::Webdav::default()
        .endpoint(config.url.trim_end_matches('/'))
        .root("/")
        // Kopia PUTs first and creates collections only when that fails; OpenDAL would
        // otherwise PROPFIND every parent before every write.
        .disable_create_dir(true);
    if !config.username.is_empty() {
        builder = builder.username(&config.username);
        if let Some(password) = &config.password {
            builder = builder.password(password.expose());
        }
    }
    let fetch = fetcher(config).map_err(invalid)?;
    let operator = super::operator(builder, None)
        .map_err(|e| invalid(e.to_string()))?
        .layer(opendal::layers::HttpClientLayer::new(HttpClient::with(
            fetch,
        )));
    FileTree::open(operator, config.tree_options(), name)
}

/// The HTTP client: the system's roots, or exactly the pinned certificate when the config
/// names one (only meaningful for https URLs, ignored for http as Kopia does).
fn fetcher(config: &WebdavConfig) -> std::result::Result<WebdavFetch, String> {
    super::install_tls_provider();
    let mut builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
    let mut mismatches = None;
    let trusted = config.trusted_server_certificate_fingerprint.clone();
    if !trusted.is_empty() {
        let verifier = PinnedCertificate::new(&trusted);
        mismatches = Some(verifier.mismatches());
        builder = builder.tls_backend_preconfigured(verifier.client_config());
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    Ok(WebdavFetch {
        client,
        trusted,
        mismatches,
    })
}

/// reqwest with the two answers retrying cannot fix made final and clear: a refused
/// credential (401/403, which OpenDAL's WebDAV service would retry or call unexpected) and a
/// server certificate that is not the pinned one.
struct WebdavFetch {
    client: reqwest::Client,
    trusted: String,
    mismatches: Option<Arc<Mutex<Option<Mismatch>>>>,
}

impl WebdavFetch {
    fn certificate_refused(&self) -> Option<Mismatch> {
        self.mismatches.as_ref()?.lock().ok()?.take()
    }
}

impl HttpFetch for WebdavFetch {
    async fn fetch(
        &self,
        request: http::Request<Buffer>,
    ) -> opendal::Result<http::Response<HttpBody>> {
        let uri = request.uri().clone();
        match self.client.fetch(request).await {
            Ok(response) => match response.status() {
                status @ (http::StatusCode::UNAUTHORIZED | http::StatusCode::FORBIDDEN) => {
                    Err(opendal::Error::new(
                        ErrorKind::PermissionDenied,
                        format!("the server answered {status} for {uri}"),
                    ))
                }
                _ => Ok(response),
            },
            Err(error) => match self.certificate_refused() {
                Some(Mismatch { host, presented }) => Err(opendal::Error::new(
                    ErrorKind::PermissionDenied,
                    format!(
                        "the TLS certificate of {host} has SHA-256 fingerprint {presented}, \
                         not the trusted {} (trustedServerCertificateFingerprint)",
                        self.trusted.to_lowercase()
                    ),
                )),
                None => Err(error),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kopia_keys_and_ignores_others() {
        let config = WebdavConfig::from_json(&serde_json::json!({
            "url": "https://nas.local:5006/kopia/", "username": "alice", "password": "hunter2",
            "trustedServerCertificateFingerprint": "AB12", "atomicWrites": true,
            "dirShards": null, "listParallelism": 4, "maxUploadSpeedBytesPerSecond": 0,
            "someFutureKey": {"x": 1}
        }))
        .unwrap();
        assert_eq!(config.url, "https://nas.local:5006/kopia/");
        assert_eq!(config.username, "alice");
        assert_eq!(config.password.as_ref().unwrap().expose(), "hunter2");
        assert_eq!(config.trusted_server_certificate_fingerprint, "AB12");
        assert_eq!(
            config.tree_options(),
            TreeOptions {
                dir_shards: None,
                list_parallelism: 4,
                atomic_writes: true
            }
        );
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("alice"),
            "{debug}"
        );
        assert_eq!(config.describe(), "webdav:https://nas.local:5006/kopia/");

        let minimal = WebdavConfig::from_json(&serde_json::json!({
            "url": "http://127.0.0.1:8080", "password": "", "dirShards": [2, 2],
            "listParallelism": -3
        }))
        .unwrap();
        assert!(minimal.password.is_none() && !minimal.atomic_writes);
        assert_eq!(minimal.tree_options().dir_shards, Some(vec![2, 2]));
        assert_eq!(minimal.tree_options().list_parallelism, 0);
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"url": "ftp://host/"}),
            serde_json::json!({"url": "http://h", "atomicWrites": "yes"}),
            serde_json::json!({"url": "http://h", "dirShards": [-1]}),
        ] {
            assert!(WebdavConfig::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unreachable_servers_are_errors_naming_the_url() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port(); // free once the listener is dropped: nothing answers there
        let url = format!("http://127.0.0.1:{port}/repo");
        let err = open(&serde_json::json!({ "url": url }), Access::ReadOnly).unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&url), "{message}");
        let err = open(&serde_json::json!({"url": "nas/"}), Access::ReadOnly).unwrap_err();
        assert!(matches!(err, Error::InvalidStorageConfig { ref kind, .. } if kind == "webdav"));
    }
}
