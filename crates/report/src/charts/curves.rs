//! Lines over time: training's loss and accuracy per epoch, the federation's
//! validation scores per cloud round, and ROC curves per class.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::full_palette::{GREY_400, GREY_700};

use super::{Chart, ChartError, DrawResult, FONT, Written, color, legend, render_chart};

/// One point per epoch of training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochPoint {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub train_accuracy: f64,
    pub val_accuracy: f64,
}

struct LearningCurves<'a>(&'a [EpochPoint]);

impl Chart for LearningCurves<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
        let epochs = self.0;
        let last = epochs.last().map_or(1, |e| e.epoch.max(1));
        let first = epochs.first().map_or(0, |e| e.epoch);
        type Pick = fn(&EpochPoint) -> (f64, f64);
        let panels: [(&DrawingArea<DB, Shift>, &str, Pick); 2] = [
            (&left, "loss", |e| (e.train_loss, e.val_loss)),
            (&right, "accuracy", |e| (e.train_accuracy, e.val_accuracy)),
        ];
        for (area, what, get) in panels {
            let values: Vec<f64> = epochs
                .iter()
                .flat_map(|e| [get(e).0, get(e).1])
                .filter(|v| v.is_finite())
                .collect();
            let (mut lo, mut hi) = values
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
            if !lo.is_finite() {
                (lo, hi) = (0.0, 1.0);
            }
            let pad = ((hi - lo) * 0.08).max(1e-3);
            let (lo, hi) = if what == "accuracy" {
                ((lo - pad).max(0.0), (hi + pad).min(1.0))
            } else {
                ((lo - pad).max(0.0), hi + pad)
            };
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{what} per epoch"), (FONT, 20))
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(56)
                .build_cartesian_2d(first as f64..last as f64 + 0.001, lo..hi)?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_label_formatter(&|v: &f64| format!("{v:.0}"))
                .y_desc(what)
                .label_style((FONT, 13))
                .axis_desc_style((FONT, 14))
                .light_line_style(WHITE.mix(0.0))
                .draw()?;
            for (i, (series, pick)) in [("train", 0usize), ("validation", 1usize)]
                .into_iter()
                .enumerate()
            {
                let c = color(i);
                chart
                    .draw_series(LineSeries::new(
                        epochs
                            .iter()
                            .map(|e| (e.epoch as f64, if pick == 0 { get(e).0 } else { get(e).1 }))
                            // No validation rows: no validation line (NaN points).
                            .filter(|(_, v)| v.is_finite()),
                        c.stroke_width(2),
                    ))?
                    .label(series)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                    });
            }
            legend(
                &mut chart,
                if what == "loss" {
                    SeriesLabelPosition::UpperRight
                } else {
                    SeriesLabelPosition::LowerRight
                },
            )?;
        }
        Ok(())
    }
}

/// Train and validation loss and accuracy per epoch, side by side.
///
/// # Errors
/// No epochs, or the files cannot be written.
pub fn learning_curves(dir: &Path, epochs: &[EpochPoint]) -> Result<Written, ChartError> {
    if epochs.is_empty() {
        return Err(ChartError::Empty("learning curves need at least one epoch"));
    }
    render_chart(dir, "learning_curves", (1100, 420), &LearningCurves(epochs))
}

/// One class's ROC curve.
#[derive(Debug, Clone, PartialEq)]
pub struct RocSeries {
    pub name: String,
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    pub auc: f64,
}

/// A point marked on the ROC picture: where the detector decides, on the attack-vs-normal
/// curve (false-alarm rate, detection rate).
#[derive(Debug, Clone, PartialEq)]
pub struct RocMarker {
    pub fpr: f64,
    pub tpr: f64,
    pub label: String,
}

struct Roc<'a>(&'a [RocSeries], Option<&'a RocMarker>);

impl Chart for Roc<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        // The legend gets its own column so 15 classes never cover the curves.
        let (plot, legend) = root.split_horizontally(620);
        let mut chart = ChartBuilder::on(&plot)
            .caption("ROC, one class vs the rest", (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(50)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(WHITE)
            .draw()?;
        chart.draw_series(LineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            GREY_400.stroke_width(1),
        ))?;
        for (i, s) in self.0.iter().enumerate() {
            let c = color(i);
            chart.draw_series(LineSeries::new(
                s.fpr.iter().copied().zip(s.tpr.iter().copied()),
                c.stroke_width(2),
            ))?;
        }
        if let Some(m) = self.1 {
            chart.draw_series([Circle::new((m.fpr, m.tpr), 6, BLACK.stroke_width(2))])?;
        }
        let row = 22;
        if let Some(m) = self.1 {
            legend.draw(&Circle::new((19, 28), 6, BLACK.stroke_width(2)))?;
            legend.draw(&Text::new(
                m.label.clone(),
                (38, 20),
                (FONT, 14).into_font().color(&GREY_700),
            ))?;
        }
        for (i, s) in self.0.iter().enumerate() {
            let y = 50 + i as i32 * row;
            let c = color(i);
            legend.draw(&PathElement::new(vec![(8, y), (30, y)], c.stroke_width(3)))?;
            legend.draw(&Text::new(
                format!("{} (AUC {:.4})", s.name, s.auc),
                (38, y - 8),
                (FONT, 14).into_font().color(&GREY_700),
            ))?;
        }
        Ok(())
    }
}

