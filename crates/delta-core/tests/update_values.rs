//! UPDATE with value expressions end to end on local disk: arithmetic, CASE, string functions,
//! COALESCE and CAST in `SET`, evaluated against the old row, only for the rows the WHERE clause
//! selects; overflow and type errors name the column and commit nothing.

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on an unexpected error (STYLE.md plans allow-unwrap-in-tests)"
)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Decimal128Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Decimal128Type, Field, Int64Type, Schema};
use delta_core::expression::{parse, parse_value};
use delta_core::{Error, Table};
use futures::StreamExt;

type Row = (i64, Option<i64>, Option<String>, Option<i128>);

fn batch() -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("amount", DataType::Int64, true),
        Field::new("label", DataType::Utf8, true),
        Field::new("price", DataType::Decimal128(10, 2), true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 2, 3, 4, 5, 6])),
            Arc::new(Int64Array::from(vec![
                Some(5),
                Some(20),
                None,
                Some(10),
                Some(100),
                Some(i64::MAX),
            ])),
            Arc::new(StringArray::from(vec![
                Some("a"),
                Some("b"),
                Some("c"),
                None,
                Some("e"),
                Some("f"),
            ])),
            Arc::new(
                Decimal128Array::from(vec![Some(150), None, Some(999), Some(5), Some(1), Some(2)])
                    .with_precision_and_scale(10, 2)
                    .unwrap(),
            ),
        ],
    )
    .unwrap()
}

async fn table() -> (tempfile::TempDir, Table) {
    let dir = tempfile::tempdir().unwrap();
    let table = Table::open(dir.path().join("t").to_str().unwrap(), &HashMap::new()).unwrap();
    let report = table
        .write()
        .execute(futures::stream::iter([Ok(batch())]).boxed())
        .await
        .unwrap();
    assert_eq!(report.version, Some(0));
    (dir, table)
}

async fn rows(table: &Table) -> Vec<Row> {
    let snapshot = table.snapshot().await.unwrap();
    let batches = snapshot
        .scan()
        .with_columns(["id", "amount", "label", "price"])
        .build()
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut out: Vec<Row> = Vec::new();
    for b in &batches {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let amounts = b.column(1).as_primitive::<Int64Type>();
        let labels = b.column(2).as_string::<i32>();
        let prices = b.column(3).as_primitive::<Decimal128Type>();
        for i in 0..b.num_rows() {
            out.push((
                ids.value(i),
                amounts.is_valid(i).then(|| amounts.value(i)),
                labels.is_valid(i).then(|| labels.value(i).to_owned()),
                prices.is_valid(i).then(|| prices.value(i)),
            ));
        }
    }
    out.sort();
    out
}

fn row(id: i64, amount: Option<i64>, label: Option<&str>, price: Option<i128>) -> Row {
    (id, amount, label.map(str::to_owned), price)
}

fn invalid_message(result: delta_core::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::InvalidArgument { message }) => message,
        other => panic!("expected an invalid argument, got {other:?}"),
    }
}

#[tokio::test]
async fn update_sets_computed_values_from_the_old_row() {
    let (_dir, table) = table().await;
    let report = table
        .update(
            &[
                ("amount".into(), parse_value("amount * 2 + 1").unwrap()),
                (
                    "label".into(),
                    parse_value("CASE WHEN amount > 10 THEN 'big' ELSE label END").unwrap(),
                ),
            ],
            Some(parse("id < 5").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(report.rows_affected, 4);
    assert_eq!(report.version, Some(1));
    // Both SET values see the old `amount`; row 6 (i64::MAX) is not selected, so its
    // overflowing `amount * 2` is never computed.
    assert_eq!(
        rows(&table).await,
        vec![
            row(1, Some(11), Some("a"), Some(150)),
            row(2, Some(41), Some("big"), None),
            row(3, None, Some("c"), Some(999)),
            row(4, Some(21), None, Some(5)),
            row(5, Some(100), Some("e"), Some(1)),
            row(6, Some(i64::MAX), Some("f"), Some(2)),
        ]
    );
}

#[tokio::test]
async fn update_with_functions_casts_and_store_assignment() {
    let (_dir, table) = table().await;
    let report = table
        .update(
            &[
                (
                    "label".into(),
                    parse_value("UPPER(label) || '-' || CAST(id AS STRING)").unwrap(),
                ),
                // DECIMAL(10,2) * DECIMAL(2,1) is DECIMAL(13,3), stored rounding half up.
                (
                    "price".into(),
                    parse_value("COALESCE(price, 0) * 1.5").unwrap(),
                ),
                ("amount".into(), parse_value("NULL").unwrap()),
            ],
            Some(parse("label IS NOT NULL AND id <= 3").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(report.rows_affected, 3);
    let report = table
        .update(
            &[
                ("label".into(), parse_value("5").unwrap()),
                ("amount".into(), parse_value("amount / 3").unwrap()),
            ],
            Some(parse("id = 5").unwrap()),
        )
        .await
        .unwrap();
    assert_eq!(report.rows_affected, 1);
    assert_eq!(
        rows(&table).await,
        vec![
            row(1, None, Some("A-1"), Some(225)),
            row(2, None, Some("B-2"), Some(0)),
            row(3, None, Some("C-3"), Some(1499)),
            row(4, Some(10), None, Some(5)),
            // 100 / 3 is the DOUBLE 33.33…, stored into BIGINT by truncation.
            row(5, Some(33), Some("5"), Some(1)),
            row(6, Some(i64::MAX), Some("f"), Some(2)),
        ]
    );
}

#[tokio::test]
async fn update_errors_name_the_column_and_commit_nothing() {
    let (_dir, table) = table().await;
    let overflow = table
        .update(
            &[("amount".into(), parse_value("amount * 2").unwrap())],
            Some(parse("id = 6").unwrap()),
        )
        .await;
    let message = invalid_message(overflow);
    assert!(message.contains("SET `amount`"), "{message}");
    assert!(message.contains("overflow"), "{message}");
    assert!(!message.contains("9223372036854775807"), "{message}");
    for (column, value, needle) in [
        ("amount", "'abc'", "not a valid"),
        ("amount", "label", "cannot be stored"),
        ("label", "amount + label", "needs numbers"),
        ("price", "99999999999", "does not fit"),
        ("amount", "nope + 1", "unknown column `nope`"),
        ("amount", "LENGTH(label)", "function `LENGTH`"),
    ] {
        let expr = match parse_value(value) {
            Ok(expr) => expr,
            Err(error) => {
                let message = invalid_message(Err::<(), _>(error));
                assert!(message.contains(needle), "{value}: {message}");
                continue;
            }
        };
        let message = invalid_message(table.update(&[(column.into(), expr)], None).await);
        assert!(
            message.contains(&format!("SET `{column}`")),
            "{value}: {message}"
        );
        assert!(message.contains(needle), "{value}: {message}");
        assert!(!message.contains("abc"), "{value}: {message}");
    }
    assert_eq!(table.snapshot().await.unwrap().version(), 0);
}
