//! An S3 bucket's versioning status (GetBucketVersioning), which a point-in-time view needs
//! as Kopia checks it (repo/blob/s3/s3_pit.go maybePointInTimeStore: the view is refused
//! unless minio-go's `Enabled()`, i.e. the status is `Enabled`; a bucket whose versioning was
//! suspended is refused too, as it may have overwritten versions since).
//!
//! OpenDAL 0.57 has no GetBucketVersioning, so this one request is signed here with
//! reqsign's AWS v4 signer, from the credential chain OpenDAL's s3 service builds for the
//! same config (opendal-service-s3 backend.rs build), sent with the config's TLS choices.

use reqsign_aws_v4::{
    AssumeRoleCredentialProvider, Credential, DefaultCredentialProvider, RequestSigner,
    StaticCredentialProvider,
};
use reqsign_core::{Context, OsEnv, ProvideCredentialChain, Signer};

use super::block_on;
use super::reqsign_http::ReqwestSend;
use super::s3::S3Config;
use crate::error::{Error, Result};

/// A bucket's versioning as GetBucketVersioning tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Versioning {
    Enabled,
    Suspended,
    /// No `<Status>`: versioning was never turned on.
    Never,
    /// A status S3 does not define, kept to be named in the refusal.
    Other(String),
}

impl Versioning {
    /// What the refusal says of a bucket with this status.
    pub fn described(&self) -> String {
        match self {
            Versioning::Enabled => "has object versioning enabled".to_string(),
            Versioning::Suspended => "has object versioning suspended".to_string(),
            Versioning::Never => "keeps no object versions".to_string(),
            Versioning::Other(status) => format!("has object versioning status {status:?}"),
        }
    }
}

/// The status of a GetBucketVersioning answer: the text of its `<Status>` element. The root
/// element is not checked (moto 5.2 names it `GetBucketVersioningResponse`, S3
/// `VersioningConfiguration`); an answer that is no XML at all is an error.
pub(super) fn parse_versioning(xml: &str) -> std::result::Result<Versioning, String> {
    if !xml.trim_start().starts_with('<') {
        let start: String = xml.chars().take(200).collect();
        return Err(format!("not a GetBucketVersioning answer: {start:?}"));
    }
    let Some((_, after)) = xml.split_once("<Status>") else {
        return Ok(Versioning::Never);
    };
    let status = after
        .split_once("</Status>")
        .map(|(status, _)| status.trim())
        .ok_or_else(|| "an unterminated <Status> in the GetBucketVersioning answer".to_string())?;
    Ok(match status {
        "Enabled" => Versioning::Enabled,
        "Suspended" => Versioning::Suspended,
        "" => Versioning::Never,
        other => Versioning::Other(other.to_string()),
    })
}

/// `GET /<bucket>?versioning`, addressed as the operator addresses the bucket
/// (virtual-hosted or path style, [`S3Config::virtual_host_style`]).
fn versioning_url(config: &S3Config) -> String {
    let endpoint = config.endpoint_url();
    if config.virtual_host_style() {
        let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", &endpoint));
        format!("{scheme}://{}.{host}/?versioning", config.bucket)
    } else {
        format!("{endpoint}/{}?versioning", config.bucket)
    }
}

/// The signer for `config` in `region`, with OpenDAL's chain for the same config: the static
/// keys first when there are any (and then no environment, profile or instance metadata, as
/// s3.rs configures OpenDAL), else AWS's default chain; an assumed role on top of either.
fn signer(config: &S3Config, region: &str, http: reqwest::Client) -> Signer<Credential> {
    let context = Context::new()
        .with_file_read(reqsign_file_read_tokio::TokioFileRead)
        .with_http_send(ReqwestSend(http))
        .with_env(OsEnv);
    let static_keys = !config.access_key_id.is_empty();
    let mut defaults = DefaultCredentialProvider::builder();
    if static_keys {
        defaults = defaults.no_env().no_profile().no_imds();
    }
    let mut chain = ProvideCredentialChain::new().push(defaults.build());
    if let (true, Some(secret)) = (static_keys, &config.secret_access_key) {
        let mut keys = StaticCredentialProvider::new(&config.access_key_id, secret.expose());
        if let Some(token) = &config.session_token {
            keys = keys.with_session_token(token.expose());
        }
        chain = chain.push_front(keys);
    }
    if !config.role_arn.is_empty() {
        let sts = Signer::new(context.clone(), chain, RequestSigner::new("sts", region));
        let mut role = AssumeRoleCredentialProvider::new(config.role_arn.clone(), sts)
            .with_region(region.to_string())
            .with_regional_sts_endpoint();
        if !config.session_name.is_empty() {
            role = role.with_role_session_name(config.session_name.clone());
        }
        if let Some(seconds) = config
            .role_duration
            .as_ref()
            .and_then(super::s3::duration_seconds)
        {
            role = role.with_duration_seconds(seconds);
        }
        chain = ProvideCredentialChain::new().push(role);
    }
    Signer::new(context, chain, RequestSigner::new("s3", region))
}

