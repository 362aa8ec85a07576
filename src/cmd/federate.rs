//! `iotids federate`: hierarchical federated training of the GRU, the same network trained
//! centrally on the same split for comparison, and optionally every aggregation rule under
//! poisoning.
//!
//! The file is read and split as `train` does; iotids-federation deals the training rows to
//! devices; the pipeline is fitted by the statistics round from the devices' summaries
//! (`--pipeline summaries`, the default: no row leaves a device; `iotids_data::federated`)
//! or on the pooled training rows (`--pipeline pooled`, for comparison); the devices run
//! the rounds; the kept global model is written as an ordinary model directory and
//! evaluated on the test rows like any other.
//!
//! By default every node's windows and timing features come from the one pooled table.
//! With `--node-tables` every node works on its own table, as deployed nodes do: a
//! device's rows, the validation rows and the test rows are each cut from the file with
//! their timing features and flow windows computed over their own rows only
//! (`OwnTables`), which is what reading the files `iotids deal` writes gives, and each is
//! windowed by the same function the networked nodes use (`iotids_net::context::windows`).
//! A networked run on those files and `federate --node-tables` then give the same model
//! and the same test score (tests/network.rs). The central comparison always trains on
//! the pooled table: one capture point sees every row.

use std::process::ExitCode;

use anyhow::{Context, Result};
use iotids_data::Dataset;
use iotids_data::federated::{compare, fit_federated_tables, fit_federated_with_cost};
use iotids_data::prepare::Prepared;
use iotids_data::split::SplitConfig;
use iotids_federation::experiments::{self, rounds_history};
use iotids_federation::partition::{Partition, Rows};
use iotids_federation::{Local, Outcome, PipelineFit, Task, ValidationSite};
use iotids_model::artifact::Detector;
use iotids_model::evaluation::Scored;
use iotids_model::examples::{Examples, SCORE_BATCH};
use iotids_model::params::from_flat;
use iotids_model::train::{Optimizer, TrainConfig};
use iotids_net::context::{Windows, windows};
use iotids_report as report;
use report::federation as fed_report;
use report::html::{Block, Report};
use report::pages::FederationView;

use super::prepare;
use super::train::{read_for, score_read, score_test_rows};
use crate::job::{FederateJob, Ui};
use crate::output::{
    csv_file, epochs_line, evaluation_notes, finish_report, print, start_output, write_csv_rows,
    write_evaluation, write_file,
};
use crate::progress;

