//! The two numeric building blocks of the fused GRU, on plain slices: a small matrix product
//! and the gate nonlinearities.
//!
//! Both are written for [`pulp`]'s runtime dispatch: callers run them inside one
//! `WithSimd::with_simd` body, every function here is `#[inline(always)]`, so the code is
//! compiled for the widest instruction set the CPU has (AVX2+FMA, AVX-512 with the `x86-v4`
//! feature of pulp) and chosen at run time, without `unsafe` in this crate and without
//! `-C target-cpu`. The products here are small (`[rows, 64] × [64, 192]` for the default
//! model), where a general gemm's packing and dispatch cost as much as the arithmetic, so the
//! product is a plain register-tiled loop over row-major operands.

use pulp::Simd;

/// Rows of the left operand per register tile.
const MR: usize = 4;
/// Vectors of the right operand per register tile: `MR × NV` accumulators (12) fit the 16
/// vector registers of AVX2 with room for the operands.
const NV: usize = 3;

/// `n` rounded up to whole SIMD vectors: the row stride of every right operand and output
/// of [`matmul`], whose tiles read and write whole vectors.
#[inline(always)]
pub(crate) fn padded<S: Simd>(n: usize) -> usize {
    n.div_ceil(S::F32_LANES) * S::F32_LANES
}

/// Copies the row-major `[rows, cols]` matrix `m` into a zeroed buffer of row stride
/// [`padded`]`(cols)`, the layout [`matmul`] wants for its right operand.
#[inline(always)]
pub(crate) fn pad_rows<S: Simd>(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let ld = padded::<S>(cols);
    let mut out = vec![0.0; rows * ld];
    for (dst, src) in out.chunks_exact_mut(ld).zip(m.chunks_exact(cols)) {
        dst[..cols].copy_from_slice(src);
    }
    out
}

/// Like [`pad_rows`] for the transpose of the row-major `[rows, cols]` matrix `m`: the
/// result is `mᵀ`, `[cols, rows]` with row stride [`padded`]`(rows)`.
#[inline(always)]
pub(crate) fn pad_transposed<S: Simd>(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let ld = padded::<S>(rows);
    let mut out = vec![0.0; cols * ld];
    for (r, src) in m.chunks_exact(cols).enumerate() {
        for (c, &v) in src.iter().enumerate() {
            out[c * ld + r] = v;
        }
    }
    out
}

/// `C = A × B` (or `C += A × B` with `accumulate`) for `A` `[m, k]` with row stride `lda`,
/// `B` `[k, n]` and `C` `[m, n]`, both with row stride [`padded`]`(n)`.
///
/// Columns `n..padded(n)` of `B` must be zero (then those of `C` come out zero, or
/// unchanged when accumulating).
///
/// # Panics
///
/// If a slice is shorter than the shapes say.
#[inline(always)]
#[allow(clippy::too_many_arguments)] // a matrix product's shapes and strides
pub(crate) fn matmul<S: Simd>(
    simd: S,
    a: &[f32],
    lda: usize,
    m: usize,
    k: usize,
    b: &[f32],
    n: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let ld = padded::<S>(n);
    let vectors = ld / S::F32_LANES;
    assert!(
        k == 0 || a.len() >= (m - 1) * lda + k,
        "matmul: A too short"
    );
    assert!(b.len() >= k * ld, "matmul: B too short");
    assert!(c.len() >= m * ld, "matmul: C too short");
    let mut row = 0;
    while row < m {
        let rows = (m - row).min(MR);
        let a = &a[row * lda..];
        let c = &mut c[row * ld..];
        let mut v = 0;
        while v < vectors {
            let nv = (vectors - v).min(NV);
            let col = v * S::F32_LANES;
            // A tile's shape is a compile-time constant, so its accumulators live in
            // registers: one instance per (rows, vectors) pair.
            macro_rules! tiles {
                ($($r:literal),*; $($v:literal),*) => {
                    tiles!(@rows [$($r),*] [$($v),*])
                };
                (@rows [$($r:literal),*] $vs:tt) => {
                    match rows {
                        $($r => tiles!(@vecs $r $vs),)*
                        _ => unreachable!("at most MR rows"),
                    }
                };
                (@vecs $r:literal [$($v:literal),*]) => {
                    match nv {
                        $($v => tile::<S, $r, $v>(simd, a, lda, k, &b[col..], ld, &mut c[col..], accumulate),)*
                        _ => unreachable!("at most NV vectors"),
                    }
                };
            }
            tiles!(1, 2, 3, 4; 1, 2, 3);
            v += nv;
        }
        row += rows;
    }
}

