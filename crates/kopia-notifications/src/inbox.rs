//! The inbox rules, as pure functions over the current manifests and a given `now`: what is
//! pending for whom, listing, ID prefixes, what to write to acknowledge and what `gc` deletes.
//! No I/O: the service feeds it manifests and writes the plans it returns.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ops::Bound;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::health::resolution::Resolution;
use crate::identity::Identity;
use crate::schema::{rfc3339, Acknowledgement, Notification, Severity};
use crate::store::{NewManifest, StoredManifest};
use crate::Error;

/// Shortest ID prefix printed for people; longer when needed to stay unique.
pub const SHORT_ID_LENGTH: usize = 8;

/// An ambiguous prefix names at most this many of the IDs it matches.
const MAX_CANDIDATES_SHOWN: usize = 10;

/// Where a notification stands for one identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Status {
    /// Addressed to the identity, not expired, not acknowledged by it.
    Pending,
    /// Acknowledged by the identity (whether expired since or not).
    Acknowledged,
    /// Past its expiry and not acknowledged: hidden, waiting for `gc`.
    Expired,
    /// Addressed to someone else.
    OtherRecipient,
    /// A derived notification whose cause is gone (see [`InboxItem::resolution`]).
    Resolved,
}

/// A notification as one identity sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InboxItem {
    #[serde(flatten)]
    pub notification: Notification,
    pub status: Status,
    /// When this identity acknowledged it (the earliest, if acknowledged twice).
    #[serde(serialize_with = "optional_time")]
    pub acknowledged_at: Option<DateTime<Utc>>,
    /// When and why it resolved itself, for derived notifications whose cause is gone.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolution: Option<Resolution>,
}

/// One notification with everyone's acknowledgements, for `show`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NotificationDetails {
    #[serde(flatten)]
    pub item: InboxItem,
    /// One per user (the earliest), oldest first.
    pub acknowledgements: Vec<Acknowledgement>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListOptions {
    /// Also acknowledged and expired notifications (each marked by its status).
    pub all: bool,
    pub min_severity: Severity,
}

impl Default for ListOptions {
    fn default() -> Self {
        ListOptions {
            all: false,
            min_severity: Severity::Normal,
        }
    }
}

/// What the after-command summary needs: pending notifications by severity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PendingCounts {
    pub total: usize,
    pub warnings: usize,
    pub errors: usize,
}

/// The result of an acknowledgement, by notification ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AckOutcome {
    /// Newly acknowledged now.
    pub acknowledged: Vec<String>,
    /// Left alone: this identity had acknowledged them before.
    pub already_acknowledged: Vec<String>,
    /// Left alone: expired, so no longer shown anyway.
    pub expired: Vec<String>,
}

/// Acknowledgement manifests to put, and the outcome to report once they are written.
#[derive(Debug, Clone, PartialEq)]
pub struct AckPlan {
    pub puts: Vec<NewManifest>,
    pub outcome: AckOutcome,
}

/// What `gc` deletes, by manifest ID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GcPlan {
    /// Expired notifications.
    pub notifications: Vec<String>,
    /// Acknowledgements whose notification is gone or expired, and duplicates (a user
    /// acknowledging the same notification twice, e.g. from two machines; the earliest stays).
    pub acknowledgements: Vec<String>,
    /// Resolutions whose notification is gone or expired.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resolutions: Vec<String>,
}

impl GcPlan {
    pub fn deletes(&self) -> Vec<String> {
        self.notifications
            .iter()
            .chain(&self.acknowledgements)
            .chain(&self.resolutions)
            .cloned()
            .collect()
    }

    pub fn is_empty(&self) -> bool {
        self.notifications.is_empty()
            && self.acknowledgements.is_empty()
            && self.resolutions.is_empty()
    }
}

