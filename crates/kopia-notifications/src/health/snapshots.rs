//! Snapshot manifests (Kopia's snapshot/manifest.go) and the checks over them: the newest
//! complete snapshot of a source with fatal errors (`rootEntry.summ.numFailed`,
//! `stats.errorCount`), with ignored errors when the policy asks, and a newest snapshot that
//! was canceled, hit its upload limit, or stopped at a checkpoint long ago (the upload died).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;

use super::{recipients, DerivedKind, Finding};
use crate::identity::Identity;
use crate::policy::{NotificationPolicies, Report};
use crate::schema::{limits, rfc3339, Severity, SnapshotSource};
use crate::store::StoredManifest;
use crate::Error;

/// `type` label of Kopia's snapshot manifests.
pub const SNAPSHOT_TYPE: &str = "snapshot";
/// Kopia writes a checkpoint every 45 minutes of upload; one older than two of them with
/// nothing newer means the upload stopped without a word.
pub const CHECKPOINT_INTERVAL: Duration = Duration::minutes(45);
/// At most this many failed entries are listed in the details.
pub const MAX_LISTED_ERRORS: usize = 50;

/// One entry Kopia could not read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EntryError {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub error: String,
}

/// The parts of a snapshot manifest that tell of trouble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub id: String,
    pub source: SnapshotSource,
    /// `source` as `user@host:/path`, the subject of what is derived from it (made once: the
    /// checks group thousands of snapshots by it on every run).
    pub subject: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// `checkpoint`, `canceled`, `limit reached`; `None` for a complete snapshot.
    pub incomplete: Option<String>,
    /// Fatal errors: the larger of `stats.errorCount` and `rootEntry.summ.numFailed`.
    pub fatal_errors: u64,
    pub ignored_errors: u64,
    /// Kopia's list, fatal and ignored mixed, possibly shorter than the counts.
    pub errors: Vec<EntryError>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payload {
    source: SnapshotSource,
    #[serde(with = "rfc3339")]
    start_time: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    end_time: DateTime<Utc>,
    #[serde(default)]
    incomplete: Option<String>,
    #[serde(default)]
    stats: Stats,
    #[serde(default)]
    root_entry: Option<RootEntry>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stats {
    #[serde(default)]
    error_count: u64,
    #[serde(default)]
    ignored_error_count: u64,
}

#[derive(Deserialize)]
struct RootEntry {
    #[serde(default)]
    summ: Option<Summary>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    #[serde(default)]
    num_failed: u64,
    #[serde(default)]
    num_ignored_errors: u64,
    #[serde(default)]
    errors: Vec<EntryError>,
}

impl Snapshot {
    /// Reads a `type=snapshot` manifest; the error names the manifest.
    pub fn from_manifest(manifest: &StoredManifest) -> Result<Snapshot, Error> {
        let payload: Payload = serde_json::from_str(&manifest.data)
            .map_err(|e| Error::malformed(&manifest.id, format!("snapshot payload: {e}")))?;
        let summary = payload.root_entry.and_then(|root| root.summ);
        let (num_failed, num_ignored, errors) = summary
            .map(|s| (s.num_failed, s.num_ignored_errors, s.errors))
            .unwrap_or_default();
        Ok(Snapshot {
            id: manifest.id.clone(),
            subject: payload.source.to_string(),
            source: payload.source,
            start: payload.start_time,
            end: payload.end_time,
            incomplete: payload.incomplete.filter(|reason| !reason.is_empty()),
            fatal_errors: num_failed.max(payload.stats.error_count),
            ignored_errors: num_ignored.max(payload.stats.ignored_error_count),
            errors,
        })
    }

    pub fn is_complete(&self) -> bool {
        self.incomplete.is_none()
    }
}

/// The snapshots of each source, oldest first (by start, then end, then ID). Runs of one
/// source are taken at once, so snapshots already in [`order`] group in one pass.
pub fn by_source(snapshots: &[Snapshot]) -> BTreeMap<&str, Vec<&Snapshot>> {
    let mut sources: BTreeMap<&str, Vec<&Snapshot>> = BTreeMap::new();
    for run in snapshots.chunk_by(|a, b| a.subject == b.subject) {
        sources
            .entry(&run[0].subject)
            .or_default()
            .extend(run.iter());
    }
    for list in sources.values_mut() {
        list.sort_by(|a, b| chronological(a, b));
    }
    sources
}

/// Every checkpoint of one upload carries the upload's start (Kopia's
/// snapshot/upload/upload.go checkpointRoot copies the prototype manifest): the one written
/// last is the one with the latest end.
fn chronological(a: &Snapshot, b: &Snapshot) -> std::cmp::Ordering {
    (a.start, a.end, &a.id).cmp(&(b.start, b.end, &b.id))
}

/// Sorts `snapshots` by source, then as [`by_source`] lists them.
pub fn order(snapshots: &mut [Snapshot]) {
    snapshots.sort_by(|a, b| a.subject.cmp(&b.subject).then_with(|| chronological(a, b)));
}

/// The identity a source belongs to, if its user and host form one.
pub fn owner_of(source: &SnapshotSource) -> Option<Identity> {
    Identity::new(&source.user_name, &source.host).ok()
}

/// Snapshot-error, ignored-error and interrupted findings for every source.
pub fn check(
    snapshots: &[Snapshot],
    policies: &NotificationPolicies,
    now: DateTime<Utc>,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    for (subject, list) in by_source(snapshots) {
        let newest = list.last().expect("sources have snapshots");
        let source = &newest.source;
        let policy = policies.effective(Some(source));
        let mut found = Vec::new();
        if let Some(complete) = list.iter().rev().find(|s| s.is_complete()) {
            if complete.fatal_errors > 0 && policy.on_snapshot_error == Report::Notify {
                found.push((DerivedKind::SnapshotErrors, *complete, Severity::Error));
            } else if complete.fatal_errors == 0
                && complete.ignored_errors > 0
                && policy.on_ignored_errors == Report::Notify
            {
                found.push((
                    DerivedKind::SnapshotIgnoredErrors,
                    *complete,
                    Severity::Warning,
                ));
            }
        }
        if interrupted(newest, now) {
            found.push((DerivedKind::SnapshotInterrupted, *newest, Severity::Warning));
        }
        let owner = owner_of(source);
        for (kind, snapshot, severity) in found {
            if severity < policy.min_severity {
                continue;
            }
            let (title, message) = describe(kind, snapshot);
            for (recipient, recipient_key) in recipients(&policy.notify, owner.as_ref()) {
                findings.push(Finding {
                    kind,
                    subject: subject.to_owned(),
                    trigger: snapshot.id.clone(),
                    severity,
                    recipient,
                    recipient_key,
                    title: title.clone(),
                    message: message.clone(),
                    details: error_details(snapshot),
                    snapshot_source: Some(source.clone()),
                });
            }
        }
    }
    findings
}

/// Canceled or limited, or a checkpoint older than two checkpoint intervals.
fn interrupted(newest: &Snapshot, now: DateTime<Utc>) -> bool {
    match newest.incomplete.as_deref() {
        None => false,
        Some("checkpoint") => now - newest.end > CHECKPOINT_INTERVAL * 2,
        Some(_) => true,
    }
}

fn describe(kind: DerivedKind, snapshot: &Snapshot) -> (String, String) {
    let source = &snapshot.source;
    let when = rfc3339::format(&snapshot.start);
    let title = match kind {
        DerivedKind::SnapshotErrors => format!(
            "Snapshot of {source} failed to read {} {}",
            snapshot.fatal_errors,
            plural(snapshot.fatal_errors, "entry", "entries")
        ),
        DerivedKind::SnapshotIgnoredErrors => format!(
            "Snapshot of {source} ignored {} {}",
            snapshot.ignored_errors,
            plural(snapshot.ignored_errors, "error", "errors")
        ),
        _ => match snapshot.incomplete.as_deref() {
            Some("checkpoint") => format!("Snapshot of {source} stopped during upload"),
            Some(reason) => format!("Snapshot of {source} is incomplete ({reason})"),
            None => format!("Snapshot of {source} is incomplete"),
        },
    };
    let title: String = title.chars().take(limits::TITLE).collect();
    let message = match kind {
        DerivedKind::SnapshotInterrupted => format!(
            "The newest snapshot {} (started {when}, last written {}) is incomplete: {}. \
             Nothing newer has completed.",
            snapshot.id,
            rfc3339::format(&snapshot.end),
            snapshot.incomplete.as_deref().unwrap_or("")
        ),
        _ => format!(
            "Snapshot {} started {when}: {} fatal and {} ignored errors.",
            snapshot.id, snapshot.fatal_errors, snapshot.ignored_errors
        ),
    };
    (title, message)
}

fn plural<'a>(n: u64, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// The failed paths and their errors, one per line, capped in count and size.
fn error_details(snapshot: &Snapshot) -> String {
    let mut details = String::new();
    let budget = limits::DETAILS - 200;
    let mut listed = 0;
    for entry in snapshot.errors.iter().take(MAX_LISTED_ERRORS) {
        let line = format!("{}: {}\n", entry.path, entry.error);
        if details.chars().count() + line.chars().count() > budget {
            break;
        }
        details.push_str(&line);
        listed += 1;
    }
    let total = snapshot.fatal_errors + snapshot.ignored_errors;
    if (listed as u64) < total.max(snapshot.errors.len() as u64) {
        details.push_str(&format!(
            "… {} more not listed (Kopia counted {} fatal, {} ignored)\n",
            total.max(snapshot.errors.len() as u64) - listed as u64,
            snapshot.fatal_errors,
            snapshot.ignored_errors
        ));
    }
    details
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::identity::Recipient;
    use crate::policy::{policy_manifest, PolicyValues};
    use crate::test_fixtures::t0;

    /// A snapshot manifest as Kopia writes it.
    pub(crate) fn manifest(
        id: &str,
        path: &str,
        start: DateTime<Utc>,
        incomplete: Option<&str>,
        failed: u64,
        ignored: u64,
    ) -> StoredManifest {
        let errors: Vec<_> = (0..failed + ignored)
            .map(|i| serde_json::json!({"path": format!("dir/f{i}"), "error": "permission denied"}))
            .collect();
        let mut payload = serde_json::json!({
            "id": "",
            "source": {"host": "laptop", "userName": "alice", "path": path},
            "description": "",
            "startTime": rfc3339::format(&start),
            "endTime": rfc3339::format(&(start + Duration::seconds(5))),
            "stats": {"errorCount": failed, "ignoredErrorCount": ignored},
            "rootEntry": {"name": "x", "type": "d", "summ": {
                "numFailed": failed, "numIgnoredErrors": ignored, "errors": errors}},
        });
        if let Some(reason) = incomplete {
            payload["incomplete"] = reason.into();
        }
        StoredManifest {
            id: id.into(),
            labels: [
                ("type", "snapshot"),
                ("hostname", "laptop"),
                ("username", "alice"),
                ("path", path),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            modified: start,
            data: payload.to_string(),
        }
    }

    pub(crate) fn parse(manifests: &[StoredManifest]) -> Vec<Snapshot> {
        manifests
            .iter()
            .map(|m| Snapshot::from_manifest(m).unwrap())
            .collect()
    }

    fn kinds(findings: &[Finding]) -> Vec<(DerivedKind, &str, &str)> {
        findings
            .iter()
            .map(|f| (f.kind, f.subject.as_str(), f.trigger.as_str()))
            .collect()
    }

    #[test]
    fn newest_complete_snapshot_with_fatal_errors_is_an_error_to_its_owner() {
        let snapshots = parse(&[
            manifest("s1", "/home", t0() - Duration::days(2), None, 0, 0),
            manifest("s2", "/home", t0() - Duration::days(1), None, 3, 1),
            manifest("s3", "/etc", t0() - Duration::days(1), None, 0, 2),
        ]);
        let findings = check(&snapshots, &NotificationPolicies::default(), t0());
        assert_eq!(
            kinds(&findings),
            [(DerivedKind::SnapshotErrors, "alice@laptop:/home", "s2")],
            "ignored errors alone say nothing by default"
        );
        let finding = &findings[0];
        assert_eq!(finding.severity, Severity::Error);
        assert_eq!(
            finding.recipient,
            Recipient::User("alice@laptop".parse().unwrap())
        );
        assert_eq!(
            finding.title,
            "Snapshot of alice@laptop:/home failed to read 3 entries"
        );
        assert!(finding.details.starts_with("dir/f0: permission denied\n"));
        assert_eq!(finding.details.lines().count(), 4);
        assert_eq!(finding.snapshot_source.as_ref().unwrap().path, "/home");
    }

    #[test]
    fn a_newer_clean_snapshot_leaves_nothing_to_report() {
        let snapshots = parse(&[
            manifest("s1", "/home", t0() - Duration::days(2), None, 3, 0),
            manifest("s2", "/home", t0() - Duration::days(1), None, 0, 0),
        ]);
        assert!(check(&snapshots, &NotificationPolicies::default(), t0()).is_empty());
    }

    #[test]
    fn interrupted_snapshots() {
        let snapshots = parse(&[
            manifest("ok", "/a", t0() - Duration::days(1), None, 0, 0),
            manifest(
                "cancel",
                "/a",
                t0() - Duration::hours(1),
                Some("canceled"),
                1,
                0,
            ),
            manifest(
                "lim",
                "/b",
                t0() - Duration::hours(1),
                Some("limit reached"),
                0,
                0,
            ),
            manifest(
                "cp-old",
                "/c",
                t0() - Duration::hours(2),
                Some("checkpoint"),
                0,
                0,
            ),
            manifest(
                "cp-new",
                "/d",
                t0() - Duration::minutes(30),
                Some("checkpoint"),
                0,
                0,
            ),
        ]);
        let findings = check(&snapshots, &NotificationPolicies::default(), t0());
        assert_eq!(
            kinds(&findings),
            [
                (
                    DerivedKind::SnapshotInterrupted,
                    "alice@laptop:/a",
                    "cancel"
                ),
                (DerivedKind::SnapshotInterrupted, "alice@laptop:/b", "lim"),
                (
                    DerivedKind::SnapshotInterrupted,
                    "alice@laptop:/c",
                    "cp-old"
                ),
            ]
        );
        assert!(findings.iter().all(|f| f.severity == Severity::Warning));
        assert_eq!(
            findings[0].title,
            "Snapshot of alice@laptop:/a is incomplete (canceled)"
        );
        assert_eq!(
            findings[2].title,
            "Snapshot of alice@laptop:/c stopped during upload"
        );
    }

    #[test]
    fn grouping_by_source_takes_any_order() {
        let mut snapshots = parse(&[
            manifest("a2", "/a", t0(), None, 0, 0),
            manifest("b1", "/b", t0(), None, 0, 0),
            manifest("a1", "/a", t0() - Duration::hours(1), None, 0, 0),
        ]);
        let ids = |snapshots: &[Snapshot]| -> Vec<(String, Vec<String>)> {
            by_source(snapshots)
                .into_iter()
                .map(|(subject, list)| {
                    (
                        subject.to_owned(),
                        list.iter().map(|s| s.id.clone()).collect(),
                    )
                })
                .collect()
        };
        let grouped = ids(&snapshots);
        assert_eq!(
            grouped,
            [
                (
                    "alice@laptop:/a".to_owned(),
                    vec!["a1".to_owned(), "a2".to_owned()]
                ),
                ("alice@laptop:/b".to_owned(), vec!["b1".to_owned()]),
            ]
        );
        order(&mut snapshots);
        let in_order: Vec<&str> = snapshots.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(in_order, ["a1", "a2", "b1"]);
        assert_eq!(ids(&snapshots), grouped);
    }

    /// Two checkpoints of one upload share its start; the later one (by end) is the newest,
    /// whatever their IDs, so the upload counts as dead only two intervals after it.
    #[test]
    fn the_last_checkpoint_of_an_upload_is_its_newest() {
        let start = t0() - Duration::hours(3);
        let checkpoint = |id: &str, written: DateTime<Utc>| {
            let mut m = manifest(id, "/big", start, Some("checkpoint"), 0, 0);
            let mut data: serde_json::Value = serde_json::from_str(&m.data).unwrap();
            data["endTime"] = rfc3339::format(&written).into();
            m.data = data.to_string();
            m
        };
        let snapshots = parse(&[
            checkpoint("z-first", start + Duration::minutes(45)),
            checkpoint("a-last", t0() - Duration::minutes(60)),
        ]);
        let policies = NotificationPolicies::default();
        assert!(check(&snapshots, &policies, t0()).is_empty());
        let later = t0() + CHECKPOINT_INTERVAL * 2 - Duration::minutes(59);
        assert_eq!(
            kinds(&check(&snapshots, &policies, later)),
            [(
                DerivedKind::SnapshotInterrupted,
                "alice@laptop:/big",
                "a-last"
            )]
        );
    }

    #[test]
    fn policy_chooses_what_and_whom() {
        let values = PolicyValues {
            on_ignored_errors: Some(Report::Notify),
            on_snapshot_error: Some(Report::None),
            notify: Some("ops@desk,bob@desk".parse().unwrap()),
            ..Default::default()
        };
        let (policies, _) = NotificationPolicies::from_manifests(&[StoredManifest {
            id: "p".into(),
            labels: policy_manifest(&crate::target::PolicyTarget::Global, &values).labels,
            modified: t0(),
            data: policy_manifest(&crate::target::PolicyTarget::Global, &values)
                .data
                .to_string(),
        }]);
        let snapshots = parse(&[
            manifest("s1", "/home", t0() - Duration::days(1), None, 2, 0),
            manifest("s2", "/etc", t0() - Duration::days(1), None, 0, 2),
        ]);
        let findings = check(&snapshots, &policies, t0());
        assert_eq!(
            kinds(&findings),
            [
                (
                    DerivedKind::SnapshotIgnoredErrors,
                    "alice@laptop:/etc",
                    "s2"
                ),
                (
                    DerivedKind::SnapshotIgnoredErrors,
                    "alice@laptop:/etc",
                    "s2"
                ),
            ]
        );
        assert_ne!(findings[0].id(), findings[1].id());
        assert_eq!(findings[0].recipient.describe(), "ops@desk");

        let strict = PolicyValues {
            min_severity: Some(Severity::Error),
            on_ignored_errors: Some(Report::Notify),
            ..Default::default()
        };
        let (policies, _) = NotificationPolicies::from_manifests(&[StoredManifest {
            id: "p".into(),
            labels: policy_manifest(&crate::target::PolicyTarget::Global, &strict).labels,
            modified: t0(),
            data: policy_manifest(&crate::target::PolicyTarget::Global, &strict)
                .data
                .to_string(),
        }]);
        assert_eq!(
            kinds(&check(&snapshots, &policies, t0())),
            [(DerivedKind::SnapshotErrors, "alice@laptop:/home", "s1")]
        );
    }

    #[test]
    fn details_are_capped() {
        let snapshots = parse(&[manifest("s", "/x", t0(), None, 80, 0)]);
        let details = error_details(&snapshots[0]);
        assert_eq!(details.lines().count(), MAX_LISTED_ERRORS + 1);
        assert!(details.ends_with("… 30 more not listed (Kopia counted 80 fatal, 0 ignored)\n"));
        let bad = StoredManifest {
            data: "{}".into(),
            ..manifest("bad", "/x", t0(), None, 0, 0)
        };
        assert!(Snapshot::from_manifest(&bad)
            .unwrap_err()
            .to_string()
            .contains("bad"));
    }
}
