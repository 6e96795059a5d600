//! Overdue sources: for every source with a complete snapshot, the slots its schedule has had
//! since (Kopia's effective scheduling policy, or our policy's threshold when Kopia schedules
//! nothing); one slot missed by more than [`GRACE`] is a warning, three are an error. Manual
//! sources and `overdue-after=never` are never overdue.

use chrono::{DateTime, Duration, TimeZone, Utc};

use super::schedule::{next_slot, PolicyTree};
use super::snapshots::{by_source, owner_of, Snapshot};
use super::{format_duration, recipients, DerivedKind, Finding};
use crate::policy::{NotificationPolicies, OverdueAfter, DEFAULT_OVERDUE};
use crate::schema::{rfc3339, Severity};

/// How late a scheduled snapshot may start before it counts as missed: Kopia's scheduler
/// retries failures after 5 minutes and runs missed slots at once, so half an hour covers a
/// machine that was briefly busy.
pub const GRACE: Duration = Duration::minutes(30);
/// Missed slots that make it an error.
pub const MISSED_FOR_ERROR: usize = 3;

/// How a source's slots are counted.
enum Slots<'a> {
    Schedule(&'a super::schedule::SchedulingPolicy),
    Every(Duration),
}

/// Overdue findings for every source, `zone` being the scheduling machine's.
pub fn check<Tz: TimeZone>(
    snapshots: &[Snapshot],
    scheduling: &PolicyTree,
    policies: &NotificationPolicies,
    now: DateTime<Utc>,
    zone: &Tz,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (subject, list) in by_source(snapshots) {
        let Some(last) = list.iter().rev().find(|s| s.is_complete()) else {
            continue;
        };
        let source = &last.source;
        let policy = policies.effective(Some(source));
        let effective = scheduling.effective(source);
        let slots = match policy.overdue_after {
            OverdueAfter::Never => continue,
            OverdueAfter::After(every) => Slots::Every(every),
            OverdueAfter::Schedule if effective.manual => continue,
            OverdueAfter::Schedule if effective.is_scheduled() => Slots::Schedule(&effective),
            OverdueAfter::Schedule => Slots::Every(DEFAULT_OVERDUE),
        };
        let missed = missed_slots(&slots, last.start, now, zone);
        let Some(first_missed) = missed.first().copied() else {
            continue;
        };
        let severity = if missed.len() >= MISSED_FOR_ERROR {
            Severity::Error
        } else {
            Severity::Warning
        };
        if severity < policy.min_severity {
            continue;
        }
        let rule = match slots {
            Slots::Schedule(_) => "Kopia's schedule".to_string(),
            Slots::Every(every) => format!("one every {}", format_duration(every)),
        };
        let count = if missed.len() >= MISSED_FOR_ERROR {
            format!("{MISSED_FOR_ERROR} or more")
        } else {
            missed.len().to_string()
        };
        let owner = owner_of(source);
        for (recipient, recipient_key) in recipients(&policy.notify, owner.as_ref()) {
            findings.push(Finding {
                kind: DerivedKind::SnapshotOverdue,
                subject: subject.to_owned(),
                // A new notification when it turns into an error; the warning resolves then.
                trigger: format!("{}/{}", last.id, severity),
                severity,
                recipient,
                recipient_key,
                title: format!(
                    "No snapshot of {source} since {}",
                    rfc3339::format(&last.start)
                ),
                message: format!(
                    "The last complete snapshot {} started {}. By {rule} one was due at {}; \
                     {count} scheduled snapshots have been missed.",
                    last.id,
                    rfc3339::format(&last.start),
                    rfc3339::format(&first_missed)
                ),
                details: String::new(),
                snapshot_source: Some(source.clone()),
            });
        }
    }
    findings
}

