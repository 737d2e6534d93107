//! Column values to curve coordinates, by rank.
//!
//! A curve needs small unsigned coordinates that spread the rows evenly over
//! each axis. Raw values do neither: a column of patient ids in the millions
//! and a column of twenty status codes would give the curve one busy axis and
//! one nearly constant one. As Spark's range-partition ids do, a value's
//! coordinate is instead the *rank* of its bucket among equal-frequency
//! buckets drawn from a sample (or the full set) of the column.
//!
//! The pipeline for one column:
//!
//! 1. Map each value to an order-preserving key `K: Ord` (this crate never
//!    sees Arrow; the caller does this):
//!    - signed integers, dates and timestamps: [`i64_key`] (or the integer
//!      itself, which is already `Ord`);
//!    - decimals: [`i128_key`] on the unscaled value (one column has one
//!      scale);
//!    - floats: [`f64_total_key`] (`f32` widens to `f64` exactly);
//!    - strings and binary: the bytes as `&[u8]` or `Vec<u8>`, whose `Ord` is
//!      byte-wise lexicographic, which for UTF-8 is code-point order, with no
//!      prefix limit;
//!    - booleans: `bool` (`false < true`);
//!    - NULL: wrap the key in `Option<K>`: `Option`'s `Ord` puts `None` before
//!      every `Some`, so NULL sorts first and gets its own bucket if it is
//!      frequent enough.
//! 2. Sort a sample of keys and build [`Boundaries::from_sorted_sample`].
//! 3. For every row, [`Boundaries::coordinate`] gives the curve coordinate.
//!
//! # Buckets
//!
//! Buckets are contiguous, non-overlapping key intervals. One key value is
//! never split across two buckets (a bucket is a function of the key), and
//! ties and skew do not collapse a dimension: the number of buckets is
//! exactly `min(distinct sample keys, requested buckets)`. Bucket ids are
//! dense, `0..bucket_count()`.
//!
//! Plain quantiles would not do: if 90% of the rows share one value, 90% of
//! the quantiles land on it, and deduplicating them leaves about a tenth of
//! the buckets for everything else. Instead:
//!
//! 1. A value is *heavy* if it fills a bucket on its own: its count is at
//!    least the rows that are not heavy divided by the buckets that are left
//!    for them (water-filling, largest values first). Each heavy value gets a
//!    bucket of its own.
//! 2. The heavy values cut the other (light) values into stretches. The
//!    remaining buckets are shared among the stretches in proportion to their
//!    rows (each further bucket goes to the stretch whose buckets are the
//!    largest), at least one per stretch, never more than its distinct values.
//!    If there are more stretches than buckets left, the least heavy value
//!    rejoins the light ones until they fit.
//! 3. Each stretch is cut greedily into its share of buckets of nearly equal
//!    rows; with no ties, bucket sizes differ by at most one.
//!
//! So with 90% of rows on one value and 64 buckets, that value gets one
//! bucket and the other 10% of rows get 63 buckets of about equal size, on
//! both sides of it.
//!
//! # Coordinates
//!
//! Bucket ids are spread over the whole axis of the grid, `id * 2^bits / k`
//! for `k` buckets (see [`spread`]), rather than used as they are. Both curves
//! split the space by the top bits of every coordinate first, so a column
//! with only 4 buckets, left at coordinates `0..4`, would only be split at the
//! curve's last two levels and barely be clustered; spread to `0, 2^bits / 4,
//! ...`, it is split at the first two levels, like every other column. When
//! `k <= 2^bits` distinct buckets keep distinct coordinates.

use crate::Grid;

/// Equal-frequency bucket boundaries of one column: a monotone map from keys
/// to dense bucket ids `0..bucket_count()`.
///
/// Built once per column from a sorted sample; [`Boundaries::bucket`] is a
/// binary search that allocates nothing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Boundaries<K> {
    /// The greatest sample key of every bucket but the last, strictly
    /// increasing. Bucket `i` holds the keys `k` with
    /// `uppers[i - 1] < k <= uppers[i]`.
    uppers: Vec<K>,
}

