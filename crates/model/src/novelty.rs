//! How unlike its training traffic a window is, and the decision rules a detector saves
//! with its model: the operating point (`--max-false-alarm`) and the unknown-traffic
//! threshold.
//!
//! **Novelty.** The GRU's final hidden state is what its head reads. Per class, the states
//! of the training windows are summarised by their mean, with one covariance shared by all
//! classes (Lee et al., "A Simple Unified Framework for Detecting Out-of-Distribution
//! Samples", NeurIPS 2018). A window's novelty is its Mahalanobis distance to the mean of
//! the class it was given: a packet of an attack never trained on, which the classifier
//! calls benign, still sits far from where benign traffic sits. The threshold is the
//! quantile of the validation benign windows' distances that leaves a chosen share
//! (`--unknown-rate`) above it: that share is the false-alarm rate the unknown alerts cost.
//! A window predicted benign but beyond the threshold is `unknown`, which is an alert.
//!
//! **Flow starts.** A window of a flow's first packets (fewer records than the model's
//! window) lies far from the benign mean even when it is benign: its state has seen less.
//! Validation windows, later packets of the training connections, hold almost none, so
//! a threshold set on them alone flagged the first 15 to 30 packets of every new
//! connection (2.0 % of MQTTset's held-out benign packets). Such windows get their own
//! threshold, set on the benign windows of that kind in the training and validation
//! rows (the training traffic's own connection starts), and full windows one at least as
//! high as the training rows' own quantile.
//!
//! An ensemble's novelty is the mean of its networks' distances, each network's states
//! whitened by their own covariance (a block-diagonal whitening). One Mahalanobis distance
//! over the states side by side (320 dimensions for five networks of 64) let the
//! near-null directions between correlated networks dominate: on MQTTset's held-out halves
//! it flagged 4.0 % of the benign packets at `--unknown-rate 0.001`, against 1.0 % for one
//! network (README "Unknown attacks").
//!
//! **Operating point.** With a benign class, `attack score = 1 − P(benign)`; the threshold
//! is set on the validation benign windows so that at most `--max-false-alarm` of them
//! score above it. Windows above are attacks (the most probable attack class), the others
//! benign.

use serde::{Deserialize, Serialize};

use crate::examples::Scores;

/// The covariance's ridge, as a share of its mean variance: hidden units that saturate
/// (always near ±1) have no variance, and the inverse would blow up along them.
const RIDGE: f64 = 1e-3;

/// Class means and the shared covariance's whitening of the hidden states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Novelty {
    /// Hidden units: all the networks' side by side.
    pub hidden: usize,
    /// Networks whose states lie side by side in a state (`hidden / networks` units each),
    /// each whitened on its own; 1 (also in models written before it) for one whitening of
    /// the whole state.
    #[serde(default = "one")]
    pub networks: usize,
    /// Per class, the mean training state (`None`: no training windows).
    pub means: Vec<Option<Vec<f32>>>,
    /// Per network, `L⁻¹` of the shared covariance of its states `Σ = L Lᵀ` (ridged),
    /// `b × b` row-major, lower triangular (`b = hidden / networks`), the networks' blocks
    /// one after the other: a network's distance is `‖L⁻¹ (h − μ)‖` on its units.
    pub whitening: Vec<f32>,
    /// Share of validation benign windows whose distance exceeds the threshold (asked).
    pub target_rate: f64,
    /// Distance above which a full window predicted benign is unknown.
    pub threshold: f64,
    /// Distance above which a window of a flow's first packets (fewer records than the
    /// model's window) predicted benign is unknown; `None` (models before it, window 1,
    /// no such benign window): `threshold`.
    #[serde(default)]
    pub partial_threshold: Option<f64>,
    /// Benign windows of flows' first packets (training and validation) `partial_threshold`
    /// comes from.
    #[serde(default)]
    pub partial_rows: u64,
    /// Share of validation benign windows above their threshold (got).
    pub validation_rate: f64,
    /// Training windows the means and covariance come from.
    pub fitted_rows: u64,
    /// Validation benign windows the threshold comes from.
    pub validation_rows: u64,
}

