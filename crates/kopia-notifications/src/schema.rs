//! The stored form of notifications and acknowledgements (schema version 1): manifest labels,
//! JSON payloads, validation of what we write and tolerant parsing of what others wrote. Pure:
//! manifests in, domain values out. The spec for producers is docs/notification-format.md.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::duration::DEFAULT_EXPIRY;
use crate::identity::{Identity, Recipient};
use crate::store::{NewManifest, StoredManifest};
use crate::Error;

/// The schema version this code writes and the highest it reads.
pub const SCHEMA_VERSION: u32 = 1;

/// `type` label of a notification. Kopia's own types (`snapshot`, `policy`, `maintenance`,
/// `notificationProfile`, `notificationTemplate`, `user`, `acl`) never equal it: label filters
/// match whole values.
pub const NOTIFICATION_TYPE: &str = "notification";
/// `type` label of an acknowledgement.
pub const ACK_TYPE: &str = "notificationAck";

/// Label keys.
pub mod label {
    pub const TYPE: &str = "type";
    pub const SEVERITY: &str = "severity";
    pub const RECIPIENT: &str = "recipient";
    pub const SOURCE_KIND: &str = "sourceKind";
    pub const ORIGIN_HOST: &str = "originHost";
    pub const SCHEMA_VERSION: &str = "schemaVersion";
    /// On acknowledgements: the acknowledged notification's manifest ID.
    pub const NOTIFICATION_ID: &str = "notificationId";
    /// On acknowledgements: the acknowledging `user@host`.
    pub const USER: &str = "user";
}

/// Size limits, in characters (Unicode scalar values).
pub mod limits {
    pub const TITLE: usize = 200;
    pub const MESSAGE: usize = 4_000;
    pub const DETAILS: usize = 65_536;
    pub const LINK: usize = 2_048;
    pub const COMMAND: usize = 4_096;
    pub const SNAPSHOT_PATH: usize = 4_096;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Normal,
    Warning,
    Error,
}

impl Severity {
    /// The label and JSON spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Normal => "normal",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }

    /// How listings print it: `NORMAL`, `WARNING`, `ERROR`.
    pub fn shout(self) -> &'static str {
        match self {
            Severity::Normal => "NORMAL",
            Severity::Warning => "WARNING",
            Severity::Error => "ERROR",
        }
    }
}

impl FromStr for Severity {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "normal" => Ok(Severity::Normal),
            "warning" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            _ => Err(Error::InvalidSeverity(text.to_string())),
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What produced a notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Snapshot,
    Maintenance,
    Corruption,
    Upgrade,
    Custom,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Snapshot => "snapshot",
            SourceKind::Maintenance => "maintenance",
            SourceKind::Corruption => "corruption",
            SourceKind::Upgrade => "upgrade",
            SourceKind::Custom => "custom",
        }
    }
}

impl FromStr for SourceKind {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text {
            "snapshot" => Ok(SourceKind::Snapshot),
            "maintenance" => Ok(SourceKind::Maintenance),
            "corruption" => Ok(SourceKind::Corruption),
            "upgrade" => Ok(SourceKind::Upgrade),
            "custom" => Ok(SourceKind::Custom),
            _ => Err(Error::InvalidSourceKind(text.to_string())),
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A Kopia snapshot source, in Kopia's own JSON shape (`host`, `userName`, `path`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotSource {
    pub host: String,
    pub user_name: String,
    pub path: String,
}

impl fmt::Display for SnapshotSource {
    /// Kopia's spelling: `user@host:path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.user_name, self.host, self.path)
    }
}

/// Who wrote a notification, and with which command if known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    pub user: Identity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
}

/// A notification read from the repository.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    /// The manifest ID.
    pub id: String,
    pub severity: Severity,
    pub recipient: Recipient,
    pub source_kind: SourceKind,
    pub origin_host: Option<String>,
    pub title: String,
    pub message: String,
    pub details: String,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub created: DateTime<Utc>,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub expires: DateTime<Utc>,
    pub link: Option<String>,
    pub origin: Option<Origin>,
    pub snapshot_source: Option<SnapshotSource>,
    pub schema_version: u32,
}

