//! Classification metrics, defined as scikit-learn defines them.
//!
//! - Per class: precision = TP / (TP + FP), recall = TP / (TP + FN), F1 their
//!   harmonic mean; 0 where the denominator is 0 (scikit-learn's `zero_division`
//!   default). Support = true rows of the class.
//! - Macro average: the unweighted mean over the classes that occur in the true or
//!   predicted labels (`classification_report`'s label set); weighted average: the
//!   mean weighted by support.
//! - ROC: one-vs-rest per class from the score column, with `roc_curve`'s
//!   `drop_intermediate` points; AUC by the trapezoidal rule. Macro AUC averages the
//!   classes that have both positive and negative rows (scikit-learn refuses the
//!   others); micro AUC pools every (row, class) pair (`average="micro"`).
//! - PR-AUC: average precision, `sum_n (R_n - R_{n-1}) P_n` over descending score
//!   thresholds (`average_precision_score`).
//! - Detection rate: attack rows predicted as any attack class / attack rows;
//!   false-alarm rate: normal rows predicted as an attack / normal rows.
//! - Uncertainty: each class's recall (TP of its support) and precision (TP of the rows
//!   predicted as it) with a 95 % Wilson score interval, so a class with few test rows is
//!   read as what it is: 18 of 22 is a recall of 0.82 that could be anywhere from 0.61 to
//!   0.93. Wilson's interval, unlike the normal approximation, stays inside [0, 1] and is
//!   honest at 0 or n successes.

use serde::{Deserialize, Serialize};

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ClassScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    pub support: u64,
}

/// z of a two-sided 95 % interval (the normal distribution's 0.975 quantile).
pub const Z_95: f64 = 1.959_963_984_540_054;

/// A confidence interval of a proportion.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Interval {
    pub low: f64,
    pub high: f64,
}

impl Interval {
    /// `high - low`.
    pub fn width(&self) -> f64 {
        self.high - self.low
    }
}

/// The Wilson score interval of `successes` out of `trials` at normal quantile `z`
/// (Wilson 1927): `(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`. None without
/// trials.
pub fn wilson(successes: u64, trials: u64, z: f64) -> Option<Interval> {
    if trials == 0 {
        return None;
    }
    let n = trials as f64;
    let p = successes.min(trials) as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    // At 0 or n successes the bound is exactly 0 or 1; the formula leaves rounding there.
    Some(Interval {
        low: if successes == 0 {
            0.0
        } else {
            (centre - half).max(0.0)
        },
        high: if successes >= trials {
            1.0
        } else {
            (centre + half).min(1.0)
        },
    })
}

/// 95 % Wilson intervals of one class's recall and precision.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ClassIntervals {
    /// Of its support (None without test rows of the class).
    pub recall: Option<Interval>,
    /// Of the rows predicted as it (None when none was).
    pub precision: Option<Interval>,
}

/// A ROC curve and its area.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RocCurve {
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    pub auc: f64,
}

/// Everything `evaluate` writes to metrics.json.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub classes: Vec<String>,
    pub accuracy: f64,
    pub per_class: Vec<ClassScores>,
    pub macro_avg: ClassScores,
    pub weighted_avg: ClassScores,
    pub macro_f1: f64,
    pub weighted_f1: f64,
    /// `confusion[true][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    /// One-vs-rest ROC per class; `None` when the class has no positive or no
    /// negative rows.
    pub roc: Vec<Option<RocCurve>>,
    pub roc_auc_macro: Option<f64>,
    pub roc_auc_micro: Option<f64>,
    /// Average precision per class (`None` without positive rows).
    pub pr_auc: Vec<Option<f64>>,
    pub pr_auc_macro: Option<f64>,
    /// Attack vs normal, when a normal class is named.
    pub detection_rate: Option<f64>,
    pub false_alarm_rate: Option<f64>,
    /// 95 % Wilson intervals of each class's recall and precision.
    #[serde(default)]
    pub intervals: Vec<ClassIntervals>,
}

