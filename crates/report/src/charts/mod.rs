//! Pictures with plotters, each written as SVG (for the HTML report) and PNG: the
//! curves of training and federation (`curves`), the confusion-matrix heatmap
//! (`confusion`), and bar charts of classes, devices and scores (`bars`).
//!
//! Every chart is drawn by one generic function over plotters' `DrawingBackend`,
//! called once per backend, so the SVG and the PNG are the same picture. Text is
//! rendered with an embedded DejaVu Sans (no system fonts needed on a fresh machine).
//! What the charts share (the font, the palette, the legend style, the rendering to
//! both files) is here; a new chart is a struct implementing `Chart` in the module of
//! its kind, plus a public function that checks its input and calls `render_chart`.

mod bars;
mod confusion;
mod curves;

use std::path::{Path, PathBuf};
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::full_palette::GREY_400;

pub use bars::{class_distribution, grouped_bars, partition_histogram, score_bars};
pub use confusion::confusion_heatmap;
pub use curves::{
    EpochPoint, RocMarker, RocSeries, RoundPoint, learning_curves, roc_curves, round_curves,
};

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
            include_bytes!("../../assets/DejaVuSans.ttf"),
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

/// Count as at most 5 characters: 1234 -> "1234", 12345 -> "12.3k", 1.2M.
fn compact_count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.1}M", n as f64 / 1e6),
    }
}

/// Approximate pixel width of `s` in DejaVu Sans at `size` px (average advance
/// 0.6 em), for layout only.
fn text_width(s: &str, size: i32) -> i32 {
    (s.chars().count() as i32 * size * 6) / 10
}

fn label_width(names: &[String], size: i32) -> i32 {
    names.iter().map(|n| text_width(n, size)).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_compact() {
        assert_eq!(compact_count(9999), "9999");
        assert_eq!(compact_count(12_345), "12.3k");
        assert_eq!(compact_count(1_615_643), "1.6M");
    }

    /// Writes the confusion, ROC, learning-curve, class, partition and round charts
    /// with 15 classes; set IOTIDS_CHART_DIR to keep them for a look (the assertions
    /// run either way).
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
            roc_curves(
                &dir,
                &roc,
                Some(&RocMarker {
                    fpr: 0.1,
                    tpr: 0.9,
                    label: "decision".into(),
                }),
            )
            .unwrap(),
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
