//! `PackedSet`: the compressed, immutable set of address ids behind one consent key.
//!
//! Most keys hold a sparse set: a brand's consenting numbers scattered over
//! hundreds of millions of possible ids. Roaring pays 2 bytes per id there
//! plus, in memory, ~50 bytes per 65 536-id container, which for small sparse
//! sets is 5–30 bytes per id. So the default representation is a sorted array
//! cut into blocks of 64 ids, each stored as its first id and the gaps
//! `id[i] - id[i-1] - 1` bit-packed at the block's widest gap (0 bits for a
//! run of consecutive ids): about `log2(U/n) + 3.5` bits per id.
//!
//! Dense sets are the other way round: a roaring bitmap container costs 1 bit
//! per possible id and a run container 4 bytes per run, which beats any gap
//! code once more than about one id in five is present. [`PackedSet`]
//! therefore keeps a (run-optimised) `RoaringBitmap` whenever its serialized
//! size is smaller than the packed one. Measured serialized bytes per id
//! (memory in brackets; `size_table` test, `--ignored --nocapture`), 1 million
//! uniformly random ids unless noted:
//!
//! | density                 | packed        | roaring        | kept    |
//! |-------------------------|---------------|----------------|---------|
//! | 1/2                     | 0.48 (0.58)   | 0.25 (0.26)    | roaring |
//! | 1/4                     | 0.64 (0.74)   | 0.50 (0.50)    | roaring |
//! | 1/6                     | 0.72 (0.82)   | 0.75 (0.76)    | packed  |
//! | 1/16                    | 0.91 (1.01)   | 1.99 (2.00)    | packed  |
//! | 1/120                   | 1.26 (1.36)   | 2.01 (2.09)    | packed  |
//! | 1/30000 (20k ids)       | 2.24 (2.35)   | 5.26 (21.5)    | packed  |
//! | 1/3 in scattered ranges | 0.87 (0.96)   | 2.02 (2.12)    | packed  |
//! | one run                 | 0.08 (0.18)   | 0.0002         | roaring |
//!
//! Memory layout, for a lookup that touches few cache lines and pages:
//!
//! * leaves: 64-byte lines, each with the first ids and data offsets of 8
//!   blocks, so finding a block and its data costs one line;
//! * buckets: a radix table over `(id - min) >> shift`, 4–32 entries per
//!   leaf, giving the range of leaves that can hold an id: usually one leaf.
//!   An entry whose whole id range lies in a gap between two members is
//!   flagged empty, and a lookup there ends at the table (numbering plans
//!   leave wide stretches unused: half the numbers 500–559 are in prefixes
//!   no operator has);
//! * keys: the first id of every leaf, searched only when a bucket spans a
//!   leaf boundary (~1 lookup in 4): one or two line compares, or a binary
//!   search if heavily clustered ids put 16 or more leaves in a bucket;
//! * all three in one array (one or two pages for a 20k-id set), the
//!   data in another: per block a width byte, then the packed gaps. Both
//!   are [`Frozen`] arrays: on the heap while a set is built, then moved
//!   with the rest of the store into one arena on transparent huge pages
//!   (see [`super::arena`]), where reaching them costs no TLB miss.
//!
//! A lookup so reads 3–4 lines (bucket, leaf, data, sometimes keys), then
//! sums gaps until the running value reaches the target: eight at a time
//! with AVX2 when the CPU has it (`simd`), which halves a lookup whose lines
//! are in cache. Lookups that must probe two sets (`position_in_either`)
//! issue each step's read in both before waiting on either. The index costs
//! ~0.1 byte per id in memory beyond the serialized size. Measured against
//! the obvious design, a binary search of a flat `Vec<u32>` of block first
//! ids (CPU time per dependent lookup, busy 2-core EPYC): 5M-id set hot 117
//! → ~65 ns; a random one of 10 000 20k-id sets ~1.4 µs → ~0.4–0.8 µs,
//! before huge pages, empty buckets and the vector decode.
//!
//! The snapshot format stores only the first ids and `data`; the index is
//! rebuilt on read. Every constructor, [`PackedSet::read_from`] on hostile
//! bytes included, establishes the invariants `contains` and `iter` rely on
//! (widths ≤ 32, blocks inside the data, ids strictly increasing within
//! u32), so no operation on a set can panic.

use std::fmt;
use std::sync::Arc;

use roaring::RoaringBitmap;

use super::arena::{prefetch, Frozen, Packer, Pod};

mod simd;

/// Ids per block. Measured: 33 looks up ~5% faster than 64 but costs 1.1
/// bit per id more metadata; 65 (whole groups of eight gaps) is no faster.
const BLOCK: usize = 64;
/// Gaps stored per full block (the first id lives in the leaf).
const DELTAS: usize = BLOCK - 1;
/// Zero bytes after the data so a lookup may always load 8 bytes at once.
const PAD: usize = 8;
/// Format tags for [`PackedSet::write_to`].
const TAG_EMPTY: u8 = 0;
const TAG_PACKED: u8 = 1;
const TAG_ROARING: u8 = 2;
/// Tag, u64 length, u32 block count, u32 data length.
const PACKED_HEADER: usize = 1 + 8 + 4 + 4;
/// Tag, u32 byte length.
const ROARING_HEADER: usize = 1 + 4;
/// Estimated memory per roaring container besides its values: the 32-byte
/// `Container` in the bitmap's `Vec` plus an allocation header for its store.
const ROARING_CONTAINER_OVERHEAD: usize = 48;

/// `from_sorted` was given ids that are not strictly increasing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ids must be strictly increasing, but ids[{index}] = {value} follows {previous}; use PackedSet::from_unsorted to sort and deduplicate")]
pub struct NotSorted {
    /// Position of the first offending id.
    pub index: usize,
    /// The offending id.
    pub value: u32,
    /// The id before it.
    pub previous: u32,
}

/// Why serialized set bytes were rejected by [`PackedSet::read_from`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetDecodeError {
    /// The input ends before the set does.
    #[error("set truncated: needs {needed} bytes, only {available} left")]
    Truncated { needed: u64, available: usize },
    /// The first byte names no known representation.
    #[error("unknown set tag {0} (expected 0 = empty, 1 = packed, 2 = roaring)")]
    UnknownTag(u8),
    /// A packed set with no blocks or no ids (an empty set has its own tag).
    #[error("packed set declares {len} ids in {blocks} blocks; an empty set must use tag 0")]
    EmptyPacked { len: u64, blocks: u32 },
    /// The id count does not fit the block count.
    #[error("packed set declares {len} ids, but {blocks} blocks of {BLOCK} hold {min}..={max}")]
    LengthMismatch {
        len: u64,
        blocks: u32,
        min: u64,
        max: u64,
    },
    /// A block's bit width exceeds 32.
    #[error("block {block} has bit width {width}, at most 32 allowed")]
    WidthTooLarge { block: usize, width: u8 },
    /// The block widths imply a different amount of packed data.
    #[error("packed data is {declared} bytes, but the block widths need {computed}")]
    DataLengthMismatch { declared: u32, computed: u64 },
    /// A block starts at or before the previous block's last id.
    #[error("block {block} starts at {first}, not after the previous id {previous}")]
    NotIncreasing {
        block: usize,
        first: u32,
        previous: u32,
    },
    /// Decoding a block's gaps runs past `u32::MAX`.
    #[error("block {block} decodes past u32::MAX")]
    Overflow { block: usize },
    /// The roaring bitmap's own decoder rejected the bytes.
    #[error("invalid roaring bitmap: {0}")]
    Roaring(String),
    /// The roaring bitmap is valid but does not span exactly its declared length.
    #[error("roaring bitmap declared {declared} bytes but re-serializes to {actual}")]
    RoaringLength { declared: u32, actual: usize },
}

/// Which of two sets holds an id, and at which position
/// ([`PackedSet::position_in_either`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Either {
    /// The first set, at this position.
    First(u64),
    /// Only the second set, at this position.
    Second(u64),
    /// Neither.
    Neither,
}

/// Which representation a [`PackedSet`] chose (for metrics and tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// No ids.
    Empty,
    /// Bit-packed gaps in blocks with a skip index.
    Packed,
    /// A run-optimised roaring bitmap (dense sets).
    Roaring,
}

/// An immutable set of `u32` ids, compressed for memory and fast `contains`.
#[derive(Clone, Default)]
pub struct PackedSet {
    repr: Repr,
}

/// Cloning is cheap: the arrays and the bitmap are shared, never copied.
#[derive(Clone, Default)]
enum Repr {
    #[default]
    Empty,
    Packed(Packed),
    Roaring(Arc<RoaringBitmap>),
}

impl PackedSet {
    /// Builds a set from strictly increasing ids.
    pub fn from_sorted(ids: &[u32]) -> Result<PackedSet, NotSorted> {
        if let Some(i) = ids.windows(2).position(|w| w[0] >= w[1]) {
            return Err(NotSorted {
                index: i + 1,
                value: ids[i + 1],
                previous: ids[i],
            });
        }
        Ok(Self::build(ids.iter().copied()))
    }