/// Scores predictions.
///
/// `scores` is row-major `n x k` (one probability or score per class);
/// `normal` is the index of the benign class, if there is one.
///
/// # Panics
/// When lengths disagree or a label is not below `classes.len()`: callers build
/// these arrays from one model run, so a mismatch is a bug, not bad input.
pub fn evaluate(
    y_true: &[u32],
    y_pred: &[u32],
    scores: &[f32],
    classes: &[String],
    normal: Option<usize>,
) -> Metrics {
    evaluate_inner(y_true, y_pred, scores, classes, normal, classes.len())
}

/// The class a detector gives a window unlike all its training traffic
/// ([`crate::novelty`]).
pub const UNKNOWN: &str = "unknown";

/// [`evaluate`] of a detector's decisions, in which a prediction may be `classes.len()`:
/// [`UNKNOWN`]. When one is, `unknown` joins the classes as a column no row truly has: it
/// is an alert (it counts toward the detection and false-alarm rates), a miss of the row's
/// own class, and it stays out of the macro and weighted averages (scikit-learn's
/// `labels=` the model's classes); its ROC curve is `None`.
pub fn evaluate_decisions(
    y_true: &[u32],
    y_pred: &[u32],
    scores: &[f32],
    classes: &[String],
    normal: Option<usize>,
) -> Metrics {
    let k = classes.len();
    if !y_pred.iter().any(|&p| p as usize == k) {
        return evaluate(y_true, y_pred, scores, classes, normal);
    }
    let mut names = classes.to_vec();
    names.push(UNKNOWN.into());
    let widened: Vec<f32> = scores
        .chunks_exact(k)
        .flat_map(|row| row.iter().copied().chain([0.0]))
        .collect();
    evaluate_inner(y_true, y_pred, &widened, &names, normal, k)
}

/// [`evaluate`], where classes from `known` on are predicted-only (see
/// [`evaluate_decisions`]).
fn evaluate_inner(
    y_true: &[u32],
    y_pred: &[u32],
    scores: &[f32],
    classes: &[String],
    normal: Option<usize>,
    known: usize,
) -> Metrics {
    let k = classes.len();
    let n = y_true.len();
    assert_eq!(y_pred.len(), n, "one prediction per row");
    assert_eq!(scores.len(), n * k, "one score per row and class");
    let confusion = confusion_matrix(y_true, y_pred, k);
    let (per_class, mut present) = class_scores(&confusion);
    present.retain(|&c| c < known || per_class[c].support > 0);
    let mean = |f: &dyn Fn(&ClassScores) -> f64| {
        present.iter().map(|&c| f(&per_class[c])).sum::<f64>() / present.len().max(1) as f64
    };
    let total = n as f64;
    let wmean = |f: &dyn Fn(&ClassScores) -> f64| {
        present
            .iter()
            .map(|&c| f(&per_class[c]) * per_class[c].support as f64)
            .sum::<f64>()
            / total.max(1.0)
    };
    let macro_avg = ClassScores {
        precision: mean(&|s| s.precision),
        recall: mean(&|s| s.recall),
        f1: mean(&|s| s.f1),
        support: n as u64,
    };
    let weighted_avg = ClassScores {
        precision: wmean(&|s| s.precision),
        recall: wmean(&|s| s.recall),
        f1: wmean(&|s| s.f1),
        support: n as u64,
    };
    let correct: u64 = (0..k).map(|c| confusion[c][c]).sum();

    let column = |c: usize| -> Vec<f64> { (0..n).map(|i| f64::from(scores[i * k + c])).collect() };
    let positives = |c: usize| -> Vec<bool> { y_true.iter().map(|&y| y as usize == c).collect() };
    let roc: Vec<Option<RocCurve>> = (0..k)
        .map(|c| roc_curve(&positives(c), &column(c)))
        .collect();
    let aucs: Vec<f64> = roc.iter().flatten().map(|r| r.auc).collect();
    let roc_auc_macro = (!aucs.is_empty()).then(|| aucs.iter().sum::<f64>() / aucs.len() as f64);
    let roc_auc_micro = {
        let cells = (0..n * k).filter(|j| j % k < known);
        let all_pos: Vec<bool> = cells
            .clone()
            .map(|j| y_true[j / k] as usize == j % k)
            .collect();
        let all_scores: Vec<f64> = cells.map(|j| f64::from(scores[j])).collect();
        roc_curve(&all_pos, &all_scores).map(|r| r.auc)
    };
    let pr_auc: Vec<Option<f64>> = (0..k)
        .map(|c| average_precision(&positives(c), &column(c)))
        .collect();
    let aps: Vec<f64> = pr_auc.iter().flatten().copied().collect();
    let pr_auc_macro = (!aps.is_empty()).then(|| aps.iter().sum::<f64>() / aps.len() as f64);

    let (detection_rate, false_alarm_rate) = match normal {
        Some(nc) if nc < k => {
            let attack_rows: u64 = (0..k)
                .filter(|&c| c != nc)
                .map(|c| confusion[c].iter().sum::<u64>())
                .sum();
            let attack_hit: u64 = (0..k)
                .filter(|&c| c != nc)
                .map(|c| {
                    confusion[c]
                        .iter()
                        .enumerate()
                        .filter(|(p, _)| *p != nc)
                        .map(|(_, v)| v)
                        .sum::<u64>()
                })
                .sum();
            let normal_rows: u64 = confusion[nc].iter().sum();
            let false_alarms = normal_rows - confusion[nc][nc];
            (
                (attack_rows > 0).then(|| attack_hit as f64 / attack_rows as f64),
                (normal_rows > 0).then(|| false_alarms as f64 / normal_rows as f64),
            )
        }
        _ => (None, None),
    };
    let intervals = class_intervals(&confusion);
    Metrics {
        classes: classes.to_vec(),
        accuracy: ratio(correct as f64, total),
        macro_f1: macro_avg.f1,
        weighted_f1: weighted_avg.f1,
        per_class,
        macro_avg,
        weighted_avg,
        confusion,
        roc,
        roc_auc_macro,
        roc_auc_micro,
        pr_auc,
        pr_auc_macro,
        detection_rate,
        false_alarm_rate,
        intervals,
    }
}

