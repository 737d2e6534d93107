//! Transactions: staging actions and committing them atomically with optimistic concurrency.
//!
//! A [`Transaction`] owns its read snapshot (version `r`). [`Transaction::commit`] writes
//! `_delta_log/<r+1>.json` with put-if-absent. When another writer took the slot, the
//! winning commits are read and checked by [`crate::log::conflict::check`]; without a
//! conflict the transaction is rebased onto the newer version and retried (bounded, with
//! backoff and jitter), otherwise it fails with [`Error::Conflict`]. A put that fails
//! ambiguously (the object may or may not exist) is settled by reading the slot back and
//! comparing the `txnId` in its `commitInfo`. After a successful commit a checkpoint is
//! written every `delta.checkpointInterval` versions and expired log files are cleaned up.
//!
//! Crash safety: data files are written before the commit and are invisible until the
//! commit file exists; the commit file appears whole or not at all, so a crash at any
//! point leaves the table at version `r` or `r + 1`.

use std::sync::Arc;
use std::time::Duration;

use crate::action::{
    Action, Add, CommitInfo, Metadata, Protocol, Txn, format_commit, parse_commit,
};
use crate::clock::Clock;
use crate::log::LogPath;
use crate::log::conflict::{IsolationLevel, ReadFootprint, check};
use crate::snapshot::Snapshot;
use crate::storage::{PutOutcome, Storage};
use crate::table_features::check_writable;
use crate::{Error, Result, Version};

/// The engine name recorded in `commitInfo.engineInfo`.
pub const ENGINE_INFO: &str = concat!("medilake/", env!("CARGO_PKG_VERSION"));

/// Default number of commit attempts before giving up on a contended table.
const DEFAULT_MAX_ATTEMPTS: u32 = 100;
/// First retry delay; doubles per attempt up to [`MAX_BACKOFF_MS`], with jitter.
const BASE_BACKOFF_MS: u64 = 2;
/// Upper bound of one retry delay.
const MAX_BACKOFF_MS: u64 = 250;

/// The result of a successful commit.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Committed {
    /// The version that was written.
    pub version: Version,
    /// How many put attempts it took (1 when uncontended).
    pub attempts: u32,
    /// Whether a checkpoint was written after the commit.
    pub checkpointed: bool,
}

/// Staged changes to a table, committed atomically by [`Transaction::commit`].
#[derive(Debug)]
#[must_use]
pub struct Transaction {
    storage: Storage,
    clock: Arc<dyn Clock>,
    read_snapshot: Option<Snapshot>,
    actions: Vec<Action>,
    operation: String,
    parameters: serde_json::Map<String, serde_json::Value>,
    metrics: serde_json::Map<String, serde_json::Value>,
    footprint: ReadFootprint,
    read_predicate: Option<crate::expression::Expression>,
    max_attempts: u32,
}

impl Transaction {
    pub(crate) fn new(
        storage: Storage,
        clock: Arc<dyn Clock>,
        read_snapshot: Option<Snapshot>,
    ) -> Self {
        Self {
            storage,
            clock,
            read_snapshot,
            actions: Vec::new(),
            operation: "WRITE".to_owned(),
            parameters: serde_json::Map::new(),
            metrics: serde_json::Map::new(),
            footprint: ReadFootprint::default(),
            read_predicate: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
        }
    }

    /// The snapshot this transaction read (`None` when it creates the table).
    #[must_use]
    pub fn read_snapshot(&self) -> Option<&Snapshot> {
        self.read_snapshot.as_ref()
    }

    /// Name the operation (`WRITE`, `DELETE`, ...) recorded in `commitInfo`.
    pub fn with_operation(mut self, operation: impl Into<String>) -> Self {
        self.operation = operation.into();
        self
    }

    /// Record an operation parameter (Spark stores them as strings).
    pub fn with_parameter(mut self, key: &str, value: impl Into<String>) -> Self {
        self.parameters
            .insert(key.to_owned(), serde_json::Value::String(value.into()));
        self
    }

