//! `storage.config` of an `sftp` storage as Kopia writes it (repo/blob/sftp/sftp_options.go,
//! cli/storage_sftp.go): where the repository is, how we log in and how the server's host key
//! is checked. Unknown keys are ignored; the password and the private key are [`Password`]s,
//! so `Debug` never shows them.

use std::path::PathBuf;

use serde::Deserialize;

use crate::client::Password;

/// Kopia's CLI default port; a config without one (0) means it.
const DEFAULT_PORT: u16 = 22;

/// The keys of Kopia's sftp.Options (and its embedded sharded.Options).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SftpConfig {
    #[serde(default)]
    pub path: String,
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub port: u16,
    #[serde(default)]
    pub username: String,
    /// When set, the only method tried: Kopia ignores the key then.
    #[serde(default, deserialize_with = "secret")]
    pub password: Option<Password>,
    #[serde(default)]
    pub keyfile: String,
    /// The private key itself (OpenSSH or PEM text); wins over `keyfile`.
    #[serde(rename = "keyData", default, deserialize_with = "secret")]
    pub key_data: Option<Password>,
    #[serde(rename = "knownHostsFile", default)]
    pub known_hosts_file: String,
    /// known_hosts lines; win over `knownHostsFile`.
    #[serde(rename = "knownHostsData", default)]
    pub known_hosts_data: String,
    #[serde(rename = "externalSSH", default)]
    pub external_ssh: bool,
    #[serde(rename = "sshCommand", default)]
    pub ssh_command: String,
    #[serde(rename = "sshArguments", default)]
    pub ssh_arguments: String,
    /// Used only when the storage has no `.shards` file; `[]` is Kopia's `--flat`.
    #[serde(rename = "dirShards", default)]
    pub dir_shards: Option<Vec<usize>>,
    /// Directories listed at once; Kopia's 0 means 1.
    #[serde(rename = "listParallelism", default)]
    pub list_parallelism: usize,
}

fn secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Password>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?
        .filter(|s| !s.is_empty())
        .map(Password::new))
}

/// How we prove who we are, in Kopia's order: a password excludes the key, key data wins over
/// the key file (repo/blob/sftp createSSHConfig, getSigner).
#[derive(Debug, Clone)]
pub enum Credentials {
    Password(Password),
    KeyData(Password),
    KeyFile(PathBuf),
}

/// Where the trusted host keys come from: inline data wins over the file, and the file
/// defaults to `~/.ssh/known_hosts` (Kopia's knownHostsFile()).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KnownHostsSource {
    Data(String),
    File(PathBuf),
}

impl KnownHostsSource {
    /// How messages name it: the file, or "knownHostsData" for inline lines.
    pub fn describe(&self) -> String {
        match self {
            KnownHostsSource::Data(_) => "knownHostsData of the connection".to_string(),
            KnownHostsSource::File(path) => path.display().to_string(),
        }
    }
}

impl SftpConfig {
    /// Parses the raw `storage.config`; the reason of a failure names the offending key.
    pub fn from_json(config: &serde_json::Value) -> std::result::Result<Self, String> {
        let parsed = SftpConfig::deserialize(config).map_err(|e| e.to_string())?;
        for (key, value) in [
            ("path", &parsed.path),
            ("host", &parsed.host),
            ("username", &parsed.username),
        ] {
            if value.is_empty() {
                return Err(format!("no {key}"));
            }
        }
        Ok(parsed)
    }

    pub fn port(&self) -> u16 {
        if self.port == 0 {
            DEFAULT_PORT
        } else {
            self.port
        }
    }

    /// The host without the brackets an IPv6 literal may be written with.
    pub fn bare_host(&self) -> &str {
        self.host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&self.host)
    }

    /// `host:port` as messages and `connect` name it (IPv6 literals in brackets).
    pub fn address(&self) -> String {
        let host = self.bare_host();
        if host.contains(':') {
            format!("[{host}]:{}", self.port())
        } else {
            format!("{host}:{}", self.port())
        }
    }

    /// What messages call this store: `sftp://user@host:port/path`.
    pub fn describe(&self) -> String {
        let path = self.path.strip_prefix('/').unwrap_or(&self.path);
        format!("sftp://{}@{}/{path}", self.username, self.address())
    }

    /// The credentials Kopia would use, or why there are none usable.
    pub fn credentials(&self) -> std::result::Result<Credentials, String> {
        if let Some(password) = &self.password {
            return Ok(Credentials::Password(password.clone()));
        }
        if let Some(key) = &self.key_data {
            return Ok(Credentials::KeyData(key.clone()));
        }
        if self.keyfile.is_empty() {
            return Err("no password, keyfile or keyData to log in with".to_string());
        }
        let path = PathBuf::from(&self.keyfile);
        if !path.is_absolute() {
            return Err(format!(
                "keyfile {:?} is not an absolute path (Kopia requires one)",
                self.keyfile
            ));
        }
        Ok(Credentials::KeyFile(path))
    }

    /// Where the host keys are checked against, or why that cannot be decided.
    pub fn known_hosts(&self) -> std::result::Result<KnownHostsSource, String> {
        if !self.known_hosts_data.is_empty() {
            return Ok(KnownHostsSource::Data(self.known_hosts_data.clone()));
        }
        let path = if self.known_hosts_file.is_empty() {
            home_dir()
                .ok_or("no knownHostsFile and no home directory for ~/.ssh/known_hosts")?
                .join(".ssh")
                .join("known_hosts")
        } else {
            PathBuf::from(&self.known_hosts_file)
        };
        if !path.is_absolute() {
            return Err(format!(
                "knownHostsFile {:?} is not an absolute path (Kopia requires one)",
                path.display().to_string()
            ));
        }
        Ok(KnownHostsSource::File(path))
    }
}

