//! Privacy accounting for differentially private training: how much (ε, δ)-privacy
//! `steps` rounds of the Poisson-subsampled Gaussian mechanism spend.
//!
//! DP-SGD and DP-FedAvg both clip each contribution (an example's gradient, a client's
//! update) to L2 norm `clip`, add Gaussian noise of standard deviation
//! `noise_multiplier · clip`, and take part in a step with probability `sampling_rate`.
//! This crate answers the three questions a training loop asks of that mechanism:
//! what ε a run has spent ([`epsilon`], [`Accountant`]), how much noise a target ε
//! needs ([`noise_multiplier_for`]) and how long one may train within it
//! ([`steps_within`]).
//!
//! The accountant is the Rényi-DP (RDP) one, ported formula for formula from Google's
//! `dp-accounting` (PyPI `dp-accounting` 0.6.0, `dp_accounting/rdp/rdp_privacy_accountant.py`)
//! so that its numbers can be checked against that reference
//! (`tests/reference/check_dp.py`):
//!
//! - RDP itself: Mironov 2017, "Rényi Differential Privacy" (CSF 2017).
//! - The RDP of the sampled Gaussian at integer and fractional orders: Mironov, Talwar,
//!   Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian Mechanism"
//!   (arXiv:1908.10530). RDP composes by addition over steps.
//! - The RDP → (ε, δ) conversion: Balle, Barthe, Gaboardi, Hsu, Sato 2020,
//!   "Hypothesis Testing Interpretations and Rényi Differential Privacy"
//!   (arXiv:2004.00010, Prop. 12), as dp-accounting's `compute_epsilon` applies it.
//!
//! The orders are dp-accounting's defaults ([`DEFAULT_RDP_ORDERS`]) and the neighbouring
//! relation is add-or-remove-one, dp-accounting's default for Poisson sampling. See
//! [`rdp`] for the formulas.

pub mod rdp;
mod report;
mod special;

pub use rdp::DEFAULT_RDP_ORDERS;
pub use report::{Noise, PrivacyReport, privacy_json};

use serde::{Deserialize, Serialize};

/// A parameter outside the range where the accountant is defined.
///
/// Each variant names the parameter, carries the value given and says what is allowed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PrivacyError {
    /// The Poisson sampling rate is not a probability.
    #[error("sampling rate {0} is outside [0, 1]")]
    SamplingRate(f64),
    /// The noise multiplier is negative, infinite or NaN.
    #[error("noise multiplier {0} must be a finite number >= 0")]
    NoiseMultiplier(f64),
    /// δ is not strictly between 0 and 1.
    #[error("delta {0} is outside the open interval (0, 1)")]
    Delta(f64),
    /// The target ε is not a positive finite number.
    #[error("target epsilon {0} must be a finite number > 0")]
    TargetEpsilon(f64),
    /// No noise multiplier up to [`MAX_NOISE_MULTIPLIER`] keeps ε within the target.
    #[error("no noise multiplier up to {max} keeps epsilon <= {target} after {steps} steps")]
    Unreachable {
        /// The target ε asked for.
        target: f64,
        /// The number of steps asked for.
        steps: u64,
        /// The largest noise multiplier tried.
        max: f64,
    },
}

/// The crate's result type.
pub type Result<T, E = PrivacyError> = std::result::Result<T, E>;

/// The largest noise multiplier [`noise_multiplier_for`] searches up to.
pub const MAX_NOISE_MULTIPLIER: f64 = 1e6;

/// The relative precision of [`noise_multiplier_for`]'s bisection.
pub const NOISE_MULTIPLIER_TOLERANCE: f64 = 1e-4;

/// An ε together with the RDP order that gives it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Epsilon {
    /// The ε of the (ε, δ) guarantee; `f64::INFINITY` when there is none (σ = 0).
    pub epsilon: f64,
    /// The RDP order α whose conversion gave the smallest ε.
    pub order: f64,
}

fn check_sampling_rate(q: f64) -> Result<()> {
    if (0.0..=1.0).contains(&q) {
        Ok(())
    } else {
        Err(PrivacyError::SamplingRate(q))
    }
}

