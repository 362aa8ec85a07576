//! `iotids evaluate`: a trained model on a labelled file.

use std::process::ExitCode;

use anyhow::Result;
use iotids_model::artifact::Detector;
use iotids_report as report;
use report::html::Report;

use super::train::score_file;
use crate::job::{EvaluateJob, Ui};
use crate::output::{create_dir, evaluation_notes, print, write_evaluation, write_file};

pub fn run(job: &EvaluateJob, ui: Ui) -> Result<ExitCode> {
    let detector = Detector::load(&job.model)?;
    let figures = job.out.join("figures");
    create_dir(&figures)?;
    let scored = score_file(&detector, &job.input, None, job.batch, ui)?;
    let m = write_evaluation(&detector, &scored, &job.out)?;
    let mut page = Report::new(
        "iotids: evaluation",
        format!("model {} on {}", job.model.display(), job.input.display()),
    );
    for b in report::pages::evaluation_sections(&m, &scored.what, &figures, &detector)? {
        page.push(b);
    }
    for b in evaluation_notes(&scored) {
        page.push(b);
    }
    for b in report::pages::training_sections(&detector.card, &figures)? {
        page.push(b);
    }
    write_file(&job.out.join("report.html"), page.to_html())?;
    print(&format!(
        "wrote metrics.json, predictions.csv, figures/ and report.html to {}",
        job.out.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}
