//! Per-file statistics: collecting `numRecords`, `minValues`, `maxValues` and `nullCount` while writing.
