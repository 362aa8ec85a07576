//! Private aggregation at the edge tier: secure aggregation (the edge learns only the sum
//! of its devices' updates) and differential privacy (the models an edge releases carry
//! an (ε, δ) guarantee for every device's data).
//!
//! Both work on a device's update *folded* into one real vector ([`Folding`]) whose sum
//! over devices is all the edge needs:
//!
//! - without DP, `[nᵢΔᵢ/aᵢ | 1 | nᵢ | nᵢaᵢ | nᵢ·lossᵢ | nᵢ·accuracyᵢ | class countsᵢ]`, with
//!   Δᵢ the device's change from the model it was sent, nᵢ its windows and aᵢ its local
//!   path (1 without normalised averaging): the edge's model is
//!   `w₀ + τ_eff·Σnᵢ(Δᵢ/aᵢ)/Σnᵢ` with `τ_eff = Σnᵢaᵢ/Σnᵢ`, exactly what
//!   [`crate::roles::Edge`] computes from the single updates (FedNova, or FedAvg when aᵢ =
//!   1), now from their sum alone;
//! - with DP (DP-FedAvg, McMahan et al. 2018), `[clip_C(Δᵢ) | 1 | nᵢ | 0 …]`: each change
//!   clipped to L2 norm C, devices weighted equally, and the edge's model is
//!   `w₀ + (ΣΔ̃ᵢ + N(0, σ²C²·I)) / (q·m)` for m member devices sampled at rate q (Poisson):
//!   one device changes the sum by at most C, the noise is σ times that, and the
//!   denominator does not depend on who took part. The losses, accuracies and class
//!   counts of the devices are not folded: they are data too, and no noise covers them.
//!
//! Under secure aggregation the devices fold their own updates, encode them in fixed
//! point and mask them ([`iotids_secagg`]); the edge unmasks the sum, decodes it, and
//! unfolds it (adding the noise under DP, once, on the sum). Without it the edge folds
//! what it received and sums it in f64: the same arithmetic, so the two agree up to the
//! fixed-point rounding ([`SecureRound::bound`]).

use rand::RngCore;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::message::{DeviceUpdate, Evaluation, Plan, SecurePlan, Training};

/// Values after the folded change: devices, windows, windows × path, windows × loss,
/// windows × accuracy.
const TAIL: usize = 5;

/// Where the noise an edge adds under DP comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NoiseSource {
    /// The operating system's generator: what a real edge uses (nobody can predict or
    /// subtract its noise).
    #[default]
    Os,
    /// A generator seeded by the run's seed, the round, the edge round and the edge: a
    /// simulation repeats bit for bit.
    Seeded(u64),
}

/// The layout of a folded update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Folding {
    weights: usize,
    classes: usize,
    /// Classes of the evaluation that rides along (0: none).
    evaluated: usize,
}

/// An edge's model and accounting from a folded sum.
#[derive(Debug, Clone, PartialEq)]
pub struct Unfolded {
    /// The edge's new model.
    pub weights: Vec<f32>,
    /// Devices in the sum.
    pub devices: usize,
    /// Their windows, and their windows-weighted loss and accuracy (None under DP).
    pub training: Option<Training>,
    /// Their windows per class (empty under DP or without the plan's class counts).
    pub class_counts: Vec<u64>,
}

impl Folding {
    /// The layout for `plan` and a model of `weights` values: class counts ride along
    /// when the plan carries the global ones and DP is off.
    ///
    /// When the plan asks devices to evaluate ([`Plan::evaluate`], never under DP), the
    /// [`Evaluation`] follows: its confusion counts, loss sum and weight sum (zeros from a
    /// device that holds no validation windows).
    pub fn new(plan: &Plan, weights: usize) -> Folding {
        let private = plan.privacy.is_some();
        let classes = if private {
            0
        } else {
            plan.local.class_counts.len()
        };
        let evaluated = plan.evaluate.filter(|_| !private).unwrap_or(0);
        Folding {
            weights,
            classes,
            evaluated,
        }
    }

    /// Values in a folded update.
    pub fn len(&self) -> usize {
        self.weights + TAIL + self.classes + self.evaluation_len()
    }

    fn evaluation_len(&self) -> usize {
        if self.evaluated == 0 {
            0
        } else {
            self.evaluated * self.evaluated + 2
        }
    }

