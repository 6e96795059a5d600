//! Pack blob layout: framed format bytes (v1-format repositories only), random preamble,
//! encrypted contents, padding, encrypted local index and postamble. Pure byte assembly and
//! parsing; encryption, index building and storage are done by the callers.
//!
//! Writing a pack, in order:
//! 1. encrypt each content;
//! 2. [`plan_pack`] with the length of the framed format bytes (0 for v2/v3 repositories) and
//!    the encrypted lengths gives every content's offset and the padding length;
//! 3. build the local index from those offsets (`index::build_index_with_random_suffix`),
//!    hash it, encrypt it with the full hash as IV;
//! 4. [`assemble_pack`] with random preamble and padding bytes of the planned sizes.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::DecodeError;

/// Random bytes at the start of every pack (after the framed format bytes, if any).
pub const PREAMBLE_LENGTH: usize = 32;

/// Pack data before the local index is padded to a multiple of this.
pub const PADDING_UNIT: usize = 4096;

/// Bytes at the end of a pack Kopia reads to find the postamble.
pub const POSTAMBLE_SEARCH_LENGTH: usize = 8192;

const POSTAMBLE_VERSION: u64 = 1;
const POSTAMBLE_CRC_LENGTH: usize = 4;
/// The postamble (before its own length byte) must fit in one byte's count.
const MAX_POSTAMBLE_BODY_LENGTH: usize = 255;
/// Shortest postamble body: the CRC plus at least one byte of payload.
const MIN_POSTAMBLE_BODY_LENGTH: usize = 5;

/// HMAC key of framed format bytes: a fixed tag, not a secret.
const FORMAT_CHECKSUM_KEY: &[u8] = b"kopia-repository";
const FORMAT_CHECKSUM_LENGTH: usize = 32;
const FORMAT_LENGTH_FIELD: usize = 2;
/// Longest checksummed format bytes (format blob + HMAC) that can be framed.
const MAX_CHECKSUMMED_FORMAT_LENGTH: usize = 65000;
/// Recovery looks for framed format bytes in this many bytes at each end of a blob.
const FORMAT_RECOVERY_CHUNK: usize = 65536;

/// Number of random padding bytes after `length_so_far` bytes of pack data: up to the next
/// multiple of 4096, and a full 4096 when already aligned (the padding is never empty).
pub fn padding_length(length_so_far: usize) -> usize {
    PADDING_UNIT - length_so_far % PADDING_UNIT
}

/// Positions of everything in a pack that can be known before its local index is built.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackPlan {
    /// Absolute offset of each content (the index entries' `pack_offset`).
    pub content_offsets: Vec<u32>,
    pub padding_length: usize,
    /// Where the encrypted local index starts (right after the padding).
    pub local_index_offset: u64,
}

/// Lays out a pack whose contents have the given encrypted lengths, after framed format bytes
/// of `format_bytes_prefix_length` (0 unless the repository has format version 1) and the
/// 32-byte preamble. Errors if there is no content or an offset does not fit in 32 bits.
pub fn plan_pack(
    format_bytes_prefix_length: usize,
    content_lengths: &[usize],
) -> Result<PackPlan, DecodeError> {
    if content_lengths.is_empty() {
        return Err(DecodeError::new(
            "a pack needs at least one content (Kopia writes no pack for deletions only)",
        ));
    }
    let mut position = format_bytes_prefix_length + PREAMBLE_LENGTH;
    let mut content_offsets = Vec::with_capacity(content_lengths.len());
    for length in content_lengths {
        let offset = u32::try_from(position).map_err(|_| {
            DecodeError::new(format!("pack content offset {position} exceeds 32 bits"))
        })?;
        content_offsets.push(offset);
        position += length;
    }
    let padding_length = padding_length(position);
    Ok(PackPlan {
        content_offsets,
        padding_length,
        local_index_offset: (position + padding_length) as u64,
    })
}

