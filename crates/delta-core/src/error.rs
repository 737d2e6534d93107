//! The one error type of delta-core.
//!
//! Each variant says what the caller should do. Messages are lowercase, carry the file,
//! version or action at fault, and never carry row values (tables hold health records).

use std::fmt;

/// A table version: the number of a commit file in `_delta_log`.
pub type Version = u64;

/// Everything that can go wrong in delta-core.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No `_delta_log` (or no commit in it) at the location. Check the URI.
    #[error("not a delta table: {location} has no _delta_log commits")]
    NotATable {
        /// The table root that was looked at.
        location: String,
    },
    /// Time travel to a version that was never written or whose commits were cleaned up.
    #[error("version {requested} is not available: {reason}")]
    VersionNotFound {
        /// The version asked for.
        requested: Version,
        /// Why it cannot be reconstructed (latest version, earliest retained version).
        reason: String,
    },
    /// The table needs a protocol version or feature this crate does not implement.
    #[error("unsupported {kind}: {feature}")]
    Unsupported {
        /// What kind of thing is unsupported (`reader feature`, `reader version`, ...).
        kind: &'static str,
        /// The feature or version named by the table.
        feature: String,
    },
    /// A concurrent commit invalidated this transaction: re-read the table and retry the
    /// operation, or give up.
    #[error("commit conflict with version {winning_version} ({operation}): {reason}")]
    Conflict {
        /// The version the other writer committed first.
        winning_version: Version,
        /// That commit's operation (`WRITE`, `DELETE`, ...).
        operation: String,
        /// What clashes: the file or partition, or the metadata change.
        reason: String,
    },
    /// The commit may or may not have happened (the put failed ambiguously and the slot
    /// could not be read back). Do not delete the files the commit referenced; reload the
    /// table to find out.
    #[error("outcome of commit {version} unknown: {reason}")]
    CommitOutcomeUnknown {
        /// The version the commit tried to write.
        version: Version,
        /// What failed.
        reason: String,
    },
    /// A write would break a table constraint; nothing was committed.
    #[error("constraint {name} violated by {violations} row(s): {expression}")]
    ConstraintViolation {
        /// The constraint (`NOT NULL <column>`, a CHECK name, `delta.appendOnly`).
        name: String,
        /// The constraint's expression.
        expression: String,
        /// How many rows of the write violate it.
        violations: u64,
    },
    /// Changes were asked for over a version at which the table did not record them
    /// (`delta.enableChangeDataFeed` was not true): ask for a range that starts after that
    /// version, or compare snapshots instead.
    #[error(
        "change data was not recorded at version {version} (delta.enableChangeDataFeed was not true), so versions {start} to {end} cannot be read as changes"
    )]
    ChangeDataNotRecorded {
        /// The first version of the range without change data.
        version: Version,
        /// The start of the requested range.
        start: Version,
        /// The end of the requested range.
        end: Version,
    },
    /// The caller passed something invalid: a bad predicate, an unknown column, a bad URI.
    #[error("invalid argument: {message}")]
    InvalidArgument {
        /// What is wrong with the argument.
        message: String,
    },
    /// Bytes in storage violate the Delta protocol. Do not retry; inspect the table.
    #[error("corrupt {path}: {reason}")]
    Corrupt {
        /// The file (log file, checkpoint, data file, deletion vector) at fault.
        path: String,
        /// What is wrong with it (never row values).
        reason: String,
    },
    /// Storage failed; often transient.
    #[error("storage error: {0}")]
    Storage(#[from] object_store::Error),
    /// A parquet file could not be decoded.
    #[error("parquet error in {path}: {source}")]
    Parquet {
        /// The parquet file.
        path: String,
        /// The decoder's error.
        source: parquet::errors::ParquetError,
    },
    /// An arrow kernel failed (type mismatch, overflow).
    #[error("arrow error: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

impl Error {
    /// A [`Error::Corrupt`] for `path`.
    pub(crate) fn corrupt(path: impl fmt::Display, reason: impl Into<String>) -> Self {
        Self::Corrupt {
            path: path.to_string(),
            reason: reason.into(),
        }
    }

    /// An [`Error::InvalidArgument`].
    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidArgument {
            message: message.into(),
        }
    }

    /// A [`Error::Parquet`] for `path`.
    pub(crate) fn parquet(path: impl fmt::Display, source: parquet::errors::ParquetError) -> Self {
        Self::Parquet {
            path: path.to_string(),
            source,
        }
    }
}

/// `Result` with delta-core's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
