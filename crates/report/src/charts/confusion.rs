//! The confusion-matrix heatmap: counts in the cells, each row coloured by its
//! share, class names on both axes (rotated under the columns).

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontTransform;

use super::{
    Chart, ChartError, DrawResult, FONT, Written, compact_count, label_width, render_chart,
    text_width,
};

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

/// White through blue by share.
fn heat(share: f64) -> RGBColor {
    let s = share.clamp(0.0, 1.0);
    let lerp = |a: f64, b: f64| (a + (b - a) * s).round() as u8;
    RGBColor(lerp(247.0, 8.0), lerp(251.0, 48.0), lerp(255.0, 107.0))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heat_runs_from_white_to_blue() {
        assert_eq!(heat(0.0), RGBColor(247, 251, 255));
        assert_eq!(heat(1.0), RGBColor(8, 48, 107));
    }
}
