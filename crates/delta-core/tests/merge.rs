//! MERGE INTO end to end on local disk.
//!
//! - A property test: random small targets (some partitioned, several files), sources (with
//!   duplicate and NULL keys) and clause sets; the merged table equals a naive nested-loop
//!   reference model, the metrics equal the model's counts, and the merge fails exactly when the
//!   model says a target row is matched ambiguously (Spark's rule).
//! - Pruning: files that hold no matching key are neither read nor rewritten (their `add`
//!   entries and bytes stay identical), insert-only merges only add files, metrics are true.
//! - Conflicts: a concurrent commit removing a file the merge read fails it; a concurrent blind
//!   append does not.

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on an unexpected error (STYLE.md plans allow-unwrap-in-tests)"
)]

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use delta_core::expression::{Expression, parse, parse_value};
use delta_core::{
    ChangeBound, Error, MatchedAction, MergeClause, MergeReport, NotMatchedAction,
    NotMatchedBySourceAction, Table,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use proptest::prelude::*;

/// A row of the target table and of the source: `(id, grp, v)`.
type Row = (Option<i64>, Option<String>, Option<i64>);

fn batch(rows: &[Row]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("grp", DataType::Utf8, true),
        Field::new("v", DataType::Int64, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.2).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

fn stream(rows: &[Row]) -> BoxStream<'static, delta_core::Result<RecordBatch>> {
    futures::stream::iter([Ok(batch(rows))]).boxed()
}

async fn read_rows(table: &Table) -> Vec<Row> {
    let snapshot = table.snapshot().await.unwrap();
    let batches = snapshot
        .scan()
        .with_columns(["id", "grp", "v"])
        .build()
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in batches {
        let id = b.column(0).as_primitive::<Int64Type>();
        let grp = b.column(1).as_string::<i32>();
        let v = b.column(2).as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            out.push((
                id.is_valid(i).then(|| id.value(i)),
                grp.is_valid(i).then(|| grp.value(i).to_owned()),
                v.is_valid(i).then(|| v.value(i)),
            ));
        }
    }
    out.sort();
    out
}

fn open(dir: &tempfile::TempDir) -> Table {
    Table::open(dir.path().join("t").to_str().unwrap(), &HashMap::new()).unwrap()
}

async fn create(dir: &tempfile::TempDir, files: &[Vec<Row>], partitioned: bool) -> Table {
    create_with(dir, files, partitioned, Features::default()).await
}

/// Which table features a test table has.
#[derive(Clone, Copy, Debug, Default)]
struct Features {
    deletion_vectors: bool,
    change_feed: bool,
}

async fn create_with(
    dir: &tempfile::TempDir,
    files: &[Vec<Row>],
    partitioned: bool,
    features: Features,
) -> Table {
    let table = open(dir);
    for (i, rows) in files.iter().enumerate() {
        let mut write = table.write();
        if partitioned {
            write = write.with_partition_columns(["grp"]);
        }
        if i == 0 {
            if features.deletion_vectors {
                write = write.with_property("delta.enableDeletionVectors", "true");
            }
            if features.change_feed {
                write = write.with_property("delta.enableChangeDataFeed", "true");
            }
        }
        let _ = write.execute(stream(rows)).await.unwrap();
    }
    table
}

