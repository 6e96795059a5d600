//! [`Notifications`]: the operations of the issue (send, list, show, ack, ack all, gc) over any
//! [`ManifestAccess`], with `now` passed in so tests can fix the clock. Loads, applies the
//! inbox rules, writes each change as one batch. No printing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::health::resolution::RESOLUTION_TYPE;
use crate::identity::Identity;
use crate::inbox::{
    AckOutcome, AckPlan, GcPlan, Inbox, InboxItem, ListOptions, NotificationDetails, PendingCounts,
};
use crate::schema::{label, Draft, ACK_TYPE, NOTIFICATION_TYPE};
use crate::store::ManifestAccess;
use crate::Error;

/// Notifications the listing shows, and the malformed manifests it had to skip.
#[derive(Debug)]
pub struct Listing {
    pub items: Vec<InboxItem>,
    /// Each an [`Error::Malformed`] naming the manifest.
    pub skipped: Vec<Error>,
}

pub struct Notifications<'s> {
    store: &'s mut dyn ManifestAccess,
}

impl<'s> Notifications<'s> {
    pub fn new(store: &'s mut dyn ManifestAccess) -> Self {
        Notifications { store }
    }

    /// Reads every notification, acknowledgement and resolution (three label-filtered finds).
    pub fn inbox(&self) -> Result<Inbox, Error> {
        let notifications = self.store.find(&type_filter(NOTIFICATION_TYPE))?;
        let acks = self.store.find(&type_filter(ACK_TYPE))?;
        let resolutions = self.store.find(&type_filter(RESOLUTION_TYPE))?;
        let mut inbox = Inbox::from_manifests(&notifications, &acks);
        inbox.add_resolutions(&resolutions);
        Ok(inbox)
    }

    /// Writes a new notification created at `now`; returns its manifest ID.
    pub fn send(&mut self, draft: &Draft, now: DateTime<Utc>) -> Result<String, Error> {
        let manifest = draft.to_manifest(now)?;
        let ids = self.store.write(vec![manifest], Vec::new())?;
        let id = ids.into_iter().next().ok_or_else(|| {
            Error::Store(crate::StoreError::new(
                crate::StoreErrorKind::Other,
                "the store returned no ID for the new notification",
            ))
        })?;
        tracing::debug!(%id, severity = %draft.severity, recipient = %draft.recipient, "notification sent");
        Ok(id)
    }

    /// Writes every draft in one write (one pack, one index blob); returns their manifest IDs
    /// in the drafts' order. Nothing is written unless every draft is valid.
    pub fn send_all(&mut self, drafts: &[Draft], now: DateTime<Utc>) -> Result<Vec<String>, Error> {
        let manifests = drafts
            .iter()
            .map(|draft| draft.to_manifest(now))
            .collect::<Result<Vec<_>, _>>()?;
        let ids = self.store.write(manifests, Vec::new())?;
        if ids.len() != drafts.len() {
            return Err(Error::Store(crate::StoreError::new(
                crate::StoreErrorKind::Other,
                format!(
                    "the store returned {} IDs for {} notifications",
                    ids.len(),
                    drafts.len()
                ),
            )));
        }
        tracing::debug!(count = ids.len(), "notifications sent");
        Ok(ids)
    }

    pub fn list(
        &self,
        who: &Identity,
        now: DateTime<Utc>,
        options: ListOptions,
    ) -> Result<Listing, Error> {
        let mut inbox = self.inbox()?;
        Ok(Listing {
            items: inbox.list(who, now, options),
            skipped: inbox.take_problems(),
        })
    }

    pub fn show(
        &self,
        id_or_prefix: &str,
        who: &Identity,
        now: DateTime<Utc>,
    ) -> Result<NotificationDetails, Error> {
        self.inbox()?.details(id_or_prefix, who, now)
    }

    pub fn counts(&self, who: &Identity, now: DateTime<Utc>) -> Result<PendingCounts, Error> {
        Ok(self.inbox()?.counts(who, now))
    }