/// Benign windows the detector called benign, for setting the thresholds: their states
/// (`[n, hidden]`) and whether each holds fewer records than the model's window.
#[derive(Debug, Clone, Copy)]
pub struct BenignWindows<'a> {
    pub states: &'a [f32],
    pub partial: &'a [bool],
}

/// The smallest threshold leaving at most `rate` of the sorted `d` above it.
fn quantile_threshold(d: &[f64], rate: f64) -> Option<f64> {
    let allowed = (rate * d.len() as f64).floor() as usize;
    d.len()
        .checked_sub(1)
        .map(|last| d[last - allowed.min(last)])
}

fn one() -> usize {
    1
}

impl Novelty {
    /// Fits the class means and, per network, the shared covariance on `states` (`[n,
    /// hidden]`, `networks` networks' states side by side) of training windows with
    /// classes `labels`, then the thresholds on the benign windows' distances to the
    /// benign mean: the full windows' threshold leaves at most `target_rate` of the
    /// `validation` full windows above it, and of the `training` ones; the partial
    /// windows' (a flow's first packets) at most `target_rate` of both sets' partial
    /// windows together. `None` without training windows or full validation benign
    /// windows, or when `hidden` is not `networks` blocks.
    #[allow(clippy::too_many_arguments)]
    pub fn fit(
        states: &[f32],
        labels: &[u32],
        classes: usize,
        hidden: usize,
        networks: usize,
        normal: usize,
        training: BenignWindows<'_>,
        validation: BenignWindows<'_>,
        target_rate: f64,
    ) -> Option<Novelty> {
        let n = labels.len();
        if n == 0
            || !validation.partial.contains(&false)
            || hidden == 0
            || networks == 0
            || !hidden.is_multiple_of(networks)
        {
            return None;
        }
        let b = hidden / networks;
        let mut sums = vec![vec![0f64; hidden]; classes];
        let mut counts = vec![0u64; classes];
        for (row, &y) in states.chunks_exact(hidden).zip(labels) {
            counts[y as usize] += 1;
            for (s, &v) in sums[y as usize].iter_mut().zip(row) {
                *s += f64::from(v);
            }
        }
        let means: Vec<Option<Vec<f64>>> = sums
            .into_iter()
            .zip(&counts)
            .map(|(s, &c)| (c > 0).then(|| s.into_iter().map(|v| v / c as f64).collect()))
            .collect();
        // Per network, the shared (within-class) covariance of its units.
        let mut whitening = Vec::with_capacity(networks * b * b);
        for block in 0..networks {
            let units = block * b..(block + 1) * b;
            let mut cov = vec![0f64; b * b];
            let mut centred = vec![0f64; b];
            for (row, &y) in states.chunks_exact(hidden).zip(labels) {
                let mean = &means[y as usize].as_ref()?[units.clone()];
                for ((c, &v), m) in centred.iter_mut().zip(&row[units.clone()]).zip(mean) {
                    *c = f64::from(v) - m;
                }
                for i in 0..b {
                    let ci = centred[i];
                    for j in 0..=i {
                        cov[i * b + j] += ci * centred[j];
                    }
                }
            }
            for i in 0..b {
                for j in 0..=i {
                    cov[i * b + j] /= n as f64;
                    cov[j * b + i] = cov[i * b + j];
                }
            }
            let mean_var = (0..b).map(|i| cov[i * b + i]).sum::<f64>() / b as f64;
            let ridge = RIDGE * mean_var.max(1e-12);
            for i in 0..b {
                cov[i * b + i] += ridge;
            }
            let l = cholesky(&cov, b)?;
            whitening.extend(lower_inverse(&l, b));
        }
        let mut novelty = Novelty {
            hidden,
            networks,
            means: means
                .into_iter()
                .map(|m| m.map(|m| m.into_iter().map(|v| v as f32).collect()))
                .collect(),
            whitening: whitening.into_iter().map(|v| v as f32).collect(),
            target_rate,
            threshold: f64::INFINITY,
            partial_threshold: None,
            partial_rows: 0,
            validation_rate: 0.0,
            fitted_rows: n as u64,
            validation_rows: validation.partial.iter().filter(|&&p| !p).count() as u64,
        };
        // Each set's distances, full windows and partial ones, sorted.
        let distances = |set: BenignWindows<'_>, partial: bool| {
            let mut d: Vec<f64> = set
                .states
                .chunks_exact(hidden)
                .zip(set.partial)
                .filter(|&(_, &p)| p == partial)
                .map(|(h, _)| novelty.distance(h, normal))
                .collect();
            d.sort_unstable_by(f64::total_cmp);
            d
        };
        let validation_full = distances(validation, false);
        let threshold = [
            quantile_threshold(&validation_full, target_rate),
            quantile_threshold(&distances(training, false), target_rate),
        ]
        .into_iter()
        .flatten()
        .fold(f64::NEG_INFINITY, f64::max);
        let validation_partial = distances(validation, true);
        let mut partial = distances(training, true);
        partial.extend_from_slice(&validation_partial);
        partial.sort_unstable_by(f64::total_cmp);
        novelty.threshold = threshold;
        novelty.partial_threshold = quantile_threshold(&partial, target_rate);
        novelty.partial_rows = partial.len() as u64;
        let above = validation_full.iter().filter(|&&x| x > threshold).count()
            + validation_partial
                .iter()
                .filter(|&&x| x > novelty.threshold_for(true))
                .count();
        novelty.validation_rate =
            above as f64 / (validation_full.len() + validation_partial.len()) as f64;
        Some(novelty)
    }

    /// The threshold of a window holding fewer records than the model's window
    /// (`partial`) or a full one.
    pub fn threshold_for(&self, partial: bool) -> f64 {
        match self.partial_threshold {
            Some(t) if partial => t,
            _ => self.threshold,
        }
    }

    /// Whether the saved test fits a detector whose states have `hidden` units (all its
    /// networks') and `classes` classes: the reason when it does not.
    pub fn check(&self, hidden: usize, classes: usize) -> Result<(), String> {
        let networks = self.networks;
        if self.hidden != hidden || networks == 0 || !hidden.is_multiple_of(networks) {
            return Err(format!(
                "{} hidden units in {networks} network(s), but the detector's states have {hidden}",
                self.hidden
            ));
        }
        let b = hidden / networks;
        if self.whitening.len() != networks * b * b {
            return Err(format!(
                "{} whitening values, expected {networks} × {b} × {b}",
                self.whitening.len()
            ));
        }
        if self.means.len() != classes || self.means.iter().flatten().any(|m| m.len() != hidden) {
            return Err(format!(
                "class means for {} classes of {hidden} units expected",
                classes
            ));
        }
        Ok(())
    }

    /// Mahalanobis distance of the state `h` to class `class`'s mean, the mean over the
    /// networks of each one's distance on its own units (infinite for a class without
    /// training windows).
    pub fn distance(&self, h: &[f32], class: usize) -> f64 {
        let Some(Some(mean)) = self.means.get(class) else {
            return f64::INFINITY;
        };
        let networks = self.networks.max(1);
        let b = self.hidden / networks;
        let mut total = 0.0;
        let mut centred = vec![0f64; b];
        for block in 0..networks {
            let units = block * b..(block + 1) * b;
            for ((c, &a), &m) in centred.iter_mut().zip(&h[units.clone()]).zip(&mean[units]) {
                *c = f64::from(a - m);
            }
            let whitening = &self.whitening[block * b * b..(block + 1) * b * b];
            let mut sum = 0.0;
            for i in 0..b {
                let z: f64 = whitening[i * b..i * b + i + 1]
                    .iter()
                    .zip(&centred)
                    .map(|(&w, &c)| f64::from(w) * c)
                    .sum();
                sum += z * z;
            }
            total += sum.sqrt();
        }
        total / networks as f64
    }
}

