//! Who a notification is for: `user@host` identities as Kopia spells them (its client config's
//! username and hostname) and recipients (`*` for everyone, or one identity). Parsing and display
//! only; finding the current identity is the caller's business.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// Longest user or host part accepted (hostnames stop at 253; usernames are shorter still).
pub const MAX_PART_LENGTH: usize = 255;

/// The recipient label value addressing every user of the repository.
pub const ALL_RECIPIENTS: &str = "*";

/// A Kopia user identity, `user@host`.
///
/// Both parts are non-empty and contain no `@`, no `:` (Kopia reads `user@host:path` as a
/// snapshot source), no whitespace and no control characters. The host may contain dots. The
/// text is compared exactly, as Kopia compares its own usernames and hostnames.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Identity {
    pub user: String,
    pub host: String,
}

impl Identity {
    pub fn new(user: &str, host: &str) -> Result<Self, Error> {
        let text = format!("{user}@{host}");
        check_part(user, "user", &text)?;
        check_part(host, "host", &text)?;
        Ok(Identity {
            user: user.to_string(),
            host: host.to_string(),
        })
    }
}

/// Whether `host` is a valid host part of an identity.
pub fn is_valid_host(host: &str) -> bool {
    check_part(host, "host", host).is_ok()
}

fn check_part(part: &str, which: &'static str, text: &str) -> Result<(), Error> {
    let invalid = |reason| {
        Err(Error::InvalidIdentity {
            text: text.to_string(),
            reason,
        })
    };
    if part.is_empty() {
        return invalid(if which == "user" {
            "the user part before '@' is empty"
        } else {
            "the host part after '@' is empty"
        });
    }
    if part.chars().count() > MAX_PART_LENGTH {
        return invalid("a part is longer than 255 characters");
    }
    if part.contains('@') {
        return invalid("expected exactly one '@' between user and host");
    }
    if part.contains(':') {
        return invalid("':' is not allowed (Kopia reads user@host:path as a snapshot source)");
    }
    if part.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return invalid("whitespace and control characters are not allowed");
    }
    Ok(())
}

impl FromStr for Identity {
    type Err = Error;

    fn from_str(text: &str) -> Result<Self, Error> {
        match text.split_once('@') {
            Some((user, host)) => {
                Identity::new(user, host).map_err(|error| match error {
                    // Report the text as given, not as re-joined.
                    Error::InvalidIdentity { reason, .. } => Error::InvalidIdentity {
                        text: text.to_string(),
                        reason,
                    },
                    other => other,
                })
            }
            None => Err(Error::InvalidIdentity {
                text: text.to_string(),
                reason: "expected user@host",
            }),
        }
    }
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.user, self.host)
    }
}

impl Serialize for Identity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Identity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Who a notification is addressed to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Recipient {
    /// Every user: label value `*`. Each user acknowledges it for themselves.
    All,
    User(Identity),
}

impl Recipient {
    /// Whether `identity` should see a notification addressed to this recipient.
    pub fn includes(&self, identity: &Identity) -> bool {
        match self {
            Recipient::All => true,
            Recipient::User(user) => user == identity,
        }
    }

    /// Words for people: `all users` or `user@host`.
    pub fn describe(&self) -> String {
        match self {
            Recipient::All => "all users".to_string(),
            Recipient::User(identity) => identity.to_string(),
        }
    }
}

impl FromStr for Recipient {
    type Err = Error;

    /// `*` (the label spelling) or `all` (the command-line spelling), else `user@host`.
    fn from_str(text: &str) -> Result<Self, Error> {
        if text == ALL_RECIPIENTS || text == "all" {
            return Ok(Recipient::All);
        }
        text.parse::<Identity>()
            .map(Recipient::User)
            .map_err(|error| Error::InvalidRecipient {
                text: text.to_string(),
                reason: match error {
                    Error::InvalidIdentity {
                        reason: "expected user@host",
                        ..
                    } => "expected all, * or user@host".to_string(),
                    Error::InvalidIdentity { reason, .. } => {
                        format!("{reason} (recipients are all, * or user@host)")
                    }
                    other => other.to_string(),
                },
            })
    }
}

/// The label spelling: `*` or `user@host`.
impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Recipient::All => f.write_str(ALL_RECIPIENTS),
            Recipient::User(identity) => identity.fmt(f),
        }
    }
}

impl Serialize for Recipient {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays_user_at_host() {
        let id: Identity = "alice@laptop.example.com".parse().unwrap();
        assert_eq!(id.user, "alice");
        assert_eq!(id.host, "laptop.example.com");
        assert_eq!(id.to_string(), "alice@laptop.example.com");
        assert_eq!(
            Identity::new("DOMAIN\\bob", "PC-1").unwrap().to_string(),
            "DOMAIN\\bob@PC-1"
        );
    }

    #[test]
    fn rejects_malformed_identities_naming_the_text() {
        for bad in [
            "alice",
            "@host",
            "alice@",
            "a@b@c",
            "al ice@host",
            "alice@ho\tst",
            "alice@host:/x",
            "",
        ] {
            let error = bad.parse::<Identity>().unwrap_err();
            assert!(
                error.to_string().contains(&format!("{bad:?}")),
                "{bad}: {error}"
            );
        }
        let long = format!("{}@host", "u".repeat(256));
        assert!(long.parse::<Identity>().is_err());
    }

    #[test]
    fn recipients() {
        assert_eq!("*".parse::<Recipient>().unwrap(), Recipient::All);
        assert_eq!("all".parse::<Recipient>().unwrap(), Recipient::All);
        let bob: Recipient = "bob@desk".parse().unwrap();
        assert_eq!(bob.to_string(), "bob@desk");
        assert_eq!(Recipient::All.to_string(), "*");
        assert_eq!(Recipient::All.describe(), "all users");

        let alice: Identity = "alice@laptop".parse().unwrap();
        assert!(Recipient::All.includes(&alice));
        assert!(!bob.includes(&alice));
        assert!(Recipient::User(alice.clone()).includes(&alice));

        let error = "everyone".parse::<Recipient>().unwrap_err();
        assert!(matches!(error, Error::InvalidRecipient { ref text, .. } if text == "everyone"));
        assert!(error.to_string().contains("user@host"));
    }
}
