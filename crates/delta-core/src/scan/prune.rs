//! Three-valued pruning of files by partition values and per-file statistics. Pure: no I/O.
