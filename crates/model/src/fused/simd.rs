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

use super::pool::Buf;

/// Rows of the left operand per register tile.
const MR: usize = 4;
/// Depth of one block of the product (see [`matmul`]).
const KC: usize = 256;

/// `n` rounded up to whole SIMD vectors: the row stride of every right operand and output
/// of [`matmul`], whose tiles read and write whole vectors.
#[inline(always)]
pub(crate) fn padded<S: Simd>(n: usize) -> usize {
    n.div_ceil(S::F32_LANES) * S::F32_LANES
}

/// Copies the row-major `[rows, cols]` matrix `m` into a zeroed buffer of row stride
/// [`padded`]`(cols)`, the layout [`matmul`] wants for its right operand.
#[inline(always)]
pub(crate) fn pad_rows<S: Simd>(m: &[f32], rows: usize, cols: usize) -> Buf {
    let ld = padded::<S>(cols);
    let mut out = Buf::zeroed(rows * ld);
    for (dst, src) in out.chunks_exact_mut(ld).zip(m.chunks_exact(cols)) {
        dst[..cols].copy_from_slice(src);
    }
    out
}

/// Like [`pad_rows`] for the transpose of the row-major `[rows, cols]` matrix `m`: the
/// result is `mᵀ`, `[cols, rows]` with row stride [`padded`]`(rows)`.
#[inline(always)]
pub(crate) fn pad_transposed<S: Simd>(m: &[f32], rows: usize, cols: usize) -> Buf {
    let ld = padded::<S>(rows);
    let mut out = Buf::zeroed(cols * ld);
    for (r, src) in m.chunks_exact(cols).enumerate() {
        for (c, &v) in src.iter().enumerate() {
            out[c * ld + r] = v;
        }
    }
    out
}

/// `C = A × B` (or `C += A × B` with `accumulate`) for `A` `[m, k]`, `B` `[k, n]` and `C`
/// `[m, n]`, row-major with row strides `lda`, `ldb` and `ldc`; `ldb` and `ldc` at least
/// [`padded`]`(n)`, since tiles read and write whole vectors.
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
    ldb: usize,
    n: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let width = padded::<S>(n);
    let vectors = width / S::F32_LANES;
    assert!(ldb >= width && ldc >= width, "matmul: row strides");
    assert!(
        k == 0 || a.len() >= (m - 1) * lda + k,
        "matmul: A too short"
    );
    assert!(
        k == 0 || b.len() >= (k - 1) * ldb + width,
        "matmul: B too short"
    );
    assert!(c.len() >= (m - 1) * ldc + width, "matmul: C too short");
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                c[r * ldc..r * ldc + width].fill(0.0);
            }
        }
        return;
    }
    // Depth in blocks of KC, so that a block of B (KC rows) stays in cache while every row
    // block of A passes over it; the first block stores (unless accumulating), later ones add.
    let mut k0 = 0;
    while k0 < k {
        let kc = (k - k0).min(KC);
        let acc = accumulate || k0 > 0;
        let (a, b) = (&a[k0..], &b[k0 * ldb..]);
        if S::F32_LANES >= 16 {
            // 32 vector registers: 4 × 4 tiles.
            block::<S, 4>(simd, a, lda, m, kc, b, ldb, vectors, c, ldc, acc);
        } else {
            block::<S, 3>(simd, a, lda, m, kc, b, ldb, vectors, c, ldc, acc);
        }
        k0 += kc;
    }
}

