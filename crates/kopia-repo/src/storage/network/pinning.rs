//! Trusting exactly one server certificate, by the SHA-256 fingerprint of its DER bytes: what
//! Kopia's `trustedServerCertificateFingerprint` means (internal/tlsutil,
//! TLSConfigTrustingSingleCertificate) and how it reaches the loopback rclone server it starts.
//! Like Kopia, neither the name nor the validity period is checked (the pin replaces them); unlike
//! a bare `InsecureSkipVerify`, the handshake signature is still verified against the pinned
//! certificate's key, so only the holder of its private key passes.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// The lowercase hex SHA-256 of a certificate's DER bytes, as Kopia prints and compares it.
pub fn certificate_fingerprint(der: &[u8]) -> String {
    hex::encode(Sha256::digest(der))
}

/// Kopia's comparison: the configured fingerprint lowercased, against the hex digest; no other
/// normalisation (a fingerprint written with colons matches nothing, in Kopia as here).
pub fn fingerprint_matches(trusted: &str, der: &[u8]) -> bool {
    trusted.to_lowercase() == certificate_fingerprint(der)
}

/// A refused certificate: what the server presented instead of the pinned one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    pub host: String,
    pub presented: String,
}

/// The verifier a pinned connection's rustls config uses. It remembers the last refusal so
/// the request's error can say which host presented which certificate (rustls and the HTTP
/// client reduce it to "invalid peer certificate").
#[derive(Debug)]
pub struct PinnedCertificate {
    trusted: String,
    provider: Arc<CryptoProvider>,
    last_mismatch: Arc<Mutex<Option<Mismatch>>>,
}

impl PinnedCertificate {
    pub fn new(trusted: &str) -> Self {
        PinnedCertificate {
            trusted: trusted.to_lowercase(),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
            last_mismatch: Arc::default(),
        }
    }

    /// The slot refusals are recorded in (shared with whoever reports errors).
    pub fn mismatches(&self) -> Arc<Mutex<Option<Mismatch>>> {
        Arc::clone(&self.last_mismatch)
    }

    /// A rustls client config that trusts only this certificate.
    pub fn client_config(self) -> rustls::ClientConfig {
        let provider = Arc::clone(&self.provider);
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(self))
            .with_no_client_auth()
    }
}

impl ServerCertVerifier for PinnedCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Only the leaf: Kopia also accepts a pinned certificate anywhere in the presented
        // chain, but a chain is not verified here, so anyone could append a public certificate.
        if fingerprint_matches(&self.trusted, end_entity) {
            return Ok(ServerCertVerified::assertion());
        }
        let mismatch = Mismatch {
            host: server_name.to_str().into_owned(),
            presented: certificate_fingerprint(end_entity),
        };
        if let Ok(mut slot) = self.last_mismatch.lock() {
            *slot = Some(mismatch);
        }
        Err(rustls::Error::InvalidCertificate(
            rustls::CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DER: &[u8] = b"not really a certificate, but bytes are bytes";

    #[test]
    fn fingerprints_compare_as_kopia_compares_them() {
        let fingerprint = certificate_fingerprint(DER);
        assert_eq!(fingerprint.len(), 64);
        assert_eq!(fingerprint, fingerprint.to_lowercase());
        assert!(fingerprint_matches(&fingerprint, DER));
        assert!(fingerprint_matches(&fingerprint.to_uppercase(), DER));
        assert!(!fingerprint_matches(&fingerprint, b"another certificate"));
        assert!(!fingerprint_matches("", DER));
        // Kopia strips nothing: colon-separated or padded fingerprints match nothing.
        let colons = fingerprint
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join(":");
        assert!(!fingerprint_matches(&colons, DER));
        assert!(!fingerprint_matches(&format!(" {fingerprint}"), DER));
    }

    #[test]
    fn the_verifier_accepts_only_the_pinned_leaf_and_remembers_refusals() {
        let verifier = PinnedCertificate::new(&certificate_fingerprint(DER).to_uppercase());
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let leaf = CertificateDer::from(DER.to_vec());
        let other = CertificateDer::from(b"impostor".to_vec());
        let now = UnixTime::now();
        assert!(verifier
            .verify_server_cert(&leaf, &[], &name, &[], now)
            .is_ok());
        assert!(verifier.mismatches().lock().unwrap().is_none());
        // The pinned certificate as an "intermediate" behind another leaf does not pass.
        assert!(verifier
            .verify_server_cert(&other, std::slice::from_ref(&leaf), &name, &[], now)
            .is_err());
        assert_eq!(
            verifier.mismatches().lock().unwrap().clone().unwrap(),
            Mismatch {
                host: "127.0.0.1".into(),
                presented: certificate_fingerprint(b"impostor"),
            }
        );
        assert!(!verifier.supported_verify_schemes().is_empty());
    }
}
