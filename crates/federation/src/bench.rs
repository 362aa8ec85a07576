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
        local: None,
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

/// What the secure-aggregation cost benchmark measures (`iotids bench-secagg`).
#[derive(Debug, Clone)]
pub struct SecAggBenchConfig {
    /// Devices per edge to measure.
    pub devices: Vec<usize>,
    /// Weights per update (the model's parameter count).
    pub weights: usize,
    /// Share of devices that drop after dealing their shares, before masking (the case
    /// that makes the edge rebuild their keys).
    pub dropout: f64,
    /// Repetitions; medians are reported.
    pub repeats: usize,
}

impl Default for SecAggBenchConfig {
    /// BENCHMARKS.md's configuration: 10, 50 and 100 devices per edge, 30 % dropping,
    /// updates the size of the default GRU on MQTTset (18 features, hidden 64, 6 classes:
    /// its weights, plus the 5 values of a folded update), 3 repetitions.
    fn default() -> Self {
        SecAggBenchConfig {
            devices: vec![10, 50, 100],
            weights: iotids_model::params::flatten(
                &GruConfig::new(18, 64, 6).init(&iotids_model::backend::device()),
            )
            .len(),
            dropout: 0.3,
            repeats: 3,
        }
    }
}

/// One device count's costs, per edge round (medians over the repetitions).
#[derive(Debug, Clone, Serialize)]
pub struct SecAggBenchRow {
    /// Devices the edge asked.
    pub devices: usize,
    /// Devices whose updates were in the unmasked sum.
    pub included: usize,
    /// Neighbourhood size and threshold the defaults gave.
    pub neighbours: usize,
    pub threshold: usize,
    /// Plain aggregation: a device's time (encoding its f32 update), in milliseconds.
    pub plain_device_ms: f64,
    /// Plain aggregation: the edge's time (the sample-weighted mean), in milliseconds.
    pub plain_edge_ms: f64,
    /// Plain aggregation: bytes a device sends and receives (its update, the model).
    pub plain_device_bytes: u64,
    /// Plain aggregation: bytes through the edge (every update and model).
    pub plain_edge_bytes: u64,
    /// Secure aggregation: a device's time over the four stages (keys, dealing and
    /// sealing its shares, opening and checking its neighbours', fixed-point encoding and
    /// masking, revealing), in milliseconds.
    pub secure_device_ms: f64,
    /// Secure aggregation: the edge's time (routing, checking the revealed shares,
    /// rebuilding seeds and keys, removing the masks, decoding), in milliseconds.
    pub secure_edge_ms: f64,
    /// Secure aggregation: bytes a device sends and receives (all stages, model included).
    pub secure_device_bytes: u64,
    /// Secure aggregation: bytes through the edge.
    pub secure_edge_bytes: u64,
}

