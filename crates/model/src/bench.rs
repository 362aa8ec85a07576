//! GRU throughput on the configuration, for `iotids bench-gru`: training and
//! inference samples per second and single-record latency, medians of repeated timed runs
//! on random data; and the process's peak memory.
//!
//! Training is burn's (autodiff device, fused GRU layer, cross-entropy, Adam), exactly the
//! step [`crate::train`] takes. Inference is measured twice: through burn (`model.valid()`,
//! the plain CPU device) and through [`FrozenGru`](crate::frozen::FrozenGru), the burn-free copy a detector serves
//! with. `benches/gru_peers.py` measures PyTorch and Keras on the same configuration.

use std::hint::black_box;
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::gru::{GruClassifier, GruConfig};

/// What to measure. [`Default`] is the configuration: 64 features, hidden 64, one
/// layer, 15 classes, batch 256, windows of 1 and 16 records, Adam, f32.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GruBenchConfig {
    /// Features per record (64).
    pub input: usize,
    /// Hidden state size (64).
    pub hidden: usize,
    /// GRU layers (1).
    pub layers: usize,
    /// Classes (15).
    pub classes: usize,
    /// Windows per batch, for training and batch inference (256).
    pub batch: usize,
    /// Window lengths `T` to measure ([1, 16]).
    pub windows: Vec<usize>,
    /// Timed runs per figure; the median is reported (3).
    pub repeat: usize,
    /// Least duration of one timed run, seconds (1.0).
    pub min_seconds: f64,
    /// Threads of the rayon pool everything runs in; `None` is rayon's default (one per
    /// core, or `RAYON_NUM_THREADS`). The pool is built for the measurement and everything
    /// runs on it, as training should (see [`gru_throughput`]).
    pub threads: Option<usize>,
    /// Class-weighted cross-entropy (as the pipeline trains) rather than plain (true).
    pub class_weights: bool,
    /// Adam's step size (1e-3).
    pub learning_rate: f64,
    /// Seed of the weights and the random data (42).
    pub seed: u64,
}

impl Default for GruBenchConfig {
    fn default() -> Self {
        Self {
            input: 64,
            hidden: 64,
            layers: 1,
            classes: 15,
            batch: 256,
            windows: vec![1, 16],
            repeat: 3,
            min_seconds: 1.0,
            threads: None,
            class_weights: true,
            learning_rate: 1e-3,
            seed: 42,
        }
    }
}

/// The figures for one window length.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowBench {
    /// Records per window.
    pub seq: usize,
    /// Training windows per second: forward, loss, backward and Adam step on batches of
    /// [`GruBenchConfig::batch`].
    pub train_samples_per_s: f64,
    /// Inference windows per second through [`FrozenGru`](crate::frozen::FrozenGru) (batch of
    /// [`GruBenchConfig::batch`]).
    pub infer_samples_per_s: f64,
    /// Inference windows per second through burn (`model.valid()`, same batch).
    pub infer_burn_samples_per_s: f64,
}

/// Result of [`gru_throughput`]; serialises to the JSON `iotids bench-gru` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GruBenchResult {
    /// What was measured.
    pub config: GruBenchConfig,
    /// Threads the measurements ran on.
    pub threads: usize,
    /// The instruction set the fused kernels dispatched to.
    pub simd: String,
    /// One entry per window length, in the config's order.
    pub windows: Vec<WindowBench>,
    /// Microseconds to score one window of one record through [`FrozenGru`](crate::frozen::FrozenGru).
    pub latency_t1_us: f64,
    /// The same through burn (`model.valid()` on a `[1, 1, input]` tensor).
    pub latency_t1_burn_us: f64,
    /// Peak resident memory (`VmHWM`) after the inference measurements, which run first
    /// with the peak reset before them; KiB. `None` where `/proc` cannot tell.
    pub peak_rss_inference_kib: Option<u64>,
    /// Peak resident memory at the end, training included; KiB.
    pub peak_rss_kib: Option<u64>,
}

