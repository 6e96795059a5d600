//! Kopia's `s3` storage (repo/blob/s3): AWS S3 and every S3-compatible server (MinIO, Wasabi,
//! R2, Storj, moto…). Reads the keys Kopia writes in `storage.config` and ignores the others;
//! the objects are laid out as [`ObjectStorage`] says.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::object::ObjectStorage;
use super::operator;
use super::s3_pit::PointInTimeStorage;
use super::s3_versioning::bucket_versioning;
use crate::client::Password;
use crate::error::{Error, Result};
use crate::storage::factory::Access;
use crate::storage::{point_in_time, Storage};

/// S3's own object under the prefix: per-prefix storage classes (Kopia's `ConfigName`).
const STORAGE_CONFIG_OBJECT: &str = ".storageconfig";
/// Kopia's CLI default endpoint.
const DEFAULT_ENDPOINT: &str = "s3.amazonaws.com";
/// The region signed requests name when none is configured and none can be found.
const FALLBACK_REGION: &str = "us-east-1";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The region lookup is one small request; a server that does not answer it in time gets the
/// fallback region, and the reads that follow report what is wrong.
const REGION_LOOKUP_TIMEOUT: Duration = Duration::from_secs(15);

/// `storage.config` of an `s3` storage (Kopia's s3.Options). Secrets are [`Password`]s, so
/// `Debug` never shows them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct S3Config {
    #[serde(rename = "bucket")]
    pub bucket: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub endpoint: String,
    #[serde(rename = "doNotUseTLS", default)]
    pub do_not_use_tls: bool,
    #[serde(rename = "doNotVerifyTLS", default)]
    pub do_not_verify_tls: bool,
    /// PEM bytes (Go's []byte: base64 in the JSON).
    #[serde(rename = "rootCA", default, deserialize_with = "base64_bytes")]
    pub root_ca: Vec<u8>,
    #[serde(rename = "accessKeyID", default)]
    pub access_key_id: String,
    #[serde(default, deserialize_with = "secret")]
    pub secret_access_key: Option<Password>,
    #[serde(default, deserialize_with = "secret")]
    pub session_token: Option<Password>,
    #[serde(rename = "roleARN", default)]
    pub role_arn: String,
    #[serde(default)]
    pub session_name: String,
    /// Go's time.Duration as Kopia's jsonencoding writes it ("1h0m0s") or nanoseconds.
    #[serde(rename = "duration", default)]
    pub role_duration: Option<serde_json::Value>,
    #[serde(default)]
    pub region: String,
    /// A read-only view of the bucket as it was then (Kopia's `--point-in-time`).
    #[serde(default, deserialize_with = "point_in_time::deserialize")]
    pub point_in_time: Option<DateTime<Utc>>,
}

fn base64_bytes<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Vec<u8>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?.unwrap_or_default();
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(serde::de::Error::custom)
}

/// A secret string of a storage config; empty is none. Shared by the object-store backends.
pub(super) fn secret<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> std::result::Result<Option<Password>, D::Error> {
    Ok(Option::<String>::deserialize(deserializer)?
        .filter(|s| !s.is_empty())
        .map(Password::new))
}

impl S3Config {
    pub fn from_json(config: &serde_json::Value) -> std::result::Result<Self, String> {
        let parsed = S3Config::deserialize(config).map_err(|e| e.to_string())?;
        if parsed.bucket.is_empty() {
            return Err("no bucket".to_string());
        }
        Ok(parsed)
    }

    /// `host[:port]`, Kopia's default when unset.
    fn endpoint_host(&self) -> &str {
        let endpoint = self.endpoint.trim_end_matches('/');
        if endpoint.is_empty() {
            DEFAULT_ENDPOINT
        } else {
            endpoint
        }
    }

    pub fn endpoint_url(&self) -> String {
        let scheme = if self.do_not_use_tls { "http" } else { "https" };
        format!("{scheme}://{}", self.endpoint_host())
    }