/// Concatenates a pack: framed format bytes, preamble, contents, padding, encrypted local
/// index and the postamble pointing at it. `padding` must have the length [`plan_pack`]
/// (or [`padding_length`]) gives. Returns the pack bytes and the offset of each content.
pub fn assemble_pack<C: AsRef<[u8]>>(
    format_bytes_prefix: &[u8],
    preamble: &[u8; PREAMBLE_LENGTH],
    encrypted_contents: &[C],
    padding: &[u8],
    encrypted_local_index: &[u8],
    local_index_iv: &[u8],
) -> Result<(Vec<u8>, Vec<u32>), DecodeError> {
    let lengths: Vec<usize> = encrypted_contents
        .iter()
        .map(|c| c.as_ref().len())
        .collect();
    let plan = plan_pack(format_bytes_prefix.len(), &lengths)?;
    if padding.len() != plan.padding_length {
        return Err(DecodeError::new(format!(
            "pack padding is {} bytes, the layout needs {}",
            padding.len(),
            plan.padding_length
        )));
    }
    let postamble = Postamble {
        iv: local_index_iv.to_vec(),
        local_index_offset: plan.local_index_offset,
        local_index_length: encrypted_local_index.len() as u64,
    }
    .encode()?;

    let total = plan.local_index_offset as usize + encrypted_local_index.len() + postamble.len();
    let mut pack = Vec::with_capacity(total);
    pack.extend_from_slice(format_bytes_prefix);
    pack.extend_from_slice(preamble);
    for content in encrypted_contents {
        pack.extend_from_slice(content.as_ref());
    }
    pack.extend_from_slice(padding);
    pack.extend_from_slice(encrypted_local_index);
    pack.extend_from_slice(&postamble);
    Ok((pack, plan.content_offsets))
}

/// The pack trailer that locates the encrypted local index (used only for index recovery).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Postamble {
    /// IV of the encrypted local index: the full hash of its plaintext.
    pub iv: Vec<u8>,
    pub local_index_offset: u64,
    pub local_index_length: u64,
}

impl Postamble {
    /// `uvarint(1) uvarint(len iv) iv uvarint(offset) uvarint(length) BE32(crc32) u8(n)`, where
    /// `n` counts the bytes before it. Offsets and lengths must fit in 32 bits (Kopia stores
    /// them as such) and the whole must fit the one-byte length.
    pub fn encode(&self) -> Result<Vec<u8>, DecodeError> {
        for (what, value) in [
            ("offset", self.local_index_offset),
            ("length", self.local_index_length),
        ] {
            if value > u32::MAX as u64 {
                return Err(DecodeError::new(format!(
                    "pack local index {what} {value} exceeds 32 bits"
                )));
            }
        }
        let mut out = Vec::with_capacity(self.iv.len() + 24);
        put_uvarint(&mut out, POSTAMBLE_VERSION);
        put_uvarint(&mut out, self.iv.len() as u64);
        out.extend_from_slice(&self.iv);
        put_uvarint(&mut out, self.local_index_offset);
        put_uvarint(&mut out, self.local_index_length);
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        if out.len() > MAX_POSTAMBLE_BODY_LENGTH {
            return Err(DecodeError::new(format!(
                "pack postamble of {} bytes is too long",
                out.len()
            )));
        }
        out.push(out.len() as u8);
        Ok(out)
    }

    /// Reads the postamble at the end of `tail` (the last bytes of a pack, or all of it).
    /// Bytes after the length field inside the postamble are ignored, as in Kopia.
    pub fn decode(tail: &[u8]) -> Result<Postamble, DecodeError> {
        let Some((&body_length, before)) = tail.split_last() else {
            return Err(DecodeError::new("pack is empty: no postamble"));
        };
        let body_length = body_length as usize;
        if body_length < MIN_POSTAMBLE_BODY_LENGTH {
            return Err(DecodeError::new(format!(
                "pack postamble length {body_length} is too short"
            )));
        }
        let body = before
            .len()
            .checked_sub(body_length)
            .map(|start| &before[start..])
            .ok_or_else(|| {
                DecodeError::new(format!(
                    "pack postamble length {body_length} exceeds the {} bytes before it",
                    before.len()
                ))
            })?;
        let (payload, crc) = body.split_at(body.len() - POSTAMBLE_CRC_LENGTH);
        let stored_crc = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
        if crc32fast::hash(payload) != stored_crc {
            return Err(DecodeError::new("pack postamble checksum mismatch"));
        }

        let mut reader = payload;
        let version = take_uvarint(&mut reader, "version")?;
        if version != POSTAMBLE_VERSION {
            return Err(DecodeError::new(format!(
                "unsupported pack postamble version {version}"
            )));
        }
        let iv_length = take_uvarint(&mut reader, "IV length")?;
        if iv_length > reader.len() as u64 {
            return Err(DecodeError::new(format!(
                "pack postamble IV length {iv_length} exceeds the postamble"
            )));
        }
        let (iv, rest) = reader.split_at(iv_length as usize);
        reader = rest;
        let local_index_offset = take_uvarint(&mut reader, "local index offset")?;
        let local_index_length = take_uvarint(&mut reader, "local index length")?;
        Ok(Postamble {
            iv: iv.to_vec(),
            local_index_offset,
            local_index_length,
        })
    }
}

