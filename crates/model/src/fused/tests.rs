//! The fused layer against the composed-ops reference path, forward and backward, and its
//! gradients against finite differences.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::gru::{GruConfig, GruLayer};

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data_as::<f32>().try_into_vec::<f32>().unwrap()
}

fn random(n: usize, scale: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// A layer with `input` features and a `hidden` state whose width is not a whole number of
/// SIMD vectors, weights larger than the default init so the gates leave their linear part.
fn layer(input: usize, hidden: usize, seed: u64, device: &Device) -> GruLayer {
    let model = GruConfig::new(input, hidden, 2)
        .with_seed(seed)
        .init(&Device::flex());
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut weights = model.layers[0].to_torch();
    for v in [
        &mut weights.weight_ih,
        &mut weights.weight_hh,
        &mut weights.bias_ih,
        &mut weights.bias_hh,
    ] {
        *v = random(v.len(), 0.8, &mut rng);
    }
    let model = GruConfig::new(input, hidden, 2)
        .with_seed(seed)
        .init(device);
    model.with_torch_layer(0, &weights).unwrap().layers[0].clone()
}

/// Random inputs `[seq * batch, input]` and, if asked, a random 0/1 mask `[seq * batch, 1]`
/// (any mask, not only left padding: the algebra must hold for all).
fn inputs(
    seq: usize,
    batch: usize,
    input: usize,
    masked: bool,
    seed: u64,
) -> (TensorData, Option<TensorData>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = TensorData::new(
        random(seq * batch * input, 1.5, &mut rng),
        [seq * batch, input],
    );
    let mask = masked.then(|| {
        let m = (0..seq * batch)
            .map(|_| f32::from(rng.random_range(0.0..1.0) > 0.25))
            .collect::<Vec<f32>>();
        TensorData::new(m, [seq * batch, 1])
    });
    (x, mask)
}

const CASES: [(usize, bool); 6] = [
    (1, false),
    (1, true),
    (3, false),
    (3, true),
    (16, false),
    (16, true),
];
const BATCH: usize = 37;
const INPUT: usize = 7;
const HIDDEN: usize = 13;

fn assert_close(got: &[f32], want: &[f32], tol: f32, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: fused {g}, composed {w} (±{tol})"
        );
    }
}

/// All three fused forward routes against the composed path: the whole layer for
/// inference (plain device), the recurrence with its backward recorded (autodiff device),
/// and the recurrence alone on plain tensors (its Flex implementation).
#[test]
fn fused_forward_equals_the_composed_path() {
    let plain = Device::flex();
    let autodiff = plain.clone().autodiff();
    for (seq, masked) in CASES {
        let (x, mask) = inputs(seq, BATCH, INPUT, masked, 100 + seq as u64);
        let what = format!("T={seq} mask={masked}");
        for all_steps in [false, true] {
            let reference = layer(INPUT, HIDDEN, seq as u64, &plain);
            let xp = Tensor::<2>::from_data(x.clone(), &plain);
            let mp = mask.clone().map(|m| Tensor::<2>::from_data(m, &plain));
            let (c_last, c_all) =
                reference.forward_composed(xp.clone(), BATCH, mp.as_ref(), all_steps);
            let (c_last, c_all) = (values(c_last), c_all.map(values));
            assert!(c_last.iter().any(|v| v.abs() > 0.1), "{what}: a flat state");

            let mut routes = Vec::new();
            routes.push((
                "inference",
                reference.forward_fused(xp.clone(), BATCH, mp.as_ref(), all_steps),
            ));
            let tracked = layer(INPUT, HIDDEN, seq as u64, &autodiff);
            let xa = Tensor::<2>::from_data(x.clone(), &autodiff);
            let ma = mask.clone().map(|m| Tensor::<2>::from_data(m, &autodiff));
            routes.push((
                "autodiff",
                tracked.forward_fused(xa, BATCH, ma.as_ref(), all_steps),
            ));
            // The recurrence op on plain tensors, its input half from burn.
            let h = HIDDEN;
            let b_hh = reference.bias_hh.val();
            let rz = b_hh.clone().narrow(0, 0, 2 * h);
            let bias =
                reference.bias_ih.val() + Tensor::cat(vec![rz, Tensor::zeros([h], &plain)], 0);
            let gx = burn::tensor::module::linear(xp, reference.weight_ih.val(), Some(bias));
            let out = super::recurrence(
                gx,
                reference.weight_hh.val(),
                b_hh.narrow(0, 2 * h, h),
                mp,
                BATCH,
                all_steps,
            );
            let last = if all_steps {
                out.clone().narrow(0, (seq - 1) * BATCH, BATCH)
            } else {
                out.clone()
            };
            routes.push(("recurrence", (last, all_steps.then_some(out))));

            for (route, (f_last, f_all)) in routes {
                let what = format!("{what} {route}");
                assert_eq!(f_last.dims(), [BATCH, HIDDEN]);
                assert_close(&values(f_last), &c_last, 1e-5, &format!("{what} final"));
                if let (Some(f_all), Some(c_all)) = (f_all, &c_all) {
                    assert_eq!(f_all.dims(), [seq * BATCH, HIDDEN]);
                    assert_close(&values(f_all), c_all, 1e-5, &format!("{what} all"));
                }
            }
        }
    }
}

