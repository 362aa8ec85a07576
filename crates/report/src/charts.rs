//! Pictures with plotters: learning curves, ROC curves, confusion-matrix heatmap and
//! class distribution, each written as SVG (for the HTML report) and PNG.
//!
//! Every chart is drawn by one generic function over plotters' `DrawingBackend`,
//! called once per backend, so the SVG and the PNG are the same picture. Text is
//! rendered with an embedded DejaVu Sans (no system fonts needed on a fresh machine).

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontTransform;
use plotters::style::full_palette::{GREY_400, GREY_700};
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One point per epoch of training.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochPoint {
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub train_accuracy: f64,
    pub val_accuracy: f64,
}

/// One class's ROC curve.
#[derive(Debug, Clone, PartialEq)]
pub struct RocSeries {
    pub name: String,
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    pub auc: f64,
}

/// A chart written to disk: where, and the SVG text (for inlining in HTML).
#[derive(Debug, Clone)]
pub struct Written {
    pub svg_path: PathBuf,
    pub png_path: PathBuf,
    pub svg: String,
}

/// Why a chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChartError {
    #[error("{path}: {reason}")]
    Draw { path: PathBuf, reason: String },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("nothing to draw: {0}")]
    Empty(&'static str),
}

const FONT: &str = "sans-serif";
static FONT_ONCE: Once = Once::new();

fn register_font() {
    FONT_ONCE.call_once(|| {
        // The bytes are a valid TrueType font checked in with the crate; failure here
        // would be a packaging bug, and text would then be missing, not wrong.
        let _ = plotters::style::register_font(
            FONT,
            FontStyle::Normal,
            include_bytes!("../assets/DejaVuSans.ttf"),
        );
    });
}

/// 15+ distinguishable colours: Tableau 10, then five darker tones.
const COLORS: [RGBColor; 16] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 63, 92),
    RGBColor(122, 81, 149),
    RGBColor(188, 80, 144),
    RGBColor(88, 80, 20),
    RGBColor(0, 110, 70),
    RGBColor(255, 166, 0),
];

fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// The house legend (series names in a light box) at `position`.
fn legend<'a, DB: DrawingBackend + 'a, CT: CoordTranslate>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> DrawResult<DB> {
    chart
        .configure_series_labels()
        .label_font((FONT, 13))
        .border_style(GREY_400)
        .background_style(WHITE.mix(0.9))
        .position(position)
        .draw()
}

/// Each chart is a small struct with one `draw` generic over the backend, so
/// `render_chart` can draw the same picture as SVG and as PNG.
trait Chart {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

fn render_chart(
    dir: &Path,
    name: &str,
    size: (u32, u32),
    chart: &impl Chart,
) -> Result<Written, ChartError> {
    register_font();
    let svg_path = dir.join(format!("{name}.svg"));
    let png_path = dir.join(format!("{name}.png"));
    let draw_err = |path: &Path, e: String| ChartError::Draw {
        path: path.to_path_buf(),
        reason: e,
    };
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        chart
            .draw(&root)
            .map_err(|e| draw_err(&svg_path, e.to_string()))?;
        root.present()
            .map_err(|e| draw_err(&svg_path, e.to_string()))?;
    }
    std::fs::write(&svg_path, &svg).map_err(|source| ChartError::Io {
        path: svg_path.clone(),
        source,
    })?;
    {
        let root = BitMapBackend::new(&png_path, size).into_drawing_area();
        chart
            .draw(&root)
            .map_err(|e| draw_err(&png_path, e.to_string()))?;
        root.present()
            .map_err(|e| draw_err(&png_path, e.to_string()))?;
    }
    Ok(Written {
        svg_path,
        png_path,
        svg,
    })
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

struct Roc<'a>(&'a [RocSeries]);

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
        let row = 22;
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

/// All classes' ROC curves on one plot, AUC in the legend.
///
/// # Errors
/// No curves, or the files cannot be written.
pub fn roc_curves(dir: &Path, curves: &[RocSeries]) -> Result<Written, ChartError> {
    if curves.is_empty() {
        return Err(ChartError::Empty(
            "no class has both positive and negative rows",
        ));
    }
    let height = (120 + curves.len() as u32 * 22).max(560);
    render_chart(dir, "roc", (1000, height), &Roc(curves))
}

