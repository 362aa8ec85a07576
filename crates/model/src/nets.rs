//! The deep baselines of `iotids compare`: a multi-layer perceptron on single records, and a
//! vanilla (Elman) RNN and an LSTM on the same windows as the GRU. They train with the
//! GRU's loop ([`crate::train::train`]) through [`Network`], so the comparison differs in
//! the architecture alone.
//!
//! The layers are burn's (`Linear`, `Rnn`, `Lstm`, with burn's initialisers). What is
//! written here is the masking: burn's recurrent modules have no padding mask, and windows
//! are left-padded with zero records, which would otherwise move the state before the
//! first real record (`tanh(b) ≠ 0`). The recurrence therefore runs one step at a time
//! through burn's module and keeps the previous state where the mask is 0, so a padded
//! window of `n` records gives exactly the state of those `n` records alone (tested), as the
//! GRU's does.

use burn::config::Config;
use burn::module::Module;
use burn::nn::{
    Dropout, DropoutConfig, Linear, LinearConfig, Lstm, LstmConfig, LstmState, Rnn, RnnConfig,
    RnnState,
};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};

use crate::error::Error;
use crate::network::{Network, NetworkConfig};

/// A multi-layer perceptron: `layers` hidden layers of `hidden` ReLU units and a linear head.
/// It reads the last record of each window, so it is a single-record model at any window.
#[derive(Config, Debug)]
pub struct MlpConfig {
    /// Features per record.
    pub input: usize,
    /// Units of each hidden layer.
    pub hidden: usize,
    /// Classes.
    pub classes: usize,
    /// Hidden layers (2).
    #[config(default = 2)]
    pub layers: usize,
    /// Dropout after each hidden layer while training (0).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Seed of the initial weights (42).
    #[config(default = 42)]
    pub seed: u64,
}

/// See [`MlpConfig`].
#[derive(Module, Debug)]
pub struct Mlp {
    /// Hidden layers, input first.
    pub hidden: Vec<Linear>,
    /// Dropout after each hidden layer, active only while training.
    pub dropout: Dropout,
    /// Last hidden layer to class logits.
    pub head: Linear,
}

impl NetworkConfig for MlpConfig {
    type Net = Mlp;

    fn check(&self) -> crate::Result<()> {
        check_sizes(self.input, self.hidden, self.classes, self.dropout)?;
        if self.layers == 0 {
            return Err(Error::config("layers", "0".into(), "at least 1"));
        }
        Ok(())
    }

    fn input(&self) -> usize {
        self.input
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn init(&self, device: &Device) -> Mlp {
        device.seed(self.seed);
        let hidden = (0..self.layers)
            .map(|l| {
                let input = if l == 0 { self.input } else { self.hidden };
                LinearConfig::new(input, self.hidden).init(device)
            })
            .collect();
        Mlp {
            hidden,
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(self.hidden, self.classes).init(device),
        }
    }
}

impl Network for Mlp {
    fn forward(&self, input: Tensor<3>, _mask: Option<Tensor<2>>) -> Tensor<2> {
        let [batch, seq, features] = input.dims();
        // A window ends at the record it classifies, so its last step is never padding.
        let mut x = input
            .slice([0..batch, seq - 1..seq, 0..features])
            .reshape([batch, features]);
        for layer in &self.hidden {
            x = self.dropout.forward(relu(layer.forward(x)));
        }
        self.head.forward(x)
    }
}

/// Which recurrent cell a [`RecurrentConfig`] builds.
#[derive(Config, Debug, Copy, PartialEq, Eq)]
pub enum Cell {
    /// Elman's RNN: `h_t = tanh(W x_t + b_x + U h_{t-1} + b_h)`.
    Rnn,
    /// Hochreiter and Schmidhuber's LSTM with a forget gate (PyTorch's `nn.LSTM`).
    Lstm,
}

/// One recurrent layer of `hidden` units over the window and a linear head on its last state.
#[derive(Config, Debug)]
pub struct RecurrentConfig {
    /// Features per record.
    pub input: usize,
    /// Units of the hidden state.
    pub hidden: usize,
    /// Classes.
    pub classes: usize,
    /// The cell.
    pub cell: Cell,
    /// Dropout on the final state while training (0).
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Seed of the initial weights (42).
    #[config(default = 42)]
    pub seed: u64,
}

/// burn's recurrent layer of a [`Recurrent`].
#[derive(Module, Debug)]
// One per network: the LSTM's four gates in place cost nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum Layer {
    /// For [`Cell::Rnn`].
    Rnn(Rnn),
    /// For [`Cell::Lstm`].
    Lstm(Lstm),
}

