//! `Table`: the entry point. A cheap handle (store + root) that holds no table state, so it
//! cannot go stale; every read loads a [`Snapshot`].

use std::collections::HashMap;
use std::sync::Arc;

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use object_store::path::Path;

use crate::action::{Action, CommitInfo, parse_commit};
use crate::clock::{Clock, SystemClock};
use crate::log::{LogFile, LogPath};
use crate::snapshot::Snapshot;
use crate::storage::Storage;
use crate::transaction::Transaction;
use crate::{Error, Result, Version};

/// How many commit files `history` reads at once.
const HISTORY_READ_CONCURRENCY: usize = 16;

/// A Delta table at a location.
#[derive(Clone, Debug)]
pub struct Table {
    storage: Storage,
    clock: Arc<dyn Clock>,
}

/// One commit as shown by `history`.
#[derive(Clone, Debug, PartialEq)]
pub struct CommitEntry {
    /// The version.
    pub version: Version,
    /// The commit timestamp in ms (in-commit timestamp when present, else file time).
    pub timestamp_ms: i64,
    /// The commit's `commitInfo`, when it has one.
    pub commit_info: Option<CommitInfo>,
}

impl Table {
    /// A table at `location`: a local path or a `file://`, `s3://`, `az://`, `abfss://` or
    /// `gs://` URL; `options` are extra object-store settings. Nothing is read yet.
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] for a bad location or options.
    pub fn open(location: &str, options: &HashMap<String, String>) -> Result<Self> {
        Ok(Self {
            storage: Storage::from_uri(location, options)?,
            clock: Arc::new(SystemClock),
        })
    }

    /// A table inside an existing store (for example `InMemory` in tests).
    ///
    /// # Errors
    /// [`Error::InvalidArgument`] when the URL path is invalid.
    pub fn with_store(store: Arc<dyn ObjectStore>, url: url::Url) -> Result<Self> {
        Ok(Self {
            storage: Storage::new(store, url)?,
            clock: Arc::new(SystemClock),
        })
    }

    pub(crate) fn from_storage(storage: Storage, clock: Arc<dyn Clock>) -> Self {
        Self { storage, clock }
    }

    /// Use `clock` for timestamps and file ids (tests inject a deterministic one).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The clock this table stamps commits with.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub(crate) fn storage(&self) -> &Storage {
        &self.storage
    }

    /// Start a transaction on `snapshot` (its version is the read version).
    pub fn transaction(&self, snapshot: &Snapshot) -> Transaction {
        Transaction::new(
            self.storage.clone(),
            self.clock.clone(),
            Some(snapshot.clone()),
        )
    }

    /// Start the transaction that creates this table (version 0).
    pub fn create_transaction(&self) -> Transaction {
        Transaction::new(self.storage.clone(), self.clock.clone(), None)
    }

    /// The table root URL.
    #[must_use]
    pub fn url(&self) -> &url::Url {
        self.storage.url()
    }

    /// The store holding the table.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        self.storage.store()
    }

    /// Load the latest snapshot.
    ///
    /// # Errors
    /// [`Error::NotATable`] without a log; [`Error::Corrupt`] for a damaged log;
    /// [`Error::Unsupported`] for reader features this crate lacks; storage errors.
    pub async fn snapshot(&self) -> Result<Snapshot> {
        Snapshot::load(self.storage.clone(), None).await
    }

    /// Load the snapshot at `version` (time travel).
    ///
    /// # Errors
    /// As [`Table::snapshot`], plus [`Error::VersionNotFound`] when the version does not
    /// exist or its commits were cleaned up.
    pub async fn snapshot_at(&self, version: Version) -> Result<Snapshot> {
        Snapshot::load(self.storage.clone(), Some(version)).await
    }

    /// Load the latest snapshot whose commit timestamp is at or before `timestamp_ms`.
    ///
    /// Commit timestamps are in-commit timestamps for versions at or after the table's
    /// `delta.inCommitTimestampEnablementVersion` when that feature is on, and the commit
    /// file's modification time otherwise.
    ///
    /// # Errors
    /// [`Error::VersionNotFound`] when the timestamp is before the first retained commit.
    pub async fn snapshot_at_timestamp(&self, timestamp_ms: i64) -> Result<Snapshot> {
        let version = self.version_at_timestamp(timestamp_ms).await?;
        self.snapshot_at(version).await
    }

    /// The version in force at `timestamp_ms` (see [`Table::snapshot_at_timestamp`]).
    ///
    /// # Errors
    /// As [`Table::snapshot_at_timestamp`].
    pub async fn version_at_timestamp(&self, timestamp_ms: i64) -> Result<Version> {
        let latest = self.snapshot().await?;
        let mut commits = self.commit_files().await?;
        commits.sort_by_key(|f| f.log_path.version());
        let ict_from = ict_enablement_version(&latest);
        let found = self
            .commit_at_timestamp(&commits, ict_from, timestamp_ms)
            .await?;
        found
            .map(|(version, _)| version)
            .ok_or_else(|| Error::VersionNotFound {
                requested: 0,
                reason: format!(
                    "timestamp {timestamp_ms} ms is before the earliest retained commit"
                ),
            })
    }

    /// The last commit of `commits` (sorted by version) whose timestamp is at or before
    /// `timestamp_ms`, with that timestamp; `None` when every commit is later. Versions from
    /// `ict_from` on are timed by their in-commit timestamps (monotonic, so found by binary
    /// search, as Spark does), older ones by file modification time.
    pub(crate) async fn commit_at_timestamp(
        &self,
        commits: &[LogFile],
        ict_from: Option<Version>,
        timestamp_ms: i64,
    ) -> Result<Option<(Version, i64)>> {
        let mut best: Option<(Version, i64)> = None;
        // Commits without ICT: file times. Commits with ICT: monotonic, so binary search.
        let split = commits
            .partition_point(|f| ict_from.is_none_or(|e| f.log_path.version().unwrap_or(0) < e));
        for file in &commits[..split] {
            if file.last_modified_ms <= timestamp_ms {
                best = file.log_path.version().map(|v| (v, file.last_modified_ms));
            }
        }
        let ict_part = &commits[split..];
        let (mut lo, mut hi) = (0usize, ict_part.len());
        let mut found = None;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let ts = self.commit_timestamp(&ict_part[mid], true).await?;
            if ts <= timestamp_ms {
                lo = mid + 1;
                found = Some((mid, ts));
            } else {
                hi = mid;
            }
        }
        if lo > 0 {
            let ts = match found {
                Some((mid, ts)) if mid == lo - 1 => ts,
                _ => self.commit_timestamp(&ict_part[lo - 1], true).await?,
            };
            best = ict_part[lo - 1].log_path.version().map(|v| (v, ts));
        }
        Ok(best)
    }

    /// The retained commit files (unordered).
    pub(crate) async fn commit_files(&self) -> Result<Vec<LogFile>> {
        Ok(self
            .storage
            .list_log(None)
            .await?
            .into_iter()
            .filter(|f| matches!(f.log_path, LogPath::Commit(_)))
            .collect())
    }

    pub(crate) async fn commit_timestamp(&self, file: &LogFile, use_ict: bool) -> Result<i64> {
        if !use_ict {
            return Ok(file.last_modified_ms);
        }
        let actions = self.read_commit_file(file).await?;
        Ok(actions
            .iter()
            .find_map(|a| match a {
                Action::CommitInfo(ci) => ci.in_commit_timestamp(),
                _ => None,
            })
            .unwrap_or(file.last_modified_ms))
    }

    async fn read_commit_file(&self, file: &LogFile) -> Result<Vec<Action>> {
        let bytes = self
            .storage
            .read(&Path::from(file.location.as_str()))
            .await?;
        parse_commit(
            &bytes,
            &self.storage.display(&Path::from(file.location.as_str())),
        )
    }

    /// The actions of commit `version`, in file order.
    ///
    /// # Errors
    /// [`Error::VersionNotFound`] when the commit file does not exist; [`Error::Corrupt`]
    /// when it does not parse.
    pub async fn commit_actions(&self, version: Version) -> Result<Vec<Action>> {
        let name = LogPath::Commit(version).file_name();
        let location = self.storage.log_location(&name);
        match self.storage.read_optional(&location).await? {
            Some(bytes) => parse_commit(&bytes, &self.storage.display(&location)),
            None => Err(Error::VersionNotFound {
                requested: version,
                reason: format!("{name} does not exist"),
            }),
        }
    }

    /// The retained commits, newest first, at most `limit` of them.
    ///
    /// # Errors
    /// [`Error::NotATable`] without commits; [`Error::Corrupt`] for unparsable commits.
    pub async fn history(&self, limit: Option<usize>) -> Result<Vec<CommitEntry>> {
        let mut commits = self.commit_files().await?;
        if commits.is_empty() {
            return Err(Error::NotATable {
                location: self.storage.url().to_string(),
            });
        }
        commits.sort_by_key(|f| std::cmp::Reverse(f.log_path.version()));
        commits.truncate(limit.unwrap_or(usize::MAX));
        let reads: Vec<_> = commits
            .into_iter()
            .map(|file| {
                let table = self.clone();
                async move {
                    let actions = table.read_commit_file(&file).await?;
                    let commit_info = actions.into_iter().find_map(|a| match a {
                        Action::CommitInfo(ci) => Some(ci),
                        _ => None,
                    });
                    let timestamp_ms = commit_info
                        .as_ref()
                        .and_then(CommitInfo::in_commit_timestamp)
                        .unwrap_or(file.last_modified_ms);
                    Ok::<_, Error>(CommitEntry {
                        version: file.log_path.version().unwrap_or_default(),
                        timestamp_ms,
                        commit_info,
                    })
                }
            })
            .collect();
        futures::stream::iter(reads)
            .buffered(HISTORY_READ_CONCURRENCY)
            .try_collect()
            .await
    }
}

