//! The SSH side of the `sftp` storage: one connection (russh, pure Rust) with an SFTP session on
//! it, shared by every request of the storage, opened on first use and opened again after it
//! dropped (a NAS that rebooted), as Kopia's connection.Reconnector does. Logging in follows
//! Kopia's repo/blob/sftp createSSHConfig: the password alone when there is one, else the
//! private key (key data before key file, no passphrase); the host key is checked against the
//! known hosts with Go's rules (see [`super::known_hosts`]).

use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use russh::client::{self, AuthResult, Handle};
use russh::keys::{Algorithm, PrivateKeyWithHashAlg, PublicKeyBase64, PublicKeyOrCertificate};
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::client::rawsession::Limits;
use russh_sftp::client::RawSftpSession;
use russh_sftp::protocol::StatusCode;
use tracing::{debug, warn};

use super::config::{Credentials, KnownHostsSource, SftpConfig};
use super::known_hosts::{fingerprint, key_type_name, KnownHosts, Verdict};

/// How long the TCP connection may take to be accepted.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the handshake, login and SFTP start may take together.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one SFTP request may wait for its answer before the connection counts as dead.
const REQUEST_TIMEOUT_SECS: u64 = 60;
/// Keepalives notice a connection whose other end vanished without closing it (a NAS that
/// lost power): after this many unanswered ones, 15 s apart, it is closed and reopened.
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(15);
const KEEPALIVE_MAX: usize = 3;
/// Kopia's packet size (repo/blob/sftp packetSize); a server's `limits@openssh.com` may allow
/// bigger reads and writes, up to what one SFTP packet may carry.
const DEFAULT_CHUNK: u64 = 1 << 15;
const MAX_CHUNK: u64 = 255 * 1024;
/// Tries of one operation when the connection fails (connect refused, dropped, timed out),
/// with doubling pauses from 200 ms; a server's answer (no such file, denied) is final.
const ATTEMPTS: u32 = 4;
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(200);

const POSIX_RENAME: &str = "posix-rename@openssh.com";
const FSYNC: &str = "fsync@openssh.com";
const LIMITS: &str = "limits@openssh.com";

/// Why no session could be had.
#[derive(Debug, Clone)]
pub(crate) enum ConnectError {
    /// No TCP connection (refused, no route, timed out): transient.
    Unreachable(String),
    /// The server's host key is not trusted: final.
    HostKey(String),
    /// The server refused our login: final.
    Auth(String),
    /// Our side cannot log in (unreadable key, bad known_hosts): final.
    Config(String),
    /// The SSH or SFTP handshake failed: transient.
    Protocol(String),
}

/// Why an operation failed for good.
#[derive(Debug)]
pub(crate) enum Failure {
    Connect(ConnectError),
    Sftp(SftpError),
}

/// One logged-in SSH connection and its SFTP session.
pub(crate) struct Session {
    ssh: Handle<HostKeyCheck>,
    pub sftp: RawSftpSession,
    /// The server renames over an existing file atomically (`posix-rename@openssh.com`).
    pub posix_rename: bool,
    /// The server can flush a file to its disk (`fsync@openssh.com`).
    pub fsync: bool,
    pub read_chunk: u32,
    pub write_chunk: usize,
}

/// Who and where to log in; read from the config once, the key and known hosts at every
/// connect (as Kopia does, so an edited known_hosts counts at the next connection).
struct Endpoint {
    host: String,
    port: u16,
    address: String,
    username: String,
    credentials: Credentials,
    known_hosts: KnownHostsSource,
}

/// The shared, reconnecting connection of one storage.
pub(crate) struct Connection {
    endpoint: Endpoint,
    current: tokio::sync::Mutex<Option<Arc<Session>>>,
}

impl Connection {
    pub(crate) fn new(config: &SftpConfig) -> Result<Connection, String> {
        Ok(Connection {
            endpoint: Endpoint {
                host: config.bare_host().to_string(),
                port: config.port(),
                address: config.address(),
                username: config.username.clone(),
                credentials: config.credentials()?,
                known_hosts: config.known_hosts()?,
            },
            current: tokio::sync::Mutex::new(None),
        })
    }

    /// `host:port`, for messages.
    pub(crate) fn address(&self) -> &str {
        &self.endpoint.address
    }

