//! Point-in-time views of a versioned S3 bucket, end to end on a loopback moto server: real
//! Kopia creates the repository and snapshots; we send a notification A; the moment T passes;
//! we send B and acknowledge A, Kopia deletes a snapshot and runs full maintenance (which
//! deletes blobs, leaving delete markers). Kopia then connects with `--point-in-time=T` and
//! writes that config: through it we list exactly what Kopia lists (A pending, no B, the
//! deleted snapshot still there), and every writing command refuses with one line while the
//! bucket keeps every version it had. Kopia's rule: repo/blob/s3/s3_pit.go.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;

use chrono::Utc;
use kopia_fixtures::cli::{self, stdout_ok};
use kopia_fixtures::point_in_time::{
    assert_refused, assert_store_refused, assert_view_lists_once, assert_view_shows_the_past,
    assert_writes_refused, connect_at, write_config_at, write_history,
};
use kopia_fixtures::servers::{require_moto, MotoServer};
use kopia_fixtures::{require_kopia, KopiaRepo};

const BUCKET: &str = "kopia-notifier-pit";
const PREFIX: &str = "team-a/host1-";
const ACCESS_KEY: &str = "AKIAKOPIANOTIFIER";
const SECRET_KEY: &str = "kopia-notifier-secret";

fn kopia_notify(config: &Path, args: &[&str]) -> Output {
    cli::command(env!("CARGO_BIN_EXE_kopia-notify"), config)
        .env("KOPIA_NOTIFICATIONS", "hidden")
        .args(args)
        .output()
        .expect("run kopia-notify")
}

/// `kopia repository create|connect s3` arguments for `bucket` at `endpoint`.
fn s3_args(endpoint: &str, bucket: &str) -> Vec<String> {
    vec![
        "s3".to_owned(),
        format!("--bucket={bucket}"),
        format!("--prefix={PREFIX}"),
        format!("--endpoint={endpoint}"),
        "--disable-tls".to_owned(),
        format!("--access-key={ACCESS_KEY}"),
        format!("--secret-access-key={SECRET_KEY}"),
    ]
}

/// One S3 request to moto (which checks no signatures), with an XML body (moto reads a body
/// only with that type); the whole response as text.
fn s3_request(moto: &MotoServer, method: &str, path: &str, body: &str) -> String {
    let endpoint = moto.endpoint();
    let mut stream = TcpStream::connect(&endpoint).expect("connect to moto");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {endpoint}\r\nContent-Type: application/xml\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read response");
    assert!(
        response.starts_with("HTTP/1.1 200"),
        "{method} {path}: {response}"
    );
    response
}

fn enable_versioning(moto: &MotoServer, bucket: &str) {
    set_versioning(moto, bucket, "Enabled");
}

/// PutBucketVersioning with `status` (`Enabled` or `Suspended`).
fn set_versioning(moto: &MotoServer, bucket: &str, status: &str) {
    s3_request(
        moto,
        "PUT",
        &format!("/{bucket}?versioning"),
        &format!(
            r#"<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Status>{status}</Status></VersioningConfiguration>"#
        ),
    );
}

/// A loopback proxy in front of moto that fixes one answer: moto 5.2.5 names the root of its
/// GetBucketVersioning reply `GetBucketVersioningResponse` where S3 says
/// `VersioningConfiguration`, and minio-go (so Kopia) then cannot tell whether the bucket is
/// versioned. Everything else passes unchanged, one request per connection (moto closes each).
/// Returns the proxy's endpoint; it lives as long as the test process.
fn versioning_fix_proxy(moto: &MotoServer) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let endpoint = listener.local_addr().unwrap().to_string();
    let upstream = moto.endpoint();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let upstream = upstream.clone();
            std::thread::spawn(move || proxy_one(client, &upstream));
        }
    });
    endpoint
}

fn proxy_one(mut client: TcpStream, upstream: &str) {
    let mut request = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    let head_end = loop {
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        match client.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let body_length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while request.len() < head_end + body_length {
        match client.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buffer[..n]),
        }
    }
    let mut server = TcpStream::connect(upstream).expect("connect to moto");
    server.write_all(&request).expect("forward the request");
    let mut response = Vec::new();
    server
        .read_to_end(&mut response)
        .expect("read moto's answer");
    let request_line = head.lines().next().unwrap_or_default();
    if request_line.starts_with("GET ") && request_line.contains("?versioning") {
        response = fix_versioning_answer(&response);
    }
    let _ = client.write_all(&response);
}

/// The GetBucketVersioning answer with S3's root element and the matching Content-Length.
fn fix_versioning_answer(response: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let body = body.replace("GetBucketVersioningResponse", "VersioningConfiguration");
    let head: Vec<String> = head
        .lines()
        .map(|line| match line.split_once(':') {
            Some((name, _)) if name.eq_ignore_ascii_case("content-length") => {
                format!("{name}: {}", body.len())
            }
            _ => line.to_owned(),
        })
        .collect();
    format!("{}\r\n\r\n{body}", head.join("\r\n")).into_bytes()
}

/// How many object versions and delete markers the bucket holds: what a write would change.
fn version_counts(moto: &MotoServer, bucket: &str) -> (usize, usize) {
    let listing = s3_request(moto, "GET", &format!("/{bucket}?versions"), "");
    assert!(!listing.contains("<IsTruncated>true"), "{listing}");
    (
        listing.matches("<Version>").count(),
        listing.matches("<DeleteMarker>").count(),
    )
}