/// The slots after `last` that are more than [`GRACE`] behind `now`, at most
/// [`MISSED_FOR_ERROR`] of them.
fn missed_slots<Tz: TimeZone>(
    slots: &Slots<'_>,
    last: DateTime<Utc>,
    now: DateTime<Utc>,
    zone: &Tz,
) -> Vec<DateTime<Utc>> {
    let grace = match slots {
        Slots::Schedule(_) => GRACE,
        // A threshold is its own grace.
        Slots::Every(_) => Duration::zero(),
    };
    let mut missed = Vec::new();
    let mut previous = last;
    while missed.len() < MISSED_FOR_ERROR {
        let next = match slots {
            Slots::Schedule(policy) => next_slot(policy, previous, zone),
            Slots::Every(every) => Some(previous + *every),
        };
        match next {
            Some(slot) if slot + grace <= now => {
                missed.push(slot);
                previous = slot;
            }
            _ => break,
        }
    }
    missed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::schedule::{SchedulingPolicy, TimeOfDay};
    use crate::health::snapshots::tests::{manifest, parse};
    use crate::policy::{policy_manifest, PolicyValues};
    use crate::store::StoredManifest;
    use crate::target::PolicyTarget;
    use crate::test_fixtures::t0;
    use chrono::FixedOffset;

    fn utc() -> FixedOffset {
        FixedOffset::east_opt(0).unwrap()
    }

    fn hourly() -> PolicyTree {
        let mut tree = PolicyTree::default();
        tree.insert(
            PolicyTarget::Global,
            SchedulingPolicy {
                interval_seconds: 3600,
                ..Default::default()
            },
        );
        tree
    }

    fn summary(findings: &[Finding]) -> Vec<(String, Severity)> {
        findings
            .iter()
            .map(|f| (f.trigger.clone(), f.severity))
            .collect()
    }

    #[test]
    fn slots_missed_by_more_than_the_grace() {
        // t0 is 10:00 UTC; the last snapshot started 08:10, so the slots are 09:00, 10:00, …
        let snapshots = parse(&[
            manifest("s1", "/home", t0() - Duration::minutes(110), None, 0, 0),
            // An incomplete snapshot does not count as a snapshot taken.
            manifest(
                "cp",
                "/home",
                t0() - Duration::minutes(10),
                Some("canceled"),
                0,
                0,
            ),
        ]);
        let policies = NotificationPolicies::default();
        let at = |minutes| {
            summary(&check(
                &snapshots,
                &hourly(),
                &policies,
                t0() + Duration::minutes(minutes),
                &utc(),
            ))
        };
        assert_eq!(at(-31), [], "09:00 + 30 min grace is not yet past at 09:29");
        assert_eq!(at(-30), [("s1/warning".into(), Severity::Warning)]);
        assert_eq!(at(89), [("s1/warning".into(), Severity::Warning)]);
        assert_eq!(at(90), [("s1/error".into(), Severity::Error)]);
    }

    #[test]
    fn time_of_day_in_the_scheduling_zone() {
        let mut tree = PolicyTree::default();
        tree.insert(
            PolicyTarget::Host {
                host: "laptop".into(),
            },
            SchedulingPolicy {
                times_of_day: vec![TimeOfDay { hour: 2, minute: 0 }],
                ..Default::default()
            },
        );
        // Last snapshot yesterday 10:00 UTC. At +09:00 the 02:00 slot is 17:00 UTC yesterday;
        // at -05:00 it is 07:00 UTC today.
        let snapshots = parse(&[manifest(
            "s1",
            "/home",
            t0() - Duration::days(1),
            None,
            0,
            0,
        )]);
        let policies = NotificationPolicies::default();
        let tokyo = FixedOffset::east_opt(9 * 3600).unwrap();
        let new_york = FixedOffset::west_opt(5 * 3600).unwrap();
        assert_eq!(
            summary(&check(&snapshots, &tree, &policies, t0(), &tokyo)),
            [("s1/warning".into(), Severity::Warning)]
        );
        assert_eq!(
            summary(&check(&snapshots, &tree, &policies, t0(), &new_york)),
            [("s1/warning".into(), Severity::Warning)]
        );
        let early = t0() - Duration::hours(3) - Duration::minutes(1);
        assert_eq!(
            summary(&check(&snapshots, &tree, &policies, early, &new_york)),
            []
        );
        assert_eq!(
            summary(&check(&snapshots, &tree, &policies, early, &tokyo)),
            [("s1/warning".into(), Severity::Warning)]
        );
    }

    #[test]
    fn unscheduled_manual_and_policy_thresholds() {
        let snapshots = parse(&[manifest(
            "s1",
            "/home",
            t0() - Duration::days(8),
            None,
            0,
            0,
        )]);
        let none = NotificationPolicies::default();
        // No schedule anywhere: our default of 7 days.
        assert_eq!(
            summary(&check(
                &snapshots,
                &PolicyTree::default(),
                &none,
                t0(),
                &utc()
            )),
            [("s1/warning".into(), Severity::Warning)]
        );
        let mut manual = PolicyTree::default();
        manual.insert(
            PolicyTarget::Global,
            SchedulingPolicy {
                manual: true,
                ..Default::default()
            },
        );
        assert_eq!(
            summary(&check(&snapshots, &manual, &none, t0(), &utc())),
            []
        );

        let with = |overdue: &str| {
            let values = PolicyValues {
                overdue_after: Some(overdue.parse().unwrap()),
                ..Default::default()
            };
            let put = policy_manifest(&PolicyTarget::Global, &values);
            NotificationPolicies::from_manifests(&[StoredManifest {
                id: "p".into(),
                labels: put.labels,
                modified: t0(),
                data: put.data.to_string(),
            }])
            .0
        };
        assert_eq!(
            summary(&check(&snapshots, &hourly(), &with("never"), t0(), &utc())),
            []
        );
        assert_eq!(
            summary(&check(&snapshots, &manual, &with("2d"), t0(), &utc())),
            [("s1/error".into(), Severity::Error)],
            "a fixed threshold ignores Kopia's schedule, even manual"
        );
        assert_eq!(
            summary(&check(
                &snapshots,
                &PolicyTree::default(),
                &with("30d"),
                t0(),
                &utc()
            )),
            []
        );
    }
}
