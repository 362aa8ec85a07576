//! How a tier (an edge, or the cloud) combines the models it receives.
//!
//! Every rule takes the received flat weight vectors with their sample counts and returns
//! one vector. [`Aggregation::Mean`] is FedAvg's weighted mean; the other three are the
//! robust rules Flower offers (FedMedian, FedTrimmedAvg, Krum), which bound what a few
//! poisoned updates can do to the result.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Error;

/// A received model: its flat weights and the training windows behind it.
#[derive(Debug, Clone, Copy)]
pub struct Update<'a> {
    /// Flat weights (see `iotids_model::params`).
    pub weights: &'a [f32],
    /// Training windows the sender trained on (`n_i`); the weight of the mean.
    pub samples: f64,
}

/// A tier's aggregation rule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Aggregation {
    /// `Σ n_i w_i / Σ n_i`: the sample-weighted mean (FedAvg, HierFAVG). The seed's eq. 5
    /// divides by the number of devices instead, which is this only when all `n_i` are equal.
    Mean,
    /// The coordinate-wise median, unweighted (Flower's FedMedian); with an even count, the
    /// mean of the two middle values, as numpy's.
    Median,
    /// Per coordinate, drop the `⌊β·m⌋` smallest and `⌊β·m⌋` largest of the `m` values and
    /// average the rest, unweighted (Flower's FedTrimmedAvg, scipy's `trim_mean`).
    TrimmedMean {
        /// Fraction cut from each end, in `[0, 0.5)`.
        beta: f64,
    },
    /// Multi-Krum (Blanchard et al. 2017): each update's score is the sum of its squared
    /// distances to its `max(1, m − f − 2)` nearest others; the `keep` lowest-scoring
    /// updates are averaged, weighted by samples (Flower's Krum).
    Krum {
        /// Byzantine updates tolerated.
        f: usize,
        /// Updates kept; 0 keeps `m − f` (at least 1). 1 is plain Krum.
        keep: usize,
    },
}

impl Aggregation {
    /// Combines `updates` into one vector.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] with no updates, vectors of different lengths, a total sample
    /// count of 0 (for the weighted rules), or a `beta` outside `[0, 0.5)`.
    pub fn aggregate(&self, updates: &[Update<'_>]) -> crate::Result<Vec<f32>> {
        let Some(first) = updates.first() else {
            return Err(Error::config("updates", "0", "at least one update"));
        };
        let len = first.weights.len();
        if updates.iter().any(|u| u.weights.len() != len) {
            return Err(Error::config(
                "updates",
                "vectors of different lengths",
                "updates of one model shape",
            ));
        }
        match *self {
            Aggregation::Mean => weighted_mean(updates),
            Aggregation::Median => Ok(coordinatewise(updates, |v| {
                let m = v.len();
                v.sort_unstable_by(f64::total_cmp);
                if m % 2 == 1 {
                    v[m / 2]
                } else {
                    (v[m / 2 - 1] + v[m / 2]) / 2.0
                }
            })),
            Aggregation::TrimmedMean { beta } => {
                if !(0.0..0.5).contains(&beta) {
                    return Err(Error::config("trim_beta", beta, "in [0, 0.5)"));
                }
                let cut = (beta * updates.len() as f64).floor() as usize;
                Ok(coordinatewise(updates, |v| {
                    v.sort_unstable_by(f64::total_cmp);
                    let kept = &v[cut..v.len() - cut];
                    kept.iter().sum::<f64>() / kept.len() as f64
                }))
            }
            Aggregation::Krum { f, keep } => {
                let chosen = krum_select(updates, f, keep);
                let picked: Vec<Update<'_>> = chosen.iter().map(|&i| updates[i]).collect();
                weighted_mean(&picked)
            }
        }
    }

    /// True for the rules that ignore sample counts (median, trimmed mean).
    pub fn is_unweighted(&self) -> bool {
        matches!(self, Aggregation::Median | Aggregation::TrimmedMean { .. })
    }
}

fn weighted_mean(updates: &[Update<'_>]) -> crate::Result<Vec<f32>> {
    let total: f64 = updates.iter().map(|u| u.samples).sum();
    if total.is_nan() || total <= 0.0 {
        return Err(Error::config(
            "samples",
            total,
            "a positive total sample count",
        ));
    }
    let mut acc = vec![0f64; updates[0].weights.len()];
    for u in updates {
        let share = u.samples / total;
        for (a, &w) in acc.iter_mut().zip(u.weights) {
            *a += share * f64::from(w);
        }
    }
    Ok(acc.into_iter().map(|v| v as f32).collect())
}

/// Where the output layer sits in a flat weight vector: the head's weight `[hidden,
/// classes]` (row-major: class `k`'s column is every `classes`-th value from `offset + k`)
/// followed by its bias `[classes]`, the last parameters of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// Index of the head's first weight.
    pub offset: usize,
    /// Inputs of the head (the last GRU layer's hidden size).
    pub hidden: usize,
    /// Outputs of the head (the classes).
    pub classes: usize,
}

impl Head {
    /// The head of a network of `len` flat weights whose head maps `hidden` units to
    /// `classes` outputs (None if `len` is too short to hold one).
    pub fn at_end(len: usize, hidden: usize, classes: usize) -> Option<Head> {
        let size = hidden * classes + classes;
        (classes > 0 && len >= size).then(|| Head {
            offset: len - size,
            hidden,
            classes,
        })
    }

