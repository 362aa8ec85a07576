use super::*;
use crate::aggregate::Aggregation;
use crate::partition::PartitionKind;
use crate::roles::mix;
use crate::strategy::Strategy;
use iotids_data::pipeline::Matrix;
use iotids_model::params::flatten;
use iotids_model::train::train_from_weights;
use rand::Rng;
use serde::Serialize;

/// 3 classes told apart by the first feature; flows of 4 records of one class; a host
/// per 10 flows. Rows 0..960 train, 960..1200 validate.
pub(crate) struct Data {
    pub(crate) seq: Sequences,
    pub(crate) labels: Vec<u32>,
    flows: Vec<u32>,
    hosts: Vec<u32>,
    pub(crate) train: Vec<usize>,
    pub(crate) validation: Vec<usize>,
    pub(crate) model: GruConfig,
    pub(crate) cfg: TrainConfig,
}

pub(crate) fn data() -> Data {
    let n = 1200;
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let flows: Vec<u32> = (0..n as u32).map(|r| r / 4).collect();
    let labels: Vec<u32> = flows.iter().map(|f| f * 7 % 3).collect();
    let mut values = Vec::with_capacity(n * 2);
    for &y in &labels {
        values.push(y as f32 / 3.0 + rng.random_range(0.0..0.3));
        values.push(rng.random_range(0.0..1.0));
    }
    let m = Matrix {
        rows: n,
        cols: 2,
        data: values,
    };
    Data {
        seq: Sequences::new(m, Some(&flows), 2).unwrap(),
        hosts: flows.iter().map(|f| f / 10).collect(),
        labels,
        flows,
        train: (0..960).collect(),
        validation: (960..n).collect(),
        model: GruConfig::new(2, 8, 3).with_seed(5),
        cfg: TrainConfig {
            batch_size: 32,
            learning_rate: 0.02,
            ..TrainConfig::default()
        },
    }
}

impl Data {
    pub(crate) fn task(&self) -> Task<'_> {
        Task {
            model: &self.model,
            train: &self.cfg,
            class_weights: &[1.0, 1.0, 1.0],
            sequences: &self.seq,
            labels: &self.labels,
            flows: Some(&self.flows),
            hosts: Some(&self.hosts),
            train_rows: &self.train,
            validation_rows: &self.validation,
            local: None,
        }
    }
}

fn run(d: &Data, cfg: &FederationConfig) -> Outcome {
    federate(&d.task(), cfg, &mut |_| {}).unwrap()
}

fn small() -> FederationConfig {
    FederationConfig {
        devices: 6,
        edges: 2,
        rounds: 4,
        partition: PartitionKind::Iid,
        ..pinned()
    }
}

/// The record without its wall times, which differ from run to run.
pub(crate) fn untimed(r: &RoundRecord) -> RoundRecord {
    RoundRecord {
        seconds: 0.0,
        training_seconds: 0.0,
        aggregation_seconds: 0.0,
        evaluation_seconds: 0.0,
        ..r.clone()
    }
}

#[test]
fn the_default_local_training_learns() {
    // Momentum SGD, class-weighted, normalised averaging: the defaults, on the same rows.
    let d = data();
    let cfg = FederationConfig {
        devices: 6,
        edges: 2,
        rounds: 15,
        partition: PartitionKind::Iid,
        ..FederationConfig::default()
    };
    let o = run(&d, &cfg);
    let acc: Vec<f64> = o
        .rounds
        .iter()
        .map(|r| r.validation_accuracy.unwrap())
        .collect();
    // SGD starts slower than a fresh Adam (one step per device per edge round here: 160
    // windows, batch 256) and ends at the top: 0.59 after round 1, 1.0 by round 13.
    assert!(
        acc[0] < 0.7 && acc[14] > 0.95,
        "validation accuracy {acc:?}"
    );
}

#[test]
fn the_global_model_learns_and_a_seed_repeats_the_run() {
    let d = data();
    let a = run(&d, &small());
    let first = a.rounds[0].validation_accuracy.unwrap();
    let last = a.rounds[3].validation_accuracy.unwrap();
    assert!(
        last > 0.85 && last > first,
        "validation accuracy {first} → {last}"
    );
    let b = run(&d, &small());
    assert_eq!(a.weights, b.weights);
    let (ra, rb): (Vec<_>, Vec<_>) = (
        a.rounds.iter().map(untimed).collect(),
        b.rounds.iter().map(untimed).collect(),
    );
    assert_eq!(ra, rb);
    // Everyone sampled, nobody fails: 6 devices × 2 edge rounds accepted.
    let r = &a.rounds[0];
    assert_eq!((r.sampled, r.accepted, r.failed, r.late), (12, 12, 0, 0));
    // Bytes: the model each way per device per edge round; 2 edges up and down.
    assert_eq!(r.bytes_edge_to_devices, 12 * a.model_bytes);
    assert_eq!(r.bytes_devices_to_edge, 12 * a.model_bytes);
    assert_eq!(r.bytes_edges_to_cloud, 2 * a.model_bytes);
    assert_eq!(r.bytes_cloud_to_edges, 2 * a.model_bytes);
    let params = flatten(&d.model.init(&iotids_model::backend::device())).len();
    assert_eq!(a.model_bytes, 4 * params as u64);
    // The kept round has the lowest validation loss.
    let best = a
        .rounds
        .iter()
        .min_by(|x, y| {
            x.validation_loss
                .unwrap()
                .total_cmp(&y.validation_loss.unwrap())
        })
        .unwrap();
    assert_eq!(a.best_round, best.round);
}

