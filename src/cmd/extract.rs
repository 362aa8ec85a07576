//! `iotids extract`: captures to tshark-fields.sh's CSV.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use iotids_packets::{CaptureSummary, write_csv_files};

use crate::job::{ExtractJob, Ui};

pub fn run(job: &ExtractJob, ui: Ui) -> Result<ExitCode> {
    let mut out: BufWriter<Box<dyn Write>> = BufWriter::with_capacity(
        1 << 16,
        match &job.out {
            Some(path) => Box::new(
                File::create(path).with_context(|| format!("{}: cannot create", path.display()))?,
            ),
            None => Box::new(std::io::stdout().lock()),
        },
    );
    let start = std::time::Instant::now();
    let summaries = write_csv_files(&job.captures, &mut out, |_| ())?;
    out.flush().with_context(|| match &job.out {
        Some(p) => format!("{}: cannot write", p.display()),
        None => "standard output: cannot write".into(),
    })?;
    if !ui.quiet {
        eprint!("{}", summary(&summaries, start.elapsed().as_secs_f64()));
    }
    Ok(ExitCode::SUCCESS)
}

/// Problems listed by packet after the summary line.
const SHOWN_PROBLEMS: usize = 5;

/// One line (packets, captures, packets not read whole by layer, speed), then the first
/// problems by capture, packet number and layer.
fn summary(captures: &[CaptureSummary], seconds: f64) -> String {
    let packets: u64 = captures.iter().map(|c| c.packets).sum();
    let bad: u64 = captures.iter().map(CaptureSummary::problem_total).sum();
    let mut by_layer: std::collections::BTreeMap<&str, u64> = Default::default();
    for c in captures {
        for (layer, n) in &c.problem_counts {
            *by_layer.entry(layer).or_default() += n;
        }
    }
    let mut text = format!(
        "extract: {packets} packets from {} capture{} ({:.0} packets/s)",
        captures.len(),
        if captures.len() == 1 { "" } else { "s" },
        packets as f64 / seconds.max(1e-9)
    );
    if bad == 0 {
        text.push_str("; every packet read whole\n");
        return text;
    }
    let layers: Vec<String> = by_layer.iter().map(|(l, n)| format!("{l} {n}")).collect();
    text.push_str(&format!(
        "; {bad} problems in packets not read whole ({}), their columns left empty past the cut as tshark does\n",
        layers.join(", ")
    ));
    for c in captures {
        for p in &c.problems {
            text.push_str(&format!(
                "  {}: packet {}: {}: {}\n",
                c.path.display(),
                p.packet,
                p.layer,
                p.reason
            ));
        }
    }
    let lines: Vec<&str> = text.lines().collect();
    if lines.len() > SHOWN_PROBLEMS + 1 {
        let mut short = lines[..=SHOWN_PROBLEMS].join("\n");
        short.push_str(&format!(
            "\n  ... and {} more\n",
            bad.saturating_sub(SHOWN_PROBLEMS as u64)
        ));
        return short;
    }
    text
}
