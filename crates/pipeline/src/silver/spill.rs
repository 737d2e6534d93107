//! Range bucketing of conformed rows by key, so that deduplication needs one bucket in
//! memory at a time, not a whole entity.
//!
//! Bucket `i` holds the keys between boundaries `i - 1` and `i` (rows without a key go to
//! the first); every version of a key lands in the same bucket, so "latest record per key"
//! over a bucket equals it over all rows, and buckets come out in key order, so their
//! deduplicated rows, each sorted by key, are sorted by key as a whole (which keeps ids
//! compressible and per-file key ranges narrow for MERGE pruning). [`boundaries`] picks the
//! boundaries from a sample of the keys. With one bucket the rows stay in memory; with more,
//! each bucket is an Arrow IPC file in a temporary directory (deleted when the [`Buckets`]
//! is dropped), written as rows arrive and read back one bucket at a time.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;

use anyhow::{Context, Result};
use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;

/// Rows of one bucket: about this many fit comfortably in memory three times over (the
/// bucket, its deduplicated rows and their derived columns).
pub const BUCKET_ROWS: u64 = 512 * 1024;

/// Rows split by key into buckets.
pub struct Buckets {
    schema: SchemaRef,
    key: &'static str,
    /// Upper bounds (exclusive) of all buckets but the last, ascending.
    boundaries: Vec<String>,
    store: Store,
}

/// `buckets - 1` boundaries that split `sample` (keys, any order) into `buckets` ranges of
/// about equal counts. Fewer when the sample has fewer distinct keys.
#[must_use]
pub fn boundaries(mut sample: Vec<String>, buckets: usize) -> Vec<String> {
    sample.sort_unstable();
    sample.dedup();
    if buckets <= 1 || sample.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<String> = (1..buckets)
        .map(|i| sample[i * sample.len() / buckets].clone())
        .collect();
    out.dedup();
    out
}

enum Store {
    Memory(Vec<RecordBatch>),
    Disk {
        dir: tempfile::TempDir,
        writers: Vec<FileWriter<BufWriter<File>>>,
    },
}

impl std::fmt::Debug for Buckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buckets")
            .field("key", &self.key)
            .field("buckets", &self.count())
            .finish_non_exhaustive()
    }
}

impl Buckets {
    /// Buckets of rows of `schema`, split by the string column `key` at `boundaries`
    /// (ascending; one bucket more than boundaries).
    ///
    /// # Errors
    /// The temporary directory or its files cannot be created.
    pub fn new(schema: SchemaRef, key: &'static str, boundaries: Vec<String>) -> Result<Self> {
        let count = boundaries.len() + 1;
        let store = if count <= 1 {
            Store::Memory(Vec::new())
        } else {
            let dir = tempfile::Builder::new()
                .prefix("medilake-silver-")
                .tempdir()
                .context("cannot create a temporary directory for silver buckets")?;
            let writers = (0..count)
                .map(|i| {
                    let path = bucket_path(dir.path(), i);
                    let file = File::create(&path)
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    Ok(FileWriter::try_new_buffered(file, &schema)?)
                })
                .collect::<Result<_>>()?;
            Store::Disk { dir, writers }
        };
        Ok(Self {
            schema,
            key,
            boundaries,
            store,
        })
    }

    /// The number of buckets.
    #[must_use]
    pub fn count(&self) -> usize {
        match &self.store {
            Store::Memory(_) => 1,
            Store::Disk { writers, .. } => writers.len(),
        }
    }

    /// Route the rows of `batch` to their buckets.
    ///
    /// # Errors
    /// `batch` has no string key column, or a bucket file cannot be written.
    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let writers = match &mut self.store {
            Store::Memory(batches) => {
                batches.push(batch);
                return Ok(());
            }
            Store::Disk { writers, .. } => writers,
        };
        let key = batch
            .column_by_name(self.key)
            .with_context(|| format!("no key column {}", self.key))?
            .as_string_opt::<i32>()
            .with_context(|| format!("key column {} is not a string", self.key))?;
        let mut rows: Vec<Vec<u32>> = vec![Vec::new(); writers.len()];
        for i in 0..batch.num_rows() {
            // Rows without a key all go to bucket 0 (they are never merged with each other).
            let bucket = if key.is_valid(i) {
                let key = key.value(i);
                self.boundaries.partition_point(|b| b.as_str() <= key)
            } else {
                0
            };
            rows[bucket].push(u32::try_from(i).context("a batch over 4 billion rows")?);
        }
        for (writer, rows) in writers.iter_mut().zip(rows) {
            if !rows.is_empty() {
                writer.write(&take_record_batch(&batch, &UInt32Array::from(rows))?)?;
            }
        }
        Ok(())
    }

    /// Finish writing and hand the buckets out one at a time.
    ///
    /// # Errors
    /// A bucket file cannot be finished.
    pub fn finish(self) -> Result<BucketIter> {
        let Self { schema, store, .. } = self;
        let source = match store {
            Store::Memory(batches) => Source::Memory(Some(batches)),
            Store::Disk { dir, writers } => {
                let count = writers.len();
                for mut writer in writers {
                    writer.finish()?;
                }
                Source::Disk {
                    dir,
                    next: 0,
                    count,
                }
            }
        };
        Ok(BucketIter { schema, source })
    }
}

