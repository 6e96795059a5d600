//! Manifest labels as stored entries hold them. A repository holds tens of thousands of entries
//! and most of them repeat a few label sets (every snapshot of one source has the same labels),
//! so entries can share one copy of a set: a decoded content does (see `plain_entry.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub type Labels = BTreeMap<String, String>;

/// The labels of a stored entry, sorted by key; clones share them. Deletion entries have
/// none, stored as `null` as Go stores a nil map.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelList(Arc<[(Box<str>, Box<str>)]>);

impl LabelList {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|at| self.0[at].1.as_ref())
    }

    /// Pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_ref(), v.as_ref()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn to_labels(&self) -> Labels {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }
}

impl From<&Labels> for LabelList {
    fn from(labels: &Labels) -> Self {
        LabelList(
            labels
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
        )
    }
}

impl Serialize for LabelList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.is_empty() {
            s.serialize_none()
        } else {
            s.collect_map(self.iter())
        }
    }
}

impl<'de> Deserialize<'de> for LabelList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PairsVisitor;

        impl<'de> Visitor<'de> for PairsVisitor {
            type Value = LabelList;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of string labels, or null")
            }

            fn visit_none<E>(self) -> Result<LabelList, E> {
                Ok(LabelList::default())
            }

            fn visit_unit<E>(self) -> Result<LabelList, E> {
                Ok(LabelList::default())
            }

            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<LabelList, D::Error> {
                d.deserialize_map(self)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<LabelList, A::Error> {
                let mut pairs: Vec<(Box<str>, Box<str>)> =
                    Vec::with_capacity(map.size_hint().unwrap_or(4));
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    pairs.push((key.into(), value.into()));
                }
                // As a Go map decodes it: the last of repeated keys wins.
                pairs.reverse();
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                pairs.dedup_by(|later, first| later.0 == first.0);
                Ok(LabelList(pairs.into()))
            }
        }

        d.deserialize_option(PairsVisitor)
    }
}
