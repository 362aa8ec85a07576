//! The federated strategies, named as Flower names them, and the server optimiser the
//! adaptive ones run at the cloud.
//!
//! FedAvg and FedProx take the aggregate as the new global model (FedProx differs on the
//! devices: a proximal term in their loss). FedAvgM, FedAdam and FedYogi (Hsu et al. 2019;
//! Reddi et al. 2021) treat `Δ = aggregate − global` as a pseudo-gradient and step the
//! global model with momentum, Adam or Yogi. In the hierarchy they act where the global
//! model is made, the cloud; edges combine their devices with their tier's rule only.

use serde::{Deserialize, Serialize};

/// A federated strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    /// McMahan et al. 2017: the aggregate is the new global model.
    FedAvg,
    /// Li et al. 2020: FedAvg, plus `μ/2 · ‖w − w_global‖²` in every device's local loss.
    FedProx,
    /// Hsu et al. 2019: `m ← β m + (w − agg)`, `w ← w − η m` (η
    /// `server_learning_rate`, β `server_momentum`).
    FedAvgM,
    /// Reddi et al. 2021 with Adam at the server:
    /// `m ← β₁ m + (1 − β₁) Δ`, `v ← β₂ v + (1 − β₂) Δ²`,
    /// `w ← w + η · √(1 − β₂ᵗ)/(1 − β₁ᵗ) · m / (√v + τ)`.
    FedAdam,
    /// Reddi et al. 2021 with Yogi: as FedAdam but `v ← v − (1 − β₂) Δ² sign(v − Δ²)` and
    /// no bias correction (as Flower's FedYogi).
    FedYogi,
}

spelled!(Strategy, "strategy", {
    FedAvg => "fedavg",
    FedProx => "fedprox",
    FedAvgM => "fedavgm",
    FedAdam => "fedadam",
    FedYogi => "fedyogi",
});

/// The server optimiser's settings (Flower's keyword arguments).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServerSettings {
    /// FedAvgM's η (Flower's default 1.0).
    pub server_learning_rate: f64,
    /// FedAvgM's β (0.9, Hsu et al.'s value; Flower's default 0 would make it FedAvg).
    pub server_momentum: f64,
    /// FedAdam's and FedYogi's η (0.01, Flower's FedYogi default).
    pub eta: f64,
    /// β₁ (0.9).
    pub beta_1: f64,
    /// β₂ (0.99).
    pub beta_2: f64,
    /// τ, the adaptivity floor (1e-3, Flower's FedYogi default).
    pub tau: f64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            server_learning_rate: 1.0,
            server_momentum: 0.9,
            eta: 1e-2,
            beta_1: 0.9,
            beta_2: 0.99,
            tau: 1e-3,
        }
    }
}

/// The cloud's optimiser state across rounds (serialisable, so a cloud can checkpoint it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerOptimizer {
    strategy: Strategy,
    s: ServerSettings,
    m: Vec<f64>,
    v: Vec<f64>,
    round: u32,
}

impl ServerOptimizer {
    /// A fresh optimiser (zero moments).
    pub fn new(strategy: Strategy, settings: ServerSettings) -> Self {
        ServerOptimizer {
            strategy,
            s: settings,
            m: Vec::new(),
            v: Vec::new(),
            round: 0,
        }
    }