    /// Runs `operation` on the current session, reconnecting and trying again while the
    /// connection (not the server's answer) fails.
    pub(crate) async fn run<T, F, Fut>(&self, mut operation: F) -> Result<T, Failure>
    where
        F: FnMut(Arc<Session>) -> Fut,
        Fut: Future<Output = Result<T, SftpError>>,
    {
        let mut delay = FIRST_RETRY_DELAY;
        for attempt in 1..=ATTEMPTS {
            let last = attempt == ATTEMPTS;
            let session = match self.session().await {
                Ok(session) => session,
                Err(e @ (ConnectError::Unreachable(_) | ConnectError::Protocol(_))) if !last => {
                    debug!(address = %self.endpoint.address, error = ?e, "SFTP connect failed, retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    continue;
                }
                Err(e) => return Err(Failure::Connect(e)),
            };
            match operation(Arc::clone(&session)).await {
                Ok(value) => return Ok(value),
                Err(e) if connection_failed(&e) => {
                    warn!(address = %self.endpoint.address, error = %e, "SFTP connection failed");
                    self.discard(&session).await;
                    if last {
                        return Err(Failure::Sftp(e));
                    }
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                Err(e) => return Err(Failure::Sftp(e)),
            }
        }
        unreachable!("the last attempt returns")
    }

    /// The open session, or a new one when there is none or it was closed.
    async fn session(&self) -> Result<Arc<Session>, ConnectError> {
        let mut current = self.current.lock().await;
        if let Some(session) = current.as_ref().filter(|s| !s.ssh.is_closed()) {
            return Ok(Arc::clone(session));
        }
        let session = Arc::new(
            tokio::time::timeout(LOGIN_TIMEOUT + CONNECT_TIMEOUT, self.connect())
                .await
                .map_err(|_| {
                    ConnectError::Protocol(format!(
                        "no SSH session with {} within {:?}",
                        self.endpoint.address,
                        LOGIN_TIMEOUT + CONNECT_TIMEOUT
                    ))
                })??,
        );
        *current = Some(Arc::clone(&session));
        Ok(session)
    }

    /// Forgets `broken` unless another request already replaced it.
    async fn discard(&self, broken: &Arc<Session>) {
        let mut current = self.current.lock().await;
        if current.as_ref().is_some_and(|s| Arc::ptr_eq(s, broken)) {
            *current = None;
        }
    }

    async fn connect(&self) -> Result<Session, ConnectError> {
        let endpoint = &self.endpoint;
        let known_hosts = load_known_hosts(&endpoint.known_hosts)?;
        let key = match &endpoint.credentials {
            Credentials::Password(_) => None,
            Credentials::KeyData(data) => Some(decode_key(data.expose(), "keyData")?),
            Credentials::KeyFile(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    ConnectError::Config(format!(
                        "cannot read the private key file {}: {e}",
                        path.display()
                    ))
                })?;
                Some(decode_key(&text, &format!("keyfile {}", path.display()))?)
            }
        };

        let socket = tokio::time::timeout(
            CONNECT_TIMEOUT,
            tokio::net::TcpStream::connect((endpoint.host.as_str(), endpoint.port)),
        )
        .await
        .map_err(|_| ConnectError::Unreachable(format!("timed out after {CONNECT_TIMEOUT:?}")))?
        .map_err(|e| ConnectError::Unreachable(e.to_string()))?;
        let _ = socket.set_nodelay(true);

        let mut config = client::Config {
            keepalive_interval: Some(KEEPALIVE_INTERVAL),
            keepalive_max: KEEPALIVE_MAX,
            ..client::Config::default()
        };
        config.preferred.key = Cow::Owned(host_key_preference(
            &known_hosts.key_types_for(&endpoint.host, endpoint.port),
        ));
        let check = HostKeyCheck {
            known_hosts,
            host: endpoint.host.clone(),
            port: endpoint.port,
            address: endpoint.address.clone(),
            source: endpoint.known_hosts.describe(),
        };
        let mut ssh = client::connect_stream(Arc::new(config), socket, check)
            .await
            .map_err(|e| match e {
                HandshakeError::HostKey(reason) => ConnectError::HostKey(reason),
                HandshakeError::Ssh(e) => ConnectError::Protocol(format!("SSH handshake: {e}")),
            })?;

        let user = endpoint.username.as_str();
        let who = format!("{user}@{}", endpoint.host);
        let (result, method) = match (&endpoint.credentials, key) {
            (Credentials::Password(password), _) => (
                ssh.authenticate_password(user, password.expose()).await,
                "password".to_string(),
            ),
            (_, Some((key, origin))) => {
                let method = format!(
                    "{} key {} from {origin}",
                    key.algorithm().as_str(),
                    key.public_key().fingerprint(Default::default())
                );
                let hash = ssh.best_supported_rsa_hash().await.ok().flatten().flatten();
                let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
                (ssh.authenticate_publickey(user, key).await, method)
            }
            (_, None) => unreachable!("a key is loaded for key credentials"),
        };
        match result.map_err(|e| ConnectError::Protocol(format!("SSH login: {e}")))? {
            AuthResult::Success => {}
            AuthResult::Failure {
                remaining_methods, ..
            } => {
                let accepted: Vec<&str> = remaining_methods.iter().map(<&str>::from).collect();
                return Err(ConnectError::Auth(format!(
                    "{who} refused the login with the {method} (the server accepts: {})",
                    accepted.join(", ")
                )));
            }
        }
        start_sftp(ssh).await
    }
}

