//! The fitted preprocessing pipeline: encode, impute, scale, select.
//!
//! Every step is fitted on training rows only and saved as part of one versioned
//! JSON artifact, so prediction repeats exactly the same steps and a reloaded
//! pipeline gives bit-identical features.
//!
//! ```text
//! columns --encode--> numeric + one-hot (top levels, "other")
//!         --impute--> NaN -> training median
//!         --scale---> MinMax (default) or standard
//!         --select--> drop constants; Pearson (relevance, redundancy) or chi-square top-k
//! ```

use std::collections::HashMap;
use std::path::Path;

use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schema::Format;
use crate::stats::class_weights;
use crate::table::{ColumnData, Dataset};
use crate::value::ABSENT_CATEGORY;

/// Version of the JSON artifact layout. Bump on any incompatible change.
pub const PIPELINE_FORMAT_VERSION: u32 = 1;

/// Feature scaling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scaler {
    /// `(x - min) / (max - min)` over training rows (the seeds' choice). Values
    /// outside the training range map outside [0, 1]; they are not clipped.
    #[default]
    MinMax,
    /// `(x - mean) / std` (population std) over training rows.
    Standard,
    /// No scaling.
    None,
}

// Named as the command line spells them; serialised (pipeline.json) in kebab case.
spelled!(Scaler, "pipeline.scaler", {
    MinMax => "minmax" | "min-max",
    Standard => "standard" | "zscore",
    None => "none",
});

impl Scaler {
    /// Parses a name or alias ([`std::str::FromStr`] says what is allowed).
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// Feature selection method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SelectMethod {
    /// Rank by |Pearson r| with the label, drop one of each pair correlated above
    /// the threshold (the default).
    #[default]
    Pearson,
    /// Top-k by the chi-square statistic (scikit-learn's `chi2`).
    Chi2,
    /// Keep every non-constant feature.
    None,
}

spelled!(SelectMethod, "pipeline.select", {
    Pearson => "pearson",
    Chi2 => "chi2" | "chi-square",
    None => "none",
});

impl SelectMethod {
    /// Parses a name or alias ([`std::str::FromStr`] says what is allowed).
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// How to fit the pipeline. Defaults: at most 32 levels per categorical column,
/// MinMax scaling, Pearson selection with redundancy threshold 0.95 and no top-k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PipelineConfig {
    pub max_categories: usize,
    pub scaler: Scaler,
    pub select: SelectMethod,
    /// Keep at most this many features (required for chi-square).
    pub k: Option<usize>,
    /// Pearson: of two features with |r| above this, keep the more relevant.
    pub corr_threshold: f64,
    /// Rows sampled for feature-feature correlations (all rows when fewer).
    pub corr_sample: usize,
    pub seed: u64,
    /// `ln(1 + x)` on numeric features that are never negative and reach
    /// [`LOG_COMPRESS_MIN_MAX`] in training (sequence and acknowledgement numbers, byte
    /// counts), before scaling. MinMax alone squeezes such heavy-tailed columns into a
    /// sliver near 0 where a neural network can barely tell values apart; trees don't
    /// care. On by default; off in pipelines saved before it was (the seeds' pipeline).
    #[serde(default)]
    pub log_compress: bool,
    /// Leave out text columns with more distinct values in training than
    /// `max_categories` (topics, host names, URIs: identifiers of a sensor, a session or
    /// an attack tool). One-hot levels of such a column cannot generalise: a sensor's topic
    /// never seen in training would land in `<other>`, the level that in training meant
    /// whichever class made many values (MQTTset's malaria attack writes a random topic
    /// per packet). The column's numeric companions (`mqtt.topic_len`) stay. On by
    /// default; off in pipelines saved before it was.
    #[serde(default)]
    pub drop_identifiers: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_categories: 32,
            scaler: Scaler::MinMax,
            select: SelectMethod::Pearson,
            k: None,
            corr_threshold: 0.95,
            corr_sample: 50_000,
            seed: 42,
            log_compress: true,
            drop_identifiers: true,
        }
    }
}

impl PipelineConfig {
    /// Validates the configuration once, before any work.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the first field out of range, by its path in
    /// [`crate::prepare::PrepareConfig`] (`pipeline.k`).
    pub fn check(&self) -> Result<()> {
        if self.max_categories == 0 {
            return Err(Error::invalid(
                "pipeline.max_categories",
                0,
                "at least 1 (one-hot levels per categorical column)",
            ));
        }
        if !(0.0..=1.0).contains(&self.corr_threshold) {
            return Err(Error::invalid(
                "pipeline.corr_threshold",
                self.corr_threshold,
                "in [0, 1] (a correlation)",
            ));
        }
        if self.select == SelectMethod::Chi2 && self.k.is_none() {
            return Err(Error::invalid(
                "pipeline.k",
                "unset",
                "set with chi-square selection (it keeps the k best features)",
            ));
        }
        if self.k == Some(0) {
            return Err(Error::invalid(
                "pipeline.k",
                0,
                "at least 1 (features kept)",
            ));
        }
        Ok(())
    }
}

