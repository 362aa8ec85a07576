//! What can go wrong in a federation: a bad config, or the model's and data's own errors.

use std::fmt::Display;

/// Errors of iotids-federation.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting out of its range, or a combination that can't run.
    #[error("federation setting `{field}` = {value}: must be {allowed}")]
    Config {
        /// The setting (as the config file and the command line name it).
        field: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// A config file that can't be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        reason: String,
    },
    /// The data could not be windowed.
    #[error(transparent)]
    Data(#[from] iotids_data::Error),
    /// Training or scoring failed.
    #[error(transparent)]
    Model(#[from] iotids_model::Error),
}

impl Error {
    /// A [`Error::Config`].
    pub fn config(field: &'static str, value: impl Display, allowed: impl Into<String>) -> Error {
        Error::Config {
            field,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

/// Results of iotids-federation.
pub type Result<T> = std::result::Result<T, Error>;
