//! Model-based test of log semantics: random histories of adds, removes, re-adds (with and
//! without deletion vectors), app transactions and domain metadata are written as commits to
//! an in-memory store; every version loads to exactly what a ~50-line forward-replay model
//! says, and a checkpoint at a random version plus the tail replays to the same state as
//! replaying every commit.

#![allow(
    clippy::unwrap_used,
    reason = "helpers outside #[test] functions: a panic is how a test fails"
)]

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use delta_core::Table;
use delta_core::action::{
    Action, Add, DomainMetadata, Metadata, Protocol, Remove, Txn, format_commit,
};
use delta_core::deletion_vector::DeletionVectorDescriptor;
use object_store::memory::InMemory;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Add(u8),
    AddWithDv(u8, u8),
    Remove(u8),
    Txn(u8, i64),
    Domain(u8, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12).prop_map(Op::Add),
        2 => (0u8..12, 0u8..4).prop_map(|(f, d)| Op::AddWithDv(f, d)),
        3 => (0u8..12).prop_map(Op::Remove),
        1 => (0u8..3, 0i64..100).prop_map(|(a, v)| Op::Txn(a, v)),
        1 => (0u8..3, any::<bool>()).prop_map(|(d, r)| Op::Domain(d, r)),
    ]
}

fn dv(id: u8) -> DeletionVectorDescriptor {
    DeletionVectorDescriptor {
        storage_type: "u".to_owned(),
        path_or_inline_dv: format!("ab^-aqEH.-t@S}}K{{vb[*k{id}"),
        offset: Some(1),
        size_in_bytes: 10,
        cardinality: 1,
    }
}

/// The reference model: live files by path (with their DV), txns, domains. Forward replay.
#[derive(Clone, Debug, Default, PartialEq)]
struct Model {
    live: BTreeMap<String, Option<u8>>,
    txns: BTreeMap<String, i64>,
    domains: BTreeMap<String, String>,
}

/// Turn one op into the commit's actions, given the model before it, and update the model.
fn apply(model: &mut Model, op: &Op, version: u64) -> Vec<Action> {
    let add = |path: &str, dv_id: Option<u8>| {
        Action::Add(Add {
            path: path.to_owned(),
            size: 10,
            modification_time: i64::try_from(version).unwrap(),
            data_change: true,
            deletion_vector: dv_id.map(dv),
            ..Add::default()
        })
    };
    let remove = |path: &str, dv_id: Option<u8>| {
        Action::Remove(Remove {
            path: path.to_owned(),
            data_change: true,
            deletion_timestamp: Some(1),
            deletion_vector: dv_id.map(dv),
            ..Remove::default()
        })
    };
    match op {
        Op::Add(f) => {
            let path = format!("part-{f}.parquet");
            let mut actions = Vec::new();
            if let Some(Some(old)) = model.live.get(&path) {
                // Re-adding a live path under another deletion vector retires the old
                // logical file; re-adding the same logical file just replaces its add.
                actions.push(remove(&path, Some(*old)));
            }
            actions.push(add(&path, None));
            model.live.insert(path, None);
            actions
        }
        Op::AddWithDv(f, d) => {
            let path = format!("part-{f}.parquet");
            let mut actions = Vec::new();
            if let Some(old) = model.live.get(&path) {
                if *old == Some(*d) {
                    return Vec::new();
                }
                actions.push(remove(&path, *old));
            }
            actions.push(add(&path, Some(*d)));
            model.live.insert(path, Some(*d));
            actions
        }
        Op::Remove(f) => {
            let path = format!("part-{f}.parquet");
            match model.live.remove(&path) {
                Some(old) => vec![remove(&path, old)],
                None => Vec::new(),
            }
        }
        Op::Txn(a, v) => {
            model.txns.insert(format!("app-{a}"), *v);
            vec![Action::Txn(Txn {
                app_id: format!("app-{a}"),
                version: *v,
                last_updated: None,
            })]
        }
        Op::Domain(d, removed) => {
            let domain = format!("dom.{d}");
            let configuration = format!("{{\"v\":{version}}}");
            if *removed {
                model.domains.remove(&domain);
            } else {
                model.domains.insert(domain.clone(), configuration.clone());
            }
            vec![Action::DomainMetadata(DomainMetadata {
                domain,
                configuration,
                removed: *removed,
            })]
        }
    }
}

