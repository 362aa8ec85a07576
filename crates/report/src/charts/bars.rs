//! Bar charts: rows per class (log scale), each device's training rows by class
//! (stacked, grouped by edge), scores per label, and several models' scores side
//! by side.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::full_palette::GREY_700;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    Chart, ChartError, DrawResult, FONT, Written, color, compact_count, label_width, legend,
    render_chart,
};

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
}
