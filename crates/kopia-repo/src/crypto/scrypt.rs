//! scrypt (RFC 7914), the memory-hard password KDF behind Kopia's `scrypt-65536-8-1` (§2.2),
//! built for speed in safe Rust: V's pages are faulted in by a helper thread while the mixing
//! runs. Not a password-hash string format (no PHC strings).

use std::collections::VecDeque;
use std::fmt;
use std::sync::{mpsc, Mutex};

use pbkdf2::pbkdf2_hmac;
use sha2::Sha256;

/// Validated scrypt cost parameters: `N = 2^log2_n` blocks of `128 × r` bytes, `p` lanes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScryptParams {
    log2_n: u8,
    r: u32,
    p: u32,
}

/// Why scrypt parameters or an output length were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid scrypt parameters: {0}")]
pub struct ScryptError(String);

impl ScryptParams {
    /// Checks the RFC 7914 limits (`1 < N < 2^(16·r)`, `r·p < 2^30`) and that the `128·r·N`
    /// bytes of the memory-hard array and the `128·r·p` bytes of lanes are addressable.
    pub fn new(log2_n: u8, r: u32, p: u32) -> Result<Self, ScryptError> {
        if log2_n == 0 {
            return Err(ScryptError(
                "N must be a power of two greater than 1".into(),
            ));
        }
        if r == 0 || p == 0 {
            return Err(ScryptError(format!("r={r} and p={p} must be at least 1")));
        }
        if u64::from(log2_n) >= 16 * u64::from(r) {
            return Err(ScryptError(format!(
                "N=2^{log2_n} must be below 2^(16·r) = 2^{}",
                16 * u64::from(r)
            )));
        }
        if u64::from(r) * u64::from(p) >= 1 << 30 {
            return Err(ScryptError(format!("r·p = {r}·{p} must be below 2^30")));
        }
        let lane_bytes = 128 * u128::from(r);
        let work_area = if log2_n < 64 {
            lane_bytes << log2_n
        } else {
            u128::MAX
        };
        let lanes = lane_bytes * u128::from(p);
        if work_area.max(lanes) > isize::MAX as u128 {
            return Err(ScryptError(format!(
                "128·r·N and 128·r·p bytes (r={r}, N=2^{log2_n}, p={p}) do not fit memory"
            )));
        }
        Ok(ScryptParams { log2_n, r, p })
    }

    pub fn log2_n(&self) -> u8 {
        self.log2_n
    }

    pub fn r(&self) -> u32 {
        self.r
    }

    pub fn p(&self) -> u32 {
        self.p
    }
}

impl fmt::Display for ScryptParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scrypt-{}-{}-{}", 1u64 << self.log2_n, self.r, self.p)
    }
}