/// The payload as stored. Optional fields may be missing or `null`; unknown fields are ignored.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct NotificationPayload {
    schema_version: u32,
    title: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    details: Option<String>,
    #[serde(with = "rfc3339")]
    created: DateTime<Utc>,
    #[serde(default, with = "rfc3339::optional")]
    expires: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<Origin>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    snapshot_source: Option<SnapshotSource>,
}

impl Notification {
    /// Reads a manifest of type `notification`. Any violation of the spec is an error naming
    /// the manifest ID, so that one bad manifest can be skipped and reported.
    pub fn from_manifest(manifest: &StoredManifest) -> Result<Self, Error> {
        let id = manifest.id.as_str();
        let labels = &manifest.labels;
        expect_type(manifest, NOTIFICATION_TYPE)?;
        let severity = required_label(manifest, label::SEVERITY)?
            .parse::<Severity>()
            .map_err(|e| Error::malformed(id, e.to_string()))?;
        let recipient = required_label(manifest, label::RECIPIENT)?
            .parse::<Recipient>()
            .map_err(|e| Error::malformed(id, e.to_string()))?;
        let source_kind = match labels.get(label::SOURCE_KIND) {
            Some(kind) => kind
                .parse::<SourceKind>()
                .map_err(|e| Error::malformed(id, e.to_string()))?,
            None => SourceKind::Custom,
        };
        let payload: NotificationPayload = serde_json::from_str(&manifest.data)
            .map_err(|e| Error::malformed(id, format!("payload: {e}")))?;
        check_schema_version(id, payload.schema_version)?;
        let notification = Notification {
            id: id.to_string(),
            severity,
            recipient,
            source_kind,
            origin_host: labels
                .get(label::ORIGIN_HOST)
                .filter(|host| valid_origin_host(id, host))
                .cloned(),
            title: payload.title,
            message: payload.message.unwrap_or_default(),
            details: payload.details.unwrap_or_default(),
            created: payload.created,
            expires: payload.expires.unwrap_or(payload.created + DEFAULT_EXPIRY),
            link: payload.link,
            origin: payload.origin,
            snapshot_source: payload.snapshot_source,
            schema_version: payload.schema_version,
        };
        validate_content(&Content::of(&notification))
            .map_err(|e| Error::malformed(id, e.to_string()))?;
        Ok(notification)
    }

    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires <= now
    }
}

/// What `send` is asked to write; [`Draft::to_manifest`] validates it.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub severity: Severity,
    pub recipient: Recipient,
    pub source_kind: SourceKind,
    pub title: String,
    pub message: String,
    pub details: String,
    pub link: Option<String>,
    /// Lifetime from creation; `None` means [`DEFAULT_EXPIRY`].
    pub expires_in: Option<Duration>,
    pub origin: Origin,
    pub snapshot_source: Option<SnapshotSource>,
}

impl Draft {
    /// A custom-source draft with an empty message and the default expiry.
    pub fn new(severity: Severity, recipient: Recipient, title: &str, origin: Origin) -> Self {
        Draft {
            severity,
            recipient,
            source_kind: SourceKind::Custom,
            title: title.to_string(),
            message: String::new(),
            details: String::new(),
            link: None,
            expires_in: None,
            origin,
            snapshot_source: None,
        }
    }

    /// The labels and payload to put: created `now`, expiring `now + expires_in`.
    pub fn to_manifest(&self, now: DateTime<Utc>) -> Result<NewManifest, Error> {
        let expires_in = self.expires_in.unwrap_or(DEFAULT_EXPIRY);
        if expires_in <= Duration::zero() || expires_in > crate::duration::MAX_EXPIRY {
            return Err(Error::InvalidDuration {
                text: format!("{}s", expires_in.num_seconds()),
                reason: "expiry must be positive and at most 3650 days",
            });
        }
        // Read-side rules let such titles through (old writers, other producers) and printing
        // escapes them; nothing we write has them.
        if let Some(c) = self.title.chars().find(|&c| crate::inert::is_format(c)) {
            return Err(Error::TitleFormatCharacter(c));
        }
        validate_content(&Content {
            title: &self.title,
            message: &self.message,
            details: &self.details,
            link: self.link.as_deref(),
            origin: Some(&self.origin),
            snapshot_source: self.snapshot_source.as_ref(),
        })?;
        let labels = BTreeMap::from([
            (label::TYPE.to_string(), NOTIFICATION_TYPE.to_string()),
            (label::SEVERITY.to_string(), self.severity.to_string()),
            (label::RECIPIENT.to_string(), self.recipient.to_string()),
            (label::SOURCE_KIND.to_string(), self.source_kind.to_string()),
            (
                label::ORIGIN_HOST.to_string(),
                self.origin.user.host.clone(),
            ),
            (
                label::SCHEMA_VERSION.to_string(),
                SCHEMA_VERSION.to_string(),
            ),
        ]);
        let payload = NotificationPayload {
            schema_version: SCHEMA_VERSION,
            title: self.title.clone(),
            message: Some(self.message.clone()),
            details: Some(self.details.clone()),
            created: now,
            expires: Some(now + expires_in),
            link: self.link.clone(),
            origin: Some(self.origin.clone()),
            snapshot_source: self.snapshot_source.clone(),
        };
        let data = serde_json::to_value(&payload)
            .map_err(|e| Error::malformed("(new notification)", e.to_string()))?;
        Ok(NewManifest { labels, data })
    }
}

