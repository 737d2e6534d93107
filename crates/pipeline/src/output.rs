//! Value formatting: Arrow rows as JSON lines, CSV or an aligned table.
//!
//! The JSON rules (the `jsonl` format, and CSV cells, which use the same text):
//!
//! | Arrow type | JSON |
//! |---|---|
//! | null (any type) | `null` |
//! | integers | numbers |
//! | floats | numbers (float32 widened to float64 exactly: `1.1f32` → `1.100000023841858`); NaN and ±infinity as the strings `"NaN"`, `"Infinity"`, `"-Infinity"`; `-0.0` stays `-0.0` |
//! | decimals | strings in plain notation with all scale digits (`"12.30"`, `"-0.05"`) |
//! | date | `"YYYY-MM-DD"` |
//! | timestamp with a zone | RFC 3339 in UTC, 6 fractional digits, `Z` (`"2024-01-02T03:04:05.000000Z"`) |
//! | timestamp without zone | `"YYYY-MM-DDTHH:MM:SS.ffffff"` |
//! | binary | standard base64 (with padding) |
//! | struct | object, fields in schema order |
//! | list | array |
//! | map | object; keys as strings (non-string keys as their JSON text) |
//!
//! These are the rules of the project's canonical row form (`tests/python/README.md`), so
//! [`row_to_json`] can be compared with what delta-rs and DuckDB read.
//!
//! Rows are objects keyed by column name in schema order. Whether a `serde_json::Value`
//! object keeps insertion order depends on serde_json's `preserve_order` feature, a
//! workspace-wide setting, so the CLI does not rely on it: it builds values as [`Json`], a
//! small order-preserving JSON tree ([`cell_to_ordered_json`], [`row_to_ordered_json`]),
//! and writes them with serde_json's string and number encoders. [`cell_to_json`] and
//! [`row_to_json`] return the same values as `serde_json::Value`.

use std::fmt::Write as _;
use std::io::Write;

use anyhow::{Context, Result};
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type, Float16Type,
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, SchemaRef, TimeUnit,
    UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::util::display::{ArrayFormatter, FormatOptions};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, Utc};

use crate::cli::ShowFormat;

/// A JSON value whose objects keep their keys in insertion order.
#[derive(Clone, Debug, PartialEq)]
pub enum Json {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A finite number.
    Number(serde_json::Number),
    /// A string.
    String(String),
    /// An array.
    Array(Vec<Json>),
    /// An object; keys in the order given.
    Object(Vec<(String, Json)>),
}

impl Json {
    /// An object from `(key, value)` pairs, in that order.
    #[must_use]
    pub fn object<K: Into<String>>(entries: impl IntoIterator<Item = (K, Json)>) -> Self {
        Self::Object(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// A string value.
    #[must_use]
    pub fn str(s: impl Into<String>) -> Self {
        Self::String(s.into())
    }

    /// An integer value.
    #[must_use]
    pub fn int(n: impl Into<serde_json::Number>) -> Self {
        Self::Number(n.into())
    }

    /// `value` or `null`.
    #[must_use]
    pub fn opt<T: Into<Json>>(value: Option<T>) -> Self {
        value.map_or(Self::Null, Into::into)
    }

    /// A float: a JSON number when finite, else `"NaN"`, `"Infinity"` or `"-Infinity"`.
    #[must_use]
    pub fn float(v: f64) -> Self {
        match serde_json::Number::from_f64(v) {
            Some(n) => Self::Number(n),
            None if v.is_nan() => Self::str("NaN"),
            None if v > 0.0 => Self::str("Infinity"),
            None => Self::str("-Infinity"),
        }
    }

    /// Append the compact JSON text of this value to `out`.
    pub fn write_to(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Self::Number(n) => {
                let _ = write!(out, "{n}");
            }
            Self::String(s) => write_json_string(out, s),
            Self::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write_to(out);
                }
                out.push(']');
            }
            Self::Object(entries) => {
                out.push('{');
                for (i, (key, value)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_json_string(out, key);
                    out.push(':');
                    value.write_to(out);
                }
                out.push('}');
            }
        }
    }

    /// The compact JSON text of this value.
    #[must_use]
    pub fn to_json_string(&self) -> String {
        let mut out = String::new();
        self.write_to(&mut out);
        out
    }
}

