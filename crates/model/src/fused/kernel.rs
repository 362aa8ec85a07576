//! The GRU recurrence (`reset_after = true`) and its backward pass on plain slices.
//!
//! Per step, one product `h_{t-1} × U` (`[rows, H] × [H, 3H]`) and one pass over the gates
//! that computes r, z, n and the new state together and, when training, saves r, z, n and
//! `U_n h_{t-1} + b_hn` for the backward pass. The backward pass walks the steps in reverse
//! with one product `dG_t × Uᵀ` per step for the state's gradient, and computes the gradient
//! of `U` at the end as a single product over all steps.
//!
//! Sequences of a batch do not interact, so the batch is cut into row chunks, one per
//! rayon thread, and each chunk runs all its steps alone: one fork and join per call
//! rather than one per step. Saved values stay in their chunk (`[seq, rows, ...]`), where
//! the backward pass, cut the same way, reads them.

use core::ops::Range;

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use super::pool::Buf;
use super::simd::{matmul, pad_rows, pad_transposed, padded, sigmoid, tanh};

/// Fewest rows worth a thread of their own: below that the fork costs more than it saves.
const MIN_CHUNK_ROWS: usize = 16;

/// One layer's recurrence inputs, time-major (row `t * batch + b` is step `t` of sequence
/// `b`), gate column blocks `r | z | n`, the seeds' z.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Recurrence<'a> {
    /// `x W + b_ih + [b_hr | b_hz | 0]` for every step, `[seq * batch, 3 * hidden]`; empty
    /// when `input` is given instead.
    pub gx: &'a [f32],
    /// The layer's input and input weights, to compute `gx` step by step inside the
    /// recurrence (inference: no `[seq * batch, 3H]` buffer). Forward only.
    pub input: Option<Projection<'a>>,
    /// Recurrent weights `[hidden, 3 * hidden]`.
    pub u: &'a [f32],
    /// `b_hn`, `[hidden]`: inside the reset gate's product.
    pub b_hn: &'a [f32],
    /// 1 at real records, 0 at padding, `[seq * batch]`; `None` is all ones.
    pub keep: Option<&'a [f32]>,
    /// Sequences.
    pub batch: usize,
    /// Size of the state.
    pub hidden: usize,
}

/// The input half of the gates, `x W + bias`, for [`Recurrence::input`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Projection<'a> {
    /// `[seq * batch, features]`, time-major.
    pub x: &'a [f32],
    /// `[features, 3 * hidden]`.
    pub weight: &'a [f32],
    /// `[3 * hidden]`.
    pub bias: &'a [f32],
    /// Input width.
    pub features: usize,
}

impl Recurrence<'_> {
    /// Steps per sequence.
    pub fn seq(&self) -> usize {
        match &self.input {
            Some(p) => p.x.len() / (p.features * self.batch).max(1),
            None => self.gx.len() / (3 * self.hidden * self.batch).max(1),
        }
    }

    fn check(&self) {
        let (h, b) = (self.hidden, self.batch);
        assert!(h > 0 && b > 0, "GRU recurrence: empty batch or state");
        match &self.input {
            Some(p) => {
                assert!(p.features > 0, "GRU recurrence: no input feature");
                assert_eq!(p.x.len() % (p.features * b), 0, "GRU recurrence: x shape");
                assert_eq!(p.weight.len(), p.features * 3 * h, "GRU: weight_ih shape");
                assert_eq!(p.bias.len(), 3 * h, "GRU recurrence: bias shape");
            }
            None => assert_eq!(self.gx.len() % (3 * h * b), 0, "GRU recurrence: gx shape"),
        }
        assert_eq!(self.u.len(), 3 * h * h, "GRU recurrence: weight_hh shape");
        assert_eq!(self.b_hn.len(), h, "GRU recurrence: b_hn shape");
        if let Some(keep) = self.keep {
            assert_eq!(keep.len(), self.seq() * b, "GRU recurrence: mask shape");
        }
    }
}

/// What the backward pass needs of one forward call.
#[derive(Clone)]
pub(crate) struct Saved {
    batch: usize,
    seq: usize,
    hidden: usize,
    all_steps: bool,
    u: Vec<f32>,
    keep: Option<Vec<f32>>,
    chunks: Vec<ChunkSaved>,
}

impl core::fmt::Debug for Saved {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Saved")
            .field("batch", &self.batch)
            .field("seq", &self.seq)
            .field("hidden", &self.hidden)
            .field("chunks", &self.chunks.len())
            .finish_non_exhaustive()
    }
}

