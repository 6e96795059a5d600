//! Benchmark, side by side with real Kopia: open a repository holding 5,000 snapshot manifests
//! and list them all, `kopia-notify manifest list --json` against `kopia manifest list --json`.
//! Both processes pay the same password key derivation. Prints the median wall times, their
//! ratio (goal ≤ 0.5), our own split (key derivation, index load, manifest load) and the storage
//! calls of a refresh when nothing changed (goal: one listing, zero reads).
//!
//! Run: `cargo bench -p kopia-notify --bench manifest_list` (`BENCH_MANIFESTS`, `BENCH_ROUNDS`
//! override the defaults). `BENCH_STORAGE=s3` puts the repository in a bucket of a loopback
//! moto server instead of a local directory (moto_server from `.ci/install-storage-servers.sh`);
//! from its second round on our CLI reads index blobs and packs from its blob cache
//! (`$XDG_CACHE_HOME/kopia-notifier`), as Kopia reads its own cache, and derives the key from
//! the salt its first round remembered while it opens the storage.

use std::ffi::OsStr;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use kopia_fixtures::bench::{env_or, median, repository_command, timed};
use kopia_fixtures::servers::{require_moto, MotoServer};
use kopia_fixtures::{require_kopia, CreateOptions, Kopia, KopiaRepo, PASSWORD};
use kopia_repo::client;
use kopia_repo::repository::Repository;
use kopia_repo::storage::counting::CountingStorage;
use kopia_repo::storage::BlobStorage;

const LIST: [&str; 3] = ["manifest", "list", "--json"];
const BUCKET: &str = "kopia-notifier-bench";

/// Where the benchmark keeps its repository (`BENCH_STORAGE`).
enum Place {
    Filesystem,
    /// The server lives as long as the benchmark.
    S3(MotoServer),
}

impl Place {
    fn from_env() -> Place {
        match std::env::var("BENCH_STORAGE").as_deref() {
            Err(_) | Ok("filesystem") => Place::Filesystem,
            Ok("s3") => Place::S3(require_moto().unwrap_or_else(|| {
                eprintln!("BENCH_STORAGE=s3 needs moto_server");
                std::process::exit(1)
            })),
            Ok(other) => {
                eprintln!("BENCH_STORAGE={other}: expected filesystem or s3");
                std::process::exit(1)
            }
        }
    }

    fn create(&self, kopia: &Kopia) -> KopiaRepo {
        match self {
            Place::Filesystem => KopiaRepo::create(kopia, &CreateOptions::default()),
            Place::S3(moto) => {
                moto.create_bucket(BUCKET);
                KopiaRepo::create_on(
                    kopia,
                    &[
                        "s3".to_owned(),
                        format!("--bucket={BUCKET}"),
                        "--prefix=bench/".to_owned(),
                        format!("--endpoint={}", moto.endpoint()),
                        "--disable-tls".to_owned(),
                        "--access-key=AKIAKOPIANOTIFIER".to_owned(),
                        "--secret-access-key=kopia-notifier-secret".to_owned(),
                    ],
                )
            }
        }
    }

    fn name(&self) -> String {
        match self {
            Place::Filesystem => "a local directory".to_owned(),
            Place::S3(moto) => format!("s3://{BUCKET}/bench/ on moto at {}", moto.endpoint()),
        }
    }
}

fn main() {
    let Some(kopia) = require_kopia() else {
        eprintln!(
            "manifest_list bench needs kopia {}",
            kopia_fixtures::KOPIA_VERSION
        );
        std::process::exit(1);
    };
    let manifests = env_or("BENCH_MANIFESTS", 5_000);
    let rounds = env_or("BENCH_ROUNDS", 7);

    let place = Place::from_env();

    let setup = Instant::now();
    let repo = place.create(&kopia);
    let tree = repo.make_tree(manifests, 1);
    let mut dirs: Vec<_> = std::fs::read_dir(&tree)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    let mut args = vec![OsStr::new("snapshot"), OsStr::new("create")];
    args.extend(dirs.iter().map(|d| d.as_os_str()));
    repo.run_ok(&args);
    let total = repo.manifest_list_json(&[]).as_array().unwrap().len();
    println!(
        "repository in {}: {total} manifests ({manifests} snapshots), set up in {:.1?}",
        place.name(),
        setup.elapsed()
    );

    let ours_bin = Path::new(env!("CARGO_BIN_EXE_kopia-notify"));
    let (mut kopia_times, mut our_times) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (theirs_time, theirs) = timed(
            repository_command(kopia.path(), &repo.config_file(), &LIST),
            b"",
        );
        let (ours_time, ours) = timed(
            repository_command(ours_bin, &repo.config_file(), &LIST),
            b"",
        );
        assert_eq!(ours, theirs, "outputs differ");
        kopia_times.push(theirs_time);
        our_times.push(ours_time);
    }
    let (kopia_median, our_median) = (median(kopia_times), median(our_times));
    println!("kopia manifest list --json:        {kopia_median:>10.1?} (median of {rounds})");
    println!("kopia-notify manifest list --json: {our_median:>10.1?} (median of {rounds})");
    println!(
        "ratio ours/kopia: {:.3} (goal <= 0.5)",
        our_median.as_secs_f64() / kopia_median.as_secs_f64()
    );

    // The storage as the CLI opens it, from Kopia's config: a refresh's calls are requests
    // on an object store (one listing is one ListObjects page of up to 1,000 blobs).
    let client = client::load(&repo.config_file()).unwrap();
    let storage = Arc::clone(client.open_storage().unwrap().writer().unwrap());
    let counting = Arc::new(CountingStorage::new(storage));
    let repository =
        Repository::open(Arc::clone(&counting) as Arc<dyn BlobStorage>, PASSWORD).unwrap();
    let mut store = repository.manifest_store();
    let loaded = store.refresh().unwrap();
    let timings = repository.timings();
    println!(
        "our split, no cache (a first run): format blob {:.1?}, key derivation {:.1?}, index load {:.1?} ({} index blobs), manifest load {:.1?} ({} contents)",
        timings.read_format_blob,
        timings.key_derivation,
        loaded.index_time,
        loaded.index_blobs_read,
        loaded.manifest_time,
        loaded.contents_read
    );
    counting.take_counts();
    let idle = store.refresh().unwrap();
    let counts = counting.take_counts();
    println!(
        "refresh with nothing changed: {:.1?}, {} listing(s), {} blob reads",
        idle.index_time + idle.manifest_time,
        counts.lists,
        counts.gets
    );

    // The CLI from its second run on, on network storage: index blobs and packs come from its
    // blob cache, the key derivation starts from the remembered salt beside the storage's
    // opening, the format blob read and the index listing.
    if matches!(place, Place::S3(_)) {
        let open_cached = || {
            let (repository, _) = Repository::open_with_client_config(&repo.config_file())
                .expect("open through the client config");
            let loaded = repository.manifest_store().refresh().unwrap();
            (repository.timings(), loaded)
        };
        open_cached();
        let (timings, loaded) = open_cached();
        println!(
            "our split, as the CLI's later runs: format blob {:.1?}, key derivation {:.1?} (started before the storage opened: {}), index load {:.1?} ({} cached index blobs), manifest load {:.1?} ({} cached contents)",
            timings.read_format_blob,
            timings.key_derivation,
            timings.key_started_early,
            loaded.index_time,
            loaded.index_blobs_read,
            loaded.manifest_time,
            loaded.contents_read
        );
    }
}
