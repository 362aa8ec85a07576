//! Planning: what each header column becomes, decided once from the names alone.
//!
//! The label column, the features, the columns that are dropped and why (the layout's
//! identifier and label lists, `drop`, `keep`), the columns the flow and host keys are
//! built from, and the time column of the timing features. Every record source goes
//! through this one plan, so a CSV file and a packet capture with the same columns give
//! the same table.

use std::path::Path;

use crate::error::{Error, Result};
use crate::schema::Format;
use crate::table::DropReason;
use crate::timing;

use super::{FlowTiming, IngestOptions};

/// What each header column becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Plan {
    Skip,
    Label,
    /// A feature, with its index among the retained columns.
    Numeric(usize),
    Categorical(usize),
}

/// Everything a worker needs to turn records into columns.
#[derive(Debug, Clone)]
pub(super) struct Layout {
    pub(super) format: Format,
    /// The field separator, used to show a rejected record as one line of text.
    pub(super) delimiter: u8,
    pub(super) n_fields: usize,
    /// `None` for an unlabelled file read with `label_optional`.
    pub(super) label_idx: Option<usize>,
    pub(super) plans: Vec<Plan>,
    /// Retained (feature) columns.
    pub(super) n_out: usize,
    pub(super) flow: Option<FlowIdx>,
    pub(super) timing: Option<TimingLayout>,
}

/// Where the per-flow timing features come from and which of them are kept.
#[derive(Debug, Clone)]
pub(super) struct TimingLayout {
    /// Header index and name of the time column.
    pub(super) time_idx: usize,
    pub(super) column: String,
    /// Per [`timing::DERIVED_COLUMNS`]: kept (not named in `drop`).
    pub(super) keep: [bool; 3],
    /// [`crate::IngestOptions::flow_index_cap`].
    pub(super) index_cap: Option<u32>,
}

/// Header indices of the flow-key parts (candidates in order of preference).
#[derive(Debug, Clone)]
pub(super) struct FlowIdx {
    pub(super) src_host: Vec<usize>,
    pub(super) dst_host: Vec<usize>,
    pub(super) src_port: Vec<usize>,
    pub(super) dst_port: Vec<usize>,
    pub(super) proto: Vec<usize>,
}

/// Plans the columns of `header` (names already trimmed). Every feature starts numeric;
/// [`super::infer`] decides which are categorical.
///
/// # Errors
/// No label column (unless optional), an unrecognised layout without a label, a
/// `drop`/`keep`/`categorical` name that is not in the header, or timing features the
/// header cannot give.
pub(super) fn plan_columns(
    source: &Path,
    header: &[String],
    delimiter: u8,
    opts: &IngestOptions,
) -> Result<Layout> {
    let format = opts.format.unwrap_or_else(|| Format::detect(header));
    let available = || header.join(", ");
    let label = match (&opts.label, format.default_label()) {
        (Some(l), _) => l.clone(),
        (None, Some(l)) => l.to_string(),
        (None, None) => {
            return Err(Error::UnknownFormat {
                path: source.into(),
                available: available(),
            });
        }
    };
    let label_idx = header.iter().position(|h| *h == label);
    if label_idx.is_none() && !opts.label_optional {
        return Err(Error::MissingLabel {
            path: source.into(),
            label: label.clone(),
            available: available(),
        });
    }
    let derived = |n: &String| {
        opts.flow_timing != FlowTiming::Off && timing::DERIVED_COLUMNS.contains(&n.as_str())
    };
    for (names, option) in [
        (&opts.drop, "drop"),
        (&opts.keep, "keep"),
        (&opts.categorical, "categorical"),
    ] {
        if let Some(c) = names
            .iter()
            .find(|n| !(header.contains(n) || option == "drop" && derived(n)))
        {
            return Err(Error::UnknownColumn {
                path: source.into(),
                column: c.clone(),
                option,
                available: available(),
            });
        }
    }
    let mut plans = Vec::with_capacity(header.len());
    let mut n_out = 0;
    for (i, name) in header.iter().enumerate() {
        let plan = if Some(i) == label_idx {
            Plan::Label
        } else if drop_reason(format, name, &label, opts).is_some() {
            Plan::Skip
        } else {
            n_out += 1;
            Plan::Numeric(n_out - 1)
        };
        plans.push(plan);
    }
    let fc = format.flow_columns();
    let find = |cands: &[&str]| -> Vec<usize> {
        cands
            .iter()
            .filter_map(|c| header.iter().position(|h| h == c))
            .collect()
    };
    let flow = FlowIdx {
        src_host: find(fc.src_host),
        dst_host: find(fc.dst_host),
        src_port: find(fc.src_port),
        dst_port: find(fc.dst_port),
        proto: find(fc.proto),
    };
    let flow = (!flow.src_host.is_empty() && !flow.dst_host.is_empty()).then_some(flow);
    let timing = match opts.flow_timing {
        FlowTiming::Off => None,
        FlowTiming::On => Some(plan_timing(source, header, format, flow.is_some(), opts)?),
        // Without a time column or flows there is nothing to derive; a file that names a
        // column like a derived one keeps its own.
        FlowTiming::Auto => plan_timing(source, header, format, flow.is_some(), opts).ok(),
    };
    Ok(Layout {
        format,
        delimiter,
        n_fields: header.len(),
        label_idx,
        plans,
        n_out,
        flow,
        timing,
    })
}

/// The time column of the timing features, checked: it exists, the file has flows, and
/// no header column already has a derived column's name.
fn plan_timing(
    source: &Path,
    header: &[String],
    format: Format,
    has_flows: bool,
    opts: &IngestOptions,
) -> Result<TimingLayout> {
    let candidates = format.time_columns();
    let Some(time_idx) = candidates
        .iter()
        .find_map(|c| header.iter().position(|h| h == c))
    else {
        return Err(Error::FlowTiming {
            path: source.into(),
            needs: "a time column",
            found: format!(
                "the {} layout looks for {}, and the header has none of them",
                format.name(),
                candidates.join(", ")
            ),
        });
    };
    if !has_flows {
        return Err(Error::FlowTiming {
            path: source.into(),
            needs: "flows, built from endpoint columns (addresses, ports)",
            found: "this file has none".into(),
        });
    }
    if let Some(clash) = timing::DERIVED_COLUMNS
        .iter()
        .find(|d| header.iter().any(|h| h == *d))
    {
        return Err(Error::FlowTiming {
            path: source.into(),
            needs: "its own column names",
            found: format!("the header already has a column `{clash}`"),
        });
    }
    Ok(TimingLayout {
        time_idx,
        column: header[time_idx].clone(),
        keep: timing::DERIVED_COLUMNS.map(|d| !opts.drop.iter().any(|x| x == d)),
        index_cap: opts.flow_index_cap,
    })
}

/// Why a column is not a feature, or `None` when it is one.
pub(super) fn drop_reason(
    format: Format,
    name: &str,
    label: &str,
    opts: &IngestOptions,
) -> Option<DropReason> {
    if name == label {
        return Some(DropReason::Label);
    }
    if opts.keep.iter().any(|k| k == name) {
        return None;
    }
    if opts.drop.iter().any(|d| d == name) {
        return Some(DropReason::User);
    }
    if format.label_columns().contains(&name) {
        return Some(DropReason::OtherLabel);
    }
    if format.identifier_columns().contains(&name) {
        return Some(DropReason::Identifier);
    }
    None
}
