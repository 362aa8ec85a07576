//! iotids nodes in a Flower federation (flwr 1.40–1.42): a device or an edge aggregator
//! is a Flower SuperNode ([`iotids_flower`]), and the project's Flower app
//! (`examples/flower/iotids-app`) drives the rounds with a stock strategy.
//!
//! What the app sends and the nodes answer, in Flower's records:
//! - `query` messages run the statistics round: config `iotids.context` (the
//!   [`RunContext`] JSON: how to read the traffic), `iotids.task` ([`FlowerTask`]: who is
//!   under which edge) and `iotids.request` (a [`SummaryRequest`]); the reply's config
//!   holds `iotids.answer` ([`QueryAnswer`]). A device answers from its own rows; an edge
//!   asks its devices over the network issue's link and merges their summaries.
//! - `train` messages carry the global model as one `float32` array and the same config
//!   records (the context now with the fitted pipeline, the task with the [`Plan`]) plus
//!   the stock strategies' `server-round`. A device trains on its rows and replies with its
//!   model and `num-examples` = the windows it trained on; an edge runs its edge rounds with
//!   its devices (secure aggregation and DP included) and replies with the edge model and
//!   `num-examples` = the sum over its devices, so FedAvg weighs edges as our cloud does.
//! - `evaluate` messages: a device scores the model on its rows (loss, accuracy,
//!   macro-F1); an edge has no rows and says so (the app evaluates centrally).
//!
//! The server side of the statistics round, the scoring of each round and the model
//! directory are [`ServerState`]'s, which the app calls through `iotids flower-server`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use iotids_data::federated::{Answer, FederatedFit, Summary, SummaryRequest};
use iotids_data::pipeline::{IngestSpec, PipelineConfig};
use iotids_data::window::WindowBy;
use iotids_federation::aggregate::Aggregation;
use iotids_federation::message::{Delivery, GlobalModel, Plan};
use iotids_federation::roles::{Cloud, Edge, Scores, Validation};
use iotids_federation::{FederationConfig, ValidationSite};
use iotids_flower::{Config, ConfigValue, Handler, Metrics, Parameters};
use iotids_model::examples::Examples;
use iotids_model::gru::GruShape;
use iotids_model::train::TrainConfig;
use serde::{Deserialize, Serialize};
use tokio::runtime::Handle;

use crate::context::{Reader, RunContext};
use crate::device::Local;
use crate::error::{Error, Result};
use crate::hub::{Hub, Tier};
use crate::link::DeviceLink;
use crate::proto;

/// Config key of the run context (JSON bytes).
pub const CONTEXT: &str = "iotids.context";
/// Config key of the [`FlowerTask`] (JSON bytes).
pub const TASK: &str = "iotids.task";
/// Config key of a statistics request (JSON bytes).
pub const REQUEST: &str = "iotids.request";
/// Reply config key of a [`QueryAnswer`] (JSON bytes).
pub const ANSWER: &str = "iotids.answer";
/// The round number stock strategies add to every `train` and `evaluate` config.
pub const SERVER_ROUND: &str = "server-round";
/// The name of the model's single array in the `arrays` record.
pub const ARRAY: &str = "gru";

/// What every node needs besides the run context: the federation's layout and, once the
/// pipeline is fitted, the cloud's plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowerTask {
    /// The run.
    pub run: String,
    /// Devices under each edge (all assigned), edge 0 first; empty in a flat run.
    pub rosters: Vec<Vec<usize>>,
    /// Devices under each edge that hold training rows (after the statistics round).
    pub members: Vec<Vec<usize>>,
    /// How edges combine their devices.
    pub edge_aggregation: Aggregation,
    /// Seconds an edge waits for its devices when the plan sets no deadline.
    pub device_deadline: f64,
    /// Seconds an edge waits for its devices' summaries.
    pub statistics_deadline: f64,
    /// The cloud's plan (None before the statistics round ends).
    pub plan: Option<Plan>,
}

/// A node's answer to a statistics request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct QueryAnswer {
    /// The (merged) summary; None with `categorical`.
    pub summary: Option<Summary>,
    /// Rows per device behind it.
    pub device_rows: BTreeMap<usize, u64>,
    /// Columns numeric on one device and text on another (the round starts again with
    /// them read as categorical).
    pub categorical: Vec<String>,
}

type HandlerResult<T> = std::result::Result<T, iotids_flower::supernode::HandlerError>;

