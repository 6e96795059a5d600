//! The seam between the notification commands and a Kopia repository: `ManifestAccess` over
//! kopia-repo's manifest store, opened on first use from Kopia's client config.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Result;
use kopia_notifications::store::{
    ManifestAccess, NewManifest, StoreError, StoreErrorKind, StoredManifest,
};
use kopia_notifications::Identity;
use kopia_repo::client::{self, ClientConfig};
use kopia_repo::manifest::{self, ManifestStore};
use kopia_repo::repository::Repository;
use serde_json::value::RawValue;

use crate::notification_commands::NotificationRepository;

/// A repository's manifest store, read once when opened and kept current by writes.
pub struct KopiaManifests {
    repository: Repository,
    client: ClientConfig,
    store: ManifestStore,
}

impl KopiaManifests {
    pub fn open(config_file: &Path) -> kopia_repo::Result<Self> {
        let (repository, client) = Repository::open_with_client_config(config_file)?;
        let mut store = repository.manifest_store();
        store.refresh()?;
        Ok(KopiaManifests {
            repository,
            client,
            store,
        })
    }
}

fn store_error(error: kopia_repo::Error) -> StoreError {
    use kopia_repo::Error as E;
    let kind = match &error {
        E::ManifestNotFound(_) => StoreErrorKind::NotFound,
        E::StorageUnreachable { .. } | E::BlobNotFound { .. } | E::PermissionDenied { .. } => {
            StoreErrorKind::Unreachable
        }
        _ => StoreErrorKind::Other,
    };
    StoreError::new(kind, error.to_string())
}

impl ManifestAccess for KopiaManifests {
    fn find(&self, filter: &BTreeMap<String, String>) -> Result<Vec<StoredManifest>, StoreError> {
        Ok(self
            .store
            .find(filter)
            .into_iter()
            .map(|entry| StoredManifest {
                id: entry.id.clone(),
                labels: entry.labels().clone(),
                modified: entry.modified,
                data: entry.data.get().to_string(),
            })
            .collect())
    }

    fn write(
        &mut self,
        puts: Vec<NewManifest>,
        deletes: Vec<String>,
    ) -> Result<Vec<String>, StoreError> {
        let puts = puts
            .into_iter()
            .map(|put| {
                let data = RawValue::from_string(put.data.to_string())
                    .map_err(|e| StoreError::new(StoreErrorKind::Other, e.to_string()))?;
                Ok(manifest::NewManifest {
                    labels: put.labels,
                    data,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let writer = self
            .repository
            .content_writer(self.client.session_owner())
            .map_err(store_error)?;
        self.store
            .write(&writer, &puts, &deletes)
            .map_err(store_error)
    }
}

/// Opens the repository the first time a command needs it, and remembers a failure.
pub struct LazyRepository {
    config_file: PathBuf,
    opened: Option<KopiaManifests>,
}

impl LazyRepository {
    pub fn new(config_file: PathBuf) -> Self {
        LazyRepository {
            config_file,
            opened: None,
        }
    }
}

impl NotificationRepository for LazyRepository {
    fn manifests(&mut self) -> Result<&mut dyn ManifestAccess> {
        if self.opened.is_none() {
            self.opened = Some(KopiaManifests::open(&self.config_file)?);
        }
        Ok(self.opened.as_mut().expect("opened above"))
    }
}

/// Who the commands act as: `--as`, else the connection's username and hostname (Kopia's
/// overrides included), else the OS user and host name.
pub fn current_identity(as_identity: Option<&str>, config_file: &Path) -> Result<Identity> {
    if let Some(text) = as_identity {
        return Ok(text.parse()?);
    }
    if let Ok(config) = client::load(config_file) {
        if !config.username.is_empty() && !config.hostname.is_empty() {
            return Ok(Identity::new(&config.username, &config.hostname)?);
        }
    }
    Ok(Identity::new(&os_user_name(), &os_host_name())?)
}

fn os_user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "nobody".into())
}

/// Kopia's default hostname: the OS host name, lower-cased and cut at the first dot.
fn os_host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "localhost".into());
    raw.trim()
        .split('.')
        .next()
        .unwrap_or("localhost")
        .to_lowercase()
}
