//! Manifest entries in exactly the form Go's JSON encoder writes them, read by matching that
//! form instead of through serde's field-by-field map: `{"id":"…","labels":{…}|null,
//! "modified":"…"[,"deleted":true],"data":…}` with no whitespace and no escapes in the id or
//! the time. A content holds tens of thousands of them. Equal label texts are decoded once
//! per content. Anything else is left to serde (see `content.rs`), which also words errors.

use std::collections::HashMap;

use serde_json::value::RawValue;

use super::{LabelList, ManifestEntry};
use crate::go_json::go_time;

/// What reading one entry at the start of a text found.
#[derive(Debug)]
pub(super) enum PlainEntry {
    /// The entry and the length of its text.
    Read(ManifestEntry, usize),
    /// The text ends before the entry does.
    Incomplete,
    /// Not in the plain form (or not valid): for the general decoder.
    Other,
}

/// Reads plain entries, remembering the label sets it decoded.
#[derive(Default)]
pub(super) struct PlainEntryReader {
    labels_by_text: HashMap<Box<[u8]>, LabelList, foldhash::fast::RandomState>,
}

/// Literal `expected` at `text[*at..]`, advancing past it.
fn literal(text: &[u8], at: &mut usize, expected: &[u8]) -> Result<(), PlainEntry> {
    let available = &text[(*at).min(text.len())..];
    let n = available.len().min(expected.len());
    if available[..n] != expected[..n] {
        return Err(PlainEntry::Other);
    }
    if n < expected.len() {
        return Err(PlainEntry::Incomplete);
    }
    *at += n;
    Ok(())
}

/// A string body without escapes or control characters up to its closing quote, advancing
/// past the quote.
fn unescaped_str<'t>(text: &'t [u8], at: &mut usize) -> Result<&'t str, PlainEntry> {
    let start = *at;
    let Some(len) = text[start..].iter().position(|&b| b == b'"') else {
        return Err(PlainEntry::Incomplete);
    };
    let body = &text[start..start + len];
    if body.iter().any(|&b| b == b'\\' || b < 0x20) {
        return Err(PlainEntry::Other);
    }
    *at = start + len + 1;
    std::str::from_utf8(body).map_err(|_| PlainEntry::Other)
}

/// The text of a JSON object whose values hold no `}` outside strings (a label map), from
/// its `{` to its `}`, advancing past it. Validity is left to the decoder of that text.
fn flat_object<'t>(text: &'t [u8], at: &mut usize) -> Result<&'t [u8], PlainEntry> {
    let start = *at;
    let mut in_string = false;
    let mut escaped = false;
    for (offset, &b) in text[start..].iter().enumerate() {
        match (in_string, b) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') => in_string = false,
            (false, b'"') => in_string = true,
            (false, b'{' | b'[') if offset > 0 => return Err(PlainEntry::Other),
            (false, b'}') => {
                *at = start + offset + 1;
                return Ok(&text[start..*at]);
            }
            _ => {}
        }
    }
    Err(PlainEntry::Incomplete)
}

/// Whether serde's error `e` over `text` may only mean that `text` stops too early: the end
/// of input, or a syntax error at its very last byte (serde calls `-`, `1.` or `1e+` at the
/// end of its input an invalid number, not an early end).
pub(super) fn ends_early(text: &[u8], e: &serde_json::Error) -> bool {
    if e.is_eof() {
        return true;
    }
    if !e.is_syntax() {
        return false;
    }
    // serde counts lines from 1 and columns from 1 within the line.
    let lines = 1 + text.iter().filter(|&&b| b == b'\n').count();
    let last_line = text.len()
        - text
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |at| at + 1);
    e.line() == lines && e.column() == last_line
}

impl PlainEntryReader {
    /// Reads the entry at the start of `text`.
    pub(super) fn read(&mut self, text: &[u8]) -> PlainEntry {
        match self.try_read(text) {
            Ok(read) => read,
            Err(outcome) => outcome,
        }
    }

