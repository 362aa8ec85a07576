//! A network's weights as one flat vector: the unit federated learning sends, averages and
//! sends back.
//!
//! The order is the module's own visiting order (layers input first, each layer's
//! parameters in field order, then the head), the same on every call and for every network
//! built from the same [`GruConfig`](crate::gru::GruConfig), so vectors from different
//! devices line up coordinate by coordinate.

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::tensor::{Tensor, TensorData};

use crate::error::Error;
use crate::gru::GruClassifier;

/// Every float parameter of `model`, concatenated in visiting order.
pub fn flatten(model: &GruClassifier) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let data = param.val().into_data().convert::<f32>();
            // A float parameter always converts to f32; nothing to collect otherwise.
            if let Ok(v) = data.as_slice::<f32>() {
                self.0.extend_from_slice(v);
            }
        }
    }
    let mut c = Collect(Vec::with_capacity(model.num_params()));
    model.visit(&mut c);
    c.0
}

/// `model` with its float parameters replaced by `flat` (as [`flatten`] lays them out).
/// Parameter ids and whether they record gradients are kept, so a training-device model
/// stays trainable.
///
/// # Errors
///
/// [`Error::Config`] when `flat` has another length than the model's parameter count.
pub fn load_flat(model: GruClassifier, flat: &[f32]) -> crate::Result<GruClassifier> {
    let n = model.num_params();
    if flat.len() != n {
        return Err(Error::Config {
            field: "weights",
            value: flat.len().to_string(),
            allowed: "one value per model parameter (vectors from a network of another shape don't fit)",
        });
    }
    struct Load<'a> {
        flat: &'a [f32],
        at: usize,
    }
    impl ModuleMapper for Load<'_> {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let at = &mut self.at;
            let flat = self.flat;
            param.map(|t| {
                let shape = t.shape();
                let len = shape.num_elements();
                let data = TensorData::new(flat[*at..*at + len].to_vec(), shape);
                *at += len;
                let device = t.device();
                let fresh = Tensor::from_data(data, &device);
                if t.is_require_grad() {
                    fresh.require_grad()
                } else {
                    fresh
                }
            })
        }
    }
    Ok(model.map(&mut Load { flat, at: 0 }))
}

/// A classifier of shape `cfg` with the flat weights `flat`, built directly (no random
/// initialisation to overwrite): how a device turns the model it receives into a network.
///
/// # Errors
///
/// [`Error::Config`] when `flat` has another length than the shape's parameter count.
pub fn from_flat(
    cfg: &crate::gru::GruConfig,
    device: &burn::tensor::Device,
    flat: &[f32],
) -> crate::Result<GruClassifier> {
    cfg.check()?;
    let (h, i, c) = (cfg.hidden, cfg.input, cfg.classes);
    let per_layer = |input: usize| input * 3 * h + h * 3 * h + 6 * h;
    let n = per_layer(i) + (cfg.layers - 1) * per_layer(h) + h * c + c;
    if flat.len() != n {
        return Err(Error::Config {
            field: "weights",
            value: flat.len().to_string(),
            allowed: "one value per model parameter (vectors from a network of another shape don't fit)",
        });
    }
    let mut at = 0;
    Ok(cfg.build(device, |shape| {
        let len: usize = shape.iter().product();
        let data = TensorData::new(flat[at..at + len].to_vec(), shape.to_vec());
        at += len;
        data
    }))
}

/// The squared distance `Σ (w - anchor)²` between `model`'s parameters and the flat vector
/// `anchor`, as a differentiable scalar: FedProx's proximal term is `μ/2` times it.
pub(crate) fn squared_distance(model: &impl Module, anchor: &[Tensor<1>]) -> Option<Tensor<1>> {
    struct Distance<'a> {
        anchor: &'a [Tensor<1>],
        next: usize,
        sum: Option<Tensor<1>>,
    }
    impl ModuleVisitor for Distance<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let Some(a) = self.anchor.get(self.next) else {
                return;
            };
            self.next += 1;
            let w = param.val();
            let n = w.shape().num_elements();
            let d = (w.reshape([n]) - a.clone()).powi_scalar(2).sum();
            self.sum = Some(match self.sum.take() {
                Some(s) => s + d,
                None => d,
            });
        }
    }
    let mut v = Distance {
        anchor,
        next: 0,
        sum: None,
    };
    model.visit(&mut v);
    v.sum
}

