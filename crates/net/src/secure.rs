//! Secure aggregation over the network: one edge round of SecAgg+ ([`iotids_secagg`]) as
//! four exchanges of an edge's [`Hub`] with the same devices, and the device's side of it.
//!
//! The protocol's state machines are the ones the simulation drives in process
//! ([`iotids_federation::transport::InProcess`]); this module only carries their messages
//! (postcard bytes inside the protobuf tasks and answers of `proto/`) and decides who
//! takes part in each stage:
//!
//! 1. **setup**: every sampled device gets the round's [`RoundSpec`] and answers its
//!    public keys;
//! 2. **share keys**: every device whose keys arrived gets its neighbours' keys and
//!    answers its sealed shares;
//! 3. **train**: every device whose shares were routed gets the model and its inbox, trains,
//!    folds, encodes and masks its update, and answers the masked vector: the edge never
//!    holds one device's update in the clear;
//! 4. **unmask**: every device whose masked vector counts gets the unmask request and
//!    answers its shares; the edge rebuilds the masks and is left with the sum.
//!
//! Stages 1, 2 and 4 involve no training, so they wait at most [`STAGE_DEADLINE_CAP`]
//! seconds (a device that does not answer simply drops out of the rest); stage 3 waits as
//! the plan says (deadline and quorum), as a plain round does. Every answer is checked by
//! the hub (its kind, that it decodes, that it names the device that sent it) before the
//! edge's [`Server`] sees it; what the protocol itself rejects (bad shares, a vector of
//! the wrong length) is excluded and reported, never fatal.

use std::collections::BTreeMap;

use iotids_federation::message::{Delivery, DeviceUpdate, GlobalModel, PeerOutcome, SecurePlan};
use iotids_federation::private::{Folding, SecureRound};
use iotids_federation::transport::{Arrived, Exchange, UpdateSum};
use iotids_secagg::{Client, Fixed, Inbox, KeyBook, Keys, Masked, Reveal, RoundSpec, Server};
use iotids_secagg::{Shares, UnmaskRequest, decode, encode};
use serde::de::DeserializeOwned;
use tokio::runtime::Handle;

use crate::hub::{Check, Collected, Hub, Policy};
use crate::proto;
use crate::wire;

/// The longest a stage without training (setup, share keys, unmask) waits, seconds.
pub const STAGE_DEADLINE_CAP: f64 = 10.0;

/// The suffix of a stage's task id after the edge round's (`<run>/round-r/edge-round-e`).
pub const SETUP: &str = "secagg-setup";
/// See [`SETUP`].
pub const SHARE: &str = "secagg-share";
/// See [`SETUP`].
pub const UNMASK: &str = "secagg-unmask";

/// The id of `stage`'s task in the edge round whose plain task id is `base`.
pub fn stage_task_id(base: &str, stage: &str) -> String {
    format!("{base}/{stage}")
}

/// The answer kinds of the four stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Keys,
    Shares,
    Masked,
    Reveal,
}

