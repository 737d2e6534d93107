//! Partition values: typed values from the strings Delta stores, and back (PROTOCOL.md §7).
//!
//! `add.partitionValues` maps each partition column to a string (or JSON `null`). This module turns
//! such a string into a length-1 Arrow array of the column's logical type, turns a value back into the
//! string a writer must store, and escapes directory names the way Spark (Hive) does.
//!
//! The text parsers here (exact decimals, dates, timestamps with or without an offset) are shared with
//! the predicate language (`crate::expression`, literals) and with file statistics
//! (`crate::scan::prune`), so one value has one meaning everywhere.
//!
//! Invariants:
//! - `None` and the empty string are SQL NULL for every type, including `string`; the text `"null"`
//!   is an ordinary string.
//! - Numbers are parsed exactly from their decimal text: a decimal or integer value is never routed
//!   through a float, and a value that does not fit its type is an error, never silently rounded.
//! - A timestamp text with an offset (`Z`, `+05:30`) names an instant. The legacy form without an
//!   offset (`YYYY-MM-DD HH:MM:SS[.ffffff]`) is wall-clock time in the writer's zone for
//!   `timestamp` (UTC unless told otherwise) and plain wall-clock time for `timestamp_ntz`.
//! - Binary values are strings of code points below 256, one byte per code point (Spark's
//!   `"\u0001\u0002"` convention); a string with a larger code point is taken as UTF-8 bytes.
//! - Errors name the column and what is wrong, never the value (tables hold health records).
//! - [`escape_partition_dir`] escapes exactly Spark's `ExternalCatalogUtils.charToEscape` set, and
//!   [`unescape_partition_dir`] inverts it: `unescape(escape(s)) == s` for every `s`.

use std::fmt::Write as _;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryViewArray, BooleanArray, Date32Array,
    Decimal128Array, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array, Int64Array,
    LargeBinaryArray, LargeStringArray, StringArray, StringViewArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray, UInt8Array,
    UInt16Array, UInt32Array, UInt64Array, new_null_array,
};
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type,
    Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use chrono::{DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone};
use chrono_tz::Tz;

use crate::{Error, Result};

/// The directory name Hive and Spark use for a NULL (or empty-string) partition value.
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "used by the writer, which is not written yet")
)]
pub(crate) const NULL_PARTITION_DIR: &str = "__HIVE_DEFAULT_PARTITION__";

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

// ---------------------------------------------------------------------------------------------
// Partition values
// ---------------------------------------------------------------------------------------------

/// Parses the partition value stored for `column` into a length-1 array of `data_type`.
///
/// `raw` is the value of `partitionValues[column]` (`None` for JSON `null` or a missing key).
/// `writer_time_zone` is the IANA zone the legacy `YYYY-MM-DD HH:MM:SS` form of a `timestamp`
/// value was written in (`None` means UTC); it is not used for any other type or form.
///
/// # Errors
///
/// [`Error::Corrupt`] naming the column when the text is not a valid value of the type (the value
/// itself is never part of the message), [`Error::InvalidArgument`] when `writer_time_zone` is not a
/// known zone.
pub(crate) fn parse_partition_value(
    raw: Option<&str>,
    data_type: &DataType,
    column: &str,
    writer_time_zone: Option<&str>,
) -> Result<ArrayRef> {
    let zone = writer_time_zone.map(parse_zone).transpose()?;
    let Some(text) = raw.filter(|text| !text.is_empty()) else {
        return Ok(new_null_array(data_type, 1));
    };
    let rules = TextRules {
        naive_timestamp_zone: zone.as_ref(),
        binary: BinaryText::Latin1,
    };
    array_from_text(text, data_type, rules).map_err(|error| {
        Error::corrupt(
            format!("partition value of column {column}"),
            error.describe(data_type),
        )
    })
}