/// `flat` cut into one 1-D constant tensor per parameter of `model`, on `model`'s device:
/// the anchor of [`squared_distance`].
pub(crate) fn anchor_tensors(model: &GruClassifier, flat: &[f32]) -> Vec<Tensor<1>> {
    struct Cut<'a> {
        flat: &'a [f32],
        at: usize,
        out: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for Cut<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let w = param.val();
            let n = w.shape().num_elements();
            let end = (self.at + n).min(self.flat.len());
            let data = TensorData::new(self.flat[self.at..end].to_vec(), [end - self.at]);
            self.out.push(Tensor::from_data(data, &w.device()));
            self.at = end;
        }
    }
    let mut c = Cut {
        flat,
        at: 0,
        out: Vec::new(),
    };
    model.visit(&mut c);
    c.out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gru::GruConfig;

    #[test]
    fn flatten_then_load_round_trips_and_counts_every_parameter() {
        let cfg = GruConfig::new(3, 4, 2).with_seed(7);
        let device = crate::backend::device();
        let a = cfg.init(&device);
        let flat = flatten(&a);
        // One layer: W_ih 3×12, W_hh 4×12, two biases of 12; head 4×2 + 2.
        assert_eq!(flat.len(), 3 * 12 + 4 * 12 + 12 + 12 + 4 * 2 + 2);
        let b = cfg.clone().with_seed(8).init(&device);
        assert_ne!(flatten(&b), flat);
        let b = load_flat(b, &flat).unwrap();
        assert_eq!(flatten(&b), flat);
        let shifted: Vec<f32> = flat.iter().map(|v| v + 1.0).collect();
        let c = load_flat(b, &shifted).unwrap();
        assert_eq!(flatten(&c), shifted);
        assert!(load_flat(c, &flat[1..]).is_err());
        // Built directly from the vector: the same network.
        let d = from_flat(&cfg, &device, &shifted).unwrap();
        assert_eq!(flatten(&d), shifted);
        assert!(from_flat(&cfg, &device, &shifted[1..]).is_err());
        let two = GruConfig::new(3, 4, 2).with_layers(2);
        let n = flatten(&two.init(&device)).len();
        assert_eq!(
            flatten(&from_flat(&two, &device, &vec![0.5; n]).unwrap()),
            vec![0.5; n]
        );
    }

    #[test]
    fn a_trainable_model_stays_trainable_after_loading() {
        let cfg = GruConfig::new(3, 4, 2).with_seed(7);
        let m = cfg.init(&crate::backend::training_device());
        let flat = flatten(&m);
        let m = load_flat(m, &flat).unwrap();
        let anchor: Vec<f32> = flat.iter().map(|v| v - 0.5).collect();
        let anchors = anchor_tensors(&m, &anchor);
        let d = squared_distance(&m, &anchors).unwrap();
        // Every coordinate is 0.5 away: Σ 0.25.
        let value = d.clone().into_scalar::<f32>();
        assert!((value - 0.25 * flat.len() as f32).abs() < 1e-3, "{value}");
        // d/dw Σ (w - a)² = 2 (w - a) = 1.0 for every parameter.
        let grads = d.backward();
        let g = m.head.weight.grad(&grads).unwrap();
        let g = g.into_data().convert::<f32>();
        assert!(
            g.as_slice::<f32>()
                .unwrap()
                .iter()
                .all(|&x| (x - 1.0).abs() < 1e-6)
        );
    }
}