/// Runs the secure-aggregation cost benchmark: one edge round's protocol in one thread,
/// against plain aggregation of the same updates.
///
/// # Errors
///
/// A device count the protocol refuses (fewer than 2), or a protocol failure.
pub fn secure_aggregation_cost(cfg: &SecAggBenchConfig) -> crate::Result<Vec<SecAggBenchRow>> {
    use std::time::Instant;

    use iotids_secagg::{Client, Fixed, RoundSpec, Server, Settings, encode};

    use crate::aggregate::{Aggregation, Update};

    let fail = |e: iotids_secagg::Error| {
        crate::Error::config("secure aggregation", "bench", e.to_string())
    };
    let len = cfg.weights + 5;
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut out = Vec::new();
    for &n in &cfg.devices {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let updates: Vec<Vec<f32>> = (0..n)
            .map(|_| {
                (0..cfg.weights)
                    .map(|_| rng.random_range(-0.01f32..0.01))
                    .collect()
            })
            .collect();
        let drops = ((cfg.dropout * n as f64).round() as usize).min(n.saturating_sub(2));
        let dropped: Vec<u64> = (0..drops as u64)
            .map(|i| i * n as u64 / drops.max(1) as u64)
            .collect();
        let (mut pd, mut pe, mut sd, mut se) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut last = None;
        for _ in 0..cfg.repeats.max(1) {
            // Plain: each device encodes its f32 update; the edge takes the weighted mean.
            let t = Instant::now();
            let wire: Vec<Vec<u8>> = updates
                .iter()
                .map(|u| u.iter().flat_map(|w| w.to_le_bytes()).collect())
                .collect();
            pd.push(t.elapsed().as_secs_f64() * 1e3 / n as f64);
            let t = Instant::now();
            let decoded: Vec<Vec<f32>> = wire
                .iter()
                .enumerate()
                .filter(|(i, _)| !dropped.contains(&(*i as u64)))
                .map(|(_, b)| {
                    b.chunks_exact(4)
                        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                        .collect()
                })
                .collect();
            let ups: Vec<Update<'_>> = decoded
                .iter()
                .map(|w| Update {
                    weights: w,
                    samples: 100.0,
                })
                .collect();
            Aggregation::Mean.aggregate(&ups)?;
            pe.push(t.elapsed().as_secs_f64() * 1e3);

            // Secure: every stage, timed on each side.
            let spec = RoundSpec::new([7; 32], (0..n as u64).collect(), len, Settings::default())
                .map_err(fail)?;
            let fixed = Fixed::default();
            let mut device_s = 0.0;
            let mut edge_s = 0.0;
            let mut device_bytes = 0u64;
            let mut server = Server::new(spec.clone());
            let mut clients = Vec::with_capacity(n);
            let mut keys = Vec::with_capacity(n);
            let t = Instant::now();
            for id in 0..n as u64 {
                let (c, k) = Client::new(id, spec.clone(), &mut rand::rng()).map_err(fail)?;
                clients.push(c);
                keys.push(k);
            }
            device_s += t.elapsed().as_secs_f64();
            device_bytes += keys.iter().map(|k| encode(k).len() as u64).sum::<u64>();
            let t = Instant::now();
            let books = server.receive_keys(keys);
            edge_s += t.elapsed().as_secs_f64();
            device_bytes += books.values().map(|b| encode(b).len() as u64).sum::<u64>();
            let t = Instant::now();
            let shares = clients
                .iter_mut()
                .map(|c| c.share_keys(&books[&c.id()]))
                .collect::<iotids_secagg::Result<Vec<_>>>()
                .map_err(fail)?;
            device_s += t.elapsed().as_secs_f64();
            device_bytes += shares.iter().map(|s| encode(s).len() as u64).sum::<u64>();
            let t = Instant::now();
            let inboxes = server.receive_shares(shares);
            edge_s += t.elapsed().as_secs_f64();
            device_bytes += inboxes
                .values()
                .map(|i| encode(i).len() as u64)
                .sum::<u64>();
            let t = Instant::now();
            let mut masked = Vec::new();
            for (c, u) in clients.iter_mut().zip(&updates) {
                if dropped.contains(&c.id()) {
                    continue;
                }
                let mut values: Vec<f64> = u.iter().map(|&w| f64::from(w) * 100.0).collect();
                values.extend([1.0, 100.0, 100.0, 50.0, 90.0]);
                let words = fixed.encode(&values).map_err(fail)?;
                masked.push(c.mask(&inboxes[&c.id()], &words).map_err(fail)?);
            }
            device_s += t.elapsed().as_secs_f64();
            device_bytes += masked.iter().map(|m| encode(m).len() as u64).sum::<u64>();
            let t = Instant::now();
            let request = server.receive_masked(masked).map_err(fail)?;
            edge_s += t.elapsed().as_secs_f64();
            device_bytes += request.survivors.len() as u64 * encode(&request).len() as u64;
            let t = Instant::now();
            let reveals = clients
                .iter_mut()
                .filter(|c| request.survivors.contains(&c.id()))
                .map(|c| c.unmask(&request))
                .collect::<iotids_secagg::Result<Vec<_>>>()
                .map_err(fail)?;
            device_s += t.elapsed().as_secs_f64();
            device_bytes += reveals.iter().map(|r| encode(r).len() as u64).sum::<u64>();
            let t = Instant::now();
            let agg = server.finish(reveals).map_err(fail)?;
            let _sum = fixed.decode(&agg.sum);
            edge_s += t.elapsed().as_secs_f64();
            // Per device: its share of everything, the model going down included.
            let model = (cfg.weights * 4) as u64;
            sd.push(device_s * 1e3 / n as f64);
            se.push(edge_s * 1e3);
            last = Some((
                agg.included.len(),
                spec.neighbours,
                spec.threshold,
                device_bytes / n as u64 + model,
                device_bytes + n as u64 * model,
            ));
        }
        let Some((included, neighbours, threshold, secure_device_bytes, secure_edge_bytes)) = last
        else {
            continue;
        };
        let model = (cfg.weights * 4) as u64;
        out.push(SecAggBenchRow {
            devices: n,
            included,
            neighbours,
            threshold,
            plain_device_ms: median(pd),
            plain_edge_ms: median(pe),
            plain_device_bytes: 2 * model,
            plain_edge_bytes: (n + n - drops) as u64 * model,
            secure_device_ms: median(sd),
            secure_edge_ms: median(se),
            secure_device_bytes,
            secure_edge_bytes,
        });
    }
    Ok(out)
}
