//! The GRU classifier of issue 3: stacked GRU layers following the seeds' equations 1–4,
//! a linear head on the last layer's final hidden state, softmax left to the loss.
//!
//! For one layer, with `x_t` the input and `h_{t-1}` the previous hidden state (`h_0 = 0`):
//!
//! ```text
//! z_t = σ(W_z x_t + b_iz + U_z h_{t-1} + b_hz)                  update gate  (eq. 1)
//! r_t = σ(W_r x_t + b_ir + U_r h_{t-1} + b_hr)                  reset gate   (eq. 2)
//! h̃_t = tanh(W_n x_t + b_in + U_n (r_t ⊙ h_{t-1}) + b_hn)       reset_after = false (eq. 3)
//! h̃_t = tanh(W_n x_t + b_in + r_t ⊙ (U_n h_{t-1} + b_hn))       reset_after = true
//! h_t = (1 - z_t) ⊙ h_{t-1} + z_t ⊙ h̃_t                         new state    (eq. 4)
//! ```
//!
//! The seeds write `W · [h_{t-1}, x_t]`, one matrix on the concatenation; that is the
//! `W x + U h` above, split so the input half can be computed for every timestep at once.
//!
//! # Why it is written this way
//!
//! Speed: a window of `T` records costs one `[B·T, F] × [F, 3H]` product for the input half
//! of all three gates at all timesteps, then per step one `[B, H] × [H, 3H]` product
//! (`reset_after = true`; two smaller ones otherwise) and elementwise gate arithmetic. At
//! `t = 1` the state is zero, so that step skips its recurrent product: a window of one
//! record costs the input product alone. With `reset_after` (the default) on burn's CPU
//! backend, the whole recurrence of a layer is one fused burn operation with a hand-written
//! backward pass ([`crate::fused`]); elsewhere it is composed of burn operations step by
//! step and burn's autodiff derives the backward pass. Both give the same numbers (tested).
//!
//! PyTorch: the parameters are PyTorch's `nn.GRU` ones (gate blocks in the order r, z, n,
//! both biases), so [`TorchGruWeights`] carries weights across in either direction. Two
//! differences are handled there: the matrices are stored transposed (`[in, 3H]`, so the
//! products need no transpose), and PyTorch's update gate is the seeds' complement
//! (`h_t = (1 - z) ⊙ h̃ + z ⊙ h_{t-1}`), so its z rows are negated on the way in and out
//! (`σ(-a) = 1 - σ(a)`). Keras' GRU uses PyTorch's z but orders its gates z, r, h.

use burn::config::Config;
use burn::module::{Module, Param};
use burn::nn::{Dropout, DropoutConfig, Linear};
use burn::tensor::activation::{sigmoid, tanh};
use burn::tensor::module::linear;
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

// Not `Result`: burn's `#[derive(Config)]` expands to code naming `Result` unqualified.
use crate::error::Error;

/// Configuration of a [`GruClassifier`]; [`GruConfig::init`] builds one.
#[derive(Config, Debug)]
pub struct GruConfig {
    /// Features per timestep (the prepared feature matrix's width).
    pub input: usize,
    /// Size of every layer's hidden state.
    pub hidden: usize,
    /// Stacked GRU layers; each one after the first reads the previous one's states.
    /// By default 1.
    #[config(default = 1)]
    pub layers: usize,
    /// Probability of zeroing a value during training, applied to each layer's output:
    /// between layers (as PyTorch's `nn.GRU(dropout=...)`) and on the final state before
    /// the head. Inactive at inference (on a device without autodiff, or after
    /// `module.valid()`). By default 0.0.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Number of classes: the head's outputs.
    pub classes: usize,
    /// Where the reset gate acts in the candidate state: `false` is the seeds' eq. 3
    /// (`U_n (r ⊙ h)`), `true` is PyTorch's and Keras' (`r ⊙ (U_n h + b_hn)`).
    ///
    /// By default `true`: all three gates then share one recurrent product per step
    /// (`h × U` for r, z and n together, `[B, H] × [H, 3H]`), which `false` cannot do because
    /// its n product needs `r` first; and PyTorch's weights load as they are (Keras' too,
    /// once its gate order z, r, h is changed to r, z, n).
    #[config(default = true)]
    pub reset_after: bool,
    /// Seed of the initial weights, so the same config builds the same model on every
    /// backend and thread count. By default 42.
    #[config(default = 42)]
    pub seed: u64,
}

/// The units of every layer's hidden state when the user names none.
pub const DEFAULT_HIDDEN: usize = 64;

/// Records per window when the user names none: the record and the 15 before it in its
/// flow. Chosen on MQTTset's validation rows (window 8: 0.990, 16: 0.991, 32: lower on
/// held-out traffic); a short session (3 to 11 packets) fits whole.
pub const DEFAULT_WINDOW: usize = 16;

