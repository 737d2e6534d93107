//! Per-file statistics: collecting `numRecords`, `minValues`, `maxValues` and `nullCount` while writing.
//!
//! A [`StatsCollector`] is fed the record batches of one data file and renders the `add.stats`
//! JSON string (PROTOCOL.md §8) the way Spark/Delta does:
//!
//! - **Which columns.** The first `delta.dataSkippingNumIndexedCols` (default 32, `-1` = all)
//!   leaf columns in schema order, depth-first through structs, partition columns left out; an
//!   array, a map or a variant counts as one leaf. If `delta.dataSkippingStatsColumns` is set,
//!   exactly the columns it names instead (a struct selects all its leaves).
//! - **Keys.** Physical names under column mapping; nested objects mirror structs.
//! - **`nullCount`** for every selected leaf. A field counts as NULL in a row where it or any
//!   enclosing struct is NULL (as Spark counts). Arrays and maps count NULLs of the column itself.
//! - **`minValues`/`maxValues`** only for types with an order Spark uses for skipping: integers,
//!   floats, decimals, dates, timestamps (with and without zone) and strings. Booleans, binary,
//!   arrays, maps and variants get `nullCount` only (Spark omits their bounds too).
//! - **Encodings.** Integers as JSON numbers; floats as shortest round-trip decimals (`f32`
//!   columns use the `f32` shortest form, like Java's `Float.toString`); decimals as exact JSON
//!   numbers with the scale's digits (`123.40`), rendered from the unscaled integer, never
//!   through `f64`; dates `YYYY-MM-DD`; timestamps `YYYY-MM-DDTHH:MM:SS.mmmZ` (UTC) and
//!   timestamp_ntz the same without `Z`, both truncated **down** to milliseconds (readers add
//!   999 µs to a maximum).
//! - **Floats.** NaN never enters a bound (if every non-NULL value is NaN there are no bounds).
//!   An infinite bound is left out (nothing is lost: `+∞` as a maximum or `-∞` as a minimum bounds
//!   nothing, and JSON has no spelling for it that every reader accepts). A zero minimum is
//!   written `-0.0` and a zero maximum `0.0`, so the bounds hold whether a reader orders `-0.0`
//!   before `0.0` (total order) or treats them as equal (IEEE).
//! - **Strings** are cut to `delta.dataSkippingStringPrefixLength` (default 32) characters. A
//!   cut minimum is the prefix (still `<=` every value). A cut maximum gets Spark's tie-breaker:
//!   scanning from the cut, the first character below `U+007F` is replaced by `U+007F`, else the
//!   first character below `U+10FFFF` by `U+10FFFF`, keeping everything before it; if no such
//!   character exists within twice the prefix length the maximum is left out. Strings compare by
//!   code point (= UTF-8 byte order), so the result is `>=` every value.
//! - **Dates and timestamps** outside years 0001–9999 are left out of the bounds (not every
//!   reader parses a signed or five-digit year).
//! - `tightBounds` is `true`: a freshly written file has exact bounds (up to the truncations
//!   above, which all widen).
//!
//! Bounds are computed per batch with Arrow's aggregate kernels and merged into owned scalars;
//! only the final string bounds are inspected character by character.

use std::fmt::{self, Write as _};

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray, RecordBatch};
use arrow::buffer::NullBuffer;
use arrow::compute::{
    cast, max, max_string, max_string_view, min, min_string, min_string_view, nullif,
};
use arrow::datatypes::{
    ArrowNumericType, DataType as ArrowType, Date32Type, Date64Type, Decimal32Type, Decimal64Type,
    Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
    i256,
};
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta};

use crate::action::Metadata;
use crate::schema::{ColumnMappingMode, DataType, PrimitiveType, StructField, StructType};
use crate::{Error, Result};

/// Table property: how many leaf columns get statistics (`-1` = all).
pub(crate) const NUM_INDEXED_COLS_KEY: &str = "delta.dataSkippingNumIndexedCols";
/// Table property: the comma-separated columns that get statistics (overrides the count).
pub(crate) const STATS_COLUMNS_KEY: &str = "delta.dataSkippingStatsColumns";
/// Table property: how many characters of a string bound are kept.
pub(crate) const STRING_PREFIX_LENGTH_KEY: &str = "delta.dataSkippingStringPrefixLength";
/// Default of [`NUM_INDEXED_COLS_KEY`] (Spark's).
pub(crate) const DEFAULT_NUM_INDEXED_COLS: i64 = 32;
/// Default of [`STRING_PREFIX_LENGTH_KEY`] (Spark's session default).
pub(crate) const DEFAULT_STRING_PREFIX_LENGTH: usize = 32;

/// The tie-breaker appended to a cut string maximum whose next character is below it.
const ASCII_TIE_BREAKER: char = '\u{7F}';
/// The tie-breaker appended to a cut string maximum otherwise: the largest code point.
const MAX_TIE_BREAKER: char = char::MAX;
/// Milliseconds per day.
const MILLIS_PER_DAY: i64 = 86_400_000;
/// The first and last years whose dates and timestamps are written as bounds.
const YEARS: std::ops::RangeInclusive<i32> = 1..=9999;

// ---------------------------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------------------------

/// Which columns get statistics and how strings are cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StatsConfig {
    /// How many leaf columns get statistics, in schema order (`-1` = all). Default 32.
    pub(crate) num_indexed_cols: i64,
    /// `delta.dataSkippingStatsColumns` split at top-level commas: logical column names, nested
    /// fields as `a.b`, parts optionally in backquotes (`` `a.b`.c ``). Overrides
    /// `num_indexed_cols` when set.
    pub(crate) stats_columns: Option<Vec<String>>,
    /// How many characters of a string bound are kept. Default 32.
    pub(crate) string_prefix_len: usize,
}

impl Default for StatsConfig {
    fn default() -> Self {
        Self {
            num_indexed_cols: DEFAULT_NUM_INDEXED_COLS,
            stats_columns: None,
            string_prefix_len: DEFAULT_STRING_PREFIX_LENGTH,
        }
    }
}

impl StatsConfig {
    /// The configuration of a table, from its properties. Unparsable values fall back to the
    /// defaults (with a warning) rather than fail a write; an empty
    /// `delta.dataSkippingStatsColumns` selects no columns.
    pub(crate) fn from_metadata(metadata: &Metadata) -> Self {
        let mut config = Self::default();
        if let Some(text) = metadata.property(NUM_INDEXED_COLS_KEY) {
            match text.trim().parse::<i64>() {
                Ok(count) if count >= -1 => config.num_indexed_cols = count,
                _ => tracing::warn!(
                    property = NUM_INDEXED_COLS_KEY,
                    value = text,
                    "ignoring invalid table property"
                ),
            }
        }
        if let Some(text) = metadata.property(STRING_PREFIX_LENGTH_KEY) {
            match text.trim().parse::<usize>() {
                Ok(length) => config.string_prefix_len = length,
                Err(_) => tracing::warn!(
                    property = STRING_PREFIX_LENGTH_KEY,
                    value = text,
                    "ignoring invalid table property"
                ),
            }
        }
        config.stats_columns = metadata
            .property(STATS_COLUMNS_KEY)
            .map(split_stats_columns);
        config
    }
}

/// Splits a `delta.dataSkippingStatsColumns` value at commas outside backquotes; entries are
/// trimmed and empty ones dropped.
fn split_stats_columns(text: &str) -> Vec<String> {
    let mut entries = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            // A doubled backquote inside quotes toggles twice: still inside.
            '`' => {
                quoted = !quoted;
                current.push(c);
            }
            ',' if !quoted => entries.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    entries.push(current);
    entries
        .into_iter()
        .map(|entry| entry.trim().to_string())
        .filter(|entry| !entry.is_empty())
        .collect()
}

/// Parses one stats column entry into its name parts: `a.b` → `[a, b]`, `` `a.b`.c `` →
/// `[a.b, c]`, ` ``a``b`` ` → ``[a`b]``.
fn parse_column_path(entry: &str) -> Result<Vec<String>> {
    let malformed = |why: &str| {
        Error::invalid(format!(
            "{STATS_COLUMNS_KEY}: malformed column name `{entry}`: {why}"
        ))
    };
    let mut parts = Vec::new();
    let mut current = String::new();
    let mut quoted_part = false;
    let mut chars = entry.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '`' => {
                loop {
                    match chars.next() {
                        None => return Err(malformed("unterminated backquote")),
                        Some('`') if chars.peek() == Some(&'`') => {
                            chars.next();
                            current.push('`');
                        }
                        Some('`') => break,
                        Some(other) => current.push(other),
                    }
                }
                quoted_part = true;
            }
            '.' => {
                if current.is_empty() && !quoted_part {
                    return Err(malformed("empty name part"));
                }
                parts.push(std::mem::take(&mut current));
                quoted_part = false;
            }
            _ => current.push(c),
        }
    }
    if current.is_empty() && !quoted_part {
        return Err(malformed("empty name part"));
    }
    parts.push(current);
    Ok(parts)
}

// ---------------------------------------------------------------------------------------------
// Collector
// ---------------------------------------------------------------------------------------------

/// Accumulates statistics for one data file, batch by batch.
///
/// After [`StatsCollector::update`] returned an error the collector may hold a partial batch and
/// should be discarded.
#[derive(Clone, Debug)]
pub(crate) struct StatsCollector {
    /// The selected columns, in schema order.
    columns: Vec<Node>,
    /// Rows seen so far.
    num_records: u64,
    /// Characters kept of string bounds.
    string_prefix_len: usize,
}

/// One selected column (or struct of selected columns).
#[derive(Clone, Debug)]
struct Node {
    /// The logical name: how the column is found in a batch.
    name: String,
    /// The key in the stats JSON: the physical name.
    key: String,
    /// The dotted logical path, for error messages.
    path: String,
    /// A struct of further columns, or a leaf.
    kind: NodeKind,
}

/// What a [`Node`] is.
#[derive(Clone, Debug)]
enum NodeKind {
    /// A struct; its selected fields (never empty).
    Struct(Vec<Node>),
    /// A leaf column.
    Leaf(Leaf),
}

/// The statistics of one leaf column.
#[derive(Clone, Debug)]
struct Leaf {
    /// The Delta type, for error messages.
    data_type: DataType,
    /// NULLs seen so far (including rows where an enclosing struct is NULL).
    null_count: u64,
    /// Bounds seen so far.
    bounds: Bounds,
}

/// The smallest and largest non-NULL value seen.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Range<T> {
    /// The smallest value.
    min: T,
    /// The largest value.
    max: T,
}

