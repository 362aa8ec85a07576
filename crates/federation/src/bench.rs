//! The round-time benchmark (`iotids bench-federation`, numbers in BENCHMARKS.md): time per
//! cloud round as the device count grows over the same rows, split into local training,
//! aggregation, validation and the rest, so the per-device overhead outside training shows.
//!
//! The data are random (features uniform, flows of 10 rows, classes uniform): the
//! benchmark measures the machinery, not what is learnt. The model is the GRU issue's
//! benchmark configuration (64 features, hidden 64, 15 classes, batch 256).

use iotids_data::pipeline::Matrix;
use iotids_data::window::Sequences;
use iotids_model::gru::GruConfig;
use iotids_model::train::TrainConfig;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

use crate::config::FederationConfig;
use crate::partition::PartitionKind;
use crate::simulate::{Task, federate};

/// What to measure.
#[derive(Debug, Clone)]
pub struct FederationBenchConfig {
    /// Training rows dealt to the devices.
    pub rows: usize,
    /// Validation rows scored after every round.
    pub validation_rows: usize,
    /// Device counts to measure.
    pub devices: Vec<usize>,
    /// Edges (at most the device count).
    pub edges: usize,
    /// Cloud rounds per device count; the median round is reported.
    pub rounds: usize,
    /// Records per window.
    pub window: usize,
}

impl Default for FederationBenchConfig {
    /// BENCHMARKS.md's configuration: 100,000 training rows (a tenth as many validation
    /// rows) dealt to 10, 100 and 1,000 devices under 10 edges, 3 rounds, single records.
    fn default() -> Self {
        FederationBenchConfig {
            rows: 100_000,
            validation_rows: 10_000,
            devices: vec![10, 100, 1000],
            edges: 10,
            rounds: 3,
            window: 1,
        }
    }
}

/// One device count's figures (medians over rounds, seconds).
#[derive(Debug, Clone, Serialize)]
pub struct FederationBenchRow {
    pub devices: usize,
    pub edges: usize,
    pub round_seconds: f64,
    pub training_seconds: f64,
    pub aggregation_seconds: f64,
    pub evaluation_seconds: f64,
    /// Round time outside local training and validation (sampling, bookkeeping, thread
    /// hand-offs), per device, in microseconds.
    pub other_per_device_us: f64,
    /// Aggregation time per device, in microseconds.
    pub aggregation_per_device_us: f64,
    /// Bytes moved per round over all tiers.
    pub bytes_per_round: u64,
}

/// Runs the benchmark.
///
/// # Errors
///
/// A config the federation refuses (e.g. more devices than flows).
pub fn round_time(cfg: &FederationBenchConfig) -> crate::Result<Vec<FederationBenchRow>> {
    const FEATURES: usize = 64;
    const CLASSES: usize = 15;
    let n = cfg.rows + cfg.validation_rows;
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let data: Vec<f32> = (0..n * FEATURES).map(|_| rng.random::<f32>()).collect();
    let labels: Vec<u32> = (0..n)
        .map(|_| rng.random_range(0..CLASSES as u32))
        .collect();
    let flows: Vec<u32> = (0..n as u32).map(|r| r / 10).collect();
    let sequences = Sequences::new(
        Matrix {
            rows: n,
            cols: FEATURES,
            data,
        },
        Some(&flows),
        cfg.window,
    )?;
    let model = GruConfig::new(FEATURES, 64, CLASSES);
    let train = TrainConfig::default();
    let train_rows: Vec<usize> = (0..cfg.rows).collect();
    let validation_rows: Vec<usize> = (cfg.rows..n).collect();
    let task = Task {
        model: &model,
        train: &train,
        class_weights: &[1.0; CLASSES],
        sequences: &sequences,
        labels: &labels,
        flows: Some(&flows),
        hosts: None,
        train_rows: &train_rows,
        validation_rows: &validation_rows,
    };
    let mut out = Vec::new();
    for &devices in &cfg.devices {
        let fed = FederationConfig {
            devices,
            edges: cfg.edges.min(devices),
            rounds: cfg.rounds,
            local_epochs: 1,
            edge_rounds: 1,
            partition: PartitionKind::Iid,
            ..FederationConfig::default()
        };
        let o = federate(&task, &fed, &mut |_| {})?;
        let med = |f: fn(&crate::RoundRecord) -> f64| -> f64 {
            let mut v: Vec<f64> = o.rounds.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let round = med(|r| r.seconds);
        let training = med(|r| r.training_seconds);
        let aggregation = med(|r| r.aggregation_seconds);
        let evaluation = med(|r| r.evaluation_seconds);
        let other = (round - training - aggregation - evaluation).max(0.0);
        let r0 = &o.rounds[0];
        out.push(FederationBenchRow {
            devices,
            edges: fed.edges,
            round_seconds: round,
            training_seconds: training,
            aggregation_seconds: aggregation,
            evaluation_seconds: evaluation,
            other_per_device_us: other / devices as f64 * 1e6,
            aggregation_per_device_us: aggregation / devices as f64 * 1e6,
            bytes_per_round: r0.bytes_cloud_to_edges
                + r0.bytes_edge_to_devices
                + r0.bytes_devices_to_edge
                + r0.bytes_edges_to_cloud,
        });
    }
    Ok(out)
}
