//! Kopia Notifier's desktop shell (Tauri 2): tray icon and menu, popups, and the review window
//! over `kopia-notifier-engine`. It holds no notification or repository logic of its own: it
//! forwards commands to the engine and shows the engine's events.

mod args;
mod commands;
mod popups;
mod tray;
mod window;

use std::path::{Path, PathBuf};

use chrono::{Duration, Local, Utc};
use kopia_notifier_engine::{Engine, EngineConfig, EngineEvent, EngineHandle, Settings};
use tauri::{AppHandle, Emitter, Manager, RunEvent};
use tauri_plugin_autostart::ManagerExt as _;
use tokio::sync::mpsc;

use crate::popups::Popups;
use crate::window::Target;

/// Overrides the data directory like `--data-dir` (for tests and side-by-side instances).
const DATA_DIR_ENV: &str = "KOPIA_NOTIFIER_DATA_DIR";
const APP_ICON: &[u8] = include_bytes!("../icons/icon.png");

pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let mut options = match args::parse(std::env::args().skip(1)) {
        Ok(args::Parsed::Run(options)) => options,
        Ok(args::Parsed::Help) => {
            print!("{}", args::USAGE);
            return;
        }
        Err(message) => {
            eprintln!("kopia-notifier: {message}\n\n{}", args::USAGE);
            std::process::exit(2);
        }
    };

    // The autostart entry and the engine must not depend on the directory we started in.
    if let Some(dir) = options.data_dir.take() {
        options.data_dir = Some(std::path::absolute(&dir).unwrap_or(dir));
    }
    // Started at login: hidden, and with the same state directory this instance uses.
    let mut autostart_args = vec!["--hidden".to_string()];
    if let Some(dir) = &options.data_dir {
        autostart_args.push(format!("--data-dir={}", dir.display()));
    }

    let app = tauri::Builder::default()
        // First, so a second launch exits before doing anything else.
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            window::open(app, None)
        }))
        .plugin(
            tauri_plugin_autostart::Builder::new()
                .args(autostart_args)
                .build(),
        )
        .plugin(tauri_plugin_opener::init())
        .invoke_handler(tauri::generate_handler![
            commands::overview,
            commands::notification,
            commands::ack,
            commands::ack_all,
            commands::check_now,
            commands::settings,
            commands::update_settings,
            commands::add_repository,
            commands::remove_repository,
            commands::open_link,
        ])
        .setup(move |app| {
            let handle = app.handle().clone();
            let data_dir = data_dir(&handle, options.data_dir.clone())?;
            create_private_dir(&data_dir)?;
            tracing::info!("state in {}", data_dir.display());
            let icon = write_popup_icon(&data_dir);
            tray::create(&handle)?;
            // Opening repositories (key derivation) takes a moment: the tray is there at once,
            // the engine and the window follow.
            let config = EngineConfig {
                data_dir,
                demo: options.demo,
            };
            let hidden = options.hidden;
            tauri::async_runtime::spawn(async move {
                match Engine::start(config).await {
                    Ok((engine, events)) => {
                        handle.manage(engine.clone());
                        let popups = Popups::new(handle.clone(), engine.clone(), icon);
                        if !hidden {
                            window::open(&handle, None);
                        }
                        handle_events(handle, engine, popups, events).await;
                    }
                    Err(error) => {
                        tracing::error!("starting failed: {error}");
                        tray::show_failure(&handle, &error.to_string());
                    }
                }
            });
            Ok(())
        })
        .build(tauri::generate_context!());
    let app = match app {
        Ok(app) => app,
        Err(error) => {
            eprintln!("kopia-notifier: {error}");
            std::process::exit(1);
        }
    };
    app.run(|app, event| match event {
        // Closing the window destroys it; the app stays in the tray until Quit.
        RunEvent::ExitRequested {
            code: None, api, ..
        } => api.prevent_exit(),
        RunEvent::WindowEvent {
            label,
            event: tauri::WindowEvent::Destroyed,
            ..
        } if label == window::LABEL => window::release_webkit(),
        RunEvent::Exit => {
            if let Some(engine) = app.try_state::<EngineHandle>() {
                tauri::async_runtime::block_on(engine.inner().clone().shutdown());
            }
        }
        _ => {}
    });
}

/// `--data-dir`, else `$KOPIA_NOTIFIER_DATA_DIR`, else `$XDG_DATA_HOME/kopia-notifier`.
fn data_dir(app: &AppHandle, flag: Option<PathBuf>) -> tauri::Result<PathBuf> {
    if let Some(dir) = flag.or_else(|| {
        std::env::var_os(DATA_DIR_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    }) {
        return Ok(dir);
    }
    Ok(app.path().data_dir()?.join("kopia-notifier"))
}

/// The state directory holds the acknowledgement queue: readable by its owner only.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(dir)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    builder.create(dir)
}

