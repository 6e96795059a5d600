//! Kopia content indexes (formats v1 and v2): a zero-copy reader over the decrypted bytes of one
//! index, the builder that writes them byte-for-byte as Kopia does, and the merge rules.
//! Decryption, index blob names and epochs are other modules' business.
//!
//! Pack names: every [`IndexEntry`] carries its pack name as an `Arc<str>`. The iterators
//! ([`IndexView::iter`], [`IndexView::iter_with_prefix`], and so `entries_with_prefix`) keep a
//! small cache for the duration of one iteration, so all entries of one pack share one
//! allocation; single look-ups ([`IndexView::entry`], [`IndexView::find`]) allocate once each.

mod content_id;
pub mod merge;
mod v1;
mod v2;

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::DecodeError;

pub use content_id::{ContentId, MAX_HASH_LENGTH, MAX_KEY_LENGTH};
pub use merge::{is_visible, supersedes, MergedIndex};

/// Index format versions (the first byte of an index).
pub const VERSION_1: u8 = 1;
pub const VERSION_2: u8 = 2;

/// Pack name Kopia reports for an entry whose pack reference points outside the index.
pub const INVALID_PACK_BLOB_ID: &str = "---invalid---";

/// Bytes of encryption overhead (nonce + tag) of every Kopia content encryptor. Index v1 does
/// not store the original length; readers derive it as `packed_length - 28`.
pub const V1_ENCRYPTION_OVERHEAD: u32 = 28;

/// Number of random bytes appended to non-stable builds (pack-local indexes).
pub const RANDOM_SUFFIX_LENGTH: usize = 32;

/// One index entry: where a content lives and how it is stored (Kopia's `index.Info`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    pub content_id: ContentId,
    pub pack_blob_id: Arc<str>,
    pub timestamp_seconds: i64,
    pub original_length: u32,
    pub packed_length: u32,
    pub pack_offset: u32,
    pub compression_header_id: u32,
    pub deleted: bool,
    pub format_version: u8,
    pub encryption_key_id: u8,
}

/// Pack names already materialized during one call, keyed by where the name is stored in the
/// index (v1: name offset and length; v2: pack table index).
#[derive(Default)]
struct PackNames {
    by_location: HashMap<u64, Arc<str>>,
}

impl PackNames {
    fn get_or_insert(&mut self, location: u64, name: impl FnOnce() -> Arc<str>) -> Arc<str> {
        self.by_location
            .entry(location)
            .or_insert_with(name)
            .clone()
    }
}

/// Turns stored name bytes into a pack name. Kopia treats names as raw bytes; ours are `str`,
/// and a non-UTF-8 name (never written by Kopia) simply becomes a name no blob has.
fn pack_name_from_bytes(bytes: &[u8]) -> Arc<str> {
    Arc::from(String::from_utf8_lossy(bytes).as_ref())
}

#[derive(Clone, Copy, Debug)]
enum Layout {
    V1,
    V2(v2::Tables),
}

/// A validated, zero-copy view over the decrypted bytes of one index (v1 or v2).
///
/// Construction checks the header and that the entry table (and v2's pack and format tables and
/// the pack names they point to) lie inside the buffer, so later reads cannot go out of bounds.
/// Bytes after the parsed structures (the random suffix) are ignored.
#[derive(Clone, Copy, Debug)]
pub struct IndexView<'a> {
    bytes: &'a [u8],
    layout: Layout,
    key_length: usize,
    value_length: usize,
    entry_count: usize,
    entries_offset: usize,
}

