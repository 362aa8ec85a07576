//! Reading a labelled CSV into a [`Dataset`], in parallel, in bounded memory.
//!
//! One thread reads the file in blocks and cuts each block after its last complete
//! record (tracking CSV quoting, so a quoted field with commas, doubled quotes or
//! newlines never straddles a cut). Worker threads parse blocks with the `csv`
//! crate and convert every field straight to a number or a dictionary code; the
//! calling thread appends the blocks in file order. Raw text is dropped as soon as
//! its block is converted, so memory follows the retained numeric matrix.
//!
//! Bad rows never panic and never vanish: a record with the wrong number of fields
//! or an unusable label is counted, the first few are kept for display with their
//! line and reason, and all of them go to the rejects file when one is asked for.

use std::collections::{BTreeMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use memchr::{memchr, memchr2};
use rustc_hash::FxHashMap as HashMap;
use xxhash_rust::xxh3::{xxh3_64, xxh3_128};

use crate::error::{Error, Result};
use crate::schema::{self, Format};
use crate::table::{Column, ColumnData, ColumnProfile, Dataset, DropReason, IngestReport, Reject};
use crate::timing::{self, FlowClock, Stamp, TimingReport};
use crate::value::{self, Cell};

/// How many rejects are kept in memory for display.
const SHOWN_REJECTS: usize = 20;
/// The class of every row of a file read without its label column.
pub const UNLABELLED: &str = "(unlabelled)";

/// Raw spellings remembered per categorical column and block.
const RAW_LEVEL_CACHE: usize = 4096;
/// Records looked at to infer column types and profile columns.
const SAMPLE_RECORDS: usize = 5000;

/// Progress callback: called with the number of bytes read so far.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

/// How to read a file. By default the layout is detected from the header, the
/// label is the layout's usual label column, and identifier columns are dropped.
#[derive(Clone, Default)]
pub struct IngestOptions {
    /// Force a layout instead of detecting it.
    pub format: Option<Format>,
    /// The label column (required for generic CSVs).
    pub label: Option<String>,
    /// More columns to drop.
    pub drop: Vec<String>,
    /// Columns to keep even though the layout drops them.
    pub keep: Vec<String>,
    /// Columns to treat as categorical in addition to the layout's list.
    pub categorical: Vec<String>,
    /// Columns to treat as numeric whatever their values look like (prediction
    /// forces the kinds the model was trained with).
    pub numeric: Vec<String>,
    /// Add the timing features ([`crate::timing`]): microseconds since the flow's
    /// previous packet, the packets of the flow before this one, and microseconds since
    /// the previous packet between the same two hosts, from the layout's time column
    /// (`frame.time` for Edge-IIoTset and tshark tables), which stays dropped. Needs the
    /// time column and flows (endpoint columns). Off by default.
    pub flow_timing: bool,
    /// Accept a file without the label column (prediction on unlabelled traffic):
    /// every row then has the class [`UNLABELLED`].
    pub label_optional: bool,
    /// Worker threads; 0 means one per core.
    pub threads: usize,
    /// Block size in bytes; 0 means the default (4 MiB).
    pub block_size: usize,
    /// Write every rejected record here (CSV: line, reason, record).
    pub rejects_path: Option<PathBuf>,
    pub progress: Option<Progress>,
}

impl std::fmt::Debug for IngestOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestOptions")
            .field("format", &self.format)
            .field("label", &self.label)
            .field("drop", &self.drop)
            .field("keep", &self.keep)
            .field("flow_timing", &self.flow_timing)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}

/// What each header column becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Skip,
    Label,
    Numeric(usize),
    Categorical(usize),
}

/// Everything a worker needs to turn a block into columns.
#[derive(Debug)]
struct Layout {
    format: Format,
    delimiter: u8,
    n_fields: usize,
    /// `None` for an unlabelled file read with `label_optional`.
    label_idx: Option<usize>,
    plans: Vec<Plan>,
    n_out: usize,
    flow: Option<FlowIdx>,
    timing: Option<TimingLayout>,
}

/// Where the per-flow timing features come from and which of them are kept.
#[derive(Debug, Clone)]
struct TimingLayout {
    /// Header index and name of the time column.
    time_idx: usize,
    column: String,
    /// Per [`timing::DERIVED_COLUMNS`]: kept (not named in `--drop`).
    keep: [bool; 3],
}

