//! Policy targets as Kopia arranges them (snapshot/policy/policy_manager.go): a snapshot source's
//! policies are looked up at the exact path, then every parent path, then `user@host`, then the
//! host, then globally. Kopia's scheduling policies and our notification policy share this tree.

use std::fmt;
use std::str::FromStr;

use crate::schema::SnapshotSource;
use crate::Error;

/// Where a policy is attached.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyTarget {
    Global,
    Host {
        host: String,
    },
    User {
        user: String,
        host: String,
    },
    Path {
        user: String,
        host: String,
        path: String,
    },
}

impl PolicyTarget {
    /// The lookup order for `source`, most specific first (Kopia's `GetPolicyHierarchy`).
    pub fn hierarchy(source: &SnapshotSource) -> Vec<PolicyTarget> {
        let mut targets = Vec::new();
        let mut path = source.path.clone();
        while !path.is_empty() {
            targets.push(PolicyTarget::Path {
                user: source.user_name.clone(),
                host: source.host.clone(),
                path: path.clone(),
            });
            let parent = parent_path(&path);
            if parent == path {
                break;
            }
            path = parent;
        }
        targets.push(PolicyTarget::User {
            user: source.user_name.clone(),
            host: source.host.clone(),
        });
        targets.push(PolicyTarget::Host {
            host: source.host.clone(),
        });
        targets.push(PolicyTarget::Global);
        targets
    }

    /// Where the options of this target come from, most specific first: a path's hierarchy,
    /// or this level and the ones above it.
    pub fn lookup_order(&self) -> Vec<PolicyTarget> {
        match self {
            PolicyTarget::Path { user, host, path } => PolicyTarget::hierarchy(&SnapshotSource {
                host: host.clone(),
                user_name: user.clone(),
                path: path.clone(),
            }),
            PolicyTarget::User { host, .. } => vec![
                self.clone(),
                PolicyTarget::Host { host: host.clone() },
                PolicyTarget::Global,
            ],
            PolicyTarget::Host { .. } => vec![self.clone(), PolicyTarget::Global],
            PolicyTarget::Global => vec![PolicyTarget::Global],
        }
    }

    /// Kopia's `policyType` label value.
    pub fn policy_type(&self) -> &'static str {
        match self {
            PolicyTarget::Global => "global",
            PolicyTarget::Host { .. } => "host",
            PolicyTarget::User { .. } => "user",
            PolicyTarget::Path { .. } => "path",
        }
    }

    /// The labels Kopia puts on a policy manifest for this target, besides `type`
    /// (`LabelsForSource`).
    pub fn labels(&self) -> Vec<(&'static str, String)> {
        let mut labels = vec![("policyType", self.policy_type().to_string())];
        match self {
            PolicyTarget::Global => {}
            PolicyTarget::Host { host } => labels.push(("hostname", host.clone())),
            PolicyTarget::User { user, host } => {
                labels.push(("username", user.clone()));
                labels.push(("hostname", host.clone()));
            }
            PolicyTarget::Path { user, host, path } => {
                labels.push(("username", user.clone()));
                labels.push(("hostname", host.clone()));
                labels.push(("path", path.clone()));
            }
        }
        labels
    }

    /// Reads the target of a policy manifest from its labels; `None` when they do not form one.
    pub fn from_labels(get: impl Fn(&str) -> Option<String>) -> Option<PolicyTarget> {
        let get = |key| get(key).filter(|value| !value.is_empty());
        Some(match get("policyType")?.as_str() {
            "global" => PolicyTarget::Global,
            "host" => PolicyTarget::Host {
                host: get("hostname")?,
            },
            "user" => PolicyTarget::User {
                user: get("username")?,
                host: get("hostname")?,
            },
            "path" => PolicyTarget::Path {
                user: get("username")?,
                host: get("hostname")?,
                path: get("path")?,
            },
            _ => return None,
        })
    }
}

impl fmt::Display for PolicyTarget {
    /// Kopia's spelling: `(global)`, `@host`, `user@host`, `user@host:/path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyTarget::Global => f.write_str("(global)"),
            PolicyTarget::Host { host } => write!(f, "@{host}"),
            PolicyTarget::User { user, host } => write!(f, "{user}@{host}"),
            PolicyTarget::Path { user, host, path } => write!(f, "{user}@{host}:{path}"),
        }
    }
}

