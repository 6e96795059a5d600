//! One health check over any [`ManifestAccess`]: read what Kopia recorded (snapshots, its
//! policies, the maintenance parameters) and our policies, run every check, plan the derived
//! notifications and resolutions, and write them as one batch (unless asked not to).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, TimeZone, Utc};
use kopia_repo::maintenance::{Params, Schedule, PARAMS_MANIFEST_TYPE};
use serde::Serialize;

use super::maintenance::MaintenanceState;
use super::resolution::{plan, CheckPlan, Evidence, RESOLUTION_TYPE};
use super::schedule::{PolicyTree, POLICY_TYPE as KOPIA_POLICY_TYPE};
use super::snapshots::{order, Snapshot, SNAPSHOT_TYPE};
use super::upgrade::Versions;
use super::{label as derived_label, DerivedKind, Finding};
use crate::policy::{NotificationPolicies, POLICY_TYPE};
use crate::schema::{label, Origin, NOTIFICATION_TYPE};
use crate::store::{ManifestAccess, StoredManifest};
use crate::Error;

/// What a check found and did.
#[derive(Debug, Default)]
pub struct CheckOutcome {
    pub plan: CheckPlan,
    /// Whether the plan was written (false for a dry run or when there was nothing to write).
    pub written: bool,
    /// Records that could not be read, one line each; the checks ran without them.
    pub problems: Vec<String>,
}

/// The JSON `check --json` prints.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckSummary<'a> {
    pub written: bool,
    pub new: Vec<NewSummary<'a>>,
    pub resolved: Vec<&'a super::resolution::ResolvedNote>,
    pub unchanged: usize,
    pub problems: &'a [String],
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewSummary<'a> {
    pub id: &'a str,
    pub kind: &'a str,
    pub subject: &'a str,
    pub severity: &'a str,
    pub recipient: String,
    pub title: &'a str,
}

impl CheckOutcome {
    pub fn summary(&self) -> CheckSummary<'_> {
        CheckSummary {
            written: self.written,
            new: self
                .plan
                .notifications
                .iter()
                .map(|(id, _, finding)| NewSummary {
                    id,
                    kind: finding.kind.as_str(),
                    subject: &finding.subject,
                    severity: finding.severity.as_str(),
                    recipient: finding.recipient.describe(),
                    title: &finding.title,
                })
                .collect(),
            resolved: self
                .plan
                .resolutions
                .iter()
                .map(|(_, _, note)| note)
                .collect(),
            unchanged: self.plan.unchanged,
            problems: &self.problems,
        }
    }
}

fn of_type(store: &dyn ManifestAccess, kind: &str) -> Result<Vec<StoredManifest>, Error> {
    Ok(store.find(&BTreeMap::from([(
        label::TYPE.to_string(),
        kind.to_string(),
    )]))?)
}

/// What a check reads besides the manifests: Kopia's maintenance blob, or why it could not be
/// read (then nothing about maintenance is decided), and this machine's installed versions
/// against the latest releases (only the products in it are decided).
pub struct Recorded {
    pub schedule: Result<Schedule, String>,
    pub versions: Versions,
}

/// What the checks read from the manifests, parsed: Kopia's snapshots and policies, our
/// policies and the maintenance parameters. A reader that stays open keeps it while its
/// manifests are unchanged ([`super::live::LiveChecks`]), so that a refresh of an unchanged
/// repository parses nothing again.
#[derive(Debug, Clone)]
pub struct Records {
    snapshots: Vec<Snapshot>,
    scheduling: PolicyTree,
    policies: NotificationPolicies,
    /// The newest maintenance parameters manifest, or why it could not be parsed.
    params: Option<Result<(String, Params), String>>,
    /// Manifests that could not be read, one line each.
    problems: Vec<String>,
    derived: Derived,
}

/// The derived notifications and resolutions already stored: what a plan is made against.
#[derive(Debug, Clone)]
struct Derived {
    notifications: Vec<StoredManifest>,
    resolutions: Vec<StoredManifest>,
}

