//! The model commands: `train`, `evaluate`, `predict`, and the learning half of `demo`.
//!
//! Data flows one way: a file is read and prepared by iotids-data, the network is trained
//! and scored by iotids-model, and iotids-report turns the results into tables, pictures
//! and report.html. This module only wires them and writes the files.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use iotids_data::audit::{self, Audit, AuditOptions};
use iotids_data::describe::{Description, describe};
use iotids_data::ingest::{UNLABELLED, read_csv_batches};
use iotids_data::prepare::{PrepareConfig, Prepared, prepare};
use iotids_data::schema::normal_class;
use iotids_data::split::SplitMethod;
use iotids_data::window::Sequences;
use iotids_model::artifact::{Detector, MODEL_FORMAT_VERSION, ModelCard};
use iotids_model::detect::StreamWindows;
use iotids_model::gru::{GruClassifier, GruConfig};
use iotids_model::metrics::{Metrics, evaluate};
use iotids_model::train::{Examples, History, Scores, TrainConfig, score};
use iotids_report as report;
use rustc_hash::FxHashSet;

use crate::cli::{Cli, IngestArgs, ModelArgs, PrepArgs};
use crate::commands::{print, read, summary, write_prepared};
use crate::progress;

/// Windows per inference batch when scoring held-out rows.
pub const SCORE_BATCH: usize = 1024;

/// `iotids train`.
pub fn train(
    file: &Path,
    out: &Path,
    test: Option<&Path>,
    ingest: &IngestArgs,
    prep: &PrepArgs,
    model: &ModelArgs,
    cli: &Cli,
) -> Result<ExitCode> {
    let loaded = load_for_training(file, ingest, prep, test.is_some(), cli)?;
    train_prepared(&loaded.prepared, &loaded.run(file), model, out, test, cli)?;
    Ok(ExitCode::SUCCESS)
}

/// A labelled file read, described, audited, split and with its pipeline fitted: what
/// `train` and `federate` start from.
pub struct Loaded {
    pub prepared: Prepared,
    pub description: Description,
    pub audit: Audit,
    pub config: PrepareConfig,
}

impl Loaded {
    /// The report's view of the run.
    pub fn run(&self, file: &Path) -> Run<'_> {
        Run {
            description: &self.description,
            audit: &self.audit,
            config: &self.config,
            subtitle: format!("trained on {}", file.display()),
        }
    }
}

/// Reads and prepares `file` for training. The split defaults to flows when the file has
/// them; with `separate_test` (a `--test FILE`), it has training and validation sides only.
pub fn load_for_training(
    file: &Path,
    ingest: &IngestArgs,
    prep: &PrepArgs,
    separate_test: bool,
    cli: &Cli,
) -> Result<Loaded> {
    let mut cfg = prep.validate()?;
    let opts = ingest.options(cli.threads)?;
    let ds = read(file, &opts, cli.quiet)?;
    if prep.split.is_none() && ds.flows.is_some() {
        cfg.split.method = SplitMethod::Flow;
    }
    if separate_test {
        // The test rows come from the other file: split this one into train and
        // validation only, in the ratio given.
        let s = cfg.split.train + cfg.split.validation;
        cfg.split.train /= s;
        cfg.split.validation /= s;
        cfg.split.test = 0.0;
    }
    let bar = progress::step("describing and auditing", cli.quiet);
    let description = describe(&ds);
    let audit = audit::audit(&ds, &AuditOptions::default());
    bar.finish_and_clear();
    let bar = progress::step("splitting and fitting the pipeline", cli.quiet);
    let p = prepare(ds, &opts, &cfg);
    bar.finish_and_clear();
    Ok(Loaded {
        prepared: p?,
        description,
        audit,
        config: cfg,
    })
}

/// Creates `out/figures` (returned), writes the preparation's files (pipeline.json,
/// split.json, prepare.json) to `out` and prints the split summary: how `train`,
/// `federate` and `compare` begin their output.
pub fn start_output(out: &Path, p: &Prepared, config: &PrepareConfig) -> Result<PathBuf> {
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures)
        .with_context(|| format!("{}: cannot create directory", figures.display()))?;
    write_prepared(out, p, config, false)?;
    print(&summary(p, out))?;
    Ok(figures)
}

