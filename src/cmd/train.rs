//! `iotids train`, and the training half of `demo`: train the GRU on a prepared table,
//! save the model directory, evaluate on the held-out rows (or a `--test` file), write the
//! metrics, learning curves, pictures and report.

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use iotids_data::Dataset;
use iotids_data::window::Sequences;
use iotids_model::artifact::Detector;
use iotids_model::evaluation::Scored;
use iotids_model::examples::{Examples, SCORE_BATCH};
use iotids_model::metrics::Metrics;
use iotids_report as report;
use report::html::{Block, Report};
use rustc_hash::FxHashSet;

use super::prepare::{self, Loaded};
use crate::job::{LearnJob, TrainJob, Ui};
use crate::output::{
    RunContext, epochs_line, evaluation_notes, finish_report, print, read, start_output,
    warn_scored, write_evaluation, write_learning_curves,
};
use crate::progress;

pub fn run(job: &TrainJob, ui: Ui) -> Result<ExitCode> {
    let loaded = prepare::load(&job.learn.input, &job.learn.prepare, ui)?;
    let context = loaded.context(format!("trained on {}", job.learn.input.path.display()));
    train_loaded(&loaded, &context, &job.learn, job.test.as_deref(), ui)?;
    Ok(ExitCode::SUCCESS)
}

/// Trains on a loaded table, saves the model directory to `learn.out`, evaluates on the
/// test rows (or `test`), and writes metrics, pictures and report.html. Returns the
/// metrics.
pub fn train_loaded(
    loaded: &Loaded,
    context: &RunContext<'_>,
    learn: &LearnJob,
    test: Option<&Path>,
    ui: Ui,
) -> Result<Option<Metrics>> {
    let p = &loaded.prepared;
    let out = &learn.out;
    let figures = start_output(out, p, &p.config)?;

    let ds = &p.dataset;
    let (sequences, gru) = loaded.windows_and_network(learn)?;
    let examples = |rows| Examples {
        sequences: &sequences,
        labels: &ds.labels,
        rows,
    };
    // An ensemble: the same rows, K networks from consecutive seeds (initialisation and
    // batch order); the detector averages their class probabilities.
    let k = learn.ensemble.get();
    let mut trained = Vec::with_capacity(k);
    for i in 0..k {
        let seed = learn.train.seed.wrapping_add(i as u64);
        if k > 1 {
            print(&format!("== network {} of {k} (seed {seed}) ==", i + 1))?;
        }
        let cfg = iotids_model::train::TrainConfig {
            seed,
            ..learn.train.clone()
        };
        let mut on_event = progress::training(cfg.epochs, ui.quiet);
        let (net, history) = iotids_model::train::train(
            &gru.clone().with_seed(seed),
            &cfg,
            &p.pipeline.class_weights,
            examples(&p.split.train),
            examples(&p.split.validation),
            &mut on_event,
        )?;
        drop(on_event);
        print(&epochs_line(&history))?;
        trained.push((seed, history, net));
    }
    let mut trained = trained.into_iter();
    let (_, history, net) = trained
        .next()
        .context("an ensemble of at least one network")?;
    let mut detector = Detector::new(
        p.pipeline.clone(),
        gru,
        sequences.k,
        learn.window_by,
        learn.train.clone(),
        history,
        net,
    )
    .with_members(trained.collect());
    detector.calibrate(
        &sequences,
        &ds.labels,
        &p.split.train,
        &p.split.validation,
        &learn.calibration,
    );
    print_decision(&detector)?;
    detector.save(out)?;
    write_learning_curves(&out.join("learning_curves.csv"), &detector.card.history)?;

    // Evaluation: the held-out rows of the same file, or the --test file.
    let evaluation = match test {
        None => score_test_rows(&detector, loaded, &sequences, ui),
        Some(path) => Some(score_file(
            &detector,
            path,
            Some(&p.train_hashes()),
            SCORE_BATCH,
            ui,
        )?),
    };
    let metrics = match &evaluation {
        Some(s) => Some(write_evaluation(&detector, s, out)?),
        None => None,
    };

    let mut page = Report::new("iotids: GRU intrusion detector", &context.subtitle);
    page.push(Block::KeyValues(vec![
        ("model directory".into(), out.display().to_string()),
        ("preparation".into(), serde_json::to_string(&p.config)?),
    ]));
    if let (Some(s), Some(m)) = (&evaluation, &metrics) {
        for b in report::pages::evaluation_sections(m, &s.what, &figures, &detector)? {
            page.push(b);
        }
        for b in evaluation_notes(s) {
            page.push(b);
        }
    }
    for b in report::pages::training_sections(&detector.card, &figures)? {
        page.push(b);
    }
    finish_report(
        page,
        context,
        p,
        &figures,
        out,
        "the model (model.json, weights*.bpk, pipeline.json), split.json, prepare.json, learning_curves.csv",
        metrics.is_some(),
    )?;
    Ok(metrics)
}

