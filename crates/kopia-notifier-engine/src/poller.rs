//! One poller task per repository: refreshes on its interval and on filesystem events
//! (debounced), flushes queued acknowledgements, tracks reachability with backoff, and
//! publishes the list, the popups to show and the popups to withdraw. Repository access runs
//! on `spawn_blocking`; the rules of what is pending live in `kopia_notifications`.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use kopia_notifications::health::live::LiveChecks;
use kopia_notifications::kopia_store::KopiaManifests;
use kopia_notifications::{
    Identity, InboxItem, ListOptions, Notifications, Origin, Overlay, Severity, Status,
};
use notify::{RecursiveMode, Watcher};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::diff::{diff_pending, PendingEntry};
use crate::engine::Inner;
use crate::error::EngineError;
use crate::source::{self, ReachError};
use crate::state::{QueuedAck, RepoRecord};
use crate::types::{AckResult, EngineEvent, NotificationView, RepositoryStatus};

/// How long a repository with a wrong password waits before trying again by itself: in
/// practice only a settings change or "check now" retries it.
const WRONG_PASSWORD_RETRY: Duration = Duration::from_secs(24 * 3600);
/// How soon a repository whose password sits in an unresponsive or locked keyring is tried
/// again: reading never prompts, so trying is cheap, and the keyring is usually back quickly
/// (after login, once D-Bus activation finished).
const KEYRING_RETRY: Duration = Duration::from_secs(30);

