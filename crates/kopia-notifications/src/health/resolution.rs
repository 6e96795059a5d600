//! Resolutions: a derived notification resolves itself when its cause is gone, recorded as a
//! manifest of type `notificationResolution` whose ID is derived from the notification's, so
//! every machine agrees and two checks write it once. [`plan`] turns the current findings and
//! what the repository holds into the one write a check makes.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::maintenance::MaintenanceState;
use super::snapshots::{by_source, Snapshot};
use super::upgrade::Versions;
use super::{derived_id, label as derived_label, DerivedKind, Finding};
use crate::identity::Identity;
use crate::schema::{label, rfc3339, Notification, Origin, SCHEMA_VERSION};
use crate::store::{NewManifest, StoredManifest};
use crate::Error;

/// `type` label of a resolution.
pub const RESOLUTION_TYPE: &str = "notificationResolution";

/// A resolution read from the repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    pub id: String,
    pub notification_id: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub resolved_at: DateTime<Utc>,
    pub reason: String,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    schema_version: u32,
    notification_id: String,
    #[serde(with = "rfc3339")]
    resolved_at: DateTime<Utc>,
    #[serde(default)]
    reason: String,
}

impl Resolution {
    /// The resolution's manifest ID for a notification: one per notification, whoever writes it.
    pub fn id_for(notification_id: &str) -> String {
        derived_id("resolution", &[notification_id])
    }

    pub fn from_manifest(manifest: &StoredManifest) -> Result<Self, Error> {
        let id = &manifest.id;
        if manifest.labels.get(label::TYPE).map(String::as_str) != Some(RESOLUTION_TYPE) {
            return Err(Error::malformed(
                id,
                format!("type is not {RESOLUTION_TYPE:?}"),
            ));
        }
        let payload: Payload = serde_json::from_str(&manifest.data)
            .map_err(|e| Error::malformed(id, format!("payload: {e}")))?;
        if payload.schema_version == 0 || payload.schema_version > SCHEMA_VERSION {
            return Err(Error::malformed(
                id,
                format!("unsupported schemaVersion {}", payload.schema_version),
            ));
        }
        if payload.notification_id.is_empty() {
            return Err(Error::malformed(id, "payload: notificationId is empty"));
        }
        Ok(Resolution {
            id: id.clone(),
            notification_id: payload.notification_id,
            resolved_at: payload.resolved_at,
            reason: payload.reason,
        })
    }

    pub fn new_manifest(notification_id: &str, reason: &str, now: DateTime<Utc>) -> NewManifest {
        let labels = BTreeMap::from([
            (label::TYPE.to_string(), RESOLUTION_TYPE.to_string()),
            (
                label::NOTIFICATION_ID.to_string(),
                notification_id.to_string(),
            ),
            (
                label::SCHEMA_VERSION.to_string(),
                SCHEMA_VERSION.to_string(),
            ),
        ]);
        let payload = Payload {
            schema_version: SCHEMA_VERSION,
            notification_id: notification_id.to_string(),
            resolved_at: now,
            reason: reason.to_string(),
        };
        NewManifest {
            labels,
            data: serde_json::to_value(payload).expect("resolution payload serializes"),
        }
    }
}

/// What one check writes, each manifest with its deterministic ID.
#[derive(Debug, Clone, Default)]
pub struct CheckPlan {
    /// New derived notifications.
    pub notifications: Vec<(String, NewManifest, Finding)>,
    /// Resolutions of derived notifications whose cause is gone, with the resolved title.
    pub resolutions: Vec<(String, NewManifest, ResolvedNote)>,
    /// Findings already in the repository (written by an earlier or concurrent check).
    pub unchanged: usize,
}

/// For reports: which notification was resolved and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolvedNote {
    pub notification_id: String,
    pub title: String,
    pub reason: String,
}

impl CheckPlan {
    pub fn is_empty(&self) -> bool {
        self.notifications.is_empty() && self.resolutions.is_empty()
    }

    /// Every manifest to put, keyed by ID.
    pub fn puts(&self) -> Vec<(String, NewManifest)> {
        self.notifications
            .iter()
            .map(|(id, manifest, _)| (id.clone(), manifest.clone()))
            .chain(
                self.resolutions
                    .iter()
                    .map(|(id, manifest, _)| (id.clone(), manifest.clone())),
            )
            .collect()
    }
}

/// What the check saw, to say why something resolved.
pub struct Evidence<'a> {
    pub snapshots: &'a [Snapshot],
    pub maintenance: Option<&'a MaintenanceState>,
    /// The products whose versions this check compared.
    pub versions: &'a Versions,
}

