//! A newer release than the one installed here, of Kopia or of Kopia Notifier itself: the
//! caller finds the installed versions (`kopia --version`, our own crate version) and the
//! latest releases ([`super::releases`]); this decides. A normal notification to this
//! machine's user, one per product and released version, resolved once that version (or a
//! later one) is installed or the release is no longer the latest.

use std::cmp::Ordering;

use super::releases::Release;
use super::{DerivedKind, Finding};
use crate::identity::{Identity, Recipient};
use crate::policy::NotificationPolicies;
use crate::schema::Severity;

/// Where Kopia Notifier's own releases are published (`owner/name` on a releases endpoint in
/// GitHub's shape); the workspace's `repository`.
pub const OUR_RELEASES_REPO: &str = "kopia-notifier/kopia-notifier";

/// What may be upgraded on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Product {
    Kopia,
    KopiaNotifier,
}

impl Product {
    pub const ALL: [Product; 2] = [Product::Kopia, Product::KopiaNotifier];

    /// The name users know it by.
    pub fn name(self) -> &'static str {
        match self {
            Product::Kopia => "Kopia",
            Product::KopiaNotifier => "Kopia Notifier",
        }
    }

    /// `owner/name` of its releases.
    pub fn releases_repo(self) -> &'static str {
        match self {
            Product::Kopia => "kopia/kopia",
            Product::KopiaNotifier => OUR_RELEASES_REPO,
        }
    }

    /// The `subject` label of its upgrade notifications for `who`: `kopia on alice@laptop`.
    pub fn subject(self, who: &Identity) -> String {
        let program = match self {
            Product::Kopia => "kopia",
            Product::KopiaNotifier => "kopia-notifier",
        };
        format!("{program} on {who}")
    }
}

/// One product's installed version against its latest release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductVersions {
    pub product: Product,
    /// As the product prints it: `v0.23.1`, `0.1.0`.
    pub installed: String,
    /// The latest release that is neither a draft nor a pre-release; `None` when there is none.
    pub latest: Option<Release>,
}

/// Every product this machine could compare; products that could not be compared (not
/// installed, the endpoint unreachable) are absent, and nothing is decided about them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Versions {
    pub products: Vec<ProductVersions>,
}

impl Versions {
    /// The compared product whose upgrade notifications for `who` have `subject`.
    pub fn about(&self, subject: &str, who: &Identity) -> Option<&ProductVersions> {
        self.products
            .iter()
            .find(|p| p.product.subject(who) == subject)
    }
}

/// A release version: `v1.2.3`, `1.2`, `v1.2.3-rc1`; the numeric parts, and whether it is a
/// final release (a pre-release is older than the final release of the same numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Version {
    numbers: [u64; 3],
    is_final: bool,
}

impl Version {
    /// `None` for text that does not start with at least `major.minor` (`(devel)`, `unknown`).
    fn parse(text: &str) -> Option<Version> {
        let text = text.trim().trim_start_matches('v');
        let (core, is_final) = match text.find(['-', '+']) {
            Some(at) => (&text[..at], text.as_bytes()[at] == b'+'),
            None => (text, true),
        };
        let parts: Vec<u64> = core
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .ok()?;
        if !(2..=3).contains(&parts.len()) {
            return None;
        }
        let mut numbers = [0; 3];
        numbers[..parts.len()].copy_from_slice(&parts);
        Some(Version { numbers, is_final })
    }
}

/// Orders two versions (`v0.23.1` < `v0.24.0` = `0.24.0`, `v0.24.0-rc1` < `v0.24.0`); `None`
/// when either is not a version.
pub fn compare(a: &str, b: &str) -> Option<Ordering> {
    Some(Version::parse(a)?.cmp(&Version::parse(b)?))
}

/// Whether `latest` is newer than `installed`.
pub fn is_newer(latest: &str, installed: &str) -> bool {
    compare(latest, installed) == Some(Ordering::Greater)
}

pub fn check(versions: &Versions, who: &Identity, policies: &NotificationPolicies) -> Vec<Finding> {
    if Severity::Normal < policies.effective(None).min_severity {
        return Vec::new();
    }
    versions
        .products
        .iter()
        .filter_map(|p| {
            let latest = p.latest.as_ref()?;
            is_newer(&latest.version, &p.installed).then(|| finding(p, latest, who))
        })
        .collect()
}

fn finding(versions: &ProductVersions, latest: &Release, who: &Identity) -> Finding {
    let name = versions.product.name();
    Finding {
        kind: DerivedKind::UpgradeAvailable,
        subject: versions.product.subject(who),
        trigger: latest.version.clone(),
        severity: Severity::Normal,
        recipient: Recipient::User(who.clone()),
        recipient_key: None,
        title: format!("{name} {} is available", latest.version),
        message: format!(
            "This machine runs {name} {}; {} is out: {}",
            versions.installed, latest.version, latest.url
        ),
        details: String::new(),
        snapshot_source: None,
    }
}

