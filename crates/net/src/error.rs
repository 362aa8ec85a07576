//! Errors of the networked roles.

use std::path::PathBuf;

/// What stops a node.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file that can't be read or written (certificates, checkpoints, data).
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A certificate or key that can't be used.
    #[error("{what}: {reason}")]
    Tls {
        /// Which certificate or key.
        what: String,
        /// Why.
        reason: String,
    },
    /// A setting out of its range.
    #[error("{flag} = {value}: must be {allowed}")]
    Config {
        /// The flag or setting.
        flag: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// The peer broke the protocol or refused us.
    #[error("{peer}: {reason}")]
    Peer {
        /// Who.
        peer: String,
        /// What happened.
        reason: String,
    },
    /// The round logic failed.
    #[error(transparent)]
    Federation(#[from] iotids_federation::Error),
    /// Data could not be read or prepared.
    #[error(transparent)]
    Data(#[from] iotids_data::Error),
    /// The model failed.
    #[error(transparent)]
    Model(#[from] iotids_model::Error),
    /// The transport failed.
    #[error("transport: {0}")]
    Transport(String),
}

impl Error {
    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Error {
        Error::File {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn tls(what: impl Into<String>, reason: impl std::fmt::Display) -> Error {
        Error::Tls {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn config(
        flag: &'static str,
        value: impl std::fmt::Display,
        allowed: impl Into<String>,
    ) -> Error {
        Error::Config {
            flag,
            value: value.to_string(),
            allowed: allowed.into(),
        }
    }
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, Error>;
