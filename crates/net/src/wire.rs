//! The protocol's messages ([`crate::proto`]) to and from the round logic's own types
//! ([`iotids_federation::message`]). Decoding checks what the types can't say (a model
//! without a plan, a delivery out of range); a peer's id never comes from a message, always
//! from its certificate.

use iotids_federation::aggregate::Head;
use iotids_federation::message::{
    Delivery, DeviceUpdate, DpPlan, EdgeModel, EdgeRoundReport, EdgeUpdate, Evaluation,
    GlobalModel, LocalTraining, Payload, PeerOutcome, Plan, SecurePlan, Training,
};
use iotids_federation::private::SecureRound;
use iotids_model::train::Optimizer;

use crate::proto;

/// What was wrong with a message.
pub type Problem = String;

fn usize_of(v: u64, what: &str) -> Result<usize, Problem> {
    usize::try_from(v).map_err(|_| format!("{what} {v} out of range"))
}

/// The model going down.
pub fn model_to_wire(m: &GlobalModel) -> proto::GlobalModel {
    let p = &m.plan;
    let l = &p.local;
    proto::GlobalModel {
        round: m.round as u64,
        edge_round: m.edge_round as u64,
        weights: m.weights.clone(),
        plan: Some(proto::Plan {
            seed: p.seed,
            edge_rounds: p.edge_rounds as u64,
            fraction: p.fraction,
            deadline: p.deadline,
            local: Some(proto::LocalTraining {
                epochs: l.epochs as u64,
                proximal_mu: l.proximal_mu,
                batch_size: l.batch_size as u64,
                learning_rate: l.learning_rate,
                sgd_momentum: match l.optimizer {
                    Optimizer::Adam => None,
                    Optimizer::Sgd { momentum } => Some(momentum),
                },
                weigh_classes: l.weigh_classes,
                logit_adjustment: l.logit_adjustment,
                class_counts: l.class_counts.clone(),
            }),
            head: p.head.map(|h| proto::Head {
                offset: h.offset as u64,
                hidden: h.hidden as u64,
                classes: h.classes as u64,
            }),
            normalized: p.normalized,
            quorum: p.quorum,
            secure: p.secure.map(|s| proto::SecurePlan {
                neighbours: s.neighbours.map(|k| k as u64),
                threshold: s.threshold.map(|t| t as u64),
                fractional_bits: s.fractional_bits,
            }),
            privacy: p.privacy.map(|d| proto::DpPlan {
                noise_multiplier: d.noise_multiplier,
                clip: d.clip,
                sampling_rate: d.sampling_rate,
            }),
            evaluate: p.evaluate.map(|c| c as u64),
        }),
    }
}

/// The model as received.
///
/// # Errors
///
/// A missing plan or local training, or a count out of range.
pub fn model_from_wire(m: proto::GlobalModel) -> Result<GlobalModel, Problem> {
    let p = m.plan.ok_or("a model without its plan")?;
    let l = p.local.ok_or("a plan without local training")?;
    let finite = |v: f64, what: &str| {
        if v.is_finite() {
            Ok(v)
        } else {
            Err(format!("{what} {v}"))
        }
    };
    Ok(GlobalModel {
        round: usize_of(m.round, "round")?,
        edge_round: usize_of(m.edge_round, "edge round")?,
        weights: m.weights,
        plan: Plan {
            seed: p.seed,
            edge_rounds: usize_of(p.edge_rounds, "edge rounds")?,
            fraction: finite(p.fraction, "fraction")?,
            deadline: p.deadline,
            quorum: finite(p.quorum, "quorum")?,
            local: LocalTraining {
                epochs: usize_of(l.epochs, "local epochs")?,
                proximal_mu: finite(l.proximal_mu, "proximal mu")?,
                batch_size: usize_of(l.batch_size, "batch size")?.max(1),
                learning_rate: finite(l.learning_rate, "learning rate")?,
                optimizer: match l.sgd_momentum {
                    None => Optimizer::Adam,
                    Some(momentum) => Optimizer::Sgd {
                        momentum: finite(momentum, "momentum")?,
                    },
                },
                weigh_classes: l.weigh_classes,
                logit_adjustment: finite(l.logit_adjustment, "logit adjustment")?,
                class_counts: l.class_counts,
            },
            head: match p.head {
                None => None,
                Some(h) => Some(Head {
                    offset: usize_of(h.offset, "head offset")?,
                    hidden: usize_of(h.hidden, "head inputs")?,
                    classes: usize_of(h.classes, "head outputs")?,
                }),
            },
            normalized: p.normalized,
            secure: match p.secure {
                None => None,
                Some(s) => Some(SecurePlan {
                    neighbours: s
                        .neighbours
                        .map(|k| usize_of(k, "neighbours"))
                        .transpose()?,
                    threshold: s.threshold.map(|t| usize_of(t, "threshold")).transpose()?,
                    fractional_bits: if s.fractional_bits <= 40 {
                        s.fractional_bits
                    } else {
                        return Err(format!("{} fractional bits", s.fractional_bits));
                    },
                }),
            },
            privacy: match p.privacy {
                None => None,
                Some(d) => Some(DpPlan {
                    noise_multiplier: finite(d.noise_multiplier, "noise multiplier")?,
                    clip: finite(d.clip, "clip")?,
                    sampling_rate: finite(d.sampling_rate, "sampling rate")?,
                }),
            },
            evaluate: match p.evaluate {
                None => None,
                Some(c) if (1..=MAX_EVALUATED_CLASSES).contains(&c) => Some(c as usize),
                Some(c) => {
                    return Err(format!(
                        "an evaluation over {c} classes (1 to {MAX_EVALUATED_CLASSES})"
                    ));
                }
            },
        },
    })
}

