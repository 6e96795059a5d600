//! The public face: open a repository from its storage and password, or from a Kopia client
//! config file, and hand out content readers and manifest stores over it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use rand::RngCore;
use serde_json::value::RawValue;

use crate::client::{self, ClientConfig, ReadOnlyReason};
use crate::content::writer::{ContentWriter, SessionOwner, WriteFormat};
use crate::content::{ContentCrypto, ContentReader, IndexLayout, IndexListingPrefetch};
use crate::crypto::encryption::ContentEncryptor;
use crate::crypto::encryption::DEFAULT_ENCRYPTION_ALGORITHM;
use crate::crypto::hashing::ContentHasher;
use crate::crypto::hashing::DEFAULT_HASH_ALGORITHM;
use crate::crypto::kdf;
use crate::early_key::{self, EarlyKey, SaltMemory};
use crate::epoch::EPOCH_MANAGER_PREFIX;
use crate::format::{
    EpochParameters, FormatBlob, RepositoryConfig, FORMAT_BLOB_ENCRYPTION, FORMAT_BLOB_ID,
};
use crate::manifest::{ManifestStore, NewManifest};
use crate::pack;
use crate::storage::blob_cache::{self, BlobCache};
use crate::storage::factory::StorageKind;
use crate::storage::filesystem::FilesystemStorage;
use crate::storage::retention::{BlobRetention, BLOBCFG_BLOB_ID};
use crate::storage::{BlobReader, BlobWriter, Storage};
use crate::{Error, Result};

/// An open repository: its storage, parameters and keys.
pub struct Repository {
    storage: Storage,
    /// What contents and manifests are read through: the storage itself, or a blob cache in
    /// front of it ([`Repository::with_blob_cache`]).
    reads: Arc<dyn BlobReader>,
    format_blob: FormatBlob,
    /// `kopia.repository` as stored: format-v1 packs embed it.
    format_blob_bytes: Vec<u8>,
    /// Wiped on drop, like the password it comes from.
    format_key: Zeroizing<[u8; 32]>,
    config: RepositoryConfig,
    crypto: Arc<ContentCrypto>,
    timings: OpenTimings,
    /// The index listing taken while the key was derived, for the first refresh.
    index_listing: Arc<IndexListingPrefetch>,
    /// The client config of a connection made with `kopia repository connect --readonly` or
    /// onto a point in time, and which of the two: Kopia refuses every write through it, and
    /// so does [`Repository::content_writer`].
    read_only_config: Option<(PathBuf, ReadOnlyReason)>,
}

/// Where the time of an open went (the benchmark prints it).
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenTimings {
    pub read_format_blob: Duration,
    pub key_derivation: Duration,
    /// Whether the key derivation ran beside the storage's opening and the format blob's
    /// read, from the salt an earlier open of the same client config remembered.
    pub key_started_early: bool,
}

/// Kopia's default split for file data; irrelevant to manifests but every repository names one.
const DEFAULT_SPLITTER: &str = "DYNAMIC-4M-BUZHASH";
const DEFAULT_MAX_PACK_SIZE: i64 = 20 << 20;
const KEY_LENGTH: usize = 32;

fn random_key() -> Vec<u8> {
    let mut key = vec![0u8; KEY_LENGTH];
    rand::thread_rng().fill_bytes(&mut key);
    key
}