/// The lower Cholesky factor of the symmetric positive definite `a` (`n × n`), or `None`
/// when it is not positive definite.
fn cholesky(a: &[f64], n: usize) -> Option<Vec<f64>> {
    let mut l = vec![0f64; n * n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i * n + k] * l[j * n + k]).sum();
            if i == j {
                let d = a[i * n + i] - s;
                if d <= 0.0 || !d.is_finite() {
                    return None;
                }
                l[i * n + j] = d.sqrt();
            } else {
                l[i * n + j] = (a[i * n + j] - s) / l[j * n + j];
            }
        }
    }
    Some(l)
}

/// The inverse of the lower triangular `l` (`n × n`, non-zero diagonal), lower triangular.
fn lower_inverse(l: &[f64], n: usize) -> Vec<f64> {
    let mut inv = vec![0f64; n * n];
    for col in 0..n {
        // Forward substitution of L x = e_col.
        for i in col..n {
            let rhs = if i == col { 1.0 } else { 0.0 };
            let s: f64 = (col..i).map(|k| l[i * n + k] * inv[k * n + col]).sum();
            inv[i * n + col] = (rhs - s) / l[i * n + i];
        }
    }
    inv
}

/// The normal-vs-attack decision at a chosen false-alarm rate (`--max-false-alarm`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatingPoint {
    /// The false-alarm rate asked for.
    pub max_false_alarm: f64,
    /// Windows whose attack score `1 − P(benign)` exceeds this are attacks.
    pub threshold: f64,
    /// On the validation windows at this threshold: benign windows flagged.
    pub validation_false_alarm: f64,
    /// On the validation windows at this threshold: attack windows flagged.
    pub validation_detection: Option<f64>,
    /// Validation benign windows it was set on.
    pub validation_rows: u64,
}