#[test]
fn one_round_equals_the_sample_weighted_mean_of_hand_run_local_trainings() {
    // Quantity skew, so the devices' n_i differ and the wrong (÷N) formula would show.
    let d = data();
    let cfg = FederationConfig {
        devices: 3,
        edges: 1,
        rounds: 1,
        edge_rounds: 1,
        partition: PartitionKind::Quantity,
        alpha: 1.0,
        ..pinned()
    };
    let out = run(&d, &cfg);
    let sizes: Vec<usize> = out.partition.devices.iter().map(Vec::len).collect();
    assert!(sizes[0] != sizes[1] || sizes[1] != sizes[2], "{sizes:?}");
    let start = flatten(&d.model.init(&iotids_model::backend::device()));
    let mut expected = vec![0f64; start.len()];
    let total: usize = sizes.iter().sum();
    for (dev, rows) in out.partition.devices.iter().enumerate() {
        let local = TrainConfig {
            epochs: 1,
            seed: mix(cfg.seed, 1, 0, dev),
            ..d.cfg.clone()
        };
        let (weights, _) = train_from_weights(
            &d.model,
            &local,
            &[1.0; 3],
            &start,
            0.0,
            Examples {
                sequences: &d.seq,
                labels: &d.labels,
                rows,
            },
        )
        .unwrap();
        for (e, w) in expected.iter_mut().zip(&weights) {
            *e += f64::from(*w) * rows.len() as f64 / total as f64;
        }
    }
    let max_diff = out
        .weights
        .iter()
        .zip(&expected)
        .map(|(a, b)| (f64::from(*a) - b).abs())
        .fold(0.0, f64::max);
    assert!(max_diff < 1e-6, "max |federated − formula| = {max_diff}");
}

#[test]
fn failures_and_stragglers_are_dropped_counted_and_survived() {
    let d = data();
    let cfg = FederationConfig {
        device_dropout: 0.4,
        ..small()
    };
    let out = run(&d, &cfg);
    let failed: usize = out.rounds.iter().map(|r| r.failed).sum();
    assert!(failed > 0);
    for r in &out.rounds {
        assert_eq!(r.accepted + r.failed + r.late, r.sampled);
        assert_eq!(r.bytes_devices_to_edge, r.accepted as u64 * out.model_bytes);
    }

    // A deadline between the fastest and the slowest device's time.
    let all = run(&d, &small());
    let cfg = FederationConfig {
        deadline: Some(0.09),
        speed_spread: 1.0,
        ..small()
    };
    let out = run(&d, &cfg);
    let late: usize = out.rounds.iter().map(|r| r.late).sum();
    let accepted: usize = out.rounds.iter().map(|r| r.accepted).sum();
    assert!(late > 0 && accepted > 0, "late {late}, accepted {accepted}");
    for r in &out.rounds {
        assert!(r.simulated_seconds <= 2.0 * 0.09 + 1e-12);
        // Late updates still crossed the link.
        assert_eq!(
            r.bytes_devices_to_edge,
            (r.accepted + r.late) as u64 * out.model_bytes
        );
    }
    assert!(all.rounds[0].simulated_seconds > out.rounds[0].simulated_seconds);

    // A quorum of every device: the edge waits past the deadline for the late ones, so
    // nothing is late and the run equals the one without a deadline.
    let quorum = run(
        &d,
        &FederationConfig {
            quorum: 1.0,
            ..cfg.clone()
        },
    );
    assert!(quorum.rounds.iter().all(|r| r.late == 0));
    assert_eq!(
        quorum.weights,
        run(
            &d,
            &FederationConfig {
                speed_spread: 1.0,
                ..small()
            }
        )
        .weights
    );
    // Half the sampled devices: each edge round accepts at least half.
    let half = run(
        &d,
        &FederationConfig {
            quorum: 0.5,
            ..cfg.clone()
        },
    );
    for (h, o) in half.rounds.iter().zip(&out.rounds) {
        assert!(2 * h.accepted >= h.sampled, "{h:?}");
        assert!(h.accepted >= o.accepted && h.simulated_seconds >= o.simulated_seconds);
    }

    // Sampling a third of each edge's 3 devices: one per edge per edge round.
    let cfg = FederationConfig {
        fraction: 0.3,
        ..small()
    };
    let out = run(&d, &cfg);
    assert!(out.rounds.iter().all(|r| r.sampled == 4));
}

