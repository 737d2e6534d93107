//! Bit interleaving shared by both curves.
//!
//! Bit `l` of coordinate `d` goes to bit `l * D + (D - 1 - d)` of the index:
//! bit levels from the most significant down, and within one level dimension
//! 0 first (most significant). This is Morton order, and it is also how
//! Skilling's transposed Hilbert form is read as one number.
//!
//! Spreading one coordinate's bits `D` apart takes five shift-or-mask rounds
//! (the "magic numbers" method), with masks computed at compile time for each
//! `D`, instead of a loop over every bit.

/// Masks for chunk sizes 1, 2, 4, 8, 16 and 32 bits: chunk `j` of size `s`
/// (bits `j*s .. j*s + s` of a coordinate) sits at bit `j * s * d` of the
/// spread value. Chunks that would start past bit 127 are left out; they
/// only hold bits above a grid's `bits`, which callers have cleared.
const fn masks(d: usize) -> [u128; 6] {
    let mut out = [0u128; 6];
    let mut level = 0;
    while level < 6 {
        let size = 1usize << level;
        let ones = (1u128 << size) - 1;
        let mut mask = 0u128;
        let mut chunk = 0;
        while chunk * size < 32 {
            let position = chunk * size * d;
            if position < 128 {
                mask |= ones << position;
            }
            chunk += 1;
        }
        out[level] = mask;
        level += 1;
    }
    out
}

/// The masks for `D` dimensions, computed once at compile time.
struct Masks<const D: usize>;

impl<const D: usize> Masks<D> {
    const BY_CHUNK_SIZE: [u128; 6] = masks(D);
}

/// Moves bit `i` of `x` to bit `i * D`.
///
/// Bits of `x` whose destination is past bit 127 are lost; callers pass
/// coordinates below `2^(128 / D)`.
#[inline]
fn spread<const D: usize>(x: u32) -> u128 {
    let masks = Masks::<D>::BY_CHUNK_SIZE;
    let mut x = u128::from(x);
    // From one 32-bit chunk to 32 one-bit chunks: the upper half of every
    // chunk of size 2s moves up by s * (D - 1).
    let mut level = 5;
    while level > 0 {
        level -= 1;
        let size = 1usize << level;
        x = (x | (x << (size * (D - 1)))) & masks[level];
    }
    x
}

/// The inverse of [`spread`]: gathers bits `0, D, 2D, ...` of `x` into a
/// `u32`, ignoring every other bit.
#[inline]
fn compact<const D: usize>(x: u128) -> u32 {
    let masks = Masks::<D>::BY_CHUNK_SIZE;
    let mut x = x & masks[0];
    let mut level = 0;
    while level < 5 {
        let size = 1usize << level;
        x = (x | (x >> (size * (D - 1)))) & masks[level + 1];
        level += 1;
    }
    // masks[5] keeps the low 32 bits only, so the cast is exact.
    x as u32
}

/// Interleaves the bits of `point`, dimension 0 most significant within each
/// bit level. Coordinates must be below `2^(128 / D)`.
#[inline]
pub(crate) fn interleave<const D: usize>(point: [u32; D]) -> u128 {
    let mut index = 0;
    for (d, &coordinate) in point.iter().enumerate() {
        index |= spread::<D>(coordinate) << (D - 1 - d);
    }
    index
}

/// The inverse of [`interleave`].
#[inline]
pub(crate) fn deinterleave<const D: usize>(index: u128) -> [u32; D] {
    std::array::from_fn(|d| compact::<D>(index >> (D - 1 - d)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The obvious bit-by-bit interleaving: the reference model.
    fn interleave_naive<const D: usize>(point: [u32; D], bits: u32) -> u128 {
        let mut index = 0u128;
        for level in (0..bits).rev() {
            for coordinate in point {
                index = (index << 1) | u128::from((coordinate >> level) & 1);
            }
        }
        index
    }

    fn check<const D: usize>(raw: [u32; 8]) {
        let bits = (128 / D).min(32) as u32;
        let mask = u32::MAX >> (32 - bits);
        let point: [u32; D] = std::array::from_fn(|d| raw[d] & mask);
        let index = interleave(point);
        assert_eq!(index, interleave_naive(point, bits), "D = {D}, {point:?}");
        assert_eq!(deinterleave::<D>(index), point);
    }

    #[test]
    fn masks_for_two_dimensions() {
        let m = masks(2);
        assert_eq!(
            m[0],
            0x5555_5555_5555_5555_5555_5555_5555_5555 & ((1 << 64) - 1)
        );
        assert_eq!(m[5], 0xFFFF_FFFF);
    }

    #[test]
    fn spreads_single_bits() {
        assert_eq!(spread::<3>(0b101), 0b1_000_001);
        assert_eq!(compact::<3>(0b1_000_001), 0b101);
        assert_eq!(spread::<1>(u32::MAX), u128::from(u32::MAX));
        assert_eq!(spread::<8>(1 << 15), 1 << 120);
    }

    proptest! {
        #[test]
        fn matches_naive_model(raw in any::<[u32; 8]>()) {
            check::<1>(raw);
            check::<2>(raw);
            check::<3>(raw);
            check::<4>(raw);
            check::<5>(raw);
            check::<6>(raw);
            check::<7>(raw);
            check::<8>(raw);
        }
    }
}
