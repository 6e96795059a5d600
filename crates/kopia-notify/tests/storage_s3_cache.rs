//! The blob cache of network repositories, end to end: real Kopia creates a repository on a
//! loopback moto server behind a link that records every request; `kopia-notify` lists its
//! manifests (byte-equal to Kopia's) and a second run fetches no index blob and no pack from
//! the server. A damaged cache file is replaced and the answer stays right; an object damaged on
//! the server is still found by `kopia-notify verify` and `check`, which read the server, not
//! the cache.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Output;

use kopia_fixtures::cli::{self, stdout_ok};
use kopia_fixtures::link::CuttableLink;
use kopia_fixtures::servers::{require_moto, MotoServer};
use kopia_fixtures::{require_kopia, KopiaRepo};
use kopia_repo::client;
use kopia_repo::storage::{BlobReader, BlobWriter};

const BUCKET: &str = "kopia-notifier-cache";
const PREFIX: &str = "cached/";

/// A Kopia repository with two snapshots in a moto bucket reached through `link`.
struct Setup {
    _moto: MotoServer,
    link: CuttableLink,
    repo: KopiaRepo,
    /// `$XDG_CACHE_HOME` of our runs: the cache is under `kopia-notifier/` in it.
    cache_home: tempfile::TempDir,
}

impl Setup {
    fn new() -> Option<Setup> {
        let moto = require_moto()?;
        let kopia = require_kopia()?;
        moto.create_bucket(BUCKET);
        let target: SocketAddr = moto.endpoint().parse().unwrap();
        let link = CuttableLink::to(target);
        let repo = KopiaRepo::create_on(
            &kopia,
            &[
                "s3".to_owned(),
                format!("--bucket={BUCKET}"),
                format!("--prefix={PREFIX}"),
                format!("--endpoint={}", link.address()),
                "--disable-tls".to_owned(),
                "--access-key=AKIAKOPIANOTIFIER".to_owned(),
                "--secret-access-key=kopia-notifier-secret".to_owned(),
            ],
        );
        for _ in 0..2 {
            let tree = repo.make_tree(2, 3);
            repo.snapshot(&tree);
        }
        Some(Setup {
            _moto: moto,
            link,
            repo,
            cache_home: tempfile::tempdir().unwrap(),
        })
    }

    fn kopia_notify(&self, args: &[&str]) -> Output {
        cli::command(env!("CARGO_BIN_EXE_kopia-notify"), &self.repo.config_file())
            .env("XDG_CACHE_HOME", self.cache_home.path())
            .args(args)
            .output()
            .expect("run kopia-notify")
    }

    /// Our listing, checked against Kopia's; the blob IDs our run GETs from the server.
    fn list_like_kopia(&self) -> Vec<String> {
        let theirs = self.repo.run_ok(&["manifest", "list", "--json"]);
        self.link.take_requests();
        let ours = stdout_ok(self.kopia_notify(&["manifest", "list", "--json"]));
        let fetched = self
            .link
            .take_requests()
            .iter()
            .filter_map(|line| fetched_blob(line))
            .collect();
        assert_eq!(ours, theirs);
        assert!(ours.contains("\"type\":\"snapshot\""), "{ours}");
        fetched
    }

    /// The one repository directory of the cache, and the blob IDs it holds. (Beside it,
    /// `key-salts` remembers the config's key salt.)
    fn cache_dir(&self) -> (PathBuf, Vec<String>) {
        let root = self.cache_home.path().join("kopia-notifier");
        let dirs: Vec<PathBuf> = std::fs::read_dir(&root)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|dir| !dir.ends_with("key-salts"))
            .collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        let mut ids: Vec<String> = std::fs::read_dir(&dirs[0])
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        (dirs[0].clone(), ids)
    }
}

/// The blob ID of a `GET /<bucket>/<prefix><blob ID>` request line.
fn fetched_blob(line: &str) -> Option<String> {
    let path = line.strip_prefix("GET ")?.strip_suffix(" HTTP/1.1")?;
    let key = path.strip_prefix(&format!("/{BUCKET}/{PREFIX}"))?;
    let id = key.split('?').next().unwrap_or(key);
    (!id.is_empty()).then(|| id.to_owned())
}

/// Index blobs and packs: what never changes under its name.
fn immutable(id: &str) -> bool {
    ["xn", "xs", "xr", "q", "p"]
        .iter()
        .any(|prefix| id.starts_with(prefix))
}