    /// The sum of the devices' evaluations in a folded `sum` (None when the plan asked
    /// for none, or no device in the sum held validation windows).
    pub fn evaluation(&self, sum: &[f64]) -> Option<Evaluation> {
        let start = self.weights + TAIL + self.classes;
        let tail = sum.get(start..start + self.evaluation_len())?;
        let (counts, sums) = tail.split_at(tail.len().checked_sub(2)?);
        let e = Evaluation {
            confusion: counts.iter().map(|c| c.round().max(0.0) as u64).collect(),
            loss: sums[0],
            weight: sums[1],
        };
        (e.windows() > 0).then_some(e)
    }

    /// Whether it folds nothing (a model of no weights).
    pub fn is_empty(&self) -> bool {
        self.weights == 0
    }

    /// `update`, which answers a model of weights `start`, folded as `plan` says.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] for an update of another length than `start`.
    pub fn fold(
        &self,
        update: &DeviceUpdate,
        start: &[f32],
        plan: &Plan,
    ) -> crate::Result<Vec<f64>> {
        crate::transport::check_length(
            &format!("device {}", update.device),
            &update.payload,
            start.len(),
        )?;
        if start.len() != self.weights {
            return Err(Error::Protocol {
                peer: format!("device {}", update.device),
                problem: format!("a model of {} values to fold", start.len()),
                expected: format!("{} values", self.weights),
            });
        }
        let w = update.payload.weights(start);
        let mut out: Vec<f64> = w
            .iter()
            .zip(start)
            .map(|(&a, &b)| f64::from(a) - f64::from(b))
            .collect();
        let n = update.training.samples as f64;
        if let Some(dp) = plan.privacy {
            let norm = out.iter().map(|d| d * d).sum::<f64>().sqrt();
            if norm > dp.clip {
                let s = dp.clip / norm;
                out.iter_mut().for_each(|d| *d *= s);
            }
            out.extend([1.0, n, 0.0, 0.0, 0.0]);
            return Ok(out);
        }
        let a = if plan.normalized {
            plan.local.path(update.training.samples).max(1.0)
        } else {
            1.0
        };
        out.iter_mut().for_each(|d| *d *= n / a);
        out.extend([
            1.0,
            n,
            n * a,
            n * update.training.loss,
            n * update.training.accuracy,
        ]);
        out.extend(
            (0..self.classes).map(|c| update.class_counts.get(c).copied().unwrap_or(0) as f64),
        );
        if self.evaluated > 0 {
            let empty = Evaluation::empty(self.evaluated);
            let e = update.evaluation.as_ref().unwrap_or(&empty);
            if e.confusion.len() != empty.confusion.len() {
                return Err(Error::Protocol {
                    peer: format!("device {}", update.device),
                    problem: format!("an evaluation of {} counts", e.confusion.len()),
                    expected: format!("{} counts", empty.confusion.len()),
                });
            }
            out.extend(e.confusion.iter().map(|&c| c as f64));
            out.extend([e.loss, e.weight]);
        }
        Ok(out)
    }

    /// The edge's model from the `sum` of folded updates answering `start`, for an edge of
    /// `members` devices; under DP the noise is drawn from `noise`.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] for a sum of another length; [`Error::Config`] for a sum over
    /// no windows, or under DP an edge of no members.
    pub fn unfold(
        &self,
        sum: &[f64],
        start: &[f32],
        plan: &Plan,
        members: usize,
        noise: &mut dyn RngCore,
    ) -> crate::Result<Unfolded> {
        if sum.len() != self.len() || start.len() != self.weights {
            return Err(Error::Protocol {
                peer: "the edge's link".into(),
                problem: format!(
                    "a sum of {} values for a model of {}",
                    sum.len(),
                    start.len()
                ),
                expected: format!("{} values", self.len()),
            });
        }
        let (body, tail) = sum.split_at(self.weights);
        let devices = tail[0].round().max(0.0) as usize;
        let samples = tail[1].round().max(0.0);
        if let Some(dp) = plan.privacy {
            let expected = dp.sampling_rate * members as f64;
            if expected <= 0.0 {
                return Err(Error::config("members", members, "at least 1 under DP"));
            }
            let sd = dp.noise_multiplier * dp.clip;
            let normal = Normal::new(0.0, sd.max(0.0)).map_err(|e| {
                Error::config("dp_noise_multiplier", dp.noise_multiplier, e.to_string())
            })?;
            let weights = body
                .iter()
                .zip(start)
                .map(|(&s, &w0)| {
                    let z = if sd > 0.0 { normal.sample(noise) } else { 0.0 };
                    (f64::from(w0) + (s + z) / expected) as f32
                })
                .collect();
            return Ok(Unfolded {
                weights,
                devices,
                training: None,
                class_counts: Vec::new(),
            });
        }
        if samples <= 0.0 {
            return Err(Error::config("samples", 0, "a positive total sample count"));
        }
        let tau = if plan.normalized {
            tail[2] / samples
        } else {
            1.0
        };
        let weights = body
            .iter()
            .zip(start)
            .map(|(&s, &w0)| (f64::from(w0) + tau * s / samples) as f32)
            .collect();
        Ok(Unfolded {
            weights,
            devices,
            training: Some(Training {
                samples: samples as u64,
                loss: tail[3] / samples,
                accuracy: tail[4] / samples,
            }),
            class_counts: tail[TAIL..TAIL + self.classes]
                .iter()
                .map(|c| c.round().max(0.0) as u64)
                .collect(),
        })
    }
}

