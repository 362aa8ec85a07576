//! Experiments around a federation run: the same network trained centrally on the same
//! split (what federating costs), and the same federation under every aggregation rule
//! with and without poisoning (what robust aggregation buys).

use iotids_model::examples::{Examples, evaluate_rows};
use iotids_model::gru::GruClassifier;
use iotids_model::metrics::Metrics;
use iotids_model::params::from_flat;
use iotids_model::train::{EpochRecord, History, TrainEvent, train};
use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregation;
use crate::config::{Attack, FederationConfig};
use crate::partition::Partition;
use crate::simulate::{Outcome, RoundRecord, Task, federate, federate_dealt};

/// The same network trained centrally on the federation's split.
#[derive(Debug, Clone)]
pub struct CentralRun {
    /// Validation accuracy of the kept epoch (NaN without validation rows).
    pub validation_accuracy: f64,
    /// Validation macro-F1 of the kept epoch (NaN without validation rows).
    pub validation_macro_f1: f64,
    /// Test metrics (None without test rows).
    pub test: Option<Metrics>,
    /// Epochs run.
    pub epochs: usize,
    /// The kept epoch.
    pub best_epoch: usize,
    /// Wall time of the training.
    pub seconds: f64,
}

/// Trains `task`'s network centrally on its training rows (all of them, pooled: the
/// comparison a federation is measured against), with early stopping on the validation
/// rows, and scores it on validation and on `test_rows`. `classes` names the outputs.
///
/// # Errors
///
/// Training errors (see [`iotids_model::train::train`]).
pub fn central_baseline(
    task: &Task<'_>,
    classes: &[String],
    test_rows: &[usize],
    on_event: &mut (dyn FnMut(TrainEvent) + Send),
) -> crate::Result<(CentralRun, History)> {
    let (_, run, history) = central_training(task, classes, test_rows, on_event)?;
    Ok((run, history))
}

/// [`central_baseline`], also returning the trained network (to score another file with).
///
/// # Errors
///
/// As [`central_baseline`].
pub fn central_training(
    task: &Task<'_>,
    classes: &[String],
    test_rows: &[usize],
    on_event: &mut (dyn FnMut(TrainEvent) + Send),
) -> crate::Result<(GruClassifier, CentralRun, History)> {
    fn examples<'a>(task: &Task<'a>, rows: &'a [usize]) -> Examples<'a> {
        Examples {
            sequences: task.sequences,
            labels: task.labels,
            rows,
        }
    }
    let (net, history) = train(
        task.model,
        task.train,
        task.class_weights,
        examples(task, task.train_rows),
        examples(task, task.validation_rows),
        on_event,
    )?;
    let normal = iotids_data::schema::normal_class(classes);
    let metrics_on = |rows: &[usize]| -> Option<Metrics> {
        (!rows.is_empty()).then(|| {
            let ex = Examples {
                sequences: task.sequences,
                labels: task.labels,
                rows,
            };
            evaluate_rows(&net, ex, classes, normal)
        })
    };
    let validation = metrics_on(task.validation_rows);
    let run = CentralRun {
        validation_accuracy: validation.as_ref().map_or(f64::NAN, |m| m.accuracy),
        validation_macro_f1: validation.as_ref().map_or(f64::NAN, |m| m.macro_f1),
        test: metrics_on(test_rows),
        epochs: history.epochs.len(),
        best_epoch: history.best_epoch,
        seconds: history.seconds,
    };
    Ok((net, run, history))
}

/// One run of the robustness comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustnessRow {
    /// The rule at both tiers.
    pub aggregation: String,
    /// The attack of this run (`none` for the clean run).
    pub attack: String,
    /// Poisoning devices.
    pub malicious_devices: usize,
    /// The round kept.
    pub kept_round: usize,
    /// Its validation macro-F1.
    pub validation_macro_f1: Option<f64>,
    /// The kept model's test accuracy (None without test rows).
    pub test_accuracy: Option<f64>,
    /// Its test macro-F1.
    pub test_macro_f1: Option<f64>,
}

/// The aggregation rules the robustness comparison runs: the mean, the coordinate-wise
/// median, the trimmed mean (β 0.2) and multi-Krum tolerating as many attackers per edge
/// as `cfg` makes (at least one).
pub fn robustness_rules(cfg: &FederationConfig) -> [Aggregation; 4] {
    let per_edge = cfg.devices.div_ceil(cfg.edges);
    let f = ((cfg.malicious * per_edge as f64).ceil() as usize).max(1);
    [
        Aggregation::Mean,
        Aggregation::Median,
        Aggregation::TrimmedMean { beta: 0.2 },
        Aggregation::Krum { f, keep: 0 },
    ]
}

/// The same federation (partition, schedule, seed) with each of [`robustness_rules`] at
/// both tiers, without the attack and, if `cfg` sets one, with it; each kept model scored
/// on `test` (no rows: not scored). `on_run` hears each run's rule and attack before it
/// starts. `partition`:
/// the main run's (its class counts by the task's class ids); none deals it as [`federate`]
/// does.
///
/// # Errors
///
/// A federation that cannot run (see [`federate`]).
pub fn robustness(
    task: &Task<'_>,
    cfg: &FederationConfig,
    partition: Option<&Partition>,
    classes: &[String],
    test: Examples<'_>,
    on_run: &mut dyn FnMut(Aggregation, Attack),
) -> crate::Result<Vec<RobustnessRow>> {
    let attacks: Vec<Attack> = if cfg.attack == Attack::None {
        vec![Attack::None]
    } else {
        vec![Attack::None, cfg.attack]
    };
    let normal = iotids_data::schema::normal_class(classes);
    let mut rows = Vec::new();
    for &attack in &attacks {
        for rule in robustness_rules(cfg) {
            let c = FederationConfig {
                edge_aggregation: rule,
                cloud_aggregation: rule,
                attack,
                ..cfg.clone()
            };
            on_run(rule, attack);
            let o = match partition {
                Some(part) => federate_dealt(task, &c, part.clone(), &mut |_| {})?,
                None => federate(task, &c, &mut |_| {})?,
            };
            let net = from_flat(task.model, &iotids_model::backend::device(), &o.weights)?;
            let test = (!test.rows.is_empty()).then(|| evaluate_rows(&net, test, classes, normal));
            let kept = o.rounds.get(o.best_round.saturating_sub(1));
            rows.push(RobustnessRow {
                aggregation: rule.to_string(),
                attack: attack.to_string(),
                malicious_devices: o.malicious.len(),
                kept_round: o.best_round,
                validation_macro_f1: kept.and_then(|r| r.validation_macro_f1),
                test_accuracy: test.as_ref().map(|m| m.accuracy),
                test_macro_f1: test.as_ref().map(|m| m.macro_f1),
            });
        }
    }
    Ok(rows)
}

/// The rounds as a model card's training history: one "epoch" per cloud round.
pub fn rounds_history(o: &Outcome) -> History {
    History {
        epochs: o.rounds.iter().map(round_epoch).collect(),
        best_epoch: o.best_round,
        stopped_early: false,
        seconds: o.seconds,
    }
}

pub fn round_epoch(r: &RoundRecord) -> EpochRecord {
    EpochRecord {
        epoch: r.round,
        train_loss: r.train_loss.unwrap_or(f64::NAN),
        train_accuracy: r.train_accuracy.unwrap_or(f64::NAN),
        validation_loss: r.validation_loss,
        validation_accuracy: r.validation_accuracy,
        validation_macro_f1: r.validation_macro_f1,
        seconds: r.seconds,
    }
}