/// How the file was read, so prediction reads new files the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IngestSpec {
    pub format: Format,
    pub label: String,
    pub drop: Vec<String>,
    pub keep: Vec<String>,
    pub categorical: Vec<String>,
    /// The per-flow timing features were derived while reading
    /// ([`crate::IngestOptions::flow_timing`]); off in models saved before they existed.
    #[serde(default)]
    pub flow_timing: bool,
    /// `flow.index` was counted up to this many packets
    /// ([`crate::IngestOptions::flow_index_cap`]); `None` in models saved before the cap
    /// existed, which read new files uncapped as they were trained.
    #[serde(default)]
    pub flow_index_cap: Option<u32>,
}

/// One input column and what was learned about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Input {
    Numeric {
        name: String,
        /// Training median, used for missing values.
        median: f32,
    },
    Categorical {
        name: String,
        /// Levels with their own one-hot column, most frequent first; `""` is absent.
        levels: Vec<String>,
    },
}

impl Input {
    pub fn name(&self) -> &str {
        match self {
            Input::Numeric { name, .. } | Input::Categorical { name, .. } => name,
        }
    }
}

/// What an encoded feature is made of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    Numeric {
        input: usize,
    },
    /// 1 when the input has this level.
    Level {
        input: usize,
        level: usize,
    },
    /// 1 when the input has a level outside the kept ones (or unseen in training).
    Other {
        input: usize,
    },
}

/// One encoded feature with its scaling: `scaled = (x' - offset) * factor`, where `x'` is
/// `x`, or `ln(1 + max(x, 0))` for a log-compressed feature.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feature {
    pub name: String,
    pub source: Source,
    /// `ln(1 + x)` before scaling (see [`PipelineConfig::log_compress`]).
    #[serde(default)]
    pub log: bool,
    pub offset: f32,
    pub factor: f32,
}

/// Why a feature was kept or dropped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub feature: String,
    pub kept: bool,
    /// Relevance: max |r| with a one-vs-rest class indicator (Pearson) or chi2.
    pub score: f64,
    pub reason: String,
}

/// A fitted pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pipeline {
    pub format_version: u32,
    pub config: PipelineConfig,
    pub ingest: IngestSpec,
    pub classes: Vec<String>,
    pub class_weights: Vec<f64>,
    pub inputs: Vec<Input>,
    /// Every encoded feature (selected or not), with its scaling.
    pub features: Vec<Feature>,
    /// Indices into `features`, in output order.
    pub selected: Vec<usize>,
    pub decisions: Vec<Decision>,
    /// Training rows the pipeline was fitted on.
    pub fitted_rows: u64,
}

/// A dense row-major feature matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    pub rows: usize,
    pub cols: usize,
    pub data: Vec<f32>,
}

impl Matrix {
    pub fn row(&self, r: usize) -> &[f32] {
        &self.data[r * self.cols..(r + 1) * self.cols]
    }
}

impl Pipeline {
    /// Fits every step on `train` rows of `ds`.
    ///
    /// # Errors
    /// An invalid configuration, or no training rows.
    pub fn fit(
        ds: &Dataset,
        train: &[usize],
        ingest: IngestSpec,
        cfg: &PipelineConfig,
    ) -> Result<Pipeline> {
        cfg.check()?;
        if train.is_empty() {
            return Err(Error::Config(
                "no training rows to fit the pipeline on".into(),
            ));
        }
        let identifiers = if cfg.drop_identifiers {
            identifier_columns(ds, train, cfg.max_categories)
        } else {
            Vec::new()
        };
        let inputs = fit_inputs(ds, train, cfg.max_categories, &identifiers);
        let mut features = encoded_features(&inputs);
        let levels_map = level_maps(ds, &inputs)?;
        // Encoded training matrix, before scaling.
        let mut raw = encode(ds, train, &inputs, &features, &levels_map);
        if cfg.log_compress {
            fit_log(&mut raw, &mut features);
        }
        fit_scaling(&raw, &mut features, cfg.scaler);
        let scaled = apply_scaling(raw, &features);
        let y: Vec<u32> = train.iter().map(|&r| ds.labels[r]).collect();
        let (selected, mut decisions) = select(&scaled, &y, ds.n_classes(), &features, cfg);
        decisions.extend(identifiers.iter().map(|&(c, distinct)| Decision {
            feature: ds.columns[c].name.clone(),
            kept: false,
            score: 0.0,
            reason: format!(
                "identifier-like text: {distinct} distinct values in training, more than max_categories ({}); values unseen in training would all look alike",
                cfg.max_categories
            ),
        }));
        Ok(Pipeline {
            format_version: PIPELINE_FORMAT_VERSION,
            config: cfg.clone(),
            ingest,
            classes: ds.classes.clone(),
            class_weights: class_weights(&y, ds.n_classes()),
            inputs,
            features,
            selected,
            decisions,
            fitted_rows: train.len() as u64,
        })
    }

    /// Names of the output features, in order.
    pub fn feature_names(&self) -> Vec<&str> {
        self.selected
            .iter()
            .map(|&i| self.features[i].name.as_str())
            .collect()
    }

