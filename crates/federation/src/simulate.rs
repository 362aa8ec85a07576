//! The hierarchy in one process: devices train, edges aggregate their devices, the cloud
//! aggregates the edges (HierFAVG, Liu et al. 2020).
//!
//! One cloud round:
//!
//! 1. the cloud sends the global model to every edge;
//! 2. `edge_rounds` times: each edge samples a `fraction` of its devices and sends them its
//!    model; each trains `local_epochs` epochs on its own rows and sends the weights back,
//!    unless it fails (probability `device_dropout`) or misses the `deadline` (its simulated time
//!    is its windows over its speed, plus the model's bytes both ways over the link); the
//!    edge aggregates what arrived in time (weights renormalised over those devices);
//! 3. the cloud aggregates the edges, weighted by the windows behind each edge's model,
//!    and its server optimiser (FedAvgM, FedAdam, FedYogi) steps the global model;
//! 4. the global model is scored on the validation rows.
//!
//! Raw rows never leave their device: what crosses a tier is a flat weight vector. The
//! devices of an edge round train in parallel (rayon); every random choice is drawn from a
//! generator keyed by (seed, round, edge round, device), so a run is the same whatever the
//! thread count or scheduling.

use std::time::Instant;

use iotids_data::window::Sequences;
use iotids_model::examples::{Examples, score};
use iotids_model::gru::GruConfig;
use iotids_model::params::{flatten, from_flat};
use iotids_model::train::{LocalUpdate, TrainConfig, loss_weights, train_local};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::aggregate::Update;
use crate::config::{Attack, FederationConfig};
use crate::partition::{Partition, Rows, partition};
use crate::strategy::ServerOptimizer;

/// Windows per inference batch when scoring the validation rows.
const SCORE_BATCH: usize = 1024;

/// The data and model a federation trains.
#[derive(Debug, Clone, Copy)]
pub struct Task<'a> {
    /// The network's shape (its seed gives the initial global model).
    pub model: &'a GruConfig,
    /// Local training: batch size, learning rate, class weighting (epochs and patience are
    /// the central run's; devices use `local_epochs`).
    pub train: &'a TrainConfig,
    /// The pipeline's class weights.
    pub class_weights: &'a [f64],
    /// Features and flow windows of every row of the table.
    pub sequences: &'a Sequences,
    /// Class of every row of the table.
    pub labels: &'a [u32],
    /// Flow id of every row, if the data has flows (the unit dealt to devices).
    pub flows: Option<&'a [u32]>,
    /// Source-host id of every row, if the data has hosts (the `host` partition).
    pub hosts: Option<&'a [u32]>,
    /// The training split, dealt to the devices.
    pub train_rows: &'a [usize],
    /// The validation split, which scores the global model after each cloud round.
    pub validation_rows: &'a [usize],
}

/// One cloud round's numbers: a point of the curves over rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// From 1.
    pub round: usize,
    /// Sample-weighted mean of the accepted devices' last-epoch training loss.
    pub train_loss: Option<f64>,
    /// Sample-weighted mean of the accepted devices' last-epoch training accuracy.
    pub train_accuracy: Option<f64>,
    /// The new global model's loss on the validation rows.
    pub validation_loss: Option<f64>,
    /// Its validation accuracy.
    pub validation_accuracy: Option<f64>,
    /// Its validation macro-F1.
    pub validation_macro_f1: Option<f64>,
    /// Device trainings asked for (sampled devices, summed over edge rounds).
    pub sampled: usize,
    /// Updates the edges aggregated.
    pub accepted: usize,
    /// Devices that failed mid-round and sent nothing.
    pub failed: usize,
    /// Updates that missed the deadline and were dropped.
    pub late: usize,
    /// Bytes edges sent devices (the edge model, to each sampled device).
    pub bytes_edge_to_devices: u64,
    /// Bytes devices sent edges (updates, late ones included).
    pub bytes_devices_to_edge: u64,
    /// Bytes edges sent the cloud.
    pub bytes_edges_to_cloud: u64,
    /// Bytes the cloud sent edges.
    pub bytes_cloud_to_edges: u64,
    /// The round's duration in simulated device time (slowest accepted device, or the
    /// deadline, per edge round).
    pub simulated_seconds: f64,
    /// Wall time of the round.
    pub seconds: f64,
    /// Of which: local training (the parallel phase).
    pub training_seconds: f64,
    /// Of which: edge and cloud aggregation and the server step.
    pub aggregation_seconds: f64,
    /// Of which: scoring the validation rows.
    pub evaluation_seconds: f64,
}