#[test]
fn a_point_in_time_connection_shows_the_past_and_is_never_written() {
    let Some(moto) = require_moto() else { return };
    let Some(kopia) = require_kopia() else { return };
    moto.create_bucket(BUCKET);
    enable_versioning(&moto, BUCKET);
    let endpoint = versioning_fix_proxy(&moto);
    let repo = KopiaRepo::create_on(&kopia, &s3_args(&endpoint, BUCKET));
    let history = write_history(&repo, kopia_notify);
    let live = repo.config_file();
    let (_, markers) = version_counts(&moto, BUCKET);
    assert!(markers > 0, "maintenance deleted no blob");

    let dir = tempfile::tempdir().unwrap();
    let (pit, connected) = connect_at(&kopia, &s3_args(&endpoint, BUCKET), &history.at, dir.path());
    assert!(connected.status.success(), "{connected:?}");
    // What Kopia shows of the past, we show, byte for byte.
    assert_view_shows_the_past(&kopia, &pit, &live, &history, kopia_notify);
    let current: serde_json::Value = serde_json::from_str(&stdout_ok(kopia_notify(
        &live,
        &["list", "--all", "--json"],
    )))
    .unwrap();
    assert_eq!(current.as_array().unwrap().len(), 2, "{current}");

    // Every write is refused before any request, with one line naming the config and T:
    // gc too, long after A expired (so that it has something to delete), and manifest put.
    let before = version_counts(&moto, BUCKET);
    assert_writes_refused(&pit, &history, kopia_notify);
    let payload = dir.path().join("payload.json");
    std::fs::write(&payload, "{}").unwrap();
    let payload_arg = format!("--file={}", payload.display());
    for args in [
        vec!["gc"],
        vec!["manifest", "put", "--label=type:x", &payload_arg],
    ] {
        let out = cli::command(env!("CARGO_BIN_EXE_kopia-notify"), &pit)
            .env("KOPIA_NOTIFY_NOW", "2100-01-01T00:00:00Z")
            .env("KOPIA_NOTIFICATIONS", "hidden")
            .args(&args)
            .output()
            .expect("run kopia-notify");
        assert_refused(&out, &args, &pit, &history.at);
    }
    assert_eq!(
        version_counts(&moto, BUCKET),
        before,
        "a refused write wrote"
    );

    assert_view_lists_once(&pit, &history.at);
}

#[test]
fn a_point_in_time_of_an_unversioned_bucket_is_refused_naming_the_bucket() {
    let Some(moto) = require_moto() else { return };
    let Some(kopia) = require_kopia() else { return };
    moto.create_bucket(BUCKET);
    let endpoint = versioning_fix_proxy(&moto);
    let repo = KopiaRepo::create_on(&kopia, &s3_args(&endpoint, BUCKET));
    let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let dir = tempfile::tempdir().unwrap();
    // Kopia refuses to connect so; a config that says it anyway is refused by us too.
    let (_, refused) = connect_at(&kopia, &s3_args(&endpoint, BUCKET), &at, dir.path());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("non-versioned bucket"), "{refused:?}");
    let pit = dir.path().join("unversioned.config");
    write_config_at(&repo.config_file(), &at, &pit);
    let before = version_counts(&moto, BUCKET);
    assert_store_refused(
        &kopia_notify(&pit, &["list"]),
        &[
            &format!("pointInTime {at} needs a versioned bucket"),
            &format!("bucket {BUCKET} of s3://{BUCKET}/{PREFIX}"),
        ],
    );
    assert_eq!(version_counts(&moto, BUCKET), before);

    // A moment before the repository existed shows no repository, said as such.
    enable_versioning(&moto, BUCKET);
    stdout_ok(kopia_notify(
        &repo.config_file(),
        &["send", "--title", "versioned now"],
    ));
    write_config_at(&repo.config_file(), "2001-01-01T00:00:00Z", &pit);
    let out = kopia_notify(&pit, &["list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("not a Kopia repository"), "{stderr}");
}

#[test]
fn a_point_in_time_of_a_bucket_with_suspended_versioning_is_refused_naming_the_bucket() {
    let Some(moto) = require_moto() else { return };
    let Some(kopia) = require_kopia() else { return };
    moto.create_bucket(BUCKET);
    enable_versioning(&moto, BUCKET);
    let endpoint = versioning_fix_proxy(&moto);
    let repo = KopiaRepo::create_on(&kopia, &s3_args(&endpoint, BUCKET));
    // Every object has a real version ID, but the bucket no longer keeps new ones.
    set_versioning(&moto, BUCKET, "Suspended");
    let status = s3_request(&moto, "GET", &format!("/{BUCKET}?versioning"), "");
    assert!(status.contains("<Status>Suspended</Status>"), "{status}");
    let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let dir = tempfile::tempdir().unwrap();
    let (_, refused) = connect_at(&kopia, &s3_args(&endpoint, BUCKET), &at, dir.path());
    assert!(!refused.status.success(), "{refused:?}");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&format!("non-versioned bucket '{BUCKET}'")),
        "{stderr}"
    );

    let pit = dir.path().join("suspended.config");
    write_config_at(&repo.config_file(), &at, &pit);
    let before = version_counts(&moto, BUCKET);
    assert_store_refused(
        &kopia_notify(&pit, &["list"]),
        &[
            &format!("pointInTime {at} needs a versioned bucket"),
            &format!(
                "bucket {BUCKET} of s3://{BUCKET}/{PREFIX} at {endpoint} has object versioning \
                 suspended"
            ),
        ],
    );
    assert_eq!(version_counts(&moto, BUCKET), before);
}
