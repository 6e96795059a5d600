//! The private desktop session: Xvfb, a session bus of our own, dunst, and every process the
//! test starts, each in its own process group so that dropping [`Desktop`] ends them all
//! (WebKit's helper processes included).

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// Programs the test drives; all are Debian packages (xvfb, dbus, dunst, webkit2gtk-driver,
/// xdotool).
pub const REQUIRED_TOOLS: [&str; 7] = [
    "Xvfb",
    "dbus-daemon",
    "dunst",
    "dunstctl",
    "busctl",
    "WebKitWebDriver",
    "xdotool",
];

/// True when every tool is installed. Under `CI=true` a missing tool panics; elsewhere the test
/// is skipped with a loud notice on the real stderr (like `require_kopia`).
pub fn require_desktop_tools() -> bool {
    let missing: Vec<&str> = REQUIRED_TOOLS
        .iter()
        .copied()
        .filter(|tool| find_on_path(tool).is_none())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let reason = format!(
        "missing {} (apt-get install xvfb xauth dbus dunst webkit2gtk-driver xdotool)",
        missing.join(", ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true requires the desktop test tools: {reason}");
    }
    let notice = format!("\n*** SKIPPED: desktop end-to-end test: {reason} ***\n");
    let _ = std::io::stderr().write_all(notice.as_bytes());
    false
}

pub fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}

