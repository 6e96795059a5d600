//! Deriving the format key before `kopia.repository` arrives. The scrypt salt is the
//! repository's `uniqueID` (§2.2), which never changes, so the salt an earlier open of the same
//! client config saw lets the derivation start while the storage is opened and the format blob
//! is read: on network storage those round trips hide behind the key derivation instead of
//! adding to it. The format blob just read still decides: a different `uniqueID` or
//! `keyAlgo` (a repository created anew where the old one was) derives again from it.
//!
//! Only the salt and the algorithm are remembered, never the format blob: its encrypted config
//! would let whoever reads the file test password guesses. Files are 0600 in a 0700 directory
//! under the blob cache's root, named by SHA-256 of the config path.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::client::Password;
use crate::crypto::kdf;
use crate::format::FormatBlob;
use crate::storage::blob_cache::{create_private_dir, replace_private_file};
use crate::Result;

/// What a key derivation needs of the format blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct KeySalt {
    #[serde(rename = "uniqueID", with = "crate::format::base64_bytes")]
    unique_id: Vec<u8>,
    #[serde(rename = "keyAlgo")]
    key_algo: String,
}

impl KeySalt {
    fn of(format_blob: &FormatBlob) -> KeySalt {
        KeySalt {
            unique_id: format_blob.unique_id.clone(),
            key_algo: format_blob.key_algo.clone(),
        }
    }
}

/// A derived format key (wiped on drop, also when a derivation for a changed salt is thrown
/// away) and how long the derivation took.
pub(crate) type Derived = Result<(Zeroizing<[u8; 32]>, Duration)>;

/// Runs a key derivation, timing it.
fn timed(derive: impl FnOnce() -> Result<[u8; 32]>) -> Derived {
    let started = Instant::now();
    let key = Zeroizing::new(derive()?);
    Ok((key, started.elapsed()))
}

/// Derives the key of `format_blob` now.
pub(crate) fn derive_for(format_blob: &FormatBlob, password: &str) -> Derived {
    timed(|| format_blob.derive_format_key(password))
}

/// Where the salts of the client configs opened before are remembered.
#[derive(Debug)]
pub(crate) struct SaltMemory {
    file: PathBuf,
}

impl SaltMemory {
    /// The memory of `config_path`'s salt under the cache root `root`.
    pub(crate) fn new(root: &Path, config_path: &Path) -> SaltMemory {
        let absolute = std::path::absolute(config_path).unwrap_or_else(|_| config_path.into());
        let digest = Sha256::digest(absolute.as_os_str().as_encoded_bytes());
        let name = format!("{}.json", &hex::encode(digest)[..16]);
        SaltMemory {
            file: root.join("key-salts").join(name),
        }
    }

    /// Starts deriving the key from the remembered salt, if there is one.
    pub(crate) fn start(&self, password: &Password) -> Option<EarlyKey> {
        let salt = self.read()?;
        let password = password.clone();
        let thread_salt = salt.clone();
        let handle = std::thread::Builder::new()
            .name("kopia-key".into())
            .spawn(move || {
                timed(|| {
                    kdf::derive_format_key(
                        &thread_salt.key_algo,
                        password.expose(),
                        &thread_salt.unique_id,
                    )
                })
            })
            .ok()?;
        Some(EarlyKey { salt, handle })
    }

    /// Remembers `format_blob`'s salt (the caller knows it is not what is remembered: the
    /// early key was not for it). Failing to is no error: the next open derives after reading
    /// the format blob, as without memory.
    pub(crate) fn remember(&self, format_blob: &FormatBlob) {
        if let Err(error) = self.write(&KeySalt::of(format_blob)) {
            tracing::debug!(file = %self.file.display(), %error, "cannot remember the key salt");
        }
    }

    fn read(&self) -> Option<KeySalt> {
        serde_json::from_slice(&fs::read(&self.file).ok()?).ok()
    }

    fn write(&self, salt: &KeySalt) -> std::io::Result<()> {
        let dir = self.file.parent().expect("the file is inside key-salts");
        create_private_dir(dir)?;
        // Named after the target too: two configs remembered at once never share a temporary.
        let name = self.file.file_name().expect("the file has a name");
        let temporary = dir.join(format!(
            ".tmp-{}-{}",
            std::process::id(),
            name.to_string_lossy()
        ));
        replace_private_file(&temporary, &self.file, &[&serde_json::to_vec(salt)?])
    }
}

/// A key derivation running on a thread of its own from a remembered salt.
#[derive(Debug)]
pub(crate) struct EarlyKey {
    salt: KeySalt,
    handle: JoinHandle<Derived>,
}

impl EarlyKey {
    /// The key for `format_blob` if this derivation is for its salt (waiting for it to end);
    /// `None` when the salt changed: the caller derives anew and this thread's result is lost.
    pub(crate) fn key_for(self, format_blob: &FormatBlob) -> Option<Derived> {
        if self.salt != KeySalt::of(format_blob) {
            return None;
        }
        Some(
            self.handle
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn format_blob(unique_id: u8) -> FormatBlob {
        serde_json::from_value(serde_json::json!({
            "uniqueID": base64::Engine::encode(
                &base64::engine::general_purpose::STANDARD,
                [unique_id; 32]
            ),
            "keyAlgo": "scrypt-65536-8-1",
        }))
        .unwrap()
    }

    #[test]
    fn a_remembered_salt_gives_the_same_key_and_only_for_its_own_repository() {
        let root = tempfile::tempdir().unwrap();
        let memory = SaltMemory::new(root.path(), Path::new("/etc/kopia/repository.config"));
        let password = Password::new("pw");
        assert!(memory.start(&password).is_none(), "nothing remembered yet");
        memory.remember(&format_blob(1));
        let (key, _) = derive_for(&format_blob(1), "pw").unwrap();
        let early = memory.start(&password).unwrap();
        assert_eq!(*early.key_for(&format_blob(1)).unwrap().unwrap().0, *key);
        let early = memory.start(&password).unwrap();
        assert!(early.key_for(&format_blob(2)).is_none());

        // Another config has a memory of its own; a damaged file is no memory.
        let other = SaltMemory::new(root.path(), Path::new("/etc/kopia/other.config"));
        assert!(other.start(&password).is_none());
        fs::write(&memory.file, b"{\"uniqueID\":").unwrap();
        assert!(memory.start(&password).is_none());
        memory.remember(&format_blob(2));
        let early = memory.start(&password).unwrap();
        assert!(early.key_for(&format_blob(2)).is_some());
    }
}
