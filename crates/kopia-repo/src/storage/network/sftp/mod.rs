//! Kopia's `sftp` storage (repo/blob/sftp): the sharded `.f` tree of [`crate::storage::sharded`]
//! on an SSH server, over one shared SFTP connection in pure Rust (russh, russh-sftp) that runs
//! on the network runtime and reconnects by itself. The layout is the filesystem backend's:
//! `.shards` decides it, and when it is missing `dirShards` or `[3,3]` does; it is read, never
//! written, so a read-only connection writes nothing at all.

pub mod config;
mod connection;
pub mod known_hosts;
mod tree;

use std::path::PathBuf;
use std::sync::Arc;

use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::StatusCode;

use self::config::SftpConfig;
use self::connection::{ConnectError, Connection, Failure};
use self::tree::Range;
use super::block_on;
use crate::error::{Error, Result};
use crate::storage::factory::Access;
use crate::storage::sharded::{blob_file_path, ShardingParameters, SHARDS_FILE};
use crate::storage::{BlobMetadata, BlobReader, BlobWriter, Storage};

const KIND: &str = "sftp";

/// A Kopia repository directory on an SFTP server.
pub struct SftpStorage {
    connection: Arc<Connection>,
    root: String,
    sharding: ShardingParameters,
    list_parallelism: usize,
    name: String,
}

impl std::fmt::Debug for SftpStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SftpStorage")
            .field("name", &self.name)
            .field("sharding", &self.sharding)
            .finish_non_exhaustive()
    }
}

/// Opens an existing SFTP repository location with the capability `access` allows.
pub fn open(config: &serde_json::Value, access: Access) -> Result<Storage> {
    let config = SftpConfig::from_json(config).map_err(invalid)?;
    let storage = Arc::new(SftpStorage::connect(&config)?);
    Ok(match access {
        Access::ReadWrite => Storage::read_write(storage),
        Access::ReadOnly => Storage::read_only(storage),
    })
}

fn invalid(reason: String) -> Error {
    Error::InvalidStorageConfig {
        kind: KIND.to_string(),
        reason,
    }
}

impl SftpStorage {
    /// Logs in, checks that the repository directory exists and reads its `.shards`.
    pub fn connect(config: &SftpConfig) -> Result<SftpStorage> {
        if config.external_ssh {
            let command = if config.ssh_command.is_empty() {
                "ssh"
            } else {
                &config.ssh_command
            };
            return Err(Error::UnsupportedStorage {
                kind: KIND.to_string(),
                reason: format!(
                    "{} uses an external SSH client (externalSSH, `{command}`), which is not \
                     supported; connect with Kopia's built-in client instead: externalSSH \
                     false, a password, keyfile or keyData, and knownHostsFile or \
                     knownHostsData",
                    config.describe()
                ),
            });
        }
        let root = match config.path.trim_end_matches('/') {
            "" => "/".to_string(),
            trimmed => trimmed.to_string(),
        };
        let mut storage = SftpStorage {
            connection: Arc::new(Connection::new(config).map_err(invalid)?),
            root,
            sharding: ShardingParameters::for_new_repository(),
            list_parallelism: config.list_parallelism.max(1),
            name: config.describe(),
        };
        let shards_path = tree::join(&storage.root, &[SHARDS_FILE]);
        let (connection, root, path) = (
            Arc::clone(&storage.connection),
            storage.root.clone(),
            shards_path.clone(),
        );
        let found = block_on(async move {
            connection
                .run(|session| {
                    let (root, path) = (root.clone(), path.clone());
                    async move {
                        if !tree::is_existing_directory(&session.sftp, &root).await? {
                            return Ok(None);
                        }
                        tree::read_optional(&session, &path).await.map(Some)
                    }
                })
                .await
        })
        .map_err(|e| storage.error("open", None, e))?;
        let Some(shards_file) = found else {
            return Err(Error::StorageRequest {
                storage: storage.name.clone(),
                operation: "open".to_string(),
                reason: format!(
                    "there is no directory {} on {}",
                    storage.root,
                    storage.connection.address()
                ),
            });
        };
        storage.sharding =
            ShardingParameters::for_existing(shards_file.as_deref(), config.dir_shards.as_deref())
                .map_err(|e| Error::Config {
                    path: PathBuf::from(format!("{}/{SHARDS_FILE}", storage.name)),
                    reason: e.to_string(),
                })?;
        Ok(storage)
    }

    pub fn sharding(&self) -> &ShardingParameters {
        &self.sharding
    }

