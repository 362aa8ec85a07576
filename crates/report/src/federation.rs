//! What a federation run prints and writes besides its pages: the partition table, the
//! one-line comparison with central training, `federation.json`, and the robustness
//! comparison's table and report section.

use std::path::Path;

use iotids_federation::experiments::{CentralRun, RobustnessRow};
use iotids_federation::{Attack, FederationConfig, Outcome, RoundRecord};
use iotids_model::metrics::Metrics;
use serde_json::{Value, json};

use crate::charts::{self, ChartError};
use crate::html::Block;

/// Devices shown in the terminal's partition table; partition.csv has them all.
const SHOWN_DEVICES: usize = 40;

/// The partition: rows per class of each device (the first 40), its edge, poisoners marked.
pub fn partition_table(o: &Outcome, classes: &[String]) -> String {
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
    for (d, counts) in o
        .partition
        .class_counts
        .iter()
        .enumerate()
        .take(SHOWN_DEVICES)
    {
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
    if o.partition.devices.len() > SHOWN_DEVICES {
        s += &format!(
            "… {} more devices in partition.csv\n",
            o.partition.devices.len() - SHOWN_DEVICES
        );
    }
    s
}

fn headline(m: &Metrics) -> Value {
    json!({
        "accuracy": m.accuracy,
        "macro_f1": m.macro_f1,
        "weighted_f1": m.weighted_f1,
        "roc_auc_macro": m.roc_auc_macro,
    })
}

/// `federation.json`: the settings, rounds, bytes per tier, device trainings, and the
/// federated and central models' scores.
pub fn summary_json(
    cfg: &FederationConfig,
    o: &Outcome,
    test: Option<&Metrics>,
    central: Option<&CentralRun>,
) -> Value {
    let best = o.rounds.get(o.best_round.saturating_sub(1));
    let total = |f: fn(&RoundRecord) -> u64| -> u64 { o.rounds.iter().map(f).sum() };
    json!({
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
        "central": central.map(|c| json!({
            "validation_macro_f1": c.validation_macro_f1,
            "validation_accuracy": c.validation_accuracy,
            "test": c.test.as_ref().map(headline),
            "epochs": c.epochs,
            "best_epoch": c.best_epoch,
            "seconds": c.seconds,
        })),
        "privacy": o.privacy,
        "secure_aggregation": secure_json(cfg, o),
        "first_round_within_1_point_of_central": central
            .and_then(|c| o.first_round_reaching(c.validation_macro_f1 - 0.01)),
    })
}

/// One line: the federated model's test macro-F1 beside central training's.
pub fn comparison_line(
    o: &Outcome,
    test: Option<&Metrics>,
    central: Option<&CentralRun>,
) -> String {
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

fn opt4(x: Option<f64>) -> String {
    x.map_or("-".to_string(), |v| format!("{v:.4}"))
}

/// The robustness comparison as a terminal table.
pub fn robustness_table(rows: &[RobustnessRow]) -> String {
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
            opt4(r.validation_macro_f1),
            opt4(r.test_macro_f1)
        );
    }
    s.trim_end().to_string()
}

/// The robustness comparison's report section: what was run, a bar chart of macro-F1 per
/// rule (clean and attacked), and the table.
///
/// # Errors
/// The chart cannot be written to `figures`.
pub fn robustness_sections(
    rows: &[RobustnessRow],
    cfg: &FederationConfig,
    figures: &Path,
) -> Result<Vec<Block>, ChartError> {
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
        .map(|r| usize::from(r.attack != Attack::None.name()) * 3)
        .collect();
    let fig = charts::score_bars(
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
            if cfg.attack == Attack::None {
                "no attack was set (--attack), so this shows only what robustness costs on clean updates".to_string()
            } else {
                format!(
                    "with the attack, {:.0}% of devices {}",
                    cfg.malicious * 100.0,
                    match cfg.attack {
                        Attack::Scale =>
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
                        opt4(r.validation_macro_f1),
                        opt4(r.test_accuracy),
                        opt4(r.test_macro_f1),
                    ]
                })
                .collect(),
        },
    ])
}

/// The network in one line: layers, units, gate variant, dropout, inputs, window, classes.
pub fn network_summary(gru: &iotids_model::gru::GruConfig, window: usize) -> String {
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
        window,
        gru.classes
    )
}

/// `federation.json`'s `secure_aggregation`: whether it was on, its settings, and what it
/// lost (edge rounds whose sum could not be unmasked, devices left out).
pub fn secure_json(cfg: &FederationConfig, o: &Outcome) -> Value {
    secure_json_of(cfg, &o.rounds)
}

