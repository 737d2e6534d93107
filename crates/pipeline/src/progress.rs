//! Progress of the silver and gold stages, table by table, for the CLI to show as bars on a
//! terminal or as plain lines otherwise. Events carry table names and counts, never values.

/// One step of a silver or gold table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepProgress {
    /// A table starts: about `rows` rows to read (from the files' statistics).
    Start {
        /// `silver.encounters_clean`, or the silver table gold is reading.
        table: String,
        /// Rows to read.
        rows: u64,
        /// What is being done (`conforming new bronze rows`).
        what: &'static str,
    },
    /// Rows read since the last event.
    Rows {
        /// The table.
        table: String,
        /// Rows.
        rows: u64,
    },
    /// The table is done.
    Done {
        /// The table.
        table: String,
        /// The outcome in a few words (`version 3`, `unchanged`).
        outcome: String,
    },
}

/// Where progress events go.
pub type StepFn = dyn Fn(StepProgress) + Send + Sync;

/// A sink that drops every event.
pub fn quiet(_: StepProgress) {}
