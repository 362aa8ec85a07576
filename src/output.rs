//! What the commands print and write: stdout text and JSON, the files of an output
//! directory (the preparation's, metrics.json, predictions.csv, learning curves, CSV
//! tables) and report.html. Reading a file with a progress bar lives here too, beside the
//! warnings it prints.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use iotids_data::audit::Audit;
use iotids_data::describe::Description;
use iotids_data::pipeline::Matrix;
use iotids_data::prepare::{PrepareConfig, Prepared};
use iotids_data::{Dataset, IngestOptions, IngestReport, read_csv};
use iotids_model::artifact::Detector;
use iotids_model::evaluation::{AbsentClass, Scored};
use iotids_model::examples::Scores;
use iotids_model::metrics::Metrics;
use iotids_model::train::History;
use iotids_report as report;
use report::html::{Block, Report};

use crate::progress;

/// Writes `text` and a final newline to stdout.
pub fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    print(&serde_json::to_string_pretty(v)?)
}

/// Creates `dir` and its parents.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("{}: cannot create directory", dir.display()))
}

/// Writes `text` to `path`, naming the path on failure.
pub fn write_file(path: &Path, text: impl AsRef<[u8]>) -> Result<()> {
    std::fs::write(path, text).with_context(|| format!("{}: cannot write", path.display()))
}

/// A buffered CSV writer on a new file.
pub fn csv_file(path: &Path) -> Result<csv::Writer<BufWriter<File>>> {
    let f = File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    Ok(csv::Writer::from_writer(BufWriter::new(f)))
}

/// One CSV row per item, the header from the fields' names.
pub fn write_csv_rows<T: serde::Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut w = csv_file(path)?;
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// Reads a file with a progress bar, reporting rejected rows on stderr.
///
/// `path` may also be labelled captures (a folder of class folders, or a `.toml`
/// manifest): their packets become rows through the same builder as a CSV file's.
pub fn read(path: &Path, opts: &IngestOptions, quiet: bool) -> Result<Dataset> {
    if iotids_packets::labelled::is_labelled_captures(path) {
        return read_captures(path, opts, quiet);
    }
    let (bar, cb) = progress::reading(path, quiet);
    let opts = IngestOptions {
        progress: Some(cb),
        ..opts.clone()
    };
    let ds = read_csv(path, &opts);
    bar.finish_and_clear();
    let ds = ds?;
    warn_rejects(path, &ds.report, opts.rejects_path.as_deref(), "", quiet);
    Ok(ds)
}

/// Reads labelled captures; says on stderr what was left out (filters, time ranges) and
/// how many packets were not read whole.
fn read_captures(path: &Path, opts: &IngestOptions, quiet: bool) -> Result<Dataset> {
    let bar = progress::step(&format!("reading captures {}", path.display()), quiet);
    let captures = iotids_packets::labelled::Labelled::open(path)?;
    let read = captures.read(opts);
    bar.finish_and_clear();
    let (ds, counts) = read?;
    if !quiet {
        for c in &counts {
            let mut notes = Vec::new();
            if c.filtered > 0 {
                notes.push(format!("{} left out by the filter", c.filtered));
            }
            if c.outside_time > 0 {
                notes.push(format!("{} outside the time range", c.outside_time));
            }
            if c.problems > 0 {
                notes.push(format!(
                    "{} not read whole (kept, as tshark writes them)",
                    c.problems
                ));
            }
            if !notes.is_empty() {
                eprintln!(
                    "note: {} ({}): {} of {} packets read; {}",
                    c.path.display(),
                    c.class,
                    c.kept,
                    c.packets,
                    notes.join(", ")
                );
            }
        }
    }
    warn_rejects(path, &ds.report, opts.rejects_path.as_deref(), "", quiet);
    Ok(ds)
}

/// Says on stderr how many rows of `path` were rejected and shows the first few.
pub fn warn_rejects(
    path: &Path,
    report: &IngestReport,
    rejects_file: Option<&Path>,
    what: &str,
    quiet: bool,
) {
    if report.rows_rejected == 0 || quiet {
        return;
    }
    eprintln!(
        "warning: {}: {} of {} rows rejected{what}{}",
        path.display(),
        report.rows_rejected,
        report.rows_read,
        match rejects_file {
            Some(p) => format!(" (all written to {})", p.display()),
            None if what.is_empty() => " (--rejects FILE writes all of them)".into(),
            None => String::new(),
        }
    );
    for r in report.first_rejects.iter().take(5) {
        eprintln!("  {}:{}: {}", path.display(), r.line, r.reason);
    }
}