impl Want {
    fn name(self) -> &'static str {
        match self {
            Want::Keys => "secagg_keys",
            Want::Shares => "secagg_shares",
            Want::Masked => "secagg_masked",
            Want::Reveal => "secagg_reveal",
        }
    }

    /// The message bytes of `answer` if it is of this kind.
    fn bytes(self, answer: &proto::Answer) -> Option<&[u8]> {
        use proto::answer::Kind;
        match (self, &answer.kind) {
            (Want::Keys, Some(Kind::SecaggKeys(m)))
            | (Want::Shares, Some(Kind::SecaggShares(m)))
            | (Want::Masked, Some(Kind::SecaggMasked(m)))
            | (Want::Reveal, Some(Kind::SecaggReveal(m))) => Some(&m.message),
            _ => None,
        }
    }

    /// `answer` of this kind, decoded and from `peer`.
    fn decode<T: DeserializeOwned + Named>(
        self,
        peer: usize,
        answer: &proto::Answer,
    ) -> Result<T, String> {
        let bytes = self.bytes(answer).ok_or_else(|| {
            format!(
                "an answer of another kind than the stage asked (expected {})",
                self.name()
            )
        })?;
        let message: T = decode(self.name(), bytes).map_err(|e| e.to_string())?;
        if message.id() != peer as u64 {
            return Err(format!(
                "a {} naming device {} where device {peer} sent it",
                self.name(),
                message.id()
            ));
        }
        Ok(message)
    }

    /// The hub's check of this stage's answers.
    fn check<T: DeserializeOwned + Named + 'static>(self) -> Check {
        Box::new(move |peer, answer| self.decode::<T>(peer, answer).map(|_| ()))
    }

    /// The accepted answers of `c`, decoded (an answer that passed its check decodes).
    fn take<T: DeserializeOwned + Named>(self, c: &Collected) -> Vec<(usize, T)> {
        c.answers
            .iter()
            .filter_map(|(peer, a)| match self.decode::<T>(*peer, a) {
                Ok(m) => Some((*peer, m)),
                Err(problem) => {
                    tracing::warn!(device = peer, %problem, "left out of secure aggregation");
                    None
                }
            })
            .collect()
    }
}

/// A device's message names its device.
trait Named {
    fn id(&self) -> u64;
}

impl Named for Keys {
    fn id(&self) -> u64 {
        self.id
    }
}

impl Named for Shares {
    fn id(&self) -> u64 {
        self.id
    }
}

impl Named for Masked {
    fn id(&self) -> u64 {
        self.id
    }
}

impl Named for Reveal {
    fn id(&self) -> u64 {
        self.id
    }
}

/// What the four exchanges moved, and who is still in.
struct Tally {
    /// Every peer asked, with its delivery so far (`Accepted`: still in).
    state: BTreeMap<usize, Delivery>,
    bytes_down: u64,
    bytes_up: u64,
    seconds: f64,
}

impl Tally {
    fn record(&mut self, c: &Collected) {
        self.bytes_down += c.bytes_down;
        self.bytes_up += c.bytes_up;
        self.seconds += c.seconds;
        for o in &c.outcomes {
            self.state.insert(o.peer, o.delivery);
        }
        for (peer, reason) in &c.failures {
            tracing::warn!(device = peer, %reason, "a device could not do its secure-aggregation stage");
        }
    }

    /// Peers still in that `next` holds a message for, in order, with it; the others
    /// still in are out from now on (failed).
    fn next<'a, T>(&mut self, next: &'a BTreeMap<u64, T>) -> Vec<(usize, &'a T)> {
        let mut asked = Vec::new();
        for (&peer, d) in self.state.iter_mut() {
            if *d == Delivery::Accepted {
                match next.get(&(peer as u64)) {
                    Some(m) => asked.push((peer, m)),
                    None => *d = Delivery::Failed,
                }
            }
        }
        asked
    }
}

