//! Seeds the fuzz corpora (`fuzz/`) from repositories real Kopia wrote: a current repository
//! (epochs, index v2) and a format-version-1 one (legacy `n` indexes, index v1), each with
//! snapshots, full maintenance, and notifications and acknowledgements sent with
//! `kopia-notify`. Writes one directory per fuzz target below the output directory.
//!
//! `cargo run -p kopia-notifier-tests --example fuzz_seeds -- OUT_DIR` (`fuzz/run` does this).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use kopia_fixtures::{CreateOptions, KopiaRepo, PASSWORD};
use kopia_repo::compression::{compress, gunzip};
use kopia_repo::content::IndexScope;
use kopia_repo::repository::Repository;

/// Compressors whose stream formats differ (gzip, zstd, s2, deflate; lz4 is read-only).
const COMPRESSION_SEEDS: [u32; 4] = [0x1000, 0x1100, 0x1200, 0x1500];

fn main() {
    let out = PathBuf::from(std::env::args().nth(1).expect("usage: fuzz_seeds OUT_DIR"));
    let kopia = kopia_fixtures::Kopia::locate().unwrap_or_else(|reason| panic!("{reason}"));
    let mut seeds = Seeds::new(&out);
    for (name, options) in [
        ("current", CreateOptions::default()),
        (
            "format-v1",
            CreateOptions {
                format_version: Some(1),
                ..CreateOptions::default()
            },
        ),
    ] {
        let repo = KopiaRepo::create(&kopia, &options);
        fill(&repo);
        seeds.take_from(name, &repo);
    }
    println!("{}", seeds.summary());
}

/// Snapshots, notifications, acknowledgements and full maintenance: every kind of blob.
fn fill(repo: &KopiaRepo) {
    let tree = repo.make_tree(3, 4);
    repo.snapshot(&tree);
    fs::write(tree.join("changed.txt"), "a second snapshot sees this").unwrap();
    repo.snapshot(&tree);
    notify(
        repo,
        &[
            "send",
            "--severity",
            "error",
            "--to",
            "all",
            "--title",
            "Backup failed",
        ],
    );
    notify(
        repo,
        &[
            "send",
            "--severity",
            "warning",
            "--to",
            "tester@kopia-harness",
            "--title",
            "Disk almost full",
            "--message",
            "96 % used",
            "--link",
            "https://example.com/disk",
        ],
    );
    notify(repo, &["ack", "--all"]);
    repo.maintenance_full();
}

fn notify(repo: &KopiaRepo, args: &[&str]) {
    let bin = std::env::var_os("KOPIA_NOTIFY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/debug/kopia-notify")
        });
    let output = Command::new(&bin)
        .arg("--config-file")
        .arg(repo.config_file())
        .args(args)
        .env("KOPIA_PASSWORD", PASSWORD)
        .env("KOPIA_NOTIFICATIONS", "hidden")
        .output()
        .unwrap_or_else(|err| panic!("cannot run {}: {err}", bin.display()));
    // `ack` and `send` exit 1 when warnings or errors are still pending; 2 is a failure.
    assert_ne!(
        output.status.code(),
        Some(2),
        "kopia-notify {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

struct Seeds {
    out: PathBuf,
    counts: HashMap<&'static str, usize>,
}

impl Seeds {
    fn new(out: &Path) -> Self {
        Seeds {
            out: out.to_path_buf(),
            counts: HashMap::new(),
        }
    }

    fn add(&mut self, target: &'static str, name: &str, bytes: &[u8]) {
        let dir = self.out.join(target);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join(name), bytes).unwrap();
        *self.counts.entry(target).or_default() += 1;
    }

    fn take_from(&mut self, repo_name: &str, repo: &KopiaRepo) {
        let repo_dir = repo.repo_dir();
        let repository = Repository::open_filesystem(&repo_dir, PASSWORD).unwrap();
        let storage = repository.storage();
        let format_blob = storage.get_blob("kopia.repository").unwrap();
        self.add(
            "format_blob",
            &format!("{repo_name}-kopia.repository"),
            &format_blob,
        );
        if let Ok(shards) = fs::read(repo_dir.join(".shards")) {
            self.add("format_blob", &format!("{repo_name}-shards"), &shards);
        }
        self.add("repository_config", repo_name, &read(&repo.config_file()));

        let reader = repository.content_reader();

        let mut listing = String::new();
        for blob in storage.list_blobs("x").unwrap() {
            listing.push_str(&format!(
                "{} {} {}\n",
                blob.id,
                blob.length,
                blob.timestamp.timestamp()
            ));
        }
        if !listing.is_empty() {
            self.add("epoch_listing", repo_name, listing.as_bytes());
        }

        let index_set = reader.list_index_blobs(&mut HashMap::new()).unwrap();
        for blob in &index_set.blobs {
            let index = reader.read_encrypted_blob(&blob.id).unwrap();
            self.add("index", &format!("{repo_name}-{}", blob.id), &index);
            for entry in reader
                .read_index_entries(&blob.id, IndexScope::All)
                .unwrap()
            {
                if entry.deleted {
                    continue;
                }
                if entry.content_id.prefix() == Some('m') {
                    if let Ok(payload) = reader.read_content(&entry) {
                        let json = gunzip(&payload).unwrap();
                        self.add(
                            "manifest_content",
                            &format!("{repo_name}-{}", entry.content_id),
                            &json,
                        );
                        self.add_compression_seeds(repo_name, &entry.content_id.to_string(), &json);
                    }
                }
            }
        }

        for blob in storage
            .list_blobs("q")
            .unwrap()
            .iter()
            .chain(&storage.list_blobs("p").unwrap())
        {
            let pack = storage.get_blob(&blob.id).unwrap();
            let tail = &pack[pack.len().saturating_sub(64 << 10)..];
            self.add("pack_postamble", &format!("{repo_name}-{}", blob.id), tail);
        }

        let mut store = repository.manifest_store();
        store.refresh().unwrap();
        for entry in store.find(&Default::default()) {
            let labels = entry.labels().to_labels();
            let kind = labels.get("type").map(String::as_str).unwrap_or_default();
            if kind.starts_with("notification") {
                let line = format!(
                    "{}\n{}",
                    serde_json::to_string(&labels).unwrap(),
                    entry.data.get()
                );
                self.add(
                    "notification_payload",
                    &format!("{repo_name}-{}", entry.id),
                    line.as_bytes(),
                );
            }
        }
    }

    fn add_compression_seeds(&mut self, repo_name: &str, content_id: &str, payload: &[u8]) {
        for header_id in COMPRESSION_SEEDS {
            let mut seed = header_id.to_be_bytes().to_vec();
            seed.extend(compress(header_id, payload).unwrap());
            self.add(
                "compression",
                &format!("{repo_name}-{content_id}-{header_id:x}"),
                &seed,
            );
        }
    }

    fn summary(&self) -> String {
        let mut counts: Vec<_> = self.counts.iter().collect();
        counts.sort();
        counts
            .iter()
            .map(|(target, count)| format!("{target}: {count} seeds"))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()))
}
