//! From bronze text to typed silver rows, under declared data quality rules.
//!
//! Each entity is an [`EntitySpec`]: its typed columns and its named rules, each with an
//! action (Delta Live Tables' vocabulary): `Expect` counts failing rows and keeps them,
//! `Drop` counts and drops them, `Quarantine` sends them to `silver.quarantine` with the names
//! of every rule they fail, their source file and line and the raw record, and `Fail` stops
//! the run. [`conform`] applies a spec to one bronze batch; nothing is lost: every input row
//! is a silver row, a quarantined row or a dropped row, and the counts say which.

use std::sync::Arc;

use anyhow::{Context, Result, bail};
use arrow::array::{
    Array, ArrayRef, BooleanBuilder, Date32Builder, Float64Builder, Int64Builder, RecordBatch,
    StringArray, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::NaiveDate;

use super::parse::{self, CodeSystem, Parsed};

/// The type of a silver column and how its bronze text is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Trimmed text (empty ⇒ null).
    Text,
    /// Trimmed, lower-case text (categorical values such as `encounter_type`).
    Lower,
    /// Trimmed, upper-case text (`sex`, `state`).
    Upper,
    /// A strict `YYYY-MM-DD` date.
    Date,
    /// A strict `YYYY-MM-DDTHH:MM:SS` timestamp (no zone).
    Timestamp,
    /// A finite number.
    Number,
    /// A boolean flag.
    Flag,
    /// A normalised clinical code.
    Code(CodeSystem),
}

/// A silver column, read from the bronze column of the same name.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    /// The name (bronze and silver).
    pub name: &'static str,
    /// Its type.
    pub kind: Kind,
}

/// What a rule checks on one row.
#[derive(Clone, Copy, Debug)]
pub enum Check {
    /// The column has a value (valid or not: [`Check::Parses`] judges the value).
    NotNull(&'static str),
    /// The column is missing or a value of its kind (a present value that does not parse fails).
    Parses(&'static str),
    /// The column is missing or one of the values (after its kind's normalisation).
    OneOf(&'static str, &'static [&'static str]),
    /// `later >= earlier` when both parse.
    NotBefore {
        /// The column that must not be earlier.
        later: &'static str,
        /// The column it is compared with.
        earlier: &'static str,
    },
}

/// What happens to a row that fails a rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Keep it; count it.
    Expect,
    /// Drop it; count it.
    Drop,
    /// Send it to the quarantine table.
    Quarantine,
    /// Stop the run.
    Fail,
}

/// A named data quality rule.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    /// The name in counts and in the quarantine table (`id_not_null`, `valid_date`, ...).
    pub name: &'static str,
    /// What it checks.
    pub check: Check,
    /// What happens to a failing row.
    pub action: Action,
}

/// An entity's silver table: columns, key and rules.
#[derive(Clone, Copy, Debug)]
pub struct EntitySpec {
    /// The entity (`encounters`), also its bronze table's name.
    pub entity: &'static str,
    /// The silver table (`encounters_clean`; `patients_scd` for patients).
    pub table: &'static str,
    /// The key column (deduplication keeps the latest record per key).
    pub key: &'static str,
    /// The column that orders versions of a key (`updated_at`), before ingestion order.
    pub version_column: Option<&'static str>,
    /// The table's partitioning: (date column, derived `YYYY-MM` partition column). Months,
    /// not days: at the bundled and generated scales a day holds too few rows per table for
    /// files worth reading (a few KB), a month holds tens of thousands.
    pub partition_by: Option<(&'static str, &'static str)>,
    /// The typed columns.
    pub columns: &'static [Column],
    /// The rules, in the order they are reported.
    pub rules: &'static [Rule],
}

/// Lineage columns every silver row keeps from bronze.
pub const SOURCE_FILE: &str = "_source_file";
/// The 1-based line of the source file.
pub const SOURCE_LINE: &str = "_source_line";
/// The bronze batch that ingested the row.
pub const BATCH_ID: &str = "_batch_id";

/// The outcome of conforming one bronze batch.
#[derive(Debug)]
pub struct Conformed {
    /// The rows that pass (typed columns, then `_source_file`, `_source_line`, `_batch_id`).
    pub rows: RecordBatch,
    /// The quarantined rows ([`quarantine_schema`]).
    pub quarantine: RecordBatch,
    /// Rows dropped by `Drop` rules.
    pub dropped: u64,
    /// Failing rows per rule (in the spec's rule order), whatever the action.
    pub failures: Vec<(&'static str, u64)>,
}

/// The schema of `silver.quarantine`.
pub fn quarantine_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("table", DataType::Utf8, false),
        Field::new("rules", DataType::Utf8, false),
        Field::new(SOURCE_FILE, DataType::Utf8, true),
        Field::new(SOURCE_LINE, DataType::Int64, true),
        Field::new(BATCH_ID, DataType::Utf8, true),
        Field::new("raw_record", DataType::Utf8, false),
    ]))
}

