//! Column mapping written by the engine: tables created in `name` and `id` mode, `name` mode
//! turned on for an existing table, RENAME COLUMN and DROP COLUMNS as metadata-only commits,
//! columns added afterwards, and every operation (DELETE, UPDATE, MERGE, OPTIMIZE, deletion
//! vectors, change data feed, checkpoints) on such tables. Spark reads these tables in the
//! Spark suite; this file keeps the same properties without Spark.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions: a panic is how a test fails"
)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Schema};
use arrow::util::display::array_value_to_string;
use delta_core::action::Action;
use delta_core::expression::parse;
use delta_core::schema::{ColumnMappingMode, StructType};
use delta_core::{ChangeBound, Error, Table};
use futures::StreamExt;

fn stream(
    batches: Vec<RecordBatch>,
) -> futures::stream::BoxStream<'static, delta_core::Result<RecordBatch>> {
    futures::stream::iter(batches.into_iter().map(Ok)).boxed()
}

/// Rows `ids` with columns id, site, note and addr{city, zip}.
fn batch(ids: std::ops::Range<i64>) -> RecordBatch {
    let addr_fields = Fields::from(vec![
        Field::new("city", DataType::Utf8, true),
        Field::new("zip", DataType::Utf8, true),
    ]);
    let addr = StructArray::new(
        addr_fields.clone(),
        vec![
            Arc::new(StringArray::from_iter_values(
                ids.clone().map(|i| format!("city{}", i % 3)),
            )) as ArrayRef,
            Arc::new(StringArray::from_iter_values(
                ids.clone().map(|i| format!("{:05}", i * 7)),
            )),
        ],
        None,
    );
    RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("site", DataType::Utf8, true),
            Field::new("note", DataType::Utf8, true),
            Field::new("addr", DataType::Struct(addr_fields), true),
        ])),
        vec![
            Arc::new(Int64Array::from_iter_values(ids.clone())),
            Arc::new(StringArray::from_iter_values(
                ids.clone()
                    .map(|i| ["a b", "x%y", "z"][(i % 3) as usize].to_owned()),
            )),
            Arc::new(StringArray::from_iter_values(
                ids.map(|i| format!("note{i}")),
            )),
            Arc::new(addr),
        ],
    )
    .unwrap()
}

/// Every row of `version` (latest when `None`), each as `name=value` cells in schema order,
/// sorted.
async fn rows(table: &Table, version: Option<u64>) -> Vec<String> {
    let snapshot = match version {
        Some(v) => table.snapshot_at(v).await.unwrap(),
        None => table.snapshot().await.unwrap(),
    };
    let batches = snapshot.scan().build().unwrap().collect().await.unwrap();
    let mut out = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            let cells: Vec<String> = b
                .schema()
                .fields()
                .iter()
                .zip(b.columns())
                .map(|(f, c)| format!("{}={}", f.name(), array_value_to_string(c, i).unwrap()))
                .collect();
            out.push(cells.join(" "));
        }
    }
    out.sort();
    out
}

fn local_table() -> (tempfile::TempDir, Table) {
    let dir = tempfile::tempdir().unwrap();
    let table = Table::open(dir.path().join("t").to_str().unwrap(), &HashMap::new()).unwrap();
    (dir, table)
}

