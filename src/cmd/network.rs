//! The federation across machines: `certs`, `deal`, `cloud`, `edge`, `device`. The roles
//! themselves are in iotids-net; this is their command line: reading files, printing,
//! and writing what `federate` writes.

use std::collections::HashMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use iotids_data::pipeline::IngestSpec;
use iotids_federation::ValidationSite;
use iotids_federation::partition::Rows;
use iotids_model::artifact::Detector;
use iotids_model::examples::SCORE_BATCH;
use iotids_model::params::from_flat;
use iotids_model::train::History;
use iotids_model::train::Optimizer;
use iotids_net::certs::TlsFiles;
use iotids_net::client::message_limit;
use iotids_net::cloud::{CloudOptions, CloudOutcome};
use iotids_net::context::Reader;
use iotids_report::federation as fed_report;
use iotids_report::html::{Block, Report};

use super::prepare;
use super::train::{read_for, score_read};
use crate::cli::NodeArgs;
use crate::job::{CloudJob, DeviceJob, DevicePoolJob, EdgeJob, FederateJob, LearnJob, Ui};
use crate::output::{print, read, write_csv_rows, write_evaluation, write_file};
use crate::progress;

pub(super) fn tls(node: &NodeArgs) -> TlsFiles {
    TlsFiles {
        ca: node.ca.clone(),
        cert: node.cert.clone(),
        key: node.key.clone(),
    }
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("iotids-net")
        .build()
        .context("cannot start the network runtime")
}