/// Opens the SFTP subsystem on a logged-in connection and learns the server's extensions.
async fn start_sftp(ssh: Handle<HostKeyCheck>) -> Result<Session, ConnectError> {
    let protocol = |what: &str, e: &dyn std::fmt::Display| {
        ConnectError::Protocol(format!("starting SFTP ({what}): {e}"))
    };
    let channel = ssh
        .channel_open_session()
        .await
        .map_err(|e| protocol("session channel", &e))?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|e| protocol("subsystem", &e))?;
    let config = russh_sftp::client::Config {
        request_timeout_secs: REQUEST_TIMEOUT_SECS,
        ..russh_sftp::client::Config::default()
    };
    let mut sftp = RawSftpSession::new_with_config(channel.into_stream(), config);
    let version = sftp.init().await.map_err(|e| protocol("init", &e))?;
    let has = |name: &str| version.extensions.contains_key(name);
    let mut limits = Limits::default();
    if has(LIMITS) {
        limits = Limits::from(sftp.limits().await.map_err(|e| protocol("limits", &e))?);
        sftp.set_limits(limits);
    }
    let chunk = |limit: Option<u64>| limit.map_or(DEFAULT_CHUNK, |l| l.min(MAX_CHUNK));
    Ok(Session {
        posix_rename: has(POSIX_RENAME),
        fsync: has(FSYNC),
        read_chunk: chunk(limits.read_len) as u32,
        write_chunk: chunk(limits.write_len) as usize,
        sftp,
        ssh,
    })
}

/// Errors of the connection rather than answers of the server: worth a new connection.
fn connection_failed(error: &SftpError) -> bool {
    match error {
        SftpError::Status(status) => matches!(
            status.status_code,
            StatusCode::NoConnection | StatusCode::ConnectionLost
        ),
        SftpError::Limited(_) => false,
        SftpError::IO(_)
        | SftpError::Timeout
        | SftpError::UnexpectedPacket
        | SftpError::UnexpectedBehavior(_) => true,
    }
}

fn load_known_hosts(source: &KnownHostsSource) -> Result<KnownHosts, ConnectError> {
    let text = match source {
        KnownHostsSource::Data(data) => Cow::Borrowed(data.as_str()),
        KnownHostsSource::File(path) => Cow::Owned(std::fs::read_to_string(path).map_err(|e| {
            ConnectError::Config(format!(
                "cannot read the known_hosts file {}: {e}",
                path.display()
            ))
        })?),
    };
    KnownHosts::parse(&text)
        .map_err(|e| ConnectError::Config(format!("known_hosts {}: {e}", source.describe())))
}

/// A private key without passphrase (Kopia has no way to give one), with where it came from.
fn decode_key(text: &str, origin: &str) -> Result<(russh::keys::PrivateKey, String), ConnectError> {
    match russh::keys::decode_secret_key(text, None) {
        Ok(key) => Ok((key, origin.to_string())),
        Err(russh::keys::Error::KeyIsEncrypted) => Err(ConnectError::Config(format!(
            "the private key in {origin} is protected by a passphrase; Kopia's SFTP storage \
             takes only keys without one"
        ))),
        Err(e) => Err(ConnectError::Config(format!(
            "cannot parse the private key in {origin}: {e}"
        ))),
    }
}

/// russh's host key algorithms, those of the keys known for this host first: a server with
/// several host keys then proves itself with one we can check (OpenSSH's client does the same).
fn host_key_preference(known_types: &[String]) -> Vec<Algorithm> {
    let family = |algorithm: &Algorithm| {
        if algorithm.clone().is_rsa() {
            "ssh-rsa".to_string()
        } else {
            algorithm.as_str().to_string()
        }
    };
    let (known, others): (Vec<Algorithm>, Vec<Algorithm>) = russh::Preferred::DEFAULT
        .key
        .iter()
        .cloned()
        .partition(|a| known_types.contains(&family(a)));
    known.into_iter().chain(others).collect()
}

