//! The accountant's public API against dp-accounting's numbers, closed forms and the
//! monotonicity every privacy accountant must have.

use iotids_privacy::{
    Accountant, DEFAULT_RDP_ORDERS, Noise, PrivacyError, PrivacyReport, epsilon,
    noise_multiplier_for, privacy_json, steps_within,
};

fn rel_diff(got: f64, expected: f64) -> f64 {
    (got - expected).abs() / expected.abs()
}

/// (q, σ, steps, δ, ε, optimal order) from dp-accounting 0.6.0 (PyPI `dp-accounting`,
/// Python 3.11, SciPy log_ndtr): `RdpAccountant()` with default orders, composed with
/// `SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)), steps)`, then
/// `get_epsilon_and_optimal_order(δ)`. Several of these make dp-accounting give up on
/// the lowest fractional orders (its series does not converge in 1000 terms), which
/// the port must reproduce.
const REFERENCE: [(f64, f64, u64, f64, f64, f64); 17] = [
    (0.001, 1.1, 100_000, 1e-05, 1.518_483_331_822_373_4, 13.0),
    (0.01, 1.0, 10_000, 1e-05, 6.712_756_664_482_653, 4.1),
    (0.01, 4.0, 1_000, 1e-06, 0.347_036_508_761_949_1, 54.0),
    (0.1, 0.5, 10, 1e-05, 14.418_327_009_829_337, 2.0),
    (0.1, 2.0, 500, 1e-06, 6.679_292_764_430_42, 4.7),
    (0.25, 1.5, 200, 1e-05, 15.943_297_638_042_383, 2.5),
    (0.5, 3.0, 50, 1e-05, 6.119_068_458_436_956, 4.4),
    (0.5, 20.0, 1, 1e-06, 0.106_192_519_082_003_32, 128.0),
    (1.0, 1.0, 1, 1e-05, 4.728_507_067_217_623, 5.4),
    (1.0, 5.0, 100, 1e-06, 11.688_626_799_166_35, 3.5),
    (0.001, 0.8, 1, 1e-05, 0.983_518_982_464_761_4, 9.6),
    (0.25, 10.0, 100_000, 1e-06, 75.223_041_023_404_1, 2.0),
    (0.01, 0.6, 100_000, 1e-05, 128.246_023_033_194_43, 1.4),
    (0.5, 0.7, 1_000, 1e-06, 827.148_809_293_412_8, 1.8),
    (0.1, 1.0, 2_000, 1e-05, 44.200_357_576_203_544, 2.0),
    (0.001, 0.5, 100, 1e-06, 4.420_476_834_211_603, 3.8),
    (0.05, 0.3, 10, 1e-05, 31.379_456_383_055_555, 1.5),
];

#[test]
fn matches_dp_accounting_reference_table() {
    let mut worst: f64 = 0.0;
    for &(q, sigma, steps, delta, expected, order) in &REFERENCE {
        let got = epsilon(q, sigma, steps, delta).expect("valid parameters");
        let rel = rel_diff(got.epsilon, expected);
        assert!(
            rel <= 1e-6,
            "q={q} σ={sigma} steps={steps} δ={delta}: ε {} vs dp-accounting {expected} ({rel:e} relative)",
            got.epsilon
        );
        assert_eq!(
            got.order, order,
            "optimal order for q={q} σ={sigma} steps={steps}"
        );
        worst = worst.max(rel);
    }
    // The port keeps dp-accounting's floating-point operations, so it is far closer
    // than the tolerance asked for.
    assert!(worst < 1e-12, "worst relative difference {worst:e}");
    // The table includes optima at fractional orders.
    assert!(REFERENCE.iter().filter(|r| r.5.fract() != 0.0).count() >= 5);
}

