//! Command-line flags, and their conversion into the validated option structs of
//! the library crates. The rest of the program never sees a raw flag.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use iotids_baselines::compare::ModelKind;
use iotids_data::clean::{Dedup, Outliers};
use iotids_data::pipeline::{PipelineConfig, Scaler, SelectMethod};
use iotids_data::prepare::PrepareConfig;
use iotids_data::split::{SplitConfig, SplitMethod};
use iotids_data::{Format, IngestOptions};
use iotids_federation::aggregate::Aggregation;
use iotids_federation::partition::PartitionKind;
use iotids_federation::strategy::Strategy;
use iotids_federation::{Attack, FederationConfig};
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
// Parsed once per run: the size of the federate variant's many options doesn't matter.
#[allow(clippy::large_enum_variant)]
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
    /// Train the GRU by hierarchical federated learning (HierFAVG), simulated in one
    /// process: the training rows are dealt to --devices devices (flows whole), each edge
    /// aggregator combines its devices' models every edge round, the cloud combines the
    /// edges every cloud round. Raw rows never leave a device. Also trains the same model
    /// centrally on the same split for comparison (unless --no-central). Writes the final
    /// model directory (usable by `evaluate` and `predict`), rounds.csv, partition.csv,
    /// federation.toml (the effective settings, reusable with --config), metrics.json,
    /// pictures and report.html to --out.
    Federate {
        file: PathBuf,
        /// Output and model directory.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        federation: FederateArgs,
        #[command(flatten)]
        ingest: IngestArgs,
        #[command(flatten)]
        prep: PrepArgs,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Compare the GRU with classical and deep baselines on one file: every model gets the
    /// same prepared features, split and metrics (logistic regression, Gaussian naive Bayes,
    /// KNN, linear SVM, decision tree, random forest, gradient-boosted trees, MLP, RNN,
    /// LSTM, GRU on single records and on windows of --window records). Models that do not
    /// scale train on a stated stratified subsample (--max-rows). Prints the table and
    /// writes comparison.csv, comparison.md, comparison.json, subsamples.json, figures/ and
    /// report.html to --out.
    #[command(mut_arg("window", |a| a.default_value("16")))]
    Compare {
        file: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        compare: CompareArgs,
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
    /// Measure the time per federated cloud round as the device count grows over the same
    /// rows (random data, the GRU benchmark's model), split into local training,
    /// aggregation, validation and per-device overhead (see BENCHMARKS.md).
    BenchFederation {
        /// Training rows dealt to the devices.
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Device counts to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "10,100,1000")]
        devices: Vec<usize>,
        /// Edge aggregators.
        #[arg(long, default_value_t = 10)]
        edges: usize,
        /// Cloud rounds per device count; the median round is reported.
        #[arg(long, default_value_t = 3)]
        rounds: usize,
        /// Records per window.
        #[arg(long, default_value_t = 1)]
        window: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
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

/// Federation settings. Each flag overrides the --config file's value, which overrides
/// the default; the file uses the same names with `_` (`local_epochs = 2`).
#[derive(Debug, Clone, Args)]
pub struct FederateArgs {
    /// TOML file of settings (any of the flags below; see federation.toml in an output).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Devices [20].
    #[arg(long)]
    pub devices: Option<usize>,
    /// Edge aggregators; devices are spread evenly over them [4].
    #[arg(long)]
    pub edges: Option<usize>,
    /// Cloud rounds [30].
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Local epochs per device per edge round, HierFAVG's τ₁ [1].
    #[arg(long)]
    pub local_epochs: Option<usize>,
    /// Edge rounds per cloud round, HierFAVG's τ₂ [2].
    #[arg(long)]
    pub edge_rounds: Option<usize>,
    /// Fraction of each edge's devices sampled per edge round [1.0].
    #[arg(long)]
    pub fraction: Option<f64>,
    /// iid, dirichlet (label skew), quantity (size skew) or host (each source host's
    /// traffic on one device) [dirichlet].
    #[arg(long)]
    pub partition: Option<PartitionKind>,
    /// Dirichlet concentration of `dirichlet` and `quantity`; smaller is more skewed [0.3].
    #[arg(long)]
    pub alpha: Option<f64>,
    /// fedavg, fedprox, fedavgm, fedadam or fedyogi (Flower's names) [fedavg].
    #[arg(long)]
    pub strategy: Option<Strategy>,
    /// FedProx's μ [0.01].
    #[arg(long)]
    pub proximal_mu: Option<f64>,
    /// FedAvgM's server learning rate [1.0].
    #[arg(long)]
    pub server_learning_rate: Option<f64>,
    /// FedAvgM's server momentum [0.9].
    #[arg(long)]
    pub server_momentum: Option<f64>,
    /// FedAdam's/FedYogi's server step η [0.01].
    #[arg(long)]
    pub eta: Option<f64>,
    /// FedAdam's/FedYogi's β₁ [0.9].
    #[arg(long)]
    pub beta_1: Option<f64>,
    /// FedAdam's/FedYogi's β₂ [0.99].
    #[arg(long)]
    pub beta_2: Option<f64>,
    /// FedAdam's/FedYogi's τ [0.001].
    #[arg(long)]
    pub tau: Option<f64>,
    /// How an edge combines its devices: mean (sample-weighted), median,
    /// trimmed-mean[:BETA], krum[:F[:KEEP]] [mean].
    #[arg(long)]
    pub edge_aggregation: Option<Aggregation>,
    /// How the cloud combines the edges (same choices) [mean].
    #[arg(long)]
    pub cloud_aggregation: Option<Aggregation>,
    /// Probability that a sampled device fails mid-round [0].
    #[arg(long)]
    pub device_dropout: Option<f64>,
    /// Deadline of an edge round in simulated seconds; later updates are dropped [none].
    #[arg(long)]
    pub deadline: Option<f64>,
    /// Windows a device of speed 1 trains per simulated second [2000].
    #[arg(long)]
    pub device_rate: Option<f64>,
    /// σ of the log-normal spread of device speeds [0.5].
    #[arg(long)]
    pub speed_spread: Option<f64>,
    /// Device link speed in bytes per simulated second [1250000].
    #[arg(long)]
    pub bandwidth: Option<f64>,
    /// Fraction of devices that poison [0].
    #[arg(long)]
    pub malicious: Option<f64>,
    /// none, label-flip or scale [none].
    #[arg(long)]
    pub attack: Option<Attack>,
    /// The factor of the `scale` attack [-5].
    #[arg(long, allow_hyphen_values = true)]
    pub attack_scale: Option<f64>,
    /// Skip training the same model centrally for comparison.
    #[arg(long)]
    pub no_central: bool,
    /// Also run the same federation with each aggregation rule (mean, median,
    /// trimmed-mean:0.2, krum) at both tiers, without the attack and with it (--attack):
    /// robustness.csv, a chart and a report section show where FedAvg fails and robust
    /// aggregation holds.
    #[arg(long)]
    pub robustness: bool,
}

impl FederateArgs {
    /// The file's settings (or the defaults) with the flags given on top; the seed is the
    /// run's `--seed`.
    pub fn config(&self, seed: u64) -> Result<FederationConfig> {
        let mut c = match &self.config {
            Some(path) => FederationConfig::from_toml_file(path)?,
            None => FederationConfig::default(),
        };
        macro_rules! set {
            ($($field:ident),*) => {
                $(if let Some(v) = self.$field.clone() {
                    c.$field = v;
                })*
            };
        }
        set!(
            devices,
            edges,
            rounds,
            local_epochs,
            edge_rounds,
            fraction,
            partition,
            alpha,
            strategy,
            proximal_mu,
            server_learning_rate,
            server_momentum,
            eta,
            beta_1,
            beta_2,
            tau,
            edge_aggregation,
            cloud_aggregation,
            device_dropout,
            device_rate,
            speed_spread,
            bandwidth,
            malicious,
            attack,
            attack_scale
        );
        if self.deadline.is_some() {
            c.deadline = self.deadline;
        }
        c.seed = seed;
        c.check()?;
        Ok(c)
    }
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

/// `compare` settings besides the data's and the networks'.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Models to compare, comma-separated: lr, nb, knn, svm, tree, forest, gbdt, mlp, rnn,
    /// lstm, gru1 (GRU on single records), gru (GRU on windows of --window records).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "lr,nb,knn,svm,tree,forest,gbdt,mlp,rnn,lstm,gru1,gru"
    )]
    pub models: Vec<String>,
    /// Most training rows of a model, as MODEL=N (comma-separated; N = all lifts the
    /// limit). Defaults: knn=50000, svm=2000, forest=100000, tree=500000, lr=500000;
    /// the others train on all rows. A limited model trains on a stratified subsample,
    /// and the table says so.
    #[arg(long, value_delimiter = ',')]
    pub max_rows: Vec<String>,
}

