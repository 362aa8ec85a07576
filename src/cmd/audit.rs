//! `iotids audit`: what would make results dishonest; exit 1 when something is found.

use std::process::ExitCode;

use anyhow::Result;
use iotids_data::audit;
use iotids_report as report;

use crate::cli::FailOn;
use crate::job::{AuditJob, Ui};
use crate::output::{print, print_json, read};
use crate::progress;

pub fn run(job: &AuditJob, ui: Ui) -> Result<ExitCode> {
    let ds = read(&job.input.path, &job.input.ingest, ui.quiet)?;
    let bar = progress::step("auditing", ui.quiet);
    let a = audit::audit(&ds, &job.options);
    bar.finish_and_clear();
    if job.json {
        print_json(&a)?;
    } else {
        print(&report::render_audit(&a))?;
    }
    let failing = match job.fail_on {
        FailOn::Any => a.findings.len(),
        FailOn::Unmitigated => a.unmitigated(),
    };
    Ok(if failing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
