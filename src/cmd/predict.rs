//! `iotids predict`: streams a file in batches and writes one prediction per row.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use iotids_data::ingest::{UNLABELLED, read_csv_batches};
use iotids_model::artifact::Detector;
use iotids_model::detect::StreamWindows;
use iotids_model::examples::SCORE_BATCH;

use crate::job::{PredictJob, Ui};
use crate::output::warn_rejects;
use crate::progress;

pub fn run(job: &PredictJob, ui: Ui) -> Result<ExitCode> {
    let file = &job.input;
    let detector = Detector::load(&job.model)?;
    let classes = &detector.card.classes;
    let sink: Box<dyn Write> = match &job.out {
        Some(p) => Box::new(
            std::fs::File::create(p).with_context(|| format!("{}: cannot create", p.display()))?,
        ),
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, sink));
    let mut stream = StreamWindows::new(detector.card.window, detector.card.features.len());
    let (bar, cb) = progress::reading(file, ui.quiet || job.out.is_none());
    let opts = iotids_data::IngestOptions {
        progress: Some(cb),
        ..detector.ingest_options(ui.threads(), true)
    };
    let decided = detector.decision_classes();
    let with_novelty = detector.card.decision.novelty.is_some();
    let mut predicted_counts = vec![0u64; decided.len()];
    let mut header_written = false;
    let mut rec: Vec<String> = Vec::new();
    let report = read_csv_batches(file, &opts, job.batch_rows, |ds| -> Result<()> {
        let labelled = !ds.classes.iter().all(|c| c == UNLABELLED);
        if !header_written {
            let mut header = vec!["line".to_string(), "predicted".into(), "probability".into()];
            if labelled {
                header.push("true".into());
            }
            header.extend(classes.iter().map(|c| format!("p_{c}")));
            if with_novelty {
                header.push("novelty".into());
            }
            w.write_record(&header)?;
            header_written = true;
        }
        let all: Vec<usize> = (0..ds.n_rows()).collect();
        let features = detector
            .pipeline
            .transform(&ds, &all)
            .with_context(|| format!("{}: cannot apply the model", file.display()))?;
        let (sequences, range) =
            stream.next_batch(features, ds.window_keys(detector.card.window_by))?;
        let rows: Vec<usize> = range.collect();
        let c = detector.classify(&sequences, &rows, SCORE_BATCH);
        for (i, &p) in c.predicted.iter().enumerate() {
            predicted_counts[p as usize] += 1;
            let probs = c.scores.row(i);
            rec.clear();
            rec.push(ds.lines[i].to_string());
            rec.push(decided[p as usize].clone());
            // An unknown window's probability is the benign one it was refused.
            let shown = match probs.get(p as usize) {
                Some(v) => *v,
                None => detector.normal_index().map_or(0.0, |n| probs[n]),
            };
            rec.push(format!("{:.6}", shown));
            if labelled {
                rec.push(ds.classes[ds.labels[i] as usize].clone());
            }
            rec.extend(probs.iter().map(|v| format!("{v:.6}")));
            if let Some(d) = c.novelty.get(i) {
                rec.push(format!("{d:.4}"));
            }
            w.write_record(&rec)?;
        }
        Ok(())
    });
    bar.finish_and_clear();
    let report = report?;
    w.flush().context("writing predictions")?;
    drop(w);
    if !ui.quiet {
        warn_rejects(file, &report, None, " (not predicted)", false);
        let total: u64 = predicted_counts.iter().sum();
        let mut line = format!("predicted {total} rows:");
        for (c, n) in decided.iter().zip(&predicted_counts) {
            if *n > 0 {
                line += &format!(" {c} {n},");
            }
        }
        eprintln!("{}", line.trim_end_matches(','));
        if let Some(p) = &job.out {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
