//! A TCP link on loopback between a client and a storage server that a test can cut and
//! restore: cut, the server is gone as the client sees it (open connections reset, new ones
//! refused); restored, it answers again on the same address. The link also records the
//! request lines of the HTTP requests passing through, so tests count what a client asked.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

const METHODS: [&str; 6] = ["GET ", "PUT ", "HEAD ", "POST ", "DELETE ", "PROPFIND "];

#[derive(Default)]
struct Shared {
    connections: Mutex<Vec<TcpStream>>,
    requests: Mutex<Vec<String>>,
}

pub struct CuttableLink {
    port: u16,
    target: SocketAddr,
    shared: Arc<Shared>,
    /// Tells the current accept loop to stop; replaced on every restore.
    up: Mutex<Arc<AtomicBool>>,
}

impl CuttableLink {
    /// A link to `target`, listening on a free loopback port.
    pub fn to(target: SocketAddr) -> CuttableLink {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        let link = CuttableLink {
            port,
            target,
            shared: Arc::default(),
            up: Mutex::new(Arc::new(AtomicBool::new(true))),
        };
        link.serve(listener);
        link
    }

    /// `127.0.0.1:<port>`: where clients connect instead of the server.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The server vanishes: every open connection is reset, new ones are refused.
    pub fn cut(&self) {
        self.up.lock().unwrap().store(false, Ordering::SeqCst);
        for connection in self.shared.connections.lock().unwrap().drain(..) {
            let _ = connection.shutdown(Shutdown::Both);
        }
        // The accept loop polls every few milliseconds; once it is gone the port refuses.
        thread::sleep(Duration::from_millis(50));
    }

    /// The server is back on the same address.
    pub fn restore(&self) {
        let listener = (0..100)
            .find_map(|_| {
                TcpListener::bind(("127.0.0.1", self.port))
                    .map_err(|_| thread::sleep(Duration::from_millis(20)))
                    .ok()
            })
            .expect("rebind the link's port");
        *self.up.lock().unwrap() = Arc::new(AtomicBool::new(true));
        self.serve(listener);
    }

    /// The request lines (`GET /bucket?list-type=2…`) seen since the last call.
    pub fn take_requests(&self) -> Vec<String> {
        std::mem::take(&mut *self.shared.requests.lock().unwrap())
    }

    fn serve(&self, listener: TcpListener) {
        listener.set_nonblocking(true).unwrap();
        let up = Arc::clone(&self.up.lock().unwrap());
        let shared = Arc::clone(&self.shared);
        let target = self.target;
        thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        client.set_nonblocking(false).unwrap();
                        let Ok(server) = TcpStream::connect(target) else {
                            continue;
                        };
                        let mut connections = shared.connections.lock().unwrap();
                        connections.push(client.try_clone().unwrap());
                        connections.push(server.try_clone().unwrap());
                        drop(connections);
                        let requests = Arc::clone(&shared);
                        let (client_in, server_out) =
                            (client.try_clone().unwrap(), server.try_clone().unwrap());
                        thread::spawn(move || pump(client_in, server_out, Some(&requests)));
                        thread::spawn(move || pump(server, client, None));
                    }
                    Err(_) => thread::sleep(Duration::from_millis(5)),
                }
            }
        });
    }
}

/// Copies `from` to `to` until either side closes; records request lines when asked.
fn pump(mut from: TcpStream, mut to: TcpStream, requests: Option<&Shared>) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if let Some(shared) = requests {
            record_request_lines(&buffer[..n], shared);
        }
        if to.write_all(&buffer[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

/// Request lines start a chunk or follow a blank line; bodies are binary and encrypted, so a
/// method name at a line start inside one is improbable enough for counting.
fn record_request_lines(chunk: &[u8], shared: &Shared) {
    let text = String::from_utf8_lossy(chunk);
    for line in text.split("\r\n") {
        if METHODS.iter().any(|m| line.starts_with(m)) && line.ends_with("HTTP/1.1") {
            shared.requests.lock().unwrap().push(line.to_string());
        }
    }
}
