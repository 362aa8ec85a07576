//! How a model reaches a tier's peers and their updates come back: the [`Link`] trait, and
//! [`InProcess`] / [`InProcessEdges`], the links of the one-process simulation.
//!
//! The round logic of [`crate::roles`] only ever calls [`Link::exchange`]: send this model
//! to these peers, wait as told, and say what came back, from whom, what became of every
//! peer asked (accepted, failed, late) and how many bytes moved. Everything about the
//! medium stays behind it, so a new transport is a new implementation of this trait and
//! nothing else changes. One trait serves both exchanges of the hierarchy:
//! `Link<DeviceUpdate>` is an edge's link to its devices, `Link<EdgeUpdate>` the cloud's
//! link to its edges.
//!
//! # The in-process links
//!
//! [`InProcess`] is an edge's link to devices living in the same process. It keeps the
//! simulation the federation has always run: a device fails mid-round with probability
//! `device_dropout`; its time is its windows over its speed (log-normal across devices,
//! with a fifth of that spread as per-round jitter) plus the model both ways over
//! `bandwidth`; past the deadline its update is late (it still crossed the link and is
//! counted in bytes). The devices that arrive train in parallel (rayon). Every draw is
//! keyed by (seed, round, edge round, device), so a run is the same whatever the thread
//! count or scheduling. [`InProcessEdges`] is the cloud's link to edges in the same
//! process: each edge runs its round over its own [`InProcess`] link, edges in parallel;
//! an edge round's simulated duration is the slowest edge's, as if edges started each edge
//! round together (HierFAVG's synchronous schedule).
//!
//! # A network link
//!
//! The trait is blocking, called from the round logic's own thread; a networked link
//! implements it by blocking on its async runtime. The `iotids-net` crate's
//! `DeviceLink` and `EdgeLink` are such links (peers pull their tasks there rather than
//! being called, so a node behind NAT only dials out); a link in `exchange`:
//!
//! 1. encode the [`GlobalModel`] once (protobuf generated from `proto/`, the same fields
//!    as [`crate::message`]);
//! 2. `handle.block_on(...)` one request per peer, concurrently, each under
//!    `tokio::time::timeout` of [`Wait::deadline`] (and, later, until a quorum);
//! 3. turn each result into a [`PeerOutcome`]: a reply in time that passes its checks
//!    (size, shape, finite, answering this round, not a duplicate) is `Accepted`, a reply
//!    after the deadline `Late`, a transport error or a refused reply `Failed`;
//! 4. count `bytes_down` and `bytes_up` from the encoded messages, and `seconds` as the
//!    wall time of the exchange.
//!
//! The round logic must then run off the runtime's worker threads (a plain thread, or
//! `spawn_blocking`), since `block_on` inside the runtime panics. On the other side, an
//! edge process's service answers the cloud by calling [`crate::roles::Edge::round`] with
//! its own device link, and a device process answers by calling
//! [`crate::roles::Device::train`]: the same code the simulation runs. A Flower link needs
//! no cloud side: an edge acting as a Flower SuperNode calls `Edge::round` on each `train`
//! message and replies with [`EdgeModel`](crate::message::EdgeModel)'s weights and
//! `num-examples` = its samples.
//!
//! A link that hands the edge only the sum of its devices' updates (secure aggregation,
//! where devices send masked, quantised updates and the edge unmasks only their sum)
//! returns [`Arrived::Sum`] instead of [`Arrived::Each`]; the edge then takes the mean.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::config::FederationConfig;
use crate::error::Error;
use crate::message::{
    Delivery, DeviceUpdate, EdgeUpdate, GlobalModel, Payload, PeerOutcome, SecurePlan,
};
use crate::private::{Folding, SecureRound};
use crate::roles::{Device, Edge, mix};

