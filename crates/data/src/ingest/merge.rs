//! Merging: chunks appended in record order into one table.
//!
//! Each chunk brings its own class and level dictionaries; here they are mapped onto the
//! table's, so codes follow the order in which values first appear, however the records
//! were cut into chunks. Flow and host keys become dense ids in order of first sight,
//! and the timing features are computed here, over the records in order, so a source
//! read in batches gets the same values as one read whole. Rejects are counted, the
//! first few kept for display, and all of them written to the rejects file when there
//! is one.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap as HashMap;

use crate::error::{Error, Result};
use crate::schema;
use crate::table::{Column, ColumnData, ColumnProfile, Dataset, IngestReport};
use crate::timing::{self, FlowClock, TimingReport};

use super::SHOWN_REJECTS;
use super::parse::{Chunk, LocalColumn};
use super::plan::{Layout, Plan};

/// The rejects file: every rejected record as `line,reason,record`.
struct RejectsFile {
    path: PathBuf,
    writer: csv::Writer<BufWriter<File>>,
}

impl std::fmt::Debug for RejectsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RejectsFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl RejectsFile {
    fn create(path: &Path) -> Result<RejectsFile> {
        let f = File::create(path).map_err(|e| Error::io(path, e))?;
        let mut writer = csv::Writer::from_writer(BufWriter::new(f));
        writer
            .write_record(["line", "reason", "record"])
            .map_err(|e| Error::io(path, e.into()))?;
        Ok(RejectsFile {
            path: path.to_path_buf(),
            writer,
        })
    }
}

/// Dense ids of host pairs ([`Dataset::host_pairs`]), in order of first appearance.
/// Under a stream's bound the least recently seen pairs are forgotten: their ids are
/// reported ([`PairIds::forgotten`]) and a later packet of the pair gets a new id.
#[derive(Debug, Default)]
struct PairIds {
    /// Per host-pair key: its id and its last use (a counter of calls).
    ids: HashMap<u64, (u32, u64)>,
    next: u32,
    tick: u64,
    /// Ids forgotten since the caller last took them.
    forgotten: Vec<u32>,
}

impl PairIds {
    /// The id of `key`, keeping at most `bound` pairs (the least recently used forgotten,
    /// down to three quarters of it) when one is given.
    fn id(&mut self, key: u64, bound: Option<usize>) -> u32 {
        self.tick += 1;
        let (tick, next) = (self.tick, &mut self.next);
        let entry = self.ids.entry(key).or_insert_with(|| {
            let id = *next;
            *next = next.wrapping_add(1);
            (id, tick)
        });
        entry.1 = tick;
        let id = entry.0;
        if let Some(max) = bound {
            // The pair just used has the latest tick: it is kept.
            let uses = self.ids.iter().map(|(k, v)| (*k, v.1));
            for k in timing::least_recently_used(uses, max) {
                if let Some((gone, _)) = self.ids.remove(&k) {
                    self.forgotten.push(gone);
                }
            }
        }
        id
    }
}

/// Appends chunks into the final table, unifying dictionaries.
#[derive(Debug)]
pub(super) struct Merger {
    pub(super) ds: Dataset,
    class_index: HashMap<String, u32>,
    level_index: Vec<HashMap<String, u32>>,
    flow_index: HashMap<u64, u32>,
    host_index: HashMap<u64, u32>,
    pair_ids: PairIds,
    /// Host id of each flow id: the source host of the flow's first record.
    flow_host: Vec<u32>,
    /// With the timing features: per-flow state, and the indices in `ds.columns` of the
    /// kept derived columns (inter-arrival time, index in flow).
    clock: FlowClock,
    derived: [Option<usize>; 3],
    host_clock: FlowClock,
    rejects: Option<RejectsFile>,
    /// Bounds for an endless stream (see [`Streaming`]).
    streaming: Option<Streaming>,
    /// Keep each row's timing source ([`crate::IngestOptions::keep_timing_source`]).
    pub(super) keep_timing_source: bool,
}

/// An endless stream's bounds: flows are forgotten when the reader says so
/// ([`Merger::forget_flows`]); host pairs' clocks are kept for at most `max_hosts` pairs,
/// the least recently seen forgotten; a categorical column's dictionary is started
/// afresh at a batch boundary once it holds more than `max_levels` values (each batch
/// carries its own dictionary, so codes stay right); host ids (used only to deal rows to
/// devices in a federation) are all 0.
#[derive(Debug)]
pub struct Streaming {
    pub max_levels: usize,
    pub max_hosts: usize,
    /// Flow id -> its key, to forget it.
    keys: HashMap<u32, u64>,
    next_flow: u32,
}

