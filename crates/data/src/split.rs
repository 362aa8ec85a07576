//! Train / validation / test splits.
//!
//! Three ways to split, all seeded and reproducible:
//! - [`SplitMethod::Stratified`]: rows shuffled within each class, so every split
//!   keeps the class proportions (the seeds' 64/16/20).
//! - [`SplitMethod::Flow`]: whole flows go to one side. Neighbouring packets of a
//!   flow are near-copies; a random row split puts copies on both sides and
//!   measures memory, not detection.
//! - [`SplitMethod::Time`]: within each class, the earliest rows (file order is
//!   capture order) train and the latest test.

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How rows are assigned to train, validation and test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitMethod {
    Stratified,
    Flow,
    Time,
}

impl SplitMethod {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "stratified" | "random" => Some(Self::Stratified),
            "flow" | "group" => Some(Self::Flow),
            "time" => Some(Self::Time),
            _ => None,
        }
    }
}

/// Split fractions and seed. By default 64 % train, 16 % validation, 20 % test,
/// stratified, seed 42.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SplitConfig {
    pub method: SplitMethod,
    pub train: f64,
    pub validation: f64,
    pub test: f64,
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig {
            method: SplitMethod::Stratified,
            train: 0.64,
            validation: 0.16,
            test: 0.20,
            seed: 42,
        }
    }
}

impl SplitConfig {
    /// Checks that the fractions are non-negative and sum to 1.
    pub fn check(&self) -> Result<()> {
        let f = [self.train, self.validation, self.test];
        if f.iter().any(|x| !(0.0..=1.0).contains(x)) || (f.iter().sum::<f64>() - 1.0).abs() > 1e-6
        {
            return Err(Error::Config(format!(
                "split fractions must be in [0, 1] and sum to 1, got {} / {} / {}",
                self.train, self.validation, self.test
            )));
        }
        if self.train <= 0.0 {
            return Err(Error::Config(
                "the training fraction must be above 0".into(),
            ));
        }
        Ok(())
    }

    fn fractions(&self) -> [f64; 3] {
        [self.train, self.validation, self.test]
    }
}

/// Row indices of each side, each sorted ascending (file order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub validation: Vec<usize>,
    pub test: Vec<usize>,
    /// Classes that ended up with no test rows (a warning for the user).
    pub classes_without_test: Vec<u32>,
}

/// Splits rows by `cfg.method`. `groups` (flow ids) is required for the flow split.
///
/// # Errors
/// Invalid fractions, or a flow split without flow ids.
pub fn split(
    labels: &[u32],
    n_classes: usize,
    groups: Option<&[u32]>,
    cfg: &SplitConfig,
) -> Result<Split> {
    cfg.check()?;
    let mut s = match cfg.method {
        SplitMethod::Stratified => stratified(labels, n_classes, cfg),
        SplitMethod::Time => by_time(labels, n_classes, cfg),
        SplitMethod::Flow => {
            let groups = groups.ok_or_else(|| {
                Error::Config(
                    "a flow split needs endpoint columns (addresses, ports) to build flows; this file has none"
                        .into(),
                )
            })?;
            by_group(labels, n_classes, groups, cfg)
        }
    };
    for side in [&mut s.train, &mut s.validation, &mut s.test] {
        side.sort_unstable();
    }
    let mut has_test = vec![false; n_classes];
    for &r in &s.test {
        has_test[labels[r] as usize] = true;
    }
    let present = crate::stats::class_counts(labels, n_classes);
    s.classes_without_test = (0..n_classes as u32)
        .filter(|&c| present[c as usize] > 0 && !has_test[c as usize] && cfg.test > 0.0)
        .collect();
    Ok(s)
}