    /// Record an operation metric.
    pub fn with_metric(mut self, key: &str, value: u64) -> Self {
        self.metrics
            .insert(key.to_owned(), serde_json::Value::String(value.to_string()));
        self
    }

    /// Bound the number of commit attempts.
    pub fn with_max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Stage `add` actions (new data files).
    pub fn add_files(&mut self, adds: impl IntoIterator<Item = Add>) {
        self.actions.extend(adds.into_iter().map(Action::Add));
    }

    /// Stage `cdc` actions (change data files of this commit, PROTOCOL.md §12).
    pub fn add_change_files(&mut self, files: impl IntoIterator<Item = crate::action::Cdc>) {
        self.actions.extend(files.into_iter().map(Action::Cdc));
    }

    /// Stage the removal of files this transaction read (copy-on-write rewrite or delete).
    pub fn remove_files(&mut self, files: impl IntoIterator<Item = Add>, data_change: bool) {
        let now = self.clock.now_ms();
        for add in files {
            let path = crate::log::canonical_path(&add.path);
            self.footprint.read_files.insert(path.clone());
            self.footprint.removed_files.insert(path);
            self.actions.push(Action::Remove(crate::action::Remove {
                path: add.path,
                deletion_timestamp: Some(now),
                data_change,
                extended_file_metadata: Some(true),
                partition_values: Some(add.partition_values),
                size: Some(add.size),
                stats: add.stats,
                tags: add.tags,
                deletion_vector: add.deletion_vector,
                base_row_id: add.base_row_id,
                default_row_commit_version: add.default_row_commit_version,
            }));
        }
    }

    /// Declare that this transaction read table data selected by `predicate` (`None` =
    /// the whole table): concurrent commits adding matching rows may conflict.
    pub fn read_data(
        &mut self,
        predicate: Option<crate::expression::Expression>,
        files: impl IntoIterator<Item = String>,
    ) {
        self.footprint.reads_data = true;
        self.read_predicate = predicate;
        self.footprint
            .read_files
            .extend(files.into_iter().map(|p| crate::log::canonical_path(&p)));
    }

    /// Stage new metadata (schema, partitioning, properties).
    pub fn set_metadata(&mut self, metadata: Metadata) {
        self.footprint.changes_metadata = true;
        self.actions.push(Action::Metadata(metadata));
    }

