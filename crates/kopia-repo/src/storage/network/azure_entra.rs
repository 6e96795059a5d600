//! Entra ID (formerly Azure AD) service principals for `azureBlob`: what Kopia does with
//! `TenantID` + `ClientID` + `ClientSecret`, `clientCertificate` or `azureFederatedTokenFile`
//! (azure_storage.go getAZService, through azidentity's client-secret, client-certificate and
//! workload-identity credentials; a certificate signs a client assertion, see
//! [`super::azure_certificate`]). An
//! OAuth2 access token for Azure Storage comes from the client-credentials grant
//! (`POST {authority}/{tenant}/oauth2/v2.0/token`, scope `https://storage.azure.com/.default`),
//! is cached until shortly before it expires, and goes out as `Authorization: Bearer` on every
//! Blob request.
//!
//! OpenDAL 0.57's azblob builder takes only an account key or a SAS token (its reqsign chain
//! finds service principals only in the process environment, which a config file must not
//! depend on). So the backend is built with `skip_signature` (it still sets `x-ms-version`)
//! and its HTTP client is [`BearerFetch`], which adds the token before handing the request to
//! reqwest.
//!
//! The authority is `https://login.microsoftonline.com` unless `AZURE_AUTHORITY_HOST` names
//! another (sovereign clouds, Azure Stack), as Azure's SDKs read it. A refused credential
//! (any 4xx from the token endpoint) is remembered and never asked for again by this storage;
//! only 429, 5xx and transport failures are retried.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use opendal::raw::{HttpBody, HttpFetch};
use opendal::{Buffer, ErrorKind};

use super::azure_certificate::{self, ClientCertificate};
use crate::client::Password;

/// Where Azure's SDKs read a non-default authority from.
pub const AUTHORITY_ENV: &str = "AZURE_AUTHORITY_HOST";
/// Azure's public cloud (azidentity's AzurePublicCloud).
pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// Azure Storage's resource, for the `.default` scope of the client-credentials grant.
const SCOPE: &str = "https://storage.azure.com/.default";
/// The assertion type of a federated (workload identity) token or a certificate's assertion.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// A token is replaced this long before it expires (azidentity refreshes 5 minutes early),
/// or at half its lifetime when it lives shorter than twice that.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// One token request's limit: a hung endpoint must not hang a refresh.
const TOKEN_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What proves the service principal's identity to the token endpoint (`Debug` shows a
/// secret as `***`, see [`Password`]).
#[derive(Debug, Clone)]
pub enum PrincipalSecret {
    /// `ClientSecret`: the application's password.
    ClientSecret(Password),
    /// `azureFederatedTokenFile`: a file holding a federated JWT (Kubernetes workload
    /// identity), read anew for every token because its issuer rotates it.
    FederatedTokenFile(PathBuf),
    /// `clientCertificate`: a certificate registered with the application and its key, which
    /// signs a fresh client assertion for every token (`Debug` shows its thumbprint).
    ClientCertificate(Arc<ClientCertificate>),
}

/// An Entra ID service principal: tenant, application (client) ID and its secret. `Debug`
/// names the tenant, client and authority, never the secret.
#[derive(Debug, Clone)]
pub struct ServicePrincipal {
    authority: String,
    tenant: String,
    client_id: String,
    secret: PrincipalSecret,
}

impl ServicePrincipal {
    /// The principal at `authority` (the value of [`AUTHORITY_ENV`], if set): an `https://`
    /// URL, as Azure's identity libraries accept no other.
    pub fn new(
        authority: Option<&str>,
        tenant: &str,
        client_id: &str,
        secret: PrincipalSecret,
    ) -> Result<Self, String> {
        let authority = match authority.map(str::trim).filter(|a| !a.is_empty()) {
            None => DEFAULT_AUTHORITY.to_string(),
            Some(url) if url.starts_with("https://") => url.trim_end_matches('/').to_string(),
            Some(url) => {
                return Err(format!(
                    "{AUTHORITY_ENV}={url:?} is not an https:// URL of an Entra ID authority"
                ))
            }
        };
        // The tenant becomes a path segment of the token URL.
        if tenant.is_empty()
            || !tenant
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.".contains(&b))
        {
            return Err(format!("TenantID {tenant:?} is not a tenant ID or domain"));
        }
        Ok(ServicePrincipal {
            authority,
            tenant: tenant.to_string(),
            client_id: client_id.to_string(),
            secret,
        })
    }

    pub fn token_url(&self) -> String {
        format!("{}/{}/oauth2/v2.0/token", self.authority, self.tenant)
    }

    /// The authority's host (with its port), what messages name.
    pub fn authority_host(&self) -> &str {
        let rest = self.authority.trim_start_matches("https://");
        rest.split('/').next().unwrap_or(rest)
    }

