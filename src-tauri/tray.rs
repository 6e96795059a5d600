//! The tray icon and its menu. On Linux (libayatana-appindicator) icon clicks and tooltips never
//! arrive, so the status and every action live in the menu; the icon shows the state.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Local, NaiveTime, TimeZone, Utc};
use kopia_notifications::{inert, Severity};
use kopia_notifier_engine::{NotificationView, Overview, RepoId, TrayIcon};
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, IsMenuItem, Menu, MenuItem, PredefinedMenuItem, Submenu};
use tauri::tray::{MouseButton, MouseButtonState, TrayIconBuilder, TrayIconEvent};
use tauri::{AppHandle, Manager, Wry};

use crate::window::{self, Target};

pub const TRAY_ID: &str = "main";
/// How many of the latest pending notifications the menu lists.
pub const LATEST_IN_MENU: usize = 5;
const MAX_LABEL_CHARS: usize = 60;

pub fn icon_png(icon: TrayIcon) -> &'static [u8] {
    match icon {
        TrayIcon::AllClear => include_bytes!("../icons/tray-all-clear.png"),
        TrayIcon::Warnings => include_bytes!("../icons/tray-warnings.png"),
        TrayIcon::Errors => include_bytes!("../icons/tray-errors.png"),
        TrayIcon::Unreachable => include_bytes!("../icons/tray-unreachable.png"),
    }
}

/// A menu entry, decided from the engine's overview (pure, so it is unit-tested).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Status(String),
    Notification {
        repo: RepoId,
        id: String,
        label: String,
    },
    Separator,
    Action(&'static str, &'static str),
    Pause {
        paused: bool,
    },
    LaunchAtLogin(bool),
}

pub mod ids {
    pub const STATUS: &str = "status";
    pub const ACK_ALL: &str = "ack-all";
    pub const OPEN: &str = "open";
    pub const SETTINGS: &str = "settings";
    pub const CHECK_NOW: &str = "check-now";
    pub const PAUSE: &str = "pause";
    pub const PAUSE_HOUR: &str = "pause-hour";
    pub const PAUSE_TOMORROW: &str = "pause-tomorrow";
    pub const RESUME: &str = "pause-resume";
    pub const LAUNCH_AT_LOGIN: &str = "launch-at-login";
    pub const QUIT: &str = "quit";
    /// Prefix of a notification entry's id: `n/<repo>/<id>`.
    pub const NOTIFICATION: &str = "n/";
}

pub fn menu_model(
    overview: &Overview,
    status_line: String,
    launch_at_login: bool,
    now: DateTime<Utc>,
) -> Vec<Entry> {
    let mut entries = vec![Entry::Status(status_line)];
    let mut pending: Vec<&NotificationView> = overview
        .notifications
        .iter()
        .filter(|n| n.is_pending() && !n.ack_pending)
        .collect();
    pending.sort_by_key(|n| std::cmp::Reverse(n.created));
    for n in pending.iter().take(LATEST_IN_MENU) {
        entries.push(Entry::Notification {
            repo: n.repo,
            id: n.id.clone(),
            label: notification_label(n),
        });
    }
    entries.push(Entry::Separator);
    if !pending.is_empty() {
        entries.push(Entry::Action(ids::ACK_ALL, "Acknowledge all"));
    }
    entries.push(Entry::Action(ids::OPEN, "Open Kopia Notifier"));
    entries.push(Entry::Action(ids::CHECK_NOW, "Check now"));
    let paused = overview.tray.paused_until.is_some_and(|until| until > now);
    entries.push(Entry::Pause { paused });
    entries.push(Entry::LaunchAtLogin(launch_at_login));
    entries.push(Entry::Action(ids::SETTINGS, "Settings…"));
    entries.push(Entry::Separator);
    entries.push(Entry::Action(ids::QUIT, "Quit"));
    entries
}

/// "✕ Snapshot of /home failed — laptop", cut to a menu's width. Menus read `&` as a mnemonic
/// marker, so it is doubled to show as itself; controls, bidi and zero-width characters from
/// the repository show as visible escapes.
pub fn notification_label(n: &NotificationView) -> String {
    let glyph = match n.severity {
        Severity::Error => "✕",
        Severity::Warning => "⚠",
        Severity::Normal => "ℹ",
    };
    let mut text = inert::line(&n.title).into_owned();
    if !n.origin_host.is_empty() {
        text.push_str(" — ");
        text.push_str(&inert::line(&n.origin_host));
    }
    if text.chars().count() > MAX_LABEL_CHARS {
        text = text
            .chars()
            .take(MAX_LABEL_CHARS - 1)
            .collect::<String>()
            .trim_end()
            .to_string()
            + "…";
    }
    format!("{glyph} {}", menu_text(&text))
}

pub fn menu_text(text: &str) -> String {
    text.replace('&', "&&")
}

