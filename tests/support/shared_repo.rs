//! The steps every storage interop test takes to show that Kopia and `kopia-notify` share one
//! repository on the backend under test: our `manifest list --json` is Kopia's byte for byte,
//! what we write Kopia lists, Kopia's full content verification and full maintenance pass
//! after our writes; and that refreshing an unchanged repository costs one listing and no
//! reads. Each test says how `kopia-notify` runs against its backend (its environment, its
//! config) and adds its backend's own checks around these steps.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;

use kopia_repo::client;
use kopia_repo::manifest::{ManifestRefresh, ManifestStore};
use kopia_repo::repository::Repository;
use kopia_repo::storage::counting::CountingStorage;
use kopia_repo::storage::BlobWriter;

use crate::cli::stdout_ok;
use crate::{Kopia, KopiaRepo, PASSWORD};

/// A repository Kopia creates with `kopia repository create <storage_args>` and snapshots into
/// twice (two small trees), as every storage test starts.
pub fn kopia_repository_with_two_snapshots(kopia: &Kopia, storage_args: &[String]) -> KopiaRepo {
    let repo = KopiaRepo::create_on(kopia, storage_args);
    for _ in 0..2 {
        let tree = repo.make_tree(2, 3);
        repo.snapshot(&tree);
    }
    repo
}

/// A copy in `dir` of `repo`'s `repository.config` (and its password file) with `edit`
/// applied to its storage config: a second connection, Kopia's own left as it was.
pub fn edited_config(
    repo: &KopiaRepo,
    dir: &Path,
    edit: impl FnOnce(&mut serde_json::Value),
) -> PathBuf {
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(repo.config_file()).unwrap()).unwrap();
    edit(&mut config["storage"]["config"]);
    let path = dir.join("repository.config");
    std::fs::write(&path, serde_json::to_vec(&config).unwrap()).unwrap();
    std::fs::copy(
        repo.password_file(),
        dir.join("repository.config.kopia-password"),
    )
    .unwrap();
    path
}

/// How many snapshot manifests a `manifest list --json` output holds.
pub fn snapshot_count(manifests: &str) -> usize {
    manifests.matches("\"type\":\"snapshot\"").count()
}

/// How a test runs `kopia-notify` with some arguments against its backend.
type Runner<'a> = Box<dyn Fn(&[&str]) -> Output + 'a>;

/// A repository Kopia made and the way a test runs `kopia-notify` on it.
pub struct SharedRepo<'a> {
    repo: &'a KopiaRepo,
    kopia_notify: Runner<'a>,
}

impl<'a> SharedRepo<'a> {
    /// `kopia_notify` runs our CLI with the given arguments on a config of `repo`'s
    /// repository (Kopia's own, or one a test edited).
    pub fn new(repo: &'a KopiaRepo, kopia_notify: impl Fn(&[&str]) -> Output + 'a) -> Self {
        SharedRepo {
            repo,
            kopia_notify: Box::new(kopia_notify),
        }
    }

    /// Runs our CLI with `args`.
    pub fn kopia_notify(&self, args: &[&str]) -> Output {
        (self.kopia_notify)(args)
    }

    /// Asserts that our `manifest list --json` is Kopia's, byte for byte; returns it.
    #[track_caller]
    pub fn assert_same_manifests(&self) -> String {
        let ours = stdout_ok(self.kopia_notify(&["manifest", "list", "--json"]));
        assert_eq!(ours, self.repo.run_ok(&["manifest", "list", "--json"]));
        ours
    }

    /// Writes a manifest labelled `type:<manifest_type>` with `title` in it through
    /// `manifest put`, and asserts Kopia lists it under that ID; returns the ID.
    #[track_caller]
    pub fn put_manifest(&self, manifest_type: &str, title: &str) -> String {
        let dir = tempfile::tempdir().unwrap();
        let payload = dir.path().join("payload.json");
        let body = serde_json::json!({ "title": title });
        std::fs::write(&payload, body.to_string()).unwrap();
        let id = stdout_ok(self.kopia_notify(&[
            "manifest",
            "put",
            &format!("--label=type:{manifest_type}"),
            &format!("--file={}", payload.display()),
        ]))
        .trim()
        .to_owned();
        let listed = self
            .repo
            .manifest_list_json(&[&format!("type:{manifest_type}")]);
        assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
        id
    }