pub fn run(job: &FederateJob, ui: Ui) -> Result<ExitCode> {
    let learn = &job.learn;
    let cfg = &job.federation;
    // With --node-tables each node's table is timed again over its own rows: keep what
    // the timing came from.
    // Validation on the devices needs each device's own table (its later traffic after
    // its earlier), so it implies node tables.
    let on_devices = cfg.validate_on == ValidationSite::Devices;
    if on_devices && !job.node_tables {
        anyhow::bail!(
            "--pooled-table with --validate-on devices: a device validates on its own table (drop one of them)"
        );
    }
    let node_tables = job.node_tables;
    let mut input = learn.input.clone();
    input.ingest.keep_timing_source = node_tables;
    let mut loaded = prepare::load(&input, &learn.prepare, ui)?;
    // The partition comes first: the statistics round asks the devices for summaries of
    // their own rows. `deal` is what `federate` would deal (same seed, same partition).
    // Devices that validate are dealt the validation rows too (flows whole), and each
    // cuts its own table into training and validation rows.
    let mut part = {
        let p = &loaded.prepared;
        let ds = &p.dataset;
        iotids_federation::deal(
            Rows {
                rows: &dealt_rows(p, on_devices),
                labels: &ds.labels,
                classes: ds.n_classes(),
                flows: ds.flows.as_deref(),
                hosts: ds.hosts.as_deref(),
            },
            cfg,
        )?
    };
    // With --node-tables, what each node holds as deployed nodes hold it: a device's
    // rows, the validation rows and the test rows, each a table of its own whose flow
    // windows and timing features cover its own rows only (`iotids deal` writes the same
    // rows to files).
    let own = if node_tables {
        // The split as given (each device resolves it against its own table).
        let split = on_devices.then_some(&learn.prepare.split);
        Some(OwnTables::cut(&loaded.prepared, &mut part, split)?)
    } else {
        None
    };
    let pipeline_json = fit_pipeline(&mut loaded, own.as_ref(), &mut part, cfg.pipeline, ui)?;
    let p = &loaded.prepared;
    let out = &learn.out;
    let figures = start_output(out, p, &p.config)?;

    let ds = &p.dataset;
    // The pooled table's windows (the central model of the comparison, which sees every
    // row at one capture point, trains on them; without --node-tables the devices too).
    let (sequences, gru) = loaded.windows_and_network(learn)?;
    // With node tables: each device's and the validation rows' windows, as the nodes make
    // them.
    let (device_windows, validation_windows) = match &own {
        Some(own) => (
            own.devices
                .iter()
                .map(|t| windows(t, &p.pipeline, sequences.k, learn.window_by))
                .collect::<Result<Vec<_>, _>>()?,
            Some(windows(
                &own.validation,
                &p.pipeline,
                sequences.k,
                learn.window_by,
            )?),
        ),
        None => (Vec::new(), None),
    };
    // A device trains on its training rows' windows and, validating, scores its
    // validation rows' windows (both cut from its whole table).
    let (device_train, device_validate): (Vec<Vec<usize>>, Vec<Vec<usize>>) = match &own {
        Some(own) => device_windows
            .iter()
            .zip(&own.device_rows)
            .map(|(w, (train, validate))| (w.labelled(train), w.labelled(validate)))
            .unzip(),
        None => (Vec::new(), Vec::new()),
    };
    let device_examples: Vec<Examples<'_>> = device_windows
        .iter()
        .zip(&device_train)
        .map(|(w, rows)| Examples {
            rows,
            ..examples(w)
        })
        .collect();
    let device_validation: Vec<Examples<'_>> = if on_devices {
        device_windows
            .iter()
            .zip(&device_validate)
            .map(|(w, rows)| Examples {
                rows,
                ..examples(w)
            })
            .collect()
    } else {
        Vec::new()
    };
    let local = validation_windows.as_ref().map(|v| Local {
        devices: &device_examples,
        validation: examples(v),
        device_validation: &device_validation,
    });
    let task = Task {
        model: &gru,
        train: &learn.train,
        class_weights: &p.pipeline.class_weights,
        sequences: &sequences,
        labels: &ds.labels,
        flows: ds.flows.as_deref(),
        hosts: ds.hosts.as_deref(),
        train_rows: &p.split.train,
        validation_rows: &p.split.validation,
        local: local.as_ref(),
    };
    if let Some(own) = &own {
        print(&format!(
            "node tables: {} devices, {} validation and {} test rows, each timed and windowed over its own rows",
            own.devices.len(),
            own.validation.n_rows(),
            own.test.n_rows()
        ))?;
    }
    if on_devices {
        let windows: usize = device_validate.iter().map(Vec::len).sum();
        let holding = device_validate.iter().filter(|v| !v.is_empty()).count();
        print(&format!(
            "validation on the devices: {windows} windows of the later part of their own traffic, on {holding} of {} devices; the cloud keeps the round by the sum of their confusion matrices",
            device_validate.len()
        ))?;
    }
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
    let mut on_round = progress::rounds(cfg.rounds, ui.quiet);
    let outcome = iotids_federation::federate_dealt(&task, cfg, part, &mut on_round)?;
    drop(on_round);
    print(&fed_report::partition_table(&outcome, &p.pipeline.classes))?;

    let net = from_flat(&gru, &iotids_model::backend::device(), &outcome.weights)?;
    let card_train = device_training(cfg, &learn.train);
    let (optimizer, learning_rate) = (card_train.optimizer, card_train.learning_rate);
    let detector = Detector::new(
        p.pipeline.clone(),
        gru.clone(),
        sequences.k,
        learn.window_by,
        card_train,
        rounds_history(&outcome),
        net,
    );
    detector.save(out)?;
    write_csv_rows(&out.join("rounds.csv"), &outcome.rounds)?;
    write_partition(&out.join("partition.csv"), &outcome, &p.pipeline.classes)?;
    write_file(&out.join("federation.toml"), cfg.to_toml())?;

    // Evaluation: the held-out rows of the same file, or the --test file.
    // The --test file is read once; the federated and the central model both score it.
    let test_file = match &job.test {
        Some(path) => Some((path, read_for(&detector, path, ui)?, p.train_hashes())),
        None => None,
    };
    // A model scored on the --test file, else on the node tables' test rows; without
    // either, the pooled table's test rows (in-process, below).
    let score_apart = |d: &Detector| -> Result<Option<Scored>> {
        match (&test_file, &own) {
            (Some((path, test, hashes)), _) => Ok(Some(score_read(
                d,
                path,
                test,
                Some(hashes),
                SCORE_BATCH,
                ui,
            )?)),
            (None, Some(own)) => own.score_test(d, p, ui),
            (None, None) => Ok(None),
        }
    };
    let pooled_scoring = test_file.is_none() && own.is_none();
    let scored = if pooled_scoring {
        score_test_rows(&detector, &loaded, &sequences, ui)
    } else {
        score_apart(&detector)?
    };
    let metrics = match &scored {
        Some(s) => Some(write_evaluation(&detector, s, out)?),
        None => None,
    };
    let central = if job.central {
        print("== central training of the same network on the same split, for comparison ==")?;
        let mut on_event = progress::training(learn.train.epochs, ui.quiet);
        // The central model trains on the pooled table; its test is the federated one's.
        let central_task = Task {
            local: None,
            ..task
        };
        // Without node tables the central model scores the split's test rows in the
        // pooled table, as the federated one does.
        let pooled_test: &[usize] = if pooled_scoring { &p.split.test } else { &[] };
        let (net, mut run, history) = experiments::central_training(
            &central_task,
            &p.pipeline.classes,
            pooled_test,
            &mut on_event,
        )?;
        drop(on_event);
        print(&epochs_line(&history))?;
        let central = Detector::new(
            p.pipeline.clone(),
            gru.clone(),
            sequences.k,
            learn.window_by,
            learn.train.clone(),
            history,
            net,
        );
        if let Some(s) = score_apart(&central)? {
            run.test = Some(s.metrics(&central));
        }
        Some(run)
    } else {
        None
    };
    let robustness = if job.robustness {
        let mut bar = None;
        // Each rule's model scores the test rows as the main run's does.
        let own_test = match &own {
            Some(own) => Some(windows(
                &own.test,
                &p.pipeline,
                sequences.k,
                learn.window_by,
            )?),
            None => None,
        };
        let test = match &own_test {
            Some(w) => examples(w),
            None => Examples {
                sequences: &sequences,
                labels: &ds.labels,
                rows: &p.split.test,
            },
        };
        let rows = experiments::robustness(
            &task,
            cfg,
            // The main run's partition (dealt before the table's classes were renumbered).
            Some(&outcome.partition),
            &p.pipeline.classes,
            test,
            &mut |rule, attack| {
                if let Some(b) = bar.replace(progress::step(
                    &format!("robustness: {rule}, attack {attack}"),
                    ui.quiet,
                )) {
                    b.finish_and_clear();
                }
            },
        );
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        let rows = rows?;
        write_csv_rows(&out.join("robustness.csv"), &rows)?;
        print(&fed_report::robustness_table(&rows))?;
        Some(rows)
    } else {
        None
    };
    let mut json = fed_report::summary_json(cfg, &outcome, metrics.as_ref(), central.as_ref());
    json["pipeline"] = pipeline_json;
    json["node_tables"] = serde_json::Value::Bool(own.is_some());
    json["validation"] = if on_devices {
        serde_json::json!({
            "on": "devices",
            "windows": device_validate.iter().map(Vec::len).sum::<usize>(),
            "devices": device_validate.iter().filter(|v| !v.is_empty()).count(),
        })
    } else {
        serde_json::json!({ "on": "cloud", "rows": p.split.validation.len() })
    };
    write_file(
        &out.join("federation.json"),
        serde_json::to_string_pretty(&json)?,
    )?;
    print(&fed_report::comparison_line(
        &outcome,
        metrics.as_ref(),
        central.as_ref(),
    ))?;
    if let Some(line) = fed_report::privacy_line(cfg, &outcome) {
        print(&line)?;
    }

    let mut page = Report::new(
        "iotids: federated GRU intrusion detector",
        format!(
            "hierarchical federated training on {}",
            learn.input.path.display()
        ),
    );
    page.push(Block::KeyValues(vec![
        ("model directory".into(), out.display().to_string()),
        (
            "network".into(),
            fed_report::network_summary(&gru, sequences.k),
        ),
        (
            "local training".into(),
            format!(
                "{} lr {} with fresh state each edge round, batch {}, {} cross-entropy{}{}",
                match optimizer {
                    Optimizer::Adam => "Adam".to_string(),
                    Optimizer::Sgd { momentum } => format!("SGD (momentum {momentum})"),
                },
                learning_rate,
                learn.train.batch_size,
                if cfg.local_class_weights {
                    "class-weighted"
                } else {
                    "unweighted"
                },
                if cfg.device_mu() > 0.0 {
                    format!(", proximal term μ = {}", cfg.device_mu())
                } else {
                    String::new()
                },
                if cfg.normalized_averaging {
                    "; edges average changes normalised by each device's local path (FedNova)"
                } else {
                    ""
                }
            ),
        ),
        (
            "federation settings".into(),
            cfg.to_toml().replace('\n', "; "),
        ),
        (
            "each node's features".into(),
            if own.is_some() {
                "--node-tables: each device's, the validation and the test rows' timing features and flow windows over their own rows, as the dealt files give networked nodes".into()
            } else {
                "one pooled table: timing features over the whole file and test rows scored inside it, which overstates what networked nodes reach (--node-tables gives theirs)".into()
            },
        ),
        (
            "kept round chosen on".into(),
            if on_devices {
                format!(
                    "the devices' own later traffic ({} windows on {} devices): each scores every round's model, the cloud sums their confusion matrices",
                    device_validate.iter().map(Vec::len).sum::<usize>(),
                    device_validate.iter().filter(|v| !v.is_empty()).count()
                )
            } else {
                format!(
                    "the cloud's validation rows ({} rows)",
                    p.split.validation.len()
                )
            },
        ),
    ]));
    for b in report::pages::federation_sections(
        FederationView {
            config: cfg,
            outcome: &outcome,
            classes: &p.pipeline.classes,
            test: metrics.as_ref(),
            central: central.as_ref(),
        },
        &figures,
    )? {
        page.push(b);
    }
    for b in fed_report::privacy_sections(cfg, &outcome) {
        page.push(b);
    }
    if let Some(rows) = &robustness {
        for b in fed_report::robustness_sections(rows, cfg, &figures)? {
            page.push(b);
        }
    }
    if let (Some(s), Some(m)) = (&scored, &metrics) {
        for b in report::pages::evaluation_sections(
            m,
            &format!("federated model, {}", s.what),
            &figures,
            &detector,
        )? {
            page.push(b);
        }
        for b in evaluation_notes(s) {
            page.push(b);
        }
    }
    let context = loaded.context(format!("trained on {}", learn.input.path.display()));
    finish_report(
        page,
        &context,
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

/// Fits the run's pipeline as `how` says. `summaries`: the statistics round over the
/// devices' rows (`part`), which replaces the pooled pipeline `prepare` fitted; the table's
/// classes are renumbered to the pipeline's (sorted by name) and the partition recounted.
/// Returns federation.json's `pipeline` object: how it was fitted, what the round sent, and
/// how it differs from the pooled pipeline.
fn fit_pipeline(
    loaded: &mut prepare::Loaded,
    own: Option<&OwnTables>,
    part: &mut Partition,
    how: PipelineFit,
    ui: Ui,
) -> Result<serde_json::Value> {
    let p = &mut loaded.prepared;
    if how == PipelineFit::Pooled {
        return Ok(serde_json::json!({
            "fitted": how.name(),
            "rows": p.pipeline.fitted_rows,
        }));
    }
    let bar = progress::step(
        "statistics round: fitting the pipeline from the devices' summaries",
        ui.quiet,
    );
    let started = std::time::Instant::now();
    let fitted = match &own {
        // Each device summarises its own table (its timing features over its own rows).
        Some(own) => {
            let tables: Vec<(&Dataset, &[usize])> = own
                .devices
                .iter()
                .zip(&own.device_rows)
                .map(|(t, (train, _))| (t, train.as_slice()))
                .collect();
            fit_federated_tables(&tables, p.pipeline.ingest.clone(), &p.config.pipeline)
        }
        None => {
            let rows: Vec<&[usize]> = part.devices.iter().map(Vec::as_slice).collect();
            fit_federated_with_cost(
                &p.dataset,
                &rows,
                p.pipeline.ingest.clone(),
                &p.config.pipeline,
            )
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let (fed, cost) = fitted.context("the statistics round")?;
    let diff = compare(&fed, &p.pipeline);
    // (The node tables keep their numbering: their windows map classes by name.)
    let map = p.dataset.reorder_classes(&fed.classes)?;
    for c in &mut p.split.classes_without_test {
        *c = map[*c as usize];
    }
    part.recount(&p.dataset.labels, fed.classes.len());
    print(&format!(
        "statistics round: {} requests, {} devices, {:.1} kB of summaries up (largest {:.1} kB); {}",
        cost.requests,
        part.devices.len(),
        cost.bytes_up as f64 / 1e3,
        cost.largest_answer as f64 / 1e3,
        if diff.same_features() {
            "the same features as the pooled pipeline".to_string()
        } else {
            format!(
                "features differ from the pooled pipeline (kept only here {:?}, only there {:?})",
                diff.selected_only_summaries, diff.selected_only_pooled
            )
        }
    ))?;
    let pooled_rows = p.pipeline.fitted_rows;
    p.pipeline = fed;
    Ok(serde_json::json!({
        "fitted": how.name(),
        "rows": pooled_rows,
        "statistics_round": cost,
        "statistics_round_seconds": seconds,
        "vs_pooled": diff,
        "same_features_as_pooled": diff.same_features(),
    }))
}

/// What a device ran, for the model card: local epochs, no early stopping, the devices'
/// optimiser, learning rate and class weighting.
pub fn device_training(
    cfg: &iotids_federation::FederationConfig,
    train: &TrainConfig,
) -> TrainConfig {
    let (optimizer, learning_rate) = cfg.local_optimizer(train.learning_rate);
    TrainConfig {
        epochs: cfg.local_epochs,
        patience: 0,
        optimizer,
        learning_rate,
        class_weights: cfg.local_class_weights,
        ..train.clone()
    }
}

/// partition.csv: each device's edge, whether it poisons, its rows and rows per class.
fn write_partition(path: &std::path::Path, o: &Outcome, classes: &[String]) -> Result<()> {
    let mut w = csv_file(path)?;
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
        .with_context(|| format!("{}: cannot write", path.display()))
}

/// The tables deployed nodes hold: each device's training rows, the validation rows (the
/// cloud's) and the test rows, each cut from the pooled table with its timing features
/// computed again over its own rows ([`Dataset::retime`]), as reading the files
/// `iotids deal` writes gives them. A node's flow windows then reach back only over its
/// own rows.
struct OwnTables {
    devices: Vec<Dataset>,
    /// Each device's training rows and validation rows in its table (all and none when
    /// the cloud validates).
    device_rows: Vec<(Vec<usize>, Vec<usize>)>,
    validation: Dataset,
    test: Dataset,
}

impl OwnTables {
    /// The tables of the rows `part` deals. With `device_split` each device cuts its own
    /// table by it ([`iotids_net::context::device_split`], as a networked device does) and
    /// `part` is left holding the training rows only.
    fn cut(
        p: &Prepared,
        part: &mut Partition,
        device_split: Option<&SplitConfig>,
    ) -> Result<OwnTables> {
        let ds = &p.dataset;
        if ds.report.timing.is_some() && ds.timing_source.is_none() {
            anyhow::bail!(
                "{}: the timing features were read without what they came from, so the nodes' tables cannot be timed on their own",
                ds.path.display()
            );
        }
        let own = |rows: &[usize]| {
            let mut t = ds.subset(rows);
            t.retime();
            t
        };
        let devices: Vec<Dataset> = part.devices.iter().map(|r| own(r)).collect();
        // Each device cuts its table as a networked device does.
        let device_rows = devices
            .iter()
            .enumerate()
            .map(|(d, t)| {
                iotids_net::context::device_rows(t, device_split)
                    .with_context(|| format!("device {d}'s validation rows"))
            })
            .collect::<Result<Vec<_>>>()?;
        if device_split.is_some() {
            // The partition's rows are what each device trains on.
            for (rows, (train, _)) in part.devices.iter_mut().zip(&device_rows) {
                *rows = train.iter().map(|&i| rows[i]).collect();
            }
            part.recount(&ds.labels, ds.n_classes());
        }
        Ok(OwnTables {
            devices,
            device_rows,
            validation: own(&p.split.validation),
            test: own(&p.split.test),
        })
    }

    /// Scores the test rows as a deployed node scores the test file: on their own.
    fn score_test(&self, detector: &Detector, p: &Prepared, ui: Ui) -> Result<Option<Scored>> {
        if self.test.n_rows() == 0 {
            eprintln!("note: no test rows (--fractions gives the test side 0): no evaluation");
            return Ok(None);
        }
        let bar = progress::step("scoring the test rows", ui.quiet);
        let what = format!(
            "held-out test rows of {} ({:?} split), read on their own as a deployed node reads them",
            p.dataset.path.display(),
            p.config.split.method
        );
        let scored = detector.score_table(what, &self.test, None, SCORE_BATCH);
        bar.finish_and_clear();
        Ok(Some(scored.context("the test rows")?))
    }
}

/// The rows dealt to devices: the training rows, and the validation rows too when the
/// devices validate (each then cuts its own table; `deal` writes the same).
pub(super) fn dealt_rows(p: &Prepared, on_devices: bool) -> Vec<usize> {
    if on_devices {
        let mut rows = [&p.split.train[..], &p.split.validation[..]].concat();
        rows.sort_unstable();
        rows
    } else {
        p.split.train.clone()
    }
}

/// A node table's windows as training and validation examples (its rows of known
/// classes, labels in the pipeline's numbering).
fn examples(w: &Windows) -> Examples<'_> {
    Examples {
        sequences: &w.sequences,
        labels: &w.labels,
        rows: &w.rows,
    }
}
