//! Properties of both curves and of the rank mapping: exhaustive checks on
//! small grids, proptest over the full range, and the known-answer tables
//! shown in the module docs.

use std::collections::BTreeSet;

use proptest::prelude::*;
use zorder::rank::{Boundaries, f64_total_key, i64_key, spread};
use zorder::{Curve, Grid, hilbert, morton};

const CURVES: [Curve; 2] = [Curve::Morton, Curve::Hilbert];

fn grid_of<const D: usize>(bits: u32) -> Grid<D> {
    Grid::new(bits).expect("the tests use valid grids")
}

/// Every point of `grid`, dimension 0 varying fastest.
fn points<const D: usize>(grid: Grid<D>) -> impl Iterator<Item = [u32; D]> {
    let bits = grid.bits();
    let cells = 1u64 << (D as u32 * bits);
    (0..cells).map(move |cell| {
        std::array::from_fn(|d| ((cell >> (d as u32 * bits)) & (grid.side() - 1)) as u32)
    })
}

/// Number of unit steps between two points (L1 distance).
fn steps<const D: usize>(a: [u32; D], b: [u32; D]) -> u32 {
    a.iter().zip(b).map(|(a, b)| a.abs_diff(b)).sum()
}

/// The first `D` of eight random coordinates, cut to `grid`'s bits.
fn in_grid<const D: usize>(raw: [u32; 8], grid: Grid<D>) -> [u32; D] {
    std::array::from_fn(|d| (u64::from(raw[d]) % grid.side()) as u32)
}

// ---------------------------------------------------------------------------
// Known answers: the 4 x 4 tables of the module docs, indexed [y][x].

const MORTON_4X4: [[u128; 4]; 4] = [[0, 2, 8, 10], [1, 3, 9, 11], [4, 6, 12, 14], [5, 7, 13, 15]];

const HILBERT_4X4: [[u128; 4]; 4] = [[0, 1, 14, 15], [3, 2, 13, 12], [4, 7, 8, 11], [5, 6, 9, 10]];

#[test]
fn known_answers_4x4() {
    let grid = grid_of::<2>(2);
    for (curve, table) in [(Curve::Morton, MORTON_4X4), (Curve::Hilbert, HILBERT_4X4)] {
        for (y, row) in table.iter().enumerate() {
            for (x, &index) in row.iter().enumerate() {
                let point = [x as u32, y as u32];
                assert_eq!(curve.index(point, grid), index, "{curve} at {point:?}");
                assert_eq!(curve.point(index, grid), point, "{curve} at {index}");
            }
        }
    }
}

#[test]
fn known_answers_other_sizes() {
    // 2 x 2: Morton is a "Z", Hilbert a "U" opening along x.
    let grid = grid_of::<2>(1);
    let morton: Vec<_> = (0..4).map(|i| morton::decode_in(i, grid)).collect();
    assert_eq!(morton, [[0, 0], [0, 1], [1, 0], [1, 1]]);
    let hilbert: Vec<_> = (0..4).map(|i| hilbert::decode_in(i, grid)).collect();
    assert_eq!(hilbert, [[0, 0], [0, 1], [1, 1], [1, 0]]);
    // In one dimension both curves are the identity.
    for x in 0..256 {
        assert_eq!(Curve::Morton.index([x], grid_of::<1>(8)), u128::from(x));
        assert_eq!(Curve::Hilbert.index([x], grid_of::<1>(8)), u128::from(x));
    }
    assert_eq!(hilbert::encode([u32::MAX]), u128::from(u32::MAX));
    // The full-range functions agree with the tables' high-order structure.
    assert_eq!(morton::encode([u32::MAX, 0]), u128::from(u64::MAX) / 3 * 2);
    assert_eq!(morton::encode([u32::MAX; 4]), u128::MAX);
}

// ---------------------------------------------------------------------------
// Exhaustive checks on small grids.

/// Both curves map the points of `grid` one-to-one onto `0..=last_index`,
/// and decoding inverts encoding.
fn check_bijection<const D: usize>(grid: Grid<D>) {
    let cells = usize::try_from(grid.last_index() + 1).expect("a small grid");
    for curve in CURVES {
        let mut seen = vec![false; cells];
        for point in points(grid) {
            let index = curve.index(point, grid);
            assert!(index <= grid.last_index(), "{curve} {point:?} -> {index}");
            let slot = &mut seen[usize::try_from(index).expect("a small grid")];
            assert!(!*slot, "{curve}: index {index} reached twice");
            *slot = true;
            assert_eq!(curve.point(index, grid), point, "{curve} at {index}");
        }
        assert!(seen.iter().all(|&hit| hit), "{curve} misses an index");
    }
}