/// Sizes of the three sides for `n` items by largest remainder, so they sum to `n`.
fn side_sizes(n: usize, f: [f64; 3]) -> [usize; 3] {
    let exact: Vec<f64> = f.iter().map(|x| x * n as f64).collect();
    let mut sizes = [exact[0] as usize, exact[1] as usize, exact[2] as usize];
    let mut rest = n - sizes.iter().sum::<usize>();
    let mut order = [0usize, 1, 2];
    order.sort_by(|&a, &b| {
        let ra = exact[a] - exact[a].floor();
        let rb = exact[b] - exact[b].floor();
        rb.total_cmp(&ra).then(a.cmp(&b))
    });
    for &i in order.iter().cycle() {
        if rest == 0 {
            break;
        }
        if f[i] > 0.0 {
            sizes[i] += 1;
            rest -= 1;
        }
    }
    sizes
}

fn rows_by_class(labels: &[u32], n_classes: usize) -> Vec<Vec<usize>> {
    let mut by = vec![Vec::new(); n_classes];
    for (r, &l) in labels.iter().enumerate() {
        by[l as usize].push(r);
    }
    by
}

fn stratified(labels: &[u32], n_classes: usize, cfg: &SplitConfig) -> Split {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let mut s = Split::default();
    for mut rows in rows_by_class(labels, n_classes) {
        rows.shuffle(&mut rng);
        let [a, b, _] = side_sizes(rows.len(), cfg.fractions());
        s.train.extend_from_slice(&rows[..a]);
        s.validation.extend_from_slice(&rows[a..a + b]);
        s.test.extend_from_slice(&rows[a + b..]);
    }
    s
}

fn by_time(labels: &[u32], n_classes: usize, cfg: &SplitConfig) -> Split {
    let mut s = Split::default();
    for rows in rows_by_class(labels, n_classes) {
        let [a, b, _] = side_sizes(rows.len(), cfg.fractions());
        s.train.extend_from_slice(&rows[..a]);
        s.validation.extend_from_slice(&rows[a..a + b]);
        s.test.extend_from_slice(&rows[a + b..]);
    }
    s
}

