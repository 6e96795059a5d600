//! Printing helpers shared by the commands: Go-compatible JSON indentation, timestamps, and
//! errors folded into one line.

use chrono::{DateTime, Local, Utc};
use kopia_notifications::inert;

/// Indents JSON text the way Go's `json.Indent(dst, src, "", "  ")` does: the tokens stay as
/// they are (key order, number spelling, escapes); only whitespace between them changes.
pub fn indent_json(compact: &str) -> String {
    let mut out = String::with_capacity(compact.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    // An opening bracket whose newline is held back until we know the container is not empty.
    let mut pending_open = false;
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    for c in compact.chars() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if pending_open {
            pending_open = false;
            if c != '}' && c != ']' {
                newline(&mut out, depth);
            } else {
                depth -= 1;
                out.push(c);
                continue;
            }
        }
        match c {
            '{' | '[' => {
                out.push(c);
                depth += 1;
                pending_open = true;
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            '"' => {
                in_string = true;
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    out
}

/// `2006-01-02 15:04:05 MST` in local time, as Kopia prints timestamps.
pub fn local_timestamp(t: &DateTime<Utc>) -> String {
    let local = t.with_timezone(&Local);
    let zone = if local.offset().local_minus_utc() == 0 {
        "UTC".to_string()
    } else {
        local.format("%:z").to_string()
    };
    format!("{} {zone}", local.format("%Y-%m-%d %H:%M:%S"))
}

/// The error and its causes on one line, without repeating a cause already in the message.
/// Errors quote repository text (manifest IDs, labels), so what is left is made inert.
pub fn one_line(error: &anyhow::Error) -> String {
    let mut line = error.to_string();
    for cause in error.chain().skip(1) {
        let text = cause.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
    }
    inert::line(&line.replace('\n', " ")).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indents_like_go_json_indent() {
        assert_eq!(
            indent_json(r#"{"a":[1,2],"b":{},"c":[],"d":"x,{y}\"z"}"#),
            "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": {},\n  \"c\": [],\n  \"d\": \"x,{y}\\\"z\"\n}"
        );
        assert_eq!(indent_json("5"), "5");
    }

    #[test]
    fn one_line_joins_causes() {
        let error = anyhow::anyhow!("inner").context("outer");
        assert_eq!(one_line(&error), "outer: inner");
        let hostile = anyhow::anyhow!("no manifest \u{1b}[2J\u{202e}x").context("show");
        assert_eq!(one_line(&hostile), "show: no manifest \\x1b[2J\\u{202e}x");
    }
}