/// Formats row `row` of `array` as the string a writer stores in `partitionValues`.
///
/// Returns `Ok(None)` for NULL. Timestamps become `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC),
/// `timestamp_ntz` becomes `YYYY-MM-DD HH:MM:SS.ffffff`, dates `YYYY-MM-DD`, decimals plain
/// notation at their scale, floats their shortest round-tripping decimal (`NaN`, `Infinity`,
/// `-Infinity` for the special values) and binary one code point per byte. An empty string is
/// returned as `Some("")`, which readers treat as NULL (as Spark does).
///
/// # Errors
///
/// [`Error::InvalidArgument`] when `row` is out of bounds, when the type cannot be a partition
/// column, or when a timestamp is outside the range chrono can format or has sub-microsecond digits.
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "used by the writer, which is not written yet")
)]
pub(crate) fn format_partition_value(array: &dyn Array, row: usize) -> Result<Option<String>> {
    if row >= array.len() {
        return Err(Error::invalid(format!(
            "partition value row {row} is out of bounds for an array of length {}",
            array.len()
        )));
    }
    if array.is_null(row) {
        return Ok(None);
    }
    let text = match array.data_type() {
        DataType::Null => return Ok(None),
        DataType::Utf8 => array.as_string::<i32>().value(row).to_string(),
        DataType::LargeUtf8 => array.as_string::<i64>().value(row).to_string(),
        DataType::Utf8View => array.as_string_view().value(row).to_string(),
        DataType::Boolean => array.as_boolean().value(row).to_string(),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(row).to_string(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(row).to_string(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(row).to_string(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(row).to_string(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(row).to_string(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(row).to_string(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(row).to_string(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(row).to_string(),
        DataType::Float32 => format_float(
            f64::from(array.as_primitive::<Float32Type>().value(row)),
            || array.as_primitive::<Float32Type>().value(row).to_string(),
        ),
        DataType::Float64 => {
            let value = array.as_primitive::<Float64Type>().value(row);
            format_float(value, || value.to_string())
        }
        DataType::Decimal128(_, scale) => {
            format_decimal(array.as_primitive::<Decimal128Type>().value(row), *scale)
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            format_date(days).ok_or_else(|| Error::invalid("date partition value out of range"))?
        }
        DataType::Timestamp(unit, tz) => {
            let value = timestamp_value(array, *unit, row);
            let micros = unit_to_micros(value, *unit).ok_or_else(|| {
                Error::invalid("timestamp partition value has sub-microsecond digits")
            })?;
            let formatted = if tz.is_some() {
                format_timestamp_utc(micros)
            } else {
                format_timestamp_ntz(micros)
            };
            formatted.ok_or_else(|| Error::invalid("timestamp partition value out of range"))?
        }
        DataType::Binary => bytes_to_latin1(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => bytes_to_latin1(array.as_binary::<i64>().value(row)),
        DataType::BinaryView => bytes_to_latin1(array.as_binary_view().value(row)),
        other => {
            return Err(Error::invalid(format!(
                "type {other} cannot be a partition column"
            )));
        }
    };
    Ok(Some(text))
}

/// Escapes a partition column name or value for use in a directory name, exactly as Spark's
/// `ExternalCatalogUtils.escapePathName` does (on a non-Windows host).
///
/// Escaped as `%XX` (uppercase hex): the control characters U+0001..U+001F, `"`, `#`, `%`, `'`,
/// `*`, `/`, `:`, `=`, `?`, `\`, U+007F, `{`, `[`, `]` and `^`. Everything else, including spaces,
/// `+`, U+0000 and non-ASCII characters, stays as is. (The table writer URI-encodes the resulting
/// path once more for `add.path`.)
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "used by the writer, which is not written yet")
)]
pub(crate) fn escape_partition_dir(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for c in value.chars() {
        if needs_escaping(c) {
            // Writing to a String cannot fail.
            let _ = write!(escaped, "%{:02X}", u32::from(c));
        } else {
            escaped.push(c);
        }
    }
    escaped
}

/// Reverses [`escape_partition_dir`]: every `%` followed by two hex digits becomes that byte's
/// character (as Spark's `unescapePathName`); any other `%` stays as is.
#[cfg_attr(
    not(test),
    allow(
        dead_code,
        reason = "used by the writer and the log checker, not written yet"
    )
)]
pub(crate) fn unescape_partition_dir(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let mut unescaped = String::with_capacity(value.len());
    let mut i = 0;
    while i < chars.len() {
        let decoded = match (chars.get(i), chars.get(i + 1), chars.get(i + 2)) {
            (Some('%'), Some(high), Some(low)) => high
                .to_digit(16)
                .zip(low.to_digit(16))
                .and_then(|(high, low)| u8::try_from(high * 16 + low).ok()),
            _ => None,
        };
        if let Some(byte) = decoded {
            unescaped.push(char::from(byte));
            i += 3;
        } else if let Some(c) = chars.get(i) {
            unescaped.push(*c);
            i += 1;
        }
    }
    unescaped
}

/// The directory segment `column=value` for one partition column, as Spark's
/// `getPartitionPathString` builds it: both sides escaped, and NULL or the empty string written as
/// [`NULL_PARTITION_DIR`].
#[cfg_attr(
    not(test),
    allow(dead_code, reason = "used by the writer, which is not written yet")
)]
pub(crate) fn partition_dir_segment(column: &str, value: Option<&str>) -> String {
    let value = match value {
        Some(value) if !value.is_empty() => escape_partition_dir(value),
        _ => NULL_PARTITION_DIR.to_string(),
    };
    format!("{}={value}", escape_partition_dir(column))
}

fn needs_escaping(c: char) -> bool {
    matches!(
        c,
        '\u{01}'
            ..='\u{1F}'
                | '"'
                | '#'
                | '%'
                | '\''
                | '*'
                | '/'
                | ':'
                | '='
                | '?'
                | '\\'
                | '\u{7F}'
                | '{'
                | '['
                | ']'
                | '^'
    )
}

fn parse_zone(name: &str) -> Result<Tz> {
    name.parse::<Tz>()
        .map_err(|_| Error::invalid(format!("unknown time zone `{name}`")))
}

// ---------------------------------------------------------------------------------------------
// Typed values from text (shared with literals and statistics)
// ---------------------------------------------------------------------------------------------

/// Why a text could not become a typed value. Carries no part of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TextError {
    /// The text is not in any accepted format for the type.
    Malformed,
    /// The text is well formed, but the value does not fit the type (range, fraction digits,
    /// precision, sub-microsecond digits).
    DoesNotFit,
    /// Values of the type have no text form.
    Unsupported,
}

impl TextError {
    /// A message for this error about a value of type `data_type`.
    pub(crate) fn describe(self, data_type: &DataType) -> String {
        match self {
            Self::Malformed => format!("not a valid {data_type} value"),
            Self::DoesNotFit => format!("value does not fit {data_type}"),
            Self::Unsupported => format!("type {data_type} has no text form"),
        }
    }
}

/// How binary values are spelled as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinaryText {
    /// One code point below 256 per byte (Spark's partition-value convention), falling back to the
    /// UTF-8 bytes when a code point is 256 or above.
    Latin1,
    /// The UTF-8 bytes of the text (SQL string literals).
    Utf8,
}

/// How [`array_from_text`] reads texts whose meaning depends on context.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TextRules<'a> {
    /// The zone of a `timestamp` text without an offset; `None` is UTC.
    pub(crate) naive_timestamp_zone: Option<&'a Tz>,
    /// How binary values are spelled.
    pub(crate) binary: BinaryText,
}