/// The most classes an evaluation may count (its confusion matrix has the square).
const MAX_EVALUATED_CLASSES: u64 = 4096;

fn evaluation_to_wire(e: &Evaluation) -> proto::Evaluation {
    proto::Evaluation {
        confusion: e.confusion.clone(),
        loss: e.loss,
        weight: e.weight,
    }
}

/// An evaluation as received, checked against the classes the plan asked for: a square
/// confusion matrix of them, finite non-negative sums.
fn evaluation_from_wire(
    e: Option<&proto::Evaluation>,
    plan: &Plan,
) -> Result<Option<Evaluation>, Problem> {
    let Some(e) = e else {
        return Ok(None);
    };
    let Some(classes) = plan.evaluate else {
        return Err("an evaluation the plan did not ask for".into());
    };
    if e.confusion.len() != classes * classes {
        return Err(format!(
            "an evaluation of {} counts where the plan asks for {classes} classes ({} counts)",
            e.confusion.len(),
            classes * classes
        ));
    }
    if !(e.loss.is_finite() && e.weight.is_finite() && e.loss >= 0.0 && e.weight >= 0.0) {
        return Err(format!(
            "an evaluation with loss sum {} and weight sum {}",
            e.loss, e.weight
        ));
    }
    Ok(Some(Evaluation {
        confusion: e.confusion.clone(),
        loss: e.loss,
        weight: e.weight,
    }))
}

fn training_to_wire(t: &Training) -> proto::Training {
    proto::Training {
        samples: t.samples,
        loss: t.loss,
        accuracy: t.accuracy,
    }
}

fn training_from_wire(t: &proto::Training) -> Training {
    Training {
        samples: t.samples,
        loss: t.loss,
        accuracy: t.accuracy,
    }
}

/// A device's update going up.
pub fn device_update_to_wire(u: &DeviceUpdate) -> proto::DeviceUpdate {
    use proto::device_update::Payload as P;
    proto::DeviceUpdate {
        round: u.round as u64,
        edge_round: u.edge_round as u64,
        payload: Some(match &u.payload {
            Payload::Delta(d) => P::Delta(proto::Weights { values: d.clone() }),
            // Payload is non-exhaustive: anything else travels as its weights.
            p => P::Weights(proto::Weights {
                values: p.weights(&[]).into_owned(),
            }),
        }),
        training: Some(training_to_wire(&u.training)),
        class_counts: u.class_counts.clone(),
        evaluation: u.evaluation.as_ref().map(evaluation_to_wire),
    }
}