/// What a federation produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// One record per cloud round.
    pub rounds: Vec<RoundRecord>,
    /// The round whose global model is kept: highest validation macro-F1, ties to the lower
    /// validation loss (the last round without validation rows). Not the lowest loss, as
    /// central training's early stopping uses: under label skew the global model's
    /// validation loss grows with a few confident mistakes while its macro-F1 still
    /// improves (MQTTset, Dirichlet 0.3: the lowest-loss round scored 0.43 validation
    /// macro-F1, the best round 0.64).
    pub best_round: usize,
    /// That model's flat weights.
    pub weights: Vec<f32>,
    /// Which rows each device held.
    pub partition: Partition,
    /// The edge of each device.
    pub edge_of: Vec<usize>,
    /// The poisoning devices.
    pub malicious: Vec<usize>,
    /// Bytes of one model on the wire (f32 weights).
    pub model_bytes: u64,
    /// Wall time of the whole run.
    pub seconds: f64,
}

/// Runs the federation `cfg` on `task`; `on_round` sees each round as it ends.
///
/// # Errors
///
/// [`Error::Config`] for a bad config or a partition that can't be made; model errors from
/// local training.
pub fn federate(
    task: &Task<'_>,
    cfg: &FederationConfig,
    on_round: &mut (dyn FnMut(&RoundRecord) + Send),
) -> crate::Result<Outcome> {
    cfg.check()?;
    let started = Instant::now();
    let classes = task.class_weights.len();
    let part = partition(
        Rows {
            rows: task.train_rows,
            labels: task.labels,
            classes,
            flows: task.flows,
            hosts: task.hosts,
        },
        cfg.partition,
        cfg.devices,
        cfg.alpha,
        cfg.seed,
    )?;
    let edge_of: Vec<usize> = (0..cfg.devices).map(|d| cfg.edge_of(d)).collect();
    let malicious = pick_malicious(cfg);
    let devices = Devices::new(task, cfg, &part, &malicious);
    let speeds = device_speeds(cfg);
    let mut global = flatten(&task.model.init(&iotids_model::backend::device()));
    let model_bytes = (global.len() * std::mem::size_of::<f32>()) as u64;
    let link_seconds = 2.0 * model_bytes as f64 / cfg.bandwidth;
    let mut server = ServerOptimizer::new(cfg.strategy, cfg.server());
    let weights = loss_weights(task.train, task.class_weights);

    let mut rounds = Vec::with_capacity(cfg.rounds);
    let mut best: Option<((f64, f64), usize, Vec<f32>)> = None;
    for round in 1..=cfg.rounds {
        let t0 = Instant::now();
        let mut rec = RoundRecord {
            round,
            train_loss: None,
            train_accuracy: None,
            validation_loss: None,
            validation_accuracy: None,
            validation_macro_f1: None,
            sampled: 0,
            accepted: 0,
            failed: 0,
            late: 0,
            bytes_edge_to_devices: 0,
            bytes_devices_to_edge: 0,
            bytes_edges_to_cloud: 0,
            bytes_cloud_to_edges: cfg.edges as u64 * model_bytes,
            simulated_seconds: 0.0,
            seconds: 0.0,
            training_seconds: 0.0,
            aggregation_seconds: 0.0,
            evaluation_seconds: 0.0,
        };
        let mut edge_models = vec![global.clone(); cfg.edges];
        // Windows behind each edge's current model (0: no device reported this round).
        let mut edge_samples = vec![0f64; cfg.edges];
        let (mut loss_sum, mut accuracy_sum, mut loss_n) = (0.0, 0.0, 0.0);
        for edge_round in 0..cfg.edge_rounds {
            let jobs = sample_jobs(
                cfg,
                &part,
                &edge_of,
                &speeds,
                round,
                edge_round,
                link_seconds,
            );
            rec.count_jobs(&jobs, model_bytes, cfg);

            let t_train = Instant::now();
            let trained: Vec<Option<LocalUpdate>> = jobs
                .par_iter()
                .map(|j| match j.fate {
                    Fate::Arrives => device_update(
                        task,
                        cfg,
                        &devices,
                        j,
                        &edge_models[j.edge],
                        (round, edge_round),
                    )
                    .map(Some),
                    Fate::Fails | Fate::Late => Ok(None),
                })
                .collect::<crate::Result<_>>()?;
            rec.training_seconds += t_train.elapsed().as_secs_f64();

            let t_agg = Instant::now();
            for e in 0..cfg.edges {
                let arrived: Vec<&LocalUpdate> = jobs
                    .iter()
                    .zip(&trained)
                    .filter(|(j, _)| j.edge == e)
                    .filter_map(|(_, u)| u.as_ref())
                    .collect();
                if arrived.is_empty() {
                    continue;
                }
                rec.accepted += arrived.len();
                for u in &arrived {
                    loss_sum += u.loss * u.samples as f64;
                    accuracy_sum += u.accuracy * u.samples as f64;
                    loss_n += u.samples as f64;
                }
                let updates: Vec<Update<'_>> = arrived
                    .iter()
                    .map(|u| Update {
                        weights: &u.weights,
                        samples: u.samples as f64,
                    })
                    .collect();
                edge_samples[e] = updates.iter().map(|u| u.samples).sum();
                edge_models[e] = cfg.edge_aggregation.aggregate(&updates)?;
            }
            rec.aggregation_seconds += t_agg.elapsed().as_secs_f64();
        }

        let t_agg = Instant::now();
        let reporting: Vec<Update<'_>> = edge_models
            .iter()
            .zip(&edge_samples)
            .filter(|(_, n)| **n > 0.0)
            .map(|(w, &n)| Update {
                weights: w,
                samples: n,
            })
            .collect();
        rec.bytes_edges_to_cloud = reporting.len() as u64 * model_bytes;
        if !reporting.is_empty() {
            let aggregate = cfg.cloud_aggregation.aggregate(&reporting)?;
            global = server.step(&global, &aggregate);
        }
        rec.aggregation_seconds += t_agg.elapsed().as_secs_f64();
        rec.train_loss = (loss_n > 0.0).then(|| loss_sum / loss_n);
        rec.train_accuracy = (loss_n > 0.0).then(|| accuracy_sum / loss_n);

        let t_eval = Instant::now();
        if !task.validation_rows.is_empty() {
            let net = from_flat(task.model, &iotids_model::backend::device(), &global)?;
            let ex = Examples {
                sequences: task.sequences,
                labels: task.labels,
                rows: task.validation_rows,
            };
            let scores = score(&net, ex, SCORE_BATCH);
            let (loss, accuracy) = scores.loss_and_accuracy(&ex, &weights);
            let y_true: Vec<u32> = task
                .validation_rows
                .iter()
                .map(|&r| task.labels[r])
                .collect();
            let f1 = iotids_model::metrics::macro_f1(&y_true, &scores.predictions(), classes);
            rec.validation_loss = Some(loss);
            rec.validation_accuracy = Some(accuracy);
            rec.validation_macro_f1 = Some(f1);
        }
        rec.evaluation_seconds = t_eval.elapsed().as_secs_f64();
        rec.seconds = t0.elapsed().as_secs_f64();

        // Larger is better: (macro-F1, −loss); without validation rows every round ties and
        // the last one wins.
        let criterion = (
            rec.validation_macro_f1.unwrap_or(0.0),
            -rec.validation_loss
                .filter(|l| l.is_finite())
                .unwrap_or(f64::INFINITY),
        );
        let no_validation = task.validation_rows.is_empty();
        if best
            .as_ref()
            .is_none_or(|(b, _, _)| no_validation || criterion > *b)
        {
            best = Some((criterion, round, global.clone()));
        }
        on_round(&rec);
        rounds.push(rec);
    }
    let (_, best_round, weights) = best.unwrap_or(((0.0, 0.0), cfg.rounds, global));
    Ok(Outcome {
        rounds,
        best_round,
        weights,
        partition: part,
        edge_of,
        malicious,
        model_bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// What each device holds: its rows, and whether (and how) it poisons.
struct Devices<'a> {
    part: &'a Partition,
    malicious: Vec<bool>,
    /// Every row's label shifted by one class, for `label-flip` devices.
    flipped: Vec<u32>,
}

impl<'a> Devices<'a> {
    fn new(
        task: &Task<'_>,
        cfg: &FederationConfig,
        part: &'a Partition,
        malicious: &[usize],
    ) -> Self {
        let mut is = vec![false; cfg.devices];
        for &d in malicious {
            is[d] = true;
        }
        let classes = task.class_weights.len() as u32;
        let flipped = if cfg.attack == Attack::LabelFlip {
            task.labels.iter().map(|&y| (y + 1) % classes).collect()
        } else {
            Vec::new()
        };
        Devices {
            part,
            malicious: is,
            flipped,
        }
    }
}

/// Device `job.device`'s local training from `start`, poisoned if the device is malicious.
fn device_update(
    task: &Task<'_>,
    cfg: &FederationConfig,
    devices: &Devices<'_>,
    job: &Job,
    start: &[f32],
    (round, edge_round): (usize, usize),
) -> crate::Result<LocalUpdate> {
    let poisoned = devices.malicious[job.device];
    let labels = if poisoned && cfg.attack == Attack::LabelFlip {
        &devices.flipped[..]
    } else {
        task.labels
    };
    let local_cfg = TrainConfig {
        seed: mix(cfg.seed, round, edge_round, job.device),
        ..task.train.clone()
    };
    let mut update = train_local(
        task.model,
        &local_cfg,
        cfg.local_epochs,
        cfg.device_mu(),
        task.class_weights,
        start,
        Examples {
            sequences: task.sequences,
            labels,
            rows: &devices.part.devices[job.device],
        },
    )?;
    if poisoned && cfg.attack == Attack::Scale {
        let s = cfg.attack_scale as f32;
        for (w, &w0) in update.weights.iter_mut().zip(start) {
            *w = w0 + s * (*w - w0);
        }
    }
    Ok(update)
}

impl RoundRecord {
    /// Counts an edge round's sampled devices, what became of them, the bytes they moved,
    /// and its simulated duration (the slowest device that reported, capped by the
    /// deadline, on the slowest edge).
    fn count_jobs(&mut self, jobs: &[Job], model_bytes: u64, cfg: &FederationConfig) {
        self.sampled += jobs.len();
        self.bytes_edge_to_devices += jobs.len() as u64 * model_bytes;
        let mut edge_time = vec![0f64; cfg.edges];
        for j in jobs {
            match j.fate {
                Fate::Fails => self.failed += 1,
                Fate::Late => {
                    self.late += 1;
                    self.bytes_devices_to_edge += model_bytes;
                }
                Fate::Arrives => self.bytes_devices_to_edge += model_bytes,
            }
            if j.fate != Fate::Fails {
                let t = cfg.deadline.map_or(j.seconds, |d| j.seconds.min(d));
                edge_time[j.edge] = edge_time[j.edge].max(t);
            }
        }
        self.simulated_seconds += edge_time.iter().copied().fold(0.0, f64::max);
    }
}

/// What becomes of a sampled device this edge round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Arrives,
    Fails,
    Late,
}

#[derive(Debug, Clone, Copy)]
struct Job {
    device: usize,
    edge: usize,
    fate: Fate,
    /// Simulated time to train and exchange the model.
    seconds: f64,
}

/// The devices each edge asks to train this edge round, and what becomes of them.
fn sample_jobs(
    cfg: &FederationConfig,
    part: &Partition,
    edge_of: &[usize],
    speeds: &[f64],
    round: usize,
    edge_round: usize,
    link_seconds: f64,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    for e in 0..cfg.edges {
        let mut members: Vec<usize> = (0..cfg.devices)
            .filter(|&d| edge_of[d] == e && !part.devices[d].is_empty())
            .collect();
        if members.is_empty() {
            continue;
        }
        let take = ((cfg.fraction * members.len() as f64).ceil() as usize).clamp(1, members.len());
        if take < members.len() {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed ^ 0xed6e, round, edge_round, e));
            members.shuffle(&mut rng);
            members.truncate(take);
            members.sort_unstable();
        }
        for d in members {
            let mut rng = ChaCha8Rng::seed_from_u64(mix(cfg.seed ^ 0xfa7e, round, edge_round, d));
            let fails = rng.random::<f64>() < cfg.device_dropout;
            let jitter =
                LogNormal::new(0.0, cfg.speed_spread / 5.0).map_or(1.0, |j| j.sample(&mut rng));
            let windows = (part.devices[d].len() * cfg.local_epochs) as f64;
            let seconds = windows / (cfg.device_rate * speeds[d] * jitter) + link_seconds;
            let fate = if fails {
                Fate::Fails
            } else if cfg.deadline.is_some_and(|dl| seconds > dl) {
                Fate::Late
            } else {
                Fate::Arrives
            };
            jobs.push(Job {
                device: d,
                edge: e,
                fate,
                seconds,
            });
        }
    }
    jobs
}

