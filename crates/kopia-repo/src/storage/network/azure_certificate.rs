//! Entra ID client certificates for `azureBlob` (`clientCertificate`): what Kopia reads with
//! azidentity's `ParseCertificates` (repo/blob/azure/azure_storage.go getAZService) and how
//! MSAL Go proves the application's identity with it, the client-credentials grant's
//! "certificate credential": a JWT signed with the certificate's private key, sent as
//! `client_assertion` instead of a secret.
//!
//! What is accepted is what azidentity 1.13 accepts without a password: PEM text holding the
//! certificate (and maybe its chain) and one unencrypted RSA private key, PKCS#8 (`PRIVATE
//! KEY`, PKCS#1 tolerated inside it as Go does) or PKCS#1 (`RSA PRIVATE KEY`). The signing
//! certificate is the one whose public key is the private key's (MSAL's NewCredFromCert); MSAL
//! refuses keys that are not RSA, and so does this. PKCS#12 (`.pfx`) is refused: Kopia's
//! config carries the certificate in a JSON string, which cannot hold PFX's binary bytes (Go's
//! JSON decoder replaces invalid UTF-8), so only PEM ever reaches azidentity from Kopia.
//!
//! The assertion is what MSAL Go 1.7 (Kopia v0.23.1's) sends to Entra ID
//! (apps/internal/oauth/ops/accesstokens/accesstokens.go Credential.JWT): `alg` PS256 with the
//! certificate's SHA-256 thumbprint as `x5t#S256`, claims `aud` (the token endpoint), `iss` =
//! `sub` (the client ID), `jti`, `nbf` (now) and `exp` (ten minutes on).
//!
//! The private key is a secret: the PEM text and the key's DER are wiped when dropped, errors
//! name PEM labels and key types only, and `Debug` shows the certificate's thumbprint. (ring's
//! `RsaKeyPair` holds the key for signing; it offers no wiping of its own.)

use std::fmt;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use ring::rand::SecureRandom;
use ring::signature::{RsaKeyPair, RSA_PSS_SHA256};
use zeroize::Zeroizing;

use crate::client::Password;

/// How long an assertion is valid (MSAL's ten minutes): long enough for one token request.
pub const ASSERTION_LIFETIME_SECS: i64 = 600;
/// rsaEncryption (RFC 8017 A.1), the algorithm of an RSA public or private key.
const RSA_ENCRYPTION: &[u64] = &[1, 2, 840, 113549, 1, 1, 1];

/// Why `clientCertificate` cannot be used. Messages name PEM labels and key types, never key
/// material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error(
        "clientCertificate holds no PEM block (PKCS#12/.pfx is not read: convert it with \
         `openssl pkcs12 -in cert.pfx -nodes` and give the PEM text)"
    )]
    NoPem,
    #[error("the {label} PEM block of clientCertificate is malformed ({reason})")]
    MalformedPem { label: String, reason: &'static str },
    #[error("clientCertificate holds no certificate (CERTIFICATE block)")]
    NoCertificate,
    #[error("clientCertificate holds no private key (PRIVATE KEY or RSA PRIVATE KEY block)")]
    NoPrivateKey,
    #[error(
        "the private key of clientCertificate is encrypted ({label}); Kopia gives no \
         password for it: store it unencrypted (`openssl pkcs8 -nocrypt` or `openssl rsa`)"
    )]
    EncryptedKey { label: String },
    #[error("clientCertificate holds more than one private key")]
    MultipleKeys,
    #[error(
        "the private key of clientCertificate is {0}; Entra ID certificate credentials need \
         an RSA key (as in Kopia)"
    )]
    NotRsa(String),
    #[error("the RSA private key of clientCertificate is unusable ({0})")]
    InvalidKey(String),
    #[error("certificate {index} of clientCertificate is not an X.509 certificate in DER")]
    InvalidCertificate { index: usize },
    #[error("no certificate in clientCertificate has the public key of its private key")]
    NoMatchingCertificate,
    #[error("the client assertion could not be signed with clientCertificate's key")]
    Signing,
}