/// One row chunk's saved values.
#[derive(Clone)]
struct ChunkSaved {
    rows: Range<usize>,
    /// `h_t` for every step, `[seq, rows, hidden]`.
    states: Buf,
    /// `r | z | n | U_n h_{t-1} + b_hn` for every step, `[seq, rows, 4 * hidden]`; z before
    /// the mask.
    gates: Buf,
}

/// Gradients of one layer's recurrence inputs.
#[derive(Debug)]
pub(crate) struct Grads {
    /// `[seq * batch, 3 * hidden]`.
    pub gx: Vec<f32>,
    /// `[hidden, 3 * hidden]`.
    pub u: Vec<f32>,
    /// `[hidden]`.
    pub b_hn: Vec<f32>,
}

/// Runs the recurrence from `h_0 = 0`, cut into as many chunks as rayon has threads.
///
/// Returns the final states `[batch, hidden]`, or with `all_steps` every state time-major
/// `[seq * batch, hidden]`; with `save`, also what [`backward`] needs.
pub(crate) fn forward(
    layer: &Recurrence,
    all_steps: bool,
    save: bool,
) -> (Vec<f32>, Option<Saved>) {
    let chunks = rayon::current_num_threads();
    forward_chunked(layer, all_steps, save, chunks)
}

/// [`forward`] with an explicit number of chunks (at most one per [`MIN_CHUNK_ROWS`] rows).
pub(crate) fn forward_chunked(
    layer: &Recurrence,
    all_steps: bool,
    save: bool,
    chunks: usize,
) -> (Vec<f32>, Option<Saved>) {
    layer.check();
    assert!(
        !(save && layer.input.is_some()),
        "GRU recurrence: the backward pass needs gx, not its projection"
    );
    let (h, batch, seq) = (layer.hidden, layer.batch, layer.seq());
    let ranges = row_chunks(batch, chunks);
    let out_steps = if all_steps { seq } else { 1 };
    let mut out = vec![0.0; out_steps * batch * h];
    let views = split_steps(&mut out, batch, h, &ranges);
    let run = |(rows, out): (Range<usize>, Vec<&mut [f32]>)| {
        Arch::new().dispatch(ChunkForward {
            layer,
            rows,
            out,
            all_steps,
            save,
        })
    };
    let work: Vec<_> = ranges.into_iter().zip(views).collect();
    let saved: Vec<Option<ChunkSaved>> = if work.len() == 1 {
        work.into_iter().map(run).collect()
    } else {
        work.into_par_iter().map(run).collect()
    };
    let saved = save.then(|| Saved {
        batch,
        seq,
        hidden: h,
        all_steps,
        u: layer.u.to_vec(),
        keep: layer.keep.map(<[f32]>::to_vec),
        chunks: saved.into_iter().flatten().collect(),
    });
    (out, saved)
}

/// Gradients of the recurrence's inputs from `grad`, the gradient of what [`forward`]
/// returned (final states, or every state if it was called with `all_steps`).
///
/// # Panics
///
/// If `grad` does not have the shape of the forward output.
pub(crate) fn backward(saved: &Saved, grad: &[f32]) -> Grads {
    let (h, batch, seq) = (saved.hidden, saved.batch, saved.seq);
    let out_steps = if saved.all_steps { seq } else { 1 };
    assert_eq!(
        grad.len(),
        out_steps * batch * h,
        "GRU backward: gradient shape"
    );
    let ranges: Vec<Range<usize>> = saved.chunks.iter().map(|c| c.rows.clone()).collect();
    let mut gx = vec![0.0; seq * batch * 3 * h];
    let views = split_steps(&mut gx, batch, 3 * h, &ranges);
    let run = |(chunk, dgx): (&ChunkSaved, Vec<&mut [f32]>)| {
        let grad = (0..out_steps)
            .map(|t| &grad[(t * batch + chunk.rows.start) * h..][..chunk.rows.len() * h])
            .collect();
        Arch::new().dispatch(ChunkBackward {
            saved,
            chunk,
            grad,
            dgx,
        })
    };
    let work: Vec<_> = saved.chunks.iter().zip(views).collect();
    let parts: Vec<(Vec<f32>, Vec<f32>)> = if work.len() == 1 {
        work.into_iter().map(run).collect()
    } else {
        work.into_par_iter().map(run).collect()
    };
    let mut u = vec![0.0; 3 * h * h];
    let mut b_hn = vec![0.0; h];
    for (du, db) in parts {
        u.iter_mut().zip(du).for_each(|(a, b)| *a += b);
        b_hn.iter_mut().zip(db).for_each(|(a, b)| *a += b);
    }
    Grads { gx, u, b_hn }
}

