//! The in-memory table that ingest produces: one typed vector per retained column,
//! plus per-row labels, flow ids, source line numbers and raw-record hashes.
//!
//! Only numbers and dictionary codes are kept, never the raw text, so memory grows
//! with the retained numeric matrix and not with the size of the CSV.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::schema::Format;
use crate::value::Spelling;

/// The values of one retained column.
#[derive(Debug, Clone)]
pub enum ColumnData {
    /// Numbers after type conversion; absent is 0, missing/text is NaN.
    Numeric(Vec<f32>),
    /// Dictionary codes into `levels`; the level `""` is the absent value.
    Categorical {
        codes: Vec<u32>,
        levels: Vec<String>,
    },
}

/// One retained column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub data: ColumnData,
    /// Fields that held text where a number was expected (shifted rows): NaN.
    pub text_cells: u64,
    /// Fields that held a missing-value marker (`NaN`, `NA`, `null`, ...): NaN.
    pub missing_cells: u64,
    /// Placeholder spellings of absent values, per class: `spellings[class][spelling]`.
    pub spellings: Vec<[u64; 4]>,
}

impl Column {
    pub fn is_numeric(&self) -> bool {
        matches!(self.data, ColumnData::Numeric(_))
    }

    /// Count of absent cells written with `s`, summed over classes.
    pub fn spelling_total(&self, s: Spelling) -> u64 {
        self.spellings.iter().map(|c| c[s as usize]).sum()
    }

    pub(crate) fn len(&self) -> usize {
        match &self.data {
            ColumnData::Numeric(v) => v.len(),
            ColumnData::Categorical { codes, .. } => codes.len(),
        }
    }
}

/// Why a header column is not a feature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DropReason {
    /// The target label.
    Label,
    /// Another label column of the dataset (would leak the target).
    OtherLabel,
    /// Identifies a host, a port, a time or a payload (the dataset authors' list).
    Identifier,
    /// Named with `--drop`.
    User,
}

/// What a header column looked like in the first rows of the file: the evidence
/// `audit` uses to find identifier columns that are not on any list.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ColumnProfile {
    pub name: String,
    /// Non-absent values looked at.
    pub sampled: u64,
    /// Of those, values shaped like an IP or MAC address.
    pub address_like: u64,
    /// Of those, values shaped like a date or a time of day.
    pub datetime_like: u64,
    /// Of those, distinct values (capped at the sample size).
    pub distinct: u64,
    /// `Some` when the column is not a feature.
    pub dropped: Option<DropReason>,
}

/// A row that could not be used.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reject {
    /// Physical line (1-based) where the record starts.
    pub line: u64,
    pub reason: String,
}

/// What ingest saw: counts of everything, so nothing disappears silently.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct IngestReport {
    pub bytes: u64,
    /// Data records seen (header excluded).
    pub rows_read: u64,
    /// Records kept in the table.
    pub rows_kept: u64,
    /// Records rejected (wrong field count, unusable label).
    pub rows_rejected: u64,
    /// The first rejects, for display; all of them go to `--rejects FILE`.
    pub first_rejects: Vec<Reject>,
    /// Every header column with its content profile and drop reason.
    pub profiles: Vec<ColumnProfile>,
    /// Number of distinct flows (None when the file has no endpoint columns).
    pub flows: Option<u64>,
    /// The per-flow timing features' counts, when they were asked for.
    #[serde(default)]
    pub timing: Option<crate::timing::TimingReport>,
}

/// A labelled table read from one file.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub path: PathBuf,
    pub format: Format,
    pub label_column: String,
    /// Retained (feature candidate) columns, in header order.
    pub columns: Vec<Column>,
    /// Class names; `labels` index into this.
    pub classes: Vec<String>,
    pub labels: Vec<u32>,
    /// Flow id per row (same endpoints and ports in either direction), when the file
    /// has endpoint columns.
    pub flows: Option<Vec<u32>>,
    /// Host id per row: the source host of the first record of the row's flow (the host
    /// that opened it), when the file has endpoint columns. Federation's `host` partition
    /// keeps each host's traffic on one device.
    pub hosts: Option<Vec<u32>>,
    /// Host-pair id per row: the row's two hosts, either direction, any ports (the key
    /// of `host.iat_us`), when the file has endpoint columns. Host-pair windows
    /// ([`crate::window::WindowBy::HostPair`]) follow it.
    pub host_pairs: Option<Vec<u32>>,
    /// Physical line where each row starts.
    pub lines: Vec<u64>,
    /// Hash of the raw record text, for exact-duplicate detection.
    pub row_hashes: Vec<u128>,
    /// What the timing features were computed from (with them, and not when streaming):
    /// so [`Dataset::retime`] can compute them again over a subset of the rows.
    pub timing_source: Option<crate::timing::TimingSource>,
    pub report: IngestReport,
}

impl Dataset {
    pub fn n_rows(&self) -> usize {
        self.labels.len()
    }

    pub fn n_classes(&self) -> usize {
        self.classes.len()
    }