impl Streaming {
    pub fn new(max_levels: usize, max_hosts: usize) -> Streaming {
        Streaming {
            max_levels: max_levels.max(1),
            max_hosts: max_hosts.max(1),
            keys: HashMap::default(),
            next_flow: 0,
        }
    }
}

/// What a streaming merger holds now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BuilderHeld {
    /// Flows with an id.
    pub flows: usize,
    /// Flows and host pairs with timing state.
    pub flow_clocks: usize,
    pub host_clocks: usize,
    /// Host pairs with an id.
    pub host_pairs: usize,
    /// Dictionary values over all categorical columns.
    pub levels: usize,
}

/// The empty retained columns of `layout`, then its kept derived timing columns, with
/// the indices of the latter.
fn empty_columns(header: &[String], layout: &Layout) -> (Vec<Column>, [Option<usize>; 3]) {
    let empty = |name: &str, data| Column {
        name: name.to_string(),
        data,
        text_cells: 0,
        missing_cells: 0,
        spellings: Vec::new(),
    };
    let mut columns: Vec<Column> = layout
        .plans
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let data = match p {
                Plan::Numeric(_) => ColumnData::Numeric(Vec::new()),
                Plan::Categorical(_) => ColumnData::Categorical {
                    codes: Vec::new(),
                    levels: Vec::new(),
                },
                Plan::Skip | Plan::Label => return None,
            };
            Some(empty(&header[i], data))
        })
        .collect();
    let mut derived = [None; 3];
    if let Some(t) = &layout.timing {
        for (slot, (name, keep)) in derived
            .iter_mut()
            .zip(timing::DERIVED_COLUMNS.iter().zip(t.keep))
        {
            if keep {
                *slot = Some(columns.len());
                columns.push(empty(name, ColumnData::Numeric(Vec::new())));
            }
        }
    }
    (columns, derived)
}

impl Merger {
    /// An empty table for `layout`; the rejects file, when asked for, is created now.
    pub(super) fn new(
        source: &Path,
        header: &[String],
        layout: &Layout,
        bytes: u64,
        rejects: Option<&Path>,
    ) -> Result<Self> {
        let rejects = rejects.map(RejectsFile::create).transpose()?;
        let (columns, derived) = empty_columns(header, layout);
        let timing_report = layout.timing.as_ref().map(|t| TimingReport {
            column: t.column.clone(),
            index_cap: t.index_cap,
            ..TimingReport::default()
        });
        let n = columns.len();
        Ok(Merger {
            ds: Dataset {
                path: source.into(),
                format: layout.format,
                label_column: layout
                    .label_idx
                    .map_or_else(String::new, |i| header[i].clone()),
                columns,
                classes: Vec::new(),
                labels: Vec::new(),
                flows: layout.flow.as_ref().map(|_| Vec::new()),
                hosts: layout.flow.as_ref().map(|_| Vec::new()),
                host_pairs: layout.flow.as_ref().map(|_| Vec::new()),
                lines: Vec::new(),
                row_hashes: Vec::new(),
                timing_source: None,
                report: IngestReport {
                    bytes,
                    timing: timing_report,
                    ..IngestReport::default()
                },
            },
            class_index: HashMap::default(),
            level_index: vec![HashMap::default(); n],
            flow_index: HashMap::default(),
            host_index: HashMap::default(),
            pair_ids: PairIds::default(),
            flow_host: Vec::new(),
            clock: FlowClock::default(),
            derived,
            host_clock: FlowClock::default(),
            rejects,
            streaming: None,
            keep_timing_source: false,
        })
    }

    /// Fixes the column kinds (inferred after the merger was made, before any chunk)
    /// and the column profiles.
    pub(super) fn set_kinds(
        &mut self,
        header: &[String],
        layout: &Layout,
        profiles: Vec<ColumnProfile>,
    ) {
        let (columns, derived) = empty_columns(header, layout);
        self.level_index = vec![HashMap::default(); columns.len()];
        self.ds.columns = columns;
        self.derived = derived;
        self.ds.report.profiles = profiles;
    }

    /// Bounds this merger for an endless stream.
    pub(super) fn set_streaming(&mut self, s: Streaming) {
        self.streaming = Some(s);
    }

    /// The host-pair ids forgotten under the stream's bound since the last call: windows
    /// carried for them are stale.
    pub(super) fn take_forgotten_host_pairs(&mut self) -> Vec<u32> {
        std::mem::take(&mut self.pair_ids.forgotten)
    }