/// Every `(id, physical name)` of the schema, nested fields included.
fn mapping(schema: &StructType) -> Vec<(i64, String, String)> {
    fn walk(fields: &[delta_core::schema::StructField], out: &mut Vec<(i64, String, String)>) {
        for f in fields {
            out.push((
                f.metadata["delta.columnMapping.id"].as_i64().unwrap(),
                f.metadata["delta.columnMapping.physicalName"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
                f.name.clone(),
            ));
            if let delta_core::schema::DataType::Struct(s) = &f.data_type {
                walk(&s.fields, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(&schema.fields, &mut out);
    out
}

/// The column names of the first data file's parquet schema, and its partition value keys.
async fn file_columns(table: &Table) -> (Vec<String>, Vec<String>) {
    let snapshot = table.snapshot().await.unwrap();
    let add = snapshot.files()[0].clone();
    let decoded = percent_encoding::percent_decode_str(&add.path)
        .decode_utf8()
        .unwrap()
        .into_owned();
    let path = table.url().to_file_path().unwrap().join(decoded);
    let file = std::fs::File::open(path).unwrap();
    let reader = parquet::file::reader::SerializedFileReader::new(file).unwrap();
    let schema = parquet::file::reader::FileReader::metadata(&reader)
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    let mut keys: Vec<String> = add.partition_values.keys().cloned().collect();
    keys.sort();
    (schema, keys)
}

async fn commit_info(table: &Table, version: u64) -> serde_json::Map<String, serde_json::Value> {
    table
        .commit_actions(version)
        .await
        .unwrap()
        .into_iter()
        .find_map(|a| match a {
            Action::CommitInfo(info) => Some(info.0),
            _ => None,
        })
        .unwrap()
}

async fn mapped_table_lifecycle(mode: &str) {
    let (_dir, table) = local_table();
    // v0: create, partitioned by site.
    let _ = table
        .write()
        .with_partition_columns(["site"])
        .with_property("delta.columnMapping.mode", mode)
        .execute(stream(vec![batch(0..30)]))
        .await
        .unwrap();
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(
        snapshot.column_mapping(),
        ColumnMappingMode::parse(mode).unwrap()
    );
    let protocol = snapshot.protocol();
    assert!(
        protocol
            .reader_features
            .as_ref()
            .unwrap()
            .contains(&"columnMapping".to_owned())
    );
    assert!(
        protocol
            .writer_features
            .as_ref()
            .unwrap()
            .contains(&"columnMapping".to_owned())
    );
    let mapped = mapping(snapshot.schema());
    let ids: Vec<i64> = mapped.iter().map(|m| m.0).collect();
    assert_eq!(
        ids,
        vec![1, 2, 3, 4, 5, 6],
        "ids in schema order, nested too"
    );
    assert!(mapped.iter().all(|m| m.1.starts_with("col-")), "{mapped:?}");
    assert_eq!(
        snapshot.property("delta.columnMapping.maxColumnId"),
        Some("6")
    );
    // Files use physical names, for columns and partition values alike.
    let (file_cols, partition_keys) = file_columns(&table).await;
    let physical = |name: &str| mapped.iter().find(|m| m.2 == name).unwrap().1.clone();
    assert_eq!(partition_keys, vec![physical("site")]);
    assert!(file_cols.contains(&physical("id")), "{file_cols:?}");
    assert!(!file_cols.iter().any(|c| c == "id" || c == "note"));
    let v0 = rows(&table, None).await;
    assert_eq!(v0.len(), 30);

    // v1: rename a data column, v2: the partition column, v3: a nested field.
    let _ = table.rename_column("id", "patient_id").await.unwrap();
    let _ = table.rename_column("site", "clinic").await.unwrap();
    let _ = table.rename_column("addr.city", "town").await.unwrap();
    let info = commit_info(&table, 3).await;
    assert_eq!(info["operation"], "RENAME COLUMN");
    assert_eq!(info["operationParameters"]["oldColumnPath"], "addr.city");
    assert_eq!(info["operationParameters"]["newColumnPath"], "addr.town");
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(snapshot.partition_columns(), ["clinic"]);
    let renamed = rows(&table, None).await;
    let expected: Vec<String> = v0
        .iter()
        .map(|r| {
            r.replace("id=", "patient_id=")
                .replace("site=", "clinic=")
                .replace("city:", "town:")
        })
        .collect();
    let mut expected_sorted = expected.clone();
    expected_sorted.sort();
    assert_eq!(renamed, expected_sorted);
    // Ids and physical names never change with a rename.
    let after: Vec<(i64, String)> = mapping(snapshot.schema())
        .into_iter()
        .map(|m| (m.0, m.1))
        .collect();
    let before: Vec<(i64, String)> = mapped.iter().map(|m| (m.0, m.1.clone())).collect();
    assert_eq!(after, before);

    // v4: drop a column; v5: add it again through schema merge, with new rows.
    let _ = table.drop_columns(&["note"]).await.unwrap();
    assert_eq!(commit_info(&table, 4).await["operation"], "DROP COLUMNS");
    assert!(rows(&table, None).await.iter().all(|r| !r.contains("note")));
    let again = {
        let b = batch(100..110);
        let names = ["patient_id", "clinic", "note", "addr"];
        let addr_type = b.column(3).data_type().clone();
        let renamed_addr = match addr_type {
            DataType::Struct(fields) => DataType::Struct(Fields::from(vec![
                Field::new("town", fields[0].data_type().clone(), true),
                fields[1].as_ref().clone(),
            ])),
            _ => unreachable!(),
        };
        let schema = Schema::new(
            names
                .iter()
                .zip(b.schema().fields())
                .enumerate()
                .map(|(i, (n, f))| {
                    if i == 3 {
                        Field::new(*n, renamed_addr.clone(), true)
                    } else {
                        Field::new(*n, f.data_type().clone(), true)
                    }
                })
                .collect::<Vec<_>>(),
        );
        let addr = b.column(3).as_any().downcast_ref::<StructArray>().unwrap();
        let addr = StructArray::new(
            match &renamed_addr {
                DataType::Struct(f) => f.clone(),
                _ => unreachable!(),
            },
            addr.columns().to_vec(),
            None,
        );
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                b.column(0).clone(),
                b.column(1).clone(),
                b.column(2).clone(),
                Arc::new(addr),
            ],
        )
        .unwrap()
    };
    let _ = table
        .write()
        .with_merge_schema(true)
        .execute(stream(vec![again]))
        .await
        .unwrap();
    let snapshot = table.snapshot().await.unwrap();
    let note = snapshot.schema().field("note").unwrap();
    assert_eq!(
        note.metadata["delta.columnMapping.id"], 7,
        "a new id, never reused"
    );
    assert_ne!(
        note.metadata["delta.columnMapping.physicalName"]
            .as_str()
            .unwrap(),
        physical("note"),
        "a new physical name: the dropped values stay dropped"
    );
    assert_eq!(
        snapshot.property("delta.columnMapping.maxColumnId"),
        Some("7")
    );
    let v5 = rows(&table, None).await;
    assert_eq!(v5.len(), 40);
    assert_eq!(v5.iter().filter(|r| r.contains("note=note")).count(), 10);

    // Copy-on-write DELETE and UPDATE, MERGE with a new column, OPTIMIZE: all write
    // physical names, and the renamed partition column keeps working.
    let _ = table
        .delete(Some(parse("patient_id < 5").unwrap()))
        .await
        .unwrap();
    let _ = table
        .update(
            &[("note".to_owned(), parse("'updated'").unwrap())],
            Some(parse("clinic = 'z'").unwrap()),
        )
        .await
        .unwrap();
    let source = RecordBatch::try_new(
        Arc::new(Schema::new(vec![
            Field::new("patient_id", DataType::Int64, true),
            Field::new("clinic", DataType::Utf8, true),
            Field::new("score", DataType::Int64, true),
        ])),
        vec![
            Arc::new(Int64Array::from(vec![7, 200])),
            Arc::new(StringArray::from(vec!["a b", "z"])),
            Arc::new(Int64Array::from(vec![70, 2000])),
        ],
    )
    .unwrap();
    let _ = table
        .merge(
            stream(vec![source]),
            parse("t.patient_id = s.patient_id").unwrap(),
        )
        .with_merge_schema(true)
        .when_matched_update_all(None)
        .when_not_matched_insert_all(None)
        .execute()
        .await
        .unwrap();
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(
        snapshot.schema().field("score").unwrap().metadata["delta.columnMapping.id"],
        8
    );
    let before_optimize = rows(&table, None).await;
    assert_eq!(before_optimize.len(), 36);
    assert!(
        before_optimize
            .iter()
            .any(|r| r.starts_with("patient_id=7 ") && r.ends_with("score=70"))
    );
    let _ = table.optimize().run().await.unwrap();
    assert_eq!(rows(&table, None).await, before_optimize);
    let (file_cols, _) = file_columns(&table).await;
    assert!(
        file_cols.iter().all(|c| c.starts_with("col-")),
        "{file_cols:?}"
    );

    // Checkpoint, then every version reads as it did.
    let snapshot = table.snapshot().await.unwrap();
    table.checkpoint(&snapshot).await.unwrap();
    assert_eq!(rows(&table, Some(0)).await, v0);
    assert_eq!(rows(&table, Some(3)).await, expected_sorted);
    assert_eq!(rows(&table, Some(5)).await, v5);
    assert_eq!(rows(&table, None).await, before_optimize);
}

#[tokio::test]
async fn name_mode_table_lifecycle() {
    mapped_table_lifecycle("name").await;
}

#[tokio::test]
async fn id_mode_table_lifecycle() {
    mapped_table_lifecycle("id").await;
}

#[tokio::test]
async fn name_mode_turned_on_for_an_existing_table() {
    let (_dir, table) = local_table();
    let _ = table
        .write()
        .with_partition_columns(["site"])
        .execute(stream(vec![batch(0..12)]))
        .await
        .unwrap();
    let v0 = rows(&table, None).await;
    let err = table.rename_column("id", "pid").await.unwrap_err();
    assert!(
        err.to_string().contains("delta.columnMapping.mode = name"),
        "{err}"
    );
    let err = table
        .set_properties(&[("delta.columnMapping.mode".into(), "id".into())])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("from none to id"), "{err}");

    let _ = table
        .set_properties(&[("delta.columnMapping.mode".into(), "name".into())])
        .await
        .unwrap();
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(snapshot.column_mapping(), ColumnMappingMode::Name);
    assert!(
        delta_core::table_features::reader_features(snapshot.protocol())
            .contains(&"columnMapping".to_owned())
    );
    // Physical names are the old logical names: the old files are read as they are.
    for (_, physical, logical) in mapping(snapshot.schema()) {
        assert_eq!(physical, logical);
    }
    assert_eq!(rows(&table, None).await, v0);

    let _ = table.rename_column("note", "remark").await.unwrap();
    let _ = table.drop_columns(&["addr.zip"]).await.unwrap();
    let _ = table
        .write()
        .execute(stream(vec![{
            let b = batch(50..53);
            let addr = b.column(3).as_any().downcast_ref::<StructArray>().unwrap();
            let city = addr.column(0).clone();
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![
                    Field::new("id", DataType::Int64, true),
                    Field::new("site", DataType::Utf8, true),
                    Field::new("remark", DataType::Utf8, true),
                    Field::new(
                        "addr",
                        DataType::Struct(Fields::from(vec![Field::new(
                            "city",
                            DataType::Utf8,
                            true,
                        )])),
                        true,
                    ),
                ])),
                vec![
                    b.column(0).clone(),
                    b.column(1).clone(),
                    b.column(2).clone(),
                    Arc::new(StructArray::new(
                        Fields::from(vec![Field::new("city", DataType::Utf8, true)]),
                        vec![city],
                        None,
                    )),
                ],
            )
            .unwrap()
        }]))
        .await
        .unwrap();
    let latest = rows(&table, None).await;
    assert_eq!(latest.len(), 15);
    assert!(
        latest
            .iter()
            .all(|r| r.contains("remark=note") && !r.contains("zip"))
    );
    assert_eq!(
        rows(&table, Some(0)).await,
        v0,
        "time travel before the upgrade"
    );
    // name -> none and name -> id are refused.
    for mode in ["none", "id"] {
        let err = table
            .set_properties(&[("delta.columnMapping.mode".into(), mode.into())])
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not supported"), "{err}");
    }
}