impl Evidence<'_> {
    /// Whether `subject` has a complete snapshot other than the one `trigger` names.
    fn has_newer_snapshot(&self, subject: &str, trigger: &str) -> bool {
        let triggered_by = trigger.split('/').next().unwrap_or(trigger);
        by_source(self.snapshots)
            .get(subject)
            .and_then(|list| list.iter().rev().find(|s| s.is_complete()))
            .is_some_and(|newest| newest.id != triggered_by)
    }

    /// Why a derived notification of `kind` about `subject` triggered by `trigger` is gone,
    /// found by a check as `who`.
    pub fn explain(
        &self,
        kind: DerivedKind,
        subject: &str,
        trigger: &str,
        who: &Identity,
    ) -> String {
        use DerivedKind::*;
        match kind {
            SnapshotErrors | SnapshotIgnoredErrors | SnapshotInterrupted | SnapshotOverdue => {
                let sources = by_source(self.snapshots);
                let Some(list) = sources.get(subject) else {
                    return format!("{subject} has no snapshots any more");
                };
                let triggered_by = trigger.split('/').next().unwrap_or(trigger);
                match list.iter().rev().find(|s| s.is_complete()) {
                    Some(newest) if newest.id != triggered_by => {
                        let quality = if newest.fatal_errors > 0 {
                            "with errors of its own"
                        } else {
                            "without errors"
                        };
                        format!(
                            "snapshot {} of {subject} started {} completed {quality}",
                            newest.id,
                            rfc3339::format(&newest.start)
                        )
                    }
                    Some(_) if kind == SnapshotOverdue => {
                        "it is still overdue and reported at a higher severity".to_string()
                    }
                    _ => "the notification policy no longer reports it".to_string(),
                }
            }
            MaintenanceFailed => match self
                .maintenance
                .and_then(|m| m.schedule.latest_run(&subject.parse().expect("infallible")))
            {
                Some(run) if run.success => format!(
                    "maintenance task {subject} succeeded in the run started {}",
                    rfc3339::format(&run.start)
                ),
                Some(run) => format!(
                    "a later run of {subject} started {} (its failure is reported on its own)",
                    rfc3339::format(&run.start)
                ),
                None => format!("Kopia no longer records runs of {subject}"),
            },
            MaintenanceUnowned => match self.maintenance.and_then(|m| m.params.as_ref()) {
                Some((_, params)) if !params.owner.is_empty() => {
                    format!("maintenance is now owned by {}", params.owner)
                }
                _ => "the maintenance parameters changed".to_string(),
            },
            MaintenanceOverdue => format!("the {subject} succeeded again or is no longer due"),
            Corruption => "a later verification found no damaged contents".to_string(),
            UnreadableManifests => {
                "the pack's manifests can be read again, or the index no longer uses them"
                    .to_string()
            }
            UpgradeAvailable => match self.versions.about(subject, who) {
                Some(current) => super::upgrade::explain(current, trigger),
                None => format!("{subject} was not compared"),
            },
        }
    }
}