/// A [`GruConfig`] without the data's dimensions (input features, classes): what a user
/// chooses before any file is read, so it can be checked before reading one.
/// [`for_data`](Self::for_data) completes it once the prepared features are known.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct GruShape {
    /// Size of every layer's hidden state ([`DEFAULT_HIDDEN`]).
    pub hidden: usize,
    /// Stacked GRU layers.
    pub layers: usize,
    /// Dropout between layers and before the head, during training.
    pub dropout: f64,
    /// PyTorch's and Keras' candidate state (true) or the seeds' eq. 3 (false).
    pub reset_after: bool,
    /// Seed of the initial weights.
    pub seed: u64,
}

impl Default for GruShape {
    /// [`GruConfig`]'s defaults, with [`DEFAULT_HIDDEN`] units.
    fn default() -> Self {
        GruShape::of(&GruConfig::new(1, DEFAULT_HIDDEN, 2))
    }
}

impl GruShape {
    /// The shape of `cfg`.
    pub fn of(cfg: &GruConfig) -> GruShape {
        GruShape {
            hidden: cfg.hidden,
            layers: cfg.layers,
            dropout: cfg.dropout,
            reset_after: cfg.reset_after,
            seed: cfg.seed,
        }
    }

    /// The network for `input` features and `classes` classes.
    pub fn for_data(&self, input: usize, classes: usize) -> GruConfig {
        GruConfig::new(input, self.hidden, classes)
            .with_layers(self.layers)
            .with_dropout(self.dropout)
            .with_reset_after(self.reset_after)
            .with_seed(self.seed)
    }

    /// Checks the fields the shape holds (hidden, layers, dropout).
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field out of range.
    pub fn check(&self) -> crate::Result<()> {
        self.for_data(1, 2).check()
    }
}

impl GruConfig {
    /// Checks every field against its allowed range.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] naming the first field out of range.
    pub fn check(&self) -> crate::Result<()> {
        let bad = |field, value: String, allowed| {
            Err(Error::Config {
                field,
                value,
                allowed,
            })
        };
        if self.input == 0 {
            return bad("input", "0".into(), "at least 1 feature");
        }
        if self.hidden == 0 {
            return bad("hidden", "0".into(), "at least 1");
        }
        if self.layers == 0 {
            return bad("layers", "0".into(), "at least 1");
        }
        if self.classes < 2 {
            return bad("classes", self.classes.to_string(), "at least 2");
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return bad("dropout", self.dropout.to_string(), "in [0, 1)");
        }
        Ok(())
    }

    /// Builds the classifier on `device` (use an autodiff device to train it).
    ///
    /// Every weight and bias is drawn from `U(-k, k)` with `k = 1/√hidden`, PyTorch's
    /// initialisation of `nn.GRU` and of the head's `nn.Linear`, from a generator seeded
    /// with [`seed`](Self::seed).
    ///
    /// # Panics
    ///
    /// If [`check`](Self::check) fails.
    pub fn init(&self, device: &Device) -> GruClassifier {
        let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
        let k = 1.0 / (self.hidden as f32).sqrt();
        self.build(device, |shape| {
            let n = shape.iter().product();
            let values: Vec<f32> = (0..n).map(|_| rng.random_range(-k..k)).collect();
            TensorData::new(values, shape.to_vec())
        })
    }

    /// Builds the classifier with each parameter's values from `values(shape)`, in the
    /// order [`crate::params::flatten`] lists them (layers input first: `weight_ih`,
    /// `weight_hh`, `bias_ih`, `bias_hh`; then the head's weight and bias).
    ///
    /// # Panics
    ///
    /// If [`check`](Self::check) fails.
    pub fn build(
        &self,
        device: &Device,
        mut values: impl FnMut(&[usize]) -> TensorData,
    ) -> GruClassifier {
        if let Err(e) = self.check() {
            panic!("{e}");
        }
        let h = self.hidden;
        let layers = (0..self.layers)
            .map(|l| {
                let input = if l == 0 { self.input } else { h };
                GruLayer {
                    weight_ih: Param::from_data(values(&[input, 3 * h]), device),
                    weight_hh: Param::from_data(values(&[h, 3 * h]), device),
                    bias_ih: Param::from_data(values(&[3 * h]), device),
                    bias_hh: Param::from_data(values(&[3 * h]), device),
                    hidden: h,
                    reset_after: self.reset_after,
                }
            })
            .collect();
        let head = Linear {
            weight: Param::from_data(values(&[h, self.classes]), device),
            bias: Some(Param::from_data(values(&[self.classes]), device)),
        };
        GruClassifier {
            layers,
            dropout: DropoutConfig::new(self.dropout).init(),
            head,
        }
    }
}