fn check_noise_multiplier(sigma: f64) -> Result<()> {
    if sigma.is_finite() && sigma >= 0.0 {
        Ok(())
    } else {
        Err(PrivacyError::NoiseMultiplier(sigma))
    }
}

fn check_delta(delta: f64) -> Result<()> {
    if delta > 0.0 && delta < 1.0 {
        Ok(())
    } else {
        Err(PrivacyError::Delta(delta))
    }
}

fn check_target(target: f64) -> Result<()> {
    if target.is_finite() && target > 0.0 {
        Ok(())
    } else {
        Err(PrivacyError::TargetEpsilon(target))
    }
}

/// ε after `steps` steps from the per-step RDP.
fn epsilon_from(per_step: &[f64; rdp::ORDER_COUNT], steps: u64, delta: f64) -> Epsilon {
    let total = rdp::compose(per_step, steps);
    let (epsilon, order) = rdp::compute_epsilon(&DEFAULT_RDP_ORDERS, &total, delta);
    Epsilon { epsilon, order }
}

/// The ε spent by `steps` steps of the Gaussian mechanism with noise multiplier
/// `noise_multiplier`, each on a Poisson sample of rate `sampling_rate`, at the given δ.
///
/// q = 0 and zero steps spend nothing (ε = 0); σ = 0 with q > 0 gives ε = ∞.
///
/// # Errors
///
/// [`PrivacyError::SamplingRate`] outside [0, 1], [`PrivacyError::NoiseMultiplier`] for
/// a negative or non-finite σ, [`PrivacyError::Delta`] outside (0, 1).
///
/// ```
/// let e = iotids_privacy::epsilon(0.01, 1.0, 10_000, 1e-5)?;
/// assert!((e.epsilon - 6.712_756_664_482_653).abs() < 1e-9);
/// assert_eq!(e.order, 4.1);
/// # Ok::<(), iotids_privacy::PrivacyError>(())
/// ```
pub fn epsilon(
    sampling_rate: f64,
    noise_multiplier: f64,
    steps: u64,
    delta: f64,
) -> Result<Epsilon> {
    Ok(Accountant::new(sampling_rate, noise_multiplier, delta)?.epsilon_after(steps))
}

