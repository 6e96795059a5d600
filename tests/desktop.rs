//! End to end on a headless desktop: the built `kopia-notifier` app under Xvfb with a private
//! session bus, dunst and a tray watcher, driven by `kopia-notify`, D-Bus (popup actions, the
//! tray menu) and WebDriver (the window). One app instance per scenario: the demo repository's,
//! and a Kopia user's repository in an S3 bucket on a loopback moto server.
//!
//! Needs the Debian packages xvfb, dbus, dunst, webkit2gtk-driver and xdotool (skipped loudly
//! without them, failing under `CI=true`), and builds the app and CLI itself. The `kopia`
//! steps need the real kopia (see `kopia_fixtures::require_kopia`), the S3 scenario moto.
//! Run: `cargo test --workspace --test desktop -- --nocapture`.

#[path = "support/desktop/mod.rs"]
mod desktop;

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use desktop::bus::{item_property, PopupMonitor, TrayMenu, TrayWatcher};
use desktop::session::{build_binaries, descendants, require_desktop_tools, wait_for, Desktop};
use desktop::webdriver::WebDriver;
use desktop::x11::request_close;
use kopia_fixtures::servers::require_moto;
use serde_json::Value;

const APP_TITLE: &str = "Kopia Notifier";
/// What the `--demo` repository is seeded with: two of each severity.
const DEMO_STATUS: &str = "2 errors, 2 warnings, 2 notices";
const STARTUP: Duration = Duration::from_secs(60);
const SOON: Duration = Duration::from_secs(20);

