//! Conversions between value types, for `CAST`, promotion and store assignment.
//!
//! Spark without ANSI mode for text (text that is not a valid value becomes NULL), but a number
//! that does not fit its target is reported as [`CastFailure::Overflow`] instead of becoming NULL
//! or wrapping. The caller turns that into an error naming the operation, never the value.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, ArrowPrimitiveType, AsArray, BooleanArray, Date32Array, Decimal128Array,
    PrimitiveArray, StringArray, TimestampMicrosecondArray, new_null_array,
};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, TimeUnit,
    TimestampMicrosecondType,
};
use chrono::DateTime;

use crate::partition::{
    DecimalText, Rounding, naive_micros, parse_date_days, parse_timestamp_text,
};

/// Why a conversion failed.
#[derive(Debug)]
pub(super) enum CastFailure {
    /// A number (or date) does not fit the target type.
    Overflow,
    /// The conversion is not supported (the message names types only).
    Unsupported(String),
}

pub(super) fn is_text(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

pub(super) fn is_binary(data_type: &DataType) -> bool {
    matches!(
        data_type,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

/// Converts `array` to `to`: text is read leniently (invalid → NULL), everything is printed as
/// Spark prints it, and numbers convert exactly, by truncation to integers or by rounding half up
/// to decimals — or fail with [`CastFailure::Overflow`].
pub(super) fn cast_value(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, CastFailure> {
    let from = array.data_type();
    if from == to {
        return Ok(Arc::clone(array));
    }
    if *from == DataType::Null {
        return Ok(new_null_array(to, array.len()));
    }
    if is_text(to) {
        let text = to_text(array)?;
        return if *to == DataType::Utf8 {
            Ok(text)
        } else {
            arrow_cast(&text, to)
        };
    }
    if is_text(from) && !is_binary(to) {
        let text = arrow_cast(array, &DataType::Utf8)?;
        let strings = text
            .as_string_opt::<i32>()
            .ok_or_else(|| CastFailure::Unsupported("expected strings".to_string()))?;
        return from_text(strings, to);
    }
    let converted = arrow_cast(array, to)?;
    if converted.logical_null_count() > array.logical_null_count() {
        return Err(CastFailure::Overflow);
    }
    Ok(converted)
}

fn arrow_cast(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, CastFailure> {
    // `cast` is arrow's safe mode: a value that does not convert becomes NULL, and its errors
    // (unsupported conversions) name types only.
    cast(array, to).map_err(|error| CastFailure::Unsupported(error.to_string()))
}

// ---- To text ---------------------------------------------------------------------------------

fn to_text(array: &ArrayRef) -> Result<ArrayRef, CastFailure> {
    Ok(match array.data_type() {
        DataType::Utf8 => Arc::clone(array),
        DataType::Float64 => Arc::new(
            array
                .as_primitive::<Float64Type>()
                .iter()
                .map(|value| value.map(java_double))
                .collect::<StringArray>(),
        ),
        DataType::Float32 => Arc::new(
            array
                .as_primitive::<Float32Type>()
                .iter()
                .map(|value| value.map(java_float))
                .collect::<StringArray>(),
        ),
        DataType::Timestamp(unit, zone) => {
            let micros = if *unit == TimeUnit::Microsecond {
                Arc::clone(array)
            } else {
                let micros = DataType::Timestamp(TimeUnit::Microsecond, zone.clone());
                let converted = arrow_cast(array, &micros)?;
                if converted.logical_null_count() > array.logical_null_count() {
                    return Err(CastFailure::Overflow);
                }
                converted
            };
            let strings: StringArray = micros
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .map(|value| value.and_then(spark_timestamp))
                .collect();
            if strings.null_count() > array.null_count() {
                return Err(CastFailure::Overflow);
            }
            Arc::new(strings)
        }
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
            let bytes = arrow_cast(array, &DataType::Binary)?;
            Arc::new(
                bytes
                    .as_binary::<i32>()
                    .iter()
                    .map(|value| value.map(|bytes| String::from_utf8_lossy(bytes).into_owned()))
                    .collect::<StringArray>(),
            )
        }
        _ => {
            let text = arrow_cast(array, &DataType::Utf8)?;
            if text.logical_null_count() > array.logical_null_count() {
                return Err(CastFailure::Overflow);
            }
            text
        }
    })
}

/// `YYYY-MM-DD HH:MM:SS[.fraction without trailing zeros]` of microseconds since the epoch, in
/// UTC (Spark's format for timestamps, with the session time zone UTC, and for wall-clock time).
fn spark_timestamp(micros: i64) -> Option<String> {
    let at = DateTime::from_timestamp_micros(micros)?.naive_utc();
    let mut text = at.format("%Y-%m-%d %H:%M:%S").to_string();
    let fraction = micros.rem_euclid(1_000_000);
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        text.push('.');
        text.push_str(digits.trim_end_matches('0'));
    }
    Some(text)
}

/// Java's `Double.toString`: plain notation with at least one fraction digit for magnitudes in
/// [10^-3, 10^7), computerized scientific notation (`1.0E20`, `1.5E-4`) otherwise.
fn java_double(value: f64) -> String {
    java_number(
        value.is_nan(),
        value.is_infinite(),
        value.is_sign_negative(),
        value == 0.0,
        (1e-3..1e7).contains(&value.abs()),
        || value.to_string(),
        || format!("{value:e}"),
    )
}

/// Java's `Float.toString` (as [`java_double`], with the shortest digits of an `f32`).
fn java_float(value: f32) -> String {
    java_number(
        value.is_nan(),
        value.is_infinite(),
        value.is_sign_negative(),
        value == 0.0,
        (1e-3..1e7).contains(&value.abs()),
        || value.to_string(),
        || format!("{value:e}"),
    )
}

fn java_number(
    nan: bool,
    infinite: bool,
    negative: bool,
    zero: bool,
    plain: bool,
    plain_text: impl FnOnce() -> String,
    scientific_text: impl FnOnce() -> String,
) -> String {
    if nan {
        return "NaN".to_string();
    }
    if infinite {
        return if negative { "-Infinity" } else { "Infinity" }.to_string();
    }
    if zero {
        return if negative { "-0.0" } else { "0.0" }.to_string();
    }
    if plain {
        let text = plain_text();
        return if text.contains('.') {
            text
        } else {
            format!("{text}.0")
        };
    }
    let text = scientific_text();
    let (mantissa, exponent) = text.split_once('e').unwrap_or((text.as_str(), "0"));
    if mantissa.contains('.') {
        format!("{mantissa}E{exponent}")
    } else {
        format!("{mantissa}.0E{exponent}")
    }
}

// ---- From text -------------------------------------------------------------------------------

fn from_text(strings: &StringArray, to: &DataType) -> Result<ArrayRef, CastFailure> {
    Ok(match to {
        DataType::Boolean => Arc::new(
            strings
                .iter()
                .map(|value| value.and_then(|text| text_to_bool(text.trim())))
                .collect::<BooleanArray>(),
        ),
        DataType::Int8 => Arc::new(parse_each::<Int8Type>(strings, |text| {
            text_to_integer(text).and_then(|value| i8::try_from(value).ok())
        })),
        DataType::Int16 => Arc::new(parse_each::<Int16Type>(strings, |text| {
            text_to_integer(text).and_then(|value| i16::try_from(value).ok())
        })),
        DataType::Int32 => Arc::new(parse_each::<Int32Type>(strings, |text| {
            text_to_integer(text).and_then(|value| i32::try_from(value).ok())
        })),
        DataType::Int64 => Arc::new(parse_each::<Int64Type>(strings, |text| {
            text_to_integer(text).and_then(|value| i64::try_from(value).ok())
        })),
        DataType::Float32 => Arc::new(parse_each::<Float32Type>(strings, |text| text.parse().ok())),
        DataType::Float64 => Arc::new(parse_each::<Float64Type>(strings, |text| text.parse().ok())),
        DataType::Decimal128(precision, scale) => Arc::new(
            strings
                .iter()
                .map(|value| {
                    value.and_then(|text| text_to_decimal(text.trim(), *precision, *scale))
                })
                .collect::<Decimal128Array>()
                .with_precision_and_scale(*precision, *scale)
                .map_err(|error| CastFailure::Unsupported(error.to_string()))?,
        ),
        DataType::Date32 => Arc::new(
            strings
                .iter()
                .map(|value| value.and_then(|text| text_to_date(text.trim())))
                .collect::<Date32Array>(),
        ),
        DataType::Timestamp(unit, zone) => {
            let micros: ArrayRef = Arc::new(
                strings
                    .iter()
                    .map(|value| value.and_then(|text| text_to_micros(text.trim(), zone.is_some())))
                    .collect::<TimestampMicrosecondArray>()
                    .with_timezone_opt(zone.clone()),
            );
            if *unit == TimeUnit::Microsecond {
                micros
            } else {
                let converted = arrow_cast(&micros, to)?;
                if converted.logical_null_count() > micros.logical_null_count() {
                    return Err(CastFailure::Overflow);
                }
                converted
            }
        }
        other => {
            return Err(CastFailure::Unsupported(format!(
                "strings cannot be converted to {other}"
            )));
        }
    })
}

fn parse_each<T: ArrowPrimitiveType>(
    strings: &StringArray,
    parse: impl Fn(&str) -> Option<T::Native>,
) -> PrimitiveArray<T> {
    strings
        .iter()
        .map(|value| value.and_then(|text| parse(text.trim())))
        .collect()
}

/// Spark's `StringUtils.isTrueString` / `isFalseString`.
fn text_to_bool(text: &str) -> Option<bool> {
    const TRUE: [&str; 5] = ["t", "true", "y", "yes", "1"];
    const FALSE: [&str; 5] = ["f", "false", "n", "no", "0"];
    if TRUE.iter().any(|word| word.eq_ignore_ascii_case(text)) {
        Some(true)
    } else if FALSE.iter().any(|word| word.eq_ignore_ascii_case(text)) {
        Some(false)
    } else {
        None
    }
}

/// The number `text` spells times `10^scale`, truncated toward zero.
fn truncated_scaled(text: &str, scale: i64) -> Option<i128> {
    let decimal = DecimalText::parse(text)?;
    let floor = decimal.to_scaled_i128(scale, Rounding::Floor)?;
    if floor < 0 {
        decimal.to_scaled_i128(scale, Rounding::Ceil)
    } else {
        Some(floor)
    }
}

/// An integer from decimal text, dropping any fraction (`'1.9'` is 1, `'-1.9'` is -1).
fn text_to_integer(text: &str) -> Option<i128> {
    truncated_scaled(text, 0)
}

/// A `DECIMAL(precision, scale)` value from decimal text, rounded half up; `None` if it does not
/// fit.
fn text_to_decimal(text: &str, precision: u8, scale: i8) -> Option<i128> {
    let tenths = truncated_scaled(text, i64::from(scale) + 1)?;
    let (quotient, remainder) = (tenths / 10, tenths % 10);
    let value = if remainder >= 5 {
        quotient + 1
    } else if remainder <= -5 {
        quotient - 1
    } else {
        quotient
    };
    let limit = 10_i128.checked_pow(u32::from(precision))?;
    (value.checked_abs()? < limit).then_some(value)
}

/// A date from `YYYY-MM-DD`, optionally followed by a time (`T…` or ` …`).
fn text_to_date(text: &str) -> Option<i32> {
    let day = text.split(['T', ' ']).next()?;
    parse_date_days(day)
}

/// Microseconds of a timestamp text: an instant (no offset means UTC) when `instant`, else
/// wall-clock time, which must not carry an offset.
fn text_to_micros(text: &str, instant: bool) -> Option<i64> {
    let parsed = parse_timestamp_text(text)?;
    match parsed.offset_seconds {
        Some(offset) if instant => parsed.instant_micros(offset),
        Some(_) => None,
        None => naive_micros(&parsed.naive),
    }
}