/// Measures the GRU's training and inference throughput and single-record latency.
///
/// Inference first (its peak memory is then read), training after. Every figure is the
/// median of [`repeat`](GruBenchConfig::repeat) runs of at least
/// [`min_seconds`](GruBenchConfig::min_seconds) each, after a warm-up.
///
/// Everything runs inside a rayon pool built here (`pool.install`). Training called from
/// a thread outside any pool, such as `main`, pays for every one of burn's parallel
/// operations a hand-over to the pool and back: measured at half the throughput at
/// `T = 16`. A training loop gets the same speed by running inside
/// `rayon::ThreadPoolBuilder::new().build()?.install(|| ...)`.
///
/// # Errors
///
/// [`Error::Config`] if a field is out of range (the model's own checks, and `batch`,
/// `windows`, `repeat`, `min_seconds`, `threads` at least 1 or positive).
pub fn gru_throughput(cfg: &GruBenchConfig) -> crate::Result<GruBenchResult> {
    let bad = |field, value, allowed| Err(Error::config(field, value, allowed));
    model_config(cfg).check()?;
    if cfg.batch == 0 {
        return bad("batch", "0".into(), "at least 1");
    }
    if cfg.windows.is_empty() || cfg.windows.contains(&0) {
        let value = format!("{:?}", cfg.windows);
        return bad("windows", value, "one or more lengths, each at least 1");
    }
    if cfg.repeat == 0 {
        return bad("repeat", "0".into(), "at least 1");
    }
    if !(cfg.min_seconds > 0.0 && cfg.min_seconds.is_finite()) {
        let value = cfg.min_seconds.to_string();
        return bad("min_seconds", value, "a positive number of seconds");
    }
    if !(cfg.learning_rate > 0.0 && cfg.learning_rate.is_finite()) {
        let value = cfg.learning_rate.to_string();
        return bad("learning_rate", value, "a positive number");
    }
    if cfg.threads == Some(0) {
        return bad("threads", "0".into(), "at least 1");
    }
    // Always a pool of our own, and the measurements inside it: burn's CPU backend and
    // the fused kernels fork and join on rayon many times per step, which costs far less
    // from a thread of the pool than from outside it (measured: half the training
    // throughput at T = 16 when called from the main thread). 0 is rayon's default count.
    let threads = cfg.threads.unwrap_or(0);
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => Ok(pool.install(|| run(cfg))),
        Err(e) => bad(
            "threads",
            format!("{threads} ({e})"),
            "a thread count rayon can start",
        ),
    }
}

