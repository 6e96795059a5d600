//! Content compression (§5): the `BE32(headerID) || stream` payloads of Kopia's compressor table
//! (gzip, zstd, S2, pgzip, legacy LZ4, raw deflate), plus the plain gzip manifests are wrapped in.
//! Choosing whether to keep a compressed form (the "strictly smaller" rule) is the caller's job.

use std::io::{Read, Write};

use flate2::read::{DeflateDecoder, MultiGzDecoder};
use flate2::write::DeflateEncoder;
use flate2::{Compression, GzBuilder};

use crate::error::DecodeError;

/// Header ID meaning "stored uncompressed" (no header bytes at all).
pub const NO_COMPRESSION: u32 = 0;

/// Length of the big-endian header ID in front of every compressed payload.
pub const HEADER_LEN: usize = 4;

/// What manifests ask the content layer for (§5.2).
pub const ZSTD_FASTEST: u32 = 0x1101;

/// Largest decompressed output we accept; anything bigger is treated as a decompression bomb.
/// Far above any content Kopia writes (file chunks are at most a few MiB, manifests far less).
pub const MAX_DECOMPRESSED_LEN: usize = 256 << 20;

/// Stream format of a compressor family, with the level used when we write it.
#[derive(Clone, Copy, Debug)]
enum Codec {
    Gzip(u32),
    Zstd(i32),
    S2,
    /// LZ4 frame (pierrec/lz4): Kopia ≤ 0.22.3 wrote it; current Kopia can't even read it.
    Lz4,
    Deflate(u32),
}

struct Compressor {
    header_id: u32,
    name: &'static str,
    codec: Codec,
}

const fn entry(header_id: u32, name: &'static str, codec: Codec) -> Compressor {
    Compressor {
        header_id,
        name,
        codec,
    }
}

/// Kopia 0.23's table ([repo/compression/compression_ids.go]). Write levels mirror Go's
/// (gzip/deflate 6/1/9; zstd fastest/default/better/best ≈ libzstd 1/3/7/11); the bytes
/// differ from Go's encoders but any reader accepts them.
const COMPRESSORS: &[Compressor] = &[
    entry(0x1000, "gzip", Codec::Gzip(6)),
    entry(0x1001, "gzip-best-speed", Codec::Gzip(1)),
    entry(0x1002, "gzip-best-compression", Codec::Gzip(9)),
    entry(0x1100, "zstd", Codec::Zstd(3)),
    entry(0x1101, "zstd-fastest", Codec::Zstd(1)),
    entry(0x1102, "zstd-better-compression", Codec::Zstd(7)),
    entry(0x1103, "zstd-best-compression", Codec::Zstd(11)),
    entry(0x1200, "s2-default", Codec::S2),
    entry(0x1201, "s2-better", Codec::S2),
    entry(0x1202, "s2-parallel-4", Codec::S2),
    entry(0x1203, "s2-parallel-8", Codec::S2),
    entry(0x1300, "pgzip", Codec::Gzip(6)),
    entry(0x1301, "pgzip-best-speed", Codec::Gzip(1)),
    entry(0x1302, "pgzip-best-compression", Codec::Gzip(9)),
    entry(0x1400, "lz4", Codec::Lz4),
    entry(0x1500, "deflate-default", Codec::Deflate(6)),
    entry(0x1501, "deflate-best-speed", Codec::Deflate(1)),
    entry(0x1502, "deflate-best-compression", Codec::Deflate(9)),
];

fn lookup(header_id: u32) -> Option<&'static Compressor> {
    COMPRESSORS.iter().find(|c| c.header_id == header_id)
}

/// Kopia's name of a compressor header ID (`None` for 0 and unknown IDs).
pub fn compressor_name(header_id: u32) -> Option<&'static str> {
    lookup(header_id).map(|c| c.name)
}

/// Header ID of a Kopia compressor name (as used in policies), e.g. `zstd-fastest` → 0x1101.
pub fn header_id_for_name(name: &str) -> Option<u32> {
    COMPRESSORS
        .iter()
        .find(|c| c.name == name)
        .map(|c| c.header_id)
}

fn describe(header_id: u32) -> String {
    match compressor_name(header_id) {
        Some(name) => format!("{name} (0x{header_id:x})"),
        None => format!("0x{header_id:x}"),
    }
}

