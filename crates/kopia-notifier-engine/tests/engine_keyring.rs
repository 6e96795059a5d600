//! The engine with the OS keyring it uses in the app: a real Secret Service (gnome-keyring on
//! a private session bus). A keyring that hangs is shown as unavailable, not as a wrong
//! password, and the repository opens by itself within a minute once the keyring answers.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use kopia_fixtures::keyring::KeyringSession;
use kopia_notifier_engine::*;
use kopia_repo::content::writer::SessionOwner;
use kopia_repo::repository::Repository;
use tokio::time::Instant;

const PASSWORD: &str = "correct horse";

async fn status_of(engine: &EngineHandle, repo: RepoId) -> RepositoryStatus {
    let overview = engine.overview().await;
    let view = overview.repositories.iter().find(|r| r.id == repo).unwrap();
    view.status.clone()
}

async fn wait_status(
    engine: &EngineHandle,
    repo: RepoId,
    limit: Duration,
    want: impl Fn(&RepositoryStatus) -> bool,
) -> RepositoryStatus {
    let deadline = Instant::now() + limit;
    loop {
        let status = status_of(engine, repo).await;
        if want(&status) {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "status never reached within {limit:?}; last {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_keyring_is_shown_as_unavailable_and_retried_within_a_minute() {
    let Some(keyring) = KeyringSession::start() else {
        return;
    };
    // This test file is its own process, and nothing else in it reads the environment.
    std::env::set_var("DBUS_SESSION_BUS_ADDRESS", keyring.bus_address());
    let dir = tempfile::tempdir().unwrap();
    let repo_path = dir.path().join("repo");
    let owner = SessionOwner {
        username: "alice".into(),
        hostname: "laptop".into(),
    };
    Repository::create_filesystem(&repo_path, PASSWORD, &owner).unwrap();
    let config = EngineConfig {
        data_dir: dir.path().join("data"),
        demo: false,
    };
    let options = || EngineOptions {
        secrets: Arc::new(OsKeyring),
        discover_kopia_configs: Arc::new(Vec::new),
        ..EngineOptions::default()
    };

    // Added with the keyring answering: the password goes there, and the repository opens.
    let (engine, _events) = Engine::start_with(config.clone(), options()).await.unwrap();
    let repo = engine
        .add_repository(AddRepository::Filesystem {
            path: repo_path.clone(),
            password: kopia_repo::client::Password::new(PASSWORD),
            name: Some("Keyring".into()),
        })
        .await
        .unwrap();
    wait_status(&engine, repo, Duration::from_secs(30), |s| {
        matches!(s, RepositoryStatus::Ok { .. })
    })
    .await;
    drop(_events);
    engine.shutdown().await;

    // The next start finds the keyring hung: it keeps its bus name and never answers.
    keyring.pause();
    let (engine, _events) = Engine::start_with(config.clone(), options()).await.unwrap();
    let status = wait_status(&engine, repo, Duration::from_secs(30), |s| {
        !matches!(s, RepositoryStatus::Loading)
    })
    .await;
    let RepositoryStatus::Unreachable { error, retry_at } = status else {
        panic!("a hung keyring shown as {status:?}, not as unavailable");
    };
    assert!(
        error.contains("keyring") && error.contains("did not answer"),
        "{error}"
    );
    let wait = retry_at - Utc::now();
    assert!(
        wait <= chrono::Duration::seconds(60),
        "retried only in {wait}"
    );

    // Once it answers again the repository opens by itself, without a restart or a click.
    keyring.resume();
    wait_status(&engine, repo, Duration::from_secs(65), |s| {
        matches!(s, RepositoryStatus::Ok { .. })
    })
    .await;
    drop(_events);
    engine.shutdown().await;
}
