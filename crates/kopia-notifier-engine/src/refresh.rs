//! The repository side of one refresh, run on a blocking thread: open or refresh the manifest
//! store, write queued acknowledgements, run the health checks over the manifests in memory,
//! and turn the identity's inbox into the views the window shows.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use kopia_notifications::health::live::LiveChecks;
use kopia_notifications::kopia_store::KopiaManifests;
use kopia_notifications::{
    Identity, InboxItem, ListOptions, NewManifest, Notifications, Origin, Overlay, Severity, Status,
};

use crate::source::{self, ReachError};
use crate::state::{QueuedAck, RepoRecord};
use crate::types::{NotificationView, ResolvedView};

/// What one successful refresh read.
pub(crate) struct Refreshed {
    pub(crate) identity: Identity,
    pub(crate) listing: Listing,
    /// Queued acknowledgements written now, found written already, or impossible (the
    /// notification is gone): all to forget.
    pub(crate) flushed: Vec<QueuedAck>,
}

/// The identity's list as of a refresh.
pub(crate) enum Listing {
    /// The same as the previous refresh of this open repository listed: nothing it depends on
    /// changed. A repository of 100,000 notifications is not parsed and diffed again each time.
    Unchanged,
    Read {
        /// Pending, acknowledged and resolved notifications for the identity.
        items: Vec<InboxItem>,
        /// Every notification manifest ID in the repository, any recipient or status.
        all_ids: BTreeSet<String>,
    },
}

/// An open repository and the health checks that run over it on every refresh.
pub(crate) struct Opened {
    manifests: KopiaManifests,
    checks: LiveChecks,
    /// What the last listing depended on besides the manifests.
    listed: Option<ListedFrom>,
}

impl Opened {
    fn new(manifests: KopiaManifests) -> Opened {
        Opened {
            manifests,
            checks: LiveChecks::default(),
            listed: None,
        }
    }
}

/// The inputs of a listing other than the stored manifests, to tell when the next refresh
/// would list the same.
struct ListedFrom {
    identity: Identity,
    /// Findings shown locally, not written (a read-only connection).
    unwritten: Vec<(String, NewManifest)>,
    at: DateTime<Utc>,
    /// The earliest expiry of a pending item: it leaves the list then, with nothing written.
    until: Option<DateTime<Utc>>,
}

impl ListedFrom {
    fn of(
        identity: &Identity,
        unwritten: &[(String, NewManifest)],
        items: &[InboxItem],
        now: DateTime<Utc>,
    ) -> ListedFrom {
        let until = items
            .iter()
            .filter(|item| item.status == Status::Pending)
            .map(|item| item.notification.expires)
            .min();
        ListedFrom {
            identity: identity.clone(),
            unwritten: unwritten.to_vec(),
            at: now,
            until,
        }
    }

    /// A clock set back could show an expired notification again: list anew then too.
    fn still_holds(
        &self,
        identity: &Identity,
        unwritten: &[(String, NewManifest)],
        now: DateTime<Utc>,
    ) -> bool {
        self.identity == *identity
            && self.unwritten == unwritten
            && self.at <= now
            && self.until.is_none_or(|until| now < until)
    }
}

/// Refreshes (or opens) the manifest store, writes queued acknowledgements, runs the health
/// checks and lists. Returns the store for next time, or `None` after a failure so the next
/// try reopens.
pub(crate) fn refresh_blocking(
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
            Ok(manifests) => (Opened::new(manifests), true),
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
/// Returns the findings to show unwritten, and whether anything was written.
fn health_check(
    opened: &mut Opened,
    changed: bool,
    identity: &Identity,
    now: DateTime<Utc>,
) -> (Vec<(String, NewManifest)>, bool) {
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
                (Vec::new(), true)
            } else {
                (outcome.plan.puts(), false)
            }
        }
        Err(error) => {
            tracing::warn!(%error, "health check failed");
            (Vec::new(), false)
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
    // Whatever is queued is written or dropped now: the list changes either way.
    let acted = !queued.is_empty();
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
                let outcome = Notifications::new(manifests).ack_in(&inbox, &who, &ids, now)?;
                tracing::info!(
                    written = outcome.acknowledged.len(),
                    already = outcome.already_acknowledged.len(),
                    "queued acknowledgements flushed"
                );
                flushed.extend(valid);
            }
        }
    }
    let (unwritten, wrote) = health_check(opened, changed, &identity, now);
    let same_inputs = opened
        .listed
        .as_ref()
        .is_some_and(|listed| listed.still_holds(&identity, &unwritten, now));
    if !changed && !acted && !wrote && same_inputs {
        return Ok(Refreshed {
            identity,
            listing: Listing::Unchanged,
            flushed,
        });
    }
    let listed_unwritten = unwritten.clone();
    let mut overlay = Overlay::new(&opened.manifests, unwritten, now);
    let inbox = Notifications::new(&mut overlay).inbox()?;
    let options = ListOptions {
        all: true,
        min_severity: Severity::Normal,
    };
    let items: Vec<InboxItem> = inbox
        .list(&identity, now, options)
        .into_iter()
        .filter(|item| {
            matches!(
                item.status,
                Status::Pending | Status::Acknowledged | Status::Resolved
            )
        })
        .collect();
    let all_ids = inbox.notifications().iter().map(|n| n.id.clone()).collect();
    opened.listed = Some(ListedFrom::of(&identity, &listed_unwritten, &items, now));
    Ok(Refreshed {
        identity,
        listing: Listing::Read { items, all_ids },
        flushed,
    })
}

