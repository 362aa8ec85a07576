//! `iotids detect`: packets from captures or an interface, scored, alerts written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use iotids_detect::{Engine, Summary};
use iotids_model::artifact::Detector;
use iotids_packets::CaptureReader;
use iotids_packets::bpf::Filter;
use iotids_packets::live::Live;

use crate::job::{DetectJob, Ui};
use crate::output::print_json;

/// A writer on `path` (`-`: standard output).
fn sink(path: &Path) -> Result<Box<dyn Write + Send>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufWriter::new(std::io::stdout())));
    }
    let f = File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(1 << 16, f)))
}

pub fn run(job: &DetectJob, ui: Ui) -> Result<ExitCode> {
    let detector = Detector::load(&job.model)?;
    // Open the interface before any output file is created: a missing interface or a
    // permission problem is the whole message.
    let live = match &job.interface {
        Some(i) => Some(Live::open(i, job.bpf.as_deref(), 200)?),
        None => None,
    };
    let eve = job.eve.as_deref().map(sink).transpose()?;
    let verdicts = job.verdicts.as_deref().map(sink).transpose()?;
    let mut engine =
        Engine::new(&detector, job.config.clone(), eve, verdicts).with_context(|| {
            format!(
                "{}: cannot read packets with this model",
                job.model.display()
            )
        })?;
    let mut filtered = 0u64;
    let limit = job.count.unwrap_or(u64::MAX);
    let mut seen = 0u64;
    match live {
        Some(mut live) => {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
                .context("cannot install the Ctrl-C handler")?;
            engine.start_capture(job.interface.as_deref().unwrap_or("-"), true);
            let mut last_flush = Instant::now();
            while !stop.load(Ordering::SeqCst) && seen < limit {
                let got = live.next(|p| -> Result<()> {
                    seen += 1;
                    engine.packet(p)?;
                    Ok(())
                })?;
                if !got || last_flush.elapsed() >= Duration::from_secs(1) {
                    engine.flush()?;
                    engine.flush_outputs()?;
                    last_flush = Instant::now();
                }
            }
        }
        None => {
            let mut filter = job
                .bpf
                .as_deref()
                .map(Filter::new)
                .transpose()
                .map_err(|e| {
                    anyhow::anyhow!("--bpf `{}`: {e}", job.bpf.as_deref().unwrap_or(""))
                })?;
            'files: for path in &job.captures {
                let mut reader = CaptureReader::open(path)?;
                engine.start_capture(&path.display().to_string(), false);
                let mut stop = false;
                let r = reader.for_each(|p| -> Result<()> {
                    if stop {
                        return Ok(());
                    }
                    if let Some(f) = &mut filter {
                        let keep = f
                            .matches(p.link, p.data)
                            .map_err(|e| anyhow::anyhow!("--bpf on {}: {e}", path.display()))?;
                        if !keep {
                            filtered += 1;
                            return Ok(());
                        }
                    }
                    seen += 1;
                    engine.packet(p)?;
                    if seen >= limit {
                        stop = true;
                    }
                    Ok(())
                });
                r?;
                if stop {
                    break 'files;
                }
            }
        }
    }
    let summary = engine.finish()?;
    if job.json {
        print_json(&summary)?;
    }
    if !ui.quiet {
        eprint!("{}", summary_text(&summary, filtered));
    }
    Ok(ExitCode::SUCCESS)
}

fn summary_text(s: &Summary, filtered: u64) -> String {
    let mut t = format!(
        "detect: {} packets ({} scored, {} rejected by the ingest, {} not read whole{}), {} flows ({} evicted, at most {} held), {} alerts",
        s.packets,
        s.scored,
        s.rejected,
        s.problems,
        if filtered > 0 {
            format!(", {filtered} more left out by --bpf")
        } else {
            String::new()
        },
        s.flows,
        s.flows_evicted,
        s.flows_peak,
        s.alert_total(),
    );
    if !s.alerts.is_empty() {
        let by: Vec<String> = s.alerts.iter().map(|(c, n)| format!("{c} {n}")).collect();
        t.push_str(&format!(" ({})", by.join(", ")));
    }
    t.push_str(&format!(
        "; {:.1} s, {:.0} packets/s\n",
        s.seconds, s.packets_per_second
    ));
    t
}
