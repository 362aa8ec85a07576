//! The cloud process: serves its edges, owns the schedule, runs the statistics round that
//! fits the pipeline from the devices' summaries, then the cloud rounds
//! ([`iotids_federation::roles::Cloud::round`], the simulation's code) over its link to
//! the edges. After every round it checkpoints (atomically) the global model, the server
//! optimiser's state, the round counter and the records so far; started again with the
//! same checkpoint folder it resumes at the next round, losing and repeating none.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use iotids_data::federated::{Answer, FederatedFit, Summary};
use iotids_data::pipeline::{IngestSpec, Pipeline, PipelineConfig};
use iotids_data::split::SplitConfig;
use iotids_data::window::WindowBy;
use iotids_federation::message::{Delivery, EdgeUpdate, GlobalModel, PeerOutcome};
use iotids_federation::roles::{Cloud, CloudState, RoundRecord, Validation};
use iotids_federation::transport::{Exchange, Link, Wait};
use iotids_federation::{FederationConfig, ValidationSite};
use iotids_model::examples::Examples;
use iotids_model::gru::{GruConfig, GruShape};
use iotids_model::train::TrainConfig;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

use crate::certs::TlsFiles;
use crate::context::{Reader, RunContext};
use crate::error::{Error, Result};
use crate::hub::{Check, Hub, Policy, Tier};
use crate::link::EdgeLink;
use crate::proto;

/// Version of the checkpoint layout.
pub const CHECKPOINT_VERSION: u32 = 1;

/// How the cloud runs.
#[derive(Debug, Clone)]
pub struct CloudOptions {
    /// Its certificate and the federation's CA.
    pub tls: TlsFiles,
    /// The federation's schedule and rules (the file `federate` reads).
    pub federation: FederationConfig,
    /// How the pipeline is fitted.
    pub pipeline: PipelineConfig,
    /// The run's split: with validation on the devices, each device cuts its own table
    /// by it ([`crate::context::device_split`]).
    pub split: SplitConfig,
    /// The network's shape.
    pub network: GruShape,
    /// Local training's batch size, learning rate, class weighting.
    pub train: TrainConfig,
    /// Records per window.
    pub window: usize,
    /// What a window follows.
    pub window_by: WindowBy,
    /// The checkpoint folder.
    pub checkpoint: PathBuf,
    /// Seconds an edge waits for its devices when the plan sets no deadline.
    pub device_deadline: f64,
    /// Seconds the cloud waits for its edges each round (then goes on without the rest).
    pub edge_deadline: f64,
    /// Seconds the statistics round waits for every edge.
    pub statistics_deadline: f64,
    /// Largest message, bytes.
    pub message_limit: usize,
}

/// Every round's edge outcomes, as the link saw them.
pub type EdgeHistory = Vec<(usize, Vec<PeerOutcome>)>;

/// What a run produced.
#[derive(Debug, Clone)]
pub struct CloudOutcome {
    /// The run.
    pub run: String,
    /// The pipeline the devices agreed on, and the network.
    pub pipeline: Pipeline,
    /// The network's shape.
    pub network: GruConfig,
    /// Records per window.
    pub window: usize,
    /// What a window follows.
    pub window_by: WindowBy,
    /// One record per cloud round, resumed ones included.
    pub rounds: Vec<RoundRecord>,
    /// The kept round and its weights.
    pub best_round: usize,
    /// Its flat weights.
    pub weights: Vec<f32>,
    /// Training rows per device, as the statistics round reported them.
    pub device_rows: BTreeMap<usize, u64>,
    /// Each edge's outcome per round (across restarts).
    pub edges: EdgeHistory,
    /// Rounds this process started from (0: a fresh run; r: resumed after round r).
    pub resumed_after: usize,
    /// Connections and requests the cloud refused.
    pub refused: u64,
    /// Edge answers it rejected.
    pub rejected: u64,
    /// Wall seconds of this process's run.
    pub seconds: f64,
    /// The statistics round as this process ran it (None: resumed past it).
    pub statistics: Option<StatisticsRound>,
    /// The differential-privacy guarantee of the rounds run (None: DP off). With a target
    /// ε the run stops before a round that would exceed it, as the simulation does.
    pub privacy: Option<iotids_privacy::PrivacyReport>,
}

/// What the statistics round cost on the wire and in wall time.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatisticsRound {
    /// Wall seconds of each request's exchange with the edges (the first one includes
    /// the wait for the edges and devices to join).
    pub seconds: Vec<f64>,
    /// Bytes of the requests the edges pulled.
    pub bytes_down: u64,
    /// Bytes of the edges' merged summaries.
    pub bytes_up: u64,
}

