//! The fused GRU layer on burn's CPU backend Flex: the whole recurrence of a layer as one
//! burn operation, forward and backward, through burn's backend-extension API.
//!
//! [`GruBackend`] is the extension trait for training (`#[backend_extension(Autodiff,
//! Flex)]`): its Flex implementation runs the recurrence forward, its `Autodiff<Flex>`
//! implementation also saves the gates (r, z, n and `U_n h + b_hn` per step) and registers
//! a hand-written backward step (BPTT, fused like the forward pass), so burn's autodiff
//! sees one node per layer instead of a dozen per step. The input projection of every step
//! stays a burn `linear` before the node (one large product burn already does well), so
//! gradients reach `weight_ih`, `bias_ih` and the input through burn as before.
//!
//! [`GruInferenceBackend`] (`#[backend_extension(Flex)]`) is the whole layer for a device
//! without autodiff, input projection included.
//!
//! [`GruLayer`](crate::gru::GruLayer) picks these by itself on a Flex device in f32 with
//! `reset_after`; other devices, dtypes and `reset_after = false` take the composed-ops
//! path, which the tests here hold the fused one to. The arithmetic is on plain slices
//! (products and gates in SIMD chosen at run time by pulp, the batch cut into row chunks
//! over rayon's threads); see the crate sources `fused/kernel.rs` and `fused/simd.rs`.

pub(crate) mod kernel;
pub(crate) mod pool;
pub(crate) mod simd;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::Arc;

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, ExtensionType, Flex, backend_extension};
use burn::tensor::{DType, Device, Tensor, TensorData};

use kernel::{Projection, Recurrence};

/// The padding mask of a fused layer, if it has one.
#[derive(ExtensionType)]
pub enum Keep<B: Backend> {
    /// 1 at real records, 0 at padding, time-major `[seq * batch, 1]`.
    Mask(FloatTensor<B>),
    /// No padding.
    All,
}

impl<B: Backend> core::fmt::Debug for Keep<B> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Mask(_) => "Keep::Mask",
            Self::All => "Keep::All",
        })
    }
}

/// The fused GRU recurrence as a burn backend extension.
#[backend_extension(Autodiff, Flex)]
pub trait GruBackend: Backend {
    /// One GRU layer's recurrence (`reset_after = true`, seeds' z) from `h_0 = 0`.
    ///
    /// - `gx`: the input half of every gate at every step, biases of r and z included,
    ///   time-major `[seq * batch, 3 * hidden]`
    /// - `weight_hh`: `[hidden, 3 * hidden]`; `b_hn`: `[hidden]`
    /// - output: the final state `[batch, hidden]`, or with `all_steps` every state,
    ///   `[seq * batch, hidden]`
    fn gru_recurrence(
        gx: FloatTensor<Self>,
        weight_hh: FloatTensor<Self>,
        b_hn: FloatTensor<Self>,
        #[extension_type] keep: Keep<Self>,
        batch: usize,
        all_steps: bool,
    ) -> FloatTensor<Self>;
}

/// The whole GRU layer for inference, input projection included, as a burn backend
/// extension of Flex alone (no autodiff: training goes through [`GruBackend`]).
///
/// Computing the input half of the gates step by step inside the recurrence spares the
/// `[seq * batch, 3H]` tensor burn's `linear` would allocate, and the few operations that
/// assemble the biases.
#[backend_extension(Flex)]
pub trait GruInferenceBackend: Backend {
    /// One GRU layer (`reset_after = true`, seeds' z) from `h_0 = 0`, on a device without
    /// autodiff.
    ///
    /// - `input`: time-major `[seq * batch, features]`
    /// - `weight_ih` `[features, 3H]`, `bias_ih` and `bias_hh` `[3H]`, `weight_hh` `[H, 3H]`:
    ///   the layer's parameters as [`GruLayer`](crate::gru::GruLayer) holds them
    /// - output: as [`GruBackend::gru_recurrence`]
    #[allow(clippy::too_many_arguments)] // a layer's parameters
    fn gru_layer_inference(
        input: FloatTensor<Self>,
        weight_ih: FloatTensor<Self>,
        bias_ih: FloatTensor<Self>,
        weight_hh: FloatTensor<Self>,
        bias_hh: FloatTensor<Self>,
        #[extension_type] keep: Keep<Self>,
        batch: usize,
        all_steps: bool,
    ) -> FloatTensor<Self>;
}

