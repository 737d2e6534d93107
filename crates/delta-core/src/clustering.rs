//! Clustering quality, measured: how many files a point lookup must read.
//!
//! For each column, rows are sampled evenly from the table and, for each sampled value `v`,
//! the scan planner counts the files that `col = v` cannot skip. The same is done for the
//! conjunction over all columns with the values of one sampled row. The overlap depth of a
//! column is the largest number of files whose `[min, max]` ranges share a point. These are
//! the numbers OPTIMIZE is meant to bring down.

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit};
use futures::TryStreamExt;

use crate::expression::{CompareOp, Expression, Literal};
use crate::snapshot::Snapshot;
use crate::{Error, Result};

/// Point-probe statistics of one column (or of the conjunction of all columns).
#[derive(Clone, Debug, PartialEq)]
pub struct ProbeStats {
    /// The column(s) probed.
    pub columns: Vec<String>,
    /// How many probes were run.
    pub probes: usize,
    /// Average number of files a probe reads.
    pub average_files: f64,
    /// Worst probe.
    pub max_files: usize,
    /// Largest number of files whose min/max ranges overlap at one point (single columns).
    pub overlap_depth: Option<usize>,
}

/// Clustering quality of a snapshot for a set of columns.
#[derive(Clone, Debug, PartialEq)]
pub struct ClusteringReport {
    /// Live files.
    pub total_files: usize,
    /// One entry per column, then the conjunction (when there are two or more columns).
    pub probes: Vec<ProbeStats>,
}

impl Snapshot {
    /// Measure how well the table is clustered for point lookups on `columns`, with up to
    /// `samples` sampled rows.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for unknown columns; read errors.
    pub async fn clustering_report(
        &self,
        columns: &[String],
        samples: usize,
    ) -> Result<ClusteringReport> {
        for c in columns {
            if self.schema().field(c).is_none() {
                return Err(Error::invalid(format!("unknown column `{c}`")));
            }
        }
        let total_files = self.files().len();
        let total_rows: u64 = self
            .scan()
            .build()?
            .planned_files()
            .iter()
            .filter_map(|f| f.num_records)
            .sum();
        let stride = (total_rows / samples.max(1) as u64).max(1);
        let mut sampled: Vec<Vec<Option<Literal>>> = Vec::new();
        let mut stream = self
            .scan()
            .with_columns(columns.iter().cloned())
            .build()?
            .execute();
        let mut seen = 0u64;
        while let Some(batch) = stream.try_next().await? {
            for row in 0..batch.num_rows() {
                if seen.is_multiple_of(stride) && sampled.len() < samples {
                    sampled.push(literals(&batch, row));
                }
                seen += 1;
            }
        }
        let mut probes = Vec::new();
        for (d, column) in columns.iter().enumerate() {
            let predicates: Vec<Expression> = sampled
                .iter()
                .filter_map(|row| row[d].clone().map(|v| point(column, v)))
                .collect();
            let mut stats = self.probe(vec![column.clone()], &predicates)?;
            stats.overlap_depth = self.overlap_depth(column)?;
            probes.push(stats);
        }
        if columns.len() > 1 {
            let predicates: Vec<Expression> = sampled
                .iter()
                .filter_map(|row| {
                    let parts: Option<Vec<Expression>> = columns
                        .iter()
                        .zip(row)
                        .map(|(c, v)| v.clone().map(|v| point(c, v)))
                        .collect();
                    parts.map(Expression::And)
                })
                .collect();
            probes.push(self.probe(columns.to_vec(), &predicates)?);
        }
        Ok(ClusteringReport {
            total_files,
            probes,
        })
    }

    fn probe(&self, columns: Vec<String>, predicates: &[Expression]) -> Result<ProbeStats> {
        let mut total = 0usize;
        let mut max_files = 0usize;
        for predicate in predicates {
            let kept = self
                .scan()
                .with_predicate(predicate.clone())
                .build()?
                .kept_files()
                .count();
            total += kept;
            max_files = max_files.max(kept);
        }
        #[allow(clippy::cast_precision_loss, reason = "an average of small counts")]
        let average_files = if predicates.is_empty() {
            0.0
        } else {
            total as f64 / predicates.len() as f64
        };
        Ok(ProbeStats {
            columns,
            probes: predicates.len(),
            average_files,
            max_files,
            overlap_depth: None,
        })
    }

