//! Content encryptors (`encryption` in the repository config): AES-256-GCM or ChaCha20-Poly1305
//! with a per-IV key `HMAC-SHA256(kds, iv)` and the IV as associated data (§4.1).
//! Output layout is `nonce(12) || ciphertext || tag(16)`. Choosing the IV is the caller's job.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use chacha20poly1305::ChaCha20Poly1305;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use zeroize::Zeroizing;

use super::kdf::hkdf_sha256;
use crate::error::{DecodeError, Error};

/// Every content encryption algorithm Kopia 0.23 accepts.
pub const ENCRYPTION_ALGORITHMS: &[&str] =
    &["AES256-GCM-HMAC-SHA256", "CHACHA20-POLY1305-HMAC-SHA256"];

/// What new repositories use.
pub const DEFAULT_ENCRYPTION_ALGORITHM: &str = "AES256-GCM-HMAC-SHA256";

/// Bytes added by encryption: 12-byte nonce plus 16-byte tag (both algorithms).
pub const ENCRYPTION_OVERHEAD: usize = NONCE_LEN + TAG_LEN;

/// AEAD nonce length of both algorithms (random per encryption).
pub const NONCE_LEN: usize = 12;
/// AEAD tag length of both algorithms.
pub const TAG_LEN: usize = 16;

/// HKDF salt naming the purpose of the key-derivation secret (Kopia passes it as salt, info empty).
const CONTENT_KEY_SALT: &[u8] = b"encryption";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cipher {
    Aes256Gcm,
    ChaCha20Poly1305,
}

/// Encrypts and decrypts contents and blobs with keys derived from the repository master key.
#[derive(Clone)]
pub struct ContentEncryptor {
    algorithm: &'static str,
    cipher: Cipher,
    /// HMAC keyed with the key-derivation secret, cloned per IV.
    key_for_iv: Hmac<Sha256>,
}