/// A certificate registered with the application and its private key.
pub struct ClientCertificate {
    /// DER of the certificate whose public key is the private key's.
    certificate: Vec<u8>,
    key: RsaKeyPair,
}

impl fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint_sha256())
            .finish_non_exhaustive()
    }
}

/// One PEM block: its label, its decoded bytes (wiped when dropped: it may be a key) and
/// whether RFC 1421 headers say it is encrypted.
struct Block {
    label: String,
    der: Zeroizing<Vec<u8>>,
    encrypted: bool,
}

/// Every PEM block of `text`, skipping text between blocks as Go's pem.Decode does.
fn pem_blocks(text: &str) -> Result<Vec<Block>, CertificateError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.strip_suffix("-----"))
        else {
            continue;
        };
        let malformed = |reason| CertificateError::MalformedPem {
            label: label.to_owned(),
            reason,
        };
        let end = format!("-----END {label}-----");
        let mut base64 = Zeroizing::new(String::new());
        let (mut encrypted, mut closed) = (false, false);
        for line in lines.by_ref() {
            if line == end {
                closed = true;
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                // RFC 1421 headers ("Proc-Type: 4,ENCRYPTED") precede the base64.
                encrypted |= name.trim() == "Proc-Type" && value.contains("ENCRYPTED");
            } else {
                base64.push_str(line);
            }
        }
        if !closed {
            return Err(malformed("no END line"));
        }
        let der = STANDARD
            .decode(base64.as_bytes())
            .map_err(|_| malformed("its base64 does not decode"))?;
        blocks.push(Block {
            label: label.to_owned(),
            der: Zeroizing::new(der),
            encrypted,
        });
    }
    Ok(blocks)
}

/// The algorithm OID of a DER AlgorithmIdentifier (parameters skipped).
fn read_algorithm(reader: yasna::BERReader) -> yasna::ASN1Result<yasna::models::ObjectIdentifier> {
    reader.read_sequence(|seq| {
        let oid = seq.next().read_oid()?;
        seq.read_optional(|r| r.read_der())?;
        Ok(oid)
    })
}

/// Skips what is left of a DER SEQUENCE.
fn skip_rest(seq: &mut yasna::BERReaderSeq) -> yasna::ASN1Result<()> {
    while seq.read_optional(|r| r.read_der())?.is_some() {}
    Ok(())
}

/// The key algorithm and subjectPublicKey of an X.509 certificate (RFC 5280 4.1): for RSA,
/// the DER RSAPublicKey, as ring's `public()` gives it.
fn certificate_public_key(der: &[u8]) -> yasna::ASN1Result<(Vec<u64>, Vec<u8>)> {
    yasna::parse_der(der, |reader| {
        reader.read_sequence(|certificate| {
            let key = certificate.next().read_sequence(|tbs| {
                tbs.read_optional(|r| r.read_tagged(yasna::Tag::context(0), |r| r.read_der()))?;
                // serialNumber, signature, issuer, validity, subject
                for _ in 0..5 {
                    tbs.next().read_der()?;
                }
                let key = tbs.next().read_sequence(|spki| {
                    let algorithm = read_algorithm(spki.next())?;
                    let (bits, _) = spki.next().read_bitvec_bytes()?;
                    Ok((algorithm.components().clone(), bits))
                })?;
                skip_rest(tbs)?;
                Ok(key)
            })?;
            skip_rest(certificate)?;
            Ok(key)
        })
    })
}

/// The algorithm OID of a PKCS#8 PrivateKeyInfo (RFC 5958), to name a key that is not RSA.
fn pkcs8_algorithm(der: &[u8]) -> Option<Vec<u64>> {
    yasna::parse_der(der, |reader| {
        reader.read_sequence(|info| {
            info.next().read_der()?;
            let algorithm = read_algorithm(info.next())?;
            skip_rest(info)?;
            Ok(algorithm.components().clone())
        })
    })
    .ok()
}