fn bucket_path(dir: &std::path::Path, i: usize) -> PathBuf {
    dir.join(format!("bucket-{i:05}.arrow"))
}

/// The buckets, in order; each item is one bucket's rows.
pub struct BucketIter {
    schema: SchemaRef,
    source: Source,
}

enum Source {
    Memory(Option<Vec<RecordBatch>>),
    Disk {
        dir: tempfile::TempDir,
        next: usize,
        count: usize,
    },
}

impl BucketIter {
    /// The schema of every bucket's rows.
    #[must_use]
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

impl Iterator for BucketIter {
    type Item = Result<Vec<RecordBatch>>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.source {
            Source::Memory(batches) => batches.take().map(Ok),
            Source::Disk { dir, next, count } => {
                if *next >= *count {
                    return None;
                }
                let path = bucket_path(dir.path(), *next);
                *next += 1;
                let read = || -> Result<Vec<RecordBatch>> {
                    let file = File::open(&path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    let batches = FileReader::try_new(BufReader::new(file), None)?
                        .collect::<std::result::Result<Vec<_>, _>>()?;
                    // The bucket is in memory now; its file is not needed again.
                    std::fs::remove_file(&path)
                        .with_context(|| format!("cannot remove {}", path.display()))?;
                    Ok(batches)
                };
                Some(read())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(keys: &[Option<&str>], values: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Utf8, true),
            Field::new("v", DataType::Int64, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(keys.to_vec())),
                Arc::new(Int64Array::from_iter_values(values)),
            ],
        )
        .unwrap()
    }

    /// key -> (bucket, values), over every bucket.
    fn spread(bounds: &[&str], batches: &[RecordBatch]) -> BTreeMap<Option<String>, Vec<usize>> {
        let bounds = bounds.iter().map(|b| (*b).to_owned()).collect();
        let mut b = Buckets::new(batches[0].schema(), "id", bounds).unwrap();
        for batch in batches {
            b.push(batch.clone()).unwrap();
        }
        let mut seen: BTreeMap<Option<String>, Vec<usize>> = BTreeMap::new();
        for (n, bucket) in b.finish().unwrap().enumerate() {
            for batch in bucket.unwrap() {
                let ids = batch.column(0).as_string::<i32>();
                for i in 0..batch.num_rows() {
                    let id = ids.is_valid(i).then(|| ids.value(i).to_owned());
                    seen.entry(id).or_default().push(n);
                }
            }
        }
        seen
    }

    #[test]
    fn every_row_lands_once_and_every_key_in_one_bucket() {
        let first = batch(&[Some("a"), Some("b"), None, Some("c"), Some("a")], 0..5);
        let second = batch(&[Some("b"), Some("d"), None, Some("a")], 5..9);
        for bounds in [&[][..], &["b"], &["a", "c"], &["b", "bb", "d", "z"]] {
            let seen = spread(bounds, &[first.clone(), second.clone()]);
            let rows: usize = seen.values().map(Vec::len).sum();
            assert_eq!(rows, 9, "boundaries {bounds:?}");
            for (key, places) in &seen {
                assert!(
                    places.iter().all(|p| *p == places[0]),
                    "{key:?} split over buckets {places:?}"
                );
            }
            // Buckets come out in key order.
            let mut last = 0;
            for (key, places) in seen.iter().filter(|(k, _)| k.is_some()) {
                assert!(
                    places[0] >= last,
                    "{key:?} in bucket {} after {last}",
                    places[0]
                );
                last = places[0];
            }
            assert_eq!(seen[&Some("a".to_owned())].len(), 3);
            assert_eq!(seen[&None], vec![0, 0]);
        }
    }

    #[test]
    fn boundaries_split_a_sample_evenly() {
        let sample: Vec<String> = (0..1000).rev().map(|i| format!("k{i:04}")).collect();
        assert_eq!(boundaries(sample.clone(), 4), ["k0250", "k0500", "k0750"]);
        assert!(boundaries(sample, 1).is_empty());
        assert_eq!(boundaries(vec!["x".to_owned(); 50], 8), ["x"]);
        assert!(boundaries(Vec::new(), 8).is_empty());
    }

    #[test]
    fn bucket_files_are_removed_with_the_buckets() {
        let bounds = vec!["b".to_owned(), "c".to_owned(), "d".to_owned()];
        let b = Buckets::new(batch(&[Some("a")], 0..1).schema(), "id", bounds).unwrap();
        let Store::Disk { dir, .. } = &b.store else {
            panic!("four buckets live on disk");
        };
        let path = dir.path().to_owned();
        assert!(path.exists());
        drop(b);
        assert!(!path.exists());
    }
}