#[test]
fn popups_window_tray_and_acknowledgement_end_to_end() {
    if !require_desktop_tools() {
        return;
    }
    let kopia = kopia_fixtures::require_kopia();
    let started = Instant::now();
    let binaries = build_binaries();
    eprintln!("desktop test: binaries ready after {:?}", started.elapsed());

    let mut desktop = Desktop::start();
    desktop.start_dunst();
    let watcher = TrayWatcher::start(desktop.bus_address());
    let monitor = PopupMonitor::start(desktop.bus_address());

    let data_dir = desktop.root().join("data");
    let (inspector_port, driver_port) = (free_port(), free_port());
    let mut app = desktop.command(&binaries.app);
    app.args(["--demo", "--hidden", "--data-dir"])
        .arg(&data_dir)
        .env("RUST_LOG", "info,kopia_notifier=debug")
        .env("TAURI_WEBVIEW_AUTOMATION", "true")
        .env(
            "WEBKIT_INSPECTOR_SERVER",
            format!("127.0.0.1:{inspector_port}"),
        );
    let app_pid = desktop.spawn("app", app);
    let mut driver = desktop.command("WebKitWebDriver");
    driver.args([
        format!("--port={driver_port}"),
        format!("--target=127.0.0.1:{inspector_port}"),
    ]);
    desktop.spawn("webdriver", driver);

    // The tray: registered with the watcher, status line and menu over dbusmenu.
    let item = wait_for("the app's StatusNotifierItem", STARTUP, || {
        watcher
            .items()
            .first()
            .cloned()
            .ok_or_else(|| "nothing registered".into())
    });
    let status = item_property(&desktop, &item, "Status").expect("tray item Status");
    assert_eq!(status["data"], "Active", "tray item status");
    let menu = TrayMenu::of(&desktop, &item);
    wait_status(&desktop, &menu, DEMO_STATUS);
    let layout = menu.layout(&desktop).expect("tray menu");
    for label in [
        "Acknowledge all",
        "Open Kopia Notifier",
        "Check now",
        "Pause popups",
        "For 1 hour",
        "Until tomorrow (8:00)",
        "Launch at login",
        "Settings…",
        "Quit",
    ] {
        assert!(
            layout.find(label).is_some(),
            "no {label:?} in the tray menu: {layout:#?}"
        );
    }
    assert!(
        !layout.children[0].enabled,
        "the status line is not clickable"
    );
    // Four of the demo's notifications are at least warnings: one summary popup.
    let summary = wait_for("the demo's summary popup", SOON, || {
        monitor.find("4 new Kopia notifications")
    });
    assert_eq!(
        summary.urgency,
        Some(2),
        "the summary covers errors: critical"
    );
    assert_eq!(summary.app_name, APP_TITLE);

    // Launch at login: the tray checkbox writes and removes the autostart entry.
    let autostart_dir = desktop.home().join(".config/autostart");
    menu.click(&desktop, "Launch at login");
    let entry = wait_for("an autostart entry", SOON, || {
        autostart_entry(&autostart_dir)
    });
    assert!(
        entry.contains(&binaries.app.display().to_string()) && entry.contains("--hidden"),
        "autostart entry starts the app hidden:\n{entry}"
    );
    wait_for("Launch at login checked", SOON, || {
        checkbox(&desktop, &menu, 1)
    });
    menu.click(&desktop, "Launch at login");
    wait_for(
        "the autostart entry removed",
        SOON,
        || match autostart_entry(&autostart_dir) {
            Ok(entry) => Err(format!("still there:\n{entry}")),
            Err(_) => Ok(()),
        },
    );
    wait_for("Launch at login unchecked", SOON, || {
        checkbox(&desktop, &menu, 0)
    });

    // kopia-notify writes into the demo repository through a Kopia client config.
    let cli = Cli::demo(&desktop, &binaries.cli, &data_dir);
    let error_title = "Disk sdb is failing";
    let error_id = cli.send(&[
        "--severity",
        "error",
        "--title",
        error_title,
        "--message",
        "SMART reports 12 reallocated sectors.",
    ]);
    let error_popup = wait_for("the error's popup", SOON, || monitor.find(error_title));
    assert_eq!(
        error_popup.urgency,
        Some(2),
        "errors are critical: {error_popup:?}"
    );
    assert_eq!(
        error_popup.timeout, 0,
        "errors never expire: {error_popup:?}"
    );
    assert!(
        error_popup.body.starts_with("SMART reports"),
        "popup body: {error_popup:?}"
    );
    assert!(
        error_popup.has_action("default") && error_popup.has_action("acknowledge"),
        "{error_popup:?}"
    );
    wait_status(&desktop, &menu, "3 errors, 2 warnings, 2 notices");

    let warning_title = "Snapshot of /etc took 3 h";
    let warning_id = cli.send(&["--severity", "warning", "--title", warning_title]);
    let warning_popup = wait_for("the warning's popup", SOON, || monitor.find(warning_title));
    assert_eq!(
        warning_popup.urgency,
        Some(1),
        "warnings are normal urgency: {warning_popup:?}"
    );
    wait_status(&desktop, &menu, "3 errors, 3 warnings, 2 notices");

    // Acknowledged elsewhere (here by kopia-notify): its open popup is withdrawn.
    cli.checked(cli.command().args(["ack", &warning_id]));
    wait_popup_closed(
        &monitor,
        warning_popup.id,
        "the popup acknowledged by the CLI closed",
    );
    wait_status(&desktop, &menu, "3 errors, 2 warnings, 2 notices");
    assert!(
        !monitor.was_closed(error_popup.id),
        "the error's popup stays open"
    );

    // A failing `kopia snapshot create` run through kopia-notify becomes an error popup; the
    // Acknowledge button is tried on it below (on a plain warning when kopia is missing).
    let ack_target = if let Some(kopia) = &kopia {
        let missing = desktop.root().join("no-such-directory");
        let out = cli.run(
            &["run", "--"],
            &[
                kopia.path().as_os_str(),
                "snapshot".as_ref(),
                "create".as_ref(),
                missing.as_os_str(),
            ],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success()
                && stderr.contains("no-such-directory")
                && !stderr.contains("panic"),
            "kopia snapshot create fails on the missing path: {}\n{stderr}",
            out.status
        );
        let title = format!("Snapshot failed on {}", os_host());
        let popup = wait_for("the failed snapshot's popup", SOON, || monitor.find(&title));
        assert_eq!(popup.urgency, Some(2), "{popup:?}");
        wait_status(&desktop, &menu, "4 errors, 2 warnings, 2 notices");
        let id = cli
            .pending()
            .into_iter()
            .find(|n| n["title"] == title.as_str())
            .and_then(|n| n["id"].as_str().map(str::to_owned))
            .unwrap_or_else(|| panic!("kopia-notify list shows {title:?}"));
        (popup, id)
    } else {
        let title = "Maintenance has not run for 9 days";
        let id = cli.send(&["--severity", "warning", "--title", title]);
        let popup = wait_for("the second warning's popup", SOON, || monitor.find(title));
        wait_status(&desktop, &menu, "3 errors, 3 warnings, 2 notices");
        (popup, id)
    };

    // Clicking the error's popup opens the window on that notification.
    assert!(
        visible_windows(&desktop).is_empty(),
        "no window before the click"
    );
    watcher.invoke_popup_action(error_popup.id, "default");
    let webdriver = WebDriver::connect(driver_port, STARTUP);
    wait_for(
        "the window's detail view of the clicked notification",
        SOON,
        || {
            let title = webdriver.text("#detail-title")?;
            let id = webdriver.attribute("#detail", "data-id")?;
            if title == error_title && id == error_id {
                Ok(())
            } else {
                Err(format!(
                    "detail of {id:?} titled {title:?} at {:?}",
                    webdriver.url()
                ))
            }
        },
    );
    assert_eq!(visible_windows(&desktop).len(), 1, "one window");
    webdriver.end();

    // The Acknowledge button of another popup acknowledges it without opening anything:
    // kopia-notify no longer lists it, the popup is withdrawn and the tray count drops.
    let (popup, id) = ack_target;
    watcher.invoke_popup_action(popup.id, "acknowledge");
    wait_for(
        "kopia-notify list without the acknowledged notification",
        SOON,
        || {
            let pending = cli.pending();
            if pending.iter().any(|n| n["id"] == id.as_str()) {
                Err(format!("{id} still pending"))
            } else if !pending.iter().any(|n| n["id"] == error_id.as_str()) {
                Err(format!("{error_id} was acknowledged too"))
            } else {
                Ok(())
            }
        },
    );
    wait_status(&desktop, &menu, "3 errors, 2 warnings, 2 notices");
    wait_popup_closed(&monitor, popup.id, "the acknowledged popup closed");

    // A second launch hands over to the first: it exits at once and the window comes back.
    let window = visible_windows(&desktop)[0].clone();
    desktop.output(
        desktop
            .command("xdotool")
            .args(["windowunmap", "--sync", &window]),
        SOON,
    );
    assert!(visible_windows(&desktop).is_empty(), "the window is hidden");
    let launched = Instant::now();
    let mut second = desktop.command(&binaries.app);
    second.arg("--data-dir").arg(&data_dir);
    let out = desktop.output(&mut second, Duration::from_secs(15));
    let second_took = launched.elapsed();
    assert!(
        out.status.success() && second_took < Duration::from_secs(5),
        "second launch: {} after {second_took:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("the window shown by the second launch", SOON, || {
        let windows = visible_windows(&desktop);
        if windows.is_empty() {
            Err("no visible window".into())
        } else {
            Ok(())
        }
    });
    assert!(desktop.is_running("app"), "the first instance still runs");

    // Closing the window (a window manager's close button) destroys the webview: no WebKit
    // process is left while the app sits in the tray, and the tray opens a fresh window.
    let webkit_processes = || -> Vec<(u32, String)> {
        descendants(app_pid)
            .into_iter()
            .filter(|(_, name)| name.starts_with("WebKit"))
            .collect()
    };
    assert!(
        !webkit_processes().is_empty(),
        "an open window runs WebKit processes: {:?}",
        descendants(app_pid)
    );
    request_close(desktop.display(), &visible_windows(&desktop)[0]);
    // On a loaded machine the first request can reach the window before it handles them; a
    // window manager's close button is pressed again too.
    let mut asked = std::time::Instant::now();
    wait_for("the window and its WebKit processes gone", SOON, || {
        let (windows, webkit) = (visible_windows(&desktop), webkit_processes());
        if windows.is_empty() && webkit.is_empty() {
            return Ok(());
        }
        if !windows.is_empty() && asked.elapsed() > Duration::from_secs(5) {
            request_close(desktop.display(), &windows[0]);
            asked = std::time::Instant::now();
        }
        Err(format!("windows {windows:?}, WebKit processes {webkit:?}"))
    });
    assert!(
        desktop.is_running("app"),
        "closing the window keeps the app"
    );
    wait_status(&desktop, &menu, "3 errors, 2 warnings, 2 notices");
    menu.click(&desktop, "Open Kopia Notifier");
    wait_for("a new window opened from the tray", SOON, || {
        if visible_windows(&desktop).len() == 1 && !webkit_processes().is_empty() {
            Ok(())
        } else {
            Err(format!("windows {:?}", visible_windows(&desktop)))
        }
    });
    let webdriver = WebDriver::connect(driver_port, STARTUP);
    let row = format!("[data-testid=notification-row][data-id='{error_id}']");
    wait_for(
        "the new window's list of pending notifications",
        SOON,
        || {
            webdriver.switch_to_newest_window()?;
            webdriver.attribute(&row, "data-id").map(|_| ())
        },
    );
    webdriver.end();

    // dunst recorded the popups (its history lists closed ones).
    desktop.output(desktop.command("dunstctl").arg("close-all"), SOON);
    let history = wait_for("dunst's history of our popups", SOON, || {
        let out = desktop.output(desktop.command("dunstctl").arg("history"), SOON);
        let json: Value =
            serde_json::from_slice(&out.stdout).map_err(|e| format!("dunstctl history: {e}"))?;
        let summaries: Vec<String> = json["data"][0]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|n| n["summary"]["data"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        if [error_title, warning_title]
            .iter()
            .all(|t| summaries.iter().any(|s| s == t))
        {
            Ok(json)
        } else {
            Err(format!("{summaries:?}"))
        }
    });
    for popup in history["data"][0].as_array().into_iter().flatten() {
        assert_eq!(popup["appname"]["data"], APP_TITLE, "{popup}");
    }

    // Quit from the tray ends the app.
    menu.click(&desktop, "Quit");
    let status = desktop.wait_exit("app", SOON);
    assert!(status.success(), "the app quit with {status}");
    eprintln!(
        "desktop test: scenario took {:?}; second launch exited after {second_took:?}",
        started.elapsed()
    );
}

