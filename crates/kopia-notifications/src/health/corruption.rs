//! Corruption found by `kopia-notify verify` (kopia-repo's `verify`, like `kopia content
//! verify`): one error to everyone naming the damaged packs and contents. Its trigger is a hash
//! of what is damaged, so the same damage found again is the same notification.

use std::collections::BTreeSet;

use kopia_repo::verify::{Damage, VerifyReport};

use super::{derived_id, DerivedKind, Finding};
use crate::identity::Recipient;
use crate::policy::NotificationPolicies;
use crate::schema::{limits, Severity};

/// The subject of corruption findings: the repository as a whole.
pub const SUBJECT: &str = "repository";
/// At most this many damaged contents are listed in the details.
pub const MAX_LISTED: usize = 50;

pub fn check(report: &VerifyReport, policies: &NotificationPolicies) -> Vec<Finding> {
    if report.damaged.is_empty() || Severity::Error < policies.effective(None).min_severity {
        return Vec::new();
    }
    let packs: BTreeSet<&str> = report
        .damaged
        .iter()
        .map(|d| d.pack_blob_id.as_str())
        .collect();
    let keys: Vec<String> = report
        .damaged
        .iter()
        .map(|d| format!("{}/{}", d.pack_blob_id, d.content_id))
        .collect();
    let key_refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let mut details = String::new();
    for damage in report.damaged.iter().take(MAX_LISTED) {
        let line = format!(
            "{} in {}: {}\n",
            damage.content_id, damage.pack_blob_id, damage.reason
        );
        if details.chars().count() + line.chars().count() > limits::DETAILS - 200 {
            break;
        }
        details.push_str(&line);
    }
    if report.damaged.len() > MAX_LISTED {
        details.push_str(&format!("… {} more\n", report.damaged.len() - MAX_LISTED));
    }
    let pack_list: Vec<&str> = packs.iter().take(10).copied().collect();
    vec![Finding {
        kind: DerivedKind::Corruption,
        subject: SUBJECT.into(),
        trigger: derived_id("damage", &key_refs),
        severity: Severity::Error,
        recipient: Recipient::All,
        recipient_key: None,
        title: format!(
            "Repository data is damaged: {} contents in {} packs",
            report.damaged.len(),
            packs.len()
        ),
        message: format!(
            "Verification checked {} contents and downloaded {}. Damaged packs: {}{}.",
            report.contents,
            report.downloaded,
            pack_list.join(", "),
            if packs.len() > pack_list.len() {
                ", …"
            } else {
                ""
            }
        ),
        details,
        snapshot_source: None,
    }]
}

/// Manifest contents our reads could not decrypt, decompress or find whole: one error to
/// everyone per pack, its trigger the damaged contents (the same damage met again is the same
/// notification; more damage in that pack is a new one).
pub fn check_unreadable(damaged: &[Damage], policies: &NotificationPolicies) -> Vec<Finding> {
    if damaged.is_empty() || Severity::Error < policies.effective(None).min_severity {
        return Vec::new();
    }
    let mut by_pack: std::collections::BTreeMap<&str, Vec<&Damage>> = Default::default();
    for damage in damaged {
        by_pack
            .entry(&damage.pack_blob_id)
            .or_default()
            .push(damage);
    }
    by_pack
        .into_iter()
        .map(|(pack, contents)| {
            let ids: BTreeSet<&str> = contents.iter().map(|d| d.content_id.as_str()).collect();
            let ids: Vec<&str> = ids.into_iter().collect();
            let details: String = contents
                .iter()
                .take(MAX_LISTED)
                .map(|d| format!("{}: {}\n", d.content_id, d.reason))
                .collect();
            Finding {
                kind: DerivedKind::UnreadableManifests,
                subject: pack.to_string(),
                trigger: derived_id("unreadable", &ids),
                severity: Severity::Error,
                recipient: Recipient::All,
                recipient_key: None,
                title: format!("Repository data is damaged: pack {pack} cannot be read"),
                message: format!(
                    "{} manifest contents in pack {pack} could not be read, so the \
                     notifications, snapshots or policies they hold are missing from every \
                     list. Run `kopia content verify --full` and restore the pack from a copy \
                     of the repository if you have one.",
                    ids.len()
                ),
                details: details.chars().take(limits::DETAILS - 200).collect(),
                snapshot_source: None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use kopia_repo::verify::Damage;

    fn damage(pack: &str, content: &str) -> Damage {
        Damage {
            content_id: content.into(),
            pack_blob_id: pack.into(),
            reason: "invalid checksum".into(),
        }
    }

    #[test]
    fn damage_is_one_error_to_everyone_keyed_by_what_is_damaged() {
        let policies = NotificationPolicies::default();
        let clean = VerifyReport {
            contents: 10,
            downloaded: 10,
            damaged: Vec::new(),
        };
        assert!(check(&clean, &policies).is_empty());
        let report = VerifyReport {
            contents: 10,
            downloaded: 10,
            damaged: vec![damage("p1", "c1"), damage("p1", "c2"), damage("p2", "c3")],
        };
        let findings = check(&report, &policies);
        assert_eq!(findings.len(), 1);
        let finding = &findings[0];
        assert_eq!(finding.recipient, Recipient::All);
        assert_eq!(
            finding.title,
            "Repository data is damaged: 3 contents in 2 packs"
        );
        assert!(finding.message.contains("Damaged packs: p1, p2."));
        assert_eq!(
            finding.details.lines().next(),
            Some("c1 in p1: invalid checksum")
        );
        let other = VerifyReport {
            damaged: vec![damage("p1", "c1")],
            ..report.clone()
        };
        assert_ne!(check(&other, &policies)[0].id(), finding.id());
        assert_eq!(check(&report, &policies)[0].id(), finding.id());
    }
}