impl From<serde_json::Value> for Json {
    fn from(value: serde_json::Value) -> Self {
        match value {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Bool(b) => Self::Bool(b),
            serde_json::Value::Number(n) => Self::Number(n),
            serde_json::Value::String(s) => Self::String(s),
            serde_json::Value::Array(items) => {
                Self::Array(items.into_iter().map(Self::from).collect())
            }
            serde_json::Value::Object(map) => {
                Self::Object(map.into_iter().map(|(k, v)| (k, Self::from(v))).collect())
            }
        }
    }
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Self::String(s.to_owned())
    }
}

impl From<String> for Json {
    fn from(s: String) -> Self {
        Self::String(s)
    }
}

impl From<bool> for Json {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

impl From<i64> for Json {
    fn from(n: i64) -> Self {
        Self::Number(n.into())
    }
}

impl From<u64> for Json {
    fn from(n: u64) -> Self {
        Self::Number(n.into())
    }
}

impl From<i32> for Json {
    fn from(n: i32) -> Self {
        Self::Number(n.into())
    }
}

impl From<usize> for Json {
    fn from(n: usize) -> Self {
        Self::Number(serde_json::Number::from(n as u64))
    }
}

impl From<Json> for serde_json::Value {
    fn from(value: Json) -> Self {
        match value {
            Json::Null => Self::Null,
            Json::Bool(b) => Self::Bool(b),
            Json::Number(n) => Self::Number(n),
            Json::String(s) => Self::String(s),
            Json::Array(items) => Self::Array(items.into_iter().map(Self::from).collect()),
            Json::Object(entries) => Self::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, Self::from(v)))
                    .collect(),
            ),
        }
    }
}

fn write_json_string(out: &mut String, s: &str) {
    // serde_json's escaping; serialising a &str cannot fail.
    match serde_json::to_string(s) {
        Ok(text) => out.push_str(&text),
        Err(_) => out.push_str("null"),
    }
}

// ---------------------------------------------------------------------------------------------
// Arrow → JSON
// ---------------------------------------------------------------------------------------------

/// The JSON value of row `row` of `array` (see the module docs for the rules).
///
/// # Errors
/// When an unusual Arrow type (interval, union, ...) cannot be displayed by Arrow either.
pub fn cell_to_json(array: &dyn Array, row: usize) -> Result<serde_json::Value> {
    cell_to_ordered_json(array, row).map(Into::into)
}

/// Row `row` of `batch` as a JSON object keyed by column name (partition columns included).
///
/// # Errors
/// As [`cell_to_json`].
pub fn row_to_json(batch: &RecordBatch, row: usize) -> Result<serde_json::Value> {
    row_to_ordered_json(batch, row).map(Into::into)
}

