//! Inference without burn: a trained [`GruClassifier`]'s weights copied once into plain
//! vectors, and the forward pass on slices.
//!
//! burn pays a fixed cost per operation (dispatch, allocation of every intermediate
//! tensor), which is most of the time of a small batch: one record through the GRU is a
//! microsecond of arithmetic. [`FrozenGru`] runs the same equations with the fused kernel's
//! building blocks ([`crate::fused`]: SIMD products chosen at run time, one pass over the
//! gates) and the batch cut into row chunks over rayon's threads. Training stays on burn;
//! this is the copy a detector serves with.

use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;

use crate::fused::kernel::gate_row;
use crate::fused::pool::Buf;
use crate::fused::simd::{matmul, sigmoid, tanh};
use crate::gru::{GruClassifier, GruLayer};

/// Row stride of every padded weight matrix: whole vectors of any instruction set pulp
/// may pick (16 lanes of f32 at most), so the matrices are padded once, at freezing.
const LANES: usize = 16;

/// Fewest rows worth a thread of their own.
const MIN_CHUNK_ROWS: usize = 16;

fn pad(n: usize) -> usize {
    n.div_ceil(LANES) * LANES
}

/// A row-major `[rows, cols]` matrix copied with row stride [`pad`]`(cols)`, zeros after.
#[derive(Debug, Clone)]
struct Padded {
    rows: usize,
    cols: usize,
    values: Vec<f32>,
}

impl Padded {
    fn new(m: &[f32], rows: usize, cols: usize) -> Self {
        let ld = pad(cols);
        let mut values = vec![0.0; rows * ld];
        for (dst, src) in values.chunks_exact_mut(ld).zip(m.chunks_exact(cols)) {
            dst[..cols].copy_from_slice(src);
        }
        Self { rows, cols, values }
    }

    fn ld(&self) -> usize {
        pad(self.cols)
    }
}

/// One frozen GRU layer.
#[derive(Debug, Clone)]
struct FrozenLayer {
    hidden: usize,
    /// `[input, 3H]`.
    w_ih: Padded,
    /// The constant part of every gate's input half: `b_ih + [b_hr | b_hz | 0]` with
    /// `reset_after`, `b_ih + b_hh` without (as in the composed path).
    bias_x: Vec<f32>,
    /// `reset_after`: all of `U`, `[H, 3H]`. Otherwise its r and z blocks, `[H, 2H]`.
    u: Padded,
    /// Without `reset_after`, `U_n` `[H, H]`, which multiplies `r ⊙ h`.
    u_n: Option<Padded>,
    /// `b_hn` (zero without `reset_after`, where it is in `bias_x`).
    b_hn: Vec<f32>,
}

/// A [`GruClassifier`] frozen for inference: its weights read once into plain vectors.
///
/// [`logits`](Self::logits) gives what [`GruClassifier::forward`] gives on a device without
/// autodiff (no dropout), to float rounding.
#[derive(Debug, Clone)]
pub struct FrozenGru {
    input: usize,
    hidden: usize,
    classes: usize,
    layers: Vec<FrozenLayer>,
    /// `[H, classes]`.
    head: Padded,
    head_bias: Vec<f32>,
}

fn floats<const D: usize>(t: burn::tensor::Tensor<D>) -> Vec<f32> {
    t.into_data_as::<f32>()
        .try_into_vec::<f32>()
        .expect("converted to f32 above")
}

impl FrozenLayer {
    fn new(layer: &GruLayer) -> Self {
        let h = layer.hidden;
        let [input, _] = layer.weight_ih.val().dims();
        let w_ih = floats(layer.weight_ih.val());
        let u = floats(layer.weight_hh.val());
        let b_ih = floats(layer.bias_ih.val());
        let b_hh = floats(layer.bias_hh.val());
        let mut bias_x = b_ih;
        if layer.reset_after {
            bias_x[..2 * h]
                .iter_mut()
                .zip(&b_hh)
                .for_each(|(b, c)| *b += c);
            Self {
                hidden: h,
                w_ih: Padded::new(&w_ih, input, 3 * h),
                bias_x,
                u: Padded::new(&u, h, 3 * h),
                u_n: None,
                b_hn: b_hh[2 * h..].to_vec(),
            }
        } else {
            bias_x.iter_mut().zip(&b_hh).for_each(|(b, c)| *b += c);
            let block = |from: usize, width: usize| -> Vec<f32> {
                u.chunks_exact(3 * h)
                    .flat_map(|row| &row[from..from + width])
                    .copied()
                    .collect()
            };
            Self {
                hidden: h,
                w_ih: Padded::new(&w_ih, input, 3 * h),
                bias_x,
                u: Padded::new(&block(0, 2 * h), h, 2 * h),
                u_n: Some(Padded::new(&block(2 * h, h), h, h)),
                b_hn: vec![0.0; h],
            }
        }
    }
}

