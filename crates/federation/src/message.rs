//! What crosses a tier, as plain data: the model going down, the updates coming up.
//!
//! These types are the protocol of the hierarchy, whatever carries them: the in-process
//! simulation hands them over by reference, a network link would encode them (protobuf
//! for gRPC, Flower's records for a Flower link). They hold no behaviour beyond checks and
//! conversions, so every transport moves the same information and the round logic in
//! [`crate::roles`] never depends on how they travelled.
//!
//! - [`GlobalModel`] goes down: the cloud's global model to the edges, an edge's model to
//!   its devices, with the [`Plan`] the cloud decided (edge rounds, sampling, deadline, how
//!   devices train).
//! - [`DeviceUpdate`] comes up from a device: its [`Payload`] (weights or delta), the
//!   windows it trained on, its training loss and accuracy, and the round it answers.
//! - [`EdgeUpdate`] comes up from an edge: its model and the windows behind it, and one
//!   [`EdgeRoundReport`] per edge round accounting for every device it asked.

use std::borrow::Cow;

use iotids_model::train::{Optimizer, TrainConfig};
use serde::{Deserialize, Serialize};

use crate::aggregate::Head;
use crate::config::FederationConfig;

/// The model a tier sends down, and what the receiver does with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GlobalModel {
    /// The cloud round, from 1.
    pub round: usize,
    /// The edge round within it, from 0 (0 on the way from the cloud to the edges).
    pub edge_round: usize,
    /// Flat weights (see `iotids_model::params`).
    pub weights: Vec<f32>,
    /// The cloud's schedule for this round.
    pub plan: Plan,
}

/// The schedule the cloud owns and sends with every model, so edges and devices need no
/// settings of their own beyond their data and whom they talk to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// Seed of the run: edges derive their sampling, devices their batch order from it
    /// (keyed by round, edge round and their id), so a run repeats whoever computes it.
    pub seed: u64,
    /// Edge rounds per cloud round (HierFAVG's τ₂).
    pub edge_rounds: usize,
    /// Fraction of an edge's devices it asks per edge round, at least one.
    pub fraction: f64,
    /// Seconds an edge waits for its devices' updates; later ones are dropped and
    /// counted. None: wait for every device.
    pub deadline: Option<f64>,
    /// Share of the sampled devices an edge waits for past the deadline (0: none).
    #[serde(default)]
    pub quorum: f64,
    /// How a device trains.
    pub local: LocalTraining,
    /// Where the output layer is, when edges and the cloud aggregate it class-wise
    /// ([`crate::aggregate::class_wise_head`]); None: the plain mean.
    #[serde(default)]
    pub head: Option<Head>,
    /// Normalised averaging (FedNova, Wang et al. 2020): edges scale each device's change
    /// by the length of its local optimiser path ([`LocalTraining::path`]) before they
    /// average, so a device's voice does not grow with its number of local steps.
    #[serde(default)]
    pub normalized: bool,
    /// Secure aggregation at the edges (None: off): devices mask their updates and an
    /// edge learns only their sum ([`crate::private`]).
    #[serde(default)]
    pub secure: Option<SecurePlan>,
    /// Differential privacy (None: off): devices' changes clipped, Gaussian noise added
    /// once per edge round to their sum, devices sampled by Poisson sampling
    /// ([`crate::private`]).
    #[serde(default)]
    pub privacy: Option<DpPlan>,
    /// Validation on the devices (None: none asked): the model sent is scored by every
    /// device on its own validation windows (the later part of its own traffic), and its
    /// [`Evaluation`] over this many classes comes back with the update. The cloud asks for
    /// it in an exchange of its own after each round ([`Plan::evaluation`]).
    #[serde(default)]
    pub evaluate: Option<usize>,
}

/// How the edges run secure aggregation (SecAgg+), as the cloud plans it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SecurePlan {
    /// Neighbourhood size (None: everyone up to 64 devices, then logarithmic).
    pub neighbours: Option<usize>,
    /// Shares that rebuild a secret (None: a majority of the neighbourhood).
    pub threshold: Option<usize>,
    /// Fractional bits of the fixed-point encoding (24).
    pub fractional_bits: u32,
}