/// What a key algorithm is called in messages.
fn key_type_name(oid: &[u64]) -> String {
    match oid {
        [1, 2, 840, 10045, 2, 1] => "an EC key".to_owned(),
        [1, 3, 101, 112] => "an Ed25519 key".to_owned(),
        [1, 3, 101, 113] => "an Ed448 key".to_owned(),
        [1, 2, 840, 10040, 4, 1] => "a DSA key".to_owned(),
        [1, 2, 840, 113549, 1, 1, 10] => "an RSASSA-PSS key (only rsaEncryption keys)".to_owned(),
        other => {
            let dotted: Vec<String> = other.iter().map(u64::to_string).collect();
            format!("a key of algorithm {}", dotted.join("."))
        }
    }
}

/// The RSA key of a `PRIVATE KEY` (PKCS#8, else PKCS#1 as Go falls back) or `RSA PRIVATE
/// KEY` (PKCS#1) block.
fn load_key(block: &Block) -> Result<RsaKeyPair, CertificateError> {
    if block.encrypted || block.label == "ENCRYPTED PRIVATE KEY" {
        return Err(CertificateError::EncryptedKey {
            label: block.label.clone(),
        });
    }
    if block.label == "RSA PRIVATE KEY" {
        return RsaKeyPair::from_der(&block.der)
            .map_err(|e| CertificateError::InvalidKey(e.to_string()));
    }
    let pkcs8 = match RsaKeyPair::from_pkcs8(&block.der) {
        Ok(key) => return Ok(key),
        Err(e) => e,
    };
    if let Ok(key) = RsaKeyPair::from_der(&block.der) {
        return Ok(key);
    }
    match pkcs8_algorithm(&block.der) {
        Some(oid) if oid != RSA_ENCRYPTION => Err(CertificateError::NotRsa(key_type_name(&oid))),
        _ => Err(CertificateError::InvalidKey(pkcs8.to_string())),
    }
}

impl ClientCertificate {
    /// The certificate and key of Kopia's `clientCertificate` text (see the module docs).
    pub fn from_pem(text: &str) -> Result<Self, CertificateError> {
        let blocks = pem_blocks(text)?;
        if blocks.is_empty() {
            return Err(CertificateError::NoPem);
        }
        let mut key = None;
        let mut certificates = Vec::new();
        for block in &blocks {
            match block.label.as_str() {
                "CERTIFICATE" => certificates.push(&block.der),
                "PRIVATE KEY" | "RSA PRIVATE KEY" | "ENCRYPTED PRIVATE KEY" => {
                    if key.is_some() {
                        return Err(CertificateError::MultipleKeys);
                    }
                    key = Some(load_key(block)?);
                }
                "EC PRIVATE KEY" => {
                    return Err(CertificateError::NotRsa("an EC key (SEC1)".to_owned()))
                }
                _ => {}
            }
        }
        if certificates.is_empty() {
            return Err(CertificateError::NoCertificate);
        }
        let key = key.ok_or(CertificateError::NoPrivateKey)?;
        let mut signing = None;
        for (index, der) in certificates.iter().enumerate() {
            let (algorithm, public_key) = certificate_public_key(der)
                .map_err(|_| CertificateError::InvalidCertificate { index: index + 1 })?;
            if signing.is_none()
                && algorithm == RSA_ENCRYPTION
                && public_key == key.public().as_ref()
            {
                signing = Some(der.to_vec());
            }
        }
        let certificate = signing.ok_or(CertificateError::NoMatchingCertificate)?;
        Ok(ClientCertificate { certificate, key })
    }

    /// The DER of the signing certificate.
    pub fn certificate_der(&self) -> &[u8] {
        &self.certificate
    }

