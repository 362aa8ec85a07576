//! The statistics round: the preprocessing pipeline fitted from devices' summaries, with no
//! row leaving a device (issue 14, item 4).
//!
//! [`Pipeline::fit`] needs the pooled training rows, which a federation never has. Here the
//! cloud ([`FederatedFit`]) asks every device a [`SummaryRequest`]; each device answers over
//! its own rows with a [`Summary`] ([`SummaryRequest::answer`]); edges add their devices'
//! answers up ([`Summary::merge`]) and the cloud absorbs the total. A few such phases and the
//! cloud has the same [`Pipeline`] type that `pipeline.json` holds.
//!
//! ```text
//! survey      per column: kind, header position, non-missing count, min, max; per
//!             categorical column the counts of its top levels (capped) and of the rest;
//!             rows per class
//!               -> classes, class weights, identifier columns dropped, inputs and their
//!                  levels, log compression, MinMax scaling (all exact)
//! quantiles   (up to QUANTILE_ROUNDS times) a fixed-size histogram per numeric column with
//!             each bin's count, min and max, zooming in on the bin holding the median; bins
//!             hold equally many f32 values, so four rounds of 256 bins end on one value
//!               -> medians (exact)
//! moments     (standard scaling only) sums and squares of each encoded feature
//!               -> means and standard deviations
//! selection   per class the sums of each scaled feature; for Pearson selection the
//!             cross-products of the non-constant features about the cloud's centres, over
//!             every row of every device
//!               -> relevance scores, redundancy, chi-square, the kept features
//! ```
//!
//! Everything a device sends is keyed by name (class names by [`class_key`], column and
//! level names), never by the device's own class ids or level codes, and its size does not
//! grow with the rows: a categorical column reports at most [`category_cap`] levels plus an
//! "other" count, histograms have [`HISTOGRAM_BINS`] bins, the selection sums are
//! `classes × features` and `features²`.
//!
//! # How it differs from [`Pipeline::fit`] on the pooled rows
//!
//! - **Classes** are listed by name (sorted), not in the order the pooled file first shows
//!   them: no device order can change them. [`Dataset::reorder_classes`] renumbers a table
//!   to match. Class weights are exact.
//! - **Identifier columns, levels, log compression, MinMax scaling** are exact. Level counts
//!   stay exact while every column has at most [`category_cap`] distinct values on every
//!   device and in every merge; a column past the cap has more than `max_categories` values,
//!   so it is an identifier column (dropped by default) either way. With
//!   `drop_identifiers` off, such a column's top levels come from capped counts.
//! - **Medians** are exact: the values at the median's ranks are found by zooming in with
//!   histograms whose bins hold equally many f32 values (2³² values, 256 bins: at most four
//!   rounds); the median is then computed as the pooled fit computes it.
//! - **Means, variances, relevance and correlations** are sums added in another order, so
//!   they agree with the pooled fit to rounding (about 1e-12 relative), and a decision can
//!   only differ where the pooled fit's score ties another or sits on the threshold. The
//!   pooled fit's correlations use a sample of at most `corr_sample` rows; the round uses
//!   every row (the same when the training rows are fewer than `corr_sample`).
//! - **Standard scaling of a constant feature**: offset = the value, factor 1 (the pooled
//!   fit divides by a rounding-sized deviation). Constant features are dropped either way.
//!
//! # Merging
//!
//! Counts, minima and maxima merge exactly and in any order. Sums are f64 additions, so
//! merging the same summaries in another order can change the last bits of a sum (never a
//! count). A capped level list that overflows in a merge keeps the most frequent levels
//! (ties by name) and moves the rest into "other"; which levels survive can then depend on
//! the order only for columns with more than [`category_cap`] distinct values.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_64;

use crate::error::{Error, Result};
use crate::pipeline::{
    ColumnStats, Decision, Feature, IngestSpec, Input, LOG_COMPRESS_MIN_MAX, Matrix,
    PIPELINE_FORMAT_VERSION, Pipeline, PipelineConfig, Scaler, SelectMethod, Source, apply_scaling,
    chi2_score, encode, encoded_features, level_maps, log_compress, select_with,
};
use crate::schema::class_key;
use crate::table::{ColumnData, Dataset};

/// Bins of each quantile histogram.
pub const HISTOGRAM_BINS: usize = 256;

/// Histogram rounds for the medians at most: with [`HISTOGRAM_BINS`] = 256 and bins of
/// equally many f32 values, four rounds always end on the exact values (2³² = 256⁴); a
/// value still open after them (only with other constants) would be its last bin's middle.
pub const QUANTILE_ROUNDS: u32 = 4;

/// Rows a device encodes at a time (bounds its memory, not the answer).
const CHUNK: usize = 8192;

/// Levels a categorical column's summary keeps: `max(4 · max_categories, 256)`.
pub fn category_cap(max_categories: usize) -> usize {
    max_categories.saturating_mul(4).max(256)
}

/// One question of the cloud to every device.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRequest {
    /// Fingerprint of `step` and `question`; a [`Summary`] carries it.
    pub id: u64,
    /// 0 for the first request of a fit, then 1, 2, …
    pub step: u32,
    pub question: Question,
}

/// What a [`SummaryRequest`] asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Question {
    /// Column kinds, ranges, capped level counts, class counts.
    Survey { category_cap: usize },
    /// A histogram per query over the non-missing values in `[lo, hi]`.
    Quantiles {
        bins: usize,
        queries: Vec<QuantileQuery>,
    },
    /// Sums of `x − centre` and `(x − centre)²` of each encoded (imputed, log-compressed,
    /// unscaled) feature.
    Moments {
        inputs: Vec<Input>,
        features: Vec<Feature>,
        centres: Vec<f64>,
    },
    /// Per class the sums of each scaled feature, the sums of `x − centre` and of its
    /// square, and with `cross`
    /// the upper triangle (row by row, diagonal included) of `Σ (x_a − c_a)(x_b − c_b)`.
    Selection {
        inputs: Vec<Input>,
        /// The non-constant features, with their scaling.
        features: Vec<Feature>,
        centres: Vec<f64>,
        classes: Vec<String>,
        cross: bool,
    },
}

/// One numeric column's histogram request: the non-missing values in `[lo, hi]`, in bins of
/// equally many f32 values (not of equal width: a bin is the same count of representable
/// numbers wherever it lies, so the zoom ends on one value in at most four rounds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantileQuery {
    pub column: String,
    pub lo: f32,
    pub hi: f32,
}

/// A device's (or several devices', merged) answer to one [`SummaryRequest`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The [`SummaryRequest::id`] it answers.
    pub request: u64,
    /// Rows summarised.
    pub rows: u64,
    pub answer: Answer,
}

/// The body of a [`Summary`], one variant per [`Question`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Answer {
    Survey(Survey),
    /// One histogram per query, in the request's order.
    Quantiles {
        histograms: Vec<Histogram>,
    },
    Moments {
        sum: Vec<f64>,
        sum_sq: Vec<f64>,
    },
    Selection(SelectionSums),
}

/// The survey's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Survey {
    /// Devices behind this summary.
    pub devices: u64,
    pub category_cap: usize,
    /// By [`class_key`]: every class named in the devices' files, with its rows here.
    pub classes: BTreeMap<String, ClassCount>,
    /// By column name.
    pub columns: BTreeMap<String, ColumnSurvey>,
}

/// A class's spelling and rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassCount {
    /// The smallest spelling any device used.
    pub name: String,
    pub rows: u64,
}

/// One column in the survey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnSurvey {
    /// Devices whose table has the column.
    pub devices: u64,
    /// Its smallest position among the devices' columns (the pipeline keeps this order).
    pub position: u64,
    pub values: ColumnValues,
}

/// What a column holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum ColumnValues {
    Numeric {
        /// Non-missing values.
        count: u64,
        min: Option<f32>,
        max: Option<f32>,
    },
    Categorical {
        /// Rows per level (`""` is absent), at most the survey's `category_cap` levels.
        levels: BTreeMap<String, u64>,
        /// Rows of the levels left out by the cap; more than 0 means the column has more
        /// distinct values than the cap.
        other: u64,
    },
}

/// One quantile histogram: per bin, count, min and max of the values in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Histogram {
    pub counts: Vec<u64>,
    pub min: Vec<Option<f32>>,
    pub max: Vec<Option<f32>>,
}

/// The selection phase's sums.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelectionSums {
    /// By class name (the request's spelling): sums of each feature.
    pub class_sum: BTreeMap<String, Vec<f64>>,
    /// Sums of `x − centre`.
    pub sum: Vec<f64>,
    /// Sums of `(x − centre)²`.
    pub sum_sq: Vec<f64>,
    /// Packed upper triangle of the centred cross-products (empty without `cross`).
    pub cross: Vec<f64>,
}

impl SummaryRequest {
    fn new(step: u32, question: Question) -> Self {
        let bytes = serde_json::to_vec(&(step, &question)).unwrap_or_default();
        SummaryRequest {
            id: xxh3_64(&bytes),
            step,
            question,
        }
    }

