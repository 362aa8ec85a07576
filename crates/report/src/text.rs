//! Terminal tables for `describe`, `audit` and `prepare`.

use std::fmt::Write as _;

use comfy_table::presets::UTF8_BORDERS_ONLY;
use comfy_table::{CellAlignment, ContentArrangement, Table};
use iotids_data::audit::Audit;
use iotids_data::describe::Description;
use iotids_data::pipeline::Pipeline;
use iotids_data::split::Split;

/// A number in at most about 10 characters: plain when that is exact enough,
/// scientific otherwise (like pandas' describe).
pub fn fmt_num(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if x.fract() == 0.0 && a < 1e9 {
        return format!("{x:.0}");
    }
    if (1e-3..1e6).contains(&a) {
        let s = format!("{x:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        return s.to_string();
    }
    format!("{x:.3e}")
}

/// `s` cut to at most `max` characters, keeping both ends (feature names differ
/// at their ends: `http.referer=http://host/dvwa/vulnerabilities/xss_r/`).
pub fn shorten(s: &str, max: usize) -> String {
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    let head = (max - 1) / 2;
    let tail = max - 1 - head;
    let start: String = s.chars().take(head).collect();
    let end: String = s.chars().skip(n - tail).collect();
    format!("{start}…{end}")
}

fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header.to_vec());
    t
}

fn right_align(t: &mut Table, from: usize) {
    let n = t.column_count();
    for i in from..n {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
}

/// Columns of the numeric-statistics table (the seeds' Table 2 plus NaN and text).
pub const NUMERIC_HEADER: [&str; 11] = [
    "column", "count", "mean", "std", "min", "25%", "50%", "75%", "max", "NaN", "text",
];

/// One row of the numeric-statistics table.
pub fn numeric_row(s: &iotids_data::describe::NumericSummary) -> Vec<String> {
    vec![
        s.name.clone(),
        s.count.to_string(),
        fmt_num(s.mean),
        fmt_num(s.std),
        fmt_num(s.min),
        fmt_num(s.q25),
        fmt_num(s.q50),
        fmt_num(s.q75),
        fmt_num(s.max),
        s.missing.to_string(),
        s.text.to_string(),
    ]
}

/// `describe`'s report: rows, classes (Table 1), numeric statistics (Table 2),
/// categorical columns, dropped columns and the first rejected rows.
pub fn render_description(d: &Description) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({} format, label `{}`, {} bytes)",
        d.path, d.format, d.label, d.bytes
    );
    let _ = writeln!(
        out,
        "rows read {}  rejected {}  kept {}  exact duplicates {}  feature duplicates {}{}",
        d.rows_read,
        d.rows_rejected,
        d.rows_kept,
        d.duplicates.exact,
        d.duplicates.feature,
        d.flows.map(|f| format!("  flows {f}")).unwrap_or_default()
    );
    let _ = writeln!(out, "\nClasses (weight = n / (k * n_c)):");
    let mut t = table(&["id", "class", "rows", "share %", "weight"]);
    let n: u64 = d.classes.iter().map(|c| c.count).sum();
    for c in &d.classes {
        t.add_row(vec![
            c.id.to_string(),
            c.name.clone(),
            c.count.to_string(),
            format!("{:.2}", 100.0 * c.count as f64 / n.max(1) as f64),
            format!("{:.4}", c.weight),
        ]);
    }
    right_align(&mut t, 2);
    let _ = writeln!(out, "{t}");
    if !d.numeric.is_empty() {
        let _ = writeln!(
            out,
            "\nNumeric columns (after type conversion; absent = 0):"
        );
        let mut t = table(&NUMERIC_HEADER);
        for s in &d.numeric {
            t.add_row(numeric_row(s));
        }
        right_align(&mut t, 1);
        let _ = writeln!(out, "{t}");
    }
    if !d.categorical.is_empty() {
        let _ = writeln!(out, "\nCategorical columns:");
        let mut t = table(&["column", "count", "unique", "top", "freq"]);
        for s in &d.categorical {
            let top = shorten(&s.top, 40);
            t.add_row(vec![
                s.name.clone(),
                s.count.to_string(),
                s.unique.to_string(),
                top,
                s.freq.to_string(),
            ]);
        }
        right_align(&mut t, 1);
        let _ = writeln!(out, "{t}");
    }
    if !d.dropped.is_empty() {
        let names: Vec<String> = d
            .dropped
            .iter()
            .map(|c| format!("{} ({})", c.name, serde_label(&c.reason)))
            .collect();
        let _ = writeln!(out, "\nNot features: {}", names.join(", "));
    }
    render_rejects(&mut out, d.rows_rejected, &d.first_rejects);
    out
}