/// What the report says about the run besides the model.
pub struct Run<'a> {
    pub description: &'a Description,
    pub audit: &'a Audit,
    pub config: &'a PrepareConfig,
    pub subtitle: String,
}

/// Trains on a prepared table, saves the model directory to `out`, evaluates on the test
/// rows (or `test`), and writes metrics, pictures and report.html. Returns the metrics.
pub fn train_prepared(
    p: &Prepared,
    run: &Run<'_>,
    model: &ModelArgs,
    out: &Path,
    test: Option<&Path>,
    cli: &Cli,
) -> Result<Option<Metrics>> {
    let seed = run.config.split.seed;
    let train_cfg = model.train_config(seed)?;
    let figures = start_output(out, p, run.config)?;

    let ds = &p.dataset;
    let all: Vec<usize> = (0..ds.n_rows()).collect();
    let features = p.pipeline.transform(ds, &all)?;
    let sequences = Sequences::new(features, ds.flows.as_deref(), model.window)?;
    let gru = model.gru_config(sequences.features.cols, p.pipeline.classes.len(), seed)?;
    let examples = |rows| Examples {
        sequences: &sequences,
        labels: &ds.labels,
        rows,
    };
    let mut on_event = progress::training(train_cfg.epochs, cli.quiet);
    let (net, history) = iotids_model::train::train(
        &gru,
        &train_cfg,
        &p.pipeline.class_weights,
        examples(&p.split.train),
        examples(&p.split.validation),
        &mut on_event,
    )?;
    drop(on_event);
    print(&epochs_line(&history))?;

    let detector = detector(p, gru, model.window, train_cfg, history, net);
    detector.save(out)?;
    write_learning_curves(&out.join("learning_curves.csv"), &detector.card.history)?;

    // Evaluation: the held-out rows of the same file, or the --test file.
    let evaluation = match test {
        None => score_test_rows(&detector, p, &sequences, run.config, cli),
        Some(path) => {
            let train_hashes: FxHashSet<u128> =
                p.split.train.iter().map(|&r| ds.row_hashes[r]).collect();
            Some(score_file(
                &detector,
                path,
                Some(&train_hashes),
                SCORE_BATCH,
                cli,
            )?)
        }
    };
    let metrics = match &evaluation {
        Some(s) => Some(write_evaluation(&detector, s, out)?),
        None => None,
    };

    let mut page = report::html::Report::new("iotids: GRU intrusion detector", &run.subtitle);
    page.push(report::html::Block::KeyValues(vec![
        ("model directory".into(), out.display().to_string()),
        (
            "preparation".into(),
            serde_json::to_string(run.config).unwrap_or_default(),
        ),
    ]));
    if let (Some(s), Some(m)) = (&evaluation, &metrics) {
        for b in report::pages::evaluation_sections(m, &s.what, &figures)? {
            page.push(b);
        }
        push_evaluation_notes(&mut page, s);
    }
    for b in report::pages::training_sections(&detector.card, &figures)? {
        page.push(b);
    }
    write_report(
        page,
        run,
        p,
        &figures,
        out,
        "the model (model.json, weights.bpk, pipeline.json), split.json, prepare.json, learning_curves.csv",
        metrics.is_some(),
    )?;
    Ok(metrics)
}

