//! One model of the comparison, end to end: (sub)sample the training rows, fit, time the
//! fit, score the test rows, time the scoring, compute the metrics.
//!
//! Every model sees the same prepared features (the pipeline fitted on the training split),
//! the same training, validation and test rows, and is scored by the same
//! [`iotids_model::metrics::evaluate`]. The differences that remain are stated:
//! - the MLP reads single records; the RNN, LSTM and GRU-K read windows of K records of
//!   the same flow; a classical model reads single records ([`Variant::window`] 1) or the
//!   same windows flattened ([`Rows::windows`]: the K records side by side, zeros before
//!   the flow's start), built from the same [`Sequences`] the recurrent models read;
//! - the deep models use the validation rows for early stopping and the class weights (if
//!   training uses them); the classical models train on the training rows alone, unweighted
//!   (scikit-learn's defaults);
//! - a model listed in [`Settings::caps`] trains on a stratified subsample of at most that
//!   many rows (at every window), and its [`Outcome`] says so.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use iotids_data::window::Sequences;
use iotids_model::examples::{Examples, Scores, mean_scores, score};
use iotids_model::gru::GruConfig;
use iotids_model::metrics::{Metrics, evaluate};
use iotids_model::nets::{Cell, MlpConfig, RecurrentConfig};
use iotids_model::network::NetworkConfig;
use iotids_model::train::{History, TrainConfig, TrainEvent, train};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::classical::{self, Classical, Rows};

/// A model of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ModelKind {
    LogisticRegression,
    NaiveBayes,
    Knn,
    LinearSvm,
    DecisionTree,
    RandomForest,
    Gbdt,
    Mlp,
    Rnn,
    Lstm,
    /// The GRU on single records (the seeds' setting).
    Gru1,
    /// The GRU on windows of K records.
    GruK,
}

impl ModelKind {
    /// Every model, in the table's order: classical, then deep.
    pub const ALL: [ModelKind; 12] = [
        ModelKind::LogisticRegression,
        ModelKind::NaiveBayes,
        ModelKind::Knn,
        ModelKind::LinearSvm,
        ModelKind::DecisionTree,
        ModelKind::RandomForest,
        ModelKind::Gbdt,
        ModelKind::Mlp,
        ModelKind::Rnn,
        ModelKind::Lstm,
        ModelKind::Gru1,
        ModelKind::GruK,
    ];

