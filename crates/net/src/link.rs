//! The round logic's [`Link`]s over the network: an edge's link to its devices
//! ([`DeviceLink`]) and the cloud's link to its edges ([`EdgeLink`]). Each encodes the
//! model once, opens an exchange on its [`Hub`], blocks on the runtime until it closes,
//! and turns the checked answers back into the round logic's updates. The round logic
//! ([`iotids_federation::roles`]) is the one the simulation runs, line for line.

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
        let task = proto::Task {
            id: task_id(&self.run, model),
            kind: Some(proto::task::Kind::Train(proto::Train {
                model: Some(wire::model_to_wire(model)),
                ..proto::Train::default()
            })),
            ..proto::Task::default()
        };
        let sent = Arc::new(model.clone());
        let checked = sent.clone();
        let check: Check = Box::new(move |peer, answer| match &answer.kind {
            Some(proto::answer::Kind::DeviceUpdate(u)) => {
                wire::device_update_from_wire(peer, u, &checked).map(|_| ())
            }
            _ => Err("not a device update".into()),
        });
        let tasks = peers.iter().map(|&p| (p, task.clone())).collect();
        let c = self.runtime.block_on(self.hub.exchange(
            tasks,
            policy(wait, self.fallback_deadline),
            check,
        ));
        let mut updates = Vec::with_capacity(c.answers.len());
        for (peer, answer) in &c.answers {
            if let Some(proto::answer::Kind::DeviceUpdate(u)) = &answer.kind {
                updates.push(wire::device_update_from_wire(*peer, u, &sent).map_err(
                    |problem| iotids_federation::Error::Protocol {
                        peer: format!("device {peer}"),
                        problem,
                        expected: "an update that passed its checks".into(),
                    },
                )?);
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
                        })),
                        ..proto::Task::default()
                    },
                )
            })
            .collect();
        let sent = Arc::new(model.clone());
        let checked = sent.clone();
        let check: Check = Box::new(move |edge, answer| match &answer.kind {
            Some(proto::answer::Kind::EdgeUpdate(u)) => {
                wire::edge_update_from_wire(edge, u, &checked).map(|_| ())
            }
            _ => Err("not an edge update".into()),
        });
        let c = self.runtime.block_on(self.hub.exchange(
            tasks,
            policy(wait, self.edge_deadline),
            check,
        ));
        let mut updates = Vec::with_capacity(c.answers.len());
        for (edge, answer) in &c.answers {
            if let Some(proto::answer::Kind::EdgeUpdate(u)) = &answer.kind {
                updates.push(
                    wire::edge_update_from_wire(*edge, u, &sent).map_err(|problem| {
                        iotids_federation::Error::Protocol {
                            peer: format!("edge {edge}"),
                            problem,
                            expected: "an update that passed its checks".into(),
                        }
                    })?,
                );
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
}
