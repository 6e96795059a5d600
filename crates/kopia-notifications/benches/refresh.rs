//! Benchmark: what the tray engine pays on each refresh of an unchanged repository with the
//! health checks on (issue 10's goal: no blob read, checks ≤ 5 ms). The repository holds
//! 10,000 snapshot manifests over 500 sources and 50 Kopia policies: real Kopia creates it,
//! sets the policies and snapshots each source once; the other 19 snapshots of every source are
//! copies of Kopia's manifest an hour apart each, written by our manifest writer (as
//! `crates/kopia-notify/benches/check.rs` builds its repository).
//!
//! Each round does what the engine's refresh does (`kopia-notifier-engine/src/refresh.rs`):
//! `KopiaManifests::refresh` (one listing when nothing changed), then `LiveChecks::run` over the
//! manifests in memory. Blob operations are counted with `CountingStorage`; the checks are
//! timed alone. Prints the counts of the unchanged refreshes and the checks' median time; it
//! asserts no timing.
//!
//! Run: `cargo bench -p kopia-notifications --bench refresh` (`BENCH_SOURCES`,
//! `BENCH_PER_SOURCE`, `BENCH_ROUNDS` override the defaults).

use std::sync::Arc;
use std::time::Instant;

use chrono::{Duration, Utc};
use kopia_fixtures::bench::{
    add_older_snapshot_copies, env_or, kopia_manifest_count, kopia_sources_with_policies, median,
};
use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo, HOSTNAME, PASSWORD, USERNAME};
use kopia_notifications::health::live::LiveChecks;
use kopia_notifications::kopia_store::KopiaManifests;
use kopia_notifications::{Identity, Origin};
use kopia_repo::content::writer::SessionOwner;
use kopia_repo::repository::Repository;
use kopia_repo::storage::counting::CountingStorage;
use kopia_repo::storage::filesystem::FilesystemStorage;
use kopia_repo::storage::BlobStorage;

const KOPIA_POLICIES: usize = 50;

/// Kopia's repository: `sources` sources snapshotted once, the global policy and
/// `KOPIA_POLICIES - 1` path policies; then `per_source - 1` older copies of every snapshot.
fn build(repo: &KopiaRepo, sources: usize, per_source: usize, owner: &SessionOwner) {
    kopia_sources_with_policies(
        repo,
        sources,
        KOPIA_POLICIES,
        &[
            "--snapshot-interval=1h",
            "--snapshot-time-crontab=30 */2 * * *",
        ],
    );

    let repository = Repository::open_filesystem(&repo.repo_dir(), PASSWORD).unwrap();
    assert_eq!(
        add_older_snapshot_copies(&repository, per_source, owner),
        sources
    );
}

fn main() {
    let Some(kopia) = require_kopia() else {
        eprintln!(
            "refresh bench needs kopia {}",
            kopia_fixtures::KOPIA_VERSION
        );
        std::process::exit(1);
    };
    let sources = env_or("BENCH_SOURCES", 500);
    let per_source = env_or("BENCH_PER_SOURCE", 20);
    let rounds = env_or("BENCH_ROUNDS", 50);
    let owner = SessionOwner {
        username: USERNAME.into(),
        hostname: HOSTNAME.into(),
    };

    let setup = Instant::now();
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    build(&repo, sources, per_source, &owner);
    let snapshots = kopia_manifest_count(&repo, "snapshot");
    let policies = kopia_manifest_count(&repo, "policy");
    println!(
        "repository: {snapshots} snapshots of {sources} sources, {policies} Kopia policies, set up in {:.1?}",
        setup.elapsed()
    );

    let counting = Arc::new(CountingStorage::new(
        FilesystemStorage::open(&repo.repo_dir()).unwrap(),
    ));
    let repository =
        Repository::open(Arc::clone(&counting) as Arc<dyn BlobStorage>, PASSWORD).unwrap();
    let mut manifests = KopiaManifests::new(repository, owner).unwrap();
    let origin = Origin {
        user: Identity::new(USERNAME, HOSTNAME).unwrap(),
        command: Some("refresh bench".into()),
    };
    let mut checks = LiveChecks::default();
    // Three days on, every source is overdue: the first run writes those findings, as the
    // engine's first refresh would; every later one finds them all written.
    let now = Utc::now() + Duration::days(3);
    let first = checks
        .run(&mut manifests, true, None, &origin, now, &Utc)
        .unwrap();
    println!(
        "first refresh: {} findings written, {} problems",
        first.plan.notifications.len(),
        first.problems.len()
    );
    // Our own write is known to the store: the next refresh already finds nothing new.
    manifests.refresh().unwrap();

    counting.take_counts();
    let mut times = Vec::with_capacity(rounds);
    let (mut lists, mut gets, mut puts) = (0, 0, 0);
    for _ in 0..rounds {
        let changed = manifests.refresh().unwrap();
        assert!(!changed, "nothing changed");
        let started = Instant::now();
        let outcome = checks
            .run(&mut manifests, changed, None, &origin, now, &Utc)
            .unwrap();
        times.push(started.elapsed());
        assert!(outcome.plan.is_empty() && !outcome.written);
        let counts = counting.take_counts();
        lists += counts.lists;
        gets += counts.gets;
        puts += counts.puts;
    }
    println!(
        "unchanged refreshes: {rounds}; blob reads {gets} (goal 0), writes {puts}, listings {lists}"
    );
    println!(
        "health checks of an unchanged refresh: {:.2?} median of {rounds} (goal <= 5 ms)",
        median(times)
    );
}