/// `batch` rows cut into at most `chunks` nearly equal ranges of at least
/// [`MIN_CHUNK_ROWS`] rows (one range if the batch is smaller).
fn row_chunks(batch: usize, chunks: usize) -> Vec<Range<usize>> {
    let n = chunks.min(batch / MIN_CHUNK_ROWS).max(1);
    (0..n)
        .map(|i| (i * batch / n)..((i + 1) * batch / n))
        .collect()
}

/// Cuts a time-major `[steps, batch, width]` buffer into each chunk's rows at every step:
/// element `c` of the result holds chunk `c`'s `steps` pieces, in step order.
fn split_steps<'a>(
    buf: &'a mut [f32],
    batch: usize,
    width: usize,
    ranges: &[Range<usize>],
) -> Vec<Vec<&'a mut [f32]>> {
    let mut views: Vec<Vec<&'a mut [f32]>> = ranges.iter().map(|_| Vec::new()).collect();
    for block in buf.chunks_exact_mut(batch * width) {
        let mut rest = block;
        for (view, rows) in views.iter_mut().zip(ranges) {
            let (piece, tail) = core::mem::take(&mut rest).split_at_mut(rows.len() * width);
            view.push(piece);
            rest = tail;
        }
    }
    views
}

/// The forward pass of one row chunk.
struct ChunkForward<'a> {
    layer: &'a Recurrence<'a>,
    rows: Range<usize>,
    /// This chunk's rows of the output: one piece per step, or one (the final state).
    out: Vec<&'a mut [f32]>,
    all_steps: bool,
    save: bool,
}

impl WithSimd for ChunkForward<'_> {
    type Output = Option<ChunkSaved>;

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Self::Output {
        let Self {
            layer,
            rows,
            mut out,
            all_steps,
            save,
        } = self;
        let (h, batch, seq) = (layer.hidden, layer.batch, layer.seq());
        let (g3, n_rows, first) = (3 * h, rows.len(), rows.start);
        let u = pad_rows::<S>(layer.u, h, g3);
        let ld = padded::<S>(g3);
        // h_{t-1} U; zero at t = 0, where the product is skipped (h_0 = 0).
        let mut gh = Buf::zeroed(n_rows * ld);
        let mut state = Buf::zeroed(n_rows * h);
        let mut next = Buf::stale(n_rows * h); // written in full each step
        let mut scratch = vec![0.0; 4 * h];
        // The input half of this step's gates, when it is computed here.
        let w_ih = layer.input.map(|p| pad_rows::<S>(p.weight, p.features, g3));
        let mut gx_step = match layer.input {
            Some(_) => Buf::stale(n_rows * ld),
            None => Buf::default(),
        };
        // Both written in full, step by step.
        let (mut states, mut gates) = if save {
            (
                Buf::stale(seq * n_rows * h),
                Buf::stale(seq * n_rows * 4 * h),
            )
        } else {
            (Buf::default(), Buf::default())
        };
        for t in 0..seq {
            if t > 0 {
                matmul(simd, &state, h, n_rows, h, &u, ld, g3, &mut gh, ld, false);
            }
            let (gx, gx_ld) = match (&layer.input, &w_ih) {
                (Some(p), Some(w_ih)) => {
                    let f = p.features;
                    for row in gx_step.chunks_exact_mut(ld) {
                        row[..g3].copy_from_slice(p.bias);
                    }
                    let x = &p.x[(t * batch + first) * f..];
                    matmul(simd, x, f, n_rows, f, w_ih, ld, g3, &mut gx_step, ld, true);
                    (&gx_step[..], ld)
                }
                _ => (&layer.gx[(t * batch + first) * g3..][..n_rows * g3], g3),
            };
            for i in 0..n_rows {
                let keep = layer.keep.map_or(1.0, |k| k[t * batch + first + i]);
                let saved = if save {
                    &mut gates[(t * n_rows + i) * 4 * h..][..4 * h]
                } else {
                    &mut scratch[..]
                };
                gate_row(
                    &gx[i * gx_ld..][..g3],
                    &gh[i * ld..][..g3],
                    layer.b_hn,
                    &state[i * h..][..h],
                    keep,
                    &mut next[i * h..][..h],
                    saved,
                );
            }
            core::mem::swap(&mut state, &mut next);
            if save {
                states[t * n_rows * h..][..n_rows * h].copy_from_slice(&state);
            }
            if all_steps {
                out[t].copy_from_slice(&state);
            }
        }
        if !all_steps {
            out[0].copy_from_slice(&state);
        }
        save.then_some(ChunkSaved {
            rows,
            states,
            gates,
        })
    }
}

