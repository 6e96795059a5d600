//! Finding the repository password the way Kopia does (§10.3): `KOPIA_PASSWORD`, then the OS
//! keyring entry Kopia wrote, then the `<config>.kopia-password` file. Prompting is the
//! caller's business; the password itself is never printed (see [`Password`]).

use std::path::{Path, PathBuf};

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;

use zeroize::Zeroize;

use super::keyring::read_keyring_password;
use crate::error::{Error, Result};
use crate::storage::io_error;

/// A repository password. Its `Debug` output is `***`, so it cannot leak into logs, and its
/// bytes are wiped when it is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Drop for Password {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

/// Read from the window's requests (a plain JSON string).
impl<'de> serde::Deserialize<'de> for Password {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        String::deserialize(deserializer).map(Password)
    }
}

impl Password {
    pub fn new(password: impl Into<String>) -> Self {
        Password(password.into())
    }

    /// The password itself, for key derivation only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// Where a password was found, for messages such as "using the password from the keyring".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordSource {
    Environment,
    Keyring,
    File,
}

/// The password file Kopia keeps next to a config: `<config path>.kopia-password`.
pub fn password_file_path(config_path: &Path) -> PathBuf {
    let mut name = config_path.as_os_str().to_owned();
    name.push(".kopia-password");
    PathBuf::from(name)
}

/// Go's `base64.StdEncoding`: padding required, non-zero trailing bits tolerated.
const GO_STD_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical),
);

/// Decodes the contents of a `.kopia-password` file: standard base64 of the UTF-8 password.
/// Line breaks are skipped, as Go's decoder does (an editor may have added one).
pub fn decode_password_file(contents: &[u8]) -> std::result::Result<Password, String> {
    let cleaned: Vec<u8> = contents
        .iter()
        .copied()
        .filter(|b| *b != b'\r' && *b != b'\n')
        .collect();
    let bytes = GO_STD_BASE64
        .decode(cleaned)
        .map_err(|e| format!("not valid base64: {e}"))?;
    String::from_utf8(bytes)
        .map(Password)
        .map_err(|_| "the decoded password is not UTF-8".to_string())
}

/// Finds the password for the repository of `config_path` (the config path string exactly as
/// Kopia was given it, see `default_config_path`). None found → [`Error::PasswordMissing`].
pub fn resolve_password(config_path: &Path) -> Result<Password> {
    resolve_password_with_source(config_path).map(|(password, _)| password)
}

/// [`resolve_password`], also saying where the password came from.
pub fn resolve_password_with_source(config_path: &Path) -> Result<(Password, PasswordSource)> {
    let env = std::env::var_os("KOPIA_PASSWORD").map(|v| v.to_string_lossy().into_owned());
    resolve_password_from(config_path, env.as_deref(), read_keyring_password)
}

