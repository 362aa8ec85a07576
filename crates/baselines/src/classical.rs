//! The classical baselines, each from a maintained crate: smartcore's logistic regression,
//! Gaussian naive Bayes, KNN, linear SVM, decision tree and random forest, and perpetual's
//! gradient-boosted trees. They read flat feature rows: a single record (the same prepared
//! features the GRU reads per step), or a window of K records of the flow flattened side
//! by side ([`Rows::windows`], from the GRU's own [`Sequences`]).
//!
//! Every model returns one score per class and row, because ROC-AUC needs a ranking, not a
//! vote. Where the crate has no probability output, the score is computed from what it
//! fitted, and the function says how. Classes are the pipeline's ids; a class absent from
//! a (sub)sampled training set scores 0.
//!
//! Hyper-parameters follow scikit-learn's defaults where the crate has the same knob, so
//! `tests/reference/compare_sklearn.py` can fit the same models there.

use perpetual::objective::Objective;
use perpetual::{Matrix as BoostMatrix, PerpetualBooster};
use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_classifier::{
    RandomForestClassifier, RandomForestClassifierParameters,
};
use smartcore::linalg::basic::arrays::Array;
use smartcore::linalg::basic::matrix::DenseMatrix;
use smartcore::linear::logistic_regression::{LogisticRegression, LogisticRegressionParameters};
use smartcore::metrics::distance::euclidian::Euclidian;
use smartcore::naive_bayes::gaussian::{GaussianNB, GaussianNBParameters};
use smartcore::neighbors::knn_classifier::{KNNClassifier, KNNClassifierParameters};
use smartcore::svm::Kernels;
use smartcore::svm::svc::{SVC, SVCParameters};
use smartcore::tree::decision_tree_classifier::{
    DecisionTreeClassifier, DecisionTreeClassifierParameters,
};

use iotids_data::window::Sequences;

use crate::error::Error;

/// smartcore's models over f64 features and u32 class ids in its dense matrix.
type Tree = DecisionTreeClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;
type Forest = RandomForestClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>>;
type Knn = KNNClassifier<f64, u32, DenseMatrix<f64>, Vec<u32>, Euclidian<f64>>;

/// Flat feature rows with their classes: what a classical model trains on and scores.
#[derive(Debug, Clone)]
pub struct Rows {
    /// Row-major `n × features`.
    pub x: Vec<f64>,
    /// Features per row.
    pub features: usize,
    /// Class id of every row (training only; empty when scoring).
    pub y: Vec<u32>,
}

impl Rows {
    /// The rows `rows` of a row-major f32 matrix of `features` columns, with their labels.
    pub fn gather(data: &[f32], features: usize, rows: &[usize], labels: Option<&[u32]>) -> Rows {
        let mut x = Vec::with_capacity(rows.len() * features);
        for &r in rows {
            x.extend(
                data[r * features..(r + 1) * features]
                    .iter()
                    .map(|&v| f64::from(v)),
            );
        }
        Rows {
            x,
            features,
            y: labels.map_or_else(Vec::new, |l| rows.iter().map(|&r| l[r]).collect()),
        }
    }

    /// The windows of `sequences` ending at `rows`, flattened: the window's K records,
    /// oldest first, each the prepared feature vector, positions before the flow's start
    /// zeros: exactly [`Sequences::batch`]'s `x`, `K × F` values a row (F for K = 1, the
    /// record alone). No padding indicator: with `--flow-timing`, `flow.index` already
    /// says how many records precede, and on MQTTset one indicator per position changed
    /// no score of the tree or the boosted trees at window 8.
    pub fn windows(sequences: &Sequences, rows: &[usize], labels: Option<&[u32]>) -> Rows {
        let width = sequences.k * sequences.features.cols;
        let mut out = Vec::with_capacity(rows.len() * width);
        let (mut x, mut mask) = (Vec::new(), Vec::new());
        for chunk in rows.chunks(4096) {
            sequences.batch(chunk, &mut x, &mut mask);
            out.extend(x.iter().map(|&v| f64::from(v)));
        }
        Rows {
            x: out,
            features: width,
            y: labels.map_or_else(Vec::new, |l| rows.iter().map(|&r| l[r]).collect()),
        }
    }

