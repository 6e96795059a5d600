//! D-Bus pieces of the desktop test: a minimal `org.kde.StatusNotifierWatcher` (without one,
//! libappindicator never exports the tray), a monitor that records every popup the app asks
//! for (dunst's history has no urgency), and the tray menu over `com.canonical.dbusmenu`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use zbus::blocking::connection::Builder;
use zbus::blocking::{Connection, MessageIterator};
use zbus::message::{Header, Type};
use zbus::zvariant::OwnedValue;

use super::session::{wait_for, Desktop};

/// Who registered a tray item: its bus name and object path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrayItem {
    pub bus_name: String,
    pub path: String,
}

struct Watcher {
    items: Arc<Mutex<Vec<TrayItem>>>,
}

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    fn register_status_notifier_item(&self, service: &str, #[zbus(header)] header: Header<'_>) {
        let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
        // libappindicator passes its object path; other items pass a bus name.
        let item = if service.starts_with('/') {
            TrayItem {
                bus_name: sender,
                path: service.to_string(),
            }
        } else {
            TrayItem {
                bus_name: service.to_string(),
                path: "/StatusNotifierItem".to_string(),
            }
        };
        lock(&self.items).push(item);
    }

    fn register_status_notifier_host(&self, _service: &str) {}

    #[zbus(property)]
    fn registered_status_notifier_items(&self) -> Vec<String> {
        lock(&self.items)
            .iter()
            .map(|i| format!("{}{}", i.bus_name, i.path))
            .collect()
    }

    #[zbus(property)]
    fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    fn protocol_version(&self) -> i32 {
        0
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// The watcher, and a plain connection for the test's own calls and signals.
pub struct TrayWatcher {
    connection: Connection,
    items: Arc<Mutex<Vec<TrayItem>>>,
}

impl TrayWatcher {
    pub fn start(bus_address: &str) -> TrayWatcher {
        let items = Arc::new(Mutex::new(Vec::new()));
        let watcher = Watcher {
            items: items.clone(),
        };
        let connection = Builder::address(bus_address)
            .and_then(|b| b.name("org.kde.StatusNotifierWatcher"))
            .and_then(|b| b.serve_at("/StatusNotifierWatcher", watcher))
            .and_then(|b| b.build())
            .expect("serve org.kde.StatusNotifierWatcher on the session bus");
        TrayWatcher { connection, items }
    }

    pub fn items(&self) -> Vec<TrayItem> {
        lock(&self.items).clone()
    }

    /// Emits `ActionInvoked(id, action)` as the notification server would on a click
    /// (`default`) or a button (its action key).
    pub fn invoke_popup_action(&self, id: u32, action: &str) {
        self.connection
            .emit_signal(
                None::<&str>,
                "/org/freedesktop/Notifications",
                "org.freedesktop.Notifications",
                "ActionInvoked",
                &(id, action),
            )
            .expect("emit ActionInvoked");
    }
}

/// One `Notify` call and the id the server answered with.
#[derive(Clone, Debug)]
pub struct Popup {
    pub id: u32,
    pub app_name: String,
    pub summary: String,
    pub body: String,
    /// Alternating keys and labels, as on the wire.
    pub actions: Vec<String>,
    /// The `urgency` hint: 0 low, 1 normal, 2 critical.
    pub urgency: Option<u8>,
    pub timeout: i32,
}

impl Popup {
    pub fn has_action(&self, key: &str) -> bool {
        self.actions.chunks(2).any(|pair| pair[0] == key)
    }
}

type NotifyArgs = (
    String,
    u32,
    String,
    String,
    String,
    Vec<String>,
    HashMap<String, OwnedValue>,
    i32,
);

#[derive(Default)]
struct Seen {
    popups: Vec<Popup>,
    closed: Vec<u32>,
}

/// Records the popups asked of the notification server and the ones closed, by eavesdropping
/// on the bus as a monitor (BecomeMonitor).
pub struct PopupMonitor {
    seen: Arc<Mutex<Seen>>,
}

impl PopupMonitor {
    pub fn start(bus_address: &str) -> PopupMonitor {
        let connection = Builder::address(bus_address)
            .and_then(|b| b.build())
            .expect("connect the monitor to the session bus");
        let rules = [
            "type='method_call',interface='org.freedesktop.Notifications'",
            "type='method_return'",
            "type='signal',interface='org.freedesktop.Notifications'",
        ];
        connection
            .call_method(
                Some("org.freedesktop.DBus"),
                "/org/freedesktop/DBus",
                Some("org.freedesktop.DBus.Monitoring"),
                "BecomeMonitor",
                &(rules.as_slice(), 0u32),
            )
            .expect("become a bus monitor");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let record = seen.clone();
        // Ends when the bus goes away at the end of the test.
        std::thread::spawn(move || {
            let mut calls: HashMap<(String, u32), Popup> = HashMap::new();
            for message in MessageIterator::from(&connection) {
                let Ok(message) = message else { break };
                let header = message.header();
                let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
                match message.message_type() {
                    Type::MethodCall if header.member().is_some_and(|m| m == "Notify") => {
                        let Ok(args) = message.body().deserialize::<NotifyArgs>() else {
                            continue;
                        };
                        let (app_name, _, _, summary, body, actions, hints, timeout) = args;
                        let urgency = hints
                            .get("urgency")
                            .and_then(|v| v.downcast_ref::<u8>().ok());
                        let serial = header.primary().serial_num().get();
                        calls.insert(
                            (sender, serial),
                            Popup {
                                id: 0,
                                app_name,
                                summary,
                                body,
                                actions,
                                urgency,
                                timeout,
                            },
                        );
                    }
                    Type::MethodReturn => {
                        let destination = header
                            .destination()
                            .map(|d| d.to_string())
                            .unwrap_or_default();
                        let Some(reply_to) = header.reply_serial() else {
                            continue;
                        };
                        if let Some(mut popup) = calls.remove(&(destination, reply_to.get())) {
                            if let Ok((id,)) = message.body().deserialize::<(u32,)>() {
                                popup.id = id;
                                lock(&record).popups.push(popup);
                            }
                        }
                    }
                    Type::Signal if header.member().is_some_and(|m| m == "NotificationClosed") => {
                        if let Ok((id, _reason)) = message.body().deserialize::<(u32, u32)>() {
                            lock(&record).closed.push(id);
                        }
                    }
                    _ => {}
                }
            }
        });
        PopupMonitor { seen }
    }

    pub fn popups(&self) -> Vec<Popup> {
        lock(&self.seen).popups.clone()
    }

    /// The newest popup whose summary is `summary`.
    pub fn find(&self, summary: &str) -> Result<Popup, String> {
        let popups = self.popups();
        popups
            .iter()
            .rev()
            .find(|p| p.summary == summary)
            .cloned()
            .ok_or_else(|| {
                format!(
                    "popups so far: {:?}",
                    popups.iter().map(|p| &p.summary).collect::<Vec<_>>()
                )
            })
    }

    pub fn was_closed(&self, id: u32) -> bool {
        lock(&self.seen).closed.contains(&id)
    }
}

/// One entry of the tray menu (dbusmenu layout).
#[derive(Clone, Debug)]
pub struct MenuEntry {
    pub id: i32,
    pub label: String,
    pub enabled: bool,
    /// `toggle-state` of a checkbox: 1 checked, 0 not.
    pub toggle_state: Option<i64>,
    pub children: Vec<MenuEntry>,
}

impl MenuEntry {
    /// This entry and all below it, depth first.
    pub fn flatten(&self) -> Vec<&MenuEntry> {
        let mut all = vec![self];
        for child in &self.children {
            all.extend(child.flatten());
        }
        all
    }

    pub fn find(&self, label: &str) -> Option<&MenuEntry> {
        self.flatten().into_iter().find(|e| e.label == label)
    }

    fn from_json(node: &Value) -> Option<MenuEntry> {
        // busctl prints a nested variant as {"type": "(ia{sv}av)", "data": [...]}.
        let node = node.get("data").unwrap_or(node);
        let id = node.get(0)?.as_i64()? as i32;
        let props = node.get(1)?;
        let prop = |name: &str| props.get(name).and_then(|p| p.get("data"));
        Some(MenuEntry {
            id,
            label: prop("label")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            enabled: prop("enabled").and_then(Value::as_bool).unwrap_or(true),
            toggle_state: prop("toggle-state").and_then(Value::as_i64),
            children: node
                .get(2)?
                .as_array()?
                .iter()
                .filter_map(MenuEntry::from_json)
                .collect(),
        })
    }
}

/// The tray item's menu, read and clicked through `busctl` as any tray host would.
pub struct TrayMenu {
    bus_name: String,
    menu_path: String,
}

impl TrayMenu {
    pub fn of(desktop: &Desktop, item: &TrayItem) -> TrayMenu {
        let menu = busctl_json(
            desktop,
            &[
                "get-property",
                &item.bus_name,
                &item.path,
                "org.kde.StatusNotifierItem",
                "Menu",
            ],
        )
        .expect("read the tray item's Menu property");
        TrayMenu {
            bus_name: item.bus_name.clone(),
            menu_path: menu["data"]
                .as_str()
                .expect("Menu is an object path")
                .to_string(),
        }
    }

    pub fn layout(&self, desktop: &Desktop) -> Result<MenuEntry, String> {
        let layout = busctl_json(
            desktop,
            &[
                "call",
                &self.bus_name,
                &self.menu_path,
                "com.canonical.dbusmenu",
                "GetLayout",
                "iias",
                "--",
                "0",
                "-1",
                "0",
            ],
        )?;
        // (u revision, (ia{sv}av) root)
        MenuEntry::from_json(&layout["data"][1])
            .ok_or_else(|| format!("unexpected layout {layout}"))
    }

    /// The first line of the menu: the status ("2 errors, 1 warning").
    pub fn status_line(&self, desktop: &Desktop) -> Result<String, String> {
        let layout = self.layout(desktop)?;
        layout
            .children
            .first()
            .map(|e| e.label.clone())
            .ok_or_else(|| "an empty menu".to_string())
    }

    /// Clicks the entry with this label. Ids change whenever the app rebuilds the menu, so the
    /// id is looked up each time, and a click on an id that just went away is retried.
    pub fn click(&self, desktop: &Desktop, label: &str) {
        wait_for(
            &format!("a click on {label:?} in the tray menu"),
            Duration::from_secs(10),
            || {
                let layout = self.layout(desktop)?;
                let entry = layout
                    .find(label)
                    .ok_or_else(|| format!("no {label:?} in {layout:#?}"))?;
                let id = entry.id.to_string();
                busctl_json(
                    desktop,
                    &[
                        "call",
                        &self.bus_name,
                        &self.menu_path,
                        "com.canonical.dbusmenu",
                        "Event",
                        "isvu",
                        "--",
                        &id,
                        "clicked",
                        "s",
                        "",
                        "0",
                    ],
                )
                .map(drop)
            },
        );
    }
}

/// Reads a StatusNotifierItem property as JSON (`{"type": …, "data": …}`).
pub fn item_property(desktop: &Desktop, item: &TrayItem, name: &str) -> Result<Value, String> {
    busctl_json(
        desktop,
        &[
            "get-property",
            &item.bus_name,
            &item.path,
            "org.kde.StatusNotifierItem",
            name,
        ],
    )
}

fn busctl_json(desktop: &Desktop, args: &[&str]) -> Result<Value, String> {
    let out = desktop.output(
        desktop
            .command("busctl")
            .args(["--user", "--json=short"])
            .args(args),
        Duration::from_secs(10),
    );
    if !out.status.success() {
        return Err(format!(
            "busctl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("busctl printed no JSON: {e}"))
}