    /// `x5t#S256`: the base64url SHA-256 of the certificate's DER (RFC 7515 4.1.8), the
    /// thumbprint Entra ID finds the registered certificate by.
    pub fn thumbprint_sha256(&self) -> String {
        URL_SAFE_NO_PAD.encode(ring::digest::digest(
            &ring::digest::SHA256,
            &self.certificate,
        ))
    }

    /// The signed client assertion of `client_id` for the token endpoint `audience`, valid
    /// from `now` (Unix seconds) for [`ASSERTION_LIFETIME_SECS`], with the unique `jti`.
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: i64,
        jti: &str,
        rng: &dyn SecureRandom,
    ) -> Result<Password, CertificateError> {
        let header = serde_json::json!({
            "alg": "PS256",
            "typ": "JWT",
            "x5t#S256": self.thumbprint_sha256(),
        });
        let claims = serde_json::json!({
            "aud": audience,
            "exp": now + ASSERTION_LIFETIME_SECS,
            "iss": client_id,
            "jti": jti,
            "nbf": now,
            "sub": client_id,
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(
                &RSA_PSS_SHA256,
                rng,
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| CertificateError::Signing)?;
        Ok(Password::new(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

/// A fresh `jti`: a random (version 4) UUID, as MSAL sends.
pub fn new_jti() -> String {
    let mut bytes: [u8; 16] = rand::random();
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;
    use std::process::Command;

    /// Runs openssl (Debian's, which ca-certificates brings) with `args` in `dir`.
    fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl (Debian package openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// A self-signed RSA certificate made by openssl in `dir`: `cert.pem` and `key.pem`
    /// (PKCS#8); the two concatenated are what Kopia's `clientCertificate` holds.
    pub(crate) fn make_certificate(dir: &Path, name: &str) -> String {
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN={name}"),
                "-keyout",
                "key.pem",
                "-out",
                "cert.pem",
            ],
        );
        let read = |file: &str| std::fs::read_to_string(dir.join(file)).unwrap();
        format!("{}{}", read("cert.pem"), read("key.pem"))
    }

    fn part(token: &str, index: usize) -> Vec<u8> {
        URL_SAFE_NO_PAD
            .decode(token.split('.').nth(index).unwrap())
            .unwrap()
    }

    #[test]
    fn the_assertion_verifies_with_the_certificates_public_key() {
        let dir = tempfile::tempdir().unwrap();
        let pem = make_certificate(dir.path(), "assertion");
        let certificate = ClientCertificate::from_pem(&pem).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let audience = "https://login.microsoftonline.com/t/oauth2/v2.0/token";
        let jti = new_jti();
        let token = certificate
            .assertion("app-1", audience, 1_700_000_000, &jti, &rng)
            .unwrap();
        let token = token.expose();

        let header: serde_json::Value = serde_json::from_slice(&part(token, 0)).unwrap();
        assert_eq!(header["alg"], "PS256");
        assert_eq!(header["typ"], "JWT");
        assert_eq!(header["x5t#S256"], certificate.thumbprint_sha256());
        let claims: serde_json::Value = serde_json::from_slice(&part(token, 1)).unwrap();
        assert_eq!(
            claims,
            serde_json::json!({"aud": audience, "iss": "app-1", "sub": "app-1", "jti": jti,
                "nbf": 1_700_000_000, "exp": 1_700_000_600})
        );

        // The public key as openssl reads it from the certificate, PKCS#1 DER.
        openssl(
            dir.path(),
            &[
                "x509", "-in", "cert.pem", "-noout", "-pubkey", "-out", "spki.pem",
            ],
        );
        let public = openssl(
            dir.path(),
            &[
                "rsa",
                "-pubin",
                "-in",
                "spki.pem",
                "-RSAPublicKey_out",
                "-outform",
                "DER",
            ],
        );
        let key = ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PSS_2048_8192_SHA256,
            &public,
        );
        let (signed, _) = token.rsplit_once('.').unwrap();
        key.verify(signed.as_bytes(), &part(token, 2)).unwrap();
        let mut forged = signed.to_owned();
        forged.push('x');
        assert!(key.verify(forged.as_bytes(), &part(token, 2)).is_err());
    }

    #[test]
    fn the_thumbprint_is_openssls_sha256_fingerprint_and_debug_shows_only_it() {
        let dir = tempfile::tempdir().unwrap();
        let pem = make_certificate(dir.path(), "thumbprint");
        let certificate = ClientCertificate::from_pem(&pem).unwrap();
        let out = openssl(
            dir.path(),
            &[
                "x509",
                "-in",
                "cert.pem",
                "-noout",
                "-fingerprint",
                "-sha256",
            ],
        );
        // "sha256 Fingerprint=AB:CD:…"
        let text = String::from_utf8(out).unwrap();
        let hex_digits = text.trim().rsplit('=').next().unwrap().replace(':', "");
        let expected = URL_SAFE_NO_PAD.encode(hex::decode(hex_digits).unwrap());
        assert_eq!(certificate.thumbprint_sha256(), expected);
        let der = openssl(dir.path(), &["x509", "-in", "cert.pem", "-outform", "DER"]);
        assert_eq!(certificate.certificate_der(), der.as_slice());

        let debug = format!("{certificate:?}");
        let key = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
        let key_line = key.lines().nth(1).unwrap();
        assert!(debug.contains(&expected), "{debug}");
        assert!(
            !debug.contains(key_line) && !debug.contains("MII"),
            "{debug}"
        );
    }

    #[test]
    fn pkcs1_keys_and_chains_in_any_order_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let pem = make_certificate(dir.path(), "leaf");
        let other = tempfile::tempdir().unwrap();
        let foreign = make_certificate(other.path(), "ca");
        let foreign_cert = &foreign[..foreign.find("-----BEGIN PRIVATE KEY").unwrap()];
        let pkcs1 = openssl(dir.path(), &["rsa", "-in", "key.pem", "-traditional"]);
        let pkcs1 = String::from_utf8(pkcs1).unwrap();
        assert!(
            pkcs1.starts_with("-----BEGIN RSA PRIVATE KEY-----"),
            "{pkcs1}"
        );
        let leaf_cert = std::fs::read_to_string(dir.path().join("cert.pem")).unwrap();
        // Key first, a foreign certificate before the matching one, text around the blocks.
        let text = format!("subject=CN=leaf\n{pkcs1}{foreign_cert}Bag Attributes\n{leaf_cert}");
        let from_pkcs1 = ClientCertificate::from_pem(&text).unwrap();
        let from_pkcs8 = ClientCertificate::from_pem(&pem).unwrap();
        assert_eq!(from_pkcs1.certificate_der(), from_pkcs8.certificate_der());
        // A PKCS#1 key under a PRIVATE KEY label, which Go also accepts.
        let relabelled = pkcs1.replace("RSA PRIVATE KEY", "PRIVATE KEY");
        let text = format!("{leaf_cert}{relabelled}");
        assert!(ClientCertificate::from_pem(&text).is_ok());
    }

    #[test]
    fn unusable_certificates_are_refused_by_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let pem = make_certificate(dir.path(), "refusals");
        let cert = std::fs::read_to_string(dir.path().join("cert.pem")).unwrap();
        let key = std::fs::read_to_string(dir.path().join("key.pem")).unwrap();
        let refused = |text: &str| ClientCertificate::from_pem(text).unwrap_err();

        assert_eq!(refused("not pem at all"), CertificateError::NoPem);
        // PKCS#12 reaches us as Kopia's JSON string would hold it: its binary made text.
        let pfx = openssl(
            dir.path(),
            &[
                "pkcs12", "-export", "-in", "cert.pem", "-inkey", "key.pem", "-passout", "pass:",
            ],
        );
        let error = refused(&String::from_utf8_lossy(&pfx));
        assert_eq!(error, CertificateError::NoPem);
        assert!(error.to_string().contains("PKCS#12"), "{error}");
        assert_eq!(refused(&key), CertificateError::NoCertificate);
        assert_eq!(refused(&cert), CertificateError::NoPrivateKey);
        assert_eq!(
            refused(&format!("{pem}{key}")),
            CertificateError::MultipleKeys
        );
        let other = tempfile::tempdir().unwrap();
        let stranger = make_certificate(other.path(), "stranger");
        let stranger_key = &stranger[stranger.find("-----BEGIN PRIVATE KEY").unwrap()..];
        assert_eq!(
            refused(&format!("{cert}{stranger_key}")),
            CertificateError::NoMatchingCertificate
        );
        let truncated = &pem[..pem.len() - 10];
        assert!(matches!(refused(truncated),
            CertificateError::MalformedPem { label, reason: "no END line" } if label == "PRIVATE KEY"));
        let garbled = cert.replacen("MII", "M*I", 1);
        assert!(matches!(refused(&format!("{garbled}{key}")),
            CertificateError::MalformedPem { label, .. } if label == "CERTIFICATE"));
        let not_x509 = "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n";
        assert_eq!(
            refused(&format!("{not_x509}{key}")),
            CertificateError::InvalidCertificate { index: 1 }
        );

        // Keys that are not RSA, PKCS#8 or SEC1, are named.
        openssl(
            dir.path(),
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "ec.pem",
            ],
        );
        let ec = std::fs::read_to_string(dir.path().join("ec.pem")).unwrap();
        assert_eq!(
            refused(&format!("{cert}{ec}")),
            CertificateError::NotRsa("an EC key".into())
        );
        let sec1 = openssl(dir.path(), &["ec", "-in", "ec.pem"]);
        let sec1 = String::from_utf8(sec1).unwrap();
        assert!(
            matches!(refused(&format!("{cert}{sec1}")), CertificateError::NotRsa(k) if k.contains("SEC1"))
        );
        openssl(
            dir.path(),
            &["genpkey", "-algorithm", "ED25519", "-out", "ed.pem"],
        );
        let ed = std::fs::read_to_string(dir.path().join("ed.pem")).unwrap();
        assert_eq!(
            refused(&format!("{cert}{ed}")),
            CertificateError::NotRsa("an Ed25519 key".into())
        );

        // Encrypted keys, PKCS#8 or legacy PEM with headers.
        let encrypted = openssl(
            dir.path(),
            &["pkcs8", "-topk8", "-in", "key.pem", "-passout", "pass:pw"],
        );
        let encrypted = String::from_utf8(encrypted).unwrap();
        assert!(matches!(refused(&format!("{cert}{encrypted}")),
            CertificateError::EncryptedKey { label } if label == "ENCRYPTED PRIVATE KEY"));
        let legacy = openssl(
            dir.path(),
            &[
                "rsa",
                "-in",
                "key.pem",
                "-traditional",
                "-aes128",
                "-passout",
                "pass:pw",
            ],
        );
        let legacy = String::from_utf8(legacy).unwrap();
        assert!(legacy.contains("Proc-Type: 4,ENCRYPTED"), "{legacy}");
        assert!(matches!(refused(&format!("{cert}{legacy}")),
            CertificateError::EncryptedKey { label } if label == "RSA PRIVATE KEY"));

        // No message carries key material.
        for error in [
            refused(&format!("{cert}{ec}")),
            refused(&format!("{pem}{key}")),
        ] {
            let text = error.to_string();
            assert!(!text.contains("MII") && !text.contains("-----"), "{text}");
        }
    }

    #[test]
    fn jtis_are_random_version_4_uuids() {
        let (a, b) = (new_jti(), new_jti());
        assert_ne!(a, b);
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!("89ab".contains(&a[19..20]), "{a}");
    }
}
