//! The review window: created when opened, destroyed when closed, so no WebKit process runs
//! while the app sits in the tray.

use kopia_notifier_engine::RepoId;
use serde::Serialize;
use tauri::{AppHandle, Emitter, Manager, WebviewUrl, WebviewWindowBuilder};

pub const LABEL: &str = "main";

/// What the window should show when opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    List,
    Settings,
    Notification { repo: RepoId, id: String },
}

#[derive(Serialize, Clone)]
struct ShowNotification<'a> {
    repo: RepoId,
    id: &'a str,
}

/// The page URL for a target; the window reads the fragment at start.
pub fn url(target: &Target) -> String {
    match target {
        Target::List => "index.html".to_string(),
        Target::Settings => "index.html#/settings".to_string(),
        Target::Notification { repo, id } => {
            let id: String = id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect();
            format!("index.html#/n/{repo}/{id}")
        }
    }
}

/// Shows and focuses the window, creating it if needed, on `target` if given.
pub fn open(app: &AppHandle, target: Option<Target>) {
    if let Some(window) = app.get_webview_window(LABEL) {
        let _ = window.show();
        let _ = window.unminimize();
        let _ = window.set_focus();
        let result = match &target {
            Some(Target::Notification { repo, id }) => {
                window.emit("show-notification", ShowNotification { repo: *repo, id })
            }
            Some(Target::Settings) => window.emit("show-view", "settings"),
            Some(Target::List) => window.emit("show-view", "list"),
            None => Ok(()),
        };
        if let Err(error) = result {
            tracing::warn!("telling the window what to show: {error}");
        }
        return;
    }
    let url = url(&target.unwrap_or(Target::List));
    let built = WebviewWindowBuilder::new(app, LABEL, WebviewUrl::App(url.into()))
        .title("Kopia Notifier")
        .inner_size(920.0, 640.0)
        .min_inner_size(520.0, 380.0)
        .focused(true)
        .build();
    match built {
        Ok(window) => render_in_software(&window),
        Err(error) => tracing::error!("opening the window failed: {error}"),
    }
}

/// A list of notifications needs no GPU compositing, and without it WebKit's web process
/// loads no GL stack: about 80 MB less while the window is open.
#[cfg(target_os = "linux")]
fn render_in_software(window: &tauri::WebviewWindow) {
    let applied = window.with_webview(|webview| {
        use webkit2gtk::{HardwareAccelerationPolicy, SettingsExt, WebViewExt};
        if let Some(settings) = WebViewExt::settings(&webview.inner()) {
            settings.set_hardware_acceleration_policy(HardwareAccelerationPolicy::Never);
        }
    });
    if let Err(error) = applied {
        tracing::warn!("setting software rendering: {error}");
    }
}

#[cfg(not(target_os = "linux"))]
fn render_in_software(_window: &tauri::WebviewWindow) {}

/// Once the window is destroyed its web process ends by itself, but WebKitGTK keeps the network
/// process for the lifetime of the web context, which Tauri keeps for the lifetime of the app
/// (tauri#14626): end it, so that nothing of WebKit runs while the app sits in the tray. WebKit
/// starts a new one when a window opens again.
#[cfg(target_os = "linux")]
pub fn release_webkit() {
    use rustix::process::{getpid, kill_process, Pid, Signal};
    let own = getpid().as_raw_nonzero().get();
    // Under WebKit's bubblewrap sandbox the process is a grandchild: look at all descendants.
    let processes = processes();
    let mut parents = vec![own];
    while let Some(parent) = parents.pop() {
        for (pid, name) in processes
            .iter()
            .filter(|p| p.1 == parent)
            .map(|p| (p.0, &p.2))
        {
            parents.push(pid);
            // The kernel cuts command names to 15 bytes.
            if name != "WebKitNetworkPr" {
                continue;
            }
            let Some(pid) = Pid::from_raw(pid) else {
                continue;
            };
            match kill_process(pid, Signal::TERM) {
                Ok(()) => tracing::debug!(
                    pid = pid.as_raw_nonzero().get(),
                    "ended WebKit's network process"
                ),
                Err(error) => tracing::warn!("ending WebKit's network process: {error}"),
            }
        }
    }
}

/// `(pid, parent pid, command name)` of every process we can see.
#[cfg(target_os = "linux")]
fn processes() -> Vec<(i32, i32, String)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse().ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).ok()?;
            // `pid (comm) state ppid …`, where comm may itself hold spaces and parentheses.
            let (head, tail) = stat.rsplit_once(')')?;
            let (_, name) = head.split_once('(')?;
            let parent = tail.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, parent, name.to_string()))
        })
        .collect()
}

#[cfg(not(target_os = "linux"))]
pub fn release_webkit() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_the_target_in_the_fragment() {
        assert_eq!(url(&Target::List), "index.html");
        assert_eq!(url(&Target::Settings), "index.html#/settings");
        assert_eq!(
            url(&Target::Notification {
                repo: 3,
                id: "ab12cd".into()
            }),
            "index.html#/n/3/ab12cd"
        );
    }

    #[test]
    fn ids_cannot_break_out_of_the_fragment() {
        assert_eq!(
            url(&Target::Notification {
                repo: 1,
                id: "a/../b?x#y".into()
            }),
            "index.html#/n/1/abxy"
        );
    }
}