impl GruInferenceBackend for Flex {
    fn gru_layer_inference(
        input: FlexTensor,
        weight_ih: FlexTensor,
        bias_ih: FlexTensor,
        weight_hh: FlexTensor,
        bias_hh: FlexTensor,
        keep: Keep<Self>,
        batch: usize,
        all_steps: bool,
    ) -> FlexTensor {
        let hidden = bias_hh.layout().shape().num_elements() / 3;
        let features = weight_ih.layout().shape().num_elements() / (3 * hidden).max(1);
        let (x, w, u) = (f32s(&input), f32s(&weight_ih), f32s(&weight_hh));
        let (b_ih, b_hh) = (f32s(&bias_ih), f32s(&bias_hh));
        // b_hr and b_hz join the input half; b_hn stays inside the reset gate.
        let bias: Vec<f32> = b_ih
            .iter()
            .zip(b_hh.iter())
            .enumerate()
            .map(|(i, (a, b))| if i < 2 * hidden { a + b } else { *a })
            .collect();
        let keep = match &keep {
            Keep::Mask(mask) => Some(f32s(mask)),
            Keep::All => None,
        };
        let layer = Recurrence {
            gx: &[],
            input: Some(Projection {
                x: &x,
                weight: &w,
                bias: &bias,
                features,
            }),
            u: &u,
            b_hn: &b_hh[2 * hidden..],
            keep: keep.as_deref(),
            batch,
            hidden,
        };
        let rows = if all_steps {
            layer.seq() * batch
        } else {
            batch
        };
        let (out, _) = kernel::forward(&layer, all_steps, false);
        flex(out, [rows, hidden])
    }
}

/// Runs a whole layer with [`GruInferenceBackend`]; only where [`applies`] says so and on
/// a device without autodiff.
#[allow(clippy::too_many_arguments)] // a layer's parameters
pub(crate) fn layer_inference(
    input: Tensor<2>,
    weight_ih: Tensor<2>,
    bias_ih: Tensor<1>,
    weight_hh: Tensor<2>,
    bias_hh: Tensor<1>,
    keep: Option<Tensor<2>>,
    batch: usize,
    all_steps: bool,
) -> Tensor<2> {
    let keep = match keep {
        Some(mask) => Keep::Mask(mask.into_dispatch()),
        None => Keep::All,
    };
    Tensor::from_dispatch(<Dispatch as GruInferenceBackend>::gru_layer_inference(
        input.into_dispatch(),
        weight_ih.into_dispatch(),
        bias_ih.into_dispatch(),
        weight_hh.into_dispatch(),
        bias_hh.into_dispatch(),
        keep,
        batch,
        all_steps,
    ))
}

/// Whether [`recurrence`] can run on `tensor`'s device and dtype.
pub(crate) fn applies(tensor: &Tensor<2>) -> bool {
    tensor.device() == Device::flex() && tensor.dtype() == DType::F32
}

/// Runs the fused recurrence; see [`GruBackend::gru_recurrence`]. Differentiable when the
/// inputs live on an autodiff device. Only where [`applies`] says so.
pub(crate) fn recurrence(
    gx: Tensor<2>,
    weight_hh: Tensor<2>,
    b_hn: Tensor<1>,
    keep: Option<Tensor<2>>,
    batch: usize,
    all_steps: bool,
) -> Tensor<2> {
    let keep = match keep {
        Some(mask) => Keep::Mask(mask.into_dispatch()),
        None => Keep::All,
    };
    Tensor::from_dispatch(<Dispatch as GruBackend>::gru_recurrence(
        gx.into_dispatch(),
        weight_hh.into_dispatch(),
        b_hn.into_dispatch(),
        keep,
        batch,
        all_steps,
    ))
}