/// The bucket's versioning, asked of the server once (no retries: a refusal names the bucket
/// and the caller reports it).
pub(super) fn bucket_versioning(
    config: &S3Config,
    region: &str,
    http: reqwest::Client,
) -> Result<Versioning> {
    let failed = |reason: String| Error::StorageRequest {
        storage: config.describe(),
        operation: "get bucket versioning".to_string(),
        reason,
    };
    let signer = signer(config, region, http.clone());
    let url = versioning_url(config);
    let answer = block_on(async move {
        let (mut parts, ()) = http::Request::get(&url)
            .body(())
            .map_err(|e| (None, e.to_string()))?
            .into_parts();
        signer
            .sign(&mut parts, None)
            .await
            .map_err(|e| (Some(401), format!("no AWS credential: {e}")))?;
        let request =
            reqwest::Request::try_from(http::Request::from_parts(parts, Vec::<u8>::new()))
                .map_err(|e| (None, e.to_string()))?;
        let answer = http
            .execute(request)
            .await
            .map_err(|e| (None, e.to_string()))?;
        let status = answer.status().as_u16();
        let body = answer.text().await.map_err(|e| (None, e.to_string()))?;
        Ok::<_, (Option<u16>, String)>((status, body))
    });
    match answer {
        Ok((200, body)) => parse_versioning(&body).map_err(failed),
        Ok((status @ (401 | 403), body)) => Err(Error::StorageAccessDenied {
            storage: config.describe(),
            reason: format!(
                "HTTP {status} for GetBucketVersioning: {}",
                s3_message(&body)
            ),
        }),
        Ok((status, body)) => Err(failed(format!("HTTP {status}: {}", s3_message(&body)))),
        Err((Some(401), reason)) => Err(Error::StorageAccessDenied {
            storage: config.describe(),
            reason,
        }),
        Err((_, reason)) => Err(failed(reason)),
    }
}

/// The `<Message>` of an S3 error answer, else its start.
fn s3_message(body: &str) -> String {
    body.split_once("<Message>")
        .and_then(|(_, after)| after.split_once("</Message>"))
        .map(|(message, _)| message.to_string())
        .unwrap_or_else(|| body.chars().take(200).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_read_as_minio_reads_it() {
        let answer = |status: &str| {
            format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<VersioningConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{status}</VersioningConfiguration>"#
            )
        };
        let parsed = |text: &str| parse_versioning(text).unwrap();
        assert_eq!(
            parsed(&answer("<Status>Enabled</Status>")),
            Versioning::Enabled
        );
        assert_eq!(
            parsed(&answer(
                "<Status>Suspended</Status><MfaDelete>Disabled</MfaDelete>"
            )),
            Versioning::Suspended
        );
        assert_eq!(parsed(&answer("")), Versioning::Never);
        assert_eq!(
            parsed(&answer("<Status>Paused</Status>")),
            Versioning::Other("Paused".to_string())
        );
        // moto 5.2's root element: the status is what counts.
        assert_eq!(
            parsed("<GetBucketVersioningResponse><Status>Suspended</Status></GetBucketVersioningResponse>"),
            Versioning::Suspended
        );
        assert!(parse_versioning("Service Unavailable").is_err());
        assert!(parse_versioning("<VersioningConfiguration><Status>Enab").is_err());
    }

    #[test]
    fn the_request_addresses_the_bucket_as_the_operator_does() {
        let config = |json| S3Config::from_json(&json).unwrap();
        assert_eq!(
            versioning_url(&config(serde_json::json!({"bucket": "backups"}))),
            "https://backups.s3.amazonaws.com/?versioning"
        );
        assert_eq!(
            versioning_url(&config(serde_json::json!({
                "bucket": "backups", "endpoint": "127.0.0.1:9000", "doNotUseTLS": true
            }))),
            "http://127.0.0.1:9000/backups?versioning"
        );
    }

    #[test]
    fn error_answers_are_named_by_their_message() {
        let body = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
        assert_eq!(s3_message(body), "Access Denied");
        assert_eq!(s3_message("gateway timeout"), "gateway timeout");
    }
}