#[test]
fn a_sign_flipping_minority_breaks_fedavg_but_not_the_median() {
    let d = data();
    let poisoned = |rule: Aggregation| FederationConfig {
        devices: 8,
        edges: 1,
        rounds: 4,
        partition: PartitionKind::Iid,
        malicious: 0.25,
        attack: Attack::Scale,
        attack_scale: -10.0,
        edge_aggregation: rule,
        ..pinned()
    };
    let mean = run(&d, &poisoned(Aggregation::Mean));
    assert_eq!(mean.malicious.len(), 2);
    let median = run(&d, &poisoned(Aggregation::Median));
    let krum = run(&d, &poisoned(Aggregation::Krum { f: 2, keep: 0 }));
    let acc = |o: &Outcome| o.rounds.last().unwrap().validation_accuracy.unwrap();
    eprintln!(
        "mean {} median {} krum {}",
        acc(&mean),
        acc(&median),
        acc(&krum)
    );
    assert!(acc(&median) > 0.8, "median {}", acc(&median));
    assert!(acc(&krum) > 0.8, "krum {}", acc(&krum));
    assert!(
        acc(&mean) < acc(&median) - 0.2,
        "mean {} vs median {}",
        acc(&mean),
        acc(&median)
    );
}

#[test]
fn every_strategy_and_partition_runs() {
    let d = data();
    for &strategy in Strategy::ALL {
        let cfg = FederationConfig {
            strategy,
            rounds: 2,
            ..small()
        };
        let out = run(&d, &cfg);
        assert!(out.weights.iter().all(|w| w.is_finite()), "{strategy}");
    }
    for &partition in PartitionKind::ALL {
        let cfg = FederationConfig {
            partition,
            rounds: 1,
            ..small()
        };
        let out = run(&d, &cfg);
        assert_eq!(out.partition.devices.len(), 6, "{partition}");
    }
    let e = federate(
        &d.task(),
        &FederationConfig {
            devices: 5000,
            ..small()
        },
        &mut |_| {},
    )
    .unwrap_err();
    assert!(e.to_string().contains("devices"), "{e}");
}

/// FNV-1a over the weights' bits: equal hashes mean equal weights, bit for bit.
/// `rows` of `d`'s table as a table of their own: their features, flows and labels.
fn own_table(d: &Data, rows: &[usize]) -> (Sequences, Vec<u32>) {
    let cols = d.seq.features.cols;
    let mut data = Vec::with_capacity(rows.len() * cols);
    for &r in rows {
        data.extend_from_slice(d.seq.features.row(r));
    }
    let m = Matrix {
        rows: rows.len(),
        cols,
        data,
    };
    let flows: Vec<u32> = rows.iter().map(|&r| d.flows[r]).collect();
    (
        Sequences::new(m, Some(&flows), d.seq.k).unwrap(),
        rows.iter().map(|&r| d.labels[r]).collect(),
    )
}

#[test]
fn devices_own_tables_holding_the_same_windows_give_the_pooled_run() {
    // Flows are dealt whole, so a device's own table has the windows its rows had in the
    // pooled one: the run must be the same to the last bit, a label-flipping minority
    // (which flips its own table's labels) included.
    let d = data();
    for attack in [Attack::None, Attack::LabelFlip] {
        let cfg = FederationConfig {
            attack,
            malicious: 0.34,
            ..small()
        };
        let task = d.task();
        let part = dealt(&task, &cfg);
        let pooled = federate_dealt(&task, &cfg, part.clone(), &mut |_| {}).unwrap();
        let tables: Vec<(Sequences, Vec<u32>)> =
            part.devices.iter().map(|r| own_table(&d, r)).collect();
        let rows: Vec<Vec<usize>> = part
            .devices
            .iter()
            .map(|r| (0..r.len()).collect())
            .collect();
        let (vseq, vlabels) = own_table(&d, &d.validation);
        let vrows: Vec<usize> = (0..d.validation.len()).collect();
        let examples: Vec<Examples<'_>> = tables
            .iter()
            .zip(&rows)
            .map(|((sequences, labels), rows)| Examples {
                sequences,
                labels,
                rows,
            })
            .collect();
        let local = Local {
            devices: &examples,
            validation: Examples {
                sequences: &vseq,
                labels: &vlabels,
                rows: &vrows,
            },
            device_validation: &[],
        };
        let own = Task {
            local: Some(&local),
            ..task
        };
        let o = federate_dealt(&own, &cfg, part.clone(), &mut |_| {}).unwrap();
        assert_eq!(o.weights, pooled.weights, "{attack:?}");
        assert_eq!(
            o.rounds.iter().map(untimed).collect::<Vec<_>>(),
            pooled.rounds.iter().map(untimed).collect::<Vec<_>>(),
            "{attack:?}"
        );
        assert_eq!(o.malicious, pooled.malicious);
        if attack == Attack::LabelFlip {
            assert!(!o.malicious.is_empty());
        }
        // One table too few is refused by name.
        let short = Local {
            devices: &examples[1..],
            ..local
        };
        let e = federate_dealt(
            &Task {
                local: Some(&short),
                ..task
            },
            &cfg,
            part,
            &mut |_| {},
        )
        .unwrap_err();
        assert!(e.to_string().contains("devices"), "{e}");
    }
}

