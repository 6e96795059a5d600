//! Which index blobs are live (§8): pure functions over blob listings that reproduce Kopia's
//! epoch manager (`GetCompleteIndexSet(LatestEpoch)`) and, in [`legacy`], the v0 index manager.
//! Nothing here reads, decrypts or writes blobs; maintenance (advancing, compacting) is not done.

pub mod legacy;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use crate::storage::BlobMetadata;

pub use legacy::{
    legacy_index_blob_set, parse_compaction_log, CompactionLog, LEGACY_COMPACTION_LOG_PREFIX,
    LEGACY_INDEX_PREFIX,
};

/// Prefix of every blob the epoch manager owns: list it once to get everything below.
pub const EPOCH_MANAGER_PREFIX: &str = "x";
/// `xe<E>`: epoch E has started.
pub const EPOCH_MARKER_PREFIX: &str = "xe";
/// `xn<E>_…`: index blob written during epoch E.
pub const UNCOMPACTED_INDEX_PREFIX: &str = "xn";
/// `xs<E>_…`: compaction of all `xn<E>_` blobs.
pub const SINGLE_EPOCH_COMPACTION_PREFIX: &str = "xs";
/// `xr<E1>_<E2>_…`: compaction of epochs E1..=E2.
pub const RANGE_CHECKPOINT_PREFIX: &str = "xr";
/// `xw<unix seconds>`: deletion watermark.
pub const DELETION_WATERMARK_PREFIX: &str = "xw";

/// Epochs W-1, W (and W+1) may still receive `xn` blobs; older ones are "settled".
const UNSETTLED_EPOCHS: u64 = 2;

/// The index blobs to load, and how to interpret deleted entries in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexBlobSet {
    /// Blobs in Kopia's order: range checkpoints first, then epoch by epoch.
    pub blobs: Vec<BlobMetadata>,
    /// Deleted index entries at or before this time count as absent (§7.4). `None` = Go's
    /// zero time (no watermark).
    pub deletion_watermark: Option<DateTime<Utc>>,
    /// The epoch new index blobs are written into.
    pub write_epoch: u64,
}

/// A range checkpoint: one complete set of `xr<min>_<max>_…` blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochRange {
    pub min: u64,
    pub max: u64,
    pub blobs: Vec<BlobMetadata>,
}

/// The epoch number in `<letters><E>_<rest>` (or `<letters><E>`): `xn12_abc` → 12.
pub fn epoch_number_from_blob_id(blob_id: &str) -> Option<u64> {
    let head = blob_id.split('_').next().unwrap_or_default();
    parse_epoch(head.trim_start_matches(|c: char| !c.is_ascii_digit()))
}

/// The `(min, max)` epochs of a range checkpoint name `xr<min>_<max>_<rest>`.
///
/// Names with `max < min` are refused: Kopia never writes them and its chain search would
/// loop on some of them.
pub fn epoch_range_from_blob_id(blob_id: &str) -> Option<(u64, u64)> {
    let mut parts = blob_id.split('_');
    let first = parts.next()?;
    let second = parts.next()?;
    parts.next()?; // a range name has at least three parts
    let min = parse_epoch(first.trim_start_matches(|c: char| !c.is_ascii_digit()))?;
    let max = parse_epoch(second)?;
    (max >= min).then_some((min, max))
}

/// Go's `strconv.Atoi` restricted to the values that make sense for an epoch.
fn parse_epoch(digits: &str) -> Option<u64> {
    digits
        .parse::<i64>()
        .ok()
        .and_then(|n| u64::try_from(n).ok())
}

/// The time of a deletion watermark blob `xw<unix seconds>`.
pub fn deletion_watermark_from_blob_id(blob_id: &str) -> Option<DateTime<Utc>> {
    let seconds = blob_id
        .strip_prefix(DELETION_WATERMARK_PREFIX)?
        .parse::<i64>()
        .ok()?;
    DateTime::from_timestamp(seconds, 0)
}

