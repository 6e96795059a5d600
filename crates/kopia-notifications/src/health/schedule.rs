//! Kopia's scheduling policy (snapshot/policy/scheduling_policy.go): read from `type=policy`
//! manifests, merged along the policy tree as Kopia merges it, and the schedule's slots.
//!
//! Intervals are truncated on absolute time, as Go's `Time.Truncate` does (counted from Go's
//! zero time, so in effect in UTC); times of day and cron entries are wall-clock times of the
//! scheduling machine's zone, which is a parameter here so that tests can fix it.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use serde::Deserialize;

use super::cron::Cron;
use crate::schema::SnapshotSource;
use crate::store::StoredManifest;
use crate::target::PolicyTarget;

/// `type` label of Kopia's policy manifests.
pub const POLICY_TYPE: &str = "policy";

/// A time of day, `hour` 0–23 and `min` 0–59.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
pub struct TimeOfDay {
    pub hour: u32,
    #[serde(rename = "min")]
    pub minute: u32,
}

/// The `scheduling` section of a Kopia policy, as defined at one level or merged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchedulingPolicy {
    #[serde(default)]
    pub interval_seconds: i64,
    #[serde(default, rename = "timeOfDay")]
    pub times_of_day: Vec<TimeOfDay>,
    #[serde(default, rename = "noParentTimeOfDay")]
    pub no_parent_times_of_day: bool,
    #[serde(default)]
    pub manual: bool,
    /// Entries may carry a `# comment`.
    #[serde(default)]
    pub cron: Vec<String>,
    #[serde(default)]
    pub run_missed: Option<bool>,
}

#[derive(Deserialize)]
struct PolicyPayload {
    #[serde(default)]
    scheduling: Option<SchedulingPolicy>,
}

impl SchedulingPolicy {
    /// Takes from `parent` what this (more specific) policy leaves unset (Kopia's `Merge`):
    /// the first non-zero interval, the first non-empty cron list, manual if any level says
    /// so, the first runMissed, and the union of times of day until a level says
    /// `noParentTimeOfDay`.
    pub fn merge(&mut self, parent: &SchedulingPolicy) {
        if self.interval_seconds == 0 {
            self.interval_seconds = parent.interval_seconds;
        }
        if !parent.times_of_day.is_empty() && !self.no_parent_times_of_day {
            self.times_of_day.extend(&parent.times_of_day);
            self.times_of_day.sort_unstable();
            self.times_of_day.dedup();
        }
        if self.cron.is_empty() {
            self.cron = parent.cron.clone();
        }
        self.no_parent_times_of_day |= parent.no_parent_times_of_day;
        self.manual |= parent.manual;
        if self.run_missed.is_none() {
            self.run_missed = parent.run_missed;
        }
    }

    /// Whether anything schedules snapshots (manual never does).
    pub fn is_scheduled(&self) -> bool {
        !self.manual
            && (self.interval_seconds > 0 || !self.times_of_day.is_empty() || !self.cron.is_empty())
    }
}

/// Every Kopia policy manifest's scheduling section, by target.
#[derive(Debug, Clone, Default)]
pub struct PolicyTree {
    policies: BTreeMap<PolicyTarget, SchedulingPolicy>,
}

impl PolicyTree {
    /// From `type=policy` manifests; those without a target or with a bad payload are left
    /// out and returned by ID with the reason, for the caller to report.
    pub fn from_manifests(manifests: &[StoredManifest]) -> (PolicyTree, Vec<(String, String)>) {
        let mut tree = PolicyTree::default();
        let mut problems = Vec::new();
        for manifest in manifests {
            let Some(target) = PolicyTarget::from_labels(|k| manifest.labels.get(k).cloned())
            else {
                problems.push((manifest.id.clone(), "labels name no policy target".into()));
                continue;
            };
            match serde_json::from_str::<PolicyPayload>(&manifest.data) {
                Ok(payload) => {
                    tree.policies
                        .insert(target, payload.scheduling.unwrap_or_default());
                }
                Err(e) => problems.push((manifest.id.clone(), format!("policy payload: {e}"))),
            }
        }
        (tree, problems)
    }

    pub fn insert(&mut self, target: PolicyTarget, policy: SchedulingPolicy) {
        self.policies.insert(target, policy);
    }

    /// The effective scheduling policy of `source`: the hierarchy merged most specific first,
    /// then Kopia's default (runMissed on, no schedule).
    pub fn effective(&self, source: &SnapshotSource) -> SchedulingPolicy {
        let mut effective = SchedulingPolicy::default();
        for target in PolicyTarget::hierarchy(source) {
            if let Some(policy) = self.policies.get(&target) {
                effective.merge(policy);
            }
        }
        effective.merge(&SchedulingPolicy {
            run_missed: Some(true),
            ..SchedulingPolicy::default()
        });
        effective
    }
}

