//! `iotids compare`: the GRU beside classical and deep baselines on one file, with the same
//! preparation, split and metrics for every model (iotids-baselines), written as a table
//! (printed, CSV, Markdown, JSON), a bar chart and report.html.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use iotids_baselines::compare::{self, Outcome, Table, Task, Variant};
use iotids_data::Dataset;
use iotids_data::pipeline::Pipeline;
use iotids_data::prepare::Prepared;
use iotids_data::schema::normal_class;
use iotids_data::window::{PAD, Sequences, WindowBy};
use iotids_model::detect::{class_labels, ingest_options, known_rows};
use iotids_report as report;
use serde_json::json;

use super::prepare;
use crate::job::{CompareJob, Ui};
use crate::output::{csv_file, finish_report, print, read, start_output, write_file};
use crate::progress;

/// `iotids compare`. Exit code 1 when a model could not be fitted (the others are still
/// compared and written; the failure is printed and in the report).
pub fn run(job: &CompareJob, ui: Ui) -> Result<ExitCode> {
    let file = &job.learn.input.path;
    let out = &job.learn.out;
    let window = job.learn.window.get();
    let settings = &job.settings;
    let loaded = prepare::load(&job.learn.input, &job.learn.prepare, ui)?;
    let p = &loaded.prepared;
    let figures = start_output(out, p, &p.config)?;

    let ds = &p.dataset;
    // Windows need flows. Without endpoint columns the windowed models cannot run: they
    // are named in the notes and left out, and the single-record models still compare.
    let (models, not_run): (Vec<Variant>, Vec<Variant>) = job
        .models
        .iter()
        .copied()
        .partition(|v| v.window == 1 || ds.flows.is_some());
    let mut lengths: Vec<usize> = models.iter().map(|v| v.window).collect();
    lengths.sort_unstable();
    lengths.dedup();
    let by = job.learn.window_by;
    let sequences = windows(&p.pipeline, ds, &lengths, by)?;

    // The scored rows: the split's test rows, or every row of --test whose class the
    // training file has.
    let test = match &job.test {
        None => None,
        Some(path) => Some(read_test(path, p, &lengths, by, ui)?),
    };
    let (test_table, test_rows, what) = match &test {
        None => (
            Table {
                sequences: &sequences,
                labels: &ds.labels,
            },
            &p.split.test[..],
            format!(
                "test rows of {} ({:?} split)",
                file.display(),
                p.config.split.method
            ),
        ),
        Some(t) => (
            Table {
                sequences: &t.sequences,
                labels: &t.labels,
            },
            &t.rows[..],
            format!("rows of {}", t.path.display()),
        ),
    };
    let task = Task {
        data: Table {
            sequences: &sequences,
            labels: &ds.labels,
        },
        test_data: test_table,
        classes: &p.pipeline.classes,
        normal: normal_class(&p.pipeline.classes),
        class_weights: &p.pipeline.class_weights,
        train: &p.split.train,
        validation: &p.split.validation,
        test: test_rows,
    };

    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut failures: Vec<(Variant, String)> = Vec::new();
    for &variant in &models {
        let name = variant.label();
        let bar = progress::step(&format!("training {name}"), ui.quiet);
        let mut on_event = progress::training(settings.train.epochs, ui.quiet);
        let result = compare::run(variant, &task, settings, &mut on_event);
        drop(on_event);
        bar.finish_and_clear();
        match result {
            Ok(o) => {
                print(&format!(
                    "{}: macro-F1 {:.4}, trained on {} in {:.1} s, {:.0} records/s",
                    o.name,
                    o.metrics.macro_f1,
                    report::compare::trained_on(&o),
                    o.train_seconds,
                    o.records_per_second
                ))?;
                outcomes.push(o);
            }
            Err(e) => {
                eprintln!("error: {name}: {e}");
                failures.push((variant, e.to_string()));
            }
        }
    }

    let mut notes = report::compare::notes(&outcomes, &failures, settings);
    if !not_run.is_empty() {
        let names: Vec<String> = not_run.iter().map(|v| v.label()).collect();
        let note = format!(
            "Not run: {}: windows of records need flows, built from endpoint columns (addresses, ports), and {} has none. --window 1 compares the recurrent models on single records; --classical-window 1 leaves the windowed classical models out.",
            names.join(", "),
            file.display()
        );
        eprintln!("warning: {note}");
        notes.insert(0, note);
    }
    if let Some(t) = &test {
        for note in t.notes() {
            if !ui.quiet {
                eprintln!("warning: {note}");
            }
            notes.push(note);
        }
    }
    let rows = report::compare::rows(&outcomes);
    print(&format!(
        "\n== comparison: {what} ({} rows) ==",
        task.test.len()
    ))?;
    print(&report::text::plain_table(&report::compare::HEADER, &rows))?;
    for n in &notes {
        print(n)?;
    }

    let (class_header, class_rows) = report::compare::per_class_f1(&outcomes);
    let class_header: Vec<&str> = class_header.iter().map(String::as_str).collect();
    let md = format!(
        "{}\nF1 per class on the test rows:\n\n{}",
        report::compare::markdown(&report::compare::HEADER, &rows),
        report::compare::markdown(&class_header, &class_rows)
    );
    write_file(&out.join("comparison.md"), md)?;
    write_csv(&out.join("comparison.csv"), &outcomes)?;
    // The rows each subsampled model trained on, as source lines, so a reference run
    // (tests/reference/compare_sklearn.py) can fit on exactly those.
    let subsamples: std::collections::BTreeMap<&str, Vec<u64>> = outcomes
        .iter()
        .filter_map(|o| {
            let rows = o.subsample.as_ref()?;
            Some((o.key.as_str(), rows.iter().map(|&r| ds.lines[r]).collect()))
        })
        .collect();
    write_file(
        &out.join("subsamples.json"),
        serde_json::to_string(&subsamples)?,
    )?;
    // The windows a windowed classical model read, as source lines, so a reference run
    // can flatten the same records: windows-K.csv.
    let mut flattened: Vec<usize> = outcomes
        .iter()
        .filter(|o| o.window > 1 && o.epochs.is_none())
        .map(|o| o.window)
        .collect();
    flattened.sort_unstable();
    flattened.dedup();
    if !flattened.is_empty() {
        let rows: Vec<usize> = match &test {
            None => [&p.split.train[..], &p.split.test[..]].concat(),
            Some(_) => p.split.train.clone(),
        };
        for k in flattened {
            write_windows(
                &out.join(format!("windows-{k}.csv")),
                task.data.windows(k)?,
                &ds.lines,
                &rows,
            )?;
        }
    }
    let doc = json!({
        "file": file.display().to_string(),
        "test": what,
        "test_file": job.test.as_ref().map(|t| t.display().to_string()),
        "test_rows": task.test.len(),
        "unknown_classes": test.as_ref().map(|t| &t.unknown_classes),
        "window": window,
        "train": settings.train,
        "hidden": settings.hidden,
        "layers": settings.layers,
        "max_rows": settings.caps.iter().map(|(k, v)| (k.key(), v)).collect::<std::collections::BTreeMap<_, _>>(),
        "models": outcomes,
        "failed": failures.iter().map(|(v, e)| json!({"model": v.key(), "error": e})).collect::<Vec<_>>(),
        "notes": notes,
    });
    write_file(
        &out.join("comparison.json"),
        serde_json::to_string_pretty(&doc)?,
    )?;

    let run = loaded.context(format!("trained on {}", file.display()));
    let mut page = report::html::Report::new("iotids: model comparison", &run.subtitle);
    for b in report::compare::sections(&outcomes, &notes, &figures)? {
        page.push(b);
    }
    finish_report(
        page,
        &run,
        p,
        &figures,
        out,
        "comparison.csv, comparison.md, comparison.json, subsamples.json, windows-K.csv (a windowed classical model's windows), split.json, prepare.json",
        false,
    )?;
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// windows-K.csv: for each of `rows` (training rows, then the split's test rows), the
/// source lines of its window's records, oldest first, the row itself last; empty where
/// the position is before the flow's start.
fn write_windows(path: &Path, sequences: &Sequences, lines: &[u64], rows: &[usize]) -> Result<()> {
    let mut w = csv_file(path)?;
    let k = sequences.k;
    let header: Vec<String> = (1..=k).map(|t| format!("record{t}")).collect();
    w.write_record(&header)?;
    for &r in rows {
        w.write_record(sequences.windows[r * k..(r + 1) * k].iter().map(|&src| {
            if src == PAD {
                String::new()
            } else {
                lines[src as usize].to_string()
            }
        }))?;
    }
    w.flush()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// comparison.csv: one row per model, numbers at full precision, empty where undefined.
fn write_csv(path: &Path, outcomes: &[Outcome]) -> Result<()> {
    let mut w = csv_file(path)?;
    w.write_record([
        "model",
        "name",
        "library",
        "window",
        "train_rows",
        "train_rows_available",
        "subsampled",
        "accuracy",
        "macro_f1",
        "weighted_f1",
        "detection_rate",
        "false_alarm_rate",
        "roc_auc_macro",
        "train_seconds",
        "inference_seconds",
        "records_per_second",
        "epochs",
        "best_epoch",
    ])?;
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for o in outcomes {
        let m = &o.metrics;
        w.write_record([
            o.key.clone(),
            o.name.clone(),
            o.library.clone(),
            o.window.to_string(),
            o.train_rows.to_string(),
            o.train_rows_available.to_string(),
            o.subsampled().to_string(),
            m.accuracy.to_string(),
            m.macro_f1.to_string(),
            m.weighted_f1.to_string(),
            opt(m.detection_rate),
            opt(m.false_alarm_rate),
            opt(m.roc_auc_macro),
            o.train_seconds.to_string(),
            o.inference_seconds.to_string(),
            o.records_per_second.to_string(),
            o.epochs.map_or(String::new(), |e| e.0.to_string()),
            o.epochs.map_or(String::new(), |e| e.1.to_string()),
        ])?;
    }
    w.flush()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

/// Windows of every length in `lengths` over all rows of `ds`, following `by`, through the
/// fitted pipeline.
fn windows(
    pipeline: &Pipeline,
    ds: &Dataset,
    lengths: &[usize],
    by: WindowBy,
) -> Result<Vec<Sequences>> {
    let all: Vec<usize> = (0..ds.n_rows()).collect();
    let features = pipeline.transform(ds, &all)?;
    let mut out = Vec::with_capacity(lengths.len());
    for &k in lengths {
        out.push(Sequences::new(features.clone(), ds.window_keys(by), k)?);
    }
    Ok(out)
}

/// The `--test` file, read the way the training file was and prepared by its pipeline.
struct TestFile {
    path: std::path::PathBuf,
    sequences: Vec<Sequences>,
    /// Class of every row in the pipeline's numbering (0 for unknown ones, never read).
    labels: Vec<u32>,
    /// The rows whose class the training file has.
    rows: Vec<usize>,
    /// Rows of classes the training file lacks (class → rows).
    unknown_classes: std::collections::BTreeMap<String, u64>,
    /// Scored rows identical to a training row.
    also_in_training: usize,
}

impl TestFile {
    fn notes(&self) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.unknown_classes.is_empty() {
            let counts: Vec<String> = self
                .unknown_classes
                .iter()
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            notes.push(format!(
                "{}: {} rows of classes the training file lacks are not scored: {}.",
                self.path.display(),
                self.unknown_classes.values().sum::<u64>(),
                counts.join(", ")
            ));
        }
        if self.also_in_training > 0 {
            notes.push(format!(
                "{}: {} scored rows are identical to training rows (their scores flatter every model).",
                self.path.display(),
                self.also_in_training
            ));
        }
        notes
    }
}

fn read_test(
    path: &Path,
    p: &Prepared,
    lengths: &[usize],
    by: WindowBy,
    ui: Ui,
) -> Result<TestFile> {
    let ds = read(
        path,
        &ingest_options(&p.pipeline, ui.threads(), false),
        ui.quiet,
    )?;
    let sequences = windows(&p.pipeline, &ds, lengths, by)
        .with_context(|| format!("--test {}: cannot apply the pipeline", path.display()))?;
    let (mapped, unknown_classes) = class_labels(&p.pipeline, &ds);
    let (rows, labels) = known_rows(&mapped);
    let hashes = p.train_hashes();
    let also_in_training = rows
        .iter()
        .filter(|&&r| hashes.contains(&ds.row_hashes[r]))
        .count();
    Ok(TestFile {
        path: path.to_path_buf(),
        sequences,
        labels,
        rows,
        unknown_classes,
        also_in_training,
    })
}