/// The change rows of commit `version`, by `_change_type`, as the change data feed reader
/// gives them (cdc files, or the add/remove fallback of an insert-only merge).
async fn change_rows(table: &Table, version: u64) -> HashMap<String, Vec<Row>> {
    let scan = table
        .changes(
            ChangeBound::Version(version),
            Some(ChangeBound::Version(version)),
        )
        .await
        .unwrap();
    let mut out: HashMap<String, Vec<Row>> = HashMap::new();
    for b in scan.collect().await.unwrap() {
        let id = b.column_by_name("id").unwrap().as_primitive::<Int64Type>();
        let grp = b.column_by_name("grp").unwrap().as_string::<i32>();
        let v = b.column_by_name("v").unwrap().as_primitive::<Int64Type>();
        let kind = b.column_by_name("_change_type").unwrap().as_string::<i32>();
        for i in 0..b.num_rows() {
            out.entry(kind.value(i).to_owned()).or_default().push((
                id.is_valid(i).then(|| id.value(i)),
                grp.is_valid(i).then(|| grp.value(i).to_owned()),
                v.is_valid(i).then(|| v.value(i)),
            ));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

/// SQL three-valued comparisons over `Option<i64>`.
fn gt(a: Option<i64>, b: Option<i64>) -> Option<bool> {
    Some(a? > b?)
}
fn lt(a: Option<i64>, b: Option<i64>) -> Option<bool> {
    Some(a? < b?)
}
fn add(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    Some(a? + b?)
}

/// Conditions over a (target, source) pair; `None` in a row means that side is absent.
#[derive(Clone, Copy, Debug)]
enum Cond {
    SourceVGt(i64),
    TargetVLt(i64),
    SourceVIsNull,
    TargetVLtSourceV,
}

impl Cond {
    fn sql(self) -> String {
        match self {
            Self::SourceVGt(n) => format!("s.v > {n}"),
            Self::TargetVLt(n) => format!("t.v < {n}"),
            Self::SourceVIsNull => "s.v IS NULL".to_owned(),
            Self::TargetVLtSourceV => "t.v < s.v".to_owned(),
        }
    }

    fn eval(self, t: Option<&Row>, s: Option<&Row>) -> bool {
        let tv = t.and_then(|r| r.2);
        let sv = s.and_then(|r| r.2);
        match self {
            Self::SourceVGt(n) => gt(sv, Some(n)),
            Self::TargetVLt(n) => lt(tv, Some(n)),
            Self::SourceVIsNull => Some(s.is_some() && sv.is_none()),
            Self::TargetVLtSourceV => lt(tv, sv),
        }
        .unwrap_or(false)
    }
}

#[derive(Clone, Debug)]
enum Matched {
    SetV,
    SetSum,
    All,
    Delete,
}

#[derive(Clone, Debug)]
enum NotMatched {
    All,
    Doubled,
}

#[derive(Clone, Debug)]
enum BySource {
    Decrement,
    Delete,
}

#[derive(Clone, Debug)]
enum Clause {
    Matched(Option<Cond>, Matched),
    NotMatched(Option<Cond>, NotMatched),
    BySource(Option<Cond>, BySource),
}

impl Clause {
    fn to_merge(&self) -> MergeClause {
        let cond = |c: &Option<Cond>| c.map(|c| parse(&c.sql()).unwrap());
        let set = |col: &str, value: &str| vec![(col.to_owned(), parse_value(value).unwrap())];
        match self {
            Self::Matched(c, a) => MergeClause::Matched {
                condition: cond(c),
                action: match a {
                    Matched::SetV => MatchedAction::Update(set("v", "s.v")),
                    Matched::SetSum => MatchedAction::Update(set("t.v", "t.v + s.v")),
                    Matched::All => MatchedAction::UpdateAll,
                    Matched::Delete => MatchedAction::Delete,
                },
            },
            Self::NotMatched(c, a) => MergeClause::NotMatched {
                condition: cond(c),
                action: match a {
                    NotMatched::All => NotMatchedAction::InsertAll,
                    NotMatched::Doubled => NotMatchedAction::Insert(vec![
                        ("id".to_owned(), parse_value("s.id").unwrap()),
                        ("v".to_owned(), parse_value("s.v * 2").unwrap()),
                        ("grp".to_owned(), parse_value("grp").unwrap()),
                    ]),
                },
            },
            Self::BySource(c, a) => MergeClause::NotMatchedBySource {
                condition: cond(c),
                action: match a {
                    BySource::Decrement => NotMatchedBySourceAction::Update(set("v", "v - 1")),
                    BySource::Delete => NotMatchedBySourceAction::Delete,
                },
            },
        }
    }
}

/// What the model expects: the rows, or the ambiguity error.
#[derive(Debug, PartialEq)]
struct Expected {
    rows: Vec<Row>,
    inserted: u64,
    updated: u64,
    deleted: u64,
}

/// The naive nested-loop MERGE. `residual` is the extra `ON` conjunct `t.v <= s.v + 3`.
fn model(target: &[Row], source: &[Row], residual: bool, clauses: &[Clause]) -> Option<Expected> {
    let on = |t: &Row, s: &Row| {
        let keys = matches!((t.0, s.0), (Some(a), Some(b)) if a == b);
        keys && (!residual || matches!((t.2, add(s.2, Some(3))), (Some(a), Some(b)) if a <= b))
    };
    let matched: Vec<_> = clauses
        .iter()
        .filter_map(|c| match c {
            Clause::Matched(cond, a) => Some((*cond, a.clone())),
            _ => None,
        })
        .collect();
    let not_matched: Vec<_> = clauses
        .iter()
        .filter_map(|c| match c {
            Clause::NotMatched(cond, a) => Some((*cond, a.clone())),
            _ => None,
        })
        .collect();
    let by_source: Vec<_> = clauses
        .iter()
        .filter_map(|c| match c {
            Clause::BySource(cond, a) => Some((*cond, a.clone())),
            _ => None,
        })
        .collect();
    let insert_only = matched.is_empty() && by_source.is_empty();
    let matched_only = not_matched.is_empty() && by_source.is_empty();
    let unconditional_delete_only =
        matched.len() == 1 && matched[0].0.is_none() && matches!(matched[0].1, Matched::Delete);
    let acting = |t: &Row, s: &Row| {
        matched
            .iter()
            .position(|(c, _)| c.is_none_or(|c| c.eval(Some(t), Some(s))))
    };
    let mut out = Vec::new();
    let (mut updated, mut deleted, mut inserted) = (0, 0, 0);
    for t in target {
        let pairs: Vec<&Row> = source.iter().filter(|s| on(t, s)).collect();
        if !insert_only && !unconditional_delete_only {
            let counted = pairs
                .iter()
                .filter(|s| !matched_only || acting(t, s).is_some())
                .count();
            if counted > 1 {
                return None;
            }
        }
        if pairs.is_empty() {
            match by_source
                .iter()
                .find(|(c, _)| c.is_none_or(|c| c.eval(Some(t), None)))
            {
                Some((_, BySource::Delete)) => deleted += 1,
                Some((_, BySource::Decrement)) => {
                    updated += 1;
                    out.push((t.0, t.1.clone(), t.2.map(|v| v - 1)));
                }
                None => out.push(t.clone()),
            }
            continue;
        }
        let action = pairs.iter().find_map(|s| acting(t, s).map(|c| (c, *s)));
        match action {
            None => out.push(t.clone()),
            Some((c, s)) => match matched[c].1 {
                Matched::Delete => deleted += 1,
                Matched::SetV => {
                    updated += 1;
                    out.push((t.0, t.1.clone(), s.2));
                }
                Matched::SetSum => {
                    updated += 1;
                    out.push((t.0, t.1.clone(), add(t.2, s.2)));
                }
                Matched::All => {
                    updated += 1;
                    out.push(s.clone());
                }
            },
        }
    }
    for s in source {
        if target.iter().any(|t| on(t, s)) {
            continue;
        }
        match not_matched
            .iter()
            .find(|(c, _)| c.is_none_or(|c| c.eval(None, Some(s))))
        {
            Some((_, NotMatched::All)) => {
                inserted += 1;
                out.push(s.clone());
            }
            Some((_, NotMatched::Doubled)) => {
                inserted += 1;
                out.push((s.0, s.1.clone(), s.2.map(|v| v * 2)));
            }
            None => {}
        }
    }
    out.sort();
    Some(Expected {
        rows: out,
        inserted,
        updated,
        deleted,
    })
}

// ---------------------------------------------------------------------------------------------
// The property test
// ---------------------------------------------------------------------------------------------

fn row() -> impl Strategy<Value = Row> {
    (
        prop::option::weighted(0.9, 0i64..12),
        prop::option::weighted(0.9, prop::sample::select(vec!["a", "b", "c"])),
        prop::option::weighted(0.85, 0i64..10),
    )
        .prop_map(|(id, grp, v)| (id, grp.map(str::to_owned), v))
}

fn cond() -> impl Strategy<Value = Option<Cond>> {
    prop::option::weighted(
        0.5,
        prop_oneof![
            (0i64..10).prop_map(Cond::SourceVGt),
            (0i64..10).prop_map(Cond::TargetVLt),
            Just(Cond::SourceVIsNull),
            Just(Cond::TargetVLtSourceV),
        ],
    )
}

/// Conditions a clause of this kind may use (NOT MATCHED: source only; BY SOURCE: target only).
fn side_cond(target: bool) -> impl Strategy<Value = Option<Cond>> {
    prop::option::weighted(
        0.5,
        if target {
            (0i64..10).prop_map(Cond::TargetVLt).boxed()
        } else {
            prop_oneof![
                (0i64..10).prop_map(Cond::SourceVGt),
                Just(Cond::SourceVIsNull)
            ]
            .boxed()
        },
    )
}

fn clause() -> impl Strategy<Value = Clause> {
    prop_oneof![
        (
            cond(),
            prop_oneof![
                Just(Matched::SetV),
                Just(Matched::SetSum),
                Just(Matched::All),
                Just(Matched::Delete)
            ]
        )
            .prop_map(|(c, a)| Clause::Matched(c, a)),
        (
            side_cond(false),
            prop_oneof![Just(NotMatched::All), Just(NotMatched::Doubled)]
        )
            .prop_map(|(c, a)| Clause::NotMatched(c, a)),
        (
            side_cond(true),
            prop_oneof![Just(BySource::Decrement), Just(BySource::Delete)]
        )
            .prop_map(|(c, a)| Clause::BySource(c, a)),
    ]
}

async fn check_against_model(
    files: Vec<Vec<Row>>,
    partitioned: bool,
    features: Features,
    source: Vec<Row>,
    residual: bool,
    clauses: Vec<Clause>,
) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let table = create_with(&dir, &files, partitioned, features).await;
    let target: Vec<Row> = files.concat();
    let expected = model(&target, &source, residual, &clauses);
    let on = if residual {
        "t.id = s.id AND t.v <= s.v + 3"
    } else {
        "t.id = s.id"
    };
    let mut merge = table.merge(stream(&source), parse(on).unwrap());
    for c in &clauses {
        merge = merge.with_clause(c.to_merge());
    }
    let before = table.snapshot().await.unwrap().version();
    match (merge.execute().await, expected) {
        (Ok(report), Some(expected)) => {
            let rows = read_rows(&table).await;
            prop_assert_eq!(&rows, &expected.rows);
            prop_assert_eq!(report.rows_inserted, expected.inserted);
            prop_assert_eq!(report.rows_updated, expected.updated);
            prop_assert_eq!(report.rows_deleted, expected.deleted);
            prop_assert_eq!(report.source_rows, source.len() as u64);
            prop_assert_eq!(
                report.rows_written,
                report.rows_inserted + report.rows_updated + report.rows_copied
            );
            let after = table.snapshot().await.unwrap();
            if features.deletion_vectors {
                prop_assert_eq!(report.rows_copied, 0, "deletion vectors copy no row");
            }
            if report.version.is_none() {
                prop_assert_eq!(after.version(), before);
            } else {
                check_commit_metrics(&table, &report).await;
                if features.change_feed {
                    check_change_data(&table, after.version(), &target, &rows).await?;
                }
            }
        }
        (Err(Error::InvalidArgument { message }), None) => {
            prop_assert!(message.contains("more than one source row"), "{}", message);
            prop_assert_eq!(table.snapshot().await.unwrap().version(), before);
        }
        (Ok(_), None) => prop_assert!(false, "the merge must fail: a target row is ambiguous"),
        (Err(e), expected) => prop_assert!(false, "unexpected error {e}; model: {expected:?}"),
    }
    Ok(())
}

/// The change data of `version` turns the rows before it into the rows after it:
/// `before - delete - update_preimage + insert + update_postimage = after` (as multisets).
/// A commit that changed existing rows must have written change data files.
async fn check_change_data(
    table: &Table,
    version: u64,
    before: &[Row],
    after: &[Row],
) -> Result<(), TestCaseError> {
    let actions = table.commit_actions(version).await.unwrap();
    let rewrites = actions
        .iter()
        .any(|a| matches!(a, delta_core::action::Action::Remove(_)));
    let has_cdc = actions
        .iter()
        .any(|a| matches!(a, delta_core::action::Action::Cdc(_)));
    prop_assert!(
        !rewrites || has_cdc,
        "a commit that changed existing rows wrote no change data"
    );
    let changes = change_rows(table, version).await;
    let mut rows: Vec<Row> = before.to_vec();
    for kind in ["delete", "update_preimage"] {
        for row in changes.get(kind).into_iter().flatten() {
            let at = rows.iter().position(|r| r == row);
            prop_assert!(at.is_some(), "a {} row is not in the table before", kind);
            rows.remove(at.unwrap_or_default());
        }
    }
    for kind in ["insert", "update_postimage"] {
        rows.extend(changes.get(kind).into_iter().flatten().cloned());
    }
    rows.sort();
    prop_assert_eq!(&rows, after);
    prop_assert_eq!(
        changes.get("update_preimage").map_or(0, Vec::len),
        changes.get("update_postimage").map_or(0, Vec::len)
    );
    Ok(())
}

async fn check_commit_metrics(table: &Table, report: &MergeReport) {
    let history = table.history(Some(1)).await.unwrap();
    let info = &history[0].commit_info;
    let info = info.as_ref().unwrap();
    assert_eq!(info.operation(), Some("MERGE"));
    let metrics = info.0["operationMetrics"].as_object().unwrap();
    let metric = |k: &str| metrics[k].as_str().unwrap().parse::<u64>().unwrap();
    assert_eq!(metric("numTargetRowsInserted"), report.rows_inserted);
    assert_eq!(metric("numTargetRowsUpdated"), report.rows_updated);
    assert_eq!(metric("numTargetRowsDeleted"), report.rows_deleted);
    assert_eq!(metric("numTargetRowsCopied"), report.rows_copied);
    assert_eq!(metric("numTargetFilesAdded"), report.files_added);
    assert_eq!(metric("numTargetFilesRemoved"), report.files_removed);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn merge_equals_nested_loop_model(
        files in prop::collection::vec(prop::collection::vec(row(), 1..6), 1..4),
        partitioned in any::<bool>(),
        deletion_vectors in any::<bool>(),
        change_feed in any::<bool>(),
        source in prop::collection::vec(row(), 0..8),
        residual in any::<bool>(),
        clauses in prop::collection::vec(clause(), 1..4),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let features = Features { deletion_vectors, change_feed };
        rt.block_on(check_against_model(files, partitioned, features, source, residual, clauses))?;
    }
}

// ---------------------------------------------------------------------------------------------
// Pruning, metrics, insert-only
// ---------------------------------------------------------------------------------------------

fn rows_with_ids(ids: std::ops::Range<i64>, grp: &str) -> Vec<Row> {
    ids.map(|i| (Some(i), Some(grp.to_owned()), Some(i * 10)))
        .collect()
}

/// Four files with disjoint id ranges 0..10, 10..20, 20..30, 30..40.
async fn four_files(dir: &tempfile::TempDir) -> Table {
    let files: Vec<Vec<Row>> = (0..4)
        .map(|f| rows_with_ids(f * 10..f * 10 + 10, "a"))
        .collect();
    create(dir, &files, false).await
}

async fn file_bytes(table: &Table, path: &str) -> Vec<u8> {
    let root = table.url().to_file_path().unwrap();
    std::fs::read(root.join(path)).unwrap()
}

#[tokio::test]
async fn merge_reads_and_rewrites_only_files_that_can_match() {
    let dir = tempfile::tempdir().unwrap();
    let table = four_files(&dir).await;
    let before = table.snapshot().await.unwrap();
    let mut untouched_bytes = HashMap::new();
    for add in before.files() {
        untouched_bytes.insert(add.path.clone(), file_bytes(&table, &add.path).await);
    }
    // Update ids 12 and 15 (file 2), insert 100.
    let source = vec![
        (Some(12), Some("a".to_owned()), Some(-1)),
        (Some(15), Some("a".to_owned()), Some(-2)),
        (Some(100), Some("z".to_owned()), Some(7)),
    ];
    let report = table
        .merge(stream(&source), parse("t.id = s.id").unwrap())
        .when_matched_update_all(None)
        .when_not_matched_insert_all(None)
        .execute()
        .await
        .unwrap();
    assert_eq!(report.files_before_pruning, 4);
    // The distinct keys 12, 15 and 100 prune files 0..10 and 20..40 by statistics.
    assert_eq!(report.files_read, 1);
    assert_eq!(report.files_pruned, 3);
    assert_eq!(report.files_removed, 1);
    assert_eq!(report.rows_updated, 2);
    assert_eq!(report.rows_inserted, 1);
    assert_eq!(report.rows_copied, 8);
    assert_eq!(report.rows_written, 11);
    let after = table.snapshot().await.unwrap();
    let removed: Vec<_> = before
        .files()
        .iter()
        .filter(|a| !after.files().iter().any(|b| b.path == a.path))
        .collect();
    assert_eq!(removed.len(), 1);
    for add in after.files() {
        if let Some(bytes) = untouched_bytes.get(&add.path) {
            let old = before.files().iter().find(|a| a.path == add.path).unwrap();
            assert_eq!(old, add, "an untouched file's add action must not change");
            assert_eq!(&file_bytes(&table, &add.path).await, bytes);
        }
    }
    let rows = read_rows(&table).await;
    assert_eq!(rows.len(), 41);
    assert!(rows.contains(&(Some(12), Some("a".to_owned()), Some(-1))));
    assert!(rows.contains(&(Some(100), Some("z".to_owned()), Some(7))));
    check_commit_metrics(&table, &report).await;
    let history = table.history(Some(1)).await.unwrap();
    let info = history[0].commit_info.as_ref().unwrap();
    let params = info.0["operationParameters"].as_object().unwrap();
    assert_eq!(params["predicate"], r#"["`t`.`id` = `s`.`id`"]"#);
    assert_eq!(params["matchedPredicates"], r#"[{"actionType":"update"}]"#);
    assert_eq!(
        params["notMatchedPredicates"],
        r#"[{"actionType":"insert"}]"#
    );
    let metrics = info.0["operationMetrics"].as_object().unwrap();
    assert_eq!(metrics["numTargetFilesBeforeSkipping"], "4");
    assert_eq!(metrics["numTargetFilesAfterSkipping"], "1");
    assert_eq!(metrics["numSourceRows"], "3");
}

/// A deletion-vector MERGE whose clauses read nothing from the target (UPDATE * and DELETE)
/// does not read the touched files a second time; the rows it marks must still be the right
/// ones when the files already hide rows behind earlier deletion vectors, and over more rows
/// than one batch.
#[tokio::test]
async fn deletion_vector_merge_without_target_values_marks_the_right_rows() {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<Vec<Row>> = vec![
        rows_with_ids(0..150_000, "a"),
        rows_with_ids(150_000..160_000, "b"),
    ];
    let features = Features {
        deletion_vectors: true,
        change_feed: false,
    };
    let table = create_with(&dir, &files, false, features).await;
    // Earlier deletion vectors: every third row of both files.
    let _ = table
        .delete(Some(parse("id % 3 = 0").unwrap()))
        .await
        .unwrap();
    let mut expected: std::collections::BTreeMap<i64, Row> = read_rows(&table)
        .await
        .into_iter()
        .map(|r| (r.0.unwrap(), r))
        .collect();
    // Update every 7th id (some of them deleted already, so unmatched and inserted again),
    // delete ids that are 1 mod 1000, insert new ones.
    let mut source = Vec::new();
    for id in (0..160_000).step_by(7).chain(200_000..200_010) {
        source.push((Some(id), Some("s".to_owned()), Some(-id)));
    }
    for id in (1..160_000).step_by(1000).filter(|id| id % 7 != 0) {
        source.push((Some(id), Some("d".to_owned()), None));
    }
    let report = table
        .merge(stream(&source), parse("t.id = s.id").unwrap())
        .when_matched_delete(Some(parse("s.v IS NULL").unwrap()))
        .when_matched_update_all(None)
        .when_not_matched_insert_all(Some(parse("s.v IS NOT NULL").unwrap()))
        .execute()
        .await
        .unwrap();
    assert_eq!(report.rows_copied, 0, "deletion vectors: nothing copied");
    for row in &source {
        let id = row.0.unwrap();
        match (expected.contains_key(&id), row.2.is_some()) {
            (true, true) => drop(expected.insert(id, row.clone())),
            (true, false) => drop(expected.remove(&id)),
            (false, true) => drop(expected.insert(id, row.clone())),
            (false, false) => {}
        }
    }
    let expected: Vec<Row> = expected.into_values().collect();
    let mut got = read_rows(&table).await;
    got.sort_by_key(|r| r.0);
    assert_eq!(got.len(), expected.len());
    assert!(
        got == expected,
        "rows differ from the expected merge result"
    );
}

#[tokio::test]
async fn merge_by_key_range_skips_files_outside_it() {
    let dir = tempfile::tempdir().unwrap();
    let table = four_files(&dir).await;
    // 40 distinct keys 11..=19 and 21..=28 with duplicates of nothing: a range 11..28.
    let source: Vec<Row> = (11..20)
        .chain(21..29)
        .chain(200..240)
        .map(|i| (Some(i), Some("a".to_owned()), Some(0)))
        .collect();
    let report = table
        .merge(stream(&source), parse("t.id = s.id").unwrap())
        .when_matched_delete(None)
        .execute()
        .await
        .unwrap();
    // Range 11..239 skips only the first file; two files hold matches.
    assert_eq!(report.files_read, 3);
    assert_eq!(report.files_removed, 2);
    assert_eq!(report.rows_deleted, 17);
    assert_eq!(read_rows(&table).await.len(), 40 - 17);
}

#[tokio::test]
async fn insert_only_merge_adds_files_without_rewriting() {
    let dir = tempfile::tempdir().unwrap();
    let table = four_files(&dir).await;
    let before = table.snapshot().await.unwrap();
    let source: Vec<Row> = vec![
        (Some(5), Some("a".to_owned()), Some(1)),
        (Some(50), Some("b".to_owned()), Some(2)),
        (Some(50), Some("b".to_owned()), Some(3)),
        (None, Some("c".to_owned()), Some(4)),
    ];
    let report = table
        .merge(stream(&source), parse("t.id = s.id").unwrap())
        .when_not_matched_insert_all(None)
        .execute()
        .await
        .unwrap();
    assert_eq!(report.files_removed, 0);
    assert_eq!(
        report.rows_inserted, 3,
        "duplicates and NULL keys are inserted"
    );
    assert_eq!(report.rows_copied, 0);
    let after = table.snapshot().await.unwrap();
    for add in before.files() {
        assert!(after.files().contains(add));
    }
    assert_eq!(after.files().len(), 5);
    assert_eq!(read_rows(&table).await.len(), 43);
}

#[tokio::test]
async fn merge_that_changes_nothing_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let table = four_files(&dir).await;
    let report = table
        .merge(
            stream(&[(Some(3), None, Some(1))]),
            parse("t.id = s.id").unwrap(),
        )
        .when_matched_delete(Some(parse("s.v > 100").unwrap()))
        .execute()
        .await
        .unwrap();
    assert_eq!(report.version, None);
    assert_eq!(report.files_read, 1);
    assert_eq!(report.files_removed, 0);
    assert_eq!(table.snapshot().await.unwrap().version(), 3);
    // With an application transaction it commits anyway: the txn records the work as done.
    let report = table
        .merge(
            stream(&[(Some(3), None, Some(1))]),
            parse("t.id = s.id").unwrap(),
        )
        .with_app_transaction("silver-test", 7)
        .when_matched_delete(Some(parse("s.v > 100").unwrap()))
        .execute()
        .await
        .unwrap();
    assert_eq!(report.version, Some(4));
    let snapshot = table.snapshot().await.unwrap();
    assert_eq!(snapshot.app_transaction_version("silver-test"), Some(7));
}

#[tokio::test]
async fn partition_pruning_and_moving_rows_between_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let files = vec![rows_with_ids(0..5, "a"), rows_with_ids(5..10, "b")];
    let table = create(&dir, &files, true).await;
    // The ON condition's target-only conjunct prunes partition b.
    let source = vec![(Some(2), Some("b".to_owned()), Some(99))];
    let report = table
        .merge(
            stream(&source),
            parse("t.id = s.id AND t.grp = 'a'").unwrap(),
        )
        .when_matched_update(
            None,
            vec![
                ("grp".to_owned(), parse_value("s.grp").unwrap()),
                ("v".to_owned(), parse_value("s.v").unwrap()),
            ],
        )
        .execute()
        .await
        .unwrap();
    assert_eq!(report.files_read, 1);
    assert_eq!(report.rows_updated, 1);
    let rows = read_rows(&table).await;
    assert!(rows.contains(&(Some(2), Some("b".to_owned()), Some(99))));
    assert_eq!(rows.len(), 10);
}

#[tokio::test]
async fn schema_evolution_adds_source_columns_on_update_and_insert_all() {
    let dir = tempfile::tempdir().unwrap();
    let table = four_files(&dir).await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("v", DataType::Int64, true),
        Field::new("note", DataType::Utf8, true),
    ]));
    let source = RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![1, 77])),
            Arc::new(Int64Array::from(vec![-1, -77])),
            Arc::new(StringArray::from(vec!["x", "y"])),
        ],
    )
    .unwrap();
    let merge = |evolve: bool| {
        table
            .merge(
                futures::stream::iter([Ok(source.clone())]).boxed(),
                parse("t.id = s.id").unwrap(),
            )
            .when_matched_update_all(None)
            .when_not_matched_insert_all(None)
            .with_merge_schema(evolve)
    };
    let err = merge(false).execute().await.unwrap_err();
    assert!(
        err.to_string().contains("WHEN MATCHED clause 1 (UPDATE *)")
            && err.to_string().contains("`grp`"),
        "{err}"
    );
    let report = merge(true).execute().await.unwrap();
    assert_eq!((report.rows_updated, report.rows_inserted), (1, 1));
    let snapshot = table.snapshot().await.unwrap();
    assert!(snapshot.schema().field("note").is_some());
    let batches = snapshot
        .scan()
        .with_columns(["id", "grp", "v", "note"])
        .build()
        .unwrap()
        .collect()
        .await
        .unwrap();
    let mut seen = Vec::new();
    for b in &batches {
        let id = b.column(0).as_primitive::<Int64Type>();
        let grp = b.column(1).as_string::<i32>();
        let note = b.column(3).as_string::<i32>();
        for i in 0..b.num_rows() {
            if note.is_valid(i) {
                seen.push((
                    id.value(i),
                    grp.is_valid(i).then(|| grp.value(i).to_owned()),
                    note.value(i).to_owned(),
                ));
            }
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        vec![
            (1, Some("a".to_owned()), "x".to_owned()),
            (77, None, "y".to_owned())
        ]
    );
}

