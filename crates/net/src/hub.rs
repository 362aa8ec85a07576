//! One tier's server side: who may join, the task each peer is to pull, and the answers
//! of the exchange in progress. The cloud keeps one for its edges, an edge one for its
//! devices; [`crate::link`] drives it from the round logic.
//!
//! Peers pull (a long poll) rather than being called, so a node behind NAT or a firewall
//! that only lets it dial out can take part, and a node that restarts simply pulls again:
//! its task is still there until it answers or the exchange closes. An exchange closes
//! when every peer asked has answered; or at its deadline once a quorum has; or at its
//! give-up time. Whoever has not answered then is `late` if it is still heard from
//! (heartbeats while it trains) and `failed` if not.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use iotids_federation::message::{Delivery, PeerOutcome};
use prost::Message;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::certs::Node;
use crate::proto;
use crate::tls::Peer;

/// The protocol version of `proto/` this build speaks.
pub const PROTOCOL: u32 = 1;

/// Which nodes a hub serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tier {
    /// The cloud's hub: edges `0..count`.
    Edges {
        /// Edges of the federation.
        count: usize,
    },
    /// An edge's hub: the devices assigned to it (its roster, from the cloud).
    Devices {
        /// The edge.
        edge: usize,
    },
}

/// A check of an answer before it may count: Err(reason) rejects it.
pub type Check = Box<dyn Fn(usize, &proto::Answer) -> Result<(), String> + Send + Sync>;

/// A watcher of every answer an admitted peer pushes, before any check ([`Hub::tap`]).
pub type Tap = Arc<dyn Fn(usize, &proto::Answer) + Send + Sync>;

/// How long an exchange waits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Policy {
    /// Until then every answer is waited for.
    pub deadline: Duration,
    /// Past the deadline, answers waited for (0: none).
    pub quorum: usize,
    /// When the exchange closes whatever has arrived.
    pub give_up: Duration,
}

impl Policy {
    /// Waits `deadline` seconds, and past it for `quorum` answers up to three deadlines.
    pub fn new(deadline: f64, quorum: usize) -> Policy {
        let deadline = Duration::from_secs_f64(deadline.max(0.0));
        Policy {
            deadline,
            quorum,
            give_up: if quorum > 0 { deadline * 3 } else { deadline },
        }
    }
}

/// What an exchange brought back.
#[derive(Debug, Clone, PartialEq)]
pub struct Collected {
    /// The accepted answers, in the order the peers were asked.
    pub answers: Vec<(usize, proto::Answer)>,
    /// Every peer asked, in order, and what became of it.
    pub outcomes: Vec<PeerOutcome>,
    /// Bytes of the tasks the peers pulled.
    pub bytes_down: u64,
    /// Bytes of the answers that arrived (rejected ones included).
    pub bytes_up: u64,
    /// Wall seconds from opening to closing.
    pub seconds: f64,
    /// Peers that answered they could not do the task, with their reasons.
    pub failures: Vec<(usize, String)>,
}

#[derive(Default)]
struct State {
    roster: Option<BTreeSet<usize>>,
    /// The cloud's hub: each edge's assigned devices, told at join.
    rosters: Vec<Vec<usize>>,
    context: Option<(String, Arc<Vec<u8>>)>,
    open: Option<Open>,
    finish: Option<String>,
    last_seen: HashMap<usize, Instant>,
}

struct Open {
    tasks: HashMap<usize, proto::Task>,
    answered: HashMap<usize, proto::Answer>,
    check: Check,
    bytes_down: u64,
    bytes_up: u64,
}