/// A tier's channel to its peers: sends a model, brings back what arrives.
pub trait Link<Up> {
    /// Sends `model` to each of `peers` and waits as `wait` says.
    ///
    /// # Errors
    ///
    /// Whatever stops the exchange as a whole (an unknown peer, a simulated device's
    /// training failing on a bad config). A peer that fails or is late is not an error:
    /// it is an outcome.
    fn exchange(
        &mut self,
        model: &GlobalModel,
        peers: &[usize],
        wait: Wait,
    ) -> crate::Result<Exchange<Up>>;
}

/// How long a tier waits for its peers: until the deadline, and past it until `quorum`
/// peers have answered (non-exhaustive, so more conditions can join without changing
/// the trait).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Wait {
    /// Seconds after which an update is late and dropped. None: wait for every peer.
    pub deadline: Option<f64>,
    /// Updates to wait for past the deadline (0: none).
    #[serde(default)]
    pub quorum: usize,
}

impl Wait {
    /// Waits until `deadline` (None: for every peer).
    pub fn until(deadline: Option<f64>) -> Wait {
        Wait {
            deadline,
            quorum: 0,
        }
    }

    /// Also waits past the deadline until `quorum` peers have answered.
    pub fn with_quorum(self, quorum: usize) -> Wait {
        Wait { quorum, ..self }
    }

    /// The quorum of `share` of `peers` peers (rounded up).
    pub fn quorum_of(share: f64, peers: usize) -> usize {
        ((share * peers as f64).ceil() as usize).min(peers)
    }
}

/// What an exchange brought back.
#[derive(Debug, Clone, PartialEq)]
pub struct Exchange<Up> {
    /// Every peer asked, in the order asked, and what became of its update.
    pub outcomes: Vec<PeerOutcome>,
    /// The accepted updates.
    pub arrived: Arrived<Up>,
    /// Bytes sent to the peers.
    pub bytes_down: u64,
    /// Bytes received from them, late updates included.
    pub bytes_up: u64,
    /// The exchange's duration as the link measures it: simulated seconds in process, wall
    /// seconds on a network.
    pub seconds: f64,
}

impl<Up> Exchange<Up> {
    /// Peers whose update became `delivery`.
    pub fn count(&self, delivery: Delivery) -> usize {
        self.outcomes
            .iter()
            .filter(|o| o.delivery == delivery)
            .count()
    }
}

/// The accepted updates, as the link can give them.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrived<Up> {
    /// Each accepted peer's update, in the order the peers were asked.
    Each(Vec<Up>),
    /// Only their sample-weighted sum: the receiver never sees one update (secure
    /// aggregation), so it can take their mean and nothing else.
    Sum(UpdateSum),
}

/// The sum of accepted device updates: what a secure-aggregation link reveals.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateSum {
    /// The sum of the devices' folded updates ([`crate::private::Folding`]); empty when
    /// it could not be had (secure aggregation failed: too few survivors).
    pub folded: Vec<f64>,
    /// What secure aggregation did (None from a link that sums in the clear).
    pub secure: Option<SecureRound>,
}

impl UpdateSum {
    /// The folded sum of `updates`, each answering `sent`, taken in the clear: what a
    /// secure-aggregation protocol must reproduce, up to its fixed-point rounding.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] when an update's length differs from the model's.
    pub fn of<'u>(
        updates: impl IntoIterator<Item = &'u DeviceUpdate>,
        sent: &GlobalModel,
    ) -> crate::Result<UpdateSum> {
        let folding = Folding::new(&sent.plan, sent.weights.len());
        let mut folded = vec![0f64; folding.len()];
        for u in updates {
            for (acc, v) in folded
                .iter_mut()
                .zip(folding.fold(u, &sent.weights, &sent.plan)?)
            {
                *acc += v;
            }
        }
        Ok(UpdateSum {
            folded,
            secure: None,
        })
    }
}

/// An error unless `payload` has `len` values.
pub(crate) fn check_length(peer: &str, payload: &Payload, len: usize) -> crate::Result<()> {
    if payload.len() == len {
        return Ok(());
    }
    Err(Error::Protocol {
        peer: peer.to_string(),
        problem: format!("an update of {} values", payload.len()),
        expected: format!("{len} values, one per parameter of the model sent"),
    })
}

