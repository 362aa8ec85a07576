//! The round logic's [`Link`]s over the network: an edge's link to its devices
//! ([`DeviceLink`]) and the cloud's link to its edges ([`EdgeLink`]). Each encodes the
//! model once, opens an exchange on its [`Hub`], blocks on the runtime until it closes,
//! and turns the checked answers back into the round logic's updates. The round logic
//! ([`iotids_federation::roles`]) is the one the simulation runs, line for line. Under
//! secure aggregation (the plan's `secure`), an edge round is the four exchanges of
//! [`crate::secure`] and the link hands the round logic only the unmasked sum.

use std::sync::Arc;

use iotids_federation::aggregate::Aggregation;
use iotids_federation::message::{DeviceUpdate, EdgeUpdate, GlobalModel};
use iotids_federation::transport::{Arrived, Exchange, Link, Wait};
use tokio::runtime::Handle;

use crate::hub::{Check, Hub, Policy};
use crate::proto;
use crate::wire;

/// The id of the task carrying `model` in run `run`.
pub fn task_id(run: &str, model: &GlobalModel) -> String {
    format!(
        "{run}/round-{}/edge-round-{}",
        model.round, model.edge_round
    )
}

/// An edge's link to its devices.
#[derive(Debug, Clone)]
pub struct DeviceLink {
    hub: Arc<Hub>,
    runtime: Handle,
    run: String,
    /// Seconds to wait when the plan sets no deadline.
    fallback_deadline: f64,
}

impl DeviceLink {
    /// A link over `hub`, blocking on `runtime` (call it off the runtime's threads).
    pub fn new(hub: Arc<Hub>, runtime: Handle, run: String, fallback_deadline: f64) -> Self {
        DeviceLink {
            hub,
            runtime,
            run,
            fallback_deadline,
        }
    }
}

fn policy(wait: Wait, fallback: f64) -> Policy {
    Policy::new(wait.deadline.unwrap_or(fallback), wait.quorum)
}

impl Link<DeviceUpdate> for DeviceLink {
    fn exchange(
        &mut self,
        model: &GlobalModel,
        peers: &[usize],
        wait: Wait,
    ) -> iotids_federation::Result<Exchange<DeviceUpdate>> {
        if let Some(secure) = &model.plan.secure {
            // Stages without training wait no longer than the plan would for training,
            // and never long: a device that does not answer them drops out.
            let stage = wait
                .deadline
                .unwrap_or(f64::INFINITY)
                .min(self.fallback_deadline)
                .min(crate::secure::STAGE_DEADLINE_CAP);
            return Ok(crate::secure::exchange(
                &self.hub,
                &self.runtime,
                &task_id(&self.run, model),
                model,
                secure,
                peers,
                policy(wait, self.fallback_deadline),
                Policy::new(stage, 0),
            ));
        }
        let task = proto::Task {
            id: task_id(&self.run, model),
            kind: Some(proto::task::Kind::Train(proto::Train {
                model: Some(wire::model_to_wire(model)),
                ..proto::Train::default()
            })),
            ..proto::Task::default()
        };
        let tasks = peers.iter().map(|&p| (p, task.clone())).collect();
        exchange(
            &self.hub,
            &self.runtime,
            tasks,
            policy(wait, self.fallback_deadline),
            model,
            decode_device,
        )
    }
}

/// The cloud's link to its edges: each edge gets the model with its members (its devices
/// that hold rows) and the edges' aggregation rule.
#[derive(Debug, Clone)]
pub struct EdgeLink {
    hub: Arc<Hub>,
    runtime: Handle,
    run: String,
    members: Vec<Vec<usize>>,
    aggregation: Aggregation,
    device_deadline: f64,
    edge_deadline: f64,
}