impl Repository {
    /// Creates a filesystem repository with current Kopia defaults (format v3, BLAKE2B-256-128,
    /// AES256-GCM-HMAC-SHA256, index v2, epochs, scrypt) that Kopia connects to, snapshots into
    /// and maintains. `owner` becomes the maintenance owner, as `kopia repository create`
    /// makes its creator.
    pub fn create_filesystem(path: &Path, password: &str, owner: &SessionOwner) -> Result<Self> {
        let storage: Arc<dyn BlobWriter> = Arc::new(FilesystemStorage::create(path)?);
        match storage.get_blob(FORMAT_BLOB_ID) {
            Err(Error::BlobNotFound { .. }) => {}
            Ok(_) => {
                return Err(Error::AlreadyExists {
                    path: storage.describe(),
                })
            }
            Err(e) => return Err(e),
        }
        let config = RepositoryConfig {
            hash: DEFAULT_HASH_ALGORITHM.into(),
            encryption: DEFAULT_ENCRYPTION_ALGORITHM.into(),
            ecc: String::new(),
            ecc_overhead_percent: 0,
            hmac_secret: random_key(),
            master_key: random_key(),
            version: 3,
            max_pack_size: DEFAULT_MAX_PACK_SIZE,
            index_version: 2,
            epoch_parameters: EpochParameters::kopia_defaults(),
            enable_password_change: true,
            splitter: DEFAULT_SPLITTER.into(),
            upgrade_lock: None,
            required_features: Vec::new(),
        };
        let mut format_blob = FormatBlob {
            tool: "https://github.com/kopia/kopia".into(),
            build_version: format!("kopia-notifier-{}", env!("CARGO_PKG_VERSION")),
            build_info: String::new(),
            unique_id: random_key(),
            key_algo: kdf::DEFAULT_KEY_DERIVATION_ALGORITHM.into(),
            encryption: FORMAT_BLOB_ENCRYPTION.into(),
            encrypted_block_format: Vec::new(),
        };
        let format_key = Zeroizing::new(format_blob.derive_format_key(password)?);
        format_blob.encrypt_config(&format_key[..], &config);
        // Kopia writes the retention config first: a format blob always finds it.
        let blobcfg = kdf::encrypt_format_block(&format_key[..], &format_blob.unique_id, b"{}");
        storage.put_blob(BLOBCFG_BLOB_ID, &blobcfg)?;
        let format_blob_bytes = format_blob.to_bytes();
        storage.put_blob(FORMAT_BLOB_ID, &format_blob_bytes)?;

        let repository = Repository::from_parts(
            Storage::read_write(storage),
            format_blob,
            format_blob_bytes,
            format_key,
            config,
            OpenTimings::default(),
        )?;
        let maintenance = NewManifest {
            labels: [("type".to_string(), "maintenance".to_string())].into(),
            data: default_maintenance_params(owner),
        };
        repository.manifest_store().write(
            &repository.content_writer(owner.clone())?,
            &[maintenance],
            &[],
        )?;
        Ok(repository)
    }

    fn from_parts(
        storage: Storage,
        format_blob: FormatBlob,
        format_blob_bytes: Vec<u8>,
        format_key: Zeroizing<[u8; 32]>,
        config: RepositoryConfig,
        timings: OpenTimings,
    ) -> Result<Self> {
        config.validate()?;
        let crypto = Arc::new(ContentCrypto {
            hasher: ContentHasher::new(&config.hash, &config.hmac_secret)?,
            encryptor: ContentEncryptor::new(&config.encryption, &config.master_key)?,
        });
        tracing::debug!(storage = %storage.reader().describe(), read_only = storage.is_read_only(), ?config, "opened repository");
        Ok(Repository {
            reads: Arc::clone(storage.reader()),
            storage,
            format_blob,
            format_blob_bytes,
            format_key,
            config,
            crypto,
            timings,
            index_listing: Arc::default(),
            read_only_config: None,
        })
    }

    /// Opens the repository in `storage` with `password`: an `Arc<dyn BlobWriter>` opens it
    /// for reading and writing, an `Arc<dyn BlobReader>` (or a read-only [`Storage`]) for
    /// reading only.
    pub fn open(storage: impl Into<Storage>, password: &str) -> Result<Self> {
        Repository::open_with_early_key(storage.into(), password, None)
    }