/// Scores the split's test rows (None, with a note, when the split has none).
pub fn score_test_rows(
    detector: &Detector,
    loaded: &Loaded,
    sequences: &Sequences,
    ui: Ui,
) -> Option<Scored> {
    let p = &loaded.prepared;
    if p.split.test.is_empty() {
        eprintln!("note: no test rows (--fractions gives the test side 0): no evaluation");
        return None;
    }
    let bar = progress::step("scoring the test rows", ui.quiet);
    let what = format!(
        "held-out test rows of {} ({:?} split)",
        p.dataset.path.display(),
        p.config.split.method
    );
    let scored = detector.score_rows(what, &p.dataset, sequences, &p.split.test, SCORE_BATCH);
    bar.finish_and_clear();
    Some(scored)
}

/// Reads a labelled file the way the model's training file was read and scores it.
pub fn score_file(
    detector: &Detector,
    path: &Path,
    train_hashes: Option<&FxHashSet<u128>>,
    batch: usize,
    ui: Ui,
) -> Result<Scored> {
    let ds = read_for(detector, path, ui)?;
    score_read(detector, path, &ds, train_hashes, batch, ui)
}

/// Reads `path` the way `detector`'s training file was read.
pub fn read_for(detector: &Detector, path: &Path, ui: Ui) -> Result<Dataset> {
    read(
        path,
        &detector.ingest_options(ui.threads(), false),
        ui.quiet,
    )
}

/// [`score_file`] on a file already read with [`read_for`] (by a detector of the same
/// pipeline), so several detectors can score one read.
pub fn score_read(
    detector: &Detector,
    path: &Path,
    ds: &Dataset,
    train_hashes: Option<&FxHashSet<u128>>,
    batch: usize,
    ui: Ui,
) -> Result<Scored> {
    let bar = progress::step(&format!("scoring {} rows", ds.n_rows()), ui.quiet);
    let scored = detector.score_table(path.display().to_string(), ds, train_hashes, batch);
    bar.finish_and_clear();
    let scored = scored.with_context(|| format!("{}: cannot apply the model", path.display()))?;
    warn_scored(&scored, ui.quiet);
    Ok(scored)
}

/// The fitted decision rule in a line or two.
fn print_decision(detector: &Detector) -> Result<()> {
    let members = &detector.card.members;
    if let (Some(first), Some(last)) = (members.first(), members.last()) {
        print(&format!(
            "ensemble: {} networks (seeds {} to {}), their class probabilities averaged",
            members.len(),
            first.seed,
            last.seed
        ))?;
    }
    let rule = &detector.card.decision;
    if let Some(op) = &rule.operating_point {
        print(&format!(
            "operating point: at most {:.2} % false alarms asked; on the validation rows {:.2} % false alarms, {} detection",
            op.max_false_alarm * 100.0,
            op.validation_false_alarm * 100.0,
            op.validation_detection
                .map_or("-".into(), |d| format!("{:.2} %", d * 100.0)),
        ))?;
    }
    if let Some(n) = &rule.novelty {
        print(&format!(
            "unknown traffic: windows called benign beyond distance {:.2} of the benign training traffic are `unknown` ({:.2} % of {} validation benign windows)",
            n.threshold,
            n.validation_rate * 100.0,
            n.validation_rows
        ))?;
    }
    Ok(())
}