/// All notifications and acknowledgements of a repository, parsed.
///
/// How many manifests there are, and how many acknowledgements one notification has, is up to
/// whoever writes the repository: every lookup goes through an index built once, so listing,
/// showing and acknowledging stay linear in the number of manifests.
///
/// IDs are Kopia's 32 hex digits when Kopia or we wrote them, but a manifest is whatever its
/// writer put in the content: other IDs are read like any other (they can be shown, listed
/// and acknowledged), handled as text rather than bytes, and printed for people through
/// [`crate::inert`].
#[derive(Debug, Default)]
pub struct Inbox {
    /// Oldest first (by creation time, then ID).
    notifications: Vec<Notification>,
    /// Index of each well-formed notification in `notifications`.
    by_id: HashMap<String, usize>,
    /// Oldest first (by acknowledgement time, then ID).
    acknowledgements: Vec<Acknowledgement>,
    /// Indices into `acknowledgements` by notification ID, oldest first.
    acks_by_notification: HashMap<String, Vec<usize>>,
    /// Every manifest of type `notification`, well-formed or not.
    notification_ids: BTreeSet<String>,
    /// Manifests that could not be read, each an [`Error::Malformed`] naming its ID.
    problems: Vec<Error>,
    /// By notification ID (the earliest resolution of each).
    resolutions: BTreeMap<String, Resolution>,
    /// Every resolution manifest: (its ID, the notification ID), for `gc`.
    resolution_manifests: Vec<(String, String)>,
}

impl Inbox {
    /// Parses manifests of type `notification` and `notificationAck`. A malformed manifest is
    /// skipped and kept in [`Inbox::problems`]; it does not stop the others from being read.
    pub fn from_manifests(notifications: &[StoredManifest], acks: &[StoredManifest]) -> Self {
        let mut inbox = Inbox::default();
        for manifest in notifications {
            inbox.notification_ids.insert(manifest.id.clone());
            match Notification::from_manifest(manifest) {
                Ok(notification) => inbox.notifications.push(notification),
                Err(error) => inbox.problems.push(error),
            }
        }
        for manifest in acks {
            match Acknowledgement::from_manifest(manifest) {
                Ok(ack) => inbox.acknowledgements.push(ack),
                Err(error) => inbox.problems.push(error),
            }
        }
        inbox
            .notifications
            .sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        inbox
            .acknowledgements
            .sort_by(|a, b| (a.acknowledged_at, &a.id).cmp(&(b.acknowledged_at, &b.id)));
        for (at, notification) in inbox.notifications.iter().enumerate() {
            inbox.by_id.insert(notification.id.clone(), at);
        }
        for (at, ack) in inbox.acknowledgements.iter().enumerate() {
            inbox
                .acks_by_notification
                .entry(ack.notification_id.clone())
                .or_default()
                .push(at);
        }
        inbox
    }