impl<'a> IndexView<'a> {
    /// Validates the header and table bounds of an index; the version is the first byte.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        match bytes.first() {
            None => Err(DecodeError::new("index is empty")),
            Some(&VERSION_1) => v1::parse(bytes),
            Some(&VERSION_2) => v2::parse(bytes),
            Some(&other) => Err(DecodeError::new(format!(
                "unsupported index version {other}"
            ))),
        }
    }

    /// The format version (1 or 2).
    pub fn version(&self) -> u8 {
        match self.layout {
            Layout::V1 => VERSION_1,
            Layout::V2(_) => VERSION_2,
        }
    }

    /// Length of every binary key in this index (1 + hash length).
    pub fn key_length(&self) -> usize {
        self.key_length
    }

    pub fn len(&self) -> usize {
        self.entry_count
    }

    pub fn is_empty(&self) -> bool {
        self.entry_count == 0
    }

    /// Decodes entry `position` (0-based, in key order).
    pub fn entry(&self, position: usize) -> Result<IndexEntry, DecodeError> {
        self.decode_entry(position, &mut PackNames::default())
    }

    /// All entries in key order.
    pub fn iter(&self) -> Entries<'a> {
        self.entries_in(0..self.entry_count)
    }

    /// Binary search for one content ID. An ID whose key length differs from this index's can
    /// not be in it and gives `Ok(None)`.
    pub fn find(&self, id: &ContentId) -> Result<Option<IndexEntry>, DecodeError> {
        let target = id.key_bytes();
        if target.len() != self.key_length {
            return Ok(None);
        }
        let position = self.partition_point(|key| key < target);
        if position < self.entry_count && self.key_at(position) == target {
            self.entry(position).map(Some)
        } else {
            Ok(None)
        }
    }

    /// Entries whose content ID has the given prefix letter (e.g. `m` for manifests), found by
    /// binary search so that the rest of the index is never decoded.
    pub fn entries_with_prefix(&self, prefix: char) -> Result<Vec<IndexEntry>, DecodeError> {
        self.iter_with_prefix(prefix).collect()
    }

    /// Lazy form of [`IndexView::entries_with_prefix`].
    pub fn iter_with_prefix(&self, prefix: char) -> Entries<'a> {
        if !prefix.is_ascii() || prefix == '\0' {
            return self.entries_in(0..0);
        }
        let byte = prefix as u8;
        let start = self.partition_point(|key| key[0] < byte);
        let end = start + self.partition_range(start, |key| key[0] <= byte);
        self.entries_in(start..end)
    }

    fn entries_in(&self, range: std::ops::Range<usize>) -> Entries<'a> {
        Entries {
            view: *self,
            next: range.start,
            end: range.end,
            names: PackNames::default(),
        }
    }

    /// Number of leading entries (from 0) whose key satisfies `pred`, which must be monotone.
    fn partition_point(&self, pred: impl Fn(&[u8]) -> bool) -> usize {
        self.partition_range(0, pred)
    }

    fn partition_range(&self, start: usize, pred: impl Fn(&[u8]) -> bool) -> usize {
        let (mut low, mut high) = (start, self.entry_count);
        while low < high {
            let mid = low + (high - low) / 2;
            if pred(self.key_at(mid)) {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        low - start
    }

    fn stride(&self) -> usize {
        self.key_length + self.value_length
    }

    /// Key of entry `position`; in bounds because `parse` checked the entry table fits.
    fn key_at(&self, position: usize) -> &'a [u8] {
        let start = self.entries_offset + position * self.stride();
        &self.bytes[start..start + self.key_length]
    }

    fn decode_entry(
        &self,
        position: usize,
        names: &mut PackNames,
    ) -> Result<IndexEntry, DecodeError> {
        if position >= self.entry_count {
            return Err(DecodeError::new(format!(
                "index entry {position} out of range (index has {} entries)",
                self.entry_count
            )));
        }
        let start = self.entries_offset + position * self.stride();
        let key = &self.bytes[start..start + self.key_length];
        let value = &self.bytes[start + self.key_length..start + self.stride()];
        let content_id = ContentId::from_key_bytes(key)
            .map_err(|e| DecodeError::new(format!("index entry {position}: {e}")))?;
        Ok(match self.layout {
            Layout::V1 => v1::decode_value(self.bytes, content_id, value, names),
            Layout::V2(tables) => tables.decode_value(self.bytes, content_id, value, names),
        })
    }
}

/// Iterator over a range of an index's entries, sharing pack-name allocations.
pub struct Entries<'a> {
    view: IndexView<'a>,
    next: usize,
    end: usize,
    names: PackNames,
}

impl Iterator for Entries<'_> {
    type Item = Result<IndexEntry, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.end {
            return None;
        }
        let position = self.next;
        self.next += 1;
        Some(self.view.decode_entry(position, &mut self.names))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.end - self.next;
        (remaining, Some(remaining))
    }
}

