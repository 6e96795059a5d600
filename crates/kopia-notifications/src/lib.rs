//! The notification domain of Kopia Notifier: notifications and their acknowledgements stored as
//! Kopia manifests, and the rules deciding what each `user@host` still has to read. No GUI:
//! storage is reached through the [`store::ManifestAccess`] seam, which [`kopia_store`]
//! implements over a real repository and [`store::MemoryStore`] in memory. [`health`] derives
//! notifications from what Kopia itself records, under our [`policy`] (attached to Kopia's
//! policy [`target`]s).

pub mod duration;
pub mod error;
pub mod health;
pub mod identity;
pub mod inbox;
pub mod inert;
pub mod kopia_store;
pub mod policy;
pub mod schema;
pub mod service;
pub mod store;
pub mod target;
#[cfg(test)]
mod test_fixtures;

pub use error::Error;
pub use identity::{Identity, Recipient};
pub use inbox::{
    AckOutcome, GcPlan, Inbox, InboxItem, ListOptions, NotificationDetails, PendingCounts, Status,
};
pub use schema::{
    Acknowledgement, Draft, Notification, Origin, Severity, SnapshotSource, SourceKind,
};
pub use service::{Listing, Notifications};
pub use store::{
    ManifestAccess, MemoryStore, NewManifest, Overlay, StoreError, StoreErrorKind, StoredManifest,
};
