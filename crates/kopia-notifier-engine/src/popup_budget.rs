//! How many popups one repository may raise: a few single popups within a window of time, then
//! one summary, then silence until the window has passed. A writer that sends a thousand
//! notifications, at once or trickled over many refreshes, gets a handful of popups; the tray
//! and the window still count and list every one. Pure: the caller passes the clock.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use kopia_notifications::Severity;

/// Single popups a repository may raise within [`WINDOW`].
pub const SINGLE_POPUPS_PER_WINDOW: usize = 3;
/// The window over which popups are counted; at most one summary popup per window.
pub const WINDOW: Duration = Duration::minutes(10);

/// One popup standing for several new notifications of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PopupSummary {
    /// The repository's name as the window shows it.
    pub repository: String,
    pub count: usize,
    pub errors: usize,
    pub warnings: usize,
    pub normal: usize,
}

impl PopupSummary {
    pub fn of(repository: &str, severities: impl IntoIterator<Item = Severity>) -> Self {
        let mut summary = PopupSummary {
            repository: repository.to_string(),
            count: 0,
            errors: 0,
            warnings: 0,
            normal: 0,
        };
        for severity in severities {
            summary.count += 1;
            match severity {
                Severity::Error => summary.errors += 1,
                Severity::Warning => summary.warnings += 1,
                Severity::Normal => summary.normal += 1,
            }
        }
        summary
    }

    /// The highest severity among them: how loud the summary popup is.
    pub fn severity(&self) -> Severity {
        if self.errors > 0 {
            Severity::Error
        } else if self.warnings > 0 {
            Severity::Warning
        } else {
            Severity::Normal
        }
    }
}

/// What to raise for the notifications that became pending in one refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// One popup each.
    Singles,
    /// One summary popup for all of them.
    Summary,
    /// None: the budget of this window is spent.
    Quiet,
}

/// The popups one repository raised recently.
#[derive(Debug, Clone, Default)]
pub struct PopupBudget {
    singles: VecDeque<DateTime<Utc>>,
    last_summary: Option<DateTime<Utc>>,
}

impl PopupBudget {
    /// Decides how `count` new notifications pop up at `now`, and spends the budget.
    pub fn admit(&mut self, count: usize, now: DateTime<Utc>) -> Admission {
        if count == 0 {
            return Admission::Quiet;
        }
        let window_start = now - WINDOW;
        while self.singles.front().is_some_and(|at| *at <= window_start) {
            self.singles.pop_front();
        }
        // A clock set back must not silence popups for as long as it jumped.
        self.singles.retain(|at| *at <= now);
        if self.last_summary.is_some_and(|at| at > now) {
            self.last_summary = None;
        }
        if count <= SINGLE_POPUPS_PER_WINDOW - self.singles.len() {
            self.singles.extend(std::iter::repeat_n(now, count));
            return Admission::Singles;
        }
        if self.last_summary.is_some_and(|at| at > window_start) {
            return Admission::Quiet;
        }
        self.last_summary = Some(now);
        Admission::Summary
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(minutes: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap() + Duration::minutes(minutes)
    }

    #[test]
    fn a_few_single_popups_then_one_summary_then_quiet() {
        let mut budget = PopupBudget::default();
        assert_eq!(budget.admit(2, t(0)), Admission::Singles);
        assert_eq!(budget.admit(1, t(1)), Admission::Singles);
        // The fourth within the window no longer pops alone.
        assert_eq!(budget.admit(1, t(2)), Admission::Summary);
        assert_eq!(budget.admit(5, t(3)), Admission::Quiet);
        assert_eq!(budget.admit(1, t(9)), Admission::Quiet);
        // Once the window has passed, singles and a summary are allowed again.
        assert_eq!(budget.admit(1, t(10)), Admission::Singles);
        assert_eq!(budget.admit(100, t(13)), Admission::Summary);
    }

    #[test]
    fn a_burst_is_one_summary_however_it_arrives() {
        let mut at_once = PopupBudget::default();
        assert_eq!(at_once.admit(1_000, t(0)), Admission::Summary);

        // A thousand trickled in over ten minutes of refreshes: a handful of popups.
        let mut trickled = PopupBudget::default();
        let popups = (0..100)
            .map(|i| trickled.admit(10, t(0) + Duration::seconds(6 * i)))
            .filter(|a| *a != Admission::Quiet)
            .count();
        assert_eq!(popups, 1);
        let mut one_by_one = PopupBudget::default();
        let admissions: Vec<Admission> = (0..1_000)
            .map(|i| one_by_one.admit(1, t(0) + Duration::milliseconds(600 * i)))
            .collect();
        let raised = admissions
            .iter()
            .filter(|a| **a != Admission::Quiet)
            .count();
        assert_eq!(raised, SINGLE_POPUPS_PER_WINDOW + 1);
    }

    #[test]
    fn a_clock_set_back_does_not_silence_popups() {
        let mut budget = PopupBudget::default();
        assert_eq!(budget.admit(10, t(60)), Admission::Summary);
        assert_eq!(budget.admit(3, t(61)), Admission::Singles);
        // Back by an hour: what "happened" in the future no longer counts.
        assert_eq!(budget.admit(1, t(0)), Admission::Singles);
        assert_eq!(budget.admit(10, t(1)), Admission::Summary);
    }

    #[test]
    fn summaries_count_by_severity() {
        let summary = PopupSummary::of(
            "nas",
            [Severity::Warning, Severity::Error, Severity::Warning],
        );
        assert_eq!(
            summary,
            PopupSummary {
                repository: "nas".into(),
                count: 3,
                errors: 1,
                warnings: 2,
                normal: 0
            }
        );
        assert_eq!(summary.severity(), Severity::Error);
        assert_eq!(
            PopupSummary::of("nas", [Severity::Normal]).severity(),
            Severity::Normal
        );
    }
}