    /// The indices of class `k`'s parameters: its weight column, then its bias.
    pub fn class_indices(&self, k: usize) -> impl Iterator<Item = usize> + '_ {
        (0..self.hidden)
            .map(move |j| self.offset + j * self.classes + k)
            .chain(std::iter::once(
                self.offset + self.hidden * self.classes + k,
            ))
    }

    /// The index of class `k`'s bias.
    pub fn bias(&self, k: usize) -> usize {
        self.offset + self.hidden * self.classes + k
    }
}

/// Class-wise aggregation of the output layer (after FedAvg's mean of everything): each
/// class's head parameters (its weight column and bias) become the mean of the updates'
/// weighted by how many windows *of that class* each update was trained on, instead of
/// by all its windows. Under label skew a class held by one device out of twenty would
/// otherwise be averaged with nineteen heads that never saw it and whose local training
/// only pushed its logit down; here those nineteen get weight 0 for it. A class no update
/// holds keeps the plain mean. `counts[i]` is update `i`'s windows per class (a summary a
/// device sends, never its rows).
///
/// # Errors
///
/// [`Error::Config`] for counts of another length than the head's classes, a vector of
/// another length than `combined`, or `counts` not one per update.
pub fn class_wise_head(
    combined: &mut [f32],
    updates: &[&[f32]],
    counts: &[&[u64]],
    head: Head,
) -> crate::Result<()> {
    if counts.len() != updates.len()
        || counts.iter().any(|c| c.len() != head.classes)
        || updates.iter().any(|u| u.len() != combined.len())
        || head.bias(head.classes - 1) >= combined.len()
    {
        return Err(Error::config(
            "class counts",
            "counts or vectors that don't match the head",
            "one count per class for every update, vectors of the model's length",
        ));
    }
    for k in 0..head.classes {
        let total: u64 = counts.iter().map(|c| c[k]).sum();
        if total == 0 {
            continue;
        }
        for j in head.class_indices(k) {
            let mut acc = 0f64;
            for (u, c) in updates.iter().zip(counts) {
                if c[k] > 0 {
                    acc += c[k] as f64 / total as f64 * f64::from(u[j]);
                }
            }
            combined[j] = acc as f32;
        }
    }
    Ok(())
}

/// Element-wise sum of per-class counts (empty if any is empty or they differ in length).
pub fn sum_counts<'a>(counts: impl IntoIterator<Item = &'a [u64]>) -> Vec<u64> {
    let mut sum: Option<Vec<u64>> = None;
    for c in counts {
        match &mut sum {
            None => sum = Some(c.to_vec()),
            Some(s) if s.len() == c.len() => {
                for (a, b) in s.iter_mut().zip(c) {
                    *a += b;
                }
            }
            Some(_) => return Vec::new(),
        }
        if c.is_empty() {
            return Vec::new();
        }
    }
    sum.unwrap_or_default()
}