    /// A device's answer over `rows` of its own table `ds` (its own file: its class list and
    /// category levels are its own, so everything in a Summary is keyed by name, never by
    /// index).
    ///
    /// # Errors
    /// A row out of range, a requested column missing or of another kind, a class the
    /// cloud does not know.
    pub fn answer(&self, ds: &Dataset, rows: &[usize]) -> Result<Summary> {
        if let Some(&r) = rows.iter().find(|&&r| r >= ds.n_rows()) {
            return Err(Error::Config(format!(
                "{}: row {r} asked for, the table has {} rows",
                ds.path.display(),
                ds.n_rows()
            )));
        }
        let answer = match &self.question {
            Question::Survey { category_cap } => Answer::Survey(survey(ds, rows, *category_cap)),
            Question::Quantiles { bins, queries } => Answer::Quantiles {
                histograms: queries
                    .iter()
                    .map(|q| histogram(ds, rows, q, *bins))
                    .collect::<Result<_>>()?,
            },
            Question::Moments {
                inputs,
                features,
                centres,
            } => {
                let maps = level_maps(ds, inputs)?;
                let mut sum = vec![0f64; features.len()];
                let mut sum_sq = vec![0f64; features.len()];
                for chunk in rows.chunks(CHUNK) {
                    let m = encode(ds, chunk, inputs, features, &maps);
                    for row in m.data.chunks_exact(m.cols.max(1)).take(m.rows) {
                        for (j, &x) in row.iter().enumerate() {
                            let d = f64::from(x) - centres[j];
                            sum[j] += d;
                            sum_sq[j] += d * d;
                        }
                    }
                }
                Answer::Moments { sum, sum_sq }
            }
            Question::Selection {
                inputs,
                features,
                centres,
                classes,
                cross,
            } => Answer::Selection(selection_sums(
                ds, rows, inputs, features, centres, classes, *cross,
            )?),
        };
        Ok(Summary {
            request: self.id,
            rows: rows.len() as u64,
            answer,
        })
    }
}

fn survey(ds: &Dataset, rows: &[usize], cap: usize) -> Survey {
    let mut per_class = vec![0u64; ds.n_classes()];
    for &r in rows {
        per_class[ds.labels[r] as usize] += 1;
    }
    let mut classes = BTreeMap::new();
    for (name, &n) in ds.classes.iter().zip(&per_class) {
        let e = classes.entry(class_key(name)).or_insert(ClassCount {
            name: name.clone(),
            rows: 0,
        });
        e.rows += n;
        if *name < e.name {
            e.name = name.clone();
        }
    }
    let columns = ds
        .columns
        .iter()
        .enumerate()
        .map(|(pos, c)| {
            let values = match &c.data {
                ColumnData::Numeric(v) => {
                    let (mut count, mut min, mut max) = (0u64, None::<f32>, None::<f32>);
                    for &r in rows {
                        let x = v[r];
                        if x.is_nan() {
                            continue;
                        }
                        count += 1;
                        min = min_opt(min, Some(x));
                        max = max_opt(max, Some(x));
                    }
                    ColumnValues::Numeric { count, min, max }
                }
                ColumnData::Categorical { codes, levels } => {
                    let mut counts = vec![0u64; levels.len()];
                    for &r in rows {
                        counts[codes[r] as usize] += 1;
                    }
                    let mut map = BTreeMap::new();
                    for (l, &n) in levels.iter().zip(&counts) {
                        if n > 0 {
                            *map.entry(l.clone()).or_insert(0) += n;
                        }
                    }
                    let mut other = 0;
                    cap_levels(&mut map, &mut other, cap);
                    ColumnValues::Categorical { levels: map, other }
                }
            };
            (
                c.name.clone(),
                ColumnSurvey {
                    devices: 1,
                    position: pos as u64,
                    values,
                },
            )
        })
        .collect();
    Survey {
        devices: 1,
        category_cap: cap,
        classes,
        columns,
    }
}

/// Keeps the `cap` most frequent levels (ties by name), the rest's rows into `other`.
fn cap_levels(levels: &mut BTreeMap<String, u64>, other: &mut u64, cap: usize) {
    if levels.len() <= cap {
        return;
    }
    let mut v: Vec<(String, u64)> = std::mem::take(levels).into_iter().collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    *other += v.drain(cap..).map(|(_, n)| n).sum::<u64>();
    *levels = v.into_iter().collect();
}

/// `x`'s place in the order of all f32 values (`−0 < +0`; NaN never asked): histograms bin
/// these keys, not the values, so each round divides the count of f32 values the median can
/// still be by `bins`, and four rounds of 256 bins leave one.
fn order_key(x: f32) -> u32 {
    let b = x.to_bits();
    if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    }
}

/// The bin of key `k` in `bins` bins of equally many keys over `[lo, hi]`.
fn bin_of(k: u32, lo: u32, hi: u32, bins: usize) -> usize {
    let span = u64::from(hi - lo) + 1;
    ((u64::from(k - lo) * bins as u64 / span) as usize).min(bins - 1)
}

fn numeric_column<'a>(ds: &'a Dataset, name: &str) -> Result<&'a [f32]> {
    match ds.column(name).map(|c| &c.data) {
        Some(ColumnData::Numeric(v)) => Ok(v),
        Some(ColumnData::Categorical { .. }) => Err(Error::Config(format!(
            "{}: column `{name}` is categorical here, numeric on other devices; read it with the same categorical columns everywhere",
            ds.path.display()
        ))),
        None => Err(Error::ColumnsMissing {
            path: ds.path.clone(),
            missing: vec![name.to_string()],
        }),
    }
}

fn histogram(ds: &Dataset, rows: &[usize], q: &QuantileQuery, bins: usize) -> Result<Histogram> {
    if bins == 0 {
        return Err(Error::invalid("bins", 0, "at least 1"));
    }
    let v = numeric_column(ds, &q.column)?;
    let (lo, hi) = (order_key(q.lo), order_key(q.hi));
    if lo > hi {
        return Err(Error::Config(format!(
            "histogram of `{}` over [{}, {}]: the bounds are reversed",
            q.column, q.lo, q.hi
        )));
    }
    let mut h = Histogram {
        counts: vec![0; bins],
        min: vec![None; bins],
        max: vec![None; bins],
    };
    for &r in rows {
        let x = v[r];
        if x.is_nan() {
            continue;
        }
        let k = order_key(x);
        if k < lo || k > hi {
            continue;
        }
        let b = bin_of(k, lo, hi, bins);
        h.counts[b] += 1;
        h.min[b] = min_opt(h.min[b], Some(x));
        h.max[b] = max_opt(h.max[b], Some(x));
    }
    Ok(h)
}

fn selection_sums(
    ds: &Dataset,
    rows: &[usize],
    inputs: &[Input],
    features: &[Feature],
    centres: &[f64],
    classes: &[String],
    cross: bool,
) -> Result<SelectionSums> {
    let keys: Vec<String> = classes.iter().map(|c| class_key(c)).collect();
    let class_of: Vec<Option<usize>> = ds
        .classes
        .iter()
        .map(|c| keys.iter().position(|k| *k == class_key(c)))
        .collect();
    let maps = level_maps(ds, inputs)?;
    let d = features.len();
    let mut class_sum = vec![vec![0f64; d]; classes.len()];
    let mut class_seen = vec![false; classes.len()];
    let mut sum = vec![0f64; d];
    let mut sum_sq = vec![0f64; d];
    let mut tri = if cross {
        vec![0f64; d * (d + 1) / 2]
    } else {
        Vec::new()
    };
    let mut z = vec![0f64; d];
    for chunk in rows.chunks(CHUNK) {
        let m: Matrix = apply_scaling(encode(ds, chunk, inputs, features, &maps), features);
        for (i, &r) in chunk.iter().enumerate() {
            let label = ds.labels[r] as usize;
            let c = class_of[label].ok_or_else(|| {
                Error::Config(format!(
                    "{}: class `{}` is not among the federation's classes {classes:?}",
                    ds.path.display(),
                    ds.classes[label]
                ))
            })?;
            class_seen[c] = true;
            let row = &m.data[i * d..(i + 1) * d];
            for (j, &x) in row.iter().enumerate() {
                let x = f64::from(x);
                class_sum[c][j] += x;
                z[j] = x - centres[j];
                sum[j] += z[j];
                sum_sq[j] += z[j] * z[j];
            }
            if cross {
                let mut k = 0;
                for a in 0..d {
                    let za = z[a];
                    if za == 0.0 {
                        k += d - a;
                        continue;
                    }
                    for (t, &zb) in tri[k..k + d - a].iter_mut().zip(&z[a..]) {
                        *t += za * zb;
                    }
                    k += d - a;
                }
            }
        }
    }
    Ok(SelectionSums {
        class_sum: classes
            .iter()
            .zip(class_sum)
            .zip(class_seen)
            .filter(|(_, seen)| *seen)
            .map(|((c, s), _)| (c.clone(), s))
            .collect(),
        sum,
        sum_sq,
        cross: tri,
    })
}

fn add_into(a: &mut [f64], b: &[f64], what: &str) -> Result<()> {
    if a.len() != b.len() {
        return Err(Error::Config(format!(
            "summaries disagree on the number of {what} ({} and {})",
            a.len(),
            b.len()
        )));
    }
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
    Ok(())
}

/// The smaller in the order of [`order_key`] (`−0 < +0`, so every device and every merge
/// agrees on which zero is the minimum).
fn min_opt(a: Option<f32>, b: Option<f32>) -> Option<f32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if order_key(y) < order_key(x) { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

fn max_opt(a: Option<f32>, b: Option<f32>) -> Option<f32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(if order_key(y) > order_key(x) { y } else { x }),
        (x, None) => x,
        (None, y) => y,
    }
}