/// Gradients of `Σ w ⊙ output` with fixed random `w`, w.r.t. the four parameters and the
/// input, through one path.
fn gradients(
    layer: &GruLayer,
    x: &TensorData,
    mask: Option<&TensorData>,
    all_steps: bool,
    fused: bool,
) -> Vec<(&'static str, Vec<f32>)> {
    let device = Device::flex().autodiff();
    let x = Tensor::<2>::from_data(x.clone(), &device).require_grad();
    let mask = mask.map(|m| Tensor::<2>::from_data(m.clone(), &device));
    let (last, all) = if fused {
        layer.forward_fused(x.clone(), BATCH, mask.as_ref(), all_steps)
    } else {
        layer.forward_composed(x.clone(), BATCH, mask.as_ref(), all_steps)
    };
    let out = if all_steps { all.unwrap() } else { last };
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let [rows, cols] = out.dims();
    let w = Tensor::<2>::from_data(
        TensorData::new(random(rows * cols, 1.0, &mut rng), [rows, cols]),
        &device,
    );
    let grads = (out * w).sum().backward();
    // No gradient is a zero one: at T = 1 the composed path never touches weight_hh.
    let grad = |t: Tensor<2>| {
        let zeros = vec![0.0; t.dims().iter().product()];
        t.grad(&grads).map_or(zeros, values)
    };
    let grad1 = |t: Tensor<1>| {
        let zeros = vec![0.0; t.dims()[0]];
        t.grad(&grads).map_or(zeros, values)
    };
    vec![
        ("weight_ih", grad(layer.weight_ih.val())),
        ("weight_hh", grad(layer.weight_hh.val())),
        ("bias_ih", grad1(layer.bias_ih.val())),
        ("bias_hh", grad1(layer.bias_hh.val())),
        ("input", grad(x)),
    ]
}

/// Every element within 1e-4 of the reference, relative to the larger of its own size and
/// a hundredth of the tensor's largest element (float32 sums of hundreds of terms in another
/// order cannot promise more to an element that cancels to near zero).
fn assert_relative(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if scale == 0.0 {
        assert!(got.iter().all(|&g| g == 0.0), "{what}: {got:?}, want zeros");
        return;
    }
    assert!(scale > 1e-3, "{what}: a vanishing gradient");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (g - w).abs() / w.abs().max(0.01 * scale);
        assert!(
            err <= 1e-4,
            "{what}[{i}]: fused {g}, composed {w}, relative error {err}"
        );
    }
}