/// One GRU layer. Its matrices hold the three gates side by side in column blocks
/// `r | z | n`, each `hidden` wide, in the seeds' convention for z (see the module docs).
#[derive(Module, Debug)]
pub struct GruLayer {
    /// Input weights `[W_r; W_z; W_n]ᵀ`, `[input, 3 * hidden]`.
    pub weight_ih: Param<Tensor<2>>,
    /// Recurrent weights `[U_r; U_z; U_n]ᵀ`, `[hidden, 3 * hidden]`.
    pub weight_hh: Param<Tensor<2>>,
    /// Input biases `b_ir | b_iz | b_in`, `[3 * hidden]`.
    pub bias_ih: Param<Tensor<1>>,
    /// Recurrent biases `b_hr | b_hz | b_hn`, `[3 * hidden]`.
    pub bias_hh: Param<Tensor<1>>,
    /// Size of the hidden state.
    pub hidden: usize,
    /// Reset gate after the recurrent product (PyTorch) or before it (seeds' eq. 3).
    pub reset_after: bool,
}

impl GruLayer {
    /// Runs the layer over a time-major sequence.
    ///
    /// `keep[t]` is 1 where step `t` of a sequence is a real record and 0 where it is
    /// padding; a padding step leaves the state as it was. It is folded into the update gate
    /// (`z ← z ⊙ keep`), which turns eq. 4 into `h_t = h_{t-1}` there at the cost of one
    /// multiply.
    ///
    /// # Shapes
    ///
    /// - input: `[seq * batch, input]`, row `t * batch + b` is step `t` of sequence `b`
    /// - keep: `[seq * batch, 1]`, time-major like the input, or none (no padding)
    /// - output: the final state `[batch, hidden]`; with `all_steps` also every state,
    ///   time-major like the input, `[seq * batch, hidden]`
    ///
    /// With `reset_after` on burn's CPU backend (f32), the recurrence runs as one fused
    /// operation with a hand-written backward pass on an autodiff device, and the whole
    /// layer as one operation without autodiff ([`crate::fused`]); otherwise it is composed
    /// of burn operations step by step, and burn's autodiff derives the backward.
    fn forward_time_major(
        &self,
        input: Tensor<2>,
        batch: usize,
        keep: Option<&Tensor<2>>,
        all_steps: bool,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        let seq = input.dims()[0] / batch;
        #[cfg(feature = "flex")]
        if self.reset_after && seq > 0 && crate::fused::applies(&input) {
            return self.forward_fused(input, batch, keep, all_steps);
        }
        self.forward_composed(input, batch, keep, all_steps)
    }

    /// [`forward_time_major`](Self::forward_time_major) through the fused recurrence.
    #[cfg(feature = "flex")]
    pub(crate) fn forward_fused(
        &self,
        input: Tensor<2>,
        batch: usize,
        keep: Option<&Tensor<2>>,
        all_steps: bool,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        if !input.device().is_autodiff() {
            let out = crate::fused::layer_inference(
                input,
                self.weight_ih.val(),
                self.bias_ih.val(),
                self.weight_hh.val(),
                self.bias_hh.val(),
                keep.cloned(),
                batch,
                all_steps,
            );
            return if all_steps {
                let rows = out.dims()[0];
                (out.clone().narrow(0, rows - batch, batch), Some(out))
            } else {
                (out, None)
            };
        }
        let h = self.hidden;
        let device = input.device();
        let b_hh = self.bias_hh.val();
        // As in the composed path: b_hr and b_hz join the input projection, b_hn stays
        // inside the reset gate.
        let rz = b_hh.clone().narrow(0, 0, 2 * h);
        let bias_x = self.bias_ih.val() + Tensor::cat(vec![rz, Tensor::zeros([h], &device)], 0);
        let b_hn = b_hh.narrow(0, 2 * h, h);
        let gx_all = linear(input, self.weight_ih.val(), Some(bias_x));
        let out = crate::fused::recurrence(
            gx_all,
            self.weight_hh.val(),
            b_hn,
            keep.cloned(),
            batch,
            all_steps,
        );
        if all_steps {
            let rows = out.dims()[0];
            (out.clone().narrow(0, rows - batch, batch), Some(out))
        } else {
            (out, None)
        }
    }

