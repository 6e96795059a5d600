//! Entra ID service principals against loopback servers: a fake of Entra ID's token endpoint
//! (the client-credentials grant, `POST /{tenant}/oauth2/v2.0/token`) that issues JWTs shaped
//! as Azurite's `--oauth basic` accepts them, and an Azurite serving HTTPS with that check on.
//! Both present a certificate for `127.0.0.1` signed by a CA of the test process, which
//! `SSL_CERT_FILE` names for every client the process starts (Go's, Kopia's, ours).
//!
//! Azurite's basic OAuth (dist/src/blob/authentication/BlobTokenAuthenticator.js) decodes the
//! token without checking its signature and wants `iat`, `nbf` and `exp` around the request
//! time, an `iss` under `https://sts.windows.net/`, and `aud` `https://storage.azure.com`; it
//! refuses a bearer token over plain HTTP.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::servers_b2::http::{self, Listener, Request, Response};
use crate::servers_objects::{required, spawn_azurite};

/// How long the tokens issued live (Entra ID's usual hour).
const TOKEN_LIFETIME: i64 = 3600;

/// The process's CA and the `127.0.0.1` certificate it signed, as PEM files.
pub struct LoopbackTls {
    pub ca_file: PathBuf,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    _dir: tempfile::TempDir,
}

/// The process's [`LoopbackTls`]; made once, and `SSL_CERT_FILE` set to its CA before any
/// test of the process starts a client.
pub fn loopback_tls() -> &'static LoopbackTls {
    static TLS: OnceLock<LoopbackTls> = OnceLock::new();
    TLS.get_or_init(|| {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kopia-notifier loopback CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();
        let leaf_key = rcgen::KeyPair::generate().unwrap();
        // rcgen makes "127.0.0.1" an IP address name, which Go and rustls both require.
        let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .unwrap()
            .signed_by(&leaf_key, &ca, &ca_key)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let ca_file = write("ca.pem", ca.pem());
        let cert_file = write("cert.pem", format!("{}{}", leaf.pem(), ca.pem()));
        let key_file = write("key.pem", leaf_key.serialize_pem());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.der().clone(), ca.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
            )
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        std::env::set_var("SSL_CERT_FILE", &ca_file);
        LoopbackTls {
            ca_file,
            cert_file,
            key_file,
            server: Arc::new(server),
            client: Arc::new(client),
            _dir: dir,
        }
    })
}

/// A JWT of `tenant` for Azure Storage, valid for [`TOKEN_LIFETIME`] from now.
pub fn storage_token(tenant: &str) -> String {
    token_for(tenant, "https://storage.azure.com")
}

/// A JWT of `tenant` for the resource `audience`, signed with a key of no importance
/// (Azurite checks no signature).
pub fn token_for(tenant: &str, audience: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let encode = |json: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json.to_string())
    };
    let header = encode(serde_json::json!({"alg": "HS256", "typ": "JWT"}));
    let claims = encode(serde_json::json!({
        "aud": audience,
        "iss": format!("https://sts.windows.net/{tenant}/"),
        "iat": now - 60, "nbf": now - 60, "exp": now + TOKEN_LIFETIME,
        "tid": tenant, "ver": "1.0",
    }));
    let mut mac = Hmac::<Sha256>::new_from_slice(b"fake entra id").unwrap();
    mac.update(format!("{header}.{claims}").as_bytes());
    let signature =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{header}.{claims}.{signature}")
}

/// The fake token endpoint: one tenant, one application and its secret (taken as a client
/// secret or as a federated token). It counts the token requests it receives, granted or not.
pub struct TokenEndpoint {
    listener: Listener,
    requests: Arc<AtomicUsize>,
}

impl TokenEndpoint {
    pub fn start(tenant: &str, client_id: &str, secret: &str) -> TokenEndpoint {
        let tls = Arc::clone(&loopback_tls().server);
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        let (tenant, client_id, secret) =
            (tenant.to_owned(), client_id.to_owned(), secret.to_owned());
        let serve: Arc<dyn Fn(TcpStream) + Send + Sync> = Arc::new(move |stream| {
            let Ok(connection) = rustls::ServerConnection::new(Arc::clone(&tls)) else {
                return;
            };
            let stream = rustls::StreamOwned::new(connection, stream);
            http::serve(stream, &|request| {
                counted.fetch_add(1, Ordering::SeqCst);
                Some(grant(request, &tenant, &client_id, &secret))
            });
        });
        let listener = Listener::start(0, serve).expect("start the token endpoint");
        TokenEndpoint { listener, requests }
    }

    /// What `AZURE_AUTHORITY_HOST` names to send token requests here.
    pub fn authority(&self) -> String {
        format!("https://127.0.0.1:{}", self.listener.port())
    }

