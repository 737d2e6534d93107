//! The predicate language: SQL boolean expressions parsed with sqlparser, evaluated with arrow kernels.
