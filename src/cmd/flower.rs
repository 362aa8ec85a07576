//! `iotids flower`: an iotids device or edge as a Flower SuperNode, and the steps the
//! project's Flower app (examples/flower/iotids-app) calls on the server side. The nodes and the
//! server state are iotids-net's ([`iotids_net::flower`]); this is their command line.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use iotids_federation::roles::{Validation, cloud_loss_weights, score_weights};
use iotids_model::examples::Examples;
use iotids_net::cloud::CloudOutcome;
use iotids_net::context::Reader;
use iotids_net::flower::{FlowerOptions, Next, QueryAnswer, ServerState};

use super::network::{devices_spec, runtime, tls, write_cloud};
use crate::cli::{FlowerArgs, FlowerStep, NodeArgs};
use crate::job::{FlowerServerJob, Ui};
use crate::output::{print, read, write_file};

fn options(f: &FlowerArgs) -> FlowerOptions {
    FlowerOptions {
        superlink: f.superlink.clone(),
        root_certificates: f.root_certificates.clone(),
        auth_key: f.auth_key.clone(),
    }
}

/// `iotids flower device`.
pub fn device(flower: &FlowerArgs, id: usize, data: &Path, ui: Ui) -> Result<ExitCode> {
    if !data.exists() {
        bail!("--data {}: no such file", data.display());
    }
    let rt = runtime()?;
    let path = data.to_path_buf();
    let threads = ui.threads();
    let reader: Reader = Box::new(move |opts| {
        let opts = iotids_data::IngestOptions {
            threads,
            ..opts.clone()
        };
        read(&path, &opts, true).map_err(|e| format!("{e:#}"))
    });
    print(&format!(
        "iotids flower device {id}: joining the SuperLink at {}",
        flower.superlink
    ))?;
    let r = iotids_net::flower::run_device(&options(flower), id, reader, &rt)?;
    print(&format!(
        "flower device {id}: {} trainings, {} evaluations, {} queries, {} errors replied, {} reconnects",
        r.stats.trained, r.stats.evaluated, r.stats.queried, r.stats.errors, r.stats.reconnects
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `iotids flower edge`.
pub fn edge(
    flower: &FlowerArgs,
    node: &NodeArgs,
    listen: std::net::SocketAddr,
) -> Result<ExitCode> {
    let rt = runtime()?;
    let (listener, addr) = iotids_net::edge::bind(listen)?;
    print(&format!(
        "iotids flower edge: serving devices on {addr}, joining the SuperLink at {}",
        flower.superlink
    ))?;
    let r = iotids_net::flower::run_edge(
        &options(flower),
        &tls(node),
        listener,
        iotids_net::client::message_limit(node.max_message_mb),
        &rt,
    )?;
    print(&format!(
        "flower edge: {} cloud rounds, {} queries, {} errors replied, {} reconnects; refused {} connections",
        r.rounds, r.stats.queried, r.stats.errors, r.stats.reconnects, r.refused
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `iotids flower keygen`.
pub fn keygen(out: &Path, format: iotids_flower::KeyFormat, comment: &str) -> Result<ExitCode> {
    let mut public = out.as_os_str().to_owned();
    public.push(".pub");
    for p in [out, Path::new(&public)] {
        if p.exists() {
            bail!(
                "--out {}: {} exists (never overwritten)",
                out.display(),
                p.display()
            );
        }
    }
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("{}: cannot create", dir.display()))?;
    }
    let key = iotids_flower::NodeKey::generate();
    let public = key.write_files(out, format, comment)?;
    print(&format!(
        "wrote a node key to {} and its public key to {}: register it with `flwr supernode register {} <federation>`",
        out.display(),
        public.display(),
        public.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Where the server keeps its state and the files it hands the app.
fn dir(job: &FlowerServerJob) -> PathBuf {
    job.schedule.learn.out.join("flower")
}

fn state_path(job: &FlowerServerJob) -> PathBuf {
    dir(job).join("state.json")
}

/// `iotids flower server`.
pub fn server(job: &FlowerServerJob, ui: Ui) -> Result<ExitCode> {
    let out = match job.step {
        FlowerStep::Begin => begin(job, ui)?,
        FlowerStep::Absorb => absorb(job)?,
        FlowerStep::Score => score(job, ui)?,
        FlowerStep::Finish => finish(job, ui)?,
    };
    print(&serde_json::to_string(&out)?)?;
    Ok(ExitCode::SUCCESS)
}

fn begin(job: &FlowerServerJob, ui: Ui) -> Result<serde_json::Value> {
    let learn = &job.schedule.learn;
    let (spec, window) = devices_spec(learn, ui)?;
    let state = ServerState::new(
        job.schedule.federation.clone(),
        job.flat,
        learn.prepare.pipeline.clone(),
        learn.net.clone(),
        learn.train.clone(),
        spec,
        window,
        learn.window_by,
        job.schedule.device_deadline,
        job.schedule.statistics_deadline,
    )?;
    let d = dir(job);
    std::fs::create_dir_all(d.join("rounds"))
        .with_context(|| format!("{}: cannot create", d.display()))?;
    state.save(&state_path(job))?;
    next(job, &state)
}

/// Writes what the app sends next (the context, the task, the request or the initial
/// model) and says where.
fn next(job: &FlowerServerJob, state: &ServerState) -> Result<serde_json::Value> {
    let d = dir(job);
    let context = d.join("context.json");
    let task = d.join("task.json");
    write_file(&context, serde_json::to_string(&state.context)?)?;
    write_file(&task, serde_json::to_string(&state.task)?)?;
    let mut out = serde_json::json!({
        "run": state.task.run,
        "context": context,
        "task": task,
        "nodes": if state.flat { state.federation.devices } else { state.federation.edges },
        "rounds": state.federation.rounds,
        "strategy": state.federation.strategy,
        "server_learning_rate": state.federation.server_learning_rate,
        "server_momentum": state.federation.server_momentum,
        "eta": state.federation.eta,
        "beta_1": state.federation.beta_1,
        "beta_2": state.federation.beta_2,
        "tau": state.federation.tau,
        "fraction": if state.flat { state.federation.fraction } else { 1.0 },
    });
    match state.next()? {
        Next::Query { request } => {
            let path = d.join("request.json");
            write_file(&path, serde_json::to_string(&request)?)?;
            out["next"] = "query".into();
            out["request"] = serde_json::json!(path);
        }
        Next::Train { initial } => {
            let path = d.join("initial.npy");
            let bytes =
                iotids_flower::records::npy_encode(&initial, &[initial.len() as i64], "float32")?;
            std::fs::write(&path, bytes)
                .with_context(|| format!("{}: cannot write", path.display()))?;
            out["next"] = "train".into();
            out["initial"] = serde_json::json!(path);
            out["weights"] = initial.len().into();
        }
    }
    Ok(out)
}

fn absorb(job: &FlowerServerJob) -> Result<serde_json::Value> {
    let mut state = ServerState::load(&state_path(job))?;
    let mut answers = Vec::new();
    for p in &job.answers {
        let bytes = std::fs::read(p).with_context(|| format!("{}: cannot read", p.display()))?;
        let a: QueryAnswer = serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{}: not a node's answer to the statistics request",
                p.display()
            )
        })?;
        answers.push(a);
    }
    state.absorb(answers)?;
    state.save(&state_path(job))?;
    next(job, &state)
}

fn npy(path: &Path) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
    let (values, _, _) = iotids_flower::records::npy_decode(&bytes)
        .with_context(|| format!("{}: not a float .npy array", path.display()))?;
    Ok(values)
}

fn score(job: &FlowerServerJob, ui: Ui) -> Result<serde_json::Value> {
    let (Some(round), Some(weights)) = (job.round, &job.weights) else {
        bail!("`flower server score` needs --round and --weights");
    };
    let mut state = ServerState::load(&state_path(job))?;
    let (Some(pipeline), Some(network)) = (&state.context.pipeline, &state.context.network) else {
        bail!(
            "{}: the statistics round has not ended",
            state_path(job).display()
        );
    };
    let w = npy(weights)?;
    let keep = dir(job).join("rounds").join(format!("{round}.npy"));
    if *weights != keep {
        std::fs::copy(weights, &keep)
            .with_context(|| format!("{}: cannot write", keep.display()))?;
    }
    let path = &job.schedule.learn.input.path;
    let vds = read(
        path,
        &iotids_model::detect::ingest_options(pipeline, 0, false),
        ui.quiet,
    )?;
    let win = iotids_net::context::windows(
        &vds,
        pipeline,
        state.context.window,
        state.context.window_by,
    )?;
    drop(vds);
    let validation = Validation {
        examples: Examples {
            sequences: &win.sequences,
            labels: &win.labels,
            rows: &win.rows,
        },
        class_weights: &pipeline.class_weights,
    };
    let scores = (!win.rows.is_empty())
        .then(|| {
            score_weights(
                network,
                &w,
                validation,
                &cloud_loss_weights(&state.train, &pipeline.class_weights),
            )
        })
        .transpose()?;
    let counted = match std::env::var("IOTIDS_FLOWER_ROUND") {
        Ok(s) if !s.is_empty() => {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&s)
                .with_context(|| format!("IOTIDS_FLOWER_ROUND={s}: not a JSON object"))?
        }
        _ => serde_json::Map::new(),
    };
    state.record(round, scores, &counted)?;
    state.save(&state_path(job))?;
    Ok(serde_json::json!({
        "round": round,
        "macro_f1": scores.map(|s| s.macro_f1),
        "loss": scores.map(|s| s.loss),
        "accuracy": scores.map(|s| s.accuracy),
        "epsilon": state.epsilon_after(round),
    }))
}

fn finish(job: &FlowerServerJob, ui: Ui) -> Result<serde_json::Value> {
    let state = ServerState::load(&state_path(job))?;
    let (Some(pipeline), Some(network)) = (&state.context.pipeline, &state.context.network) else {
        bail!(
            "{}: the statistics round has not ended",
            state_path(job).display()
        );
    };
    let Some(best) = state.best_round() else {
        bail!("{}: no round was scored", state_path(job).display());
    };
    let weights = npy(&dir(job).join("rounds").join(format!("{best}.npy")))?;
    let o = CloudOutcome {
        run: state.task.run.clone(),
        pipeline: pipeline.clone(),
        network: network.clone(),
        window: state.context.window,
        window_by: state.context.window_by,
        rounds: state.rounds.clone(),
        best_round: best,
        weights,
        device_rows: state.device_rows.clone(),
        edges: Vec::new(),
        resumed_after: 0,
        refused: 0,
        rejected: 0,
        seconds: state.rounds.iter().map(|r| r.seconds).sum(),
        statistics: None,
        privacy: state.privacy_after(state.rounds.len()),
    };
    let test = write_cloud(
        &job.schedule.learn,
        &state.federation,
        job.schedule.test.as_deref(),
        &o,
        "flower",
        ui,
    )?;
    let kept = state.rounds.iter().find(|r| r.round == best);
    Ok(serde_json::json!({
        "best_round": best,
        "rounds_completed": state.rounds.len(),
        "validation_macro_f1": kept.and_then(|r| r.validation_macro_f1),
        "test_macro_f1": test,
        "device_rows": state.device_rows,
        "model": job.schedule.learn.out,
    }))
}