/// The free-text parts of a notification, checked the same way on write and on read.
struct Content<'a> {
    title: &'a str,
    message: &'a str,
    details: &'a str,
    link: Option<&'a str>,
    origin: Option<&'a Origin>,
    snapshot_source: Option<&'a SnapshotSource>,
}

impl<'a> Content<'a> {
    fn of(notification: &'a Notification) -> Self {
        Content {
            title: &notification.title,
            message: &notification.message,
            details: &notification.details,
            link: notification.link.as_deref(),
            origin: notification.origin.as_ref(),
            snapshot_source: notification.snapshot_source.as_ref(),
        }
    }
}

fn validate_content(content: &Content<'_>) -> Result<(), Error> {
    if content.title.trim().is_empty() {
        return Err(Error::EmptyTitle);
    }
    if content.title.chars().any(char::is_control) {
        return Err(Error::TitleNotOneLine);
    }
    check_length("title", content.title, limits::TITLE)?;
    check_length("message", content.message, limits::MESSAGE)?;
    check_length("details", content.details, limits::DETAILS)?;
    if let Some(link) = content.link {
        validate_link(link)?;
    }
    if let Some(command) = content.origin.and_then(|o| o.command.as_deref()) {
        check_length("origin command", command, limits::COMMAND)?;
    }
    if let Some(source) = content.snapshot_source {
        check_length("snapshot source path", &source.path, limits::SNAPSHOT_PATH)?;
        check_length("snapshot source host", &source.host, limits::TITLE)?;
        check_length(
            "snapshot source user name",
            &source.user_name,
            limits::TITLE,
        )?;
    }
    Ok(())
}

/// The `originHost` label only informs (the writer's identity is in the payload): a value
/// that is not a host as identities spell them (no whitespace, controls, `@`, `:`, format
/// characters, at most 255 characters) is ignored rather than making the notification
/// unreadable.
fn valid_origin_host(id: &str, host: &str) -> bool {
    let valid = crate::identity::is_valid_host(host) && !host.chars().any(crate::inert::is_format);
    if !valid {
        tracing::debug!(manifest = %id, "ignoring invalid originHost label");
    }
    valid
}

fn check_length(field: &'static str, text: &str, max: usize) -> Result<(), Error> {
    let length = text.chars().count();
    if length > max {
        return Err(Error::TooLong { field, length, max });
    }
    Ok(())
}

/// Only absolute `http://` and `https://` links: a notification must not be a way to make a
/// desktop open `file:` or `javascript:` URLs.
pub fn validate_link(link: &str) -> Result<(), Error> {
    let invalid = |reason| {
        Err(Error::InvalidLink {
            link: link.to_string(),
            reason,
        })
    };
    check_length("link", link, limits::LINK)?;
    let lower = link.to_ascii_lowercase();
    let rest = if let Some(rest) = lower.strip_prefix("https://") {
        rest
    } else if let Some(rest) = lower.strip_prefix("http://") {
        rest
    } else {
        return invalid("only http:// and https:// links are allowed");
    };
    if link.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("it contains whitespace or control characters");
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() {
        return invalid("the host is missing");
    }
    Ok(())
}

