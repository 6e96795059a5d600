//! The OS keyring entry where Kopia (through go-keyring) stores a repository password (§10.3).
//! Linux only for now, through the Secret Service D-Bus API; other systems report "no entry"
//! on read and `Unsupported` on write. No unlock prompt is ever triggered on read.

use std::path::Path;

use sha2::{Digest, Sha256};

use super::go_base;
use crate::error::Result;

/// The keyring "service" Kopia uses for a config file: `<base name>-<hex of the first 8 bytes
/// of SHA-256(path string)>`. The path string is hashed exactly as Kopia received it.
pub fn keyring_item_id(config_path: &str) -> String {
    let digest = Sha256::digest(config_path.as_bytes());
    format!("{}-{}", go_base(config_path), hex::encode(&digest[..8]))
}

/// The keyring "username" Kopia uses: the OS user name (Windows: without the domain),
/// `nobody` when it cannot be determined.
pub fn keyring_username() -> String {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if cfg!(windows) {
        return env("USERNAME")
            .map(|u| u.rsplit('\\').next().unwrap_or_default().to_string())
            .unwrap_or_else(|| "nobody".to_string());
    }
    if cfg!(target_os = "linux") {
        let from_passwd = real_uid().and_then(|uid| {
            let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
            username_from_passwd(&passwd, uid)
        });
        if let Some(name) = from_passwd {
            return name;
        }
    }
    // Go's fallback when the passwd lookup fails: $USER, if $HOME is known too.
    match (env("USER"), env("HOME")) {
        (Some(user), Some(_)) => user,
        _ => "nobody".to_string(),
    }
}

/// The real user ID, from the `Uid:` line of `/proc/self/status` (no unsafe `getuid`).
fn real_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The user name of `uid` in passwd-format text, with the checks of Go's pure lookup.
fn username_from_passwd(passwd: &str, uid: u32) -> Option<String> {
    let uid = uid.to_string();
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.splitn(7, ':').collect();
        let plausible = fields.len() >= 7
            && !fields[0].is_empty()
            && !fields[0].starts_with(['+', '-'])
            && fields[2] == uid
            && fields[2].parse::<i64>().is_ok()
            && fields[3].parse::<i64>().is_ok();
        plausible.then(|| fields[0].to_string())
    })
}

/// Reads Kopia's keyring entry for `config_path`. `Ok(None)`: no entry, or no keyring service
/// at all. `Err`: the entry exists but cannot be read (locked keyring, D-Bus failure), or
/// [`Error::KeyringUnavailable`](crate::Error::KeyringUnavailable) when the keyring did not
/// answer within a few seconds: a slow keyring is not a missing password.
pub fn read_keyring_password(config_path: &Path) -> Result<Option<String>> {
    let service = keyring_item_id(&config_path.to_string_lossy());
    platform::read(service, keyring_username())
}

/// Stores `password` where Kopia (with `--use-keyring`) looks for it, replacing an existing
/// entry. On Linux this may show the desktop's "unlock keyring" prompt.
pub fn store_password_in_keyring(config_path: &Path, password: &str) -> Result<()> {
    let service = keyring_item_id(&config_path.to_string_lossy());
    platform::store(&service, &keyring_username(), password)
}

/// Reads a secret another application keeps under its own naming (`service`, `account`), with
/// the same attributes, timeout and "no keyring means no entry" rule as
/// [`read_keyring_password`].
pub fn read_secret(service: &str, account: &str) -> Result<Option<String>> {
    platform::read(service.to_string(), account.to_string())
}

/// Stores (or replaces) a secret under `service` and `account`.
pub fn store_secret(service: &str, account: &str, secret: &str) -> Result<()> {
    platform::store(service, account, secret)
}

/// Deletes the secrets under `service` and `account`; none there is not an error.
pub fn delete_secret(service: &str, account: &str) -> Result<()> {
    platform::delete(service, account)
}

/// The lookup's answer, or [`Error::KeyringUnavailable`] if none came within `timeout` (or
/// the lookup thread died).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn answer_within<T>(
    receiver: &std::sync::mpsc::Receiver<Result<T>>,
    timeout: std::time::Duration,
) -> Result<T> {
    match receiver.recv_timeout(timeout) {
        Ok(result) => result,
        Err(_) => {
            tracing::warn!("OS keyring did not answer in {timeout:?}");
            Err(crate::Error::KeyringUnavailable(format!(
                "it did not answer within {timeout:?}; retrying soon"
            )))
        }
    }
}

#[cfg(target_os = "linux")]
mod platform {
    use std::collections::HashMap;
    use std::sync::mpsc;
    use std::time::Duration;

    use secret_service::blocking::{Collection, SecretService};
    use secret_service::EncryptionType;

    use crate::error::{Error, Result};