/// Finds the postamble of a whole pack and returns it with the encrypted local index bytes.
pub fn encrypted_local_index(pack: &[u8]) -> Result<(Postamble, &[u8]), DecodeError> {
    let postamble = Postamble::decode(pack)?;
    let start = postamble.local_index_offset;
    let end = start.saturating_add(postamble.local_index_length);
    if end > pack.len() as u64 {
        return Err(DecodeError::new(format!(
            "pack local index at {start}..{end} lies outside the {}-byte pack",
            pack.len()
        )));
    }
    let local_index = &pack[start as usize..end as usize];
    Ok((postamble, local_index))
}

fn put_uvarint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Reads one unsigned LEB128 value (Go's `binary.Uvarint`) and advances `input`.
fn take_uvarint(input: &mut &[u8], what: &str) -> Result<u64, DecodeError> {
    let mut value: u64 = 0;
    for (i, &byte) in input.iter().enumerate() {
        if i == 9 && byte > 1 {
            break; // more than 64 bits
        }
        value |= ((byte & 0x7F) as u64) << (7 * i);
        if byte < 0x80 {
            *input = &input[i + 1..];
            return Ok(value);
        }
    }
    Err(DecodeError::new(format!(
        "pack postamble {what}: truncated or overlong varint"
    )))
}

fn format_checksum(format_blob: &[u8]) -> [u8; FORMAT_CHECKSUM_LENGTH] {
    let mut mac = <Hmac<Sha256>>::new_from_slice(FORMAT_CHECKSUM_KEY)
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(format_blob);
    mac.finalize().into_bytes().into()
}

/// `LE16(L) || format_blob || HMAC-SHA256("kopia-repository", format_blob) || LE16(L)` with
/// `L = len(format_blob) + 32`: what v1-format repositories put at the start of every pack.
pub fn framed_format_bytes(format_blob: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let checksummed_length = format_blob.len() + FORMAT_CHECKSUM_LENGTH;
    if checksummed_length > MAX_CHECKSUMMED_FORMAT_LENGTH {
        return Err(DecodeError::new(format!(
            "format blob of {} bytes is too big to embed in packs",
            format_blob.len()
        )));
    }
    let length_field = (checksummed_length as u16).to_le_bytes();
    let mut out = Vec::with_capacity(checksummed_length + 2 * FORMAT_LENGTH_FIELD);
    out.extend_from_slice(&length_field);
    out.extend_from_slice(format_blob);
    out.extend_from_slice(&format_checksum(format_blob));
    out.extend_from_slice(&length_field);
    Ok(out)
}

/// Recovers the `kopia.repository` bytes framed at the start or the end of a blob (Kopia's
/// `RecoverFormatBlob`): looks in the first, then the last 64 KiB for a length-prefixed
/// (resp. length-suffixed) block whose HMAC checks.
pub fn recover_format_blob(blob: &[u8]) -> Result<&[u8], DecodeError> {
    let chunk_length = blob.len().min(FORMAT_RECOVERY_CHUNK);
    if chunk_length <= 2 * FORMAT_LENGTH_FIELD {
        return Err(DecodeError::new(format!(
            "blob of {} bytes is too short to hold format bytes",
            blob.len()
        )));
    }

    let prefix = &blob[..chunk_length];
    let length = u16::from_le_bytes([prefix[0], prefix[1]]) as usize;
    if length <= MAX_CHECKSUMMED_FORMAT_LENGTH && length + FORMAT_LENGTH_FIELD < prefix.len() {
        let checksummed = &prefix[FORMAT_LENGTH_FIELD..FORMAT_LENGTH_FIELD + length];
        if let Some(format_blob) = verified_format_blob(checksummed) {
            return Ok(format_blob);
        }
    }

    let suffix = &blob[blob.len() - chunk_length..];
    let end = suffix.len() - FORMAT_LENGTH_FIELD;
    let length = u16::from_le_bytes([suffix[end], suffix[end + 1]]) as usize;
    if length <= MAX_CHECKSUMMED_FORMAT_LENGTH && length + FORMAT_LENGTH_FIELD < suffix.len() {
        if let Some(format_blob) = verified_format_blob(&suffix[end - length..end]) {
            return Ok(format_blob);
        }
    }

    Err(DecodeError::new(
        "no framed format bytes with a valid checksum at either end of the blob",
    ))
}

fn verified_format_blob(checksummed: &[u8]) -> Option<&[u8]> {
    let data_length = checksummed.len().checked_sub(FORMAT_CHECKSUM_LENGTH)?;
    let (data, checksum) = checksummed.split_at(data_length);
    let mut mac = <Hmac<Sha256>>::new_from_slice(FORMAT_CHECKSUM_KEY)
        .expect("HMAC-SHA256 accepts keys of any length");
    mac.update(data);
    mac.verify_slice(checksum).ok().map(|_| data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GUIDE_IV: &str = "a6ee3a8b86f531d371eef742f69b4fa8";
    const GUIDE_POSTAMBLE: &str = "0110a6ee3a8b86f531d371eef742f69b4fa88020af0175c8e1a21a";

    fn guide_postamble() -> Postamble {
        Postamble {
            iv: hex::decode(GUIDE_IV).unwrap(),
            local_index_offset: 4096,
            local_index_length: 175,
        }
    }

    #[test]
    fn postamble_guide_example() {
        let bytes = guide_postamble().encode().unwrap();
        assert_eq!(hex::encode(&bytes), GUIDE_POSTAMBLE);
        assert_eq!(bytes.len(), 27);
        assert_eq!(Postamble::decode(&bytes).unwrap(), guide_postamble());
        let mut with_leading_data = vec![0xAB; 100];
        with_leading_data.extend_from_slice(&bytes);
        assert_eq!(
            Postamble::decode(&with_leading_data).unwrap(),
            guide_postamble()
        );
    }

    #[test]
    fn postamble_of_a_real_kopia_pack() {
        // Last 27 bytes of a 4298-byte manifest pack written by Kopia v0.23.1 (format v3).
        let tail = hex::decode("011026c374b5cc7f0f3bc2970314f6a253218020af01d89b89c91a").unwrap();
        let postamble = Postamble::decode(&tail).unwrap();
        assert_eq!(postamble.local_index_offset, 4096);
        assert_eq!(postamble.local_index_length, 175);
        assert_eq!(
            hex::encode(&postamble.iv),
            "26c374b5cc7f0f3bc2970314f6a25321"
        );
        assert_eq!(postamble.encode().unwrap(), tail);
        assert_eq!(4096 + 175 + tail.len(), 4298);
    }

    #[test]
    fn postamble_errors() {
        let good = hex::decode(GUIDE_POSTAMBLE).unwrap();
        for length in 0..good.len() {
            assert!(Postamble::decode(&good[good.len() - length..]).is_err());
            assert!(Postamble::decode(&good[..length]).is_err());
        }
        let mut bad_crc = good.clone();
        bad_crc[3] ^= 1;
        assert!(Postamble::decode(&bad_crc).is_err());
        assert!(Postamble::decode(&[0, 0, 0, 0, 4]).is_err());

        // Version 2 with a correct checksum.
        let mut payload = vec![2, 0, 0, 0];
        payload.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        payload.push(payload.len() as u8);
        assert!(Postamble::decode(&payload).is_err());

        // IV length past the end, with a correct checksum.
        let mut payload = vec![1, 50, 0, 0];
        payload.extend_from_slice(&crc32fast::hash(&payload).to_be_bytes());
        payload.push(payload.len() as u8);
        assert!(Postamble::decode(&payload).is_err());

        let too_far = Postamble {
            local_index_offset: 1 << 32,
            ..guide_postamble()
        };
        assert!(too_far.encode().is_err());
        let huge_iv = Postamble {
            iv: vec![0; 250],
            ..guide_postamble()
        };
        assert!(huge_iv.encode().is_err());
    }

    #[test]
    fn uvarint_round_trip_and_overflow() {
        for value in [0, 1, 127, 128, 4096, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_uvarint(&mut out, value);
            let mut reader = &out[..];
            assert_eq!(take_uvarint(&mut reader, "x").unwrap(), value);
            assert!(reader.is_empty());
        }
        let mut overlong: &[u8] = &[0xFF; 11];
        assert!(take_uvarint(&mut overlong, "x").is_err());
        let mut overflow: &[u8] = &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02];
        assert!(take_uvarint(&mut overflow, "x").is_err());
    }

    #[test]
    fn padding_is_never_empty() {
        assert_eq!(padding_length(0), 4096);
        assert_eq!(padding_length(1), 4095);
        assert_eq!(padding_length(298), 3798);
        assert_eq!(padding_length(4095), 1);
        assert_eq!(padding_length(4096), 4096);
        assert_eq!(padding_length(8193), 4095);
    }

    #[test]
    fn guide_manifest_pack_layout() {
        // Guide §12.8 step 6: one 266-byte content, 175-byte local index → 4298 bytes.
        let plan = plan_pack(0, &[266]).unwrap();
        assert_eq!(plan.content_offsets, vec![32]);
        assert_eq!(plan.padding_length, 3798);
        assert_eq!(plan.local_index_offset, 4096);

        let content = vec![0xC0; 266];
        let local_index = vec![0x1D; 175];
        let iv = hex::decode(GUIDE_IV).unwrap();
        let (pack, offsets) = assemble_pack(
            &[],
            &[0x55; PREAMBLE_LENGTH],
            std::slice::from_ref(&content),
            &[0xAA; 3798],
            &local_index,
            &iv,
        )
        .unwrap();
        assert_eq!(offsets, vec![32]);
        assert_eq!(pack.len(), 4298);
        assert_eq!(&pack[32..298], &content[..]);
        assert_eq!(hex::encode(&pack[4298 - 27..]), GUIDE_POSTAMBLE);
        let (postamble, found) = encrypted_local_index(&pack).unwrap();
        assert_eq!(postamble, guide_postamble());
        assert_eq!(found, &local_index[..]);
    }

    #[test]
    fn pack_with_format_prefix_and_several_contents() {
        let framed = framed_format_bytes(b"aadsdasdas").unwrap();
        let contents = [vec![1u8; 100], vec![2u8; 5000], vec![3u8; 28]];
        let lengths: Vec<usize> = contents.iter().map(Vec::len).collect();
        let plan = plan_pack(framed.len(), &lengths).unwrap();
        assert_eq!(plan.content_offsets, vec![78, 178, 5178]);
        let data_end = 5178 + 28;
        assert_eq!(plan.local_index_offset, 8192);
        assert_eq!(plan.padding_length, 8192 - data_end);
        let padding = vec![0; plan.padding_length];
        let (pack, offsets) =
            assemble_pack(&framed, &[0; 32], &contents, &padding, b"index", &[9; 16]).unwrap();
        assert_eq!(offsets, plan.content_offsets);
        for (content, &offset) in contents.iter().zip(&offsets) {
            let offset = offset as usize;
            assert_eq!(&pack[offset..offset + content.len()], &content[..]);
        }
        assert_eq!(encrypted_local_index(&pack).unwrap().1, b"index");
        assert_eq!(recover_format_blob(&pack).unwrap(), b"aadsdasdas");

        assert!(assemble_pack(&framed, &[0; 32], &contents, &[0; 3], b"i", &[9; 16]).is_err());
        let none: [Vec<u8>; 0] = [];
        assert!(assemble_pack(&[], &[0; 32], &none, &[0; 4064], b"i", &[9; 16]).is_err());
    }

    #[test]
    fn framed_format_bytes_guide_example() {
        let framed = framed_format_bytes(b"aadsdasdas").unwrap();
        assert_eq!(
            hex::encode(&framed),
            "2a00616164736461736461735d248ba07bde060f500ae9b489ff46358544ada66b4737a879ec5f0c9cc257ef2a00"
        );
        assert_eq!(framed.len(), 46);
        assert!(framed_format_bytes(&vec![0; 65000 - 32]).is_ok());
        assert!(framed_format_bytes(&vec![0; 65000 - 31]).is_err());
    }

    #[test]
    fn format_blob_recovery() {
        let framed = framed_format_bytes(b"{\"format\":1}").unwrap();
        assert_eq!(recover_format_blob(&framed).unwrap(), b"{\"format\":1}");

        // At the end of a blob.
        let mut at_end = vec![7u8; 70000];
        at_end.extend_from_slice(&framed);
        assert_eq!(recover_format_blob(&at_end).unwrap(), b"{\"format\":1}");

        // A corrupted checksum is not accepted.
        let mut corrupt = framed.clone();
        corrupt[5] ^= 1;
        assert!(recover_format_blob(&corrupt).is_err());
        for length in 0..framed.len() - 1 {
            assert!(recover_format_blob(&framed[..length]).is_err(), "{length}");
        }
        // Like Kopia, the leading length suffices when only the trailing one is cut.
        assert!(recover_format_blob(&framed[..framed.len() - 1]).is_ok());
        assert!(recover_format_blob(&[0xFF; 100]).is_err());
    }
}