impl OperatingPoint {
    /// The lowest threshold that flags at most `max_false_alarm` of the validation benign
    /// windows, from the validation `scores` and classes `y` (`None` without benign rows).
    pub fn fit(scores: &Scores, y: &[u32], normal: usize, max_false_alarm: f64) -> Option<Self> {
        let attack = |i: usize| 1.0 - f64::from(scores.row(i)[normal]);
        let mut benign: Vec<f64> = (0..y.len())
            .filter(|&i| y[i] as usize == normal)
            .map(attack)
            .collect();
        if benign.is_empty() {
            return None;
        }
        benign.sort_unstable_by(f64::total_cmp);
        let threshold = quantile_threshold(&benign, max_false_alarm)?;
        let flagged = benign.iter().filter(|&&a| a > threshold).count();
        let attacks: Vec<f64> = (0..y.len())
            .filter(|&i| y[i] as usize != normal)
            .map(attack)
            .collect();
        Some(OperatingPoint {
            max_false_alarm,
            threshold,
            validation_false_alarm: flagged as f64 / benign.len() as f64,
            validation_detection: (!attacks.is_empty()).then(|| {
                attacks.iter().filter(|&&a| a > threshold).count() as f64 / attacks.len() as f64
            }),
            validation_rows: benign.len() as u64,
        })
    }
}

/// What [`crate::artifact::Detector::calibrate`] fits. By default neither: the unknown-
/// traffic test is off because benign devices the training traffic lacks lie far from it:
/// on the development protocol (2 of MQTTset's 7 benign sensors in training) it added 1.3
/// points of false alarms at `--unknown-rate 0.001`, against 0.11 on the held-out halves
/// (all 7); see README "Unknown attacks".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// The unknown-traffic test's share of validation benign windows above its threshold;
    /// `None`: no test.
    pub unknown_rate: Option<f64>,
    /// The operating point's false-alarm rate; `None`: the most probable class.
    pub max_false_alarm: Option<f64>,
}

/// What a detector decides beyond the most probable class, saved in `model.json`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionRule {
    /// The benign class's index, when the model has one.
    pub normal: Option<usize>,
    /// `--max-false-alarm`'s threshold; `None`: the most probable class.
    pub operating_point: Option<OperatingPoint>,
    /// The unknown-traffic test; `None`: no window is unknown.
    pub novelty: Option<Novelty>,
}