/// A Flex tensor's values as contiguous f32, borrowed when they already are.
fn f32s(tensor: &FlexTensor) -> Cow<'_, [f32]> {
    if tensor.dtype() == DType::F32
        && let Some(values) = tensor.as_slice::<f32>()
    {
        return Cow::Borrowed(values);
    }
    let data = tensor.clone().into_data().convert::<f32>();
    Cow::Owned(data.try_to_vec::<f32>().expect("converted to f32 above"))
}

fn flex(values: Vec<f32>, shape: [usize; 2]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// The forward pass on Flex primitives; `save` also returns what the backward needs.
fn run_forward(
    gx: &FlexTensor,
    weight_hh: &FlexTensor,
    b_hn: &FlexTensor,
    keep: Option<&FlexTensor>,
    batch: usize,
    all_steps: bool,
    save: bool,
) -> (FlexTensor, Option<kernel::Saved>) {
    let hidden = b_hn.layout().shape().num_elements();
    let (gx, u, b) = (f32s(gx), f32s(weight_hh), f32s(b_hn));
    let keep = keep.map(f32s);
    let layer = Recurrence {
        gx: &gx,
        input: None,
        u: &u,
        b_hn: &b,
        keep: keep.as_deref(),
        batch,
        hidden,
    };
    let rows = if all_steps {
        layer.seq() * batch
    } else {
        batch
    };
    let (out, saved) = kernel::forward(&layer, all_steps, save);
    (flex(out, [rows, hidden]), saved)
}

impl GruBackend for Flex {
    fn gru_recurrence(
        gx: FlexTensor,
        weight_hh: FlexTensor,
        b_hn: FlexTensor,
        keep: Keep<Self>,
        batch: usize,
        all_steps: bool,
    ) -> FlexTensor {
        let keep = match &keep {
            Keep::Mask(mask) => Some(mask),
            Keep::All => None,
        };
        run_forward(&gx, &weight_hh, &b_hn, keep, batch, all_steps, false).0
    }
}

/// The hand-written backward step of [`GruBackend::gru_recurrence`] (BPTT, fused like the
/// forward pass); parents `gx`, `weight_hh`, `b_hn`.
#[derive(Debug)]
struct GruRecurrenceBackward;

impl Backward<Flex, 3> for GruRecurrenceBackward {
    type State = Arc<kernel::Saved>;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [gx_node, u_node, b_node] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let g = kernel::backward(&ops.state, &f32s(&grad));
        let hidden = g.b_hn.len();
        if let Some(node) = gx_node {
            let rows = g.gx.len() / (3 * hidden);
            grads.register::<Flex>(node.id, flex(g.gx, [rows, 3 * hidden]));
        }
        if let Some(node) = u_node {
            grads.register::<Flex>(node.id, flex(g.u, [hidden, 3 * hidden]));
        }
        if let Some(node) = b_node {
            let b = FlexTensor::from_data(TensorData::new(g.b_hn, [hidden]));
            grads.register::<Flex>(node.id, b);
        }
    }
}

impl<C: CheckpointStrategy> GruBackend for Autodiff<Flex, C> {
    fn gru_recurrence(
        gx: FloatTensor<Self>,
        weight_hh: FloatTensor<Self>,
        b_hn: FloatTensor<Self>,
        keep: Keep<Self>,
        batch: usize,
        all_steps: bool,
    ) -> FloatTensor<Self> {
        // The mask is data, not a parameter: no gradient flows to it.
        let keep = match keep {
            Keep::Mask(mask) => Some(mask.into_primitive()),
            Keep::All => None,
        };
        let prep = GruRecurrenceBackward
            .prepare::<C>([gx.node(), weight_hh.node(), b_hn.node()])
            .compute_bound()
            .stateful();
        let (gx, u, b) = (gx.primitive(), weight_hh.primitive(), b_hn.primitive());
        match prep {
            OpsKind::Tracked(prep) => {
                let (out, saved) = run_forward(gx, u, b, keep.as_ref(), batch, all_steps, true);
                let saved = saved.expect("the forward pass saves when asked");
                prep.finish(Arc::new(saved), out)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(run_forward(gx, u, b, keep.as_ref(), batch, all_steps, false).0)
            }
        }
    }
}
