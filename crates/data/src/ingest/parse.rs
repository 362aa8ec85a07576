//! Parsing: one record at a time into a [`Chunk`] of typed columns, the one conversion
//! every record source goes through.
//!
//! A record's fields become numbers or dictionary codes ([`crate::value`]), its label a
//! class, its endpoints the flow and host keys, its time column a [`Stamp`]. A chunk has
//! its own class and level dictionaries, so chunks can be filled on several threads at
//! once; [`super::merge`] maps them onto the table's in record order. A record that can't
//! be used becomes a counted reject with its line and reason, never a panic and never a
//! silent drop.

use rustc_hash::FxHashMap as HashMap;
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use crate::schema;
use crate::table::Reject;
use crate::timing::{self, Stamp, TimingReport};
use crate::value::{self, Cell};

use super::UNLABELLED;
use super::plan::{FlowIdx, Layout, Plan};

/// Raw spellings remembered per categorical column and chunk.
const RAW_LEVEL_CACHE: usize = 4096;

/// Consecutive records converted with their own dictionaries.
#[derive(Debug)]
pub(super) struct Chunk {
    /// Position in the record order (CSV blocks are parsed out of order).
    pub(super) seq: u64,
    pub(super) columns: Vec<LocalColumn>,
    /// Class names of this chunk; `labels` index into them.
    pub(super) classes: Vec<String>,
    pub(super) labels: Vec<u32>,
    pub(super) flows: Vec<u64>,
    /// Hash of each record's source host (with `flows`).
    pub(super) src_hosts: Vec<u64>,
    pub(super) lines: Vec<u64>,
    pub(super) hashes: Vec<u128>,
    /// Each kept row's time and host-pair key, with the timing features.
    pub(super) times: Vec<Option<Stamp>>,
    pub(super) hosts: Vec<u64>,
    /// Unparseable times of the chunk (with the timing features).
    pub(super) time_problems: TimingReport,
    pub(super) rows_read: u64,
    /// Each reject with the record as text (for the rejects file).
    pub(super) rejects: Vec<(Reject, String)>,
    /// Per retained column: text and missing cells, absent spellings per local class.
    pub(super) stats: Vec<LocalStats>,
    /// Where the source stood after the chunk's last record (bytes), when known.
    pub(super) source_offset: Option<u64>,
    /// Labels repeat: raw label bytes -> local class, so each is canonicalised once.
    label_cache: HashMap<Vec<u8>, u32>,
    class_index: HashMap<String, u32>,
    /// Scratch for building flow and host keys.
    key: Vec<u8>,
}

/// One retained column of a chunk.
#[derive(Debug)]
pub(super) enum LocalColumn {
    Numeric(Vec<f32>),
    Categorical {
        codes: Vec<u32>,
        /// Canonical levels (`""` is absent) and their codes.
        levels: Vec<String>,
        index: HashMap<String, u32>,
        /// Raw field bytes -> code, so a repeated spelling is canonicalised once.
        raw: HashMap<Vec<u8>, u32>,
        absent: Option<u32>,
    },
}

/// Per retained column of a chunk: what the conversion saw.
#[derive(Debug, Default)]
pub(super) struct LocalStats {
    pub(super) text: u64,
    pub(super) missing: u64,
    /// Absent-value spellings per local class.
    pub(super) spellings: Vec<[u64; 4]>,
}

/// The code of canonical `level`, added on first sight.
fn intern(levels: &mut Vec<String>, index: &mut HashMap<String, u32>, level: &str) -> u32 {
    if let Some(&c) = index.get(level) {
        return c;
    }
    let c = levels.len() as u32;
    levels.push(level.to_string());
    index.insert(level.to_string(), c);
    c
}

