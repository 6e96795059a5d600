//! Repositories on an SFTP server, end to end: real Kopia creates one on a private loopback
//! sshd (OpenSSH, started by the test) and snapshots into it; `kopia-notify` opens it through
//! the `repository.config` Kopia wrote, lists manifests exactly as Kopia does, writes what
//! Kopia then sees, and Kopia's full content verification and full maintenance still pass. On
//! top of what every backend shows: the sharded `.f` layout on the server's disk, host keys
//! checked as Kopia checks them (hashed and `[host]:port` entries, unknown and changed keys
//! refused), key and password logins, inline key and known_hosts data, and a connection that
//! comes back after the server restarted.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use kopia_fixtures::cli::{self, stdout_ok};
use kopia_fixtures::servers_sftp::{require_sshd, require_sshd_with_password, SshServer};
use kopia_fixtures::shared_repo::{
    assert_refreshes_read_only_what_changed, kopia_repository_with_two_snapshots, snapshot_count,
    SharedRepo,
};
use kopia_fixtures::{require_kopia, KopiaRepo};
use kopia_repo::client;
use kopia_repo::error::Error;
use kopia_repo::storage::factory::{self, Access, StorageConfig, StorageKind};
use kopia_repo::storage::sharded::{blob_file_path, ShardingParameters};
use kopia_repo::storage::Storage;
use serde_json::{json, Value};

const SFTP_PASSWORD: &str = "sftp-login-secret";

fn kopia_notify(config: &Path, args: &[&str]) -> Output {
    cli::output(env!("CARGO_BIN_EXE_kopia-notify"), config, args)
}

/// Kopia's `--path`, `--host`, `--port`, `--username` for a repository directory on `server`.
fn location_args(server: &SshServer, repo_dir: &Path) -> Vec<String> {
    vec![
        "sftp".to_owned(),
        format!("--path={}", repo_dir.display()),
        "--host=127.0.0.1".to_owned(),
        format!("--port={}", server.port()),
        format!("--username={}", server.user()),
    ]
}

/// A repository Kopia created on the server (key login, known_hosts file), with two snapshots.
fn kopia_repository_on(server: &SshServer, name: &str) -> Option<(KopiaRepo, PathBuf)> {
    let kopia = require_kopia()?;
    let repo_dir = server.data_dir().join(name);
    let mut args = location_args(server, &repo_dir);
    args.push(format!("--keyfile={}", server.client_key().display()));
    args.push(format!("--known-hosts={}", server.known_hosts().display()));
    let repo = kopia_repository_with_two_snapshots(&kopia, &args);
    Some((repo, repo_dir))
}

/// `storage.config` of the connection Kopia wrote.
fn storage_config(repo: &KopiaRepo) -> Value {
    let config: Value = serde_json::from_slice(&fs::read(repo.config_file()).unwrap()).unwrap();
    assert_eq!(config["storage"]["type"], "sftp", "{config}");
    config["storage"]["config"].clone()
}

fn open_sftp(config: Value, access: Access) -> kopia_repo::error::Result<Storage> {
    factory::open(
        &StorageConfig {
            kind: StorageKind::Sftp,
            config,
        },
        access,
    )
}

/// Every file under `dir`, relative, `/`-joined.
fn files_under(dir: &Path) -> Vec<String> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap();
                files.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    files.sort();
    files
}

/// `ssh-keygen -l` of the server's known_hosts: the host key's SHA256 fingerprint.
fn host_fingerprint(server: &SshServer) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-l")
        .arg("-f")
        .arg(server.known_hosts())
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no fingerprint in {text}"))
        .to_owned()
}