/// Each class's recall and precision intervals from a confusion matrix.
fn class_intervals(confusion: &[Vec<u64>]) -> Vec<ClassIntervals> {
    (0..confusion.len())
        .map(|c| {
            let tp = confusion[c][c];
            let support: u64 = confusion[c].iter().sum();
            let predicted: u64 = confusion.iter().map(|row| row[c]).sum();
            ClassIntervals {
                recall: wilson(tp, support, Z_95),
                precision: wilson(tp, predicted, Z_95),
            }
        })
        .collect()
}

/// Per-class precision, recall, F1 and support from a confusion matrix, and the classes
/// scikit-learn's `classification_report` lists (seen in truth or predictions).
fn class_scores(confusion: &[Vec<u64>]) -> (Vec<ClassScores>, Vec<usize>) {
    let k = confusion.len();
    let per_class: Vec<ClassScores> = (0..k)
        .map(|c| {
            let tp = confusion[c][c] as f64;
            let support: u64 = confusion[c].iter().sum();
            let predicted: u64 = confusion.iter().map(|row| row[c]).sum();
            let precision = ratio(tp, predicted as f64);
            let recall = ratio(tp, support as f64);
            ClassScores {
                precision,
                recall,
                f1: ratio(2.0 * precision * recall, precision + recall),
                support,
            }
        })
        .collect();
    let present: Vec<usize> = (0..k)
        .filter(|&c| per_class[c].support > 0 || confusion.iter().any(|row| row[c] > 0))
        .collect();
    (per_class, present)
}

/// Macro-F1 alone, as [`evaluate`] computes it (scikit-learn's `f1_score(average="macro")`
/// over the classes seen in truth or predictions), without the curves: for scoring every
/// round or epoch.
pub fn macro_f1(y_true: &[u32], y_pred: &[u32], k: usize) -> f64 {
    macro_f1_of_confusion(&confusion_matrix(y_true, y_pred, k))
}