impl<K: Ord + Clone> Boundaries<K> {
    /// Boundaries for at most `buckets` equal-frequency buckets of `keys`,
    /// which must be sorted ascending (debug builds check it).
    ///
    /// The result has exactly `min(distinct keys, buckets)` buckets, at least
    /// one (`buckets == 0` counts as 1, and an empty sample gives one bucket
    /// that every key falls into). See the [module docs](self) for how the
    /// boundaries are chosen and how heavy values are treated.
    ///
    /// Costs `O(n + d log d)` for `n` keys of which `d` are distinct, and
    /// allocates `O(d)`. Keys outside the sample are fine later: they fall
    /// into the bucket whose interval contains them.
    #[must_use]
    pub fn from_sorted_sample(keys: &[K], buckets: u32) -> Self {
        debug_assert!(keys.is_sorted(), "the sample must be sorted");
        let runs: Vec<Run<'_, K>> = keys
            .chunk_by(|a, b| a == b)
            .map(|run| Run {
                key: &run[0],
                count: run.len() as u128,
            })
            .collect();
        let buckets = usize::try_from(buckets.max(1)).unwrap_or(usize::MAX);
        let uppers = cut(&runs, buckets.min(runs.len()))
            .into_iter()
            .map(|run| runs[run].key.clone())
            .collect();
        Self { uppers }
    }

    /// As [`Boundaries::from_sorted_sample`], sorting `keys` first.
    #[must_use]
    pub fn from_sample(mut keys: Vec<K>, buckets: u32) -> Self {
        keys.sort_unstable();
        Self::from_sorted_sample(&keys, buckets)
    }

    /// The number of buckets `k`, at least 1; bucket ids are `0..k`.
    #[must_use]
    pub fn bucket_count(&self) -> u32 {
        // There are fewer uppers than the requested bucket count, a u32.
        self.uppers.len() as u32 + 1
    }

    /// The bucket of `key`: the number of boundaries below it. Monotone in
    /// `key`, and defined for keys that were not in the sample too (they fall
    /// into the bucket whose interval contains them).
    #[must_use]
    #[inline]
    pub fn bucket(&self, key: &K) -> u32 {
        // At most uppers.len(), which fits in a u32 (see bucket_count).
        self.uppers.partition_point(|upper| upper < key) as u32
    }

    /// The coordinate of `key` on one axis of `grid`: its bucket spread over
    /// `0..grid.side()` (see [`spread`]).
    #[must_use]
    #[inline]
    pub fn coordinate<const D: usize>(&self, key: &K, grid: Grid<D>) -> u32 {
        spread(self.bucket(key), self.bucket_count(), grid.bits())
    }

    /// The inclusive upper bound of every bucket but the last, strictly
    /// increasing (empty when there is one bucket).
    #[must_use]
    pub fn uppers(&self) -> &[K] {
        &self.uppers
    }
}

/// Spreads bucket `id` of `count` over the coordinates `0..2^bits`:
/// `id * 2^bits / count`, rounded down.
///
/// Monotone in `id`, `spread(0, ..) == 0`, and when `count <= 2^bits`
/// distinct ids give distinct coordinates. `bits` above 32 count as 32,
/// `count == 0` as 1, and an `id >= count` as `count - 1`.
#[must_use]
#[inline]
pub fn spread(id: u32, count: u32, bits: u32) -> u32 {
    let count = u64::from(count.max(1));
    let id = u64::from(id).min(count - 1);
    let side = 1u64 << bits.min(32);
    // id < count, so the quotient is below side <= 2^32; u64 holds the
    // product (< 2^64).
    (id * side / count) as u32
}

/// Order-preserving key of an `f64`: `a < b` implies
/// `f64_total_key(a) < f64_total_key(b)`, with every NaN last.
///
/// `-inf` < negative numbers < zero < positive numbers < `+inf` < NaN. `-0.0`
/// and `+0.0` get the same key, as they compare equal in SQL, and so do all
/// NaNs (whatever their sign or payload), as Spark treats NaN as one value
/// greater than any other. Widen an `f32` with `f64::from` first.
#[must_use]
#[inline]
pub fn f64_total_key(x: f64) -> u64 {
    const SIGN: u64 = 1 << 63;
    if x.is_nan() {
        return u64::MAX;
    }
    // Maps -0.0 to +0.0; every other value is unchanged.
    let bits = (x + 0.0).to_bits();
    if bits & SIGN == 0 {
        // Non-negative: above every negative, in the order of the bits.
        bits | SIGN
    } else {
        // Negative: a larger magnitude has larger bits, so invert them.
        !bits
    }
}

