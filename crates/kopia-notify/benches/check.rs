//! Benchmark, side by side with real Kopia: the health check of a repository holding 10,000
//! snapshot manifests over 500 sources and 50 Kopia policies (plus a few of ours),
//! `kopia-notify check --dry-run` against `kopia snapshot list --all --json` on the same
//! repository. Both processes pay the same password key derivation; neither asks the network
//! (Kopia's update check and ours are off). Prints the median wall times and their ratio
//! (goal ≤ 0.5).
//!
//! Kopia snapshots each of the 500 sources once; the other 19 snapshots of every source are
//! copies of Kopia's manifest an hour apart each, written by our manifest writer in batches, so
//! that the repository takes seconds to build instead of 10,000 uploads.
//!
//! Run: `cargo bench -p kopia-notify --bench check` (`BENCH_SOURCES`, `BENCH_PER_SOURCE`,
//! `BENCH_ROUNDS` override the defaults; `BENCH_KEEP=1` leaves the repository behind and prints
//! its client config).

use std::path::Path;
use std::time::Instant;

use kopia_fixtures::bench::{
    add_older_snapshot_copies, env_or, kopia_manifest_count, kopia_sources_with_policies, median,
    repository_command, timed,
};
use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo, HOSTNAME, PASSWORD, USERNAME};
use kopia_repo::content::writer::SessionOwner;
use kopia_repo::repository::Repository;
use serde_json::Value;

const KOPIA_POLICIES: usize = 50;

fn main() {
    let Some(kopia) = require_kopia() else {
        eprintln!("check bench needs kopia {}", kopia_fixtures::KOPIA_VERSION);
        std::process::exit(1);
    };
    let sources = env_or("BENCH_SOURCES", 500);
    let per_source = env_or("BENCH_PER_SOURCE", 20);
    let rounds = env_or("BENCH_ROUNDS", 5);

    let setup = Instant::now();
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    let dirs = kopia_sources_with_policies(
        &repo,
        sources,
        KOPIA_POLICIES,
        &["--snapshot-interval=1h", "--snapshot-time=03:00"],
    );

    let ours_bin = Path::new(env!("CARGO_BIN_EXE_kopia-notify"));
    let config = repo.config_file();
    for policy in [
        &["policy", "set", "global", "--notify=all"][..],
        &[
            "policy",
            "set",
            &format!("@{HOSTNAME}"),
            "--overdue-after=3d",
        ],
        &[
            "policy",
            "set",
            &format!("{USERNAME}@{HOSTNAME}:{}", dirs[0].display()),
            "--on-ignored-errors=notify",
        ],
    ] {
        timed(repository_command(ours_bin, &config, policy), b"");
    }

    // The other snapshots of every source: copies of Kopia's, an hour apart each.
    let owner = SessionOwner {
        username: USERNAME.into(),
        hostname: HOSTNAME.into(),
    };
    let repository = Repository::open_filesystem(&repo.repo_dir(), PASSWORD).unwrap();
    assert_eq!(
        add_older_snapshot_copies(&repository, per_source, &owner),
        sources
    );
    let manifests = repo.manifest_list_json(&[]).as_array().unwrap().len();
    let snapshots = kopia_manifest_count(&repo, "snapshot");
    let policies = kopia_manifest_count(&repo, "policy");
    println!(
        "repository: {manifests} manifests ({snapshots} snapshots of {sources} sources, {policies} Kopia policies, 3 of ours), set up in {:.1?}",
        setup.elapsed()
    );

    let kopia_list = ["snapshot", "list", "--all", "--json"];
    let our_check = ["check", "--dry-run"];
    let ours = || {
        let mut command = repository_command(ours_bin, &config, &our_check);
        command.env("KOPIA_NOTIFY_NO_UPGRADE_CHECK", "1");
        command
    };
    let (_, found) = timed(ours(), b"");
    print!(
        "kopia-notify check --dry-run says: {}",
        String::from_utf8_lossy(&found).lines().last().unwrap_or("")
    );
    println!();
    let (mut kopia_times, mut our_times) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (theirs_time, listed) =
            timed(repository_command(kopia.path(), &config, &kopia_list), b"");
        assert_eq!(
            serde_json::from_slice::<Value>(&listed)
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            snapshots
        );
        kopia_times.push(theirs_time);
        our_times.push(timed(ours(), b"").0);
    }
    let (kopia_median, our_median) = (median(kopia_times), median(our_times));
    println!("kopia snapshot list --all --json: {kopia_median:>10.1?} (median of {rounds})");
    println!("kopia-notify check --dry-run:     {our_median:>10.1?} (median of {rounds})");
    println!(
        "ratio ours/kopia: {:.3} (goal <= 0.5)",
        our_median.as_secs_f64() / kopia_median.as_secs_f64()
    );
    if env_or("BENCH_KEEP", 0) == 1 {
        println!("repository kept; client config: {}", config.display());
        std::mem::forget(repo);
    }
}