/// Derives `output.len()` bytes (1 to (2^32 − 1)·32) from `password` and `salt`.
pub fn scrypt(
    password: &[u8],
    salt: &[u8],
    params: &ScryptParams,
    output: &mut [u8],
) -> Result<(), ScryptError> {
    if output.is_empty() || output.len() as u64 > u64::from(u32::MAX) * 32 {
        return Err(ScryptError(format!(
            "output length {} is outside 1..=(2^32-1)·32",
            output.len()
        )));
    }
    let blocks_per_lane = 2 * params.r as usize;
    let lane_bytes = blocks_per_lane * BLOCK_BYTES;
    let mut b = vec![0u8; lane_bytes * params.p as usize];
    pbkdf2_hmac::<Sha256>(password, salt, 1, &mut b);

    let n = 1usize << params.log2_n;
    let mut area = WorkArea::new(n * blocks_per_lane);
    let piece_lanes_log2 = piece_lanes_log2(params.log2_n, lane_bytes);
    let piece_blocks = blocks_per_lane << piece_lanes_log2;
    let mut x = vec![ZERO_BLOCK; blocks_per_lane];
    let mut y = vec![ZERO_BLOCK; blocks_per_lane];
    let pieces: VecDeque<Piece> = area.blocks().chunks_mut(piece_blocks).enumerate().collect();
    let count = pieces.len();
    let untouched = Mutex::new(pieces);
    std::thread::scope(|scope| {
        // V's pages are faulted in (zeroed by the kernel) by a helper thread from the front,
        // ahead of the first loop of ROMix, instead of inside it.
        let (faulted, incoming) = mpsc::channel();
        let shared = &untouched;
        scope.spawn(move || {
            while let Some((index, piece)) = take_piece(shared, VecDeque::pop_front) {
                fault_in(piece);
                if faulted.send((index, piece)).is_err() {
                    return;
                }
            }
        });
        let mut supply = PieceSupply {
            untouched: &untouched,
            faulted: incoming,
            ready: (0..count).map(|_| None).collect(),
            next: 0,
        };
        let mut v: Vec<&mut [Block]> = Vec::new();
        for (index, lane) in b.chunks_exact_mut(lane_bytes).enumerate() {
            for (block, bytes) in x.iter_mut().zip(lane.chunks_exact(BLOCK_BYTES)) {
                *block = block_from_le_bytes(bytes);
            }
            v = if index == 0 {
                fill_v(&mut x, &mut supply)
            } else {
                fill_v(&mut x, std::mem::take(&mut v).into_iter())
            };
            mix_v(&mut x, &mut y, &v, n, piece_lanes_log2);
            for (block, bytes) in x.iter().zip(lane.chunks_exact_mut(BLOCK_BYTES)) {
                block_to_le_bytes(block, bytes);
            }
        }
    });
    pbkdf2_hmac::<Sha256>(password, &b, 1, output);
    Ok(())
}

const PAGE_BYTES: usize = 4096;

/// Writes one byte of each page of `piece`, so that the kernel maps (and zeroes) it now.
fn fault_in(piece: &mut [Block]) {
    for page in piece.chunks_mut(PAGE_BYTES / BLOCK_BYTES) {
        page[0] = ZERO_BLOCK;
    }
}

/// A piece of V and its position among the pieces.
type Piece<'v> = (usize, &'v mut [Block]);
type Pieces<'v> = Mutex<VecDeque<Piece<'v>>>;

fn take_piece<'v>(
    pieces: &Pieces<'v>,
    take: fn(&mut VecDeque<Piece<'v>>) -> Option<Piece<'v>>,
) -> Option<Piece<'v>> {
    take(
        &mut pieces
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()),
    )
}

/// V's pieces in order, with their pages faulted in. The helper thread faults pieces in from
/// the front; when the next piece is not ready yet, the mixing thread faults one in from the
/// back itself rather than wait (where faults are slow, they take longer than the mixing).
struct PieceSupply<'p, 'v> {
    untouched: &'p Pieces<'v>,
    faulted: mpsc::Receiver<Piece<'v>>,
    ready: Vec<Option<&'v mut [Block]>>,
    next: usize,
}

impl<'v> Iterator for PieceSupply<'_, 'v> {
    type Item = &'v mut [Block];

    fn next(&mut self) -> Option<&'v mut [Block]> {
        if self.next == self.ready.len() {
            return None;
        }
        loop {
            if let Some(piece) = self.ready[self.next].take() {
                self.next += 1;
                return Some(piece);
            }
            let (index, piece) = match self.faulted.try_recv() {
                Ok(delivered) => delivered,
                Err(_) => match take_piece(self.untouched, VecDeque::pop_back) {
                    Some((index, piece)) => {
                        fault_in(piece);
                        (index, piece)
                    }
                    // The helper holds the next piece: it sends every piece it takes.
                    None => self
                        .faulted
                        .recv()
                        .expect("the page-faulting thread delivers the pieces it took"),
                },
            };
            self.ready[index] = Some(piece);
        }
    }
}
/// V is handed from the page-faulting helper to the mixing in pieces of up to this size.
const PIECE_BYTES: usize = 2 << 20;

/// log2 of the lanes in one piece of V: a power of two (so a lane's piece is a shift away), at
/// most `PIECE_BYTES`, at least one lane, at most all of V.
fn piece_lanes_log2(log2_n: u8, lane_bytes: usize) -> u32 {
    let fit = (PIECE_BYTES / lane_bytes).max(1);
    fit.ilog2().min(u32::from(log2_n))
}