/// [`macro_f1`] from a confusion matrix (`confusion[true][predicted]`): what sums of
/// confusion matrices from several places give, as the rows pooled would.
pub fn macro_f1_of_confusion(confusion: &[Vec<u64>]) -> f64 {
    let (per_class, present) = class_scores(confusion);
    present.iter().map(|&c| per_class[c].f1).sum::<f64>() / present.len().max(1) as f64
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

/// `confusion[true][predicted]`.
pub fn confusion_matrix(y_true: &[u32], y_pred: &[u32], k: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; k]; k];
    for (&t, &p) in y_true.iter().zip(y_pred) {
        m[t as usize][p as usize] += 1;
    }
    m
}

/// True and false positive counts at each distinct score, highest score first
/// (scikit-learn's `_binary_clf_curve`).
fn binary_clf_curve(positive: &[bool], score: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut order: Vec<usize> = (0..score.len()).collect();
    // Descending by score; ties keep no particular order, as counts are taken only
    // where the score changes.
    order.sort_by(|&a, &b| score[b].total_cmp(&score[a]));
    let (mut tps, mut fps) = (Vec::new(), Vec::new());
    let (mut tp, mut fp) = (0f64, 0f64);
    for (i, &r) in order.iter().enumerate() {
        if positive[r] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last_of_value = i + 1 == order.len() || score[order[i + 1]] != score[r];
        if last_of_value {
            tps.push(tp);
            fps.push(fp);
        }
    }
    (tps, fps)
}

/// One-vs-rest ROC curve with scikit-learn's `drop_intermediate` points, or `None`
/// when there are no positive or no negative rows.
pub fn roc_curve(positive: &[bool], score: &[f64]) -> Option<RocCurve> {
    let (tps, fps) = binary_clf_curve(positive, score);
    let (p, q) = (*tps.last()?, *fps.last()?);
    if p == 0.0 || q == 0.0 {
        return None;
    }
    // Keep the first and last points and every point where the curve bends.
    let m = tps.len();
    let keep: Vec<usize> = (0..m)
        .filter(|&i| {
            i == 0 || i == m - 1 || {
                let d2f = fps[i + 1] - 2.0 * fps[i] + fps[i - 1];
                let d2t = tps[i + 1] - 2.0 * tps[i] + tps[i - 1];
                d2f != 0.0 || d2t != 0.0
            }
        })
        .collect();
    let mut fpr = vec![0.0];
    let mut tpr = vec![0.0];
    for &i in &keep {
        fpr.push(fps[i] / q);
        tpr.push(tps[i] / p);
    }
    let auc = fpr
        .windows(2)
        .zip(tpr.windows(2))
        .map(|(f, t)| (f[1] - f[0]) * (t[1] + t[0]) / 2.0)
        .sum();
    Some(RocCurve { fpr, tpr, auc })
}

/// Average precision (`average_precision_score`), or `None` without positives.
pub fn average_precision(positive: &[bool], score: &[f64]) -> Option<f64> {
    let (tps, fps) = binary_clf_curve(positive, score);
    let p = *tps.last()?;
    if p == 0.0 {
        return None;
    }
    let mut ap = 0.0;
    let mut prev_recall = 0.0;
    for (tp, fp) in tps.iter().zip(&fps) {
        let recall = tp / p;
        let precision = tp / (tp + fp);
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
    }
    Some(ap)
}

#[cfg(test)]
mod tests {
    use super::{Interval, Z_95, wilson};

    /// Hand computation of Wilson's formula at z = 1.959964 (the values R's
    /// `prop.test(correct = FALSE)` and statsmodels' `proportion_confint(method="wilson")`
    /// print): 8 of 10 -> [0.4902, 0.9433]; 0 of 5 -> [0, 0.4345]; 5 of 5 -> [0.5655, 1].
    #[test]
    fn wilson_intervals_match_a_hand_computation() {
        let close = |i: Option<Interval>, low: f64, high: f64| {
            let i = i.expect("an interval");
            assert!(
                (i.low - low).abs() < 5e-5 && (i.high - high).abs() < 5e-5,
                "{i:?} vs [{low}, {high}]"
            );
        };
        close(wilson(8, 10, Z_95), 0.4902, 0.9433);
        close(wilson(0, 5, Z_95), 0.0, 0.4345);
        close(wilson(5, 5, Z_95), 0.5655, 1.0);
        close(wilson(18, 22, Z_95), 0.6148, 0.9269);
        assert_eq!(wilson(0, 0, Z_95), None);
        // More rows, a narrower interval around the same proportion.
        let small = wilson(9, 10, Z_95).unwrap().width();
        let large = wilson(900, 1000, Z_95).unwrap().width();
        assert!(large < small / 5.0, "{small} {large}");
    }

