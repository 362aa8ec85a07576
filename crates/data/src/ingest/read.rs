//! The CSV client of [`DatasetBuilder`]: a file, standard input (`-`) or any reader,
//! parsed in parallel in bounded memory.
//!
//! The first block gives the header, the delimiter and the sample the column kinds are
//! inferred from. One thread then cuts the rest into blocks ([`super::blocks`]), worker
//! threads convert them into chunks, and the calling thread hands the chunks to the
//! builder in source order. Raw text is dropped as soon as its block is converted, so
//! memory follows the retained numeric matrix.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};

use memchr::memchr;

use crate::error::{Error, Result};
use crate::table::{Dataset, IngestReport};

use super::IngestOptions;
use super::blocks::{Block, Start, fill, read_blocks, worker};
use super::builder::{DatasetBuilder, log_ingested};
use super::infer::sample_block;
use super::parse::Chunk;

/// The path that means standard input in [`read_csv`] and [`read_csv_batches`].
pub const STDIN_PATH: &str = "-";
/// What messages and [`Dataset::path`] call standard input.
pub const STDIN_NAME: &str = "<stdin>";

/// Reads a labelled CSV file; the path `-` reads standard input.
///
/// # Errors
/// The file cannot be read, is empty, is not CSV, or lacks the label column.
/// Bad rows are not errors: they are counted in [`IngestReport`].
pub fn read_csv(path: &Path, opts: &IngestOptions) -> Result<Dataset> {
    whole(path, |on_batch| {
        read_csv_batches(path, opts, usize::MAX, on_batch)
    })
}

/// Reads a labelled CSV from any reader (a socket, a decompressor, a byte slice);
/// `name` stands for it in messages and in [`Dataset::path`]. [`IngestReport::bytes`]
/// counts the bytes read.
///
/// # Errors
/// As [`read_csv`].
pub fn read_csv_from<R: Read + Send>(
    reader: R,
    name: &Path,
    opts: &IngestOptions,
) -> Result<Dataset> {
    whole(name, |on_batch| {
        read_csv_batches_from(reader, name, opts, usize::MAX, on_batch)
    })
}

/// The one table of a read in a single batch.
fn whole(
    source: &Path,
    read: impl FnOnce(&mut dyn FnMut(Dataset) -> Result<()>) -> Result<IngestReport>,
) -> Result<Dataset> {
    let mut whole = None;
    read(&mut |ds| {
        whole = Some(ds);
        Ok(())
    })?;
    // A read without an error has delivered a table (it fails with `NoRows` otherwise).
    whole.ok_or_else(|| Error::NoRows {
        path: source.into(),
        rejected: 0,
    })
}

/// Reads a labelled CSV file in batches of about `batch_rows` rows, in file order,
/// so a file larger than memory can be processed (prediction). Flow ids, class ids
/// and category codes are the same across batches; each batch's report holds the
/// counts so far. Returns the report of the whole file. The path `-` reads standard
/// input.
///
/// `on_batch` may fail with the caller's own error type (anything a data [`Error`]
/// converts into, such as `anyhow::Error`), which stops the reading and is returned
/// as it is.
///
/// # Errors
/// As [`read_csv`], plus whatever `on_batch` returns.
pub fn read_csv_batches<E: From<Error>>(
    path: &Path,
    opts: &IngestOptions,
    batch_rows: usize,
    on_batch: impl FnMut(Dataset) -> Result<(), E>,
) -> Result<IngestReport, E> {
    if path == Path::new(STDIN_PATH) {
        return read_batches(
            std::io::stdin(),
            Path::new(STDIN_NAME),
            None,
            opts,
            batch_rows,
            on_batch,
        );
    }
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    read_batches(file, path, Some(len), opts, batch_rows, on_batch)
}

/// [`read_csv_batches`] from any reader, named `name` in messages.
///
/// # Errors
/// As [`read_csv_batches`].
pub fn read_csv_batches_from<R: Read + Send, E: From<Error>>(
    reader: R,
    name: &Path,
    opts: &IngestOptions,
    batch_rows: usize,
    on_batch: impl FnMut(Dataset) -> Result<(), E>,
) -> Result<IngestReport, E> {
    read_batches(reader, name, None, opts, batch_rows, on_batch)
}