/// One sequence's step: the gates from their pre-activations, the new state into `out`,
/// and `r | z | n | U_n h + b_hn` into `saved`.
///
/// `gx` and `gh` are the input and recurrent halves `[3H]`, `h` the previous state. Two
/// loops rather than one: r and z first (adjacent blocks, one loop over `2H`), then n and
/// the state. Each loop's iterations are independent chains of an exponential, which the
/// CPU overlaps; one loop doing all three would chain the tanh behind the sigmoid.
#[inline(always)]
pub(crate) fn gate_row(
    gx: &[f32],
    gh: &[f32],
    b_hn: &[f32],
    h: &[f32],
    keep: f32,
    out: &mut [f32],
    saved: &mut [f32],
) {
    let n = h.len();
    let (rz, rest) = saved[..4 * n].split_at_mut(2 * n);
    let (s_n, s_hn) = rest.split_at_mut(n);
    for ((rz, &x), &y) in rz.iter_mut().zip(&gx[..2 * n]).zip(&gh[..2 * n]) {
        *rz = sigmoid(x + y);
    }
    let (r, z) = rz.split_at(n);
    let (gx_n, gh_n) = (&gx[2 * n..3 * n], &gh[2 * n..3 * n]);
    let (b_hn, out) = (&b_hn[..n], &mut out[..n]);
    for j in 0..n {
        let hn = gh_n[j] + b_hn[j];
        let c = tanh(gx_n[j] + r[j] * hn);
        // Eq. 4 as h + z ⊙ (h̃ - h), z masked: exactly h at padding.
        out[j] = h[j] + z[j] * keep * (c - h[j]);
        s_n[j] = c;
        s_hn[j] = hn;
    }
}

/// The backward pass of one row chunk.
struct ChunkBackward<'a> {
    saved: &'a Saved,
    chunk: &'a ChunkSaved,
    /// Gradient of this chunk's output rows, per output step.
    grad: Vec<&'a [f32]>,
    /// This chunk's rows of the gradient of `gx`, per step.
    dgx: Vec<&'a mut [f32]>,
}

impl WithSimd for ChunkBackward<'_> {
    /// This chunk's share of the gradients of `U` and `b_hn`.
    type Output = (Vec<f32>, Vec<f32>);

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) -> Self::Output {
        let Self {
            saved,
            chunk,
            grad,
            mut dgx,
        } = self;
        let (h, batch, seq) = (saved.hidden, saved.batch, saved.seq);
        let (g3, n_rows, first) = (3 * h, chunk.rows.len(), chunk.rows.start);
        let (ld_h, ld3) = (padded::<S>(h), padded::<S>(g3));
        let u_t = pad_transposed::<S>(&saved.u, h, g3); // [3H, H]
        // Gradient reaching h_t: from the output, and from step t + 1 through the state.
        let mut dh = Buf::zeroed(n_rows * h);
        let mut dh_u = Buf::zeroed(n_rows * ld_h);
        // dG_t, the gradient of h_{t-1} U + [0 | 0 | b_hn], padded rows: the right operand of
        // the product that gives dU.
        let mut dg = Buf::zeroed(seq * n_rows * ld3);
        let mut db = vec![0.0; h];
        let zeros = vec![0.0; h];
        for t in (0..seq).rev() {
            let outside = if saved.all_steps {
                Some(grad[t])
            } else {
                (t + 1 == seq).then(|| grad[0])
            };
            if let Some(g) = outside {
                dh.iter_mut().zip(g).for_each(|(d, g)| *d += g);
            }
            let dg_t = &mut dg[t * n_rows * ld3..][..n_rows * ld3];
            for i in 0..n_rows {
                let prev = if t > 0 {
                    &chunk.states[((t - 1) * n_rows + i) * h..][..h]
                } else {
                    &zeros[..]
                };
                let keep = saved
                    .keep
                    .as_ref()
                    .map_or(1.0, |k| k[t * batch + first + i]);
                let dg_row = &mut dg_t[i * ld3..][..g3];
                gate_row_backward(
                    &chunk.gates[(t * n_rows + i) * 4 * h..][..4 * h],
                    prev,
                    keep,
                    &mut dh[i * h..][..h],
                    &mut dgx[t][i * g3..][..g3],
                    dg_row,
                );
                db.iter_mut()
                    .zip(&dg_row[2 * h..])
                    .for_each(|(b, g)| *b += g);
            }
            if t > 0 {
                // dh_{t-1} = dh ⊙ (1 - z) + dG_t Uᵀ
                matmul(
                    simd, dg_t, ld3, n_rows, g3, &u_t, ld_h, h, &mut dh_u, ld_h, false,
                );
                for (d, du) in dh.chunks_exact_mut(h).zip(dh_u.chunks_exact(ld_h)) {
                    d.iter_mut().zip(du).for_each(|(d, du)| *d += du);
                }
            }
        }
        // dU = Σ_{t ≥ 1} h_{t-1}ᵀ dG_t: one product over every (step, row) pair, with the
        // states of steps 0..seq-1 transposed as the left operand.
        let depth = (seq - 1) * n_rows;
        let mut du = Buf::zeroed(h * ld3);
        if depth > 0 {
            let mut states_t = Buf::stale(h * depth); // written in full below
            for (r, state) in chunk.states[..depth * h].chunks_exact(h).enumerate() {
                for (c, &v) in state.iter().enumerate() {
                    states_t[c * depth + r] = v;
                }
            }
            let dg_rest = &dg[n_rows * ld3..];
            matmul(
                simd, &states_t, depth, h, depth, dg_rest, ld3, g3, &mut du, ld3, false,
            );
        }
        let du = du
            .chunks_exact(ld3)
            .flat_map(|row| &row[..g3])
            .copied()
            .collect();
        (du, db)
    }
}

