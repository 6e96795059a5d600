//! Entra ID's check of a certificate credential, as the fake token endpoint makes it: the
//! client assertion's thumbprint (`x5t#S256`, or the older `x5t`) names the registered
//! certificate, its PS256 or RS256 signature verifies with that certificate's public key
//! (webpki over ring), `aud` is the token endpoint, `iss` = `sub` the client ID, and it is
//! valid now for a short while. Also the test certificates themselves, made by openssl.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// A self-signed RSA certificate and its PKCS#8 key, made by openssl (installed by
/// .ci/install-storage-servers.sh) with the common name `name`: the PEM text Kopia's
/// `clientCertificate` holds.
pub fn client_certificate_pem(name: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", &format!("/CN={name}")])
        .args(["-keyout", "key.pem", "-out", "cert.pem"])
        .current_dir(dir.path())
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read = |file: &str| std::fs::read_to_string(dir.path().join(file)).unwrap();
    format!("{}{}", read("cert.pem"), read("key.pem"))
}

/// Entra ID's verdict on a certificate's client assertion: its AADSTS reason when refused.
pub(super) fn check_assertion(
    assertion: &str,
    certificate: &[u8],
    audience: &str,
    client_id: &str,
) -> Result<(), &'static str> {
    const MALFORMED: &str = "AADSTS50027: JWT token is invalid or malformed.";
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts[..] else {
        return Err(MALFORMED);
    };
    let json = |part: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let (Some(head), Some(body), Ok(signature)) = (
        json(header),
        json(claims),
        URL_SAFE_NO_PAD.decode(signature),
    ) else {
        return Err(MALFORMED);
    };
    // Entra ID finds the certificate by its thumbprint; MSAL Go sends it as padded standard
    // base64, the RFC as base64url: both are read.
    let thumbprint = |name: &str, algorithm: &'static ring::digest::Algorithm| {
        let given = head[name]
            .as_str()
            .map(|t| t.trim_end_matches('=').replace('+', "-").replace('/', "_"));
        given.and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
            == Some(
                ring::digest::digest(algorithm, certificate)
                    .as_ref()
                    .to_vec(),
            )
    };
    if !thumbprint("x5t#S256", &ring::digest::SHA256)
        && !thumbprint("x5t", &ring::digest::SHA1_FOR_LEGACY_USE_ONLY)
    {
        return Err(
            "AADSTS700027: The certificate with identifier used to sign the client \
             assertion is not registered on application.",
        );
    }
    let algorithm = match head["alg"].as_str() {
        Some("PS256") => webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
        Some("RS256") => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        _ => return Err("AADSTS5002730: Invalid JWT token. Unsupported signing algorithm."),
    };
    let der = rustls::pki_types::CertificateDer::from(certificate);
    let registered = webpki::EndEntityCert::try_from(&der).expect("the registered certificate");
    registered
        .verify_signature(
            algorithm,
            format!("{header}.{claims}").as_bytes(),
            &signature,
        )
        .map_err(|_| "AADSTS700027: Client assertion failed signature validation.")?;
    let now = chrono::Utc::now().timestamp();
    let time = |name: &str| body[name].as_i64().unwrap_or(i64::MIN);
    if body["aud"] != audience {
        return Err(
            "AADSTS700021: Client assertion audience claim does not match the token \
             endpoint.",
        );
    }
    if body["iss"] != client_id || body["sub"] != client_id {
        return Err("AADSTS700023: Client assertion issuer or subject is not the client.");
    }
    // Valid now (a minute of clock skew) and for a short while only.
    if time("nbf") > now + 60 || time("exp") < now || time("exp") > now + 3600 {
        return Err("AADSTS700024: Client assertion is not within its valid time range.");
    }
    if body["jti"].as_str().is_none_or(str::is_empty) {
        return Err(MALFORMED);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use kopia_repo::storage::network::azure_certificate::ClientCertificate;

    const AUDIENCE: &str = "https://127.0.0.1:1/t/oauth2/v2.0/token";

    /// An assertion of `client_id` for `audience` at `now`, signed with `pem`'s key.
    fn assertion(pem: &str, client_id: &str, audience: &str, now: i64) -> String {
        let certificate = ClientCertificate::from_pem(pem).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let signed = certificate.assertion(client_id, audience, now, "jti-1", &rng);
        signed.unwrap().expose().to_owned()
    }

    fn der(pem: &str) -> Vec<u8> {
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).unwrap();
        der.to_vec()
    }

    #[test]
    fn the_fake_takes_only_assertions_the_registered_certificate_signed_for_it() {
        let pem = client_certificate_pem("registered");
        let registered = der(&pem);
        let now = chrono::Utc::now().timestamp();
        let check = |jwt: &str| check_assertion(jwt, &registered, AUDIENCE, "app");
        let good = assertion(&pem, "app", AUDIENCE, now);
        assert_eq!(check(&good), Ok(()));

        let reason =
            |result: Result<(), &str>| result.unwrap_err().split(':').next().unwrap().to_owned();
        // Claims changed after signing: the signature no longer verifies.
        let (header, rest) = good.split_once('.').unwrap();
        let (_, signature) = rest.split_once('.').unwrap();
        let claims = serde_json::json!({"aud": AUDIENCE, "iss": "app", "sub": "app",
            "jti": "x", "nbf": now, "exp": now + 600});
        let forged = format!(
            "{header}.{}.{signature}",
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        assert_eq!(reason(check(&forged)), "AADSTS700027");
        assert!(check(&forged).unwrap_err().contains("signature"));
        // Signed by another key under the registered thumbprint.
        let stranger = client_certificate_pem("stranger");
        let theirs = assertion(&stranger, "app", AUDIENCE, now);
        let (_, their_rest) = theirs.split_once('.').unwrap();
        assert!(check(&format!("{header}.{their_rest}"))
            .unwrap_err()
            .contains("signature"));
        // Another certificate's thumbprint.
        assert!(check(&theirs).unwrap_err().contains("not registered"));
        // Properly signed, but for another endpoint, another client, or out of time.
        assert_eq!(
            reason(check(&assertion(
                &pem,
                "app",
                "https://login.microsoftonline.com/t/oauth2/v2.0/token",
                now
            ))),
            "AADSTS700021"
        );
        assert_eq!(
            reason(check(&assertion(&pem, "other", AUDIENCE, now))),
            "AADSTS700023"
        );
        assert_eq!(
            reason(check(&assertion(&pem, "app", AUDIENCE, now - 3600))),
            "AADSTS700024"
        );
        assert_eq!(
            reason(check(&assertion(&pem, "app", AUDIENCE, now + 3600))),
            "AADSTS700024"
        );
        assert_eq!(reason(check("not.a-jwt")), "AADSTS50027");
    }
}