/// One tier's shared state, served by [`Service`] and driven by [`Hub::exchange`].
pub struct Hub {
    tier: Tier,
    run: String,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
    refused: Arc<AtomicU64>,
    rejected: AtomicU64,
    tap: Mutex<Option<Tap>>,
    /// A long poll's longest wait.
    pub poll: Duration,
    /// How often peers heartbeat while they work.
    pub heartbeat: Duration,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("tier", &self.tier)
            .field("run", &self.run)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub for `tier` in run `run`; refused connections count into `refused`.
    pub fn new(tier: Tier, run: String, refused: Arc<AtomicU64>) -> Arc<Hub> {
        Arc::new(Hub {
            tier,
            run,
            state: Mutex::new(State::default()),
            changed: watch::channel(0).0,
            refused,
            rejected: AtomicU64::new(0),
            tap: Mutex::new(None),
            poll: Duration::from_secs(15),
            heartbeat: Duration::from_secs(1),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep serving.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn wake(&self) {
        self.changed.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// The run this hub serves.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// Connections and requests refused so far (TLS and admission).
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Answers rejected so far (stale, duplicated, malformed).
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Shows `tap` every answer an admitted peer pushes from now on, as it arrives and
    /// before any check: what this hub learns from its peers, for audits and tests (that
    /// an edge under secure aggregation only ever receives masked updates, say).
    pub fn tap(&self, tap: Tap) {
        *self
            .tap
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(tap);
    }

    /// Sets the devices an edge's hub admits.
    pub fn set_roster(&self, devices: impl IntoIterator<Item = usize>) {
        self.lock().roster = Some(devices.into_iter().collect());
        self.wake();
    }

    /// The devices an edge's hub admits, ascending (empty before the cloud said).
    pub fn roster(&self) -> Vec<usize> {
        self.lock()
            .roster
            .as_ref()
            .map(|r| r.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Sets each edge's assigned devices (the cloud's hub), told to each edge at join.
    pub fn set_rosters(&self, rosters: Vec<Vec<usize>>) {
        self.lock().rosters = rosters;
    }

    /// Sets the run context handed to peers whose digest differs.
    pub fn set_context(&self, digest: String, bytes: Arc<Vec<u8>>) {
        self.lock().context = Some((digest, bytes));
        self.wake();
    }

    /// Tells every peer that pulls from now on that the run is over.
    pub fn finish(&self, reason: &str) {
        self.lock().finish = Some(reason.to_string());
        self.wake();
    }

    /// Peers heard from within `within`.
    pub fn alive(&self, within: Duration) -> BTreeSet<usize> {
        let now = Instant::now();
        self.lock()
            .last_seen
            .iter()
            .filter(|(_, t)| now.duration_since(**t) <= within)
            .map(|(&p, _)| p)
            .collect()
    }

    fn refuse(&self, peer: &Peer, code: tonic::Code, reason: String) -> Status {
        if code == tonic::Code::PermissionDenied {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        tracing::warn!(peer = %peer.addr, node = %peer.node, %reason, "refused");
        Status::new(code, reason)
    }

    /// The peer's id if it may talk to this hub.
    fn admit(&self, peer: &Peer) -> Result<usize, Status> {
        match (self.tier, peer.node) {
            (Tier::Edges { count }, Node::Edge(e)) if e < count => Ok(e),
            (Tier::Edges { count }, node) => Err(self.refuse(
                peer,
                tonic::Code::PermissionDenied,
                format!(
                    "{node} is not an edge of this federation (edge-0 to edge-{})",
                    count.saturating_sub(1)
                ),
            )),
            (Tier::Devices { edge }, Node::Device(d)) => match &self.lock().roster {
                None => Err(Status::unavailable(format!(
                    "edge-{edge} has not joined its cloud yet: try again"
                ))),
                Some(r) if r.contains(&d) => Ok(d),
                Some(_) => Err(self.refuse(
                    peer,
                    tonic::Code::PermissionDenied,
                    format!("device-{d} is not assigned to edge-{edge}"),
                )),
            },
            (Tier::Devices { edge }, node) => Err(self.refuse(
                peer,
                tonic::Code::PermissionDenied,
                format!("{node} is not a device: edge-{edge} serves devices only"),
            )),
        }
    }

    fn seen(&self, id: usize) {
        self.lock().last_seen.insert(id, Instant::now());
    }

    /// Opens an exchange: each `(peer, task)` is handed to that peer when it pulls; waits
    /// as `policy` says; closes and reports.
    pub async fn exchange(
        &self,
        tasks: Vec<(usize, proto::Task)>,
        policy: Policy,
        check: Check,
    ) -> Collected {
        let order: Vec<usize> = tasks.iter().map(|(p, _)| *p).collect();
        let asked = order.len();
        let mut rx = self.changed.subscribe();
        {
            let mut s = self.lock();
            s.open = Some(Open {
                tasks: tasks.into_iter().collect(),
                answered: HashMap::new(),
                check,
                bytes_down: 0,
                bytes_up: 0,
            });
        }
        self.wake();
        let start = tokio::time::Instant::now();
        loop {
            rx.borrow_and_update();
            let answered = self.lock().open.as_ref().map_or(0, |o| o.answered.len());
            let elapsed = start.elapsed();
            if answered >= asked
                || (elapsed >= policy.deadline && answered >= policy.quorum)
                || elapsed >= policy.give_up
            {
                break;
            }
            let next = if elapsed < policy.deadline {
                policy.deadline
            } else {
                policy.give_up
            };
            tokio::select! {
                _ = tokio::time::sleep_until(start + next) => {}
                _ = rx.changed() => {}
            }
        }
        let seconds = start.elapsed().as_secs_f64();
        let (open, last_seen) = {
            let mut s = self.lock();
            (s.open.take(), s.last_seen.clone())
        };
        self.wake();
        let Some(mut open) = open else {
            unreachable!("only exchange() opens and closes the exchange");
        };
        let now = Instant::now();
        let heard = |p: usize| {
            last_seen
                .get(&p)
                .is_some_and(|t| now.duration_since(*t) <= self.heartbeat * 3)
        };
        let mut out = Collected {
            answers: Vec::new(),
            outcomes: Vec::with_capacity(asked),
            bytes_down: open.bytes_down,
            bytes_up: open.bytes_up,
            seconds,
            failures: Vec::new(),
        };
        for p in order {
            let delivery = match open.answered.remove(&p) {
                Some(proto::Answer {
                    kind: Some(proto::answer::Kind::Failure(f)),
                    ..
                }) => {
                    out.failures.push((p, f.reason));
                    Delivery::Failed
                }
                Some(a) => {
                    out.answers.push((p, a));
                    Delivery::Accepted
                }
                None if heard(p) => Delivery::Late,
                None => Delivery::Failed,
            };
            out.outcomes.push(PeerOutcome { peer: p, delivery });
        }
        out
    }

    async fn pull(&self, id: usize, digest: &str) -> proto::Task {
        let mut rx = self.changed.subscribe();
        let until = tokio::time::Instant::now() + self.poll;
        loop {
            rx.borrow_and_update();
            {
                let mut s = self.lock();
                s.last_seen.insert(id, Instant::now());
                let context = s.context.clone();
                if let Some(reason) = &s.finish {
                    return proto::Task {
                        id: "finish".into(),
                        kind: Some(proto::task::Kind::Finish(proto::Finish {
                            reason: reason.clone(),
                        })),
                        ..proto::Task::default()
                    };
                }
                if let Some(open) = s.open.as_mut()
                    && !open.answered.contains_key(&id)
                    && let Some(task) = open.tasks.get(&id)
                {
                    let mut task = task.clone();
                    if let Some((d, bytes)) = context
                        && d != digest
                    {
                        task.context_digest = d;
                        task.context = bytes.as_ref().clone();
                    }
                    open.bytes_down += task.encoded_len() as u64;
                    return task;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep_until(until) => {
                    return proto::Task {
                        id: String::new(),
                        kind: Some(proto::task::Kind::Idle(proto::Idle {})),
                        ..proto::Task::default()
                    };
                }
                _ = rx.changed() => {}
            }
        }
    }

    fn push(&self, peer: &Peer, id: usize, answer: proto::Answer) -> proto::Ack {
        let reject = |reason: String| {
            self.rejected.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(peer = %peer.addr, node = %peer.node, %reason, "rejected an answer");
            proto::Ack {
                accepted: false,
                reason,
            }
        };
        let tap = self
            .tap
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        if let Some(tap) = tap {
            tap(id, &answer);
        }
        let mut s = self.lock();
        s.last_seen.insert(id, Instant::now());
        let Some(open) = s.open.as_mut() else {
            return reject(format!(
                "late or stale: no exchange is open (answer to task `{}`)",
                answer.task
            ));
        };
        open.bytes_up += answer.encoded_len() as u64;
        let Some(task) = open.tasks.get(&id) else {
            return reject(format!("{} was not asked in this exchange", peer.node));
        };
        if task.id != answer.task {
            return reject(format!(
                "stale: an answer to task `{}` where the open task is `{}`",
                answer.task, task.id
            ));
        }
        if open.answered.contains_key(&id) {
            return reject(format!("duplicate: task `{}` is already answered", task.id));
        }
        if let Some(proto::answer::Kind::Failure(f)) = &answer.kind {
            tracing::warn!(peer = %peer.addr, node = %peer.node, reason = %f.reason, "a peer could not do its task");
        } else if let Err(reason) = (open.check)(id, &answer) {
            return reject(reason);
        }
        open.answered.insert(id, answer);
        drop(s);
        self.wake();
        proto::Ack {
            accepted: true,
            reason: String::new(),
        }
    }
}

/// The gRPC service over a [`Hub`].
#[derive(Debug, Clone)]
pub struct Service {
    hub: Arc<Hub>,
}

impl Service {
    /// Serves `hub`.
    pub fn new(hub: Arc<Hub>) -> Service {
        Service { hub }
    }

    fn peer<T>(&self, req: &Request<T>) -> Result<(Peer, usize), Status> {
        let peer = req
            .extensions()
            .get::<Peer>()
            .cloned()
            .ok_or_else(|| Status::unauthenticated("no authenticated peer"))?;
        let id = self.hub.admit(&peer)?;
        Ok((peer, id))
    }
}

#[tonic::async_trait]
impl proto::aggregator_server::Aggregator for Service {
    async fn join(
        &self,
        req: Request<proto::JoinRequest>,
    ) -> Result<Response<proto::JoinReply>, Status> {
        let (peer, id) = self.peer(&req)?;
        if req.get_ref().protocol != PROTOCOL {
            return Err(self.hub.refuse(
                &peer,
                tonic::Code::FailedPrecondition,
                format!(
                    "protocol {} where this node speaks protocol {PROTOCOL}",
                    req.get_ref().protocol
                ),
            ));
        }
        self.hub.seen(id);
        tracing::info!(peer = %peer.addr, node = %peer.node, "joined");
        Ok(Response::new(proto::JoinReply {
            protocol: PROTOCOL,
            run: self.hub.run.clone(),
            node: id as u32,
            heartbeat_seconds: self.hub.heartbeat.as_secs_f64(),
            roster: match peer.node {
                Node::Edge(e) => self
                    .hub
                    .lock()
                    .rosters
                    .get(e)
                    .map(|r| r.iter().map(|&d| d as u32).collect())
                    .unwrap_or_default(),
                _ => Vec::new(),
            },
        }))
    }

    async fn pull(
        &self,
        req: Request<proto::PullRequest>,
    ) -> Result<Response<proto::Task>, Status> {
        let (_, id) = self.peer(&req)?;
        let task = self.hub.pull(id, &req.get_ref().context_digest).await;
        Ok(Response::new(task))
    }

    async fn push(&self, req: Request<proto::Answer>) -> Result<Response<proto::Ack>, Status> {
        let (peer, id) = self.peer(&req)?;
        Ok(Response::new(self.hub.push(&peer, id, req.into_inner())))
    }

    async fn heartbeat(
        &self,
        req: Request<proto::HeartbeatRequest>,
    ) -> Result<Response<proto::Ack>, Status> {
        let (_, id) = self.peer(&req)?;
        self.hub.seen(id);
        Ok(Response::new(proto::Ack {
            accepted: true,
            reason: String::new(),
        }))
    }
}
