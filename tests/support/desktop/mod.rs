//! Support for the desktop end-to-end test (`tests/desktop.rs`): a private X server and session
//! bus with dunst, a StatusNotifierWatcher, a monitor of popups, the tray menu over D-Bus, a
//! small W3C WebDriver client and the close request a window manager would send. Not a general
//! harness: every failure panics saying what it expected.

pub mod bus;
pub mod session;
pub mod webdriver;
pub mod x11;
