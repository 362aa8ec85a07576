//! Runs the GRU benchmark on the issue's configuration and prints its JSON, for measuring
//! without the CLI: `cargo test --release -p iotids-model --test gru_bench -- --ignored
//! --nocapture`. Ignored by default: it takes a minute and asserts no speed (no timed tests;
//! the figures are what it reports). `GRU_BENCH_THREADS` sets the thread count,
//! `GRU_BENCH_SECONDS` the least length of one timed run, `GRU_BENCH_WINDOWS` the window
//! lengths (`1,16`).
#![cfg(feature = "flex")]

use iotids_model::bench::{GruBenchConfig, gru_throughput};

#[test]
#[ignore = "a benchmark run, not a test: run it with --ignored --nocapture"]
fn issue_configuration() {
    let threads = std::env::var("GRU_BENCH_THREADS")
        .ok()
        .and_then(|t| t.parse().ok());
    let mut cfg = GruBenchConfig {
        threads,
        ..GruBenchConfig::default()
    };
    if let Some(seconds) = std::env::var("GRU_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        cfg.min_seconds = seconds;
    }
    if let Ok(windows) = std::env::var("GRU_BENCH_WINDOWS") {
        cfg.windows = windows
            .split(',')
            .filter_map(|w| w.trim().parse().ok())
            .collect();
    }
    let result = gru_throughput(&cfg).expect("the default config is valid");
    println!(
        "{}",
        serde_json::to_string_pretty(&result).expect("serialisable")
    );
}