/// Bytes of `n` weights on the in-process wire (f32).
pub fn model_bytes(n: usize) -> u64 {
    (n * std::mem::size_of::<f32>()) as u64
}

/// The simulated devices and network of a run: failures, speeds, bandwidth.
#[derive(Debug, Clone, PartialEq)]
pub struct Conditions {
    seed: u64,
    dropout: f64,
    device_rate: f64,
    speed_spread: f64,
    bandwidth: f64,
    /// Each device's speed factor, log-normal around 1.
    speeds: Vec<f64>,
}

impl Conditions {
    /// The conditions `cfg` describes, each device's speed drawn from its seed.
    pub fn new(cfg: &FederationConfig) -> Conditions {
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x005b_eed5);
        let dist = LogNormal::new(0.0, cfg.speed_spread).ok();
        let speeds = (0..cfg.devices)
            .map(|_| dist.map_or(1.0, |d| d.sample(&mut rng)))
            .collect();
        Conditions {
            seed: cfg.seed,
            dropout: cfg.device_dropout,
            device_rate: cfg.device_rate,
            speed_spread: cfg.speed_spread,
            bandwidth: cfg.bandwidth,
            speeds,
        }
    }

    /// What becomes of device `device`'s update this edge round, and its simulated time
    /// to train and exchange the model.
    fn fate(
        &self,
        device: &Device<'_>,
        speed: f64,
        model: &GlobalModel,
        deadline: Option<f64>,
    ) -> (Delivery, f64) {
        let link_seconds = 2.0 * model_bytes(model.weights.len()) as f64 / self.bandwidth;
        let mut rng = ChaCha8Rng::seed_from_u64(mix(
            self.seed ^ 0xfa7e,
            model.round,
            model.edge_round,
            device.id(),
        ));
        let fails = rng.random::<f64>() < self.dropout;
        let jitter =
            LogNormal::new(0.0, self.speed_spread / 5.0).map_or(1.0, |j| j.sample(&mut rng));
        let windows = (device.samples() * model.plan.local.epochs) as f64;
        let seconds = windows / (self.device_rate * speed * jitter) + link_seconds;
        let delivery = if fails {
            Delivery::Failed
        } else if deadline.is_some_and(|dl| seconds > dl) {
            Delivery::Late
        } else {
            Delivery::Accepted
        };
        (delivery, seconds)
    }
}

/// An edge's link to devices in the same process, under simulated [`Conditions`].
#[derive(Debug, Clone, Copy)]
pub struct InProcess<'a> {
    devices: &'a [Device<'a>],
    conditions: &'a Conditions,
}

impl<'a> InProcess<'a> {
    /// A link to `devices` (device `i` at index `i`) under `conditions`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when a device sits at another index than its id, or the
    /// conditions are for another number of devices.
    pub fn new(devices: &'a [Device<'a>], conditions: &'a Conditions) -> crate::Result<Self> {
        if let Some((i, d)) = devices.iter().enumerate().find(|(i, d)| d.id() != *i) {
            return Err(Error::config(
                "devices",
                format!("device {} at index {i}", d.id()),
                "device i at index i",
            ));
        }
        if conditions.speeds.len() != devices.len() {
            return Err(Error::config(
                "devices",
                devices.len(),
                format!(
                    "the {} devices the conditions were drawn for",
                    conditions.speeds.len()
                ),
            ));
        }
        Ok(InProcess {
            devices,
            conditions,
        })
    }
}

