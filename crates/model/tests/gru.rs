//! The GRU against PyTorch's nn.GRU on the same weights, and trained end to end on a toy
//! problem with the pieces training will use: autodiff device, class-weighted
//! cross-entropy, Adam, and the weights saved to a file and loaded back.
//! (`tests/reference/gru_reference.py` wrote the PyTorch numbers; `--check` re-derives them.)
#![cfg(feature = "flex")]

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use iotids_model::gru::{GruClassifier, GruConfig, TorchGruWeights};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::Value;

fn floats(v: &Value) -> Vec<f32> {
    let all = v.as_array().expect("an array of numbers");
    all.iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn values(t: Tensor<2>) -> Vec<f32> {
    t.into_data_as::<f32>().try_into_vec::<f32>().unwrap()
}

/// PyTorch's final hidden states (`h_n`) of a 2-layer GRU, input 5, hidden 4, on batch 2
/// of 3 steps, against ours on the same weights: the last layer through the 2-layer model,
/// the first layer through a 1-layer model holding only its weights.
#[test]
fn final_states_equal_pytorch_nn_gru() {
    let data: Value = serde_json::from_str(include_str!("fixtures/gru_torch.json")).unwrap();
    let n = |key: &str| data[key].as_u64().unwrap() as usize;
    let (input, hidden, layers) = (n("input_size"), n("hidden_size"), n("num_layers"));
    let (batch, seq) = (n("batch"), n("seq"));
    assert_eq!((input, hidden, layers, batch, seq), (5, 4, 2, 2, 3));
    let weights: Vec<TorchGruWeights> = data["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| TorchGruWeights {
            weight_ih: floats(&l["weight_ih"]),
            weight_hh: floats(&l["weight_hh"]),
            bias_ih: floats(&l["bias_ih"]),
            bias_hh: floats(&l["bias_hh"]),
        })
        .collect();
    let h_n = floats(&data["h_n"]); // [layers, batch, hidden]
    let device = Device::flex();
    let x = TensorData::new(floats(&data["x"]), [batch, seq, input]);

    let check = |model: GruClassifier, want: &[f32], what: &str| {
        let got = values(model.final_state(Tensor::from_data(x.clone(), &device), None));
        assert_eq!(got.len(), want.len());
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-5, "{what}[{i}]: ours {g}, PyTorch {w}");
        }
    };
    let config = GruConfig::new(input, hidden, 2); // reset_after: true by default
    let mut two = config.clone().with_layers(2).init(&device);
    for (k, w) in weights.iter().enumerate() {
        two = two.with_torch_layer(k, w).unwrap();
    }
    check(two, &h_n[batch * hidden..], "layer 2 h_n");
    let one = config
        .init(&device)
        .with_torch_layer(0, &weights[0])
        .unwrap();
    check(one, &h_n[..batch * hidden], "layer 1 h_n");
}

/// Sequences of 6 numbers in [-1, 1]; the class is whether their sum is positive. Only
/// a network that accumulates over the steps can separate them.
fn sign_of_sum(n: usize, seq: usize, seed: u64) -> (Vec<f32>, Vec<i64>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x: Vec<f32> = (0..n * seq).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y = x
        .chunks(seq)
        .map(|s| i64::from(s.iter().sum::<f32>() > 0.0))
        .collect();
    (x, y)
}

fn accuracy(model: &GruClassifier, x: Tensor<3>, y: &[i64]) -> f64 {
    let predicted = model.forward(x, None).argmax(1); // [n, 1]
    let predicted = predicted
        .into_data()
        .convert::<i64>()
        .try_into_vec::<i64>()
        .unwrap();
    let right = predicted.iter().zip(y).filter(|(p, t)| p == t).count();
    right as f64 / y.len() as f64
}

/// Full-batch Adam on the autodiff CPU device, class-weighted cross-entropy; returns the
/// trained model and the loss before and after.
fn train(config: &GruConfig, x: &TensorData, y: &[i64], steps: usize) -> (GruClassifier, f32, f32) {
    let device = Device::flex().autodiff();
    let n = y.len();
    let x = Tensor::<3>::from_data(x.clone(), &device);
    let targets = Tensor::<1, Int>::from_data(TensorData::new(y.to_vec(), [n]), &device);
    // Balanced class weights n / (k * n_c), as the pipeline computes them.
    let positives = y.iter().filter(|&&c| c == 1).count() as f32;
    let weights = vec![
        n as f32 / (2.0 * (n as f32 - positives)),
        n as f32 / (2.0 * positives),
    ];
    let loss_fn = CrossEntropyLossConfig::new()
        .with_weights(Some(weights))
        .init(&device);

    let mut model = config.init(&device);
    let mut optim = AdamConfig::new().init();
    let mut first_loss = None;
    for _ in 0..steps {
        let loss = loss_fn.forward(model.forward(x.clone(), None), targets.clone());
        first_loss.get_or_insert_with(|| loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        model = optim.step(0.01, model, grads);
    }
    let last_loss = loss_fn
        .forward(model.forward(x, None), targets)
        .into_scalar::<f32>();
    (model, first_loss.unwrap(), last_loss)
}

/// 200 Adam steps take a seeded GRU past 95 % training accuracy; two runs end on the same
/// weights; the saved and reloaded model predicts exactly alike.
#[test]
fn learns_the_sign_of_a_sum_reproducibly_and_survives_a_save() {
    let (n, seq) = (256, 6);
    let (x, y) = sign_of_sum(n, seq, 11);
    let x = TensorData::new(x, [n, seq, 1]);
    let config = GruConfig::new(1, 16, 2).with_seed(3);

    let (model, first_loss, last_loss) = train(&config, &x, &y, 200);
    assert!(
        last_loss < 0.3 * first_loss,
        "loss {first_loss} -> {last_loss}"
    );
    // The inference copy: plain device, no autodiff graph.
    let trained = model.valid();
    let plain = Device::flex();
    let x_plain = Tensor::<3>::from_data(x.clone(), &plain);
    let acc = accuracy(&trained, x_plain.clone(), &y);
    assert!(acc > 0.95, "training accuracy {acc}");

    let (again, ..) = train(&config, &x, &y, 200);
    let (w1, w2) = (&trained.layers[0].weight_hh, &again.layers[0].weight_hh);
    assert_eq!(
        values(w1.val()),
        values(w2.val()),
        "same seed, same weights"
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gru.bpk");
    trained.clone().save_file(&path).unwrap();
    let loaded = config.with_seed(99).init(&plain).load_file(&path);
    let (a, b) = (
        trained.forward(x_plain.clone(), None),
        loaded.forward(x_plain, None),
    );
    assert_eq!(values(a), values(b));
}