/// Parses `text` as a single value of `data_type`, returning a length-1 array of exactly that type.
///
/// Accepted forms: integers and decimals from decimal text (`1`, `-2342342.23423`, `1.0`, `1e3`;
/// an integer type accepts an integral decimal such as `1.0`); floats from decimal text or
/// `NaN`/`Infinity`/`-Infinity`/`inf` (any case); booleans `true`/`false` (any case); dates
/// `YYYY-MM-DD`; timestamps as described by [`parse_timestamp_text`]; strings as is; binary per
/// [`TextRules::binary`].
pub(crate) fn array_from_text(
    text: &str,
    data_type: &DataType,
    rules: TextRules<'_>,
) -> Result<ArrayRef, TextError> {
    Ok(match data_type {
        DataType::Null => new_null_array(&DataType::Null, 1),
        DataType::Boolean => {
            let value = if text.eq_ignore_ascii_case("true") {
                true
            } else if text.eq_ignore_ascii_case("false") {
                false
            } else {
                return Err(TextError::Malformed);
            };
            Arc::new(BooleanArray::from(vec![value]))
        }
        DataType::Int8 => Arc::new(Int8Array::from(vec![integer_from_text::<i8>(text)?])),
        DataType::Int16 => Arc::new(Int16Array::from(vec![integer_from_text::<i16>(text)?])),
        DataType::Int32 => Arc::new(Int32Array::from(vec![integer_from_text::<i32>(text)?])),
        DataType::Int64 => Arc::new(Int64Array::from(vec![integer_from_text::<i64>(text)?])),
        DataType::UInt8 => Arc::new(UInt8Array::from(vec![integer_from_text::<u8>(text)?])),
        DataType::UInt16 => Arc::new(UInt16Array::from(vec![integer_from_text::<u16>(text)?])),
        DataType::UInt32 => Arc::new(UInt32Array::from(vec![integer_from_text::<u32>(text)?])),
        DataType::UInt64 => Arc::new(UInt64Array::from(vec![integer_from_text::<u64>(text)?])),
        DataType::Float32 => {
            let value: f32 = text.parse().map_err(|_| TextError::Malformed)?;
            if value.is_infinite() && !names_infinity(text) {
                return Err(TextError::DoesNotFit);
            }
            Arc::new(Float32Array::from(vec![value]))
        }
        DataType::Float64 => {
            let value: f64 = text.parse().map_err(|_| TextError::Malformed)?;
            if value.is_infinite() && !names_infinity(text) {
                return Err(TextError::DoesNotFit);
            }
            Arc::new(Float64Array::from(vec![value]))
        }
        DataType::Decimal128(precision, scale) => {
            let decimal = DecimalText::parse(text).ok_or(TextError::Malformed)?;
            let value = decimal
                .to_scaled_i128(i64::from(*scale), Rounding::Exact)
                .ok_or(TextError::DoesNotFit)?;
            decimal_array(value, *precision, *scale)?
        }
        DataType::Utf8 => Arc::new(StringArray::from(vec![text])),
        DataType::LargeUtf8 => Arc::new(LargeStringArray::from(vec![text])),
        DataType::Utf8View => Arc::new(StringViewArray::from(vec![text])),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let bytes = match rules.binary {
                BinaryText::Latin1 => latin1_to_bytes(text),
                BinaryText::Utf8 => text.as_bytes().to_vec(),
            };
            binary_array(bytes, data_type)?
        }
        DataType::Date32 => {
            let days = parse_date_days(text).ok_or(TextError::Malformed)?;
            Arc::new(Date32Array::from(vec![days]))
        }
        DataType::Timestamp(unit, tz) => {
            let parsed = parse_timestamp_text(text).ok_or(TextError::Malformed)?;
            let micros = if tz.is_some() {
                match parsed.offset_seconds {
                    Some(offset) => parsed.instant_micros(offset),
                    None => match rules.naive_timestamp_zone {
                        Some(zone) => local_to_utc_micros(&parsed.naive, zone),
                        None => naive_micros(&parsed.naive),
                    },
                }
            } else {
                // Wall-clock time has no zone.
                if parsed.offset_seconds.is_some() {
                    return Err(TextError::Malformed);
                }
                naive_micros(&parsed.naive)
            }
            .ok_or(TextError::DoesNotFit)?;
            let value =
                micros_to_unit(micros, *unit, Rounding::Exact).ok_or(TextError::DoesNotFit)?;
            timestamp_array(value, *unit, tz.clone())
        }
        _ => return Err(TextError::Unsupported),
    })
}

fn names_infinity(text: &str) -> bool {
    text.to_ascii_lowercase().contains("inf")
}

fn integer_from_text<T: TryFrom<i128>>(text: &str) -> Result<T, TextError> {
    let decimal = DecimalText::parse(text).ok_or(TextError::Malformed)?;
    let value = decimal
        .to_scaled_i128(0, Rounding::Exact)
        .ok_or(TextError::DoesNotFit)?;
    T::try_from(value).map_err(|_| TextError::DoesNotFit)
}

/// A length-1 `Decimal128(precision, scale)` array holding `value`, checking the precision.
pub(crate) fn decimal_array(value: i128, precision: u8, scale: i8) -> Result<ArrayRef, TextError> {
    let limit = 10_i128
        .checked_pow(u32::from(precision))
        .ok_or(TextError::DoesNotFit)?;
    if value
        .checked_abs()
        .is_none_or(|magnitude| magnitude >= limit)
    {
        return Err(TextError::DoesNotFit);
    }
    Decimal128Array::from(vec![value])
        .with_precision_and_scale(precision, scale)
        .map(|array| Arc::new(array) as ArrayRef)
        .map_err(|_| TextError::DoesNotFit)
}

/// A length-1 binary array of the given binary `data_type`.
pub(crate) fn binary_array(bytes: Vec<u8>, data_type: &DataType) -> Result<ArrayRef, TextError> {
    Ok(match data_type {
        DataType::Binary => Arc::new(BinaryArray::from_vec(vec![bytes.as_slice()])),
        DataType::LargeBinary => Arc::new(LargeBinaryArray::from_vec(vec![bytes.as_slice()])),
        DataType::BinaryView => Arc::new(BinaryViewArray::from_iter_values([bytes.as_slice()])),
        _ => return Err(TextError::Unsupported),
    })
}

/// A length-1 timestamp array of `unit` and zone `tz` holding `value` (in `unit`).
pub(crate) fn timestamp_array(value: i64, unit: TimeUnit, tz: Option<Arc<str>>) -> ArrayRef {
    match unit {
        TimeUnit::Second => Arc::new(TimestampSecondArray::from(vec![value]).with_timezone_opt(tz)),
        TimeUnit::Millisecond => {
            Arc::new(TimestampMillisecondArray::from(vec![value]).with_timezone_opt(tz))
        }
        TimeUnit::Microsecond => {
            Arc::new(TimestampMicrosecondArray::from(vec![value]).with_timezone_opt(tz))
        }
        TimeUnit::Nanosecond => {
            Arc::new(TimestampNanosecondArray::from(vec![value]).with_timezone_opt(tz))
        }
    }
}

