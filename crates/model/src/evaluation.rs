//! Scoring labelled rows for evaluation: the held-out rows of the training table, or a
//! whole labelled file read the way the model's training file was, with the rows of
//! classes the model never saw set apart and counted.

use std::collections::BTreeMap;

use iotids_data::Dataset;
use iotids_data::window::Sequences;
use rustc_hash::FxHashSet;

use crate::artifact::Detector;
use crate::examples::{Examples, Scores, score};
use crate::metrics::{Metrics, evaluate};

/// Scored rows of some table, ready for metrics.
#[derive(Debug, Clone)]
pub struct Scored {
    /// What was scored, for people ("held-out test rows of FILE (Flow split)").
    pub what: String,
    /// Source line of each scored row.
    pub lines: Vec<u64>,
    /// True class (model numbering) of each scored row.
    pub y_true: Vec<u32>,
    /// The network's class probabilities of each scored row.
    pub scores: Scores,
    /// Rows left out because the model does not know their class (class name → rows).
    pub unknown_classes: BTreeMap<String, u64>,
    /// Scored rows identical to a training row (only for a separate test file).
    pub also_in_training: u64,
}

impl Scored {
    /// The metrics of these rows under `detector`'s classes and benign class.
    pub fn metrics(&self, detector: &Detector) -> Metrics {
        evaluate(
            &self.y_true,
            &self.scores.predictions(),
            &self.scores.probabilities,
            &detector.card.classes,
            detector.normal_index(),
        )
    }
}

impl Detector {
    /// Scores `rows` of a table whose windows are `sequences` and whose labels are
    /// already in the model's numbering (the training table's own held-out rows).
    pub fn score_rows(
        &self,
        what: String,
        ds: &Dataset,
        sequences: &Sequences,
        rows: &[usize],
        batch_size: usize,
    ) -> Scored {
        let scores = score(
            &self.net,
            Examples {
                sequences,
                labels: &ds.labels,
                rows,
            },
            batch_size,
        );
        Scored {
            what,
            lines: rows.iter().map(|&r| ds.lines[r]).collect(),
            y_true: rows.iter().map(|&r| ds.labels[r]).collect(),
            scores,
            unknown_classes: BTreeMap::new(),
            also_in_training: 0,
        }
    }

    /// Scores every row of a labelled table read with [`Detector::ingest_options`] whose
    /// class the model knows; the others are counted in
    /// [`Scored::unknown_classes`]. `train_hashes` (raw-record hashes of the training
    /// rows) counts test rows that repeat a training row.
    ///
    /// # Errors
    ///
    /// The table lacks columns the pipeline needs, or has no flows for a windowed model.
    pub fn score_table(
        &self,
        what: String,
        ds: &Dataset,
        train_hashes: Option<&FxHashSet<u128>>,
        batch_size: usize,
    ) -> crate::Result<Scored> {
        let inputs = self.inputs(ds)?;
        let (rows, labels) = inputs.known();
        let also_in_training = train_hashes.map_or(0, |h| {
            rows.iter()
                .filter(|&&r| h.contains(&ds.row_hashes[r]))
                .count() as u64
        });
        let scores = self.score(&inputs.sequences, &rows, batch_size);
        Ok(Scored {
            what,
            lines: rows.iter().map(|&r| ds.lines[r]).collect(),
            y_true: rows.iter().map(|&r| labels[r]).collect(),
            scores,
            unknown_classes: inputs.unknown_classes,
            also_in_training,
        })
    }
}