fn bytes<'a>(config: &'a Config, key: &str) -> HandlerResult<&'a [u8]> {
    match config.get(key) {
        Some(ConfigValue::Bytes(b)) => Ok(b),
        Some(other) => Err(format!("config {key:?} is {other:?}, not bytes").into()),
        None => Err(format!(
            "config has no {key:?}: is this the iotids Flower app (examples/flower/iotids-app)? it has {:?}",
            config.keys().collect::<Vec<_>>()
        )
        .into()),
    }
}

fn json<T: serde::de::DeserializeOwned>(config: &Config, key: &str) -> HandlerResult<T> {
    serde_json::from_slice(bytes(config, key)?)
        .map_err(|e| format!("config {key:?} is not the JSON iotids writes ({e})").into())
}

/// The run context's digest and bytes (an edge passes them on unread).
fn context_bytes(config: &Config) -> HandlerResult<(String, &[u8])> {
    let raw = bytes(config, CONTEXT)?;
    Ok((crate::context::digest(raw), raw))
}

/// The task, when the message carries one.
fn task_if_any(config: &Config) -> HandlerResult<Option<FlowerTask>> {
    if config.contains_key(TASK) {
        json(config, TASK).map(Some)
    } else {
        Ok(None)
    }
}

/// The global model of a `train` message.
fn global_model(
    params: &Parameters,
    config: &Config,
    task: &FlowerTask,
) -> HandlerResult<GlobalModel> {
    let plan = task
        .plan
        .clone()
        .ok_or("a train message before the statistics round ended (no plan)")?;
    let round = match config.get(SERVER_ROUND) {
        Some(ConfigValue::Int(r)) if *r > 0 => *r as usize,
        Some(ConfigValue::UInt(r)) if *r > 0 => *r as usize,
        Some(other) => {
            return Err(format!("\"server-round\" is {other:?}, not a round number from 1").into());
        }
        None => return Err("a train message without the strategy's \"server-round\"".into()),
    };
    Ok(GlobalModel {
        round,
        edge_round: 0,
        weights: params.values.clone(),
        plan,
    })
}

fn answer_config(answer: &QueryAnswer) -> Config {
    Config::from([(
        ANSWER.to_string(),
        ConfigValue::Bytes(serde_json::to_vec(answer).unwrap_or_default()),
    )])
}

/// A device as a Flower SuperNode: answers the statistics round, trains and scores on its
/// own rows. Its traffic never leaves it.
pub struct FlowerDevice {
    local: Local,
    /// The run context last sent, parsed once per digest.
    context: Option<(String, Arc<RunContext>)>,
}

impl std::fmt::Debug for FlowerDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowerDevice")
            .field("id", &self.local.id)
            .finish_non_exhaustive()
    }
}

impl FlowerDevice {
    /// Device `id`, reading its labelled traffic with `read`.
    #[must_use]
    pub fn new(id: usize, read: Reader) -> Self {
        FlowerDevice {
            local: Local {
                id,
                read,
                raw: None,
                ready: None,
            },
            context: None,
        }
    }

    /// The run context of `config` (parsed only when its digest changes) and its digest.
    fn context(&mut self, config: &Config) -> HandlerResult<(String, Arc<RunContext>)> {
        let (digest, _) = context_bytes(config)?;
        if let Some((d, c)) = &self.context
            && *d == digest
        {
            return Ok((digest, c.clone()));
        }
        let ctx: Arc<RunContext> = Arc::new(json(config, CONTEXT)?);
        self.context = Some((digest.clone(), ctx.clone()));
        Ok((digest, ctx))
    }
}

impl Handler for FlowerDevice {
    fn train(
        &mut self,
        params: &Parameters,
        config: &Config,
    ) -> HandlerResult<(Parameters, u64, Metrics)> {
        let (digest, ctx) = self.context(config)?;
        let task: FlowerTask = json(config, TASK)?;
        let model = global_model(params, config, &task)?;
        if model.plan.secure.is_some() || model.plan.privacy.is_some() {
            return Err(
                "secure aggregation and DP-FedAvg run at iotids edges: a device directly \
                        under a Flower SuperLink cannot take part in them (run edges, or use \
                        Flower's server-side DP strategies)"
                    .into(),
            );
        }
        let id = self.local.id;
        let p = self.local.prepared(&digest, &ctx)?;
        let update = p.device(id).train(&model)?;
        let weights = update.payload.weights(&model.weights).into_owned();
        let metrics = Metrics::from([
            ("train_loss".to_string(), update.training.loss),
            ("train_accuracy".to_string(), update.training.accuracy),
            ("device".to_string(), id as f64),
        ]);
        Ok((
            params.with_values(weights)?,
            update.training.samples,
            metrics,
        ))
    }

