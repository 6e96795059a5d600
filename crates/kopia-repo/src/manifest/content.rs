//! Manifest contents: gzip of `{"entries":[…]}`, as Kopia's JSON encoder writes them.
//!
//! Kopia compacts a repository's manifests into one content, tens of MB of JSON on a large
//! repository. Such a content is inflated on a helper thread, chunk by chunk, while this one
//! parses the entries already inflated: the two overlap, and the JSON is never held whole.
//! Entries are read in the plain form Go writes (`plain_entry.rs`), others through serde.
//! Anything but the plain `{"entries":[…]}` goes to serde's whole-buffer decoder, which also
//! words the errors.

use std::io::Read;
use std::sync::mpsc;

use serde::{Deserialize, Serialize};

use super::plain_entry::{ends_early, PlainEntry, PlainEntryReader};
use super::ManifestEntry;
use crate::compression::{self, MAX_DECOMPRESSED_LEN};
use crate::DecodeError;

#[derive(Deserialize)]
struct ManifestContent {
    #[serde(alias = "Entries")]
    entries: Vec<ManifestEntry>,
}

#[derive(Serialize)]
struct ManifestContentRef<'a> {
    entries: &'a [ManifestEntry],
}

/// Compressed contents at least this large are decoded while they are inflated.
const STREAMING_MIN_PAYLOAD: usize = 128 << 10;
/// Inflated bytes handed from the inflating thread to the parser at a time.
const INFLATE_CHUNK: usize = 256 << 10;

/// Encodes entries as a manifest content payload, as Kopia's JSON encoder and gzip write it.
pub fn encode_manifest_content(entries: &[ManifestEntry]) -> Vec<u8> {
    let mut json = serde_json::to_vec(&ManifestContentRef { entries }).expect("entries serialize");
    json.push(b'\n');
    compression::gzip(&json)
}

/// Decodes a manifest content payload: gzip of `{"entries":[…]}`. Entries with equal labels
/// share them.
pub fn decode_manifest_content(payload: &[u8]) -> Result<Vec<ManifestEntry>, DecodeError> {
    let streamed = if payload.len() >= STREAMING_MIN_PAYLOAD {
        decode_streaming(payload, INFLATE_CHUNK)
    } else {
        None
    };
    let entries = match streamed {
        Some(entries) => entries,
        None => decode_buffered(payload)?,
    };
    if entries.iter().any(|entry| entry.id.is_empty()) {
        return Err(DecodeError::new("manifest entry without an id"));
    }
    Ok(entries)
}

fn decode_buffered(payload: &[u8]) -> Result<Vec<ManifestEntry>, DecodeError> {
    let json = compression::gunzip(payload)?;
    let mut parse = EntriesParse::default();
    // After the closing brace only whitespace is left unparsed.
    if parse.advance(&json).is_some() {
        if let Some(entries) = parse.finish() {
            return Ok(entries);
        }
    }
    Ok(serde_json::from_slice::<ManifestContent>(&json)
        .map_err(|e| DecodeError::new(format!("invalid manifest content JSON: {e}")))?
        .entries)
}

/// The entries of a content in exactly the shape `{"entries":[…]}` (whitespace allowed), or
/// `None` for anything else (other keys, invalid JSON, a bad gzip stream): those are left to
/// [`decode_buffered`].
fn decode_streaming(payload: &[u8], chunk_len: usize) -> Option<Vec<ManifestEntry>> {
    std::thread::scope(|scope| {
        let (inflated, chunks) = mpsc::sync_channel(4);
        let (recycled, spare_buffers) = mpsc::channel();
        scope.spawn(move || inflate_in_chunks(payload, chunk_len, &inflated, &spare_buffers));
        // The parser owns the receiving ends: when it gives up early they are dropped, and the
        // inflating thread stops at its next send.
        let (entries, parsed) = parse_chunks(chunks, recycled);
        tracing::trace!(inflated_bytes_parsed = parsed, "streamed manifest content");
        entries
    })
}

type Chunk = Result<Vec<u8>, ()>;

