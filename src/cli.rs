//! The raw command line: what clap parses, nothing more. [`crate::job`] turns it into one
//! checked job before any file is opened (ripgrep's low-level and high-level arguments).
//!
//! Every default shown in `--help` comes from the library type that owns the setting
//! (`TrainConfig`, `GruShape`, `PrepareConfig`, `FederationConfig`, ...), never typed here.
//! Values clap can check alone (types, ranges, spellings) are refused by clap with exit 2
//! and the flag, the value and what is allowed; checks that need several flags are in
//! [`crate::job`].

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::LazyLock;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};
use iotids_baselines::compare::{Choice, ModelKind};
use iotids_data::Format;
use iotids_data::clean::{Dedup, Outliers};
use iotids_data::pipeline::{PipelineConfig, Scaler, SelectMethod};
use iotids_data::prepare::PrepareConfig;
use iotids_data::split::SplitMethod;
use iotids_data::window::WindowBy;
use iotids_federation::aggregate::Aggregation;
use iotids_federation::bench::FederationBenchConfig;
use iotids_federation::partition::PartitionKind;
use iotids_federation::strategy::Strategy;
use iotids_federation::{Attack, FederationConfig, LocalOptimizer, PipelineFit, ValidationSite};
use iotids_model::bench::GruBenchConfig;
use iotids_model::gru::GruShape;
use iotids_model::train::TrainConfig;

/// The defaults `--help` shows, from the libraries.
static TRAIN: LazyLock<TrainConfig> = LazyLock::new(TrainConfig::default);
static SHAPE: LazyLock<GruShape> = LazyLock::new(GruShape::default);
static PREPARE: LazyLock<PrepareConfig> = LazyLock::new(PrepareConfig::default);
static PIPELINE: LazyLock<PipelineConfig> = LazyLock::new(PipelineConfig::default);
static FEDERATION: LazyLock<FederationConfig> = LazyLock::new(FederationConfig::default);
static GRU_BENCH: LazyLock<GruBenchConfig> = LazyLock::new(GruBenchConfig::default);
static FED_BENCH: LazyLock<FederationBenchConfig> = LazyLock::new(FederationBenchConfig::default);
static DETECT: LazyLock<iotids_detect::Config> = LazyLock::new(iotids_detect::Config::default);

const GLOBAL: &str = "Global options";

/// iotids: IoT network intrusion detection that is honest about its data.
///
/// Exit codes: 0 success; 1 `audit` found problems, or `compare` could not fit a model;
/// 2 bad input or usage (an invalid flag, a file that cannot be read, is not CSV or lacks
/// the label column).
#[derive(Debug, Parser)]
#[command(name = "iotids", version, long_about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output (-v info, -vv debug, -vvv trace). Logs go to stderr.
    #[arg(short, long, action = ArgAction::Count, global = true, help_heading = GLOBAL)]
    pub verbose: u8,
    /// No progress bars and no log output except errors.
    #[arg(short, long, global = true, help_heading = GLOBAL)]
    pub quiet: bool,
    /// Worker threads for reading and training [default: one per core].
    #[arg(long, global = true, value_name = "N", help_heading = GLOBAL)]
    pub threads: Option<NonZeroUsize>,
}

