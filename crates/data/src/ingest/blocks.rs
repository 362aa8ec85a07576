//! CSV blocks: the bytes of a file cut at record boundaries, so each block can be parsed
//! on its own thread.
//!
//! One thread reads the source in blocks and cuts each after its last complete record,
//! tracking CSV quoting ([`last_record_end`]), so a quoted field with commas, doubled
//! quotes or newlines never straddles a cut. Worker threads parse blocks with the `csv`
//! crate into [`Chunk`]s through the same per-record conversion every record source uses.

use std::io::Read;
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, SyncSender};

use memchr::{memchr, memchr2};

use super::parse::Chunk;
use super::plan::Layout;

/// A block of raw bytes that starts at a record boundary.
#[derive(Debug)]
pub(super) struct Block {
    pub(super) seq: u64,
    /// Physical line number of the block's first byte.
    pub(super) first_line: u64,
    /// Bytes of the source up to the end of this block.
    pub(super) end_offset: u64,
    pub(super) bytes: Vec<u8>,
}

/// Reads until `buf` holds `want` bytes or the source ends; returns true at its end.
///
/// The buffer is zeroed once per call, however short the reads (a pipe gives 64 KiB at a
/// time); interrupted reads are retried.
pub(super) fn fill(
    source: &mut impl Read,
    buf: &mut Vec<u8>,
    want: usize,
) -> std::io::Result<bool> {
    let mut filled = buf.len();
    if filled >= want {
        return Ok(false);
    }
    buf.resize(want, 0);
    let eof = loop {
        match source.read(&mut buf[filled..]) {
            Ok(0) => break true,
            Ok(n) => {
                filled += n;
                if filled == want {
                    break false;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                buf.truncate(filled);
                return Err(e);
            }
        }
    };
    buf.truncate(filled);
    Ok(eof)
}

/// Where [`read_blocks`] starts: the bytes after the header, and its position.
#[derive(Debug)]
pub(super) struct Start {
    /// Bytes already read after the header.
    pub(super) carry: Vec<u8>,
    /// The source ended within them.
    pub(super) eof: bool,
    /// Bytes of the source before `carry` (header, byte-order mark).
    pub(super) offset: u64,
    /// Bytes before `carry` that [`super::Progress`] does not count (a byte-order mark).
    pub(super) uncounted: u64,
}

/// Cuts the source into blocks that end on record boundaries and sends them.
pub(super) fn read_blocks(
    source: &mut impl Read,
    start: Start,
    block_size: usize,
    delimiter: u8,
    tx: &SyncSender<Block>,
    progress: Option<&(dyn Fn(u64) + Send + Sync)>,
) -> std::io::Result<()> {
    let Start {
        carry: mut buf,
        mut eof,
        offset,
        uncounted,
    } = start;
    let mut offset = offset - uncounted;
    let mut seq = 0u64;
    let mut line = 2u64; // the header is line 1
    loop {
        let mut want = block_size.max(buf.len() + 1);
        let mut cut = None;
        while !eof {
            eof = fill(source, &mut buf, want)?;
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
            end_offset: offset + uncounted,
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

/// A worker: parses blocks until the reader stops or the receiver hangs up.
pub(super) fn worker(layout: &Layout, rx: &Mutex<Receiver<Block>>, tx: &SyncSender<Chunk>) {
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

/// Parses one block into a chunk: every record through [`Chunk::push`], every
/// unreadable one counted with its line.
pub(super) fn parse_block(layout: &Layout, block: &Block) -> Chunk {
    let mut out = Chunk::new(layout, block.seq);
    out.source_offset = Some(block.end_offset);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(layout.delimiter)
        .from_reader(&block.bytes[..]);
    let mut rec = csv::ByteRecord::new();
    let mut lines = LineCounter::new(&block.bytes, block.first_line);
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Err(e) => {
                let line = lines.line_at(e.position().map_or(0, csv::Position::byte));
                out.reject(line, format!("unreadable CSV: {e}"), String::new());
            }
            Ok(true) => {
                let line = lines.line_at(rec.position().map_or(0, csv::Position::byte));
                out.push(layout, &rec, line);
            }
        }
    }
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

    use proptest::prelude::*;

    /// A field with the characters that matter to CSV cutting: delimiters, quotes,
    /// carriage returns and newlines, among ordinary text.
    fn field() -> impl Strategy<Value = String> {
        proptest::collection::vec(
            prop_oneof![
                Just(','),
                Just(';'),
                Just('\t'),
                Just('"'),
                Just('\n'),
                Just('\r'),
                Just(' '),
                proptest::char::range('a', 'e'),
            ],
            0..8,
        )
        .prop_map(|c| c.into_iter().collect())
    }

    /// Records written by the `csv` crate (quoting as needed), with the byte offset
    /// after each record: the only places a block may be cut.
    fn written(records: &[Vec<String>], delimiter: u8, crlf: bool) -> (Vec<u8>, Vec<usize>) {
        let mut w = csv::WriterBuilder::new()
            .delimiter(delimiter)
            .terminator(if crlf {
                csv::Terminator::CRLF
            } else {
                csv::Terminator::Any(b'\n')
            })
            .flexible(true)
            .from_writer(Vec::new());
        let mut ends = Vec::new();
        for r in records {
            w.write_record(r).unwrap();
            w.flush().unwrap();
            ends.push(w.get_ref().len());
        }
        (w.into_inner().unwrap(), ends)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Every prefix of a CSV text is cut after its last complete record, never
        /// inside a quoted field, whatever the fields hold.
        #[test]
        fn cuts_only_after_complete_records(
            records in proptest::collection::vec(proptest::collection::vec(field(), 1..4), 1..6),
            delimiter in prop_oneof![Just(b','), Just(b';'), Just(b'\t')],
            crlf in any::<bool>(),
        ) {
            let (text, ends) = written(&records, delimiter, crlf);
            for p in 0..=text.len() {
                let want = ends.iter().copied().rfind(|&e| e <= p);
                prop_assert_eq!(last_record_end(&text[..p], delimiter), want, "prefix {}", p);
            }
            // The cut text parses back into exactly the complete records.
            let mut rdr = csv::ReaderBuilder::new()
                .has_headers(false)
                .flexible(true)
                .delimiter(delimiter)
                .from_reader(&text[..]);
            let parsed: Vec<Vec<String>> = rdr
                .records()
                .map(|r| r.unwrap().iter().map(str::to_string).collect())
                .collect();
            prop_assert_eq!(parsed, records);
        }

        /// On any bytes the cut, when there is one, follows a newline inside the buffer.
        #[test]
        fn any_bytes_cut_after_a_newline(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some(end) = last_record_end(&bytes, b',') {
                prop_assert!(end >= 1 && end <= bytes.len());
                prop_assert_eq!(bytes[end - 1], b'\n');
            }
        }
    }
}