/// An S2 (Snappy-framed) stream without the chunks that carry no data after the first one:
/// padding, index, skippable chunks and repeated stream identifiers, which minlz skips. Its
/// reader recurses once per chunk it skips, so a stored content of a few hundred thousand tiny
/// ones overflowed the stack (found by the `compression` fuzz target under AddressSanitizer;
/// regression input in `fuzz/regressions/compression`). The first chunk and every other kind
/// (data, and reserved kinds minlz refuses) stay as they are, as does whatever follows a
/// chunk longer than what is left.
fn without_skipped_chunks(stream: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    const HEADER: usize = 4;
    let skipped = |kind: u8| matches!(kind, 0x80..=0xff);
    let mut kept = Vec::with_capacity(stream.len());
    let mut at = 0;
    let mut dropped_any = false;
    while let Some(header) = stream.get(at..at + HEADER) {
        let len = u32::from_le_bytes([header[1], header[2], header[3], 0]) as usize;
        let Some(chunk) = stream.get(at..at + HEADER + len) else {
            break;
        };
        if at > 0 && skipped(header[0]) {
            dropped_any = true;
        } else {
            kept.extend_from_slice(chunk);
        }
        at += HEADER + len;
    }
    if !dropped_any {
        return std::borrow::Cow::Borrowed(stream);
    }
    kept.extend_from_slice(&stream[at..]);
    std::borrow::Cow::Owned(kept)
}

/// Decompresses a content payload as stored (after decryption). `header_id` comes from the index
/// entry; for non-zero IDs the payload starts with the same ID in big-endian, which is verified.
/// ID 0 returns the bytes unchanged.
pub fn decompress(header_id: u32, stored: &[u8]) -> Result<Vec<u8>, DecodeError> {
    decompress_capped(header_id, stored, MAX_DECOMPRESSED_LEN)
}

fn decompress_capped(header_id: u32, stored: &[u8], limit: usize) -> Result<Vec<u8>, DecodeError> {
    if header_id == NO_COMPRESSION {
        return Ok(stored.to_vec());
    }
    let compressor = lookup(header_id).ok_or_else(|| {
        DecodeError::new(format!("unknown compression header ID 0x{header_id:x}"))
    })?;
    let (header, stream) = stored.split_first_chunk::<HEADER_LEN>().ok_or_else(|| {
        DecodeError::new(format!(
            "{} payload is {} bytes, too short for its {HEADER_LEN}-byte header",
            describe(header_id),
            stored.len()
        ))
    })?;
    let found = u32::from_be_bytes(*header);
    if found != header_id {
        return Err(DecodeError::new(format!(
            "compression header is {}, the index says {}",
            describe(found),
            describe(header_id)
        )));
    }
    let decoded = match compressor.codec {
        Codec::Gzip(_) => read_capped(MultiGzDecoder::new(stream), limit),
        Codec::Deflate(_) => read_capped(DeflateDecoder::new(stream), limit),
        Codec::Zstd(_) => zstd::stream::read::Decoder::with_buffer(stream)
            .map_err(|e| e.to_string())
            .and_then(|decoder| read_capped(decoder, limit)),
        // Go's S2 writer emits nothing at all for empty input, and its reader accepts that.
        Codec::S2 if stream.is_empty() => Ok(Vec::new()),
        Codec::S2 => read_capped(minlz::Reader::new(&*without_skipped_chunks(stream)), limit),
        Codec::Lz4 => read_capped(lz4_flex::frame::FrameDecoder::new(stream), limit),
    };
    decoded.map_err(|reason| DecodeError::new(format!("{} stream: {reason}", describe(header_id))))
}

/// Compresses `payload` with the compressor `header_id` and prepends its header. LZ4 (0x1400) is
/// read-only: Kopia reserves the ID and no longer accepts it.
pub fn compress(header_id: u32, payload: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let compressor = lookup(header_id).ok_or_else(|| {
        DecodeError::new(format!("unknown compression header ID 0x{header_id:x}"))
    })?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len() / 2);
    out.extend_from_slice(&header_id.to_be_bytes());
    let written = match compressor.codec {
        Codec::Gzip(level) => {
            let mut encoder = go_like_gzip_builder().write(out, Compression::new(level));
            encoder.write_all(payload).and_then(|_| encoder.finish())
        }
        Codec::Deflate(level) => {
            let mut encoder = DeflateEncoder::new(out, Compression::new(level));
            encoder.write_all(payload).and_then(|_| encoder.finish())
        }
        Codec::Zstd(level) => zstd::stream::write::Encoder::new(out, level).and_then(|mut e| {
            // Go's encoder writes a checksum by default; keep frames equivalent.
            e.include_checksum(true)?;
            e.write_all(payload)?;
            e.finish()
        }),
        Codec::S2 => {
            let mut encoder = minlz::Writer::new(&mut out);
            let result = encoder.write_all(payload).and_then(|_| encoder.flush());
            drop(encoder);
            result.map(|_| out)
        }
        Codec::Lz4 => {
            return Err(DecodeError::new(
                "lz4 (0x1400) is read-only: Kopia removed it and refuses new lz4 contents",
            ))
        }
    };
    written.map_err(|e| DecodeError::new(format!("{} compression: {e}", describe(header_id))))
}