    /// The deepest overlap of the files' `[min, max]` ranges of `column`.
    fn overlap_depth(&self, column: &str) -> Result<Option<usize>> {
        let scan = self.scan().build()?;
        let mut events: Vec<(arrow::array::ArrayRef, i32)> = Vec::new();
        for file in scan.planned_files() {
            let Some(stats) = &file.stats else {
                return Ok(None);
            };
            let (Some(min), Some(max)) =
                (stats.min_values.get(column), stats.max_values.get(column))
            else {
                return Ok(None);
            };
            events.push((min.clone(), 1));
            events.push((max.clone(), -1));
        }
        if events.is_empty() {
            return Ok(Some(0));
        }
        let refs: Vec<&dyn Array> = events.iter().map(|e| e.0.as_ref()).collect();
        let all = arrow::compute::concat(&refs)?;
        let converter = arrow::row::RowConverter::new(vec![arrow::row::SortField::new(
            all.data_type().clone(),
        )])?;
        let rows = converter.convert_columns(&[all])?;
        let mut order: Vec<usize> = (0..events.len()).collect();
        // Opens before closes at equal keys: touching ranges count as overlapping.
        order.sort_by(|a, b| {
            rows.row(*a)
                .cmp(&rows.row(*b))
                .then(events[*b].1.cmp(&events[*a].1))
        });
        let (mut depth, mut best) = (0i32, 0i32);
        for i in order {
            depth += events[i].1;
            best = best.max(depth);
        }
        Ok(Some(usize::try_from(best).unwrap_or(0)))
    }
}

fn point(column: &str, value: Literal) -> Expression {
    Expression::Compare {
        op: CompareOp::Eq,
        left: Box::new(Expression::Column(vec![column.to_owned()])),
        right: Box::new(Expression::Literal(value)),
    }
}

/// The literals of one row (`None` for NULLs and types a point probe cannot express).
fn literals(batch: &RecordBatch, row: usize) -> Vec<Option<Literal>> {
    batch
        .columns()
        .iter()
        .map(|c| literal(c.as_ref(), row))
        .collect()
}

fn literal(array: &dyn Array, row: usize) -> Option<Literal> {
    use arrow::datatypes as t;
    if array.is_null(row) {
        return None;
    }
    Some(match array.data_type() {
        DataType::Boolean => Literal::Boolean(array.as_boolean().value(row)),
        DataType::Int8 => {
            Literal::Number(array.as_primitive::<t::Int8Type>().value(row).to_string())
        }
        DataType::Int16 => {
            Literal::Number(array.as_primitive::<t::Int16Type>().value(row).to_string())
        }
        DataType::Int32 => {
            Literal::Number(array.as_primitive::<t::Int32Type>().value(row).to_string())
        }
        DataType::Int64 => {
            Literal::Number(array.as_primitive::<t::Int64Type>().value(row).to_string())
        }
        DataType::Float32 => {
            let v = array.as_primitive::<t::Float32Type>().value(row);
            if !v.is_finite() {
                return None;
            }
            Literal::Number(v.to_string())
        }
        DataType::Float64 => {
            let v = array.as_primitive::<t::Float64Type>().value(row);
            if !v.is_finite() {
                return None;
            }
            Literal::Number(v.to_string())
        }
        DataType::Decimal128(_, scale) => {
            let v = array.as_primitive::<t::Decimal128Type>().value(row);
            Literal::Number(<t::Decimal128Type as t::DecimalType>::format_decimal(
                v, 38, *scale,
            ))
        }
        DataType::Utf8 => Literal::String(array.as_string::<i32>().value(row).to_owned()),
        DataType::Date32 => Literal::Date(array.as_primitive::<t::Date32Type>().value(row)),
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            let v = array
                .as_primitive::<t::TimestampMicrosecondType>()
                .value(row);
            if tz.is_some() {
                Literal::Timestamp(v)
            } else {
                Literal::TimestampNtz(v)
            }
        }
        _ => return None,
    })
}