#[test]
fn kopia_and_we_share_a_repository_over_sftp() {
    let Some(server) = require_sshd() else { return };
    let Some((repo, repo_dir)) = kopia_repository_on(&server, "shared") else {
        return;
    };
    let config = repo.config_file();
    let shared = SharedRepo::new(&repo, |args| kopia_notify(&config, args));
    assert_eq!(snapshot_count(&shared.assert_same_manifests()), 2);
    let id = shared.put_manifest("sftpTest", "Backup failed over SFTP");
    let (sent, code) = shared.send_notification("error", "NAS disk failing");
    // Exit code 1: an error notification is now pending (the after-command summary's rule).
    assert_eq!(code, 1);
    shared.assert_kopia_verifies_and_maintains(&[&id, &sent], || repo.maintenance_full());

    // The server's disk holds Kopia's sharded layout, with no temp files left behind.
    let shards = fs::read_to_string(repo_dir.join(".shards")).unwrap();
    assert_eq!(shards, ShardingParameters::for_new_repository().to_json());
    let sharding = ShardingParameters::parse(shards.as_bytes()).unwrap();
    let blobs = repo.blob_list("");
    let mut expected: Vec<String> = blobs
        .iter()
        .map(|b| {
            let (directories, file) = blob_file_path(&sharding, &b.id).unwrap();
            let mut parts: Vec<&str> = directories;
            parts.push(&file);
            parts.join("/")
        })
        .collect();
    expected.push(".shards".to_owned());
    expected.sort();
    assert_eq!(files_under(&repo_dir), expected);
    assert!(
        files_under(&repo_dir).iter().any(|f| f.starts_with("x/n")),
        "{expected:?}"
    );

    // Our listing is Kopia's: IDs, lengths and (whole-second) times.
    let client = client::load(&config).unwrap();
    let storage = client.open_storage().unwrap();
    let listed = storage.reader().list_blobs("").unwrap();
    let ours: Vec<(String, u64, i64)> = listed
        .iter()
        .map(|b| (b.id.clone(), b.length, b.timestamp.timestamp()))
        .collect();
    let theirs: Vec<(String, u64, i64)> = blobs
        .iter()
        .map(|b| (b.id.clone(), b.length, b.timestamp.timestamp()))
        .collect();
    assert_eq!(ours, theirs);
}

#[test]
fn an_unchanged_repository_refreshes_with_one_listing_and_no_reads() {
    let Some(server) = require_sshd() else { return };
    let Some((repo, _)) = kopia_repository_on(&server, "refresh") else {
        return;
    };
    assert_refreshes_read_only_what_changed(&repo);
}

#[test]
fn host_keys_are_checked_as_kopia_checks_them() {
    let Some(server) = require_sshd() else { return };
    let Some((repo, _)) = kopia_repository_on(&server, "hostkeys") else {
        return;
    };
    let base = storage_config(&repo);
    let with = |key: &str, value: Value| {
        let mut config = base.clone();
        config[key] = value;
        config
    };
    let address = format!("127.0.0.1:{}", server.port());
    let fingerprint = host_fingerprint(&server);

    // Hashed entries (`ssh-keygen -H`) of a `[host]:port` line: Kopia and we both accept them.
    let hashed = server.hashed_known_hosts();
    assert!(fs::read_to_string(&hashed).unwrap().starts_with("|1|"));
    let storage = open_sftp(
        with("knownHostsFile", json!(hashed.display().to_string())),
        Access::ReadOnly,
    )
    .unwrap();
    assert!(storage.reader().get_blob("kopia.repository").is_ok());

    // A host the known hosts do not name, and a host whose key changed: refused by Kopia, and
    // by us with the host and the fingerprint of the key it showed.
    let stranger = server.stranger_key("other_host");
    let other_key = fs::read_to_string(stranger.with_extension("pub")).unwrap();
    let other_key: Vec<&str> = other_key.split_whitespace().take(2).collect();
    for (known_hosts, says) in [
        (
            format!("[127.0.0.1]:1 {}\n", server.host_key()),
            "is not in",
        ),
        (
            format!("[127.0.0.1]:{} {}\n", server.port(), other_key.join(" ")),
            "differs from the key",
        ),
    ] {
        let err =
            open_sftp(with("knownHostsData", json!(known_hosts)), Access::ReadOnly).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, Error::StorageAccessDenied { .. }), "{err:?}");
        for needle in [address.as_str(), fingerprint.as_str(), says] {
            assert!(message.contains(needle), "{needle:?} not in {message}");
        }
        let file = server.data_dir().join("wrong_known_hosts");
        fs::write(&file, &known_hosts).unwrap();
        let mut args = vec!["repository".to_owned(), "connect".to_owned()];
        args.extend(location_args(
            &server,
            Path::new(base["path"].as_str().unwrap()),
        ));
        args.push(format!("--keyfile={}", server.client_key().display()));
        args.push(format!("--known-hosts={}", file.display()));
        let out = repo.run(&args);
        assert!(!out.status.success(), "Kopia accepted {known_hosts}");
    }

    // Through the CLI, the refusal is one line naming the store.
    let config_file = repo.config_file();
    let mut config: Value = serde_json::from_slice(&fs::read(&config_file).unwrap()).unwrap();
    config["storage"]["config"]["knownHostsData"] = json!("# nobody\n");
    fs::write(&config_file, serde_json::to_vec(&config).unwrap()).unwrap();
    let out = kopia_notify(&config_file, &["manifest", "list", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&fingerprint) && stderr.contains(&address) && !stderr.contains("PRIVATE"),
        "{stderr}"
    );
}

