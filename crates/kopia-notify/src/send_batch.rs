//! `kopia-notify send --batch FILE|-`: many notifications from JSON Lines, one object per line
//! with `severity`, `to`, `title` and optionally `message`, `details`, `link`, `expiresIn`.
//! Every line is checked before anything is written (an error names its line), then all are
//! written at once: one pack, one index, so a thousand notifications cost one write.

use std::io::Read;
use std::path::Path;

use anyhow::{anyhow, Context, Result};
use chrono::{DateTime, Utc};
use kopia_notifications::duration::parse_duration;
use kopia_notifications::{Draft, Origin};
use serde::Deserialize;

/// One line of a batch. Unknown fields are refused: a misspelt `mesage` must not vanish.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct BatchLine {
    severity: String,
    to: String,
    title: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(default)]
    link: Option<String>,
    #[serde(default)]
    expires_in: Option<String>,
}

/// Reads the batch from `path` (`-` for standard input).
pub fn read_batch(path: &Path) -> Result<String> {
    let mut bytes = Vec::new();
    if path == Path::new("-") {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("cannot read the batch from standard input")?;
    } else {
        bytes = std::fs::read(path)
            .with_context(|| format!("cannot read batch file {}", path.display()))?;
    }
    String::from_utf8(bytes).map_err(|_| anyhow!("batch {} is not UTF-8 text", path.display()))
}

/// The drafts of every non-blank line, each checked as `send` checks one (severity,
/// recipient, title, link and sizes at `now`); the first bad line is the error.
pub fn parse_batch(text: &str, origin: &Origin, now: DateTime<Utc>) -> Result<Vec<Draft>> {
    let mut drafts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let draft =
            parse_line(line, origin, now).with_context(|| format!("batch line {number}"))?;
        drafts.push(draft);
    }
    if drafts.is_empty() {
        return Err(anyhow!("the batch holds no notification"));
    }
    Ok(drafts)
}

fn parse_line(line: &str, origin: &Origin, now: DateTime<Utc>) -> Result<Draft> {
    let fields: BatchLine = serde_json::from_str(line)?;
    let mut draft = Draft::new(
        fields.severity.parse()?,
        fields.to.parse()?,
        &fields.title,
        origin.clone(),
    );
    draft.message = fields.message.unwrap_or_default();
    draft.details = fields.details.unwrap_or_default();
    draft.link = fields.link;
    draft.expires_in = fields
        .expires_in
        .as_deref()
        .map(parse_duration)
        .transpose()?;
    draft.to_manifest(now)?;
    Ok(draft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use kopia_notifications::{Recipient, Severity};

    fn origin() -> Origin {
        Origin {
            user: "alice@laptop".parse().unwrap(),
            command: Some("kopia-notify send".into()),
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 12, 0, 0).unwrap()
    }

    #[test]
    fn reads_every_line_with_its_optional_fields() {
        let text = concat!(
            r#"{"severity":"error","to":"all","title":"Backup failed"}"#,
            "\n\n",
            r#"{"severity":"warning","to":"bob@desk","title":"Disk 91% full","message":"m","details":"d","link":"https://example.com/","expiresIn":"2d"}"#,
            "\n"
        );
        let drafts = parse_batch(text, &origin(), now()).unwrap();
        assert_eq!(drafts.len(), 2);
        assert_eq!(drafts[0].severity, Severity::Error);
        assert_eq!(drafts[0].recipient, Recipient::All);
        assert_eq!(
            drafts[1].recipient,
            Recipient::User("bob@desk".parse().unwrap())
        );
        assert_eq!(
            (drafts[1].message.as_str(), drafts[1].details.as_str()),
            ("m", "d")
        );
        assert_eq!(drafts[1].expires_in, Some(chrono::Duration::days(2)));
        assert_eq!(drafts[1].origin, origin());
    }

    #[test]
    fn a_bad_line_is_named_and_nothing_is_accepted() {
        let good = r#"{"severity":"error","to":"all","title":"ok"}"#;
        for (bad, why) in [
            (r#"{"severity":"loud","to":"all","title":"t"}"#, "loud"),
            (
                r#"{"severity":"error","to":"nobody","title":"t"}"#,
                "nobody",
            ),
            (r#"{"severity":"error","to":"all"}"#, "title"),
            (
                r#"{"severity":"error","to":"all","title":"t","mesage":"x"}"#,
                "mesage",
            ),
            (
                r#"{"severity":"error","to":"all","title":"t","expiresIn":"soon"}"#,
                "soon",
            ),
            (
                r#"{"severity":"error","to":"all","title":"t","link":"javascript:x"}"#,
                "link",
            ),
            ("not json", "expected"),
        ] {
            let text = format!("{good}\n{good}\n{bad}\n{good}\n");
            let error = format!("{:#}", parse_batch(&text, &origin(), now()).unwrap_err());
            assert!(error.starts_with("batch line 3: "), "{error}");
            assert!(error.to_lowercase().contains(why), "{why}: {error}");
        }
        let error = parse_batch("\n  \n", &origin(), now()).unwrap_err();
        assert!(error.to_string().contains("no notification"), "{error}");
    }
}