/// One register tile: `R` rows of `C` by `V` vectors, over the whole depth `k`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile<S: Simd, const R: usize, const V: usize>(
    simd: S,
    a: &[f32],
    lda: usize,
    k: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    let lanes = S::F32_LANES;
    let rows: [&[f32]; R] = core::array::from_fn(|r| &a[r * lda..r * lda + k]);
    let mut acc = [[simd.splat_f32s(0.0); V]; R];
    for kk in 0..k {
        let (bv, _) = S::as_simd_f32s(&b[kk * ldb..kk * ldb + V * lanes]);
        for r in 0..R {
            let x = simd.splat_f32s(rows[r][kk]);
            for v in 0..V {
                acc[r][v] = simd.mul_add_f32s(x, bv[v], acc[r][v]);
            }
        }
    }
    for (r, acc) in acc.iter().enumerate() {
        let (cv, _) = S::as_mut_simd_f32s(&mut c[r * ldb..r * ldb + V * lanes]);
        for v in 0..V {
            cv[v] = if accumulate {
                simd.add_f32s(cv[v], acc[v])
            } else {
                acc[v]
            };
        }
    }
}

/// `eˣ` to about 2 ulp for `x` in `[-87, 88]` (clamped there, so it never overflows nor
/// returns a subnormal), without branches or table lookups so that loops over it vectorise.
///
/// Cody–Waite reduction `x = k ln 2 + r` with `|r| ≤ ln 2 / 2`, Cephes' degree-6 polynomial
/// for `eʳ`, and `2ᵏ` built in the exponent bits. The rounding of `x / ln 2` to `k` adds
/// 1.5·2²³, whose low mantissa bits then hold `k`.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let x = x.clamp(-87.0, 88.0);
    let shifted = x * core::f32::consts::LOG2_E + MAGIC;
    let k = shifted - MAGIC;
    let r = x - k * 0.693_359_4 - k * -2.121_944_4e-4;
    let p = 1.987_569_1e-4;
    let p = p * r + 1.398_2e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 1.666_666_5e-1;
    let p = p * r + 0.5;
    let p = p * (r * r) + r + 1.0;
    let k = shifted.to_bits().wrapping_sub(MAGIC.to_bits()); // k, two's complement
    p * f32::from_bits(k.wrapping_add(127) << 23)
}

/// The logistic function `1 / (1 + e⁻ˣ)`.
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// `tanh x = 1 - 2 / (1 + e²ˣ)`: exact to about 1e-7 absolute (its relative error grows
/// near 0, where the result is small).
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + exp(2.0 * x))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pulp::{Arch, WithSimd};

    #[test]
    fn exp_sigmoid_tanh_match_the_standard_library() {
        let mut worst = (0.0f32, 0.0f32, 0.0f32);
        for i in -20_000..=20_000 {
            let x = i as f32 * 0.004_3;
            let e = (exp(x) - x.exp()).abs() / x.exp();
            let s = (sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs();
            let t = (tanh(x) - x.tanh()).abs();
            worst = (worst.0.max(e), worst.1.max(s), worst.2.max(t));
        }
        assert!(worst.0 < 5e-7, "exp relative error {}", worst.0);
        assert!(worst.1 < 2e-7, "sigmoid absolute error {}", worst.1);
        assert!(worst.2 < 3e-7, "tanh absolute error {}", worst.2);
        // Far outside the clamp: finite and saturated.
        assert_eq!(sigmoid(-1e4), sigmoid(-88.0));
        assert!(sigmoid(-1e4) >= 0.0 && sigmoid(1e4) == 1.0);
        assert_eq!((tanh(-1e4), tanh(1e4)), (-1.0, 1.0));
        assert!(exp(1e4).is_finite());
    }

    /// Every tile shape and a tail of rows and of vectors, against the triple loop.
    #[test]
    fn matmul_matches_the_triple_loop() {
        struct Case;
        impl WithSimd for Case {
            type Output = ();
            #[inline(always)]
            fn with_simd<S: Simd>(self, simd: S) {
                let value = |i: usize| ((i * 7919 % 113) as f32 - 56.0) / 37.0;
                for (m, k, n) in [(1, 1, 1), (5, 3, 7), (9, 64, 192), (13, 17, 50), (4, 0, 8)] {
                    let a: Vec<f32> = (0..m * (k + 2)).map(value).collect(); // lda = k + 2
                    let b: Vec<f32> = (0..k * n).map(|i| value(i + 5)).collect();
                    let ld = padded::<S>(n);
                    let mut c = vec![1.0; m * ld];
                    let bp = pad_rows::<S>(&b, k, n);
                    matmul(simd, &a, k + 2, m, k, &bp, n, &mut c, true);
                    for i in 0..m {
                        for j in 0..n {
                            let want: f32 = 1.0
                                + (0..k)
                                    .map(|l| a[i * (k + 2) + l] * b[l * n + j])
                                    .sum::<f32>();
                            let got = c[i * ld + j];
                            assert!(
                                (got - want).abs() < 1e-4,
                                "{m}x{k}x{n} [{i},{j}]: {got} vs {want}"
                            );
                        }
                        assert!(c[i * ld + n..(i + 1) * ld].iter().all(|&v| v == 1.0));
                    }
                    let bt = pad_transposed::<S>(&b, k, n); // [n, k]
                    let ldt = padded::<S>(k);
                    for j in 0..n {
                        for l in 0..k {
                            assert_eq!(bt[j * ldt + l], b[l * n + j]);
                        }
                    }
                }
            }
        }
        Arch::new().dispatch(Case);
    }
}
