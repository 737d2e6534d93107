//! Fault injection on the write path (STYLE.md §2.8): a crash-point sweep over every store
//! call of append, DELETE (whole-file and rewriting), UPDATE, overwrite, replaceWhere,
//! checkpoint, and a commit that triggers an automatic checkpoint plus log cleanup.
//!
//! Each operation runs once on a `FaultyStore` without faults to count its store calls `k`.
//! Then, for every `i < k` and each of `CrashAt(i)`, `FailAt(i)` and `AmbiguousPutAt(i)`, a
//! fresh table is set up through the plain store, the operation runs through the faulty
//! one, and the table is reopened on the plain store and must be:
//!
//! - loadable, at version `v` or `v + 1` (checkpoint: always `v`);
//! - exactly the model before (at `v`) or after (at `v + 1`), never a mix, each row once;
//! - made of whole commit files only (every `.json` parses, no stray names in the log);
//! - consistent with what the operation reported: success means `v + 1`; a crash or a
//!   single failed call that made the operation fail leaves `v`; an ambiguous put may leave
//!   either, and `v + 1` then holds the intended rows exactly once;
//! - writable again: rerunning the operation (or another append) succeeds.
//!
//! Every earlier version must still read back as it was (or, after log cleanup, report
//! `VersionNotFound`).

#![allow(
    clippy::unwrap_used,
    reason = "a test should fail loudly on an unexpected error (STYLE.md plans allow-unwrap-in-tests)"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use async_trait::async_trait;
use bytes::Bytes;
use delta_core::clock::{Clock, ManualClock};
use delta_core::expression::parse;
use delta_core::testing::{Fault, FaultyStore};
use delta_core::{Error, SaveMode, Snapshot, Table, Version};
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult,
};

type Rows = BTreeMap<i64, Option<i64>>;

fn part_of(id: i64) -> Option<&'static str> {
    match id.rem_euclid(4) {
        0 => Some("a"),
        1 => Some("b c"),
        2 => Some("d/e=%"),
        _ => None,
    }
}

fn batch(rows: &[(i64, Option<i64>)]) -> RecordBatch {
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, true),
        Field::new("val", DataType::Int64, true),
        Field::new("part", DataType::Utf8, true),
    ]));
    RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            )),
            Arc::new(Int64Array::from(
                rows.iter().map(|r| r.1).collect::<Vec<_>>(),
            )),
            Arc::new(StringArray::from(
                rows.iter().map(|r| part_of(r.0)).collect::<Vec<_>>(),
            )),
        ],
    )
    .unwrap()
}

fn stream(rows: &[(i64, Option<i64>)]) -> BoxStream<'static, delta_core::Result<RecordBatch>> {
    futures::stream::iter(vec![Ok(batch(rows))]).boxed()
}

fn rows_of(ids: Range<i64>) -> Vec<(i64, Option<i64>)> {
    ids.map(|i| (i, Some(i * 10))).collect()
}

async fn read_rows(snapshot: &Snapshot) -> Result<Rows, String> {
    let scan = snapshot
        .scan()
        .with_columns(["id", "val", "part"])
        .build()
        .map_err(|e| e.to_string())?;
    let batches: Vec<RecordBatch> = scan
        .execute()
        .try_collect()
        .await
        .map_err(|e| format!("scan v{}: {e}", snapshot.version()))?;
    let mut out = Rows::new();
    for b in &batches {
        let ids = b.column(0).as_primitive::<Int64Type>();
        let vals = b.column(1).as_primitive::<Int64Type>();
        let parts =
            arrow::compute::cast(b.column(2), &DataType::Utf8).map_err(|e| e.to_string())?;
        let parts = parts.as_string::<i32>();
        for i in 0..b.num_rows() {
            let id = ids.value(i);
            let part = (!parts.is_null(i)).then(|| parts.value(i));
            if part != part_of(id) {
                return Err(format!("id {id} read back with part {part:?}"));
            }
            if out
                .insert(id, (!vals.is_null(i)).then(|| vals.value(i)))
                .is_some()
            {
                return Err(format!("v{}: id {id} appears twice", snapshot.version()));
            }
        }
    }
    Ok(out)
}

fn url() -> url::Url {
    url::Url::parse("memory:///t/").unwrap()
}

const DAY_MS: i64 = 24 * 3600 * 1000;