/// An acknowledgement read from the repository: `user` has seen notification `notification_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Acknowledgement {
    /// The acknowledgement's own manifest ID.
    pub id: String,
    pub notification_id: String,
    pub user: Identity,
    #[serde(serialize_with = "rfc3339::serialize")]
    pub acknowledged_at: DateTime<Utc>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct AckPayload {
    schema_version: u32,
    notification_id: String,
    user: Identity,
    #[serde(with = "rfc3339")]
    acknowledged_at: DateTime<Utc>,
}

impl Acknowledgement {
    /// Reads a manifest of type `notificationAck`. The payload is authoritative; the labels
    /// only exist so that label filters can select acknowledgements.
    pub fn from_manifest(manifest: &StoredManifest) -> Result<Self, Error> {
        let id = manifest.id.as_str();
        expect_type(manifest, ACK_TYPE)?;
        let payload: AckPayload = serde_json::from_str(&manifest.data)
            .map_err(|e| Error::malformed(id, format!("payload: {e}")))?;
        check_schema_version(id, payload.schema_version)?;
        if payload.notification_id.is_empty() {
            return Err(Error::malformed(id, "payload: notificationId is empty"));
        }
        Ok(Acknowledgement {
            id: id.to_string(),
            notification_id: payload.notification_id,
            user: payload.user,
            acknowledged_at: payload.acknowledged_at,
        })
    }

    /// The manifest recording that `user` acknowledged `notification_id` at `now`.
    pub fn new_manifest(notification_id: &str, user: &Identity, now: DateTime<Utc>) -> NewManifest {
        let labels = BTreeMap::from([
            (label::TYPE.to_string(), ACK_TYPE.to_string()),
            (
                label::NOTIFICATION_ID.to_string(),
                notification_id.to_string(),
            ),
            (label::USER.to_string(), user.to_string()),
            (
                label::SCHEMA_VERSION.to_string(),
                SCHEMA_VERSION.to_string(),
            ),
        ]);
        let data = serde_json::json!({
            "schemaVersion": SCHEMA_VERSION,
            "notificationId": notification_id,
            "user": user.to_string(),
            "acknowledgedAt": rfc3339::format(&now),
        });
        NewManifest { labels, data }
    }
}

fn expect_type(manifest: &StoredManifest, expected: &str) -> Result<(), Error> {
    match manifest.labels.get(label::TYPE) {
        Some(kind) if kind == expected => Ok(()),
        Some(kind) => Err(Error::malformed(
            &manifest.id,
            format!("type is {kind:?}, expected {expected:?}"),
        )),
        None => Err(Error::malformed(&manifest.id, "label \"type\" is missing")),
    }
}

fn required_label<'a>(manifest: &'a StoredManifest, key: &str) -> Result<&'a str, Error> {
    manifest
        .labels
        .get(key)
        .map(String::as_str)
        .ok_or_else(|| Error::malformed(&manifest.id, format!("label {key:?} is missing")))
}

fn check_schema_version(id: &str, version: u32) -> Result<(), Error> {
    match version {
        0 => Err(Error::malformed(id, "schemaVersion 0 is not a version")),
        v if v > SCHEMA_VERSION => Err(Error::malformed(
            id,
            format!("schemaVersion {v} is newer than this reader (it knows {SCHEMA_VERSION})"),
        )),
        _ => Ok(()),
    }
}