struct Confusion<'a> {
    counts: &'a [Vec<u64>],
    classes: &'a [String],
}

impl Chart for Confusion<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let k = self.classes.len();
        let label_px = label_width(self.classes, 14);
        let (w, h) = root.dim_in_pixel();
        let cell =
            ((w as i32 - label_px - 40).min(h as i32 - label_px - 70) / k.max(1) as i32).max(8);
        let x0 = label_px + 20;
        let y0 = 50;
        root.draw(&Text::new(
            "confusion matrix (rows: true class, columns: predicted; colour: share of the row)",
            (x0.min(20), 14),
            (FONT, 16).into_font(),
        ))?;
        for (t, row) in self.counts.iter().enumerate() {
            let total: u64 = row.iter().sum();
            for (p, &n) in row.iter().enumerate() {
                let share = if total > 0 {
                    n as f64 / total as f64
                } else {
                    0.0
                };
                let fill = heat(share);
                let (x, y) = (x0 + p as i32 * cell, y0 + t as i32 * cell);
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    fill.filled(),
                ))?;
                root.draw(&Rectangle::new(
                    [(x, y), (x + cell, y + cell)],
                    WHITE.stroke_width(1),
                ))?;
                if n > 0 && cell >= 22 {
                    let text = compact_count(n);
                    let size = match (cell, text.len()) {
                        (60.., _) => 13,
                        (40.., 0..=4) => 12,
                        (40.., _) => 10,
                        _ => 9,
                    };
                    let ink = if share > 0.55 { WHITE } else { BLACK };
                    let tw = text.len() as i32 * size * 6 / 10;
                    root.draw(&Text::new(
                        text,
                        (x + (cell - tw) / 2, y + (cell - size) / 2),
                        (FONT, size as u32).into_font().color(&ink),
                    ))?;
                }
            }
        }
        for (i, name) in self.classes.iter().enumerate() {
            // Row labels, right-aligned against the matrix.
            let tw = text_width(name, 14);
            root.draw(&Text::new(
                name.clone(),
                (x0 - 8 - tw, y0 + i as i32 * cell + (cell - 14) / 2),
                (FONT, 14).into_font(),
            ))?;
            // Column labels, rotated to read bottom-up under each column.
            root.draw(&Text::new(
                name.clone(),
                (
                    x0 + i as i32 * cell + (cell - 14) / 2,
                    y0 + k as i32 * cell + 8 + text_width(name, 14),
                ),
                (FONT, 14).into_font().transform(FontTransform::Rotate270),
            ))?;
        }
        Ok(())
    }
}

/// Count as at most 5 characters: 1234 -> "1234", 12345 -> "12.3k", 1.2M.
fn compact_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// White through blue by share.
fn heat(share: f64) -> RGBColor {
    let s = share.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * s).round() as u8;
    RGBColor(lerp(247.0, 8.0), lerp(251.0, 48.0), lerp(255.0, 107.0))
}

/// Approximate pixel width of `s` in DejaVu Sans at `size` px (average advance
/// 0.6 em), for layout only.
fn text_width(s: &str, size: i32) -> i32 {
    (s.chars().count() as i32 * size * 6) / 10
}

fn label_width(names: &[String], size: i32) -> i32 {
    names.iter().map(|n| text_width(n, size)).max().unwrap_or(0)
}

/// Confusion-matrix heatmap with counts in the cells and class names on both axes.
///
/// # Errors
/// An empty or non-square matrix, or the files cannot be written.
pub fn confusion_heatmap(
    dir: &Path,
    counts: &[Vec<u64>],
    classes: &[String],
) -> Result<Written, ChartError> {
    if classes.is_empty()
        || counts.len() != classes.len()
        || counts.iter().any(|r| r.len() != classes.len())
    {
        return Err(ChartError::Empty(
            "the confusion matrix must be k x k with k class names",
        ));
    }
    let k = classes.len() as u32;
    let label = label_width(classes, 14) as u32;
    let cell = if k <= 6 { 70 } else { 44 };
    let side = label + 40 + cell * k;
    render_chart(
        dir,
        "confusion",
        (side.max(640), side + 70),
        &Confusion { counts, classes },
    )
}