    /// minio-go's automatic bucket lookup, which Kopia uses: virtual-hosted style
    /// (`bucket.host`) on AWS and Aliyun endpoints when the bucket name allows it (no dots
    /// under TLS, the certificate would not match), path style everywhere else.
    pub fn virtual_host_style(&self) -> bool {
        let host = self
            .endpoint_host()
            .rsplit_once(':')
            .map_or(self.endpoint_host(), |(host, _)| host);
        let vendor = host == "s3.amazonaws.com"
            || host.ends_with(".amazonaws.com")
            || host.ends_with(".amazonaws.com.cn")
            || host.ends_with(".aliyuncs.com");
        let dns_compatible = self
            .bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        vendor && dns_compatible && (self.do_not_use_tls || !self.bucket.contains('.'))
    }

    /// What messages call this store: Kopia's `s3://bucket/prefix` plus the endpoint.
    pub fn describe(&self) -> String {
        format!(
            "s3://{}/{} at {}",
            self.bucket,
            self.prefix,
            self.endpoint_host()
        )
    }
}

/// Opens an existing S3 repository location with the capability `access` allows.
pub fn open(config: &serde_json::Value, access: Access) -> Result<Storage> {
    let invalid = |reason: String| Error::InvalidStorageConfig {
        kind: "s3".to_string(),
        reason,
    };
    let config = S3Config::from_json(config).map_err(invalid)?;
    // One client for every request of this store, the region lookup's too: that then honours
    // `rootCA` and `doNotVerifyTLS`, and its connection (TLS session included) serves the first
    // read instead of being thrown away.
    let http = http_client(&config).map_err(invalid)?;
    let region = match config.region.as_str() {
        "" => detect_region(&http, &config),
        region => region.to_string(),
    };
    let operator = build_operator(&config, &region, http.clone()).map_err(invalid)?;
    let storage = ObjectStorage::new(
        operator,
        &config.prefix,
        &[STORAGE_CONFIG_OBJECT],
        config.describe(),
    );
    if let Some(at) = config.point_in_time {
        let view = PointInTimeStorage::new(storage, at);
        let versioning = bucket_versioning(&config, &region, http)?;
        view.require_versioned_bucket(&config.bucket, &versioning)?;
        // Read-only whatever the connection asks, as Kopia wraps the view in its read-only
        // storage (repo/blob/readonly): the past cannot be written.
        return Ok(Storage::read_only(Arc::new(view)));
    }
    let storage = Arc::new(storage);
    Ok(match access {
        Access::ReadWrite => Storage::read_write(storage),
        Access::ReadOnly => Storage::read_only(storage),
    })
}

fn build_operator(
    config: &S3Config,
    region: &str,
    http: reqwest::Client,
) -> std::result::Result<opendal::Operator, String> {
    let endpoint = config.endpoint_url();
    let mut builder = opendal::services::S3::default()
        .root("/")
        .bucket(&config.bucket)
        .endpoint(&endpoint)
        .region(region);
    if config.virtual_host_style() {
        builder = builder.enable_virtual_host_style();
    }
    if !config.access_key_id.is_empty() {
        // Static keys win, as in Kopia's credential chain; the environment is only asked
        // when the config has none.
        builder = builder
            .access_key_id(&config.access_key_id)
            .disable_config_load()
            .disable_ec2_metadata();
        if let Some(secret) = &config.secret_access_key {
            builder = builder.secret_access_key(secret.expose());
        }
        if let Some(token) = &config.session_token {
            builder = builder.session_token(token.expose());
        }
    }
    if !config.role_arn.is_empty() {
        builder = builder.role_arn(&config.role_arn);
        if !config.session_name.is_empty() {
            builder = builder.role_session_name(&config.session_name);
        }
        if let Some(seconds) = config.role_duration.as_ref().and_then(duration_seconds) {
            builder = builder.assume_role_duration_seconds(seconds);
        }
    }
    operator(builder, Some(http)).map_err(|e| e.to_string())
}

/// The HTTP client with Kopia's TLS choices: no verification at all (`doNotVerifyTLS`), or
/// only the configured root CA (`rootCA`), or the system's roots.
fn http_client(config: &S3Config) -> std::result::Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().connect_timeout(CONNECT_TIMEOUT);
    if config.do_not_use_tls {
        // Plain HTTP never verifies a certificate: no need to load the system's roots.
        builder = builder.tls_certs_only([]);
    } else if config.do_not_verify_tls {
        builder = builder.tls_danger_accept_invalid_certs(true);
    } else if !config.root_ca.is_empty() {
        let certificates = reqwest::Certificate::from_pem_bundle(&config.root_ca)
            .map_err(|e| format!("cannot parse the rootCA certificate: {e}"))?;
        if certificates.is_empty() {
            return Err("the rootCA holds no PEM certificate".to_string());
        }
        builder = builder.tls_certs_only(certificates);
    }
    super::install_tls_provider();
    builder.build().map_err(|e| e.to_string())
}

