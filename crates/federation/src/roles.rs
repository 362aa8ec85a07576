//! The three roles of the hierarchy and their round logic: a [`Device`] trains, an
//! [`Edge`] combines its devices, the [`Cloud`] combines the edges and keeps the best
//! global model (HierFAVG, Liu et al. 2020).
//!
//! The roles talk only through [`Link`]s and only in [`crate::message`] types, so the same
//! code runs in the one-process simulation ([`crate::transport::InProcess`]) and would run
//! in separate processes over a network: a device process calls [`Device::train`] on the
//! model it receives, an edge process calls [`Edge::round`] with its link to its devices, a
//! cloud process calls [`Cloud::round`] with its link to its edges. How a tier combines
//! what it receives is [`crate::aggregate`]; how the cloud steps the global model,
//! [`crate::strategy`]. Neither knows about roles or links.
//!
//! One cloud round:
//!
//! 1. the cloud sends the global model and the round's [`Plan`] to every edge;
//! 2. `edge_rounds` times, each edge samples a `fraction` of its devices and sends them its
//!    model; each trains `local_epochs` epochs on its own rows and sends its update back;
//!    the edge aggregates what arrived in time with its rule (weights renormalised over
//!    the devices that reported);
//! 3. the cloud aggregates the edges, weighted by the windows behind each edge's model,
//!    and its server optimiser (FedAvgM, FedAdam, FedYogi) steps the global model;
//! 4. the global model is scored on the validation rows, and kept if it is the best yet.
//!
//! Raw rows never leave their device: what crosses a tier is a flat weight vector. Every
//! random choice is keyed by (seed, round, edge round, id), so a run is the same whoever
//! computes which part, in whatever order.

use std::borrow::Cow;
use std::time::Instant;

use iotids_model::examples::{Examples, SCORE_BATCH, score};
use iotids_model::gru::GruConfig;
use iotids_model::params::{flatten, from_flat};
use iotids_model::train::{TrainConfig, loss_weights, train_from_weights};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::aggregate::{Aggregation, Head, Update, class_wise_head, sum_counts};
use crate::config::{Attack, FederationConfig};
use crate::error::Error;
use crate::message::{
    Delivery, DeviceUpdate, EdgeModel, EdgeRoundReport, EdgeUpdate, Evaluation, GlobalModel,
    LocalTraining, Payload, Plan, Training,
};
use crate::private::{Folding, NoiseSource, Unfolded};
use crate::strategy::ServerOptimizer;
use crate::transport::{Arrived, Exchange, Link, UpdateSum, Wait, check_length};

/// What a poisoning device does to its update; the attack lives with the device, as it
/// would on a compromised one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Poison<'a> {
    /// Trains and reports honestly.
    Honest,
    /// Trains on these labels (indexed by row, as the honest ones) instead of its own.
    LabelFlip {
        /// The labels it trains on: [`flipped_labels`] for the `label-flip` attack.
        labels: &'a [u32],
    },
    /// Trains honestly, then sends `start + factor · (w − start)`: a boosted or, with a
    /// negative factor, sign-flipped update.
    Scale {
        /// The factor.
        factor: f64,
    },
}

impl<'a> Poison<'a> {
    /// What `attack` makes a malicious device do; `flipped` are the labels a `label-flip`
    /// device trains on, `factor` the `scale` attack's.
    pub fn of(attack: Attack, flipped: &'a [u32], factor: f64) -> Poison<'a> {
        match attack {
            Attack::None => Poison::Honest,
            Attack::LabelFlip => Poison::LabelFlip { labels: flipped },
            Attack::Scale => Poison::Scale { factor },
        }
    }
}

/// Every label shifted by one class (`c → c + 1 mod classes`), so every attack is taught
/// as another and the last as the first.
pub fn flipped_labels(labels: &[u32], classes: usize) -> Vec<u32> {
    let classes = classes as u32;
    if classes == 0 {
        return labels.to_vec();
    }
    labels.iter().map(|&y| (y + 1) % classes).collect()
}

/// A device: its rows, the model's shape and the pipeline's class weights, and whether it
/// poisons.
#[derive(Debug, Clone)]
pub struct Device<'a> {
    id: usize,
    model: &'a GruConfig,
    class_weights: &'a [f64],
    data: Examples<'a>,
    /// Its validation windows (the later part of its own traffic): none when the cloud
    /// validates.
    validation: Option<Examples<'a>>,
    poison: Poison<'a>,
    /// Windows per class of the labels it trains on: the summary it sends.
    class_counts: Vec<u64>,
}

impl<'a> Device<'a> {
    /// Device `id`, holding the rows `data.rows`, training networks of shape `model`.
    pub fn new(
        id: usize,
        model: &'a GruConfig,
        class_weights: &'a [f64],
        data: Examples<'a>,
    ) -> Self {
        let class_counts = counts(data.labels, data.rows, class_weights.len());
        Device {
            id,
            model,
            class_weights,
            data,
            validation: None,
            poison: Poison::Honest,
            class_counts,
        }
    }

    /// The device, scoring the models it is sent on `validation` when the plan asks
    /// ([`Plan::evaluate`]).
    pub fn with_validation(self, validation: Examples<'a>) -> Self {
        Device {
            validation: Some(validation),
            ..self
        }
    }

    /// Its validation windows (none: it holds none).
    pub fn validation_windows(&self) -> usize {
        self.validation.map_or(0, |v| v.rows.len())
    }

    /// `weights` scored on its validation windows over `classes` classes (None when it
    /// holds none). The loss weighs each class as the cloud's validation loss does
    /// ([`loss_weights`], with the plan's switch for the devices).
    ///
    /// # Errors
    ///
    /// Weights of another shape than its model's; `classes` other than the model's.
    pub fn evaluate(
        &self,
        weights: &[f32],
        classes: usize,
        local: &LocalTraining,
    ) -> crate::Result<Option<Evaluation>> {
        let Some(ex) = self.validation.filter(|v| !v.rows.is_empty()) else {
            return Ok(None);
        };
        if classes != self.class_weights.len() {
            return Err(Error::config(
                "evaluate",
                classes,
                format!("the model's {} classes", self.class_weights.len()),
            ));
        }
        let net = from_flat(self.model, &iotids_model::backend::device(), weights)?;
        let scores = score(&net, ex, SCORE_BATCH);
        // The cloud's rule for the loss's class weights, with the devices' switch.
        let weighs = TrainConfig {
            class_weights: local.weigh_classes,
            ..TrainConfig::default()
        };
        let (loss, weight) = scores.loss_sums(&ex, &loss_weights(&weighs, self.class_weights));
        let y_true: Vec<u32> = ex.rows.iter().map(|&r| ex.labels[r]).collect();
        let confusion =
            iotids_model::metrics::confusion_matrix(&y_true, &scores.predictions(), classes);
        Ok(Some(Evaluation {
            confusion: confusion.concat(),
            loss,
            weight,
        }))
    }

