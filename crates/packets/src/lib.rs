//! Packet captures for iotids: reading pcap and pcapng files and decoding their link,
//! network and transport layers.
//!
//! One checked entry point per layer, zero-copy views over the captured bytes, no
//! `unsafe`: a truncated or malformed packet is counted and reported by its packet number
//! and layer, never fatal. Containers are read by pcap-parser, IP and transport headers by
//! etherparse; the link layers etherparse does not read as captured (Linux cooked captures
//! of a loopback device, NULL in both byte orders) are read in [`link`].

pub mod app;
pub mod bpf;
pub mod decode;
pub mod extract;
pub mod fields;
pub mod labelled;
pub mod link;
pub mod live;
pub mod reader;
pub mod reassembly;

pub use decode::{Decoded, Endpoints, Layer, Transport, decode};
pub use extract::{
    COLUMNS, CaptureSummary, Extractor, Held, Problem, Row, write_csv, write_csv_files, write_rows,
};
pub use link::LinkType;
pub use reader::{CaptureReader, Packet, ReadError};