struct Distribution<'a> {
    classes: &'a [String],
    counts: &'a [u64],
}

impl Chart for Distribution<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let k = self.classes.len();
        let max = self.counts.iter().copied().max().unwrap_or(1).max(1);
        // Log scale: IoT classes span four orders of magnitude (1,001 to 1.6M rows).
        let top = (max as f64).log10().ceil().max(1.0);
        let label_px = label_width(self.classes, 14) as u32 + 20;
        let mut chart = ChartBuilder::on(root)
            .caption("rows per class (log scale)", (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(label_px)
            .build_cartesian_2d(0.0..top + 0.4, (0..k).into_segmented())?;
        let names = self.classes.to_vec();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(k)
            .y_label_formatter(&|v: &SegmentValue<usize>| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_labels(top as usize + 1)
            // Label whole decades only: 1, 10, 100, ...
            .x_label_formatter(&|v: &f64| {
                if (v - v.round()).abs() < 1e-6 {
                    format!("{}", 10f64.powf(v.round()))
                } else {
                    String::new()
                }
            })
            .x_desc("rows")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        for (i, &n) in self.counts.iter().enumerate() {
            let v = if n > 0 {
                (n as f64).log10().max(0.02)
            } else {
                0.0
            };
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (v, SegmentValue::Exact(i + 1)),
                ],
                color(0).mix(0.85).filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            chart.draw_series(std::iter::once(bar))?;
            chart.draw_series(std::iter::once(Text::new(
                n.to_string(),
                (v + 0.03, SegmentValue::CenterOf(i)),
                TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            )))?;
        }
        Ok(())
    }
}

/// Horizontal bars of rows per class, on a log scale.
///
/// # Errors
/// No classes, or the files cannot be written.
pub fn class_distribution(
    dir: &Path,
    classes: &[String],
    counts: &[u64],
) -> Result<Written, ChartError> {
    if classes.is_empty() || classes.len() != counts.len() {
        return Err(ChartError::Empty("one count per class is needed"));
    }
    let height = 100 + classes.len() as u32 * 30;
    render_chart(
        dir,
        "class_distribution",
        (900, height.max(300)),
        &Distribution { classes, counts },
    )
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

struct PartitionBars<'a> {
    classes: &'a [String],
    /// `devices × classes` rows.
    counts: &'a [Vec<u64>],
    /// Edge of each device (bars are grouped by edge).
    edge_of: &'a [usize],
}

impl Chart for PartitionBars<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let legend_width = 40 + label_width(self.classes, 14) as u32;
        let (plot, legend) = root.split_horizontally(root.dim_in_pixel().0 - legend_width);
        let n = self.counts.len();
        let top = self
            .counts
            .iter()
            .map(|c| c.iter().sum::<u64>())
            .max()
            .unwrap_or(1)
            .max(1) as f64;
        let mut chart = ChartBuilder::on(&plot)
            .caption("training rows per device, by class", (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..n as f64, 0.0..top * 1.05)?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc("device (vertical lines separate edges)")
            .x_labels(n.min(25))
            .x_label_formatter(&|v: &f64| format!("{v:.0}"))
            .y_desc("rows")
            .y_label_formatter(&|v: &f64| compact_count(*v as u64))
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()?;
        for (d, row) in self.counts.iter().enumerate() {
            let mut base = 0.0;
            for (c, &v) in row.iter().enumerate() {
                if v == 0 {
                    continue;
                }
                let top = base + v as f64;
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(d as f64 + 0.1, base), (d as f64 + 0.9, top)],
                    color(c).filled(),
                )))?;
                base = top;
            }
        }
        // Edge boundaries.
        for d in 1..n {
            if self.edge_of[d] != self.edge_of[d - 1] {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(d as f64, 0.0), (d as f64, top * 1.05)],
                    GREY_700.stroke_width(1),
                )))?;
            }
        }
        for (i, name) in self.classes.iter().enumerate() {
            let y = 50 + i as i32 * 22;
            legend.draw(&Rectangle::new(
                [(8, y - 7), (24, y + 7)],
                color(i).filled(),
            ))?;
            legend.draw(&Text::new(
                name.clone(),
                (32, y - 8),
                (FONT, 14).into_font().color(&GREY_700),
            ))?;
        }
        Ok(())
    }
}

