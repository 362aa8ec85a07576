//! The data side of iotids: read labelled IoT traffic tables, clean them the way
//! careful researchers do, describe and audit them, and turn them into feature
//! matrices with a fitted, saved preprocessing pipeline.
//!
//! Data flows one way through this crate:
//!
//! ```text
//! ingest (CSV -> Dataset) -> clean (duplicates, outliers) -> split (train/val/test)
//!        -> pipeline (encode, impute, scale, select; fitted on train only) -> matrix
//! ```
//!
//! `describe` and `audit` read a [`Dataset`] and report on it. Generated
//! Edge-IIoTset-schema files for demos and benchmarks come from `iotids-synth`.

pub mod audit;
pub mod clean;
pub mod describe;
pub mod error;
pub mod ingest;
pub mod pipeline;
pub mod prepare;
pub mod schema;
pub mod split;
pub mod table;
pub mod timing;
pub mod value;
pub mod window;

pub use error::{Error, Result};
pub use ingest::{IngestOptions, read_csv};
pub use schema::Format;
pub use table::{Column, ColumnData, Dataset, IngestReport};
