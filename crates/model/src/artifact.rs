//! The model directory: everything prediction needs to apply exactly the steps training
//! took, in one place.
//!
//! ```text
//! model/
//!   model.json     format version, GRU config, window, class names, feature names,
//!                  training config and history summary
//!   weights.bpk    the network's weights (burn's binary record)
//!   weights-1.bpk  ... the other networks of an ensemble (weights-1 to weights-(K-1))
//!   pipeline.json  the preprocessing fitted on the training rows (encoders, imputation,
//!                  scaling, selected features, class weights)
//! ```
//!
//! An ensemble ([`ModelCard::members`]) is K networks of the same shape, trained from
//! consecutive seeds on the same rows; the detector's class probabilities are their mean.
//! It is written as format version 2, so an iotids that reads only one network refuses it
//! instead of silently using the first; a single network stays version 1.
//!
//! Loading checks the format version and that the three files agree (feature count,
//! classes), so a directory assembled from two runs is refused rather than mispredicting.

use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use burn::module::Module;
use iotids_data::pipeline::Pipeline;
use iotids_data::schema::normal_class;
use iotids_data::window::WindowBy;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::gru::{GruClassifier, GruConfig};
use crate::novelty::DecisionRule;
use crate::train::{History, TrainConfig};

/// Version of the directory layout and of `model.json` for a single network; a reader
/// refuses versions it does not know.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// Networks `train` and `compare` average when the user names no `--ensemble`: chosen on
/// the development protocol (README "Results on traffic never seen").
pub const DEFAULT_ENSEMBLE: NonZeroUsize = NonZeroUsize::new(5).unwrap();

/// Version of a model directory holding an ensemble (`weights-1.bpk`...).
pub const ENSEMBLE_FORMAT_VERSION: u32 = 2;

const CARD: &str = "model.json";
const WEIGHTS: &str = "weights"; // burn appends `.bpk`
const PIPELINE: &str = "pipeline.json";

/// `model.json`: what the model is and how it was made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// [`MODEL_FORMAT_VERSION`] of the writer.
    pub format_version: u32,
    /// The iotids version that trained it.
    pub iotids_version: String,
    /// The network's shape.
    pub gru: GruConfig,
    /// Records per window (1: each record alone; K: the record and the K-1 before it in
    /// its flow or host pair, as `window_by` says).
    pub window: usize,
    /// What a window follows (models saved before the choice existed: flows).
    #[serde(default)]
    pub window_by: WindowBy,
    /// Class names, in the order of the network's outputs.
    pub classes: Vec<String>,
    /// The benign class, if any: attacks are the others (detection and false-alarm rates).
    pub normal_class: Option<String>,
    /// The network's input features, in order (the pipeline's selected features).
    pub features: Vec<String>,
    /// How it was trained.
    pub train: TrainConfig,
    /// Epochs run, best epoch, time.
    pub history: History,
    /// The decision beyond the most probable class: the operating point and the
    /// unknown-traffic test, fitted by [`Detector::calibrate`] (none in models saved
    /// before they existed).
    #[serde(default)]
    pub decision: DecisionRule,
    /// One entry per network of an ensemble, in the order of the weight files (the first
    /// is [`ModelCard::train`]'s seed and [`ModelCard::history`]); empty for a single
    /// network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub members: Vec<MemberCard>,
}

/// How one network of an ensemble was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberCard {
    /// Its initialisation and batch-order seed.
    pub seed: u64,
    /// Epochs run.
    pub epochs: usize,
    /// The kept epoch.
    pub best_epoch: usize,
    /// Its validation macro-F1 at the kept epoch (`None` without validation rows).
    pub validation_macro_f1: Option<f64>,
    /// Training wall time.
    pub seconds: f64,
}

impl MemberCard {
    /// The card of a network trained with `seed` as `history` says.
    pub fn new(seed: u64, history: &History) -> MemberCard {
        MemberCard {
            seed,
            epochs: history.epochs.len(),
            best_epoch: history.best_epoch,
            validation_macro_f1: history
                .epochs
                .iter()
                .find(|e| e.epoch == history.best_epoch)
                .and_then(|e| e.validation_macro_f1),
            seconds: history.seconds,
        }
    }
}

impl ModelCard {
    /// Networks the model averages (1 for a single network).
    pub fn networks(&self) -> usize {
        self.members.len().max(1)
    }
}

/// A trained detector: the fitted pipeline, the network(s) and its card.
#[derive(Debug, Clone)]
pub struct Detector {
    /// What it is (see [`ModelCard`]).
    pub card: ModelCard,
    /// Preprocessing, fitted on the training rows.
    pub pipeline: Pipeline,
    /// The networks, on the inference device: one, or an ensemble's (never empty).
    pub nets: Vec<GruClassifier>,
}

impl Detector {
    /// The detector of a network trained on `pipeline`'s features: the card's classes,
    /// feature names and benign class come from the pipeline, so the three files of the
    /// model directory agree by construction.
    pub fn new(
        pipeline: Pipeline,
        gru: GruConfig,
        window: usize,
        window_by: WindowBy,
        train: TrainConfig,
        history: History,
        net: GruClassifier,
    ) -> Detector {
        let classes = pipeline.classes.clone();
        Detector {
            card: ModelCard {
                format_version: MODEL_FORMAT_VERSION,
                iotids_version: env!("CARGO_PKG_VERSION").into(),
                gru,
                window,
                window_by,
                normal_class: normal_class(&classes).map(|i| classes[i].clone()),
                features: pipeline
                    .feature_names()
                    .iter()
                    .map(|s| s.to_string())
                    .collect(),
                decision: DecisionRule {
                    normal: normal_class(&classes),
                    ..DecisionRule::default()
                },
                classes,
                train,
                history,
                members: Vec::new(),
            },
            pipeline,
            nets: vec![net],
        }
    }