    /// Rows per class.
    pub fn class_counts(&self) -> Vec<u64> {
        crate::stats::class_counts(&self.labels, self.classes.len())
    }

    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// Renumbers the classes to follow `order` (names matched by
    /// [`crate::schema::class_key`]; `order` takes over their spelling): `classes`, `labels`
    /// and each column's per-class spellings. Returns each old class id's new id. A pipeline
    /// fitted by the statistics round ([`crate::federated`]) lists its classes by name, not in
    /// file order; a table renumbered to it feeds a model trained on it label for label.
    ///
    /// # Errors
    /// [`crate::Error::Config`] when `order` does not name every class of the table once
    /// (it may name more: those get no rows).
    pub fn reorder_classes(&mut self, order: &[String]) -> crate::Result<Vec<u32>> {
        let keys: Vec<String> = order.iter().map(|c| crate::schema::class_key(c)).collect();
        for (i, k) in keys.iter().enumerate() {
            if keys[..i].contains(k) {
                return Err(crate::Error::Config(format!(
                    "class order names `{}` twice",
                    order[i]
                )));
            }
        }
        let map = self
            .classes
            .iter()
            .map(|c| {
                let key = crate::schema::class_key(c);
                keys.iter()
                    .position(|k| *k == key)
                    .map(|i| i as u32)
                    .ok_or_else(|| {
                        crate::Error::Config(format!(
                            "class `{c}` of {} is not in the class order {order:?}",
                            self.path.display()
                        ))
                    })
            })
            .collect::<crate::Result<Vec<u32>>>()?;
        for l in &mut self.labels {
            *l = map[*l as usize];
        }
        for c in &mut self.columns {
            if c.spellings.is_empty() {
                continue;
            }
            let mut s = vec![[0u64; 4]; order.len()];
            for (old, counts) in c.spellings.iter().enumerate() {
                if let Some(&new) = map.get(old) {
                    s[new as usize] = *counts;
                }
            }
            c.spellings = s;
        }
        self.classes = order.to_vec();
        Ok(map)
    }

    /// Keeps only the given rows, in the given order.
    pub fn select_rows(&mut self, rows: &[usize]) {
        *self = self.subset(rows);
    }

    /// The given rows, in the given order, as a table of their own: the same columns,
    /// classes and category levels, each row's values as read (the timing features too,
    /// as the whole file gave them: [`Dataset::retime`] computes them over these rows).
    /// What describes the read (each column's text and missing cells and spellings, the
    /// report) stays the whole table's.
    pub fn subset(&self, rows: &[usize]) -> Dataset {
        fn pick<T: Copy>(v: &[T], rows: &[usize]) -> Vec<T> {
            rows.iter().map(|&r| v[r]).collect()
        }
        let columns = self
            .columns
            .iter()
            .map(|c| Column {
                name: c.name.clone(),
                data: match &c.data {
                    ColumnData::Numeric(v) => ColumnData::Numeric(pick(v, rows)),
                    ColumnData::Categorical { codes, levels } => ColumnData::Categorical {
                        codes: pick(codes, rows),
                        levels: levels.clone(),
                    },
                },
                text_cells: c.text_cells,
                missing_cells: c.missing_cells,
                spellings: c.spellings.clone(),
            })
            .collect();
        let ds = Dataset {
            path: self.path.clone(),
            format: self.format,
            label_column: self.label_column.clone(),
            columns,
            classes: self.classes.clone(),
            labels: pick(&self.labels, rows),
            flows: self.flows.as_deref().map(|f| pick(f, rows)),
            hosts: self.hosts.as_deref().map(|h| pick(h, rows)),
            host_pairs: self.host_pairs.as_deref().map(|h| pick(h, rows)),
            lines: pick(&self.lines, rows),
            row_hashes: pick(&self.row_hashes, rows),
            timing_source: self.timing_source.as_ref().map(|t| t.subset(rows)),
            report: self.report.clone(),
        };
        debug_assert!(ds.columns.iter().all(|c| c.len() == ds.labels.len()));
        ds
    }

    /// Each row's window key ([`crate::window::flow_windows`]'s `flows`): its flow id or
    /// its host-pair id, as `by` says (None without endpoint columns).
    pub fn window_keys(&self, by: crate::window::WindowBy) -> Option<&[u32]> {
        match by {
            crate::window::WindowBy::Flow => self.flows.as_deref(),
            crate::window::WindowBy::HostPair => self.host_pairs.as_deref(),
        }
    }

    /// The cap its `flow.index` was counted up to (`None`: uncapped, or no timing
    /// features): [`crate::IngestOptions::flow_index_cap`] as the read applied it.
    pub fn flow_index_cap(&self) -> Option<u32> {
        self.report.timing.as_ref().and_then(|t| t.index_cap)
    }

    /// Computes the timing features ([`crate::timing::DERIVED_COLUMNS`] that were kept)
    /// again over this table's rows alone, in order, as reading a file of just these rows
    /// would: a flow's first row here is its first packet, the time since the previous
    /// packet between two hosts counts only these rows. A device of a federation holds
    /// some of a capture's flows and sees only those. Does nothing for a table read
    /// without the timing features. Returns whether it computed them.
    pub fn retime(&mut self) -> bool {
        let (Some(source), Some(flows)) = (&self.timing_source, &self.flows) else {
            return false;
        };
        let values = source.features(flows, self.flow_index_cap());
        for (name, values) in crate::timing::DERIVED_COLUMNS.iter().zip(values) {
            if let Some(c) = self.columns.iter_mut().find(|c| c.name == *name)
                && let ColumnData::Numeric(v) = &mut c.data
            {
                *v = values;
            }
        }
        true
    }
}