/// The silver schema of `spec` (typed columns, then lineage).
pub fn silver_schema(spec: &EntitySpec) -> SchemaRef {
    let mut fields: Vec<Field> = spec
        .columns
        .iter()
        .map(|c| Field::new(c.name, arrow_type(c.kind), true))
        .collect();
    fields.push(Field::new(SOURCE_FILE, DataType::Utf8, true));
    fields.push(Field::new(SOURCE_LINE, DataType::Int64, true));
    fields.push(Field::new(BATCH_ID, DataType::Utf8, true));
    Arc::new(Schema::new(fields))
}

fn arrow_type(kind: Kind) -> DataType {
    match kind {
        Kind::Text | Kind::Lower | Kind::Upper | Kind::Code(_) => DataType::Utf8,
        Kind::Date => DataType::Date32,
        Kind::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        Kind::Number => DataType::Float64,
        Kind::Flag => DataType::Boolean,
    }
}

/// A bronze column as text (bronze keeps values as text; other types are cast).
fn text_column(batch: &RecordBatch, name: &str) -> Result<Option<StringArray>> {
    let Some(column) = batch.column_by_name(name) else {
        return Ok(None);
    };
    let text = cast(column, &DataType::Utf8)
        .with_context(|| format!("bronze column {name} cannot be read as text"))?;
    Ok(text.as_any().downcast_ref::<StringArray>().cloned())
}

/// One parsed cell, as the value its column stores.
#[derive(Clone, Debug, PartialEq)]
enum Cell {
    Null,
    Text(String),
    Date(NaiveDate),
    Micros(i64),
    Number(f64),
    Flag(bool),
}

fn parse_cell(kind: Kind, raw: Option<&str>) -> Parsed<Cell> {
    let map = |p: Parsed<Cell>| p;
    match kind {
        Kind::Text => parse::text(raw).map_or(Parsed::Missing, |t| Parsed::Valid(Cell::Text(t))),
        Kind::Lower => parse::text(raw).map_or(Parsed::Missing, |t| {
            Parsed::Valid(Cell::Text(t.to_ascii_lowercase()))
        }),
        Kind::Upper => parse::text(raw).map_or(Parsed::Missing, |t| {
            Parsed::Valid(Cell::Text(t.to_ascii_uppercase()))
        }),
        Kind::Date => map(match parse::date(raw) {
            Parsed::Valid(d) => Parsed::Valid(Cell::Date(d)),
            Parsed::Missing => Parsed::Missing,
            Parsed::Invalid if raw.is_some_and(|r| r.trim().is_empty()) => Parsed::Missing,
            Parsed::Invalid => Parsed::Invalid,
        }),
        Kind::Timestamp => match parse::timestamp(raw) {
            Parsed::Valid(t) => Parsed::Valid(Cell::Micros(t.and_utc().timestamp_micros())),
            Parsed::Missing => Parsed::Missing,
            Parsed::Invalid if raw.is_some_and(|r| r.trim().is_empty()) => Parsed::Missing,
            Parsed::Invalid => Parsed::Invalid,
        },
        Kind::Number => match parse::number(raw) {
            Parsed::Valid(v) => Parsed::Valid(Cell::Number(v)),
            Parsed::Missing => Parsed::Missing,
            Parsed::Invalid if raw.is_some_and(|r| r.trim().is_empty()) => Parsed::Missing,
            Parsed::Invalid => Parsed::Invalid,
        },
        Kind::Flag => match parse::flag(raw) {
            Parsed::Valid(v) => Parsed::Valid(Cell::Flag(v)),
            Parsed::Missing => Parsed::Missing,
            Parsed::Invalid if raw.is_some_and(|r| r.trim().is_empty()) => Parsed::Missing,
            Parsed::Invalid => Parsed::Invalid,
        },
        Kind::Code(system) => match parse::code(raw, system) {
            Parsed::Valid(c) => Parsed::Valid(Cell::Text(c)),
            Parsed::Missing => Parsed::Missing,
            Parsed::Invalid => Parsed::Invalid,
        },
    }
}

