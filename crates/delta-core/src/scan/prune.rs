//! Three-valued pruning of files by partition values and per-file statistics. Pure: no I/O.
//!
//! [`prune`] decides, for one file, whether a bound predicate can be TRUE for any of its rows. It
//! evaluates the predicate abstractly: every sub-expression gets the set of truth values it may
//! take over the file's rows, a subset of {TRUE, FALSE, NULL}. A file is skipped only when TRUE
//! is provably not in the set of the whole predicate, i.e. the predicate is FALSE or NULL for
//! every row, so a filter would drop every row anyway. **Unknown keeps the file**: a missing
//! statistic, an unparsable one, a construct this module does not understand, or a kernel error
//! all mean "may be anything".
//!
//! # What a file tells us about a column
//!
//! - A partition column holds exactly one value (maybe NULL) in every row: comparisons with it
//!   are evaluated exactly.
//! - Statistics give bounds: every non-NULL value `v` satisfies `min <= v <= max`, except that
//!   a float column may also hold NaN regardless of its bounds (writers disagree about NaN in
//!   min/max), and a NaN min or max is ignored. [`FileStats::from_json`] only ever loosens what
//!   it reads: float and decimal bounds read through JSON doubles are widened outward, timestamp
//!   maxima get `+999 µs` (they are truncated to milliseconds), negative timestamp minima get
//!   `-999 µs` (in case a writer truncated toward zero), and a string maximum of 32 or more
//!   characters (possibly a truncated prefix) is dropped. A string minimum, even truncated,
//!   stays a valid lower bound.
//! - `nullCount == 0` proves there are no NULLs; `nullCount == numRecords` proves every row is
//!   NULL. Other counts prove nothing usable (with `tightBounds: false` they may include rows a
//!   deletion vector removed). `numRecords == 0` skips the file outright.
//!
//! # Truth table
//!
//! For `col op lit` over a column with bounds `[min, max]` (`lit` not NULL); "may" means "for
//! some row, as far as the statistics can tell"; FALSE is computed as TRUE of the negated
//! operator (`NOT (a < b)` is `a >= b` for non-NULL values):
//!
//! | predicate       | may be TRUE unless             | may be NULL when            |
//! |-----------------|--------------------------------|-----------------------------|
//! | `col = lit`     | `lit < min` or `lit > max`     | nulls are possible          |
//! | `col <> lit`    | `min = max = lit`              | nulls are possible          |
//! | `col < lit`     | `min >= lit`                   | nulls are possible          |
//! | `col <= lit`    | `min > lit`                    | nulls are possible          |
//! | `col > lit`     | `max <= lit`                   | nulls are possible          |
//! | `col >= lit`    | `max < lit`                    | nulls are possible          |
//! | `col op NULL`   | never TRUE, never FALSE        | always                      |
//! | any, all NULL   | never TRUE, never FALSE        | always                      |
//! | `col IS NULL`   | `nullCount = 0` (FALSE only)   | never                       |
//! | `col IS NOT NULL` | `nullCount = numRecords`     | never                       |
//!
//! (For floats, "unless" also requires that NaN does not satisfy the comparison: NaN is above
//! every value, so `col > 5` may be TRUE whatever the maximum.) Connectives combine the sets
//! (Kleene logic, over-approximated because rows are not tracked):
//!
//! | expression     | may be TRUE            | may be FALSE            | may be NULL      |
//! |----------------|------------------------|-------------------------|------------------|
//! | `NOT a`        | a may be FALSE         | a may be TRUE           | a may be NULL    |
//! | `a AND b …`    | all may be TRUE        | any may be FALSE        | any may be NULL  |
//! | `a OR b …`     | any may be TRUE        | all may be FALSE        | any may be NULL  |
//! | `x IN (a, …)`  | as `x = a OR …`        |                         |                  |
//!
//! Swapping TRUE and FALSE under `NOT` is exactly De Morgan's pushdown with flipped operators,
//! and is sound under NULLs because `NOT NULL` is NULL. So an `AND` skips if any child skips, an
//! `OR` skips only if every child does, and the result agrees with
//! [`BoundExpression::evaluate`]: if [`prune`] says [`Verdict::Skip`], evaluating the predicate
//! over the file's rows yields no TRUE (a property test checks this).
//!
//! Skip reasons name columns and the statistic used, never values, because they are shown to
//! users (`medilake table files --where`).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
    Int8Array, Int16Array, Int32Array, Int64Array, LargeStringArray, Scalar, StringArray,
    StringViewArray, UInt8Array, UInt16Array, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Float32Type, Float64Type};
use serde_json::Value as Json;

use crate::expression::{BoundColumn, BoundExpression, CompareOp, normalize_floats};
use crate::partition::{
    DecimalText, Rounding, micros_to_unit, parse_date_days, parse_timestamp_text, timestamp_array,
};
use crate::{Error, Result};

/// Strings in statistics may be cut to a prefix of this many characters (Spark's
/// `dataSkippingStringPrefixLength`); a maximum this long or longer may be truncated.
const STRING_PREFIX_LENGTH: usize = 32;

/// Timestamps in statistics are truncated to milliseconds: the true value can be up to this
/// much larger than a maximum (or smaller than a negative minimum).
const TIMESTAMP_TRUNCATION_MICROS: i64 = 999;

/// Below this magnitude a float read from JSON may have lost its relative precision (serde_json
/// divides by powers of ten that underflow), so bounds are widened to `±TINY_FLOAT`.
const TINY_FLOAT: f64 = 1e-280;

/// How many units in the last place a float read from JSON is widened by. serde_json (without
/// `float_roundtrip`) rounds a few times while parsing; each step is off by at most half an ulp.
const FLOAT_WIDENING_ULPS: usize = 8;

/// The statistics of one data file (`add.stats`), keyed by logical column name.
///
/// Invariant: `min_values` and `max_values` hold length-1 arrays of the column's Arrow type that
/// are sound bounds of the file's non-NULL values (floats may also hold NaN, see the module docs).
/// A nested field is keyed by its dotted logical path (`a.b`).
#[derive(Clone)]
pub struct FileStats {
    /// Physical rows in the file (ignoring deletion vectors), if recorded.
    pub num_records: Option<u64>,
    /// Whether the bounds are tight (`tightBounds`, absent means true). When false (files with
    /// deletion vectors) bounds are still valid but null counts only prove "none" or "all".
    pub tight_bounds: bool,
    /// Lower bounds per column.
    pub min_values: HashMap<String, ArrayRef>,
    /// Upper bounds per column.
    pub max_values: HashMap<String, ArrayRef>,
    /// NULL counts per column.
    pub null_count: HashMap<String, u64>,
}

impl Default for FileStats {
    fn default() -> Self {
        Self {
            num_records: None,
            tight_bounds: true,
            min_values: HashMap::new(),
            max_values: HashMap::new(),
            null_count: HashMap::new(),
        }
    }
}

/// Shows which columns have statistics, never the values (they are row values).
impl fmt::Debug for FileStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn sorted_keys(map: &HashMap<String, ArrayRef>) -> Vec<&String> {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            keys
        }
        let mut null_count: Vec<(&String, &u64)> = self.null_count.iter().collect();
        null_count.sort();
        f.debug_struct("FileStats")
            .field("num_records", &self.num_records)
            .field("tight_bounds", &self.tight_bounds)
            .field("min_values_for", &sorted_keys(&self.min_values))
            .field("max_values_for", &sorted_keys(&self.max_values))
            .field("null_count", &null_count)
            .finish()
    }
}

/// A column whose statistics [`FileStats::from_json`] should read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsColumn {
    /// The key in [`FileStats`]: the logical column name, or the dotted logical path of a
    /// nested field (`a.b`).
    pub logical_name: String,
    /// The keys in the stats JSON, outermost first: physical names under column mapping, one per
    /// struct level (`["col-1a2b", "col-3c4d"]` for a nested field).
    pub physical_path: Vec<String>,
    /// The column's logical Arrow type.
    pub data_type: DataType,
}

