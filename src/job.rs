//! Checked jobs: the raw flags of [`crate::cli`] become one validated job per command,
//! before any input is read or any output written (ripgrep's high-level arguments). A
//! command module receives its job and never sees a flag; a bad value is refused here with
//! exit 2, naming the flag, the value and what is allowed.
//!
//! What a single flag can be (a number > 0, a spelling) clap checks while parsing; what
//! needs several flags, a config file or a library's rules is checked in [`resolve`], by the
//! library's own `check` where there is one, with its field names mapped to the flags.

use std::collections::BTreeMap;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use iotids_baselines::compare::{ModelKind, Settings, Variant};
use iotids_data::audit::AuditOptions;
use iotids_data::pipeline::{PipelineConfig, SelectMethod};
use iotids_data::prepare::PrepareConfig;
use iotids_data::split::SplitConfig;
use iotids_data::window::WindowBy;
use iotids_data::{FlowTiming, IngestOptions};
use iotids_federation::FederationConfig;
use iotids_federation::bench::FederationBenchConfig;
use iotids_model::bench::GruBenchConfig;
use iotids_model::gru::GruShape;
use iotids_model::novelty::Calibration;
use iotids_model::train::{TrainConfig, default_truncate};
use iotids_synth::SynthOptions;

use crate::cli::{
    Cli, Command, CompareArgs, FailOn, FederateArgs, FlowerArgs, FlowerRole, FlowerStep,
    IngestArgs, ModelArgs, NodeArgs, PrepArgs, ScheduleArgs,
};

/// How the run talks to the person: progress and logs, and the worker threads.
#[derive(Debug, Clone, Copy)]
pub struct Ui {
    /// No progress bars, no logs but errors.
    pub quiet: bool,
    /// Log verbosity (`-v` count).
    pub verbose: u8,
    /// Worker threads; None: one per core.
    pub threads: Option<NonZeroUsize>,
}

impl Ui {
    /// Threads as the libraries take them (0: one per core).
    pub fn threads(&self) -> usize {
        self.threads.map_or(0, NonZeroUsize::get)
    }
}

/// One command's checked settings.
#[derive(Debug)]
pub enum Job {
    Privacy {
        sampling_rate: f64,
        noise: iotids_privacy::Noise,
        steps: u64,
        delta: f64,
    },
    Describe {
        input: Input,
        json: bool,
    },
    Audit(AuditJob),
    Synth(SynthJob),
    Prepare(PrepareJob),
    Train(TrainJob),
    Federate(FederateJob),
    Certs {
        out: PathBuf,
        edges: usize,
        devices: usize,
        sans: Vec<String>,
        days: u32,
    },
    Deal(FederateJob),
    Cloud(CloudJob),
    Edge(EdgeJob),
    Device(DeviceJob),
    DevicePool(DevicePoolJob),
    FlowerDevice {
        flower: FlowerArgs,
        id: usize,
        data: PathBuf,
    },
    FlowerEdge {
        flower: FlowerArgs,
        node: NodeArgs,
        listen: std::net::SocketAddr,
    },
    FlowerServer(FlowerServerJob),
    FlowerProtocol,
    FlowerKeygen {
        out: PathBuf,
        format: iotids_flower::KeyFormat,
        comment: String,
    },
    Compare(CompareJob),
    Evaluate(EvaluateJob),
    Predict(PredictJob),
    Demo(DemoJob),
    Extract(ExtractJob),
    Detect(DetectJob),
    BenchGru {
        config: GruBenchConfig,
        json: bool,
    },
    BenchSecagg {
        config: iotids_federation::bench::SecAggBenchConfig,
        json: bool,
    },
    BenchFederation {
        config: FederationBenchConfig,
        json: bool,
    },
    Bench(BenchJob),
    BenchPackets(BenchPacketsJob),
}

/// A labelled file and how to read it.
#[derive(Debug, Clone)]
pub struct Input {
    /// The file; `-` is standard input.
    pub path: PathBuf,
    pub ingest: IngestOptions,
}

#[derive(Debug)]
pub struct AuditJob {
    pub input: Input,
    pub json: bool,
    pub fail_on: FailOn,
    pub options: AuditOptions,
}

#[derive(Debug)]
pub struct SynthJob {
    pub out: PathBuf,
    pub options: SynthOptions,
}

#[derive(Debug)]
pub struct PrepareJob {
    pub input: Input,
    pub out: PathBuf,
    pub prepare: PrepareConfig,
    pub write_features: bool,
}

/// What `train`, `federate` and `compare` share: a file to learn from, its preparation
/// and the network.
#[derive(Debug, Clone)]
pub struct LearnJob {
    pub input: Input,
    /// Output (and model) directory.
    pub out: PathBuf,
    pub prepare: PrepareConfig,
    /// Records per window.
    pub window: NonZeroUsize,
    /// `--window` was given: a file without flows is then an error rather than read one
    /// record at a time.
    pub window_given: bool,
    /// What a window follows.
    pub window_by: WindowBy,
    /// The GRU's shape; the data gives its input width and classes.
    pub net: GruShape,
    pub train: TrainConfig,
    /// Networks trained from consecutive seeds and averaged (1 in a federation).
    pub ensemble: NonZeroUsize,
    /// The decision rule fitted after training.
    pub calibration: Calibration,
}

#[derive(Debug)]
pub struct TrainJob {
    pub learn: LearnJob,
    /// Evaluate on this labelled file instead of the split's test rows.
    pub test: Option<PathBuf>,
}