impl Link<DeviceUpdate> for InProcess<'_> {
    fn exchange(
        &mut self,
        model: &GlobalModel,
        peers: &[usize],
        wait: Wait,
    ) -> crate::Result<Exchange<DeviceUpdate>> {
        let mut fates = Vec::with_capacity(peers.len());
        for &d in peers {
            let (Some(device), Some(&speed)) = (self.devices.get(d), self.conditions.speeds.get(d))
            else {
                return Err(unknown_peer("device", d, self.devices.len()));
            };
            fates.push((
                device,
                self.conditions.fate(device, speed, model, wait.deadline),
            ));
        }
        // Past the deadline, the edge waits for the quorum: the fastest late updates
        // until that many have arrived.
        let accepted = fates
            .iter()
            .filter(|(_, (d, _))| *d == Delivery::Accepted)
            .count();
        if accepted < wait.quorum {
            let mut late: Vec<usize> = (0..fates.len())
                .filter(|&i| fates[i].1.0 == Delivery::Late)
                .collect();
            late.sort_by(|&a, &b| fates[a].1.1.total_cmp(&fates[b].1.1));
            for i in late.into_iter().take(wait.quorum - accepted) {
                fates[i].1.0 = Delivery::Accepted;
            }
        }
        if let Some(secure) = model.plan.secure {
            return self.secure_exchange(model, &secure, fates, wait);
        }
        let arrived: Vec<DeviceUpdate> = fates
            .par_iter()
            .filter(|(_, (delivery, _))| *delivery == Delivery::Accepted)
            .map(|(device, _)| device.train(model))
            .collect::<crate::Result<_>>()?;

        let bytes = model_bytes(model.weights.len());
        let mut out = Exchange {
            outcomes: Vec::with_capacity(peers.len()),
            arrived: Arrived::Each(arrived),
            bytes_down: peers.len() as u64 * bytes,
            bytes_up: 0,
            seconds: 0.0,
        };
        for (device, (delivery, seconds)) in fates {
            out.outcomes.push(PeerOutcome {
                peer: device.id(),
                delivery,
            });
            if delivery != Delivery::Failed {
                out.bytes_up += bytes;
                let t = match (delivery, wait.deadline) {
                    (Delivery::Accepted, _) | (_, None) => seconds,
                    (_, Some(d)) => seconds.min(d),
                };
                out.seconds = out.seconds.max(t);
            }
        }
        Ok(out)
    }
}

