//! Point-in-time views of a GCS repository, end to end against fake-gcs-server with object
//! versioning on: real Kopia creates the repository and snapshots, a moment T passes, then
//! more is written and Kopia's full maintenance deletes blobs; a connection Kopia makes with
//! `--point-in-time=T` shows through `kopia-notify` exactly what Kopia shows, and every write
//! through it is refused with one line naming the view, without a request that writes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::Utc;
use kopia_fixtures::cli;
use kopia_fixtures::point_in_time::{
    assert_store_refused, assert_view_lists_once, assert_view_shows_the_past,
    assert_writes_refused, connect_at, write_config_at, write_history,
};
use kopia_fixtures::servers_objects::{require_fake_gcs, FakeGcsServer};
use kopia_fixtures::{require_kopia, KopiaRepo};

const PREFIX: &str = "team-a/host1-";

fn kopia_notify(config: &Path, args: &[&str]) -> Output {
    cli::command(env!("CARGO_BIN_EXE_kopia-notify"), config)
        .env("KOPIA_NOTIFICATIONS", "hidden")
        .args(args)
        .output()
        .expect("run kopia-notify")
}

/// One JSON API request to the emulator (HTTP/1.0, never chunked): status and body.
fn gcs_request(gcs: &FakeGcsServer, method: &str, path: &str, body: &str) -> (u16, String) {
    let host = gcs.host();
    let mut stream = TcpStream::connect(&host).expect("connect to fake-gcs-server");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A new bucket of the shared emulator, with object versioning as asked.
fn new_bucket(gcs: &FakeGcsServer, versioned: bool) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let bucket = format!("kopia-notifier-pit-{}", NEXT.fetch_add(1, Ordering::SeqCst));
    let body = serde_json::json!({"name": bucket, "versioning": {"enabled": versioned}});
    let (status, answer) = gcs_request(gcs, "POST", "/storage/v1/b", &body.to_string());
    assert_eq!(status, 200, "create bucket {bucket}: {answer}");
    bucket
}

/// Every generation in the bucket, live or archived: (count, how many archived).
fn generations(gcs: &FakeGcsServer, bucket: &str) -> (usize, usize) {
    let (status, body) = gcs_request(
        gcs,
        "GET",
        &format!("/storage/v1/b/{bucket}/o?versions=true"),
        "",
    );
    assert_eq!(status, 200, "{body}");
    let listing: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(listing.get("nextPageToken").is_none(), "one page expected");
    let items = listing["items"].as_array().cloned().unwrap_or_default();
    let archived = items
        .iter()
        .filter(|item| item.get("timeDeleted").is_some())
        .count();
    (items.len(), archived)
}

fn gcs_args(bucket: &str) -> Vec<String> {
    vec![
        "gcs".to_owned(),
        format!("--bucket={bucket}"),
        format!("--prefix={PREFIX}"),
    ]
}

#[test]
fn a_point_in_time_connection_shows_the_past_and_is_never_written() {
    let Some(gcs) = require_fake_gcs() else {
        return;
    };
    let Some(kopia) = require_kopia() else { return };
    let bucket = new_bucket(gcs, true);
    let repo = KopiaRepo::create_on(&kopia, &gcs_args(&bucket));
    let history = write_history(&repo, kopia_notify);
    let live = repo.config_file();
    let (_, archived) = generations(gcs, &bucket);
    assert!(archived > 0, "maintenance deleted no blob");

    let dir = tempfile::tempdir().unwrap();
    let (pit, connected) = connect_at(&kopia, &gcs_args(&bucket), &history.at, dir.path());
    assert!(connected.status.success(), "{connected:?}");
    // What Kopia shows of the past, we show, byte for byte.
    assert_view_shows_the_past(&kopia, &pit, &live, &history, kopia_notify);

    // Every write is refused with one line naming the config and T, and writes nothing.
    let before = generations(gcs, &bucket);
    assert_writes_refused(&pit, &history, kopia_notify);
    assert_eq!(generations(gcs, &bucket), before, "a refused write wrote");

    assert_view_lists_once(&pit, &history.at);
}

#[test]
fn a_point_in_time_of_an_unversioned_bucket_is_refused_naming_the_bucket() {
    let Some(gcs) = require_fake_gcs() else {
        return;
    };
    let Some(kopia) = require_kopia() else { return };
    let bucket = new_bucket(gcs, false);
    let repo = KopiaRepo::create_on(&kopia, &gcs_args(&bucket));
    let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let dir = tempfile::tempdir().unwrap();
    // Kopia refuses to connect so; a config that says it anyway is refused by us too.
    let (_, refused) = connect_at(&kopia, &gcs_args(&bucket), &at, dir.path());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("non-versioned bucket"), "{refused:?}");
    let pit = dir.path().join("unversioned.config");
    write_config_at(&repo.config_file(), &at, &pit);
    let before = generations(gcs, &bucket);
    assert_store_refused(
        &kopia_notify(&pit, &["list"]),
        &[
            &format!("pointInTime {at} needs a versioned bucket"),
            &format!("bucket {bucket} of gcs://{bucket}/{PREFIX}"),
        ],
    );
    assert_eq!(generations(gcs, &bucket), before);
}
