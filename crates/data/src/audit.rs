//! `audit`: what would make results on this file dishonest.
//!
//! - Columns that identify hosts or time (by name, or by content: addresses, dates).
//!   A model that sees them learns the capture, not the attack.
//! - Any single feature column that alone predicts the class with >= 99 % accuracy
//!   on held-out rows (while the majority class alone does not).
//! - Placeholder-spelling leaks: absent values written `0` in some classes and
//!   `0.0` in others (the Edge-IIoTset recipe one-hot encodes that difference).
//! - Exact duplicates, and rows whose features repeat an earlier row once
//!   identifiers are gone: both straddle a random split.
//!
//! Each finding says whether iotids' default pipeline already neutralises it.

use std::collections::HashMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::clean;
use crate::table::{ColumnData, ColumnProfile, Dataset};
use crate::value::Spelling;

/// Audit settings. By default a column is a predictor at 0.99 accuracy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditOptions {
    pub predictor_threshold: f64,
    pub seed: u64,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            predictor_threshold: 0.99,
            seed: 42,
        }
    }
}

/// What kind of problem a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingKind {
    Identifier,
    SingleColumnPredictor,
    PlaceholderSpelling,
    ExactDuplicates,
    FeatureDuplicates,
}

impl FindingKind {
    pub fn title(self) -> &'static str {
        match self {
            FindingKind::Identifier => "identifier column",
            FindingKind::SingleColumnPredictor => "single-column predictor",
            FindingKind::PlaceholderSpelling => "placeholder-spelling leak",
            FindingKind::ExactDuplicates => "exact duplicates",
            FindingKind::FeatureDuplicates => "feature duplicates",
        }
    }
}

/// One problem found.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub column: Option<String>,
    pub detail: String,
    /// True when iotids' default pipeline already neutralises it.
    pub mitigated: bool,
    /// What neutralises it, or what to do.
    pub action: String,
}

/// The audit of one file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Audit {
    pub path: String,
    pub rows: u64,
    pub columns_checked: u64,
    pub findings: Vec<Finding>,
}

impl Audit {
    pub fn unmitigated(&self) -> usize {
        self.findings.iter().filter(|f| !f.mitigated).count()
    }
}

/// Audits a table as ingested (before de-duplication).
pub fn audit(ds: &Dataset, opts: &AuditOptions) -> Audit {
    let mut findings = Vec::new();
    for p in &ds.report.profiles {
        if p.name == ds.label_column {
            continue;
        }
        if let Some(detail) = identifier_evidence(p) {
            let mitigated = p.dropped.is_some();
            findings.push(Finding {
                kind: FindingKind::Identifier,
                column: Some(p.name.clone()),
                detail,
                mitigated,
                action: if mitigated {
                    "dropped by the default pipeline".into()
                } else {
                    format!("drop it: --drop {}", p.name)
                },
            });
        }
    }
    let holdout = holdout_mask(ds.n_rows(), opts.seed);
    for c in &ds.columns {
        let p = single_column_accuracy(&c.data, &ds.labels, ds.n_classes(), &holdout);
        if p.accuracy >= opts.predictor_threshold && p.baseline < opts.predictor_threshold {
            findings.push(Finding {
                kind: FindingKind::SingleColumnPredictor,
                column: Some(c.name.clone()),
                detail: format!(
                    "alone predicts the class with {:.4} accuracy on held-out rows (majority class alone: {:.4})",
                    p.accuracy, p.baseline
                ),
                mitigated: false,
                action: "check that it is a property of the attack and not of how the capture was made; --drop it otherwise".into(),
            });
        }
    }
    for c in &ds.columns {
        if let Some(detail) = spelling_leak(&c.spellings, &ds.classes) {
            findings.push(Finding {
                kind: FindingKind::PlaceholderSpelling,
                column: Some(c.name.clone()),
                detail,
                mitigated: true,
                action: "iotids reads every placeholder spelling as one absent value".into(),
            });
        }
    }
    let d = clean::count_duplicates(ds);
    if d.exact > 0 {
        findings.push(Finding {
            kind: FindingKind::ExactDuplicates,
            column: None,
            detail: format!(
                "{} of {} rows ({:.1} %) repeat an earlier row exactly",
                d.exact,
                ds.n_rows(),
                100.0 * d.exact as f64 / ds.n_rows() as f64
            ),
            mitigated: true,
            action: "removed before splitting by the default pipeline (--dedup exact)".into(),
        });
    }
    let feature_only = d.feature.saturating_sub(d.exact);
    if feature_only > 0 {
        findings.push(Finding {
            kind: FindingKind::FeatureDuplicates,
            column: None,
            detail: format!(
                "{} more rows repeat an earlier row's features once identifiers are dropped; {} feature vectors occur with more than one label ({} rows)",
                feature_only, d.conflicting_vectors, d.conflicting_rows
            ),
            mitigated: false,
            action: "they straddle a random split: use --split flow (whole flows on one side) or --dedup features".into(),
        });
    }
    Audit {
        path: ds.path.display().to_string(),
        rows: ds.n_rows() as u64,
        columns_checked: ds.report.profiles.len() as u64,
        findings,
    }
}