    /// Forgets flows (an online flow table evicted them): their keys, ids and timing
    /// state. A later record of the same flow gets a new id and starts its timing afresh.
    pub(super) fn forget_flows(&mut self, flows: &[u32]) {
        let Some(st) = &mut self.streaming else {
            return;
        };
        for f in flows {
            if let Some(k) = st.keys.remove(f) {
                self.flow_index.remove(&k);
            }
            self.clock.forget(u64::from(*f));
        }
    }

    /// What this merger holds now.
    pub(super) fn held(&self) -> BuilderHeld {
        let levels = self
            .ds
            .columns
            .iter()
            .map(|c| match &c.data {
                ColumnData::Categorical { levels, .. } => levels.len(),
                ColumnData::Numeric(_) => 0,
            })
            .sum();
        BuilderHeld {
            flows: self.flow_index.len(),
            flow_clocks: self.clock.len(),
            host_clocks: self.host_clock.len(),
            host_pairs: self.pair_ids.ids.len(),
            levels,
        }
    }

    /// Appends `p`, the next chunk in record order.
    pub(super) fn append(&mut self, p: Chunk) -> Result<()> {
        let ds = &mut self.ds;
        ds.report.rows_read += p.rows_read;
        ds.report.rows_rejected += p.rejects.len() as u64;
        for (r, raw) in p.rejects {
            if let Some(out) = &mut self.rejects {
                out.writer
                    .write_record([r.line.to_string().as_str(), r.reason.as_str(), raw.as_str()])
                    .map_err(|e| Error::io(&out.path, e.into()))?;
            }
            if ds.report.first_rejects.len() < SHOWN_REJECTS {
                ds.report.first_rejects.push(r);
            }
        }
        // Local class ids -> global, folding name variants by class key.
        let class_map: Vec<u32> = p
            .classes
            .iter()
            .map(|name| {
                let key = schema::class_key(name);
                let next = self.class_index.len() as u32;
                *self.class_index.entry(key).or_insert_with(|| {
                    ds.classes.push(name.clone());
                    next
                })
            })
            .collect();
        ds.labels
            .extend(p.labels.iter().map(|&l| class_map[l as usize]));
        ds.lines.extend_from_slice(&p.lines);
        ds.row_hashes.extend_from_slice(&p.hashes);
        let first_new = ds.labels.len() - p.labels.len();
        if let (Some(flows), Some(hosts)) = (&mut ds.flows, &mut ds.hosts) {
            for (k, h) in p.flows.into_iter().zip(p.src_hosts) {
                if let Some(st) = &mut self.streaming {
                    let flow = *self.flow_index.entry(k).or_insert_with(|| {
                        let id = st.next_flow;
                        st.next_flow = st.next_flow.wrapping_add(1);
                        st.keys.insert(id, k);
                        id
                    });
                    flows.push(flow);
                    hosts.push(0);
                    continue;
                }
                let next = self.flow_index.len() as u32;
                let flow = *self.flow_index.entry(k).or_insert(next);
                if flow == next {
                    let next_host = self.host_index.len() as u32;
                    self.flow_host
                        .push(*self.host_index.entry(h).or_insert(next_host));
                }
                flows.push(flow);
                hosts.push(self.flow_host[flow as usize]);
            }
        }
        if let Some(pairs) = &mut ds.host_pairs {
            let bound = self.streaming.as_ref().map(|s| s.max_hosts);
            pairs.extend(p.hosts.iter().map(|&k| self.pair_ids.id(k, bound)));
        }
        if let (Some(report), Some(flows)) = (&mut ds.report.timing, &ds.flows) {
            report.unparsed += p.time_problems.unparsed;
            for problem in p.time_problems.first_problems {
                if report.first_problems.len() < SHOWN_REJECTS {
                    report.first_problems.push(problem);
                }
            }
            report.parsed += p.times.iter().filter(|t| t.is_some()).count() as u64;
            let mut derived: [Vec<f32>; 3] = Default::default();
            let mut host_report = TimingReport::default();
            for ((&flow, &stamp), &hosts) in flows[first_new..].iter().zip(&p.times).zip(&p.hosts) {
                let (iat, index) = self.clock.next(u64::from(flow), stamp, report);
                let (host_iat, _) = match &self.streaming {
                    Some(st) => {
                        self.host_clock
                            .next_bounded(hosts, stamp, &mut host_report, st.max_hosts)
                    }
                    None => self.host_clock.next(hosts, stamp, &mut host_report),
                };
                derived[0].push(iat);
                derived[1].push(timing::capped_index(index, report.index_cap));
                derived[2].push(host_iat);
            }
            report.host_backwards += host_report.backwards;
            // What they came from, to compute them again over some rows, when asked
            // (never for an endless stream, whose memory is bounded).
            if self.keep_timing_source && self.streaming.is_none() {
                let source = ds.timing_source.get_or_insert_with(Default::default);
                source.stamps.extend_from_slice(&p.times);
                source.host_pairs.extend_from_slice(&p.hosts);
            }
            for (slot, values) in self.derived.iter().zip(derived) {
                let Some(ci) = *slot else { continue };
                let col = &mut ds.columns[ci];
                col.missing_cells += values.iter().filter(|v| v.is_nan()).count() as u64;
                if let ColumnData::Numeric(v) = &mut col.data {
                    v.extend_from_slice(&values);
                }
            }
        }
        for (col, st) in ds.columns.iter_mut().zip(&p.stats) {
            col.text_cells += st.text;
            col.missing_cells += st.missing;
            for (local_class, counts) in st.spellings.iter().enumerate() {
                let g = class_map[local_class] as usize;
                if col.spellings.len() <= g {
                    col.spellings.resize(g + 1, [0; 4]);
                }
                for (a, b) in col.spellings[g].iter_mut().zip(counts) {
                    *a += b;
                }
            }
        }
        for ((col, local), index) in ds
            .columns
            .iter_mut()
            .zip(p.columns)
            .zip(&mut self.level_index)
        {
            match (&mut col.data, local) {
                (ColumnData::Numeric(v), LocalColumn::Numeric(l)) => v.extend_from_slice(&l),
                (
                    ColumnData::Categorical { codes, levels },
                    LocalColumn::Categorical {
                        codes: lc,
                        levels: ll,
                        ..
                    },
                ) => {
                    let map: Vec<u32> = ll
                        .into_iter()
                        .map(|level| {
                            let next = levels.len() as u32;
                            *index.entry(level.clone()).or_insert_with(|| {
                                levels.push(level);
                                next
                            })
                        })
                        .collect();
                    codes.extend(lc.iter().map(|&c| map[c as usize]));
                }
                _ => unreachable!("column kinds are fixed by the layout before the first chunk"),
            }
        }
        Ok(())
    }

