//! The model comparison of `iotids compare`: one table (printed, Markdown, CSV and HTML)
//! and one grouped bar chart, from the [`Outcome`]s of the models.

use std::fmt::Write as _;
use std::path::Path;

use iotids_baselines::compare::{Outcome, Settings, Variant};

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

/// Per-class F1 of every model: header (model, then the classes) and one row per model.
/// A class with no test rows shows "-", unless the model predicted it (then its F1 is 0,
/// and scikit-learn's macro average counts it).
pub fn per_class_f1(outcomes: &[Outcome]) -> (Vec<String>, Vec<Vec<String>>) {
    let Some(first) = outcomes.first() else {
        return (vec!["model".into()], Vec::new());
    };
    let header = std::iter::once("model".to_string())
        .chain(first.metrics.classes.iter().cloned())
        .collect();
    let rows = outcomes
        .iter()
        .map(|o| {
            let m = &o.metrics;
            let predicted = |c: usize| m.confusion.iter().map(|row| row[c]).sum::<u64>();
            std::iter::once(o.name.clone())
                .chain(m.per_class.iter().enumerate().map(|(c, s)| {
                    if s.support == 0 && predicted(c) == 0 {
                        "-".to_string()
                    } else {
                        format!("{:.4}", s.f1)
                    }
                }))
                .collect()
        })
        .collect();
    (header, rows)
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

/// What a reader of the table must know: subsamples, failures, the settings.
pub fn notes(
    outcomes: &[Outcome],
    failures: &[(Variant, String)],
    settings: &Settings,
) -> Vec<String> {
    let mut notes = Vec::new();
    let sub: Vec<String> = outcomes
        .iter()
        .filter(|o| o.subsampled())
        .map(|o| format!("{}: {}", o.name, trained_on(o)))
        .collect();
    if !sub.is_empty() {
        notes.push(format!(
            "Trained on a stratified subsample of the training rows (--max-rows): {}.",
            sub.join("; ")
        ));
    }
    for (variant, e) in failures {
        notes.push(format!("{} could not be fitted: {e}", variant.label()));
    }
    let t = &settings.train;
    let windowed: Vec<String> = outcomes
        .iter()
        .filter(|o| o.window > 1 && o.epochs.is_some())
        .map(|o| o.name.clone())
        .collect();
    if outcomes.iter().any(|o| o.epochs.is_some()) {
        notes.push(format!(
            "Deep models: hidden {}, {} layer(s) (GRU; the MLP's hidden layers), dropout {}, Adam lr {}, batch {}, at most {} epochs, patience {}, {} cross-entropy{}.",
            settings.hidden,
            settings.layers,
            settings.dropout,
            t.learning_rate,
            t.batch_size,
            t.epochs,
            t.patience,
            if t.class_weights { "class-weighted" } else { "plain" },
            if windowed.is_empty() {
                String::new()
            } else {
                format!("; windows of records of the flow: {}", windowed.join(", "))
            }
        ));
    }
    if outcomes.iter().any(|o| o.window > 1 && o.epochs.is_none()) {
        notes.push(
            "A classical model at window K reads the windows the recurrent models read, flattened: the flow's last K records side by side, oldest first (K × the features), zeros for positions before the flow's start.".into(),
        );
    }
    notes
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
            "Every model is trained on the same prepared features and training rows, and scored on the same test rows with the same metrics. The MLP reads one record; the RNN, LSTM and the windowed GRU read the window of records of the same flow ending at the row; a classical model reads one record (window 1) or that window flattened. Deep models stop early on the validation rows; classical models use scikit-learn's default settings. Training time is wall time on this machine; inference is the test rows per second of wall time, features already prepared.".into(),
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
    let (header, rows) = per_class_f1(outcomes);
    out.push(Block::Paragraph(
        "F1 of each class on the test rows: which attacks each model misses. \"-\": no test rows of the class, and the model never predicted it.".into(),
    ));
    out.push(Block::Table { header, rows });
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
    use iotids_baselines::compare::ModelKind;
    use iotids_model::metrics::evaluate;

    use super::*;

    #[test]
    fn per_class_f1_marks_classes_without_rows_unless_predicted() {
        let classes: Vec<String> = ["normal", "scan", "flood"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // No flood rows; the second model predicts flood once.
        let outcome = |y_pred: &[u32]| {
            let y_true = [0, 0, 1, 1];
            let scores: Vec<f32> = y_pred
                .iter()
                .flat_map(|&p| (0..3).map(move |c| f32::from(u8::from(c == p))))
                .collect();
            Outcome {
                model: ModelKind::Knn,
                key: "knn".into(),
                name: "m".into(),
                library: "smartcore".into(),
                window: 1,
                train_rows: 10,
                train_rows_available: 10,
                train_seconds: 0.0,
                inference_seconds: 0.0,
                records_per_second: 0.0,
                epochs: None,
                metrics: evaluate(&y_true, y_pred, &scores, &classes, Some(0)),
                subsample: None,
            }
        };
        let (header, rows) = per_class_f1(&[outcome(&[0, 0, 1, 1]), outcome(&[0, 2, 1, 1])]);
        assert_eq!(header, ["model", "normal", "scan", "flood"]);
        assert_eq!(rows[0], ["m", "1.0000", "1.0000", "-"]);
        // normal: P 1, R 0.5 -> 0.6667; scan: 1; flood: predicted once, F1 0.
        assert_eq!(rows[1], ["m", "0.6667", "1.0000", "0.0000"]);
    }

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
