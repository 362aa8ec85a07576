//! A federation run's settings: the command line's flags and the TOML config file are the
//! same fields under the same names (`local_epochs` in the file is `--local-epochs`).
//!
//! ```toml
//! devices = 20
//! edges = 4
//! rounds = 30
//! local_epochs = 1
//! edge_rounds = 2
//! partition = "dirichlet"
//! alpha = 0.3
//! strategy = "fedprox"
//! proximal_mu = 0.01
//! edge_aggregation = "mean"
//! cloud_aggregation = "median"
//! ```

use std::path::Path;

use serde::{Deserialize, Serialize};

use iotids_model::train::Optimizer;

use crate::aggregate::Aggregation;
use crate::error::Error;
use crate::partition::PartitionKind;
use crate::strategy::{ServerSettings, Strategy};

/// What poisoned devices do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attack {
    /// No poisoning.
    None,
    /// Train on shifted labels: class `c` is labelled `c + 1` (mod the class count), so
    /// every attack is taught as another and the last as the first.
    LabelFlip,
    /// Train honestly, then send `start + s · (w − start)` (`attack_scale` s): a boosted
    /// or, with s < 0, sign-flipped update.
    Scale,
}

/// How the preprocessing pipeline of a federation run is fitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PipelineFit {
    /// From the devices' summaries (`iotids_data::federated`): no row leaves a device.
    #[default]
    Summaries,
    /// On the pooled training rows, as central training does (for comparison: a real
    /// federation never has them).
    Pooled,
}

spelled!(PipelineFit, "pipeline", {
    Summaries => "summaries",
    Pooled => "pooled",
});

/// Where each round's global model is scored to pick the kept round.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ValidationSite {
    /// On validation rows the cloud holds (a file of its own on a network).
    #[default]
    Cloud,
    /// On the devices: each scores the model on the later part of its own traffic
    /// (Flower's evaluate round) and the cloud sums their confusion matrices. No row
    /// leaves a device, and a device's validation windows keep the context of its
    /// earlier traffic.
    Devices,
}

spelled!(ValidationSite, "validate_on", {
    Cloud => "cloud",
    Devices => "devices",
});

/// The devices' SGD learning rate when `local_lr` is not given.
pub const DEFAULT_SGD_LEARNING_RATE: f64 = 0.1;

/// The optimiser devices train with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LocalOptimizer {
    /// A fresh Adam each local run, at the central learning rate (`--lr`).
    Adam,
    /// SGD with `local_momentum`, at `local_lr`.
    Sgd,
}

spelled!(LocalOptimizer, "local_optimizer", {
    Adam => "adam",
    Sgd => "sgd",
});

spelled!(Attack, "attack", {
    None => "none",
    LabelFlip => "label-flip",
    Scale => "scale",
});