    /// Applies the fitted steps to `rows` of `ds` (any file with the input columns).
    ///
    /// # Errors
    /// `ds` lacks input columns, or a column has the wrong kind.
    pub fn transform(&self, ds: &Dataset, rows: &[usize]) -> Result<Matrix> {
        let maps = level_maps(ds, &self.inputs)?;
        let chosen: Vec<Feature> = self
            .selected
            .iter()
            .map(|&i| self.features[i].clone())
            .collect();
        let raw = encode(ds, rows, &self.inputs, &chosen, &maps);
        Ok(apply_scaling(raw, &chosen))
    }

    /// Maps `ds`'s class ids to the pipeline's; `None` for classes it never saw.
    pub fn class_map(&self, ds: &Dataset) -> Vec<Option<u32>> {
        ds.classes
            .iter()
            .map(|c| {
                let key = crate::schema::class_key(c);
                self.classes
                    .iter()
                    .position(|p| crate::schema::class_key(p) == key)
                    .map(|i| i as u32)
            })
            .collect()
    }

    /// Writes the artifact as pretty JSON.
    ///
    /// # Errors
    /// The file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_string_pretty(self).map_err(|e| Error::Artifact {
            path: path.into(),
            reason: e.to_string(),
        })?;
        std::fs::write(path, json).map_err(|e| Error::io(path, e))
    }

    /// Reads an artifact written by [`Pipeline::save`].
    ///
    /// # Errors
    /// The file cannot be read, is not a pipeline, or has another format version.
    pub fn load(path: &Path) -> Result<Pipeline> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let p: Pipeline = serde_json::from_str(&text).map_err(|e| Error::Artifact {
            path: path.into(),
            reason: e.to_string(),
        })?;
        if p.format_version != PIPELINE_FORMAT_VERSION {
            return Err(Error::Artifact {
                path: path.into(),
                reason: format!(
                    "format version {} (this iotids reads version {PIPELINE_FORMAT_VERSION})",
                    p.format_version
                ),
            });
        }
        Ok(p)
    }
}

/// Categorical columns with more distinct non-absent values on `train` rows than
/// `max_categories`, with that count ([`PipelineConfig::drop_identifiers`]).
fn identifier_columns(ds: &Dataset, train: &[usize], max_categories: usize) -> Vec<(usize, usize)> {
    ds.columns
        .iter()
        .enumerate()
        .filter_map(|(i, c)| match &c.data {
            ColumnData::Categorical { codes, levels } => {
                let mut seen = vec![false; levels.len()];
                for &r in train {
                    seen[codes[r] as usize] = true;
                }
                let distinct = seen
                    .iter()
                    .zip(levels)
                    .filter(|(s, l)| **s && l.as_str() != "")
                    .count();
                (distinct > max_categories).then_some((i, distinct))
            }
            ColumnData::Numeric(_) => None,
        })
        .collect()
}

fn fit_inputs(
    ds: &Dataset,
    train: &[usize],
    max_categories: usize,
    left_out: &[(usize, usize)],
) -> Vec<Input> {
    ds.columns
        .iter()
        .enumerate()
        .filter(|(i, _)| !left_out.iter().any(|&(c, _)| c == *i))
        .map(|(_, c)| match &c.data {
            ColumnData::Numeric(v) => {
                let mut vals: Vec<f64> = train
                    .iter()
                    .map(|&r| f64::from(v[r]))
                    .filter(|x| !x.is_nan())
                    .collect();
                vals.sort_unstable_by(f64::total_cmp);
                let median = if vals.is_empty() {
                    0.0
                } else {
                    crate::stats::quantile_sorted(&vals, 0.5) as f32
                };
                Input::Numeric {
                    name: c.name.clone(),
                    median,
                }
            }
            ColumnData::Categorical { codes, levels } => {
                let mut counts = vec![0u64; levels.len()];
                for &r in train {
                    counts[codes[r] as usize] += 1;
                }
                let mut order: Vec<usize> = (0..levels.len()).filter(|&i| counts[i] > 0).collect();
                order.sort_by(|&a, &b| {
                    counts[b]
                        .cmp(&counts[a])
                        .then_with(|| levels[a].cmp(&levels[b]))
                });
                order.truncate(max_categories);
                Input::Categorical {
                    name: c.name.clone(),
                    levels: order.into_iter().map(|i| levels[i].clone()).collect(),
                }
            }
        })
        .collect()
}

pub(crate) fn encoded_features(inputs: &[Input]) -> Vec<Feature> {
    let mut out = Vec::new();
    let feature = |name: String, source| Feature {
        name,
        source,
        log: false,
        offset: 0.0,
        factor: 1.0,
    };
    for (i, inp) in inputs.iter().enumerate() {
        match inp {
            Input::Numeric { name, .. } => {
                out.push(feature(name.clone(), Source::Numeric { input: i }))
            }
            Input::Categorical { name, levels } => {
                for (l, level) in levels.iter().enumerate() {
                    let shown = if level.is_empty() {
                        ABSENT_CATEGORY
                    } else {
                        level
                    };
                    out.push(feature(
                        format!("{name}={shown}"),
                        Source::Level { input: i, level: l },
                    ));
                }
                out.push(feature(
                    format!("{name}=<other>"),
                    Source::Other { input: i },
                ));
            }
        }
    }
    out
}

