//! Content hash functions (`hash` in the repository config): keyed BLAKE2/BLAKE3 and HMAC-SHA2/3,
//! all keyed with the repository HMAC secret. The output is the hash part of a content ID.
//! This module does not build content-ID strings nor pick the IV (see `content` and §3.2).

use blake2::digest::consts::{U16, U32};
use blake2::digest::{Digest, Mac};
use blake2::{Blake2b, Blake2bMac, Blake2s256, Blake2sMac};
use hmac::Hmac;
use sha2::{Sha224, Sha256};
use sha3::{Sha3_224, Sha3_256};

use crate::error::Error;

/// Every hash algorithm name Kopia 0.23 accepts, sorted as Kopia lists them.
pub const HASH_ALGORITHMS: &[&str] = &[
    "BLAKE2B-256",
    "BLAKE2B-256-128",
    "BLAKE2S-128",
    "BLAKE2S-256",
    "BLAKE3-256",
    "BLAKE3-256-128",
    "HMAC-SHA224",
    "HMAC-SHA256",
    "HMAC-SHA256-128",
    "HMAC-SHA3-224",
    "HMAC-SHA3-256",
];

/// What new repositories use.
pub const DEFAULT_HASH_ALGORITHM: &str = "BLAKE2B-256-128";

/// Largest output of any algorithm (bytes).
pub const MAX_HASH_LEN: usize = 32;

/// Context string Kopia uses to stretch an HMAC secret shorter than 32 bytes into a BLAKE3 key.
const BLAKE3_KEY_CONTEXT: &str = "kopia blake3 derived key v1";

/// A keyed hash state prepared once per repository; each call clones it, so the key schedule
/// (BLAKE2 key block, HMAC pads, BLAKE3 key) is never recomputed per content.
#[derive(Clone)]
enum KeyedState {
    Blake2b256(Blake2bMac<U32>),
    /// An empty secret means plain (unkeyed) BLAKE2, not a MAC over an all-zero key block.
    Blake2b256Unkeyed(Blake2b<U32>),
    Blake2s128(Blake2sMac<U16>),
    Blake2s256(Blake2sMac<U32>),
    Blake2s256Unkeyed(Blake2s256),
    HmacSha224(Hmac<Sha224>),
    HmacSha256(Hmac<Sha256>),
    HmacSha3_224(Hmac<Sha3_224>),
    HmacSha3_256(Hmac<Sha3_256>),
    Blake3([u8; 32]),
}

/// The repository's content hash function.
#[derive(Clone)]
pub struct ContentHasher {
    algorithm: &'static str,
    state: KeyedState,
    output_len: usize,
}

