//! The block decode of a lookup, eight gaps at a time with AVX2.
//!
//! Why: once its cache lines are in cache (a campaign's lookups), most of a
//! lookup's time is `block_position` summing up to 63 gaps one by one: about
//! 35 of ~75 ns on the standard data set. The gaps of a block are a fixed
//! width `w`, so each group of eight is exactly `w` bytes and starts on a
//! byte; for `w <= 25` every gap sits in the 32-bit word at byte `k*w/8` of
//! its group, shifted by `k*w % 8`. One byte shuffle puts the eight words in
//! eight lanes, one variable shift and mask extract the gaps, a prefix sum
//! gives the eight ids, and one compare finds where the target falls:
//! ~25 instructions per eight gaps instead of ~100.
//!
//! Taken only when the CPU has AVX2 (checked at run time; the build targets
//! plain x86-64), the width is at most 25 and the block's 16-byte loads
//! stay inside the data; otherwise, and for the last `deltas % 8` gaps, the
//! scalar loop in `block_position` does the work. The tests compare both on
//! every width.

/// Decode the whole groups of eight gaps (`deltas / 8` of them) of the
/// block whose gaps start at byte `start` of `data`, looking for `target`
/// (an offset from the block's first id). `None`: this path does not apply.
/// `Some(Ok(answer))`: the target falls in a whole group (`answer` as
/// `block_position`'s). `Some(Err(acc))`: it lies past them; `acc` is the
/// offset reached, for the scalar loop to go on from.
#[inline]
pub(super) fn groups(
    data: &[u8],
    start: usize,
    deltas: usize,
    width: usize,
    target: u64,
) -> Option<Result<Option<usize>, u64>> {
    #[cfg(target_arch = "x86_64")]
    {
        let groups = deltas / 8;
        if groups == 0 || !(1..=MAX_WIDTH).contains(&width) {
            return None;
        }
        let target = u32::try_from(target).ok()?;
        // The last group's second 16-byte load is the furthest read.
        let end = start.checked_add((groups - 1) * width + (4 * width) / 8 + 16)?;
        if end > data.len() || !std::is_x86_feature_detected!("avx2") {
            return None;
        }
        // SAFETY: the CPU has AVX2 (checked above) and every load of
        // `groups_avx2` lies in `data[start..end]`, inside `data`.
        Some(unsafe {
            x86::groups_avx2(data.as_ptr().add(start), groups, width, target).map_err(u64::from)
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (data, start, deltas, width, target);
        None
    }
}

/// Widest gaps the 32-bit lanes can extract: a gap starts up to 7 bits
/// into its word.
const MAX_WIDTH: usize = 25;

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::MAX_WIDTH;

    /// Per width: the `vpshufb` control putting the 4 bytes holding gap `k`
    /// into lane `k` (lanes 0–3 from the group's first 16 bytes, lanes 4–7
    /// from the 16 bytes at `(4 * w) / 8`), and each lane's right shift.
    struct Tables {
        shuffle: [[u8; 32]; MAX_WIDTH + 1],
        shift: [[u32; 8]; MAX_WIDTH + 1],
    }

    const TABLES: Tables = {
        let mut t = Tables {
            shuffle: [[0; 32]; MAX_WIDTH + 1],
            shift: [[0; 8]; MAX_WIDTH + 1],
        };
        let mut w = 1;
        while w <= MAX_WIDTH {
            let mut k = 0;
            while k < 8 {
                let bit = k * w;
                let base = if k < 4 { 0 } else { (4 * w) / 8 };
                let mut j = 0;
                while j < 4 {
                    // At most 12 + 3: inside the 16 bytes of the half.
                    t.shuffle[w][k * 4 + j] = (bit / 8 - base + j) as u8;
                    j += 1;
                }
                t.shift[w][k] = (bit % 8) as u32;
                k += 1;
            }
            w += 1;
        }
        t
    };

    /// See `super::groups`. `Err` carries the offset after the last group.
    ///
    /// # Safety
    /// The CPU must have AVX2, `1 <= width <= MAX_WIDTH`, and the
    /// `(groups - 1) * width + (4 * width) / 8 + 16` bytes from `gaps` must
    /// be readable.
    #[target_feature(enable = "avx2")]
    pub(super) unsafe fn groups_avx2(
        gaps: *const u8,
        groups: usize,
        width: usize,
        target: u32,
    ) -> Result<Option<usize>, u32> {
        let shuffle = _mm256_loadu_si256(TABLES.shuffle[width].as_ptr().cast());
        let shift = _mm256_loadu_si256(TABLES.shift[width].as_ptr().cast());
        let mask = _mm256_set1_epi32(((1u64 << width) - 1) as u32 as i32);
        let one = _mm256_set1_epi32(1);
        let wanted = _mm256_set1_epi32(target as i32);
        let high = (4 * width) / 8;
        let mut acc = _mm256_setzero_si256();
        for g in 0..groups {
            let p = gaps.add(g * width);
            let lo = _mm_loadu_si128(p.cast());
            let hi = _mm_loadu_si128(p.add(high).cast());
            let words = _mm256_shuffle_epi8(_mm256_set_m128i(hi, lo), shuffle);
            let steps =
                _mm256_add_epi32(_mm256_and_si256(_mm256_srlv_epi32(words, shift), mask), one);
            // Inclusive prefix sum: within each 128-bit half, then the low
            // half's total onto the high half, then the offset so far.
            let mut ids = _mm256_add_epi32(steps, _mm256_slli_si256::<4>(steps));
            ids = _mm256_add_epi32(ids, _mm256_slli_si256::<8>(ids));
            let low_total = _mm256_blend_epi32::<0b0000_1111>(
                _mm256_permutevar8x32_epi32(ids, _mm256_setr_epi32(0, 0, 0, 0, 3, 3, 3, 3)),
                _mm256_setzero_si256(),
            );
            ids = _mm256_add_epi32(_mm256_add_epi32(ids, low_total), acc);
            // Lanes at or past the target (unsigned): the ids only grow, so
            // the first such lane is where the target falls.
            let reached = _mm256_cmpeq_epi32(_mm256_max_epu32(ids, wanted), ids);
            let reached = _mm256_movemask_ps(_mm256_castsi256_ps(reached)) as u32;
            if reached != 0 {
                let k = reached.trailing_zeros();
                let equal = _mm256_cmpeq_epi32(ids, wanted);
                let equal = _mm256_movemask_ps(_mm256_castsi256_ps(equal)) as u32;
                return Ok((equal >> k & 1 == 1).then_some(g * 8 + k as usize + 1));
            }
            acc = _mm256_permutevar8x32_epi32(ids, _mm256_set1_epi32(7));
        }
        Err(_mm256_cvtsi256_si32(acc) as u32)
    }
}
