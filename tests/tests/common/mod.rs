//! Helpers shared by the cross-crate tests: locating inputs and comparing rows.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::path::PathBuf;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use futures::StreamExt;
use serde_json::{Value, json};

/// Whether we run under CI, where no test may skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// The directory named by `var`, or a skip (outside CI) / panic (in CI) when unset.
pub fn input_dir(var: &str, what: &str) -> Option<PathBuf> {
    match std::env::var_os(var) {
        Some(dir) if PathBuf::from(&dir).is_dir() => Some(PathBuf::from(dir)),
        _ => {
            assert!(
                !in_ci(),
                "{var} is not set to a directory under CI=true: {what} cannot be skipped (run ./test.sh)"
            );
            eprintln!("SKIPPED: {what}: set {var} (./test.sh does)");
            None
        }
    }
}

/// A runtime for async tests that loop over many tables.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// A canonical JSON value of one array element, independent of physical encoding:
/// integers as i64, floats as f64 (NaN and infinities as strings), decimals as plain
/// strings, timestamps as microseconds since the epoch, dates as days, binary as hex,
/// lists as arrays, maps as sorted `[key, value]` pairs, structs as objects.
pub fn canonical(array: &dyn Array, row: usize) -> Value {
    if array.is_null(row) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => json!(array.as_boolean().value(row)),
        DataType::Int8 => json!(
            array
                .as_primitive::<arrow::datatypes::Int8Type>()
                .value(row)
        ),
        DataType::Int16 => json!(
            array
                .as_primitive::<arrow::datatypes::Int16Type>()
                .value(row)
        ),
        DataType::Int32 => json!(
            array
                .as_primitive::<arrow::datatypes::Int32Type>()
                .value(row)
        ),
        DataType::Int64 => json!(
            array
                .as_primitive::<arrow::datatypes::Int64Type>()
                .value(row)
        ),
        DataType::UInt8 => json!(
            array
                .as_primitive::<arrow::datatypes::UInt8Type>()
                .value(row)
        ),
        DataType::UInt16 => json!(
            array
                .as_primitive::<arrow::datatypes::UInt16Type>()
                .value(row)
        ),
        DataType::UInt32 => json!(
            array
                .as_primitive::<arrow::datatypes::UInt32Type>()
                .value(row)
        ),
        DataType::UInt64 => json!(
            array
                .as_primitive::<arrow::datatypes::UInt64Type>()
                .value(row)
        ),
        DataType::Float32 => float(f64::from(
            array
                .as_primitive::<arrow::datatypes::Float32Type>()
                .value(row),
        )),
        DataType::Float64 => float(
            array
                .as_primitive::<arrow::datatypes::Float64Type>()
                .value(row),
        ),
        DataType::Decimal128(_, scale) => {
            let v = array
                .as_primitive::<arrow::datatypes::Decimal128Type>()
                .value(row);
            json!(format_decimal(v, *scale))
        }
        DataType::Utf8 => json!(array.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => json!(array.as_string::<i64>().value(row)),
        DataType::Utf8View => json!(array.as_string_view().value(row)),
        DataType::Binary => json!(hex(array.as_binary::<i32>().value(row))),
        DataType::LargeBinary => json!(hex(array.as_binary::<i64>().value(row))),
        DataType::FixedSizeBinary(_) => json!(hex(array.as_fixed_size_binary().value(row))),
        DataType::BinaryView => json!(hex(array.as_binary_view().value(row))),
        DataType::Date32 => json!(
            array
                .as_primitive::<arrow::datatypes::Date32Type>()
                .value(row)
        ),
        DataType::Timestamp(unit, _) => {
            let micros = match unit {
                TimeUnit::Second => array
                    .as_primitive::<arrow::datatypes::TimestampSecondType>()
                    .value(row)
                    .saturating_mul(1_000_000),
                TimeUnit::Millisecond => array
                    .as_primitive::<arrow::datatypes::TimestampMillisecondType>()
                    .value(row)
                    .saturating_mul(1000),
                TimeUnit::Microsecond => array
                    .as_primitive::<arrow::datatypes::TimestampMicrosecondType>()
                    .value(row),
                TimeUnit::Nanosecond => {
                    array
                        .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                        .value(row)
                        / 1000
                }
            };
            json!(micros)
        }
        DataType::List(_) => list(array.as_list::<i32>().value(row)),
        DataType::LargeList(_) => list(array.as_list::<i64>().value(row)),
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut map = serde_json::Map::new();
            for (i, f) in fields.iter().enumerate() {
                map.insert(f.name().clone(), canonical(s.column(i).as_ref(), row));
            }
            Value::Object(map)
        }
        DataType::Map(_, _) => {
            let entries = array.as_map().value(row);
            let keys = entries.column(0);
            let values = entries.column(1);
            let mut pairs: Vec<Value> = (0..entries.len())
                .map(|i| json!([canonical(keys.as_ref(), i), canonical(values.as_ref(), i)]))
                .collect();
            pairs.sort_by_key(std::string::ToString::to_string);
            Value::Array(pairs)
        }
        other => json!(format!("<unsupported {other}>")),
    }
}

