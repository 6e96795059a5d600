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
    if let Err(error) = built {
        tracing::error!("opening the window failed: {error}");
    }
}

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