/// Popup servers take an icon by file URI: the app icon is written next to the state.
fn write_popup_icon(data_dir: &Path) -> Option<PathBuf> {
    let path = data_dir.join("icon.png");
    if std::fs::read(&path).ok().as_deref() != Some(APP_ICON) {
        if let Err(error) = std::fs::write(&path, APP_ICON) {
            tracing::warn!("writing the popup icon {}: {error}", path.display());
            return None;
        }
    }
    Some(path)
}

async fn handle_events(
    app: AppHandle,
    engine: EngineHandle,
    popups: Popups,
    mut events: mpsc::Receiver<EngineEvent>,
) {
    refresh_tray(&app, &engine).await;
    while let Some(event) = events.recv().await {
        tracing::debug!(?event, "engine event");
        match event {
            EngineEvent::NewPending { items, summary, .. } => popups.show_new(items, summary).await,
            EngineEvent::Withdrawn { repo, ids } => popups.withdraw(repo, &ids),
            EngineEvent::Changed(_) => {
                refresh_tray(&app, &engine).await;
                if let Err(error) = app.emit_to(window::LABEL, "overview-changed", ()) {
                    tracing::warn!("telling the window about a change: {error}");
                }
            }
        }
    }
}

async fn refresh_tray(app: &AppHandle, engine: &EngineHandle) {
    let overview = engine.overview().await;
    let status_line = overview.tray.status_line();
    let launch_at_login = app.autolaunch().is_enabled().unwrap_or(false);
    let entries = tray::menu_model(&overview, status_line.clone(), launch_at_login, Utc::now());
    if let Err(error) = tray::update(app, overview.tray.icon(), &status_line, &entries) {
        tracing::warn!("updating the tray: {error}");
    }
}

/// Tray menu clicks. Runs on the event loop: engine calls go to the async runtime.
fn on_menu(app: &AppHandle, id: &str) {
    if let Some((repo, notification)) = tray::parse_notification_id(id) {
        window::open(
            app,
            Some(Target::Notification {
                repo,
                id: notification,
            }),
        );
        return;
    }
    match id {
        tray::ids::OPEN => return window::open(app, Some(Target::List)),
        tray::ids::SETTINGS => return window::open(app, Some(Target::Settings)),
        tray::ids::QUIT => return app.exit(0),
        _ => {}
    }
    // The remaining entries exist only once the engine runs.
    let Some(engine) = app.try_state::<EngineHandle>().map(|e| e.inner().clone()) else {
        return;
    };
    let app = app.clone();
    match id {
        tray::ids::ACK_ALL => spawn(async move {
            if let Err(error) = engine.ack_all().await {
                tracing::warn!("acknowledging all: {error}");
            }
        }),
        tray::ids::CHECK_NOW => spawn(async move { engine.check_now().await }),
        tray::ids::PAUSE_HOUR => spawn(async move {
            engine
                .pause_popups(Some(Utc::now() + Duration::hours(1)))
                .await
        }),
        tray::ids::PAUSE_TOMORROW => spawn(async move {
            engine
                .pause_popups(Some(tray::tomorrow_morning(Local::now())))
                .await
        }),
        tray::ids::RESUME => spawn(async move { engine.pause_popups(None).await }),
        tray::ids::LAUNCH_AT_LOGIN => spawn(async move {
            let mut settings = engine.settings().await;
            settings.launch_at_login = !app.autolaunch().is_enabled().unwrap_or(false);
            if let Err(error) = set_launch_at_login(&app, &engine, settings).await {
                tracing::warn!("launch at login: {error}");
            }
            refresh_tray(&app, &engine).await;
        }),
        _ => {}
    }
}

fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) {
    tauri::async_runtime::spawn(task);
}

/// Saves settings, writing or removing the autostart entry to match "launch at login".
pub(crate) async fn set_launch_at_login(
    app: &AppHandle,
    engine: &EngineHandle,
    settings: Settings,
) -> Result<(), String> {
    let autolaunch = app.autolaunch();
    let result = if settings.launch_at_login {
        autolaunch.enable()
    } else {
        autolaunch.disable()
    };
    // Disabling an entry that is not there is not an error worth reporting.
    if let Err(error) = result {
        if settings.launch_at_login || autolaunch.is_enabled().unwrap_or(false) {
            return Err(format!("launch at login: {error}"));
        }
    }
    engine
        .update_settings(settings)
        .await
        .map_err(|e| e.to_string())
}