impl ExactSizeIterator for Entries<'_> {}

/// Builds an index the way Kopia's flush does ("stable": no random suffix).
///
/// Entries are sorted by key; pack names are stored once each in order of first appearance in
/// that order. Errors on: no entries, duplicate content IDs, keys of different lengths or of
/// length 1, and anything the chosen version cannot represent (v1: compression or encryption
/// key IDs, empty pack names, offsets ≥ 2^31; v2: lengths ≥ 2^28, offsets ≥ 2^30, more than
/// 2^24 packs or 255 formats; both: pack names over 255 bytes, unrepresentable timestamps).
pub fn build_index(version: u8, entries: &[IndexEntry]) -> Result<Vec<u8>, DecodeError> {
    let sorted = sorted_for_build(entries)?;
    let key_length = sorted[0].content_id.key_bytes().len();
    match version {
        VERSION_1 => v1::build(&sorted, key_length),
        VERSION_2 => v2::build(&sorted, key_length),
        other => Err(DecodeError::new(format!(
            "cannot build index version {other} (supported: 1, 2)"
        ))),
    }
}

/// Like [`build_index`], then appends 32 random bytes so that the index (and its hash) is
/// unique, as Kopia does for pack-local indexes.
pub fn build_index_with_random_suffix(
    version: u8,
    entries: &[IndexEntry],
) -> Result<Vec<u8>, DecodeError> {
    let mut bytes = build_index(version, entries)?;
    let suffix: [u8; RANDOM_SUFFIX_LENGTH] = rand::random();
    bytes.extend_from_slice(&suffix);
    Ok(bytes)
}

fn sorted_for_build(entries: &[IndexEntry]) -> Result<Vec<&IndexEntry>, DecodeError> {
    let Some(first) = entries.first() else {
        return Err(DecodeError::new("cannot build an index without entries"));
    };
    let key_length = first.content_id.key_bytes().len();
    if key_length <= 1 {
        return Err(DecodeError::new(format!(
            "cannot index content ID {:?}: empty hash",
            first.content_id.to_string()
        )));
    }
    let mut sorted: Vec<&IndexEntry> = entries.iter().collect();
    sorted.sort_unstable_by_key(|entry| entry.content_id);
    for entry in &sorted {
        if entry.content_id.key_bytes().len() != key_length {
            return Err(DecodeError::new(format!(
                "content ID {} has a {}-byte key, others have {key_length}",
                entry.content_id,
                entry.content_id.key_bytes().len()
            )));
        }
    }
    if let Some(pair) = sorted
        .windows(2)
        .find(|pair| pair[0].content_id == pair[1].content_id)
    {
        return Err(DecodeError::new(format!(
            "content ID {} appears twice",
            pair[0].content_id
        )));
    }
    Ok(sorted)
}

/// Pack names in order of first appearance and, for each sorted entry, its name's position.
struct PackTable<'e> {
    names: Vec<&'e str>,
    entry_pack: Vec<usize>,
}

impl<'e> PackTable<'e> {
    fn new(sorted: &[&'e IndexEntry]) -> Result<Self, DecodeError> {
        let mut positions: HashMap<&'e str, usize> = HashMap::new();
        let mut names = Vec::new();
        let mut entry_pack = Vec::with_capacity(sorted.len());
        for entry in sorted {
            let name: &'e str = &entry.pack_blob_id;
            if name.len() > 255 {
                return Err(DecodeError::new(format!(
                    "pack name of content {} is {} bytes long (max 255)",
                    entry.content_id,
                    name.len()
                )));
            }
            let position = *positions.entry(name).or_insert_with(|| {
                names.push(name);
                names.len() - 1
            });
            entry_pack.push(position);
        }
        Ok(PackTable { names, entry_pack })
    }
}

fn checked_u32(value: usize, what: &str) -> Result<u32, DecodeError> {
    u32::try_from(value).map_err(|_| DecodeError::new(format!("{what} {value} exceeds 32 bits")))
}

fn be_u32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

fn be_u24(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]])
}