    /// [`forward_time_major`](Self::forward_time_major) composed of burn operations, step
    /// by step: the reference the fused path is tested against, and the path of
    /// `reset_after = false` and of other backends.
    pub(crate) fn forward_composed(
        &self,
        input: Tensor<2>,
        batch: usize,
        keep: Option<&Tensor<2>>,
        all_steps: bool,
    ) -> (Tensor<2>, Option<Tensor<2>>) {
        let h = self.hidden;
        let device = input.device();
        let seq = input.dims()[0] / batch;
        let w_hh = self.weight_hh.val(); // [hidden, 3 * hidden]
        let b_hh = self.bias_hh.val(); // [3 * hidden]

        // A recurrent bias outside the reset gate is a constant added to the gate's input,
        // so it moves into the input projection and off the per-step path. Only b_hn under
        // reset_after (multiplied by r) must stay in the loop.
        let (bias_x, recurrent) = if self.reset_after {
            let rz = b_hh.clone().narrow(0, 0, 2 * h);
            let bias = Tensor::cat(vec![rz, Tensor::zeros([h], &device)], 0);
            let b_hn = b_hh.narrow(0, 2 * h, h).unsqueeze::<2>(); // [1, hidden]
            (
                self.bias_ih.val() + bias,
                Recurrent::After { u: w_hh, b_hn },
            )
        } else {
            let u_rz = w_hh.clone().narrow(1, 0, 2 * h); // [hidden, 2 * hidden]
            let u_n = w_hh.narrow(1, 2 * h, h); // [hidden, hidden]
            (self.bias_ih.val() + b_hh, Recurrent::Before { u_rz, u_n })
        };
        // [seq * batch, 3 * hidden]: the input half of every gate at every step, one product.
        let gx_all = linear(input, self.weight_ih.val(), Some(bias_x));

        let mut state: Option<Tensor<2>> = None; // h_{t-1}, None while it is h_0 = 0
        let mut states = Vec::with_capacity(if all_steps { seq } else { 0 });
        for t in 0..seq {
            let gx = gx_all.clone().narrow(0, t * batch, batch); // [batch, 3 * hidden]
            let gx_rz = gx.clone().narrow(1, 0, 2 * h); // [batch, 2 * hidden]
            let gx_n = gx.narrow(1, 2 * h, h); // [batch, hidden]

            // r and z from their pre-activations, computed together.
            let gates = |rz_pre: Tensor<2>| {
                let rz = sigmoid(rz_pre); // [batch, 2 * hidden]
                (rz.clone().narrow(1, 0, h), rz.narrow(1, h, h)) // r, z: [batch, hidden]
            };
            let (z, n) = match (&state, &recurrent) {
                // h_0 = 0: every recurrent product vanishes.
                (None, Recurrent::After { b_hn, .. }) => {
                    let (r, z) = gates(gx_rz);
                    (z, tanh(gx_n + r * b_hn.clone()))
                }
                (None, Recurrent::Before { .. }) => (gates(gx_rz).1, tanh(gx_n)),
                (Some(prev), Recurrent::After { u, b_hn }) => {
                    let gh = prev.clone().matmul(u.clone()); // [batch, 3 * hidden]
                    let (r, z) = gates(gx_rz + gh.clone().narrow(1, 0, 2 * h));
                    (z, tanh(gx_n + r * (gh.narrow(1, 2 * h, h) + b_hn.clone())))
                }
                (Some(prev), Recurrent::Before { u_rz, u_n }) => {
                    let (r, z) = gates(gx_rz + prev.clone().matmul(u_rz.clone()));
                    (z, tanh(gx_n + (r * prev.clone()).matmul(u_n.clone())))
                }
            };
            let z = match keep {
                Some(keep) => z * keep.clone().narrow(0, t * batch, batch),
                None => z,
            };
            // Eq. 4 as h + z ⊙ (h̃ - h): one multiply fewer, and exactly h where z = 0.
            let next = match state {
                None => z * n,
                Some(prev) => prev.clone() + z * (n - prev),
            }; // [batch, hidden]
            if all_steps {
                states.push(next.clone());
            }
            state = Some(next);
        }
        let last = state.unwrap_or_else(|| Tensor::zeros([batch, h], &device));
        let all = all_steps.then(|| Tensor::cat(states, 0));
        (last, all)
    }

    /// Replaces the weights with PyTorch's for the same layer shape.
    ///
    /// # Errors
    ///
    /// [`Error::WeightShape`] if a vector's length does not fit this layer (`layer` only
    /// names the layer in that message).
    pub fn load_torch(self, weights: &TorchGruWeights, layer: usize) -> crate::Result<Self> {
        let [input, _] = self.weight_ih.val().dims();
        let h = self.hidden;
        let device = self.weight_ih.val().device();
        let check = |name, values: &Vec<f32>, shape: &[usize]| {
            let expected = shape.iter().product();
            if values.len() == expected {
                Ok(())
            } else {
                Err(Error::WeightShape {
                    layer,
                    name,
                    shape: format!("{shape:?}"),
                    expected,
                    got: values.len(),
                })
            }
        };
        check("weight_ih", &weights.weight_ih, &[3 * h, input])?;
        check("weight_hh", &weights.weight_hh, &[3 * h, h])?;
        check("bias_ih", &weights.bias_ih, &[3 * h])?;
        check("bias_hh", &weights.bias_hh, &[3 * h])?;

        let matrix = |rows: &[f32], cols: usize| {
            let data = transpose(&flip_z(rows, h, cols), 3 * h, cols);
            Param::from_data(TensorData::new(data, [cols, 3 * h]), &device)
        };
        let vector =
            |v: &[f32]| Param::from_data(TensorData::new(flip_z(v, h, 1), [3 * h]), &device);
        Ok(Self {
            weight_ih: matrix(&weights.weight_ih, input),
            weight_hh: matrix(&weights.weight_hh, h),
            bias_ih: vector(&weights.bias_ih),
            bias_hh: vector(&weights.bias_hh),
            ..self
        })
    }

