//! Detection models and their evaluation.
//!
//! [`gru`] is the GRU classifier (issue 3) on burn: the seeds' gate equations, PyTorch's
//! weight layout, left-padded windows of records; [`backend`] picks the burn device from the
//! cargo feature (`flex` CPU by default, `cuda`, `wgpu`).
//!
//! [`train`] fits it (class-weighted cross-entropy, Adam, early stopping); [`examples`] is
//! what training, scoring and evaluation share (labelled windows, class probabilities); [`artifact`] is the model directory that carries the network, its config and
//! the fitted preprocessing pipeline to `evaluate` and `predict`.
//!
//! [`metrics`] scores predictions the way scikit-learn does (its
//! `classification_report`, `confusion_matrix`, `roc_curve`/`roc_auc_score` and
//! `average_precision_score`), plus the intrusion-detection pair: detection rate and
//! false-alarm rate of attack vs normal. A test feeds the same labels, predictions
//! and scores to both and compares.

pub mod artifact;
pub mod backend;
#[cfg(feature = "flex")]
pub mod bench;
pub mod detect;
pub mod error;
pub mod evaluation;
pub mod examples;
#[cfg(feature = "flex")]
pub mod frozen;
#[cfg(feature = "flex")]
pub mod fused;
pub mod golden;
pub mod gru;
pub mod metrics;
pub mod nets;
pub mod network;
pub mod novelty;
pub mod params;
pub mod train;

pub use error::{Error, Result};