    fn evaluate(
        &mut self,
        params: &Parameters,
        config: &Config,
    ) -> HandlerResult<(f64, u64, Metrics)> {
        let (digest, ctx) = self.context(config)?;
        // The loss weighs classes as the devices' training does (as the plan says; the
        // training default without one).
        let mut train = TrainConfig::default();
        if let Some(plan) = task_if_any(config)?.and_then(|t| t.plan) {
            train.class_weights = plan.local.weigh_classes;
        }
        let p = self.local.prepared(&digest, &ctx)?;
        let loss_weights = iotids_federation::roles::cloud_loss_weights(&train, &p.class_weights);
        // Its validation windows when the run validates on devices, else all of them.
        let examples = p.validation_examples().unwrap_or_else(|| p.all_examples());
        let s: Scores = iotids_federation::roles::score_weights(
            &p.network,
            &params.values,
            Validation {
                examples,
                class_weights: &p.class_weights,
            },
            &loss_weights,
        )?;
        let metrics = Metrics::from([
            ("accuracy".to_string(), s.accuracy),
            ("macro_f1".to_string(), s.macro_f1),
        ]);
        Ok((s.loss, examples.rows.len() as u64, metrics))
    }

    fn query(&mut self, config: &Config) -> HandlerResult<(Config, Metrics)> {
        let (_, ctx) = self.context(config)?;
        let request: SummaryRequest = json(config, REQUEST)?;
        let id = self.local.id;
        let (ds, train) = self.local.raw(&ctx)?;
        let summary = request.answer(ds, train)?;
        let rows = summary.rows();
        let answer = QueryAnswer {
            summary: Some(summary),
            device_rows: BTreeMap::from([(id, rows)]),
            categorical: Vec::new(),
        };
        Ok((
            answer_config(&answer),
            Metrics::from([("rows".to_string(), rows as f64)]),
        ))
    }
}

/// Starts an edge's devices' server on the hub it is given (see [`crate::edge::serve`]).
pub type Serve = Box<dyn FnOnce(Arc<Hub>) -> Result<()> + Send>;

/// An edge aggregator as a Flower SuperNode toward the cloud's SuperLink, and the server
/// of its own devices (mutual TLS, the network issue's link) below it.
pub struct FlowerEdge {
    id: usize,
    runtime: Handle,
    /// Starts the devices' server once the run is known (the listener, served once).
    serve: Option<Serve>,
    refused: Arc<AtomicU64>,
    hub: Arc<std::sync::OnceLock<Arc<Hub>>>,
    /// Cloud rounds it answered.
    rounds: Arc<AtomicU64>,
}

impl std::fmt::Debug for FlowerEdge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowerEdge")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl FlowerEdge {
    /// Edge `id`; `serve` starts its devices' server on the hub it is given (see
    /// [`crate::edge::serve`]).
    #[must_use]
    pub fn new(id: usize, runtime: Handle, refused: Arc<AtomicU64>, serve: Serve) -> Self {
        FlowerEdge {
            id,
            runtime,
            serve: Some(serve),
            refused,
            hub: Arc::default(),
            rounds: Arc::default(),
        }
    }

    /// The devices' hub, made and served on the first message of a run; its roster and
    /// context set from the message.
    fn hub(&mut self, config: &Config) -> HandlerResult<(Arc<Hub>, FlowerTask)> {
        let (digest, raw) = context_bytes(config)?;
        let task: FlowerTask = json(config, TASK)?;
        let hub = match self.hub.get() {
            Some(h) => {
                if h.run() != task.run {
                    return Err(format!(
                        "edge-{} serves run {} and was sent run {}: restart it for another run",
                        self.id,
                        h.run(),
                        task.run
                    )
                    .into());
                }
                h.clone()
            }
            None => {
                let h = Hub::new(
                    Tier::Devices { edge: self.id },
                    task.run.clone(),
                    self.refused.clone(),
                );
                let serve = self
                    .serve
                    .take()
                    .ok_or("the devices' listener was already served")?;
                serve(h.clone())?;
                let _ = self.hub.set(h.clone());
                h
            }
        };
        let roster = task.rosters.get(self.id).ok_or_else(|| {
            format!(
                "the task assigns devices to {} edges; this is edge-{}",
                task.rosters.len(),
                self.id
            )
        })?;
        hub.set_roster(roster.iter().copied());
        hub.set_context(digest, Arc::new(raw.to_vec()));
        Ok((hub, task))
    }
}