impl Chunk {
    /// An empty chunk with the columns of `layout`.
    pub(super) fn new(layout: &Layout, seq: u64) -> Chunk {
        let columns = layout
            .plans
            .iter()
            .filter_map(|p| match p {
                Plan::Numeric(_) => Some(LocalColumn::Numeric(Vec::new())),
                Plan::Categorical(_) => Some(LocalColumn::Categorical {
                    codes: Vec::new(),
                    levels: Vec::new(),
                    index: HashMap::default(),
                    raw: HashMap::default(),
                    absent: None,
                }),
                Plan::Skip | Plan::Label => None,
            })
            .collect();
        Chunk {
            seq,
            columns,
            classes: Vec::new(),
            labels: Vec::new(),
            flows: Vec::new(),
            src_hosts: Vec::new(),
            lines: Vec::new(),
            hashes: Vec::new(),
            times: Vec::new(),
            hosts: Vec::new(),
            time_problems: TimingReport {
                column: layout
                    .timing
                    .as_ref()
                    .map_or_else(String::new, |t| t.column.clone()),
                ..TimingReport::default()
            },
            rows_read: 0,
            rejects: Vec::new(),
            stats: (0..layout.n_out).map(|_| LocalStats::default()).collect(),
            source_offset: None,
            label_cache: HashMap::default(),
            class_index: HashMap::default(),
            key: Vec::with_capacity(128),
        }
    }

    /// Records seen (kept or rejected).
    pub(super) fn records(&self) -> u64 {
        self.rows_read
    }

    /// Rows kept.
    pub(super) fn rows(&self) -> usize {
        self.labels.len()
    }

    /// Counts a record that could not be read at all, at `line`, with the reason and the
    /// record as text (empty when there is none).
    pub(super) fn reject(&mut self, line: u64, reason: String, record: String) {
        self.rows_read += 1;
        self.rejects.push((Reject { line, reason }, record));
    }

    /// Converts the record that starts at physical line `line`: a row, a reject (wrong
    /// number of fields, unusable label), or nothing for a blank line.
    ///
    /// Always inlined into its callers' loops (the CSV workers', the builder's): as a
    /// call it cost 0.6 % more instructions per read than the loop it came from
    /// (callgrind, 100,000 Edge-IIoTset rows); inlined, 0.6 % fewer.
    #[inline(always)]
    pub(super) fn push(&mut self, layout: &Layout, rec: &csv::ByteRecord, line: u64) {
        if rec.len() != layout.n_fields {
            if rec.len() == 1 && rec[0].trim_ascii().is_empty() {
                return; // a blank line is not a record
            }
            self.reject(
                line,
                format!("expected {} fields, found {}", layout.n_fields, rec.len()),
                raw_record(rec, layout.delimiter),
            );
            return;
        }
        self.rows_read += 1;
        let raw: &[u8] = match layout.label_idx {
            Some(i) => &rec[i],
            None => UNLABELLED.as_bytes(),
        };
        let class_id = match self.label_cache.get(raw) {
            Some(&id) => id,
            None => {
                let raw_label = String::from_utf8_lossy(raw);
                let class = match layout.label_idx {
                    None => Some(UNLABELLED.to_string()),
                    Some(_) => schema::canonical_label(layout.format, &raw_label),
                };
                let Some(class) = class else {
                    let reason = format!(
                        "unusable label `{}` in column {}",
                        raw_label.trim(),
                        layout.label_idx.map_or(0, |i| i + 1)
                    );
                    self.rejects
                        .push((Reject { line, reason }, raw_record(rec, layout.delimiter)));
                    return;
                };
                let next_id = self.class_index.len() as u32;
                let id = *self.class_index.entry(class.clone()).or_insert_with(|| {
                    self.classes.push(class);
                    next_id
                });
                self.label_cache.insert(raw.to_vec(), id);
                id
            }
        };
        self.labels.push(class_id);
        self.lines.push(line);

        // Exact-duplicate key: the fields' bytes and where each field ends.
        let mut ends = 0u64;
        let mut col = 0;
        for (i, field) in rec.iter().enumerate() {
            ends = (ends ^ field.len() as u64)
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .rotate_left(23);
            let plan = layout.plans[i];
            let (Plan::Numeric(o) | Plan::Categorical(o)) = plan else {
                continue;
            };
            let cell = value::parse_cell(field);
            let st = &mut self.stats[o];
            match cell {
                Cell::Absent(s) => {
                    if st.spellings.len() <= class_id as usize {
                        st.spellings.resize(class_id as usize + 1, [0; 4]);
                    }
                    st.spellings[class_id as usize][s as usize] += 1;
                }
                Cell::Missing => st.missing += 1,
                Cell::Text if matches!(plan, Plan::Numeric(_)) => st.text += 1,
                _ => {}
            }
            match &mut self.columns[col] {
                LocalColumn::Numeric(v) => v.push(value::cell_value(cell)),
                LocalColumn::Categorical {
                    codes,
                    levels,
                    index,
                    raw,
                    absent,
                } => {
                    let code = if matches!(cell, Cell::Absent(_) | Cell::Missing) {
                        *absent.get_or_insert_with(|| intern(levels, index, ""))
                    } else if let Some(&c) = raw.get(field) {
                        c
                    } else {
                        let c = intern(levels, index, &value::canonical_category(field));
                        // Bounded: a column of unique names must not keep its raw text.
                        if raw.len() < RAW_LEVEL_CACHE {
                            raw.insert(field.to_vec(), c);
                        }
                        c
                    };
                    codes.push(code);
                }
            }
            col += 1;
        }
        self.hashes
            .push(xxh3_128(rec.as_slice()) ^ u128::from(ends));
        if let Some(t) = &layout.timing {
            let raw = &rec[t.time_idx];
            let stamp = timing::parse_time(raw);
            if stamp.is_none() {
                self.time_problems.unparsed_at(line, raw);
            }
            self.times.push(stamp);
        }
        if let Some(f) = &layout.flow {
            self.hosts.push(host_pair_key(rec, f, &mut self.key));
            self.flows.push(flow_key(rec, f, &mut self.key));
            self.src_hosts.push(host_key(rec, f));
        }
    }
}