const BLOCK_BYTES: usize = 64;

/// One 64-byte salsa20 block as its sixteen little-endian words, in order.
type Block = [u32; 16];

const ZERO_BLOCK: Block = [0; 16];

fn block_from_le_bytes(bytes: &[u8]) -> Block {
    std::array::from_fn(|i| {
        u32::from_le_bytes([
            bytes[4 * i],
            bytes[4 * i + 1],
            bytes[4 * i + 2],
            bytes[4 * i + 3],
        ])
    })
}

fn block_to_le_bytes(block: &Block, bytes: &mut [u8]) {
    for (word, out) in block.iter().zip(bytes.chunks_exact_mut(4)) {
        out.copy_from_slice(&word.to_le_bytes());
    }
}

/// RFC 7914 `Integerify`: the block's first 8 bytes as a little-endian integer (words 0 and 1).
fn integerify(block: &Block) -> u64 {
    u64::from(block[0]) | u64::from(block[1]) << 32
}

#[inline(always)]
fn xor_blocks(a: &Block, b: &Block) -> Block {
    std::array::from_fn(|i| a[i] ^ b[i])
}

/// salsa20/8 core: 4 double rounds plus the feed-forward addition, on plain words. Scalar on
/// purpose: the four quarter-rounds of a round are independent, so a superscalar core runs them
/// side by side with one-instruction rotates, while SSE2's diagonal layout (four lanes, one
/// chain) pays three instructions per rotate on its critical path and measured ~45 % slower
/// (`cargo bench -p kopia-repo --bench kdf`).
#[inline(always)]
fn salsa20_8(input: Block) -> Block {
    let mut x = input;
    #[inline(always)]
    fn quarter(x: &mut Block, a: usize, b: usize, c: usize, d: usize) {
        x[b] ^= x[a].wrapping_add(x[d]).rotate_left(7);
        x[c] ^= x[b].wrapping_add(x[a]).rotate_left(9);
        x[d] ^= x[c].wrapping_add(x[b]).rotate_left(13);
        x[a] ^= x[d].wrapping_add(x[c]).rotate_left(18);
    }
    for _ in 0..4 {
        // Column round, then row round (RFC 7914 §3).
        quarter(&mut x, 0, 4, 8, 12);
        quarter(&mut x, 5, 9, 13, 1);
        quarter(&mut x, 10, 14, 2, 6);
        quarter(&mut x, 15, 3, 7, 11);
        quarter(&mut x, 0, 1, 2, 3);
        quarter(&mut x, 5, 6, 7, 4);
        quarter(&mut x, 10, 11, 8, 9);
        quarter(&mut x, 15, 12, 13, 14);
    }
    std::array::from_fn(|i| x[i].wrapping_add(input[i]))
}

/// BlockMix (RFC 7914 §4) of `input` (`2r` blocks) into `out`: the even outputs fill the first
/// half, the odd ones the second.
#[inline(always)]
fn block_mix(input: &[Block], out: &mut [Block]) {
    let (even, odd) = out.split_at_mut(input.len() / 2);
    let mut x = input[input.len() - 1];
    for ((even, odd), pair) in even.iter_mut().zip(odd).zip(input.chunks_exact(2)) {
        x = salsa20_8(xor_blocks(&x, &pair[0]));
        *even = x;
        x = salsa20_8(xor_blocks(&x, &pair[1]));
        *odd = x;
    }
}

/// The first loop of ROMix (RFC 7914 §5) for lane `x` (`2r` blocks): `V[0] = X`, then
/// `V[i] = BlockMix(V[i − 1])`, through V's pieces in order; returns the pieces, and leaves
/// the last `V[i]` in `x`.
fn fill_v<'v>(
    x: &mut [Block],
    pieces: impl Iterator<Item = &'v mut [Block]>,
) -> Vec<&'v mut [Block]> {
    let lane = x.len();
    let mut filled = Vec::new();
    for piece in pieces {
        let first = filled.is_empty();
        let mut previous: &[Block] = x;
        for (i, out) in piece.chunks_exact_mut(lane).enumerate() {
            if first && i == 0 {
                out.copy_from_slice(previous);
            } else {
                block_mix(previous, out);
            }
            previous = out;
        }
        x.copy_from_slice(&piece[piece.len() - lane..]);
        filled.push(piece);
    }
    filled
}

