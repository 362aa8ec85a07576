//! The models `iotids compare` sets beside the GRU, trained and scored on the same prepared
//! features, split and metrics.
//!
//! [`classical`] wraps smartcore and perpetual; [`compare`] runs every chosen model
//! (the deep ones through iotids-model's training loop), times training and inference,
//! subsamples the training rows of models that cannot scale, and says so.

pub mod classical;
pub mod compare;
pub mod error;

pub use error::Error;