#[derive(Debug, Subcommand)]
// Parsed once per run: the size of the federate variant's many options doesn't matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    /// The ε of the (ε, δ) differential-privacy guarantee that STEPS steps of the
    /// Poisson-subsampled Gaussian mechanism spend (DP-FedAvg: one step per edge round),
    /// by the Rényi-DP accountant; or, with --target-epsilon, the smallest noise
    /// multiplier that stays within it. Prints one line of JSON.
    Privacy {
        /// The probability q that a device takes part in a step (federate's --fraction).
        #[arg(long)]
        sampling_rate: f64,
        /// σ: the noise's standard deviation over the clip norm.
        #[arg(
            long,
            required_unless_present = "target_epsilon",
            conflicts_with = "target_epsilon"
        )]
        noise_multiplier: Option<f64>,
        /// The ε to stay within: prints the smallest σ that does.
        #[arg(long)]
        target_epsilon: Option<f64>,
        /// Steps composed (rounds × edge rounds).
        #[arg(long)]
        steps: u64,
        /// The δ of the guarantee.
        #[arg(long)]
        delta: f64,
    },
    /// Summarise a labelled file: class counts and weights, statistics of every
    /// numeric column, rows read / rejected / duplicated.
    Describe {
        /// The labelled CSV (`-`: standard input).
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
        /// The labelled CSV (`-`: standard input).
        file: PathBuf,
        #[command(flatten)]
        ingest: IngestArgs,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
        /// Exit 1 on any finding (`any`), or only on findings the default pipeline
        /// does not neutralise (`unmitigated`).
        #[arg(long, value_enum, default_value_t = FailOn::Any)]
        fail_on: FailOn,
        /// Accuracy at which a single column counts as a predictor of the class.
        #[arg(long, value_parser = unit_interval,
              default_value_t = iotids_data::audit::AuditOptions::default().predictor_threshold)]
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
        /// The labelled CSV (`-`: standard input).
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
        /// The labelled CSV (`-`: standard input).
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
        /// The labelled CSV (`-`: standard input).
        file: PathBuf,
        /// Output and model directory.
        #[arg(long)]
        out: PathBuf,
        /// Evaluate the federated (and central) model on this labelled file instead of the
        /// split's test rows (the file is then split into training and validation rows
        /// only, in the ratio of --fractions' first two numbers).
        #[arg(long)]
        test: Option<PathBuf>,
        #[command(flatten)]
        federation: FederateArgs,
        #[command(flatten)]
        ingest: IngestArgs,
        #[command(flatten)]
        prep: PrepArgs,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Make a federation's certificate authority and one certificate per node (cloud,
    /// edges, devices) for mutual TLS. A node's identity is its certificate's common name
    /// (`cloud`, `edge-<e>`, `device-<d>`). Writes ca.pem, ca.key (keep it offline) and
    /// NODE.pem / NODE.key per node to --out.
    Certs {
        /// Output folder (an existing CA there is never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Edge aggregators.
        #[arg(long)]
        edges: usize,
        /// Devices.
        #[arg(long)]
        devices: usize,
        /// More names every certificate answers to as a server (DNS name or IP
        /// address), besides localhost, 127.0.0.1, ::1 and the node's own name; repeatable.
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Days the certificates are valid.
        #[arg(long, default_value_t = 365)]
        days: u32,
    },
    /// Deal a labelled file to devices as `federate` deals it, for a networked run: each
    /// device's training rows (flows whole) to device-<d>.csv, the validation rows (the
    /// cloud scores each round on them) to validation.csv, the test rows to test.csv, and
    /// the effective settings to federation.toml. Same flags and seed, same deal.
    Deal {
        /// The labelled CSV.
        file: PathBuf,
        /// Output folder.
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
    /// Run a federation's cloud: serves its edges over gRPC with mutual TLS, runs the
    /// statistics round (the pipeline fitted from the devices' summaries), then the cloud
    /// rounds of the schedule it owns (--config or the flags, as `federate` reads them;
    /// --deadline is then wall seconds). Checkpoints after every round and resumes from
    /// the checkpoint when started again. Writes the model directory, rounds.csv,
    /// federation.toml, federation.json and report.html to --out.
    Cloud {
        /// Checkpoint folder [default: OUT/checkpoint].
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        #[command(flatten)]
        node: NodeArgs,
        /// Address to serve the edges on.
        #[arg(long, default_value = "0.0.0.0:7400")]
        listen: std::net::SocketAddr,
        /// Seconds the cloud waits for its edges each round, then goes on without the
        /// rest [default: edge rounds × the device deadline + 30].
        #[arg(long)]
        edge_deadline: Option<f64>,
        #[command(flatten)]
        schedule: ScheduleArgs,
    },
    /// Run an edge aggregator: a client of the cloud, and the server of the devices the
    /// cloud assigns it (device d of N goes to edge ⌊d·E/N⌋). Its identity is its
    /// certificate's (edge-<e>). Rejoins with backoff when the cloud restarts.
    Edge {
        /// The cloud, https://HOST:PORT.
        #[arg(long)]
        cloud: String,
        #[command(flatten)]
        node: NodeArgs,
        /// Address to serve the devices on.
        #[arg(long, default_value = "0.0.0.0:7401")]
        listen: std::net::SocketAddr,
    },
    /// Run a device: trains on its own labelled data (a CSV, or labelled captures) when
    /// its edge asks and sends back only model updates and summaries. Its identity is its
    /// certificate's (device-<d>). Reconnects with backoff when the edge restarts.
    Device {
        /// Its edge, https://HOST:PORT.
        #[arg(long)]
        edge: String,
        /// Its labelled traffic.
        #[arg(long)]
        data: PathBuf,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Run on Flower (flwr 1.40–1.42): an iotids device or edge aggregator joins a stock
    /// Flower federation as a SuperNode (`device`, `edge`: edges bring their own devices,
    /// which is hierarchical federated learning on Flower), and `server` is what the
    /// project's Flower app (examples/flower/iotids-app) calls for the statistics round, each
    /// round's validation score and the final model directory.
    Flower {
        #[command(subcommand)]
        role: FlowerRole,
    },
    /// Run many devices in one process (load tests, or a gateway fronting several
    /// devices): devices A..B of a `deal` folder, each a device loop of its own, as
    /// `device` runs it (its own certificate, channel and data), on threads over one
    /// network runtime. Device d joins edge ⌊d·E/N⌋ of the --edge list (N devices and E
    /// edges from DEAL/federation.toml). At most --train-slots of them train at once; the
    /// others wait their turn, heartbeating. Prints one line per device and a total.
    DevicePool {
        /// `deal`'s output folder (device-<d>.csv and federation.toml).
        #[arg(long)]
        deal: PathBuf,
        /// `certs`' output folder (ca.pem, device-<d>.pem and device-<d>.key).
        #[arg(long)]
        certs: PathBuf,
        /// The edges, https://HOST:PORT, edge-0 first: one per edge of the federation;
        /// repeatable.
        #[arg(long = "edge", required = true, value_name = "URL")]
        edges: Vec<String>,
        /// Devices to run: A..B (A to B-1), A..=B (A to B), or one device D.
        #[arg(long, value_parser = device_range, value_name = "A..B")]
        devices: std::ops::Range<usize>,
        /// Devices of this process that train at the same time.
        #[arg(long, default_value_t = nonzero(1))]
        train_slots: NonZeroUsize,
        /// Largest message either way, MiB.
        #[arg(long, default_value_t = 64)]
        max_message_mb: usize,
        /// Seconds an edge may stay unreachable before its devices give up.
        #[arg(long, default_value_t = 600)]
        give_up: u64,
    },
    /// Compare the GRU with classical and deep baselines on one file: every model gets the
    /// same prepared features, split and metrics (logistic regression, Gaussian naive Bayes,
    /// KNN, linear SVM, decision tree, random forest, gradient-boosted trees, MLP, RNN,
    /// LSTM, GRU on single records and on windows of --window records). Models that do not
    /// scale train on a stated stratified subsample (--max-rows). Prints the table and
    /// writes comparison.csv, comparison.md, comparison.json, subsamples.json, figures/ and
    /// report.html to --out.
    #[command(mut_arg("window", |a| a.default_value(COMPARE_WINDOW)))]
    Compare {
        /// The labelled CSV (`-`: standard input).
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
        /// The labelled CSV (`-`: standard input).
        file: PathBuf,
        /// Model directory written by `iotids train`.
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Windows per inference batch.
        #[arg(long, default_value_t = nonzero(iotids_model::examples::SCORE_BATCH))]
        batch: NonZeroUsize,
    },
    /// Predict the class of every row of a file, labelled or not, streaming it in
    /// batches (files larger than memory are fine). Writes CSV: source line, predicted
    /// class, its probability, one probability column per class (and the true class
    /// when the file has labels).
    Predict {
        /// The CSV (`-`: standard input).
        file: PathBuf,
        /// Model directory written by `iotids train`.
        #[arg(long)]
        model: PathBuf,
        /// Output CSV (default: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Rows read per batch.
        #[arg(long, default_value_t = nonzero(65_536))]
        batch_rows: NonZeroUsize,
    },
    /// Write the 61 Edge-IIoTset packet-field columns of every packet of the captures
    /// (pcap or pcapng) as CSV, exactly as ../shared/data/tshark-fields.sh writes them:
    /// the same header, one row per packet, the same quoting (a value holding `,` or `"`
    /// quoted, its `"` doubled), frame.time in UTC. Several captures are written one
    /// after another under one header: what running tshark-fields.sh on each file and
    /// keeping only the first file's header line gives (tshark-fields.sh reads one file;
    /// each capture starts afresh here too: packet numbers, stream indices, reassembly).
    /// Packets not read whole are counted and summarised on stderr by capture, packet
    /// number and layer (-q silences the summary); a capture that cannot be read is an
    /// error naming it (exit 2).
    Extract {
        /// The captures, in order.
        #[arg(required = true)]
        captures: Vec<PathBuf>,
        /// Output CSV (`-`: standard output).
        #[arg(long)]
        out: PathBuf,
    },
    /// Detect attacks in packets: read captures (or a live interface), build the model's
    /// flow windows online (a bounded flow table, idle flows evicted), score every packet
    /// with the model (the decisions `predict` makes on `extract`'s CSV of the same
    /// packets) and write Suricata EVE JSON: an alert line for a packet judged an attack
    /// or unknown, at most one per flow and class per --alert-interval (iotids' own fields,
    /// with the packets judged since the flow's last line, under alert.metadata.iotids),
    /// and stats lines every --stats-interval; and a verdict per packet. Prints a summary
    /// (packets, flows, alert lines and judged packets per class, unknowns, accuracy with
    /// labelled captures, packets/s) on stderr; --report writes it as an HTML page with the
    /// top flows, alerts per minute and the unknowns. Ctrl-C on a live capture flushes
    /// everything and exits 0.
    Detect {
        /// Captures to read, in order (or --interface); or labelled captures (a folder of
        /// class folders, or a TOML manifest, as `train` reads), whose labels become the
        /// verdicts' `true` column and the summary's accuracy.
        #[arg(required_unless_present = "interface", conflicts_with = "interface")]
        captures: Vec<PathBuf>,
        /// Model directory written by `iotids train` from packet columns (captures or
        /// tshark's CSV).
        #[arg(long)]
        model: PathBuf,
        /// Capture live from this interface (libpcap; needs root or CAP_NET_RAW).
        #[arg(long)]
        interface: Option<String>,
        /// Write EVE JSON alert lines here (`-`: standard output).
        #[arg(long)]
        eve: Option<PathBuf>,
        /// Write one CSV row per packet here: row, capture, packet number, timestamp,
        /// flow id, endpoints, protocol, predicted class, its probability, alert or pass,
        /// and `true` (the label) with labelled captures.
        #[arg(long)]
        verdicts: Option<PathBuf>,
        /// At most one EVE alert line per flow and decided class in this many seconds of
        /// packet time (as Suricata's `threshold: type limit, track by_flow`); the packets
        /// judged in between are counted. 0: a line for every packet judged an attack or
        /// unknown.
        #[arg(long, value_name = "SECONDS", value_parser = interval_seconds,
              default_value_t = DETECT.alert_interval)]
        alert_interval: u64,
        /// An EVE stats line every this many seconds (packet time when reading files, wall
        /// time on --interface), and one at the end. 0: none.
        #[arg(long, value_name = "SECONDS", value_parser = interval_seconds,
              default_value_t = DETECT.stats_interval)]
        stats_interval: u64,
        /// Write an HTML page of the run here: the summary, alerts per class, the top flows
        /// by alerts, alerts per minute and the unknowns (one self-contained file).
        #[arg(long, value_name = "FILE.html", value_parser = html_path)]
        report: Option<PathBuf>,
        /// Keep only packets matching this BPF expression (tcpdump's syntax, libpcap's
        /// compiler), on files as on an interface.
        #[arg(long)]
        bpf: Option<String>,
        /// Packets per scored batch (a live capture also scores every second).
        #[arg(long, default_value_t = nonzero(DETECT.batch_packets))]
        batch: NonZeroUsize,
        /// Most flows held; the least recently seen is evicted past it.
        #[arg(long, default_value_t = nonzero(DETECT.max_flows))]
        max_flows: NonZeroUsize,
        /// Seconds (packet time) after which an idle flow is evicted.
        #[arg(long, default_value_t = DETECT.idle_seconds)]
        idle_timeout: u64,
        /// Score one window in HOP of each flow (1 to the model's window): a flow's last
        /// packet of a batch and every HOP-th before it end a scored window, and each
        /// packet takes the decision of the first such window of its flow at or after it,
        /// which holds it. 1 scores every packet's own window (predict's decisions); more
        /// is up to HOP times less GRU work (see BENCHMARKS.md).
        #[arg(long, default_value_t = nonzero(DETECT.hop))]
        hop: NonZeroUsize,
        /// Stop after this many packets (as tcpdump -c).
        #[arg(long)]
        count: Option<NonZeroUsize>,
        /// Print the summary as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// The built-in default job: with no data given, generate a data set with `synth`,
    /// then describe, audit and prepare it, train the GRU on flow windows, evaluate it and
    /// write report.html.
    Demo {
        /// Where to write the generated data and the outputs.
        #[arg(long, default_value = "iotids-demo")]
        out: PathBuf,
        /// Rows of generated data.
        #[arg(long, default_value_t = 60_000, value_parser = clap::value_parser!(u64).range(1..))]
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
        #[arg(long, default_value_t = nonzero(FED_BENCH.rows))]
        rows: NonZeroUsize,
        /// Device counts to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = FED_BENCH.devices.iter().map(|&d| nonzero(d)))]
        devices: Vec<NonZeroUsize>,
        /// Edge aggregators.
        #[arg(long, default_value_t = nonzero(FED_BENCH.edges))]
        edges: NonZeroUsize,
        /// Cloud rounds per device count; the median round is reported.
        #[arg(long, default_value_t = nonzero(FED_BENCH.rounds))]
        rounds: NonZeroUsize,
        /// Records per window.
        #[arg(long, default_value_t = nonzero(FED_BENCH.window))]
        window: NonZeroUsize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure what secure aggregation costs per edge round against plain aggregation
    /// (see BENCHMARKS.md): a device's time and bytes, the edge's, for each device count.
    BenchSecagg {
        /// Devices per edge to measure (comma-separated).
        #[arg(long, value_delimiter = ',', default_values_t = vec![nonzero(10), nonzero(50), nonzero(100)])]
        devices: Vec<NonZeroUsize>,
        /// Weights per update [default: the default GRU's on MQTTset].
        #[arg(long)]
        weights: Option<NonZeroUsize>,
        /// Share of devices that drop after dealing their shares, before masking.
        #[arg(long, value_parser = probability_below_one, default_value_t = 0.3)]
        dropout: f64,
        /// Repetitions; medians are reported.
        #[arg(long, default_value_t = nonzero(3))]
        repeats: NonZeroUsize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure packet throughput on a capture (see BENCHMARKS.md): `extract` (the 61
    /// columns as CSV, written to nowhere) against tshark-fields.sh on the same capture in
    /// the same run, and with --model `detect` end to end (no outputs), with peak memory.
    BenchPackets {
        /// The capture.
        capture: PathBuf,
        /// A model directory: also measure `detect` with it.
        #[arg(long)]
        model: Option<PathBuf>,
        /// tshark-fields.sh (or any script taking the capture and writing its CSV) to time
        /// on the same capture [default: ../shared/data/tshark-fields.sh when present].
        #[arg(long)]
        tshark_script: Option<PathBuf>,
        /// Repetitions; the median is reported.
        #[arg(long, default_value_t = nonzero(3))]
        repeat: NonZeroUsize,
        /// With --model: also replay the capture into one detector for this many seconds,
        /// each pass later in time (past the idle timeout) and from other addresses, so
        /// every pass brings new flows, as an endless stream does; reports resident
        /// memory after every pass (it must stay flat) and what the detector held.
        #[arg(long, requires = "model", value_parser = clap::value_parser!(u64).range(1..))]
        replay_seconds: Option<u64>,
        /// `detect --hop` for the detect measurement and the replay.
        #[arg(long, default_value_t = nonzero(DETECT.hop))]
        hop: NonZeroUsize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure ingest + clean throughput and peak memory on a file (see BENCHMARKS.md).
    Bench {
        /// The labelled CSV.
        file: PathBuf,
        #[command(flatten)]
        ingest: IngestArgs,
        /// Repetitions; the median is reported.
        #[arg(long, default_value_t = nonzero(3))]
        repeat: NonZeroUsize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// `compare`'s window when none is given: the recurrent models' setting of the README.
const COMPARE_WINDOW: &str = "16";

/// What makes `audit` exit 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    /// Any finding.
    Any,
    /// Findings the default pipeline does not neutralise.
    Unmitigated,
}

/// The roles of `iotids flower`.
#[derive(Debug, Subcommand)]
// Parsed once per run, like `Command`.
#[allow(clippy::large_enum_variant)]
pub enum FlowerRole {
    /// A device as a Flower SuperNode directly under the SuperLink: answers the
    /// statistics round, trains and scores on its own labelled traffic when the app asks,
    /// and sends back only model updates and summaries. Runs until SIGTERM or Ctrl-C,
    /// then leaves the federation.
    Device {
        #[command(flatten)]
        flower: FlowerArgs,
        /// Its number in the federation (seeds its batch order, as in `federate`).
        #[arg(long)]
        id: usize,
        /// Its labelled traffic (a CSV, or labelled captures).
        #[arg(long)]
        data: PathBuf,
    },
    /// An edge aggregator as a Flower SuperNode: on each `train` message it runs its edge
    /// rounds with its own devices (`iotids device --edge`, mutual TLS; secure
    /// aggregation and DP as planned) and replies with the edge model, weighted by its
    /// devices' examples. Its identity is its certificate's (edge-<e>).
    Edge {
        #[command(flatten)]
        flower: FlowerArgs,
        #[command(flatten)]
        node: NodeArgs,
        /// Address to serve the devices on.
        #[arg(long, default_value = "0.0.0.0:7401")]
        listen: std::net::SocketAddr,
    },
    /// Print, as JSON, the Flower protocol this build speaks: every message of the flwr
    /// protos it was built with (fields: name, number, type, label, oneof) and the Fleet
    /// RPCs. examples/flower/check_protocol.py compares it with an installed flwr.
    Protocol,
    /// Make a node key for Flower's node authentication: an ECDSA P-384 private key
    /// (OUT, readable by its owner only) and its OpenSSH public-key line (OUT.pub), which
    /// the SuperLink's operator registers with `flwr supernode register OUT.pub
    /// <federation>`; the node then runs with `--auth-key OUT`. An existing file is never
    /// overwritten.
    Keygen {
        /// The private key's path.
        #[arg(long)]
        out: PathBuf,
        /// The private key's format: openssh (what flower-supernode reads), pkcs8 or sec1.
        #[arg(long, default_value = "openssh")]
        format: String,
        /// The public key's comment (a name the operator recognises).
        #[arg(long, default_value = "iotids")]
        comment: String,
    },
    /// The Flower app's side of a run, one step per call (state in OUT/flower/):
    /// `begin` (settings as `cloud` reads them; prints the first statistics request),
    /// `absorb` (the nodes' answers; prints the next request or the initial model),
    /// `score` (a round's global model on the validation file) and `finish` (the kept
    /// round's model directory, rounds.csv, federation.toml, federation.json in OUT).
    /// Prints one JSON line per step.
    Server {
        /// begin, absorb, score or finish.
        #[arg(value_enum)]
        step: FlowerStep,
        /// `absorb`: files holding the nodes' `iotids.answer` bytes, one per node.
        answers: Vec<PathBuf>,
        /// `score`: the round.
        #[arg(long)]
        round: Option<usize>,
        /// `score`: the round's global model, a float32 `.npy` file.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// `begin`: devices directly under the SuperLink (no edges).
        #[arg(long)]
        flat: bool,
        #[command(flatten)]
        schedule: ScheduleArgs,
    },
}

/// What the top of a federation decides (`cloud`, `flower server`): where it scores and
/// writes, the waits, and the schedule and model as `federate` reads them.
#[derive(Debug, Clone, Args)]
pub struct ScheduleArgs {
    /// Labelled rows scored every round (`deal`'s validation.csv).
    #[arg(long)]
    pub validation: PathBuf,
    /// Output and model directory.
    #[arg(long)]
    pub out: PathBuf,
    /// Also evaluate the kept model on this labelled file (`deal`'s test.csv).
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Seconds an edge waits for its devices when --deadline is not set.
    #[arg(long, default_value_t = 120.0)]
    pub device_deadline: f64,
    /// Seconds the statistics round waits for every node's summary.
    #[arg(long, default_value_t = 60.0)]
    pub statistics_deadline: f64,
    #[command(flatten)]
    pub federation: FederateArgs,
    #[command(flatten)]
    pub ingest: IngestArgs,
    #[command(flatten)]
    pub prep: PrepArgs,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// A step of `iotids flower server`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FlowerStep {
    Begin,
    Absorb,
    Score,
    Finish,
}

/// How a node reaches a Flower SuperLink.
#[derive(Debug, Clone, Args)]
pub struct FlowerArgs {
    /// The SuperLink's Fleet API: HOST:PORT (plain HTTP, a SuperLink run with
    /// --insecure) or an http:// or https:// URL.
    #[arg(long)]
    pub superlink: String,
    /// PEM root certificates of the SuperLink's TLS certificate (its --ssl-ca-certfile).
    #[arg(long)]
    pub root_certificates: Option<PathBuf>,
    /// The node's private key, registered with the SuperLink beforehand (Flower's node
    /// authentication); without it the node registers a fresh key itself.
    #[arg(long)]
    pub auth_key: Option<PathBuf>,
}

/// A networked node's identity and limits (`cloud`, `edge`, `device`).
#[derive(Debug, Clone, Args)]
pub struct NodeArgs {
    /// The federation's CA certificate (PEM).
    #[arg(long)]
    pub ca: PathBuf,
    /// This node's certificate (PEM): its identity.
    #[arg(long)]
    pub cert: PathBuf,
    /// This node's private key (PEM).
    #[arg(long)]
    pub key: PathBuf,
    /// Largest message either way, MiB.
    #[arg(long, default_value_t = 64)]
    pub max_message_mb: usize,
    /// Seconds its upstream may stay unreachable before the node gives up.
    #[arg(long, default_value_t = 600)]
    pub give_up: u64,
}

/// Federation settings. Each flag overrides the --config file's value, which overrides
/// the default; the file uses the same names with `_` (`local_epochs = 2`). The defaults
/// in brackets are `FederationConfig`'s, added to the help by [`command`].
#[derive(Debug, Clone, Args)]
pub struct FederateArgs {
    /// TOML file of settings (any of the flags below; see federation.toml in an output).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Devices.
    #[arg(long)]
    pub devices: Option<usize>,
    /// Edge aggregators; devices are spread evenly over them.
    #[arg(long)]
    pub edges: Option<usize>,
    /// Cloud rounds.
    #[arg(long)]
    pub rounds: Option<usize>,
    /// Local epochs per device per edge round, HierFAVG's τ₁.
    #[arg(long)]
    pub local_epochs: Option<usize>,
    /// Edge rounds per cloud round, HierFAVG's τ₂.
    #[arg(long)]
    pub edge_rounds: Option<usize>,
    /// Fraction of each edge's devices sampled per edge round.
    #[arg(long)]
    pub fraction: Option<f64>,
    /// iid, dirichlet (label skew), dirichlet-time (label skew, each device holding one
    /// stretch of each class's traffic in time order, as a capture point sees it), quantity
    /// (size skew) or host (each source host's traffic on one device).
    #[arg(long, value_parser = spelled::<PartitionKind>)]
    pub partition: Option<PartitionKind>,
    /// Dirichlet concentration of `dirichlet` and `quantity`; smaller is more skewed.
    #[arg(long)]
    pub alpha: Option<f64>,
    /// fedavg, fedprox, fedavgm, fedadam or fedyogi (Flower's names).
    #[arg(long, value_parser = spelled::<Strategy>)]
    pub strategy: Option<Strategy>,
    /// FedProx's μ.
    #[arg(long)]
    pub proximal_mu: Option<f64>,
    /// FedAvgM's server learning rate.
    #[arg(long)]
    pub server_learning_rate: Option<f64>,
    /// FedAvgM's server momentum.
    #[arg(long)]
    pub server_momentum: Option<f64>,
    /// FedAdam's/FedYogi's server step η.
    #[arg(long)]
    pub eta: Option<f64>,
    /// FedAdam's/FedYogi's β₁.
    #[arg(long)]
    pub beta_1: Option<f64>,
    /// FedAdam's/FedYogi's β₂.
    #[arg(long)]
    pub beta_2: Option<f64>,
    /// FedAdam's/FedYogi's τ.
    #[arg(long)]
    pub tau: Option<f64>,
    /// How an edge combines its devices: mean (sample-weighted), median,
    /// trimmed-mean[:β] or krum[:f[:m]] (multi-Krum).
    #[arg(long, value_parser = spelled::<Aggregation>)]
    pub edge_aggregation: Option<Aggregation>,
    /// How the cloud combines the edges (same choices).
    #[arg(long, value_parser = spelled::<Aggregation>)]
    pub cloud_aggregation: Option<Aggregation>,
    /// Probability that a sampled device fails mid-round and sends nothing.
    #[arg(long)]
    pub device_dropout: Option<f64>,
    /// Deadline of an edge round in simulated seconds; later updates are dropped
    /// [default: none, wait for every device].
    #[arg(long)]
    pub deadline: Option<f64>,
    /// Share of an edge round's sampled devices an edge waits for past the deadline
    /// (0 to 1) [default: 0].
    #[arg(long)]
    pub quorum: Option<f64>,
    /// Windows a device of speed 1 trains per simulated second.
    #[arg(long)]
    pub device_rate: Option<f64>,
    /// σ of the log-normal spread of device speeds.
    #[arg(long)]
    pub speed_spread: Option<f64>,
    /// Device link speed in bytes per simulated second.
    #[arg(long)]
    pub bandwidth: Option<f64>,
    /// Fraction of devices that poison.
    #[arg(long)]
    pub malicious: Option<f64>,
    /// none, label-flip or scale.
    #[arg(long, value_parser = spelled::<Attack>)]
    pub attack: Option<Attack>,
    /// The factor of the `scale` attack.
    #[arg(long, allow_hyphen_values = true)]
    pub attack_scale: Option<f64>,
    /// Aggregate the output layer class by class: each class's head weights averaged
    /// over the updates by their windows of that class (true or false).
    #[arg(long, action = clap::ArgAction::Set)]
    pub class_wise_head: Option<bool>,
    /// τ of the devices' logit-adjusted loss, logits + τ·(ln π_local − ln π_global), so a
    /// device missing a class does not push its logit down (0: plain cross-entropy).
    #[arg(long)]
    pub logit_adjustment: Option<f64>,
    /// The devices' optimiser: adam (a fresh Adam each local run) or sgd (with
    /// --local-momentum).
    #[arg(long, value_parser = spelled::<LocalOptimizer>)]
    pub local_optimizer: Option<LocalOptimizer>,
    /// The devices' learning rate (default: --lr under adam, 0.1 under sgd).
    #[arg(long)]
    pub local_lr: Option<f64>,
    /// The momentum of the devices' sgd.
    #[arg(long)]
    pub local_momentum: Option<f64>,
    /// Devices weigh each class's loss by n / (k · n_c) (true or false; --class-weights
    /// sets the central comparison's).
    #[arg(long, action = clap::ArgAction::Set)]
    pub local_class_weights: Option<bool>,
    /// Normalised averaging at the edges (FedNova): each device's change divided by its
    /// local path length, so its voice does not grow with its step count (true or false).
    #[arg(long, action = clap::ArgAction::Set)]
    pub normalized_averaging: Option<bool>,
    /// Rounds in the centred moving average of validation macro-F1 that picks the kept
    /// round (1: the single best round).
    #[arg(long)]
    pub selection_window: Option<usize>,
    /// How the preprocessing pipeline is fitted: summaries (the statistics round: each
    /// device sends bounded summaries of its rows, the cloud fits the pipeline from them;
    /// no row leaves a device) or pooled (on the pooled training rows, for comparison).
    /// [default: summaries]
    #[arg(long, value_parser = spelled::<PipelineFit>)]
    pub pipeline: Option<PipelineFit>,
    /// Where each round's global model is scored to pick the kept round: cloud (the
    /// validation rows, which the cloud holds) or devices (each device scores the later
    /// part of its own traffic, as Flower's evaluate round does, and the cloud sums their
    /// confusion matrices; implies --node-tables; not with differential privacy).
    /// [default: cloud]
    #[arg(long, value_parser = spelled::<ValidationSite>)]
    pub validate_on: Option<ValidationSite>,
    /// Secure aggregation at the edges (SecAgg+): devices mask their updates and an edge
    /// learns only their sum, even when some drop mid-round. Needs mean aggregation at the
    /// edges.
    #[arg(long)]
    pub secure_aggregation: bool,
    /// Secure aggregation's neighbourhood: devices each shares its secrets with, itself
    /// included [default: all of the round's devices up to 64, then logarithmic].
    #[arg(long)]
    pub secagg_neighbours: Option<usize>,
    /// Shares that rebuild a device's secrets; an edge round with fewer devices left
    /// yields nothing [default: a majority of the neighbourhood].
    #[arg(long)]
    pub secagg_threshold: Option<usize>,
    /// Differential privacy (DP-FedAvg): the noise multiplier σ. Devices' changes are
    /// clipped to --dp-clip, an edge adds N(0, (σ·clip)²) to their sum each edge round, and
    /// devices take part by Poisson sampling at --fraction [default: none, DP off; with
    /// --dp-target-epsilon alone, the smallest σ that fits every round in it].
    #[arg(long)]
    pub dp_noise_multiplier: Option<f64>,
    /// The L2 norm each device's change is clipped to under DP [default: 2].
    #[arg(long)]
    pub dp_clip: Option<f64>,
    /// The δ of the (ε, δ) guarantee [default: 1e-5, or 1/devices² if smaller].
    #[arg(long)]
    pub dp_delta: Option<f64>,
    /// Stop before a round would spend more than this ε.
    #[arg(long)]
    pub dp_target_epsilon: Option<f64>,
    /// Skip training the same model centrally for comparison.
    #[arg(long)]
    pub no_central: bool,
    /// Each device, the validation rows and the test rows in a table of their own
    /// (timing features and flow windows over their own rows only), as the files
    /// `iotids deal` writes give networked nodes: the run equals a networked run on those
    /// files to the last bit. The default; the flag is kept for scripts that give it.
    #[arg(long, conflicts_with = "pooled_table")]
    pub node_tables: bool,
    /// One pooled table instead of node tables: timing features over the whole file and
    /// the test rows scored inside it, which no deployed device can compute (README
    /// "Federated parity"; the simulation of before 2026-12-06).
    #[arg(long)]
    pub pooled_table: bool,
    /// Also run the same federation with each aggregation rule (mean, median,
    /// trimmed-mean:0.2, krum) at both tiers, without the attack and with it (--attack):
    /// robustness.csv, a chart and a report section show where FedAvg fails and robust
    /// aggregation holds.
    #[arg(long)]
    pub robustness: bool,
}

/// The network and how to train it.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// Records per window: 1 classifies each record alone (the seeds' setting); K adds the
    /// K-1 records before it between the same two hosts (or of the same flow: --window-by).
    /// [default: 16 when the file has endpoint columns (flows), else 1]
    #[arg(long)]
    pub window: Option<NonZeroUsize>,
    /// What a window follows: host-pair (the packets before it between the same two
    /// hosts, any ports: a connection's handshake follows the hosts' previous
    /// connection) or flow (same endpoints and ports only). Saved in the model.
    /// [default: host-pair for train and demo; flow for compare and in a federation]
    #[arg(long, value_parser = spelled::<WindowBy>)]
    pub window_by: Option<WindowBy>,
    /// Networks trained from consecutive seeds (--seed, --seed + 1, ...) on the same rows,
    /// whose class probabilities the detector averages: steadier on traffic never seen,
    /// K times the training and scoring time. 1: a single network. A federation trains
    /// one. [default: 5 for train and compare]
    #[arg(long)]
    pub ensemble: Option<NonZeroUsize>,
    /// Share of training windows each mini-batch cuts to a random number of their last
    /// records (the rest padding), as a detector that starts in the middle of a flow (a
    /// restart, a capture cut) sees its first windows; in [0, 1], 0: none.
    /// [default: 0.1 with windows by host pair in train, compare and demo; 0 by flow, with
    /// --unknown-rate and in a federation]
    #[arg(long, value_parser = unit_interval)]
    pub truncate: Option<f64>,
    /// Units of each GRU layer's hidden state.
    #[arg(long, default_value_t = nonzero(SHAPE.hidden))]
    pub hidden: NonZeroUsize,
    /// Stacked GRU layers.
    #[arg(long, default_value_t = nonzero(SHAPE.layers))]
    pub layers: NonZeroUsize,
    /// Dropout between layers and before the head, during training (in [0, 1)).
    #[arg(long, value_parser = probability_below_one, default_value_t = SHAPE.dropout)]
    pub dropout: f64,
    /// The seeds' eq. 3 (reset gate before the recurrent product) instead of the
    /// PyTorch/Keras variant (after it).
    #[arg(long)]
    pub reset_before: bool,
    /// Most epochs.
    #[arg(long, default_value_t = nonzero(TRAIN.epochs))]
    pub epochs: NonZeroUsize,
    /// Windows per mini-batch.
    #[arg(long, default_value_t = nonzero(TRAIN.batch_size))]
    pub batch: NonZeroUsize,
    /// Adam's learning rate (> 0).
    #[arg(long, value_parser = learning_rate, default_value_t = TRAIN.learning_rate)]
    pub lr: f64,
    /// Stop after this many epochs in which neither the validation macro-F1 nor the
    /// validation loss improved (0: never); the epoch with the best validation macro-F1 is
    /// kept either way.
    #[arg(long, default_value_t = TRAIN.patience)]
    pub patience: usize,
    /// Weigh each class's loss by n / (k · n_c), so a rare attack counts as much as a
    /// common one [default: plain cross-entropy].
    #[arg(long, conflicts_with = "no_class_weights")]
    pub class_weights: bool,
    /// Plain cross-entropy (the default; kept for old command lines).
    #[arg(long)]
    pub no_class_weights: bool,
    /// Turn on the unknown-traffic test: a window the model calls benign but whose hidden
    /// state is farther from the benign training traffic than all but this share of the
    /// benign windows of its kind (a flow's first packets: the training and validation
    /// rows' flow starts; full windows: the validation rows, and the training rows') is
    /// marked `unknown` (an alert). The share is the false-alarm rate the test may cost on
    /// traffic like the training rows (in [0, 1); 0.001 is a good start; devices the
    /// training traffic lacks cost more, see README "Unknown attacks") [default: off].
    #[arg(long, value_parser = probability_below_one, conflicts_with = "no_unknown")]
    pub unknown_rate: Option<f64>,
    /// No unknown-traffic test (the default; kept for old command lines).
    #[arg(long)]
    pub no_unknown: bool,
    /// Set the benign-vs-attack decision on the validation rows so that at most this
    /// share of benign traffic raises an alert (in [0, 1)); saved in the model
    /// [default: the most probable class].
    #[arg(long, value_parser = probability_below_one)]
    pub max_false_alarm: Option<f64>,
}

/// `compare` settings besides the data's and the networks'.
#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Score every model on this labelled file instead of the split's test rows (read the
    /// way the training file was, through the fitted pipeline; the training file is then
    /// split into training and validation rows only). Rows of classes the training file
    /// lacks are counted and reported, not scored.
    #[arg(long)]
    pub test: Option<PathBuf>,
    /// Models to compare, comma-separated: lr, nb, knn, svm, tree, forest, gbdt (classical:
    /// each at window 1 and at --classical-window; MODEL@K for window K alone, e.g.
    /// gbdt@8), mlp, rnn, lstm, gru1 (GRU on single records), gru (GRU on windows of
    /// --window records).
    #[arg(long, value_delimiter = ',', value_parser = spelled::<Choice>,
          default_values_t = Choice::all())]
    pub models: Vec<Choice>,
    /// Records per window of the classical models' windowed rows (the flow's last K
    /// records flattened side by side, zeros before the flow's start), besides their
    /// single-record rows; 1: single records only. [default: --window, at most 8]
    #[arg(long)]
    pub classical_window: Option<NonZeroUsize>,
    /// Most training rows of a model, as MODEL=N (comma-separated; N = all lifts the
    /// limit), at every window. Defaults: knn=50000, svm=2000, forest=100000,
    /// tree=500000, lr=500000; the others train on all rows. A limited model trains on a
    /// stratified subsample, and the table says so.
    #[arg(long, value_delimiter = ',', value_parser = row_cap)]
    pub max_rows: Vec<RowCap>,
}

