//! The RDP of the Poisson-subsampled Gaussian and its conversion to (ε, δ).
//!
//! A line-by-line port of dp-accounting 0.6.0's `dp_accounting/rdp/rdp_privacy_accountant.py`
//! (functions `_compute_log_a_int`, `_compute_log_a_frac`,
//! `_compute_rdp_poisson_subsampled_gaussian` and `compute_epsilon`), keeping its
//! order of floating-point operations so that the two agree to rounding:
//!
//! - **Integer orders** α: `A_α = Σᵢ C(α, i) qⁱ (1 − q)^(α−i) exp((i² − i)/(2σ²))`
//!   (Mironov, Talwar, Zhang 2019, "Rényi Differential Privacy of the Sampled Gaussian
//!   Mechanism", arXiv:1908.10530, Sec. 3.3; Mironov 2017, "Rényi Differential
//!   Privacy", for RDP itself).
//! - **Fractional orders**: the two-sided series of the same paper, split at
//!   `z₀ = σ² log(1/q − 1) + 1/2`, with `erfc` tails. Like dp-accounting, it stops when
//!   both partial terms fall and are e³⁰ below the running total, and gives the order
//!   up (RDP = ∞, so the order never wins) if that has not happened in 1000 terms.
//! - The RDP at order α is `log(A_α)/(α − 1)`; q = 0 gives 0, σ = 0 gives ∞ and q = 1
//!   the plain Gaussian's closed form `α/(2σ²)`.
//! - **Conversion** to (ε, δ): for each order, Balle et al. 2020 ("Hypothesis Testing
//!   Interpretations and Rényi Differential Privacy", arXiv:2004.00010, Prop. 12; also
//!   Asoodeh et al., arXiv:2001.05990, Eq. 20)
//!   `ε = r + log((α − 1)/α) − (log δ + log α)/(α − 1)`, except that ε = 0 when the KL
//!   bound `δ ≥ √(1 − e^(−r))` already holds, ε = 0 for a negative r (numerical noise in
//!   extreme cases) and ε = ∞ for α ≤ 1.01 where the bound is unstable. The smallest ε
//!   over the orders wins, clamped at 0.
//!
//! Two deliberate departures, both where dp-accounting's arithmetic produces NaN for a
//! noise multiplier so small (σ ≲ 10⁻¹⁵⁰) that `(i² − i)/(2σ²)` overflows or `σ²`
//! underflows to 0: there dp-accounting's `np.argmin` picks the NaN and `max(0, NaN)`
//! reports **ε = 0** (for example q = 0.3, σ = 10⁻¹⁶⁰, 5 steps, δ = 10⁻⁵), or it raises
//! `ZeroDivisionError`. Here `log_add(+∞, +∞) = +∞`, a σ whose square is 0 is treated as
//! σ = 0 (RDP ∞), and an order whose RDP is NaN counts as RDP ∞ (it gives no
//! guarantee), so such a mechanism gets the ε = ∞ (or huge ε) it deserves. For every
//! other input the two agree to rounding.

use crate::special::{log_add, log_comb, log_erfc};

/// The number of RDP orders dp-accounting tracks by default.
pub const ORDER_COUNT: usize = 99 + 53 + 4;

/// dp-accounting's `DEFAULT_RDP_ORDERS`: `1 + x/10` for x in 1..=99 (1.1 to 10.9),
/// the integers 11 to 63, then 128, 256, 512 and 1024.
pub const DEFAULT_RDP_ORDERS: [f64; ORDER_COUNT] = default_orders();

const fn default_orders() -> [f64; ORDER_COUNT] {
    let mut orders = [0.0; ORDER_COUNT];
    let mut x = 1;
    while x < 100 {
        // The same operations as Python's `1 + x / 10.0`, so 1 + 10/10 is exactly 2.0
        // and takes the integer-order path below.
        orders[x - 1] = 1.0 + x as f64 / 10.0;
        x += 1;
    }
    let mut k = 11;
    while k < 64 {
        orders[99 + k - 11] = k as f64;
        k += 1;
    }
    orders[152] = 128.0;
    orders[153] = 256.0;
    orders[154] = 512.0;
    orders[155] = 1024.0;
    orders
}

/// dp-accounting's `_MAX_STEPS_LOG_A_FRAC`: terms of the fractional-order series
/// before that order is given up on.
const MAX_STEPS_LOG_A_FRAC: u32 = 1000;

