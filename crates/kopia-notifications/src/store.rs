//! The seam between the notification domain and a manifest store: the [`ManifestAccess`] trait
//! (implemented over a real Kopia repository elsewhere) and [`MemoryStore`], an in-memory
//! implementation for tests. Nothing here knows what a notification is.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use kopia_repo::verify::Damage;

/// A live manifest as read from the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredManifest {
    pub id: String,
    pub labels: BTreeMap<String, String>,
    pub modified: DateTime<Utc>,
    /// The payload as raw JSON text.
    pub data: String,
}

/// A manifest to put; the store assigns its ID and modification time.
#[derive(Debug, Clone, PartialEq)]
pub struct NewManifest {
    pub labels: BTreeMap<String, String>,
    pub data: serde_json::Value,
}

/// Access to a manifest store. Implementations see the store as of their last refresh.
pub trait ManifestAccess {
    /// Live manifests whose labels contain all of `filter`.
    fn find(&self, filter: &BTreeMap<String, String>) -> Result<Vec<StoredManifest>, StoreError>;

    /// Writes puts and deletions as one batch (one manifest content); returns the new IDs in
    /// the order of `puts`. On error nothing is written.
    fn write(
        &mut self,
        puts: Vec<NewManifest>,
        deletes: Vec<String>,
    ) -> Result<Vec<String>, StoreError>;

    /// As [`write`](Self::write) with each put's manifest ID given (32 lowercase hex digits):
    /// derived notifications and resolutions carry IDs every machine computes alike. A put
    /// whose ID exists replaces it.
    fn write_with_ids(
        &mut self,
        puts: Vec<(String, NewManifest)>,
        deletes: Vec<String>,
    ) -> Result<(), StoreError>;

    /// Manifest contents that could not be read (damaged or cut-short packs): the store goes
    /// on without their manifests, and the health checks report them.
    fn damaged(&self) -> Vec<Damage>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// A manifest (or the repository itself) does not exist.
    NotFound,
    /// The repository could not be reached or opened.
    Unreachable,
    Other,
}

/// A storage failure: a message for people and a kind for programs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError {
    pub kind: StoreErrorKind,
    pub message: String,
}