/// DP-FedAvg's settings, as the cloud plans them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct DpPlan {
    /// σ: the noise's standard deviation is σ·clip.
    pub noise_multiplier: f64,
    /// C: the L2 norm each device's change is clipped to.
    pub clip: f64,
    /// q: the probability each device takes part in an edge round (Poisson sampling).
    pub sampling_rate: f64,
}

/// A device's local training, as the cloud sets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalTraining {
    /// Passes over the device's rows (HierFAVG's τ₁).
    pub epochs: usize,
    /// FedProx's μ: `μ/2 · ‖w − start‖²` joins the local loss; 0 for every other strategy.
    pub proximal_mu: f64,
    /// Windows per mini-batch.
    pub batch_size: usize,
    /// The optimiser's step size.
    pub learning_rate: f64,
    /// The optimiser (Adam in plans written before it was a setting).
    #[serde(default)]
    pub optimizer: Optimizer,
    /// Weigh each class's loss by the pipeline's class weights (true) or not.
    pub weigh_classes: bool,
    /// τ of the logit-adjusted local loss (0: plain cross-entropy): a device trains on
    /// `logits + τ·(ln π_local − ln π_global)`, so the classes it lacks or holds little of
    /// are not pushed down for being rare on it (FedLC-style calibration); what it sends
    /// back is the unshifted network.
    #[serde(default)]
    pub logit_adjustment: f64,
    /// Training windows per class over all devices: the sum of the devices' label-count
    /// summaries (π_global). Empty: unknown, and a logit-adjusted device takes classes as
    /// equally likely.
    #[serde(default)]
    pub class_counts: Vec<u64>,
}

impl LocalTraining {
    /// FedNova's ‖aᵢ‖₁ for a device holding `samples` windows: how many gradients its
    /// local run adds up. It takes τ = epochs · ⌈samples / batch⌉ steps; plain SGD and Adam
    /// (each of whose steps is about the learning rate) count τ, heavy-ball momentum ρ
    /// carries gradient j into every later step, Σₖ₌₁..τ (1 − ρᵏ)/(1 − ρ).
    pub fn path(&self, samples: u64) -> f64 {
        let steps = self.epochs as u64 * samples.div_ceil(self.batch_size.max(1) as u64);
        let tau = steps as f64;
        match self.optimizer {
            Optimizer::Sgd { momentum: rho } if rho > 0.0 => {
                (tau - rho * (1.0 - rho.powf(tau)) / (1.0 - rho)) / (1.0 - rho)
            }
            Optimizer::Sgd { .. } | Optimizer::Adam => tau,
        }
    }
}

impl Plan {
    /// The plan of the exchange that scores a global model on the devices' validation
    /// windows over `classes` classes: one edge round, every device asked, no local
    /// training (a device answers with its [`Evaluation`] and an unchanged model), secure
    /// aggregation as in training so the edge learns only the sum of the evaluations.
    pub fn evaluation(&self, classes: usize) -> Plan {
        Plan {
            edge_rounds: 1,
            fraction: 1.0,
            local: LocalTraining {
                epochs: 0,
                ..self.local.clone()
            },
            head: None,
            privacy: None,
            evaluate: Some(classes),
            ..self.clone()
        }
    }

    /// Whether this is an evaluation exchange's plan (no training).
    pub fn evaluates_only(&self) -> bool {
        self.evaluate.is_some() && self.local.epochs == 0
    }