#[derive(Debug)]
pub struct FederateJob {
    pub learn: LearnJob,
    /// Evaluate on this labelled file instead of the split's test rows.
    pub test: Option<PathBuf>,
    pub federation: FederationConfig,
    /// Also train centrally for comparison.
    pub central: bool,
    /// Also run every aggregation rule with and without the attack.
    pub robustness: bool,
    /// Each node (device, validation, test) on a table of its own, as the dealt files give
    /// the networked nodes.
    pub node_tables: bool,
}

#[derive(Debug)]
pub struct CompareJob {
    pub learn: LearnJob,
    /// The models at their windows, in the order given, each once.
    pub models: Vec<Variant>,
    pub settings: Settings,
    /// Score on this labelled file instead of the split's test rows.
    pub test: Option<PathBuf>,
}

#[derive(Debug)]
pub struct EvaluateJob {
    pub input: PathBuf,
    pub model: PathBuf,
    pub out: PathBuf,
    /// Windows per inference batch.
    pub batch: usize,
}

#[derive(Debug)]
pub struct PredictJob {
    pub input: PathBuf,
    pub model: PathBuf,
    /// None: standard output.
    pub out: Option<PathBuf>,
    pub batch_rows: usize,
}

#[derive(Debug)]
pub struct ExtractJob {
    pub captures: Vec<PathBuf>,
    /// None: standard output.
    pub out: Option<PathBuf>,
}

#[derive(Debug)]
pub struct DetectJob {
    pub model: PathBuf,
    /// Captures to read; empty with `interface` or `labelled`.
    pub captures: Vec<PathBuf>,
    /// Labelled captures (class folders or manifests) to read instead, in order.
    pub labelled: Vec<iotids_packets::labelled::Labelled>,
    /// The HTML report.
    pub report: Option<PathBuf>,
    pub interface: Option<String>,
    /// `-` is standard output.
    pub eve: Option<PathBuf>,
    pub verdicts: Option<PathBuf>,
    pub bpf: Option<String>,
    pub config: iotids_detect::Config,
    pub count: Option<u64>,
    pub json: bool,
}

#[derive(Debug)]
pub struct BenchPacketsJob {
    pub capture: PathBuf,
    pub model: Option<PathBuf>,
    /// None: no tshark run (the default script is missing).
    pub tshark_script: Option<PathBuf>,
    pub repeat: usize,
    /// With the model: replay the capture into one detector for this long (see
    /// `bench-packets --replay-seconds`).
    pub replay_seconds: Option<u64>,
    /// `detect --hop`.
    pub hop: usize,
    pub json: bool,
}

#[derive(Debug)]
pub struct DemoJob {
    pub out: PathBuf,
    pub rows: u64,
    pub seed: u64,
}

#[derive(Debug)]
pub struct BenchJob {
    pub input: Input,
    pub repeat: usize,
    pub json: bool,
}