    /// The blob's shard directories and file path on the server.
    fn locate<'a>(&self, blob_id: &'a str) -> Result<(Vec<&'a str>, String)> {
        let (directories, file_name) =
            blob_file_path(&self.sharding, blob_id).ok_or_else(|| Error::StorageRequest {
                storage: self.name.clone(),
                operation: "address".to_string(),
                reason: format!("invalid blob ID {blob_id:?}"),
            })?;
        let parts: Vec<&str> = directories
            .iter()
            .copied()
            .chain(std::iter::once(file_name.as_str()))
            .collect();
        let path = tree::join(&self.root, &parts);
        Ok((directories, path))
    }

    /// The crate's error for a failed `operation`: a missing file is a missing blob, a refused
    /// login or host key an access denial naming user@host, a dead server a failed request
    /// naming host:port.
    fn error(&self, operation: &str, blob_id: Option<&str>, failure: Failure) -> Error {
        let address = self.connection.address();
        let request = |operation: String, reason: String| Error::StorageRequest {
            storage: self.name.clone(),
            operation,
            reason,
        };
        let named = match blob_id {
            Some(id) => format!("{operation} {id}"),
            None => operation.to_string(),
        };
        match failure {
            Failure::Connect(ConnectError::Unreachable(reason)) => {
                request(format!("{named}: connect to {address}"), reason)
            }
            Failure::Connect(ConnectError::Protocol(reason)) => {
                request(format!("{named}: SSH session with {address}"), reason)
            }
            Failure::Connect(ConnectError::HostKey(reason) | ConnectError::Auth(reason)) => {
                Error::StorageAccessDenied {
                    storage: self.name.clone(),
                    reason,
                }
            }
            Failure::Connect(ConnectError::Config(reason)) => invalid(reason),
            Failure::Sftp(SftpError::Status(status))
                if status.status_code == StatusCode::NoSuchFile && blob_id.is_some() =>
            {
                Error::BlobNotFound {
                    blob_id: blob_id.unwrap_or_default().to_string(),
                    storage: self.name.clone(),
                }
            }
            Failure::Sftp(SftpError::Status(status))
                if status.status_code == StatusCode::PermissionDenied =>
            {
                Error::StorageAccessDenied {
                    storage: self.name.clone(),
                    reason: format!("{named}: permission denied ({})", status.error_message),
                }
            }
            Failure::Sftp(e) => request(named, e.to_string()),
        }
    }

    fn run<T, F, Fut>(&self, operation: F) -> std::result::Result<T, Failure>
    where
        T: Send + 'static,
        F: FnMut(Arc<connection::Session>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = std::result::Result<T, SftpError>> + Send,
    {
        let connection = Arc::clone(&self.connection);
        block_on(async move { connection.run(operation).await })
    }
}

impl BlobReader for SftpStorage {
    fn get_blob(&self, id: &str) -> Result<Vec<u8>> {
        let (_, path) = self.locate(id)?;
        self.run(move |session| {
            let path = path.clone();
            async move { tree::read_file(&session, &path).await }
        })
        .map_err(|e| self.error("get", Some(id), e))
    }

    fn get_blob_range(&self, id: &str, offset: u64, length: u64) -> Result<Vec<u8>> {
        let (_, path) = self.locate(id)?;
        let range = self
            .run(move |session| {
                let path = path.clone();
                async move { tree::read_range(&session, &path, offset, length).await }
            })
            .map_err(|e| self.error("get", Some(id), e))?;
        match range {
            Range::Data(data) => Ok(data),
            Range::Short(actual) => Err(Error::TruncatedBlob {
                blob_id: id.to_string(),
                offset,
                wanted: length,
                actual,
            }),
        }
    }

    fn list_blobs(&self, prefix: &str) -> Result<Vec<BlobMetadata>> {
        let (root, owned_prefix, parallelism) =
            (self.root.clone(), prefix.to_string(), self.list_parallelism);
        self.run(move |session| {
            let (root, prefix) = (root.clone(), owned_prefix.clone());
            async move { tree::list(&session, &root, &prefix, parallelism).await }
        })
        .map_err(|e| self.error(&format!("list {prefix:?}"), None, e))
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

impl BlobWriter for SftpStorage {
    fn put_blob(&self, id: &str, data: &[u8]) -> Result<()> {
        let (directories, path) = self.locate(id)?;
        let directories: Vec<String> = directories.into_iter().map(str::to_string).collect();
        let (root, data) = (self.root.clone(), Arc::new(data.to_vec()));
        self.run(move |session| {
            let (root, directories, path, data) = (
                root.clone(),
                directories.clone(),
                path.clone(),
                Arc::clone(&data),
            );
            async move { tree::write_atomically(&session, &root, &directories, &path, &data).await }
        })
        .map_err(|e| self.error("put", Some(id), e))
    }

    fn delete_blob(&self, id: &str) -> Result<()> {
        let (_, path) = self.locate(id)?;
        self.run(move |session| {
            let path = path.clone();
            async move { tree::remove(&session.sftp, &path).await }
        })
        .map_err(|e| self.error("delete", Some(id), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn external_ssh_is_refused_saying_what_to_set() {
        let err = open(
            &serde_json::json!({"path": "/r", "host": "nas", "username": "u",
                "externalSSH": true, "sshCommand": "/usr/bin/ssh"}),
            Access::ReadOnly,
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::UnsupportedStorage { ref kind, .. } if kind == "sftp"));
        assert!(
            message.contains("sftp://u@nas:22/r")
                && message.contains("/usr/bin/ssh")
                && message.contains("externalSSH false"),
            "{message}"
        );
    }

    #[test]
    fn unusable_configs_are_refused_before_connecting() {
        for (json, reason) in [
            (
                serde_json::json!({"host": "nas", "username": "u"}),
                "no path",
            ),
            (
                serde_json::json!({"path": "/r", "host": "nas", "username": "u",
                    "knownHostsData": "x"}),
                "no password, keyfile or keyData",
            ),
            (
                serde_json::json!({"path": "/r", "host": "nas", "username": "u",
                    "password": "pw", "knownHostsFile": "relative/known_hosts"}),
                "absolute",
            ),
        ] {
            match open(&json, Access::ReadOnly).unwrap_err() {
                Error::InvalidStorageConfig { kind, reason: got } => {
                    assert_eq!(kind, "sftp");
                    assert!(got.contains(reason), "{got}");
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn an_unreachable_host_names_host_and_port() {
        // A port nothing listens on: bound, then released.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let json = serde_json::json!({"path": "/r", "host": "127.0.0.1", "port": port,
            "username": "u", "password": "pw", "knownHostsData": "# none"});
        match open(&json, Access::ReadOnly).unwrap_err() {
            Error::StorageRequest {
                storage, operation, ..
            } => {
                assert_eq!(storage, format!("sftp://u@127.0.0.1:{port}/r"));
                assert!(
                    operation.contains(&format!("connect to 127.0.0.1:{port}")),
                    "{operation}"
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}