    /// This layer's weights in PyTorch's layout and z convention (the inverse of
    /// [`load_torch`](Self::load_torch)).
    pub fn to_torch(&self) -> TorchGruWeights {
        let h = self.hidden;
        let values = |t: Tensor<2>| -> (Vec<f32>, usize) {
            let [rows, _] = t.dims();
            let v = t.into_data_as::<f32>().try_into_vec::<f32>();
            (v.expect("converted to f32 above"), rows)
        };
        let matrix = |t| {
            let (v, cols) = values(t);
            flip_z(&transpose(&v, cols, 3 * h), h, cols)
        };
        let vector = |t: Tensor<1>| flip_z(&values(t.unsqueeze::<2>()).0, h, 1);
        TorchGruWeights {
            weight_ih: matrix(self.weight_ih.val()),
            weight_hh: matrix(self.weight_hh.val()),
            bias_ih: vector(self.bias_ih.val()),
            bias_hh: vector(self.bias_hh.val()),
        }
    }
}

/// The recurrent half of the gates, as each variant needs it.
enum Recurrent {
    /// reset_after: one product `h × U` serves all three gates; `b_hn` stays inside
    /// `r ⊙ (U_n h + b_hn)`.
    After {
        /// `[hidden, 3 * hidden]`
        u: Tensor<2>,
        /// `[1, hidden]`
        b_hn: Tensor<2>,
    },
    /// Reset before (eq. 3): `h × U_rz` for r and z, then `(r ⊙ h) × U_n`.
    Before {
        /// `[hidden, 2 * hidden]`
        u_rz: Tensor<2>,
        /// `[hidden, hidden]`
        u_n: Tensor<2>,
    },
}

/// One layer's weights as PyTorch's `nn.GRU` holds them (`weight_ih_l{k}`, `weight_hh_l{k}`,
/// `bias_ih_l{k}`, `bias_hh_l{k}`), flattened row-major: gate blocks r, z, n down the rows,
/// PyTorch's update gate (the seeds' `1 - z`).
#[derive(Debug, Clone, PartialEq)]
pub struct TorchGruWeights {
    /// `[3 * hidden, input]`.
    pub weight_ih: Vec<f32>,
    /// `[3 * hidden, hidden]`.
    pub weight_hh: Vec<f32>,
    /// `[3 * hidden]`.
    pub bias_ih: Vec<f32>,
    /// `[3 * hidden]`.
    pub bias_hh: Vec<f32>,
}

/// Negates the z block (rows `hidden..2 * hidden`) of a gate-blocked row-major matrix with
/// `cols` columns: PyTorch's update gate to the seeds' and back, since `σ(-a) = 1 - σ(a)`.
fn flip_z(rows: &[f32], hidden: usize, cols: usize) -> Vec<f32> {
    let z = hidden * cols..2 * hidden * cols;
    let flip = |(i, &v): (usize, &f32)| if z.contains(&i) { -v } else { v };
    rows.iter().enumerate().map(flip).collect()
}

/// Transposes a row-major `[rows, cols]` matrix.
fn transpose(m: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| m[r * cols + c]))
        .collect()
}

/// Stacked GRU layers and a linear head: logits for each window of records.
#[derive(Module, Debug)]
pub struct GruClassifier {
    /// The GRU layers, input first.
    pub layers: Vec<GruLayer>,
    /// Dropout on each layer's output, active only while training.
    pub dropout: Dropout,
    /// The head: final state to class logits, weight `[hidden, classes]`.
    pub head: Linear,
}

impl crate::network::NetworkConfig for GruConfig {
    type Net = GruClassifier;

    fn check(&self) -> crate::Result<()> {
        GruConfig::check(self)
    }

    fn input(&self) -> usize {
        self.input
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn init(&self, device: &Device) -> GruClassifier {
        GruConfig::init(self, device)
    }
}

impl crate::network::Network for GruClassifier {
    fn forward(&self, input: Tensor<3>, mask: Option<Tensor<2>>) -> Tensor<2> {
        GruClassifier::forward(self, input, mask)
    }

    fn scores(
        &self,
        ex: crate::examples::Examples<'_>,
        batch_size: usize,
    ) -> crate::examples::Scores {
        crate::examples::frozen_scores(self, ex, batch_size)
    }
}

impl GruClassifier {
    /// Class logits for each window; softmax is left to the loss (and to prediction).
    ///
    /// `mask` is 1.0 at real records and 0.0 at padding (`bool_mask.float()` converts a
    /// boolean one). Windows are left-padded, so with `h_0 = 0` the state is still 0 at the
    /// first real record. `None` means no padding.
    ///
    /// # Shapes
    ///
    /// - input: `[batch, seq, features]`
    /// - mask: `[batch, seq]`
    /// - output: `[batch, classes]`
    pub fn forward(&self, input: Tensor<3>, mask: Option<Tensor<2>>) -> Tensor<2> {
        let state = self.final_state(input, mask); // [batch, hidden]
        self.head.forward(self.dropout.forward(state))
    }