    /// Stage a new protocol.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.footprint.changes_metadata = true;
        self.actions.push(Action::Protocol(protocol));
    }

    /// Record that application `app_id` has committed its own `version` (idempotent
    /// writes: ask [`Snapshot::app_transaction_version`] before redoing work).
    pub fn set_app_transaction(&mut self, app_id: impl Into<String>, version: i64) {
        let app_id = app_id.into();
        self.footprint.app_ids.insert(app_id.clone());
        let last_updated = Some(self.clock.now_ms());
        self.actions.push(Action::Txn(Txn {
            app_id,
            version,
            last_updated,
        }));
    }

    /// The staged actions.
    #[must_use]
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    fn is_blind_append(&self) -> bool {
        !self.footprint.reads_data
            && !self.footprint.changes_metadata
            && self.actions.iter().all(|a| {
                matches!(a, Action::Add(add) if add.data_change) || matches!(a, Action::Txn(_))
            })
    }

    fn commit_info(
        &self,
        read_version: Option<Version>,
        txn_id: &str,
        ict: Option<i64>,
    ) -> CommitInfo {
        let mut map = serde_json::Map::new();
        let now = self.clock.now_ms();
        if let Some(ict) = ict {
            map.insert("inCommitTimestamp".into(), ict.into());
        }
        map.insert("timestamp".into(), ict.unwrap_or(now).into());
        map.insert("operation".into(), self.operation.clone().into());
        map.insert(
            "operationParameters".into(),
            serde_json::Value::Object(self.parameters.clone()),
        );
        if let Some(v) = read_version {
            map.insert("readVersion".into(), v.into());
        }
        let isolation = self
            .read_snapshot
            .as_ref()
            .and_then(|s| IsolationLevel::from_property(s.property("delta.isolationLevel")).ok())
            .unwrap_or_default();
        map.insert("isolationLevel".into(), isolation.as_str().into());
        map.insert("isBlindAppend".into(), self.is_blind_append().into());
        map.insert(
            "operationMetrics".into(),
            serde_json::Value::Object(self.metrics.clone()),
        );
        map.insert("engineInfo".into(), ENGINE_INFO.into());
        map.insert("txnId".into(), txn_id.into());
        CommitInfo(map)
    }

    /// The protocol and metadata the commit will be under (staged ones win).
    fn effective_protocol_metadata(&self) -> (Option<&Protocol>, Option<&Metadata>) {
        let staged_protocol = self.actions.iter().rev().find_map(|a| match a {
            Action::Protocol(p) => Some(p),
            _ => None,
        });
        let staged_metadata = self.actions.iter().rev().find_map(|a| match a {
            Action::Metadata(m) => Some(m),
            _ => None,
        });
        (
            staged_protocol.or(self.read_snapshot.as_ref().map(Snapshot::protocol)),
            staged_metadata.or(self.read_snapshot.as_ref().map(Snapshot::metadata)),
        )
    }

    /// Commit the staged actions as the next version.
    ///
    /// # Errors
    /// [`Error::Conflict`] when a concurrent commit invalidates this transaction;
    /// [`Error::Unsupported`] when the table has writer features this crate lacks;
    /// [`Error::InvalidArgument`] when the store cannot create-if-absent; storage errors
    /// when attempts run out.
    pub async fn commit(self) -> Result<Committed> {
        self.storage.check_commits()?;
        let (protocol, metadata) = self.effective_protocol_metadata();
        let protocol =
            protocol.ok_or_else(|| Error::invalid("a new table needs a protocol action"))?;
        let metadata =
            metadata.ok_or_else(|| Error::invalid("a new table needs a metaData action"))?;
        check_writable(protocol, metadata)?;
        let ict_enabled = metadata
            .property("delta.enableInCommitTimestamps")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let checkpoint_interval: u64 = metadata
            .property("delta.checkpointInterval")
            .and_then(|v| v.parse().ok())
            .filter(|v| *v > 0)
            .unwrap_or(10);
        let isolation = IsolationLevel::from_property(metadata.property("delta.isolationLevel"))?;
        if metadata
            .property("delta.appendOnly")
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
            && self
                .actions
                .iter()
                .any(|a| matches!(a, Action::Remove(r) if r.data_change))
        {
            return Err(Error::ConstraintViolation {
                name: "delta.appendOnly".to_owned(),
                expression: "delta.appendOnly = true".to_owned(),
                violations: u64::try_from(
                    self.actions
                        .iter()
                        .filter(|a| matches!(a, Action::Remove(r) if r.data_change))
                        .count(),
                )
                .unwrap_or(u64::MAX),
            });
        }
        let read_version = self.read_snapshot.as_ref().map(Snapshot::version);
        let mut version = read_version.map_or(0, |v| v + 1);
        let txn_id = self.clock.unique_id().to_string();
        let mut previous_ict = self
            .read_snapshot
            .as_ref()
            .and_then(|s| s.commit_info().and_then(CommitInfo::in_commit_timestamp));
        // A writer whose read version fell behind a checkpoint whose earlier commits were
        // cleaned up must not write into the cleaned-up range: readers start from the
        // checkpoint and would never see it.
        if let Some(read) = read_version
            && let Some(hint) = self.checkpoint_hint().await
            && hint > read
        {
            let still_there = self
                .storage
                .read_optional(
                    &self
                        .storage
                        .log_location(&LogPath::Commit(read + 1).file_name()),
                )
                .await?
                .is_some()
                || hint < version;
            if !still_there {
                return Err(Error::Conflict {
                    winning_version: hint,
                    operation: "CHECKPOINT".to_owned(),
                    reason: format!(
                        "the table moved to version {hint} and the commits after this transaction's read version {read} were cleaned up; reload the table and retry"
                    ),
                });
            }
        }
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let ict = ict_enabled.then(|| {
                let now = self.clock.now_ms();
                previous_ict.map_or(now, |p| now.max(p + 1))
            });
            let mut actions = Vec::with_capacity(self.actions.len() + 1);
            actions.push(Action::CommitInfo(self.commit_info(
                read_version,
                &txn_id,
                ict,
            )));
            actions.extend(self.actions.iter().cloned());
            let bytes = format_commit(&actions);
            let location = self
                .storage
                .log_location(&LogPath::Commit(version).file_name());
            let outcome = match self.storage.put_if_absent(&location, bytes.into()).await {
                Ok(outcome) => outcome,
                Err(Error::Storage(e)) => {
                    // Ambiguous: the object may have been written. Read the slot back.
                    tracing::warn!(version, error = %e, "ambiguous commit put; reading the slot back");
                    match self.storage.read_optional(&location).await {
                        Ok(None) if attempts < self.max_attempts => continue,
                        Ok(None) => return Err(Error::Storage(e)),
                        Ok(Some(_)) => PutOutcome::AlreadyExists,
                        Err(read_error) => {
                            return Err(Error::CommitOutcomeUnknown {
                                version,
                                reason: format!(
                                    "the put failed ({e}) and reading the slot back failed ({read_error})"
                                ),
                            });
                        }
                    }
                }
                Err(e) => return Err(e),
            };
            match outcome {
                PutOutcome::Written => {
                    tracing::debug!(version, attempts, "committed");
                    if attempts == 1 {
                        self.write_checksum(version, &txn_id, ict).await;
                    }
                    let checkpointed = self.after_commit(version, checkpoint_interval).await;
                    return Ok(Committed {
                        version,
                        attempts,
                        checkpointed,
                    });
                }
                PutOutcome::AlreadyExists => {
                    let bytes = match self.storage.read(&location).await {
                        Ok(b) => b,
                        Err(e) => {
                            return Err(Error::CommitOutcomeUnknown {
                                version,
                                reason: format!(
                                    "version {version} exists but cannot be read back ({e})"
                                ),
                            });
                        }
                    };
                    let winner = parse_commit(&bytes, &self.storage.display(&location))?;
                    // A put that timed out may have landed after all: that commit is ours.
                    let is_ours = winner.iter().any(|a| {
                        matches!(a, Action::CommitInfo(ci) if ci.0.get("txnId").and_then(serde_json::Value::as_str) == Some(txn_id.as_str()))
                    });
                    if is_ours {
                        tracing::debug!(
                            version,
                            attempts,
                            "committed (recognised after an ambiguous put)"
                        );
                        let checkpointed = self.after_commit(version, checkpoint_interval).await;
                        return Ok(Committed {
                            version,
                            attempts,
                            checkpointed,
                        });
                    }
                    if read_version.is_none() {
                        return Err(Error::Conflict {
                            winning_version: version,
                            operation: "CREATE TABLE".to_owned(),
                            reason: "the table was created concurrently".to_owned(),
                        });
                    }
                    {
                        let matches_read = |add: &Add| -> bool {
                            match (&self.read_snapshot, &self.read_predicate) {
                                (Some(snapshot), Some(predicate)) => {
                                    snapshot.file_may_match(predicate, add)
                                }
                                _ => true,
                            }
                        };
                        check(&self.footprint, isolation, version, &winner, &matches_read)?;
                    }
                    previous_ict = winner
                        .iter()
                        .find_map(|a| match a {
                            Action::CommitInfo(ci) => ci.in_commit_timestamp(),
                            _ => None,
                        })
                        .or(previous_ict);
                    if attempts >= self.max_attempts {
                        return Err(Error::Conflict {
                            winning_version: version,
                            operation: "concurrent commits".to_owned(),
                            reason: format!(
                                "gave up after {attempts} attempts on a contended table"
                            ),
                        });
                    }
                    version += 1;
                    self.backoff(attempts).await;
                }
            }
        }
    }

    /// The version `_last_checkpoint` names, if it is readable.
    async fn checkpoint_hint(&self) -> Option<Version> {
        let bytes = self
            .storage
            .read_optional(&self.storage.log_location("_last_checkpoint"))
            .await
            .ok()
            .flatten()?;
        serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()?
            .get("version")?
            .as_u64()
    }

    async fn backoff(&self, attempts: u32) {
        let exp = BASE_BACKOFF_MS.saturating_mul(1u64 << attempts.min(8));
        let cap = exp.min(MAX_BACKOFF_MS);
        let jitter = self.clock.unique_id().as_u64_pair().1 % cap.max(1);
        tokio::time::sleep(Duration::from_millis(cap / 2 + jitter / 2)).await;
    }

    /// Write the version checksum `<v>.crc` when it is cheap: the commit applied directly on
    /// top of the read snapshot, so the new state is that snapshot plus our actions. Never
    /// overwrites (put-if-absent) and never fails the commit.
    async fn write_checksum(&self, version: Version, txn_id: &str, ict: Option<i64>) {
        let (Some(protocol), Some(metadata)) = self.effective_protocol_metadata() else {
            return;
        };
        let key = |path: &str, dv: Option<&crate::deletion_vector::DeletionVectorDescriptor>| {
            (
                crate::log::canonical_path(path),
                dv.map(crate::deletion_vector::DeletionVectorDescriptor::unique_id),
            )
        };
        let mut live: std::collections::HashMap<_, i64> = self
            .read_snapshot
            .as_ref()
            .map(|s| {
                s.files()
                    .iter()
                    .map(|a| (key(&a.path, a.deletion_vector.as_ref()), a.size))
                    .collect()
            })
            .unwrap_or_default();
        for action in &self.actions {
            match action {
                Action::Remove(r) => {
                    live.remove(&key(&r.path, r.deletion_vector.as_ref()));
                }
                Action::Add(a) => {
                    let path_key = key(&a.path, a.deletion_vector.as_ref());
                    live.retain(|k, _| k.0 != path_key.0);
                    live.insert(path_key, a.size);
                }
                _ => {}
            }
        }
        let mut crc = serde_json::json!({
            "txnId": txn_id,
            "tableSizeBytes": live.values().sum::<i64>(),
            "numFiles": live.len(),
            "numMetadata": 1,
            "numProtocol": 1,
            "metadata": metadata,
            "protocol": protocol,
        });
        if let (Some(ict), Some(map)) = (ict, crc.as_object_mut()) {
            map.insert("inCommitTimestampOpt".to_owned(), ict.into());
        }
        let location = self
            .storage
            .log_location(&LogPath::Checksum(version).file_name());
        if let Err(e) = self
            .storage
            .put_if_absent(&location, crc.to_string().into_bytes().into())
            .await
        {
            tracing::debug!(version, error = %e, "version checksum not written");
        }
    }

    /// Post-commit work that must never fail the commit: checkpoint and log cleanup.
    async fn after_commit(&self, version: Version, interval: u64) -> bool {
        if version == 0 || !version.is_multiple_of(interval) {
            return false;
        }
        let table = crate::Table::from_storage(self.storage.clone(), self.clock.clone());
        match table.snapshot_at(version).await {
            Ok(snapshot) => match table.checkpoint(&snapshot).await {
                Ok(()) => {
                    if let Err(e) = table.cleanup_expired_logs(&snapshot).await {
                        tracing::warn!(version, error = %e, "log cleanup failed");
                    }
                    true
                }
                Err(e) => {
                    tracing::warn!(version, error = %e, "checkpoint failed; the table stays readable");
                    false
                }
            },
            Err(e) => {
                tracing::warn!(version, error = %e, "could not load the new version to checkpoint it");
                false
            }
        }
    }
}
