//! Scans: planning (pure pruning over partition values and statistics) and execution.

pub mod prune;
