//! Desktop popups for new notifications, through notify-rust (the freedesktop notification
//! service on Linux). Decides wording, urgency and grouping; the engine decides what is new.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use kopia_notifications::{inert, Severity};
use kopia_notifier_engine::{EngineHandle, NotificationView, PopupSummary, RepoId};
use notify_rust::{Notification, NotificationResponse, Timeout, Urgency};
use tauri::AppHandle;
use tokio::sync::oneshot;

use crate::window::{self, Target};

/// Popup bodies are a glance, not the whole message; the window has the rest.
const MAX_BODY_CHARS: usize = 240;

const APP_NAME: &str = "Kopia Notifier";
const ACTION_OPEN: &str = "open";
const ACTION_ACKNOWLEDGE: &str = "acknowledge";

/// Escapes the characters the notification spec's markup gives a meaning to, so a message is
/// always shown as the text it is. Only for bodies: summaries are plain text.
pub fn escape_markup(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&#39;"),
            _ => escaped.push(c),
        }
    }
    escaped
}

/// Errors stay until dismissed; never `low`, which some desktops hide.
pub fn urgency(severity: Severity) -> Urgency {
    match severity {
        Severity::Error => Urgency::Critical,
        Severity::Warning | Severity::Normal => Urgency::Normal,
    }
}

/// The first lines of a message, cut at a character boundary with an ellipsis.
pub fn short_message(message: &str) -> String {
    let text = message.trim();
    if text.chars().count() <= MAX_BODY_CHARS {
        return text.to_string();
    }
    let cut: String = text.chars().take(MAX_BODY_CHARS - 1).collect();
    format!("{}…", cut.trim_end())
}

/// One popup to show.
#[derive(Debug, Clone, PartialEq)]
pub enum Popup {
    Single(Box<NotificationView>),
    /// Stands for several new notifications (the engine's popup budget decided); clicking it
    /// opens the window's list.
    Summary(PopupSummary),
}

/// The popups of one `NewPending` event: one per item, and the summary if there is one.
pub fn plan(items: Vec<NotificationView>, summary: Option<PopupSummary>) -> Vec<Popup> {
    let mut popups: Vec<Popup> = items
        .into_iter()
        .map(|n| Popup::Single(Box::new(n)))
        .collect();
    popups.extend(summary.map(Popup::Summary));
    popups
}

/// "2 errors, 3 warnings in nas".
pub fn summary_body(summary: &PopupSummary) -> String {
    let mut parts = Vec::new();
    for (count, word) in [
        (summary.errors, "error"),
        (summary.warnings, "warning"),
        (summary.normal, "notice"),
    ] {
        if count > 0 {
            parts.push(format!(
                "{count} {word}{}",
                if count == 1 { "" } else { "s" }
            ));
        }
    }
    format!("{} in {}", parts.join(", "), summary.repository)
}

impl Popup {
    pub fn summary_title(count: usize) -> String {
        format!("{count} new Kopia notifications")
    }

    /// The popup's summary and body as the notification service takes them. The
    /// freedesktop specification makes the summary plain text (dunst, GNOME Shell and KDE
    /// Plasma show it verbatim: an escaped `&` would show as `&amp;`); only the body may
    /// carry markup, so only the body is escaped. Both are made inert first: controls, bidi
    /// and zero-width characters from the repository show as visible escapes.
    pub fn texts(&self) -> (String, String) {
        match self {
            Popup::Single(n) => {
                let mut body = short_message(&n.message);
                if !n.origin_host.is_empty() {
                    if !body.is_empty() {
                        body.push('\n');
                    }
                    body.push_str(&format!("{} · {}", n.origin_host, n.repo_name));
                }
                (
                    inert::line(&n.title).into_owned(),
                    escape_markup(&inert::text(&body)),
                )
            }
            Popup::Summary(summary) => (
                Popup::summary_title(summary.count),
                escape_markup(&inert::text(&summary_body(summary))),
            ),
        }
    }

    /// The notify-rust notification for this popup (not yet shown).
    pub fn to_notification(&self, icon: Option<&str>) -> Notification {
        let mut popup = Notification::new();
        popup.appname(APP_NAME);
        if let Some(icon) = icon {
            popup.icon(icon);
        }
        let (summary, body) = self.texts();
        popup.summary(&summary);
        popup.body(&body);
        popup.action("default", "Open");
        popup.action(ACTION_OPEN, "Open");
        let severity = match self {
            Popup::Single(n) => {
                popup.action(ACTION_ACKNOWLEDGE, "Acknowledge");
                n.severity
            }
            Popup::Summary(summary) => summary.severity(),
        };
        popup.urgency(urgency(severity));
        if severity == Severity::Error {
            popup.timeout(Timeout::Never);
        }
        popup
    }
}

