//! Go's `encoding/json` output where Kopia's CLI prints JSON that ours must match byte for byte:
//! `json.Marshal` escapes `<`, `>` and `&` (HTML-safe), U+2028 and U+2029, and control
//! characters (`\b`, `\f`, `\n`, `\r`, `\t` short, the rest as `\u00XX`).

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