impl<T: PartialOrd + Copy> Range<T> {
    /// Widens `slot` to cover `other`.
    fn merge(slot: &mut Option<Self>, other: Option<Self>) {
        let Some(other) = other else {
            return;
        };
        *slot = Some(match *slot {
            None => other,
            Some(current) => Range {
                min: if other.min < current.min {
                    other.min
                } else {
                    current.min
                },
                max: if other.max > current.max {
                    other.max
                } else {
                    current.max
                },
            },
        });
    }
}

/// String bounds, cut so that memory stays bounded by the prefix length.
#[derive(Clone, Debug, PartialEq, Eq)]
struct StringRange {
    /// The first `prefix` characters of the smallest value (a prefix is `<=` the value, and
    /// cutting is monotone, so this is the cut of the true minimum).
    min: String,
    /// The first `2 × prefix` characters of the largest value: enough to place the tie-breaker.
    max: String,
    /// Whether `max` was cut (the largest value is longer).
    max_cut: bool,
}

impl StringRange {
    /// The bounds of one batch whose smallest and largest values are `min` and `max`.
    fn new(min: &str, max: &str, prefix_len: usize) -> Self {
        let (max_prefix, max_cut) = char_prefix(max, prefix_len.saturating_mul(2));
        Self {
            min: char_prefix(min, prefix_len).0.to_string(),
            max: max_prefix.to_string(),
            max_cut,
        }
    }

    /// Widens `slot` to cover `other`. Cutting is monotone, so the cut of the larger value is
    /// the larger `(prefix, was cut)` pair.
    fn merge(slot: &mut Option<Self>, other: Self) {
        let Some(current) = slot else {
            *slot = Some(other);
            return;
        };
        if other.min < current.min {
            current.min = other.min;
        }
        if (other.max.as_str(), other.max_cut) > (current.max.as_str(), current.max_cut) {
            current.max = other.max;
            current.max_cut = other.max_cut;
        }
    }

    /// The written maximum: exact if short enough, else cut with a tie-breaker (see the module
    /// docs); `None` when no tie-breaker fits within the kept characters.
    fn max_bound(&self, prefix_len: usize) -> Option<String> {
        for (at, c) in self.max.char_indices().skip(prefix_len) {
            let tie_breaker = if c < ASCII_TIE_BREAKER {
                ASCII_TIE_BREAKER
            } else if c < MAX_TIE_BREAKER {
                MAX_TIE_BREAKER
            } else {
                continue;
            };
            let mut bound = self.max.get(..at)?.to_string();
            bound.push(tie_breaker);
            return Some(bound);
        }
        // Nothing after the prefix but U+10FFFF: only the whole value itself bounds it.
        (!self.max_cut).then(|| self.max.clone())
    }
}

/// The first `n` characters of `text`, and whether anything was cut off.
fn char_prefix(text: &str, n: usize) -> (&str, bool) {
    match text.char_indices().nth(n) {
        Some((at, _)) => (text.get(..at).unwrap_or(text), true),
        None => (text, false),
    }
}

/// The bounds kept for one leaf; the variant is chosen by the column's Delta type.
#[derive(Clone, Debug)]
enum Bounds {
    /// No order used for skipping (boolean, binary, array, map, variant, void).
    NullCountOnly,
    /// byte, short, integer, long.
    Int(Option<Range<i128>>),
    /// float: NaN excluded.
    Float32(Option<Range<f32>>),
    /// double: NaN excluded.
    Float64(Option<Range<f64>>),
    /// decimal: unscaled values at the column's scale.
    Decimal {
        /// The column's scale.
        scale: u8,
        /// Unscaled bounds.
        range: Option<Range<i256>>,
    },
    /// date: days since 1970-01-01.
    Date(Option<Range<i64>>),
    /// timestamp / timestamp_ntz: milliseconds since the epoch, truncated down.
    Timestamp {
        /// Whether the type is timestamp_ntz (no `Z`).
        ntz: bool,
        /// Bounds in milliseconds.
        range: Option<Range<i64>>,
    },
    /// string.
    String(Option<StringRange>),
}

impl Bounds {
    /// Empty bounds for a leaf of `data_type`.
    fn for_type(data_type: &DataType) -> Self {
        let DataType::Primitive(primitive) = data_type else {
            return Self::NullCountOnly;
        };
        match primitive {
            PrimitiveType::Byte
            | PrimitiveType::Short
            | PrimitiveType::Integer
            | PrimitiveType::Long => Self::Int(None),
            PrimitiveType::Float => Self::Float32(None),
            PrimitiveType::Double => Self::Float64(None),
            PrimitiveType::Decimal { scale, .. } => Self::Decimal {
                scale: *scale,
                range: None,
            },
            PrimitiveType::Date => Self::Date(None),
            PrimitiveType::Timestamp => Self::Timestamp {
                ntz: false,
                range: None,
            },
            PrimitiveType::TimestampNtz => Self::Timestamp {
                ntz: true,
                range: None,
            },
            PrimitiveType::String => Self::String(None),
            PrimitiveType::Boolean
            | PrimitiveType::Binary
            | PrimitiveType::Void
            | PrimitiveType::Variant => Self::NullCountOnly,
        }
    }

    /// Widens the bounds to cover the non-NULL values of `array`, which must hold the column's
    /// type (dictionaries already decoded). `None` when the Arrow type does not fit.
    fn update(&mut self, array: &dyn Array, prefix_len: usize) -> Result<Option<()>> {
        match self {
            Self::NullCountOnly => {}
            Self::Int(range) => {
                let Some(found) = int_range(array) else {
                    return Ok(None);
                };
                Range::merge(range, found);
            }
            Self::Float32(range) => {
                let Some(values) = array.as_primitive_opt::<Float32Type>() else {
                    return Ok(None);
                };
                Range::merge(range, float_range(values)?);
            }
            Self::Float64(range) => {
                let Some(values) = array.as_primitive_opt::<Float64Type>() else {
                    return Ok(None);
                };
                Range::merge(range, float_range(values)?);
            }
            Self::Decimal { scale, range } => {
                let Some(found) = decimal_range(array, *scale) else {
                    return Ok(None);
                };
                Range::merge(range, found);
            }
            Self::Date(range) => {
                let found = match array.data_type() {
                    ArrowType::Date32 => primitive_range::<Date32Type>(array, i64::from),
                    ArrowType::Date64 => primitive_range::<Date64Type>(array, |millis| {
                        millis.div_euclid(MILLIS_PER_DAY)
                    }),
                    _ => return Ok(None),
                };
                Range::merge(range, found);
            }
            Self::Timestamp { range, .. } => {
                let ArrowType::Timestamp(unit, _) = array.data_type() else {
                    return Ok(None);
                };
                // Saturating keeps each side a bound; out-of-range values are not written.
                let found = match unit {
                    TimeUnit::Second => {
                        primitive_range::<TimestampSecondType>(array, |s| s.saturating_mul(1000))
                    }
                    TimeUnit::Millisecond => {
                        primitive_range::<TimestampMillisecondType>(array, |ms| ms)
                    }
                    TimeUnit::Microsecond => {
                        primitive_range::<TimestampMicrosecondType>(array, |us| us.div_euclid(1000))
                    }
                    TimeUnit::Nanosecond => {
                        primitive_range::<TimestampNanosecondType>(array, |ns| {
                            ns.div_euclid(1_000_000)
                        })
                    }
                };
                Range::merge(range, found);
            }
            Self::String(range) => {
                let extremes = match array.data_type() {
                    ArrowType::Utf8 => array
                        .as_string_opt::<i32>()
                        .map(|a| min_string(a).zip(max_string(a))),
                    ArrowType::LargeUtf8 => array
                        .as_string_opt::<i64>()
                        .map(|a| min_string(a).zip(max_string(a))),
                    ArrowType::Utf8View => array
                        .as_string_view_opt()
                        .map(|a| min_string_view(a).zip(max_string_view(a))),
                    _ => None,
                };
                let Some(extremes) = extremes else {
                    return Ok(None);
                };
                if let Some((lo, hi)) = extremes {
                    StringRange::merge(range, StringRange::new(lo, hi, prefix_len));
                }
            }
        }
        Ok(Some(()))
    }

    /// The JSON text of the minimum, if there is one to write.
    fn min_json(&self, prefix_len: usize) -> Option<String> {
        match self {
            Self::NullCountOnly => None,
            Self::Int(range) => range.map(|r| r.min.to_string()),
            Self::Float32(range) => float_json(range.as_ref()?.min, true),
            Self::Float64(range) => float_json(range.as_ref()?.min, true),
            Self::Decimal { scale, range } => Some(decimal_json(range.as_ref()?.min, *scale)),
            Self::Date(range) => date_json(range.as_ref()?.min),
            Self::Timestamp { ntz, range } => timestamp_json(range.as_ref()?.min, *ntz),
            Self::String(range) => {
                let min = range.as_ref()?.min.as_str();
                Some(json_string(char_prefix(min, prefix_len).0))
            }
        }
    }

    /// The JSON text of the maximum, if there is one to write.
    fn max_json(&self, prefix_len: usize) -> Option<String> {
        match self {
            Self::NullCountOnly => None,
            Self::Int(range) => range.map(|r| r.max.to_string()),
            Self::Float32(range) => float_json(range.as_ref()?.max, false),
            Self::Float64(range) => float_json(range.as_ref()?.max, false),
            Self::Decimal { scale, range } => Some(decimal_json(range.as_ref()?.max, *scale)),
            Self::Date(range) => date_json(range.as_ref()?.max),
            Self::Timestamp { ntz, range } => timestamp_json(range.as_ref()?.max, *ntz),
            Self::String(range) => Some(json_string(&range.as_ref()?.max_bound(prefix_len)?)),
        }
    }
}

/// How leaves are selected while building the tree.
enum Selection {
    /// The first leaves in schema order; `None` = all of them.
    First(Option<u64>),
    /// The leaves at or below these field index paths.
    Paths(Vec<Vec<usize>>),
}

impl Selection {
    /// Whether the leaf at `index_path` gets statistics (consuming one from a count).
    fn take(&mut self, index_path: &[usize]) -> bool {
        match self {
            Self::First(None) => true,
            Self::First(Some(0)) => false,
            Self::First(Some(remaining)) => {
                *remaining -= 1;
                true
            }
            Self::Paths(paths) => paths.iter().any(|path| index_path.starts_with(path)),
        }
    }

    /// Whether no further leaf can be selected.
    fn exhausted(&self) -> bool {
        matches!(self, Self::First(Some(0)))
    }
}