impl FrozenGru {
    /// Copies the weights of `model` (on any device).
    pub fn new(model: &GruClassifier) -> Self {
        let layers: Vec<FrozenLayer> = model.layers.iter().map(FrozenLayer::new).collect();
        let weight = floats(model.head.weight.val());
        let [hidden, classes] = model.head.weight.val().dims();
        let head_bias = match &model.head.bias {
            Some(b) => floats(b.val()),
            None => vec![0.0; classes],
        };
        let input = layers.first().map_or(0, |l| l.w_ih.rows);
        Self {
            input,
            hidden,
            classes,
            layers,
            head: Padded::new(&weight, hidden, classes),
            head_bias,
        }
    }

    /// Features per record the model reads.
    pub fn input(&self) -> usize {
        self.input
    }

    /// Number of classes (logits per window).
    pub fn classes(&self) -> usize {
        self.classes
    }

    /// Class logits for `batch` windows of `seq` records, as [`GruClassifier::forward`].
    ///
    /// `x` is `[batch, seq, input]` row-major, `mask` `[batch, seq]` with 1.0 at real records
    /// and 0.0 at padding (`None`: no padding). Returns `[batch, classes]` row-major.
    /// Batches of more than a few dozen windows are cut over rayon's threads.
    ///
    /// # Panics
    ///
    /// If `x` or `mask` does not hold `batch × seq` records of the model's input width.
    pub fn logits(&self, x: &[f32], batch: usize, seq: usize, mask: Option<&[f32]>) -> Vec<f32> {
        self.forward(x, batch, seq, mask, false).0
    }

    /// [`logits`](Self::logits) and the top layer's final hidden state of every window,
    /// `[batch, hidden]` row-major: what the head reads, and what [`crate::novelty`]
    /// measures.
    ///
    /// # Panics
    ///
    /// As [`logits`](Self::logits).
    pub fn logits_and_states(
        &self,
        x: &[f32],
        batch: usize,
        seq: usize,
        mask: Option<&[f32]>,
    ) -> (Vec<f32>, Vec<f32>) {
        self.forward(x, batch, seq, mask, true)
    }

    /// Units of the hidden state.
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    fn forward(
        &self,
        x: &[f32],
        batch: usize,
        seq: usize,
        mask: Option<&[f32]>,
        with_states: bool,
    ) -> (Vec<f32>, Vec<f32>) {
        assert_eq!(
            x.len(),
            batch * seq * self.input,
            "FrozenGru::logits: x is not [batch, seq, input]"
        );
        if let Some(mask) = mask {
            assert_eq!(
                mask.len(),
                batch * seq,
                "FrozenGru::logits: mask is not [batch, seq]"
            );
        }
        let mut out = vec![0.0; batch * self.classes];
        // Without states, one empty slice per chunk stands in.
        let h = if with_states { self.hidden } else { 0 };
        let mut states = vec![0.0; batch * h];
        let chunks = rayon::current_num_threads()
            .min(batch / MIN_CHUNK_ROWS)
            .max(1);
        let rows_per = batch.div_ceil(chunks).max(1);
        let run = |(c, (out, states)): (usize, (&mut [f32], &mut [f32]))| {
            let first = c * rows_per;
            let rows = out.len() / self.classes;
            Arch::new().dispatch(Chunk {
                model: self,
                x: &x[first * seq * self.input..(first + rows) * seq * self.input],
                mask: mask.map(|m| &m[first * seq..(first + rows) * seq]),
                rows,
                seq,
                out,
                states: with_states.then_some(states),
            });
        };
        let per = rows_per.max(1);
        if chunks == 1 || batch == 0 {
            let state_chunks: Box<dyn Iterator<Item = &mut [f32]>> = if with_states {
                Box::new(states.chunks_mut(per * h))
            } else {
                Box::new(std::iter::repeat_with(|| &mut [][..]))
            };
            out.chunks_mut(per * self.classes)
                .zip(state_chunks)
                .enumerate()
                .for_each(run);
        } else if with_states {
            out.par_chunks_mut(per * self.classes)
                .zip(states.par_chunks_mut(per * h))
                .enumerate()
                .for_each(run);
        } else {
            out.par_chunks_mut(per * self.classes)
                .map(|o| (o, &mut [][..]))
                .enumerate()
                .for_each(run);
        }
        (out, states)
    }
}

