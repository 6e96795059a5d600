//! [`ManifestAccess`] over a real Kopia repository: kopia-repo's manifest store, loaded once and
//! refreshed incrementally, written in one batch per call as a Kopia session would.

use std::collections::BTreeMap;
use std::path::Path;

use kopia_repo::client::ClientConfig;
use kopia_repo::content::writer::SessionOwner;
use kopia_repo::manifest::{self, ManifestStore};
use kopia_repo::repository::Repository;
use serde_json::value::RawValue;

use crate::store::{ManifestAccess, NewManifest, StoreError, StoreErrorKind, StoredManifest};

/// A repository's manifest store, read once when opened and kept current by writes and
/// [`refresh`](KopiaManifests::refresh).
pub struct KopiaManifests {
    repository: Repository,
    owner: SessionOwner,
    store: ManifestStore,
}

impl KopiaManifests {
    /// Loads the manifests of `repository`; writes are recorded as made by `owner`.
    pub fn new(repository: Repository, owner: SessionOwner) -> kopia_repo::Result<Self> {
        let mut store = repository.manifest_store();
        store.refresh()?;
        Ok(KopiaManifests {
            repository,
            owner,
            store,
        })
    }

    /// Opens the repository of a Kopia client config, with Kopia's password sources.
    pub fn open_client_config(config_file: &Path) -> kopia_repo::Result<(Self, ClientConfig)> {
        let (repository, client) = Repository::open_with_client_config(config_file)?;
        let manifests = KopiaManifests::new(repository, client.session_owner())?;
        Ok((manifests, client))
    }

    /// [`Self::open_client_config`] reading nothing from the blob cache, for the health checks
    /// (`check`, `verify`): a manifest pack damaged on the server must be found.
    pub fn open_client_config_from_storage(
        config_file: &Path,
    ) -> kopia_repo::Result<(Self, ClientConfig)> {
        let (repository, client) = Repository::open_with_client_config_from_storage(config_file)?;
        let manifests = KopiaManifests::new(repository, client.session_owner())?;
        Ok((manifests, client))
    }

    /// The client config of a read-only connection (`kopia repository connect --readonly`):
    /// every write through it is refused.
    pub fn read_only_config(&self) -> Option<&Path> {
        self.repository.read_only_config()
    }

    /// The repository, for what is not a manifest (Kopia's maintenance schedule blob).
    pub fn repository(&self) -> &Repository {
        &self.repository
    }

    /// Picks up what others wrote since; cheap when nothing changed (one listing, no reads).
    pub fn refresh(&mut self) -> kopia_repo::Result<bool> {
        Ok(self.store.refresh()?.changed)
    }
}

/// Maps a repository error to the seam's kinds, keeping its message.
pub fn store_error(error: kopia_repo::Error) -> StoreError {
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
                labels: entry.labels().to_labels(),
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
            .map(to_repo_manifest)
            .collect::<Result<Vec<_>, StoreError>>()?;
        let writer = self
            .repository
            .content_writer(self.owner.clone())
            .map_err(store_error)?;
        self.store
            .write(&writer, &puts, &deletes)
            .map_err(store_error)
    }

    fn write_with_ids(
        &mut self,
        puts: Vec<(String, NewManifest)>,
        deletes: Vec<String>,
    ) -> Result<(), StoreError> {
        let puts = puts
            .into_iter()
            .map(|(id, put)| Ok((id, to_repo_manifest(put)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let writer = self
            .repository
            .content_writer(self.owner.clone())
            .map_err(store_error)?;
        self.store
            .write_with_ids(&writer, &puts, &deletes)
            .map(drop)
            .map_err(store_error)
    }

    fn damaged(&self) -> Vec<kopia_repo::verify::Damage> {
        self.store.damaged().into_iter().cloned().collect()
    }
}

fn to_repo_manifest(put: NewManifest) -> Result<manifest::NewManifest, StoreError> {
    let data = RawValue::from_string(put.data.to_string())
        .map_err(|e| StoreError::new(StoreErrorKind::Other, e.to_string()))?;
    Ok(manifest::NewManifest {
        labels: put.labels,
        data,
    })
}