/// Tomorrow at 8:00 local time: "pause until tomorrow" means until the next working morning.
pub fn tomorrow_morning(now: DateTime<Local>) -> DateTime<Utc> {
    let date = now.date_naive() + Duration::days(1);
    let morning = date.and_time(NaiveTime::from_hms_opt(8, 0, 0).unwrap_or_default());
    Local
        .from_local_datetime(&morning)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(|| now.with_timezone(&Utc) + Duration::hours(24))
}

/// Parses a notification entry's menu id back into (repo, id).
pub fn parse_notification_id(menu_id: &str) -> Option<(RepoId, String)> {
    let rest = menu_id.strip_prefix(ids::NOTIFICATION)?;
    let (repo, id) = rest.split_once('/')?;
    Some((repo.parse().ok()?, id.to_string()))
}

/// The icon currently shown, so an unchanged state does not rewrite the icon file.
#[derive(Default)]
pub struct Shown(Mutex<Option<TrayIcon>>);

pub fn create(app: &AppHandle) -> tauri::Result<()> {
    app.manage(Shown::default());
    let starting = [
        Entry::Status("Starting…".into()),
        Entry::Separator,
        Entry::Action(ids::OPEN, "Open Kopia Notifier"),
        Entry::Action(ids::QUIT, "Quit"),
    ];
    TrayIconBuilder::with_id(TRAY_ID)
        .icon(Image::from_bytes(icon_png(TrayIcon::AllClear))?)
        .tooltip("Kopia Notifier")
        .menu(&build_menu(app, &starting)?)
        .show_menu_on_left_click(false)
        .on_menu_event(|app, event| crate::on_menu(app, event.id().as_ref()))
        .on_tray_icon_event(|tray, event| {
            if let TrayIconEvent::Click {
                button: MouseButton::Left,
                button_state: MouseButtonState::Up,
                ..
            } = event
            {
                window::open(tray.app_handle(), Some(Target::List));
            }
        })
        .build(app)?;
    Ok(())
}

/// The engine could not start: the tray says why and offers Quit.
pub fn show_failure(app: &AppHandle, error: &str) {
    let line: String = format!("Cannot start: {error}")
        .chars()
        .take(MAX_LABEL_CHARS * 2)
        .collect();
    let entries = [
        Entry::Status(line.clone()),
        Entry::Separator,
        Entry::Action(ids::QUIT, "Quit"),
    ];
    if let Err(error) = update(app, TrayIcon::Unreachable, &line, &entries) {
        tracing::warn!("updating the tray: {error}");
    }
}

/// Shows a new state: icon (when it changed), tooltip and the whole menu.
pub fn update(
    app: &AppHandle,
    icon: TrayIcon,
    status_line: &str,
    entries: &[Entry],
) -> tauri::Result<()> {
    let Some(tray) = app.tray_by_id(TRAY_ID) else {
        return Ok(());
    };
    let shown = app.state::<Shown>();
    let mut current = shown.0.lock().unwrap_or_else(|p| p.into_inner());
    if *current != Some(icon) {
        tray.set_icon(Some(Image::from_bytes(icon_png(icon))?))?;
        *current = Some(icon);
    }
    tray.set_tooltip(Some(format!("Kopia Notifier: {status_line}")))?;
    tray.set_menu(Some(build_menu(app, entries)?))?;
    Ok(())
}