impl std::fmt::Debug for ContentEncryptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Holds key material: print the algorithm only.
        f.debug_struct("ContentEncryptor")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl ContentEncryptor {
    /// Prepares `algorithm` with the repository `master_key` (from the decrypted format blob).
    pub fn new(algorithm: &str, master_key: &[u8]) -> Result<Self, Error> {
        let (algorithm, cipher) = match algorithm {
            "AES256-GCM-HMAC-SHA256" => ("AES256-GCM-HMAC-SHA256", Cipher::Aes256Gcm),
            "CHACHA20-POLY1305-HMAC-SHA256" => {
                ("CHACHA20-POLY1305-HMAC-SHA256", Cipher::ChaCha20Poly1305)
            }
            other => {
                return Err(Error::Unsupported(format!(
                    "encryption algorithm '{other}'"
                )))
            }
        };
        let kds = Zeroizing::new(hkdf_sha256(master_key, CONTENT_KEY_SALT, b"", 32));
        let key_for_iv =
            <Hmac<Sha256> as Mac>::new_from_slice(&kds).expect("HMAC accepts keys of any length");
        Ok(ContentEncryptor {
            algorithm,
            cipher,
            key_for_iv,
        })
    }

    /// The algorithm name as written in the repository config.
    pub fn algorithm(&self) -> &str {
        self.algorithm
    }

    /// Encrypts `plaintext` bound to `iv` with a fresh random nonce: `nonce || ct || tag`.
    pub fn encrypt(&self, plaintext: &[u8], iv: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        self.encrypt_with_nonce(plaintext, iv, &nonce)
    }

    /// As [`encrypt`](Self::encrypt) with a caller-chosen nonce. Reusing a nonce with the same
    /// IV breaks confidentiality: only for reproducible test vectors.
    pub fn encrypt_with_nonce(
        &self,
        plaintext: &[u8],
        iv: &[u8],
        nonce: &[u8; NONCE_LEN],
    ) -> Vec<u8> {
        let key = self.key_for(iv);
        let mut out = Vec::with_capacity(plaintext.len() + ENCRYPTION_OVERHEAD);
        out.extend_from_slice(nonce);
        out.extend_from_slice(plaintext);
        let body = &mut out[NONCE_LEN..];
        let tag = match self.cipher {
            Cipher::Aes256Gcm => Aes256Gcm::new((&*key).into())
                .encrypt_in_place_detached(nonce.into(), iv, body)
                .map(|tag| tag.to_vec()),
            Cipher::ChaCha20Poly1305 => ChaCha20Poly1305::new((&*key).into())
                .encrypt_in_place_detached(nonce.into(), iv, body)
                .map(|tag| tag.to_vec()),
        }
        .expect("AEAD plaintext below the 64 GiB limit");
        out.extend_from_slice(&tag);
        out
    }

    /// Decrypts `nonce || ct || tag` bound to `iv`. Fails on short input or authentication
    /// failure (wrong IV, wrong key, tampered bytes).
    pub fn decrypt(&self, ciphertext: &[u8], iv: &[u8]) -> Result<Vec<u8>, DecodeError> {
        if ciphertext.len() < ENCRYPTION_OVERHEAD {
            return Err(DecodeError::new(format!(
                "encrypted payload is {} bytes, shorter than the {ENCRYPTION_OVERHEAD}-byte nonce and tag",
                ciphertext.len()
            )));
        }
        let (nonce, rest) = ciphertext.split_at(NONCE_LEN);
        let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
        let key = self.key_for(iv);
        let mut plaintext = body.to_vec();
        let opened = match self.cipher {
            Cipher::Aes256Gcm => Aes256Gcm::new((&*key).into()).decrypt_in_place_detached(
                nonce.into(),
                iv,
                &mut plaintext,
                tag.into(),
            ),
            Cipher::ChaCha20Poly1305 => ChaCha20Poly1305::new((&*key).into())
                .decrypt_in_place_detached(nonce.into(), iv, &mut plaintext, tag.into()),
        };
        opened.map_err(|_| {
            DecodeError::new(format!(
                "{} authentication failed (wrong key or IV, or the bytes were altered)",
                self.algorithm
            ))
        })?;
        Ok(plaintext)
    }

    /// Per-IV AEAD key: `HMAC-SHA256(kds, iv)`.
    /// The key of one IV, wiped when the caller drops it.
    fn key_for(&self, iv: &[u8]) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(
            self.key_for_iv
                .clone()
                .chain_update(iv)
                .finalize()
                .into_bytes()
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER_KEY: &[u8] = b"01234567890123456789012345678901";
    const IV_LETTERS: &[u8] = b"aabbccddeeffgghhiijjkkllmmnnoopp";
    const IV_ZEROS: &[u8] = b"00000000000000000000000000000000";
    const FOX: &[u8] = b"quick brown fox jumps over the lazy dog";

    fn encryptor(algorithm: &str) -> ContentEncryptor {
        ContentEncryptor::new(algorithm, MASTER_KEY).unwrap()
    }

    // §12.2, Kopia's TestCiphertextSamples (verified).
    #[test]
    fn kopia_ciphertext_samples_decrypt() {
        let samples = [
            (IV_LETTERS, &b"foo"[..], "AES256-GCM-HMAC-SHA256",
             "e43ba07f85a6d70c5f1102ca06cf19c597e5f91e527b21f00fb76e8bec3fd1"),
            (IV_LETTERS, b"foo", "CHACHA20-POLY1305-HMAC-SHA256",
             "118359f3d4d589d939efbbc3168ae4c77c51bcebce6845fe6ef5d11342faa6"),
            (IV_ZEROS, FOX, "AES256-GCM-HMAC-SHA256",
             "eaad755a238f1daa4052db2e5ccddd934790b6cca415b3ccfd46ac5746af33d9d30f4400ffa9eb3a64fb1ce21b888c12c043bf6787d4a5c15ad10f21f6a6027ee3afe0"),
            (IV_ZEROS, FOX, "CHACHA20-POLY1305-HMAC-SHA256",
             "836d2ba87892711077adbdbe1452d3b2c590bbfdf6fd3387dc6810220a32ec19de862e1a4f865575e328424b5f178afac1b7eeff11494f719d119b7ebb924d1d0846a3"),
        ];
        for (iv, payload, algorithm, ciphertext_hex) in samples {
            let enc = encryptor(algorithm);
            let ciphertext = hex::decode(ciphertext_hex).unwrap();
            assert_eq!(
                enc.decrypt(&ciphertext, iv).unwrap(),
                payload,
                "{algorithm}"
            );
            // Re-encrypting with the sample's nonce reproduces the exact bytes.
            let nonce: [u8; NONCE_LEN] = ciphertext[..NONCE_LEN].try_into().unwrap();
            assert_eq!(
                enc.encrypt_with_nonce(payload, iv, &nonce),
                ciphertext,
                "{algorithm}"
            );
        }
    }

    // §12.2 intermediate values (derived).
    #[test]
    fn key_derivation_secret_and_per_iv_keys() {
        assert_eq!(
            hex::encode(hkdf_sha256(MASTER_KEY, CONTENT_KEY_SALT, b"", 32)),
            "88aac0fcc646ffc04813cc17f4c7a17f8a73b53e4add438898256a7c87ad45d2"
        );
        let enc = encryptor("AES256-GCM-HMAC-SHA256");
        assert_eq!(
            hex::encode(enc.key_for(IV_LETTERS)),
            "6c82491c819ee6c89e7bdd065cca8b86c314a7d950dffa92e1c30506f60463ea"
        );
        assert_eq!(
            hex::encode(enc.key_for(IV_ZEROS)),
            "e09bf92edcc7890a612c60ef1df18a8affff56d9fecfc7cb0585f1b73eb43169"
        );
    }

    #[test]
    fn round_trip_with_random_nonces() {
        for algorithm in ENCRYPTION_ALGORITHMS {
            let enc = encryptor(algorithm);
            for payload in [&b""[..], b"x", FOX, &[0xAB; 5000][..]] {
                let a = enc.encrypt(payload, IV_ZEROS);
                let b = enc.encrypt(payload, IV_ZEROS);
                assert_eq!(a.len(), payload.len() + ENCRYPTION_OVERHEAD);
                assert_ne!(a, b, "nonces must differ");
                assert_eq!(enc.decrypt(&a, IV_ZEROS).unwrap(), payload);
                assert_eq!(enc.decrypt(&b, IV_ZEROS).unwrap(), payload);
            }
        }
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        for algorithm in ENCRYPTION_ALGORITHMS {
            let enc = encryptor(algorithm);
            let ciphertext = enc.encrypt(b"foo", IV_LETTERS);
            for bit in 0..ciphertext.len() * 8 {
                let mut tampered = ciphertext.clone();
                tampered[bit / 8] ^= 1 << (bit % 8);
                let err = enc.decrypt(&tampered, IV_LETTERS).unwrap_err();
                assert!(err.0.contains("authentication failed"), "{err}");
            }
        }
    }

    #[test]
    fn wrong_iv_or_key_or_algorithm_fails() {
        let enc = encryptor("AES256-GCM-HMAC-SHA256");
        let ciphertext = enc.encrypt(FOX, IV_ZEROS);
        assert!(enc.decrypt(&ciphertext, IV_LETTERS).is_err());
        let other_key = ContentEncryptor::new("AES256-GCM-HMAC-SHA256", b"another key").unwrap();
        assert!(other_key.decrypt(&ciphertext, IV_ZEROS).is_err());
        assert!(encryptor("CHACHA20-POLY1305-HMAC-SHA256")
            .decrypt(&ciphertext, IV_ZEROS)
            .is_err());
    }

    #[test]
    fn short_ciphertext_is_an_error_not_a_panic() {
        let enc = encryptor("AES256-GCM-HMAC-SHA256");
        for len in 0..ENCRYPTION_OVERHEAD {
            let err = enc.decrypt(&vec![0; len], IV_ZEROS).unwrap_err();
            assert!(err.0.contains("shorter than"), "{err}");
        }
        // Exactly the overhead is a valid (empty) shape that fails authentication.
        assert!(enc.decrypt(&[0; ENCRYPTION_OVERHEAD], IV_ZEROS).is_err());
    }

    #[test]
    fn unknown_algorithm_is_unsupported() {
        let err = ContentEncryptor::new("AES256-CTR", MASTER_KEY).unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported(m) if m.contains("'AES256-CTR'")),
            "{err}"
        );
        assert!(ENCRYPTION_ALGORITHMS.contains(&DEFAULT_ENCRYPTION_ALGORITHM));
    }
}
