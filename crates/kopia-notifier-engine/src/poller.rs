//! One poller task per repository: refreshes on its interval and on filesystem events
//! (debounced), flushes queued acknowledgements, tracks reachability with backoff, and
//! publishes the list, the popups to show and the popups to withdraw. The repository work of a
//! refresh is in [`crate::refresh`]; the poller reaches the rest of the engine only through
//! the [`Hub`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::diff::{diff_pending, PendingEntry};
use crate::error::EngineError;
use crate::hub::{AckReport, AckTarget, Hub, PollerMsg};
use crate::popup_budget::{Admission, PopupBudget, PopupSummary};
use crate::refresh::{overlay_queued, refresh_blocking, views_of, Listing, Opened};
use crate::source::{self, ReachError};
use crate::state::RepoRecord;
use crate::types::{AckResult, EngineEvent, NotificationView, RepositoryStatus};
use crate::watch::RepoWatcher;

/// How long a repository with a wrong password waits before trying again by itself: in
/// practice only a settings change or "check now" retries it.
const WRONG_PASSWORD_RETRY: Duration = Duration::from_secs(24 * 3600);
/// How soon a repository whose password sits in an unresponsive or locked keyring is tried
/// again: reading never prompts, so trying is cheap, and the keyring is usually back quickly
/// (after login, once D-Bus activation finished).
const KEYRING_RETRY: Duration = Duration::from_secs(30);

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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    Loading,
    Ok,
    Unreachable,
    WrongPassword,
    KeyringUnavailable,
}

/// Where a repository's storage is, which decides how often it is polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StorageReach {
    /// A directory on this machine: free to list, and it has change events.
    Local,
    /// Object stores, SFTP, WebDAV, rclone: every check is a request (billed on object stores).
    Network,
}

pub(crate) struct Poller {
    record: RepoRecord,
    storage: StorageReach,
    inner: Arc<Hub>,
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
    popup_budget: PopupBudget,
}

impl Poller {
    pub(crate) fn new(
        record: RepoRecord,
        storage: StorageReach,
        inner: Arc<Hub>,
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
                    .filter(NotificationView::is_pending)
                    .map(|v| v.id)
                    .collect()
            })
            .unwrap_or_default();
        Poller {
            record,
            storage,
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
            popup_budget: PopupBudget::default(),
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
                None => self.refresh().await,
                Some(PollerMsg::CheckNow(done)) => {
                    self.refresh().await;
                    // The asker may have stopped waiting.
                    let _ = done.send(());
                }
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
        let settings = self.inner.settings();
        let interval = match self.storage {
            StorageReach::Local => settings.poll_interval_secs,
            StorageReach::Network => settings.network_poll_interval_secs,
        };
        retry_delay(
            self.reach,
            Duration::from_secs(interval.max(1)),
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
                self.watch(recovered);
                self.status_changed |= self
                    .inner
                    .set_status(self.record.id, RepositoryStatus::Ok { checked_at: now });
                match refreshed.listing {
                    Listing::Read { items, all_ids } => {
                        let views = views_of(&self.record, items);
                        if self.known.as_ref() != Some(&views) {
                            self.known = Some(views);
                            self.known_unsaved = true;
                        }
                        self.publish(Some(all_ids)).await;
                    }
                    // Nothing new to pop, withdraw or save; the list is as published.
                    Listing::Unchanged if !self.known_unsaved => {
                        if std::mem::take(&mut self.status_changed) {
                            self.inner.emit_changed().await;
                        }
                    }
                    Listing::Unchanged => self.publish(None).await,
                }
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
        if let Some((config, reason)) = source::read_only_config(&self.record) {
            return Err(EngineError::ReadOnly(config, reason));
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
                .filter(|v| v.is_pending())
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
        let min_severity = settings.min_popup_severity;
        let pending: Vec<PendingEntry> = views
            .iter()
            .rev() // oldest first
            .filter(|v| v.is_pending())
            .map(|v| PendingEntry {
                id: &v.id,
                severity: v.severity,
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
        let popping: Vec<&NotificationView> = diff
            .to_pop
            .iter()
            .filter_map(|id| by_id.get(id.as_str()).copied())
            .collect();
        // Recorded as shown above whatever the budget allows: a held-back popup never
        // comes later, the list and the tray have it.
        let new_pending = match self.popup_budget.admit(popping.len(), now) {
            Admission::Singles => Some(EngineEvent::NewPending {
                repo: self.record.id,
                items: popping.into_iter().cloned().collect(),
                summary: None,
            }),
            Admission::Summary => Some(EngineEvent::NewPending {
                repo: self.record.id,
                items: Vec::new(),
                summary: Some(PopupSummary::of(
                    &self.record.name,
                    popping.iter().map(|v| v.severity),
                )),
            }),
            Admission::Quiet => None,
        };
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
        if let Some(event) = new_pending {
            self.inner.emit(event).await;
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
}
