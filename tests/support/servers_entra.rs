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
//!
//! A client certificate registered with the fake's application is checked as Entra ID checks
//! a certificate credential ([`certificate`]).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Child;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use self::certificate::check_assertion;
pub use self::certificate::client_certificate_pem;
use crate::servers_b2::http::{self, Listener, Request, Response};
use crate::servers_objects::{required, spawn_azurite};

mod certificate;

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
        // rcgen makes "127.0.0.1" an IP address name, which Go and rustls both require; the
        // public authority's name is for the tunnel of [`TokenEndpoint::proxy_url`].
        let leaf = rcgen::CertificateParams::new(vec![
            "127.0.0.1".to_owned(),
            PUBLIC_AUTHORITY.to_owned(),
        ])
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

/// The public cloud's authority, where MSAL Go asks for instance discovery of any other.
const PUBLIC_AUTHORITY: &str = "login.microsoftonline.com";

/// The assertion type of federated tokens and certificate assertions.
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The fake token endpoint: one tenant, one application and its secret (taken as a client
/// secret or as a federated token), and maybe a certificate registered with it. It counts the
/// token requests it receives, granted or not.
///
/// Kopia's MSAL Go (1.7, apps/internal/oauth/resolvers.go) first resolves a non-public
/// authority: instance discovery at `https://login.microsoftonline.com/common/discovery/instance`
/// (for any authority host but the public ones), then the tenant's OpenID configuration at the
/// host discovery names. The fake answers both, the first through a loopback proxy
/// ([`Self::proxy_url`], for `HTTPS_PROXY`) whose `CONNECT login.microsoftonline.com:443`
/// tunnels into it; Go never proxies loopback addresses, so the rest comes straight here.
pub struct TokenEndpoint {
    listener: Listener,
    proxy: Listener,
    requests: Arc<AtomicUsize>,
}

/// The application the fake knows.
struct Application {
    tenant: String,
    client_id: String,
    secret: String,
    /// DER of the registered certificate.
    certificate: Option<Vec<u8>>,
    /// The endpoint's port, for the `aud` an assertion must name.
    port: OnceLock<u16>,
}

impl TokenEndpoint {
    pub fn start(tenant: &str, client_id: &str, secret: &str) -> TokenEndpoint {
        Self::start_with(tenant, client_id, secret, None)
    }

    /// An endpoint whose application also has the certificate of `certificate_pem` (its
    /// first CERTIFICATE block) registered.
    pub fn with_certificate(
        tenant: &str,
        client_id: &str,
        secret: &str,
        certificate_pem: &str,
    ) -> TokenEndpoint {
        use rustls::pki_types::pem::PemObject;
        let der = rustls::pki_types::CertificateDer::from_pem_slice(certificate_pem.as_bytes())
            .expect("a CERTIFICATE block");
        Self::start_with(tenant, client_id, secret, Some(der.to_vec()))
    }

    fn start_with(
        tenant: &str,
        client_id: &str,
        secret: &str,
        certificate: Option<Vec<u8>>,
    ) -> TokenEndpoint {
        let tls = Arc::clone(&loopback_tls().server);
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&requests);
        let application = Arc::new(Application {
            tenant: tenant.to_owned(),
            client_id: client_id.to_owned(),
            secret: secret.to_owned(),
            certificate,
            port: OnceLock::new(),
        });
        let known = Arc::clone(&application);
        let serve: Arc<dyn Fn(TcpStream) + Send + Sync> = Arc::new(move |stream| {
            let Ok(connection) = rustls::ServerConnection::new(Arc::clone(&tls)) else {
                return;
            };
            let stream = rustls::StreamOwned::new(connection, stream);
            http::serve(stream, &|request| {
                if let Some(answer) = discovery(request, &known) {
                    return Some(answer);
                }
                counted.fetch_add(1, Ordering::SeqCst);
                Some(grant(request, &known))
            });
        });
        let listener = Listener::start(0, serve).expect("start the token endpoint");
        let port = listener.port();
        let tunnel: Arc<dyn Fn(TcpStream) + Send + Sync> = Arc::new(move |mut stream| {
            if http::accept_connect(&mut stream, PUBLIC_AUTHORITY).is_some() {
                if let Ok(inner) = TcpStream::connect(("127.0.0.1", port)) {
                    relay(stream, inner);
                }
            }
        });
        let proxy = Listener::start(0, tunnel).expect("start the authority proxy");
        application.port.set(port).unwrap();
        TokenEndpoint {
            listener,
            proxy,
            requests,
        }
    }

    /// What `HTTPS_PROXY` names for a Go client (Kopia) to reach the fake's instance
    /// discovery at the public authority.
    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.proxy.port())
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