    use super::*;

    #[test]
    fn roc_matches_a_hand_computation() {
        // sklearn.metrics.roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]):
        // fpr [0, 0, 0.5, 0.5, 1], tpr [0, 0.5, 0.5, 1, 1], auc 0.75.
        let r = roc_curve(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]).unwrap();
        assert_eq!(r.fpr, vec![0.0, 0.0, 0.5, 0.5, 1.0]);
        assert_eq!(r.tpr, vec![0.0, 0.5, 0.5, 1.0, 1.0]);
        assert_eq!(r.auc, 0.75);
        assert!(roc_curve(&[true, true], &[0.1, 0.2]).is_none());
    }

    #[test]
    fn average_precision_matches_a_hand_computation() {
        // sklearn.metrics.average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        // = 0.5 * 1 + 0.5 * (2/3) = 0.8333...
        let ap = average_precision(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]).unwrap();
        assert!((ap - 5.0 / 6.0).abs() < 1e-12);
    }

    #[test]
    fn report_counts_and_rates() {
        let classes: Vec<String> = ["Normal", "DDoS", "Scan"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let y = [0, 0, 0, 1, 1, 2];
        let p = [0, 1, 0, 1, 2, 2];
        let s: Vec<f32> = p
            .iter()
            .flat_map(|&c| (0..3).map(move |j| if j == c { 0.8 } else { 0.1 }))
            .collect();
        let m = evaluate(&y, &p, &s, &classes, Some(0));
        assert_eq!(
            m.confusion,
            vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]
        );
        assert!((m.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // DDoS: precision 1/2, recall 1/2, F1 1/2.
        assert_eq!(
            m.per_class[1],
            ClassScores {
                precision: 0.5,
                recall: 0.5,
                f1: 0.5,
                support: 2
            }
        );
        // Both attack rows were called attacks (one as the wrong attack): DR 1.
        assert_eq!(m.detection_rate, Some(1.0));
        // One of three normal rows raised an alarm.
        assert!((m.false_alarm_rate.unwrap() - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn unknown_is_an_alert_and_a_miss_but_not_a_class_of_the_averages() {
        let classes: Vec<String> = ["benign", "attack"].iter().map(|s| s.to_string()).collect();
        let y = [0, 0, 1, 1];
        let p = [0, 2, 1, 0];
        let s = [0.9f32, 0.1, 0.8, 0.2, 0.3, 0.7, 0.6, 0.4];
        let m = evaluate_decisions(&y, &p, &s, &classes, Some(0));
        assert_eq!(m.classes, ["benign", "attack", UNKNOWN]);
        assert_eq!(
            m.confusion,
            vec![vec![1, 0, 1], vec![1, 1, 0], vec![0, 0, 0]]
        );
        // benign: P 1/2, R 1/2; attack: P 1, R 1/2, F1 2/3; unknown left out.
        assert!(
            (m.macro_f1 - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12,
            "{}",
            m.macro_f1
        );
        assert!((m.false_alarm_rate.unwrap() - 0.5).abs() < 1e-12);
        assert!((m.detection_rate.unwrap() - 0.5).abs() < 1e-12);
        assert!(m.roc[2].is_none());
        // Without unknown predictions it is plain evaluate.
        let q = [0, 0, 1, 0];
        assert_eq!(
            evaluate_decisions(&y, &q, &s, &classes, Some(0)),
            evaluate(&y, &q, &s, &classes, Some(0))
        );
    }
}
