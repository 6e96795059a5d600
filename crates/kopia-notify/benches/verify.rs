//! Benchmark, side by side with real Kopia: a full verification of a repository holding real
//! snapshot data (a few thousand contents), `kopia-notify verify --percent 100` against
//! `kopia content verify --full` (every content downloaded and decrypted). Both processes pay
//! the same password key derivation. Prints the median wall times and their ratio (goal ≤ 1).
//!
//! Run: `cargo bench -p kopia-notify --bench verify` (`BENCH_DIRS`, `BENCH_FILES`,
//! `BENCH_ROUNDS` override the defaults; `BENCH_KEEP=1` leaves the repository behind and prints
//! its client config).

use std::path::Path;
use std::time::Instant;

use kopia_fixtures::bench::{env_or, median, repository_command, timed};
use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo};
use serde_json::Value;

fn main() {
    let Some(kopia) = require_kopia() else {
        eprintln!("verify bench needs kopia {}", kopia_fixtures::KOPIA_VERSION);
        std::process::exit(1);
    };
    let dirs = env_or("BENCH_DIRS", 50);
    let files = env_or("BENCH_FILES", 60);
    let rounds = env_or("BENCH_ROUNDS", 5);

    let setup = Instant::now();
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    let tree = repo.make_tree(dirs, files);
    repo.snapshot(&tree);
    let config = repo.config_file();
    let ours_bin = Path::new(env!("CARGO_BIN_EXE_kopia-notify"));
    let our_verify = ["verify", "--percent=100", "--json"];
    let (_, report) = timed(repository_command(ours_bin, &config, &our_verify), b"");
    let report: Value = serde_json::from_slice(&report).unwrap();
    assert_eq!(report["damaged"].as_array().unwrap().len(), 0, "{report}");
    assert_eq!(report["downloaded"], report["contents"]);
    println!(
        "repository: {} contents in {} files, set up in {:.1?}",
        report["contents"],
        dirs * files,
        setup.elapsed()
    );

    let kopia_verify = ["content", "verify", "--full"];
    let (mut kopia_times, mut our_times) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        kopia_times.push(
            timed(
                repository_command(kopia.path(), &config, &kopia_verify),
                b"",
            )
            .0,
        );
        our_times.push(timed(repository_command(ours_bin, &config, &our_verify), b"").0);
    }
    let (kopia_median, our_median) = (median(kopia_times), median(our_times));
    println!("kopia content verify --full:       {kopia_median:>10.1?} (median of {rounds})");
    println!("kopia-notify verify --percent=100: {our_median:>10.1?} (median of {rounds})");
    println!(
        "ratio ours/kopia: {:.3} (goal <= 1)",
        our_median.as_secs_f64() / kopia_median.as_secs_f64()
    );
    if env_or("BENCH_KEEP", 0) == 1 {
        println!("repository kept; client config: {}", config.display());
        std::mem::forget(repo);
    }
}