impl std::fmt::Debug for ContentHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The state holds the HMAC secret: never print it.
        f.debug_struct("ContentHasher")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl ContentHasher {
    /// Prepares `algorithm` keyed with `hmac_secret` (empty for "HMAC disabled" repositories).
    pub fn new(algorithm: &str, hmac_secret: &[u8]) -> Result<Self, Error> {
        let name = HASH_ALGORITHMS
            .iter()
            .copied()
            .find(|known| *known == algorithm)
            .ok_or_else(|| Error::Unsupported(format!("hash algorithm '{algorithm}'")))?;
        let bad_key = || {
            Error::Unsupported(format!(
                "hash algorithm '{name}' with a {}-byte HMAC secret",
                hmac_secret.len()
            ))
        };
        // BLAKE2 keys are limited to the block-size bound (64 bytes for b, 32 for s), as in Go.
        let (state, output_len) = match name {
            "BLAKE2B-256-128" | "BLAKE2B-256" => {
                // Always a 32-byte digest parameter; the -128 variant truncates afterwards.
                let state = if hmac_secret.is_empty() {
                    KeyedState::Blake2b256Unkeyed(Blake2b::new())
                } else {
                    KeyedState::Blake2b256(
                        <Blake2bMac<U32> as Mac>::new_from_slice(hmac_secret)
                            .map_err(|_| bad_key())?,
                    )
                };
                let len = if name == "BLAKE2B-256" { 32 } else { 16 };
                (state, len)
            }
            "BLAKE2S-128" => {
                // Go's blake2s refuses an unkeyed 128-bit hash.
                if hmac_secret.is_empty() {
                    return Err(bad_key());
                }
                let mac =
                    <Blake2sMac<U16> as Mac>::new_from_slice(hmac_secret).map_err(|_| bad_key())?;
                (KeyedState::Blake2s128(mac), 16)
            }
            "BLAKE2S-256" => {
                let state = if hmac_secret.is_empty() {
                    KeyedState::Blake2s256Unkeyed(Blake2s256::new())
                } else {
                    KeyedState::Blake2s256(
                        <Blake2sMac<U32> as Mac>::new_from_slice(hmac_secret)
                            .map_err(|_| bad_key())?,
                    )
                };
                (state, 32)
            }
            "HMAC-SHA256" | "HMAC-SHA256-128" => {
                let mac =
                    <Hmac<Sha256> as Mac>::new_from_slice(hmac_secret).map_err(|_| bad_key())?;
                let len = if name == "HMAC-SHA256" { 32 } else { 16 };
                (KeyedState::HmacSha256(mac), len)
            }
            "HMAC-SHA224" => {
                let mac =
                    <Hmac<Sha224> as Mac>::new_from_slice(hmac_secret).map_err(|_| bad_key())?;
                (KeyedState::HmacSha224(mac), 28)
            }
            "HMAC-SHA3-224" => {
                let mac =
                    <Hmac<Sha3_224> as Mac>::new_from_slice(hmac_secret).map_err(|_| bad_key())?;
                (KeyedState::HmacSha3_224(mac), 28)
            }
            "HMAC-SHA3-256" => {
                let mac =
                    <Hmac<Sha3_256> as Mac>::new_from_slice(hmac_secret).map_err(|_| bad_key())?;
                (KeyedState::HmacSha3_256(mac), 32)
            }
            "BLAKE3-256" | "BLAKE3-256-128" => {
                let len = if name == "BLAKE3-256" { 32 } else { 16 };
                (KeyedState::Blake3(blake3_key(hmac_secret)), len)
            }
            _ => unreachable!("every name of HASH_ALGORITHMS is handled above"),
        };
        Ok(ContentHasher {
            algorithm: name,
            state,
            output_len,
        })
    }

    /// Hash of `data` (`output_len()` bytes).
    pub fn hash(&self, data: &[u8]) -> Vec<u8> {
        fn finish<M: Mac + Clone>(prepared: &M, data: &[u8]) -> Vec<u8> {
            prepared
                .clone()
                .chain_update(data)
                .finalize()
                .into_bytes()
                .to_vec()
        }
        fn finish_unkeyed<D: Digest + Clone>(prepared: &D, data: &[u8]) -> Vec<u8> {
            prepared.clone().chain_update(data).finalize().to_vec()
        }
        let mut full = match &self.state {
            KeyedState::Blake2b256(m) => finish(m, data),
            KeyedState::Blake2b256Unkeyed(d) => finish_unkeyed(d, data),
            KeyedState::Blake2s256Unkeyed(d) => finish_unkeyed(d, data),
            KeyedState::Blake2s128(m) => finish(m, data),
            KeyedState::Blake2s256(m) => finish(m, data),
            KeyedState::HmacSha224(m) => finish(m, data),
            KeyedState::HmacSha256(m) => finish(m, data),
            KeyedState::HmacSha3_224(m) => finish(m, data),
            KeyedState::HmacSha3_256(m) => finish(m, data),
            KeyedState::Blake3(key) => blake3::keyed_hash(key, data).as_bytes().to_vec(),
        };
        full.truncate(self.output_len);
        full
    }

    /// Length of [`hash`](Self::hash) output: 16, 28 or 32 bytes.
    pub fn output_len(&self) -> usize {
        self.output_len
    }

    /// The algorithm name as written in the repository config.
    pub fn algorithm(&self) -> &str {
        self.algorithm
    }
}