/// Header indices of the flow-key parts (candidates in order of preference).
#[derive(Debug, Clone)]
struct FlowIdx {
    src_host: Vec<usize>,
    dst_host: Vec<usize>,
    src_port: Vec<usize>,
    dst_port: Vec<usize>,
    proto: Vec<usize>,
}

/// A block of raw bytes that starts at a record boundary.
struct Block {
    seq: u64,
    /// Physical line number of the block's first byte.
    first_line: u64,
    bytes: Vec<u8>,
}

/// A parsed block.
#[derive(Default)]
struct Parsed {
    seq: u64,
    columns: Vec<LocalColumn>,
    classes: Vec<String>,
    labels: Vec<u32>,
    flows: Vec<u64>,
    /// Hash of each record's source host (with `flows`).
    src_hosts: Vec<u64>,
    lines: Vec<u64>,
    hashes: Vec<u128>,
    /// Each kept row's time and host-pair key, with the timing features.
    times: Vec<Option<Stamp>>,
    hosts: Vec<u64>,
    /// Unparseable times of the block (with the timing features).
    time_problems: TimingReport,
    rows_read: u64,
    rejects: Vec<(Reject, String)>,
    /// Per retained column: text and missing cells, absent spellings per local class.
    stats: Vec<LocalStats>,
}

enum LocalColumn {
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

#[derive(Default)]
struct LocalStats {
    text: u64,
    missing: u64,
    spellings: Vec<[u64; 4]>,
}

/// Reads a labelled CSV file.
///
/// # Errors
/// The file cannot be read, is empty, is not CSV, or lacks the label column.
/// Bad rows are not errors: they are counted in [`IngestReport`].
pub fn read_csv(path: &Path, opts: &IngestOptions) -> Result<Dataset> {
    let mut whole = None;
    read_csv_batches(path, opts, usize::MAX, |ds| {
        whole = Some(ds);
        Ok(())
    })?;
    whole.ok_or_else(|| Error::NoRows {
        path: path.into(),
        rejected: 0,
    })
}

/// Reads a labelled CSV file in batches of about `batch_rows` rows, in file order,
/// so a file larger than memory can be processed (prediction). Flow ids, class ids
/// and category codes are the same across batches; each batch's report holds the
/// counts so far. Returns the report of the whole file.
///
/// # Errors
/// As [`read_csv`], plus whatever `on_batch` returns (which stops the reading).
pub fn read_csv_batches(
    path: &Path,
    opts: &IngestOptions,
    batch_rows: usize,
    mut on_batch: impl FnMut(Dataset) -> Result<()>,
) -> Result<IngestReport> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let bytes_total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let block_size = if opts.block_size == 0 {
        4 << 20
    } else {
        opts.block_size.max(1024)
    };

