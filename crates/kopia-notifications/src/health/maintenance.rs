//! Maintenance findings from Kopia's `kopia.maintenance` blob and its `type=maintenance`
//! parameters (repo/maintenance/): a task whose latest run failed (error to the owner), no
//! owner at all (warning to everyone: maintenance never runs), and a cycle that has not
//! succeeded for twice its interval (warning to the owner). Kopia moves `next*` forward before
//! it runs, so lateness is judged by the runs themselves, never by those fields.

use chrono::{DateTime, Duration, Utc};
use kopia_repo::go_json::go_time;
use kopia_repo::maintenance::{Params, Schedule, Task};

use super::{format_duration, recipients, DerivedKind, Finding};
use crate::identity::{Identity, Recipient};
use crate::policy::NotificationPolicies;
use crate::schema::{rfc3339, Severity};

/// Subjects of the findings that are not about one task.
pub const OWNER_SUBJECT: &str = "owner";
pub const FULL_CYCLE_SUBJECT: &str = "full-cycle";
pub const QUICK_CYCLE_SUBJECT: &str = "quick-cycle";

/// The tasks whose success shows the quick cycle's index compaction is happening (epoch
/// repositories compact single epochs and advance; legacy ones compact indexes).
const QUICK_EVIDENCE: [Task; 3] = [
    Task::CompactSingleEpoch,
    Task::AdvanceEpoch,
    Task::IndexCompaction,
];

/// What Kopia records about maintenance.
#[derive(Debug, Clone, Default)]
pub struct MaintenanceState {
    /// The parameters manifest's ID and payload; `None` when there is none.
    pub params: Option<(String, Params)>,
    pub schedule: Schedule,
}

pub fn check(
    state: &MaintenanceState,
    policies: &NotificationPolicies,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let policy = policies.effective(None);
    let owner: Option<Identity> = state
        .params
        .as_ref()
        .and_then(|(_, params)| params.owner.parse().ok());
    let mut found: Vec<(DerivedKind, String, String, Severity, String, String)> = Vec::new();

    for (task, runs) in &state.schedule.runs {
        let Some(latest) = runs.first().filter(|run| !run.success) else {
            continue;
        };
        let error = if latest.error.is_empty() {
            "no error recorded".to_string()
        } else {
            latest.error.clone()
        };
        found.push((
            DerivedKind::MaintenanceFailed,
            task.to_string(),
            go_time::format(&latest.start),
            Severity::Error,
            format!("Maintenance task {task} failed"),
            format!(
                "The run of {task} started {} failed: {error}",
                rfc3339::format(&latest.start)
            ),
        ));
    }

    match (&state.params, &owner) {
        (Some((_, params)), Some(_)) => {
            let cycles = [
                (
                    params.full,
                    FULL_CYCLE_SUBJECT,
                    "full",
                    vec![Task::SnapshotGc],
                ),
                (
                    params.quick,
                    QUICK_CYCLE_SUBJECT,
                    "quick",
                    QUICK_EVIDENCE.to_vec(),
                ),
            ];
            for (cycle, subject, name, evidence) in cycles {
                if !cycle.enabled || cycle.interval <= Duration::zero() {
                    continue;
                }
                if let Some((since, last)) =
                    overdue_since(&state.schedule, &evidence, cycle.interval * 2, now)
                {
                    let tasks: Vec<&str> = evidence.iter().map(Task::as_str).collect();
                    found.push((
                        DerivedKind::MaintenanceOverdue,
                        subject.into(),
                        last.map_or("never".into(), |t| go_time::format(&t)),
                        Severity::Warning,
                        format!(
                            "{} maintenance has not succeeded since {}",
                            capitalize(name),
                            rfc3339::format(&since)
                        ),
                        format!(
                            "No successful {} within twice the {name} interval ({}). Owner: {}.",
                            tasks.join(" or "),
                            format_duration(cycle.interval * 2),
                            params.owner
                        ),
                    ));
                }
            }
        }
        (params, _) => {
            let (trigger, why) = match params {
                Some((id, params)) if params.owner.is_empty() => (
                    id.clone(),
                    "the maintenance parameters name no owner".to_string(),
                ),
                Some((id, params)) => (
                    id.clone(),
                    format!("the owner {:?} is not a user@host", params.owner),
                ),
                None => (
                    "none".into(),
                    "the repository has no maintenance parameters".into(),
                ),
            };
            found.push((
                DerivedKind::MaintenanceUnowned,
                OWNER_SUBJECT.into(),
                trigger,
                Severity::Warning,
                "Repository maintenance never runs: it has no owner".into(),
                format!(
                    "Kopia runs maintenance only on its owner's machine, and {why}. Set one \
                     with `kopia maintenance set --owner=me`."
                ),
            ));
        }
    }

    let mut findings = Vec::new();
    for (kind, subject, trigger, severity, title, message) in found {
        if severity < policy.min_severity {
            continue;
        }
        let to = if kind == DerivedKind::MaintenanceUnowned {
            vec![(Recipient::All, None)]
        } else {
            recipients(&policy.notify, owner.as_ref())
        };
        for (recipient, recipient_key) in to {
            findings.push(Finding {
                kind,
                subject: subject.clone(),
                trigger: trigger.clone(),
                severity,
                recipient,
                recipient_key,
                title: title.clone(),
                message: message.clone(),
                details: String::new(),
                snapshot_source: None,
            });
        }
    }
    findings
}