impl EdgeLink {
    /// A link over `hub`; `members[e]`: edge e's devices; edges wait `device_deadline`
    /// seconds for devices when the plan sets none, the cloud `edge_deadline` for edges
    /// when its wait sets none.
    pub fn new(
        hub: Arc<Hub>,
        runtime: Handle,
        run: String,
        members: Vec<Vec<usize>>,
        aggregation: Aggregation,
        device_deadline: f64,
        edge_deadline: f64,
    ) -> Self {
        EdgeLink {
            hub,
            runtime,
            run,
            members,
            aggregation,
            device_deadline,
            edge_deadline,
        }
    }
}

impl Link<EdgeUpdate> for EdgeLink {
    fn exchange(
        &mut self,
        model: &GlobalModel,
        peers: &[usize],
        wait: Wait,
    ) -> iotids_federation::Result<Exchange<EdgeUpdate>> {
        let down = wire::model_to_wire(model);
        let id = task_id(&self.run, model);
        let tasks = peers
            .iter()
            .map(|&e| {
                let members = self.members.get(e).cloned().unwrap_or_default();
                (
                    e,
                    proto::Task {
                        id: id.clone(),
                        kind: Some(proto::task::Kind::Train(proto::Train {
                            model: Some(down.clone()),
                            members: members.iter().map(|&d| d as u32).collect(),
                            aggregation: self.aggregation.to_string(),
                            device_deadline: self.device_deadline,
                            secagg_inbox: Vec::new(),
                        })),
                        ..proto::Task::default()
                    },
                )
            })
            .collect();
        exchange(
            &self.hub,
            &self.runtime,
            tasks,
            policy(wait, self.edge_deadline),
            model,
            decode_edge,
        )
    }
}

/// A device's update in `answer`, checked against the model it answers (None: not one).
fn decode_device(
    peer: usize,
    answer: &proto::Answer,
    sent: &GlobalModel,
) -> Option<Result<DeviceUpdate, wire::Problem>> {
    match &answer.kind {
        Some(proto::answer::Kind::DeviceUpdate(u)) => {
            Some(wire::device_update_from_wire(peer, u, sent))
        }
        _ => None,
    }
}

/// An edge's update in `answer`, checked against the model it answers (None: not one).
fn decode_edge(
    peer: usize,
    answer: &proto::Answer,
    sent: &GlobalModel,
) -> Option<Result<EdgeUpdate, wire::Problem>> {
    match &answer.kind {
        Some(proto::answer::Kind::EdgeUpdate(u)) => {
            Some(wire::edge_update_from_wire(peer, u, sent))
        }
        _ => None,
    }
}

type Decode<Up> = fn(usize, &proto::Answer, &GlobalModel) -> Option<Result<Up, wire::Problem>>;

/// Opens the exchange on `hub` (answers checked by `decode` as they arrive), blocks until
/// it closes, and turns the accepted answers into the round logic's updates.
fn exchange<Up: 'static>(
    hub: &Hub,
    runtime: &Handle,
    tasks: Vec<(usize, proto::Task)>,
    policy: Policy,
    model: &GlobalModel,
    decode: Decode<Up>,
) -> iotids_federation::Result<Exchange<Up>> {
    let sent = Arc::new(model.clone());
    let checked = sent.clone();
    let check: Check = Box::new(move |peer, answer| match decode(peer, answer, &checked) {
        Some(r) => r.map(|_| ()),
        None => Err("an answer of another kind than the task asked".into()),
    });
    let c = runtime.block_on(hub.exchange(tasks, policy, check));
    let mut updates = Vec::with_capacity(c.answers.len());
    for (peer, answer) in &c.answers {
        if let Some(r) = decode(*peer, answer, &sent) {
            updates.push(r.map_err(|problem| iotids_federation::Error::Protocol {
                peer: format!("peer {peer}"),
                problem,
                expected: "an update that passed its checks".into(),
            })?);
        }
    }
    Ok(Exchange {
        outcomes: c.outcomes,
        arrived: Arrived::Each(updates),
        bytes_down: c.bytes_down,
        bytes_up: c.bytes_up,
        seconds: c.seconds,
    })
}
