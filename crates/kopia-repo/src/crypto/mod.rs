//! The cryptography Kopia wraps around repository data: content hashing (content IDs),
//! content/blob encryption, password and HKDF key derivation, and the format-blob envelope.
//! Pure functions over bytes; reading blobs and parsing the format JSON live elsewhere.

pub mod blob_crypto;
pub mod encryption;
pub mod hashing;
pub mod kdf;
pub mod scrypt;

pub use blob_crypto::{decrypt_blob, encrypt_blob, iv_from_blob_id};
pub use encryption::{ContentEncryptor, ENCRYPTION_ALGORITHMS, ENCRYPTION_OVERHEAD};
pub use hashing::{ContentHasher, HASH_ALGORITHMS};
pub use kdf::{
    decrypt_blobcfg_block, decrypt_format_block, derive_format_key, derive_purpose_key,
    encrypt_format_block, hkdf_sha256, KEY_DERIVATION_ALGORITHMS,
};

#[cfg(test)]
mod tests {
    use super::encryption::NONCE_LEN;
    use super::*;

    fn bytes(range: std::ops::Range<u8>) -> Vec<u8> {
        range.collect()
    }

    /// §12.8 (derived): the crypto half of the guide's complete manifest write — content ID of
    /// the gzipped manifest, the encrypted content, and the encrypted index blob under its ID.
    #[test]
    fn guide_complete_manifest_write() {
        let secret = bytes(0x20..0x40);
        let master_key = bytes(0x00..0x20);
        let hasher = ContentHasher::new("BLAKE2B-256-128", &secret).unwrap();
        let encryptor = ContentEncryptor::new("AES256-GCM-HMAC-SHA256", &master_key).unwrap();
        assert_eq!(
            hex::encode(hkdf_sha256(&master_key, b"encryption", b"", 32)),
            "e1f9e09d980a7ab1c7eea06c06e0a3bced0c4fa3b29ccd7e3f12e6f91ff3efe7"
        );

        let gz = hex::decode(GUIDE_GZIPPED_MANIFEST).unwrap();
        assert_eq!(gz.len(), 238);
        let json = crate::compression::gunzip(&gz).unwrap();
        assert!(json.starts_with(br#"{"entries":[{"id":"00112233445566778899aabbccddeeff""#));
        assert!(json.ends_with(b"}]}\n"));

        let hash = hasher.hash(&gz);
        assert_eq!(
            format!("m{}", hex::encode(&hash)),
            "m0343b2576af3824da2cb7b09d0dc6322"
        );
        let content_nonce: [u8; NONCE_LEN] = bytes(0xA0..0xAC).try_into().unwrap();
        let encrypted = encryptor.encrypt_with_nonce(&gz, &hash, &content_nonce);
        assert_eq!(hex::encode(&encrypted), GUIDE_ENCRYPTED_CONTENT);
        assert_eq!(encryptor.decrypt(&encrypted, &hash).unwrap(), gz);

        let blob_id = "xn0_b619453ff5a360d3bfcac0a1a37fd1fe-s0011223344556677144-c1";
        let stored = hex::decode(GUIDE_ENCRYPTED_INDEX).unwrap();
        let index = decrypt_blob(&encryptor, blob_id, &stored).unwrap();
        assert_eq!(index.len(), 115);
        assert_eq!(
            hex::encode(hasher.hash(&index)),
            "b619453ff5a360d3bfcac0a1a37fd1fe"
        );
        let iv = iv_from_blob_id(blob_id).unwrap();
        let index_nonce: [u8; NONCE_LEN] = bytes(0xB0..0xBC).try_into().unwrap();
        assert_eq!(
            encryptor.encrypt_with_nonce(&index, &iv, &index_nonce),
            stored
        );

        let (our_id, ours) = encrypt_blob(
            &hasher,
            &encryptor,
            "xn0_",
            Some("s0011223344556677144-c1"),
            &index,
        );
        assert_eq!(our_id, blob_id);
        assert_eq!(decrypt_blob(&encryptor, &our_id, &ours).unwrap(), index);
    }

    const GUIDE_GZIPPED_MANIFEST: &str = "1f8b08000000000000ff754fcb6e833010bcf733f64c82316fff442325a7563d18bc2e56c16b91559b08f1efb5257aec6d67e7a5d9003daf0eefa0de3770061408511452966555d575d3b46dd7f5bdd6c3308ec6205a0b19cc7ac0395a36082b593763b4e1432f215e19f033a4872776d68d9a1df9cb21db3358c8c437a62629647512c549c89b2895a894a8cf852cabba69bbfe2d2619cdfabf9605792293d8a3ef078789e82b522379eb3e1385de04729e233d3187bbcaf323e13cd2921ffabf28b8bc5e6f115b5a179d3cfce00827d406d73817604f039cbfe237ae8e9fa0c4be7fec2fbfae74957646010000";
    const GUIDE_ENCRYPTED_CONTENT: &str = "a0a1a2a3a4a5a6a7a8a9aaabce3ca0f641f38acfd1a654515786f27befe9dab00d0154d23347c964551ba200a8457ca5c96870bce89e8bebd9323617e8fcfdae83dd0e97916e3587880aa0bbc72207e7346c31bb231602299affbb367e1c1a44adaac86249fa1301188c265dde32021ee33b3bad16a8a10d1cf1590bff09b788424dca75dc02b9197b5f679cc3b8b7c9cabdd521fb83f06d594c3d7a00872b0908dc25ff8ed39c730111f75dbac90d1ceb291986fefd0ca4b318520741cb38e1c43e73dc4cd39f79816fee2e90961086cdb4f481c33a3d7dc4170830ee47f73700e6b4ddcdeaed3b270ad358db4e2f39848fc8db009addd7ff30f7e5dc5cab6ce06315192cbeebc7e9e1";
    const GUIDE_ENCRYPTED_INDEX: &str = "b0b1b2b3b4b5b6b7b8b9babbf24de40339f675d15c127ecf79e90f2e1d4469ace49a26b869beaf3db12ce0f80a177f24bfbb6014b946060241d55e867213869c18ee854579cc6fb6bec4c7f1b58d95b330669cb1635b8e4582e50937f8799e4cf0d3dae250611a25f1356cc8ef4cbcf288e773d79816a302af3f608b2eddd9b76c4165ff0f92593eaf6313e1cd0c2f";
}