    /// The plan of a run: the federation's schedule, and local training as `train` sets it
    /// (its batch size, and its learning rate under Adam; its epochs, patience and seed are
    /// the central run's and are not used).
    pub fn new(cfg: &FederationConfig, train: &TrainConfig) -> Plan {
        let (optimizer, learning_rate) = cfg.local_optimizer(train.learning_rate);
        Plan {
            seed: cfg.seed,
            edge_rounds: cfg.edge_rounds,
            fraction: cfg.fraction,
            deadline: cfg.deadline,
            quorum: cfg.quorum,
            local: LocalTraining {
                epochs: cfg.local_epochs,
                proximal_mu: cfg.device_mu(),
                batch_size: train.batch_size,
                learning_rate,
                optimizer,
                weigh_classes: cfg.local_class_weights,
                logit_adjustment: cfg.logit_adjustment,
                class_counts: Vec::new(),
            },
            head: None,
            normalized: cfg.normalized_averaging && cfg.dp_noise_multiplier.is_none(),
            secure: cfg.secure_aggregation.then_some(SecurePlan {
                neighbours: cfg.secagg_neighbours,
                threshold: cfg.secagg_threshold,
                fractional_bits: iotids_secagg::Fixed::default().bits,
            }),
            privacy: cfg.dp_noise_multiplier.map(|sigma| DpPlan {
                noise_multiplier: sigma,
                clip: cfg.dp_clip,
                sampling_rate: cfg.fraction,
            }),
            evaluate: None,
        }
    }
}

/// What a device trained, as it sends it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Payload {
    /// The trained weights, flat.
    Weights(Vec<f32>),
    /// The trained weights minus the model the device was sent (smaller after
    /// quantisation or sparsification; the receiver adds its own copy back).
    Delta(Vec<f32>),
}

impl Payload {
    /// Values carried.
    pub fn len(&self) -> usize {
        match self {
            Payload::Weights(w) | Payload::Delta(w) => w.len(),
        }
    }

    /// True with no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The trained weights, given the model `sent` that the update answers.
    pub fn weights<'a>(&'a self, sent: &[f32]) -> Cow<'a, [f32]> {
        match self {
            Payload::Weights(w) => Cow::Borrowed(w),
            Payload::Delta(d) => Cow::Owned(sent.iter().zip(d).map(|(s, d)| s + d).collect()),
        }
    }
}

/// What a device's local training measured: the weight of its update and its metrics.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Training {
    /// Training windows behind the update (FedAvg's `n_i`).
    pub samples: u64,
    /// Mean (class-weighted, if training is) cross-entropy of the last local epoch, without
    /// the proximal term.
    pub loss: f64,
    /// Training accuracy of the last local epoch.
    pub accuracy: f64,
}

/// A model scored on validation windows, as sums that add up over devices and edges: the
/// sum over several places is what the windows pooled would give.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// `confusion[t · classes + p]`: windows of class t predicted p.
    pub confusion: Vec<u64>,
    /// Σ over windows of the class-weighted cross-entropy (`w_y · −ln p_y`).
    pub loss: f64,
    /// Σ over windows of the class weight `w_y` (the loss's denominator).
    pub weight: f64,
}

impl Evaluation {
    /// No windows over `classes` classes.
    pub fn empty(classes: usize) -> Evaluation {
        Evaluation {
            confusion: vec![0; classes * classes],
            loss: 0.0,
            weight: 0.0,
        }
    }

    /// The classes it counts.
    pub fn classes(&self) -> usize {
        self.confusion.len().isqrt()
    }

    /// Windows counted.
    pub fn windows(&self) -> u64 {
        self.confusion.iter().sum()
    }

    /// Adds `other` (over the same classes) to it.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Protocol`] for an evaluation over another number of classes.
    pub fn add(&mut self, other: &Evaluation, peer: &str) -> crate::Result<()> {
        if other.confusion.len() != self.confusion.len() {
            return Err(crate::Error::Protocol {
                peer: peer.to_string(),
                problem: format!("an evaluation of {} counts", other.confusion.len()),
                expected: format!("{} counts (a confusion matrix)", self.confusion.len()),
            });
        }
        for (a, b) in self.confusion.iter_mut().zip(&other.confusion) {
            *a += b;
        }
        self.loss += other.loss;
        self.weight += other.weight;
        Ok(())
    }