fn timestamp_value(array: &dyn Array, unit: TimeUnit, row: usize) -> i64 {
    match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
    }
}

/// Which way a value that is not exactly representable is moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rounding {
    /// Not at all: an inexact value is an error.
    Exact,
    /// Towards negative infinity (a lower bound stays a lower bound).
    Floor,
    /// Towards positive infinity (an upper bound stays an upper bound).
    Ceil,
}

/// An exact decimal number parsed from text: `(-1)^negative × digits × 10^exponent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DecimalText {
    negative: bool,
    /// Decimal digits (0..=9) without leading zeros; empty for zero.
    digits: Vec<u8>,
    exponent: i64,
}

/// The most significant digits an `i128` can hold.
const MAX_I128_DIGITS: usize = 39;
/// Exponents beyond this many characters are rejected (no real value needs them).
const MAX_EXPONENT_CHARS: usize = 8;

impl DecimalText {
    /// Parses `[+-]digits[.digits][(e|E)[+-]digits]` (at least one mantissa digit; `1.` and `.5`
    /// are accepted). Returns `None` for anything else.
    pub(crate) fn parse(text: &str) -> Option<Self> {
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, text.get(1..)?),
            Some(b'+') => (false, text.get(1..)?),
            _ => (false, text),
        };
        let (mantissa, exponent_text) = match unsigned.find(['e', 'E']) {
            Some(at) => (unsigned.get(..at)?, Some(unsigned.get(at + 1..)?)),
            None => (unsigned, None),
        };
        let mut digits = Vec::new();
        let mut exponent: i64 = 0;
        let mut seen_digit = false;
        let mut seen_dot = false;
        for byte in mantissa.bytes() {
            match byte {
                b'0'..=b'9' => {
                    seen_digit = true;
                    if !(digits.is_empty() && byte == b'0') {
                        digits.push(byte - b'0');
                    }
                    if seen_dot {
                        exponent = exponent.checked_sub(1)?;
                    }
                }
                b'.' if !seen_dot => seen_dot = true,
                _ => return None,
            }
        }
        if !seen_digit {
            return None;
        }
        if let Some(exponent_text) = exponent_text {
            if exponent_text.len() > MAX_EXPONENT_CHARS
                || !exponent_text
                    .trim_start_matches(['+', '-'])
                    .bytes()
                    .all(|b| b.is_ascii_digit())
            {
                return None;
            }
            let explicit: i64 = exponent_text.parse().ok()?;
            exponent = exponent.checked_add(explicit)?;
        }
        // Trailing zeros move into the exponent so that `digits` is canonical.
        while digits.last() == Some(&0) {
            digits.pop();
            exponent = exponent.checked_add(1)?;
        }
        if digits.is_empty() {
            exponent = 0;
        }
        Some(Self {
            negative,
            digits,
            exponent,
        })
    }

    /// The value times `10^scale` as an integer, rounded as asked; `None` when it does not fit an
    /// `i128` or is inexact under [`Rounding::Exact`].
    pub(crate) fn to_scaled_i128(&self, scale: i64, rounding: Rounding) -> Option<i128> {
        if self.digits.is_empty() {
            return Some(0);
        }
        let shift = self.exponent.checked_add(scale)?;
        let (integer_digits, zeros, fraction_nonzero) = if shift >= 0 {
            let zeros = usize::try_from(shift).ok()?;
            if self.digits.len().checked_add(zeros)? > MAX_I128_DIGITS {
                return None;
            }
            (self.digits.as_slice(), zeros, false)
        } else {
            let cut = usize::try_from(shift.checked_neg()?).ok()?;
            // `digits` has no trailing zeros, so a cut-off part is never all zeros.
            let keep = self.digits.len().saturating_sub(cut);
            (self.digits.get(..keep)?, 0, true)
        };
        let mut magnitude = integer_digits.iter().try_fold(0_i128, |acc, digit| {
            acc.checked_mul(10)?.checked_add(i128::from(*digit))
        })?;
        for _ in 0..zeros {
            magnitude = magnitude.checked_mul(10)?;
        }
        if fraction_nonzero {
            let away_from_zero = match rounding {
                Rounding::Exact => return None,
                Rounding::Floor => self.negative,
                Rounding::Ceil => !self.negative,
            };
            if away_from_zero {
                magnitude = magnitude.checked_add(1)?;
            }
        }
        if self.negative {
            magnitude.checked_neg()
        } else {
            Some(magnitude)
        }
    }
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
pub(crate) fn parse_date_days(text: &str) -> Option<i32> {
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
    i32::try_from(date.signed_duration_since(NaiveDate::default()).num_days()).ok()
}

/// A timestamp text: the wall-clock part, and the offset from UTC when the text has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimestampText {
    /// The date and time as written.
    pub(crate) naive: NaiveDateTime,
    /// The offset (`Z` is 0) in seconds east of UTC, if written.
    pub(crate) offset_seconds: Option<i32>,
}

impl TimestampText {
    /// Microseconds since the epoch of the instant `naive` at `offset_seconds` east of UTC.
    pub(crate) fn instant_micros(&self, offset_seconds: i32) -> Option<i64> {
        naive_micros(&self.naive)?
            .checked_sub(i64::from(offset_seconds).checked_mul(MICROS_PER_SECOND)?)
    }
}

