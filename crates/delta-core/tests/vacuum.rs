//! VACUUM deletes only files no version inside the retention window can read.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions: a panic is how a test fails"
)]

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema};
use delta_core::Table;
use delta_core::clock::ManualClock;
use delta_core::expression::parse;
use futures::StreamExt;

const DAY_MS: i64 = 24 * 3600 * 1000;

fn batch(ids: &[i64]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![Field::new("id", DataType::Int64, true)]));
    RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(ids.to_vec()))]).unwrap()
}

async fn count(table: &Table) -> usize {
    let s = table.snapshot().await.unwrap();
    s.scan()
        .build()
        .unwrap()
        .collect()
        .await
        .unwrap()
        .iter()
        .map(RecordBatch::num_rows)
        .sum()
}

#[tokio::test]
async fn vacuum_keeps_the_window_and_deletes_what_only_old_versions_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t");
    let now = chrono::Utc::now().timestamp_millis();
    let clock = Arc::new(ManualClock::new(now, 1, 7));
    let table = Table::open(path.to_str().unwrap(), &HashMap::new())
        .unwrap()
        .with_clock(clock.clone());
    for i in 0..3 {
        let _ = table
            .write()
            .execute(futures::stream::iter(vec![Ok(batch(&[i]))]).boxed())
            .await
            .unwrap();
    }
    let _ = table.delete(Some(parse("id = 0").unwrap())).await.unwrap();
    std::fs::write(path.join("stray.parquet"), b"not referenced").unwrap();
    // Inside the window: nothing goes.
    let report = table.vacuum().with_dry_run(true).run().await.unwrap();
    assert!(report.files.is_empty(), "{:?}", report.files);
    // A shorter retention than the table's is refused unless forced.
    let err = table
        .vacuum()
        .with_retention(Duration::from_secs(3600))
        .run()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("force"), "{err}");
    // Eight days later: the removed file and the stray file are old enough.
    clock.advance(8 * DAY_MS);
    let report = table.vacuum().with_dry_run(true).run().await.unwrap();
    assert_eq!(report.files.len(), 2, "{:?}", report.files);
    assert!(report.files.iter().any(|f| f == "stray.parquet"));
    let version = table.snapshot().await.unwrap().version();
    let report = table.vacuum().run().await.unwrap();
    assert_eq!(report.files.len(), 2);
    assert!(!path.join("stray.parquet").exists());
    assert_eq!(count(&table).await, 2);
    let history = table.history(Some(2)).await.unwrap();
    let ops: Vec<_> = history
        .iter()
        .map(|h| {
            h.commit_info
                .as_ref()
                .unwrap()
                .operation()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ops, vec!["VACUUM END", "VACUUM START"]);
    assert_eq!(history[0].version, version + 2);
    // The _delta_log is untouched and old versions still load (their data is gone).
    assert!(table.snapshot_at(0).await.is_ok());
}