/// What the cloud keeps across a restart.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Checkpoint {
    version: u32,
    run: String,
    federation: FederationConfig,
    context: RunContext,
    device_rows: BTreeMap<usize, u64>,
    class_counts: Vec<u64>,
    state: Option<CloudState>,
    records: Vec<RoundRecord>,
    /// Each round's edge outcomes, across restarts.
    #[serde(default)]
    edges: EdgeHistory,
}

fn checkpoint_path(dir: &Path) -> PathBuf {
    dir.join("cloud.json")
}

fn load_checkpoint(dir: &Path) -> Result<Option<Checkpoint>> {
    let path = checkpoint_path(dir);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::file(&path, e)),
    };
    let ck: Checkpoint = serde_json::from_slice(&bytes)
        .map_err(|e| Error::file(&path, format!("not a cloud checkpoint ({e})")))?;
    if ck.version != CHECKPOINT_VERSION {
        return Err(Error::file(
            &path,
            format!(
                "checkpoint version {} where this build writes {CHECKPOINT_VERSION}",
                ck.version
            ),
        ));
    }
    Ok(Some(ck))
}

/// Writes the checkpoint atomically: a temporary file, synced, renamed over the old one,
/// and the folder synced, so a crash leaves the old checkpoint or the new one.
fn save_checkpoint(dir: &Path, ck: &Checkpoint) -> Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    let path = checkpoint_path(dir);
    let tmp = dir.join("cloud.json.tmp");
    let bytes = serde_json::to_vec(ck).map_err(|e| Error::file(&tmp, e))?;
    let mut f = std::fs::File::create(&tmp).map_err(|e| Error::file(&tmp, e))?;
    f.write_all(&bytes).map_err(|e| Error::file(&tmp, e))?;
    f.sync_all().map_err(|e| Error::file(&tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| Error::file(&path, e))?;
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// The edge link, remembering every round's edge outcomes.
struct Recording {
    link: EdgeLink,
    history: Arc<Mutex<EdgeHistory>>,
}

impl Link<EdgeUpdate> for Recording {
    fn exchange(
        &mut self,
        model: &GlobalModel,
        peers: &[usize],
        wait: Wait,
    ) -> iotids_federation::Result<Exchange<EdgeUpdate>> {
        let ex = self.link.exchange(model, peers, wait)?;
        for o in &ex.outcomes {
            if o.delivery != Delivery::Accepted {
                tracing::warn!(round = model.round, edge = o.peer, delivery = ?o.delivery, "an edge did not answer in time; going on without it");
            }
        }
        self.history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((model.round, ex.outcomes.clone()));
        Ok(ex)
    }
}

/// Runs the cloud: `spec` is how devices read their traffic (the validation file's layout
/// read with the learning options); `read` reads the validation file with the fitted
/// pipeline's column kinds. `on_round` sees each round as it ends.
///
/// # Errors
///
/// A checkpoint of another run's settings, a failed statistics round (no edge answered),
/// bad data, or a round that fails as a whole.
pub fn run(
    options: &CloudOptions,
    listener: std::net::TcpListener,
    runtime: &Runtime,
    spec: IngestSpec,
    read: Reader,
    on_round: &mut dyn FnMut(&RoundRecord),
) -> Result<CloudOutcome> {
    let started = Instant::now();
    let cfg = &options.federation;
    cfg.check()?;
    let mut ck = match load_checkpoint(&options.checkpoint)? {
        Some(ck) => {
            if ck.federation != *cfg {
                return Err(Error::file(
                    checkpoint_path(&options.checkpoint),
                    "is a checkpoint of a run with other federation settings: give another --checkpoint folder, or the same settings",
                ));
            }
            tracing::info!(run = %ck.run, round = ck.state.as_ref().map_or(0, |s| s.round), "resuming from the checkpoint");
            ck
        }
        None => {
            let run = format!("{:016x}", rand::rng().random::<u64>());
            Checkpoint {
                version: CHECKPOINT_VERSION,
                run: run.clone(),
                federation: cfg.clone(),
                context: RunContext {
                    run,
                    ingest: spec,
                    window: options.window,
                    window_by: options.window_by,
                    pipeline: None,
                    network: None,
                    validation: (cfg.validate_on == ValidationSite::Devices)
                        .then(|| options.split.clone()),
                },
                device_rows: BTreeMap::new(),
                class_counts: Vec::new(),
                state: None,
                records: Vec::new(),
                edges: Vec::new(),
            }
        }
    };
    let resumed_after = ck.state.as_ref().map_or(0, |s| s.round);
    let refused = Arc::new(AtomicU64::new(0));
    let hub = Hub::new(
        Tier::Edges { count: cfg.edges },
        ck.run.clone(),
        refused.clone(),
    );
    hub.set_rosters(
        (0..cfg.edges)
            .map(|e| (0..cfg.devices).filter(|&d| cfg.edge_of(d) == e).collect())
            .collect(),
    );
    crate::edge::serve(
        runtime.handle(),
        listener,
        crate::tls::server_config(&options.tls)?,
        hub.clone(),
        refused,
        options.message_limit,
    )?;
    let publish = |ctx: &RunContext| {
        let (digest, bytes) = ctx.encode();
        hub.set_context(digest, Arc::new(bytes));
    };
    publish(&ck.context);

    let mut statistics = None;
    if ck.context.pipeline.is_none() {
        let mut cost = StatisticsRound::default();
        // Each device infers its columns' kinds from its own rows; a column that is text
        // on one device and numbers on another is read as categorical everywhere (as the
        // pooled file would be) and the round starts again.
        let mut attempt = 0;
        let (pipeline, rows, counts) = loop {
            attempt += 1;
            match statistics_round(options, &hub, &ck, runtime, attempt, &mut cost)? {
                Statistics::Fitted(p, r, c) => {
                    statistics = Some(cost);
                    break (*p, r, c);
                }
                Statistics::Categorical(columns) if attempt < 4 => {
                    tracing::info!(
                        ?columns,
                        "columns numeric on some devices and text on others: read as categorical everywhere"
                    );
                    let spec = &mut ck.context.ingest;
                    for c in columns {
                        if !spec.categorical.contains(&c) {
                            spec.categorical.push(c);
                        }
                    }
                    publish(&ck.context);
                }
                Statistics::Categorical(columns) => {
                    return Err(Error::Peer {
                        peer: "the devices".into(),
                        reason: format!("still disagree on the kinds of columns {columns:?}"),
                    });
                }
            }
        };
        let network = options
            .network
            .for_data(pipeline.selected.len(), pipeline.classes.len());
        network.check()?;
        ck.context.pipeline = Some(pipeline);
        ck.context.network = Some(network);
        ck.device_rows = rows;
        ck.class_counts = counts;
        save_checkpoint(&options.checkpoint, &ck)?;
        publish(&ck.context);
    }
    let (Some(pipeline), Some(network)) = (ck.context.pipeline.clone(), ck.context.network.clone())
    else {
        unreachable!("the statistics round set both");
    };

    // The validation rows the cloud scores each round on, through the agreed pipeline.
    let vds =
        read(&iotids_model::detect::ingest_options(&pipeline, 0, false)).map_err(|reason| {
            Error::Peer {
                peer: "the validation file".into(),
                reason,
            }
        })?;
    let w = crate::context::windows(&vds, &pipeline, options.window, options.window_by)?;
    if !w.unknown.is_empty() {
        tracing::warn!(
            unknown = ?w.unknown,
            "validation rows of classes no device holds are left out of the rounds' scores"
        );
    }
    drop(vds);
    let validation = Validation {
        examples: Examples {
            sequences: &w.sequences,
            labels: &w.labels,
            rows: &w.rows,
        },
        class_weights: &pipeline.class_weights,
    };
    let mut cloud = Cloud::new(cfg, &network, &options.train, validation)?
        .with_class_counts(ck.class_counts.clone())
        .waiting(Wait::until(Some(options.edge_deadline)).with_quorum(1));
    if cfg.validate_on == ValidationSite::Devices {
        // The devices score each round; the validation file gave only the layout.
        cloud = cloud.validating_on_devices();
    }
    if let Some(state) = ck.state.clone() {
        cloud.resume(state)?;
    }
    let members: Vec<Vec<usize>> = (0..cfg.edges)
        .map(|e| {
            (0..cfg.devices)
                .filter(|&d| cfg.edge_of(d) == e && ck.device_rows.get(&d).is_some_and(|&n| n > 0))
                .collect()
        })
        .collect();
    let history = Arc::new(Mutex::new(Vec::new()));
    let mut link = Recording {
        link: EdgeLink::new(
            hub.clone(),
            runtime.handle().clone(),
            ck.run.clone(),
            members,
            cfg.edge_aggregation,
            options.device_deadline,
            options.edge_deadline,
        ),
        history: history.clone(),
    };
    while cloud.state().round < cfg.rounds {
        if !cloud.budget_allows_next_round() {
            tracing::info!(
                round = cloud.state().round,
                "the privacy budget allows no further round: stopping"
            );
            break;
        }
        let rec = cloud.round(&mut link)?;
        on_round(&rec);
        ck.records.push(rec);
        if let Some(last) = history
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .last()
        {
            ck.edges.push(last.clone());
        }
        ck.state = Some(cloud.state().clone());
        save_checkpoint(&options.checkpoint, &ck)?;
    }
    let privacy = cloud.privacy();
    let (best_round, weights) = cloud.into_best();
    hub.finish("the run is complete");
    // Edges long-polling hear it at once; give them a moment to.
    std::thread::sleep(Duration::from_secs(2));
    Ok(CloudOutcome {
        run: ck.run,
        pipeline,
        network,
        window: options.window,
        window_by: options.window_by,
        rounds: ck.records,
        best_round,
        weights,
        device_rows: ck.device_rows,
        edges: ck.edges,
        resumed_after,
        refused: hub.refused(),
        rejected: hub.rejected(),
        seconds: started.elapsed().as_secs_f64(),
        statistics,
        privacy,
    })
}

/// The statistics round: the cloud asks, every edge asks its devices and merges their
/// answers, the cloud merges the edges' (in edge order) and fits; repeated while the fit
/// has questions. Returns the pipeline, each device's rows and the class counts.
enum Statistics {
    Fitted(Box<Pipeline>, BTreeMap<usize, u64>, Vec<u64>),
    /// Columns numeric on some devices and text on others.
    Categorical(Vec<String>),
}

fn statistics_round(
    options: &CloudOptions,
    hub: &Arc<Hub>,
    ck: &Checkpoint,
    runtime: &Runtime,
    attempt: usize,
    cost: &mut StatisticsRound,
) -> Result<Statistics> {
    let edges = options.federation.edges;
    let mut fit = FederatedFit::new(ck.context.ingest.clone(), &options.pipeline)?;
    let mut device_rows = BTreeMap::new();
    let mut class_rows: BTreeMap<String, u64> = BTreeMap::new();
    let mut step = 0;
    while let Some(request) = fit.request() {
        step += 1;
        let task = proto::Task {
            id: format!("{}/statistics-{attempt}.{step}", ck.run),
            kind: Some(proto::task::Kind::Summarize(proto::Summarize {
                request: serde_json::to_vec(&request).unwrap_or_default(),
                deadline_seconds: options.statistics_deadline,
            })),
            ..proto::Task::default()
        };
        let check: Check = Box::new(|_, a| match &a.kind {
            Some(proto::answer::Kind::Summary(s)) if !s.categorical.is_empty() => Ok(()),
            Some(proto::answer::Kind::Summary(s)) => serde_json::from_slice::<Summary>(&s.summary)
                .map(|_| ())
                .map_err(|e| format!("a summary that is not valid JSON ({e})")),
            _ => Err("not a summary".into()),
        });
        // Every edge, waited for past the deadline up to three deadlines.
        let c = runtime.block_on(hub.exchange(
            (0..edges).map(|e| (e, task.clone())).collect(),
            Policy::new(options.statistics_deadline * 2.0, edges),
            check,
        ));
        cost.seconds.push(c.seconds);
        cost.bytes_down += c.bytes_down;
        cost.bytes_up += c.bytes_up;
        if !c.failures.is_empty() {
            return Err(Error::Peer {
                peer: "the statistics round".into(),
                reason: c
                    .failures
                    .iter()
                    .map(|(_, r)| r.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
        let mut summaries = Vec::new();
        let mut categorical = Vec::new();
        for (e, a) in c.answers {
            let Some(proto::answer::Kind::Summary(s)) = a.kind else {
                continue;
            };
            if step == 1 {
                for (d, n) in &s.device_rows {
                    device_rows.insert(*d as usize, *n);
                }
            }
            if !s.categorical.is_empty() {
                categorical.extend(s.categorical);
                continue;
            }
            summaries.push(
                serde_json::from_slice::<Summary>(&s.summary)
                    .map_err(|e2| Error::Transport(format!("edge-{e}'s summary: {e2}")))?,
            );
        }
        let merged = match crate::context::merge_all(summaries)? {
            Ok(m) if categorical.is_empty() => m,
            Ok(_) => return Ok(Statistics::Categorical(categorical)),
            Err(mut more) => {
                categorical.append(&mut more);
                return Ok(Statistics::Categorical(categorical));
            }
        };
        let Some(merged) = merged else {
            return Err(Error::Peer {
                peer: "the edges".into(),
                reason: format!(
                    "none answered statistics request {step} within {} s",
                    options.statistics_deadline * 6.0
                ),
            });
        };
        if let Answer::Survey(s) = &merged.answer {
            for c in s.classes.values() {
                *class_rows.entry(c.name.clone()).or_default() += c.rows;
            }
        }
        fit.absorb(merged)?;
    }
    let pipeline = fit.finish()?;
    let key = |c: &str| iotids_data::schema::class_key(c);
    let counts = pipeline
        .classes
        .iter()
        .map(|p| {
            class_rows
                .iter()
                .filter(|(name, _)| key(name) == key(p))
                .map(|(_, n)| n)
                .sum()
        })
        .collect();
    Ok(Statistics::Fitted(Box::new(pipeline), device_rows, counts))
}