/// Groups blobs into complete sets (§8.2), in the order they become complete while scanning
/// the listing. A name `<any>-s<set>-c<count>[-…]` belongs to set `s<set>`, complete once
/// `count` members were seen (later members are not part of it); any other name is a set of
/// its own.
pub fn complete_sets(blobs: &[BlobMetadata]) -> Vec<Vec<BlobMetadata>> {
    let mut pending: HashMap<&str, Vec<BlobMetadata>> = HashMap::new();
    let mut complete = Vec::new();
    for blob in blobs {
        let Some((set_id, count)) = set_membership(&blob.id) else {
            complete.push(vec![blob.clone()]);
            continue;
        };
        let members = pending.entry(set_id).or_default();
        members.push(blob.clone());
        if i64::try_from(members.len()) == Ok(count) {
            complete.push(members.clone());
        }
    }
    complete
}

/// `(set id, count)` of a blob named `<any>-s<set>-c<count>…`; `None` for other names.
fn set_membership(blob_id: &str) -> Option<(&str, i64)> {
    let mut parts = blob_id.split('-');
    parts.next()?;
    let set_id = parts.next().filter(|p| p.starts_with('s'))?;
    let count = parts.next()?.strip_prefix('c')?.parse::<i64>().ok()?;
    Some((set_id, count))
}

/// The first set of [`complete_sets`], if any.
pub fn first_complete_set(blobs: &[BlobMetadata]) -> Option<Vec<BlobMetadata>> {
    complete_sets(blobs).into_iter().next()
}

/// The current write epoch: the largest `E` of the `xe<E>` markers, 0 without markers.
pub fn write_epoch(listing: &[BlobMetadata]) -> u64 {
    listing
        .iter()
        .filter(|b| b.id.starts_with(EPOCH_MARKER_PREFIX))
        .filter_map(|b| epoch_number_from_blob_id(&b.id))
        .max()
        .unwrap_or(0)
}

/// The latest deletion watermark among the `xw` blobs of the listing.
pub fn deletion_watermark(listing: &[BlobMetadata]) -> Option<DateTime<Utc>> {
    listing
        .iter()
        .filter_map(|b| deletion_watermark_from_blob_id(&b.id))
        .max()
}

/// The prefix of a new index blob written in `epoch`: `xn<E>_`.
pub fn new_index_blob_prefix(epoch: u64) -> String {
    format!("{UNCOMPACTED_INDEX_PREFIX}{epoch}_")
}

/// The chain of range checkpoints Kopia uses: starting at epoch 0, each range starting right
/// after the previous one, reaching the highest epoch (ties: fewest ranges, then the first
/// found). Kopia's quirk is kept: a chain that ends at epoch 0 counts as no chain.
///
/// Kopia (`internal/epoch/epoch_range.go`, `findLongestRangeCheckpointStartingAt`) recurses
/// once per chained range and copies the memoised chains; range names are written by anyone
/// who can write the repository, so here the same memo is filled bottom-up instead: from the
/// highest start epoch down, each start keeps only (epoch reached, length, first range), and
/// the chain is rebuilt by following the first ranges. O(n log n) time, O(n) memory, no
/// recursion.
pub fn longest_range_checkpoint_chain(ranges: &[EpochRange]) -> Vec<EpochRange> {
    let mut by_min: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, range) in ranges.iter().enumerate() {
        if range.max >= range.min {
            by_min.entry(range.min).or_default().push(i);
        }
    }
    // Every range leads to a strictly higher start (`max + 1 > min`), so walking the starts
    // in descending order finds each continuation already decided.
    let mut best: HashMap<u64, ChainStep> = HashMap::with_capacity(by_min.len());
    for (&start, candidates) in by_min.iter().rev() {
        let mut step: Option<ChainStep> = None;
        for &i in candidates {
            let rest = ranges[i]
                .max
                .checked_add(1)
                .and_then(|next| best.get(&next));
            let (reached, len) = match rest {
                Some(rest) => (rest.reached, rest.len + 1),
                None => (ranges[i].max, 1),
            };
            let (best_reached, best_len) = step.as_ref().map_or((0, 0), |s| (s.reached, s.len));
            if reached > best_reached || (reached == best_reached && len < best_len) {
                step = Some(ChainStep {
                    first: i,
                    reached,
                    len,
                });
            }
        }
        if let Some(step) = step {
            best.insert(start, step);
        }
    }

    let mut chain = Vec::new();
    let mut next = Some(0u64);
    while let Some(step) = next.and_then(|start| best.get(&start)) {
        let range = &ranges[step.first];
        chain.push(range.clone());
        next = range.max.checked_add(1);
    }
    chain
}

