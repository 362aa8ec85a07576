//! `iotids prepare`, and the reading, describing, auditing and preparing that `train`,
//! `federate` and `compare` start from.

use std::process::ExitCode;

use anyhow::{Context, Result};
use iotids_data::audit::{self, Audit, AuditOptions};
use iotids_data::describe::{Description, describe};
use iotids_data::prepare::{PrepareConfig, Prepared, prepare};
use iotids_data::window::Sequences;
use iotids_model::gru::GruConfig;

use crate::job::{Input, LearnJob, PrepareJob, Ui};
use crate::output::{RunContext, prepared_summary, print, read, write_prepared};
use crate::progress;

pub fn run(job: &PrepareJob, ui: Ui) -> Result<ExitCode> {
    let ds = read(&job.input.path, &job.input.ingest, ui.quiet)?;
    let bar = progress::step("splitting and fitting the pipeline", ui.quiet);
    let p = prepare(ds, &job.input.ingest, &job.prepare);
    bar.finish_and_clear();
    let p = p?;
    write_prepared(&job.out, &p, &p.config, job.write_features)?;
    print(&prepared_summary(&p, &job.out))?;
    Ok(ExitCode::SUCCESS)
}

/// A labelled file read, described, audited, split and with its pipeline fitted.
#[derive(Debug)]
pub struct Loaded {
    pub prepared: Prepared,
    pub description: Description,
    pub audit: Audit,
}

impl Loaded {
    /// Every row's windows of `learn.window` records of its flow or host pair
    /// (`learn.window_by`), and `learn.net` sized for
    /// the prepared features and classes.
    ///
    /// # Errors
    ///
    /// Windows longer than one record on a table without flows; a network the data cannot
    /// feed (no features left, one class).
    pub fn windows_and_network(&self, learn: &LearnJob) -> Result<(Sequences, GruConfig)> {
        let p = &self.prepared;
        let ds = &p.dataset;
        let all: Vec<usize> = (0..ds.n_rows()).collect();
        let features = p.pipeline.transform(ds, &all)?;
        // The default window needs flows; a file without endpoint columns is read one
        // record at a time unless --window asked for more.
        let k = if ds.flows.is_none() && !learn.window_given {
            1
        } else {
            learn.window.get()
        };
        let sequences = Sequences::new(features, ds.window_keys(learn.window_by), k)?;
        let gru = learn
            .net
            .for_data(sequences.features.cols, p.pipeline.classes.len());
        gru.check()
            .context("the prepared data cannot feed this network")?;
        Ok((sequences, gru))
    }

    /// The report's view of the run.
    pub fn context(&self, subtitle: String) -> RunContext<'_> {
        RunContext {
            description: &self.description,
            audit: &self.audit,
            subtitle,
        }
    }
}

/// Reads and prepares `input` for learning.
pub fn load(input: &Input, config: &PrepareConfig, ui: Ui) -> Result<Loaded> {
    let ds = read(&input.path, &input.ingest, ui.quiet)?;
    let bar = progress::step("describing and auditing", ui.quiet);
    let description = describe(&ds);
    let audit = audit::audit(&ds, &AuditOptions::default());
    bar.finish_and_clear();
    let bar = progress::step("splitting and fitting the pipeline", ui.quiet);
    let p = prepare(ds, &input.ingest, config);
    bar.finish_and_clear();
    Ok(Loaded {
        prepared: p?,
        description,
        audit,
    })
}