pub(crate) enum PollerMsg {
    CheckNow,
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

/// The wait before retry number `failures` (1 = first failure): `min` doubling up to `max`.
pub fn backoff(failures: u32, min: Duration, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    min.saturating_mul(1u32 << doublings).min(max)
}

/// How long to wait before the next refresh, given how the last one went.
fn retry_delay(reach: Reach, poll_interval: Duration, backoff: Duration) -> Duration {
    match reach {
        Reach::Ok | Reach::Loading => poll_interval,
        Reach::Unreachable => backoff,
        Reach::WrongPassword => WRONG_PASSWORD_RETRY,
        Reach::KeyringUnavailable => KEYRING_RETRY.min(poll_interval.max(KEYRING_RETRY / 6)),
    }
}

/// What one successful refresh read.
struct Refreshed {
    identity: Identity,
    /// Pending and acknowledged notifications for `identity`.
    items: Vec<InboxItem>,
    /// Every notification manifest ID in the repository, any recipient or status.
    all_ids: BTreeSet<String>,
    /// Queued acknowledgements written now, found written already, or impossible (the
    /// notification is gone): all to forget.
    flushed: Vec<QueuedAck>,
}

/// An open repository and the health checks that run over it on every refresh.
pub(crate) struct Opened {
    manifests: KopiaManifests,
    checks: LiveChecks,
}

/// Refreshes (or opens) the manifest store, writes queued acknowledgements, runs the health
/// checks and lists. Returns the store for next time, or `None` after a failure so the next
/// try reopens.
fn refresh_blocking(
    open: Option<Opened>,
    record: &RepoRecord,
    secrets: &dyn crate::secrets::SecretStore,
    identity_override: Option<&str>,
    queued: Vec<QueuedAck>,
    now: DateTime<Utc>,
) -> (Option<Opened>, Result<Refreshed, ReachError>) {
    let identity = source::identity_for(record, identity_override);
    let (mut opened, changed) = match open {
        Some(mut opened) => match opened.manifests.refresh() {
            Ok(changed) => (opened, changed),
            Err(error) => return (None, Err(ReachError::from_repo(&error))),
        },
        None => match source::open_manifests(record, secrets, &identity) {
            Ok(manifests) => {
                let checks = LiveChecks::default();
                (Opened { manifests, checks }, true)
            }
            Err(error) => return (None, Err(error)),
        },
    };
    match flush_and_list(&mut opened, changed, identity, queued, now) {
        Ok(refreshed) => (Some(opened), Ok(refreshed)),
        Err(error) => (None, Err(ReachError::from_domain(&error))),
    }
}

/// Runs the health checks over the manifests in memory: on a writable connection the new
/// findings and resolutions are written (deterministic IDs: several machines write each once);
/// on a read-only one they are returned to be shown locally. A failed check is logged and
/// leaves the list as the repository has it: it must not take the repository offline.
fn health_check(
    opened: &mut Opened,
    changed: bool,
    identity: &Identity,
    now: DateTime<Utc>,
) -> Vec<(String, kopia_notifications::NewManifest)> {
    let origin = Origin {
        user: identity.clone(),
        command: Some("kopia-notifier".into()),
    };
    // Times of day and cron entries are the scheduling machine's wall clock: this one's.
    match opened.checks.run(
        &mut opened.manifests,
        changed,
        None,
        &origin,
        now,
        &chrono::Local,
    ) {
        Ok(outcome) => {
            for problem in &outcome.problems {
                tracing::debug!(%problem, "health check");
            }
            if outcome.written {
                Vec::new()
            } else {
                outcome.plan.puts()
            }
        }
        Err(error) => {
            tracing::warn!(%error, "health check failed");
            Vec::new()
        }
    }
}

fn flush_and_list(
    opened: &mut Opened,
    changed: bool,
    identity: Identity,
    queued: Vec<QueuedAck>,
    now: DateTime<Utc>,
) -> Result<Refreshed, kopia_notifications::Error> {
    let manifests = &mut opened.manifests;
    let mut flushed = Vec::new();
    if let Some(config) = manifests.read_only_config() {
        // Queued before the connection became read-only: they can never be written.
        if !queued.is_empty() {
            tracing::warn!(config = %config.display(), count = queued.len(), "read-only connection: queued acknowledgements dropped");
        }
        flushed.extend(queued);
    } else if !queued.is_empty() {
        let inbox = Notifications::new(manifests).inbox()?;
        let mut by_identity: BTreeMap<String, Vec<QueuedAck>> = BTreeMap::new();
        for ack in queued {
            by_identity
                .entry(ack.identity.clone())
                .or_default()
                .push(ack);
        }
        for (who, acks) in by_identity {
            let Ok(who) = who.parse::<Identity>() else {
                flushed.extend(acks);
                continue;
            };
            // Acknowledge only what still exists for `who`; the rest can never be written.
            let addressed: HashSet<&str> = inbox
                .notifications()
                .iter()
                .filter(|n| n.recipient.includes(&who))
                .map(|n| n.id.as_str())
                .collect();
            let (valid, gone): (Vec<QueuedAck>, Vec<QueuedAck>) = acks
                .into_iter()
                .partition(|ack| addressed.contains(ack.notification_id.as_str()));
            for ack in &gone {
                tracing::info!(id = %ack.notification_id, "queued acknowledgement dropped: notification gone");
            }
            flushed.extend(gone);
            if !valid.is_empty() {
                let ids: Vec<String> = valid.iter().map(|a| a.notification_id.clone()).collect();
                // Already acknowledged ones (a write that completed before a crash) are
                // skipped by the inbox rules, so a replay never writes twice.
                let outcome = Notifications::new(manifests).ack(&who, &ids, now)?;
                tracing::info!(
                    written = outcome.acknowledged.len(),
                    already = outcome.already_acknowledged.len(),
                    "queued acknowledgements flushed"
                );
                flushed.extend(valid);
            }
        }
    }
    let unwritten = health_check(opened, changed, &identity, now);
    let mut overlay = Overlay::new(&opened.manifests, unwritten, now);
    let inbox = Notifications::new(&mut overlay).inbox()?;
    let options = ListOptions {
        all: true,
        min_severity: Severity::Normal,
    };
    let items = inbox
        .list(&identity, now, options)
        .into_iter()
        .filter(|item| matches!(item.status, Status::Pending | Status::Acknowledged))
        .collect();
    let all_ids = inbox.notifications().iter().map(|n| n.id.clone()).collect();
    Ok(Refreshed {
        identity,
        items,
        all_ids,
        flushed,
    })
}

/// The list as read from the repository, newest first.
fn views_of(record: &RepoRecord, items: Vec<InboxItem>) -> Vec<NotificationView> {
    let mut views: Vec<NotificationView> = items
        .into_iter()
        .map(|item| {
            let n = item.notification;
            NotificationView {
                repo: record.id,
                repo_name: record.name.clone(),
                severity: n.severity.as_str().to_string(),
                origin_host: n
                    .origin_host
                    .or_else(|| n.origin.as_ref().map(|o| o.user.host.clone()))
                    .unwrap_or_default(),
                id: n.id,
                title: n.title,
                message: n.message,
                details: n.details,
                link: n.link,
                created: n.created,
                acknowledged_at: item.acknowledged_at,
                ack_pending: false,
            }
        })
        .collect();
    sort_newest_first(&mut views);
    views
}

pub(crate) fn sort_newest_first(views: &mut [NotificationView]) {
    views.sort_by(|a, b| (b.created, &b.id).cmp(&(a.created, &a.id)));
}

/// The repository's list with this machine's queued acknowledgements applied: acknowledged
/// (at queue time) but marked `ack_pending`.
pub(crate) fn overlay_queued(
    known: &[NotificationView],
    queued: &[QueuedAck],
    identity: &str,
) -> Vec<NotificationView> {
    // The first queued acknowledgement of each notification by `identity`.
    let mut mine: HashMap<&str, &QueuedAck> = HashMap::new();
    for ack in queued.iter().filter(|a| a.identity == identity) {
        mine.entry(ack.notification_id.as_str()).or_insert(ack);
    }
    known
        .iter()
        .map(|view| {
            let mut view = view.clone();
            if view.acknowledged_at.is_none() {
                if let Some(ack) = mine.get(view.id.as_str()) {
                    view.acknowledged_at = Some(ack.queued_at);
                    view.ack_pending = true;
                }
            }
            view
        })
        .collect()
}

/// Watches a filesystem repository's root and its index directories (names starting with
/// `x` or `n`), where every manifest change lands; pack directories are left alone.
struct RepoWatcher {
    watcher: notify::RecommendedWatcher,
    root: PathBuf,
    watched: BTreeSet<PathBuf>,
}

impl RepoWatcher {
    fn new(root: &Path, sender: mpsc::Sender<PollerMsg>) -> notify::Result<Self> {
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                if let Ok(event) = event {
                    if is_change(&event.kind) {
                        // One pending signal is enough; a full queue already has one.
                        let _ = sender.try_send(PollerMsg::FsChanged);
                    }
                }
            })?;
        watcher.watch(root, RecursiveMode::NonRecursive)?;
        let mut repo_watcher = RepoWatcher {
            watcher,
            root: root.to_path_buf(),
            watched: BTreeSet::new(),
        };
        repo_watcher.watch_index_dirs();
        Ok(repo_watcher)
    }

    /// Adds index directories created since the last call.
    fn watch_index_dirs(&mut self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let is_index_dir = name.to_str().is_some_and(|n| n.starts_with(['x', 'n']))
                && entry.file_type().is_ok_and(|t| t.is_dir());
            let path = entry.path();
            if is_index_dir && !self.watched.contains(&path) {
                match self.watcher.watch(&path, RecursiveMode::Recursive) {
                    Ok(()) => {
                        self.watched.insert(path);
                    }
                    Err(error) => tracing::debug!(%error, path = %path.display(), "not watched"),
                }
            }
        }
    }
}