    /// (loss, accuracy, macro-F1) as the windows pooled would score (None without
    /// windows).
    pub fn scores(&self) -> Option<(f64, f64, f64)> {
        let k = self.classes();
        let n = self.windows();
        if n == 0 || k == 0 {
            return None;
        }
        let rows: Vec<Vec<u64>> = self.confusion.chunks(k).map(<[u64]>::to_vec).collect();
        let correct: u64 = (0..k).map(|c| rows[c][c]).sum();
        Some((
            self.loss / self.weight,
            correct as f64 / n as f64,
            iotids_model::metrics::macro_f1_of_confusion(&rows),
        ))
    }
}

/// A device's answer to a [`GlobalModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceUpdate {
    /// The device.
    pub device: usize,
    /// The cloud round it answers.
    pub round: usize,
    /// The edge round it answers.
    pub edge_round: usize,
    /// What it trained.
    pub payload: Payload,
    /// Its sample count and training metrics.
    pub training: Training,
    /// Its training windows per class (a summary, for class-wise aggregation; empty if it
    /// does not tell).
    #[serde(default)]
    pub class_counts: Vec<u64>,
    /// The model it was sent, scored on its validation windows, when the plan asks
    /// ([`Plan::evaluate`]; None otherwise, or when it holds none).
    #[serde(default)]
    pub evaluation: Option<Evaluation>,
}

/// An edge's model, and the windows behind it (the cloud's weight for it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeModel {
    /// Flat weights.
    pub weights: Vec<f32>,
    /// Training windows of the devices its last aggregate combined.
    pub samples: u64,
    /// Of which, per class (empty if a device did not tell).
    #[serde(default)]
    pub class_counts: Vec<u64>,
}

/// What a sampled peer's update became.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Delivery {
    /// Arrived in time and was aggregated.
    Accepted,
    /// Never arrived: the peer failed, or its link did.
    Failed,
    /// Arrived after the deadline and was dropped.
    Late,
}

/// One peer's fate in an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerOutcome {
    /// The peer (a device, or an edge).
    pub peer: usize,
    /// What became of its update.
    pub delivery: Delivery,
}

/// One edge round at one edge: whom it asked, what arrived, what it cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeRoundReport {
    /// From 0.
    pub edge_round: usize,
    /// Every device asked, in the order asked, and what became of it.
    pub devices: Vec<PeerOutcome>,
    /// The training numbers of the accepted updates, in device order (one entry for the
    /// sum when the link hands the edge only a sum).
    pub training: Vec<Training>,
    /// Bytes the edge sent its devices.
    pub bytes_down: u64,
    /// Bytes the devices sent the edge, late updates included.
    pub bytes_up: u64,
    /// The edge round's duration as its link measures it (simulated seconds in process).
    pub seconds: f64,
    /// What secure aggregation did this edge round (None: it was off).
    #[serde(default)]
    pub secure: Option<crate::private::SecureRound>,
}

impl EdgeRoundReport {
    /// Edge round `edge_round` in which the edge asked no device.
    pub fn empty(edge_round: usize) -> EdgeRoundReport {
        EdgeRoundReport {
            edge_round,
            devices: Vec::new(),
            training: Vec::new(),
            bytes_down: 0,
            bytes_up: 0,
            seconds: 0.0,
            secure: None,
        }
    }
}