    /// "tenant T at H": how messages name the principal's directory.
    fn describe(&self) -> String {
        format!(
            "client {} of tenant {} at {}",
            self.client_id,
            self.tenant,
            self.authority_host()
        )
    }

    /// The form body of the client-credentials grant; held as a [`Password`] because it
    /// carries the secret. A federated token file that cannot be read is a refusal.
    fn form(&self) -> Result<Password, TokenFailure> {
        let mut fields = vec![
            ("grant_type", Password::new("client_credentials")),
            ("client_id", Password::new(self.client_id.as_str())),
            ("scope", Password::new(SCOPE)),
        ];
        match &self.secret {
            PrincipalSecret::ClientSecret(secret) => {
                fields.push(("client_secret", secret.clone()));
            }
            PrincipalSecret::FederatedTokenFile(path) => {
                let token = std::fs::read_to_string(path).map_err(|e| {
                    TokenFailure::Refused(format!(
                        "cannot read azureFederatedTokenFile {}: {e}",
                        path.display()
                    ))
                })?;
                fields.push(("client_assertion_type", Password::new(JWT_BEARER)));
                fields.push(("client_assertion", Password::new(token.trim())));
            }
            PrincipalSecret::ClientCertificate(certificate) => {
                let assertion = certificate
                    .assertion(
                        &self.client_id,
                        &self.token_url(),
                        chrono::Utc::now().timestamp(),
                        &azure_certificate::new_jti(),
                        &ring::rand::SystemRandom::new(),
                    )
                    .map_err(|e| TokenFailure::Refused(e.to_string()))?;
                fields.push(("client_assertion_type", Password::new(JWT_BEARER)));
                fields.push(("client_assertion", assertion));
            }
        }
        let mut body = String::new();
        for (name, value) in &fields {
            if !body.is_empty() {
                body.push('&');
            }
            body.push_str(name);
            body.push('=');
            form_encode_into(value.expose(), &mut body);
        }
        let form = Password::new(body.as_str());
        zeroize::Zeroize::zeroize(&mut body);
        Ok(form)
    }
}

/// application/x-www-form-urlencoded of one value: unreserved bytes as they are, the rest
/// percent-encoded (a space too, which is always accepted).
fn form_encode_into(value: &str, out: &mut String) {
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// An access token and when to stop using it.
struct Token {
    value: Password,
    refresh_at: Instant,
}

/// Why no token came back.
#[derive(Debug, Clone, PartialEq, Eq)]
enum TokenFailure {
    /// The endpoint refused the credential or the request (4xx but 429): asking again would
    /// be refused again (and could lock the application out).
    Refused(String),
    /// Worth retrying: 429, 5xx, an unreachable endpoint.
    Transient(String),
}

/// The token endpoint's answer at `now`: the token, or why there is none. Entra ID answers
/// `{"access_token", "expires_in"}` (seconds, a number or a string) or `{"error",
/// "error_description"}`.
fn parse_answer(status: u16, body: &[u8], now: Instant) -> Result<Token, TokenFailure> {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j.get(name))
            .and_then(|v| v.as_str())
    };
    if !(200..300).contains(&status) {
        let reason = match (field("error"), field("error_description")) {
            (Some(error), Some(description)) => format!("HTTP {status}, {error}: {description}"),
            (Some(error), None) => format!("HTTP {status}, {error}"),
            _ => format!("HTTP {status}"),
        };
        return Err(if status == 429 || status >= 500 {
            TokenFailure::Transient(reason)
        } else {
            TokenFailure::Refused(reason)
        });
    }
    let malformed = |what: &str| TokenFailure::Transient(format!("the answer has {what}"));
    let value = field("access_token")
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("no access_token"))?;
    let expires_in = json
        .as_ref()
        .and_then(|j| j.get("expires_in"))
        .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        .ok_or_else(|| malformed("no expires_in"))?;
    let lifetime = Duration::from_secs(expires_in);
    let usable = if lifetime > REFRESH_MARGIN * 2 {
        lifetime - REFRESH_MARGIN
    } else {
        lifetime / 2
    };
    Ok(Token {
        value: Password::new(value),
        refresh_at: now + usable,
    })
}

enum State {
    Empty,
    Valid(Token),
    Refused(String),
}

/// The principal's current token, fetched when there is none or it is about to expire; one
/// request at a time (concurrent Blob requests wait for the same token).
pub struct TokenCache {
    principal: ServicePrincipal,
    http: reqwest::Client,
    state: tokio::sync::Mutex<State>,
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCache")
            .field("principal", &self.principal)
            .finish_non_exhaustive()
    }
}

impl TokenCache {
    pub fn new(principal: ServicePrincipal, http: reqwest::Client) -> Self {
        TokenCache {
            principal,
            http,
            state: tokio::sync::Mutex::new(State::Empty),
        }
    }

