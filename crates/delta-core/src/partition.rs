//! Partition values: parsing the strings stored in `add.partitionValues` into typed values.
