//! Host key checking exactly as Kopia does it: Kopia hands its known_hosts file (or the
//! `knownHostsData` lines) to Go's golang.org/x/crypto/ssh/knownhosts (v0.52.0), so the rules
//! here are that package's, not OpenSSH's: patterns are matched case-sensitively, `[host]:port`
//! and `host:port` patterns carry a port (plain ones mean port 22), `!` negates, `*`/`?` are
//! wildcards, `|1|salt|hash` lines are HMAC-SHA1 of the normalized address, `@revoked` keys are
//! refused everywhere, and a host is accepted when any line matching it holds the exact key the
//! server presented. One malformed line makes the whole file unusable, as in Go. Pure code: the
//! caller reads the file and hands over the server's key blob.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use sha2::{Digest, Sha256};

/// The public key types Go's ssh.ParsePublicKey accepts (plain keys and OpenSSH certificates).
const KEY_TYPES: [&str; 14] = [
    "ssh-rsa",
    "ssh-dss",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-ed25519",
    "sk-ssh-ed25519@openssh.com",
    "ssh-rsa-cert-v01@openssh.com",
    "ssh-dss-cert-v01@openssh.com",
    "ecdsa-sha2-nistp256-cert-v01@openssh.com",
    "ecdsa-sha2-nistp384-cert-v01@openssh.com",
    "ecdsa-sha2-nistp521-cert-v01@openssh.com",
    "ssh-ed25519-cert-v01@openssh.com",
];

/// A parsed known_hosts file (or `knownHostsData`).
#[derive(Debug, Clone, Default)]
pub struct KnownHosts {
    lines: Vec<HostLine>,
    revoked: Vec<(Vec<u8>, usize)>,
}

#[derive(Debug, Clone)]
struct HostLine {
    hosts: HostMatcher,
    key: Vec<u8>,
    line: usize,
}

#[derive(Debug, Clone)]
enum HostMatcher {
    Patterns(Vec<HostPattern>),
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
}

#[derive(Debug, Clone)]
struct HostPattern {
    negate: bool,
    host: String,
    port: String,
}

/// What the known hosts say about a server's key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Known,
    /// No line names this host.
    Unknown,
    /// Lines name the host, with other keys (their line numbers).
    Mismatch {
        lines: Vec<usize>,
    },
    /// The key is marked `@revoked` on that line.
    Revoked {
        line: usize,
    },
}

impl KnownHosts {
    /// Parses known_hosts text; the error names the (1-based) line, as Go's does.
    pub fn parse(text: &str) -> Result<KnownHosts, String> {
        let mut known = KnownHosts::default();
        for (index, raw) in text.split('\n').enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            known
                .parse_line(line, index + 1)
                .map_err(|reason| format!("line {}: {reason}", index + 1))?;
        }
        Ok(known)
    }

    fn parse_line(&mut self, line: &str, number: usize) -> Result<(), String> {
        let (first, rest) = next_word(line);
        let (marker, line) = match first {
            "@cert-authority" | "@revoked" => (Some(first), rest),
            _ => (None, line),
        };
        let (pattern, rest) = next_word(line);
        if rest.is_empty() {
            return Err("missing host pattern".to_string());
        }
        let (_key_type, rest) = next_word(rest);
        if rest.is_empty() {
            return Err("missing key type pattern".to_string());
        }
        let (blob, _comment) = next_word(rest);
        let key = STANDARD
            .decode(blob)
            .map_err(|e| format!("invalid key data: {e}"))?;
        match key_type(&key) {
            Some(name) if KEY_TYPES.contains(&name) => {}
            Some(name) => return Err(format!("unsupported key type {name:?}")),
            None => return Err("malformed key data".to_string()),
        }
        if marker == Some("@revoked") {
            self.revoked.push((key, number));
            return Ok(());
        }
        // Go keeps @cert-authority lines with the others; they take part in plain-key checks.
        let hosts = if pattern.starts_with('|') {
            HostMatcher::hashed(pattern)?
        } else {
            HostMatcher::patterns(pattern)?
        };
        self.lines.push(HostLine {
            hosts,
            key,
            line: number,
        });
        Ok(())
    }

    /// Checks the key blob (SSH wire format) a server at `host` (no brackets) and `port`
    /// presented.
    pub fn check(&self, host: &str, port: u16, key: &[u8]) -> Verdict {
        if let Some((_, line)) = self.revoked.iter().find(|(k, _)| k == key) {
            return Verdict::Revoked { line: *line };
        }
        let port = port.to_string();
        let mut lines = Vec::new();
        for entry in self.lines.iter().filter(|l| l.hosts.matches(host, &port)) {
            if entry.key == key {
                return Verdict::Known;
            }
            lines.push(entry.line);
        }
        if lines.is_empty() {
            Verdict::Unknown
        } else {
            Verdict::Mismatch { lines }
        }
    }

    /// The key types the known hosts hold for this host, in file order without repeats: the
    /// host key algorithms worth asking the server for first (as OpenSSH's client does), so
    /// that a server with several host keys shows the one we can check.
    pub fn key_types_for(&self, host: &str, port: u16) -> Vec<String> {
        let port = port.to_string();
        let mut types: Vec<String> = Vec::new();
        for entry in self.lines.iter().filter(|l| l.hosts.matches(host, &port)) {
            if let Some(name) = key_type(&entry.key) {
                if !types.iter().any(|t| t == name) {
                    types.push(name.to_string());
                }
            }
        }
        types
    }
}