    /// The device, poisoning as `poison` says.
    pub fn poisoned(self, poison: Poison<'a>) -> Self {
        let class_counts = match poison {
            Poison::LabelFlip { labels } => {
                counts(labels, self.data.rows, self.class_weights.len())
            }
            Poison::Honest | Poison::Scale { .. } => self.class_counts,
        };
        Device {
            poison,
            class_counts,
            ..self
        }
    }

    /// Its training windows per class: the label-count summary it sends with its updates.
    pub fn class_counts(&self) -> &[u64] {
        &self.class_counts
    }

    /// The head-bias shift of the logit-adjusted loss: `τ·(ln π_local − ln π_global)`
    /// per class (empty when τ is 0). A class the device lacks gets `ln(ε)` for its local
    /// share, ε a thousandth of a window, so its logit is far below the others' during
    /// training and the softmax hardly pushes it further down.
    fn logit_shift(&self, local: &LocalTraining) -> Vec<f32> {
        let tau = local.logit_adjustment;
        let k = self.class_counts.len();
        if tau == 0.0 || k == 0 {
            return Vec::new();
        }
        let share = |counts: &[u64], c: usize| {
            let n: u64 = counts.iter().sum();
            (counts[c] as f64).max(1e-3) / (n as f64).max(1.0)
        };
        let global = (local.class_counts.len() == k && local.class_counts.iter().any(|&n| n > 0))
            .then_some(&local.class_counts);
        (0..k)
            .map(|c| {
                let g = global.map_or(1.0 / k as f64, |g| share(g, c));
                (tau * (share(&self.class_counts, c).ln() - g.ln())) as f32
            })
            .collect()
    }

    /// Its id.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Windows it holds.
    pub fn samples(&self) -> usize {
        self.data.rows.len()
    }

    /// What it does to its updates.
    pub fn poison(&self) -> Poison<'a> {
        self.poison
    }

    /// Trains on its rows from `model`'s weights as `model.plan.local` says (its optimiser started fresh,
    /// a batch order seeded by the plan's seed, the round, the edge round and the device)
    /// and returns the update it sends.
    ///
    /// # Errors
    ///
    /// Model errors from training: weights of another shape than the device's model, labels
    /// outside the class weights, a bad learning rate or batch size.
    pub fn train(&self, model: &GlobalModel) -> crate::Result<DeviceUpdate> {
        let local = &model.plan.local;
        let evaluation = match model.plan.evaluate {
            Some(classes) => self.evaluate(&model.weights, classes, local)?,
            None => None,
        };
        if model.plan.evaluates_only() {
            // Nothing to train: the model goes back unchanged, with the scores.
            return Ok(DeviceUpdate {
                device: self.id,
                round: model.round,
                edge_round: model.edge_round,
                payload: Payload::Delta(vec![0.0; model.weights.len()]),
                training: Training {
                    samples: self.validation_windows() as u64,
                    loss: 0.0,
                    accuracy: 0.0,
                },
                class_counts: Vec::new(),
                evaluation,
            });
        }
        let cfg = TrainConfig {
            epochs: local.epochs,
            batch_size: local.batch_size,
            learning_rate: local.learning_rate,
            optimizer: local.optimizer,
            patience: 0,
            class_weights: local.weigh_classes,
            seed: mix(model.plan.seed, model.round, model.edge_round, self.id),
            // No validation on a device: nothing to select by.
            ..TrainConfig::default()
        };
        let labels = match self.poison {
            Poison::LabelFlip { labels } => labels,
            Poison::Honest | Poison::Scale { .. } => self.data.labels,
        };
        // The logit-adjusted loss, exactly: training the network whose head bias is
        // shifted by δ computes the loss of `logits + δ`, and its gradients are those of
        // the adjusted loss; the bias is shifted back before sending.
        let shift = self.logit_shift(local);
        let head = Head::at_end(
            model.weights.len(),
            self.model.hidden,
            self.class_counts.len(),
        )
        .filter(|_| !shift.is_empty());
        let shifted;
        let start: &[f32] = match head {
            Some(h) => {
                let mut w = model.weights.clone();
                for (c, d) in shift.iter().enumerate() {
                    w[h.bias(c)] += d;
                }
                shifted = w;
                &shifted
            }
            None => &model.weights,
        };
        let (mut weights, history) = train_from_weights(
            self.model,
            &cfg,
            self.class_weights,
            start,
            local.proximal_mu,
            Examples {
                labels,
                ..self.data
            },
        )?;
        if let Some(h) = head {
            for (c, d) in shift.iter().enumerate() {
                weights[h.bias(c)] -= d;
            }
        }
        let Some(last) = history.epochs.last() else {
            return Err(Error::config(
                "local_epochs",
                local.epochs,
                "at least 1 (no epoch ran)",
            ));
        };
        if let Poison::Scale { factor } = self.poison {
            let s = factor as f32;
            for (w, &w0) in weights.iter_mut().zip(&model.weights) {
                *w = w0 + s * (*w - w0);
            }
        }
        Ok(DeviceUpdate {
            device: self.id,
            round: model.round,
            edge_round: model.edge_round,
            payload: Payload::Weights(weights),
            training: Training {
                samples: self.samples() as u64,
                loss: last.train_loss,
                accuracy: last.train_accuracy,
            },
            class_counts: self.class_counts.clone(),
            evaluation,
        })
    }
}