/// Conform one bronze batch to `spec`.
///
/// # Errors
/// A `Fail` rule that a row fails (naming the rule, the table, the source file and line —
/// never the value); a bronze column that cannot be read as text.
pub fn conform(spec: &EntitySpec, bronze: &RecordBatch) -> Result<Conformed> {
    let rows = bronze.num_rows();
    let raw: Vec<Option<StringArray>> = spec
        .columns
        .iter()
        .map(|c| text_column(bronze, c.name))
        .collect::<Result<_>>()?;
    let source_file = text_column(bronze, SOURCE_FILE)?;
    let batch_id = text_column(bronze, BATCH_ID)?;
    let source_line = text_column(bronze, SOURCE_LINE)?;
    let index_of = |name: &str| spec.columns.iter().position(|c| c.name == name);
    let mut parsed: Vec<Vec<Parsed<Cell>>> = Vec::with_capacity(spec.columns.len());
    for (column, raw) in spec.columns.iter().zip(&raw) {
        parsed.push(
            (0..rows)
                .map(|i| {
                    let value = raw.as_ref().and_then(|a| a.is_valid(i).then(|| a.value(i)));
                    parse_cell(column.kind, value)
                })
                .collect(),
        );
    }
    let mut failures: Vec<(&'static str, u64)> = spec.rules.iter().map(|r| (r.name, 0)).collect();
    // Per row: the strongest action of the rules it fails, and their names.
    let mut keep = Vec::with_capacity(rows);
    let mut quarantined: Vec<(usize, Vec<&'static str>)> = Vec::new();
    let mut dropped = 0u64;
    #[allow(
        clippy::needless_range_loop,
        reason = "a row indexes every parsed column and the lineage arrays"
    )]
    for row in 0..rows {
        let mut failed: Vec<&'static str> = Vec::new();
        let mut strongest = None;
        for (r, rule) in spec.rules.iter().enumerate() {
            let ok = match rule.check {
                Check::NotNull(c) => {
                    index_of(c).is_some_and(|j| !matches!(parsed[j][row], Parsed::Missing))
                }
                Check::Parses(c) => index_of(c).is_none_or(|j| !parsed[j][row].is_invalid()),
                Check::OneOf(c, values) => index_of(c).is_none_or(|j| match &parsed[j][row] {
                    Parsed::Valid(Cell::Text(t)) => values.contains(&t.as_str()),
                    Parsed::Missing => true,
                    _ => false,
                }),
                Check::NotBefore { later, earlier } => match (index_of(later), index_of(earlier)) {
                    (Some(l), Some(e)) => match (&parsed[l][row], &parsed[e][row]) {
                        (Parsed::Valid(a), Parsed::Valid(b)) => !cell_lt(a, b),
                        _ => true,
                    },
                    _ => true,
                },
            };
            if !ok {
                failures[r].1 += 1;
                failed.push(rule.name);
                strongest = strongest.max(Some(rule.action));
            }
        }
        match strongest {
            Some(Action::Fail) => {
                let file = source_file
                    .as_ref()
                    .and_then(|f| f.is_valid(row).then(|| f.value(row).to_owned()))
                    .unwrap_or_else(|| "(unknown file)".to_owned());
                let line = source_line
                    .as_ref()
                    .and_then(|l| l.is_valid(row).then(|| l.value(row).to_owned()))
                    .unwrap_or_default();
                bail!(
                    "silver.{}: rule {} failed at {file}:{line}; the run stops (the rule's action is fail)",
                    spec.table,
                    failed.join(", ")
                );
            }
            Some(Action::Quarantine) => {
                keep.push(false);
                quarantined.push((row, failed));
            }
            Some(Action::Drop) => {
                keep.push(false);
                dropped += 1;
            }
            Some(Action::Expect) | None => keep.push(true),
        }
    }
    let schema = silver_schema(spec);
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for (column, cells) in spec.columns.iter().zip(&parsed) {
        columns.push(build_column(column.kind, cells, &keep));
    }
    let lineage = |array: &Option<StringArray>| -> ArrayRef {
        let mut b = StringBuilder::new();
        for (i, k) in keep.iter().enumerate() {
            if *k {
                b.append_option(
                    array
                        .as_ref()
                        .and_then(|a| a.is_valid(i).then(|| a.value(i))),
                );
            }
        }
        Arc::new(b.finish())
    };
    columns.push(lineage(&source_file));
    columns.push(line_numbers(source_line.as_ref(), &keep));
    columns.push(lineage(&batch_id));
    let kept = keep.iter().filter(|k| **k).count();
    let rows_out = RecordBatch::try_new_with_options(
        schema,
        columns,
        &arrow::array::RecordBatchOptions::new().with_row_count(Some(kept)),
    )?;
    let quarantine = quarantine_batch(
        spec,
        bronze,
        &quarantined,
        [
            source_file.as_ref(),
            source_line.as_ref(),
            batch_id.as_ref(),
        ],
    )?;
    Ok(Conformed {
        rows: rows_out,
        quarantine,
        dropped,
        failures,
    })
}