    /// A token valid for a while yet, as an OpenDAL error when there is none: permanent
    /// (never retried) for a refused credential, temporary otherwise.
    pub async fn bearer(&self) -> opendal::Result<Password> {
        let mut state = self.state.lock().await;
        match &*state {
            State::Valid(token) if Instant::now() < token.refresh_at => {
                return Ok(token.value.clone())
            }
            State::Refused(reason) => return Err(self.refused(reason)),
            _ => {}
        }
        tracing::debug!(principal = ?self.principal, "requesting an Entra ID access token");
        match self.request().await {
            Ok(token) => {
                let value = token.value.clone();
                *state = State::Valid(token);
                Ok(value)
            }
            Err(TokenFailure::Refused(reason)) => {
                let error = self.refused(&reason);
                *state = State::Refused(reason);
                Err(error)
            }
            Err(TokenFailure::Transient(reason)) => Err(opendal::Error::new(
                ErrorKind::Unexpected,
                format!(
                    "no Entra ID token for {} ({reason})",
                    self.principal.describe()
                ),
            )
            .set_temporary()),
        }
    }

    fn refused(&self, reason: &str) -> opendal::Error {
        opendal::Error::new(
            ErrorKind::PermissionDenied,
            format!(
                "Entra ID refused the credential of {} ({reason})",
                self.principal.describe()
            ),
        )
    }

    async fn request(&self) -> Result<Token, TokenFailure> {
        let form = self.principal.form()?;
        let sent = self
            .http
            .post(self.principal.token_url())
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .timeout(TOKEN_TIMEOUT)
            .body(form.expose().to_owned())
            .send()
            .await;
        // reqwest's message names the URL (which holds no secret) and the cause.
        let answer = sent.map_err(|e| TokenFailure::Transient(transport_reason(&e)))?;
        let status = answer.status().as_u16();
        let body = answer
            .bytes()
            .await
            .map_err(|e| TokenFailure::Transient(transport_reason(&e)))?;
        parse_answer(status, &body, Instant::now())
    }
}

/// reqwest's message and its sources ("error sending request" alone says nothing).
fn transport_reason(error: &reqwest::Error) -> String {
    let mut reason = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        reason.push_str(": ");
        reason.push_str(&cause.to_string());
        source = cause.source();
    }
    reason
}

/// OpenDAL's HTTP client for a service principal: every request gets the current token (and
/// the `x-ms-date` Azure asks of authorized requests), then goes out through reqwest.
pub struct BearerFetch {
    http: reqwest::Client,
    tokens: TokenCache,
}

impl BearerFetch {
    /// A client for `principal`; the same connection pool serves the token endpoint and Blob
    /// storage, trusting the system's roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` honoured).
    pub fn new(principal: ServicePrincipal) -> Result<Self, String> {
        super::install_tls_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {}", transport_reason(&e)))?;
        Ok(BearerFetch {
            tokens: TokenCache::new(principal, http.clone()),
            http,
        })
    }
}