    /// Acknowledges the given IDs or prefixes for `who`. Any unknown, ambiguous or foreign ID
    /// fails the whole call before anything is written.
    pub fn ack(
        &mut self,
        who: &Identity,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<AckOutcome, Error> {
        let inbox = self.inbox()?;
        self.ack_in(&inbox, who, ids, now)
    }

    /// [`Notifications::ack`] planned on `inbox`, read from this store before: several
    /// identities acknowledging in one go (the app's queue) read the manifests once.
    pub fn ack_in(
        &mut self,
        inbox: &Inbox,
        who: &Identity,
        ids: &[String],
        now: DateTime<Utc>,
    ) -> Result<AckOutcome, Error> {
        let plan = inbox.plan_ack(who, ids, now)?;
        self.write_acks(plan)
    }

    /// Acknowledges everything pending for `who`.
    pub fn ack_all(&mut self, who: &Identity, now: DateTime<Utc>) -> Result<AckOutcome, Error> {
        let plan = self.inbox()?.plan_ack_all(who, now);
        self.write_acks(plan)
    }

    fn write_acks(&mut self, plan: AckPlan) -> Result<AckOutcome, Error> {
        if !plan.puts.is_empty() {
            self.store.write(plan.puts, Vec::new())?;
        }
        Ok(plan.outcome)
    }

    /// Deletes expired notifications and acknowledgements that no longer serve a purpose.
    pub fn gc(&mut self, now: DateTime<Utc>) -> Result<GcPlan, Error> {
        let plan = self.inbox()?.plan_gc(now);
        if !plan.is_empty() {
            self.store.write(Vec::new(), plan.deletes())?;
        }
        Ok(plan)
    }
}

fn type_filter(kind: &str) -> BTreeMap<String, String> {
    BTreeMap::from([(label::TYPE.to_string(), kind.to_string())])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Recipient;
    use crate::schema::{Origin, Severity};
    use crate::store::{MemoryStore, StoreErrorKind};
    use crate::test_fixtures::{alice, bob, t0};
    use chrono::Duration;

    fn draft(severity: Severity, to: Recipient, title: &str) -> Draft {
        Draft::new(
            severity,
            to,
            title,
            Origin {
                user: alice(),
                command: Some("kopia-notify send".into()),
            },
        )
    }

    #[test]
    fn two_identities_on_one_store() {
        let mut store = MemoryStore::new();
        let mut service = Notifications::new(&mut store);
        let everyone = service
            .send(
                &draft(Severity::Error, Recipient::All, "Maintenance failed"),
                t0(),
            )
            .unwrap();
        let for_bob = service
            .send(
                &draft(
                    Severity::Warning,
                    Recipient::User(bob()),
                    "Disk almost full",
                ),
                t0() + Duration::seconds(1),
            )
            .unwrap();
        let now = t0() + Duration::hours(1);

        assert_eq!(
            service.counts(&alice(), now).unwrap(),
            PendingCounts {
                total: 1,
                warnings: 0,
                errors: 1
            }
        );
        assert_eq!(
            service.counts(&bob(), now).unwrap(),
            PendingCounts {
                total: 2,
                warnings: 1,
                errors: 1
            }
        );

        let outcome = service.ack_all(&alice(), now).unwrap();
        assert_eq!(outcome.acknowledged, std::slice::from_ref(&everyone));
        assert_eq!(service.counts(&alice(), now).unwrap().total, 0);
        assert_eq!(service.counts(&bob(), now).unwrap().total, 2);

        let outcome = service
            .ack(&bob(), &[for_bob[..6].to_string()], now)
            .unwrap();
        assert_eq!(outcome.acknowledged, std::slice::from_ref(&for_bob));
        let listing = service.list(&bob(), now, ListOptions::default()).unwrap();
        assert_eq!(listing.items.len(), 1);
        assert_eq!(listing.items[0].notification.id, everyone);

        let details = service.show(&everyone, &bob(), now).unwrap();
        assert_eq!(details.acknowledgements.len(), 1);
        assert_eq!(details.acknowledgements[0].user, alice());
        // Two sends and two acknowledgements: four batches, one manifest each.
        assert_eq!(store.batches_written(), 4);
        assert_eq!(store.len(), 4);
    }

    #[test]
    fn gc_after_expiry_and_after_a_manual_delete() {
        let mut store = MemoryStore::new();
        let mut service = Notifications::new(&mut store);
        let mut short = draft(Severity::Normal, Recipient::All, "Short-lived");
        short.expires_in = Some(Duration::days(1));
        let short_id = service.send(&short, t0()).unwrap();
        let long_id = service
            .send(&draft(Severity::Normal, Recipient::All, "Long-lived"), t0())
            .unwrap();
        service.ack_all(&alice(), t0()).unwrap();
        service.ack_all(&bob(), t0()).unwrap();

        let plan = service.gc(t0() + Duration::days(2)).unwrap();
        assert_eq!(plan.notifications, [short_id]);
        assert_eq!(plan.acknowledgements.len(), 2);
        assert!(service.gc(t0() + Duration::days(2)).unwrap().is_empty());

        // `kopia manifest delete` of a notification: its acknowledgements become garbage.
        store.remove(&long_id);
        let mut service = Notifications::new(&mut store);
        assert!(service
            .list(
                &alice(),
                t0(),
                ListOptions {
                    all: true,
                    ..Default::default()
                }
            )
            .unwrap()
            .items
            .is_empty());
        assert_eq!(service.gc(t0()).unwrap().acknowledgements.len(), 2);
        assert!(store.is_empty());
    }

    #[test]
    fn bad_input_writes_nothing() {
        let mut store = MemoryStore::new();
        let mut service = Notifications::new(&mut store);
        let id = service
            .send(&draft(Severity::Error, Recipient::All, "x"), t0())
            .unwrap();
        assert!(matches!(
            service.send(&draft(Severity::Error, Recipient::All, ""), t0()),
            Err(Error::EmptyTitle)
        ));
        assert!(service
            .ack(&alice(), &[id.clone(), "nope".into()], t0())
            .is_err());
        assert!(service.show("nope", &alice(), t0()).is_err());
        let outcome = service
            .ack(&alice(), std::slice::from_ref(&id), t0())
            .unwrap();
        assert_eq!(outcome.acknowledged, [id]);
        // Nothing left to acknowledge: no empty batch is written.
        assert_eq!(
            service.ack_all(&alice(), t0()).unwrap(),
            AckOutcome::default()
        );
        assert_eq!(store.batches_written(), 2);

        store.set_unreachable(true);
        let service = Notifications::new(&mut store);
        match service.counts(&alice(), t0()) {
            Err(Error::Store(error)) => assert_eq!(error.kind, StoreErrorKind::Unreachable),
            other => panic!("expected an unreachable store, got {other:?}"),
        }
    }

    #[test]
    fn listing_reports_malformed_manifests_without_failing() {
        let mut store = MemoryStore::new();
        store.insert_raw(
            "deadbeef",
            &[
                ("type", "notification"),
                ("severity", "loud"),
                ("recipient", "*"),
            ],
            "{}",
        );
        let mut service = Notifications::new(&mut store);
        service
            .send(&draft(Severity::Normal, Recipient::All, "fine"), t0())
            .unwrap();
        let listing = service
            .list(&alice(), t0(), ListOptions::default())
            .unwrap();
        assert_eq!(listing.items.len(), 1);
        assert_eq!(listing.skipped.len(), 1);
        assert!(listing.skipped[0].to_string().contains("deadbeef"));
    }
}
