//! The process-wide way in to the B2 fakes: a loopback HTTP proxy whose `CONNECT
//! api.backblazeb2.com:443` tunnels into a TLS server with a certificate for that name, signed
//! by a CA of the test process, answering `b2_authorize_account` for whichever fake account the
//! key ID names.

use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use base64::Engine;

use super::http::{self, Listener, Request, Response};
use super::Fake;

const B2_HOST: &str = "api.backblazeb2.com";

/// The process-wide proxy and TLS front for `api.backblazeb2.com`, routing each
/// authorization to the fake account whose key ID it names.
pub(super) struct Front {
    pub(super) accounts: Mutex<HashMap<String, Weak<Fake>>>,
    _listener: Listener,
    _ca_dir: tempfile::TempDir,
}

pub(super) fn front() -> &'static Front {
    static FRONT: OnceLock<Front> = OnceLock::new();
    FRONT.get_or_init(|| {
        let ca = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "kopia-notifier B2 fake CA");
        let ca_cert = ca_params.self_signed(&ca).unwrap();
        let leaf = rcgen::KeyPair::generate().unwrap();
        let leaf_cert = rcgen::CertificateParams::new(vec![B2_HOST.to_owned()])
            .unwrap()
            .signed_by(&leaf, &ca_cert, &ca)
            .unwrap();
        let ca_dir = tempfile::tempdir().unwrap();
        let ca_file = ca_dir.path().join("b2-fake-ca.pem");
        std::fs::write(&ca_file, ca_cert.pem()).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = Arc::new(
            rustls::ServerConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(
                    vec![leaf_cert.der().clone(), ca_cert.der().clone()],
                    rustls::pki_types::PrivateKeyDer::Pkcs8(leaf.serialize_der().into()),
                )
                .unwrap(),
        );
        let serve: Arc<dyn Fn(TcpStream) + Send + Sync> = Arc::new(move |mut stream| {
            if http::accept_connect(&mut stream, B2_HOST).is_none() {
                return;
            }
            let Ok(connection) = rustls::ServerConnection::new(Arc::clone(&tls)) else {
                return;
            };
            let tunnel = rustls::StreamOwned::new(connection, stream);
            http::serve(tunnel, &|request| front().authorize(request));
        });
        let listener = Listener::start(0, serve).expect("start the B2 proxy");
        // Set once, before any test of this process starts a client (each waits for this
        // initialisation): the harness's Kopia and kopia-notify processes inherit both.
        std::env::set_var(
            "HTTPS_PROXY",
            format!("http://127.0.0.1:{}", listener.port()),
        );
        std::env::set_var("SSL_CERT_FILE", &ca_file);
        Front {
            accounts: Mutex::default(),
            _listener: listener,
            _ca_dir: ca_dir,
        }
    })
}

impl Front {
    /// `b2_authorize_account` (any API version), routed by key ID; `None` (the connection
    /// dropped) when that account's fake is stopped.
    fn authorize(&self, request: &Request) -> Option<Response> {
        if !request.path.ends_with("/b2_authorize_account") {
            return Some(Response::error(404, "not_found", "unknown call"));
        }
        let credentials = request
            .header("authorization")
            .and_then(|h| h.strip_prefix("Basic "))
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .unwrap_or_default();
        let (key_id, key) = credentials.split_once(':').unwrap_or(("", ""));
        let fake = self
            .accounts
            .lock()
            .unwrap()
            .get(key_id)
            .and_then(Weak::upgrade);
        let Some(fake) = fake else {
            return Some(Response::error(401, "unauthorized", "unknown key"));
        };
        // A stopped account is unreachable here too.
        if !fake.running.load(Ordering::SeqCst) {
            return None;
        }
        Some(fake.authorize(key))
    }
}
