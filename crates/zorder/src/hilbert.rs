//! Hilbert indices, computed with Skilling's transform.
//!
//! Algorithm: John Skilling, "Programming the Hilbert curve", AIP Conference
//! Proceedings 707, 381 (2004), <https://doi.org/10.1063/1.1751381>. Its
//! `AxestoTranspose` turns a point into the "transposed" Hilbert index (the
//! index's bits dealt out across `D` words, most significant first, one bit
//! per word per level) with `O(D * bits)` bit operations and no lookup
//! tables, for any number of dimensions; `TransposetoAxes` inverts it. The
//! transposed form is then read as one number by the same interleaving as
//! [`morton`](crate::morton), so word 0 holds the most significant bit of
//! each level. The curve starts at the origin.
//!
//! Why Hilbert rather than Morton: consecutive Hilbert cells are always grid
//! neighbours, so the curve never makes the long jumps Morton makes between
//! blocks, and a contiguous run of indices (one data file) covers a more
//! compact region with smaller min/max ranges in every column. The price is
//! more bit operations per point (a pass over every bit level and dimension,
//! instead of a few mask-and-shift rounds), and the index is no longer
//! monotone in each coordinate.
//!
//! The index of a point depends on the grid's resolution: the curve in a
//! finer grid is a refinement of the coarser one, but may be reflected, so
//! compare indices only within one [`Grid`].
//!
//! # Known answers: the 4 × 4 grid
//!
//! `encode_in([x, y], Grid::<2>::new(2))`:
//!
//! ```text
//!  y\x   0   1   2   3
//!   0    0   1  14  15
//!   1    3   2  13  12
//!   2    4   7   8  11
//!   3    5   6   9  10
//! ```
//!
//! The curve runs (0, 0) → (1, 0) → (1, 1) → (0, 1) → (0, 2) → … → (2, 0) →
//! (3, 0): every step is one cell, and each quadrant is finished before the
//! next begins. In the 2 × 2 grid it runs (0, 0) → (0, 1) → (1, 1) → (1, 0),
//! and in the 8 × 8 grid it also starts (0, 0) → (0, 1): the orientation
//! alternates with the number of bits.
//!
//! # Example
//!
//! ```
//! use zorder::{Grid, hilbert};
//!
//! let grid = Grid::<2>::new(2).expect("2 * 2 bits fit in 128");
//! let index = hilbert::encode_in([3, 1], grid);
//! assert_eq!(index, 12);
//! assert_eq!(hilbert::decode_in(index, grid), [3, 1]);
//! // Neighbours on the curve are neighbours in the grid.
//! assert_eq!(hilbert::decode_in(index - 1, grid), [3, 2]);
//! assert_eq!(hilbert::decode_in(index + 1, grid), [2, 1]);
//! ```

use crate::Grid;
use crate::interleave::{deinterleave, interleave};

/// The Hilbert index of `point` with all 32 bits of each coordinate (in
/// [`Grid::FULL`]).
///
/// Only for `1 <= D <= 4` (checked at compile time: `D * 32 <= 128`), so
/// every `[u32; D]` is valid. For more dimensions use [`encode_in`] with a
/// [`Grid`] of fewer bits.
#[must_use]
#[inline]
pub fn encode<const D: usize>(point: [u32; D]) -> u128 {
    const {
        assert!(
            D >= 1 && D * 32 <= 128,
            "full 32-bit coordinates fit for 1 to 4 dimensions"
        );
    }
    encode_in(point, Grid::FULL)
}

/// The point whose Hilbert index in [`Grid::FULL`] is `index`: the inverse of
/// [`encode`], defined for every `u128`.
#[must_use]
#[inline]
pub fn decode<const D: usize>(index: u128) -> [u32; D] {
    const {
        assert!(
            D >= 1 && D * 32 <= 128,
            "full 32-bit coordinates fit for 1 to 4 dimensions"
        );
    }
    decode_in(index, Grid::FULL)
}

/// The Hilbert index of `point` in `grid`, in `0..=grid.last_index()`.
///
/// Precondition: every coordinate is below `grid.side()` (see
/// [`Grid::contains`]). Debug builds assert it; release builds ignore the
/// excess high bits, as if each coordinate were taken modulo `grid.side()`.
#[must_use]
#[inline]
pub fn encode_in<const D: usize>(point: [u32; D], grid: Grid<D>) -> u128 {
    debug_assert!(grid.contains(&point), "{point:?} lies outside {grid:?}");
    let mut words = grid.truncate(point);
    axes_to_transpose(&mut words, grid.bits());
    interleave(words)
}

