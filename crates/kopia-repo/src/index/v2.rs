//! Index format version 2: 17-byte header, variable 16..19-byte values, then a pack table, a
//! format table (compression, format version, encryption key) and the pack names.
//! Dispatch, sorting and validation common to both versions live in `mod.rs`.

use std::collections::HashMap;

use super::{
    be_u16, be_u24, be_u32, checked_u32, pack_name_from_bytes, ContentId, IndexEntry, IndexView,
    Layout, PackNames, PackTable, INVALID_PACK_BLOB_ID, VERSION_2,
};
use crate::error::DecodeError;

const HEADER_LENGTH: usize = 17;
const PACK_RECORD_LENGTH: usize = 5;
const FORMAT_RECORD_LENGTH: usize = 6;
const MIN_VALUE_LENGTH: usize = 16;
const MAX_VALUE_LENGTH: usize = 19;
/// Longest key plus value Kopia accepts.
const MAX_STRIDE: usize = 256;
const MAX_FORMATS: usize = 255;
const MAX_PACKS: usize = 1 << 24;
/// Pack indexes at or above this need the extra pack-index byte (value length ≥ 18).
const MAX_SHORT_PACKS: usize = 1 << 16;
const MAX_LENGTH: u32 = 1 << 28;
/// Lengths at or above this need the high-nibble byte (value length 19).
const MAX_SHORT_LENGTH: u32 = 1 << 24;
const MAX_PACK_OFFSET: u32 = 1 << 30;
const DELETED_FLAG: u32 = 0x8000_0000;

/// Values Kopia reports for an entry whose format index is outside the format table.
const INVALID_FORMAT_VERSION: u8 = 0xFF;
const INVALID_COMPRESSION_HEADER_ID: u32 = 0xFFFF;
const INVALID_ENCRYPTION_KEY_ID: u8 = 0xFF;

/// Where the v2 tables sit, found by `parse` and known to lie inside the index bytes.
#[derive(Clone, Copy, Debug)]
pub(super) struct Tables {
    base_timestamp: u32,
    pack_count: usize,
    packs_offset: usize,
    format_count: usize,
    formats_offset: usize,
}

pub(super) fn parse(bytes: &[u8]) -> Result<IndexView<'_>, DecodeError> {
    let header = bytes.get(..HEADER_LENGTH).ok_or_else(|| {
        DecodeError::new(format!(
            "index v2 header truncated: {} of {HEADER_LENGTH} bytes",
            bytes.len()
        ))
    })?;
    let key_length = header[1] as usize;
    let value_length = be_u16(&header[2..4]) as usize;
    let entry_count = be_u32(&header[4..8]) as usize;
    let pack_count = be_u32(&header[8..12]) as usize;
    let format_count = header[12] as usize;
    let base_timestamp = be_u32(&header[13..17]);
    if key_length <= 1 {
        return Err(DecodeError::new(format!(
            "index v2 header: invalid key length {key_length}"
        )));
    }
    if !(MIN_VALUE_LENGTH..=MAX_VALUE_LENGTH).contains(&value_length) {
        return Err(DecodeError::new(format!(
            "index v2 header: entry size {value_length} outside {MIN_VALUE_LENGTH}..={MAX_VALUE_LENGTH}"
        )));
    }
    if format_count > MAX_FORMATS {
        return Err(DecodeError::new(format!(
            "index v2 header: {format_count} formats (max {MAX_FORMATS})"
        )));
    }
    let stride = key_length + value_length;
    if stride > MAX_STRIDE {
        return Err(DecodeError::new(format!(
            "index v2 header: entry stride {stride} over {MAX_STRIDE}"
        )));
    }

    // u64 arithmetic: counts come from the header and may be absurd.
    let packs_offset = HEADER_LENGTH as u64 + entry_count as u64 * stride as u64;
    let formats_offset = packs_offset + pack_count as u64 * PACK_RECORD_LENGTH as u64;
    let tables_end = formats_offset + (format_count * FORMAT_RECORD_LENGTH) as u64;
    if tables_end > bytes.len() as u64 {
        return Err(DecodeError::new(format!(
            "index v2 truncated: {entry_count} entries, {pack_count} packs and {format_count} formats need {tables_end} bytes, have {}",
            bytes.len()
        )));
    }
    let tables = Tables {
        base_timestamp,
        pack_count,
        packs_offset: packs_offset as usize,
        format_count,
        formats_offset: formats_offset as usize,
    };
    for pack in 0..pack_count {
        tables.pack_name_range(bytes, pack)?;
    }
    Ok(IndexView {
        bytes,
        layout: Layout::V2(tables),
        key_length,
        value_length,
        entry_count,
        entries_offset: HEADER_LENGTH,
    })
}

