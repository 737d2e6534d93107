//! Morton (Z-order) indices: bit interleaving, most significant bits first.
//!
//! Bit `l` of coordinate `d` becomes bit `l * D + (D - 1 - d)` of the index:
//! the index orders points first by the top bit of every coordinate, then by
//! the next bit of every coordinate, and so on, with dimension 0 the most
//! significant within each bit level. Because every coordinate keeps the
//! order of its own bits, the index is monotone in each coordinate: raising
//! one coordinate with the others fixed raises the index.
//!
//! Unlike the Hilbert index, the Morton index does not depend on the grid's
//! resolution: a point's index is the same in every grid that contains it.
//!
//! # Known answers: the 4 × 4 grid
//!
//! `encode_in([x, y], Grid::<2>::new(2))`, so the index bits are
//! `x1 y1 x0 y0`:
//!
//! ```text
//!  y\x   0   1   2   3
//!   0    0   2   8  10
//!   1    1   3   9  11
//!   2    4   6  12  14
//!   3    5   7  13  15
//! ```
//!
//! The "Z" is traced by 0 → 1 → 2 → 3 in each 2 × 2 block, and again by the
//! blocks themselves (0, 4, 8, 12); the jump from 7 at (1, 3) to 8 at (2, 0)
//! crosses the whole grid, which is what the Hilbert curve avoids.
//!
//! # Example
//!
//! ```
//! use zorder::{Grid, morton};
//!
//! let grid = Grid::<2>::new(2).expect("2 * 2 bits fit in 128");
//! assert_eq!(morton::encode_in([2, 1], grid), 9);
//! assert_eq!(morton::decode_in(9, grid), [2, 1]);
//! // The same index at full resolution, without a grid:
//! assert_eq!(morton::encode([2, 1]), 9);
//! ```

use crate::Grid;
use crate::interleave::{deinterleave, interleave};

/// The Morton index of `point` with all 32 bits of each coordinate.
///
/// Only for `1 <= D <= 4` (checked at compile time: `D * 32 <= 128`), so
/// every `[u32; D]` is valid. For more dimensions use [`encode_in`] with a
/// [`Grid`] of fewer bits:
///
/// ```compile_fail
/// // Five 32-bit coordinates do not fit in a u128.
/// let index = zorder::morton::encode([0u32; 5]);
/// ```
#[must_use]
#[inline]
pub fn encode<const D: usize>(point: [u32; D]) -> u128 {
    const {
        assert!(
            D >= 1 && D * 32 <= 128,
            "full 32-bit coordinates fit for 1 to 4 dimensions"
        );
    }
    interleave(point)
}

/// The point whose Morton index is `index`, with all 32 bits of each
/// coordinate: the inverse of [`encode`], defined for every `u128`.
#[must_use]
#[inline]
pub fn decode<const D: usize>(index: u128) -> [u32; D] {
    const {
        assert!(
            D >= 1 && D * 32 <= 128,
            "full 32-bit coordinates fit for 1 to 4 dimensions"
        );
    }
    deinterleave(index)
}

/// The Morton index of `point` in `grid`, in `0..=grid.last_index()`.
///
/// Precondition: every coordinate is below `grid.side()` (see
/// [`Grid::contains`]). Debug builds assert it; release builds ignore the
/// excess high bits, as if each coordinate were taken modulo `grid.side()`.
#[must_use]
#[inline]
pub fn encode_in<const D: usize>(point: [u32; D], grid: Grid<D>) -> u128 {
    debug_assert!(grid.contains(&point), "{point:?} lies outside {grid:?}");
    interleave(grid.truncate(point))
}

/// The point whose Morton index in `grid` is `index`: the inverse of
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
    deinterleave(index & grid.last_index())
}