/// Parses `YYYY-MM-DD[(T| )HH:MM[:SS[.fraction]]][Z|±HH[:MM]|±HHMM]`, which covers ISO-8601 /
/// RFC 3339 (`2024-01-01T10:00:00.000000Z`, `2000-01-01T00:00:00.000-08:00`) and the legacy
/// `2024-01-01 10:00:00.123` form.
pub(crate) fn parse_timestamp_text(text: &str) -> Option<TimestampText> {
    let Some(separator) = text.find(['T', 't', ' ']) else {
        let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()?;
        return Some(TimestampText {
            naive: date.and_time(NaiveTime::MIN),
            offset_seconds: None,
        });
    };
    let date = NaiveDate::parse_from_str(text.get(..separator)?, "%Y-%m-%d").ok()?;
    let rest = text.get(separator + 1..)?;
    let (time_text, offset_seconds) = if let Some(time) = rest.strip_suffix(['Z', 'z']) {
        (time, Some(0))
    } else if let Some(at) = rest.rfind(['+', '-']) {
        (rest.get(..at)?, Some(parse_offset(rest.get(at..)?)?))
    } else {
        (rest, None)
    };
    let time = NaiveTime::parse_from_str(time_text, "%H:%M:%S%.f")
        .or_else(|_| NaiveTime::parse_from_str(time_text, "%H:%M"))
        .ok()?;
    Some(TimestampText {
        naive: date.and_time(time),
        offset_seconds,
    })
}

/// `±HH`, `±HH:MM` or `±HHMM` as seconds east of UTC.
fn parse_offset(text: &str) -> Option<i32> {
    let (sign, digits) = match text.as_bytes().first()? {
        b'+' => (1, text.get(1..)?),
        b'-' => (-1, text.get(1..)?),
        _ => return None,
    };
    let (hours, minutes) = match digits.len() {
        2 => (digits, "00"),
        4 => (digits.get(..2)?, digits.get(2..)?),
        5 if digits.as_bytes().get(2) == Some(&b':') => (digits.get(..2)?, digits.get(3..)?),
        _ => return None,
    };
    if !hours
        .bytes()
        .chain(minutes.bytes())
        .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let hours: i32 = hours.parse().ok()?;
    let minutes: i32 = minutes.parse().ok()?;
    if hours > 18 || minutes > 59 {
        return None;
    }
    Some(sign * (hours * 3600 + minutes * 60))
}

/// Microseconds since the epoch of `naive` read as UTC wall-clock time; `None` when it has
/// sub-microsecond digits.
pub(crate) fn naive_micros(naive: &NaiveDateTime) -> Option<i64> {
    let utc = naive.and_utc();
    if !utc.timestamp_subsec_nanos().is_multiple_of(1000) {
        return None;
    }
    Some(utc.timestamp_micros())
}

/// Microseconds since the epoch of wall-clock time `naive` in `zone`. An ambiguous time (clocks
/// going back) takes the earlier instant and a skipped time (clocks going forward) is moved forward
/// by the gap, as `java.time` (and so Spark) does.
fn local_to_utc_micros(naive: &NaiveDateTime, zone: &Tz) -> Option<i64> {
    let offset_seconds = match zone.from_local_datetime(naive) {
        LocalResult::Single(at) | LocalResult::Ambiguous(at, _) => at.offset().fix(),
        LocalResult::None => {
            // The offset in force just before the gap.
            let before = naive.checked_sub_signed(chrono::TimeDelta::try_days(1)?)?;
            zone.offset_from_utc_datetime(&before).fix()
        }
    }
    .local_minus_utc();
    naive_micros(naive)?.checked_sub(i64::from(offset_seconds).checked_mul(MICROS_PER_SECOND)?)
}

fn unit_divisor(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Second => MICROS_PER_SECOND,
        TimeUnit::Millisecond => 1000,
        TimeUnit::Microsecond | TimeUnit::Nanosecond => 1,
    }
}

/// Converts microseconds to `unit`, rounding as asked; `None` on overflow or an inexact
/// [`Rounding::Exact`] conversion.
pub(crate) fn micros_to_unit(micros: i64, unit: TimeUnit, rounding: Rounding) -> Option<i64> {
    if unit == TimeUnit::Nanosecond {
        return micros.checked_mul(1000);
    }
    let divisor = unit_divisor(unit);
    let floor = micros.div_euclid(divisor);
    if micros.rem_euclid(divisor) == 0 {
        return Some(floor);
    }
    match rounding {
        Rounding::Exact => None,
        Rounding::Floor => Some(floor),
        Rounding::Ceil => floor.checked_add(1),
    }
}

/// Converts a value in `unit` to microseconds; `None` when nanoseconds have sub-microsecond digits
/// or on overflow.
pub(crate) fn unit_to_micros(value: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Nanosecond => (value % 1000 == 0).then_some(value / 1000),
        other => value.checked_mul(unit_divisor(other)),
    }
}

/// Microseconds since the epoch of midnight UTC on day `days`.
pub(crate) fn days_to_micros(days: i32) -> Option<i64> {
    i64::from(days).checked_mul(MICROS_PER_DAY)
}