    /// Builds a set from ids in any order, with duplicates allowed.
    pub fn from_unsorted(mut ids: Vec<u32>) -> PackedSet {
        ids.sort_unstable();
        ids.dedup();
        Self::build(ids.into_iter())
    }

    /// Builds from an iterator the caller guarantees strictly increasing.
    fn build(ids: impl Iterator<Item = u32>) -> PackedSet {
        let mut b = Builder::default();
        for id in ids {
            b.push(id);
        }
        b.finish()
    }

    /// Whether `id` is in the set. Allocation-free.
    #[inline]
    pub fn contains(&self, id: u32) -> bool {
        match &self.repr {
            Repr::Packed(p) => p.contains(id),
            Repr::Roaring(r) => r.contains(id),
            Repr::Empty => false,
        }
    }

    /// The index of `id` in ascending order, if present (its rank).
    /// Allocation-free; O(containers) for the roaring form.
    #[inline]
    pub fn position(&self, id: u32) -> Option<u64> {
        match &self.repr {
            Repr::Packed(p) => p.position(id),
            Repr::Roaring(r) => r.contains(id).then(|| r.rank(id) - 1),
            Repr::Empty => None,
        }
    }

    /// The position of `id` in `a`, or else in `b`. Both sets are probed
    /// together: each step's read in `b` starts before the same step in `a`
    /// is waited for, so a miss in both (the usual answer for an address
    /// without a record) costs about one set's cache misses instead of two.
    #[inline]
    pub fn position_in_either(a: &PackedSet, b: &PackedSet, id: u32) -> Either {
        match (&a.repr, &b.repr) {
            (Repr::Packed(pa), Repr::Packed(pb)) => Packed::position_in_either(pa, pb, id),
            _ => match a.position(id) {
                Some(p) => Either::First(p),
                None => b.position(id).map_or(Either::Neither, Either::Second),
            },
        }
    }

    /// Hand the set's arrays to `p` (to move them into the store's arena).
    pub fn place_arrays(&mut self, p: &mut Packer) {
        if let Repr::Packed(packed) = &mut self.repr {
            p.place(&mut packed.index);
            p.place(&mut packed.data);
        }
    }

    /// Whether both are the same set in memory (clones of one another), not
    /// merely equal.
    pub fn same(&self, other: &PackedSet) -> bool {
        match (&self.repr, &other.repr) {
            (Repr::Empty, Repr::Empty) => true,
            (Repr::Packed(a), Repr::Packed(b)) => a.index.same(&b.index) && a.data.same(&b.data),
            (Repr::Roaring(a), Repr::Roaring(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// Whether the set's arrays are in the store's arena (empty and roaring
    /// sets never are).
    pub fn in_arena(&self) -> bool {
        matches!(&self.repr, Repr::Packed(p) if p.index.arena().is_some() && p.data.arena().is_some())
    }

    /// Number of ids.
    pub fn len(&self) -> usize {
        let n = match &self.repr {
            Repr::Packed(p) => p.len,
            Repr::Roaring(r) => r.len(),
            Repr::Empty => 0,
        };
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// Whether the set has no ids.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        match &self.repr {
            Repr::Packed(p) => Iter::Packed(PackedIter::new(p)),
            Repr::Roaring(r) => Iter::Roaring(r.iter()),
            Repr::Empty => Iter::Empty,
        }
    }

    /// Bytes held (on the heap or in the arena), for memory accounting
    /// (roaring: an estimate from its containers).
    pub fn heap_bytes(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.heap_bytes(),
            Repr::Roaring(r) => roaring_heap_estimate(r),
            Repr::Empty => 0,
        }
    }

    /// Which representation this set uses.
    pub fn representation(&self) -> Representation {
        match &self.repr {
            Repr::Packed(_) => Representation::Packed,
            Repr::Roaring(_) => Representation::Roaring,
            Repr::Empty => Representation::Empty,
        }
    }

    /// Bytes [`PackedSet::write_to`] appends.
    pub fn serialized_size(&self) -> usize {
        match &self.repr {
            Repr::Packed(p) => p.serialized_size(),
            Repr::Roaring(r) => ROARING_HEADER + r.serialized_size(),
            Repr::Empty => 1,
        }
    }

    /// Appends the set's snapshot-file encoding to `out`.
    ///
    /// Format (little-endian): tag `0` empty; tag `1` packed: `u64` id count,
    /// `u32` block count `B`, `u32` data length `D`, `B` × `u32` first ids,
    /// then `D` bytes holding, per block, a bit width and the packed gaps;
    /// tag `2` roaring: `u32` length, then the portable roaring serialization.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.reserve(self.serialized_size());
        match &self.repr {
            Repr::Empty => out.push(TAG_EMPTY),
            Repr::Packed(p) => p.write_to(out),
            Repr::Roaring(r) => {
                out.push(TAG_ROARING);
                // The size is bounded by 65 536 containers of 8 KiB plus headers.
                out.extend_from_slice(&(r.serialized_size() as u32).to_le_bytes());
                // Writing into a Vec cannot fail.
                let _ = r.serialize_into(&mut *out);
            }
        }
    }

    /// Reads one set written by [`PackedSet::write_to`] from the front of
    /// `bytes`, fully validating it; returns the set and the bytes consumed.
    pub fn read_from(bytes: &[u8]) -> Result<(PackedSet, usize), SetDecodeError> {
        let mut r = Reader { bytes, pos: 0 };
        let tag = r.u8()?;
        let repr = match tag {
            TAG_EMPTY => Repr::Empty,
            TAG_PACKED => Repr::Packed(Packed::read(&mut r)?),
            TAG_ROARING => Repr::Roaring(Arc::new(read_roaring(&mut r)?)),
            other => return Err(SetDecodeError::UnknownTag(other)),
        };
        Ok((PackedSet { repr }, r.pos))
    }

    /// This set with `remove` taken out and then `add` inserted (an id in
    /// both ends up present, so compaction can pass every changed id as
    /// `remove` and the ones now granted as `add`). Both should be sorted;
    /// unsorted input is sorted into a copy first.
    pub fn merge(&self, add: &[u32], remove: &[u32]) -> PackedSet {
        let add = sorted_dedup(add);
        let remove = sorted_dedup(remove);
        let mut remove = remove.iter().copied().peekable();
        let kept = self.iter().filter(move |&id| {
            while remove.next_if(|&r| r < id).is_some() {}
            remove.peek() != Some(&id)
        });
        let mut b = Builder::default();
        for id in MergeUnion::new(kept, add.iter().copied()) {
            b.push(id);
        }
        b.finish()
    }
}

/// Equal when they hold the same ids, whatever the representation.
impl PartialEq for PackedSet {
    fn eq(&self, other: &PackedSet) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for PackedSet {}

impl fmt::Debug for PackedSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PackedSet")
            .field("representation", &self.representation())
            .field("len", &self.len())
            .field("heap_bytes", &self.heap_bytes())
            .finish()
    }
}

/// Borrows `ids` if already strictly increasing, else a sorted, deduplicated copy.
fn sorted_dedup(ids: &[u32]) -> std::borrow::Cow<'_, [u32]> {
    if ids.windows(2).all(|w| w[0] < w[1]) {
        std::borrow::Cow::Borrowed(ids)
    } else {
        let mut v = ids.to_vec();
        v.sort_unstable();
        v.dedup();
        std::borrow::Cow::Owned(v)
    }
}

/// Union of two ascending, duplicate-free streams.
struct MergeUnion<A: Iterator<Item = u32>, B: Iterator<Item = u32>> {
    a: std::iter::Peekable<A>,
    b: std::iter::Peekable<B>,
}