impl DecisionRule {
    /// Each window's class: the most probable one, moved across the operating point's
    /// threshold, and `classes` (one past the last class: `unknown`) for a window decided
    /// benign whose state (`states`, `[n, hidden]`) is beyond the novelty threshold, the
    /// partial windows' for those `partial` marks (a flow's first packets; `None`: all
    /// full). With a novelty test and states, also each window's novelty: the distance of
    /// its state to its decided class's mean (`unknown` windows: to the benign mean),
    /// each computed once; otherwise empty.
    pub fn decide(
        &self,
        scores: &Scores,
        states: Option<&[f32]>,
        partial: Option<&[bool]>,
    ) -> (Vec<u32>, Vec<f64>) {
        let mut predicted = self.operating(scores);
        let (Some(normal), Some(nov), Some(states)) = (self.normal, &self.novelty, states) else {
            return (predicted, Vec::new());
        };
        let unknown = scores.classes as u32;
        let mut novelty = Vec::with_capacity(predicted.len());
        for (i, (p, h)) in predicted
            .iter_mut()
            .zip(states.chunks_exact(nov.hidden))
            .enumerate()
        {
            let d = nov.distance(h, *p as usize);
            let short = partial.is_some_and(|s| s[i]);
            if *p as usize == normal && d > nov.threshold_for(short) {
                *p = unknown;
            }
            novelty.push(d);
        }
        (predicted, novelty)
    }