/// Ends `page` with the data sections (description, audit, preparation), writes it to
/// `out/report.html` and says what the run wrote: `wrote`, then the evaluation's files if
/// it `evaluated`, figures/ and the report.
pub fn write_report(
    mut page: report::html::Report,
    run: &Run<'_>,
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
    let html = out.join("report.html");
    std::fs::write(&html, page.to_html())
        .with_context(|| format!("{}: cannot write", html.display()))?;
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

/// The model directory's contents for a network trained on `p`.
pub fn detector(
    p: &Prepared,
    gru: GruConfig,
    window: usize,
    train: TrainConfig,
    history: History,
    net: GruClassifier,
) -> Detector {
    Detector {
        card: ModelCard {
            format_version: MODEL_FORMAT_VERSION,
            iotids_version: env!("CARGO_PKG_VERSION").into(),
            gru,
            window,
            classes: p.pipeline.classes.clone(),
            normal_class: normal_class(&p.pipeline.classes).map(|i| p.pipeline.classes[i].clone()),
            features: p
                .pipeline
                .feature_names()
                .iter()
                .map(|s| s.to_string())
                .collect(),
            train,
            history,
        },
        pipeline: p.pipeline.clone(),
        net,
    }
}

/// Scores the split's test rows (None, with a note, when the split has none).
pub fn score_test_rows(
    detector: &Detector,
    p: &Prepared,
    sequences: &Sequences,
    config: &PrepareConfig,
    cli: &Cli,
) -> Option<Scored> {
    let ds = &p.dataset;
    if p.split.test.is_empty() {
        eprintln!("note: no test rows (--fractions gives the test side 0): no evaluation");
        return None;
    }
    let bar = progress::step("scoring the test rows", cli.quiet);
    let scores = score(
        &detector.net,
        Examples {
            sequences,
            labels: &ds.labels,
            rows: &p.split.test,
        },
        SCORE_BATCH,
    );
    bar.finish_and_clear();
    Some(Scored {
        what: format!(
            "held-out test rows of {} ({:?} split)",
            ds.path.display(),
            config.split.method
        ),
        lines: p.split.test.iter().map(|&r| ds.lines[r]).collect(),
        y_true: p.split.test.iter().map(|&r| ds.labels[r]).collect(),
        scores,
        unknown_classes: BTreeMap::new(),
        also_in_training: 0,
    })
}

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

/// Scored rows of some file, ready for metrics.
pub struct Scored {
    pub what: String,
    /// Source line of each scored row.
    lines: Vec<u64>,
    /// True class (model numbering) of each scored row.
    y_true: Vec<u32>,
    scores: Scores,
    /// Rows left out because the model does not know their class.
    unknown_classes: BTreeMap<String, u64>,
    /// Scored rows identical to a training row (only for a separate test file).
    also_in_training: u64,
}

/// Reads a labelled file the way the model's training file was read and scores it.
fn score_file(
    detector: &Detector,
    path: &Path,
    train_hashes: Option<&FxHashSet<u128>>,
    batch: usize,
    cli: &Cli,
) -> Result<Scored> {
    let opts = detector.ingest_options(cli.threads, false);
    let ds = read(path, &opts, cli.quiet)?;
    let inputs = detector
        .inputs(&ds)
        .with_context(|| format!("{}: cannot apply the model", path.display()))?;
    let (rows, labels) = inputs.known();
    if !inputs.unknown_classes.is_empty() && !cli.quiet {
        eprintln!(
            "warning: {}: {} rows of classes the model was not trained on are left out of the metrics: {:?}",
            path.display(),
            inputs.unknown_classes.values().sum::<u64>(),
            inputs.unknown_classes
        );
    }
    let also_in_training = train_hashes.map_or(0, |h| {
        rows.iter()
            .filter(|&&r| h.contains(&ds.row_hashes[r]))
            .count() as u64
    });
    if also_in_training > 0 && !cli.quiet {
        eprintln!(
            "warning: {}: {also_in_training} test rows are identical to training rows (their scores flatter the model)",
            path.display()
        );
    }
    let bar = progress::step(&format!("scoring {} rows", rows.len()), cli.quiet);
    let scores = detector.score(&inputs.sequences, &rows, batch);
    bar.finish_and_clear();
    Ok(Scored {
        what: path.display().to_string(),
        lines: rows.iter().map(|&r| ds.lines[r]).collect(),
        y_true: rows.iter().map(|&r| labels[r]).collect(),
        scores,
        unknown_classes: inputs.unknown_classes,
        also_in_training,
    })
}

/// Computes the metrics, prints the classification report, writes metrics.json and
/// predictions.csv.
pub fn write_evaluation(detector: &Detector, s: &Scored, out: &Path) -> Result<Metrics> {
    let classes = &detector.card.classes;
    let y_pred = s.scores.predictions();
    let m = evaluate(
        &s.y_true,
        &y_pred,
        &s.scores.probabilities,
        classes,
        detector.normal_index(),
    );
    print(&format!("== evaluation: {} ==", s.what))?;
    print(&report::render_classification_report(&m))?;

    // metrics.json: the Metrics fields, with per_class keyed by class name for people.
    let mut json = serde_json::to_value(&m)?;
    let per_class: serde_json::Map<String, serde_json::Value> = classes
        .iter()
        .zip(&m.per_class)
        .map(|(c, v)| Ok((c.clone(), serde_json::to_value(v)?)))
        .collect::<Result<_, serde_json::Error>>()?;
    json["per_class"] = per_class.into();
    json["evaluated_on"] = s.what.clone().into();
    json["rows_scored"] = s.y_true.len().into();
    json["rows_unknown_class"] = serde_json::to_value(&s.unknown_classes)?;
    json["rows_also_in_training"] = s.also_in_training.into();
    json["window"] = detector.card.window.into();
    let path = out.join("metrics.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("{}: cannot write", path.display()))?;

    let path = out.join("predictions.csv");
    let f = File::create(&path).with_context(|| format!("{}: cannot create", path.display()))?;
    let mut w = csv::Writer::from_writer(BufWriter::new(f));
    let mut header = vec!["line".to_string(), "true".into(), "predicted".into()];
    header.extend(classes.iter().map(|c| format!("p_{c}")));
    w.write_record(&header)?;
    let mut rec: Vec<String> = Vec::with_capacity(header.len());
    for (i, (&line, &y)) in s.lines.iter().zip(&s.y_true).enumerate() {
        rec.clear();
        rec.push(line.to_string());
        rec.push(classes[y as usize].clone());
        rec.push(classes[y_pred[i] as usize].clone());
        rec.extend(s.scores.row(i).iter().map(|p| format!("{p:.6}")));
        w.write_record(&rec)?;
    }
    w.flush()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(m)
}

pub fn push_evaluation_notes(page: &mut report::html::Report, s: &Scored) {
    if !s.unknown_classes.is_empty() {
        page.push(report::html::Block::Paragraph(format!(
            "Left out of the metrics: rows of classes the model was not trained on: {:?}.",
            s.unknown_classes
        )));
    }
    if s.also_in_training > 0 {
        page.push(report::html::Block::Paragraph(format!(
            "Warning: {} test rows are identical to training rows; their scores flatter the model.",
            s.also_in_training
        )));
    }
}

pub fn write_learning_curves(path: &Path, h: &History) -> Result<()> {
    let f = File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    let mut w = csv::Writer::from_writer(BufWriter::new(f));
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
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// `iotids evaluate`.
pub fn evaluate_file(
    file: &Path,
    model_dir: &Path,
    out: &Path,
    batch: usize,
    cli: &Cli,
) -> Result<ExitCode> {
    let detector = Detector::load(model_dir)?;
    let figures = out.join("figures");
    std::fs::create_dir_all(&figures)
        .with_context(|| format!("{}: cannot create directory", figures.display()))?;
    let scored = score_file(&detector, file, None, batch.max(1), cli)?;
    let m = write_evaluation(&detector, &scored, out)?;
    let mut page = report::html::Report::new(
        "iotids: evaluation",
        format!("model {} on {}", model_dir.display(), file.display()),
    );
    for b in report::pages::evaluation_sections(&m, &scored.what, &figures)? {
        page.push(b);
    }
    push_evaluation_notes(&mut page, &scored);
    for b in report::pages::training_sections(&detector.card, &figures)? {
        page.push(b);
    }
    let html = out.join("report.html");
    std::fs::write(&html, page.to_html())
        .with_context(|| format!("{}: cannot write", html.display()))?;
    print(&format!(
        "wrote metrics.json, predictions.csv, figures/ and report.html to {}",
        out.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `iotids predict`: streams `file` in batches of `batch_rows`.
pub fn predict(
    file: &Path,
    model_dir: &Path,
    out: Option<&Path>,
    batch_rows: usize,
    cli: &Cli,
) -> Result<ExitCode> {
    let detector = Detector::load(model_dir)?;
    let classes = &detector.card.classes;
    let sink: Box<dyn Write> = match out {
        Some(p) => {
            Box::new(File::create(p).with_context(|| format!("{}: cannot create", p.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = csv::Writer::from_writer(BufWriter::with_capacity(1 << 20, sink));
    let mut stream = StreamWindows::new(detector.card.window, detector.card.features.len());
    let (bar, cb) = progress::reading(file, cli.quiet || out.is_none());
    let opts = iotids_data::IngestOptions {
        progress: Some(cb),
        ..detector.ingest_options(cli.threads, true)
    };
    let mut predicted_counts = vec![0u64; classes.len()];
    let mut header_written = false;
    let mut rec: Vec<String> = Vec::new();
    let report = read_csv_batches(file, &opts, batch_rows.max(1), |ds| -> Result<()> {
        let labelled = !ds.classes.iter().all(|c| c == UNLABELLED);
        if !header_written {
            let mut header = vec!["line".to_string(), "predicted".into(), "probability".into()];
            if labelled {
                header.push("true".into());
            }
            header.extend(classes.iter().map(|c| format!("p_{c}")));
            w.write_record(&header)?;
            header_written = true;
        }
        let all: Vec<usize> = (0..ds.n_rows()).collect();
        let features = detector
            .pipeline
            .transform(&ds, &all)
            .with_context(|| format!("{}: cannot apply the model", file.display()))?;
        let (sequences, range) = stream.next_batch(features, ds.flows.as_deref())?;
        let rows: Vec<usize> = range.collect();
        let scores = detector.score(&sequences, &rows, SCORE_BATCH);
        let predictions = scores.predictions();
        for (i, &p) in predictions.iter().enumerate() {
            predicted_counts[p as usize] += 1;
            let probs = scores.row(i);
            rec.clear();
            rec.push(ds.lines[i].to_string());
            rec.push(classes[p as usize].clone());
            rec.push(format!("{:.6}", probs[p as usize]));
            if labelled {
                rec.push(ds.classes[ds.labels[i] as usize].clone());
            }
            rec.extend(probs.iter().map(|v| format!("{v:.6}")));
            w.write_record(&rec)?;
        }
        Ok(())
    });
    bar.finish_and_clear();
    let report = report?;
    w.flush().context("writing predictions")?;
    drop(w);
    if !cli.quiet {
        if report.rows_rejected > 0 {
            eprintln!(
                "warning: {}: {} of {} rows rejected (not predicted)",
                file.display(),
                report.rows_rejected,
                report.rows_read
            );
            for r in report.first_rejects.iter().take(5) {
                eprintln!("  {}:{}: {}", file.display(), r.line, r.reason);
            }
        }
        let total: u64 = predicted_counts.iter().sum();
        let mut line = format!("predicted {total} rows:");
        for (c, n) in classes.iter().zip(&predicted_counts) {
            if *n > 0 {
                line += &format!(" {c} {n},");
            }
        }
        eprintln!("{}", line.trim_end_matches(','));
        if let Some(p) = out {
            eprintln!("wrote {}", p.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The demo's model: windows of 8 records of a flow, a short training run so the
/// demo takes minutes on two cores.
pub fn demo_model_args() -> ModelArgs {
    ModelArgs {
        window: 8,
        hidden: 64,
        layers: 1,
        dropout: 0.0,
        reset_before: false,
        epochs: 12,
        batch: 256,
        lr: 2e-3,
        patience: 3,
        no_class_weights: false,
    }
}

/// Where the demo writes the model.
pub fn demo_model_dir(out: &Path) -> PathBuf {
    out.join("model")
}