/// The point whose Hilbert index in `grid` is `index`: the inverse of
/// [`encode_in`].
///
/// Precondition: `index <= grid.last_index()`. Debug builds assert it;
/// release builds ignore the excess high bits.
#[must_use]
#[inline]
pub fn decode_in<const D: usize>(index: u128, grid: Grid<D>) -> [u32; D] {
    debug_assert!(
        index <= grid.last_index(),
        "index {index} lies outside {grid:?}"
    );
    let mut words = deinterleave(index & grid.last_index());
    transpose_to_axes(&mut words, grid.bits());
    words
}

/// Skilling's `AxestoTranspose`: coordinates of `bits` bits in, transposed
/// Hilbert index out, in place.
///
/// Skilling's code branches on one bit per level and dimension; on real
/// data those branches are unpredictable, so both cases are computed with
/// masks instead (see [`invert_or_exchange`]).
#[inline]
fn axes_to_transpose<const D: usize>(x: &mut [u32; D], bits: u32) {
    // Inverse undo: from the top level down, reflect or swap the lower bits
    // so that each level's sub-cube is put into the standard orientation.
    for level in (1..bits).rev() {
        for i in 0..D {
            invert_or_exchange(x, i, level);
        }
    }
    // Gray encode.
    for i in 1..D {
        x[i] ^= x[i - 1];
    }
    // Skilling: for every level q > 1 whose bit is set in x[D - 1],
    // t ^= q - 1. So bit j of t is the parity of the bits of x[D - 1] above
    // bit j: a suffix-parity scan.
    let mut t = x[D - 1] >> 1;
    t ^= t >> 1;
    t ^= t >> 2;
    t ^= t >> 4;
    t ^= t >> 8;
    t ^= t >> 16;
    for word in x.iter_mut() {
        *word ^= t;
    }
}

/// Skilling's `TransposetoAxes`: transposed Hilbert index of `bits` bits in,
/// coordinates out, in place.
#[inline]
fn transpose_to_axes<const D: usize>(x: &mut [u32; D], bits: u32) {
    // Gray decode by H ^ (H / 2).
    let t = x[D - 1] >> 1;
    for i in (1..D).rev() {
        x[i] ^= x[i - 1];
    }
    x[0] ^= t;
    // Undo excess work, from the second-lowest level up.
    for level in 1..bits {
        for i in (0..D).rev() {
            invert_or_exchange(x, i, level);
        }
    }
}

/// One step of both of Skilling's loops, for `q = 2^level` and `p = q - 1`:
/// if bit `level` of `x[i]` is set, invert the low bits of `x[0]`
/// (`x[0] ^= p`), otherwise exchange the low bits of `x[0]` and `x[i]`.
/// Without branches: `set` is all ones or all zeros.
#[inline]
fn invert_or_exchange<const D: usize>(x: &mut [u32; D], i: usize, level: u32) {
    let low = (1u32 << level) - 1;
    let set = 0u32.wrapping_sub((x[i] >> level) & 1);
    let exchange = (x[0] ^ x[i]) & low & !set;
    x[0] ^= (low & set) | exchange;
    x[i] ^= exchange;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Skilling's `AxestoTranspose` as published, branches and all: the
    /// reference model for the branch-free version.
    fn axes_to_transpose_reference(x: &mut [u32], bits: u32) {
        let n = x.len();
        let m = 1u32 << (bits - 1);
        let mut q = m;
        while q > 1 {
            let p = q - 1;
            for i in 0..n {
                if x[i] & q != 0 {
                    x[0] ^= p;
                } else {
                    let t = (x[0] ^ x[i]) & p;
                    x[0] ^= t;
                    x[i] ^= t;
                }
            }
            q >>= 1;
        }
        for i in 1..n {
            x[i] ^= x[i - 1];
        }
        let mut t = 0;
        let mut q = m;
        while q > 1 {
            if x[n - 1] & q != 0 {
                t ^= q - 1;
            }
            q >>= 1;
        }
        for word in x.iter_mut() {
            *word ^= t;
        }
    }

    fn check<const D: usize>(raw: [u32; 8], bits: u32) {
        let bits = 1 + bits % Grid::<D>::MAX_BITS;
        let mask = u32::MAX >> (32 - bits);
        let point: [u32; D] = std::array::from_fn(|d| raw[d] & mask);
        let mut fast = point;
        axes_to_transpose(&mut fast, bits);
        let mut reference = point;
        axes_to_transpose_reference(&mut reference, bits);
        assert_eq!(fast, reference, "D = {D}, bits = {bits}, {point:?}");
        transpose_to_axes(&mut fast, bits);
        assert_eq!(fast, point);
    }

    proptest! {
        #[test]
        fn matches_skilling_reference(raw in any::<[u32; 8]>(), bits in any::<u32>()) {
            check::<1>(raw, bits);
            check::<2>(raw, bits);
            check::<3>(raw, bits);
            check::<4>(raw, bits);
            check::<5>(raw, bits);
            check::<8>(raw, bits);
        }
    }
}