    fn try_read(&mut self, text: &[u8]) -> Result<PlainEntry, PlainEntry> {
        let mut at = 0;
        literal(text, &mut at, br#"{"id":""#)?;
        let id = unescaped_str(text, &mut at)?;
        literal(text, &mut at, br#","labels":"#)?;
        let labels = match text.get(at) {
            None => return Err(PlainEntry::Incomplete),
            Some(b'n') => {
                literal(text, &mut at, b"null")?;
                LabelList::default()
            }
            Some(b'{') => self.labels(flat_object(text, &mut at)?)?,
            Some(_) => return Err(PlainEntry::Other),
        };
        literal(text, &mut at, br#","modified":""#)?;
        let modified =
            go_time::parse(unescaped_str(text, &mut at)?).map_err(|_| PlainEntry::Other)?;
        literal(text, &mut at, b",\"")?;
        let deleted = match text.get(at) {
            None => return Err(PlainEntry::Incomplete),
            Some(b'd') if text.get(at + 1) == Some(&b'e') => {
                literal(text, &mut at, br#"deleted":true,""#)?;
                true
            }
            Some(_) => false,
        };
        literal(text, &mut at, br#"data":"#)?;
        let mut values = serde_json::Deserializer::from_slice(&text[at..]).into_iter();
        let data: Box<RawValue> = match values.next() {
            Some(Ok(data)) => data,
            None => return Err(PlainEntry::Incomplete),
            Some(Err(e)) if ends_early(&text[at..], &e) => return Err(PlainEntry::Incomplete),
            Some(Err(_)) => return Err(PlainEntry::Other),
        };
        at += values.byte_offset();
        // A number at the very end of the text may go on in the next chunk: the closing brace
        // must be there too.
        literal(text, &mut at, b"}")?;
        let entry = ManifestEntry {
            id: id.to_string(),
            labels,
            modified,
            deleted,
            data,
        };
        Ok(PlainEntry::Read(entry, at))
    }

    fn labels(&mut self, text: &[u8]) -> Result<LabelList, PlainEntry> {
        if let Some(labels) = self.labels_by_text.get(text) {
            return Ok(labels.clone());
        }
        let labels: LabelList = serde_json::from_slice(text).map_err(|_| PlainEntry::Other)?;
        self.labels_by_text.insert(text.into(), labels.clone());
        Ok(labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> PlainEntry {
        PlainEntryReader::default().read(text.as_bytes())
    }

    const ENTRY: &str = r#"{"id":"0123abcd","labels":{"type":"x","k":"v \"}\" {"},"modified":"2024-01-02T03:04:05.5Z","data":{"a":[1,{"b":"}"}]}}"#;

    #[test]
    fn reads_what_serde_reads_and_its_length() {
        let text = format!("{ENTRY},next");
        let PlainEntry::Read(entry, len) = read(&text) else {
            panic!("plain entry not read");
        };
        assert_eq!(len, ENTRY.len());
        let expected: ManifestEntry = serde_json::from_str(ENTRY).unwrap();
        assert_eq!(
            serde_json::to_string(&entry).unwrap(),
            serde_json::to_string(&expected).unwrap()
        );
        assert_eq!(entry.labels().get("k"), Some("v \"}\" {"));

        let deleted = r#"{"id":"ff","labels":null,"modified":"2024-01-02T03:04:06Z","deleted":true,"data":null}"#;
        let PlainEntry::Read(entry, len) = read(deleted) else {
            panic!("deletion entry not read");
        };
        assert!(entry.deleted && entry.labels().is_empty() && entry.data.get() == "null");
        assert_eq!(len, deleted.len());
    }

    #[test]
    fn every_cut_of_an_entry_is_incomplete() {
        for text in [
            ENTRY,
            r#"{"id":"a","labels":{},"modified":"2024-01-02T03:04:05Z","data":12345}"#,
        ] {
            for cut in 0..text.len() {
                assert!(
                    matches!(read(&text[..cut]), PlainEntry::Incomplete),
                    "{}",
                    &text[..cut]
                );
            }
        }
    }

    #[test]
    fn other_forms_and_invalid_text_go_to_serde() {
        for text in [
            r#"{ "id":"a","labels":null,"modified":"2024-01-02T03:04:05Z","data":1}"#,
            r#"{"id":"a\u0062","labels":null,"modified":"2024-01-02T03:04:05Z","data":1}"#,
            r#"{"labels":null,"id":"a","modified":"2024-01-02T03:04:05Z","data":1}"#,
            r#"{"id":"a","labels":{"t":1},"modified":"2024-01-02T03:04:05Z","data":1}"#,
            r#"{"id":"a","labels":{"t":{"x":"y"}},"modified":"2024-01-02T03:04:05Z","data":1}"#,
            r#"{"id":"a","labels":[],"modified":"2024-01-02T03:04:05Z","data":1}"#,
            r#"{"id":"a","labels":null,"modified":"yesterday","data":1}"#,
            r#"{"id":"a","labels":null,"modified":"2024-01-02T03:04:05Z","deleted":false,"data":1}"#,
            r#"{"id":"a","labels":null,"modified":"2024-01-02T03:04:05Z","data":1,"x":2}"#,
            r#"{"id":"a","labels":null,"modified":"2024-01-02T03:04:05Z","data":[1,]}"#,
        ] {
            assert!(matches!(read(text), PlainEntry::Other), "{text}");
        }
    }

    #[test]
    fn equal_label_texts_share_one_list() {
        let mut reader = PlainEntryReader::default();
        let mut lists = Vec::new();
        for _ in 0..2 {
            let PlainEntry::Read(entry, _) = reader.read(ENTRY.as_bytes()) else {
                panic!("plain entry not read");
            };
            lists.push(entry.labels);
        }
        // One copy: the same text in memory, not only equal text.
        let type_label = |list: &LabelList| list.get("type").unwrap().as_ptr();
        assert_eq!(type_label(&lists[0]), type_label(&lists[1]));
        let separate: LabelList = serde_json::from_str(r#"{"type":"x"}"#).unwrap();
        assert_ne!(type_label(&lists[0]), type_label(&separate));
    }

    /// An entry as Kopia's Go encoder writes it: Go's string escaping, labels sorted, `null`
    /// for none, `deleted` only when set.
    fn go_form(entry: &ManifestEntry) -> String {
        let mut out = br#"{"id":"#.to_vec();
        crate::go_json::append_string(&mut out, &entry.id);
        out.extend_from_slice(br#","labels":"#);
        if entry.deleted {
            out.extend_from_slice(b"null");
        } else {
            out.push(b'{');
            for (i, (key, value)) in entry.labels().iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                crate::go_json::append_string(&mut out, key);
                out.push(b':');
                crate::go_json::append_string(&mut out, value);
            }
            out.push(b'}');
        }
        out.extend_from_slice(br#","modified":""#);
        go_time::append(&mut out, &entry.modified);
        out.push(b'"');
        if entry.deleted {
            out.extend_from_slice(br#","deleted":true"#);
        }
        out.extend_from_slice(br#","data":"#);
        out.extend_from_slice(entry.data.get().as_bytes());
        out.push(b'}');
        String::from_utf8(out).unwrap()
    }

    /// What the plain reader makes of `text` agrees with serde: the same entry and its whole
    /// length, or "other" (never a different entry). Returns whether it read the entry.
    fn agrees_with_serde(text: &str) -> Result<bool, proptest::test_runner::TestCaseError> {
        let expected: ManifestEntry = serde_json::from_str(text).unwrap();
        match read(&format!("{text},")) {
            PlainEntry::Read(entry, len) => {
                proptest::prop_assert_eq!(len, text.len());
                proptest::prop_assert_eq!(
                    crate::arbitrary::as_json(&[entry]),
                    crate::arbitrary::as_json(&[expected])
                );
                Ok(true)
            }
            PlainEntry::Other => Ok(false),
            PlainEntry::Incomplete => Err(proptest::test_runner::TestCaseError::fail(
                "a whole entry read as incomplete",
            )),
        }
    }

    proptest::proptest! {
        #[test]
        fn the_plain_reader_agrees_with_serde(entry in crate::arbitrary::manifest_entry()) {
            let mut go_id = Vec::new();
            crate::go_json::append_string(&mut go_id, &entry.id);
            let forms = [
                (serde_json::to_string(&entry).unwrap(), serde_json::to_string(&entry.id).unwrap()),
                (go_form(&entry), String::from_utf8(go_id).unwrap()),
            ];
            // The plain form is any entry whose ID needs no escape, whatever labels and data hold.
            for (text, id_literal) in forms {
                let was_read = agrees_with_serde(&text)?;
                proptest::prop_assert_eq!(was_read, !id_literal.contains('\\'), "{}", text);
            }
        }

        #[test]
        fn every_cut_of_any_entry_is_incomplete_or_other(
            entry in crate::arbitrary::manifest_entry(),
            cut in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let text = go_form(&entry);
            let cut = cut.index(text.len());
            if text.is_char_boundary(cut) {
                proptest::prop_assert!(!matches!(read(&text[..cut]), PlainEntry::Read(..)));
            }
        }
    }
}