/// Which end of a range a statistic bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Min,
    Max,
}

impl Side {
    fn rounding(self) -> Rounding {
        match self {
            Self::Min => Rounding::Floor,
            Self::Max => Rounding::Ceil,
        }
    }
}

impl FileStats {
    /// Reads the statistics of `columns` from an `add.stats` JSON string.
    ///
    /// Lenient by design: malformed JSON yields empty statistics (nothing known, so nothing is
    /// skipped), and a value that does not parse as its column's type is left out. Bounds are only
    /// ever loosened (see the module docs).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when a [`StatsColumn`] has an empty physical path.
    pub fn from_json(stats: &str, columns: &[StatsColumn]) -> Result<FileStats> {
        if let Some(column) = columns.iter().find(|c| c.physical_path.is_empty()) {
            return Err(Error::invalid(format!(
                "stats column `{}` has an empty physical path",
                column.logical_name
            )));
        }
        let root: Json = match serde_json::from_str(stats) {
            Ok(root) => root,
            Err(error) => {
                tracing::debug!(%error, "ignoring malformed file statistics");
                return Ok(Self::default());
            }
        };
        let Some(root) = root.as_object() else {
            tracing::debug!("ignoring file statistics that are not a JSON object");
            return Ok(Self::default());
        };
        let mut result = Self {
            num_records: root.get("numRecords").and_then(Json::as_u64),
            tight_bounds: root
                .get("tightBounds")
                .and_then(Json::as_bool)
                .unwrap_or(true),
            ..Self::default()
        };
        let section = |name: &str, path: &[String]| {
            path.iter()
                .try_fold(root.get(name)?, |value, key| value.as_object()?.get(key))
        };
        for column in columns {
            let path = &column.physical_path;
            if let Some(min) = section("minValues", path)
                .and_then(|value| json_bound(value, &column.data_type, Side::Min))
            {
                result.min_values.insert(column.logical_name.clone(), min);
            }
            if let Some(max) = section("maxValues", path)
                .and_then(|value| json_bound(value, &column.data_type, Side::Max))
            {
                result.max_values.insert(column.logical_name.clone(), max);
            }
            if let Some(count) = section("nullCount", path).and_then(Json::as_u64) {
                result.null_count.insert(column.logical_name.clone(), count);
            }
        }
        Ok(result)
    }
}

/// A sound `side` bound of `data_type` from a JSON statistic, or `None` if there is none.
fn json_bound(value: &Json, data_type: &DataType, side: Side) -> Option<ArrayRef> {
    let array: ArrayRef = match data_type {
        DataType::Int8 => Arc::new(Int8Array::from(vec![json_integer::<i8>(value, side)?])),
        DataType::Int16 => Arc::new(Int16Array::from(vec![json_integer::<i16>(value, side)?])),
        DataType::Int32 => Arc::new(Int32Array::from(vec![json_integer::<i32>(value, side)?])),
        DataType::Int64 => Arc::new(Int64Array::from(vec![json_integer::<i64>(value, side)?])),
        DataType::UInt8 => Arc::new(UInt8Array::from(vec![json_integer::<u8>(value, side)?])),
        DataType::UInt16 => Arc::new(UInt16Array::from(vec![json_integer::<u16>(value, side)?])),
        DataType::UInt32 => Arc::new(UInt32Array::from(vec![json_integer::<u32>(value, side)?])),
        DataType::UInt64 => Arc::new(UInt64Array::from(vec![json_integer::<u64>(value, side)?])),
        DataType::Float32 => Arc::new(Float32Array::from(vec![f32_bound(
            json_float(value, side)?,
            side,
        )?])),
        DataType::Float64 => Arc::new(Float64Array::from(vec![json_float(value, side)?])),
        DataType::Decimal128(precision, scale) => {
            let decimal = json_decimal(value)?;
            let scaled = decimal.to_scaled_i128(i64::from(*scale), side.rounding())?;
            Arc::new(
                Decimal128Array::from(vec![scaled])
                    .with_precision_and_scale(*precision, *scale)
                    .ok()?,
            )
        }
        DataType::Date32 => Arc::new(Date32Array::from(vec![parse_date_days(value.as_str()?)?])),
        DataType::Timestamp(unit, tz) => {
            let parsed = parse_timestamp_text(value.as_str()?)?;
            let utc = parsed.naive.and_utc();
            // Floor to whole microseconds; the offset is ignored for wall-clock (ntz) values.
            let mut micros = utc.timestamp_micros();
            if tz.is_some() {
                let offset = i64::from(parsed.offset_seconds.unwrap_or(0));
                micros = micros.checked_sub(offset.checked_mul(1_000_000)?)?;
            }
            let micros = match side {
                Side::Max => {
                    let sub_micro = i64::from(!utc.timestamp_subsec_nanos().is_multiple_of(1000));
                    micros.checked_add(TIMESTAMP_TRUNCATION_MICROS + sub_micro)?
                }
                Side::Min if micros < 0 => micros.checked_sub(TIMESTAMP_TRUNCATION_MICROS)?,
                Side::Min => micros,
            };
            timestamp_array(
                micros_to_unit(micros, *unit, side.rounding())?,
                *unit,
                tz.clone(),
            )
        }
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
            let text = value.as_str()?;
            if side == Side::Max && text.chars().count() >= STRING_PREFIX_LENGTH {
                return None;
            }
            match data_type {
                DataType::LargeUtf8 => Arc::new(LargeStringArray::from(vec![text])),
                DataType::Utf8View => Arc::new(StringViewArray::from(vec![text])),
                _ => Arc::new(StringArray::from(vec![text])),
            }
        }
        DataType::Boolean => Arc::new(BooleanArray::from(vec![value.as_bool()?])),
        _ => return None,
    };
    let array = normalize_floats(array);
    // A NaN bound says nothing usable: writers disagree on whether NaN enters min/max.
    (!is_nan(&array)).then_some(array)
}

/// An integer bound: exact for JSON integers, rounded outward for anything else.
fn json_integer<T: TryFrom<i128>>(value: &Json, side: Side) -> Option<T> {
    let wide = if let Some(integer) = value.as_i64() {
        i128::from(integer)
    } else if let Some(integer) = value.as_u64() {
        i128::from(integer)
    } else {
        let decimal = match value {
            Json::String(text) => DecimalText::parse(text)?,
            _ => DecimalText::parse(&format!("{:e}", widen_f64(value.as_f64()?, side)))?,
        };
        decimal.to_scaled_i128(0, side.rounding())?
    };
    // A bound outside the type's range is dropped (no value can lie beyond it anyway).
    T::try_from(wide).ok()
}

/// A float bound. JSON integers up to 2^53 and strings (`"NaN"`, `"Infinity"`) are exact;
/// other JSON numbers are widened outward because serde_json may have rounded them.
fn json_float(value: &Json, side: Side) -> Option<f64> {
    const EXACT_INTEGER_LIMIT: u64 = 1 << 53;
    if let Some(integer) = value.as_i64() {
        let parsed: f64 = integer.to_string().parse().ok()?;
        return Some(if integer.unsigned_abs() <= EXACT_INTEGER_LIMIT {
            parsed
        } else {
            widen_f64(parsed, side)
        });
    }
    if let Some(integer) = value.as_u64() {
        let parsed: f64 = integer.to_string().parse().ok()?;
        return Some(if integer <= EXACT_INTEGER_LIMIT {
            parsed
        } else {
            widen_f64(parsed, side)
        });
    }
    match value {
        Json::String(text) => text.parse().ok(),
        _ => Some(widen_f64(value.as_f64()?, side)),
    }
}

