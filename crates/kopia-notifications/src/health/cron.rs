//! Cron expressions as Kopia reads them (it uses github.com/hashicorp/cronexpr): five fields
//! `min hour dom month dow` (second 0, any year), six fields with a trailing year, or seven with
//! a leading second; `*`, `?`, numbers, names (`JAN`, `MON`), ranges, steps, lists and the
//! `@yearly`-style macros. When both day fields are restricted a day matching either counts
//! (Vixie cron). cronexpr's `L`, `W` and `#` are not supported: such entries are reported
//! as invalid and the scheduling check leaves them out.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike};

/// A parsed expression: the allowed values of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    seconds: Vec<u32>,
    minutes: Vec<u32>,
    hours: Vec<u32>,
    days_of_month: Vec<u32>,
    months: Vec<u32>,
    /// 0 = Sunday.
    days_of_week: Vec<u32>,
    years: Vec<i32>,
    dom_restricted: bool,
    dow_restricted: bool,
}

const MONTHS: &[&str] = &[
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: &[&str] = &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
/// How far ahead a next time is searched: cronexpr's year range ends at 2099.
const MAX_YEAR: i32 = 2099;

impl Cron {
    /// Parses an entry, without its `# comment`.
    pub fn parse(entry: &str) -> Result<Cron, String> {
        let text = entry.split('#').next().unwrap_or("").trim();
        let expanded = match text {
            "@yearly" | "@annually" => "0 0 0 1 1 * *",
            "@monthly" => "0 0 0 1 * * *",
            "@weekly" => "0 0 0 * * 0 *",
            "@daily" | "@midnight" => "0 0 0 * * * *",
            "@hourly" => "0 0 * * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let fields: Vec<&str> = match fields.len() {
            5 => [&["0"], &fields[..], &["*"]].concat(),
            6 => [&["0"], &fields[..]].concat(),
            7 => fields,
            n => return Err(format!("{n} fields; expected 5, 6 or 7")),
        };
        let years = field(fields[6], 1970, MAX_YEAR as u32, &[], 0)?;
        Ok(Cron {
            seconds: field(fields[0], 0, 59, &[], 0)?,
            minutes: field(fields[1], 0, 59, &[], 0)?,
            hours: field(fields[2], 0, 23, &[], 0)?,
            days_of_month: field(fields[3], 1, 31, &[], 1)?,
            months: field(fields[4], 1, 12, MONTHS, 1)?,
            days_of_week: {
                let mut days: Vec<u32> = field(fields[5], 0, 7, DAYS, 0)?
                    .into_iter()
                    .map(|d| d % 7)
                    .collect();
                days.sort_unstable();
                days.dedup();
                days
            },
            years: years.into_iter().map(|y| y as i32).collect(),
            dom_restricted: !matches!(fields[3], "*" | "?"),
            dow_restricted: !matches!(fields[5], "*" | "?"),
        })
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        let dom = self.days_of_month.contains(&date.day());
        let dow = self
            .days_of_week
            .contains(&date.weekday().num_days_from_sunday());
        match (self.dom_restricted, self.dow_restricted) {
            (true, true) => dom || dow,
            (true, false) => dom,
            (false, true) => dow,
            (false, false) => true,
        }
    }

    /// The first matching time strictly after `after`, whole seconds, in `after`'s zone (a
    /// local time the zone skips is passed over).
    pub fn next_after<Tz: TimeZone>(&self, after: &DateTime<Tz>) -> Option<DateTime<Tz>> {
        let zone = after.timezone();
        let start = after.naive_local().with_nanosecond(0)? + Duration::seconds(1);
        let mut date = start.date();
        while date.year() <= MAX_YEAR {
            if self.years.contains(&date.year())
                && self.months.contains(&date.month())
                && self.day_matches(date)
            {
                if let Some(found) = self.first_on(date, start, &zone) {
                    return Some(found);
                }
            }
            date = date.succ_opt()?;
        }
        None
    }

    fn first_on<Tz: TimeZone>(
        &self,
        date: NaiveDate,
        start: NaiveDateTime,
        zone: &Tz,
    ) -> Option<DateTime<Tz>> {
        for &hour in &self.hours {
            for &minute in &self.minutes {
                for &second in &self.seconds {
                    let local = date.and_hms_opt(hour, minute, second)?;
                    if local < start {
                        continue;
                    }
                    if let Some(time) = zone.from_local_datetime(&local).earliest() {
                        return Some(time);
                    }
                }
            }
        }
        None
    }
}

/// One field: a comma list of `*`, `?`, `N`, `A-B`, each optionally `/STEP`.
fn field(
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
    name_base: u32,
) -> Result<Vec<u32>, String> {
    let value = |part: &str| -> Result<u32, String> {
        let upper = part.to_ascii_uppercase();
        if let Some(at) = names.iter().position(|n| *n == upper) {
            return Ok(at as u32 + name_base);
        }
        let number: u32 = part
            .parse()
            .map_err(|_| format!("{part:?} is not a number in {text:?}"))?;
        if number < min || number > max {
            return Err(format!("{number} is outside {min}-{max} in {text:?}"));
        }
        Ok(number)
    };
    let mut values = Vec::new();
    for item in text.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 = step
                    .parse()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("invalid step in {text:?}"))?;
                (range, step)
            }
            None => (item, 1),
        };
        let (from, to) = match range {
            "*" | "?" => (min, max),
            _ => match range.split_once('-') {
                Some((a, b)) => (value(a)?, value(b)?),
                // `N/STEP` runs from N to the end of the range.
                None if step > 1 || item.contains('/') => (value(range)?, max),
                None => {
                    let v = value(range)?;
                    (v, v)
                }
            },
        };
        if from > to {
            return Err(format!("range {from}-{to} is backwards in {text:?}"));
        }
        values.extend((from..=to).step_by(step as usize));
    }
    values.sort_unstable();
    values.dedup();
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{FixedOffset, Utc};

    fn at(text: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(text).unwrap()
    }

    fn next(expr: &str, after: &str) -> String {
        Cron::parse(expr)
            .unwrap()
            .next_after(&at(after))
            .unwrap()
            .to_rfc3339()
    }

    #[test]
    fn five_field_expressions() {
        assert_eq!(
            next("0 2 * * *", "2026-12-01T01:59:59+01:00"),
            "2026-12-01T02:00:00+01:00"
        );
        // Strictly after: at the slot itself the next one is a day later.
        assert_eq!(
            next("0 2 * * *", "2026-12-01T02:00:00+01:00"),
            "2026-12-02T02:00:00+01:00"
        );
        assert_eq!(
            next("*/15 9-17 * * MON-FRI", "2026-12-04T17:50:00+00:00"),
            "2026-12-07T09:00:00+00:00"
        );
        assert_eq!(
            next("30 8 1,15 * * # twice a month", "2026-12-02T00:00:00-05:00"),
            "2026-12-15T08:30:00-05:00"
        );
        assert_eq!(
            next("0 0 29 2 *", "2026-03-01T00:00:00+00:00"),
            "2028-02-29T00:00:00+00:00"
        );
        assert_eq!(
            next("0 12 * JAN,jul 7", "2026-12-01T00:00:00+00:00"),
            "2027-01-03T12:00:00+00:00"
        );
    }

    #[test]
    fn both_day_fields_restricted_match_either() {
        // The 13th, or any Friday.
        assert_eq!(
            next("0 0 13 * 5", "2026-12-01T00:00:00+00:00"),
            "2026-12-04T00:00:00+00:00"
        );
        assert_eq!(
            next("0 0 13 * 5", "2026-12-11T00:00:00+00:00"),
            "2026-12-13T00:00:00+00:00"
        );
    }

    #[test]
    fn six_and_seven_fields_and_macros() {
        assert_eq!(
            next("0 3 * * * 2027", "2026-06-01T00:00:00+00:00"),
            "2027-01-01T03:00:00+00:00"
        );
        assert_eq!(
            next("30 0 3 * * * *", "2026-06-01T00:00:00+00:00"),
            "2026-06-01T03:00:30+00:00"
        );
        assert_eq!(
            next("@weekly", "2026-12-01T00:00:00+00:00"),
            "2026-12-06T00:00:00+00:00"
        );
        assert!(Cron::parse("0 0 * * * 2020")
            .unwrap()
            .next_after(&Utc::now())
            .is_none());
    }

    #[test]
    fn invalid_entries_say_why() {
        for (bad, needle) in [
            ("0 2 * *", "4 fields"),
            ("61 * * * *", "outside"),
            ("0 0 L * *", "not a number"),
            ("5-1 * * * *", "backwards"),
            ("*/0 * * * *", "step"),
        ] {
            let error = Cron::parse(bad).unwrap_err();
            assert!(error.contains(needle), "{bad}: {error}");
        }
    }
}
