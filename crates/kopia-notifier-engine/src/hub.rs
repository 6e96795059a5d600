//! What the engine's handle and its pollers share: the state database, the settings, each
//! repository's runtime (status, list, poller) and the event channel to the shell, and the
//! messages a handle sends a poller. Pollers see the engine only through this hub.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};
use kopia_notifications::Severity;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::EngineError;
use crate::secrets::{OsKeyring, SecretStore};
use crate::state::{QueuedAck, RepoRecord, StateDb};
use crate::types::*;

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

/// What a handle asks of one repository's poller.
pub(crate) enum PollerMsg {
    /// Refresh now; answered once done.
    CheckNow(oneshot::Sender<()>),
    FsChanged,
    SettingsChanged,
    Ack {
        target: AckTarget,
        reply: oneshot::Sender<Result<AckReport, EngineError>>,
    },
    Stop,
}

pub(crate) enum AckTarget {
    One(String),
    AllPending,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct AckReport {
    pub result: AckResult,
    pub count: usize,
}

/// What pollers and handles share.
pub(crate) struct Hub {
    pub(crate) db: Mutex<StateDb>,
    pub(crate) shared: Mutex<Shared>,
    pub(crate) events: mpsc::Sender<EngineEvent>,
    pub(crate) options: EngineOptions,
}

pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) paused_until: Option<DateTime<Utc>>,
    pub(crate) repos: BTreeMap<RepoId, RepoRuntime>,
}

pub(crate) struct RepoRuntime {
    pub(crate) record: RepoRecord,
    pub(crate) location: String,
    pub(crate) status: RepositoryStatus,
    pub(crate) identity: String,
    /// Pending and acknowledged, newest first, queued acknowledgements applied.
    pub(crate) views: Vec<NotificationView>,
    pub(crate) poller: mpsc::Sender<PollerMsg>,
    pub(crate) task: Option<JoinHandle<()>>,
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves consistent data; a panic elsewhere must not wedge us.
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
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

    pub(crate) fn shown_popups(&self, repo: RepoId) -> BTreeSet<String> {
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

    pub(crate) fn tray(&self) -> TrayState {
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
            for view in runtime.views.iter().filter(|v| v.is_pending()) {
                match view.severity {
                    Severity::Error => tray.errors += 1,
                    Severity::Warning => tray.warnings += 1,
                    Severity::Normal => tray.normal += 1,
                }
            }
        }
        tray
    }

    pub(crate) fn pollers(&self) -> Vec<(RepoId, mpsc::Sender<PollerMsg>)> {
        lock(&self.shared)
            .repos
            .iter()
            .map(|(id, runtime)| (*id, runtime.poller.clone()))
            .collect()
    }

    pub(crate) fn poller(&self, repo: RepoId) -> Result<mpsc::Sender<PollerMsg>, EngineError> {
        lock(&self.shared)
            .repos
            .get(&repo)
            .map(|runtime| runtime.poller.clone())
            .ok_or(EngineError::UnknownRepository(repo))
    }
}

pub(crate) async fn ask_ack(
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
