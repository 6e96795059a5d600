//! The one error type of the notification domain. Each variant names the thing at fault (the
//! notification ID, the recipient text, the duration text) so a CLI can print it as one line.
//! Storage failures arrive wrapped as [`Error::Store`], their kind preserved.

use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the title is empty")]
    EmptyTitle,
    #[error("the title must be one line without control characters")]
    TitleNotOneLine,
    #[error("the title contains the invisible or text-reordering character {0:?} (bidi controls, zero-width and other format characters are not allowed)")]
    TitleFormatCharacter(char),
    #[error("the {field} is too long: {length} characters, at most {max} allowed")]
    TooLong {
        field: &'static str,
        length: usize,
        max: usize,
    },
    #[error("invalid severity {0:?}: expected normal, warning or error")]
    InvalidSeverity(String),
    #[error(
        "invalid source kind {0:?}: expected snapshot, maintenance, corruption, upgrade or custom"
    )]
    InvalidSourceKind(String),
    #[error("invalid identity {text:?}: {reason}")]
    InvalidIdentity { text: String, reason: &'static str },
    #[error("invalid recipient {text:?}: {reason}")]
    InvalidRecipient { text: String, reason: String },
    #[error("invalid link {link:?}: {reason}")]
    InvalidLink { link: String, reason: &'static str },
    #[error("invalid duration {text:?}: {reason}")]
    InvalidDuration { text: String, reason: &'static str },
    #[error("no notification with ID {0:?}")]
    UnknownNotification(String),
    #[error("notification ID prefix {prefix:?} is ambiguous: it matches {}", candidates.join(", "))]
    AmbiguousId {
        prefix: String,
        candidates: Vec<String>,
    },
    #[error("notification {id} is addressed to {recipient}, not to {identity}")]
    NotAddressed {
        id: String,
        recipient: String,
        identity: String,
    },
    #[error("invalid policy target {text:?}: {reason}")]
    InvalidTarget { text: String, reason: String },
    #[error("invalid policy value {text:?} for {option}: {reason}")]
    InvalidPolicyValue {
        option: &'static str,
        text: String,
        reason: String,
    },
    #[error("invalid answer from releases endpoint {url}: {reason}")]
    InvalidRelease { url: String, reason: String },
    #[error("malformed manifest {id}: {reason}")]
    Malformed { id: String, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Error {
    pub(crate) fn malformed(id: &str, reason: impl Into<String>) -> Self {
        Error::Malformed {
            id: id.to_string(),
            reason: reason.into(),
        }
    }
}
