//! `iotids demo`, the built-in default job: generate data, describe and audit it, then
//! train the GRU on host-pair windows, evaluate it on held-out flows and write the report.

use std::num::NonZeroUsize;
use std::process::ExitCode;

use anyhow::Result;
use iotids_data::audit::{self, AuditOptions};
use iotids_data::describe::describe;
use iotids_data::prepare::{PrepareConfig, prepare};
use iotids_data::{FlowTiming, IngestOptions};
use iotids_model::gru::{DEFAULT_WINDOW, GruShape};
use iotids_model::train::TrainConfig;
use iotids_report as report;
use iotids_synth::SynthOptions;

use super::prepare::Loaded;
use super::{synth, train};
use crate::job::{DemoJob, Input, LearnJob, SynthJob, Ui};
use crate::output::{create_dir, print, read, write_file};

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
        // The defaults of `train`: timing features whenever the file has a time column.
        flow_timing: FlowTiming::Auto,
        flow_index_cap: Some(iotids_data::timing::DEFAULT_INDEX_CAP),
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
    // The defaults of `train`: the time split (the later part of each class held out).
    let mut cfg = PrepareConfig::default();
    cfg.split.seed = job.seed;
    cfg.pipeline.seed = job.seed;
    let prepared = prepare(ds, &opts, &cfg)?;
    print(&format!(
        "== train (the defaults of `iotids train`: GRU on windows of the last {DEFAULT_WINDOW} packets between two hosts, timing features, time split: the later part of each class held out) =="
    ))?;
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
        window: NonZeroUsize::new(DEFAULT_WINDOW).expect("a window of records"),
        window_given: false,
        window_by: iotids_data::window::WindowBy::HostPair,
        net: GruShape {
            seed: job.seed,
            ..GruShape::default()
        },
        train: TrainConfig {
            seed: job.seed,
            truncate: iotids_model::train::default_truncate(
                iotids_data::window::WindowBy::HostPair,
                false,
            ),
            ..TrainConfig::default()
        },
        calibration: iotids_model::novelty::Calibration::default(),
        ensemble: iotids_model::artifact::DEFAULT_ENSEMBLE,
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