#[test]
fn a_refused_login_names_user_and_host() {
    let Some(server) = require_sshd() else { return };
    let Some((repo, _)) = kopia_repository_on(&server, "logins") else {
        return;
    };
    let mut config = storage_config(&repo);
    config["keyfile"] = json!(server.stranger_key("stranger").display().to_string());
    let err = open_sftp(config.clone(), Access::ReadOnly).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::StorageAccessDenied { .. }), "{err:?}");
    let who = format!("{}@127.0.0.1", server.user());
    assert!(
        message.contains(&who) && message.contains("refused"),
        "{message}"
    );

    // A password on a server that takes none: Kopia tries only the password, so do we.
    config["password"] = json!("guess");
    let message = open_sftp(config, Access::ReadOnly).unwrap_err().to_string();
    assert!(
        message.contains(&who) && message.contains("password"),
        "{message}"
    );
}

#[test]
fn inline_key_and_known_hosts_data_work_as_files_do() {
    let Some(server) = require_sshd() else { return };
    let Some((repo, repo_dir)) = kopia_repository_on(&server, "inline") else {
        return;
    };
    let expected = repo.run_ok(&["manifest", "list", "--json"]);
    // Kopia writes the key and the known_hosts lines into repository.config itself.
    let mut args = vec!["repository".to_owned(), "connect".to_owned()];
    args.extend(location_args(&server, &repo_dir));
    args.push(format!(
        "--key-data={}",
        fs::read_to_string(server.client_key()).unwrap()
    ));
    args.push(format!(
        "--known-hosts-data={}",
        fs::read_to_string(server.known_hosts()).unwrap()
    ));
    repo.run_ok(&["repository", "disconnect"]);
    args.extend([
        format!(
            "--cache-directory={}",
            repo.config_file()
                .parent()
                .unwrap()
                .join("cache2")
                .display()
        ),
        "--persist-credentials".to_owned(),
    ]);
    repo.run_ok(&args);
    let config = storage_config(&repo);
    assert!(config["keyData"]
        .as_str()
        .unwrap()
        .contains("OPENSSH PRIVATE KEY"));
    assert!(config["knownHostsData"]
        .as_str()
        .unwrap()
        .contains("[127.0.0.1]"));
    assert!(config.get("keyfile").is_none() && config.get("knownHostsFile").is_none());
    let ours = stdout_ok(kopia_notify(
        &repo.config_file(),
        &["manifest", "list", "--json"],
    ));
    assert_eq!(ours, expected);
}