    /// D-Bus activation of a missing service can stall for 25 s: never wait that long.
    const READ_TIMEOUT: Duration = Duration::from_secs(5);
    const LOGIN_COLLECTION_PATH: &str = "/org/freedesktop/secrets/collection/login";
    const CONTENT_TYPE: &str = "text/plain; charset=utf8";

    fn connect() -> std::result::Result<SecretService<'static>, secret_service::Error> {
        SecretService::connect(EncryptionType::Dh)
            .or_else(|_| SecretService::connect(EncryptionType::Plain))
    }

    fn attributes<'a>(service: &'a str, user: &'a str) -> HashMap<&'a str, &'a str> {
        // Exactly go-keyring's attributes: anything more would not match Kopia's items.
        HashMap::from([("username", user), ("service", service)])
    }

    pub(super) fn read(service: String, user: String) -> Result<Option<String>> {
        // zbus's blocking calls run on its own runtime; a worker thread adds the timeout and
        // keeps this callable from any thread.
        let (sender, receiver) = mpsc::channel();
        std::thread::Builder::new()
            .name("kopia-keyring".to_string())
            .spawn(move || {
                let _ = sender.send(lookup(&service, &user));
            })
            .map_err(|e| Error::Keyring(format!("cannot start keyring lookup: {e}")))?;
        super::answer_within(&receiver, READ_TIMEOUT)
    }

    fn lookup(service: &str, user: &str) -> Result<Option<String>> {
        let secret_service = match connect() {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("no OS keyring: {e}");
                return Ok(None);
            }
        };
        let found = secret_service
            .search_items(attributes(service, user))
            .map_err(|e| Error::Keyring(format!("searching {service}: {e}")))?;
        if let Some(item) = found.unlocked.first() {
            let secret = item
                .get_secret()
                .map_err(|e| Error::Keyring(format!("reading {service}: {e}")))?;
            return String::from_utf8(secret)
                .map(Some)
                .map_err(|_| Error::Keyring(format!("the password in {service} is not UTF-8")));
        }
        if found.locked.is_empty() {
            Ok(None)
        } else {
            Err(Error::Keyring(format!(
                "the keyring holding {service} is locked; unlock it (e.g. by logging in to the desktop)"
            )))
        }
    }

    /// go-keyring writes into the `login` collection, else the `default` alias.
    fn login_collection<'a>(
        secret_service: &'a SecretService<'a>,
    ) -> std::result::Result<Collection<'a>, secret_service::Error> {
        let collections = secret_service.get_all_collections()?;
        match collections
            .into_iter()
            .find(|c| c.collection_path.as_str() == LOGIN_COLLECTION_PATH)
        {
            Some(login) => Ok(login),
            None => secret_service.get_default_collection(),
        }
    }

    pub(super) fn store(service: &str, user: &str, password: &str) -> Result<()> {
        // Same reason as in `read`: zbus must not run its runtime on a caller's async thread.
        // No timeout here: an unlock prompt waits for the user.
        let (service, user, password) =
            (service.to_string(), user.to_string(), password.to_string());
        std::thread::Builder::new()
            .name("kopia-keyring".to_string())
            .spawn(move || store_on_this_thread(&service, &user, &password))
            .map_err(|e| Error::Keyring(format!("cannot start keyring update: {e}")))?
            .join()
            .map_err(|_| Error::Keyring("keyring update failed unexpectedly".to_string()))?
    }

    pub(super) fn delete(service: &str, user: &str) -> Result<()> {
        let (service, user) = (service.to_string(), user.to_string());
        std::thread::Builder::new()
            .name("kopia-keyring".to_string())
            .spawn(move || delete_on_this_thread(&service, &user))
            .map_err(|e| Error::Keyring(format!("cannot start keyring update: {e}")))?
            .join()
            .map_err(|_| Error::Keyring("keyring update failed unexpectedly".to_string()))?
    }

    fn delete_on_this_thread(service: &str, user: &str) -> Result<()> {
        let failed = |e: secret_service::Error| Error::Keyring(format!("deleting {service}: {e}"));
        let secret_service = match connect() {
            Ok(s) => s,
            Err(_) => return Ok(()), // no keyring, nothing stored
        };
        let found = secret_service
            .search_items(attributes(service, user))
            .map_err(failed)?;
        for item in found.unlocked.iter().chain(found.locked.iter()) {
            item.delete().map_err(failed)?;
        }
        Ok(())
    }

    fn store_on_this_thread(service: &str, user: &str, password: &str) -> Result<()> {
        let failed = |e: secret_service::Error| Error::Keyring(format!("storing {service}: {e}"));
        let secret_service =
            connect().map_err(|e| Error::Keyring(format!("no OS keyring: {e}")))?;
        let collection = login_collection(&secret_service).map_err(failed)?;
        if collection.is_locked().map_err(failed)? {
            collection.unlock().map_err(failed)?;
        }
        collection
            .create_item(
                &format!("Password for '{user}' on '{service}'"),
                attributes(service, user),
                password.as_bytes(),
                true,
                CONTENT_TYPE,
            )
            .map_err(failed)?;
        Ok(())
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use crate::error::{Error, Result};

    pub(super) fn read(_service: String, _user: String) -> Result<Option<String>> {
        Ok(None)
    }

    pub(super) fn store(_service: &str, _user: &str, _password: &str) -> Result<()> {
        Err(Error::Unsupported("OS keyring on this system".to_string()))
    }

    pub(super) fn delete(_service: &str, _user: &str) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_keyring_that_does_not_answer_is_unavailable_not_empty() {
        let (sender, receiver) = std::sync::mpsc::channel::<Result<Option<String>>>();
        let timeout = std::time::Duration::from_millis(20);
        let error = answer_within(&receiver, timeout).unwrap_err();
        assert!(
            matches!(error, crate::Error::KeyringUnavailable(_)),
            "{error}"
        );
        assert!(error.to_string().contains("did not answer"), "{error}");
        sender.send(Ok(Some("pw".into()))).unwrap();
        assert_eq!(
            answer_within(&receiver, timeout).unwrap().as_deref(),
            Some("pw")
        );
        sender.send(Ok(None)).unwrap();
        assert_eq!(answer_within(&receiver, timeout).unwrap(), None);
        drop(sender);
        assert!(matches!(
            answer_within(&receiver, timeout),
            Err(crate::Error::KeyringUnavailable(_))
        ));
    }

    /// The derived examples of §10.3, checked against the hashing in Kopia's
    /// passwordpersist_keyring.go (SHA-256 of the path string as given).
    #[test]
    fn item_ids() {
        assert_eq!(
            keyring_item_id("/home/me/.config/kopia/repository.config"),
            "repository.config-9d6b393445cff035"
        );
        #[cfg(windows)]
        assert_eq!(
            keyring_item_id(r"C:\Users\me\AppData\Roaming\kopia\repository.config"),
            "repository.config-5243a62f4f375f4a"
        );
        // Not absolutized: a relative path hashes differently from its absolute form.
        assert_ne!(
            keyring_item_id("./repository.config"),
            keyring_item_id("/home/me/repository.config")
        );
        assert!(keyring_item_id("./repository.config").starts_with("repository.config-"));
    }

    #[test]
    fn passwd_lookup_follows_go_rules() {
        let passwd = "\
root:x:0:0:root:/root:/bin/bash
+nis:x:1000:1000::/:/bin/sh
broken:x:1000
me:x:1000:1000:Me,,,:/home/me:/bin/bash
odd:x:1001:notanumber::/home/odd:/bin/sh
";
        assert_eq!(username_from_passwd(passwd, 0), Some("root".to_string()));
        assert_eq!(username_from_passwd(passwd, 1000), Some("me".to_string()));
        assert_eq!(username_from_passwd(passwd, 1001), None);
        assert_eq!(username_from_passwd(passwd, 42), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn username_and_uid_are_found() {
        assert!(real_uid().is_some());
        assert!(!keyring_username().is_empty());
    }

    /// Without any session bus the lookup must answer "no entry", fast.
    #[cfg(target_os = "linux")]
    #[test]
    fn no_session_bus_means_no_entry() {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
            return; // a real session: covered by the keyring integration test instead
        }
        let started = std::time::Instant::now();
        let result = read_keyring_password(Path::new("/nonexistent/repository.config"));
        assert!(matches!(result, Ok(None)), "{result:?}");
        assert!(started.elapsed() < std::time::Duration::from_secs(6));
    }

    /// Round trip through a real Secret Service (needs `gnome-keyring`, `dbus`). Run it in a
    /// throw-away session and keyring directory:
    /// `XDG_DATA_HOME=$(mktemp -d) dbus-run-session -- sh -c 'echo -n pw | gnome-keyring-daemon
    /// --unlock --components=secrets >/dev/null; KOPIA_KEYRING_TEST=1 cargo test -p kopia-repo
    /// --lib client::keyring -- --include-ignored'`
    #[cfg(target_os = "linux")]
    #[test]
    #[ignore = "needs a Secret Service (gnome-keyring) in a D-Bus session"]
    fn keyring_round_trip() {
        if std::env::var_os("KOPIA_KEYRING_TEST").is_none() {
            return;
        }
        let config = Path::new("/tmp/kopia-notifier-keyring-test/repository.config");
        store_password_in_keyring(config, "s3cret with spaces ").unwrap();
        assert_eq!(
            read_keyring_password(config).unwrap().as_deref(),
            Some("s3cret with spaces ")
        );
        store_password_in_keyring(config, "replaced").unwrap();
        assert_eq!(
            read_keyring_password(config).unwrap().as_deref(),
            Some("replaced")
        );
        assert_eq!(
            read_keyring_password(Path::new("/tmp/other/repository.config")).unwrap(),
            None
        );
    }
}