/// Writes, creations, renames and deletions; not reads or metadata touches (our own refresh
/// reads the same files).
fn is_change(kind: &notify::EventKind) -> bool {
    use notify::event::{AccessKind, AccessMode, ModifyKind};
    use notify::EventKind;
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        _ => true,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Loading,
    Ok,
    Unreachable,
    WrongPassword,
    KeyringUnavailable,
}

pub(crate) struct Poller {
    record: RepoRecord,
    inner: Arc<Inner>,
    messages: mpsc::Receiver<PollerMsg>,
    /// For the filesystem watcher's callback.
    sender: mpsc::Sender<PollerMsg>,
    open: Option<Opened>,
    watcher: Option<RepoWatcher>,
    reach: Reach,
    failures: u32,
    identity: String,
    /// The list last read from the repository (or cached from a previous run).
    known: Option<Vec<NotificationView>>,
    /// Whether `known` differs from what the state database holds.
    known_unsaved: bool,
    /// Pending IDs as of the last publication (the diff's "previous").
    previous_pending: BTreeSet<String>,
    /// The status changed since the last `Changed` event.
    status_changed: bool,
    fs_deadline: Option<Instant>,
}

impl Poller {
    pub(crate) fn new(
        record: RepoRecord,
        inner: Arc<Inner>,
        messages: mpsc::Receiver<PollerMsg>,
        sender: mpsc::Sender<PollerMsg>,
        known: Option<Vec<NotificationView>>,
    ) -> Self {
        let identity_override = inner.settings().identity_override;
        let identity = source::identity_for(&record, identity_override.as_deref()).to_string();
        let queued = inner.queued_acks(record.id);
        // Whatever was pending when the app last ran counts as "previous": it already had its
        // chance to pop up, and must not pop again after a restart.
        let previous_pending = known
            .as_deref()
            .map(|known| {
                overlay_queued(known, &queued, &identity)
                    .into_iter()
                    .filter(|v| v.acknowledged_at.is_none())
                    .map(|v| v.id)
                    .collect()
            })
            .unwrap_or_default();
        Poller {
            record,
            inner,
            messages,
            sender,
            open: None,
            watcher: None,
            reach: Reach::Loading,
            failures: 0,
            identity,
            known,
            known_unsaved: false,
            previous_pending,
            status_changed: false,
            fs_deadline: None,
        }
    }