impl Summary {
    /// Adds another device's (or edge's) answer to the same request; an edge merges its
    /// devices' answers before sending one summary up.
    ///
    /// # Errors
    /// The summaries answer different requests, or disagree on a column's kind or a vector's
    /// length.
    pub fn merge(&mut self, other: &Summary) -> Result<()> {
        if self.request != other.request {
            return Err(Error::Config(format!(
                "summaries answer different requests ({:016x} and {:016x})",
                self.request, other.request
            )));
        }
        match (&mut self.answer, &other.answer) {
            (Answer::Survey(a), Answer::Survey(b)) => merge_survey(a, b)?,
            (Answer::Quantiles { histograms: a }, Answer::Quantiles { histograms: b }) => {
                if a.len() != b.len() {
                    return Err(Error::Config(format!(
                        "summaries disagree on the number of histograms ({} and {})",
                        a.len(),
                        b.len()
                    )));
                }
                for (ha, hb) in a.iter_mut().zip(b) {
                    if ha.counts.len() != hb.counts.len()
                        || ha.min.len() != hb.min.len()
                        || ha.max.len() != hb.max.len()
                        || ha.counts.len() != ha.min.len()
                        || ha.counts.len() != ha.max.len()
                    {
                        return Err(Error::Config(
                            "summaries disagree on a histogram's bins".into(),
                        ));
                    }
                    for (x, y) in ha.counts.iter_mut().zip(&hb.counts) {
                        *x += y;
                    }
                    for (x, &y) in ha.min.iter_mut().zip(&hb.min) {
                        *x = min_opt(*x, y);
                    }
                    for (x, &y) in ha.max.iter_mut().zip(&hb.max) {
                        *x = max_opt(*x, y);
                    }
                }
            }
            (
                Answer::Moments { sum, sum_sq },
                Answer::Moments {
                    sum: s2,
                    sum_sq: q2,
                },
            ) => {
                add_into(sum, s2, "features")?;
                add_into(sum_sq, q2, "features")?;
            }
            (Answer::Selection(a), Answer::Selection(b)) => {
                add_into(&mut a.sum, &b.sum, "features")?;
                add_into(&mut a.sum_sq, &b.sum_sq, "features")?;
                add_into(&mut a.cross, &b.cross, "cross-products")?;
                for (c, s) in &b.class_sum {
                    match a.class_sum.get_mut(c) {
                        Some(mine) => add_into(mine, s, "features")?,
                        None => {
                            if s.len() != a.sum.len() {
                                return Err(Error::Config(
                                    "summaries disagree on the number of features".into(),
                                ));
                            }
                            a.class_sum.insert(c.clone(), s.clone());
                        }
                    }
                }
            }
            _ => {
                return Err(Error::Config(
                    "summaries of different kinds for one request".into(),
                ));
            }
        }
        self.rows += other.rows;
        Ok(())
    }

    /// Rows it summarises.
    pub fn rows(&self) -> u64 {
        self.rows
    }
}

fn merge_survey(a: &mut Survey, b: &Survey) -> Result<()> {
    if a.category_cap != b.category_cap {
        return Err(Error::Config(format!(
            "surveys with different category caps ({} and {})",
            a.category_cap, b.category_cap
        )));
    }
    // Check every column first, so a failed merge leaves `a` untouched.
    for (name, cb) in &b.columns {
        if let Some(ca) = a.columns.get(name) {
            let same = matches!(
                (&ca.values, &cb.values),
                (ColumnValues::Numeric { .. }, ColumnValues::Numeric { .. })
                    | (
                        ColumnValues::Categorical { .. },
                        ColumnValues::Categorical { .. }
                    )
            );
            if !same {
                return Err(Error::Config(format!(
                    "column `{name}` is numeric on some devices and categorical on others; read it with the same categorical columns everywhere"
                )));
            }
        }
    }
    a.devices += b.devices;
    for (key, cb) in &b.classes {
        let e = a.classes.entry(key.clone()).or_insert(ClassCount {
            name: cb.name.clone(),
            rows: 0,
        });
        e.rows += cb.rows;
        if cb.name < e.name {
            e.name = cb.name.clone();
        }
    }
    let cap = a.category_cap;
    for (name, cb) in &b.columns {
        match a.columns.get_mut(name) {
            None => {
                a.columns.insert(name.clone(), cb.clone());
            }
            Some(ca) => {
                ca.devices += cb.devices;
                ca.position = ca.position.min(cb.position);
                match (&mut ca.values, &cb.values) {
                    (
                        ColumnValues::Numeric { count, min, max },
                        ColumnValues::Numeric {
                            count: c2,
                            min: m2,
                            max: x2,
                        },
                    ) => {
                        *count += c2;
                        *min = min_opt(*min, *m2);
                        *max = max_opt(*max, *x2);
                    }
                    (
                        ColumnValues::Categorical { levels, other },
                        ColumnValues::Categorical {
                            levels: l2,
                            other: o2,
                        },
                    ) => {
                        for (l, n) in l2 {
                            *levels.entry(l.clone()).or_insert(0) += n;
                        }
                        *other += o2;
                        cap_levels(levels, other, cap);
                    }
                    _ => unreachable!("kinds checked above"),
                }
            }
        }
    }
    Ok(())
}

/// The value at one rank of a numeric column, being searched for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Target {
    input: usize,
    rank: u64,
    found: Option<f64>,
    /// The value lies in `[lo, hi]`; `offset` values lie below `lo`.
    lo: f32,
    hi: f32,
    offset: u64,
}

/// What the survey decided, filled in by the later phases.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Plan {
    rows: u64,
    classes: Vec<String>,
    class_rows: Vec<u64>,
    inputs: Vec<Input>,
    features: Vec<Feature>,
    /// Per feature: min and max of the encoded (imputed, log-compressed) column.
    range: Vec<(f32, f32)>,
    /// Per feature: the mean of a one-hot feature (exact), the median (later the mean) of a
    /// numeric one, after log compression: the centre for the sums.
    centre: Vec<f64>,
    /// Non-missing values per numeric input.
    counts: Vec<u64>,
    targets: Vec<Target>,
    quantile_rounds: u32,
    /// Identifier columns, columns not on every device.
    left_out: Vec<Decision>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Stage {
    Survey,
    Quantiles(Plan),
    Moments(Plan),
    Selection(Plan),
    Done(Box<Pipeline>),
}

/// The cloud's side of the statistics round(s).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FederatedFit {
    ingest: IngestSpec,
    config: PipelineConfig,
    step: u32,
    stage: Stage,
}

impl FederatedFit {
    /// # Errors
    /// An invalid configuration.
    pub fn new(ingest: IngestSpec, cfg: &PipelineConfig) -> Result<Self> {
        cfg.check()?;
        Ok(FederatedFit {
            ingest,
            config: cfg.clone(),
            step: 0,
            stage: Stage::Survey,
        })
    }

    /// The next question for every device; None when `finish` can be called.
    pub fn request(&self) -> Option<SummaryRequest> {
        let question = match &self.stage {
            Stage::Survey => Question::Survey {
                category_cap: category_cap(self.config.max_categories),
            },
            Stage::Quantiles(plan) => Question::Quantiles {
                bins: HISTOGRAM_BINS,
                queries: quantile_queries(plan).0,
            },
            Stage::Moments(plan) => Question::Moments {
                inputs: plan.inputs.clone(),
                features: plan.features.clone(),
                centres: plan.centre.clone(),
            },
            Stage::Selection(plan) => {
                let cand = candidates(plan);
                Question::Selection {
                    inputs: plan.inputs.clone(),
                    features: cand.iter().map(|&j| plan.features[j].clone()).collect(),
                    centres: cand.iter().map(|&j| scaled_centre(plan, j)).collect(),
                    classes: plan.classes.clone(),
                    cross: self.config.select == SelectMethod::Pearson,
                }
            }
            Stage::Done(_) => return None,
        };
        Some(SummaryRequest::new(self.step, question))
    }

    /// The devices' answers to the current request, already merged.
    ///
    /// # Errors
    /// No request is open, the summary answers another request, or it is inconsistent
    /// (no rows, a histogram that does not hold the rank it should).
    pub fn absorb(&mut self, merged: Summary) -> Result<()> {
        let Some(req) = self.request() else {
            return Err(Error::Config(
                "the statistics round is over: no request to answer".into(),
            ));
        };
        if merged.request != req.id {
            return Err(Error::Config(format!(
                "the summary answers request {:016x}, the open request is {:016x} (step {})",
                merged.request, req.id, req.step
            )));
        }
        // On an error the open request stays open.
        let stage = self.stage.clone();
        let next = match (stage, merged.answer) {
            (Stage::Survey, Answer::Survey(s)) => self.after_survey(merged.rows, &s),
            (Stage::Quantiles(mut plan), Answer::Quantiles { histograms }) => {
                absorb_quantiles(&mut plan, &req.question, &histograms)
                    .map(|()| self.after_quantiles(plan))
            }
            (Stage::Moments(mut plan), Answer::Moments { sum, sum_sq }) => {
                absorb_moments(&mut plan, merged.rows, &sum, &sum_sq).map(|()| {
                    if candidates(&plan).is_empty() {
                        Stage::Done(Box::new(self.pipeline(plan, None)))
                    } else {
                        Stage::Selection(plan)
                    }
                })
            }
            (Stage::Selection(plan), Answer::Selection(sums)) => {
                if merged.rows != plan.rows {
                    Err(Error::Config(format!(
                        "the selection summary covers {} rows, the survey {}",
                        merged.rows, plan.rows
                    )))
                } else {
                    Ok(Stage::Done(Box::new(self.pipeline(plan, Some(&sums)))))
                }
            }
            _ => {
                return Err(Error::Config(
                    "the summary is of another kind than the open request".into(),
                ));
            }
        }?;
        self.stage = next;
        self.step += 1;
        Ok(())
    }

    /// The fitted pipeline.
    ///
    /// # Errors
    /// Requests are still open.
    pub fn finish(self) -> Result<Pipeline> {
        match self.stage {
            Stage::Done(p) => Ok(*p),
            _ => Err(Error::Config(format!(
                "the statistics round is not over (step {}): answer every request first",
                self.step
            ))),
        }
    }