    // The first block: header, delimiter, type inference.
    let mut first = Vec::with_capacity(block_size);
    let eof = fill(&mut file, &mut first, block_size).map_err(|e| Error::io(path, e))?;
    if first.starts_with(&[0xEF, 0xBB, 0xBF]) {
        first.drain(..3);
    }
    if first.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::Empty { path: path.into() });
    }
    if let Some(p) = memchr(0, &first) {
        return Err(Error::NotCsv {
            path: path.into(),
            reason: format!("binary data (a NUL byte at offset {p})"),
        });
    }
    let header_end = match memchr(b'\n', &first) {
        Some(p) => p + 1,
        None if eof => first.len(),
        None => {
            return Err(Error::NotCsv {
                path: path.into(),
                reason: format!("no line break in the first {} bytes", first.len()),
            });
        }
    };
    let delimiter = detect_delimiter(&first[..header_end]);
    let header = parse_header(path, &first[..header_end], delimiter)?;
    let mut layout = plan_columns(path, &header, delimiter, opts)?;
    let mut rest = first.split_off(header_end);
    let sample = sample_records(&rest, &layout);
    infer_types(&mut layout, &header, &sample, opts);
    let profiles = profile_columns(&header, &layout, &sample, opts);

    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        opts.threads
    };
    let mut rejects_out = match &opts.rejects_path {
        Some(p) => {
            let f = File::create(p).map_err(|e| Error::io(p, e))?;
            let mut w = csv::Writer::from_writer(BufWriter::new(f));
            w.write_record(["line", "reason", "record"])
                .map_err(|e| Error::io(p, e.into()))?;
            Some((p.clone(), w))
        }
        None => None,
    };

    let mut merger = Merger::new(path, &header, &layout, profiles, bytes_total);
    let layout = Arc::new(layout);
    let progress = opts.progress.clone();
    let io_error: Mutex<Option<std::io::Error>> = Mutex::new(None);

    std::thread::scope(|scope| -> Result<()> {
        let (block_tx, block_rx) = sync_channel::<Block>(threads * 2);
        let (parsed_tx, parsed_rx) = sync_channel::<Parsed>(threads * 2);
        let block_rx = Arc::new(Mutex::new(block_rx));
        for _ in 0..threads {
            let rx = Arc::clone(&block_rx);
            let tx = parsed_tx.clone();
            let layout = Arc::clone(&layout);
            scope.spawn(move || worker(&layout, &rx, &tx));
        }
        drop(parsed_tx);
        let io_error = &io_error;
        let progress = progress.clone();
        let quote_delim = layout.delimiter;
        scope.spawn(move || {
            let read = read_blocks(
                &mut file,
                &mut rest,
                eof,
                header_end as u64,
                block_size,
                quote_delim,
                &block_tx,
                progress.as_deref(),
            );
            if let Err(e) = read {
                *io_error.lock().expect("io error slot") = Some(e);
            }
        });

        // Append parsed blocks in file order.
        let mut delivered = false;
        let mut pending: BTreeMap<u64, Parsed> = BTreeMap::new();
        let mut next = 0u64;
        for p in parsed_rx {
            pending.insert(p.seq, p);
            while let Some(p) = pending.remove(&next) {
                merger.append(p, &mut rejects_out)?;
                next += 1;
                if merger.ds.n_rows() >= batch_rows.max(1) {
                    on_batch(merger.take_batch())?;
                    delivered = true;
                }
            }
        }
        if let Some(e) = io_error.lock().expect("io error slot").take() {
            return Err(Error::io(path, e));
        }
        let last = merger.take_batch();
        if last.n_rows() == 0 && !delivered {
            return Err(Error::NoRows {
                path: path.into(),
                rejected: last.report.rows_rejected,
            });
        }
        if last.n_rows() > 0 || !delivered {
            on_batch(last)?;
        }
        Ok(())
    })?;
    if let Some((p, mut w)) = rejects_out {
        w.flush().map_err(|e| Error::io(&p, e))?;
    }
    let report = merger.report();
    if let Some(t) = report.timing.as_ref().filter(|t| t.unparsed > 0) {
        let first = t.first_problems.first();
        tracing::warn!(
            "{}: {} of {} rows have an unreadable `{}` (inter-arrival time missing, imputed); first at line {}: {}",
            path.display(),
            t.unparsed,
            t.unparsed + t.parsed,
            t.column,
            first.map_or(0, |p| p.line),
            first.map_or("", |p| p.reason.as_str())
        );
    }
    tracing::info!(
        path = %path.display(),
        rows = report.rows_kept,
        rejected = report.rows_rejected,
        "ingested"
    );
    Ok(report)
}

