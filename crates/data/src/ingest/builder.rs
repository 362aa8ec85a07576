//! The record-source seam: [`DatasetBuilder`] turns records from any source into a
//! [`Dataset`].
//!
//! Everything that makes a table more than its fields lives behind it: the column plan
//! (label, features, what is dropped and why), column kinds inferred from the first
//! records, the class and level dictionaries, flow and host ids, the timing features and
//! the counted rejects. The CSV reader is one client (its worker threads fill chunks with
//! the same per-record conversion and hand them over in order); a packet reader is
//! another: it produces the Edge-IIoTset/tshark packet fields of each packet and gets
//! flows, hosts and `flow_timing` for free.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::schema::Format;
use crate::table::{Dataset, IngestReport};

use super::IngestOptions;
use super::infer::{SAMPLE_RECORDS, infer_types, profile_columns};
use super::merge::Merger;
use super::parse::Chunk;
use super::plan::{Layout, plan_columns};

/// Records converted before they are appended to the table, for sources fed record by
/// record: large enough that appending costs little per record.
const CHUNK_RECORDS: u64 = 8192;

/// Builds a [`Dataset`] from records of any source, fed one by one (or batch by batch)
/// in source order.
///
/// Made from the header (column names) and the same [`IngestOptions`] as a CSV file, it
/// plans the columns by the same rules: the layout is detected from the names unless
/// given, the label is the layout's label column unless given, identifier columns are
/// dropped, `flow_timing` adds the per-flow timing features. A feature's kind (numeric or
/// categorical) is inferred from the first records exactly as for a CSV file, so those
/// are buffered first ([`DatasetBuilder::with_sample_size`]); columns named in
/// `categorical` or `numeric` have the kind given. Options about reading bytes
/// (`threads`, `block_size`, `progress`) do not apply; `rejects_path` does.
///
/// Each record carries its line (or packet) number, which rejects and
/// [`Dataset::lines`] report. A record with the wrong number of fields or an unusable
/// label is counted as rejected, never dropped silently; a source can count its own bad
/// records with [`DatasetBuilder::reject`].
///
/// ```
/// use iotids_data::ingest::{DatasetBuilder, IngestOptions};
///
/// let opts = IngestOptions { label: Some("label".into()), ..IngestOptions::default() };
/// let mut b = DatasetBuilder::new("capture", &["src_ip", "dst_ip", "size", "label"], &opts)?;
/// b.push(2, ["10.0.0.1", "10.0.0.2", "60", "normal"])?;
/// b.push(3, ["10.0.0.2", "10.0.0.1", "1500", "normal"])?;
/// b.push(4, ["10.0.0.3", "10.0.0.2", "60"])?; // one field short: rejected
/// let ds = b.finish()?;
/// assert_eq!(ds.n_rows(), 2);
/// assert_eq!(ds.flows.as_deref(), Some(&[0, 0][..]), "one flow, both directions");
/// assert_eq!(ds.report.rows_rejected, 1);
/// assert_eq!(ds.report.first_rejects[0].line, 4);
/// # Ok::<(), iotids_data::Error>(())
/// ```
pub struct DatasetBuilder {
    source: PathBuf,
    header: Vec<String>,
    opts: IngestOptions,
    layout: Layout,
    /// Records held back until the column kinds are inferred; `None` once they are.
    sample: Option<Sample>,
    chunk: Chunk,
    merger: Merger,
    /// Scratch for [`DatasetBuilder::push`].
    record: csv::ByteRecord,
    /// A batch has been taken.
    delivered: bool,
}

impl std::fmt::Debug for DatasetBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatasetBuilder")
            .field("source", &self.source)
            .field("format", &self.layout.format)
            .field("columns", &self.header.len())
            .field("sampling", &self.sample.is_some())
            .field("rows", &self.pending_rows())
            .finish_non_exhaustive()
    }
}

/// The first records, buffered while the column kinds are unknown.
#[derive(Debug)]
struct Sample {
    /// Well-formed records to look at.
    target: usize,
    well_formed: usize,
    records: Vec<Pending>,
}

