//! The model comparison of `iotids compare`: one table (printed, Markdown, CSV and HTML)
//! and one grouped bar chart, from the [`Outcome`]s of the models.

use std::fmt::Write as _;
use std::path::Path;

use iotids_baselines::compare::Outcome;

use crate::charts::{self, ChartError};
use crate::html::Block;

/// The table's columns.
pub const HEADER: [&str; 13] = [
    "model",
    "library",
    "window",
    "trained on",
    "accuracy",
    "macro-F1",
    "weighted-F1",
    "detection rate",
    "false-alarm rate",
    "macro ROC-AUC",
    "train s",
    "inference records/s",
    "epochs (kept)",
];

/// One row per model, formatted: scores with 4 decimals, "-" where a score is undefined
/// (no benign class: no detection or false-alarm rate).
pub fn rows(outcomes: &[Outcome]) -> Vec<Vec<String>> {
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    outcomes
        .iter()
        .map(|o| {
            let m = &o.metrics;
            vec![
                o.name.clone(),
                o.library.clone(),
                o.window.to_string(),
                trained_on(o),
                format!("{:.4}", m.accuracy),
                format!("{:.4}", m.macro_f1),
                format!("{:.4}", m.weighted_f1),
                opt(m.detection_rate),
                opt(m.false_alarm_rate),
                opt(m.roc_auc_macro),
                format!("{:.2}", o.train_seconds),
                format!("{:.0}", o.records_per_second),
                o.epochs
                    .map_or("-".to_string(), |(run, kept)| format!("{run} ({kept})")),
            ]
        })
        .collect()
}

/// "all 19,826" or "5,000 of 19,826 (subsample)".
pub fn trained_on(o: &Outcome) -> String {
    if o.subsampled() {
        format!(
            "{} of {} (subsample)",
            thousands(o.train_rows),
            thousands(o.train_rows_available)
        )
    } else {
        format!("all {}", thousands(o.train_rows))
    }
}

fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// A Markdown table of `rows` under `header`.
pub fn markdown(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "| {} |", header.join(" | "));
    let rule: Vec<&str> = header
        .iter()
        .enumerate()
        .map(|(i, _)| if i < 2 { "---" } else { "---:" })
        .collect();
    let _ = writeln!(s, "| {} |", rule.join(" | "));
    for r in rows {
        let _ = writeln!(s, "| {} |", r.join(" | "));
    }
    s
}

/// The report's section: what was compared and how, the table, the grouped bar chart.
///
/// # Errors
/// The chart cannot be written to `figures`.
pub fn sections(
    outcomes: &[Outcome],
    notes: &[String],
    figures: &Path,
) -> Result<Vec<Block>, ChartError> {
    let mut out = vec![
        Block::Heading("Model comparison".into()),
        Block::Paragraph(
            "Every model is trained on the same prepared features and training rows, and scored on the same test rows with the same metrics. Classical models and the MLP read one record; the RNN, LSTM and the windowed GRU read the window of records of the same flow ending at the row. Deep models stop early on the validation rows; classical models use scikit-learn's default settings. Training time is wall time on this machine; inference is the test rows per second of wall time, features already prepared.".into(),
        ),
    ];
    for n in notes {
        out.push(Block::Paragraph(n.clone()));
    }
    out.push(Block::Table {
        header: HEADER.iter().map(|s| s.to_string()).collect(),
        rows: rows(outcomes),
    });
    if outcomes.is_empty() {
        return Ok(out);
    }
    let names: Vec<String> = outcomes.iter().map(|o| o.name.clone()).collect();
    let nan = f64::NAN;
    let series = vec![
        (
            "accuracy".to_string(),
            outcomes.iter().map(|o| o.metrics.accuracy).collect(),
        ),
        (
            "macro-F1".to_string(),
            outcomes.iter().map(|o| o.metrics.macro_f1).collect(),
        ),
        (
            "weighted-F1".to_string(),
            outcomes.iter().map(|o| o.metrics.weighted_f1).collect(),
        ),
        (
            "macro ROC-AUC".to_string(),
            outcomes
                .iter()
                .map(|o| o.metrics.roc_auc_macro.unwrap_or(nan))
                .collect(),
        ),
    ];
    let fig = charts::grouped_bars(
        figures,
        "comparison",
        "Models on the test rows",
        &names,
        &series,
    )?;
    out.push(Block::Figure {
        svg: fig.svg,
        caption: "Accuracy, macro-F1, weighted-F1 and macro ROC-AUC of each model on the test rows. Macro-F1 weighs every class alike, so it is the score that shows rare attacks missed.".into(),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_and_markdown() {
        assert_eq!(thousands(19826), "19,826");
        assert_eq!(thousands(5000), "5,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
        let md = markdown(
            &["model", "lib", "x"],
            &[vec!["a".into(), "b".into(), "1".into()]],
        );
        assert_eq!(
            md,
            "| model | lib | x |\n| --- | --- | ---: |\n| a | b | 1 |\n"
        );
    }
}