#[test]
fn bijection_on_small_grids() {
    check_bijection(grid_of::<1>(8)); // 256
    check_bijection(grid_of::<2>(4)); // 16 x 16
    check_bijection(grid_of::<3>(3)); // 8 x 8 x 8
    check_bijection(grid_of::<4>(2)); // 4^4
    check_bijection(grid_of::<5>(2)); // 4^5
    check_bijection(grid_of::<6>(2)); // 4^6
    check_bijection(grid_of::<7>(1)); // 2^7
    check_bijection(grid_of::<8>(1)); // 2^8
    check_bijection(grid_of::<8>(2)); // 4^8
}

/// Consecutive Hilbert indices are one unit step apart along one axis, and
/// the curve starts at the origin.
fn check_adjacency<const D: usize>(grid: Grid<D>) {
    assert_eq!(hilbert::decode_in(0, grid), [0; D]);
    let mut previous = [0; D];
    for index in 1..=grid.last_index() {
        let point = hilbert::decode_in(index, grid);
        assert_eq!(
            steps(previous, point),
            1,
            "{previous:?} -> {point:?} at {index}"
        );
        previous = point;
    }
}

#[test]
fn hilbert_adjacency_on_small_grids() {
    check_adjacency(grid_of::<1>(8));
    for bits in 1..=6 {
        check_adjacency(grid_of::<2>(bits));
    }
    for bits in 1..=4 {
        check_adjacency(grid_of::<3>(bits));
    }
    check_adjacency(grid_of::<4>(2));
    check_adjacency(grid_of::<4>(3));
    check_adjacency(grid_of::<5>(2));
    check_adjacency(grid_of::<6>(2));
    check_adjacency(grid_of::<8>(1));
    check_adjacency(grid_of::<8>(2));
}

#[test]
fn morton_jumps_where_hilbert_does_not() {
    // The reason to prefer Hilbert: Morton's largest step crosses the grid.
    let grid = grid_of::<2>(4);
    let largest = (1..=grid.last_index())
        .map(|i| steps(morton::decode_in(i - 1, grid), morton::decode_in(i, grid)))
        .max();
    assert_eq!(largest, Some(15 + 1));
}

/// Raising one coordinate, the others fixed, raises the Morton index.
fn check_morton_monotone<const D: usize>(grid: Grid<D>) {
    let top = (grid.side() - 1) as u32;
    for point in points(grid) {
        let index = morton::encode_in(point, grid);
        for d in 0..D {
            if point[d] < top {
                let mut above = point;
                above[d] += 1;
                assert!(morton::encode_in(above, grid) > index, "{point:?} dim {d}");
            }
        }
    }
}

#[test]
fn morton_monotone_on_small_grids() {
    check_morton_monotone(grid_of::<1>(8));
    check_morton_monotone(grid_of::<2>(4));
    check_morton_monotone(grid_of::<3>(3));
    check_morton_monotone(grid_of::<4>(2));
    check_morton_monotone(grid_of::<8>(2));
}

#[test]
fn morton_index_does_not_depend_on_resolution() {
    let coarse = grid_of::<3>(3);
    for point in points(coarse) {
        let index = morton::encode_in(point, coarse);
        assert_eq!(morton::encode_in(point, grid_of::<3>(7)), index);
        assert_eq!(morton::encode(point), index);
    }
}

// ---------------------------------------------------------------------------
// Proptest over the full range, for every D.

/// Round trips in `grid` from a random point and from a random index, plus
/// Hilbert adjacency and Morton monotonicity around them.
fn check_random<const D: usize>(raw: [u32; 8], index: u128, dimension: usize, grid: Grid<D>) {
    let point = in_grid(raw, grid);
    let index = index & grid.last_index();
    for curve in CURVES {
        assert_eq!(
            curve.point(curve.index(point, grid), grid),
            point,
            "{curve}"
        );
        assert_eq!(
            curve.index(curve.point(index, grid), grid),
            index,
            "{curve}"
        );
    }
    if index < grid.last_index() {
        let here = hilbert::decode_in(index, grid);
        let next = hilbert::decode_in(index + 1, grid);
        assert_eq!(steps(here, next), 1, "{here:?} -> {next:?}");
    }
    let d = dimension % D;
    if u64::from(point[d]) + 1 < grid.side() {
        let mut above = point;
        above[d] += 1;
        assert!(morton::encode_in(above, grid) > morton::encode_in(point, grid));
    }
}

