//! Text from a repository made safe to show on a terminal: anyone who can write the repository
//! writes titles, messages, details, hosts and IDs, and a raw ESC, OSC 8 hyperlink or
//! right-to-left override in them would clear the screen, plant links or make a line read
//! differently from what it says. Every such character is replaced by a visible escape
//! (`\x1b`, `\u{202e}`); everything else passes unchanged. JSON output is exact and does not go
//! through here.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Unicode `Cf` (format) characters, plus the line and paragraph separators (`Zl`, `Zp`) that
/// break lines in some terminals: ranges from Unicode 15's `DerivedGeneralCategory.txt`. They
/// are invisible, reorder text (bidi overrides and isolates, U+061C) or hide it (zero-width
/// characters, tag characters).
const FORMAT_RANGES: &[(u32, u32)] = &[
    (0x00AD, 0x00AD),
    (0x0600, 0x0605),
    (0x061C, 0x061C),
    (0x06DD, 0x06DD),
    (0x070F, 0x070F),
    (0x0890, 0x0891),
    (0x08E2, 0x08E2),
    (0x180E, 0x180E),
    (0x200B, 0x200F),
    (0x2028, 0x202E),
    (0x2060, 0x2064),
    (0x2066, 0x206F),
    (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB),
    (0x110BD, 0x110BD),
    (0x110CD, 0x110CD),
    (0x13430, 0x1343F),
    (0x1BCA0, 0x1BCA3),
    (0x1D173, 0x1D17A),
    (0xE0001, 0xE0001),
    (0xE0020, 0xE007F),
];

/// Whether `c` is a format character (bidi control, zero-width, BOM, tag…), see
/// [`FORMAT_RANGES`].
pub fn is_format(c: char) -> bool {
    let c = u32::from(c);
    FORMAT_RANGES
        .iter()
        .any(|&(first, last)| (first..=last).contains(&c))
}

/// Whether `c` must not reach a terminal as it is in one-line text: C0 and C1 controls, DEL,
/// and format characters.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || is_format(c)
}

/// One-line text (a title, host, ID, label): every unsafe character escaped, newlines and
/// tabs included.
pub fn line(text: &str) -> Cow<'_, str> {
    escape(text, is_unsafe)
}

/// Multi-line text (a message, details): like [`line`] but newlines and tabs stay.
pub fn text(text: &str) -> Cow<'_, str> {
    escape(text, |c| c != '\n' && c != '\t' && is_unsafe(c))
}

fn escape(text: &str, unsafe_char: impl Fn(char) -> bool) -> Cow<'_, str> {
    if !text.chars().any(&unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
        } else if c.is_control() {
            // C0, DEL, C1: `\x1b`, `\x7f`, `\x9b`.
            let _ = write!(out, "\\x{:02x}", u32::from(c));
        } else {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        for plain in ["Backup disk full", "Sauvegarde échouée — 東京", "a\\x1b"] {
            assert!(matches!(line(plain), Cow::Borrowed(t) if t == plain));
        }
        assert!(matches!(text("a\n\tb"), Cow::Borrowed("a\n\tb")));
    }

    #[test]
    fn terminal_controls_are_escaped() {
        assert_eq!(line("\u{1b}[2Jgone"), "\\x1b[2Jgone");
        assert_eq!(
            line("\u{1b}]8;;https://evil\u{7}click\u{1b}]8;;\u{7}"),
            "\\x1b]8;;https://evil\\x07click\\x1b]8;;\\x07"
        );
        assert_eq!(line("a\u{7f}b\u{9b}c\u{0}"), "a\\x7fb\\x9bc\\x00");
        assert_eq!(line("a\nb\tc\rd"), "a\\x0ab\\x09c\\x0dd");
        assert_eq!(text("a\nb\tc\rd\u{1b}"), "a\nb\tc\\x0dd\\x1b");
    }

    #[test]
    fn bidi_and_invisible_characters_are_escaped() {
        assert_eq!(line("abc\u{202e}fdp.exe"), "abc\\u{202e}fdp.exe");
        for (c, shown) in [
            ('\u{200b}', "\\u{200b}"),
            ('\u{200f}', "\\u{200f}"),
            ('\u{202a}', "\\u{202a}"),
            ('\u{2066}', "\\u{2066}"),
            ('\u{2069}', "\\u{2069}"),
            ('\u{feff}', "\\u{feff}"),
            ('\u{061c}', "\\u{61c}"),
            ('\u{00ad}', "\\u{ad}"),
            ('\u{2028}', "\\u{2028}"),
            ('\u{e0041}', "\\u{e0041}"),
        ] {
            assert!(is_format(c), "{c:?}");
            assert_eq!(text(&c.to_string()), shown);
        }
        assert!(!is_format('a') && !is_format('é') && !is_format('\u{2030}'));
    }
}