    /// The next global model from the current one and the cloud's aggregate of this round.
    pub fn step(&mut self, global: &[f32], aggregate: &[f32]) -> Vec<f32> {
        self.round += 1;
        let n = global.len();
        if self.m.len() != n {
            self.m = vec![0.0; n];
            self.v = vec![0.0; n];
        }
        let s = self.s;
        let delta = |i: usize| f64::from(aggregate[i]) - f64::from(global[i]);
        match self.strategy {
            Strategy::FedAvg | Strategy::FedProx => aggregate.to_vec(),
            Strategy::FedAvgM => (0..n)
                .map(|i| {
                    // Flower: the pseudo-gradient is global − aggregate = −Δ.
                    self.m[i] = s.server_momentum * self.m[i] - delta(i);
                    (f64::from(global[i]) - s.server_learning_rate * self.m[i]) as f32
                })
                .collect(),
            Strategy::FedAdam => {
                let t = f64::from(self.round);
                let eta_t = s.eta * (1.0 - s.beta_2.powf(t)).sqrt() / (1.0 - s.beta_1.powf(t));
                (0..n)
                    .map(|i| {
                        let d = delta(i);
                        self.m[i] = s.beta_1 * self.m[i] + (1.0 - s.beta_1) * d;
                        self.v[i] = s.beta_2 * self.v[i] + (1.0 - s.beta_2) * d * d;
                        (f64::from(global[i]) + eta_t * self.m[i] / (self.v[i].sqrt() + s.tau))
                            as f32
                    })
                    .collect()
            }
            Strategy::FedYogi => (0..n)
                .map(|i| {
                    let d = delta(i);
                    let d2 = d * d;
                    self.m[i] = s.beta_1 * self.m[i] + (1.0 - s.beta_1) * d;
                    self.v[i] -= (1.0 - s.beta_2) * d2 * (self.v[i] - d2).signum();
                    (f64::from(global[i]) + s.eta * self.m[i] / (self.v[i].sqrt() + s.tau)) as f32
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fedavg_and_fedprox_take_the_aggregate() {
        for k in [Strategy::FedAvg, Strategy::FedProx] {
            let mut o = ServerOptimizer::new(k, ServerSettings::default());
            assert_eq!(o.step(&[1.0, 2.0], &[3.0, -1.0]), vec![3.0, -1.0]);
        }
    }

    #[test]
    fn fedavgm_accumulates_momentum_as_hand_computed() {
        let s = ServerSettings {
            server_learning_rate: 0.5,
            server_momentum: 0.9,
            ..ServerSettings::default()
        };
        let mut o = ServerOptimizer::new(Strategy::FedAvgM, s);
        // Round 1: Δ = 2 → m = −2, w = 1 − 0.5·(−2) = 2.
        assert_eq!(o.step(&[1.0], &[3.0]), vec![2.0]);
        // Round 2 from 2, aggregate 3: Δ = 1 → m = 0.9·(−2) − 1 = −2.8, w = 2 + 1.4 = 3.4.
        let w = o.step(&[2.0], &[3.0]);
        assert!((w[0] - 3.4).abs() < 1e-6, "{w:?}");
    }

    #[test]
    fn fedadam_and_fedyogi_match_hand_computation() {
        let s = ServerSettings {
            eta: 0.1,
            beta_1: 0.9,
            beta_2: 0.99,
            tau: 1e-3,
            ..ServerSettings::default()
        };
        // FedAdam round 1, Δ = 0.5: m = 0.05, v = 0.0025, η₁ = 0.1·√0.01/0.1 = 0.1,
        // w = 0 + 0.1 · 0.05 / (0.05 + 0.001) = 0.098039…
        let mut adam = ServerOptimizer::new(Strategy::FedAdam, s);
        let w = adam.step(&[0.0], &[0.5]);
        assert!((f64::from(w[0]) - 0.1 * 0.05 / 0.051).abs() < 1e-6, "{w:?}");
        // Round 2 from w, Δ = 0.5 − w: by the formulas, step by step.
        let d = 0.5 - f64::from(w[0]);
        let m = 0.9 * 0.05 + 0.1 * d;
        let v = 0.99 * 0.0025 + 0.01 * d * d;
        let eta2 = 0.1 * (1.0 - 0.99f64.powi(2)).sqrt() / (1.0 - 0.9f64.powi(2));
        let want = f64::from(w[0]) + eta2 * m / (v.sqrt() + 1e-3);
        let w2 = adam.step(&w, &[0.5]);
        assert!((f64::from(w2[0]) - want).abs() < 1e-6);

        // FedYogi round 1, Δ = 0.5: v = 0 − 0.01·0.25·sign(0 − 0.25) = 0.0025, m = 0.05,
        // w = 0.1 · 0.05 / (0.05 + 0.001) (no bias correction).
        let mut yogi = ServerOptimizer::new(Strategy::FedYogi, s);
        let w = yogi.step(&[0.0], &[0.5]);
        assert!((f64::from(w[0]) - 0.1 * 0.05 / 0.051).abs() < 1e-6);
        // Round 2, Δ = 0.1 (Δ² = 0.01 > v): v grows by 0.01·0.01 = 0.0001 → 0.0026.
        let w2 = yogi.step(&[0.0], &[0.1]);
        let m = 0.9 * 0.05 + 0.1 * 0.1;
        let want = 0.1 * m / (0.0026f64.sqrt() + 1e-3);
        assert!((f64::from(w2[0]) - want).abs() < 1e-6, "{w2:?} vs {want}");
    }

    #[test]
    fn names_round_trip() {
        for &k in Strategy::ALL {
            assert_eq!(k.name().parse::<Strategy>().unwrap(), k);
        }
        assert_eq!("FedAdam".parse::<Strategy>().unwrap(), Strategy::FedAdam);
        assert!("fedsgd".parse::<Strategy>().is_err());
    }
}