/// The best chain from one start epoch: its first range, the epoch it reaches, its length.
struct ChainStep {
    first: usize,
    reached: u64,
    len: usize,
}

/// Kopia's `GetCompleteIndexSet(LatestEpoch)` over ONE listing of prefix `x` (§8.2.1).
pub fn epoch_index_blob_set(listing: &[BlobMetadata]) -> IndexBlobSet {
    let write_epoch = write_epoch(listing);
    let deletion_watermark = deletion_watermark(listing);

    let mut single_epoch_candidates: HashMap<u64, Vec<BlobMetadata>> = HashMap::new();
    // In listing order, with an index by key: thousands of range names cost no more than
    // one lookup each.
    let mut range_candidates: Vec<((u64, u64), Vec<BlobMetadata>)> = Vec::new();
    let mut range_slot: HashMap<(u64, u64), usize> = HashMap::new();
    // `xn` blobs keyed by the exact text between "xn" and "_", as a prefix listing would.
    let mut uncompacted: HashMap<&str, Vec<BlobMetadata>> = HashMap::new();
    for blob in listing {
        if blob.id.starts_with(SINGLE_EPOCH_COMPACTION_PREFIX) {
            if let Some(epoch) = epoch_number_from_blob_id(&blob.id) {
                single_epoch_candidates
                    .entry(epoch)
                    .or_default()
                    .push(blob.clone());
            }
        } else if blob.id.starts_with(RANGE_CHECKPOINT_PREFIX) {
            if let Some(key) = epoch_range_from_blob_id(&blob.id) {
                match range_slot.get(&key) {
                    Some(&slot) => range_candidates[slot].1.push(blob.clone()),
                    None => {
                        range_slot.insert(key, range_candidates.len());
                        range_candidates.push((key, vec![blob.clone()]));
                    }
                }
            }
        } else if let Some(rest) = blob.id.strip_prefix(UNCOMPACTED_INDEX_PREFIX) {
            if let Some((epoch_text, _)) = rest.split_once('_') {
                uncompacted
                    .entry(epoch_text)
                    .or_default()
                    .push(blob.clone());
            }
        }
    }

    let single_epoch_sets: HashMap<u64, Vec<BlobMetadata>> = single_epoch_candidates
        .into_iter()
        .filter_map(|(epoch, blobs)| Some((epoch, first_complete_set(&blobs)?)))
        .collect();
    let ranges: Vec<EpochRange> = range_candidates
        .into_iter()
        .filter_map(|((min, max), blobs)| {
            Some(EpochRange {
                min,
                max,
                blobs: first_complete_set(&blobs)?,
            })
        })
        .collect();

    let mut blobs = Vec::new();
    let mut start = 0u64;
    for range in longest_range_checkpoint_chain(&ranges) {
        // Kopia's comparison is strict: a range ending at `start` is skipped.
        if range.max > start {
            blobs.extend(range.blobs);
            start = range.max.saturating_add(1);
        }
    }

    let last_epoch = write_epoch.saturating_add(1);
    // Only epochs that have blobs can contribute; iterating over them (rather than over every
    // number up to W+1) keeps a hostile `xe999999999999` marker harmless.
    let epochs_with_blobs: BTreeSet<u64> = single_epoch_sets
        .keys()
        .copied()
        .chain(
            uncompacted
                .keys()
                .filter_map(|text| text.parse::<u64>().ok()),
        )
        .filter(|epoch| (start..=last_epoch).contains(epoch))
        .collect();
    for epoch in epochs_with_blobs {
        let settled = epoch.saturating_add(UNSETTLED_EPOCHS) <= write_epoch;
        match single_epoch_sets.get(&epoch) {
            Some(compacted) if settled => blobs.extend(compacted.iter().cloned()),
            _ => {
                if let Some(written) = uncompacted.get(epoch.to_string().as_str()) {
                    blobs.extend(written.iter().cloned());
                }
            }
        }
    }

    IndexBlobSet {
        blobs,
        deletion_watermark,
        write_epoch,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use chrono::TimeZone;

    pub(crate) fn blob(id: &str) -> BlobMetadata {
        BlobMetadata {
            id: id.to_string(),
            length: 100,
            timestamp: Utc.timestamp_opt(1_700_000_000, 0).unwrap(),
        }
    }

    fn listing(ids: &[&str]) -> Vec<BlobMetadata> {
        ids.iter().map(|id| blob(id)).collect()
    }

    fn ids(blobs: &[BlobMetadata]) -> Vec<&str> {
        blobs.iter().map(|b| b.id.as_str()).collect()
    }

    /// Kopia's epoch_utils_test.go cases.
    #[test]
    fn epoch_numbers() {
        for (id, want) in [
            ("pppp9", 9),
            ("x7", 7),
            ("x01234_1235", 1234),
            ("x0_1235", 0),
            ("abc01234_", 1234),
            ("abc1234_", 1234),
            ("abc1234_xxxx-sadfasd", 1234),
            ("xe12", 12),
            ("xn3_abc-s1-c1", 3),
        ] {
            assert_eq!(epoch_number_from_blob_id(id), Some(want), "{id}");
        }
        for id in ["_", "a_", "x123x_", "", "xe", "xe99999999999999999999"] {
            assert_eq!(epoch_number_from_blob_id(id), None, "{id}");
        }
    }

    #[test]
    fn epoch_ranges() {
        assert_eq!(epoch_range_from_blob_id("xr0_9_abc-s1-c2"), Some((0, 9)));
        assert_eq!(epoch_range_from_blob_id("xr10_19_"), Some((10, 19)));
        assert_eq!(epoch_range_from_blob_id("xr010_019_x"), Some((10, 19)));
        assert_eq!(epoch_range_from_blob_id("xr0_9"), None); // two parts only
        assert_eq!(epoch_range_from_blob_id("xr0_x9_abc"), None);
        assert_eq!(epoch_range_from_blob_id("xr_9_abc"), None);
        assert_eq!(epoch_range_from_blob_id("xr5_3_abc"), None); // max < min
        assert_eq!(epoch_range_from_blob_id("xr0_-1_abc"), None);
    }

    #[test]
    fn watermarks() {
        assert_eq!(
            deletion_watermark_from_blob_id("xw1700000000"),
            Some(Utc.timestamp_opt(1_700_000_000, 0).unwrap())
        );
        assert_eq!(deletion_watermark_from_blob_id("xw"), None);
        assert_eq!(deletion_watermark_from_blob_id("xw17x"), None);
        assert_eq!(deletion_watermark_from_blob_id("xe17"), None);
        let latest = deletion_watermark(&listing(&["xw100", "xw300", "xwbad", "xw200", "xe5"]));
        assert_eq!(latest, Some(Utc.timestamp_opt(300, 0).unwrap()));
        assert_eq!(deletion_watermark(&listing(&["xe5"])), None);
    }

    /// Kopia's complete_set_test.go cases (FindFirst and FindAll).
    #[test]
    fn complete_set_grouping() {
        let cases: &[(&[&str], &[&[&str]])] = &[
            (&[], &[]),
            (&["a-s0-c2", "b-s0-c2"], &[&["a-s0-c2", "b-s0-c2"]]),
            (
                &["a-s0-c2", "malformed", "b-s0-c2"],
                &[&["malformed"], &["a-s0-c2", "b-s0-c2"]],
            ),
            (
                &["a-s0-c2", "malformed-s0-x2", "b-s0-c2"],
                &[&["malformed-s0-x2"], &["a-s0-c2", "b-s0-c2"]],
            ),
            (
                &["a-s0-c2", "malformed-s0-cNAN", "b-s0-c2"],
                &[&["malformed-s0-cNAN"], &["a-s0-c2", "b-s0-c2"]],
            ),
            (
                &["foo-s0-c2", "aaa-s1-c2", "bar-s0-c2", "bbb-s1-c2"],
                &[&["foo-s0-c2", "bar-s0-c2"], &["aaa-s1-c2", "bbb-s1-c2"]],
            ),
            (&["foo-s0-c3", "aaa-s1-c3", "bar-s0-c3", "bbb-s1-c3"], &[]),
            (
                &[
                    "foo-s0-c2",
                    "aaa-s1-c3",
                    "bar-s0-c2",
                    "bbb-s1-c3",
                    "foo-s2-c2",
                    "aaa-s3-c3",
                    "bar-s2-c2",
                    "bbb-s3-c3",
                ],
                &[&["foo-s0-c2", "bar-s0-c2"], &["foo-s2-c2", "bar-s2-c2"]],
            ),
        ];
        for (input, want) in cases {
            let sets = complete_sets(&listing(input));
            let got: Vec<Vec<&str>> = sets.iter().map(|s| ids(s)).collect();
            let want: Vec<Vec<&str>> = want.iter().map(|s| s.to_vec()).collect();
            assert_eq!(got, want, "{input:?}");
            assert_eq!(
                first_complete_set(&listing(input)).map(|s| s.len()),
                want.first().map(|s| s.len())
            );
        }
        // Extra members past the count do not join the completed set; a count of 0 never
        // completes; "c-1" splits into "c" and "1", an unparsable count: a set of its own.
        let sets = complete_sets(&listing(&["a-s0-c1", "b-s0-c1", "c-s9-c0", "d-s8-c-1"]));
        assert_eq!(
            sets.iter().map(|s| ids(s)).collect::<Vec<_>>(),
            vec![vec!["a-s0-c1"], vec!["d-s8-c-1"]]
        );
    }

    fn range(min: u64, max: u64) -> EpochRange {
        EpochRange {
            min,
            max,
            blobs: vec![blob(&format!("xr{min}_{max}_x"))],
        }
    }

    /// Kopia's epoch_range_test.go cases.
    #[test]
    fn longest_range_chain() {
        let chain = |input: &[(u64, u64)]| -> Vec<(u64, u64)> {
            let ranges: Vec<EpochRange> = input.iter().map(|&(a, b)| range(a, b)).collect();
            longest_range_checkpoint_chain(&ranges)
                .iter()
                .map(|r| (r.min, r.max))
                .collect()
        };
        assert_eq!(chain(&[]), vec![]);
        assert_eq!(
            chain(&[(0, 9), (10, 19), (20, 29)]),
            vec![(0, 9), (10, 19), (20, 29)]
        );
        assert_eq!(
            chain(&[(0, 9), (10, 19), (20, 29), (50, 59)]),
            vec![(0, 9), (10, 19), (20, 29)]
        );
        assert_eq!(chain(&[(0, 9), (20, 29), (50, 59)]), vec![(0, 9)]);
        assert_eq!(
            chain(&[(0, 29), (20, 29), (30, 39)]),
            vec![(0, 29), (30, 39)]
        );
        assert_eq!(
            chain(&[(0, 9), (0, 29), (10, 19), (30, 39)]),
            vec![(0, 29), (30, 39)]
        );
        assert_eq!(
            chain(&[(0, 9), (0, 29), (10, 59), (30, 39)]),
            vec![(0, 9), (10, 59)]
        );
        assert_eq!(
            chain(&[(0, 9), (0, 9), (0, 29), (10, 59), (30, 39)]),
            vec![(0, 9), (10, 59)]
        );
        // Two chains reach 59: the shorter one wins.
        assert_eq!(
            chain(&[(10, 59), (30, 39), (50, 59), (40, 49), (0, 9), (0, 29)]),
            vec![(0, 9), (10, 59)]
        );
        // Kopia quirk: a chain ending at epoch 0 is no chain.
        assert_eq!(chain(&[(0, 0)]), vec![]);
        assert_eq!(chain(&[(0, 0), (1, 5)]), vec![(0, 0), (1, 5)]);
        // No chain starting at 0.
        assert_eq!(chain(&[(1, 5)]), vec![]);
    }

    /// A hostile listing of chained `xr<N>_<N>_…` names: Kopia's recursion would be this deep
    /// (and copy its memo quadratically); ours runs on a small stack and returns at once.
    #[test]
    fn thousands_of_chained_ranges_need_no_deep_stack() {
        const CHAINED: u64 = 50_000;
        let mut ids: Vec<String> = vec!["xe3".to_owned()];
        ids.extend((0..CHAINED).map(|n| format!("xr{n}_{n}_empty")));
        ids.push(format!("xn{CHAINED}_after"));
        let listing: Vec<BlobMetadata> = ids.iter().map(|id| blob(id)).collect();
        let set = std::thread::Builder::new()
            .stack_size(128 * 1024)
            .spawn(move || epoch_index_blob_set(&listing))
            .unwrap()
            .join()
            .expect("no stack overflow");
        // The chain reaches the last range; like Kopia, ranges ending at the current start
        // are skipped: [0,0] is, [1,1] is read (start 2), [2,2] skipped, [3,3] read…
        assert_eq!(set.blobs.len() as u64, CHAINED / 2);
        assert_eq!(set.blobs[0].id, "xr1_1_empty");
        assert_eq!(set.blobs[1].id, "xr3_3_empty");
        assert_eq!(
            set.blobs.last().unwrap().id,
            format!("xr{}_{}_empty", CHAINED - 1, CHAINED - 1)
        );
    }

    #[test]
    fn empty_listing() {
        let set = epoch_index_blob_set(&[]);
        assert_eq!(set.write_epoch, 0);
        assert!(set.blobs.is_empty());
        assert_eq!(set.deletion_watermark, None);
    }

    #[test]
    fn write_epoch_and_prefix() {
        assert_eq!(
            write_epoch(&listing(&["xe0", "xe3", "xe2", "xn9_a", "xebad"])),
            3
        );
        assert_eq!(write_epoch(&listing(&["xn5_a"])), 0);
        assert_eq!(new_index_blob_prefix(0), "xn0_");
        assert_eq!(new_index_blob_prefix(12), "xn12_");
    }

    #[test]
    fn fresh_repository_reads_all_uncompacted_blobs() {
        let set = epoch_index_blob_set(&listing(&[
            "xe0",
            "xn0_aaa-s1-c1",
            "xn0_bbb-s2-c1",
            "xn0_ccc-s3-c2", // incomplete set: xn blobs are not filtered
            "xn1_ddd-s4-c1", // W+1 is read too
            "xn2_eee-s5-c1", // beyond W+1: ignored
        ]));
        assert_eq!(set.write_epoch, 0);
        assert_eq!(
            ids(&set.blobs),
            vec![
                "xn0_aaa-s1-c1",
                "xn0_bbb-s2-c1",
                "xn0_ccc-s3-c2",
                "xn1_ddd-s4-c1"
            ]
        );
    }

    #[test]
    fn settled_epochs_use_compaction_unsettled_do_not() {
        let set = epoch_index_blob_set(&listing(&[
            "xe0",
            "xe1",
            "xe2",
            "xe3",
            "xn0_a-s1-c1",
            "xs0_c0-s9-c1",
            "xn1_b-s1-c1",
            "xs1_c1a-s8-c2", // incomplete compaction: epoch 1 keeps its xn blobs
            "xn2_c-s1-c1",
            "xs2_c2-s7-c1", // epoch 2 is not settled (W-1): xs ignored
            "xn3_d-s1-c1",
            "xn4_e-s1-c1",
        ]));
        assert_eq!(set.write_epoch, 3);
        assert_eq!(
            ids(&set.blobs),
            vec![
                "xs0_c0-s9-c1",
                "xn1_b-s1-c1",
                "xn2_c-s1-c1",
                "xn3_d-s1-c1",
                "xn4_e-s1-c1"
            ]
        );
    }

    #[test]
    fn compaction_with_several_blobs_and_concurrent_sets() {
        let set = epoch_index_blob_set(&listing(&[
            "xe5",
            "xn0_gone-s1-c1",
            "xs0_a-s1-c2",
            "xs0_b-s2-c2",
            "xs0_c-s1-c2", // s1 completes first
            "xs0_d-s2-c2",
        ]));
        assert_eq!(set.write_epoch, 5);
        assert_eq!(ids(&set.blobs), vec!["xs0_a-s1-c2", "xs0_c-s1-c2"]);
    }

    #[test]
    fn range_checkpoints_replace_covered_epochs() {
        let set = epoch_index_blob_set(&listing(&[
            "xe10",
            "xr0_5_r1-s1-c2",
            "xr0_5_r2-s1-c2",
            "xr0_3_other-s2-c1", // shorter alternative, not used
            "xr6_7_incomplete-s3-c2",
            "xn0_old-s1-c1",
            "xs5_old-s1-c1",
            "xs6_six-s1-c1",
            "xn6_six-s1-c1",
            "xn7_seven-s1-c1",
            "xn9_nine-s1-c1",
            "xw1700000000",
        ]));
        assert_eq!(set.write_epoch, 10);
        assert_eq!(
            ids(&set.blobs),
            vec![
                "xr0_5_r1-s1-c2",
                "xr0_5_r2-s1-c2",
                "xs6_six-s1-c1",
                "xn7_seven-s1-c1",
                "xn9_nine-s1-c1"
            ]
        );
        assert_eq!(
            set.deletion_watermark,
            Some(Utc.timestamp_opt(1_700_000_000, 0).unwrap())
        );
    }

    #[test]
    fn range_ending_at_start_is_skipped_like_kopia() {
        // Chain [0,0],[1,3]: Kopia skips [0,0] (max not > 0) and so never reads epoch 0.
        let set = epoch_index_blob_set(&listing(&[
            "xe6", "xr0_0_a", "xr1_3_b", "xn0_zero", "xn4_four",
        ]));
        assert_eq!(ids(&set.blobs), vec!["xr1_3_b", "xn4_four"]);
        // A lone [0,0] range is no chain at all: epoch 0 comes from its xn blobs.
        let set = epoch_index_blob_set(&listing(&["xe6", "xr0_0_a", "xn0_zero"]));
        assert_eq!(ids(&set.blobs), vec!["xn0_zero"]);
    }

    #[test]
    fn uncompacted_prefix_is_exact() {
        // "xn01_" is not listed by prefix "xn1_"; "xn1" without "_" is no index blob.
        let set = epoch_index_blob_set(&listing(&["xe1", "xn01_a", "xn1_b", "xn1", "xnx_c"]));
        assert_eq!(ids(&set.blobs), vec!["xn1_b"]);
    }

    #[test]
    fn hostile_write_epoch_is_cheap() {
        let set = epoch_index_blob_set(&listing(&["xe999999999999999", "xn0_a", "xs0_b"]));
        assert_eq!(set.write_epoch, 999_999_999_999_999);
        assert_eq!(ids(&set.blobs), vec!["xs0_b"]);
    }
}