#[test]
fn full_batch_is_the_gaussian_closed_form() {
    // q = 1: RDP α/(2σ²) per step, so T steps give r(α) = Tα/(2σ²), converted with
    // ε(α) = r + log((α−1)/α) − (log δ + log α)/(α − 1), minimised over the orders.
    for &(sigma, steps, delta) in &[(1.0, 1, 1e-5), (5.0, 100, 1e-6), (2.0, 37, 1e-5)] {
        let expected = DEFAULT_RDP_ORDERS
            .iter()
            .map(|&a| {
                let r = steps as f64 * a / (2.0 * sigma * sigma);
                r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
            })
            .fold(f64::INFINITY, f64::min);
        let got = epsilon(1.0, sigma, steps, delta).expect("valid").epsilon;
        assert!(rel_diff(got, expected) < 1e-14, "{got} vs {expected}");
    }
    // And the RDP vector itself is the closed form.
    let mut acc = Accountant::new(1.0, 2.0, 1e-5).expect("valid");
    acc.step(3);
    for (r, a) in acc.rdp().iter().zip(DEFAULT_RDP_ORDERS) {
        assert!(rel_diff(*r, 3.0 * a / 8.0) < 1e-15);
    }
}

#[test]
fn edge_parameters() {
    // No sampling, or no steps, spends nothing.
    assert_eq!(epsilon(0.0, 1.0, 1000, 1e-5).expect("valid").epsilon, 0.0);
    assert_eq!(epsilon(0.0, 0.0, 1000, 1e-5).expect("valid").epsilon, 0.0);
    assert_eq!(epsilon(0.3, 1.0, 0, 1e-5).expect("valid").epsilon, 0.0);
    assert_eq!(epsilon(0.3, 0.0, 0, 1e-5).expect("valid").epsilon, 0.0);
    // No noise is no privacy.
    let none = epsilon(0.3, 0.0, 1, 1e-5).expect("valid");
    assert_eq!(none.epsilon, f64::INFINITY);
    assert_eq!(
        epsilon(1.0, 0.0, 1, 1e-5).expect("valid").epsilon,
        f64::INFINITY
    );
    // A vanishing σ is no privacy either, where dp-accounting 0.6.0's NaN arithmetic
    // reports ε = 0 (q = 0.3, σ = 1e-160) or divides by zero (σ = 1e-300).
    for sigma in [1e-160, 1e-300, 5e-324] {
        let e = epsilon(0.3, sigma, 5, 1e-5).expect("valid").epsilon;
        assert!(e > 1e200, "σ = {sigma}: ε = {e}");
    }
    // Enormous noise: the KL bound gives ε = 0.
    assert_eq!(epsilon(0.01, 1e5, 10, 1e-5).expect("valid").epsilon, 0.0);
}

#[test]
fn epsilon_is_monotone() {
    let (q, sigma, delta) = (0.05, 1.2, 1e-5);
    let by_steps: Vec<f64> = [1, 10, 100, 1000, 10_000]
        .iter()
        .map(|&t| epsilon(q, sigma, t, delta).expect("valid").epsilon)
        .collect();
    assert!(by_steps.windows(2).all(|w| w[0] < w[1]), "{by_steps:?}");

    let by_rate: Vec<f64> = [0.001, 0.01, 0.05, 0.2, 0.5, 1.0]
        .iter()
        .map(|&q| epsilon(q, sigma, 100, delta).expect("valid").epsilon)
        .collect();
    assert!(by_rate.windows(2).all(|w| w[0] < w[1]), "{by_rate:?}");

    let by_noise: Vec<f64> = [0.5, 0.8, 1.0, 2.0, 5.0, 20.0]
        .iter()
        .map(|&s| epsilon(q, s, 100, delta).expect("valid").epsilon)
        .collect();
    assert!(by_noise.windows(2).all(|w| w[0] > w[1]), "{by_noise:?}");

    let by_delta: Vec<f64> = [1e-7, 1e-6, 1e-5, 1e-3]
        .iter()
        .map(|&d| epsilon(q, sigma, 100, d).expect("valid").epsilon)
        .collect();
    assert!(by_delta.windows(2).all(|w| w[0] > w[1]), "{by_delta:?}");
}