impl GruClassifier {
    /// This model frozen for fast inference; see [`FrozenGru`].
    pub fn to_frozen(&self) -> FrozenGru {
        FrozenGru::new(self)
    }
}

/// The forward pass of one chunk of windows.
struct Chunk<'a> {
    model: &'a FrozenGru,
    /// `[rows, seq, input]`.
    x: &'a [f32],
    /// `[rows, seq]`.
    mask: Option<&'a [f32]>,
    rows: usize,
    seq: usize,
    /// `[rows, classes]`.
    out: &'a mut [f32],
    /// `[rows, hidden]`: the top layer's final states, when asked for.
    states: Option<&'a mut [f32]>,
}

impl WithSimd for Chunk<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: Simd>(self, simd: S) {
        let Self {
            model,
            x,
            mask,
            rows,
            seq,
            out,
            states: states_out,
        } = self;
        if rows == 0 {
            return;
        }
        let h = model.hidden;
        // The layer's input: the windows as given (row b * seq + t) for the first layer,
        // then the states of the layer below, time-major (row t * rows + b).
        let mut below = Buf::default();
        let mut state = Buf::zeroed(rows * h);
        for (l, layer) in model.layers.iter().enumerate() {
            let top = l + 1 == model.layers.len();
            let (input, width, batch_major) = if l == 0 {
                (x, model.input, true)
            } else {
                (&below[..], h, false)
            };
            // Input half of every gate at every step, one product.
            let ld3 = layer.w_ih.ld();
            // Columns past 3H are never read; the rest is the bias, then the product added.
            let mut gx = Buf::stale(rows * seq * ld3);
            for row in gx.chunks_exact_mut(ld3) {
                row[..3 * h].copy_from_slice(&layer.bias_x);
            }
            let wi = &layer.w_ih;
            matmul(
                simd,
                input,
                width,
                rows * seq,
                width,
                &wi.values,
                ld3,
                3 * h,
                &mut gx,
                ld3,
                true,
            );
            let mut states = if top {
                Buf::default()
            } else {
                Buf::stale(seq * rows * h) // written in full
            };
            state.fill(0.0);
            run_layer(
                simd,
                layer,
                &gx,
                batch_major,
                mask,
                rows,
                seq,
                &mut state,
                &mut states,
            );
            below = states;
        }
        if let Some(dst) = states_out {
            dst.copy_from_slice(&state[..rows * h]);
        }
        let ldc = model.head.ld();
        let mut logits = Buf::stale(rows * ldc); // bias written below, then the product
        for row in logits.chunks_exact_mut(ldc) {
            row[..model.classes].copy_from_slice(&model.head_bias);
        }
        let head = &model.head;
        matmul(
            simd,
            &state,
            h,
            rows,
            h,
            &head.values,
            ldc,
            model.classes,
            &mut logits,
            ldc,
            true,
        );
        for (dst, src) in out
            .chunks_exact_mut(model.classes)
            .zip(logits.chunks_exact(ldc))
        {
            dst.copy_from_slice(&src[..model.classes]);
        }
    }
}