/// The training rows of `task` dealt as `cfg` says.
fn dealt(task: &Task<'_>, cfg: &FederationConfig) -> Partition {
    deal(
        Rows {
            rows: task.train_rows,
            labels: task.labels,
            classes: 3,
            flows: task.flows,
            hosts: task.hosts,
        },
        cfg,
    )
    .unwrap()
}

fn weights_hash(w: &[f32]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in w.iter().flat_map(|x| x.to_bits().to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// What a run must reproduce exactly: its rounds without wall times, the kept round and
/// the kept weights.
#[derive(Debug, Serialize)]
struct Golden {
    name: String,
    best_round: usize,
    weights: usize,
    weights_fnv: String,
    malicious: Vec<usize>,
    rounds: Vec<RoundRecord>,
}

/// The configurations the golden file pins: both server paths, sampling with failures and
/// stragglers, both attacks against robust rules at either tier, and no validation rows.
fn golden_runs() -> Vec<(&'static str, FederationConfig, bool)> {
    vec![
        ("fedavg", small(), true),
        (
            "fedavgm-host",
            FederationConfig {
                strategy: Strategy::FedAvgM,
                partition: PartitionKind::Host,
                ..small()
            },
            true,
        ),
        (
            "fedprox-dirichlet",
            FederationConfig {
                strategy: Strategy::FedProx,
                proximal_mu: 0.1,
                partition: PartitionKind::Dirichlet,
                alpha: 0.5,
                local_epochs: 2,
                ..small()
            },
            true,
        ),
        (
            "dropout-deadline-fraction",
            FederationConfig {
                devices: 9,
                edges: 3,
                device_dropout: 0.35,
                deadline: Some(0.09),
                speed_spread: 1.0,
                fraction: 0.5,
                edge_rounds: 3,
                ..small()
            },
            true,
        ),
        (
            "scale-attack-edge-median",
            FederationConfig {
                devices: 8,
                edges: 2,
                malicious: 0.25,
                attack: Attack::Scale,
                attack_scale: -10.0,
                edge_aggregation: Aggregation::Median,
                ..small()
            },
            true,
        ),
        (
            "label-flip-trimmed-krum",
            FederationConfig {
                devices: 8,
                edges: 4,
                malicious: 0.25,
                attack: Attack::LabelFlip,
                edge_aggregation: Aggregation::TrimmedMean { beta: 0.2 },
                cloud_aggregation: Aggregation::Krum { f: 1, keep: 0 },
                strategy: Strategy::FedAdam,
                ..small()
            },
            true,
        ),
        (
            "fedyogi-no-validation",
            FederationConfig {
                strategy: Strategy::FedYogi,
                rounds: 3,
                ..small()
            },
            false,
        ),
    ]
}

fn golden_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/simulate/golden.json")
}

/// The same config and seed give the same rounds (wall times aside), the same kept round
/// and the same weights, bit for bit, as the code that wrote `golden.json` on a CPU like
/// the one it was written on (`golden-cpu.txt`; elsewhere within 1e-4, below). Rewrite it
/// with `IOTIDS_BLESS=1` only for a change meant to change results, and say so.
#[test]
fn runs_reproduce_the_golden_outcomes() {
    let d = data();
    let got: Vec<Golden> = golden_runs()
        .into_iter()
        .map(|(name, cfg, validate)| {
            let mut task = d.task();
            if !validate {
                task.validation_rows = &[];
            }
            let o = federate(&task, &cfg, &mut |_| {}).unwrap();
            Golden {
                name: name.to_string(),
                best_round: o.best_round,
                weights: o.weights.len(),
                weights_fnv: weights_hash(&o.weights),
                malicious: o.malicious.clone(),
                rounds: o.rounds.iter().map(untimed).collect(),
            }
        })
        .collect();
    let text = serde_json::to_string_pretty(&got).unwrap() + "\n";
    let cpu_path = golden_path().with_file_name("golden-cpu.txt");
    if std::env::var_os("IOTIDS_BLESS").is_some() {
        std::fs::write(golden_path(), text).unwrap();
        std::fs::write(&cpu_path, iotids_model::golden::cpu_signature()).unwrap();
        return;
    }
    // The GRU's kernels and burn's matrix products pick their code path by CPU feature at
    // run time, and another path sums in another order: on a CPU unlike the one that wrote
    // golden.json, numbers agree within a relative 1e-4 and the weights' hash is not
    // compared (seen: an AVX-512 machine against a file made without it, 2e-9 apart).
    let made_on = std::fs::read_to_string(&cpu_path).unwrap_or_default();
    if made_on != iotids_model::golden::cpu_signature() {
        eprintln!(
            "golden.json made on `{}`, running on `{}`: numbers compared within 1e-4",
            made_on.trim(),
            iotids_model::golden::cpu_signature().trim()
        );
        let want = include_str!("golden.json");
        assert_eq!(
            text.lines().count(),
            want.lines().count(),
            "runs in golden.json"
        );
        for (i, (g, w)) in text.lines().zip(want.lines()).enumerate() {
            if w.contains("\"weights_fnv\"") {
                continue;
            }
            assert!(
                iotids_model::golden::numbers_agree(g, w, 1e-4),
                "golden.json line {}: got `{g}`, want `{w}`",
                i + 1
            );
        }
        return;
    }
    // Compared as text: serde_json writes the shortest decimal that reads back as the same
    // f64, but its default reader may land one ulp off, so reading the file back would
    // not be a bit-for-bit comparison.
    let want = include_str!("golden.json");
    if let Some((i, (g, w))) = text
        .lines()
        .zip(want.lines())
        .enumerate()
        .find(|(_, (g, w))| g != w)
    {
        let run = text
            .lines()
            .take(i + 1)
            .filter_map(|l| l.trim().strip_prefix("\"name\": "))
            .map(|n| n.trim_end_matches(',').trim_matches('"'))
            .last()
            .unwrap_or("?");
        panic!(
            "run {run}, golden.json line {}: got `{g}`, want `{w}`",
            i + 1
        );
    }
    assert_eq!(
        text.lines().count(),
        want.lines().count(),
        "runs in golden.json"
    );
}

/// `data()` with a fourth class that only host 0 (flows 0..10, rows 0..40) holds in
/// training, and host 27 (rows 1080..1120) in validation: a host partition puts it on one
/// device of six.
fn rare_class_data() -> Data {
    let mut d = data();
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for r in (0..40).chain(1080..1120) {
        d.labels[r] = 3;
    }
    for r in 0..d.labels.len() {
        d.seq.features.data[r * 2] = d.labels[r] as f32 / 4.0 + rng.random_range(0.0..0.2);
    }
    d.model = GruConfig::new(2, 8, 4).with_seed(5);
    d
}

#[test]
fn a_class_one_device_holds_survives_class_wise_aggregation() {
    // One round, one edge, host partition: class 3 is on one device of six. Class-wise,
    // the global head column and bias of class 3 are that device's own trained ones;
    // under the plain mean they are diluted by the five devices that never saw it.
    let d = rare_class_data();
    let task = Task {
        class_weights: &[1.0, 1.0, 1.0, 1.0],
        ..d.task()
    };
    let cfg = FederationConfig {
        partition: PartitionKind::Host,
        edges: 1,
        rounds: 1,
        edge_rounds: 1,
        class_wise_head: true,
        ..small()
    };
    let go = |cfg: &FederationConfig| federate(&task, cfg, &mut |_| {}).unwrap();
    let on = go(&cfg);
    let plain = go(&FederationConfig {
        class_wise_head: false,
        ..cfg.clone()
    });
    let holders: Vec<usize> = (0..cfg.devices)
        .filter(|&i| on.partition.class_counts[i][3] > 0)
        .collect();
    assert_eq!(holders.len(), 1, "{:?}", on.partition.class_counts);
    let holder = holders[0];
    let start = flatten(&d.model.init(&iotids_model::backend::device()));
    let local = TrainConfig {
        epochs: 1,
        seed: mix(cfg.seed, 1, 0, holder),
        ..d.cfg.clone()
    };
    let (own, _) = train_from_weights(
        &d.model,
        &local,
        &[1.0; 4],
        &start,
        0.0,
        Examples {
            sequences: &d.seq,
            labels: &d.labels,
            rows: &on.partition.devices[holder],
        },
    )
    .unwrap();
    let head = crate::aggregate::Head::at_end(start.len(), 8, 4).unwrap();
    let moved = |w: &[f32]| -> f64 {
        head.class_indices(3)
            .map(|j| f64::from(w[j] - start[j]).abs())
            .sum()
    };
    for j in head.class_indices(3) {
        assert!(
            (on.weights[j] - own[j]).abs() < 1e-6,
            "class-wise: weight {j}"
        );
    }
    // The body is the plain mean either way.
    for j in 0..head.offset {
        assert!(
            (on.weights[j] - plain.weights[j]).abs() < 1e-6,
            "weight {j}"
        );
    }
    // Under the plain mean the five devices without class 3 (Adam moves every weight of
    // theirs) outweigh its holder: its row ends far from what the holder learned.
    let apart: f64 = head
        .class_indices(3)
        .map(|j| f64::from(plain.weights[j] - own[j]).abs())
        .sum();
    assert!(
        apart > 0.5 * moved(&own),
        "plain mean: class 3's head {apart} from its holder's, which moved {}",
        moved(&own)
    );
}

#[test]
fn the_kept_round_ignores_a_one_round_spike() {
    // Round 3 spikes on a lucky validation draw; rounds 6..8 are steadily good.
    let f1 = [0.50, 0.55, 0.90, 0.56, 0.70, 0.80, 0.82, 0.81, 0.60];
    let scores: Vec<(Option<f64>, Option<f64>)> =
        f1.iter().map(|&f| (Some(f), Some(1.0 - f))).collect();
    let best = |half| {
        (1..=f1.len())
            .max_by(|&a, &b| {
                crate::roles::smoothed_macro_f1(&scores, a, half)
                    .partial_cmp(&crate::roles::smoothed_macro_f1(&scores, b, half))
                    .unwrap()
                    .then(b.cmp(&a))
            })
            .unwrap()
    };
    assert_eq!(best(0), 3, "the single best round is the spike");
    assert_eq!(best(1), 7, "the smoothed best is the plateau");
    // The cloud picks the same round as the rule, in a run.
    let d = data();
    let o = run(
        &d,
        &FederationConfig {
            rounds: 6,
            selection_window: 3,
            ..small()
        },
    );
    let scores: Vec<_> = o
        .rounds
        .iter()
        .map(|r| (r.validation_macro_f1, r.validation_loss))
        .collect();
    let want = (1..=6)
        .map(|r| {
            (
                crate::roles::smoothed_macro_f1(&scores, r, 1).unwrap(),
                scores[r - 1].0.unwrap(),
                -scores[r - 1].1.unwrap(),
                r,
            )
        })
        .max_by(|a, b| {
            (a.0, a.1, a.2)
                .partial_cmp(&(b.0, b.1, b.2))
                .unwrap()
                .then(b.3.cmp(&a.3))
        })
        .unwrap()
        .3;
    assert_eq!(o.best_round, want);
}

/// The defaults these tests (and golden.json) were written against: FedAvg, 30 rounds,
/// the single best round kept, a fresh Adam on each device, plain cross-entropy and plain
/// averaging (`the_default_local_training_learns` covers today's).
fn pinned() -> FederationConfig {
    FederationConfig {
        strategy: crate::strategy::Strategy::FedAvg,
        rounds: 30,
        selection_window: 1,
        local_optimizer: crate::config::LocalOptimizer::Adam,
        normalized_averaging: false,
        local_class_weights: false,
        ..FederationConfig::default()
    }
}

/// Edge rounds of `out` whose secure aggregation failed.
fn secure_failures(out: &Outcome) -> usize {
    out.rounds.iter().map(|r| r.secure_failures).sum()
}

#[test]
fn secure_aggregation_gives_the_plain_runs_models_with_the_same_dropouts() {
    let d = data();
    // Four devices per edge, 30 % dropping mid-round; a threshold of 2 (the default,
    // a majority, is 3 of 4 and would lose the edge rounds where two drop). With this
    // seed no edge round keeps a single device, whose update the sum would be: secure
    // aggregation refuses those (the next test).
    let plain = FederationConfig {
        devices: 8,
        edges: 2,
        device_dropout: 0.3,
        seed: 10,
        ..small()
    };
    let secure = FederationConfig {
        secure_aggregation: true,
        secagg_threshold: Some(2),
        ..plain.clone()
    };
    let (p, s) = (run(&d, &plain), run(&d, &secure));
    assert_eq!(secure_failures(&s), 0, "{:?}", s.rounds);
    let failed: usize = s.rounds.iter().map(|r| r.failed).sum();
    assert!(failed > 0, "some devices dropped");
    for (a, b) in p.rounds.iter().zip(&s.rounds) {
        assert_eq!(
            (a.sampled, a.accepted, a.failed),
            (b.sampled, b.accepted, b.failed)
        );
        assert_eq!(
            a.validation_macro_f1, b.validation_macro_f1,
            "round {}",
            a.round
        );
        let (la, lb) = (a.train_loss.unwrap(), b.train_loss.unwrap());
        assert!((la - lb).abs() < 1e-6, "round {}: {la} vs {lb}", a.round);
        // Masked vectors (8-byte words) and the protocol's messages replace f32 updates.
        assert!(b.bytes_devices_to_edge > 2 * a.bytes_devices_to_edge);
    }
    let diff = p
        .weights
        .iter()
        .zip(&s.weights)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max);
    assert!(diff < 1e-4, "plain vs secure: {diff}");
    assert_eq!(p.best_round, s.best_round);
    // The same seed repeats a secure run bit for bit.
    assert_eq!(run(&d, &secure).weights, s.weights);
}