impl Handler for FlowerEdge {
    fn train(
        &mut self,
        params: &Parameters,
        config: &Config,
    ) -> HandlerResult<(Parameters, u64, Metrics)> {
        let (hub, task) = self.hub(config)?;
        let model = global_model(params, config, &task)?;
        let members = task.members.get(self.id).cloned().unwrap_or_default();
        // The noise an edge adds under DP comes from the operating system's generator
        // (`Edge`'s default): a seeded one would let anyone who knows the seed subtract it.
        let edge = Edge::new(self.id, members, task.edge_aggregation);
        let mut link = DeviceLink::new(
            hub,
            self.runtime.clone(),
            task.run.clone(),
            task.device_deadline,
        );
        let update = edge.round(&model, &mut link)?;
        self.rounds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let count = |d: Delivery| {
            update
                .edge_rounds
                .iter()
                .flat_map(|r| &r.devices)
                .filter(|o| o.delivery == d)
                .count() as f64
        };
        let (mut loss, mut acc, mut n) = (0.0, 0.0, 0.0);
        for t in update.edge_rounds.iter().flat_map(|r| &r.training) {
            loss += t.loss * t.samples as f64;
            acc += t.accuracy * t.samples as f64;
            n += t.samples as f64;
        }
        let secure_failures = update
            .edge_rounds
            .iter()
            .filter(|r| r.secure.as_ref().is_some_and(|s| s.failed.is_some()))
            .count() as f64;
        let mut metrics = Metrics::from([
            ("accepted".to_string(), count(Delivery::Accepted)),
            ("failed".to_string(), count(Delivery::Failed)),
            ("late".to_string(), count(Delivery::Late)),
            ("secure_failures".to_string(), secure_failures),
            (
                "bytes_devices".to_string(),
                update
                    .edge_rounds
                    .iter()
                    .map(|r| (r.bytes_down + r.bytes_up) as f64)
                    .sum(),
            ),
            ("edge".to_string(), self.id as f64),
        ]);
        if n > 0.0 {
            metrics.insert("train_loss".into(), loss / n);
            metrics.insert("train_accuracy".into(), acc / n);
        }
        let Some(m) = update.model.filter(|m| m.samples > 0) else {
            return Err(format!(
                "edge-{}: none of its devices answered round {} ({} failed, {} late)",
                self.id,
                model.round,
                count(Delivery::Failed),
                count(Delivery::Late)
            )
            .into());
        };
        Ok((params.with_values(m.weights)?, m.samples, metrics))
    }

    fn evaluate(&mut self, _: &Parameters, _: &Config) -> HandlerResult<(f64, u64, Metrics)> {
        Err(format!(
            "edge-{} holds no traffic to score on: evaluate centrally (the iotids app does, \
             with fraction-evaluate 0)",
            self.id
        )
        .into())
    }

    fn query(&mut self, config: &Config) -> HandlerResult<(Config, Metrics)> {
        let (hub, task) = self.hub(config)?;
        let request = bytes(config, REQUEST)?.to_vec();
        let kind = crate::edge::summarize(
            &hub,
            &format!(
                "{}/flower-statistics-{}",
                task.run,
                crate::context::digest(&request)
            ),
            proto::Summarize {
                request,
                deadline_seconds: task.statistics_deadline,
            },
            &self.runtime,
        )?;
        let proto::answer::Kind::Summary(s) = kind else {
            return Err("the devices' summaries merged into something else".into());
        };
        let summary = if s.summary.is_empty() {
            None
        } else {
            Some(serde_json::from_slice::<Summary>(&s.summary)?)
        };
        let answer = QueryAnswer {
            summary,
            device_rows: s
                .device_rows
                .iter()
                .map(|(&d, &n)| (d as usize, n))
                .collect(),
            categorical: s.categorical,
        };
        let rows: u64 = answer.device_rows.values().sum();
        Ok((
            answer_config(&answer),
            Metrics::from([
                ("rows".to_string(), rows as f64),
                ("devices".to_string(), answer.device_rows.len() as f64),
            ]),
        ))
    }
}

/// How a node reaches the Flower SuperLink.
#[derive(Debug, Clone)]
pub struct FlowerOptions {
    /// The SuperLink's Fleet API: `host:port` (plain HTTP, a SuperLink started with
    /// `--insecure`) or an `http://` / `https://` URL.
    pub superlink: String,
    /// PEM root certificates the SuperLink's certificate chains to (TLS); None: plain
    /// HTTP for `host:port`, the system's web roots for `https://`.
    pub root_certificates: Option<std::path::PathBuf>,
    /// The node's private key, registered with the SuperLink beforehand (Flower's node
    /// authentication, `--enable-supernode-auth`); None: a fresh key the node registers
    /// itself.
    pub auth_key: Option<std::path::PathBuf>,
}