/// Reads until `buf` holds `want` bytes or the file ends; returns true at EOF.
fn fill(file: &mut File, buf: &mut Vec<u8>, want: usize) -> std::io::Result<bool> {
    while buf.len() < want {
        let start = buf.len();
        buf.resize(want, 0);
        let n = file.read(&mut buf[start..])?;
        buf.truncate(start + n);
        if n == 0 {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Cuts the file into blocks that end on record boundaries and sends them.
#[allow(clippy::too_many_arguments)]
fn read_blocks(
    file: &mut File,
    carry: &mut Vec<u8>,
    mut eof: bool,
    mut offset: u64,
    block_size: usize,
    delimiter: u8,
    tx: &SyncSender<Block>,
    progress: Option<&(dyn Fn(u64) + Send + Sync)>,
) -> std::io::Result<()> {
    let mut seq = 0u64;
    let mut line = 2u64; // the header is line 1
    let mut buf = std::mem::take(carry);
    loop {
        let mut want = block_size.max(buf.len() + 1);
        let mut cut = None;
        while !eof {
            eof = fill(file, &mut buf, want)?;
            cut = last_record_end(&buf, delimiter);
            if cut.is_some() {
                break;
            }
            // A record longer than the block (a 200,000-character field): grow.
            want = buf.len() * 2;
        }
        let end = if eof {
            buf.len()
        } else {
            cut.unwrap_or(buf.len())
        };
        if end == 0 {
            break;
        }
        let tail = buf.split_off(end);
        let lines_in = memchr::memchr_iter(b'\n', &buf).count() as u64;
        offset += buf.len() as u64;
        let block = Block {
            seq,
            first_line: line,
            bytes: std::mem::replace(&mut buf, tail),
        };
        line += lines_in;
        seq += 1;
        if let Some(p) = progress {
            p(offset);
        }
        if tx.send(block).is_err() {
            break; // the receiver stopped (an error downstream)
        }
        if eof && buf.is_empty() {
            break;
        }
    }
    Ok(())
}

/// The end (exclusive) of the last complete record in `buf`, which starts at a
/// record boundary: the byte after the last newline that is not inside quotes.
///
/// A quote opens a quoted field only at the start of a field, as in the `csv`
/// crate; inside one, a doubled quote is an escaped quote.
pub(crate) fn last_record_end(buf: &[u8], delimiter: u8) -> Option<usize> {
    const Q: u8 = b'"';
    let mut i = 0;
    let mut in_quotes = false;
    let mut last = None;
    while i < buf.len() {
        if in_quotes {
            let Some(p) = memchr(Q, &buf[i..]) else { break };
            let q = i + p;
            match buf.get(q + 1) {
                Some(&Q) => i = q + 2,
                Some(_) => {
                    in_quotes = false;
                    i = q + 1;
                }
                None => break, // cannot tell yet: the rest of the record is unread
            }
        } else {
            let Some(p) = memchr2(Q, b'\n', &buf[i..]) else {
                break;
            };
            let q = i + p;
            if buf[q] == b'\n' {
                last = Some(q + 1);
            } else if q == 0 || matches!(buf[q - 1], b'\n' | b'\r') || buf[q - 1] == delimiter {
                in_quotes = true;
            }
            i = q + 1;
        }
    }
    last
}

fn detect_delimiter(header_line: &[u8]) -> u8 {
    let count = |d: u8| header_line.iter().filter(|&&b| b == d).count();
    [b',', b'\t', b';']
        .into_iter()
        .max_by_key(|&d| count(d))
        .unwrap_or(b',')
}

fn parse_header(path: &Path, line: &[u8], delimiter: u8) -> Result<Vec<String>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .from_reader(line);
    let mut rec = csv::ByteRecord::new();
    let ok = rdr.read_byte_record(&mut rec).map_err(|e| Error::NotCsv {
        path: path.into(),
        reason: format!("header: {e}"),
    })?;
    if !ok || rec.is_empty() {
        return Err(Error::Empty { path: path.into() });
    }
    let mut names = Vec::with_capacity(rec.len());
    for (i, f) in rec.iter().enumerate() {
        let s = std::str::from_utf8(f).map_err(|_| Error::NotCsv {
            path: path.into(),
            reason: format!("header field {} is not UTF-8 text", i + 1),
        })?;
        names.push(s.trim().to_string());
    }
    if names.len() < 2 {
        return Err(Error::NotCsv {
            path: path.into(),
            reason: format!(
                "the header has one column (`{}`); expected a delimited header line",
                names[0].chars().take(60).collect::<String>()
            ),
        });
    }
    Ok(names)
}

fn plan_columns(
    path: &Path,
    header: &[String],
    delimiter: u8,
    opts: &IngestOptions,
) -> Result<Layout> {
    let format = opts.format.unwrap_or_else(|| Format::detect(header));
    let available = || header.join(", ");
    let label = match (&opts.label, format.default_label()) {
        (Some(l), _) => l.clone(),
        (None, Some(l)) => l.to_string(),
        (None, None) => {
            return Err(Error::UnknownFormat {
                path: path.into(),
                available: available(),
            });
        }
    };
    let label_idx = header.iter().position(|h| *h == label);
    if label_idx.is_none() && !opts.label_optional {
        return Err(Error::MissingLabel {
            path: path.into(),
            label: label.clone(),
            available: available(),
        });
    }
    let derived = |n: &String| opts.flow_timing && timing::DERIVED_COLUMNS.contains(&n.as_str());
    for (names, option) in [
        (&opts.drop, "--drop"),
        (&opts.keep, "--keep"),
        (&opts.categorical, "--categorical"),
    ] {
        if let Some(c) = names
            .iter()
            .find(|n| !(header.contains(n) || option == "--drop" && derived(n)))
        {
            return Err(Error::UnknownColumn {
                path: path.into(),
                column: c.clone(),
                option,
            });
        }
    }
    let mut plans = Vec::with_capacity(header.len());
    let mut n_out = 0;
    for (i, name) in header.iter().enumerate() {
        let plan = if Some(i) == label_idx {
            Plan::Label
        } else if drop_reason(format, name, &label, opts).is_some() {
            Plan::Skip
        } else {
            n_out += 1;
            Plan::Numeric(n_out - 1)
        };
        plans.push(plan);
    }
    let fc = format.flow_columns();
    let find = |cands: &[&str]| -> Vec<usize> {
        cands
            .iter()
            .filter_map(|c| header.iter().position(|h| h == c))
            .collect()
    };
    let flow = FlowIdx {
        src_host: find(fc.src_host),
        dst_host: find(fc.dst_host),
        src_port: find(fc.src_port),
        dst_port: find(fc.dst_port),
        proto: find(fc.proto),
    };
    let flow = (!flow.src_host.is_empty() && !flow.dst_host.is_empty()).then_some(flow);
    let timing = if opts.flow_timing {
        Some(plan_timing(path, header, format, flow.is_some(), opts)?)
    } else {
        None
    };
    Ok(Layout {
        format,
        delimiter,
        n_fields: header.len(),
        label_idx,
        plans,
        n_out,
        flow,
        timing,
    })
}

/// The time column of the timing features, checked: it exists, the file has flows, and
/// no header column already has a derived column's name.
fn plan_timing(
    path: &Path,
    header: &[String],
    format: Format,
    has_flows: bool,
    opts: &IngestOptions,
) -> Result<TimingLayout> {
    let candidates = format.time_columns();
    let Some(time_idx) = candidates
        .iter()
        .find_map(|c| header.iter().position(|h| h == c))
    else {
        return Err(Error::FlowTiming {
            path: path.into(),
            needs: "a time column",
            found: format!(
                "the {} layout looks for {}, and the header has none of them",
                format.name(),
                candidates.join(", ")
            ),
        });
    };
    if !has_flows {
        return Err(Error::FlowTiming {
            path: path.into(),
            needs: "flows, built from endpoint columns (addresses, ports)",
            found: "this file has none".into(),
        });
    }
    if let Some(clash) = timing::DERIVED_COLUMNS
        .iter()
        .find(|d| header.iter().any(|h| h == *d))
    {
        return Err(Error::FlowTiming {
            path: path.into(),
            needs: "its own column names",
            found: format!("the header already has a column `{clash}`"),
        });
    }
    Ok(TimingLayout {
        time_idx,
        column: header[time_idx].clone(),
        keep: timing::DERIVED_COLUMNS.map(|d| !opts.drop.iter().any(|x| x == d)),
    })
}

/// Why a column is not a feature, or `None` when it is one.
fn drop_reason(
    format: Format,
    name: &str,
    label: &str,
    opts: &IngestOptions,
) -> Option<DropReason> {
    if name == label {
        return Some(DropReason::Label);
    }
    if opts.keep.iter().any(|k| k == name) {
        return None;
    }
    if opts.drop.iter().any(|d| d == name) {
        return Some(DropReason::User);
    }
    if format.label_columns().contains(&name) {
        return Some(DropReason::OtherLabel);
    }
    if format.identifier_columns().contains(&name) {
        return Some(DropReason::Identifier);
    }
    None
}

/// Parses up to [`SAMPLE_RECORDS`] well-formed records of the first block.
fn sample_records(block: &[u8], layout: &Layout) -> Vec<csv::ByteRecord> {
    let end = last_record_end(block, layout.delimiter).unwrap_or(block.len());
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(layout.delimiter)
        .from_reader(&block[..end]);
    let mut out = Vec::new();
    let mut rec = csv::ByteRecord::new();
    while out.len() < SAMPLE_RECORDS {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) if rec.len() == layout.n_fields => out.push(rec.clone()),
            Ok(true) | Err(_) => continue,
            Ok(false) => break,
        }
    }
    out
}