/// Why a column looks like an identifier, by name or by content.
fn identifier_evidence(p: &ColumnProfile) -> Option<String> {
    const EXACT: &[&str] = &[
        "time",
        "timestamp",
        "ts",
        "date",
        "datetime",
        "stime",
        "ltime",
        "pkseqid",
        "id",
        "flow_id",
        "flowid",
        "seq",
        "src",
        "dst",
        "saddr",
        "daddr",
        "sport",
        "dport",
        "smac",
        "dmac",
    ];
    const SUFFIX: &[&str] = &[
        ".time",
        "_time",
        "timestamp",
        "addr",
        "_ip",
        ".ip",
        "src_host",
        "dst_host",
        "srcport",
        "dstport",
        "src_port",
        "dst_port",
        "udp.port",
        "mac",
        ".proto_ipv4",
        "full_uri",
        "uri.query",
        "payload",
        "file_data",
        ".options",
        "mqtt.msg",
    ];
    let lower = p.name.to_ascii_lowercase();
    let by_name = EXACT.contains(&lower.as_str()) || SUFFIX.iter().any(|s| lower.ends_with(s));
    let share = |n: u64| {
        if p.sampled == 0 {
            0.0
        } else {
            n as f64 / p.sampled as f64
        }
    };
    let mut why = Vec::new();
    if by_name {
        why.push("its name marks a host, port, time, sequence number or payload".to_string());
    }
    if p.sampled >= 10 && share(p.address_like) >= 0.5 {
        why.push(format!(
            "{:.0} % of sampled values are addresses",
            100.0 * share(p.address_like)
        ));
    }
    if p.sampled >= 10 && share(p.datetime_like) >= 0.5 {
        why.push(format!(
            "{:.0} % of sampled values are dates or times",
            100.0 * share(p.datetime_like)
        ));
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// Every row is in the held-out half with probability 1/2 (seeded).
fn holdout_mask(n: usize, seed: u64) -> Vec<bool> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_bool(0.5)).collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Predictive {
    accuracy: f64,
    baseline: f64,
}

/// Accuracy of the best lookup table "value -> majority class" for one column,
/// fitted on one half of the rows and scored on the other. Numbers with more
/// than 1024 distinct values are cut into 256 quantile bins of the fitting half.
fn single_column_accuracy(
    data: &ColumnData,
    y: &[u32],
    n_classes: usize,
    holdout: &[bool],
) -> Predictive {
    let keys: Vec<u64> = match data {
        ColumnData::Categorical { codes, .. } => codes.iter().map(|&c| u64::from(c)).collect(),
        ColumnData::Numeric(v) => numeric_keys(v, holdout),
    };
    let mut table: HashMap<u64, Vec<u64>> = HashMap::new();
    let mut fit_counts = vec![0u64; n_classes];
    for ((&k, &c), &h) in keys.iter().zip(y).zip(holdout) {
        if !h {
            table.entry(k).or_insert_with(|| vec![0; n_classes])[c as usize] += 1;
            fit_counts[c as usize] += 1;
        }
    }
    let argmax = |v: &[u64]| {
        v.iter()
            .enumerate()
            .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
            .map_or(0, |(i, _)| i)
    };
    let majority = argmax(&fit_counts);
    let predict: HashMap<u64, usize> = table.iter().map(|(k, v)| (*k, argmax(v))).collect();
    let (mut right, mut base, mut n) = (0u64, 0u64, 0u64);
    for ((&k, &c), &h) in keys.iter().zip(y).zip(holdout) {
        if h {
            n += 1;
            right += u64::from(predict.get(&k).copied().unwrap_or(majority) == c as usize);
            base += u64::from(majority == c as usize);
        }
    }
    if n == 0 {
        return Predictive {
            accuracy: 0.0,
            baseline: 1.0,
        };
    }
    Predictive {
        accuracy: right as f64 / n as f64,
        baseline: base as f64 / n as f64,
    }
}

fn numeric_keys(v: &[f32], holdout: &[bool]) -> Vec<u64> {
    let canon = |x: f32| {
        if x.is_nan() {
            u64::MAX
        } else {
            u64::from((x + 0.0).to_bits())
        }
    };
    let mut distinct = std::collections::HashSet::new();
    for &x in v {
        distinct.insert(canon(x));
        if distinct.len() > 1024 {
            break;
        }
    }
    if distinct.len() <= 1024 {
        return v.iter().map(|&x| canon(x)).collect();
    }
    let mut fit: Vec<f32> = v
        .iter()
        .zip(holdout)
        .filter(|(x, h)| !**h && !x.is_nan())
        .map(|(x, _)| *x)
        .collect();
    fit.sort_unstable_by(f32::total_cmp);
    let edges: Vec<f32> = if fit.is_empty() {
        Vec::new()
    } else {
        (1..256).map(|i| fit[i * (fit.len() - 1) / 256]).collect()
    };
    v.iter()
        .map(|&x| {
            if x.is_nan() {
                u64::MAX
            } else {
                edges.partition_point(|&e| e < x) as u64
            }
        })
        .collect()
}

/// Describes a placeholder-spelling leak in one column, if there is one: at least
/// two spellings in use, and either each class keeps to one spelling while the
/// classes do not all use the same one (the spelling splits the classes into
/// groups), or the spelling predicts the class of rows with an absent value at
/// least 5 points better than the majority class does.
fn spelling_leak(spellings: &[[u64; 4]], classes: &[String]) -> Option<String> {
    let total: u64 = spellings.iter().flatten().sum();
    if total == 0 {
        return None;
    }
    let per_spelling: Vec<u64> = (0..4)
        .map(|s| spellings.iter().map(|c| c[s]).sum())
        .collect();
    let used: Vec<usize> = (0..4)
        .filter(|&s| per_spelling[s] as f64 >= 0.005 * total as f64)
        .collect();
    if used.len() < 2 {
        return None;
    }
    // Each class's dominant spelling, and how faithfully classes keep to it.
    let dominant: Vec<Option<usize>> = spellings
        .iter()
        .map(|c| {
            (c.iter().sum::<u64>() > 0).then(|| {
                (0..4)
                    .max_by_key(|&s| (c[s], std::cmp::Reverse(s)))
                    .unwrap_or(0)
            })
        })
        .collect();
    let faithful: u64 = spellings
        .iter()
        .map(|c| c.iter().max().copied().unwrap_or(0))
        .sum();
    let faithfulness = faithful as f64 / total as f64;
    let mut groups: Vec<usize> = dominant.iter().flatten().copied().collect();
    groups.sort_unstable();
    groups.dedup();
    let by_spelling: u64 = (0..4)
        .map(|s| spellings.iter().map(|c| c[s]).max().unwrap_or(0))
        .sum();
    let majority: u64 = spellings
        .iter()
        .map(|c| c.iter().sum::<u64>())
        .max()
        .unwrap_or(0);
    let (acc, base) = (
        by_spelling as f64 / total as f64,
        majority as f64 / total as f64,
    );
    let splits_classes = groups.len() >= 2 && faithfulness >= 0.95;
    if !splits_classes && acc - base < 0.05 {
        return None;
    }
    let parts: Vec<String> = used
        .iter()
        .map(|&s| {
            let mut who: Vec<(u64, &str)> = spellings
                .iter()
                .zip(classes)
                .filter(|(c, _)| c[s] > 0)
                .map(|(c, name)| (c[s], name.as_str()))
                .collect();
            who.sort_by_key(|w| std::cmp::Reverse(w.0));
            let names: Vec<&str> = who.iter().take(4).map(|w| w.1).collect();
            let more = if who.len() > 4 {
                format!(" +{}", who.len() - 4)
            } else {
                String::new()
            };
            format!(
                "`{}` in {} ({}{})",
                Spelling::ALL[s].as_str(),
                per_spelling[s],
                names.join(", "),
                more
            )
        })
        .collect();
    let verdict = if splits_classes {
        format!(
            "each class keeps to one spelling ({:.1} % of absent cells), so the spelling alone splits the classes into {} groups",
            100.0 * faithfulness,
            groups.len()
        )
    } else {
        format!(
            "the spelling alone predicts the class of these rows with {acc:.3} accuracy (majority {base:.3})"
        )
    };
    Some(format!(
        "absent values are spelled differently by class: {}; {verdict}",
        parts.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_leak_found_when_spelling_follows_class() {
        // Normal writes `0`, attacks write `0.0`.
        let sp = vec![[0, 900, 0, 0], [0, 0, 300, 0], [0, 0, 200, 0]];
        let classes = vec!["Normal".to_string(), "DDoS".into(), "XSS".into()];
        let d = spelling_leak(&sp, &classes).expect("leak");
        assert!(d.contains("`0` in 900 (Normal)"), "{d}");
        assert!(d.contains("`0.0` in 500 (DDoS, XSS)"), "{d}");
        // Same spelling mix in every class: no leak.
        let sp = vec![[0, 450, 450, 0], [0, 150, 150, 0]];
        assert!(spelling_leak(&sp, &classes[..2]).is_none());
    }

    #[test]
    fn a_column_that_is_the_label_is_a_predictor() {
        let y: Vec<u32> = (0..1000).map(|i| (i % 3) as u32).collect();
        let v: Vec<f32> = y.iter().map(|&c| c as f32 * 10.0).collect();
        let h = holdout_mask(1000, 1);
        let p = single_column_accuracy(&ColumnData::Numeric(v), &y, 3, &h);
        assert_eq!(p.accuracy, 1.0);
        assert!(p.baseline < 0.4);
        // Pure noise: near the majority baseline.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let noise: Vec<f32> = (0..1000).map(|_| rng.random_range(0..5) as f32).collect();
        let p = single_column_accuracy(&ColumnData::Numeric(noise), &y, 3, &h);
        assert!(p.accuracy < 0.5, "{p:?}");
    }

    #[test]
    fn continuous_columns_are_binned() {
        let y: Vec<u32> = (0..5000).map(|i| u32::from(i >= 2500)).collect();
        let v: Vec<f32> = (0..5000).map(|i| i as f32 + 0.5).collect();
        let h = holdout_mask(5000, 2);
        let p = single_column_accuracy(&ColumnData::Numeric(v), &y, 2, &h);
        assert!(p.accuracy > 0.99, "{p:?}");
    }

    #[test]
    fn identifiers_by_name_and_content() {
        let p = ColumnProfile {
            name: "weird".into(),
            sampled: 100,
            address_like: 90,
            ..ColumnProfile::default()
        };
        assert!(
            identifier_evidence(&p)
                .unwrap()
                .contains("90 % of sampled values are addresses")
        );
        let p = ColumnProfile {
            name: "frame.time".into(),
            ..ColumnProfile::default()
        };
        assert!(identifier_evidence(&p).is_some());
        let p = ColumnProfile {
            name: "tcp.len".into(),
            sampled: 100,
            ..ColumnProfile::default()
        };
        assert!(identifier_evidence(&p).is_none());
    }
}