impl StatsCollector {
    /// A collector for files of a table with logical schema `schema`.
    ///
    /// `partition_columns` (logical names) get no statistics; keys are physical names under
    /// `mode` and nested objects mirror structs.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for `num_indexed_cols < -1` or a malformed entry in
    /// `stats_columns`. Entries naming no column (or a partition column) are ignored with a
    /// warning, as a column may have been dropped after the property was set.
    pub(crate) fn new(
        schema: &StructType,
        partition_columns: &[String],
        mode: ColumnMappingMode,
        config: &StatsConfig,
    ) -> Result<Self> {
        let is_partition = |name: &str| {
            partition_columns
                .iter()
                .any(|p| p == name || p.to_lowercase() == name.to_lowercase())
        };
        let mut selection = match &config.stats_columns {
            Some(entries) => {
                let mut paths = Vec::new();
                for entry in entries {
                    let parts = parse_column_path(entry)?;
                    match resolve_path(schema, &parts) {
                        Some(path) => {
                            let top = path.first().and_then(|&i| schema.fields.get(i));
                            if top.is_some_and(|field| is_partition(&field.name)) {
                                tracing::warn!(
                                    column = entry.as_str(),
                                    "{STATS_COLUMNS_KEY} names a partition column; ignored"
                                );
                            } else {
                                paths.push(path);
                            }
                        }
                        None => tracing::warn!(
                            column = entry.as_str(),
                            "{STATS_COLUMNS_KEY} names no column of the schema; ignored"
                        ),
                    }
                }
                Selection::Paths(paths)
            }
            None => match config.num_indexed_cols {
                -1 => Selection::First(None),
                count => Selection::First(Some(u64::try_from(count).map_err(|_| {
                    Error::invalid(format!(
                        "{NUM_INDEXED_COLS_KEY} must be -1 or a non-negative count, got {count}"
                    ))
                })?)),
            },
        };
        let top: Vec<(usize, &StructField)> = schema
            .fields
            .iter()
            .enumerate()
            .filter(|(_, field)| !is_partition(&field.name))
            .collect();
        let columns = build_nodes(&top, mode, "", &mut Vec::new(), &mut selection);
        Ok(Self {
            columns,
            num_records: 0,
            string_prefix_len: config.string_prefix_len,
        })
    }

    /// Adds the rows of `batch`: logical column names and logical Arrow types, data columns only,
    /// any subset and order of columns (resolved by name: exact, else case-insensitive).
    /// Columns missing from the batch count as all NULL; extra columns are ignored.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when a selected column has an Arrow type that does not fit its
    /// Delta type (a struct column that is not a struct, a string column that is not a string,
    /// ...); [`Error::Arrow`] when decoding a dictionary fails.
    pub(crate) fn update(&mut self, batch: &RecordBatch) -> Result<()> {
        let rows = batch.num_rows();
        let schema = batch.schema();
        for node in &mut self.columns {
            let column = find_by_name(
                schema.fields().iter().map(|f| f.name().as_str()),
                &node.name,
            )
            .and_then(|i| batch.columns().get(i));
            update_node(node, column, None, rows, self.string_prefix_len)?;
        }
        self.num_records = self.num_records.saturating_add(count_u64(rows));
        Ok(())
    }

    /// Rows seen so far.
    pub(crate) fn num_records(&self) -> u64 {
        self.num_records
    }

    /// The `stats` JSON string for an `add`:
    /// `{"numRecords":N,"minValues":{..},"maxValues":{..},"nullCount":{..},"tightBounds":true}`.
    ///
    /// # Errors
    ///
    /// None at present; the signature leaves room for checks.
    pub(crate) fn finish(&self) -> Result<String> {
        let prefix_len = self.string_prefix_len;
        let mut out = String::with_capacity(64 + 128 * self.columns.len());
        out.push_str("{\"numRecords\":");
        out.push_str(&self.num_records().to_string());
        out.push_str(",\"minValues\":");
        out.push_str(
            &section(&self.columns, &|leaf| leaf.bounds.min_json(prefix_len))
                .unwrap_or_else(|| "{}".into()),
        );
        out.push_str(",\"maxValues\":");
        out.push_str(
            &section(&self.columns, &|leaf| leaf.bounds.max_json(prefix_len))
                .unwrap_or_else(|| "{}".into()),
        );
        out.push_str(",\"nullCount\":");
        out.push_str(
            &section(&self.columns, &|leaf| Some(leaf.null_count.to_string()))
                .unwrap_or_else(|| "{}".into()),
        );
        out.push_str(",\"tightBounds\":true}");
        Ok(out)
    }
}

/// The JSON object of one stats section over `nodes`, or `None` if it would be empty.
fn section(nodes: &[Node], value: &dyn Fn(&Leaf) -> Option<String>) -> Option<String> {
    let mut out = String::new();
    for node in nodes {
        let text = match &node.kind {
            NodeKind::Leaf(leaf) => value(leaf),
            NodeKind::Struct(children) => section(children, value),
        };
        if let Some(text) = text {
            out.push(if out.is_empty() { '{' } else { ',' });
            out.push_str(&json_string(&node.key));
            out.push(':');
            out.push_str(&text);
        }
    }
    if out.is_empty() {
        return None;
    }
    out.push('}');
    Some(out)
}

/// Builds the nodes for `fields` (each with its index in the enclosing struct), keeping the
/// selected leaves and the structs that contain one.
fn build_nodes(
    fields: &[(usize, &StructField)],
    mode: ColumnMappingMode,
    parent_path: &str,
    index_path: &mut Vec<usize>,
    selection: &mut Selection,
) -> Vec<Node> {
    let mut nodes = Vec::new();
    for &(index, field) in fields {
        if selection.exhausted() {
            break;
        }
        index_path.push(index);
        let path = if parent_path.is_empty() {
            field.name.clone()
        } else {
            format!("{parent_path}.{}", field.name)
        };
        let kind = match &field.data_type {
            DataType::Struct(inner) => {
                let children: Vec<(usize, &StructField)> =
                    inner.fields.iter().enumerate().collect();
                let children = build_nodes(&children, mode, &path, index_path, selection);
                (!children.is_empty()).then_some(NodeKind::Struct(children))
            }
            data_type => selection.take(index_path).then(|| {
                NodeKind::Leaf(Leaf {
                    data_type: data_type.clone(),
                    null_count: 0,
                    bounds: Bounds::for_type(data_type),
                })
            }),
        };
        index_path.pop();
        if let Some(kind) = kind {
            nodes.push(Node {
                name: field.name.clone(),
                key: field.physical_name(mode).to_string(),
                path,
                kind,
            });
        }
    }
    nodes
}

/// The field indices of the logical path `parts` (looked up like [`StructType::field`]).
fn resolve_path(schema: &StructType, parts: &[String]) -> Option<Vec<usize>> {
    let mut indices = Vec::with_capacity(parts.len());
    let mut current = schema;
    for (i, part) in parts.iter().enumerate() {
        let index = current.index_of(part)?;
        indices.push(index);
        if i + 1 < parts.len() {
            match &current.fields.get(index)?.data_type {
                DataType::Struct(inner) => current = inner,
                _ => return None,
            }
        }
    }
    Some(indices)
}

/// The position of `name` among `names`: exact match first, then case-insensitive.
fn find_by_name<'a>(names: impl Iterator<Item = &'a str> + Clone, name: &str) -> Option<usize> {
    names.clone().position(|n| n == name).or_else(|| {
        let lower = name.to_lowercase();
        names.clone().position(|n| n.to_lowercase() == lower)
    })
}

/// Adds one batch column (or `None`: missing, all NULL) to `node`. `parent` holds the NULLs of
/// the enclosing structs.
fn update_node(
    node: &mut Node,
    column: Option<&ArrayRef>,
    parent: Option<&NullBuffer>,
    rows: usize,
    prefix_len: usize,
) -> Result<()> {
    if let Some(column) = column
        && column.len() != rows
    {
        return Err(Error::invalid(format!(
            "statistics: column `{}` has {} rows, the batch {rows}",
            node.path,
            column.len()
        )));
    }
    match &mut node.kind {
        NodeKind::Struct(children) => {
            let Some(column) = column else {
                for child in children {
                    update_node(child, None, None, rows, prefix_len)?;
                }
                return Ok(());
            };
            let Some(array) = column.as_struct_opt() else {
                return Err(Error::invalid(format!(
                    "statistics: column `{}` is a struct but the batch has type {}",
                    node.path,
                    column.data_type()
                )));
            };
            let nulls = NullBuffer::union(parent, array.logical_nulls().as_ref());
            for child in children {
                let names = array.fields().iter().map(|f| f.name().as_str());
                let child_column =
                    find_by_name(names, &child.name).and_then(|i| array.columns().get(i));
                update_node(child, child_column, nulls.as_ref(), rows, prefix_len)?;
            }
            Ok(())
        }
        NodeKind::Leaf(leaf) => {
            let Some(column) = column else {
                leaf.null_count = leaf.null_count.saturating_add(count_u64(rows));
                return Ok(());
            };
            let nulls = NullBuffer::union(parent, column.logical_nulls().as_ref());
            let null_count = nulls.as_ref().map_or(0, NullBuffer::null_count);
            leaf.null_count = leaf.null_count.saturating_add(count_u64(null_count));
            if matches!(leaf.bounds, Bounds::NullCountOnly) || null_count == rows {
                return Ok(());
            }
            let mut values = decode(column)?;
            if let Some(parent) = parent
                && parent.null_count() > 0
            {
                // Values under a NULL struct are not values of the field.
                values = nullif(&values, &BooleanArray::new(!parent.inner(), None))?;
            }
            match leaf.bounds.update(&values, prefix_len)? {
                Some(()) => Ok(()),
                None => Err(Error::invalid(format!(
                    "statistics: column `{}` of type {} cannot hold Arrow type {}",
                    node.path,
                    type_name(&leaf.data_type),
                    values.data_type()
                ))),
            }
        }
    }
}

/// A short name of a Delta type for messages.
fn type_name(data_type: &DataType) -> String {
    match data_type {
        DataType::Primitive(p) => p.to_string(),
        DataType::Struct(_) => "struct".into(),
        DataType::Array(_) => "array".into(),
        DataType::Map(_) => "map".into(),
    }
}

/// `array` with dictionary and run-end encodings decoded to their value type.
fn decode(array: &ArrayRef) -> Result<ArrayRef> {
    match array.data_type() {
        ArrowType::Dictionary(_, value_type) => Ok(cast(array, value_type)?),
        ArrowType::RunEndEncoded(_, values) => Ok(cast(array, values.data_type())?),
        _ => Ok(array.clone()),
    }
}

/// A count as `u64` (saturating; `usize` is at most 64 bits on supported targets).
fn count_u64(count: usize) -> u64 {
    u64::try_from(count).unwrap_or(u64::MAX)
}

// ---------------------------------------------------------------------------------------------
// Per-batch bounds
// ---------------------------------------------------------------------------------------------