/// Checks every flag of `cli` and builds its command's job; the person-facing settings
/// come back beside it.
///
/// # Errors
///
/// The first bad flag, as `--flag value: what is allowed`.
pub fn resolve(cli: Cli) -> Result<(Job, Ui)> {
    let ui = Ui {
        quiet: cli.quiet,
        verbose: cli.verbose,
        threads: cli.threads,
    };
    let threads = ui.threads();
    let input = |path: PathBuf, ingest: &IngestArgs| Input {
        path,
        ingest: ingest_options(ingest, threads),
    };
    let job = match cli.command {
        Command::Privacy {
            sampling_rate,
            noise_multiplier,
            target_epsilon,
            steps,
            delta,
        } => Job::Privacy {
            sampling_rate,
            noise: match (noise_multiplier, target_epsilon) {
                (Some(sigma), _) => iotids_privacy::Noise::Multiplier(sigma),
                (None, Some(target)) => iotids_privacy::Noise::TargetEpsilon(target),
                (None, None) => bail!("give --noise-multiplier or --target-epsilon"),
            },
            steps,
            delta,
        },
        Command::Describe { file, ingest, json } => Job::Describe {
            input: input(file, &ingest),
            json,
        },
        Command::Audit {
            file,
            ingest,
            json,
            fail_on,
            threshold,
        } => Job::Audit(AuditJob {
            input: input(file, &ingest),
            json,
            fail_on,
            options: AuditOptions {
                predictor_threshold: threshold,
                ..AuditOptions::default()
            },
        }),
        Command::Synth {
            rows,
            out,
            seed,
            balanced,
        } => Job::Synth(SynthJob {
            out,
            options: SynthOptions {
                rows,
                seed,
                balanced,
            },
        }),
        Command::Prepare {
            file,
            out,
            ingest,
            prep,
            write_features,
        } => Job::Prepare(PrepareJob {
            input: input(file, &ingest),
            out,
            prepare: prepare_config(&prep, false)?,
            write_features,
        }),
        Command::Train {
            file,
            out,
            test,
            ingest,
            prep,
            model,
        } => Job::Train(TrainJob {
            learn: learn_job(
                input(file, &ingest),
                out,
                &prep,
                &model,
                test.is_some(),
                WindowBy::HostPair,
            )?,
            test,
        }),
        Command::Federate {
            file,
            out,
            test,
            federation,
            ingest,
            prep,
            model,
        } => {
            let learn = one_network(
                learn_job(
                    input(file, &ingest),
                    out,
                    &prep,
                    &model,
                    test.is_some(),
                    WindowBy::Flow,
                )?,
                &model,
            )?;
            Job::Federate(FederateJob {
                test,
                federation: federation_config(&federation, prep.seed)?,
                central: !federation.no_central,
                robustness: federation.robustness,
                node_tables: !federation.pooled_table,
                learn,
            })
        }
        Command::Certs {
            out,
            edges,
            devices,
            sans,
            days,
        } => {
            if edges == 0 || devices < edges {
                bail!(
                    "--edges {edges} --devices {devices}: need at least one edge and at least one device per edge"
                );
            }
            Job::Certs {
                out,
                edges,
                devices,
                sans,
                days,
            }
        }
        Command::Deal {
            file,
            out,
            federation,
            ingest,
            prep,
            model,
        } => {
            // Flags that change only what `federate` runs after dealing.
            for (given, flag) in [
                (federation.no_central, "--no-central"),
                (federation.robustness, "--robustness"),
                (federation.node_tables, "--node-tables"),
                (federation.pooled_table, "--pooled-table"),
            ] {
                if given {
                    bail!(
                        "{flag}: a flag of `federate`; `deal` only writes the devices', validation and test files (the nodes read each on its own, as `federate` does by default)"
                    );
                }
            }
            Job::Deal(FederateJob {
                learn: one_network(
                    learn_job(
                        input(file, &ingest),
                        out,
                        &prep,
                        &model,
                        false,
                        WindowBy::Flow,
                    )?,
                    &model,
                )?,
                test: None,
                federation: federation_config(&federation, prep.seed)?,
                central: false,
                robustness: false,
                node_tables: false,
            })
        }
        Command::Cloud {
            checkpoint,
            node,
            listen,
            edge_deadline,
            schedule,
        } => {
            let schedule = schedule_job(schedule, threads)?;
            let federation = &schedule.federation;
            let edge_deadline = match edge_deadline {
                Some(s) => positive_seconds("--edge-deadline", s)?,
                None => {
                    federation.edge_rounds as f64
                        * federation.deadline.unwrap_or(schedule.device_deadline)
                        + 30.0
                }
            };
            Job::Cloud(CloudJob {
                checkpoint: checkpoint.unwrap_or_else(|| schedule.learn.out.join("checkpoint")),
                schedule,
                node,
                listen,
                edge_deadline,
            })
        }
        Command::Edge {
            cloud,
            node,
            listen,
        } => Job::Edge(EdgeJob {
            cloud,
            node,
            listen,
        }),
        Command::Device { edge, data, node } => Job::Device(DeviceJob { edge, data, node }),
        Command::Flower { role } => match role {
            FlowerRole::Device { flower, id, data } => Job::FlowerDevice { flower, id, data },
            FlowerRole::Protocol => Job::FlowerProtocol,
            FlowerRole::Keygen {
                out,
                format,
                comment,
            } => Job::FlowerKeygen {
                format: format
                    .parse()
                    .map_err(|_| anyhow!("--format {format}: must be openssh, pkcs8 or sec1"))?,
                out,
                comment,
            },
            FlowerRole::Edge {
                flower,
                node,
                listen,
            } => Job::FlowerEdge {
                flower,
                node,
                listen,
            },
            FlowerRole::Server {
                step,
                answers,
                round,
                weights,
                flat,
                schedule,
            } => {
                match step {
                    FlowerStep::Absorb if answers.is_empty() => {
                        bail!("`flower server absorb` needs the answer files")
                    }
                    FlowerStep::Score if round.is_none() || weights.is_none() => {
                        bail!("`flower server score` needs --round and --weights")
                    }
                    _ => {}
                }
                Job::FlowerServer(FlowerServerJob {
                    step,
                    answers,
                    round,
                    weights,
                    flat,
                    schedule: schedule_job(schedule, threads)?,
                })
            }
        },
        Command::DevicePool {
            deal,
            certs,
            edges,
            devices,
            train_slots,
            max_message_mb,
            give_up,
        } => Job::DevicePool(DevicePoolJob {
            deal,
            certs,
            edges,
            devices,
            train_slots,
            max_message_mb,
            give_up,
        }),
        Command::Compare {
            file,
            out,
            compare,
            ingest,
            prep,
            model,
        } => {
            // Windows by flow unless asked: by host pair, perpetual's boosting on the
            // flattened windows of MQTTset's development file stopped far later (748 s
            // against 30 s), and every model of the table reads the same windows.
            let learn = learn_job(
                input(file, &ingest),
                out,
                &prep,
                &model,
                compare.test.is_some(),
                WindowBy::Flow,
            )?;
            Job::Compare(compare_job(learn, &compare))
        }
        Command::Evaluate {
            file,
            model,
            out,
            batch,
        } => Job::Evaluate(EvaluateJob {
            input: file,
            model,
            out,
            batch: batch.get(),
        }),
        Command::Predict {
            file,
            model,
            out,
            batch_rows,
        } => Job::Predict(PredictJob {
            input: file,
            model,
            out,
            batch_rows: batch_rows.get(),
        }),
        Command::Demo { out, rows, seed } => Job::Demo(DemoJob { out, rows, seed }),
        Command::Detect {
            captures,
            model,
            interface,
            eve,
            verdicts,
            alert_interval,
            stats_interval,
            report,
            bpf,
            batch,
            max_flows,
            idle_timeout,
            hop,
            count,
            json,
        } => {
            if let Some(f) = &bpf {
                iotids_packets::bpf::Filter::new(f).map_err(|why| anyhow!("--bpf `{f}`: {why}"))?;
            }
            // Labelled captures (class folders, manifests) or plain ones, not both: the
            // verdicts have a `true` column for all rows or none.
            let (labelled, plain): (Vec<&PathBuf>, Vec<&PathBuf>) = captures
                .iter()
                .partition(|p| iotids_packets::labelled::is_labelled_captures(p));
            if let (Some(l), Some(p)) = (labelled.first(), plain.first()) {
                bail!(
                    "detect: {} is labelled captures and {} a capture file: give labelled captures (folders of class folders, .toml manifests) or capture files, not both",
                    l.display(),
                    p.display()
                );
            }
            let labelled = labelled
                .into_iter()
                .map(|p| iotids_packets::labelled::Labelled::open(p))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let captures = if labelled.is_empty() {
                captures
            } else {
                Vec::new()
            };
            Job::Detect(DetectJob {
                config: iotids_detect::Config {
                    batch_packets: batch.get(),
                    max_flows: max_flows.get(),
                    idle_seconds: idle_timeout,
                    model: model.display().to_string(),
                    hop: hop.get(),
                    alert_interval,
                    stats_interval,
                },
                model,
                captures,
                labelled,
                report,
                interface,
                eve,
                verdicts,
                bpf,
                count: count.map(|c| c.get() as u64),
                json,
            })
        }
        Command::BenchPackets {
            capture,
            model,
            tshark_script,
            repeat,
            replay_seconds,
            hop,
            json,
        } => Job::BenchPackets(BenchPacketsJob {
            capture,
            model,
            tshark_script: tshark_script.or_else(|| {
                let d = PathBuf::from("../shared/data/tshark-fields.sh");
                d.exists().then_some(d)
            }),
            repeat: repeat.get(),
            replay_seconds,
            hop: hop.get(),
            json,
        }),
        Command::Extract { captures, out } => Job::Extract(ExtractJob {
            captures,
            out: Some(out).filter(|p| p.as_os_str() != "-"),
        }),
        Command::BenchGru { args } => Job::BenchGru {
            config: GruBenchConfig {
                batch: args.batch.get(),
                windows: args.windows.iter().map(|w| w.get()).collect(),
                repeat: args.repeat.get(),
                min_seconds: args.seconds,
                threads: ui.threads.map(NonZeroUsize::get),
                ..GruBenchConfig::default()
            },
            json: args.json,
        },
        Command::BenchSecagg {
            devices,
            weights,
            dropout,
            repeats,
            json,
        } => {
            let defaults = iotids_federation::bench::SecAggBenchConfig::default();
            let devices: Vec<usize> = devices.iter().map(|d| d.get()).collect();
            if let Some(d) = devices.iter().find(|&&d| d < 2) {
                bail!("--devices {d}: secure aggregation needs at least 2 devices per edge");
            }
            Job::BenchSecagg {
                config: iotids_federation::bench::SecAggBenchConfig {
                    devices,
                    weights: weights.map_or(defaults.weights, NonZeroUsize::get),
                    dropout,
                    repeats: repeats.get(),
                },
                json,
            }
        }
        Command::BenchFederation {
            rows,
            devices,
            edges,
            rounds,
            window,
            json,
        } => {
            let config = FederationBenchConfig {
                rows: rows.get(),
                validation_rows: (rows.get() / 10).max(1),
                devices: devices.iter().map(|d| d.get()).collect(),
                edges: edges.get(),
                rounds: rounds.get(),
                window: window.get(),
            };
            if let Some(d) = config.devices.iter().find(|&&d| d < config.edges) {
                bail!(
                    "--devices {d}: every device count must be at least --edges ({})",
                    config.edges
                );
            }
            Job::BenchFederation { config, json }
        }
        Command::Bench {
            file,
            ingest,
            repeat,
            json,
        } => Job::Bench(BenchJob {
            // The ingest benchmark measures reading as BENCHMARKS.md has always measured
            // it: the timing features only when asked for.
            input: Input {
                path: file,
                ingest: IngestOptions {
                    flow_timing: FlowTiming::from(ingest.flow_timing),
                    ..ingest_options(&ingest, threads)
                },
            },
            repeat: repeat.get(),
            json,
        }),
    };
    Ok((job, ui))
}