/// Sends the inflated payload in chunks of up to `chunk_len` bytes; `Err` when the gzip stream
/// is bad or too large. Buffers come back through `spare_buffers` for reuse.
fn inflate_in_chunks(
    payload: &[u8],
    chunk_len: usize,
    inflated: &mpsc::SyncSender<Chunk>,
    spare_buffers: &mpsc::Receiver<Vec<u8>>,
) {
    let mut reader = compression::gunzip_reader(payload);
    let mut total = 0usize;
    loop {
        let mut buffer = spare_buffers.try_recv().unwrap_or_default();
        buffer.clear();
        let read = (&mut reader)
            .take(chunk_len as u64)
            .read_to_end(&mut buffer);
        let chunk = match read {
            Ok(0) => return,
            Ok(len) if total + len <= MAX_DECOMPRESSED_LEN => {
                total += len;
                Ok(buffer)
            }
            _ => Err(()),
        };
        let failed = chunk.is_err();
        if inflated.send(chunk).is_err() || failed {
            return;
        }
    }
}

/// Where the parser is in `{"entries":[…]}`.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
enum Expect {
    /// `{"entries":[` (or `"Entries"`).
    #[default]
    Opening,
    /// The first entry, or `]` of an empty list.
    FirstEntry,
    /// `,` before another entry, or `]`.
    Separator,
    /// An entry after a `,`.
    Entry,
    /// `}`, then nothing but whitespace.
    Closing,
    Done,
}

/// A parse of `{"entries":[…]}` fed its text in pieces.
#[derive(Default)]
struct EntriesParse {
    expect: Expect,
    entries: Vec<ManifestEntry>,
    plain: PlainEntryReader,
}

impl EntriesParse {
    /// Parses `text` as far as it holds whole tokens and entries; returns how many bytes it
    /// used (the rest must come again with what follows), or `None` when the text is not of
    /// the shape.
    fn advance(&mut self, text: &[u8]) -> Option<usize> {
        let mut at = 0;
        loop {
            let rest = &text[at..];
            let skipped = rest.iter().take_while(|b| b.is_ascii_whitespace()).count();
            let rest = &rest[skipped..];
            let Some(&next) = rest.first() else {
                return Some(at);
            };
            match self.expect {
                Expect::Opening => match opening_len(rest)? {
                    Some(len) => {
                        at += skipped + len;
                        self.expect = Expect::FirstEntry;
                    }
                    None => return Some(at),
                },
                Expect::FirstEntry if next == b']' => {
                    at += skipped + 1;
                    self.expect = Expect::Closing;
                }
                Expect::FirstEntry | Expect::Entry => {
                    let (entry, len) = match self.plain.read(rest) {
                        PlainEntry::Read(entry, len) => (entry, len),
                        PlainEntry::Incomplete => return Some(at),
                        PlainEntry::Other => {
                            let mut stream = serde_json::Deserializer::from_slice(rest).into_iter();
                            match stream.next()? {
                                Ok(entry) => (entry, stream.byte_offset()),
                                Err(e) if ends_early(rest, &e) => return Some(at),
                                Err(_) => return None,
                            }
                        }
                    };
                    self.entries.push(entry);
                    at += skipped + len;
                    self.expect = Expect::Separator;
                }
                Expect::Separator => {
                    at += skipped + 1;
                    self.expect = match next {
                        b',' => Expect::Entry,
                        b']' => Expect::Closing,
                        _ => return None,
                    };
                }
                Expect::Closing if next == b'}' => {
                    at += skipped + 1;
                    self.expect = Expect::Done;
                }
                Expect::Closing | Expect::Done => return None,
            }
        }
    }

    /// The entries, when the text so far was the whole content.
    fn finish(self) -> Option<Vec<ManifestEntry>> {
        (self.expect == Expect::Done).then_some(self.entries)
    }
}