impl HostMatcher {
    fn patterns(pattern: &str) -> Result<HostMatcher, String> {
        let mut patterns = Vec::new();
        for part in pattern.split(',').filter(|p| !p.is_empty()) {
            let (negate, part) = match part.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, part),
            };
            if part.is_empty() {
                return Err("negation without following hostname".to_string());
            }
            let (host, port) = match split_host_port(part) {
                Ok((host, port)) => (host.to_string(), port.to_string()),
                Err(e) if part.starts_with('[') => return Err(format!("{part}: {e}")),
                Err(_) => (part.to_string(), "22".to_string()),
            };
            patterns.push(HostPattern { negate, host, port });
        }
        Ok(HostMatcher::Patterns(patterns))
    }

    fn hashed(pattern: &str) -> Result<HostMatcher, String> {
        let parts: Vec<&str> = pattern.split('|').collect();
        if parts.len() != 4 {
            return Err(format!(
                "hashed host has {} components, want 3",
                parts.len().saturating_sub(1)
            ));
        }
        if parts[1] != "1" {
            return Err(format!("hashed host of type {}, must be '1'", parts[1]));
        }
        let decode = |text: &str| {
            STANDARD
                .decode(text)
                .map_err(|e| format!("invalid hashed host: {e}"))
        };
        Ok(HostMatcher::Hashed {
            salt: decode(parts[2])?,
            hash: decode(parts[3])?,
        })
    }

    fn matches(&self, host: &str, port: &str) -> bool {
        match self {
            HostMatcher::Patterns(patterns) => {
                let mut matched = false;
                for pattern in patterns {
                    if !(wildcard_match(pattern.host.as_bytes(), host.as_bytes())
                        && pattern.port == port)
                    {
                        continue;
                    }
                    if pattern.negate {
                        return false;
                    }
                    matched = true;
                }
                matched
            }
            HostMatcher::Hashed { salt, hash } => {
                let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, salt);
                let tag = ring::hmac::sign(&key, normalize(host, port).as_bytes());
                tag.as_ref() == hash.as_slice()
            }
        }
    }
}

/// OpenSSH's form of an address in known_hosts: `host` on port 22, else `[host]:port`.
fn normalize(host: &str, port: &str) -> String {
    if port == "22" {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// The first word (up to a space or tab) and the trimmed rest.
fn next_word(line: &str) -> (&str, &str) {
    match line.find([' ', '\t']) {
        Some(i) => (&line[..i], line[i..].trim()),
        None => (line, ""),
    }
}

/// The type name a key blob starts with (an SSH string).
fn key_type(blob: &[u8]) -> Option<&str> {
    let length = u32::from_be_bytes(blob.get(..4)?.try_into().ok()?) as usize;
    std::str::from_utf8(blob.get(4..4 + length)?).ok()
}

/// Go's net.SplitHostPort: `host:port` or `[host]:port` (the port may be empty).
fn split_host_port(text: &str) -> Result<(&str, &str), &'static str> {
    let colon = text.rfind(':').ok_or("missing port in address")?;
    let (host, inner_start, after_host) = if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']').ok_or("missing ']' in address")? + 1;
        if end + 1 == text.len() {
            return Err("missing port in address");
        }
        if end + 1 != colon {
            return Err(if text.as_bytes()[end + 1] == b':' {
                "too many colons in address"
            } else {
                "missing port in address"
            });
        }
        (&text[1..end], 1, end + 1)
    } else {
        let host = &text[..colon];
        if host.contains(':') {
            return Err("too many colons in address");
        }
        (host, 0, 0)
    };
    if text[inner_start..].contains('[') {
        return Err("unexpected '[' in address");
    }
    if text[after_host..].contains(']') {
        return Err("unexpected ']' in address");
    }
    Ok((host, &text[colon + 1..]))
}