type OpenPopups = Arc<Mutex<HashMap<(RepoId, String), oneshot::Sender<()>>>>;

/// Shows popups and remembers the open ones, so a notification acknowledged elsewhere
/// withdraws its popup.
#[derive(Clone)]
pub struct Popups {
    app: AppHandle,
    engine: EngineHandle,
    icon: Option<PathBuf>,
    open: OpenPopups,
}

impl Popups {
    pub fn new(app: AppHandle, engine: EngineHandle, icon: Option<PathBuf>) -> Self {
        Popups {
            app,
            engine,
            icon,
            open: Arc::default(),
        }
    }

    /// Shows the popups for new pending notifications of one repository (the engine recorded
    /// them as shown already, so they never pop up again, even if no server shows them).
    pub async fn show_new(&self, items: Vec<NotificationView>, summary: Option<PopupSummary>) {
        let icon = self
            .icon
            .as_ref()
            .and_then(|p| p.to_str())
            .map(str::to_owned);
        for popup in plan(items, summary) {
            self.show(popup, icon.as_deref()).await;
        }
    }

    /// Shows one popup and leaves a task waiting for its action.
    async fn show(&self, popup: Popup, icon: Option<&str>) {
        let key = notification_key(&popup);
        let handle = match popup.to_notification(icon).show_async().await {
            Ok(handle) => handle,
            Err(error) => {
                tracing::warn!("showing a popup failed: {error}");
                return;
            }
        };
        // Only single popups can be withdrawn; a summary stays until dismissed or clicked.
        let withdrawn = key.clone().map(|key| {
            let (withdraw, withdrawn) = oneshot::channel::<()>();
            self.lock().insert(key, withdraw);
            withdrawn
        });
        let withdrawn = async move {
            match withdrawn {
                // A dropped sender (replaced or removed entry) also means: close it.
                Some(withdrawn) => drop(withdrawn.await),
                None => std::future::pending().await,
            }
        };
        let this = self.clone();
        // Waits for a click or a button without blocking the event loop; closes the popup
        // instead when the notification is withdrawn.
        tauri::async_runtime::spawn(async move {
            let mut response = None;
            tokio::select! {
                _ = handle.wait_for_action_async(|r| response = Some(r.clone())) => {
                    // Not every server closes a popup whose action was invoked.
                    if matches!(response, Some(NotificationResponse::Default | NotificationResponse::Action(_))) {
                        handle.close_async().await;
                    }
                }
                _ = withdrawn => handle.close_async().await,
            }
            if let Some(key) = &key {
                this.lock().remove(key);
            }
            if let Some(response) = response {
                this.respond(&popup, response).await;
            }
        });
    }

    async fn respond(&self, popup: &Popup, response: NotificationResponse) {
        let action = match &response {
            NotificationResponse::Default => "default",
            NotificationResponse::Action(action) => action.as_str(),
            _ => return,
        };
        match (popup, action) {
            (Popup::Single(n), ACTION_ACKNOWLEDGE) => {
                if let Err(error) = self.engine.ack(n.repo, &n.id).await {
                    tracing::warn!("acknowledging {} from its popup: {error}", n.id);
                }
            }
            (Popup::Single(n), "default" | ACTION_OPEN) => window::open(
                &self.app,
                Some(Target::Notification {
                    repo: n.repo,
                    id: n.id.clone(),
                }),
            ),
            (Popup::Summary(_), "default" | ACTION_OPEN) => {
                window::open(&self.app, Some(Target::List))
            }
            _ => {}
        }
    }

