//! Scans over hand-built tables in memory: deletion vectors of every storage type (the
//! Spark fixtures only have `u`), checksum errors, pruning plans, and time travel by
//! in-commit timestamp.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions: a panic is how a test fails"
)]

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use delta_core::action::{Action, Add, CommitInfo, Metadata, Protocol, format_commit};
use delta_core::deletion_vector::{
    DeletionVectorDescriptor, encode_bitmap, encode_dv_file_entry, z85_encode,
};
use delta_core::expression::parse;
use delta_core::{Error, Table};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use roaring::RoaringTreemap;

const SCHEMA: &str = r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}},{"name":"name","type":"string","nullable":true,"metadata":{}}]}"#;

fn parquet_bytes(ids: std::ops::Range<i64>) -> Vec<u8> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("name", DataType::Utf8, true),
    ]));
    let names: Vec<String> = ids.clone().map(|i| format!("n{i}")).collect();
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(Int64Array::from_iter_values(ids)),
            Arc::new(StringArray::from(names)),
        ],
    )
    .unwrap();
    let mut out = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut out, schema, None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    out
}

struct Fixture {
    store: Arc<dyn ObjectStore>,
    table: Table,
}

impl Fixture {
    fn new() -> Self {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let table =
            Table::with_store(store.clone(), url::Url::parse("memory:///t/").unwrap()).unwrap();
        Self { store, table }
    }

    async fn put(&self, name: &str, bytes: Vec<u8>) -> i64 {
        let size = i64::try_from(bytes.len()).unwrap();
        self.store
            .put(&Path::from(format!("t/{name}")), bytes.into())
            .await
            .unwrap();
        size
    }

    async fn commit(&self, version: u64, actions: &[Action]) {
        self.put(
            &format!("_delta_log/{version:020}.json"),
            format_commit(actions),
        )
        .await;
    }

    async fn file(
        &self,
        name: &str,
        ids: std::ops::Range<i64>,
        dv: Option<DeletionVectorDescriptor>,
    ) -> Action {
        let n = ids.end - ids.start;
        let (min, max) = (ids.start, ids.end - 1);
        let size = self.put(name, parquet_bytes(ids)).await;
        Action::Add(Add {
            path: name.to_owned(),
            size,
            modification_time: 1,
            data_change: true,
            stats: Some(format!(
                r#"{{"numRecords":{n},"minValues":{{"id":{min},"name":"n"}},"maxValues":{{"id":{max},"name":"n9"}},"nullCount":{{"id":0,"name":0}}}}"#
            )),
            deletion_vector: dv,
            ..Add::default()
        })
    }
}

fn header(dv: bool) -> Vec<Action> {
    let protocol = if dv {
        Protocol {
            min_reader_version: 3,
            min_writer_version: 7,
            reader_features: Some(vec!["deletionVectors".to_owned()]),
            writer_features: Some(vec!["deletionVectors".to_owned()]),
        }
    } else {
        Protocol {
            min_reader_version: 1,
            min_writer_version: 2,
            ..Protocol::default()
        }
    };
    vec![
        Action::Protocol(protocol),
        Action::Metadata(Metadata {
            id: "scan-test".to_owned(),
            schema_string: SCHEMA.to_owned(),
            ..Metadata::default()
        }),
    ]
}

async fn ids(table: &Table, predicate: Option<&str>) -> Result<Vec<i64>, Error> {
    let snapshot = table.snapshot().await?;
    let mut scan = snapshot.scan();
    if let Some(p) = predicate {
        scan = scan.with_predicate(parse(p)?);
    }
    let batches = scan.build()?.collect().await?;
    let mut out: Vec<i64> = batches
        .iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect();
    out.sort_unstable();
    Ok(out)
}

fn bitmap(rows: &[u64]) -> RoaringTreemap {
    rows.iter().copied().collect()
}

#[tokio::test]
async fn inline_deletion_vector_hides_rows() {
    let f = Fixture::new();
    let bytes = encode_bitmap(&bitmap(&[1, 3]));
    let dv = DeletionVectorDescriptor {
        storage_type: "i".to_owned(),
        path_or_inline_dv: z85_encode(&bytes),
        offset: None,
        size_in_bytes: i32::try_from(bytes.len()).unwrap(),
        cardinality: 2,
    };
    let mut actions = header(true);
    actions.push(f.file("a.parquet", 0..6, Some(dv)).await);
    f.commit(0, &actions).await;
    assert_eq!(ids(&f.table, None).await.unwrap(), vec![0, 2, 4, 5]);
}

