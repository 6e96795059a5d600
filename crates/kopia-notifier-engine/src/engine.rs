//! [`Engine::start`] and [`EngineHandle`]: the state database, the first-run import or demo
//! setup, one poller per repository, and the view of everything they found. The handle is
//! cheap to clone; its calls go to the pollers (acknowledgements, checks) or read shared state.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kopia_notifications::{Identity, Severity};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::EngineError;
use crate::poller::{sort_newest_first, AckReport, AckTarget, Poller, PollerMsg};
use crate::secrets::{OsKeyring, SecretStore};
use crate::source;
use crate::state::{QueuedAck, RepoKind, RepoRecord, StateDb, FIRST_RUN_DONE_KEY};
use crate::types::*;

/// Events waiting for the shell before pollers wait for it.
const EVENT_QUEUE: usize = 256;
const POLLER_QUEUE: usize = 32;
/// Shortest poll interval accepted in the settings.
pub const MIN_POLL_INTERVAL_SECS: u64 = 5;
/// Longest poll interval accepted in the settings (a day).
pub const MAX_POLL_INTERVAL_SECS: u64 = 86_400;

/// Where the engine finds secrets and Kopia's configs, and its timings; the defaults are the
/// real desktop ones. Tests swap in memory secrets and a fixed config list.
#[derive(Clone)]
pub struct EngineOptions {
    pub secrets: Arc<dyn SecretStore>,
    /// Kopia and KopiaUI config files to import on the first run.
    pub discover_kopia_configs: Arc<dyn Fn() -> Vec<PathBuf> + Send + Sync>,
    /// Quiet time after a filesystem event before refreshing.
    pub fs_debounce: Duration,
    /// First retry of an unreachable repository; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            secrets: Arc::new(OsKeyring),
            discover_kopia_configs: Arc::new(kopia_repo::client::discover_config_files),
            fs_debounce: Duration::from_millis(200),
            min_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
        }
    }
}

pub struct Engine;

/// Commands to the engine. Dropping every handle leaves the pollers running until the
/// runtime stops; call [`EngineHandle::shutdown`] to stop them.
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<Inner>,
}

/// What pollers and handles share.
pub(crate) struct Inner {
    db: Mutex<StateDb>,
    shared: Mutex<Shared>,
    events: mpsc::Sender<EngineEvent>,
    pub(crate) options: EngineOptions,
}

struct Shared {
    settings: Settings,
    paused_until: Option<DateTime<Utc>>,
    repos: BTreeMap<RepoId, RepoRuntime>,
}