/// Copies bytes both ways between a tunnelled client and the endpoint until either side ends.
fn relay(client: TcpStream, server: TcpStream) {
    let (mut client_in, mut server_out) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let upstream = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
        let _ = server_out.shutdown(std::net::Shutdown::Write);
    });
    let (mut server_in, mut client_out) = (server, client);
    let _ = std::io::copy(&mut server_in, &mut client_out);
    let _ = client_out.shutdown(std::net::Shutdown::Both);
    let _ = upstream.join();
}

/// MSAL's authority resolution: instance discovery (which names this endpoint as the tenant's
/// discovery host) and the tenant's OpenID configuration; `None` for other requests.
fn discovery(request: &Request, application: &Application) -> Option<Response> {
    let port = application.port.get().expect("the endpoint's port");
    let host = format!("127.0.0.1:{port}");
    let tenant = &application.tenant;
    if request.method == "GET" && request.path.starts_with("/common/discovery/instance") {
        return Some(Response::json(
            200,
            &serde_json::json!({
                "tenant_discovery_endpoint":
                    format!("https://{host}/{tenant}/v2.0/.well-known/openid-configuration"),
                "api-version": "1.1",
                "metadata": [{"preferred_network": host, "preferred_cache": host,
                    "aliases": [host]}],
            }),
        ));
    }
    // Go asks with an empty query ("…/openid-configuration?").
    let path = request.path.split('?').next().unwrap_or_default();
    if request.method == "GET" && path == format!("/{tenant}/v2.0/.well-known/openid-configuration")
    {
        return Some(Response::json(
            200,
            &serde_json::json!({
                "token_endpoint": format!("https://{host}/{tenant}/oauth2/v2.0/token"),
                "authorization_endpoint":
                    format!("https://{host}/{tenant}/oauth2/v2.0/authorize"),
                "issuer": format!("https://{host}/{tenant}/v2.0"),
            }),
        ));
    }
    None
}

/// Entra ID's answer to a client-credentials request: a token, or `invalid_client` (401) for
/// a wrong secret or assertion, `invalid_request` (400) for anything else amiss.
fn grant(request: &Request, application: &Application) -> Response {
    let Application {
        tenant,
        client_id,
        secret,
        ..
    } = application;
    let client_id = client_id.as_str();
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
    // Azure Storage's scope; MSAL adds OpenID Connect's reserved ones, which Entra ID allows.
    let scope_ok = field("scope").is_some_and(|scope| {
        let scopes: Vec<&str> = scope.split(' ').collect();
        scopes.contains(&"https://storage.azure.com/.default")
            && scopes.iter().all(|s| {
                [
                    "https://storage.azure.com/.default",
                    "openid",
                    "offline_access",
                    "profile",
                ]
                .contains(s)
            })
    });
    if field("grant_type") != Some("client_credentials")
        || !scope_ok
        || field("client_id") != Some(client_id)
    {
        return refuse(400, "invalid_request", "AADSTS900144: malformed request.");
    }
    // The credential is the client secret, a federated token (workload identity) of the
    // same text, or an assertion signed with the registered certificate.
    let credential = match (
        field("client_secret"),
        field("client_assertion_type"),
        field("client_assertion"),
    ) {
        (Some(given), _, _) if given == secret => Ok(()),
        (Some(_), _, _) => Err("AADSTS7000215: Invalid client secret provided."),
        (None, Some(JWT_BEARER), Some(assertion)) if assertion == secret => Ok(()),
        (None, Some(JWT_BEARER), Some(assertion)) => match &application.certificate {
            Some(certificate) => {
                let port = application.port.get().expect("the endpoint's port");
                let audience = format!("https://127.0.0.1:{port}/{tenant}/oauth2/v2.0/token");
                check_assertion(assertion, certificate, &audience, client_id)
            }
            None => Err(
                "AADSTS700027: The certificate with identifier used to sign the \
                 client assertion is not registered on application.",
            ),
        },
        _ => Err("AADSTS7000216: 'client_assertion' or 'client_secret' is required."),
    };
    if let Err(description) = credential {
        return refuse(401, "invalid_client", description);
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