#[tokio::test]
async fn absolute_deletion_vector_file_hides_rows_and_bad_crc_is_corrupt() {
    let f = Fixture::new();
    let entry = encode_dv_file_entry(&encode_bitmap(&bitmap(&[0, 4]))).unwrap();
    let mut file = vec![1u8];
    file.extend_from_slice(&entry);
    f.put("dv/deletes.bin", file.clone()).await;
    let dv = |path: &str| DeletionVectorDescriptor {
        storage_type: "p".to_owned(),
        path_or_inline_dv: path.to_owned(),
        offset: Some(1),
        size_in_bytes: i32::try_from(entry.len() - 8).unwrap(),
        cardinality: 2,
    };
    let mut actions = header(true);
    actions.push(
        f.file("a.parquet", 10..15, Some(dv("memory:///t/dv/deletes.bin")))
            .await,
    );
    f.commit(0, &actions).await;
    assert_eq!(ids(&f.table, None).await.unwrap(), vec![11, 12, 13]);

    // Flip one byte of the bitmap: the CRC no longer matches.
    let mut bad = file;
    let last = bad.len() - 6;
    bad[last] ^= 0xff;
    f.put("dv/deletes.bin", bad).await;
    let err = ids(&f.table, None).await.unwrap_err();
    assert!(err.to_string().contains("deletes.bin"), "{err}");
}

#[tokio::test]
async fn pruning_keeps_only_files_that_can_match_and_filters_rows() {
    let f = Fixture::new();
    let mut actions = header(false);
    actions.push(f.file("low.parquet", 0..10, None).await);
    actions.push(f.file("high.parquet", 100..110, None).await);
    f.commit(0, &actions).await;
    let snapshot = f.table.snapshot().await.unwrap();
    let scan = snapshot
        .scan()
        .with_predicate(parse("id >= 105").unwrap())
        .build()
        .unwrap();
    let kept: Vec<_> = scan.kept_files().map(|p| p.add.path.clone()).collect();
    assert_eq!(kept, vec!["high.parquet"]);
    assert_eq!(
        ids(&f.table, Some("id >= 105")).await.unwrap(),
        vec![105, 106, 107, 108, 109]
    );
    assert_eq!(
        ids(&f.table, Some("id IN (3, 101) OR id IS NULL"))
            .await
            .unwrap(),
        vec![3, 101]
    );
    let limited = snapshot
        .scan()
        .with_limit(3)
        .build()
        .unwrap()
        .collect()
        .await
        .unwrap();
    assert_eq!(limited.iter().map(RecordBatch::num_rows).sum::<usize>(), 3);
    let projected = snapshot.scan().with_columns(["name"]).build().unwrap();
    assert_eq!(projected.schema().fields().len(), 1);
    let batches = projected.collect().await.unwrap();
    assert_eq!(batches[0].column(0).len(), batches[0].num_rows());
}

#[tokio::test]
async fn timestamp_time_travel_uses_in_commit_timestamps() {
    let f = Fixture::new();
    let info = |ts: i64| {
        let mut map = serde_json::Map::new();
        map.insert("inCommitTimestamp".to_owned(), ts.into());
        map.insert("timestamp".to_owned(), ts.into());
        Action::CommitInfo(CommitInfo(map))
    };
    let mut first = vec![info(1_000)];
    first.extend(header(false));
    if let Action::Metadata(m) = &mut first[2] {
        m.configuration.insert(
            "delta.enableInCommitTimestamps".to_owned(),
            Some("true".to_owned()),
        );
    }
    first.push(f.file("a.parquet", 0..1, None).await);
    f.commit(0, &first).await;
    let second = vec![info(2_000), f.file("b.parquet", 1..2, None).await];
    f.commit(1, &second).await;
    let third = vec![info(3_000), f.file("c.parquet", 2..3, None).await];
    f.commit(2, &third).await;
    assert_eq!(f.table.version_at_timestamp(2_500).await.unwrap(), 1);
    assert_eq!(f.table.version_at_timestamp(3_000).await.unwrap(), 2);
    assert_eq!(f.table.version_at_timestamp(1_000).await.unwrap(), 0);
    assert!(matches!(
        f.table.version_at_timestamp(999).await,
        Err(Error::VersionNotFound { .. })
    ));
    let history = f.table.history(None).await.unwrap();
    assert_eq!(
        history.iter().map(|h| h.timestamp_ms).collect::<Vec<_>>(),
        vec![3_000, 2_000, 1_000]
    );
}