impl FromStr for PolicyTarget {
    type Err = Error;

    /// `global`, `@host`, `user@host` or `user@host:/path` (a plain path needs the caller's
    /// identity and is resolved by the CLI).
    fn from_str(text: &str) -> Result<Self, Error> {
        let invalid = |reason: &str| Error::InvalidTarget {
            text: text.to_string(),
            reason: reason.to_string(),
        };
        if text == "global" || text == "(global)" {
            return Ok(PolicyTarget::Global);
        }
        if let Some(host) = text.strip_prefix('@') {
            if host.is_empty() || host.contains(['@', ':']) {
                return Err(invalid("expected @host"));
            }
            return Ok(PolicyTarget::Host { host: host.into() });
        }
        let (identity, path) = match text.split_once(':') {
            Some((identity, path)) => (identity, Some(path)),
            None => (text, None),
        };
        let identity: crate::Identity = identity
            .parse()
            .map_err(|e: Error| invalid(&e.to_string()))?;
        Ok(match path {
            None => PolicyTarget::User {
                user: identity.user,
                host: identity.host,
            },
            Some("") => return Err(invalid("the path after ':' is empty")),
            Some(path) => PolicyTarget::Path {
                user: identity.user,
                host: identity.host,
                path: path.into(),
            },
        })
    }
}

/// The parent of a path with `/` or `\` separators; the root is its own parent
/// (Kopia's `getParentPathOSIndependent`, with Windows volumes `X:\`).
pub fn parent_path(path: &str) -> String {
    let (volume, rest) = match path.as_bytes() {
        [_, b':', b'/' | b'\\', ..] => path.split_at(2),
        _ => ("", path),
    };
    let mut rest = rest;
    let mut last = rest.rfind(['/', '\\']);
    if let Some(at) = last {
        if at == rest.len() - 1 && at != 0 {
            rest = &rest[..at];
            last = rest.rfind(['/', '\\']);
        }
    }
    match last {
        None => path.to_string(),
        Some(0) => format!("{volume}{}", &rest[..1]),
        Some(at) => format!("{volume}{}", &rest[..at]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(path: &str) -> SnapshotSource {
        SnapshotSource {
            host: "laptop".into(),
            user_name: "alice".into(),
            path: path.into(),
        }
    }

    #[test]
    fn hierarchy_walks_parents_then_user_host_global() {
        let names: Vec<String> = PolicyTarget::hierarchy(&source("/home/alice/docs"))
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            names,
            [
                "alice@laptop:/home/alice/docs",
                "alice@laptop:/home/alice",
                "alice@laptop:/home",
                "alice@laptop:/",
                "alice@laptop",
                "@laptop",
                "(global)"
            ]
        );
    }

    #[test]
    fn parent_paths_like_kopia() {
        for (path, parent) in [
            ("/a/b", "/a"),
            ("/a/b/", "/a"),
            ("/a", "/"),
            ("/", "/"),
            ("C:\\Users\\x", "C:\\Users"),
            ("C:\\Users", "C:\\"),
            ("C:\\", "C:\\"),
            ("relative", "relative"),
        ] {
            assert_eq!(parent_path(path), parent, "{path}");
        }
    }

    #[test]
    fn targets_parse_and_print() {
        for text in ["@laptop", "alice@laptop", "alice@laptop:/home/alice"] {
            assert_eq!(text.parse::<PolicyTarget>().unwrap().to_string(), text);
        }
        assert_eq!(
            "global".parse::<PolicyTarget>().unwrap(),
            PolicyTarget::Global
        );
        for bad in ["@", "alice", "alice@laptop:", "@a:b"] {
            let error = bad.parse::<PolicyTarget>().unwrap_err().to_string();
            assert!(error.contains(bad), "{error}");
        }
        let target = "alice@laptop:/x".parse::<PolicyTarget>().unwrap();
        let labels = target.labels();
        let get = |k: &str| {
            labels
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(PolicyTarget::from_labels(get), Some(target));
    }
}