/// Why the upgrade notification of `subject` for `trigger` (a version) is gone, when `current`
/// is what this check compared.
pub fn explain(current: &ProductVersions, trigger: &str) -> String {
    let name = current.product.name();
    match &current.latest {
        _ if !is_newer(trigger, &current.installed) => {
            format!("{name} {trigger} or later is installed")
        }
        Some(latest) if is_newer(&latest.version, trigger) => {
            format!("{name} {} is out (reported on its own)", latest.version)
        }
        _ => format!("{name} {trigger} is no longer the latest release"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyValues;
    use crate::target::PolicyTarget;
    use crate::test_fixtures::alice;

    fn release(version: &str) -> Release {
        Release {
            version: version.into(),
            url: format!("https://github.com/kopia/kopia/releases/tag/{version}"),
        }
    }

    fn kopia(installed: &str, latest: Option<&str>) -> ProductVersions {
        ProductVersions {
            product: Product::Kopia,
            installed: installed.into(),
            latest: latest.map(release),
        }
    }

    #[test]
    fn versions_compare_by_numbers_then_finality() {
        assert_eq!(compare("v0.24.0", "v0.23.1"), Some(Ordering::Greater));
        assert_eq!(compare("v0.23.10", "v0.23.9"), Some(Ordering::Greater));
        assert_eq!(compare("0.23.1", "v0.23.1"), Some(Ordering::Equal));
        assert_eq!(compare("v1.2", "1.2.0"), Some(Ordering::Equal));
        assert_eq!(compare("v0.24.0-rc1", "v0.24.0"), Some(Ordering::Less));
        assert_eq!(compare("v0.24.0-rc1", "v0.23.1"), Some(Ordering::Greater));
        assert_eq!(compare("0.1.0+build.5", "0.1.0"), Some(Ordering::Equal));
        for junk in ["(devel)", "v1", "1.2.3.4", "1.x", ""] {
            assert_eq!(compare(junk, "0.1.0"), None, "{junk:?}");
            assert!(!is_newer(junk, "0.1.0"));
        }
    }

    #[test]
    fn one_finding_per_product_with_a_newer_release() {
        let policies = NotificationPolicies::default();
        let versions = Versions {
            products: vec![
                kopia("v0.23.1", Some("v0.24.0")),
                ProductVersions {
                    product: Product::KopiaNotifier,
                    installed: "0.1.0".into(),
                    latest: Some(release("v0.1.0")),
                },
            ],
        };
        let findings = check(&versions, &alice(), &policies);
        assert_eq!(findings.len(), 1);
        let found = &findings[0];
        assert_eq!(found.title, "Kopia v0.24.0 is available");
        assert_eq!(found.subject, "kopia on alice@laptop");
        assert_eq!(found.trigger, "v0.24.0");
        assert_eq!(found.severity, Severity::Normal);
        assert_eq!(found.recipient, Recipient::User(alice()));
        assert!(found
            .message
            .ends_with("https://github.com/kopia/kopia/releases/tag/v0.24.0"));
        assert_eq!(
            versions.about(&found.subject, &alice()),
            Some(&versions.products[0])
        );

        for same in [
            kopia("v0.24.0", Some("v0.24.0")),
            kopia("v0.25.0", Some("v0.24.0")),
            kopia("v0.23.1", None),
            kopia("(devel)", Some("v0.24.0")),
        ] {
            let versions = Versions {
                products: vec![same.clone()],
            };
            assert!(check(&versions, &alice(), &policies).is_empty(), "{same:?}");
        }
    }

    #[test]
    fn a_min_severity_above_normal_silences_upgrades() {
        let mut policies = NotificationPolicies::default();
        policies.policies.insert(
            PolicyTarget::Global,
            (
                "p1".into(),
                PolicyValues {
                    min_severity: Some(Severity::Warning),
                    ..PolicyValues::default()
                },
            ),
        );
        let versions = Versions {
            products: vec![kopia("v0.23.1", Some("v0.24.0"))],
        };
        assert!(check(&versions, &alice(), &policies).is_empty());
    }

    #[test]
    fn resolutions_say_what_changed() {
        assert_eq!(
            explain(&kopia("v0.24.0", Some("v0.24.0")), "v0.24.0"),
            "Kopia v0.24.0 or later is installed"
        );
        assert_eq!(
            explain(&kopia("v0.23.1", Some("v0.25.0")), "v0.24.0"),
            "Kopia v0.25.0 is out (reported on its own)"
        );
        assert_eq!(
            explain(&kopia("v0.23.1", Some("v0.23.0")), "v0.24.0"),
            "Kopia v0.24.0 is no longer the latest release"
        );
    }
}
