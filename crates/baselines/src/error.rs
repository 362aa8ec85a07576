//! What can go wrong while comparing models.

/// A comparison error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A model could not be fitted or could not score (the crate's reason).
    #[error("{0}")]
    Fit(String),
    /// A setting is out of range.
    #[error("{field} = {value}: {allowed}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What it was.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// The deep models' training.
    #[error(transparent)]
    Model(#[from] iotids_model::Error),
}