fn ingest_options(args: &IngestArgs, threads: usize) -> IngestOptions {
    IngestOptions {
        format: args.format,
        label: args.label.clone(),
        drop: args.drop.clone(),
        keep: args.keep.clone(),
        categorical: args.categorical.clone(),
        flow_timing: match (args.flow_timing, args.no_flow_timing) {
            (true, _) => FlowTiming::On,
            (_, true) => FlowTiming::Off,
            _ => FlowTiming::Auto,
        },
        flow_index_cap: Some(
            args.flow_index_cap
                .unwrap_or(iotids_data::timing::DEFAULT_INDEX_CAP),
        )
        .filter(|&n| n > 0),
        threads,
        rejects_path: args.rejects.clone(),
        ..IngestOptions::default()
    }
}

/// The preparation. With `separate_test` (a
/// `--test FILE`) the file is split into training and validation rows only, in the ratio
/// of `--fractions`' first two numbers.
fn prepare_config(prep: &PrepArgs, separate_test: bool) -> Result<PrepareConfig> {
    let [train, validation, test] = prep.fractions.0;
    let mut split = SplitConfig {
        method: prep.split,
        train,
        validation,
        test,
        seed: prep.seed,
    };
    if separate_test {
        split = split.without_test();
    }
    split.check().map_err(data_flag_error)?;
    let pipeline = PipelineConfig {
        max_categories: prep.max_categories.get(),
        scaler: prep.scaler,
        select: prep.select,
        k: prep.k.map(NonZeroUsize::get),
        corr_threshold: prep.corr_threshold,
        seed: prep.seed,
        log_compress: !prep.no_log_scale,
        drop_identifiers: !prep.keep_identifiers,
        ..PipelineConfig::default()
    };
    if pipeline.select == SelectMethod::Chi2 && pipeline.k.is_none() {
        bail!("--select chi2: chi-square selection keeps the top K features; give --k K");
    }
    pipeline.check().map_err(data_flag_error)?;
    Ok(PrepareConfig {
        dedup: prep.dedup,
        outliers: prep.outliers,
        split,
        pipeline,
    })
}