    fn after_survey(&self, rows: u64, s: &Survey) -> Result<Stage> {
        let cfg = &self.config;
        if rows == 0 {
            return Err(Error::Config(
                "no training rows to fit the pipeline on".into(),
            ));
        }
        let mut class_list: Vec<&ClassCount> = s.classes.values().collect();
        class_list.sort_by(|a, b| a.name.cmp(&b.name));
        let classes: Vec<String> = class_list.iter().map(|c| c.name.clone()).collect();
        let class_rows: Vec<u64> = class_list.iter().map(|c| c.rows).collect();
        let mut cols: Vec<(&String, &ColumnSurvey)> = s.columns.iter().collect();
        cols.sort_by(|a, b| a.1.position.cmp(&b.1.position).then(a.0.cmp(b.0)));
        let mut left_out = Vec::new();
        let mut inputs = Vec::new();
        let mut counts = Vec::new();
        // (min, max) of each numeric input, and row counts of each categorical one's levels.
        let mut ranges: Vec<(Option<f32>, Option<f32>)> = Vec::new();
        let mut level_rows: Vec<Vec<u64>> = Vec::new();
        for (name, c) in cols {
            if c.devices != s.devices {
                left_out.push(Decision {
                    feature: name.clone(),
                    kept: false,
                    score: 0.0,
                    reason: format!(
                        "on {} of the {} devices; a column every device can fill is an input",
                        c.devices, s.devices
                    ),
                });
                continue;
            }
            match &c.values {
                ColumnValues::Numeric { count, min, max } => {
                    inputs.push(Input::Numeric {
                        name: name.clone(),
                        median: 0.0,
                    });
                    counts.push(*count);
                    ranges.push((*min, *max));
                    level_rows.push(Vec::new());
                }
                ColumnValues::Categorical { levels, other } => {
                    let distinct = levels.keys().filter(|l| !l.is_empty()).count();
                    if cfg.drop_identifiers && (*other > 0 || distinct > cfg.max_categories) {
                        let what = if *other > 0 {
                            format!("more than {} distinct values", s.category_cap)
                        } else {
                            format!("{distinct} distinct values")
                        };
                        left_out.push(Decision {
                            feature: name.clone(),
                            kept: false,
                            score: 0.0,
                            reason: format!(
                                "identifier-like text: {what} in training, more than max_categories ({}); values unseen in training would all look alike",
                                cfg.max_categories
                            ),
                        });
                        continue;
                    }
                    let mut order: Vec<(&String, u64)> = levels
                        .iter()
                        .filter(|(_, n)| **n > 0)
                        .map(|(l, n)| (l, *n))
                        .collect();
                    order.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
                    order.truncate(cfg.max_categories);
                    inputs.push(Input::Categorical {
                        name: name.clone(),
                        levels: order.iter().map(|(l, _)| (*l).clone()).collect(),
                    });
                    counts.push(0);
                    ranges.push((None, None));
                    level_rows.push(order.iter().map(|(_, n)| *n).collect());
                }
            }
        }
        // Identifier decisions come after the features' ones, as in the pooled fit.
        left_out.sort_by_key(|d| d.reason.starts_with("identifier"));
        let mut features = encoded_features(&inputs);
        let n = rows as f64;
        let mut range = Vec::with_capacity(features.len());
        let mut centre = Vec::with_capacity(features.len());
        for f in &mut features {
            let (r, c) = match f.source {
                Source::Numeric { input } => match ranges[input] {
                    (Some(lo), Some(hi)) => {
                        // The median lies in [lo, hi], so imputing keeps the range.
                        if cfg.log_compress && lo >= 0.0 && hi >= LOG_COMPRESS_MIN_MAX {
                            f.log = true;
                            ((log_compress(lo), log_compress(hi)), 0.0)
                        } else {
                            ((lo, hi), 0.0)
                        }
                    }
                    // Every value missing: all imputed with the median 0.
                    _ => ((0.0, 0.0), 0.0),
                },
                Source::Level { input, level } => {
                    let k = level_rows[input][level];
                    (one_hot_range(k, rows), k as f64 / n)
                }
                Source::Other { input } => {
                    let k = rows.saturating_sub(level_rows[input].iter().sum::<u64>());
                    (one_hot_range(k, rows), k as f64 / n)
                }
            };
            range.push(r);
            centre.push(c);
        }
        let mut targets = Vec::new();
        for (i, inp) in inputs.iter().enumerate() {
            if let (Input::Numeric { .. }, (Some(lo), Some(hi))) = (inp, ranges[i]) {
                let pos = 0.5 * (counts[i] - 1) as f64;
                let mut ranks = vec![pos.floor() as u64, pos.ceil() as u64];
                ranks.dedup();
                for rank in ranks {
                    targets.push(Target {
                        input: i,
                        rank,
                        found: (lo == hi).then_some(f64::from(lo)),
                        lo,
                        hi,
                        offset: 0,
                    });
                }
            }
        }
        let plan = Plan {
            rows,
            classes,
            class_rows,
            inputs,
            features,
            range,
            centre,
            counts,
            targets,
            quantile_rounds: 0,
            left_out,
        };
        Ok(self.after_quantiles(plan))
    }

    /// Medians done (or another histogram round needed); then scaling.
    fn after_quantiles(&self, mut plan: Plan) -> Stage {
        let open = plan.targets.iter().any(|t| t.found.is_none());
        if open && plan.quantile_rounds < QUANTILE_ROUNDS {
            return Stage::Quantiles(plan);
        }
        for t in &mut plan.targets {
            if t.found.is_none() {
                // Still inside a bin of several values: its middle, within half its width.
                t.found = Some(0.5 * (f64::from(t.lo) + f64::from(t.hi)));
            }
        }
        for i in 0..plan.inputs.len() {
            let vals: Vec<f64> = plan
                .targets
                .iter()
                .filter(|t| t.input == i)
                .filter_map(|t| t.found)
                .collect();
            if let Input::Numeric { median, .. } = &mut plan.inputs[i]
                && let Some(&first) = vals.first()
            {
                let last = *vals.last().unwrap_or(&first);
                let pos = 0.5 * (plan.counts[i] - 1) as f64;
                let frac = pos - pos.floor();
                *median = (first + (last - first) * frac) as f32;
            }
        }
        for (j, f) in plan.features.iter().enumerate() {
            if let Source::Numeric { input } = f.source
                && let Input::Numeric { median, .. } = plan.inputs[input]
            {
                plan.centre[j] = f64::from(if f.log { log_compress(median) } else { median });
            }
        }
        match self.config.scaler {
            Scaler::Standard => return Stage::Moments(plan),
            Scaler::MinMax => {
                for (f, &(lo, hi)) in plan.features.iter_mut().zip(&plan.range) {
                    let (lo, hi) = (f64::from(lo), f64::from(hi));
                    let r = hi - lo;
                    f.offset = lo as f32;
                    f.factor = (if r > 0.0 { 1.0 / r } else { 1.0 }) as f32;
                }
            }
            Scaler::None => {}
        }
        if candidates(&plan).is_empty() {
            Stage::Done(Box::new(self.pipeline(plan, None)))
        } else {
            Stage::Selection(plan)
        }
    }

    /// The pipeline from the plan and the selection sums (`None`: no candidate features).
    fn pipeline(&self, plan: Plan, sums: Option<&SelectionSums>) -> Pipeline {
        let cfg = &self.config;
        let n = plan.rows as f64;
        let d = plan.features.len();
        let cand = candidates(&plan);
        let slot: Vec<Option<usize>> = (0..d).map(|j| cand.iter().position(|&c| c == j)).collect();
        let nc = cand.len();
        let empty = SelectionSums {
            class_sum: BTreeMap::new(),
            sum: vec![0.0; nc],
            sum_sq: vec![0.0; nc],
            cross: Vec::new(),
        };
        let sums = sums.unwrap_or(&empty);
        let centres: Vec<f64> = cand.iter().map(|&j| scaled_centre(&plan, j)).collect();
        let dev: Vec<f64> = sums.sum.iter().map(|s| s / n).collect();
        // Centred cross-product about the mean: Σ(x − c)(y − c') − n·d·d', d = mean − c.
        let cov = |a: usize, b: usize| -> f64 {
            sums.cross
                .get(tri_index(a, b, nc))
                .map_or(0.0, |v| v - n * dev[a] * dev[b])
        };
        let mut stats = ColumnStats {
            mean: vec![0.0; d],
            sd: vec![0.0; d],
            class_mean: vec![vec![0.0; d]; plan.classes.len()],
            class_frac: plan.class_rows.iter().map(|&c| c as f64 / n).collect(),
            class_sum: vec![vec![0.0; d]; plan.classes.len()],
        };
        for (a, &j) in cand.iter().enumerate() {
            stats.mean[j] = centres[a] + dev.get(a).copied().unwrap_or(0.0);
        }
        for (ci, name) in plan.classes.iter().enumerate() {
            if let Some(s) = sums.class_sum.get(name) {
                let cn = plan.class_rows[ci] as f64;
                for (a, &j) in cand.iter().enumerate() {
                    let v = s.get(a).copied().unwrap_or(0.0);
                    stats.class_sum[ci][j] = v;
                    stats.class_mean[ci][j] = if cn > 0.0 { v / cn } else { 0.0 };
                }
            }
        }
        for (a, &j) in cand.iter().enumerate() {
            let sq = sums.sum_sq.get(a).copied().unwrap_or(0.0);
            stats.sd[j] = (sq / n - dev[a] * dev[a]).max(0.0).sqrt();
        }
        let constant: Vec<bool> = slot.iter().map(Option::is_none).collect();
        let chi2 = |j: usize| {
            let f = &plan.features[j];
            let (lo, hi) = plan.range[j];
            let (lo, hi) = (
                f64::from((lo - f.offset) * f.factor),
                f64::from((hi - f.offset) * f.factor),
            );
            let r = if hi > lo { hi - lo } else { 1.0 };
            let view = ColumnStats {
                mean: vec![0.0],
                sd: vec![stats.sd[j]],
                class_mean: vec![vec![0.0]; plan.classes.len()],
                class_frac: stats.class_frac.clone(),
                class_sum: stats
                    .class_sum
                    .iter()
                    .zip(&plan.class_rows)
                    .map(|(s, &cn)| vec![(s[j] - cn as f64 * lo) / r])
                    .collect(),
            };
            chi2_score(&view, 0)
        };
        let correlations = |order: &[usize]| {
            let c = order.len();
            let mut r = vec![0f64; c * c];
            for x in 0..c {
                for y in x..c {
                    let (Some(a), Some(b)) = (slot[order[x]], slot[order[y]]) else {
                        continue;
                    };
                    let denom = (cov(a, a) * cov(b, b)).sqrt();
                    let v = if denom > 0.0 { cov(a, b) / denom } else { 0.0 };
                    r[x * c + y] = v;
                    r[y * c + x] = v;
                }
            }
            r
        };
        let (selected, mut decisions) = select_with(
            &stats,
            &plan.features,
            cfg,
            |j| constant[j],
            chi2,
            correlations,
        );
        decisions.extend(plan.left_out);
        let k = plan.class_rows.iter().filter(|&&c| c > 0).count() as f64;
        let class_weights = plan
            .class_rows
            .iter()
            .map(|&c| if c == 0 { 0.0 } else { n / (k * c as f64) })
            .collect();
        Pipeline {
            format_version: PIPELINE_FORMAT_VERSION,
            config: cfg.clone(),
            ingest: self.ingest.clone(),
            classes: plan.classes,
            class_weights,
            inputs: plan.inputs,
            features: plan.features,
            selected,
            decisions,
            fitted_rows: plan.rows,
        }
    }
}