impl Table {
    /// Write a classic checkpoint of `snapshot` (`<v>.checkpoint.parquet`) and point
    /// `_last_checkpoint` at it. Readers then start from it instead of replaying commits.
    ///
    /// # Errors
    /// Storage errors; the table stays readable whatever happens (a checkpoint is only
    /// ever an accelerator and is written after its commit exists).
    pub async fn checkpoint(&self, snapshot: &Snapshot) -> Result<()> {
        let bytes = crate::checkpoint::encode_checkpoint(snapshot.state())?;
        let hint_location = self.storage.log_location("_last_checkpoint");
        let size = bytes.len();
        let version = snapshot.version();
        let name = LogPath::Checkpoint {
            version,
            kind: crate::log::CheckpointKind::Classic,
        }
        .file_name();
        self.storage
            .put(&self.storage.log_location(&name), bytes.into())
            .await?;
        let actions = snapshot.files().len()
            + snapshot.tombstones().len()
            + snapshot.app_transactions().len()
            + snapshot.domains().len()
            + 2;
        let hint = serde_json::json!({
            "version": version,
            "size": actions,
            "sizeInBytes": size,
            "numOfAddFiles": snapshot.files().len(),
        });
        // Never move the hint backwards (a forced checkpoint of an older snapshot racing a
        // newer automatic one): an older hint is only slower, but there is no reason for it.
        let current = self
            .storage
            .read_optional(&hint_location)
            .await
            .ok()
            .flatten()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("version").and_then(serde_json::Value::as_u64));
        if current.is_some_and(|c| c > version) {
            return Ok(());
        }
        self.storage
            .put(&hint_location, hint.to_string().into_bytes().into())
            .await
    }
}

