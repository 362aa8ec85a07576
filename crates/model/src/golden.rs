//! What a run's numbers depend on besides its seed, for the golden-output tests
//! (`tests/golden.rs`, the federation's `golden.json`): the GRU's kernels and burn's matrix
//! products pick their code path by CPU feature at run time, and another path sums in
//! another order, so outputs are byte-identical only on a CPU with the same features.

/// The SIMD features the kernels choose their code path by, one line
/// (`x86_64 avx2=true fma=true avx512f=false`).
pub fn cpu_signature() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        format!(
            "x86_64 avx2={} fma={} avx512f={}\n",
            std::arch::is_x86_feature_detected!("avx2"),
            std::arch::is_x86_feature_detected!("fma"),
            std::arch::is_x86_feature_detected!("avx512f")
        )
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        format!("{}\n", std::env::consts::ARCH)
    }
}

/// `got` and `want` agree token by token (split at commas, colons and white space):
/// numbers within a relative `tol` (absolute below 1), the rest exactly.
pub fn numbers_agree(got: &str, want: &str, tol: f64) -> bool {
    let split = |s: &str| -> Vec<String> {
        s.split(|c: char| c == ',' || c == ':' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .collect()
    };
    let (a, b) = (split(got), split(want));
    a.len() == b.len()
        && a.iter()
            .zip(&b)
            .all(|(x, y)| match (x.parse::<f64>(), y.parse::<f64>()) {
                (Ok(u), Ok(v)) => (u - v).abs() <= tol * u.abs().max(v.abs()).max(1.0),
                _ => x == y,
            })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_agree_within_a_tolerance_and_text_exactly() {
        assert!(numbers_agree("a,1.00001,x", "a,1.0,x", 1e-4));
        assert!(!numbers_agree("a,1.001,x", "a,1.0,x", 1e-4));
        assert!(!numbers_agree("a,1.0,y", "a,1.0,x", 1e-4));
        assert!(!numbers_agree("a,1.0", "a,1.0,x", 1e-4));
        assert!(numbers_agree("\"loss\": 1.00001,", "\"loss\": 1.0,", 1e-4));
    }

    #[test]
    fn the_signature_is_one_line() {
        let s = cpu_signature();
        assert!(s.ends_with('\n') && s.trim().lines().count() == 1, "{s:?}");
    }
}