impl Derived {
    fn read(store: &dyn ManifestAccess) -> Result<Derived, Error> {
        Ok(Derived {
            notifications: of_type(store, NOTIFICATION_TYPE)?
                .into_iter()
                .filter(|m| m.labels.contains_key(derived_label::DERIVED))
                .collect(),
            resolutions: of_type(store, RESOLUTION_TYPE)?,
        })
    }

    /// Only the derived notifications of `kind` (and every resolution): what a plan of that
    /// one kind needs, without copying every notification of the repository (`list` makes
    /// such a plan on each run).
    fn read_kind(store: &dyn ManifestAccess, kind: DerivedKind) -> Result<Derived, Error> {
        let filter = BTreeMap::from([
            (label::TYPE.to_string(), NOTIFICATION_TYPE.to_string()),
            (
                derived_label::DERIVED.to_string(),
                kind.as_str().to_string(),
            ),
        ]);
        Ok(Derived {
            notifications: store.find(&filter)?,
            resolutions: of_type(store, RESOLUTION_TYPE)?,
        })
    }
}

impl Records {
    pub fn read(store: &dyn ManifestAccess) -> Result<Records, Error> {
        let mut problems = Vec::new();
        let mut snapshots: Vec<Snapshot> = of_type(store, SNAPSHOT_TYPE)?
            .iter()
            .filter_map(|m| {
                Snapshot::from_manifest(m)
                    .map_err(|e| problems.push(e.to_string()))
                    .ok()
            })
            .collect();
        // Grouped by source on every run: in order, that is one pass.
        order(&mut snapshots);
        let (scheduling, bad_policies) =
            PolicyTree::from_manifests(&of_type(store, KOPIA_POLICY_TYPE)?);
        problems.extend(
            bad_policies
                .into_iter()
                .map(|(id, why)| format!("Kopia policy {id}: {why}")),
        );
        let (policies, bad) = NotificationPolicies::from_manifests(&of_type(store, POLICY_TYPE)?);
        problems.extend(bad.iter().map(ToString::to_string));
        let params = of_type(store, PARAMS_MANIFEST_TYPE)?
            .into_iter()
            .max_by_key(|m| m.modified)
            .map(|m| match Params::parse(&m.id, &m.data) {
                Ok(params) => Ok((m.id, params)),
                Err(e) => Err(e.to_string()),
            });
        Ok(Records {
            snapshots,
            scheduling,
            policies,
            params,
            problems,
            derived: Derived::read(store)?,
        })
    }
}

/// Runs every check at `now` as `origin.user`, times of day and cron read in `zone`. With
/// `write` false nothing is written.
pub fn run_check<Tz: TimeZone>(
    store: &mut dyn ManifestAccess,
    recorded: Recorded,
    origin: &Origin,
    now: DateTime<Utc>,
    zone: &Tz,
    write: bool,
) -> Result<CheckOutcome, Error> {
    let records = Records::read(store)?;
    check_records(store, &records, recorded, origin, now, zone, write)
}

/// [`run_check`] over records read before (and still current).
pub fn check_records<Tz: TimeZone>(
    store: &mut dyn ManifestAccess,
    records: &Records,
    recorded: Recorded,
    origin: &Origin,
    now: DateTime<Utc>,
    zone: &Tz,
    write: bool,
) -> Result<CheckOutcome, Error> {
    let Records {
        snapshots,
        scheduling,
        policies,
        params,
        problems,
        derived,
    } = records;
    let mut problems = problems.clone();
    let mut checked: BTreeSet<DerivedKind> = [
        DerivedKind::SnapshotErrors,
        DerivedKind::SnapshotIgnoredErrors,
        DerivedKind::SnapshotInterrupted,
        DerivedKind::SnapshotOverdue,
    ]
    .into();
    let mut findings = super::snapshots::check(snapshots, policies, now);
    // What the reads met is the store's, never cached with the records.
    checked.insert(DerivedKind::UnreadableManifests);
    findings.extend(super::corruption::check_unreadable(
        &store.damaged(),
        policies,
    ));
    findings.extend(super::overdue::check(
        snapshots, scheduling, policies, now, zone,
    ));

    if !recorded.versions.products.is_empty() {
        checked.insert(DerivedKind::UpgradeAvailable);
        findings.extend(super::upgrade::check(
            &recorded.versions,
            &origin.user,
            policies,
        ));
    }
    let maintenance = match recorded.schedule {
        Ok(schedule) => {
            let params = match params {
                Some(Ok(params)) => Some(params.clone()),
                Some(Err(why)) => {
                    problems.push(why.clone());
                    None
                }
                None => None,
            };
            Some(MaintenanceState { params, schedule })
        }
        Err(why) => {
            problems.push(why);
            None
        }
    };
    if let Some(state) = &maintenance {
        checked.extend([
            DerivedKind::MaintenanceFailed,
            DerivedKind::MaintenanceUnowned,
            DerivedKind::MaintenanceOverdue,
        ]);
        findings.extend(super::maintenance::check(state, policies, now));
    }

    let evidence = Evidence {
        snapshots,
        maintenance: maintenance.as_ref(),
        versions: &recorded.versions,
    };
    plan_and_write(
        store, derived, &findings, &checked, &evidence, origin, now, write, problems,
    )
}

