//! Go's `encoding/json` forms, where Kopia's files and output must be matched byte for byte:
//! strings as `json.Marshal` escapes them (`<`, `>` and `&` HTML-safe, U+2028 and U+2029, and
//! control characters: `\b`, `\f`, `\n`, `\r`, `\t` short, the rest as `\u00XX`), integers,
//! and `time.Time` (see [`go_time`]).

use chrono::{DateTime, SecondsFormat, Utc};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes that may need escaping: controls, `"`, `\\`, the HTML three, and 0xE2 (the first byte
/// of U+2028 and U+2029). Everything else is copied as is, in runs.
const SPECIAL: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[b'<' as usize] = true;
    table[b'>' as usize] = true;
    table[b'&' as usize] = true;
    table[0xe2] = true;
    table
};

/// Whether any of the 8 bytes in `word` is in `SPECIAL`, tested all at once (SWAR): most
/// strings need no escaping and are skipped 8 bytes at a time.
fn any_special(word: u64) -> bool {
    const ONES: u64 = u64::MAX / 255;
    const HIGH_BITS: u64 = ONES * 0x80;
    // A byte of `v` is zero / below `n` (n ≤ 0x80) exactly when this sets its high bit.
    let below = |v: u64, n: u8| v.wrapping_sub(ONES * u64::from(n)) & !v & HIGH_BITS != 0;
    below(word, 0x20)
        || [b'"', b'\\', b'<', b'>', b'&', 0xe2]
            .iter()
            .any(|&c| below(word ^ (ONES * u64::from(c)), 1))
}

/// Appends `text` as a JSON string literal, escaped exactly as Go's `json.Marshal` escapes it.
pub fn append_string(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        if let Some(word) = bytes.get(i..i + 8) {
            if !any_special(u64::from_le_bytes(word.try_into().expect("8 bytes"))) {
                i += 8;
                continue;
            }
        }
        let byte = bytes[i];
        if !SPECIAL[usize::from(byte)] {
            i += 1;
            continue;
        }
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            // U+2028 and U+2029 are E2 80 A8 and E2 80 A9; other 0xE2 sequences stay as they are.
            0xe2 => match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(0x80), Some(0xa8)) => b"\\u2028",
                (Some(0x80), Some(0xa9)) => b"\\u2029",
                _ => {
                    i += 1;
                    continue;
                }
            },
            _ => &[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[usize::from(byte >> 4)],
                HEX[usize::from(byte & 0xf)],
            ],
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        // A line or paragraph separator is three bytes long.
        i += if byte == 0xe2 { 3 } else { 1 };
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Appends `value` in decimal, without the allocation of `to_string`.
pub fn append_decimal(out: &mut Vec<u8>, mut value: usize) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[start..]);
}

/// Go's `time.Time` JSON form: RFC 3339 with up to nine fractional digits, trailing zeros cut.
pub mod go_time {
    use super::*;
    use chrono::{Datelike, Timelike};
    use serde::{Deserializer, Serializer};

    pub fn format(t: &DateTime<Utc>) -> String {
        let mut out = Vec::with_capacity(30);
        append(&mut out, t);
        String::from_utf8(out).expect("the time format is ASCII")
    }