fn observed(snapshot: &delta_core::Snapshot) -> Model {
    let live = snapshot
        .files()
        .iter()
        .map(|a| {
            let dv_id = a.deletion_vector.as_ref().map(|d| {
                let last = d.path_or_inline_dv.chars().last().unwrap();
                u8::try_from(last.to_digit(10).unwrap()).unwrap()
            });
            (a.path.clone(), dv_id)
        })
        .collect();
    Model {
        live,
        txns: snapshot
            .app_transactions()
            .iter()
            .map(|(k, v)| (k.clone(), v.version))
            .collect(),
        domains: snapshot
            .domains()
            .iter()
            .map(|(k, v)| (k.clone(), v.configuration.clone()))
            .collect(),
    }
}

async fn run(ops: Vec<Op>, checkpoint_at: usize) -> Result<(), TestCaseError> {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let url = url::Url::parse("memory:///t/").unwrap();
    let table = Table::with_store(store.clone(), url).unwrap();
    let mut model = Model::default();
    let mut history = Vec::new();
    let mut commit0 = vec![
        Action::Protocol(Protocol {
            min_reader_version: 3,
            min_writer_version: 7,
            reader_features: Some(vec!["deletionVectors".to_owned()]),
            writer_features: Some(vec!["deletionVectors".to_owned(), "domainMetadata".to_owned()]),
        }),
        Action::Metadata(Metadata {
            id: "model".to_owned(),
            schema_string: r#"{"type":"struct","fields":[{"name":"id","type":"long","nullable":true,"metadata":{}}]}"#.to_owned(),
            ..Metadata::default()
        }),
    ];
    commit0.extend(apply(&mut model, &ops[0], 0));
    let mut commits = vec![commit0];
    history.push(model.clone());
    for (i, op) in ops.iter().enumerate().skip(1) {
        commits.push(apply(&mut model, op, u64::try_from(i).unwrap()));
        history.push(model.clone());
    }
    for (v, actions) in commits.iter().enumerate() {
        let location = Path::from(format!("t/_delta_log/{v:020}.json"));
        store
            .put(&location, format_commit(actions).into())
            .await
            .unwrap();
    }
    // Every version equals the model, replaying all commits.
    for (v, expected) in history.iter().enumerate() {
        let snapshot = table.snapshot_at(u64::try_from(v).unwrap()).await.unwrap();
        prop_assert_eq!(&observed(&snapshot), expected, "version {}", v);
    }
    // Checkpoint at some version; every later version replays from it to the same state.
    let cp = checkpoint_at % history.len();
    let snapshot = table.snapshot_at(u64::try_from(cp).unwrap()).await.unwrap();
    table.checkpoint(&snapshot).await.unwrap();
    for (v, expected) in history.iter().enumerate().skip(cp) {
        let snapshot = table.snapshot_at(u64::try_from(v).unwrap()).await.unwrap();
        prop_assert_eq!(
            snapshot.log_segment().checkpoint_version(),
            Some(u64::try_from(cp).unwrap())
        );
        prop_assert_eq!(
            &observed(&snapshot),
            expected,
            "version {} from checkpoint {}",
            v,
            cp
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn checkpoint_plus_tail_equals_full_replay_equals_model(
        ops in proptest::collection::vec(op(), 1..30),
        checkpoint_at in 0usize..30,
    ) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(run(ops, checkpoint_at))?;
    }
}

#[test]
fn stale_and_corrupt_last_checkpoint_hints_are_ignored() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let ops: Vec<Op> = (0..8).map(Op::Add).collect();
        run(ops, 4).await.unwrap();
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let table =
            Table::with_store(store.clone(), url::Url::parse("memory:///t/").unwrap()).unwrap();
        let mut model = Model::default();
        let mut first = vec![
            Action::Protocol(Protocol {
                min_reader_version: 1,
                min_writer_version: 2,
                ..Protocol::default()
            }),
            Action::Metadata(Metadata {
                id: "x".into(),
                schema_string: r#"{"type":"struct","fields":[]}"#.into(),
                ..Metadata::default()
            }),
        ];
        first.extend(apply(&mut model, &Op::Add(1), 0));
        store
            .put(
                &Path::from("t/_delta_log/00000000000000000000.json"),
                format_commit(&first).into(),
            )
            .await
            .unwrap();
        store
            .put(
                &Path::from("t/_delta_log/00000000000000000001.json"),
                format_commit(&apply(&mut model, &Op::Add(2), 1)).into(),
            )
            .await
            .unwrap();
        for hint in [
            &b""[..],
            b"garbage",
            br#"{"version":7,"size":3}"#,
            br#"{"version":0,"size":3}"#,
        ] {
            store
                .put(
                    &Path::from("t/_delta_log/_last_checkpoint"),
                    hint.to_vec().into(),
                )
                .await
                .unwrap();
            let snapshot = table.snapshot().await.unwrap();
            assert_eq!(snapshot.version(), 1);
            assert_eq!(observed(&snapshot), model);
        }
        let _ = HashMap::<u8, u8>::new();
    });
}

