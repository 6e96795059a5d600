//! A real Secret Service for tests: a private D-Bus session bus ([`crate::session_bus`]) with
//! Debian's `gnome-keyring-daemon`, unlocked. The daemon
//! can be paused (SIGSTOP: it keeps its bus name and stops answering, as a hung keyring does)
//! and resumed.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOOLS: [&str; 3] = ["dbus-daemon", "dbus-send", "gnome-keyring-daemon"];
const SECRETS_NAME: &str = "org.freedesktop.secrets";

pub struct KeyringSession {
    _root: tempfile::TempDir,
    bus_address: String,
    bus: Child,
    keyring: Child,
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The tools, or `None` with a loud notice; under `CI=true` a missing tool panics.
fn tools_present() -> bool {
    let missing: Vec<&str> = TOOLS.iter().copied().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!(
        "missing {} (apt-get install dbus gnome-keyring)",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true requires a Secret Service for this test: {reason}");
    }
    let _ = std::io::stderr().write_all(format!("\n*** SKIPPED: {reason} ***\n").as_bytes());
    false
}

impl KeyringSession {
    /// Starts the bus and an unlocked keyring; `None` (after a notice) when the tools are
    /// missing outside CI.
    pub fn start() -> Option<KeyringSession> {
        if !tools_present() {
            return None;
        }
        let root = tempfile::Builder::new()
            .prefix("kopia-notifier-keyring-")
            .tempdir()
            .unwrap();
        let runtime = root.path().join("runtime");
        fs::create_dir_all(&runtime).unwrap();
        fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).unwrap();
        let config = root.path().join("bus.conf");
        fs::write(&config, crate::session_bus::config(&runtime)).unwrap();
        let mut bus = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(fs::File::create(root.path().join("bus.log")).unwrap())
            .process_group(0)
            .spawn()
            .expect("start dbus-daemon");
        let mut address = String::new();
        BufReader::new(bus.stdout.take().unwrap())
            .read_line(&mut address)
            .unwrap();
        let bus_address = address.trim().to_string();
        assert!(!bus_address.is_empty(), "dbus-daemon printed no address");

        let home = root.path().join("home");
        fs::create_dir_all(&home).unwrap();
        let mut keyring = Command::new("gnome-keyring-daemon")
            .args(["--foreground", "--unlock", "--components=secrets"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &home)
            .env("XDG_RUNTIME_DIR", &runtime)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("DBUS_SESSION_BUS_ADDRESS", &bus_address)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(fs::File::create(root.path().join("keyring.log")).unwrap())
            .process_group(0)
            .spawn()
            .expect("start gnome-keyring-daemon");
        // The login keyring's password, then end of input.
        keyring
            .stdin
            .take()
            .unwrap()
            .write_all(b"keyring password")
            .unwrap();
        let session = KeyringSession {
            _root: root,
            bus_address,
            bus,
            keyring,
        };
        session.wait_for_secrets(Duration::from_secs(20));
        Some(session)
    }

    /// The address to put in `DBUS_SESSION_BUS_ADDRESS`.
    pub fn bus_address(&self) -> &str {
        &self.bus_address
    }

    fn wait_for_secrets(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let out = Command::new("dbus-send")
                .env("DBUS_SESSION_BUS_ADDRESS", &self.bus_address)
                .args([
                    "--session",
                    "--print-reply",
                    "--dest=org.freedesktop.DBus",
                    "/org/freedesktop/DBus",
                    "org.freedesktop.DBus.NameHasOwner",
                    &format!("string:{SECRETS_NAME}"),
                ])
                .output()
                .unwrap();
            if String::from_utf8_lossy(&out.stdout).contains("boolean true") {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon never owned {SECRETS_NAME}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log_path(&self) -> PathBuf {
        self._root.path().join("keyring.log")
    }

    /// What the keyring daemon printed.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.keyring.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} the keyring daemon");
    }

    /// Stops the daemon: it keeps its bus name and answers nothing until [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }
}

impl Drop for KeyringSession {
    fn drop(&mut self) {
        // A stopped process must be continued to die of SIGTERM.
        let _ = Command::new("kill")
            .args(["-CONT", &self.keyring.id().to_string()])
            .status();
        for child in [&mut self.keyring, &mut self.bus] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
