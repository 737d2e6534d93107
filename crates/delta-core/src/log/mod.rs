//! The transaction log: file naming, log segments, replay into table state.
