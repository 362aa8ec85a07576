//! The hierarchy in one process: [`federate`] deals the rows to devices, builds the roles
//! of [`crate::roles`] over the in-process links of [`crate::transport`], and runs the
//! cloud's rounds.
//!
//! The round logic itself (what a device, an edge and the cloud do) is in
//! [`crate::roles`]; what is simulated here is the setting: which rows each device holds
//! ([`crate::partition`]), which devices poison, and through [`Conditions`] how devices
//! fail, how fast they are and how fast their link is. The same seed gives the same run,
//! bit for bit, whatever the thread count.

use std::time::Instant;

use iotids_data::window::Sequences;
use iotids_model::examples::Examples;
use iotids_model::gru::GruConfig;
use iotids_model::train::TrainConfig;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::config::{Attack, FederationConfig, ValidationSite};
use crate::partition::{Partition, Rows, partition};
use crate::private::NoiseSource;
use crate::roles::{Cloud, Device, Edge, Poison, Validation, flipped_labels};
use crate::transport::{Conditions, InProcess, InProcessEdges, model_bytes};

pub use crate::roles::RoundRecord;

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
    /// Each device's own data, as deployed devices hold it (see [`Local`]); `None`: every
    /// device's windows are cut from the one table above.
    pub local: Option<&'a Local<'a>>,
}

/// What deployed nodes train and validate on: each device's rows read as a file of its
/// own (its flow windows and timing features over its own traffic only:
/// `iotids_data::Dataset::retime`), and the validation rows likewise. The cloud of a
/// networked run reads its validation file on its own too. Without it, a device's window
/// and timing features are those of the pooled table, which no device could compute.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a> {
    /// Device `d`'s examples, from its own table.
    pub devices: &'a [Examples<'a>],
    /// The validation rows' examples, from their own table.
    pub validation: Examples<'a>,
    /// Device `d`'s validation windows (the later part of its own traffic, from its own
    /// table), which it scores each round's model on when the config's `validation` is
    /// `devices`; empty otherwise.
    pub device_validation: &'a [Examples<'a>],
}

/// What a federation produced.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// One record per cloud round.
    pub rounds: Vec<RoundRecord>,
    /// The round whose global model is kept: highest validation macro-F1 averaged over the
    /// `selection_window` rounds centred on it (so one lucky round on a tiny validation
    /// class is not kept), ties to its own macro-F1, then to the lower validation loss (the
    /// last round without validation rows). Not the lowest loss, as
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
    /// The differential-privacy guarantee of the rounds run (None: DP off). With a target
    /// ε, the run stops before the round that would exceed it.
    pub privacy: Option<iotids_privacy::PrivacyReport>,
    /// Wall time of the whole run.
    pub seconds: f64,
}

/// Runs the federation `cfg` on `task`; `on_round` sees each round as it ends.
///
/// # Errors
///
/// [`Error::Config`](crate::Error::Config) for a bad config or a partition that can't be
/// made; model errors from local training.
pub fn federate(
    task: &Task<'_>,
    cfg: &FederationConfig,
    on_round: &mut (dyn FnMut(&RoundRecord) + Send),
) -> crate::Result<Outcome> {
    let part = deal(
        Rows {
            rows: task.train_rows,
            labels: task.labels,
            classes: task.class_weights.len(),
            flows: task.flows,
            hosts: task.hosts,
        },
        cfg,
    )?;
    federate_dealt(task, cfg, part, on_round)
}

/// Deals the training rows to the devices as [`federate`] does: the same seed gives the same
/// partition. A run that needs the partition before the features (the statistics round
/// fits the pipeline from the devices' summaries: `iotids_data::federated`) deals first and
/// then calls [`federate_dealt`].
///
/// # Errors
///
/// [`Error::Config`](crate::Error::Config) for a bad config or a partition that can't be
/// made.
pub fn deal(rows: Rows<'_>, cfg: &FederationConfig) -> crate::Result<Partition> {
    cfg.check()?;
    partition(rows, cfg.partition, cfg.devices, cfg.alpha, cfg.seed)
}