/// Gzip as Kopia's manifest layer writes it: default level, one member, MTIME 0, OS byte 255.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = go_like_gzip_builder().write(Vec::new(), Compression::default());
    encoder
        .write_all(data)
        .and_then(|_| encoder.finish())
        .expect("gzip into memory cannot fail")
}

/// Decompresses gzip data (all members, as Go's reader does), capped at [`MAX_DECOMPRESSED_LEN`].
pub fn gunzip(data: &[u8]) -> Result<Vec<u8>, DecodeError> {
    let size_hint = data
        .last_chunk::<4>()
        .map_or(0, |isize| u32::from_le_bytes(*isize) as usize);
    let mut out = Vec::with_capacity(output_reservation(data.len(), size_hint));
    read_capped_into(MultiGzDecoder::new(data), MAX_DECOMPRESSED_LEN, &mut out)
        .map_err(|reason| DecodeError::new(format!("gzip: {reason}")))?;
    Ok(out)
}

/// Inflated bytes reserved up front per compressed byte: generous for JSON and text (Kopia's
/// manifests compress about 10:1), far below deflate's worst case of about 1032:1.
const RESERVE_PER_COMPRESSED_BYTE: usize = 32;
/// Most reserved up front; larger outputs grow the buffer as they come.
const MAX_RESERVATION: usize = 64 << 20;

/// The buffer to reserve for inflating `compressed_len` bytes whose gzip trailer claims
/// `trailer_isize` (length mod 2^32). The trailer sizes the buffer once instead of growing it
/// by doubling and copying, but anyone who writes the repository writes the trailer: what it
/// may reserve is bounded by the compressed length and a fixed cap, the rest grows as needed.
fn output_reservation(compressed_len: usize, trailer_isize: usize) -> usize {
    trailer_isize
        .min(compressed_len.saturating_mul(RESERVE_PER_COMPRESSED_BYTE))
        .min(MAX_RESERVATION)
        .min(MAX_DECOMPRESSED_LEN)
        + 1
}

/// A reader of the decompressed bytes of gzip data (all members), for callers that consume
/// them as they come; unlike [`gunzip`] it does not cap the size.
pub fn gunzip_reader(data: &[u8]) -> impl Read + '_ {
    MultiGzDecoder::new(data)
}

/// Header fields Go's `compress/gzip` writes by default (no name, no MTIME, unknown OS).
fn go_like_gzip_builder() -> GzBuilder {
    GzBuilder::new().mtime(0).operating_system(255)
}

/// Reads a decoder to the end, refusing output above `limit` bytes.
fn read_capped(decoder: impl Read, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    read_capped_into(decoder, limit, &mut out)?;
    Ok(out)
}

