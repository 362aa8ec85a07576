//! `iotids describe`: class counts and weights, statistics of every numeric column.

use std::process::ExitCode;

use anyhow::Result;
use iotids_data::describe::describe;
use iotids_report as report;

use crate::job::{Input, Ui};
use crate::output::{print, print_json, read};
use crate::progress;

pub fn run(input: &Input, json: bool, ui: Ui) -> Result<ExitCode> {
    let ds = read(&input.path, &input.ingest, ui.quiet)?;
    let bar = progress::step("computing statistics", ui.quiet);
    let d = describe(&ds);
    bar.finish_and_clear();
    if json {
        print_json(&d)?;
    } else {
        print(&report::render_description(&d))?;
    }
    Ok(ExitCode::SUCCESS)
}