/// [`federate`] over a partition already dealt ([`deal`]); its class counts must be by the
/// task's class ids.
///
/// # Errors
///
/// As [`federate`], and [`Error::Config`](crate::Error::Config) for a partition of another
/// number of devices or classes, or of rows outside the table.
pub fn federate_dealt(
    task: &Task<'_>,
    cfg: &FederationConfig,
    part: Partition,
    on_round: &mut (dyn FnMut(&RoundRecord) + Send),
) -> crate::Result<Outcome> {
    cfg.check()?;
    let started = Instant::now();
    let classes = task.class_weights.len();
    if part.devices.len() != cfg.devices {
        return Err(crate::Error::config(
            "devices",
            part.devices.len(),
            format!("the {} devices of the configuration", cfg.devices),
        ));
    }
    if part.class_counts.iter().any(|c| c.len() != classes) {
        return Err(crate::Error::config(
            "partition",
            "class counts",
            format!("counts of the task's {classes} classes"),
        ));
    }
    if part
        .devices
        .iter()
        .flatten()
        .any(|&r| r >= task.labels.len())
    {
        return Err(crate::Error::config(
            "partition",
            "rows",
            format!("rows of the table (fewer than {})", task.labels.len()),
        ));
    }
    let edge_of: Vec<usize> = (0..cfg.devices).map(|d| cfg.edge_of(d)).collect();
    let malicious = pick_malicious(cfg);
    if let Some(local) = task.local
        && local.devices.len() != cfg.devices
    {
        return Err(crate::Error::config(
            "devices",
            local.devices.len(),
            format!("the {} devices of the configuration", cfg.devices),
        ));
    }
    // Each device's examples: its own table's, or its rows of the pooled one.
    let data: Vec<Examples<'_>> = match task.local {
        Some(local) => local.devices.to_vec(),
        None => part
            .devices
            .iter()
            .map(|rows| Examples {
                sequences: task.sequences,
                labels: task.labels,
                rows,
            })
            .collect(),
    };
    // The labels a label-flipping device trains on, per device.
    let flipped: Vec<Vec<u32>> = if cfg.attack == Attack::LabelFlip {
        match task.local {
            Some(_) => data
                .iter()
                .map(|e| flipped_labels(e.labels, classes))
                .collect(),
            None => vec![flipped_labels(task.labels, classes)],
        }
    } else {
        Vec::new()
    };
    let on_devices = cfg.validate_on == ValidationSite::Devices;
    let device_validation = task.local.map_or(&[][..], |l| l.device_validation);
    if on_devices && device_validation.len() != cfg.devices {
        return Err(crate::Error::config(
            "validate_on",
            cfg.validate_on,
            format!(
                "cloud, unless each of the {} devices holds validation windows of its own table \
                 ({} given; `federate --node-tables` cuts them)",
                cfg.devices,
                device_validation.len()
            ),
        ));
    }
    let devices: Vec<Device<'_>> = data
        .into_iter()
        .enumerate()
        .map(|(d, examples)| {
            let mut device = Device::new(d, task.model, task.class_weights, examples);
            if on_devices {
                device = device.with_validation(device_validation[d]);
            }
            if malicious.binary_search(&d).is_ok() {
                let labels = match task.local {
                    Some(_) => flipped.get(d),
                    None => flipped.first(),
                }
                .map_or(&[][..], Vec::as_slice);
                device.poisoned(Poison::of(cfg.attack, labels, cfg.attack_scale))
            } else {
                device
            }
        })
        .collect();
    let conditions = Conditions::new(cfg);
    // An edge's members are its devices that hold rows.
    let edges = (0..cfg.edges)
        .map(|e| {
            let members = (0..cfg.devices)
                .filter(|&d| edge_of[d] == e && !part.devices[d].is_empty())
                .collect();
            Edge::new(e, members, cfg.edge_aggregation).with_noise(NoiseSource::Seeded(cfg.seed))
        })
        .collect();
    let mut link = InProcessEdges::new(edges, InProcess::new(&devices, &conditions)?)?;
    let validation = Validation {
        examples: match task.local {
            Some(local) => local.validation,
            None => Examples {
                sequences: task.sequences,
                labels: task.labels,
                rows: task.validation_rows,
            },
        },
        class_weights: task.class_weights,
    };
    // Each device's label counts are a summary it may share; their sum is the global
    // class prior of the logit-adjusted loss.
    let global_counts = crate::aggregate::sum_counts(devices.iter().map(Device::class_counts));
    let mut cloud =
        Cloud::new(cfg, task.model, task.train, validation)?.with_class_counts(global_counts);
    if on_devices {
        cloud = cloud.validating_on_devices();
    }
    let model_bytes = model_bytes(cloud.global().len());

    let mut rounds = Vec::with_capacity(cfg.rounds);
    for _ in 0..cfg.rounds {
        if !cloud.budget_allows_next_round() {
            break;
        }
        let rec = cloud.round(&mut link)?;
        on_round(&rec);
        rounds.push(rec);
    }
    let privacy = cloud.privacy();
    let (best_round, weights) = cloud.into_best();
    Ok(Outcome {
        rounds,
        best_round,
        weights,
        partition: part,
        edge_of,
        malicious,
        model_bytes,
        privacy,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `round(malicious · devices)` devices, chosen by the seed, ascending.
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
pub(crate) mod tests;
