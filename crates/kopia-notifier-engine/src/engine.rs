//! [`Engine::start`] and [`EngineHandle`]: the state database, the first-run import or demo
//! setup, one poller per repository, and the view of everything they found. The handle is
//! cheap to clone; its calls go to the pollers (acknowledgements, checks) or read shared state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use kopia_notifications::Identity;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::EngineError;
use crate::hub::{ask_ack, lock, AckTarget, EngineOptions, Hub, PollerMsg, RepoRuntime, Shared};
use crate::poller::{Poller, StorageReach};
use crate::refresh::sort_newest_first;
use crate::secrets::SecretStore;
use crate::source;
use crate::state::{RepoKind, RepoRecord, StateDb, FIRST_RUN_DONE_KEY};
use crate::types::*;

/// Events waiting for the shell before pollers wait for it.
const EVENT_QUEUE: usize = 256;
const POLLER_QUEUE: usize = 32;
/// Shortest poll interval accepted in the settings.
pub const MIN_POLL_INTERVAL_SECS: u64 = 5;
/// Longest poll interval accepted in the settings (a day).
pub const MAX_POLL_INTERVAL_SECS: u64 = 86_400;

pub struct Engine;

/// Commands to the engine. Dropping every handle leaves the pollers running until the
/// runtime stops; call [`EngineHandle::shutdown`] to stop them.
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<Hub>,
}

impl Engine {
    /// Opens the state DB (`data_dir/state.sqlite3`, mode 0600, migrations), imports Kopia and
    /// KopiaUI connections on the first run (or creates and seeds the demo repository when
    /// `demo`), starts one poller task per repository, and returns a handle and the events.
    /// The shell must keep draining the events: when the queue is full, pollers wait.
    pub async fn start(
        config: EngineConfig,
    ) -> Result<(EngineHandle, mpsc::Receiver<EngineEvent>), EngineError> {
        Engine::start_with(config, EngineOptions::default()).await
    }

    /// [`Engine::start`] with other secret storage, config discovery or timings.
    pub async fn start_with(
        config: EngineConfig,
        options: EngineOptions,
    ) -> Result<(EngineHandle, mpsc::Receiver<EngineEvent>), EngineError> {
        let data_dir = config.data_dir.clone();
        let db = blocking(move || StateDb::open(&data_dir)).await??;
        let settings = db.settings()?;
        let paused_until = db.paused_until()?;
        if config.demo {
            let demo_dir = config.data_dir.join(source::DEMO_DIR_NAME);
            let dir = demo_dir.clone();
            blocking(move || source::create_demo_repository(&dir, Utc::now()))
                .await?
                .map_err(|source| EngineError::Repository {
                    location: demo_dir.display().to_string(),
                    source,
                })?;
            if db.repository_at(&demo_dir)?.is_none() {
                db.insert_repository("Demo", RepoKind::Demo, &demo_dir, None, Utc::now())?;
            }
            db.set_flag(FIRST_RUN_DONE_KEY)?;
        } else if !db.flag(FIRST_RUN_DONE_KEY)? {
            let discover = Arc::clone(&options.discover_kopia_configs);
            let found = blocking(move || {
                discover()
                    .into_iter()
                    .map(|path| {
                        let name = source::config_display_name(&path);
                        (path, name)
                    })
                    .collect::<Vec<_>>()
            })
            .await?;
            for (path, name) in found {
                if db.repository_at(&path)?.is_none() {
                    tracing::info!(config = %path.display(), "importing Kopia connection");
                    db.insert_repository(&name, RepoKind::KopiaConfig, &path, None, Utc::now())?;
                }
            }
            db.set_flag(FIRST_RUN_DONE_KEY)?;
        }
        let records = db.repositories()?;
        let (events, receiver) = mpsc::channel(EVENT_QUEUE);
        let inner = Arc::new(Hub {
            db: Mutex::new(db),
            shared: Mutex::new(Shared {
                settings,
                paused_until,
                repos: BTreeMap::new(),
            }),
            events,
            options,
        });
        for record in records {
            start_poller(&inner, record).await;
        }
        Ok((EngineHandle { inner }, receiver))
    }
}

/// Runs blocking work off the async threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, EngineError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|_| EngineError::Stopped)
}

/// Registers a repository's runtime (with its cached list) and spawns its poller.
async fn start_poller(inner: &Arc<Hub>, record: RepoRecord) {
    let known = inner
        .db()
        .known_notifications(record.id)
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "cached list unavailable");
            None
        })
        .map(|known| known.views);
    let for_location = record.clone();
    let (location, storage) = blocking(move || match source::storage_root(&for_location) {
        Some(root) if for_location.kind == RepoKind::KopiaConfig => {
            (root.display().to_string(), StorageReach::Local)
        }
        Some(_) => (
            for_location.location.display().to_string(),
            StorageReach::Local,
        ),
        None => (
            for_location.location.display().to_string(),
            StorageReach::Network,
        ),
    })
    .await
    .unwrap_or_else(|_| (record.location.display().to_string(), StorageReach::Local));
    let (sender, messages) = mpsc::channel(POLLER_QUEUE);
    let poller = Poller::new(
        record.clone(),
        storage,
        Arc::clone(inner),
        messages,
        sender.clone(),
        known,
    );
    let id = record.id;
    lock(&inner.shared).repos.insert(
        id,
        RepoRuntime {
            record,
            location,
            status: RepositoryStatus::Loading,
            identity: String::new(),
            views: Vec::new(),
            poller: sender,
            task: None,
        },
    );
    let task = tokio::spawn(poller.run());
    if let Some(runtime) = lock(&inner.shared).repos.get_mut(&id) {
        runtime.task = Some(task);
    }
}