/// A load reads and decodes the checkpoint `_last_checkpoint` names while it lists the log;
/// the listing decides: a stale hint's checkpoint (or a corrupt one) is not used when a newer
/// checkpoint exists, and files removed after the checkpoint stay removed.
#[test]
fn checkpoint_read_ahead_of_the_listing_is_used_only_when_the_listing_picks_it() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let table =
            Table::with_store(store.clone(), url::Url::parse("memory:///t/").unwrap()).unwrap();
        let mut model = Model::default();
        let mut first = vec![
            Action::Protocol(Protocol {
                min_reader_version: 1,
                min_writer_version: 2,
                ..Protocol::default()
            }),
            Action::Metadata(Metadata {
                id: "x".into(),
                schema_string: r#"{"type":"struct","fields":[]}"#.into(),
                ..Metadata::default()
            }),
        ];
        first.extend(apply(&mut model, &Op::Add(1), 0));
        let mut commits = vec![first];
        for (v, op) in [Op::Add(2), Op::Add(3), Op::Remove(1), Op::Add(4)]
            .iter()
            .enumerate()
        {
            commits.push(apply(&mut model, op, u64::try_from(v + 1).unwrap()));
        }
        for (v, actions) in commits.iter().enumerate() {
            store
                .put(
                    &Path::from(format!("t/_delta_log/{v:020}.json")),
                    format_commit(actions).into(),
                )
                .await
                .unwrap();
        }
        let hint = Path::from("t/_delta_log/_last_checkpoint");
        // Checkpoint at 2, then the tail removes a file it holds: read ahead, then filtered.
        table
            .checkpoint(&table.snapshot_at(2).await.unwrap())
            .await
            .unwrap();
        let snapshot = table.snapshot().await.unwrap();
        assert_eq!(snapshot.log_segment().checkpoint_version(), Some(2));
        assert_eq!(observed(&snapshot), model);
        let hint_at_2 = store.get(&hint).await.unwrap().bytes().await.unwrap();
        // A newer checkpoint at 3 and a stale hint still naming 2: the listing picks 3.
        table
            .checkpoint(&table.snapshot_at(3).await.unwrap())
            .await
            .unwrap();
        store.put(&hint, hint_at_2.clone().into()).await.unwrap();
        let snapshot = table.snapshot().await.unwrap();
        assert_eq!(snapshot.log_segment().checkpoint_version(), Some(3));
        assert_eq!(observed(&snapshot), model);
        // The hinted checkpoint corrupt: ignored while reading ahead, never used.
        store
            .put(
                &Path::from("t/_delta_log/00000000000000000002.checkpoint.parquet"),
                b"PAR1 not parquet".to_vec().into(),
            )
            .await
            .unwrap();
        let snapshot = table.snapshot().await.unwrap();
        assert_eq!(snapshot.log_segment().checkpoint_version(), Some(3));
        assert_eq!(observed(&snapshot), model);
        // The same corrupt checkpoint when it is the one to use is an error naming it.
        let err = table.snapshot_at(2).await.unwrap_err().to_string();
        assert!(
            err.contains("00000000000000000002.checkpoint.parquet"),
            "{err}"
        );
    });
}