/// The client handler: it only judges the server's host key.
pub(crate) struct HostKeyCheck {
    known_hosts: KnownHosts,
    host: String,
    port: u16,
    address: String,
    source: String,
}

#[derive(Debug)]
pub(crate) enum HandshakeError {
    Ssh(russh::Error),
    HostKey(String),
}

impl From<russh::Error> for HandshakeError {
    fn from(error: russh::Error) -> Self {
        HandshakeError::Ssh(error)
    }
}

impl HostKeyCheck {
    /// The refusal of a host key, or `None` when the known hosts trust it.
    fn judge(&self, key: &[u8]) -> Option<String> {
        let shown = format!(
            "host key of {} ({} {})",
            self.address,
            key_type_name(key),
            fingerprint(key)
        );
        match self.known_hosts.check(&self.host, self.port, key) {
            Verdict::Known => None,
            Verdict::Unknown => Some(format!(
                "{shown} is not in {}; if it is the server's key, add it (ssh-keyscan -p {} {} \
                 prints the line)",
                self.source, self.port, self.host
            )),
            Verdict::Mismatch { lines } => Some(format!(
                "{shown} differs from the key {} holds for it (line {}): the server was \
                 reinstalled, or someone is intercepting the connection",
                self.source,
                lines
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            Verdict::Revoked { line } => Some(format!(
                "{shown} is marked @revoked on line {line} of {}",
                self.source
            )),
        }
    }
}

impl client::Handler for HostKeyCheck {
    type Error = HandshakeError;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                match self.judge(&key.public_key_bytes()) {
                    None => Ok(true),
                    Some(refusal) => Err(HandshakeError::HostKey(refusal)),
                }
            }
            // We never ask for host certificates (russh's default), so none should come.
            PublicKeyOrCertificate::Certificate(_) => Err(HandshakeError::HostKey(format!(
                "{} presented a host certificate, which is not supported",
                self.address
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_key_types_are_asked_for_first() {
        let default = russh::Preferred::DEFAULT.key.to_vec();
        assert_eq!(host_key_preference(&[]), default);
        let rsa_first = host_key_preference(&["ssh-rsa".to_string()]);
        assert!(rsa_first[0].clone().is_rsa(), "{rsa_first:?}");
        assert_eq!(rsa_first.len(), default.len());
        let ecdsa = host_key_preference(&["ecdsa-sha2-nistp256".to_string()]);
        assert_eq!(ecdsa[0].as_str(), "ecdsa-sha2-nistp256");
    }

    #[test]
    fn encrypted_and_broken_keys_are_named() {
        // `ssh-keygen -t ed25519 -N secret`: Kopia cannot use it either.
        let encrypted = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAACmFlczI1Ni1jdHIAAAAGYmNyeXB0AAAAGAAAABApO7SiTq
som/pAYpQFCT9fAAAAEAAAAAEAAAAzAAAAC3NzaC1lZDI1NTE5AAAAINm3aLdh2vl0bnfj
xNuy8CNHnB8mCaMGO8ZNiYMeib42AAAAkEeuEbNrzWs+ETYiFjBuy2yPJx4aPN2DTVX87I
upOaEUQUGSkWfWfvfIfnEpxr3sIkOqJCT0rmFccgs8qQnPMWWeq46qT29pwVxUJ3jLS8TQ
nzybQ0pX1CaFETp1o3tVg4vAyA5pCdmijCmMhA6WWTQ9vlmhgOhl5G+ia6YpD63P+J/KMC
b1NhHA3ortfUJh/w==
-----END OPENSSH PRIVATE KEY-----
";
        match decode_key(encrypted, "keyfile /k") {
            Err(ConnectError::Config(reason)) => {
                assert!(
                    reason.contains("passphrase") && reason.contains("/k"),
                    "{reason}"
                )
            }
            other => panic!("unexpected {other:?}"),
        }
        match decode_key("not a key", "keyData") {
            Err(ConnectError::Config(reason)) => assert!(reason.contains("keyData"), "{reason}"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn connection_errors_and_answers_are_told_apart() {
        assert!(connection_failed(&SftpError::Timeout));
        assert!(connection_failed(&SftpError::UnexpectedBehavior(
            "session closed".into()
        )));
        let answer = |code| {
            SftpError::Status(russh_sftp::protocol::Status {
                id: 1,
                status_code: code,
                error_message: String::new(),
                language_tag: String::new(),
            })
        };
        assert!(!connection_failed(&answer(StatusCode::NoSuchFile)));
        assert!(!connection_failed(&answer(StatusCode::PermissionDenied)));
        assert!(connection_failed(&answer(StatusCode::ConnectionLost)));
    }
}
