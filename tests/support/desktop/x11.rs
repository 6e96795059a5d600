//! What a window manager would do to our window, for a session that has none: the close button
//! is a `WM_DELETE_WINDOW` client message (ICCCM §4.2.8.1), which GTK turns into a close request.

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ClientMessageEvent, ConnectionExt, EventMask};

/// Asks `window` (an X window id as xdotool prints it) to close, as a window manager's close
/// button does.
pub fn request_close(display: &str, window: &str) {
    let window: u32 = window
        .parse()
        .unwrap_or_else(|e| panic!("X window id {window:?}: {e}"));
    let (conn, _) = x11rb::connect(Some(display))
        .unwrap_or_else(|e| panic!("connect to X display {display}: {e}"));
    let atom = |name: &[u8]| {
        let what = String::from_utf8_lossy(name);
        conn.intern_atom(false, name)
            .unwrap_or_else(|e| panic!("intern {what}: {e}"))
            .reply()
            .unwrap_or_else(|e| panic!("intern {what}: {e}"))
            .atom
    };
    let (protocols, delete) = (atom(b"WM_PROTOCOLS"), atom(b"WM_DELETE_WINDOW"));
    let event = ClientMessageEvent::new(
        32,
        window,
        protocols,
        [delete, x11rb::CURRENT_TIME, 0, 0, 0],
    );
    conn.send_event(false, window, EventMask::NO_EVENT, event)
        .unwrap_or_else(|e| panic!("send WM_DELETE_WINDOW to window {window}: {e}"));
    conn.flush()
        .unwrap_or_else(|e| panic!("send WM_DELETE_WINDOW to window {window}: {e}"));
}
