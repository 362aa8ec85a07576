//! The run context every node needs besides its data: how to read the traffic, the
//! window, and (after the statistics round) the fitted pipeline and the network's shape.
//! It travels as JSON with a digest; a node that holds the same digest is not sent it again.

use std::collections::BTreeMap;

use iotids_data::federated::{Answer, ColumnValues, Summary};
use iotids_data::pipeline::{IngestSpec, Pipeline};
use iotids_data::split::SplitConfig;
use iotids_data::window::Sequences;
use iotids_data::window::WindowBy;
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
    /// What a window follows (runs begun before the choice existed: flows).
    #[serde(default)]
    pub window_by: WindowBy,
    /// The pipeline fitted from the devices' summaries (None before the statistics round).
    pub pipeline: Option<Pipeline>,
    /// The GRU's shape (with the pipeline).
    pub network: Option<GruConfig>,
    /// Validation on the devices: each cuts its own table by this split
    /// ([`device_split`]), trains on the earlier rows (and summarises only those) and
    /// scores each round's model on the later ones. None: the cloud validates, and a
    /// device trains on all its rows.
    #[serde(default)]
    pub validation: Option<SplitConfig>,
}

impl RunContext {
    /// The rows of `ds` a device trains on (and summarises), and those it validates on.
    ///
    /// # Errors
    ///
    /// A split the table does not allow.
    pub fn device_rows(
        &self,
        ds: &Dataset,
    ) -> Result<(Vec<usize>, Vec<usize>), iotids_data::Error> {
        device_rows(ds, self.validation.as_ref())
    }

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
        flow_index_cap: spec.flow_index_cap,
        ..IngestOptions::default()
    }
}

/// Columns numeric in one survey and text in the other (a device infers each column's
/// kind from its own rows; one with text where another has only numbers).
pub fn kind_conflicts(a: &Summary, b: &Summary) -> Vec<String> {
    let (Answer::Survey(a), Answer::Survey(b)) = (&a.answer, &b.answer) else {
        return Vec::new();
    };
    let numeric = |v: &ColumnValues| matches!(v, ColumnValues::Numeric { .. });
    a.columns
        .iter()
        .filter(|(name, ca)| {
            b.columns
                .get(*name)
                .is_some_and(|cb| numeric(&ca.values) != numeric(&cb.values))
        })
        .map(|(name, _)| name.clone())
        .collect()
}

/// Merges `summaries` in order: Ok(Err(columns)) when some columns are numeric in one and
/// text in another.
///
/// # Errors
///
/// Summaries that answer different requests.
pub fn merge_all(
    summaries: Vec<Summary>,
) -> Result<Result<Option<Summary>, Vec<String>>, iotids_data::Error> {
    let mut merged: Option<Summary> = None;
    let mut conflicts = std::collections::BTreeSet::new();
    for s in summaries {
        match &mut merged {
            None => merged = Some(s),
            Some(m) => {
                let c = kind_conflicts(m, &s);
                if c.is_empty() {
                    if conflicts.is_empty() {
                        m.merge(&s)?;
                    }
                } else {
                    conflicts.extend(c);
                }
            }
        }
    }
    Ok(if conflicts.is_empty() {
        Ok(merged)
    } else {
        Err(conflicts.into_iter().collect())
    })
}

/// A labelled table as the agreed pipeline makes it.
#[derive(Debug)]
pub struct Windows {
    /// Flow windows of the run's length over every row.
    pub sequences: Sequences,
    /// Each row's class in the pipeline's numbering (0 where unknown, never read).
    pub labels: Vec<u32>,
    /// The rows whose class the pipeline knows.
    pub rows: Vec<usize>,
    /// Rows per class the pipeline does not know (name → rows).
    pub unknown: BTreeMap<String, u64>,
}

impl Windows {
    /// The rows of `wanted` (ascending) whose class the pipeline knows, ascending: the
    /// windows a device trains or validates on of the rows its split gave that side.
    pub fn labelled(&self, wanted: &[usize]) -> Vec<usize> {
        self.rows
            .iter()
            .copied()
            .filter(|r| wanted.binary_search(r).is_ok())
            .collect()
    }
}

/// `ds` through `pipeline`, in windows of `window` records following `by`.
///
/// # Errors
///
/// The table lacks the pipeline's input columns.
pub fn windows(
    ds: &Dataset,
    pipeline: &Pipeline,
    window: usize,
    by: WindowBy,
) -> Result<Windows, iotids_data::Error> {
    let all: Vec<usize> = (0..ds.n_rows()).collect();
    let features = pipeline.transform(ds, &all)?;
    let (labels, unknown) = iotids_model::detect::class_labels(pipeline, ds);
    let (rows, labels) = iotids_model::detect::known_rows(&labels);
    Ok(Windows {
        sequences: Sequences::new(features, ds.window_keys(by), window)?,
        labels,
        rows,
        unknown,
    })
}

/// A device's own table cut for validation on the device: the earlier rows it trains on
/// and the later ones it scores each round's model on, by `split` (the run's split, its
/// test side given to validation: per class in file order for the time split, short
/// flows whole), each ascending. The rows it validates on stay in its table, so their
/// flow windows and timing features reach back over its earlier traffic.
///
/// # Errors
///
/// A split the table does not allow (a flow split without endpoints).
pub fn device_split(
    ds: &Dataset,
    split: &SplitConfig,
) -> Result<(Vec<usize>, Vec<usize>), iotids_data::Error> {
    let cfg = split.clone().without_test().resolve(ds);
    let mut s = iotids_data::split::split(&ds.labels, ds.n_classes(), ds.flows.as_deref(), &cfg)?;
    s.train.sort_unstable();
    s.validation.sort_unstable();
    Ok((s.train, s.validation))
}

/// The rows of `ds` a device trains on and those it validates on: by
/// [`device_split`] when it validates by `validation`, else all rows and none.
///
/// # Errors
///
/// A split the table does not allow.
pub fn device_rows(
    ds: &Dataset,
    validation: Option<&SplitConfig>,
) -> Result<(Vec<usize>, Vec<usize>), iotids_data::Error> {
    match validation {
        Some(split) => device_split(ds, split),
        None => Ok(((0..ds.n_rows()).collect(), Vec::new())),
    }
}

/// Reads a node's own labelled data with the options given (a CSV, or captures: the
/// binary decides); Err(message) when it can't.
pub type Reader = Box<dyn Fn(&IngestOptions) -> Result<Dataset, String> + Send + Sync>;