/// A Kopia user whose repository is in an S3 bucket installs the app and sets nothing up: on
/// its first run the app finds the connection Kopia made (`~/.config/kopia/repository.config`
/// and the password Kopia kept next to it), a notification sent to the bucket pops up, and the
/// popup's Acknowledge button writes the acknowledgement into the bucket.
#[test]
fn a_notification_sent_to_a_kopia_repository_in_an_s3_bucket_pops_up() {
    if !require_desktop_tools() {
        return;
    }
    let (Some(kopia), Some(moto)) = (kopia_fixtures::require_kopia(), require_moto()) else {
        return;
    };
    let binaries = build_binaries();
    let mut desktop = Desktop::start();
    desktop.start_dunst();
    let watcher = TrayWatcher::start(desktop.bus_address());
    let monitor = PopupMonitor::start(desktop.bus_address());

    // Kopia connects as its users do: its default config, its password file, its cache.
    let bucket = "kopia-notifier-desktop";
    moto.create_bucket(bucket);
    let kopia_command = |args: &[String]| {
        let mut command = desktop.command(kopia.path());
        command
            .env("KOPIA_CHECK_FOR_UPDATES", "false")
            .env("KOPIA_LOG_DIR", desktop.root().join("kopia-logs"))
            .args(args);
        command
    };
    let mut create = kopia_command(&[
        "repository".into(),
        "create".into(),
        "s3".into(),
        format!("--bucket={bucket}"),
        "--prefix=laptop/".into(),
        format!("--endpoint={}", moto.endpoint()),
        "--disable-tls".into(),
        "--access-key=AKIAKOPIANOTIFIER".into(),
        "--secret-access-key=kopia-notifier-secret".into(),
        format!(
            "--cache-directory={}",
            desktop.root().join("kopia-cache").display()
        ),
    ]);
    create.env("KOPIA_PASSWORD", "a password only Kopia was told");
    let backed_up = desktop.root().join("documents");
    std::fs::create_dir_all(&backed_up).expect("create the backed-up directory");
    std::fs::write(backed_up.join("letter.txt"), "Dear Kopia").expect("write a file");
    let mut snapshot = kopia_command(&[
        "snapshot".into(),
        "create".into(),
        backed_up.display().to_string(),
    ]);
    for command in [&mut create, &mut snapshot] {
        let out = desktop.output(command, STARTUP);
        assert!(
            out.status.success(),
            "{command:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let kopia_config = desktop.home().join(".config/kopia/repository.config");
    assert!(
        kopia_config.is_file()
            && kopia_config
                .with_extension("config.kopia-password")
                .is_file(),
        "Kopia keeps its connection in {} and the password next to it",
        kopia_config.display()
    );

    let mut app = desktop.command(&binaries.app);
    app.args(["--hidden", "--data-dir"])
        .arg(desktop.root().join("data"))
        .env("RUST_LOG", "info,kopia_notifier=debug");
    desktop.spawn("app", app);
    let item = wait_for("the app's StatusNotifierItem", STARTUP, || {
        watcher
            .items()
            .first()
            .cloned()
            .ok_or_else(|| "nothing registered".into())
    });
    let menu = TrayMenu::of(&desktop, &item);
    wait_status(&desktop, &menu, "All clear");

    let cli = Cli::connected(&desktop, &binaries.cli, kopia_config);
    let title = "Backup of /home/laptop failed";
    let id = cli.send(&[
        "--severity",
        "error",
        "--title",
        title,
        "--message",
        "The disk holding /home/laptop is read-only.",
    ]);
    // Network repositories are polled every 15 minutes by default (a LIST costs money on
    // object stores); "Check now" checks at once.
    menu.click(&desktop, "Check now");
    let popup = wait_for("the S3 repository's popup", STARTUP, || monitor.find(title));
    assert_eq!(popup.urgency, Some(2), "errors are critical: {popup:?}");
    assert!(popup.has_action("acknowledge"), "{popup:?}");
    wait_status(&desktop, &menu, "1 error");

    watcher.invoke_popup_action(popup.id, "acknowledge");
    wait_for("the acknowledgement in the bucket", STARTUP, || {
        if cli.pending().iter().any(|n| n["id"] == id.as_str()) {
            Err(format!("{id} still pending"))
        } else {
            Ok(())
        }
    });
    wait_status(&desktop, &menu, "All clear");
    wait_popup_closed(&monitor, popup.id, "the acknowledged popup closed");

    menu.click(&desktop, "Quit");
    let status = desktop.wait_exit("app", SOON);
    assert!(status.success(), "the app quit with {status}");
}

fn wait_popup_closed(monitor: &PopupMonitor, id: u32, what: &str) {
    wait_for(what, SOON, || {
        monitor
            .was_closed(id)
            .then_some(())
            .ok_or_else(|| "still open".into())
    });
}

fn wait_status(desktop: &Desktop, menu: &TrayMenu, expected: &str) {
    wait_for(&format!("tray status {expected:?}"), STARTUP, || {
        let line = menu.status_line(desktop)?;
        if line == expected {
            Ok(())
        } else {
            Err(line)
        }
    });
}

fn checkbox(desktop: &Desktop, menu: &TrayMenu, state: i64) -> Result<(), String> {
    let layout = menu.layout(desktop)?;
    let entry = layout.find("Launch at login").ok_or("no Launch at login")?;
    if entry.toggle_state == Some(state) {
        Ok(())
    } else {
        Err(format!("toggle-state {:?}", entry.toggle_state))
    }
}

/// The contents of the one `.desktop` file in the autostart directory.
fn autostart_entry(dir: &Path) -> Result<String, String> {
    let entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "desktop"))
        .collect();
    match entries.as_slice() {
        [one] => std::fs::read_to_string(one).map_err(|e| e.to_string()),
        other => Err(format!("desktop files: {other:?}")),
    }
}