/// Stacked bars of each device's training rows by class, devices grouped by edge.
///
/// # Errors
/// No devices, or the files cannot be written.
pub fn partition_histogram(
    dir: &Path,
    classes: &[String],
    counts: &[Vec<u64>],
    edge_of: &[usize],
) -> Result<Written, ChartError> {
    if counts.is_empty() || counts.len() != edge_of.len() {
        return Err(ChartError::Empty(
            "one row of class counts per device is needed",
        ));
    }
    let height = (120 + classes.len() as u32 * 22).max(420);
    render_chart(
        dir,
        "partition",
        (1100, height),
        &PartitionBars {
            classes,
            counts,
            edge_of,
        },
    )
}

struct ScoreBars<'a> {
    title: &'a str,
    labels: &'a [String],
    values: &'a [f64],
    /// Colour index of each bar (bars of one condition share a colour).
    colors: &'a [usize],
}

impl Chart for ScoreBars<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let k = self.labels.len();
        let label_px = label_width(self.labels, 14) as u32 + 20;
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(label_px)
            .build_cartesian_2d(0.0..1.08, (0..k).into_segmented())?;
        let names = self.labels.to_vec();
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(k)
            .y_label_formatter(&|v: &SegmentValue<usize>| match v {
                SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
                _ => String::new(),
            })
            .x_desc("score")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        for (i, &v) in self.values.iter().enumerate() {
            let v = if v.is_finite() {
                v.clamp(0.0, 1.0)
            } else {
                0.0
            };
            let mut bar = Rectangle::new(
                [
                    (0.0, SegmentValue::Exact(i)),
                    (v, SegmentValue::Exact(i + 1)),
                ],
                color(self.colors.get(i).copied().unwrap_or(0))
                    .mix(0.85)
                    .filled(),
            );
            bar.set_margin(4, 4, 0, 0);
            chart.draw_series(std::iter::once(bar))?;
            chart.draw_series(std::iter::once(Text::new(
                format!("{v:.3}"),
                (v + 0.01, SegmentValue::CenterOf(i)),
                TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
            )))?;
        }
        Ok(())
    }
}

/// Horizontal bars of scores in [0, 1], one per label, written as `name`.svg/.png.
///
/// # Errors
/// No bars, or the files cannot be written.
pub fn score_bars(
    dir: &Path,
    name: &str,
    title: &str,
    labels: &[String],
    values: &[f64],
    colors: &[usize],
) -> Result<Written, ChartError> {
    if labels.is_empty() || labels.len() != values.len() {
        return Err(ChartError::Empty("one value per bar is needed"));
    }
    let height = (100 + labels.len() as u32 * 30).max(260);
    render_chart(
        dir,
        name,
        (900, height),
        &ScoreBars {
            title,
            labels,
            values,
            colors,
        },
    )
}

/// Scores of several models side by side: for each model (a row of the chart) one thin bar
/// per series (accuracy, macro-F1, ...), coloured by series, with a legend.
struct GroupedBars<'a> {
    title: &'a str,
    models: &'a [String],
    series: &'a [(String, Vec<f64>)],
}