/// What secure aggregation did in one edge round: for the records and `federation.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecureRound {
    /// Devices that took part (advertised keys).
    pub participants: usize,
    /// Devices whose updates are in the unmasked sum.
    pub included: usize,
    /// Devices that shared keys but whose updates are not in it (dropped or late).
    pub dropped: usize,
    /// Devices left out for misbehaving (shares that did not check out, a second
    /// message…), with why.
    pub excluded: Vec<(usize, String)>,
    /// Why the sum could not be unmasked (too few survivors), if it could not.
    pub failed: Option<String>,
    /// Bytes of the protocol's messages beyond the model and the masked vectors, both ways.
    pub protocol_bytes: u64,
    /// The largest error the fixed-point encoding can put on a weight of the edge's model.
    pub bound: f64,
}

impl SecureRound {
    /// The record of an aggregation among `participants` devices, before it ran.
    pub fn new(participants: usize) -> SecureRound {
        SecureRound {
            participants,
            included: 0,
            dropped: 0,
            excluded: Vec::new(),
            failed: None,
            protocol_bytes: 0,
            bound: 0.0,
        }
    }
}

/// The secure-aggregation settings of `plan`.
pub fn settings(plan: &SecurePlan) -> iotids_secagg::Settings {
    iotids_secagg::Settings {
        neighbours: plan.neighbours,
        threshold: plan.threshold,
        fixed: iotids_secagg::Fixed {
            bits: plan.fractional_bits,
        },
    }
}

/// The context binding one edge round's aggregation: run seed, round, edge round, and the
/// participants.
pub fn context(seed: u64, round: usize, edge_round: usize, participants: &[usize]) -> [u8; 32] {
    let mut numbers = vec![seed, round as u64, edge_round as u64];
    numbers.extend(participants.iter().map(|&p| p as u64));
    iotids_secagg::context("iotids-federation/edge-round", &numbers)
}