impl InProcess<'_> {
    /// An edge round under secure aggregation, in process: every sampled device advertises
    /// keys and deals its shares, the accepted ones train, fold, encode and mask their
    /// updates, and the edge's side of the protocol unmasks the sum. Failed and late
    /// devices drop after dealing (the case that needs their keys rebuilt). Every message
    /// is encoded, so the bytes are the protocol's.
    fn secure_exchange(
        &self,
        model: &GlobalModel,
        secure: &SecurePlan,
        fates: Vec<(&Device<'_>, (Delivery, f64))>,
        wait: Wait,
    ) -> crate::Result<Exchange<DeviceUpdate>> {
        use iotids_secagg::{Client, RoundSpec, Server, encode};

        let folding = Folding::new(&model.plan, model.weights.len());
        let peers: Vec<usize> = fates.iter().map(|(d, _)| d.id()).collect();
        let bytes = model_bytes(model.weights.len());
        let mut out = Exchange {
            outcomes: Vec::with_capacity(peers.len()),
            arrived: Arrived::Sum(UpdateSum {
                folded: Vec::new(),
                secure: None,
            }),
            bytes_down: peers.len() as u64 * bytes,
            bytes_up: 0,
            seconds: 0.0,
        };
        let mut report = SecureRound::new(peers.len());
        let ids: Vec<u64> = peers.iter().map(|&p| p as u64).collect();
        let context =
            crate::private::context(model.plan.seed, model.round, model.edge_round, &peers);
        let mut included: Vec<u64> = Vec::new();
        let mut protocol = 0u64;
        let mut masked_bytes = 0u64;
        // The exchange stops at a device's training error (as the plain link does) or at a
        // protocol failure (the edge round then yields nothing).
        enum Stop {
            Training(Error),
            Protocol(String),
        }
        let secagg = |e: iotids_secagg::Error| Stop::Protocol(e.to_string());
        let result: Result<Vec<f64>, Stop> = (|| {
            let spec = RoundSpec::new(
                context,
                ids.clone(),
                folding.len(),
                crate::private::settings(secure),
            )
            .map_err(secagg)?;
            protocol += peers.len() as u64 * encode(&spec).len() as u64;
            let mut server = Server::new(spec.clone());
            let joined: Vec<(Client, iotids_secagg::Keys)> = fates
                .par_iter()
                .map(|(d, _)| {
                    let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(mix(
                        model.plan.seed ^ 0x5ec,
                        model.round,
                        model.edge_round,
                        d.id(),
                    ));
                    Client::new(d.id() as u64, spec.clone(), &mut rng)
                })
                .collect::<iotids_secagg::Result<_>>()
                .map_err(secagg)?;
            let (mut clients, keys): (Vec<Client>, Vec<iotids_secagg::Keys>) =
                joined.into_iter().unzip();
            protocol += keys.iter().map(|k| encode(k).len() as u64).sum::<u64>();
            let books = server.receive_keys(keys);
            protocol += books.values().map(|b| encode(b).len() as u64).sum::<u64>();
            let shares: Vec<iotids_secagg::Shares> = clients
                .par_iter_mut()
                .filter_map(|c| books.get(&c.id()).map(|b| c.share_keys(b)))
                .collect::<iotids_secagg::Result<_>>()
                .map_err(secagg)?;
            protocol += shares.iter().map(|s| encode(s).len() as u64).sum::<u64>();
            let inboxes = server.receive_shares(shares);
            protocol += inboxes
                .values()
                .map(|i| encode(i).len() as u64)
                .sum::<u64>();
            // The accepted devices train and mask; a late one's masked vector crosses the
            // link after the deadline and is counted, not summed.
            let masked: Vec<Option<iotids_secagg::Masked>> = clients
                .par_iter_mut()
                .zip(fates.par_iter())
                .map(
                    |(c, (device, (delivery, _)))| -> crate::Result<Option<iotids_secagg::Masked>> {
                        if *delivery != Delivery::Accepted {
                            return Ok(None);
                        }
                        let Some(inbox) = inboxes.get(&c.id()) else {
                            return Ok(None);
                        };
                        let update = device.train(model)?;
                        let folded = folding.fold(&update, &model.weights, &model.plan)?;
                        // A value the encoding cannot carry leaves this device out.
                        let Ok(words) = secure_fixed(secure).encode(&folded) else {
                            return Ok(None);
                        };
                        Ok(c.mask(inbox, &words).ok())
                    },
                )
                .collect::<crate::Result<_>>()
                .map_err(Stop::Training)?;
            let masked: Vec<iotids_secagg::Masked> = masked.into_iter().flatten().collect();
            masked_bytes = masked.iter().map(|m| encode(m).len() as u64).sum();
            if masked.is_empty() {
                // Nobody stayed: nothing to sum, as on a plain link.
                return Ok(Vec::new());
            }
            let request = server.receive_masked(masked).map_err(secagg)?;
            protocol += request.survivors.len() as u64 * encode(&request).len() as u64;
            let reveals: Vec<iotids_secagg::Reveal> = clients
                .iter_mut()
                .filter(|c| request.survivors.contains(&c.id()))
                .map(|c| c.unmask(&request))
                .collect::<iotids_secagg::Result<_>>()
                .map_err(secagg)?;
            protocol += reveals.iter().map(|r| encode(r).len() as u64).sum::<u64>();
            let aggregate = server.finish(reveals).map_err(secagg)?;
            included = aggregate.included.clone();
            report.dropped = aggregate.dropped.len();
            report.excluded = aggregate
                .excluded
                .iter()
                .map(|(d, why)| (*d as usize, why.clone()))
                .collect();
            Ok(spec.fixed.decode(&aggregate.sum))
        })();
        let folded = match result {
            Ok(folded) => folded,
            Err(Stop::Training(e)) => return Err(e),
            Err(Stop::Protocol(why)) => {
                report.failed = Some(why);
                Vec::new()
            }
        };
        report.included = included.len();
        report.protocol_bytes = protocol;
        let late_masked = fates
            .iter()
            .filter(|(_, (d, _))| *d == Delivery::Late)
            .count() as u64
            * (8 * folding.len() as u64 + 16);
        out.bytes_up = masked_bytes + late_masked;
        for (device, (delivery, seconds)) in fates {
            let id = device.id() as u64;
            let delivery = match delivery {
                Delivery::Accepted if included.binary_search(&id).is_err() => Delivery::Failed,
                d => d,
            };
            out.outcomes.push(PeerOutcome {
                peer: device.id(),
                delivery,
            });
            if delivery != Delivery::Failed {
                let t = match (delivery, wait.deadline) {
                    (Delivery::Accepted, _) | (_, None) => seconds,
                    (_, Some(d)) => seconds.min(d),
                };
                out.seconds = out.seconds.max(t);
            }
        }
        out.arrived = Arrived::Sum(UpdateSum {
            folded,
            secure: Some(report),
        });
        Ok(out)
    }
}