/// `compare`'s classical window when --classical-window is not given: --window, at most
/// this (a flattened row is K × features wide; on MQTTset windows 4, 8 and 16 scored
/// alike and the boosted trees' fit time doubles with K).
pub const CLASSICAL_WINDOW_MAX: usize = 8;

/// One `--max-rows` item: a model and its limit (None: all rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowCap {
    pub model: ModelKind,
    pub rows: Option<NonZeroUsize>,
}

/// `bench-gru` settings (the rest is the configuration: 64 features, hidden 64,
/// one layer, 15 classes, Adam, f32).
#[derive(Debug, Clone, Args)]
pub struct GruBenchArgs {
    /// Window lengths to measure (comma-separated).
    #[arg(long, value_delimiter = ',', default_values_t = GRU_BENCH.windows.iter().map(|&w| nonzero(w)))]
    pub windows: Vec<NonZeroUsize>,
    /// Windows per batch.
    #[arg(long, default_value_t = nonzero(GRU_BENCH.batch))]
    pub batch: NonZeroUsize,
    /// Timed runs per figure; the median is reported.
    #[arg(long, default_value_t = nonzero(GRU_BENCH.repeat))]
    pub repeat: NonZeroUsize,
    /// Least length of one timed run, in seconds (> 0).
    #[arg(long, value_parser = positive_seconds, default_value_t = GRU_BENCH.min_seconds)]
    pub seconds: f64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// How to read the input file.
#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    /// Dataset layout: edge-iiot, bot-iot, tshark or generic [default: from the header].
    #[arg(long, value_parser = spelled::<Format>)]
    pub format: Option<Format>,
    /// Label column [default: the layout's, e.g. Attack_type, category, label].
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
    /// Require the timing features from the packet time column (frame.time), which stays
    /// dropped: flow.iat_us (microseconds since the flow's previous packet), flow.index
    /// (packets of the flow before this one) and host.iat_us (microseconds since the
    /// previous packet between the same two hosts, any ports); a file without a time
    /// column or endpoint columns is then an error [default: added whenever the file has
    /// both].
    #[arg(long, conflicts_with = "no_flow_timing")]
    pub flow_timing: bool,
    /// Never add the timing features.
    #[arg(long)]
    pub no_flow_timing: bool,
    /// With the timing features, count a flow's earlier packets (flow.index) up to N: a
    /// detector that starts in the middle of a long connection counts it from 0, and after
    /// N packets agrees again with one that saw it open. Saved with the model. 0: no cap.
    /// [default: 32]
    #[arg(long, value_name = "N")]
    pub flow_index_cap: Option<u32>,
}

