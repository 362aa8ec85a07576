//! The small statistics that cleaning, describing, splitting and the pipeline share:
//! one home for them, so none of those modules imports another for a helper.
//!
//! Each follows the reference its caller is checked against: quantiles interpolate as
//! numpy's and pandas' default, class weights are scikit-learn's "balanced".

/// The `p`-quantile of sorted, non-empty `v` by linear interpolation (pandas' and
/// numpy's default).
pub fn quantile_sorted(v: &[f64], p: f64) -> f64 {
    let pos = p * (v.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    let frac = pos - lo as f64;
    v[lo] + (v[hi] - v[lo]) * frac
}

/// Counts of each label value in `0..n_classes`.
pub fn class_counts(labels: &[u32], n_classes: usize) -> Vec<u64> {
    let mut counts = vec![0u64; n_classes];
    for &l in labels {
        counts[l as usize] += 1;
    }
    counts
}

/// Balanced class weights, `n / (k * n_c)` (scikit-learn's "balanced"; the seed's
/// Table 1), for the `k` classes present in `labels`. Absent classes get weight 0.
pub fn class_weights(labels: &[u32], n_classes: usize) -> Vec<f64> {
    let counts = class_counts(labels, n_classes);
    let n = labels.len() as f64;
    let k = counts.iter().filter(|&&c| c > 0).count() as f64;
    counts
        .iter()
        .map(|&c| if c == 0 { 0.0 } else { n / (k * c as f64) })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        // numpy.quantile([1, 2, 3, 4], [0.25, 0.5, 0.75]) = [1.75, 2.5, 3.25]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.25), 1.75);
        assert_eq!(quantile_sorted(&v, 0.5), 2.5);
        assert_eq!(quantile_sorted(&v, 0.75), 3.25);
        assert_eq!(quantile_sorted(&[7.0], 0.5), 7.0);
    }

    #[test]
    fn counts_every_class_including_absent_ones() {
        assert_eq!(class_counts(&[2, 0, 2, 2], 4), vec![1, 0, 3, 0]);
        assert_eq!(class_counts(&[], 2), vec![0, 0]);
    }

    #[test]
    fn balanced_weights_match_formula() {
        // n = 10, k = 2: weight = 10 / (2 * n_c).
        let y = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1];
        let w = class_weights(&y, 3);
        assert!((w[0] - 10.0 / 16.0).abs() < 1e-12);
        assert!((w[1] - 2.5).abs() < 1e-12);
        assert_eq!(w[2], 0.0);
    }
}
