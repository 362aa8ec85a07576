//! What the accountant hands to the rest of the project: the `"privacy"` block of
//! `federation.json` ([`PrivacyReport`]) and the one-line JSON that the `epsilon`
//! example and `iotids privacy` print ([`privacy_json`]).
//!
//! JSON has no infinity: an ε of ∞ (σ = 0) is written as `null` and read back as ∞.

use serde::{Deserialize, Serialize};

use crate::{Accountant, Result, noise_multiplier_for};

/// The privacy spent by a training run, as recorded next to its results.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct PrivacyReport {
    /// Noise standard deviation divided by `clip`.
    pub noise_multiplier: f64,
    /// The L2 norm each contribution was clipped to.
    pub clip: f64,
    /// The Poisson probability that a contribution takes part in a step.
    pub sampling_rate: f64,
    /// Steps (rounds) composed.
    pub steps: u64,
    /// The δ of the (ε, δ) guarantee.
    pub delta: f64,
    /// The ε of the (ε, δ) guarantee; `null` in JSON when infinite.
    #[serde(with = "epsilon_or_null")]
    pub epsilon: f64,
    /// Which accountant computed ε: [`PrivacyReport::ACCOUNTANT`].
    pub accountant: String,
    /// The RDP order that gave ε.
    pub order: f64,
}

impl PrivacyReport {
    /// The `accountant` value of this crate's reports.
    pub const ACCOUNTANT: &'static str = "rdp";
}

/// How the noise of [`privacy_json`] is given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    /// A known noise multiplier.
    Multiplier(f64),
    /// A target ε; the smallest noise multiplier that meets it is computed with
    /// [`noise_multiplier_for`].
    TargetEpsilon(f64),
}

/// The ε of `steps` steps as a JSON object:
/// `{"sampling_rate","noise_multiplier","steps","delta","epsilon","order","accountant":"rdp"}`,
/// plus `"target_epsilon"` when the noise was given as [`Noise::TargetEpsilon`] (its
/// `"noise_multiplier"` is then the one computed). An infinite ε is `null`.
///
/// # Errors
///
/// Those of [`crate::epsilon`] and, for a target, of [`noise_multiplier_for`].
pub fn privacy_json(
    sampling_rate: f64,
    steps: u64,
    delta: f64,
    noise: Noise,
) -> Result<serde_json::Value> {
    let (noise_multiplier, target) = match noise {
        Noise::Multiplier(sigma) => (sigma, None),
        Noise::TargetEpsilon(target) => (
            noise_multiplier_for(sampling_rate, steps, delta, target)?,
            Some(target),
        ),
    };
    let account = Accountant::new(sampling_rate, noise_multiplier, delta)?;
    let spent = account.epsilon_after(steps);
    let mut json = serde_json::json!({
        "sampling_rate": sampling_rate,
        "noise_multiplier": noise_multiplier,
        "steps": steps,
        "delta": delta,
        "epsilon": spent.epsilon,
        "order": spent.order,
        "accountant": PrivacyReport::ACCOUNTANT,
    });
    if let (Some(target), Some(object)) = (target, json.as_object_mut()) {
        object.insert("target_epsilon".to_owned(), target.into());
    }
    Ok(json)
}

/// Serde for an ε that may be infinite: finite as a number, infinite as `null`.
mod epsilon_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(epsilon: &f64, s: S) -> Result<S::Ok, S::Error> {
        if epsilon.is_finite() {
            s.serialize_f64(*epsilon)
        } else {
            s.serialize_none()
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}