/// Cleaning, splitting and pipeline flags.
#[derive(Debug, Clone, Args)]
pub struct PrepArgs {
    /// Duplicates to remove before splitting: none, exact or features.
    #[arg(long, value_parser = spelled::<Dedup>, default_value_t = PREPARE.dedup)]
    pub dedup: Dedup,
    /// Remove training-row outliers: iqr[:K] or zscore[:Z] [default: off].
    #[arg(long, value_parser = outliers)]
    pub outliers: Option<Outliers>,
    /// Scaling: minmax, standard or none.
    #[arg(long, value_parser = spelled::<Scaler>, default_value_t = PIPELINE.scaler)]
    pub scaler: Scaler,
    /// Feature selection: pearson, chi2 or none.
    #[arg(long, value_parser = spelled::<SelectMethod>, default_value_t = PIPELINE.select)]
    pub select: SelectMethod,
    /// Keep at most K features (required with chi2).
    #[arg(long)]
    pub k: Option<NonZeroUsize>,
    /// Pearson: of two features correlated above this, keep the more relevant (in [0, 1]).
    #[arg(long, value_parser = unit_interval, default_value_t = PIPELINE.corr_threshold)]
    pub corr_threshold: f64,
    /// Most one-hot levels per categorical column; rarer values share "<other>".
    #[arg(long, default_value_t = nonzero(PIPELINE.max_categories))]
    pub max_categories: NonZeroUsize,
    /// Split: time (per class in capture order: earliest rows train, latest test; flows
    /// of a session stay whole), flow (whole flows on one side, at random), stratified
    /// (rows at random) or auto (= time: what holds on later traffic).
    #[arg(long, value_parser = spelled::<SplitMethod>, default_value_t = PREPARE.split.method)]
    pub split: SplitMethod,
    /// Train/validation/test fractions: three numbers in [0, 1] summing to 1.
    #[arg(long, value_parser = fractions, default_value_t = Fractions::default())]
    pub fractions: Fractions,
    /// Seed of the split, the pipeline's sampling, the initial weights and the batch order.
    #[arg(long, default_value_t = PREPARE.split.seed)]
    pub seed: u64,
    /// ln(1 + x) on never-negative numeric columns reaching 1000 (sequence numbers, byte
    /// counts, timing) before scaling, so a neural network can tell their values apart
    /// [default: on; the flag is kept for old command lines].
    #[arg(long, conflicts_with = "no_log_scale")]
    pub log_scale: bool,
    /// Scale heavy-tailed columns linearly, as the seeds did.
    #[arg(long)]
    pub no_log_scale: bool,
    /// One-hot encode text columns with more distinct training values than
    /// --max-categories (top levels and "<other>") instead of leaving them out as
    /// identifiers (topics, host names, URIs).
    #[arg(long)]
    pub keep_identifiers: bool,
}

