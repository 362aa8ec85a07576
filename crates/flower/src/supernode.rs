//! `SuperNode`: the node's loop. Connects (register + activate), heartbeats on its own task,
//! pulls messages, runs the caller's [`Handler`] on `train` / `evaluate`, pushes replies, and
//! on shutdown deactivates and unregisters.
//!
//! A SuperLink restart loses its node table: the loop then sees the SuperLink unreachable
//! (retried with backoff) and afterwards a 4xx for its unknown node id, and reconnects with
//! the same key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;

use crate::client::{FleetClient, PulledMessage};
use crate::error::{Error, Result};
use crate::objects::ObjectSet;
use crate::proto;
use crate::records::{Config, Metrics, Parameters, add_reply_content, decode_content};

/// An error a handler returns; it becomes an error reply to the ServerApp.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

/// The caller's training and evaluation. Runs on a blocking thread, so it may be CPU-bound.
pub trait Handler: Send + 'static {
    /// Trains from the global `params`; returns the updated parameters (same layout), the
    /// number of examples trained on (FedAvg's weight) and metrics.
    fn train(
        &mut self,
        params: &Parameters,
        config: &Config,
    ) -> std::result::Result<(Parameters, u64, Metrics), HandlerError>;

    /// Scores `params` on local data; returns the loss (sent as metric `"eval_loss"` unless
    /// the metrics carry one), the number of examples and metrics.
    fn evaluate(
        &mut self,
        params: &Parameters,
        config: &Config,
    ) -> std::result::Result<(f64, u64, Metrics), HandlerError>;

    /// Answers a `query` message (a ServerApp asking for something other than training or
    /// scoring: iotids' statistics round) with a config record and metrics. By default a
    /// node answers none.
    fn query(&mut self, config: &Config) -> std::result::Result<(Config, Metrics), HandlerError> {
        let _ = config;
        Err("this node answers no query messages".into())
    }
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunStats {
    /// `train` messages answered with a result.
    pub trained: u64,
    /// `evaluate` messages answered with a result.
    pub evaluated: u64,
    /// `query` messages answered with a result.
    pub queried: u64,
    /// Messages answered with an error (handler failure, unknown type, bad content).
    pub errors: u64,
    /// Times the node reconnected after losing the SuperLink.
    pub reconnects: u64,
}

/// The message types a node answers.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Train,
    Evaluate,
    Query,
}

/// What a handler answered, before it becomes records.
struct Reply {
    kind: Kind,
    params: Option<Parameters>,
    config: Option<Config>,
    examples: u64,
    metrics: Metrics,
}

/// Flower's `ErrorCode.CLIENT_APP_RAISED_EXCEPTION`.
const CLIENT_APP_RAISED_EXCEPTION: i64 = 2;

/// A Flower SuperNode backed by a [`FleetClient`].
#[derive(Debug)]
pub struct SuperNode {
    client: Arc<FleetClient>,
    register: bool,
    poll_interval: Duration,
    max_messages: Option<u64>,
}

impl SuperNode {
    /// A node that registers its key itself (`register = true`, SuperLinks without
    /// `--enable-supernode-auth`) or uses a pre-registered one (`false`).
    #[must_use]
    pub fn new(client: FleetClient, register: bool) -> Self {
        Self {
            client: Arc::new(client),
            register,
            poll_interval: Duration::from_millis(500),
            max_messages: None,
        }
    }

    /// Stops after answering this many messages (tests); default: run until shutdown.
    #[must_use]
    pub fn max_messages(mut self, n: Option<u64>) -> Self {
        self.max_messages = n;
        self
    }

    /// How long to wait between empty pulls (default 500 ms).
    #[must_use]
    pub fn poll_interval(mut self, d: Duration) -> Self {
        self.poll_interval = d;
        self
    }

    /// The client.
    #[must_use]
    pub fn client(&self) -> &FleetClient {
        &self.client
    }