/// The bucket's region (AWS needs the right one in every signature), as OpenDAL's
/// `S3::detect_region` finds it but over this store's own client, so that `rootCA` and
/// `doNotVerifyTLS` hold for it too: known endpoints name it (R2, `s3.<region>.amazonaws.com`,
/// Alibaba OSS), else a HEAD of the bucket answers `x-amz-bucket-region` whatever its status.
/// Other servers accept Kopia's default.
fn detect_region(http: &reqwest::Client, config: &S3Config) -> String {
    let endpoint = config.endpoint_url();
    if let Some(region) = region_of_endpoint(&endpoint) {
        return region;
    }
    let url = format!("{}/{}", endpoint.trim_end_matches('/'), config.bucket);
    let request = http.head(url).timeout(REGION_LOOKUP_TIMEOUT);
    let answer = super::block_on(async move { request.send().await });
    let header = |answer: &reqwest::Response| {
        let region = answer.headers().get("x-amz-bucket-region")?.to_str().ok()?;
        Some(region.to_string())
    };
    match answer {
        Ok(answer) => header(&answer),
        Err(error) => {
            tracing::debug!(storage = %config.describe(), %error, "bucket region lookup failed");
            None
        }
    }
    .unwrap_or_else(|| FALLBACK_REGION.to_string())
}

/// The region an endpoint URL names by itself, if any.
fn region_of_endpoint(endpoint: &str) -> Option<String> {
    let endpoint = endpoint.trim_end_matches('/');
    if endpoint.ends_with("r2.cloudflarestorage.com") {
        return Some("auto".to_string());
    }
    let host = endpoint.strip_prefix("https://")?;
    if host == "s3.amazonaws.com" {
        return Some(FALLBACK_REGION.to_string());
    }
    if let Some(region) = host
        .strip_prefix("s3.")
        .and_then(|v| v.strip_suffix(".amazonaws.com"))
    {
        return Some(region.to_string());
    }
    host.strip_suffix("-internal.aliyuncs.com")
        .or_else(|| host.strip_suffix(".aliyuncs.com"))
        .map(str::to_string)
}