impl HttpFetch for BearerFetch {
    async fn fetch(
        &self,
        mut request: http::Request<Buffer>,
    ) -> opendal::Result<http::Response<HttpBody>> {
        let token = self.tokens.bearer().await?;
        let mut value =
            HeaderValue::try_from(format!("Bearer {}", token.expose())).map_err(|_| {
                opendal::Error::new(ErrorKind::Unexpected, "the access token is no header value")
            })?;
        value.set_sensitive(true);
        let date = chrono::Utc::now()
            .format("%a, %d %b %Y %H:%M:%S GMT")
            .to_string();
        let headers = request.headers_mut();
        headers.insert(AUTHORIZATION, value);
        headers.insert(
            HeaderName::from_static("x-ms-date"),
            HeaderValue::try_from(date).expect("an HTTP date is a header value"),
        );
        self.http.fetch(request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(authority: Option<&str>, secret: PrincipalSecret) -> ServicePrincipal {
        ServicePrincipal::new(authority, "contoso.onmicrosoft.com", "app-1", secret).unwrap()
    }

    fn client_secret(secret: &str) -> PrincipalSecret {
        PrincipalSecret::ClientSecret(Password::new(secret))
    }

    #[test]
    fn the_token_url_is_the_authoritys_unless_the_environment_says_otherwise() {
        let public = principal(None, client_secret("s"));
        assert_eq!(
            public.token_url(),
            "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(public.authority_host(), "login.microsoftonline.com");
        let local = principal(Some("https://127.0.0.1:8443/"), client_secret("s"));
        assert_eq!(
            local.token_url(),
            "https://127.0.0.1:8443/contoso.onmicrosoft.com/oauth2/v2.0/token"
        );
        assert_eq!(local.authority_host(), "127.0.0.1:8443");
        assert_eq!(
            principal(Some(""), client_secret("s")).authority_host(),
            "login.microsoftonline.com"
        );
        let plain = ServicePrincipal::new(Some("http://login"), "t", "c", client_secret("s"));
        assert!(plain.unwrap_err().contains(AUTHORITY_ENV));
        let escape = ServicePrincipal::new(None, "../common", "c", client_secret("s"));
        assert!(escape.unwrap_err().contains("TenantID \"../common\""));
    }

    #[test]
    fn the_form_carries_the_secret_encoded_and_debug_never_does() {
        let p = principal(None, client_secret("a+b/c=d&e f~"));
        let form = p.form().unwrap();
        assert_eq!(
            form.expose(),
            "grant_type=client_credentials&client_id=app-1&\
             scope=https%3A%2F%2Fstorage.azure.com%2F.default&client_secret=a%2Bb%2Fc%3Dd%26e%20f~"
        );
        let debug = format!("{p:?}");
        assert!(
            !debug.contains("a+b") && debug.contains("contoso") && debug.contains("app-1"),
            "{debug}"
        );
    }

    #[test]
    fn a_federated_token_file_is_read_for_each_form() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "eyJ.first\n").unwrap();
        let p = principal(None, PrincipalSecret::FederatedTokenFile(file.clone()));
        let form = p.form().unwrap();
        assert!(
            form.expose().ends_with(
                "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer\
                 &client_assertion=eyJ.first"
            ),
            "{}",
            form.expose()
        );
        std::fs::write(&file, "eyJ.rotated").unwrap();
        assert!(p
            .form()
            .unwrap()
            .expose()
            .ends_with("client_assertion=eyJ.rotated"));
        std::fs::remove_file(&file).unwrap();
        match p.form().unwrap_err() {
            TokenFailure::Refused(reason) => {
                assert!(reason.contains(&file.display().to_string()), "{reason}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn a_client_certificate_signs_a_fresh_assertion_for_the_token_url() {
        let dir = tempfile::tempdir().unwrap();
        let pem = azure_certificate::tests::make_certificate(dir.path(), "form");
        let certificate = Arc::new(ClientCertificate::from_pem(&pem).unwrap());
        let p = principal(
            Some("https://127.0.0.1:8443"),
            PrincipalSecret::ClientCertificate(Arc::clone(&certificate)),
        );
        let assertion = |form: &Password| {
            let (head, jwt) = form.expose().split_once("&client_assertion=").unwrap();
            assert!(
                head.ends_with(
                    "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"
                ),
                "{head}"
            );
            assert!(!head.contains("client_secret"), "{head}");
            jwt.to_owned()
        };
        let (first, second) = (assertion(&p.form().unwrap()), assertion(&p.form().unwrap()));
        assert_ne!(first, second, "each token request signs a new assertion");
        let claims = first.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(claims["aud"], p.token_url());
        assert_eq!(claims["iss"], "app-1");
        let now = chrono::Utc::now().timestamp();
        assert!(
            (now - 5..=now).contains(&claims["nbf"].as_i64().unwrap()),
            "{claims}"
        );
        let debug = format!("{p:?}");
        assert!(debug.contains(&certificate.thumbprint_sha256()), "{debug}");
        assert!(!debug.contains("MII"), "{debug}");
    }

    #[test]
    fn answers_give_a_token_until_shortly_before_it_expires() {
        let now = Instant::now();
        let token = parse_answer(
            200,
            br#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0"}"#,
            now,
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(token.value.expose(), "eyJ0");
        assert_eq!(token.refresh_at - now, Duration::from_secs(3599 - 300));
        // Some endpoints (ADFS, Azure Stack) send the lifetime as a string; short ones are
        // used for half their life.
        let short = parse_answer(200, br#"{"expires_in":"120","access_token":"t"}"#, now)
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(short.refresh_at - now, Duration::from_secs(60));
        assert!(matches!(
            parse_answer(200, br#"{"access_token":"t"}"#, now),
            Err(TokenFailure::Transient(_))
        ));
    }

    #[test]
    fn refusals_are_told_from_failures_worth_retrying() {
        let now = Instant::now();
        let refused = parse_answer(
            401,
            br#"{"error":"invalid_client","error_description":"AADSTS7000215: Invalid client secret provided."}"#,
            now,
        );
        assert_eq!(
            refused.err(),
            Some(TokenFailure::Refused(
                "HTTP 401, invalid_client: AADSTS7000215: Invalid client secret provided.".into()
            ))
        );
        assert!(
            matches!(parse_answer(400, b"{\"error\":\"invalid_request\"}", now),
            Err(TokenFailure::Refused(r)) if r == "HTTP 400, invalid_request")
        );
        for status in [429, 500, 503] {
            assert!(matches!(
                parse_answer(status, b"<html>busy</html>", now),
                Err(TokenFailure::Transient(r)) if r == format!("HTTP {status}")
            ));
        }
    }
}