    /// Rows held.
    pub fn len(&self) -> usize {
        self.x.len() / self.features.max(1)
    }

    /// True with no rows.
    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    fn dense(&self) -> Result<DenseMatrix<f64>, Error> {
        DenseMatrix::new(self.len(), self.features, self.x.clone(), false)
            .map_err(|e| Error::Fit(format!("feature matrix: {e}")))
    }

    fn labels(&self) -> Vec<u32> {
        self.y.clone()
    }

    fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.features..(i + 1) * self.features]
    }
}

/// A classical model family, with the settings `compare` uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Classical {
    /// Multinomial logistic regression, L2 penalty `½‖w‖²` (scikit-learn's C = 1), L-BFGS.
    LogisticRegression,
    /// Gaussian naive Bayes with scikit-learn's variance smoothing (1e-9 × largest variance).
    NaiveBayes,
    /// 5 nearest neighbours, Euclidean, uniform votes.
    Knn,
    /// Linear SVM, C = 1, one-vs-rest.
    LinearSvm,
    /// CART, Gini, grown until pure.
    DecisionTree,
    /// 100 CART trees on bootstrap samples, √features candidates per split.
    RandomForest,
    /// Gradient-boosted trees (perpetual, budget 1.0), one-vs-rest log loss.
    Gbdt,
}

/// A fitted classical model.
pub enum Fitted {
    /// Weights `[classes × features]` row-major and intercepts, softmax (sigmoid with two
    /// classes, as smartcore fits one weight vector then).
    Linear {
        weights: Vec<f64>,
        intercepts: Vec<f64>,
        classes: Vec<u32>,
        binary: bool,
    },
    /// Class priors, means and smoothed variances, per class.
    Gaussian {
        log_priors: Vec<f64>,
        means: Vec<Vec<f64>>,
        variances: Vec<Vec<f64>>,
        classes: Vec<u32>,
    },
    /// smartcore's KNN, whose probability columns are the training classes ascending.
    Knn(Vec<u32>, Box<Knn>),
    /// One `w · x + b` per class.
    Svm {
        weights: Vec<Vec<f64>>,
        intercepts: Vec<f64>,
        classes: Vec<u32>,
    },
    /// Trees whose one-hot leaf votes are averaged (one tree: the decision tree); their
    /// columns are the training classes ascending.
    Trees(Vec<u32>, Vec<Tree>),
    /// One booster per class; log-odds through a sigmoid, normalised over the classes.
    Boosted {
        boosters: Vec<PerpetualBooster>,
        classes: Vec<u32>,
    },
}