fn be_u16(bytes: &[u8]) -> u16 {
    u16::from_be_bytes([bytes[0], bytes[1]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const P1: &str = "q0123456789abcdef0123456789abcdef-s0011223344556677144";
    const P2: &str = "p00112233445566778899aabbccddeeff-s0011223344556677144";

    fn hex_dump(lines: &str) -> Vec<u8> {
        let digits: String = lines
            .lines()
            .filter_map(|line| line.split_whitespace().nth(1))
            .collect();
        hex::decode(digits).unwrap()
    }

    #[allow(clippy::too_many_arguments)]
    fn entry(
        id: &str,
        pack: &str,
        ts: i64,
        deleted: bool,
        offset: u32,
        packed: u32,
        original: u32,
        compression: u32,
    ) -> IndexEntry {
        IndexEntry {
            content_id: ContentId::parse(id).unwrap(),
            pack_blob_id: Arc::from(pack),
            timestamp_seconds: ts,
            original_length: original,
            packed_length: packed,
            pack_offset: offset,
            compression_header_id: compression,
            deleted,
            format_version: 3,
            encryption_key_id: 0,
        }
    }

    /// The three entries of guide §12.7, in unsorted order.
    fn guide_entries() -> Vec<IndexEntry> {
        vec![
            entry(
                "m00112233445566778899aabbccddeeff",
                P1,
                1700000000,
                false,
                32,
                1052,
                1024,
                0,
            ),
            entry(
                "0123456789abcdef0123456789abcdef",
                P2,
                1700000001,
                false,
                32,
                4124,
                8192,
                0x1101,
            ),
            entry(
                "kffeeddccbbaa99887766554433221100",
                P1,
                1700000002,
                true,
                1084,
                100,
                72,
                0,
            ),
        ]
    }

    fn sorted(mut entries: Vec<IndexEntry>) -> Vec<IndexEntry> {
        entries.sort_by_key(|entry| entry.content_id);
        entries
    }

    const GUIDE_V2: &str = "
0000  0211001100000003000000020200000000000123456789abcdef0123456789ab
0020  cdef6553f1010000002000200000101c0000006bffeeddccbbaa998877665544
0040  332211006553f1028000043c0000480000640001016d00112233445566778899
0060  aabbccddeeff6553f1000000002000040000041c000101360000008d36000000
0080  c300001101030000000000030070303031313232333334343535363637373838
00a0  39396161626263636464656566662d7330303131323233333434353536363737
00c0  3134347130313233343536373839616263646566303132333435363738396162
00e0  636465662d7330303131323233333434353536363737313434";

    const GUIDE_V1: &str = "
0000  0111001400000003000123456789abcdef0123456789abcdef00006553f10103
0020  3600000077000000200000101c6bffeeddccbbaa998877665544332211000000
0040  6553f1020336000000ad8000043c000000646d00112233445566778899aabbcc
0060  ddeeff00006553f1000336000000ad000000200000041c703030313132323333
0080  3434353536363737383839396161626263636464656566662d73303031313232
00a0  3333343435353636373731343471303132333435363738396162636465663031
00c0  32333435363738396162636465662d7330303131323233333434353536363737
00e0  313434";

    /// Guide §7.3: one manifest entry, 115 bytes.
    const GUIDE_ONE_ENTRY_V2: &str = "
0000  02 11 00 10 00 00 00 01 00 00 00 01 01 00 00 00
0010  00 6d 03 43 b2 57 6a f3 82 4d a2 cb 7b 09 d0 dc
0020  63 22 65 93 7d 25 00 00 00 20 00 00 ee 00 01 0a
0030  00 00 36 00 00 00 3d 00 00 00 00 03 00 71 30 31
0040  32 33 34 35 36 37 38 39 61 62 63 64 65 66 30 31
0050  32 33 34 35 36 37 38 39 61 62 63 64 65 66 2d 73
0060  30 30 31 31 32 32 33 33 34 34 35 35 36 36 37 37
0070  31 34 34";

    fn spaced_hex_dump(lines: &str) -> Vec<u8> {
        let digits: String = lines
            .lines()
            .flat_map(|line| line.split_whitespace().skip(1))
            .collect();
        hex::decode(digits).unwrap()
    }

    fn one_manifest_entry() -> IndexEntry {
        entry(
            "m0343b2576af3824da2cb7b09d0dc6322",
            P1,
            0x65937d25,
            false,
            32,
            266,
            238,
            0,
        )
    }

    fn collect(view: &IndexView<'_>) -> Vec<IndexEntry> {
        view.iter().collect::<Result<_, _>>().unwrap()
    }

    #[test]
    fn builds_guide_v2_dump() {
        let bytes = build_index(VERSION_2, &guide_entries()).unwrap();
        assert_eq!(hex::encode(&bytes), hex::encode(hex_dump(GUIDE_V2)));
        assert_eq!(bytes.len(), 249);
    }

    #[test]
    fn parses_guide_v2_dump() {
        let bytes = hex_dump(GUIDE_V2);
        let view = IndexView::parse(&bytes).unwrap();
        assert_eq!(view.version(), 2);
        assert_eq!(view.len(), 3);
        assert_eq!(view.key_length(), 17);
        assert_eq!(collect(&view), sorted(guide_entries()));
    }

    #[test]
    fn builds_guide_v1_dump() {
        let mut entries = guide_entries();
        for e in &mut entries {
            e.compression_header_id = 0;
        }
        let bytes = build_index(VERSION_1, &entries).unwrap();
        assert_eq!(hex::encode(&bytes), hex::encode(hex_dump(GUIDE_V1)));
        assert_eq!(bytes.len(), 227);
    }

    #[test]
    fn parses_guide_v1_dump() {
        let bytes = hex_dump(GUIDE_V1);
        let view = IndexView::parse(&bytes).unwrap();
        assert_eq!(view.version(), 1);
        let mut expected = sorted(guide_entries());
        for e in &mut expected {
            // v1 stores neither compression nor original length.
            e.compression_header_id = 0;
            e.original_length = e.packed_length - V1_ENCRYPTION_OVERHEAD;
        }
        assert_eq!(collect(&view), expected);
        assert!(view.entry(1).unwrap().deleted);
    }

    #[test]
    fn one_entry_example_round_trips() {
        let expected = spaced_hex_dump(GUIDE_ONE_ENTRY_V2);
        assert_eq!(expected.len(), 115);
        let bytes = build_index(VERSION_2, &[one_manifest_entry()]).unwrap();
        assert_eq!(hex::encode(&bytes), hex::encode(&expected));
        let view = IndexView::parse(&expected).unwrap();
        assert_eq!(collect(&view), vec![one_manifest_entry()]);
    }

    #[test]
    fn random_suffix_is_ignored_by_readers() {
        for version in [VERSION_1, VERSION_2] {
            let entries = vec![one_manifest_entry()];
            let stable = build_index(version, &entries).unwrap();
            let a = build_index_with_random_suffix(version, &entries).unwrap();
            let b = build_index_with_random_suffix(version, &entries).unwrap();
            assert_eq!(a.len(), stable.len() + RANDOM_SUFFIX_LENGTH);
            assert_eq!(&a[..stable.len()], &stable[..]);
            assert_ne!(a, b);
            let view = IndexView::parse(&a).unwrap();
            assert_eq!(view.len(), 1);
            assert_eq!(
                view.find(&entries[0].content_id)
                    .unwrap()
                    .unwrap()
                    .packed_length,
                266
            );
        }
    }

    #[test]
    fn find_and_prefix_ranges() {
        let bytes = build_index(VERSION_2, &guide_entries()).unwrap();
        let view = IndexView::parse(&bytes).unwrap();
        for e in guide_entries() {
            assert_eq!(view.find(&e.content_id).unwrap(), Some(e));
        }
        let missing = ContentId::parse("m00112233445566778899aabbccddeefe").unwrap();
        assert_eq!(view.find(&missing).unwrap(), None);
        let short = ContentId::parse("m0011").unwrap();
        assert_eq!(view.find(&short).unwrap(), None);

        let m = view.entries_with_prefix('m').unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[0].content_id.to_string(),
            "m00112233445566778899aabbccddeeff"
        );
        assert_eq!(view.iter_with_prefix('k').len(), 1);
        assert_eq!(view.iter_with_prefix('x').len(), 0);
        assert_eq!(view.iter_with_prefix('a').len(), 0);
        assert_eq!(view.iter_with_prefix('é').len(), 0);
    }

    #[test]
    fn prefix_range_in_a_larger_index_shares_pack_names() {
        let mut entries = Vec::new();
        for (i, prefix) in ["", "k", "m", "m", "m", "x"].iter().enumerate() {
            let id = format!("{prefix}{:032x}", i * 7919);
            entries.push(entry(&id, P1, 1700000000 + i as i64, false, 32, 100, 72, 0));
        }
        let bytes = build_index(VERSION_2, &entries).unwrap();
        let view = IndexView::parse(&bytes).unwrap();
        let m = view.entries_with_prefix('m').unwrap();
        assert_eq!(m.len(), 3);
        assert!(m.iter().all(|e| e.content_id.prefix() == Some('m')));
        assert!(Arc::ptr_eq(&m[0].pack_blob_id, &m[2].pack_blob_id));
        assert_eq!(view.iter_with_prefix('x').len(), 1);
        assert_eq!(view.iter_with_prefix('g').len(), 0);
        assert_eq!(view.iter_with_prefix('z').len(), 0);
    }

    #[test]
    fn non_zero_base_timestamp_is_added() {
        let mut bytes = build_index(VERSION_2, &[one_manifest_entry()]).unwrap();
        bytes[13..17].copy_from_slice(&1000u32.to_be_bytes());
        let view = IndexView::parse(&bytes).unwrap();
        assert_eq!(view.entry(0).unwrap().timestamp_seconds, 0x65937d25 + 1000);
    }

    #[test]
    fn v2_long_lengths_use_19_byte_entries() {
        let mut big = one_manifest_entry();
        big.original_length = (1 << 28) - 1;
        big.packed_length = (1 << 24) + 5;
        big.pack_offset = (1 << 30) - 1;
        big.deleted = true;
        let small = entry(
            "m0343b2576af3824da2cb7b09d0dc6323",
            P2,
            5,
            false,
            0,
            1,
            2,
            7,
        );
        let bytes = build_index(VERSION_2, &[big.clone(), small.clone()]).unwrap();
        // Kopia v0.23.1's builder output for the same two entries.
        let kopia = "02110013000000020000000202000000006d0343b2576af3824da2cb7b09d0dc6322\
            65937d25bfffffffffffff00000500000000f16d0343b2576af3824da2cb7b09d0dc6323\
            00000005000000000000020000010001010000360000006f36000000a500000000030000\
            00000703007130313233343536373839616263646566303132333435363738396162636465\
            662d733030313132323333343435353636373731343470303031313232333334343535363637\
            37383839396161626263636464656566662d7330303131323233333434353536363737313434";
        assert_eq!(hex::encode(&bytes), kopia);
        assert_eq!(be_u16(&bytes[2..4]), 19);
        let view = IndexView::parse(&bytes).unwrap();
        assert_eq!(collect(&view), vec![big, small]);
    }

    #[test]
    fn v2_single_format_many_packs_round_trip() {
        // Two formats force the format byte; each entry in its own pack.
        let entries: Vec<_> = (0..40u32)
            .map(|i| {
                let mut e = entry(
                    &format!("{:032x}", i),
                    &format!("p{i:032x}-s1"),
                    1700000000,
                    i % 3 == 0,
                    32 + i,
                    100 + i,
                    50 + i,
                    if i % 2 == 0 { 0 } else { 0x1101 },
                );
                e.encryption_key_id = (i % 5 == 0) as u8;
                e
            })
            .collect();
        let bytes = build_index(VERSION_2, &entries).unwrap();
        assert_eq!(be_u16(&bytes[2..4]), 17);
        assert_eq!(collect(&IndexView::parse(&bytes).unwrap()), entries);
    }

    #[test]
    fn v2_more_than_65536_packs_use_18_byte_entries() {
        let count = (1 << 16) + 1;
        let entries: Vec<_> = (0..count)
            .map(|i| {
                entry(
                    &format!("{i:032x}"),
                    &format!("p{i:x}"),
                    1,
                    false,
                    32,
                    60,
                    32,
                    0,
                )
            })
            .collect();
        let bytes = build_index(VERSION_2, &entries).unwrap();
        assert_eq!(be_u16(&bytes[2..4]), 18);
        let view = IndexView::parse(&bytes).unwrap();
        let last = &entries[count - 1];
        assert_eq!(view.find(&last.content_id).unwrap().as_ref(), Some(last));
        assert_eq!(view.entry(1).unwrap(), entries[1]);
    }

    #[test]
    fn prefix_lookup_does_not_decode_other_entries() {
        let mut bytes = build_index(VERSION_2, &guide_entries()).unwrap();
        // Entry 0's key prefix byte becomes 0x01: not a valid prefix, but still sorted first.
        bytes[17] = 0x01;
        let view = IndexView::parse(&bytes).unwrap();
        assert!(view.entry(0).is_err());
        assert!(view.iter().any(|e| e.is_err()));
        assert_eq!(view.entries_with_prefix('m').unwrap().len(), 1);
        assert_eq!(view.entries_with_prefix('k').unwrap().len(), 1);
    }

    #[test]
    fn v2_accepts_empty_pack_name_like_kopia() {
        let e = entry(
            "m0343b2576af3824da2cb7b09d0dc6322",
            "",
            1,
            false,
            0,
            0,
            0,
            0,
        );
        let bytes = build_index(VERSION_2, std::slice::from_ref(&e)).unwrap();
        assert_eq!(collect(&IndexView::parse(&bytes).unwrap()), vec![e]);
    }

    #[test]
    fn builder_refuses_what_formats_cannot_hold() {
        let ok = one_manifest_entry();
        let refuse = |version: u8, change: fn(&mut IndexEntry)| {
            let mut e = ok.clone();
            change(&mut e);
            assert!(build_index(version, &[e]).is_err(), "version {version}");
        };
        assert!(build_index(VERSION_2, &[]).is_err());
        assert!(build_index(VERSION_1, &[]).is_err());
        assert!(build_index(3, std::slice::from_ref(&ok)).is_err());
        refuse(VERSION_1, |e| e.compression_header_id = 0x1101);
        refuse(VERSION_1, |e| e.encryption_key_id = 1);
        refuse(VERSION_1, |e| e.pack_blob_id = Arc::from(""));
        refuse(VERSION_1, |e| e.pack_offset = 1 << 31);
        refuse(VERSION_1, |e| e.timestamp_seconds = -1);
        refuse(VERSION_1, |e| e.timestamp_seconds = 1 << 48);
        refuse(VERSION_2, |e| e.original_length = 1 << 28);
        refuse(VERSION_2, |e| e.packed_length = 1 << 28);
        refuse(VERSION_2, |e| e.pack_offset = 1 << 30);
        refuse(VERSION_2, |e| e.timestamp_seconds = 1 << 32);
        refuse(VERSION_2, |e| e.timestamp_seconds = -1);
        for version in [VERSION_1, VERSION_2] {
            refuse(version, |e| e.pack_blob_id = Arc::from("p".repeat(256)));
            refuse(version, |e| e.content_id = ContentId::parse("").unwrap());
            assert!(build_index(version, &[ok.clone(), ok.clone()]).is_err());
            let mut other = ok.clone();
            other.content_id = ContentId::parse("m0011").unwrap();
            assert!(build_index(version, &[ok.clone(), other]).is_err());
        }
        // Limits themselves are accepted.
        let mut edge = ok.clone();
        edge.original_length = (1 << 28) - 1;
        edge.pack_offset = (1 << 30) - 1;
        edge.timestamp_seconds = u32::MAX as i64;
        assert!(build_index(VERSION_2, &[edge]).is_ok());
    }

    #[test]
    fn v2_refuses_more_than_255_formats() {
        let entries: Vec<_> = (0..256u32)
            .map(|i| entry(&format!("{:032x}", i), P1, 1, false, 0, 0, 0, i))
            .collect();
        assert!(build_index(VERSION_2, &entries).is_err());
        assert!(build_index(VERSION_2, &entries[..255]).is_ok());
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for valid in [hex_dump(GUIDE_V2), hex_dump(GUIDE_V1)] {
            for length in 0..valid.len() {
                let cut = &valid[..length];
                // Cutting only pack-name bytes may still leave v1 headers/tables valid; reads
                // must then not panic either.
                if let Ok(view) = IndexView::parse(cut) {
                    for e in view.iter() {
                        let _ = e;
                    }
                    assert_eq!(valid[0], VERSION_1, "v2 truncated to {length} parsed");
                }
            }
        }
    }

    #[test]
    fn corrupt_headers_are_errors() {
        let valid = hex_dump(GUIDE_V2);
        let corrupt = |offset: usize, value: u8| {
            let mut bytes = valid.clone();
            bytes[offset] = value;
            IndexView::parse(&bytes).map(|v| v.len())
        };
        assert!(corrupt(0, 3).is_err()); // version
        assert!(corrupt(1, 1).is_err()); // key length
        assert!(corrupt(1, 250).is_err()); // stride > 256 / tables past the end
        assert!(corrupt(3, 15).is_err()); // entry size
        assert!(corrupt(3, 20).is_err());
        assert!(corrupt(4, 0x7f).is_err()); // entry count
        assert!(corrupt(8, 0xff).is_err()); // pack count
        assert!(corrupt(12, 0xff).is_err()); // format count
        assert!(corrupt(0x7d, 0xff).is_err()); // pack name offset of pack 1
        assert!(IndexView::parse(&[]).is_err());

        let v1 = hex_dump(GUIDE_V1);
        let mut bad_value_size = v1.clone();
        bad_value_size[3] = 21;
        assert!(IndexView::parse(&bad_value_size).is_err());
    }

    #[test]
    fn out_of_table_references_give_kopia_markers() {
        // v2: pack index 7 and format index 9 do not exist.
        let mut bytes = hex_dump(GUIDE_V2);
        let value = 17 + 17; // first entry's value
        bytes[value + 15] = 7;
        bytes[value + 16] = 9;
        let view = IndexView::parse(&bytes).unwrap();
        let e = view.entry(0).unwrap();
        assert_eq!(&*e.pack_blob_id, INVALID_PACK_BLOB_ID);
        assert_eq!(e.format_version, 0xFF);
        assert_eq!(e.compression_header_id, 0xFFFF);
        assert_eq!(e.encryption_key_id, 0xFF);

        // v1: name offset past the end.
        let mut bytes = hex_dump(GUIDE_V1);
        bytes[8 + 17 + 8..8 + 17 + 12].copy_from_slice(&0xFFFF_FF00u32.to_be_bytes());
        let view = IndexView::parse(&bytes).unwrap();
        assert_eq!(&*view.entry(0).unwrap().pack_blob_id, INVALID_PACK_BLOB_ID);
    }

    #[test]
    fn invalid_key_prefix_is_an_entry_error() {
        let mut bytes = hex_dump(GUIDE_V2);
        bytes[17] = b'a';
        let view = IndexView::parse(&bytes).unwrap();
        assert!(view.entry(0).is_err());
        assert!(view.entry(1).is_ok());
        assert!(view.entry(3).is_err());
    }

    #[test]
    fn empty_v1_index_from_kopia_has_no_entries() {
        // What Kopia's v1 builder writes for zero entries: key size 0xFF.
        let bytes = [1, 0xFF, 0, 20, 0, 0, 0, 0];
        let view = IndexView::parse(&bytes).unwrap();
        assert!(view.is_empty());
        let id = ContentId::parse("m0343b2576af3824da2cb7b09d0dc6322").unwrap();
        assert_eq!(view.find(&id).unwrap(), None);
        assert_eq!(view.entries_with_prefix('m').unwrap(), vec![]);
    }

    #[test]
    fn merged_index_over_views() {
        let first = build_index(VERSION_2, &guide_entries()).unwrap();
        let mut newer = guide_entries()[0].clone();
        newer.timestamp_seconds += 10;
        newer.deleted = true;
        let second = build_index(VERSION_2, &[newer.clone()]).unwrap();
        let mut merged = MergedIndex::new();
        merged
            .add_index(&IndexView::parse(&second).unwrap())
            .unwrap();
        merged
            .add_index(&IndexView::parse(&first).unwrap())
            .unwrap();
        assert_eq!(merged.len(), 3);
        assert_eq!(merged.get(&newer.content_id), Some(&newer));
    }
}