fn serde_label<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn render_rejects(out: &mut String, total: u64, first: &[iotids_data::table::Reject]) {
    if total == 0 {
        return;
    }
    let _ = writeln!(
        out,
        "\nRejected rows: {total} (first {} shown; --rejects FILE writes all)",
        first.len()
    );
    for r in first {
        let _ = writeln!(out, "  line {}: {}", r.line, r.reason);
    }
}

/// `audit`'s report: one line per finding, grouped by kind.
pub fn render_audit(a: &Audit) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}: {} rows, {} columns checked",
        a.path, a.rows, a.columns_checked
    );
    if a.findings.is_empty() {
        let _ = writeln!(out, "no findings");
        return out;
    }
    let mut t = table(&["finding", "column", "detail", "handled"]);
    for f in &a.findings {
        t.add_row(vec![
            f.kind.title().to_string(),
            f.column.clone().unwrap_or_default(),
            f.detail.clone(),
            if f.mitigated {
                format!("yes: {}", f.action)
            } else {
                format!("NO: {}", f.action)
            },
        ]);
    }
    t.set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(160);
    let _ = writeln!(out, "{t}");
    let _ = writeln!(
        out,
        "{} findings, {} not handled by the default pipeline",
        a.findings.len(),
        a.unmitigated()
    );
    out
}

/// The split sizes per class.
pub fn render_split(s: &Split, labels: &[u32], classes: &[String]) -> String {
    let mut t = table(&["class", "train", "validation", "test"]);
    let count =
        |rows: &[usize], c: usize| rows.iter().filter(|&&r| labels[r] as usize == c).count();
    for (c, name) in classes.iter().enumerate() {
        t.add_row(vec![
            name.clone(),
            count(&s.train, c).to_string(),
            count(&s.validation, c).to_string(),
            count(&s.test, c).to_string(),
        ]);
    }
    t.add_row(vec![
        "total".to_string(),
        s.train.len().to_string(),
        s.validation.len().to_string(),
        s.test.len().to_string(),
    ]);
    right_align(&mut t, 1);
    let mut out = t.to_string();
    for &c in &s.classes_without_test {
        let _ = write!(
            out,
            "\nwarning: class {} has no test rows",
            classes[c as usize]
        );
    }
    out
}

/// The fitted pipeline: class weights and which features were kept and why.
pub fn render_pipeline(p: &Pipeline) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Class weights (training rows, n / (k * n_c)):");
    let mut t = table(&["class", "weight"]);
    for (c, w) in p.classes.iter().zip(&p.class_weights) {
        t.add_row(vec![c.clone(), format!("{w:.4}")]);
    }
    right_align(&mut t, 1);
    let _ = writeln!(out, "{t}");
    let _ = writeln!(
        out,
        "\nFeatures: {} encoded, {} kept ({:?} selection, {:?} scaling, fitted on {} training rows):",
        p.features.len(),
        p.selected.len(),
        p.config.select,
        p.config.scaler,
        p.fitted_rows
    );
    let mut t = table(&["feature", "kept", "score", "why"]);
    let mut order: Vec<usize> = (0..p.decisions.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&p.decisions[a], &p.decisions[b]);
        y.kept.cmp(&x.kept).then(y.score.total_cmp(&x.score))
    });
    for i in order {
        let d = &p.decisions[i];
        t.add_row(vec![
            shorten(&d.feature, 60),
            if d.kept { "yes".into() } else { "no".into() },
            format!("{:.4}", d.score),
            d.reason.clone(),
        ]);
    }
    let _ = writeln!(out, "{t}");
    out
}

/// scikit-learn's `classification_report` layout (4 decimals), then the detection
/// pair and the ROC/PR areas.
pub fn render_classification_report(m: &iotids_model::metrics::Metrics) -> String {
    let width = m
        .classes
        .iter()
        .map(|c| c.chars().count())
        .chain(["weighted avg".len()])
        .max()
        .unwrap_or(12);
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:>width$}  {:>9} {:>9} {:>9} {:>9}\n",
        "", "precision", "recall", "f1-score", "support"
    );
    let line = |s: &mut String, name: &str, c: &iotids_model::metrics::ClassScores| {
        let _ = writeln!(
            s,
            "{name:>width$}  {:>9.4} {:>9.4} {:>9.4} {:>9}",
            c.precision, c.recall, c.f1, c.support
        );
    };
    for (name, c) in m.classes.iter().zip(&m.per_class) {
        line(&mut s, name, c);
    }
    let total: u64 = m.per_class.iter().map(|c| c.support).sum();
    let _ = writeln!(
        s,
        "\n{:>width$}  {:>9} {:>9} {:>9.4} {:>9}",
        "accuracy", "", "", m.accuracy, total
    );
    line(&mut s, "macro avg", &m.macro_avg);
    line(&mut s, "weighted avg", &m.weighted_avg);
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    let _ = writeln!(
        s,
        "\nROC AUC macro {}  micro {}   PR AUC macro {}",
        opt(m.roc_auc_macro),
        opt(m.roc_auc_micro),
        opt(m.pr_auc_macro)
    );
    if m.detection_rate.is_some() {
        let _ = writeln!(
            s,
            "detection rate {}   false-alarm rate {}   (attack vs normal)",
            opt(m.detection_rate),
            opt(m.false_alarm_rate)
        );
    }
    let uncertain = uncertain_classes(m);
    if !uncertain.is_empty() {
        let _ = writeln!(
            s,
            "\ntoo few test rows to read to the point (95 % Wilson interval of recall wider than {WIDE_INTERVAL}):"
        );
        for line in uncertain {
            let _ = writeln!(s, "  {line}");
        }
    }
    s
}

