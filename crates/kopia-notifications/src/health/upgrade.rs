//! A newer Kopia than the one installed: Kopia's own update check records the newest release
//! it saw in `<config-file>.update-info.json` (`availableVersion`, cli/update_check.go); the
//! caller reads that and the installed `kopia --version`. A normal notification to this
//! machine's user, one per version, resolved once that version (or a later one) is installed.

use std::cmp::Ordering;

use super::{DerivedKind, Finding};
use crate::identity::{Identity, Recipient};
use crate::policy::NotificationPolicies;
use crate::schema::Severity;

/// What this machine knows about its Kopia installation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    /// `v0.23.1`, as `kopia --version` prints it first.
    pub installed: String,
    /// Kopia's `availableVersion`.
    pub available: String,
}

/// Compares `v1.2.3`-style versions by their numeric parts (`v0.23.1` < `v0.24.0`); a part
/// that is not a number compares as 0, so pre-release tags never look newer.
pub fn compare(a: &str, b: &str) -> Ordering {
    let parts = |v: &str| -> Vec<u64> {
        v.trim_start_matches('v')
            .split(['.', '-', '+'])
            .take(3)
            .map(|part| part.parse().unwrap_or(0))
            .collect()
    };
    parts(a).cmp(&parts(b))
}

pub fn check(versions: &Versions, who: &Identity, policies: &NotificationPolicies) -> Vec<Finding> {
    if compare(&versions.available, &versions.installed) != Ordering::Greater
        || Severity::Normal < policies.effective(None).min_severity
    {
        return Vec::new();
    }
    vec![Finding {
        kind: DerivedKind::UpgradeAvailable,
        subject: format!("kopia on {who}"),
        trigger: versions.available.clone(),
        severity: Severity::Normal,
        recipient: Recipient::User(who.clone()),
        recipient_key: None,
        title: format!("Kopia {} is available", versions.available),
        message: format!(
            "This machine runs Kopia {}; {} is out (https://github.com/kopia/kopia/releases).",
            versions.installed, versions.available
        ),
        details: String::new(),
        snapshot_source: None,
    }]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::alice;

    #[test]
    fn newer_versions_only() {
        assert_eq!(compare("v0.24.0", "v0.23.1"), Ordering::Greater);
        assert_eq!(compare("v0.23.10", "v0.23.9"), Ordering::Greater);
        assert_eq!(compare("0.23.1", "v0.23.1"), Ordering::Equal);
        assert_eq!(compare("v0.23.1-rc1", "v0.23.1"), Ordering::Equal);
        let policies = NotificationPolicies::default();
        let newer = Versions {
            installed: "v0.23.1".into(),
            available: "v0.24.0".into(),
        };
        let findings = check(&newer, &alice(), &policies);
        assert_eq!(findings.len(), 1);
        assert_eq!(findings[0].title, "Kopia v0.24.0 is available");
        assert_eq!(findings[0].recipient, Recipient::User(alice()));
        let same = Versions {
            available: "v0.23.1".into(),
            ..newer
        };
        assert!(check(&same, &alice(), &policies).is_empty());
    }
}
