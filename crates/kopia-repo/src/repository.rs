//! The public face: open a repository from its storage and password, or from a Kopia client
//! config file, and hand out content readers and manifest stores over it.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::client::{self, ClientConfig};
use crate::content::{ContentCrypto, ContentReader, IndexLayout};
use crate::crypto::encryption::ContentEncryptor;
use crate::crypto::hashing::ContentHasher;
use crate::format::{FormatBlob, RepositoryConfig, FORMAT_BLOB_ID};
use crate::manifest::ManifestStore;
use crate::storage::filesystem::FilesystemStorage;
use crate::storage::BlobStorage;
use crate::{Error, Result};

/// An open repository: its storage, parameters and keys.
pub struct Repository {
    storage: Arc<dyn BlobStorage>,
    format_blob: FormatBlob,
    config: RepositoryConfig,
    crypto: Arc<ContentCrypto>,
    timings: OpenTimings,
}

/// Where the time of an open went (the benchmark prints it).
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenTimings {
    pub read_format_blob: Duration,
    pub key_derivation: Duration,
}

impl Repository {
    /// Opens the repository in `storage` with `password`.
    pub fn open(storage: Arc<dyn BlobStorage>, password: &str) -> Result<Self> {
        let started = Instant::now();
        let format_blob = read_format_blob(storage.as_ref())?;
        let read_format_blob = started.elapsed();

        let started = Instant::now();
        let format_key = format_blob.derive_format_key(password)?;
        let key_derivation = started.elapsed();

        let config = format_blob.decrypt_config(&format_key)?;
        config.validate()?;
        let crypto = Arc::new(ContentCrypto {
            hasher: ContentHasher::new(&config.hash, &config.hmac_secret)?,
            encryptor: ContentEncryptor::new(&config.encryption, &config.master_key)?,
        });
        tracing::debug!(storage = %storage.describe(), ?config, "opened repository");
        Ok(Repository {
            storage,
            format_blob,
            config,
            crypto,
            timings: OpenTimings {
                read_format_blob,
                key_derivation,
            },
        })
    }

    /// Opens the repository a Kopia client config (`repository.config`) points at, with the
    /// password from `KOPIA_PASSWORD`, Kopia's keyring entry or its password file.
    pub fn open_with_client_config(config_path: &Path) -> Result<(Self, ClientConfig)> {
        let client_config = client::load(config_path)?;
        let password = client::resolve_password(config_path)?;
        let storage = client_config.open_storage()?;
        let repository = Repository::open(storage, password.expose())?;
        Ok((repository, client_config))
    }

    /// Opens a filesystem repository directly by path.
    pub fn open_filesystem(path: &Path, password: &str) -> Result<Self> {
        let storage: Arc<dyn BlobStorage> = Arc::new(FilesystemStorage::open(path)?);
        Repository::open(storage, password)
    }

    pub fn config(&self) -> &RepositoryConfig {
        &self.config
    }

    pub fn format_blob(&self) -> &FormatBlob {
        &self.format_blob
    }

    pub fn storage(&self) -> &Arc<dyn BlobStorage> {
        &self.storage
    }

    pub fn timings(&self) -> OpenTimings {
        self.timings
    }

    pub fn index_layout(&self) -> IndexLayout {
        if self.config.epoch_parameters.enabled {
            IndexLayout::Epoch
        } else {
            IndexLayout::Legacy
        }
    }

    pub fn content_reader(&self) -> ContentReader {
        ContentReader::new(
            Arc::clone(&self.storage),
            Arc::clone(&self.crypto),
            self.index_layout(),
        )
    }

    /// An empty manifest store; call [`ManifestStore::refresh`] to load it.
    pub fn manifest_store(&self) -> ManifestStore {
        ManifestStore::new(self.content_reader())
    }
}

fn read_format_blob(storage: &dyn BlobStorage) -> Result<FormatBlob> {
    let bytes = match storage.get_blob(FORMAT_BLOB_ID) {
        Ok(bytes) => bytes,
        Err(Error::BlobNotFound { .. }) => {
            return Err(Error::NotARepository {
                path: storage.describe(),
            })
        }
        Err(e) => return Err(e),
    };
    FormatBlob::parse(&bytes).map_err(|reason| Error::corrupt_blob(FORMAT_BLOB_ID, reason))
}