/// Parses the chunks as they come; returns the entries (`None`: not of the shape) and how many
/// bytes were handed to the parser in all.
///
/// An entry cut by a chunk boundary is parsed again from its start with the next text. An
/// entry's size is up to its writer, so that must not happen once per chunk (quadratic in the
/// entry's length): the text left over is parsed again only once it has doubled, which keeps
/// the bytes parsed under about three times the content's length.
fn parse_chunks(
    chunks: mpsc::Receiver<Chunk>,
    recycled: mpsc::Sender<Vec<u8>>,
) -> (Option<Vec<ManifestEntry>>, usize) {
    let mut parse = EntriesParse::default();
    let mut pending: Vec<u8> = Vec::new();
    let mut parsed = 0usize;
    // Parse again once `pending` holds at least this many bytes.
    let mut retry_at = 0usize;
    // Before the last chunk, a character cut by the chunk boundary waits for its other bytes:
    // serde would call its first bytes invalid, not incomplete.
    let mut advance = |parse: &mut EntriesParse, pending: &mut Vec<u8>, last: bool| {
        let whole = if last {
            pending.len()
        } else {
            complete_utf8_len(pending)
        };
        parsed += whole;
        let used = parse.advance(&pending[..whole])?;
        pending.drain(..used);
        Some(pending.len().saturating_mul(2))
    };
    loop {
        match chunks.recv() {
            Ok(Ok(chunk)) => {
                pending.extend_from_slice(&chunk);
                let _ = recycled.send(chunk);
                if pending.len() >= retry_at {
                    match advance(&mut parse, &mut pending, false) {
                        Some(next) => retry_at = next,
                        None => return (None, parsed),
                    }
                }
            }
            Ok(Err(())) => return (None, parsed),
            Err(mpsc::RecvError) => {
                // What was held back is parsed now; after the closing brace only whitespace
                // is left.
                if !pending.is_empty() && advance(&mut parse, &mut pending, true).is_none() {
                    return (None, parsed);
                }
                return (parse.finish(), parsed);
            }
        }
    }
}

/// The length of `bytes` without a UTF-8 sequence cut short at its end.
fn complete_utf8_len(bytes: &[u8]) -> usize {
    // The last character starts at most 3 bytes from the end; continuation bytes are 10xxxxxx.
    for back in 1..=bytes.len().min(4) {
        let lead = bytes[bytes.len() - back];
        if lead & 0xc0 == 0x80 {
            continue;
        }
        let needed = match lead {
            0x00..=0x7f => 1,
            0xc0..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        };
        return if back < needed {
            bytes.len() - back
        } else {
            bytes.len()
        };
    }
    bytes.len()
}

