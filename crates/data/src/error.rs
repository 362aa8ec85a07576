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
    #[error("{path}: header names unknown column `{column}` in {option}")]
    UnknownColumn {
        path: PathBuf,
        column: String,
        option: &'static str,
    },
    #[error("{path}: no usable data rows ({rejected} rejected)")]
    NoRows { path: PathBuf, rejected: u64 },
    #[error("{path}: the data does not fit the fitted pipeline: missing columns {missing:?}")]
    ColumnsMissing { path: PathBuf, missing: Vec<String> },
    #[error("{path}: --flow-timing needs {needs}; {found}")]
    FlowTiming {
        path: PathBuf,
        needs: &'static str,
        found: String,
    },
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("{path}: artifact is not a valid iotids pipeline: {reason}")]
    Artifact { path: PathBuf, reason: String },
}

/// Result with the data crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}
