//! The crate's one error type: what was wrong and what would have been valid.

/// What went wrong building or loading a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value outside its allowed range.
    #[error("invalid model config: {field} = {value}; {allowed}")]
    Config {
        /// The config field.
        field: &'static str,
        /// The value given.
        value: String,
        /// What would have been valid.
        allowed: &'static str,
    },
    /// A weight vector whose length does not fit the layer it is loaded into.
    #[error("weight {name} of GRU layer {layer}: expected {expected} values ({shape}), got {got}")]
    WeightShape {
        /// Layer index, from 0 at the input.
        layer: usize,
        /// PyTorch's name of the weight (`weight_ih`, `weight_hh`, `bias_ih`, `bias_hh`).
        name: &'static str,
        /// The shape it must have, e.g. `[12, 5]`.
        shape: String,
        /// Number of values that shape holds.
        expected: usize,
        /// Number of values given.
        got: usize,
    },
    /// A layer index past the model's last layer.
    #[error("GRU layer {layer} does not exist: the model has {layers} layers (0 to {})", layers.saturating_sub(1))]
    NoLayer {
        /// The index asked for.
        layer: usize,
        /// How many layers the model has.
        layers: usize,
    },
    /// A model directory that cannot be written or read back.
    #[error("{path}: {reason}")]
    Artifact {
        /// The file or directory.
        path: std::path::PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The data side refused the input (unreadable file, columns the pipeline lacks...).
    #[error(transparent)]
    Data(#[from] iotids_data::Error),
}

impl Error {
    /// [`Error::Config`] from its three parts.
    pub(crate) fn config(field: &'static str, value: String, allowed: &'static str) -> Self {
        Error::Config {
            field,
            value,
            allowed,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