    /// Acknowledgements of notification `id`, oldest first.
    fn acks_of<'a>(&'a self, id: &str) -> impl Iterator<Item = &'a Acknowledgement> + 'a {
        self.acks_by_notification
            .get(id)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|&at| &self.acknowledgements[at])
    }

    /// Adds manifests of type `notificationResolution`; malformed ones join the problems.
    pub fn add_resolutions(&mut self, manifests: &[StoredManifest]) {
        for manifest in manifests {
            match Resolution::from_manifest(manifest) {
                Ok(resolution) => {
                    self.resolution_manifests
                        .push((resolution.id.clone(), resolution.notification_id.clone()));
                    let earliest = self
                        .resolutions
                        .entry(resolution.notification_id.clone())
                        .or_insert_with(|| resolution.clone());
                    if resolution.resolved_at < earliest.resolved_at {
                        *earliest = resolution;
                    }
                }
                Err(error) => self.problems.push(error),
            }
        }
    }

    pub fn resolution_of(&self, id: &str) -> Option<&Resolution> {
        self.resolutions.get(id)
    }

    pub fn notifications(&self) -> &[Notification] {
        &self.notifications
    }

    pub fn acknowledgements(&self) -> &[Acknowledgement] {
        &self.acknowledgements
    }

    /// The manifests skipped as malformed.
    pub fn problems(&self) -> &[Error] {
        &self.problems
    }

    pub fn take_problems(&mut self) -> Vec<Error> {
        std::mem::take(&mut self.problems)
    }

    /// `who`'s earliest acknowledgement of notification `id`.
    pub fn acknowledgement_by(&self, id: &str, who: &Identity) -> Option<&Acknowledgement> {
        self.acks_of(id).find(|ack| &ack.user == who)
    }

    pub fn status(
        &self,
        notification: &Notification,
        who: &Identity,
        now: DateTime<Utc>,
    ) -> Status {
        if self.resolutions.contains_key(&notification.id) {
            Status::Resolved
        } else if self.acknowledgement_by(&notification.id, who).is_some() {
            Status::Acknowledged
        } else if notification.is_expired(now) {
            Status::Expired
        } else if !notification.recipient.includes(who) {
            Status::OtherRecipient
        } else {
            Status::Pending
        }
    }

    pub fn item(
        &self,
        notification: &Notification,
        who: &Identity,
        now: DateTime<Utc>,
    ) -> InboxItem {
        InboxItem {
            notification: notification.clone(),
            status: self.status(notification, who, now),
            acknowledged_at: self
                .acknowledgement_by(&notification.id, who)
                .map(|ack| ack.acknowledged_at),
            resolution: self.resolutions.get(&notification.id).cloned(),
        }
    }

    /// `who`'s notifications at or above the minimum severity, oldest first: the pending ones,
    /// or with `all` also the acknowledged and expired ones. Never other people's.
    pub fn list(&self, who: &Identity, now: DateTime<Utc>, options: ListOptions) -> Vec<InboxItem> {
        self.notifications
            .iter()
            .filter(|n| n.recipient.includes(who) && n.severity >= options.min_severity)
            .map(|n| self.item(n, who, now))
            .filter(|item| options.all || item.status == Status::Pending)
            .collect()
    }

    pub fn pending(&self, who: &Identity, now: DateTime<Utc>) -> Vec<&Notification> {
        self.notifications
            .iter()
            .filter(|n| self.status(n, who, now) == Status::Pending)
            .collect()
    }

    pub fn counts(&self, who: &Identity, now: DateTime<Utc>) -> PendingCounts {
        let pending = self.pending(who, now);
        let count = |severity| pending.iter().filter(|n| n.severity == severity).count();
        PendingCounts {
            total: pending.len(),
            warnings: count(Severity::Warning),
            errors: count(Severity::Error),
        }
    }

    /// The notification with this ID or unique ID prefix. An ID of a malformed notification
    /// gives that manifest's error.
    pub fn resolve(&self, id_or_prefix: &str) -> Result<&Notification, Error> {
        let wanted = id_or_prefix.trim();
        let id = if self.notification_ids.contains(wanted) {
            wanted.to_string()
        } else {
            // IDs sharing a prefix are neighbours in the sorted set.
            let matches: Vec<&String> = if wanted.is_empty() {
                Vec::new()
            } else {
                self.notification_ids
                    .range::<str, _>((Bound::Included(wanted), Bound::Unbounded))
                    .take_while(|id| id.starts_with(wanted))
                    .take(MAX_CANDIDATES_SHOWN + 1)
                    .collect()
            };
            match matches.as_slice() {
                [] => return Err(Error::UnknownNotification(id_or_prefix.to_string())),
                [only] => (*only).clone(),
                several => {
                    return Err(Error::AmbiguousId {
                        prefix: id_or_prefix.to_string(),
                        candidates: several
                            .iter()
                            .take(MAX_CANDIDATES_SHOWN)
                            .map(|id| id.to_string())
                            .chain((several.len() > MAX_CANDIDATES_SHOWN).then(|| "…".into()))
                            .collect(),
                    })
                }
            }
        };
        if let Some(&at) = self.by_id.get(&id) {
            return Ok(&self.notifications[at]);
        }
        let problem = self
            .problems
            .iter()
            .find(|p| matches!(p, Error::Malformed { id: bad, .. } if *bad == id));
        Err(match problem {
            Some(Error::Malformed { id, reason }) => Error::Malformed {
                id: id.clone(),
                reason: reason.clone(),
            },
            _ => Error::UnknownNotification(id_or_prefix.to_string()),
        })
    }

    /// `show`: one notification by ID or prefix, with every user's acknowledgement.
    pub fn details(
        &self,
        id_or_prefix: &str,
        who: &Identity,
        now: DateTime<Utc>,
    ) -> Result<NotificationDetails, Error> {
        let notification = self.resolve(id_or_prefix)?;
        let mut seen = BTreeSet::new();
        let acknowledgements = self
            .acks_of(&notification.id)
            .filter(|ack| seen.insert(&ack.user))
            .cloned()
            .collect();
        Ok(NotificationDetails {
            item: self.item(notification, who, now),
            acknowledgements,
        })
    }

    /// The shortest prefix of `id`, at least [`SHORT_ID_LENGTH`] characters long, that no
    /// other notification shares. The IDs sharing the longest prefix with `id` are its
    /// neighbours in sorted order, so two lookups decide it; lengths count characters, so IDs
    /// that are not hex (not Kopia's) cut at character boundaries.
    pub fn short_id<'a>(&self, id: &'a str) -> &'a str {
        let before = self
            .notification_ids
            .range::<str, _>((Bound::Unbounded, Bound::Excluded(id)))
            .next_back();
        let after = self
            .notification_ids
            .range::<str, _>((Bound::Excluded(id), Bound::Unbounded))
            .next();
        let shared = [before, after]
            .into_iter()
            .flatten()
            .map(|other| common_prefix_chars(id, other))
            .max()
            .unwrap_or(0);
        let length = SHORT_ID_LENGTH.max(shared + 1);
        match id.char_indices().nth(length) {
            Some((end, _)) => &id[..end],
            None => id,
        }
    }

    /// Acknowledgements to write for the given IDs or prefixes. Every ID must resolve to a
    /// notification addressed to `who`; already acknowledged and expired ones are skipped.
    pub fn plan_ack(
        &self,
        who: &Identity,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<AckPlan, Error> {
        let mut chosen: Vec<&Notification> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for id in ids {
            let notification = self.resolve(id)?;
            if !notification.recipient.includes(who) {
                return Err(Error::NotAddressed {
                    id: notification.id.clone(),
                    recipient: notification.recipient.describe(),
                    identity: who.to_string(),
                });
            }
            if seen.insert(notification.id.as_str()) {
                chosen.push(notification);
            }
        }
        Ok(self.plan_ack_of(who, chosen, now))
    }

    /// Acknowledgements for everything pending for `who`.
    pub fn plan_ack_all(&self, who: &Identity, now: DateTime<Utc>) -> AckPlan {
        self.plan_ack_of(who, self.pending(who, now), now)
    }

    fn plan_ack_of(
        &self,
        who: &Identity,
        chosen: Vec<&Notification>,
        now: DateTime<Utc>,
    ) -> AckPlan {
        let mut plan = AckPlan {
            puts: Vec::new(),
            outcome: AckOutcome::default(),
        };
        for notification in chosen {
            let id = notification.id.clone();
            match self.status(notification, who, now) {
                Status::Acknowledged => plan.outcome.already_acknowledged.push(id),
                Status::Expired => plan.outcome.expired.push(id),
                // Callers have checked the recipient already.
                Status::Pending | Status::OtherRecipient | Status::Resolved => {
                    plan.puts.push(Acknowledgement::new_manifest(&id, who, now));
                    plan.outcome.acknowledged.push(id);
                }
            }
        }
        plan
    }

    /// What `gc` deletes at `now`. Malformed manifests are left alone (and so are the
    /// acknowledgements of a malformed notification): deleting them is a person's decision.
    pub fn plan_gc(&self, now: DateTime<Utc>) -> GcPlan {
        let expired: BTreeSet<&str> = self
            .notifications
            .iter()
            .filter(|n| n.is_expired(now))
            .map(|n| n.id.as_str())
            .collect();
        let mut kept: BTreeSet<(&str, &Identity)> = BTreeSet::new();
        let mut acknowledgements = Vec::new();
        // Oldest first, so the first acknowledgement of a (notification, user) pair is kept.
        for ack in &self.acknowledgements {
            let id = ack.notification_id.as_str();
            let orphan = !self.notification_ids.contains(id) || expired.contains(id);
            if orphan || !kept.insert((id, &ack.user)) {
                acknowledgements.push(ack.id.clone());
            }
        }
        let resolutions = self
            .resolution_manifests
            .iter()
            .filter(|(_, id)| !self.notification_ids.contains(id) || expired.contains(id.as_str()))
            .map(|(resolution, _)| resolution.clone())
            .collect();
        GcPlan {
            notifications: expired.into_iter().map(str::to_string).collect(),
            acknowledgements,
            resolutions,
        }
    }
}