#[tokio::test]
async fn schema_changes_that_would_break_the_table_are_refused() {
    let (_dir, table) = local_table();
    let _ = table
        .write()
        .with_partition_columns(["site"])
        .with_property("delta.columnMapping.mode", "name")
        .with_property("delta.constraints.positive", "id >= 0")
        .execute(stream(vec![batch(0..6)]))
        .await
        .unwrap();
    let version = table.snapshot().await.unwrap().version();
    let cases: Vec<(delta_core::Result<delta_core::Committed>, &str)> = vec![
        (table.rename_column("id", "pid").await, "positive"),
        (table.drop_columns(&["id"]).await, "positive"),
        (table.drop_columns(&["site"]).await, "partition column"),
        (table.rename_column("note", "SITE").await, "already exists"),
        (
            table.rename_column("missing", "x").await,
            "not in the table schema",
        ),
        (
            table.drop_columns(&["addr.city", "addr.zip"]).await,
            "last field",
        ),
        (table.rename_column("site.x", "y").await, "not a struct"),
        (table.drop_columns(&[]).await, "no column"),
    ];
    for (result, expected) in cases {
        match result {
            Err(Error::InvalidArgument { message }) => {
                assert!(message.contains(expected), "{message} lacks {expected}");
            }
            other => panic!("expected an error with {expected}, got {other:?}"),
        }
    }
    assert_eq!(
        table.snapshot().await.unwrap().version(),
        version,
        "nothing committed"
    );
    let err = table
        .set_properties(&[("delta.columnMapping.maxColumnId".into(), "1".into())])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("maintained by the engine"),
        "{err}"
    );
}