/// Applies `reduce` to the `m` values of every coordinate.
fn coordinatewise(updates: &[Update<'_>], mut reduce: impl FnMut(&mut [f64]) -> f64) -> Vec<f32> {
    let len = updates[0].weights.len();
    let mut column = vec![0f64; updates.len()];
    (0..len)
        .map(|j| {
            for (c, u) in column.iter_mut().zip(updates) {
                *c = f64::from(u.weights[j]);
            }
            reduce(&mut column) as f32
        })
        .collect()
}

/// Indices of the updates multi-Krum keeps, lowest score first.
pub fn krum_select(updates: &[Update<'_>], f: usize, keep: usize) -> Vec<usize> {
    let m = updates.len();
    let mut dist = vec![0f64; m * m];
    for i in 0..m {
        for j in i + 1..m {
            let d: f64 = updates[i]
                .weights
                .iter()
                .zip(updates[j].weights)
                .map(|(a, b)| f64::from(a - b).powi(2))
                .sum();
            dist[i * m + j] = d;
            dist[j * m + i] = d;
        }
    }
    let nearest = m.saturating_sub(f + 2).max(1);
    let mut scores: Vec<(f64, usize)> = (0..m)
        .map(|i| {
            let mut row: Vec<f64> = (0..m)
                .filter(|&j| j != i)
                .map(|j| dist[i * m + j])
                .collect();
            row.sort_unstable_by(f64::total_cmp);
            (row.iter().take(nearest).sum(), i)
        })
        .collect();
    scores.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let keep = if keep == 0 {
        m.saturating_sub(f).max(1)
    } else {
        keep.min(m)
    };
    scores.into_iter().take(keep).map(|(_, i)| i).collect()
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Aggregation::Mean => write!(f, "mean"),
            Aggregation::Median => write!(f, "median"),
            Aggregation::TrimmedMean { beta } => write!(f, "trimmed-mean:{beta}"),
            Aggregation::Krum { f: byz, keep: 0 } => write!(f, "krum:{byz}"),
            Aggregation::Krum { f: byz, keep } => write!(f, "krum:{byz}:{keep}"),
        }
    }
}

/// `mean`, `median`, `trimmed-mean[:beta]` (0.2), `krum[:f[:keep]]` (f 1, keep m − f).
impl FromStr for Aggregation {
    type Err = Error;

    fn from_str(s: &str) -> crate::Result<Self> {
        let bad = || {
            Error::config(
                "aggregation",
                s,
                "mean, median, trimmed-mean[:BETA] or krum[:F[:KEEP]]",
            )
        };
        let mut parts = s.trim().split(':');
        let name = parts.next().unwrap_or_default();
        let args: Vec<&str> = parts.collect();
        let num = |i: usize| args.get(i).map(|a| a.trim().parse::<f64>());
        let rule = match (name, args.len()) {
            ("mean", 0) => Aggregation::Mean,
            ("median", 0) => Aggregation::Median,
            ("trimmed-mean", 0 | 1) => Aggregation::TrimmedMean {
                beta: num(0).transpose().map_err(|_| bad())?.unwrap_or(0.2),
            },
            ("krum", 0..=2) => {
                let int = |i: usize| -> crate::Result<Option<usize>> {
                    args.get(i)
                        .map(|a| a.trim().parse::<usize>().map_err(|_| bad()))
                        .transpose()
                };
                Aggregation::Krum {
                    f: int(0)?.unwrap_or(1),
                    keep: int(1)?.unwrap_or(0),
                }
            }
            _ => return Err(bad()),
        };
        if let Aggregation::TrimmedMean { beta } = rule
            && !(0.0..0.5).contains(&beta)
        {
            return Err(Error::config("trimmed-mean beta", beta, "in [0, 0.5)"));
        }
        Ok(rule)
    }
}