/// Every setting of a federation run. [`Default`] gives the values documented per field.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// Devices, each with its own share of the training rows (20).
    pub devices: usize,
    /// Edge aggregators; device `d` of `N` reports to edge `⌊d·E/N⌋` (4).
    pub edges: usize,
    /// Cloud rounds (100: with SGD on the devices and normalised averaging, the MQTTset
    /// development test macro-F1 went from 0.928 after 50 rounds to 0.953 after 100).
    pub rounds: usize,
    /// Local epochs per device per edge round, HierFAVG's τ₁ (1).
    pub local_epochs: usize,
    /// The devices' optimiser (sgd: on the MQTTset development cut, 20 devices, Dirichlet
    /// 0.3, test macro-F1 0.80 against a fresh Adam's 0.63, whose first steps move every
    /// weight by about its learning rate, so the devices that lack a class push its
    /// output down by full steps).
    pub local_optimizer: LocalOptimizer,
    /// The devices' learning rate; none: the central `--lr` under Adam, 0.1 under SGD
    /// (0.03 and 0.3 did worse on the development cut).
    pub local_lr: Option<f64>,
    /// The momentum of `sgd` on the devices (0.9).
    pub local_momentum: f64,
    /// Normalised averaging at the edges (FedNova, Wang et al. 2020; true): each
    /// device's change is divided by its local path length (its steps, or the momentum
    /// sum) and the mean rescaled by the devices' mean path, so a device with few rows,
    /// and so few local steps, is not outvoted by its step count. On the MQTTset
    /// development cut it saved flood, which one 93-window device holds (F1 0 → 0.61;
    /// macro-F1 0.80 → 0.90): under momentum SGD a 12-step device's change is 55 gradients
    /// long and a 1-step device's one.
    pub normalized_averaging: bool,
    /// Devices weigh each class's loss by the pipeline's `n / (k · n_c)` (true; central
    /// training's `--class-weights` is off by default). Under label skew a rare class
    /// lives on one or two devices, and its weight is what keeps it in their updates:
    /// development test macro-F1 0.90 → 0.93 (flood 0.61 → 0.81) at 50 rounds.
    pub local_class_weights: bool,
    /// Edge rounds per cloud round, HierFAVG's τ₂ (2).
    pub edge_rounds: usize,
    /// Fraction of each edge's devices sampled per edge round, at least one (1.0).
    pub fraction: f64,
    /// How rows are dealt to devices (dirichlet-time: Dirichlet label skew, each class's
    /// flows in time order, so a device holds a stretch of its traffic as a capture point
    /// does; with node tables, on the MQTTset development cut, test macro-F1 0.944 against
    /// the shuffled deal's 0.844).
    pub partition: PartitionKind,
    /// Dirichlet concentration for `dirichlet`, `dirichlet-time` and `quantity` (0.3).
    pub alpha: f64,
    /// The strategy (fedavgm: on the MQTTset development cut, 20 devices, Dirichlet 0.3,
    /// test macro-F1 0.72 after 50 rounds against FedAvg's 0.49 after 30).
    pub strategy: Strategy,
    /// FedProx's μ (0.01; used by `fedprox` only).
    pub proximal_mu: f64,
    /// FedAvgM's server learning rate η (1.0).
    pub server_learning_rate: f64,
    /// FedAvgM's server momentum β (0.9).
    pub server_momentum: f64,
    /// FedAdam's and FedYogi's server step η (0.01).
    pub eta: f64,
    /// FedAdam's and FedYogi's β₁ (0.9).
    pub beta_1: f64,
    /// FedAdam's and FedYogi's β₂ (0.99).
    pub beta_2: f64,
    /// FedAdam's and FedYogi's τ (1e-3).
    pub tau: f64,
    /// How an edge combines its devices (mean).
    pub edge_aggregation: Aggregation,
    /// How the cloud combines the edges (mean).
    pub cloud_aggregation: Aggregation,
    /// Probability that a sampled device fails mid-round and sends nothing (0).
    pub device_dropout: f64,
    /// Deadline of an edge round in simulated seconds; later updates are dropped and
    /// counted. None: wait for every device.
    pub deadline: Option<f64>,
    /// Share of an edge round's sampled devices the edge waits for past the deadline (0):
    /// with fewer updates in time, it takes the next ones to arrive until this many have.
    pub quorum: f64,
    /// Windows a device of speed 1 trains per simulated second (2000).
    pub device_rate: f64,
    /// σ of the log-normal spread of device speeds, drawn once per device (0.5), and a
    /// fifth of it per round as jitter.
    pub speed_spread: f64,
    /// Device link speed, bytes per simulated second each way (1.25e6: 10 Mbit/s).
    pub bandwidth: f64,
    /// Fraction of devices that poison (0).
    pub malicious: f64,
    /// What they do (none).
    pub attack: Attack,
    /// The factor of the `scale` attack (−5: a boosted, sign-flipped update).
    pub attack_scale: f64,
    /// Aggregate the output layer class by class (false): each class's head weights are
    /// averaged over the updates weighted by their windows of that class, so a class one
    /// device holds is not diluted by the devices that never saw it. Mean aggregation only
    /// (robust rules and sum-only links aggregate the head like everything else). Off by
    /// default: on MQTTset it did not help (dev test macro-F1 0.69 against 0.72), because
    /// the devices that lack a class also teach, by pushing its logit down on their
    /// traffic, what it is not.
    pub class_wise_head: bool,
    /// τ of the logit-adjusted local loss (0: off): devices train on
    /// `logits + τ·(ln π_local − ln π_global)` with π_global from the devices' label-count
    /// summaries, so a device missing a class does not push its logit down (FedLC/FedRS).
    /// Off by default: on MQTTset it erased malariados (dev test F1 0.73 → 0.00): when two
    /// classes never share a device, the pushes it removes are the only thing that teaches
    /// the network to tell them apart.
    pub logit_adjustment: f64,
    /// Rounds in the centred moving average of validation macro-F1 that picks the kept
    /// round (3): the kept round is the best on average with its neighbours, so one lucky
    /// round on a tiny validation class is not kept. 1 keeps the single best round.
    pub selection_window: usize,
    /// How the preprocessing pipeline is fitted (summaries: the statistics round, in which
    /// the devices send bounded summaries and the cloud fits the pipeline from them; pooled:
    /// on the pooled training rows, which a real federation never has).
    pub pipeline: PipelineFit,
    /// Where each round's model is scored (cloud: the cloud's validation rows; devices:
    /// every device on the later part of its own traffic, the cloud summing their
    /// confusion matrices). Not with differential privacy: the evaluations are data no
    /// noise covers.
    pub validate_on: ValidationSite,
    /// Secure aggregation at the edges (false): devices mask their updates (SecAgg+) and
    /// an edge learns only their sum. Needs mean aggregation at the edges and no
    /// class-wise head.
    pub secure_aggregation: bool,
    /// Secure aggregation's neighbourhood: each device shares its secrets with this many
    /// devices, itself included (none: every device of the round up to 64, then
    /// `max(64, 2⌈3·log₂ n⌉ + 1)`).
    pub secagg_neighbours: Option<usize>,
    /// Shares that rebuild a device's secrets (none: a majority of its neighbourhood, so an
    /// edge that lies about who dropped cannot unmask anyone). Fewer survivors than this in
    /// an edge round, and that edge round yields nothing.
    pub secagg_threshold: Option<usize>,
    /// DP-FedAvg's noise multiplier σ (none: no differential privacy; with
    /// `dp_target_epsilon` alone, the smallest σ that lets every round run within it).
    /// Devices' changes are clipped to `dp_clip`, weighted equally, and an edge adds
    /// N(0, (σ·clip)²) to their sum each edge round and divides by the expected number of
    /// devices; devices take part by Poisson sampling at rate `fraction`.
    pub dp_noise_multiplier: Option<f64>,
    /// The L2 norm each device's change is clipped to under differential privacy (2: on
    /// MQTTset with 1,000 devices, 5 local epochs, q = 0.2 and no noise, validation
    /// macro-F1 0.42 at 0.5, 0.82 at 2, 0.82 at 5; the noise grows with it).
    pub dp_clip: f64,
    /// The δ of the (ε, δ) guarantee (none: 1e-5, or 1/devices² if that is smaller).
    pub dp_delta: Option<f64>,
    /// Stop training before a round would spend more than this ε (none: no budget).
    pub dp_target_epsilon: Option<f64>,
    /// Seed of the partition, sampling, failures and local batch orders (42).
    pub seed: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        let defaults = ServerSettings::default();
        FederationConfig {
            devices: 20,
            edges: 4,
            rounds: 100,
            local_epochs: 1,
            local_optimizer: LocalOptimizer::Sgd,
            local_lr: None,
            local_momentum: 0.9,
            normalized_averaging: true,
            local_class_weights: true,
            edge_rounds: 2,
            fraction: 1.0,
            partition: PartitionKind::DirichletTime,
            alpha: 0.3,
            strategy: Strategy::FedAvgM,
            proximal_mu: 0.01,
            server_learning_rate: defaults.server_learning_rate,
            server_momentum: defaults.server_momentum,
            eta: defaults.eta,
            beta_1: defaults.beta_1,
            beta_2: defaults.beta_2,
            tau: defaults.tau,
            edge_aggregation: Aggregation::Mean,
            cloud_aggregation: Aggregation::Mean,
            device_dropout: 0.0,
            deadline: None,
            quorum: 0.0,
            device_rate: 2000.0,
            speed_spread: 0.5,
            bandwidth: 1.25e6,
            malicious: 0.0,
            attack: Attack::None,
            attack_scale: -5.0,
            class_wise_head: false,
            logit_adjustment: 0.0,
            selection_window: 3,
            pipeline: PipelineFit::Summaries,
            validate_on: ValidationSite::Cloud,
            secure_aggregation: false,
            secagg_neighbours: None,
            secagg_threshold: None,
            dp_noise_multiplier: None,
            dp_clip: 2.0,
            dp_delta: None,
            dp_target_epsilon: None,
            seed: 42,
        }
    }
}