/// Default `delta.logRetentionDuration`: 30 days.
const DEFAULT_LOG_RETENTION_MS: i64 = 30 * 24 * 3600 * 1000;

/// Parse a Spark interval such as `interval 30 days` or `interval 12 hours` into ms.
pub(crate) fn parse_interval_ms(text: &str) -> Option<i64> {
    let mut words = text.split_whitespace();
    let first = words.next()?;
    let (number, unit) = if first.eq_ignore_ascii_case("interval") {
        (words.next()?, words.next()?)
    } else {
        (first, words.next()?)
    };
    let n: i64 = number.parse().ok()?;
    let unit_ms: i64 = match unit.to_ascii_lowercase().trim_end_matches('s') {
        "millisecond" => 1,
        "second" => 1000,
        "minute" => 60_000,
        "hour" => 3_600_000,
        "day" => 86_400_000,
        "week" => 7 * 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms)
}

impl Table {
    /// Delete log files that are older than `delta.logRetentionDuration` (30 days) and no
    /// longer needed: commits, checkpoints and checksums below the newest checkpoint whose
    /// commit is older than the cut-off. Every version inside the window stays
    /// reconstructable. Called after writing the checkpoint of `snapshot`; it lists the log
    /// only then, never on every commit.
    ///
    /// # Errors
    /// Storage errors (the table stays readable whatever was deleted).
    pub async fn cleanup_expired_logs(&self, snapshot: &Snapshot) -> Result<usize> {
        let enabled = snapshot
            .property("delta.enableExpiredLogCleanup")
            .is_none_or(|v| !v.eq_ignore_ascii_case("false"));
        if !enabled {
            return Ok(0);
        }
        let retention = snapshot
            .property("delta.logRetentionDuration")
            .and_then(parse_interval_ms)
            .unwrap_or(DEFAULT_LOG_RETENTION_MS);
        let cutoff = self.clock.now_ms().saturating_sub(retention);
        let files = self.storage.list_log(None).await?;
        // The newest checkpoint whose own commit is older than the cut-off: everything
        // before it can go, since every version from it on replays from it.
        let commit_time: std::collections::HashMap<Version, i64> = files
            .iter()
            .filter_map(|f| match f.log_path {
                LogPath::Commit(v) => Some((v, f.last_modified_ms)),
                _ => None,
            })
            .collect();
        let boundary = files
            .iter()
            .filter_map(|f| match &f.log_path {
                LogPath::Checkpoint { version, .. }
                    if *version <= snapshot.version()
                        && commit_time.get(version).is_some_and(|t| *t <= cutoff) =>
                {
                    Some(*version)
                }
                _ => None,
            })
            .max();
        let Some(boundary) = boundary else {
            return Ok(0);
        };
        let mut expired: Vec<&LogFile> = files
            .iter()
            .filter(|file| {
                let below = match &file.log_path {
                    LogPath::Commit(v) | LogPath::Checksum(v) => *v < boundary,
                    LogPath::Checkpoint { version, .. } => *version < boundary,
                    LogPath::Compaction { end, .. } => *end < boundary,
                    LogPath::LastCheckpoint => false,
                };
                below && file.last_modified_ms <= cutoff
            })
            .collect();
        // Oldest first (in one bulk request per 1000 on S3): a reader of an expiring
        // version then finds it gone rather than missing commits in its middle. Versions
        // from the boundary on replay from its checkpoint whatever is deleted.
        expired.sort_by_key(|file| file.log_path.version());
        let deleted = self
            .storage
            .delete_many(
                expired
                    .iter()
                    .map(|file| Path::from(file.location.as_str()))
                    .collect(),
            )
            .await?;
        tracing::debug!(boundary, deleted, "cleaned up expired log files");
        Ok(deleted)
    }
}

/// The first version whose commit timestamps are in-commit timestamps, when enabled.
pub(crate) fn ict_enablement_version(snapshot: &Snapshot) -> Option<Version> {
    let enabled = snapshot
        .property("delta.enableInCommitTimestamps")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !enabled {
        return None;
    }
    Some(
        snapshot
            .property("delta.inCommitTimestampEnablementVersion")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    )
}
