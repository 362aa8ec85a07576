//! Log-space arithmetic and the two special functions the accountant needs.
//!
//! The RDP sums of [`crate::rdp`] add terms whose logarithms run from about −10⁴ to
//! +10⁴, so everything is done on logarithms: [`log_add`] is dp-accounting's
//! `_log_add`, [`log_comb`] its `_log_comb` (log-gamma based, so it also takes the
//! fractional first argument of the fractional-order series) and [`log_erfc`] its
//! `_log_erfc`, which SciPy computes as `log 2 + log_ndtr(−x√2)`.
//!
//! std has neither `erfc` nor `lgamma` on stable Rust (they sit behind the unstable
//! `float_erf` and `float_gamma` features), so both come from `libm`, the rust-lang
//! port of musl's fdlibm-derived routines (errors below 1 ulp in `erfc`, a few ulp
//! in `lgamma`).

/// `log(exp(logx) + exp(logy))` without overflow (dp-accounting's `_log_add`).
///
/// `−∞` stands for 0, so adding it returns the other operand unchanged. Unlike
/// dp-accounting, `+∞ + +∞` is `+∞` rather than `NaN` (it arises when `(i² − i)/(2σ²)`
/// overflows for a tiny σ; see [`crate::rdp`]).
pub(crate) fn log_add(logx: f64, logy: f64) -> f64 {
    let (a, b) = if logx < logy {
        (logx, logy)
    } else {
        (logy, logx)
    };
    if a == f64::NEG_INFINITY || b == f64::INFINITY {
        return b;
    }
    // exp(a) + exp(b) = (exp(a − b) + 1) · exp(b)
    (a - b).exp().ln_1p() + b
}

/// `log |C(n, k)|` through log-gamma (dp-accounting's `_log_comb`).
///
/// `n` may be fractional; `lgamma` then returns `log |Γ|` for the negative arguments
/// `n − k + 1`, which is what the fractional-order series uses.
pub(crate) fn log_comb(n: f64, k: f64) -> f64 {
    libm::lgamma(n + 1.0) - libm::lgamma(k + 1.0) - libm::lgamma(n - k + 1.0)
}

/// Above this, `erfc(x)` (≈ 1.4·10⁻²⁷⁶ at 25) is close enough to the subnormal range
/// that its logarithm is taken from the asymptotic series instead.
const ERFC_SERIES_FROM: f64 = 25.0;

/// `log(erfc(x))`, accurate far into the upper tail where `erfc` underflows.
///
/// SciPy (which dp-accounting calls) evaluates `log 2 + log_ndtr(−x√2)`, that is
/// `log(erfcx(x)) − x²` for x > 1/√2 and `log(erfc(x))` below. `erfc` is relatively
/// accurate until it leaves the normal range, so below [`ERFC_SERIES_FROM`] this takes
/// its logarithm directly; above, the asymptotic expansion
/// `erfc(x) = exp(−x²)/(x√π) · (1 − 1/(2x²) + 3/(2x²)² − 15/(2x²)³ + …)`, whose
/// truncation error after the terms kept is below 10⁻¹⁶ relative for x ≥ 25.
pub(crate) fn log_erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < ERFC_SERIES_FROM {
        return libm::erfc(x).ln();
    }
    if x == f64::INFINITY {
        return f64::NEG_INFINITY;
    }
    // Σ (−1)ⁿ (2n−1)!! / (2x²)ⁿ for n = 1..6.
    let u = 1.0 / (2.0 * x * x);
    let mut term = 1.0;
    let mut series = 0.0;
    for n in 1..=6 {
        term *= -f64::from(2 * n - 1) * u;
        series += term;
    }
    -x * x - x.ln() - 0.5 * std::f64::consts::PI.ln() + series.ln_1p()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * b.abs().max(f64::MIN_POSITIVE)
    }

    #[test]
    fn log_add_adds_and_treats_minus_infinity_as_zero() {
        assert!(close(log_add(2f64.ln(), 3f64.ln()), 5f64.ln(), 1e-15));
        assert_eq!(log_add(f64::NEG_INFINITY, 1.5), 1.5);
        assert_eq!(log_add(1.5, f64::NEG_INFINITY), 1.5);
        assert_eq!(log_add(f64::INFINITY, f64::INFINITY), f64::INFINITY);
        assert_eq!(log_add(f64::INFINITY, 3.0), f64::INFINITY);
        // No overflow where exp would.
        assert!(close(log_add(1000.0, 1000.0), 1000.0 + 2f64.ln(), 1e-15));
    }

    #[test]
    fn log_comb_matches_small_binomials() {
        assert!(close(log_comb(10.0, 3.0), 120f64.ln(), 1e-13));
        assert!(close(log_comb(1024.0, 0.0).exp(), 1.0, 1e-12));
        // C(2.5, 1) = 2.5 for a fractional n.
        assert!(close(log_comb(2.5, 1.0), 2.5f64.ln(), 1e-13));
    }

    #[test]
    fn log_erfc_is_continuous_across_the_series_switch() {
        // Values from mpmath at 40 digits.
        assert!(log_erfc(0.0).abs() < 1e-15);
        assert!(close(log_erfc(0.5), -0.735_011_129_837_084_4, 1e-14));
        assert!(close(log_erfc(1.0), -1.849_605_509_933_248_2, 1e-14));
        assert!(close(log_erfc(-3.0), 0.693_136_135_250_446_8, 1e-14));
        assert!(close(
            log_erfc(24.999_999_999),
            -628.792_039_124_031_7,
            1e-14
        ));
        // First value from the series, and one far past where erfc underflows to 0.
        assert!(close(log_erfc(25.0), -628.792_039_174_071_7, 1e-14));
        assert!(close(log_erfc(40.0), -1_604.261_556_653_273_6, 1e-14));
        assert_eq!(log_erfc(f64::INFINITY), f64::NEG_INFINITY);
    }
}