/// Declared categorical columns are categorical; any other retained column is
/// categorical when its sample holds at least as much text as numbers.
fn infer_types(
    layout: &mut Layout,
    header: &[String],
    sample: &[csv::ByteRecord],
    opts: &IngestOptions,
) {
    let declared: HashSet<&str> = layout
        .format
        .categorical_columns()
        .iter()
        .copied()
        .chain(opts.categorical.iter().map(String::as_str))
        .collect();
    for (i, plan) in layout.plans.iter_mut().enumerate() {
        let Plan::Numeric(out) = *plan else { continue };
        if opts.numeric.iter().any(|n| *n == header[i]) {
            continue;
        }
        let categorical = declared.contains(header[i].as_str()) || {
            let (mut text, mut num) = (0usize, 0usize);
            for r in sample {
                match value::parse_cell(&r[i]) {
                    Cell::Text => text += 1,
                    Cell::Number(_) => num += 1,
                    _ => {}
                }
            }
            text > 0 && text >= num
        };
        if categorical {
            *plan = Plan::Categorical(out);
        }
    }
}

fn profile_columns(
    header: &[String],
    layout: &Layout,
    sample: &[csv::ByteRecord],
    opts: &IngestOptions,
) -> Vec<ColumnProfile> {
    let label = layout.label_idx.map_or("", |i| header[i].as_str());
    header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut p = ColumnProfile {
                name: name.clone(),
                dropped: drop_reason(layout.format, name, label, opts),
                ..ColumnProfile::default()
            };
            let mut distinct = HashSet::new();
            for r in sample {
                let f = &r[i];
                if matches!(value::parse_cell(f), Cell::Absent(_)) {
                    continue;
                }
                p.sampled += 1;
                p.address_like += u64::from(value::looks_like_address(f));
                p.datetime_like += u64::from(value::looks_like_datetime(f));
                distinct.insert(xxh3_64(f));
            }
            p.distinct = distinct.len() as u64;
            p
        })
        .collect()
}