/// [`secure_json`] of the rounds of any run (a networked cloud's too).
pub fn secure_json_of(cfg: &FederationConfig, rounds: &[RoundRecord]) -> Value {
    json!({
        "enabled": cfg.secure_aggregation,
        "neighbours": cfg.secagg_neighbours,
        "threshold": cfg.secagg_threshold,
        "failed_edge_rounds": rounds.iter().map(|r| r.secure_failures).sum::<usize>(),
        "excluded_devices": rounds.iter().map(|r| r.secure_excluded).sum::<usize>(),
    })
}

/// One line on what secure aggregation lost and the privacy spent, when either was on.
pub fn privacy_line(cfg: &FederationConfig, o: &Outcome) -> Option<String> {
    let mut parts = Vec::new();
    if cfg.secure_aggregation {
        parts.push(format!(
            "secure aggregation: {} edge round(s) lost for too few devices left, {} device(s) excluded",
            o.rounds.iter().map(|r| r.secure_failures).sum::<usize>(),
            o.rounds.iter().map(|r| r.secure_excluded).sum::<usize>()
        ));
    }
    if let Some(p) = &o.privacy {
        parts.push(format!(
            "differential privacy: ε = {:.3} at δ = {:e} after {} steps (σ = {:.4}, clip {}, q = {}){}",
            p.epsilon,
            p.delta,
            p.steps,
            p.noise_multiplier,
            p.clip,
            p.sampling_rate,
            if o.rounds.len() < cfg.rounds {
                format!("; stopped after {} of {} rounds at the budget", o.rounds.len(), cfg.rounds)
            } else {
                String::new()
            }
        ));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The report's privacy section: whether secure aggregation was on and what it lost, the
/// (ε, δ) guarantee and how it grew round by round, and what each protects against.
pub fn privacy_sections(cfg: &FederationConfig, o: &Outcome) -> Vec<Block> {
    privacy_sections_of(cfg, &o.rounds, o.privacy.as_ref())
}

/// [`privacy_sections`] of the rounds of any run (a networked cloud's too) and the
/// guarantee they spent.
pub fn privacy_sections_of(
    cfg: &FederationConfig,
    rounds: &[RoundRecord],
    privacy: Option<&iotids_privacy::PrivacyReport>,
) -> Vec<Block> {
    let mut rows = vec![(
        "secure aggregation".to_string(),
        if cfg.secure_aggregation {
            format!(
                "on (SecAgg+: neighbourhood {}, threshold {}); {} edge round(s) lost for too \
                 few devices left, {} device(s) left out for bad shares",
                cfg.secagg_neighbours
                    .map_or("all devices of the round up to 64".to_string(), |k| k
                        .to_string()),
                cfg.secagg_threshold
                    .map_or("a majority".to_string(), |t| t.to_string()),
                rounds.iter().map(|r| r.secure_failures).sum::<usize>(),
                rounds.iter().map(|r| r.secure_excluded).sum::<usize>(),
            )
        } else {
            "off: each edge reads its devices' updates".to_string()
        },
    )];
    match privacy {
        Some(p) => {
            rows.push((
                "differential privacy".to_string(),
                format!(
                    "(ε = {:.3}, δ = {:e}) per device after {} steps ({} rounds × {} edge \
                     rounds); noise multiplier σ = {:.4}, clip C = {}, Poisson sampling rate \
                     q = {}; Rényi-DP accountant (order {})",
                    p.epsilon,
                    p.delta,
                    p.steps,
                    rounds.len(),
                    cfg.edge_rounds,
                    p.noise_multiplier,
                    p.clip,
                    p.sampling_rate,
                    p.order
                ),
            ));
            if let Some(t) = cfg.dp_target_epsilon {
                rows.push((
                    "privacy budget".to_string(),
                    format!("ε ≤ {t}: {} of {} rounds ran", rounds.len(), cfg.rounds),
                ));
            }
        }
        None => rows.push((
            "differential privacy".to_string(),
            "off: the model carries no formal guarantee".to_string(),
        )),
    }
    let mut blocks = vec![Block::Heading("Privacy".into()), Block::KeyValues(rows)];
    if privacy.is_some() {
        let step = (rounds.len() / 10).max(1);
        let picked: Vec<&RoundRecord> = rounds
            .iter()
            .filter(|r| r.round % step == 0 || r.round == 1 || r.round == rounds.len())
            .collect();
        blocks.push(Block::Table {
            header: vec![
                "round".into(),
                "ε spent".into(),
                "validation macro-F1".into(),
            ],
            rows: picked
                .iter()
                .map(|r| {
                    vec![
                        r.round.to_string(),
                        r.epsilon.map_or("-".into(), |e| format!("{e:.3}")),
                        opt4(r.validation_macro_f1),
                    ]
                })
                .collect(),
        });
    }
    blocks.push(Block::Paragraph(
        "Secure aggregation keeps each device's update from its edge (the edge unmasks only \
         the sum of the devices that stayed), not the sum itself, and it needs the mean at \
         the edges (no robust rule). Differential privacy bounds what any model released \
         from an edge round (to its devices and to the cloud) and the final model say about \
         any one device's traffic; the edge adds the noise after summing, so it protects \
         against everyone downstream of the edge, not against the edge itself. The devices' \
         preprocessing summaries and label counts are outside the guarantee."
            .into(),
    ));
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotids_federation::partition::Partition;

    fn record(round: usize, epsilon: Option<f64>, failures: usize) -> RoundRecord {
        RoundRecord {
            round,
            train_loss: None,
            train_accuracy: None,
            validation_loss: Some(0.5),
            validation_accuracy: Some(0.9),
            validation_macro_f1: Some(0.8),
            sampled: 4,
            accepted: 3,
            failed: 1,
            late: 0,
            bytes_edge_to_devices: 0,
            bytes_devices_to_edge: 0,
            bytes_edges_to_cloud: 0,
            bytes_cloud_to_edges: 0,
            simulated_seconds: 0.0,
            seconds: 0.0,
            training_seconds: 0.0,
            aggregation_seconds: 0.0,
            evaluation_seconds: 0.0,
            epsilon,
            secure_failures: failures,
            secure_excluded: 0,
        }
    }

    fn outcome(privacy: Option<iotids_federation::PrivacyReport>) -> Outcome {
        Outcome {
            rounds: vec![record(1, Some(1.5), 1), record(2, Some(2.25), 0)],
            best_round: 2,
            weights: vec![0.0],
            partition: Partition {
                devices: vec![vec![0]],
                class_counts: vec![vec![1]],
                unit: "rows",
                units: 1,
            },
            edge_of: vec![0],
            malicious: Vec::new(),
            model_bytes: 4,
            privacy,
            seconds: 1.0,
        }
    }

    #[test]
    fn the_privacy_section_states_the_guarantee_and_what_secure_aggregation_lost() {
        let cfg = FederationConfig {
            secure_aggregation: true,
            dp_noise_multiplier: Some(1.1),
            dp_target_epsilon: Some(3.0),
            rounds: 5,
            ..FederationConfig::default()
        };
        let report = iotids_federation::PrivacyReport {
            noise_multiplier: 1.1,
            clip: 2.0,
            sampling_rate: 0.5,
            steps: 4,
            delta: 1e-5,
            epsilon: 2.25,
            accountant: "rdp".into(),
            order: 7.0,
        };
        let o = outcome(Some(report));
        let line = privacy_line(&cfg, &o).unwrap();
        assert!(line.contains("1 edge round(s) lost"), "{line}");
        assert!(
            line.contains("ε = 2.250 at δ = 1e-5 after 4 steps"),
            "{line}"
        );
        assert!(line.contains("stopped after 2 of 5 rounds"), "{line}");
        let blocks = privacy_sections(&cfg, &o);
        let Block::KeyValues(rows) = &blocks[1] else {
            panic!("{blocks:?}")
        };
        assert!(rows[0].1.starts_with("on (SecAgg+"), "{rows:?}");
        assert!(
            rows[1]
                .1
                .contains("(ε = 2.250, δ = 1e-5) per device after 4 steps"),
            "{rows:?}"
        );
        let Block::Table { rows: table, .. } = &blocks[2] else {
            panic!("{blocks:?}")
        };
        assert_eq!(
            table[1],
            vec!["2".to_string(), "2.250".into(), "0.8000".into()]
        );
        let json = summary_json(&cfg, &o, None, None);
        assert_eq!(json["privacy"]["epsilon"], 2.25);
        assert_eq!(json["secure_aggregation"]["failed_edge_rounds"], 1);
        // Neither on: no line, and the section says so.
        let plain = FederationConfig::default();
        let o = outcome(None);
        assert_eq!(privacy_line(&plain, &o), None);
        let Block::KeyValues(rows) = &privacy_sections(&plain, &o)[1] else {
            panic!()
        };
        assert!(
            rows[0].1.starts_with("off") && rows[1].1.starts_with("off"),
            "{rows:?}"
        );
    }
}