#[test]
fn too_few_survivors_lose_the_edge_round_not_the_run() {
    let d = data();
    // Three devices per edge, threshold 2: with 60 % dropping, some edge rounds keep one.
    let cfg = FederationConfig {
        device_dropout: 0.6,
        secure_aggregation: true,
        rounds: 6,
        ..small()
    };
    let out = run(&d, &cfg);
    assert!(secure_failures(&out) > 0, "{:?}", out.rounds);
    assert_eq!(out.rounds.len(), 6);
    assert!(out.rounds.iter().all(|r| r.validation_macro_f1.is_some()));
}

#[test]
fn a_dp_run_spends_what_the_accountant_says_and_stops_at_its_target() {
    let d = data();
    let cfg = FederationConfig {
        dp_noise_multiplier: Some(1.1),
        dp_clip: 0.5,
        fraction: 0.5,
        rounds: 12,
        ..small()
    };
    let delta = cfg.delta();
    assert_eq!(delta, 1.0 / 36.0f64.max(1e5));
    let steps_per_round = cfg.edge_rounds as u64;
    // A budget that lasts 5 of the 12 rounds.
    let target = iotids_privacy::epsilon(0.5, 1.1, 5 * steps_per_round, delta)
        .unwrap()
        .epsilon
        * 1.0001;
    let out = run(
        &d,
        &FederationConfig {
            dp_target_epsilon: Some(target),
            ..cfg.clone()
        },
    );
    assert_eq!(out.rounds.len(), 5);
    for r in &out.rounds {
        let want = iotids_privacy::epsilon(0.5, 1.1, r.round as u64 * steps_per_round, delta)
            .unwrap()
            .epsilon;
        assert_eq!(r.epsilon, Some(want));
        // Devices' losses are data the noise does not cover: not reported.
        assert_eq!(r.train_loss, None);
    }
    let p = out.privacy.unwrap();
    assert_eq!(
        (p.steps, p.sampling_rate, p.noise_multiplier),
        (10, 0.5, 1.1)
    );
    assert_eq!(
        (p.clip, p.delta, p.accountant.as_str()),
        (0.5, delta, "rdp")
    );
    assert!(p.epsilon <= target);
    // Poisson sampling: the number asked varies round to round.
    let full = run(&d, &cfg);
    assert_eq!(full.rounds.len(), 12);
    let asked: Vec<usize> = full.rounds.iter().map(|r| r.sampled).collect();
    assert!(asked.iter().any(|&a| a != asked[0]), "{asked:?}");
    // With only a target, the noise is the smallest that lets every round run.
    let only = FederationConfig {
        dp_noise_multiplier: None,
        dp_target_epsilon: Some(4.0),
        ..cfg.clone()
    }
    .resolve_privacy()
    .unwrap();
    let sigma = only.dp_noise_multiplier.unwrap();
    let spent = iotids_privacy::epsilon(0.5, sigma, 12 * steps_per_round, delta).unwrap();
    assert!(spent.epsilon <= 4.0 && spent.epsilon > 3.99, "{spent:?}");
    // DP and secure aggregation together: the noise is added once, on the unmasked sum.
    let both = run(
        &d,
        &FederationConfig {
            secure_aggregation: true,
            ..cfg.clone()
        },
    );
    assert_eq!(both.rounds.len(), 12);
    assert!(both.rounds.iter().all(|r| r.validation_macro_f1.is_some()));
}