/// A recall interval wider than this (10 points) marks a class whose test rows are too few
/// to read its scores to the point.
pub const WIDE_INTERVAL: f64 = 0.1;

/// One line per class whose recall's 95 % interval is wider than [`WIDE_INTERVAL`]:
/// `flood: recall 0.8182 [0.6148, 0.9269] of 22 rows; precision ... of N predicted`.
pub fn uncertain_classes(m: &iotids_model::metrics::Metrics) -> Vec<String> {
    let mut out = Vec::new();
    for (k, ((name, c), ci)) in m
        .classes
        .iter()
        .zip(&m.per_class)
        .zip(&m.intervals)
        .enumerate()
    {
        let Some(r) = ci.recall.filter(|r| r.width() > WIDE_INTERVAL) else {
            continue;
        };
        let mut line = format!(
            "{name}: recall {:.4} [{:.4}, {:.4}] of {} rows",
            c.recall, r.low, r.high, c.support
        );
        if let Some(p) = ci.precision {
            let predicted: u64 = m.confusion.iter().map(|row| row[k]).sum();
            line += &format!(
                "; precision {:.4} [{:.4}, {:.4}] of {predicted} predicted",
                c.precision, p.low, p.high
            );
        }
        out.push(line);
    }
    out
}

/// A terminal table of `rows` under `header`, columns from `header`'s third on
/// right-aligned (the comparison table: names, then numbers).
pub fn plain_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = table(header);
    for r in rows {
        t.add_row(r.clone());
    }
    right_align(&mut t, 2);
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_keep_both_ends() {
        assert_eq!(shorten("abcdef", 6), "abcdef");
        assert_eq!(shorten("abcdefghij", 7), "abc…hij");
        assert_eq!(shorten("abcdefghij", 7).chars().count(), 7);
    }

    #[test]
    fn numbers_are_compact() {
        assert_eq!(fmt_num(0.0), "0");
        assert_eq!(fmt_num(1883.0), "1883");
        assert_eq!(fmt_num(0.25), "0.25");
        assert_eq!(fmt_num(3.3214), "3.3214");
        assert_eq!(fmt_num(2.28e7 + 0.5), "2.280e7");
        assert_eq!(fmt_num(0.000_012), "1.200e-5");
        assert_eq!(fmt_num(f64::NAN), "NaN");
    }

    #[test]
    fn classification_report_has_sklearns_rows_and_numbers() {
        let classes = vec!["Normal".to_string(), "DDoS".to_string()];
        // 3 normal rows (one called DDoS), 2 DDoS rows (both right).
        let y_true = [0, 0, 0, 1, 1];
        let y_pred = [0, 0, 1, 1, 1];
        let scores = [0.9, 0.1, 0.8, 0.2, 0.4, 0.6, 0.3, 0.7, 0.1, 0.9];
        let m = iotids_model::metrics::evaluate(&y_true, &y_pred, &scores, &classes, Some(0));
        let r = render_classification_report(&m);
        let line = |name: &str| {
            r.lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("no {name} line in\n{r}"))
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        };
        // Normal: precision 2/2, recall 2/3, F1 0.8; DDoS: precision 2/3, recall 1.
        assert_eq!(line("Normal")[1..], ["1.0000", "0.6667", "0.8000", "3"]);
        assert_eq!(line("DDoS")[1..], ["0.6667", "1.0000", "0.8000", "2"]);
        assert_eq!(line("accuracy")[1..], ["0.8000", "5"]);
        assert_eq!(line("macro avg")[2..], ["0.8333", "0.8333", "0.8000", "5"]);
        assert!(r.contains("false-alarm rate 0.3333"), "{r}");
        // Three and two test rows: both classes are marked, with Wilson's intervals.
        assert!(r.contains("too few test rows"), "{r}");
        assert!(
            r.contains("Normal: recall 0.6667 [0.2077, 0.9385] of 3 rows; precision 1.0000 [0.3424, 1.0000] of 2 predicted"),
            "{r}"
        );
        assert!(
            r.contains("DDoS: recall 1.0000 [0.3424, 1.0000] of 2 rows; precision 0.6667 [0.2077, 0.9385] of 3 predicted"),
            "{r}"
        );
    }
}
