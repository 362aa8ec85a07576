//! A trained [`Detector`] applied to new traffic: the same ingest settings, the same
//! fitted pipeline, the same windows as in training.
//!
//! [`Detector::ingest_options`] reads a file the way the training file was read (layout,
//! label, dropped and kept columns, and the column kinds the pipeline was fitted with).
//! [`Detector::inputs`] turns a whole table into windows; [`StreamWindows`] does the same
//! batch by batch for files larger than memory, carrying each flow's last records from one
//! batch to the next, so streaming and whole-file prediction give the same windows.

use std::collections::BTreeMap;

use iotids_data::pipeline::{Input, Matrix, Pipeline};
use iotids_data::window::Sequences;
use iotids_data::{Dataset, IngestOptions};
use rustc_hash::FxHashMap;

use crate::artifact::Detector;
use crate::examples::{
    Examples, SCORE_BATCH, Scores, ensemble_scores, ensemble_scores_and_states as scores_and_states,
};
use crate::novelty::{BenignWindows, Calibration, DecisionRule, Novelty, OperatingPoint};

/// A table ready for the network: its windows, and each row's class in the model's
/// numbering.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// Features and windows of every row.
    pub sequences: Sequences,
    /// Each row's class id in the model's classes; `None` for a class the model never saw
    /// (or an unlabelled row).
    pub labels: Vec<Option<u32>>,
    /// Rows per class the model does not know (name → rows).
    pub unknown_classes: BTreeMap<String, u64>,
}

impl Inputs {
    /// Rows whose class the model knows, and their labels indexed by row (0 elsewhere,
    /// never read), for [`Examples`].
    pub fn known(&self) -> (Vec<usize>, Vec<u32>) {
        known_rows(&self.labels)
    }
}

/// The rows of `labels` whose class is known, and the labels indexed by row (0 for the
/// others, never read), for [`Examples`].
pub fn known_rows(labels: &[Option<u32>]) -> (Vec<usize>, Vec<u32>) {
    let rows = (0..labels.len()).filter(|&r| labels[r].is_some()).collect();
    let labels = labels.iter().map(|l| l.unwrap_or(0)).collect();
    (rows, labels)
}

/// Each row's class of `ds` in `pipeline`'s numbering (`None` for a class its training
/// file lacks), and the rows per such class (name → rows).
pub fn class_labels(
    pipeline: &Pipeline,
    ds: &Dataset,
) -> (Vec<Option<u32>>, BTreeMap<String, u64>) {
    let map = pipeline.class_map(ds);
    let mut unknown_classes = BTreeMap::new();
    let labels = ds
        .labels
        .iter()
        .map(|&l| {
            let mapped = map[l as usize];
            if mapped.is_none() {
                *unknown_classes
                    .entry(ds.classes[l as usize].clone())
                    .or_insert(0) += 1;
            }
            mapped
        })
        .collect();
    (labels, unknown_classes)
}

/// How to read a file for a fitted pipeline: its training file's layout, label column,
/// dropped, kept and categorical columns, with the numeric inputs forced numeric (a
/// column inferred as text in a small file would otherwise miss the pipeline's kinds).
/// `label_optional` accepts files without the label column (prediction).
pub fn ingest_options(pipeline: &Pipeline, threads: usize, label_optional: bool) -> IngestOptions {
    let spec = &pipeline.ingest;
    IngestOptions {
        format: Some(spec.format),
        label: Some(spec.label.clone()),
        drop: spec.drop.clone(),
        keep: spec.keep.clone(),
        categorical: spec.categorical.clone(),
        flow_timing: spec.flow_timing.into(),
        flow_index_cap: spec.flow_index_cap,
        numeric: pipeline
            .inputs
            .iter()
            .filter_map(|i| match i {
                Input::Numeric { name, .. } => Some(name.clone()),
                Input::Categorical { .. } => None,
            })
            .collect(),
        label_optional,
        threads,
        ..IngestOptions::default()
    }
}

impl Detector {
    /// How to read a file for this model: [`ingest_options`] of its pipeline.
    pub fn ingest_options(&self, threads: usize, label_optional: bool) -> IngestOptions {
        ingest_options(&self.pipeline, threads, label_optional)
    }

    /// Applies the pipeline to every row of `ds` and builds the model's windows.
    ///
    /// # Errors
    ///
    /// The table lacks columns the pipeline needs (the error names them), or the model
    /// needs flows (window > 1) and the table has no endpoint columns.
    pub fn inputs(&self, ds: &Dataset) -> crate::Result<Inputs> {
        let all: Vec<usize> = (0..ds.n_rows()).collect();
        let features = self.pipeline.transform(ds, &all)?;
        let sequences = Sequences::new(
            features,
            ds.window_keys(self.card.window_by),
            self.card.window,
        )?;
        let (labels, unknown_classes) = class_labels(&self.pipeline, ds);
        Ok(Inputs {
            sequences,
            labels,
            unknown_classes,
        })
    }