/// The list as read from the repository, newest first.
pub(crate) fn views_of(record: &RepoRecord, items: Vec<InboxItem>) -> Vec<NotificationView> {
    let mut views: Vec<NotificationView> = items
        .into_iter()
        .map(|item| {
            let n = item.notification;
            NotificationView {
                repo: record.id,
                repo_name: record.name.clone(),
                severity: n.severity,
                kind: n.source_kind,
                snapshot_source: n.snapshot_source,
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
                resolved: item.resolution.map(|resolution| ResolvedView {
                    at: resolution.resolved_at,
                    reason: resolution.reason,
                }),
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

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::error::EngineError;
    use kopia_repo::client::ReadOnlyReason;

    fn read(listing: Listing) -> (Vec<InboxItem>, BTreeSet<String>) {
        match listing {
            Listing::Read { items, all_ids } => (items, all_ids),
            Listing::Unchanged => panic!("expected a fresh listing, got Unchanged"),
        }
    }

    fn owner_of(identity: &Identity) -> kopia_repo::content::writer::SessionOwner {
        kopia_repo::content::writer::SessionOwner {
            username: identity.user.clone(),
            hostname: identity.host.clone(),
        }
    }

    /// An unchanged repository is listed once; the next refreshes say `Unchanged` until the
    /// repository changes, an acknowledgement is queued, the identity changes, a pending
    /// notification expires or the clock goes back.
    #[test]
    fn an_unchanged_repository_is_not_listed_again() {
        use kopia_notifications::{Draft, Origin, Recipient};
        use kopia_repo::repository::Repository;

        let dir = tempfile::tempdir().unwrap();
        let me: Identity = "alice@laptop".parse().unwrap();
        let repository = Repository::create_filesystem(dir.path(), "pw", &owner_of(&me)).unwrap();
        let mut opened = Opened::new(KopiaManifests::new(repository, owner_of(&me)).unwrap());
        let origin = Origin {
            user: me.clone(),
            command: None,
        };
        let now = Utc::now();
        let mut draft = Draft::new(Severity::Error, Recipient::All, "soon gone", origin.clone());
        draft.expires_in = Some(chrono::Duration::hours(1));
        let expiring = Notifications::new(&mut opened.manifests)
            .send(&draft, now)
            .unwrap();
        let listing = |opened: &mut Opened, changed, who: &Identity, queued, at| {
            flush_and_list(opened, changed, who.clone(), queued, at)
                .unwrap()
                .listing
        };
        let (items, _) = read(listing(&mut opened, true, &me, vec![], now));
        assert_eq!(items.len(), 1);
        let later = now + chrono::Duration::minutes(10);
        assert!(matches!(
            listing(&mut opened, false, &me, vec![], later),
            Listing::Unchanged
        ));
        // The store saw a change (another writer).
        let (items, _) = read(listing(&mut opened, true, &me, vec![], later));
        assert_eq!(items.len(), 1);
        // Another identity (settings) sees its own list.
        let bob: Identity = "bob@desk".parse().unwrap();
        read(listing(&mut opened, false, &bob, vec![], later));
        assert!(matches!(
            listing(&mut opened, false, &bob, vec![], later),
            Listing::Unchanged
        ));
        // The clock went back.
        read(listing(&mut opened, false, &bob, vec![], now));
        // The pending notification expired: it leaves the list with nothing written.
        let (items, _) = read(listing(
            &mut opened,
            false,
            &bob,
            vec![],
            now + chrono::Duration::hours(2),
        ));
        assert!(items.is_empty(), "{items:?}");
        // A queued acknowledgement (here of the expired one) is written or dropped: relisted.
        let queued = QueuedAck {
            notification_id: expiring,
            identity: bob.to_string(),
            queued_at: now,
        };
        let refreshed = flush_and_list(
            &mut opened,
            false,
            bob.clone(),
            vec![queued],
            now + chrono::Duration::hours(2),
        )
        .unwrap();
        assert_eq!(refreshed.flushed.len(), 1);
        read(refreshed.listing);
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
        let mut opened = Opened::new(manifests);
        let refreshed = flush_and_list(
            &mut opened,
            true,
            me.clone(),
            vec![queued(&written), queued(&pending), queued("0123abcd")],
            now,
        )
        .unwrap();
        assert_eq!(refreshed.flushed.len(), 3);
        let (items, all_ids) = read(refreshed.listing);
        assert!(items.iter().all(|i| i.status == Status::Acknowledged));
        assert!(all_ids.contains(&written) && all_ids.contains(&pending));
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
        assert_eq!(
            source::read_only_config(&record),
            Some((config.clone(), ReadOnlyReason::Connection))
        );
        let writable_record = RepoRecord {
            kind: RepoKind::Filesystem,
            ..record.clone()
        };
        assert_eq!(source::read_only_config(&writable_record), None);
        assert_eq!(
            EngineError::ReadOnly(config.clone(), ReadOnlyReason::Connection).to_string(),
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
        let mut read_only = Opened::new(read_only);
        let refreshed =
            flush_and_list(&mut read_only, true, me.clone(), vec![queued], now).unwrap();
        assert_eq!(refreshed.flushed.len(), 1);
        let (items, _) = read(refreshed.listing);
        let item = items.iter().find(|i| i.notification.id == id);
        assert_eq!(item.unwrap().status, Status::Pending);
        assert_eq!(files(&storage), files_before);
    }
}
