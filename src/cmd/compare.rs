//! `iotids compare`: the GRU beside classical and deep baselines on one file, with the same
//! preparation, split and metrics for every model (iotids-baselines), written as a table
//! (printed, CSV, Markdown, JSON), a bar chart and report.html.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use iotids_baselines::compare::{self, ModelKind, Outcome, Task};
use iotids_data::schema::normal_class;
use iotids_data::window::Sequences;
use iotids_report as report;
use serde_json::json;

use super::prepare;
use crate::job::{CompareJob, Ui};
use crate::output::{csv_file, finish_report, print, start_output, write_file};
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
    let all: Vec<usize> = (0..ds.n_rows()).collect();
    let features = p.pipeline.transform(ds, &all)?;
    let records = Sequences::new(features.clone(), ds.flows.as_deref(), 1)?;
    // Windows need flows. Without endpoint columns the windowed models cannot run: they
    // are named in the notes and left out, and the single-record models still compare.
    let (windows, not_run) = match (&ds.flows, window) {
        (_, 1) => (None, Vec::new()),
        (Some(flows), k) => (Some(Sequences::new(features, Some(flows), k)?), Vec::new()),
        (None, k) => {
            let skipped: Vec<ModelKind> = job
                .models
                .iter()
                .copied()
                .filter(|m| m.window(k) > 1)
                .collect();
            (None, skipped)
        }
    };
    let models: Vec<ModelKind> = job
        .models
        .iter()
        .copied()
        .filter(|m| !not_run.contains(m))
        .collect();
    let task = Task {
        records: &records,
        windows: windows.as_ref().unwrap_or(&records),
        labels: &ds.labels,
        classes: &p.pipeline.classes,
        normal: normal_class(&p.pipeline.classes),
        class_weights: &p.pipeline.class_weights,
        train: &p.split.train,
        validation: &p.split.validation,
        test: &p.split.test,
    };

    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut failures: Vec<(ModelKind, String)> = Vec::new();
    for &kind in &models {
        let name = kind.label(window);
        let bar = progress::step(&format!("training {name}"), ui.quiet);
        let mut on_event = progress::training(settings.train.epochs, ui.quiet);
        let result = compare::run(kind, &task, settings, &mut on_event);
        drop(on_event);
        bar.finish_and_clear();
        match result {
            Ok(o) => {
                print(&format!(
                    "{name}: macro-F1 {:.4}, trained on {} in {:.1} s, {:.0} records/s",
                    o.metrics.macro_f1,
                    report::compare::trained_on(&o),
                    o.train_seconds,
                    o.records_per_second
                ))?;
                outcomes.push(o);
            }
            Err(e) => {
                eprintln!("error: {name}: {e}");
                failures.push((kind, e.to_string()));
            }
        }
    }

    let mut notes = report::compare::notes(&outcomes, &failures, settings, window);
    if !not_run.is_empty() {
        let names: Vec<String> = not_run.iter().map(|m| m.label(window)).collect();
        let note = format!(
            "Not run: {}: windows of {} records need flows, built from endpoint columns (addresses, ports), and {} has none. --window 1 compares the recurrent models on single records.",
            names.join(", "),
            window,
            file.display()
        );
        eprintln!("warning: {note}");
        notes.insert(0, note);
    }
    let rows = report::compare::rows(&outcomes);
    print(&format!(
        "\n== comparison: test rows of {} ({} rows) ==",
        file.display(),
        p.split.test.len()
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
            Some((o.model.key(), rows.iter().map(|&r| ds.lines[r]).collect()))
        })
        .collect();
    write_file(
        &out.join("subsamples.json"),
        serde_json::to_string(&subsamples)?,
    )?;
    let doc = json!({
        "file": file.display().to_string(),
        "test_rows": p.split.test.len(),
        "window": window,
        "train": settings.train,
        "hidden": settings.hidden,
        "layers": settings.layers,
        "max_rows": settings.caps.iter().map(|(k, v)| (k.key(), v)).collect::<std::collections::BTreeMap<_, _>>(),
        "models": outcomes,
        "failed": failures.iter().map(|(k, e)| json!({"model": k.key(), "error": e})).collect::<Vec<_>>(),
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
        "comparison.csv, comparison.md, comparison.json, subsamples.json, split.json, prepare.json",
        false,
    )?;
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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
            o.model.key().to_string(),
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
