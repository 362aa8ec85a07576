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
//! `describe` and `audit` read a [`Dataset`] and report on it; `stats` holds the small
//! statistics they share. Generated Edge-IIoTset-schema files for demos and benchmarks
//! come from `iotids-synth`.
//!
//! A new record source (a packet capture, a message queue) is one client of
//! [`ingest::DatasetBuilder`]: give it the column names and push records; the column
//! plan, flows, hosts, timing features and counted rejects come with it, as they do for
//! CSV files ([`read_csv`], [`ingest::read_csv_from`] for any reader, `-` for standard
//! input).

/// `ALL`, `name()`, `Display` and `FromStr` for a field-less enum that settings spell by
/// name, so a command line can parse it (clap's `value_parser!` takes any `FromStr`) and
/// list the choices from one source.
///
/// `FromStr` ignores case and surrounding spaces, reads `_` as `-`, and accepts the
/// aliases after each name; its error is an [`Error::Invalid`] naming the setting and
/// every name.
macro_rules! spelled {
    ($ty:ident, $field:literal, { $($variant:ident => $name:literal $(| $alias:literal)*),+ $(,)? }) => {
        impl $ty {
            /// Every value, in the docs' order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The settings' (and command line's) spelling.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            /// The names `FromStr` accepts (aliases aside), for help texts.
            pub fn allowed() -> String {
                let names: Vec<&str> = Self::ALL.iter().map(|v| v.name()).collect();
                format!("one of {}", names.join(", "))
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = crate::Error;
            fn from_str(s: &str) -> crate::Result<Self> {
                let key = s.trim().to_ascii_lowercase().replace('_', "-");
                match key.as_str() {
                    $($name $(| $alias)* => Ok($ty::$variant),)+
                    _ => Err(crate::Error::invalid($field, s.trim(), Self::allowed())),
                }
            }
        }
    };
}

pub mod audit;
pub mod clean;
pub mod describe;
pub mod error;
pub mod federated;
pub mod ingest;
pub mod pipeline;
pub mod prepare;
pub mod schema;
pub mod split;
pub mod stats;
pub mod table;
pub mod timing;
pub mod value;
pub mod window;

pub use error::{Error, Result};
pub use federated::{FederatedFit, Summary, SummaryRequest, fit_federated};
pub use ingest::{DatasetBuilder, FlowTiming, IngestOptions, read_csv};
pub use schema::Format;
pub use table::{Column, ColumnData, Dataset, IngestReport};