/// The second loop of ROMix: `X = BlockMix(V[N − 1])`, then `N` times
/// `X = BlockMix(X ⊕ V[Integerify(X) mod N])`, with `y` as scratch. Each piece of `v` holds
/// `2^piece_lanes_log2` lanes.
fn mix_v(
    x: &mut Vec<Block>,
    y: &mut Vec<Block>,
    v: &[&mut [Block]],
    n: usize,
    piece_lanes_log2: u32,
) {
    let lane = x.len();
    let within = (1usize << piece_lanes_log2) - 1;
    block_mix(x, y);
    std::mem::swap(x, y);
    for _ in 0..n {
        let j = (integerify(&x[lane - 1]) & (n as u64 - 1)) as usize;
        let at = (j & within) * lane;
        let v_j = &v[j >> piece_lanes_log2][at..at + lane];
        // XOR the whole of V[j] in first: its cache lines are then fetched all at once.
        for (a, b) in x.iter_mut().zip(v_j) {
            *a = xor_blocks(a, b);
        }
        block_mix(x, y);
        std::mem::swap(x, y);
    }
}

/// The `N × 2r`-block array V. On Linux it is an anonymous mapping advised to use transparent
/// huge pages: faulting in 64 MiB as 4 KiB pages costs about as much as a third of the mixing.
/// Its pages are first touched by the helper thread in `scrypt`.
enum WorkArea {
    #[cfg(target_os = "linux")]
    Mapped(memmap2::MmapMut),
    Heap(Vec<Block>),
}

impl WorkArea {
    fn new(blocks: usize) -> WorkArea {
        #[cfg(target_os = "linux")]
        if let Ok(map) = memmap2::MmapMut::map_anon(blocks * BLOCK_BYTES) {
            // Without huge pages it still works, only slower: the advice is best effort.
            let _ = map.advise(memmap2::Advice::HugePage);
            return WorkArea::Mapped(map);
        }
        WorkArea::Heap(vec![ZERO_BLOCK; blocks])
    }