/// Fits `model` on `train` for `k` classes; `seed` fixes the random forest's bootstrap.
///
/// # Errors
///
/// [`Error::Fit`] with the crate's reason, or when `train` has fewer than two classes.
pub fn fit(model: Classical, train: &Rows, k: usize, seed: u64) -> Result<Fitted, Error> {
    let classes = present_classes(&train.y, k);
    if classes.len() < 2 {
        return Err(Error::Fit(format!(
            "{} training rows of {} class(es): a classifier needs two",
            train.len(),
            classes.len()
        )));
    }
    let failed = |e: smartcore::error::Failed| Error::Fit(e.to_string());
    let x = train.dense()?;
    let y = train.labels();
    Ok(match model {
        Classical::LogisticRegression => {
            let params = LogisticRegressionParameters::default().with_alpha(1.0);
            let lr = LogisticRegression::fit(&x, &y, params).map_err(failed)?;
            let (c, i) = (lr.coefficients(), lr.intercept());
            let rows = c.shape().0;
            Fitted::Linear {
                weights: (0..rows)
                    .flat_map(|r| (0..train.features).map(move |j| *c.get((r, j))))
                    .collect(),
                intercepts: (0..rows).map(|r| *i.get((r, 0))).collect(),
                binary: rows == 1,
                classes,
            }
        }
        Classical::NaiveBayes => {
            let nb = GaussianNB::fit(&x, &y, GaussianNBParameters::default()).map_err(failed)?;
            // scikit-learn's var_smoothing: smartcore adds nothing, and a feature constant
            // within a class (common after MinMax) has variance 0, so its own predict
            // divides by zero. Scores are computed here from smartcore's fitted moments.
            let epsilon = 1e-9 * largest_variance(train);
            Fitted::Gaussian {
                log_priors: nb.class_priors().iter().map(|p| p.ln()).collect(),
                means: nb.theta().clone(),
                variances: nb
                    .var()
                    .iter()
                    .map(|v| v.iter().map(|s| s + epsilon).collect())
                    .collect(),
                classes,
            }
        }
        Classical::Knn => {
            let params = KNNClassifierParameters::default().with_k(5);
            Fitted::Knn(
                classes,
                Box::new(KNNClassifier::fit(&x, &y, params).map_err(failed)?),
            )
        }
        Classical::LinearSvm => {
            let (mut weights, mut intercepts) = (Vec::new(), Vec::new());
            for &c in &classes {
                let (w, b) = linear_svm(&x, train, c)?;
                weights.push(w);
                intercepts.push(b);
            }
            Fitted::Svm {
                weights,
                intercepts,
                classes,
            }
        }
        Classical::DecisionTree => {
            let params = DecisionTreeClassifierParameters::default();
            Fitted::Trees(
                classes,
                vec![DecisionTreeClassifier::fit(&x, &y, params).map_err(failed)?],
            )
        }
        Classical::RandomForest => {
            let params = RandomForestClassifierParameters::default()
                .with_n_trees(100)
                .with_seed(seed);
            let forest = RandomForestClassifier::fit(&x, &y, params).map_err(failed)?;
            Fitted::Trees(classes, forest_trees(&forest)?)
        }
        Classical::Gbdt => {
            let data = column_major(train);
            let matrix = BoostMatrix::new(&data, train.len(), train.features);
            let mut boosters = Vec::with_capacity(classes.len());
            for &c in &classes {
                let target: Vec<f64> = train
                    .y
                    .iter()
                    .map(|&y| f64::from(u8::from(y == c)))
                    .collect();
                let mut b = PerpetualBooster::default().set_objective(Objective::LogLoss);
                b.fit(&matrix, &target, None, None, 1.0, None, None)
                    .map_err(|e| Error::Fit(format!("perpetual: {e}")))?;
                boosters.push(b);
            }
            Fitted::Boosted { boosters, classes }
        }
    })
}

impl std::fmt::Debug for Fitted {
    // perpetual's booster has no Debug; the variant is what a log needs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Fitted::Linear { .. } => "Linear",
            Fitted::Gaussian { .. } => "Gaussian",
            Fitted::Knn(..) => "Knn",
            Fitted::Svm { .. } => "Svm",
            Fitted::Trees(_, t) => return write!(f, "Trees({})", t.len()),
            Fitted::Boosted { boosters, .. } => return write!(f, "Boosted({})", boosters.len()),
        };
        f.write_str(name)
    }
}

