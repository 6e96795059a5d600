//! The Tauri commands the window calls: thin wrappers over the engine's handle. The window may
//! call only these (see `capabilities/main.json` and `build.rs`).

use kopia_notifier_engine::{
    AckResult, AddRepository, EngineHandle, NotificationView, Overview, RepoId, Settings,
};
use tauri::{AppHandle, State};
use tauri_plugin_autostart::ManagerExt as _;
use tauri_plugin_opener::OpenerExt as _;

type Reply<T> = Result<T, String>;

#[tauri::command]
pub async fn overview(engine: State<'_, EngineHandle>) -> Reply<Overview> {
    Ok(engine.overview().await)
}

/// One notification's whole text (the overview's rows have no message or details).
#[tauri::command]
pub async fn notification(
    engine: State<'_, EngineHandle>,
    repo: RepoId,
    id: String,
) -> Reply<NotificationView> {
    engine
        .notification(repo, &id)
        .await
        .map_err(|e| e.to_string())
}

#[tauri::command]
pub async fn ack(engine: State<'_, EngineHandle>, repo: RepoId, id: String) -> Reply<AckResult> {
    engine.ack(repo, &id).await.map_err(|e| e.to_string())
}

#[tauri::command]
pub async fn ack_all(engine: State<'_, EngineHandle>) -> Reply<usize> {
    engine.ack_all().await.map_err(|e| e.to_string())
}

#[tauri::command]
pub async fn check_now(engine: State<'_, EngineHandle>) -> Reply<()> {
    engine.check_now().await;
    Ok(())
}

/// The engine's settings, with "launch at login" read from the autostart entry itself.
#[tauri::command]
pub async fn settings(app: AppHandle, engine: State<'_, EngineHandle>) -> Reply<Settings> {
    let mut settings = engine.settings().await;
    settings.launch_at_login = app
        .autolaunch()
        .is_enabled()
        .unwrap_or(settings.launch_at_login);
    Ok(settings)
}

#[tauri::command]
pub async fn update_settings(
    app: AppHandle,
    engine: State<'_, EngineHandle>,
    settings: Settings,
) -> Reply<()> {
    crate::set_launch_at_login(&app, &engine, settings).await
}

#[tauri::command]
pub async fn add_repository(
    engine: State<'_, EngineHandle>,
    request: AddRepository,
) -> Reply<RepoId> {
    engine
        .add_repository(request)
        .await
        .map_err(|e| e.to_string())
}

#[tauri::command]
pub async fn remove_repository(engine: State<'_, EngineHandle>, repo: RepoId) -> Reply<()> {
    engine
        .remove_repository(repo)
        .await
        .map_err(|e| e.to_string())
}

/// Opens a notification's link in the browser: absolute http(s) URLs only.
#[tauri::command]
pub fn open_link(app: AppHandle, url: String) -> Reply<()> {
    let parsed = tauri::Url::parse(&url).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(format!("only http and https links are opened, not {url:?}"));
    }
    app.opener()
        .open_url(parsed.as_str(), None::<&str>)
        .map_err(|e| e.to_string())
}