/// Checks a device's update against the model it answers: the round and edge round, one
/// value per weight, every value finite, a training record with samples. `device` is the
/// id its certificate names.
///
/// # Errors
///
/// What is wrong with it, for the log line that rejects it.
pub fn device_update_from_wire(
    device: usize,
    u: &proto::DeviceUpdate,
    sent: &GlobalModel,
) -> Result<DeviceUpdate, Problem> {
    use proto::device_update::Payload as P;
    if (u.round, u.edge_round) != (sent.round as u64, sent.edge_round as u64) {
        return Err(format!(
            "an update for round {}, edge round {} (stale: the open one is round {}, edge round {})",
            u.round, u.edge_round, sent.round, sent.edge_round
        ));
    }
    let (values, delta) = match &u.payload {
        Some(P::Weights(w)) => (&w.values, false),
        Some(P::Delta(w)) => (&w.values, true),
        None => return Err("an update without weights".into()),
    };
    check_values(values, sent.weights.len())?;
    let t = u
        .training
        .as_ref()
        .ok_or("an update without its training record")?;
    // An evaluation's answer trains nothing: its samples are the windows it scored.
    if t.samples == 0 && !sent.plan.evaluates_only() {
        return Err("an update trained on 0 samples".into());
    }
    if !(t.loss.is_finite() && t.accuracy.is_finite()) {
        return Err(format!(
            "a training record with loss {} and accuracy {}",
            t.loss, t.accuracy
        ));
    }
    Ok(DeviceUpdate {
        device,
        round: sent.round,
        edge_round: sent.edge_round,
        payload: if delta {
            Payload::Delta(values.clone())
        } else {
            Payload::Weights(values.clone())
        },
        training: training_from_wire(t),
        class_counts: u.class_counts.clone(),
        evaluation: evaluation_from_wire(u.evaluation.as_ref(), &sent.plan)?,
    })
}

/// One value per weight, each finite.
fn check_values(values: &[f32], len: usize) -> Result<(), Problem> {
    if values.len() != len {
        return Err(format!(
            "{} values where the model has {len} weights",
            values.len()
        ));
    }
    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!("a non-finite value ({}) at weight {i}", values[i]));
    }
    Ok(())
}

fn delivery_to_wire(d: Delivery) -> i32 {
    (match d {
        Delivery::Accepted => proto::Delivery::Accepted,
        Delivery::Late => proto::Delivery::Late,
        // Non-exhaustive: anything else did not arrive.
        _ => proto::Delivery::Failed,
    }) as i32
}

fn delivery_from_wire(d: i32) -> Result<Delivery, Problem> {
    match proto::Delivery::try_from(d) {
        Ok(proto::Delivery::Accepted) => Ok(Delivery::Accepted),
        Ok(proto::Delivery::Failed) => Ok(Delivery::Failed),
        Ok(proto::Delivery::Late) => Ok(Delivery::Late),
        _ => Err(format!("a delivery {d}")),
    }
}

/// An edge's update going up; `refused`: connections it refused so far.
pub fn edge_update_to_wire(u: &EdgeUpdate, refused: u64) -> proto::EdgeUpdate {
    proto::EdgeUpdate {
        round: u.round as u64,
        model: u.model.as_ref().map(|m| proto::EdgeModel {
            weights: m.weights.clone(),
            samples: m.samples,
            class_counts: m.class_counts.clone(),
        }),
        edge_rounds: u
            .edge_rounds
            .iter()
            .map(|r| proto::EdgeRoundReport {
                edge_round: r.edge_round as u64,
                devices: r
                    .devices
                    .iter()
                    .map(|o| proto::PeerOutcome {
                        peer: o.peer as u64,
                        delivery: delivery_to_wire(o.delivery),
                    })
                    .collect(),
                training: r.training.iter().map(training_to_wire).collect(),
                bytes_down: r.bytes_down,
                bytes_up: r.bytes_up,
                seconds: r.seconds,
                secure: r.secure.as_ref().map(|s| proto::SecureRound {
                    participants: s.participants as u64,
                    included: s.included as u64,
                    dropped: s.dropped as u64,
                    excluded: s
                        .excluded
                        .iter()
                        .map(|(d, reason)| proto::Excluded {
                            device: *d as u64,
                            reason: reason.clone(),
                        })
                        .collect(),
                    failed: s.failed.clone(),
                    protocol_bytes: s.protocol_bytes,
                    bound: s.bound,
                }),
            })
            .collect(),
        training_seconds: u.training_seconds,
        aggregation_seconds: u.aggregation_seconds,
        refused,
        evaluation: u.evaluation.as_ref().map(evaluation_to_wire),
    }
}