impl<A: Iterator<Item = u32>, B: Iterator<Item = u32>> MergeUnion<A, B> {
    fn new(a: A, b: B) -> Self {
        MergeUnion {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<A: Iterator<Item = u32>, B: Iterator<Item = u32>> Iterator for MergeUnion<A, B> {
    type Item = u32;
    fn next(&mut self) -> Option<u32> {
        match (self.a.peek().copied(), self.b.peek().copied()) {
            (Some(x), Some(y)) if x < y => self.a.next(),
            (Some(x), Some(y)) if x > y => self.b.next(),
            (Some(_), Some(_)) => {
                self.b.next();
                self.a.next()
            }
            (Some(_), None) => self.a.next(),
            (None, _) => self.b.next(),
        }
    }
}

/// Blocks per leaf: one 64-byte line holds their first ids and data offsets,
/// so a cold lookup pays one miss for both.
const LEAF: usize = 8;
/// `u32`s per 64-byte line.
const LINE: usize = 16;
/// Leaves searched with one or two line compares; more fall back to a
/// binary search.
const WINDOW: usize = 16;
/// Buckets per leaf tried in turn until no bucket spans `WINDOW` leaves.
const PER_LEAF: [u64; 4] = [4, 8, 16, 32];

/// Set in a bucket table entry whose id range holds no member (leaf numbers
/// stay far below 2^31: at most 2^26 blocks).
const EMPTY_BUCKET: u32 = 1 << 31;

/// One cache line of the index.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Line([u32; LINE]);

/// Invariants (established by `Builder::finish_packed` and `read_from`):
/// `blocks >= 1`; `index` holds, in this order, `ceil(blocks / 8)` leaf
/// lines (first ids of 8 blocks, `u32::MAX` past the last, then their data
/// offsets), from line `keys_at` the first id of every leaf followed by at
/// least one line of `u32::MAX`, and from line `buckets_at` the bucket table
/// built by `Packed::buckets` (entries flagged [`EMPTY_BUCKET`] by
/// `Packed::mark_empty_buckets` only where no member falls in the bucket's
/// range); every block's offset points at a width byte ≤
/// 32 followed by its gaps, all inside `data` before its `PAD` zero bytes;
/// the last block has `last_deltas` gaps, the others `DELTAS`; and the
/// decoded ids strictly increase from `min` to `max` within u32.
#[derive(Clone)]
struct Packed {
    len: u64,
    min: u32,
    /// The largest id; lookups at or past it need no search, which also keeps
    /// the `u32::MAX` padding of keys and leaves above every searched id.
    max: u32,
    blocks: u32,
    last_deltas: u32,
    /// Ids `min + (i << shift)` onwards fall in bucket `i`.
    shift: u32,
    /// First line of the leaf keys and of the bucket table in `index`.
    keys_at: u32,
    buckets_at: u32,
    /// Leaves, keys and buckets in one array: a lookup in a small set
    /// touches one or two pages for all of them (with `data` right after it
    /// once packed into the store's arena).
    index: Frozen<Line>,
    /// Per block a width byte, then its gaps; `PAD` zero bytes at the end.
    data: Frozen<u8>,
}

impl Pod for Line {}

/// How many of the ascending `keys` are ≤ `id`: the position of the first
/// key above it (one vector compare and a bit scan).
#[inline(always)]
fn count_le<const N: usize>(keys: &[u32; N], id: u32) -> usize {
    let mut above = 1u32 << N;
    for (i, &k) in keys.iter().enumerate() {
        above |= u32::from(k > id) << i;
    }
    above.trailing_zeros() as usize
}

/// Byte length of `deltas` gaps at `width` bits.
#[inline]
fn block_bytes(deltas: usize, width: u8) -> usize {
    (deltas * usize::from(width)).div_ceil(8)
}

/// Loads 8 bytes little-endian at `pos`; 0 past the end (never reached on a
/// valid set thanks to `PAD`, but keeps the hot path panic-free).
#[inline(always)]
fn load_u64(data: &[u8], pos: usize) -> u64 {
    match data.get(pos..pos + 8) {
        Some(s) => s.try_into().map(u64::from_le_bytes).unwrap_or(0),
        None => 0,
    }
}

/// Whether `first + target` is among the ids of the block at `off`.
#[inline(always)]
fn block_contains(data: &[u8], off: usize, deltas: usize, target: u32) -> bool {
    if target == 0 {
        return true;
    }
    let target = u64::from(target);
    let width = usize::from(data.get(off).copied().unwrap_or(0)).min(32);
    if width == 0 {
        // A run: first, first + 1, ..., first + deltas.
        return target <= deltas as u64;
    }
    let mask = (1u64 << width) - 1;
    let mut bit = (off + 1) * 8;
    // Eight gaps at a time without a branch: the running value only grows,
    // so the target can only be in the first group that reaches it.
    let mut acc = 0u64;
    let mut left = deltas;
    while left >= 8 {
        let mut hit = false;
        for _ in 0..8 {
            acc += ((load_u64(data, bit >> 3) >> (bit & 7)) & mask) + 1;
            hit |= acc == target;
            bit += width;
        }
        if acc >= target {
            return hit;
        }
        left -= 8;
    }
    for _ in 0..left {
        acc += ((load_u64(data, bit >> 3) >> (bit & 7)) & mask) + 1;
        if acc >= target {
            return acc == target;
        }
        bit += width;
    }
    false
}

/// Where `target` (an offset from the block's first id) sits in the block:
/// 0 for the first id, i for the id after the i-th gap. Whole groups of
/// eight gaps go through [`simd::groups`] when the CPU allows.
fn block_position(data: &[u8], off: usize, deltas: usize, target: u32) -> Option<usize> {
    block_position_with(data, off, deltas, target, true)
}

/// `block_position`, with the AVX2 path allowed or not (the tests compare).
#[inline(always)]
fn block_position_with(
    data: &[u8],
    off: usize,
    deltas: usize,
    target: u32,
    vector: bool,
) -> Option<usize> {
    if target == 0 {
        return Some(0);
    }
    let target = u64::from(target);
    let width = usize::from(data.get(off).copied().unwrap_or(0)).min(32);
    if width == 0 {
        return (target <= deltas as u64).then_some(target as usize);
    }
    let mask = (1u64 << width) - 1;
    let mut bit = (off + 1) * 8;
    let mut acc = 0u64;
    let mut done = 0usize;
    if vector {
        match simd::groups(data, off + 1, deltas, width, target) {
            Some(Ok(answer)) => return answer,
            Some(Err(reached)) => {
                acc = reached;
                done = deltas / 8 * 8;
                bit += done * width;
            }
            None => {}
        }
    }
    // As `block_contains`: eight gaps at a time, the match position kept
    // without a branch.
    while deltas - done >= 8 {
        let mut hit = 0usize;
        for k in 0..8 {
            acc += ((load_u64(data, bit >> 3) >> (bit & 7)) & mask) + 1;
            hit = if acc == target { done + k + 1 } else { hit };
            bit += width;
        }
        if acc >= target {
            return (hit != 0).then_some(hit);
        }
        done += 8;
    }
    for i in done..deltas {
        acc += ((load_u64(data, bit >> 3) >> (bit & 7)) & mask) + 1;
        if acc >= target {
            return (acc == target).then_some(i + 1);
        }
        bit += width;
    }
    None
}

/// The block's last id, or `None` if it passes `u32::MAX`.
fn block_last(data: &[u8], off: usize, deltas: usize, first: u32) -> Option<u32> {
    let width = usize::from(data.get(off).copied().unwrap_or(0)).min(32);
    let mask = (1u64 << width) - 1;
    let base = (off + 1) * 8;
    let mut v = u64::from(first);
    for i in 0..deltas {
        let bit = base + i * width;
        v += ((load_u64(data, bit >> 3) >> (bit & 7)) & mask) + 1;
    }
    u32::try_from(v).ok()
}

impl Packed {
    /// Lays out leaves and index over validated blocks.
    fn assemble(
        len: u64,
        max: u32,
        firsts: &[u32],
        offsets: &[u32],
        last_deltas: u32,
        data: Vec<u8>,
    ) -> Packed {
        let keys: Vec<u32> = firsts.iter().step_by(LEAF).copied().collect();
        let min = keys.first().copied().unwrap_or(0);
        // Few buckets per leaf suit evenly spread ids; clustered ids get more
        // so that a bucket rarely spans a whole window of leaves.
        let mut shift = 31;
        let mut buckets = Vec::new();
        for per_leaf in PER_LEAF {
            (shift, buckets) = Self::buckets(&keys, min, max, per_leaf);
            if buckets
                .windows(2)
                .all(|w| w[1].saturating_sub(w[0]) < WINDOW as u32)
            {
                break;
            }
        }
        Self::mark_empty_buckets(
            &mut buckets,
            min,
            shift,
            firsts,
            offsets,
            last_deltas as usize,
            &data,
        );
        let key_lines = keys.len() / LINE + 1;
        let mut index = Vec::with_capacity(keys.len() + key_lines + buckets.len().div_ceil(LINE));
        for (f, o) in firsts.chunks(LEAF).zip(offsets.chunks(LEAF)) {
            let mut line = Line([u32::MAX; LINE]);
            line.0[..f.len()].copy_from_slice(f);
            line.0[LEAF..LEAF + o.len()].copy_from_slice(o);
            index.push(line);
        }
        let keys_at = index.len() as u32;
        let mut lines = |values: &[u32], count: usize| {
            for i in 0..count {
                let mut line = Line([u32::MAX; LINE]);
                let part = values.get(i * LINE..).unwrap_or_default();
                let part = part.get(..LINE).unwrap_or(part);
                line.0[..part.len()].copy_from_slice(part);
                index.push(line);
            }
        };
        lines(&keys, key_lines);
        let buckets_at = keys_at + key_lines as u32;
        lines(&buckets, buckets.len().div_ceil(LINE));
        Packed {
            len,
            min,
            max,
            blocks: firsts.len() as u32,
            last_deltas,
            shift,
            keys_at,
            buckets_at,
            index: Frozen::from_vec(index),
            data: Frozen::from_vec(data),
        }
    }

    /// Flag the buckets whose whole id range falls in a gap between two
    /// members ([`EMPTY_BUCKET`]): a lookup there ends at the bucket table,
    /// without reading a leaf or block. Numbering plans leave wide stretches
    /// unused (the Turkish mobile range 500–559 has 30 prefixes in use), so
    /// many lookups of arbitrary numbers end there. Only a gap wider than a
    /// bucket can hold one, which needs a block whose width exceeds `shift`
    /// or two blocks whose first ids are over a bucket apart: just those
    /// blocks are decoded. (Conservative: a bucket left unflagged is looked
    /// up as before.)
    fn mark_empty_buckets(
        buckets: &mut [u32],
        min: u32,
        shift: u32,
        firsts: &[u32],
        offsets: &[u32],
        last_deltas: usize,
        data: &[u8],
    ) {
        let bucket_span = 1u64 << shift;
        // Flag the buckets strictly between members `a < b` (with nothing
        // between them): those wholly inside the gap.
        let mut gap = |a: u32, b: u32| {
            if u64::from(b.saturating_sub(a)) <= bucket_span {
                return;
            }
            let from = (a.wrapping_sub(min) >> shift) as usize + 1;
            let to = (b.wrapping_sub(min) >> shift) as usize;
            for entry in buckets.get_mut(from..to).unwrap_or_default() {
                *entry |= EMPTY_BUCKET;
            }
        };
        let blocks = firsts.len();
        for (b, (&first, &off)) in firsts.iter().zip(offsets).enumerate() {
            let next = firsts.get(b + 1).copied();
            let off = off as usize;
            let width = u32::from(data.get(off).copied().unwrap_or(0)).min(32);
            let inner = width > shift;
            let outer = next.is_some_and(|n| u64::from(n.saturating_sub(first)) > bucket_span);
            if !inner && !outer {
                continue;
            }
            let deltas = if b + 1 == blocks { last_deltas } else { DELTAS };
            let mask = (1u64 << width) - 1;
            let mut id = u64::from(first);
            for i in 0..deltas {
                let bit = (off + 1) * 8 + i * width as usize;
                let next_id = id + ((load_u64(data, bit >> 3) >> (bit & 7)) & mask) + 1;
                // Valid sets stay below 2^32; stop rather than wrap otherwise.
                let (Ok(a), Ok(z)) = (u32::try_from(id), u32::try_from(next_id)) else {
                    return;
                };
                gap(a, z);
                id = next_id;
            }
            if let (Some(n), Ok(last)) = (next, u32::try_from(id)) {
                gap(last, n);
            }
        }
    }

    /// The smallest shift giving at most `per_leaf` buckets per leaf, and
    /// for each bucket the leaf holding its first id, plus the last leaf.
    fn buckets(keys: &[u32], min: u32, max: u32, per_leaf: u64) -> (u32, Vec<u32>) {
        let span = u64::from(max.saturating_sub(min));
        let want = per_leaf * keys.len() as u64;
        // At most 31: (span >> 31) + 1 <= 2 <= want.
        let shift = (0..32u32).find(|&s| (span >> s) < want).unwrap_or(31);
        let n = (span >> shift) + 1;
        let mut buckets = Vec::with_capacity(n as usize + 1);
        let mut leaf = 0usize;
        for i in 0..n {
            let lo = u64::from(min) + (i << shift);
            while keys.get(leaf + 1).is_some_and(|&k| u64::from(k) <= lo) {
                leaf += 1;
            }
            buckets.push(leaf as u32);
        }
        buckets.push(keys.len().saturating_sub(1) as u32);
        (shift, buckets)
    }

    /// The `i`-th `u32` from line `at` on.
    #[inline(always)]
    fn word(&self, at: u32, i: usize) -> Option<u32> {
        let line = self.index.get(at as usize + i / LINE)?;
        line.0.get(i % LINE).copied()
    }

    /// Index of the leaf whose range holds `id` (`min <= id < max`), or
    /// `None` when `id`'s bucket holds no member.
    #[inline(always)]
    fn find_leaf(&self, id: u32) -> Option<usize> {
        let b = (id.wrapping_sub(self.min) >> self.shift) as usize;
        let lo = self.word(self.buckets_at, b)?;
        if lo & EMPTY_BUCKET != 0 {
            return None;
        }
        let lo = lo as usize;
        let hi = (self.word(self.buckets_at, b + 1)? & !EMPTY_BUCKET) as usize;
        // keys[lo] <= id < keys[hi + 1]: the answer is in lo..=hi.
        if hi == lo {
            return Some(lo);
        }
        if hi.saturating_sub(lo) < WINDOW {
            // Count keys <= id from the line holding keys[lo + 1]: all
            // before lo + 1 are, all after the answer (padding included)
            // are not, and the answer is within 16 of lo.
            let line = (lo + 1) / LINE;
            let at = self.keys_at as usize + line;
            let n = count_le(&self.index.get(at)?.0, id);
            let n = if n == LINE {
                LINE + count_le(&self.index.get(at + 1)?.0, id)
            } else {
                n
            };
            return (line * LINE + n).checked_sub(1);
        }
        // Heavily clustered ids: binary search keys lo + 1..=hi.
        let (mut first, mut count) = (lo + 1, hi - lo);
        while count > 0 {
            let half = count / 2;
            if self.word(self.keys_at, first + half)? <= id {
                first += half + 1;
                count -= half + 1;
            } else {
                count = half;
            }
        }
        Some(first - 1)
    }

    #[inline]
    fn contains(&self, id: u32) -> bool {
        if id >= self.max {
            return id == self.max;
        }
        if id < self.min {
            return false;
        }
        let Some(k) = self.find_leaf(id) else {
            return false;
        };
        let Some(Line(leaf)) = self.index.get(k) else {
            return false;
        };
        let Some(firsts) = leaf.first_chunk::<LEAF>() else {
            return false;
        };
        let Some(i) = count_le(firsts, id).checked_sub(1) else {
            return false;
        };
        let (Some(&first), Some(&off)) = (leaf.get(i), leaf.get(LEAF + i)) else {
            return false;
        };
        block_contains(
            &self.data,
            off as usize,
            self.deltas(k * LEAF + i),
            id.wrapping_sub(first),
        )
    }

    // A lookup in steps, one memory access each, so that a caller probing
    // two sets can start each step's read in both before waiting for either
    // (`PackedSet::position_in_either`): bucket (`start`, `find_leaf`),
    // leaf line (`block_in_leaf`), block data (`position_in_block`).

    /// The answer for ids outside `min..max`, else the bucket to read.
    #[inline(always)]
    fn start(&self, id: u32) -> Result<usize, Option<u64>> {
        if id == self.max {
            return Err(Some(self.len - 1));
        }
        if id > self.max || id < self.min {
            return Err(None);
        }
        Ok((id.wrapping_sub(self.min) >> self.shift) as usize)
    }

    /// Start loading bucket `b`'s line of the bucket table.
    #[inline(always)]
    fn prefetch_bucket(&self, b: usize) {
        self.prefetch_line(self.buckets_at as usize + b / LINE);
    }

    /// Start loading line `k` of the index (a leaf line for `k < keys_at`).
    #[inline(always)]
    fn prefetch_line(&self, k: usize) {
        if let Some(line) = self.index.get(k) {
            prefetch(line);
        }
    }

    /// Start loading the block data at `off`.
    #[inline(always)]
    fn prefetch_data(&self, off: usize) {
        if let Some(byte) = self.data.get(off) {
            prefetch(byte);
        }
    }

    /// The block of leaf `k` whose range holds `id`: its number, first id
    /// and data offset.
    #[inline(always)]
    fn block_in_leaf(&self, k: usize, id: u32) -> Option<(usize, u32, usize)> {
        let Line(leaf) = self.index.get(k)?;
        let firsts = leaf.first_chunk::<LEAF>()?;
        let i = count_le(firsts, id).checked_sub(1)?;
        let (&first, &off) = (leaf.get(i)?, leaf.get(LEAF + i)?);
        Some((k * LEAF + i, first, off as usize))
    }

    /// The index of `id` within the set, given its block.
    #[inline(always)]
    fn position_in_block(&self, (b, first, off): (usize, u32, usize), id: u32) -> Option<u64> {
        let within = block_position(&self.data, off, self.deltas(b), id.wrapping_sub(first))?;
        Some((b * BLOCK + within) as u64)
    }

    /// The index of `id` in the set, if present.
    #[inline(always)]
    fn position(&self, id: u32) -> Option<u64> {
        if let Err(done) = self.start(id) {
            return done;
        }
        let k = self.find_leaf(id)?;
        let block = self.block_in_leaf(k, id)?;
        self.position_in_block(block, id)
    }

    /// `position` on two sets at once (see `PackedSet::position_in_either`).
    #[inline(always)]
    fn position_in_either(a: &Packed, b: &Packed, id: u32) -> Either {
        let (sa, sb) = (a.start(id), b.start(id));
        if let Ok(x) = sa {
            a.prefetch_bucket(x);
        }
        if let Ok(x) = sb {
            b.prefetch_bucket(x);
        }
        let ka = sa.ok().and_then(|_| a.find_leaf(id));
        let kb = sb.ok().and_then(|_| b.find_leaf(id));
        if let Some(k) = ka {
            a.prefetch_line(k);
        }
        if let Some(k) = kb {
            b.prefetch_line(k);
        }
        let la = ka.and_then(|k| a.block_in_leaf(k, id));
        let lb = kb.and_then(|k| b.block_in_leaf(k, id));
        if let Some(l) = la {
            a.prefetch_data(l.2);
        }
        if let Some(l) = lb {
            b.prefetch_data(l.2);
        }
        let pa = match sa {
            Err(done) => done,
            Ok(_) => la.and_then(|l| a.position_in_block(l, id)),
        };
        if let Some(p) = pa {
            return Either::First(p);
        }
        let pb = match sb {
            Err(done) => done,
            Ok(_) => lb.and_then(|l| b.position_in_block(l, id)),
        };
        pb.map_or(Either::Neither, Either::Second)
    }

    /// First id and data offset of block `b`.
    #[inline]
    fn block(&self, b: usize) -> Option<(u32, usize)> {
        let Line(leaf) = self.index.get(b / LEAF)?;
        Some((*leaf.get(b % LEAF)?, *leaf.get(LEAF + b % LEAF)? as usize))
    }

    /// Gaps in block `b`.
    #[inline]
    fn deltas(&self, b: usize) -> usize {
        if b + 1 >= self.blocks as usize {
            self.last_deltas as usize
        } else {
            DELTAS
        }
    }

    fn heap_bytes(&self) -> usize {
        self.index.bytes() + self.data.bytes()
    }

    fn data_len(&self) -> usize {
        self.data.len().saturating_sub(PAD)
    }

    fn serialized_size(&self) -> usize {
        PACKED_HEADER + self.blocks as usize * 4 + self.data_len()
    }

    fn write_to(&self, out: &mut Vec<u8>) {
        out.push(TAG_PACKED);
        out.extend_from_slice(&self.len.to_le_bytes());
        out.extend_from_slice(&self.blocks.to_le_bytes());
        out.extend_from_slice(&(self.data_len() as u32).to_le_bytes());
        for b in 0..self.blocks as usize {
            let first = self.block(b).map_or(0, |(f, _)| f);
            out.extend_from_slice(&first.to_le_bytes());
        }
        out.extend_from_slice(self.data.get(..self.data_len()).unwrap_or_default());
    }

    fn read(r: &mut Reader<'_>) -> Result<Packed, SetDecodeError> {
        let len = r.u64()?;
        let blocks = r.u32()?;
        let data_len = r.u32()?;
        if blocks == 0 || len == 0 {
            return Err(SetDecodeError::EmptyPacked { len, blocks });
        }
        // Bound everything by the input before allocating.
        r.need(u64::from(blocks) * 4 + u64::from(data_len))?;
        let min = (u64::from(blocks) - 1) * BLOCK as u64 + 1;
        let max = u64::from(blocks) * BLOCK as u64;
        if len < min || len > max {
            return Err(SetDecodeError::LengthMismatch {
                len,
                blocks,
                min,
                max,
            });
        }
        let nb = blocks as usize;
        let last_deltas = (len - min) as usize;
        let firsts: Vec<u32> = r
            .take(nb * 4)?
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let raw = r.take(data_len as usize)?;
        // Walk the blocks: width byte, then the gaps.
        let mut offsets = Vec::with_capacity(nb);
        let mut off = 0usize;
        for b in 0..nb {
            let Some(&width) = raw.get(off) else {
                return Err(SetDecodeError::DataLengthMismatch {
                    declared: data_len,
                    computed: off as u64 + 1,
                });
            };
            if width > 32 {
                return Err(SetDecodeError::WidthTooLarge { block: b, width });
            }
            offsets.push(off as u32);
            let deltas = if b + 1 == nb { last_deltas } else { DELTAS };
            off += 1 + block_bytes(deltas, width);
        }
        if off != raw.len() {
            return Err(SetDecodeError::DataLengthMismatch {
                declared: data_len,
                computed: off as u64,
            });
        }
        let mut data = Vec::with_capacity(raw.len() + PAD);
        data.extend_from_slice(raw);
        data.resize(raw.len() + PAD, 0);
        let mut previous: Option<u32> = None;
        for (b, (&first, &off)) in firsts.iter().zip(&offsets).enumerate() {
            if let Some(prev) = previous {
                if first <= prev {
                    return Err(SetDecodeError::NotIncreasing {
                        block: b,
                        first,
                        previous: prev,
                    });
                }
            }
            let deltas = if b + 1 == nb { last_deltas } else { DELTAS };
            previous = Some(
                block_last(&data, off as usize, deltas, first)
                    .ok_or(SetDecodeError::Overflow { block: b })?,
            );
        }
        Ok(Packed::assemble(
            len,
            previous.unwrap_or(0),
            &firsts,
            &offsets,
            last_deltas as u32,
            data,
        ))
    }
}

fn read_roaring(r: &mut Reader<'_>) -> Result<RoaringBitmap, SetDecodeError> {
    let declared = r.u32()?;
    let bytes = r.take(declared as usize)?;
    // Roaring allocates descriptors for up to 65 536 containers before reading
    // them; refuse a header that promises more than the bytes present.
    if let Some(min) = roaring_min_size(bytes) {
        if min > bytes.len() as u64 {
            return Err(SetDecodeError::Truncated {
                needed: min,
                available: bytes.len(),
            });
        }
    }
    let rb = RoaringBitmap::deserialize_from(bytes)
        .map_err(|e| SetDecodeError::Roaring(e.to_string()))?;
    let actual = rb.serialized_size();
    if actual != declared as usize {
        return Err(SetDecodeError::RoaringLength { declared, actual });
    }
    Ok(rb)
}

/// Minimum byte size implied by a portable roaring header, if recognisable.
fn roaring_min_size(bytes: &[u8]) -> Option<u64> {
    let cookie = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?);
    if cookie == 12346 {
        let n = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
        // cookie, count, 4-byte description and 4-byte offset per container,
        // and at least 2 bytes of values each.
        Some(8 + u64::from(n) * 10)
    } else if cookie & 0xffff == 12347 {
        let n = u64::from(cookie >> 16) + 1;
        Some(4 + n.div_ceil(8) + n * 6)
    } else {
        None
    }
}

/// Heap estimate of a roaring bitmap: its values plus per-container overhead.
fn roaring_heap_estimate(r: &RoaringBitmap) -> usize {
    let s = r.statistics();
    s.n_values_array_containers as usize * 2
        + s.n_bitset_containers as usize * 8192
        + s.n_bytes_run_containers as usize
        + s.n_containers as usize * ROARING_CONTAINER_OVERHEAD
}

/// Cursor over input bytes; every read checks the remaining length.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn available(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    fn need(&self, n: u64) -> Result<(), SetDecodeError> {
        if n > self.available() as u64 {
            return Err(SetDecodeError::Truncated {
                needed: n,
                available: self.available(),
            });
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], SetDecodeError> {
        self.need(n as u64)?;
        let s = self
            .bytes
            .get(self.pos..self.pos + n)
            .ok_or(SetDecodeError::Truncated {
                needed: n as u64,
                available: self.available(),
            })?;
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], SetDecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, SetDecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, SetDecodeError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, SetDecodeError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

/// Streams strictly increasing ids into blocks, then picks the smaller
/// representation.
#[derive(Default)]
struct Builder {
    len: u64,
    firsts: Vec<u32>,
    offsets: Vec<u32>,
    data: Vec<u8>,
    block: Vec<u32>,
    /// Lower bound of roaring's serialized size, to skip building it for
    /// sparse sets: per 2^16 chunk, 4 bytes of description plus the smallest
    /// of array (2 per id), bitmap (8 KiB) and runs (2 + 4 per run).
    roaring_lb: u64,
    chunk: Option<u16>,
    chunk_card: u64,
    chunk_runs: u64,
    prev: Option<u32>,
}

impl Builder {
    fn push(&mut self, id: u32) {
        let chunk = (id >> 16) as u16;
        if self.chunk != Some(chunk) {
            self.close_chunk();
            self.chunk = Some(chunk);
        }
        self.chunk_card += 1;
        if self.prev.and_then(|p| p.checked_add(1)) != Some(id) {
            self.chunk_runs += 1;
        }
        self.prev = Some(id);
        self.len += 1;
        if self.block.capacity() == 0 {
            self.block.reserve_exact(BLOCK);
        }
        self.block.push(id);
        if self.block.len() == BLOCK {
            self.flush_block();
        }
    }

    fn close_chunk(&mut self) {
        if self.chunk.is_some() {
            let array = if self.chunk_card <= 4096 {
                2 * self.chunk_card
            } else {
                u64::MAX
            };
            self.roaring_lb += 4 + array.min(8192).min(2 + 4 * self.chunk_runs);
        }
        self.chunk_card = 0;
        self.chunk_runs = 0;
    }

    fn flush_block(&mut self) {
        let Some(&first) = self.block.first() else {
            return;
        };
        let mut or = 0u32;
        for w in self.block.windows(2) {
            or |= w[1].wrapping_sub(w[0]).wrapping_sub(1);
        }
        let width = (32 - or.leading_zeros()) as u8;
        self.firsts.push(first);
        // Cannot saturate: a block of width w has a gap >= 2^(w-1), the gaps
        // of a u32 set sum to < 2^32, and at most 2^26 blocks then need at
        // most 2^26 * (1 + ceil(63 * 7 / 8)) bytes ≈ 3.8e9 < u32::MAX.
        self.offsets
            .push(u32::try_from(self.data.len()).unwrap_or(u32::MAX));
        self.data.push(width);
        let mut acc = 0u64;
        let mut bits = 0u32;
        for w in self.block.windows(2) {
            let d = w[1].wrapping_sub(w[0]).wrapping_sub(1);
            acc |= u64::from(d) << bits;
            bits += u32::from(width);
            while bits >= 8 {
                self.data.push(acc as u8);
                acc >>= 8;
                bits -= 8;
            }
        }
        if bits > 0 {
            self.data.push(acc as u8);
        }
        self.block.clear();
    }

    /// The packed encoding of everything pushed (`None` if nothing was),
    /// and the roaring size lower bound.
    fn finish_packed(mut self) -> (Option<Packed>, u64) {
        if self.len == 0 {
            return (None, 0);
        }
        let last_deltas = if self.block.is_empty() {
            DELTAS
        } else {
            self.block.len() - 1
        };
        self.flush_block();
        self.close_chunk();
        let data_len = self.data.len();
        self.data.resize(data_len + PAD, 0);
        let packed = Packed::assemble(
            self.len,
            self.prev.unwrap_or(0),
            &self.firsts,
            &self.offsets,
            last_deltas as u32,
            self.data,
        );
        (Some(packed), self.roaring_lb)
    }

    /// The smaller of the packed and the roaring representation.
    fn finish(self) -> PackedSet {
        let (Some(packed), roaring_lb) = self.finish_packed() else {
            return PackedSet { repr: Repr::Empty };
        };
        let packed_size = packed.serialized_size() as u64;
        if roaring_lb + ROARING_HEADER as u64 >= packed_size {
            return PackedSet {
                repr: Repr::Packed(packed),
            };
        }
        let Ok(mut rb) = RoaringBitmap::from_sorted_iter(PackedIter::new(&packed)) else {
            return PackedSet {
                repr: Repr::Packed(packed),
            };
        };
        rb.optimize();
        let repr = if ((ROARING_HEADER + rb.serialized_size()) as u64) < packed_size {
            Repr::Roaring(Arc::new(rb))
        } else {
            Repr::Packed(packed)
        };
        PackedSet { repr }
    }
}

/// Ascending iterator over a packed set.
struct PackedIter<'a> {
    set: &'a Packed,
    /// Next block to enter.
    block: usize,
    /// Gaps left in the current block, and where the next one is.
    left: usize,
    bit: usize,
    width: usize,
    mask: u64,
    cur: u32,
    remaining: u64,
}

impl<'a> PackedIter<'a> {
    fn new(set: &'a Packed) -> Self {
        PackedIter {
            set,
            block: 0,
            left: 0,
            bit: 0,
            width: 0,
            mask: 0,
            cur: 0,
            remaining: set.len,
        }
    }
}

impl Iterator for PackedIter<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        if self.left > 0 {
            let d = (load_u64(&self.set.data, self.bit >> 3) >> (self.bit & 7)) & self.mask;
            self.bit += self.width;
            self.left -= 1;
            self.cur = self.cur.wrapping_add(d as u32).wrapping_add(1);
            self.remaining = self.remaining.saturating_sub(1);
            return Some(self.cur);
        }
        if self.block >= self.set.blocks as usize {
            return None;
        }
        let (first, off) = self.set.block(self.block)?;
        self.left = self.set.deltas(self.block);
        self.block += 1;
        self.width = usize::from(self.set.data.get(off).copied().unwrap_or(0)).min(32);
        self.mask = (1u64 << self.width) - 1;
        self.bit = (off + 1) * 8;
        self.cur = first;
        self.remaining = self.remaining.saturating_sub(1);
        Some(first)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::try_from(self.remaining).unwrap_or(usize::MAX);
        (n, Some(n))
    }
}