    pub(crate) async fn run(mut self) {
        self.publish(None).await;
        let mut next_check = Instant::now();
        loop {
            let deadline = self.fs_deadline.map_or(next_check, |d| d.min(next_check));
            let message = tokio::select! {
                _ = tokio::time::sleep_until(deadline) => None,
                message = self.messages.recv() => Some(message.unwrap_or(PollerMsg::Stop)),
            };
            match message {
                None | Some(PollerMsg::CheckNow) => self.refresh().await,
                Some(PollerMsg::SettingsChanged) => {
                    // The identity matters to queued acknowledgements even while offline.
                    let identity_override = self.inner.settings().identity_override;
                    self.identity =
                        source::identity_for(&self.record, identity_override.as_deref())
                            .to_string();
                    self.refresh().await;
                }
                Some(PollerMsg::FsChanged) => {
                    // Storage that failed or refuses our password is not retried on events.
                    if matches!(self.reach, Reach::Ok | Reach::Loading)
                        && self.fs_deadline.is_none()
                    {
                        self.fs_deadline = Some(Instant::now() + self.inner.options.fs_debounce);
                    }
                    continue;
                }
                Some(PollerMsg::Ack { target, reply }) => {
                    let reach = self.reach;
                    let _ = reply.send(self.ack(target).await);
                    if self.reach == reach {
                        continue;
                    }
                    // The write found the storage gone: retry on the backoff schedule.
                }
                Some(PollerMsg::Stop) => break,
            }
            next_check = Instant::now() + self.next_delay();
        }
        tracing::debug!(repo = self.record.id, "poller stopped");
    }

    fn next_delay(&self) -> Duration {
        let options = &self.inner.options;
        retry_delay(
            self.reach,
            Duration::from_secs(self.inner.settings().poll_interval_secs.max(1)),
            backoff(self.failures, options.min_backoff, options.max_backoff),
        )
    }