    /// Class probabilities, decisions and novelty of the windows ending at `rows`.
    pub fn classify(&self, sequences: &Sequences, rows: &[usize], batch_size: usize) -> Classified {
        let labels = vec![0; sequences.features.rows];
        let ex = Examples {
            sequences,
            labels: &labels,
            rows,
        };
        let rule = &self.card.decision;
        let (scores, states) = if rule.novelty.is_some() {
            let (scores, states) = scores_and_states(&self.nets, ex, batch_size);
            (scores, Some(states))
        } else {
            (ensemble_scores(&self.nets, ex, batch_size), None)
        };
        let partial = states.is_some().then(|| {
            rows.iter()
                .map(|&r| sequences.is_partial(r))
                .collect::<Vec<_>>()
        });
        let (predicted, novelty) = rule.decide(&scores, states.as_deref(), partial.as_deref());
        Classified {
            scores,
            predicted,
            novelty,
        }
    }

    /// Fits the decision rule on a trained detector: the unknown-traffic test (class means
    /// and shared covariance of the training windows' hidden states, the threshold on the
    /// validation benign windows) and the operating point (on the validation windows).
    /// `labels` are the table's classes in the model's numbering. Without a benign class
    /// or validation benign windows, both stay off.
    pub fn calibrate(
        &mut self,
        sequences: &Sequences,
        labels: &[u32],
        train: &[usize],
        validation: &[usize],
        calibration: &Calibration,
    ) {
        let Some(normal) = self.normal_index() else {
            return;
        };
        let examples = |rows| Examples {
            sequences,
            labels,
            rows,
        };
        let (val_scores, val_states) =
            scores_and_states(&self.nets, examples(validation), SCORE_BATCH);
        let y_val: Vec<u32> = validation.iter().map(|&r| labels[r]).collect();
        let rule = &mut self.card.decision;
        rule.normal = Some(normal);
        rule.operating_point = calibration
            .max_false_alarm
            .and_then(|r| OperatingPoint::fit(&val_scores, &y_val, normal, r));
        rule.novelty = calibration.unknown_rate.and_then(|rate| {
            let (train_scores, states) =
                scores_and_states(&self.nets, examples(train), SCORE_BATCH);
            let y_train: Vec<u32> = train.iter().map(|&r| labels[r]).collect();
            // The states of every network side by side.
            let h = self.card.gru.hidden * self.nets.len();
            // The thresholds are set on the windows the detector calls benign and that
            // are benign, as in use (a window decided attack is never unknown).
            let decided = DecisionRule {
                normal: Some(normal),
                operating_point: rule.operating_point.clone(),
                novelty: None,
            };
            let benign = |rows: &[usize], scores: &Scores, states: &[f32], y: &[u32]| {
                let (decided, _) = decided.decide(scores, None, None);
                let keep: Vec<usize> = (0..rows.len())
                    .filter(|&i| y[i] as usize == normal && decided[i] as usize == normal)
                    .collect();
                let kept: Vec<f32> = keep
                    .iter()
                    .flat_map(|&i| states[i * h..(i + 1) * h].iter().copied())
                    .collect();
                let partial: Vec<bool> = keep
                    .iter()
                    .map(|&i| sequences.is_partial(rows[i]))
                    .collect();
                (kept, partial)
            };
            let (val_benign, val_partial) = benign(validation, &val_scores, &val_states, &y_val);
            let (train_benign, train_partial) = benign(train, &train_scores, &states, &y_train);
            Novelty::fit(
                &states,
                &y_train,
                self.card.classes.len(),
                h,
                self.nets.len(),
                normal,
                BenignWindows {
                    states: &train_benign,
                    partial: &train_partial,
                },
                BenignWindows {
                    states: &val_benign,
                    partial: &val_partial,
                },
                rate,
            )
        });
    }

    /// Class probabilities of the windows ending at `rows`.
    pub fn score(&self, sequences: &Sequences, rows: &[usize], batch_size: usize) -> Scores {
        // Labels are not read when scoring; `Examples` wants a slice of the right length.
        let labels = vec![0; sequences.features.rows];
        let ex = Examples {
            sequences,
            labels: &labels,
            rows,
        };
        ensemble_scores(&self.nets, ex, batch_size)
    }
}

/// A detector's output for some windows.
#[derive(Debug, Clone)]
pub struct Classified {
    /// Class probabilities.
    pub scores: Scores,
    /// Decided classes: an index of the model's classes, or one past the last for
    /// `unknown` ([`crate::novelty::DecisionRule::decide`]).
    pub predicted: Vec<u32>,
    /// Distance to the decided class's traffic; empty without an unknown-traffic test.
    pub novelty: Vec<f64>,
}

