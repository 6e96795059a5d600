//! Benchmark at scale, side by side with real Kopia: a repository holding 100,000
//! notifications and 100,000 acknowledgements, `kopia-notify list --all --json` against
//! `kopia manifest list --json` on the same repository (goal: ratio ≤ 1). Both processes pay
//! the same password key derivation. It also shows what the writes cost: `send --batch` of
//! every notification and `ack --all` each add one pack and one index blob, and the time of a
//! refresh of the unchanged repository as the app makes it (goal: milliseconds, no blob read).
//!
//! Run: `cargo bench -p kopia-notify --bench list_scale` (`BENCH_NOTIFICATIONS`, `BENCH_ROUNDS`
//! override the defaults).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use kopia_fixtures::bench::{env_or, median, repository_command, timed};
use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo, PASSWORD};
use kopia_repo::repository::Repository;
use kopia_repo::storage::counting::CountingStorage;
use kopia_repo::storage::filesystem::FilesystemStorage;
use kopia_repo::storage::BlobStorage;
use serde_json::Value;

/// Every file of the repository directory, relative to it.
fn blobs(dir: &Path) -> BTreeSet<PathBuf> {
    let mut found = BTreeSet::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.insert(path.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    found
}

/// Runs `args` of ours, prints how long it took and which blobs it added.
fn write_step(ours: &Path, repo: &KopiaRepo, args: &[&str], stdin: &[u8]) {
    let before = blobs(&repo.repo_dir());
    let (took, out) = timed(repository_command(ours, &repo.config_file(), args), stdin);
    let added: Vec<String> = blobs(&repo.repo_dir())
        .difference(&before)
        .map(|p| p.display().to_string())
        .collect();
    println!(
        "kopia-notify {}: {took:.1?}, {} blobs added ({}); says: {}",
        args.join(" "),
        added.len(),
        added.join(", "),
        String::from_utf8_lossy(&out).lines().last().unwrap_or("")
    );
}

fn main() {
    let Some(kopia) = require_kopia() else {
        eprintln!(
            "list_scale bench needs kopia {}",
            kopia_fixtures::KOPIA_VERSION
        );
        std::process::exit(1);
    };
    let count = env_or("BENCH_NOTIFICATIONS", 100_000);
    let rounds = env_or("BENCH_ROUNDS", 5);
    let ours = Path::new(env!("CARGO_BIN_EXE_kopia-notify"));

    let setup = Instant::now();
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    let batch: String = (0..count)
        .map(|n| {
            format!(
                "{{\"severity\":\"{}\",\"to\":\"all\",\"title\":\"Backup {n} of /home/u{} failed\",\"message\":\"3 files could not be read\",\"details\":\"/home/u/a: permission denied\"}}\n",
                ["normal", "warning", "error"][n % 3],
                n % 50
            )
        })
        .collect();
    // The design's summary would make both exit 1 with that many pending.
    let hidden = "--notifications=hidden";
    write_step(
        ours,
        &repo,
        &[hidden, "send", "--batch", "-"],
        batch.as_bytes(),
    );
    write_step(ours, &repo, &[hidden, "ack", "--all"], b"");
    let manifests = repo.manifest_list_json(&[]).as_array().unwrap().len();
    println!(
        "repository: {manifests} manifests ({count} notifications, as many acknowledgements), set up in {:.1?}",
        setup.elapsed()
    );

    let kopia_list = ["manifest", "list", "--json"];
    let our_list = [hidden, "list", "--all", "--json"];
    let (_, listed) = timed(
        repository_command(ours, &repo.config_file(), &our_list),
        b"",
    );
    let listed: Value = serde_json::from_slice(&listed).expect("list --all --json is JSON");
    let entries = listed.as_array().map_or(0, Vec::len);
    assert_eq!(entries, count, "list --all lists every notification");
    let (mut kopia_times, mut our_times) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (theirs, out) = timed(
            repository_command(kopia.path(), &repo.config_file(), &kopia_list),
            b"",
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&out)
                .unwrap()
                .as_array()
                .unwrap()
                .len(),
            manifests
        );
        kopia_times.push(theirs);
        our_times.push(
            timed(
                repository_command(ours, &repo.config_file(), &our_list),
                b"",
            )
            .0,
        );
    }
    let (kopia_median, our_median) = (median(kopia_times), median(our_times));
    println!("kopia manifest list --json:     {kopia_median:>10.1?} (median of {rounds})");
    println!("kopia-notify list --all --json: {our_median:>10.1?} (median of {rounds})");
    println!(
        "ratio ours/kopia: {:.3} (goal <= 1)",
        our_median.as_secs_f64() / kopia_median.as_secs_f64()
    );

    // The app's refresh of the unchanged repository: the manifest store reloads only what is
    // new, so it lists the index blobs and reads nothing.
    let counting = Arc::new(CountingStorage::new(
        FilesystemStorage::open(&repo.repo_dir()).unwrap(),
    ));
    let repository =
        Repository::open(Arc::clone(&counting) as Arc<dyn BlobStorage>, PASSWORD).unwrap();
    let mut store = repository.manifest_store();
    let loaded = Instant::now();
    store.refresh().unwrap();
    println!(
        "first load in the app: {:.1?} for {} manifests",
        loaded.elapsed(),
        store.len()
    );
    let mut refresh_times = Vec::new();
    counting.take_counts();
    for _ in 0..rounds {
        let started = Instant::now();
        store.refresh().unwrap();
        refresh_times.push(started.elapsed());
    }
    let counts = counting.take_counts();
    println!(
        "unchanged refresh: {:.2?} (median of {rounds}); per refresh {} lists, {} reads (goal: milliseconds, 0 reads)",
        median(refresh_times),
        counts.lists / rounds as u64,
        counts.gets / rounds as u64
    );
}