    /// The name `--models` takes.
    pub fn key(self) -> &'static str {
        match self {
            ModelKind::LogisticRegression => "lr",
            ModelKind::NaiveBayes => "nb",
            ModelKind::Knn => "knn",
            ModelKind::LinearSvm => "svm",
            ModelKind::DecisionTree => "tree",
            ModelKind::RandomForest => "forest",
            ModelKind::Gbdt => "gbdt",
            ModelKind::Mlp => "mlp",
            ModelKind::Rnn => "rnn",
            ModelKind::Lstm => "lstm",
            ModelKind::Gru1 => "gru1",
            ModelKind::GruK => "gru",
        }
    }

    /// The classical family, for the models that are one.
    pub fn classical(self) -> Option<Classical> {
        Some(match self {
            ModelKind::LogisticRegression => Classical::LogisticRegression,
            ModelKind::NaiveBayes => Classical::NaiveBayes,
            ModelKind::Knn => Classical::Knn,
            ModelKind::LinearSvm => Classical::LinearSvm,
            ModelKind::DecisionTree => Classical::DecisionTree,
            ModelKind::RandomForest => Classical::RandomForest,
            ModelKind::Gbdt => Classical::Gbdt,
            _ => return None,
        })
    }

    /// Records per window it reads, with `k` the comparison's window.
    pub fn window(self, k: usize) -> usize {
        match self {
            ModelKind::Rnn | ModelKind::Lstm | ModelKind::GruK => k,
            _ => 1,
        }
    }

    /// The table's name, with `k` the comparison's window.
    pub fn label(self, k: usize) -> String {
        match self {
            ModelKind::LogisticRegression => "logistic regression".into(),
            ModelKind::NaiveBayes => "Gaussian naive Bayes".into(),
            ModelKind::Knn => "KNN (k = 5)".into(),
            ModelKind::LinearSvm => "linear SVM".into(),
            ModelKind::DecisionTree => "decision tree".into(),
            ModelKind::RandomForest => "random forest (100 trees)".into(),
            ModelKind::Gbdt => "gradient-boosted trees".into(),
            ModelKind::Mlp => "MLP".into(),
            ModelKind::Rnn => format!("RNN (window {k})"),
            ModelKind::Lstm => format!("LSTM (window {k})"),
            ModelKind::Gru1 => "GRU (window 1)".into(),
            ModelKind::GruK => format!("GRU (window {k})"),
        }
    }

    /// The library that fits it.
    pub fn library(self) -> &'static str {
        match self {
            ModelKind::Gbdt => "perpetual",
            m if m.classical().is_some() => "smartcore",
            _ => "burn",
        }
    }

    /// The training rows it takes at most by default: models whose cost grows faster than
    /// linearly in the rows (KNN's scoring, the SVM's SMO) or whose crate is slow on many
    /// rows. `None`: all of them.
    pub fn default_cap(self) -> Option<usize> {
        match self {
            ModelKind::Knn => Some(50_000),
            // smartcore's SMO takes ~2 s per class for 2,000 rows and grows with their square.
            ModelKind::LinearSvm => Some(2_000),
            ModelKind::RandomForest => Some(100_000),
            ModelKind::DecisionTree | ModelKind::LogisticRegression => Some(500_000),
            _ => None,
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl FromStr for ModelKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        ModelKind::ALL
            .into_iter()
            .find(|m| m.key() == s)
            .ok_or_else(|| Error::Config {
                field: "model",
                value: s.into(),
                allowed: format!("one of {}", ModelKind::ALL.map(ModelKind::key).join(", ")),
            })
    }
}

/// A model at the window it reads: the unit of the comparison, one table row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Variant {
    pub kind: ModelKind,
    /// Records per window (1: single records).
    pub window: usize,
}

impl Variant {
    /// `kind` at the window it reads when the comparison's window is `k` (deep models), or
    /// at `window` (classical models; deep models ignore it).
    pub fn new(kind: ModelKind, window: usize, k: usize) -> Variant {
        let window = if kind.classical().is_some() {
            window
        } else {
            kind.window(k)
        };
        Variant { kind, window }
    }

    /// What `--models` takes for it and what the outputs call it: `gbdt`, `gbdt@8`, `gru`.
    pub fn key(self) -> String {
        if self.kind.classical().is_some() && self.window > 1 {
            format!("{}@{}", self.kind.key(), self.window)
        } else {
            self.kind.key().to_string()
        }
    }

    /// The table's name: "gradient-boosted trees", "gradient-boosted trees, window 8".
    pub fn label(self) -> String {
        if self.kind.classical().is_some() && self.window > 1 {
            format!("{}, window {}", self.kind.label(1), self.window)
        } else {
            self.kind.label(self.window)
        }
    }
}

/// One item of `--models`: a model, with the window of a classical one when given
/// (`gbdt@8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub kind: ModelKind,
    /// `None`: the default windows (a classical model at 1 and at the classical window;
    /// a deep one at its own).
    pub window: Option<usize>,
}

impl Choice {
    /// Every model at its default windows: what `--models` defaults to.
    pub fn all() -> Vec<Choice> {
        ModelKind::ALL
            .into_iter()
            .map(|kind| Choice { kind, window: None })
            .collect()
    }

    /// The table rows it stands for, with `k` the recurrent models' window and
    /// `classical` the classical models' default window: a classical model without `@K`
    /// at 1 and, when `classical` > 1, at `classical`.
    pub fn variants(self, k: usize, classical: usize) -> Vec<Variant> {
        match (self.kind.classical(), self.window) {
            (Some(_), Some(w)) => vec![Variant::new(self.kind, w, k)],
            (Some(_), None) if classical > 1 => vec![
                Variant::new(self.kind, 1, k),
                Variant::new(self.kind, classical, k),
            ],
            _ => vec![Variant::new(self.kind, 1, k)],
        }
    }
}

