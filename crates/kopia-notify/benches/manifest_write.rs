//! Benchmark of the manifest writer, side by side with real Kopia where Kopia has a
//! counterpart: put latency of one entry (a whole `kopia-notify manifest put` process, and the
//! write alone), throughput of a batch of 1,000 entries, then, on a repository holding 50,000
//! manifests written this way, `kopia-notify manifest list --json` against
//! `kopia manifest list --json` (goal: ≤ 0.25× Kopia's wall time).
//!
//! Run: `cargo bench -p kopia-notify --bench manifest_write` (`BENCH_MANIFESTS`, `BENCH_ROUNDS`
//! override the defaults; `BENCH_KEEP=1` leaves the repository behind for profiling and prints
//! its client config).

use std::path::Path;
use std::time::Instant;

use kopia_fixtures::bench::{env_or, median, repository_command, timed};
use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo, HOSTNAME, PASSWORD, USERNAME};
use kopia_repo::content::writer::SessionOwner;
use kopia_repo::manifest::{Labels, NewManifest};
use kopia_repo::repository::Repository;
use serde_json::value::RawValue;

const BATCH: usize = 1_000;

fn manifest(n: usize) -> NewManifest {
    NewManifest {
        labels: Labels::from([
            ("type".to_string(), "benchNotification".to_string()),
            (
                "severity".to_string(),
                ["normal", "warning", "error"][n % 3].to_string(),
            ),
            ("recipient".to_string(), "*".to_string()),
        ]),
        data: RawValue::from_string(
            serde_json::json!({
                "title": format!("Snapshot of /data/{n} failed"),
                "message": "The source directory could not be read: permission denied.",
                "created": "2026-11-30T03:00:00Z",
            })
            .to_string(),
        )
        .unwrap(),
    }
}

fn main() {
    let Some(kopia) = require_kopia() else {
        eprintln!(
            "manifest_write bench needs kopia {}",
            kopia_fixtures::KOPIA_VERSION
        );
        std::process::exit(1);
    };
    let total = env_or("BENCH_MANIFESTS", 50_000);
    let rounds = env_or("BENCH_ROUNDS", 5);
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    let config = repo.config_file();
    let ours_bin = Path::new(env!("CARGO_BIN_EXE_kopia-notify"));

    let mut process_puts = Vec::new();
    for n in 0..rounds {
        let payload = format!(r#"{{"title":"put {n}"}}"#);
        let args = ["manifest", "put", "--label=type:benchPut"];
        process_puts.push(
            timed(
                repository_command(ours_bin, &config, &args),
                payload.as_bytes(),
            )
            .0,
        );
    }
    println!(
        "put 1 entry, whole process (incl. key derivation): {:.1?} (median of {rounds})",
        median(process_puts)
    );

    let owner = SessionOwner {
        username: USERNAME.into(),
        hostname: HOSTNAME.into(),
    };
    let repository = Repository::open_filesystem(&repo.repo_dir(), PASSWORD).unwrap();
    let mut store = repository.manifest_store();
    store.refresh().unwrap();
    let mut single = Vec::new();
    for n in 0..rounds {
        let started = Instant::now();
        let writer = repository.content_writer(owner.clone()).unwrap();
        store
            .write(&writer, &[manifest(1_000_000 + n)], &[])
            .unwrap();
        single.push(started.elapsed());
    }
    println!(
        "put 1 entry, write alone (pack, index, read-back, reload): {:.1?} (median of {rounds})",
        median(single)
    );

    let mut batches = Vec::new();
    let mut written = 0;
    while written < total {
        let puts: Vec<NewManifest> = (written..written + BATCH).map(manifest).collect();
        let started = Instant::now();
        let writer = repository.content_writer(owner.clone()).unwrap();
        store.write(&writer, &puts, &[]).unwrap();
        batches.push(started.elapsed());
        written += BATCH;
    }
    let batch = median(batches);
    println!(
        "put a batch of {BATCH}: {batch:.1?} (median of {}), {:.0} entries/s",
        total / BATCH,
        BATCH as f64 / batch.as_secs_f64()
    );

    let count = repo.manifest_list_json(&[]).as_array().unwrap().len();
    let list = ["manifest", "list", "--json"];
    let (mut kopia_times, mut our_times) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (theirs_time, theirs) = timed(repository_command(kopia.path(), &config, &list), b"");
        let (ours_time, ours) = timed(repository_command(ours_bin, &config, &list), b"");
        assert_eq!(ours, theirs, "outputs differ");
        kopia_times.push(theirs_time);
        our_times.push(ours_time);
    }
    let (kopia_median, our_median) = (median(kopia_times), median(our_times));
    println!("list {count} manifests, kopia manifest list --json:        {kopia_median:.1?}");
    println!("list {count} manifests, kopia-notify manifest list --json: {our_median:.1?}");
    println!(
        "ratio ours/kopia: {:.3} (goal <= 0.25)",
        our_median.as_secs_f64() / kopia_median.as_secs_f64()
    );
    if env_or("BENCH_KEEP", 0) == 1 {
        println!("repository kept; client config: {}", config.display());
        std::mem::forget(repo);
    }
}