#[tokio::test]
async fn id_mode_with_deletion_vectors_and_change_data_feed() {
    let (_dir, table) = local_table();
    let _ = table
        .write()
        .with_property("delta.columnMapping.mode", "id")
        .with_property("delta.enableDeletionVectors", "true")
        .with_property("delta.enableChangeDataFeed", "true")
        .execute(stream(vec![batch(0..20)]))
        .await
        .unwrap();
    let _ = table.rename_column("note", "remark").await.unwrap();
    let deleted = table
        .delete(Some(parse("id % 4 = 0").unwrap()))
        .await
        .unwrap();
    let updated = table
        .update(
            &[("remark".to_owned(), parse("'changed'").unwrap())],
            Some(parse("id = 1").unwrap()),
        )
        .await
        .unwrap();
    let latest = rows(&table, None).await;
    assert_eq!(latest.len(), 15);
    assert!(
        latest
            .iter()
            .any(|r| r.starts_with("id=1 ") && r.contains("remark=changed"))
    );
    let changes = table
        .changes(
            ChangeBound::Version(deleted.version.unwrap()),
            Some(ChangeBound::Version(updated.version.unwrap())),
        )
        .await
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut kinds: HashMap<String, HashSet<i64>> = HashMap::new();
    for b in &changes {
        let ids = b
            .column_by_name("id")
            .unwrap()
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        let kind = b
            .column_by_name("_change_type")
            .unwrap()
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        for i in 0..b.num_rows() {
            kinds
                .entry(kind.value(i).to_owned())
                .or_default()
                .insert(ids.value(i));
        }
    }
    assert_eq!(kinds["delete"], HashSet::from([0, 4, 8, 12, 16]));
    assert_eq!(kinds["update_preimage"], HashSet::from([1]));
    assert_eq!(kinds["update_postimage"], HashSet::from([1]));
}