    /// Sends a notification to everyone and asserts Kopia lists it as the repository's one
    /// notification. `send` exits 0, or 1 when what it sent is pending at `severity`
    /// (the after-command summary's rule); returns the ID and that exit code.
    #[track_caller]
    pub fn send_notification(&self, severity: &str, title: &str) -> (String, i32) {
        let out = self.kopia_notify(&[
            "send",
            &format!("--severity={severity}"),
            "--to=all",
            &format!("--title={title}"),
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        assert!(matches!(code, Some(0 | 1)), "{code:?}: {stderr}");
        let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        assert!(!id.is_empty(), "send printed no ID: {stderr}");
        let listed = self.repo.manifest_list_json(&["type:notification"]);
        assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
        assert_eq!(listed[0]["id"], id.as_str(), "{listed}");
        (id, code.unwrap_or_default())
    }

    /// After our writes (of `ids`), Kopia's full content verification passes, then its full
    /// maintenance (`maintain` runs it, so that a test can watch what it asks of the server),
    /// then verification again; our listing is still Kopia's, with `ids` in it.
    #[track_caller]
    pub fn assert_kopia_verifies_and_maintains(&self, ids: &[&str], maintain: impl FnOnce()) {
        self.repo.content_verify();
        maintain();
        self.repo.content_verify();
        let ours = self.assert_same_manifests();
        for id in ids {
            assert!(ours.contains(id), "{id} not in {ours}");
        }
    }
}

/// Our manifest store over the storage of `repo`'s `repository.config`, with every blob
/// operation counted.
pub struct CountedStore {
    counting: Arc<CountingStorage<Arc<dyn BlobWriter>>>,
    store: ManifestStore,
}

impl CountedStore {
    /// Opens the repository as Kopia's config says and refreshes once, which reads it all.
    #[track_caller]
    pub fn open(repo: &KopiaRepo) -> CountedStore {
        let client = client::load(&repo.config_file()).unwrap();
        let writer = Arc::clone(client.open_storage().unwrap().writer().unwrap());
        let counting = Arc::new(CountingStorage::new(writer));
        let repository =
            Repository::open(Arc::clone(&counting) as Arc<dyn BlobWriter>, PASSWORD).unwrap();
        let mut store = repository.manifest_store();
        let first = store.refresh().unwrap();
        assert!(first.changed && first.contents_read > 0, "{first:?}");
        CountedStore { counting, store }
    }

    /// A refresh of the unchanged repository sees no change and costs one listing and no
    /// reads. (One list call is one listing request while a prefix holds fewer index blobs
    /// than the backend's page.)
    #[track_caller]
    pub fn assert_unchanged_refresh_lists_once(&mut self) {
        self.counting.take_counts();
        let idle = self.store.refresh().unwrap();
        let counts = self.counting.take_counts();
        assert!(!idle.changed, "{idle:?}");
        assert_eq!((counts.lists, counts.gets), (1, 0), "{counts:?}");
    }

    /// A refresh after the repository changed sees it, with one listing and one read per
    /// index blob and manifest content it read; returns what it did.
    #[track_caller]
    pub fn assert_changed_refresh_reads_only_what_changed(&mut self) -> ManifestRefresh {
        self.counting.take_counts();
        let update = self.store.refresh().unwrap();
        let counts = self.counting.take_counts();
        assert!(update.changed, "{update:?}");
        assert_eq!(counts.lists, 1, "{counts:?}");
        assert_eq!(
            counts.gets as usize,
            update.index_blobs_read + update.contents_read,
            "{counts:?} {update:?}"
        );
        update
    }
}

/// The whole refresh check: an unchanged repository refreshes with one listing and no reads;
/// after Kopia snapshots once more, with one listing and the reads of what is new.
#[track_caller]
pub fn assert_refreshes_read_only_what_changed(repo: &KopiaRepo) {
    let mut store = CountedStore::open(repo);
    store.assert_unchanged_refresh_lists_once();
    repo.snapshot(&repo.make_tree(1, 1));
    store.assert_changed_refresh_reads_only_what_changed();
}

/// The IDs of the blobs our storage lists at `repo`'s `repository.config`, in our order.
pub fn our_blob_ids(repo: &KopiaRepo) -> Vec<String> {
    let client = client::load(&repo.config_file()).unwrap();
    let storage = client.open_storage().unwrap();
    let listed = storage.reader().list_blobs("").unwrap();
    listed.into_iter().map(|b| b.id).collect()
}