/// See [`RecurrentConfig`].
#[derive(Module, Debug)]
pub struct Recurrent {
    /// The recurrent layer.
    pub layer: Layer,
    /// Dropout on the final state, active only while training.
    pub dropout: Dropout,
    /// Final state to class logits.
    pub head: Linear,
}

impl NetworkConfig for RecurrentConfig {
    type Net = Recurrent;

    fn check(&self) -> crate::Result<()> {
        check_sizes(self.input, self.hidden, self.classes, self.dropout)
    }

    fn input(&self) -> usize {
        self.input
    }

    fn classes(&self) -> usize {
        self.classes
    }

    fn init(&self, device: &Device) -> Recurrent {
        device.seed(self.seed);
        let layer = match self.cell {
            Cell::Rnn => Layer::Rnn(RnnConfig::new(self.input, self.hidden, true).init(device)),
            Cell::Lstm => Layer::Lstm(LstmConfig::new(self.input, self.hidden, true).init(device)),
        };
        Recurrent {
            layer,
            dropout: DropoutConfig::new(self.dropout).init(),
            head: LinearConfig::new(self.hidden, self.classes).init(device),
        }
    }
}

impl Recurrent {
    /// The hidden state after the window's last record.
    ///
    /// # Shapes
    ///
    /// - input: `[batch, seq, features]`
    /// - mask: `[batch, seq]`, 1.0 at real records
    /// - output: `[batch, hidden]`
    pub fn final_state(&self, input: Tensor<3>, mask: Option<Tensor<2>>) -> Tensor<2> {
        let [batch, seq, features] = input.dims();
        let device = input.device();
        let step = |t: usize| input.clone().slice([0..batch, t..t + 1, 0..features]);
        // Where the mask is 0 the previous state is kept: old + keep · (new − old).
        let keep = |t: usize, old: Tensor<2>, new: Tensor<2>| match &mask {
            Some(m) => {
                let keep = m.clone().slice([0..batch, t..t + 1]); // [batch, 1], broadcast
                old.clone() + (new - old) * keep
            }
            None => new,
        };
        match &self.layer {
            Layer::Lstm(lstm) => {
                let zeros = || Tensor::<2>::zeros([batch, lstm.d_hidden], &device);
                let (mut cell, mut hidden) = (zeros(), zeros());
                for t in 0..seq {
                    let state = LstmState::new(cell.clone(), hidden.clone());
                    let (_, next) = lstm.forward(step(t), Some(state));
                    let (next_cell, next_hidden) = next.unpack();
                    cell = keep(t, cell, next_cell);
                    hidden = keep(t, hidden, next_hidden);
                }
                hidden
            }
            Layer::Rnn(rnn) => {
                let mut hidden = Tensor::<2>::zeros([batch, rnn.d_hidden], &device);
                for t in 0..seq {
                    let (_, next) = rnn.forward(step(t), Some(RnnState::new(hidden.clone())));
                    hidden = keep(t, hidden, next.hidden);
                }
                hidden
            }
        }
    }
}

impl Network for Recurrent {
    fn forward(&self, input: Tensor<3>, mask: Option<Tensor<2>>) -> Tensor<2> {
        let state = self.final_state(input, mask);
        self.head.forward(self.dropout.forward(state))
    }
}