#[test]
fn password_logins() {
    let Some(server) = require_sshd_with_password(SFTP_PASSWORD) else {
        return;
    };
    let Some(kopia) = require_kopia() else { return };
    let repo_dir = server.data_dir().join("password");
    let mut args = location_args(&server, &repo_dir);
    args.push(format!("--sftp-password={}", server.password().unwrap()));
    args.push(format!("--known-hosts={}", server.known_hosts().display()));
    let repo = KopiaRepo::create_on(&kopia, &args);
    let tree = repo.make_tree(1, 2);
    repo.snapshot(&tree);
    let config = repo.config_file();
    let shared = SharedRepo::new(&repo, |args| kopia_notify(&config, args));
    shared.assert_same_manifests();
    let (_, code) = shared.send_notification("normal", "Written with a password login");
    assert_eq!(code, 0);
    repo.content_verify();

    let mut config = storage_config(&repo);
    config["password"] = json!("wrong");
    let message = open_sftp(config, Access::ReadOnly).unwrap_err().to_string();
    let who = format!("{}@127.0.0.1", server.user());
    assert!(
        message.contains(&who) && !message.contains("wrong"),
        "{message}"
    );
}

/// A fresh storage directory on the server with a `.shards` file, opened read-write.
fn empty_storage(server: &SshServer, name: &str, shards: Option<&str>) -> (PathBuf, Storage) {
    let dir = server.data_dir().join(name);
    fs::create_dir(&dir).unwrap();
    if let Some(shards) = shards {
        fs::write(dir.join(".shards"), shards).unwrap();
    }
    let storage = open_sftp(
        json!({
            "path": dir.display().to_string(), "host": "127.0.0.1", "port": server.port(),
            "username": server.user(), "keyfile": server.client_key().display().to_string(),
            "knownHostsFile": server.known_hosts().display().to_string(),
            "listParallelism": 4, "someFutureKey": true,
        }),
        Access::ReadWrite,
    )
    .unwrap();
    (dir, storage)
}

#[test]
fn blobs_follow_the_storage_rules() {
    let Some(server) = require_sshd() else { return };
    let (dir, storage) = empty_storage(
        &server,
        "rules",
        Some("{\"default\":[1,3],\"maxNonShardedLength\":20}\n"),
    );
    let (reader, writer) = (storage.reader(), storage.writer().unwrap());
    let pack = "q0123456789abcdef0123456789abcdef-s0123456789abcdef144";
    // Bigger than many SFTP packets, so reads and writes are pipelined pieces.
    let big: Vec<u8> = (0..1_000_003u32).map(|i| (i * 7 % 251) as u8).collect();
    writer.put_blob(pack, &big).unwrap();
    assert_eq!(
        fs::read(dir.join("q/012/3456789abcdef0123456789abcdef-s0123456789abcdef144.f")).unwrap(),
        big
    );
    assert_eq!(reader.get_blob(pack).unwrap(), big);
    assert_eq!(
        reader.get_blob_range(pack, 99_999, 300_000).unwrap(),
        &big[99_999..399_999]
    );
    assert_eq!(reader.get_blob_range(pack, 1_000_003, 0).unwrap(), b"");
    match reader.get_blob_range(pack, 1_000_000, 4).unwrap_err() {
        Error::TruncatedBlob { actual, wanted, .. } => assert_eq!((actual, wanted), (1_000_003, 4)),
        other => panic!("unexpected {other:?}"),
    }
    writer.put_blob(pack, b"replaced").unwrap();
    assert_eq!(reader.get_blob(pack).unwrap(), b"replaced");

    for id in [
        "kopia.repository",
        "xe0",
        "xn0_00000000000000000000000000000001-s1-c1",
    ] {
        writer.put_blob(id, id.as_bytes()).unwrap();
    }
    fs::write(dir.join("x/n0_/leftover.f.tmp.0011223344556677"), b"").unwrap();
    let ids = |prefix: &str| -> Vec<String> {
        reader
            .list_blobs(prefix)
            .unwrap()
            .into_iter()
            .map(|b| b.id)
            .collect()
    };
    assert_eq!(
        ids(""),
        vec![
            "kopia.repository",
            pack,
            "xe0",
            "xn0_00000000000000000000000000000001-s1-c1"
        ]
    );
    assert_eq!(
        ids("xn"),
        vec!["xn0_00000000000000000000000000000001-s1-c1"]
    );
    assert!(ids("p").is_empty());

    writer.delete_blob(pack).unwrap();
    writer.delete_blob(pack).unwrap(); // already gone: fine
    match reader.get_blob(pack).unwrap_err() {
        Error::BlobNotFound { blob_id, storage } => {
            assert_eq!(blob_id, pack);
            assert!(storage.starts_with("sftp://"), "{storage}");
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(!files_under(&dir)
        .iter()
        .any(|f| f.contains(".tmp.") && !f.contains("leftover")));

    // Several threads share the one connection at once.
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let storage = storage.clone();
            std::thread::spawn(move || {
                let id = format!("p{i:032x}-s0123456789abcdef144");
                let body = vec![i as u8; 70_000 + i];
                let writer = storage.writer().unwrap();
                writer.put_blob(&id, &body).unwrap();
                assert_eq!(storage.reader().get_blob(&id).unwrap(), body);
                storage.reader().list_blobs("p").unwrap().len()
            })
        })
        .collect();
    for thread in threads {
        assert!(thread.join().unwrap() >= 1);
    }
    assert_eq!(ids("p").len(), 8);
}