fn list(values: ArrayRef) -> Value {
    Value::Array(
        (0..values.len())
            .map(|i| canonical(values.as_ref(), i))
            .collect(),
    )
}

fn float(v: f64) -> Value {
    if v.is_nan() {
        json!("NaN")
    } else if v.is_infinite() {
        json!(if v > 0.0 { "Infinity" } else { "-Infinity" })
    } else {
        json!(v)
    }
}

/// Plain-notation decimal text of `value` at `scale`.
pub fn format_decimal(value: i128, scale: i8) -> String {
    let negative = value < 0;
    let digits = value.unsigned_abs().to_string();
    let scale = usize::try_from(scale).unwrap_or(0);
    let text = if scale == 0 {
        digits
    } else if digits.len() > scale {
        format!(
            "{}.{}",
            &digits[..digits.len() - scale],
            &digits[digits.len() - scale..]
        )
    } else {
        format!("0.{}{digits}", "0".repeat(scale - digits.len()))
    };
    if negative { format!("-{text}") } else { text }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Rows of `batches` as canonical JSON strings (columns named as in the batch), sorted.
pub fn canonical_rows(batches: &[RecordBatch]) -> Vec<String> {
    let mut rows = Vec::new();
    for batch in batches {
        let schema = batch.schema();
        for row in 0..batch.num_rows() {
            let mut map = serde_json::Map::new();
            for (i, field) in schema.fields().iter().enumerate() {
                map.insert(
                    field.name().clone(),
                    canonical(batch.column(i).as_ref(), row),
                );
            }
            rows.push(Value::Object(map).to_string());
        }
    }
    rows.sort();
    rows
}

/// Read every parquet file under `dir` (recursively) into batches.
pub fn read_parquet_dir(dir: &std::path::Path) -> Vec<RecordBatch> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read expected dir") {
            let path = entry.expect("dir entry").path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files.sort();
    let mut batches = Vec::new();
    for file in files {
        let f = std::fs::File::open(&file).expect("open expected parquet");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
            .expect("expected parquet")
            .build()
            .expect("expected parquet reader");
        for batch in reader {
            batches.push(batch.expect("expected batch"));
        }
    }
    batches
}

/// A peer's row (canonical JSON from `tests/python/interop_json.py` or
/// `pipeline::output::row_to_json`) in comparable form: object keys sorted recursively, and
/// floats at 15 significant digits (a float32 widened to f64 is printed with different,
/// equally valid, digit counts by Python and Rust).
pub fn comparable(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), comparable(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(comparable).collect()),
        Value::Number(n) if n.is_f64() => {
            Value::String(format!("{:.14e}", n.as_f64().unwrap_or_default()))
        }
        other => other.clone(),
    }
}

/// Rows in comparable form, as sorted strings (a multiset).
pub fn sorted_rows(rows: impl IntoIterator<Item = Value>) -> Vec<String> {
    let mut out: Vec<String> = rows
        .into_iter()
        .map(|r| comparable(&r).to_string())
        .collect();
    out.sort();
    out
}

