//! `describe`: the seeds' Table 2 (count, mean, std, min, quartiles, max of every
//! numeric column after type conversion) and Table 1 (class counts and weights),
//! plus what ingest kept, rejected and found duplicated.
//!
//! The statistics follow pandas' `DataFrame.describe()`: `count` excludes missing
//! values, `std` is the sample standard deviation (ddof = 1), and quartiles
//! interpolate linearly between order statistics. A reference check in
//! `tests/reference/` compares them with pandas on the same file.

use serde::{Deserialize, Serialize};

use crate::clean::{self, Duplicates};
use crate::stats::{class_weights, quantile_sorted};
use crate::table::{ColumnData, Dataset, DropReason, Reject};
use crate::value::ABSENT_CATEGORY;

/// Statistics of one numeric column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericSummary {
    pub name: String,
    /// Non-missing values.
    pub count: u64,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub q25: f64,
    pub q50: f64,
    pub q75: f64,
    pub max: f64,
    /// Missing-value markers (NaN, NA, ...).
    pub missing: u64,
    /// Text where a number was expected (shifted rows).
    pub text: u64,
}

/// Statistics of one categorical column (pandas' object describe).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CategoricalSummary {
    pub name: String,
    pub count: u64,
    pub unique: u64,
    pub top: String,
    pub freq: u64,
}

/// One row of the class table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassRow {
    pub id: u32,
    pub name: String,
    pub count: u64,
    /// Balanced weight `n / (k * n_c)`.
    pub weight: f64,
}

/// A column that is not a feature, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DroppedColumn {
    pub name: String,
    pub reason: DropReason,
}

/// The whole description of a file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Description {
    pub path: String,
    pub format: String,
    pub label: String,
    pub bytes: u64,
    pub rows_read: u64,
    pub rows_rejected: u64,
    pub rows_kept: u64,
    pub duplicates: Duplicates,
    pub flows: Option<u64>,
    pub classes: Vec<ClassRow>,
    pub numeric: Vec<NumericSummary>,
    pub categorical: Vec<CategoricalSummary>,
    pub dropped: Vec<DroppedColumn>,
    pub first_rejects: Vec<Reject>,
}

/// Describes a table as ingested (before de-duplication).
pub fn describe(ds: &Dataset) -> Description {
    let weights = class_weights(&ds.labels, ds.n_classes());
    let classes = ds
        .class_counts()
        .into_iter()
        .enumerate()
        .map(|(i, count)| ClassRow {
            id: i as u32,
            name: ds.classes[i].clone(),
            count,
            weight: weights[i],
        })
        .collect();
    let mut numeric = Vec::new();
    let mut categorical = Vec::new();
    for c in &ds.columns {
        match &c.data {
            ColumnData::Numeric(v) => numeric.push(numeric_summary(&c.name, v, c.text_cells)),
            ColumnData::Categorical { codes, levels } => {
                categorical.push(categorical_summary(&c.name, codes, levels));
            }
        }
    }
    Description {
        path: ds.path.display().to_string(),
        format: ds.format.name().to_string(),
        label: ds.label_column.clone(),
        bytes: ds.report.bytes,
        rows_read: ds.report.rows_read,
        rows_rejected: ds.report.rows_rejected,
        rows_kept: ds.report.rows_kept,
        duplicates: clean::count_duplicates(ds),
        flows: ds.report.flows,
        classes,
        numeric,
        categorical,
        dropped: ds
            .report
            .profiles
            .iter()
            .filter_map(|p| {
                p.dropped.clone().map(|reason| DroppedColumn {
                    name: p.name.clone(),
                    reason,
                })
            })
            .collect(),
        first_rejects: ds.report.first_rejects.clone(),
    }
}

/// Summary statistics of `values`, ignoring NaN (missing or text cells).
pub fn numeric_summary(name: &str, values: &[f32], text: u64) -> NumericSummary {
    let mut v: Vec<f64> = values
        .iter()
        .filter(|x| !x.is_nan())
        .map(|&x| f64::from(x))
        .collect();
    let nan = (values.len() - v.len()) as u64;
    let n = v.len();
    let (mean, std) = if n == 0 {
        (f64::NAN, f64::NAN)
    } else {
        let mean = v.iter().sum::<f64>() / n as f64;
        let ss: f64 = v.iter().map(|x| (x - mean).powi(2)).sum();
        let std = if n > 1 {
            (ss / (n - 1) as f64).sqrt()
        } else {
            f64::NAN
        };
        (mean, std)
    };
    v.sort_unstable_by(f64::total_cmp);
    let q = |p| {
        if n == 0 {
            f64::NAN
        } else {
            quantile_sorted(&v, p)
        }
    };
    NumericSummary {
        name: name.to_string(),
        count: n as u64,
        mean,
        std,
        min: v.first().copied().unwrap_or(f64::NAN),
        q25: q(0.25),
        q50: q(0.5),
        q75: q(0.75),
        max: v.last().copied().unwrap_or(f64::NAN),
        missing: nan - text.min(nan),
        text,
    }
}

fn categorical_summary(name: &str, codes: &[u32], levels: &[String]) -> CategoricalSummary {
    let mut counts = vec![0u64; levels.len()];
    for &c in codes {
        counts[c as usize] += 1;
    }
    let (top, freq) = counts
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
        .map(|(i, &f)| (levels[i].clone(), f))
        .unwrap_or_default();
    CategoricalSummary {
        name: name.to_string(),
        count: codes.len() as u64,
        unique: counts.iter().filter(|&&c| c > 0).count() as u64,
        top: if top.is_empty() {
            ABSENT_CATEGORY.to_string()
        } else {
            top
        },
        freq,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_matches_pandas_definitions() {
        // pandas.Series([1, 2, 3, 4, 10, nan]).describe():
        // count 5, mean 4.0, std 3.5355339059327378, min 1, 25% 2, 50% 3, 75% 4, max 10
        let s = numeric_summary("x", &[1.0, 2.0, 3.0, 4.0, 10.0, f32::NAN], 0);
        assert_eq!(s.count, 5);
        assert_eq!(s.mean, 4.0);
        assert!((s.std - 3.535_533_905_932_737_8).abs() < 1e-12);
        assert_eq!(
            (s.min, s.q25, s.q50, s.q75, s.max),
            (1.0, 2.0, 3.0, 4.0, 10.0)
        );
        assert_eq!(s.missing, 1);
    }

    #[test]
    fn categorical_top_and_freq() {
        let s = categorical_summary(
            "m",
            &[0, 1, 1, 2, 1],
            &["".into(), "GET".into(), "POST".into()],
        );
        assert_eq!(
            (s.count, s.unique, s.top.as_str(), s.freq),
            (5, 3, "GET", 3)
        );
    }
}
