//! Key derivation: the password KDFs that turn a password into the format key (§2.2), HKDF-SHA256,
//! the AES-256-GCM envelope of `kopia.repository` / `kopia.blobcfg` (§2.3, §2.6) and the
//! purpose keys derived from the master key (§2.8). Parsing the format-blob JSON is not done here.

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::Aes256Gcm;
use hkdf::Hkdf;
use rand::RngCore;
use sha2::Sha256;

use super::encryption::{NONCE_LEN, TAG_LEN};
use super::scrypt::{scrypt, ScryptParams};
use crate::error::{DecodeError, Error};

/// Password key-derivation algorithms (`keyAlgo`) Kopia 0.23 accepts (release builds).
pub const KEY_DERIVATION_ALGORITHMS: &[&str] = &[SCRYPT_ALGORITHM, PBKDF2_ALGORITHM];

/// What new repositories use.
pub const DEFAULT_KEY_DERIVATION_ALGORITHM: &str = SCRYPT_ALGORITHM;

const SCRYPT_ALGORITHM: &str = "scrypt-65536-8-1";
const PBKDF2_ALGORITHM: &str = "pbkdf2-sha256-600000";
const SCRYPT_LOG2_N: u8 = 16;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const PBKDF2_ITERATIONS: u32 = 600_000;
/// Both KDFs refuse salts (the repository `uniqueID`) shorter than 128 bits.
const MIN_SALT_LEN: usize = 16;

/// HKDF `info` values of the format-blob envelope.
const FORMAT_AES_KEY_INFO: &[u8] = b"AES";
const FORMAT_AUTH_DATA_INFO: &[u8] = b"CHECKSUM";

/// Blob names used in errors about the envelope.
const FORMAT_BLOB_ID: &str = "kopia.repository";
const BLOBCFG_BLOB_ID: &str = "kopia.blobcfg";

/// Derives the 32-byte format key from the password and the repository `uniqueID` (the salt).
pub fn derive_format_key(
    key_algorithm: &str,
    password: &str,
    unique_id: &[u8],
) -> Result<[u8; 32], Error> {
    if !KEY_DERIVATION_ALGORITHMS.contains(&key_algorithm) {
        return Err(Error::Unsupported(format!(
            "key derivation algorithm '{key_algorithm}'"
        )));
    }
    if unique_id.len() < MIN_SALT_LEN {
        return Err(Error::corrupt_blob(
            FORMAT_BLOB_ID,
            format!(
                "uniqueID is {} bytes, key derivation needs at least {MIN_SALT_LEN}",
                unique_id.len()
            ),
        ));
    }
    let mut key = [0u8; 32];
    if key_algorithm == SCRYPT_ALGORITHM {
        let params = ScryptParams::new(SCRYPT_LOG2_N, SCRYPT_R, SCRYPT_P)
            .expect("Kopia's scrypt parameters are valid");
        scrypt(password.as_bytes(), unique_id, &params, &mut key)
            .expect("32-byte output is a valid scrypt length");
    } else {
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), unique_id, PBKDF2_ITERATIONS, &mut key);
    }
    Ok(key)
}

/// HKDF-SHA256 (extract with `salt`, expand with `info`) to `len` bytes.
///
/// Panics if `len` exceeds 255 × 32 bytes, the RFC 5869 limit (lengths are program constants).
pub fn hkdf_sha256(secret: &[u8], salt: &[u8], info: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    Hkdf::<Sha256>::new(Some(salt), secret)
        .expand(info, &mut out)
        .expect("HKDF output length within 255 blocks");
    out
}

/// Kopia's `DeriveKey(purpose, len)` (§2.8): HKDF over the master key, salted with `uniqueID`,
/// with the purpose as info. Format-v1 repositories (`enablePasswordChange == false`) derive from
/// the format key instead, as Kopia does.
pub fn derive_purpose_key(
    master_key: &[u8],
    format_key: &[u8],
    enable_password_change: bool,
    unique_id: &[u8],
    purpose: &str,
    len: usize,
) -> Result<Vec<u8>, Error> {
    let (secret, what) = if enable_password_change {
        (master_key, "masterKey")
    } else {
        (format_key, "format key")
    };
    if secret.is_empty() {
        return Err(Error::corrupt_blob(
            FORMAT_BLOB_ID,
            format!("empty {what}: cannot derive the '{purpose}' key"),
        ));
    }
    Ok(hkdf_sha256(secret, unique_id, purpose.as_bytes(), len))
}

