//! Command-line flags, and their conversion into the validated option structs of
//! the library crates. The rest of the program never sees a raw flag.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use iotids_data::clean::{Dedup, Outliers};
use iotids_data::pipeline::{PipelineConfig, Scaler, SelectMethod};
use iotids_data::prepare::PrepareConfig;
use iotids_data::split::{SplitConfig, SplitMethod};
use iotids_data::{Format, IngestOptions};
use iotids_model::gru::GruConfig;

/// iotids: IoT network intrusion detection that is honest about its data.
#[derive(Debug, Parser)]
#[command(name = "iotids", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output (-v info, -vv debug, -vvv trace). Logs go to stderr.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// No progress bars and no log output except errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Worker threads (default: one per core).
    #[arg(long, global = true, default_value_t = 0, hide_default_value = true)]
    pub threads: usize,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Summarise a labelled file: class counts and weights, statistics of every
    /// numeric column, rows read / rejected / duplicated.
    Describe {
        file: PathBuf,
        #[command(flatten)]
        ingest: IngestArgs,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Look for what would make results dishonest (identifier columns, single-column
    /// predictors, placeholder-spelling leaks, duplicates). Exit code 1 when it finds any.
    Audit {
        file: PathBuf,
        #[command(flatten)]
        ingest: IngestArgs,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Exit 1 on any finding (`any`), or only on findings the default pipeline
        /// does not neutralise (`unmitigated`).
        #[arg(long, default_value = "any", value_parser = ["any", "unmitigated"])]
        fail_on: String,
        /// Accuracy at which a single column counts as a predictor of the class.
        #[arg(long, default_value_t = 0.99)]
        threshold: f64,
    },
    /// Write GENERATED Edge-IIoTset-schema rows (15 classes, the proportions of the
    /// dataset's class table, protocol-plausible fields per class, the real files'
    /// format quirks). Not real traffic: for demos, tests and scale benchmarks.
    Synth {
        /// Data rows to write.
        #[arg(long)]
        rows: u64,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Equal rows per class instead of the dataset's proportions.
        #[arg(long)]
        balanced: bool,
    },
    /// Clean, split and fit the preprocessing pipeline (fitted on training rows only);
    /// write pipeline.json, the split and, with --write-features, the feature matrices.
    Prepare {
        file: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        ingest: IngestArgs,
        #[command(flatten)]
        prep: PrepArgs,
        /// Also write train/validation/test feature matrices as CSV.
        #[arg(long)]
        write_features: bool,
    },
    /// Train the GRU detector on a labelled file: clean, split, fit the pipeline on the
    /// training rows, train with early stopping on the validation rows, evaluate on the
    /// test rows (or on --test FILE). Writes the model directory (usable by `evaluate`
    /// and `predict`), metrics.json, learning curves, pictures and report.html to --out.
    Train {
        file: PathBuf,
        /// Output and model directory.
        #[arg(long)]
        out: PathBuf,
        /// Evaluate on this labelled file instead of the split's test rows (the training
        /// file is then split into training and validation rows only, in the ratio of
        /// --fractions' first two numbers).
        #[arg(long)]
        test: Option<PathBuf>,
        #[command(flatten)]
        ingest: IngestArgs,
        #[command(flatten)]
        prep: PrepArgs,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Evaluate a trained model on a labelled file: metrics.json, predictions.csv,
    /// pictures and report.html in --out; prints the classification report.
    Evaluate {
        file: PathBuf,
        /// Model directory written by `iotids train`.
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Windows per inference batch.
        #[arg(long, default_value_t = 1024)]
        batch: usize,
    },
    /// Predict the class of every row of a file, labelled or not, streaming it in
    /// batches (files larger than memory are fine). Writes CSV: source line, predicted
    /// class, its probability, one probability column per class (and the true class
    /// when the file has labels).
    Predict {
        file: PathBuf,
        /// Model directory written by `iotids train`.
        #[arg(long)]
        model: PathBuf,
        /// Output CSV (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Rows read per batch.
        #[arg(long, default_value_t = 65_536)]
        batch_rows: usize,
    },
    /// The built-in default job: with no data given, generate a data set with `synth`,
    /// then describe, audit and prepare it, train the GRU on flow windows, evaluate it and
    /// write report.html.
    Demo {
        /// Where to write the generated data and the outputs.
        #[arg(long, default_value = "iotids-demo")]
        out: PathBuf,
        /// Rows of generated data.
        #[arg(long, default_value_t = 60_000)]
        rows: u64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Measure GRU training and inference throughput (samples/s), single-record latency
    /// and peak memory on random data of the configuration (see BENCHMARKS.md;
    /// benches/gru_peers.py runs PyTorch and Keras on the same configuration).
    BenchGru {
        #[command(flatten)]
        args: GruBenchArgs,
    },
    /// Measure ingest + clean throughput and peak memory on a file (see BENCHMARKS.md).
    Bench {
        file: PathBuf,
        #[command(flatten)]
        ingest: IngestArgs,
        /// Repetitions; the median is reported.
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The network and how to train it.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Records per window: 1 classifies each record alone (the seeds' setting); K adds the
    /// K-1 records before it of the same flow (same endpoints and ports, either direction).
    #[arg(long, default_value_t = 1)]
    pub window: usize,
    /// Units of each GRU layer's hidden state.
    #[arg(long, default_value_t = 64)]
    pub hidden: usize,
    /// Stacked GRU layers.
    #[arg(long, default_value_t = 1)]
    pub layers: usize,
    /// Dropout between layers and before the head, during training.
    #[arg(long, default_value_t = 0.0)]
    pub dropout: f64,
    /// The seeds' eq. 3 (reset gate before the recurrent product) instead of the
    /// PyTorch/Keras variant (after it).
    #[arg(long)]
    pub reset_before: bool,
    /// Most epochs.
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Windows per mini-batch.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,
    /// Stop after this many epochs without a lower validation loss (0: never); the best
    /// epoch's weights are kept either way.
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Plain cross-entropy instead of class-weighted.
    #[arg(long)]
    pub no_class_weights: bool,
}

impl ModelArgs {
    /// The training config (the seed is the split's, so one `--seed` fixes the run).
    pub fn train_config(&self, seed: u64) -> Result<iotids_model::train::TrainConfig> {
        let cfg = iotids_model::train::TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch,
            learning_rate: self.lr,
            patience: self.patience,
            class_weights: !self.no_class_weights,
            seed,
        };
        cfg.check()?;
        if self.window == 0 {
            bail!("--window 0: a window holds at least one record");
        }
        Ok(cfg)
    }

    /// The network for `input` features and `classes` classes.
    pub fn gru_config(&self, input: usize, classes: usize, seed: u64) -> Result<GruConfig> {
        let cfg = GruConfig::new(input, self.hidden, classes)
            .with_layers(self.layers)
            .with_dropout(self.dropout)
            .with_reset_after(!self.reset_before)
            .with_seed(seed);
        cfg.check()?;
        Ok(cfg)
    }
}

/// `bench-gru` settings (the rest is the configuration: 64 features, hidden 64,
/// one layer, 15 classes, Adam, f32).
#[derive(Debug, Clone, Args)]
pub struct GruBenchArgs {
    /// Window lengths to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,16")]
    pub windows: Vec<usize>,
    /// Windows per batch.
    #[arg(long, default_value_t = 256)]
    pub batch: usize,
    /// Timed runs per figure; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Least length of one timed run, in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub seconds: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// How to read the input file.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Dataset layout: edge-iiot, bot-iot, tshark or generic (default: from the header).
    #[arg(long)]
    pub format: Option<String>,
    /// Label column (default: the layout's, e.g. Attack_type, category, label).
    #[arg(long)]
    pub label: Option<String>,
    /// Drop these columns too (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub drop: Vec<String>,
    /// Keep these columns even though the layout drops them (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub keep: Vec<String>,
    /// Treat these columns as categorical (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub categorical: Vec<String>,
    /// Write every rejected row (line, reason, record) to this CSV file.
    #[arg(long)]
    pub rejects: Option<PathBuf>,
    /// Add timing features from the packet time column (frame.time), which stays
    /// dropped: flow.iat_us (microseconds since the flow's previous packet), flow.index
    /// (packets of the flow before this one) and host.iat_us (microseconds since the
    /// previous packet between the same two hosts, any ports).
    #[arg(long)]
    pub flow_timing: bool,
}

impl IngestArgs {
    pub fn options(&self, threads: usize) -> Result<IngestOptions> {
        let format = match &self.format {
            Some(f) => Some(Format::parse(f).with_context(|| {
                format!("--format {f}: expected edge-iiot, bot-iot, tshark or generic")
            })?),
            None => None,
        };
        Ok(IngestOptions {
            format,
            label: self.label.clone(),
            drop: self.drop.clone(),
            keep: self.keep.clone(),
            categorical: self.categorical.clone(),
            flow_timing: self.flow_timing,
            threads,
            rejects_path: self.rejects.clone(),
            ..IngestOptions::default()
        })
    }
}

/// Cleaning, splitting and pipeline flags.
#[derive(Debug, Clone, Args)]
pub struct PrepArgs {
    /// Duplicates to remove before splitting: none, exact or features.
    #[arg(long, default_value = "exact")]
    pub dedup: String,
    /// Remove training-row outliers: iqr[:K] or zscore[:Z] (off by default).
    #[arg(long)]
    pub outliers: Option<String>,
    /// Scaling: minmax, standard or none.
    #[arg(long, default_value = "minmax")]
    pub scaler: String,
    /// Feature selection: pearson, chi2 or none.
    #[arg(long, default_value = "pearson")]
    pub select: String,
    /// Keep at most K features (required with chi2).
    #[arg(long)]
    pub k: Option<usize>,
    /// Pearson: of two features correlated above this, keep the more relevant.
    #[arg(long, default_value_t = 0.95)]
    pub corr_threshold: f64,
    /// Most one-hot levels per categorical column; rarer values share "<other>".
    #[arg(long, default_value_t = 32)]
    pub max_categories: usize,
    /// Split: stratified (rows), flow (whole flows on one side) or time (per class,
    /// earliest rows train). Default: `train` splits by flow when the file has endpoint
    /// columns (neighbouring packets of one flow never straddle the split), stratified
    /// otherwise; `prepare` stratified.
    #[arg(long)]
    pub split: Option<String>,
    /// Train/validation/test fractions.
    #[arg(long, default_value = "0.64,0.16,0.20")]
    pub fractions: String,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// ln(1 + x) on never-negative numeric columns reaching 1000 (sequence numbers, byte
    /// counts) before scaling, so a neural network can tell their values apart.
    #[arg(long)]
    pub log_scale: bool,
}

impl PrepArgs {
    pub fn validate(&self) -> Result<PrepareConfig> {
        let dedup = Dedup::parse(&self.dedup)
            .with_context(|| format!("--dedup {}: expected none, exact or features", self.dedup))?;
        let outliers = match self.outliers.as_deref() {
            None => None,
            Some(s) => Some(parse_outliers(s)?),
        };
        let method = match &self.split {
            None => SplitMethod::Stratified,
            Some(m) => SplitMethod::parse(m)
                .with_context(|| format!("--split {m}: expected stratified, flow or time"))?,
        };
        let f: Vec<f64> = self
            .fractions
            .split(',')
            .map(|x| x.trim().parse::<f64>())
            .collect::<Result<_, _>>()
            .with_context(|| {
                format!(
                    "--fractions {}: expected three numbers like 0.64,0.16,0.20",
                    self.fractions
                )
            })?;
        if f.len() != 3 {
            bail!(
                "--fractions {}: expected three numbers like 0.64,0.16,0.20",
                self.fractions
            );
        }
        let split = SplitConfig {
            method,
            train: f[0],
            validation: f[1],
            test: f[2],
            seed: self.seed,
        };
        split.check()?;
        let pipeline = PipelineConfig {
            max_categories: self.max_categories,
            scaler: Scaler::parse(&self.scaler).with_context(|| {
                format!(
                    "--scaler {}: expected minmax, standard or none",
                    self.scaler
                )
            })?,
            select: SelectMethod::parse(&self.select).with_context(|| {
                format!("--select {}: expected pearson, chi2 or none", self.select)
            })?,
            k: self.k,
            corr_threshold: self.corr_threshold,
            seed: self.seed,
            log_compress: self.log_scale,
            ..PipelineConfig::default()
        };
        pipeline.check()?;
        Ok(PrepareConfig {
            dedup,
            outliers,
            split,
            pipeline,
        })
    }
}

fn parse_outliers(s: &str) -> Result<Outliers> {
    let (name, arg) = match s.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (s, None),
    };
    let num = |default: f64| -> Result<f64> {
        match arg {
            None => Ok(default),
            Some(a) => a
                .parse::<f64>()
                .ok()
                .filter(|v| *v > 0.0)
                .with_context(|| format!("--outliers {s}: `{a}` is not a positive number")),
        }
    };
    match name {
        "iqr" => Ok(Outliers::Iqr { k: num(1.5)? }),
        "zscore" | "z" => Ok(Outliers::ZScore { z: num(3.0)? }),
        _ => bail!("--outliers {s}: expected iqr[:K] or zscore[:Z]"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlier_rules_parse() {
        assert_eq!(parse_outliers("iqr").unwrap(), Outliers::Iqr { k: 1.5 });
        assert_eq!(
            parse_outliers("zscore:2.5").unwrap(),
            Outliers::ZScore { z: 2.5 }
        );
        assert!(parse_outliers("iqr:-1").is_err());
        assert!(parse_outliers("median").is_err());
    }

    #[test]
    fn cli_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
