//! Benchmark: the tray engine on a repository of 100,000 notifications and 100,000
//! acknowledgements (issue 11: the app's refresh stays in milliseconds beyond the load). Real
//! Kopia creates the repository; our library writes every notification in one write and the
//! acknowledgements in two (half by the app's identity, half by someone else's), so the app
//! sees 50,000 pending and 50,000 acknowledged. The engine finds the repository through Kopia's
//! connection, as on a user's machine.
//!
//! Prints the first load (start until the repository is listed), the median of "Check now" on
//! the unchanged repository (`EngineHandle::check_now` returns once the refresh is done), the
//! events those refreshes emitted (none: nothing changed), and for comparison a refresh that
//! finds one new notification (which lists the repository again) and an acknowledgement from
//! the window. It asserts no timing.
//!
//! Run: `cargo bench -p kopia-notifier-engine --bench refresh_scale` (`BENCH_NOTIFICATIONS`,
//! `BENCH_ROUNDS` override the defaults).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use kopia_fixtures::bench::{env_or, median};
use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo, HOSTNAME, PASSWORD, USERNAME};
use kopia_notifications::kopia_store::KopiaManifests;
use kopia_notifications::{Draft, Identity, Notifications, Origin, Recipient, Severity};
use kopia_notifier_engine::{
    Engine, EngineConfig, EngineEvent, EngineHandle, EngineOptions, MemorySecrets, RepositoryStatus,
};
use kopia_repo::content::writer::SessionOwner;
use kopia_repo::repository::Repository;

fn owner(identity: &Identity) -> SessionOwner {
    SessionOwner {
        username: identity.user.clone(),
        hostname: identity.host.clone(),
    }
}

fn manifests_of(repo: &KopiaRepo, writer: &Identity) -> KopiaManifests {
    let repository = Repository::open_filesystem(&repo.repo_dir(), PASSWORD).unwrap();
    KopiaManifests::new(repository, owner(writer)).unwrap()
}

fn draft(n: usize, writer: &Identity) -> Draft {
    let severity = [Severity::Normal, Severity::Warning, Severity::Error][n % 3];
    let title = format!("Backup {n} of /home/u{} failed", n % 50);
    let mut draft = Draft::new(
        severity,
        Recipient::All,
        &title,
        Origin {
            user: writer.clone(),
            command: Some("bench".into()),
        },
    );
    draft.message = "3 files could not be read".into();
    draft
}

/// Whether the engine has listed its repository.
async fn listed(engine: &EngineHandle) -> bool {
    engine
        .overview()
        .await
        .repositories
        .iter()
        .any(|r| matches!(r.status, RepositoryStatus::Ok { .. }))
}

fn main() {
    let Some(kopia) = require_kopia() else {
        eprintln!(
            "refresh_scale bench needs kopia {}",
            kopia_fixtures::KOPIA_VERSION
        );
        std::process::exit(1);
    };
    let count = env_or("BENCH_NOTIFICATIONS", 100_000);
    let rounds = env_or("BENCH_ROUNDS", 20);
    let me: Identity = format!("{USERNAME}@{HOSTNAME}").parse().unwrap();
    let someone: Identity = "someone@elsewhere".parse().unwrap();

    let setup = Instant::now();
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    let mut manifests = manifests_of(&repo, &me);
    let now = Utc::now();
    let drafts: Vec<Draft> = (0..count).map(|n| draft(n, &me)).collect();
    let mut service = Notifications::new(&mut manifests);
    let ids = service.send_all(&drafts, now).unwrap();
    let (mine, theirs) = ids.split_at(count / 2);
    service.ack(&me, mine, now).unwrap();
    service.ack(&someone, theirs, now).unwrap();
    drop(manifests);
    println!(
        "repository: {count} notifications, {count} acknowledgements, set up in {:.1?}",
        setup.elapsed()
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
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
        let started = Instant::now();
        let (engine, mut events) = Engine::start_with(config, options).await.unwrap();
        // The shell's part: keep draining the events, counting them.
        let seen = Arc::new(AtomicUsize::new(0));
        let (first, mut first_listed) = tokio::sync::mpsc::channel::<()>(1);
        let counter = Arc::clone(&seen);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                counter.fetch_add(1, Ordering::SeqCst);
                if matches!(event, EngineEvent::Changed(_)) {
                    let _ = first.try_send(());
                }
            }
        });
        while !listed(&engine).await {
            tokio::time::timeout(Duration::from_secs(300), first_listed.recv())
                .await
                .expect("the engine lists the repository within 5 minutes");
        }
        let load = started.elapsed();
        let overview = engine.overview().await;
        println!(
            "first load: {load:.1?} ({} listed, {} pending)",
            overview.notifications.len(),
            overview.tray.errors + overview.tray.warnings + overview.tray.normal
        );

        // Let the first refresh's events arrive before counting.
        engine.check_now().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = seen.load(Ordering::SeqCst);
        let mut times = Vec::new();
        for _ in 0..rounds {
            let at = Instant::now();
            engine.check_now().await;
            times.push(at.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let events = seen.load(Ordering::SeqCst) - before;
        println!(
            "unchanged refresh (Check now): {:.2?} median of {rounds}, {events} events in all (goal: milliseconds)",
            median(times)
        );

        // The window's "Acknowledge" on one notification: queued, written, listed again.
        let overview = engine.overview().await;
        let pending = overview
            .notifications
            .iter()
            .find(|n| n.is_pending())
            .expect("a pending notification");
        let at = Instant::now();
        engine.ack(pending.repo, &pending.id).await.unwrap();
        println!("acknowledging one: {:.1?}", at.elapsed());

        let mut writer = manifests_of(&repo, &someone);
        Notifications::new(&mut writer)
            .send(&draft(count, &someone), Utc::now())
            .unwrap();
        let at = Instant::now();
        engine.check_now().await;
        println!(
            "refresh finding 1 new notification: {:.1?} (the repository is listed again)",
            at.elapsed()
        );
        engine.shutdown().await;
    });
}