/// The reader behind every public one. `len` is the source's size when known (a file);
/// otherwise the report counts the bytes read.
fn read_batches<R: Read + Send, E: From<Error>>(
    mut reader: R,
    source: &Path,
    len: Option<u64>,
    opts: &IngestOptions,
    batch_rows: usize,
    mut on_batch: impl FnMut(Dataset) -> Result<(), E>,
) -> Result<IngestReport, E> {
    let block_size = if opts.block_size == 0 {
        4 << 20
    } else {
        opts.block_size.max(1024)
    };

    // The first block: header, delimiter, type inference.
    let mut first = Vec::with_capacity(block_size);
    let eof = fill(&mut reader, &mut first, block_size).map_err(|e| Error::io(source, e))?;
    let bom = if first.starts_with(&[0xEF, 0xBB, 0xBF]) {
        first.drain(..3);
        3
    } else {
        0
    };
    if first.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(Error::Empty {
            path: source.into(),
        }
        .into());
    }
    if let Some(p) = memchr(0, &first) {
        return Err(Error::NotCsv {
            path: source.into(),
            reason: format!("binary data (a NUL byte at offset {p})"),
        }
        .into());
    }
    let header_end = match memchr(b'\n', &first) {
        Some(p) => p + 1,
        None if eof => first.len(),
        None => {
            return Err(Error::NotCsv {
                path: source.into(),
                reason: format!("no line break in the first {} bytes", first.len()),
            }
            .into());
        }
    };
    let delimiter = detect_delimiter(&first[..header_end]);
    let header = parse_header(source, &first[..header_end], delimiter)?;
    let mut builder = DatasetBuilder::planned(source.into(), header, delimiter, opts)?;
    let rest = first.split_off(header_end);
    let sample = sample_block(&rest, builder.layout());
    builder.start_with_sample(&sample)?;
    drop(sample);
    builder.set_bytes(len.unwrap_or((bom + header_end) as u64));

    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
    } else {
        opts.threads
    };
    let layout = Arc::new(builder.layout().clone());
    let progress = opts.progress.clone();
    let start = Start {
        carry: rest,
        eof,
        offset: (bom + header_end) as u64,
        uncounted: bom as u64,
    };

    std::thread::scope(|scope| -> Result<(), E> {
        let (block_tx, block_rx) = sync_channel::<Block>(threads * 2);
        let (parsed_tx, parsed_rx) = sync_channel::<Chunk>(threads * 2);
        let block_rx = Arc::new(Mutex::new(block_rx));
        for _ in 0..threads {
            let rx = Arc::clone(&block_rx);
            let tx = parsed_tx.clone();
            let layout = Arc::clone(&layout);
            scope.spawn(move || worker(&layout, &rx, &tx));
        }
        drop(parsed_tx);
        let delimiter = layout.delimiter;
        let reading = scope.spawn(move || {
            read_blocks(
                &mut reader,
                start,
                block_size,
                delimiter,
                &block_tx,
                progress.as_deref(),
            )
        });

        // Append parsed blocks in source order.
        let mut pending: BTreeMap<u64, Chunk> = BTreeMap::new();
        let mut next = 0u64;
        for p in parsed_rx {
            pending.insert(p.seq, p);
            while let Some(p) = pending.remove(&next) {
                if let (None, Some(offset)) = (len, p.source_offset) {
                    builder.set_bytes(offset);
                }
                builder.append_chunk(p)?;
                next += 1;
                if builder.pending_rows() >= batch_rows.max(1) {
                    on_batch(builder.take_batch()?)?;
                }
            }
        }
        match reading.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(Error::io(source, e).into()),
            Err(_) => Err(Error::io(
                source,
                std::io::Error::other("the reading thread stopped unexpectedly"),
            )
            .into()),
        }
    })?;
    let last = builder.finish_batch()?;
    let report = last.report.clone();
    if last.n_rows() > 0 {
        on_batch(last)?;
    }
    log_ingested(source, &report);
    Ok(report)
}

fn detect_delimiter(header_line: &[u8]) -> u8 {
    let count = |d: u8| header_line.iter().filter(|&&b| b == d).count();
    [b',', b'\t', b';']
        .into_iter()
        .max_by_key(|&d| count(d))
        .unwrap_or(b',')
}

fn parse_header(source: &Path, line: &[u8], delimiter: u8) -> Result<Vec<String>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .delimiter(delimiter)
        .from_reader(line);
    let mut rec = csv::ByteRecord::new();
    let ok = rdr.read_byte_record(&mut rec).map_err(|e| Error::NotCsv {
        path: source.into(),
        reason: format!("header: {e}"),
    })?;
    if !ok || rec.is_empty() {
        return Err(Error::Empty {
            path: source.into(),
        });
    }
    let mut names = Vec::with_capacity(rec.len());
    for (i, f) in rec.iter().enumerate() {
        let s = std::str::from_utf8(f).map_err(|_| Error::NotCsv {
            path: source.into(),
            reason: format!("header field {} is not UTF-8 text", i + 1),
        })?;
        names.push(s.trim().to_string());
    }
    if names.len() < 2 {
        return Err(Error::NotCsv {
            path: source.into(),
            reason: format!(
                "the header has one column (`{}`); expected a delimited header line",
                names[0].chars().take(60).collect::<String>()
            ),
        });
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiter_from_header() {
        assert_eq!(detect_delimiter(b"a\tb\tc\r\n"), b'\t');
        assert_eq!(detect_delimiter(b"a,b,c\n"), b',');
        assert_eq!(detect_delimiter(b"a;b;c\n"), b';');
    }
}
