//! `iotids federate`: hierarchical federated training of the GRU, and the same network
//! trained centrally on the same split for comparison.
//!
//! The file is read and prepared as `train` does (one pipeline, fitted on the training
//! rows: in a real deployment the devices would agree on it first); iotids-federation deals
//! the training rows to devices and runs the rounds; the kept global model is written as an
//! ordinary model directory and evaluated on the test rows like any other.

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, Result};
use iotids_data::window::Sequences;
use iotids_federation::{FederationConfig, Outcome, Task};
use iotids_model::gru::GruConfig;
use iotids_model::metrics::{Metrics, evaluate};
use iotids_model::params::from_flat;
use iotids_model::train::{EpochRecord, Examples, History, TrainConfig, score};
use iotids_report as report;
use report::pages::{CentralRun, FederationView};

use crate::cli::{Cli, FederateArgs, IngestArgs, ModelArgs, PrepArgs};
use crate::commands::print;
use crate::learn::{self, SCORE_BATCH};
use crate::progress;

/// `iotids federate`.
pub fn federate(
    file: &Path,
    out: &Path,
    args: &FederateArgs,
    ingest: &IngestArgs,
    prep: &PrepArgs,
    model: &ModelArgs,
    cli: &Cli,
) -> Result<ExitCode> {
    let loaded = learn::load_for_training(file, ingest, prep, false, cli)?;
    let p = &loaded.prepared;
    let seed = loaded.config.split.seed;
    let cfg = args.config(seed)?;
    let train_cfg = model.train_config(seed)?;
    let figures = learn::start_output(out, p, &loaded.config)?;

    let ds = &p.dataset;
    let all: Vec<usize> = (0..ds.n_rows()).collect();
    let features = p.pipeline.transform(ds, &all)?;
    let sequences = Sequences::new(features, ds.flows.as_deref(), model.window)?;
    let gru = model.gru_config(sequences.features.cols, p.pipeline.classes.len(), seed)?;
    let task = Task {
        model: &gru,
        train: &train_cfg,
        class_weights: &p.pipeline.class_weights,
        sequences: &sequences,
        labels: &ds.labels,
        flows: ds.flows.as_deref(),
        hosts: ds.hosts.as_deref(),
        train_rows: &p.split.train,
        validation_rows: &p.split.validation,
    };
    print(&format!(
        "federating: {} devices → {} edges → cloud; {} cloud rounds × {} edge rounds × {} local epoch(s); {} partition; {} (edges {}, cloud {})",
        cfg.devices,
        cfg.edges,
        cfg.rounds,
        cfg.edge_rounds,
        cfg.local_epochs,
        cfg.partition,
        cfg.strategy,
        cfg.edge_aggregation,
        cfg.cloud_aggregation
    ))?;
    let mut on_round = progress::rounds(cfg.rounds, cli.quiet);
    let outcome = iotids_federation::federate(&task, &cfg, &mut on_round)?;
    drop(on_round);
    print(&partition_table(&outcome, &p.pipeline.classes))?;

    let net = from_flat(&gru, &iotids_model::backend::device(), &outcome.weights)?;
    let card_train = TrainConfig {
        epochs: cfg.local_epochs,
        patience: 0,
        ..train_cfg.clone()
    };
    let detector = learn::detector(
        p,
        gru.clone(),
        model.window,
        card_train,
        rounds_history(&outcome),
        net,
    );
    detector.save(out)?;
    write_rounds(&out.join("rounds.csv"), &outcome)?;
    write_partition(&out.join("partition.csv"), &outcome, &p.pipeline.classes)?;
    let toml_path = out.join("federation.toml");
    std::fs::write(&toml_path, cfg.to_toml())
        .with_context(|| format!("{}: cannot write", toml_path.display()))?;

    let scored = learn::score_test_rows(&detector, p, &sequences, &loaded.config, cli);
    let metrics = match &scored {
        Some(s) => Some(learn::write_evaluation(&detector, s, out)?),
        None => None,
    };
    let central = if args.no_central {
        None
    } else {
        print("== central training of the same network on the same split, for comparison ==")?;
        Some(central_run(&gru, &train_cfg, p, &sequences, cli)?)
    };
    let robustness = if args.robustness {
        let rows = robustness(&task, &cfg, p, &sequences, cli)?;
        write_robustness(&out.join("robustness.csv"), &rows)?;
        print(&robustness_table(&rows))?;
        Some(rows)
    } else {
        None
    };
    let json = federation_json(&cfg, &outcome, metrics.as_ref(), central.as_ref());
    let json_path = out.join("federation.json");
    std::fs::write(&json_path, serde_json::to_string_pretty(&json)?)
        .with_context(|| format!("{}: cannot write", json_path.display()))?;
    print(&comparison_line(
        &outcome,
        metrics.as_ref(),
        central.as_ref(),
    ))?;

    let mut page = report::html::Report::new(
        "iotids: federated GRU intrusion detector",
        format!("hierarchical federated training on {}", file.display()),
    );
    page.push(report::html::Block::KeyValues(vec![
        ("model directory".into(), out.display().to_string()),
        (
            "network".into(),
            format!(
                "GRU, {} layer(s) of {} units ({}), dropout {}, {} input features, windows of {} record(s), linear head to {} classes",
                gru.layers,
                gru.hidden,
                if gru.reset_after {
                    "reset gate after the recurrent product"
                } else {
                    "the seeds' eq. 3"
                },
                gru.dropout,
                gru.input,
                model.window,
                gru.classes
            ),
        ),
        (
            "local training".into(),
            format!(
                "Adam lr {} with fresh state each edge round, batch {}, {} cross-entropy{}",
                train_cfg.learning_rate,
                train_cfg.batch_size,
                if train_cfg.class_weights {
                    "class-weighted"
                } else {
                    "unweighted"
                },
                if cfg.device_mu() > 0.0 {
                    format!(", proximal term μ = {}", cfg.device_mu())
                } else {
                    String::new()
                }
            ),
        ),
        (
            "federation settings".into(),
            cfg.to_toml().replace('\n', "; "),
        ),
    ]));
    for b in report::pages::federation_sections(
        FederationView {
            config: &cfg,
            outcome: &outcome,
            classes: &p.pipeline.classes,
            test: metrics.as_ref(),
            central: central.as_ref(),
        },
        &figures,
    )? {
        page.push(b);
    }
    if let Some(rows) = &robustness {
        for b in robustness_sections(rows, &cfg, &figures)? {
            page.push(b);
        }
    }
    if let (Some(s), Some(m)) = (&scored, &metrics) {
        for b in report::pages::evaluation_sections(
            m,
            &format!("federated model, {}", s.what),
            &figures,
        )? {
            page.push(b);
        }
        learn::push_evaluation_notes(&mut page, s);
    }
    learn::write_report(
        page,
        &loaded.run(file),
        p,
        &figures,
        out,
        &format!(
            "the federated model (model.json, weights.bpk, pipeline.json), rounds.csv, partition.csv, federation.toml, federation.json{}",
            if robustness.is_some() {
                ", robustness.csv"
            } else {
                ""
            }
        ),
        metrics.is_some(),
    )?;
    Ok(ExitCode::SUCCESS)
}