fn read_capped_into(decoder: impl Read, limit: usize, out: &mut Vec<u8>) -> Result<(), String> {
    decoder
        .take(limit as u64 + 1)
        .read_to_end(out)
        .map_err(|e| e.to_string())?;
    if out.len() > limit {
        return Err(format!("decompressed size exceeds the {limit}-byte limit"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Chunks without data between the stream identifier and the data decode as minlz decodes
    /// them, however many there are (300,000 made minlz's reader recurse as deep).
    #[test]
    fn s2_streams_with_many_skippable_chunks_decode() {
        let payload = b"a payload long enough to be worth compressing, twice: a payload".repeat(3);
        let stored = compress(0x1200, &payload).unwrap();
        let (header, stream) = stored.split_at(HEADER_LEN);
        // The stream identifier: type 0xff, length 6, then "S2sTwO".
        let (identifier, data) = stream.split_at(10);
        let mut padded = header.to_vec();
        padded.extend_from_slice(identifier);
        for n in 0..300_000u32 {
            // Padding, a skippable chunk with a byte in it, another stream identifier.
            padded.extend_from_slice(match n % 3 {
                0 => &[0xfe, 0, 0, 0][..],
                1 => &[0x80, 1, 0, 0, 7][..],
                _ => identifier,
            });
        }
        padded.extend_from_slice(data);
        assert_eq!(decompress(0x1200, &padded).unwrap(), payload);
        // Nothing is dropped from streams without such chunks, and a reserved kind still fails.
        assert!(matches!(
            without_skipped_chunks(stream),
            std::borrow::Cow::Borrowed(_)
        ));
        let mut reserved = stored.clone();
        reserved.extend_from_slice(&[0x02, 0, 0, 0]);
        assert!(decompress(0x1200, &reserved).is_err());
    }

    /// A trailer claiming 256 MiB on a 30-byte stream reserves a few hundred bytes; honest
    /// trailers of ordinary contents size the buffer exactly.
    #[test]
    fn lying_trailers_do_not_reserve_memory() {
        assert!(output_reservation(30, 256 << 20) <= 30 * RESERVE_PER_COMPRESSED_BYTE + 1);
        assert_eq!(output_reservation(1_000, 9_000), 9_001);
        assert_eq!(output_reservation(10 << 20, 200 << 20), MAX_RESERVATION + 1);
        assert_eq!(output_reservation(0, u32::MAX as usize), 1);

        let mut lying = gzip(b"hello");
        let at = lying.len() - 4;
        lying[at..].copy_from_slice(&(256u32 << 20).to_le_bytes());
        assert!(gunzip(&lying).is_err(), "the length check still refuses it");
        let honest = gunzip(&gzip(b"hello")).unwrap();
        assert_eq!(honest, b"hello");
        assert!(honest.capacity() <= 6, "{}", honest.capacity());
    }

    /// Samples written by Kopia's own compressors (Go, klauspost/compress 1.18.6, pgzip 1.2.6,
    /// pierrec/lz4 2.6.1), each `BE32(headerID) || stream` of `payload.txt`; see README there.
    const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/compression");

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{FIXTURES}/{name}");
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    #[test]
    fn decodes_every_go_written_fixture() {
        let payload = fixture("payload.txt");
        for c in COMPRESSORS {
            let stored = fixture(&format!("{}.bin", c.name));
            assert_eq!(
                decompress(c.header_id, &stored).unwrap_or_else(|e| panic!("{}: {e}", c.name)),
                payload,
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn decodes_multi_block_s2_stream() {
        let stored = fixture("s2-small-blocks.bin");
        assert_eq!(
            decompress(0x1200, &stored).unwrap(),
            fixture("payload-12k.txt")
        );
    }

    #[test]
    fn round_trips_every_writable_id() {
        let payload = fixture("payload.txt");
        for c in COMPRESSORS.iter().filter(|c| c.header_id != 0x1400) {
            let stored = compress(c.header_id, &payload).unwrap();
            assert_eq!(
                &stored[..HEADER_LEN],
                &c.header_id.to_be_bytes(),
                "{}",
                c.name
            );
            assert!(
                stored.len() < payload.len(),
                "{} should shrink text",
                c.name
            );
            assert_eq!(
                decompress(c.header_id, &stored).unwrap(),
                payload,
                "{}",
                c.name
            );
            assert_eq!(
                decompress(c.header_id, &compress(c.header_id, b"").unwrap()).unwrap(),
                b""
            );
        }
    }

    #[test]
    fn lz4_is_read_only() {
        let err = compress(0x1400, b"x").unwrap_err();
        assert!(err.0.contains("read-only"), "{err}");
    }

    #[test]
    fn id_zero_passes_bytes_through() {
        assert_eq!(
            decompress(0, b"\x00\x00\x11\x01raw").unwrap(),
            b"\x00\x00\x11\x01raw"
        );
        assert_eq!(decompress(0, b"").unwrap(), b"");
    }

    #[test]
    fn header_mismatch_is_an_error() {
        let stored = fixture("zstd-fastest.bin");
        let err = decompress(0x1100, &stored).unwrap_err();
        assert_eq!(
            err.0,
            "compression header is zstd-fastest (0x1101), the index says zstd (0x1100)"
        );
        let err = decompress(0x1000, b"\x00\x00\x99\x99rest").unwrap_err();
        assert!(err.0.contains("0x9999"), "{err}");
    }

    #[test]
    fn unknown_id_is_named_in_hex() {
        let err = decompress(0x1600, b"\x00\x00\x16\x00xyz").unwrap_err();
        assert_eq!(err.0, "unknown compression header ID 0x1600");
        assert!(compress(0xabc, b"x").unwrap_err().0.contains("0xabc"));
    }

    #[test]
    fn short_or_corrupt_streams_are_errors_not_panics() {
        for c in COMPRESSORS {
            let stored = fixture(&format!("{}.bin", c.name));
            assert!(decompress(c.header_id, &stored[..3]).is_err(), "{}", c.name);
            // Cut in the middle of the stream.
            let cut = &stored[..HEADER_LEN + (stored.len() - HEADER_LEN) / 2];
            assert!(
                decompress(c.header_id, cut).is_err(),
                "{} truncated",
                c.name
            );
            // Garbage after a valid header.
            let mut garbage = c.header_id.to_be_bytes().to_vec();
            garbage.extend_from_slice(&[0xA5; 64]);
            assert!(
                decompress(c.header_id, &garbage).is_err(),
                "{} garbage",
                c.name
            );
        }
    }

    #[test]
    fn flipped_bits_never_panic() {
        for c in COMPRESSORS {
            let stored = fixture(&format!("{}.bin", c.name));
            for i in HEADER_LEN..stored.len() {
                let mut corrupt = stored.clone();
                corrupt[i] ^= 0x5A;
                let _ = decompress(c.header_id, &corrupt);
            }
        }
    }

    #[test]
    fn decompression_bombs_are_refused() {
        const LIMIT: usize = 1 << 20;
        let zeros = vec![0u8; LIMIT + 1];
        for c in COMPRESSORS.iter().filter(|c| c.header_id != 0x1400) {
            let bomb = compress(c.header_id, &zeros).unwrap();
            assert!(bomb.len() < LIMIT / 16, "{} should shrink zeros", c.name);
            let err = decompress_capped(c.header_id, &bomb, LIMIT).unwrap_err();
            assert!(err.0.contains("limit"), "{}: {err}", c.name);
            assert_eq!(
                decompress_capped(c.header_id, &bomb, LIMIT + 1).unwrap(),
                zeros
            );
        }
        // LZ4 is only readable: build a bomb with lz4_flex's frame encoder.
        let mut lz4 = 0x1400u32.to_be_bytes().to_vec();
        let mut encoder = lz4_flex::frame::FrameEncoder::new(&mut lz4);
        encoder.write_all(&zeros).unwrap();
        encoder.finish().unwrap();
        assert!(decompress_capped(0x1400, &lz4, LIMIT).is_err());
    }

    #[test]
    fn empty_s2_stream_is_empty_output_as_in_go() {
        assert_eq!(decompress(0x1200, &0x1200u32.to_be_bytes()).unwrap(), b"");
    }

    #[test]
    fn names_and_ids() {
        assert_eq!(compressor_name(0x1101), Some("zstd-fastest"));
        assert_eq!(compressor_name(0x1400), Some("lz4"));
        assert_eq!(compressor_name(0), None);
        assert_eq!(compressor_name(0x1600), None);
        assert_eq!(header_id_for_name("s2-parallel-8"), Some(0x1203));
        assert_eq!(header_id_for_name("none"), None);
        assert_eq!(COMPRESSORS.len(), 18);
    }

    #[test]
    fn gzip_matches_go_header_and_round_trips() {
        let json = br#"{"entries":[]}"#;
        let gz = gzip(json);
        assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);
        assert_eq!(gunzip(&gz).unwrap(), json);
    }

    #[test]
    fn gunzip_reads_all_members_and_rejects_junk() {
        let mut two = gzip(b"first,");
        two.extend_from_slice(&gzip(b"second"));
        assert_eq!(gunzip(&two).unwrap(), b"first,second");
        assert!(gunzip(b"not gzip at all").is_err());
        let gz = gzip(b"hello hello hello");
        assert!(gunzip(&gz[..gz.len() - 3]).is_err());
        let mut bad_crc = gz.clone();
        let crc_at = bad_crc.len() - 8;
        bad_crc[crc_at] ^= 1;
        assert!(gunzip(&bad_crc).is_err());
    }
}