impl Chart for GroupedBars<'_> {
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        root.fill(&WHITE)?;
        let k = self.models.len();
        let s = self.series.len().max(1);
        let label_px = label_width(self.models, 14) as u32 + 20;
        // Each model's band is s + 1 slots tall: one per series and a gap.
        let slots = (k * (s + 1)) as f64;
        // The x range runs past 1 so the legend has a column of its own on the right.
        let mut chart = ChartBuilder::on(root)
            .caption(self.title, (FONT, 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(label_px)
            .build_cartesian_2d(0.0..1.45, slots..0.0)?;
        let band = (s + 1) as f64;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .light_line_style(WHITE)
            .x_labels(8)
            .x_label_formatter(&|v: &f64| {
                if *v <= 1.0 + 1e-9 {
                    format!("{v:.1}")
                } else {
                    String::new()
                }
            })
            .x_desc("score on the test rows")
            .label_style((FONT, 13))
            .axis_desc_style((FONT, 14))
            .draw()?;
        // Model names beside their bands, in the label area left of the plot.
        for (i, name) in self.models.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(0.0, i as f64 * band + s as f64 / 2.0));
            root.draw(&Text::new(
                name.clone(),
                (x - 8, y),
                TextStyle::from((FONT, 13).into_font()).pos(Pos::new(HPos::Right, VPos::Center)),
            ))?;
        }
        for (j, (name, values)) in self.series.iter().enumerate() {
            let c = color(j);
            let bars = values.iter().enumerate().map(|(i, &v)| {
                let v = if v.is_finite() {
                    v.clamp(0.0, 1.0)
                } else {
                    0.0
                };
                let y0 = i as f64 * band + j as f64;
                Rectangle::new([(0.0, y0 + 0.1), (v, y0 + 0.9)], c.mix(0.85).filled())
            });
            chart
                .draw_series(bars)?
                .label(name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 14, y + 5)], c.filled()));
            chart.draw_series(
                values
                    .iter()
                    .enumerate()
                    .filter(|(_, v)| v.is_finite())
                    .map(|(i, &v)| {
                        Text::new(
                            format!("{v:.3}"),
                            (v.clamp(0.0, 1.0) + 0.005, i as f64 * band + j as f64 + 0.5),
                            TextStyle::from((FONT, 10).into_font())
                                .pos(Pos::new(HPos::Left, VPos::Center)),
                        )
                    }),
            )?;
        }
        legend(&mut chart, SeriesLabelPosition::UpperRight)?;
        Ok(())
    }
}

