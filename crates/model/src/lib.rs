//! Detection models and their evaluation.
//!
//! [`metrics`] scores predictions the way scikit-learn does (its
//! `classification_report`, `confusion_matrix`, `roc_curve`/`roc_auc_score` and
//! `average_precision_score`), plus the intrusion-detection pair: detection rate and
//! false-alarm rate of attack vs normal. A test feeds the same labels, predictions
//! and scores to both and compares.

pub mod metrics;