#[tokio::test]
async fn bind_errors_name_the_clause_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let table = four_files(&dir).await;
    let run = |on: &str, clause: MergeClause| {
        let table = table.clone();
        let on = parse(on).unwrap();
        async move {
            table
                .merge(stream(&[(Some(1), None, Some(1))]), on)
                .with_clause(clause)
                .execute()
                .await
                .unwrap_err()
                .to_string()
        }
    };
    let delete = MergeClause::Matched {
        condition: None,
        action: MatchedAction::Delete,
    };
    let message = run("t.v > s.v", delete.clone()).await;
    assert!(message.contains("at least one equality"), "{message}");
    let message = run("t.id = s.id AND id > 1", delete).await;
    assert!(
        message.contains("ambiguous") && message.contains("`id`"),
        "{message}"
    );
    let message = run(
        "t.id = s.id",
        MergeClause::NotMatched {
            condition: Some(parse("t.v > 1").unwrap()),
            action: NotMatchedAction::InsertAll,
        },
    )
    .await;
    assert!(
        message.contains("WHEN NOT MATCHED clause 1") && message.contains("target column"),
        "{message}"
    );
    let message = run(
        "t.id = s.id",
        MergeClause::Matched {
            condition: None,
            action: MatchedAction::Update(vec![(
                "nope".to_owned(),
                Expression::Column(vec!["s".to_owned(), "v".to_owned()]),
            )]),
        },
    )
    .await;
    assert!(
        message.contains("WHEN MATCHED clause 1 (UPDATE)") && message.contains("`nope`"),
        "{message}"
    );
}

