//! Our notification policy: what the health checks report and to whom, stored in the repository
//! as manifests of type `notificationPolicy` attached to the same targets as Kopia's policies
//! (global, `@host`, `user@host`, `user@host:/path`) and resolved along the same tree: each
//! option comes from the most specific level that sets it, else from the default.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::duration::parse_duration;
use crate::identity::Identity;
use crate::schema::{label, Severity, SnapshotSource, SCHEMA_VERSION};
use crate::store::{ManifestAccess, NewManifest, StoredManifest};
use crate::target::PolicyTarget;
use crate::Error;

/// `type` label of our policy manifests.
pub const POLICY_TYPE: &str = "notificationPolicy";

/// Whether a kind of finding is reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Report {
    Notify,
    None,
}

/// Who derived notifications about a source (or about maintenance) go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyWho {
    /// The source's `user@host`; for maintenance, its owner.
    Owner,
    All,
    Users(Vec<Identity>),
}

/// When a source without recent snapshots is overdue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverdueAfter {
    /// After Kopia's schedule for the source; without one, [`DEFAULT_OVERDUE`] after its last
    /// complete snapshot.
    Schedule,
    /// This long after the last complete snapshot, whatever the schedule.
    After(Duration),
    Never,
}

/// The threshold for sources Kopia schedules nothing for.
pub const DEFAULT_OVERDUE: Duration = Duration::days(7);

/// Every option, each `None` when this level leaves it to the levels above.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyValues {
    pub on_snapshot_error: Option<Report>,
    pub on_ignored_errors: Option<Report>,
    pub notify: Option<NotifyWho>,
    pub overdue_after: Option<OverdueAfter>,
    pub min_severity: Option<Severity>,
}

/// The option names, as the CLI and `policy show` spell them.
pub const OPTIONS: [&str; 5] = [
    "on-snapshot-error",
    "on-ignored-errors",
    "notify",
    "overdue-after",
    "min-severity",
];

/// Effective values for one source, each with the level it came from (`None`: the default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePolicy {
    pub on_snapshot_error: Report,
    pub on_ignored_errors: Report,
    pub notify: NotifyWho,
    pub overdue_after: OverdueAfter,
    pub min_severity: Severity,
    /// Per option name of [`OPTIONS`], the target that defined it.
    pub defined_at: BTreeMap<&'static str, PolicyTarget>,
}

impl Default for EffectivePolicy {
    fn default() -> Self {
        EffectivePolicy {
            on_snapshot_error: Report::Notify,
            on_ignored_errors: Report::None,
            notify: NotifyWho::Owner,
            overdue_after: OverdueAfter::Schedule,
            min_severity: Severity::Normal,
            defined_at: BTreeMap::new(),
        }
    }
}

impl EffectivePolicy {
    /// Each option as `policy show` prints it.
    pub fn describe(&self) -> Vec<(&'static str, String, Option<&PolicyTarget>)> {
        let values = [
            self.on_snapshot_error.to_string(),
            self.on_ignored_errors.to_string(),
            self.notify.to_string(),
            self.overdue_after.to_string(),
            self.min_severity.to_string(),
        ];
        OPTIONS
            .iter()
            .zip(values)
            .map(|(name, value)| (*name, value, self.defined_at.get(name)))
            .collect()
    }
}

/// Every notification policy in the repository, by target.
#[derive(Debug, Clone, Default)]
pub struct NotificationPolicies {
    pub policies: BTreeMap<PolicyTarget, (String, PolicyValues)>,
}

