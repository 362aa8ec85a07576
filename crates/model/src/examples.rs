//! Labelled windows in, class probabilities out: what training, evaluation, the baselines
//! and the federation share, apart from the training loop ([`crate::train`]).

use iotids_data::window::Sequences;

use crate::gru::GruClassifier;
use crate::metrics::{Metrics, evaluate};
use crate::network::Network;

/// Windows per inference batch when scoring held-out rows: large enough that the frozen
/// GRU's products amortise, small enough that a batch's inputs stay in cache.
pub const SCORE_BATCH: usize = 1024;

/// Labelled windows: the rows `rows` of `sequences`, with `labels` indexed by row.
#[derive(Debug, Clone, Copy)]
pub struct Examples<'a> {
    /// Features and flow windows of every row of the table.
    pub sequences: &'a Sequences,
    /// Class id of every row of the table (the window's last record's class).
    pub labels: &'a [u32],
    /// The rows to use.
    pub rows: &'a [usize],
}

/// Class probabilities of windows, row-major `rows × classes`.
#[derive(Debug, Clone, PartialEq)]
pub struct Scores {
    /// Softmax outputs, `rows × classes`.
    pub probabilities: Vec<f32>,
    /// Classes per row.
    pub classes: usize,
}

impl Scores {
    /// Row `i`'s probabilities.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.probabilities[i * self.classes..(i + 1) * self.classes]
    }

    /// Rows scored.
    pub fn len(&self) -> usize {
        self.probabilities.len() / self.classes.max(1)
    }

    /// True with no rows.
    pub fn is_empty(&self) -> bool {
        self.probabilities.is_empty()
    }

    /// The most probable class of every row (the first, on ties, as numpy's argmax).
    pub fn predictions(&self) -> Vec<u32> {
        (0..self.len())
            .map(|i| {
                let row = self.row(i);
                let mut best = 0;
                for (c, &p) in row.iter().enumerate() {
                    if p > row[best] {
                        best = c;
                    }
                }
                best as u32
            })
            .collect()
    }

    /// Weighted cross-entropy and accuracy against `ex`'s labels (the rows scored).
    pub fn loss_and_accuracy(&self, ex: &Examples<'_>, weights: &[f32]) -> (f64, f64) {
        let (loss, weight) = self.loss_sums(ex, weights);
        let predicted = self.predictions();
        let correct = ex
            .rows
            .iter()
            .zip(&predicted)
            .filter(|&(&r, &p)| ex.labels[r] == p)
            .count();
        (loss / weight, correct as f64 / ex.rows.len() as f64)
    }

    /// The weighted cross-entropy against `ex`'s labels as sums that add over places:
    /// (Σ `w_y · −ln p_y`, Σ `w_y`); their ratio is [`Scores::loss_and_accuracy`]'s loss.
    pub fn loss_sums(&self, ex: &Examples<'_>, weights: &[f32]) -> (f64, f64) {
        let (mut loss, mut weight) = (0.0, 0.0);
        for (i, &r) in ex.rows.iter().enumerate() {
            let y = ex.labels[r] as usize;
            let w = f64::from(weights[y]);
            // The clamp keeps a confidently wrong window finite (f32 softmax can reach 0).
            loss -= w * f64::from(self.row(i)[y]).max(1e-30).ln();
            weight += w;
        }
        (loss, weight)
    }
}

/// Scores the windows ending at `ex.rows`, `batch_size` at a time (see [`Network::scores`]).
pub fn score<N: Network>(model: &N, ex: Examples<'_>, batch_size: usize) -> Scores {
    model.scores(ex, batch_size)
}

/// The GRU's [`Network::scores`]: inference runs on the model frozen into plain slices
/// ([`crate::frozen::FrozenGru`], tested equal to `forward` within 1e-5): no autodiff
/// graph, no per-op dispatch, about twice burn's throughput on the CPU.
pub(crate) fn frozen_scores(model: &GruClassifier, ex: Examples<'_>, batch_size: usize) -> Scores {
    let frozen = model.to_frozen();
    let classes = frozen.classes();
    let mut probabilities = Vec::with_capacity(ex.rows.len() * classes);
    let (mut x, mut mask) = (Vec::new(), Vec::new());
    let k = ex.sequences.k;
    for rows in ex.rows.chunks(batch_size.max(1)) {
        ex.sequences.batch(rows, &mut x, &mut mask);
        let padded = mask.contains(&0.0);
        let mut logits = frozen.logits(&x, rows.len(), k, padded.then_some(&mask[..]));
        logits.chunks_exact_mut(classes).for_each(softmax);
        probabilities.extend(logits);
    }
    Scores {
        probabilities,
        classes,
    }
}

