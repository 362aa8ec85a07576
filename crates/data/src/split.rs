//! Train / validation / test splits.
//!
//! Three ways to split, all seeded and reproducible:
//! - [`SplitMethod::Stratified`]: rows shuffled within each class, so every split
//!   keeps the class proportions (the seeds' 64/16/20).
//! - [`SplitMethod::Flow`]: whole flows go to one side. Neighbouring packets of a
//!   flow are near-copies; a random row split puts copies on both sides and
//!   measures memory, not detection.
//! - [`SplitMethod::Time`]: within each class, the earliest rows (file order is
//!   capture order) train and the latest test; short flows (sessions) stay whole.
//! - [`SplitMethod::Auto`] (the default): the time split; resolved before splitting, so
//!   what is recorded (`prepare.json`, `split.json`) is always the method that ran.
//!
//! Why time: a random or flow split inside one capture measures the traffic the model
//! was trained beside, and overstated what held on later MQTTset traffic by 3 to 18
//! points (README, "Results").

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::table::Dataset;

/// How rows are assigned to train, validation and test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SplitMethod {
    Stratified,
    Flow,
    /// Per class, in file (capture) order: the earliest rows train, the next validate,
    /// the latest test; a flow short enough to be one session (lasting less than
    /// [`SHORT_FLOW_SHARE`] of its class's rows) stays whole, on the side of its first
    /// row. What a deployed detector faces: traffic later than what it learned.
    Time,
    /// [`SplitMethod::Time`] ([`SplitMethod::resolve`]).
    Auto,
}

spelled!(SplitMethod, "split.method", {
    Stratified => "stratified" | "random",
    Flow => "flow" | "group",
    Time => "time",
    Auto => "auto",
});

impl SplitMethod {
    /// Parses a name or alias ([`std::str::FromStr`] says what is allowed).
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }

    /// The method that runs: `Auto` becomes the time split (whatever the table: a file
    /// without a time column is still in capture order, and a shuffled one makes the time
    /// split a random one); the others stay as they are.
    pub fn resolve(self, _has_flows: bool) -> SplitMethod {
        match self {
            SplitMethod::Auto => SplitMethod::Time,
            m => m,
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
            method: SplitMethod::Auto,
            train: 0.64,
            validation: 0.16,
            test: 0.20,
            seed: 42,
        }
    }
}

impl SplitConfig {
    /// Checks that the fractions are in [0, 1], sum to 1, and leave training rows.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the field by its path in
    /// [`crate::prepare::PrepareConfig`] (`split.train`); a sum other than 1 names all
    /// three.
    pub fn check(&self) -> Result<()> {
        for (field, x) in [
            ("split.train", self.train),
            ("split.validation", self.validation),
            ("split.test", self.test),
        ] {
            if !(0.0..=1.0).contains(&x) {
                return Err(Error::invalid(
                    field,
                    x,
                    "in [0, 1] (a fraction of the rows)",
                ));
            }
        }
        let sum = self.train + self.validation + self.test;
        if (sum - 1.0).abs() > 1e-6 {
            return Err(Error::invalid(
                "split.train + split.validation + split.test",
                // Rounded: 0.7 + 0.2 + 0.2 is 1.0999999999999999 in binary.
                format!(
                    "{} + {} + {} = {}",
                    self.train,
                    self.validation,
                    self.test,
                    (sum * 1e9).round() / 1e9
                ),
                "1 (every row on one side)",
            ));
        }
        if self.train <= 0.0 {
            return Err(Error::invalid(
                "split.train",
                self.train,
                "above 0 (the model needs training rows)",
            ));
        }
        Ok(())
    }

    /// Training and validation only, in the ratio given (renormalised to sum to 1),
    /// test 0: for a run whose test rows come from another file.
    #[must_use]
    pub fn without_test(self) -> SplitConfig {
        let s = self.train + self.validation;
        SplitConfig {
            train: self.train / s,
            validation: self.validation / s,
            test: 0.0,
            ..self
        }
    }