enum Iter<'a> {
    Empty,
    Packed(PackedIter<'a>),
    Roaring(roaring::bitmap::Iter<'a>),
}

impl Iterator for Iter<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        match self {
            Iter::Packed(i) => i.next(),
            Iter::Roaring(i) => i.next(),
            Iter::Empty => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            Iter::Packed(i) => i.size_hint(),
            Iter::Roaring(i) => i.size_hint(),
            Iter::Empty => (0, Some(0)),
        }
    }
}

#[cfg(test)]
mod position_tests {
    use super::*;

    #[test]
    fn position_is_the_rank_of_members_only() {
        let mut x = 0x2545_F491_4F6C_DD1Du64;
        for n in [1usize, 2, 63, 64, 65, 1000, 20_000] {
            let mut ids: Vec<u32> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 40_000_000) as u32
                })
                .collect();
            ids.sort_unstable();
            ids.dedup();
            for set in [
                PackedSet::from_sorted(&ids).unwrap(),
                PackedSet::from_unsorted((0..5000).chain(ids.iter().copied()).collect()),
            ] {
                let all: Vec<u32> = set.iter().collect();
                for (i, id) in all.iter().enumerate() {
                    assert_eq!(set.position(*id), Some(i as u64), "n {n} id {id}");
                    if !set.contains(id.wrapping_add(1)) {
                        assert_eq!(set.position(id.wrapping_add(1)), None);
                    }
                }
            }
        }
        assert_eq!(PackedSet::from_unsorted(vec![]).position(3), None);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// splitmix64: deterministic, dependency-free.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn u32(&mut self) -> u32 {
            self.next() as u32
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    fn uniform(rng: &mut Rng, n: usize, lo: u32, span: u64) -> BTreeSet<u32> {
        let mut s = BTreeSet::new();
        let want = n.min(span as usize);
        while s.len() < want {
            s.insert(lo.wrapping_add(rng.below(span) as u32));
        }
        s
    }

    /// Allocated prefixes of 10^7 ids with ~1/3 density, like mobile blocks.
    fn clustered(rng: &mut Rng, n: usize) -> BTreeSet<u32> {
        let mut s = BTreeSet::new();
        while s.len() < n {
            let block = 3_000_000_000 + (rng.below(60) as u32) * 10_000_000;
            let start = block + rng.below(9_000_000) as u32;
            let len = 1 + rng.below(2000) as u32;
            for id in start..start + len {
                if rng.below(3) == 0 {
                    s.insert(id);
                }
            }
        }
        s
    }

    fn runs(rng: &mut Rng, n: usize) -> BTreeSet<u32> {
        let mut s = BTreeSet::new();
        while s.len() < n {
            let start = rng.u32();
            let len = 1 + rng.below(300) as u32;
            for id in start..start.saturating_add(len) {
                s.insert(id);
            }
        }
        s
    }

    /// A wide spread of sets: sizes, densities and edge values.
    fn corpus() -> Vec<BTreeSet<u32>> {
        let mut rng = Rng(7);
        let mut sets: Vec<BTreeSet<u32>> = vec![
            BTreeSet::new(),
            [0].into(),
            [u32::MAX].into(),
            [0, u32::MAX].into(),
            [0, 1, u32::MAX - 1, u32::MAX].into(),
            (0..64).collect(),
            (u32::MAX - 200..=u32::MAX).collect(),
            (0..40_000).collect(),
            (0..1000).map(|i| i * 4_000_000).collect(),
        ];
        for n in [1, 2, 5, 63, 64, 65, 127, 128, 129, 1000, 10_000] {
            sets.push(uniform(&mut rng, n, 3_000_000_000, 600_000_000));
            sets.push(uniform(&mut rng, n, 0, 1 << 32));
        }
        for span_per_id in [1u64, 2, 3, 4, 8, 16, 120, 1000, 30_000] {
            let n = 10_000;
            sets.push(uniform(&mut rng, n, 1_000_000, n as u64 * span_per_id));
        }
        sets.push(clustered(&mut rng, 20_000));
        sets.push(runs(&mut rng, 10_000));
        // Mixed widths: runs, then huge gaps, then dense.
        let mut mixed: BTreeSet<u32> = (10..500).collect();
        mixed.extend(uniform(&mut rng, 300, 1 << 31, 1 << 30));
        mixed.extend((4_000_000_000..4_000_003_000).step_by(3));
        sets.push(mixed);
        sets
    }

    fn build(oracle: &BTreeSet<u32>) -> PackedSet {
        let ids: Vec<u32> = oracle.iter().copied().collect();
        PackedSet::from_sorted(&ids).expect("oracle is sorted")
    }

    fn check(set: &PackedSet, oracle: &BTreeSet<u32>, rng: &mut Rng) {
        assert_eq!(set.len(), oracle.len());
        assert_eq!(set.is_empty(), oracle.is_empty());
        assert!(set.iter().eq(oracle.iter().copied()), "iter differs");
        let (lo, hi) = set.iter().size_hint();
        assert_eq!((lo, hi), (oracle.len(), Some(oracle.len())));
        // `position` (and so `position_in_either`) against the oracle's
        // ranks, with a second set probed alongside.
        let other = build(&uniform(rng, 500, 3_000_000_000, 600_000_000));
        let sorted: Vec<u32> = oracle.iter().copied().collect();
        let rank = |id: u32| sorted.binary_search(&id).ok().map(|i| i as u64);
        let either = |id: u32| match (rank(id), other.position(id)) {
            (Some(r), _) => Either::First(r),
            (None, Some(p)) => Either::Second(p),
            (None, None) => Either::Neither,
        };
        let probe = |id: u32, what: &str| {
            assert_eq!(set.contains(id), oracle.contains(&id), "{what} {id}");
            assert_eq!(set.position(id), rank(id), "{what} {id}: position");
            assert_eq!(
                PackedSet::position_in_either(set, &other, id),
                either(id),
                "{what} {id}: either"
            );
            assert_eq!(
                PackedSet::position_in_either(&other, set, id),
                match (other.position(id), rank(id)) {
                    (Some(p), _) => Either::First(p),
                    (None, Some(r)) => Either::Second(r),
                    (None, None) => Either::Neither,
                },
                "{what} {id}: either, swapped"
            );
        };
        for (i, &id) in oracle.iter().enumerate() {
            assert!(set.contains(id), "member {id} missing");
            assert_eq!(set.position(id), Some(i as u64), "member {id}: position");
            if i % 7 == 0 {
                probe(id, "member");
            }
            for n in [id.wrapping_sub(1), id.wrapping_add(1)] {
                assert_eq!(set.contains(n), oracle.contains(&n), "neighbour {n}");
                if i % 7 == 0 {
                    probe(n, "neighbour");
                }
            }
        }
        for _ in 0..2000 {
            probe(rng.u32(), "random");
            probe(3_000_000_000 + rng.below(600_000_000) as u32, "mobile");
        }
        for id in [0, 1, u32::MAX - 1, u32::MAX] {
            probe(id, "edge");
        }
    }

    #[test]
    fn matches_oracle_on_corpus() {
        let mut rng = Rng(1);
        for oracle in corpus() {
            let set = build(&oracle);
            check(&set, &oracle, &mut rng);
            let shuffled: Vec<u32> = oracle.iter().rev().chain(oracle.iter()).copied().collect();
            check(&PackedSet::from_unsorted(shuffled), &oracle, &mut rng);
        }
    }

    #[test]
    fn empty_buckets_end_lookups_and_keep_answers() {
        let mut rng = Rng(12);
        // Two prefixes in use, a wide unused stretch between: most buckets
        // of the stretch are flagged, and every answer is unchanged.
        let mut oracle = uniform(&mut rng, 20_000, 3_010_000_000, 10_000_000);
        oracle.extend(uniform(&mut rng, 20_000, 3_300_000_000, 10_000_000));
        oracle.insert(3_200_000_123);
        let set = build(&oracle);
        let Repr::Packed(p) = &set.repr else {
            panic!("packed expected")
        };
        let buckets = &p.index[p.buckets_at as usize..];
        let empty = buckets
            .iter()
            .flat_map(|l| l.0)
            .filter(|w| *w != u32::MAX && w & EMPTY_BUCKET != 0)
            .count();
        assert!(empty > 0, "no bucket flagged");
        check(&set, &oracle, &mut rng);
        for id in (3_020_000_000..3_300_000_000).step_by(99_991) {
            assert_eq!(set.position(id), rank_in(&oracle, id), "{id}");
        }
    }

    fn rank_in(oracle: &BTreeSet<u32>, id: u32) -> Option<u64> {
        oracle
            .contains(&id)
            .then(|| oracle.range(..id).count() as u64)
    }

    #[test]
    fn vector_decode_matches_scalar() {
        let mut rng = Rng(11);
        let mut vector_used = false;
        for width in 1..=32u32 {
            for len in [9usize, 16, 17, 40, 64, 64, 64, 300] {
                // Gaps below 2^width, one of them the widest.
                let mut b = Builder::default();
                let mut id = rng.below(1000);
                let max_gap = (1u64 << width) - 1;
                for i in 0..len {
                    b.push(id as u32);
                    id += if i == len / 2 {
                        max_gap
                    } else {
                        rng.below(max_gap + 1)
                    } + 1;
                    if id > u64::from(u32::MAX) {
                        break;
                    }
                }
                let (Some(p), _) = b.finish_packed() else {
                    continue;
                };
                for blk in 0..p.blocks as usize {
                    let (first, off) = p.block(blk).expect("block");
                    let deltas = p.deltas(blk);
                    let span = block_last(&p.data, off, deltas, first).expect("last") - first;
                    vector_used |=
                        simd::groups(&p.data, off + 1, deltas, width as usize, 1).is_some();
                    let mut targets: Vec<u32> = (0..=span.min(200)).collect();
                    targets.extend((0..300).map(|_| rng.below(u64::from(span) + 2) as u32));
                    targets.extend([span, span.saturating_add(1), u32::MAX]);
                    for t in targets {
                        assert_eq!(
                            block_position_with(&p.data, off, deltas, t, true),
                            block_position_with(&p.data, off, deltas, t, false),
                            "width {width}, len {len}, block {blk}, target {t}"
                        );
                    }
                }
            }
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            assert!(vector_used, "the AVX2 path never ran");
        }
        let _ = vector_used;
    }

    #[test]
    fn both_representations_are_used_and_correct() {
        let mut rng = Rng(2);
        let dense = uniform(&mut rng, 50_000, 5_000_000, 100_000);
        let set = build(&dense);
        assert_eq!(set.representation(), Representation::Roaring);
        check(&set, &dense, &mut rng);
        let run: BTreeSet<u32> = (1_000..300_000).collect();
        let set = build(&run);
        assert_eq!(set.representation(), Representation::Roaring);
        assert!(set.heap_bytes() < 1000);
        check(&set, &run, &mut rng);

        let sparse = uniform(&mut rng, 50_000, 3_000_000_000, 150_000_000);
        let set = build(&sparse);
        assert_eq!(set.representation(), Representation::Packed);
        check(&set, &sparse, &mut rng);
        // ~log2(3000) + 3 bits per id.
        let per_id = set.heap_bytes() as f64 / sparse.len() as f64;
        assert!(per_id < 2.0, "{per_id} bytes per id");

        assert_eq!(
            build(&BTreeSet::new()).representation(),
            Representation::Empty
        );
    }

    #[test]
    fn clustered_sets_with_outliers_use_the_wide_bucket_search() {
        let mut rng = Rng(9);
        // 100k ids at density 1/12 between two far outliers: even 32 buckets
        // per leaf leave ~200 leaves in two or three buckets.
        let mut oracle = uniform(&mut rng, 100_000, 3_100_000_000, 1_200_000);
        oracle.extend([5, u32::MAX - 5]);
        let set = build(&oracle);
        let Repr::Packed(p) = &set.repr else {
            panic!("expected packed, got {:?}", set.representation());
        };
        let buckets: Vec<u32> = p.index[p.buckets_at as usize..]
            .iter()
            .flat_map(|l| l.0)
            .take_while(|&b| b != u32::MAX)
            .collect();
        assert!(buckets.windows(2).any(|w| w[1] - w[0] >= WINDOW as u32));
        check(&set, &oracle, &mut rng);
        for id in 3_099_999_000..3_101_201_000 {
            assert_eq!(set.contains(id), oracle.contains(&id), "{id}");
        }
    }

    #[test]
    fn equality_ignores_representation() {
        let ids: Vec<u32> = uniform(&mut Rng(10), 50_000, 0, 100_000)
            .into_iter()
            .collect();
        let roaring = PackedSet::from_sorted(&ids).unwrap();
        assert_eq!(roaring.representation(), Representation::Roaring);
        let mut b = Builder::default();
        ids.iter().for_each(|&i| b.push(i));
        let packed = PackedSet {
            repr: Repr::Packed(b.finish_packed().0.unwrap()),
        };
        assert_eq!(packed, roaring);
        assert_ne!(packed, roaring.merge(&[], &ids[7..8]));
        assert_ne!(packed, PackedSet::default());
    }

    #[test]
    fn from_sorted_rejects_unsorted_and_duplicates() {
        assert_eq!(
            PackedSet::from_sorted(&[1, 5, 3]).unwrap_err(),
            NotSorted {
                index: 2,
                value: 3,
                previous: 5
            }
        );
        let e = PackedSet::from_sorted(&[1, 2, 2]).unwrap_err();
        assert_eq!(e.index, 2);
        assert!(e.to_string().contains("strictly increasing"));
        assert!(PackedSet::from_sorted(&[]).unwrap().is_empty());
    }

    fn round_trip(set: &PackedSet) -> Vec<u8> {
        let mut bytes = vec![0xAA];
        set.write_to(&mut bytes);
        assert_eq!(bytes.len(), 1 + set.serialized_size());
        bytes.extend_from_slice(b"trailer");
        let (back, used) = PackedSet::read_from(&bytes[1..]).expect("round trip");
        assert_eq!(used, set.serialized_size());
        assert_eq!(back.representation(), set.representation());
        assert!(back.iter().eq(set.iter()));
        bytes[1..1 + used].to_vec()
    }

    #[test]
    fn write_read_round_trip() {
        let mut rng = Rng(3);
        for oracle in corpus() {
            let set = build(&oracle);
            let bytes = round_trip(&set);
            let (back, _) = PackedSet::read_from(&bytes).unwrap();
            check(&back, &oracle, &mut rng);
        }
    }

    fn small_sets() -> Vec<PackedSet> {
        let mut rng = Rng(4);
        vec![
            PackedSet::default(),
            build(&[u32::MAX].into()),
            build(&[0, 7, u32::MAX].into()),
            build(&uniform(&mut rng, 150, 3_000_000_000, 600_000_000)),
            build(&(100..300).chain(70_000..70_100).collect()),
            build(&uniform(&mut rng, 1500, 0, 3000)),
        ]
    }

    #[test]
    fn truncation_at_every_offset_is_an_error() {
        for set in small_sets() {
            let bytes = round_trip(&set);
            for cut in 0..bytes.len() {
                assert!(
                    PackedSet::read_from(&bytes[..cut]).is_err(),
                    "{:?} cut at {cut} of {}",
                    set.representation(),
                    bytes.len()
                );
            }
        }
    }

    /// Everything a caller can do with a set that was read, checked for
    /// internal consistency (a valid set must be self-consistent).
    fn exercise(set: &PackedSet, rng: &mut Rng) {
        let ids: Vec<u32> = set.iter().take(set.len() + 1).collect();
        assert_eq!(ids.len(), set.len());
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        for &id in &ids {
            assert!(set.contains(id));
        }
        let members: BTreeSet<u32> = ids.iter().copied().collect();
        for _ in 0..100 {
            let id = rng.u32();
            assert_eq!(set.contains(id), members.contains(&id));
        }
        for &id in ids.iter().take(300) {
            let n = id.wrapping_add(1);
            assert_eq!(set.contains(n), members.contains(&n));
        }
        let _ = set.heap_bytes();
        let merged = set.merge(&[1, 3], &[2, 3]);
        assert!(merged.contains(1) && !merged.contains(2) && merged.contains(3));
        let mut out = Vec::new();
        set.write_to(&mut out);
        let (again, _) = PackedSet::read_from(&out).expect("a read set re-reads");
        assert!(again.iter().eq(ids.iter().copied()));
    }

    #[test]
    fn random_byte_flips_error_or_stay_safe() {
        let mut rng = Rng(5);
        let mut accepted = 0;
        let mut rejected = 0;
        for set in small_sets() {
            let bytes = round_trip(&set);
            for _ in 0..700 {
                let mut b = bytes.clone();
                for _ in 0..1 + rng.below(3) {
                    let i = rng.below(b.len() as u64) as usize;
                    if rng.below(2) == 0 {
                        b[i] ^= 1 << rng.below(8);
                    } else {
                        b[i] = rng.u32() as u8;
                    }
                }
                match PackedSet::read_from(&b) {
                    Ok((s, used)) => {
                        assert!(used <= b.len());
                        exercise(&s, &mut rng);
                        accepted += 1;
                    }
                    Err(e) => {
                        assert!(!e.to_string().is_empty());
                        rejected += 1;
                    }
                }
            }
        }
        // Both outcomes must actually occur for the test to mean anything.
        assert!(accepted > 100 && rejected > 100, "{accepted} / {rejected}");
    }

    #[test]
    fn hostile_headers_are_rejected_before_allocating() {
        // Packed: 2^32-1 blocks, 4 GiB of data, in 17 bytes.
        let mut b = vec![TAG_PACKED];
        b.extend_from_slice(&u64::MAX.to_le_bytes());
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            PackedSet::read_from(&b),
            Err(SetDecodeError::Truncated { .. })
        ));
        // Width 33.
        let mut b = vec![TAG_PACKED];
        b.extend_from_slice(&2u64.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&6u32.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.push(33);
        b.extend_from_slice(&[0xff; 5]);
        assert_eq!(
            PackedSet::read_from(&b).unwrap_err(),
            SetDecodeError::WidthTooLarge {
                block: 0,
                width: 33
            }
        );
        // Width 32 gap past u32::MAX.
        let mut b = vec![TAG_PACKED];
        b.extend_from_slice(&2u64.to_le_bytes());
        b.extend_from_slice(&1u32.to_le_bytes());
        b.extend_from_slice(&5u32.to_le_bytes());
        b.extend_from_slice(&5u32.to_le_bytes());
        b.push(32);
        b.extend_from_slice(&[0xff; 4]);
        assert_eq!(
            PackedSet::read_from(&b).unwrap_err(),
            SetDecodeError::Overflow { block: 0 }
        );
        // Roaring: 65 536 containers promised in a few bytes.
        let mut b = vec![TAG_ROARING];
        b.extend_from_slice(&8u32.to_le_bytes());
        b.extend_from_slice(&12346u32.to_le_bytes());
        b.extend_from_slice(&65536u32.to_le_bytes());
        assert!(PackedSet::read_from(&b).is_err());
        assert_eq!(
            PackedSet::read_from(&[9]).unwrap_err(),
            SetDecodeError::UnknownTag(9)
        );
        // Blocks out of order.
        let set = build(&(0..200).map(|i| i * 1000).collect());
        let mut b = Vec::new();
        set.write_to(&mut b);
        b[PACKED_HEADER + 4..PACKED_HEADER + 8].copy_from_slice(&5u32.to_le_bytes());
        assert!(matches!(
            PackedSet::read_from(&b),
            Err(SetDecodeError::NotIncreasing { block: 1, .. })
        ));
    }

    #[test]
    fn merge_matches_oracle() {
        let mut rng = Rng(6);
        for oracle in corpus().into_iter().take(40) {
            let set = build(&oracle);
            for _ in 0..2 {
                let n = 1 + rng.below(3000) as usize;
                let add = uniform(&mut rng, n, 3_000_000_000, 1 << 20);
                let mut remove: BTreeSet<u32> = oracle
                    .iter()
                    .copied()
                    .filter(|_| rng.below(4) == 0)
                    .collect();
                remove.extend(add.iter().copied().filter(|_| rng.below(4) == 0));
                remove.insert(rng.u32());
                let add_v: Vec<u32> = add.iter().copied().collect();
                let remove_v: Vec<u32> = remove.iter().copied().collect();
                let merged = set.merge(&add_v, &remove_v);
                let expected: BTreeSet<u32> = oracle.difference(&remove).copied().collect();
                let expected: BTreeSet<u32> = expected.union(&add).copied().collect();
                check(&merged, &expected, &mut rng);
                // Unsorted, duplicated inputs give the same result.
                let add_u: Vec<u32> = add_v.iter().rev().chain(&add_v).copied().collect();
                let rem_u: Vec<u32> = remove_v.iter().rev().copied().collect();
                assert!(set.merge(&add_u, &rem_u).iter().eq(merged.iter()));
            }
            let all: Vec<u32> = oracle.iter().copied().collect();
            assert!(set.merge(&[], &all).is_empty());
            // Removed and re-added: present (compaction re-grants this way).
            assert_eq!(set.merge(&all, &all), set);
            assert!(PackedSet::default()
                .merge(&all, &[])
                .iter()
                .eq(all.iter().copied()));
        }
    }

    /// Prints the size table quoted in the module docs.
    #[test]
    #[ignore]
    fn size_table() {
        let mut rng = Rng(8);
        let n = 1_000_000usize;
        let mut rows: Vec<(String, BTreeSet<u32>)> = [2u64, 3, 4, 6, 8, 16, 120, 1000]
            .iter()
            .map(|&d| (format!("1/{d}"), uniform(&mut rng, n, 0, n as u64 * d)))
            .collect();
        // 20 000 ids over the 600-million-id mobile range.
        rows.push((
            "1/30000".into(),
            uniform(&mut rng, 20_000, 3_000_000_000, 600_000_000),
        ));
        rows.push(("run".into(), (0..n as u32).collect()));
        rows.push(("clustered".into(), clustered(&mut rng, n)));
        for (name, oracle) in rows {
            let ids: Vec<u32> = oracle.iter().copied().collect();
            let mut b = Builder::default();
            ids.iter().for_each(|&i| b.push(i));
            // Force both representations to compare them.
            let set = PackedSet::from_sorted(&ids).unwrap();
            let mut rb = RoaringBitmap::from_sorted_iter(ids.iter().copied()).unwrap();
            rb.optimize();
            let packed = b.finish_packed().0.unwrap();
            let n = ids.len() as f64;
            eprintln!(
                "{name:>10}: packed {:.3} B/id (heap {:.3}), roaring {:.4} B/id (heap est {:.3}), kept {:?}",
                packed.serialized_size() as f64 / n,
                packed.heap_bytes() as f64 / n,
                rb.serialized_size() as f64 / n,
                roaring_heap_estimate(&rb) as f64 / n,
                set.representation()
            );
        }
    }
}