/// A preparation setting's error in the words of its flag (`pipeline.k` is `--k`).
fn data_flag_error(e: iotids_data::Error) -> anyhow::Error {
    let iotids_data::Error::Invalid {
        field,
        value,
        allowed,
    } = &e
    else {
        return e.into();
    };
    let flag = match *field {
        "pipeline.max_categories" => "--max-categories",
        "pipeline.corr_threshold" => "--corr-threshold",
        "pipeline.k" => "--k",
        "split.method" => "--split",
        f if f.starts_with("split.") => "--fractions",
        _ => return e.into(),
    };
    anyhow!("{flag} {value}: must be {allowed}")
}

/// A learning job's settings; windows follow `by_default` unless `--window-by` says, and
/// the window cuts' default follows from what they follow ([`default_truncate`]).
fn learn_job(
    input: Input,
    out: PathBuf,
    prep: &PrepArgs,
    model: &ModelArgs,
    separate_test: bool,
    by_default: WindowBy,
) -> Result<LearnJob> {
    let unknown_test = model.unknown_rate.is_some() && !model.no_unknown;
    let prepare = prepare_config(prep, separate_test)?;
    let seed = prep.seed;
    let window_by = model.window_by.unwrap_or(by_default);
    let train = TrainConfig {
        epochs: model.epochs.get(),
        batch_size: model.batch.get(),
        learning_rate: model.lr,
        patience: model.patience,
        class_weights: model.class_weights,
        seed,
        truncate: model
            .truncate
            .unwrap_or(default_truncate(window_by, unknown_test)),
        ..TrainConfig::default()
    };
    train.check().map_err(|e| model_flag_error(&e, model))?;
    let net = GruShape {
        hidden: model.hidden.get(),
        layers: model.layers.get(),
        dropout: model.dropout,
        reset_after: !model.reset_before,
        seed,
    };
    net.check().map_err(|e| model_flag_error(&e, model))?;
    Ok(LearnJob {
        input,
        out,
        prepare,
        calibration: Calibration {
            unknown_rate: model.unknown_rate.filter(|_| !model.no_unknown),
            max_false_alarm: model.max_false_alarm,
        },
        window: model.window.unwrap_or(
            NonZeroUsize::new(iotids_model::gru::DEFAULT_WINDOW).expect("a window of records"),
        ),
        window_given: model.window.is_some(),
        window_by,
        net,
        train,
        ensemble: model
            .ensemble
            .unwrap_or(iotids_model::artifact::DEFAULT_ENSEMBLE),
    })
}

/// A federation trains one network: `--ensemble` above 1 is refused by name, and no window
/// is cut unless `--truncate` says. Its windows follow flows unless `--window-by` says
/// otherwise (its jobs are made with `learn_job(.., WindowBy::Flow)`): on the development
/// protocol a
/// federation by host pair lost 3.7 points of macro-F1 (0.907 against 0.944, 7.6 % false
/// alarms) with `flow.index` uncapped, where central training gained; capped, by host
/// pair it scored as by flow (0.964 against 0.960 over three seeds of the flow-count deal,
/// 0.947 against 0.956 held out; README "Federated parity").
fn one_network(mut learn: LearnJob, model: &ModelArgs) -> Result<LearnJob> {
    if let Some(k) = model.ensemble.filter(|k| k.get() > 1) {
        bail!(
            "--ensemble {k}: must be 1 in a federation, which trains one network (train and compare average several)"
        );
    }
    learn.ensemble = NonZeroUsize::MIN;
    // Cut windows were measured in central training only: off unless asked.
    learn.train.truncate = model.truncate.unwrap_or(0.0);
    Ok(learn)
}

/// `iotids flower server`.
#[derive(Debug)]
pub struct FlowerServerJob {
    pub step: FlowerStep,
    pub answers: Vec<PathBuf>,
    pub round: Option<usize>,
    pub weights: Option<PathBuf>,
    pub flat: bool,
    pub schedule: ScheduleJob,
}

/// What the top of a federation decides (`cloud`, `flower server`), checked.
#[derive(Debug)]
pub struct ScheduleJob {
    /// The validation file as `learn.input`, the output folder as `learn.out`.
    pub learn: LearnJob,
    pub federation: FederationConfig,
    pub test: Option<PathBuf>,
    pub device_deadline: f64,
    pub statistics_deadline: f64,
}

fn schedule_job(a: ScheduleArgs, threads: usize) -> Result<ScheduleJob> {
    let input = Input {
        path: a.validation,
        ingest: ingest_options(&a.ingest, threads),
    };
    Ok(ScheduleJob {
        learn: one_network(
            learn_job(input, a.out, &a.prep, &a.model, false, WindowBy::Flow)?,
            &a.model,
        )?,
        federation: federation_config(&a.federation, a.prep.seed)?,
        test: a.test,
        device_deadline: positive_seconds("--device-deadline", a.device_deadline)?,
        statistics_deadline: positive_seconds("--statistics-deadline", a.statistics_deadline)?,
    })
}