/// One edge round under secure aggregation over `hub` (blocking on `runtime`): the four
/// stages with `peers` (task ids from `base`), stage 3 under `train`, the others under
/// `stage`. Returns the unmasked sum of the folded updates, or an empty one with the
/// reason when too few devices stayed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn exchange(
    hub: &Hub,
    runtime: &Handle,
    base: &str,
    model: &GlobalModel,
    secure: &SecurePlan,
    peers: &[usize],
    train: Policy,
    stage: Policy,
) -> Exchange<DeviceUpdate> {
    let folding = Folding::new(&model.plan, model.weights.len());
    let mut tally = Tally {
        state: peers.iter().map(|&p| (p, Delivery::Accepted)).collect(),
        bytes_down: 0,
        bytes_up: 0,
        seconds: 0.0,
    };
    let mut report = SecureRound::new(peers.len());
    let mut protocol = 0u64;
    let mut included: Vec<u64> = Vec::new();
    let open = |tasks: Vec<(usize, proto::Task)>, policy: Policy, check: Check| {
        runtime.block_on(hub.exchange(tasks, policy, check))
    };
    let result: Result<Vec<f64>, String> = (|| {
        let context = iotids_federation::private::context(
            model.plan.seed,
            model.round,
            model.edge_round,
            peers,
        );
        let ids = peers.iter().map(|&p| p as u64).collect();
        let spec = RoundSpec::new(
            context,
            ids,
            folding.len(),
            iotids_federation::private::settings(secure),
        )
        .map_err(|e| e.to_string())?;
        let mut server = Server::new(spec.clone());

        // Stage 1: setup.
        let spec_bytes = encode(&spec);
        let id = stage_task_id(base, SETUP);
        let tasks = peers
            .iter()
            .map(|&p| {
                let kind = proto::task::Kind::SecaggSetup(proto::SecAggSetup {
                    spec: spec_bytes.clone(),
                });
                (p, task(&id, kind))
            })
            .collect();
        let c = open(tasks, stage, Want::Keys.check::<Keys>());
        tally.record(&c);
        protocol += (peers.len() * spec_bytes.len()) as u64;
        let keys: Vec<Keys> = Want::Keys.take(&c).into_iter().map(|(_, k)| k).collect();
        protocol += keys.iter().map(|k| encode(k).len() as u64).sum::<u64>();
        let books = server.receive_keys(keys);

        // Stage 2: share keys.
        let asked = tally.next(&books);
        let id = stage_task_id(base, SHARE);
        let mut tasks = Vec::with_capacity(asked.len());
        for (p, book) in asked {
            let key_book = encode::<KeyBook>(book);
            protocol += key_book.len() as u64;
            let kind = proto::task::Kind::SecaggShareKeys(proto::SecAggShareKeys { key_book });
            tasks.push((p, task(&id, kind)));
        }
        let c = open(tasks, stage, Want::Shares.check::<Shares>());
        tally.record(&c);
        let shares: Vec<Shares> = Want::Shares.take(&c).into_iter().map(|(_, s)| s).collect();
        protocol += shares.iter().map(|s| encode(s).len() as u64).sum::<u64>();
        let inboxes = server.receive_shares(shares);

        // Stage 3: train, fold, encode, mask.
        let asked = tally.next(&inboxes);
        let down = wire::model_to_wire(model);
        let mut tasks = Vec::with_capacity(asked.len());
        for (p, inbox) in asked {
            let secagg_inbox = encode::<Inbox>(inbox);
            protocol += secagg_inbox.len() as u64;
            let kind = proto::task::Kind::Train(proto::Train {
                model: Some(down.clone()),
                secagg_inbox,
                ..proto::Train::default()
            });
            tasks.push((p, task(base, kind)));
        }
        let c = open(tasks, train, Want::Masked.check::<Masked>());
        tally.record(&c);
        let masked: Vec<Masked> = Want::Masked.take(&c).into_iter().map(|(_, m)| m).collect();
        if masked.is_empty() {
            // Nobody stayed: nothing to sum, as on a plain link.
            return Ok(Vec::new());
        }
        let request = server.receive_masked(masked).map_err(|e| e.to_string())?;

        // Stage 4: unmask.
        let request_bytes = encode::<UnmaskRequest>(&request);
        let id = stage_task_id(base, UNMASK);
        let tasks: Vec<(usize, proto::Task)> = request
            .survivors
            .iter()
            .map(|&p| {
                let kind = proto::task::Kind::SecaggUnmask(proto::SecAggUnmask {
                    request: request_bytes.clone(),
                });
                (p as usize, task(&id, kind))
            })
            .collect();
        protocol += (tasks.len() * request_bytes.len()) as u64;
        let c = open(tasks, stage, Want::Reveal.check::<Reveal>());
        // A survivor that does not reveal is still in the sum: only the bytes count.
        tally.bytes_down += c.bytes_down;
        tally.bytes_up += c.bytes_up;
        tally.seconds += c.seconds;
        let reveals: Vec<Reveal> = Want::Reveal.take(&c).into_iter().map(|(_, r)| r).collect();
        protocol += reveals.iter().map(|r| encode(r).len() as u64).sum::<u64>();
        let aggregate = server.finish(reveals).map_err(|e| e.to_string())?;
        included = aggregate.included;
        report.dropped = aggregate.dropped.len();
        report.excluded = aggregate
            .excluded
            .iter()
            .map(|(d, why)| (*d as usize, why.clone()))
            .collect();
        Ok(spec.fixed.decode(&aggregate.sum))
    })();
    let folded = result.unwrap_or_else(|why| {
        tracing::warn!(reason = %why, round = model.round, edge_round = model.edge_round, "secure aggregation failed: the edge round yields nothing");
        report.failed = Some(why);
        Vec::new()
    });
    report.included = included.len();
    report.protocol_bytes = protocol;
    let outcomes = peers
        .iter()
        .map(|&p| {
            let delivery = match tally.state.get(&p) {
                Some(Delivery::Accepted) if included.binary_search(&(p as u64)).is_ok() => {
                    Delivery::Accepted
                }
                Some(Delivery::Late) => Delivery::Late,
                _ => Delivery::Failed,
            };
            PeerOutcome { peer: p, delivery }
        })
        .collect();
    Exchange {
        outcomes,
        arrived: Arrived::Sum(UpdateSum {
            folded,
            secure: Some(report),
        }),
        bytes_down: tally.bytes_down,
        bytes_up: tally.bytes_up,
        seconds: tally.seconds,
    }
}