#[test]
fn fused_gradients_equal_the_composed_paths_autodiff() {
    let device = Device::flex().autodiff();
    for (seq, masked) in CASES {
        let layer = layer(INPUT, HIDDEN, 10 + seq as u64, &device);
        let (x, mask) = inputs(seq, BATCH, INPUT, masked, 200 + seq as u64);
        for all_steps in [false, true] {
            let fused = gradients(&layer, &x, mask.as_ref(), all_steps, true);
            let composed = gradients(&layer, &x, mask.as_ref(), all_steps, false);
            for ((name, f), (_, c)) in fused.iter().zip(&composed) {
                let what = format!("T={seq} mask={masked} all_steps={all_steps} d{name}");
                assert_relative(f, c, &what);
            }
        }
    }
}

/// Central differences of the fused forward pass (no autodiff) against the fused backward
/// pass, on a layer small enough to perturb every recurrent weight and bias.
#[test]
fn fused_gradients_match_finite_differences() {
    let (batch, seq, input, hidden) = (2, 3, 2, 3);
    let plain = Device::flex();
    let autodiff = plain.clone().autodiff();
    let base = layer(input, hidden, 5, &plain);
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let x = random(seq * batch * input, 1.0, &mut rng);
    let mask = vec![0.0, 1.0, 1.0, 1.0, 1.0, 1.0]; // sequence 0 left-padded by one step
    let w = random(batch * hidden, 1.0, &mut rng);

    // loss(θ) = Σ w ⊙ h_T for a layer with weight_hh and bias_hh replaced, on `device`.
    let loss_and_layer = |u: &[f32], b: &[f32], device: &Device| {
        let mut layer = base.clone();
        layer.weight_hh = burn::module::Param::from_data(
            TensorData::new(u.to_vec(), [hidden, 3 * hidden]),
            device,
        );
        layer.bias_hh =
            burn::module::Param::from_data(TensorData::new(b.to_vec(), [3 * hidden]), device);
        layer.weight_ih = burn::module::Param::from_data(base.weight_ih.val().into_data(), device);
        layer.bias_ih = burn::module::Param::from_data(base.bias_ih.val().into_data(), device);
        let xt = Tensor::<2>::from_data(TensorData::new(x.clone(), [seq * batch, input]), device);
        let mt = Tensor::<2>::from_data(TensorData::new(mask.clone(), [seq * batch, 1]), device);
        let (last, _) = layer.forward_fused(xt, batch, Some(&mt), false);
        let wt = Tensor::<2>::from_data(TensorData::new(w.clone(), [batch, hidden]), device);
        ((last * wt).sum(), layer)
    };
    let u0 = values(base.weight_hh.val());
    let b0 = values(base.bias_hh.val());
    let (loss, layer) = loss_and_layer(&u0, &b0, &autodiff);
    let grads = loss.backward();
    let du = values(layer.weight_hh.val().grad(&grads).unwrap());
    let db = values(layer.bias_hh.val().grad(&grads).unwrap());

    let eval = |u: &[f32], b: &[f32]| -> f64 {
        f64::from(loss_and_layer(u, b, &plain).0.into_scalar::<f32>())
    };
    let eps = 1e-2f32;
    let check = |analytic: f32, plus: f64, minus: f64, what: String| {
        let numeric = ((plus - minus) / (2.0 * f64::from(eps))) as f32;
        assert!(
            (analytic - numeric).abs() <= 2e-3 * (1.0 + numeric.abs()),
            "{what}: backward {analytic}, finite difference {numeric}"
        );
    };
    for i in 0..u0.len() {
        let (mut up, mut down) = (u0.clone(), u0.clone());
        up[i] += eps;
        down[i] -= eps;
        check(
            du[i],
            eval(&up, &b0),
            eval(&down, &b0),
            format!("dweight_hh[{i}]"),
        );
    }
    for i in 0..b0.len() {
        let (mut up, mut down) = (b0.clone(), b0.clone());
        up[i] += eps;
        down[i] -= eps;
        check(
            db[i],
            eval(&u0, &up),
            eval(&u0, &down),
            format!("dbias_hh[{i}]"),
        );
    }
    assert!(
        du.iter().any(|g| g.abs() > 1e-2),
        "vanishing gradient {du:?}"
    );
}