/// Checks settings from the window before they are saved.
fn validate_settings(settings: &mut Settings) -> Result<(), EngineError> {
    for (name, seconds) in [
        ("poll interval", settings.poll_interval_secs),
        ("network poll interval", settings.network_poll_interval_secs),
    ] {
        if !(MIN_POLL_INTERVAL_SECS..=MAX_POLL_INTERVAL_SECS).contains(&seconds) {
            return Err(EngineError::InvalidSetting {
                name,
                reason: format!(
                    "{seconds} s is outside {MIN_POLL_INTERVAL_SECS}..={MAX_POLL_INTERVAL_SECS} s"
                ),
            });
        }
    }
    settings.identity_override = match settings.identity_override.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(text) => {
            text.parse::<Identity>()
                .map_err(|e| EngineError::InvalidSetting {
                    name: "identity",
                    reason: e.to_string(),
                })?;
            Some(text.to_string())
        }
    };
    Ok(())
}

impl EngineHandle {
    /// Everything the window and tray show.
    pub async fn overview(&self) -> Overview {
        let tray = self.inner.tray();
        let shared = lock(&self.inner.shared);
        let repositories: Vec<RepositoryView> = shared
            .repos
            .values()
            .map(|runtime| RepositoryView {
                id: runtime.record.id,
                name: runtime.record.name.clone(),
                location: runtime.location.clone(),
                status: runtime.status.clone(),
                identity: runtime.identity.clone(),
            })
            .collect();
        let mut notifications: Vec<NotificationView> = shared
            .repos
            .values()
            .flat_map(|runtime| runtime.views.iter().map(NotificationView::for_list))
            .collect();
        sort_newest_first(&mut notifications);
        Overview {
            tray,
            onboarding: repositories.is_empty(),
            repositories,
            notifications,
        }
    }

    /// One notification with its whole message and details, as the window opens it.
    pub async fn notification(
        &self,
        repo: RepoId,
        notification_id: &str,
    ) -> Result<NotificationView, EngineError> {
        let shared = lock(&self.inner.shared);
        let runtime = shared
            .repos
            .get(&repo)
            .ok_or(EngineError::UnknownRepository(repo))?;
        runtime
            .views
            .iter()
            .find(|view| view.id == notification_id)
            .cloned()
            .ok_or_else(|| {
                kopia_notifications::Error::UnknownNotification(notification_id.to_string()).into()
            })
    }

    /// Acknowledges one notification: written now, or queued while the repository cannot be
    /// reached (written when it returns). Acknowledging an acknowledged one changes nothing.
    pub async fn ack(&self, repo: RepoId, notification_id: &str) -> Result<AckResult, EngineError> {
        let poller = self.inner.poller(repo)?;
        let report = ask_ack(&poller, AckTarget::One(notification_id.to_string())).await?;
        Ok(report.result)
    }

    /// Acknowledges everything pending in every repository; returns how many (written or
    /// queued). Every repository is tried; the first failure is returned.
    pub async fn ack_all(&self) -> Result<usize, EngineError> {
        let mut count = 0;
        let mut failure = None;
        for (_, poller) in self.inner.pollers() {
            match ask_ack(&poller, AckTarget::AllPending).await {
                Ok(report) => count += report.count,
                Err(error) => failure = failure.or(Some(error)),
            }
        }
        failure.map_or(Ok(count), Err)
    }

    /// Refreshes every repository now, including ones waiting out a backoff or refusing the
    /// password, and returns once each has been checked (its events are queued by then).
    pub async fn check_now(&self) {
        let mut answers = Vec::new();
        for (_, poller) in self.inner.pollers() {
            let (done, answer) = oneshot::channel();
            if poller.send(PollerMsg::CheckNow(done)).await.is_ok() {
                answers.push(answer);
            }
        }
        for answer in answers {
            // A poller that stopped meanwhile has nothing more to check.
            let _ = answer.await;
        }
    }

    /// Pauses popups until the given time (persisted); `None` resumes them.
    pub async fn pause_popups(&self, until: Option<DateTime<Utc>>) {
        if let Err(error) = self.inner.db().set_paused_until(until) {
            tracing::error!(%error, "pause not saved");
        }
        lock(&self.inner.shared).paused_until = until;
        self.inner.emit_changed().await;
    }

    pub async fn settings(&self) -> Settings {
        self.inner.settings()
    }

