//! Inference: the first records decide which features are categorical, and leave a
//! profile of every header column for `audit`.
//!
//! A column's kind must be fixed before the first record is converted (its values are
//! stored as numbers or as dictionary codes from then on), so it is decided once, from a
//! sample: the first [`SAMPLE_RECORDS`] well-formed records. Any record source gives the
//! same sample for the same records, which is why a CSV file and the same records pushed
//! into a [`super::DatasetBuilder`] get the same column kinds.

use std::collections::HashSet;

use xxhash_rust::xxh3::xxh3_64;

use crate::table::ColumnProfile;
use crate::value::{self, Cell};

use super::IngestOptions;
use super::blocks::last_record_end;
use super::plan::{Layout, Plan, drop_reason};

/// Records looked at to infer column types and profile columns.
pub(super) const SAMPLE_RECORDS: usize = 5000;

/// Parses up to [`SAMPLE_RECORDS`] well-formed records of a CSV block that starts at a
/// record boundary (the first block after the header).
pub(super) fn sample_block(block: &[u8], layout: &Layout) -> Vec<csv::ByteRecord> {
    let end = last_record_end(block, layout.delimiter).unwrap_or(block.len());
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(layout.delimiter)
        .from_reader(&block[..end]);
    let mut out = Vec::new();
    let mut rec = csv::ByteRecord::new();
    while out.len() < SAMPLE_RECORDS {
        match rdr.read_byte_record(&mut rec) {
            Ok(true) if rec.len() == layout.n_fields => out.push(rec.clone()),
            Ok(true) | Err(_) => continue,
            Ok(false) => break,
        }
    }
    out
}

/// Declared categorical columns are categorical, declared numeric ones numeric; any
/// other retained column is categorical when its sample holds at least as much text as
/// numbers.
pub(super) fn infer_types(
    layout: &mut Layout,
    header: &[String],
    sample: &[&csv::ByteRecord],
    opts: &IngestOptions,
) {
    let declared: HashSet<&str> = layout
        .format
        .categorical_columns()
        .iter()
        .copied()
        .chain(opts.categorical.iter().map(String::as_str))
        .collect();
    for (i, plan) in layout.plans.iter_mut().enumerate() {
        let Plan::Numeric(out) = *plan else { continue };
        if opts.numeric.iter().any(|n| *n == header[i]) {
            continue;
        }
        let categorical = declared.contains(header[i].as_str()) || {
            let (mut text, mut num) = (0usize, 0usize);
            for r in sample {
                match value::parse_cell(&r[i]) {
                    Cell::Text => text += 1,
                    Cell::Number(_) => num += 1,
                    _ => {}
                }
            }
            text > 0 && text >= num
        };
        if categorical {
            *plan = Plan::Categorical(out);
        }
    }
}

/// What every header column looks like in the sample: the evidence `audit` uses to find
/// identifier columns that are not on any list.
pub(super) fn profile_columns(
    header: &[String],
    layout: &Layout,
    sample: &[&csv::ByteRecord],
    opts: &IngestOptions,
) -> Vec<ColumnProfile> {
    let label = layout.label_idx.map_or("", |i| header[i].as_str());
    header
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let mut p = ColumnProfile {
                name: name.clone(),
                dropped: drop_reason(layout.format, name, label, opts),
                ..ColumnProfile::default()
            };
            let mut distinct = HashSet::new();
            for r in sample {
                let f = &r[i];
                if matches!(value::parse_cell(f), Cell::Absent(_)) {
                    continue;
                }
                p.sampled += 1;
                p.address_like += u64::from(value::looks_like_address(f));
                p.datetime_like += u64::from(value::looks_like_datetime(f));
                distinct.insert(xxh3_64(f));
            }
            p.distinct = distinct.len() as u64;
            p
        })
        .collect()
}
