//! `iotids synth`: generated Edge-IIoTset-schema rows (not real traffic).

use std::fs::File;
use std::io::BufWriter;

use anyhow::{Context, Result};
use iotids_synth::write_synth;

use crate::job::{SynthJob, Ui};
use crate::progress;

pub fn run(job: &SynthJob, ui: Ui) -> Result<()> {
    let out = &job.out;
    let bar = progress::step(
        &format!("generating {} rows (synthetic data)", job.options.rows),
        ui.quiet,
    );
    let file = File::create(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let summary = write_synth(BufWriter::with_capacity(1 << 20, file), &job.options)
        .with_context(|| format!("{}: writing generated data", out.display()))?;
    bar.finish_and_clear();
    if !ui.quiet {
        eprintln!(
            "wrote {} generated rows ({} bytes) to {}",
            summary.rows,
            summary.bytes,
            out.display()
        );
    }
    Ok(())
}