impl Fitted {
    /// Scores of `rows`, row-major `n × k` (probabilities, or the SVM's decision values).
    ///
    /// # Errors
    ///
    /// [`Error::Fit`] when the crate's prediction fails.
    pub fn scores(&self, rows: &Rows, k: usize) -> Result<Vec<f32>, Error> {
        let n = rows.len();
        let mut out = vec![0.0f32; n * k];
        // Row i's values for `classes`, into the pipeline's class columns.
        let put = |out: &mut [f32], i: usize, classes: &[u32], values: &[f64]| {
            for (&c, &v) in classes.iter().zip(values) {
                out[i * k + c as usize] = v as f32;
            }
        };
        match self {
            Fitted::Linear {
                weights,
                intercepts,
                classes,
                binary,
            } => {
                let f = rows.features;
                for i in 0..n {
                    let x = rows.row(i);
                    let z: Vec<f64> = intercepts
                        .iter()
                        .enumerate()
                        .map(|(c, b)| b + dot(&weights[c * f..(c + 1) * f], x))
                        .collect();
                    if *binary {
                        let p = 1.0 / (1.0 + (-z[0]).exp());
                        put(&mut out, i, classes, &[1.0 - p, p]);
                    } else {
                        put(&mut out, i, classes, &softmax(z));
                    }
                }
            }
            Fitted::Gaussian {
                log_priors,
                means,
                variances,
                classes,
            } => {
                for i in 0..n {
                    let x = rows.row(i);
                    let joint: Vec<f64> = (0..classes.len())
                        .map(|c| {
                            let ll: f64 = x
                                .iter()
                                .zip(&means[c])
                                .zip(&variances[c])
                                .map(|((v, m), s)| {
                                    -0.5 * (2.0 * std::f64::consts::PI * s).ln()
                                        - (v - m).powi(2) / (2.0 * s)
                                })
                                .sum();
                            log_priors[c] + ll
                        })
                        .collect();
                    put(&mut out, i, classes, &softmax(joint));
                }
            }
            Fitted::Knn(classes, knn) => {
                let p = knn
                    .predict_proba(&rows.dense()?)
                    .map_err(|e| Error::Fit(e.to_string()))?;
                for (i, row) in p.iter().enumerate() {
                    put(&mut out, i, classes, row);
                }
            }
            Fitted::Svm {
                weights,
                intercepts,
                classes,
            } => {
                for i in 0..n {
                    let x = rows.row(i);
                    let d: Vec<f64> = weights
                        .iter()
                        .zip(intercepts)
                        .map(|(w, b)| dot(w, x) + b)
                        .collect();
                    // Decision values, not probabilities: a class absent from training
                    // must lose every argmax, so it gets −∞'s stand-in rather than 0.
                    for c in 0..k {
                        out[i * k + c] = f32::MIN;
                    }
                    put(&mut out, i, classes, &d);
                }
            }
            Fitted::Trees(classes, trees) => {
                let x = rows.dense()?;
                let share = 1.0 / trees.len() as f64;
                let mut sums = vec![0.0f64; n * k];
                for tree in trees {
                    let p = tree
                        .predict_proba(&x)
                        .map_err(|e| Error::Fit(e.to_string()))?;
                    for i in 0..n {
                        for (j, &c) in classes.iter().enumerate() {
                            sums[i * k + c as usize] += *p.get((i, j)) * share;
                        }
                    }
                }
                for (o, s) in out.iter_mut().zip(sums) {
                    *o = s as f32;
                }
            }
            Fitted::Boosted { boosters, classes } => {
                let data = column_major(rows);
                let matrix = BoostMatrix::new(&data, n, rows.features);
                let odds: Vec<Vec<f64>> =
                    boosters.iter().map(|b| b.predict(&matrix, true)).collect();
                for i in 0..n {
                    let p: Vec<f64> = odds.iter().map(|o| 1.0 / (1.0 + (-o[i]).exp())).collect();
                    let sum: f64 = p.iter().sum();
                    let p: Vec<f64> = p.iter().map(|v| v / sum).collect();
                    put(&mut out, i, classes, &p);
                }
            }
        }
        Ok(out)
    }
}

/// The classes of `0..k` that occur in `y`, ascending (smartcore's order for its outputs).
fn present_classes(y: &[u32], k: usize) -> Vec<u32> {
    let mut seen = vec![false; k];
    for &c in y {
        if let Some(s) = seen.get_mut(c as usize) {
            *s = true;
        }
    }
    (0..k as u32).filter(|&c| seen[c as usize]).collect()
}