impl NotificationPolicies {
    /// From `type=notificationPolicy` manifests; malformed ones come back as errors naming them.
    /// When two manifests name one target (two machines setting it at once), the later wins.
    pub fn from_manifests(manifests: &[StoredManifest]) -> (Self, Vec<Error>) {
        let mut sorted: Vec<&StoredManifest> = manifests.iter().collect();
        sorted.sort_by(|a, b| (a.modified, &a.id).cmp(&(b.modified, &b.id)));
        let mut policies = NotificationPolicies::default();
        let mut problems = Vec::new();
        for manifest in sorted {
            match parse_manifest(manifest) {
                Ok((target, values)) => {
                    policies
                        .policies
                        .insert(target, (manifest.id.clone(), values));
                }
                Err(error) => problems.push(error),
            }
        }
        (policies, problems)
    }

    /// Resolves the options for `source` (or the global level alone when `None`).
    pub fn effective(&self, source: Option<&SnapshotSource>) -> EffectivePolicy {
        let targets = match source {
            Some(source) => PolicyTarget::hierarchy(source),
            None => vec![PolicyTarget::Global],
        };
        self.effective_along(&targets)
    }

    /// Resolves along `targets`, most specific first.
    pub fn effective_along(&self, targets: &[PolicyTarget]) -> EffectivePolicy {
        let mut effective = EffectivePolicy::default();
        let mut taken: BTreeMap<&'static str, PolicyTarget> = BTreeMap::new();
        for target in targets {
            let Some((_, values)) = self.policies.get(target) else {
                continue;
            };
            let mut take = |name: &'static str, set: bool| {
                let first = set && !taken.contains_key(name);
                if first {
                    taken.insert(name, target.clone());
                }
                first
            };
            if take(OPTIONS[0], values.on_snapshot_error.is_some()) {
                effective.on_snapshot_error = values.on_snapshot_error.expect("checked");
            }
            if take(OPTIONS[1], values.on_ignored_errors.is_some()) {
                effective.on_ignored_errors = values.on_ignored_errors.expect("checked");
            }
            if take(OPTIONS[2], values.notify.is_some()) {
                effective.notify = values.notify.clone().expect("checked");
            }
            if take(OPTIONS[3], values.overdue_after.is_some()) {
                effective.overdue_after = values.overdue_after.expect("checked");
            }
            if take(OPTIONS[4], values.min_severity.is_some()) {
                effective.min_severity = values.min_severity.expect("checked");
            }
        }
        effective.defined_at = taken;
        effective
    }
}

/// The stored payload: every option optional, spelled as on the command line.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PolicyPayload {
    schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_snapshot_error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    on_ignored_errors: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    notify: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    overdue_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    min_severity: Option<String>,
}

fn parse_manifest(manifest: &StoredManifest) -> Result<(PolicyTarget, PolicyValues), Error> {
    let id = &manifest.id;
    let target = PolicyTarget::from_labels(|k| manifest.labels.get(k).cloned())
        .ok_or_else(|| Error::malformed(id, "labels name no policy target"))?;
    let payload: PolicyPayload = serde_json::from_str(&manifest.data)
        .map_err(|e| Error::malformed(id, format!("payload: {e}")))?;
    if payload.schema_version == 0 || payload.schema_version > SCHEMA_VERSION {
        return Err(Error::malformed(
            id,
            format!("unsupported schemaVersion {}", payload.schema_version),
        ));
    }
    let values = (|| -> Result<PolicyValues, Error> {
        Ok(PolicyValues {
            on_snapshot_error: option(&payload.on_snapshot_error)?,
            on_ignored_errors: option(&payload.on_ignored_errors)?,
            notify: option(&payload.notify)?,
            overdue_after: option(&payload.overdue_after)?,
            min_severity: option(&payload.min_severity)?,
        })
    })()
    .map_err(|e| Error::malformed(id, e.to_string()))?;
    Ok((target, values))
}

fn option<T: FromStr<Err = Error>>(value: &Option<String>) -> Result<Option<T>, Error> {
    value
        .as_deref()
        .filter(|v| !v.is_empty())
        .map(str::parse)
        .transpose()
}