struct RepoRuntime {
    record: RepoRecord,
    location: String,
    status: RepositoryStatus,
    identity: String,
    /// Pending and acknowledged, newest first, queued acknowledgements applied.
    views: Vec<NotificationView>,
    poller: mpsc::Sender<PollerMsg>,
    task: Option<JoinHandle<()>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves consistent data; a panic elsewhere must not wedge us.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
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
        let inner = Arc::new(Inner {
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
async fn start_poller(inner: &Arc<Inner>, record: RepoRecord) {
    let known = inner
        .db()
        .known_notifications(record.id)
        .unwrap_or_else(|error| {
            tracing::warn!(%error, "cached list unavailable");
            None
        })
        .map(|known| known.views);
    let for_location = record.clone();
    let location = blocking(move || match source::storage_root(&for_location) {
        Some(root) if for_location.kind == RepoKind::KopiaConfig => root.display().to_string(),
        _ => for_location.location.display().to_string(),
    })
    .await
    .unwrap_or_else(|_| record.location.display().to_string());
    let (sender, messages) = mpsc::channel(POLLER_QUEUE);
    let poller = Poller::new(
        record.clone(),
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

impl Inner {
    pub(crate) fn db(&self) -> MutexGuard<'_, StateDb> {
        lock(&self.db)
    }

    pub(crate) fn settings(&self) -> Settings {
        lock(&self.shared).settings.clone()
    }

    pub(crate) fn paused_until(&self) -> Option<DateTime<Utc>> {
        lock(&self.shared).paused_until
    }

    pub(crate) fn queued_acks(&self, repo: RepoId) -> Vec<QueuedAck> {
        self.db().queued_acks(repo).unwrap_or_else(|error| {
            tracing::error!(%error, "queued acknowledgements unreadable");
            Vec::new()
        })
    }

    pub(crate) fn unqueue_acks(&self, repo: RepoId, done: &[QueuedAck]) {
        if done.is_empty() {
            return;
        }
        if let Err(error) = self.db().unqueue_acks(repo, done) {
            // They stay queued and are replayed; the inbox rules skip what is written.
            tracing::error!(%error, "written acknowledgements not unqueued");
        }
    }

    pub(crate) fn shown_popups(&self, repo: RepoId) -> std::collections::BTreeSet<String> {
        self.db().shown_popups(repo).unwrap_or_else(|error| {
            tracing::error!(%error, "shown popups unreadable");
            Default::default()
        })
    }

    /// Stores a repository's status; says whether the change is worth an event (a new check
    /// time alone is not).
    pub(crate) fn set_status(&self, repo: RepoId, status: RepositoryStatus) -> bool {
        let mut shared = lock(&self.shared);
        let Some(runtime) = shared.repos.get_mut(&repo) else {
            return false;
        };
        let changed = !matches!(
            (&runtime.status, &status),
            (RepositoryStatus::Ok { .. }, RepositoryStatus::Ok { .. })
        ) && runtime.status != status;
        runtime.status = status;
        changed
    }

    /// Stores a repository's current list; says whether the list or the identity changed.
    pub(crate) fn set_views(
        &self,
        repo: RepoId,
        views: Vec<NotificationView>,
        identity: String,
    ) -> bool {
        let mut shared = lock(&self.shared);
        let Some(runtime) = shared.repos.get_mut(&repo) else {
            return false;
        };
        let changed = runtime.views != views || runtime.identity != identity;
        runtime.views = views;
        runtime.identity = identity;
        changed
    }

    pub(crate) async fn emit(&self, event: EngineEvent) {
        // No receiver: the shell is gone; nothing to tell.
        let _ = self.events.send(event).await;
    }

    pub(crate) async fn emit_changed(&self) {
        let tray = self.tray();
        self.emit(EngineEvent::Changed(tray)).await;
    }

    fn tray(&self) -> TrayState {
        let shared = lock(&self.shared);
        let now = Utc::now();
        let mut tray = TrayState {
            paused_until: shared.paused_until.filter(|until| *until > now),
            ..TrayState::default()
        };
        for runtime in shared.repos.values() {
            match runtime.status {
                RepositoryStatus::Unreachable { .. } => tray.unreachable += 1,
                RepositoryStatus::WrongPassword => tray.wrong_password += 1,
                RepositoryStatus::Ok { .. } | RepositoryStatus::Loading => {}
            }
            for view in runtime.views.iter().filter(|v| v.acknowledged_at.is_none()) {
                match view.severity.parse() {
                    Ok(Severity::Error) => tray.errors += 1,
                    Ok(Severity::Warning) => tray.warnings += 1,
                    _ => tray.normal += 1,
                }
            }
        }
        tray
    }

    fn pollers(&self) -> Vec<(RepoId, mpsc::Sender<PollerMsg>)> {
        lock(&self.shared)
            .repos
            .iter()
            .map(|(id, runtime)| (*id, runtime.poller.clone()))
            .collect()
    }

    fn poller(&self, repo: RepoId) -> Result<mpsc::Sender<PollerMsg>, EngineError> {
        lock(&self.shared)
            .repos
            .get(&repo)
            .map(|runtime| runtime.poller.clone())
            .ok_or(EngineError::UnknownRepository(repo))
    }
}

async fn ask_ack(
    poller: &mpsc::Sender<PollerMsg>,
    target: AckTarget,
) -> Result<AckReport, EngineError> {
    let (reply, answer) = oneshot::channel();
    poller
        .send(PollerMsg::Ack { target, reply })
        .await
        .map_err(|_| EngineError::Stopped)?;
    answer.await.map_err(|_| EngineError::Stopped)?
}

/// Checks settings from the window before they are saved.
fn validate_settings(settings: &mut Settings) -> Result<(), EngineError> {
    if !(MIN_POLL_INTERVAL_SECS..=MAX_POLL_INTERVAL_SECS).contains(&settings.poll_interval_secs) {
        return Err(EngineError::InvalidSetting {
            name: "poll interval",
            reason: format!(
                "{} s is outside {MIN_POLL_INTERVAL_SECS}..={MAX_POLL_INTERVAL_SECS} s",
                settings.poll_interval_secs
            ),
        });
    }
    settings
        .min_popup_severity
        .parse::<Severity>()
        .map_err(|e| EngineError::InvalidSetting {
            name: "minimum popup severity",
            reason: e.to_string(),
        })?;
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
            .flat_map(|runtime| runtime.views.iter().cloned())
            .collect();
        sort_newest_first(&mut notifications);
        Overview {
            tray,
            onboarding: repositories.is_empty(),
            repositories,
            notifications,
        }
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
    /// password.
    pub async fn check_now(&self) {
        for (_, poller) in self.inner.pollers() {
            let _ = poller.send(PollerMsg::CheckNow).await;
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
            .filter(|v| v.acknowledged_at.is_none())
            .map(|v| v.id.clone())
            .collect();
        if !ids.is_empty() {
            self.inner.emit(EngineEvent::Withdrawn { repo, ids }).await;
        }
        self.inner.emit_changed().await;
        Ok(())
    }

    /// Records that the shell showed a popup. The engine already records every notification
    /// it sends in [`EngineEvent::NewPending`] before sending it, so this is idempotent extra.
    pub async fn mark_popup_shown(
        &self,
        repo: RepoId,
        notification_id: &str,
    ) -> Result<(), EngineError> {
        if !lock(&self.inner.shared).repos.contains_key(&repo) {
            return Err(EngineError::UnknownRepository(repo));
        }
        self.inner
            .db()
            .mark_popups_shown(repo, &[notification_id.to_string()], Utc::now())
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
            min_popup_severity: "loud".into(),
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