fn check_sizes(input: usize, hidden: usize, classes: usize, dropout: f64) -> crate::Result<()> {
    if input == 0 {
        return Err(Error::config("input", "0".into(), "at least 1 feature"));
    }
    if hidden == 0 {
        return Err(Error::config("hidden", "0".into(), "at least 1"));
    }
    if classes < 2 {
        return Err(Error::config("classes", classes.to_string(), "at least 2"));
    }
    if !(0.0..1.0).contains(&dropout) {
        return Err(Error::config("dropout", dropout.to_string(), "in [0, 1)"));
    }
    Ok(())
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use burn::tensor::{TensorData, Tolerance};

    use super::*;
    use crate::examples::{Examples, score};
    use crate::train::{TrainConfig, train};

    fn tensor3(values: &[f32], dims: [usize; 3]) -> Tensor<3> {
        Tensor::from_data(
            TensorData::new(values.to_vec(), dims),
            &crate::backend::device(),
        )
    }

    fn recurrent(cell: Cell) -> Recurrent {
        RecurrentConfig::new(2, 3, 2, cell).init(&crate::backend::device())
    }

    /// Two records, then the same two records left-padded to four: one final state.
    #[test]
    fn padding_leaves_the_state_of_the_real_records() {
        let records = [0.3, -0.7, 0.9, 0.1];
        let padded: Vec<f32> = [0.0; 4].iter().chain(&records).copied().collect();
        let mask = Tensor::<2>::from_data(
            TensorData::new(vec![0.0f32, 0.0, 1.0, 1.0], [1, 4]),
            &crate::backend::device(),
        );
        for cell in [Cell::Rnn, Cell::Lstm] {
            let net = recurrent(cell);
            let alone = net.final_state(tensor3(&records, [1, 2, 2]), None);
            let masked = net.final_state(tensor3(&padded, [1, 4, 2]), Some(mask.clone()));
            let unmasked = net.final_state(tensor3(&padded, [1, 4, 2]), None);
            alone
                .to_data()
                .assert_approx_eq::<f32>(&masked.to_data(), Tolerance::absolute(1e-6));
            let gap = (alone - unmasked).abs().sum().into_scalar::<f32>();
            assert!(
                gap > 1e-3,
                "{cell:?}: without the mask the padding moves the state"
            );
        }
    }

    /// Stepping through burn's module one record at a time is burn's own whole-sequence pass.
    #[test]
    fn stepping_equals_burns_forward_over_the_sequence() {
        let x: Vec<f32> = (0..3 * 4 * 2)
            .map(|i| ((i * 7) % 11) as f32 / 10.0 - 0.5)
            .collect();
        for cell in [Cell::Rnn, Cell::Lstm] {
            let net = recurrent(cell);
            let input = tensor3(&x, [3, 4, 2]);
            let ours = net.final_state(input.clone(), None);
            let burns = match &net.layer {
                Layer::Rnn(rnn) => rnn.forward(input, None).1.hidden,
                Layer::Lstm(lstm) => lstm.forward(input, None).1.hidden,
            };
            ours.to_data()
                .assert_approx_eq::<f32>(&burns.to_data(), Tolerance::absolute(1e-6));
        }
    }

    /// A one-unit RNN with hand-set weights against the formula worked by hand.
    #[test]
    fn rnn_step_is_tanh_of_the_affine_sum() {
        let device = crate::backend::device();
        let mut net = RecurrentConfig::new(1, 1, 2, Cell::Rnn).init(&device);
        let set = |l: &Linear, w: f32, b: f32| Linear {
            weight: burn::module::Param::from_data(TensorData::new(vec![w], [1, 1]), &device),
            bias: l
                .bias
                .as_ref()
                .map(|_| burn::module::Param::from_data(TensorData::new(vec![b], [1]), &device)),
        };
        if let Layer::Rnn(rnn) = &mut net.layer {
            rnn.gate.input_transform = set(&rnn.gate.input_transform, 0.5, 0.1);
            rnn.gate.hidden_transform = set(&rnn.gate.hidden_transform, -2.0, 0.2);
        }
        let h = net.final_state(tensor3(&[1.0, 3.0], [1, 2, 1]), None);
        // h1 = tanh(0.5·1 + 0.1 + 0.2) = tanh(0.8); h2 = tanh(0.5·3 + 0.3 − 2·h1)
        let h1 = 0.8f32.tanh();
        let h2 = (1.5 + 0.3 - 2.0 * h1).tanh();
        let got = h.into_scalar::<f32>();
        assert!((got - h2).abs() < 1e-6, "{got} vs {h2}");
    }

    /// Flows of two records whose class only the first record tells: the LSTM, reading the
    /// window of two, learns them; the MLP, reading the last record, cannot beat chance.
    #[test]
    fn lstm_learns_context_the_mlp_cannot_see() {
        let (seq, labels, _) = crate::train::tests::flows(200);
        let second: Vec<usize> = (0..labels.len()).filter(|r| r % 2 == 1).collect();
        let (train_rows, val_rows) = second.split_at(160);
        let ex = |rows| Examples {
            sequences: &seq,
            labels: &labels,
            rows,
        };
        let cfg = TrainConfig {
            epochs: 60,
            batch_size: 32,
            learning_rate: 0.02,
            patience: 0,
            ..TrainConfig::default()
        };
        let accuracy = |p: Vec<u32>| {
            let right = p.iter().zip(val_rows).filter(|(p, r)| **p == labels[**r]);
            right.count() as f64 / val_rows.len() as f64
        };
        let lstm = RecurrentConfig::new(2, 8, 2, Cell::Lstm);
        let (net, _) = train(
            &lstm,
            &cfg,
            &[1.0, 1.0],
            ex(train_rows),
            ex(val_rows),
            &mut |_| (),
        )
        .unwrap();
        assert_eq!(accuracy(score(&net, ex(val_rows), 16).predictions()), 1.0);
        let mlp = MlpConfig::new(2, 8, 2);
        let (net, _) = train(
            &mlp,
            &cfg,
            &[1.0, 1.0],
            ex(train_rows),
            ex(val_rows),
            &mut |_| (),
        )
        .unwrap();
        let acc = accuracy(score(&net, ex(val_rows), 16).predictions());
        assert!(acc < 0.8, "the last record alone says little: {acc}");
    }
}