/// Index of `(a, b)` in the packed upper triangle (row `a` holds columns `a..n`) of `n × n`.
fn tri_index(a: usize, b: usize, n: usize) -> usize {
    let (a, b) = if a <= b { (a, b) } else { (b, a) };
    a * n - a * a.saturating_sub(1) / 2 + (b - a)
}

/// Min and max of a one-hot column with `k` ones in `n` rows.
fn one_hot_range(k: u64, n: u64) -> (f32, f32) {
    (
        if k == n { 1.0 } else { 0.0 },
        if k > 0 { 1.0 } else { 0.0 },
    )
}

/// Features that are not constant in training (the survey's ranges say so exactly).
fn candidates(plan: &Plan) -> Vec<usize> {
    (0..plan.features.len())
        .filter(|&j| plan.range[j].0 != plan.range[j].1)
        .collect()
}

/// Feature `j`'s centre after scaling.
fn scaled_centre(plan: &Plan, j: usize) -> f64 {
    let f = &plan.features[j];
    (plan.centre[j] - f64::from(f.offset)) * f64::from(f.factor)
}

/// The open queries of the quantile phase, and for each target its query.
fn quantile_queries(plan: &Plan) -> (Vec<QuantileQuery>, Vec<Option<usize>>) {
    let mut queries: Vec<QuantileQuery> = Vec::new();
    let mut of = Vec::with_capacity(plan.targets.len());
    for t in &plan.targets {
        if t.found.is_some() {
            of.push(None);
            continue;
        }
        let column = plan.inputs[t.input].name().to_string();
        let q = QuantileQuery {
            column,
            lo: t.lo,
            hi: t.hi,
        };
        let at = queries.iter().position(|x| *x == q).unwrap_or_else(|| {
            queries.push(q);
            queries.len() - 1
        });
        of.push(Some(at));
    }
    (queries, of)
}

fn absorb_quantiles(plan: &mut Plan, question: &Question, hists: &[Histogram]) -> Result<()> {
    let Question::Quantiles { bins, queries } = question else {
        return Err(Error::Config("not a quantile request".into()));
    };
    let (_, of) = quantile_queries(plan);
    if hists.len() != queries.len() {
        return Err(Error::Config(format!(
            "{} histograms for {} queries",
            hists.len(),
            queries.len()
        )));
    }
    for (t, q) in plan.targets.iter_mut().zip(of) {
        let Some(q) = q else { continue };
        let h = &hists[q];
        if h.counts.len() != *bins || h.min.len() != *bins || h.max.len() != *bins {
            return Err(Error::Config(format!(
                "a histogram of {} bins, {bins} asked for",
                h.counts.len()
            )));
        }
        let mut below = t.offset;
        let mut hit = None;
        for b in 0..*bins {
            let k = h.counts[b];
            if k == 0 {
                continue;
            }
            if t.rank < below + k {
                hit = Some((b, below, k));
                break;
            }
            below += k;
        }
        let Some((b, below, k)) = hit else {
            return Err(Error::Config(format!(
                "the histograms of `{}` hold {below} values, rank {} asked for",
                queries[q].column, t.rank
            )));
        };
        let (Some(mn), Some(mx)) = (h.min[b], h.max[b]) else {
            return Err(Error::Config(format!(
                "a histogram bin of `{}` with values but no min or max",
                queries[q].column
            )));
        };
        if t.rank == below || mn == mx {
            t.found = Some(f64::from(mn));
        } else if t.rank == below + k - 1 {
            t.found = Some(f64::from(mx));
        } else {
            t.lo = mn;
            t.hi = mx;
            t.offset = below;
        }
    }
    plan.quantile_rounds += 1;
    Ok(())
}

fn absorb_moments(plan: &mut Plan, rows: u64, sum: &[f64], sum_sq: &[f64]) -> Result<()> {
    if rows != plan.rows || sum.len() != plan.features.len() || sum_sq.len() != sum.len() {
        return Err(Error::Config(format!(
            "moments of {} features over {rows} rows; {} features over {} rows expected",
            sum.len(),
            plan.features.len(),
            plan.rows
        )));
    }
    let n = rows as f64;
    for (j, f) in plan.features.iter_mut().enumerate() {
        let (lo, hi) = plan.range[j];
        if lo == hi {
            f.offset = lo;
            f.factor = 1.0;
            plan.centre[j] = f64::from(lo);
            continue;
        }
        let d = sum[j] / n;
        let mean = plan.centre[j] + d;
        let sd = (sum_sq[j] / n - d * d).max(0.0).sqrt();
        f.offset = mean as f32;
        f.factor = (if sd > 0.0 { 1.0 / sd } else { 1.0 }) as f32;
        plan.centre[j] = mean;
    }
    Ok(())
}

/// What a statistics round cost: requests, and the JSON bytes of the devices' answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundCost {
    /// Requests asked (phases).
    pub requests: u32,
    /// JSON bytes of every device's answer to every request.
    pub bytes_up: u64,
    /// The largest single answer, in JSON bytes.
    pub largest_answer: u64,
}

/// How a pipeline fitted from summaries differs from [`Pipeline::fit`] on the pooled rows
/// (features and inputs matched by name).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PipelineDiff {
    /// The same class names (in any order).
    pub same_classes: bool,
    /// The same class names in the same order.
    pub same_class_order: bool,
    /// Largest relative difference of a class's weight.
    pub class_weight_max_rel_diff: f64,
    /// Inputs only one of the two has.
    pub inputs_only_summaries: Vec<String>,
    pub inputs_only_pooled: Vec<String>,
    /// Categorical inputs whose kept levels differ.
    pub levels_differ: Vec<String>,
    /// Features log-compressed by one and not the other.
    pub log_differs: Vec<String>,
    /// Selected features only one of the two keeps.
    pub selected_only_summaries: Vec<String>,
    pub selected_only_pooled: Vec<String>,
    /// Numeric inputs whose median differs, and the largest relative difference.
    pub medians_differ: Vec<String>,
    pub median_max_rel_diff: f64,
    /// Largest relative difference of a feature's scaling offset and factor.
    pub offset_max_rel_diff: f64,
    pub factor_max_rel_diff: f64,
    /// Largest difference of a feature's selection score.
    pub score_max_abs_diff: f64,
}

impl PipelineDiff {
    /// Nothing but rounding differs: the same classes, inputs, levels and selection.
    pub fn same_features(&self) -> bool {
        self.same_classes
            && self.inputs_only_summaries.is_empty()
            && self.inputs_only_pooled.is_empty()
            && self.levels_differ.is_empty()
            && self.log_differs.is_empty()
            && self.selected_only_summaries.is_empty()
            && self.selected_only_pooled.is_empty()
    }
}

fn rel_diff(a: f64, b: f64) -> f64 {
    let m = a.abs().max(b.abs());
    if a == b || m == 0.0 {
        0.0
    } else {
        (a - b).abs() / m
    }
}

