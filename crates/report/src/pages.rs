//! The sections of `report.html`, one builder per stage that has results: the data
//! (summary, audit, preparation), training (learning curves), evaluation (metrics,
//! confusion matrix, ROC curves) and federation (partition, rounds). They live here,
//! not in the commands, so every command that writes a report shows a stage the same
//! way.

use std::path::Path;

use iotids_data::audit::Audit;
use iotids_data::describe::Description;
use iotids_data::prepare::Prepared;
use iotids_federation::experiments::CentralRun;

use crate::charts::{self, ChartError};
use crate::html::Block;
use crate::text::{NUMERIC_HEADER, numeric_row};

/// Data summary: rows, classes with weights, the class-distribution picture, the
/// numeric statistics table, and what was dropped.
///
/// # Errors
/// The picture cannot be written to `figures`.
pub fn data_sections(d: &Description, figures: &Path) -> Result<Vec<Block>, ChartError> {
    let mut out = vec![
        Block::Heading("Data".into()),
        Block::KeyValues(vec![
            ("file".into(), d.path.clone()),
            (
                "format / label".into(),
                format!("{} / {}", d.format, d.label),
            ),
            ("rows read".into(), d.rows_read.to_string()),
            ("rows rejected".into(), d.rows_rejected.to_string()),
            ("exact duplicates".into(), d.duplicates.exact.to_string()),
            (
                "feature duplicates".into(),
                d.duplicates.feature.to_string(),
            ),
            (
                "flows".into(),
                d.flows.map_or("-".into(), |f| f.to_string()),
            ),
        ]),
    ];
    let names: Vec<String> = d.classes.iter().map(|c| c.name.clone()).collect();
    let counts: Vec<u64> = d.classes.iter().map(|c| c.count).collect();
    let fig = charts::class_distribution(figures, &names, &counts)?;
    out.push(Block::Figure {
        svg: fig.svg,
        caption: "Rows per class as read (before de-duplication).".into(),
    });
    out.push(Block::Table {
        header: vec!["class".into(), "rows".into(), "weight n/(k n_c)".into()],
        rows: d
            .classes
            .iter()
            .map(|c| {
                vec![
                    c.name.clone(),
                    c.count.to_string(),
                    format!("{:.4}", c.weight),
                ]
            })
            .collect(),
    });
    out.push(Block::Heading("Numeric columns".into()));
    out.push(Block::Table {
        header: NUMERIC_HEADER.iter().map(|s| s.to_string()).collect(),
        rows: d.numeric.iter().map(numeric_row).collect(),
    });
    Ok(out)
}

/// Audit findings, one row each.
pub fn audit_sections(a: &Audit) -> Vec<Block> {
    vec![
        Block::Heading("Audit".into()),
        Block::Paragraph(format!(
            "{} findings, {} not handled by the default pipeline.",
            a.findings.len(),
            a.unmitigated()
        )),
        Block::Table {
            header: vec![
                "finding".into(),
                "column".into(),
                "detail".into(),
                "handled".into(),
            ],
            rows: a
                .findings
                .iter()
                .map(|f| {
                    vec![
                        f.kind.title().to_string(),
                        f.column.clone().unwrap_or_default(),
                        f.detail.clone(),
                        format!("{}: {}", if f.mitigated { "yes" } else { "NO" }, f.action),
                    ]
                })
                .collect(),
        },
    ]
}