/// Seconds of a Go duration in Kopia's JSON: a string like "1h30m0s" or nanoseconds.
pub(super) fn duration_seconds(value: &serde_json::Value) -> Option<u32> {
    if let Some(nanoseconds) = value.as_u64() {
        return u32::try_from(nanoseconds / 1_000_000_000).ok();
    }
    let text = value.as_str()?;
    let mut total = 0f64;
    let mut number = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        let unit = match (c, chars.peek()) {
            ('h', _) => 3600.0,
            ('m', Some('s')) => {
                chars.next();
                0.001
            }
            ('m', _) => 60.0,
            ('s', _) => 1.0,
            _ => return None,
        };
        total += value * unit;
    }
    number.is_empty().then_some(total as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> S3Config {
        S3Config::from_json(&json).unwrap()
    }

    #[test]
    fn reads_kopia_keys_and_ignores_others() {
        let pem = b"-----BEGIN CERTIFICATE-----\n";
        let config = parse(serde_json::json!({
            "bucket": "backups", "prefix": "host1-", "endpoint": "127.0.0.1:9000",
            "doNotUseTLS": true, "doNotVerifyTLS": false,
            "rootCA": base64::engine::general_purpose::STANDARD.encode(pem),
            "accessKeyID": "AKIA", "secretAccessKey": "s3cr3t", "sessionToken": "",
            "region": "eu-west-1", "webIdentityToken": "future key", "maxUploadSpeedBytesPerSecond": 0
        }));
        assert_eq!(config.bucket, "backups");
        assert_eq!(config.prefix, "host1-");
        assert_eq!(config.endpoint_url(), "http://127.0.0.1:9000");
        assert_eq!(config.root_ca, pem);
        assert_eq!(
            config.secret_access_key.as_ref().unwrap().expose(),
            "s3cr3t"
        );
        assert!(config.session_token.is_none());
        assert_eq!(config.region, "eu-west-1");
        assert!(!format!("{config:?}").contains("s3cr3t"));
        assert_eq!(config.describe(), "s3://backups/host1- at 127.0.0.1:9000");

        let minimal = parse(serde_json::json!({"bucket": "b"}));
        assert_eq!(minimal.endpoint_url(), "https://s3.amazonaws.com");
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"bucket": ""}),
            serde_json::json!({"bucket": "b", "rootCA": "not base64!"}),
            serde_json::json!({"bucket": "b", "doNotUseTLS": "yes"}),
        ] {
            assert!(S3Config::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bucket_lookup_follows_minio_auto() {
        let style = |endpoint: &str, bucket: &str, no_tls: bool| {
            S3Config {
                bucket: bucket.into(),
                endpoint: endpoint.into(),
                do_not_use_tls: no_tls,
                ..S3Config::default()
            }
            .virtual_host_style()
        };
        assert!(style("s3.amazonaws.com", "backups", false));
        assert!(style("s3.eu-west-1.amazonaws.com", "backups", false));
        assert!(style("", "backups", false));
        assert!(style("oss-cn-hangzhou.aliyuncs.com", "b", false));
        // Dotted buckets under TLS, odd names and every other server: path style.
        assert!(!style("s3.amazonaws.com", "my.backups", false));
        assert!(style("s3.amazonaws.com", "my.backups", true));
        assert!(!style("s3.amazonaws.com", "Upper_Case", false));
        assert!(!style("127.0.0.1:9000", "backups", true));
        assert!(!style("s3.wasabisys.com", "backups", false));
        assert!(!style("minio.example.com:443", "backups", false));
    }

    #[test]
    fn role_durations_in_go_form() {
        let seconds = |v: serde_json::Value| duration_seconds(&v);
        assert_eq!(seconds(serde_json::json!("1h0m0s")), Some(3600));
        assert_eq!(seconds(serde_json::json!("15m")), Some(900));
        assert_eq!(seconds(serde_json::json!("1h30m15s")), Some(5415));
        assert_eq!(seconds(serde_json::json!(900_000_000_000u64)), Some(900));
        assert_eq!(seconds(serde_json::json!("soon")), None);
        assert_eq!(seconds(serde_json::json!("15")), None);
    }

    #[test]
    fn refused_configs_name_s3() {
        // A malformed point in time is refused before any request.
        let err = open(
            &serde_json::json!({"bucket": "b", "pointInTime": "yesterday"}),
            Access::ReadOnly,
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("invalid s3 storage config: pointInTime \"yesterday\""),
            "{message}"
        );
        let at = parse(serde_json::json!({"bucket": "b", "pointInTime": "2026-01-01T00:00:00Z"}));
        assert_eq!(
            at.point_in_time.map(|t| t.to_rfc3339()),
            Some("2026-01-01T00:00:00+00:00".to_string())
        );
        let err = open(&serde_json::json!({"prefix": "p"}), Access::ReadOnly).unwrap_err();
        assert!(matches!(err, Error::InvalidStorageConfig { ref kind, .. } if kind == "s3"));
        let bad_ca = serde_json::json!({"bucket": "b", "endpoint": "127.0.0.1:1",
            "region": "us-east-1", "rootCA": base64::engine::general_purpose::STANDARD.encode("junk")});
        let err = open(&bad_ca, Access::ReadOnly).unwrap_err();
        assert!(err.to_string().contains("rootCA"), "{err}");
    }

    #[test]
    fn endpoints_that_name_their_region() {
        let cases = [
            ("https://s3.amazonaws.com", Some("us-east-1")),
            (
                "https://s3.eu-central-1.amazonaws.com/",
                Some("eu-central-1"),
            ),
            ("https://acct.r2.cloudflarestorage.com", Some("auto")),
            (
                "https://oss-cn-hangzhou-internal.aliyuncs.com",
                Some("oss-cn-hangzhou"),
            ),
            (
                "https://oss-ap-southeast-1.aliyuncs.com",
                Some("oss-ap-southeast-1"),
            ),
            ("https://s3.us-west-004.backblazeb2.com", None),
            ("http://127.0.0.1:9000", None),
        ];
        for (endpoint, region) in cases {
            assert_eq!(
                region_of_endpoint(endpoint).as_deref(),
                region,
                "{endpoint}"
            );
        }
    }
}