/// Plans `findings` of the `checked` kinds against the derived notifications and resolutions
/// already stored, and writes the plan in one write when `write` is set and it is not empty.
#[allow(clippy::too_many_arguments)]
fn plan_and_write(
    store: &mut dyn ManifestAccess,
    derived: &Derived,
    findings: &[Finding],
    checked: &BTreeSet<DerivedKind>,
    evidence: &Evidence<'_>,
    origin: &Origin,
    now: DateTime<Utc>,
    write: bool,
    problems: Vec<String>,
) -> Result<CheckOutcome, Error> {
    let plan = plan(
        findings,
        &derived.notifications,
        &derived.resolutions,
        checked,
        evidence,
        origin,
        now,
    )?;
    let written = write && !plan.is_empty();
    if written {
        store.write_with_ids(plan.puts(), Vec::new())?;
        tracing::info!(
            new = plan.notifications.len(),
            resolved = plan.resolutions.len(),
            "health findings written"
        );
    }
    Ok(CheckOutcome {
        plan,
        written,
        problems,
    })
}

/// Records a verification: a corruption notification when something is damaged, and the
/// resolution of earlier ones when nothing (or something else) is. With `write` false nothing
/// is written.
pub fn run_verify(
    store: &mut dyn ManifestAccess,
    report: &kopia_repo::verify::VerifyReport,
    origin: &Origin,
    now: DateTime<Utc>,
    write: bool,
) -> Result<CheckOutcome, Error> {
    run_one_kind(
        store,
        DerivedKind::Corruption,
        origin,
        now,
        write,
        |policies| super::corruption::check(report, policies),
    )
}

/// Records what the reads of the manifests met: a notification per pack whose manifest
/// contents could not be read, and the resolution of earlier ones that read again. For the
/// commands that read without checking (`list`). With `write` false nothing is written.
pub fn run_unreadable(
    store: &mut dyn ManifestAccess,
    origin: &Origin,
    now: DateTime<Utc>,
    write: bool,
) -> Result<CheckOutcome, Error> {
    let damaged = store.damaged();
    run_one_kind(
        store,
        DerivedKind::UnreadableManifests,
        origin,
        now,
        write,
        |policies| super::corruption::check_unreadable(&damaged, policies),
    )
}

