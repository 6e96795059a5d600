//! Kopia's `azureBlob` storage (repo/blob/azure): a container of Azure Blob Storage. Reads the
//! keys Kopia writes in `storage.config` and ignores the others; the objects are laid out as
//! [`ObjectStorage`] says (`<prefix><blob ID>`, azure_storage.go getObjectNameString).
//!
//! The service is `<scheme>://<storageAccount>.<storageDomain>` exactly as Kopia concatenates it
//! (azure_storage.go New, getAZService): `storageDomain` defaults to `blob.core.windows.net`
//! and `doNotUseTLS` picks plain HTTP. Credentials in Kopia's order: the SAS token, else the
//! account key, else an Entra ID service principal with a client secret, a client certificate
//! (PEM, see [`super::azure_certificate`]) or a federated token file (bearer tokens, see
//! [`super::azure_entra`]).
//!
//! `pointInTime` opens the read-only view of [`super::azure_pit`]. Reads and writes go
//! through OpenDAL; listings through [`super::azure_list`], which asks for
//! the metadata OpenDAL's lister leaves out: Kopia stores `Kopiamtime` when `repository
//! sync-to --times` copies blobs and prefers it to Last-Modified.

use std::sync::Arc;

use serde::Deserialize;

use super::azure_certificate::ClientCertificate;
use super::azure_entra::{self, BearerFetch, PrincipalSecret, ServicePrincipal};
use super::azure_list::{Authorization, AzureStorage, Container};
use super::azure_pit::AzurePointInTime;
use super::object::ObjectStorage;
use super::operator;
use super::s3::secret;
use crate::client::Password;
use crate::error::{Error, Result};
use crate::storage::factory::Access;
use crate::storage::Storage;

const KIND: &str = "azureBlob";
/// Kopia's default when `storageDomain` is empty.
const DEFAULT_DOMAIN: &str = "blob.core.windows.net";

/// `storage.config` of an `azureBlob` storage (Kopia's azure.Options). The service-principal
/// fields carry Go's field names, as Kopia writes them; secrets are [`Password`]s.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AzureConfig {
    pub container: String,
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub storage_account: String,
    #[serde(default, deserialize_with = "secret")]
    pub storage_key: Option<Password>,
    #[serde(default, deserialize_with = "secret")]
    pub sas_token: Option<Password>,
    #[serde(rename = "TenantID", alias = "tenantID", default)]
    pub tenant_id: String,
    #[serde(rename = "ClientID", alias = "clientID", default)]
    pub client_id: String,
    #[serde(
        rename = "ClientSecret",
        alias = "clientSecret",
        default,
        deserialize_with = "secret"
    )]
    pub client_secret: Option<Password>,
    #[serde(default, deserialize_with = "secret")]
    pub client_certificate: Option<Password>,
    #[serde(default)]
    pub azure_federated_token_file: String,
    #[serde(default)]
    pub storage_domain: String,
    #[serde(rename = "doNotUseTLS", default)]
    pub do_not_use_tls: bool,
    /// Kopia's point-in-time view: read-only, from the blob versions (see [`super::azure_pit`]).
    #[serde(
        default,
        deserialize_with = "crate::storage::point_in_time::deserialize"
    )]
    pub point_in_time: Option<chrono::DateTime<chrono::Utc>>,
}