    /// [`Self::open`], taking the format key from `early` when that derivation was started
    /// for this repository's salt (see [`early_key`]).
    fn open_with_early_key(
        storage: Storage,
        password: &str,
        early: Option<EarlyKey>,
    ) -> Result<Self> {
        let started = Instant::now();
        let (format_blob, format_blob_bytes) = read_format_blob(storage.reader().as_ref())?;
        let read_format_blob = started.elapsed();

        // A listing needs no key: the epoch index listing the first refresh makes is taken
        // now, its round trip hidden behind the scrypt. (A legacy-index repository, Kopia's
        // format before 0.9, lists its `n` blobs instead and pays this one listing for nothing.)
        let (derived, key_started_early, index_listing) = std::thread::scope(|scope| {
            let listing = scope.spawn(|| {
                let started = Instant::now();
                match storage.reader().list_blobs(EPOCH_MANAGER_PREFIX) {
                    Ok(listing) => Some(IndexListingPrefetch::new(started, listing)),
                    // The refresh lists again and reports what is wrong.
                    Err(error) => {
                        tracing::debug!(%error, "index listing during key derivation failed");
                        None
                    }
                }
            });
            let early = early.and_then(|early| early.key_for(&format_blob));
            let started_early = early.is_some();
            let derived = early.unwrap_or_else(|| early_key::derive_for(&format_blob, password));
            let listing = listing
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            (derived, started_early, listing)
        });
        let (format_key, key_derivation) = derived?;

        let config = format_blob.decrypt_config(&format_key[..])?;
        let mut repository = Repository::from_parts(
            storage,
            format_blob,
            format_blob_bytes,
            format_key,
            config,
            OpenTimings {
                read_format_blob,
                key_derivation,
                key_started_early,
            },
        )?;
        if let Some(prefetch) = index_listing {
            repository.index_listing = Arc::new(prefetch);
        }
        Ok(repository)
    }

    /// Opens the repository a Kopia client config (`repository.config`) points at, with the
    /// password from `KOPIA_PASSWORD`, Kopia's keyring entry or its password file. A network
    /// repository's index blobs and manifest packs are read through the blob cache.
    pub fn open_with_client_config(config_path: &Path) -> Result<(Self, ClientConfig)> {
        Repository::open_client_config(config_path, true)
    }

    /// [`Self::open_with_client_config`] reading everything from the storage, for what checks
    /// the repository's health: damage on the server must be seen, whatever a cache holds.
    pub fn open_with_client_config_from_storage(
        config_path: &Path,
    ) -> Result<(Self, ClientConfig)> {
        Repository::open_client_config(config_path, false)
    }

    fn open_client_config(config_path: &Path, cached: bool) -> Result<(Self, ClientConfig)> {
        let client_config = client::load(config_path)?;
        // Local disk is as fast as a cache would be, and reads the format blob in microseconds:
        // the blob cache and the remembered key salts are for network storage.
        let cache_root = match client_config.storage.kind {
            StorageKind::Filesystem => None,
            _ => blob_cache::default_root(),
        };
        Repository::open_loaded_config(config_path, client_config, cached, cache_root)
    }

    /// Opens what the loaded `client_config` (read from `config_path`) points at, with the
    /// remembered key salts (and, when `cached`, the blob cache) under `cache_root`.
    fn open_loaded_config(
        config_path: &Path,
        client_config: ClientConfig,
        cached: bool,
        cache_root: Option<PathBuf>,
    ) -> Result<(Self, ClientConfig)> {
        let password = client::resolve_password(config_path)?;
        // The key derivation starts before the storage is even opened, from the salt the last
        // open of this config saw; opening the storage and reading the format blob run beside it.
        let salts = cache_root
            .as_deref()
            .map(|root| SaltMemory::new(root, config_path));
        let early = salts.as_ref().and_then(|salts| salts.start(&password));
        let storage = client_config.open_storage()?;
        let mut repository = Repository::open_with_early_key(storage, password.expose(), early)?;
        match &salts {
            Some(salts) if !repository.timings.key_started_early => {
                salts.remember(&repository.format_blob)
            }
            _ => {}
        }
        if let (true, Some(root)) = (cached, &cache_root) {
            repository = repository.with_blob_cache(root, blob_cache::DEFAULT_CAPACITY);
        }
        if let Some(reason) = client_config.read_only_reason() {
            repository.read_only_config = Some((config_path.to_path_buf(), reason));
        }
        Ok((repository, client_config))
    }

    /// Opens a filesystem repository directly by path.
    pub fn open_filesystem(path: &Path, password: &str) -> Result<Self> {
        let storage: Arc<dyn BlobWriter> = Arc::new(FilesystemStorage::open(path)?);
        Repository::open(storage, password)
    }

    pub fn config(&self) -> &RepositoryConfig {
        &self.config
    }

    pub fn format_blob(&self) -> &FormatBlob {
        &self.format_blob
    }

