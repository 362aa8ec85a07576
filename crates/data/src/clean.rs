//! Row-level cleaning: duplicates and (optional) outliers.
//!
//! Two kinds of duplicate matter. An exact duplicate repeats a whole raw record
//! (the Edge-IIoTset MITM file is two-thirds exact duplicates); it is removed by
//! default. A feature duplicate repeats the retained features of an earlier row
//! once identifiers are dropped; packets of one flow often are. Both straddle a
//! random split and inflate test scores, which is why `audit` reports them and the
//! flow split exists.

use rustc_hash::{FxHashMap as HashMap, FxHashSet as HashSet};

use serde::{Deserialize, Serialize};
use xxhash_rust::xxh3::xxh3_128;

use crate::table::{ColumnData, Dataset};

/// Which duplicates to remove before splitting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Dedup {
    /// Keep every row.
    None,
    /// Remove repeats of a whole raw record (the default).
    #[default]
    Exact,
    /// Remove repeats of the retained features and label.
    Features,
}

spelled!(Dedup, "dedup", {
    None => "none" | "off",
    Exact => "exact",
    Features => "features",
});

impl Dedup {
    /// Parses a name or alias ([`std::str::FromStr`] says what is allowed).
    pub fn parse(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

/// Duplicate counts of a table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Duplicates {
    /// Rows that repeat an earlier raw record exactly.
    pub exact: u64,
    /// Rows whose retained features and label repeat an earlier row.
    pub feature: u64,
    /// Distinct feature vectors seen with more than one label.
    pub conflicting_vectors: u64,
    /// Rows carrying such a feature vector.
    pub conflicting_rows: u64,
}

/// A hash of each row's retained feature values (label excluded).
pub fn feature_hashes(ds: &Dataset) -> Vec<u128> {
    let n = ds.n_rows();
    let mut buf = Vec::with_capacity(ds.columns.len() * 4);
    (0..n)
        .map(|r| {
            buf.clear();
            for c in &ds.columns {
                let bits = match &c.data {
                    ColumnData::Numeric(v) => {
                        let x = v[r];
                        if x.is_nan() {
                            f32::NAN.to_bits()
                        } else {
                            (x + 0.0).to_bits()
                        }
                    }
                    ColumnData::Categorical { codes, .. } => codes[r],
                };
                buf.extend_from_slice(&bits.to_le_bytes());
            }
            xxh3_128(&buf)
        })
        .collect()
}

/// Counts exact and feature duplicates and label conflicts.
pub fn count_duplicates(ds: &Dataset) -> Duplicates {
    let mut d = Duplicates::default();
    let mut seen = HashSet::with_capacity_and_hasher(ds.n_rows(), Default::default());
    for h in &ds.row_hashes {
        if !seen.insert(*h) {
            d.exact += 1;
        }
    }
    // Feature vector -> (first label, conflicting?, rows).
    let mut by_vector: HashMap<u128, (u32, bool, u64)> =
        HashMap::with_capacity_and_hasher(ds.n_rows(), Default::default());
    for (h, &y) in feature_hashes(ds).into_iter().zip(&ds.labels) {
        let e = by_vector.entry(h).or_insert((y, false, 0));
        if e.2 > 0 {
            d.feature += 1;
            if e.0 != y {
                e.1 = true;
            }
        }
        e.2 += 1;
    }
    for (_, conflict, rows) in by_vector.values() {
        if *conflict {
            d.conflicting_vectors += 1;
            d.conflicting_rows += rows;
        }
    }
    d
}

/// Removes duplicates in place; returns how many rows went.
pub fn dedup(ds: &mut Dataset, how: Dedup) -> u64 {
    let keys: Vec<u128> = match how {
        Dedup::None => return 0,
        Dedup::Exact => ds.row_hashes.clone(),
        Dedup::Features => feature_hashes(ds)
            .into_iter()
            .zip(&ds.labels)
            .map(|(h, &y)| h ^ (u128::from(y) << 96).rotate_left(17))
            .collect(),
    };
    let mut seen = HashSet::with_capacity_and_hasher(keys.len(), Default::default());
    let keep: Vec<usize> = keys
        .iter()
        .enumerate()
        .filter(|(_, k)| seen.insert(**k))
        .map(|(r, _)| r)
        .collect();
    let removed = (ds.n_rows() - keep.len()) as u64;
    if removed > 0 {
        ds.select_rows(&keep);
    }
    removed
}

/// Outlier rule for training rows. Off by default: IoT tables are mostly zeros,
/// so quartile rules call every non-zero value an outlier; columns whose IQR (or
/// standard deviation) is 0 are therefore skipped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "method")]
pub enum Outliers {
    /// Outside `[q1 - k*IQR, q3 + k*IQR]` in any numeric column (k = 1.5 usually).
    Iqr { k: f64 },
    /// `|x - mean| > z * std` in any numeric column (z = 3 usually).
    ZScore { z: f64 },
}

/// Training rows to keep after outlier removal, and the count removed. Only
/// training rows are ever removed: the test set stays as it came.
pub fn remove_outliers(ds: &Dataset, train: &[usize], rule: Outliers) -> (Vec<usize>, u64) {
    let mut bad = vec![false; train.len()];
    for c in &ds.columns {
        let ColumnData::Numeric(v) = &c.data else {
            continue;
        };
        let mut vals: Vec<f64> = train
            .iter()
            .map(|&r| f64::from(v[r]))
            .filter(|x| !x.is_nan())
            .collect();
        if vals.len() < 4 {
            continue;
        }
        let (lo, hi) = match rule {
            Outliers::Iqr { k } => {
                vals.sort_unstable_by(f64::total_cmp);
                let q1 = crate::stats::quantile_sorted(&vals, 0.25);
                let q3 = crate::stats::quantile_sorted(&vals, 0.75);
                let iqr = q3 - q1;
                if iqr == 0.0 {
                    continue;
                }
                (q1 - k * iqr, q3 + k * iqr)
            }
            Outliers::ZScore { z } => {
                let n = vals.len() as f64;
                let mean = vals.iter().sum::<f64>() / n;
                let sd = (vals.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
                if sd == 0.0 {
                    continue;
                }
                (mean - z * sd, mean + z * sd)
            }
        };
        for (i, &r) in train.iter().enumerate() {
            let x = f64::from(v[r]);
            if x < lo || x > hi {
                bad[i] = true;
            }
        }
    }
    let keep: Vec<usize> = train
        .iter()
        .zip(&bad)
        .filter(|(_, b)| !**b)
        .map(|(&r, _)| r)
        .collect();
    let removed = (train.len() - keep.len()) as u64;
    (keep, removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_spells_by_name_and_alias() {
        for d in Dedup::ALL {
            assert_eq!(d.to_string().parse::<Dedup>().unwrap(), *d);
        }
        assert_eq!(Dedup::parse("off"), Some(Dedup::None));
        assert_eq!(Dedup::default().to_string(), "exact");
        let e = "all".parse::<Dedup>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid setting `dedup` = all: must be one of none, exact, features"
        );
    }
}