/// The extremes of a primitive array of type `T`, mapped by `convert` (which must be monotone);
/// `None` when there are no non-NULL values or the array is not of type `T`.
fn primitive_range<T: ArrowNumericType>(
    array: &dyn Array,
    convert: impl Fn(T::Native) -> i64,
) -> Option<Range<i64>> {
    let values = array.as_primitive_opt::<T>()?;
    Some(Range {
        min: convert(min(values)?),
        max: convert(max(values)?),
    })
}

/// The extremes of an integer array of any width: `None` if `array` is not an integer array,
/// `Some(None)` if it has no non-NULL values.
fn int_range(array: &dyn Array) -> Option<Option<Range<i128>>> {
    /// Extremes of one integer type.
    fn of<T: ArrowNumericType>(array: &dyn Array) -> Option<Option<Range<i128>>>
    where
        i128: From<T::Native>,
    {
        let values = array.as_primitive_opt::<T>()?;
        Some(min(values).zip(max(values)).map(|(lo, hi)| Range {
            min: i128::from(lo),
            max: i128::from(hi),
        }))
    }
    match array.data_type() {
        ArrowType::Int8 => of::<Int8Type>(array),
        ArrowType::Int16 => of::<Int16Type>(array),
        ArrowType::Int32 => of::<Int32Type>(array),
        ArrowType::Int64 => of::<Int64Type>(array),
        ArrowType::UInt8 => of::<UInt8Type>(array),
        ArrowType::UInt16 => of::<UInt16Type>(array),
        ArrowType::UInt32 => of::<UInt32Type>(array),
        ArrowType::UInt64 => of::<UInt64Type>(array),
        _ => None,
    }
}

/// The extremes of a decimal array at scale `scale`: `None` if `array` is not a decimal array
/// of that scale, `Some(None)` if it has no non-NULL values.
fn decimal_range(array: &dyn Array, scale: u8) -> Option<Option<Range<i256>>> {
    /// Extremes of one decimal width.
    fn of<T: ArrowNumericType>(
        array: &dyn Array,
        widen: impl Fn(T::Native) -> i256,
    ) -> Option<Option<Range<i256>>> {
        let values = array.as_primitive_opt::<T>()?;
        Some(min(values).zip(max(values)).map(|(lo, hi)| Range {
            min: widen(lo),
            max: widen(hi),
        }))
    }
    let array_scale = match array.data_type() {
        ArrowType::Decimal32(_, s)
        | ArrowType::Decimal64(_, s)
        | ArrowType::Decimal128(_, s)
        | ArrowType::Decimal256(_, s) => *s,
        _ => return None,
    };
    if i8::try_from(scale).ok()? != array_scale {
        return None;
    }
    match array.data_type() {
        ArrowType::Decimal32(..) => of::<Decimal32Type>(array, |v| i256::from_i128(i128::from(v))),
        ArrowType::Decimal64(..) => of::<Decimal64Type>(array, |v| i256::from_i128(i128::from(v))),
        ArrowType::Decimal128(..) => of::<Decimal128Type>(array, i256::from_i128),
        ArrowType::Decimal256(..) => of::<Decimal256Type>(array, |v| v),
        _ => None,
    }
}

/// A float type whose bounds are collected.
trait StatFloat: Copy + PartialOrd + fmt::Display + fmt::LowerExp {
    /// Whether the value is NaN.
    fn nan(self) -> bool;
    /// The value as an `f64` (exact).
    fn wide(self) -> f64;
}

impl StatFloat for f32 {
    fn nan(self) -> bool {
        self.is_nan()
    }
    fn wide(self) -> f64 {
        f64::from(self)
    }
}

impl StatFloat for f64 {
    fn nan(self) -> bool {
        self.is_nan()
    }
    fn wide(self) -> f64 {
        self
    }
}

/// The extremes of a float array ignoring NaN (`None` if no non-NULL, non-NaN value).
fn float_range<T>(values: &PrimitiveArray<T>) -> Result<Option<Range<T::Native>>>
where
    T: ArrowNumericType,
    T::Native: StatFloat,
{
    let (Some(lo), Some(hi)) = (min(values), max(values)) else {
        return Ok(None);
    };
    if !lo.nan() && !hi.nan() {
        return Ok(Some(Range { min: lo, max: hi }));
    }
    // Arrow orders NaN above (and -NaN below) every number: mask NaNs and aggregate again.
    let is_nan = BooleanArray::from_unary(values, StatFloat::nan);
    let cleaned = nullif(values, &is_nan)?;
    let Some(cleaned) = cleaned.as_primitive_opt::<T>() else {
        return Ok(None);
    };
    Ok(min(cleaned)
        .zip(max(cleaned))
        .map(|(lo, hi)| Range { min: lo, max: hi }))
}

// ---------------------------------------------------------------------------------------------
// JSON rendering
// ---------------------------------------------------------------------------------------------

/// `text` as a JSON string literal.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                // Writing into a String cannot fail.
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A finite float bound as a JSON number with its type's shortest round-trip digits; `None` for
/// NaN and infinities. A zero minimum is written `-0.0`, a zero maximum `0.0`.
fn float_json<T: StatFloat>(value: T, is_min: bool) -> Option<String> {
    let wide = value.wide();
    if !wide.is_finite() {
        return None;
    }
    if wide == 0.0 {
        return Some(if is_min { "-0.0" } else { "0.0" }.into());
    }
    let abs = wide.abs();
    let mut text = if (1e-5..1e16).contains(&abs) {
        value.to_string()
    } else {
        format!("{value:e}")
    };
    if !text.contains(['.', 'e']) {
        text.push_str(".0");
    }
    Some(text)
}

/// An unscaled decimal at `scale` as an exact JSON number with `scale` fraction digits.
fn decimal_json(unscaled: i256, scale: u8) -> String {
    let text = unscaled.to_string();
    let (sign, digits) = match text.strip_prefix('-') {
        Some(digits) => ("-", digits),
        None => ("", text.as_str()),
    };
    let scale = usize::from(scale);
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let split = padded.len() - scale;
    let (int_part, frac_part) = (padded.get(..split), padded.get(split..));
    match (int_part, frac_part) {
        (Some(int_part), Some(frac_part)) => format!("{sign}{int_part}.{frac_part}"),
        // Unreachable: the digits are ASCII and at least `scale + 1` long.
        _ => format!("{sign}{padded}e-{scale}"),
    }
}

/// A date bound `YYYY-MM-DD`, or `None` outside years 0001–9999.
fn date_json(days: i64) -> Option<String> {
    let date = NaiveDate::default().checked_add_signed(TimeDelta::try_days(days)?)?;
    YEARS
        .contains(&date.year())
        .then(|| format!("\"{}\"", date.format("%Y-%m-%d")))
}