/// Writes pipeline.json, split.json, prepare.json and, with `features`, the feature
/// matrices of the three sides to `out`.
pub fn write_prepared(out: &Path, p: &Prepared, cfg: &PrepareConfig, features: bool) -> Result<()> {
    create_dir(out)?;
    p.pipeline.save(&out.join("pipeline.json"))?;
    let lines = |rows: &[usize]| {
        rows.iter()
            .map(|&r| p.dataset.lines[r])
            .collect::<Vec<u64>>()
    };
    let split = serde_json::json!({
        "method": cfg.split.method,
        "seed": cfg.split.seed,
        "fractions": [cfg.split.train, cfg.split.validation, cfg.split.test],
        "note": "source line numbers of the rows on each side",
        "train": lines(&p.split.train),
        "validation": lines(&p.split.validation),
        "test": lines(&p.split.test),
    });
    write_file(&out.join("split.json"), serde_json::to_string(&split)?)?;
    let summary = serde_json::json!({
        "config": cfg,
        "counts": p.counts,
        "flow_timing": p.dataset.report.timing,
    });
    write_file(
        &out.join("prepare.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    if features {
        for (name, rows) in [
            ("train", &p.split.train),
            ("validation", &p.split.validation),
            ("test", &p.split.test),
        ] {
            let m = p.pipeline.transform(&p.dataset, rows)?;
            write_matrix(
                &out.join(format!("features-{name}.csv")),
                &m,
                &p.pipeline.feature_names(),
                rows,
                &p.dataset,
            )?;
        }
    }
    Ok(())
}

fn write_matrix(
    path: &Path,
    m: &Matrix,
    names: &[&str],
    rows: &[usize],
    ds: &Dataset,
) -> Result<()> {
    let mut w = csv_file(path)?;
    let mut header: Vec<&str> = names.to_vec();
    header.push("label");
    w.write_record(&header)?;
    let mut rec = Vec::with_capacity(header.len());
    for (i, &r) in rows.iter().enumerate() {
        rec.clear();
        rec.extend(m.row(i).iter().map(|x| x.to_string()));
        rec.push(ds.classes[ds.labels[r] as usize].clone());
        w.write_record(&rec)?;
    }
    w.flush()?;
    Ok(())
}

/// The preparation in words: rows in and removed, the split per class, the pipeline.
pub fn prepared_summary(p: &Prepared, out: &Path) -> String {
    let c = &p.counts;
    let mut s = format!(
        "{} rows in; {} duplicates removed; {} training outliers removed\n\n",
        c.rows_in, c.duplicates_removed, c.outliers_removed
    );
    s += "Split (rows per class):\n";
    s += &report::render_split(&p.split, &p.dataset.labels, &p.dataset.classes);
    s += "\n\n";
    s += &report::render_pipeline(&p.pipeline);
    s += &format!(
        "\nwrote {}/pipeline.json, split.json, prepare.json\n",
        out.display()
    );
    s
}

/// Creates `out/figures` (returned), writes the preparation's files (pipeline.json,
/// split.json, prepare.json) to `out` and prints the split summary: how `train`,
/// `federate` and `compare` begin their output.
pub fn start_output(out: &Path, p: &Prepared, config: &PrepareConfig) -> Result<PathBuf> {
    let figures = out.join("figures");
    create_dir(&figures)?;
    write_prepared(out, p, config, false)?;
    print(&prepared_summary(p, out))?;
    Ok(figures)
}

/// What a learning command's report says about its data besides the model.
#[derive(Debug)]
pub struct RunContext<'a> {
    pub description: &'a Description,
    pub audit: &'a Audit,
    pub subtitle: String,
}

/// Ends `page` with the data sections (description, audit, preparation), writes it to
/// `out/report.html` and says what the run wrote: `wrote`, then the evaluation's files if
/// it `evaluated`, figures/ and the report.
pub fn finish_report(
    mut page: Report,
    run: &RunContext<'_>,
    p: &Prepared,
    figures: &Path,
    out: &Path,
    wrote: &str,
    evaluated: bool,
) -> Result<()> {
    for b in report::pages::data_sections(run.description, figures)?
        .into_iter()
        .chain(report::pages::audit_sections(run.audit))
        .chain(report::pages::prepare_sections(p))
    {
        page.push(b);
    }
    write_file(&out.join("report.html"), page.to_html())?;
    print(&format!(
        "wrote {wrote}{}, figures/ and report.html to {}",
        if evaluated {
            ", metrics.json, predictions.csv"
        } else {
            ""
        },
        out.display()
    ))
}