/// [`frozen_scores`] and the top layer's final hidden state of every window
/// (`[rows, hidden]` row-major), for [`crate::novelty`].
pub fn scores_and_states(
    model: &GruClassifier,
    ex: Examples<'_>,
    batch_size: usize,
) -> (Scores, Vec<f32>) {
    let frozen = model.to_frozen();
    let classes = frozen.classes();
    let mut probabilities = Vec::with_capacity(ex.rows.len() * classes);
    let mut states = Vec::with_capacity(ex.rows.len() * frozen.hidden());
    let (mut x, mut mask) = (Vec::new(), Vec::new());
    let k = ex.sequences.k;
    for rows in ex.rows.chunks(batch_size.max(1)) {
        ex.sequences.batch(rows, &mut x, &mut mask);
        let padded = mask.contains(&0.0);
        let (mut logits, h) =
            frozen.logits_and_states(&x, rows.len(), k, padded.then_some(&mask[..]));
        logits.chunks_exact_mut(classes).for_each(softmax);
        probabilities.extend(logits);
        states.extend(h);
    }
    (
        Scores {
            probabilities,
            classes,
        },
        states,
    )
}

/// The class probabilities of an ensemble: the mean of each network's
/// ([`Network::scores`]). One network's are returned as they are.
pub fn ensemble_scores(models: &[GruClassifier], ex: Examples<'_>, batch_size: usize) -> Scores {
    mean_scores(models.iter().map(|m| score(m, ex, batch_size)))
}

/// [`ensemble_scores`] and every network's final hidden state side by side: `[rows,
/// hidden × networks]` row-major, network by network within a row (the state
/// [`crate::novelty`] measures).
pub fn ensemble_scores_and_states(
    models: &[GruClassifier],
    ex: Examples<'_>,
    batch_size: usize,
) -> (Scores, Vec<f32>) {
    if let [model] = models {
        return scores_and_states(model, ex, batch_size);
    }
    let (scores, states): (Vec<Scores>, Vec<Vec<f32>>) = models
        .iter()
        .map(|m| scores_and_states(m, ex, batch_size))
        .unzip();
    let n = ex.rows.len();
    let mut side_by_side = Vec::with_capacity(states.iter().map(Vec::len).sum());
    for r in 0..n {
        for h in &states {
            let hidden = h.len() / n;
            side_by_side.extend_from_slice(&h[r * hidden..(r + 1) * hidden]);
        }
    }
    (mean_scores(scores), side_by_side)
}

/// The row-by-row mean of several networks' class probabilities for the same windows
/// (the first's, unchanged, when there is one; empty when there are none).
pub fn mean_scores(parts: impl IntoIterator<Item = Scores>) -> Scores {
    let mut parts = parts.into_iter();
    let Some(mut mean) = parts.next() else {
        return Scores {
            probabilities: Vec::new(),
            classes: 0,
        };
    };
    let mut n = 1;
    for s in parts {
        for (m, p) in mean.probabilities.iter_mut().zip(&s.probabilities) {
            *m += p;
        }
        n += 1;
    }
    if n > 1 {
        let n = n as f32;
        mean.probabilities.iter_mut().for_each(|v| *v /= n);
    }
    mean
}

/// Softmax in place, shifted by the maximum so large logits don't overflow.
fn softmax(row: &mut [f32]) {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// Scores the windows ending at `ex.rows` with `net` and computes the metrics against their
/// labels: `classes` names the network's outputs, `normal` the benign one (for the detection
/// and false-alarm rates). What `train`'s test rows, `federate`'s kept round and the
/// experiments all report.
pub fn evaluate_rows<N: Network>(
    net: &N,
    ex: Examples<'_>,
    classes: &[String],
    normal: Option<usize>,
) -> Metrics {
    let scores = score(net, ex, SCORE_BATCH);
    let y: Vec<u32> = ex.rows.iter().map(|&r| ex.labels[r]).collect();
    evaluate(
        &y,
        &scores.predictions(),
        &scores.probabilities,
        classes,
        normal,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mean_scores_averages_row_by_row_and_keeps_one_as_it_is() {
        let s = |p: &[f32]| Scores {
            probabilities: p.to_vec(),
            classes: 2,
        };
        let one = mean_scores([s(&[0.3, 0.7, 0.9, 0.1])]);
        assert_eq!(one.probabilities, [0.3, 0.7, 0.9, 0.1]);
        let two = mean_scores([s(&[0.2, 0.8, 1.0, 0.0]), s(&[0.4, 0.6, 0.5, 0.5])]);
        assert_eq!((two.probabilities.len(), two.classes), (4, 2));
        for (got, want) in two.probabilities.iter().zip([0.3, 0.7, 0.75, 0.25]) {
            assert!((got - want).abs() < 1e-6, "{:?}", two.probabilities);
        }
        let none = mean_scores(std::iter::empty());
        assert!(none.probabilities.is_empty());
    }

    #[test]
    fn softmax_sums_to_one_and_survives_large_logits() {
        let mut row = [1.0f32, 2.0, 3.0];
        softmax(&mut row);
        // e^1, e^2, e^3 over their sum.
        let want = [0.090_030_57, 0.244_728_48, 0.665_240_96];
        for (g, w) in row.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{row:?}");
        }
        let mut big = [1000.0f32, 1000.0];
        softmax(&mut big);
        assert_eq!(big, [0.5, 0.5]);
    }
}