/// `--fractions`: train, validation and test shares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fractions(pub [f64; 3]);

impl Default for Fractions {
    /// The split's defaults.
    fn default() -> Self {
        let s = &PREPARE.split;
        Fractions([s.train, s.validation, s.test])
    }
}

impl std::fmt::Display for Fractions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c] = self.0;
        write!(f, "{a:.2},{b:.2},{c:.2}")
    }
}

/// The command with the federation defaults added to `federate`'s help: the flags are
/// `Option`s (a flag overrides the config file, which overrides the default), so clap
/// cannot show a default itself; each is read from `FederationConfig::default()`.
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let defaults = match toml::Value::try_from(&*FEDERATION) {
        Ok(toml::Value::Table(t)) => t,
        _ => toml::map::Map::new(),
    };
    Cli::command().mut_subcommand("federate", |sub| {
        let ids: Vec<String> = sub
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect();
        ids.into_iter().fold(sub, |sub, id| {
            let Some(value) = defaults.get(&id) else {
                return sub;
            };
            let shown = match value {
                toml::Value::String(s) => s.clone(),
                v => v.to_string(),
            };
            sub.mut_arg(&id, |a| {
                let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
                a.help(format!("{help} [default: {shown}]"))
            })
        })
    })
}

/// Parses the process's arguments (exit 2 with clap's message on a usage error).
pub fn parse() -> Cli {
    use clap::FromArgMatches;
    let matches = command().get_matches();
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// A default that is a positive count by construction.
fn nonzero(n: usize) -> NonZeroUsize {
    NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN)
}