/// All classes' ROC curves on one plot, AUC in the legend, and `marker` circled.
///
/// # Errors
/// No curves, or the files cannot be written.
pub fn roc_curves(
    dir: &Path,
    curves: &[RocSeries],
    marker: Option<&RocMarker>,
) -> Result<Written, ChartError> {
    if curves.is_empty() {
        return Err(ChartError::Empty(
            "no class has both positive and negative rows",
        ));
    }
    let height = (120 + curves.len() as u32 * 22).max(560);
    render_chart(dir, "roc", (1000, height), &Roc(curves, marker))
}

/// One cloud round of a federation, for the curves over rounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoundPoint {
    pub round: usize,
    pub val_loss: f64,
    pub val_accuracy: f64,
    pub val_macro_f1: f64,
}

struct RoundCurves<'a> {
    rounds: &'a [RoundPoint],
    /// Central training's validation (accuracy, macro-F1), drawn as dashed lines.
    central: Option<(f64, f64)>,
}

impl Chart for RoundCurves<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let (left, right) = root.split_horizontally(root.dim_in_pixel().0 / 2);
        let last = self.rounds.last().map_or(1, |r| r.round.max(2));
        let finite = |v: &f64| v.is_finite();
        // Loss on the left; accuracy and macro-F1 on the right, on one 0..1 axis.
        let losses: Vec<f64> = self
            .rounds
            .iter()
            .map(|r| r.val_loss)
            .filter(finite)
            .collect();
        let hi = losses.iter().copied().fold(0.0, f64::max).max(1e-3) * 1.08;
        let mut chart = ChartBuilder::on(&left)
            .caption("validation loss per cloud round", (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(1.0..last as f64, 0.0..hi)?;
        chart
            .configure_mesh()
            .x_desc("cloud round")
            .x_label_formatter(&|v: &f64| format!("{v:.0}"))
            .y_desc("loss")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        chart.draw_series(LineSeries::new(
            self.rounds
                .iter()
                .map(|r| (r.round as f64, r.val_loss))
                .filter(|(_, v)| v.is_finite()),
            color(0).stroke_width(2),
        ))?;

        let mut chart = ChartBuilder::on(&right)
            .caption("validation scores per cloud round", (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(56)
            .build_cartesian_2d(1.0..last as f64, 0.0..1.0)?;
        chart
            .configure_mesh()
            .x_desc("cloud round")
            .x_label_formatter(&|v: &f64| format!("{v:.0}"))
            .y_desc("score")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        type Pick = fn(&RoundPoint) -> f64;
        let series: [(&str, Pick, usize); 2] = [
            ("federated accuracy", |r| r.val_accuracy, 1),
            ("federated macro-F1", |r| r.val_macro_f1, 2),
        ];
        for (name, pick, c) in series {
            let c = color(c);
            chart
                .draw_series(LineSeries::new(
                    self.rounds
                        .iter()
                        .map(|r| (r.round as f64, pick(r)))
                        .filter(|(_, v)| v.is_finite()),
                    c.stroke_width(2),
                ))?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                });
        }
        if let Some((acc, f1)) = self.central {
            for (name, v, c) in [("central accuracy", acc, 1), ("central macro-F1", f1, 2)] {
                let c = color(c);
                let dashes = (0..last * 2).map(|i| {
                    let x0 = 1.0 + i as f64 * 0.5;
                    PathElement::new(
                        vec![(x0, v), ((x0 + 0.25).min(last as f64), v)],
                        c.stroke_width(1),
                    )
                });
                chart
                    .draw_series(dashes)?
                    .label(name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 6, y)], c.stroke_width(1))
                    });
            }
        }
        legend(&mut chart, SeriesLabelPosition::LowerRight)?;
        Ok(())
    }
}

/// The global model's validation loss, accuracy and macro-F1 per cloud round, with central
/// training's validation accuracy and macro-F1 as dashed lines.
///
/// # Errors
/// No rounds, or the files cannot be written.
pub fn round_curves(
    dir: &Path,
    rounds: &[RoundPoint],
    central: Option<(f64, f64)>,
) -> Result<Written, ChartError> {
    if rounds.is_empty() {
        return Err(ChartError::Empty(
            "curves over rounds need at least one round",
        ));
    }
    render_chart(
        dir,
        "federation_rounds",
        (1100, 420),
        &RoundCurves { rounds, central },
    )
}