/// Peak resident memory of this process so far (`VmHWM` of `/proc/self/status`), KiB.
/// `None` where there is no such file (not Linux) or no such line.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resident memory of this process now (`VmRSS` of `/proc/self/status`), KiB.
pub fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Resets the peak [`peak_rss_kib`] reports to the current resident memory (Linux 4.0 and
/// later: `5` written to `/proc/self/clear_refs`). False if the kernel refused.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

fn model_config(cfg: &GruBenchConfig) -> GruConfig {
    GruConfig::new(cfg.input, cfg.hidden, cfg.classes)
        .with_layers(cfg.layers)
        .with_seed(cfg.seed)
}

fn run(cfg: &GruBenchConfig) -> GruBenchResult {
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let plain = Device::flex();
    let model = model_config(cfg).init(&plain);
    let frozen = model.to_frozen();
    let mut windows: Vec<WindowBench> = Vec::new();

    reset_peak_rss();
    let mut infer = Vec::new();
    for &seq in &cfg.windows {
        let x = random_windows(cfg, seq, cfg.batch, &mut rng);
        let fast = rate(cfg, cfg.batch, || {
            black_box(frozen.logits(&x, cfg.batch, seq, None));
        });
        let xt = Tensor::<3>::from_data(TensorData::new(x, [cfg.batch, seq, cfg.input]), &plain);
        let burn = rate(cfg, cfg.batch, || {
            black_box(model.forward(xt.clone(), None).into_data());
        });
        infer.push((fast, burn));
    }
    let one = random_windows(cfg, 1, 1, &mut rng);
    let latency_t1_us = 1e6
        / rate(cfg, 1, || {
            black_box(frozen.logits(&one, 1, 1, None));
        });
    let one_t = Tensor::<3>::from_data(TensorData::new(one, [1, 1, cfg.input]), &plain);
    let latency_t1_burn_us = 1e6
        / rate(cfg, 1, || {
            black_box(model.forward(one_t.clone(), None).into_data());
        });
    let peak_rss_inference_kib = peak_rss_kib();

    for (&seq, (fast, burn)) in cfg.windows.iter().zip(infer) {
        let train = train_rate(cfg, seq, &mut rng);
        windows.push(WindowBench {
            seq,
            train_samples_per_s: train,
            infer_samples_per_s: fast,
            infer_burn_samples_per_s: burn,
        });
    }
    GruBenchResult {
        config: cfg.clone(),
        threads: rayon::current_num_threads(),
        simd: simd_name(),
        windows,
        latency_t1_us,
        latency_t1_burn_us,
        peak_rss_inference_kib,
        peak_rss_kib: peak_rss_kib(),
    }
}

/// Training windows per second at window length `seq`.
fn train_rate(cfg: &GruBenchConfig, seq: usize, rng: &mut ChaCha8Rng) -> f64 {
    let device = Device::flex().autodiff();
    let x = random_windows(cfg, seq, cfg.batch, rng);
    let x = Tensor::<3>::from_data(TensorData::new(x, [cfg.batch, seq, cfg.input]), &device);
    let y: Vec<i64> = (0..cfg.batch)
        .map(|_| rng.random_range(0..cfg.classes as i64))
        .collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(y, [cfg.batch]), &device);
    // Weights as the pipeline's n / (k · n_c) would give for uneven classes.
    let weights = (0..cfg.classes).map(|c| 0.5 + c as f32 / cfg.classes as f32);
    let loss_fn = CrossEntropyLossConfig::new()
        .with_weights(cfg.class_weights.then(|| weights.collect()))
        .init(&device);
    let mut model: Option<GruClassifier> = Some(model_config(cfg).init(&device));
    let mut optim = AdamConfig::new().init();
    rate(cfg, cfg.batch, || {
        let net = model.take().expect("put back after every step");
        let loss = loss_fn.forward(net.forward(x.clone(), None), y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        model = Some(optim.step(cfg.learning_rate, net, grads));
    })
}

/// Median over [`GruBenchConfig::repeat`] runs of `units` per call of `f` divided by the
/// seconds per call, after a warm-up of a fifth of a run.
fn rate(cfg: &GruBenchConfig, units: usize, mut f: impl FnMut()) -> f64 {
    let timed = |f: &mut dyn FnMut(), seconds: f64| {
        let start = Instant::now();
        let mut calls = 0u64;
        while calls < 3 || start.elapsed().as_secs_f64() < seconds {
            f();
            calls += 1;
        }
        calls as f64 * units as f64 / start.elapsed().as_secs_f64()
    };
    timed(&mut f, cfg.min_seconds / 5.0);
    let mut runs: Vec<f64> = (0..cfg.repeat)
        .map(|_| timed(&mut f, cfg.min_seconds))
        .collect();
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}

/// `batch` random windows `[batch, seq, input]`, features roughly standardised.
fn random_windows(
    cfg: &GruBenchConfig,
    seq: usize,
    batch: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<f32> {
    (0..batch * seq * cfg.input)
        .map(|_| rng.random_range(-1.7..1.7))
        .collect()
}

/// The instruction set pulp dispatches the fused kernels to on this CPU.
fn simd_name() -> String {
    let arch = format!("{:?}", pulp::Arch::new());
    arch.split('(').next().unwrap_or("unknown").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run of the whole measurement on a tiny config: every figure is there and positive
    /// (no speed is asserted; speed is what the function reports).
    #[test]
    fn tiny_run_reports_every_figure() {
        let cfg = GruBenchConfig {
            input: 3,
            hidden: 4,
            classes: 2,
            batch: 5,
            windows: vec![1, 3],
            repeat: 1,
            min_seconds: 0.01,
            threads: Some(1),
            ..GruBenchConfig::default()
        };
        let result = gru_throughput(&cfg).unwrap();
        assert_eq!(result.threads, 1);
        assert_eq!(result.windows.len(), 2);
        for w in &result.windows {
            assert!(w.train_samples_per_s > 0.0 && w.infer_samples_per_s > 0.0);
            assert!(w.infer_burn_samples_per_s > 0.0);
        }
        assert!(result.latency_t1_us > 0.0 && result.latency_t1_burn_us > 0.0);
        assert!(peak_rss_kib().is_some_and(|kib| kib > 0));
        let json = serde_json::to_string(&result).unwrap();
        assert!(json.contains("\"train_samples_per_s\""));

        let zero = GruBenchConfig {
            threads: Some(0),
            ..cfg.clone()
        };
        let err = gru_throughput(&zero).unwrap_err().to_string();
        assert_eq!(err, "invalid model config: threads = 0; at least 1");
        let empty = GruBenchConfig {
            windows: vec![],
            ..cfg
        };
        assert!(gru_throughput(&empty).is_err());
    }
}