/// A decimal statistic as exact text; a JSON number that is not an integer went through an
/// `f64`, so its text is taken from the widened float (rounded outward by the caller per side).
fn json_decimal(value: &Json) -> Option<DecimalTextBound> {
    Some(match value {
        Json::String(text) => DecimalTextBound::Exact(DecimalText::parse(text)?),
        Json::Number(number) if number.is_i64() || number.is_u64() => {
            DecimalTextBound::Exact(DecimalText::parse(&number.to_string())?)
        }
        _ => DecimalTextBound::Approximate(value.as_f64().filter(|x| x.is_finite())?),
    })
}

/// A decimal statistic: exact text, or a float that must be widened before use.
enum DecimalTextBound {
    Exact(DecimalText),
    Approximate(f64),
}

impl DecimalTextBound {
    fn to_scaled_i128(&self, scale: i64, rounding: Rounding) -> Option<i128> {
        match self {
            Self::Exact(decimal) => decimal.to_scaled_i128(scale, rounding),
            Self::Approximate(value) => {
                let side = if rounding == Rounding::Floor {
                    Side::Min
                } else {
                    Side::Max
                };
                DecimalText::parse(&format!("{:e}", widen_f64(*value, side)))?
                    .to_scaled_i128(scale, rounding)
            }
        }
    }
}

/// Moves a float read from JSON outward so that it bounds the value that was written.
fn widen_f64(value: f64, side: Side) -> f64 {
    if !value.is_finite() {
        return value;
    }
    if value.abs() < TINY_FLOAT {
        return match side {
            Side::Min => -TINY_FLOAT,
            Side::Max => TINY_FLOAT,
        };
    }
    let mut widened = value;
    for _ in 0..FLOAT_WIDENING_ULPS {
        widened = match side {
            Side::Min => widened.next_down(),
            Side::Max => widened.next_up(),
        };
    }
    widened
}

/// The `f32` bound nearest to `value` on the safe side.
fn f32_bound(value: f64, side: Side) -> Option<f32> {
    if value.is_nan() {
        return Some(f32::NAN);
    }
    let mut nearest: f32 = format!("{value:e}").parse().ok()?;
    match side {
        Side::Min if f64::from(nearest) > value => nearest = nearest.next_down(),
        Side::Max if f64::from(nearest) < value => nearest = nearest.next_up(),
        _ => {}
    }
    Some(nearest)
}

fn is_float(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Float16 | DataType::Float32 | DataType::Float64
    )
}

fn is_nan(array: &ArrayRef) -> bool {
    if array.is_empty() || array.is_null(0) {
        return false;
    }
    match array.data_type() {
        DataType::Float32 => array
            .as_any()
            .downcast_ref::<arrow::array::PrimitiveArray<Float32Type>>()
            .is_some_and(|values| values.value(0).is_nan()),
        DataType::Float64 => array
            .as_any()
            .downcast_ref::<arrow::array::PrimitiveArray<Float64Type>>()
            .is_some_and(|values| values.value(0).is_nan()),
        _ => false,
    }
}

fn nan_of(data_type: &DataType) -> Option<ArrayRef> {
    match data_type {
        DataType::Float32 => Some(Arc::new(Float32Array::from(vec![f32::NAN]))),
        DataType::Float64 => Some(Arc::new(Float64Array::from(vec![f64::NAN]))),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Pruning
// ---------------------------------------------------------------------------------------------

/// Whether a file must be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Some row may satisfy the predicate (or nothing is known).
    Keep,
    /// No row can satisfy the predicate. The reason names the columns and statistics that prove
    /// it (`partition column region`, `max of age`, `all nulls in x`), never values.
    Skip(String),
}

/// Decides whether a file can hold a row for which `predicate` is TRUE.
///
/// `partition_values` maps each partition column's logical name to its length-1 value (as
/// `crate::partition::parse_partition_value` returns it); `stats` are the file's statistics,
/// if any. See the [module docs](self) for the semantics.
#[must_use]
pub fn prune(
    predicate: &BoundExpression,
    partition_values: &HashMap<String, ArrayRef>,
    stats: Option<&FileStats>,
) -> Verdict {
    if stats.and_then(|stats| stats.num_records) == Some(0) {
        return Verdict::Skip("file has no records".to_string());
    }
    let pruner = Pruner {
        partition_values,
        stats,
    };
    let outcome = pruner.outcome(predicate);
    if outcome.may_true {
        Verdict::Keep
    } else {
        Verdict::Skip(
            outcome
                .no_true
                .unwrap_or_else(|| "predicate is never true".to_string()),
        )
    }
}

/// The truth values an expression may take over a file's rows, with the reasons a value is
/// impossible.
#[derive(Debug, Clone)]
struct Outcome {
    may_true: bool,
    may_false: bool,
    may_null: bool,
    /// Why no row is TRUE (set when `!may_true`).
    no_true: Option<String>,
    /// Why no row is FALSE (set when `!may_false`).
    no_false: Option<String>,
}

impl Outcome {
    fn unknown() -> Self {
        Self {
            may_true: true,
            may_false: true,
            may_null: true,
            no_true: None,
            no_false: None,
        }
    }

    /// Every row has the same truth value (`None` is NULL), proven by `why`.
    fn exact(value: Option<bool>, why: &str) -> Self {
        let reason = |impossible: bool| impossible.then(|| why.to_string());
        Self {
            may_true: value == Some(true),
            may_false: value == Some(false),
            may_null: value.is_none(),
            no_true: reason(value != Some(true)),
            no_false: reason(value != Some(false)),
        }
    }

    fn not(self) -> Self {
        Self {
            may_true: self.may_false,
            may_false: self.may_true,
            may_null: self.may_null,
            no_true: self.no_false,
            no_false: self.no_true,
        }
    }

    /// Kleene AND: TRUE needs every child TRUE, one FALSE child suffices for FALSE.
    fn all(children: impl IntoIterator<Item = Outcome>) -> Self {
        let (may_true, may_false, may_null, no_true, no_false) = combine(
            children,
            |o| (o.may_true, &o.no_true),
            |o| (o.may_false, &o.no_false),
        );
        Self {
            may_true,
            may_false,
            may_null,
            no_true,
            no_false,
        }
    }

    /// Kleene OR: one TRUE child suffices for TRUE, FALSE needs every child FALSE.
    fn any(children: impl IntoIterator<Item = Outcome>) -> Self {
        let (may_false, may_true, may_null, no_false, no_true) = combine(
            children,
            |o| (o.may_false, &o.no_false),
            |o| (o.may_true, &o.no_true),
        );
        Self {
            may_true,
            may_false,
            may_null,
            no_true,
            no_false,
        }
    }
}

/// The shared shape of AND and OR. `every` is the truth value that needs every child (TRUE for
/// AND), `some` the one any child produces (FALSE for AND). Returns `(may_every, may_some,
/// may_null, why_not_every, why_not_some)`.
fn combine(
    children: impl IntoIterator<Item = Outcome>,
    every: impl Fn(&Outcome) -> (bool, &Option<String>),
    some: impl Fn(&Outcome) -> (bool, &Option<String>),
) -> (bool, bool, bool, Option<String>, Option<String>) {
    let mut may_every = true;
    let mut may_some = false;
    let mut may_null = false;
    let mut why_not_every = None;
    let mut why_not_some: Vec<String> = Vec::new();
    for child in children {
        let (child_every, child_why_not_every) = every(&child);
        if !child_every && may_every {
            may_every = false;
            why_not_every = Some(
                child_why_not_every
                    .clone()
                    .unwrap_or_else(|| "predicate".to_string()),
            );
        }
        let (child_some, child_why_not_some) = some(&child);
        may_some |= child_some;
        if !child_some {
            let why = child_why_not_some
                .clone()
                .unwrap_or_else(|| "predicate".to_string());
            if !why_not_some.contains(&why) {
                why_not_some.push(why);
            }
        }
        may_null |= child.may_null;
    }
    let why_not_some = if may_some {
        None
    } else if why_not_some.is_empty() {
        Some("constant predicate".to_string())
    } else {
        Some(why_not_some.join(", "))
    };
    let why_not_every = if may_every { None } else { why_not_every };
    (may_every, may_some, may_null, why_not_every, why_not_some)
}

/// What a file is known to hold in one column.
enum Facts {
    /// Every row holds this one value (a partition column; may be NULL).
    Exact { value: ArrayRef, why: String },
    /// Bounds from statistics (or nothing at all).
    Range(Range),
}

struct Range {
    name: String,
    min: Option<ArrayRef>,
    max: Option<ArrayRef>,
    /// A NaN of the column's type when the column is a float: NaN may be present whatever the
    /// bounds say.
    nan: Option<ArrayRef>,
    may_null: bool,
    may_value: bool,
}

impl Range {
    /// Whether some non-NULL value in the range may satisfy `value op literal`; if not, which
    /// bound proves it.
    fn may_satisfy(&self, op: CompareOp, literal: &ArrayRef) -> (bool, &'static str) {
        let holds = |bound: &Option<ArrayRef>, op| {
            bound.as_ref().and_then(|b| compare(op, b, literal)) == Some(true)
        };
        let excluded = match op {
            CompareOp::Eq if holds(&self.min, CompareOp::Gt) => Some("min"),
            CompareOp::Eq if holds(&self.max, CompareOp::Lt) => Some("max"),
            CompareOp::NotEq
                if holds(&self.min, CompareOp::Eq) && holds(&self.max, CompareOp::Eq) =>
            {
                Some("min/max")
            }
            CompareOp::Lt if holds(&self.min, CompareOp::GtEq) => Some("min"),
            CompareOp::LtEq if holds(&self.min, CompareOp::Gt) => Some("min"),
            CompareOp::Gt if holds(&self.max, CompareOp::LtEq) => Some("max"),
            CompareOp::GtEq if holds(&self.max, CompareOp::Lt) => Some("max"),
            _ => None,
        };
        match excluded {
            // A NaN row satisfies `op` unless the comparison is provably false for NaN.
            Some(_)
                if self
                    .nan
                    .as_ref()
                    .is_some_and(|nan| compare(op, nan, literal) != Some(false)) =>
            {
                (true, "")
            }
            Some(bound) => (false, bound),
            None => (true, ""),
        }
    }
}

/// `left op right` on two length-1 arrays: `Some(Some(b))` for a value, `Some(None)` for NULL,
/// `None` when it cannot be computed.
fn compare_nullable(op: CompareOp, left: &ArrayRef, right: &ArrayRef) -> Option<Option<bool>> {
    if left.len() != 1 || right.len() != 1 {
        return None;
    }
    let result = op
        .apply(
            &Scalar::new(Arc::clone(left)),
            &Scalar::new(Arc::clone(right)),
        )
        .ok()?;
    if result.len() != 1 {
        return None;
    }
    Some(result.is_valid(0).then(|| result.value(0)))
}

/// `left op right` for non-NULL values; `None` when unknown.
fn compare(op: CompareOp, left: &ArrayRef, right: &ArrayRef) -> Option<bool> {
    compare_nullable(op, left, right).flatten()
}

struct Pruner<'a> {
    partition_values: &'a HashMap<String, ArrayRef>,
    stats: Option<&'a FileStats>,
}