/// FedNova at one edge: `wᵢ ← w₀ + (τ_eff / aᵢ)(wᵢ − w₀)`, with aᵢ the device's local
/// path ([`LocalTraining::path`]) and τ_eff = Σ pᵢ aᵢ its mean by windows (pᵢ = nᵢ / n),
/// so the mean of the rescaled vectors, weighted by windows, is FedNova's
/// `w₀ + τ_eff Σ pᵢ (wᵢ − w₀)/aᵢ` and a robust rule sees changes of comparable length.
fn normalize_paths(
    local: &LocalTraining,
    start: &[f32],
    samples: impl Iterator<Item = u64>,
    weights: &mut [Cow<'_, [f32]>],
) {
    let paths: Vec<(f64, f64)> = samples
        .map(|n| (n as f64, local.path(n).max(1.0)))
        .collect();
    let total: f64 = paths.iter().map(|(n, _)| n).sum();
    if total <= 0.0 {
        return;
    }
    let tau_eff: f64 = paths.iter().map(|(n, a)| n / total * a).sum();
    for (w, (_, a)) in weights.iter_mut().zip(&paths) {
        let scale = (tau_eff / a) as f32;
        let scaled: Vec<f32> = w
            .iter()
            .zip(start)
            .map(|(&wi, &w0)| w0 + scale * (wi - w0))
            .collect();
        *w = Cow::Owned(scaled);
    }
}

/// Windows per class among `rows`.
fn counts(labels: &[u32], rows: &[usize], classes: usize) -> Vec<u64> {
    let mut n = vec![0u64; classes];
    for &r in rows {
        if let Some(c) = n.get_mut(labels[r] as usize) {
            *c += 1;
        }
    }
    n
}

/// An edge aggregator: its devices and its aggregation rule. It keeps nothing from one
/// cloud round to the next, so an edge that restarts only has to rejoin.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    id: usize,
    members: Vec<usize>,
    rule: Aggregation,
    noise: NoiseSource,
}

impl Edge {
    /// Edge `id` over the devices `members` (those holding rows), combining them by `rule`.
    pub fn new(id: usize, mut members: Vec<usize>, rule: Aggregation) -> Edge {
        members.sort_unstable();
        members.dedup();
        Edge {
            id,
            members,
            rule,
            noise: NoiseSource::Os,
        }
    }

    /// The edge, drawing the noise it adds under differential privacy from `noise` (by
    /// default the operating system's generator).
    pub fn with_noise(self, noise: NoiseSource) -> Edge {
        Edge { noise, ..self }
    }

    /// Its id.
    pub fn id(&self) -> usize {
        self.id
    }

    /// Its devices, ascending.
    pub fn members(&self) -> &[usize] {
        &self.members
    }

    /// The devices it asks in edge round `edge_round` of `round`: `⌈fraction · m⌉` of its
    /// `m` devices (at least one), drawn from the plan's seed, ascending.
    ///
    /// Under differential privacy, each device takes part with probability `fraction`
    /// instead, on its own (Poisson sampling, which the privacy accountant assumes): the
    /// edge round may then ask none.
    pub fn sample(&self, plan: &Plan, round: usize, edge_round: usize) -> Vec<usize> {
        let mut chosen = self.members.clone();
        if chosen.is_empty() {
            return chosen;
        }
        if let Some(dp) = plan.privacy {
            let mut rng =
                ChaCha8Rng::seed_from_u64(mix(plan.seed ^ 0xd95a, round, edge_round, self.id));
            chosen.retain(|_| rng.random::<f64>() < dp.sampling_rate);
            return chosen;
        }
        let take = ((plan.fraction * chosen.len() as f64).ceil() as usize).clamp(1, chosen.len());
        if take < chosen.len() {
            let mut rng =
                ChaCha8Rng::seed_from_u64(mix(plan.seed ^ 0xed6e, round, edge_round, self.id));
            chosen.shuffle(&mut rng);
            chosen.truncate(take);
            chosen.sort_unstable();
        }
        chosen
    }

    /// One cloud round at this edge: `model.plan.edge_rounds` edge rounds with its devices
    /// over `link`, starting from the cloud's `model`.
    ///
    /// # Errors
    ///
    /// The link's errors; [`Error::Protocol`] for an update that answers another round,
    /// comes from a device not asked or twice, or has another length than the model;
    /// aggregation errors.
    pub fn round(
        &self,
        model: &GlobalModel,
        link: &mut dyn Link<DeviceUpdate>,
    ) -> crate::Result<EdgeUpdate> {
        if model.plan.evaluates_only() {
            return self.evaluation_round(model, link);
        }
        let mut down = model.clone();
        let mut samples = None;
        let mut class_counts = Vec::new();
        let mut reports = Vec::with_capacity(model.plan.edge_rounds);
        let (mut training_seconds, mut aggregation_seconds) = (0.0, 0.0);
        for edge_round in 0..model.plan.edge_rounds {
            down.edge_round = edge_round;
            let peers = self.sample(&model.plan, model.round, edge_round);
            if peers.is_empty() {
                reports.push(EdgeRoundReport::empty(edge_round));
                continue;
            }
            let t = Instant::now();
            let wait = Wait::until(model.plan.deadline)
                .with_quorum(Wait::quorum_of(model.plan.quorum, peers.len()));
            let ex = link.exchange(&down, &peers, wait)?;
            training_seconds += t.elapsed().as_secs_f64();

            let t = Instant::now();
            let training = match &ex.arrived {
                Arrived::Each(updates) if model.plan.privacy.is_some() => {
                    let updates = checked(&down, &ex, updates)?;
                    let sum = UpdateSum::of(updates, &down)?;
                    if let Some(out) = self.unfold(&down, &sum.folded, edge_round, model.round)? {
                        down.weights = out.weights;
                        samples = Some(self.members.len() as u64);
                        class_counts = Vec::new();
                    }
                    Vec::new()
                }
                Arrived::Each(updates) => {
                    let updates = checked(&down, &ex, updates)?;
                    if updates.is_empty() {
                        Vec::new()
                    } else {
                        let mut weights: Vec<_> = updates
                            .iter()
                            .map(|u| u.payload.weights(&down.weights))
                            .collect();
                        if model.plan.normalized {
                            normalize_paths(
                                &model.plan.local,
                                &down.weights,
                                updates.iter().map(|u| u.training.samples),
                                &mut weights,
                            );
                        }
                        let combined: Vec<Update<'_>> = updates
                            .iter()
                            .zip(&weights)
                            .map(|(u, w)| Update {
                                weights: w,
                                samples: u.training.samples as f64,
                            })
                            .collect();
                        let total: f64 = combined.iter().map(|u| u.samples).sum();
                        let mut next = self.rule.aggregate(&combined)?;
                        class_counts = sum_counts(updates.iter().map(|u| &u.class_counts[..]));
                        if let (Some(head), Aggregation::Mean, false) =
                            (model.plan.head, self.rule, class_counts.is_empty())
                        {
                            let vectors: Vec<&[f32]> = weights.iter().map(|w| &w[..]).collect();
                            let counts: Vec<&[u64]> =
                                updates.iter().map(|u| &u.class_counts[..]).collect();
                            class_wise_head(&mut next, &vectors, &counts, head)?;
                        }
                        down.weights = next;
                        samples = Some(total as u64);
                        updates.iter().map(|u| u.training).collect()
                    }
                }
                Arrived::Sum(sum) => {
                    if self.rule != Aggregation::Mean {
                        return Err(Error::config(
                            "edge_aggregation",
                            self.rule,
                            "mean: a link that reveals only the sum of the updates \
                             (secure aggregation) allows no other rule",
                        ));
                    }
                    match self.unfold(&down, &sum.folded, edge_round, model.round)? {
                        Some(out) => {
                            down.weights = out.weights;
                            samples = Some(match model.plan.privacy {
                                Some(_) => self.members.len() as u64,
                                None => out.training.map_or(0, |t| t.samples),
                            });
                            class_counts = out.class_counts;
                            out.training.into_iter().collect()
                        }
                        None => Vec::new(),
                    }
                }
            };
            let secure = match &ex.arrived {
                Arrived::Sum(sum) => sum.secure.clone().map(|mut r| {
                    let folding = Folding::new(&model.plan, down.weights.len());
                    r.bound = crate::private::bound(
                        &folding,
                        &sum.folded,
                        &model.plan,
                        self.members.len(),
                        model.plan.secure.map_or(0, |p| p.fractional_bits),
                    );
                    r
                }),
                Arrived::Each(_) => None,
            };
            aggregation_seconds += t.elapsed().as_secs_f64();
            reports.push(EdgeRoundReport {
                edge_round,
                devices: ex.outcomes,
                training,
                bytes_down: ex.bytes_down,
                bytes_up: ex.bytes_up,
                seconds: ex.seconds,
                secure,
            });
        }
        Ok(EdgeUpdate {
            edge: self.id,
            round: model.round,
            model: samples.map(|samples| EdgeModel {
                weights: down.weights,
                samples,
                class_counts,
            }),
            edge_rounds: reports,
            training_seconds,
            aggregation_seconds,
            evaluation: None,
        })
    }

