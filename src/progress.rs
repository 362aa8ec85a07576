//! Progress bars (indicatif) on stderr; hidden with `--quiet` or when stderr is
//! not a terminal.

use std::path::Path;
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use iotids_data::ingest::Progress;
use iotids_model::train::TrainEvent;

/// Where bars draw: stderr, or nowhere with `--quiet`.
fn target(quiet: bool) -> ProgressDrawTarget {
    if quiet {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    }
}

/// A byte-progress bar for reading `path`, and the callback that drives it.
pub fn reading(path: &Path, quiet: bool) -> (ProgressBar, Progress) {
    let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let bar = ProgressBar::with_draw_target(Some(len), target(quiet));
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(format!(
        "reading {}",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    ));
    let b = bar.clone();
    (bar, Arc::new(move |pos| b.set_position(pos)))
}

/// A spinner for a step of unknown length.
pub fn step(msg: &str, quiet: bool) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(None, target(quiet));
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(msg.to_string());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// A progress bar per training epoch (batches done, running loss and accuracy), and a
/// line per finished epoch; the returned closure takes the trainer's events.
pub fn training(epochs: usize, quiet: bool) -> impl FnMut(TrainEvent) {
    let mut bar: Option<ProgressBar> = None;
    move |event| match event {
        TrainEvent::EpochStart { epoch, batches } => {
            let b = ProgressBar::with_draw_target(Some(batches as u64), target(quiet));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {pos}/{len} batches {msg} eta {eta}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(format!("epoch {epoch}/{epochs}"));
            bar = Some(b);
        }
        TrainEvent::Batch { loss, accuracy } => {
            if let Some(b) = &bar {
                b.set_message(format!("loss {loss:.4} acc {accuracy:.4}"));
                b.inc(1);
            }
        }
        TrainEvent::EpochEnd(e) => {
            if let Some(b) = bar.take() {
                b.finish_and_clear();
            }
            if !quiet {
                let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
                eprintln!(
                    "epoch {:>3}/{epochs}: loss {:.4} acc {:.4} | validation loss {} acc {} | {:.1} s",
                    e.epoch,
                    e.train_loss,
                    e.train_accuracy,
                    opt(e.validation_loss),
                    opt(e.validation_accuracy),
                    e.seconds
                );
            }
        }
    }
}

/// A progress bar over cloud rounds, and a line per finished round.
pub fn rounds(total: usize, quiet: bool) -> impl FnMut(&iotids_federation::RoundRecord) + Send {
    let bar = ProgressBar::with_draw_target(Some(total as u64), target(quiet));
    bar.set_style(
        ProgressStyle::with_template(
            "federating [{bar:30}] {pos}/{len} cloud rounds {msg} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    move |r| {
        let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
        let line = format!(
            "round {:>3}/{total}: device loss {} | validation loss {} acc {} macro-F1 {} | {} trained, {} failed, {} late | {:.1} s",
            r.round,
            opt(r.train_loss),
            opt(r.validation_loss),
            opt(r.validation_accuracy),
            opt(r.validation_macro_f1),
            r.accepted,
            r.failed,
            r.late,
            r.seconds
        );
        bar.inc(1);
        bar.set_message(format!("macro-F1 {}", opt(r.validation_macro_f1)));
        if !quiet {
            bar.suspend(|| eprintln!("{line}"));
        }
        if r.round == total {
            bar.finish_and_clear();
        }
    }
}
