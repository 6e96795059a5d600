//! Just enough HTTP/1.1 for the B2 fake: keep-alive requests with `Content-Length` bodies, over
//! plain TCP or TLS, answered by a handler; the proxy's `CONNECT`; and the encodings B2 uses
//! in paths and headers.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One request as the handlers see it (header names lowercased, the path still encoded).
#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// An answer: status, extra headers and body (`Content-Length` is added).
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, body: &serde_json::Value) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    /// B2's error body: its status, code and message.
    pub fn error(status: u16, code: &str, message: &str) -> Response {
        Response::json(
            status,
            &serde_json::json!({"status": status, "code": code, "message": message}),
        )
    }
}

/// Reads one request; `None` at the end of the connection or on garbage.
pub fn read_request<S: Read>(reader: &mut BufReader<S>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next()?.to_owned(), parts.next()?.to_owned());
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).ok()?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':')?;
        headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
    }
    let length: usize = headers
        .get("content-length")
        .map_or(Some(0), |v| v.parse().ok())?;
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

pub fn write_response<S: Write>(stream: &mut S, response: &Response, head: bool) -> bool {
    let mut text = format!("HTTP/1.1 {} B2\r\n", response.status);
    for (name, value) in &response.headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    if !response
        .headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    {
        text.push_str(&format!("Content-Length: {}\r\n", response.body.len()));
    }
    text.push_str("\r\n");
    let mut bytes = text.into_bytes();
    if !head {
        bytes.extend_from_slice(&response.body);
    }
    stream
        .write_all(&bytes)
        .and_then(|_| stream.flush())
        .is_ok()
}

/// Serves requests on one connection until it ends; `handle` returning `None` drops it (an
/// unreachable server, as the client sees it).
pub fn serve<S: Read + Write>(stream: S, handle: &dyn Fn(&Request) -> Option<Response>) {
    let mut reader = BufReader::new(stream);
    while let Some(request) = read_request(&mut reader) {
        let Some(response) = handle(&request) else {
            return;
        };
        if !write_response(reader.get_mut(), &response, request.method == "HEAD") {
            return;
        }
    }
}

/// A loopback listener whose connections each get a thread; stopping it closes the listener
/// and every open connection, so clients see refused and reset connections.
pub struct Listener {
    port: u16,
    stopped: Arc<AtomicBool>,
    connections: Arc<Mutex<HashMap<usize, TcpStream>>>,
    accepting: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    /// Listens on `port` (0: any free one) and hands each connection to `serve_one`.
    pub fn start(
        port: u16,
        serve_one: Arc<dyn Fn(TcpStream) + Send + Sync>,
    ) -> std::io::Result<Listener> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let port = listener.local_addr()?.port();
        let stopped = Arc::new(AtomicBool::new(false));
        let connections: Arc<Mutex<HashMap<usize, TcpStream>>> = Arc::default();
        let (flag, open) = (Arc::clone(&stopped), Arc::clone(&connections));
        let accepting = std::thread::spawn(move || {
            for (serial, stream) in listener.incoming().enumerate() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
                let Ok(clone) = stream.try_clone() else {
                    continue;
                };
                open.lock().unwrap().insert(serial, clone);
                let (serve_one, open) = (Arc::clone(&serve_one), Arc::clone(&open));
                std::thread::spawn(move || {
                    serve_one(stream);
                    // The clone kept for stopping would keep the socket open: close it too.
                    if let Some(clone) = open.lock().unwrap().remove(&serial) {
                        let _ = clone.shutdown(Shutdown::Both);
                    }
                });
            }
        });
        Ok(Listener {
            port,
            stopped,
            connections,
            accepting: Some(accepting),
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        self.stopped.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and drops the listening socket.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        // The port is free again (for a restart) once the accept loop has ended.
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.join();
        }
        for (_, stream) in self.connections.lock().unwrap().drain() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// Answers `CONNECT <allowed>:443` on a proxy connection: `Some` when the tunnel is open
/// (200 sent), `None` when it was refused.
pub fn accept_connect(stream: &mut TcpStream, allowed: &str) -> Option<()> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let request = read_request(&mut reader)?;
    let target = format!("{allowed}:443");
    if request.method != "CONNECT" || request.path != target {
        let refused = Response::error(403, "forbidden", "this proxy only reaches B2's API");
        write_response(stream, &refused, false);
        return None;
    }
    stream
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .ok()
}

/// `bytes=first-last` or `bytes=first-`.
pub fn parse_range(header: &str) -> Option<(usize, Option<usize>)> {
    let (first, last) = header.strip_prefix("bytes=")?.split_once('-')?;
    let last = if last.is_empty() {
        None
    } else {
        Some(last.parse().ok()?)
    };
    Some((first.parse().ok()?, last))
}

pub fn hex(digest: ring::digest::Digest) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// B2's decoding of names in paths and headers: `%XX`, and `+` as a space (Go's
/// url.QueryEscape, which Kopia's client uses, writes spaces so).
pub fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let digits = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(digits, 16) {
                    Ok(byte) => {
                        out.push(byte);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