/// Plans a check's write. `checked` holds the kinds that were evaluated this time (a check
/// that could not read the maintenance blob resolves nothing about maintenance).
pub fn plan(
    findings: &[Finding],
    existing: &[StoredManifest],
    resolutions: &[StoredManifest],
    checked: &BTreeSet<DerivedKind>,
    evidence: &Evidence<'_>,
    origin: &Origin,
    now: DateTime<Utc>,
) -> Result<CheckPlan, Error> {
    let resolved: BTreeSet<String> = resolutions
        .iter()
        .filter_map(|m| Resolution::from_manifest(m).ok())
        .map(|r| r.notification_id)
        .collect();
    let live: BTreeMap<&str, &StoredManifest> = existing
        .iter()
        .filter(|m| Notification::from_manifest(m).is_ok_and(|n| !n.is_expired(now)))
        .map(|m| (m.id.as_str(), m))
        .collect();
    let mut plan = CheckPlan::default();
    let mut wanted = BTreeSet::new();
    for finding in findings {
        let id = finding.id();
        if !wanted.insert(id.clone()) {
            continue;
        }
        if live.contains_key(id.as_str()) || resolved.contains(&id) {
            plan.unchanged += 1;
            continue;
        }
        let manifest = finding.to_manifest(origin, now)?;
        plan.notifications.push((id, manifest, finding.clone()));
    }
    for (id, manifest) in live {
        let derived = |key| manifest.labels.get(key).map(String::as_str);
        let Some(kind) = derived(derived_label::DERIVED).and_then(|k| k.parse().ok()) else {
            continue;
        };
        if !checked.contains(&kind) || wanted.contains(id) || resolved.contains(id) {
            continue;
        }
        let subject = derived(derived_label::SUBJECT).unwrap_or("");
        let trigger = derived(derived_label::TRIGGER).unwrap_or("");
        // Whether a source is overdue depends on the checking machine's zone (times of day,
        // cron): another machine's overdue notification only resolves once the source has a
        // newer snapshot, or when it is reported at another severity.
        if kind == DerivedKind::SnapshotOverdue
            && !evidence.has_newer_snapshot(subject, trigger)
            && !findings
                .iter()
                .any(|f| f.kind == kind && f.subject == subject)
        {
            continue;
        }
        // Upgrades are about one machine's installation: only that machine's user, having
        // compared that product this time, may say it is gone.
        if kind == DerivedKind::UpgradeAvailable
            && evidence.versions.about(subject, &origin.user).is_none()
        {
            continue;
        }
        let reason = evidence.explain(kind, subject, trigger, &origin.user);
        let title = Notification::from_manifest(manifest)
            .map(|n| n.title)
            .unwrap_or_default();
        plan.resolutions.push((
            Resolution::id_for(id),
            Resolution::new_manifest(id, &reason, now),
            ResolvedNote {
                notification_id: id.to_string(),
                title,
                reason,
            },
        ));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::snapshots::tests::{manifest, parse};
    use crate::health::snapshots::{self};
    use crate::policy::NotificationPolicies;
    use crate::test_fixtures::{alice, t0};
    use chrono::Duration;

    fn origin() -> Origin {
        Origin {
            user: alice(),
            command: Some("kopia-notify check".into()),
        }
    }

    fn stored(id: &str, manifest: &NewManifest) -> StoredManifest {
        StoredManifest {
            id: id.into(),
            labels: manifest.labels.clone(),
            modified: t0(),
            data: manifest.data.to_string(),
        }
    }

    fn all_kinds() -> BTreeSet<DerivedKind> {
        [
            DerivedKind::SnapshotErrors,
            DerivedKind::SnapshotInterrupted,
        ]
        .into()
    }

    #[test]
    fn new_findings_once_then_resolution_when_the_cause_is_gone() {
        let failed = parse(&[manifest(
            "s1",
            "/home",
            t0() - Duration::hours(2),
            None,
            1,
            0,
        )]);
        let findings = snapshots::check(&failed, &NotificationPolicies::default(), t0());
        let evidence = Evidence {
            snapshots: &failed,
            maintenance: None,
            versions: &Versions::default(),
        };
        let first = plan(
            &findings,
            &[],
            &[],
            &all_kinds(),
            &evidence,
            &origin(),
            t0(),
        )
        .unwrap();
        assert_eq!(first.notifications.len(), 1);
        let (id, put, _) = &first.notifications[0];
        assert_eq!(put.labels["derived"], "snapshot-errors");
        assert_eq!(put.labels["subject"], "alice@laptop:/home");
        assert_eq!(put.labels["trigger"], "s1");
        let existing = vec![stored(id, put)];

        // Checked again (here or on another machine): nothing to write.
        let again = plan(
            &findings,
            &existing,
            &[],
            &all_kinds(),
            &evidence,
            &origin(),
            t0(),
        )
        .unwrap();
        assert!(again.is_empty());
        assert_eq!(again.unchanged, 1);

        // A newer clean snapshot: the finding is gone and the notification resolves.
        let fixed = parse(&[
            manifest("s1", "/home", t0() - Duration::hours(2), None, 1, 0),
            manifest("s2", "/home", t0() - Duration::hours(1), None, 0, 0),
        ]);
        let findings = snapshots::check(&fixed, &NotificationPolicies::default(), t0());
        assert!(findings.is_empty());
        let evidence = Evidence {
            snapshots: &fixed,
            maintenance: None,
            versions: &Versions::default(),
        };
        let later = t0() + Duration::minutes(5);
        let resolving = plan(
            &findings,
            &existing,
            &[],
            &all_kinds(),
            &evidence,
            &origin(),
            later,
        )
        .unwrap();
        assert_eq!(resolving.resolutions.len(), 1);
        let (rid, rput, note) = &resolving.resolutions[0];
        assert_eq!(*rid, Resolution::id_for(id));
        assert_eq!(
            note.reason,
            format!(
                "snapshot s2 of alice@laptop:/home started {} completed without errors",
                rfc3339::format(&(t0() - Duration::hours(1)))
            )
        );
        let resolution = Resolution::from_manifest(&stored(rid, rput)).unwrap();
        assert_eq!(resolution.notification_id, *id);
        assert_eq!(resolution.resolved_at, later);

        // Once resolved, nothing more is written, and the resolution ID is the same everywhere.
        let done = plan(
            &findings,
            &existing,
            &[stored(rid, rput)],
            &all_kinds(),
            &evidence,
            &origin(),
            later,
        )
        .unwrap();
        assert!(done.is_empty());
    }

    #[test]
    fn overdue_resolves_only_with_a_newer_snapshot_or_another_severity() {
        let snapshots = parse(&[manifest(
            "s1",
            "/home",
            t0() - Duration::days(8),
            None,
            0,
            0,
        )]);
        let policies = NotificationPolicies::default();
        let utc = chrono::FixedOffset::east_opt(0).unwrap();
        let tree = crate::health::schedule::PolicyTree::default();
        let findings = crate::health::overdue::check(&snapshots, &tree, &policies, t0(), &utc);
        let evidence = Evidence {
            snapshots: &snapshots,
            maintenance: None,
            versions: &Versions::default(),
        };
        let kinds: BTreeSet<DerivedKind> = [DerivedKind::SnapshotOverdue].into();
        let first = plan(&findings, &[], &[], &kinds, &evidence, &origin(), t0()).unwrap();
        let (id, put, _) = &first.notifications[0];
        let existing = vec![stored(id, put)];
        // Another machine (another zone, say) finds nothing: the notification stays.
        let elsewhere = plan(&[], &existing, &[], &kinds, &evidence, &origin(), t0()).unwrap();
        assert!(elsewhere.is_empty());
        // A newer snapshot: it resolves.
        let newer = parse(&[
            manifest("s1", "/home", t0() - Duration::days(8), None, 0, 0),
            manifest("s2", "/home", t0() - Duration::hours(1), None, 0, 0),
        ]);
        let evidence = Evidence {
            snapshots: &newer,
            maintenance: None,
            versions: &Versions::default(),
        };
        let done = plan(&[], &existing, &[], &kinds, &evidence, &origin(), t0()).unwrap();
        assert_eq!(done.resolutions.len(), 1);
    }

    #[test]
    fn kinds_not_checked_are_not_resolved() {
        let failed = parse(&[manifest("s1", "/home", t0(), None, 1, 0)]);
        let findings = snapshots::check(&failed, &NotificationPolicies::default(), t0());
        let evidence = Evidence {
            snapshots: &failed,
            maintenance: None,
            versions: &Versions::default(),
        };
        let first = plan(
            &findings,
            &[],
            &[],
            &all_kinds(),
            &evidence,
            &origin(),
            t0(),
        )
        .unwrap();
        let (id, put, _) = &first.notifications[0];
        let existing = vec![stored(id, put)];
        let only_maintenance: BTreeSet<DerivedKind> = [DerivedKind::MaintenanceFailed].into();
        let other = plan(
            &[],
            &existing,
            &[],
            &only_maintenance,
            &evidence,
            &origin(),
            t0(),
        )
        .unwrap();
        assert!(other.is_empty());
        let bad = StoredManifest {
            data: r#"{"schemaVersion":1,"notificationId":""}"#.into(),
            ..stored("r", &Resolution::new_manifest("n", "x", t0()))
        };
        assert!(Resolution::from_manifest(&bad).is_err());
    }

    #[test]
    fn upgrades_resolve_only_for_the_machine_that_compared_them() {
        use crate::health::releases::Release;
        use crate::health::upgrade::{self, Product, ProductVersions};
        use crate::test_fixtures::bob;
        let kopia = |installed: &str| Versions {
            products: vec![ProductVersions {
                product: Product::Kopia,
                installed: installed.into(),
                latest: Some(Release {
                    version: "v0.24.0".into(),
                    url: "https://example.invalid/v0.24.0".into(),
                }),
            }],
        };
        let kinds: BTreeSet<DerivedKind> = [DerivedKind::UpgradeAvailable].into();
        let old = kopia("v0.23.1");
        let findings = upgrade::check(&old, &alice(), &NotificationPolicies::default());
        let evidence = |versions| Evidence {
            snapshots: &[],
            maintenance: None,
            versions,
        };
        let first = plan(
            &findings,
            &[],
            &[],
            &kinds,
            &evidence(&old),
            &origin(),
            t0(),
        )
        .unwrap();
        let (id, put, _) = &first.notifications[0];
        let existing = vec![stored(id, put)];
        let current = kopia("v0.24.0");
        // Bob's machine runs v0.24.0: alice's notification is not his to resolve.
        let bob_origin = Origin {
            user: bob(),
            command: None,
        };
        let by_bob = plan(
            &[],
            &existing,
            &[],
            &kinds,
            &evidence(&current),
            &bob_origin,
            t0(),
        );
        assert!(by_bob.unwrap().is_empty());
        // Nothing compared this time (no network): nothing resolves.
        let none = Versions::default();
        let offline = plan(
            &[],
            &existing,
            &[],
            &kinds,
            &evidence(&none),
            &origin(),
            t0(),
        );
        assert!(offline.unwrap().is_empty());
        // Alice installed it.
        let done = plan(
            &[],
            &existing,
            &[],
            &kinds,
            &evidence(&current),
            &origin(),
            t0(),
        )
        .unwrap();
        assert_eq!(done.resolutions.len(), 1);
        assert_eq!(
            done.resolutions[0].2.reason,
            "Kopia v0.24.0 or later is installed"
        );
    }
}