/// How many characters `a` and `b` start with in common.
fn common_prefix_chars(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

fn optional_time<S: serde::Serializer>(t: &Option<DateTime<Utc>>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => rfc3339::serialize(t, s),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Recipient;
    use crate::schema::{Draft, Origin};
    use crate::test_fixtures::{alice, bob, t0};
    use chrono::Duration;
    use std::collections::BTreeMap;

    /// Builds manifests like a store would hold them, with chosen IDs.
    #[derive(Default)]
    struct Fixture {
        notifications: Vec<StoredManifest>,
        acks: Vec<StoredManifest>,
    }

    impl Fixture {
        fn notify(
            &mut self,
            id: &str,
            severity: Severity,
            to: Recipient,
            created: DateTime<Utc>,
            expires_in: Duration,
        ) -> &mut Self {
            let mut draft = Draft::new(
                severity,
                to,
                &format!("title {id}"),
                Origin {
                    user: alice(),
                    command: None,
                },
            );
            draft.expires_in = Some(expires_in);
            let manifest = draft.to_manifest(created).unwrap();
            self.notifications.push(stored(id, manifest));
            self
        }

        fn ack(
            &mut self,
            id: &str,
            notification: &str,
            who: &Identity,
            at: DateTime<Utc>,
        ) -> &mut Self {
            self.acks.push(stored(
                id,
                Acknowledgement::new_manifest(notification, who, at),
            ));
            self
        }

        fn inbox(&self) -> Inbox {
            Inbox::from_manifests(&self.notifications, &self.acks)
        }
    }

    fn stored(id: &str, manifest: NewManifest) -> StoredManifest {
        StoredManifest {
            id: id.into(),
            labels: manifest.labels,
            modified: t0(),
            data: manifest.data.to_string(),
        }
    }

    fn ids(items: &[InboxItem]) -> Vec<&str> {
        items.iter().map(|i| i.notification.id.as_str()).collect()
    }

    fn month() -> Duration {
        Duration::days(30)
    }

    #[test]
    fn pending_is_per_identity_and_per_acknowledgement() {
        let mut f = Fixture::default();
        f.notify("n-all", Severity::Error, Recipient::All, t0(), month())
            .notify(
                "n-alice",
                Severity::Warning,
                Recipient::User(alice()),
                t0() + Duration::minutes(1),
                month(),
            )
            .notify(
                "n-bob",
                Severity::Normal,
                Recipient::User(bob()),
                t0() + Duration::minutes(2),
                month(),
            )
            .ack("a1", "n-all", &bob(), t0() + Duration::hours(1));
        let inbox = f.inbox();
        let now = t0() + Duration::days(1);
        let opts = ListOptions::default();
        assert_eq!(ids(&inbox.list(&alice(), now, opts)), ["n-all", "n-alice"]);
        assert_eq!(ids(&inbox.list(&bob(), now, opts)), ["n-bob"]);
        assert_eq!(
            inbox.counts(&alice(), now),
            PendingCounts {
                total: 2,
                warnings: 1,
                errors: 1
            }
        );
        assert_eq!(
            inbox.counts(&bob(), now),
            PendingCounts {
                total: 1,
                warnings: 0,
                errors: 0
            }
        );

        let all = inbox.list(&bob(), now, ListOptions { all: true, ..opts });
        assert_eq!(ids(&all), ["n-all", "n-bob"]);
        assert_eq!(all[0].status, Status::Acknowledged);
        assert_eq!(all[0].acknowledged_at, Some(t0() + Duration::hours(1)));
        assert_eq!(all[1].status, Status::Pending);
        assert_eq!(
            inbox.status(&inbox.notifications()[1], &bob(), now),
            Status::OtherRecipient
        );
    }

    #[test]
    fn min_severity_filters() {
        let mut f = Fixture::default();
        f.notify("n", Severity::Normal, Recipient::All, t0(), month())
            .notify("w", Severity::Warning, Recipient::All, t0(), month())
            .notify("e", Severity::Error, Recipient::All, t0(), month());
        let inbox = f.inbox();
        let list = |min_severity| {
            let items = inbox.list(
                &alice(),
                t0(),
                ListOptions {
                    all: false,
                    min_severity,
                },
            );
            ids(&items)
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(list(Severity::Normal), ["e", "n", "w"]);
        assert_eq!(list(Severity::Warning), ["e", "w"]);
        assert_eq!(list(Severity::Error), ["e"]);
    }

    #[test]
    fn expiry_with_a_fixed_clock() {
        let mut f = Fixture::default();
        f.notify(
            "short",
            Severity::Error,
            Recipient::All,
            t0(),
            Duration::hours(1),
        )
        .notify("long", Severity::Error, Recipient::All, t0(), month());
        let inbox = f.inbox();
        let opts = ListOptions::default();
        assert_eq!(
            ids(&inbox.list(&alice(), t0() + Duration::minutes(59), opts)),
            ["long", "short"]
        );
        // Expiry is inclusive: at `expires` the notification is gone.
        let at_expiry = t0() + Duration::hours(1);
        assert_eq!(ids(&inbox.list(&alice(), at_expiry, opts)), ["long"]);
        let all = inbox.list(&alice(), at_expiry, ListOptions { all: true, ..opts });
        assert_eq!(
            all.iter().map(|i| i.status).collect::<Vec<_>>(),
            [Status::Pending, Status::Expired]
        );
        assert_eq!(inbox.counts(&alice(), t0() + month()).total, 0);
    }

    #[test]
    fn ack_of_a_notification_for_all_is_per_user() {
        let mut f = Fixture::default();
        f.notify("n1", Severity::Error, Recipient::All, t0(), month());
        let now = t0() + Duration::hours(2);
        let plan = f.inbox().plan_ack(&alice(), &["n1".into()], now).unwrap();
        assert_eq!(plan.outcome.acknowledged, ["n1"]);
        assert_eq!(plan.puts.len(), 1);
        assert_eq!(plan.puts[0].labels["user"], "alice@laptop");
        f.acks.push(stored("a1", plan.puts[0].clone()));

        let inbox = f.inbox();
        assert_eq!(inbox.counts(&alice(), now).total, 0);
        assert_eq!(inbox.counts(&bob(), now).total, 1);
        // Acknowledging again writes nothing.
        let again = inbox.plan_ack(&alice(), &["n1".into()], now).unwrap();
        assert!(again.puts.is_empty());
        assert_eq!(again.outcome.already_acknowledged, ["n1"]);
        // Bob's own acknowledgement is still to be written.
        assert_eq!(inbox.plan_ack_all(&bob(), now).outcome.acknowledged, ["n1"]);
    }

    #[test]
    fn ack_errors_and_skips() {
        let mut f = Fixture::default();
        f.notify(
            "abc111",
            Severity::Error,
            Recipient::User(bob()),
            t0(),
            month(),
        )
        .notify("abc222", Severity::Error, Recipient::All, t0(), month())
        .notify(
            "def333",
            Severity::Error,
            Recipient::All,
            t0(),
            Duration::hours(1),
        );
        let inbox = f.inbox();
        let now = t0() + Duration::hours(2);
        let error = inbox.plan_ack(&alice(), &["abc1".into()], now).unwrap_err();
        assert_eq!(
            error.to_string(),
            "notification abc111 is addressed to bob@desk, not to alice@laptop"
        );
        let error = inbox.plan_ack(&alice(), &["zzz".into()], now).unwrap_err();
        assert_eq!(error.to_string(), "no notification with ID \"zzz\"");
        let error = inbox.plan_ack(&alice(), &["abc".into()], now).unwrap_err();
        assert_eq!(
            error.to_string(),
            "notification ID prefix \"abc\" is ambiguous: it matches abc111, abc222"
        );
        // Expired ones are skipped; the same notification named twice is acknowledged once.
        let plan = inbox
            .plan_ack(
                &alice(),
                &["abc2".into(), "abc222".into(), "def".into()],
                now,
            )
            .unwrap();
        assert_eq!(plan.outcome.acknowledged, ["abc222"]);
        assert_eq!(plan.outcome.expired, ["def333"]);
        assert_eq!(plan.puts.len(), 1);
        // One unknown ID among good ones fails the whole request.
        assert!(inbox
            .plan_ack(&alice(), &["abc2".into(), "nope".into()], now)
            .is_err());
    }

    #[test]
    fn prefix_resolution_and_short_ids() {
        let mut f = Fixture::default();
        f.notify(
            "0123456789abcdef",
            Severity::Normal,
            Recipient::All,
            t0(),
            month(),
        )
        .notify(
            "0123456789ffffff",
            Severity::Normal,
            Recipient::All,
            t0(),
            month(),
        )
        .notify(
            "fedcba9876543210",
            Severity::Normal,
            Recipient::All,
            t0(),
            month(),
        );
        let inbox = f.inbox();
        assert_eq!(inbox.resolve("f").unwrap().id, "fedcba9876543210");
        assert_eq!(inbox.resolve("0123456789a").unwrap().id, "0123456789abcdef");
        assert_eq!(
            inbox.resolve(" fedcba9876543210 ").unwrap().id,
            "fedcba9876543210"
        );
        assert!(matches!(
            inbox.resolve("0123"),
            Err(Error::AmbiguousId { .. })
        ));
        assert!(matches!(
            inbox.resolve(""),
            Err(Error::UnknownNotification(_))
        ));
        assert_eq!(inbox.short_id("fedcba9876543210"), "fedcba98");
        assert_eq!(inbox.short_id("0123456789abcdef"), "0123456789a");
        assert_eq!(inbox.short_id("abc"), "abc");
    }

    /// IDs someone else's writer made: not hex, not ASCII, sharing a multi-byte prefix. They
    /// are listed, shortened at character boundaries, resolved and acknowledged like others.
    #[test]
    fn ids_that_are_not_kopia_shaped_are_handled_as_text() {
        let odd = [
            "éééééééé1",
            "éééééééé2",
            "日本語の通知です",
            "x",
            "id with spaces",
        ];
        let mut f = Fixture::default();
        for id in odd {
            f.notify(id, Severity::Normal, Recipient::All, t0(), month());
        }
        let inbox = f.inbox();
        let listed = inbox.list(&alice(), t0(), ListOptions::default());
        assert_eq!(listed.len(), odd.len());
        let short: Vec<&str> = listed
            .iter()
            .map(|item| inbox.short_id(&item.notification.id))
            .collect();
        for (id, short) in listed
            .iter()
            .map(|i| i.notification.id.as_str())
            .zip(&short)
        {
            assert!(id.starts_with(short));
            assert_eq!(inbox.resolve(short).unwrap().id, id);
        }
        assert_eq!(inbox.short_id("éééééééé1"), "éééééééé1");
        assert_eq!(inbox.short_id("日本語の通知です"), "日本語の通知です");
        assert!(matches!(
            inbox.resolve("éé"),
            Err(Error::AmbiguousId { candidates, .. }) if candidates.len() == 2
        ));
        let plan = inbox
            .plan_ack(&alice(), &["éééééééé2".into(), "éééééééé2".into()], t0())
            .unwrap();
        assert_eq!(plan.outcome.acknowledged, ["éééééééé2"]);
    }

    #[test]
    fn ambiguous_prefixes_name_a_bounded_number_of_candidates() {
        let mut f = Fixture::default();
        for n in 0..50 {
            f.notify(
                &format!("ab{n:030}"),
                Severity::Normal,
                Recipient::All,
                t0(),
                month(),
            );
        }
        let Err(Error::AmbiguousId { candidates, .. }) = f.inbox().resolve("ab") else {
            panic!("ambiguous");
        };
        assert_eq!(candidates.len(), MAX_CANDIDATES_SHOWN + 1);
        assert_eq!(candidates.last().unwrap(), "…");
    }

    /// Many notifications with many acknowledgements each: every answer still comes from the
    /// indexes (a per-notification scan of all acknowledgements would be 10^8 steps here).
    #[test]
    fn acknowledgements_are_found_through_the_index() {
        let mut f = Fixture::default();
        let users: Vec<Identity> = (0..5)
            .map(|n| format!("user{n}@host").parse().unwrap())
            .collect();
        for n in 0..2_000 {
            let id = format!("{n:032x}");
            f.notify(&id, Severity::Normal, Recipient::All, t0(), month());
            for (u, user) in users.iter().enumerate() {
                if (n + u) % 2 == 0 {
                    f.ack(&format!("{id}-{u}"), &id, user, t0());
                }
            }
        }
        let inbox = f.inbox();
        for (u, user) in users.iter().enumerate() {
            let pending = inbox.pending(user, t0());
            assert_eq!(pending.len(), 1_000);
            assert!(pending
                .iter()
                .all(|n| (usize::from_str_radix(&n.id, 16).unwrap() + u) % 2 == 1));
        }
        let details = inbox
            .details(&format!("{:032x}", 4), &alice(), t0())
            .unwrap();
        let who: Vec<String> = details
            .acknowledgements
            .iter()
            .map(|a| a.user.to_string())
            .collect();
        assert_eq!(who, ["user0@host", "user2@host", "user4@host"]);
    }

    #[test]
    fn malformed_manifests_are_skipped_and_reported() {
        let mut f = Fixture::default();
        f.notify("good", Severity::Error, Recipient::All, t0(), month());
        f.notifications.push(StoredManifest {
            id: "bad".into(),
            labels: BTreeMap::from([("type".to_string(), "notification".to_string())]),
            modified: t0(),
            data: "{}".into(),
        });
        f.acks.push(StoredManifest {
            id: "bad-ack".into(),
            labels: BTreeMap::from([("type".to_string(), "notificationAck".to_string())]),
            modified: t0(),
            data: "[]".into(),
        });
        f.ack("a-of-bad", "bad", &alice(), t0());
        let inbox = f.inbox();
        assert_eq!(
            ids(&inbox.list(&alice(), t0(), ListOptions::default())),
            ["good"]
        );
        let problems: Vec<String> = inbox.problems().iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 2);
        assert!(problems[0].starts_with("malformed manifest bad: label \"severity\" is missing"));
        assert!(problems[1].starts_with("malformed manifest bad-ack: payload:"));
        // Asking for it by ID names the problem; gc leaves it and its acknowledgement alone.
        assert!(inbox
            .resolve("bad")
            .unwrap_err()
            .to_string()
            .contains("malformed manifest bad"));
        assert!(inbox
            .plan_gc(t0() + Duration::days(365))
            .acknowledgements
            .is_empty());
    }

    #[test]
    fn gc_deletes_expired_orphaned_and_duplicate_acknowledgements() {
        let mut f = Fixture::default();
        f.notify("live", Severity::Error, Recipient::All, t0(), month())
            .notify(
                "old",
                Severity::Error,
                Recipient::All,
                t0(),
                Duration::days(1),
            )
            .ack("a-live-alice", "live", &alice(), t0() + Duration::hours(1))
            .ack(
                "a-live-alice-again",
                "live",
                &alice(),
                t0() + Duration::hours(2),
            )
            .ack("a-live-bob", "live", &bob(), t0() + Duration::hours(3))
            .ack("a-old", "old", &alice(), t0())
            .ack("a-gone", "deleted-by-kopia", &bob(), t0());
        let inbox = f.inbox();
        assert!(inbox.plan_gc(t0()).notifications.is_empty());
        let plan = inbox.plan_gc(t0() + Duration::days(2));
        assert_eq!(plan.notifications, ["old"]);
        assert_eq!(
            plan.acknowledgements,
            ["a-gone", "a-old", "a-live-alice-again"]
        );
        assert_eq!(plan.deletes().len(), 4);

        let details = inbox
            .details("live", &alice(), t0() + Duration::days(2))
            .unwrap();
        let users: Vec<String> = details
            .acknowledgements
            .iter()
            .map(|a| a.user.to_string())
            .collect();
        assert_eq!(users, ["alice@laptop", "bob@desk"]);
        assert_eq!(
            details.item.acknowledged_at,
            Some(t0() + Duration::hours(1))
        );
    }

    #[test]
    fn items_serialize_flat() {
        let mut f = Fixture::default();
        f.notify("n1", Severity::Warning, Recipient::All, t0(), month());
        let inbox = f.inbox();
        let json = serde_json::to_value(inbox.details("n1", &alice(), t0()).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "n1",
                "severity": "warning",
                "recipient": "*",
                "sourceKind": "custom",
                "originHost": "laptop",
                "title": "title n1",
                "message": "",
                "details": "",
                "created": "2022-05-19T10:00:00Z",
                "expires": "2022-06-18T10:00:00Z",
                "link": null,
                "origin": {"user": "alice@laptop"},
                "snapshotSource": null,
                "schemaVersion": 1,
                "status": "pending",
                "acknowledgedAt": null,
                "acknowledgements": [],
            })
        );
    }
}