impl fmt::Display for Choice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.window {
            Some(w) => write!(f, "{}@{w}", self.kind),
            None => write!(f, "{}", self.kind),
        }
    }
}

impl FromStr for Choice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let Some((name, window)) = s.split_once('@') else {
            return Ok(Choice {
                kind: s.parse()?,
                window: None,
            });
        };
        let kind: ModelKind = name.parse()?;
        let classical: Vec<&str> = ModelKind::ALL
            .into_iter()
            .filter(|m| m.classical().is_some())
            .map(ModelKind::key)
            .collect();
        if kind.classical().is_none() {
            return Err(Error::Config {
                field: "model",
                value: s.into(),
                allowed: format!(
                    "a window (@K) only for a classical model ({}); the recurrent models read --window",
                    classical.join(", ")
                ),
            });
        }
        let window = window
            .parse::<usize>()
            .ok()
            .filter(|&w| w >= 1)
            .ok_or_else(|| Error::Config {
                field: "model",
                value: s.into(),
                allowed: "MODEL@K with K a whole number of records, at least 1 (gbdt@8)".into(),
            })?;
        Ok(Choice {
            kind,
            window: Some(window),
        })
    }
}

/// A table the models read: windows over all its rows and its classes.
#[derive(Debug, Clone, Copy)]
pub struct Table<'a> {
    /// Windows over every row, one [`Sequences`] per window length the models read (the
    /// single records, k = 1, among them), all over the same features.
    pub sequences: &'a [Sequences],
    /// Class of every row (the pipeline's ids; rows never trained on or scored may hold
    /// anything).
    pub labels: &'a [u32],
}

impl<'a> Table<'a> {
    /// The windows of `k` records.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when no [`Sequences`] of that length was built.
    pub fn windows(&self, k: usize) -> Result<&'a Sequences, Error> {
        self.sequences
            .iter()
            .find(|s| s.k == k)
            .ok_or_else(|| Error::Config {
                field: "window",
                value: k.to_string(),
                allowed: format!(
                    "one of the windows built: {:?}",
                    self.sequences.iter().map(|s| s.k).collect::<Vec<_>>()
                ),
            })
    }
}

/// The data every model is compared on.
#[derive(Debug, Clone, Copy)]
pub struct Task<'a> {
    /// The training file: the training and validation rows are its rows.
    pub data: Table<'a>,
    /// The table the test rows are rows of: `data` itself, or a separate test file read
    /// the same way (its labels in the pipeline's classes).
    pub test_data: Table<'a>,
    /// Class names, by id.
    pub classes: &'a [String],
    /// The benign class, for the detection and false-alarm rates.
    pub normal: Option<usize>,
    /// The pipeline's class weights (used by the deep models if training is weighted).
    pub class_weights: &'a [f64],
    /// Rows of `data`.
    pub train: &'a [usize],
    /// Rows of `data`.
    pub validation: &'a [usize],
    /// Rows of `test_data`.
    pub test: &'a [usize],
}

/// How to train the models.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The deep models' training (epochs, batch, learning rate, patience, class weights,
    /// seed). The seed also draws subsamples and the forest's bootstraps.
    pub train: TrainConfig,
    /// Hidden units of the MLP's layers and of the recurrent models' state.
    pub hidden: usize,
    /// The GRU's layers and the MLP's hidden layers.
    pub layers: usize,
    pub dropout: f64,
    /// The GRU's reset-gate placement (see [`GruConfig::reset_after`]).
    pub reset_after: bool,
    /// Networks the GRU on windows averages, as `train` does (seeds `train.seed`,
    /// `train.seed + 1`, ...); the other deep models train one.
    pub ensemble: usize,
    /// Most training rows per model; a model absent here trains on all of them.
    pub caps: BTreeMap<ModelKind, usize>,
}

