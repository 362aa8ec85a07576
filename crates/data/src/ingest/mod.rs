//! Reading labelled traffic records into a [`Dataset`](crate::Dataset): a CSV file,
//! standard input or any reader in parallel and in bounded memory, or records of any
//! other source through [`DatasetBuilder`].
//!
//! One stage per module, in the order a record meets them:
//!
//! - `plan.rs`: from the header alone, what each column becomes: the
//!   label, a feature, or dropped and why; the flow-key and time columns.
//! - `infer.rs`: the first records decide which features are categorical, and profile
//!   every column for `audit`.
//! - `parse.rs`: one record into a chunk of typed columns: numbers, dictionary codes,
//!   the class, flow and host keys, the time. The only per-record conversion.
//! - `merge.rs`: chunks appended in record order: dictionaries unified, flow and host
//!   ids, the timing features, rejects counted.
//! - `builder.rs`: [`DatasetBuilder`], the seam over those four that any record source
//!   feeds: the place to add one (a packet capture).
//! - `blocks.rs` and `read.rs`: the CSV client. One thread cuts the bytes into blocks at
//!   record boundaries, worker threads parse them into chunks, the calling thread hands
//!   the chunks to the builder in order.
//!
//! Bad rows never panic and never vanish: a record with the wrong number of fields
//! or an unusable label is counted, the first few are kept for display with their
//! line and reason, and all of them go to the rejects file when one is asked for.

mod blocks;
mod builder;
mod infer;
mod merge;
mod parse;
mod plan;
mod read;

use std::path::PathBuf;
use std::sync::Arc;

use crate::schema::Format;

pub use builder::DatasetBuilder;
pub use merge::BuilderHeld;
pub use read::{
    STDIN_NAME, STDIN_PATH, read_csv, read_csv_batches, read_csv_batches_from, read_csv_from,
};

/// Whether to derive the timing features ([`IngestOptions::flow_timing`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FlowTiming {
    /// Never.
    #[default]
    Off,
    /// When the file has a time column and flows (and no column of a derived feature's
    /// name); silently without them otherwise. [`crate::table::Dataset`]'s report says
    /// which happened.
    Auto,
    /// Always: a file without a time column or flows is an error.
    On,
}

impl From<bool> for FlowTiming {
    fn from(on: bool) -> Self {
        if on { FlowTiming::On } else { FlowTiming::Off }
    }
}

/// How many rejects are kept in memory for display.
const SHOWN_REJECTS: usize = 20;
/// The class of every row of a file read without its label column.
pub const UNLABELLED: &str = "(unlabelled)";

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
    /// time column and flows (endpoint columns). [`FlowTiming::Auto`] adds them when the
    /// file allows; [`FlowTiming::Off`] by default here (the command line's learning
    /// commands ask for `Auto`).
    pub flow_timing: FlowTiming,
    /// With the timing features, count a flow's earlier packets (`flow.index`) up to this
    /// many ([`crate::timing::capped_index`]); `None` (the default here): uncapped. The
    /// command line asks for [`crate::timing::DEFAULT_INDEX_CAP`].
    pub flow_index_cap: Option<u32>,
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
    /// With the timing features, also keep what they were computed from
    /// ([`crate::Dataset::timing_source`], 24 bytes a row), so some of the rows can be
    /// timed again on their own ([`crate::Dataset::retime`]; `federate` does, for each
    /// node's table).
    pub keep_timing_source: bool,
}

impl std::fmt::Debug for IngestOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestOptions")
            .field("format", &self.format)
            .field("label", &self.label)
            .field("drop", &self.drop)
            .field("keep", &self.keep)
            .field("flow_timing", &self.flow_timing)
            .field("flow_index_cap", &self.flow_index_cap)
            .field("threads", &self.threads)
            .finish_non_exhaustive()
    }
}