/// [`matmul`] over one block of depth, with tiles `MR` rows by `W` vectors.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn block<S: Simd, const W: usize>(
    simd: S,
    a: &[f32],
    lda: usize,
    m: usize,
    k: usize,
    b: &[f32],
    ldb: usize,
    vectors: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let lanes = S::F32_LANES;
    // Vectors covered by full-width tiles; the rest go one vector at a time.
    let full = vectors / W * W;
    let mut row = 0;
    while row < m {
        let rows = (m - row).min(MR);
        let a = &a[row * lda..];
        let c = &mut c[row * ldc..];
        if rows == MR {
            let mut v = 0;
            while v < full {
                let (b, c) = (&b[v * lanes..], &mut c[v * lanes..]);
                if W == 4 {
                    tile4x4(simd, a, lda, k, b, ldb, c, ldc, accumulate);
                } else {
                    tile4x3(simd, a, lda, k, b, ldb, c, ldc, accumulate);
                }
                v += W;
            }
            while v < vectors {
                let (b, c) = (&b[v * lanes..], &mut c[v * lanes..]);
                tile4x1(simd, a, lda, k, b, ldb, c, ldc, accumulate);
                v += 1;
            }
        } else {
            for r in 0..rows {
                let (a, c) = (&a[r * lda..r * lda + k], &mut c[r * ldc..]);
                let mut v = 0;
                while v + 3 <= vectors {
                    let (b, c) = (&b[v * lanes..], &mut c[v * lanes..]);
                    tile1x3(simd, a, k, b, ldb, c, accumulate);
                    v += 3;
                }
                while v < vectors {
                    let (b, c) = (&b[v * lanes..], &mut c[v * lanes..]);
                    tile1x1(simd, a, k, b, ldb, c, accumulate);
                    v += 1;
                }
            }
        }
        row += rows;
    }
}

// The register tiles, written out: accumulators as separate variables (not arrays) so that
// they stay in registers. `a` starts at the tile's first row, `b` and `c` at its first
// column; `k ≥ 1`.

/// Stores (or adds) `acc` into the first `acc.len()` vectors of `c`.
#[inline(always)]
fn store<S: Simd>(simd: S, c: &mut [f32], acc: &[S::f32s], accumulate: bool) {
    let (cv, _) = S::as_mut_simd_f32s(&mut c[..acc.len() * S::F32_LANES]);
    for (d, &a) in cv.iter_mut().zip(acc) {
        *d = if accumulate { simd.add_f32s(*d, a) } else { a };
    }
}

/// 4 rows by 4 vectors: 16 accumulators, for instruction sets with 32 vector registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile4x4<S: Simd>(
    simd: S,
    a: &[f32],
    lda: usize,
    k: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let l = S::F32_LANES;
    let (a0, a1) = (&a[..k], &a[lda..lda + k]);
    let (a2, a3) = (&a[2 * lda..2 * lda + k], &a[3 * lda..3 * lda + k]);
    let z = simd.splat_f32s(0.0);
    let (mut c00, mut c01, mut c02, mut c03) = (z, z, z, z);
    let (mut c10, mut c11, mut c12, mut c13) = (z, z, z, z);
    let (mut c20, mut c21, mut c22, mut c23) = (z, z, z, z);
    let (mut c30, mut c31, mut c32, mut c33) = (z, z, z, z);
    for kk in 0..k {
        let (bv, _) = S::as_simd_f32s(&b[kk * ldb..kk * ldb + 4 * l]);
        let (b0, b1, b2, b3) = (bv[0], bv[1], bv[2], bv[3]);
        let x = simd.splat_f32s(a0[kk]);
        c00 = simd.mul_add_f32s(x, b0, c00);
        c01 = simd.mul_add_f32s(x, b1, c01);
        c02 = simd.mul_add_f32s(x, b2, c02);
        c03 = simd.mul_add_f32s(x, b3, c03);
        let x = simd.splat_f32s(a1[kk]);
        c10 = simd.mul_add_f32s(x, b0, c10);
        c11 = simd.mul_add_f32s(x, b1, c11);
        c12 = simd.mul_add_f32s(x, b2, c12);
        c13 = simd.mul_add_f32s(x, b3, c13);
        let x = simd.splat_f32s(a2[kk]);
        c20 = simd.mul_add_f32s(x, b0, c20);
        c21 = simd.mul_add_f32s(x, b1, c21);
        c22 = simd.mul_add_f32s(x, b2, c22);
        c23 = simd.mul_add_f32s(x, b3, c23);
        let x = simd.splat_f32s(a3[kk]);
        c30 = simd.mul_add_f32s(x, b0, c30);
        c31 = simd.mul_add_f32s(x, b1, c31);
        c32 = simd.mul_add_f32s(x, b2, c32);
        c33 = simd.mul_add_f32s(x, b3, c33);
    }
    store(simd, c, &[c00, c01, c02, c03], accumulate);
    store(simd, &mut c[ldc..], &[c10, c11, c12, c13], accumulate);
    store(simd, &mut c[2 * ldc..], &[c20, c21, c22, c23], accumulate);
    store(simd, &mut c[3 * ldc..], &[c30, c31, c32, c33], accumulate);
}