/// The operations swept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scenario {
    Append,
    /// `DELETE WHERE id = 5`: rewrites the one file holding id 5.
    DeleteRewrite,
    /// `DELETE WHERE part = 'a'`: removes files without reading them.
    DeleteWhole,
    /// `UPDATE SET val = 0 WHERE id < 6`.
    Update,
    Overwrite,
    /// `replaceWhere id >= 10` with new rows 10..13.
    ReplaceWhere,
    /// An explicit checkpoint of the latest version (no new version).
    Checkpoint,
    /// An append that lands on a `delta.checkpointInterval` multiple with the clock past
    /// the log retention: commit, checkpoint, `_last_checkpoint`, then log cleanup deletes.
    AutoCheckpointAndCleanup,
}

const SCENARIOS: [Scenario; 8] = [
    Scenario::Append,
    Scenario::DeleteRewrite,
    Scenario::DeleteWhole,
    Scenario::Update,
    Scenario::Overwrite,
    Scenario::ReplaceWhere,
    Scenario::Checkpoint,
    Scenario::AutoCheckpointAndCleanup,
];

impl Scenario {
    fn commits(self) -> bool {
        self != Self::Checkpoint
    }

    fn cleans_up(self) -> bool {
        self == Self::AutoCheckpointAndCleanup
    }

    fn clock(self) -> Arc<ManualClock> {
        // Log cleanup compares the clock with the store's real modification times.
        let start = if self.cleans_up() {
            chrono::Utc::now().timestamp_millis() + 40 * DAY_MS
        } else {
            1_700_000_000_000
        };
        Arc::new(ManualClock::new(start, 1, 7))
    }

    /// Build the table through the plain store; returns the model history (index = version).
    async fn setup(self, store: Arc<dyn ObjectStore>, clock: Arc<dyn Clock>) -> Vec<Rows> {
        let table = Table::with_store(store, url()).unwrap().with_clock(clock);
        let mut builder = table.write().with_partition_columns(["part"]);
        if self.cleans_up() {
            builder = builder.with_property("delta.checkpointInterval", "3");
        }
        let _v0 = builder.execute(stream(&rows_of(0..8))).await.unwrap();
        let _v1 = table
            .write()
            .execute(stream(&rows_of(8..16)))
            .await
            .unwrap();
        let mut history: Vec<Rows> = vec![
            rows_of(0..8).into_iter().collect(),
            rows_of(0..16).into_iter().collect(),
        ];
        if self.cleans_up() {
            let _v2 = table
                .write()
                .execute(stream(&rows_of(16..20)))
                .await
                .unwrap();
            history.push(rows_of(0..20).into_iter().collect());
        }
        history
    }

    /// The rows after the operation, given the rows before.
    fn after(self, before: &Rows) -> Rows {
        let mut rows = before.clone();
        match self {
            Self::Append | Self::AutoCheckpointAndCleanup => rows.extend(rows_of(100..104)),
            Self::DeleteRewrite => {
                rows.remove(&5);
            }
            Self::DeleteWhole => rows.retain(|id, _| part_of(*id) != Some("a")),
            Self::Update => {
                for (id, val) in &mut rows {
                    if *id < 6 {
                        *val = Some(0);
                    }
                }
            }
            Self::Overwrite => rows = rows_of(200..203).into_iter().collect(),
            Self::ReplaceWhere => {
                rows.retain(|id, _| *id < 10);
                rows.extend((10..13).map(|i| (i, Some(-i))));
            }
            Self::Checkpoint => {}
        }
        rows
    }

    async fn run(self, table: &Table) -> delta_core::Result<()> {
        match self {
            Self::Append | Self::AutoCheckpointAndCleanup => table
                .write()
                .execute(stream(&rows_of(100..104)))
                .await
                .map(drop),
            Self::DeleteRewrite => table.delete(Some(parse("id = 5")?)).await.map(drop),
            Self::DeleteWhole => table.delete(Some(parse("part = 'a'")?)).await.map(drop),
            Self::Update => table
                .update(&[("val".to_owned(), parse("0")?)], Some(parse("id < 6")?))
                .await
                .map(drop),
            Self::Overwrite => table
                .write()
                .with_mode(SaveMode::Overwrite)
                .execute(stream(&rows_of(200..203)))
                .await
                .map(drop),
            Self::ReplaceWhere => {
                let rows: Vec<_> = (10..13).map(|i| (i, Some(-i))).collect();
                table
                    .write()
                    .with_replace_where(parse("id >= 10")?)
                    .execute(stream(&rows))
                    .await
                    .map(drop)
            }
            Self::Checkpoint => {
                let snapshot = table.snapshot().await?;
                table.checkpoint(&snapshot).await
            }
        }
    }
}