    /// Makes the detector an ensemble: `others` (seed, history, network), networks of the
    /// same shape trained on the same rows, join the first. Nothing changes when `others`
    /// is empty.
    pub fn with_members(mut self, others: Vec<(u64, History, GruClassifier)>) -> Detector {
        if others.is_empty() {
            return self;
        }
        self.card.members = vec![MemberCard::new(self.card.train.seed, &self.card.history)];
        self.card.format_version = ENSEMBLE_FORMAT_VERSION;
        for (seed, history, net) in others {
            self.card.members.push(MemberCard::new(seed, &history));
            self.nets.push(net);
        }
        self
    }

    /// The class names the detector's decisions use: its classes, then
    /// [`crate::metrics::UNKNOWN`] when it has an unknown-traffic test.
    pub fn decision_classes(&self) -> Vec<String> {
        let mut names = self.card.classes.clone();
        if self.card.decision.novelty.is_some() {
            names.push(crate::metrics::UNKNOWN.into());
        }
        names
    }

    /// Index of the benign class in [`ModelCard::classes`].
    pub fn normal_index(&self) -> Option<usize> {
        let normal = self.card.normal_class.as_ref()?;
        self.card.classes.iter().position(|c| c == normal)
    }

    /// Writes the model directory `dir` (created if needed; files in it are replaced).
    ///
    /// # Errors
    ///
    /// [`Error::Artifact`] when a file cannot be written.
    pub fn save(&self, dir: &Path) -> crate::Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| artifact(dir, e))?;
        let card = serde_json::to_string_pretty(&self.card).map_err(|e| artifact(dir, e))?;
        std::fs::write(dir.join(CARD), card).map_err(|e| artifact(&dir.join(CARD), e))?;
        self.pipeline.save(&dir.join(PIPELINE))?;
        for (i, net) in self.nets.iter().enumerate() {
            let weights = weights_path(dir, i);
            net.clone()
                .save_file(&weights)
                .map_err(|e| artifact(&weights, format!("{e:?}")))?;
        }
        // A smaller ensemble written over a larger one: the extra files would be read by
        // no one, but they would mislead a person; remove them.
        for stale in (self.nets.len()..)
            .map(|i| weights_path(dir, i).with_extension("bpk"))
            .take_while(|p| p.exists())
        {
            std::fs::remove_file(&stale).map_err(|e| artifact(&stale, e))?;
        }
        Ok(())
    }

    /// Reads a model directory written by [`save`](Self::save).
    ///
    /// # Errors
    ///
    /// [`Error::Artifact`] naming the file that is missing, unreadable, of another format
    /// version, or inconsistent with the others.
    pub fn load(dir: &Path) -> crate::Result<Detector> {
        let card_path = dir.join(CARD);
        if !card_path.exists() {
            return Err(artifact(
                dir,
                "not an iotids model directory (no model.json); `iotids train --out DIR` writes one",
            ));
        }
        let text = std::fs::read_to_string(&card_path).map_err(|e| artifact(&card_path, e))?;
        let card: ModelCard = serde_json::from_str(&text).map_err(|e| artifact(&card_path, e))?;
        let ensemble = card.members.len() > 1;
        let expected = if ensemble {
            ENSEMBLE_FORMAT_VERSION
        } else {
            MODEL_FORMAT_VERSION
        };
        if card.format_version != expected {
            return Err(artifact(
                &card_path,
                format!(
                    "model format version {} with {} network(s) (this iotids reads version {MODEL_FORMAT_VERSION} for one network, {ENSEMBLE_FORMAT_VERSION} for an ensemble)",
                    card.format_version,
                    card.networks()
                ),
            ));
        }
        card.gru.check()?;
        let pipeline = Pipeline::load(&dir.join(PIPELINE))?;
        let features = pipeline.feature_names();
        if features != card.features || card.gru.input != features.len() {
            return Err(artifact(
                &dir.join(PIPELINE),
                format!(
                    "its {} features are not the {} the network was trained on: the files come from different runs",
                    features.len(),
                    card.features.len()
                ),
            ));
        }
        if pipeline.classes != card.classes || card.gru.classes != card.classes.len() {
            return Err(artifact(
                &dir.join(PIPELINE),
                "its classes are not the network's: the files come from different runs",
            ));
        }
        if let Some(nov) = &card.decision.novelty {
            nov.check(card.gru.hidden * card.networks(), card.classes.len())
                .map_err(|why| artifact(&card_path, format!("decision.novelty: {why}")))?;
        }
        let mut nets = Vec::with_capacity(card.networks());
        for i in 0..card.networks() {
            let weights = weights_path(dir, i);
            let net = card
                .gru
                .init(&crate::backend::device())
                .try_load_file(&weights)
                .map_err(|e| artifact(&weights.with_extension("bpk"), format!("{e:?}")))?;
            nets.push(net);
        }
        Ok(Detector {
            card,
            pipeline,
            nets,
        })
    }
}

/// The weight file of network `i` without burn's `.bpk`: `weights`, then `weights-1`...
fn weights_path(dir: &Path, i: usize) -> PathBuf {
    if i == 0 {
        dir.join(WEIGHTS)
    } else {
        dir.join(format!("{WEIGHTS}-{i}"))
    }
}

fn artifact(path: &Path, reason: impl ToString) -> Error {
    Error::Artifact {
        path: PathBuf::from(path),
        reason: reason.to_string(),
    }
}