/// What one model did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub model: ModelKind,
    /// [`Variant::key`]: `gbdt`, `gbdt@8`.
    pub key: String,
    /// The table's name.
    pub name: String,
    /// Library that fitted it.
    pub library: String,
    /// Records per window it read.
    pub window: usize,
    /// Training rows it was fitted on.
    pub train_rows: usize,
    /// Training rows of the split; more than `train_rows` when subsampled.
    pub train_rows_available: usize,
    /// Wall time of fitting (for deep models: all epochs with their validation).
    pub train_seconds: f64,
    /// Wall time of scoring the test rows.
    pub inference_seconds: f64,
    /// Test rows scored per second.
    pub records_per_second: f64,
    /// For deep models: epochs run and the epoch kept.
    pub epochs: Option<(usize, usize)>,
    /// The test rows' metrics.
    pub metrics: Metrics,
    /// The training rows of a subsample (table row indices, ascending); `None` when the
    /// model trained on all of them.
    #[serde(skip)]
    pub subsample: Option<Vec<usize>>,
}

impl Outcome {
    /// True when the model trained on a subsample.
    pub fn subsampled(&self) -> bool {
        self.train_rows < self.train_rows_available
    }

    /// The model and the window it read.
    pub fn variant(&self) -> Variant {
        Variant {
            kind: self.model,
            window: self.window,
        }
    }
}

/// Trains `variant` on the task's training rows and scores its test rows. `on_event` sees
/// the deep models' epochs.
///
/// # Errors
///
/// [`Error::Fit`] / [`Error::Model`] when the model cannot be fitted (the reason is the
/// crate's); [`Error::Config`] for a task without training or test rows, or without the
/// windows the variant reads.
pub fn run(
    variant: Variant,
    task: &Task<'_>,
    settings: &Settings,
    on_event: &mut (dyn FnMut(TrainEvent) + Send),
) -> Result<Outcome, Error> {
    if task.train.is_empty() || task.test.is_empty() {
        return Err(Error::Config {
            field: "split",
            value: format!(
                "{} training and {} test rows",
                task.train.len(),
                task.test.len()
            ),
            allowed: "training and test rows both".into(),
        });
    }
    let model = variant.kind;
    let window = variant.window;
    let k = task.classes.len();
    let subsample = match settings.caps.get(&model) {
        Some(&cap) if cap < task.train.len() => Some(stratified_sample(
            task.train,
            task.data.labels,
            k,
            cap,
            settings.train.seed,
        )),
        _ => None,
    };
    let train_rows = subsample.as_deref().unwrap_or(task.train);
    let sequences = task.data.windows(window)?;
    let test_sequences = task.test_data.windows(window)?;
    let (train_seconds, inference_seconds, scores, epochs) = match model.classical() {
        Some(family) => {
            let t0 = Instant::now();
            let rows = Rows::windows(sequences, train_rows, Some(task.data.labels));
            let fitted = classical::fit(family, &rows, k, settings.train.seed)?;
            let train_seconds = t0.elapsed().as_secs_f64();
            drop(rows);
            // Scored in chunks: a flattened window is K × (F + 1) f64s a row.
            let t0 = Instant::now();
            let mut probabilities = Vec::with_capacity(task.test.len() * k);
            for chunk in task.test.chunks(SCORE_CHUNK) {
                let rows = Rows::windows(test_sequences, chunk, None);
                probabilities.extend(fitted.scores(&rows, k)?);
            }
            let scores = Scores {
                probabilities,
                classes: k,
            };
            (train_seconds, t0.elapsed().as_secs_f64(), scores, None)
        }
        None => {
            let deep = Deep {
                task,
                sequences,
                test_sequences,
                train_rows,
                settings,
            };
            let input = sequences.features.cols;
            let seed = settings.train.seed;
            let (hidden, dropout) = (settings.hidden, settings.dropout);
            match model {
                ModelKind::Mlp => deep.run(
                    &MlpConfig::new(input, hidden, k)
                        .with_layers(settings.layers)
                        .with_dropout(dropout)
                        .with_seed(seed),
                    on_event,
                )?,
                ModelKind::Rnn | ModelKind::Lstm => {
                    let cell = if model == ModelKind::Rnn {
                        Cell::Rnn
                    } else {
                        Cell::Lstm
                    };
                    let config = RecurrentConfig::new(input, hidden, k, cell)
                        .with_dropout(dropout)
                        .with_seed(seed);
                    deep.run(&config, on_event)?
                }
                _ => {
                    let networks = if model == ModelKind::GruK {
                        settings.ensemble.max(1)
                    } else {
                        1
                    };
                    let mut run = |i: usize| {
                        let seed = seed.wrapping_add(i as u64);
                        let train = TrainConfig {
                            seed,
                            ..settings.train.clone()
                        };
                        deep.run_with(
                            &GruConfig::new(input, hidden, k)
                                .with_layers(settings.layers)
                                .with_dropout(dropout)
                                .with_reset_after(settings.reset_after)
                                .with_seed(seed),
                            &train,
                            &mut *on_event,
                        )
                    };
                    let (mut fit_s, mut score_s, first, epochs) = run(0)?;
                    let mut scores = vec![first];
                    for i in 1..networks {
                        let (f, s, other, _) = run(i)?;
                        fit_s += f;
                        score_s += s;
                        scores.push(other);
                    }
                    let scores = mean_scores(scores);
                    (fit_s, score_s, scores, epochs)
                }
            }
        }
    };
    let y_true: Vec<u32> = task
        .test
        .iter()
        .map(|&r| task.test_data.labels[r])
        .collect();
    let y_pred = scores.predictions();
    let metrics = evaluate(
        &y_true,
        &y_pred,
        &scores.probabilities,
        task.classes,
        task.normal,
    );
    Ok(Outcome {
        model,
        key: variant.key(),
        name: if model == ModelKind::GruK && settings.ensemble > 1 {
            format!("GRU (window {window}, {} networks)", settings.ensemble)
        } else {
            variant.label()
        },
        library: model.library().into(),
        window,
        train_rows: train_rows.len(),
        train_rows_available: task.train.len(),
        train_seconds,
        inference_seconds,
        records_per_second: task.test.len() as f64 / inference_seconds.max(1e-9),
        epochs,
        metrics,
        subsample,
    })
}