/// Checks an edge's update against the model it answers (`edge` from its certificate):
/// the round, at most the plan's edge rounds in order, a model of one finite value per
/// weight. The round logic checks the rest ([`iotids_federation::roles::Cloud::round`]).
///
/// # Errors
///
/// What is wrong with it.
pub fn edge_update_from_wire(
    edge: usize,
    u: &proto::EdgeUpdate,
    sent: &GlobalModel,
) -> Result<EdgeUpdate, Problem> {
    if u.round != sent.round as u64 {
        return Err(format!(
            "an update for round {} (stale: the open round is {})",
            u.round, sent.round
        ));
    }
    if u.edge_rounds.len() > sent.plan.edge_rounds {
        return Err(format!(
            "{} edge-round reports where the plan has {}",
            u.edge_rounds.len(),
            sent.plan.edge_rounds
        ));
    }
    if let Some(m) = &u.model {
        check_values(&m.weights, sent.weights.len())?;
        if m.samples == 0 {
            return Err("a model trained on 0 samples".into());
        }
    }
    let mut edge_rounds = Vec::with_capacity(u.edge_rounds.len());
    for (k, r) in u.edge_rounds.iter().enumerate() {
        if r.edge_round != k as u64 {
            return Err(format!("edge round {} reported in place {k}", r.edge_round));
        }
        edge_rounds.push(EdgeRoundReport {
            edge_round: k,
            devices: r
                .devices
                .iter()
                .map(|o| {
                    Ok(PeerOutcome {
                        peer: usize_of(o.peer, "device")?,
                        delivery: delivery_from_wire(o.delivery)?,
                    })
                })
                .collect::<Result<_, Problem>>()?,
            training: r.training.iter().map(training_from_wire).collect(),
            bytes_down: r.bytes_down,
            bytes_up: r.bytes_up,
            seconds: r.seconds,
            secure: match &r.secure {
                None => None,
                Some(s) => Some(SecureRound {
                    participants: usize_of(s.participants, "participants")?,
                    included: usize_of(s.included, "included")?,
                    dropped: usize_of(s.dropped, "dropped")?,
                    excluded: s
                        .excluded
                        .iter()
                        .map(|e| Ok((usize_of(e.device, "device")?, e.reason.clone())))
                        .collect::<Result<_, Problem>>()?,
                    failed: s.failed.clone(),
                    protocol_bytes: s.protocol_bytes,
                    bound: s.bound,
                }),
            },
        });
    }
    Ok(EdgeUpdate {
        edge,
        round: sent.round,
        model: u.model.as_ref().map(|m| EdgeModel {
            weights: m.weights.clone(),
            samples: m.samples,
            class_counts: m.class_counts.clone(),
        }),
        edge_rounds,
        training_seconds: u.training_seconds,
        aggregation_seconds: u.aggregation_seconds,
        evaluation: evaluation_from_wire(u.evaluation.as_ref(), &sent.plan)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use iotids_federation::FederationConfig;
    use iotids_model::train::TrainConfig;

    fn model() -> GlobalModel {
        let cfg = FederationConfig {
            deadline: Some(4.0),
            quorum: 0.5,
            ..FederationConfig::default()
        };
        let mut plan = Plan::new(&cfg, &TrainConfig::default());
        plan.local.class_counts = vec![3, 4];
        plan.head = Some(Head {
            offset: 1,
            hidden: 1,
            classes: 2,
        });
        GlobalModel {
            round: 3,
            edge_round: 1,
            weights: vec![0.5, -1.25, 3.0, 0.0],
            plan,
        }
    }

    #[test]
    fn a_model_and_its_plan_survive_the_wire() {
        let m = model();
        assert_eq!(model_from_wire(model_to_wire(&m)).unwrap(), m);
        let mut bare = model_to_wire(&m);
        bare.plan = None;
        assert!(model_from_wire(bare).unwrap_err().contains("plan"));
    }

    #[test]
    fn device_updates_are_checked_before_they_count() {
        let m = model();
        let good = DeviceUpdate {
            device: 7,
            round: 3,
            edge_round: 1,
            payload: Payload::Weights(vec![1.0, 2.0, 3.0, 4.0]),
            training: Training {
                samples: 10,
                loss: 0.5,
                accuracy: 0.75,
            },
            class_counts: vec![6, 4],
            evaluation: None,
        };
        let wire = device_update_to_wire(&good);
        assert_eq!(device_update_from_wire(7, &wire, &m).unwrap(), good);
        let bad = |f: &dyn Fn(&mut proto::DeviceUpdate)| {
            let mut w = wire.clone();
            f(&mut w);
            device_update_from_wire(7, &w, &m).unwrap_err()
        };
        assert!(bad(&|w| w.edge_round = 0).contains("stale"));
        assert!(bad(&|w| w.payload = None).contains("without weights"));
        let e = bad(&|w| {
            w.payload = Some(proto::device_update::Payload::Weights(proto::Weights {
                values: vec![1.0; 5],
            }))
        });
        assert!(e.contains("5 values where the model has 4"), "{e}");
        let e = bad(&|w| {
            w.payload = Some(proto::device_update::Payload::Weights(proto::Weights {
                values: vec![1.0, f32::NAN, 0.0, 0.0],
            }))
        });
        assert!(e.contains("non-finite value (NaN) at weight 1"), "{e}");
        assert!(bad(&|w| w.training.as_mut().unwrap().samples = 0).contains("0 samples"));
        assert!(bad(&|w| w.training.as_mut().unwrap().loss = f64::INFINITY).contains("loss inf"));
        // An evaluation only where the plan asks for one, of its classes' square.
        let scored = proto::Evaluation {
            confusion: vec![5, 1, 0, 4],
            loss: 2.5,
            weight: 10.0,
        };
        let e = bad(&|w| w.evaluation = Some(scored.clone()));
        assert!(e.contains("did not ask"), "{e}");
    }

    #[test]
    fn evaluations_travel_checked_against_the_plan() {
        let mut m = model();
        m.plan = m.plan.evaluation(2);
        assert!(m.plan.evaluates_only());
        assert_eq!(model_from_wire(model_to_wire(&m)).unwrap(), m);
        let answer = DeviceUpdate {
            device: 2,
            round: 3,
            edge_round: 1,
            payload: Payload::Delta(vec![0.0; 4]),
            // A device without validation windows scored none: 0 samples is an answer.
            training: Training {
                samples: 0,
                loss: 0.0,
                accuracy: 0.0,
            },
            class_counts: Vec::new(),
            evaluation: Some(Evaluation {
                confusion: vec![5, 1, 0, 4],
                loss: 2.5,
                weight: 10.0,
            }),
        };
        let wire = device_update_to_wire(&answer);
        assert_eq!(device_update_from_wire(2, &wire, &m).unwrap(), answer);
        let mut three = wire.clone();
        three.evaluation.as_mut().unwrap().confusion = vec![1; 9];
        let e = device_update_from_wire(2, &three, &m).unwrap_err();
        assert!(
            e.contains("9 counts where the plan asks for 2 classes"),
            "{e}"
        );
        let mut nan = wire;
        nan.evaluation.as_mut().unwrap().loss = f64::NAN;
        let e = device_update_from_wire(2, &nan, &m).unwrap_err();
        assert!(e.contains("loss sum NaN"), "{e}");
        let mut huge = model_to_wire(&m);
        huge.plan.as_mut().unwrap().evaluate = Some(1 << 20);
        assert!(
            model_from_wire(huge)
                .unwrap_err()
                .contains("1048576 classes")
        );
        // An edge's sum comes up the same way.
        let up = EdgeUpdate {
            edge: 0,
            round: 3,
            model: None,
            edge_rounds: Vec::new(),
            training_seconds: 0.0,
            aggregation_seconds: 0.0,
            evaluation: answer.evaluation.clone(),
        };
        assert_eq!(
            edge_update_from_wire(0, &edge_update_to_wire(&up, 0), &m).unwrap(),
            up
        );
    }

    #[test]
    fn edge_updates_survive_the_wire_and_are_checked() {
        let m = model();
        let up = EdgeUpdate {
            edge: 1,
            round: 3,
            model: Some(EdgeModel {
                weights: vec![0.0, 1.0, 2.0, 3.0],
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
                bytes_up: 32,
                seconds: 0.25,
                secure: Some(SecureRound {
                    participants: 2,
                    included: 1,
                    dropped: 1,
                    excluded: vec![(5, "its shares for device 3 did not check out".into())],
                    failed: None,
                    protocol_bytes: 900,
                    bound: 1e-8,
                }),
            }],
            training_seconds: 1.5,
            aggregation_seconds: 0.01,
            evaluation: None,
        };
        let wire = edge_update_to_wire(&up, 2);
        assert_eq!(wire.refused, 2);
        assert_eq!(edge_update_from_wire(1, &wire, &m).unwrap(), up);
        let mut stale = wire.clone();
        stale.round = 2;
        assert!(
            edge_update_from_wire(1, &stale, &m)
                .unwrap_err()
                .contains("stale")
        );
        let mut inf = wire.clone();
        inf.model.as_mut().unwrap().weights[2] = f32::INFINITY;
        assert!(
            edge_update_from_wire(1, &inf, &m)
                .unwrap_err()
                .contains("non-finite")
        );
        let mut many = wire;
        many.edge_rounds = vec![many.edge_rounds[0].clone(); 3];
        assert!(
            edge_update_from_wire(1, &many, &m)
                .unwrap_err()
                .contains("3 edge-round reports")
        );
    }
}