/// The manifest storing `values` at `target`.
pub fn policy_manifest(target: &PolicyTarget, values: &PolicyValues) -> NewManifest {
    let mut labels: BTreeMap<String, String> = target
        .labels()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    labels.insert(label::TYPE.into(), POLICY_TYPE.into());
    labels.insert(label::SCHEMA_VERSION.into(), SCHEMA_VERSION.to_string());
    let payload = PolicyPayload {
        schema_version: SCHEMA_VERSION,
        on_snapshot_error: values.on_snapshot_error.map(|v| v.to_string()),
        on_ignored_errors: values.on_ignored_errors.map(|v| v.to_string()),
        notify: values.notify.as_ref().map(|v| v.to_string()),
        overdue_after: values.overdue_after.map(|v| v.to_string()),
        min_severity: values.min_severity.map(|v| v.to_string()),
    };
    NewManifest {
        labels,
        data: serde_json::to_value(payload).expect("policy payload serializes"),
    }
}

impl PolicyValues {
    /// `self` with every option `other` sets replaced (what `policy set` does to a level).
    pub fn overlay(&self, other: &PolicyValues) -> PolicyValues {
        PolicyValues {
            on_snapshot_error: other.on_snapshot_error.or(self.on_snapshot_error),
            on_ignored_errors: other.on_ignored_errors.or(self.on_ignored_errors),
            notify: other.notify.clone().or_else(|| self.notify.clone()),
            overdue_after: other.overdue_after.or(self.overdue_after),
            min_severity: other.min_severity.or(self.min_severity),
        }
    }
}

impl FromStr for Report {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "notify" => Ok(Report::Notify),
            "none" => Ok(Report::None),
            _ => Err(Error::InvalidPolicyValue {
                option: "on-snapshot-error/on-ignored-errors",
                text: text.into(),
                reason: "expected notify or none".into(),
            }),
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Report::Notify => "notify",
            Report::None => "none",
        })
    }
}

impl FromStr for NotifyWho {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "owner" => Ok(NotifyWho::Owner),
            "all" | "*" => Ok(NotifyWho::All),
            list => {
                let users = list
                    .split(',')
                    .map(|user| user.trim().parse::<Identity>())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| Error::InvalidPolicyValue {
                        option: "notify",
                        text: text.into(),
                        reason: format!("expected owner, all or user@host[,...]: {e}"),
                    })?;
                Ok(NotifyWho::Users(users))
            }
        }
    }
}

impl fmt::Display for NotifyWho {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotifyWho::Owner => f.write_str("owner"),
            NotifyWho::All => f.write_str("all"),
            NotifyWho::Users(users) => {
                let names: Vec<String> = users.iter().map(ToString::to_string).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

impl FromStr for OverdueAfter {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "schedule" => Ok(OverdueAfter::Schedule),
            "never" => Ok(OverdueAfter::Never),
            duration => parse_duration(duration)
                .map(OverdueAfter::After)
                .map_err(|e| Error::InvalidPolicyValue {
                    option: "overdue-after",
                    text: text.into(),
                    reason: format!("expected a duration, schedule or never: {e}"),
                }),
        }
    }
}

impl fmt::Display for OverdueAfter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OverdueAfter::Schedule => f.write_str("schedule"),
            OverdueAfter::Never => f.write_str("never"),
            OverdueAfter::After(d) => write!(f, "{}", crate::health::format_duration(*d)),
        }
    }
}

/// Every notification policy of the store, and the malformed ones.
pub fn load(store: &dyn ManifestAccess) -> Result<(NotificationPolicies, Vec<Error>), Error> {
    let manifests = store.find(&BTreeMap::from([(
        label::TYPE.to_string(),
        POLICY_TYPE.to_string(),
    )]))?;
    Ok(NotificationPolicies::from_manifests(&manifests))
}