/// A buffered record or reject, in source order.
#[derive(Debug)]
enum Pending {
    Record {
        record: csv::ByteRecord,
        line: u64,
    },
    Reject {
        line: u64,
        reason: String,
        record: String,
    },
}

impl DatasetBuilder {
    /// A builder for records with the fields `header` (names are trimmed), read the way
    /// `opts` says. `source` names the records in messages and in [`Dataset::path`].
    ///
    /// # Errors
    /// An empty header; no label column (unless `label_optional`); a layout that cannot
    /// be recognised without a label; a `drop`, `keep` or `categorical` name that is not
    /// in the header; `flow_timing` without a time column or flows; a rejects file that
    /// cannot be created.
    pub fn new<S: AsRef<str>>(
        source: impl Into<PathBuf>,
        header: &[S],
        opts: &IngestOptions,
    ) -> Result<Self> {
        let header = header
            .iter()
            .map(|h| h.as_ref().trim().to_string())
            .collect();
        Self::planned(source.into(), header, b',', opts)
    }

    /// As [`DatasetBuilder::new`], with the header already trimmed and the delimiter
    /// rejected records are shown with.
    pub(super) fn planned(
        source: PathBuf,
        header: Vec<String>,
        delimiter: u8,
        opts: &IngestOptions,
    ) -> Result<Self> {
        if header.is_empty() {
            return Err(Error::Empty { path: source });
        }
        let layout = plan_columns(&source, &header, delimiter, opts)?;
        let mut merger = Merger::new(&source, &header, &layout, 0, opts.rejects_path.as_deref())?;
        merger.keep_timing_source = opts.keep_timing_source;
        let chunk = Chunk::new(&layout, 0);
        Ok(DatasetBuilder {
            source,
            header,
            opts: opts.clone(),
            layout,
            sample: Some(Sample {
                target: SAMPLE_RECORDS,
                well_formed: 0,
                records: Vec::new(),
            }),
            chunk,
            merger,
            record: csv::ByteRecord::new(),
            delivered: false,
        })
    }

    /// Infers the column kinds from the first `records` well-formed records instead of
    /// 5,000 (the CSV reader's sample). With 0 nothing is buffered: declared categorical
    /// columns are categorical and every other feature numeric. The column profiles that
    /// `audit` reads come from the same sample. Has no effect once records were
    /// converted.
    #[must_use]
    pub fn with_sample_size(mut self, records: usize) -> Self {
        if let Some(s) = &mut self.sample {
            s.target = records;
        }
        self
    }

    /// Bounds what the builder keeps across batches for an endless stream (online
    /// detection): see [`DatasetBuilder::forget_flows`]. Categorical dictionaries start
    /// afresh at a batch boundary past `max_levels` values; host pairs' timing state is
    /// kept for the `max_hosts` most recently seen; host ids are all 0. The rows of every
    /// batch are what an unbounded builder gives, except for a flow or host pair
    /// forgotten and seen again (its timing starts afresh).
    #[must_use]
    pub fn streaming(mut self, max_levels: usize, max_hosts: usize) -> Self {
        self.merger
            .set_streaming(super::merge::Streaming::new(max_levels, max_hosts));
        self
    }

    /// Forgets `flows` (ids of earlier batches; only a [`DatasetBuilder::streaming`]
    /// builder does): their ids and timing state. A later record of one of them gets a
    /// new id, and its timing features start as a flow's first.
    pub fn forget_flows(&mut self, flows: &[u32]) {
        self.merger.forget_flows(flows);
    }

    /// The host-pair ids a [`DatasetBuilder::streaming`] builder forgot (past its bound
    /// of host pairs, the least recently seen) since the last call: a window carried for
    /// one of them is stale, and the pair's next record has a new id.
    pub fn take_forgotten_host_pairs(&mut self) -> Vec<u32> {
        self.merger.take_forgotten_host_pairs()
    }

    /// What the builder holds across batches now.
    pub fn held(&self) -> super::merge::BuilderHeld {
        self.merger.held()
    }

