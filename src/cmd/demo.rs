//! `iotids demo`, the built-in default job: generate data, describe and audit it, then
//! train the GRU on flow windows, evaluate it on held-out flows and write the report.

use std::num::NonZeroUsize;
use std::process::ExitCode;

use anyhow::Result;
use iotids_data::IngestOptions;
use iotids_data::audit::{self, AuditOptions};
use iotids_data::describe::describe;
use iotids_data::prepare::{PrepareConfig, prepare};
use iotids_data::split::SplitMethod;
use iotids_model::gru::GruShape;
use iotids_model::train::TrainConfig;
use iotids_report as report;
use iotids_synth::SynthOptions;

use super::prepare::Loaded;
use super::{synth, train};
use crate::job::{DemoJob, Input, LearnJob, SynthJob, Ui};
use crate::output::{create_dir, print, read, write_file};

/// Records per window of the demo's model.
const WINDOW: NonZeroUsize = match NonZeroUsize::new(8) {
    Some(n) => n,
    None => NonZeroUsize::MIN,
};

/// The demo's training: short, so the demo takes minutes on two cores.
fn demo_training(seed: u64) -> TrainConfig {
    TrainConfig {
        epochs: 12,
        learning_rate: 2e-3,
        patience: 3,
        seed,
        ..TrainConfig::default()
    }
}

pub fn run(job: &DemoJob, ui: Ui) -> Result<ExitCode> {
    let out = &job.out;
    create_dir(out)?;
    let data = out.join("synthetic-edge-iiotset.csv");
    synth::run(
        &SynthJob {
            out: data.clone(),
            options: SynthOptions {
                rows: job.rows,
                seed: job.seed,
                balanced: false,
            },
        },
        ui,
    )?;
    let opts = IngestOptions {
        threads: ui.threads(),
        rejects_path: Some(out.join("rejects.csv")),
        ..IngestOptions::default()
    };
    let ds = read(&data, &opts, ui.quiet)?;
    let description = describe(&ds);
    print("== describe (generated data) ==")?;
    print(&report::render_description(&description))?;
    write_file(
        &out.join("describe.json"),
        serde_json::to_string_pretty(&description)?,
    )?;
    let audit = audit::audit(&ds, &AuditOptions::default());
    print("== audit ==")?;
    print(&report::render_audit(&audit))?;
    write_file(
        &out.join("audit.json"),
        serde_json::to_string_pretty(&audit)?,
    )?;
    let mut cfg = PrepareConfig::default();
    // Generated traffic comes in flows, like real captures: keep them whole.
    cfg.split.method = SplitMethod::Flow;
    cfg.split.seed = job.seed;
    cfg.pipeline.seed = job.seed;
    let prepared = prepare(ds, &opts, &cfg)?;
    print("== train (GRU on windows of 8 records of a flow; flow split) ==")?;
    let loaded = Loaded {
        prepared,
        description,
        audit,
    };
    let learn = LearnJob {
        input: Input {
            path: data,
            ingest: opts,
        },
        out: out.join("model"),
        prepare: cfg,
        window: WINDOW,
        net: GruShape {
            seed: job.seed,
            ..GruShape::default()
        },
        train: demo_training(job.seed),
        calibration: iotids_model::novelty::Calibration::default(),
    };
    let context = loaded.context("generated Edge-IIoTset-schema data (not real traffic)".into());
    train::train_loaded(&loaded, &context, &learn, None, ui)?;
    let model_dir = &learn.out;
    print(&format!(
        "\ndemo done. Open {} (the model, metrics.json, predictions.csv and figures/ are beside it).\nNext: iotids evaluate --model {} FILE --out DIR, or iotids predict --model {} FILE",
        model_dir.join("report.html").display(),
        model_dir.display(),
        model_dir.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}