/// Per input: for categorical inputs, the dataset's code -> the pipeline's level
/// (or `None` for other); for numeric inputs, the dataset column index.
pub(crate) enum ColumnMap {
    Numeric(usize),
    Categorical(usize, Vec<Option<usize>>),
}

pub(crate) fn level_maps(ds: &Dataset, inputs: &[Input]) -> Result<Vec<ColumnMap>> {
    let by_name: HashMap<&str, usize> = ds
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), i))
        .collect();
    let missing: Vec<String> = inputs
        .iter()
        .filter(|i| !by_name.contains_key(i.name()))
        .map(|i| i.name().to_string())
        .collect();
    if !missing.is_empty() {
        return Err(Error::ColumnsMissing {
            path: ds.path.clone(),
            missing,
        });
    }
    inputs
        .iter()
        .map(|inp| {
            let ci = by_name[inp.name()];
            match (inp, &ds.columns[ci].data) {
                (Input::Numeric { .. }, ColumnData::Numeric(_)) => Ok(ColumnMap::Numeric(ci)),
                (Input::Categorical { levels, .. }, ColumnData::Categorical { levels: ds_levels, .. }) => {
                    let idx: HashMap<&str, usize> = levels.iter().enumerate().map(|(i, l)| (l.as_str(), i)).collect();
                    Ok(ColumnMap::Categorical(
                        ci,
                        ds_levels.iter().map(|l| idx.get(l.as_str()).copied()).collect(),
                    ))
                }
                _ => Err(Error::Config(format!(
                    "{}: column `{}` has another kind than in training (numeric vs categorical); read it with the model's categorical columns (`IngestOptions::categorical`)",
                    ds.path.display(),
                    inp.name()
                ))),
            }
        })
        .collect()
}

/// Encodes `rows` into the given features (unscaled), imputing missing numbers.
pub(crate) fn encode(
    ds: &Dataset,
    rows: &[usize],
    inputs: &[Input],
    features: &[Feature],
    maps: &[ColumnMap],
) -> Matrix {
    let cols = features.len();
    let mut data = vec![0f32; rows.len() * cols];
    for (j, f) in features.iter().enumerate() {
        let input = match f.source {
            Source::Numeric { input } | Source::Level { input, .. } | Source::Other { input } => {
                input
            }
        };
        match (&maps[input], &f.source) {
            (ColumnMap::Numeric(ci), _) => {
                let ColumnData::Numeric(v) = &ds.columns[*ci].data else {
                    unreachable!("checked in level_maps")
                };
                let Input::Numeric { median, .. } = inputs[input] else {
                    unreachable!("checked in level_maps")
                };
                for (i, &r) in rows.iter().enumerate() {
                    let x = v[r];
                    let x = if x.is_nan() { median } else { x };
                    data[i * cols + j] = if f.log { log_compress(x) } else { x };
                }
            }
            (ColumnMap::Categorical(ci, map), source) => {
                let ColumnData::Categorical { codes, .. } = &ds.columns[*ci].data else {
                    unreachable!("checked in level_maps")
                };
                for (i, &r) in rows.iter().enumerate() {
                    let mapped = map[codes[r] as usize];
                    let hit = match source {
                        Source::Level { level, .. } => mapped == Some(*level),
                        _ => mapped.is_none(),
                    };
                    data[i * cols + j] = if hit { 1.0 } else { 0.0 };
                }
            }
        }
    }
    Matrix {
        rows: rows.len(),
        cols,
        data,
    }
}

/// Numeric features whose training values span at least this much (and are never
/// negative) are log-compressed when [`PipelineConfig::log_compress`] is on.
pub const LOG_COMPRESS_MIN_MAX: f32 = 1000.0;

/// `ln(1 + x)`, with negative values (unseen in training) taken as 0.
pub(crate) fn log_compress(x: f32) -> f32 {
    x.max(0.0).ln_1p()
}

/// Marks the numeric features to log-compress and compresses them in `raw`.
fn fit_log(raw: &mut Matrix, features: &mut [Feature]) {
    for (j, f) in features.iter_mut().enumerate() {
        if !matches!(f.source, Source::Numeric { .. }) || raw.rows == 0 {
            continue;
        }
        let col = (0..raw.rows).map(|i| raw.data[i * raw.cols + j]);
        let (lo, hi) = col.fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), x| {
            (a.min(x), b.max(x))
        });
        if lo >= 0.0 && hi >= LOG_COMPRESS_MIN_MAX {
            f.log = true;
            for i in 0..raw.rows {
                let x = &mut raw.data[i * raw.cols + j];
                *x = log_compress(*x);
            }
        }
    }
}