    /// The layout the header was recognised as (or the one forced in the options).
    pub fn format(&self) -> Format {
        self.layout.format
    }

    /// The column names, trimmed, in order.
    pub fn header(&self) -> &[String] {
        &self.header
    }

    /// Adds the record that starts at line (or packet number) `line`, its fields in
    /// header order. A blank record (one empty field) is skipped, as a blank line of a
    /// CSV file is.
    ///
    /// # Errors
    /// Only writing the rejects file.
    pub fn push<F: AsRef<[u8]>>(
        &mut self,
        line: u64,
        fields: impl IntoIterator<Item = F>,
    ) -> Result<()> {
        self.record.clear();
        for f in fields {
            self.record.push_field(f.as_ref());
        }
        if self
            .sample
            .as_ref()
            .is_some_and(|s| s.well_formed >= s.target)
        {
            self.start()?;
        }
        if let Some(s) = &mut self.sample {
            s.well_formed += usize::from(self.record.len() == self.layout.n_fields);
            s.records.push(Pending::Record {
                record: self.record.clone(),
                line,
            });
            return Ok(());
        }
        self.chunk.push(&self.layout, &self.record, line);
        self.flush_if_full()
    }

    /// Adds records in order, each with its line: a batch from a source that reads
    /// several at a time.
    ///
    /// # Errors
    /// As [`DatasetBuilder::push`].
    pub fn extend<R, F>(&mut self, records: impl IntoIterator<Item = (u64, R)>) -> Result<()>
    where
        R: IntoIterator<Item = F>,
        F: AsRef<[u8]>,
    {
        for (line, fields) in records {
            self.push(line, fields)?;
        }
        Ok(())
    }

    /// Counts a record the source could not turn into fields (a truncated packet, an
    /// undecodable line) as rejected at `line`, with the reason and, for the rejects
    /// file, the record as text (may be empty).
    ///
    /// # Errors
    /// Only writing the rejects file.
    pub fn reject(
        &mut self,
        line: u64,
        reason: impl Into<String>,
        record: impl Into<String>,
    ) -> Result<()> {
        let (reason, record) = (reason.into(), record.into());
        if let Some(s) = &mut self.sample {
            s.records.push(Pending::Reject {
                line,
                reason,
                record,
            });
            return Ok(());
        }
        self.chunk.reject(line, reason, record);
        self.flush_if_full()
    }

    /// Counts `n` more bytes of the source in [`IngestReport::bytes`].
    pub fn add_bytes(&mut self, n: u64) {
        self.merger.ds.report.bytes += n;
    }

    /// Rows added since the last batch (records still buffered for the sample count
    /// when well-formed), to decide when to take the next one.
    pub fn pending_rows(&self) -> usize {
        self.merger.rows() + self.chunk.rows() + self.sample.as_ref().map_or(0, |s| s.well_formed)
    }

    /// The rows added since the last batch, as a table. Class ids, category codes, flow
    /// and host ids and the timing features carry on into the next batch, so batches
    /// concatenated equal one table read whole; each batch's report holds the counts so
    /// far.
    ///
    /// # Errors
    /// Only writing the rejects file.
    pub fn take_batch(&mut self) -> Result<Dataset> {
        self.start()?;
        self.flush_chunk()?;
        self.delivered = true;
        Ok(self.merger.take_batch())
    }

    /// The table: every row added (or, after [`DatasetBuilder::take_batch`], the rows
    /// since the last batch), with the report of all records.
    ///
    /// # Errors
    /// [`Error::NoRows`] when no record was kept at all; writing the rejects file.
    pub fn finish(mut self) -> Result<Dataset> {
        let last = self.finish_batch()?;
        log_ingested(&self.source, &last.report);
        Ok(last)
    }

    /// [`DatasetBuilder::finish`] without the log line, for a reader that still has to
    /// hand the last batch on.
    pub(super) fn finish_batch(&mut self) -> Result<Dataset> {
        self.start()?;
        self.flush_chunk()?;
        let last = self.merger.take_batch();
        if last.n_rows() == 0 && !self.delivered {
            return Err(Error::NoRows {
                path: self.source.clone(),
                rejected: last.report.rows_rejected,
            });
        }
        self.merger.flush()?;
        Ok(last)
    }