/// Compares a pipeline fitted from summaries with the pooled one.
pub fn compare(summaries: &Pipeline, pooled: &Pipeline) -> PipelineDiff {
    let mut d = PipelineDiff::default();
    let mut a: Vec<String> = summaries.classes.iter().map(|c| class_key(c)).collect();
    let mut b: Vec<String> = pooled.classes.iter().map(|c| class_key(c)).collect();
    d.same_class_order = a == b;
    a.sort();
    b.sort();
    d.same_classes = a == b;
    for (c, w) in summaries.classes.iter().zip(&summaries.class_weights) {
        if let Some(i) = pooled
            .classes
            .iter()
            .position(|p| class_key(p) == class_key(c))
        {
            d.class_weight_max_rel_diff = d
                .class_weight_max_rel_diff
                .max(rel_diff(*w, pooled.class_weights[i]));
        }
    }
    let find = |p: &'_ Pipeline, name: &str| p.inputs.iter().find(|i| i.name() == name).cloned();
    for i in &summaries.inputs {
        match (i, find(pooled, i.name())) {
            (_, None) => d.inputs_only_summaries.push(i.name().into()),
            (Input::Numeric { name, median }, Some(Input::Numeric { median: m, .. })) => {
                if median != &m {
                    d.medians_differ.push(name.clone());
                    d.median_max_rel_diff = d
                        .median_max_rel_diff
                        .max(rel_diff(f64::from(*median), f64::from(m)));
                }
            }
            (Input::Categorical { name, levels }, Some(Input::Categorical { levels: l, .. })) => {
                if *levels != l {
                    d.levels_differ.push(name.clone());
                }
            }
            (i, Some(_)) => d.levels_differ.push(i.name().into()),
        }
    }
    for i in &pooled.inputs {
        if find(summaries, i.name()).is_none() {
            d.inputs_only_pooled.push(i.name().into());
        }
    }
    for f in &summaries.features {
        if let Some(g) = pooled.features.iter().find(|g| g.name == f.name) {
            if f.log != g.log {
                d.log_differs.push(f.name.clone());
            }
            d.offset_max_rel_diff = d
                .offset_max_rel_diff
                .max(rel_diff(f64::from(f.offset), f64::from(g.offset)));
            d.factor_max_rel_diff = d
                .factor_max_rel_diff
                .max(rel_diff(f64::from(f.factor), f64::from(g.factor)));
        }
    }
    for x in &summaries.decisions {
        if let Some(y) = pooled.decisions.iter().find(|y| y.feature == x.feature) {
            d.score_max_abs_diff = d.score_max_abs_diff.max((x.score - y.score).abs());
        }
    }
    let (fs, ps) = (summaries.feature_names(), pooled.feature_names());
    d.selected_only_summaries = fs
        .iter()
        .filter(|n| !ps.contains(n))
        .map(|n| n.to_string())
        .collect();
    d.selected_only_pooled = ps
        .iter()
        .filter(|n| !fs.contains(n))
        .map(|n| n.to_string())
        .collect();
    d
}

/// [`fit_federated`], also saying what the round cost.
///
/// # Errors
/// As [`fit_federated`].
pub fn fit_federated_with_cost(
    ds: &Dataset,
    device_rows: &[&[usize]],
    ingest: IngestSpec,
    cfg: &PipelineConfig,
) -> Result<(Pipeline, RoundCost)> {
    let tables: Vec<(&Dataset, &[usize])> = device_rows.iter().map(|&r| (ds, r)).collect();
    fit_federated_tables(&tables, ingest, cfg)
}

/// The round in one process over each device's own table (`(table, rows)`: a device's
/// rows read as a file of their own, with the same columns and classes), saying what it
/// cost.
///
/// # Errors
/// As [`fit_federated`].
pub fn fit_federated_tables(
    devices: &[(&Dataset, &[usize])],
    ingest: IngestSpec,
    cfg: &PipelineConfig,
) -> Result<(Pipeline, RoundCost)> {
    if devices.is_empty() {
        return Err(Error::Config("no devices to fit the pipeline with".into()));
    }
    let mut cost = RoundCost::default();
    let mut fit = FederatedFit::new(ingest, cfg)?;
    while let Some(req) = fit.request() {
        cost.requests += 1;
        let mut merged: Option<Summary> = None;
        for (ds, rows) in devices {
            let s = req.answer(ds, rows)?;
            let bytes = serde_json::to_vec(&s).map_or(0, |v| v.len() as u64);
            cost.bytes_up += bytes;
            cost.largest_answer = cost.largest_answer.max(bytes);
            match &mut merged {
                None => merged = Some(s),
                Some(m) => m.merge(&s)?,
            }
        }
        fit.absorb(merged.ok_or_else(|| Error::Config("no devices".into()))?)?;
    }
    Ok((fit.finish()?, cost))
}