impl Tables {
    /// Byte range of pack `pack`'s name, checked against the index length.
    fn pack_name_range(
        &self,
        bytes: &[u8],
        pack: usize,
    ) -> Result<std::ops::Range<usize>, DecodeError> {
        let record = self.packs_offset + pack * PACK_RECORD_LENGTH;
        let record = &bytes[record..record + PACK_RECORD_LENGTH];
        let length = record[0] as usize;
        let start = be_u32(&record[1..5]) as usize;
        if start + length > bytes.len() {
            return Err(DecodeError::new(format!(
                "index v2 pack {pack}: name at {start}+{length} lies outside the {}-byte index",
                bytes.len()
            )));
        }
        Ok(start..start + length)
    }

    /// Decodes a 16..19-byte value. Out-of-table pack or format indexes give Kopia's invalid
    /// markers rather than an error, as Kopia does.
    pub(super) fn decode_value(
        &self,
        index: &[u8],
        content_id: ContentId,
        value: &[u8],
        names: &mut PackNames,
    ) -> IndexEntry {
        let offset_and_flag = be_u32(&value[4..8]);
        let mut original_length = be_u24(&value[8..11]);
        let mut packed_length = be_u24(&value[11..14]);
        let mut pack = be_u16(&value[14..16]) as usize;
        let format = value.get(16).copied().unwrap_or(0) as usize;
        if let Some(&high) = value.get(17) {
            pack |= (high as usize) << 16;
        }
        if let Some(&high) = value.get(18) {
            original_length |= ((high >> 4) as u32) << 24;
            packed_length |= ((high & 0x0F) as u32) << 24;
        }

        let pack_blob_id = names.get_or_insert(pack as u64, || {
            if pack < self.pack_count {
                // In bounds: every pack name range was checked by `parse`.
                match self.pack_name_range(index, pack) {
                    Ok(range) => pack_name_from_bytes(&index[range]),
                    Err(_) => INVALID_PACK_BLOB_ID.into(),
                }
            } else {
                INVALID_PACK_BLOB_ID.into()
            }
        });
        let (compression_header_id, format_version, encryption_key_id) =
            if format < self.format_count {
                let record = self.formats_offset + format * FORMAT_RECORD_LENGTH;
                let record = &index[record..record + FORMAT_RECORD_LENGTH];
                (be_u32(&record[0..4]), record[4], record[5])
            } else {
                (
                    INVALID_COMPRESSION_HEADER_ID,
                    INVALID_FORMAT_VERSION,
                    INVALID_ENCRYPTION_KEY_ID,
                )
            };

        IndexEntry {
            content_id,
            pack_blob_id,
            timestamp_seconds: be_u32(&value[0..4]) as i64 + self.base_timestamp as i64,
            original_length,
            packed_length,
            pack_offset: offset_and_flag & !DELETED_FLAG,
            compression_header_id,
            deleted: offset_and_flag & DELETED_FLAG != 0,
            format_version,
            encryption_key_id,
        }
    }
}

/// The (compression, format version, encryption key) triple stored once per index.
type FormatKey = (u32, u8, u8);

fn format_key(entry: &IndexEntry) -> FormatKey {
    (
        entry.compression_header_id,
        entry.format_version,
        entry.encryption_key_id,
    )
}

/// Picks the value length the way Kopia does: 16 bytes, plus the format byte when there is
/// more than one format, the pack-index byte beyond 65 536 packs, the high-length byte when a
/// length needs more than 24 bits. Each later byte implies the earlier ones.
fn value_length_for(format_count: usize, pack_count: usize, longest: u32) -> usize {
    let mut length = MIN_VALUE_LENGTH;
    if format_count > 1 {
        length = 17;
    }
    if pack_count > MAX_SHORT_PACKS {
        length = 18;
    }
    if longest >= MAX_SHORT_LENGTH {
        length = 19;
    }
    length
}

