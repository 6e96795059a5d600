//! Network backends (feature `network`): object stores through OpenDAL. The rest of the crate
//! only sees [`super::BlobReader`]/[`super::BlobWriter`]; the async client lives here, on a
//! runtime of its own, so the synchronous trait works from plain threads, from tokio's
//! blocking pool and even (at the cost of a blocked worker) from inside an async task.

pub mod azure;
pub mod azure_certificate;
pub mod azure_entra;
pub mod azure_list;
pub mod azure_pit;
pub mod b2;
pub mod gcs;
mod gcs_json;
pub mod gcs_pit;
pub mod object;
pub mod pinning;
mod range;
pub mod rclone;
mod reqsign_http;
pub mod s3;
pub mod s3_pit;
mod s3_versioning;
pub mod sftp;
pub mod tree;
pub mod webdav;

use std::future::Future;
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use opendal::layers::{RetryLayer, TimeoutLayer};

use crate::error::Error;
use crate::storage::BlobMetadata;

/// How long one request may take before it counts as failed (and is retried): Kopia's
/// retrying wrapper has no per-request limit, but a hung connection must not hang a refresh.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a read or write may stall between two chunks of a body.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// Transient failures (5xx, 429, resets, timeouts) are retried this many times, with
/// exponential backoff and jitter between 200 ms and 5 s; authentication failures never.
const RETRIES: usize = 5;
const RETRY_MIN_DELAY: Duration = Duration::from_millis(200);
const RETRY_MAX_DELAY: Duration = Duration::from_secs(5);

/// The runtime every network backend's requests run on. Two workers are plenty: requests wait
/// on the network, and the callers' threads (eight parallel reads) only wait for answers.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        // OpenDAL builds its default HTTP client lazily, inside the first request.
        install_tls_provider();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("kopia-storage")
            .enable_all()
            .build()
            .expect("a tokio runtime for storage requests can be built")
    })
}

/// reqwest is built without a default TLS provider: rustls with ring, installed once for the
/// process unless the application chose one already.
pub(crate) fn install_tls_provider() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Runs `future` on the storage runtime and waits for it. The wait is a plain channel receive,
/// not `block_on`, so it is allowed in any thread, inside an async context or not.
pub(crate) fn block_on<F>(future: F) -> F::Output
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (sender, receiver) = mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = sender.send(future.await);
    });
    receiver
        .recv()
        .expect("the storage runtime outlives every request")
}

/// An operator for `builder` over `http`, with the layers every backend gets: timeouts inside
/// retries, so a timed-out attempt is retried.
pub(crate) fn operator<B: opendal::Builder>(
    builder: B,
    http: Option<reqwest::Client>,
) -> opendal::Result<opendal::Operator> {
    // OpenDAL's default HTTP client is built with the operator: the provider comes first.
    install_tls_provider();
    let mut operator = opendal::Operator::new(builder)?.finish();
    if let Some(client) = http {
        operator = operator.layer(opendal::layers::HttpClientLayer::new(
            opendal::raw::HttpClient::with(client),
        ));
    }
    Ok(operator
        .layer(
            TimeoutLayer::new()
                .with_timeout(REQUEST_TIMEOUT)
                .with_io_timeout(IO_TIMEOUT),
        )
        .layer(
            RetryLayer::new()
                .with_jitter()
                .with_min_delay(RETRY_MIN_DELAY)
                .with_max_delay(RETRY_MAX_DELAY)
                .with_max_times(RETRIES)
                .with_notify(RetryLog),
        ))
}

/// Logs each retry without the error's context: OpenDAL's default logger prints it whole, and
/// the context holds the request URL, where some credentials travel (Azure SAS signatures).
struct RetryLog;

impl opendal::layers::RetryInterceptor for RetryLog {
    fn intercept(&self, event: opendal::layers::RetryEvent<'_>) {
        tracing::warn!(
            operation = ?event.op,
            attempt = event.attempt,
            retry_after = ?event.retry_after,
            "storage request failed ({}: {}), retrying",
            event.err.kind(),
            event.err.message()
        );
    }
}

/// A blob as an OpenDAL listing shows it: its length and modification time (the epoch where
/// the store gives none).
pub(crate) fn listed_blob(id: &str, metadata: &opendal::Metadata) -> BlobMetadata {
    let modified = metadata
        .last_modified()
        .map_or(SystemTime::UNIX_EPOCH, SystemTime::from);
    BlobMetadata {
        id: id.to_string(),
        length: metadata.content_length(),
        timestamp: DateTime::<Utc>::from(modified),
    }
}

/// Percent-encoding of a URL path segment or query value: every byte but RFC 3986's unreserved
/// characters and those in `keep` becomes `%XX`.
pub(crate) fn percent_encode(text: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) || keep.contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// An error's message with its causes after it: reqwest keeps them out of its own message, and
/// "error sending request" alone says nothing.
pub(crate) fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Turns an OpenDAL error of `operation` on `storage` into the crate's: a missing object is
/// [`Error::BlobNotFound`], a refused credential [`Error::StorageAccessDenied`] (both name the
/// store), anything else [`Error::StorageRequest`].
pub(crate) fn request_error(
    storage: &str,
    operation: &str,
    blob_id: Option<&str>,
    error: opendal::Error,
) -> Error {
    match error.kind() {
        opendal::ErrorKind::NotFound if blob_id.is_some() => Error::BlobNotFound {
            blob_id: blob_id.unwrap_or_default().to_string(),
            storage: storage.to_string(),
        },
        opendal::ErrorKind::PermissionDenied => Error::StorageAccessDenied {
            storage: storage.to_string(),
            reason: error.to_string(),
        },
        _ => Error::StorageRequest {
            storage: storage.to_string(),
            operation: match blob_id {
                Some(id) => format!("{operation} {id}"),
                None => operation.to_string(),
            },
            reason: error.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_on_works_from_plain_threads_and_inside_async_contexts() {
        assert_eq!(block_on(async { 1 + 1 }), 2);
        // A caller that is itself a tokio worker (the app's engine) must not panic.
        let other = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        assert_eq!(other.block_on(async { block_on(async { 3 }) }), 3);
        let threads: Vec<_> = (0..8)
            .map(|i| std::thread::spawn(move || block_on(async move { i * 2 })))
            .collect();
        let results: Vec<i32> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        assert_eq!(results, vec![0, 2, 4, 6, 8, 10, 12, 14]);
    }

    #[test]
    fn errors_name_the_store_and_the_blob() {
        let not_found = opendal::Error::new(opendal::ErrorKind::NotFound, "no such key");
        match request_error("s3://b/p", "get", Some("xe0"), not_found) {
            Error::BlobNotFound { blob_id, storage } => {
                assert_eq!((blob_id.as_str(), storage.as_str()), ("xe0", "s3://b/p"))
            }
            other => panic!("unexpected {other:?}"),
        }
        let denied =
            opendal::Error::new(opendal::ErrorKind::PermissionDenied, "InvalidAccessKeyId");
        let message = request_error("s3://b/p", "list", None, denied).to_string();
        assert!(
            message.starts_with("access to s3://b/p denied")
                && message.contains("InvalidAccessKeyId"),
            "{message}"
        );
        let other = opendal::Error::new(opendal::ErrorKind::Unexpected, "503 SlowDown");
        let message = request_error("s3://b/p", "put", Some("q1"), other).to_string();
        assert!(
            message.starts_with("put q1 on s3://b/p failed"),
            "{message}"
        );
    }
}