/// Where a faulted run left the table.
#[derive(Debug, Default)]
struct Tally {
    ok_committed: usize,
    err_not_committed: usize,
    err_committed: usize,
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "ok (committed; checkpoint: written) {}, err+not committed {}, err+committed {}",
            self.ok_committed, self.err_not_committed, self.err_committed
        )
    }
}

/// Check the table on the plain store after a faulted run; returns whether the operation's
/// commit is durable. Panics with `context` on any violated invariant.
async fn verify(
    store: Arc<dyn ObjectStore>,
    clock: Arc<dyn Clock>,
    scenario: Scenario,
    history: &[Rows],
    context: &str,
) -> bool {
    let table = Table::with_store(store.clone(), url())
        .unwrap()
        .with_clock(clock);
    let v = Version::try_from(history.len() - 1).unwrap();
    let before = history.last().unwrap();

    // The log holds only names we know, and every commit parses whole.
    let log: Vec<ObjectMeta> = store
        .list(Some(&Path::from("t/_delta_log")))
        .try_collect()
        .await
        .unwrap();
    let mut commits = BTreeSet::new();
    let mut checkpoints = BTreeSet::new();
    for meta in &log {
        let name = meta.location.filename().unwrap();
        let (stem, ext) = name.split_once('.').unwrap_or((name, ""));
        let numbered = stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit());
        match ext {
            "json" if numbered => {
                commits.insert(stem.parse::<Version>().unwrap());
            }
            "checkpoint.parquet" if numbered => {
                checkpoints.insert(stem.parse::<Version>().unwrap());
            }
            "crc" if numbered => {}
            _ if name == "_last_checkpoint" => {}
            _ => panic!("{context}: unexpected file in _delta_log: {name}"),
        }
    }
    for c in &commits {
        if let Err(e) = table.commit_actions(*c).await {
            panic!("{context}: commit {c} is not whole: {e}");
        }
    }
    let first = *commits.first().unwrap();
    let last = *commits.last().unwrap();
    assert_eq!(
        commits.iter().copied().collect::<Vec<_>>(),
        (first..=last).collect::<Vec<_>>(),
        "{context}: commit gap"
    );

    // `_last_checkpoint` never points at a missing checkpoint.
    if let Ok(hint) = store
        .get(&Path::from("t/_delta_log/_last_checkpoint"))
        .await
    {
        let hint: serde_json::Value = serde_json::from_slice(&hint.bytes().await.unwrap()).unwrap();
        let hv = hint["version"].as_u64().unwrap();
        assert!(
            checkpoints.contains(&hv),
            "{context}: _last_checkpoint names v{hv}, which does not exist"
        );
    }

    let snapshot = match table.snapshot().await {
        Ok(s) => s,
        Err(e) => panic!("{context}: the table does not load: {e}"),
    };
    let rows = read_rows(&snapshot)
        .await
        .unwrap_or_else(|e| panic!("{context}: {e}"));
    let committed = if snapshot.version() == v + 1 && scenario.commits() {
        assert_eq!(rows, scenario.after(before), "{context}: v{} rows", v + 1);
        true
    } else {
        assert_eq!(
            snapshot.version(),
            v,
            "{context}: the table is at v{}, expected v{v} or v{}",
            snapshot.version(),
            v + 1
        );
        assert_eq!(&rows, before, "{context}: v{v} rows changed");
        false
    };
    assert_eq!(
        last,
        snapshot.version(),
        "{context}: listed commits end at v{last}"
    );

    // Older versions read back as they were; only cleanup may drop a prefix of them.
    let mut loadable = false;
    for old in first..=v {
        match table.snapshot_at(old).await {
            Ok(s) => {
                loadable = true;
                let rows = read_rows(&s)
                    .await
                    .unwrap_or_else(|e| panic!("{context}: {e}"));
                assert_eq!(
                    &rows,
                    &history[usize::try_from(old).unwrap()],
                    "{context}: v{old} rows"
                );
            }
            Err(Error::VersionNotFound { .. }) if scenario.cleans_up() && !loadable => {}
            Err(e) => panic!("{context}: v{old} does not load: {e}"),
        }
    }
    committed
}

