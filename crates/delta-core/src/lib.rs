//! delta-core: a from-scratch implementation of the Delta Lake protocol.
//!
//! Built on `arrow`, `parquet` and `object_store`. See ARCHITECTURE.md at the repository root
//! for the layers and invariants.
//!
//! ```no_run
//! # async fn example() -> delta_core::Result<()> {
//! use delta_core::Table;
//! let table = Table::open("data/sample/patients", &Default::default())?;
//! let snapshot = table.snapshot().await?;
//! println!("version {} has {} files", snapshot.version(), snapshot.files().len());
//! # Ok(()) }
//! ```

pub mod action;
mod changes;
mod checkpoint;
pub mod clock;
mod clustering;
pub mod column_mapping;
pub mod deletion_vector;
mod error;
pub mod expression;
pub mod log;
mod merge;
mod operations;
mod optimize;
pub(crate) mod partition;
mod rewrite;
pub mod scan;
pub mod schema;
mod snapshot;
pub(crate) mod stats;
pub(crate) mod storage;
mod table;
pub mod table_features;
#[cfg(feature = "test-util")]
pub mod testing;
mod transaction;
mod vacuum;
pub(crate) mod write;

pub use changes::{
    CHANGE_TYPE_COLUMN, COMMIT_TIMESTAMP_COLUMN, COMMIT_VERSION_COLUMN, ChangeBound, ChangeCommit,
    ChangeScan, ChangeSource,
};
pub use clustering::{ClusteringReport, ProbeStats};
pub use error::{Error, Result, Version};
pub use log::conflict::IsolationLevel;
pub use merge::{
    MatchedAction, MergeBuilder, MergeClause, MergeReport, NotMatchedAction,
    NotMatchedBySourceAction,
};
pub use operations::{OperationReport, SaveMode, WriteBuilder};
pub use optimize::{Bin, CLUSTERING_TAG, Curve, OptimizeBuilder, OptimizeReport};
pub use snapshot::Snapshot;
pub use table::{CommitEntry, Table};
pub use transaction::{Committed, ENGINE_INFO, Transaction};
pub use vacuum::{VacuumBuilder, VacuumReport};

/// Where unit tests find the shared conformance tables.
#[cfg(test)]
pub(crate) mod fixtures {
    /// `MEDILAKE_CONFORMANCE_DIR` when set (as `./test.sh` and CI set it), else the
    /// `shared/conformance` folder beside the repository.
    pub(crate) fn conformance_root() -> std::path::PathBuf {
        std::env::var_os("MEDILAKE_CONFORMANCE_DIR").map_or_else(
            || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/conformance"),
            std::path::PathBuf::from,
        )
    }
}