fn worker(layout: &Layout, rx: &Mutex<Receiver<Block>>, tx: &SyncSender<Parsed>) {
    loop {
        let block = {
            let Ok(rx) = rx.lock() else { return };
            match rx.recv() {
                Ok(b) => b,
                Err(_) => return,
            }
        };
        let parsed = parse_block(layout, &block);
        if tx.send(parsed).is_err() {
            return;
        }
    }
}

fn parse_block(layout: &Layout, block: &Block) -> Parsed {
    let mut out = Parsed {
        seq: block.seq,
        columns: layout
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
                _ => None,
            })
            .collect(),
        ..Parsed::default()
    };
    let mut stats: Vec<LocalStats> = (0..layout.n_out)
        .map(|_| LocalStats {
            text: 0,
            missing: 0,
            spellings: Vec::new(),
        })
        .collect();
    let mut class_index: HashMap<String, u32> = HashMap::default();
    let mut label_cache: HashMap<Vec<u8>, u32> = HashMap::default();
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(layout.delimiter)
        .from_reader(&block.bytes[..]);
    let mut rec = csv::ByteRecord::new();
    let mut key = Vec::with_capacity(128);
    let mut lines = LineCounter::new(&block.bytes, block.first_line);
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Err(e) => {
                out.rows_read += 1;
                let line = lines.line_at(e.position().map_or(0, csv::Position::byte));
                out.rejects.push((
                    Reject {
                        line,
                        reason: format!("unreadable CSV: {e}"),
                    },
                    String::new(),
                ));
                continue;
            }
            Ok(true) => {}
        }
        out.rows_read += 1;
        let line = lines.line_at(rec.position().map_or(0, csv::Position::byte));
        if rec.len() != layout.n_fields {
            if rec.len() == 1 && rec[0].trim_ascii().is_empty() {
                out.rows_read -= 1; // a blank line is not a record
                continue;
            }
            out.rejects.push((
                Reject {
                    line,
                    reason: format!("expected {} fields, found {}", layout.n_fields, rec.len()),
                },
                raw_record(&rec, layout.delimiter),
            ));
            continue;
        }
        // Labels repeat: map raw label bytes to a class once per block.
        let raw: &[u8] = match layout.label_idx {
            Some(i) => &rec[i],
            None => UNLABELLED.as_bytes(),
        };
        let class_id = match label_cache.get(raw) {
            Some(&id) => id,
            None => {
                let raw_label = String::from_utf8_lossy(raw);
                let class = match layout.label_idx {
                    None => Some(UNLABELLED.to_string()),
                    Some(_) => schema::canonical_label(layout.format, &raw_label),
                };
                let Some(class) = class else {
                    out.rejects.push((
                        Reject {
                            line,
                            reason: format!(
                                "unusable label `{}` in column {}",
                                raw_label.trim(),
                                layout.label_idx.map_or(0, |i| i + 1)
                            ),
                        },
                        raw_record(&rec, layout.delimiter),
                    ));
                    continue;
                };
                let next_id = class_index.len() as u32;
                let id = *class_index.entry(class.clone()).or_insert_with(|| {
                    out.classes.push(class);
                    next_id
                });
                label_cache.insert(raw.to_vec(), id);
                id
            }
        };
        out.labels.push(class_id);
        out.lines.push(line);

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
            let st = &mut stats[o];
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
            match &mut out.columns[col] {
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
        out.hashes.push(xxh3_128(rec.as_slice()) ^ u128::from(ends));
        if let Some(t) = &layout.timing {
            if out.time_problems.column.is_empty() {
                out.time_problems.column.clone_from(&t.column);
            }
            let raw = &rec[t.time_idx];
            let stamp = timing::parse_time(raw);
            if stamp.is_none() {
                out.time_problems.unparsed_at(line, raw);
            }
            out.times.push(stamp);
            if let Some(f) = &layout.flow {
                out.hosts.push(host_pair_key(&rec, f, &mut key));
            }
        }
        if let Some(f) = &layout.flow {
            out.flows.push(flow_key(&rec, f, &mut key));
            out.src_hosts.push(host_key(&rec, f));
        }
    }
    out.stats = stats;
    out
}