fn fit_scaling(m: &Matrix, features: &mut [Feature], scaler: Scaler) {
    for (j, f) in features.iter_mut().enumerate() {
        let col = (0..m.rows).map(|i| f64::from(m.data[i * m.cols + j]));
        let (offset, factor) = match scaler {
            Scaler::None => (0.0, 1.0),
            Scaler::MinMax => {
                let (lo, hi) = col.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                    (a.min(x), b.max(x))
                });
                let range = hi - lo;
                (lo, if range > 0.0 { 1.0 / range } else { 1.0 })
            }
            Scaler::Standard => {
                let n = m.rows as f64;
                let mean = col.clone().sum::<f64>() / n;
                let sd = (col.map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
                (mean, if sd > 0.0 { 1.0 / sd } else { 1.0 })
            }
        };
        f.offset = offset as f32;
        f.factor = factor as f32;
    }
}

pub(crate) fn apply_scaling(mut m: Matrix, features: &[Feature]) -> Matrix {
    if m.cols == 0 {
        return m;
    }
    for row in m.data.chunks_exact_mut(m.cols) {
        for (x, f) in row.iter_mut().zip(features) {
            *x = (*x - f.offset) * f.factor;
        }
    }
    m
}

/// Column statistics used by selection, over the training matrix.
pub(crate) struct ColumnStats {
    pub(crate) mean: Vec<f64>,
    pub(crate) sd: Vec<f64>,
    /// Per class, per feature: mean of the feature over rows of that class.
    pub(crate) class_mean: Vec<Vec<f64>>,
    pub(crate) class_frac: Vec<f64>,
    /// Per class, per feature: sum of the feature (chi-square's observed).
    pub(crate) class_sum: Vec<Vec<f64>>,
}

fn column_stats(m: &Matrix, y: &[u32], n_classes: usize) -> ColumnStats {
    let d = m.cols;
    let n = m.rows as f64;
    let mut sum = vec![0f64; d];
    let mut class_sum = vec![vec![0f64; d]; n_classes];
    let mut class_n = vec![0f64; n_classes];
    for (i, row) in m.data.chunks_exact(d.max(1)).enumerate().take(m.rows) {
        let c = y[i] as usize;
        class_n[c] += 1.0;
        for (j, &x) in row.iter().enumerate() {
            sum[j] += f64::from(x);
            class_sum[c][j] += f64::from(x);
        }
    }
    let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
    let mut ss = vec![0f64; d];
    for row in m.data.chunks_exact(d.max(1)).take(m.rows) {
        for (j, &x) in row.iter().enumerate() {
            ss[j] += (f64::from(x) - mean[j]).powi(2);
        }
    }
    ColumnStats {
        sd: ss.iter().map(|s| (s / n).sqrt()).collect(),
        class_mean: class_sum
            .iter()
            .zip(&class_n)
            .map(|(s, &cn)| {
                s.iter()
                    .map(|v| if cn > 0.0 { v / cn } else { 0.0 })
                    .collect()
            })
            .collect(),
        class_frac: class_n.iter().map(|c| c / n).collect(),
        class_sum,
        mean,
    }
}

/// Max over classes of |r(x, 1[y = c])|. For two classes this is |r(x, y)|.
///
/// With p = P(y = c): cov(x, 1c) = p (mean_c - mean), var(1c) = p (1 - p), so
/// r = sqrt(p / (1 - p)) (mean_c - mean) / sd.
fn pearson_relevance(s: &ColumnStats, j: usize) -> f64 {
    if s.sd[j] == 0.0 {
        return 0.0;
    }
    s.class_frac
        .iter()
        .zip(&s.class_mean)
        .filter(|(p, _)| **p > 0.0 && **p < 1.0)
        .map(|(&p, cm)| ((p / (1.0 - p)).sqrt() * (cm[j] - s.mean[j]) / s.sd[j]).abs())
        .fold(0.0, f64::max)
}

/// scikit-learn's `chi2`: observed = per-class feature sums, expected = class
/// frequency times the feature total; chi2 = sum (obs - exp)^2 / exp.
pub(crate) fn chi2_score(s: &ColumnStats, j: usize) -> f64 {
    let total: f64 = s.class_sum.iter().map(|c| c[j]).sum();
    if total <= 0.0 {
        return 0.0;
    }
    s.class_frac
        .iter()
        .zip(&s.class_sum)
        .filter(|(p, _)| **p > 0.0)
        .map(|(&p, obs)| {
            let exp = p * total;
            (obs[j] - exp).powi(2) / exp
        })
        .sum()
}

fn select(
    m: &Matrix,
    y: &[u32],
    n_classes: usize,
    features: &[Feature],
    cfg: &PipelineConfig,
) -> (Vec<usize>, Vec<Decision>) {
    let stats = column_stats(m, y, n_classes);
    select_with(
        &stats,
        features,
        cfg,
        |j| stats.sd[j] == 0.0,
        // chi2 needs non-negative inputs: score a MinMax view of the column.
        |j| chi2_score(&minmax_view(&stats, m, j, y, n_classes), 0),
        |candidates| correlations(m, candidates, &stats, cfg),
    )
}

