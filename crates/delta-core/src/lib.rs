//! delta-core: a from-scratch implementation of the Delta Lake protocol.
//!
//! Built on `arrow`, `parquet` and `object_store`. See ARCHITECTURE.md at the repository root
//! for the layers and invariants.

pub mod action;
pub mod deletion_vector;
mod error;
pub mod expression;
pub mod log;
pub(crate) mod partition;
pub mod scan;
pub mod schema;
pub(crate) mod storage;

pub use error::{Error, Result, Version};