/// Physical line numbers of records in a block.
///
/// The `csv` crate reports a record's position at the end of the previous
/// record's terminator (the `\n` of a CRLF, before skipped blank lines), so the
/// true start is the first byte at or after it that is not `\r` or `\n`.
struct LineCounter<'a> {
    bytes: &'a [u8],
    scanned: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(bytes: &'a [u8], first_line: u64) -> Self {
        LineCounter {
            bytes,
            scanned: 0,
            line: first_line,
        }
    }

    /// The line of the record reported at byte `pos` (positions must not decrease).
    fn line_at(&mut self, pos: u64) -> u64 {
        let mut start = (pos as usize).max(self.scanned).min(self.bytes.len());
        while start < self.bytes.len() && matches!(self.bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        self.line += memchr::memchr_iter(b'\n', &self.bytes[self.scanned..start]).count() as u64;
        self.scanned = start;
        self.line
    }
}

fn raw_record(rec: &csv::ByteRecord, delimiter: u8) -> String {
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

/// Appends parsed blocks into the final table, unifying dictionaries.
struct Merger {
    ds: Dataset,
    class_index: HashMap<String, u32>,
    level_index: Vec<HashMap<String, u32>>,
    flow_index: HashMap<u64, u32>,
    host_index: HashMap<u64, u32>,
    /// Host id of each flow id: the source host of the flow's first record.
    flow_host: Vec<u32>,
    /// With the timing features: per-flow state, and the indices in `ds.columns` of the
    /// kept derived columns (inter-arrival time, index in flow).
    clock: FlowClock,
    derived: [Option<usize>; 3],
    host_clock: FlowClock,
}

impl Merger {
    fn new(
        path: &Path,
        header: &[String],
        layout: &Layout,
        profiles: Vec<ColumnProfile>,
        bytes: u64,
    ) -> Self {
        let columns: Vec<Column> = layout
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
                    _ => return None,
                };
                Some(Column {
                    name: header[i].clone(),
                    data,
                    text_cells: 0,
                    missing_cells: 0,
                    spellings: Vec::new(),
                })
            })
            .collect();
        let mut columns = columns;
        let mut derived = [None; 3];
        if let Some(t) = &layout.timing {
            for (slot, (name, keep)) in derived
                .iter_mut()
                .zip(timing::DERIVED_COLUMNS.iter().zip(t.keep))
            {
                if keep {
                    *slot = Some(columns.len());
                    columns.push(Column {
                        name: (*name).to_string(),
                        data: ColumnData::Numeric(Vec::new()),
                        text_cells: 0,
                        missing_cells: 0,
                        spellings: Vec::new(),
                    });
                }
            }
        }
        let timing_report = layout.timing.as_ref().map(|t| TimingReport {
            column: t.column.clone(),
            ..TimingReport::default()
        });
        let n = columns.len();
        Merger {
            ds: Dataset {
                path: path.into(),
                format: layout.format,
                label_column: layout
                    .label_idx
                    .map_or_else(String::new, |i| header[i].clone()),
                columns,
                classes: Vec::new(),
                labels: Vec::new(),
                flows: layout.flow.as_ref().map(|_| Vec::new()),
                hosts: layout.flow.as_ref().map(|_| Vec::new()),
                lines: Vec::new(),
                row_hashes: Vec::new(),
                report: IngestReport {
                    bytes,
                    profiles,
                    timing: timing_report,
                    ..IngestReport::default()
                },
            },
            class_index: HashMap::default(),
            level_index: vec![HashMap::default(); n],
            flow_index: HashMap::default(),
            host_index: HashMap::default(),
            flow_host: Vec::new(),
            clock: FlowClock::default(),
            derived,
            host_clock: FlowClock::default(),
        }
    }

    fn append(
        &mut self,
        p: Parsed,
        rejects_out: &mut Option<(PathBuf, csv::Writer<BufWriter<File>>)>,
    ) -> Result<()> {
        let ds = &mut self.ds;
        ds.report.rows_read += p.rows_read;
        ds.report.rows_rejected += p.rejects.len() as u64;
        for (r, raw) in p.rejects {
            if let Some((path, w)) = rejects_out {
                w.write_record([r.line.to_string().as_str(), r.reason.as_str(), raw.as_str()])
                    .map_err(|e| Error::io(path.as_path(), e.into()))?;
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
                let (host_iat, _) = self.host_clock.next(hosts, stamp, &mut host_report);
                derived[0].push(iat);
                derived[1].push(index);
                derived[2].push(host_iat);
            }
            report.host_backwards += host_report.backwards;
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
                _ => unreachable!("column kinds are fixed by the layout"),
            }
        }
        Ok(())
    }

    /// The rows appended since the last batch, as a table; dictionaries, class and
    /// flow ids carry on into the next batch.
    fn take_batch(&mut self) -> Dataset {
        let n_classes = self.ds.classes.len();
        let ds = &mut self.ds;
        ds.report.rows_kept += ds.labels.len() as u64;
        ds.report.flows = ds.flows.as_ref().map(|_| self.flow_index.len() as u64);
        let columns = ds
            .columns
            .iter_mut()
            .map(|c| Column {
                name: c.name.clone(),
                data: match &mut c.data {
                    ColumnData::Numeric(v) => ColumnData::Numeric(std::mem::take(v)),
                    ColumnData::Categorical { codes, levels } => ColumnData::Categorical {
                        codes: std::mem::take(codes),
                        levels: levels.clone(),
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
        Dataset {
            path: ds.path.clone(),
            format: ds.format,
            label_column: ds.label_column.clone(),
            columns,
            classes: ds.classes.clone(),
            labels: std::mem::take(&mut ds.labels),
            flows: ds.flows.as_mut().map(std::mem::take),
            hosts: ds.hosts.as_mut().map(std::mem::take),
            lines: std::mem::take(&mut ds.lines),
            row_hashes: std::mem::take(&mut ds.row_hashes),
            report: ds.report.clone(),
        }
    }

    fn report(&self) -> IngestReport {
        self.ds.report.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_end_respects_quotes() {
        assert_eq!(last_record_end(b"a,b\nc,d\n", b','), Some(8));
        assert_eq!(last_record_end(b"a,b\nc,d", b','), Some(4));
        // A newline inside a quoted field is not a record end.
        assert_eq!(last_record_end(b"a,\"x\ny\"\nc", b','), Some(8));
        assert_eq!(last_record_end(b"a,\"x\ny", b','), None);
        // Doubled quotes stay inside the field.
        assert_eq!(last_record_end(b"\"a\"\"\n\"\nb", b','), Some(7));
        // A quote in the middle of an unquoted field is a literal character.
        assert_eq!(last_record_end(b"ab\"c,d\ne", b','), Some(7));
        // CRLF: the record ends after the LF.
        assert_eq!(last_record_end(b"a,b\r\nc", b','), Some(5));
    }

    #[test]
    fn delimiter_from_header() {
        assert_eq!(detect_delimiter(b"a\tb\tc\r\n"), b'\t');
        assert_eq!(detect_delimiter(b"a,b,c\n"), b',');
        assert_eq!(detect_delimiter(b"a;b;c\n"), b';');
    }
}
