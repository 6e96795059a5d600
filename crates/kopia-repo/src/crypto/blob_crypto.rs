//! Blob-level encryption ("blobcrypto", §4.3) for index, session and log blobs: the blob ID is
//! `prefix || hex(H(plaintext)) [|| "-" || suffix]` and the IV is recovered from that ID.
//! Pack blobs and their contents are not encrypted this way (each content has its own IV).

use super::encryption::ContentEncryptor;
use super::hashing::ContentHasher;
use crate::error::{DecodeError, Error};

/// IV length taken from a blob ID (16 bytes = 32 hex characters).
const BLOB_IV_LEN: usize = 16;

/// The IV of a blob: cut the ID at its first `-`, then hex-decode the last 32 characters of the
/// head (the hash, or its last 16 bytes for 32-byte hashes).
pub fn iv_from_blob_id(blob_id: &str) -> Result<Vec<u8>, DecodeError> {
    let head = blob_id.split('-').next().unwrap_or(blob_id);
    let hex_len = 2 * BLOB_IV_LEN;
    let tail = head
        .len()
        .checked_sub(hex_len)
        .and_then(|start| head.get(start..))
        .ok_or_else(|| {
            DecodeError::new(format!(
                "blob ID '{blob_id}' is too short to carry a {BLOB_IV_LEN}-byte IV"
            ))
        })?;
    hex::decode(tail).map_err(|_| {
        DecodeError::new(format!(
            "blob ID '{blob_id}' does not end its hash part in {hex_len} hex digits"
        ))
    })
}

/// Encrypts `plaintext` as a blob named after its hash: returns `(blob ID, stored bytes)`.
///
/// `prefix` (e.g. `xn0_`, `s`, `_log_`) must not contain `-`, which separates the suffix; it is
/// a program constant, so this is asserted.
pub fn encrypt_blob(
    hasher: &ContentHasher,
    encryptor: &ContentEncryptor,
    prefix: &str,
    suffix: Option<&str>,
    plaintext: &[u8],
) -> (String, Vec<u8>) {
    assert!(!prefix.contains('-'), "blob prefix '{prefix}' contains '-'");
    let hash = hasher.hash(plaintext);
    let mut blob_id = format!("{prefix}{}", hex::encode(&hash));
    if let Some(suffix) = suffix {
        blob_id.push('-');
        blob_id.push_str(suffix);
    }
    // Same bytes iv_from_blob_id will recover: the last 16 bytes of the hash.
    let iv = &hash[hash.len() - BLOB_IV_LEN..];
    (blob_id, encryptor.encrypt(plaintext, iv))
}

/// Decrypts a blob written by [`encrypt_blob`] (by us or by Kopia), naming it on failure.
pub fn decrypt_blob(
    encryptor: &ContentEncryptor,
    blob_id: &str,
    stored: &[u8],
) -> Result<Vec<u8>, Error> {
    let iv = iv_from_blob_id(blob_id).map_err(|reason| Error::corrupt_blob(blob_id, reason))?;
    encryptor
        .decrypt(stored, &iv)
        .map_err(|reason| Error::corrupt_blob(blob_id, reason))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto(hash: &str) -> (ContentHasher, ContentEncryptor) {
        let secret: Vec<u8> = (0x20u8..0x40).collect();
        let master: Vec<u8> = (0u8..0x20).collect();
        (
            ContentHasher::new(hash, &secret).unwrap(),
            ContentEncryptor::new("AES256-GCM-HMAC-SHA256", &master).unwrap(),
        )
    }

    #[test]
    fn iv_extraction_rules() {
        let hash = "00112233445566778899aabbccddeeff";
        let iv = hex::decode(hash).unwrap();
        assert_eq!(iv_from_blob_id(&format!("xn0_{hash}")).unwrap(), iv);
        assert_eq!(
            iv_from_blob_id(&format!("xn12_{hash}-s0011223344556677144-c1")).unwrap(),
            iv
        );
        assert_eq!(iv_from_blob_id(&format!("n{hash}")).unwrap(), iv);
        assert_eq!(iv_from_blob_id(hash).unwrap(), iv);
        // A 32-byte hash contributes its last 16 bytes.
        assert_eq!(
            iv_from_blob_id(&format!("xn0_{}{hash}", "ab".repeat(16))).unwrap(),
            iv
        );
    }

    #[test]
    fn iv_extraction_errors() {
        for bad in [
            "",
            "xn0_0011",
            "xn0_00112233445566778899aabbccddeef-0",
            "-00112233445566778899aabbccddeeff",
            "xn0_00112233445566778899aabbccddeefg",
            "xn0_0011223344556677889€aabbccddeeff",
        ] {
            let err = iv_from_blob_id(bad).unwrap_err();
            assert!(err.0.contains("blob ID"), "{bad}: {err}");
        }
    }

    #[test]
    fn round_trip_with_prefix_and_suffix() {
        for hash in ["BLAKE2B-256-128", "BLAKE2B-256", "HMAC-SHA224"] {
            let (hasher, encryptor) = crypto(hash);
            let plaintext = b"index blob bytes";
            let (blob_id, stored) = encrypt_blob(
                &hasher,
                &encryptor,
                "xn0_",
                Some("s0011223344556677144-c1"),
                plaintext,
            );
            let expected_id = format!(
                "xn0_{}-s0011223344556677144-c1",
                hex::encode(hasher.hash(plaintext))
            );
            assert_eq!(blob_id, expected_id);
            assert_eq!(
                decrypt_blob(&encryptor, &blob_id, &stored).unwrap(),
                plaintext
            );

            let (plain_id, stored) = encrypt_blob(&hasher, &encryptor, "n", None, plaintext);
            assert!(!plain_id.contains('-'));
            assert_eq!(
                decrypt_blob(&encryptor, &plain_id, &stored).unwrap(),
                plaintext
            );
        }
    }

    #[test]
    fn decrypting_under_another_name_or_tampered_fails_naming_the_blob() {
        let (hasher, encryptor) = crypto("BLAKE2B-256-128");
        let (blob_id, stored) = encrypt_blob(&hasher, &encryptor, "xn0_", None, b"payload");
        let (other_id, _) = encrypt_blob(&hasher, &encryptor, "xn0_", None, b"other");
        match decrypt_blob(&encryptor, &other_id, &stored) {
            Err(Error::CorruptBlob { blob_id: named, .. }) => assert_eq!(named, other_id),
            other => panic!("unexpected {other:?}"),
        }
        let mut tampered = stored.clone();
        *tampered.last_mut().unwrap() ^= 0x80;
        assert!(matches!(
            decrypt_blob(&encryptor, &blob_id, &tampered),
            Err(Error::CorruptBlob { .. })
        ));
        assert!(matches!(
            decrypt_blob(&encryptor, "xn0_short", &stored),
            Err(Error::CorruptBlob { .. })
        ));
        assert!(matches!(
            decrypt_blob(&encryptor, &blob_id, &stored[..10]),
            Err(Error::CorruptBlob { .. })
        ));
    }
}