/// AES-256-GCM cipher and associated data of the format-blob envelope.
fn format_envelope(format_key: &[u8], unique_id: &[u8]) -> (Aes256Gcm, Vec<u8>) {
    let aes_key = hkdf_sha256(format_key, unique_id, FORMAT_AES_KEY_INFO, 32);
    let auth_data = hkdf_sha256(format_key, unique_id, FORMAT_AUTH_DATA_INFO, 32);
    let cipher = Aes256Gcm::new_from_slice(&aes_key).expect("32-byte AES-256 key");
    (cipher, auth_data)
}

/// Encrypts the inner JSON of `kopia.repository` (`encryptedBlockFormat`) or of `kopia.blobcfg`:
/// `nonce(12) || ciphertext || tag(16)` with a fresh random nonce.
pub fn encrypt_format_block(format_key: &[u8], unique_id: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    encrypt_format_block_with_nonce(format_key, unique_id, plaintext, &nonce)
}

/// As [`encrypt_format_block`] with a caller-chosen nonce, for reproducible tests only.
pub(crate) fn encrypt_format_block_with_nonce(
    format_key: &[u8],
    unique_id: &[u8],
    plaintext: &[u8],
    nonce: &[u8; NONCE_LEN],
) -> Vec<u8> {
    let (cipher, auth_data) = format_envelope(format_key, unique_id);
    let mut out = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(nonce);
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_in_place_detached(nonce.into(), &auth_data, &mut out[NONCE_LEN..])
        .expect("format block below the 64 GiB AES-GCM limit");
    out.extend_from_slice(&tag);
    out
}

/// Why opening the envelope failed: the bytes cannot be an envelope, or they do not authenticate.
enum EnvelopeError {
    TooShort(DecodeError),
    AuthenticationFailed,
}