    /// Appends `format(t)` without the quotes, without allocating for the common years.
    pub fn append(out: &mut Vec<u8>, t: &DateTime<Utc>) {
        if !(0..=9999).contains(&t.year()) {
            // Outside four-digit years (which Go itself refuses to marshal) chrono's own form.
            let full = t.to_rfc3339_opts(SecondsFormat::Nanos, true);
            let body = &full[..full.len() - 1];
            out.extend_from_slice(body.trim_end_matches('0').trim_end_matches('.').as_bytes());
            out.push(b'Z');
            return;
        }
        let (date, time) = (t.date_naive(), t.time());
        let two = |value: u32| [b'0' + (value / 10) as u8, b'0' + (value % 10) as u8];
        let year = date.year() as u32;
        let (century, month, day) = (two(year / 100), two(date.month()), two(date.day()));
        let (hour, minute, second) = (two(time.hour()), two(time.minute()), two(time.second()));
        let year_low = two(year % 100);
        out.extend_from_slice(&[
            century[0],
            century[1],
            year_low[0],
            year_low[1],
            b'-',
            month[0],
            month[1],
            b'-',
            day[0],
            day[1],
            b'T',
            hour[0],
            hour[1],
            b':',
            minute[0],
            minute[1],
            b':',
            second[0],
            second[1],
        ]);
        // A leap second shows as nanoseconds ≥ 10^9 in chrono; Go has no such instant.
        let mut nanos = time.nanosecond() % 1_000_000_000;
        if nanos > 0 {
            let mut fraction = [b'.', b'0', b'0', b'0', b'0', b'0', b'0', b'0', b'0', b'0'];
            for digit in fraction[1..].iter_mut().rev() {
                *digit = b'0' + (nanos % 10) as u8;
                nanos /= 10;
            }
            let used = fraction
                .iter()
                .rposition(|&d| d != b'0')
                .expect("nanos > 0")
                + 1;
            out.extend_from_slice(&fraction[..used]);
        }
        out.push(b'Z');
    }