/// As [`check_random`] in the full grid and in a grid of `bits` bits.
fn check_random_grids<const D: usize>(raw: [u32; 8], index: u128, dimension: usize, bits: u32) {
    check_random(raw, index, dimension, Grid::<D>::FULL);
    let bits = 1 + bits % Grid::<D>::MAX_BITS;
    check_random(raw, index, dimension, grid_of::<D>(bits));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn random_points_and_indices(
        raw in any::<[u32; 8]>(),
        index in any::<u128>(),
        dimension in 0usize..8,
        bits in any::<u32>(),
    ) {
        check_random_grids::<1>(raw, index, dimension, bits);
        check_random_grids::<2>(raw, index, dimension, bits);
        check_random_grids::<3>(raw, index, dimension, bits);
        check_random_grids::<4>(raw, index, dimension, bits);
        check_random_grids::<5>(raw, index, dimension, bits);
        check_random_grids::<6>(raw, index, dimension, bits);
        check_random_grids::<7>(raw, index, dimension, bits);
        check_random_grids::<8>(raw, index, dimension, bits);
    }

    #[test]
    fn full_range_functions_match_the_full_grid(raw in any::<[u32; 4]>(), index in any::<u128>()) {
        prop_assert_eq!(morton::encode(raw), morton::encode_in(raw, Grid::FULL));
        prop_assert_eq!(hilbert::encode(raw), hilbert::encode_in(raw, Grid::FULL));
        prop_assert_eq!(morton::decode::<4>(morton::encode(raw)), raw);
        prop_assert_eq!(hilbert::decode::<4>(hilbert::encode(raw)), raw);
        prop_assert_eq!(morton::encode(morton::decode::<4>(index)), index);
        prop_assert_eq!(hilbert::encode(hilbert::decode::<4>(index)), index);
        let pair = [raw[0], raw[1]];
        prop_assert_eq!(hilbert::decode::<2>(hilbert::encode(pair)), pair);
    }
}

// ---------------------------------------------------------------------------
// Rank: equal-frequency buckets.

/// How many sample keys fall into each bucket.
fn bucket_sizes<K: Ord + Clone>(boundaries: &Boundaries<K>, keys: &[K]) -> Vec<usize> {
    let mut sizes = vec![0; boundaries.bucket_count() as usize];
    for key in keys {
        sizes[boundaries.bucket(key) as usize] += 1;
    }
    sizes
}

#[test]
fn rank_is_equal_frequency_on_uniform_data() {
    let keys: Vec<u64> = (0..65_536u64).map(|i| i * 3 + 7).collect();
    let boundaries = Boundaries::from_sorted_sample(&keys, 256);
    assert_eq!(boundaries.bucket_count(), 256);
    assert!(
        bucket_sizes(&boundaries, &keys)
            .iter()
            .all(|&size| size == 256)
    );
    // Spread over a 16-bit axis: bucket i starts at i * 256.
    let grid = grid_of::<2>(16);
    assert_eq!(boundaries.coordinate(&7, grid), 0);
    assert_eq!(boundaries.coordinate(&(256 * 3 + 7), grid), 256);
    assert_eq!(boundaries.coordinate(&u64::MAX, grid), 255 * 256);
}

#[test]
fn rank_isolates_a_heavy_value_and_splits_the_rest() {
    // 90% of the rows share one value in the middle of 1,000 light values.
    let mut keys: Vec<u32> = (0..1000).filter(|&k| k != 500).collect();
    keys.extend(std::iter::repeat_n(500, 9000));
    keys.sort_unstable();
    let boundaries = Boundaries::from_sorted_sample(&keys, 64);
    assert_eq!(boundaries.bucket_count(), 64);
    let heavy = boundaries.bucket(&500);
    assert!(boundaries.bucket(&499) < heavy && heavy < boundaries.bucket(&501));
    let sizes = bucket_sizes(&boundaries, &keys);
    assert_eq!(sizes[heavy as usize], 9000);
    // The other 999 rows fill the other 63 buckets, about 16 each, on both
    // sides of the heavy value alike.
    for (bucket, &size) in sizes.iter().enumerate() {
        if bucket != heavy as usize {
            assert!((12..=20).contains(&size), "bucket {bucket}: {sizes:?}");
        }
    }
    // Quantiles deduplicated, without water-filling, would have left about
    // 64 * 10% = 6 light buckets.
}

#[test]
fn rank_keeps_every_heavy_value_apart() {
    // Three values of 30% each and 10% spread over 100 light values.
    let mut keys: Vec<u32> = (0..100).map(|k| k * 10 + 1).collect();
    for heavy in [0, 500, 2000] {
        keys.extend(std::iter::repeat_n(heavy, 300));
    }
    keys.sort_unstable();
    let boundaries = Boundaries::from_sorted_sample(&keys, 16);
    assert_eq!(boundaries.bucket_count(), 16);
    let sizes = bucket_sizes(&boundaries, &keys);
    for heavy in [0, 500, 2000] {
        assert_eq!(sizes[boundaries.bucket(&heavy) as usize], 300, "{sizes:?}");
    }
}

