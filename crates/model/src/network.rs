//! What the shared training loop ([`crate::train`]) needs of a network: windows of records
//! in, class logits out, built from a config that knows its input width and classes.
//!
//! The GRU detector is one such network; the deep baselines of `iotids compare` ([`crate::nets`]:
//! MLP, vanilla RNN, LSTM) are the others. All of them train with the same loss, optimiser,
//! batches, early stopping and best-epoch restore, so a comparison measures the
//! architectures and nothing else.

use burn::module::Module;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};

use crate::examples::{Examples, Scores};

/// A classifier of windows of records.
pub trait Network: Module {
    /// Class logits for each window (softmax is left to the loss and to [`Network::scores`]).
    ///
    /// # Shapes
    ///
    /// - input: `[batch, seq, features]`, windows left-padded with zero records
    /// - mask: `[batch, seq]`, 1.0 at real records and 0.0 at padding; `None`: no padding
    /// - output: `[batch, classes]`
    fn forward(&self, input: Tensor<3>, mask: Option<Tensor<2>>) -> Tensor<2>;

    /// Class probabilities of the windows ending at `ex.rows`, `batch_size` at a time, on a
    /// module without autodiff (`module.valid()`).
    ///
    /// By default burn's forward pass and softmax; the GRU overrides it with its frozen
    /// kernel.
    fn scores(&self, ex: Examples<'_>, batch_size: usize) -> Scores {
        burn_scores(self, ex, batch_size)
    }
}

/// A network's configuration: what the training loop checks the data against and builds.
pub trait NetworkConfig {
    /// The network it builds.
    type Net: Network;

    /// Checks every field against its allowed range.
    ///
    /// # Errors
    ///
    /// [`crate::Error::Config`] naming the first field out of range.
    fn check(&self) -> crate::Result<()>;

    /// Features per record.
    fn input(&self) -> usize;

    /// Classes: the width of the logits.
    fn classes(&self) -> usize;

    /// A new network on `device`, initialised from the config's seed.
    fn init(&self, device: &Device) -> Self::Net;
}

/// [`Network::scores`] by burn's forward pass.
pub fn burn_scores<N: Network>(net: &N, ex: Examples<'_>, batch_size: usize) -> Scores {
    let device = crate::backend::device();
    let (k, f) = (ex.sequences.k, ex.sequences.features.cols);
    let (mut x, mut mask) = (Vec::new(), Vec::new());
    let mut probabilities = Vec::with_capacity(ex.rows.len() * 8);
    let mut classes = 0;
    for rows in ex.rows.chunks(batch_size.max(1)) {
        ex.sequences.batch(rows, &mut x, &mut mask);
        let n = rows.len();
        let input = Tensor::from_data(TensorData::new(x.clone(), [n, k, f]), &device);
        let mask = mask
            .contains(&0.0)
            .then(|| Tensor::from_data(TensorData::new(mask.clone(), [n, k]), &device));
        let p = softmax(net.forward(input, mask), 1);
        classes = p.dims()[1];
        // A tensor of f32 read back as f32 cannot fail; an empty batch adds nothing.
        probabilities.extend(p.into_data().try_to_vec::<f32>().unwrap_or_default());
    }
    Scores {
        probabilities,
        classes,
    }
}