/// One run of the robustness comparison.
#[derive(Debug, Clone, serde::Serialize)]
struct RobustnessRow {
    aggregation: String,
    attack: String,
    malicious_devices: usize,
    kept_round: usize,
    validation_macro_f1: Option<f64>,
    test_accuracy: Option<f64>,
    test_macro_f1: Option<f64>,
}

/// The same federation with each aggregation rule at both tiers, without the attack and
/// (if one is set) with it.
fn robustness(
    task: &Task<'_>,
    cfg: &FederationConfig,
    p: &iotids_data::prepare::Prepared,
    sequences: &Sequences,
    cli: &Cli,
) -> Result<Vec<RobustnessRow>> {
    use iotids_federation::aggregate::Aggregation;
    let per_edge = cfg.devices.div_ceil(cfg.edges);
    let f = ((cfg.malicious * per_edge as f64).ceil() as usize).max(1);
    let rules = [
        Aggregation::Mean,
        Aggregation::Median,
        Aggregation::TrimmedMean { beta: 0.2 },
        Aggregation::Krum { f, keep: 0 },
    ];
    let attacks: Vec<iotids_federation::Attack> = if cfg.attack == iotids_federation::Attack::None {
        vec![iotids_federation::Attack::None]
    } else {
        vec![iotids_federation::Attack::None, cfg.attack]
    };
    let ds = &p.dataset;
    let mut rows = Vec::new();
    for &attack in &attacks {
        for rule in rules {
            let c = FederationConfig {
                edge_aggregation: rule,
                cloud_aggregation: rule,
                attack,
                ..cfg.clone()
            };
            let bar = progress::step(&format!("robustness: {rule}, attack {attack}"), cli.quiet);
            let o = iotids_federation::federate(task, &c, &mut |_| {});
            bar.finish_and_clear();
            let o = o?;
            let net = from_flat(task.model, &iotids_model::backend::device(), &o.weights)?;
            let test = (!p.split.test.is_empty()).then(|| {
                let s = score(
                    &net,
                    Examples {
                        sequences,
                        labels: &ds.labels,
                        rows: &p.split.test,
                    },
                    SCORE_BATCH,
                );
                let y: Vec<u32> = p.split.test.iter().map(|&r| ds.labels[r]).collect();
                evaluate(
                    &y,
                    &s.predictions(),
                    &s.probabilities,
                    &p.pipeline.classes,
                    iotids_data::schema::normal_class(&p.pipeline.classes),
                )
            });
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

fn write_robustness(path: &Path, rows: &[RobustnessRow]) -> Result<()> {
    let f = File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    let mut w = csv::Writer::from_writer(BufWriter::new(f));
    for r in rows {
        w.serialize(r)?;
    }
    w.flush()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

fn robustness_table(rows: &[RobustnessRow]) -> String {
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    let mut s = format!(
        "{:<18} {:<11} {:>9} {:>11} {:>14} {:>13}\n",
        "aggregation", "attack", "poisoners", "kept round", "val macro-F1", "test macro-F1"
    );
    for r in rows {
        s += &format!(
            "{:<18} {:<11} {:>9} {:>11} {:>14} {:>13}\n",
            r.aggregation,
            r.attack,
            r.malicious_devices,
            r.kept_round,
            opt(r.validation_macro_f1),
            opt(r.test_macro_f1)
        );
    }
    s.trim_end().to_string()
}

fn robustness_sections(
    rows: &[RobustnessRow],
    cfg: &FederationConfig,
    figures: &Path,
) -> Result<Vec<report::html::Block>> {
    use report::html::Block;
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    let labels: Vec<String> = rows
        .iter()
        .map(|r| format!("{}, attack {}", r.aggregation, r.attack))
        .collect();
    let values: Vec<f64> = rows
        .iter()
        .map(|r| {
            r.test_macro_f1
                .or(r.validation_macro_f1)
                .unwrap_or(f64::NAN)
        })
        .collect();
    let colors: Vec<usize> = rows
        .iter()
        .map(|r| usize::from(r.attack != "none") * 3)
        .collect();
    let fig = report::charts::score_bars(
        figures,
        "robustness",
        "macro-F1 by aggregation rule, without and with the attack",
        &labels,
        &values,
        &colors,
    )?;
    Ok(vec![
        Block::Heading("Robustness: aggregation rules under poisoning".into()),
        Block::Paragraph(format!(
            "The same federation (same partition, schedule and seed) with each aggregation rule at both tiers; {}. Scores are the kept round's model on the test rows (validation if there are none).",
            if cfg.attack == iotids_federation::Attack::None {
                "no attack was set (--attack), so this shows only what robustness costs on clean updates".to_string()
            } else {
                format!(
                    "with the attack, {:.0}% of devices {}",
                    cfg.malicious * 100.0,
                    match cfg.attack {
                        iotids_federation::Attack::Scale =>
                            format!("send their update scaled by {}", cfg.attack_scale),
                        _ => "train on shifted labels".to_string(),
                    }
                )
            }
        )),
        Block::Figure {
            svg: fig.svg,
            caption: "Test macro-F1 of each run; blue: clean updates, red: with the attack.".into(),
        },
        Block::Table {
            header: [
                "aggregation",
                "attack",
                "poisoning devices",
                "kept round",
                "validation macro-F1",
                "test accuracy",
                "test macro-F1",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            rows: rows
                .iter()
                .map(|r| {
                    vec![
                        r.aggregation.clone(),
                        r.attack.clone(),
                        r.malicious_devices.to_string(),
                        r.kept_round.to_string(),
                        opt(r.validation_macro_f1),
                        opt(r.test_accuracy),
                        opt(r.test_macro_f1),
                    ]
                })
                .collect(),
        },
    ])
}

/// Trains `gru` centrally on the split's training rows, with early stopping on the
/// validation rows, and scores it on validation and test.
fn central_run(
    gru: &GruConfig,
    train_cfg: &TrainConfig,
    p: &iotids_data::prepare::Prepared,
    sequences: &Sequences,
    cli: &Cli,
) -> Result<CentralRun> {
    let ds = &p.dataset;
    let examples = |rows| Examples {
        sequences,
        labels: &ds.labels,
        rows,
    };
    let mut on_event = progress::training(train_cfg.epochs, cli.quiet);
    let (net, history) = iotids_model::train::train(
        gru,
        train_cfg,
        &p.pipeline.class_weights,
        examples(&p.split.train),
        examples(&p.split.validation),
        &mut on_event,
    )?;
    drop(on_event);
    print(&learn::epochs_line(&history))?;
    let metrics_on = |rows: &[usize]| -> Option<Metrics> {
        if rows.is_empty() {
            return None;
        }
        let ex = Examples {
            sequences,
            labels: &ds.labels,
            rows,
        };
        let s = score(&net, ex, SCORE_BATCH);
        let y: Vec<u32> = rows.iter().map(|&r| ds.labels[r]).collect();
        let normal = iotids_data::schema::normal_class(&p.pipeline.classes);
        Some(evaluate(
            &y,
            &s.predictions(),
            &s.probabilities,
            &p.pipeline.classes,
            normal,
        ))
    };
    let validation = metrics_on(&p.split.validation);
    Ok(CentralRun {
        validation_accuracy: validation.as_ref().map_or(f64::NAN, |m| m.accuracy),
        validation_macro_f1: validation.as_ref().map_or(f64::NAN, |m| m.macro_f1),
        test: metrics_on(&p.split.test),
        epochs: history.epochs.len(),
        best_epoch: history.best_epoch,
        seconds: history.seconds,
    })
}

/// The rounds as the model card's history: one "epoch" per cloud round.
fn rounds_history(o: &Outcome) -> History {
    History {
        epochs: o
            .rounds
            .iter()
            .map(|r| EpochRecord {
                epoch: r.round,
                train_loss: r.train_loss.unwrap_or(f64::NAN),
                train_accuracy: r.train_accuracy.unwrap_or(f64::NAN),
                validation_loss: r.validation_loss,
                validation_accuracy: r.validation_accuracy,
                seconds: r.seconds,
            })
            .collect(),
        best_epoch: o.best_round,
        stopped_early: false,
        seconds: o.seconds,
    }
}

fn partition_table(o: &Outcome, classes: &[String]) -> String {
    const SHOWN: usize = 40;
    let mut s = format!(
        "partition: {} {} over {} devices (rows per class)\n",
        o.partition.units,
        o.partition.unit,
        o.partition.devices.len()
    );
    s += &format!("{:>6} {:>4} {:>8}", "device", "edge", "rows");
    for c in classes {
        s += &format!(" {:>10.10}", c);
    }
    s.push('\n');
    for (d, counts) in o.partition.class_counts.iter().enumerate().take(SHOWN) {
        s += &format!(
            "{d:>6} {:>4} {:>8}",
            o.edge_of[d],
            o.partition.devices[d].len()
        );
        for n in counts {
            s += &format!(" {n:>10}");
        }
        if o.malicious.contains(&d) {
            s += "  (poisoning)";
        }
        s.push('\n');
    }
    if o.partition.devices.len() > SHOWN {
        s += &format!(
            "… {} more devices in partition.csv\n",
            o.partition.devices.len() - SHOWN
        );
    }
    s
}

fn write_rounds(path: &Path, o: &Outcome) -> Result<()> {
    let f = File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    let mut w = csv::Writer::from_writer(BufWriter::new(f));
    for r in &o.rounds {
        w.serialize(r)?;
    }
    w.flush()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

fn write_partition(path: &Path, o: &Outcome, classes: &[String]) -> Result<()> {
    let f = File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    let mut w = csv::Writer::from_writer(BufWriter::new(f));
    let mut header = vec![
        "device".to_string(),
        "edge".into(),
        "malicious".into(),
        "rows".into(),
    ];
    header.extend(classes.iter().cloned());
    w.write_record(&header)?;
    for (d, counts) in o.partition.class_counts.iter().enumerate() {
        let mut rec = vec![
            d.to_string(),
            o.edge_of[d].to_string(),
            o.malicious.contains(&d).to_string(),
            o.partition.devices[d].len().to_string(),
        ];
        rec.extend(counts.iter().map(|n| n.to_string()));
        w.write_record(&rec)?;
    }
    w.flush()
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}

fn headline(m: &Metrics) -> serde_json::Value {
    serde_json::json!({
        "accuracy": m.accuracy,
        "macro_f1": m.macro_f1,
        "weighted_f1": m.weighted_f1,
        "roc_auc_macro": m.roc_auc_macro,
    })
}

fn federation_json(
    cfg: &FederationConfig,
    o: &Outcome,
    test: Option<&Metrics>,
    central: Option<&CentralRun>,
) -> serde_json::Value {
    let best = o.rounds.get(o.best_round.saturating_sub(1));
    let total =
        |f: fn(&iotids_federation::RoundRecord) -> u64| -> u64 { o.rounds.iter().map(f).sum() };
    serde_json::json!({
        "config": cfg,
        "rounds_run": o.rounds.len(),
        "best_round": o.best_round,
        "seconds": o.seconds,
        "model_bytes": o.model_bytes,
        "bytes": {
            "cloud_to_edges": total(|r| r.bytes_cloud_to_edges),
            "edges_to_devices": total(|r| r.bytes_edge_to_devices),
            "devices_to_edges": total(|r| r.bytes_devices_to_edge),
            "edges_to_cloud": total(|r| r.bytes_edges_to_cloud),
        },
        "device_trainings": {
            "sampled": o.rounds.iter().map(|r| r.sampled).sum::<usize>(),
            "accepted": o.rounds.iter().map(|r| r.accepted).sum::<usize>(),
            "failed": o.rounds.iter().map(|r| r.failed).sum::<usize>(),
            "late": o.rounds.iter().map(|r| r.late).sum::<usize>(),
        },
        "malicious_devices": o.malicious,
        "federated": {
            "validation_macro_f1": best.and_then(|r| r.validation_macro_f1),
            "validation_accuracy": best.and_then(|r| r.validation_accuracy),
            "test": test.map(headline),
        },
        "central": central.map(|c| serde_json::json!({
            "validation_macro_f1": c.validation_macro_f1,
            "validation_accuracy": c.validation_accuracy,
            "test": c.test.as_ref().map(headline),
            "epochs": c.epochs,
            "best_epoch": c.best_epoch,
            "seconds": c.seconds,
        })),
        "first_round_within_1_point_of_central": central
            .and_then(|c| o.first_round_reaching(c.validation_macro_f1 - 0.01)),
    })
}

fn comparison_line(o: &Outcome, test: Option<&Metrics>, central: Option<&CentralRun>) -> String {
    let f = |m: Option<&Metrics>| m.map_or("-".to_string(), |m| format!("{:.4}", m.macro_f1));
    let mut s = format!(
        "federated: test macro-F1 {} (kept round {} of {}, {:.1} s)",
        f(test),
        o.best_round,
        o.rounds.len(),
        o.seconds
    );
    if let Some(c) = central {
        s += &format!(
            "; central: test macro-F1 {} ({} epochs, {:.1} s)",
            f(c.test.as_ref()),
            c.epochs,
            c.seconds
        );
        if let Some(r) = o.first_round_reaching(c.validation_macro_f1 - 0.01) {
            s += &format!("; validation macro-F1 within 1 point of central from round {r}");
        }
    }
    s
}
