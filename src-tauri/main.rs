//! Kopia Notifier desktop app. The tray app arrives with the desktop issue; until then this
//! binary only points users at the CLI.
fn main() {
    eprintln!("kopia-notifier: the desktop app is not built yet; use `kopia-notify` meanwhile.");
    std::process::exit(2);
}