/// One layer's recurrence over a chunk from `h_0 = 0`: the final state into `state`, every
/// state into `states` (time-major) unless it is empty.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn run_layer<S: Simd>(
    simd: S,
    layer: &FrozenLayer,
    gx: &[f32],
    batch_major: bool,
    mask: Option<&[f32]>,
    rows: usize,
    seq: usize,
    state: &mut [f32],
    states: &mut [f32],
) {
    let h = layer.hidden;
    let ld3 = layer.w_ih.ld();
    let ldu = layer.u.ld();
    let mut gh = Buf::zeroed(rows * ldu);
    let mut next = Buf::stale(rows * h); // written in full each step
    let mut scratch = vec![0.0; 4 * h];
    let (mut rh, mut gh_n) = match &layer.u_n {
        Some(u_n) => (Buf::zeroed(rows * h), Buf::zeroed(rows * u_n.ld())),
        None => (Buf::default(), Buf::default()),
    };
    let gx_row = |i: usize, t: usize| {
        let r = if batch_major {
            i * seq + t
        } else {
            t * rows + i
        };
        &gx[r * ld3..r * ld3 + 3 * h]
    };
    for t in 0..seq {
        // h_0 = 0: the first step's recurrent product is zero (gh starts zeroed).
        if t > 0 {
            let u = &layer.u;
            matmul(
                simd, state, h, rows, h, &u.values, ldu, u.cols, &mut gh, ldu, false,
            );
        }
        let keep = |i: usize| mask.map_or(1.0, |m| m[i * seq + t]);
        match &layer.u_n {
            None => {
                for i in 0..rows {
                    gate_row(
                        gx_row(i, t),
                        &gh[i * ldu..i * ldu + 3 * h],
                        &layer.b_hn,
                        &state[i * h..(i + 1) * h],
                        keep(i),
                        &mut next[i * h..(i + 1) * h],
                        &mut scratch,
                    );
                }
            }
            Some(u_n) => {
                // Seeds' eq. 3: r first, then U_n (r ⊙ h).
                for i in 0..rows {
                    let (gx, gh) = (gx_row(i, t), &gh[i * ldu..]);
                    for j in 0..h {
                        let r = sigmoid(gx[j] + gh[j]);
                        rh[i * h + j] = r * state[i * h + j];
                    }
                }
                let ldn = u_n.ld();
                if t > 0 {
                    matmul(
                        simd,
                        &rh,
                        h,
                        rows,
                        h,
                        &u_n.values,
                        ldn,
                        h,
                        &mut gh_n,
                        ldn,
                        false,
                    );
                }
                for i in 0..rows {
                    let (gx, gh, ghn) = (gx_row(i, t), &gh[i * ldu..], &gh_n[i * ldn..]);
                    let (prev, out) = (&state[i * h..(i + 1) * h], &mut next[i * h..(i + 1) * h]);
                    let m = keep(i);
                    for j in 0..h {
                        let z = sigmoid(gx[h + j] + gh[h + j]);
                        let c = tanh(gx[2 * h + j] + ghn[j]);
                        out[j] = prev[j] + z * m * (c - prev[j]);
                    }
                }
            }
        }
        state.copy_from_slice(&next);
        if !states.is_empty() {
            states[t * rows * h..(t + 1) * rows * h].copy_from_slice(state);
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::tensor::{Device, Tensor, TensorData};

    use crate::gru::GruConfig;

    /// Frozen logits equal burn's, for both reset variants, one and two layers, with and
    /// without padding, batches on one thread and cut over several.
    #[test]
    fn frozen_logits_equal_the_burn_forward() {
        let device = Device::flex();
        for (reset_after, layers, batch, seq, masked) in [
            (true, 1, 1, 1, false),
            (true, 1, 37, 16, true),
            (true, 2, 70, 5, true),
            (false, 1, 3, 4, false),
            (false, 2, 41, 6, true),
        ] {
            let model = GruConfig::new(9, 13, 5)
                .with_layers(layers)
                .with_reset_after(reset_after)
                .with_seed(batch as u64)
                .init(&device);
            let x: Vec<f32> = (0..batch * seq * 9)
                .map(|i| ((i * 37 % 101) as f32 - 50.0) / 25.0)
                .collect();
            // Left padding of up to seq - 1 steps.
            let mask: Vec<f32> = (0..batch * seq)
                .map(|i| f32::from(i % seq >= (i / seq) % seq))
                .collect();
            let mask = masked.then_some(mask);
            let want = model.forward(
                Tensor::<3>::from_data(TensorData::new(x.clone(), [batch, seq, 9]), &device),
                mask.clone()
                    .map(|m| Tensor::<2>::from_data(TensorData::new(m, [batch, seq]), &device)),
            );
            let want = want.into_data_as::<f32>().try_into_vec::<f32>().unwrap();
            let got = model.to_frozen().logits(&x, batch, seq, mask.as_deref());
            assert_eq!(got.len(), want.len());
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (g - w).abs() <= 1e-5,
                    "reset_after={reset_after} layers={layers} [{i}]: frozen {g}, burn {w}"
                );
            }
        }
    }
}