/// 4 rows by 3 vectors: 12 accumulators, which fit the 16 vector registers of AVX2 with
/// room for the operands.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile4x3<S: Simd>(
    simd: S,
    a: &[f32],
    lda: usize,
    k: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let l = S::F32_LANES;
    let (a0, a1) = (&a[..k], &a[lda..lda + k]);
    let (a2, a3) = (&a[2 * lda..2 * lda + k], &a[3 * lda..3 * lda + k]);
    let z = simd.splat_f32s(0.0);
    let (mut c00, mut c01, mut c02) = (z, z, z);
    let (mut c10, mut c11, mut c12) = (z, z, z);
    let (mut c20, mut c21, mut c22) = (z, z, z);
    let (mut c30, mut c31, mut c32) = (z, z, z);
    for kk in 0..k {
        let (bv, _) = S::as_simd_f32s(&b[kk * ldb..kk * ldb + 3 * l]);
        let (b0, b1, b2) = (bv[0], bv[1], bv[2]);
        let x = simd.splat_f32s(a0[kk]);
        c00 = simd.mul_add_f32s(x, b0, c00);
        c01 = simd.mul_add_f32s(x, b1, c01);
        c02 = simd.mul_add_f32s(x, b2, c02);
        let x = simd.splat_f32s(a1[kk]);
        c10 = simd.mul_add_f32s(x, b0, c10);
        c11 = simd.mul_add_f32s(x, b1, c11);
        c12 = simd.mul_add_f32s(x, b2, c12);
        let x = simd.splat_f32s(a2[kk]);
        c20 = simd.mul_add_f32s(x, b0, c20);
        c21 = simd.mul_add_f32s(x, b1, c21);
        c22 = simd.mul_add_f32s(x, b2, c22);
        let x = simd.splat_f32s(a3[kk]);
        c30 = simd.mul_add_f32s(x, b0, c30);
        c31 = simd.mul_add_f32s(x, b1, c31);
        c32 = simd.mul_add_f32s(x, b2, c32);
    }
    store(simd, c, &[c00, c01, c02], accumulate);
    store(simd, &mut c[ldc..], &[c10, c11, c12], accumulate);
    store(simd, &mut c[2 * ldc..], &[c20, c21, c22], accumulate);
    store(simd, &mut c[3 * ldc..], &[c30, c31, c32], accumulate);
}

/// 4 rows by 1 vector.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn tile4x1<S: Simd>(
    simd: S,
    a: &[f32],
    lda: usize,
    k: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
) {
    let l = S::F32_LANES;
    let (a0, a1) = (&a[..k], &a[lda..lda + k]);
    let (a2, a3) = (&a[2 * lda..2 * lda + k], &a[3 * lda..3 * lda + k]);
    let z = simd.splat_f32s(0.0);
    let (mut c0, mut c1, mut c2, mut c3) = (z, z, z, z);
    for kk in 0..k {
        let (bv, _) = S::as_simd_f32s(&b[kk * ldb..kk * ldb + l]);
        let b0 = bv[0];
        c0 = simd.mul_add_f32s(simd.splat_f32s(a0[kk]), b0, c0);
        c1 = simd.mul_add_f32s(simd.splat_f32s(a1[kk]), b0, c1);
        c2 = simd.mul_add_f32s(simd.splat_f32s(a2[kk]), b0, c2);
        c3 = simd.mul_add_f32s(simd.splat_f32s(a3[kk]), b0, c3);
    }
    store(simd, c, &[c0], accumulate);
    store(simd, &mut c[ldc..], &[c1], accumulate);
    store(simd, &mut c[2 * ldc..], &[c2], accumulate);
    store(simd, &mut c[3 * ldc..], &[c3], accumulate);
}