/// [`resolve_password_with_source`] with the environment value and the keyring lookup passed
/// in (for tests). `keyring` returns `Ok(None)` when there is no entry or no keyring at all.
/// A keyring failure (e.g. locked) only matters when the password file does not exist either.
pub fn resolve_password_from(
    config_path: &Path,
    env_password: Option<&str>,
    keyring: impl FnOnce(&Path) -> Result<Option<String>>,
) -> Result<(Password, PasswordSource)> {
    // Kopia uses a non-empty KOPIA_PASSWORD trimmed, even if trimming leaves nothing.
    if let Some(value) = env_password.filter(|v| !v.is_empty()) {
        return Ok((Password::new(value.trim()), PasswordSource::Environment));
    }
    let keyring_failure = match keyring(config_path) {
        Ok(Some(password)) => return Ok((Password::new(password), PasswordSource::Keyring)),
        Ok(None) => None,
        Err(e) => Some(e),
    };
    let file = password_file_path(config_path);
    match std::fs::read(&file) {
        Ok(contents) => {
            let password = decode_password_file(&contents).map_err(|reason| Error::Config {
                path: file.clone(),
                reason,
            })?;
            Ok((password, PasswordSource::File))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(keyring_failure
            .unwrap_or_else(|| Error::PasswordMissing(config_path.display().to_string()))),
        Err(e) => Err(io_error(&file, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_keyring(_: &Path) -> Result<Option<String>> {
        Ok(None)
    }

    /// A keyring that timed out is reported as such when no password file exists, never as
    /// a missing password; with a password file the file is used.
    #[test]
    fn keyring_timeout_is_not_a_missing_password() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("repository.config");
        let slow =
            |_: &Path| -> Result<Option<String>> { Err(Error::KeyringUnavailable("slow".into())) };
        let error = resolve_password_from(&config, None, slow).unwrap_err();
        assert!(matches!(error, Error::KeyringUnavailable(_)), "{error}");
        std::fs::write(password_file_path(&config), "cHc=").unwrap();
        let (password, source) = resolve_password_from(&config, None, slow).unwrap();
        assert_eq!((password.expose(), source), ("pw", PasswordSource::File));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let p = Password::new("hunter2");
        assert_eq!(format!("{p:?}"), "***");
        assert_eq!(format!("{:?}", Some(&p)), "Some(***)");
        assert_eq!(p.expose(), "hunter2");
    }

    #[test]
    fn password_file_decoding() {
        // The guide's example.
        assert_eq!(
            decode_password_file(b"Zm9vYmFyYmF6Zm9vYmFyYmF6")
                .unwrap()
                .expose(),
            "foobarbazfoobarbaz"
        );
        assert_eq!(
            decode_password_file(b"cGFzcw==\n").unwrap().expose(),
            "pass"
        );
        assert_eq!(
            decode_password_file(b"cGFz\r\ncw==").unwrap().expose(),
            "pass"
        );
        assert_eq!(decode_password_file(b"").unwrap().expose(), "");
        assert_eq!(
            decode_password_file("w6nDqA==".as_bytes())
                .unwrap()
                .expose(),
            "éè"
        );
        // Go accepts non-canonical trailing bits ("cGFzcx==" decodes like "cGFzcw==").
        assert_eq!(decode_password_file(b"cGFzcx==").unwrap().expose(), "pass");
        assert!(
            decode_password_file(b"cGFzcw").is_err(),
            "padding is required"
        );
        assert!(decode_password_file(b"not base64!").is_err());
        assert!(decode_password_file(b"/w==").is_err(), "0xff is not UTF-8");
    }

    #[test]
    fn password_file_path_appends_suffix() {
        assert_eq!(
            password_file_path(Path::new("/home/me/.config/kopia/repository.config")),
            Path::new("/home/me/.config/kopia/repository.config.kopia-password")
        );
    }

    #[test]
    fn environment_wins_and_is_trimmed() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("repository.config");
        std::fs::write(password_file_path(&config), "ZmlsZQ==").unwrap();
        let keyring_used = std::cell::Cell::new(false);
        let (password, source) = resolve_password_from(&config, Some("  secret \n"), |_| {
            keyring_used.set(true);
            Ok(Some("keyring".to_string()))
        })
        .unwrap();
        assert_eq!(
            (password.expose(), source),
            ("secret", PasswordSource::Environment)
        );
        assert!(!keyring_used.get());
        // Whitespace only: Kopia still takes it (as the empty password).
        let (password, _) = resolve_password_from(&config, Some("   "), no_keyring).unwrap();
        assert_eq!(password.expose(), "");
        // Empty means unset.
        let (password, source) = resolve_password_from(&config, Some(""), no_keyring).unwrap();
        assert_eq!((password.expose(), source), ("file", PasswordSource::File));
    }

    #[test]
    fn keyring_before_file_and_failures_fall_back() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("repository.config");
        let (password, source) =
            resolve_password_from(&config, None, |_| Ok(Some(" raw ".to_string()))).unwrap();
        // Keyring passwords are used as stored, untrimmed.
        assert_eq!(
            (password.expose(), source),
            (" raw ", PasswordSource::Keyring)
        );

        let locked = |_: &Path| Err(Error::Keyring("item is locked".to_string()));
        let err = resolve_password_from(&config, None, locked).unwrap_err();
        assert!(matches!(err, Error::Keyring(_)), "{err:?}");

        std::fs::write(password_file_path(&config), "ZmlsZQ==").unwrap();
        let (password, source) = resolve_password_from(&config, None, locked).unwrap();
        assert_eq!((password.expose(), source), ("file", PasswordSource::File));
    }

    #[test]
    fn nothing_found_names_the_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("repository.config");
        match resolve_password_from(&config, None, no_keyring).unwrap_err() {
            Error::PasswordMissing(name) => assert_eq!(name, config.display().to_string()),
            other => panic!("unexpected {other:?}"),
        }
        std::fs::write(password_file_path(&config), "%%%").unwrap();
        match resolve_password_from(&config, None, no_keyring).unwrap_err() {
            Error::Config { path, .. } => assert_eq!(path, password_file_path(&config)),
            other => panic!("unexpected {other:?}"),
        }
    }
}
