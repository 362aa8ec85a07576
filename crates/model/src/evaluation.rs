//! Scoring labelled rows for evaluation: the held-out rows of the training table, or a
//! whole labelled file read the way the model's training file was, with the rows of
//! classes the model never saw set apart and counted.

use std::collections::BTreeMap;

use iotids_data::Dataset;
use iotids_data::window::Sequences;
use rustc_hash::FxHashSet;

use crate::artifact::Detector;
use crate::detect::Classified;
use serde::{Deserialize, Serialize};

use crate::examples::Scores;
use crate::metrics::{Metrics, evaluate_decisions};

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
    /// The detector's decision for each scored row (one past the last class: unknown).
    pub predicted: Vec<u32>,
    /// Each scored row's novelty (empty without an unknown-traffic test).
    pub novelty: Vec<f64>,
    /// Rows left out of the metrics because the model does not know their class (class
    /// name → rows).
    pub unknown_classes: BTreeMap<String, u64>,
    /// What the detector made of those rows, per class.
    pub absent: Vec<AbsentClass>,
    /// Those rows one by one (for predictions.csv): empty when every class is known.
    pub absent_rows: AbsentRows,
    /// Scored rows identical to a training row (only for a separate test file).
    pub also_in_training: u64,
}

/// A class of the scored file that the model was not trained on, and what the detector
/// made of its rows: the leave-one-attack-out question "does a new attack pass as normal?".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AbsentClass {
    /// The class's name in the file.
    pub class: String,
    /// Its rows.
    pub rows: u64,
    /// Decided benign: the attack passed unseen.
    pub as_normal: u64,
    /// Decided unknown: an alert.
    pub as_unknown: u64,
    /// Decided one of the known attacks: an alert under another name.
    pub as_known_attack: u64,
}

/// The rows of classes the model was not trained on, decided like the others.
#[derive(Debug, Clone, Default)]
pub struct AbsentRows {
    /// Source line of each row.
    pub lines: Vec<u64>,
    /// Each row's class in the scored file's own numbering (an index of `names`).
    pub labels: Vec<u32>,
    /// The scored file's class names.
    pub names: Vec<String>,
    /// The detector's probabilities, decisions and novelty of the rows.
    pub classified: Option<Classified>,
}

impl Scored {
    /// The metrics of these rows under `detector`'s classes and benign class, unknown
    /// decisions included ([`crate::metrics::evaluate_decisions`]).
    pub fn metrics(&self, detector: &Detector) -> Metrics {
        evaluate_decisions(
            &self.y_true,
            &self.predicted,
            &self.scores.probabilities,
            &detector.card.classes,
            detector.normal_index(),
        )
    }
}

fn absent_classes(
    ds: &Dataset,
    rows: &[usize],
    decided: &[u32],
    normal: Option<usize>,
    known: usize,
) -> Vec<AbsentClass> {
    let mut by: BTreeMap<u32, AbsentClass> = BTreeMap::new();
    for (&r, &p) in rows.iter().zip(decided) {
        let l = ds.labels[r];
        let a = by.entry(l).or_insert_with(|| AbsentClass {
            class: ds.classes[l as usize].clone(),
            rows: 0,
            as_normal: 0,
            as_unknown: 0,
            as_known_attack: 0,
        });
        a.rows += 1;
        if Some(p as usize) == normal {
            a.as_normal += 1;
        } else if p as usize >= known {
            a.as_unknown += 1;
        } else {
            a.as_known_attack += 1;
        }
    }
    by.into_values().collect()
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
        let c = self.classify(sequences, rows, batch_size);
        Scored {
            what,
            lines: rows.iter().map(|&r| ds.lines[r]).collect(),
            y_true: rows.iter().map(|&r| ds.labels[r]).collect(),
            scores: c.scores,
            predicted: c.predicted,
            novelty: c.novelty,
            unknown_classes: BTreeMap::new(),
            absent: Vec::new(),
            absent_rows: AbsentRows::default(),
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
        let c = self.classify(&inputs.sequences, &rows, batch_size);
        // The rows of classes the model never saw: not in the metrics, but decided.
        let other: Vec<usize> = (0..inputs.labels.len())
            .filter(|&r| inputs.labels[r].is_none())
            .collect();
        let (absent, absent_rows) = if other.is_empty() {
            (Vec::new(), AbsentRows::default())
        } else {
            let o = self.classify(&inputs.sequences, &other, batch_size);
            let absent = absent_classes(
                ds,
                &other,
                &o.predicted,
                self.normal_index(),
                self.card.classes.len(),
            );
            let rows = AbsentRows {
                lines: other.iter().map(|&r| ds.lines[r]).collect(),
                labels: other.iter().map(|&r| ds.labels[r]).collect(),
                names: ds.classes.clone(),
                classified: Some(o),
            };
            (absent, rows)
        };
        Ok(Scored {
            what,
            lines: rows.iter().map(|&r| ds.lines[r]).collect(),
            y_true: rows.iter().map(|&r| labels[r]).collect(),
            scores: c.scores,
            predicted: c.predicted,
            novelty: c.novelty,
            unknown_classes: inputs.unknown_classes,
            absent,
            absent_rows,
            also_in_training,
        })
    }
}