/// Order-preserving key of an `i64` (also dates as `i64::from(days)` and
/// timestamps in microseconds): flips the sign bit so that unsigned order is
/// signed order, `i64::MIN` to 0 and `i64::MAX` to `u64::MAX`.
#[must_use]
#[inline]
pub fn i64_key(x: i64) -> u64 {
    x.cast_unsigned() ^ (1 << 63)
}

/// Order-preserving key of an `i128`, such as a decimal's unscaled value:
/// flips the sign bit, as [`i64_key`] does.
#[must_use]
#[inline]
pub fn i128_key(x: i128) -> u128 {
    x.cast_unsigned() ^ (1 << 127)
}

/// One distinct key of a sorted sample and how often it occurs.
struct Run<'a, K> {
    key: &'a K,
    count: u128,
}

/// A maximal stretch `start..end` of light (not heavy) runs.
struct Segment {
    start: usize,
    end: usize,
    /// Rows in the stretch.
    rows: u128,
}

impl Segment {
    /// Distinct keys in the stretch: the most buckets it can be split into.
    fn runs(&self) -> usize {
        self.end - self.start
    }
}

/// Chooses `buckets - 1` cuts between the runs, as the indices of the last
/// run of every bucket but the last. `buckets` must be at most `runs.len()`.
///
/// 1. Heavy runs, found by water-filling ([`heavy_runs`]), get a bucket each.
/// 2. The light runs between them form segments; the remaining buckets are
///    shared out among the segments in proportion to their rows
///    ([`apportion`]), at least one each.
/// 3. Each segment is cut greedily into its share ([`split_evenly`]).
fn cut<K>(runs: &[Run<'_, K>], buckets: usize) -> Vec<usize> {
    if buckets <= 1 {
        return Vec::new();
    }
    // Runs by count, largest first; ties in key order.
    let mut by_count: Vec<usize> = (0..runs.len()).collect();
    by_count.sort_by(|&a, &b| runs[b].count.cmp(&runs[a].count).then(a.cmp(&b)));
    let mut heavy_count = heavy_runs(runs, &by_count, buckets);
    let mut heavy = vec![false; runs.len()];
    for &run in &by_count[..heavy_count] {
        heavy[run] = true;
    }
    // Every light segment needs a bucket of its own. If heavy runs break
    // the light ones into more segments than there are buckets left, the
    // least heavy run rejoins the light ones, until they fit.
    let segments = loop {
        let segments = light_segments(runs, &heavy);
        if segments.len() <= buckets - heavy_count {
            break segments;
        }
        heavy_count -= 1;
        heavy[by_count[heavy_count]] = false;
    };
    let shares = apportion(&segments, buckets - heavy_count);

    // The last run of every bucket, in key order.
    let mut ends = Vec::with_capacity(buckets);
    let mut segments = segments.iter().zip(shares).peekable();
    for (run, &is_heavy) in heavy.iter().enumerate() {
        if is_heavy {
            ends.push(run);
        } else if let Some((segment, share)) = segments.next_if(|(s, _)| s.start == run) {
            split_evenly(
                &runs[segment.start..segment.end],
                share,
                segment.start,
                &mut ends,
            );
        }
    }
    // The last bucket is open-ended.
    ends.pop();
    debug_assert_eq!(ends.len(), buckets - 1);
    ends
}

/// Water-filling: the number `h` of the largest runs (`by_count` lists the
/// runs largest first) that are heavy.
///
/// A run is heavy when it holds at least a bucket's share of the rows that
/// are not heavy: `count * (buckets - h) >= rows outside the h larger runs`.
/// At most `buckets - 1` runs are heavy, so a bucket is left for the rest.
fn heavy_runs<K>(runs: &[Run<'_, K>], by_count: &[usize], buckets: usize) -> usize {
    let mut light: u128 = runs.iter().map(|run| run.count).sum();
    let mut heavy = 0;
    while heavy + 1 < buckets && heavy < by_count.len() {
        let count = runs[by_count[heavy]].count;
        if count.saturating_mul((buckets - heavy) as u128) < light {
            break;
        }
        light -= count;
        heavy += 1;
    }
    heavy
}

/// The maximal stretches of runs that are not heavy.
fn light_segments<K>(runs: &[Run<'_, K>], heavy: &[bool]) -> Vec<Segment> {
    let mut segments: Vec<Segment> = Vec::new();
    for (run, &is_heavy) in heavy.iter().enumerate() {
        if is_heavy {
            continue;
        }
        match segments.last_mut() {
            Some(segment) if segment.end == run => {
                segment.end += 1;
                segment.rows += runs[run].count;
            }
            _ => segments.push(Segment {
                start: run,
                end: run + 1,
                rows: runs[run].count,
            }),
        }
    }
    segments
}

/// Shares `buckets` (at least one per segment, and at least as many as
/// there are segments) among `segments`: one each, then every further
/// bucket to the segment whose buckets are currently the largest
/// (`rows / share`), never more than a segment's distinct keys.
fn apportion(segments: &[Segment], buckets: usize) -> Vec<usize> {
    /// A segment's claim to the next bucket: its current bucket size.
    #[derive(PartialEq, Eq)]
    struct Claim {
        rows: u128,
        share: usize,
        segment: usize,
    }
    impl Ord for Claim {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            // rows / share, compared without division; ties to the lower key.
            (self.rows.saturating_mul(other.share as u128))
                .cmp(&other.rows.saturating_mul(self.share as u128))
                .then(other.segment.cmp(&self.segment))
        }
    }
    impl PartialOrd for Claim {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }

    let mut shares = vec![1; segments.len()];
    let mut claims: std::collections::BinaryHeap<Claim> = segments
        .iter()
        .enumerate()
        .filter(|(_, segment)| segment.runs() > 1)
        .map(|(segment, s)| Claim {
            rows: s.rows,
            share: 1,
            segment,
        })
        .collect();
    for _ in segments.len()..buckets {
        // There are at least `buckets` light runs, so a claim is left.
        let Some(mut claim) = claims.pop() else {
            break;
        };
        claim.share += 1;
        shares[claim.segment] = claim.share;
        if claim.share < segments[claim.segment].runs() {
            claims.push(claim);
        }
    }
    shares
}

/// Cuts `runs` into exactly `buckets` (at most `runs.len()`) buckets of
/// nearly equal rows and appends the last run of each, offset by `offset`,
/// to `ends`.
///
/// Greedy: cut once the current bucket is closer to the target size (rows
/// left / buckets left) than it would be with the next run added, but
/// always cut when the gaps left are as many as the cuts still needed, and
/// never when one bucket is left.
fn split_evenly<K>(runs: &[Run<'_, K>], buckets: usize, offset: usize, ends: &mut Vec<usize>) {
    let mut left = buckets as u128;
    let mut current = 0u128;
    let mut remaining: u128 = runs.iter().map(|run| run.count).sum();
    for (i, pair) in runs.windows(2).enumerate() {
        current += pair[0].count;
        if left == 1 {
            break;
        }
        let gaps_left = (runs.len() - 1 - i) as u128;
        // 2 * current + next > 2 * target, with target = remaining / left.
        let closer = (2 * current + pair[1].count).saturating_mul(left) > 2 * remaining;
        if gaps_left == left - 1 || closer {
            ends.push(offset + i);
            remaining -= current;
            current = 0;
            left -= 1;
        }
    }
    ends.push(offset + runs.len() - 1);
}

/// [`Boundaries`] over byte-string keys (such as Arrow's row format) with a faster lookup: each
/// boundary's first 16 bytes are kept as a big-endian `u128`, so most comparisons of a binary
/// search are one integer comparison instead of a `memcmp` call.
///
/// Byte strings compare as their zero-padded 16-byte prefixes do whenever those differ (a
/// shorter string padded with zeros never sorts after a longer one it is a prefix of); only
/// equal prefixes fall back to comparing the whole strings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ByteBoundaries {
    /// The boundaries.
    inner: Boundaries<Vec<u8>>,
    /// The 16-byte prefix of every upper bound, in the same order.
    prefixes: Vec<u128>,
}

impl ByteBoundaries {
    /// The byte-key form of `boundaries`.
    #[must_use]
    pub fn new(boundaries: Boundaries<Vec<u8>>) -> Self {
        let prefixes = boundaries.uppers.iter().map(|k| prefix16(k)).collect();
        Self {
            inner: boundaries,
            prefixes,
        }
    }

    /// The number of buckets (as [`Boundaries::bucket_count`]).
    #[must_use]
    pub fn bucket_count(&self) -> u32 {
        self.inner.bucket_count()
    }

    /// The bucket of `key`, equal to [`Boundaries::bucket`] on the same boundaries.
    #[must_use]
    #[inline]
    pub fn bucket(&self, key: &[u8]) -> u32 {
        let prefix = prefix16(key);
        let uppers = &self.inner.uppers;
        let below = self.prefixes.partition_point(|p| *p < prefix);
        let equal_end = below + self.prefixes[below..].partition_point(|p| *p == prefix);
        // Uppers with the same prefix: compare them whole (they are sorted too).
        let tied = uppers.get(below..equal_end).map_or(0, |tied| {
            tied.partition_point(|upper| upper.as_slice() < key)
        });
        // At most uppers.len(), which fits in a u32 (see bucket_count).
        (below + tied) as u32
    }
}

/// The first 16 bytes of `key` as a big-endian integer, zero-padded.
#[inline]
fn prefix16(key: &[u8]) -> u128 {
    let mut bytes = [0u8; 16];
    let n = key.len().min(16);
    bytes[..n].copy_from_slice(&key[..n]);
    u128::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    mod byte_boundaries {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// The prefix lookup gives the same bucket as the plain binary search, for keys
            /// that share long prefixes, are prefixes of each other or end in zero bytes.
            #[test]
            fn same_bucket_as_boundaries(
                mut sample in proptest::collection::vec(
                    proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..24),
                    0..200,
                ),
                probes in proptest::collection::vec(
                    proptest::collection::vec(prop_oneof![Just(0u8), Just(1u8), any::<u8>()], 0..24),
                    1..100,
                ),
                buckets in 1u32..64,
            ) {
                sample.sort();
                let plain = Boundaries::from_sorted_sample(&sample, buckets);
                let fast = ByteBoundaries::new(plain.clone());
                prop_assert_eq!(fast.bucket_count(), plain.bucket_count());
                for key in probes.iter().chain(&sample) {
                    prop_assert_eq!(fast.bucket(key), plain.bucket(key));
                }
            }
        }
    }

    /// Sizes of the buckets that `keys` (sorted) fall into.
    fn sizes<K: Ord + Clone>(boundaries: &Boundaries<K>, keys: &[K]) -> Vec<usize> {
        let mut sizes = vec![0; boundaries.bucket_count() as usize];
        for key in keys {
            sizes[boundaries.bucket(key) as usize] += 1;
        }
        sizes
    }

    #[test]
    fn uniform_keys_split_evenly() {
        let keys: Vec<u32> = (0..1000).collect();
        let boundaries = Boundaries::from_sorted_sample(&keys, 10);
        assert_eq!(boundaries.bucket_count(), 10);
        assert_eq!(sizes(&boundaries, &keys), vec![100; 10]);
        assert_eq!(
            boundaries.uppers(),
            &[99, 199, 299, 399, 499, 599, 699, 799, 899]
        );
    }

    #[test]
    fn uneven_division_differs_by_at_most_one() {
        let keys: Vec<u32> = (0..1003).collect();
        let boundaries = Boundaries::from_sorted_sample(&keys, 7);
        let sizes = sizes(&boundaries, &keys);
        assert_eq!(sizes.len(), 7);
        let (min, max) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
        assert!(max - min <= 1, "{sizes:?}");
    }

    #[test]
    fn fewer_distinct_keys_than_buckets_gives_one_bucket_each() {
        let keys = [1, 1, 1, 2, 3, 3, 7];
        let boundaries = Boundaries::from_sorted_sample(&keys, 100);
        assert_eq!(boundaries.bucket_count(), 4);
        assert_eq!(boundaries.uppers(), &[1, 2, 3]);
        assert_eq!(boundaries.bucket(&0), 0);
        assert_eq!(boundaries.bucket(&5), 3);
        assert_eq!(boundaries.bucket(&8), 3);
    }

    #[test]
    fn degenerate_inputs_give_one_bucket() {
        let empty: Boundaries<u8> = Boundaries::from_sorted_sample(&[], 16);
        assert_eq!(empty.bucket_count(), 1);
        assert_eq!(empty.bucket(&9), 0);
        let constant = Boundaries::from_sorted_sample(&[5; 100], 16);
        assert_eq!(constant.bucket_count(), 1);
        let zero = Boundaries::from_sorted_sample(&[1, 2, 3], 0);
        assert_eq!(zero.bucket_count(), 1);
    }

    #[test]
    fn water_filling_finds_heavy_runs() {
        let counts = [1u128, 900, 1, 1, 50, 1];
        let keys = [0, 1, 2, 3, 4, 5];
        let runs: Vec<Run<'_, i32>> = keys
            .iter()
            .zip(counts)
            .map(|(key, count)| Run { key, count })
            .collect();
        let by_count = [1, 4, 0, 2, 3, 5];
        // 954 rows in 4 buckets: 900 is heavy, then 54 rows in 3 buckets:
        // 50 is heavy, then 4 rows in 2 buckets: 1 is not.
        assert_eq!(heavy_runs(&runs, &by_count, 4), 2);
        // At most buckets - 1 heavy runs.
        assert_eq!(heavy_runs(&runs, &by_count, 2), 1);
        assert_eq!(heavy_runs(&runs, &by_count, 1), 0);
        // With 900 and 50 apart, three light segments would need three of
        // the two buckets left, so 50 rejoins the light runs:
        // [1] [900] [1, 1] [50, 1].
        assert_eq!(cut(&runs, 4), [0, 1, 3]);
        // [1] [900] [1, 1, 50, 1].
        assert_eq!(cut(&runs, 3), [0, 1]);
        // Six buckets: one per run.
        assert_eq!(cut(&runs, 6), [0, 1, 2, 3, 4]);
    }

    #[test]
    fn spread_fills_the_axis() {
        assert_eq!(spread(0, 4, 8), 0);
        assert_eq!(spread(1, 4, 8), 64);
        assert_eq!(spread(3, 4, 8), 192);
        assert_eq!(spread(0, 1, 32), 0);
        assert_eq!(spread(6, 7, 32), (6u64 * (1 << 32) / 7) as u32);
        assert_eq!(spread(u32::MAX - 1, u32::MAX, 32), u32::MAX - 1);
        // More buckets than cells: monotone, shared coordinates.
        assert_eq!(spread(5, 10, 2), 2);
        // Out-of-range inputs are clamped, not a panic.
        assert_eq!(spread(9, 4, 40), spread(3, 4, 32));
        assert_eq!(spread(1, 0, 8), 0);
    }

    #[test]
    fn float_keys_follow_total_order() {
        let values = [
            f64::NEG_INFINITY,
            f64::MIN,
            -1.5,
            -f64::MIN_POSITIVE,
            -0.0,
            f64::MIN_POSITIVE,
            1.0,
            f64::MAX,
            f64::INFINITY,
            f64::NAN,
        ];
        for pair in values.windows(2) {
            assert!(
                f64_total_key(pair[0]) < f64_total_key(pair[1]) || pair[0] == pair[1],
                "{pair:?}"
            );
        }
        assert_eq!(f64_total_key(-0.0), f64_total_key(0.0));
        assert_eq!(f64_total_key(-f64::NAN), u64::MAX);
        assert_eq!(f64_total_key(f64::NAN), u64::MAX);
    }

    #[test]
    fn integer_keys_preserve_order() {
        let values = [i64::MIN, -2, -1, 0, 1, i64::MAX];
        for pair in values.windows(2) {
            assert!(i64_key(pair[0]) < i64_key(pair[1]));
        }
        assert_eq!(i64_key(i64::MIN), 0);
        assert_eq!(i64_key(i64::MAX), u64::MAX);
        let values = [i128::MIN, -1, 0, 1, i128::MAX];
        for pair in values.windows(2) {
            assert!(i128_key(pair[0]) < i128_key(pair[1]));
        }
    }
}