impl TryFrom<String> for Aggregation {
    type Error = Error;
    fn try_from(s: String) -> crate::Result<Self> {
        s.parse()
    }
}

impl From<Aggregation> for String {
    fn from(a: Aggregation) -> String {
        a.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_class_head_row_is_averaged_over_the_holders_of_that_class() {
        // 1 hidden unit, 2 classes: [w0, w1, b0, b1] after 2 other weights.
        let head = Head::at_end(6, 1, 2).unwrap();
        assert_eq!(head.offset, 2);
        assert_eq!(head.class_indices(1).collect::<Vec<_>>(), vec![3, 5]);
        let a = vec![1.0, 1.0, 10.0, 20.0, 30.0, 40.0];
        let b = vec![3.0, 3.0, 0.0, 0.0, 0.0, 0.0];
        // a holds 1 window of class 0 and 9 of class 1; b 90 of class 0, none of class 1.
        let counts: [&[u64]; 2] = [&[1, 9], &[90, 0]];
        let mut mean = Aggregation::Mean
            .aggregate(&ups(&[a.clone(), b.clone()], &[10.0, 90.0]))
            .unwrap();
        assert!((mean[3] - 2.0).abs() < 1e-6, "{mean:?}");
        class_wise_head(&mut mean, &[&a, &b], &counts, head).unwrap();
        // The body keeps the sample-weighted mean; class 1's column and bias are a's
        // alone (b never saw class 1); class 0's are weighted 1 : 90.
        assert!((mean[0] - 2.8).abs() < 1e-6, "{mean:?}");
        assert_eq!((mean[3], mean[5]), (20.0, 40.0));
        assert!((mean[2] - 10.0 / 91.0).abs() < 1e-6, "{mean:?}");
        assert!((mean[4] - 30.0 / 91.0).abs() < 1e-6, "{mean:?}");
        // A class no update holds keeps the plain mean; mismatched counts are refused.
        let mut m2 = mean.clone();
        class_wise_head(&mut m2, &[&a, &b], &[&[1, 0], &[9, 0]], head).unwrap();
        assert_eq!((m2[3], m2[5]), (mean[3], mean[5]));
        assert!(class_wise_head(&mut m2, &[&a, &b], &[&[1, 0, 0], &[9, 0, 0]], head).is_err());
        assert_eq!(sum_counts([&[1u64, 9][..], &[90, 0][..]]), vec![91, 9]);
        assert!(sum_counts([&[1u64, 9][..], &[][..]]).is_empty());
    }

    fn ups<'a>(vs: &'a [Vec<f32>], n: &[f64]) -> Vec<Update<'a>> {
        vs.iter()
            .zip(n)
            .map(|(w, &samples)| Update {
                weights: w,
                samples,
            })
            .collect()
    }

    #[test]
    fn mean_divides_by_the_total_sample_count_not_the_device_count() {
        let vs = vec![vec![1.0, 10.0], vec![3.0, 20.0], vec![7.0, 40.0]];
        let got = Aggregation::Mean
            .aggregate(&ups(&vs, &[1.0, 2.0, 7.0]))
            .unwrap();
        // (1·1 + 2·3 + 7·7) / 10 = 5.6; (1·10 + 2·20 + 7·40) / 10 = 33.
        assert!(
            (got[0] - 5.6).abs() < 1e-6 && (got[1] - 33.0).abs() < 1e-5,
            "{got:?}"
        );
        // The seed's eq. 5, Σ n_i w_i / N, would give 56/3 = 18.67: not a mean at all.
        let eq5 = (1.0 * 1.0 + 2.0 * 3.0 + 7.0 * 7.0) / 3.0;
        assert!((f64::from(got[0]) - eq5).abs() > 10.0);
        // Equal counts: the plain mean.
        let got = Aggregation::Mean.aggregate(&ups(&vs, &[5.0; 3])).unwrap();
        assert!((got[0] - 11.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn median_and_trimmed_mean_follow_their_definitions() {
        let vs: Vec<Vec<f32>> = [1.0, 100.0, 2.0, 3.0, -50.0]
            .iter()
            .map(|&v| vec![v, v * 2.0])
            .collect();
        let n = [1.0, 1000.0, 1.0, 1.0, 1.0];
        // Sorted: -50, 1, 2, 3, 100. Median 2, whatever the sample counts.
        let med = Aggregation::Median.aggregate(&ups(&vs, &n)).unwrap();
        assert_eq!(med, vec![2.0, 4.0]);
        // Even count: mean of the middle two (1, 2, 3, 100 → 2.5).
        let med4 = Aggregation::Median
            .aggregate(&ups(&vs[..4], &n[..4]))
            .unwrap();
        assert_eq!(med4, vec![2.5, 5.0]);
        // β = 0.2 of 5 cuts ⌊1⌋ from each end: mean of 1, 2, 3 = 2.
        let tm = Aggregation::TrimmedMean { beta: 0.2 }
            .aggregate(&ups(&vs, &n))
            .unwrap();
        assert_eq!(tm, vec![2.0, 4.0]);
        // β = 0.1 of 5 cuts nothing: the unweighted mean, 56 / 5.
        let tm0 = Aggregation::TrimmedMean { beta: 0.1 }
            .aggregate(&ups(&vs, &n))
            .unwrap();
        assert!((tm0[0] - 11.2).abs() < 1e-5);
        assert!(
            Aggregation::TrimmedMean { beta: 0.5 }
                .aggregate(&ups(&vs, &n))
                .is_err()
        );
    }

    #[test]
    fn krum_scores_by_nearest_neighbours_and_drops_the_outlier() {
        // Four honest points near the origin and one far away; f = 1: each score sums the
        // squared distances to the m − f − 2 = 2 nearest.
        let vs = vec![
            vec![0.0, 0.0],
            vec![1.0, 0.0],
            vec![0.0, 1.0],
            vec![1.0, 1.0],
            vec![10.0, 10.0],
        ];
        let n = [1.0, 1.0, 1.0, 1.0, 1.0];
        let u = ups(&vs, &n);
        // Hand scores: each corner of the unit square has two neighbours at distance² 1 →
        // score 2; the outlier's two nearest are (1,1) at 162 and (1,0)/(0,1) at 181 → 343.
        // Ties keep index order.
        assert_eq!(krum_select(&u, 1, 1), vec![0]);
        assert_eq!(krum_select(&u, 1, 0), vec![0, 1, 2, 3]);
        let multi = Aggregation::Krum { f: 1, keep: 0 }.aggregate(&u).unwrap();
        assert_eq!(multi, vec![0.5, 0.5]);
        let plain = Aggregation::Krum { f: 1, keep: 1 }.aggregate(&u).unwrap();
        assert_eq!(plain, vec![0.0, 0.0]);
        // FedAvg is dragged to the outlier: (0+1+0+1+10)/5 = 2.4.
        assert_eq!(Aggregation::Mean.aggregate(&u).unwrap()[0], 2.4);
    }

    #[test]
    fn rules_parse_and_print_as_the_config_writes_them() {
        for s in ["mean", "median", "trimmed-mean:0.2", "krum:1", "krum:2:3"] {
            assert_eq!(s.parse::<Aggregation>().unwrap().to_string(), s);
        }
        assert_eq!(
            "trimmed-mean".parse::<Aggregation>().unwrap(),
            Aggregation::TrimmedMean { beta: 0.2 }
        );
        assert_eq!(
            "krum".parse::<Aggregation>().unwrap(),
            Aggregation::Krum { f: 1, keep: 0 }
        );
        for bad in ["avg", "trimmed-mean:0.6", "krum:x", "median:1"] {
            let e = bad.parse::<Aggregation>().unwrap_err().to_string();
            assert!(
                e.contains(bad.split(':').next().unwrap()) || e.contains("0.6"),
                "{e}"
            );
        }
        assert!(Aggregation::Mean.aggregate(&[]).is_err());
    }
}