#[test]
fn a_storage_without_shards_uses_dir_shards_or_the_legacy_layout_and_writes_nothing() {
    let Some(server) = require_sshd() else { return };
    let dir = server.data_dir().join("legacy");
    fs::create_dir_all(dir.join("xn0/_00")).unwrap();
    fs::write(dir.join("xn0/_00/00000000000000000000001.f"), b"index").unwrap();
    let config = |extra: Value| {
        let mut config = json!({
            "path": dir.display().to_string(), "host": "127.0.0.1", "port": server.port(),
            "username": server.user(), "keyfile": server.client_key().display().to_string(),
            "knownHostsFile": server.known_hosts().display().to_string(),
        });
        config
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        config
    };
    let legacy = open_sftp(config(json!({})), Access::ReadOnly).unwrap();
    let id = "xn0_0000000000000000000000001";
    assert_eq!(legacy.reader().get_blob(id).unwrap(), b"index");
    assert_eq!(legacy.reader().list_blobs("xn0").unwrap()[0].id, id);
    assert!(legacy.is_read_only());
    let flat = open_sftp(config(json!({"dirShards": []})), Access::ReadWrite).unwrap();
    let flat_id = "xn1_0000000000000000000000002";
    flat.writer().unwrap().put_blob(flat_id, b"flat").unwrap();
    assert!(dir.join(format!("{flat_id}.f")).is_file());
    assert!(!dir.join(".shards").exists());

    let missing = config(json!({"path": server.data_dir().join("nowhere").display().to_string()}));
    let message = open_sftp(missing, Access::ReadOnly)
        .unwrap_err()
        .to_string();
    assert!(message.contains("nowhere"), "{message}");
}

#[test]
fn the_connection_comes_back_after_the_server_restarts() {
    let Some(mut server) = require_sshd() else {
        return;
    };
    let (_dir, storage) = empty_storage(&server, "restart", None);
    let writer = storage.writer().unwrap();
    writer.put_blob("xe0", b"before").unwrap();

    server.stop();
    let err = storage.reader().get_blob("xe0").unwrap_err();
    let address = format!("127.0.0.1:{}", server.port());
    assert!(matches!(err, Error::StorageRequest { .. }), "{err:?}");
    assert!(err.to_string().contains(&address), "{err}");

    server.restart();
    assert_eq!(storage.reader().get_blob("xe0").unwrap(), b"before");
    writer.put_blob("xe1", b"after").unwrap();
    assert_eq!(storage.reader().list_blobs("xe").unwrap().len(), 2);
}