/// The largest error fixed-point rounding puts on a weight of the edge's model, from the
/// decoded folded `sum` (its tail) under `plan` for `members` devices: each device's
/// folded value rounds by at most `2^−(bits+1)`, and the edge scales the sum by
/// `τ_eff/Σnᵢ` (or `1/(q·m)` under DP).
pub fn bound(folding: &Folding, sum: &[f64], plan: &Plan, members: usize, bits: u32) -> f64 {
    let Some(tail) = sum.get(folding.weights..folding.weights + TAIL) else {
        return f64::NAN;
    };
    let per = 0.5 * 2f64.powi(-(bits as i32));
    let devices = tail[0].max(0.0);
    match plan.privacy {
        Some(dp) => devices * per / (dp.sampling_rate * members as f64).max(f64::MIN_POSITIVE),
        None => {
            let n = tail[1].max(1.0);
            let tau = if plan.normalized { tail[2] / n } else { 1.0 };
            devices * per * tau / n
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FederationConfig;
    use crate::message::Payload;
    use iotids_model::train::TrainConfig;
    use rand::SeedableRng;

    fn update(device: usize, weights: Vec<f32>, samples: u64) -> DeviceUpdate {
        DeviceUpdate {
            device,
            round: 1,
            edge_round: 0,
            payload: Payload::Weights(weights),
            training: Training {
                samples,
                loss: 0.5 + device as f64,
                accuracy: 0.25,
            },
            class_counts: vec![samples, 1],
            evaluation: None,
        }
    }

    #[test]
    fn the_unfolded_sum_is_the_edges_fednova_mean_and_its_accounting() {
        let mut plan = Plan::new(&FederationConfig::default(), &TrainConfig::default());
        plan.local.class_counts = vec![10, 10];
        let start = [1.0f32, -1.0, 0.0];
        let ups = [
            update(0, vec![2.0, -1.0, 0.5], 30),
            update(1, vec![0.0, 0.0, 0.5], 90),
        ];
        let f = Folding::new(&plan, 3);
        assert_eq!(f.len(), 3 + 5 + 2);
        let mut sum = vec![0.0; f.len()];
        for u in &ups {
            for (s, v) in sum.iter_mut().zip(f.fold(u, &start, &plan).unwrap()) {
                *s += v;
            }
        }
        let out = f.unfold(&sum, &start, &plan, 2, &mut rand::rng()).unwrap();
        // By hand: aᵢ = path(nᵢ), τ = Σnᵢaᵢ/Σnᵢ, w = w₀ + τ·Σnᵢ(Δᵢ/aᵢ)/Σnᵢ.
        let a: Vec<f64> = [30u64, 90].iter().map(|&n| plan.local.path(n)).collect();
        let tau = (30.0 * a[0] + 90.0 * a[1]) / 120.0;
        let deltas = [[1.0, 0.0, 0.5], [-1.0, 1.0, 0.5]];
        for j in 0..3 {
            let s = 30.0 * deltas[0][j] / a[0] + 90.0 * deltas[1][j] / a[1];
            let want = f64::from(start[j]) + tau * s / 120.0;
            assert!((f64::from(out.weights[j]) - want).abs() < 1e-6, "{j}");
        }
        let t = out.training.unwrap();
        assert_eq!((out.devices, t.samples), (2, 120));
        assert!((t.loss - (30.0 * 0.5 + 90.0 * 1.5) / 120.0).abs() < 1e-12);
        assert_eq!(out.class_counts, vec![120, 2]);
    }

    #[test]
    fn under_dp_changes_are_clipped_weighted_equally_and_noised_once() {
        let mut cfg = FederationConfig {
            dp_noise_multiplier: Some(0.0),
            dp_clip: 1.0,
            fraction: 0.5,
            ..FederationConfig::default()
        };
        let plan = Plan::new(&cfg, &TrainConfig::default());
        assert!(!plan.normalized, "DP turns normalised averaging off");
        let start = [0.0f32; 2];
        // A change of norm 5 is clipped to norm 1; one of norm 0.5 is kept.
        let ups = [
            update(0, vec![3.0, 4.0], 1000),
            update(1, vec![0.5, 0.0], 1),
        ];
        let f = Folding::new(&plan, 2);
        assert_eq!(f.len(), 2 + 5);
        let folded: Vec<Vec<f64>> = ups
            .iter()
            .map(|u| f.fold(u, &start, &plan).unwrap())
            .collect();
        assert!((folded[0][0] - 0.6).abs() < 1e-12 && (folded[0][1] - 0.8).abs() < 1e-12);
        let sum: Vec<f64> = (0..f.len()).map(|j| folded[0][j] + folded[1][j]).collect();
        // Four members at q = 0.5: the denominator is 2, whoever came.
        let out = f.unfold(&sum, &start, &plan, 4, &mut rand::rng()).unwrap();
        assert!((out.weights[0] - 0.55).abs() < 1e-6 && (out.weights[1] - 0.4).abs() < 1e-6);
        assert_eq!(out.training, None);
        assert!(out.class_counts.is_empty());
        // With σ = 2 and C = 1 the noise on each weight has sd σC/(qm) = 1.
        cfg.dp_noise_multiplier = Some(2.0);
        let plan = Plan::new(&cfg, &TrainConfig::default());
        let wide = Folding::new(&plan, 20_000);
        let mut s = vec![0.0; wide.len()];
        s[20_000] = 2.0;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let out = wide.unfold(&s, &[0.0; 20_000], &plan, 4, &mut rng).unwrap();
        let var = out
            .weights
            .iter()
            .map(|w| f64::from(*w).powi(2))
            .sum::<f64>()
            / 20_000.0;
        assert!((var.sqrt() - 1.0).abs() < 0.02, "sd {}", var.sqrt());
    }
}
