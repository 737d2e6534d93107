//! The EHR medallion pipeline: the source contract, the synthetic generator, and the layers.
//!
//! - [`contract`]: the six source entities and their fields.
//! - [`synth`]: `medilake generate`, a seeded, streaming, deliberately dirty generator.
//! - [`bronze`]: raw records plus provenance, one Delta table per entity, exactly once per
//!   source file (Delta app transactions).
//!
//! Silver and gold live in [`crate::silver`] and [`crate::gold`].

pub mod bronze;
pub(crate) mod codes;
pub mod contract;
pub mod optimize;
pub mod synth;