    /// Validates, saves and applies settings; every repository is checked again (a new
    /// identity changes what is pending, and a fixed password should be tried).
    pub async fn update_settings(&self, mut settings: Settings) -> Result<(), EngineError> {
        validate_settings(&mut settings)?;
        self.inner.db().save_settings(&settings)?;
        lock(&self.inner.shared).settings = settings;
        for (_, poller) in self.inner.pollers() {
            let _ = poller.send(PollerMsg::SettingsChanged).await;
        }
        self.inner.emit_changed().await;
        Ok(())
    }

    /// Adds a repository: a Kopia config file (its password from Kopia's keyring entry or
    /// password file), or a filesystem repository by path whose password is checked and then
    /// kept in the OS keyring.
    pub async fn add_repository(&self, request: AddRepository) -> Result<RepoId, EngineError> {
        let secrets = Arc::clone(&self.inner.options.secrets);
        let (name, kind, location, account) =
            blocking(move || prepare_add(request, secrets)).await??;
        let record = {
            let db = self.inner.db();
            if db.repository_at(&location)?.is_some() {
                return Err(EngineError::AlreadyConfigured(location));
            }
            db.insert_repository(&name, kind, &location, account.as_deref(), Utc::now())?
        };
        let id = record.id;
        start_poller(&self.inner, record).await;
        self.inner.emit_changed().await;
        Ok(id)
    }

    /// Stops watching a repository and forgets its state (and our keyring item). Its open
    /// popups are withdrawn.
    pub async fn remove_repository(&self, repo: RepoId) -> Result<(), EngineError> {
        let runtime = lock(&self.inner.shared)
            .repos
            .remove(&repo)
            .ok_or(EngineError::UnknownRepository(repo))?;
        stop_poller(runtime.poller, runtime.task).await;
        self.inner.db().remove_repository(repo)?;
        if let Some(account) = &runtime.record.keyring_account {
            let secrets = Arc::clone(&self.inner.options.secrets);
            let account = account.clone();
            if let Ok(Err(error)) = blocking(move || secrets.delete(&account)).await {
                tracing::warn!(%error, "keyring item not deleted");
            }
        }
        let ids: Vec<String> = runtime
            .views
            .iter()
            .filter(|v| v.is_pending())
            .map(|v| v.id.clone())
            .collect();
        if !ids.is_empty() {
            self.inner.emit(EngineEvent::Withdrawn { repo, ids }).await;
        }
        self.inner.emit_changed().await;
        Ok(())
    }

    /// Stops every poller and waits for them (an acknowledgement being written finishes).
    pub async fn shutdown(self) {
        let runtimes: Vec<(mpsc::Sender<PollerMsg>, Option<JoinHandle<()>>)> =
            lock(&self.inner.shared)
                .repos
                .values_mut()
                .map(|runtime| (runtime.poller.clone(), runtime.task.take()))
                .collect();
        for (poller, task) in runtimes {
            stop_poller(poller, task).await;
        }
    }
}

async fn stop_poller(poller: mpsc::Sender<PollerMsg>, task: Option<JoinHandle<()>>) {
    let _ = poller.send(PollerMsg::Stop).await;
    if let Some(task) = task {
        let _ = task.await;
    }
}

/// Checks an add request and returns (name, kind, location, keyring account). A filesystem
/// repository's password is verified by opening it before it is stored.
fn prepare_add(
    request: AddRepository,
    secrets: Arc<dyn SecretStore>,
) -> Result<(String, RepoKind, PathBuf, Option<String>), EngineError> {
    match request {
        AddRepository::KopiaConfig { path } => {
            kopia_repo::client::load(&path).map_err(|source| EngineError::Repository {
                location: path.display().to_string(),
                source,
            })?;
            Ok((
                source::config_display_name(&path),
                RepoKind::KopiaConfig,
                path,
                None,
            ))
        }
        AddRepository::Filesystem {
            path,
            password,
            name,
        } => {
            let path = absolute(&path);
            let location = path.display().to_string();
            kopia_repo::repository::Repository::open_filesystem(&path, password.expose()).map_err(
                |source| EngineError::Repository {
                    location: location.clone(),
                    source,
                },
            )?;
            secrets
                .store(&location, password.expose())
                .map_err(EngineError::Keyring)?;
            let name = name
                .filter(|n| !n.trim().is_empty())
                .or_else(|| source::file_name(&path))
                .unwrap_or_else(|| location.clone());
            Ok((name, RepoKind::Filesystem, path, Some(location)))
        }
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_validated_and_normalised() {
        let mut settings = Settings {
            identity_override: Some("  ".into()),
            ..Settings::default()
        };
        validate_settings(&mut settings).unwrap();
        assert_eq!(settings.identity_override, None);
        let mut bad = Settings {
            poll_interval_secs: 1,
            ..Settings::default()
        };
        assert!(validate_settings(&mut bad).is_err());
        let mut bad = Settings {
            network_poll_interval_secs: 86_401,
            ..Settings::default()
        };
        assert!(validate_settings(&mut bad).is_err());
        let mut bad = Settings {
            identity_override: Some("no-at-sign".into()),
            ..Settings::default()
        };
        assert!(validate_settings(&mut bad).is_err());
    }
}