/// Writes sorted entries (all keys `key_length` bytes) as a v2 index with base timestamp 0.
pub(super) fn build(sorted: &[&IndexEntry], key_length: usize) -> Result<Vec<u8>, DecodeError> {
    let mut format_positions: HashMap<FormatKey, usize> = HashMap::new();
    let mut formats: Vec<FormatKey> = Vec::new();
    let mut entry_format = Vec::with_capacity(sorted.len());
    let mut longest = 0;
    for entry in sorted {
        check_representable(entry)?;
        let key = format_key(entry);
        let position = *format_positions.entry(key).or_insert_with(|| {
            formats.push(key);
            formats.len() - 1
        });
        entry_format.push(position);
        longest = longest.max(entry.original_length).max(entry.packed_length);
    }
    if formats.len() > MAX_FORMATS {
        return Err(DecodeError::new(format!(
            "index v2 cannot hold {} distinct formats (max {MAX_FORMATS})",
            formats.len()
        )));
    }
    let packs = PackTable::new(sorted)?;
    if packs.names.len() > MAX_PACKS {
        return Err(DecodeError::new(format!(
            "index v2 cannot reference {} packs (max {MAX_PACKS})",
            packs.names.len()
        )));
    }
    let value_length = value_length_for(formats.len(), packs.names.len(), longest);

    let extra_data_offset = HEADER_LENGTH
        + sorted.len() * (key_length + value_length)
        + packs.names.len() * PACK_RECORD_LENGTH
        + formats.len() * FORMAT_RECORD_LENGTH;
    let extra_data_length: usize = packs.names.iter().map(|name| name.len()).sum();
    let total_length = extra_data_offset + extra_data_length;
    checked_u32(total_length, "index v2 length")?;

    let mut out = Vec::with_capacity(total_length);
    out.push(VERSION_2);
    out.push(key_length as u8);
    out.extend_from_slice(&(value_length as u16).to_be_bytes());
    out.extend_from_slice(&checked_u32(sorted.len(), "index v2 entry count")?.to_be_bytes());
    out.extend_from_slice(&(packs.names.len() as u32).to_be_bytes());
    out.push(formats.len() as u8);
    out.extend_from_slice(&0u32.to_be_bytes());

    for ((entry, &pack), &format) in sorted.iter().zip(&packs.entry_pack).zip(&entry_format) {
        out.extend_from_slice(entry.content_id.key_bytes());
        let mut value = [0u8; MAX_VALUE_LENGTH];
        value[0..4].copy_from_slice(&(entry.timestamp_seconds as u32).to_be_bytes());
        let flag = if entry.deleted { DELETED_FLAG } else { 0 };
        value[4..8].copy_from_slice(&(entry.pack_offset | flag).to_be_bytes());
        value[8..11].copy_from_slice(&entry.original_length.to_be_bytes()[1..]);
        value[11..14].copy_from_slice(&entry.packed_length.to_be_bytes()[1..]);
        value[14..16].copy_from_slice(&(pack as u16).to_be_bytes());
        value[16] = format as u8;
        value[17] = (pack >> 16) as u8;
        value[18] = ((entry.original_length >> 24) as u8) << 4 | (entry.packed_length >> 24) as u8;
        out.extend_from_slice(&value[..value_length]);
    }

    // Pack table, then names. An empty name (v2 allows it) points at the start of the names,
    // as in Kopia.
    let mut name_offset = 0;
    for name in &packs.names {
        out.push(name.len() as u8);
        let relative = if name.is_empty() { 0 } else { name_offset };
        out.extend_from_slice(&((extra_data_offset + relative) as u32).to_be_bytes());
        name_offset += name.len();
    }
    for (compression, format_version, encryption_key_id) in &formats {
        out.extend_from_slice(&compression.to_be_bytes());
        out.push(*format_version);
        out.push(*encryption_key_id);
    }
    for name in &packs.names {
        out.extend_from_slice(name.as_bytes());
    }
    Ok(out)
}

fn check_representable(entry: &IndexEntry) -> Result<(), DecodeError> {
    let id = &entry.content_id;
    if entry.original_length >= MAX_LENGTH || entry.packed_length >= MAX_LENGTH {
        return Err(DecodeError::new(format!(
            "content {id}: lengths (original {}, packed {}) must be below {MAX_LENGTH} in index v2",
            entry.original_length, entry.packed_length
        )));
    }
    if entry.pack_offset >= MAX_PACK_OFFSET {
        return Err(DecodeError::new(format!(
            "content {id}: pack offset {} must be below {MAX_PACK_OFFSET} in index v2",
            entry.pack_offset
        )));
    }
    if u32::try_from(entry.timestamp_seconds).is_err() {
        return Err(DecodeError::new(format!(
            "content {id}: timestamp {} does not fit in 32 bits",
            entry.timestamp_seconds
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_length_selection() {
        assert_eq!(value_length_for(1, 1, 100), 16);
        assert_eq!(value_length_for(0, 0, 0), 16);
        assert_eq!(value_length_for(2, 1, 100), 17);
        assert_eq!(value_length_for(1, MAX_SHORT_PACKS, 100), 16);
        assert_eq!(value_length_for(1, MAX_SHORT_PACKS + 1, 100), 18);
        assert_eq!(value_length_for(2, MAX_SHORT_PACKS + 1, 100), 18);
        assert_eq!(value_length_for(1, 1, MAX_SHORT_LENGTH - 1), 16);
        assert_eq!(value_length_for(1, 1, MAX_SHORT_LENGTH), 19);
        assert_eq!(value_length_for(2, 1, MAX_SHORT_LENGTH), 19);
    }
}