fn task(id: &str, kind: proto::task::Kind) -> proto::Task {
    proto::Task {
        id: id.to_string(),
        kind: Some(kind),
        ..proto::Task::default()
    }
}

/// A device's side of secure aggregation across the stage tasks of an edge round: the
/// protocol's [`Client`] for that edge round, its keys drawn from the operating system's
/// generator. A setup for another edge round replaces it, the unmask stage ends it, and
/// any other task ([`DeviceSecAgg::forget`]) drops it. A stage out of turn, for another
/// edge round, or whose message does not decode is refused with the reason (the device
/// answers `failure`); it never panics on the edge's input.
#[derive(Debug)]
pub struct DeviceSecAgg {
    id: u64,
    session: Option<(String, Client)>,
}

impl DeviceSecAgg {
    /// Device `id`'s side, before any edge round.
    pub fn new(id: usize) -> DeviceSecAgg {
        DeviceSecAgg {
            id: id as u64,
            session: None,
        }
    }

    /// Drops the current edge round's state (its keys and shares), if any.
    pub fn forget(&mut self) {
        self.session = None;
    }

    /// Whether it holds an edge round's state.
    pub fn in_round(&self) -> bool {
        self.session.is_some()
    }

    /// The answer to a stage task without training (setup, share keys, unmask) with id
    /// `task_id`; None when `kind` is not one.
    pub fn answer_stage(
        &mut self,
        task_id: &str,
        kind: &proto::task::Kind,
    ) -> Option<Result<proto::answer::Kind, String>> {
        use proto::answer::Kind as A;
        let message = |m: Vec<u8>| proto::SecAggMessage { message: m };
        Some(match kind {
            proto::task::Kind::SecaggSetup(s) => self
                .setup(task_id, &s.spec)
                .map(|m| A::SecaggKeys(message(m))),
            proto::task::Kind::SecaggShareKeys(s) => self
                .share_keys(task_id, &s.key_book)
                .map(|m| A::SecaggShares(message(m))),
            proto::task::Kind::SecaggUnmask(s) => self
                .unmask(task_id, &s.request)
                .map(|m| A::SecaggReveal(message(m))),
            _ => return None,
        })
    }