/// A record as one line of text, its fields joined by `delimiter` (for the rejects file).
pub(super) fn raw_record(rec: &csv::ByteRecord, delimiter: u8) -> String {
    let mut s = Vec::new();
    for (i, f) in rec.iter().enumerate() {
        if i > 0 {
            s.push(delimiter);
        }
        s.extend_from_slice(f);
    }
    String::from_utf8_lossy(&s).into_owned()
}

/// A direction-free key for a packet's flow: the two endpoints (host and port)
/// sorted, plus the protocol. Records without ports key on the host pair.
fn flow_key(rec: &csv::ByteRecord, f: &FlowIdx, buf: &mut Vec<u8>) -> u64 {
    let first = |cands: &[usize]| first_present(rec, cands);
    let a = (first(&f.src_host), first(&f.src_port));
    let b = (first(&f.dst_host), first(&f.dst_port));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    buf.clear();
    for part in [lo.0, lo.1, hi.0, hi.1, first(&f.proto)] {
        buf.extend_from_slice(part);
        buf.push(0xFF);
    }
    xxh3_64(buf)
}

/// A key for the record's source host (the first non-empty source-host column).
fn host_key(rec: &csv::ByteRecord, f: &FlowIdx) -> u64 {
    xxh3_64(first_present(rec, &f.src_host))
}

/// The first of the candidate columns that holds a value (trimmed), or empty.
fn first_present<'a>(rec: &'a csv::ByteRecord, cands: &[usize]) -> &'a [u8] {
    cands
        .iter()
        .map(|&i| value::trim(&rec[i]))
        .find(|v| !value::is_absent(v))
        .unwrap_or(b"")
}

/// A direction-free key for the two hosts of a packet (any ports): the host part of
/// [`flow_key`].
fn host_pair_key(rec: &csv::ByteRecord, f: &FlowIdx, buf: &mut Vec<u8>) -> u64 {
    let first = |cands: &[usize]| first_present(rec, cands);
    let (a, b) = (first(&f.src_host), first(&f.dst_host));
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    buf.clear();
    for part in [lo, hi] {
        buf.extend_from_slice(part);
        buf.push(0xFF);
    }
    xxh3_64(buf)
}