/// The fixed-point encoding `secure` plans.
fn secure_fixed(secure: &SecurePlan) -> iotids_secagg::Fixed {
    iotids_secagg::Fixed {
        bits: secure.fractional_bits,
    }
}

/// The cloud's link to edges in the same process, each with its devices over an
/// [`InProcess`] link.
#[derive(Debug, Clone)]
pub struct InProcessEdges<'a> {
    edges: Vec<Edge>,
    devices: InProcess<'a>,
}

impl<'a> InProcessEdges<'a> {
    /// A link to `edges` (edge `i` at index `i`), whose devices are reached over `devices`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when an edge sits at another index than its id.
    pub fn new(edges: Vec<Edge>, devices: InProcess<'a>) -> crate::Result<Self> {
        if let Some((i, e)) = edges.iter().enumerate().find(|(i, e)| e.id() != *i) {
            return Err(Error::config(
                "edges",
                format!("edge {} at index {i}", e.id()),
                "edge i at index i",
            ));
        }
        Ok(InProcessEdges { edges, devices })
    }
}

impl Link<EdgeUpdate> for InProcessEdges<'_> {
    /// Edges never fail or straggle in process: `wait` changes nothing.
    fn exchange(
        &mut self,
        model: &GlobalModel,
        peers: &[usize],
        _wait: Wait,
    ) -> crate::Result<Exchange<EdgeUpdate>> {
        let (edges, devices) = (&self.edges, self.devices);
        let answers: Vec<EdgeUpdate> = peers
            .par_iter()
            .map(|&e| {
                let edge = edges
                    .get(e)
                    .ok_or_else(|| unknown_peer("edge", e, edges.len()))?;
                let mut link = devices;
                edge.round(model, &mut link)
            })
            .collect::<crate::Result<_>>()?;
        let bytes = model_bytes(model.weights.len());
        let reporting = answers.iter().filter(|a| a.model.is_some()).count() as u64;
        // Edges start every edge round together: each lasts as long as its slowest edge.
        let edge_rounds = answers
            .iter()
            .map(|a| a.edge_rounds.len())
            .max()
            .unwrap_or(0);
        let seconds = (0..edge_rounds)
            .map(|er| {
                answers
                    .iter()
                    .filter_map(|a| a.edge_rounds.get(er))
                    .map(|r| r.seconds)
                    .fold(0.0, f64::max)
            })
            .fold(0.0, |total, s| total + s);
        Ok(Exchange {
            outcomes: peers
                .iter()
                .map(|&peer| PeerOutcome {
                    peer,
                    delivery: Delivery::Accepted,
                })
                .collect(),
            arrived: Arrived::Each(answers),
            bytes_down: peers.len() as u64 * bytes,
            bytes_up: reporting * bytes,
            seconds,
        })
    }
}

fn unknown_peer(kind: &str, peer: usize, known: usize) -> Error {
    Error::Protocol {
        peer: format!("{kind} {peer}"),
        problem: "not on this link".into(),
        expected: format!("a {kind} id below {known}"),
    }
}