    /// This config with [`SplitMethod::Auto`] resolved against `ds` (the flow split when
    /// it has flows).
    #[must_use]
    pub fn resolve(self, ds: &Dataset) -> SplitConfig {
        SplitConfig {
            method: self.method.resolve(ds.flows.is_some()),
            ..self
        }
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

/// Splits rows by `cfg.method`. `groups` (flow ids) is required for the flow split;
/// [`SplitMethod::Auto`] is the flow split when they are given.
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
    let mut s = match (cfg.method.resolve(groups.is_some()), groups) {
        (SplitMethod::Flow, Some(groups)) => by_group(labels, n_classes, groups, cfg),
        (SplitMethod::Flow, None) => {
            return Err(Error::invalid(
                "split.method",
                SplitMethod::Flow,
                "stratified or time for a table without flows (a flow split needs endpoint columns: addresses, ports)",
            ));
        }
        (SplitMethod::Time, groups) => by_time(labels, n_classes, groups, cfg),
        (SplitMethod::Stratified | SplitMethod::Auto, _) => stratified(labels, n_classes, cfg),
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

/// The longest a flow may last, as a share of its class's rows (from its first row to its
/// last), and still be kept whole by the time split: a session (MQTTset's brute-force
/// connections of eleven packets in a row) rather than a connection that lasts the
/// capture (a sensor's, a flood's, SlowITe's slow ones).
pub const SHORT_FLOW_SHARE: f64 = 0.02;

fn by_time(labels: &[u32], n_classes: usize, groups: Option<&[u32]>, cfg: &SplitConfig) -> Split {
    let mut s = Split::default();
    for rows in rows_by_class(labels, n_classes) {
        let [a, b, _] = side_sizes(rows.len(), cfg.fractions());
        // Each row's side by its position in the class; then a short flow's rows follow
        // its first row.
        let mut side: Vec<u8> = (0..rows.len())
            .map(|i| {
                if i < a {
                    0
                } else if i < a + b {
                    1
                } else {
                    2
                }
            })
            .collect();
        if let Some(groups) = groups {
            // Per flow: its first row's side, and the positions of its first and last row.
            let mut flows: rustc_hash::FxHashMap<u32, (u8, usize, usize)> = Default::default();
            for (i, &r) in rows.iter().enumerate() {
                flows.entry(groups[r]).or_insert((side[i], i, i)).2 = i;
            }
            let short = (SHORT_FLOW_SHARE * rows.len() as f64).floor() as usize;
            for (i, &r) in rows.iter().enumerate() {
                let (first_side, first, last) = flows[&groups[r]];
                if last - first < short {
                    side[i] = first_side;
                }
            }
        }
        for (i, &r) in rows.iter().enumerate() {
            match side[i] {
                0 => s.train.push(r),
                1 => s.validation.push(r),
                _ => s.test.push(r),
            }
        }
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
        let s = split(
            &y,
            3,
            None,
            &SplitConfig {
                method: SplitMethod::Stratified,
                ..SplitConfig::default()
            },
        )
        .unwrap();
        assert_eq!(
            (s.train.len(), s.validation.len(), s.test.len()),
            (640, 160, 200)
        );
        let count = |rows: &[usize], c: u32| rows.iter().filter(|&&r| y[r] == c).count();
        assert_eq!(count(&s.train, 0), 384);
        assert_eq!(count(&s.test, 2), 20);
        assert_eq!(count(&s.validation, 1), 48);
        let again = split(
            &y,
            3,
            None,
            &SplitConfig {
                method: SplitMethod::Stratified,
                ..SplitConfig::default()
            },
        )
        .unwrap();
        assert_eq!(s, again);
        let other = split(
            &y,
            3,
            None,
            &SplitConfig {
                seed: 7,
                ..SplitConfig {
                    method: SplitMethod::Stratified,
                    ..SplitConfig::default()
                }
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
        let e = split(&[0, 1], 2, None, &cfg).unwrap_err();
        assert!(
            matches!(&e, Error::Invalid { field, value, .. }
                if field.starts_with("split.train +") && value == "0.7 + 0.2 + 0.2 = 1.1"),
            "{e}"
        );
        let negative = SplitConfig {
            validation: -0.1,
            test: 0.46,
            ..SplitConfig::default()
        };
        assert!(matches!(
            negative.check(),
            Err(Error::Invalid {
                field: "split.validation",
                ..
            })
        ));
        let no_train = SplitConfig {
            train: 0.0,
            validation: 0.5,
            test: 0.5,
            ..SplitConfig::default()
        };
        let e = no_train.check().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid setting `split.train` = 0: must be above 0 (the model needs training rows)"
        );
    }

    #[test]
    fn auto_is_the_time_split_and_keeps_short_flows_whole() {
        let y = labels();
        // Flows of 10 consecutive rows (1 % of class 0, 3.3 % of class 1, 10 % of class 2),
        // except rows 0..400 of class 0, one long connection, and rows 470 and 590, one
        // flow of two rows far apart.
        let mut groups: Vec<u32> = (0..1000u32)
            .map(|i| if i < 400 { 0 } else { i / 10 })
            .collect();
        (groups[470], groups[590]) = (1000, 1000);
        let auto = SplitConfig {
            method: SplitMethod::Auto,
            ..SplitConfig::default()
        };
        let time = SplitConfig {
            method: SplitMethod::Time,
            ..SplitConfig::default()
        };
        let s = split(&y, 3, Some(&groups), &auto).unwrap();
        assert_eq!(s, split(&y, 3, Some(&groups), &time).unwrap());
        assert_eq!(SplitMethod::Auto.resolve(true), SplitMethod::Time);
        assert_eq!(SplitMethod::Auto.resolve(false), SplitMethod::Time);
        // Class 0 (600 rows): cuts at 384 and 480. The long flow is cut by time (rows
        // 384..400 validate); the 10-row flows (1 % of the class, under 2 %) stay whole
        // on the side of their first row: 470..480 validate, 480.. test.
        let side = |r: usize| {
            if s.train.contains(&r) {
                0
            } else if s.validation.contains(&r) {
                1
            } else {
                assert!(s.test.contains(&r));
                2
            }
        };
        assert_eq!((side(383), side(384), side(399)), (0, 1, 1));
        assert_eq!((side(479), side(480), side(599)), (1, 2, 2));
        // A flow of two rows spanning 120 rows is not a session: cut by time.
        assert_eq!((side(470), side(590)), (1, 2));
        // Class 1 (300 rows, 600..900): flows of 3.3 % are longer than 2 %: cut by rows,
        // 192 train, 48 validation, 60 test.
        assert_eq!((side(791), side(792), side(839), side(840)), (0, 1, 1, 2));
        // Every row on exactly one side.
        assert_eq!(s.train.len() + s.validation.len() + s.test.len(), 1000);
        // Without flows, rows are cut at the fractions.
        let plain = split(&y, 3, None, &auto).unwrap();
        assert_eq!(plain.train.len(), 384 + 192 + 64);
        let flow = SplitConfig {
            method: SplitMethod::Flow,
            ..SplitConfig::default()
        };
        // A flow split without flows names the setting.
        let e = split(&y, 3, None, &flow).unwrap_err();
        assert!(
            matches!(
                e,
                Error::Invalid {
                    field: "split.method",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn auto_resolves_against_a_dataset() {
        use crate::schema::Format;
        use crate::table::IngestReport;
        let ds = |flows: Option<Vec<u32>>| Dataset {
            path: "t.csv".into(),
            format: Format::Generic,
            label_column: "label".into(),
            columns: Vec::new(),
            classes: vec!["a".into()],
            labels: vec![0, 0],
            flows,
            hosts: None,
            host_pairs: None,
            lines: vec![2, 3],
            row_hashes: vec![0, 1],
            timing_source: None,
            report: IngestReport::default(),
        };
        let auto = SplitConfig {
            method: SplitMethod::Auto,
            ..SplitConfig::default()
        };
        assert_eq!(
            auto.clone().resolve(&ds(Some(vec![0, 1]))).method,
            SplitMethod::Time
        );
        assert_eq!(auto.resolve(&ds(None)).method, SplitMethod::Time);
    }

    #[test]
    fn without_test_renormalises_train_and_validation() {
        let c = SplitConfig::default().without_test();
        // 0.64 / 0.80 and 0.16 / 0.80, computed as the binary did by hand.
        assert_eq!(
            (c.train, c.validation, c.test),
            (0.64 / 0.8, 0.16 / 0.8, 0.0)
        );
        assert!((c.train - 0.8).abs() < 1e-12 && (c.validation - 0.2).abs() < 1e-12);
        c.check().unwrap();
        assert_eq!((c.method, c.seed), (SplitMethod::Auto, 42));
    }

    #[test]
    fn methods_spell_and_serialise_as_before() {
        for m in SplitMethod::ALL {
            assert_eq!(m.to_string().parse::<SplitMethod>().unwrap(), *m);
            assert_eq!(
                serde_json::to_string(m).unwrap(),
                format!("\"{}\"", m.name()),
                "the saved spelling is the name"
            );
        }
        assert_eq!(
            SplitMethod::parse(" Random "),
            Some(SplitMethod::Stratified)
        );
        assert_eq!(SplitMethod::parse("group"), Some(SplitMethod::Flow));
        assert_eq!(SplitMethod::Auto.to_string(), "auto");
        let e = "rows".parse::<SplitMethod>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid setting `split.method` = rows: must be one of stratified, flow, time, auto"
        );
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