/// Each device's speed factor, log-normal around 1.
fn device_speeds(cfg: &FederationConfig) -> Vec<f64> {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x005b_eed5);
    let dist = LogNormal::new(0.0, cfg.speed_spread).ok();
    (0..cfg.devices)
        .map(|_| dist.map_or(1.0, |d| d.sample(&mut rng)))
        .collect()
}

/// `round(malicious · devices)` devices, chosen by the seed.
fn pick_malicious(cfg: &FederationConfig) -> Vec<usize> {
    if cfg.attack == Attack::None {
        return Vec::new();
    }
    let n = (cfg.malicious * cfg.devices as f64).round() as usize;
    let mut all: Vec<usize> = (0..cfg.devices).collect();
    all.shuffle(&mut ChaCha8Rng::seed_from_u64(cfg.seed ^ 0xbad));
    all.truncate(n);
    all.sort_unstable();
    all
}

/// A seed for (seed, round, edge round, index): splitmix64 over the four.
fn mix(seed: u64, round: usize, edge_round: usize, i: usize) -> u64 {
    let mut x = seed;
    for v in [round as u64, edge_round as u64, i as u64] {
        x = x.wrapping_add(v.wrapping_add(0x9E37_79B9_7F4A_7C15));
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}

impl Outcome {
    /// The first round whose validation macro-F1 reached `target`, if any.
    pub fn first_round_reaching(&self, target: f64) -> Option<usize> {
        self.rounds
            .iter()
            .find(|r| r.validation_macro_f1.is_some_and(|f| f >= target))
            .map(|r| r.round)
    }
}

#[cfg(test)]
mod tests;