/// The training summary line: epochs, time, the kept epoch and its validation numbers.
pub fn epochs_line(h: &History) -> String {
    let best = &h.epochs[h.best_epoch.saturating_sub(1)];
    format!(
        "trained {} epochs in {:.1} s{}; kept epoch {} (validation loss {}, accuracy {})",
        h.epochs.len(),
        h.seconds,
        if h.stopped_early { " (early stop)" } else { "" },
        h.best_epoch,
        best.validation_loss
            .map_or("-".into(), |v| format!("{v:.4}")),
        best.validation_accuracy
            .map_or("-".into(), |v| format!("{v:.4}")),
    )
}

/// Probabilities, decisions and novelty of some scored rows.
type Decided<'a> = (&'a Scores, &'a [u32], &'a [f64]);

/// Computes the metrics, prints the classification report, writes metrics.json and
/// predictions.csv.
pub fn write_evaluation(detector: &Detector, s: &Scored, out: &Path) -> Result<Metrics> {
    let classes = &detector.card.classes;
    let decided = detector.decision_classes();
    let m = s.metrics(detector);
    print(&format!("== evaluation: {} ==", s.what))?;
    print(&report::render_classification_report(&m))?;

    // metrics.json: the Metrics fields, with per_class keyed by class name for people.
    let mut json = serde_json::to_value(&m)?;
    let per_class: serde_json::Map<String, serde_json::Value> = m
        .classes
        .iter()
        .zip(&m.per_class)
        .map(|(c, v)| Ok((c.clone(), serde_json::to_value(v)?)))
        .collect::<Result<_, serde_json::Error>>()?;
    json["per_class"] = per_class.into();
    // The 95 % Wilson intervals of each class's recall and precision, by class name.
    let intervals: serde_json::Map<String, serde_json::Value> = m
        .classes
        .iter()
        .zip(&m.intervals)
        .map(|(c, v)| Ok((c.clone(), serde_json::to_value(v)?)))
        .collect::<Result<_, serde_json::Error>>()?;
    json["intervals"] = intervals.into();
    json["interval_confidence"] = 0.95.into();
    json["evaluated_on"] = s.what.clone().into();
    json["rows_scored"] = s.y_true.len().into();
    json["rows_unknown_class"] = serde_json::to_value(&s.unknown_classes)?;
    json["rows_also_in_training"] = s.also_in_training.into();
    json["window"] = detector.card.window.into();
    json["window_by"] = detector.card.window_by.name().into();
    // What the detector made of the classes it was not trained on (leave-one-attack-out).
    json["absent_classes"] = serde_json::to_value(&s.absent)?;
    json["decision"] = serde_json::json!({
        "operating_point": detector.card.decision.operating_point,
        "unknown_threshold": detector.card.decision.novelty.as_ref().map(|n| n.threshold),
        "unknown_rate_on_validation": detector.card.decision.novelty.as_ref().map(|n| n.validation_rate),
        "rows_unknown": s.predicted.iter().filter(|&&p| p as usize == classes.len()).count(),
    });
    if !s.absent.is_empty() {
        print(&render_absent(&s.absent))?;
    }
    write_file(
        &out.join("metrics.json"),
        serde_json::to_string_pretty(&json)?,
    )?;

    let path = out.join("predictions.csv");
    let mut w = csv_file(&path)?;
    let mut header = vec!["line".to_string(), "true".into(), "predicted".into()];
    header.extend(classes.iter().map(|c| format!("p_{c}")));
    if !s.novelty.is_empty() {
        header.push("novelty".into());
    }
    w.write_record(&header)?;
    let mut rec: Vec<String> = Vec::with_capacity(header.len());
    // One row: its line, true class, decision, probabilities and novelty (the i-th of
    // `scores`, `predicted`, `novelty`).
    let mut row = |line: u64, truth: &str, (scores, predicted, novelty): Decided, i: usize| {
        rec.clear();
        rec.push(line.to_string());
        rec.push(truth.to_string());
        rec.push(decided[predicted[i] as usize].clone());
        rec.extend(scores.row(i).iter().map(|p| format!("{p:.6}")));
        if let Some(d) = novelty.get(i) {
            rec.push(format!("{d:.4}"));
        }
        w.write_record(&rec)
    };
    for (i, (&line, &y)) in s.lines.iter().zip(&s.y_true).enumerate() {
        row(
            line,
            &classes[y as usize],
            (&s.scores, &s.predicted, &s.novelty),
            i,
        )?;
    }
    // The rows of classes the model was not trained on, under their own class names.
    let a = &s.absent_rows;
    if let Some(c) = &a.classified {
        for (i, (&line, &y)) in a.lines.iter().zip(&a.labels).enumerate() {
            row(
                line,
                &a.names[y as usize],
                (&c.scores, &c.predicted, &c.novelty),
                i,
            )?;
        }
    }
    w.flush()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(m)
}