/// Set up a fresh table, run the scenario through `FaultyStore(fault)`, and return the
/// store, the history before the operation, the operation's result and the call count.
async fn run_with(
    scenario: Scenario,
    fault: Fault,
) -> (
    Arc<dyn ObjectStore>,
    Arc<ManualClock>,
    Vec<Rows>,
    delta_core::Result<()>,
    usize,
) {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let clock = scenario.clock();
    let history = scenario.setup(inner.clone(), clock.clone()).await;
    let faulty = Arc::new(FaultyStore::new(inner.clone(), fault));
    let table = Table::with_store(faulty.clone(), url())
        .unwrap()
        .with_clock(clock.clone());
    let result = scenario.run(&table).await;
    (inner, clock, history, result, faulty.calls())
}

/// After a faulted run: the same operation (or, when it committed, another append)
/// succeeds on the plain store.
async fn recovers(
    store: Arc<dyn ObjectStore>,
    clock: Arc<dyn Clock>,
    scenario: Scenario,
    committed: bool,
    context: &str,
) {
    let table = Table::with_store(store, url()).unwrap().with_clock(clock);
    let before = table.snapshot().await.unwrap().version();
    let result = if committed {
        table
            .write()
            .execute(stream(&rows_of(300..301)))
            .await
            .map(drop)
    } else {
        scenario.run(&table).await
    };
    if let Err(e) = result {
        panic!("{context}: the table is not writable after the fault: {e}");
    }
    let after = table.snapshot().await.unwrap();
    let expected = if committed || scenario.commits() {
        before + 1
    } else {
        before
    };
    assert_eq!(after.version(), expected, "{context}: retry");
    read_rows(&after)
        .await
        .unwrap_or_else(|e| panic!("{context}: after retry: {e}"));
}

/// The number of store calls the scenario makes, checked to be deterministic.
async fn call_count(scenario: Scenario) -> usize {
    let (store, clock, history, result, k) = run_with(scenario, Fault::None).await;
    result.unwrap_or_else(|e| panic!("{scenario:?} without faults: {e}"));
    assert!(
        verify(
            store,
            clock,
            scenario,
            &history,
            &format!("{scenario:?} without faults")
        )
        .await
            == scenario.commits()
    );
    let (_, _, _, _, again) = run_with(scenario, Fault::None).await;
    assert_eq!(
        k, again,
        "{scenario:?}: the call sequence is not deterministic"
    );
    k
}

async fn sweep(scenario: Scenario) -> String {
    let k = call_count(scenario).await;
    let mut report = format!(
        "{scenario:?}: {k} store calls: {:?}\n",
        recorded_calls(scenario).await
    );
    for kind in ["CrashAt", "FailAt", "AmbiguousPutAt"] {
        let mut tally = Tally::default();
        for i in 0..k {
            let fault = match kind {
                "CrashAt" => Fault::CrashAt(i),
                "FailAt" => Fault::FailAt(i),
                _ => Fault::AmbiguousPutAt(i),
            };
            let context = format!("{scenario:?} with {fault:?} of {k}");
            let (store, clock, history, result, _) = run_with(scenario, fault).await;
            let committed =
                verify(store.clone(), clock.clone(), scenario, &history, &context).await;
            match (&result, committed) {
                (Ok(()), true) => tally.ok_committed += 1,
                (Ok(()), false) => {
                    // Success without a new version: only a checkpoint may do that, and
                    // then the checkpoint must be usable.
                    assert!(
                        !scenario.commits(),
                        "{context}: reported success but nothing was committed"
                    );
                    let v = history.len() - 1;
                    let name = Path::from(format!("t/_delta_log/{v:020}.checkpoint.parquet"));
                    assert!(
                        store.head(&name).await.is_ok(),
                        "{context}: reported success but there is no checkpoint"
                    );
                    let hint = store
                        .get(&Path::from("t/_delta_log/_last_checkpoint"))
                        .await
                        .unwrap()
                        .bytes()
                        .await
                        .unwrap();
                    let hint: serde_json::Value = serde_json::from_slice(&hint).unwrap();
                    assert_eq!(
                        hint["version"].as_u64(),
                        Some(u64::try_from(v).unwrap()),
                        "{context}: _last_checkpoint"
                    );
                    tally.ok_committed += 1;
                }
                (Err(_), false) => tally.err_not_committed += 1,
                (Err(e), true) => {
                    // Only an ambiguous put may leave a durable commit behind an error.
                    assert_eq!(
                        kind, "AmbiguousPutAt",
                        "{context}: reported {e} but the commit is durable"
                    );
                    tally.err_committed += 1;
                }
            }
            recovers(store, clock, scenario, committed, &context).await;
        }
        report.push_str(&format!("  {kind:<15} {tally}\n"));
    }
    report
}