    /// The storage, for reading (writes go through [`Self::content_writer`]).
    pub fn storage(&self) -> &Arc<dyn BlobReader> {
        self.storage.reader()
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

    /// Reads immutable blobs (index blobs, metadata packs) through a persistent cache under
    /// `root` (see [`blob_cache`]), in the directory of this repository's `uniqueID`. The
    /// storage itself stays what [`Self::storage`] and [`Self::storage_content_reader`] read.
    pub fn with_blob_cache(mut self, root: &Path, capacity: u64) -> Self {
        let dir = blob_cache::repository_dir(
            root,
            &self.format_blob.unique_id,
            &self.storage.reader().describe(),
        );
        self.reads = BlobCache::wrap(Arc::clone(self.storage.reader()), &dir, capacity);
        self
    }

    /// Contents read through the blob cache, if the repository has one.
    pub fn content_reader(&self) -> ContentReader {
        ContentReader::new(
            Arc::clone(&self.reads),
            Arc::clone(&self.crypto),
            self.index_layout(),
        )
        .with_index_listing(Arc::clone(&self.index_listing))
    }

    /// Contents read from the storage, never from a cache: what checks the repository's
    /// health (verification, a writer reading back what it wrote) must see.
    pub fn storage_content_reader(&self) -> ContentReader {
        ContentReader::new(
            Arc::clone(self.storage.reader()),
            Arc::clone(&self.crypto),
            self.index_layout(),
        )
        .with_index_listing(Arc::clone(&self.index_listing))
    }

    /// The client config of the read-only connection it was opened through, if it was: no
    /// writer is given then.
    pub fn read_only_config(&self) -> Option<&Path> {
        self.read_only_config
            .as_ref()
            .map(|(config, _)| config.as_path())
    }

    /// A writer for new contents, after checking (from storage, not from what was read at open)
    /// that the repository may be written: a read-write connection, no upgrade under way, the
    /// same keys and parameters.
    pub fn content_writer(&self, owner: SessionOwner) -> Result<ContentWriter> {
        if let Some((config, reason)) = &self.read_only_config {
            return Err(Error::ReadOnly {
                config: config.clone(),
                reason: reason.clone(),
            });
        }
        let writer = Arc::clone(self.storage.writer()?);
        let (current, current_bytes) = read_format_blob(self.storage.reader().as_ref())?;
        if current_bytes != self.format_blob_bytes {
            let config = current.decrypt_config(&self.format_key[..])?;
            config.validate()?;
            if !same_write_parameters(&config, &self.config) {
                return Err(Error::Unsupported(
                    "the repository format changed since it was opened; open it again".into(),
                ));
            }
            if config.upgrade_in_progress() {
                return Err(Error::UpgradeInProgress(writer.describe()));
            }
        }
        if self.config.upgrade_in_progress() {
            return Err(Error::UpgradeInProgress(writer.describe()));
        }
        self.refuse_retention(writer.as_ref())?;
        let pack_prefix = if self.config.enable_password_change {
            Vec::new()
        } else {
            pack::framed_format_bytes(&current_bytes)
                .map_err(|reason| Error::corrupt_blob(FORMAT_BLOB_ID, reason))?
        };
        let format = WriteFormat {
            index_version: self.config.effective_index_version(),
            format_version: self.config.version as u8,
            pack_prefix,
        };
        Ok(ContentWriter::new(
            self.storage_content_reader(),
            writer,
            format,
            owner,
        ))
    }

    /// Kopia's `DeriveKey(purpose, length)` (repo/repository.go): HKDF over the master key (or
    /// the format key in format-v1 repositories), salted with the repository's `uniqueID`.
    pub fn derive_key(&self, purpose: &str, length: usize) -> Result<Vec<u8>> {
        kdf::derive_purpose_key(
            &self.config.master_key,
            &self.format_key[..],
            self.config.enable_password_change,
            &self.format_blob.unique_id,
            purpose,
            length,
        )
    }

    /// Kopia locks every blob of a repository whose `kopia.blobcfg` sets retention; our writes
    /// would carry no lock, so they are refused before the first one.
    fn refuse_retention(&self, storage: &dyn BlobReader) -> Result<()> {
        let sealed = match storage.get_blob(BLOBCFG_BLOB_ID) {
            Ok(bytes) => bytes,
            Err(Error::BlobNotFound { .. }) => return Ok(()), // repositories before v0.9
            Err(e) => return Err(e),
        };
        let json =
            kdf::decrypt_blobcfg_block(&self.format_key[..], &self.format_blob.unique_id, &sealed)?;
        let retention = BlobRetention::parse(&json)
            .map_err(|reason| Error::corrupt_blob(BLOBCFG_BLOB_ID, reason))?;
        if retention.is_enabled() {
            return Err(Error::RetentionUnsupported {
                storage: storage.describe(),
                retention: retention.describe(),
            });
        }
        Ok(())
    }

    /// An empty manifest store; call [`ManifestStore::refresh`] to load it.
    pub fn manifest_store(&self) -> ManifestStore {
        ManifestStore::new(self.content_reader())
    }
}

/// Whether data written under `a` reads the same under `b` (keys, hashing, index format).
fn same_write_parameters(a: &RepositoryConfig, b: &RepositoryConfig) -> bool {
    a.hash == b.hash
        && a.encryption == b.encryption
        && a.hmac_secret == b.hmac_secret
        && a.master_key == b.master_key
        && a.version == b.version
        && a.index_version == b.index_version
        && a.epoch_parameters.enabled == b.epoch_parameters.enabled
        && a.enable_password_change == b.enable_password_change
}

/// Kopia's default maintenance parameters (repo/maintenance), owned by `owner`.
fn default_maintenance_params(owner: &SessionOwner) -> Box<RawValue> {
    const HOUR_NS: i64 = 3_600_000_000_000;
    let params = serde_json::json!({
        "owner": format!("{}@{}", owner.username, owner.hostname),
        "quick": {"enabled": true, "interval": HOUR_NS},
        "full": {"enabled": true, "interval": 24 * HOUR_NS},
        "logRetention": {"maxTotalSize": 1_i64 << 30, "maxCount": 10_000, "maxAge": 30 * 24 * HOUR_NS},
        "extendObjectLocks": false,
        "listParallelism": 0,
    });
    RawValue::from_string(params.to_string()).expect("maintenance params are JSON")
}

fn read_format_blob(storage: &dyn BlobReader) -> Result<(FormatBlob, Vec<u8>)> {
    let bytes = match storage.get_blob(FORMAT_BLOB_ID) {
        Ok(bytes) => bytes,
        Err(Error::BlobNotFound { .. }) => {
            return Err(Error::NotARepository {
                path: storage.describe(),
            })
        }
        Err(e) => return Err(e),
    };
    let blob =
        FormatBlob::parse(&bytes).map_err(|reason| Error::corrupt_blob(FORMAT_BLOB_ID, reason))?;
    Ok((blob, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::counting::CountingStorage;

    #[test]
    fn a_repository_with_retention_is_refused_for_writing_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let owner = SessionOwner {
            username: "me".into(),
            hostname: "host".into(),
        };
        let repository = Repository::create_filesystem(dir.path(), "pw", &owner).unwrap();
        assert!(repository.content_writer(owner.clone()).is_ok());
        let locked = kdf::encrypt_format_block(
            &repository.format_key[..],
            &repository.format_blob.unique_id,
            br#"{"retentionMode":"COMPLIANCE","retentionPeriod":86400000000000}"#,
        );
        let storage = FilesystemStorage::open(dir.path()).unwrap();
        storage.put_blob(BLOBCFG_BLOB_ID, &locked).unwrap();
        let before = storage.list_blobs("").unwrap();

        let reopened = Repository::open_filesystem(dir.path(), "pw").unwrap();
        let message = match reopened.content_writer(owner) {
            Err(e @ Error::RetentionUnsupported { .. }) => e.to_string(),
            Err(other) => panic!("unexpected {other:?}"),
            Ok(_) => panic!("a writer for a locked repository"),
        };
        assert!(
            message.contains("COMPLIANCE for 1 days")
                && message.contains(&dir.path().display().to_string()),
            "{message}"
        );
        assert_eq!(storage.list_blobs("").unwrap(), before);
        // Reading is unaffected.
        let mut store = reopened.manifest_store();
        store.refresh().unwrap();
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn a_read_only_storage_gives_no_writer() {
        let dir = tempfile::tempdir().unwrap();
        let owner = SessionOwner {
            username: "me".into(),
            hostname: "host".into(),
        };
        Repository::create_filesystem(dir.path(), "pw", &owner).unwrap();
        let reader: Arc<dyn BlobReader> = Arc::new(FilesystemStorage::open(dir.path()).unwrap());
        let repository = Repository::open(reader, "pw").unwrap();
        assert!(matches!(
            repository.content_writer(owner),
            Err(Error::ReadOnlyStorage { .. })
        ));
    }

    fn owner() -> SessionOwner {
        SessionOwner {
            username: "me".into(),
            hostname: "host".into(),
        }
    }

    /// A new filesystem repository in `dir/repo` behind `dir/repository.config`, with the
    /// password where Kopia persists it (base64, beside the config).
    fn connected(dir: &Path, password: &str) -> PathBuf {
        use base64::Engine;
        let storage = dir.join("repo");
        Repository::create_filesystem(&storage, password, &owner()).unwrap();
        let config = dir.join("repository.config");
        let json =
            serde_json::json!({"storage": {"type": "filesystem", "config": {"path": storage}}});
        std::fs::write(&config, json.to_string()).unwrap();
        let encoded = base64::engine::general_purpose::STANDARD.encode(password);
        std::fs::write(dir.join("repository.config.kopia-password"), encoded).unwrap();
        config
    }

    #[test]
    fn a_later_open_derives_the_key_beside_the_storage_from_the_remembered_salt_only() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let config = connected(dir.path(), "pw");
        // A filesystem config, opened as a network one is: with a cache root.
        let open = || {
            let loaded = client::load(&config).unwrap();
            Repository::open_loaded_config(&config, loaded, false, Some(cache.path().into()))
        };
        let early = |repository: &Repository| repository.timings().key_started_early;

        let (first, _) = open().unwrap();
        assert!(!early(&first), "nothing was remembered yet");
        let (second, _) = open().unwrap();
        assert!(early(&second));
        assert_eq!(second.format_key[..], first.format_key[..]);
        let mut store = second.manifest_store();
        store.refresh().unwrap();
        assert_eq!(store.len(), 1);

        // What is remembered: the salt and the algorithm, nothing to test passwords against.
        let salts = cache.path().join("key-salts");
        let files: Vec<_> = std::fs::read_dir(&salts)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(files.len(), 1);
        let remembered: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
        let keys: Vec<&String> = remembered.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["keyAlgo", "uniqueID"]);
        let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!((mode(&salts), mode(&files[0])), (0o700, 0o600));

        // A repository created anew where the old one was has a salt of its own.
        std::fs::remove_dir_all(dir.path().join("repo")).unwrap();
        connected(dir.path(), "pw");
        let (third, _) = open().unwrap();
        assert!(!early(&third));
        assert_ne!(third.format_key[..], first.format_key[..]);
        third.manifest_store().refresh().unwrap();
        assert!(early(&open().unwrap().0));

        // A wrong password is refused as ever, the salt being remembered or not.
        std::fs::write(
            dir.path().join("repository.config.kopia-password"),
            "d3Jvbmc=",
        )
        .unwrap();
        assert!(matches!(open(), Err(Error::InvalidPassword)));
        let forgetful = Repository::open_client_config(&config, true);
        assert!(matches!(forgetful, Err(Error::InvalidPassword)));
    }

    #[test]
    fn the_index_listing_is_taken_during_the_key_derivation_and_serves_the_first_refresh() {
        let dir = tempfile::tempdir().unwrap();
        Repository::create_filesystem(dir.path(), "pw", &owner()).unwrap();
        let counting = Arc::new(CountingStorage::new(
            FilesystemStorage::open(dir.path()).unwrap(),
        ));
        let repository =
            Repository::open(Arc::clone(&counting) as Arc<dyn BlobWriter>, "pw").unwrap();
        assert_eq!(
            counting.take_counts().lists,
            1,
            "the listing is taken at open"
        );
        let mut store = repository.manifest_store();
        store.refresh().unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(
            counting.take_counts().lists,
            0,
            "the first refresh lists nothing"
        );
        store.refresh().unwrap();
        assert_eq!(counting.take_counts().lists, 1, "later ones list again");
    }
}
