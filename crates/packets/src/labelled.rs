//! Labelled captures as a table: a directory whose subfolders are classes (the layout of
//! MQTTset's captures), or a TOML manifest mapping files or globs to classes, read into a
//! [`Dataset`] through the record-source seam ([`DatasetBuilder`]), so the column plan,
//! flows, timing features, rejects and everything downstream are the ones a CSV file of
//! the same rows gets.
//!
//! Each packet becomes the row [`Extractor`] gives (the 61 columns of
//! `tshark-fields.sh`) plus its class in a `label` column, as in MQTTset's CSV. Captures
//! are read one after another in order (classes by name, files by name within a class;
//! a manifest's entries in its order, a glob's files by name), each with a fresh
//! [`Extractor`], as `tshark-fields.sh` on each file concatenated would give. A packet's
//! row number (what `split.json` and `predictions.csv` call its line) is its place in that
//! sequence, from 1.
//!
//! A manifest (paths relative to its folder):
//!
//! ```toml
//! [[capture]]
//! path = "benign/*.pcap"          # a file or a glob
//! class = "benign"
//!
//! [[capture]]
//! path = "attack.pcapng"
//! class = "scan"
//! filter = "tcp[tcpflags] & tcp-syn != 0"   # optional: a BPF expression (libpcap)
//! start = "2020-06-12T09:40:00Z"            # optional: RFC 3339, or seconds since 1970
//! end = "2020-06-12T09:45:00Z"              # optional, exclusive
//! ```
//!
//! A packet a filter or time range leaves out is counted, not read: the capture is read
//! as if it had been recorded with that filter over that time (packets are numbered
//! among those kept, as `tcpdump -w` or `editcap` would write them).

use std::path::{Path, PathBuf};

use iotids_data::{Dataset, DatasetBuilder, IngestOptions};

use crate::bpf::Filter;
use crate::extract::{COLUMNS, Extractor};
use crate::reader::{CaptureReader, ReadError};

/// The label column of a labelled capture's rows (MQTTset's CSV name).
pub const LABEL: &str = "label";

/// Why labelled captures could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    #[error("{}: {reason}", path.display())]
    Layout { path: PathBuf, reason: String },
    #[error("{}: capture {entry} ({pattern}): {reason}", path.display())]
    Entry {
        path: PathBuf,
        entry: usize,
        pattern: String,
        reason: String,
    },
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Data(#[from] iotids_data::Error),
}

/// One class's captures, with what to keep of them.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub class: String,
    pub files: Vec<PathBuf>,
    /// A BPF expression.
    pub filter: Option<String>,
    /// Keep packets at or after this time (seconds, nanoseconds since 1970).
    pub start: Option<(i64, u32)>,
    /// Keep packets before this time.
    pub end: Option<(i64, u32)>,
}

/// What was read of one capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileCount {
    pub path: PathBuf,
    pub class: String,
    pub packets: u64,
    /// Packets kept (read into rows).
    pub kept: u64,
    /// Left out by the BPF filter.
    pub filtered: u64,
    /// Left out by the time range.
    pub outside_time: u64,
    /// Packets not read whole (counted by the extractor; their rows are kept, empty past
    /// the cut, as tshark writes them).
    pub problems: u64,
}

/// What [`Labelled::walk`] tells of, in order.
#[derive(Debug)]
pub enum Walk<'a, 'p> {
    /// The next capture file, of `class`.
    File { path: &'a Path, class: &'a str },
    /// A packet of it, kept.
    Packet(&'a crate::reader::Packet<'p>),
}

/// Labelled captures: a directory of class folders or a manifest.
#[derive(Debug, Clone, PartialEq)]
pub struct Labelled {
    pub source: PathBuf,
    pub entries: Vec<Entry>,
}

/// Whether `path` names labelled captures rather than a CSV file: a directory, or a
/// `.toml` manifest.
pub fn is_labelled_captures(path: &Path) -> bool {
    path.is_dir()
        || path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("toml"))
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    capture: Vec<ManifestEntry>,
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestEntry {
    path: String,
    class: String,
    filter: Option<String>,
    start: Option<toml::Value>,
    end: Option<toml::Value>,
}

fn hidden(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'))
}

/// Files under `dir` (any depth), by path, hidden ones left out.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let layout = |reason: String| SourceError::Layout {
        path: dir.to_path_buf(),
        reason,
    };
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| layout(format!("cannot list: {e}")))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(|e| layout(format!("cannot list: {e}")))?;
    entries.sort();
    for p in entries {
        if hidden(&p) {
            continue;
        }
        if p.is_dir() {
            out.extend(files_under(&p)?);
        } else {
            out.push(p);
        }
    }
    Ok(out)
}