    /// Runs until Ctrl-C / SIGTERM (or `max_messages`), then deactivates and unregisters.
    pub async fn run<H: Handler>(&self, handler: H) -> Result<RunStats> {
        self.run_until(handler, shutdown_signal()).await
    }

    /// Runs until `shutdown` completes (or `max_messages`), then deactivates and
    /// unregisters.
    pub async fn run_until<H: Handler>(
        &self,
        handler: H,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> Result<RunStats> {
        let node_id = self.client.connect(self.register).await?;
        tracing::info!(
            "node {node_id} active at {}",
            self.client.config().superlink
        );
        let hb = tokio::spawn(heartbeat_loop(Arc::clone(&self.client)));
        let mut stats = RunStats::default();
        let result = tokio::select! {
            r = self.serve(handler, &mut stats) => r,
            () = shutdown => { tracing::info!("shutting down"); Ok(()) }
        };
        hb.abort();
        // Leave cleanly; failures here are logged, not fatal.
        let leave = async {
            if let Err(e) = self.client.deactivate().await {
                tracing::warn!("deactivate: {e}");
            }
            if self.register
                && let Err(e) = self.client.unregister().await
            {
                tracing::warn!("unregister: {e}");
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(10), leave).await;
        result.map(|()| stats)
    }

    async fn serve<H: Handler>(&self, mut handler: H, stats: &mut RunStats) -> Result<()> {
        let backoff = self.client.config().backoff;
        let mut failures = 0u32;
        loop {
            let pulled = match self.client.pull_message().await {
                Ok(p) => {
                    failures = 0;
                    p
                }
                Err(e) if e.is_transient() => {
                    let d = backoff.delay(failures);
                    tracing::warn!("{e}; retrying in {:.1} s", d.as_secs_f64());
                    failures += 1;
                    tokio::time::sleep(d).await;
                    continue;
                }
                // The SuperLink no longer knows this node (it restarted): reconnect.
                Err(Error::Http { status, rpc, body }) if (400..500).contains(&status) => {
                    tracing::warn!("HTTP {status} from /v1/fleet/{rpc}: {body}; reconnecting");
                    let id = self.client.connect(self.register).await?;
                    tracing::info!("reconnected as node {id}");
                    stats.reconnects += 1;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let Some(msg) = pulled else {
                tokio::time::sleep(self.poll_interval).await;
                continue;
            };
            handler = self.answer(handler, msg, stats).await?;
            let answered = stats.trained + stats.evaluated + stats.queried + stats.errors;
            if self.max_messages.is_some_and(|m| answered >= m) {
                return Ok(());
            }
        }
    }

    /// Handles one message and pushes the reply; gives the handler back.
    async fn answer<H: Handler>(
        &self,
        handler: H,
        msg: PulledMessage,
        stats: &mut RunStats,
    ) -> Result<H> {
        let md = msg.metadata.clone();
        let kind = md
            .message_type
            .split('.')
            .next()
            .unwrap_or_default()
            .to_owned();
        let started = Instant::now();
        let content = decode_content(&msg.objects, &md.message_id);
        tracing::info!(
            "{} message {} (run {}, group {:?})",
            md.message_type,
            &md.message_id[..md.message_id.len().min(12)],
            md.run_id,
            md.group_id
        );
        // Run the handler on a blocking thread; heartbeats continue meanwhile.
        let (handler, outcome) = tokio::task::spawn_blocking(move || {
            let mut handler = handler;
            let outcome = match content {
                Err(e) => Err(e.to_string()),
                Ok(content) => {
                    let params = content.parameters.unwrap_or_default();
                    match kind.as_str() {
                        "train" => handler
                            .train(&params, &content.config)
                            .map(|(p, n, m)| Reply {
                                kind: Kind::Train,
                                params: Some(p),
                                config: None,
                                examples: n,
                                metrics: m,
                            })
                            .map_err(|e| e.to_string()),
                        "evaluate" => handler
                            .evaluate(&params, &content.config)
                            .map(|(loss, n, mut m)| {
                                m.entry("eval_loss".to_owned()).or_insert(loss);
                                Reply {
                                    kind: Kind::Evaluate,
                                    params: None,
                                    config: None,
                                    examples: n,
                                    metrics: m,
                                }
                            })
                            .map_err(|e| e.to_string()),
                        "query" => handler
                            .query(&content.config)
                            .map(|(c, m)| Reply {
                                kind: Kind::Query,
                                params: None,
                                config: Some(c),
                                examples: 0,
                                metrics: m,
                            })
                            .map_err(|e| e.to_string()),
                        other => Err(format!("message type {other:?} is not supported")),
                    }
                }
            };
            (handler, outcome)
        })
        .await
        .map_err(|e| Error::Handler(format!("handler panicked: {e}")))?;

        let mut set = ObjectSet::default();
        let (children, error) = match outcome {
            Ok(reply) => {
                match add_reply_content(
                    &mut set,
                    reply.params.as_ref(),
                    reply.config.as_ref(),
                    reply.examples,
                    &reply.metrics,
                ) {
                    Ok(rd) => {
                        match reply.kind {
                            Kind::Train => stats.trained += 1,
                            Kind::Evaluate => stats.evaluated += 1,
                            Kind::Query => stats.queried += 1,
                        }
                        (vec![rd], None)
                    }
                    Err(e) => {
                        stats.errors += 1;
                        (Vec::new(), Some(e.to_string()))
                    }
                }
            }
            Err(reason) => {
                stats.errors += 1;
                (Vec::new(), Some(reason))
            }
        };
        if let Some(reason) = &error {
            tracing::warn!("replying with an error: {reason}");
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or_default();
        let mut meta = proto::Metadata {
            run_id: md.run_id,
            message_id: String::new(),
            src_node_id: md.dst_node_id,
            dst_node_id: md.src_node_id,
            reply_to_message_id: md.message_id.clone(),
            group_id: md.group_id.clone(),
            ttl: (md.created_at + md.ttl - now).max(1.0),
            message_type: md.message_type.clone(),
            created_at: now,
            src_task_id: md.dst_task_id,
            dst_task_id: md.src_task_id,
        };
        let body = proto::Message {
            metadata: Some(meta.clone()),
            content: None,
            error: error.map(|reason| proto::Error {
                code: CLIENT_APP_RAISED_EXCEPTION,
                reason,
            }),
        };
        let root = set.add("Message", children, &body.encode_to_vec());
        meta.message_id.clone_from(&root);
        let runtime = started.elapsed().as_secs_f64();
        let pushed = self
            .client
            .config()
            .backoff
            .retry("pushing the reply", || {
                self.client.push_reply(meta.clone(), &set, &root, runtime)
            })
            .await?;
        tracing::info!(
            "replied {} ({pushed} objects pushed, {:.3} s)",
            &root[..12],
            runtime
        );
        Ok(handler)
    }
}

/// Sends a heartbeat every interval; retries sooner when one fails.
async fn heartbeat_loop(client: Arc<FleetClient>) {
    // Like flwr (HEARTBEAT_BASE_MULTIPLIER): beat at 0.8x the declared interval.
    let interval = Duration::from_secs_f64(client.config().heartbeat_interval.max(1.0) * 0.8);
    loop {
        tokio::time::sleep(interval).await;
        let mut attempt = 0;
        loop {
            match client.heartbeat().await {
                Ok(true) => break,
                Ok(false) => tracing::warn!("heartbeat refused by the SuperLink"),
                Err(e) => tracing::warn!("heartbeat: {e}"),
            }
            // Retry well within the 2× interval the SuperLink allows.
            let d = client.config().backoff.delay(attempt).min(interval / 4);
            attempt += 1;
            tokio::time::sleep(d).await;
            if attempt > 8 {
                break;
            }
        }
    }
}

/// Completes on Ctrl-C or (on Unix) SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