fn supernode(o: &FlowerOptions) -> Result<iotids_flower::SuperNode> {
    let mut cfg = iotids_flower::FleetConfig::new(o.superlink.clone());
    if let Some(p) = &o.root_certificates {
        cfg = cfg.root_certificates_file(p);
    }
    let (key, register) = match &o.auth_key {
        Some(p) => (
            iotids_flower::NodeKey::from_file(p).map_err(|e| Error::Transport(e.to_string()))?,
            false,
        ),
        None => (iotids_flower::NodeKey::generate(), true),
    };
    let client = iotids_flower::FleetClient::new(cfg, key)
        .map_err(|e| Error::Transport(format!("{}: {e}", o.superlink)))?;
    Ok(iotids_flower::SuperNode::new(client, register))
}

/// What a node did on Flower.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowerReport {
    /// Messages answered (train, evaluate, query) and errors replied.
    pub stats: iotids_flower::RunStats,
    /// Cloud rounds an edge answered (0 for a device).
    pub rounds: u64,
    /// Connections and requests an edge's devices' server refused.
    pub refused: u64,
}

/// Runs device `id` as a Flower SuperNode until SIGTERM or Ctrl-C, then leaves the
/// federation (deactivates, unregisters).
///
/// # Errors
///
/// An unreadable key or certificate file, a SuperLink that refuses the node.
pub fn run_device(
    options: &FlowerOptions,
    id: usize,
    read: Reader,
    runtime: &tokio::runtime::Runtime,
) -> Result<FlowerReport> {
    let node = supernode(options)?;
    let stats = runtime
        .block_on(node.run(FlowerDevice::new(id, read)))
        .map_err(|e| Error::Transport(format!("{}: {e}", options.superlink)))?;
    Ok(FlowerReport {
        stats,
        rounds: 0,
        refused: 0,
    })
}

/// Runs an edge (its identity is its certificate's) as a Flower SuperNode toward the
/// SuperLink and the server of its devices on `listener`, until SIGTERM or Ctrl-C; then
/// tells its devices the run is over and leaves the federation.
///
/// # Errors
///
/// Its certificate names no edge, unreadable files, a SuperLink that refuses the node.
pub fn run_edge(
    options: &FlowerOptions,
    tls: &crate::certs::TlsFiles,
    listener: std::net::TcpListener,
    message_limit: usize,
    runtime: &tokio::runtime::Runtime,
) -> Result<FlowerReport> {
    let id = match crate::tls::own_node(tls)? {
        crate::certs::Node::Edge(e) => e,
        other => {
            return Err(Error::tls(
                tls.cert.display().to_string(),
                format!("names {other}, not an edge"),
            ));
        }
    };
    let server = crate::tls::server_config(tls)?;
    let refused = Arc::new(AtomicU64::new(0));
    let handle = runtime.handle().clone();
    let serve: Serve = {
        let (handle, refused) = (handle.clone(), refused.clone());
        Box::new(move |hub| {
            crate::edge::serve(&handle, listener, server, hub, refused, message_limit)
        })
    };
    let edge = FlowerEdge::new(id, handle, refused.clone(), serve);
    let (hub, rounds) = (edge.hub.clone(), edge.rounds.clone());
    let node = supernode(options)?;
    let stats = runtime.block_on(node.run(edge));
    if let Some(h) = hub.get() {
        h.finish("the Flower node stopped");
        // Devices long-polling hear it at once; give them a moment to.
        std::thread::sleep(std::time::Duration::from_secs(2));
    }
    let stats = stats.map_err(|e| Error::Transport(format!("{}: {e}", options.superlink)))?;
    Ok(FlowerReport {
        stats,
        rounds: rounds.load(std::sync::atomic::Ordering::Relaxed),
        refused: refused.load(std::sync::atomic::Ordering::Relaxed),
    })
}

/// Version of [`ServerState`]'s layout.
pub const STATE_VERSION: u32 = 1;

/// The server side of an iotids run on Flower, kept in a file between the app's calls:
/// the settings, the statistics round's progress, the fitted pipeline and plan, and
/// each round's validation scores.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServerState {
    /// Layout version.
    pub version: u32,
    /// The federation's settings (the file `federate` reads).
    pub federation: FederationConfig,
    /// Devices directly under the SuperLink (no edges).
    pub flat: bool,
    /// How the pipeline is fitted.
    pub pipeline: PipelineConfig,
    /// The network's shape.
    pub network: GruShape,
    /// Local training.
    pub train: TrainConfig,
    /// The run context every node gets (the pipeline once fitted).
    pub context: RunContext,
    /// The layout and (once fitted) the plan.
    pub task: FlowerTask,
    /// The statistics round in progress (None once fitted).
    pub fit: Option<FederatedFit>,
    /// Attempts of the statistics round (it restarts when devices disagree on a column's
    /// kind).
    pub attempt: usize,
    /// Training rows per device.
    pub device_rows: BTreeMap<usize, u64>,
    /// Rows per class name over all devices.
    pub class_rows: BTreeMap<String, u64>,
    /// Each round's record (validation scores and what the app counted), round 1 first.
    pub rounds: Vec<iotids_federation::RoundRecord>,
}