/// A time bound: RFC 3339 text or seconds since 1970.
fn time_bound(v: &toml::Value) -> Result<(i64, u32), String> {
    match v {
        toml::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| (t.timestamp(), t.timestamp_subsec_nanos()))
            .map_err(|e| format!("`{s}` is not an RFC 3339 time ({e})")),
        toml::Value::Integer(i) => Ok((*i, 0)),
        toml::Value::Float(f) if f.is_finite() => {
            let s = f.floor();
            Ok((s as i64, ((f - s) * 1e9) as u32))
        }
        toml::Value::Datetime(d) => time_bound(&toml::Value::String(d.to_string())),
        other => Err(format!(
            "`{other}` is neither an RFC 3339 time nor seconds since 1970"
        )),
    }
}

impl Labelled {
    /// Reads the layout at `path`: a directory (each subfolder a class, its files at any
    /// depth that class's captures) or a TOML manifest.
    ///
    /// # Errors
    ///
    /// A directory without class folders, a class folder without files, a manifest that
    /// is not valid (its key named), a glob that matches nothing, a filter libpcap cannot
    /// compile, a time that cannot be read.
    pub fn open(path: &Path) -> Result<Labelled, SourceError> {
        let layout = |reason: String| SourceError::Layout {
            path: path.to_path_buf(),
            reason,
        };
        if path.is_dir() {
            let mut classes: Vec<PathBuf> = std::fs::read_dir(path)
                .map_err(|e| layout(format!("cannot list: {e}")))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_dir() && !hidden(p))
                .collect();
            classes.sort();
            if classes.is_empty() {
                return Err(layout(
                    "no class folders: labelled captures are a folder per class, the class's captures inside".into(),
                ));
            }
            let mut entries = Vec::new();
            for dir in classes {
                let files = files_under(&dir)?;
                let class = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if files.is_empty() {
                    return Err(SourceError::Layout {
                        path: dir,
                        reason: "a class folder without captures".into(),
                    });
                }
                entries.push(Entry {
                    class,
                    files,
                    filter: None,
                    start: None,
                    end: None,
                });
            }
            return Ok(Labelled {
                source: path.to_path_buf(),
                entries,
            });
        }
        let text =
            std::fs::read_to_string(path).map_err(|e| layout(format!("cannot read: {e}")))?;
        let manifest: Manifest =
            toml::from_str(&text).map_err(|e| layout(format!("not a capture manifest: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut entries = Vec::new();
        for (i, e) in manifest.capture.into_iter().enumerate() {
            let entry_error = |reason: String| SourceError::Entry {
                path: path.to_path_buf(),
                entry: i + 1,
                pattern: e.path.clone(),
                reason,
            };
            if e.class.trim().is_empty() {
                return Err(entry_error("`class` is empty".into()));
            }
            let full = if Path::new(&e.path).is_absolute() {
                PathBuf::from(&e.path)
            } else {
                base.join(&e.path)
            };
            let pattern = full.to_string_lossy().into_owned();
            let mut files: Vec<PathBuf> = glob::glob(&pattern)
                .map_err(|g| entry_error(format!("not a glob: {g}")))?
                .filter_map(Result::ok)
                .filter(|p| p.is_file())
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(entry_error("matches no file".into()));
            }
            if let Some(f) = &e.filter {
                Filter::new(f).map_err(|why| entry_error(format!("filter `{f}`: {why}")))?;
            }
            let start = e
                .start
                .as_ref()
                .map(time_bound)
                .transpose()
                .map_err(|why| entry_error(format!("start: {why}")))?;
            let end = e
                .end
                .as_ref()
                .map(time_bound)
                .transpose()
                .map_err(|why| entry_error(format!("end: {why}")))?;
            if let (Some(s), Some(t)) = (start, end)
                && s >= t
            {
                return Err(entry_error("start is not before end".into()));
            }
            entries.push(Entry {
                class: e.class.trim().to_string(),
                files,
                filter: e.filter,
                start,
                end,
            });
        }
        if entries.is_empty() {
            return Err(layout("no [[capture]] entries".into()));
        }
        Ok(Labelled {
            source: path.to_path_buf(),
            entries,
        })
    }

    /// The header of the rows: the 61 columns and `label`.
    pub fn header() -> Vec<&'static str> {
        COLUMNS.iter().copied().chain([LABEL]).collect()
    }