/// Every round of `a` has `b`'s validation macro-F1 and accuracy, to the last bit.
fn same_scores(a: &Outcome, b: &Outcome) {
    assert_eq!(a.rounds.len(), b.rounds.len());
    for (a, b) in a.rounds.iter().zip(&b.rounds) {
        let r = a.round;
        assert_eq!(a.validation_macro_f1, b.validation_macro_f1, "round {r}");
        assert_eq!(a.validation_accuracy, b.validation_accuracy, "round {r}");
    }
}

#[test]
fn devices_validating_their_windows_score_what_the_cloud_scores_on_them_pooled() {
    // Each device holds a share of the validation windows (every third window of the
    // validation rows, by device, over the pooled table): the sum of their confusion
    // matrices must give the cloud's scores of all of them, round by round, and the same
    // kept round; training is untouched. Under secure aggregation the edge learns only the
    // sum, which must agree as well (counts exactly, the loss within fixed-point rounding).
    let d = data();
    for secure in [false, true] {
        let cfg = FederationConfig {
            secure_aggregation: secure,
            ..small()
        };
        let task = d.task();
        let part = dealt(&task, &cfg);
        let cloud = federate_dealt(&task, &cfg, part.clone(), &mut |_| {}).unwrap();
        let shares: Vec<Vec<usize>> = (0..cfg.devices)
            .map(|dev| {
                d.validation
                    .iter()
                    .copied()
                    .filter(|r| r % cfg.devices == dev)
                    .collect()
            })
            .collect();
        let pooled = |rows| Examples {
            sequences: &d.seq,
            labels: &d.labels,
            rows,
        };
        let devices: Vec<Examples<'_>> = part.devices.iter().map(|r| pooled(r)).collect();
        let validation: Vec<Examples<'_>> = shares.iter().map(|r| pooled(r)).collect();
        let local = Local {
            devices: &devices,
            validation: pooled(&d.validation),
            device_validation: &validation,
        };
        let on_devices = FederationConfig {
            validate_on: ValidationSite::Devices,
            ..cfg.clone()
        };
        let task = Task {
            local: Some(&local),
            ..task
        };
        let o = federate_dealt(&task, &on_devices, part.clone(), &mut |_| {}).unwrap();
        assert_eq!(o.weights, cloud.weights, "secure {secure}");
        assert_eq!(o.best_round, cloud.best_round, "secure {secure}");
        same_scores(&o, &cloud);
        for (a, b) in o.rounds.iter().zip(&cloud.rounds) {
            let (la, lb) = (a.validation_loss.unwrap(), b.validation_loss.unwrap());
            assert!(
                (la - lb).abs() < 1e-6 * lb.max(1.0),
                "round {}: {la} {lb}",
                a.round
            );
            // The evaluation exchange is counted: the model down to every device once more.
            assert!(a.bytes_edge_to_devices > b.bytes_edge_to_devices);
            assert_eq!(a.train_loss, b.train_loss);
        }
        assert!(o.rounds.iter().all(|r| r.validation_macro_f1.is_some()));
        // A device with no validation windows answers with none, and the sum still counts
        // every other device's.
        let mut fewer = validation.clone();
        fewer[0] = pooled(&[]);
        let local = Local {
            device_validation: &fewer,
            ..local
        };
        let o = federate_dealt(
            &Task {
                local: Some(&local),
                ..task
            },
            &on_devices,
            part.clone(),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(o.weights, cloud.weights);
        let rest: Vec<usize> = d
            .validation
            .iter()
            .copied()
            .filter(|r| r % cfg.devices != 0)
            .collect();
        let cloud_rest = federate_dealt(
            &Task {
                validation_rows: &rest,
                ..d.task()
            },
            &cfg,
            part.clone(),
            &mut |_| {},
        )
        .unwrap();
        same_scores(&o, &cloud_rest);
        // Devices that fail: the evaluation exchange sums the ones that answered, and the
        // training, whose fates are drawn apart, is the cloud-validated run's.
        let dropping = FederationConfig {
            device_dropout: 0.3,
            ..cfg.clone()
        };
        let cloud_dropping =
            federate_dealt(&d.task(), &dropping, part.clone(), &mut |_| {}).unwrap();
        let o = federate_dealt(
            &task,
            &FederationConfig {
                validate_on: ValidationSite::Devices,
                ..dropping
            },
            part.clone(),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(o.weights, cloud_dropping.weights);
        assert!(
            cloud_dropping
                .rounds
                .iter()
                .map(|r| r.failed)
                .sum::<usize>()
                > 0
        );
        assert!(o.rounds.iter().all(|r| r.validation_macro_f1.is_some()));
        // Without each device's windows, devices cannot validate: refused by name.
        let e = federate_dealt(&d.task(), &on_devices, part, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("validate_on"), "{e}");
    }
    // Not under differential privacy: the evaluations are data no noise covers.
    let dp = FederationConfig {
        validate_on: ValidationSite::Devices,
        dp_noise_multiplier: Some(1.0),
        ..small()
    };
    assert!(dp.check().unwrap_err().to_string().contains("validate_on"));
}