/// `iotids cloud`.
#[derive(Debug)]
pub struct CloudJob {
    pub schedule: ScheduleJob,
    pub checkpoint: PathBuf,
    pub node: NodeArgs,
    pub listen: std::net::SocketAddr,
    pub edge_deadline: f64,
}

/// `iotids edge`.
#[derive(Debug)]
pub struct EdgeJob {
    pub cloud: String,
    pub node: NodeArgs,
    pub listen: std::net::SocketAddr,
}

/// `iotids device`.
#[derive(Debug)]
pub struct DeviceJob {
    pub edge: String,
    pub data: PathBuf,
    pub node: NodeArgs,
}

/// `iotids device-pool`: devices `devices` of a deal folder in one process.
#[derive(Debug, Clone)]
pub struct DevicePoolJob {
    pub deal: PathBuf,
    pub certs: PathBuf,
    pub edges: Vec<String>,
    pub devices: std::ops::Range<usize>,
    pub train_slots: NonZeroUsize,
    pub max_message_mb: usize,
    pub give_up: u64,
}

fn positive_seconds(flag: &str, v: f64) -> Result<f64> {
    if v > 0.0 && v.is_finite() {
        Ok(v)
    } else {
        bail!("{flag} {v}: must be a positive number of seconds")
    }
}

/// A model config error in the words of the flags.
fn model_flag_error(e: &iotids_model::Error, model: &ModelArgs) -> anyhow::Error {
    let iotids_model::Error::Config { field, allowed, .. } = e else {
        return anyhow!("{e}");
    };
    let (flag, value) = match *field {
        "epochs" => ("--epochs", model.epochs.to_string()),
        "batch_size" => ("--batch", model.batch.to_string()),
        "learning_rate" => ("--lr", model.lr.to_string()),
        "hidden" => ("--hidden", model.hidden.to_string()),
        "layers" => ("--layers", model.layers.to_string()),
        "dropout" => ("--dropout", model.dropout.to_string()),
        _ => return anyhow!("{e}"),
    };
    anyhow!("{flag} {value}: {allowed}")
}