    /// The last layer's hidden state after the last step (PyTorch's `h_n[-1]`).
    ///
    /// # Shapes
    ///
    /// - input: `[batch, seq, features]`
    /// - mask: `[batch, seq]`, 1.0 at real records and 0.0 at padding
    /// - output: `[batch, hidden]`
    ///
    /// # Panics
    ///
    /// If the module has no layer (a config that passed `check` always has one).
    pub fn final_state(&self, input: Tensor<3>, mask: Option<Tensor<2>>) -> Tensor<2> {
        let [batch, seq, features] = input.dims();
        // Time-major rows (t * batch + b): each step is one contiguous block of rows, and a
        // layer's output is the next layer's input without reshuffling.
        let mut x = input.swap_dims(0, 1).reshape([seq * batch, features]);
        let keep = mask.map(|m| m.swap_dims(0, 1).reshape([seq * batch, 1]));
        let (last, lower) = self.layers.split_last().expect("a GRU has a layer");
        for layer in lower {
            let (_, steps) = layer.forward_time_major(x, batch, keep.as_ref(), true);
            x = self.dropout.forward(steps.expect("asked for all steps"));
        }
        last.forward_time_major(x, batch, keep.as_ref(), false).0
    }

    /// Loads one layer's weights from PyTorch's layout; see [`GruLayer::load_torch`].
    ///
    /// # Errors
    ///
    /// [`Error::WeightShape`] if a vector does not fit, [`Error::NoLayer`] if there is no
    /// layer `layer`.
    pub fn with_torch_layer(
        mut self,
        layer: usize,
        weights: &TorchGruWeights,
    ) -> crate::Result<Self> {
        let layers = self.layers.len();
        let slot = self
            .layers
            .get_mut(layer)
            .ok_or(Error::NoLayer { layer, layers })?;
        // A module clone shares its tensors; only the loaded ones are new.
        *slot = slot.clone().load_torch(weights, layer)?;
        Ok(self)
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    /// Gate matrices in the equations' orientation (`[hidden, input]`, rows are hidden units),
    /// gate order r, z, n, seeds' z.
    type Gates = [[[f32; 2]; 2]; 3];

    /// A 2-input, 2-hidden layer from per-gate matrices and biases.
    fn layer(
        w: Gates,
        u: Gates,
        b_i: [[f32; 2]; 3],
        b_h: [[f32; 2]; 3],
        reset_after: bool,
    ) -> GruLayer {
        let device = Device::flex();
        // Internal layout [in, 3H]: column g*2 + j holds row j of gate g.
        let stack = |m: Gates| -> Vec<f32> {
            (0..2)
                .flat_map(|i| (0..3).flat_map(move |g| (0..2).map(move |j| m[g][j][i])))
                .collect()
        };
        let flat = |b: [[f32; 2]; 3]| b.concat();
        GruLayer {
            weight_ih: Param::from_data(TensorData::new(stack(w), [2, 6]), &device),
            weight_hh: Param::from_data(TensorData::new(stack(u), [2, 6]), &device),
            bias_ih: Param::from_data(TensorData::new(flat(b_i), [6]), &device),
            bias_hh: Param::from_data(TensorData::new(flat(b_h), [6]), &device),
            hidden: 2,
            reset_after,
        }
    }

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data_as::<f32>().try_into_vec::<f32>().unwrap()
    }

    fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g - w).abs() <= tol,
                "{what}[{i}]: got {g}, want {w} (±{tol})\n got {got:?}\nwant {want:?}"
            );
        }
    }

    /// Runs the hand-computed layer over `x` (one sequence) and returns h_T.
    fn run(layer: &GruLayer, x: &[[f32; 2]]) -> Vec<f32> {
        let seq = x.len();
        let input = Tensor::<2>::from_data(TensorData::new(x.concat(), [seq, 2]), &Device::flex());
        values(layer.forward_time_major(input, 1, None, false).0)
    }

    /// Eqs. 1–4 by hand (σ(a) = 1/(1+e^-a), shown to 7 digits; the asserted h are the same
    /// arithmetic done in float64, written at f32 precision).
    ///
    /// ```text
    /// W_r = [[0.1, 0.2], [-0.3, 0.4]]  U_r = [[0.5, -0.1], [0.2, 0.3]]  b_ir = [0.1, -0.1]   b_hr = [0.05, 0]
    /// W_z = [[0.3, -0.2], [0.1, 0.1]]  U_z = [[-0.4, 0.2], [0.1, 0.6]]  b_iz = [0, 0.2]      b_hz = [0.1, -0.05]
    /// W_n = [[0.6, 0.1], [-0.2, 0.5]]  U_n = [[0.3, 0.4], [-0.5, 0.2]]  b_in = [-0.1, 0.05]  b_hn = [0.2, -0.1]
    /// x_1 = [1, -1], x_2 = [0.5, 2], h_0 = 0
    ///
    /// t = 1: h_0 = 0, so the U products vanish.
    ///   a_r = W_r x_1 + b_ir + b_hr = [0.1-0.2+0.1+0.05, -0.3-0.4-0.1] = [0.05, -0.8]
    ///   r_1 = σ(a_r) = [0.5124974, 0.3100255]
    ///   a_z = [0.3+0.2+0+0.1, 0.1-0.1+0.2-0.05] = [0.6, 0.15],  z_1 = [0.6456563, 0.5374298]
    ///   before (eq. 3): a_n = W_n x_1 + b_in + U_n (r ⊙ 0) + b_hn = [0.5-0.1+0.2, -0.7+0.05-0.1] = [0.6, -0.75]
    ///   after:          a_n = W_n x_1 + b_in + r_1 ⊙ b_hn = [0.4 + 0.5124974·0.2, -0.65 - 0.3100255·0.1]
    ///                       = [0.5024995, -0.6810026]
    ///   h̃_1 = tanh(a_n): before [0.5370496, -0.6351490], after [0.4640806, -0.5921708]
    ///   h_1 = (1 - z_1) ⊙ 0 + z_1 ⊙ h̃_1: before [0.3467494, -0.3413480], after [0.2996366, -0.3182502]
    ///
    /// t = 2, before:
    ///   a_r = (W_r x_2 + b_ir + b_hr = [0.6, 0.55]) + U_r h_1 [0.2075095, -0.0330545] = [0.8075095, 0.5169455]
    ///   r_2 = [0.6915785, 0.6264332]
    ///   a_z = (W_z x_2 + b_iz + b_hz = [-0.15, 0.4]) + U_z h_1 [-0.2069694, -0.1701339] = [-0.3569694, 0.2298661]
    ///   z_2 = [0.4116934, 0.5572148]
    ///   r_2 ⊙ h_1 = [0.2398045, -0.2138317],  U_n (r_2 ⊙ h_1) = [-0.0135914, -0.1626686]
    ///   a_n = (W_n x_2 + b_in + b_hn = [0.6, 0.85]) + [-0.0135914, -0.1626686] = [0.5864086, 0.6873314]
    ///   h̃_2 = [0.5273078, 0.5962649]
    ///   h_2 = (1 - z_2) ⊙ h_1 + z_2 ⊙ h̃_2 = [0.5883066·0.3467494 + 0.4116934·0.5273078,
    ///                                        0.4427852·-0.3413480 + 0.5572148·0.5962649]
    ///       = [0.4210841, 0.1811038]
    ///
    /// t = 2, after:
    ///   a_r = [0.6, 0.55] + U_r h_1 [0.1816433, -0.0355478] = [0.7816433, 0.5144522],  r_2 = [0.6860342, 0.6258496]
    ///   a_z = [-0.15, 0.4] + U_z h_1 [-0.1835047, -0.1609865] = [-0.3335047, 0.2390135], z_2 = [0.4173881, 0.5594705]
    ///   a_n = (W_n x_2 + b_in = [0.4, 0.95]) + r_2 ⊙ (U_n h_1 + b_hn = [0.1625909, -0.3134683])
    ///       = [0.5115429, 0.7538160],  h̃_2 = [0.4711465, 0.6374200]
    ///   h_2 = (1 - z_2) ⊙ h_1 + z_2 ⊙ h̃_2 = [0.3712228, 0.2164191]
    /// ```
    #[test]
    fn gates_match_a_hand_computation() {
        let w = [
            [[0.1, 0.2], [-0.3, 0.4]],
            [[0.3, -0.2], [0.1, 0.1]],
            [[0.6, 0.1], [-0.2, 0.5]],
        ];
        let u = [
            [[0.5, -0.1], [0.2, 0.3]],
            [[-0.4, 0.2], [0.1, 0.6]],
            [[0.3, 0.4], [-0.5, 0.2]],
        ];
        let b_i = [[0.1, -0.1], [0.0, 0.2], [-0.1, 0.05]];
        let b_h = [[0.05, 0.0], [0.1, -0.05], [0.2, -0.1]];
        let x = [[1.0, -1.0], [0.5, 2.0]];

        let before = layer(w, u, b_i, b_h, false);
        assert_close(
            &run(&before, &x[..1]),
            &[0.346_749_45, -0.341_348],
            1e-6,
            "before h_1",
        );
        assert_close(
            &run(&before, &x),
            &[0.421_084_1, 0.181_103_83],
            1e-6,
            "before h_2",
        );

        let after = layer(w, u, b_i, b_h, true);
        assert_close(
            &run(&after, &x[..1]),
            &[0.299_636_57, -0.318_250_24],
            1e-6,
            "after h_1",
        );
        assert_close(
            &run(&after, &x),
            &[0.371_222_76, 0.216_419_09],
            1e-6,
            "after h_2",
        );
    }

    /// PyTorch's layout in, PyTorch's layout out; and in between the seeds' z, so a z row
    /// comes in negated (σ(-a) = 1 - σ(a)).
    #[test]
    fn torch_weights_round_trip_with_z_negated_inside() {
        let (input, h) = (3, 2);
        let seq = |n: usize, start: f32| {
            (0..n)
                .map(|i| start + i as f32 * 0.01)
                .collect::<Vec<f32>>()
        };
        let torch = TorchGruWeights {
            weight_ih: seq(3 * h * input, 0.1),
            weight_hh: seq(3 * h * h, -0.2),
            bias_ih: seq(3 * h, 0.3),
            bias_hh: seq(3 * h, -0.4),
        };
        let model = GruConfig::new(input, h, 2).init(&Device::flex());
        let model = model.with_torch_layer(0, &torch).unwrap();
        assert_eq!(model.layers[0].to_torch(), torch);

        // weight_ih_l0[row, col] (PyTorch) is weight_ih[col, row] here, negated for z rows.
        let inside = values(model.layers[0].weight_ih.val());
        let torch_at = |row: usize, col: usize| torch.weight_ih[row * input + col];
        assert_eq!(inside[2 * (3 * h) + 1], torch_at(1, 2)); // r, unit 1, input 2
        assert_eq!(inside[(3 * h) + h], -torch_at(h, 1)); // z, unit 0, input 1
        assert_eq!(inside[2 * h + 1], torch_at(2 * h + 1, 0)); // n, unit 1, input 0
    }

    #[test]
    fn wrong_weight_sizes_are_refused_with_the_expected_shape() {
        let model = GruConfig::new(5, 4, 3).with_layers(2).init(&Device::flex());
        let short = TorchGruWeights {
            weight_ih: vec![0.0; 12 * 4], // layer 1 reads the 4 states of layer 0: [12, 4]
            weight_hh: vec![0.0; 12 * 4],
            bias_ih: vec![0.0; 11],
            bias_hh: vec![0.0; 12],
        };
        let err = model
            .clone()
            .with_torch_layer(1, &short)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "weight bias_ih of GRU layer 1: expected 12 values ([12]), got 11"
        );
        let err = model.with_torch_layer(2, &short).unwrap_err().to_string();
        assert_eq!(
            err,
            "GRU layer 2 does not exist: the model has 2 layers (0 to 1)"
        );
    }

    #[test]
    fn config_defaults_and_checks() {
        let c = GruConfig::new(64, 64, 15);
        assert_eq!(
            (c.layers, c.dropout, c.reset_after, c.seed),
            (1, 0.0, true, 42)
        );
        assert!(c.check().is_ok());
        let err = c.clone().with_dropout(1.0).check().unwrap_err().to_string();
        assert_eq!(err, "invalid model config: dropout = 1; in [0, 1)");
        let err = c.with_layers(0).check().unwrap_err().to_string();
        assert_eq!(err, "invalid model config: layers = 0; at least 1");
    }

    /// Left padding with the mask at 0 leaves the state at h_0 = 0 until the first real
    /// record, so a padded window ends where the unpadded one does: in every layer, in both
    /// variants, with garbage in the padded rows, next to a sequence of another length.
    #[test]
    fn left_padding_is_invisible() {
        let device = Device::flex();
        for reset_after in [false, true] {
            let model = GruConfig::new(3, 4, 2)
                .with_layers(2)
                .with_reset_after(reset_after)
                .with_seed(7)
                .init(&device);
            let real: Vec<f32> = (0..9).map(|i| ((i * 7 % 5) as f32 - 2.0) * 0.3).collect();
            let other: Vec<f32> = (0..15).map(|i| ((i * 3 % 7) as f32 - 3.0) * 0.2).collect();
            let plain = Tensor::<3>::from_data(TensorData::new(real.clone(), [1, 3, 3]), &device);
            let want = values(model.final_state(plain, None));

            // Batch of two windows of 5: [pad, pad, real x3] and another sequence of 5 steps.
            let padded: Vec<f32> = [vec![9.0; 6], real, other.clone()].concat();
            let padded = Tensor::<3>::from_data(TensorData::new(padded, [2, 5, 3]), &device);
            let mask = [0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0];
            let mask = Tensor::<2>::from_data(TensorData::new(mask.to_vec(), [2, 5]), &device);
            let got = values(model.final_state(padded, Some(mask)));
            assert_close(&got[..4], &want, 1e-6, "padded window");

            let alone = Tensor::<3>::from_data(TensorData::new(other, [1, 5, 3]), &device);
            let other_want = values(model.final_state(alone, None));
            assert_close(&got[4..], &other_want, 1e-6, "unpadded neighbour");
            assert!(
                want.iter().any(|v| v.abs() > 1e-3),
                "a state that says nothing: {want:?}"
            );
        }
    }
}
