//! Builds the window (ui/ → ui/dist) before Tauri embeds it, so a plain `cargo build` works from
//! a clean clone, then lets tauri-build generate the context with only the app's own commands
//! allowed.

use std::path::Path;
use std::process::Command;

/// The Tauri commands the window may call; `capabilities/main.json` grants exactly these.
const COMMANDS: &[&str] = &[
    "overview",
    "notification",
    "ack",
    "ack_all",
    "check_now",
    "settings",
    "update_settings",
    "add_repository",
    "remove_repository",
    "open_link",
];

fn main() {
    build_ui();
    let attributes = tauri_build::Attributes::new()
        .app_manifest(tauri_build::AppManifest::new().commands(COMMANDS));
    if let Err(error) = tauri_build::try_build(attributes) {
        panic!("tauri-build failed: {error:#}");
    }
}

fn build_ui() {
    let ui = Path::new("ui");
    for input in [
        "ui/src",
        "ui/index.html",
        "ui/package.json",
        "ui/package-lock.json",
        "ui/vite.config.ts",
        "ui/tsconfig.json",
    ] {
        println!("cargo:rerun-if-changed={input}");
    }
    // Lets packagers who build ui/dist themselves skip npm.
    println!("cargo:rerun-if-env-changed=KOPIA_NOTIFIER_SKIP_UI_BUILD");
    if std::env::var_os("KOPIA_NOTIFIER_SKIP_UI_BUILD").is_some() {
        return;
    }
    if !ui.join("node_modules").is_dir() {
        npm(ui, &["ci", "--no-audit", "--no-fund"]);
    }
    npm(ui, &["run", "build"]);
}

fn npm(dir: &Path, args: &[&str]) {
    let status = Command::new("npm").args(args).current_dir(dir).status();
    match status {
        Ok(status) if status.success() => {}
        Ok(status) => panic!(
            "`npm {}` in ui/ failed ({status}); run it there to see why",
            args.join(" ")
        ),
        Err(error) => panic!(
            "the window is built with npm, which could not be run ({error}): install Node.js 20.19+ \
             and npm, or build ui/dist yourself and set KOPIA_NOTIFIER_SKIP_UI_BUILD=1"
        ),
    }
}