/// Selection from column statistics: the central fit's and the statistics round's
/// ([`crate::federated`]) common core. `constant(j)` says feature `j` is constant in
/// training, `chi2(j)` is its chi-square score, `correlations(candidates)` the row-major
/// `c x c` Pearson matrix of the candidates (only called for Pearson selection).
pub(crate) fn select_with(
    stats: &ColumnStats,
    features: &[Feature],
    cfg: &PipelineConfig,
    constant: impl Fn(usize) -> bool,
    chi2: impl Fn(usize) -> f64,
    correlations: impl FnOnce(&[usize]) -> Vec<f64>,
) -> (Vec<usize>, Vec<Decision>) {
    let mut decisions: Vec<Decision> = features
        .iter()
        .map(|f| Decision {
            feature: f.name.clone(),
            kept: false,
            score: 0.0,
            reason: String::new(),
        })
        .collect();
    let mut candidates = Vec::new();
    for (j, decision) in decisions.iter_mut().enumerate() {
        if constant(j) {
            decision.reason = "constant in training".into();
        } else {
            candidates.push(j);
        }
    }
    let score = |j: usize| match cfg.select {
        SelectMethod::Chi2 => chi2(j),
        _ => pearson_relevance(stats, j),
    };
    for &j in &candidates {
        decisions[j].score = score(j);
    }
    // Scores equal to f32 precision tie, and the earlier feature goes first: two features
    // with the same relevance in exact arithmetic (a flag and the one-hot level it always
    // comes with, a level and its complement) must not be ranked by rounding, which
    // depends on the order the sums were added in (pooled rows, or devices' summaries).
    let rank = |j: usize| decisions[j].score as f32;
    candidates.sort_by(|&a, &b| rank(b).total_cmp(&rank(a)).then(a.cmp(&b)));
    let mut kept: Vec<usize> = Vec::new();
    match cfg.select {
        SelectMethod::Pearson => {
            let corr = correlations(&candidates);
            for (ci, &j) in candidates.iter().enumerate() {
                let redundant = kept.iter().find_map(|&k| {
                    let ck = candidates.iter().position(|&c| c == k)?;
                    let r = corr[ci * candidates.len() + ck];
                    (r.abs() > cfg.corr_threshold).then_some((k, r))
                });
                if let Some((k, r)) = redundant {
                    decisions[j].reason = format!(
                        "|r| = {:.3} with {} (kept, more relevant)",
                        r.abs(),
                        features[k].name
                    );
                } else if cfg.k.is_some_and(|k| kept.len() >= k) {
                    decisions[j].reason = format!("below the top {}", cfg.k.unwrap_or(0));
                } else {
                    decisions[j].reason = format!("relevance max|r| = {:.3}", decisions[j].score);
                    kept.push(j);
                }
            }
        }
        SelectMethod::Chi2 | SelectMethod::None => {
            for &j in &candidates {
                if cfg.select == SelectMethod::Chi2 && cfg.k.is_some_and(|k| kept.len() >= k) {
                    decisions[j].reason = format!(
                        "chi2 = {:.4}, below the top {}",
                        decisions[j].score,
                        cfg.k.unwrap_or(0)
                    );
                } else {
                    decisions[j].reason = match cfg.select {
                        SelectMethod::Chi2 => format!("chi2 = {:.4}", decisions[j].score),
                        _ => "no selection".into(),
                    };
                    kept.push(j);
                }
            }
        }
    }
    kept.sort_unstable();
    for &j in &kept {
        decisions[j].kept = true;
    }
    (kept, decisions)
}

/// Class sums of column `j` rescaled to [0, 1], as a one-column stats view.
fn minmax_view(s: &ColumnStats, m: &Matrix, j: usize, y: &[u32], n_classes: usize) -> ColumnStats {
    let (lo, hi) = (0..m.rows).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), i| {
        let x = f64::from(m.data[i * m.cols + j]);
        (a.min(x), b.max(x))
    });
    let range = if hi > lo { hi - lo } else { 1.0 };
    let mut class_sum = vec![vec![0f64]; n_classes];
    for i in 0..m.rows {
        class_sum[y[i] as usize][0] += (f64::from(m.data[i * m.cols + j]) - lo) / range;
    }
    ColumnStats {
        mean: vec![0.0],
        sd: vec![s.sd[j]],
        class_mean: vec![vec![0.0]; n_classes],
        class_frac: s.class_frac.clone(),
        class_sum,
    }
}

