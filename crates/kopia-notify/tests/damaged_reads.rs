//! A manifest pack that cannot be read, in a repository real Kopia made: Kopia's `manifest
//! list` fails and so does ours (those commands answer as Kopia's), while `kopia-notify list`
//! goes on without that pack, names it, and records one corruption notification to everyone
//! (not one per read), which resolves itself once the pack reads again.

use std::collections::BTreeSet;
use std::fs;
use std::process::Output;

use kopia_fixtures::cli::{command, stdout_ok};
use kopia_fixtures::{require_kopia, CreateOptions, KopiaRepo};
use kopia_repo::storage::filesystem::FilesystemStorage;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_kopia-notify");

fn ours(repo: &KopiaRepo, args: &[&str]) -> Output {
    command(BIN, &repo.config_file())
        .args(["--as", "alice@laptop", "--notifications=hidden"])
        .args(args)
        .output()
        .unwrap()
}

fn pack_ids(repo: &KopiaRepo) -> BTreeSet<String> {
    repo.blob_list("q").into_iter().map(|b| b.id).collect()
}

fn pending(repo: &KopiaRepo) -> (Vec<Value>, String) {
    let out = ours(repo, &["list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let listed: Value = serde_json::from_str(&stdout_ok(out)).unwrap();
    (listed.as_array().unwrap().clone(), stderr)
}

fn titles(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|item| item["title"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn an_unreadable_manifest_pack_is_listed_around_and_reported_once() {
    let Some(kopia) = require_kopia() else {
        return;
    };
    let repo = KopiaRepo::create(&kopia, &CreateOptions::default());
    repo.snapshot(&repo.make_tree(2, 2));
    let send = |title: &str| {
        stdout_ok(ours(
            &repo,
            &["send", "--severity=warning", "--to=all", "--title", title],
        ))
    };
    let before = pack_ids(&repo);
    send("Disk almost full");
    let lost_pack = pack_ids(&repo)
        .difference(&before)
        .next()
        .expect("send wrote a pack")
        .clone();
    send("Backup of /home failed");

    // Flipped bits all over the first half of the first notification's pack, where its one
    // content lies (the pack's own index and postamble follow it).
    let path = FilesystemStorage::open(&repo.repo_dir())
        .unwrap()
        .blob_path(&lost_pack)
        .unwrap();
    let original = fs::read(&path).unwrap();
    let mut damaged = original.clone();
    for byte in damaged[..original.len() / 2].iter_mut().step_by(8) {
        *byte ^= 0x40;
    }
    fs::write(&path, &damaged).unwrap();

    // Kopia cannot list the manifests, nor can our Kopia-compatible command: both fail.
    assert!(!repo.run(&["manifest", "list", "--json"]).status.success());
    let manifest_list = ours(&repo, &["manifest", "list", "--json"]);
    assert_eq!(manifest_list.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&manifest_list.stderr).contains(&lost_pack));

    // Our list goes on without the pack, says so, and tells everyone.
    let (items, stderr) = pending(&repo);
    assert!(stderr.contains(&lost_pack), "{stderr}");
    let shown = titles(&items);
    assert!(
        shown.contains(&"Backup of /home failed".to_string()),
        "{shown:?}"
    );
    assert!(
        !shown.contains(&"Disk almost full".to_string()),
        "{shown:?}"
    );
    let reports: Vec<&Value> = items
        .iter()
        .filter(|item| item["sourceKind"] == "corruption")
        .collect();
    assert_eq!(reports.len(), 1, "{items:#?}");
    let report = &reports[0];
    assert_eq!(report["severity"], "error");
    assert_eq!(report["recipient"], "*");
    assert!(report["title"].as_str().unwrap().contains(&lost_pack));

    // Read again (here and by another user): still that one notification.
    let (again, _) = pending(&repo);
    assert_eq!(
        again
            .iter()
            .filter(|item| item["sourceKind"] == "corruption")
            .count(),
        1
    );
    let (for_bob, _) = {
        let out = command(BIN, &repo.config_file())
            .args([
                "--as",
                "bob@desk",
                "--notifications=hidden",
                "list",
                "--json",
            ])
            .output()
            .unwrap();
        let listed: Value = serde_json::from_str(&stdout_ok(out)).unwrap();
        (listed.as_array().unwrap().clone(), ())
    };
    assert!(titles(&for_bob).iter().any(|t| t.contains(&lost_pack)));

    // The pack restored: nothing is missing, the report resolves, and Kopia agrees again.
    fs::write(&path, &original).unwrap();
    let (items, stderr) = pending(&repo);
    assert!(!stderr.contains("warning"), "{stderr}");
    let shown = titles(&items);
    assert!(shown.contains(&"Disk almost full".to_string()), "{shown:?}");
    assert!(
        !shown.iter().any(|t| t.contains(&lost_pack)),
        "resolved once the pack reads again: {shown:?}"
    );
    // Kopia keeps the damaged copy in its cache of metadata packs until told to drop it.
    repo.run_ok(&["cache", "clear"]);
    assert!(repo.run(&["manifest", "list", "--json"]).status.success());
}
