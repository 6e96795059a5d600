//! The new-entry diff: which pending notifications to pop up and which popups to withdraw,
//! as a pure function of the previous and current pending sets. No I/O, no clock: the caller
//! passes whether popups are paused.

use std::collections::BTreeSet;

use kopia_notifications::Severity;

/// A notification pending for this machine's identity (acknowledged in the repository or
/// queued here for acknowledgement means not pending).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingEntry<'a> {
    pub id: &'a str,
    pub severity: Severity,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PendingDiff {
    /// Newly pending, never shown before, at or above the minimum severity; in the order of
    /// `current` (oldest first).
    pub to_pop: Vec<String>,
    /// Pending before, not any more (acknowledged, expired, deleted); sorted.
    pub withdrawn: Vec<String>,
}

/// Compares the pending sets of two refreshes. Only entries new since `previous` can pop:
/// anything already pending last time was either shown, held back (paused, below the
/// minimum) or is in the list anyway, so it never pops later.
pub fn diff_pending(
    previous: &BTreeSet<String>,
    current: &[PendingEntry<'_>],
    shown_before: &BTreeSet<String>,
    min_severity: Severity,
    popups_paused: bool,
) -> PendingDiff {
    let to_pop = if popups_paused {
        Vec::new()
    } else {
        let mut seen = BTreeSet::new();
        current
            .iter()
            .filter(|entry| {
                entry.severity >= min_severity
                    && !previous.contains(entry.id)
                    && !shown_before.contains(entry.id)
                    && seen.insert(entry.id)
            })
            .map(|entry| entry.id.to_string())
            .collect()
    };
    let still_pending: BTreeSet<&str> = current.iter().map(|entry| entry.id).collect();
    let withdrawn = previous
        .iter()
        .filter(|id| !still_pending.contains(id.as_str()))
        .cloned()
        .collect();
    PendingDiff { to_pop, withdrawn }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Severity::{Error, Normal, Warning};

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|id| id.to_string()).collect()
    }

    fn entries<'a>(items: &[(&'a str, Severity)]) -> Vec<PendingEntry<'a>> {
        items
            .iter()
            .map(|&(id, severity)| PendingEntry { id, severity })
            .collect()
    }

    #[test]
    fn first_refresh_pops_everything_at_or_above_the_minimum() {
        let current = entries(&[("a", Normal), ("b", Warning), ("c", Error)]);
        let diff = diff_pending(&set(&[]), &current, &set(&[]), Warning, false);
        assert_eq!(diff.to_pop, ["b", "c"]);
        assert!(diff.withdrawn.is_empty());
        let diff = diff_pending(&set(&[]), &current, &set(&[]), Normal, false);
        assert_eq!(diff.to_pop, ["a", "b", "c"], "oldest first, as given");
        let diff = diff_pending(&set(&[]), &current, &set(&[]), Error, false);
        assert_eq!(diff.to_pop, ["c"]);
    }

    #[test]
    fn only_new_entries_pop() {
        let current = entries(&[("a", Error), ("b", Error)]);
        let diff = diff_pending(&set(&["a"]), &current, &set(&[]), Warning, false);
        assert_eq!(diff.to_pop, ["b"]);
        assert!(diff.withdrawn.is_empty());
        // Nothing changed: nothing to do.
        let diff = diff_pending(&set(&["a", "b"]), &current, &set(&[]), Warning, false);
        assert_eq!(diff, PendingDiff::default());
    }

    #[test]
    fn shown_before_never_pops_again() {
        // E.g. after a restart whose cached list was lost, or a notification pending again
        // for a new identity.
        let current = entries(&[("a", Error), ("b", Warning)]);
        let diff = diff_pending(&set(&[]), &current, &set(&["a"]), Warning, false);
        assert_eq!(diff.to_pop, ["b"]);
    }

    #[test]
    fn paused_pops_nothing_but_still_withdraws() {
        let current = entries(&[("b", Error)]);
        let diff = diff_pending(&set(&["a"]), &current, &set(&[]), Normal, true);
        assert!(diff.to_pop.is_empty());
        assert_eq!(diff.withdrawn, ["a"]);
    }

    #[test]
    fn withdrawn_are_the_ones_no_longer_pending() {
        let current = entries(&[("b", Normal)]);
        let diff = diff_pending(
            &set(&["c", "a", "b"]),
            &current,
            &set(&["a"]),
            Normal,
            false,
        );
        assert!(diff.to_pop.is_empty());
        assert_eq!(diff.withdrawn, ["a", "c"]);
        // Everything acknowledged at once.
        let diff = diff_pending(&set(&["a", "b"]), &[], &set(&[]), Normal, false);
        assert_eq!(diff.withdrawn, ["a", "b"]);
    }

    #[test]
    fn below_minimum_stays_quiet_even_when_the_minimum_drops_later() {
        let current = entries(&[("a", Normal)]);
        let diff = diff_pending(&set(&[]), &current, &set(&[]), Warning, false);
        assert!(diff.to_pop.is_empty());
        // Next refresh with the minimum lowered to normal: "a" was already pending.
        let diff = diff_pending(&set(&["a"]), &current, &set(&[]), Normal, false);
        assert!(diff.to_pop.is_empty());
    }

    #[test]
    fn duplicate_ids_pop_once() {
        let current = entries(&[("a", Error), ("a", Error)]);
        let diff = diff_pending(&set(&[]), &current, &set(&[]), Normal, false);
        assert_eq!(diff.to_pop, ["a"]);
    }
}