    pub fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
        match parse_utc(text.as_bytes()) {
            Some(t) => Ok(t),
            None => DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)),
        }
    }

    /// The form Go writes, `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, read directly: a manifest load
    /// parses one per entry. `None` for anything else (offsets, leap seconds, ...).
    fn parse_utc(text: &[u8]) -> Option<DateTime<Utc>> {
        let number = |range: std::ops::Range<usize>| -> Option<u32> {
            let digits = text.get(range)?;
            digits.iter().try_fold(0u32, |value, &d| {
                d.is_ascii_digit().then(|| value * 10 + u32::from(d - b'0'))
            })
        };
        let separators = [(4, b'-'), (7, b'-'), (10, b'T'), (13, b':'), (16, b':')];
        if text.len() < 20 || separators.iter().any(|&(at, c)| text[at] != c) {
            return None;
        }
        let (fraction, zone) = text[19..].split_at(text.len() - 20);
        if zone != b"Z" {
            return None;
        }
        let nanos = match fraction {
            [] => 0,
            [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
                number(20..20 + digits.len())? * 10u32.pow(9 - digits.len() as u32)
            }
            _ => return None,
        };
        let date =
            chrono::NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
        let time =
            date.and_hms_nano_opt(number(11..13)?, number(14..16)?, number(17..19)?, nanos)?;
        Some(time.and_utc())
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        d.deserialize_str(TimeVisitor)
    }

    /// Parses the text in place, without first copying it into a `String`.
    struct TimeVisitor;

    impl serde::de::Visitor<'_> for TimeVisitor {
        type Value = DateTime<Utc>;

        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an RFC 3339 time")
        }

        fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<Self::Value, E> {
            parse(text).map_err(E::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn go(text: &str) -> String {
        let mut out = Vec::new();
        append_string(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    /// Expected texts are what Go 1.26's `json.Marshal` prints for the same strings.
    #[test]
    fn escapes_like_go_json_marshal() {
        assert_eq!(go("plain /path: ok"), r#""plain /path: ok""#);
        assert_eq!(go(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(go("<b>&</b>"), r#""\u003cb\u003e\u0026\u003c/b\u003e""#);
        assert_eq!(
            go("\u{8}\u{c}\n\r\t\u{1}\u{1f}\u{7f}"),
            "\"\\b\\f\\n\\r\\t\\u0001\\u001f\u{7f}\""
        );
        assert_eq!(go("a\u{2028}b\u{2029}c"), r#""a\u2028b\u2029c""#);
        assert_eq!(go("é ✓ \u{2027}"), "\"é ✓ \u{2027}\"");
        assert_eq!(go(""), r#""""#);
        // Whatever the position within the 8-byte steps.
        for at in 0..20 {
            let padding = "x".repeat(at);
            assert_eq!(
                go(&format!("{padding}<{padding}")),
                format!(r#""{padding}\u003c{padding}""#)
            );
            assert_eq!(
                go(&format!("{padding}\u{2028}")),
                format!(r#""{padding}\u2028""#)
            );
            assert_eq!(
                go(&format!("{padding}é✓{padding}")),
                format!("\"{padding}é✓{padding}\"")
            );
        }
    }

    #[test]
    fn decimals_print_as_to_string_does() {
        for value in [0, 7, 10, 99, 1_234_567_890, usize::MAX] {
            let mut out = Vec::new();
            append_decimal(&mut out, value);
            assert_eq!(String::from_utf8(out).unwrap(), value.to_string());
        }
    }

    #[test]
    fn go_time_trims_trailing_zeros_like_rfc3339nano() {
        let t = Utc.timestamp_nanos(1_764_470_140_504_295_010);
        assert_eq!(go_time::format(&t), "2025-11-30T02:35:40.50429501Z");
        let whole = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(go_time::format(&whole), "2023-11-14T22:13:20Z");
        let t = go_time::parse("2026-11-30T02:35:40.8144024Z").unwrap();
        assert_eq!(go_time::format(&t), "2026-11-30T02:35:40.8144024Z");
        // Forms outside Go's own output still parse, through chrono.
        let offset = go_time::parse("2024-01-02T03:04:05.5+01:00").unwrap();
        assert_eq!(go_time::format(&offset), "2024-01-02T02:04:05.5Z");
        assert!(go_time::parse("2024-01-02T03:04:05.1234567891Z").is_ok());
        for bad in [
            "2024-13-02T03:04:05Z",
            "2024-01-02T03:04:05",
            "2024-01-02T03:04Z",
            "",
        ] {
            assert!(go_time::parse(bad).is_err(), "{bad}");
        }
        for text in [
            "0001-01-01T00:00:00Z",
            "2024-02-29T23:59:59.000000001Z",
            "9999-12-31T23:59:59.999999999Z",
            "1970-01-01T00:00:00.1Z",
        ] {
            assert_eq!(go_time::format(&go_time::parse(text).unwrap()), text);
        }
    }

    /// Go's escaping spelled out one character at a time, as `encoding/json` (`appendString`
    /// with HTML escaping) does it: the reference the fast path is checked against.
    fn go_by_character(text: &str) -> String {
        let mut out = String::from("\"");
        for c in text.chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '\u{8}' => out.push_str("\\b"),
                '\u{c}' => out.push_str("\\f"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    out.push_str(&format!("\\u{:04x}", c as u32))
                }
                c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
        out
    }

    proptest::proptest! {
        #[test]
        fn strings_escape_as_go_does_and_read_back(text in crate::arbitrary::text()) {
            let written = go(&text);
            proptest::prop_assert_eq!(&written, &go_by_character(&text));
            let read: String = serde_json::from_str(&written).unwrap();
            proptest::prop_assert_eq!(read, text);
        }

        #[test]
        fn any_string_reads_back(text in proptest::prelude::any::<String>()) {
            let read: String = serde_json::from_str(&go(&text)).unwrap();
            proptest::prop_assert_eq!(read, text);
        }

        #[test]
        fn times_print_as_rfc3339nano_and_read_back(t in crate::arbitrary::go_instant()) {
            let text = go_time::format(&t);
            proptest::prop_assert_eq!(go_time::parse(&text).unwrap(), t);
            // RFC3339Nano: whole seconds, then the fraction without trailing zeros, then Z.
            let whole = t.format("%Y-%m-%dT%H:%M:%S").to_string();
            let fraction = format!("{:09}", t.timestamp_subsec_nanos());
            let fraction = fraction.trim_end_matches('0');
            let expected = if fraction.is_empty() {
                format!("{whole}Z")
            } else {
                format!("{whole}.{fraction}Z")
            };
            proptest::prop_assert_eq!(text, expected);
        }
    }
}
