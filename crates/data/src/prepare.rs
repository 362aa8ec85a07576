//! The whole preparation of a table for learning, in the one order that keeps it
//! honest: remove duplicates, split, remove outliers from training rows only, fit
//! the pipeline on training rows only.

use serde::{Deserialize, Serialize};

use crate::clean::{self, Dedup, Outliers};
use crate::error::{Error, Result};
use crate::ingest::IngestOptions;
use crate::pipeline::{IngestSpec, Pipeline, PipelineConfig};
use crate::split::{self, Split, SplitConfig};
use crate::table::Dataset;

/// Every setting of the preparation. Defaults: exact duplicates removed, no
/// outlier removal, stratified 64/16/20 split, the default pipeline.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PrepareConfig {
    pub dedup: Dedup,
    pub outliers: Option<Outliers>,
    pub split: SplitConfig,
    pub pipeline: PipelineConfig,
}

/// What preparation did, in numbers.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PrepareCounts {
    pub rows_in: u64,
    pub duplicates_removed: u64,
    pub outliers_removed: u64,
    pub train: u64,
    pub validation: u64,
    pub test: u64,
}

/// A prepared table: the de-duplicated rows, the split, the fitted pipeline.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub dataset: Dataset,
    pub split: Split,
    pub pipeline: Pipeline,
    pub counts: PrepareCounts,
    /// The settings as applied: an `auto` split resolved to the method that ran, so
    /// this is what to record (`prepare.json`, `split.json`).
    pub config: PrepareConfig,
}

impl Prepared {
    /// The raw-record hashes of the training rows, to count the rows of another file
    /// that repeat one of them.
    pub fn train_hashes(&self) -> rustc_hash::FxHashSet<u128> {
        self.split
            .train
            .iter()
            .map(|&r| self.dataset.row_hashes[r])
            .collect()
    }
}

/// Prepares `ds` (consumed: duplicates are removed in place).
///
/// # Errors
/// Invalid settings, a flow split on a file without endpoints, or no training rows.
pub fn prepare(mut ds: Dataset, ingest: &IngestOptions, cfg: &PrepareConfig) -> Result<Prepared> {
    cfg.split.check()?;
    cfg.pipeline.check()?;
    let rows_in = ds.n_rows() as u64;
    let duplicates_removed = clean::dedup(&mut ds, cfg.dedup);
    let split_cfg = cfg.split.clone().resolve(&ds);
    let mut s = split::split(&ds.labels, ds.n_classes(), ds.flows.as_deref(), &split_cfg)?;
    let mut outliers_removed = 0;
    if let Some(rule) = cfg.outliers {
        let (kept, removed) = clean::remove_outliers(&ds, &s.train, rule);
        if kept.is_empty() {
            return Err(Error::Config(format!(
                "outlier removal ({rule:?}) removed every training row"
            )));
        }
        s.train = kept;
        outliers_removed = removed;
    }
    let spec = IngestSpec {
        format: ds.format,
        label: ds.label_column.clone(),
        drop: ingest.drop.clone(),
        keep: ingest.keep.clone(),
        categorical: ingest.categorical.clone(),
        flow_timing: ds.report.timing.is_some(),
        flow_index_cap: ds.flow_index_cap(),
    };
    let pipeline = Pipeline::fit(&ds, &s.train, spec, &cfg.pipeline)?;
    let counts = PrepareCounts {
        rows_in,
        duplicates_removed,
        outliers_removed,
        train: s.train.len() as u64,
        validation: s.validation.len() as u64,
        test: s.test.len() as u64,
    };
    Ok(Prepared {
        dataset: ds,
        split: s,
        pipeline,
        counts,
        config: PrepareConfig {
            split: split_cfg,
            ..cfg.clone()
        },
    })
}