    /// An evaluation exchange ([`Plan::evaluation`]): every device scores `model` on its
    /// validation windows and the edge sums their evaluations (from the single updates,
    /// or, under secure aggregation, from the unmasked sum alone). No model comes back.
    fn evaluation_round(
        &self,
        model: &GlobalModel,
        link: &mut dyn Link<DeviceUpdate>,
    ) -> crate::Result<EdgeUpdate> {
        let classes = model.plan.evaluate.unwrap_or(0);
        let peers = self.sample(&model.plan, model.round, 0);
        let t = Instant::now();
        let ex = if peers.is_empty() {
            None
        } else {
            let wait = Wait::until(model.plan.deadline)
                .with_quorum(Wait::quorum_of(model.plan.quorum, peers.len()));
            Some(link.exchange(model, &peers, wait)?)
        };
        let training_seconds = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut evaluation = None;
        let mut secure = None;
        if let Some(ex) = &ex {
            let arrived: Vec<Evaluation> = match &ex.arrived {
                Arrived::Each(updates) => checked(model, ex, updates)?
                    .into_iter()
                    .filter_map(|u| u.evaluation.clone())
                    .collect(),
                Arrived::Sum(sum) => {
                    secure = sum.secure.clone();
                    Folding::new(&model.plan, model.weights.len())
                        .evaluation(&sum.folded)
                        .into_iter()
                        .collect()
                }
            };
            let mut total = Evaluation::empty(classes);
            for e in &arrived {
                total.add(e, &format!("a device of edge {}", self.id))?;
            }
            evaluation = (total.windows() > 0).then_some(total);
        }
        let aggregation_seconds = t.elapsed().as_secs_f64();
        let report = match ex {
            Some(ex) => EdgeRoundReport {
                edge_round: 0,
                devices: ex.outcomes,
                training: Vec::new(),
                bytes_down: ex.bytes_down,
                bytes_up: ex.bytes_up,
                seconds: ex.seconds,
                secure,
            },
            None => EdgeRoundReport::empty(0),
        };
        Ok(EdgeUpdate {
            edge: self.id,
            round: model.round,
            model: None,
            edge_rounds: vec![report],
            training_seconds,
            aggregation_seconds,
            evaluation,
        })
    }
}

impl Edge {
    /// The edge's model from a folded sum answering `down` (None when the sum is empty:
    /// nothing arrived, or secure aggregation could not unmask it; or it is over no
    /// device), the noise drawn as the edge's source says.
    fn unfold(
        &self,
        down: &GlobalModel,
        folded: &[f64],
        edge_round: usize,
        round: usize,
    ) -> crate::Result<Option<Unfolded>> {
        if folded.is_empty() {
            return Ok(None);
        }
        // The value after the change counts the devices in the sum.
        if folded.get(down.weights.len()).is_some_and(|d| *d < 0.5) {
            return Ok(None);
        }
        let folding = Folding::new(&down.plan, down.weights.len());
        let mut rng: Box<dyn rand::RngCore> = match self.noise {
            NoiseSource::Os => Box::new(rand::rng()),
            NoiseSource::Seeded(seed) => Box::new(ChaCha8Rng::seed_from_u64(mix(
                seed ^ 0x0153,
                round,
                edge_round,
                self.id,
            ))),
        };
        folding
            .unfold(
                folded,
                &down.weights,
                &down.plan,
                self.members.len(),
                &mut *rng,
            )
            .map(Some)
    }
}

/// `updates` sorted by device, once each checked against the model `sent` and the peers'
/// outcomes: the answer to this round and edge round, from a peer the link accepted, once,
/// of the model's length.
fn checked<'u>(
    sent: &GlobalModel,
    ex: &Exchange<DeviceUpdate>,
    updates: &'u [DeviceUpdate],
) -> crate::Result<Vec<&'u DeviceUpdate>> {
    let mut sorted: Vec<&DeviceUpdate> = updates.iter().collect();
    sorted.sort_by_key(|u| u.device);
    let mut accepted: Vec<usize> = ex
        .outcomes
        .iter()
        .filter(|o| o.delivery == Delivery::Accepted)
        .map(|o| o.peer)
        .collect();
    accepted.sort_unstable();
    for (i, u) in sorted.iter().enumerate() {
        let peer = format!("device {}", u.device);
        if (u.round, u.edge_round) != (sent.round, sent.edge_round) {
            return Err(Error::Protocol {
                peer,
                problem: format!(
                    "an update for round {}, edge round {}",
                    u.round, u.edge_round
                ),
                expected: format!(
                    "an answer to round {}, edge round {}",
                    sent.round, sent.edge_round
                ),
            });
        }
        let twice = i > 0 && sorted[i - 1].device == u.device;
        if accepted.binary_search(&u.device).is_err() || twice {
            return Err(Error::Protocol {
                peer,
                problem: if twice {
                    "two updates".into()
                } else {
                    "an update the link did not accept".into()
                },
                expected: "one update from each accepted device".into(),
            });
        }
        check_length(&peer, &u.payload, sent.weights.len())?;
    }
    Ok(sorted)
}