#[tokio::test]
async fn duplicate_matches_follow_spark() {
    let dir = tempfile::tempdir().unwrap();
    let table = four_files(&dir).await;
    let dup = vec![(Some(3), None, Some(1)), (Some(3), None, Some(2))];
    // Unconditional DELETE as the only MATCHED clause: allowed.
    let report = table
        .merge(stream(&dup), parse("t.id = s.id").unwrap())
        .when_matched_delete(None)
        .execute()
        .await
        .unwrap();
    assert_eq!(report.rows_deleted, 1, "the target row is deleted once");
    let dup = vec![(Some(4), None, Some(1)), (Some(4), None, Some(2))];
    let err = table
        .merge(stream(&dup), parse("t.id = s.id").unwrap())
        .when_matched_update_all(None)
        .execute()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("more than one source row"),
        "{err}"
    );
    // Only MATCHED clauses: a pair whose condition is false does not count.
    let report = table
        .merge(stream(&dup), parse("t.id = s.id").unwrap())
        .when_matched_update(
            Some(parse("s.v = 2").unwrap()),
            vec![("v".to_owned(), parse_value("s.v").unwrap())],
        )
        .execute()
        .await
        .unwrap();
    assert_eq!(report.rows_updated, 1);
}

// ---------------------------------------------------------------------------------------------
// Conflicts
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn merge_fails_when_a_concurrent_commit_removed_a_file_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let table = four_files(&dir).await;
    let snapshot = table.snapshot().await.unwrap();
    // A concurrent DELETE rewrites the file holding ids 10..20 after the merge read the table.
    let _ = table.delete(Some(parse("id = 11").unwrap())).await.unwrap();
    let err = table
        .merge(
            stream(&[(Some(12), None, Some(0))]),
            parse("t.id = s.id").unwrap(),
        )
        .with_snapshot(snapshot)
        .when_matched_update_all(None)
        .execute()
        .await
        .unwrap_err();
    let Error::Conflict {
        winning_version,
        operation,
        reason,
    } = &err
    else {
        panic!("expected a conflict, got {err}");
    };
    assert_eq!(*winning_version, 4);
    assert_eq!(operation, "DELETE");
    assert!(reason.contains("removed file"), "{reason}");
    assert!(
        read_rows(&table)
            .await
            .contains(&(Some(12), Some("a".to_owned()), Some(120)))
    );

    // The merge only read the file (no clause changed its rows) and inserts elsewhere: the
    // concurrent rewrite of that file still fails it, because its NOT MATCHED decision for
    // key 15 depended on the file's rows.
    let snapshot = table.snapshot().await.unwrap();
    let _ = table.delete(Some(parse("id = 14").unwrap())).await.unwrap();
    let err = table
        .merge(
            stream(&[(Some(15), None, Some(0)), (Some(99), None, Some(0))]),
            parse("t.id = s.id").unwrap(),
        )
        .with_snapshot(snapshot)
        .when_matched_delete(Some(parse("s.v > 100").unwrap()))
        .when_not_matched_insert_all(None)
        .execute()
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Conflict { reason, .. } if reason.contains("that this transaction read")),
        "{err}"
    );
}