/// One class against the rest with smartcore's SVC, linear kernel, C = 1. smartcore keeps
/// the support vectors and their weights `αᵢyᵢ`; for a linear kernel they fold into one
/// `w = Σ αᵢyᵢ xᵢ`, which makes scoring one dot product per class instead of one kernel
/// evaluation per support vector. The fields are private, so they are read from smartcore's
/// serde form.
fn linear_svm(x: &DenseMatrix<f64>, train: &Rows, class: u32) -> Result<(Vec<f64>, f64), Error> {
    // smartcore orders the two labels ascending and makes the larger one (1) the positive side.
    let y: Vec<u32> = train.y.iter().map(|&c| u32::from(c == class)).collect();
    let params = SVCParameters::default()
        .with_c(1.0)
        .with_kernel(Kernels::linear())
        .with_seed(Some(0));
    let svc = SVC::fit(x, &y, &params).map_err(|e| Error::Fit(e.to_string()))?;
    #[derive(Deserialize)]
    struct Folded {
        instances: Option<Vec<Vec<f64>>>,
        w: Option<Vec<f64>>,
        b: Option<f64>,
    }
    let json = serde_json::to_value(&svc).map_err(|e| Error::Fit(format!("SVC: {e}")))?;
    let folded: Folded =
        serde_json::from_value(json).map_err(|e| Error::Fit(format!("SVC: {e}")))?;
    let (Some(instances), Some(alpha_y), Some(b)) = (folded.instances, folded.w, folded.b) else {
        return Err(Error::Fit("SVC: no support vectors".into()));
    };
    let mut w = vec![0.0; train.features];
    for (sv, a) in instances.iter().zip(&alpha_y) {
        for (wj, xj) in w.iter_mut().zip(sv) {
            *wj += a * xj;
        }
    }
    Ok((w, b))
}

/// The forest's trees. smartcore's forest only votes (no probabilities) and keeps its trees
/// private; its serde form lists them, and each tree scores on its own.
fn forest_trees(forest: &Forest) -> Result<Vec<Tree>, Error> {
    #[derive(Deserialize)]
    struct Trees {
        trees: Option<Vec<Tree>>,
    }
    let json = serde_json::to_value(forest).map_err(|e| Error::Fit(format!("forest: {e}")))?;
    let f: Trees = serde_json::from_value(json).map_err(|e| Error::Fit(format!("forest: {e}")))?;
    f.trees.ok_or_else(|| Error::Fit("forest: no trees".into()))
}

fn largest_variance(rows: &Rows) -> f64 {
    let n = rows.len() as f64;
    (0..rows.features)
        .map(|j| {
            let mean = (0..rows.len()).map(|i| rows.row(i)[j]).sum::<f64>() / n;
            (0..rows.len())
                .map(|i| (rows.row(i)[j] - mean).powi(2))
                .sum::<f64>()
                / n
        })
        .fold(0.0, f64::max)
}

