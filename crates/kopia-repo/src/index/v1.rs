//! Index format version 1: 8-byte header, fixed 20-byte values, absolute pack-name offsets.
//! It has no compression or encryption-key fields and no original length (derived from the
//! packed length). Dispatch, sorting and validation common to both versions live in `mod.rs`.

use super::{
    be_u32, checked_u32, pack_name_from_bytes, ContentId, IndexEntry, IndexView, Layout, PackNames,
    PackTable, INVALID_PACK_BLOB_ID, V1_ENCRYPTION_OVERHEAD, VERSION_1,
};
use crate::error::DecodeError;

const HEADER_LENGTH: usize = 8;
const VALUE_LENGTH: usize = 20;
const DELETED_FLAG: u32 = 0x8000_0000;
const MAX_TIMESTAMP: i64 = (1 << 48) - 1;

pub(super) fn parse(bytes: &[u8]) -> Result<IndexView<'_>, DecodeError> {
    let header = bytes.get(..HEADER_LENGTH).ok_or_else(|| {
        DecodeError::new(format!(
            "index v1 header truncated: {} of {HEADER_LENGTH} bytes",
            bytes.len()
        ))
    })?;
    let key_length = header[1] as usize;
    let value_length = u16::from_be_bytes([header[2], header[3]]) as usize;
    let entry_count = be_u32(&header[4..8]) as usize;
    if key_length <= 1 {
        return Err(DecodeError::new(format!(
            "index v1 header: invalid key length {key_length}"
        )));
    }
    if value_length != VALUE_LENGTH {
        return Err(DecodeError::new(format!(
            "index v1 header: value length {value_length}, expected {VALUE_LENGTH}"
        )));
    }
    let table_end =
        (entry_count as u64) * ((key_length + value_length) as u64) + HEADER_LENGTH as u64;
    if table_end > bytes.len() as u64 {
        return Err(DecodeError::new(format!(
            "index v1 truncated: {entry_count} entries need {table_end} bytes, have {}",
            bytes.len()
        )));
    }
    Ok(IndexView {
        bytes,
        layout: Layout::V1,
        key_length,
        value_length,
        entry_count,
        entries_offset: HEADER_LENGTH,
    })
}

/// Decodes a 20-byte value. A pack name outside the index becomes Kopia's invalid marker.
pub(super) fn decode_value(
    index: &[u8],
    content_id: ContentId,
    value: &[u8],
    names: &mut PackNames,
) -> IndexEntry {
    let timestamp_seconds = i64::from_be_bytes([
        0, 0, value[0], value[1], value[2], value[3], value[4], value[5],
    ]);
    let name_length = value[7] as usize;
    let name_offset = be_u32(&value[8..12]) as usize;
    let offset_and_flag = be_u32(&value[12..16]);
    let packed_length = be_u32(&value[16..20]);
    let location = ((name_offset as u64) << 8) | name_length as u64;
    let pack_blob_id = names.get_or_insert(location, || {
        match index.get(name_offset..name_offset + name_length) {
            Some(name) => pack_name_from_bytes(name),
            None => INVALID_PACK_BLOB_ID.into(),
        }
    });
    IndexEntry {
        content_id,
        pack_blob_id,
        timestamp_seconds,
        original_length: packed_length.saturating_sub(V1_ENCRYPTION_OVERHEAD),
        packed_length,
        pack_offset: offset_and_flag & !DELETED_FLAG,
        compression_header_id: 0,
        deleted: offset_and_flag & DELETED_FLAG != 0,
        format_version: value[6],
        encryption_key_id: 0,
    }
}

/// Writes sorted entries (all keys `key_length` bytes) as a v1 index.
pub(super) fn build(sorted: &[&IndexEntry], key_length: usize) -> Result<Vec<u8>, DecodeError> {
    for entry in sorted {
        check_representable(entry)?;
    }
    let packs = PackTable::new(sorted)?;
    let mut name_offsets = Vec::with_capacity(packs.names.len());
    let mut extra_data = Vec::new();
    for name in &packs.names {
        name_offsets.push(extra_data.len());
        extra_data.extend_from_slice(name.as_bytes());
    }
    let extra_data_offset = HEADER_LENGTH + sorted.len() * (key_length + VALUE_LENGTH);
    let total_length = extra_data_offset + extra_data.len();
    checked_u32(total_length, "index v1 length")?;

    let mut out = Vec::with_capacity(total_length);
    out.push(VERSION_1);
    out.push(key_length as u8);
    out.extend_from_slice(&(VALUE_LENGTH as u16).to_be_bytes());
    out.extend_from_slice(&checked_u32(sorted.len(), "index v1 entry count")?.to_be_bytes());
    for (entry, &pack) in sorted.iter().zip(&packs.entry_pack) {
        out.extend_from_slice(entry.content_id.key_bytes());
        let name_length = entry.pack_blob_id.len() as u64;
        let stamp_and_name = (entry.timestamp_seconds as u64) << 16
            | (entry.format_version as u64) << 8
            | name_length;
        out.extend_from_slice(&stamp_and_name.to_be_bytes());
        let name_offset = (extra_data_offset + name_offsets[pack]) as u32;
        out.extend_from_slice(&name_offset.to_be_bytes());
        let flag = if entry.deleted { DELETED_FLAG } else { 0 };
        out.extend_from_slice(&(entry.pack_offset | flag).to_be_bytes());
        out.extend_from_slice(&entry.packed_length.to_be_bytes());
    }
    out.extend_from_slice(&extra_data);
    Ok(out)
}

fn check_representable(entry: &IndexEntry) -> Result<(), DecodeError> {
    let id = &entry.content_id;
    if entry.compression_header_id != 0 {
        return Err(DecodeError::new(format!(
            "content {id}: index v1 cannot store compression (header ID {:#x})",
            entry.compression_header_id
        )));
    }
    if entry.encryption_key_id != 0 {
        return Err(DecodeError::new(format!(
            "content {id}: index v1 cannot store encryption key ID {}",
            entry.encryption_key_id
        )));
    }
    if entry.pack_blob_id.is_empty() {
        return Err(DecodeError::new(format!(
            "content {id}: index v1 needs a pack name"
        )));
    }
    if entry.pack_offset & DELETED_FLAG != 0 {
        return Err(DecodeError::new(format!(
            "content {id}: pack offset {} does not fit in 31 bits",
            entry.pack_offset
        )));
    }
    if !(0..=MAX_TIMESTAMP).contains(&entry.timestamp_seconds) {
        return Err(DecodeError::new(format!(
            "content {id}: timestamp {} does not fit in 48 bits",
            entry.timestamp_seconds
        )));
    }
    Ok(())
}
