//! Human durations for expiry: `7d`, `12h`, `30m`, `2w`, `1d12h`. Parsing only; the result is a
//! `chrono::Duration`. Not Go's `time.ParseDuration` (which has no days or weeks).

use chrono::Duration;

use crate::Error;

/// Default lifetime of a notification.
pub const DEFAULT_EXPIRY: Duration = Duration::days(30);

/// Longest lifetime accepted: ten years, beyond which "expiry" means nothing.
pub const MAX_EXPIRY: Duration = Duration::days(3650);

/// Parses one or more `<number><unit>` groups, units `w` (weeks), `d`, `h`, `m` (minutes) and
/// `s`, summed: `1d12h` is 36 hours. Zero, negative, unit-less and over-long durations are errors.
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    let invalid = |reason| Error::InvalidDuration {
        text: text.to_string(),
        reason,
    };
    if text.is_empty() {
        return Err(invalid(
            "it is empty; expected e.g. 7d, 12h, 30m, 2w or 1d12h",
        ));
    }
    if text.starts_with('-') {
        return Err(invalid("it must be positive"));
    }
    let mut total_seconds: i64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits == 0 {
            return Err(invalid(
                "expected a number before each unit, e.g. 7d, 12h, 30m, 2w or 1d12h",
            ));
        }
        let number: i64 = rest[..digits]
            .parse()
            .map_err(|_| invalid("the number is too large"))?;
        let mut after = rest[digits..].chars();
        let unit_seconds = match after.next() {
            Some('w') => 7 * 86_400,
            Some('d') => 86_400,
            Some('h') => 3_600,
            Some('m') => 60,
            Some('s') => 1,
            Some(_) => return Err(invalid("unknown unit; use w, d, h, m or s")),
            None => {
                return Err(invalid(
                    "missing unit after the number; use w, d, h, m or s",
                ))
            }
        };
        total_seconds = number
            .checked_mul(unit_seconds)
            .and_then(|seconds| total_seconds.checked_add(seconds))
            .ok_or_else(|| invalid("it is too long"))?;
        rest = after.as_str();
    }
    if total_seconds == 0 {
        return Err(invalid("it must be longer than zero"));
    }
    let duration = Duration::seconds(total_seconds);
    if duration > MAX_EXPIRY {
        return Err(invalid("it is longer than 3650 days"));
    }
    Ok(duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_single_and_combined_units() {
        assert_eq!(parse_duration("7d").unwrap(), Duration::days(7));
        assert_eq!(parse_duration("12h").unwrap(), Duration::hours(12));
        assert_eq!(parse_duration("30m").unwrap(), Duration::minutes(30));
        assert_eq!(parse_duration("2w").unwrap(), Duration::weeks(2));
        assert_eq!(parse_duration("1d12h").unwrap(), Duration::hours(36));
        assert_eq!(parse_duration("90s").unwrap(), Duration::seconds(90));
        assert_eq!(parse_duration("3650d").unwrap(), MAX_EXPIRY);
    }

    #[test]
    fn rejects_bad_input_naming_it() {
        for bad in [
            "",
            "7",
            "d",
            "7x",
            "7D",
            "-1d",
            "0d",
            "0h0m",
            "1d 2h",
            "1.5d",
            "3651d",
            "99999999999999999999d",
            "9999999999999999w",
        ] {
            let error = parse_duration(bad).unwrap_err();
            assert!(
                matches!(&error, Error::InvalidDuration { text, .. } if text == bad),
                "{bad}: {error}"
            );
        }
        assert!(parse_duration("0d")
            .unwrap_err()
            .to_string()
            .contains("longer than zero"));
        assert!(parse_duration("-1d")
            .unwrap_err()
            .to_string()
            .contains("positive"));
    }
}