impl StoreError {
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        StoreError {
            kind,
            message: message.into(),
        }
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

/// Manifests in a map, with IDs shaped like Kopia's (32 lowercase hex digits) but
/// deterministic, so tests can rely on them.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    manifests: BTreeMap<String, StoredManifest>,
    ids_issued: u64,
    modified: DateTime<Utc>,
    batches: usize,
    unreachable: bool,
    damaged: Vec<Damage>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore {
            manifests: BTreeMap::new(),
            ids_issued: 0,
            modified: DateTime::UNIX_EPOCH,
            batches: 0,
            unreachable: false,
            damaged: Vec::new(),
        }
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a manifest as another producer would have written it, byte for byte.
    pub fn insert_raw(&mut self, id: &str, labels: &[(&str, &str)], data: &str) {
        let manifest = StoredManifest {
            id: id.to_string(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            modified: self.modified,
            data: data.to_string(),
        };
        self.manifests.insert(manifest.id.clone(), manifest);
    }

    /// Removes a manifest outside of any batch, as `kopia manifest delete` would.
    pub fn remove(&mut self, id: &str) -> Option<StoredManifest> {
        self.manifests.remove(id)
    }

    /// The modification time given to manifests written from now on.
    pub fn set_modified_time(&mut self, time: DateTime<Utc>) {
        self.modified = time;
    }

    /// Makes every call fail as if the repository could not be reached.
    pub fn set_unreachable(&mut self, unreachable: bool) {
        self.unreachable = unreachable;
    }

    /// Reports `damaged` as contents that could not be read, as a damaged repository would.
    pub fn set_damaged(&mut self, damaged: Vec<Damage>) {
        self.damaged = damaged;
    }

    /// How many non-empty batches were written.
    pub fn batches_written(&self) -> usize {
        self.batches
    }

    pub fn get(&self, id: &str) -> Option<&StoredManifest> {
        self.manifests.get(id)
    }

    pub fn len(&self) -> usize {
        self.manifests.len()
    }

    pub fn is_empty(&self) -> bool {
        self.manifests.is_empty()
    }

    fn check_reachable(&self) -> Result<(), StoreError> {
        if self.unreachable {
            return Err(StoreError::new(
                StoreErrorKind::Unreachable,
                "memory store: repository unreachable",
            ));
        }
        Ok(())
    }

    fn next_id(&mut self) -> String {
        self.ids_issued += 1;
        let high = mix(self.ids_issued);
        let low = mix(high ^ self.ids_issued);
        format!("{high:016x}{low:016x}")
    }
}

/// SplitMix64's finaliser: spreads a counter over 64 bits so IDs differ early.
fn mix(value: u64) -> u64 {
    let mut z = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl ManifestAccess for MemoryStore {
    fn find(&self, filter: &BTreeMap<String, String>) -> Result<Vec<StoredManifest>, StoreError> {
        self.check_reachable()?;
        Ok(self
            .manifests
            .values()
            .filter(|m| filter.iter().all(|(k, v)| m.labels.get(k) == Some(v)))
            .cloned()
            .collect())
    }

    fn write(
        &mut self,
        puts: Vec<NewManifest>,
        deletes: Vec<String>,
    ) -> Result<Vec<String>, StoreError> {
        self.check_reachable()?;
        let keyed: Vec<(String, NewManifest)> =
            puts.into_iter().map(|put| (self.next_id(), put)).collect();
        let ids = keyed.iter().map(|(id, _)| id.clone()).collect();
        self.write_with_ids(keyed, deletes)?;
        Ok(ids)
    }

    fn write_with_ids(
        &mut self,
        puts: Vec<(String, NewManifest)>,
        deletes: Vec<String>,
    ) -> Result<(), StoreError> {
        self.check_reachable()?;
        // Check the whole batch before changing anything.
        if let Some(missing) = deletes.iter().find(|id| !self.manifests.contains_key(*id)) {
            return Err(StoreError::new(
                StoreErrorKind::NotFound,
                format!("manifest {missing} not found"),
            ));
        }
        if puts
            .iter()
            .any(|(_, p)| p.labels.get("type").is_none_or(String::is_empty))
        {
            return Err(StoreError::new(
                StoreErrorKind::Other,
                "'type' label is required",
            ));
        }
        if puts.is_empty() && deletes.is_empty() {
            return Ok(());
        }
        self.batches += 1;
        for id in deletes {
            self.manifests.remove(&id);
        }
        for (id, put) in puts {
            self.manifests.insert(
                id.clone(),
                StoredManifest {
                    id: id.clone(),
                    labels: put.labels,
                    modified: self.modified,
                    data: put.data.to_string(),
                },
            );
        }
        Ok(())
    }

    fn damaged(&self) -> Vec<Damage> {
        self.damaged.clone()
    }
}

/// A store seen with manifests it does not hold: what a read-only connection would have
/// written (derived notifications and resolutions), shown locally. Local manifests replace
/// stored ones of the same ID; every write is refused, so nothing reaches the repository.
pub struct Overlay<'a> {
    base: &'a dyn ManifestAccess,
    local: BTreeMap<String, StoredManifest>,
}

impl<'a> Overlay<'a> {
    /// `puts` as if written at `modified`.
    pub fn new(
        base: &'a dyn ManifestAccess,
        puts: Vec<(String, NewManifest)>,
        modified: DateTime<Utc>,
    ) -> Self {
        let local = puts
            .into_iter()
            .map(|(id, put)| {
                let manifest = StoredManifest {
                    id: id.clone(),
                    labels: put.labels,
                    modified,
                    data: put.data.to_string(),
                };
                (id, manifest)
            })
            .collect();
        Overlay { base, local }
    }
}

impl ManifestAccess for Overlay<'_> {
    fn find(&self, filter: &BTreeMap<String, String>) -> Result<Vec<StoredManifest>, StoreError> {
        let mut found: Vec<StoredManifest> = self
            .base
            .find(filter)?
            .into_iter()
            .filter(|m| !self.local.contains_key(&m.id))
            .collect();
        found.extend(
            self.local
                .values()
                .filter(|m| filter.iter().all(|(k, v)| m.labels.get(k) == Some(v)))
                .cloned(),
        );
        Ok(found)
    }

    fn write(&mut self, _: Vec<NewManifest>, _: Vec<String>) -> Result<Vec<String>, StoreError> {
        Err(read_only_overlay())
    }