fn column_major(rows: &Rows) -> Vec<f64> {
    let n = rows.len();
    let mut out = vec![0.0; rows.x.len()];
    for i in 0..n {
        for (j, &v) in rows.row(i).iter().enumerate() {
            out[j * n + i] = v;
        }
    }
    out
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn softmax(z: Vec<f64>) -> Vec<f64> {
    let max = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| (v - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;

    /// Three Gaussian blobs in four dimensions, `n` rows each, centres 1 apart on the
    /// first two axes; the other two axes are noise. Overlap is small but not nil.
    fn blobs(n: usize, seed: u64) -> Rows {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let centres = [[0.2, 0.2], [0.8, 0.2], [0.5, 0.8]];
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for i in 0..3 * n {
            let c = i % 3;
            let mut noise = || rng.random_range(-0.15..0.15);
            x.extend([
                centres[c][0] + noise(),
                centres[c][1] + noise(),
                noise() + 0.5,
                noise() + 0.5,
            ]);
            y.push(c as u32);
        }
        Rows { x, features: 4, y }
    }

    fn argmax(row: &[f32]) -> u32 {
        let mut best = 0;
        for (c, &v) in row.iter().enumerate() {
            if v > row[best] {
                best = c;
            }
        }
        best as u32
    }

    fn accuracy(scores: &[f32], y: &[u32], k: usize) -> f64 {
        let right = scores
            .chunks_exact(k)
            .zip(y)
            .filter(|(s, y)| argmax(s) == **y)
            .count();
        right as f64 / y.len() as f64
    }

    const ALL: [Classical; 7] = [
        Classical::LogisticRegression,
        Classical::NaiveBayes,
        Classical::Knn,
        Classical::LinearSvm,
        Classical::DecisionTree,
        Classical::RandomForest,
        Classical::Gbdt,
    ];

    #[test]
    fn every_family_separates_blobs_and_scores_every_class() {
        let (train, test) = (blobs(100, 1), blobs(50, 2));
        for model in ALL {
            let fitted = fit(model, &train, 3, 7).unwrap();
            let s = fitted.scores(&test, 3).unwrap();
            assert_eq!(s.len(), test.len() * 3, "{model:?}");
            let acc = accuracy(&s, &test.y, 3);
            assert!(acc > 0.95, "{model:?}: accuracy {acc}");
            if model != Classical::LinearSvm {
                for row in s.chunks_exact(3) {
                    let sum: f32 = row.iter().sum();
                    assert!(
                        (sum - 1.0).abs() < 1e-4,
                        "{model:?}: probabilities sum to {sum}"
                    );
                }
            }
        }
    }

    /// Scores computed here from what smartcore fitted predict what smartcore predicts.
    #[test]
    fn derived_scores_agree_with_smartcores_own_predictions() {
        let (train, test) = (blobs(60, 3), blobs(40, 4));
        let (x, y, xt) = (
            train.dense().unwrap(),
            train.labels(),
            test.dense().unwrap(),
        );
        let ours = |model| {
            let s = fit(model, &train, 3, 7).unwrap().scores(&test, 3).unwrap();
            s.chunks_exact(3).map(argmax).collect::<Vec<u32>>()
        };
        let lr = LogisticRegression::fit(
            &x,
            &y,
            LogisticRegressionParameters::default().with_alpha(1.0),
        )
        .unwrap();
        assert_eq!(
            ours(Classical::LogisticRegression),
            lr.predict(&xt).unwrap()
        );
        // No feature is constant within a class here, so smoothing changes no decision.
        let nb = GaussianNB::fit(&x, &y, GaussianNBParameters::default()).unwrap();
        assert_eq!(ours(Classical::NaiveBayes), nb.predict(&xt).unwrap());
        let forest = RandomForestClassifier::fit(
            &x,
            &y,
            RandomForestClassifierParameters::default()
                .with_n_trees(100)
                .with_seed(7),
        )
        .unwrap();
        assert_eq!(ours(Classical::RandomForest), forest.predict(&xt).unwrap());
    }

    /// The folded weight vector gives smartcore's own decision values.
    #[test]
    fn folded_linear_svm_equals_smartcores_decision_function() {
        let train = blobs(40, 5);
        let test = blobs(10, 6);
        let x = train.dense().unwrap();
        let (w, b) = linear_svm(&x, &train, 1).unwrap();
        let y: Vec<u32> = train.y.iter().map(|&c| u32::from(c == 1)).collect();
        let params = SVCParameters::default()
            .with_c(1.0)
            .with_kernel(Kernels::linear())
            .with_seed(Some(0));
        let svc = SVC::fit(&x, &y, &params).unwrap();
        let xt = test.dense().unwrap();
        let theirs = svc.decision_function(&xt).unwrap();
        for (i, t) in theirs.iter().enumerate() {
            let mine = dot(&w, test.row(i)) + b;
            assert!((mine - t).abs() < 1e-9, "row {i}: {mine} vs {t}");
        }
    }

    #[test]
    fn naive_bayes_survives_a_feature_constant_within_a_class() {
        let mut train = blobs(50, 8);
        // Feature 3 is 0 in every row of class 2: variance 0 there.
        for i in 0..train.len() {
            if train.y[i] == 2 {
                train.x[i * 4 + 3] = 0.0;
            }
        }
        let s = fit(Classical::NaiveBayes, &train, 3, 0)
            .unwrap()
            .scores(&train, 3)
            .unwrap();
        assert!(s.iter().all(|v| v.is_finite()));
        assert!(accuracy(&s, &train.y, 3) > 0.95);
    }

    /// A flattened window is its K records, oldest first, zeros before the flow's start;
    /// window 1 is the record alone.
    #[test]
    fn a_flattened_window_is_its_records_side_by_side_with_padding_at_the_flow_start() {
        // 5 rows of 2 features, flows A B A A B.
        let data: Vec<f32> = (0..10).map(|v| v as f32 + 0.5).collect();
        let matrix = iotids_data::pipeline::Matrix {
            rows: 5,
            cols: 2,
            data,
        };
        let rec = |r: usize| [r as f64 * 2.0 + 0.5, r as f64 * 2.0 + 1.5];
        let flows = [0, 1, 0, 0, 1];
        let s3 = Sequences::new(matrix.clone(), Some(&flows), 3).unwrap();
        let w = Rows::windows(&s3, &[3, 4, 0], Some(&[9, 8, 7, 6, 5]));
        assert_eq!((w.features, w.len()), (6, 3));
        assert_eq!(w.y, vec![6, 5, 9]);
        // Row 3: rows 0, 2, 3 of flow A, no padding.
        let row3: Vec<f64> = [rec(0), rec(2), rec(3)].concat();
        assert_eq!(w.row(0), row3);
        // Row 4: padding, then rows 1 and 4 of flow B.
        let row4: Vec<f64> = [[0.0, 0.0], rec(1), rec(4)].concat();
        assert_eq!(w.row(1), row4);
        // Row 0: the flow's first record, two padding positions.
        let row0: Vec<f64> = [[0.0; 2], [0.0; 2], rec(0)].concat();
        assert_eq!(w.row(2), row0);
        // Window 1: the record's own features, nothing else.
        let s1 = Sequences::new(matrix, Some(&flows), 1).unwrap();
        let one = Rows::windows(&s1, &[4, 1], None);
        assert_eq!(one.features, 2);
        assert_eq!(one.x, [rec(4), rec(1)].concat());
        assert!(one.y.is_empty());
    }

    #[test]
    fn a_class_missing_from_training_scores_zero_and_one_class_is_an_error() {
        let mut train = blobs(30, 9);
        let keep: Vec<usize> = (0..train.len()).filter(|&i| train.y[i] != 1).collect();
        train = Rows {
            x: keep.iter().flat_map(|&i| train.row(i).to_vec()).collect(),
            features: 4,
            y: keep.iter().map(|&i| train.y[i]).collect(),
        };
        for model in [
            Classical::LogisticRegression,
            Classical::RandomForest,
            Classical::Gbdt,
        ] {
            let s = fit(model, &train, 3, 0).unwrap().scores(&train, 3).unwrap();
            assert!(s.chunks_exact(3).all(|r| r[1] == 0.0), "{model:?}");
        }
        let one = Rows {
            x: vec![0.0; 8],
            features: 4,
            y: vec![0, 0],
        };
        let e = fit(Classical::DecisionTree, &one, 3, 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "2 training rows of 1 class(es): a classifier needs two"
        );
    }
}