    /// The plan, with the column kinds fixed once [`DatasetBuilder::start_with_sample`]
    /// ran (the CSV reader's workers convert with a copy of it).
    pub(super) fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Fixes the column kinds from `sample` (the CSV reader's first block) instead of
    /// buffering records.
    pub(super) fn start_with_sample(&mut self, sample: &[csv::ByteRecord]) -> Result<()> {
        let pending = self.sample.take().map(|s| s.records).unwrap_or_default();
        let refs: Vec<&csv::ByteRecord> = sample.iter().collect();
        self.fix_kinds(&refs);
        self.replay(pending)
    }

    /// Appends a chunk converted elsewhere (a CSV worker), the next in source order.
    pub(super) fn append_chunk(&mut self, chunk: Chunk) -> Result<()> {
        self.start()?;
        self.flush_chunk()?;
        self.merger.append(chunk)
    }

    /// Sets [`IngestReport::bytes`] (the source's size or how far it was read).
    pub(super) fn set_bytes(&mut self, n: u64) {
        self.merger.ds.report.bytes = n;
    }

    /// Ends sampling, if it has not ended: the kinds from the buffered records, which are
    /// then converted.
    fn start(&mut self) -> Result<()> {
        let Some(sample) = self.sample.take() else {
            return Ok(());
        };
        {
            let n = self.layout.n_fields;
            let refs: Vec<&csv::ByteRecord> = sample
                .records
                .iter()
                .filter_map(|p| match p {
                    Pending::Record { record, .. } if record.len() == n => Some(record),
                    _ => None,
                })
                .collect();
            self.fix_kinds(&refs);
        }
        self.replay(sample.records)
    }

    fn fix_kinds(&mut self, sample: &[&csv::ByteRecord]) {
        infer_types(&mut self.layout, &self.header, sample, &self.opts);
        let profiles = profile_columns(&self.header, &self.layout, sample, &self.opts);
        self.merger.set_kinds(&self.header, &self.layout, profiles);
        self.chunk = Chunk::new(&self.layout, self.chunk.seq);
    }

    fn replay(&mut self, pending: Vec<Pending>) -> Result<()> {
        for p in pending {
            match p {
                Pending::Record { record, line } => self.chunk.push(&self.layout, &record, line),
                Pending::Reject {
                    line,
                    reason,
                    record,
                } => self.chunk.reject(line, reason, record),
            }
            self.flush_if_full()?;
        }
        Ok(())
    }

    fn flush_if_full(&mut self) -> Result<()> {
        if self.chunk.records() >= CHUNK_RECORDS {
            self.flush_chunk()?;
        }
        Ok(())
    }

    /// Appends the current chunk (when it holds anything) and starts the next.
    fn flush_chunk(&mut self) -> Result<()> {
        if self.chunk.records() == 0 {
            return Ok(());
        }
        let next = Chunk::new(&self.layout, self.chunk.seq + 1);
        let full = std::mem::replace(&mut self.chunk, next);
        self.merger.append(full)
    }
}

/// Logs what a finished read kept and rejected, and the unreadable times of the timing
/// features.
pub(super) fn log_ingested(source: &Path, report: &IngestReport) {
    if let Some(t) = report.timing.as_ref().filter(|t| t.unparsed > 0) {
        let first = t.first_problems.first();
        tracing::warn!(
            "{}: {} of {} rows have an unreadable `{}` (inter-arrival time missing, imputed); first at line {}: {}",
            source.display(),
            t.unparsed,
            t.unparsed + t.parsed,
            t.column,
            first.map_or(0, |p| p.line),
            first.map_or("", |p| p.reason.as_str())
        );
    }
    tracing::info!(
        path = %source.display(),
        rows = report.rows_kept,
        rejected = report.rows_rejected,
        "ingested"
    );
}