/// Test rows a classical model scores at once (bounds the flattened copy).
const SCORE_CHUNK: usize = 32_768;

/// Fits a deep model with the shared loop and scores the test rows: (fit seconds, scoring
/// seconds, scores, (epochs run, epoch kept)).
type DeepRun = (f64, f64, Scores, Option<(usize, usize)>);

/// What every deep model trains and is scored on.
struct Deep<'a> {
    task: &'a Task<'a>,
    sequences: &'a Sequences,
    test_sequences: &'a Sequences,
    train_rows: &'a [usize],
    settings: &'a Settings,
}

impl Deep<'_> {
    /// Fits `config`'s network with the shared loop and scores the test rows.
    fn run<C: NetworkConfig + Sync>(
        &self,
        config: &C,
        on_event: &mut (dyn FnMut(TrainEvent) + Send),
    ) -> Result<DeepRun, Error> {
        self.run_with(config, &self.settings.train, on_event)
    }

    /// [`Deep::run`] with another training configuration (an ensemble's seeds).
    fn run_with<C: NetworkConfig + Sync>(
        &self,
        config: &C,
        train_cfg: &TrainConfig,
        on_event: &mut (dyn FnMut(TrainEvent) + Send),
    ) -> Result<DeepRun, Error> {
        let Deep {
            task,
            sequences,
            test_sequences,
            train_rows,
            ..
        } = *self;
        let ex = |rows| Examples {
            sequences,
            labels: task.data.labels,
            rows,
        };
        let t0 = Instant::now();
        let (net, history): (C::Net, History) = train(
            config,
            train_cfg,
            task.class_weights,
            ex(train_rows),
            ex(task.validation),
            on_event,
        )?;
        let train_seconds = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let test = Examples {
            sequences: test_sequences,
            labels: task.test_data.labels,
            rows: task.test,
        };
        let scores = score(&net, test, 1024);
        let inference_seconds = t0.elapsed().as_secs_f64();
        Ok((
            train_seconds,
            inference_seconds,
            scores,
            Some((history.epochs.len(), history.best_epoch)),
        ))
    }
}