    /// The most probable class, moved across the operating point's threshold.
    fn operating(&self, scores: &Scores) -> Vec<u32> {
        let mut predicted = scores.predictions();
        let Some(normal) = self.normal else {
            return predicted;
        };
        if let Some(op) = &self.operating_point {
            for (i, p) in predicted.iter_mut().enumerate() {
                let row = scores.row(i);
                if 1.0 - f64::from(row[normal]) > op.threshold {
                    // The most probable attack class.
                    let mut best = usize::from(normal == 0);
                    for (c, &v) in row.iter().enumerate() {
                        if c != normal && v > row[best] {
                            best = c;
                        }
                    }
                    *p = best as u32;
                } else {
                    *p = normal as u32;
                }
            }
        }
        predicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cholesky_and_inverse_match_a_hand_computation() {
        // [[4, 2], [2, 3]] = L Lᵀ with L = [[2, 0], [1, √2]]; L⁻¹ = [[1/2, 0], [−1/(2√2), 1/√2]].
        let l = cholesky(&[4.0, 2.0, 2.0, 3.0], 2).unwrap();
        let r2 = 2f64.sqrt();
        for (g, w) in l.iter().zip([2.0, 0.0, 1.0, r2]) {
            assert!((g - w).abs() < 1e-12, "{l:?}");
        }
        let inv = lower_inverse(&l, 2);
        for (g, w) in inv.iter().zip([0.5, 0.0, -1.0 / (2.0 * r2), 1.0 / r2]) {
            assert!((g - w).abs() < 1e-12, "{inv:?}");
        }
        assert!(
            cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none(),
            "not positive definite"
        );
    }

    #[test]
    fn distance_is_mahalanobis_and_the_threshold_leaves_the_target_share_above() {
        // Two classes in 2-D; class 0 around (0, 0), class 1 around (10, 0), the shared
        // within-class spread 1 along x and 4 along y (no correlation).
        let mut states = Vec::new();
        let mut labels = Vec::new();
        for (c, cx) in [(0u32, 0.0f32), (1, 10.0)] {
            for (dx, dy) in [(-1.0, -2.0), (1.0, 2.0), (-1.0, 2.0), (1.0, -2.0)] {
                states.extend([cx + dx, dy]);
                labels.push(c);
            }
        }
        // Validation benign: distances 0.1 … 1.0 (x = d, y = 0, variance 1 along x).
        let validation: Vec<f32> = (1..=10).flat_map(|i| [i as f32 / 10.0, 0.0]).collect();
        let full = vec![false; 10];
        let none = BenignWindows {
            states: &[],
            partial: &[],
        };
        let val = BenignWindows {
            states: &validation,
            partial: &full,
        };
        let nov = Novelty::fit(&states, &labels, 2, 2, 1, 0, none, val, 0.2).unwrap();
        assert_eq!(nov.partial_threshold, None);
        // Covariance diag(1, 4) ridged by 1e-3 × 2.5.
        let d = nov.distance(&[0.0, 4.0], 0);
        assert!((d - 4.0 / (4.0f64 + 2.5e-3).sqrt()).abs() < 1e-4, "{d}");
        let d = nov.distance(&[13.0, 0.0], 1);
        assert!((d - 3.0 / (1.0f64 + 2.5e-3).sqrt()).abs() < 1e-4, "{d}");
        // 20 % of 10 rows above: the threshold is the 8th smallest distance (0.8).
        assert!((nov.threshold - 0.8 / (1.0f64 + 2.5e-3).sqrt()).abs() < 1e-4);
        assert!((nov.validation_rate - 0.2).abs() < 1e-12);
        // A window decided benign far from benign traffic is unknown (index 2).
        let scores = Scores {
            probabilities: vec![0.9, 0.1, 0.9, 0.1, 0.2, 0.8],
            classes: 2,
        };
        let rule = DecisionRule {
            normal: Some(0),
            operating_point: None,
            novelty: Some(nov),
        };
        let states = [0.5, 0.0, 5.0, 0.0, 5.0, 0.0];
        assert_eq!(rule.decide(&scores, Some(&states), None).0, vec![0, 2, 1]);
        assert_eq!(rule.decide(&scores, None, None).0, vec![0, 0, 1]);
    }

    #[test]
    fn an_ensembles_distance_is_the_mean_of_its_networks_distances() {
        // Two networks of 2 units: network A's states as in the test above, network B's
        // spread 3 along x and 1 along y, and correlated with A's (what a joint whitening
        // of four units would trip on).
        let mut a = Vec::new();
        let mut b = Vec::new();
        let mut labels = Vec::new();
        for (c, cx) in [(0u32, 0.0f32), (1, 10.0)] {
            for (dx, dy) in [(-1.0, -2.0), (1.0, 2.0), (-1.0, 2.0), (1.0, -2.0)] {
                a.extend([cx + dx, dy]);
                b.extend([cx + 3.0 * dx, dy / 2.0 + 0.5 * dx]);
                labels.push(c);
            }
        }
        let side_by_side: Vec<f32> = a
            .chunks(2)
            .zip(b.chunks(2))
            .flat_map(|(x, y)| x.iter().chain(y).copied())
            .collect();
        let val_a: Vec<f32> = (1..=10).flat_map(|i| [i as f32 / 10.0, 0.0]).collect();
        let val_b: Vec<f32> = (1..=10).flat_map(|i| [0.0, i as f32 / 5.0]).collect();
        let val: Vec<f32> = val_a
            .chunks(2)
            .zip(val_b.chunks(2))
            .flat_map(|(x, y)| x.iter().chain(y).copied())
            .collect();
        let full = vec![false; 10];
        let none = BenignWindows {
            states: &[],
            partial: &[],
        };
        let set = |states| BenignWindows {
            states,
            partial: &full,
        };
        let na = Novelty::fit(&a, &labels, 2, 2, 1, 0, none, set(&val_a), 0.2).unwrap();
        let nb = Novelty::fit(&b, &labels, 2, 2, 1, 0, none, set(&val_b), 0.2).unwrap();
        let both = Novelty::fit(&side_by_side, &labels, 2, 4, 2, 0, none, set(&val), 0.2).unwrap();
        assert_eq!(both.whitening.len(), 2 * 2 * 2);
        both.check(4, 2).unwrap();
        for (h, class) in [([0.0f32, 4.0, 1.0, -1.0], 0), ([13.0, 0.0, 9.0, 2.0], 1)] {
            let want = (na.distance(&h[..2], class) + nb.distance(&h[2..], class)) / 2.0;
            let got = both.distance(&h, class);
            assert!((got - want).abs() < 1e-9, "{got} vs {want}");
        }
        // The threshold is set on the mean distances: 20 % of the 10 validation rows above.
        assert!((both.validation_rate - 0.2).abs() < 1e-12);
        // A saved test that does not fit the detector is refused, with the reason.
        assert!(both.check(6, 2).unwrap_err().contains("hidden units"));
        assert!(both.check(4, 3).unwrap_err().contains("class means"));
        let mut cut = both.clone();
        cut.whitening.pop();
        assert!(cut.check(4, 2).unwrap_err().contains("whitening values"));
        // Blocks that don't divide the state: no test.
        assert!(Novelty::fit(&side_by_side, &labels, 2, 4, 3, 0, none, set(&val), 0.2).is_none());
    }

    #[test]
    fn a_flows_first_packets_have_their_own_threshold_set_on_the_training_flow_starts() {
        // Class 0 around (0, 0) with spread 1 along x and y; class 1 around (10, 0).
        let mut states = Vec::new();
        let mut labels = Vec::new();
        for (c, cx) in [(0u32, 0.0f32), (1, 10.0)] {
            for (dx, dy) in [(-1.0, -1.0), (1.0, 1.0), (-1.0, 1.0), (1.0, -1.0)] {
                states.extend([cx + dx, dy]);
                labels.push(c);
            }
        }
        let s = (1.0f64 + 1e-3).sqrt(); // the ridged spread
        // Validation benign: full windows at distances 0.1 … 1.0 along x.
        let val_states: Vec<f32> = (1..=10).flat_map(|i| [i as f32 / 10.0, 0.0]).collect();
        let val_partial = vec![false; 10];
        // Training benign: full windows at 0.5 and 2.0 (2.0 above validation's 0.9),
        // and a flow's first packets at 3 … 6 along y.
        let train_states = [
            0.5f32, 0.0, 2.0, 0.0, 0.0, 3.0, 0.0, 4.0, 0.0, 5.0, 0.0, 6.0,
        ];
        let train_partial = [false, false, true, true, true, true];
        let nov = Novelty::fit(
            &states,
            &labels,
            2,
            2,
            1,
            0,
            BenignWindows {
                states: &train_states,
                partial: &train_partial,
            },
            BenignWindows {
                states: &val_states,
                partial: &val_partial,
            },
            0.25,
        )
        .unwrap();
        // Full windows: max(validation's 25 % quantile 0.8, training's 2 windows: 2.0).
        assert!((nov.threshold - 2.0 / s).abs() < 1e-4, "{nov:?}");
        // Partial windows: one of the four may lie above: the third largest, 5.0.
        assert!(
            (nov.partial_threshold.unwrap() - 5.0 / s).abs() < 1e-4,
            "{nov:?}"
        );
        assert_eq!(nov.partial_rows, 4);
        assert_eq!(nov.validation_rows, 10);
        assert_eq!(nov.validation_rate, 0.0);
        // A benign-looking window at distance 4.5: unknown as a full window, benign at a
        // flow's start; at 5.5 unknown either way.
        let scores = Scores {
            probabilities: vec![0.9, 0.1, 0.9, 0.1, 0.9, 0.1],
            classes: 2,
        };
        let rule = DecisionRule {
            normal: Some(0),
            operating_point: None,
            novelty: Some(nov),
        };
        let h = [0.0, 4.5, 0.0, 4.5, 0.0, 5.5];
        assert_eq!(
            rule.decide(&scores, Some(&h), Some(&[false, true, true])).0,
            vec![2, 0, 2]
        );
        assert_eq!(rule.decide(&scores, Some(&h), None).0, vec![2, 2, 2]);
    }

    #[test]
    fn the_operating_point_flags_at_most_the_asked_share_of_benign_windows() {
        // Benign windows with P(benign) 0.99, 0.95, 0.9, 0.6 (attack scores 0.01 … 0.4)
        // and two attack windows with attack scores 0.3 and 0.9.
        let p_benign = [0.99f32, 0.95, 0.9, 0.6, 0.7, 0.1];
        let scores = Scores {
            probabilities: p_benign.iter().flat_map(|&p| [p, 1.0 - p]).collect(),
            classes: 2,
        };
        let y = [0, 0, 0, 0, 1, 1];
        let op = OperatingPoint::fit(&scores, &y, 0, 0.25).unwrap();
        // One of four benign windows may be flagged: the threshold is the third largest
        // attack score, 0.1 (to float rounding).
        assert!((op.threshold - 0.1).abs() < 1e-6, "{op:?}");
        assert!((op.validation_false_alarm - 0.25).abs() < 1e-12);
        assert_eq!(op.validation_detection, Some(1.0));
        let rule = DecisionRule {
            normal: Some(0),
            operating_point: Some(op),
            novelty: None,
        };
        assert_eq!(rule.decide(&scores, None, None).0, vec![0, 0, 0, 1, 1, 1]);
        // Asking for none: the threshold is the largest benign attack score.
        let strict = OperatingPoint::fit(&scores, &y, 0, 0.0).unwrap();
        assert!((strict.threshold - 0.4).abs() < 1e-6);
        assert_eq!(strict.validation_false_alarm, 0.0);
    }
}