/// 1 row (`a`, `k` long) by 3 vectors; two interleaved halves of the depth, so that each
/// accumulator's chain of dependent FMAs is half as long.
#[inline(always)]
fn tile1x3<S: Simd>(
    simd: S,
    a: &[f32],
    k: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    let l = S::F32_LANES;
    let a = &a[..k];
    let z = simd.splat_f32s(0.0);
    let (mut c0, mut c1, mut c2) = (z, z, z);
    let (mut d0, mut d1, mut d2) = (z, z, z);
    let mut kk = 0;
    while kk + 1 < k {
        let (bv, _) = S::as_simd_f32s(&b[kk * ldb..kk * ldb + 3 * l]);
        let x = simd.splat_f32s(a[kk]);
        c0 = simd.mul_add_f32s(x, bv[0], c0);
        c1 = simd.mul_add_f32s(x, bv[1], c1);
        c2 = simd.mul_add_f32s(x, bv[2], c2);
        let (bv, _) = S::as_simd_f32s(&b[(kk + 1) * ldb..(kk + 1) * ldb + 3 * l]);
        let x = simd.splat_f32s(a[kk + 1]);
        d0 = simd.mul_add_f32s(x, bv[0], d0);
        d1 = simd.mul_add_f32s(x, bv[1], d1);
        d2 = simd.mul_add_f32s(x, bv[2], d2);
        kk += 2;
    }
    if kk < k {
        let (bv, _) = S::as_simd_f32s(&b[kk * ldb..kk * ldb + 3 * l]);
        let x = simd.splat_f32s(a[kk]);
        c0 = simd.mul_add_f32s(x, bv[0], c0);
        c1 = simd.mul_add_f32s(x, bv[1], c1);
        c2 = simd.mul_add_f32s(x, bv[2], c2);
    }
    let sums = [
        simd.add_f32s(c0, d0),
        simd.add_f32s(c1, d1),
        simd.add_f32s(c2, d2),
    ];
    store(simd, c, &sums, accumulate);
}

/// 1 row by 1 vector.
#[inline(always)]
fn tile1x1<S: Simd>(
    simd: S,
    a: &[f32],
    k: usize,
    b: &[f32],
    ldb: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    let l = S::F32_LANES;
    let a = &a[..k];
    let mut c0 = simd.splat_f32s(0.0);
    for (kk, &x) in a.iter().enumerate() {
        let (bv, _) = S::as_simd_f32s(&b[kk * ldb..kk * ldb + l]);
        c0 = simd.mul_add_f32s(simd.splat_f32s(x), bv[0], c0);
    }
    store(simd, c, &[c0], accumulate);
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
    // mul_add: one rounding and, where the CPU has FMA (every instruction set pulp
    // dispatches to here), half the latency of the chain.
    let p = 1.987_569_1e-4f32.mul_add(r, 1.398_2e-3);
    let p = p.mul_add(r, 8.333_452e-3);
    let p = p.mul_add(r, 4.166_579_6e-2);
    let p = p.mul_add(r, 1.666_666_5e-1);
    let p = p.mul_add(r, 0.5);
    let p = p.mul_add(r * r, r + 1.0);
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
                for (m, k, n) in [
                    (1, 1, 1),
                    (5, 3, 7),
                    (9, 64, 192),
                    (13, 17, 50),
                    (4, 0, 8),
                    (6, 600, 70),
                ] {
                    let a: Vec<f32> = (0..m * (k + 2)).map(value).collect(); // lda = k + 2
                    let b: Vec<f32> = (0..k * n).map(|i| value(i + 5)).collect();
                    let ld = padded::<S>(n);
                    let mut c = vec![1.0; m * ld];
                    let bp = pad_rows::<S>(&b, k, n);
                    matmul(simd, &a, k + 2, m, k, &bp, ld, n, &mut c, ld, true);
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