/// Polls `probe` every 100 ms until it returns `Ok`; on timeout panics with `what` and the last
/// observation (`Err`).
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    mut probe: impl FnMut() -> Result<T, String>,
) -> T {
    let start = Instant::now();
    loop {
        let last = match probe() {
            Ok(value) => return value,
            Err(last) => last,
        };
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The app and CLI binaries of this workspace, built with the profile this test was built with
/// into the same target directory (quick when up to date). `KOPIA_NOTIFIER_BIN` and
/// `KOPIA_NOTIFY_BIN` point at prebuilt binaries instead.
pub struct Binaries {
    pub app: PathBuf,
    pub cli: PathBuf,
}

pub fn build_binaries() -> Binaries {
    let from_env = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let (Some(app), Some(cli)) = (from_env("KOPIA_NOTIFIER_BIN"), from_env("KOPIA_NOTIFY_BIN")) {
        return Binaries { app, cli };
    }
    // The test executable is <target>/<profile>/deps/desktop-<hash>.
    let exe = std::env::current_exe().expect("path of the test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps")
        .to_path_buf();
    let target_dir = profile_dir
        .parent()
        .expect("a target directory")
        .to_path_buf();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // One package per build, as `cargo build` and `cargo build -p kopia-notify` are run by
    // hand: building both at once unifies their dependencies' features differently and would
    // relink each binary whenever the two ways alternate.
    for package in ["kopia-notifier", "kopia-notify"] {
        let mut build = Command::new(&cargo);
        build
            .args(["build", "--quiet", "-p", package])
            .arg("--manifest-path")
            .arg(&manifest)
            .arg("--target-dir")
            .arg(&target_dir);
        match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => {}
            Some("release") => {
                build.arg("--release");
            }
            Some(profile) => {
                build.args(["--profile", profile]);
            }
        }
        let status = build.status().expect("run cargo build");
        assert!(
            status.success(),
            "cargo build -p {package} failed: {status}"
        );
    }
    Binaries {
        app: profile_dir.join("kopia-notifier"),
        cli: profile_dir.join("kopia-notify"),
    }
}

struct Running {
    name: String,
    child: Child,
    log: PathBuf,
}

/// A private X display and session bus with a temporary home; every child started through it is
/// ended when it is dropped. On a panic its logs are printed.
pub struct Desktop {
    root: TempDir,
    env: Vec<(String, String)>,
    bus_address: String,
    running: Vec<Running>,
}

impl Desktop {
    pub fn start() -> Desktop {
        let root = tempfile::Builder::new()
            .prefix("kopia-notifier-desktop-")
            .tempdir()
            .expect("create the session's temp dir");
        let dir = |name: &str| {
            let path = root.path().join(name);
            fs::create_dir_all(&path).expect("create a session directory");
            path
        };
        let home = dir("home");
        let runtime = dir("runtime");
        fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700)).expect("chmod runtime");
        dir("logs");
        let mut desktop = Desktop {
            env: vec![
                ("PATH".into(), std::env::var("PATH").unwrap_or_default()),
                ("HOME".into(), home.display().to_string()),
                (
                    "XDG_CONFIG_HOME".into(),
                    home.join(".config").display().to_string(),
                ),
                (
                    "XDG_DATA_HOME".into(),
                    home.join(".local/share").display().to_string(),
                ),
                (
                    "XDG_CACHE_HOME".into(),
                    home.join(".cache").display().to_string(),
                ),
                ("XDG_RUNTIME_DIR".into(), runtime.display().to_string()),
                ("LANG".into(), "C.UTF-8".into()),
                // No accessibility bus: nothing may be started behind our back.
                ("NO_AT_BRIDGE".into(), "1".into()),
                ("GTK_A11Y".into(), "none".into()),
                ("RUST_BACKTRACE".into(), "1".into()),
            ],
            root,
            bus_address: String::new(),
            running: Vec::new(),
        };

        // -displayfd picks a free display and writes its number to the given descriptor.
        let mut xvfb = Command::new("Xvfb");
        xvfb.args([
            "-displayfd",
            "1",
            "-screen",
            "0",
            "1280x800x24",
            "-nolisten",
            "tcp",
        ]);
        let display = desktop.spawn_reading_line("xvfb", xvfb);
        desktop.env.push(("DISPLAY".into(), format!(":{display}")));

        let config = desktop.root.path().join("bus.conf");
        fs::write(&config, kopia_fixtures::session_bus::config(&runtime))
            .expect("write the bus configuration");
        let mut bus = Command::new("dbus-daemon");
        bus.arg(format!("--config-file={}", config.display()))
            .args(["--nofork", "--print-address"]);
        desktop.bus_address = desktop.spawn_reading_line("dbus", bus);
        desktop.env.push((
            "DBUS_SESSION_BUS_ADDRESS".into(),
            desktop.bus_address.clone(),
        ));
        desktop
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn home(&self) -> PathBuf {
        self.root.path().join("home")
    }

    pub fn bus_address(&self) -> &str {
        &self.bus_address
    }

    /// The X display, as `:N`.
    pub fn display(&self) -> &str {
        self.env
            .iter()
            .find(|(k, _)| k == "DISPLAY")
            .map(|(_, v)| v.as_str())
            .expect("the session has a display")
    }

    /// A command with exactly the session's environment.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        command
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Starts dunst with a configuration that keeps every popup until it is closed and keeps a
    /// history, and waits until it serves notifications.
    pub fn start_dunst(&mut self) {
        let config = self.root.path().join("dunstrc");
        fs::write(
            &config,
            "[global]\n    history_length = 100\n    sticky_history = yes\n    idle_threshold = 0\n\
             [urgency_low]\n    timeout = 0\n[urgency_normal]\n    timeout = 0\n\
             [urgency_critical]\n    timeout = 0\n",
        )
        .expect("write dunstrc");
        let mut dunst = self.command("dunst");
        dunst.arg("-config").arg(&config);
        self.spawn("dunst", dunst);
        wait_for(
            "dunst to serve org.freedesktop.Notifications",
            Duration::from_secs(15),
            || {
                let out = self.output(
                    self.command("busctl").args([
                        "--user",
                        "status",
                        "org.freedesktop.Notifications",
                    ]),
                    Duration::from_secs(5),
                );
                if out.status.success() {
                    Ok(())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
                }
            },
        );
    }

    /// Starts a long-running child in its own process group, output to `logs/<name>.log`.
    pub fn spawn(&mut self, name: &str, mut command: Command) -> u32 {
        let log = self.log_path(name);
        let file = File::create(&log).expect("create a log file");
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("clone log handle"))
            .stderr(file)
            .process_group(0);
        self.push(name, command, log)
    }

    fn push(&mut self, name: &str, mut command: Command, log: PathBuf) -> u32 {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name} ({command:?}): {e}"));
        let pid = child.id();
        self.running.push(Running {
            name: name.to_string(),
            child,
            log,
        });
        pid
    }

    /// Starts a child that announces itself with one line on stdout (a display number, a bus
    /// address) and returns that line.
    fn spawn_reading_line(&mut self, name: &str, mut command: Command) -> String {
        let log = self.log_path(name);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(File::create(&log).expect("create a log file"))
            .process_group(0);
        self.push(name, command, log);
        let stdout = self
            .running
            .last_mut()
            .and_then(|r| r.child.stdout.take())
            .expect("piped stdout");
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| panic!("{name} did not start within 15 s"));
        let line = line.trim().to_string();
        assert!(!line.is_empty(), "{name} exited without announcing itself");
        line
    }

    fn log_path(&self, name: &str) -> PathBuf {
        self.root.path().join("logs").join(format!("{name}.log"))
    }

    /// The output of a short command, killed (and the test failed) after `timeout`.
    pub fn output(&self, command: &mut Command, timeout: Duration) -> Output {
        let dir = tempfile::tempdir_in(self.root.path()).expect("temp dir for output");
        let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
        let mut child = command
            .stdin(Stdio::null())
            .stdout(File::create(&out_path).expect("create stdout file"))
            .stderr(File::create(&err_path).expect("create stderr file"))
            .spawn()
            .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait for a command") {
                break status;
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{command:?} did not finish within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let read = |path: &Path| fs::read(path).unwrap_or_default();
        Output {
            status,
            stdout: read(&out_path),
            stderr: read(&err_path),
        }
    }

    /// Whether the named child still runs.
    pub fn is_running(&mut self, name: &str) -> bool {
        self.running
            .iter_mut()
            .find(|r| r.name == name)
            .is_some_and(|r| matches!(r.child.try_wait(), Ok(None)))
    }

    /// Waits for the named child to exit by itself.
    pub fn wait_exit(&mut self, name: &str, timeout: Duration) -> ExitStatus {
        let running = self
            .running
            .iter_mut()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no child named {name}"));
        wait_for(&format!("{name} to exit"), timeout, || {
            running
                .child
                .try_wait()
                .expect("wait for a child")
                .ok_or_else(|| "still running".to_string())
        })
    }

    /// The last lines of a child's log.
    pub fn log_tail(&self, name: &str, lines: usize) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(self.log_path(name)) {
            let _ = file.read_to_string(&mut text);
        }
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Desktop {
    fn drop(&mut self) {
        if std::thread::panicking() {
            for running in &self.running {
                let name = &running.name;
                let tail = self.log_tail(name, if name == "app" { 80 } else { 15 });
                eprintln!(
                    "----- last lines of {name}'s log ({}) -----\n{tail}",
                    running.log.display()
                );
            }
        }
        // Newest first: the app before the bus and the display it uses.
        while let Some(mut running) = self.running.pop() {
            end_process_group(&mut running.child);
        }
    }
}

/// Sends SIGTERM to the child's process group, then SIGKILL after 3 s, and reaps the child.
fn end_process_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let signal = |name: &str| {
        let _ = Command::new("kill")
            .args([name, "--", &group])
            .stderr(Stdio::null())
            .status();
    };
    if matches!(child.try_wait(), Ok(None)) {
        signal("-TERM");
        let start = Instant::now();
        while matches!(child.try_wait(), Ok(None)) && start.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    // Also ends what the child left behind in its group (WebKit's helper processes).
    signal("-KILL");
    let _ = child.wait();
}

/// The processes below `pid` (children, their children, …) with their command names.
pub fn descendants(pid: u32) -> Vec<(u32, String)> {
    let mut parents: Vec<(u32, u32, String)> = Vec::new();
    for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may itself contain spaces and parentheses.
        let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = stat[open + 1..close].to_string();
        if let Some(parent) = stat[close + 1..]
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
        {
            parents.push((child, parent, comm));
        }
    }
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(current) = queue.pop() {
        for (child, parent, comm) in &parents {
            if *parent == current {
                found.push((*child, comm.clone()));
                queue.push(*child);
            }
        }
    }
    found
}