fn manifests_at(
    store: &dyn ManifestAccess,
    target: &PolicyTarget,
) -> Result<Vec<StoredManifest>, Error> {
    let mut filter: BTreeMap<String, String> = target
        .labels()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    filter.insert(label::TYPE.into(), POLICY_TYPE.into());
    // Label filters match supersets: keep only manifests whose target is exactly this one.
    Ok(store
        .find(&filter)?
        .into_iter()
        .filter(|m| {
            PolicyTarget::from_labels(|k| m.labels.get(k).cloned()).as_ref() == Some(target)
        })
        .collect())
}

/// Sets `values` at `target` over what it already sets, in one write that also deletes the
/// level's previous manifests. Returns the values now stored there.
pub fn set(
    store: &mut dyn ManifestAccess,
    target: &PolicyTarget,
    values: &PolicyValues,
) -> Result<PolicyValues, Error> {
    let existing = manifests_at(store, target)?;
    let (current, problems) = NotificationPolicies::from_manifests(&existing);
    if let Some(problem) = problems.into_iter().next() {
        return Err(problem);
    }
    let merged = current
        .policies
        .get(target)
        .map_or_else(PolicyValues::default, |(_, v)| v.clone())
        .overlay(values);
    let deletes = existing.into_iter().map(|m| m.id).collect();
    store.write(vec![policy_manifest(target, &merged)], deletes)?;
    Ok(merged)
}