/// The smallest noise multiplier (to [`NOISE_MULTIPLIER_TOLERANCE`] relative, found by
/// bisection) whose ε after `steps` steps is at most `target_epsilon`.
///
/// The σ returned always satisfies the target: it is the upper end of the final
/// bracket. With q = 0 or zero steps nothing is spent and the answer is 0.
///
/// # Errors
///
/// Those of [`epsilon`] for `sampling_rate` and `delta`,
/// [`PrivacyError::TargetEpsilon`] unless the target is positive and finite, and
/// [`PrivacyError::Unreachable`] if even σ = [`MAX_NOISE_MULTIPLIER`] spends more.
pub fn noise_multiplier_for(
    sampling_rate: f64,
    steps: u64,
    delta: f64,
    target_epsilon: f64,
) -> Result<f64> {
    check_sampling_rate(sampling_rate)?;
    check_delta(delta)?;
    check_target(target_epsilon)?;
    if sampling_rate == 0.0 || steps == 0 {
        return Ok(0.0);
    }
    let within = |sigma: f64| {
        let per_step = rdp::rdp_per_step(sampling_rate, sigma);
        epsilon_from(&per_step, steps, delta).epsilon <= target_epsilon
    };
    // σ = 0 spends ε = ∞, so 0 is always a lower end; double up to an upper one.
    let mut lo = 0.0;
    let mut hi = 1.0;
    while !within(hi) {
        lo = hi;
        hi *= 2.0;
        if hi > MAX_NOISE_MULTIPLIER {
            return Err(PrivacyError::Unreachable {
                target: target_epsilon,
                steps,
                max: MAX_NOISE_MULTIPLIER,
            });
        }
    }
    while hi - lo > NOISE_MULTIPLIER_TOLERANCE * hi {
        let mid = 0.5 * (lo + hi);
        if within(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(hi)
}

/// The largest number of steps, at most `max_steps`, whose ε is at most
/// `target_epsilon` (0 if even one step spends more).
///
/// ε never falls as steps are added, so this is a binary search over
/// `0..=max_steps`; the per-step RDP is computed once.
///
/// # Errors
///
/// Those of [`epsilon`], and [`PrivacyError::TargetEpsilon`] unless the target is
/// positive and finite.
pub fn steps_within(
    sampling_rate: f64,
    noise_multiplier: f64,
    delta: f64,
    target_epsilon: f64,
    max_steps: u64,
) -> Result<u64> {
    check_target(target_epsilon)?;
    let accountant = Accountant::new(sampling_rate, noise_multiplier, delta)?;
    let within = |steps: u64| accountant.epsilon_after(steps).epsilon <= target_epsilon;
    if within(max_steps) {
        return Ok(max_steps);
    }
    // Invariant: `lo` is within the target (zero steps spend nothing), `hi` is not.
    let (mut lo, mut hi) = (0, max_steps);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if within(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// A running RDP account of one training run: a fixed mechanism (sampling rate, noise
/// multiplier) composed step by step, read out as ε at a fixed δ.
///
/// The per-step RDP is computed once at construction; composing is then a count, and
/// reading ε is one pass over the 156 orders. Composing n steps one at a time gives
/// exactly the same numbers as composing them at once.
///
/// ```
/// use iotids_privacy::Accountant;
/// let mut acc = Accountant::new(0.1, 1.0, 1e-5)?;
/// while acc.epsilon_after(1).epsilon <= 8.0 {
///     acc.step(1); // ... one round of training ...
/// }
/// assert!(acc.epsilon().epsilon <= 8.0);
/// assert!(acc.epsilon_after(1).epsilon > 8.0);
/// # Ok::<(), iotids_privacy::PrivacyError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Accountant {
    sampling_rate: f64,
    noise_multiplier: f64,
    delta: f64,
    steps: u64,
    per_step: [f64; rdp::ORDER_COUNT],
}

impl Accountant {
    /// An account with no steps spent yet.
    ///
    /// # Errors
    ///
    /// Those of [`epsilon`] for each parameter.
    pub fn new(sampling_rate: f64, noise_multiplier: f64, delta: f64) -> Result<Self> {
        check_sampling_rate(sampling_rate)?;
        check_noise_multiplier(noise_multiplier)?;
        check_delta(delta)?;
        Ok(Self {
            sampling_rate,
            noise_multiplier,
            delta,
            steps: 0,
            per_step: rdp::rdp_per_step(sampling_rate, noise_multiplier),
        })
    }

    /// Records `n` more steps (saturating at `u64::MAX`).
    pub fn step(&mut self, n: u64) {
        self.steps = self.steps.saturating_add(n);
    }

    /// The number of steps recorded so far.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// The sampling rate the account was opened with.
    pub fn sampling_rate(&self) -> f64 {
        self.sampling_rate
    }

    /// The noise multiplier the account was opened with.
    pub fn noise_multiplier(&self) -> f64 {
        self.noise_multiplier
    }

    /// The δ the account reports ε at.
    pub fn delta(&self) -> f64 {
        self.delta
    }

    /// The RDP spent so far at each of [`DEFAULT_RDP_ORDERS`].
    pub fn rdp(&self) -> Vec<f64> {
        rdp::compose(&self.per_step, self.steps).to_vec()
    }

    /// The ε spent so far, with its optimal order.
    pub fn epsilon(&self) -> Epsilon {
        epsilon_from(&self.per_step, self.steps, self.delta)
    }

    /// The ε that `extra_steps` more steps would bring the account to, without
    /// recording them: check it before a step to stop short of a budget.
    pub fn epsilon_after(&self, extra_steps: u64) -> Epsilon {
        epsilon_from(
            &self.per_step,
            self.steps.saturating_add(extra_steps),
            self.delta,
        )
    }

    /// The account as the `"privacy"` block of `federation.json`, for updates clipped
    /// to L2 norm `clip`.
    pub fn report(&self, clip: f64) -> PrivacyReport {
        let Epsilon { epsilon, order } = self.epsilon();
        PrivacyReport {
            noise_multiplier: self.noise_multiplier,
            clip,
            sampling_rate: self.sampling_rate,
            steps: self.steps,
            delta: self.delta,
            epsilon,
            accountant: PrivacyReport::ACCOUNTANT.to_owned(),
            order,
        }
    }
}