/// One cloud round's numbers: a point of the curves over rounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundRecord {
    /// From 1.
    pub round: usize,
    /// Sample-weighted mean of the accepted devices' last-epoch training loss.
    pub train_loss: Option<f64>,
    /// Sample-weighted mean of the accepted devices' last-epoch training accuracy.
    pub train_accuracy: Option<f64>,
    /// The new global model's loss on the validation rows.
    pub validation_loss: Option<f64>,
    /// Its validation accuracy.
    pub validation_accuracy: Option<f64>,
    /// Its validation macro-F1.
    pub validation_macro_f1: Option<f64>,
    /// Device trainings asked for (sampled devices, summed over edge rounds).
    pub sampled: usize,
    /// Updates the edges aggregated.
    pub accepted: usize,
    /// Devices that failed mid-round and sent nothing.
    pub failed: usize,
    /// Updates that missed the deadline and were dropped.
    pub late: usize,
    /// Bytes edges sent devices (the edge model, to each sampled device).
    pub bytes_edge_to_devices: u64,
    /// Bytes devices sent edges (updates, late ones included).
    pub bytes_devices_to_edge: u64,
    /// Bytes edges sent the cloud.
    pub bytes_edges_to_cloud: u64,
    /// Bytes the cloud sent edges.
    pub bytes_cloud_to_edges: u64,
    /// The round's duration as the cloud's link measures it: in simulated device time
    /// (per edge round, the slowest device that reported, capped by the deadline, on the
    /// slowest edge).
    pub simulated_seconds: f64,
    /// Wall time of the round.
    pub seconds: f64,
    /// Of which: the slowest edge's exchange with its devices (their local training, the
    /// links), as the edge timed it; at most the exchange with the edges.
    pub training_seconds: f64,
    /// Of which: the edges' aggregation (summed over edges), the cloud's, and the server
    /// step.
    pub aggregation_seconds: f64,
    /// Of which: scoring the validation rows.
    pub evaluation_seconds: f64,
    /// The ε of the (ε, δ) differential-privacy guarantee spent up to and including this
    /// round (None: DP off).
    #[serde(default)]
    pub epsilon: Option<f64>,
    /// Edge rounds whose securely aggregated sum could not be unmasked (too few devices
    /// stayed), so they yielded nothing.
    #[serde(default)]
    pub secure_failures: usize,
    /// Devices secure aggregation left out for misbehaving (shares that did not check out).
    #[serde(default)]
    pub secure_excluded: usize,
}

impl RoundRecord {
    /// Adds what an edge round moved between an edge and its devices (bytes each way)
    /// and what secure aggregation lost in it.
    fn add_transfers(&mut self, report: &EdgeRoundReport) {
        self.bytes_edge_to_devices += report.bytes_down;
        self.bytes_devices_to_edge += report.bytes_up;
        if let Some(sec) = &report.secure {
            self.secure_failures += usize::from(sec.failed.is_some());
            self.secure_excluded += sec.excluded.len();
        }
    }
}

/// What the cloud scores each round's global model on.
#[derive(Debug, Clone, Copy)]
pub struct Validation<'a> {
    /// The validation windows (no rows: no scores, and the last round is kept).
    pub examples: Examples<'a>,
    /// The pipeline's class weights (the loss's weights, and the class count).
    pub class_weights: &'a [f64],
}

/// The cloud: the schedule, the global model, its server optimiser, the best round.
#[derive(Debug, Clone)]
pub struct Cloud<'a> {
    model: &'a GruConfig,
    plan: Plan,
    edges: Vec<usize>,
    rule: Aggregation,
    wait: Wait,
    validation: Validation<'a>,
    /// Whether the devices score each round's model on their own validation windows
    /// (the cloud then sums their evaluations and holds no validation rows).
    on_devices: bool,
    loss_weights: Vec<f32>,
    /// Rounds in the moving average that picks the kept round (odd: centred).
    selection_window: usize,
    state: CloudState,
    privacy: Option<Privacy>,
}

/// The cloud's privacy account: every edge round of every round is one step of the
/// Poisson-subsampled Gaussian mechanism for each device (edges hold disjoint devices, so
/// their releases compose in parallel).
#[derive(Debug, Clone)]
struct Privacy {
    accountant: iotids_privacy::Accountant,
    clip: f64,
    target: Option<f64>,
    per_round: u64,
}

/// What the cloud carries from round to round: all a restarted cloud needs to go on
/// without losing or repeating a round. Checkpoint it with a format that reads back every
/// f64 exactly (serde_json does only with its `float_roundtrip` feature), or a resumed run
/// may drift from an uninterrupted one in the last bits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudState {
    /// Cloud rounds completed.
    pub round: usize,
    /// The global model.
    pub global: Vec<f32>,
    /// The server optimiser and its moments.
    pub server: ServerOptimizer,
    /// The best round so far.
    pub best: Option<Best>,
    /// Each round's validation macro-F1 and loss, in order.
    #[serde(default)]
    pub scores: Vec<(Option<f64>, Option<f64>)>,
    /// The global models of the rounds not judged yet (their moving average needs rounds
    /// still to come), oldest first.
    #[serde(default)]
    pub pending: Vec<(usize, Vec<f32>)>,
}

/// The best round so far and its model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Best {
    /// The round.
    pub round: usize,
    /// Its validation macro-F1.
    pub macro_f1: Option<f64>,
    /// Its validation loss.
    pub loss: Option<f64>,
    /// The mean validation macro-F1 of the rounds around it (the selection window), what
    /// it was kept for.
    #[serde(default)]
    pub smoothed_macro_f1: Option<f64>,
    /// Its global model.
    pub weights: Vec<f32>,
}

