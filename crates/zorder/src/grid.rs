//! The grid a curve fills: `D` dimensions of `bits` bits each.

/// A `D`-dimensional grid with `2^bits` cells along each axis.
///
/// Both curves index the `2^(D * bits)` cells of a grid with a `u128`, so a
/// grid only exists when `1 <= D <= 8` (checked at compile time) and
/// `1 <= bits <= min(32, 128 / D)` (checked by [`Grid::new`]). An invalid grid
/// cannot be built, which is why the encode and decode functions need no
/// error path.
///
/// | `D`               | 1  | 2  | 3  | 4  | 5  | 6  | 7  | 8  |
/// |-------------------|----|----|----|----|----|----|----|----|
/// | [`Grid::MAX_BITS`] | 32 | 32 | 32 | 32 | 25 | 21 | 18 | 16 |
///
/// ```compile_fail
/// // Nine dimensions are refused at compile time.
/// let grid = zorder::Grid::<9>::new(1);
/// ```
///
/// Fewer bits give a coarser grid whose indices are smaller; the choice is
/// the caller's (OPTIMIZE picks enough bits to tell its rank buckets apart).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Grid<const D: usize> {
    /// Bits per coordinate, in `1..=Self::MAX_BITS`.
    bits: u32,
}

impl<const D: usize> Grid<D> {
    /// The largest number of bits per coordinate: `min(32, 128 / D)`.
    ///
    /// Using this constant with `D == 0` or `D > 8` is a compile-time error.
    pub const MAX_BITS: u32 = {
        assert!(D >= 1 && D <= 8, "a grid has 1 to 8 dimensions");
        // D <= 8 was just asserted, so the cast is exact.
        let per_dimension = 128 / D as u32;
        if per_dimension > 32 {
            32
        } else {
            per_dimension
        }
    };

    /// The finest grid: [`Grid::MAX_BITS`] bits per coordinate.
    pub const FULL: Self = Self {
        bits: Self::MAX_BITS,
    };

    /// A grid of `bits` bits per coordinate, or `None` unless
    /// `1 <= bits <= Self::MAX_BITS` (that is, unless `D * bits <= 128` and
    /// each coordinate fits in a `u32`).
    #[must_use]
    pub const fn new(bits: u32) -> Option<Self> {
        if bits >= 1 && bits <= Self::MAX_BITS {
            Some(Self { bits })
        } else {
            None
        }
    }

    /// Bits per coordinate.
    #[must_use]
    pub const fn bits(self) -> u32 {
        self.bits
    }

    /// Cells along each axis: `2^bits`. Every coordinate must be below it.
    #[must_use]
    pub const fn side(self) -> u64 {
        1 << self.bits
    }

    /// The largest index of either curve on this grid: `2^(D * bits) - 1`.
    #[must_use]
    pub const fn last_index(self) -> u128 {
        // D <= 8 (checked with MAX_BITS), so the cast is exact.
        let index_bits = D as u32 * self.bits;
        u128::MAX >> (128 - index_bits)
    }

    /// Whether every coordinate of `point` is below [`Grid::side`].
    #[must_use]
    pub const fn contains(self, point: &[u32; D]) -> bool {
        let mut d = 0;
        while d < D {
            if point[d] > self.coordinate_mask() {
                return false;
            }
            d += 1;
        }
        true
    }

    /// The low `bits` bits set: the largest coordinate.
    pub(crate) const fn coordinate_mask(self) -> u32 {
        u32::MAX >> (32 - self.bits)
    }

    /// `point` with every coordinate reduced to its low `bits` bits.
    pub(crate) fn truncate(self, point: [u32; D]) -> [u32; D] {
        point.map(|c| c & self.coordinate_mask())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_bits_fill_128_bits_without_exceeding_32() {
        assert_eq!(Grid::<1>::MAX_BITS, 32);
        assert_eq!(Grid::<4>::MAX_BITS, 32);
        assert_eq!(Grid::<5>::MAX_BITS, 25);
        assert_eq!(Grid::<6>::MAX_BITS, 21);
        assert_eq!(Grid::<7>::MAX_BITS, 18);
        assert_eq!(Grid::<8>::MAX_BITS, 16);
    }

    #[test]
    fn new_rejects_zero_and_too_many_bits() {
        assert_eq!(Grid::<2>::new(0), None);
        assert_eq!(Grid::<2>::new(33), None);
        assert_eq!(Grid::<8>::new(17), None);
        assert_eq!(Grid::<8>::new(16), Some(Grid::<8>::FULL));
        assert_eq!(Grid::<3>::new(5).map(Grid::bits), Some(5));
    }

    #[test]
    fn sizes() {
        let grid = Grid::<3>::new(4).unwrap();
        assert_eq!(grid.side(), 16);
        assert_eq!(grid.last_index(), (1 << 12) - 1);
        assert_eq!(Grid::<4>::FULL.last_index(), u128::MAX);
        assert_eq!(Grid::<1>::FULL.side(), 1 << 32);
        assert!(grid.contains(&[15, 0, 15]));
        assert!(!grid.contains(&[15, 16, 0]));
        assert_eq!(grid.truncate([17, 3, 255]), [1, 3, 15]);
    }
}
