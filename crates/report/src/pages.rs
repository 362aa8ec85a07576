//! Report sections built from the data side's results, shared by every command
//! that writes `report.html`.

use std::path::Path;

use iotids_data::audit::Audit;
use iotids_data::describe::Description;
use iotids_data::prepare::Prepared;

use crate::charts::{self, ChartError};
use crate::html::Block;
use crate::text::{NUMERIC_HEADER, numeric_row};

/// Data summary: rows, classes with weights, the class-distribution picture, the
/// numeric statistics table, and what was dropped.
///
/// # Errors
/// The picture cannot be written to `figures`.
pub fn data_sections(d: &Description, figures: &Path) -> Result<Vec<Block>, ChartError> {
    let mut out = vec![
        Block::Heading("Data".into()),
        Block::KeyValues(vec![
            ("file".into(), d.path.clone()),
            (
                "format / label".into(),
                format!("{} / {}", d.format, d.label),
            ),
            ("rows read".into(), d.rows_read.to_string()),
            ("rows rejected".into(), d.rows_rejected.to_string()),
            ("exact duplicates".into(), d.duplicates.exact.to_string()),
            (
                "feature duplicates".into(),
                d.duplicates.feature.to_string(),
            ),
            (
                "flows".into(),
                d.flows.map_or("-".into(), |f| f.to_string()),
            ),
        ]),
    ];
    let names: Vec<String> = d.classes.iter().map(|c| c.name.clone()).collect();
    let counts: Vec<u64> = d.classes.iter().map(|c| c.count).collect();
    let fig = charts::class_distribution(figures, &names, &counts)?;
    out.push(Block::Figure {
        svg: fig.svg,
        caption: "Rows per class as read (before de-duplication).".into(),
    });
    out.push(Block::Table {
        header: vec!["class".into(), "rows".into(), "weight n/(k n_c)".into()],
        rows: d
            .classes
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.count.to_string(),
                    format!("{:.4}", c.weight),
                ]
            })
            .collect(),
    });
    out.push(Block::Heading("Numeric columns".into()));
    out.push(Block::Table {
        header: NUMERIC_HEADER.iter().map(|s| s.to_string()).collect(),
        rows: d.numeric.iter().map(numeric_row).collect(),
    });
    Ok(out)
}

/// Audit findings, one row each.
pub fn audit_sections(a: &Audit) -> Vec<Block> {
    vec![
        Block::Heading("Audit".into()),
        Block::Paragraph(format!(
            "{} findings, {} not handled by the default pipeline.",
            a.findings.len(),
            a.unmitigated()
        )),
        Block::Table {
            header: vec![
                "finding".into(),
                "column".into(),
                "detail".into(),
                "handled".into(),
            ],
            rows: a
                .findings
                .iter()
                .map(|f| {
                    vec![
                        f.kind.title().to_string(),
                        f.column.clone().unwrap_or_default(),
                        f.detail.clone(),
                        format!("{}: {}", if f.mitigated { "yes" } else { "NO" }, f.action),
                    ]
                })
                .collect(),
        },
    ]
}

/// Preparation: counts, the split per class, class weights and feature decisions.
pub fn prepare_sections(p: &Prepared) -> Vec<Block> {
    let c = &p.counts;
    let labels = &p.dataset.labels;
    let count = |rows: &[usize], k: usize| {
        rows.iter()
            .filter(|&&r| labels[r] as usize == k)
            .count()
            .to_string()
    };
    let split_rows = p
        .dataset
        .classes
        .iter()
        .enumerate()
        .map(|(k, name)| {
            vec![
                name.clone(),
                count(&p.split.train, k),
                count(&p.split.validation, k),
                count(&p.split.test, k),
                format!(
                    "{:.4}",
                    p.pipeline.class_weights.get(k).copied().unwrap_or(0.0)
                ),
            ]
        })
        .collect();
    vec![
        Block::Heading("Preparation".into()),
        Block::KeyValues(vec![
            ("rows in".into(), c.rows_in.to_string()),
            (
                "duplicates removed".into(),
                c.duplicates_removed.to_string(),
            ),
            (
                "training outliers removed".into(),
                c.outliers_removed.to_string(),
            ),
            (
                "train / validation / test".into(),
                format!("{} / {} / {}", c.train, c.validation, c.test),
            ),
            (
                "features".into(),
                format!(
                    "{} encoded, {} kept ({:?} selection, {:?} scaling)",
                    p.pipeline.features.len(),
                    p.pipeline.selected.len(),
                    p.pipeline.config.select,
                    p.pipeline.config.scaler
                ),
            ),
        ]),
        Block::Table {
            header: ["class", "train", "validation", "test", "weight"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            rows: split_rows,
        },
        Block::Table {
            header: ["feature", "kept", "score", "why"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            rows: p
                .pipeline
                .decisions
                .iter()
                .map(|d| {
                    vec![
                        d.feature.clone(),
                        if d.kept { "yes".into() } else { "no".into() },
                        format!("{:.4}", d.score),
                        d.reason.clone(),
                    ]
                })
                .collect(),
        },
    ]
}
