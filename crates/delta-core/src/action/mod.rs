//! The protocol vocabulary: actions as plain data plus their JSON codec.
