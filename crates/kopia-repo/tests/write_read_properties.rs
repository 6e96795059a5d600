//! Property: whatever manifests are written — any labels, any JSON data, deletions among them —
//! a fresh reader of the repository finds exactly those live, with the same labels and data.
//! (Kopia reading what we write is checked by the interop tests; this covers the inputs.)

use std::cell::RefCell;
use std::collections::BTreeMap;

use kopia_repo::content::writer::SessionOwner;
use kopia_repo::manifest::{Labels, ManifestStore, NewManifest, TYPE_LABEL};
use kopia_repo::repository::Repository;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::value::RawValue;

fn text() -> impl Strategy<Value = String> {
    let one = prop_oneof![
        4 => prop::char::range('a', 'z'),
        2 => prop::sample::select(vec!['"', '\\', '<', '&', '\u{2028}', '\u{0}', '\n', '{', '}', 'é', '😀']),
        1 => any::<char>(),
    ];
    prop::collection::vec(one, 0..16).prop_map(String::from_iter)
}

fn data() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<i64>().prop_map(serde_json::Value::from),
        text().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(2, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(serde_json::Value::from),
            prop::collection::btree_map(text(), inner, 0..3)
                .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
        ]
    })
}

fn new_manifest() -> impl Strategy<Value = NewManifest> {
    (
        text().prop_filter("a type", |t| !t.is_empty()),
        prop::collection::btree_map(text(), text(), 0..4),
        data(),
    )
        .prop_map(|(kind, mut labels, data): (String, Labels, _)| {
            labels.insert(TYPE_LABEL.to_owned(), kind);
            NewManifest {
                labels,
                data: RawValue::from_string(data.to_string()).unwrap(),
            }
        })
}

/// Every live manifest of `store`: ID → (labels, data text).
fn live(store: &ManifestStore) -> BTreeMap<String, (Labels, String)> {
    store
        .find(&Labels::new())
        .into_iter()
        .map(|entry| {
            let found = (entry.labels().to_labels(), entry.data.get().to_owned());
            (entry.id.clone(), found)
        })
        .collect()
}

#[test]
fn what_is_written_is_what_a_fresh_reader_finds() {
    let dir = tempfile::tempdir().unwrap();
    let owner = SessionOwner {
        username: "me".into(),
        hostname: "host".into(),
    };
    // One repository for every case: key derivation is paid once.
    let repository = Repository::create_filesystem(dir.path(), "pw", &owner).unwrap();
    let writer = repository.content_writer(owner).unwrap();
    let store = RefCell::new(repository.manifest_store());
    store.borrow_mut().refresh().unwrap();
    // What should be live.
    let expected = live(&store.borrow());
    // The runner takes a `Fn`: the state every case adds to lives in cells.
    let expected = RefCell::new(expected);

    let batch = (
        prop::collection::vec(new_manifest(), 0..6),
        prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    );
    let mut runner = TestRunner::new(Config {
        cases: 48,
        ..Config::default()
    });
    runner
        .run(&batch, |(puts, deleted)| {
            let mut expected = expected.borrow_mut();
            let ids: Vec<String> = expected.keys().cloned().collect();
            let mut deletes: Vec<String> = if ids.is_empty() {
                Vec::new()
            } else {
                deleted
                    .iter()
                    .map(|i| ids[i.index(ids.len())].clone())
                    .collect()
            };
            deletes.sort();
            deletes.dedup();
            let written = store.borrow_mut().write(&writer, &puts, &deletes).unwrap();
            for id in &deletes {
                expected.remove(id);
            }
            for (id, put) in written.into_iter().zip(&puts) {
                expected.insert(id, (put.labels.clone(), put.data.get().to_owned()));
            }
            let mut fresh = repository.manifest_store();
            fresh.refresh().unwrap();
            prop_assert_eq!(&live(&fresh), &*expected);
            // A lookup by type finds exactly the live manifests of that type, oldest first.
            for kind in expected.values().map(|(labels, _)| &labels[TYPE_LABEL]) {
                let filter = Labels::from([(TYPE_LABEL.to_owned(), kind.clone())]);
                let found: Vec<&str> = fresh.find(&filter).iter().map(|e| e.id.as_str()).collect();
                let all: Vec<&str> = fresh
                    .find(&Labels::new())
                    .into_iter()
                    .filter(|e| e.labels().get(TYPE_LABEL) == Some(kind.as_str()))
                    .map(|e| e.id.as_str())
                    .collect();
                prop_assert_eq!(found, all);
            }
            Ok(())
        })
        .unwrap();
}