#[tokio::test]
async fn merge_rebases_over_a_concurrent_blind_append_and_an_unrelated_delete() {
    let dir = tempfile::tempdir().unwrap();
    let table = four_files(&dir).await;
    let snapshot = table.snapshot().await.unwrap();
    let _ = table
        .write()
        .execute(stream(&[(Some(12), Some("a".to_owned()), Some(5))]))
        .await
        .unwrap();
    // A DELETE of a file the merge prunes away (ids 30..40) does not conflict either.
    let _ = table
        .delete(Some(parse("id >= 30").unwrap()))
        .await
        .unwrap();
    let report = table
        .merge(
            stream(&[(Some(13), None, Some(0))]),
            parse("t.id = s.id").unwrap(),
        )
        .with_snapshot(snapshot)
        .when_matched_update(None, vec![("v".to_owned(), parse_value("s.v").unwrap())])
        .execute()
        .await
        .unwrap();
    assert_eq!(report.version, Some(6));
    assert_eq!(report.attempts, 3);
    let rows = read_rows(&table).await;
    assert!(rows.contains(&(Some(13), Some("a".to_owned()), Some(0))));
    assert!(rows.contains(&(Some(12), Some("a".to_owned()), Some(5))));
    assert_eq!(rows.len(), 31);
}