impl CompareArgs {
    /// The models, in the order given, each once.
    pub fn models(&self) -> Result<Vec<ModelKind>> {
        let mut out: Vec<ModelKind> = Vec::new();
        for m in &self.models {
            let kind: ModelKind = m.trim().parse().context("--models")?;
            if !out.contains(&kind) {
                out.push(kind);
            }
        }
        if out.is_empty() {
            bail!("--models: name at least one model");
        }
        Ok(out)
    }

    /// The row limits: the defaults, then --max-rows over them.
    pub fn caps(&self) -> Result<BTreeMap<ModelKind, usize>> {
        let mut caps: BTreeMap<ModelKind, usize> = ModelKind::ALL
            .into_iter()
            .filter_map(|m| m.default_cap().map(|c| (m, c)))
            .collect();
        for item in &self.max_rows {
            let Some((model, n)) = item.split_once('=') else {
                bail!("--max-rows {item}: expected MODEL=N, e.g. knn=20000");
            };
            let kind: ModelKind = model.trim().parse().context("--max-rows")?;
            match n.trim() {
                "all" => {
                    caps.remove(&kind);
                }
                n => {
                    let n: usize = n.parse().ok().filter(|&n| n > 0).with_context(|| {
                        format!("--max-rows {item}: N is a positive whole number or all")
                    })?;
                    caps.insert(kind, n);
                }
            }
        }
        Ok(caps)
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
