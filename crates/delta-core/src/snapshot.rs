//! Snapshots: the immutable state of a table at one version, loaded from storage.
//!
//! Loading follows protocol "Snapshot Reconstruction": `_last_checkpoint` is only a hint
//! (missing, empty, stale or corrupt hints fall back to a listing), the log is listed from
//! the hinted version on rather than from 0, commits are read concurrently and replayed
//! newest first, then the checkpoint (and its sidecars). The result is checked against the
//! reader features this crate implements before anything reads data.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;

use crate::action::{
    Action, Add, CommitInfo, DomainMetadata, Metadata, Protocol, Remove, Txn, parse_commit,
};
use crate::checkpoint::{
    PrefetchedCheckpoint, prefetch_checkpoint, replay_checkpoint_file, replay_sidecar,
};
use crate::log::{LogFile, LogSegment, Replay, TableState, build_segment};
use crate::schema::{ColumnMappingMode, StructType, to_arrow_schema};
use crate::storage::Storage;
use crate::table_features::check_readable;
use crate::{Error, Result, Version};

/// How many commit files are fetched at once while loading. On a remote store every read is
/// a round trip (20-50 ms), so the commits after a checkpoint are read in one round when
/// there are at most this many: a cold load at 30 ms per request took 98 ms with 5 to 50
/// commits after the checkpoint and 137 ms with 100 (16 at once: 99, 130, 197, 294 ms for 5,
/// 20, 50, 100; `benches/remote_load.rs`). Local loads did not change (the 1,000-commit
/// load, dev profile: 142 ms against 147 ms with 16).
const LOG_READ_CONCURRENCY: usize = 64;

/// An immutable view of a table at one version. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Snapshot {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    storage: Storage,
    state: TableState,
    segment: LogSegment,
    schema: StructType,
    arrow_schema: SchemaRef,
    column_mapping: ColumnMappingMode,
}

/// The parsed `_last_checkpoint` hint.
#[derive(Debug, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LastCheckpointHint {
    version: Version,
    /// Number of parts of a multi-part checkpoint.
    #[serde(default)]
    parts: Option<u64>,
    /// Present when the checkpoint is a V2 checkpoint (possibly UUID-named).
    #[serde(default)]
    v2_checkpoint: Option<serde_json::Value>,
}

async fn read_hint(storage: &Storage) -> Option<LastCheckpointHint> {
    let location = storage.log_location("_last_checkpoint");
    match storage.read_optional(&location).await {
        Ok(Some(bytes)) => match serde_json::from_slice::<LastCheckpointHint>(&bytes) {
            Ok(hint) => Some(hint),
            Err(e) => {
                tracing::debug!(error = %e, "ignoring unreadable _last_checkpoint");
                None
            }
        },
        Ok(None) => None,
        Err(e) => {
            tracing::debug!(error = %e, "ignoring _last_checkpoint that cannot be read");
            None
        }
    }
}

/// Find the log segment for `target`, listing from the checkpoint hint `from` when there
/// is one and it is usable.
async fn find_segment(
    storage: &Storage,
    from: Option<Version>,
    target: Option<Version>,
) -> Result<LogSegment> {
    let table = storage.url().to_string();
    if let Some(from) = from {
        let files = storage.list_log(Some(from)).await?;
        match build_segment(&files, target, &table) {
            Ok(segment) if segment.checkpoint_version().is_some() => return Ok(segment),
            Ok(_) | Err(_) => {
                tracing::debug!(
                    hint = from,
                    "checkpoint hint unusable; listing the whole log"
                );
            }
        }
    }
    let files = storage.list_log(None).await?;
    build_segment(&files, target, &table)
}

/// Find the log segment for `target` and, while the log is being listed, read and decode
/// the checkpoint the hint names when it is a small single-file one: the listing (a walk of
/// the whole directory on local disk) and the decoding then overlap. The listing stays
/// authoritative: the prefetched checkpoint is used only if the segment names that very
/// file with the same size, and any failure of the prefetch is ignored (the normal read
/// reports it).
async fn find_segment_and_prefetch(
    storage: &Storage,
    target: Option<Version>,
) -> Result<(LogSegment, Option<PrefetchedCheckpoint>)> {
    let hint = read_hint(storage).await;
    let hint = hint.filter(|h| target.is_none_or(|t| h.version <= t));
    let Some(hint) = hint else {
        return Ok((find_segment(storage, None, target).await?, None));
    };
    let single_file = hint.parts.is_none_or(|p| p <= 1) && hint.v2_checkpoint.is_none();
    if !single_file {
        return Ok((
            find_segment(storage, Some(hint.version), target).await?,
            None,
        ));
    }
    let location = storage.log_location(&format!("{:020}.checkpoint.parquet", hint.version));
    let (segment, prefetched) = futures::join!(
        find_segment(storage, Some(hint.version), target),
        prefetch_checkpoint(storage, location)
    );
    Ok((segment?, prefetched))
}

async fn read_commit(storage: &Storage, file: &LogFile) -> Result<(Version, Vec<Action>)> {
    let location = Path::from(file.location.as_str());
    let name = storage.display(&location);
    let bytes = match storage.read_sized(&location, file.size).await {
        Ok(b) => b,
        Err(Error::Storage(object_store::Error::NotFound { .. })) => {
            return Err(Error::corrupt(
                &name,
                "commit file disappeared while loading (cleaned up concurrently?)",
            ));
        }
        Err(e) => return Err(e),
    };
    let version = file.log_path.version().unwrap_or_default();
    Ok((version, parse_commit(&bytes, &name)?))
}