#[test]
fn noise_multiplier_for_lands_on_the_target() {
    for &(q, steps, delta, target) in &[
        (0.01, 10_000, 1e-5, 3.0),
        (0.1, 200, 1e-5, 8.0),
        (1.0, 50, 1e-6, 10.0),
        (0.5, 20, 1e-5, 1.0),
        (0.002, 100_000, 1e-6, 0.5),
    ] {
        let sigma = noise_multiplier_for(q, steps, delta, target).expect("reachable");
        let spent = epsilon(q, sigma, steps, delta).expect("valid").epsilon;
        assert!(spent <= target, "σ={sigma} spends {spent} > {target}");
        assert!(
            rel_diff(spent, target) < 1e-3,
            "σ={sigma} spends {spent}, target {target}"
        );
        // And it is the smallest: 1e-3 less noise overspends.
        let less = epsilon(q, sigma * (1.0 - 1e-3), steps, delta)
            .expect("valid")
            .epsilon;
        assert!(less > target, "σ·(1−1e-3) still spends only {less}");
    }
    // Nothing spent, nothing needed.
    assert_eq!(noise_multiplier_for(0.0, 100, 1e-5, 1.0), Ok(0.0));
    assert_eq!(noise_multiplier_for(0.3, 0, 1e-5, 1.0), Ok(0.0));
}

#[test]
fn noise_multiplier_for_reports_an_unreachable_target() {
    // q = 1 over u64::MAX steps: even σ = 10⁶ spends more than 10⁻³.
    let err = noise_multiplier_for(1.0, u64::MAX, 1e-5, 1e-3);
    assert!(
        matches!(
            err,
            Err(PrivacyError::Unreachable {
                steps: u64::MAX,
                ..
            })
        ),
        "{err:?}"
    );
}

#[test]
fn steps_within_is_the_last_step_under_the_target() {
    let (q, sigma, delta, target) = (0.1, 1.0, 1e-5, 8.0);
    let steps = steps_within(q, sigma, delta, target, 1_000_000).expect("valid");
    assert!(steps > 0);
    assert!(epsilon(q, sigma, steps, delta).expect("valid").epsilon <= target);
    assert!(epsilon(q, sigma, steps + 1, delta).expect("valid").epsilon > target);
    // Capped at max_steps, and 0 when one step is already too many.
    assert_eq!(steps_within(q, sigma, delta, target, 10), Ok(10));
    assert_eq!(steps_within(1.0, 0.3, delta, 1.0, 1000), Ok(0));
}

#[test]
fn accountant_composes_step_by_step() {
    let (q, sigma, delta) = (0.02, 1.1, 1e-5);
    let mut acc = Accountant::new(q, sigma, delta).expect("valid");
    assert_eq!(acc.steps(), 0);
    assert_eq!(acc.epsilon().epsilon, 0.0);
    let ahead = acc.epsilon_after(500);
    for _ in 0..250 {
        acc.step(1);
    }
    acc.step(250);
    assert_eq!(acc.steps(), 500);
    // One step at a time gives bit-for-bit what composing all at once gives.
    assert_eq!(acc.epsilon(), ahead);
    assert_eq!(acc.epsilon(), epsilon(q, sigma, 500, delta).expect("valid"));
    assert!(acc.epsilon_after(1).epsilon > acc.epsilon().epsilon);

    // The budget loop from the docs: stop before the step that would overspend.
    let target = 2.0;
    let mut run = Accountant::new(q, sigma, delta).expect("valid");
    while run.epsilon_after(1).epsilon <= target {
        run.step(1);
    }
    assert_eq!(
        run.steps(),
        steps_within(q, sigma, delta, target, u64::MAX).expect("valid")
    );
}

#[test]
fn report_round_trips_through_json() {
    let mut acc = Accountant::new(0.1, 2.0, 1e-6).expect("valid");
    acc.step(500);
    let report = acc.report(1.5);
    assert_eq!(report.accountant, "rdp");
    assert_eq!(report.clip, 1.5);
    assert_eq!(report.steps, 500);
    assert!(rel_diff(report.epsilon, 6.679_292_764_430_42) < 1e-12);
    assert_eq!(report.order, 4.7);
    let text = serde_json::to_string(&report).expect("serialisable");
    let back: PrivacyReport = serde_json::from_str(&text).expect("deserialisable");
    assert_eq!(back, report);

    // ε = ∞ is written as null and read back as ∞.
    let open = Accountant::new(0.1, 0.0, 1e-6).expect("valid");
    let mut spent = open.clone();
    spent.step(1);
    let report = spent.report(1.0);
    let json = serde_json::to_value(&report).expect("serialisable");
    assert!(json["epsilon"].is_null());
    let back: PrivacyReport = serde_json::from_value(json).expect("deserialisable");
    assert_eq!(back.epsilon, f64::INFINITY);
    assert_eq!(open.report(1.0).epsilon, 0.0);
}

