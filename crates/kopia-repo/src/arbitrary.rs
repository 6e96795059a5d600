//! Proptest strategies for the texts and entries the format carries, biased towards the
//! characters that need care: JSON's escapes, Go's HTML-safe and line-separator escapes,
//! controls, braces inside strings and non-ASCII.

use chrono::{DateTime, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::value::RawValue;

use crate::manifest::{LabelList, Labels, ManifestEntry};

/// Any string, with the characters that need escaping or confuse a scanner far more common
/// than in `any::<String>()`.
pub(crate) fn text() -> impl Strategy<Value = String> {
    let tricky = prop::sample::select(vec![
        '"', '\\', '<', '>', '&', '\u{2028}', '\u{2029}', '\u{7f}', '\u{0}', '\n', '\t', '\u{8}',
        '\u{c}', '\u{1f}', '{', '}', '[', ']', ',', ':', 'é', '✓', '\u{202e}', '\u{feff}', '😀',
    ]);
    let one = prop_oneof![
        4 => prop::char::range('a', 'z'),
        3 => tricky,
        1 => any::<char>(),
    ];
    prop::collection::vec(one, 0..24).prop_map(String::from_iter)
}

/// Any instant Go can marshal (years 1 to 9999), to the nanosecond; whole seconds and whole
/// milliseconds are common, as in real repositories.
pub(crate) fn go_instant() -> impl Strategy<Value = DateTime<Utc>> {
    // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z in Unix seconds.
    let seconds = -62_135_596_800_i64..=253_402_300_799;
    let nanos = prop_oneof![
        Just(0u32),
        (0u32..1000).prop_map(|ms| ms * 1_000_000),
        0u32..1_000_000_000
    ];
    (seconds, nanos).prop_map(|(s, n)| Utc.timestamp_opt(s, n).unwrap())
}

/// A JSON value of a few levels, as manifest data holds.
pub(crate) fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        (-1e300f64..1e300).prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(text(), inner, 0..4)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

pub(crate) fn labels() -> impl Strategy<Value = Labels> {
    prop::collection::btree_map(text(), text(), 0..5)
}

/// A stored entry: a put with labels and data, or a deletion (no labels, `null` data), with a
/// 32-hex-digit ID as Kopia's or any other text.
pub(crate) fn manifest_entry() -> impl Strategy<Value = ManifestEntry> {
    let id = prop_oneof![3 => "[0-9a-f]{32}", 1 => text().prop_filter("an id", |t| !t.is_empty())];
    (id, labels(), go_instant(), any::<bool>(), json_value()).prop_map(
        |(id, labels, modified, deleted, data)| {
            let (labels, data) = if deleted {
                (LabelList::default(), "null".to_owned())
            } else {
                (LabelList::from(&labels), data.to_string())
            };
            ManifestEntry {
                id,
                labels,
                modified,
                deleted,
                data: RawValue::from_string(data).expect("serde_json wrote JSON"),
            }
        },
    )
}

/// Entries compared as their JSON (`RawValue` has no equality).
pub(crate) fn as_json(entries: &[ManifestEntry]) -> String {
    serde_json::to_string(entries).expect("entries serialize")
}