impl Pruner<'_> {
    fn outcome(&self, expr: &BoundExpression) -> Outcome {
        match expr {
            BoundExpression::Literal(scalar) => {
                let array = literal_array(scalar);
                match array.as_any().downcast_ref::<BooleanArray>() {
                    Some(booleans) if booleans.len() == 1 => Outcome::exact(
                        booleans.is_valid(0).then(|| booleans.value(0)),
                        "constant predicate",
                    ),
                    _ => Outcome::unknown(),
                }
            }
            BoundExpression::Column(column) if column.data_type == DataType::Boolean => {
                let truth: ArrayRef = Arc::new(BooleanArray::from(vec![true]));
                self.compare_column(CompareOp::Eq, column, &truth)
            }
            BoundExpression::Column(_) => Outcome::unknown(),
            BoundExpression::Compare { op, left, right } => match (left.as_ref(), right.as_ref()) {
                (BoundExpression::Column(column), BoundExpression::Literal(literal)) => {
                    self.compare_column(*op, column, &literal_array(literal))
                }
                (BoundExpression::Literal(literal), BoundExpression::Column(column)) => {
                    self.compare_column(op.flip(), column, &literal_array(literal))
                }
                (BoundExpression::Literal(left), BoundExpression::Literal(right)) => {
                    compare_literals(*op, left, right)
                }
                _ => Outcome::unknown(),
            },
            BoundExpression::And(children) => {
                Outcome::all(children.iter().map(|child| self.outcome(child)))
            }
            BoundExpression::Or(children) => {
                Outcome::any(children.iter().map(|child| self.outcome(child)))
            }
            BoundExpression::Not(inner) => self.outcome(inner).not(),
            BoundExpression::IsNull { expr, negated } => {
                let outcome = match expr.as_ref() {
                    BoundExpression::Column(column) => self.is_null(column),
                    BoundExpression::Literal(literal) => Outcome::exact(
                        Some(literal_array(literal).is_null(0)),
                        "constant predicate",
                    ),
                    _ => Outcome::unknown(),
                };
                if *negated { outcome.not() } else { outcome }
            }
            BoundExpression::InList {
                expr,
                list,
                negated,
            } => {
                let outcome = Outcome::any(list.iter().map(|item| match (expr.as_ref(), item) {
                    (BoundExpression::Column(column), BoundExpression::Literal(literal)) => {
                        self.compare_column(CompareOp::Eq, column, &literal_array(literal))
                    }
                    (BoundExpression::Literal(left), BoundExpression::Literal(right)) => {
                        compare_literals(CompareOp::Eq, left, right)
                    }
                    _ => Outcome::unknown(),
                }));
                if *negated { outcome.not() } else { outcome }
            }
            _ => Outcome::unknown(),
        }
    }

    fn facts(&self, column: &BoundColumn) -> Facts {
        let name = column.name();
        let unknown = |name: String| {
            Facts::Range(Range {
                name,
                min: None,
                max: None,
                nan: None,
                may_null: true,
                may_value: true,
            })
        };
        if let [top] = column.path.as_slice()
            && let Some(value) = self.partition_values.get(top)
        {
            if value.len() == 1 && value.data_type() == &column.data_type {
                return Facts::Exact {
                    value: normalize_floats(Arc::clone(value)),
                    why: format!("partition column {name}"),
                };
            }
            // A value of another type than the schema's is not trusted.
            return unknown(name);
        }
        let Some(stats) = self.stats else {
            return unknown(name);
        };
        let bound = |map: &HashMap<String, ArrayRef>| {
            map.get(&name)
                .filter(|array| {
                    array.len() == 1 && array.is_valid(0) && array.data_type() == &column.data_type
                })
                .map(|array| normalize_floats(Arc::clone(array)))
                .filter(|array| !is_nan(array))
        };
        let null_count = stats.null_count.get(&name).copied();
        let all_null = matches!(
            (null_count, stats.num_records),
            (Some(nulls), Some(records)) if nulls == records
        );
        Facts::Range(Range {
            min: bound(&stats.min_values),
            max: bound(&stats.max_values),
            nan: if is_float(&column.data_type) {
                nan_of(&column.data_type)
            } else {
                None
            },
            may_null: null_count != Some(0),
            may_value: !all_null,
            name,
        })
    }

    fn compare_column(&self, op: CompareOp, column: &BoundColumn, literal: &ArrayRef) -> Outcome {
        let literal = normalize_floats(Arc::clone(literal));
        if literal.len() != 1 {
            return Outcome::unknown();
        }
        if literal.is_null(0) {
            return Outcome::exact(None, "comparison with NULL");
        }
        match self.facts(column) {
            Facts::Exact { value, why } => match compare_nullable(op, &value, &literal) {
                Some(result) => Outcome::exact(result, &why),
                None => Outcome::unknown(),
            },
            Facts::Range(range) => {
                if !range.may_value {
                    return Outcome::exact(None, &format!("all nulls in {}", range.name));
                }
                let (may_true, why_not_true) = range.may_satisfy(op, &literal);
                let (may_false, why_not_false) = range.may_satisfy(op.negate(), &literal);
                Outcome {
                    may_true,
                    may_false,
                    may_null: range.may_null,
                    no_true: (!may_true).then(|| format!("{why_not_true} of {}", range.name)),
                    no_false: (!may_false).then(|| format!("{why_not_false} of {}", range.name)),
                }
            }
        }
    }

    fn is_null(&self, column: &BoundColumn) -> Outcome {
        match self.facts(column) {
            Facts::Exact { value, why } => Outcome::exact(Some(value.is_null(0)), &why),
            Facts::Range(range) => {
                let why = || format!("null count of {}", range.name);
                Outcome {
                    may_true: range.may_null,
                    may_false: range.may_value,
                    may_null: false,
                    no_true: (!range.may_null).then(why),
                    no_false: (!range.may_value).then(why),
                }
            }
        }
    }
}