/// What the app does next.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "next", rename_all = "snake_case")]
pub enum Next {
    /// Send `request` to every node as a `query` message.
    Query {
        /// The request (JSON).
        request: SummaryRequest,
    },
    /// The pipeline is fitted: train from `initial`.
    Train {
        /// The initial global model (the same seed's as `federate`'s).
        initial: Vec<f32>,
    },
}

impl ServerState {
    /// A fresh run: `spec` is how devices read their traffic.
    ///
    /// # Errors
    ///
    /// Bad federation or pipeline settings.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        federation: FederationConfig,
        flat: bool,
        pipeline: PipelineConfig,
        network: GruShape,
        train: TrainConfig,
        spec: IngestSpec,
        window: usize,
        window_by: WindowBy,
        device_deadline: f64,
        statistics_deadline: f64,
    ) -> Result<Self> {
        federation.check()?;
        if flat {
            for (setting, on) in [
                ("normalized_averaging", federation.normalized_averaging),
                ("secure_aggregation", federation.secure_aggregation),
                (
                    "dp_noise_multiplier",
                    federation.dp_noise_multiplier.is_some(),
                ),
                ("class_wise_head", federation.class_wise_head),
            ] {
                if on {
                    return Err(Error::config(
                        setting,
                        "on",
                        "off in a flat Flower run (devices directly under the SuperLink): \
                         it needs iotids edges; run edges or turn it off",
                    ));
                }
            }
            if federation.edge_rounds != 1 {
                return Err(Error::config(
                    "edge_rounds",
                    federation.edge_rounds,
                    "1 in a flat Flower run (no edges to run more)",
                ));
            }
        } else if federation.class_wise_head {
            return Err(Error::config(
                "class_wise_head",
                "on",
                "off on Flower: the cloud's stock strategy averages the output layer plainly",
            ));
        }
        if federation.validate_on == ValidationSite::Devices {
            return Err(Error::config(
                "validate_on",
                federation.validate_on,
                "cloud on Flower: the app scores each round on its validation file \
                 (validation on the devices runs on iotids' own network)",
            ));
        }
        let run = format!("{:016x}", rand::random::<u64>());
        let rosters = if flat {
            Vec::new()
        } else {
            (0..federation.edges)
                .map(|e| {
                    (0..federation.devices)
                        .filter(|&d| federation.edge_of(d) == e)
                        .collect()
                })
                .collect()
        };
        let fit = FederatedFit::new(spec.clone(), &pipeline)?;
        Ok(ServerState {
            version: STATE_VERSION,
            task: FlowerTask {
                run: run.clone(),
                rosters,
                members: Vec::new(),
                edge_aggregation: federation.edge_aggregation,
                device_deadline,
                statistics_deadline,
                plan: None,
            },
            federation,
            flat,
            pipeline,
            network,
            train,
            context: RunContext {
                run,
                ingest: spec,
                window,
                window_by,
                pipeline: None,
                network: None,
                validation: None,
            },
            fit: Some(fit),
            attempt: 1,
            device_rows: BTreeMap::new(),
            class_rows: BTreeMap::new(),
            rounds: Vec::new(),
        })
    }

    /// Reads the state at `path`.
    ///
    /// # Errors
    ///
    /// An unreadable file, another layout version.
    pub fn load(path: &std::path::Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::file(path, e))?;
        let s: ServerState = serde_json::from_slice(&bytes)
            .map_err(|e| Error::file(path, format!("not an iotids Flower server state ({e})")))?;
        if s.version != STATE_VERSION {
            return Err(Error::file(
                path,
                format!(
                    "state version {} where this build writes {STATE_VERSION}",
                    s.version
                ),
            ));
        }
        Ok(s)
    }

    /// Writes the state to `path` atomically.
    ///
    /// # Errors
    ///
    /// The file can't be written.
    pub fn save(&self, path: &std::path::Path) -> Result<()> {
        let tmp = path.with_extension("tmp");
        let bytes = serde_json::to_vec(self).map_err(|e| Error::file(&tmp, e))?;
        std::fs::write(&tmp, bytes).map_err(|e| Error::file(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| Error::file(path, e))
    }

    /// What the app does next: query the nodes, or train.
    ///
    /// # Errors
    ///
    /// A bad network shape for the fitted pipeline.
    pub fn next(&self) -> Result<Next> {
        if let Some(fit) = &self.fit
            && let Some(request) = fit.request()
        {
            return Ok(Next::Query { request });
        }
        let Some(network) = &self.context.network else {
            return Err(Error::Transport(
                "the statistics round has not ended".into(),
            ));
        };
        Ok(Next::Train {
            initial: initial_weights(&self.federation, network, &self.train)?,
        })
    }

    /// Absorbs the nodes' answers to the current request (one per node, any order); when the fit is
    /// complete, fixes the pipeline, the network, the members and the plan.
    ///
    /// # Errors
    ///
    /// Answers that do not merge, a failed fit, devices that keep disagreeing on column
    /// kinds.
    pub fn absorb(&mut self, mut answers: Vec<QueryAnswer>) -> Result<()> {
        // In device order, as `federate` and our cloud merge, whatever order Flower
        // delivered the replies in: the merged sketches and sums, and so the pipeline,
        // do not depend on it.
        answers.sort_by_key(|a| a.device_rows.keys().next().copied());
        let Some(fit) = &mut self.fit else {
            return Err(Error::Transport(
                "answers after the statistics round ended".into(),
            ));
        };
        let mut summaries = Vec::new();
        let mut categorical: Vec<String> = Vec::new();
        for a in answers {
            for (d, n) in a.device_rows {
                self.device_rows.entry(d).or_insert(n);
            }
            categorical.extend(a.categorical);
            summaries.extend(a.summary);
        }
        let merged = match crate::context::merge_all(summaries)? {
            Ok(m) if categorical.is_empty() => m,
            Ok(_) => return self.restart(categorical),
            Err(more) => {
                categorical.extend(more);
                return self.restart(categorical);
            }
        };
        let Some(merged) = merged else {
            return Err(Error::Peer {
                peer: "the nodes".into(),
                reason: "none answered the statistics request".into(),
            });
        };
        if let Answer::Survey(s) = &merged.answer {
            for c in s.classes.values() {
                *self.class_rows.entry(c.name.clone()).or_default() += c.rows;
            }
        }
        fit.absorb(merged)?;
        if fit.request().is_some() {
            return Ok(());
        }
        let Some(fit) = self.fit.take() else {
            unreachable!("checked above")
        };
        let pipeline = fit.finish()?;
        let network = self
            .network
            .for_data(pipeline.selected.len(), pipeline.classes.len());
        network.check()?;
        let key = |c: &str| iotids_data::schema::class_key(c);
        let counts: Vec<u64> = pipeline
            .classes
            .iter()
            .map(|p| {
                self.class_rows
                    .iter()
                    .filter(|(name, _)| key(name) == key(p))
                    .map(|(_, n)| n)
                    .sum()
            })
            .collect();
        let cfg = &self.federation;
        self.task.members = self
            .task
            .rosters
            .iter()
            .map(|r| {
                r.iter()
                    .copied()
                    .filter(|d| self.device_rows.get(d).is_some_and(|&n| n > 0))
                    .collect()
            })
            .collect();
        self.task.plan = Some(cloud_plan(cfg, &network, &self.train, counts)?);
        self.context.pipeline = Some(pipeline);
        self.context.network = Some(network);
        Ok(())
    }

    /// Starts the statistics round again with `columns` read as categorical everywhere.
    fn restart(&mut self, columns: Vec<String>) -> Result<()> {
        if self.attempt >= 4 {
            return Err(Error::Peer {
                peer: "the devices".into(),
                reason: format!("still disagree on the kinds of columns {columns:?}"),
            });
        }
        tracing::info!(
            ?columns,
            "columns numeric on some devices and text on others: read as categorical everywhere"
        );
        self.attempt += 1;
        for c in columns {
            if !self.context.ingest.categorical.contains(&c) {
                self.context.ingest.categorical.push(c);
            }
        }
        self.device_rows.clear();
        self.class_rows.clear();
        self.fit = Some(FederatedFit::new(
            self.context.ingest.clone(),
            &self.pipeline,
        )?);
        Ok(())
    }

    /// Records round `round`: its validation `scores` over what the app counted
    /// (`counted`: a JSON object of [`iotids_federation::RoundRecord`]'s fields, such as
    /// `train_loss`, `accepted`, `failed`, `seconds`). Rounds come in order; a round
    /// recorded again replaces the record.
    ///
    /// # Errors
    ///
    /// A round out of order, counts that are not the record's fields.
    pub fn record(
        &mut self,
        round: usize,
        scores: Option<Scores>,
        counted: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<()> {
        if round == 0 || round > self.rounds.len() + 1 {
            return Err(Error::config(
                "--round",
                round,
                format!(
                    "1..={} (rounds are recorded in order)",
                    self.rounds.len() + 1
                ),
            ));
        }
        let mut rec = serde_json::json!({
            "round": round,
            "train_loss": null, "train_accuracy": null,
            "validation_loss": scores.map(|s| s.loss),
            "validation_accuracy": scores.map(|s| s.accuracy),
            "validation_macro_f1": scores.map(|s| s.macro_f1),
            "sampled": 0, "accepted": 0, "failed": 0, "late": 0,
            "bytes_edge_to_devices": 0, "bytes_devices_to_edge": 0,
            "bytes_edges_to_cloud": 0, "bytes_cloud_to_edges": 0,
            "simulated_seconds": 0.0, "seconds": 0.0, "training_seconds": 0.0,
            "aggregation_seconds": 0.0, "evaluation_seconds": 0.0,
            "epsilon": self.epsilon_after(round),
            "secure_failures": 0, "secure_excluded": 0,
        });
        for (k, v) in counted {
            if !rec.as_object().is_some_and(|o| o.contains_key(k))
                || k.starts_with("validation_")
                || k == "round"
            {
                return Err(Error::config(
                    "--metrics",
                    k,
                    "a field of rounds.csv the app counts (train_loss, train_accuracy, sampled, \
                     accepted, failed, late, bytes_*, seconds, training_seconds, \
                     aggregation_seconds, secure_failures)",
                ));
            }
            rec[k] = v.clone();
        }
        let rec: iotids_federation::RoundRecord = serde_json::from_value(rec)
            .map_err(|e| Error::config("--metrics", "the counts", e.to_string()))?;
        self.rounds.truncate(round - 1);
        self.rounds.push(rec);
        Ok(())
    }

    /// The ε spent after `rounds` rounds (None: DP off), as the cloud accounts it.
    #[must_use]
    pub fn epsilon_after(&self, rounds: usize) -> Option<f64> {
        self.privacy_after(rounds).map(|r| r.epsilon)
    }

    /// The privacy report after `rounds` rounds (None: DP off).
    #[must_use]
    pub fn privacy_after(&self, rounds: usize) -> Option<iotids_privacy::PrivacyReport> {
        let cfg = self.federation.clone().resolve_privacy().ok()?;
        let sigma = cfg.dp_noise_multiplier?;
        let mut a = iotids_privacy::Accountant::new(cfg.fraction, sigma, cfg.delta()).ok()?;
        a.step(rounds as u64 * cfg.dp_steps_per_round());
        Some(a.report(cfg.dp_clip))
    }

    /// The round kept: the cloud's rule over the rounds recorded.
    #[must_use]
    pub fn best_round(&self) -> Option<usize> {
        let scores: Vec<_> = self
            .rounds
            .iter()
            .map(|r| (r.validation_macro_f1, r.validation_loss))
            .collect();
        iotids_federation::roles::best_round(&scores, self.federation.selection_window)
    }
}

/// The plan the cloud of `cfg` sends (as [`Cloud::new`] makes it), with the class counts
/// of the statistics round.
///
/// # Errors
///
/// Bad settings.
pub fn cloud_plan(
    cfg: &FederationConfig,
    network: &iotids_model::gru::GruConfig,
    train: &TrainConfig,
    class_counts: Vec<u64>,
) -> Result<Plan> {
    let validation = no_validation();
    let cloud = Cloud::new(cfg, network, train, validation.as_validation())?
        .with_class_counts(class_counts);
    Ok(cloud.plan().clone())
}

/// The initial global model of `cfg`'s cloud (the seed's, as `federate` starts).
///
/// # Errors
///
/// Bad settings.
pub fn initial_weights(
    cfg: &FederationConfig,
    network: &iotids_model::gru::GruConfig,
    train: &TrainConfig,
) -> Result<Vec<f32>> {
    let validation = no_validation();
    let cloud = Cloud::new(cfg, network, train, validation.as_validation())?;
    Ok(cloud.global().to_vec())
}

/// Empty validation windows (for a cloud built only for its plan and initial model).
struct NoValidation {
    sequences: iotids_data::window::Sequences,
}

fn no_validation() -> NoValidation {
    NoValidation {
        sequences: iotids_data::window::Sequences {
            features: iotids_data::pipeline::Matrix {
                rows: 0,
                cols: 0,
                data: Vec::new(),
            },
            windows: Vec::new(),
            k: 1,
        },
    }
}

impl NoValidation {
    fn as_validation(&self) -> Validation<'_> {
        Validation {
            examples: Examples {
                sequences: &self.sequences,
                labels: &[],
                rows: &[],
            },
            class_weights: &[],
        }
    }
}
