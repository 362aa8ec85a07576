//! The one error type of the data crate. Every variant says where the problem is
//! (file, line, column, value) and, where it helps, what would have been valid.

use std::path::PathBuf;

/// Errors from reading, cleaning and transforming data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: the file is empty (no header line)")]
    Empty { path: PathBuf },
    #[error("{path}: not a CSV file: {reason}")]
    NotCsv { path: PathBuf, reason: String },
    #[error("{path}: no label column `{label}` in the header (columns: {available})")]
    MissingLabel {
        path: PathBuf,
        label: String,
        available: String,
    },
    #[error(
        "{path}: the format could not be recognised from the header; name the label column with --label COLUMN (columns: {available})"
    )]
    UnknownFormat { path: PathBuf, available: String },
    /// A column named in an option (`drop`, `keep`, `categorical`) that the header
    /// lacks.
    #[error(
        "{path}: `{option}` names the column `{column}`, which is not in the header (columns: {available})"
    )]
    UnknownColumn {
        path: PathBuf,
        column: String,
        /// The option's field in [`crate::IngestOptions`].
        option: &'static str,
        available: String,
    },
    #[error("{path}: no usable data rows ({rejected} rejected)")]
    NoRows { path: PathBuf, rejected: u64 },
    #[error("{path}: the data does not fit the fitted pipeline: missing columns {missing:?}")]
    ColumnsMissing { path: PathBuf, missing: Vec<String> },
    /// The timing features ([`crate::IngestOptions::flow_timing`]) cannot be derived.
    #[error("{path}: the flow timing features need {needs}; {found}")]
    FlowTiming {
        path: PathBuf,
        needs: &'static str,
        found: String,
    },
    /// A setting out of its range, or a combination that cannot run: `field` names the
    /// config field (a command line maps it to its flag), `value` is what was given and
    /// `allowed` what would be valid.
    #[error("invalid setting `{field}` = {value}: must be {allowed}")]
    Invalid {
        field: &'static str,
        value: String,
        allowed: String,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{path}: artifact is not a valid iotids pipeline: {reason}")]
    Artifact { path: PathBuf, reason: String },
}

/// Result with the data crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An [`Error::Invalid`] from its three parts.
    pub fn invalid(
        field: &'static str,
        value: impl std::fmt::Display,
        allowed: impl Into<String>,
    ) -> Self {
        Error::Invalid {
            field,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
