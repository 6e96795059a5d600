//! Kopia Notifier: the tray app. Everything lives in the library (`src-tauri/lib.rs`).

// No console window on Windows release builds.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() {
    kopia_notifier::run();
}