/// Timestamps as RFC 3339 in UTC (`2022-05-19T10:00:00Z`, fractions only when present);
/// any RFC 3339 offset is accepted on read.
pub mod rfc3339 {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn format(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    pub fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
        DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
    }

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text)
            .map_err(|e| serde::de::Error::custom(format!("invalid timestamp {text:?}: {e}")))
    }

    pub mod optional {
        use super::*;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => super::serialize(t, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            match Option::<String>::deserialize(d)? {
                Some(text) => parse(&text).map(Some).map_err(|e| {
                    serde::de::Error::custom(format!("invalid timestamp {text:?}: {e}"))
                }),
                None => Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_fixtures::{alice, t0 as now};

    fn draft() -> Draft {
        Draft::new(
            Severity::Error,
            Recipient::All,
            "Maintenance failed on SOME_MACHINE",
            Origin {
                user: alice(),
                command: Some("kopia maintenance run".into()),
            },
        )
    }

    fn stored(id: &str, manifest: NewManifest) -> StoredManifest {
        StoredManifest {
            id: id.into(),
            labels: manifest.labels,
            modified: now(),
            data: manifest.data.to_string(),
        }
    }

    fn raw(id: &str, labels: &[(&str, &str)], data: &str) -> StoredManifest {
        StoredManifest {
            id: id.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            modified: now(),
            data: data.into(),
        }
    }

    const GOOD_LABELS: &[(&str, &str)] = &[
        ("type", "notification"),
        ("severity", "warning"),
        ("recipient", "*"),
    ];

    #[test]
    fn draft_becomes_labels_and_payload() {
        let mut d = draft();
        d.link = Some("https://kopia.io/docs".into());
        d.expires_in = Some(Duration::days(7));
        d.source_kind = SourceKind::Maintenance;
        let manifest = d.to_manifest(now()).unwrap();
        let labels: Vec<(&str, &str)> = manifest
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            [
                ("originHost", "laptop"),
                ("recipient", "*"),
                ("schemaVersion", "1"),
                ("severity", "error"),
                ("sourceKind", "maintenance"),
                ("type", "notification"),
            ]
        );
        assert_eq!(
            manifest.data,
            serde_json::json!({
                "schemaVersion": 1,
                "title": "Maintenance failed on SOME_MACHINE",
                "message": "",
                "details": "",
                "created": "2022-05-19T10:00:00Z",
                "expires": "2022-05-26T10:00:00Z",
                "link": "https://kopia.io/docs",
                "origin": {"user": "alice@laptop", "command": "kopia maintenance run"},
            })
        );
        let read = Notification::from_manifest(&stored("abc", manifest)).unwrap();
        assert_eq!(read.severity, Severity::Error);
        assert_eq!(read.recipient, Recipient::All);
        assert_eq!(read.source_kind, SourceKind::Maintenance);
        assert_eq!(read.expires, now() + Duration::days(7));
        assert_eq!(read.origin_host.as_deref(), Some("laptop"));
    }

    #[test]
    fn default_expiry_is_thirty_days() {
        let manifest = draft().to_manifest(now()).unwrap();
        assert_eq!(manifest.data["expires"], "2022-06-18T10:00:00Z");
    }

    #[test]
    fn snapshot_source_uses_kopias_shape() {
        let mut d = draft();
        d.snapshot_source = Some(SnapshotSource {
            host: "laptop".into(),
            user_name: "alice".into(),
            path: "/home/alice".into(),
        });
        let manifest = d.to_manifest(now()).unwrap();
        assert_eq!(
            manifest.data["snapshotSource"],
            serde_json::json!({"host": "laptop", "userName": "alice", "path": "/home/alice"})
        );
        let read = Notification::from_manifest(&stored("x", manifest)).unwrap();
        assert_eq!(
            read.snapshot_source.unwrap().to_string(),
            "alice@laptop:/home/alice"
        );
    }

    /// Titles other writers made with bidi or zero-width characters stay readable (printing
    /// escapes them); an `originHost` label that is no host is ignored, the rest is read.
    #[test]
    fn reading_tolerates_format_characters_and_ignores_bad_origin_hosts() {
        let mut manifest = draft().to_manifest(now()).unwrap();
        manifest.data["title"] = "invoice\u{202e}fdp.exe".into();
        let read = Notification::from_manifest(&stored("x", manifest.clone())).unwrap();
        assert_eq!(read.title, "invoice\u{202e}fdp.exe");
        assert_eq!(read.origin_host.as_deref(), Some("laptop"));
        for bad in [
            "",
            "two words",
            "evil\u{1b}[2J",
            "a@b",
            "host:1",
            "rtl\u{202e}lapt",
            "zw\u{200b}",
        ] {
            let mut m = manifest.clone();
            m.labels.insert(label::ORIGIN_HOST.into(), bad.into());
            let read = Notification::from_manifest(&stored("x", m)).unwrap();
            assert_eq!(read.origin_host, None, "{bad:?}");
        }
        let mut m = manifest;
        m.labels
            .insert(label::ORIGIN_HOST.into(), "nas.example.com".into());
        let read = Notification::from_manifest(&stored("x", m)).unwrap();
        assert_eq!(read.origin_host.as_deref(), Some("nas.example.com"));
    }

    #[test]
    fn validation_rejects_bad_drafts() {
        let check = |change: &dyn Fn(&mut Draft)| {
            let mut d = draft();
            change(&mut d);
            d.to_manifest(now()).unwrap_err()
        };
        assert!(matches!(
            check(&|d| d.title = "  ".into()),
            Error::EmptyTitle
        ));
        for (title, c) in [
            ("invoice\u{202e}fdp.exe", '\u{202e}'),
            ("zero\u{200b}width", '\u{200b}'),
            ("\u{feff}bom", '\u{feff}'),
            ("isolate\u{2066}x\u{2069}", '\u{2066}'),
            ("arabic\u{061c}mark", '\u{061c}'),
        ] {
            let error = check(&|d| d.title = title.into());
            assert!(
                matches!(error, Error::TitleFormatCharacter(found) if found == c),
                "{title:?}: {error}"
            );
        }
        assert!(matches!(
            check(&|d| d.title = "a\nb".into()),
            Error::TitleNotOneLine
        ));
        assert!(matches!(
            check(&|d| d.title = "x".repeat(201)),
            Error::TooLong {
                field: "title",
                length: 201,
                max: 200
            }
        ));
        assert!(matches!(
            check(&|d| d.message = "x".repeat(4001)),
            Error::TooLong {
                field: "message",
                ..
            }
        ));
        assert!(matches!(
            check(&|d| d.details = "x".repeat(65_537)),
            Error::TooLong {
                field: "details",
                ..
            }
        ));
        for link in [
            "ftp://x",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "https://",
            "http://a b",
            "kopia.io",
        ] {
            let error = check(&|d| d.link = Some(link.into()));
            assert!(
                matches!(&error, Error::InvalidLink { link: l, .. } if l == link),
                "{link}: {error}"
            );
        }
        assert!(matches!(
            check(&|d| d.expires_in = Some(Duration::zero())),
            Error::InvalidDuration { .. }
        ));
        // Multi-byte text is measured in characters, not bytes.
        let mut d = draft();
        d.title = "é".repeat(200);
        d.link = Some("HTTPS://Kopia.io/x?y#z".into());
        d.to_manifest(now()).unwrap();
    }

    #[test]
    fn parsing_tolerates_unknown_fields_and_missing_optional_ones() {
        let manifest = raw(
            "m1",
            &[
                ("type", "notification"),
                ("severity", "warning"),
                ("recipient", "bob@desk"),
                ("futureLabel", "x"),
            ],
            r#"{"schemaVersion":1,"title":"Disk almost full","created":"2022-05-19T12:00:00+02:00",
                "message":null,"extra":{"nested":[1,2]},"priority":7}"#,
        );
        let n = Notification::from_manifest(&manifest).unwrap();
        assert_eq!(n.title, "Disk almost full");
        assert_eq!(n.message, "");
        assert_eq!(n.created, now());
        assert_eq!(n.expires, now() + Duration::days(30));
        assert_eq!(n.source_kind, SourceKind::Custom);
        assert_eq!(n.origin, None);
        assert_eq!(n.recipient, Recipient::User("bob@desk".parse().unwrap()));
    }

    #[test]
    fn parsing_rejects_malformed_required_parts_naming_the_manifest() {
        let good_data = r#"{"schemaVersion":1,"title":"t","created":"2022-05-19T10:00:00Z"}"#;
        let cases: Vec<(StoredManifest, &str)> = vec![
            (raw("m1", &GOOD_LABELS[..2], good_data), "recipient"),
            (
                raw("m2", &[GOOD_LABELS[0], GOOD_LABELS[2]], good_data),
                "severity",
            ),
            (
                raw(
                    "m3",
                    &[
                        ("type", "notification"),
                        ("severity", "fatal"),
                        ("recipient", "*"),
                    ],
                    good_data,
                ),
                "fatal",
            ),
            (
                raw(
                    "m4",
                    &[
                        ("type", "notification"),
                        ("severity", "error"),
                        ("recipient", "nobody"),
                    ],
                    good_data,
                ),
                "nobody",
            ),
            (
                raw(
                    "m5",
                    GOOD_LABELS,
                    r#"{"schemaVersion":1,"created":"2022-05-19T10:00:00Z"}"#,
                ),
                "title",
            ),
            (
                raw(
                    "m6",
                    GOOD_LABELS,
                    r#"{"schemaVersion":1,"title":"t","created":"yesterday"}"#,
                ),
                "yesterday",
            ),
            (
                raw(
                    "m7",
                    GOOD_LABELS,
                    r#"{"schemaVersion":2,"title":"t","created":"2022-05-19T10:00:00Z"}"#,
                ),
                "newer",
            ),
            (
                raw(
                    "m8",
                    GOOD_LABELS,
                    r#"{"title":"t","created":"2022-05-19T10:00:00Z"}"#,
                ),
                "schemaVersion",
            ),
            (
                raw(
                    "m9",
                    GOOD_LABELS,
                    r#"{"schemaVersion":1,"title":"","created":"2022-05-19T10:00:00Z"}"#,
                ),
                "empty",
            ),
            (
                raw(
                    "m10",
                    GOOD_LABELS,
                    r#"{"schemaVersion":1,"title":"t","created":"2022-05-19T10:00:00Z","link":"file:///x"}"#,
                ),
                "link",
            ),
            (raw("m11", GOOD_LABELS, "not json"), "payload"),
            (raw("m12", &[("type", "snapshot")], good_data), "type"),
            (
                raw(
                    "m13",
                    &[
                        ("type", "notification"),
                        ("severity", "error"),
                        ("recipient", "*"),
                        ("sourceKind", "weather"),
                    ],
                    good_data,
                ),
                "weather",
            ),
            (
                raw(
                    "m14",
                    GOOD_LABELS,
                    r#"{"schemaVersion":1,"title":"t","created":"2022-05-19T10:00:00Z","origin":{"user":"nope"}}"#,
                ),
                "nope",
            ),
        ];
        for (manifest, needle) in cases {
            let error = Notification::from_manifest(&manifest).unwrap_err();
            let text = error.to_string();
            assert!(
                matches!(&error, Error::Malformed { id, .. } if *id == manifest.id),
                "{}: {text}",
                manifest.id
            );
            assert!(
                text.contains(needle),
                "{}: {text} lacks {needle}",
                manifest.id
            );
        }
    }

    #[test]
    fn acknowledgements_round_trip_and_reject_malformed() {
        let bob: Identity = "bob@desk".parse().unwrap();
        let manifest = Acknowledgement::new_manifest("n1", &bob, now());
        assert_eq!(manifest.labels["type"], "notificationAck");
        assert_eq!(manifest.labels["notificationId"], "n1");
        assert_eq!(manifest.labels["user"], "bob@desk");
        assert_eq!(
            manifest.data,
            serde_json::json!({"schemaVersion":1,"notificationId":"n1","user":"bob@desk","acknowledgedAt":"2022-05-19T10:00:00Z"})
        );
        let ack = Acknowledgement::from_manifest(&stored("a1", manifest)).unwrap();
        assert_eq!(ack.notification_id, "n1");
        assert_eq!(ack.user, bob);
        assert_eq!(ack.acknowledged_at, now());

        let labels = &[("type", "notificationAck")];
        for (data, needle) in [
            (
                r#"{"schemaVersion":1,"notificationId":"","user":"bob@desk","acknowledgedAt":"2022-05-19T10:00:00Z"}"#,
                "empty",
            ),
            (
                r#"{"schemaVersion":1,"notificationId":"n1","user":"bob","acknowledgedAt":"2022-05-19T10:00:00Z"}"#,
                "bob",
            ),
            (
                r#"{"schemaVersion":1,"notificationId":"n1","user":"bob@desk"}"#,
                "acknowledgedAt",
            ),
        ] {
            let error = Acknowledgement::from_manifest(&raw("a9", labels, data)).unwrap_err();
            assert!(
                error.to_string().contains("a9") && error.to_string().contains(needle),
                "{error}"
            );
        }
    }

    #[test]
    fn severity_and_kind_parse_and_order() {
        assert!(Severity::Normal < Severity::Warning && Severity::Warning < Severity::Error);
        assert_eq!("warning".parse::<Severity>().unwrap(), Severity::Warning);
        assert_eq!(
            "WARN".parse::<Severity>().unwrap_err().to_string(),
            "invalid severity \"WARN\": expected normal, warning or error"
        );
        assert_eq!(
            "upgrade".parse::<SourceKind>().unwrap(),
            SourceKind::Upgrade
        );
        assert!("other".parse::<SourceKind>().is_err());
        assert_eq!(Severity::Error.shout(), "ERROR");
    }
}