    /// Rows appended since the last batch.
    pub(super) fn rows(&self) -> usize {
        self.ds.labels.len()
    }

    /// The rows appended since the last batch, as a table; dictionaries, class and
    /// flow ids carry on into the next batch.
    pub(super) fn take_batch(&mut self) -> Dataset {
        let n_classes = self.ds.classes.len();
        let max_levels = self.streaming.as_ref().map(|s| s.max_levels);
        let ds = &mut self.ds;
        ds.report.rows_kept += ds.labels.len() as u64;
        let flows_seen = match &self.streaming {
            Some(st) => u64::from(st.next_flow),
            None => self.flow_index.len() as u64,
        };
        ds.report.flows = ds.flows.as_ref().map(|_| flows_seen);
        let columns = ds
            .columns
            .iter_mut()
            .map(|c| Column {
                name: c.name.clone(),
                data: match &mut c.data {
                    ColumnData::Numeric(v) => ColumnData::Numeric(std::mem::take(v)),
                    ColumnData::Categorical { codes, levels } => ColumnData::Categorical {
                        codes: std::mem::take(codes),
                        levels: if max_levels.is_some_and(|m| levels.len() > m) {
                            std::mem::take(levels)
                        } else {
                            levels.clone()
                        },
                    },
                },
                text_cells: c.text_cells,
                missing_cells: c.missing_cells,
                spellings: {
                    let mut s = c.spellings.clone();
                    s.resize(n_classes, [0; 4]);
                    s
                },
            })
            .collect();
        // A dictionary started afresh (streaming): its index too.
        for (c, index) in ds.columns.iter().zip(&mut self.level_index) {
            if let ColumnData::Categorical { levels, .. } = &c.data
                && levels.is_empty()
            {
                index.clear();
            }
        }
        Dataset {
            path: ds.path.clone(),
            format: ds.format,
            label_column: ds.label_column.clone(),
            columns,
            classes: ds.classes.clone(),
            labels: std::mem::take(&mut ds.labels),
            flows: ds.flows.as_mut().map(std::mem::take),
            hosts: ds.hosts.as_mut().map(std::mem::take),
            host_pairs: ds.host_pairs.as_mut().map(std::mem::take),
            lines: std::mem::take(&mut ds.lines),
            row_hashes: std::mem::take(&mut ds.row_hashes),
            timing_source: ds.timing_source.as_mut().map(std::mem::take),
            report: ds.report.clone(),
        }
    }

    /// Writes out what the rejects file still buffers.
    pub(super) fn flush(&mut self) -> Result<()> {
        if let Some(out) = &mut self.rejects {
            out.writer.flush().map_err(|e| Error::io(&out.path, e))?;
        }
        Ok(())
    }
}