fn open_envelope(
    format_key: &[u8],
    unique_id: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, EnvelopeError> {
    if data.len() < NONCE_LEN + TAG_LEN {
        return Err(EnvelopeError::TooShort(DecodeError::new(format!(
            "encrypted block is {} bytes, shorter than the {}-byte nonce and tag",
            data.len(),
            NONCE_LEN + TAG_LEN
        ))));
    }
    let (nonce, rest) = data.split_at(NONCE_LEN);
    let (body, tag) = rest.split_at(rest.len() - TAG_LEN);
    let (cipher, auth_data) = format_envelope(format_key, unique_id);
    let mut plaintext = body.to_vec();
    cipher
        .decrypt_in_place_detached(nonce.into(), &auth_data, &mut plaintext, tag.into())
        .map_err(|_| EnvelopeError::AuthenticationFailed)?;
    Ok(plaintext)
}

/// Decrypts `encryptedBlockFormat` of `kopia.repository`. An authentication failure means the
/// password (hence the format key) is wrong: [`Error::InvalidPassword`].
pub fn decrypt_format_block(
    format_key: &[u8],
    unique_id: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, Error> {
    open_envelope(format_key, unique_id, data).map_err(|e| match e {
        EnvelopeError::TooShort(reason) => Error::corrupt_blob(FORMAT_BLOB_ID, reason),
        EnvelopeError::AuthenticationFailed => Error::InvalidPassword,
    })
}

/// Decrypts `kopia.blobcfg`. Its key was already proven by `kopia.repository`, so an
/// authentication failure here means a corrupt blob, not a wrong password.
pub fn decrypt_blobcfg_block(
    format_key: &[u8],
    unique_id: &[u8],
    data: &[u8],
) -> Result<Vec<u8>, Error> {
    open_envelope(format_key, unique_id, data).map_err(|e| match e {
        EnvelopeError::TooShort(reason) => Error::corrupt_blob(BLOBCFG_BLOB_ID, reason),
        EnvelopeError::AuthenticationFailed => Error::corrupt_blob(
            BLOBCFG_BLOB_ID,
            "AES-256-GCM authentication failed (bytes altered or not from this repository)",
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;

    fn bytes_00_to_1f() -> Vec<u8> {
        (0u8..32).collect()
    }

    // §12.1, Kopia's key_derivation_test (verified).
    #[test]
    fn hkdf_kopia_vector() {
        assert_eq!(
            hex::encode(hkdf_sha256(
                b"ABCDEFGHIJKLMNOP",
                b"0123456789012345",
                b"the-test-purpose",
                32
            )),
            "828769ee8969bc37f11dbaa32838f8db6c19daa6e3ae5f5eed2da2d94d8faddb"
        );
    }

    #[test]
    fn purpose_key_rejects_empty_secret_and_picks_the_right_one() {
        let uid = bytes_00_to_1f();
        let err = derive_purpose_key(b"", b"fk", true, &uid, "p", 32).unwrap_err();
        assert!(matches!(err, Error::CorruptBlob { .. }), "{err}");
        assert!(derive_purpose_key(b"mk", b"", false, &uid, "p", 32).is_err());
        assert_eq!(
            derive_purpose_key(b"mk", b"fk", true, &uid, "p", 32).unwrap(),
            hkdf_sha256(b"mk", &uid, b"p", 32)
        );
        assert_eq!(
            derive_purpose_key(b"mk", b"fk", false, &uid, "p", 16).unwrap(),
            hkdf_sha256(b"fk", &uid, b"p", 16)
        );
    }

    // §12.5 (derived): one scrypt run (slow-ish), then the envelope keys from it.
    #[test]
    fn scrypt_and_envelope_keys_vector() {
        let uid = bytes_00_to_1f();
        let key = derive_format_key("scrypt-65536-8-1", "foobarbazfoobarbaz", &uid).unwrap();
        assert_eq!(
            hex::encode(key),
            "e9ecde1e4af85d57a25d6f674ba7eab9700ffd33e1cbb086b475ef9267e1a5a0"
        );
        assert_eq!(
            hex::encode(hkdf_sha256(&key, &uid, FORMAT_AES_KEY_INFO, 32)),
            "3f7c621c118cda3082b1c6c0fad91c648a3213883ec0c6ff67000464f6cfc816"
        );
        assert_eq!(
            hex::encode(hkdf_sha256(&key, &uid, FORMAT_AUTH_DATA_INFO, 32)),
            "6b45e5ac8937eefc3987a9acd8ea50d9907b5b4ba47afc6f3900d5a93dd74cd3"
        );
    }

    #[test]
    fn pbkdf2_vector() {
        let key = derive_format_key(
            "pbkdf2-sha256-600000",
            "foobarbazfoobarbaz",
            &bytes_00_to_1f(),
        )
        .unwrap();
        assert_eq!(
            hex::encode(key),
            "c45766bc4bd46aeabeedb4bffd86e53d98ad937a173292125b1e20b637d64e0b"
        );
    }

    #[test]
    fn unknown_or_empty_key_algorithm_is_unsupported() {
        for algorithm in ["", "testing-only-insecure", "scrypt-1024-8-1"] {
            let err = derive_format_key(algorithm, "pw", &bytes_00_to_1f()).unwrap_err();
            assert!(
                matches!(&err, Error::Unsupported(m) if m.contains(&format!("'{algorithm}'"))),
                "{err}"
            );
        }
    }

    #[test]
    fn short_salt_is_rejected_before_any_work() {
        for algorithm in KEY_DERIVATION_ALGORITHMS {
            let err = derive_format_key(algorithm, "pw", &[1; 15]).unwrap_err();
            assert!(matches!(err, Error::CorruptBlob { .. }), "{err}");
        }
    }

    /// §12.6: the real Kopia-written `kopia.repository` (password `test123`), end to end.
    #[test]
    fn real_kopia_repository_blob_decrypts() {
        let outer: serde_json::Value = serde_json::from_str(REAL_FORMAT_BLOB).unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        let uid = b64.decode(outer["uniqueID"].as_str().unwrap()).unwrap();
        let block = b64
            .decode(outer["encryptedBlockFormat"].as_str().unwrap())
            .unwrap();
        assert_eq!(
            hex::encode(&uid),
            "b52944c6b3c21b57dba8f32645db276b8387c90d943586a47fffc7b13fb5c009"
        );
        assert_eq!(outer["encryption"], "AES256_GCM");
        let key_algorithm = outer["keyAlgo"].as_str().unwrap();
        let format_key = derive_format_key(key_algorithm, "test123", &uid).unwrap();
        assert_eq!(
            hex::encode(format_key),
            "750e45e60065fc890eb55844940614ddd90a0210c8e6f10fd91e99a6a24448d0"
        );

        assert_eq!(block.len(), 607);
        let plaintext = decrypt_format_block(&format_key, &uid, &block).unwrap();
        assert_eq!(plaintext.len(), 579);
        assert_eq!(std::str::from_utf8(&plaintext).unwrap(), REAL_FORMAT_JSON);
        let inner: serde_json::Value = serde_json::from_slice(&plaintext).unwrap();
        let format = &inner["format"];
        assert_eq!(format["hash"], "BLAKE2B-256-128");
        assert_eq!(format["encryption"], "AES256-GCM-HMAC-SHA256");
        assert_eq!(format["version"], 3);
        assert_eq!(format["enablePasswordChange"], true);
        let secret = b64.decode(format["secret"].as_str().unwrap()).unwrap();
        let master_key = b64.decode(format["masterKey"].as_str().unwrap()).unwrap();
        assert_eq!(
            hex::encode(&secret),
            "f2b28d68687c94a79a1e31e78c1ba5eef9286a6f54ffd66a75aba33664c51500"
        );
        assert_eq!(
            hex::encode(&master_key),
            "a1cf9cedea32c24db3bcc704b9bcbe45e01914b857d151b64e48c974b63cbfd5"
        );

        // Derived from these (§12.6): the content key-derivation secret and the maintenance key.
        assert_eq!(
            hex::encode(hkdf_sha256(&master_key, b"encryption", b"", 32)),
            "e38120a94af0e9fa49fe02784e11571bede0eece0679bd836f3ba493387cb468"
        );
        let maintenance = derive_purpose_key(
            &master_key,
            &format_key,
            true,
            &uid,
            "maintenance schedule",
            32,
        )
        .unwrap();
        assert_eq!(
            hex::encode(maintenance),
            "8aafb2b903a360cc4b00af46b0787d1f65e18057d7fa77c4878f865109ba68e8"
        );

        // Rewriting with the blob's own nonce reproduces Kopia's bytes exactly.
        let nonce: [u8; NONCE_LEN] = block[..NONCE_LEN].try_into().unwrap();
        assert_eq!(
            encrypt_format_block_with_nonce(&format_key, &uid, &plaintext, &nonce),
            block
        );

        // A wrong password is reported as such; so is a tampered block.
        let mut wrong_key = format_key;
        wrong_key[0] ^= 1;
        assert!(matches!(
            decrypt_format_block(&wrong_key, &uid, &block),
            Err(Error::InvalidPassword)
        ));
        let mut tampered = block.clone();
        tampered[100] ^= 0x10;
        assert!(matches!(
            decrypt_format_block(&format_key, &uid, &tampered),
            Err(Error::InvalidPassword)
        ));
    }

    #[test]
    fn format_block_round_trip_and_errors() {
        let uid = bytes_00_to_1f();
        let key = [7u8; 32];
        let sealed = encrypt_format_block(&key, &uid, b"{}");
        assert_eq!(sealed.len(), 30, "a default kopia.blobcfg is 12+2+16 bytes");
        assert_ne!(
            sealed,
            encrypt_format_block(&key, &uid, b"{}"),
            "fresh nonce"
        );
        assert_eq!(decrypt_format_block(&key, &uid, &sealed).unwrap(), b"{}");
        assert_eq!(decrypt_blobcfg_block(&key, &uid, &sealed).unwrap(), b"{}");

        // The salt (uniqueID) is bound in too.
        let mut other_uid = uid.clone();
        other_uid[31] ^= 1;
        assert!(matches!(
            decrypt_format_block(&key, &other_uid, &sealed),
            Err(Error::InvalidPassword)
        ));
        match decrypt_blobcfg_block(&key, &other_uid, &sealed) {
            Err(Error::CorruptBlob { blob_id, .. }) => assert_eq!(blob_id, "kopia.blobcfg"),
            other => panic!("unexpected {other:?}"),
        }

        for len in [0, 11, 27] {
            match decrypt_format_block(&key, &uid, &sealed[..len.min(sealed.len())]) {
                Err(Error::CorruptBlob { blob_id, .. }) => assert_eq!(blob_id, "kopia.repository"),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The decrypted block, as quoted in §2.4.
    const REAL_FORMAT_JSON: &str = r#"{"format":{"hash":"BLAKE2B-256-128","encryption":"AES256-GCM-HMAC-SHA256","secret":"8rKNaGh8lKeaHjHnjBul7vkoam9U/9ZqdaujNmTFFQA=","masterKey":"oc+c7eoywk2zvMcEuby+ReAZFLhX0VG2TkjJdLY8v9U=","version":3,"maxPackSize":20971520,"indexVersion":2,"epochParameters":{"Enabled":true,"EpochRefreshFrequency":1200000000000,"FullCheckpointFrequency":7,"CleanupSafetyMargin":14400000000000,"MinEpochDuration":86400000000000,"EpochAdvanceOnCountThreshold":20,"EpochAdvanceOnTotalSizeBytesThreshold":10485760,"DeleteParallelism":4},"enablePasswordChange":true,"splitter":"DYNAMIC-4M-BUZHASH"}}"#;

    const REAL_FORMAT_BLOB: &str = r#"{
  "tool": "https://github.com/kopia/kopia",
  "buildVersion": "v0.22.4-0.20260106004250-12e59e388d4a",
  "buildInfo": "2026-01-06T00:42:50Z-12e59e388d4adf2f1b62e332e2f31e05b19d0abd",
  "uniqueID": "tSlExrPCG1fbqPMmRdsna4OHyQ2UNYakf//HsT+1wAk=",
  "keyAlgo": "scrypt-65536-8-1",
  "encryption": "AES256_GCM",
  "encryptedBlockFormat": "CB2wHdKrMC8gG4iweG01AiGNkMkreOO+ER6QCP0cAcIcIoema3RL3Ra8P1yc9QARPFo1E6qSdIqDKpCtYCHDrBwE/YXmTG4/wPUcCeL2yG2ocmL6wy2kZauQzLSPigidZc4HmkzvdU5EIF/u5b+s5gEnMqwdZYlnzYParYZG3BbFBoLn65CPo420IoIU5Qexa0ydlZJg0GclAzKs4kSnvZRrdp7ydg56tg2USLxJHSFzcUmQpy2tMLjO5Nea4ZirNz8d7VybdcpMg+hOMbBIEADoT3zH/1stOVmhjqjn++RJUdDYbFrinttFAu/opYJIjtFM/C7BiFfpDfX4/FC4b2Ljhe3gAWud/9lQDIt9LD/R+UrLZTRmjFJ1amPC0P+2Hj5+7bqbl6G3KIamXvec+r+s2RuObsV9Rqj9+QdxheW30x2LSiHazOzpzG2XDa+acIodTzg/jeanK3wIcC+grb+9OZuijZYML+b4OSgLSbAc8C+5dvQcvQsBcNoUkfcXb56lSft9Pr5sF9msmqDBZ2LttCGHL7Vi12HmoWe0g5SIMsG7348Qw8x2l1ZWxreE7u900yu7Z8v0A1H/6BUYNJQxMNVt+CWU7Md3tQQq1vxd+McVhHjptAegKnL5htbyU7Dlrfbbv0R/AvEy64Om87pofR6hr3vBcmFNvNUyCWv2mGvJBcLfc4gVqItPDrHWeYYrzMrhbdpfrGdKfRzgQIyU5GLYP0iPqv/0vlYDuzvm+hSPGpN389X48EM2v6LhpsTfybx1DwSAY1PYczIcQdWv7WlKaLV2sqH6/eofZA=="
}
"#;
}