/// Go's zero time (0001-01-01T00:00:00Z) in nanoseconds before the Unix epoch, the origin
/// `Time.Truncate` counts from.
const GO_ZERO_TIME_NANOS: i128 = -62_135_596_800 * 1_000_000_000;

/// `t` rounded down to a multiple of `interval` since Go's zero time.
pub fn truncate(t: DateTime<Utc>, interval: Duration) -> DateTime<Utc> {
    let step = interval.num_nanoseconds().unwrap_or(i64::MAX) as i128;
    let nanos = t.timestamp_nanos_opt().unwrap_or(i64::MAX) as i128;
    let since_zero = nanos - GO_ZERO_TIME_NANOS;
    let floored = nanos - since_zero.rem_euclid(step);
    DateTime::from_timestamp_nanos(floored as i64)
}

/// The first time of day strictly after `after`, in `zone` (Kopia counts "today's slot"
/// only if it is still ahead).
fn next_time_of_day<Tz: TimeZone>(
    times: &[TimeOfDay],
    after: DateTime<Utc>,
    zone: &Tz,
) -> Option<DateTime<Utc>> {
    let local = after.with_timezone(zone).naive_local();
    let mut best: Option<DateTime<Utc>> = None;
    for tod in times {
        let time = NaiveTime::from_hms_opt(tod.hour, tod.minute, 0)?;
        for day in 0..=2 {
            let date = local.date() + Duration::days(day);
            let Some(slot) = zone.from_local_datetime(&date.and_time(time)).earliest() else {
                continue;
            };
            let slot = slot.with_timezone(&Utc);
            if slot > after {
                best = Some(best.map_or(slot, |b| b.min(slot)));
                break;
            }
        }
    }
    best
}

fn next_cron<Tz: TimeZone>(
    entries: &[String],
    after: DateTime<Utc>,
    zone: &Tz,
) -> Option<DateTime<Utc>> {
    entries
        .iter()
        .filter_map(|entry| Cron::parse(entry).ok())
        .filter_map(|cron| cron.next_after(&after.with_timezone(zone)))
        .map(|t| t.with_timezone(&Utc))
        .min()
}

/// The first slot of the schedule after `previous` (a snapshot's start): the interval's
/// `(previous + interval)` truncated to the interval, the next time of day, the next cron
/// time — the earliest wins. `None` when nothing schedules snapshots.
pub fn next_slot<Tz: TimeZone>(
    policy: &SchedulingPolicy,
    previous: DateTime<Utc>,
    zone: &Tz,
) -> Option<DateTime<Utc>> {
    if policy.manual {
        return None;
    }
    [
        interval_slot(policy, previous),
        next_time_of_day(&policy.times_of_day, previous, zone),
        next_cron(&policy.cron, previous, zone),
    ]
    .into_iter()
    .flatten()
    .min()
}

/// The interval's next slot after `previous`: `(previous + interval)` truncated to the
/// interval in UTC, as Kopia computes it; `None` without an interval.
fn interval_slot(policy: &SchedulingPolicy, previous: DateTime<Utc>) -> Option<DateTime<Utc>> {
    (policy.interval_seconds > 0).then(|| {
        let interval = Duration::seconds(policy.interval_seconds);
        truncate(previous + interval, interval)
    })
}

