//! The engine on a repository in an S3 bucket (a loopback moto server that real Kopia created
//! the repository on), reached through a link the test can cut: a notification sent there pops
//! up; a refresh of the unchanged repository costs one LIST and no read, counted at the link;
//! the server vanishing during refreshes puts the repository in its "unreachable" state, and it
//! recovers by itself once the server is back.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use common::wait_event;
use kopia_fixtures::link::CuttableLink;
use kopia_fixtures::servers::require_moto;
use kopia_fixtures::{require_kopia, KopiaRepo, HOSTNAME, USERNAME};
use kopia_notifications::kopia_store::KopiaManifests;
use kopia_notifications::{Draft, Notifications, Origin, Recipient, Severity};
use kopia_notifier_engine::*;
use tokio::time::Instant;

const BUCKET: &str = "engine-test";

async fn wait_status(engine: &EngineHandle, want: impl Fn(&RepositoryStatus) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let overview = engine.overview().await;
        if overview.repositories.iter().any(|r| want(&r.status)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "status never matched: {:?}",
            overview.repositories
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends an error to everyone through our own writer on the same S3 repository.
fn send(config: &std::path::Path, title: &str) -> String {
    let (mut manifests, _) = KopiaManifests::open_client_config(config).unwrap();
    let origin = Origin {
        user: format!("{USERNAME}@{HOSTNAME}").parse().unwrap(),
        command: None,
    };
    let draft = Draft::new(Severity::Error, Recipient::All, title, origin);
    Notifications::new(&mut manifests)
        .send(&draft, Utc::now())
        .unwrap()
}

fn popped(event: &EngineEvent) -> Vec<String> {
    match event {
        EngineEvent::NewPending { items, .. } => items.iter().map(|i| i.id.clone()).collect(),
        _ => Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_repository_pops_up_costs_one_list_and_recovers_from_an_outage() {
    let Some(moto) = require_moto() else { return };
    let Some(kopia) = require_kopia() else { return };
    moto.create_bucket(BUCKET);
    let target: SocketAddr = moto.endpoint().parse().unwrap();
    let link = CuttableLink::to(target);
    let repo = KopiaRepo::create_on(
        &kopia,
        &[
            "s3".to_owned(),
            format!("--bucket={BUCKET}"),
            "--prefix=engine/".to_owned(),
            format!("--endpoint={}", link.address()),
            "--disable-tls".to_owned(),
            "--access-key=AKIAKOPIANOTIFIER".to_owned(),
            "--secret-access-key=kopia-notifier-secret".to_owned(),
        ],
    );
    let config = repo.config_file();

    let data = tempfile::tempdir().unwrap();
    let discovered = config.clone();
    let options = EngineOptions {
        secrets: Arc::new(MemorySecrets::default()),
        discover_kopia_configs: Arc::new(move || vec![discovered.clone()]),
        min_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_millis(800),
        ..EngineOptions::default()
    };
    let engine_config = EngineConfig {
        data_dir: data.path().join("state"),
        demo: false,
    };
    let (engine, mut events) = Engine::start_with(engine_config, options).await.unwrap();
    wait_status(&engine, |s| matches!(s, RepositoryStatus::Ok { .. })).await;

    // A notification written to the bucket pops up ("Check now": object stores have no
    // change events).
    let first = send(&config, "Backup of the NAS failed");
    engine.check_now().await;
    let event = wait_event(&mut events, Duration::from_secs(20), |e| {
        popped(e).contains(&first)
    })
    .await;
    assert_eq!(popped(&event), [first]);

    // An unchanged repository: one LIST request, no object read.
    tokio::time::sleep(Duration::from_millis(300)).await;
    link.take_requests();
    engine.check_now().await;
    assert!(matches!(
        engine.overview().await.repositories[0].status,
        RepositoryStatus::Ok { .. }
    ));
    let requests = link.take_requests();
    let lists: Vec<&String> = requests
        .iter()
        .filter(|r| r.contains("list-type=2"))
        .collect();
    assert_eq!(lists.len(), 1, "{requests:#?}");
    assert_eq!(requests.len(), 1, "no reads: {requests:#?}");

    // The server vanishes, during a refresh and after: "unreachable", named.
    let checking = engine.clone();
    let check = tokio::spawn(async move { checking.check_now().await });
    link.cut();
    wait_status(&engine, |s| {
        matches!(s, RepositoryStatus::Unreachable { .. })
    })
    .await;
    check.await.unwrap();
    let overview = engine.overview().await;
    assert_eq!(overview.tray.unreachable, 1);
    let RepositoryStatus::Unreachable { error, .. } = &overview.repositories[0].status else {
        unreachable!()
    };
    assert!(error.contains(BUCKET), "{error}");

    // Back: the engine recovers by itself (no "Check now") and sees what was sent meanwhile.
    link.restore();
    wait_status(&engine, |s| matches!(s, RepositoryStatus::Ok { .. })).await;
    assert_eq!(engine.overview().await.tray.unreachable, 0);
    let second = send(&config, "Backup of the laptop failed");
    engine.check_now().await;
    wait_event(&mut events, Duration::from_secs(20), |e| {
        popped(e).contains(&second)
    })
    .await;
    engine.shutdown().await;
}