fn literal_array(literal: &Scalar<ArrayRef>) -> ArrayRef {
    literal.clone().into_inner()
}

fn compare_literals(op: CompareOp, left: &Scalar<ArrayRef>, right: &Scalar<ArrayRef>) -> Outcome {
    let left = normalize_floats(literal_array(left));
    let right = normalize_floats(literal_array(right));
    match compare_nullable(op, &left, &right) {
        Some(result) => Outcome::exact(result, "constant predicate"),
        None => Outcome::unknown(),
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on an unexpected error (STYLE.md plans allow-unwrap-in-tests)"
)]
mod tests {
    use super::*;
    use crate::expression::parse;
    use arrow::array::AsArray;
    use arrow::datatypes::{
        Decimal128Type, Field, Fields, Schema, TimeUnit, TimestampMicrosecondType,
    };
    use arrow::record_batch::RecordBatch;
    use proptest::prelude::*;

    fn column(name: &str, data_type: DataType) -> StatsColumn {
        StatsColumn {
            logical_name: name.to_string(),
            physical_path: vec![name.to_string()],
            data_type,
        }
    }

    fn ts_utc() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }

    fn ts_ntz() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    }

    fn verdict(
        sql: &str,
        schema: &Schema,
        partitions: &HashMap<String, ArrayRef>,
        stats: Option<&FileStats>,
    ) -> Verdict {
        let predicate = parse(sql).unwrap().bind(schema).unwrap();
        prune(&predicate, partitions, stats)
    }

    fn schema_of(columns: &[StatsColumn]) -> Schema {
        Schema::new(
            columns
                .iter()
                .map(|c| Field::new(&c.logical_name, c.data_type.clone(), true))
                .collect::<Vec<_>>(),
        )
    }

    /// Checks verdicts against stats JSON for single-column-path tables.
    fn check(stats_json: &str, columns: &[StatsColumn], cases: &[(&str, bool)]) {
        let stats = FileStats::from_json(stats_json, columns).unwrap();
        let schema = schema_of(columns);
        for (sql, skip) in cases {
            let result = verdict(sql, &schema, &HashMap::new(), Some(&stats));
            assert_eq!(
                matches!(result, Verdict::Skip(_)),
                *skip,
                "{sql}: {result:?}"
            );
        }
    }

    #[test]
    fn spark_stats_for_all_types() {
        // From data-skipping-basic-stats-all-types (Spark 3.5, session zone -08:00).
        let json = r#"{"numRecords":1,"minValues":{"as_int":0,"as_long":0,"as_byte":0,"as_short":0,"as_float":0.0,"as_double":0.0,"as_string":"0","as_date":"2000-01-01","as_timestamp":"2000-01-01T00:00:00.000-08:00","as_big_decimal":0},"maxValues":{"as_int":0,"as_long":0,"as_byte":0,"as_short":0,"as_float":0.0,"as_double":0.0,"as_string":"0","as_date":"2000-01-01","as_timestamp":"2000-01-01T00:00:00.000-08:00","as_big_decimal":0},"nullCount":{"as_int":0,"as_long":0,"as_byte":0,"as_short":0,"as_float":0,"as_double":0,"as_string":0,"as_date":0,"as_timestamp":0,"as_big_decimal":0}}"#;
        let columns = [
            column("as_int", DataType::Int32),
            column("as_long", DataType::Int64),
            column("as_byte", DataType::Int8),
            column("as_short", DataType::Int16),
            column("as_float", DataType::Float32),
            column("as_double", DataType::Float64),
            column("as_string", DataType::Utf8),
            column("as_date", DataType::Date32),
            column("as_timestamp", ts_utc()),
            column("as_big_decimal", DataType::Decimal128(38, 0)),
        ];
        let stats = FileStats::from_json(json, &columns).unwrap();
        assert_eq!(stats.num_records, Some(1));
        assert!(stats.tight_bounds);
        assert_eq!(stats.null_count.len(), 10);
        let ts = stats.min_values["as_timestamp"].as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 946_713_600_000_000);
        let ts = stats.max_values["as_timestamp"].as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 946_713_600_000_999);
        check(
            json,
            &columns,
            &[
                ("as_int = 0", false),
                ("as_int > 0", true),
                ("as_long < 0", true),
                ("as_byte <> 0", true),
                ("as_short >= 0", false),
                ("as_string = '0'", false),
                ("as_string > '0'", true),
                ("as_date = '2000-01-01'", false),
                ("as_date > '2000-01-01'", true),
                ("as_timestamp = '2000-01-01T08:00:00Z'", false),
                ("as_timestamp < '2000-01-01T08:00:00Z'", true),
                ("as_timestamp > '2000-01-01T08:00:00.000999Z'", true),
                ("as_big_decimal = 0", false),
                ("as_big_decimal > 0", true),
                ("as_int IS NULL", true),
                ("as_int IS NOT NULL", false),
                // Float bounds read from JSON are widened and NaN is always possible above.
                ("as_double < 0", false),
                ("as_double < -0.001", true),
                ("as_double > 0.001", false),
                ("as_double = 1", true),
                ("as_float = 1", true),
            ],
        );
    }

    #[test]
    fn timestamp_maxima_cover_truncated_microseconds() {
        // timestamp-truncation-stats: the second file's real maximum is 4.000500 s.
        let json = r#"{"numRecords":2,"minValues":{"id":3,"ts_col":"1970-01-01T00:00:03.000Z"},"maxValues":{"id":4,"ts_col":"1970-01-01T00:00:04.000Z"},"nullCount":{"id":0,"ts_col":0}}"#;
        let cases = [
            ("ts_col > TIMESTAMP '1970-01-01T00:00:04Z'", false),
            ("ts_col >= '1970-01-01 00:00:04.000500'", false),
            ("ts_col > '1970-01-01 00:00:04.000998'", false),
            ("ts_col > '1970-01-01 00:00:04.000999'", true),
            ("ts_col < '1970-01-01 00:00:03'", true),
            ("ts_col <= '1970-01-01 00:00:03'", false),
        ];
        check(
            json,
            &[column("id", DataType::Int64), column("ts_col", ts_utc())],
            &cases,
        );
        // The same for timestamp_ntz, whose stats carry no offset.
        let ntz = r#"{"numRecords":2,"minValues":{"ts_col":"1970-01-01T00:00:03.000"},"maxValues":{"ts_col":"1970-01-01T00:00:04.000"},"nullCount":{"ts_col":0}}"#;
        check(ntz, &[column("ts_col", ts_ntz())], &cases);
        // Before 1970 the minimum is widened too (a writer may have truncated toward zero).
        let negative = r#"{"numRecords":1,"minValues":{"t":"1969-12-31T23:59:59.999Z"},"maxValues":{"t":"1969-12-31T23:59:59.999Z"},"nullCount":{"t":0}}"#;
        check(
            negative,
            &[column("t", ts_utc())],
            &[
                ("t < '1969-12-31 23:59:59.999'", false),
                ("t < '1969-12-31 23:59:59.998'", true),
            ],
        );
    }

    #[test]
    fn nan_is_always_possible_in_float_columns() {
        let columns = [column("x", DataType::Float64)];
        // Bounds that ignore NaN (parquet style).
        check(
            r#"{"numRecords":3,"minValues":{"x":1},"maxValues":{"x":2},"nullCount":{"x":0}}"#,
            &columns,
            &[
                ("x > 5", false),
                ("x >= 5", false),
                ("x = 'NaN'", false),
                ("x = 5", true),
                ("x < 1", true),
                ("x <= 0.5", true),
                ("x IN (0, 7)", true),
                ("x IN (0, 'NaN')", false),
                ("x <> 1", false),
                ("NOT (x >= 1)", true),
            ],
        );
        // Spark style: NaN as the maximum says nothing about the top.
        check(
            r#"{"numRecords":3,"minValues":{"x":"-Infinity"},"maxValues":{"x":"NaN"},"nullCount":{"x":0}}"#,
            &columns,
            &[
                ("x > 5", false),
                ("x < '-Infinity'", true),
                ("x = 5", false),
            ],
        );
        // A NaN minimum (IEEE-propagating writers) is ignored as well.
        check(
            r#"{"numRecords":3,"minValues":{"x":"NaN"},"maxValues":{"x":"NaN"},"nullCount":{"x":0}}"#,
            &columns,
            &[("x < 0", false), ("x = 'NaN'", false)],
        );
        // Partition values are exact, NaN included.
        let schema = Schema::new(vec![Field::new("p", DataType::Float64, true)]);
        let nan: ArrayRef = Arc::new(Float64Array::from(vec![f64::NAN]));
        let partitions = HashMap::from([("p".to_string(), nan)]);
        assert_eq!(
            verdict("p = 'NaN'", &schema, &partitions, None),
            Verdict::Keep
        );
        assert_eq!(
            verdict("p > 'Infinity'", &schema, &partitions, None),
            Verdict::Keep
        );
        assert!(matches!(
            verdict("p < 0", &schema, &partitions, None),
            Verdict::Skip(_)
        ));
    }

    #[test]
    fn long_string_maxima_are_not_bounds() {
        let columns = [column("s", DataType::Utf8)];
        let long = "a".repeat(32);
        let json = format!(
            r#"{{"numRecords":2,"minValues":{{"s":"{long}"}},"maxValues":{{"s":"{long}"}},"nullCount":{{"s":0}}}}"#
        );
        check(&json, &columns, &[("s > 'b'", false), ("s < 'a'", true)]);
        check(
            r#"{"numRecords":2,"minValues":{"s":"abc"},"maxValues":{"s":"abd"},"nullCount":{"s":0}}"#,
            &columns,
            &[
                ("s > 'b'", true),
                ("s >= 'abd'", false),
                ("s = 'abcz'", false),
                ("s = 'abe'", true),
            ],
        );
    }

    #[test]
    fn decimal_bounds_are_exact_or_widened() {
        let columns = [column("amount", DataType::Decimal128(10, 2))];
        // A JSON number went through an f64: the bound is widened to the next cent.
        let number = r#"{"numRecords":1,"minValues":{"amount":123.45},"maxValues":{"amount":123.45},"nullCount":{"amount":0}}"#;
        let stats = FileStats::from_json(number, &columns).unwrap();
        assert_eq!(
            stats.max_values["amount"]
                .as_primitive::<Decimal128Type>()
                .value(0),
            12346
        );
        assert_eq!(
            stats.min_values["amount"]
                .as_primitive::<Decimal128Type>()
                .value(0),
            12344
        );
        check(
            number,
            &columns,
            &[("amount > 123.45", false), ("amount > 123.46", true)],
        );
        // A string or an integer is exact.
        let exact = r#"{"numRecords":1,"minValues":{"amount":"123.45"},"maxValues":{"amount":124},"nullCount":{"amount":0}}"#;
        check(
            exact,
            &columns,
            &[
                ("amount < 123.45", true),
                ("amount > 124", true),
                ("amount = 124", false),
            ],
        );
        // Large integers survive exactly.
        let columns = [column("id", DataType::Int64)];
        check(
            r#"{"numRecords":1,"minValues":{"id":9007199254740993},"maxValues":{"id":9007199254740993}}"#,
            &columns,
            &[
                ("id = 9007199254740993", false),
                ("id = 9007199254740992", true),
            ],
        );
    }

    #[test]
    fn null_counts() {
        let columns = [column("x", DataType::Int64)];
        // All nulls: every comparison is NULL.
        let all_null = r#"{"numRecords":3,"tightBounds":false,"minValues":{},"maxValues":{},"nullCount":{"x":3}}"#;
        check(
            all_null,
            &columns,
            &[
                ("x = 1", true),
                ("x <> 1", true),
                ("NOT (x = 1)", true),
                ("x IS NULL", false),
                ("x IS NOT NULL", true),
                ("x IS NULL OR x = 1", false),
            ],
        );
        let some_null = r#"{"numRecords":3,"tightBounds":false,"minValues":{"x":1},"maxValues":{"x":1},"nullCount":{"x":2}}"#;
        check(
            some_null,
            &columns,
            &[
                ("x IS NULL", false),
                ("x IS NOT NULL", false),
                ("x <> 1", true),
            ],
        );
        let no_null =
            r#"{"numRecords":3,"minValues":{"x":1},"maxValues":{"x":5},"nullCount":{"x":0}}"#;
        check(
            no_null,
            &columns,
            &[
                ("x IS NULL", true),
                ("NOT (x IS NOT NULL)", true),
                ("x IS NOT NULL", false),
            ],
        );
        let empty = r#"{"numRecords":0}"#;
        let stats = FileStats::from_json(empty, &columns).unwrap();
        assert_eq!(
            verdict("TRUE", &schema_of(&columns), &HashMap::new(), Some(&stats)),
            Verdict::Skip("file has no records".to_string())
        );
    }

    #[test]
    fn missing_or_malformed_stats_keep_files() {
        let columns = [column("x", DataType::Int64)];
        for json in [
            "not json",
            "[1, 2]",
            "{}",
            r#"{"numRecords":"many","minValues":{"x":"abc"},"maxValues":{"x":[1]},"nullCount":{"x":-1}}"#,
            r#"{"numRecords":3,"minValues":{"y":10},"maxValues":{"y":10}}"#,
        ] {
            let stats = FileStats::from_json(json, &columns).unwrap();
            assert!(
                stats.min_values.is_empty() && stats.max_values.is_empty(),
                "{json}"
            );
            assert_eq!(
                verdict("x = 1", &schema_of(&columns), &HashMap::new(), Some(&stats)),
                Verdict::Keep
            );
        }
        assert_eq!(
            verdict("x = 1", &schema_of(&columns), &HashMap::new(), None),
            Verdict::Keep
        );
        let bad = StatsColumn {
            logical_name: "x".into(),
            physical_path: vec![],
            data_type: DataType::Int64,
        };
        assert!(FileStats::from_json("{}", &[bad]).is_err());
    }

    #[test]
    fn physical_and_nested_paths() {
        let columns = [
            StatsColumn {
                logical_name: "age".into(),
                physical_path: vec!["col-1".into()],
                data_type: DataType::Int32,
            },
            StatsColumn {
                logical_name: "person.height".into(),
                physical_path: vec!["col-2".into(), "col-3".into()],
                data_type: DataType::Int32,
            },
        ];
        let json = r#"{"numRecords":5,"minValues":{"col-1":10,"col-2":{"col-3":150}},"maxValues":{"col-1":20,"col-2":{"col-3":190}},"nullCount":{"col-1":0,"col-2":{"col-3":1}}}"#;
        let stats = FileStats::from_json(json, &columns).unwrap();
        let schema = Schema::new(vec![
            Field::new("age", DataType::Int32, true),
            Field::new(
                "person",
                DataType::Struct(Fields::from(vec![Field::new(
                    "height",
                    DataType::Int32,
                    true,
                )])),
                true,
            ),
        ]);
        let none = HashMap::new();
        assert_eq!(
            verdict("age > 20", &schema, &none, Some(&stats)),
            Verdict::Skip("max of age".to_string())
        );
        assert_eq!(
            verdict("person.height < 150", &schema, &none, Some(&stats)),
            Verdict::Skip("min of person.height".to_string())
        );
        assert_eq!(
            verdict("person.height = 170", &schema, &none, Some(&stats)),
            Verdict::Keep
        );
        let debug = format!("{stats:?}");
        assert!(
            debug.contains("person.height") && !debug.contains("150"),
            "{debug}"
        );
    }

    #[test]
    fn partitions_and_reasons() {
        let schema = Schema::new(vec![
            Field::new("region", DataType::Utf8, true),
            Field::new("age", DataType::Int64, true),
        ]);
        let us: ArrayRef = Arc::new(StringArray::from(vec!["us"]));
        let null: ArrayRef = Arc::new(StringArray::from(vec![None::<&str>]));
        let stats = FileStats::from_json(
            r#"{"numRecords":4,"minValues":{"age":30},"maxValues":{"age":40},"nullCount":{"age":0}}"#,
            &[column("age", DataType::Int64)],
        )
        .unwrap();
        let in_us = HashMap::from([("region".to_string(), us)]);
        let in_null = HashMap::from([("region".to_string(), null)]);
        let skip = |reason: &str| Verdict::Skip(reason.to_string());
        let cases = [
            ("region = 'eu'", &in_us, skip("partition column region")),
            ("region = 'us'", &in_us, Verdict::Keep),
            ("region = 'eu'", &in_null, skip("partition column region")),
            ("region IS NULL", &in_null, Verdict::Keep),
            (
                "region IS NOT NULL",
                &in_null,
                skip("partition column region"),
            ),
            (
                "NOT (region = 'us')",
                &in_us,
                skip("partition column region"),
            ),
            ("region IN ('eu', 'us')", &in_us, Verdict::Keep),
            (
                "region NOT IN ('eu', 'us')",
                &in_us,
                skip("partition column region"),
            ),
            (
                "region NOT IN ('eu', NULL)",
                &in_us,
                skip("comparison with NULL"),
            ),
            (
                "age > 40 OR region = 'eu'",
                &in_us,
                skip("max of age, partition column region"),
            ),
            (
                "age > 40 OR age < 30",
                &in_us,
                skip("max of age, min of age"),
            ),
            (
                "age >= 30 AND age <= 40 AND region = 'us'",
                &in_us,
                Verdict::Keep,
            ),
            ("age BETWEEN 41 AND 50", &in_us, skip("max of age")),
            (
                "age NOT BETWEEN 20 AND 50",
                &in_us,
                skip("min of age, max of age"),
            ),
            ("NOT (age > 29)", &in_us, skip("min of age")),
            ("NOT (age <> 35)", &in_us, Verdict::Keep),
            ("age = NULL", &in_us, skip("comparison with NULL")),
            ("FALSE", &in_us, skip("constant predicate")),
            ("1 > 2", &in_us, skip("constant predicate")),
            (
                "NOT TRUE OR region = 'eu'",
                &in_us,
                skip("constant predicate, partition column region"),
            ),
            ("age = age", &in_us, Verdict::Keep),
            ("41 <= age", &in_us, skip("max of age")),
        ];
        for (sql, partitions, expected) in cases {
            assert_eq!(
                verdict(sql, &schema, partitions, Some(&stats)),
                expected,
                "{sql}"
            );
        }
        // Reasons never quote values.
        if let Verdict::Skip(reason) = verdict("age = 12345", &schema, &in_us, Some(&stats)) {
            assert!(
                !reason.contains("12345") && !reason.contains("30"),
                "{reason}"
            );
        }
        // A partition value of the wrong type is not trusted.
        let wrong: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        let wrong = HashMap::from([("region".to_string(), wrong)]);
        assert_eq!(
            verdict("region = 'eu'", &schema, &wrong, None),
            Verdict::Keep
        );
    }

    // ---- Soundness property ---------------------------------------------------------------

    #[derive(Debug, Clone)]
    struct Row {
        id: Option<i64>,
        name: Option<String>,
        score: Option<f64>,
    }

    #[derive(Debug, Clone)]
    struct File {
        rows: Vec<Row>,
        part: Option<i32>,
        /// How the writer treated NaN in float min/max: 0 Spark (NaN greatest), 1 ignored,
        /// 2 IEEE-propagating (NaN if any).
        nan_mode: u8,
        /// Which columns' statistics the writer left out.
        drop_stats: [bool; 3],
        /// Whether a cut string maximum gets Spark's tie-breaker (else it is a bare prefix).
        tie_breaker: bool,
        tight_bounds: bool,
    }

    const SCORES: [f64; 10] = [
        -1.5,
        -0.0,
        0.0,
        0.1,
        2.5,
        1e300,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        -3.0,
    ];

    fn neg_nan() -> f64 {
        f64::from_bits(0xfff8_0000_0000_0000)
    }

    fn row() -> impl Strategy<Value = Row> {
        (
            proptest::option::weighted(0.8, -5_i64..5),
            proptest::option::weighted(
                0.8,
                // Long names straddle the 32-character cut of string statistics.
                prop_oneof!["[ab]{0,3}", "a{32}[ab]{0,2}".prop_map(String::from)],
            ),
            proptest::option::weighted(
                0.8,
                prop_oneof![proptest::sample::select(SCORES.to_vec()), Just(neg_nan())],
            ),
        )
            .prop_map(|(id, name, score)| Row { id, name, score })
    }

    fn file() -> impl Strategy<Value = File> {
        (
            proptest::collection::vec(row(), 0..6),
            proptest::option::weighted(0.8, -2_i32..3),
            0_u8..3,
            any::<[bool; 3]>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(
                |(rows, part, nan_mode, drop_stats, tight_bounds, tie_breaker)| File {
                    rows,
                    part,
                    nan_mode,
                    drop_stats,
                    tight_bounds,
                    tie_breaker,
                },
            )
    }

    fn soundness_schema() -> Schema {
        Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
            Field::new("score", DataType::Float64, true),
            Field::new("part", DataType::Int32, true),
        ])
    }

    fn json_float_value(value: f64) -> serde_json::Value {
        if value.is_nan() {
            "NaN".into()
        } else if value == f64::INFINITY {
            "Infinity".into()
        } else if value == f64::NEG_INFINITY {
            "-Infinity".into()
        } else {
            serde_json::json!(value)
        }
    }

    /// Exact statistics of a file, as a writer would put them in `add.stats` (with the physical
    /// names `c1`, `c2`, `c3`).
    fn stats_json(file: &File) -> String {
        use serde_json::{Map, Value};
        let mut min = Map::new();
        let mut max = Map::new();
        let mut nulls = Map::new();
        let ids: Vec<i64> = file.rows.iter().filter_map(|r| r.id).collect();
        if let (Some(lo), Some(hi)) = (ids.iter().min(), ids.iter().max()) {
            min.insert("c1".into(), (*lo).into());
            max.insert("c1".into(), (*hi).into());
        }
        let names: Vec<&String> = file.rows.iter().filter_map(|r| r.name.as_ref()).collect();
        if let (Some(lo), Some(hi)) = (names.iter().min(), names.iter().max()) {
            // Writers cut strings to 32 characters; Spark appends a tie-breaker to a cut maximum,
            // others may not.
            let lo: String = lo.chars().take(32).collect();
            let hi: String = if hi.chars().count() > 32 {
                let tie_breaker = file.tie_breaker.then_some('\u{10FFFF}');
                hi.chars().take(32).chain(tie_breaker).collect()
            } else {
                (*hi).clone()
            };
            min.insert("c2".into(), lo.into());
            max.insert("c2".into(), hi.into());
        }
        let scores: Vec<f64> = file.rows.iter().filter_map(|r| r.score).collect();
        let has_nan = scores.iter().any(|s| s.is_nan());
        let normalized: Vec<f64> = scores
            .iter()
            .map(|s| {
                if s.is_nan() {
                    f64::NAN
                } else if *s == 0.0 {
                    0.0
                } else {
                    *s
                }
            })
            .collect();
        let ordered: Vec<f64> = match file.nan_mode {
            0 => normalized,
            _ => normalized.into_iter().filter(|s| !s.is_nan()).collect(),
        };
        let lo = ordered.iter().copied().min_by(f64::total_cmp);
        let hi = ordered.iter().copied().max_by(f64::total_cmp);
        let (lo, hi) = if file.nan_mode == 2 && has_nan {
            (Some(f64::NAN), Some(f64::NAN))
        } else {
            (lo, hi)
        };
        if let (Some(lo), Some(hi)) = (lo, hi) {
            min.insert("c3".into(), json_float_value(lo));
            max.insert("c3".into(), json_float_value(hi));
        }
        let count = |f: &dyn Fn(&Row) -> bool| file.rows.iter().filter(|r| f(r)).count();
        nulls.insert("c1".into(), count(&|r| r.id.is_none()).into());
        nulls.insert("c2".into(), count(&|r| r.name.is_none()).into());
        nulls.insert("c3".into(), count(&|r| r.score.is_none()).into());
        for (i, key) in ["c1", "c2", "c3"].iter().enumerate() {
            if file.drop_stats[i] {
                min.remove(*key);
                max.remove(*key);
                nulls.remove(*key);
            }
        }
        serde_json::json!({
            "numRecords": file.rows.len(),
            "tightBounds": file.tight_bounds,
            "minValues": Value::Object(min),
            "maxValues": Value::Object(max),
            "nullCount": Value::Object(nulls),
        })
        .to_string()
    }

    fn batch_of(file: &File) -> RecordBatch {
        let rows = &file.rows;
        RecordBatch::try_new(
            Arc::new(soundness_schema()),
            vec![
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.id).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
                )),
                Arc::new(Float64Array::from(
                    rows.iter().map(|r| r.score).collect::<Vec<_>>(),
                )),
                Arc::new(Int32Array::from(vec![file.part; rows.len()])),
            ],
        )
        .unwrap()
    }

    fn literal_for(column: &'static str) -> BoxedStrategy<String> {
        match column {
            "id" | "part" => prop_oneof![
                4 => (-6_i64..6).prop_map(|v| v.to_string()),
                1 => (-6_i64..6).prop_map(|v| format!("'{v}'")),
                1 => Just("NULL".to_string()),
            ]
            .boxed(),
            "name" => prop_oneof![
                3 => "[ab]{0,3}".prop_map(|v| format!("'{v}'")),
                3 => "a{32}[ab]{0,2}".prop_map(|v| format!("'{v}'")),
                1 => Just("NULL".to_string()),
            ]
            .boxed(),
            _ => prop_oneof![
                Just("-1.5".to_string()),
                Just("-0.0".to_string()),
                Just("0".to_string()),
                Just("0.1".to_string()),
                Just("2.5".to_string()),
                Just("1e300".to_string()),
                Just("'NaN'".to_string()),
                Just("'Infinity'".to_string()),
                Just("'-Infinity'".to_string()),
                Just("NULL".to_string()),
            ]
            .boxed(),
        }
    }

    fn atom_sql() -> impl Strategy<Value = String> {
        let column = proptest::sample::select(vec!["id", "name", "score", "part"]);
        let op = proptest::sample::select(vec!["=", "<>", "<", "<=", ">", ">="]);
        column.prop_flat_map(move |column| {
            let lit = literal_for(column);
            prop_oneof![
                (op.clone(), lit.clone(), any::<bool>()).prop_map(move |(op, lit, flipped)| {
                    if flipped {
                        format!("{lit} {op} {column}")
                    } else {
                        format!("{column} {op} {lit}")
                    }
                }),
                any::<bool>().prop_map(move |negated| {
                    format!("{column} IS {}NULL", if negated { "NOT " } else { "" })
                }),
                (proptest::collection::vec(lit.clone(), 1..4), any::<bool>()).prop_map(
                    move |(items, negated)| {
                        format!(
                            "{column} {}IN ({})",
                            if negated { "NOT " } else { "" },
                            items.join(", ")
                        )
                    }
                ),
                (lit.clone(), lit, any::<bool>()).prop_map(move |(low, high, negated)| {
                    format!(
                        "{column} {}BETWEEN {low} AND {high}",
                        if negated { "NOT " } else { "" }
                    )
                }),
                Just("TRUE".to_string()),
                Just("NULL".to_string()),
            ]
        })
    }

    fn predicate_sql() -> impl Strategy<Value = String> {
        atom_sql().prop_recursive(3, 16, 3, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 2..4)
                    .prop_map(|parts| format!("({})", parts.join(") AND ("))),
                proptest::collection::vec(inner.clone(), 2..4)
                    .prop_map(|parts| format!("({})", parts.join(") OR ("))),
                inner.prop_map(|part| format!("NOT ({part})")),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2048))]

        /// If `prune` skips a file, no row of the file satisfies the predicate.
        #[test]
        fn pruning_is_sound(
            files in proptest::collection::vec(file(), 1..4),
            sql in predicate_sql(),
        ) {
            let schema = soundness_schema();
            let predicate = parse(&sql).and_then(|e| e.bind(&schema));
            prop_assert!(predicate.is_ok(), "{sql}: {predicate:?}");
            let predicate = predicate.unwrap();
            let columns = [
                StatsColumn { logical_name: "id".into(), physical_path: vec!["c1".into()], data_type: DataType::Int64 },
                StatsColumn { logical_name: "name".into(), physical_path: vec!["c2".into()], data_type: DataType::Utf8 },
                StatsColumn { logical_name: "score".into(), physical_path: vec!["c3".into()], data_type: DataType::Float64 },
            ];
            for file in &files {
                let json = stats_json(file);
                let stats = FileStats::from_json(&json, &columns).unwrap();
                let part: ArrayRef = Arc::new(Int32Array::from(vec![file.part]));
                let partitions = HashMap::from([("part".to_string(), part)]);
                let verdict = prune(&predicate, &partitions, Some(&stats));
                if let Verdict::Skip(reason) = &verdict {
                    let values = predicate.evaluate(&batch_of(file)).unwrap();
                    let kept = values.iter().filter(|v| *v == Some(true)).count();
                    prop_assert_eq!(kept, 0, "skipped ({}) but {} rows match {}; stats {}; file {:?}", reason, kept, sql, json, file);
                }
            }
        }
    }

    #[test]
    fn every_int_type_reads_its_bounds() {
        for data_type in [
            DataType::Int8,
            DataType::Int16,
            DataType::Int32,
            DataType::Int64,
            DataType::UInt8,
            DataType::UInt16,
            DataType::UInt32,
            DataType::UInt64,
        ] {
            let columns = [column("x", data_type.clone())];
            let json =
                r#"{"numRecords":2,"minValues":{"x":3},"maxValues":{"x":7.5},"nullCount":{"x":0}}"#;
            let stats = FileStats::from_json(json, &columns).unwrap();
            assert_eq!(stats.min_values["x"].data_type(), &data_type);
            check(
                json,
                &columns,
                &[("x < 3", true), ("x > 8", true), ("x = 8", false)],
            );
        }
        let stats = FileStats::from_json(
            r#"{"minValues":{"x":-1000},"maxValues":{"x":1000}}"#,
            &[column("x", DataType::Int8)],
        )
        .unwrap();
        assert!(stats.min_values.is_empty() && stats.max_values.is_empty());
    }
}