fn cell_lt(a: &Cell, b: &Cell) -> bool {
    match (a, b) {
        (Cell::Date(x), Cell::Date(y)) => x < y,
        (Cell::Micros(x), Cell::Micros(y)) => x < y,
        (Cell::Number(x), Cell::Number(y)) => x < y,
        _ => false,
    }
}

fn build_column(kind: Kind, cells: &[Parsed<Cell>], keep: &[bool]) -> ArrayRef {
    let kept = cells
        .iter()
        .zip(keep)
        .filter(|(_, k)| **k)
        .map(|(c, _)| match c {
            Parsed::Valid(cell) => cell.clone(),
            Parsed::Missing | Parsed::Invalid => Cell::Null,
        });
    match kind {
        Kind::Text | Kind::Lower | Kind::Upper | Kind::Code(_) => {
            let mut b = StringBuilder::new();
            for c in kept {
                match c {
                    Cell::Text(t) => b.append_value(t),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Date => {
            let mut b = Date32Builder::new();
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            for c in kept {
                match c {
                    Cell::Date(d) => b.append_option(
                        i32::try_from(d.signed_duration_since(epoch).num_days()).ok(),
                    ),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::new();
            for c in kept {
                match c {
                    Cell::Micros(m) => b.append_value(m),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Number => {
            let mut b = Float64Builder::new();
            for c in kept {
                match c {
                    Cell::Number(v) => b.append_value(v),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
        Kind::Flag => {
            let mut b = BooleanBuilder::new();
            for c in kept {
                match c {
                    Cell::Flag(v) => b.append_value(v),
                    _ => b.append_null(),
                }
            }
            Arc::new(b.finish())
        }
    }
}

/// The source line numbers of the rows where `mask` is true.
fn line_numbers(lines: Option<&StringArray>, mask: &[bool]) -> ArrayRef {
    let mut b = Int64Builder::new();
    for (i, m) in mask.iter().enumerate() {
        if *m {
            b.append_option(
                lines
                    .and_then(|a| a.is_valid(i).then(|| a.value(i)))
                    .and_then(|v| v.parse::<i64>().ok()),
            );
        }
    }
    Arc::new(b.finish())
}

/// The quarantine rows: table, failed rules, lineage (`[file, line, batch]` columns of
/// bronze) and the whole bronze record as JSON.
fn quarantine_batch(
    spec: &EntitySpec,
    bronze: &RecordBatch,
    quarantined: &[(usize, Vec<&'static str>)],
    [file, line, batch]: [Option<&StringArray>; 3],
) -> Result<RecordBatch> {
    let mut table = StringBuilder::new();
    let mut rules = StringBuilder::new();
    let mut files = StringBuilder::new();
    let mut lines = Int64Builder::new();
    let mut batches = StringBuilder::new();
    let mut records = StringBuilder::new();
    let name = format!("silver.{}", spec.table);
    for (row, failed) in quarantined {
        let at = |a: Option<&StringArray>| {
            a.and_then(|a| a.is_valid(*row).then(|| a.value(*row).to_owned()))
        };
        table.append_value(&name);
        rules.append_value(failed.join(","));
        files.append_option(at(file));
        lines.append_option(at(line).and_then(|v| v.parse::<i64>().ok()));
        batches.append_option(at(batch));
        let record = crate::output::row_to_json(bronze, *row)?;
        records.append_value(record.to_string());
    }
    let columns: Vec<ArrayRef> = vec![
        Arc::new(table.finish()),
        Arc::new(rules.finish()),
        Arc::new(files.finish()),
        Arc::new(lines.finish()),
        Arc::new(batches.finish()),
        Arc::new(records.finish()),
    ];
    Ok(RecordBatch::try_new(quarantine_schema(), columns)?)
}