/// How requests are authorized, in Kopia's order of preference (getAZService).
#[derive(Debug)]
enum Credential<'a> {
    SasToken(&'a str),
    SharedKey(&'a str),
    /// An Entra ID service principal with its secret, certificate or federated token file.
    ServicePrincipal(PrincipalSecret),
}

impl AzureConfig {
    pub fn from_json(config: &serde_json::Value) -> std::result::Result<Self, String> {
        let parsed = AzureConfig::deserialize(config).map_err(|e| e.to_string())?;
        if parsed.container.is_empty() {
            return Err("no container".to_string());
        }
        Ok(parsed)
    }

    /// `<account>.<domain>`: Kopia concatenates, so the domain may carry a port or a path.
    pub fn host(&self) -> String {
        let domain = match self.storage_domain.as_str() {
            "" => DEFAULT_DOMAIN,
            domain => domain,
        };
        format!("{}.{domain}", self.storage_account)
    }

    pub fn endpoint_url(&self) -> String {
        let scheme = if self.do_not_use_tls { "http" } else { "https" };
        format!("{scheme}://{}", self.host())
    }

    /// What messages call this store: container and prefix, then the account's service.
    pub fn describe(&self) -> String {
        format!(
            "azure://{}/{} (account {} at {})",
            self.container,
            self.prefix,
            self.storage_account,
            self.host()
        )
    }

    fn credential(&self) -> std::result::Result<Credential<'_>, String> {
        let principal = !self.tenant_id.is_empty() && !self.client_id.is_empty();
        if let Some(token) = &self.sas_token {
            Ok(Credential::SasToken(token.expose().trim_start_matches('?')))
        } else if let Some(key) = &self.storage_key {
            Ok(Credential::SharedKey(key.expose()))
        } else if let (true, Some(secret)) = (principal, &self.client_secret) {
            Ok(Credential::ServicePrincipal(PrincipalSecret::ClientSecret(
                secret.clone(),
            )))
        } else if let (true, Some(pem)) = (principal, &self.client_certificate) {
            let certificate =
                ClientCertificate::from_pem(pem.expose()).map_err(|e| e.to_string())?;
            Ok(Credential::ServicePrincipal(
                PrincipalSecret::ClientCertificate(Arc::new(certificate)),
            ))
        } else if principal && !self.azure_federated_token_file.is_empty() {
            Ok(Credential::ServicePrincipal(
                PrincipalSecret::FederatedTokenFile(self.azure_federated_token_file.clone().into()),
            ))
        } else {
            Err(
                "one of storageKey, sasToken, ClientSecret, clientCertificate or \
                 azureFederatedTokenFile must be set"
                    .to_string(),
            )
        }
    }
}

/// The `sig` parameter of a SAS token: the part that must never appear in a message (OpenDAL
/// puts the request URL into connection errors).
fn sas_signature(token: &str) -> Option<&str> {
    token
        .split('&')
        .find_map(|pair| pair.strip_prefix("sig="))
        .filter(|sig| !sig.is_empty())
}

