//! Writing data files: partitioning, parquet encoding and `add` actions with statistics.