/// A value spelled as its type's `FromStr` accepts; the error lists the spellings.
fn spelled<T>(s: &str) -> Result<T, String>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    s.parse::<T>().map_err(|e| e.to_string())
}

/// `A..B` (A to B-1), `A..=B` (A to B) or `D`: a non-empty range of device ids.
fn device_range(s: &str) -> Result<std::ops::Range<usize>, String> {
    let id = |t: &str| -> Result<usize, String> {
        t.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{t}` is not a device id (0, 1, 2, ...)"))
    };
    let allowed = "A..B (devices A to B-1), A..=B (A to B) or one device D";
    let range = if let Some((a, b)) = s.split_once("..=") {
        let b = id(b)?;
        id(a)?
            ..b.checked_add(1)
                .ok_or_else(|| format!("{b} is too large"))?
    } else if let Some((a, b)) = s.split_once("..") {
        id(a)?..id(b)?
    } else {
        let d = id(s).map_err(|e| format!("{e}; give {allowed}"))?;
        d..d + 1
    };
    if range.is_empty() {
        return Err(format!("no devices in {s}; give {allowed}, with A below B"));
    }
    Ok(range)
}

fn number(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite())
        .ok_or_else(|| "expected a number".to_string())
}

fn unit_interval(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err("expected a number in [0, 1]".into())
    }
}

fn probability_below_one(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err("expected a number in [0, 1)".into())
    }
}

fn learning_rate(s: &str) -> Result<f64, String> {
    match number(s) {
        Ok(v) if v > 0.0 => Ok(v),
        _ => Err("the learning rate must be a number > 0".into()),
    }
}

/// Longest alert or stats interval: a year.
const MAX_INTERVAL: u64 = 365 * 24 * 3600;

fn interval_seconds(s: &str) -> Result<u64, String> {
    match s.trim().parse::<u64>() {
        Ok(v) if v <= MAX_INTERVAL => Ok(v),
        _ => Err(format!(
            "expected whole seconds from 0 (off) to {MAX_INTERVAL} (a year)"
        )),
    }
}

fn html_path(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    let html = p
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
    if html && !p.is_dir() {
        Ok(p)
    } else {
        Err("expected a file name ending in .html".into())
    }
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match number(s) {
        Ok(v) if v > 0.0 => Ok(v),
        _ => Err("expected a number of seconds > 0".into()),
    }
}

fn fractions(s: &str) -> Result<Fractions, String> {
    let bad = || "expected three numbers in [0, 1] summing to 1, like 0.64,0.16,0.20".to_string();
    let f: Vec<f64> = s
        .split(',')
        .map(|x| number(x).ok().filter(|v| (0.0..=1.0).contains(v)))
        .collect::<Option<_>>()
        .ok_or_else(bad)?;
    match f[..] {
        [a, b, c] if ((a + b + c) - 1.0).abs() < 1e-6 => Ok(Fractions([a, b, c])),
        _ => Err(bad()),
    }
}

fn outliers(s: &str) -> Result<Outliers, String> {
    let (name, arg) = match s.split_once(':') {
        Some((n, a)) => (n, Some(a)),
        None => (s, None),
    };
    let num = |default: f64| -> Result<f64, String> {
        match arg {
            None => Ok(default),
            Some(a) => a
                .parse::<f64>()
                .ok()
                .filter(|v| *v > 0.0 && v.is_finite())
                .ok_or_else(|| format!("`{a}` is not a positive number")),
        }
    };
    match name {
        "iqr" => Ok(Outliers::Iqr { k: num(1.5)? }),
        "zscore" | "z" => Ok(Outliers::ZScore { z: num(3.0)? }),
        _ => Err("expected iqr[:K] or zscore[:Z]".into()),
    }
}

fn row_cap(s: &str) -> Result<RowCap, String> {
    let (model, n) = s
        .split_once('=')
        .ok_or_else(|| "expected MODEL=N, e.g. knn=20000".to_string())?;
    let model: ModelKind = spelled(model.trim())?;
    let rows = match n.trim() {
        "all" => None,
        n => Some(
            n.parse::<NonZeroUsize>()
                .map_err(|_| "N is a positive whole number or all".to_string())?,
        ),
    };
    Ok(RowCap { model, rows })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outlier_rules_parse() {
        assert_eq!(outliers("iqr").unwrap(), Outliers::Iqr { k: 1.5 });
        assert_eq!(outliers("zscore:2.5").unwrap(), Outliers::ZScore { z: 2.5 });
        assert!(outliers("iqr:-1").is_err());
        assert!(outliers("median").is_err());
    }

    #[test]
    fn fractions_parse_and_show_the_split_defaults() {
        assert_eq!(
            fractions("0.7, 0.1,0.2").unwrap(),
            Fractions([0.7, 0.1, 0.2])
        );
        assert!(fractions("0.7,0.1").is_err());
        assert!(fractions("0.7,0.2,0.2").is_err());
        assert!(fractions("a,b,c").is_err());
        assert_eq!(Fractions::default().to_string(), "0.64,0.16,0.20");
    }

    #[test]
    fn row_caps_parse() {
        assert_eq!(
            row_cap("knn=20").unwrap(),
            RowCap {
                model: ModelKind::Knn,
                rows: NonZeroUsize::new(20)
            }
        );
        assert_eq!(row_cap("svm=all").unwrap().rows, None);
        assert!(row_cap("knn=0").is_err());
        assert!(row_cap("knn").is_err());
        assert!(row_cap("nosuch=3").is_err());
    }

    #[test]
    fn cli_is_well_formed_and_federate_help_shows_the_library_defaults() {
        command().debug_assert();
        let mut cmd = command();
        let help = cmd
            .find_subcommand_mut("federate")
            .expect("federate")
            .render_help()
            .to_string();
        assert!(help.contains("Devices [default: 20]"), "{help}");
        assert!(help.contains("[default: dirichlet-time]"), "{help}");
    }
}