/// Go's os.UserHomeDir.
fn home_dir() -> Option<PathBuf> {
    let name = if cfg!(windows) { "USERPROFILE" } else { "HOME" };
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> SftpConfig {
        SftpConfig::from_json(&json).unwrap()
    }

    #[test]
    fn reads_kopia_keys_and_ignores_others() {
        let config = parse(serde_json::json!({
            "path": "/volume1/kopia", "host": "nas.local", "port": 2222, "username": "backup",
            "password": "", "keyfile": "/home/u/.ssh/id_ed25519",
            "knownHostsFile": "/home/u/.ssh/known_hosts", "externalSSH": false,
            "dirShards": null, "listParallelism": 4, "maxDownloadSpeedBytesPerSecond": 0,
            "someFutureKey": {"x": 1}
        }));
        assert_eq!(config.address(), "nas.local:2222");
        assert_eq!(
            config.describe(),
            "sftp://backup@nas.local:2222/volume1/kopia"
        );
        assert_eq!(config.list_parallelism, 4);
        assert_eq!(config.dir_shards, None);
        // An empty password is no password: the key file is used.
        match config.credentials().unwrap() {
            Credentials::KeyFile(path) => {
                assert_eq!(path, PathBuf::from("/home/u/.ssh/id_ed25519"))
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(
            config.known_hosts().unwrap(),
            KnownHostsSource::File("/home/u/.ssh/known_hosts".into())
        );

        let flat = parse(
            serde_json::json!({"path": "r", "host": "h", "username": "u",
            "dirShards": []}),
        );
        assert_eq!(flat.dir_shards, Some(vec![]));
        assert_eq!(flat.port(), 22);
        assert_eq!(flat.describe(), "sftp://u@h:22/r");
    }

    #[test]
    fn credentials_in_kopias_order() {
        let both = parse(
            serde_json::json!({"path": "/r", "host": "h", "username": "u",
            "password": "pw", "keyData": "-----BEGIN OPENSSH PRIVATE KEY-----", "keyfile": "/k"}),
        );
        assert!(
            matches!(both.credentials().unwrap(), Credentials::Password(p) if p.expose() == "pw")
        );
        let key = parse(
            serde_json::json!({"path": "/r", "host": "h", "username": "u",
            "keyData": "KEY", "keyfile": "/k"}),
        );
        assert!(
            matches!(key.credentials().unwrap(), Credentials::KeyData(k) if k.expose() == "KEY")
        );
        let none = parse(serde_json::json!({"path": "/r", "host": "h", "username": "u"}));
        assert!(none
            .credentials()
            .unwrap_err()
            .contains("no password, keyfile or keyData"));
        let relative = parse(
            serde_json::json!({"path": "/r", "host": "h", "username": "u",
            "keyfile": "id_rsa"}),
        );
        assert!(relative.credentials().unwrap_err().contains("absolute"));
    }

    #[test]
    fn known_hosts_data_wins_and_the_file_defaults_to_the_home_directory() {
        let data = parse(
            serde_json::json!({"path": "/r", "host": "h", "username": "u",
            "knownHostsData": "h ssh-ed25519 AAAA", "knownHostsFile": "/kh"}),
        );
        assert_eq!(
            data.known_hosts().unwrap(),
            KnownHostsSource::Data("h ssh-ed25519 AAAA".into())
        );
        let default = parse(serde_json::json!({"path": "/r", "host": "h", "username": "u"}));
        if let Some(home) = home_dir().filter(|h| h.is_absolute()) {
            assert_eq!(
                default.known_hosts().unwrap(),
                KnownHostsSource::File(home.join(".ssh/known_hosts"))
            );
        }
        let relative = parse(
            serde_json::json!({"path": "/r", "host": "h", "username": "u",
            "knownHostsFile": "known_hosts"}),
        );
        assert!(relative.known_hosts().unwrap_err().contains("absolute"));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let config = parse(
            serde_json::json!({"path": "/r", "host": "h", "username": "u",
            "password": "hunter2", "keyData": "PRIVATE-KEY-BYTES"}),
        );
        let debug = format!("{config:?} {:?}", config.credentials().unwrap());
        assert!(
            !debug.contains("hunter2") && !debug.contains("PRIVATE-KEY-BYTES"),
            "{debug}"
        );
    }

    #[test]
    fn ipv6_hosts_are_bracketed_once() {
        let config = parse(
            serde_json::json!({"path": "/r", "host": "[::1]", "username": "u",
            "port": 2200}),
        );
        assert_eq!(config.bare_host(), "::1");
        assert_eq!(config.address(), "[::1]:2200");
        let bare = parse(serde_json::json!({"path": "/r", "host": "::1", "username": "u"}));
        assert_eq!(bare.address(), "[::1]:22");
    }

    #[test]
    fn missing_or_mistyped_keys_are_named() {
        for (json, key) in [
            (serde_json::json!({"host": "h", "username": "u"}), "path"),
            (serde_json::json!({"path": "/r", "username": "u"}), "host"),
            (serde_json::json!({"path": "/r", "host": "h"}), "username"),
            (
                serde_json::json!({"path": "/r", "host": "h", "username": "u", "port": 70000}),
                "70000",
            ),
            (
                serde_json::json!({"path": "/r", "host": "h", "username": "u", "port": "22"}),
                "u16",
            ),
        ] {
            let err = SftpConfig::from_json(&json).unwrap_err();
            assert!(err.contains(key), "{err}");
        }
    }
}
