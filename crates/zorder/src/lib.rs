//! Morton (Z-order) and Hilbert space-filling curves.
//!
//! A space-filling curve maps a point of a `D`-dimensional grid to a single
//! `u128` index so that points close on the curve tend to be close in space.
//! Sorting rows by that index before writing data files clusters every
//! column at once, so min/max statistics can skip files for predicates on
//! any of the clustered columns. This crate is the pure math for OPTIMIZE's
//! `--zorder-by`: no I/O, no Arrow, no allocation on the encode/decode path.
//!
//! - [`morton`]: bit interleaving (Z-order), most significant bits first.
//! - [`hilbert`]: the Hilbert curve via Skilling's transform.
//! - [`Curve`]: the one runtime choice OPTIMIZE makes between the two.
//! - [`Grid`]: how many bits each of the `D` coordinates has (`D * bits <= 128`).
//! - [`rank`]: turning column values into coordinates by rank (equal-frequency
//!   buckets), plus order-preserving keys for floats and signed integers.
//!
//! # Example
//!
//! ```
//! use zorder::{Curve, Grid, hilbert, morton, rank::Boundaries};
//!
//! // Two columns, 16 bits each: a 65536 x 65536 grid.
//! let grid = Grid::<2>::new(16).expect("2 * 16 bits fit in 128");
//!
//! // Column values become coordinates by rank, not by raw value.
//! let patient_ids: Vec<u64> = (0..1000).map(|i| i * 7).collect();
//! let by_patient = Boundaries::from_sorted_sample(&patient_ids, 1 << 16);
//! let codes: Vec<&str> = vec!["1975-2", "2345-7", "2345-7", "718-7"];
//! let by_code = Boundaries::from_sorted_sample(&codes, 1 << 16);
//!
//! let point = [
//!     by_patient.coordinate(&49, grid),
//!     by_code.coordinate(&"2345-7", grid),
//! ];
//! let index = Curve::Hilbert.index(point, grid);
//! assert_eq!(hilbert::decode_in(index, grid), point);
//!
//! // Up to four dimensions, the full u32 range needs no grid at all.
//! assert_eq!(morton::decode::<2>(morton::encode([7, u32::MAX])), [7, u32::MAX]);
//! ```
//!
//! # Invariants
//!
//! - For a grid of `D` dimensions and `bits` bits, both curves are bijections
//!   between the `2^(D * bits)` cells and the indices `0..2^(D * bits)`.
//! - Morton indices are monotone in each coordinate; Hilbert indices of
//!   consecutive cells are grid neighbours (one unit step along one axis).
//! - `D` is checked at compile time (`1 <= D <= 8`); `bits` is checked when a
//!   [`Grid`] is built, so an index always fits in a `u128`.
#![forbid(unsafe_code)]

mod grid;
pub mod hilbert;
mod interleave;
pub mod morton;
pub mod rank;

pub use grid::Grid;

use std::fmt;

/// The space-filling curve that orders rows: the only runtime dispatch
/// OPTIMIZE needs.
///
/// Both curves map the same [`Grid`] onto the same index range; they differ
/// in which cells follow each other. [`Curve::Hilbert`] clusters better (no
/// long jumps), [`Curve::Morton`] is cheaper to compute and monotone in every
/// coordinate. See the [`hilbert`] module for the comparison.
///
/// The names returned by [`Curve::as_str`] (`"morton"`, `"hilbert"`) are
/// stable: they are recorded in the Delta log (`commitInfo`, `add.tags`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Curve {
    /// Z-order: bit interleaving, see [`morton`].
    Morton,
    /// Hilbert order via Skilling's transform, see [`hilbert`].
    Hilbert,
}

impl Curve {
    /// The index of `point` on this curve in `grid`.
    ///
    /// Every coordinate must be below `grid.side()` (see
    /// [`morton::encode_in`] and [`hilbert::encode_in`] for what happens
    /// otherwise).
    #[must_use]
    #[inline]
    pub fn index<const D: usize>(self, point: [u32; D], grid: Grid<D>) -> u128 {
        match self {
            Self::Morton => morton::encode_in(point, grid),
            Self::Hilbert => hilbert::encode_in(point, grid),
        }
    }

    /// The point at `index` on this curve in `grid`: the inverse of
    /// [`Curve::index`].
    #[must_use]
    #[inline]
    pub fn point<const D: usize>(self, index: u128, grid: Grid<D>) -> [u32; D] {
        match self {
            Self::Morton => morton::decode_in(index, grid),
            Self::Hilbert => hilbert::decode_in(index, grid),
        }
    }

    /// The stable lower-case name: `"morton"` or `"hilbert"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Morton => "morton",
            Self::Hilbert => "hilbert",
        }
    }

    /// Parses a name written by [`Curve::as_str`], ignoring ASCII case;
    /// `None` for anything else (an unknown name is the caller's error to
    /// word, for example a CLI flag or a tag written by a newer version).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Morton, Self::Hilbert]
            .into_iter()
            .find(|curve| curve.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for curve in [Curve::Morton, Curve::Hilbert] {
            assert_eq!(Curve::from_name(curve.as_str()), Some(curve));
            assert_eq!(curve.to_string(), curve.as_str());
        }
        assert_eq!(Curve::from_name("HILBERT"), Some(Curve::Hilbert));
        assert_eq!(Curve::from_name("zorder"), None);
        assert_eq!(Curve::from_name(""), None);
    }
}