    /// Closes the open popups of notifications that are no longer pending.
    pub fn withdraw(&self, repo: RepoId, ids: &[String]) {
        let mut open = self.lock();
        for id in ids {
            if let Some(withdraw) = open.remove(&(repo, id.clone())) {
                let _ = withdraw.send(());
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(RepoId, String), oneshot::Sender<()>>> {
        // A panic elsewhere while holding the lock leaves the map usable.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn notification_key(popup: &Popup) -> Option<(RepoId, String)> {
    match popup {
        Popup::Single(n) => Some((n.repo, n.id.clone())),
        Popup::Summary(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn item(id: &str, severity: Severity) -> NotificationView {
        NotificationView {
            repo: 1,
            repo_name: "nas".into(),
            id: id.into(),
            severity,
            kind: kopia_notifications::SourceKind::Custom,
            snapshot_source: None,
            title: format!("title {id}"),
            message: "message".into(),
            details: String::new(),
            link: None,
            origin_host: "laptop".into(),
            created: Utc.with_ymd_and_hms(2025, 1, 10, 10, 0, 0).unwrap(),
            acknowledged_at: None,
            ack_pending: false,
            resolved: None,
        }
    }

    fn summary_of(errors: usize, warnings: usize, repository: &str) -> PopupSummary {
        PopupSummary::of(
            repository,
            std::iter::repeat_n(Severity::Error, errors)
                .chain(std::iter::repeat_n(Severity::Warning, warnings)),
        )
    }

    #[test]
    fn escapes_every_markup_character() {
        assert_eq!(
            escape_markup(r#"<b>a & "b" 'c'</b>"#),
            "&lt;b&gt;a &amp; &quot;b&quot; &#39;c&#39;&lt;/b&gt;"
        );
        assert_eq!(escape_markup("plain"), "plain");
    }

    #[test]
    fn summaries_are_plain_text_and_bodies_markup_both_inert() {
        let mut n = item("a", Severity::Error);
        n.title = "A & B \u{202e}exe.pdf\u{1b}[2J".into();
        n.message = "line\n\u{200b}x & y".into();
        let (summary, body) = Popup::Single(Box::new(n)).texts();
        assert_eq!(summary, "A & B \\u{202e}exe.pdf\\x1b[2J");
        assert_eq!(body, "line\n\\u{200b}x &amp; y\nlaptop · nas");
        let (summary, body) = Popup::Summary(summary_of(4, 0, "R&D \u{202e}")).texts();
        assert_eq!(summary, "4 new Kopia notifications");
        assert_eq!(body, "4 errors in R&amp;D \\u{202e}");
    }

    #[test]
    fn urgency_is_critical_for_errors_and_never_low() {
        assert_eq!(urgency(Severity::Error), Urgency::Critical);
        assert_eq!(urgency(Severity::Warning), Urgency::Normal);
        assert_eq!(urgency(Severity::Normal), Urgency::Normal);
    }

    #[test]
    fn short_message_cuts_long_text_on_a_character_boundary() {
        assert_eq!(short_message("  short  "), "short");
        let long = "é".repeat(500);
        let cut = short_message(&long);
        assert_eq!(cut.chars().count(), MAX_BODY_CHARS);
        assert!(cut.ends_with('…'));
    }

    #[test]
    fn items_pop_one_by_one_and_a_summary_stands_for_the_rest() {
        let items = vec![
            item("a", Severity::Error),
            item("b", Severity::Warning),
            item("c", Severity::Normal),
        ];
        let popups = plan(items, None);
        assert_eq!(popups.len(), 3);
        assert!(matches!(&popups[1], Popup::Single(n) if n.id == "b"));

        let popups = plan(Vec::new(), Some(summary_of(2, 3, "nas")));
        assert_eq!(popups, vec![Popup::Summary(summary_of(2, 3, "nas"))]);
        let (title, body) = popups[0].texts();
        assert_eq!(title, "5 new Kopia notifications");
        assert_eq!(body, "2 errors, 3 warnings in nas");
        let popup = popups[0].to_notification(None);
        assert_eq!(popup.timeout, Timeout::Never);
        // A summary cannot be acknowledged from the popup: it opens the list.
        assert!(!popup.actions.iter().any(|a| a == "acknowledge"));
        let quiet = Popup::Summary(summary_of(0, 1, "nas")).to_notification(None);
        assert_eq!(quiet.timeout, Timeout::Default);
    }

    #[test]
    fn single_popup_escapes_text_and_sets_urgency_and_actions() {
        let mut n = item("a", Severity::Error);
        n.title = "<i>disk</i> & more".into();
        n.message = "A & <b>B</b>".into();
        let popup = Popup::Single(Box::new(n)).to_notification(Some("/x/icon.png"));
        // The summary is plain text: shown as written, not as entities.
        assert_eq!(popup.summary, "<i>disk</i> & more");
        assert_eq!(popup.body, "A &amp; &lt;b&gt;B&lt;/b&gt;\nlaptop · nas");
        assert_eq!(popup.icon, "/x/icon.png");
        assert!(popup
            .actions
            .windows(2)
            .any(|w| w[0] == "acknowledge" && w[1] == "Acknowledge"));
        assert!(popup.actions.iter().any(|a| a == "default"));
        assert_eq!(popup.timeout, Timeout::Never);
        assert!(popup
            .hints
            .contains(&notify_rust::Hint::Urgency(Urgency::Critical)));

        let warning = Popup::Single(Box::new(item("b", Severity::Warning))).to_notification(None);
        assert_eq!(warning.timeout, Timeout::Default);
        assert!(warning
            .hints
            .contains(&notify_rust::Hint::Urgency(Urgency::Normal)));
    }
}