    fn base<'a>(task_id: &'a str, stage: &str) -> Result<&'a str, String> {
        task_id
            .strip_suffix(stage)
            .and_then(|b| b.strip_suffix('/'))
            .ok_or_else(|| {
                format!("a {stage} task with the id `{task_id}`, not `<edge round>/{stage}`")
            })
    }

    /// The client of the edge round `base`, if this device set it up.
    fn client(&mut self, base: &str, step: &str) -> Result<&mut Client, String> {
        match &mut self.session {
            Some((b, c)) if b == base => Ok(c),
            Some((b, _)) => Err(format!(
                "secure aggregation out of turn: asked to {step} for `{base}` while in `{b}`"
            )),
            None => Err(format!(
                "secure aggregation out of turn: asked to {step} for `{base}` before its setup"
            )),
        }
    }

    /// Stage 1: joins the edge round the spec describes, with fresh keys.
    fn setup(&mut self, task_id: &str, spec: &[u8]) -> Result<Vec<u8>, String> {
        let base = Self::base(task_id, SETUP)?;
        let spec: RoundSpec = decode("round spec", spec).map_err(|e| e.to_string())?;
        // A new edge round: whatever the last one left is dropped, whether this one
        // starts or not.
        self.session = None;
        let (client, keys) =
            Client::new(self.id, spec, &mut rand::rng()).map_err(|e| e.to_string())?;
        self.session = Some((base.to_string(), client));
        Ok(encode(&keys))
    }

    fn share_keys(&mut self, task_id: &str, book: &[u8]) -> Result<Vec<u8>, String> {
        let base = Self::base(task_id, SHARE)?;
        let book: KeyBook = decode("key book", book).map_err(|e| e.to_string())?;
        let shares = self
            .client(base, "share keys")?
            .share_keys(&book)
            .map_err(|e| e.to_string())?;
        Ok(encode(&shares))
    }

    /// Stage 3, before training: the inbox of the train task `task_id`, checked to be this
    /// edge round's turn, decoded.
    ///
    /// # Errors
    ///
    /// Out of turn (no setup for this edge round) or bytes that are not an inbox.
    pub fn inbox(&mut self, task_id: &str, inbox: &[u8]) -> Result<Inbox, String> {
        self.client(task_id, "mask")?;
        decode("inbox", inbox).map_err(|e| e.to_string())
    }

    /// Stage 3: the answer carrying `update` (the device's answer to `model`) folded,
    /// encoded in fixed point and masked: what leaves the device instead of the update.
    ///
    /// # Errors
    ///
    /// Out of turn; a plan without secure aggregation; an update of the wrong length; a
    /// value the fixed-point encoding cannot carry.
    pub fn mask(
        &mut self,
        task_id: &str,
        inbox: &Inbox,
        model: &GlobalModel,
        update: &DeviceUpdate,
    ) -> Result<proto::answer::Kind, String> {
        let Some(secure) = model.plan.secure else {
            return Err("an inbox with a plan without secure aggregation".into());
        };
        let folding = Folding::new(&model.plan, model.weights.len());
        let folded = folding
            .fold(update, &model.weights, &model.plan)
            .map_err(|e| e.to_string())?;
        let words = Fixed {
            bits: secure.fractional_bits,
        }
        .encode(&folded)
        .map_err(|e| e.to_string())?;
        let masked = self
            .client(task_id, "mask")?
            .mask(inbox, &words)
            .map_err(|e| e.to_string())?;
        Ok(proto::answer::Kind::SecaggMasked(proto::SecAggMessage {
            message: encode(&masked),
        }))
    }

    /// Stage 4: reveals the shares asked for, once; the edge round ends here.
    fn unmask(&mut self, task_id: &str, request: &[u8]) -> Result<Vec<u8>, String> {
        let base = Self::base(task_id, UNMASK)?;
        let request: UnmaskRequest =
            decode("unmask request", request).map_err(|e| e.to_string())?;
        let reveal = self
            .client(base, "unmask")?
            .unmask(&request)
            .map_err(|e| e.to_string());
        // Asked once, whatever the answer: this edge round is over for the device.
        self.session = None;
        Ok(encode(&reveal?))
    }
}