impl Best {
    /// Larger is better: (smoothed macro-F1, macro-F1, −loss).
    fn criterion(&self) -> (f64, f64, f64) {
        (
            self.smoothed_macro_f1.or(self.macro_f1).unwrap_or(0.0),
            self.macro_f1.unwrap_or(0.0),
            -self.loss.filter(|l| l.is_finite()).unwrap_or(f64::INFINITY),
        )
    }
}

/// A model's scores on labelled windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Scores {
    /// Mean loss, each class weighted as the devices' loss weighs it.
    pub loss: f64,
    /// Accuracy.
    pub accuracy: f64,
    /// Macro-F1 over the pipeline's classes.
    pub macro_f1: f64,
}

/// The flat `weights` of `model` scored on `validation` the way the cloud scores every
/// round (`loss_weights`: [`cloud_loss_weights`]).
///
/// # Errors
///
/// Weights of another length than the model's.
pub fn score_weights(
    model: &GruConfig,
    weights: &[f32],
    validation: Validation<'_>,
    loss_weights: &[f32],
) -> crate::Result<Scores> {
    let ex = validation.examples;
    let net = from_flat(model, &iotids_model::backend::device(), weights)?;
    let scores = score(&net, ex, SCORE_BATCH);
    let (loss, accuracy) = scores.loss_and_accuracy(&ex, loss_weights);
    let y_true: Vec<u32> = ex.rows.iter().map(|&r| ex.labels[r]).collect();
    let classes = validation.class_weights.len();
    let macro_f1 = iotids_model::metrics::macro_f1(&y_true, &scores.predictions(), classes);
    Ok(Scores {
        loss,
        accuracy,
        macro_f1,
    })
}

/// The class weights of the cloud's validation loss for devices training as `train` says.
#[must_use]
pub fn cloud_loss_weights(train: &TrainConfig, class_weights: &[f64]) -> Vec<f32> {
    loss_weights(train, class_weights)
}

/// The round kept from per-round validation `scores` (round `r` at index `r − 1`): the
/// best (smoothed macro-F1 over `window` rounds centred on it, macro-F1, −loss), the
/// earliest of equals; the last round when no round has a score. The rule the cloud
/// applies as rounds end, applied to a finished run.
#[must_use]
pub fn best_round(scores: &[(Option<f64>, Option<f64>)], window: usize) -> Option<usize> {
    if scores.iter().all(|(f, _)| f.is_none()) {
        return (!scores.is_empty()).then_some(scores.len());
    }
    let mut best: Option<(usize, Best)> = None;
    for round in 1..=scores.len() {
        let (macro_f1, loss) = scores[round - 1];
        let this = Best {
            round,
            macro_f1,
            loss,
            smoothed_macro_f1: smoothed_macro_f1(scores, round, window.max(1) / 2),
            weights: Vec::new(),
        };
        if best
            .as_ref()
            .is_none_or(|(_, b)| this.criterion() > b.criterion())
        {
            best = Some((round, this));
        }
    }
    best.map(|(r, _)| r)
}