/// `YYYY-MM-DD` of day `days` since the epoch.
pub(crate) fn format_date(days: i32) -> Option<String> {
    let date =
        NaiveDate::default().checked_add_signed(chrono::TimeDelta::try_days(i64::from(days))?)?;
    Some(date.format("%Y-%m-%d").to_string())
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ` of an instant in microseconds since the epoch.
pub(crate) fn format_timestamp_utc(micros: i64) -> Option<String> {
    let at = DateTime::from_timestamp_micros(micros)?;
    Some(at.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
}

/// `YYYY-MM-DD HH:MM:SS.ffffff` of wall-clock microseconds since the epoch.
pub(crate) fn format_timestamp_ntz(micros: i64) -> Option<String> {
    let at = DateTime::from_timestamp_micros(micros)?;
    Some(at.naive_utc().format("%Y-%m-%d %H:%M:%S%.6f").to_string())
}

/// Plain decimal notation of `value × 10^-scale` with exactly `scale` fraction digits.
pub(crate) fn format_decimal(value: i128, scale: i8) -> String {
    let sign = if value < 0 { "-" } else { "" };
    let digits = value.unsigned_abs().to_string();
    if scale <= 0 {
        let zeros = if value == 0 {
            0
        } else {
            usize::from(scale.unsigned_abs())
        };
        return format!("{sign}{digits}{}", "0".repeat(zeros));
    }
    let scale = usize::from(scale.unsigned_abs());
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (integer, fraction) = padded.split_at(padded.len() - scale);
    format!("{sign}{integer}.{fraction}")
}

/// A float as Spark spells it in partition values: shortest round-tripping decimal text, or
/// `NaN` / `Infinity` / `-Infinity`.
fn format_float(value: f64, finite: impl FnOnce() -> String) -> String {
    if value.is_nan() {
        "NaN".to_string()
    } else if value == f64::INFINITY {
        "Infinity".to_string()
    } else if value == f64::NEG_INFINITY {
        "-Infinity".to_string()
    } else {
        finite()
    }
}

fn latin1_to_bytes(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .unwrap_or_else(|| text.as_bytes().to_vec())
}

fn bytes_to_latin1(bytes: &[u8]) -> String {
    bytes.iter().copied().map(char::from).collect()
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on an unexpected error (STYLE.md plans allow-unwrap-in-tests)"
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(raw: &str, data_type: &DataType) -> Result<ArrayRef> {
        parse_partition_value(Some(raw), data_type, "col", None)
    }

    fn ts_utc() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    }

    fn ts_ntz() -> DataType {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    }

    fn micros_of(array: &ArrayRef) -> i64 {
        array.as_primitive::<TimestampMicrosecondType>().value(0)
    }

    #[test]
    fn null_and_empty_are_null_for_every_type() {
        for data_type in [
            DataType::Utf8,
            DataType::Int32,
            DataType::Boolean,
            DataType::Date32,
            ts_utc(),
            DataType::Decimal128(10, 2),
            DataType::Binary,
        ] {
            for raw in [None, Some("")] {
                let array = parse_partition_value(raw, &data_type, "c", None).unwrap();
                assert_eq!(array.len(), 1);
                assert!(array.is_null(0), "{data_type} {raw:?}");
                assert_eq!(array.data_type(), &data_type);
            }
        }
    }

    #[test]
    fn strings_are_kept_as_is() {
        for raw in ["null", "a/b%c d", "🦀", "__HIVE_DEFAULT_PARTITION__", " "] {
            let array = parse(raw, &DataType::Utf8).unwrap();
            assert!(array.is_valid(0));
            assert_eq!(array.as_string::<i32>().value(0), raw);
        }
    }

    #[test]
    fn numbers_parse_from_decimal_text() {
        let int = parse("-42", &DataType::Int32).unwrap();
        assert_eq!(int.as_primitive::<Int32Type>().value(0), -42);
        let int = parse("1.0", &DataType::Int64).unwrap();
        assert_eq!(int.as_primitive::<Int64Type>().value(0), 1);
        let byte = parse("127", &DataType::Int8).unwrap();
        assert_eq!(byte.as_primitive::<Int8Type>().value(0), 127);
        assert!(parse("128", &DataType::Int8).is_err());
        assert!(parse("1.5", &DataType::Int32).is_err());

        let double = parse("0.00004", &DataType::Float64).unwrap();
        assert!((double.as_primitive::<Float64Type>().value(0) - 0.00004).abs() < 1e-20);
        let double = parse("1.0E-4", &DataType::Float64).unwrap();
        assert!((double.as_primitive::<Float64Type>().value(0) - 0.0001).abs() < 1e-20);
        let nan = parse("NaN", &DataType::Float64).unwrap();
        assert!(nan.as_primitive::<Float64Type>().value(0).is_nan());
        let inf = parse("-Infinity", &DataType::Float32).unwrap();
        assert_eq!(
            inf.as_primitive::<Float32Type>().value(0),
            f32::NEG_INFINITY
        );
        assert!(parse("1e999", &DataType::Float64).is_err());

        let decimal = parse("-2342342.23423", &DataType::Decimal128(12, 5)).unwrap();
        assert_eq!(
            decimal.as_primitive::<Decimal128Type>().value(0),
            -234_234_223_423
        );
        let decimal = parse("0.00004", &DataType::Decimal128(38, 18)).unwrap();
        assert_eq!(
            decimal.as_primitive::<Decimal128Type>().value(0),
            40_000_000_000_000
        );
        let decimal = parse("1.5E+2", &DataType::Decimal128(5, 1)).unwrap();
        assert_eq!(decimal.as_primitive::<Decimal128Type>().value(0), 1500);
        // Too many fraction digits, or too many digits for the precision.
        assert!(parse("1.005", &DataType::Decimal128(5, 2)).is_err());
        assert!(parse("1000", &DataType::Decimal128(5, 2)).is_err());
    }

    #[test]
    fn booleans_and_dates() {
        let yes = parse("true", &DataType::Boolean).unwrap();
        assert!(yes.as_boolean().value(0));
        let no = parse("FALSE", &DataType::Boolean).unwrap();
        assert!(!no.as_boolean().value(0));
        assert!(parse("yes", &DataType::Boolean).is_err());

        let date = parse("2024-01-01", &DataType::Date32).unwrap();
        assert_eq!(date.as_primitive::<Date32Type>().value(0), 19723);
        let date = parse("1969-12-31", &DataType::Date32).unwrap();
        assert_eq!(date.as_primitive::<Date32Type>().value(0), -1);
        assert!(parse("2024-02-30", &DataType::Date32).is_err());
    }

    #[test]
    fn timestamps_iso_and_legacy() {
        let iso = parse("2024-01-01T10:00:00.000000Z", &ts_utc()).unwrap();
        assert_eq!(micros_of(&iso), 1_704_103_200_000_000);
        let fixture = parse("1971-07-22T03:06:40.000000Z", &ts_utc()).unwrap();
        assert_eq!(micros_of(&fixture), 49_000_000_000_000);
        let offset = parse("2000-01-01T00:00:00.000-08:00", &ts_utc()).unwrap();
        assert_eq!(micros_of(&offset), 946_713_600_000_000);
        let legacy = parse("2024-01-01 10:00:00", &ts_utc()).unwrap();
        assert_eq!(micros_of(&legacy), 1_704_103_200_000_000);
        let fraction = parse("2020-01-01 08:09:10.001", &ts_utc()).unwrap();
        assert_eq!(micros_of(&fraction) % 1_000_000, 1000);
        // Sub-microsecond digits do not fit.
        assert!(parse("2024-01-01 10:00:00.0000001", &ts_utc()).is_err());
    }

    #[test]
    fn legacy_timestamps_use_the_writer_zone() {
        // data-reader-partition-values: `2021-09-08 11:11:11` written in America/Los_Angeles.
        let array = parse_partition_value(
            Some("2021-09-08 11:11:11"),
            &ts_utc(),
            "as_timestamp",
            Some("America/Los_Angeles"),
        )
        .unwrap();
        let expected = parse("2021-09-08T18:11:11Z", &ts_utc()).unwrap();
        assert_eq!(micros_of(&array), micros_of(&expected));
        // ISO values carry their own offset and ignore the writer zone.
        let iso = parse_partition_value(
            Some("2021-09-08T11:11:11Z"),
            &ts_utc(),
            "c",
            Some("America/Los_Angeles"),
        )
        .unwrap();
        assert_eq!(
            micros_of(&iso),
            micros_of(&parse("2021-09-08 11:11:11", &ts_utc()).unwrap())
        );
        // timestamp_ntz is wall-clock time: the writer zone does not apply.
        let ntz = parse_partition_value(
            Some("2021-09-08 11:11:11"),
            &ts_ntz(),
            "c",
            Some("America/Los_Angeles"),
        )
        .unwrap();
        assert_eq!(
            micros_of(&ntz),
            micros_of(&parse("2021-09-08 11:11:11", &ts_utc()).unwrap())
        );
        assert!(parse("2021-09-08T11:11:11Z", &ts_ntz()).is_err());
        let unknown = parse_partition_value(Some("x"), &ts_utc(), "c", Some("Mars/Olympus"));
        assert!(matches!(unknown, Err(Error::InvalidArgument { .. })));
    }

    #[test]
    fn dst_gaps_and_overlaps_follow_java_time() {
        let zone = Some("America/Los_Angeles");
        // 2021-03-14 02:30 does not exist in Los Angeles; java.time moves it to 03:30 PDT.
        let gap = parse_partition_value(Some("2021-03-14 02:30:00"), &ts_utc(), "c", zone).unwrap();
        assert_eq!(
            micros_of(&gap),
            micros_of(&parse("2021-03-14T10:30:00Z", &ts_utc()).unwrap())
        );
        // 2021-11-07 01:30 happens twice; the earlier (PDT, -07:00) wins.
        let overlap =
            parse_partition_value(Some("2021-11-07 01:30:00"), &ts_utc(), "c", zone).unwrap();
        assert_eq!(
            micros_of(&overlap),
            micros_of(&parse("2021-11-07T08:30:00Z", &ts_utc()).unwrap())
        );
    }

    #[test]
    fn binary_is_one_byte_per_code_point() {
        let array = parse("\u{1}\u{2}\u{ff}", &DataType::Binary).unwrap();
        assert_eq!(array.as_binary::<i32>().value(0), &[1, 2, 255]);
        let utf8 = parse("€", &DataType::Binary).unwrap();
        assert_eq!(utf8.as_binary::<i32>().value(0), "€".as_bytes());
    }

    #[test]
    fn errors_name_the_column_but_not_the_value() {
        let error = parse_partition_value(Some("secret-123"), &DataType::Int32, "mrn", None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("partition value of column mrn"), "{error}");
        assert!(!error.contains("secret"), "{error}");
        let error = parse_partition_value(Some("secret"), &DataType::Date32, "d", None)
            .unwrap_err()
            .to_string();
        assert!(!error.contains("secret"), "{error}");
    }

    #[test]
    fn nested_types_are_not_partition_values() {
        let data_type = DataType::List(Arc::new(arrow::datatypes::Field::new(
            "item",
            DataType::Int32,
            true,
        )));
        assert!(parse("[1]", &data_type).is_err());
        assert!(
            parse_partition_value(None, &data_type, "c", None)
                .unwrap()
                .is_null(0)
        );
    }

    #[test]
    fn format_examples() {
        let ts = parse("2024-01-01 10:00:00.5", &ts_utc()).unwrap();
        assert_eq!(
            format_partition_value(&ts, 0).unwrap().as_deref(),
            Some("2024-01-01T10:00:00.500000Z")
        );
        let ntz = parse("2024-01-01 10:00:00.5", &ts_ntz()).unwrap();
        assert_eq!(
            format_partition_value(&ntz, 0).unwrap().as_deref(),
            Some("2024-01-01 10:00:00.500000")
        );
        let decimal = parse("-0.05", &DataType::Decimal128(5, 3)).unwrap();
        assert_eq!(
            format_partition_value(&decimal, 0).unwrap().as_deref(),
            Some("-0.050")
        );
        let float = parse("0.00004", &DataType::Float64).unwrap();
        assert_eq!(
            format_partition_value(&float, 0).unwrap().as_deref(),
            Some("0.00004")
        );
        let date = parse("0001-01-01", &DataType::Date32).unwrap();
        assert_eq!(
            format_partition_value(&date, 0).unwrap().as_deref(),
            Some("0001-01-01")
        );
        let null = new_null_array(&DataType::Int32, 1);
        assert_eq!(format_partition_value(&null, 0).unwrap(), None);
        assert!(format_partition_value(&null, 1).is_err());
    }

    #[test]
    fn format_decimal_scales() {
        assert_eq!(format_decimal(0, 2), "0.00");
        assert_eq!(format_decimal(5, 2), "0.05");
        assert_eq!(format_decimal(-12345, 2), "-123.45");
        assert_eq!(format_decimal(12, 0), "12");
        assert_eq!(format_decimal(12, -2), "1200");
        assert_eq!(format_decimal(0, -2), "0");
        assert_eq!(format_decimal(i128::MIN, 0), i128::MIN.to_string());
    }

    #[test]
    fn escaping_matches_spark() {
        assert_eq!(
            escape_partition_dir("2020-01-01 08:09:10.001"),
            "2020-01-01 08%3A09%3A10.001"
        );
        assert_eq!(escape_partition_dir("a/b%c=d"), "a%2Fb%25c%3Dd");
        assert_eq!(escape_partition_dir("bar+!"), "bar+!");
        assert_eq!(
            escape_partition_dir("\"#'*?\\{[]^}\u{7f}\u{1}\n"),
            "%22%23%27%2A%3F%5C%7B%5B%5D%5E}%7F%01%0A"
        );
        assert_eq!(escape_partition_dir("\u{0} é🦀"), "\u{0} é🦀");
        assert_eq!(unescape_partition_dir("bar+%21"), "bar+!");
        assert_eq!(unescape_partition_dir("100%"), "100%");
        assert_eq!(unescape_partition_dir("%zz%4"), "%zz%4");
        assert_eq!(unescape_partition_dir("%e9"), "é");
        assert_eq!(
            partition_dir_segment("region:eu", Some("a/b")),
            "region%3Aeu=a%2Fb"
        );
        assert_eq!(
            partition_dir_segment("p", Some("")),
            "p=__HIVE_DEFAULT_PARTITION__"
        );
        assert_eq!(
            partition_dir_segment("p", None),
            "p=__HIVE_DEFAULT_PARTITION__"
        );
    }

    #[test]
    fn decimal_text_rounding() {
        let value = DecimalText::parse("-1.25").unwrap();
        assert_eq!(value.to_scaled_i128(1, Rounding::Floor), Some(-13));
        assert_eq!(value.to_scaled_i128(1, Rounding::Ceil), Some(-12));
        assert_eq!(value.to_scaled_i128(1, Rounding::Exact), None);
        assert_eq!(value.to_scaled_i128(2, Rounding::Exact), Some(-125));
        let tiny = DecimalText::parse("4e-300").unwrap();
        assert_eq!(tiny.to_scaled_i128(2, Rounding::Ceil), Some(1));
        assert_eq!(tiny.to_scaled_i128(2, Rounding::Floor), Some(0));
        assert_eq!(
            DecimalText::parse("1e39")
                .unwrap()
                .to_scaled_i128(0, Rounding::Exact),
            None
        );
        assert_eq!(
            DecimalText::parse("-00.000")
                .unwrap()
                .to_scaled_i128(3, Rounding::Exact),
            Some(0)
        );
        for bad in [
            "",
            "-",
            ".",
            "1e",
            "e5",
            "1.2.3",
            "1e+",
            "0x10",
            " 1",
            "1_000",
            "1e99999999999",
        ] {
            assert_eq!(DecimalText::parse(bad), None, "{bad:?}");
        }
    }

    fn typed_value() -> impl Strategy<Value = ArrayRef> {
        prop_oneof![
            any::<i64>().prop_map(|v| Arc::new(Int64Array::from(vec![v])) as ArrayRef),
            any::<i8>().prop_map(|v| Arc::new(Int8Array::from(vec![v])) as ArrayRef),
            any::<f64>().prop_map(|v| Arc::new(Float64Array::from(vec![v])) as ArrayRef),
            any::<f32>().prop_map(|v| Arc::new(Float32Array::from(vec![v])) as ArrayRef),
            any::<bool>().prop_map(|v| Arc::new(BooleanArray::from(vec![v])) as ArrayRef),
            (any::<i128>(), 0_i8..=38).prop_map(|(v, scale)| {
                let v = v % 10_i128.pow(38);
                Arc::new(
                    Decimal128Array::from(vec![v])
                        .with_precision_and_scale(38, scale)
                        .unwrap(),
                ) as ArrayRef
            }),
            (-719_162_i32..2_932_896)
                .prop_map(|v| Arc::new(Date32Array::from(vec![v])) as ArrayRef),
            (-62_135_596_800_000_000_i64..253_402_300_799_999_999)
                .prop_map(|v| { timestamp_array(v, TimeUnit::Microsecond, Some("UTC".into())) }),
            (-62_135_596_800_000_000_i64..253_402_300_799_999_999).prop_map(|v| timestamp_array(
                v,
                TimeUnit::Microsecond,
                None
            )),
            "\\PC{1,12}".prop_map(|v| Arc::new(StringArray::from(vec![v])) as ArrayRef),
            proptest::collection::vec(any::<u8>(), 1..12)
                .prop_map(|v| { Arc::new(BinaryArray::from_vec(vec![v.as_slice()])) as ArrayRef }),
        ]
    }

    proptest! {
        #[test]
        fn escape_round_trips(value in "\\PC{0,24}|[\\x00-\\x7f]{0,24}") {
            let escaped = escape_partition_dir(&value);
            let forbidden = ['/', ':', '=', '\u{1}'];
            prop_assert!(!escaped.contains(forbidden), "{}", escaped);
            prop_assert_eq!(unescape_partition_dir(&escaped), value);
        }

        #[test]
        fn format_then_parse_round_trips(array in typed_value()) {
            let text = format_partition_value(&array, 0).unwrap().unwrap();
            // A timestamp text without an offset is read in the writer's zone, and an ISO one is not.
            let parsed =
                parse_partition_value(Some(&text), array.data_type(), "c", Some("Asia/Kolkata"))
                    .unwrap();
            match array.data_type() {
                DataType::Float64 if array.as_primitive::<Float64Type>().value(0).is_nan() => {
                    prop_assert!(parsed.as_primitive::<Float64Type>().value(0).is_nan());
                }
                DataType::Float32 if array.as_primitive::<Float32Type>().value(0).is_nan() => {
                    prop_assert!(parsed.as_primitive::<Float32Type>().value(0).is_nan());
                }
                _ => prop_assert_eq!(parsed.to_data(), array.to_data()),
            }
        }

        #[test]
        fn decimal_text_matches_i128(value in any::<i64>(), scale in 0_i64..20) {
            let text = format_decimal(i128::from(value), i8::try_from(scale).unwrap());
            let parsed = DecimalText::parse(&text).unwrap();
            prop_assert_eq!(parsed.to_scaled_i128(scale, Rounding::Exact), Some(i128::from(value)));
        }
    }
}