/// The federation: the --config file's settings (or the defaults) with the flags on top;
/// the seed is the run's `--seed`.
fn federation_config(args: &FederateArgs, seed: u64) -> Result<FederationConfig> {
    let mut c = match &args.config {
        Some(path) => FederationConfig::from_toml_file(path).context("--config")?,
        None => FederationConfig::default(),
    };
    // The flags given, by the config's field name.
    let mut given: Vec<&'static str> = Vec::new();
    macro_rules! set {
        ($($field:ident),*) => {
            $(if let Some(v) = args.$field.clone() {
                c.$field = v;
                given.push(stringify!($field));
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
        quorum,
        device_rate,
        speed_spread,
        bandwidth,
        malicious,
        attack,
        attack_scale,
        class_wise_head,
        logit_adjustment,
        local_optimizer,
        local_momentum,
        normalized_averaging,
        local_class_weights,
        selection_window,
        pipeline,
        validate_on
    );
    if args.local_lr.is_some() {
        c.local_lr = args.local_lr;
        given.push("local_lr");
    }
    if args.deadline.is_some() {
        c.deadline = args.deadline;
        given.push("deadline");
    }
    if args.secure_aggregation {
        c.secure_aggregation = true;
        given.push("secure_aggregation");
    }
    macro_rules! set_some {
        ($($field:ident),*) => {
            $(if args.$field.is_some() {
                c.$field = args.$field;
                given.push(stringify!($field));
            })*
        };
    }
    set_some!(
        secagg_neighbours,
        secagg_threshold,
        dp_noise_multiplier,
        dp_delta,
        dp_target_epsilon
    );
    if let Some(clip) = args.dp_clip {
        c.dp_clip = clip;
        given.push("dp_clip");
    }
    c.seed = seed;
    c.check()
        .and_then(|()| c.clone().resolve_privacy())
        .map(|resolved| c = resolved)
        .map_err(|e| match e {
            iotids_federation::Error::Config {
                field,
                value,
                allowed,
            } => {
                let flag = format!("--{}", field.replace('_', "-"));
                match (&args.config, given.contains(&field)) {
                    (Some(path), false) => anyhow!(
                        "{}: `{field} = {value}`: must be {allowed} (or give {flag})",
                        path.display()
                    ),
                    _ => anyhow!("{flag} {value}: must be {allowed}"),
                }
            }
            other => anyhow!("{other}"),
        })?;
    Ok(c)
}

fn compare_job(learn: LearnJob, args: &CompareArgs) -> CompareJob {
    let k = learn.window.get();
    let classical = args
        .classical_window
        .map_or(k.min(crate::cli::CLASSICAL_WINDOW_MAX), NonZeroUsize::get);
    let mut models: Vec<Variant> = Vec::new();
    for choice in &args.models {
        for v in choice.variants(k, classical) {
            if !models.contains(&v) {
                models.push(v);
            }
        }
    }
    let mut caps: BTreeMap<ModelKind, usize> = ModelKind::ALL
        .into_iter()
        .filter_map(|m| m.default_cap().map(|c| (m, c)))
        .collect();
    for cap in &args.max_rows {
        match cap.rows {
            Some(n) => caps.insert(cap.model, n.get()),
            None => caps.remove(&cap.model),
        };
    }
    let settings = Settings {
        train: learn.train.clone(),
        hidden: learn.net.hidden,
        layers: learn.net.layers,
        dropout: learn.net.dropout,
        reset_after: learn.net.reset_after,
        ensemble: learn.ensemble.get(),
        caps,
    };
    CompareJob {
        learn,
        models,
        settings,
        test: args.test.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::FromArgMatches;
    use iotids_data::split::SplitMethod;

    fn resolve_args(args: &[&str]) -> Result<Job> {
        let matches = crate::cli::command()
            .try_get_matches_from(std::iter::once("iotids").chain(args.iter().copied()))
            .map_err(|e| anyhow!("{e}"))?;
        let cli = Cli::from_arg_matches(&matches).map_err(|e| anyhow!("{e}"))?;
        resolve(cli).map(|(job, _)| job)
    }

    fn error(args: &[&str]) -> String {
        format!("{:#}", resolve_args(args).expect_err("should be refused"))
    }

    #[test]
    fn bad_values_name_the_flag_the_value_and_what_is_allowed() {
        let e = error(&["train", "f.csv", "--out", "m", "--lr", "0"]);
        assert!(
            e.contains("--lr") && e.contains("'0'") && e.contains("> 0"),
            "{e}"
        );
        let e = error(&["train", "f.csv", "--out", "m", "--window", "0"]);
        assert!(e.contains("--window") && e.contains("'0'"), "{e}");
        let e = error(&["train", "f.csv", "--out", "m", "--dropout", "1"]);
        assert!(e.contains("--dropout") && e.contains("[0, 1)"), "{e}");
        let e = error(&["prepare", "f.csv", "--out", "m", "--fractions", "0.5,0.5"]);
        assert!(
            e.contains("--fractions") && e.contains("summing to 1"),
            "{e}"
        );
        let e = format!(
            "{:#}",
            data_flag_error(iotids_data::Error::invalid("pipeline.k", 0, "at least 1"))
        );
        assert_eq!(e, "--k 0: must be at least 1");
        let e = error(&["prepare", "f.csv", "--out", "m", "--select", "chi2"]);
        assert!(e.contains("--select chi2") && e.contains("--k"), "{e}");
        let e = error(&["federate", "f.csv", "--out", "m", "--devices", "0"]);
        assert!(e.contains("--devices 0: must be at least 1"), "{e}");
        let e = error(&[
            "federate",
            "f.csv",
            "--out",
            "m",
            "--devices",
            "2",
            "--edges",
            "3",
        ]);
        assert!(e.contains("--edges 3") && e.contains("at most"), "{e}");
        let e = error(&["compare", "f.csv", "--out", "m", "--models", "gru,xgb"]);
        assert!(
            e.contains("--models") && e.contains("xgb") && e.contains("knn"),
            "{e}"
        );
        let e = error(&["compare", "f.csv", "--out", "m", "--models", "lstm@4"]);
        assert!(
            e.contains("--models") && e.contains("lstm@4") && e.contains("classical"),
            "{e}"
        );
        let e = error(&["compare", "f.csv", "--out", "m", "--classical-window", "0"]);
        assert!(e.contains("--classical-window") && e.contains("'0'"), "{e}");
        let e = error(&["audit", "f.csv", "--fail-on", "some"]);
        assert!(e.contains("--fail-on") && e.contains("unmitigated"), "{e}");
        let e = error(&[
            "evaluate", "f.csv", "--model", "m", "--out", "o", "--batch", "0",
        ]);
        assert!(e.contains("--batch") && e.contains("'0'"), "{e}");
    }

    #[test]
    fn a_federation_file_value_is_named_by_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fed.toml");
        std::fs::write(&path, "rounds = 0\n").unwrap();
        let e = error(&[
            "federate",
            "f.csv",
            "--out",
            "m",
            "--config",
            path.to_str().unwrap(),
        ]);
        assert!(e.contains("fed.toml") && e.contains("`rounds = 0`"), "{e}");
        // The flag overrides the file.
        let job = resolve_args(&[
            "federate",
            "f.csv",
            "--out",
            "m",
            "--config",
            path.to_str().unwrap(),
            "--rounds",
            "3",
        ])
        .unwrap();
        let Job::Federate(f) = job else {
            panic!("not a federate job")
        };
        assert_eq!(f.federation.rounds, 3);
    }

    #[test]
    fn defaults_come_from_the_libraries() {
        let Job::Train(t) = resolve_args(&["train", "f.csv", "--out", "m"]).unwrap() else {
            panic!("not a train job")
        };
        // Windows by host pair cut a tenth of the training windows as at a flow's start.
        assert_eq!(
            t.learn.train,
            TrainConfig {
                truncate: 0.1,
                ..TrainConfig::default()
            }
        );
        assert_eq!(t.learn.net, GruShape::default());
        assert_eq!(t.learn.prepare.pipeline, PipelineConfig::default());
        assert_eq!(t.learn.prepare.split.method, SplitMethod::Auto);
        assert_eq!(t.learn.window.get(), iotids_model::gru::DEFAULT_WINDOW);
        assert!(!t.learn.window_given);
        assert_eq!(t.learn.window_by, WindowBy::HostPair);
        assert_eq!(t.learn.calibration, Calibration::default());
        let Job::Federate(f) = resolve_args(&["federate", "f.csv", "--out", "m"]).unwrap() else {
            panic!("not a federate job")
        };
        assert_eq!(f.federation, FederationConfig::default());
        // A federation's windows follow flows unless asked.
        assert_eq!(f.learn.window_by, WindowBy::Flow);
        let Job::Federate(f) = resolve_args(&[
            "federate",
            "f.csv",
            "--out",
            "m",
            "--window-by",
            "host-pair",
        ])
        .unwrap() else {
            panic!("not a federate job")
        };
        assert_eq!(f.learn.window_by, WindowBy::HostPair);
        // A federation cuts no window unless asked, whatever its windows follow.
        assert_eq!(f.learn.train.truncate, 0.0);
        let Job::Compare(c) = resolve_args(&["compare", "f.csv", "--out", "m"]).unwrap() else {
            panic!("not a compare job")
        };
        assert_eq!(c.learn.window.get(), 16);
        assert_eq!(c.learn.window_by, WindowBy::Flow);
        assert_eq!(c.learn.train.truncate, 0.0);
        let keys: Vec<String> = c.models.iter().map(|v| v.key()).collect();
        assert_eq!(
            keys.join(","),
            "lr,lr@8,nb,nb@8,knn,knn@8,svm,svm@8,tree,tree@8,forest,forest@8,gbdt,gbdt@8,mlp,rnn,lstm,gru1,gru"
        );
        assert_eq!(c.test, None);
        let Job::Compare(c) = resolve_args(&[
            "compare",
            "f.csv",
            "--out",
            "m",
            "--window",
            "4",
            "--models",
            "gbdt,tree@2,gru",
        ])
        .unwrap() else {
            panic!("not a compare job")
        };
        let keys: Vec<String> = c.models.iter().map(|v| v.key()).collect();
        assert_eq!(keys, ["gbdt", "gbdt@4", "tree@2", "gru"]);
        assert_eq!(c.models[3].window, 4);
        let Job::Compare(c) = resolve_args(&[
            "compare",
            "f.csv",
            "--out",
            "m",
            "--models",
            "knn",
            "--classical-window",
            "1",
        ])
        .unwrap() else {
            panic!("not a compare job")
        };
        assert_eq!(c.models, [Variant::new(ModelKind::Knn, 1, 16)]);
        let Job::Prepare(p) = resolve_args(&["prepare", "f.csv", "--out", "m"]).unwrap() else {
            panic!("not a prepare job")
        };
        assert_eq!(p.prepare.split.method, SplitMethod::Auto);
        assert_eq!(p.prepare.split.train, SplitConfig::default().train);
    }

    #[test]
    fn the_flow_index_is_capped_by_default_and_a_zero_cap_turns_it_off() {
        let cap = |extra: &[&str]| {
            let mut a = vec!["train", "f.csv", "--out", "m"];
            a.extend(extra);
            match resolve_args(&a).unwrap() {
                Job::Train(t) => t.learn.input.ingest.flow_index_cap,
                _ => panic!("not a train job"),
            }
        };
        assert_eq!(cap(&[]), Some(iotids_data::timing::DEFAULT_INDEX_CAP));
        assert_eq!(cap(&["--flow-index-cap", "100"]), Some(100));
        assert_eq!(cap(&["--flow-index-cap", "0"]), None);
        // The unknown test keeps the cap (leave-one-attack-out chose it).
        assert_eq!(
            cap(&["--unknown-rate", "0.001"]),
            Some(iotids_data::timing::DEFAULT_INDEX_CAP)
        );
        let err = resolve_args(&["train", "f.csv", "--out", "m", "--flow-index-cap", "many"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--flow-index-cap") && err.contains("many"),
            "{err}"
        );
    }

    #[test]
    fn windows_are_cut_as_at_a_flow_start_by_default_only_by_host_pair() {
        let truncate = |args: &[&str]| match resolve_args(args).unwrap() {
            Job::Train(t) => t.learn.train.truncate,
            Job::Compare(c) => c.learn.train.truncate,
            Job::Federate(f) => f.learn.train.truncate,
            _ => panic!("not a learning job"),
        };
        let base = ["f.csv", "--out", "m"];
        let with = |cmd: &str, extra: &[&str]| {
            let mut a = vec![cmd];
            a.extend(base);
            a.extend(extra);
            truncate(&a)
        };
        assert_eq!(with("train", &[]), 0.1);
        assert_eq!(with("train", &["--window-by", "flow"]), 0.0);
        assert_eq!(with("train", &["--truncate", "0"]), 0.0);
        assert_eq!(
            with("train", &["--window-by", "flow", "--truncate", "0.3"]),
            0.3
        );
        assert_eq!(with("compare", &["--window-by", "host-pair"]), 0.1);
        assert_eq!(with("compare", &["--truncate", "0.2"]), 0.2);
        assert_eq!(with("federate", &["--window-by", "host-pair"]), 0.0);
        assert_eq!(with("federate", &["--truncate", "0.2"]), 0.2);
        let err = resolve_args(&["train", "f.csv", "--out", "m", "--truncate", "1.5"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--truncate") && err.contains("1.5") && err.contains("[0, 1]"),
            "{err}"
        );
    }

    #[test]
    fn a_separate_test_file_splits_train_and_validation_only() {
        let Job::Compare(c) =
            resolve_args(&["compare", "f.csv", "--out", "m", "--test", "t.csv"]).unwrap()
        else {
            panic!("not a compare job")
        };
        assert_eq!(c.learn.prepare.split.test, 0.0);
        assert_eq!(c.test.as_deref(), Some(std::path::Path::new("t.csv")));
        let Job::Train(t) =
            resolve_args(&["train", "f.csv", "--out", "m", "--test", "t.csv"]).unwrap()
        else {
            panic!("not a train job")
        };
        let s = &t.learn.prepare.split;
        assert_eq!(s.test, 0.0);
        assert!((s.train - 0.8).abs() < 1e-12 && (s.validation - 0.2).abs() < 1e-12);
    }
}