    /// Walks the captures in order, telling `f` of each file ([`Walk::File`], before its
    /// packets) and of each packet kept ([`Walk::Packet`]): a packet outside its entry's
    /// time range, or left out by its filter, is counted and not passed on; the kept ones
    /// are numbered from 1 in each file, as `train` numbers their rows. `f` returns false
    /// to stop the walk. Returns what each file held (`problems` left 0: the caller's
    /// extractor counts them).
    ///
    /// # Errors
    ///
    /// A capture that cannot be read (its path named), a filter that does not compile
    /// for a capture's link type, `f`'s own error.
    pub fn walk<E: From<SourceError> + From<ReadError>>(
        &self,
        mut f: impl FnMut(Walk<'_, '_>) -> Result<bool, E>,
    ) -> Result<Vec<FileCount>, E> {
        let mut counts = Vec::new();
        for (i, e) in self.entries.iter().enumerate() {
            let mut filter = e
                .filter
                .as_deref()
                .map(Filter::new)
                .transpose()
                .map_err(|why| SourceError::Entry {
                    path: self.source.clone(),
                    entry: i + 1,
                    pattern: e.files[0].display().to_string(),
                    reason: why,
                })?;
            for file in &e.files {
                let mut reader = CaptureReader::open(file).map_err(SourceError::from)?;
                let mut c = FileCount {
                    path: file.clone(),
                    class: e.class.clone(),
                    packets: 0,
                    kept: 0,
                    filtered: 0,
                    outside_time: 0,
                    problems: 0,
                };
                let mut go = f(Walk::File {
                    path: file,
                    class: &e.class,
                })?;
                if go {
                    reader.for_each(|p| -> Result<(), E> {
                        if !go {
                            return Ok(());
                        }
                        c.packets += 1;
                        let t = (p.seconds, p.nanos);
                        if e.start.is_some_and(|s| t < s) || e.end.is_some_and(|s| t >= s) {
                            c.outside_time += 1;
                            return Ok(());
                        }
                        if let Some(flt) = &mut filter {
                            match flt.matches(p.link, p.data) {
                                Ok(true) => {}
                                Ok(false) => {
                                    c.filtered += 1;
                                    return Ok(());
                                }
                                Err(why) => {
                                    return Err(SourceError::Entry {
                                        path: self.source.clone(),
                                        entry: i + 1,
                                        pattern: file.display().to_string(),
                                        reason: format!(
                                            "filter `{}` on link type {}: {why}",
                                            flt.expression(),
                                            p.link.name()
                                        ),
                                    }
                                    .into());
                                }
                            }
                        }
                        c.kept += 1;
                        let kept = crate::reader::Packet {
                            number: c.kept,
                            ..*p
                        };
                        go = f(Walk::Packet(&kept))?;
                        Ok(())
                    })?;
                }
                counts.push(c);
                if !go {
                    return Ok(counts);
                }
            }
        }
        Ok(counts)
    }

    /// Reads every capture into `builder` (made with [`Labelled::header`]), packet by
    /// packet, and returns what each file held.
    ///
    /// # Errors
    ///
    /// A capture that cannot be read (its path named), a filter that does not compile
    /// for a capture's link type, the builder's error.
    pub fn feed(&self, builder: &mut DatasetBuilder) -> Result<Vec<FileCount>, SourceError> {
        let mut row: u64 = 0;
        // The current file's extractor (a separate tshark run each) and class.
        let mut current: Option<(Extractor, String)> = None;
        let mut problems: Vec<u64> = Vec::new();
        let problem_total = |x: &Extractor| x.problem_counts().iter().map(|(_, n)| n).sum();
        let mut counts = self.walk(|w| -> Result<bool, SourceError> {
            match w {
                Walk::File { path, class } => {
                    let next = (Extractor::default(), class.to_string());
                    if let Some((x, _)) = current.replace(next) {
                        problems.push(problem_total(&x));
                    }
                    builder.add_bytes(std::fs::metadata(path).map_or(0, |m| m.len()));
                }
                Walk::Packet(p) => {
                    if let Some((x, class)) = &mut current {
                        row += 1;
                        let fields = x.packet(p);
                        builder.push(
                            row,
                            fields.iter().map(String::as_str).chain([class.as_str()]),
                        )?;
                    }
                }
            }
            Ok(true)
        })?;
        if let Some((x, _)) = &current {
            problems.push(problem_total(x));
        }
        for (c, n) in counts.iter_mut().zip(problems) {
            c.problems = n;
        }
        Ok(counts)
    }

    /// The captures as one table, read the way `opts` says (the label column is
    /// [`LABEL`] unless `opts` names another).
    ///
    /// # Errors
    ///
    /// As [`Labelled::feed`], and the builder's (no rows, a column named in `opts` that
    /// the rows lack).
    pub fn read(&self, opts: &IngestOptions) -> Result<(Dataset, Vec<FileCount>), SourceError> {
        let opts = IngestOptions {
            label: opts.label.clone().or_else(|| Some(LABEL.to_string())),
            ..opts.clone()
        };
        let mut b = DatasetBuilder::new(&self.source, &Self::header(), &opts)?;
        let counts = self.feed(&mut b)?;
        Ok((b.finish()?, counts))
    }
}