    /// `127.0.0.1:<port>`, the host messages name.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.listener.port())
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// Entra ID's answer to a client-credentials request: a token, or `invalid_client` (401) for
/// a wrong secret, `invalid_request` (400) for anything else amiss.
fn grant(request: &Request, tenant: &str, client_id: &str, secret: &str) -> Response {
    let refuse = |status: u16, error: &str, description: &str| {
        Response::json(
            status,
            &serde_json::json!({"error": error, "error_description": description}),
        )
    };
    if request.method != "POST" || request.path != format!("/{tenant}/oauth2/v2.0/token") {
        return refuse(400, "invalid_request", "AADSTS90002: Tenant not found.");
    }
    let form: Vec<(String, String)> = String::from_utf8_lossy(&request.body)
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(name, value)| (name.to_owned(), http::decode(value)))
        .collect();
    let field = |name: &str| {
        form.iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    if field("grant_type") != Some("client_credentials")
        || field("scope") != Some("https://storage.azure.com/.default")
        || field("client_id") != Some(client_id)
    {
        return refuse(400, "invalid_request", "AADSTS900144: malformed request.");
    }
    // The credential is the client secret, or a federated token (workload identity) of the
    // same text.
    let federated = field("client_assertion_type")
        == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
        && field("client_assertion") == Some(secret);
    if field("client_secret") != Some(secret) && !federated {
        return refuse(
            401,
            "invalid_client",
            "AADSTS7000215: Invalid client secret provided.",
        );
    }
    Response::json(
        200,
        &serde_json::json!({"token_type": "Bearer", "expires_in": TOKEN_LIFETIME,
            "ext_expires_in": TOKEN_LIFETIME, "access_token": storage_token(tenant)}),
    )
}

/// One HTTPS/1.0 request (never chunked) to `127.0.0.1:port`, trusting the process's CA; the
/// status and the body.
pub fn https(port: u16, method: &str, path: &str, headers: &[(&str, String)]) -> (u16, String) {
    use std::io::{Read, Write};
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let connection =
        rustls::ClientConnection::new(Arc::clone(&loopback_tls().client), name).unwrap();
    let socket = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    let mut stream = rustls::StreamOwned::new(connection, socket);
    let mut request =
        format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = Vec::new();
    // A server may end TLS without close_notify; what arrived is the answer.
    let _ = stream.read_to_end(&mut response);
    crate::http_response::parse_http_response(&response)
}

/// Azurite's blob service over HTTPS with basic OAuth on, one account (`127`, reached as
/// `AzuriteServer` explains) with a key of its own; ended when dropped.
pub struct AzuriteOAuth {
    port: u16,
    key: String,
    child: Child,
    _dir: tempfile::TempDir,
}

/// An Azurite with OAuth, or `None` (after a loud notice) outside CI when it is not
/// installed; under `CI=true` a missing one panics.
pub fn require_azurite_oauth() -> Option<AzuriteOAuth> {
    required("azurite-blob", AzuriteOAuth::start())
}

impl AzuriteOAuth {
    pub const ACCOUNT: &'static str = "127";

    fn start() -> Result<AzuriteOAuth, String> {
        let tls = loopback_tls();
        let (cert, key) = (tls.cert_file.display(), tls.key_file.display());
        let (cert, key) = (cert.to_string(), key.to_string());
        let spawned = spawn_azurite(&["--oauth", "basic", "--cert", &cert, "--key", &key], None)?;
        Ok(AzuriteOAuth {
            port: spawned.port,
            key: spawned.key,
            child: spawned.child,
            _dir: spawned.dir,
        })
    }

    /// The account key (base64), as Kopia's `storageKey` takes it.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The storage config Kopia writes for a container of this server, with the account key
    /// and TLS on.
    pub fn storage_config(&self, container: &str, prefix: &str) -> serde_json::Value {
        serde_json::json!({
            "container": container,
            "prefix": prefix,
            "storageAccount": Self::ACCOUNT,
            "storageKey": self.key,
            "storageDomain": format!("0.0.1:{}/{}", self.port, Self::ACCOUNT),
        })
    }

    /// `kopia repository create` arguments for the storage of [`Self::storage_config`], as a
    /// from-config token (Kopia's repo/token.go).
    pub fn kopia_create_args(&self, container: &str, prefix: &str) -> Vec<String> {
        let token = serde_json::json!({
            "version": "1",
            "storage": {"type": "azureBlob", "config": self.storage_config(container, prefix)},
            "password": crate::PASSWORD,
        });
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token.to_string());
        vec!["from-config".to_owned(), format!("--token={token}")]
    }

    /// Creates a container with a bearer token of `tenant` (which also shows that Azurite
    /// takes the fake's tokens).
    pub fn create_container(&self, container: &str, tenant: &str) {
        let (status, body) = https(
            self.port,
            "PUT",
            &format!("/{}/{container}?restype=container", Self::ACCOUNT),
            &[
                ("x-ms-version", "2021-08-06".to_owned()),
                (
                    "x-ms-date",
                    chrono::Utc::now()
                        .format("%a, %d %b %Y %H:%M:%S GMT")
                        .to_string(),
                ),
                ("Authorization", format!("Bearer {}", storage_token(tenant))),
            ],
        );
        assert_eq!(status, 201, "create container {container}: {body}");
    }

    /// A List Blobs request of `container` with `authorization` (if any): its status.
    pub fn list_status(&self, container: &str, authorization: Option<String>) -> u16 {
        let mut headers = vec![("x-ms-version", "2021-08-06".to_owned())];
        headers.extend(authorization.map(|value| ("Authorization", value)));
        https(
            self.port,
            "GET",
            &format!("/{}/{container}?restype=container&comp=list", Self::ACCOUNT),
            &headers,
        )
        .0
    }
}

impl Drop for AzuriteOAuth {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
