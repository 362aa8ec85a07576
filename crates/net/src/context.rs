//! The run context every node needs besides its data: how to read the traffic, the
//! window, and (after the statistics round) the fitted pipeline and the network's shape.
//! It travels as JSON with a digest; a node that holds the same digest is not sent it again.

use iotids_data::pipeline::{IngestSpec, Pipeline};
use iotids_data::{Dataset, IngestOptions};
use iotids_model::gru::GruConfig;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// What the cloud decided and every node follows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunContext {
    /// The run.
    pub run: String,
    /// How devices read their traffic (layout, label, dropped and kept columns, timing).
    pub ingest: IngestSpec,
    /// Records per window.
    pub window: usize,
    /// The pipeline fitted from the devices' summaries (None before the statistics round).
    pub pipeline: Option<Pipeline>,
    /// The GRU's shape (with the pipeline).
    pub network: Option<GruConfig>,
}

impl RunContext {
    /// JSON and its digest (hex SHA-256, 16 digits).
    pub fn encode(&self) -> (String, Vec<u8>) {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        (digest(&bytes), bytes)
    }
}

/// Hex SHA-256 of `bytes`, 16 digits.
pub fn digest(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// How to read a file as `spec` says (before a pipeline exists).
pub fn ingest_options(spec: &IngestSpec) -> IngestOptions {
    IngestOptions {
        format: Some(spec.format),
        label: Some(spec.label.clone()),
        drop: spec.drop.clone(),
        keep: spec.keep.clone(),
        categorical: spec.categorical.clone(),
        flow_timing: spec.flow_timing.into(),
        ..IngestOptions::default()
    }
}

/// Reads a node's own labelled data with the options given (a CSV, or captures: the
/// binary decides); Err(message) when it can't.
pub type Reader = Box<dyn Fn(&IngestOptions) -> Result<Dataset, String> + Send + Sync>;