/// Plans and writes the findings of one kind that needs neither snapshots, maintenance nor
/// versions as evidence for its resolutions.
fn run_one_kind(
    store: &mut dyn ManifestAccess,
    kind: DerivedKind,
    origin: &Origin,
    now: DateTime<Utc>,
    write: bool,
    find: impl FnOnce(&NotificationPolicies) -> Vec<Finding>,
) -> Result<CheckOutcome, Error> {
    let (policies, bad) = NotificationPolicies::from_manifests(&of_type(store, POLICY_TYPE)?);
    let findings = find(&policies);
    let evidence = Evidence {
        snapshots: &[],
        maintenance: None,
        versions: &Versions::default(),
    };
    let derived = Derived::read_kind(store, kind)?;
    plan_and_write(
        store,
        &derived,
        &findings,
        &[kind].into(),
        &evidence,
        origin,
        now,
        write,
        bad.iter().map(ToString::to_string).collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::snapshots::tests::manifest;
    use crate::service::Notifications;
    use crate::store::MemoryStore;
    use crate::test_fixtures::{alice, t0};
    use crate::{ListOptions, Status};
    use chrono::{Duration, FixedOffset};

    fn recorded(schedule: Result<Schedule, String>) -> Recorded {
        Recorded {
            schedule,
            versions: Versions::default(),
        }
    }

    fn origin() -> Origin {
        Origin {
            user: alice(),
            command: Some("kopia-notify check".into()),
        }
    }

    fn insert(store: &mut MemoryStore, m: StoredManifest) {
        let labels: Vec<(&str, &str)> = m
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        store.insert_raw(&m.id, &labels, &m.data);
    }

    #[test]
    fn one_write_then_nothing_then_resolution() {
        let mut store = MemoryStore::new();
        insert(
            &mut store,
            manifest("s1", "/home", t0() - Duration::hours(1), None, 2, 0),
        );
        let zone = FixedOffset::east_opt(0).unwrap();
        let first = run_check(
            &mut store,
            recorded(Ok(Schedule::default())),
            &origin(),
            t0(),
            &zone,
            true,
        )
        .unwrap();
        // The snapshot error, and the unowned maintenance (no parameters manifest).
        let kinds: Vec<&str> = first
            .plan
            .notifications
            .iter()
            .map(|(_, _, f)| f.kind.as_str())
            .collect();
        assert_eq!(kinds, ["snapshot-errors", "maintenance-unowned"]);
        assert!(first.written);
        assert_eq!(store.batches_written(), 1);

        // A dry run and a second check write nothing more.
        let dry = run_check(
            &mut store,
            recorded(Ok(Schedule::default())),
            &origin(),
            t0(),
            &zone,
            false,
        )
        .unwrap();
        assert!(dry.plan.is_empty() && !dry.written);
        assert_eq!(store.batches_written(), 1);

        let alice_items = |store: &mut MemoryStore| {
            Notifications::new(store)
                .list(&alice(), t0(), ListOptions::default())
                .unwrap()
                .items
        };
        assert_eq!(alice_items(&mut store).len(), 2);

        // A newer clean snapshot; the maintenance blob unreadable this time: only the snapshot
        // notification resolves.
        insert(
            &mut store,
            manifest("s2", "/home", t0() - Duration::minutes(10), None, 0, 0),
        );
        let later = t0() + Duration::minutes(1);
        let outcome = run_check(
            &mut store,
            recorded(Err("kopia.maintenance: unreadable".into())),
            &origin(),
            later,
            &zone,
            true,
        )
        .unwrap();
        assert_eq!(outcome.plan.resolutions.len(), 1);
        assert_eq!(outcome.problems, ["kopia.maintenance: unreadable"]);
        let pending = alice_items(&mut store);
        assert_eq!(pending.len(), 1);
        assert_eq!(
            pending[0].notification.title,
            "Repository maintenance never runs: it has no owner"
        );
        let all = Notifications::new(&mut store)
            .list(
                &alice(),
                later,
                ListOptions {
                    all: true,
                    ..ListOptions::default()
                },
            )
            .unwrap()
            .items;
        let resolved: Vec<_> = all
            .iter()
            .filter(|i| i.status == Status::Resolved)
            .collect();
        assert_eq!(resolved.len(), 1);
        let resolution = resolved[0].resolution.as_ref().unwrap();
        assert_eq!(resolution.resolved_at, later);
        assert!(
            resolution.reason.contains("snapshot s2"),
            "{}",
            resolution.reason
        );

        // Once the notification expires, gc takes its resolution with it.
        let gc = Notifications::new(&mut store)
            .gc(later + Duration::days(31))
            .unwrap();
        assert_eq!(gc.notifications.len(), 2);
        assert_eq!(gc.resolutions.len(), 1);
        assert!(of_type(&store, RESOLUTION_TYPE).unwrap().is_empty());
    }
}