/// A timestamp bound at millisecond precision: `…Z` (UTC) or without zone (`ntz`); `None`
/// outside years 0001–9999.
fn timestamp_json(millis: i64, ntz: bool) -> Option<String> {
    let instant = DateTime::from_timestamp_millis(millis)?;
    if !YEARS.contains(&instant.year()) {
        return None;
    }
    let format = if ntz {
        "%Y-%m-%dT%H:%M:%S%.3f"
    } else {
        "%Y-%m-%dT%H:%M:%S%.3fZ"
    };
    Some(format!("\"{}\"", instant.format(format)))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::PathBuf;
    use std::sync::Arc;

    use arrow::array::{
        BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray, Float32Array,
        Float64Array, Int8Array, Int16Array, Int32Array, Int32Builder, Int64Array,
        LargeStringArray, ListArray, MapBuilder, StringArray, StringBuilder, StringViewArray,
        StructArray, TimestampMicrosecondArray, TimestampNanosecondArray, TimestampSecondArray,
    };
    use arrow::datatypes::{Field, Fields, Schema};
    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::scan::prune::{FileStats, StatsColumn};
    use crate::schema::{ArrayType, COLUMN_MAPPING_PHYSICAL_NAME_KEY, MapType};

    // -----------------------------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------------------------

    /// A nullable field with physical name `col-<name>`.
    fn field(name: &str, data_type: impl Into<DataType>) -> StructField {
        StructField::new(name, data_type, true)
            .with_metadata_entry(COLUMN_MAPPING_PHYSICAL_NAME_KEY, format!("col-{name}"))
    }

    fn prim(p: PrimitiveType) -> DataType {
        DataType::Primitive(p)
    }

    /// A batch of named columns (all nullable).
    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect();
        let arrays = columns.into_iter().map(|(_, array)| array).collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("batch")
    }

    /// A struct array of named children with optional struct-level validity.
    fn struct_array(children: Vec<(&str, ArrayRef)>, validity: Option<Vec<bool>>) -> ArrayRef {
        let fields: Fields = children
            .iter()
            .map(|(name, array)| Field::new(*name, array.data_type().clone(), true))
            .collect();
        let arrays = children.into_iter().map(|(_, array)| array).collect();
        Arc::new(
            StructArray::try_new(fields, arrays, validity.map(NullBuffer::from))
                .expect("struct array"),
        )
    }

    /// Runs a collector over `batches` and returns the stats string.
    fn stats_text(
        schema: &StructType,
        partition_columns: &[String],
        mode: ColumnMappingMode,
        config: &StatsConfig,
        batches: &[RecordBatch],
    ) -> String {
        let mut collector =
            StatsCollector::new(schema, partition_columns, mode, config).expect("collector");
        for b in batches {
            collector.update(b).expect("update");
        }
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        assert_eq!(collector.num_records(), count_u64(rows));
        collector.finish().expect("finish")
    }

    /// Like [`stats_text`] with defaults and no column mapping, parsed.
    fn stats(schema: &StructType, batches: &[RecordBatch]) -> Value {
        let text = stats_text(
            schema,
            &[],
            ColumnMappingMode::None,
            &StatsConfig::default(),
            batches,
        );
        serde_json::from_str(&text).expect("stats are JSON")
    }

    /// The reader's view of every primitive leaf of `schema`.
    fn stats_columns(schema: &StructType, mode: ColumnMappingMode) -> Vec<StatsColumn> {
        fn walk(
            fields: &[StructField],
            mode: ColumnMappingMode,
            logical: &str,
            physical: &[String],
            out: &mut Vec<StatsColumn>,
        ) {
            for f in fields {
                let name = if logical.is_empty() {
                    f.name.clone()
                } else {
                    format!("{logical}.{}", f.name)
                };
                let mut path = physical.to_vec();
                path.push(f.physical_name(mode).to_string());
                match &f.data_type {
                    DataType::Struct(s) => walk(&s.fields, mode, &name, &path, out),
                    DataType::Primitive(p) => out.push(StatsColumn {
                        logical_name: name,
                        physical_path: path,
                        data_type: p.to_arrow().expect("arrow type"),
                    }),
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&schema.fields, mode, "", &[], &mut out);
        out
    }

    // -----------------------------------------------------------------------------------------
    // Every type, exact JSON, reader round trip
    // -----------------------------------------------------------------------------------------

    fn all_types_schema() -> StructType {
        StructType::new([
            field("byte", prim(PrimitiveType::Byte)),
            field("short", prim(PrimitiveType::Short)),
            field("int", prim(PrimitiveType::Integer)),
            field("long", prim(PrimitiveType::Long)),
            field("float", prim(PrimitiveType::Float)),
            field("double", prim(PrimitiveType::Double)),
            field("date", prim(PrimitiveType::Date)),
            field("ts", prim(PrimitiveType::Timestamp)),
            field("ntz", prim(PrimitiveType::TimestampNtz)),
            field("str", prim(PrimitiveType::String)),
            field(
                "dec",
                prim(PrimitiveType::Decimal {
                    precision: 10,
                    scale: 2,
                }),
            ),
            field("bool", prim(PrimitiveType::Boolean)),
            field("bin", prim(PrimitiveType::Binary)),
            field("arr", ArrayType::new(DataType::INTEGER, true)),
            field(
                "map",
                MapType::new(DataType::STRING, DataType::INTEGER, true),
            ),
            field(
                "nested",
                StructType::new([
                    field("i", DataType::INTEGER),
                    field("s", DataType::STRING),
                    field("d", DataType::DOUBLE),
                ]),
            ),
        ])
    }

    /// Four rows: three with values, one all NULL (the struct is NULL in row 3 and its string
    /// is also NULL in row 1, like the Spark fixture).
    fn all_types_batch() -> RecordBatch {
        let us = |text: &str| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .expect("time")
                .and_utc()
                .timestamp_micros()
        };
        let mut map = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
        map.keys().append_value("k");
        map.values().append_value(1);
        map.append(true).expect("map");
        map.append(false).expect("map");
        map.append(true).expect("map");
        map.append(false).expect("map");
        batch(vec![
            (
                "byte",
                Arc::new(Int8Array::from(vec![Some(5), Some(-3), Some(1), None])),
            ),
            (
                "short",
                Arc::new(Int16Array::from(vec![
                    Some(100),
                    Some(500),
                    Some(300),
                    None,
                ])),
            ),
            (
                "int",
                Arc::new(Int32Array::from(vec![
                    Some(1000),
                    Some(-5000),
                    Some(0),
                    None,
                ])),
            ),
            (
                "long",
                Arc::new(Int64Array::from(vec![
                    Some(i64::MAX),
                    Some(i64::MIN),
                    Some(7),
                    None,
                ])),
            ),
            (
                "float",
                Arc::new(Float32Array::from(vec![
                    Some(1.5),
                    Some(4.2),
                    Some(-2.25),
                    None,
                ])),
            ),
            (
                "double",
                Arc::new(Float64Array::from(vec![
                    Some(2.5),
                    Some(7.7),
                    Some(1e-7),
                    None,
                ])),
            ),
            (
                "date",
                Arc::new(Date32Array::from(vec![
                    Some(19372),
                    Some(19889),
                    Some(0),
                    None,
                ])),
            ),
            (
                "ts",
                Arc::new(
                    TimestampMicrosecondArray::from(vec![
                        Some(us("2023-06-15 12:30:00.000")),
                        Some(us("2024-12-25 00:00:00.123999")),
                        Some(us("2024-01-01 00:00:00.5")),
                        None,
                    ])
                    .with_timezone("UTC"),
                ),
            ),
            (
                "ntz",
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(us("2023-06-15 12:30:00.000")),
                    Some(us("2024-12-25 00:00:00.000")),
                    Some(us("2024-01-01 00:00:00.000")),
                    None,
                ])),
            ),
            (
                "str",
                Arc::new(StringArray::from(vec![
                    Some("beta"),
                    Some("alpha"),
                    Some("gamma\"\n"),
                    None,
                ])),
            ),
            (
                "dec",
                Arc::new(
                    Decimal128Array::from(vec![Some(12345), Some(99999), Some(-1230), None])
                        .with_precision_and_scale(10, 2)
                        .expect("decimal"),
                ),
            ),
            (
                "bool",
                Arc::new(BooleanArray::from(vec![
                    Some(true),
                    Some(false),
                    None,
                    None,
                ])),
            ),
            (
                "bin",
                Arc::new(BinaryArray::from(vec![
                    Some(b"x".as_ref()),
                    None,
                    Some(b"y".as_ref()),
                    None,
                ])),
            ),
            (
                "arr",
                Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                    Some(vec![Some(1)]),
                    Some(vec![]),
                    None,
                    None,
                ])),
            ),
            ("map", Arc::new(map.finish())),
            (
                "nested",
                struct_array(
                    vec![
                        (
                            "i",
                            Arc::new(Int32Array::from(vec![
                                Some(10),
                                Some(50),
                                Some(30),
                                Some(-999),
                            ])),
                        ),
                        (
                            "s",
                            Arc::new(StringArray::from(vec![
                                Some("nested_a"),
                                None,
                                Some("nested_c"),
                                Some("zzz"),
                            ])),
                        ),
                        (
                            "d",
                            Arc::new(Float64Array::from(vec![
                                Some(1.1),
                                Some(5.5),
                                Some(3.3),
                                None,
                            ])),
                        ),
                    ],
                    Some(vec![true, true, true, false]),
                ),
            ),
        ])
    }

    #[test]
    fn every_type_renders_like_spark() {
        let schema = all_types_schema();
        let text = stats_text(
            &schema,
            &[],
            ColumnMappingMode::Name,
            &StatsConfig::default(),
            &[all_types_batch()],
        );
        // Decimals keep their scale's digits (not re-rendered through f64).
        assert!(text.contains(r#""col-dec":-12.30"#), "{text}");
        assert!(text.contains(r#""col-dec":999.99"#), "{text}");
        assert!(
            text.starts_with(r#"{"numRecords":4,"minValues":{"#),
            "{text}"
        );
        assert!(text.ends_with(r#","tightBounds":true}"#), "{text}");
        let parsed: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(
            parsed,
            json!({
                "numRecords": 4,
                "minValues": {
                    "col-byte": -3, "col-short": 100, "col-int": -5000, "col-long": i64::MIN,
                    "col-float": -2.25, "col-double": 1e-7, "col-date": "1970-01-01",
                    "col-ts": "2023-06-15T12:30:00.000Z", "col-ntz": "2023-06-15T12:30:00.000",
                    "col-str": "alpha", "col-dec": -12.30,
                    "col-nested": {"col-i": 10, "col-s": "nested_a", "col-d": 1.1}
                },
                "maxValues": {
                    "col-byte": 5, "col-short": 500, "col-int": 1000, "col-long": i64::MAX,
                    "col-float": 4.2, "col-double": 7.7, "col-date": "2024-06-15",
                    "col-ts": "2024-12-25T00:00:00.123Z", "col-ntz": "2024-12-25T00:00:00.000",
                    "col-str": "gamma\"\n", "col-dec": 999.99,
                    "col-nested": {"col-i": 50, "col-s": "nested_c", "col-d": 5.5}
                },
                "nullCount": {
                    "col-byte": 1, "col-short": 1, "col-int": 1, "col-long": 1, "col-float": 1,
                    "col-double": 1, "col-date": 1, "col-ts": 1, "col-ntz": 1, "col-str": 1,
                    "col-dec": 1, "col-bool": 2, "col-bin": 2, "col-arr": 2, "col-map": 2,
                    "col-nested": {"col-i": 1, "col-s": 2, "col-d": 1}
                },
                "tightBounds": true
            })
        );
    }

    #[test]
    fn every_type_round_trips_through_the_reader() {
        let schema = all_types_schema();
        let input = all_types_batch();
        let text = stats_text(
            &schema,
            &[],
            ColumnMappingMode::Name,
            &StatsConfig::default(),
            std::slice::from_ref(&input),
        );
        let columns = stats_columns(&schema, ColumnMappingMode::Name);
        let read = FileStats::from_json(&text, &columns).expect("read");
        assert_eq!(read.num_records, Some(4));
        assert!(read.tight_bounds);

        let expected_nulls: HashMap<&str, u64> = [
            ("byte", 1),
            ("short", 1),
            ("int", 1),
            ("long", 1),
            ("float", 1),
            ("double", 1),
            ("date", 1),
            ("ts", 1),
            ("ntz", 1),
            ("str", 1),
            ("dec", 1),
            ("bool", 2),
            ("bin", 2),
            ("nested.i", 1),
            ("nested.s", 2),
            ("nested.d", 1),
        ]
        .into_iter()
        .collect();
        for column in &columns {
            let name = column.logical_name.as_str();
            assert_eq!(
                read.null_count.get(name).copied(),
                expected_nulls.get(name).copied(),
                "{name}"
            );
        }
        // No bounds for boolean and binary.
        for name in ["bool", "bin"] {
            assert!(!read.min_values.contains_key(name), "{name}");
            assert!(!read.max_values.contains_key(name), "{name}");
        }

        // The true extremes, computed independently from the batch (nested values under the
        // NULL struct row excluded).
        let min_of = |name: &str| -> ArrayRef {
            let (array, rows) = leaf_values(&input, name);
            sort_values(&array, &rows).first().cloned().expect("min")
        };
        let max_of = |name: &str| -> ArrayRef {
            let (array, rows) = leaf_values(&input, name);
            sort_values(&array, &rows).last().cloned().expect("max")
        };
        let exact = [
            "byte", "short", "int", "long", "date", "str", "nested.i", "nested.s",
        ];
        for name in exact {
            assert_eq!(read.min_values.get(name), Some(&min_of(name)), "min {name}");
            assert_eq!(read.max_values.get(name), Some(&max_of(name)), "max {name}");
        }
        // Sound: floats and decimals are widened by the reader, timestamp maxima cover the
        // truncated microseconds.
        for name in ["float", "double", "dec", "nested.d", "ts", "ntz"] {
            let min = read.min_values.get(name).expect("min");
            let max = read.max_values.get(name).expect("max");
            assert!(le(min, &min_of(name)), "min {name}");
            assert!(le(&max_of(name), max), "max {name}");
        }
        // ... and close: floats lose a few units in the last place; decimals that are not
        // integers go through an f64 in the reader and are rounded outward by one unit of
        // their scale (0.01).
        let as_f64 = |array: &ArrayRef| {
            cast(array, &ArrowType::Float64)
                .expect("to f64")
                .as_primitive::<Float64Type>()
                .value(0)
        };
        for name in ["float", "double", "dec", "nested.d"] {
            for (bound, truth) in [
                (&read.min_values[name], min_of(name)),
                (&read.max_values[name], max_of(name)),
            ] {
                let (bound, truth) = (as_f64(bound), as_f64(&truth));
                let tolerance = if name == "dec" {
                    0.010_001
                } else {
                    1e-6 * truth.abs()
                };
                assert!(
                    (bound - truth).abs() <= tolerance,
                    "{name}: {bound} vs {truth}"
                );
            }
        }
        // The true maximum (2024-12-25 00:00:00.123999) was written as `.123Z`; the reader's
        // `+999 µs` makes it exact again.
        assert_eq!(read.max_values.get("ts"), Some(&max_of("ts")));
    }

    /// The values of leaf `name` (dotted) of `batch` and the rows where they are valid.
    fn leaf_values(batch: &RecordBatch, name: &str) -> (ArrayRef, Vec<usize>) {
        let mut parts = name.split('.');
        let first = parts.next().expect("name");
        let mut array = batch.column_by_name(first).expect("column").clone();
        let mut valid: Vec<usize> = (0..array.len()).filter(|&i| array.is_valid(i)).collect();
        for part in parts {
            let child = array
                .as_struct()
                .column_by_name(part)
                .expect("child")
                .clone();
            valid.retain(|&i| child.is_valid(i));
            array = child;
        }
        (array, valid)
    }

    /// The valid values of `array` at `rows`, as length-1 arrays sorted ascending.
    fn sort_values(array: &ArrayRef, rows: &[usize]) -> Vec<ArrayRef> {
        let mut values: Vec<ArrayRef> = rows.iter().map(|&i| array.slice(i, 1)).collect();
        values.sort_by(|a, b| {
            if le(a, b) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        });
        values
    }

    /// `a <= b` for two length-1 arrays of one type (Arrow's comparison kernel).
    fn le(a: &ArrayRef, b: &ArrayRef) -> bool {
        arrow::compute::kernels::cmp::lt_eq(a, b)
            .expect("comparable")
            .value(0)
    }

    #[test]
    fn batches_merge_and_arrow_encodings_are_accepted() {
        let schema = StructType::new([
            field("s", DataType::STRING),
            field("i", DataType::LONG),
            field("t", prim(PrimitiveType::Timestamp)),
        ]);
        let dictionary: DictionaryArray<Int32Type> = vec![Some("m"), None, Some("q"), Some("m")]
            .into_iter()
            .collect();
        let batches = [
            batch(vec![
                ("s", Arc::new(dictionary)),
                (
                    "i",
                    Arc::new(Int32Array::from(vec![Some(3), None, Some(4), Some(9)])),
                ),
                (
                    "t",
                    Arc::new(
                        TimestampSecondArray::from(vec![Some(0), None, Some(1), Some(2)])
                            .with_timezone("UTC"),
                    ),
                ),
            ]),
            batch(vec![
                (
                    "S",
                    Arc::new(LargeStringArray::from(vec![Some("z"), Some("b")])),
                ),
                ("i", Arc::new(Int64Array::from(vec![Some(-1), Some(2)]))),
                (
                    "t",
                    Arc::new(
                        TimestampNanosecondArray::from(vec![Some(-1), Some(5_000_999_999)])
                            .with_timezone("+01:00"),
                    ),
                ),
            ]),
            batch(vec![(
                "s",
                Arc::new(StringViewArray::from(vec![Some("a"), None])),
            )]),
        ];
        let stats = stats(&schema, &batches);
        assert_eq!(
            stats,
            json!({
                "numRecords": 8,
                "minValues": {"s": "a", "i": -1, "t": "1969-12-31T23:59:59.999Z"},
                "maxValues": {"s": "z", "i": 9, "t": "1970-01-01T00:00:05.000Z"},
                "nullCount": {"s": 2, "i": 3, "t": 3},
                "tightBounds": true
            })
        );
    }

    #[test]
    fn wrong_arrow_types_are_invalid() {
        let schema = StructType::new([
            field("s", DataType::STRING),
            field("n", StructType::new([field("x", DataType::INTEGER)])),
        ]);
        let mut collector = StatsCollector::new(
            &schema,
            &[],
            ColumnMappingMode::None,
            &StatsConfig::default(),
        )
        .expect("collector");
        let error = collector
            .update(&batch(vec![("s", Arc::new(Int32Array::from(vec![1])))]))
            .expect_err("int for string");
        assert!(matches!(error, Error::InvalidArgument { .. }), "{error}");
        assert!(error.to_string().contains("`s`"), "{error}");
        let error = collector
            .update(&batch(vec![("n", Arc::new(Int32Array::from(vec![1])))]))
            .expect_err("int for struct");
        assert!(error.to_string().contains("`n`"), "{error}");
        // A wrong type is fine where only NULLs are counted, or when the column is all NULL.
        let schema = StructType::new([field("b", DataType::BOOLEAN), field("d", DataType::DOUBLE)]);
        let stats = stats(
            &schema,
            &[batch(vec![
                ("b", Arc::new(StringArray::from(vec![Some("x"), None]))),
                ("d", Arc::new(Int32Array::from(vec![None::<i32>, None]))),
            ])],
        );
        assert_eq!(stats["nullCount"], json!({"b": 1, "d": 2}));
    }

    // -----------------------------------------------------------------------------------------
    // NULLs and NaN
    // -----------------------------------------------------------------------------------------

    #[test]
    fn all_null_and_missing_columns_have_only_null_counts() {
        let schema = StructType::new([
            field("i", DataType::INTEGER),
            field("s", DataType::STRING),
            field("missing", DataType::LONG),
            field(
                "st",
                StructType::new([field("a", DataType::INTEGER), field("b", DataType::STRING)]),
            ),
            field("v", prim(PrimitiveType::Void)),
        ]);
        let stats = stats(
            &schema,
            &[
                batch(vec![
                    (
                        "i",
                        Arc::new(Int32Array::from(vec![None::<i32>, None, None])),
                    ),
                    (
                        "s",
                        Arc::new(StringArray::from(vec![None::<&str>, None, None])),
                    ),
                    (
                        "st",
                        struct_array(
                            vec![("a", Arc::new(Int32Array::from(vec![1, 2, 3])))],
                            Some(vec![false; 3]),
                        ),
                    ),
                    ("v", Arc::new(arrow::array::NullArray::new(3))),
                ]),
                batch(vec![("i", Arc::new(Int32Array::from(vec![None::<i32>])))]),
            ],
        );
        assert_eq!(
            stats,
            json!({
                "numRecords": 4,
                "minValues": {},
                "maxValues": {},
                "nullCount": {"i": 4, "s": 4, "missing": 4, "st": {"a": 4, "b": 4}, "v": 4},
                "tightBounds": true
            })
        );
        // The reader sees "every row is NULL".
        let columns = stats_columns(&schema, ColumnMappingMode::None);
        let text = stats.to_string();
        let read = FileStats::from_json(&text, &columns).expect("read");
        assert_eq!(read.null_count.get("st.a"), Some(&4));
        assert!(read.min_values.is_empty() && read.max_values.is_empty());
    }

    #[test]
    fn nested_values_under_null_structs_are_ignored() {
        let schema = StructType::new([field(
            "outer",
            StructType::new([field(
                "inner",
                StructType::new([field("x", DataType::INTEGER), field("y", DataType::STRING)]),
            )]),
        )]);
        let inner = struct_array(
            vec![
                (
                    "x",
                    Arc::new(Int32Array::from(vec![
                        Some(5),
                        Some(-100),
                        Some(7),
                        Some(100),
                    ])),
                ),
                (
                    "y",
                    Arc::new(StringArray::from(vec![
                        Some("b"),
                        Some("a"),
                        None,
                        Some("z"),
                    ])),
                ),
            ],
            Some(vec![true, true, true, false]),
        );
        let outer = struct_array(vec![("inner", inner)], Some(vec![true, false, true, true]));
        let stats = stats(&schema, &[batch(vec![("outer", outer)])]);
        assert_eq!(
            stats["minValues"],
            json!({"outer": {"inner": {"x": 5, "y": "b"}}})
        );
        assert_eq!(
            stats["maxValues"],
            json!({"outer": {"inner": {"x": 7, "y": "b"}}})
        );
        assert_eq!(
            stats["nullCount"],
            json!({"outer": {"inner": {"x": 2, "y": 3}}})
        );
    }

    #[test]
    fn nan_is_skipped_and_infinities_and_zeros_stay_sound() {
        let schema = StructType::new([
            field("d", DataType::DOUBLE),
            field("f", prim(PrimitiveType::Float)),
            field("all_nan", DataType::DOUBLE),
            field("inf", DataType::DOUBLE),
            field("zero", prim(PrimitiveType::Float)),
            field("tiny", DataType::DOUBLE),
        ]);
        let stats = stats(
            &schema,
            &[
                batch(vec![
                    (
                        "d",
                        Arc::new(Float64Array::from(vec![
                            Some(f64::NAN),
                            Some(1.0),
                            None,
                            Some(-f64::NAN),
                        ])),
                    ),
                    (
                        "f",
                        Arc::new(Float32Array::from(vec![
                            Some(f32::NAN),
                            Some(0.1),
                            Some(-7.5),
                            None,
                        ])),
                    ),
                    (
                        "all_nan",
                        Arc::new(Float64Array::from(vec![
                            Some(f64::NAN),
                            None,
                            Some(-f64::NAN),
                            Some(f64::NAN),
                        ])),
                    ),
                    (
                        "inf",
                        Arc::new(Float64Array::from(vec![
                            Some(f64::INFINITY),
                            Some(2.0),
                            Some(f64::NEG_INFINITY),
                            None,
                        ])),
                    ),
                    (
                        "zero",
                        Arc::new(Float32Array::from(vec![Some(-0.0), Some(0.0), None, None])),
                    ),
                    (
                        "tiny",
                        Arc::new(Float64Array::from(vec![
                            Some(1e-300),
                            Some(1e300),
                            None,
                            None,
                        ])),
                    ),
                ]),
                batch(vec![(
                    "d",
                    Arc::new(Float64Array::from(vec![Some(-2.0), Some(f64::NAN)])),
                )]),
            ],
        );
        assert_eq!(
            stats["minValues"],
            json!({"d": -2.0, "f": -7.5, "zero": -0.0, "tiny": 1e-300})
        );
        assert_eq!(
            stats["maxValues"],
            json!({"d": 1.0, "f": 0.1, "zero": 0.0, "tiny": 1e300})
        );
        // NaN is a value, not a NULL.
        assert_eq!(
            stats["nullCount"],
            json!({"d": 1, "f": 3, "all_nan": 3, "inf": 3, "zero": 4, "tiny": 4})
        );
    }

    #[test]
    fn number_texts() {
        assert_eq!(float_json(4.2f32, true).as_deref(), Some("4.2"));
        assert_eq!(float_json(0.1f32, false).as_deref(), Some("0.1"));
        assert_eq!(float_json(2.0f64, true).as_deref(), Some("2.0"));
        assert_eq!(float_json(-2.5f64, true).as_deref(), Some("-2.5"));
        assert_eq!(float_json(1e20f64, true).as_deref(), Some("1e20"));
        assert_eq!(float_json(1.5e-7f64, true).as_deref(), Some("1.5e-7"));
        assert_eq!(
            float_json(f64::MAX, true).as_deref(),
            Some("1.7976931348623157e308")
        );
        assert_eq!(
            float_json(f32::MIN_POSITIVE, true).as_deref(),
            Some("1.1754944e-38")
        );
        assert_eq!(float_json(0.0f64, true).as_deref(), Some("-0.0"));
        assert_eq!(float_json(-0.0f64, false).as_deref(), Some("0.0"));
        assert_eq!(float_json(f64::NAN, true), None);
        assert_eq!(float_json(f32::NEG_INFINITY, true), None);
        for (unscaled, scale, text) in [
            (12300i128, 2u8, "123.00"),
            (-5, 3, "-0.005"),
            (0, 2, "0.00"),
            (-1230, 2, "-12.30"),
            (7, 0, "7"),
            (i128::MAX, 38, "1.70141183460469231731687303715884105727"),
            (
                -99_999_999_999_999_999_999_999_999_999_999_999_999,
                0,
                "-99999999999999999999999999999999999999",
            ),
        ] {
            assert_eq!(decimal_json(i256::from_i128(unscaled), scale), text);
            assert!(serde_json::from_str::<Value>(text).is_ok());
        }
        assert_eq!(
            json_string("a\"b\\c\u{1}\u{10FFFF}"),
            "\"a\\\"b\\\\c\\u0001\u{10FFFF}\""
        );
    }

    #[test]
    fn timestamps_truncate_down_to_milliseconds() {
        // Negative sub-millisecond values floor (not toward zero).
        assert_eq!(
            timestamp_json((-1i64).div_euclid(1000), false).as_deref(),
            Some("\"1969-12-31T23:59:59.999Z\"")
        );
        assert_eq!(
            timestamp_json(1_700_000_000_123, true).as_deref(),
            Some("\"2023-11-14T22:13:20.123\"")
        );
        assert_eq!(date_json(-719_162).as_deref(), Some("\"0001-01-01\""));
        assert_eq!(date_json(2_932_896).as_deref(), Some("\"9999-12-31\""));
        // Outside 0001..=9999: no bound.
        assert_eq!(date_json(-719_163), None);
        assert_eq!(date_json(2_932_897), None);
        assert_eq!(date_json(i64::MAX), None);
        assert_eq!(timestamp_json(i64::MAX, false), None);
        assert_eq!(timestamp_json(253_402_300_800_000, false), None);

        // Read back: the reader's maximum covers the truncated microseconds.
        let schema = StructType::new([field("t", prim(PrimitiveType::Timestamp))]);
        let values = [-1_500i64, 1_999, 2_000];
        let text = stats(
            &schema,
            &[batch(vec![(
                "t",
                Arc::new(TimestampMicrosecondArray::from(values.to_vec()).with_timezone("UTC")),
            )])],
        )
        .to_string();
        assert!(
            text.contains("\"t\":\"1969-12-31T23:59:59.998Z\""),
            "{text}"
        );
        assert!(
            text.contains("\"t\":\"1970-01-01T00:00:00.002Z\""),
            "{text}"
        );
        let read = FileStats::from_json(&text, &stats_columns(&schema, ColumnMappingMode::None))
            .expect("read");
        let get = |map: &HashMap<String, ArrayRef>| {
            map["t"].as_primitive::<TimestampMicrosecondType>().value(0)
        };
        assert!(get(&read.min_values) <= -1_500);
        assert!(get(&read.max_values) >= 2_000);
    }

    // -----------------------------------------------------------------------------------------
    // Strings
    // -----------------------------------------------------------------------------------------

    fn string_stats(values: &[Option<&str>], prefix_len: usize) -> Value {
        let schema = StructType::new([field("s", DataType::STRING)]);
        let config = StatsConfig {
            string_prefix_len: prefix_len,
            ..StatsConfig::default()
        };
        let text = stats_text(
            &schema,
            &[],
            ColumnMappingMode::None,
            &config,
            &[batch(vec![(
                "s",
                Arc::new(StringArray::from(values.to_vec())),
            )])],
        );
        serde_json::from_str(&text).expect("JSON")
    }

    #[test]
    fn strings_are_cut_with_a_tie_breaker() {
        let long = "a".repeat(40);
        let stats = string_stats(&[Some(&long), Some("b")], 32);
        assert_eq!(stats["minValues"]["s"], json!("a".repeat(32)));
        assert_eq!(stats["maxValues"]["s"], json!("b"));
        let stats = string_stats(&[Some(&long), Some("a")], 32);
        assert_eq!(
            stats["maxValues"]["s"],
            json!(format!("{}\u{7f}", "a".repeat(32)))
        );
        // Characters, not bytes.
        let stats = string_stats(&[Some("日本語テキスト")], 3);
        assert_eq!(stats["minValues"]["s"], json!("日本語"));
        assert_eq!(stats["maxValues"]["s"], json!("日本語\u{10FFFF}"));
        // U+10FFFF after the cut extends the prefix.
        let stats = string_stats(&[Some("abc\u{10FFFF}\u{10FFFF}d")], 3);
        assert_eq!(
            stats["maxValues"]["s"],
            json!("abc\u{10FFFF}\u{10FFFF}\u{7f}")
        );
        // No tie-breaker within twice the prefix: no maximum.
        let stats = string_stats(&[Some("a\u{10FFFF}\u{10FFFF}c")], 1);
        assert_eq!(stats["maxValues"], json!({}));
        assert_eq!(stats["minValues"]["s"], json!("a"));
        // ... unless the value ends there: then it is its own exact bound.
        let stats = string_stats(&[Some("a\u{10FFFF}")], 1);
        assert_eq!(stats["maxValues"]["s"], json!("a\u{10FFFF}"));
        // Empty strings are values.
        let stats = string_stats(&[Some(""), None], 32);
        assert_eq!(stats["minValues"]["s"], json!(""));
        assert_eq!(stats["maxValues"]["s"], json!(""));
        // A prefix length of zero leaves no room for a tie-breaker.
        let stats = string_stats(&[Some("x"), Some("y")], 0);
        assert_eq!(stats["minValues"]["s"], json!(""));
        assert_eq!(stats["maxValues"], json!({}));
    }

    #[test]
    fn long_strings_round_trip_through_the_reader() {
        let long_max = format!("{}é", "z".repeat(40));
        let text =
            string_stats(&[Some("m"), Some(&long_max), Some(&"a".repeat(50))], 32).to_string();
        let schema = StructType::new([field("s", DataType::STRING)]);
        let read = FileStats::from_json(&text, &stats_columns(&schema, ColumnMappingMode::None))
            .expect("read");
        let min = read.min_values["s"].as_string::<i32>().value(0).to_string();
        assert_eq!(min, "a".repeat(32));
        // The reader drops maxima of 32+ characters (they may be cut); what we wrote is still
        // an upper bound.
        assert!(!read.max_values.contains_key("s"));
        let written: Value = serde_json::from_str(&text).expect("JSON");
        let max = written["maxValues"]["s"].as_str().expect("max");
        assert!(max >= long_max.as_str());
    }

    /// Characters that stress the cut: ASCII around U+007F, multibyte, and U+10FFFF.
    fn stress_char() -> impl Strategy<Value = char> {
        prop_oneof![
            Just('a'),
            Just('b'),
            Just('~'),
            Just('\u{7f}'),
            Just('\u{80}'),
            Just('é'),
            Just('中'),
            Just('😀'),
            Just('\u{FFFF}'),
            Just('\u{10FFFE}'),
            Just('\u{10FFFF}'),
            Just('\u{10FFFF}'),
            any::<char>(),
        ]
    }

    fn stress_string() -> impl Strategy<Value = String> {
        prop::collection::vec(stress_char(), 0..12).prop_map(|chars| chars.into_iter().collect())
    }

    proptest! {
        #[test]
        fn string_bounds_hold(
            batches in prop::collection::vec(
                prop::collection::vec(prop::option::weighted(0.9, stress_string()), 1..6),
                1..4,
            ),
            prefix_len in 0usize..6,
            view in any::<bool>(),
        ) {
            let schema = StructType::new([field("s", DataType::STRING)]);
            let config = StatsConfig { string_prefix_len: prefix_len, ..StatsConfig::default() };
            let record_batches: Vec<RecordBatch> = batches
                .iter()
                .map(|values| {
                    let array: ArrayRef = if view {
                        Arc::new(StringViewArray::from(values.iter().map(Option::as_deref).collect::<Vec<_>>()))
                    } else {
                        Arc::new(StringArray::from(values.iter().map(Option::as_deref).collect::<Vec<_>>()))
                    };
                    batch(vec![("s", array)])
                })
                .collect();
            let text = stats_text(&schema, &[], ColumnMappingMode::None, &config, &record_batches);
            let stats: Value = serde_json::from_str(&text).expect("JSON");
            let all: Vec<&str> = batches.iter().flatten().flatten().map(String::as_str).collect();
            prop_assert_eq!(stats["nullCount"]["s"].as_u64(), Some(count_u64(batches.iter().flatten().filter(|v| v.is_none()).count())));
            let (Some(true_min), Some(true_max)) = (all.iter().min(), all.iter().max()) else {
                prop_assert_eq!(&stats["minValues"], &json!({}));
                prop_assert_eq!(&stats["maxValues"], &json!({}));
                return Ok(());
            };
            let min = stats["minValues"]["s"].as_str().expect("a minimum");
            prop_assert_eq!(min, char_prefix(true_min, prefix_len).0);
            prop_assert!(all.iter().all(|v| min <= *v));
            match stats["maxValues"]["s"].as_str() {
                Some(max) => {
                    prop_assert!(all.iter().all(|v| *v <= max), "max {:?} below a value", max);
                    if true_max.chars().count() <= prefix_len {
                        prop_assert_eq!(max, *true_max);
                    }
                }
                None => {
                    // Only when every character from the cut to twice the prefix is U+10FFFF
                    // and the value goes on.
                    let tail: Vec<char> = true_max.chars().skip(prefix_len).collect();
                    prop_assert!(tail.len() > prefix_len);
                    prop_assert!(tail.iter().take(prefix_len).all(|&c| c == char::MAX));
                }
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // Column selection and configuration
    // -----------------------------------------------------------------------------------------

    fn selection_schema() -> StructType {
        StructType::new([
            field("p", DataType::STRING),
            field("a", DataType::INTEGER),
            field(
                "s",
                StructType::new([
                    field("b", DataType::INTEGER),
                    field("weird.name", DataType::INTEGER),
                    field("e", StructType::new([])),
                ]),
            ),
            field("l", ArrayType::new(DataType::INTEGER, true)),
            field("d", DataType::INTEGER),
        ])
    }

    fn selection_batch() -> RecordBatch {
        let one = || -> ArrayRef { Arc::new(Int32Array::from(vec![1])) };
        batch(vec![
            ("a", one()),
            (
                "s",
                struct_array(vec![("b", one()), ("weird.name", one())], None),
            ),
            (
                "l",
                Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
                    None::<Vec<Option<i32>>>,
                ])),
            ),
            ("d", one()),
        ])
    }

    /// The `nullCount` object for a selection configuration.
    fn selected(num_indexed_cols: i64, stats_columns: Option<&[&str]>) -> Value {
        let config = StatsConfig {
            num_indexed_cols,
            stats_columns: stats_columns.map(|c| c.iter().map(ToString::to_string).collect()),
            ..StatsConfig::default()
        };
        let text = stats_text(
            &selection_schema(),
            &["P".to_string()],
            ColumnMappingMode::Name,
            &config,
            &[selection_batch()],
        );
        let stats: Value = serde_json::from_str(&text).expect("JSON");
        stats["nullCount"].clone()
    }

    #[test]
    fn first_leaves_are_indexed_without_partition_columns() {
        let all =
            json!({"col-a": 0, "col-s": {"col-b": 0, "col-weird.name": 0}, "col-l": 1, "col-d": 0});
        assert_eq!(selected(-1, None), all);
        assert_eq!(selected(32, None), all);
        assert_eq!(selected(5, None), all);
        assert_eq!(
            selected(4, None),
            json!({"col-a": 0, "col-s": {"col-b": 0, "col-weird.name": 0}, "col-l": 1})
        );
        assert_eq!(
            selected(3, None),
            json!({"col-a": 0, "col-s": {"col-b": 0, "col-weird.name": 0}})
        );
        assert_eq!(
            selected(2, None),
            json!({"col-a": 0, "col-s": {"col-b": 0}})
        );
        assert_eq!(selected(0, None), json!({}));
        let error = StatsCollector::new(
            &selection_schema(),
            &[],
            ColumnMappingMode::None,
            &StatsConfig {
                num_indexed_cols: -2,
                ..StatsConfig::default()
            },
        )
        .expect_err("-2");
        assert!(matches!(error, Error::InvalidArgument { .. }), "{error}");
    }

    #[test]
    fn stats_columns_select_named_leaves() {
        assert_eq!(
            selected(1, Some(&["d", "S.`weird.name`", "p", "nope", "s.b.x"])),
            json!({"col-s": {"col-weird.name": 0}, "col-d": 0})
        );
        // A struct selects all its leaves; schema order is kept; duplicates are harmless.
        assert_eq!(
            selected(0, Some(&["l", "s", "s.b"])),
            json!({"col-s": {"col-b": 0, "col-weird.name": 0}, "col-l": 1})
        );
        assert_eq!(selected(32, Some(&[])), json!({}));
        for bad in ["`a", "a..b", ".a", "a."] {
            let config = StatsConfig {
                stats_columns: Some(vec![bad.to_string()]),
                ..StatsConfig::default()
            };
            let error =
                StatsCollector::new(&selection_schema(), &[], ColumnMappingMode::None, &config)
                    .expect_err(bad);
            assert!(matches!(error, Error::InvalidArgument { .. }), "{error}");
        }
    }

    #[test]
    fn stats_column_names_parse() {
        assert_eq!(
            split_stats_columns(" a, `b,c`.d ,, e.`f``g`,"),
            vec!["a", "`b,c`.d", "e.`f``g`"]
        );
        assert!(split_stats_columns("  ").is_empty());
        let parse = |s: &str| parse_column_path(s).expect(s);
        assert_eq!(parse("a"), vec!["a"]);
        assert_eq!(parse("a.b.c"), vec!["a", "b", "c"]);
        assert_eq!(parse("`a.b`.c"), vec!["a.b", "c"]);
        assert_eq!(parse("`f``g`"), vec!["f`g"]);
        assert_eq!(parse("``"), vec![""]);
    }

    #[test]
    fn config_from_table_properties() {
        let metadata = |pairs: &[(&str, &str)]| Metadata {
            configuration: pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), Some((*v).to_string())))
                .collect(),
            ..Metadata::default()
        };
        assert_eq!(
            StatsConfig::from_metadata(&metadata(&[])),
            StatsConfig::default()
        );
        assert_eq!(
            StatsConfig::from_metadata(&metadata(&[
                (NUM_INDEXED_COLS_KEY, " -1 "),
                (STATS_COLUMNS_KEY, "a, `b,c`"),
                (STRING_PREFIX_LENGTH_KEY, "8"),
            ])),
            StatsConfig {
                num_indexed_cols: -1,
                stats_columns: Some(vec!["a".into(), "`b,c`".into()]),
                string_prefix_len: 8,
            }
        );
        // Invalid values fall back to the defaults.
        assert_eq!(
            StatsConfig::from_metadata(&metadata(&[
                (NUM_INDEXED_COLS_KEY, "-5"),
                (STRING_PREFIX_LENGTH_KEY, "many"),
            ])),
            StatsConfig::default()
        );
    }

    // -----------------------------------------------------------------------------------------
    // Spark reference: stats-writing-all-types
    // -----------------------------------------------------------------------------------------

    /// The `stats-writing-all-types` table, or `None` (after printing why) when the conformance
    /// fixtures are absent outside CI.
    fn spark_fixture_dir() -> Option<PathBuf> {
        let dir = crate::fixtures::conformance_root()
            .join("delta-kernel-rs-data/stats-writing-all-types/delta");
        if dir.is_dir() {
            return Some(dir);
        }
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "conformance fixture missing at {} (required when CI=true)",
            dir.display()
        );
        println!(
            "skipping: conformance fixture not found at {}",
            dir.display()
        );
        None
    }

    /// Renames a column read from a data file (physical names, file types) to the logical
    /// names and Arrow types of `data_type`. Arrays and maps are kept as read (only their NULL
    /// count matters).
    fn to_logical(array: &ArrayRef, data_type: &DataType, mode: ColumnMappingMode) -> ArrayRef {
        match data_type {
            DataType::Struct(st) => {
                let parts = array.as_struct();
                let mut fields = Vec::new();
                let mut columns = Vec::new();
                for f in &st.fields {
                    let child = parts
                        .column_by_name(f.physical_name(mode))
                        .expect("nested column in file");
                    let child = to_logical(child, &f.data_type, mode);
                    fields.push(Field::new(f.name.clone(), child.data_type().clone(), true));
                    columns.push(child);
                }
                Arc::new(
                    StructArray::try_new(fields.into(), columns, parts.nulls().cloned())
                        .expect("struct"),
                )
            }
            DataType::Primitive(p) => cast(array, &p.to_arrow().expect("type")).expect("cast"),
            _ => array.clone(),
        }
    }

    #[test]
    fn spark_reference_stats_for_all_types() {
        let Some(dir) = spark_fixture_dir() else {
            return;
        };
        let log = |version: &str| {
            std::fs::read_to_string(dir.join(format!("_delta_log/{version}.json"))).expect("commit")
        };
        let mut metadata: Option<Metadata> = None;
        for line in log("00000000000000000000").lines() {
            let action: Value = serde_json::from_str(line).expect("action");
            if let Some(m) = action.get("metaData") {
                metadata = Some(serde_json::from_value(m.clone()).expect("metaData"));
            }
        }
        let metadata = metadata.expect("metaData in v0");
        let schema = StructType::parse(&metadata.schema_string).expect("schema");
        let mode = ColumnMappingMode::parse(
            metadata
                .property("delta.columnMapping.mode")
                .unwrap_or("none"),
        )
        .expect("mode");
        assert_eq!(mode, ColumnMappingMode::Name);
        let (path, spark_stats) = log("00000000000000000001")
            .lines()
            .filter_map(|line| {
                let action: Value = serde_json::from_str(line).ok()?;
                let add = action.get("add")?;
                Some((
                    add["path"].as_str()?.to_string(),
                    serde_json::from_str::<Value>(add["stats"].as_str()?).ok()?,
                ))
            })
            .next()
            .expect("add in v1");

        let file = std::fs::File::open(dir.join(&path)).expect("data file");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .expect("parquet")
            .build()
            .expect("reader");
        let config = StatsConfig::from_metadata(&metadata);
        let mut collector =
            StatsCollector::new(&schema, &metadata.partition_columns, mode, &config)
                .expect("collector");
        for physical in reader {
            let physical = physical.expect("batch");
            let mut fields = Vec::new();
            let mut columns = Vec::new();
            for f in &schema.fields {
                let column = physical
                    .column_by_name(f.physical_name(mode))
                    .expect("column in file");
                let column = to_logical(column, &f.data_type, mode);
                fields.push(Field::new(f.name.clone(), column.data_type().clone(), true));
                columns.push(column);
            }
            let logical =
                RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch");
            collector.update(&logical).expect("update");
        }
        let ours: Value = serde_json::from_str(&collector.finish().expect("finish")).expect("JSON");

        assert_eq!(ours["numRecords"], spark_stats["numRecords"]);
        // Spark (Delta 3.3 without deletion vectors) leaves `tightBounds` out, which means true.
        assert_eq!(spark_stats.get("tightBounds"), None);
        assert_eq!(ours["tightBounds"], json!(true));
        // Every value Spark wrote, we write identically: same keys (physical names, nested
        // objects), same numbers (the float 3.14 as `3.14`, the decimal 123.45 exactly), same
        // timestamp texts (the fixture's session zone was UTC, so Spark's offset is `Z`; in
        // another zone Spark writes e.g. `-08:00`, the same instant), and no bounds for boolean,
        // binary, array and map columns.
        for section in ["minValues", "maxValues", "nullCount"] {
            assert_eq!(ours[section], spark_stats[section], "{section}");
        }
        let columns = stats_columns(&schema, mode);
        assert_eq!(
            columns.len(),
            16,
            "13 primitive top-level leaves and 3 nested ones"
        );
        let read = FileStats::from_json(&ours.to_string(), &columns).expect("read");
        assert_eq!(read.null_count.len(), 16);
        assert_eq!(read.min_values.len(), 14);
    }
}