#[test]
fn rank_orders_null_first_and_nan_last() {
    let values = [
        Some(f64::NAN),
        None,
        Some(3.5),
        Some(f64::NEG_INFINITY),
        Some(-0.0),
        Some(0.0),
        None,
        Some(f64::INFINITY),
        Some(-2.0),
    ];
    // NULL is the caller's None: Option's Ord puts it before every Some.
    let keys: Vec<Option<u64>> = values.iter().map(|v| v.map(f64_total_key)).collect();
    let boundaries = Boundaries::from_sample(keys, 100);
    // Distinct: None, -inf, -2, 0 (both zeros), 3.5, +inf, NaN.
    assert_eq!(boundaries.bucket_count(), 7);
    let bucket = |value: Option<f64>| boundaries.bucket(&value.map(f64_total_key));
    assert_eq!(bucket(None), 0);
    assert_eq!(bucket(Some(f64::NEG_INFINITY)), 1);
    assert_eq!(bucket(Some(-0.0)), bucket(Some(0.0)));
    assert_eq!(bucket(Some(f64::INFINITY)), 5);
    assert_eq!(bucket(Some(f64::NAN)), 6);
    assert_eq!(bucket(Some(-f64::NAN)), 6);
    // Values not in the sample land between their neighbours.
    assert_eq!(bucket(Some(1.0)), bucket(Some(3.5)));
    assert_eq!(bucket(Some(-1e300)), bucket(Some(-2.0)));
}

#[test]
fn rank_on_other_key_kinds() {
    // Strings: byte order with no prefix limit.
    let long = "x".repeat(40);
    let keys: Vec<Vec<u8>> = [format!("{long}a"), format!("{long}b"), "y".into()]
        .map(String::into_bytes)
        .to_vec();
    let boundaries = Boundaries::from_sorted_sample(&keys, 8);
    assert_eq!(boundaries.bucket_count(), 3);
    assert_eq!(boundaries.bucket(&keys[1]), 1);
    // Timestamps (and dates) through i64_key; booleans as they are.
    let micros: Vec<u64> = [-5_000_000i64, -1, 0, 1_700_000_000_000_000]
        .map(i64_key)
        .to_vec();
    assert_eq!(
        Boundaries::from_sorted_sample(&micros, 2).bucket(&i64_key(-1)),
        0
    );
    let flags = Boundaries::from_sorted_sample(&[false, false, true], 4);
    assert_eq!((flags.bucket(&false), flags.bucket(&true)), (0, 1));
}

proptest! {
    /// Bucket count is min(distinct, buckets); the mapping is monotone (so a
    /// value is never split across buckets), dense, and its boundaries are
    /// sample keys.
    #[test]
    fn rank_buckets_are_dense_and_monotone(
        mut keys in prop::collection::vec(0u8..40, 0..400),
        buckets in 0u32..50,
        probe in any::<u8>(),
    ) {
        keys.sort_unstable();
        let boundaries = Boundaries::from_sorted_sample(&keys, buckets);
        let distinct: BTreeSet<u8> = keys.iter().copied().collect();
        let expected = distinct.len().min(buckets.max(1) as usize).max(1);
        prop_assert_eq!(boundaries.bucket_count() as usize, expected);
        let ids: Vec<u32> = keys.iter().map(|key| boundaries.bucket(key)).collect();
        prop_assert!(ids.is_sorted());
        let hit: BTreeSet<u32> = ids.iter().copied().collect();
        if !keys.is_empty() {
            prop_assert_eq!(hit, (0..boundaries.bucket_count()).collect::<BTreeSet<_>>());
        }
        prop_assert!(boundaries.uppers().is_sorted_by(|a, b| a < b));
        prop_assert!(boundaries.uppers().iter().all(|upper| distinct.contains(upper)));
        prop_assert!(boundaries.bucket(&probe) < boundaries.bucket_count());
    }

    /// Equal frequency without ties: bucket sizes differ by at most one.
    #[test]
    fn rank_balances_distinct_keys(len in 1usize..2000, buckets in 1u32..100) {
        let keys: Vec<usize> = (0..len).collect();
        let boundaries = Boundaries::from_sorted_sample(&keys, buckets);
        let sizes = bucket_sizes(&boundaries, &keys);
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        prop_assert!(max - min <= 1, "{:?}", sizes);
    }

    /// Spreading keeps order and, with no more buckets than cells, keeps
    /// buckets apart.
    #[test]
    fn spread_is_monotone_and_injective(count in 1u32..5000, bits in 1u32..=32, id in any::<u32>()) {
        let id = id % count;
        let here = spread(id, count, bits);
        prop_assert!(u64::from(here) < 1u64 << bits);
        if id + 1 < count {
            let next = spread(id + 1, count, bits);
            prop_assert!(next >= here);
            if u64::from(count) <= 1u64 << bits {
                prop_assert!(next > here);
            }
        }
    }
}