/// Go's knownhosts wildcardMatch: `*` any run, `?` one byte, everything else literally.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, _) => text.is_empty(),
        (Some(b'*'), _) if pattern.len() == 1 => true,
        (Some(_), None) => false,
        (Some(b'*'), Some(_)) => (0..text.len()).any(|i| wildcard_match(&pattern[1..], &text[i..])),
        (Some(&p), Some(&t)) => (p == b'?' || p == t) && wildcard_match(&pattern[1..], &text[1..]),
    }
}

/// OpenSSH's fingerprint of a key blob: `SHA256:` and the unpadded base64 of its digest.
pub fn fingerprint(key: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(key)))
}

/// The key's type name for messages (`ssh-ed25519`), or `unknown`.
pub fn key_type_name(key: &[u8]) -> &str {
    key_type(key).unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host key and another one, made with `ssh-keygen -t ed25519`.
    const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOuKCNywIp8uG2q0tryN8KBmIPaNK5yvy2rafjbcvvWX";
    const OTHER: &str = "AAAAC3NzaC1lZDI1NTE5AAAAINcMnyEYFpCi+M7/3pqfDlyNqvHpCUs+xKhIVmFsROkh";
    /// `ssh-keygen -H` of lines for `[127.0.0.1]:2222` and `nas.local` holding KEY.
    const HASHED: &str = "\
|1|Nyyn/ZS13SpHdCeV1BIZCwU8wBk=|01bq1/9tgVnQHT0W/syWgj5s1rU= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOuKCNywIp8uG2q0tryN8KBmIPaNK5yvy2rafjbcvvWX
|1|jNh+UA8+hdiL6jMNaUvTlyJqwe4=|uNljFH4D/KLLZmXKpkUJ5iM91Xc= ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOuKCNywIp8uG2q0tryN8KBmIPaNK5yvy2rafjbcvvWX
";

    fn blob(base64: &str) -> Vec<u8> {
        STANDARD.decode(base64).unwrap()
    }

    fn known(text: &str) -> KnownHosts {
        KnownHosts::parse(text).unwrap()
    }

    #[test]
    fn fingerprints_are_openssh_ones() {
        // `ssh-keygen -l -E sha256` of the two keys.
        assert_eq!(
            fingerprint(&blob(KEY)),
            "SHA256:5+cE719tvdnLzxTbIyHOq1OgxyWbaDzFHl/VE/CwH/E"
        );
        assert_eq!(
            fingerprint(&blob(OTHER)),
            "SHA256:UeVj33JrT1Ou1UAP5jpqKe1KOew6kpHh2iZrDMEBA8Y"
        );
        assert_eq!(key_type_name(&blob(KEY)), "ssh-ed25519");
    }

    #[test]
    fn plain_and_bracketed_hosts() {
        let hosts = known(&format!(
            "# comment\n\nnas.local,192.0.2.7 ssh-ed25519 {KEY} backup@nas\n\
             [127.0.0.1]:2222 ssh-ed25519 {KEY}\r\n"
        ));
        let key = blob(KEY);
        assert_eq!(hosts.check("nas.local", 22, &key), Verdict::Known);
        assert_eq!(hosts.check("192.0.2.7", 22, &key), Verdict::Known);
        assert_eq!(hosts.check("127.0.0.1", 2222, &key), Verdict::Known);
        // A plain pattern means port 22; a bracketed one only its port.
        assert_eq!(hosts.check("nas.local", 2222, &key), Verdict::Unknown);
        assert_eq!(hosts.check("127.0.0.1", 22, &key), Verdict::Unknown);
        // Go compares host names as written: no case folding.
        assert_eq!(hosts.check("NAS.local", 22, &key), Verdict::Unknown);
        assert_eq!(
            hosts.check("127.0.0.1", 2222, &blob(OTHER)),
            Verdict::Mismatch { lines: vec![4] }
        );
    }

    #[test]
    fn hashed_hosts_made_by_ssh_keygen() {
        let hosts = known(HASHED);
        let key = blob(KEY);
        assert_eq!(hosts.check("127.0.0.1", 2222, &key), Verdict::Known);
        assert_eq!(hosts.check("nas.local", 22, &key), Verdict::Known);
        assert_eq!(hosts.check("127.0.0.1", 2223, &key), Verdict::Unknown);
        assert_eq!(hosts.check("nas.local", 2222, &key), Verdict::Unknown);
        assert_eq!(
            hosts.check("nas.local", 22, &blob(OTHER)),
            Verdict::Mismatch { lines: vec![2] }
        );
        assert_eq!(hosts.key_types_for("nas.local", 22), vec!["ssh-ed25519"]);
        assert!(hosts.key_types_for("elsewhere", 22).is_empty());
    }

    #[test]
    fn wildcards_negations_and_any_matching_line() {
        let hosts = known(&format!(
            "*.example.com,!bad.example.com ssh-ed25519 {KEY}\n\
             nas?.lan ssh-ed25519 {OTHER}\n\
             nas1.lan ssh-ed25519 {KEY}\n"
        ));
        let (key, other) = (blob(KEY), blob(OTHER));
        assert_eq!(hosts.check("a.example.com", 22, &key), Verdict::Known);
        assert_eq!(hosts.check("bad.example.com", 22, &key), Verdict::Unknown);
        assert_eq!(hosts.check("example.com", 22, &key), Verdict::Unknown);
        // Two lines name nas1.lan: either key is accepted.
        assert_eq!(hosts.check("nas1.lan", 22, &key), Verdict::Known);
        assert_eq!(hosts.check("nas1.lan", 22, &other), Verdict::Known);
        assert_eq!(
            hosts.check("nas2.lan", 22, &key),
            Verdict::Mismatch { lines: vec![2] }
        );
        assert!(wildcard_match(b"*", b""));
        assert!(wildcard_match(b"a*b*c", b"aXXbYc"));
        assert!(!wildcard_match(b"a?c", b"ac"));
    }

    #[test]
    fn revoked_keys_are_refused_for_every_host() {
        let hosts = known(&format!(
            "nas.local ssh-ed25519 {KEY}\n@revoked * ssh-ed25519 {KEY}\n\
             @cert-authority *.lan ssh-ed25519 {OTHER}\n"
        ));
        assert_eq!(
            hosts.check("nas.local", 22, &blob(KEY)),
            Verdict::Revoked { line: 2 }
        );
        // Go checks plain keys against @cert-authority lines too.
        assert_eq!(hosts.check("x.lan", 22, &blob(OTHER)), Verdict::Known);
    }

    #[test]
    fn a_malformed_line_spoils_the_file_naming_the_line() {
        for (text, reason) in [
            ("nas.local\n".to_string(), "line 1: missing host pattern"),
            (
                "ok ssh-ed25519\n".to_string(),
                "line 1: missing key type pattern",
            ),
            (
                format!("x ssh-ed25519 {KEY}\nnas ssh-ed25519 ***\n"),
                "line 2: invalid key data",
            ),
            (
                format!("!,x ssh-ed25519 {KEY}\n"),
                "negation without following hostname",
            ),
            (format!("[nas:22 ssh-ed25519 {KEY}\n"), "missing ']'"),
            (format!("|1|abc ssh-ed25519 {KEY}\n"), "components"),
            (format!("|2|YQ==|YQ== ssh-ed25519 {KEY}\n"), "must be '1'"),
            (
                "h ssh-foo AAAAB3NzaC1mb28=\n".to_string(),
                "unsupported key type \"ssh-foo\"",
            ),
        ] {
            let err = KnownHosts::parse(&text).unwrap_err();
            assert!(err.contains(reason), "{text:?}: {err}");
        }
    }

    #[test]
    fn go_split_host_port() {
        assert_eq!(split_host_port("[::1]:22"), Ok(("::1", "22")));
        assert_eq!(split_host_port("nas:2222"), Ok(("nas", "2222")));
        assert_eq!(split_host_port("nas:"), Ok(("nas", "")));
        assert!(split_host_port("nas").is_err());
        assert!(split_host_port("::1").is_err());
        assert!(split_host_port("[::1]").is_err());
        assert!(split_host_port("[::1]x:2").is_err());
        // `host:port` without brackets carries a port too, as in Go.
        let hosts = known(&format!(
            "nas:2222 ssh-ed25519 {KEY}\n::1 ssh-ed25519 {KEY}\n"
        ));
        assert_eq!(hosts.check("nas", 2222, &blob(KEY)), Verdict::Known);
        assert_eq!(hosts.check("::1", 22, &blob(KEY)), Verdict::Known);
    }
}
