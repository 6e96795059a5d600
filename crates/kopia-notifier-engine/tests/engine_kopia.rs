//! The engine against what only real Kopia wrote: a user who installs the app and has nothing
//! set up gets a popup for a snapshot that Kopia itself recorded as failed (an unreadable file,
//! Kopia run as an unprivileged user), and the error leaves the pending list, withdraws its
//! popup and stays in history as resolved once a clean snapshot follows.

mod common;

use std::ffi::OsStr;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::Duration;

use common::wait_event;
use kopia_fixtures::require_kopia;
use kopia_fixtures::unprivileged::{Unprivileged, OWNER};
use kopia_notifications::{Severity, SourceKind};
use kopia_notifier_engine::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_kopia_recorded_as_failed_pops_up_and_resolves_after_a_clean_one() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let repo = Unprivileged::create(&kopia, &[]);
    let (source, secret) = repo.source_with_unreadable_file("home");
    let snapshot = [
        OsStr::new("snapshot"),
        OsStr::new("create"),
        source.as_os_str(),
    ];
    let out = repo.kopia(&snapshot);
    assert!(
        !out.status.success(),
        "the unreadable file must fail the snapshot"
    );
    assert_eq!(
        repo.snapshots(&source).len(),
        1,
        "Kopia kept the failed snapshot"
    );

    // Nothing set up: the first run finds Kopia's connection, with its persisted password.
    let data = tempfile::tempdir().unwrap();
    let config_file = repo.config_file();
    let options = EngineOptions {
        secrets: Arc::new(MemorySecrets::default()),
        discover_kopia_configs: Arc::new(move || vec![config_file.clone()]),
        ..EngineOptions::default()
    };
    let config = EngineConfig {
        data_dir: data.path().join("state"),
        demo: false,
    };
    let (engine, mut events) = Engine::start_with(config, options).await.unwrap();
    let event = wait_event(&mut events, Duration::from_secs(20), |e| {
        matches!(e, EngineEvent::NewPending { .. })
    })
    .await;
    let EngineEvent::NewPending {
        repo: repo_id,
        items,
        summary,
    } = event
    else {
        unreachable!()
    };
    assert_eq!(summary, None);
    assert_eq!(items.len(), 1, "{items:?}");
    let error = &items[0];
    assert_eq!(error.severity, Severity::Error);
    assert_eq!(error.kind, SourceKind::Snapshot);
    let snapshot_source = error.snapshot_source.as_ref().expect("the source is named");
    assert_eq!(
        format!("{}@{}", snapshot_source.user_name, snapshot_source.host),
        OWNER
    );
    assert_eq!(snapshot_source.path, source.display().to_string());
    assert!(error.details.contains("secret.txt"), "{}", error.details);
    let overview = engine.overview().await;
    assert_eq!(overview.repositories.len(), 1);
    assert_eq!(overview.repositories[0].identity, OWNER);
    assert_eq!(overview.tray.errors, 1);

    // The cause goes away: Kopia can read the file now and snapshots cleanly.
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    repo.give_to_kopia(&source);
    // The engine runs as us and wrote its finding as us: hand the repository back to Kopia.
    repo.give_to_kopia(&repo.path("repo"));
    let out = repo.kopia(&snapshot);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    engine.check_now().await;
    let withdrawn = wait_event(&mut events, Duration::from_secs(20), |e| {
        matches!(e, EngineEvent::Withdrawn { .. })
    })
    .await;
    let EngineEvent::Withdrawn { repo: from, ids } = withdrawn else {
        unreachable!()
    };
    assert_eq!((from, ids), (repo_id, vec![error.id.clone()]));
    let overview = engine.overview().await;
    assert_eq!(overview.tray.errors, 0, "{:?}", overview.tray);
    let resolved = overview
        .notifications
        .iter()
        .find(|n| n.id == error.id)
        .expect("kept in history");
    assert!(!resolved.is_pending());
    let resolution = resolved
        .resolved
        .as_ref()
        .expect("resolved, with when and why");
    assert!(!resolution.reason.is_empty());
    assert!(resolution.at >= error.created);
    engine.shutdown().await;
}