/// Preparation: counts, the split per class, class weights and feature decisions.
pub fn prepare_sections(p: &Prepared) -> Vec<Block> {
    let c = &p.counts;
    let labels = &p.dataset.labels;
    let count = |rows: &[usize], k: usize| {
        rows.iter()
            .filter(|&&r| labels[r] as usize == k)
            .count()
            .to_string()
    };
    let split_rows = p
        .dataset
        .classes
        .iter()
        .enumerate()
        .map(|(k, name)| {
            vec![
                name.clone(),
                count(&p.split.train, k),
                count(&p.split.validation, k),
                count(&p.split.test, k),
                format!(
                    "{:.4}",
                    p.pipeline.class_weights.get(k).copied().unwrap_or(0.0)
                ),
            ]
        })
        .collect();
    vec![
        Block::Heading("Preparation".into()),
        Block::KeyValues(vec![
            ("rows in".into(), c.rows_in.to_string()),
            (
                "duplicates removed".into(),
                c.duplicates_removed.to_string(),
            ),
            (
                "training outliers removed".into(),
                c.outliers_removed.to_string(),
            ),
            (
                "train / validation / test".into(),
                format!("{} / {} / {}", c.train, c.validation, c.test),
            ),
            (
                "features".into(),
                format!(
                    "{} encoded, {} kept ({:?} selection, {:?} scaling)",
                    p.pipeline.features.len(),
                    p.pipeline.selected.len(),
                    p.pipeline.config.select,
                    p.pipeline.config.scaler
                ),
            ),
        ]),
        Block::Table {
            header: ["class", "train", "validation", "test", "weight"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            rows: split_rows,
        },
        Block::Table {
            header: ["feature", "kept", "score", "why"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            rows: p
                .pipeline
                .decisions
                .iter()
                .map(|d| {
                    vec![
                        d.feature.clone(),
                        if d.kept { "yes".into() } else { "no".into() },
                        format!("{:.4}", d.score),
                        d.reason.clone(),
                    ]
                })
                .collect(),
        },
    ]
}

/// The model and its training: configuration, learning curves, the epoch table.
///
/// # Errors
/// The picture cannot be written to `figures`.
pub fn training_sections(
    card: &iotids_model::artifact::ModelCard,
    figures: &Path,
) -> Result<Vec<Block>, ChartError> {
    let g = &card.gru;
    let t = &card.train;
    let h = &card.history;
    let mut out = vec![
        Block::Heading("Model and training".into()),
        Block::KeyValues(vec![
            (
                "network".into(),
                format!(
                    "GRU, {} layer(s) of {} units, {} ({}), dropout {}, linear head to {} classes",
                    g.layers,
                    g.hidden,
                    if g.reset_after {
                        "reset gate after the recurrent product"
                    } else {
                        "reset gate before the recurrent product"
                    },
                    if g.reset_after {
                        "PyTorch/Keras variant"
                    } else {
                        "the seeds' eq. 3"
                    },
                    g.dropout,
                    g.classes
                ),
            ),
            (
                "input".into(),
                if card.window == 1 {
                    format!(
                        "{} features per record, each record alone (window 1)",
                        g.input
                    )
                } else {
                    format!(
                        "{} features per record, windows of {} records of the same {}",
                        g.input,
                        card.window,
                        match card.window_by {
                            iotids_data::window::WindowBy::Flow => "flow",
                            iotids_data::window::WindowBy::HostPair => "two hosts (any ports)",
                        }
                    )
                },
            ),
            (
                "training".into(),
                format!(
                    "Adam lr {}, batch {}, up to {} epochs, patience {}, {} cross-entropy, seed {}",
                    t.learning_rate,
                    t.batch_size,
                    t.epochs,
                    t.patience,
                    if t.class_weights {
                        "class-weighted"
                    } else {
                        "unweighted"
                    },
                    t.seed
                ),
            ),
            (
                "result".into(),
                format!(
                    "{} epochs in {:.1} s; kept epoch {}{}",
                    h.epochs.len(),
                    h.seconds,
                    h.best_epoch,
                    if h.stopped_early {
                        " (stopped early: validation loss stopped improving)"
                    } else {
                        ""
                    }
                ),
            ),
        ]),
    ];
    if !card.members.is_empty() {
        let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
        let each: Vec<String> = card
            .members
            .iter()
            .map(|m| {
                format!(
                    "seed {}: kept epoch {} of {}, validation macro-F1 {}, {:.1} s",
                    m.seed,
                    m.best_epoch,
                    m.epochs,
                    opt(m.validation_macro_f1),
                    m.seconds
                )
            })
            .collect();
        if let Some(Block::KeyValues(kv)) = out.last_mut() {
            kv.push((
                "ensemble".into(),
                format!(
                    "{} networks trained on the same rows, class probabilities averaged (the result and curves below are the first's); {}",
                    card.members.len(),
                    each.join("; ")
                ),
            ));
        }
    }
    let points: Vec<charts::EpochPoint> = h
        .epochs
        .iter()
        .map(|e| charts::EpochPoint {
            epoch: e.epoch,
            train_loss: e.train_loss,
            val_loss: e.validation_loss.unwrap_or(f64::NAN),
            train_accuracy: e.train_accuracy,
            val_accuracy: e.validation_accuracy.unwrap_or(f64::NAN),
        })
        .collect();
    if !points.is_empty() {
        let fig = charts::learning_curves(figures, &points)?;
        out.push(Block::Figure {
            svg: fig.svg,
            caption: format!(
                "Learning curves: loss ({}cross-entropy) and accuracy per epoch, training and validation. The kept weights are epoch {}'s.",
                if t.class_weights { "class-weighted " } else { "" },
                h.best_epoch
            ),
        });
    }
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    out.push(Block::Table {
        header: [
            "epoch",
            "train loss",
            "train accuracy",
            "validation loss",
            "validation accuracy",
            "seconds",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows: h
            .epochs
            .iter()
            .map(|e| {
                vec![
                    e.epoch.to_string(),
                    format!("{:.4}", e.train_loss),
                    format!("{:.4}", e.train_accuracy),
                    opt(e.validation_loss),
                    opt(e.validation_accuracy),
                    format!("{:.2}", e.seconds),
                ]
            })
            .collect(),
    });
    Ok(out)
}

/// Evaluation: headline numbers, the classification report, the confusion matrix
/// (picture of counts, table row-normalised) and the ROC curves.
///
/// # Errors
/// A picture cannot be written to `figures`.
pub fn evaluation_sections(
    m: &iotids_model::metrics::Metrics,
    what: &str,
    figures: &Path,
    detector: &iotids_model::artifact::Detector,
) -> Result<Vec<Block>, ChartError> {
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    let total: u64 = m.per_class.iter().map(|c| c.support).sum();
    let mut out = vec![
        Block::Heading(format!("Evaluation: {what}")),
        Block::KeyValues(vec![
            ("rows".into(), total.to_string()),
            ("accuracy".into(), format!("{:.4}", m.accuracy)),
            ("macro F1".into(), format!("{:.4}", m.macro_f1)),
            ("weighted F1".into(), format!("{:.4}", m.weighted_f1)),
            (
                "ROC AUC macro / micro".into(),
                format!("{} / {}", opt(m.roc_auc_macro), opt(m.roc_auc_micro)),
            ),
            ("PR AUC macro".into(), opt(m.pr_auc_macro)),
            (
                "detection rate / false-alarm rate".into(),
                format!("{} / {}", opt(m.detection_rate), opt(m.false_alarm_rate)),
            ),
        ]),
        Block::Pre(crate::text::render_classification_report(m)),
    ];
    if !m.intervals.is_empty() {
        let ci = |i: Option<iotids_model::metrics::Interval>| {
            i.map_or("-".to_string(), |i| {
                format!("[{:.4}, {:.4}]", i.low, i.high)
            })
        };
        out.push(Block::Paragraph(format!(
            "How far each class's recall and precision can be trusted: 95 % Wilson intervals. A class whose recall interval is wider than {} has too few test rows to read its scores to the point.",
            crate::text::WIDE_INTERVAL
        )));
        out.push(Block::Table {
            header: [
                "class",
                "support",
                "recall",
                "95 % interval",
                "precision",
                "95 % interval",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            rows: m
                .classes
                .iter()
                .zip(&m.per_class)
                .zip(&m.intervals)
                .map(|((name, c), i)| {
                    vec![
                        name.clone(),
                        c.support.to_string(),
                        format!("{:.4}", c.recall),
                        ci(i.recall),
                        format!("{:.4}", c.precision),
                        ci(i.precision),
                    ]
                })
                .collect(),
        });
    }
    let fig = charts::confusion_heatmap(figures, &m.confusion, &m.classes)?;
    out.push(Block::Figure {
        svg: fig.svg,
        caption: "Confusion matrix: rows are true classes, columns predicted; counts in the cells."
            .into(),
    });
    let mut header = vec!["true \\ predicted".to_string()];
    header.extend(m.classes.iter().cloned());
    out.push(Block::Paragraph(
        "Confusion matrix, row-normalised (each row sums to 1: the share of a true class given each prediction)."
            .into(),
    ));
    out.push(Block::Table {
        header,
        rows: m
            .classes
            .iter()
            .zip(&m.confusion)
            .map(|(name, row)| {
                let n: u64 = row.iter().sum();
                let mut cells = vec![name.clone()];
                cells.extend(row.iter().map(|&c| {
                    if n == 0 {
                        "-".into()
                    } else {
                        format!("{:.3}", c as f64 / n as f64)
                    }
                }));
                cells
            })
            .collect(),
    });
    let series: Vec<charts::RocSeries> = m
        .classes
        .iter()
        .zip(&m.roc)
        .filter_map(|(name, r)| {
            r.as_ref().map(|r| charts::RocSeries {
                name: name.clone(),
                fpr: r.fpr.clone(),
                tpr: r.tpr.clone(),
                auc: r.auc,
            })
        })
        .collect();
    let operating = detector
        .card
        .decision
        .operating_point
        .as_ref()
        .map(|o| o.max_false_alarm);
    let (series, marker) = attack_vs_normal(m, detector.normal_index(), operating, series);
    if !series.is_empty() {
        let fig = charts::roc_curves(figures, &series, marker.as_ref())?;
        out.push(Block::Figure {
            svg: fig.svg,
            caption: format!(
                "One-vs-rest ROC curve per class (AUC in the legend); macro AUC {}, micro AUC {}.{}",
                opt(m.roc_auc_macro),
                opt(m.roc_auc_micro),
                marker.map_or(String::new(), |_| {
                    " The attack-vs-normal curve (attack score 1 − P(normal)) is drawn too, \
                     with the detector's decision circled on it."
                        .into()
                })
            ),
        });
    }
    Ok(out)
}

/// Adds the attack-vs-normal ROC curve to `series` and the detector's decision as a
/// marker on it: its false-alarm and detection rates, at the operating point when the
/// model has one (`operating`, `--max-false-alarm`), else at the most probable class. The curve is the
/// normal class's one-vs-rest curve turned around: flagging a window whose
/// `P(normal) ≤ t` detects the attacks the normal curve leaves out at `t` and
/// false-alarms on the normal windows it leaves out, so (FA, DR) = (1 − TPR, 1 − FPR).
fn attack_vs_normal(
    m: &iotids_model::metrics::Metrics,
    normal: Option<usize>,
    operating: Option<f64>,
    mut series: Vec<charts::RocSeries>,
) -> (Vec<charts::RocSeries>, Option<charts::RocMarker>) {
    let Some(normal) = normal else {
        return (series, None);
    };
    let (Some(Some(r)), Some(fa), Some(dr)) =
        (m.roc.get(normal), m.false_alarm_rate, m.detection_rate)
    else {
        return (series, None);
    };
    series.push(charts::RocSeries {
        name: "attack vs normal".into(),
        fpr: r.tpr.iter().rev().map(|t| 1.0 - t).collect(),
        tpr: r.fpr.iter().rev().map(|f| 1.0 - f).collect(),
        auc: r.auc,
    });
    let at = match operating {
        Some(r) => format!("operating point (max false alarm {r})"),
        None => "decision (most probable class)".into(),
    };
    let marker = charts::RocMarker {
        fpr: fa,
        tpr: dr,
        label: format!("{at}: FA {:.2} %, DR {:.2} %", fa * 100.0, dr * 100.0),
    };
    (series, Some(marker))
}

/// What the federation section shows.
#[derive(Debug, Clone, Copy)]
pub struct FederationView<'a> {
    pub config: &'a iotids_federation::FederationConfig,
    pub outcome: &'a iotids_federation::Outcome,
    pub classes: &'a [String],
    /// The federated model's test metrics.
    pub test: Option<&'a iotids_model::metrics::Metrics>,
    pub central: Option<&'a CentralRun>,
}

/// Federation: topology and schedule, the partition histogram, curves over rounds, bytes
/// and failures per round, and the comparison with central training.
///
/// # Errors
/// A picture cannot be written to `figures`.
pub fn federation_sections(
    v: FederationView<'_>,
    figures: &Path,
) -> Result<Vec<Block>, ChartError> {
    let c = v.config;
    let o = v.outcome;
    let p = &o.partition;
    let per_edge: Vec<usize> = (0..c.edges)
        .map(|e| o.edge_of.iter().filter(|&&x| x == e).count())
        .collect();
    let empty = p.devices.iter().filter(|d| d.is_empty()).count();
    let total_bytes: u64 = o
        .rounds
        .iter()
        .map(|r| {
            r.bytes_edge_to_devices
                + r.bytes_devices_to_edge
                + r.bytes_edges_to_cloud
                + r.bytes_cloud_to_edges
        })
        .sum();
    let sum =
        |f: fn(&iotids_federation::RoundRecord) -> usize| -> usize { o.rounds.iter().map(f).sum() };
    let mut out = vec![
        Block::Heading("Federation".into()),
        Block::KeyValues(vec![
            (
                "topology".into(),
                format!(
                    "{} devices → {} edge aggregators ({} devices each) → 1 cloud",
                    c.devices,
                    c.edges,
                    per_edge
                        .iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
            (
                "schedule (HierFAVG)".into(),
                format!(
                    "{} cloud rounds × {} edge rounds × {} local epoch(s); {:.0}% of each edge's devices sampled per edge round",
                    c.rounds,
                    c.edge_rounds,
                    c.local_epochs,
                    c.fraction * 100.0
                ),
            ),
            (
                "partition".into(),
                format!(
                    "{}{} of {} {} (flows stay whole){}",
                    c.partition,
                    match c.partition {
                        iotids_federation::partition::PartitionKind::Dirichlet
                        | iotids_federation::partition::PartitionKind::DirichletTime
                        | iotids_federation::partition::PartitionKind::Quantity => {
                            format!(" (α = {})", c.alpha)
                        }
                        _ => String::new(),
                    },
                    p.units,
                    p.unit,
                    if empty > 0 {
                        format!("; {empty} devices got no rows and sit out")
                    } else {
                        String::new()
                    }
                ),
            ),
            (
                "strategy".into(),
                match c.strategy {
                    iotids_federation::strategy::Strategy::FedProx => {
                        format!("fedprox (μ = {})", c.proximal_mu)
                    }
                    iotids_federation::strategy::Strategy::FedAvgM => format!(
                        "fedavgm (server lr {}, momentum {})",
                        c.server_learning_rate, c.server_momentum
                    ),
                    iotids_federation::strategy::Strategy::FedAdam
                    | iotids_federation::strategy::Strategy::FedYogi => format!(
                        "{} (η {}, β₁ {}, β₂ {}, τ {})",
                        c.strategy, c.eta, c.beta_1, c.beta_2, c.tau
                    ),
                    s => s.to_string(),
                },
            ),
            (
                "aggregation".into(),
                format!(
                    "edges: {}; cloud: {}",
                    c.edge_aggregation, c.cloud_aggregation
                ),
            ),
            (
                "failures".into(),
                format!(
                    "device dropout {}, deadline {}: {} of {} device trainings failed, {} were late",
                    c.device_dropout,
                    c.deadline
                        .map_or("none".to_string(), |d| format!("{d} simulated s")),
                    sum(|r| r.failed),
                    sum(|r| r.sampled),
                    sum(|r| r.late)
                ),
            ),
            (
                "poisoning".into(),
                if o.malicious.is_empty() {
                    "none".into()
                } else {
                    format!(
                        "{} devices ({:?}) attack with {}{}",
                        o.malicious.len(),
                        o.malicious,
                        c.attack,
                        if c.attack == iotids_federation::Attack::Scale {
                            format!(" (factor {})", c.attack_scale)
                        } else {
                            String::new()
                        }
                    )
                },
            ),
            (
                "kept model".into(),
                format!(
                    "round {} (highest validation macro-F1); {:.1} s in all",
                    o.best_round, o.seconds
                ),
            ),
            (
                "traffic".into(),
                format!(
                    "{} per model; {} over all tiers and rounds; raw rows sent: 0",
                    bytes(o.model_bytes),
                    bytes(total_bytes)
                ),
            ),
        ]),
    ];

    // The comparison with central training.
    let opt = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.4}"));
    let last = o.rounds.last();
    let best = o.rounds.get(o.best_round.saturating_sub(1));
    let mut rows = vec![vec![
        "federated".to_string(),
        opt(best.and_then(|r| r.validation_macro_f1)),
        opt(v.test.map(|m| m.accuracy)),
        opt(v.test.map(|m| m.macro_f1)),
        opt(v.test.map(|m| m.weighted_f1)),
        opt(v.test.and_then(|m| m.roc_auc_macro)),
        format!("{:.1}", o.seconds),
    ]];
    if let Some(central) = v.central {
        rows.push(vec![
            "central".to_string(),
            format!("{:.4}", central.validation_macro_f1),
            opt(central.test.as_ref().map(|m| m.accuracy)),
            opt(central.test.as_ref().map(|m| m.macro_f1)),
            opt(central.test.as_ref().map(|m| m.weighted_f1)),
            opt(central.test.as_ref().and_then(|m| m.roc_auc_macro)),
            format!("{:.1}", central.seconds),
        ]);
    }
    out.push(Block::Paragraph(format!(
        "Federated vs central training of the same network on the same split{}.",
        match v.central {
            Some(cr) => {
                let reached = o.first_round_reaching(cr.validation_macro_f1 - 0.01);
                format!(
                    " (central: {} epochs, kept epoch {}); the global model's validation macro-F1 came within 1 point of central's {}",
                    cr.epochs,
                    cr.best_epoch,
                    reached.map_or("in none of the rounds".to_string(), |r| format!(
                        "at round {r} of {}",
                        c.rounds
                    ))
                )
            }
            None => String::new(),
        }
    )));
    out.push(Block::Table {
        header: [
            "training",
            "validation macro-F1",
            "test accuracy",
            "test macro-F1",
            "test weighted-F1",
            "test ROC AUC macro",
            "seconds",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows,
    });

    let fig = charts::partition_histogram(figures, v.classes, &p.class_counts, &o.edge_of)?;
    out.push(Block::Figure {
        svg: fig.svg,
        caption: format!(
            "Training rows of each device by class ({} partition); vertical lines separate edges.",
            c.partition
        ),
    });
    let points: Vec<charts::RoundPoint> = o
        .rounds
        .iter()
        .map(|r| charts::RoundPoint {
            round: r.round,
            val_loss: r.validation_loss.unwrap_or(f64::NAN),
            val_accuracy: r.validation_accuracy.unwrap_or(f64::NAN),
            val_macro_f1: r.validation_macro_f1.unwrap_or(f64::NAN),
        })
        .collect();
    let fig = charts::round_curves(
        figures,
        &points,
        v.central
            .map(|cr| (cr.validation_accuracy, cr.validation_macro_f1)),
    )?;
    out.push(Block::Figure {
        svg: fig.svg,
        caption: "The global model after each cloud round, scored on the validation rows; dashed: central training's kept epoch.".into(),
    });
    out.push(Block::Table {
        header: [
            "round",
            "val loss",
            "val accuracy",
            "val macro-F1",
            "trained",
            "failed",
            "late",
            "bytes down (cloud→edge, edge→device)",
            "bytes up (device→edge, edge→cloud)",
            "simulated s",
            "wall s",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows: o
            .rounds
            .iter()
            .map(|r| {
                vec![
                    r.round.to_string(),
                    opt(r.validation_loss),
                    opt(r.validation_accuracy),
                    opt(r.validation_macro_f1),
                    r.accepted.to_string(),
                    r.failed.to_string(),
                    r.late.to_string(),
                    format!(
                        "{}, {}",
                        bytes(r.bytes_cloud_to_edges),
                        bytes(r.bytes_edge_to_devices)
                    ),
                    format!(
                        "{}, {}",
                        bytes(r.bytes_devices_to_edge),
                        bytes(r.bytes_edges_to_cloud)
                    ),
                    format!("{:.2}", r.simulated_seconds),
                    format!("{:.2}", r.seconds),
                ]
            })
            .collect(),
    });
    if last.is_none() {
        out.push(Block::Paragraph("No rounds ran.".into()));
    }
    Ok(out)
}

/// Bytes in B, kB, MB or GB (powers of 1000).
pub fn bytes(n: u64) -> String {
    match n {
        0..1_000 => format!("{n} B"),
        1_000..1_000_000 => format!("{:.1} kB", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} MB", n as f64 / 1e6),
        _ => format!("{:.2} GB", n as f64 / 1e9),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotids_model::metrics::evaluate;

    /// Two normal and two attack rows, P(normal) = 0.9, 0.4 | 0.6, 0.1. Attack score
    /// 1 − P(normal): attacks 0.4, 0.9, normals 0.1, 0.6, so by hand the attack-vs-normal
    /// curve runs (0, 0), (0, ½), (½, ½), (½, 1), (1, 1) with area ¾, and the most
    /// probable class flags one normal and one attack row: (FA, DR) = (½, ½).
    #[test]
    fn attack_vs_normal_turns_the_normal_curve_and_marks_the_decision() {
        let classes = vec!["normal".to_string(), "attack".to_string()];
        let p = [0.9f32, 0.4, 0.6, 0.1];
        let scores: Vec<f32> = p.iter().flat_map(|&q| [q, 1.0 - q]).collect();
        let m = evaluate(&[0, 0, 1, 1], &[0, 1, 0, 1], &scores, &classes, Some(0));
        let (series, marker) = attack_vs_normal(&m, Some(0), None, Vec::new());
        let curve = &series[0];
        assert_eq!(curve.name, "attack vs normal");
        let points: Vec<(f64, f64)> = curve
            .fpr
            .iter()
            .copied()
            .zip(curve.tpr.iter().copied())
            .collect();
        for want in [(0.0, 0.0), (0.0, 0.5), (0.5, 0.5), (0.5, 1.0), (1.0, 1.0)] {
            assert!(points.contains(&want), "{want:?} in {points:?}");
        }
        assert!(
            points
                .windows(2)
                .all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1)
        );
        let area: f64 = points
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum();
        assert!((area - 0.75).abs() < 1e-12 && (curve.auc - 0.75).abs() < 1e-12);
        let marker = marker.unwrap();
        assert_eq!((marker.fpr, marker.tpr), (0.5, 0.5));
        assert_eq!(
            marker.label,
            "decision (most probable class): FA 50.00 %, DR 50.00 %"
        );
        let (_, at) = attack_vs_normal(&m, Some(0), Some(0.01), Vec::new());
        assert!(
            at.unwrap()
                .label
                .starts_with("operating point (max false alarm 0.01)")
        );
        // Without a normal class there is nothing to mark.
        let (series, marker) = attack_vs_normal(&m, None, None, Vec::new());
        assert!(series.is_empty() && marker.is_none());
    }
}