/// `iotids certs`.
pub fn certs(
    out: &Path,
    edges: usize,
    devices: usize,
    sans: &[String],
    days: u32,
) -> Result<ExitCode> {
    let w = iotids_net::certs::make(out, edges, devices, sans, days)?;
    print(&format!(
        "wrote a federation CA and certificates for the cloud, {edges} edges and {devices} devices ({} files) to {}; keep ca.key offline",
        w.files.len(),
        out.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Where a source line goes.
#[derive(Clone, Copy)]
enum Dest {
    /// A device's file, and with `true` validation.csv as well.
    Device(usize, bool),
    Validation,
    Test,
}

/// `iotids deal`.
pub fn deal(job: &FederateJob, ui: Ui) -> Result<ExitCode> {
    let learn = &job.learn;
    let cfg = &job.federation;
    let path = &learn.input.path;
    if iotids_packets::labelled::is_labelled_captures(path) || path.as_os_str() == "-" {
        bail!(
            "{}: `deal` copies rows of a CSV file; extract captures to CSV first (`iotids extract`)",
            path.display()
        );
    }
    let loaded = prepare::load(&learn.input, &learn.prepare, ui)?;
    let p = &loaded.prepared;
    let ds = &p.dataset;
    // What `federate` deals: devices that validate hold the validation rows too.
    let on_devices = cfg.validate_on == ValidationSite::Devices;
    let part = iotids_federation::deal(
        Rows {
            rows: &super::federate::dealt_rows(p, on_devices),
            labels: &ds.labels,
            classes: ds.n_classes(),
            flows: ds.flows.as_deref(),
            hosts: ds.hosts.as_deref(),
        },
        cfg,
    )?;
    let mut dest: HashMap<u64, Dest> = HashMap::with_capacity(ds.n_rows());
    for &r in &p.split.validation {
        dest.insert(ds.lines[r], Dest::Validation);
    }
    for (d, rows) in part.devices.iter().enumerate() {
        for &r in rows {
            // A validation row a device holds also stays in validation.csv, the file whose
            // layout the cloud reads (it scores nothing on it then).
            let also = dest.contains_key(&ds.lines[r]);
            dest.insert(ds.lines[r], Dest::Device(d, also));
        }
    }
    for &r in &p.split.test {
        dest.insert(ds.lines[r], Dest::Test);
    }
    let out = &learn.out;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    // The physical line of each record, counted as ingest counts it (the byte after the
    // previous record's terminator, past blank lines), so rows are found by `ds.lines`.
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(bytes.as_slice());
    let (mut scanned, mut line) = (0usize, 1u64);
    let header = reader.byte_headers()?.clone();
    let open = |name: String| -> Result<csv::Writer<std::fs::File>> {
        let p = out.join(name);
        let mut w =
            csv::Writer::from_path(&p).with_context(|| format!("{}: cannot write", p.display()))?;
        w.write_byte_record(&header)?;
        Ok(w)
    };
    let mut devices: Vec<csv::Writer<std::fs::File>> = (0..cfg.devices)
        .map(|d| open(format!("device-{d}.csv")))
        .collect::<Result<_>>()?;
    let mut validation = open("validation.csv".into())?;
    let mut test = open("test.csv".into())?;
    let mut written = vec![0u64; cfg.devices + 2];
    let mut record = csv::ByteRecord::new();
    while reader
        .read_byte_record(&mut record)
        .with_context(|| format!("{}: cannot read a record", path.display()))?
    {
        let mut start = record
            .position()
            .map_or(0, |p| p.byte() as usize)
            .max(scanned)
            .min(bytes.len());
        while start < bytes.len() && matches!(bytes[start], b'\r' | b'\n') {
            start += 1;
        }
        line += memchr::memchr_iter(b'\n', &bytes[scanned..start]).count() as u64;
        scanned = start;
        match dest.get(&line) {
            Some(Dest::Device(d, also)) => {
                devices[*d].write_byte_record(&record)?;
                written[*d] += 1;
                if *also {
                    validation.write_byte_record(&record)?;
                    written[cfg.devices] += 1;
                }
            }
            Some(Dest::Validation) => {
                validation.write_byte_record(&record)?;
                written[cfg.devices] += 1;
            }
            Some(Dest::Test) => {
                test.write_byte_record(&record)?;
                written[cfg.devices + 1] += 1;
            }
            None => {}
        }
    }
    for w in devices.iter_mut().chain([&mut validation, &mut test]) {
        w.flush()?;
    }
    let expected: Vec<u64> = part
        .devices
        .iter()
        .map(|r| r.len() as u64)
        .chain([p.split.validation.len() as u64, p.split.test.len() as u64])
        .collect();
    if written != expected {
        bail!(
            "{}: wrote {written:?} rows where the deal has {expected:?} (the file changed while read?)",
            path.display()
        );
    }
    write_file(&out.join("federation.toml"), cfg.to_toml())?;
    let summary = serde_json::json!({
        "source": path.display().to_string(),
        "devices": (0..cfg.devices).map(|d| serde_json::json!({
            "device": d,
            "edge": cfg.edge_of(d),
            "rows": written[d],
            "file": format!("device-{d}.csv"),
        })).collect::<Vec<_>>(),
        "validation_rows": written[cfg.devices],
        "test_rows": written[cfg.devices + 1],
        "unit": part.unit,
    });
    write_file(
        &out.join("deal.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    print(&format!(
        "dealt {} {} rows to {} devices ({} edges), {} validation rows and {} test rows into {}",
        written[..cfg.devices].iter().sum::<u64>(),
        if on_devices {
            "training and validation (each device cuts its own)"
        } else {
            "training"
        },
        cfg.devices,
        cfg.edges,
        written[cfg.devices],
        written[cfg.devices + 1],
        out.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `iotids cloud`.
pub fn cloud(job: &CloudJob, ui: Ui) -> Result<ExitCode> {
    let learn = &job.schedule.learn;
    let cfg = &job.schedule.federation;
    let path = learn.input.path.clone();
    let (spec, window) = devices_spec(learn, ui)?;
    let rt = runtime()?;
    let (listener, addr) = iotids_net::edge::bind(job.listen)?;
    print(&format!("iotids cloud: listening on {addr}"))?;
    let options = CloudOptions {
        tls: tls(&job.node),
        federation: cfg.clone(),
        pipeline: learn.prepare.pipeline.clone(),
        split: learn.prepare.split.clone(),
        network: learn.net.clone(),
        train: learn.train.clone(),
        window,
        window_by: learn.window_by,
        checkpoint: job.checkpoint.clone(),
        device_deadline: job.schedule.device_deadline,
        edge_deadline: job.edge_deadline,
        statistics_deadline: job.schedule.statistics_deadline,
        message_limit: message_limit(job.node.max_message_mb),
    };
    let reader: Reader =
        Box::new(move |opts| read(&path, opts, true).map_err(|e| format!("{e:#}")));
    let mut on_round = progress::rounds(cfg.rounds, ui.quiet);
    let outcome = iotids_net::cloud::run(&options, listener, &rt, spec, reader, &mut on_round)?;
    drop(on_round);
    write_cloud(
        &job.schedule.learn,
        &job.schedule.federation,
        job.schedule.test.as_deref(),
        &outcome,
        "network",
        ui,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// How devices read their traffic (the validation file's layout read with the learning
/// options) and the records per window (1 when the file has no flows and no --window).
pub(super) fn devices_spec(learn: &LearnJob, ui: Ui) -> Result<(IngestSpec, usize)> {
    let first = read(&learn.input.path, &learn.input.ingest, ui.quiet)?;
    let ingest = &learn.input.ingest;
    let spec = IngestSpec {
        format: first.format,
        label: first.label_column.clone(),
        drop: ingest.drop.clone(),
        keep: ingest.keep.clone(),
        categorical: ingest.categorical.clone(),
        flow_timing: first.report.timing.is_some(),
        flow_index_cap: first.flow_index_cap(),
    };
    let window = if first.flows.is_none() && !learn.window_given {
        1
    } else {
        learn.window.get()
    };
    Ok((spec, window))
}

/// The model directory, rounds.csv, federation.toml, federation.json and report.html of
/// a cloud's run (`mode`: network or flower).
pub(super) fn write_cloud(
    learn: &LearnJob,
    cfg: &iotids_federation::FederationConfig,
    test: Option<&Path>,
    o: &CloudOutcome,
    mode: &str,
    ui: Ui,
) -> Result<Option<f64>> {
    let out = &learn.out;
    std::fs::create_dir_all(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let net = from_flat(&o.network, &iotids_model::backend::device(), &o.weights)?;
    let card_train = super::federate::device_training(cfg, &learn.train);
    let (optimizer, learning_rate) = (card_train.optimizer, card_train.learning_rate);
    let history = History {
        epochs: o
            .rounds
            .iter()
            .map(iotids_federation::experiments::round_epoch)
            .collect(),
        best_epoch: o.best_round,
        stopped_early: false,
        seconds: o.seconds,
    };
    let detector = Detector::new(
        o.pipeline.clone(),
        o.network.clone(),
        o.window,
        o.window_by,
        card_train,
        history,
        net,
    );
    detector.save(out)?;
    write_csv_rows(&out.join("rounds.csv"), &o.rounds)?;
    write_file(&out.join("federation.toml"), cfg.to_toml())?;
    let metrics = match test {
        Some(path) => {
            let ds = read_for(&detector, path, ui)?;
            let s = score_read(&detector, path, &ds, None, SCORE_BATCH, ui)?;
            Some(write_evaluation(&detector, &s, out)?)
        }
        None => None,
    };
    let sum = |f: fn(&iotids_federation::RoundRecord) -> u64| o.rounds.iter().map(f).sum::<u64>();
    let bytes = serde_json::json!({
        "cloud_to_edges": sum(|r| r.bytes_cloud_to_edges),
        "edges_to_cloud": sum(|r| r.bytes_edges_to_cloud),
        "edges_to_devices": sum(|r| r.bytes_edge_to_devices),
        "devices_to_edges": sum(|r| r.bytes_devices_to_edge),
    });
    let kept = o.rounds.iter().find(|r| r.round == o.best_round);
    let json = serde_json::json!({
        "mode": mode,
        "run": o.run,
        "settings": cfg,
        "rounds": cfg.rounds,
        "rounds_completed": o.rounds.len(),
        "best_round": o.best_round,
        "best_round_validation_macro_f1": kept.and_then(|r| r.validation_macro_f1),
        "resumed_after_round": o.resumed_after,
        "window": o.window,
        "window_by": o.window_by.name(),
        "device_rows": o.device_rows,
        "pipeline": { "fitted": "summaries", "features": o.pipeline.selected.len(), "classes": o.pipeline.classes },
        "network": {
            "refused_connections": o.refused,
            "rejected_answers": o.rejected,
            "bytes": bytes,
            "seconds": o.seconds,
            "statistics_round": o.statistics,
        },
        "edges": o.edges.iter().map(|(round, outcomes)| serde_json::json!({
            "round": round,
            "outcomes": outcomes,
        })).collect::<Vec<_>>(),
        "test": metrics.as_ref().map(|m| serde_json::json!({
            "accuracy": m.accuracy,
            "macro_f1": m.macro_f1,
        })),
        "privacy": o.privacy,
        "secure_aggregation": fed_report::secure_json_of(cfg, &o.rounds),
    });
    write_file(
        &out.join("federation.json"),
        serde_json::to_string_pretty(&json)?,
    )?;

    let mut page = Report::new(
        format!("iotids: federated GRU intrusion detector ({mode} run)"),
        format!(
            "cloud of run {}, validated on {}",
            o.run,
            learn.input.path.display()
        ),
    );
    page.push(Block::KeyValues(vec![
        ("model directory".into(), out.display().to_string()),
        (
            "network".into(),
            format!(
                "GRU {} → {} hidden × {} layer(s) → {} classes, window {} by {}",
                o.network.input,
                o.network.hidden,
                o.network.layers,
                o.network.classes,
                o.window,
                o.window_by.name()
            ),
        ),
        (
            "local training".into(),
            match optimizer {
                Optimizer::Adam => format!("Adam lr {learning_rate}"),
                Optimizer::Sgd { momentum } => {
                    format!("SGD (momentum {momentum}) lr {learning_rate}")
                }
            },
        ),
        (
            "federation settings".into(),
            cfg.to_toml().replace('\n', "; "),
        ),
        (
            "rounds".into(),
            format!(
                "{} of {} (kept round {})",
                o.rounds.len(),
                cfg.rounds,
                o.best_round
            ),
        ),
        (
            "resumed".into(),
            if o.resumed_after == 0 {
                "no: a fresh run".into()
            } else {
                format!("from the checkpoint after round {}", o.resumed_after)
            },
        ),
        ("refused connections".into(), o.refused.to_string()),
        ("rejected answers".into(), o.rejected.to_string()),
        ("bytes".into(), bytes.to_string()),
    ]));
    page.push(Block::Heading("Rounds".into()));
    page.push(Block::Table {
        header: [
            "round",
            "validation macro-F1",
            "devices asked",
            "accepted",
            "late",
            "failed",
            "edges answering",
            "seconds",
        ]
        .map(String::from)
        .to_vec(),
        rows: o
            .rounds
            .iter()
            .map(|r| {
                let edges = o.edges.iter().find(|(round, _)| *round == r.round).map_or(
                    "(before restart)".to_string(),
                    |(_, out)| {
                        format!(
                            "{} of {}",
                            out.iter()
                                .filter(|x| x.delivery
                                    == iotids_federation::message::Delivery::Accepted)
                                .count(),
                            out.len()
                        )
                    },
                );
                vec![
                    r.round.to_string(),
                    r.validation_macro_f1
                        .map_or("-".into(), |f| format!("{f:.4}")),
                    r.sampled.to_string(),
                    r.accepted.to_string(),
                    r.late.to_string(),
                    r.failed.to_string(),
                    edges,
                    format!("{:.2}", r.seconds),
                ]
            })
            .collect(),
    });
    if let Some(m) = &metrics {
        page.push(Block::Heading("Test".into()));
        page.push(Block::KeyValues(vec![
            ("accuracy".into(), format!("{:.4}", m.accuracy)),
            ("macro-F1".into(), format!("{:.4}", m.macro_f1)),
        ]));
    }
    for b in fed_report::privacy_sections_of(cfg, &o.rounds, o.privacy.as_ref()) {
        page.push(b);
    }
    write_file(&out.join("report.html"), page.to_html())?;
    print(&format!(
        "cloud: {} rounds ({} resumed from the checkpoint), kept round {} (validation macro-F1 {}){}; refused {} connections, rejected {} answers; wrote {}",
        o.rounds.len(),
        o.resumed_after,
        o.best_round,
        kept.and_then(|r| r.validation_macro_f1)
            .map_or("-".into(), |f| format!("{f:.4}")),
        metrics.as_ref().map_or(String::new(), |m| format!(
            ", test macro-F1 {:.4}",
            m.macro_f1
        )),
        o.refused,
        o.rejected,
        out.display()
    ))?;
    Ok(metrics.map(|m| m.macro_f1))
}

/// `iotids edge`.
pub fn edge(job: &EdgeJob) -> Result<ExitCode> {
    let rt = runtime()?;
    let (listener, addr) = iotids_net::edge::bind(job.listen)?;
    print(&format!("iotids edge: listening on {addr}"))?;
    let options = iotids_net::edge::EdgeOptions {
        listen: addr,
        cloud: job.cloud.clone(),
        tls: tls(&job.node),
        message_limit: message_limit(job.node.max_message_mb),
        give_up: Duration::from_secs(job.node.give_up),
    };
    let r = iotids_net::edge::run(&options, listener, &rt)?;
    print(&format!(
        "edge: {} rounds; refused {} connections, rejected {} answers; {}",
        r.rounds, r.refused, r.rejected, r.finished
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `iotids device`.
pub fn device(job: &DeviceJob, ui: Ui) -> Result<ExitCode> {
    if !job.data.exists() {
        bail!("--data {}: no such file", job.data.display());
    }
    let rt = runtime()?;
    let options = iotids_net::device::DeviceOptions {
        edge: job.edge.clone(),
        tls: tls(&job.node),
        message_limit: message_limit(job.node.max_message_mb),
        give_up: Duration::from_secs(job.node.give_up),
        slots: None,
    };
    let path = job.data.clone();
    let threads = ui.threads();
    let reader: Reader = Box::new(move |opts| {
        let opts = iotids_data::IngestOptions {
            threads,
            ..opts.clone()
        };
        read(&path, &opts, true).map_err(|e| format!("{e:#}"))
    });
    let r = iotids_net::device::run(&options, reader, &rt)?;
    print(&format!(
        "device: {} summaries, {} updates ({} accepted), joined {} time(s); {}",
        r.summaries, r.updates, r.accepted, r.joins, r.finished
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `iotids device-pool`: devices `job.devices` of a deal folder, each its own device loop
/// (certificate, channel, data) on a thread of its own over one shared runtime; at most
/// `job.train_slots` of them train at once.
pub fn device_pool(job: &DevicePoolJob) -> Result<ExitCode> {
    let settings = job.deal.join("federation.toml");
    if !settings.exists() {
        bail!(
            "--deal {}: no federation.toml there (give the folder `iotids deal --out` wrote)",
            job.deal.display()
        );
    }
    let cfg = iotids_federation::FederationConfig::from_toml_file(&settings)
        .with_context(|| format!("--deal {}", job.deal.display()))?;
    if job.edges.len() != cfg.edges {
        bail!(
            "--edge given {} time(s) where {} has {} edges: give one URL per edge, edge-0 first",
            job.edges.len(),
            settings.display(),
            cfg.edges
        );
    }
    let devices = job.devices.clone();
    if devices.end > cfg.devices {
        bail!(
            "--devices {}..{}: {} has {} devices (ids 0 to {}); give a range within them",
            devices.start,
            devices.end,
            settings.display(),
            cfg.devices,
            cfg.devices - 1
        );
    }
    let ca = job.certs.join("ca.pem");
    let mut plans = Vec::with_capacity(devices.len());
    for d in devices.clone() {
        let data = job.deal.join(format!("device-{d}.csv"));
        let cert = job.certs.join(format!("device-{d}.pem"));
        let key = job.certs.join(format!("device-{d}.key"));
        for (flag, dir, file) in [
            ("--deal", &job.deal, &data),
            ("--certs", &job.certs, &ca),
            ("--certs", &job.certs, &cert),
            ("--certs", &job.certs, &key),
        ] {
            if !file.exists() {
                bail!(
                    "{flag} {}: no {} there (device {d} of --devices {}..{} needs it)",
                    dir.display(),
                    file.file_name().unwrap_or_default().to_string_lossy(),
                    devices.start,
                    devices.end
                );
            }
        }
        let options = iotids_net::device::DeviceOptions {
            edge: job.edges[cfg.edge_of(d)].clone(),
            tls: TlsFiles {
                ca: ca.clone(),
                cert,
                key,
            },
            message_limit: message_limit(job.max_message_mb),
            give_up: Duration::from_secs(job.give_up),
            slots: None,
        };
        plans.push((d, options, data));
    }
    let slots = iotids_net::device::TrainSlots::new(job.train_slots.get());
    let rt = runtime()?;
    let rt = &rt;
    let results: Vec<(usize, Result<iotids_net::device::DeviceReport>)> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = plans
                .into_iter()
                .map(|(d, mut options, data)| {
                    options.slots = Some(slots.clone());
                    let reader: Reader = Box::new(move |opts| {
                        // One ingest thread per device: hundreds of them read at once.
                        let opts = iotids_data::IngestOptions {
                            threads: 1,
                            ..opts.clone()
                        };
                        read(&data, &opts, true).map_err(|e| format!("{e:#}"))
                    });
                    let handle = std::thread::Builder::new()
                        .name(format!("device-{d}"))
                        .stack_size(8 << 20)
                        .spawn_scoped(scope, move || {
                            iotids_net::device::run(&options, reader, rt)
                                .map_err(anyhow::Error::from)
                        });
                    (d, handle)
                })
                .collect();
            handles
                .into_iter()
                .map(|(d, handle)| {
                    let r = match handle {
                        Ok(h) => h.join().unwrap_or_else(|_| {
                            Err(anyhow::anyhow!("device-{d}'s thread panicked"))
                        }),
                        Err(e) => Err(anyhow::anyhow!(
                            "cannot start a thread for device-{d} ({e})"
                        )),
                    };
                    (d, r)
                })
                .collect()
        });
    let mut total = iotids_net::device::DeviceReport::default();
    let mut failed = Vec::new();
    for (d, r) in &results {
        match r {
            Ok(r) => {
                print(&format!(
                    "device-{d}: {} summaries, {} updates ({} accepted), joined {} time(s); {}",
                    r.summaries, r.updates, r.accepted, r.joins, r.finished
                ))?;
                total.summaries += r.summaries;
                total.updates += r.updates;
                total.accepted += r.accepted;
                total.joins += r.joins;
            }
            Err(e) => {
                eprintln!("device-{d}: {e:#}");
                failed.push(format!("device-{d}: {e:#}"));
            }
        }
    }
    print(&format!(
        "device-pool: {} devices ({}..{}), {} failed; {} summaries, {} updates ({} accepted), {} joins",
        results.len(),
        devices.start,
        devices.end,
        failed.len(),
        total.summaries,
        total.updates,
        total.accepted,
        total.joins
    ))?;
    if let Some(first) = failed.first() {
        bail!(
            "{} of {} devices failed (first: {first})",
            failed.len(),
            results.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}