/// `log(A_α)` for an integer order, 0 < q < 1.
fn compute_log_a_int(q: f64, sigma: f64, alpha: u32) -> f64 {
    let alpha_f = f64::from(alpha);
    let mut log_a = f64::NEG_INFINITY;
    let log1mq = (-q).ln_1p();
    let log_q = q.ln();
    for i in 0..=alpha {
        let i = f64::from(i);
        let log_coef_i = log_comb(alpha_f, i) + i * log_q + (alpha_f - i) * log1mq;
        let s = log_coef_i + (i * i - i) / (2.0 * (sigma * sigma));
        log_a = log_add(log_a, s);
    }
    log_a
}

/// `log(A_α)` for a fractional order, 0 < q < 1; +∞ when the series has not converged
/// after [`MAX_STEPS_LOG_A_FRAC`] terms (the order is then excluded, as in
/// dp-accounting).
fn compute_log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    // The integrals over (−∞, z₀] and [z₀, +∞), both starting at 0 (−∞ in log space).
    let mut log_a0 = f64::NEG_INFINITY;
    let mut log_a1 = f64::NEG_INFINITY;
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let log1mq = (-q).ln_1p();
    let log_q = q.ln();
    let log_half = 0.5f64.ln();
    let sqrt2_sigma = std::f64::consts::SQRT_2 * sigma;
    let two_sigma2 = 2.0 * (sigma * sigma);

    let mut last_s0 = f64::NEG_INFINITY;
    let mut last_s1 = f64::NEG_INFINITY;
    for i in 0..MAX_STEPS_LOG_A_FRAC {
        let i = f64::from(i);
        let log_coef = log_comb(alpha, i);
        let j = alpha - i;

        let log_t0 = log_coef + i * log_q + j * log1mq;
        let log_t1 = log_coef + j * log_q + i * log1mq;

        let log_e0 = log_half + log_erfc((i - z0) / sqrt2_sigma);
        let log_e1 = log_half + log_erfc((z0 - j) / sqrt2_sigma);

        let log_s0 = log_t0 + (i * i - i) / two_sigma2 + log_e0;
        let log_s1 = log_t1 + (j * j - j) / two_sigma2 + log_e1;

        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);

        let total = log_add(log_a0, log_a1);

        // Stop when both terms are falling and negligible next to the total.
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return total;
        }
        last_s0 = log_s0;
        last_s1 = log_s1;
    }
    f64::INFINITY
}

/// `log(A_α)`: the integer series when α is a whole number, the fractional one
/// otherwise (dp-accounting's `_compute_log_a`).
fn compute_log_a(q: f64, sigma: f64, alpha: f64) -> f64 {
    if alpha.fract() == 0.0 && alpha <= f64::from(u32::MAX) {
        // Whole and in range, so the cast is exact.
        compute_log_a_int(q, sigma, alpha as u32)
    } else {
        compute_log_a_frac(q, sigma, alpha)
    }
}

/// The RDP of one Poisson-subsampled Gaussian step at order `alpha`.
///
/// The caller has checked `0 ≤ q ≤ 1` and `sigma ≥ 0`.
pub(crate) fn rdp_one_order(q: f64, sigma: f64, alpha: f64) -> f64 {
    if q == 0.0 {
        return 0.0;
    }
    // σ² = 0 for a subnormal σ: the mechanism adds no noise that counts.
    if alpha.is_infinite() || sigma * sigma == 0.0 {
        return f64::INFINITY;
    }
    if q == 1.0 {
        return alpha / (2.0 * (sigma * sigma));
    }
    compute_log_a(q, sigma, alpha) / (alpha - 1.0)
}

/// The RDP of one step at every default order.
pub(crate) fn rdp_per_step(q: f64, sigma: f64) -> [f64; ORDER_COUNT] {
    DEFAULT_RDP_ORDERS.map(|alpha| rdp_one_order(q, sigma, alpha))
}

/// The RDP after `steps` steps: RDP composes by addition, and dp-accounting multiplies
/// the per-step vector by the count. Zero steps is zero RDP (dp-accounting's 0·∞ = NaN
/// for σ = 0 ends as ε = 0 there too).
pub(crate) fn compose(per_step: &[f64; ORDER_COUNT], steps: u64) -> [f64; ORDER_COUNT] {
    if steps == 0 {
        return [0.0; ORDER_COUNT];
    }
    // Exact up to 2⁵³ steps, as numpy's int-to-float64 conversion.
    let count = steps as f64;
    per_step.map(|r| count * r)
}

