//! One model of the comparison, end to end: (sub)sample the training rows, fit, time the
//! fit, score the test rows, time the scoring, compute the metrics.
//!
//! Every model sees the same prepared features (the pipeline fitted on the training split),
//! the same training, validation and test rows, and is scored by the same
//! [`iotids_model::metrics::evaluate`]. The differences that remain are stated:
//! - classical models and the MLP read single records; the RNN, LSTM and GRU-K read windows
//!   of K records of the same flow;
//! - the deep models use the validation rows for early stopping and the class weights (if
//!   training uses them); the classical models train on the training rows alone, unweighted
//!   (scikit-learn's defaults);
//! - a model listed in [`Settings::caps`] trains on a stratified subsample of at most that
//!   many rows, and its [`Outcome`] says so.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use iotids_data::window::Sequences;
use iotids_model::examples::{Examples, Scores, score};
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

/// The data every model is compared on.
#[derive(Debug, Clone, Copy)]
pub struct Task<'a> {
    /// Single records (window 1) over all rows.
    pub records: &'a Sequences,
    /// Windows of K records over all rows (the same features).
    pub windows: &'a Sequences,
    /// Class of every row.
    pub labels: &'a [u32],
    /// Class names, by id.
    pub classes: &'a [String],
    /// The benign class, for the detection and false-alarm rates.
    pub normal: Option<usize>,
    /// The pipeline's class weights (used by the deep models if training is weighted).
    pub class_weights: &'a [f64],
    pub train: &'a [usize],
    pub validation: &'a [usize],
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
    /// Most training rows per model; a model absent here trains on all of them.
    pub caps: BTreeMap<ModelKind, usize>,
}

/// What one model did.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    pub model: ModelKind,
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
}

/// Trains `model` on the task's training rows and scores its test rows. `on_event` sees
/// the deep models' epochs.
///
/// # Errors
///
/// [`Error::Fit`] / [`Error::Model`] when the model cannot be fitted (the reason is the
/// crate's); [`Error::Config`] for a task without training or test rows.
pub fn run(
    model: ModelKind,
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
    let k = task.classes.len();
    let subsample = match settings.caps.get(&model) {
        Some(&cap) if cap < task.train.len() => Some(stratified_sample(
            task.train,
            task.labels,
            k,
            cap,
            settings.train.seed,
        )),
        _ => None,
    };
    let train_rows = subsample.as_deref().unwrap_or(task.train);
    let window = model.window(task.windows.k);
    let (train_seconds, inference_seconds, scores, epochs) = match model.classical() {
        Some(family) => {
            let m = task.records.features.cols;
            let data = &task.records.features.data;
            let t0 = Instant::now();
            let rows = Rows::gather(data, m, train_rows, Some(task.labels));
            let fitted = classical::fit(family, &rows, k, settings.train.seed)?;
            let train_seconds = t0.elapsed().as_secs_f64();
            drop(rows);
            let t0 = Instant::now();
            let scores = Scores {
                probabilities: fitted.scores(&Rows::gather(data, m, task.test, None), k)?,
                classes: k,
            };
            (train_seconds, t0.elapsed().as_secs_f64(), scores, None)
        }
        None => {
            let sequences = if window == 1 {
                task.records
            } else {
                task.windows
            };
            let deep = Deep {
                task,
                sequences,
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
                _ => deep.run(
                    &GruConfig::new(input, hidden, k)
                        .with_layers(settings.layers)
                        .with_dropout(dropout)
                        .with_reset_after(settings.reset_after)
                        .with_seed(seed),
                    on_event,
                )?,
            }
        }
    };
    let y_true: Vec<u32> = task.test.iter().map(|&r| task.labels[r]).collect();
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
        name: model.label(task.windows.k),
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

/// Fits a deep model with the shared loop and scores the test rows: (fit seconds, scoring
/// seconds, scores, (epochs run, epoch kept)).
type DeepRun = (f64, f64, Scores, Option<(usize, usize)>);

/// What every deep model trains and is scored on.
struct Deep<'a> {
    task: &'a Task<'a>,
    sequences: &'a Sequences,
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
        let Deep {
            task,
            sequences,
            train_rows,
            settings,
        } = *self;
        let ex = |rows| Examples {
            sequences,
            labels: task.labels,
            rows,
        };
        let t0 = Instant::now();
        let (net, history): (C::Net, History) = train(
            config,
            &settings.train,
            task.class_weights,
            ex(train_rows),
            ex(task.validation),
            on_event,
        )?;
        let train_seconds = t0.elapsed().as_secs_f64();
        let t0 = Instant::now();
        let scores = score(&net, ex(task.test), 1024);
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
        let records = Sequences::new(m.clone(), Some(&flows), 1).unwrap();
        let windows = Sequences::new(m, Some(&flows), 2).unwrap();
        let rows: Vec<usize> = (0..n).collect();
        let classes = vec!["normal".to_string(), "attack".to_string()];
        let task = Task {
            records: &records,
            windows: &windows,
            labels: &labels,
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
            caps: [(ModelKind::DecisionTree, 60)].into_iter().collect(),
        };
        let tree = run(ModelKind::DecisionTree, &task, &settings, &mut |_| ()).unwrap();
        assert_eq!((tree.train_rows, tree.train_rows_available), (60, 240));
        assert!(tree.subsampled());
        // 60 rows place the threshold within a step or two of 0.5.
        assert!(tree.metrics.accuracy >= 0.95, "{}", tree.metrics.accuracy);
        let m = &tree.metrics;
        let attacks = 50.0; // test rows 320..400: values 0.20..0.99, 50 of them ≥ 0.5
        assert_eq!(m.per_class[1].support, 50);
        assert_eq!(m.detection_rate, Some(m.confusion[1][1] as f64 / attacks));
        assert_eq!(tree.epochs, None);
        let mlp = run(ModelKind::Mlp, &task, &settings, &mut |_| ()).unwrap();
        assert!(!mlp.subsampled());
        assert!(mlp.metrics.accuracy > 0.95, "{:?}", mlp.metrics.accuracy);
        assert!(
            mlp.epochs
                .is_some_and(|(run, kept)| kept <= run && run <= 40)
        );
        assert!(mlp.records_per_second > 0.0);
        let empty = Task { test: &[], ..task };
        let e = run(ModelKind::Knn, &empty, &settings, &mut |_| ()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "split = 240 training and 0 test rows: training and test rows both"
        );
    }
}