    async fn refresh(&mut self) {
        self.fs_deadline = None;
        let queued = self.inner.queued_acks(self.record.id);
        let identity_override = self.inner.settings().identity_override;
        let record = self.record.clone();
        let secrets = Arc::clone(&self.inner.options.secrets);
        let open = self.open.take();
        let now = Utc::now();
        let joined = tokio::task::spawn_blocking(move || {
            refresh_blocking(
                open,
                &record,
                secrets.as_ref(),
                identity_override.as_deref(),
                queued,
                now,
            )
        })
        .await;
        let (open, outcome) = joined.unwrap_or_else(|error| {
            (
                None,
                Err(ReachError::Unreachable(format!("refresh failed: {error}"))),
            )
        });
        self.open = open;
        let status = match outcome {
            Ok(refreshed) => {
                self.failures = 0;
                let recovered = self.reach != Reach::Ok;
                self.reach = Reach::Ok;
                self.identity = refreshed.identity.to_string();
                self.inner.unqueue_acks(self.record.id, &refreshed.flushed);
                let views = views_of(&self.record, refreshed.items);
                if self.known.as_ref() != Some(&views) {
                    self.known = Some(views);
                    self.known_unsaved = true;
                }
                self.watch(recovered);
                self.status_changed |= self
                    .inner
                    .set_status(self.record.id, RepositoryStatus::Ok { checked_at: now });
                self.publish(Some(refreshed.all_ids)).await;
                return;
            }
            Err(ReachError::WrongPassword(error)) => {
                tracing::warn!(repo = self.record.id, %error, "wrong password");
                self.reach = Reach::WrongPassword;
                RepositoryStatus::WrongPassword
            }
            Err(ReachError::KeyringUnavailable(error)) => {
                tracing::info!(repo = self.record.id, %error, "keyring unavailable");
                self.reach = Reach::KeyringUnavailable;
                RepositoryStatus::Unreachable {
                    error,
                    retry_at: now
                        + chrono::Duration::from_std(KEYRING_RETRY)
                            .unwrap_or(chrono::Duration::zero()),
                }
            }
            Err(ReachError::Unreachable(error)) => {
                self.failures += 1;
                self.reach = Reach::Unreachable;
                let options = &self.inner.options;
                let wait = backoff(self.failures, options.min_backoff, options.max_backoff);
                tracing::info!(repo = self.record.id, %error, ?wait, "repository unreachable");
                RepositoryStatus::Unreachable {
                    error,
                    retry_at: now
                        + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::zero()),
                }
            }
        };
        self.status_changed |= self.inner.set_status(self.record.id, status);
        self.publish(None).await;
    }

    /// Starts watching a local repository, again after a failure (the directory may have been
    /// replaced), and picks up new index directories.
    fn watch(&mut self, restart: bool) {
        if restart {
            self.watcher = None;
        }
        match &mut self.watcher {
            Some(watcher) => watcher.watch_index_dirs(),
            None => {
                let Some(root) = source::storage_root(&self.record) else {
                    return;
                };
                match RepoWatcher::new(&root, self.sender.clone()) {
                    Ok(watcher) => self.watcher = Some(watcher),
                    Err(error) => {
                        tracing::info!(%error, root = %root.display(), "no change events; polling only")
                    }
                }
            }
        }
    }

    async fn ack(&mut self, target: AckTarget) -> Result<AckReport, EngineError> {
        if let Some(config) = source::read_only_config(&self.record) {
            return Err(EngineError::ReadOnly(config));
        }
        let views = self.current_views();
        let ids: Vec<String> = match target {
            AckTarget::One(id) => {
                let view = views
                    .iter()
                    .find(|v| v.id == id)
                    .ok_or_else(|| kopia_notifications::Error::UnknownNotification(id.clone()))?;
                if view.acknowledged_at.is_some() {
                    let result = if view.ack_pending {
                        AckResult::Queued
                    } else {
                        AckResult::Written
                    };
                    return Ok(AckReport { result, count: 0 });
                }
                vec![id]
            }
            AckTarget::AllPending => views
                .iter()
                .filter(|v| v.acknowledged_at.is_none())
                .map(|v| v.id.clone())
                .collect(),
        };
        if ids.is_empty() {
            return Ok(AckReport {
                result: AckResult::Written,
                count: 0,
            });
        }
        // Durable first: from here on a crash cannot lose the acknowledgement, and a replay
        // cannot write it twice (already acknowledged ones are skipped).
        self.inner
            .db()
            .queue_acks(self.record.id, &ids, &self.identity, Utc::now())?;
        if self.reach == Reach::Ok {
            self.refresh().await;
        } else {
            self.publish(None).await;
        }
        let asked: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let still_queued = self
            .inner
            .queued_acks(self.record.id)
            .iter()
            .any(|a| asked.contains(a.notification_id.as_str()));
        Ok(AckReport {
            result: if still_queued {
                AckResult::Queued
            } else {
                AckResult::Written
            },
            count: ids.len(),
        })
    }

    fn current_views(&self) -> Vec<NotificationView> {
        let queued = self.inner.queued_acks(self.record.id);
        overlay_queued(
            self.known.as_deref().unwrap_or(&[]),
            &queued,
            &self.identity,
        )
    }

    /// Applies the current list: diff against the previous pending set, persist (popups about
    /// to show included, in one transaction), then emit Withdrawn, NewPending and Changed.
    /// `all_ids` is given after a successful read of the repository.
    async fn publish(&mut self, all_ids: Option<BTreeSet<String>>) {
        let views = self.current_views();
        let settings = self.inner.settings();
        let now = Utc::now();
        let paused = self.inner.paused_until().is_some_and(|until| until > now);
        let min_severity = settings
            .min_popup_severity
            .parse()
            .unwrap_or(Severity::Warning);
        let pending: Vec<PendingEntry> = views
            .iter()
            .rev() // oldest first
            .filter(|v| v.acknowledged_at.is_none())
            .map(|v| PendingEntry {
                id: &v.id,
                severity: v.severity.parse().unwrap_or(Severity::Normal),
            })
            .collect();
        let shown = self.inner.shown_popups(self.record.id);
        let diff = diff_pending(
            &self.previous_pending,
            &pending,
            &shown,
            min_severity,
            paused,
        );
        let new_pending: BTreeSet<String> = pending.iter().map(|p| p.id.to_string()).collect();
        // Persist before telling the shell: a crash after this cannot pop these again.
        let saved = if self.known_unsaved || !diff.to_pop.is_empty() {
            let db = self.inner.db();
            match &self.known {
                Some(known) if self.known_unsaved => {
                    db.record_refresh(self.record.id, known, &diff.to_pop, all_ids.as_ref(), now)
                }
                _ => db.mark_popups_shown(self.record.id, &diff.to_pop, now),
            }
        } else {
            Ok(())
        };
        match saved {
            Ok(()) => self.known_unsaved = false,
            Err(error) => tracing::error!(%error, "state not saved"),
        }
        self.previous_pending = new_pending;
        let by_id: HashMap<&str, &NotificationView> =
            views.iter().map(|v| (v.id.as_str(), v)).collect();
        let popping: Vec<NotificationView> = diff
            .to_pop
            .iter()
            .filter_map(|id| by_id.get(id.as_str()).map(|v| (*v).clone()))
            .collect();
        let changed = self
            .inner
            .set_views(self.record.id, views, self.identity.clone());
        let repo = self.record.id;
        if !diff.withdrawn.is_empty() {
            self.inner
                .emit(EngineEvent::Withdrawn {
                    repo,
                    ids: diff.withdrawn,
                })
                .await;
        }
        if !popping.is_empty() {
            self.inner
                .emit(EngineEvent::NewPending {
                    repo,
                    items: popping,
                })
                .await;
        }
        if changed || std::mem::take(&mut self.status_changed) {
            self.inner.emit_changed().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let (min, max) = (Duration::from_secs(2), Duration::from_secs(300));
        let waits: Vec<u64> = (1..=10).map(|f| backoff(f, min, max).as_secs()).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(0, min, max), min);
        assert_eq!(backoff(u32::MAX, min, max), max);
    }

    /// A keyring that timed out is not a wrong password: retried within a minute, not a day.
    #[test]
    fn keyring_trouble_is_retried_within_a_minute() {
        let timeout = kopia_repo::Error::KeyringUnavailable("it did not answer within 5s".into());
        let locked = kopia_repo::Error::Keyring("the keyring holding x is locked".into());
        for error in [&timeout, &locked] {
            assert!(matches!(
                ReachError::from_repo(error),
                ReachError::KeyringUnavailable(_)
            ));
        }
        assert!(matches!(
            ReachError::from_repo(&kopia_repo::Error::InvalidPassword),
            ReachError::WrongPassword(_)
        ));
        let (poll, backoff) = (Duration::from_secs(600), Duration::from_secs(300));
        let keyring = retry_delay(Reach::KeyringUnavailable, poll, backoff);
        assert!(keyring <= Duration::from_secs(60), "{keyring:?}");
        assert!(keyring >= Duration::from_secs(5), "{keyring:?}");
        assert_eq!(
            retry_delay(Reach::WrongPassword, poll, backoff),
            WRONG_PASSWORD_RETRY
        );
        assert_eq!(retry_delay(Reach::Unreachable, poll, backoff), backoff);
        assert_eq!(retry_delay(Reach::Ok, poll, backoff), poll);
    }

    #[test]
    fn queued_acks_overlay_only_their_identity() {
        let view = |id: &str, acked: bool| NotificationView {
            acknowledged_at: acked.then_some(DateTime::UNIX_EPOCH),
            ..NotificationView::example(id, DateTime::UNIX_EPOCH)
        };
        let at = DateTime::UNIX_EPOCH + chrono::Duration::hours(1);
        let queued = |id: &str, who: &str| QueuedAck {
            notification_id: id.into(),
            identity: who.into(),
            queued_at: at,
        };
        let known = [view("a", false), view("b", false), view("c", true)];
        let views = overlay_queued(
            &known,
            &[
                queued("a", "me@here"),
                queued("b", "other@there"),
                queued("c", "me@here"),
            ],
            "me@here",
        );
        assert!(views[0].ack_pending);
        assert_eq!(views[0].acknowledged_at, Some(at));
        assert!(!views[1].ack_pending && views[1].acknowledged_at.is_none());
        // Already acknowledged in the repository: the queue entry changes nothing.
        assert!(!views[2].ack_pending);
        assert_eq!(views[2].acknowledged_at, Some(DateTime::UNIX_EPOCH));
    }

    /// A replay after kill -9 between the write and the unqueue writes nothing twice; an
    /// acknowledgement of a vanished notification is dropped; a pending one is written.
    #[test]
    fn flushing_queued_acks_is_idempotent() {
        use kopia_notifications::{Draft, Origin, Recipient};
        use kopia_repo::repository::Repository;

        let dir = tempfile::tempdir().unwrap();
        let me: Identity = "alice@laptop".parse().unwrap();
        let owner = kopia_repo::content::writer::SessionOwner {
            username: me.user.clone(),
            hostname: me.host.clone(),
        };
        let repository = Repository::create_filesystem(dir.path(), "pw", &owner).unwrap();
        let mut manifests = KopiaManifests::new(repository, owner).unwrap();
        let origin = Origin {
            user: me.clone(),
            command: None,
        };
        let now = Utc::now();
        let mut service = Notifications::new(&mut manifests);
        let written = service
            .send(
                &Draft::new(Severity::Error, Recipient::All, "a", origin.clone()),
                now,
            )
            .unwrap();
        let pending = service
            .send(
                &Draft::new(Severity::Error, Recipient::All, "b", origin),
                now,
            )
            .unwrap();
        service
            .ack(&me, std::slice::from_ref(&written), now)
            .unwrap();
        let queued = |id: &str| QueuedAck {
            notification_id: id.to_string(),
            identity: me.to_string(),
            queued_at: now,
        };
        let mut opened = Opened {
            manifests,
            checks: LiveChecks::default(),
        };
        let refreshed = flush_and_list(
            &mut opened,
            true,
            me.clone(),
            vec![queued(&written), queued(&pending), queued("0123abcd")],
            now,
        )
        .unwrap();
        assert_eq!(refreshed.flushed.len(), 3);
        assert!(refreshed
            .items
            .iter()
            .all(|i| i.status == Status::Acknowledged));
        assert!(refreshed.all_ids.contains(&written) && refreshed.all_ids.contains(&pending));
        let inbox = Notifications::new(&mut opened.manifests).inbox().unwrap();
        assert_eq!(inbox.acknowledgements().len(), 2, "one per notification");
    }

    /// A read-only Kopia connection (as `kopia repository connect --readonly` writes it): the
    /// app refuses to acknowledge through it, and acknowledgements queued earlier are dropped
    /// on refresh without anything being written.
    #[test]
    fn read_only_connections_are_never_written() {
        use crate::state::RepoKind;
        use kopia_notifications::{Draft, Origin, Recipient};
        use kopia_repo::repository::Repository;

        let dir = tempfile::tempdir().unwrap();
        let storage = dir.path().join("repo");
        let me: Identity = "alice@laptop".parse().unwrap();
        let owner = kopia_repo::content::writer::SessionOwner {
            username: me.user.clone(),
            hostname: me.host.clone(),
        };
        let repository = Repository::create_filesystem(&storage, "pw", &owner).unwrap();
        let mut writable = KopiaManifests::new(repository, owner).unwrap();
        let origin = Origin {
            user: me.clone(),
            command: None,
        };
        let now = Utc::now();
        let id = Notifications::new(&mut writable)
            .send(
                &Draft::new(Severity::Error, Recipient::All, "a", origin),
                now,
            )
            .unwrap();

        let config = dir.path().join("readonly.config");
        let json = serde_json::json!({
            "storage": {"type": "filesystem", "config": {"path": storage}},
            "readonly": true,
        });
        std::fs::write(&config, json.to_string()).unwrap();
        // base64("pw"), where Kopia persists a password beside its config.
        std::fs::write(dir.path().join("readonly.config.kopia-password"), "cHc=").unwrap();
        let record = RepoRecord {
            id: 1,
            name: "ro".into(),
            kind: RepoKind::KopiaConfig,
            location: config.clone(),
            keyring_account: None,
        };
        assert_eq!(source::read_only_config(&record), Some(config.clone()));
        let writable_record = RepoRecord {
            kind: RepoKind::Filesystem,
            ..record.clone()
        };
        assert_eq!(source::read_only_config(&writable_record), None);
        assert_eq!(
            EngineError::ReadOnly(config.clone()).to_string(),
            format!(
                "repository {} is connected read-only; not written",
                config.display()
            )
        );

        let (read_only, _) = KopiaManifests::open_client_config(&config).unwrap();
        assert_eq!(read_only.read_only_config(), Some(config.as_path()));
        fn files(dir: &Path) -> usize {
            std::fs::read_dir(dir)
                .unwrap()
                .map(|e| e.unwrap().path())
                .map(|p| if p.is_dir() { files(&p) } else { 1 })
                .sum()
        }
        let files_before = files(&storage);
        let queued = QueuedAck {
            notification_id: id.clone(),
            identity: me.to_string(),
            queued_at: now,
        };
        let mut read_only = Opened {
            manifests: read_only,
            checks: LiveChecks::default(),
        };
        let refreshed =
            flush_and_list(&mut read_only, true, me.clone(), vec![queued], now).unwrap();
        assert_eq!(refreshed.flushed.len(), 1);
        let item = refreshed.items.iter().find(|i| i.notification.id == id);
        assert_eq!(item.unwrap().status, Status::Pending);
        assert_eq!(files(&storage), files_before);
    }

    #[test]
    fn reads_and_metadata_are_not_changes() {
        use notify::event::{AccessKind, AccessMode, CreateKind, MetadataKind, ModifyKind};
        use notify::EventKind;
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(!is_change(&EventKind::Modify(ModifyKind::Metadata(
            MetadataKind::AccessTime
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Any)));
    }
}
