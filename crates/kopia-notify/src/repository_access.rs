//! The notification commands' repository, opened on first use from Kopia's client config, and
//! the identity they act as.

use std::path::{Path, PathBuf};

use anyhow::Result;
use kopia_notifications::kopia_store::KopiaManifests;
use kopia_notifications::{Identity, ManifestAccess};
use kopia_repo::client;

use crate::notification_commands::NotificationRepository;

/// Opens the repository the first time a command needs it, and remembers a failure.
pub struct LazyRepository {
    config_file: PathBuf,
    opened: Option<KopiaManifests>,
}

impl LazyRepository {
    pub fn new(config_file: PathBuf) -> Self {
        LazyRepository {
            config_file,
            opened: None,
        }
    }
}

impl NotificationRepository for LazyRepository {
    fn manifests(&mut self) -> Result<&mut dyn ManifestAccess> {
        if self.opened.is_none() {
            self.opened = Some(KopiaManifests::open_client_config(&self.config_file)?.0);
        }
        Ok(self.opened.as_mut().expect("opened above"))
    }
}

/// Who the commands act as: `--as`, else the connection's username and hostname (Kopia's
/// overrides included), else the OS user and host name.
pub fn current_identity(as_identity: Option<&str>, config_file: &Path) -> Result<Identity> {
    if let Some(text) = as_identity {
        return Ok(text.parse()?);
    }
    if let Ok(config) = client::load(config_file) {
        if !config.username.is_empty() && !config.hostname.is_empty() {
            return Ok(Identity::new(&config.username, &config.hostname)?);
        }
    }
    Ok(Identity::new(&os_user_name(), &os_host_name())?)
}

fn os_user_name() -> String {
    std::env::var("USER")
        .or_else(|_| std::env::var("USERNAME"))
        .unwrap_or_else(|_| "nobody".into())
}

/// Kopia's default hostname: the OS host name, lower-cased and cut at the first dot.
fn os_host_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_else(|_| "localhost".into());
    raw.trim()
        .split('.')
        .next()
        .unwrap_or("localhost")
        .to_lowercase()
}