/// Kopia's `NextSnapshotTime(previous, now)`: when its scheduler starts the next snapshot.
/// A slot already past is "now"; with runMissed, a missed time-of-day or cron slot runs at
/// once when the next one is more than 30 minutes away.
pub fn next_snapshot_time<Tz: TimeZone>(
    policy: &SchedulingPolicy,
    previous: DateTime<Utc>,
    now: DateTime<Utc>,
    zone: &Tz,
) -> Option<DateTime<Utc>> {
    if policy.manual {
        return None;
    }
    let next = [
        interval_slot(policy, previous).map(|slot| slot.max(now)),
        next_time_of_day(&policy.times_of_day, now, zone),
        next_cron(&policy.cron, now, zone),
    ]
    .into_iter()
    .flatten()
    .min()?;
    if policy.run_missed.unwrap_or(false) {
        let after_previous = previous + Duration::seconds(1);
        let missed = [
            next_time_of_day(&policy.times_of_day, after_previous, zone),
            next_cron(&policy.cron, after_previous, zone),
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(missed) = missed {
            if missed.min(next) < now && next > now + Duration::minutes(30) {
                return Some(now);
            }
        }
    }
    Some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::FixedOffset;

    fn t(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn source() -> SnapshotSource {
        SnapshotSource {
            host: "laptop".into(),
            user_name: "alice".into(),
            path: "/home/alice/docs".into(),
        }
    }

    fn tod(hour: u32, minute: u32) -> TimeOfDay {
        TimeOfDay { hour, minute }
    }

    #[test]
    fn interval_truncates_on_absolute_time() {
        let hourly = SchedulingPolicy {
            interval_seconds: 3600,
            ..Default::default()
        };
        let zone = FixedOffset::east_opt(5 * 3600 + 1800).unwrap();
        // 10:40 + 1 h = 11:40, truncated to 11:00 UTC whatever the zone.
        assert_eq!(
            next_slot(&hourly, t("2026-12-01T10:40:00Z"), &zone),
            Some(t("2026-12-01T11:00:00Z"))
        );
        // Intervals that do not divide a day align to Go's zero time, not to midnight.
        let seven_hours = Duration::hours(7);
        let go_zero = t("0001-01-01T00:00:00Z");
        let truncated = truncate(t("2026-12-01T10:40:00Z"), seven_hours);
        assert_eq!((truncated - go_zero).num_seconds() % (7 * 3600), 0);
        assert!(truncated <= t("2026-12-01T10:40:00Z"));
        assert!(t("2026-12-01T10:40:00Z") - truncated < seven_hours);
    }

    #[test]
    fn times_of_day_are_local() {
        let policy = SchedulingPolicy {
            times_of_day: vec![tod(2, 0), tod(14, 30)],
            ..Default::default()
        };
        let plus_two = FixedOffset::east_opt(2 * 3600).unwrap();
        // 01:30 UTC is 03:30 at +02:00: the 02:00 slot has passed, 14:30 local is 12:30 UTC.
        assert_eq!(
            next_slot(&policy, t("2026-12-01T01:30:00Z"), &plus_two),
            Some(t("2026-12-01T12:30:00Z"))
        );
        let utc = FixedOffset::east_opt(0).unwrap();
        assert_eq!(
            next_slot(&policy, t("2026-12-01T01:30:00Z"), &utc),
            Some(t("2026-12-01T02:00:00Z"))
        );
        // After the last slot of the day: tomorrow's first.
        assert_eq!(
            next_slot(&policy, t("2026-12-01T13:00:00Z"), &plus_two),
            Some(t("2026-12-02T00:00:00Z"))
        );
    }

    #[test]
    fn earliest_of_interval_times_and_cron() {
        let policy = SchedulingPolicy {
            interval_seconds: 6 * 3600,
            times_of_day: vec![tod(23, 0)],
            cron: vec!["15 3 * * * # nightly".into()],
            ..Default::default()
        };
        let minus_five = FixedOffset::west_opt(5 * 3600).unwrap();
        // 01:00Z is 20:00 the day before at -05:00. Interval: 06:00Z; time of day 23:00 local
        // = 04:00Z; cron 03:15 local = 08:15Z.
        let previous = t("2026-12-01T01:00:00Z");
        assert_eq!(
            next_slot(&policy, previous, &minus_five),
            Some(t("2026-12-01T04:00:00Z"))
        );
        let no_times = SchedulingPolicy {
            times_of_day: Vec::new(),
            ..policy.clone()
        };
        assert_eq!(
            next_slot(&no_times, previous, &minus_five),
            Some(t("2026-12-01T06:00:00Z"))
        );
        let cron_only = SchedulingPolicy {
            interval_seconds: 0,
            ..no_times
        };
        assert_eq!(
            next_slot(&cron_only, previous, &minus_five),
            Some(t("2026-12-01T08:15:00Z"))
        );
        let manual = SchedulingPolicy {
            manual: true,
            ..Default::default()
        };
        assert_eq!(
            next_slot(&manual, t("2026-12-01T01:00:00Z"), &minus_five),
            None
        );
        assert_eq!(
            next_slot(
                &SchedulingPolicy::default(),
                t("2026-12-01T01:00:00Z"),
                &minus_five
            ),
            None
        );
    }

    #[test]
    fn kopias_next_snapshot_time_runs_missed_slots() {
        let utc = FixedOffset::east_opt(0).unwrap();
        let daily = SchedulingPolicy {
            times_of_day: vec![tod(2, 0)],
            run_missed: Some(true),
            ..Default::default()
        };
        // The 02:00 slot after the previous snapshot passed while the machine was off.
        let previous = t("2026-11-30T01:00:00Z");
        let now = t("2026-12-01T09:00:00Z");
        assert_eq!(next_snapshot_time(&daily, previous, now, &utc), Some(now));
        let skip = SchedulingPolicy {
            run_missed: Some(false),
            ..daily.clone()
        };
        assert_eq!(
            next_snapshot_time(&skip, previous, now, &utc),
            Some(t("2026-12-02T02:00:00Z"))
        );
        // An interval slot in the past is due now.
        let hourly = SchedulingPolicy {
            interval_seconds: 3600,
            ..Default::default()
        };
        assert_eq!(next_snapshot_time(&hourly, previous, now, &utc), Some(now));
    }

    #[test]
    fn merging_follows_kopias_rules() {
        let mut tree = PolicyTree::default();
        tree.insert(
            PolicyTarget::Global,
            SchedulingPolicy {
                interval_seconds: 86_400,
                times_of_day: vec![tod(1, 0)],
                cron: vec!["0 5 * * *".into()],
                ..Default::default()
            },
        );
        tree.insert(
            PolicyTarget::Host {
                host: "laptop".into(),
            },
            SchedulingPolicy {
                times_of_day: vec![tod(12, 0)],
                run_missed: Some(false),
                ..Default::default()
            },
        );
        tree.insert(
            PolicyTarget::Path {
                user: "alice".into(),
                host: "laptop".into(),
                path: "/home/alice".into(),
            },
            SchedulingPolicy {
                interval_seconds: 3600,
                times_of_day: vec![tod(18, 0), tod(12, 0)],
                ..Default::default()
            },
        );
        let effective = tree.effective(&source());
        assert_eq!(
            effective.interval_seconds, 3600,
            "the parent path's interval wins"
        );
        assert_eq!(effective.times_of_day, [tod(1, 0), tod(12, 0), tod(18, 0)]);
        assert_eq!(effective.cron, ["0 5 * * *"]);
        assert_eq!(effective.run_missed, Some(false));
        assert!(!effective.manual);

        // noParentTimeOfDay keeps the level's own times and stops the ones above.
        tree.insert(
            PolicyTarget::User {
                user: "alice".into(),
                host: "laptop".into(),
            },
            SchedulingPolicy {
                times_of_day: vec![tod(7, 0)],
                no_parent_times_of_day: true,
                ..Default::default()
            },
        );
        let effective = tree.effective(&source());
        assert_eq!(effective.times_of_day, [tod(7, 0), tod(12, 0), tod(18, 0)]);

        // Manual anywhere wins; nothing set anywhere: Kopia's default runMissed.
        tree.insert(
            PolicyTarget::Global,
            SchedulingPolicy {
                manual: true,
                ..Default::default()
            },
        );
        assert!(!tree.effective(&source()).is_scheduled());
        let other = SnapshotSource {
            host: "desk".into(),
            ..source()
        };
        assert_eq!(
            PolicyTree::default().effective(&other).run_missed,
            Some(true)
        );
    }

    #[test]
    fn policy_manifests_parse_with_their_labels() {
        let manifest = |id: &str, labels: &[(&str, &str)], data: &str| StoredManifest {
            id: id.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            modified: t("2026-12-01T00:00:00Z"),
            data: data.into(),
        };
        let (tree, problems) = PolicyTree::from_manifests(&[
            manifest(
                "p1",
                &[("type", "policy"), ("policyType", "global")],
                r#"{"retention":{"keepLatest":10},"scheduling":{"intervalSeconds":7200,"runMissed":true}}"#,
            ),
            manifest(
                "p2",
                &[
                    ("type", "policy"),
                    ("policyType", "host"),
                    ("hostname", "laptop"),
                ],
                r#"{"scheduling":{"timeOfDay":[{"hour":3,"min":15}],"cron":["0 4 * * *"]}}"#,
            ),
            manifest("p3", &[("type", "policy"), ("policyType", "path")], "{}"),
            manifest(
                "p4",
                &[("type", "policy"), ("policyType", "global")],
                r#"{"scheduling":"hourly"}"#,
            ),
        ]);
        assert_eq!(
            problems
                .iter()
                .map(|(id, _)| id.as_str())
                .collect::<Vec<_>>(),
            ["p3", "p4"]
        );
        let effective = tree.effective(&source());
        assert_eq!(effective.interval_seconds, 7200);
        assert_eq!(effective.times_of_day, [tod(3, 15)]);
        assert_eq!(effective.cron, ["0 4 * * *"]);
    }
}