#[test]
fn privacy_json_has_the_cli_fields() {
    let json = privacy_json(0.01, 10_000, 1e-5, Noise::Multiplier(1.0)).expect("valid");
    assert_eq!(json["accountant"], "rdp");
    assert_eq!(json["sampling_rate"], 0.01);
    assert_eq!(json["noise_multiplier"], 1.0);
    assert_eq!(json["steps"], 10_000);
    assert_eq!(json["delta"], 1e-5);
    assert_eq!(json["order"], 4.1);
    let eps = json["epsilon"].as_f64().expect("a number");
    assert!(rel_diff(eps, 6.712_756_664_482_653) < 1e-12);
    assert!(json.get("target_epsilon").is_none());
    assert_eq!(json.as_object().map(|o| o.len()), Some(7));

    let json = privacy_json(0.01, 10_000, 1e-5, Noise::TargetEpsilon(3.0)).expect("valid");
    assert_eq!(json["target_epsilon"], 3.0);
    let sigma = json["noise_multiplier"].as_f64().expect("a number");
    let eps = json["epsilon"].as_f64().expect("a number");
    assert!(sigma > 1.0 && sigma < 2.0, "σ = {sigma}");
    assert!(eps <= 3.0 && rel_diff(eps, 3.0) < 1e-3, "ε = {eps}");
}

#[test]
fn bad_sampling_rate_is_an_error() {
    for q in [-0.1, 1.000_001, f64::NAN, f64::INFINITY] {
        let err = epsilon(q, 1.0, 10, 1e-5).expect_err("invalid q");
        assert!(matches!(err, PrivacyError::SamplingRate(v) if v.to_bits() == q.to_bits()));
        assert!(err.to_string().contains("[0, 1]"), "{err}");
    }
    assert!(matches!(
        noise_multiplier_for(2.0, 10, 1e-5, 1.0),
        Err(PrivacyError::SamplingRate(2.0))
    ));
}

#[test]
fn bad_noise_multiplier_is_an_error() {
    for sigma in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let err = epsilon(0.1, sigma, 10, 1e-5).expect_err("invalid σ");
        assert!(matches!(err, PrivacyError::NoiseMultiplier(v) if v.to_bits() == sigma.to_bits()));
        assert!(err.to_string().contains(">= 0"), "{err}");
    }
    assert_eq!(
        Accountant::new(0.1, -0.5, 1e-5),
        Err(PrivacyError::NoiseMultiplier(-0.5))
    );
}

#[test]
fn bad_delta_is_an_error() {
    for delta in [0.0, 1.0, -1e-5, 1.5, f64::NAN] {
        let err = epsilon(0.1, 1.0, 10, delta).expect_err("invalid δ");
        assert!(matches!(err, PrivacyError::Delta(v) if v.to_bits() == delta.to_bits()));
        assert!(err.to_string().contains("(0, 1)"), "{err}");
    }
    assert_eq!(
        steps_within(0.1, 1.0, 0.0, 1.0, 10),
        Err(PrivacyError::Delta(0.0))
    );
}

#[test]
fn bad_target_epsilon_is_an_error() {
    for target in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        let err = noise_multiplier_for(0.1, 10, 1e-5, target).expect_err("invalid target");
        assert!(matches!(err, PrivacyError::TargetEpsilon(v) if v.to_bits() == target.to_bits()));
        assert!(err.to_string().contains("> 0"), "{err}");
    }
    assert_eq!(
        steps_within(0.1, 1.0, 1e-5, -2.0, 10),
        Err(PrivacyError::TargetEpsilon(-2.0))
    );
}