/// Grouped horizontal bars: for each of `models`, one bar per series of `series` (name,
/// one value in [0, 1] per model; NaN draws no bar), written as `name`.svg/.png.
///
/// # Errors
/// No models, a series of another length, or the files cannot be written.
pub fn grouped_bars(
    dir: &Path,
    name: &str,
    title: &str,
    models: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<Written, ChartError> {
    if models.is_empty() || series.is_empty() || series.iter().any(|(_, v)| v.len() != models.len())
    {
        return Err(ChartError::Empty(
            "one value per model in every series is needed",
        ));
    }
    let height = (120 + models.len() as u32 * (series.len() as u32 + 1) * 9).max(300);
    render_chart(
        dir,
        name,
        (1000, height),
        &GroupedBars {
            title,
            models,
            series,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grouped_bars_name_every_model_and_refuse_ragged_series() {
        let dir = tempfile::tempdir().unwrap();
        let models: Vec<String> = ["logistic regression", "GRU (window 16)", "KNN"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let series = vec![
            ("accuracy".to_string(), vec![0.86, 0.99, 0.97]),
            ("macro ROC-AUC".to_string(), vec![0.96, f64::NAN, 0.99]),
        ];
        let w = grouped_bars(dir.path(), "cmp", "Models", &models, &series).unwrap();
        for m in &models {
            assert!(w.svg.contains(m.as_str()), "{m} is labelled");
        }
        assert!(w.svg.contains("macro ROC-AUC") && w.svg.contains("0.990"));
        assert!(w.png_path.exists());
        let ragged = vec![("accuracy".to_string(), vec![0.5])];
        assert!(grouped_bars(dir.path(), "x", "t", &models, &ragged).is_err());
    }

    #[test]
    fn counts_are_compact() {
        assert_eq!(compact_count(9999), "9999");
        assert_eq!(compact_count(12_345), "12.3k");
        assert_eq!(compact_count(1_615_643), "1.6M");
    }

    #[test]
    fn heat_runs_from_white_to_blue() {
        assert_eq!(heat(0.0), RGBColor(247, 251, 255));
        assert_eq!(heat(1.0), RGBColor(8, 48, 107));
    }

    /// Writes all four charts with 15 classes; set IOTIDS_CHART_DIR to keep them
    /// for a look (the assertions run either way).
    #[test]
    fn fifteen_class_gallery() {
        let keep = std::env::var_os("IOTIDS_CHART_DIR").map(PathBuf::from);
        let tmp = tempfile::tempdir().unwrap();
        let dir = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
        std::fs::create_dir_all(&dir).unwrap();
        let names: Vec<String> = iotids_data::schema::EDGE_CLASSES
            .iter()
            .map(|s| s.to_string())
            .collect();
        let counts: Vec<u64> = vec![
            1615643, 121568, 116436, 51203, 50153, 50110, 50062, 49911, 37634, 24862, 22564, 15915,
            10925, 1214, 1001,
        ];
        let k = names.len();
        let confusion: Vec<Vec<u64>> = (0..k)
            .map(|t| {
                (0..k)
                    .map(|p| {
                        if t == p {
                            counts[t] * 9 / 10
                        } else if (t + 1) % k == p {
                            counts[t] / 10
                        } else {
                            0
                        }
                    })
                    .collect()
            })
            .collect();
        let roc: Vec<RocSeries> = (0..k)
            .map(|c| {
                let a = 1.0 + c as f64;
                let fpr: Vec<f64> = (0..=20).map(|i| i as f64 / 20.0).collect();
                let tpr: Vec<f64> = fpr.iter().map(|x| x.powf(1.0 / (a + 1.0))).collect();
                RocSeries {
                    name: names[c].clone(),
                    fpr,
                    tpr,
                    auc: 1.0 - 1.0 / (a + 2.0),
                }
            })
            .collect();
        let epochs: Vec<EpochPoint> = (1..=12)
            .map(|e| EpochPoint {
                epoch: e,
                train_loss: 1.0 / e as f64,
                val_loss: 1.1 / e as f64 + 0.02,
                train_accuracy: 1.0 - 0.5 / e as f64,
                val_accuracy: 0.98 - 0.5 / e as f64,
            })
            .collect();
        for w in [
            confusion_heatmap(&dir, &confusion, &names).unwrap(),
            roc_curves(&dir, &roc).unwrap(),
            learning_curves(&dir, &epochs).unwrap(),
            class_distribution(&dir, &names, &counts).unwrap(),
            partition_histogram(
                &dir,
                &names,
                &(0..20)
                    .map(|d| {
                        (0..k)
                            .map(|c| ((d * 7 + c * 3) % 11) as u64 * 100)
                            .collect()
                    })
                    .collect::<Vec<_>>(),
                &(0..20).map(|d| d / 5).collect::<Vec<_>>(),
            )
            .unwrap(),
            round_curves(
                &dir,
                &(1..=30)
                    .map(|r| RoundPoint {
                        round: r,
                        val_loss: 1.0 / r as f64,
                        val_accuracy: 1.0 - 0.5 / r as f64,
                        val_macro_f1: 0.95 - 0.6 / r as f64,
                    })
                    .collect::<Vec<_>>(),
                Some((0.97, 0.93)),
            )
            .unwrap(),
        ] {
            assert!(
                w.svg.contains("Normal") || w.svg.contains("epoch") || w.svg.contains("round"),
                "{}",
                w.svg_path.display()
            );
            let png = std::fs::read(&w.png_path).unwrap();
            assert!(
                png.len() > 5_000,
                "{} is suspiciously small",
                w.png_path.display()
            );
        }
    }

    #[test]
    fn charts_are_written_as_svg_and_png() {
        let dir = tempfile::tempdir().unwrap();
        let classes: Vec<String> = ["Normal", "DDoS_UDP", "Fingerprinting"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let w = confusion_heatmap(
            dir.path(),
            &[vec![90, 5, 5], vec![2, 98, 0], vec![0, 1, 9]],
            &classes,
        )
        .unwrap();
        assert!(w.svg.starts_with("<svg"));
        assert!(w.svg.contains("Fingerprinting"));
        let png = std::fs::read(&w.png_path).unwrap();
        assert_eq!(&png[1..4], b"PNG");
        let e = confusion_heatmap(dir.path(), &[vec![1, 2]], &classes).unwrap_err();
        assert!(matches!(e, ChartError::Empty(_)));
    }
}