/// The length of `{"entries":[` at the start of `text` (whitespace allowed between the tokens);
/// `Some(None)` when more bytes are needed to tell, `None` when it is something else.
fn opening_len(text: &[u8]) -> Option<Option<usize>> {
    let mut at = 0;
    for token in [&b"{"[..], b"\"", b"entries\"", b":", b"["] {
        while text.get(at).is_some_and(u8::is_ascii_whitespace) && token != b"entries\"" {
            at += 1;
        }
        let available = &text[at.min(text.len())..];
        let matches = |expected: &[u8]| {
            let n = available.len().min(expected.len());
            available[..n] == expected[..n]
        };
        let token_matches = if token == b"entries\"" {
            matches(token) || matches(b"Entries\"")
        } else {
            matches(token)
        };
        if !token_matches {
            return None;
        }
        if available.len() < token.len() {
            return Some(None);
        }
        at += token.len();
    }
    Some(Some(at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{LabelList, Labels};
    use chrono::{TimeZone, Utc};
    use serde_json::value::RawValue;

    fn entries(count: usize) -> Vec<ManifestEntry> {
        (0..count)
            .map(|n| {
                let labels: Labels = [
                    ("type".to_string(), "notification".to_string()),
                    (
                        "severity".to_string(),
                        ["normal", "warning", "error"][n % 3].to_string(),
                    ),
                ]
                .into();
                ManifestEntry {
                    id: format!("{n:032x}"),
                    labels: if n % 7 == 3 {
                        LabelList::default()
                    } else {
                        LabelList::from(&labels)
                    },
                    modified: Utc.timestamp_nanos(1_700_000_000_000_000_000 + n as i64 * 1_001),
                    deleted: n % 7 == 3,
                    data: RawValue::from_string(if n % 7 == 3 {
                        "null".to_string()
                    } else {
                        format!(r#"{{"title":"entry \"{n}\" ]}},{{","list":[1,{{"a":[]}}]}}"#)
                    })
                    .unwrap(),
                }
            })
            .collect()
    }

    fn as_json(entries: &[ManifestEntry]) -> String {
        serde_json::to_string(entries).unwrap()
    }

    #[test]
    fn streaming_decodes_what_the_buffered_decoder_does_at_any_chunk_size() {
        let written = entries(300);
        let payload = encode_manifest_content(&written);
        for chunk_len in [1, 7, 64, 1000, 1 << 20] {
            let streamed = decode_streaming(&payload, chunk_len).expect("plain shape streams");
            assert_eq!(
                as_json(&streamed),
                as_json(&written),
                "chunks of {chunk_len}"
            );
        }
        assert_eq!(
            as_json(&decode_buffered(&payload).unwrap()),
            as_json(&written)
        );
    }

    /// Feeds `json` to [`parse_chunks`] in chunks of `chunk_len`; returns what it parsed.
    fn parse_in_chunks(json: &[u8], chunk_len: usize) -> (Option<Vec<ManifestEntry>>, usize) {
        let (sender, chunks) = mpsc::sync_channel(json.len() / chunk_len + 1);
        for chunk in json.chunks(chunk_len) {
            sender.send(Ok(chunk.to_vec())).unwrap();
        }
        drop(sender);
        let (recycled, _spare) = mpsc::channel();
        parse_chunks(chunks, recycled)
    }

    /// One entry of 2 MiB arriving in 1 KiB chunks: re-parsing it from its start on every
    /// chunk would hand the parser about 2 GiB; resuming by doubling stays within 3× the text.
    #[test]
    fn a_huge_entry_cut_into_many_chunks_is_parsed_in_linear_work() {
        for (kind, big) in [
            ("string", format!("\"{}\"", "x".repeat(2 << 20))),
            ("array", format!("[{}0]", "1,".repeat(1 << 20))),
        ] {
            let mut written = entries(3);
            written[1].data = RawValue::from_string(big).unwrap();
            let json = serde_json::to_vec(&ManifestContentRef { entries: &written }).unwrap();
            let chunk_len = 1024;
            let (parsed_entries, parsed) = parse_in_chunks(&json, chunk_len);
            assert_eq!(
                as_json(&parsed_entries.expect("decodes")),
                as_json(&written),
                "{kind}"
            );
            assert!(
                parsed <= 3 * json.len() + chunk_len,
                "{kind}: parsed {parsed} bytes of a {}-byte content",
                json.len()
            );
        }
        // Many small entries are parsed about once each.
        let written = entries(2_000);
        let json = serde_json::to_vec(&ManifestContentRef { entries: &written }).unwrap();
        let (parsed_entries, parsed) = parse_in_chunks(&json, 4096);
        assert_eq!(parsed_entries.unwrap().len(), 2_000);
        assert!(parsed <= 2 * json.len(), "{parsed} of {}", json.len());
    }

    #[test]
    fn entries_in_other_forms_decode_among_plain_ones() {
        let written = entries(40);
        let mut texts: Vec<String> = written
            .iter()
            .map(|entry| serde_json::to_string(entry).unwrap())
            .collect();
        // What serde reads but the plain form does not: other key orders, whitespace, escapes.
        texts[3] = texts[3].replacen("{\"id\":", "{ \"id\" :", 1);
        texts[10] = serde_json::to_string_pretty(&written[10]).unwrap();
        texts[17] = texts[17].replacen("\"id\":\"", "\"id\":\"\\u0030", 1);
        let json = format!("{{\"entries\":[{}]}}", texts.join(","));
        let payload = compression::gzip(json.as_bytes());
        let expected: ManifestContent = serde_json::from_str(&json).unwrap();
        assert_eq!(expected.entries[17].id, format!("0{}", written[17].id));
        for decoded in [
            decode_streaming(&payload, 64).expect("plain shape streams"),
            decode_buffered(&payload).unwrap(),
        ] {
            assert_eq!(as_json(&decoded), as_json(&expected.entries));
        }
    }

    #[test]
    fn whitespace_the_old_key_spelling_and_empty_lists_stream() {
        let one = serde_json::to_string(&entries(1)[0]).unwrap();
        for json in [
            format!(" {{ \"entries\" : [ {one} ,\n {one} ] }} \n"),
            format!("{{\"Entries\":[{one}]}}"),
            "{\"entries\":[]}\n".to_string(),
        ] {
            let payload = compression::gzip(json.as_bytes());
            let buffered = decode_buffered(&payload).unwrap();
            let streamed = decode_streaming(&payload, 3).expect(&json);
            assert_eq!(as_json(&streamed), as_json(&buffered), "{json}");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_buffered_decoder() {
        let one = serde_json::to_string(&entries(1)[0]).unwrap();
        for json in [
            format!("{{\"entries\":[{one}],\"other\":1}}"),
            format!("{{\"other\":1,\"entries\":[{one}]}}"),
            "{\"entries\":[],\"entries\":[]}".to_string(),
            format!("{{\"entries\":[{one}]}} trailing"),
            format!("{{\"entries\":[{one},]}}"),
            format!("{{\"entries\":[{one}"),
            format!(
                "{{\"entries\":[{}]}}",
                one.replace("\"modified\":\"", "\"modified\":5,\"x\":\"")
            ),
            "[]".to_string(),
        ] {
            let payload = compression::gzip(json.as_bytes());
            assert!(decode_streaming(&payload, 5).is_none(), "{json}");
        }
        let mut truncated = encode_manifest_content(&entries(50));
        truncated.truncate(truncated.len() - 9);
        assert!(decode_streaming(&truncated, 64).is_none());
        assert!(decode_streaming(b"not gzip at all", 64).is_none());
    }

    #[test]
    fn large_contents_decode_through_the_public_entry_point() {
        let written = entries(20_000);
        let payload = encode_manifest_content(&written);
        assert!(payload.len() >= STREAMING_MIN_PAYLOAD, "{}", payload.len());
        assert_eq!(
            as_json(&decode_manifest_content(&payload).unwrap()),
            as_json(&written)
        );
        // An entry without an id fails the content, streamed or not.
        let json = String::from_utf8(compression::gunzip(&payload).unwrap()).unwrap();
        let bad = json.replacen(&format!("\"id\":\"{:032x}\"", 19_999), "\"id\":\"\"", 1);
        let err = decode_manifest_content(&compression::gzip(bad.as_bytes())).unwrap_err();
        assert!(err.to_string().contains("without an id"), "{err}");
    }

    /// Found by the round-trip property: a number (serde calls `-7.` at the end of its input
    /// invalid, not incomplete) or a character of several bytes cut by a chunk boundary made
    /// the stream give up, in plain entries and in those serde reads (an escaped ID).
    #[test]
    fn numbers_and_characters_cut_by_a_chunk_boundary_still_stream() {
        let mut written = entries(3);
        written[0].data = RawValue::from_string("-7.836844524106203e+299".into()).unwrap();
        written[1].id = "\u{1f600}\n✓".into();
        written[1].data =
            RawValue::from_string(r#"{"é😀✓":[-7.8e+299,2440562131298013900]}"#.into()).unwrap();
        let payload = encode_manifest_content(&written);
        for chunk_len in 1..60 {
            let streamed = decode_streaming(&payload, chunk_len);
            assert_eq!(
                as_json(&streamed.expect("streams")),
                as_json(&written),
                "chunks of {chunk_len}"
            );
        }
        assert_eq!(complete_utf8_len("a😀".as_bytes()), 5);
        assert_eq!(complete_utf8_len(&"a😀".as_bytes()[..3]), 1);
        assert_eq!(complete_utf8_len(&"é".as_bytes()[..1]), 0);
        assert_eq!(complete_utf8_len(b""), 0);
    }

    proptest::proptest! {
        /// Whatever the entries hold, what is written reads back the same through the public
        /// entry point and through the streaming decoder at any chunk size.
        #[test]
        fn written_entries_read_back(
            written in proptest::collection::vec(crate::arbitrary::manifest_entry(), 1..12),
            chunk_len in 1usize..300,
        ) {
            let payload = encode_manifest_content(&written);
            let expected = crate::arbitrary::as_json(&written);
            let read = decode_manifest_content(&payload).unwrap();
            proptest::prop_assert_eq!(&crate::arbitrary::as_json(&read), &expected);
            let streamed = decode_streaming(&payload, chunk_len).expect("our own form streams");
            proptest::prop_assert_eq!(&crate::arbitrary::as_json(&streamed), &expected);
        }
    }
}