/// dp-accounting's `compute_epsilon`: the smallest ε over the orders and the order that
/// achieves it (the first one on ties, as `np.argmin`). The caller has checked
/// `0 < delta < 1`.
pub(crate) fn compute_epsilon(orders: &[f64], rdp: &[f64], delta: f64) -> (f64, f64) {
    let mut best: Option<(f64, f64)> = None;
    for (&a, &r) in orders.iter().zip(rdp) {
        // A NaN RDP (overflow for a vanishing σ) is no guarantee at all; dp-accounting
        // would turn it into ε = 0.
        let r = if r.is_nan() { f64::INFINITY } else { r };
        let epsilon = if r < 0.0 {
            // Numerical noise from extreme parameters; dp-accounting returns ε = 0.
            0.0
        } else if delta * delta + (-r).exp_m1() > 0.0 {
            // The KL bound δ ≤ √(1 − exp(−KL)) already gives ε = 0.
            0.0
        } else if a > 1.01 {
            r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
        } else {
            // The bound is numerically unstable as α → 1.
            f64::INFINITY
        };
        // np.argmin: the first minimum, or the first NaN if there is one.
        let replace = match best {
            None => true,
            Some((e, _)) => !e.is_nan() && (epsilon.is_nan() || epsilon < e),
        };
        if replace {
            best = Some((epsilon, a));
        }
    }
    match best {
        // Python's max(0, ε), which also turns a NaN into 0.
        Some((e, a)) => (if e > 0.0 { e } else { 0.0 }, a),
        None => (0.0, 0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_orders_are_dp_accountings() {
        assert_eq!(DEFAULT_RDP_ORDERS.len(), 156);
        assert_eq!(DEFAULT_RDP_ORDERS[0], 1.1);
        assert_eq!(DEFAULT_RDP_ORDERS[9], 2.0);
        assert_eq!(DEFAULT_RDP_ORDERS[98], 10.9);
        assert_eq!(DEFAULT_RDP_ORDERS[99], 11.0);
        assert_eq!(DEFAULT_RDP_ORDERS[151], 63.0);
        assert_eq!(&DEFAULT_RDP_ORDERS[152..], &[128.0, 256.0, 512.0, 1024.0]);
        assert!(DEFAULT_RDP_ORDERS.windows(2).all(|w| w[0] < w[1]));
        // Exactly the whole numbers that Python's float.is_integer() finds.
        let whole = DEFAULT_RDP_ORDERS
            .iter()
            .filter(|a| a.fract() == 0.0)
            .count();
        assert_eq!(whole, 9 + 53 + 4);
    }

    #[test]
    fn integer_and_fractional_series_agree_near_an_integer() {
        // The fractional series just either side of 3 must meet the integer one at 3.
        let (q, sigma) = (0.1, 1.5);
        let at = compute_log_a_int(q, sigma, 3);
        let below = compute_log_a_frac(q, sigma, 3.0 - 1e-9);
        let above = compute_log_a_frac(q, sigma, 3.0 + 1e-9);
        assert!((below - at).abs() < 1e-7, "{below} vs {at}");
        assert!((above - at).abs() < 1e-7, "{above} vs {at}");
    }

    #[test]
    fn a_integer_order_two_has_its_closed_form() {
        // A₂ = (1 − q)² + 2q(1 − q) + q² e^(1/σ²) = 1 + q² (e^(1/σ²) − 1).
        let (q, sigma): (f64, f64) = (0.3, 2.0);
        let expected = (q * q * (1.0 / (sigma * sigma)).exp_m1()).ln_1p();
        let got = compute_log_a_int(q, sigma, 2);
        assert!((got - expected).abs() < 1e-15, "{got} vs {expected}");
    }

    #[test]
    fn conversion_follows_dp_accountings_branches() {
        // Negative RDP gives 0; a small enough RDP passes the KL test and gives 0.
        assert_eq!(compute_epsilon(&[2.0], &[-1e-12], 1e-5), (0.0, 2.0));
        assert_eq!(compute_epsilon(&[2.0], &[1e-12], 1e-5), (0.0, 2.0));
        // α ≤ 1.01 cannot be used.
        assert_eq!(
            compute_epsilon(&[1.005], &[1.0], 1e-5),
            (f64::INFINITY, 1.005)
        );
        // The improved bound at α = 2, r = 1: 1 + log(1/2) − log(2δ).
        let (e, a) = compute_epsilon(&[2.0, 3.0], &[1.0, 100.0], 1e-5);
        let expected = 1.0 + 0.5f64.ln() - (2e-5f64).ln();
        assert!((e - expected).abs() < 1e-12);
        assert_eq!(a, 2.0);
        // A NaN RDP counts as ∞, so it neither wins nor turns into ε = 0.
        assert_eq!(compute_epsilon(&[2.0, 3.0], &[f64::NAN, 1.0], 1e-5).1, 3.0);
        assert_eq!(
            compute_epsilon(&[2.0], &[f64::NAN], 1e-5),
            (f64::INFINITY, 2.0)
        );
        // Ties go to the first order.
        assert_eq!(compute_epsilon(&[2.0, 3.0], &[0.0, 0.0], 1e-5), (0.0, 2.0));
    }
}