/// The classes of the scored file the model was not trained on, and what it made of them.
pub fn render_absent(absent: &[AbsentClass]) -> String {
    let mut out = String::from(
        "classes the model was not trained on (left out of the metrics above):\n  class            rows  passed as normal  unknown  known attack\n",
    );
    let pct = |n: u64, d: u64| n as f64 * 100.0 / d.max(1) as f64;
    for a in absent {
        out += &format!(
            "  {:<14} {:>6}  {:>15.2} %  {:>5.2} %  {:>10.2} %\n",
            a.class,
            a.rows,
            pct(a.as_normal, a.rows),
            pct(a.as_unknown, a.rows),
            pct(a.as_known_attack, a.rows)
        );
    }
    out
}

/// The evaluation's caveats on stderr: rows of unknown classes left out, test rows that
/// repeat training rows.
pub fn warn_scored(s: &Scored, quiet: bool) {
    if quiet {
        return;
    }
    if !s.unknown_classes.is_empty() {
        eprintln!(
            "note: {}: {} rows of classes the model was not trained on are left out of the metrics (what the detector made of them is in metrics.json's absent_classes): {:?}",
            s.what,
            s.unknown_classes.values().sum::<u64>(),
            s.unknown_classes
        );
    }
    if s.also_in_training > 0 {
        eprintln!(
            "warning: {}: {} test rows are identical to training rows (their scores flatter the model)",
            s.what, s.also_in_training
        );
    }
}

/// The same caveats as report paragraphs.
pub fn evaluation_notes(s: &Scored) -> Vec<Block> {
    let mut notes = Vec::new();
    if !s.unknown_classes.is_empty() {
        notes.push(Block::Paragraph(format!(
            "Left out of the metrics: rows of classes the model was not trained on: {:?}.",
            s.unknown_classes
        )));
        notes.push(Block::Paragraph(
            s.absent
                .iter()
                .map(|a| {
                    format!(
                        "{}: {} rows, {:.2} % passed as normal, {:.2} % unknown, {:.2} % as a known attack.",
                        a.class,
                        a.rows,
                        a.as_normal as f64 * 100.0 / a.rows.max(1) as f64,
                        a.as_unknown as f64 * 100.0 / a.rows.max(1) as f64,
                        a.as_known_attack as f64 * 100.0 / a.rows.max(1) as f64
                    )
                })
                .collect::<Vec<_>>()
                .join(" "),
        ));
    }
    if s.also_in_training > 0 {
        notes.push(Block::Paragraph(format!(
            "Warning: {} test rows are identical to training rows; their scores flatter the model.",
            s.also_in_training
        )));
    }
    notes
}

/// learning_curves.csv: one row per epoch.
pub fn write_learning_curves(path: &Path, h: &History) -> Result<()> {
    let mut w = csv_file(path)?;
    w.write_record([
        "epoch",
        "train_loss",
        "train_accuracy",
        "validation_loss",
        "validation_accuracy",
        "seconds",
    ])?;
    let opt = |x: Option<f64>| x.map_or(String::new(), |v| v.to_string());
    for e in &h.epochs {
        w.write_record([
            e.epoch.to_string(),
            e.train_loss.to_string(),
            e.train_accuracy.to_string(),
            opt(e.validation_loss),
            opt(e.validation_accuracy),
            format!("{:.3}", e.seconds),
        ])?;
    }
    w.flush()
        .with_context(|| format!("{}: cannot write", path.display()))
}