    fn write_with_ids(
        &mut self,
        _: Vec<(String, NewManifest)>,
        _: Vec<String>,
    ) -> Result<(), StoreError> {
        Err(read_only_overlay())
    }

    fn damaged(&self) -> Vec<Damage> {
        self.base.damaged()
    }
}

fn read_only_overlay() -> StoreError {
    StoreError::new(
        StoreErrorKind::Other,
        "local view of a read-only connection: nothing can be written",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn find_matches_all_filter_labels() {
        let mut store = MemoryStore::new();
        store.insert_raw("a", &[("type", "x"), ("k", "1")], "{}");
        store.insert_raw("b", &[("type", "x"), ("k", "2")], "{}");
        store.insert_raw("c", &[("type", "y")], "{}");
        let ids = |filter: &[(&str, &str)]| -> Vec<String> {
            store
                .find(&labels(filter))
                .unwrap()
                .into_iter()
                .map(|m| m.id)
                .collect()
        };
        assert_eq!(ids(&[("type", "x")]), ["a", "b"]);
        assert_eq!(ids(&[("type", "x"), ("k", "2")]), ["b"]);
        assert_eq!(ids(&[]), ["a", "b", "c"]);
    }

    #[test]
    fn writes_are_one_batch_with_kopia_shaped_ids() {
        let mut store = MemoryStore::new();
        store.insert_raw("old", &[("type", "x")], "{}");
        let ids = store
            .write(
                vec![
                    NewManifest {
                        labels: labels(&[("type", "x")]),
                        data: serde_json::json!({"a": 1}),
                    },
                    NewManifest {
                        labels: labels(&[("type", "x")]),
                        data: serde_json::json!(null),
                    },
                ],
                vec!["old".into()],
            )
            .unwrap();
        assert_eq!(ids.len(), 2);
        assert_ne!(ids[0], ids[1]);
        assert!(ids
            .iter()
            .all(|id| id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())));
        assert_eq!(store.get(&ids[0]).unwrap().data, r#"{"a":1}"#);
        assert!(store.get("old").is_none());
        assert_eq!(store.batches_written(), 1);
    }

    #[test]
    fn failed_batches_write_nothing() {
        let mut store = MemoryStore::new();
        let put = NewManifest {
            labels: labels(&[("type", "x")]),
            data: serde_json::json!({}),
        };
        let error = store
            .write(vec![put.clone()], vec!["missing".into()])
            .unwrap_err();
        assert_eq!(error.kind, StoreErrorKind::NotFound);
        assert!(error.message.contains("missing"));
        let untyped = NewManifest {
            labels: BTreeMap::new(),
            data: serde_json::json!({}),
        };
        assert!(store.write(vec![put.clone(), untyped], vec![]).is_err());
        store.set_unreachable(true);
        assert_eq!(
            store.write(vec![put], vec![]).unwrap_err().kind,
            StoreErrorKind::Unreachable
        );
        assert!(store.find(&BTreeMap::new()).is_err());
        assert!(store.is_empty());
        assert_eq!(store.batches_written(), 0);
    }

    #[test]
    fn overlay_shows_local_manifests_and_refuses_writes() {
        let mut base = MemoryStore::new();
        base.insert_raw("a1", &[("type", "n")], "{}");
        base.insert_raw("b2", &[("type", "n")], r#"{"old":true}"#);
        let put = |data: &str| NewManifest {
            labels: labels(&[("type", "n")]),
            data: serde_json::from_str(data).unwrap(),
        };
        let modified = base.modified;
        let mut overlay = Overlay::new(
            &base,
            vec![
                ("b2".into(), put(r#"{"new":true}"#)),
                ("c3".into(), put("{}")),
            ],
            modified,
        );
        let mut found = overlay.find(&labels(&[("type", "n")])).unwrap();
        found.sort_by(|a, b| a.id.cmp(&b.id));
        let ids: Vec<&str> = found.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["a1", "b2", "c3"]);
        assert_eq!(found[1].data, r#"{"new":true}"#);
        assert!(overlay
            .find(&labels(&[("type", "other")]))
            .unwrap()
            .is_empty());
        assert!(overlay.write(vec![put("{}")], Vec::new()).is_err());
        assert!(overlay
            .write_with_ids(vec![("d4".into(), put("{}"))], Vec::new())
            .is_err());
        assert_eq!(base.len(), 2);
    }
}