    fn blocks(&mut self) -> &mut [Block] {
        match self {
            // Page-aligned and a whole number of blocks long, so the cast cannot fail.
            #[cfg(target_os = "linux")]
            WorkArea::Mapped(map) => bytemuck::cast_slice_mut(&mut map[..]),
            WorkArea::Heap(blocks) => blocks,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn derive(password: &[u8], salt: &[u8], log2_n: u8, r: u32, p: u32, len: usize) -> String {
        let mut out = vec![0u8; len];
        scrypt(
            password,
            salt,
            &ScryptParams::new(log2_n, r, p).unwrap(),
            &mut out,
        )
        .unwrap();
        hex::encode(out)
    }

    /// RFC 7914 §8: salsa20/8 core on one block.
    #[test]
    fn salsa20_8_rfc_vector() {
        let input = hex::decode(
            "7e879a214f3ec9867ca940e641718f26baee555b8c61c1b50df846116dcd3b1d\
             ee24f319df9b3d8514121e4b5ac5aa3276021d2909c74829edebc68db8b8c25e",
        )
        .unwrap();
        let mut out = [0u8; 64];
        block_to_le_bytes(&salsa20_8(block_from_le_bytes(&input)), &mut out);
        assert_eq!(
            hex::encode(out),
            "a41f859c6608cc993b81cacb020cef05044b2181a2fd337dfd7b1c6396682f29\
             b4393168e3c9e6bcfe6bc5b7a06d96bae424cc102c91745c24ad673dc7618f81"
        );
    }

    /// RFC 7914 §12, the two fast vectors.
    #[test]
    fn rfc_vectors() {
        assert_eq!(
            derive(b"", b"", 4, 1, 1, 64),
            "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442\
             fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"
        );
        assert_eq!(
            derive(b"password", b"NaCl", 10, 8, 16, 64),
            "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162\
             2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
        );
    }

    /// RFC 7914 §12, the 16 MiB vector.
    #[test]
    fn rfc_vector_n16384() {
        assert_eq!(
            derive(b"pleaseletmein", b"SodiumChloride", 14, 8, 1, 64),
            "7023bdcb3afd7348461c06cd81fd38ebfda8fbba904f8e3ea9b543f6545da1f2\
             d5432955613f0fcf62d49705242a9af9e61e85dc0d651e40dfcf017b45575887"
        );
    }

    /// Guide §12.5: Kopia's own parameters.
    #[test]
    fn kopia_parameters_vector() {
        assert_eq!(
            derive(
                b"foobarbazfoobarbaz",
                &(0u8..32).collect::<Vec<_>>(),
                16,
                8,
                1,
                32
            ),
            "e9ecde1e4af85d57a25d6f674ba7eab9700ffd33e1cbb086b475ef9267e1a5a0"
        );
    }

    /// Same bytes as the RustCrypto `scrypt` crate across shapes: several r, p > 1, odd lengths
    /// (that crate accepts 10 to 64 bytes; longer outputs extend shorter ones, as PBKDF2 does).
    #[test]
    fn agrees_with_reference_crate() {
        // The last two span several 2 MiB pieces of V, one of them with p > 1.
        let cases: [(u8, u32, u32, usize); 8] = [
            (1, 1, 1, 10),
            (4, 2, 3, 17),
            (6, 3, 2, 64),
            (8, 8, 1, 32),
            (5, 1, 5, 64),
            (10, 16, 1, 33),
            (14, 2, 2, 32),
            (12, 9, 1, 64),
        ];
        for (n, &(log2_n, r, p, len)) in cases.iter().enumerate() {
            let password: Vec<u8> = (0..n * 7).map(|i| (i * 31 + 5) as u8).collect();
            let salt: Vec<u8> = (0..n * 5 + 16).map(|i| (i * 17 + 3) as u8).collect();
            let reference = ::scrypt::Params::new(log2_n, r, p, len).unwrap();
            let mut expected = vec![0u8; len];
            ::scrypt::scrypt(&password, &salt, &reference, &mut expected).unwrap();
            assert_eq!(
                derive(&password, &salt, log2_n, r, p, len),
                hex::encode(&expected),
                "log2 N={log2_n} r={r} p={p} len={len}"
            );
            let longer = derive(&password, &salt, log2_n, r, p, len + 40);
            assert!(longer.starts_with(&hex::encode(&expected)));
        }
    }

    #[test]
    fn invalid_parameters_are_refused() {
        for (log2_n, r, p, what) in [
            (0, 8, 1, "power of two"),
            (4, 0, 1, "at least 1"),
            (4, 1, 0, "at least 1"),
            (16, 1, 1, "below 2^(16·r)"),
            (4, 1 << 15, 1 << 15, "below 2^30"),
            (60, 8, 1, "do not fit memory"),
            (200, 16, 1, "do not fit memory"),
        ] {
            let err = ScryptParams::new(log2_n, r, p).unwrap_err();
            assert!(err.to_string().contains(what), "{log2_n} {r} {p}: {err}");
        }
        let params = ScryptParams::new(15, 1, 1).unwrap();
        assert_eq!(params.to_string(), "scrypt-32768-1-1");
        assert_eq!((params.log2_n(), params.r(), params.p()), (15, 1, 1));
        let err = scrypt(b"pw", b"salt", &params, &mut []).unwrap_err();
        assert!(err.to_string().contains("output length 0"), "{err}");
    }

    #[test]
    fn blocks_round_trip_and_integerify_reads_the_first_8_bytes() {
        let bytes: Vec<u8> = (0u8..64).collect();
        let block = block_from_le_bytes(&bytes);
        let mut back = [0u8; 64];
        block_to_le_bytes(&block, &mut back);
        assert_eq!(back.as_slice(), bytes.as_slice());
        assert_eq!(
            integerify(&block),
            u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7])
        );
    }
}