#[test]
fn a_second_listing_fetches_no_index_blob_or_pack() {
    let Some(setup) = Setup::new() else { return };
    let first = setup.list_like_kopia();
    assert!(first.iter().any(|id| id.starts_with("xn")), "{first:?}");
    assert!(first.iter().any(|id| id.starts_with('q')), "{first:?}");
    // A pack is fetched whole once, not once per manifest content in it.
    let mut unique: Vec<&String> = first.iter().filter(|id| immutable(id)).collect();
    let fetches = unique.len();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), fetches, "{first:?}");

    let (dir, cached) = setup.cache_dir();
    assert!(!cached.is_empty() && cached.iter().all(|id| immutable(id)));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(dir.parent().unwrap()), 0o700);
        for id in &cached {
            assert_eq!(mode(&dir.join(id)), 0o600, "{id}");
        }
    }

    let second = setup.list_like_kopia();
    assert!(!second.iter().any(|id| immutable(id)), "{second:?}");
    // The format blob is mutable: it still comes from the server.
    assert!(
        second.iter().any(|id| id == "kopia.repository"),
        "{second:?}"
    );

    // New blobs (a third snapshot) are fetched once, then cached too.
    let tree = setup.repo.make_tree(1, 1);
    setup.repo.snapshot(&tree);
    let third = setup.list_like_kopia();
    assert!(third.iter().any(|id| immutable(id)), "{third:?}");
    let fourth = setup.list_like_kopia();
    assert!(!fourth.iter().any(|id| immutable(id)), "{fourth:?}");
}

#[test]
fn damaged_cache_files_are_replaced_and_the_listing_stays_right() {
    let Some(setup) = Setup::new() else { return };
    setup.list_like_kopia();
    let (dir, cached) = setup.cache_dir();
    let index = cached.iter().find(|id| id.starts_with("xn")).unwrap();
    let pack = cached.iter().find(|id| id.starts_with('q')).unwrap();

    // A flipped byte in the pack's file; the index blob's file replaced by the pack's, which
    // is a well-formed cache file that does not decrypt as that index blob.
    let pack_file = dir.join(pack);
    let good_pack = std::fs::read(&pack_file).unwrap();
    let mut flipped = good_pack.clone();
    flipped[good_pack.len() / 2] ^= 0x10;
    std::fs::write(&pack_file, &flipped).unwrap();
    let index_file = dir.join(index);
    let good_index = std::fs::read(&index_file).unwrap();
    std::fs::write(&index_file, &good_pack).unwrap();

    let fetched = setup.list_like_kopia();
    assert!(
        fetched.contains(pack) && fetched.contains(index),
        "{fetched:?}"
    );
    assert_eq!(std::fs::read(&pack_file).unwrap(), good_pack);
    assert_eq!(std::fs::read(&index_file).unwrap(), good_index);

    // A truncated file too.
    std::fs::write(&pack_file, &good_pack[..good_pack.len() / 2]).unwrap();
    let fetched = setup.list_like_kopia();
    assert_eq!(
        fetched
            .iter()
            .filter(|id| immutable(id))
            .collect::<Vec<_>>(),
        vec![pack]
    );
    assert!(setup.list_like_kopia().iter().all(|id| !immutable(id)));
}

#[test]
fn verify_finds_an_object_damaged_on_the_server_whatever_the_cache_holds() {
    let Some(setup) = Setup::new() else { return };
    setup.list_like_kopia();
    let (_, cached) = setup.cache_dir();
    let pack = cached.iter().find(|id| id.starts_with('q')).unwrap();

    let client = client::load(&setup.repo.config_file()).unwrap();
    let storage = client.open_storage().unwrap();
    let writer = storage.writer().unwrap();
    // Every content of the pack damaged: one byte in each 32.
    let mut damaged = writer.get_blob(pack).unwrap();
    for byte in damaged.iter_mut().step_by(32) {
        *byte ^= 0x40;
    }
    writer.put_blob(pack, &damaged).unwrap();

    let out = setup.kopia_notify(&["verify", "--percent=100", "--json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let damaged = report["damaged"].as_array().unwrap();
    assert!(!damaged.is_empty(), "{report}");
    assert!(
        damaged.iter().all(|d| d["packBlobId"] == pack.as_str()),
        "{report}"
    );

    // The health check reads the manifests from the server too: their pack is unreadable.
    let out = setup.kopia_notify(&["check", "--dry-run", "--json", "--no-upgrade-check"]);
    let summary: serde_json::Value = serde_json::from_str(&stdout_ok(out)).unwrap();
    let unreadable: Vec<&serde_json::Value> = summary["new"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["kind"] == "unreadable-manifests")
        .collect();
    assert_eq!(unreadable.len(), 1, "{summary}");
    assert_eq!(unreadable[0]["subject"], pack.as_str(), "{summary}");
    // Listing goes on from the good copy in the cache, as Kopia's does from its own.
    setup.list_like_kopia();
}