/// The mean of the macro-F1s of `scores` (round `r` at index `r − 1`) from round
/// `round − half` to `round + half`, clipped to the rounds there are: the kept-round
/// rule's smoothed score. Rounds without a score are left out.
pub fn smoothed_macro_f1(
    scores: &[(Option<f64>, Option<f64>)],
    round: usize,
    half: usize,
) -> Option<f64> {
    let lo = round.saturating_sub(half).max(1);
    let hi = (round + half).min(scores.len());
    let values: Vec<f64> = (lo..=hi).filter_map(|r| scores[r - 1].0).collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

impl<'a> Cloud<'a> {
    /// The cloud of the federation `cfg`, with the initial global model of `model` (its
    /// seed), devices training as `train` says, scoring on `validation`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for a bad config.
    pub fn new(
        cfg: &FederationConfig,
        model: &'a GruConfig,
        train: &TrainConfig,
        validation: Validation<'a>,
    ) -> crate::Result<Self> {
        cfg.check()?;
        let cfg = &cfg.clone().resolve_privacy()?;
        let privacy = match cfg.dp_noise_multiplier {
            Some(sigma) => Some(Privacy {
                accountant: iotids_privacy::Accountant::new(cfg.fraction, sigma, cfg.delta())
                    .map_err(|e| Error::config("dp_noise_multiplier", sigma, e.to_string()))?,
                clip: cfg.dp_clip,
                target: cfg.dp_target_epsilon,
                per_round: cfg.dp_steps_per_round(),
            }),
            None => None,
        };
        let global = flatten(&model.init(&iotids_model::backend::device()));
        let mut plan = Plan::new(cfg, train);
        if cfg.class_wise_head {
            plan.head = Head::at_end(global.len(), model.hidden, model.classes);
        }
        Ok(Cloud {
            model,
            plan,
            edges: (0..cfg.edges).collect(),
            rule: cfg.cloud_aggregation,
            wait: Wait::default(),
            validation,
            on_devices: false,
            loss_weights: loss_weights(train, validation.class_weights),
            selection_window: cfg.selection_window.max(1),
            state: CloudState {
                round: 0,
                global,
                server: ServerOptimizer::new(cfg.strategy, cfg.server()),
                best: None,
                scores: Vec::new(),
                pending: Vec::new(),
            },
            privacy,
        })
    }

    /// The privacy spent by the rounds run so far (None: DP off).
    pub fn privacy(&self) -> Option<iotids_privacy::PrivacyReport> {
        self.privacy.as_ref().map(|p| {
            let mut account = p.accountant.clone();
            account.step(self.state.round as u64 * p.per_round);
            account.report(p.clip)
        })
    }

    /// The ε after `rounds` rounds (None: DP off).
    fn epsilon_after(&self, rounds: usize) -> Option<f64> {
        self.privacy.as_ref().map(|p| {
            p.accountant
                .epsilon_after(rounds as u64 * p.per_round)
                .epsilon
        })
    }

    /// Whether the next round stays within the privacy budget (always without DP or a
    /// target ε).
    pub fn budget_allows_next_round(&self) -> bool {
        match (&self.privacy, self.epsilon_after(self.state.round + 1)) {
            (
                Some(Privacy {
                    target: Some(t), ..
                }),
                Some(e),
            ) => e <= *t,
            _ => true,
        }
    }

    /// The cloud, telling devices the training windows per class over all devices (the
    /// sum of their label-count summaries), the π_global of the logit-adjusted loss.
    pub fn with_class_counts(mut self, counts: Vec<u64>) -> Self {
        self.plan.local.class_counts = counts;
        self
    }

    /// The cloud, having the devices score each round's global model on their own
    /// validation windows (an evaluation exchange after every round, [`Plan::evaluation`])
    /// and keeping the round by the sum of their evaluations, instead of scoring
    /// validation rows of its own (`validation.examples` is then not used; its class
    /// weights still give the class count).
    pub fn validating_on_devices(self) -> Self {
        Cloud {
            on_devices: true,
            ..self
        }
    }

    /// The cloud, waiting for its edges as `wait` says (by default, for every edge: edges
    /// in process never fail; a networked cloud sets a deadline).
    pub fn waiting(self, wait: Wait) -> Self {
        Cloud { wait, ..self }
    }

    /// The plan it sends with every model.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The global model.
    pub fn global(&self) -> &[f32] {
        &self.state.global
    }

    /// Its state, to checkpoint after a round.
    pub fn state(&self) -> &CloudState {
        &self.state
    }

    /// Goes on from a checkpointed `state`.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when the state's global model has another length than this
    /// cloud's model.
    pub fn resume(&mut self, state: CloudState) -> crate::Result<()> {
        if state.global.len() != self.state.global.len() {
            return Err(Error::config(
                "checkpoint",
                format!("a global model of {} weights", state.global.len()),
                format!("{} weights, the model's", self.state.global.len()),
            ));
        }
        self.state = state;
        Ok(())
    }

    /// The best round and its global model (the last round's, before any round ran or
    /// without validation rows).
    pub fn into_best(mut self) -> (usize, Vec<f32>) {
        while !self.state.pending.is_empty() {
            self.judge_oldest();
        }
        match self.state.best {
            Some(b) => (b.round, b.weights),
            None => (self.state.round, self.state.global),
        }
    }

    /// Runs the next cloud round over `link` and returns its record.
    ///
    /// # Errors
    ///
    /// The link's errors; [`Error::Protocol`] for an edge answer to another round, from an
    /// edge not asked or twice, or a model of another length; aggregation and scoring
    /// errors.
    pub fn round(&mut self, link: &mut dyn Link<EdgeUpdate>) -> crate::Result<RoundRecord> {
        let t0 = Instant::now();
        let round = self.state.round + 1;
        let model = GlobalModel {
            round,
            edge_round: 0,
            weights: self.state.global.clone(),
            plan: self.plan.clone(),
        };
        let t_exchange = Instant::now();
        let ex = link.exchange(&model, &self.edges, self.wait)?;
        let exchange_seconds = t_exchange.elapsed().as_secs_f64();
        let mut answers = match ex.arrived {
            Arrived::Each(answers) => answers,
            Arrived::Sum(_) => {
                return Err(Error::Protocol {
                    peer: "the cloud's link".into(),
                    problem: "a sum of edge updates".into(),
                    expected: "each edge's update, with its devices' accounting".into(),
                });
            }
        };
        answers.sort_by_key(|a| a.edge);
        self.check(&model, &answers)?;

        let mut rec = RoundRecord {
            round,
            train_loss: None,
            train_accuracy: None,
            validation_loss: None,
            validation_accuracy: None,
            validation_macro_f1: None,
            sampled: 0,
            accepted: 0,
            failed: 0,
            late: 0,
            bytes_edge_to_devices: 0,
            bytes_devices_to_edge: 0,
            bytes_edges_to_cloud: ex.bytes_up,
            bytes_cloud_to_edges: ex.bytes_down,
            simulated_seconds: ex.seconds,
            seconds: 0.0,
            training_seconds: 0.0,
            aggregation_seconds: 0.0,
            evaluation_seconds: 0.0,
            epsilon: self.epsilon_after(round),
            secure_failures: 0,
            secure_excluded: 0,
        };
        // Edge round by edge round, edge by edge, device by device: the order the sums
        // have always been taken in, so the record is the same to the last bit.
        let (mut loss_sum, mut accuracy_sum, mut loss_n) = (0.0, 0.0, 0.0);
        for edge_round in 0..self.plan.edge_rounds {
            for report in answers.iter().filter_map(|a| a.edge_rounds.get(edge_round)) {
                rec.sampled += report.devices.len();
                for o in &report.devices {
                    match o.delivery {
                        Delivery::Accepted => rec.accepted += 1,
                        Delivery::Failed => rec.failed += 1,
                        Delivery::Late => rec.late += 1,
                    }
                }
                rec.add_transfers(report);
                for t in &report.training {
                    loss_sum += t.loss * t.samples as f64;
                    accuracy_sum += t.accuracy * t.samples as f64;
                    loss_n += t.samples as f64;
                }
            }
        }
        rec.train_loss = (loss_n > 0.0).then(|| loss_sum / loss_n);
        rec.train_accuracy = (loss_n > 0.0).then(|| accuracy_sum / loss_n);
        // The edges run side by side: the round waited for the slowest edge's exchange with
        // its devices (their training included), which each edge times itself. (Subtracting
        // every edge's aggregation time from the exchange's wall time, as before, counted
        // parallel edges' aggregation twice and could reach 0 on a loaded machine.)
        let edge_aggregation: f64 = answers.iter().map(|a| a.aggregation_seconds).sum();
        rec.training_seconds = answers
            .iter()
            .map(|a| a.training_seconds)
            .fold(0.0, f64::max)
            .min(exchange_seconds);

        let t_agg = Instant::now();
        let reporting: Vec<Update<'_>> = answers
            .iter()
            .filter_map(|a| a.model.as_ref())
            .filter(|m| m.samples > 0)
            .map(|m| Update {
                weights: &m.weights,
                samples: m.samples as f64,
            })
            .collect();
        if !reporting.is_empty() {
            let mut aggregate = self.rule.aggregate(&reporting)?;
            let models: Vec<&EdgeModel> = answers
                .iter()
                .filter_map(|a| a.model.as_ref())
                .filter(|m| m.samples > 0)
                .collect();
            let counts: Vec<&[u64]> = models.iter().map(|m| &m.class_counts[..]).collect();
            if let (Some(head), Aggregation::Mean) = (self.plan.head, self.rule)
                && !counts.iter().any(|c| c.is_empty())
            {
                let vectors: Vec<&[f32]> = models.iter().map(|m| &m.weights[..]).collect();
                class_wise_head(&mut aggregate, &vectors, &counts, head)?;
            }
            self.state.global = self.state.server.step(&self.state.global, &aggregate);
        }
        rec.aggregation_seconds = edge_aggregation + t_agg.elapsed().as_secs_f64();

        let t_eval = Instant::now();
        if self.on_devices {
            self.evaluate_on_devices(link, &mut rec)?;
        } else {
            self.score(&mut rec)?;
        }
        rec.evaluation_seconds = t_eval.elapsed().as_secs_f64();
        rec.seconds = t0.elapsed().as_secs_f64();

        self.state.round = round;
        self.state
            .scores
            .push((rec.validation_macro_f1, rec.validation_loss));
        self.state.pending.push((round, self.state.global.clone()));
        // A round is judged once the rounds after it in its window have run.
        let half = self.selection_window / 2;
        while self
            .state
            .pending
            .first()
            .is_some_and(|(r, _)| r + half <= round)
        {
            self.judge_oldest();
        }
        Ok(rec)
    }

    /// Judges the oldest pending round by its smoothed validation macro-F1 (the window
    /// clipped to the rounds run so far) and keeps it if it beats the best.
    fn judge_oldest(&mut self) {
        if self.state.pending.is_empty() {
            return;
        }
        let (round, weights) = self.state.pending.remove(0);
        let (macro_f1, loss) = self.state.scores[round - 1];
        let this = Best {
            round,
            macro_f1,
            loss,
            smoothed_macro_f1: smoothed_macro_f1(
                &self.state.scores,
                round,
                self.selection_window / 2,
            ),
            weights: Vec::new(),
        };
        // Without validation rows every round ties and the last one wins.
        let no_validation = !self.on_devices && self.validation.examples.rows.is_empty();
        if self
            .state
            .best
            .as_ref()
            .is_none_or(|b| no_validation || this.criterion() > b.criterion())
        {
            self.state.best = Some(Best { weights, ..this });
        }
    }

    /// Has the devices score the new global model on their validation windows over
    /// `link` (an evaluation exchange, numbered after the round's edge rounds) and puts
    /// the scores of their summed evaluations, and the exchange's bytes and time, into
    /// `rec`.
    fn evaluate_on_devices(
        &self,
        link: &mut dyn Link<EdgeUpdate>,
        rec: &mut RoundRecord,
    ) -> crate::Result<()> {
        let classes = self.validation.class_weights.len();
        let model = GlobalModel {
            round: rec.round,
            edge_round: self.plan.edge_rounds,
            weights: self.state.global.clone(),
            plan: self.plan.evaluation(classes),
        };
        let ex = link.exchange(&model, &self.edges, self.wait)?;
        rec.bytes_cloud_to_edges += ex.bytes_down;
        rec.simulated_seconds += ex.seconds;
        let Arrived::Each(mut answers) = ex.arrived else {
            return Err(Error::Protocol {
                peer: "the cloud's link".into(),
                problem: "a sum of edge evaluations".into(),
                expected: "each edge's evaluation".into(),
            });
        };
        answers.sort_by_key(|a| a.edge);
        self.check(&model, &answers)?;
        let mut total = Evaluation::empty(classes);
        for a in &answers {
            let peer = format!("edge {}", a.edge);
            if a.model.is_some() {
                return Err(Error::Protocol {
                    peer,
                    problem: "a model in answer to an evaluation".into(),
                    expected: format!("the evaluation of round {}'s model alone", model.round),
                });
            }
            if let Some(e) = &a.evaluation {
                total.add(e, &peer)?;
            }
            for report in &a.edge_rounds {
                rec.add_transfers(report);
            }
        }
        rec.bytes_edges_to_cloud += ex.bytes_up;
        if let Some((loss, accuracy, macro_f1)) = total.scores() {
            rec.validation_loss = Some(loss);
            rec.validation_accuracy = Some(accuracy);
            rec.validation_macro_f1 = Some(macro_f1);
        }
        Ok(())
    }

    /// Scores the global model on the validation rows into `rec`.
    fn score(&self, rec: &mut RoundRecord) -> crate::Result<()> {
        let ex = self.validation.examples;
        if ex.rows.is_empty() {
            return Ok(());
        }
        let s = score_weights(
            self.model,
            &self.state.global,
            self.validation,
            &self.loss_weights,
        )?;
        rec.validation_loss = Some(s.loss);
        rec.validation_accuracy = Some(s.accuracy);
        rec.validation_macro_f1 = Some(s.macro_f1);
        Ok(())
    }

    /// An error unless `answers` (sorted by edge) answer `sent`, come from edges asked,
    /// once each, with their edge rounds' reports in order and models of its length.
    fn check(&self, sent: &GlobalModel, answers: &[EdgeUpdate]) -> crate::Result<()> {
        for (i, a) in answers.iter().enumerate() {
            let peer = format!("edge {}", a.edge);
            let problem = if a.round != sent.round {
                Some(format!("an update for round {}", a.round))
            } else if !self.edges.contains(&a.edge) {
                Some("an update from an edge not asked".into())
            } else if i > 0 && answers[i - 1].edge == a.edge {
                Some("two updates".into())
            } else if a.edge_rounds.len() > self.plan.edge_rounds
                || a.edge_rounds
                    .iter()
                    .enumerate()
                    .any(|(k, r)| r.edge_round != k)
            {
                Some(format!(
                    "reports of edge rounds {:?}",
                    a.edge_rounds
                        .iter()
                        .map(|r| r.edge_round)
                        .collect::<Vec<_>>()
                ))
            } else {
                a.model
                    .as_ref()
                    .filter(|m| m.weights.len() != sent.weights.len())
                    .map(|m| format!("a model of {} values", m.weights.len()))
            };
            if let Some(problem) = problem {
                return Err(Error::Protocol {
                    peer,
                    problem,
                    expected: format!(
                        "one answer to round {} from each edge asked, reporting edge rounds \
                         0.. in order (at most {}), with a model of {} values",
                        sent.round,
                        self.plan.edge_rounds,
                        sent.weights.len()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// A seed for (seed, round, edge round, index): splitmix64 over the four.
pub(crate) fn mix(seed: u64, round: usize, edge_round: usize, i: usize) -> u64 {
    let mut x = seed;
    for v in [round as u64, edge_round as u64, i as u64] {
        x = x.wrapping_add(v.wrapping_add(0x9E37_79B9_7F4A_7C15));
        x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        x ^= x >> 31;
    }
    x
}

#[cfg(test)]
mod tests;