/// The full sweep over every scenario and fault kind; prints the counts.
#[tokio::test]
async fn crash_point_sweep() {
    let mut report = String::new();
    for scenario in SCENARIOS {
        report.push_str(&sweep(scenario).await);
    }
    println!("{report}");
}

/// The two crash points that matter most, named: a crash at the commit put leaves v and an
/// error; a crash right after it leaves v + 1 and success (the post-commit checkpoint work
/// never fails a commit).
#[tokio::test]
async fn crash_at_and_right_after_the_commit_put() {
    let calls = recorded_calls(Scenario::Append).await;
    let c = commit_put(&calls, 2);
    for (i, expect_committed) in [(c, false), (c + 1, true)] {
        let (store, clock, history, result, _) =
            run_with(Scenario::Append, Fault::CrashAt(i)).await;
        let committed = verify(
            store,
            clock,
            Scenario::Append,
            &history,
            &format!("CrashAt({i})"),
        )
        .await;
        assert_eq!(
            committed, expect_committed,
            "CrashAt({i}), calls {calls:#?}"
        );
        assert_eq!(result.is_ok(), expect_committed, "CrashAt({i}): {result:?}");
    }
}

/// A single failed commit put (nothing written) is settled by reading the slot back, found
/// empty, and retried: the operation succeeds. An ambiguous commit put (written, then an
/// error) is settled as ours: success, exactly once.
#[tokio::test]
async fn a_failed_or_ambiguous_commit_put_is_settled() {
    for scenario in [Scenario::Append, Scenario::DeleteRewrite, Scenario::Update] {
        let calls = recorded_calls(scenario).await;
        let c = commit_put(&calls, 2);
        for fault in [Fault::FailAt(c), Fault::AmbiguousPutAt(c)] {
            let (store, clock, history, result, _) = run_with(scenario, fault).await;
            let committed = verify(
                store,
                clock,
                scenario,
                &history,
                &format!("{scenario:?} {fault:?}"),
            )
            .await;
            assert!(
                committed && result.is_ok(),
                "{scenario:?} {fault:?}: committed {committed}, {result:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// Faults FaultyStore cannot express: two faults in one operation.

/// A pass-through store that records every call (`op path`) and can script two faults
/// FaultyStore cannot combine: make the put of one path ambiguous (write it, then report an
/// error) and then fail the next `get_failures` reads of that path, as a network partition
/// that outlasts the put would.
#[derive(Debug)]
struct ScriptStore {
    inner: Arc<dyn ObjectStore>,
    calls: std::sync::Mutex<Vec<String>>,
    ambiguous_put: Option<Path>,
    put_done: AtomicUsize,
    get_failures: AtomicUsize,
    /// A put of this path fails without writing; the write lands late, right after the
    /// next read of the path has found nothing.
    delayed_put: Option<Path>,
    delayed: std::sync::Mutex<Option<(PutPayload, PutOptions)>>,
}

impl ScriptStore {
    fn recording(inner: Arc<dyn ObjectStore>) -> Self {
        Self {
            inner,
            calls: std::sync::Mutex::new(Vec::new()),
            ambiguous_put: None,
            put_done: AtomicUsize::new(0),
            get_failures: AtomicUsize::new(0),
            delayed_put: None,
            delayed: std::sync::Mutex::new(None),
        }
    }

    fn late_put(inner: Arc<dyn ObjectStore>, path: &str) -> Self {
        Self {
            delayed_put: Some(Path::from(path)),
            ..Self::recording(inner)
        }
    }

    fn ambiguous_then_unreadable(
        inner: Arc<dyn ObjectStore>,
        path: &str,
        get_failures: usize,
    ) -> Self {
        Self {
            ambiguous_put: Some(Path::from(path)),
            get_failures: AtomicUsize::new(get_failures),
            ..Self::recording(inner)
        }
    }

    fn record(&self, op: &str, path: impl fmt::Display) {
        self.calls.lock().unwrap().push(format!("{op} {path}"));
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl fmt::Display for ScriptStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ScriptStore({})", self.inner)
    }
}

fn injected(what: &str) -> object_store::Error {
    object_store::Error::Generic {
        store: "ScriptStore",
        source: format!("injected: {what}").into(),
    }
}

#[async_trait]
impl ObjectStore for ScriptStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        self.record("put", location);
        if self.delayed_put.as_ref() == Some(location)
            && self.put_done.fetch_add(1, Ordering::SeqCst) == 0
        {
            *self.delayed.lock().unwrap() = Some((payload, opts));
            return Err(injected("timeout; the request is still in flight"));
        }
        let result = self.inner.put_opts(location, payload, opts).await;
        if self.ambiguous_put.as_ref() == Some(location)
            && result.is_ok()
            && self.put_done.fetch_add(1, Ordering::SeqCst) == 0
        {
            return Err(injected("timeout after the put was written"));
        }
        result
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.record("put_multipart", location);
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.record("get", location);
        if self.ambiguous_put.as_ref() == Some(location)
            && self.put_done.load(Ordering::SeqCst) > 0
            && self
                .get_failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(injected("read back failed"));
        }
        let result = self.inner.get_opts(location, options).await;
        if self.delayed_put.as_ref() == Some(location) {
            let late = self.delayed.lock().unwrap().take();
            if let Some((payload, opts)) = late {
                self.inner.put_opts(location, payload, opts).await.unwrap();
            }
        }
        result
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        self.record("get_ranges", location);
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.record("delete", "(stream)");
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.record("list", prefix.map_or_else(String::new, ToString::to_string));
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.record("list_from", offset);
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.record(
            "list_dir",
            prefix.map_or_else(String::new, ToString::to_string),
        );
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.record("copy", to);
        self.inner.copy_opts(from, to, options).await
    }
}

/// The calls the scenario makes without faults, in order (index = FaultyStore call index).
async fn recorded_calls(scenario: Scenario) -> Vec<String> {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let clock = scenario.clock();
    let _history = scenario.setup(inner.clone(), clock.clone()).await;
    let recorder = Arc::new(ScriptStore::recording(inner));
    let faulty = Arc::new(FaultyStore::new(recorder.clone(), Fault::None));
    let table = Table::with_store(faulty.clone(), url())
        .unwrap()
        .with_clock(clock);
    scenario.run(&table).await.unwrap();
    let calls = recorder.calls();
    assert_eq!(
        calls.len(),
        faulty.calls(),
        "every call reaches the recorder"
    );
    calls
}

/// The index of the commit put of version `v` in a recorded call list.
fn commit_put(calls: &[String], v: Version) -> usize {
    let name = format!("put t/_delta_log/{v:020}.json");
    calls
        .iter()
        .position(|c| *c == name)
        .unwrap_or_else(|| panic!("no {name} in {calls:#?}"))
}

/// BUG (reported, not fixed here): an append whose commit put is ambiguous and whose
/// read-back also fails returns an error, and the write path then deletes its data files
/// (`abort_adds` in `WriteBuilder::execute`, src/operations.rs) although the commit may
/// have landed. Here it did: version 2 is durable and references deleted files, so the
/// latest version of the table no longer loads its rows.
#[tokio::test]
async fn regression_ambiguous_commit_with_failed_read_back_keeps_the_data_files() {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let clock: Arc<dyn Clock> = Scenario::Append.clock();
    let history = Scenario::Append.setup(inner.clone(), clock.clone()).await;
    let store = Arc::new(ScriptStore::ambiguous_then_unreadable(
        inner.clone(),
        "t/_delta_log/00000000000000000002.json",
        1,
    ));
    let table = Table::with_store(store, url())
        .unwrap()
        .with_clock(clock.clone());
    let result = Scenario::Append.run(&table).await;
    assert!(
        result.is_err(),
        "the read-back failed, so the outcome is unknown: {result:?}"
    );
    // Whatever the operation reported, the table must be readable and whole.
    let plain = Table::with_store(inner.clone(), url())
        .unwrap()
        .with_clock(clock.clone());
    let snapshot = plain.snapshot().await.unwrap();
    assert_eq!(
        snapshot.version(),
        2,
        "the ambiguous put did write version 2"
    );
    let rows = read_rows(&snapshot).await;
    assert_eq!(
        rows,
        Ok(Scenario::Append.after(history.last().unwrap())),
        "version 2 is committed, so its data files must still exist"
    );
}

/// The same double fault on UPDATE, which also deletes its new files when the commit errs.
#[tokio::test]
async fn regression_ambiguous_update_commit_with_failed_read_back_keeps_the_data_files() {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let clock: Arc<dyn Clock> = Scenario::Update.clock();
    let history = Scenario::Update.setup(inner.clone(), clock.clone()).await;
    let store = Arc::new(ScriptStore::ambiguous_then_unreadable(
        inner.clone(),
        "t/_delta_log/00000000000000000002.json",
        1,
    ));
    let table = Table::with_store(store, url())
        .unwrap()
        .with_clock(clock.clone());
    let result = Scenario::Update.run(&table).await;
    assert!(result.is_err(), "{result:?}");
    let plain = Table::with_store(inner, url()).unwrap().with_clock(clock);
    let snapshot = plain.snapshot().await.unwrap();
    assert_eq!(snapshot.version(), 2);
    assert_eq!(
        read_rows(&snapshot).await,
        Ok(Scenario::Update.after(history.last().unwrap()))
    );
}

/// BUG in the test helper (reported, not fixed here): `FaultyStore::delete_stream`
/// (src/testing.rs) checks `crashed()` (`calls > n`) before counting the call, so
/// `CrashAt(n)` lets a delete at call index `n` through, and `FailAt(n)` never fails a
/// delete. Log cleanup and aborted writes delete objects, so the crash sweep silently
/// skips the crash point at each delete.
#[tokio::test]
async fn regression_faulty_store_fails_deletes_at_the_crash_point() {
    let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let path = Path::from("x");
    inner
        .put(&path, Bytes::from_static(b"1").into())
        .await
        .unwrap();
    let crashed = FaultyStore::new(inner.clone(), Fault::CrashAt(0));
    assert!(
        crashed.delete(&path).await.is_err(),
        "CrashAt(0) must fail call 0, a delete"
    );
    assert!(
        inner.head(&path).await.is_ok(),
        "a crashed store must not delete"
    );
    let failing = FaultyStore::new(inner.clone(), Fault::FailAt(0));
    assert!(
        failing.delete(&path).await.is_err(),
        "FailAt(0) must fail call 0, a delete"
    );
}

/// BUG (reported, not fixed here): a commit put that times out while the request is still
/// in flight, whose read-back finds nothing, and which then lands. The retry's
/// put-if-absent finds the slot taken, and `Transaction::commit` (src/transaction.rs, the
/// `PutOutcome::AlreadyExists` branch) runs the conflict check against that "winner"
/// without noticing its `txnId` is our own. An UPDATE then conflicts with itself ("it also
/// removed file ..."), reports an error although version 2 is committed, and
/// `abort_adds` deletes the data files version 2 references. (A blind append instead
/// rebases over itself and commits the same files again as version 3.)
#[tokio::test]
async fn regression_late_landing_commit_put_is_recognised_as_ours() {
    let mut failures = Vec::new();
    for scenario in [Scenario::Update, Scenario::Append] {
        let inner: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let clock: Arc<dyn Clock> = scenario.clock();
        let history = scenario.setup(inner.clone(), clock.clone()).await;
        let store = Arc::new(ScriptStore::late_put(
            inner.clone(),
            "t/_delta_log/00000000000000000002.json",
        ));
        let table = Table::with_store(store, url())
            .unwrap()
            .with_clock(clock.clone());
        let result = scenario.run(&table).await;
        let plain = Table::with_store(inner, url()).unwrap().with_clock(clock);
        let snapshot = plain.snapshot().await.unwrap();
        let rows = read_rows(&snapshot).await;
        if rows != Ok(scenario.after(history.last().unwrap())) {
            failures.push(format!("{scenario:?}: v{} does not hold the intended rows ({rows:?}); the operation reported {result:?}", snapshot.version()));
        } else if result.is_err() || snapshot.version() != 2 {
            failures.push(format!("{scenario:?}: our commit is version 2, but the table is at v{} and the operation reported {result:?}", snapshot.version()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