/// Kopia's BLAKE3 key: the first 32 bytes of the secret, or a key derived from shorter secrets.
fn blake3_key(secret: &[u8]) -> [u8; 32] {
    match secret.get(..32) {
        Some(first) => first.try_into().expect("slice of exactly 32 bytes"),
        None => blake3::derive_key(BLAKE3_KEY_CONTEXT, secret),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_00_to_1f() -> Vec<u8> {
        (0u8..32).collect()
    }

    fn hex_hash(algorithm: &str, secret: &[u8], data: &[u8]) -> String {
        hex::encode(ContentHasher::new(algorithm, secret).unwrap().hash(data))
    }

    // §12.3, Kopia's TestFormats (verified).
    #[test]
    fn kopia_test_formats_vectors() {
        let secret = b"a-repository-testing-hmac-secret";
        let fox = b"The quick brown fox jumps over the lazy dog";
        assert_eq!(
            hex_hash("HMAC-SHA256", secret, b""),
            "0c2d44dc80de21b71d4219623082f5dc253fe9bb54e48b0fc90e118f8e6cf419"
        );
        assert_eq!(
            hex_hash("HMAC-SHA256", secret, fox),
            "6bbb74fef0699e516fb96252d8280c1c7f3492e12de9ec6d79c3c9c39b7b0063"
        );
        assert_eq!(
            hex_hash("HMAC-SHA256", b"key", fox),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8"
        );
        assert_eq!(
            hex_hash("HMAC-SHA256-128", b"key", fox),
            "f7bc83f430538424b13298e6aa6fb143"
        );
    }

    // §12.3 derived vectors: key 00..1f, data "hello".
    #[test]
    fn derived_vectors_with_key_00_to_1f() {
        let key = key_00_to_1f();
        let cases = [
            ("BLAKE2B-256-128", "bc2cf927f9ed52cc29116e6a5cfdbdf9"),
            (
                "BLAKE2B-256",
                "bc2cf927f9ed52cc29116e6a5cfdbdf96a7250f85db66887b13652596bf40d61",
            ),
            (
                "BLAKE2S-256",
                "9eb0cbcd6be5835f87e6c7d7f9bfcb07454a311777a671f274222bab4c191dea",
            ),
            ("BLAKE2S-128", "1f946dc212a39570bc06fd378517a91e"),
            ("HMAC-SHA256-128", "53c40272a70c15ca4ee0af4df1f155fd"),
            (
                "HMAC-SHA224",
                "37f5f97c60a525c95aa82d8b17f759224536bf18a922d52f0311df41",
            ),
            (
                "HMAC-SHA3-224",
                "3ad0789a45fa11d480688d11c59d27147ba7460753e1b87d89117a07",
            ),
            (
                "HMAC-SHA3-256",
                "e6d520deb05cf56101c5bbbc508af68ee30d077975a59ed8a70523d8ea84e11e",
            ),
            (
                "BLAKE3-256",
                "23278c18c8c9fe0fbfadfb940af5f08d3fd1802bf919dd6d77ebd211a19fbe29",
            ),
            ("BLAKE3-256-128", "23278c18c8c9fe0fbfadfb940af5f08d"),
        ];
        for (algorithm, expected) in cases {
            assert_eq!(hex_hash(algorithm, &key, b"hello"), expected, "{algorithm}");
        }
    }

    #[test]
    fn blake2b_256_128_is_truncated_32_byte_digest_not_16_byte_digest() {
        let got = hex_hash("BLAKE2B-256-128", &key_00_to_1f(), b"hello");
        assert_ne!(got, "b6cd31b2100d036e7bfa834e88e5b054");
    }

    #[test]
    fn blake2b_256_128_empty_data_and_no_key() {
        assert_eq!(
            hex_hash("BLAKE2B-256-128", &key_00_to_1f(), b""),
            "4e51e7a913fc80137da52880fecca175"
        );
        assert_eq!(
            hex_hash("BLAKE2B-256-128", b"", b"hello"),
            "324dcf027dd4a30a932c441f365a25e8"
        );
    }

    // "HMAC disabled" repositories: unkeyed BLAKE2 (Python hashlib and Go agree).
    #[test]
    fn unkeyed_blake2_for_empty_secret() {
        assert_eq!(
            hex_hash("BLAKE2B-256", b"", b"hello"),
            "324dcf027dd4a30a932c441f365a25e86b173defa4b8e58948253471b81b72cf"
        );
        assert_eq!(
            hex_hash("BLAKE2S-256", b"", b"hello"),
            "19213bacc58dee6dbde3ceb9a47cbb330b3d86f8cca8997eb00be456f140ca25"
        );
    }

    #[test]
    fn blake3_short_secret_is_stretched() {
        assert_eq!(
            hex::encode(blake3_key(b"secret")),
            "551a3fb015a839c9f575153c26d153c0e7faa9770f84aaf12ceefda277a01fb5"
        );
        assert_eq!(
            hex_hash("BLAKE3-256", b"secret", b"hello"),
            "317d1a056289fd790a88e5435b12e165aeb2d7aac2e8e7114ddc3833323fb041"
        );
    }

    #[test]
    fn blake3_long_secret_uses_first_32_bytes() {
        let mut long: Vec<u8> = key_00_to_1f();
        long.extend_from_slice(b"ignored tail");
        assert_eq!(
            hex_hash("BLAKE3-256", &long, b"hello"),
            hex_hash("BLAKE3-256", &key_00_to_1f(), b"hello")
        );
    }

    #[test]
    fn every_listed_algorithm_is_constructible_with_its_output_length() {
        let key = key_00_to_1f();
        for name in HASH_ALGORITHMS {
            let hasher = ContentHasher::new(name, &key).unwrap();
            assert_eq!(hasher.algorithm(), *name);
            assert_eq!(hasher.hash(b"x").len(), hasher.output_len());
            assert!(hasher.output_len() <= MAX_HASH_LEN);
        }
        assert!(HASH_ALGORITHMS.contains(&DEFAULT_HASH_ALGORITHM));
        assert!(HASH_ALGORITHMS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn hasher_is_reusable() {
        let hasher = ContentHasher::new("BLAKE2B-256-128", &key_00_to_1f()).unwrap();
        assert_eq!(hasher.hash(b"hello"), hasher.hash(b"hello"));
        assert_ne!(hasher.hash(b"hello"), hasher.hash(b"hellp"));
    }

    #[test]
    fn unknown_algorithm_is_unsupported() {
        let err = ContentHasher::new("MD5", b"k").unwrap_err();
        assert!(
            matches!(&err, Error::Unsupported(m) if m == "hash algorithm 'MD5'"),
            "{err}"
        );
    }

    #[test]
    fn keys_go_would_reject_are_rejected() {
        assert!(matches!(
            ContentHasher::new("BLAKE2S-128", b""),
            Err(Error::Unsupported(_))
        ));
        assert!(ContentHasher::new("BLAKE2S-256", &[7; 33]).is_err());
        assert!(ContentHasher::new("BLAKE2B-256-128", &[7; 65]).is_err());
        assert!(ContentHasher::new("BLAKE2B-256-128", &[7; 64]).is_ok());
        assert!(ContentHasher::new("HMAC-SHA256", &[7; 200]).is_ok());
    }

    #[test]
    fn debug_does_not_leak_the_secret() {
        let hasher = ContentHasher::new("HMAC-SHA256", b"super-secret").unwrap();
        assert!(!format!("{hasher:?}").contains("super"));
    }
}
