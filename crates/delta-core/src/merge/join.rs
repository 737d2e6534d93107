//! The equi-join at the heart of MERGE: an index of the source's key rows, probed by batches of
//! target rows. Pure: no I/O, no async.
//!
//! Keys are encoded with arrow's row format (one byte string per row, equal exactly when every
//! key column is equal), after both sides were cast to one common type and floats normalized
//! (every NaN equal, `-0.0 = 0.0`, as Spark compares). A row with a NULL in any key column never
//! matches (SQL equality). The index is a map from a 64-bit hash of the key bytes to the first
//! source row with that hash plus a `next` chain through the source rows, so duplicate keys and
//! hash collisions are handled alike (collisions are resolved by comparing the key bytes).
//! Memory: the encoded keys, 16 bytes per distinct hash and 4 bytes per source row.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::buffer::{Buffer, NullBuffer, OffsetBuffer};
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, Rows, SortField};

use crate::Result;

/// The end of a chain in [`KeyIndex::next`].
const END: u32 = u32::MAX;

/// A hasher that passes a precomputed 64-bit hash through (the map's keys already are hashes).
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// A fast, deterministic hash of encoded key bytes (multiply-rotate over 8-byte words, then a
/// final avalanche so that the low bits the map uses depend on every byte).
fn hash_key(bytes: &[u8]) -> u64 {
    const K: u64 = 0x517c_c1b7_2722_0a95;
    let mut h: u64 = u64::try_from(bytes.len()).unwrap_or(0).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut word = [0u8; 8];
        word[..rest.len()].copy_from_slice(rest);
        h = (h.rotate_left(5) ^ u64::from_le_bytes(word)).wrapping_mul(K);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The word (of `words`, a power of two) and the two bits a hash sets in the Bloom filter.
fn filter_slot(hash: u64, words: usize) -> (usize, u64) {
    let word = usize::try_from(hash >> 32).unwrap_or(0) & (words - 1);
    let bits = (1u64 << (hash & 63)) | (1u64 << ((hash >> 6) & 63));
    (word, bits)
}

/// Rows whose key columns are all non-NULL (`None`: all rows).
fn valid_rows(keys: &[ArrayRef]) -> Option<NullBuffer> {
    keys.iter().fold(None, |acc: Option<NullBuffer>, k| {
        NullBuffer::union(acc.as_ref(), k.nulls())
    })
}

/// Bits of the blocked Bloom filter per indexed key (about 2% false positives).
const FILTER_BITS_PER_KEY: usize = 16;

/// An index of the source rows by key.
///
/// A blocked Bloom filter (two bits in one 64-bit word per key, 2 bytes per key) sits in
/// front of the map: most target rows match no source key, and the filter, unlike the map,
/// stays in the CPU cache, so a miss costs one cached word instead of a random memory access.
///
/// Large sources are split into two shards by one bit of the key hash (bit 56: not among the
/// bits the map's control bytes or the filter's word index use), built on two threads; a probe
/// looks into the one shard its hash names.
pub(crate) struct KeyIndex {
    converter: Option<RowConverter>,
    rows: KeyBytes,
    shards: Vec<Shard>,
}

/// The filter, heads and chains of the source rows whose hashes fall in one shard.
struct Shard {
    filter: Vec<u64>,
    heads: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
    /// The next source row with the same hash (indexed by source row; rows of other shards
    /// are never visited).
    next: Vec<u32>,
}

/// Sources of at least this many rows are indexed in two shards on two threads.
const SHARDED_ROWS: usize = 1 << 17;

/// The shard of a hash among `shards` (1 or 2).
fn shard_of(hash: u64, shards: usize) -> usize {
    usize::try_from(hash >> 56).unwrap_or(0) & (shards - 1)
}

impl Shard {
    /// The shard `shard` of `shards` over `rows` (`count` rows, `valid` masking NULL keys).
    fn build(
        rows: &KeyBytes,
        valid: Option<&NullBuffer>,
        count: u32,
        shard: usize,
        shards: usize,
    ) -> Self {
        let expected = (count as usize).div_ceil(shards);
        let mut heads: HashMap<u64, u32, BuildHasherDefault<PassThrough>> =
            HashMap::with_capacity_and_hasher(expected, BuildHasherDefault::default());
        let mut next = vec![END; count as usize];
        let words = (expected.max(1) * FILTER_BITS_PER_KEY / 64).next_power_of_two();
        let mut filter = vec![0u64; words];
        // Insert from the last row to the first so that every chain runs in source order.
        for row in (0..count).rev() {
            let i = row as usize;
            if valid.is_some_and(|v| v.is_null(i)) {
                continue;
            }
            let hash = hash_key(rows.get(i));
            if shard_of(hash, shards) != shard {
                continue;
            }
            let (word, bits) = filter_slot(hash, filter.len());
            filter[word] |= bits;
            let head = heads.entry(hash).or_insert(END);
            next[i] = *head;
            *head = row;
        }
        Self {
            filter,
            heads,
            next,
        }
    }
}

impl std::fmt::Debug for KeyIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyIndex")
            .field("rows", &self.rows.len())
            .field("hashes", &self.distinct_hashes())
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// Source-target row pairs with equal keys, in target row order, then source row order.
#[derive(Debug, Default)]
pub(crate) struct Pairs {
    /// The target row of each pair.
    pub(crate) target: Vec<u32>,
    /// The source row of each pair.
    pub(crate) source: Vec<u32>,
}

impl KeyIndex {
    /// Index the source rows by `keys` (one array per key column, all of one length, already of
    /// the common key types).
    ///
    /// # Errors
    /// [`crate::Error::Arrow`] when the row format cannot encode a key type;
    /// [`crate::Error::InvalidArgument`] for more than `u32::MAX - 1` source rows.
    pub(crate) fn build(keys: &[ArrayRef]) -> Result<Self> {
        let converter = if KeyBytes::is_direct(keys) {
            None
        } else {
            let fields = keys
                .iter()
                .map(|k| SortField::new(k.data_type().clone()))
                .collect();
            Some(RowConverter::new(fields)?)
        };
        let rows = KeyBytes::new(converter.as_ref(), keys)?;
        let count = keys.first().map_or(0, |k| k.len());
        let count_u32 = u32::try_from(count)
            .ok()
            .filter(|c| *c < END)
            .ok_or_else(|| {
                crate::Error::invalid("a MERGE source may hold at most 4 billion rows")
            })?;
        let valid = valid_rows(keys);
        let parallel = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let shards = if count >= SHARDED_ROWS && parallel > 1 {
            2
        } else {
            1
        };
        let shards = if shards == 1 {
            vec![Shard::build(&rows, valid.as_ref(), count_u32, 0, 1)]
        } else {
            let (rows, valid) = (&rows, valid.as_ref());
            std::thread::scope(|scope| {
                let threads: Vec<_> = (0..shards)
                    .map(|shard| {
                        scope.spawn(move || Shard::build(rows, valid, count_u32, shard, shards))
                    })
                    .collect();
                threads
                    .into_iter()
                    .map(|t| t.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                    .collect()
            })
        };
        Ok(Self {
            converter,
            rows,
            shards,
        })
    }

    /// How many distinct key hashes the index holds (a lower bound of the distinct keys).
    pub(crate) fn distinct_hashes(&self) -> usize {
        self.shards.iter().map(|s| s.heads.len()).sum()
    }

    /// The pairs of (target row, source row) whose keys are equal.
    ///
    /// # Errors
    /// [`crate::Error::Arrow`] when `keys` do not have the indexed types.
    pub(crate) fn probe(&self, keys: &[ArrayRef]) -> Result<Pairs> {
        let rows = KeyBytes::new(self.converter.as_ref(), keys)?;
        let valid = valid_rows(keys);
        let mut pairs = Pairs::default();
        for i in 0..rows.len() {
            if valid.as_ref().is_some_and(|v| v.is_null(i)) {
                continue;
            }
            let key = rows.get(i);
            let hash = hash_key(key);
            let shard = &self.shards[shard_of(hash, self.shards.len())];
            let (word, bits) = filter_slot(hash, shard.filter.len());
            if shard.filter[word] & bits != bits {
                continue;
            }
            let Some(&head) = shard.heads.get(&hash) else {
                continue;
            };
            let mut source = head;
            while source != END {
                let s = source as usize;
                if self.rows.get(s) == key {
                    pairs.target.push(u32::try_from(i).unwrap_or(END));
                    pairs.source.push(source);
                }
                source = shard.next[s];
            }
        }
        Ok(pairs)
    }
}

/// The bytes that identify each row's key: the values' own bytes for one string, binary or
/// fixed-width key column (no conversion, no copy), else arrow's row format.
enum KeyBytes {
    Rows(Rows),
    Variable(OffsetBuffer<i32>, Buffer),
    Fixed {
        values: Buffer,
        width: usize,
        rows: usize,
    },
}

impl KeyBytes {
    /// Whether one key column can be used as it is.
    fn is_direct(keys: &[ArrayRef]) -> bool {
        match keys {
            [key] => {
                matches!(key.data_type(), DataType::Utf8 | DataType::Binary)
                    || (key.data_type().is_primitive()
                        && key.data_type().primitive_width().is_some())
            }
            _ => false,
        }
    }

    fn new(converter: Option<&RowConverter>, keys: &[ArrayRef]) -> Result<Self> {
        if let Some(converter) = converter {
            return Ok(Self::Rows(converter.convert_columns(keys)?));
        }
        let [key] = keys else {
            return Err(crate::Error::invalid(
                "internal error: direct MERGE keys need one column",
            ));
        };
        Ok(match key.data_type() {
            DataType::Utf8 => {
                let strings = key.as_string::<i32>();
                Self::Variable(strings.offsets().clone(), strings.values().clone())
            }
            DataType::Binary => {
                let binary = key.as_binary::<i32>();
                Self::Variable(binary.offsets().clone(), binary.values().clone())
            }
            other => {
                let width = other.primitive_width().ok_or_else(|| {
                    crate::Error::invalid("internal error: a MERGE key is not fixed-width")
                })?;
                let data = key.to_data();
                let buffer = data.buffers().first().cloned().ok_or_else(|| {
                    crate::Error::invalid("internal error: a MERGE key has no values")
                })?;
                Self::Fixed {
                    values: buffer.slice_with_length(data.offset() * width, key.len() * width),
                    width,
                    rows: key.len(),
                }
            }
        })
    }

    fn len(&self) -> usize {
        match self {
            Self::Rows(rows) => rows.num_rows(),
            Self::Variable(offsets, _) => offsets.len() - 1,
            Self::Fixed { rows, .. } => *rows,
        }
    }

    fn get(&self, i: usize) -> &[u8] {
        match self {
            Self::Rows(rows) => rows.row(i).data(),
            Self::Variable(offsets, values) => {
                let start = usize::try_from(offsets[i]).unwrap_or(0);
                let end = usize::try_from(offsets[i + 1]).unwrap_or(0);
                &values[start..end]
            }
            Self::Fixed { values, width, .. } => &values[i * width..(i + 1) * width],
        }
    }
}

/// The type both sides of a key are compared in, or `None` when they cannot be compared
/// without an explicit `CAST` (Spark's equality widens numbers; strings of any flavour compare).
pub(crate) fn common_key_type(left: &DataType, right: &DataType) -> Option<DataType> {
    use DataType as T;
    if left == right {
        return Some(left.clone());
    }
    let is_integer = |t: &T| t.is_integer();
    let is_float = |t: &T| matches!(t, T::Float16 | T::Float32 | T::Float64);
    let is_string = |t: &T| matches!(t, T::Utf8 | T::LargeUtf8 | T::Utf8View);
    let is_binary = |t: &T| matches!(t, T::Binary | T::LargeBinary | T::BinaryView);
    if is_integer(left) && is_integer(right) {
        return Some(T::Int64);
    }
    if (is_integer(left) || is_float(left)) && (is_integer(right) || is_float(right)) {
        return Some(T::Float64);
    }
    if is_string(left) && is_string(right) {
        return Some(T::Utf8);
    }
    if is_binary(left) && is_binary(right) {
        return Some(T::Binary);
    }
    None
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Float64Array, Int64Array, StringArray};

    use super::*;

    fn ints(values: &[Option<i64>]) -> ArrayRef {
        Arc::new(Int64Array::from(values.to_vec()))
    }

    #[test]
    fn probe_finds_every_duplicate_in_source_order_and_skips_nulls() {
        let source = [ints(&[Some(1), Some(2), Some(1), None, Some(3)])];
        let index = KeyIndex::build(&source).unwrap();
        let pairs = index
            .probe(&[ints(&[Some(1), None, Some(3), Some(9)])])
            .unwrap();
        assert_eq!(pairs.target, vec![0, 0, 2]);
        assert_eq!(pairs.source, vec![0, 2, 4]);
        assert_eq!(index.distinct_hashes(), 3);
    }

    #[test]
    fn a_sharded_index_finds_what_one_shard_finds() {
        // Enough rows for two shards, with duplicates and NULLs.
        let n = SHARDED_ROWS as i64 + 1000;
        let source: Vec<Option<i64>> = (0..n)
            .map(|i| (i % 97 != 0).then_some(i % (n - 500)))
            .collect();
        let probe: Vec<Option<i64>> = (0..5000).map(|i| Some(i * 41 % (n + 300))).collect();
        let index = KeyIndex::build(&[ints(&source)]).unwrap();
        assert!(
            index.shards.len() > 1
                || std::thread::available_parallelism().map_or(1, |p| p.get()) == 1
        );
        let got = index.probe(&[ints(&probe)]).unwrap();
        // The pairs a plain scan finds, in target order then source order.
        let mut positions: std::collections::HashMap<i64, Vec<u32>> = Default::default();
        for (s, value) in source.iter().enumerate() {
            if let Some(v) = value {
                positions.entry(*v).or_default().push(s as u32);
            }
        }
        let (mut target, mut src) = (Vec::new(), Vec::new());
        for (t, key) in probe.iter().enumerate() {
            for s in key.and_then(|k| positions.get(&k)).into_iter().flatten() {
                target.push(t as u32);
                src.push(*s);
            }
        }
        assert!(!target.is_empty());
        assert_eq!(got.target, target);
        assert_eq!(got.source, src);
        let distinct: std::collections::HashSet<_> = source.iter().flatten().collect();
        assert_eq!(index.distinct_hashes(), distinct.len());
    }

    #[test]
    fn composite_keys_match_only_when_every_column_is_equal() {
        let a: ArrayRef = Arc::new(StringArray::from(vec!["x", "x", "y"]));
        let b = ints(&[Some(1), Some(2), Some(1)]);
        let index = KeyIndex::build(&[a, b]).unwrap();
        let ta: ArrayRef = Arc::new(StringArray::from(vec!["x", "y", "y"]));
        let tb = ints(&[Some(2), Some(2), Some(1)]);
        let pairs = index.probe(&[ta, tb]).unwrap();
        assert_eq!(pairs.target, vec![0, 2]);
        assert_eq!(pairs.source, vec![1, 2]);
    }

    #[test]
    fn normalized_floats_match_nan_and_signed_zero() {
        let normalize = |v: Vec<f64>| {
            crate::expression::normalize_floats(Arc::new(Float64Array::from(v)) as ArrayRef)
        };
        let index = KeyIndex::build(&[normalize(vec![f64::NAN, 0.0])]).unwrap();
        let pairs = index.probe(&[normalize(vec![-0.0, -f64::NAN])]).unwrap();
        assert_eq!(pairs.target, vec![0, 1]);
        assert_eq!(pairs.source, vec![1, 0]);
    }

    #[test]
    fn key_types_widen_like_spark_equality() {
        use DataType as T;
        assert_eq!(common_key_type(&T::Int32, &T::Int64), Some(T::Int64));
        assert_eq!(common_key_type(&T::Int32, &T::Float32), Some(T::Float64));
        assert_eq!(common_key_type(&T::LargeUtf8, &T::Utf8), Some(T::Utf8));
        assert_eq!(common_key_type(&T::Utf8, &T::Int64), None);
    }
}
