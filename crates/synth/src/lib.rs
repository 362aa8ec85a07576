//! Writes **generated** Edge-IIoTset-schema CSV files. Nothing in them was captured
//! from a network: every row is made up by a seeded random generator, and no result
//! obtained on them says anything about real IoT traffic. They exist for two jobs
//! where the real dataset is not at hand or not the right size:
//!
//! - the demo: a GRU classifier trained on them should reach a meaningful but not
//!   perfect accuracy, so packets come in flows with class-typical sequences, and
//!   attack flows carry ordinary-looking background packets that a per-packet model
//!   cannot tell apart;
//! - scale benchmarks and parser tests: the output reproduces the real file's
//!   quirks (CRLF, no final newline, the `0` / `0.0` label leak, hex flags, quoted
//!   fields with commas, quotes and newlines, a 200,000-character payload,
//!   column-shifted MITM rows, class-name variants, exact duplicate rows), and is
//!   written single-threaded at well over 100 MB/s in a release build.
//!
//! Same seed, same options: byte-identical output (a test pins the SHA-256 of a few
//! files). `frame.time` never decreases, except in the shifted MITM rows (which hold
//! `0.0` / `6.0` there, like the real file) and at the midnight wrap after about four
//! hours of simulated capture (some 100 million rows).
//!
//! It is a crate of its own because it needs nothing from `iotids-data`: it only
//! writes bytes in the layout `iotids-data` reads, so the two meet in the file format
//! and in tests, not in code.
//!
//! # Traffic model
//!
//! A pool of 16 active flows is kept; each row picks one at random (so flows
//! interleave as in a capture) and emits its next packet. A flow ends after a
//! kind-dependent number of packets and is replaced by a new one. Class counts are
//! fixed up front (`quotas`: the paper's Table 1 proportions, or equal ones) and a
//! new flow's class is drawn by remaining quota divided by the class's mean flow
//! length, so every stretch of the file holds roughly the target mix.
//!
//! All packets of a TCP flow share the two endpoints (host and port, in either
//! direction); UDP flows share the host pair and `udp.port`; ICMP and ARP flows the
//! host pair. Port scans are the exception by nature: the probed port changes
//! every two packets.
//!
//! # Where things are
//!
//! - `class`: the 15 classes and their sizes in the real dataset.
//! - `network`: the simulated hosts, ports, DNS names and MQTT topics.
//! - `traffic`: flow kinds, one flow's state, and the pool of interleaved flows.
//! - `proto`: one module per protocol, each filling the columns of one packet.
//! - `row`: the 63 columns, a row's fields, and how they are spelled in the CSV.
//! - `generator`: the row loop and the file-level quirks (duplicates, hex rows, the
//!   giant payload, label variants).
//!
//! A new flow kind is a variant in `traffic`, its endpoints in `Flow::new`, and a
//! function in the protocol's module called from `proto::next_packet`.

mod class;
mod generator;
mod network;
mod proto;
mod row;
#[cfg(test)]
mod tests;
mod traffic;

use std::io::{self, BufWriter, Write};

use class::{CLASSES, NCLASSES};
use generator::Generator;
use row::HEADER;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Number of data rows (the header is not counted).
    pub rows: u64,
    /// Seed of the generator: same seed, same bytes.
    pub seed: u64,
    /// Equal class proportions instead of the paper's (heavily imbalanced) ones.
    pub balanced: bool,
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SynthSummary {
    /// Data rows written (header excluded).
    pub rows: u64,
    /// Bytes written, header included.
    pub bytes: u64,
    /// Rows per class, canonical class names, in the order of the paper's Table 1.
    /// Duplicate rows and spelling variants (`OS_Fingerprinting`, padded names) are
    /// counted under their canonical class.
    pub class_counts: Vec<(String, u64)>,
}

/// Writes `opts.rows` generated rows (plus the header) to `out`.
///
/// # Errors
///
/// Only I/O errors from `out`.
pub fn write_synth<W: Write>(out: W, opts: &SynthOptions) -> io::Result<SynthSummary> {
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let header = HEADER.join(",");
    out.write_all(header.as_bytes())?;
    let mut bytes = header.len() as u64;

    let mut generator = Generator::new(opts, quotas(opts.rows, opts.balanced));
    for index in 0..opts.rows {
        let line = generator.next_line(index);
        // CRLF before each row rather than after: no newline after the last one.
        out.write_all(b"\r\n")?;
        out.write_all(line)?;
        bytes += 2 + line.len() as u64;
    }
    out.flush()?;

    let counts = generator.counts();
    let class_counts = CLASSES
        .iter()
        .map(|&(class, name, _)| (name.to_string(), counts[class as usize]))
        .collect();
    Ok(SynthSummary {
        rows: opts.rows,
        bytes,
        class_counts,
    })
}

/// Rows per class: proportional to the paper's counts (or equal when `balanced`),
/// apportioned exactly by largest remainder so they sum to `rows`. From 1,000 rows
/// on, every class gets at least max(5, 0.2 %) so the rarest ones stay learnable;
/// the extra rows come out of the largest class.
fn quotas(rows: u64, balanced: bool) -> [u64; NCLASSES] {
    let weights: [u128; NCLASSES] = std::array::from_fn(|i| {
        if balanced {
            1
        } else {
            u128::from(CLASSES[i].2)
        }
    });
    let total: u128 = weights.iter().sum();
    let exact = weights.map(|w| u128::from(rows) * w);
    // exact / total <= rows, so the cast cannot truncate.
    let mut quota = exact.map(|e| (e / total) as u64);
    let remainder = exact.map(|e| e % total);
    let mut order: [usize; NCLASSES] = std::array::from_fn(|i| i);
    order.sort_by(|&a, &b| remainder[b].cmp(&remainder[a]).then(a.cmp(&b)));
    let short = rows - quota.iter().sum::<u64>();
    for &i in order.iter().take(short as usize) {
        quota[i] += 1;
    }
    if rows >= 1000 {
        let floor = (rows / 500).max(5);
        let mut deficit = 0;
        for rows_of_class in &mut quota {
            if *rows_of_class < floor {
                deficit += floor - *rows_of_class;
                *rows_of_class = floor;
            }
        }
        let largest = (0..NCLASSES)
            .max_by_key(|&i| (quota[i], usize::MAX - i))
            .unwrap_or(0);
        quota[largest] -= deficit;
    }
    quota
}