/// Removes the policy at `target`; an error when there is none.
pub fn remove(store: &mut dyn ManifestAccess, target: &PolicyTarget) -> Result<(), Error> {
    let existing = manifests_at(store, target)?;
    if existing.is_empty() {
        return Err(Error::InvalidTarget {
            text: target.to_string(),
            reason: "no notification policy is set there".into(),
        });
    }
    store.write(Vec::new(), existing.into_iter().map(|m| m.id).collect())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::t0;

    fn stored(id: &str, manifest: NewManifest, minutes: i64) -> StoredManifest {
        StoredManifest {
            id: id.into(),
            labels: manifest.labels,
            modified: t0() + Duration::minutes(minutes),
            data: manifest.data.to_string(),
        }
    }

    fn source() -> SnapshotSource {
        SnapshotSource {
            host: "laptop".into(),
            user_name: "alice".into(),
            path: "/home/alice".into(),
        }
    }

    #[test]
    fn options_come_from_the_most_specific_level() {
        let global = PolicyValues {
            notify: Some(NotifyWho::All),
            min_severity: Some(Severity::Warning),
            ..Default::default()
        };
        let host = PolicyValues {
            overdue_after: Some("2d".parse().unwrap()),
            notify: Some("ops@desk,bob@desk".parse().unwrap()),
            ..Default::default()
        };
        let path = PolicyValues {
            on_ignored_errors: Some(Report::Notify),
            ..Default::default()
        };
        let path_target: PolicyTarget = "alice@laptop:/home/alice".parse().unwrap();
        let manifests = [
            stored("g", policy_manifest(&PolicyTarget::Global, &global), 0),
            stored("h", policy_manifest(&"@laptop".parse().unwrap(), &host), 1),
            stored("p", policy_manifest(&path_target, &path), 2),
        ];
        let (policies, problems) = NotificationPolicies::from_manifests(&manifests);
        assert!(problems.is_empty(), "{problems:?}");
        let effective = policies.effective(Some(&source()));
        assert_eq!(effective.on_snapshot_error, Report::Notify);
        assert_eq!(effective.on_ignored_errors, Report::Notify);
        assert_eq!(effective.notify.to_string(), "ops@desk,bob@desk");
        assert_eq!(
            effective.overdue_after,
            OverdueAfter::After(Duration::days(2))
        );
        assert_eq!(effective.min_severity, Severity::Warning);
        let shown: Vec<(String, String)> = effective
            .describe()
            .into_iter()
            .map(|(name, value, at)| {
                (
                    format!("{name}={value}"),
                    at.map_or("(default)".into(), ToString::to_string),
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("on-snapshot-error=notify".into(), "(default)".into()),
                (
                    "on-ignored-errors=notify".into(),
                    "alice@laptop:/home/alice".into()
                ),
                ("notify=ops@desk,bob@desk".into(), "@laptop".into()),
                ("overdue-after=2d".into(), "@laptop".into()),
                ("min-severity=warning".into(), "(global)".into()),
            ]
        );
        // Another user on the host is not under alice's path policy.
        let other = SnapshotSource {
            user_name: "bob".into(),
            ..source()
        };
        assert_eq!(
            policies.effective(Some(&other)).on_ignored_errors,
            Report::None
        );
        assert_eq!(policies.effective(None).notify, NotifyWho::All);
    }

    #[test]
    fn later_manifest_of_a_target_wins_and_bad_ones_are_named() {
        let first = PolicyValues {
            min_severity: Some(Severity::Error),
            ..Default::default()
        };
        let second = PolicyValues {
            min_severity: Some(Severity::Warning),
            ..Default::default()
        };
        let mut bad = stored("bad", policy_manifest(&PolicyTarget::Global, &first), 5);
        bad.data = r#"{"schemaVersion":1,"notify":"nobody"}"#.into();
        let (policies, problems) = NotificationPolicies::from_manifests(&[
            stored("b", policy_manifest(&PolicyTarget::Global, &second), 3),
            stored("a", policy_manifest(&PolicyTarget::Global, &first), 1),
            bad,
        ]);
        assert_eq!(policies.effective(None).min_severity, Severity::Warning);
        assert_eq!(problems.len(), 1);
        let text = problems[0].to_string();
        assert!(text.contains("bad") && text.contains("nobody"), "{text}");
    }

    #[test]
    fn set_overlays_and_replaces_in_one_write_and_remove_deletes() {
        let mut store = crate::store::MemoryStore::new();
        let host: PolicyTarget = "@laptop".parse().unwrap();
        let user: PolicyTarget = "alice@laptop".parse().unwrap();
        set(
            &mut store,
            &host,
            &PolicyValues {
                notify: Some(NotifyWho::All),
                ..Default::default()
            },
        )
        .unwrap();
        set(
            &mut store,
            &user,
            &PolicyValues {
                min_severity: Some(Severity::Error),
                ..Default::default()
            },
        )
        .unwrap();
        let merged = set(
            &mut store,
            &host,
            &PolicyValues {
                overdue_after: Some(OverdueAfter::Never),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(merged.notify, Some(NotifyWho::All));
        assert_eq!(merged.overdue_after, Some(OverdueAfter::Never));
        assert_eq!(store.len(), 2, "the host level's old manifest is replaced");
        assert_eq!(store.batches_written(), 3);
        let (policies, _) = load(&store).unwrap();
        let effective = policies.effective_along(&user.lookup_order());
        assert_eq!(effective.min_severity, Severity::Error);
        assert_eq!(effective.notify, NotifyWho::All);
        remove(&mut store, &host).unwrap();
        assert_eq!(store.len(), 1);
        let error = remove(&mut store, &host).unwrap_err().to_string();
        assert!(error.contains("@laptop"), "{error}");
    }

    #[test]
    fn values_parse_and_reject() {
        assert_eq!(
            "never".parse::<OverdueAfter>().unwrap(),
            OverdueAfter::Never
        );
        assert_eq!(
            "1d12h".parse::<OverdueAfter>().unwrap().to_string(),
            "1d12h"
        );
        assert!("soon".parse::<OverdueAfter>().is_err());
        assert!("maybe".parse::<Report>().is_err());
        assert!("owner,".parse::<NotifyWho>().is_err());
        let overlay = PolicyValues {
            notify: Some(NotifyWho::All),
            ..Default::default()
        }
        .overlay(&PolicyValues {
            min_severity: Some(Severity::Error),
            ..Default::default()
        });
        assert_eq!(overlay.notify, Some(NotifyWho::All));
        assert_eq!(overlay.min_severity, Some(Severity::Error));
    }
}