/// When none of `tasks` has succeeded within `limit` before `now`: since when (the last
/// success, else the oldest run recorded of any task) and the last success if any. With no
/// runs recorded at all there is no evidence either way.
fn overdue_since(
    schedule: &Schedule,
    tasks: &[Task],
    limit: Duration,
    now: DateTime<Utc>,
) -> Option<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let last = tasks
        .iter()
        .filter_map(|task| schedule.latest_success(task))
        .map(|run| run.end)
        .max();
    let since = match last {
        Some(last) => last,
        None => schedule
            .runs
            .values()
            .flatten()
            .map(|run| run.start)
            .min()?,
    };
    (now - since > limit).then_some((since, last))
}

fn capitalize(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::t0;

    fn params(owner: &str) -> Option<(String, Params)> {
        let json = format!(
            r#"{{"owner":"{owner}","quick":{{"enabled":true,"interval":3600000000000}},
                "full":{{"enabled":true,"interval":86400000000000}}}}"#
        );
        Some(("mp".into(), Params::parse("mp", &json).unwrap()))
    }

    fn schedule(runs: &[(&str, i64, bool)]) -> Schedule {
        let mut json = serde_json::Map::new();
        for (task, hours_ago, success) in runs {
            let start = t0() - Duration::hours(*hours_ago);
            let run = serde_json::json!({
                "start": go_time::format(&start),
                "end": go_time::format(&(start + Duration::seconds(2))),
                "success": success,
                "error": if *success { "" } else { "unable to delete pack blob: permission denied" },
            });
            json.entry(task.to_string())
                .or_insert_with(|| serde_json::Value::Array(Vec::new()))
                .as_array_mut()
                .unwrap()
                .push(run);
        }
        serde_json::from_value(serde_json::json!({"runs": json})).unwrap()
    }

    fn summary(findings: &[Finding]) -> Vec<(DerivedKind, &str, Severity, String)> {
        findings
            .iter()
            .map(|f| {
                (
                    f.kind,
                    f.subject.as_str(),
                    f.severity,
                    f.recipient.describe(),
                )
            })
            .collect()
    }

    #[test]
    fn failed_latest_run_is_an_error_to_the_owner() {
        let state = MaintenanceState {
            params: params("alice@laptop"),
            // Newest first: the failure after a success counts, a failure before one does not.
            schedule: schedule(&[
                ("full-delete-blobs", 1, false),
                ("full-delete-blobs", 25, true),
                ("snapshot-gc", 1, true),
                ("snapshot-gc", 25, false),
                ("compact-single-epoch", 1, true),
            ]),
        };
        let findings = check(&state, &NotificationPolicies::default(), t0());
        assert_eq!(
            summary(&findings),
            [(
                DerivedKind::MaintenanceFailed,
                "full-delete-blobs",
                Severity::Error,
                "alice@laptop".into()
            )]
        );
        assert!(findings[0].message.contains("permission denied"));
        assert_eq!(
            findings[0].trigger,
            go_time::format(&(t0() - Duration::hours(1)))
        );
    }

    #[test]
    fn no_owner_is_a_warning_to_everyone() {
        for params in [params(""), None] {
            let state = MaintenanceState {
                params,
                schedule: Schedule::default(),
            };
            let findings = check(&state, &NotificationPolicies::default(), t0());
            assert_eq!(
                summary(&findings),
                [(
                    DerivedKind::MaintenanceUnowned,
                    OWNER_SUBJECT,
                    Severity::Warning,
                    "all users".into()
                )]
            );
        }
    }

    #[test]
    fn cycles_overdue_after_twice_their_interval() {
        let state = MaintenanceState {
            params: params("alice@laptop"),
            schedule: schedule(&[("snapshot-gc", 49, true), ("advance-epoch", 1, true)]),
        };
        let findings = check(&state, &NotificationPolicies::default(), t0());
        assert_eq!(
            summary(&findings),
            [(
                DerivedKind::MaintenanceOverdue,
                FULL_CYCLE_SUBJECT,
                Severity::Warning,
                "alice@laptop".into()
            )]
        );
        // Within twice the interval: nothing.
        let recent = MaintenanceState {
            params: params("alice@laptop"),
            schedule: schedule(&[("snapshot-gc", 47, true), ("advance-epoch", 1, true)]),
        };
        assert!(check(&recent, &NotificationPolicies::default(), t0()).is_empty());
        // Never compacted, while other tasks ran three hours ago: the quick cycle is overdue.
        let never = MaintenanceState {
            params: params("alice@laptop"),
            schedule: schedule(&[("snapshot-gc", 3, true)]),
        };
        let findings = check(&never, &NotificationPolicies::default(), t0());
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].subject, QUICK_CYCLE_SUBJECT);
        assert_eq!(findings[0].trigger, "never");
        // A new repository without runs: no evidence of anything.
        let fresh = MaintenanceState {
            params: params("alice@laptop"),
            schedule: Schedule::default(),
        };
        assert!(check(&fresh, &NotificationPolicies::default(), t0()).is_empty());
    }
}
