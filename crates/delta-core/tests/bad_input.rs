//! Bad input never panics and never returns data: each case is a clear error that names
//! the file, version, action or feature at fault.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions: a panic is how a test fails"
)]

use std::sync::Arc;

use delta_core::action::{Action, Add, Metadata, Protocol, format_commit};
use delta_core::{Error, Table};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};

const SCHEMA: &str =
    r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}}]}"#;

fn base(protocol: Protocol) -> Vec<Action> {
    vec![
        Action::Protocol(protocol),
        Action::Metadata(Metadata {
            id: "bad-input".to_owned(),
            schema_string: SCHEMA.to_owned(),
            ..Metadata::default()
        }),
    ]
}

fn plain() -> Protocol {
    Protocol {
        min_reader_version: 1,
        min_writer_version: 2,
        ..Protocol::default()
    }
}

fn add(path: &str) -> Action {
    Action::Add(Add {
        path: path.to_owned(),
        size: 100,
        modification_time: 1,
        data_change: true,
        ..Add::default()
    })
}

async fn table_with(files: &[(&str, Vec<u8>)]) -> Table {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    for (name, bytes) in files {
        store
            .put(
                &Path::from(format!("t/_delta_log/{name}")),
                bytes.clone().into(),
            )
            .await
            .unwrap();
    }
    Table::with_store(store, url::Url::parse("memory:///t/").unwrap()).unwrap()
}

fn commit(v: u64) -> String {
    format!("{v:020}.json")
}

#[tokio::test]
async fn truncated_commit_line_names_file_and_line() {
    let mut second = format_commit(&[add("a.parquet")]);
    second.extend_from_slice(br#"{"add":{"path":"b.parquet","size":1"#);
    let table = table_with(&[
        (&commit(0), format_commit(&base(plain()))),
        (&commit(1), second),
    ])
    .await;
    let err = table.snapshot().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Corrupt { .. }), "{msg}");
    assert!(
        msg.contains("00000000000000000001.json") && msg.contains("line 2"),
        "{msg}"
    );
}

#[tokio::test]
async fn missing_version_is_named() {
    let table = table_with(&[
        (&commit(0), format_commit(&base(plain()))),
        (&commit(1), format_commit(&[add("a")])),
        (&commit(3), format_commit(&[add("b")])),
    ])
    .await;
    let err = table.snapshot().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Corrupt { .. }), "{msg}");
    assert!(msg.contains("commit 2 is missing"), "{msg}");
}

#[tokio::test]
async fn corrupt_checkpoint_is_named() {
    let table = table_with(&[
        (&commit(0), format_commit(&base(plain()))),
        (&commit(1), format_commit(&[add("a")])),
        (
            "00000000000000000001.checkpoint.parquet",
            b"PAR1 this is not parquet".to_vec(),
        ),
        ("_last_checkpoint", br#"{"version":1,"size":3}"#.to_vec()),
    ])
    .await;
    let err = table.snapshot().await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("00000000000000000001.checkpoint.parquet"),
        "{msg}"
    );
}

#[tokio::test]
async fn path_escaping_the_root_is_refused_at_scan() {
    let mut actions = base(plain());
    actions.push(add("../../etc/passwd"));
    let table = table_with(&[(&commit(0), format_commit(&actions))]).await;
    let snapshot = table.snapshot().await.unwrap();
    let scan = snapshot.scan().build().unwrap();
    let err = scan.collect().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Corrupt { .. }), "{msg}");
    assert!(msg.contains("escapes the table root"), "{msg}");
}

#[tokio::test]
async fn unknown_reader_feature_is_named() {
    let protocol = Protocol {
        min_reader_version: 3,
        min_writer_version: 7,
        reader_features: Some(vec![
            "deletionVectors".to_owned(),
            "fancyNewThing".to_owned(),
        ]),
        writer_features: Some(vec![
            "deletionVectors".to_owned(),
            "fancyNewThing".to_owned(),
        ]),
    };
    let table = table_with(&[(&commit(0), format_commit(&base(protocol)))]).await;
    let err = table.snapshot().await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Unsupported { .. }), "{msg}");
    assert!(msg.contains("fancyNewThing"), "{msg}");
}

#[tokio::test]
async fn no_log_is_not_a_table_and_cleaned_history_is_not_found() {
    let table = table_with(&[]).await;
    assert!(matches!(
        table.snapshot().await,
        Err(Error::NotATable { .. })
    ));
    let table = table_with(&[
        (&commit(0), format_commit(&base(plain()))),
        (&commit(1), format_commit(&[add("a")])),
    ])
    .await;
    let err = table.snapshot_at(5).await.unwrap_err();
    assert!(matches!(err, Error::VersionNotFound { .. }), "{err}");
}

#[tokio::test]
async fn invalid_schema_string_is_corrupt_not_a_panic() {
    let actions = vec![
        Action::Protocol(plain()),
        Action::Metadata(Metadata {
            id: "x".to_owned(),
            schema_string: "{\"type\":\"struct\",\"fields\":[{\"name\":".to_owned(),
            ..Metadata::default()
        }),
    ];
    let table = table_with(&[(&commit(0), format_commit(&actions))]).await;
    let err = table.snapshot().await.unwrap_err();
    assert!(err.to_string().contains("schemaString"), "{err}");
}
