//! Writes a capture's 61 Edge-IIoTset columns as `tshark-fields.sh` would, to stdout;
//! the problems found and the reassembly's counters go to stderr.
//!
//! usage: cargo run -p iotids-packets --example tshark_csv -- CAPTURE

use std::io::Write;
use std::path::PathBuf;

use iotids_packets::{CaptureReader, write_csv};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(path) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: tshark_csv CAPTURE");
        std::process::exit(2);
    };
    let mut reader = CaptureReader::open(&path)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let x = write_csv(&mut reader, &mut out)?;
    out.flush()?;
    eprintln!("problems: {:?}", x.problem_counts());
    eprintln!("reassembly: {:?}", x.reassembly());
    Ok(())
}