/// One sequence's step backwards. `saved` is the forward's `r | z | n | hn`, `prev` the
/// state before the step, `dh` the gradient of the state after it, replaced by the part
/// that reaches the previous state directly (`dh ⊙ (1 - z)`); the gradients of the gates'
/// input half go to `dgx` and of the recurrent half (`h U + [0 | 0 | b_hn]`) to `dg`.
#[inline(always)]
fn gate_row_backward(
    saved: &[f32],
    prev: &[f32],
    keep: f32,
    dh: &mut [f32],
    dgx: &mut [f32],
    dg: &mut [f32],
) {
    let n = prev.len();
    let (r, z, c, hn) = (
        &saved[..n],
        &saved[n..2 * n],
        &saved[2 * n..3 * n],
        &saved[3 * n..4 * n],
    );
    let (dgx_r, rest) = dgx[..3 * n].split_at_mut(n);
    let (dgx_z, dgx_n) = rest.split_at_mut(n);
    let (dg_r, rest) = dg[..3 * n].split_at_mut(n);
    let (dg_z, dg_n) = rest.split_at_mut(n);
    let dh = &mut dh[..n];
    for j in 0..n {
        let d = dh[j];
        let ze = z[j] * keep;
        // h' = h + ze (c - h)
        let da_n = d * ze * (1.0 - c[j] * c[j]); // through c = tanh(a_n)
        let da_z = d * (c[j] - prev[j]) * keep * z[j] * (1.0 - z[j]);
        let da_r = da_n * hn[j] * r[j] * (1.0 - r[j]); // a_n = gx_n + r ⊙ hn
        dh[j] = d * (1.0 - ze);
        dgx_r[j] = da_r;
        dgx_z[j] = da_z;
        dgx_n[j] = da_n;
        dg_r[j] = da_r;
        dg_z[j] = da_z;
        dg_n[j] = da_n * r[j];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| (((i + seed) * 2_654_435_761 % 1000) as f32 / 500.0 - 1.0) * scale)
            .collect()
    }

    /// The same numbers whatever the chunking, including a batch that does not divide.
    #[test]
    fn chunking_changes_nothing() {
        let (batch, hidden, seq) = (53, 5, 4);
        let gx = values(seq * batch * 3 * hidden, 1, 1.5);
        let u = values(3 * hidden * hidden, 2, 0.5);
        let b_hn = values(hidden, 3, 0.3);
        let keep: Vec<f32> = (0..seq * batch).map(|i| f32::from(i % 7 != 0)).collect();
        let layer = Recurrence {
            gx: &gx,
            input: None,
            u: &u,
            b_hn: &b_hn,
            keep: Some(&keep),
            batch,
            hidden,
        };
        let (one, s1) = forward_chunked(&layer, true, true, 1);
        let (three, s3) = forward_chunked(&layer, true, true, 3);
        assert_eq!(one, three);
        let grad = values(one.len(), 4, 1.0);
        let (g1, g3) = (backward(&s1.unwrap(), &grad), backward(&s3.unwrap(), &grad));
        assert_eq!(g1.gx, g3.gx);
        for (a, b) in g1.u.iter().zip(&g3.u).chain(g1.b_hn.iter().zip(&g3.b_hn)) {
            assert!((a - b).abs() <= 1e-5 * (1.0 + a.abs()), "{a} vs {b}");
        }
        assert_eq!(row_chunks(53, 3), vec![0..17, 17..35, 35..53]);
        assert_eq!(row_chunks(20, 3), vec![0..20]);
    }
}