/// The whole round in one process (the simulation): one summary per device, merged, fitted.
///
/// # Errors
/// No devices, an invalid configuration, no training rows, or a device's error.
pub fn fit_federated(
    ds: &Dataset,
    device_rows: &[&[usize]],
    ingest: IngestSpec,
    cfg: &PipelineConfig,
) -> Result<Pipeline> {
    fit_federated_with_cost(ds, device_rows, ingest, cfg).map(|(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Format;
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

    /// 12 rows: `x` informative with a missing value, `twin` = 2x, `noise` constant, `big`
    /// heavy-tailed (log-compressed), `proto` categorical with an absent level.
    fn dataset() -> Dataset {
        let x = vec![
            0.0,
            1.0,
            2.0,
            3.0,
            10.0,
            11.0,
            12.0,
            f32::NAN,
            4.0,
            13.0,
            2.0,
            11.0,
        ];
        let twin: Vec<f32> = x.iter().map(|v| v * 2.0).collect();
        let big: Vec<f32> = (0..12).map(|i| (i * i * 977) as f32).collect();
        Dataset {
            path: "mem.csv".into(),
            format: Format::Generic,
            label_column: "y".into(),
            columns: vec![
                column("x", ColumnData::Numeric(x)),
                column("twin", ColumnData::Numeric(twin)),
                column("noise", ColumnData::Numeric(vec![5.0; 12])),
                column("big", ColumnData::Numeric(big)),
                column(
                    "proto",
                    ColumnData::Categorical {
                        codes: vec![0, 0, 1, 0, 1, 1, 2, 1, 0, 2, 0, 1],
                        levels: vec!["tcp".into(), "udp".into(), "".into()],
                    },
                ),
            ],
            classes: vec!["normal".into(), "attack".into()],
            labels: vec![0, 0, 0, 0, 1, 1, 1, 1, 0, 1, 0, 1],
            flows: None,
            hosts: None,
            host_pairs: None,
            lines: (2..14).collect(),
            row_hashes: (0..12).collect(),
            timing_source: None,
            report: IngestReport::default(),
        }
    }

    /// The same table with its classes and `proto`'s levels numbered the other way round.
    fn renumbered() -> Dataset {
        let mut ds = dataset();
        ds.classes.reverse();
        for l in &mut ds.labels {
            *l = 1 - *l;
        }
        if let ColumnData::Categorical { codes, levels } = &mut ds.columns[4].data {
            levels.reverse();
            for c in codes.iter_mut() {
                *c = 2 - *c;
            }
        }
        ds
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

    /// Every request of a fit with its devices' answers (device order as given).
    fn transcript(ds: &Dataset, devices: &[&[usize]], cfg: &PipelineConfig) -> Vec<Vec<Summary>> {
        let mut fit = FederatedFit::new(spec(), cfg).unwrap();
        let mut out = Vec::new();
        while let Some(req) = fit.request() {
            let answers: Vec<Summary> = devices
                .iter()
                .map(|rows| req.answer(ds, rows).unwrap())
                .collect();
            let mut merged = answers[0].clone();
            for a in &answers[1..] {
                merged.merge(a).unwrap();
            }
            fit.absorb(merged).unwrap();
            let whole: Vec<usize> = devices.iter().flat_map(|r| r.iter().copied()).collect();
            let mut all = answers;
            all.push(req.answer(ds, &whole).unwrap());
            out.push(all);
        }
        out
    }

    fn close(a: &[f64], b: &[f64]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= 1e-12 * (1.0 + x.abs()), "{x} vs {y}");
        }
    }

    fn standard() -> PipelineConfig {
        PipelineConfig {
            scaler: Scaler::Standard,
            ..PipelineConfig::default()
        }
    }

    #[test]
    fn two_halves_merged_equal_the_whole() {
        let ds = dataset();
        let (a, b): (Vec<usize>, Vec<usize>) = ((0..5).collect(), (5..12).collect());
        let steps = transcript(&ds, &[&a, &b], &standard());
        // survey, at least one quantile round, moments, selection.
        assert!(steps.len() >= 4, "{}", steps.len());
        let kinds: Vec<&str> = steps
            .iter()
            .map(|s| match s[0].answer {
                Answer::Survey(_) => "survey",
                Answer::Quantiles { .. } => "quantiles",
                Answer::Moments { .. } => "moments",
                Answer::Selection(_) => "selection",
            })
            .collect();
        assert_eq!(kinds[0], "survey");
        assert_eq!(&kinds[kinds.len() - 2..], ["moments", "selection"]);
        for s in &steps {
            let mut merged = s[0].clone();
            merged.merge(&s[1]).unwrap();
            let whole = &s[2];
            assert_eq!(merged.rows(), 12);
            assert_eq!(merged.rows(), whole.rows());
            match (&merged.answer, &whole.answer) {
                // Counts, min and max: exact.
                (Answer::Survey(m), Answer::Survey(w)) => {
                    assert_eq!(m.classes, w.classes);
                    assert_eq!(m.columns.len(), w.columns.len());
                    for (name, c) in &m.columns {
                        assert_eq!(c.values, w.columns[name].values, "{name}");
                        assert_eq!(c.devices, 2);
                    }
                    assert_eq!(m.devices, 2);
                }
                (Answer::Quantiles { histograms: m }, Answer::Quantiles { histograms: w }) => {
                    assert_eq!(m, w)
                }
                (
                    Answer::Moments { sum, sum_sq },
                    Answer::Moments {
                        sum: s2,
                        sum_sq: q2,
                    },
                ) => {
                    close(sum, s2);
                    close(sum_sq, q2);
                }
                (Answer::Selection(m), Answer::Selection(w)) => {
                    close(&m.sum, &w.sum);
                    close(&m.sum_sq, &w.sum_sq);
                    close(&m.cross, &w.cross);
                    assert_eq!(m.class_sum.keys().collect::<Vec<_>>(), ["attack", "normal"]);
                    for (c, v) in &m.class_sum {
                        close(v, &w.class_sum[c]);
                    }
                }
                _ => panic!("answers of different kinds"),
            }
        }
    }

    #[test]
    fn merging_is_order_independent() {
        let ds = dataset();
        let parts: [Vec<usize>; 3] = [vec![0, 5, 9], vec![1, 2, 3, 4], vec![6, 7, 8, 10, 11]];
        let devices: Vec<&[usize]> = parts.iter().map(Vec::as_slice).collect();
        for s in transcript(&ds, &devices, &standard()) {
            // Two summaries: f64 addition commutes, so bit-identical.
            let mut ab = s[0].clone();
            ab.merge(&s[1]).unwrap();
            let mut ba = s[1].clone();
            ba.merge(&s[0]).unwrap();
            assert_eq!(ab, ba);
            // Three in two orders: counts exact, sums to rounding.
            ab.merge(&s[2]).unwrap();
            let mut cba = s[2].clone();
            cba.merge(&s[1]).unwrap();
            cba.merge(&s[0]).unwrap();
            match (&ab.answer, &cba.answer) {
                (Answer::Survey(x), Answer::Survey(y)) => assert_eq!(x, y),
                (Answer::Quantiles { histograms: x }, Answer::Quantiles { histograms: y }) => {
                    assert_eq!(x, y)
                }
                (Answer::Moments { sum, sum_sq }, Answer::Moments { sum: s, sum_sq: q }) => {
                    close(sum, s);
                    close(sum_sq, q);
                }
                (Answer::Selection(x), Answer::Selection(y)) => {
                    close(&x.sum, &y.sum);
                    close(&x.cross, &y.cross);
                }
                _ => panic!("answers of different kinds"),
            }
        }
        // The fitted pipeline does not depend on the device order.
        let mut rev = devices.clone();
        rev.reverse();
        let p = fit_federated(&ds, &devices, spec(), &PipelineConfig::default()).unwrap();
        let q = fit_federated(&ds, &rev, spec(), &PipelineConfig::default()).unwrap();
        assert_eq!(p, q);
    }

    #[test]
    fn a_table_numbering_classes_and_levels_otherwise_gives_the_same_summaries() {
        let (ds, other) = (dataset(), renumbered());
        let a: Vec<usize> = (0..6).collect();
        let b: Vec<usize> = (6..12).collect();
        let mut fit = FederatedFit::new(spec(), &standard()).unwrap();
        let mut steps = 0;
        while let Some(req) = fit.request() {
            // Device 1 reads the file one way, device 2 the other.
            let mut m1 = req.answer(&ds, &a).unwrap();
            m1.merge(&req.answer(&other, &b).unwrap()).unwrap();
            let mut m2 = req.answer(&other, &a).unwrap();
            m2.merge(&req.answer(&ds, &b).unwrap()).unwrap();
            let mut m3 = req.answer(&ds, &a).unwrap();
            m3.merge(&req.answer(&ds, &b).unwrap()).unwrap();
            assert_eq!(m1, m2);
            assert_eq!(m1, m3);
            fit.absorb(m1).unwrap();
            steps += 1;
        }
        assert!(steps >= 4);
        let p = fit.finish().unwrap();
        // Classes by name, whatever each file's order.
        assert_eq!(p.classes, ["attack", "normal"]);
        let all: Vec<usize> = (0..12).collect();
        let q = fit_federated(&other, &[&a, &b], spec(), &standard()).unwrap();
        assert_eq!(p, q);
        // Both tables transform to the same features.
        assert_eq!(
            p.transform(&ds, &all).unwrap(),
            p.transform(&other, &all).unwrap()
        );
    }

    #[test]
    fn summaries_stay_bounded_on_a_column_of_100k_distinct_values() {
        let n = 100_000usize;
        let mut ds = dataset();
        let rows: Vec<usize> = (0..n).collect();
        ds.select_rows(&rows.iter().map(|r| r % 12).collect::<Vec<_>>());
        ds.columns.push(column(
            "topic",
            ColumnData::Categorical {
                codes: (0..n as u32).collect(),
                levels: (0..n).map(|i| format!("sensor/{i}")).collect(),
            },
        ));
        let cfg = PipelineConfig::default();
        let cap = category_cap(cfg.max_categories);
        assert_eq!(cap, 256);
        let req = FederatedFit::new(spec(), &cfg).unwrap().request().unwrap();
        let halves: [&[usize]; 2] = [&rows[..n / 2], &rows[n / 2..]];
        let mut s = req.answer(&ds, halves[0]).unwrap();
        s.merge(&req.answer(&ds, halves[1]).unwrap()).unwrap();
        let Answer::Survey(sv) = &s.answer else {
            panic!("not a survey")
        };
        let ColumnValues::Categorical { levels, other } = &sv.columns["topic"].values else {
            panic!("topic is categorical")
        };
        assert_eq!(levels.len(), cap);
        assert_eq!(*other, (n - cap) as u64);
        assert_eq!(levels.values().sum::<u64>() + other, n as u64);
        let bytes = serde_json::to_vec(&s).unwrap().len();
        assert!(bytes < 20_000, "{bytes} bytes");
        // Dropped as an identifier, as the pooled fit drops it.
        let p = fit_federated(&ds, &halves, spec(), &cfg).unwrap();
        let central = Pipeline::fit(&ds, &rows, spec(), &cfg).unwrap();
        assert!(p.inputs.iter().all(|i| i.name() != "topic"));
        assert!(central.inputs.iter().all(|i| i.name() != "topic"));
        let d = p.decisions.iter().find(|d| d.feature == "topic").unwrap();
        assert!(
            d.reason.contains("more than 256 distinct values"),
            "{}",
            d.reason
        );
        assert_eq!(p.feature_names(), central.feature_names());
    }

    #[test]
    fn the_hand_made_table_fits_as_the_pooled_rows_do() {
        let ds = dataset();
        let train: Vec<usize> = (0..12).collect();
        let devices: [&[usize]; 3] = [&[0, 1, 2, 3], &[4, 5, 6, 7], &[8, 9, 10, 11]];
        for cfg in [PipelineConfig::default(), standard()] {
            let p = fit_federated(&ds, &devices, spec(), &cfg).unwrap();
            let c = Pipeline::fit(&ds, &train, spec(), &cfg).unwrap();
            // Same classes (by name) and class weights, exactly.
            let mut cw: Vec<(String, f64)> = c
                .classes
                .iter()
                .cloned()
                .zip(c.class_weights.clone())
                .collect();
            cw.sort_by(|a, b| a.0.cmp(&b.0));
            let pw: Vec<(String, f64)> = p
                .classes
                .iter()
                .cloned()
                .zip(p.class_weights.clone())
                .collect();
            assert_eq!(pw, cw);
            assert_eq!(p.fitted_rows, 12);
            // Inputs, levels and medians: the medians within the first histogram's bin
            // width; here the zoom finds them exactly.
            assert_eq!(p.inputs.len(), c.inputs.len());
            for (a, b) in p.inputs.iter().zip(&c.inputs) {
                match (a, b) {
                    (Input::Numeric { name, median: m }, Input::Numeric { median: w, .. }) => {
                        let v: Vec<f32> = match &ds.column(name).unwrap().data {
                            ColumnData::Numeric(v) => {
                                v.iter().copied().filter(|x| !x.is_nan()).collect()
                            }
                            _ => unreachable!(),
                        };
                        let (lo, hi) = v
                            .iter()
                            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
                        let width = (hi - lo) / HISTOGRAM_BINS as f32;
                        assert!((m - w).abs() <= width, "{name}: {m} vs {w}");
                        assert_eq!(m, w, "{name}");
                    }
                    _ => assert_eq!(a, b),
                }
            }
            // Log compression and MinMax: exact. Standard: to rounding.
            assert_eq!(p.features.len(), c.features.len());
            for (a, b) in p.features.iter().zip(&c.features) {
                assert_eq!((&a.name, a.log), (&b.name, b.log));
                if cfg.scaler == Scaler::MinMax {
                    assert_eq!((a.offset, a.factor), (b.offset, b.factor), "{}", a.name);
                } else if a.name != "noise" {
                    assert!(
                        (a.offset - b.offset).abs() <= 1e-5 * b.offset.abs().max(1.0),
                        "{}",
                        a.name
                    );
                    assert!(
                        (a.factor - b.factor).abs() <= 1e-5 * b.factor.abs(),
                        "{}",
                        a.name
                    );
                }
            }
            assert!(p.features.iter().any(|f| f.name == "big" && f.log));
            // Selection: the same features kept for the same reasons.
            assert_eq!(p.feature_names(), c.feature_names());
            for d in &p.decisions {
                let e = c.decisions.iter().find(|e| e.feature == d.feature).unwrap();
                assert_eq!(d.kept, e.kept, "{}", d.feature);
                assert!(
                    (d.score - e.score).abs() < 1e-9,
                    "{}: {} vs {}",
                    d.feature,
                    d.score,
                    e.score
                );
            }
            // The pipelines transform alike.
            let a = p.transform(&ds, &train).unwrap();
            let b = c.transform(&ds, &train).unwrap();
            assert_eq!(a.cols, b.cols);
            for (x, y) in a.data.iter().zip(&b.data) {
                assert!((x - y).abs() < 1e-5, "{x} vs {y}");
            }
        }
    }

    #[test]
    fn chi2_and_no_selection_score_as_the_pooled_fit() {
        let ds = dataset();
        let train: Vec<usize> = (0..12).collect();
        let devices: [&[usize]; 2] = [&train[..7], &train[7..]];
        for cfg in [
            PipelineConfig {
                select: SelectMethod::Chi2,
                k: Some(3),
                ..PipelineConfig::default()
            },
            PipelineConfig {
                select: SelectMethod::None,
                ..PipelineConfig::default()
            },
        ] {
            let p = fit_federated(&ds, &devices, spec(), &cfg).unwrap();
            let c = Pipeline::fit(&ds, &train, spec(), &cfg).unwrap();
            assert_eq!(p.feature_names(), c.feature_names(), "{:?}", cfg.select);
            for (d, e) in p.decisions.iter().zip(&c.decisions) {
                assert_eq!(d.feature, e.feature);
                assert!(
                    (d.score - e.score).abs() < 1e-9,
                    "{}: {} vs {}",
                    d.feature,
                    d.score,
                    e.score
                );
            }
        }
    }

    #[test]
    fn medians_zoom_in_on_a_wide_column() {
        // Values spread over 12 orders of magnitude: the first histogram's bin holding the
        // median holds most of the values; the zoom still finds the median exactly.
        let mut ds = dataset();
        let v: Vec<f32> = (0..12).map(|i| 10f32.powi(i) + i as f32 * 0.25).collect();
        ds.columns.push(column("wide", ColumnData::Numeric(v)));
        let train: Vec<usize> = (0..12).collect();
        let cfg = PipelineConfig::default();
        let p = fit_federated(&ds, &[&train[..5], &train[5..]], spec(), &cfg).unwrap();
        let c = Pipeline::fit(&ds, &train, spec(), &cfg).unwrap();
        let median = |p: &Pipeline| match p.inputs.iter().find(|i| i.name() == "wide") {
            Some(Input::Numeric { median, .. }) => *median,
            _ => panic!("no wide input"),
        };
        assert_eq!(median(&p), median(&c));
    }

    #[test]
    fn medians_are_exact_between_neighbouring_floats_and_extremes() {
        // The median's neighbours are adjacent f32 values, the range spans ±1e30 and holds
        // -0.0 and 0.0: four rounds of 256 bins still end on the exact values.
        let one = 1.0f32.to_bits();
        for extra in [0usize, 1] {
            let mut ds = dataset();
            let mut v: Vec<f32> = (0..9).map(|i| f32::from_bits(one + i)).collect();
            v.extend([-1e30, 1e30, -0.0, 0.0]);
            v.truncate(12 - extra);
            v.resize(12, f32::NAN);
            ds.columns.push(column("tight", ColumnData::Numeric(v)));
            let train: Vec<usize> = (0..12).collect();
            let cfg = PipelineConfig::default();
            let p = fit_federated(&ds, &[&train[..4], &train[4..]], spec(), &cfg).unwrap();
            let c = Pipeline::fit(&ds, &train, spec(), &cfg).unwrap();
            let median = |p: &Pipeline| match p.inputs.iter().find(|i| i.name() == "tight") {
                Some(Input::Numeric { median, .. }) => median.to_bits(),
                _ => panic!("no input"),
            };
            assert_eq!(median(&p), median(&c), "{extra}");
        }
        // The key orders floats as their values do.
        let xs = [
            f32::NEG_INFINITY,
            -1e30,
            -1.0,
            -0.0,
            0.0,
            1e-45,
            1.0,
            1e30,
            f32::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(order_key(w[0]) < order_key(w[1]), "{w:?}");
        }
    }

    #[test]
    fn bad_answers_are_refused_with_errors() {
        let ds = dataset();
        let cfg = PipelineConfig::default();
        let mut fit = FederatedFit::new(spec(), &cfg).unwrap();
        let req = fit.request().unwrap();
        // A row the table lacks.
        assert!(matches!(req.answer(&ds, &[3, 12]), Err(Error::Config(_))));
        let survey = req.answer(&ds, &[0, 1, 2]).unwrap();
        // The finished fit cannot be had yet.
        assert!(fit.clone().finish().is_err());
        fit.absorb(survey.clone()).unwrap();
        let next = fit.request().unwrap();
        assert_ne!(next.id, req.id);
        let answer = next.answer(&ds, &[0, 1, 2]).unwrap();
        // Different requests do not merge; an old answer is not absorbed.
        let mut s = survey.clone();
        assert!(s.merge(&answer).is_err());
        assert_eq!(s, survey, "a failed merge changes nothing");
        let before = fit.clone();
        assert!(fit.absorb(survey).is_err());
        assert_eq!(fit, before, "a refused summary leaves the request open");
        // A column numeric on one device and categorical on another.
        let mut odd = dataset();
        odd.columns[0].data = ColumnData::Categorical {
            codes: vec![0; 12],
            levels: vec!["a".into()],
        };
        let mut a = req.answer(&ds, &[0]).unwrap();
        assert!(a.merge(&req.answer(&odd, &[1]).unwrap()).is_err());
        // No training rows.
        let empty: [&[usize]; 2] = [&[], &[]];
        assert!(matches!(
            fit_federated(&ds, &empty, spec(), &cfg),
            Err(Error::Config(m)) if m.contains("no training rows")
        ));
        assert!(fit_federated(&ds, &[], spec(), &cfg).is_err());
        // A table without a requested column.
        let mut less = dataset();
        less.columns.remove(0);
        assert!(matches!(next.question, Question::Quantiles { .. }));
        match next.answer(&less, &[0]) {
            Err(Error::ColumnsMissing { missing, .. }) => assert_eq!(missing, ["x"]),
            r => panic!("expected ColumnsMissing, got {r:?}"),
        }
    }

    #[test]
    fn a_column_some_devices_lack_is_left_out() {
        let ds = dataset();
        let mut less = dataset();
        less.columns.retain(|c| c.name != "x");
        let cfg = PipelineConfig::default();
        let mut fit = FederatedFit::new(spec(), &cfg).unwrap();
        let (a, b): (Vec<usize>, Vec<usize>) = ((0..6).collect(), (6..12).collect());
        while let Some(req) = fit.request() {
            let mut m = req.answer(&ds, &a).unwrap();
            m.merge(&req.answer(&less, &b).unwrap()).unwrap();
            fit.absorb(m).unwrap();
        }
        let p = fit.finish().unwrap();
        assert!(p.inputs.iter().all(|i| i.name() != "x"));
        let d = p.decisions.iter().find(|d| d.feature == "x").unwrap();
        assert_eq!(
            d.reason,
            "on 1 of the 2 devices; a column every device can fill is an input"
        );
        // Both tables can be transformed by it.
        p.transform(&less, &[0]).unwrap();
    }

    #[test]
    fn requests_and_summaries_travel_as_json() {
        let ds = dataset();
        let devices: [&[usize]; 2] = [&[0, 2, 4, 6, 8, 10], &[1, 3, 5, 7, 9, 11]];
        let cfg = PipelineConfig::default();
        let mut fit = FederatedFit::new(spec(), &cfg).unwrap();
        while let Some(req) = fit.request() {
            let wire: SummaryRequest =
                serde_json::from_slice(&serde_json::to_vec(&req).unwrap()).unwrap();
            assert_eq!(wire, req);
            let mut merged: Option<Summary> = None;
            for rows in devices {
                let s = wire.answer(&ds, rows).unwrap();
                let s: Summary = serde_json::from_slice(&serde_json::to_vec(&s).unwrap()).unwrap();
                match &mut merged {
                    None => merged = Some(s),
                    Some(m) => m.merge(&s).unwrap(),
                }
            }
            fit.absorb(merged.unwrap()).unwrap();
            // The cloud's state survives a restart.
            fit = serde_json::from_slice(&serde_json::to_vec(&fit).unwrap()).unwrap();
        }
        // serde_json parses a float to within one unit in the last place unless its
        // `float_roundtrip` feature is on, so scores may differ in the last bits; every
        // decision and every count is the same.
        let p = fit.finish().unwrap();
        let q = fit_federated(&ds, &devices, spec(), &cfg).unwrap();
        assert_eq!(
            (
                &p.classes,
                &p.class_weights,
                &p.inputs,
                &p.features,
                &p.selected
            ),
            (
                &q.classes,
                &q.class_weights,
                &q.inputs,
                &q.features,
                &q.selected
            )
        );
        for (d, e) in p.decisions.iter().zip(&q.decisions) {
            assert_eq!(
                (&d.feature, d.kept, &d.reason),
                (&e.feature, e.kept, &e.reason)
            );
            assert!(
                (d.score - e.score).abs() <= 1e-14,
                "{} vs {}",
                d.score,
                e.score
            );
        }
    }

    #[test]
    fn reordering_a_tables_classes_follows_the_federated_pipeline() {
        let mut ds = dataset();
        let all: Vec<usize> = (0..12).collect();
        let p = fit_federated(&ds, &[&all], spec(), &PipelineConfig::default()).unwrap();
        let before: Vec<String> = ds
            .labels
            .iter()
            .map(|&l| ds.classes[l as usize].clone())
            .collect();
        let map = ds.reorder_classes(&p.classes).unwrap();
        assert_eq!(map, vec![1, 0]);
        assert_eq!(ds.classes, p.classes);
        let after: Vec<String> = ds
            .labels
            .iter()
            .map(|&l| ds.classes[l as usize].clone())
            .collect();
        assert_eq!(before, after);
        assert_eq!(p.class_map(&ds), vec![Some(0), Some(1)]);
        assert!(ds.reorder_classes(&["attack".into()]).is_err());
    }
}