fn build_menu(app: &AppHandle, entries: &[Entry]) -> tauri::Result<Menu<Wry>> {
    let menu = Menu::new(app)?;
    for entry in entries {
        let item: Box<dyn IsMenuItem<Wry>> = match entry {
            Entry::Status(line) => Box::new(MenuItem::with_id(
                app,
                ids::STATUS,
                menu_text(line),
                false,
                None::<&str>,
            )?),
            Entry::Notification { repo, id, label } => Box::new(MenuItem::with_id(
                app,
                format!("{}{repo}/{id}", ids::NOTIFICATION),
                label,
                true,
                None::<&str>,
            )?),
            Entry::Separator => Box::new(PredefinedMenuItem::separator(app)?),
            Entry::Action(id, label) => {
                Box::new(MenuItem::with_id(app, *id, *label, true, None::<&str>)?)
            }
            Entry::Pause { paused } => Box::new(Submenu::with_id_and_items(
                app,
                ids::PAUSE,
                if *paused {
                    "Popups paused"
                } else {
                    "Pause popups"
                },
                true,
                &[
                    &MenuItem::with_id(app, ids::PAUSE_HOUR, "For 1 hour", true, None::<&str>)?,
                    &MenuItem::with_id(
                        app,
                        ids::PAUSE_TOMORROW,
                        "Until tomorrow (8:00)",
                        true,
                        None::<&str>,
                    )?,
                    &MenuItem::with_id(app, ids::RESUME, "Resume", *paused, None::<&str>)?,
                ],
            )?),
            Entry::LaunchAtLogin(checked) => Box::new(CheckMenuItem::with_id(
                app,
                ids::LAUNCH_AT_LOGIN,
                "Launch at login",
                true,
                *checked,
                None::<&str>,
            )?),
        };
        menu.append(item.as_ref())?;
    }
    Ok(menu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kopia_notifier_engine::TrayState;

    fn item(id: &str, severity: Severity, minute: u32) -> NotificationView {
        NotificationView {
            repo: 1,
            repo_name: "nas".into(),
            id: id.into(),
            severity,
            kind: kopia_notifications::SourceKind::Custom,
            snapshot_source: None,
            title: format!("Title {id}"),
            message: String::new(),
            details: String::new(),
            link: None,
            origin_host: "laptop".into(),
            created: Utc.with_ymd_and_hms(2025, 1, 10, 10, minute, 0).unwrap(),
            acknowledged_at: None,
            ack_pending: false,
            resolved: None,
        }
    }

    fn overview(notifications: Vec<NotificationView>, tray: TrayState) -> Overview {
        Overview {
            tray,
            repositories: vec![],
            notifications,
            onboarding: false,
        }
    }

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 1, 10, 12, 0, 0).unwrap()
    }

    #[test]
    fn menu_lists_status_latest_pending_and_all_actions() {
        let mut acked = item("acked", Severity::Error, 59);
        acked.acknowledged_at = Some(now());
        let mut notifications: Vec<_> = (0..7)
            .map(|i| item(&format!("n{i}"), Severity::Warning, i))
            .collect();
        notifications.push(acked);
        // Resolved by itself: history, not in the menu.
        let mut resolved = item("resolved", Severity::Error, 58);
        resolved.resolved = Some(kopia_notifier_engine::ResolvedView {
            at: now(),
            reason: "a newer snapshot succeeded".into(),
        });
        notifications.push(resolved);
        let entries = menu_model(
            &overview(notifications, TrayState::default()),
            "7 warnings".into(),
            true,
            now(),
        );
        assert_eq!(entries[0], Entry::Status("7 warnings".into()));
        let listed: Vec<&str> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Notification { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(listed, ["n6", "n5", "n4", "n3", "n2"]);
        for action in [ids::ACK_ALL, ids::OPEN, ids::CHECK_NOW, ids::QUIT] {
            assert!(
                entries
                    .iter()
                    .any(|e| matches!(e, Entry::Action(id, _) if *id == action)),
                "{action}"
            );
        }
        assert!(entries.contains(&Entry::LaunchAtLogin(true)));
        assert!(entries.contains(&Entry::Pause { paused: false }));
    }

    #[test]
    fn nothing_pending_has_no_acknowledge_all_and_shows_a_pause() {
        let tray = TrayState {
            paused_until: Some(now() + Duration::minutes(30)),
            ..TrayState::default()
        };
        let entries = menu_model(&overview(vec![], tray), "All clear".into(), false, now());
        assert!(!entries
            .iter()
            .any(|e| matches!(e, Entry::Action(id, _) if *id == ids::ACK_ALL)));
        assert!(entries.contains(&Entry::Pause { paused: true }));
        let expired = TrayState {
            paused_until: Some(now() - Duration::minutes(1)),
            ..TrayState::default()
        };
        assert!(
            menu_model(&overview(vec![], expired), String::new(), false, now())
                .contains(&Entry::Pause { paused: false })
        );
    }

    #[test]
    fn labels_carry_a_glyph_host_and_literal_ampersands() {
        let mut n = item("a", Severity::Error, 0);
        n.title = "Backup & restore".into();
        assert_eq!(notification_label(&n), "✕ Backup && restore — laptop");
        let mut hostile = n.clone();
        hostile.title = "pay\u{202e}fdp.exe".into();
        assert_eq!(
            notification_label(&hostile),
            "✕ pay\\u{202e}fdp.exe — laptop"
        );
        n.title = "x".repeat(100);
        assert_eq!(notification_label(&n).chars().count(), 2 + MAX_LABEL_CHARS);
    }

    #[test]
    fn notification_menu_ids_round_trip() {
        assert_eq!(
            parse_notification_id("n/12/abc"),
            Some((12, "abc".to_string()))
        );
        assert_eq!(parse_notification_id("quit"), None);
        assert_eq!(parse_notification_id("n/x/abc"), None);
    }

    #[test]
    fn tomorrow_morning_is_eight_the_next_day() {
        let now = Local.with_ymd_and_hms(2025, 1, 10, 23, 30, 0).unwrap();
        let until = tomorrow_morning(now).with_timezone(&Local);
        assert_eq!(until.date_naive(), now.date_naive() + Duration::days(1));
        assert_eq!(until.time(), NaiveTime::from_hms_opt(8, 0, 0).unwrap());
    }

    #[test]
    fn every_tray_icon_is_an_rgba_png() {
        for icon in [
            TrayIcon::AllClear,
            TrayIcon::Warnings,
            TrayIcon::Errors,
            TrayIcon::Unreachable,
        ] {
            let png = icon_png(icon);
            assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
            // IHDR: bit depth 8, colour type 6 (RGBA).
            assert_eq!((png[24], png[25]), (8, 6));
        }
    }
}
