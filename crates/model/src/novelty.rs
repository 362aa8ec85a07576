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
    /// Hidden units.
    pub hidden: usize,
    /// Per class, the mean training state (`None`: no training windows).
    pub means: Vec<Option<Vec<f32>>>,
    /// `L⁻¹` of the shared covariance `Σ = L Lᵀ` (ridged), `hidden × hidden` row-major,
    /// lower triangular: the distance is `‖L⁻¹ (h − μ)‖`.
    pub whitening: Vec<f32>,
    /// Share of validation benign windows whose distance exceeds the threshold (asked).
    pub target_rate: f64,
    /// Distance above which a window predicted benign is unknown.
    pub threshold: f64,
    /// Share of validation benign windows above the threshold (got).
    pub validation_rate: f64,
    /// Training windows the means and covariance come from.
    pub fitted_rows: u64,
    /// Validation benign windows the threshold comes from.
    pub validation_rows: u64,
}

impl Novelty {
    /// Fits the class means and shared covariance on `states` (`[n, hidden]`) of training
    /// windows with classes `labels`, then the threshold on the distances of
    /// `validation_normal` (states of validation benign windows) to the benign mean.
    /// `None` without training windows or validation benign windows.
    pub fn fit(
        states: &[f32],
        labels: &[u32],
        classes: usize,
        hidden: usize,
        normal: usize,
        validation_normal: &[f32],
        target_rate: f64,
    ) -> Option<Novelty> {
        let n = labels.len();
        if n == 0 || validation_normal.is_empty() || hidden == 0 {
            return None;
        }
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
        // Shared (within-class) covariance.
        let mut cov = vec![0f64; hidden * hidden];
        let mut centred = vec![0f64; hidden];
        for (row, &y) in states.chunks_exact(hidden).zip(labels) {
            let mean = means[y as usize].as_ref()?;
            for ((c, &v), m) in centred.iter_mut().zip(row).zip(mean) {
                *c = f64::from(v) - m;
            }
            for i in 0..hidden {
                let ci = centred[i];
                for j in 0..=i {
                    cov[i * hidden + j] += ci * centred[j];
                }
            }
        }
        for i in 0..hidden {
            for j in 0..=i {
                cov[i * hidden + j] /= n as f64;
                cov[j * hidden + i] = cov[i * hidden + j];
            }
        }
        let mean_var = (0..hidden).map(|i| cov[i * hidden + i]).sum::<f64>() / hidden as f64;
        let ridge = RIDGE * mean_var.max(1e-12);
        for i in 0..hidden {
            cov[i * hidden + i] += ridge;
        }
        let l = cholesky(&cov, hidden)?;
        let whitening = lower_inverse(&l, hidden);
        let mut novelty = Novelty {
            hidden,
            means: means
                .into_iter()
                .map(|m| m.map(|m| m.into_iter().map(|v| v as f32).collect()))
                .collect(),
            whitening: whitening.into_iter().map(|v| v as f32).collect(),
            target_rate,
            threshold: f64::INFINITY,
            validation_rate: 0.0,
            fitted_rows: n as u64,
            validation_rows: (validation_normal.len() / hidden) as u64,
        };
        let mut d: Vec<f64> = validation_normal
            .chunks_exact(hidden)
            .map(|h| novelty.distance(h, normal))
            .collect();
        d.sort_unstable_by(f64::total_cmp);
        // The smallest threshold leaving at most target_rate of the rows above it.
        let allowed = (target_rate * d.len() as f64).floor() as usize;
        let threshold = d[d.len() - 1 - allowed.min(d.len() - 1)];
        novelty.threshold = threshold;
        novelty.validation_rate =
            d.iter().filter(|&&x| x > threshold).count() as f64 / d.len() as f64;
        Some(novelty)
    }

    /// Mahalanobis distance of the state `h` to class `class`'s mean (infinite for a class
    /// without training windows).
    pub fn distance(&self, h: &[f32], class: usize) -> f64 {
        let Some(Some(mean)) = self.means.get(class) else {
            return f64::INFINITY;
        };
        let k = self.hidden;
        let centred: Vec<f64> = h
            .iter()
            .zip(mean)
            .map(|(&a, &b)| f64::from(a - b))
            .collect();
        let mut sum = 0.0;
        for i in 0..k {
            let row = &self.whitening[i * k..i * k + i + 1];
            let z: f64 = row
                .iter()
                .zip(&centred)
                .map(|(&w, &c)| f64::from(w) * c)
                .sum();
            sum += z * z;
        }
        sum.sqrt()
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
        let allowed = (max_false_alarm * benign.len() as f64).floor() as usize;
        let threshold = benign[benign.len() - 1 - allowed.min(benign.len() - 1)];
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
/// traffic test is off because, calibrated on validation windows of connections the
/// training rows already hold, it marked 12 % of the benign windows of *new* connections
/// `unknown` on the development protocol (the first hundred packets of a new MQTT session
/// lie far from the long sessions of the training traffic); see README "Unknown attacks".
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
    /// benign whose state (`states`, `[n, hidden]`) is beyond the novelty threshold.
    pub fn decide(&self, scores: &Scores, states: Option<&[f32]>) -> Vec<u32> {
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
        if let (Some(nov), Some(states)) = (&self.novelty, states) {
            let unknown = scores.classes as u32;
            for (p, h) in predicted.iter_mut().zip(states.chunks_exact(nov.hidden)) {
                if *p as usize == normal && nov.distance(h, normal) > nov.threshold {
                    *p = unknown;
                }
            }
        }
        predicted
    }

    /// Each window's novelty: the distance of its state to its decided class's mean
    /// (`unknown` windows: to the benign mean). Empty without a novelty test.
    pub fn novelty(&self, predicted: &[u32], states: Option<&[f32]>) -> Vec<f64> {
        let (Some(nov), Some(states)) = (&self.novelty, states) else {
            return Vec::new();
        };
        predicted
            .iter()
            .zip(states.chunks_exact(nov.hidden))
            .map(|(&p, h)| {
                let class = if (p as usize) < nov.means.len() {
                    p as usize
                } else {
                    self.normal.unwrap_or(0)
                };
                nov.distance(h, class)
            })
            .collect()
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
        let nov = Novelty::fit(&states, &labels, 2, 2, 0, &validation, 0.2).unwrap();
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
        assert_eq!(rule.decide(&scores, Some(&states)), vec![0, 2, 1]);
        assert_eq!(rule.decide(&scores, None), vec![0, 0, 1]);
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
        assert_eq!(rule.decide(&scores, None), vec![0, 0, 0, 1, 1, 1]);
        // Asking for none: the threshold is the largest benign attack score.
        let strict = OperatingPoint::fit(&scores, &y, 0, 0.0).unwrap();
        assert!((strict.threshold - 0.4).abs() < 1e-6);
        assert_eq!(strict.validation_false_alarm, 0.0);
    }
}