/// Windows over a file read in batches: each flow's last `k - 1` feature rows are carried
/// from one batch into the next.
///
/// Memory: `(k - 1) × features` floats per flow seen so far. Flows are never forgotten,
/// because a flow that pauses and resumes must get the same windows as in a whole-file
/// run; with window 1 nothing is carried.
#[derive(Debug)]
pub struct StreamWindows {
    k: usize,
    features: usize,
    /// Per flow, up to `k - 1` most recent rows, oldest first, concatenated.
    carried: FxHashMap<u32, Vec<f32>>,
}

impl StreamWindows {
    /// Windows of `k` records over rows of `features` values.
    pub fn new(k: usize, features: usize) -> Self {
        StreamWindows {
            k,
            features,
            carried: FxHashMap::default(),
        }
    }

    /// Drops `flow`'s carried context (an online flow table evicting an idle flow): its
    /// next record starts a new window, as a flow's first does.
    pub fn forget(&mut self, flow: u32) {
        self.carried.remove(&flow);
    }

    /// Flows with carried context.
    pub fn flows_tracked(&self) -> usize {
        self.carried.len()
    }

    /// The windows of one batch: a [`Sequences`] whose rows are the carried context rows
    /// of the batch's flows followed by the batch's rows, and the range of the latter.
    ///
    /// # Errors
    ///
    /// As [`Sequences::new`] (window > 1 without flows).
    pub fn next_batch(
        &mut self,
        batch: Matrix,
        flows: Option<&[u32]>,
    ) -> crate::Result<(Sequences, std::ops::Range<usize>)> {
        let Some(flows) = flows.filter(|_| self.k > 1) else {
            let n = batch.rows;
            return Ok((Sequences::new(batch, flows, self.k)?, 0..n));
        };
        let f = self.features;
        // Context first, in flow order of first appearance in this batch (any order works:
        // windows only look back within a flow).
        let mut data = Vec::new();
        let mut all_flows = Vec::new();
        let mut seen = rustc_hash::FxHashSet::default();
        for &flow in flows {
            if seen.insert(flow)
                && let Some(ctx) = self.carried.get(&flow)
            {
                data.extend_from_slice(ctx);
                all_flows.extend(std::iter::repeat_n(flow, ctx.len() / f));
            }
        }
        let start = all_flows.len();
        data.extend_from_slice(&batch.data);
        all_flows.extend_from_slice(flows);
        let rows = all_flows.len();
        let m = Matrix {
            rows,
            cols: f,
            data,
        };
        // Carry each flow's last k - 1 rows (walking backwards finds them first).
        let keep = self.k - 1;
        let mut taken: FxHashMap<u32, Vec<usize>> = FxHashMap::default();
        for r in (0..rows).rev() {
            let slot = taken.entry(all_flows[r]).or_default();
            if slot.len() < keep {
                slot.push(r);
            }
        }
        for (flow, mut rs) in taken {
            rs.reverse();
            let ctx = self.carried.entry(flow).or_default();
            ctx.clear();
            for r in rs {
                ctx.extend_from_slice(m.row(r));
            }
        }
        let seq = Sequences::new(m, Some(&all_flows), self.k)?;
        Ok((seq, start..rows))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streamed_windows_equal_whole_file_windows() {
        // 10 rows, 2 features, flows A B A A B C A B A C, cut into batches of 3.
        let flows = [0u32, 1, 0, 0, 1, 2, 0, 1, 0, 2];
        let data: Vec<f32> = (0..20).map(|v| v as f32).collect();
        let whole = Sequences::new(
            Matrix {
                rows: 10,
                cols: 2,
                data: data.clone(),
            },
            Some(&flows),
            3,
        )
        .unwrap();
        let (mut wx, mut wm) = (Vec::new(), Vec::new());
        whole.batch(&(0..10).collect::<Vec<_>>(), &mut wx, &mut wm);

        let mut stream = StreamWindows::new(3, 2);
        let (mut sx, mut sm) = (Vec::new(), Vec::new());
        for start in (0..10).step_by(3) {
            let end = (start + 3).min(10);
            let batch = Matrix {
                rows: end - start,
                cols: 2,
                data: data[start * 2..end * 2].to_vec(),
            };
            let (seq, range) = stream.next_batch(batch, Some(&flows[start..end])).unwrap();
            assert_eq!(range.len(), end - start);
            let (mut x, mut m) = (Vec::new(), Vec::new());
            seq.batch(&range.collect::<Vec<_>>(), &mut x, &mut m);
            sx.extend(x);
            sm.extend(m);
        }
        assert_eq!(sx, wx, "features of every window");
        assert_eq!(sm, wm, "padding of every window");
        assert_eq!(stream.flows_tracked(), 3);
    }

    #[test]
    fn window_one_carries_nothing() {
        let mut stream = StreamWindows::new(1, 1);
        let batch = Matrix {
            rows: 2,
            cols: 1,
            data: vec![1.0, 2.0],
        };
        let (seq, range) = stream.next_batch(batch, Some(&[4, 4])).unwrap();
        assert_eq!(range, 0..2);
        assert_eq!(seq.windows, vec![0, 1]);
        assert_eq!(stream.flows_tracked(), 0);
    }
}