/// Files of more than one scan batch (8,192 rows): pass 2 walks the pairs pass 1 recorded
/// across batch boundaries.
#[tokio::test]
async fn large_files_span_several_batches() {
    let dir = tempfile::tempdir().unwrap();
    let big: Vec<Row> = (0..20_000)
        .map(|i| {
            (
                Some(i),
                Some(["a", "b"][(i % 2) as usize].to_owned()),
                Some(i % 10),
            )
        })
        .collect();
    let table = create(
        &dir,
        &[big.clone(), rows_with_ids(30_000..30_010, "c")],
        false,
    )
    .await;
    let source: Vec<Row> = (0..20_000)
        .step_by(13)
        .chain(40_000..40_005)
        .map(|i| (Some(i), Some("s".to_owned()), Some(i % 7)))
        .collect();
    let clauses = vec![
        Clause::Matched(Some(Cond::SourceVGt(3)), Matched::SetSum),
        Clause::Matched(None, Matched::Delete),
        Clause::NotMatched(None, NotMatched::All),
        Clause::BySource(Some(Cond::TargetVLt(2)), BySource::Decrement),
    ];
    let mut merge = table.merge(stream(&source), parse("t.id = s.id").unwrap());
    for c in &clauses {
        merge = merge.with_clause(c.to_merge());
    }
    let report = merge.execute().await.unwrap();
    let target = [big, rows_with_ids(30_000..30_010, "c")].concat();
    let expected = model(&target, &source, false, &clauses).unwrap();
    assert_eq!(read_rows(&table).await, expected.rows);
    assert_eq!(
        (
            report.rows_inserted,
            report.rows_updated,
            report.rows_deleted
        ),
        (expected.inserted, expected.updated, expected.deleted)
    );
    assert_eq!(report.files_removed, 1, "no row of the small file changes");
}