/// X window ids of the app's visible windows.
fn visible_windows(desktop: &Desktop) -> Vec<String> {
    let out = desktop.output(
        desktop.command("xdotool").args([
            "search",
            "--onlyvisible",
            "--name",
            &format!("^{APP_TITLE}$"),
        ]),
        SOON,
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// The host name as Kopia and the app default it: lower-case, up to the first dot.
fn os_host() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    raw.trim()
        .split('.')
        .next()
        .unwrap_or_default()
        .to_lowercase()
}

/// The user name the app acknowledges as (from the password database, like Kopia).
fn os_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `kopia-notify` (and `kopia`) on one repository, as the app's own identity.
struct Cli<'a> {
    desktop: &'a Desktop,
    bin: &'a Path,
    config: std::path::PathBuf,
    /// `KOPIA_PASSWORD`, unless Kopia's password file next to the config holds it.
    password: Option<&'static str>,
}

impl<'a> Cli<'a> {
    /// On the app's demo repository, through a Kopia client config written for it.
    fn demo(desktop: &'a Desktop, bin: &'a Path, data_dir: &Path) -> Cli<'a> {
        let config = desktop.root().join("kopia/repository.config");
        std::fs::create_dir_all(config.parent().expect("a parent")).expect("create config dir");
        let json = serde_json::json!({
            "storage": {"type": "filesystem", "config": {"path": data_dir.join("demo-repository")}},
            // Kopia's own defaults; without cache sizes Kopia v0.23.1 crashes reading contents.
            "caching": {
                "cacheDirectory": desktop.root().join("kopia/cache"),
                "maxCacheSize": 5_242_880_000_u64,
                "maxMetadataCacheSize": 5_242_880_000_u64,
            },
            "hostname": os_host(),
            "username": os_user(),
            "description": "Demo",
        });
        std::fs::write(&config, json.to_string()).expect("write the Kopia client config");
        Cli {
            desktop,
            bin,
            config,
            password: Some("kopia-notifier-demo"),
        }
    }

    /// On the repository Kopia connected with `config`, with the password Kopia kept.
    fn connected(desktop: &'a Desktop, bin: &'a Path, config: std::path::PathBuf) -> Cli<'a> {
        Cli {
            desktop,
            bin,
            config,
            password: None,
        }
    }

    fn command(&self) -> Command {
        let mut command = self.desktop.command(self.bin);
        command
            .env("KOPIA_CONFIG_PATH", &self.config)
            .env("KOPIA_CHECK_FOR_UPDATES", "false")
            .env("KOPIA_LOG_DIR", self.desktop.root().join("kopia/logs"))
            .args(["--notifications", "hidden"]);
        if let Some(password) = self.password {
            command.env("KOPIA_PASSWORD", password);
        }
        command
    }

    fn checked(&self, command: &mut Command) -> String {
        let out = self.desktop.output(command, SOON);
        assert!(
            out.status.success(),
            "{command:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `send`; returns the new notification's id.
    fn send(&self, args: &[&str]) -> String {
        let id = self.checked(self.command().arg("send").args(args));
        assert!(
            !id.is_empty() && !id.contains(char::is_whitespace),
            "send printed {id:?}"
        );
        id
    }

    fn run(&self, args: &[&str], argv: &[&std::ffi::OsStr]) -> std::process::Output {
        self.desktop.output(
            self.command().args(args).args(argv),
            Duration::from_secs(60),
        )
    }

    /// `list --json`: the pending notifications.
    fn pending(&self) -> Vec<Value> {
        let out = self.checked(self.command().args(["list", "--json"]));
        serde_json::from_str::<Value>(&out)
            .unwrap_or_else(|e| panic!("list --json printed {out:?}: {e}"))
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}
