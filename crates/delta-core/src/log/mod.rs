//! The transaction log: file naming, log segments, replay into table state.
//!
//! Everything here is pure (no I/O, no clock): the snapshot module feeds it listings and
//! parsed actions.

pub mod conflict;
pub mod path;
pub mod replay;
pub mod segment;

pub use path::{CheckpointKind, LogPath};
pub use replay::{Replay, TableState, canonical_path};
pub use segment::{LogFile, LogSegment, build_segment};