/// Opens an existing Azure Blob repository location with the capability `access` allows.
pub fn open(config: &serde_json::Value, access: Access) -> Result<Storage> {
    let invalid = |reason: String| Error::InvalidStorageConfig {
        kind: KIND.to_string(),
        reason,
    };
    let config = AzureConfig::from_json(config).map_err(invalid)?;
    let name = config.describe();
    if config.storage_account.is_empty() {
        return Err(invalid(format!("{name}: no storageAccount")));
    }
    let mut builder = opendal::services::Azblob::default()
        .root("/")
        .container(&config.container)
        .endpoint(&config.endpoint_url())
        .account_name(&config.storage_account);
    let mut redacted = Vec::new();
    let mut bearer = None;
    let listing;
    match config
        .credential()
        .map_err(|reason| invalid(format!("{name}: {reason}")))?
    {
        Credential::SasToken(token) => {
            builder = builder.sas_token(token);
            redacted.extend(sas_signature(token).map(Password::new));
            listing = Authorization::sas_token(token);
        }
        Credential::SharedKey(key) => {
            builder = builder.account_key(key);
            listing = Authorization::shared_key(&config.storage_account, key);
        }
        Credential::ServicePrincipal(secret) => {
            let authority = std::env::var(azure_entra::AUTHORITY_ENV).ok();
            let principal = ServicePrincipal::new(
                authority.as_deref(),
                &config.tenant_id,
                &config.client_id,
                secret,
            )
            .map_err(|reason| invalid(format!("{name}: {reason}")))?;
            let client = opendal::raw::HttpClient::with(
                BearerFetch::new(principal)
                    .map_err(|reason| invalid(format!("{name}: {reason}")))?,
            );
            listing = Authorization::Bearer(client.clone());
            bearer = Some(client);
            // OpenDAL only sets x-ms-version; the bearer client authorizes each request.
            builder = builder.skip_signature();
        }
    }
    let mut operator = operator(builder, None).map_err(|e| invalid(format!("{name}: {e}")))?;
    if let Some(bearer) = bearer {
        operator = operator.layer(opendal::layers::HttpClientLayer::new(bearer));
    }
    let container = Container::new(
        &config.endpoint_url(),
        &config.container,
        &config.prefix,
        listing,
        name.clone(),
        redacted.clone(),
    )
    .map_err(|reason| invalid(format!("{name}: {reason}")))?;
    if let Some(at) = config.point_in_time {
        let view = AzurePointInTime::new(container, at);
        view.require_versioned_container(&config.container)?;
        return Ok(Storage::read_only(Arc::new(view)));
    }
    let objects = ObjectStorage::new(operator, &config.prefix, &[], name).with_redacted(redacted);
    let storage = Arc::new(AzureStorage::new(objects, container));
    Ok(match access {
        Access::ReadWrite => Storage::read_write(storage),
        Access::ReadOnly => Storage::read_only(storage),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: serde_json::Value) -> AzureConfig {
        AzureConfig::from_json(&json).unwrap()
    }

    #[test]
    fn reads_kopia_keys_and_ignores_others() {
        let config = parse(serde_json::json!({
            "container": "backups", "prefix": "host1-", "storageAccount": "acct",
            "storageKey": "a2V5", "sasToken": "", "TenantID": "t", "ClientID": "c",
            "ClientSecret": "hunter2", "clientCertificate": "-----BEGIN cert-secret",
            "azureFederatedTokenFile": "/var/run/token", "storageDomain": "blob.core.chinacloudapi.cn",
            "doNotUseTLS": false, "maxUploadSpeedBytesPerSecond": 0, "futureKey": true
        }));
        assert_eq!(config.container, "backups");
        assert_eq!(config.prefix, "host1-");
        assert_eq!(config.storage_key.as_ref().unwrap().expose(), "a2V5");
        assert!(config.sas_token.is_none());
        assert_eq!(
            (config.tenant_id.as_str(), config.client_id.as_str()),
            ("t", "c")
        );
        assert_eq!(config.client_secret.as_ref().unwrap().expose(), "hunter2");
        assert_eq!(config.azure_federated_token_file, "/var/run/token");
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("a2V5") && !debug.contains("cert-secret"),
            "{debug}"
        );
        assert_eq!(
            config.endpoint_url(),
            "https://acct.blob.core.chinacloudapi.cn"
        );
        assert_eq!(
            config.describe(),
            "azure://backups/host1- (account acct at acct.blob.core.chinacloudapi.cn)"
        );

        let minimal = parse(serde_json::json!({"container": "c", "storageAccount": "a",
            "doNotUseTLS": true}));
        assert_eq!(minimal.endpoint_url(), "http://a.blob.core.windows.net");
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"container": ""}),
            serde_json::json!({"container": "c", "doNotUseTLS": "yes"}),
        ] {
            assert!(AzureConfig::from_json(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn credentials_in_kopias_order() {
        let with = |json: serde_json::Value| {
            let mut base = serde_json::json!({"container": "c", "storageAccount": "a"});
            base.as_object_mut()
                .unwrap()
                .extend(json.as_object().unwrap().clone());
            parse(base)
        };
        let both = with(serde_json::json!({"sasToken": "?sv=1&sig=abc", "storageKey": "k"}));
        assert!(matches!(
            both.credential(),
            Ok(Credential::SasToken("sv=1&sig=abc"))
        ));
        let key = with(serde_json::json!({"storageKey": "k", "ClientSecret": "s",
            "TenantID": "t", "ClientID": "c"}));
        assert!(matches!(key.credential(), Ok(Credential::SharedKey("k"))));
        let principal = with(serde_json::json!({"ClientSecret": "s", "TenantID": "t",
            "ClientID": "c", "azureFederatedTokenFile": "/var/run/token"}));
        assert!(matches!(principal.credential(),
            Ok(Credential::ServicePrincipal(PrincipalSecret::ClientSecret(s))) if s.expose() == "s"));
        let workload = with(serde_json::json!({"TenantID": "t", "ClientID": "c",
            "azureFederatedTokenFile": "/var/run/token"}));
        assert!(matches!(workload.credential(),
            Ok(Credential::ServicePrincipal(PrincipalSecret::FederatedTokenFile(p)))
                if p == std::path::Path::new("/var/run/token")));
        let dir = tempfile::tempdir().unwrap();
        let pem = super::super::azure_certificate::tests::make_certificate(dir.path(), "c");
        let certificate = with(serde_json::json!({"TenantID": "t", "ClientID": "c",
            "clientCertificate": pem, "azureFederatedTokenFile": "/var/run/token"}));
        assert!(matches!(
            certificate.credential(),
            Ok(Credential::ServicePrincipal(
                PrincipalSecret::ClientCertificate(_)
            ))
        ));
        let secret_first = with(serde_json::json!({"TenantID": "t", "ClientID": "c",
            "ClientSecret": "s", "clientCertificate": "-----BEGIN"}));
        assert!(matches!(
            secret_first.credential(),
            Ok(Credential::ServicePrincipal(PrincipalSecret::ClientSecret(
                _
            )))
        ));
        // A secret without its tenant and client is nothing Kopia would use.
        let incomplete = with(serde_json::json!({"ClientSecret": "s"}));
        assert!(incomplete.credential().unwrap_err().contains("storageKey"));
    }

    #[test]
    fn refused_configs_name_the_container_and_account() {
        let open_err = |json: serde_json::Value| open(&json, Access::ReadOnly).unwrap_err();
        let entra = open_err(serde_json::json!({"container": "c", "storageAccount": "a",
            "TenantID": "t", "ClientID": "id",
            "clientCertificate": "-----BEGIN PRIVATE KEY-----\nhunter2\n"}))
        .to_string();
        assert!(
            entra.contains("the PRIVATE KEY PEM block of clientCertificate is malformed"),
            "{entra}"
        );
        assert!(
            entra.contains("azure://c/") && !entra.contains("hunter2"),
            "{entra}"
        );
        let tenant = open_err(serde_json::json!({"container": "c", "storageAccount": "a",
            "TenantID": "t/../x", "ClientID": "id", "ClientSecret": "hunter2"}))
        .to_string();
        assert!(
            tenant.contains("TenantID \"t/../x\"")
                && tenant.contains("azure://c/")
                && !tenant.contains("hunter2"),
            "{tenant}"
        );
        let none = open_err(serde_json::json!({"container": "c", "storageAccount": "a"}));
        assert!(matches!(none, Error::InvalidStorageConfig { ref kind, .. } if kind == KIND));
        let no_account = open_err(serde_json::json!({"container": "c", "storageKey": "a2V5"}));
        assert!(
            no_account.to_string().contains("storageAccount"),
            "{no_account}"
        );
        let bad_key = open_err(serde_json::json!({"container": "c", "storageAccount": "a",
            "storageKey": "not base64!"}))
        .to_string();
        assert!(bad_key.contains("azure://c/"), "{bad_key}");
    }

    #[test]
    fn the_sas_signature_is_found_for_redaction() {
        assert_eq!(
            sas_signature("sv=2021-08-06&ss=b&sig=ab%2Bc%3D&se=x"),
            Some("ab%2Bc%3D")
        );
        assert_eq!(sas_signature("sv=1"), None);
        assert_eq!(sas_signature("sig="), None);
    }
}