/// About `cap` of `rows`, each class keeping its share (rounded up, so every class of the
/// training rows stays), drawn with `seed`; returned in file order.
pub fn stratified_sample(
    rows: &[usize],
    labels: &[u32],
    k: usize,
    cap: usize,
    seed: u64,
) -> Vec<usize> {
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); k];
    for &r in rows {
        by_class[labels[r] as usize].push(r);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(cap + k);
    for mut members in by_class {
        let take = (members.len() * cap).div_ceil(rows.len());
        members.shuffle(&mut rng);
        out.extend_from_slice(&members[..take.min(members.len())]);
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use iotids_data::pipeline::Matrix;

    use super::*;

    #[test]
    fn names_parse_back_and_unknown_ones_say_what_is_allowed() {
        for m in ModelKind::ALL {
            assert_eq!(m.key().parse::<ModelKind>().unwrap(), m);
        }
        let e = "xgb".parse::<ModelKind>().unwrap_err().to_string();
        assert_eq!(
            e,
            "model = xgb: one of lr, nb, knn, svm, tree, forest, gbdt, mlp, rnn, lstm, gru1, gru"
        );
        assert_eq!(ModelKind::GruK.label(16), "GRU (window 16)");
        assert_eq!(ModelKind::Lstm.window(16), 16);
        assert_eq!(ModelKind::Mlp.window(16), 1);
    }

    #[test]
    fn stratified_sample_keeps_class_shares_and_every_class() {
        // 900 rows of class 0, 90 of class 1, 10 of class 2.
        let labels: Vec<u32> = (0..1000)
            .map(|i| {
                if i < 900 {
                    0
                } else if i < 990 {
                    1
                } else {
                    2
                }
            })
            .collect();
        let rows: Vec<usize> = (0..1000).collect();
        let s = stratified_sample(&rows, &labels, 3, 100, 42);
        let count = |c| s.iter().filter(|&&r| labels[r] == c).count();
        assert_eq!((count(0), count(1), count(2)), (90, 9, 1));
        assert!(s.windows(2).all(|w| w[0] < w[1]), "file order, no repeats");
        assert_eq!(s, stratified_sample(&rows, &labels, 3, 100, 42), "seeded");
        assert_ne!(s, stratified_sample(&rows, &labels, 3, 100, 43));
    }

    #[test]
    fn choices_spell_windows_of_classical_models_only() {
        let c: Choice = "gbdt@8".parse().unwrap();
        assert_eq!(
            (c.kind, c.window, c.to_string()),
            (ModelKind::Gbdt, Some(8), "gbdt@8".into())
        );
        let v = c.variants(16, 4);
        assert_eq!(v, vec![Variant::new(ModelKind::Gbdt, 8, 16)]);
        assert_eq!(
            (v[0].key(), v[0].label()),
            ("gbdt@8".into(), "gradient-boosted trees, window 8".into())
        );
        // Without @K: window 1 and the classical window; deep models at their own.
        let tree: Choice = "tree".parse().unwrap();
        let windows = |c: Choice, k, cw| -> Vec<usize> {
            c.variants(k, cw).iter().map(|v| v.window).collect()
        };
        assert_eq!(windows(tree, 16, 8), [1, 8]);
        assert_eq!(windows(tree, 16, 1), [1]);
        assert_eq!(windows("gru".parse().unwrap(), 16, 8), [16]);
        assert_eq!(windows("mlp".parse().unwrap(), 16, 8), [1]);
        assert_eq!(Variant::new(ModelKind::Gbdt, 1, 16).key(), "gbdt");
        assert_eq!(
            Variant::new(ModelKind::Gbdt, 1, 16).label(),
            "gradient-boosted trees"
        );
        let e = |s: &str| s.parse::<Choice>().unwrap_err().to_string();
        assert_eq!(
            e("gru@8"),
            "model = gru@8: a window (@K) only for a classical model (lr, nb, knn, svm, tree, forest, gbdt); the recurrent models read --window"
        );
        assert_eq!(
            e("gbdt@0"),
            "model = gbdt@0: MODEL@K with K a whole number of records, at least 1 (gbdt@8)"
        );
        assert!(
            e("xgb@4").starts_with("model = xgb: one of lr,"),
            "{}",
            e("xgb@4")
        );
    }

    /// Flows whose class shows only across records: every record is one bit, 0 or 1 as
    /// often in both classes; a normal flow alternates it (0 1 0 1 …), an attack flow
    /// repeats it (0 0 0 … or 1 1 1 …). A second feature is small noise. Flows interleave
    /// in file order, 8 records each. (An exclusive or: greedy trees, whose first split
    /// gains nothing, miss it; nearest neighbours and boosting find it.)
    fn alternating_flows(flows: u32, seed: u64) -> (Vec<f32>, Vec<u32>, Vec<u32>) {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let (mut x, mut flow_of, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        // 4 flows open at a time, their records interleaved.
        for group in 0..flows / 4 {
            let starts: Vec<(u32, u32)> = (0..4)
                .map(|_| (rng.random_range(0..2), rng.random_range(0..2)))
                .collect();
            for t in 0..8 {
                for (j, &(attack, first)) in starts.iter().enumerate() {
                    let bit = if attack == 1 { first } else { (first + t) % 2 };
                    x.extend([bit as f32, rng.random_range(0.0..0.1)]);
                    flow_of.push(group * 4 + j as u32);
                    labels.push(attack);
                }
            }
        }
        (x, flow_of, labels)
    }

    #[test]
    fn a_windowed_classical_model_sees_what_single_records_cannot() {
        let (x, flows, labels) = alternating_flows(200, 11);
        let n = labels.len();
        let m = Matrix {
            rows: n,
            cols: 2,
            data: x,
        };
        let sequences: Vec<Sequences> = [1, 4]
            .into_iter()
            .map(|k| Sequences::new(m.clone(), Some(&flows), k).unwrap())
            .collect();
        let rows: Vec<usize> = (0..n).collect();
        let classes = vec!["normal".to_string(), "attack".to_string()];
        let data = Table {
            sequences: &sequences,
            labels: &labels,
        };
        let cut = n * 7 / 10;
        let task = Task {
            data,
            test_data: data,
            classes: &classes,
            normal: Some(0),
            class_weights: &[1.0, 1.0],
            train: &rows[..cut],
            validation: &[],
            test: &rows[cut..],
        };
        let settings = Settings {
            train: TrainConfig::default(),
            hidden: 8,
            layers: 1,
            dropout: 0.0,
            reset_after: true,
            ensemble: 1,
            caps: BTreeMap::new(),
        };
        for kind in [ModelKind::Knn, ModelKind::Gbdt] {
            let f1 = |w| {
                let o = run(Variant::new(kind, w, 4), &task, &settings, &mut |_| ()).unwrap();
                assert_eq!(o.window, w);
                o.metrics.macro_f1
            };
            let (single, windowed) = (f1(1), f1(4));
            // One bit tells nothing; the previous record's bit tells all but a flow's
            // first record (1 in 8, a coin toss).
            assert!(single < 0.65, "{kind:?}: window 1 macro-F1 {single}");
            // perpetual's trees on this small problem come out one of two ways from run
            // to run of the test binary (1.0, or 0.860 in 2 of about 30 full-suite runs,
            // the same figure each time, also on one thread: an order inside perpetual,
            // not the data); KNN's are fixed.
            let floor = if kind == ModelKind::Gbdt { 0.85 } else { 0.9 };
            assert!(windowed > floor, "{kind:?}: window 4 macro-F1 {windowed}");
        }
    }

    /// Two classes a threshold on the one feature separates; the cap applies to one model.
    #[test]
    fn run_scores_the_test_rows_and_states_a_subsample() {
        let n = 400;
        let data: Vec<f32> = (0..n).map(|i| (i % 100) as f32 / 100.0).collect();
        let labels: Vec<u32> = data.iter().map(|&v| u32::from(v >= 0.5)).collect();
        let m = Matrix {
            rows: n,
            cols: 1,
            data,
        };
        let flows: Vec<u32> = (0..n as u32).map(|r| r / 2).collect();
        let sequences = [
            Sequences::new(m.clone(), Some(&flows), 1).unwrap(),
            Sequences::new(m, Some(&flows), 2).unwrap(),
        ];
        let rows: Vec<usize> = (0..n).collect();
        let classes = vec!["normal".to_string(), "attack".to_string()];
        let data = Table {
            sequences: &sequences,
            labels: &labels,
        };
        let task = Task {
            data,
            test_data: data,
            classes: &classes,
            normal: Some(0),
            class_weights: &[1.0, 1.0],
            train: &rows[..240],
            validation: &rows[240..320],
            test: &rows[320..],
        };
        let settings = Settings {
            train: TrainConfig {
                epochs: 40,
                learning_rate: 0.05,
                batch_size: 32,
                ..TrainConfig::default()
            },
            hidden: 8,
            layers: 1,
            dropout: 0.0,
            reset_after: true,
            ensemble: 1,
            caps: [(ModelKind::DecisionTree, 60)].into_iter().collect(),
        };
        let v = |kind, window| Variant::new(kind, window, 2);
        let tree = run(v(ModelKind::DecisionTree, 1), &task, &settings, &mut |_| ()).unwrap();
        assert_eq!((tree.train_rows, tree.train_rows_available), (60, 240));
        assert!(tree.subsampled());
        // 60 rows place the threshold within a step or two of 0.5.
        assert!(tree.metrics.accuracy >= 0.95, "{}", tree.metrics.accuracy);
        let m = &tree.metrics;
        let attacks = 50.0; // test rows 320..400: values 0.20..0.99, 50 of them ≥ 0.5
        assert_eq!(m.per_class[1].support, 50);
        assert_eq!(m.detection_rate, Some(m.confusion[1][1] as f64 / attacks));
        assert_eq!(tree.epochs, None);
        let mlp = run(v(ModelKind::Mlp, 1), &task, &settings, &mut |_| ()).unwrap();
        assert!(!mlp.subsampled());
        assert!(mlp.metrics.accuracy > 0.95, "{:?}", mlp.metrics.accuracy);
        assert!(
            mlp.epochs
                .is_some_and(|(run, kept)| kept <= run && run <= 40)
        );
        assert!(mlp.records_per_second > 0.0);
        // The GRU on windows averages `ensemble` networks and says so; the others train one.
        let two = Settings {
            ensemble: 2,
            ..settings.clone()
        };
        let gru = run(v(ModelKind::GruK, 2), &task, &two, &mut |_| ()).unwrap();
        assert_eq!(gru.name, "GRU (window 2, 2 networks)");
        assert!(gru.metrics.accuracy > 0.95, "{:?}", gru.metrics.accuracy);
        let gru1 = run(v(ModelKind::Gru1, 2), &task, &two, &mut |_| ()).unwrap();
        assert_eq!(gru1.name, "GRU (window 1)");
        let empty = Task { test: &[], ..task };
        let e = run(v(ModelKind::Knn, 1), &empty, &settings, &mut |_| ()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "split = 240 training and 0 test rows: training and test rows both"
        );
        let e = run(v(ModelKind::Knn, 3), &task, &settings, &mut |_| ()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "window = 3: one of the windows built: [1, 2]"
        );
    }
}
