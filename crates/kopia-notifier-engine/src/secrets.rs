//! Where passwords of repositories added by path live: the OS keyring (service
//! [`KEYRING_SERVICE`], account = the repository path), behind a small trait so tests and
//! headless runs can use memory instead. Never a file of ours.

use std::collections::HashMap;
use std::sync::Mutex;

use zeroize::Zeroizing;

/// Our keyring item's service name; Kopia's own items are named differently.
pub const KEYRING_SERVICE: &str = "kopia-notifier";

/// Passwords by account. Errors are messages for people (e.g. "the keyring is locked").
pub trait SecretStore: Send + Sync {
    fn read(&self, account: &str) -> Result<Option<String>, String>;
    fn store(&self, account: &str, secret: &str) -> Result<(), String>;
    fn delete(&self, account: &str) -> Result<(), String>;
}

/// The desktop's keyring (Secret Service on Linux).
#[derive(Debug, Default, Clone, Copy)]
pub struct OsKeyring;

impl SecretStore for OsKeyring {
    fn read(&self, account: &str) -> Result<Option<String>, String> {
        kopia_repo::client::read_secret(KEYRING_SERVICE, account).map_err(|e| e.to_string())
    }

    fn store(&self, account: &str, secret: &str) -> Result<(), String> {
        kopia_repo::client::store_secret(KEYRING_SERVICE, account, secret)
            .map_err(|e| e.to_string())
    }

    fn delete(&self, account: &str) -> Result<(), String> {
        kopia_repo::client::delete_secret(KEYRING_SERVICE, account).map_err(|e| e.to_string())
    }
}

/// Secrets in memory, gone with the process: for tests. `Debug` names the accounts only;
/// secrets are wiped when replaced, deleted or dropped.
#[derive(Default)]
pub struct MemorySecrets {
    secrets: Mutex<HashMap<String, Zeroizing<String>>>,
}

impl std::fmt::Debug for MemorySecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let map = self.map();
        let mut accounts: Vec<&String> = map.keys().collect();
        accounts.sort();
        f.debug_struct("MemorySecrets")
            .field("accounts", &accounts)
            .finish_non_exhaustive()
    }
}

impl MemorySecrets {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, Zeroizing<String>>> {
        // A panic elsewhere cannot leave a map half-updated: recover the guard.
        self.secrets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SecretStore for MemorySecrets {
    fn read(&self, account: &str) -> Result<Option<String>, String> {
        Ok(self.map().get(account).map(|secret| secret.to_string()))
    }

    fn store(&self, account: &str, secret: &str) -> Result<(), String> {
        self.map()
            .insert(account.to_string(), Zeroizing::new(secret.to_string()));
        Ok(())
    }

    fn delete(&self, account: &str) -> Result<(), String> {
        self.map().remove(account);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_names_accounts_never_secrets() {
        let secrets = MemorySecrets::default();
        secrets.store("/srv/repo", "hunter2-secret").unwrap();
        let shown = format!("{secrets:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("/srv/repo"), "{shown}");
        assert_eq!(
            secrets.read("/srv/repo").unwrap().as_deref(),
            Some("hunter2-secret")
        );
    }
}
