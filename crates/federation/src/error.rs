//! What can go wrong in a federation: a bad config, a peer or link that breaks the
//! protocol, or the model's and data's own errors.

use std::fmt::Display;

/// Errors of iotids-federation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// A peer or a link broke the protocol: an update for another round, of another
    /// length, from a peer not asked, or twice.
    #[error("{peer} sent {problem}: expected {expected}")]
    Protocol {
        /// Who (`device 3`, `edge 1`, or a link).
        peer: String,
        /// What it sent.
        problem: String,
        /// What was allowed.
        expected: String,
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