/// Pearson correlations between candidate features (row-major, c x c), over at
/// most `cfg.corr_sample` training rows.
fn correlations(m: &Matrix, cand: &[usize], stats: &ColumnStats, cfg: &PipelineConfig) -> Vec<f64> {
    let c = cand.len();
    let rows: Vec<usize> = if m.rows > cfg.corr_sample {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        let mut r = sample(&mut rng, m.rows, cfg.corr_sample).into_vec();
        r.sort_unstable();
        r
    } else {
        (0..m.rows).collect()
    };
    let mut cov = vec![0f64; c * c];
    let mut z = vec![0f64; c];
    for &i in &rows {
        for (a, &j) in cand.iter().enumerate() {
            z[a] = f64::from(m.data[i * m.cols + j]) - stats.mean[j];
        }
        for a in 0..c {
            let za = z[a];
            if za == 0.0 {
                continue;
            }
            for b in a..c {
                cov[a * c + b] += za * z[b];
            }
        }
    }
    let mut r = vec![0f64; c * c];
    for a in 0..c {
        for b in a..c {
            let denom = (cov[a * c + a] * cov[b * c + b]).sqrt();
            let v = if denom > 0.0 {
                cov[a * c + b] / denom
            } else {
                0.0
            };
            r[a * c + b] = v;
            r[b * c + a] = v;
        }
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::{Column, IngestReport};

    fn column(name: &str, data: ColumnData) -> Column {
        Column {
            name: name.into(),
            data,
            text_cells: 0,
            missing_cells: 0,
            spellings: Vec::new(),
        }
    }

    fn dataset() -> Dataset {
        // x: informative; twin: 2x (redundant); noise: constant; proto: categorical.
        let x = vec![0.0, 1.0, 2.0, 3.0, 10.0, 11.0, 12.0, f32::NAN];
        let twin: Vec<f32> = x.iter().map(|v| v * 2.0).collect();
        Dataset {
            path: "mem.csv".into(),
            format: Format::Generic,
            label_column: "y".into(),
            columns: vec![
                column("x", ColumnData::Numeric(x)),
                column("twin", ColumnData::Numeric(twin)),
                column("noise", ColumnData::Numeric(vec![5.0; 8])),
                column(
                    "proto",
                    ColumnData::Categorical {
                        codes: vec![0, 0, 1, 0, 1, 1, 2, 1],
                        levels: vec!["tcp".into(), "udp".into(), "".into()],
                    },
                ),
            ],
            classes: vec!["a".into(), "b".into()],
            labels: vec![0, 0, 0, 0, 1, 1, 1, 1],
            flows: None,
            hosts: None,
            host_pairs: None,
            lines: (2..10).collect(),
            row_hashes: (0..8).collect(),
            timing_source: None,
            report: IngestReport::default(),
        }
    }

    fn spec() -> IngestSpec {
        IngestSpec {
            format: Format::Generic,
            label: "y".into(),
            drop: vec![],
            keep: vec![],
            categorical: vec![],
            flow_timing: false,
            flow_index_cap: None,
        }
    }

    #[test]
    fn a_spec_saved_before_the_index_cap_reads_uncapped() {
        let old = r#"{"format":"tshark","label":"label","drop":[],"keep":[],"categorical":[],"flow_timing":true}"#;
        let spec: IngestSpec = serde_json::from_str(old).unwrap();
        assert!(spec.flow_timing);
        assert_eq!(spec.flow_index_cap, None);
        let capped = IngestSpec {
            flow_index_cap: Some(32),
            ..spec
        };
        let back: IngestSpec =
            serde_json::from_str(&serde_json::to_string(&capped).unwrap()).unwrap();
        assert_eq!(back.flow_index_cap, Some(32));
    }

    #[test]
    fn fits_on_training_rows_only() {
        let ds = dataset();
        let train = [0, 1, 4, 5];
        let cfg = PipelineConfig {
            select: SelectMethod::None,
            ..PipelineConfig::default()
        };
        let p = Pipeline::fit(&ds, &train, spec(), &cfg).unwrap();
        // MinMax of x over training rows {0, 1, 10, 11}.
        let fx = p.features.iter().find(|f| f.name == "x").unwrap();
        assert_eq!((fx.offset, fx.factor), (0.0, 1.0 / 11.0));
        // Median of x over training rows is 5.5; row 7 (NaN) is imputed with it.
        let m = p.transform(&ds, &[7]).unwrap();
        let xi = p.feature_names().iter().position(|n| *n == "x").unwrap();
        assert!((m.row(0)[xi] - 0.5).abs() < 1e-6, "{}", m.row(0)[xi]);
        // The absent level of proto is never seen in training: it goes to <other>.
        let names = p.feature_names();
        let other = names.iter().position(|n| *n == "proto=<other>");
        assert!(
            other.is_none(),
            "<other> is constant (0) in training and dropped: {names:?}"
        );
        let m6 = p.transform(&ds, &[6]).unwrap();
        let tcp = names.iter().position(|n| *n == "proto=tcp").unwrap();
        assert_eq!(m6.row(0)[tcp], 0.0);
        // Class weights come from training labels: 2 and 2 -> 1.0 each.
        assert_eq!(p.class_weights, vec![1.0, 1.0]);
    }

    #[test]
    fn pearson_drops_constants_and_redundant_twins() {
        let ds = dataset();
        let train: Vec<usize> = (0..7).collect();
        let p = Pipeline::fit(&ds, &train, spec(), &PipelineConfig::default()).unwrap();
        let names = p.feature_names();
        assert!(!names.contains(&"noise"));
        // x and twin are perfectly correlated: exactly one survives.
        assert_eq!(
            names.iter().filter(|n| **n == "x" || **n == "twin").count(),
            1
        );
        let d = p.decisions.iter().find(|d| d.feature == "noise").unwrap();
        assert_eq!(d.reason, "constant in training");
    }

    #[test]
    fn pearson_relevance_matches_direct_correlation() {
        // Binary label: relevance equals |r(x, y)| computed directly.
        let x = [1.0f32, 2.0, 3.0, 4.0, 8.0, 5.0];
        let y = [0u32, 0, 1, 0, 1, 1];
        let m = Matrix {
            rows: 6,
            cols: 1,
            data: x.to_vec(),
        };
        let s = column_stats(&m, &y, 2);
        let n = 6.0;
        let mx = x.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let my = y.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
        let cov: f64 = x
            .iter()
            .zip(&y)
            .map(|(&a, &b)| (f64::from(a) - mx) * (f64::from(b) - my))
            .sum();
        let vx: f64 = x.iter().map(|&a| (f64::from(a) - mx).powi(2)).sum();
        let vy: f64 = y.iter().map(|&b| (f64::from(b) - my).powi(2)).sum();
        let r = cov / (vx * vy).sqrt();
        assert!((pearson_relevance(&s, 0) - r.abs()).abs() < 1e-12);
    }

    #[test]
    fn chi2_matches_scikit_learn() {
        // sklearn.feature_selection.chi2([[1],[2],[0],[0]], [0,0,1,1]) -> 3.0
        // observed [3, 0], expected [1.5, 1.5]: (1.5^2 + 1.5^2) / 1.5 = 3.
        let m = Matrix {
            rows: 4,
            cols: 1,
            data: vec![1.0, 2.0, 0.0, 0.0],
        };
        let s = column_stats(&m, &[0, 0, 1, 1], 2);
        assert!((chi2_score(&s, 0) - 3.0).abs() < 1e-12);
    }

    #[test]
    fn chi2_top_k_keeps_k() {
        let ds = dataset();
        let train: Vec<usize> = (0..8).collect();
        let cfg = PipelineConfig {
            select: SelectMethod::Chi2,
            k: Some(2),
            ..PipelineConfig::default()
        };
        let p = Pipeline::fit(&ds, &train, spec(), &cfg).unwrap();
        assert_eq!(p.selected.len(), 2);
    }

    #[test]
    fn saved_pipeline_reloads_bit_identical() {
        let ds = dataset();
        let train = [0, 1, 2, 4, 5, 6];
        let cfg = PipelineConfig {
            scaler: Scaler::Standard,
            select: SelectMethod::None,
            ..PipelineConfig::default()
        };
        let p = Pipeline::fit(&ds, &train, spec(), &cfg).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pipeline.json");
        p.save(&path).unwrap();
        let q = Pipeline::load(&path).unwrap();
        assert_eq!(p, q);
        let all: Vec<usize> = (0..8).collect();
        let a = p.transform(&ds, &all).unwrap();
        let b = q.transform(&ds, &all).unwrap();
        let bits = |m: &Matrix| m.data.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&a), bits(&b));
    }

    #[test]
    fn missing_columns_are_named() {
        let ds = dataset();
        let p = Pipeline::fit(&ds, &[0, 1, 4, 5], spec(), &PipelineConfig::default()).unwrap();
        let mut other = dataset();
        other.columns.retain(|c| c.name != "x" && c.name != "proto");
        match p.transform(&other, &[0]) {
            Err(Error::ColumnsMissing { missing, .. }) => assert_eq!(missing, vec!["x", "proto"]),
            r => panic!("expected ColumnsMissing, got {r:?}"),
        }
    }

    #[test]
    fn check_names_the_field_out_of_range() {
        let field = |cfg: PipelineConfig| match cfg.check() {
            Err(Error::Invalid { field, .. }) => field,
            r => panic!("expected Invalid, got {r:?}"),
        };
        let ok = PipelineConfig::default();
        ok.check().unwrap();
        assert_eq!(
            field(PipelineConfig {
                max_categories: 0,
                ..ok.clone()
            }),
            "pipeline.max_categories"
        );
        assert_eq!(
            field(PipelineConfig {
                corr_threshold: 1.5,
                ..ok.clone()
            }),
            "pipeline.corr_threshold"
        );
        assert_eq!(
            field(PipelineConfig {
                k: Some(0),
                ..ok.clone()
            }),
            "pipeline.k"
        );
        let e = PipelineConfig {
            select: SelectMethod::Chi2,
            ..ok
        }
        .check()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid setting `pipeline.k` = unset: must be set with chi-square selection (it keeps the k best features)"
        );
    }

    #[test]
    fn scaler_and_selection_spell_for_the_command_line_and_save_as_before() {
        assert_eq!(Scaler::MinMax.to_string(), "minmax");
        assert_eq!(Scaler::parse("min-max"), Some(Scaler::MinMax));
        assert_eq!(Scaler::parse("ZSCORE"), Some(Scaler::Standard));
        assert_eq!(
            serde_json::to_string(&Scaler::MinMax).unwrap(),
            "\"min-max\""
        );
        assert_eq!(SelectMethod::parse("chi-square"), Some(SelectMethod::Chi2));
        for s in Scaler::ALL {
            assert_eq!(s.name().parse::<Scaler>().unwrap(), *s);
        }
        for s in SelectMethod::ALL {
            assert_eq!(s.name().parse::<SelectMethod>().unwrap(), *s);
        }
        let e = "log".parse::<Scaler>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid setting `pipeline.scaler` = log: must be one of minmax, standard, none"
        );
        assert!(matches!(
            "lasso".parse::<SelectMethod>(),
            Err(Error::Invalid {
                field: "pipeline.select",
                ..
            })
        ));
    }
}