impl FederationConfig {
    /// Reads a TOML config file; fields it leaves out keep their defaults.
    ///
    /// # Errors
    ///
    /// [`Error::File`] naming the file and, for a parse error, the line and column.
    pub fn from_toml_file(path: &Path) -> crate::Result<FederationConfig> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::File {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        let cfg: FederationConfig = toml::from_str(&text).map_err(|e| {
            let at = e
                .span()
                .map(|s| {
                    let before = &text[..s.start.min(text.len())];
                    let line = before.matches('\n').count() + 1;
                    let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                    format!("line {line}, column {col}: ")
                })
                .unwrap_or_default();
            Error::File {
                path: path.to_path_buf(),
                reason: format!("{at}{}", e.message()),
            }
        })?;
        Ok(cfg)
    }

    /// The config as TOML, for the run's output directory (`federation.toml` re-runs it).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_default()
    }

    /// Checks every field and their combinations.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first bad setting.
    pub fn check(&self) -> crate::Result<()> {
        let positive = |field, v: usize| {
            if v == 0 {
                Err(Error::config(field, 0, "at least 1"))
            } else {
                Ok(())
            }
        };
        positive("devices", self.devices)?;
        positive("edges", self.edges)?;
        positive("rounds", self.rounds)?;
        positive("local_epochs", self.local_epochs)?;
        positive("edge_rounds", self.edge_rounds)?;
        positive("selection_window", self.selection_window)?;
        if !(self.logit_adjustment >= 0.0 && self.logit_adjustment.is_finite()) {
            return Err(Error::config(
                "logit_adjustment",
                self.logit_adjustment,
                "a number ≥ 0",
            ));
        }
        if self.edges > self.devices {
            return Err(Error::config(
                "edges",
                self.edges,
                format!("at most the number of devices ({})", self.devices),
            ));
        }
        let unit = |field, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(Error::config(field, v, "in [0, 1]"))
            }
        };
        unit("fraction", self.fraction)?;
        if self.fraction == 0.0 {
            return Err(Error::config("fraction", 0, "in (0, 1]"));
        }
        unit("malicious", self.malicious)?;
        unit("quorum", self.quorum)?;
        if !(0.0..1.0).contains(&self.device_dropout) {
            return Err(Error::config(
                "device_dropout",
                self.device_dropout,
                "in [0, 1)",
            ));
        }
        let pos = |field, v: f64| {
            if v > 0.0 && v.is_finite() {
                Ok(())
            } else {
                Err(Error::config(field, v, "a positive number"))
            }
        };
        pos("alpha", self.alpha)?;
        pos("device_rate", self.device_rate)?;
        pos("bandwidth", self.bandwidth)?;
        if let Some(d) = self.deadline {
            pos("deadline", d)?;
        }
        if !(self.speed_spread >= 0.0 && self.speed_spread.is_finite()) {
            return Err(Error::config(
                "speed_spread",
                self.speed_spread,
                "a number ≥ 0",
            ));
        }
        if !(self.proximal_mu >= 0.0 && self.proximal_mu.is_finite()) {
            return Err(Error::config(
                "proximal_mu",
                self.proximal_mu,
                "a number ≥ 0",
            ));
        }
        if !self.attack_scale.is_finite() {
            return Err(Error::config(
                "attack_scale",
                self.attack_scale,
                "a finite number",
            ));
        }
        if let Some(lr) = self.local_lr {
            pos("local_lr", lr)?;
        }
        if !(0.0..1.0).contains(&self.local_momentum) {
            return Err(Error::config(
                "local_momentum",
                self.local_momentum,
                "in [0, 1)",
            ));
        }
        self.check_privacy()?;
        let s = self.server();
        pos("server_learning_rate", s.server_learning_rate)?;
        pos("eta", s.eta)?;
        pos("tau", s.tau)?;
        for (field, v) in [
            ("server_momentum", s.server_momentum),
            ("beta_1", s.beta_1),
            ("beta_2", s.beta_2),
        ] {
            if !(0.0..1.0).contains(&v) {
                return Err(Error::config(field, v, "in [0, 1)"));
            }
        }
        Ok(())
    }

    /// Whether differential privacy is on (a noise multiplier or a target ε given).
    pub fn private(&self) -> bool {
        self.dp_noise_multiplier.is_some() || self.dp_target_epsilon.is_some()
    }

    /// The δ of the guarantee: `dp_delta`, or 1e-5, or 1/devices² if that is smaller.
    pub fn delta(&self) -> f64 {
        self.dp_delta
            .unwrap_or_else(|| 1e-5f64.min(1.0 / (self.devices as f64).powi(2)))
    }

    /// Accounting steps per cloud round: one per edge round (each edge round releases a
    /// new edge model built from a sample of the devices).
    pub fn dp_steps_per_round(&self) -> u64 {
        self.edge_rounds as u64
    }

    /// The config with the noise multiplier `dp_target_epsilon` calls for, when only the
    /// target is given: the smallest σ with which all `rounds` rounds stay within it.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] when no noise multiplier reaches the target.
    pub fn resolve_privacy(mut self) -> crate::Result<FederationConfig> {
        if let (None, Some(target)) = (self.dp_noise_multiplier, self.dp_target_epsilon) {
            let steps = self.rounds as u64 * self.dp_steps_per_round();
            let sigma =
                iotids_privacy::noise_multiplier_for(self.fraction, steps, self.delta(), target)
                    .map_err(|e| Error::config("dp_target_epsilon", target, e.to_string()))?;
            self.dp_noise_multiplier = Some(sigma);
        }
        Ok(self)
    }

    /// Checks of the secure-aggregation and differential-privacy settings.
    fn check_privacy(&self) -> crate::Result<()> {
        if self.private() && self.validate_on == ValidationSite::Devices {
            return Err(Error::config(
                "validate_on",
                self.validate_on,
                "cloud under differential privacy (the devices' evaluations of each \
                 round's model are data the guarantee does not cover)",
            ));
        }
        if self.secure_aggregation || self.private() {
            if self.edge_aggregation != Aggregation::Mean {
                return Err(Error::config(
                    "edge_aggregation",
                    self.edge_aggregation,
                    "mean under secure aggregation or differential privacy (a robust rule \
                     needs each update, and its sensitivity is not the mean's)",
                ));
            }
            if self.class_wise_head {
                return Err(Error::config(
                    "class_wise_head",
                    true,
                    "false under secure aggregation or differential privacy",
                ));
            }
        }
        if let Some(k) = self.secagg_neighbours
            && k < 2
        {
            return Err(Error::config("secagg_neighbours", k, "at least 2"));
        }
        if let Some(t) = self.secagg_threshold
            && t < 2
        {
            return Err(Error::config("secagg_threshold", t, "at least 2"));
        }
        if let Some(sigma) = self.dp_noise_multiplier
            && !(sigma >= 0.0 && sigma.is_finite())
        {
            return Err(Error::config("dp_noise_multiplier", sigma, "a number ≥ 0"));
        }
        if !(self.dp_clip > 0.0 && self.dp_clip.is_finite()) {
            return Err(Error::config("dp_clip", self.dp_clip, "a positive number"));
        }
        if let Some(d) = self.dp_delta
            && !(d > 0.0 && d < 1.0)
        {
            return Err(Error::config("dp_delta", d, "in (0, 1)"));
        }
        if let Some(e) = self.dp_target_epsilon
            && !(e > 0.0 && e.is_finite())
        {
            return Err(Error::config("dp_target_epsilon", e, "a positive number"));
        }
        Ok(())
    }

    /// The server optimiser's settings.
    pub fn server(&self) -> ServerSettings {
        ServerSettings {
            server_learning_rate: self.server_learning_rate,
            server_momentum: self.server_momentum,
            eta: self.eta,
            beta_1: self.beta_1,
            beta_2: self.beta_2,
            tau: self.tau,
        }
    }

    /// The edge device `d` reports to.
    pub fn edge_of(&self, d: usize) -> usize {
        d * self.edges / self.devices
    }

    /// The devices' optimiser and learning rate, `central_learning_rate` being `--lr`.
    pub fn local_optimizer(&self, central_learning_rate: f64) -> (Optimizer, f64) {
        match self.local_optimizer {
            LocalOptimizer::Adam => (
                Optimizer::Adam,
                self.local_lr.unwrap_or(central_learning_rate),
            ),
            LocalOptimizer::Sgd => (
                Optimizer::Sgd {
                    momentum: self.local_momentum,
                },
                self.local_lr.unwrap_or(DEFAULT_SGD_LEARNING_RATE),
            ),
        }
    }

    /// μ of the devices' proximal term: `proximal_mu` under FedProx, else 0.
    pub fn device_mu(&self) -> f64 {
        if self.strategy == Strategy::FedProx {
            self.proximal_mu
        } else {
            0.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trips_and_fills_defaults() {
        let cfg = FederationConfig {
            strategy: Strategy::FedAdam,
            edge_aggregation: Aggregation::TrimmedMean { beta: 0.2 },
            cloud_aggregation: Aggregation::Krum { f: 1, keep: 0 },
            deadline: Some(3.5),
            attack: Attack::LabelFlip,
            ..FederationConfig::default()
        };
        let text = cfg.to_toml();
        assert!(text.contains("strategy = \"fedadam\""), "{text}");
        assert!(
            text.contains("edge_aggregation = \"trimmed-mean:0.2\""),
            "{text}"
        );
        assert!(text.contains("attack = \"label-flip\""), "{text}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(&path, &text).unwrap();
        assert_eq!(FederationConfig::from_toml_file(&path).unwrap(), cfg);

        std::fs::write(&path, "devices = 7\npartition = \"host\"\n").unwrap();
        let short = FederationConfig::from_toml_file(&path).unwrap();
        assert_eq!(short.devices, 7);
        assert_eq!(short.partition, PartitionKind::Host);
        assert_eq!(short.edges, 4);
    }

    #[test]
    fn bad_files_and_settings_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "devices = 3\nedge_aggregation = \"avg\"\n").unwrap();
        let e = FederationConfig::from_toml_file(&path)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad.toml") && e.contains("line 2") && e.contains("avg"),
            "{e}"
        );
        std::fs::write(&path, "devise = 3\n").unwrap();
        let e = FederationConfig::from_toml_file(&path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 1") && e.contains("devise"), "{e}");

        let bad = |f: fn(&mut FederationConfig)| {
            let mut c = FederationConfig::default();
            f(&mut c);
            c.check().unwrap_err().to_string()
        };
        assert!(bad(|c| c.edges = 30).contains("edges"));
        assert!(bad(|c| c.device_dropout = 1.0).contains("device_dropout"));
        assert!(bad(|c| c.fraction = 0.0).contains("fraction"));
        assert!(bad(|c| c.beta_2 = 1.0).contains("beta_2"));
        assert!(bad(|c| c.local_momentum = 1.0).contains("local_momentum"));
        assert!(bad(|c| c.local_lr = Some(0.0)).contains("local_lr"));
        assert!(bad(|c| c.local_lr = Some(f64::NAN)).contains("local_lr"));
        assert!(FederationConfig::default().check().is_ok());
    }

    #[test]
    fn the_example_config_reads_and_passes_its_checks() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/federation.toml");
        let cfg = FederationConfig::from_toml_file(&path).unwrap();
        cfg.check().unwrap();
        assert_eq!((cfg.devices, cfg.edges, cfg.rounds), (20, 4, 100));
        assert_eq!(cfg.strategy, Strategy::FedAvgM);
        assert_eq!(cfg.partition, PartitionKind::DirichletTime);
        assert_eq!(cfg.deadline, None);
        assert_eq!(cfg.pipeline, PipelineFit::Summaries);
        assert!(!cfg.secure_aggregation && !cfg.private());
        assert_eq!((cfg.dp_clip, cfg.delta()), (2.0, 1e-5));
        let private: FederationConfig =
            toml::from_str("secure_aggregation = true\ndp_target_epsilon = 4.0\nfraction = 0.5")
                .unwrap();
        private.check().unwrap();
        let resolved = private.clone().resolve_privacy().unwrap();
        let sigma = resolved.dp_noise_multiplier.unwrap();
        let spent = iotids_privacy::epsilon(0.5, sigma, 200, 1e-5)
            .unwrap()
            .epsilon;
        assert!(spent <= 4.0 && spent > 3.99, "σ {sigma}: ε {spent}");
        assert!(resolved.to_toml().contains("dp_noise_multiplier"));
        let robust = FederationConfig {
            edge_aggregation: Aggregation::Median,
            ..private.clone()
        };
        let e = robust.check().unwrap_err().to_string();
        assert!(e.contains("edge_aggregation") && e.contains("mean"), "{e}");
        let bad = FederationConfig {
            dp_delta: Some(1.5),
            ..private
        };
        assert!(bad.check().unwrap_err().to_string().contains("dp_delta"));
        let pooled: FederationConfig = toml::from_str("pipeline = \"pooled\"").unwrap();
        assert_eq!(pooled.pipeline, PipelineFit::Pooled);
        assert!(pooled.to_toml().contains("pipeline = \"pooled\""));
        assert_eq!(
            "Summaries".parse::<PipelineFit>().unwrap(),
            PipelineFit::Summaries
        );
        assert!("rows".parse::<PipelineFit>().is_err());
    }

    #[test]
    fn devices_are_spread_evenly_over_edges() {
        let c = FederationConfig {
            devices: 10,
            edges: 3,
            ..FederationConfig::default()
        };
        let edges: Vec<usize> = (0..10).map(|d| c.edge_of(d)).collect();
        assert_eq!(edges, vec![0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
    }
}