/// Replay the checkpoint of `segment` into `replay`, sidecars included. Each file is
/// streamed into the replay batch by batch, one file at a time, so memory holds one decoded
/// batch on top of the state being built (or the small checkpoint decoded ahead).
async fn replay_checkpoint(
    storage: &Storage,
    segment: &LogSegment,
    prefetched: Option<PrefetchedCheckpoint>,
    replay: &mut Replay,
) -> Result<()> {
    let mut prefetched =
        prefetched.filter(|p| segment.checkpoint.len() == 1 && p.is_for(&segment.checkpoint[0]));
    for part in &segment.checkpoint {
        let sidecars = match prefetched.take() {
            Some(p) => p.replay(replay),
            None => {
                let location = Path::from(part.location.as_str());
                replay_checkpoint_file(storage, &location, Some(part.size), replay).await?
            }
        };
        for sidecar in &sidecars {
            replay_sidecar(storage, sidecar, replay).await?;
        }
    }
    Ok(())
}

impl Snapshot {
    /// Load the snapshot at `target` (latest when `None`).
    pub(crate) async fn load(storage: Storage, target: Option<Version>) -> Result<Self> {
        let (segment, prefetched) = find_segment_and_prefetch(&storage, target).await?;
        let mut replay = Replay::new(segment.version);
        // Owned futures (no closure borrowing across awaits) keep the load future `Send`.
        let reads: Vec<_> = segment
            .commits
            .iter()
            .rev()
            .cloned()
            .map(|file| {
                let storage = storage.clone();
                async move { read_commit(&storage, &file).await }
            })
            .collect();
        let mut commits = futures::stream::iter(reads).buffered(LOG_READ_CONCURRENCY);
        while let Some((version, actions)) = commits.try_next().await? {
            replay.apply(actions, Some(version));
        }
        drop(commits);
        if !segment.checkpoint.is_empty() {
            replay_checkpoint(&storage, &segment, prefetched, &mut replay).await?;
        }
        let state = replay.finish(storage.url().as_str())?;
        Self::from_state(storage, segment, state)
    }

    fn from_state(storage: Storage, segment: LogSegment, state: TableState) -> Result<Self> {
        check_readable(&state.protocol)?;
        let schema_string = match state.metadata.schema_string.trim() {
            "" => r#"{"type":"struct","fields":[]}"#,
            s => s,
        };
        let schema = StructType::parse(schema_string).map_err(|e| match e {
            Error::Corrupt { reason, .. } => Error::corrupt(
                format!("{}_delta_log (metaData.schemaString)", storage.url()),
                reason,
            ),
            other => other,
        })?;
        let column_mapping = state
            .metadata
            .property("delta.columnMapping.mode")
            .map_or(Ok(ColumnMappingMode::None), ColumnMappingMode::parse)?;
        let arrow_schema = Arc::new(to_arrow_schema(&schema)?);
        Ok(Self {
            inner: Arc::new(Inner {
                storage,
                state,
                segment,
                schema,
                arrow_schema,
                column_mapping,
            }),
        })
    }

    /// The version of this snapshot.
    #[must_use]
    pub fn version(&self) -> Version {
        self.inner.state.version
    }

    /// The protocol in force.
    #[must_use]
    pub fn protocol(&self) -> &Protocol {
        &self.inner.state.protocol
    }

    /// The table metadata in force.
    #[must_use]
    pub fn metadata(&self) -> &Metadata {
        &self.inner.state.metadata
    }

    /// The Delta schema.
    #[must_use]
    pub fn schema(&self) -> &StructType {
        &self.inner.schema
    }

    /// The schema as Arrow (logical column names), partition columns included.
    #[must_use]
    pub fn arrow_schema(&self) -> SchemaRef {
        self.inner.arrow_schema.clone()
    }

    /// The column mapping mode of the table.
    #[must_use]
    pub fn column_mapping(&self) -> ColumnMappingMode {
        self.inner.column_mapping
    }

    /// Logical names of the partition columns.
    #[must_use]
    pub fn partition_columns(&self) -> &[String] {
        &self.inner.state.metadata.partition_columns
    }

    /// The live files, sorted by path.
    #[must_use]
    pub fn files(&self) -> &[Add] {
        &self.inner.state.files
    }

    /// Tombstones still in the log (for VACUUM).
    #[must_use]
    pub fn tombstones(&self) -> &[Remove] {
        &self.inner.state.tombstones
    }

    /// The latest `txn` of each application.
    #[must_use]
    pub fn app_transactions(&self) -> &HashMap<String, Txn> {
        &self.inner.state.txns
    }

    /// Non-removed domain metadata by domain.
    #[must_use]
    pub fn domains(&self) -> &HashMap<String, DomainMetadata> {
        &self.inner.state.domains
    }

    /// The `commitInfo` of this version's commit, when its commit file was replayed.
    #[must_use]
    pub fn commit_info(&self) -> Option<&CommitInfo> {
        self.inner.state.commit_info.as_ref()
    }

    /// The log files this snapshot was built from.
    #[must_use]
    pub fn log_segment(&self) -> &LogSegment {
        &self.inner.segment
    }

    /// The full reconciled state.
    #[must_use]
    pub fn state(&self) -> &TableState {
        &self.inner.state
    }

    /// The storage of the table.
    #[must_use]
    pub(crate) fn storage(&self) -> &Storage {
        &self.inner.storage
    }

    /// The table root URL.
    #[must_use]
    pub fn table_url(&self) -> &url::Url {
        self.inner.storage.url()
    }

    /// The last version application `app_id` recorded with a `txn` action, if any.
    #[must_use]
    pub fn app_transaction_version(&self, app_id: &str) -> Option<i64> {
        self.inner.state.txns.get(app_id).map(|t| t.version)
    }

    /// The value of table property `key`.
    #[must_use]
    pub fn property(&self, key: &str) -> Option<&str> {
        self.inner.state.metadata.property(key)
    }
}