/// Assigns whole groups to sides, keeping each class near its target fractions.
///
/// Groups are visited largest first (ties in seeded random order); each goes to the
/// side whose per-class deficit, weighted by the group's class counts and
/// normalised by class size, is largest. This is the greedy idea behind
/// scikit-learn's `StratifiedGroupKFold`.
fn by_group(labels: &[u32], n_classes: usize, groups: &[u32], cfg: &SplitConfig) -> Split {
    let n_groups = groups.iter().map(|&g| g as usize + 1).max().unwrap_or(0);
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); n_groups];
    for (r, &g) in groups.iter().enumerate() {
        members[g as usize].push(r);
    }
    let totals = crate::stats::class_counts(labels, n_classes);
    let f = cfg.fractions();
    let mut order: Vec<usize> = (0..n_groups).filter(|&g| !members[g].is_empty()).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    order.shuffle(&mut rng);
    order.sort_by_key(|&g| std::cmp::Reverse(members[g].len()));
    let mut alloc = vec![vec![0f64; n_classes]; 3];
    let mut s = Split::default();
    let mut counts = vec![0f64; n_classes];
    for g in order {
        counts.iter_mut().for_each(|c| *c = 0.0);
        for &r in &members[g] {
            counts[labels[r] as usize] += 1.0;
        }
        let mut best = 0;
        let mut best_score = f64::NEG_INFINITY;
        for side in 0..3 {
            if f[side] <= 0.0 {
                continue;
            }
            let score: f64 = (0..n_classes)
                .filter(|&k| counts[k] > 0.0)
                .map(|k| {
                    let target = f[side] * totals[k] as f64;
                    counts[k] * (target - alloc[side][k]) / totals[k] as f64
                })
                .sum();
            if score > best_score {
                best_score = score;
                best = side;
            }
        }
        for k in 0..n_classes {
            alloc[best][k] += counts[k];
        }
        let side = match best {
            0 => &mut s.train,
            1 => &mut s.validation,
            _ => &mut s.test,
        };
        side.extend_from_slice(&members[g]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<u32> {
        // 600 rows of class 0, 300 of class 1, 100 of class 2.
        (0..1000)
            .map(|i| {
                if i < 600 {
                    0
                } else if i < 900 {
                    1
                } else {
                    2
                }
            })
            .collect()
    }

    #[test]
    fn stratified_keeps_proportions_and_is_seeded() {
        let y = labels();
        let s = split(&y, 3, None, &SplitConfig::default()).unwrap();
        assert_eq!(
            (s.train.len(), s.validation.len(), s.test.len()),
            (640, 160, 200)
        );
        let count = |rows: &[usize], c: u32| rows.iter().filter(|&&r| y[r] == c).count();
        assert_eq!(count(&s.train, 0), 384);
        assert_eq!(count(&s.test, 2), 20);
        assert_eq!(count(&s.validation, 1), 48);
        let again = split(&y, 3, None, &SplitConfig::default()).unwrap();
        assert_eq!(s, again);
        let other = split(
            &y,
            3,
            None,
            &SplitConfig {
                seed: 7,
                ..SplitConfig::default()
            },
        )
        .unwrap();
        assert_ne!(s.train, other.train);
        // Every row on exactly one side.
        let mut all: Vec<usize> = s
            .train
            .iter()
            .chain(&s.validation)
            .chain(&s.test)
            .copied()
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
    }

    #[test]
    fn flow_split_never_straddles_a_flow() {
        let y = labels();
        let groups: Vec<u32> = (0..1000u32).map(|i| i / 10).collect();
        let cfg = SplitConfig {
            method: SplitMethod::Flow,
            ..SplitConfig::default()
        };
        let s = split(&y, 3, Some(&groups), &cfg).unwrap();
        let side_of = |r: usize| {
            if s.train.binary_search(&r).is_ok() {
                0
            } else if s.validation.binary_search(&r).is_ok() {
                1
            } else {
                2
            }
        };
        for g in 0..100usize {
            let sides: Vec<_> = (g * 10..g * 10 + 10).map(side_of).collect();
            assert!(
                sides.iter().all(|&x| x == sides[0]),
                "flow {g} straddles: {sides:?}"
            );
        }
        // 100 flows of 10 rows, one class each: every side within one flow of its target.
        for (got, want) in [
            (s.train.len(), 640),
            (s.validation.len(), 160),
            (s.test.len(), 200),
        ] {
            assert!(got.abs_diff(want) <= 10, "{got} vs {want}");
        }
        assert!(s.classes_without_test.is_empty());
    }

    #[test]
    fn time_split_takes_earliest_rows_for_training() {
        let y = labels();
        let cfg = SplitConfig {
            method: SplitMethod::Time,
            ..SplitConfig::default()
        };
        let s = split(&y, 3, None, &cfg).unwrap();
        assert_eq!(&s.train[..3], &[0, 1, 2]);
        assert!(s.test.contains(&599) && s.test.contains(&999));
        assert!(!s.train.contains(&599));
    }

    #[test]
    fn warns_about_classes_without_test_rows() {
        let y = vec![0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let s = split(&y, 2, None, &SplitConfig::default()).unwrap();
        assert_eq!(s.classes_without_test, vec![1]);
    }

    #[test]
    fn rejects_bad_fractions() {
        let cfg = SplitConfig {
            train: 0.7,
            validation: 0.2,
            test: 0.2,
            ..SplitConfig::default()
        };
        assert!(split(&[0, 1], 2, None, &cfg).is_err());
    }

    #[test]
    fn largest_remainder_sizes_sum_to_n() {
        for n in 0..50 {
            let s = side_sizes(n, [0.64, 0.16, 0.2]);
            assert_eq!(s.iter().sum::<usize>(), n);
        }
        assert_eq!(side_sizes(1, [0.64, 0.16, 0.2]), [1, 0, 0]);
    }
}