/// As [`cell_to_json`], keeping struct fields and map entries in their order.
///
/// # Errors
/// As [`cell_to_json`].
pub fn cell_to_ordered_json(array: &dyn Array, row: usize) -> Result<Json> {
    if array.data_type() == &DataType::Null || array.is_null(row) {
        return Ok(Json::Null);
    }
    Ok(match array.data_type() {
        DataType::Boolean => Json::Bool(array.as_boolean().value(row)),
        DataType::Int8 => Json::int(array.as_primitive::<Int8Type>().value(row)),
        DataType::Int16 => Json::int(array.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => Json::int(array.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Json::int(array.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Json::int(array.as_primitive::<UInt8Type>().value(row)),
        DataType::UInt16 => Json::int(array.as_primitive::<UInt16Type>().value(row)),
        DataType::UInt32 => Json::int(array.as_primitive::<UInt32Type>().value(row)),
        DataType::UInt64 => Json::int(array.as_primitive::<UInt64Type>().value(row)),
        DataType::Float16 => float32(array.as_primitive::<Float16Type>().value(row).to_f32()),
        DataType::Float32 => float32(array.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Json::float(array.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal32(_, scale) => Json::String(format_decimal(
            &array.as_primitive::<Decimal32Type>().value(row).to_string(),
            *scale,
        )),
        DataType::Decimal64(_, scale) => Json::String(format_decimal(
            &array.as_primitive::<Decimal64Type>().value(row).to_string(),
            *scale,
        )),
        DataType::Decimal128(_, scale) => Json::String(format_decimal(
            &array
                .as_primitive::<Decimal128Type>()
                .value(row)
                .to_string(),
            *scale,
        )),
        DataType::Decimal256(_, scale) => Json::String(format_decimal(
            &array
                .as_primitive::<Decimal256Type>()
                .value(row)
                .to_string(),
            *scale,
        )),
        DataType::Utf8 => Json::str(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Json::str(array.as_string::<i64>().value(row)),
        DataType::Utf8View => Json::str(array.as_string_view().value(row)),
        DataType::Binary => Json::String(BASE64.encode(array.as_binary::<i32>().value(row))),
        DataType::LargeBinary => Json::String(BASE64.encode(array.as_binary::<i64>().value(row))),
        DataType::BinaryView => Json::String(BASE64.encode(array.as_binary_view().value(row))),
        DataType::FixedSizeBinary(_) => {
            Json::String(BASE64.encode(array.as_fixed_size_binary().value(row)))
        }
        DataType::Date32 => {
            let days = array
                .as_primitive::<arrow::datatypes::Date32Type>()
                .value(row);
            match format_date(i64::from(days)) {
                Some(s) => Json::String(s),
                None => fallback(array, row)?,
            }
        }
        DataType::Date64 => {
            let ms = array
                .as_primitive::<arrow::datatypes::Date64Type>()
                .value(row);
            match format_date(ms.div_euclid(86_400_000)) {
                Some(s) => Json::String(s),
                None => fallback(array, row)?,
            }
        }
        DataType::Timestamp(unit, tz) => {
            let value = timestamp_value(array, row, *unit);
            match format_timestamp(value, *unit, tz.is_some()) {
                Some(s) => Json::String(s),
                None => fallback(array, row)?,
            }
        }
        DataType::Struct(_) => {
            let s = array.as_struct();
            let mut entries = Vec::with_capacity(s.num_columns());
            for (field, column) in s.fields().iter().zip(s.columns()) {
                entries.push((
                    field.name().clone(),
                    cell_to_ordered_json(column.as_ref(), row)?,
                ));
            }
            Json::Object(entries)
        }
        DataType::List(_) => list_to_json(array.as_list::<i32>().value(row).as_ref())?,
        DataType::LargeList(_) => list_to_json(array.as_list::<i64>().value(row).as_ref())?,
        DataType::ListView(_) => list_to_json(array.as_list_view::<i32>().value(row).as_ref())?,
        DataType::LargeListView(_) => {
            list_to_json(array.as_list_view::<i64>().value(row).as_ref())?
        }
        DataType::FixedSizeList(_, _) => {
            list_to_json(array.as_fixed_size_list().value(row).as_ref())?
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            let keys = entries.column(0);
            let values = entries.column(1);
            let mut out = Vec::with_capacity(entries.len());
            for i in 0..entries.len() {
                let key = match cell_to_ordered_json(keys.as_ref(), i)? {
                    Json::String(s) => s,
                    other => other.to_json_string(),
                };
                out.push((key, cell_to_ordered_json(values.as_ref(), i)?));
            }
            Json::Object(out)
        }
        DataType::Dictionary(_, _) => {
            let dictionary = array.as_any_dictionary();
            let keys = dictionary.normalized_keys();
            match keys.get(row) {
                Some(&key) => cell_to_ordered_json(dictionary.values().as_ref(), key)?,
                None => Json::Null,
            }
        }
        _ => fallback(array, row)?,
    })
}

/// Every element of a list value, as a JSON array.
fn list_to_json(values: &dyn Array) -> Result<Json> {
    (0..values.len())
        .map(|i| cell_to_ordered_json(values, i))
        .collect::<Result<Vec<_>>>()
        .map(Json::Array)
}

/// Types without a rule of their own (time of day, durations, intervals, unions, run-end
/// encoded): Arrow's display text as a string.
fn fallback(array: &dyn Array, row: usize) -> Result<Json> {
    let formatter = ArrayFormatter::try_new(array, &FormatOptions::default())
        .with_context(|| format!("cannot format a value of type {}", array.data_type()))?;
    Ok(Json::String(formatter.value(row).to_string()))
}

/// A float32, widened to float64 exactly (`0.1f32` prints `0.10000000149011612`): the value
/// as stored, and the form the project's peers (delta-rs via pyarrow) produce.
fn float32(v: f32) -> Json {
    Json::float(f64::from(v))
}

/// The raw value of a timestamp array at `row` (units of `unit` since the epoch).
fn timestamp_value(array: &dyn Array, row: usize, unit: TimeUnit) -> i64 {
    use arrow::datatypes::{
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
        TimestampSecondType,
    };
    match unit {
        TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
        TimeUnit::Millisecond => array.as_primitive::<TimestampMillisecondType>().value(row),
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(row),
        TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
    }
}

/// `value` (in `unit` since the epoch) as `YYYY-MM-DDTHH:MM:SS.ffffff`, with a trailing `Z`
/// when `utc`. Sub-microsecond digits are truncated (towards the past). `None` when the
/// value is outside chrono's range.
#[must_use]
pub fn format_timestamp(value: i64, unit: TimeUnit, utc: bool) -> Option<String> {
    let per_second: i64 = match unit {
        TimeUnit::Second => 1,
        TimeUnit::Millisecond => 1_000,
        TimeUnit::Microsecond => 1_000_000,
        TimeUnit::Nanosecond => 1_000_000_000,
    };
    let seconds = value.div_euclid(per_second);
    let fraction = value.rem_euclid(per_second);
    let nanos = u32::try_from(fraction * (1_000_000_000 / per_second)).ok()?;
    let time = DateTime::<Utc>::from_timestamp(seconds, nanos)?;
    let text = time.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
    Some(if utc { text + "Z" } else { text })
}

/// Days since 1970-01-01 as `YYYY-MM-DD`.
fn format_date(days: i64) -> Option<String> {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1)?;
    let date = epoch.checked_add_signed(chrono::TimeDelta::try_days(days)?)?;
    Some(date.format("%Y-%m-%d").to_string())
}

/// An unscaled decimal integer (decimal digits, optional leading `-`) with `scale` digits
/// after the point, in plain notation: `("1230", 2)` → `12.30`, `("-5", 2)` → `-0.05`.
#[must_use]
pub fn format_decimal(unscaled: &str, scale: i8) -> String {
    let (negative, digits) = match unscaled.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, unscaled),
    };
    let sign = if negative { "-" } else { "" };
    if scale <= 0 {
        let zeros = "0".repeat(usize::from(scale.unsigned_abs()));
        return if digits.trim_start_matches('0').is_empty() {
            "0".to_owned()
        } else {
            format!("{sign}{digits}{zeros}")
        };
    }
    let scale = usize::from(scale.unsigned_abs());
    let padded = if digits.len() <= scale {
        format!("{}{digits}", "0".repeat(scale + 1 - digits.len()))
    } else {
        digits.to_owned()
    };
    let (int_part, frac_part) = padded.split_at(padded.len() - scale);
    format!("{sign}{int_part}.{frac_part}")
}

/// Milliseconds since the epoch as RFC 3339 in UTC with millisecond precision
/// (`2024-01-02T03:04:05.678Z`); the raw number when out of range.
#[must_use]
pub fn format_millis(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms).map_or_else(
        || format!("{ms} ms"),
        |t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
    )
}

/// Row `row` of `batch` as a JSON object keyed by column name, in schema order.
///
/// # Errors
/// As [`cell_to_json`].
pub fn row_to_ordered_json(batch: &RecordBatch, row: usize) -> Result<Json> {
    let schema = batch.schema();
    let mut entries = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        entries.push((
            field.name().clone(),
            cell_to_ordered_json(column.as_ref(), row)?,
        ));
    }
    Ok(Json::Object(entries))
}

/// The CSV text of a cell: `None` for null; strings as they are; everything else as its JSON
/// text (numbers, dates, decimals, base64, nested values as JSON).
///
/// # Errors
/// As [`cell_to_json`].
pub fn cell_to_text(array: &dyn Array, row: usize) -> Result<Option<String>> {
    Ok(match cell_to_ordered_json(array, row)? {
        Json::Null => None,
        Json::String(s) => Some(s),
        other => Some(other.to_json_string()),
    })
}

/// Append one CSV field (RFC 4180): quoted when it holds `,`, `"`, CR or LF, or is empty
/// (so an empty string `""` differs from a null, which is written as nothing).
fn push_csv_field(out: &mut String, field: Option<&str>) {
    let Some(text) = field else {
        return;
    };
    if text.is_empty() || text.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

// ---------------------------------------------------------------------------------------------
// Row writer
// ---------------------------------------------------------------------------------------------

/// Rows collected before one aligned table is printed in `table` format.
const TABLE_CHUNK_ROWS: usize = 1_000;

/// Writes batches of rows in one of the [`ShowFormat`]s.
pub struct RowWriter<W: Write> {
    out: W,
    format: ShowFormat,
    schema: SchemaRef,
    pending: Vec<RecordBatch>,
    pending_rows: usize,
    rows: usize,
    header_written: bool,
}

impl<W: Write> RowWriter<W> {
    /// A writer of rows with `schema` to `out`.
    pub fn new(out: W, format: ShowFormat, schema: SchemaRef) -> Self {
        Self {
            out,
            format,
            schema,
            pending: Vec::new(),
            pending_rows: 0,
            rows: 0,
            header_written: false,
        }
    }

    /// Write (or, for `table`, buffer) the rows of `batch`.
    ///
    /// # Errors
    /// I/O errors of the output (a closed pipe included) and formatting errors.
    pub fn write_batch(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows();
        match self.format {
            ShowFormat::Jsonl => {
                let mut line = String::new();
                for row in 0..batch.num_rows() {
                    line.clear();
                    row_to_ordered_json(batch, row)?.write_to(&mut line);
                    line.push('\n');
                    self.out.write_all(line.as_bytes())?;
                }
            }
            ShowFormat::Csv => {
                self.write_csv_header()?;
                let mut line = String::new();
                for row in 0..batch.num_rows() {
                    line.clear();
                    for (i, column) in batch.columns().iter().enumerate() {
                        if i > 0 {
                            line.push(',');
                        }
                        push_csv_field(&mut line, cell_to_text(column.as_ref(), row)?.as_deref());
                    }
                    line.push('\n');
                    self.out.write_all(line.as_bytes())?;
                }
            }
            ShowFormat::Table => {
                if batch.num_rows() > 0 {
                    self.pending_rows += batch.num_rows();
                    self.pending.push(batch.clone());
                }
                if self.pending_rows >= TABLE_CHUNK_ROWS {
                    self.flush_table()?;
                }
            }
        }
        Ok(())
    }

    fn write_csv_header(&mut self) -> Result<()> {
        if self.header_written {
            return Ok(());
        }
        self.header_written = true;
        let mut line = String::new();
        for (i, field) in self.schema.fields().iter().enumerate() {
            if i > 0 {
                line.push(',');
            }
            push_csv_field(&mut line, Some(field.name()));
        }
        line.push('\n');
        self.out.write_all(line.as_bytes())?;
        Ok(())
    }

    fn flush_table(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let options = FormatOptions::default().with_null("NULL");
        let table =
            arrow::util::pretty::pretty_format_batches_with_options(&self.pending, &options)
                .context("cannot format rows as a table")?;
        writeln!(self.out, "{table}")?;
        self.pending.clear();
        self.pending_rows = 0;
        Ok(())
    }

    /// Write what is buffered (and, for `table`, a row count; for `csv`, at least the
    /// header), flush, and return the number of rows written.
    ///
    /// # Errors
    /// I/O and formatting errors.
    pub fn finish(mut self) -> Result<usize> {
        match self.format {
            ShowFormat::Csv => self.write_csv_header()?,
            ShowFormat::Table => {
                if self.rows == 0 {
                    // An empty table still shows its columns.
                    let empty = RecordBatch::new_empty(self.schema.clone());
                    self.pending.push(empty);
                }
                self.flush_table()?;
                let noun = if self.rows == 1 { "row" } else { "rows" };
                writeln!(self.out, "{} {noun}", self.rows)?;
            }
            ShowFormat::Jsonl => {}
        }
        self.out.flush()?;
        Ok(self.rows)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BinaryArray, Date32Array, Decimal128Array, Float32Array, Float64Array,
        Int32Array, ListArray, MapBuilder, StringArray, StringBuilder, StructArray,
        TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Field, Int32Type as I32, Schema};

    use super::*;

    fn json(array: &dyn Array, row: usize) -> String {
        cell_to_ordered_json(array, row)
            .expect("formats")
            .to_json_string()
    }

    #[test]
    fn decimals_keep_their_scale() {
        assert_eq!(format_decimal("1230", 2), "12.30");
        assert_eq!(format_decimal("-5", 2), "-0.05");
        assert_eq!(format_decimal("0", 3), "0.000");
        assert_eq!(format_decimal("7", 0), "7");
        assert_eq!(format_decimal("12", -2), "1200");
        let array = Decimal128Array::from(vec![Some(1230), Some(-1), None])
            .with_precision_and_scale(10, 2)
            .expect("valid");
        assert_eq!(json(&array, 0), r#""12.30""#);
        assert_eq!(json(&array, 1), r#""-0.01""#);
        assert_eq!(json(&array, 2), "null");
    }

    #[test]
    fn floats() {
        let array = Float64Array::from(vec![1.5, f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1.0]);
        assert_eq!(json(&array, 0), "1.5");
        assert_eq!(json(&array, 1), r#""NaN""#);
        assert_eq!(json(&array, 2), r#""Infinity""#);
        assert_eq!(json(&array, 3), r#""-Infinity""#);
        assert_eq!(json(&array, 4), "1.0");
        let array = Float32Array::from(vec![0.1f32, -0.0]);
        assert_eq!(json(&array, 0), "0.10000000149011612");
        assert_eq!(json(&array, 1), "-0.0");
    }

    #[test]
    fn dates_timestamps_binary() {
        let dates = Date32Array::from(vec![0, 19_724, -1]);
        assert_eq!(json(&dates, 0), r#""1970-01-01""#);
        assert_eq!(json(&dates, 1), r#""2024-01-02""#);
        assert_eq!(json(&dates, 2), r#""1969-12-31""#);
        let micros = 1_704_164_645_000_001i64; // 2024-01-02T03:04:05.000001Z
        let utc = TimestampMicrosecondArray::from(vec![micros, -1]).with_timezone("UTC");
        assert_eq!(json(&utc, 0), r#""2024-01-02T03:04:05.000001Z""#);
        assert_eq!(json(&utc, 1), r#""1969-12-31T23:59:59.999999Z""#);
        let ntz = TimestampMicrosecondArray::from(vec![micros]);
        assert_eq!(json(&ntz, 0), r#""2024-01-02T03:04:05.000001""#);
        let bin = BinaryArray::from(vec![b"hi!".as_ref(), b"".as_ref()]);
        assert_eq!(json(&bin, 0), r#""aGkh""#);
        assert_eq!(json(&bin, 1), r#""""#);
    }

    #[test]
    fn nested_values_keep_field_order() {
        let strukt = StructArray::from(vec![
            (
                Arc::new(Field::new("z", DataType::Int32, true)),
                Arc::new(Int32Array::from(vec![1])) as ArrayRef,
            ),
            (
                Arc::new(Field::new("a", DataType::Utf8, true)),
                Arc::new(StringArray::from(vec![None::<&str>])) as ArrayRef,
            ),
        ]);
        assert_eq!(json(&strukt, 0), r#"{"z":1,"a":null}"#);

        let list = ListArray::from_iter_primitive::<I32, _, _>(vec![Some(vec![Some(1), None])]);
        assert_eq!(json(&list, 0), "[1,null]");

        let mut builder = MapBuilder::new(
            None,
            arrow::array::Int32Builder::new(),
            StringBuilder::new(),
        );
        builder.keys().append_value(2);
        builder.values().append_value("two");
        builder.append(true).expect("map");
        let map = builder.finish();
        assert_eq!(json(&map, 0), r#"{"2":"two"}"#);
    }

    #[test]
    fn rows_and_csv() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("b", DataType::Utf8, true),
            Field::new("a", DataType::Int32, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec![Some("x,\"y\""), Some(""), None])),
                Arc::new(Int32Array::from(vec![Some(1), None, Some(3)])),
            ],
        )
        .expect("batch");
        assert_eq!(
            row_to_ordered_json(&batch, 0)
                .expect("row")
                .to_json_string(),
            r#"{"b":"x,\"y\"","a":1}"#
        );
        assert_eq!(
            row_to_json(&batch, 2).expect("row"),
            serde_json::json!({"a": 3, "b": null})
        );

        let mut out = Vec::new();
        let mut writer = RowWriter::new(&mut out, ShowFormat::Csv, schema.clone());
        writer.write_batch(&batch).expect("write");
        assert_eq!(writer.finish().expect("finish"), 3);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "b,a\n\"x,\"\"y\"\"\",1\n\"\",\n,3\n"
        );

        let mut out = Vec::new();
        let mut writer = RowWriter::new(&mut out, ShowFormat::Table, schema);
        writer.write_batch(&batch).expect("write");
        writer.finish().expect("finish");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.contains("NULL"), "{text}");
        assert!(text.ends_with("3 rows\n"), "{text}");
    }

    #[test]
    fn millis() {
        assert_eq!(format_millis(1_704_164_645_678), "2024-01-02T03:04:05.678Z");
    }
}