/// An edge's answer to the cloud's [`GlobalModel`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EdgeUpdate {
    /// The edge.
    pub edge: usize,
    /// The cloud round it answers.
    pub round: usize,
    /// Its model after its last edge round that received anything; None when none of its
    /// devices reported this round (the cloud then leaves it out).
    pub model: Option<EdgeModel>,
    /// One report per edge round, in order.
    pub edge_rounds: Vec<EdgeRoundReport>,
    /// Wall seconds the edge spent exchanging with its devices (their training included).
    pub training_seconds: f64,
    /// Wall seconds it spent aggregating.
    pub aggregation_seconds: f64,
    /// The sum of its devices' evaluations of the model sent, when the plan asks for them
    /// (None otherwise).
    #[serde(default)]
    pub evaluation: Option<Evaluation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delta_adds_back_to_the_weights_it_encodes() {
        let sent = [1.0f32, -2.0, 0.5];
        let trained = [1.5f32, -2.25, 0.5];
        let delta: Vec<f32> = trained.iter().zip(&sent).map(|(t, s)| t - s).collect();
        assert_eq!(
            Payload::Delta(delta).weights(&sent).as_ref(),
            &[1.5, -2.25, 0.5]
        );
        let full = Payload::Weights(trained.to_vec());
        assert!(matches!(full.weights(&sent), Cow::Borrowed(w) if w == trained));
        assert_eq!((full.len(), full.is_empty()), (3, false));
    }

    #[test]
    fn the_plan_carries_the_schedule_and_local_training() {
        let cfg = FederationConfig {
            strategy: crate::strategy::Strategy::FedProx,
            proximal_mu: 0.25,
            local_epochs: 3,
            edge_rounds: 4,
            fraction: 0.5,
            deadline: Some(2.0),
            seed: 9,
            local_optimizer: crate::config::LocalOptimizer::Adam,
            local_class_weights: false,
            ..FederationConfig::default()
        };
        let train = TrainConfig {
            batch_size: 64,
            learning_rate: 0.01,
            class_weights: false,
            ..TrainConfig::default()
        };
        let plan = Plan::new(&cfg, &train);
        assert_eq!(
            plan,
            Plan {
                seed: 9,
                edge_rounds: 4,
                fraction: 0.5,
                deadline: Some(2.0),
                quorum: 0.0,
                local: LocalTraining {
                    epochs: 3,
                    proximal_mu: 0.25,
                    batch_size: 64,
                    learning_rate: 0.01,
                    optimizer: Optimizer::Adam,
                    weigh_classes: false,
                    logit_adjustment: cfg.logit_adjustment,
                    class_counts: Vec::new(),
                },
                head: None,
                normalized: true,
                secure: None,
                privacy: None,
                evaluate: None,
            }
        );
        // μ reaches the devices under FedProx only.
        let avg = FederationConfig {
            strategy: crate::strategy::Strategy::FedAvg,
            ..cfg
        };
        assert_eq!(Plan::new(&avg, &train).local.proximal_mu, 0.0);
        // The defaults: momentum SGD at its own rate, class-weighted, normalised averaging.
        let d = Plan::new(&FederationConfig::default(), &train);
        assert_eq!(d.local.optimizer, Optimizer::Sgd { momentum: 0.9 });
        assert_eq!(
            d.local.learning_rate,
            crate::config::DEFAULT_SGD_LEARNING_RATE
        );
        assert!(d.local.weigh_classes && d.normalized);
        let sgd = FederationConfig {
            local_lr: Some(0.02),
            local_momentum: 0.5,
            normalized_averaging: false,
            ..FederationConfig::default()
        };
        let p = Plan::new(&sgd, &train);
        assert_eq!(
            (p.local.optimizer, p.local.learning_rate, p.normalized),
            (Optimizer::Sgd { momentum: 0.5 }, 0.02, false)
        );
    }

    #[test]
    fn messages_round_trip_through_json() {
        let up = EdgeUpdate {
            edge: 1,
            round: 2,
            model: Some(EdgeModel {
                weights: vec![0.5, -1.0],
                samples: 40,
                class_counts: vec![30, 10],
            }),
            edge_rounds: vec![EdgeRoundReport {
                edge_round: 0,
                devices: vec![
                    PeerOutcome {
                        peer: 3,
                        delivery: Delivery::Accepted,
                    },
                    PeerOutcome {
                        peer: 4,
                        delivery: Delivery::Late,
                    },
                ],
                training: vec![Training {
                    samples: 40,
                    loss: 0.7,
                    accuracy: 0.6,
                }],
                bytes_down: 16,
                bytes_up: 16,
                seconds: 0.25,
                secure: None,
            }],
            training_seconds: 0.0,
            aggregation_seconds: 0.0,
            evaluation: Some(Evaluation {
                confusion: vec![3, 1, 0, 2],
                loss: 1.5,
                weight: 6.0,
            }),
        };
        let text = serde_json::to_string(&up).unwrap();
        assert!(text.contains("\"delivery\":\"late\""), "{text}");
        assert_eq!(serde_json::from_str::<EdgeUpdate>(&text).unwrap(), up);
    }
}