/// Deletion vectors (inline and in files, replaced by larger ones, a file emptied) and change
/// data files from DELETE, UPDATE and MERGE, on a partitioned table that turned both on later;
/// a checkpoint of the last version.
///
/// `batch(ids)` makes the rows with ids `ids`: columns `id` (Int64), `grp` (the partition
/// column), `label` (Utf8) and any others.
pub async fn deletion_vectors_cdf(
    t: &delta_core::Table,
    batch: &(dyn Fn(std::ops::Range<i64>) -> RecordBatch + Sync),
) -> delta_core::Result<()> {
    use delta_core::expression::parse;
    let stream = |b: RecordBatch| futures::stream::iter([Ok(b)]).boxed();
    let _ = t
        .write()
        .with_partition_columns(["grp"])
        .execute(stream(batch(0..60)))
        .await?;
    let _ = t
        .set_properties(&[
            ("delta.enableDeletionVectors".to_owned(), "true".to_owned()),
            ("delta.enableChangeDataFeed".to_owned(), "true".to_owned()),
        ])
        .await?;
    let _ = t.delete(Some(parse("id = 7").expect("predicate"))).await?;
    let _ = t
        .delete(Some(parse("id >= 20 AND id < 40").expect("predicate")))
        .await?;
    let _ = t
        .update(
            &[(
                "label".to_owned(),
                parse("label || ' updated'").expect("expr"),
            )],
            Some(parse("id % 3 = 0").expect("predicate")),
        )
        .await?;
    let on = || parse("t.id = s.id").expect("on");
    let _ = t
        .merge(stream(batch(50..70)), on())
        .when_matched_delete(Some(parse("t.id % 2 = 0").expect("cond")))
        .when_matched_update_all(None)
        .when_not_matched_insert_all(None)
        .when_not_matched_by_source_delete(Some(parse("t.id < 5").expect("cond")))
        .execute()
        .await?;
    let _ = t
        .delete(Some(parse("id >= 40").expect("predicate")))
        .await?;
    // Peers then read the deletion vectors from a checkpoint too.
    t.checkpoint(&t.snapshot().await?).await?;
    Ok(())
}

/// Our change data feed of the table at `path` from `start` to `end` (the latest when `None`),
/// as canonical sorted rows (the form `spark::Spark::changes` is compared in).
pub async fn our_changes(
    path: &std::path::Path,
    start: u64,
    end: Option<u64>,
) -> Result<Vec<String>, delta_core::Error> {
    use delta_core::ChangeBound;
    let table = delta_core::Table::open(
        path.to_str().expect("UTF-8"),
        &std::collections::HashMap::new(),
    )?;
    let scan = table
        .changes(ChangeBound::Version(start), end.map(ChangeBound::Version))
        .await?;
    let batches = scan.collect().await?;
    Ok(sorted_rows(batches.iter().flat_map(|b| {
        (0..b.num_rows()).map(move |r| pipeline::output::row_to_json(b, r).expect("row_to_json"))
    })))
}

/// `batch` with top-level columns renamed (`(from, to)`) and dropped (`to` empty).
pub fn reshaped(batch: &RecordBatch, changes: &[(&str, &str)]) -> RecordBatch {
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let name = changes
            .iter()
            .find(|(from, _)| from == field.name())
            .map_or(field.name().as_str(), |(_, to)| to);
        if !name.is_empty() {
            fields.push(field.as_ref().clone().with_name(name));
            columns.push(column.clone());
        }
    }
    RecordBatch::try_new(
        std::sync::Arc::new(arrow::datatypes::Schema::new(fields)),
        columns,
    )
    .expect("batch")
}

/// Column mapping in `mode` on a table partitioned by `grp`: a rename of a data column and of
/// the partition column, a dropped column added again by schema merge, DELETE and UPDATE.
///
/// `batch(ids)` makes rows with columns `grp` (the partition column), `id` (Int64), `label`
/// (Utf8) and any others.
pub async fn column_mapping_renames(
    t: &delta_core::Table,
    mode: &str,
    batch: &(dyn Fn(std::ops::Range<i64>) -> RecordBatch + Sync),
) -> delta_core::Result<()> {
    use delta_core::expression::parse;
    let stream = |b: RecordBatch| futures::stream::iter([Ok(b)]).boxed();
    let _ = t
        .write()
        .with_partition_columns(["grp"])
        .with_property("delta.columnMapping.mode", mode)
        .execute(stream(batch(0..30)))
        .await?;
    let _ = t.rename_column("label", "remark").await?;
    let _ = t.rename_column("grp", "site").await?;
    let _ = t.drop_columns(&["remark"]).await?;
    let renames = [("grp", "site")];
    let _ = t
        .write()
        .with_merge_schema(true)
        .execute(stream(reshaped(&batch(30..40), &renames)))
        .await?;
    let _ = t
        .delete(Some(parse("id % 4 = 0").expect("predicate")))
        .await?;
    let _ = t
        .update(
            &[("label".to_owned(), parse("'updated'").expect("expr"))],
            Some(parse("id < 10").expect("predicate")),
        )
        .await?;
    Ok(())
}
