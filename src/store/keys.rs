//! `PackedKeys`: an immutable sorted set of distinct u64 keys where a key's
//! id is its rank. Backs the address dictionaries (e-mail hashes, foreign
//! numbers). Keys sit in blocks of 64: the block's first key in a contiguous
//! array for the binary search, then the gaps `k[i] - k[i-1] - 1` bit-packed
//! at the block's widest gap. For uniformly spread 64-bit hashes that is
//! about 64 - log2(n) + 2 bits a key instead of 64 (≈5.4 instead of 8 bytes
//! at ten million e-mails).

use super::arena::{Frozen, Packer};

/// Keys per block.
const BLOCK: usize = 64;

/// Sorted distinct u64 keys; id = rank. Cloning shares the arrays.
#[derive(Debug, Clone, Default)]
pub struct PackedKeys {
    heads: Frozen<u64>,
    /// Per block: bit offset of its gaps in `data`, and their width.
    meta: Frozen<(u64, u8)>,
    data: Frozen<u64>,
    len: usize,
}

impl PackedKeys {
    /// Pack sorted, distinct keys (the caller guarantees the order).
    pub fn from_sorted(keys: &[u64]) -> PackedKeys {
        let mut heads = Vec::with_capacity(keys.len().div_ceil(BLOCK));
        let mut meta = Vec::with_capacity(keys.len().div_ceil(BLOCK));
        let mut data = Vec::new();
        let mut bits: u64 = 0;
        for block in keys.chunks(BLOCK) {
            heads.push(block[0]);
            let width = block
                .windows(2)
                .map(|w| 64 - (w[1] - w[0] - 1).leading_zeros())
                .max()
                .unwrap_or(0) as u8;
            meta.push((bits, width));
            for w in block.windows(2) {
                write_bits(&mut data, bits, width, w[1] - w[0] - 1);
                bits += u64::from(width);
            }
        }
        PackedKeys {
            heads: Frozen::from_vec(heads),
            meta: Frozen::from_vec(meta),
            data: Frozen::from_vec(data),
            len: keys.len(),
        }
    }

    /// Hand the arrays to `p` (to move them into the store's arena).
    pub fn place_arrays(&mut self, p: &mut Packer) {
        p.place(&mut self.heads);
        p.place(&mut self.meta);
        p.place(&mut self.data);
    }

    /// The rank of `key`, if present.
    #[inline]
    pub fn rank(&self, key: u64) -> Option<usize> {
        let b = self.heads.partition_point(|h| *h <= key).checked_sub(1)?;
        let mut value = self.heads[b];
        if value == key {
            return Some(b * BLOCK);
        }
        let (offset, width) = self.meta[b];
        let n = (self.len - b * BLOCK).min(BLOCK);
        for i in 1..n {
            let gap = read_bits(
                &self.data,
                offset + (i as u64 - 1) * u64::from(width),
                width,
            );
            value = value.wrapping_add(gap).wrapping_add(1);
            if value == key {
                return Some(b * BLOCK + i);
            }
            if value > key {
                return None;
            }
        }
        None
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The keys in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        (0..self.heads.len()).flat_map(move |b| {
            let (offset, width) = self.meta[b];
            let n = (self.len - b * BLOCK).min(BLOCK);
            let mut value = self.heads[b];
            (0..n).map(move |i| {
                if i > 0 {
                    value = value
                        .wrapping_add(read_bits(
                            &self.data,
                            offset + (i as u64 - 1) * u64::from(width),
                            width,
                        ))
                        .wrapping_add(1);
                }
                value
            })
        })
    }

    /// Bytes held (heap or arena).
    pub fn heap_bytes(&self) -> usize {
        self.heads.bytes() + self.meta.bytes() + self.data.bytes()
    }
}

fn write_bits(data: &mut Vec<u64>, at: u64, width: u8, value: u64) {
    if width == 0 {
        return;
    }
    let end_word = (at + u64::from(width)).div_ceil(64) as usize;
    if data.len() < end_word + 1 {
        data.resize(end_word + 1, 0);
    }
    let word = (at / 64) as usize;
    let shift = (at % 64) as u32;
    let v = u128::from(value) << shift;
    data[word] |= v as u64;
    data[word + 1] |= (v >> 64) as u64;
}

#[inline]
fn read_bits(data: &[u64], at: u64, width: u8) -> u64 {
    if width == 0 {
        return 0;
    }
    let word = (at / 64) as usize;
    let shift = (at % 64) as u32;
    let lo = data.get(word).copied().unwrap_or(0);
    let hi = data.get(word + 1).copied().unwrap_or(0);
    let both = (u128::from(hi) << 64) | u128::from(lo);
    let mask = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    ((both >> shift) as u64) & mask
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(keys: &[u64]) {
        let p = PackedKeys::from_sorted(keys);
        assert_eq!(p.len(), keys.len());
        assert_eq!(p.iter().collect::<Vec<_>>(), keys);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(p.rank(*k), Some(i), "key {k}");
            if *k > 0 && (i == 0 || keys[i - 1] != k - 1) {
                assert_eq!(p.rank(k - 1), None);
            }
            if *k < u64::MAX && keys.get(i + 1) != Some(&(k + 1)) {
                assert_eq!(p.rank(k + 1), None);
            }
        }
    }

    #[test]
    fn ranks_match_positions() {
        check(&[]);
        check(&[0]);
        check(&[u64::MAX]);
        check(&[0, u64::MAX]);
        check(&(0..1000).collect::<Vec<u64>>());
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut keys: Vec<u64> = (0..10_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        check(&keys);
        let p = PackedKeys::from_sorted(&keys);
        // 64 - log2(10 000) + ~2.5 bits a key, plus heads and block metadata.
        assert!(
            p.heap_bytes() < keys.len() * 15 / 2,
            "{} bytes for {} keys",
            p.heap_bytes(),
            keys.len()
        );
        assert_eq!(PackedKeys::from_sorted(&[5, 9]).rank(7), None);
        assert_eq!(PackedKeys::from_sorted(&[5, 9]).rank(1), None);
    }
}
