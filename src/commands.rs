//! One function per subcommand. Each reads its inputs through the library crates,
//! prints for people (or JSON for machines) and returns the exit code.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use iotids_data::audit::{self, AuditOptions};
use iotids_data::describe::describe;
use iotids_data::pipeline::Matrix;
use iotids_data::prepare::{PrepareConfig, Prepared, prepare};
use iotids_data::split::SplitMethod;
use iotids_data::{Dataset, IngestOptions, read_csv};
use iotids_report as report;
use iotids_synth::{SynthOptions, write_synth};

use crate::cli::{Cli, Command, GruBenchArgs, IngestArgs};
use crate::{learn, progress};

pub fn run(cli: &Cli) -> Result<ExitCode> {
    match &cli.command {
        Command::Describe { file, ingest, json } => {
            let ds = read(file, &ingest.options(cli.threads)?, cli.quiet)?;
            let bar = progress::step("computing statistics", cli.quiet);
            let d = describe(&ds);
            bar.finish_and_clear();
            if *json {
                print_json(&d)?;
            } else {
                print(&report::render_description(&d))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            file,
            ingest,
            json,
            fail_on,
            threshold,
        } => {
            if !(0.0..=1.0).contains(threshold) {
                anyhow::bail!("--threshold {threshold}: expected a number in [0, 1]");
            }
            let ds = read(file, &ingest.options(cli.threads)?, cli.quiet)?;
            let opts = AuditOptions {
                predictor_threshold: *threshold,
                ..AuditOptions::default()
            };
            let bar = progress::step("auditing", cli.quiet);
            let a = audit::audit(&ds, &opts);
            bar.finish_and_clear();
            if *json {
                print_json(&a)?;
            } else {
                print(&report::render_audit(&a))?;
            }
            let failing = if fail_on == "unmitigated" {
                a.unmitigated()
            } else {
                a.findings.len()
            };
            Ok(if failing > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Synth {
            rows,
            out,
            seed,
            balanced,
        } => {
            synth(out, *rows, *seed, *balanced, cli.quiet)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Prepare {
            file,
            out,
            ingest,
            prep,
            write_features,
        } => {
            let cfg = prep.validate()?;
            let opts = ingest.options(cli.threads)?;
            let ds = read(file, &opts, cli.quiet)?;
            let bar = progress::step("splitting and fitting the pipeline", cli.quiet);
            let p = prepare(ds, &opts, &cfg);
            bar.finish_and_clear();
            let p = p?;
            write_prepared(out, &p, &cfg, *write_features)?;
            print(&summary(&p, out))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Train {
            file,
            out,
            test,
            ingest,
            prep,
            model,
        } => learn::train(file, out, test.as_deref(), ingest, prep, model, cli),
        Command::Federate {
            file,
            out,
            federation,
            ingest,
            prep,
            model,
        } => crate::federate::federate(file, out, federation, ingest, prep, model, cli),
        Command::Compare {
            file,
            out,
            compare,
            ingest,
            prep,
            model,
        } => crate::compare::compare(file, out, compare, ingest, prep, model, cli),
        Command::Evaluate {
            file,
            model,
            out,
            batch,
        } => learn::evaluate_file(file, model, out, *batch, cli),
        Command::Predict {
            file,
            model,
            out,
            batch_rows,
        } => learn::predict(file, model, out.as_deref(), *batch_rows, cli),
        Command::Demo { out, rows, seed } => demo(out, *rows, *seed, cli),
        Command::BenchGru { args } => bench_gru(args, cli),
        Command::BenchFederation {
            rows,
            devices,
            edges,
            rounds,
            window,
            json,
        } => bench_federation(
            &iotids_federation::bench::FederationBenchConfig {
                rows: *rows,
                validation_rows: (*rows / 10).max(1),
                devices: devices.clone(),
                edges: *edges,
                rounds: (*rounds).max(1),
                window: *window,
            },
            *json,
        ),
        Command::Bench {
            file,
            ingest,
            repeat,
            json,
        } => bench(file, ingest, *repeat, *json, cli),
    }
}

/// Reads a file with a progress bar, reporting rejected rows on stderr.
pub(crate) fn read(path: &Path, opts: &IngestOptions, quiet: bool) -> Result<Dataset> {
    let (bar, cb) = progress::reading(path, quiet);
    let opts = IngestOptions {
        progress: Some(cb),
        ..opts.clone()
    };
    let ds = read_csv(path, &opts);
    bar.finish_and_clear();
    let ds = ds?;
    if ds.report.rows_rejected > 0 && !quiet {
        eprintln!(
            "warning: {}: {} of {} rows rejected{}",
            path.display(),
            ds.report.rows_rejected,
            ds.report.rows_read,
            match &opts.rejects_path {
                Some(p) => format!(" (all written to {})", p.display()),
                None => " (--rejects FILE writes all of them)".into(),
            }
        );
        for r in ds.report.first_rejects.iter().take(5) {
            eprintln!("  {}:{}: {}", path.display(), r.line, r.reason);
        }
    }
    Ok(ds)
}

pub(crate) fn print(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    print(&serde_json::to_string_pretty(v)?)
}

fn synth(out: &Path, rows: u64, seed: u64, balanced: bool, quiet: bool) -> Result<()> {
    let bar = progress::step(&format!("generating {rows} rows (synthetic data)"), quiet);
    let file = File::create(out).with_context(|| format!("{}: cannot create", out.display()))?;
    let summary = write_synth(
        BufWriter::with_capacity(1 << 20, file),
        &SynthOptions {
            rows,
            seed,
            balanced,
        },
    )
    .with_context(|| format!("{}: writing generated data", out.display()))?;
    bar.finish_and_clear();
    if !quiet {
        eprintln!(
            "wrote {} generated rows ({} bytes) to {}",
            summary.rows,
            summary.bytes,
            out.display()
        );
    }
    Ok(())
}

pub(crate) fn write_prepared(
    out: &Path,
    p: &Prepared,
    cfg: &PrepareConfig,
    features: bool,
) -> Result<()> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create directory", out.display()))?;
    p.pipeline.save(&out.join("pipeline.json"))?;
    let lines = |rows: &[usize]| {
        rows.iter()
            .map(|&r| p.dataset.lines[r])
            .collect::<Vec<u64>>()
    };
    let split = serde_json::json!({
        "method": cfg.split.method,
        "seed": cfg.split.seed,
        "fractions": [cfg.split.train, cfg.split.validation, cfg.split.test],
        "note": "source line numbers of the rows on each side",
        "train": lines(&p.split.train),
        "validation": lines(&p.split.validation),
        "test": lines(&p.split.test),
    });
    std::fs::write(out.join("split.json"), serde_json::to_string(&split)?)?;
    let summary = serde_json::json!({
        "config": cfg,
        "counts": p.counts,
        "flow_timing": p.dataset.report.timing,
    });
    std::fs::write(
        out.join("prepare.json"),
        serde_json::to_string_pretty(&summary)?,
    )?;
    if features {
        for (name, rows) in [
            ("train", &p.split.train),
            ("validation", &p.split.validation),
            ("test", &p.split.test),
        ] {
            let m = p.pipeline.transform(&p.dataset, rows)?;
            write_matrix(
                &out.join(format!("features-{name}.csv")),
                &m,
                &p.pipeline.feature_names(),
                rows,
                &p.dataset,
            )?;
        }
    }
    Ok(())
}

fn write_matrix(
    path: &Path,
    m: &Matrix,
    names: &[&str],
    rows: &[usize],
    ds: &Dataset,
) -> Result<()> {
    let f = File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    let mut w = csv::Writer::from_writer(BufWriter::new(f));
    let mut header: Vec<&str> = names.to_vec();
    header.push("label");
    w.write_record(&header)?;
    let mut rec = Vec::with_capacity(header.len());
    for (i, &r) in rows.iter().enumerate() {
        rec.clear();
        rec.extend(m.row(i).iter().map(|x| x.to_string()));
        rec.push(ds.classes[ds.labels[r] as usize].clone());
        w.write_record(&rec)?;
    }
    w.flush()?;
    Ok(())
}

pub(crate) fn summary(p: &Prepared, out: &Path) -> String {
    let c = &p.counts;
    let mut s = format!(
        "{} rows in; {} duplicates removed; {} training outliers removed\n\n",
        c.rows_in, c.duplicates_removed, c.outliers_removed
    );
    s += "Split (rows per class):\n";
    s += &report::render_split(&p.split, &p.dataset.labels, &p.dataset.classes);
    s += "\n\n";
    s += &report::render_pipeline(&p.pipeline);
    s += &format!(
        "\nwrote {}/pipeline.json, split.json, prepare.json\n",
        out.display()
    );
    s
}

/// The built-in default job: generate data, describe and audit it, then train the GRU on
/// flow windows, evaluate it on held-out flows and write the report.
fn demo(out: &Path, rows: u64, seed: u64, cli: &Cli) -> Result<ExitCode> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("{}: cannot create directory", out.display()))?;
    let data = out.join("synthetic-edge-iiotset.csv");
    synth(&data, rows, seed, false, cli.quiet)?;
    let opts = IngestOptions {
        threads: cli.threads,
        rejects_path: Some(out.join("rejects.csv")),
        ..IngestOptions::default()
    };
    let ds = read(&data, &opts, cli.quiet)?;
    let d = describe(&ds);
    print("== describe (generated data) ==")?;
    print(&report::render_description(&d))?;
    std::fs::write(out.join("describe.json"), serde_json::to_string_pretty(&d)?)?;
    let a = audit::audit(&ds, &AuditOptions::default());
    print("== audit ==")?;
    print(&report::render_audit(&a))?;
    std::fs::write(out.join("audit.json"), serde_json::to_string_pretty(&a)?)?;
    let mut cfg = PrepareConfig::default();
    // Generated traffic comes in flows, like real captures: keep them whole.
    cfg.split.method = SplitMethod::Flow;
    cfg.split.seed = seed;
    cfg.pipeline.seed = seed;
    let p = prepare(ds, &opts, &cfg)?;
    print("== train (GRU on windows of 8 records of a flow; flow split) ==")?;
    let run = learn::Run {
        description: &d,
        audit: &a,
        config: &cfg,
        subtitle: "generated Edge-IIoTset-schema data (not real traffic)".into(),
    };
    let model_dir = learn::demo_model_dir(out);
    learn::train_prepared(&p, &run, &learn::demo_model_args(), &model_dir, None, cli)?;
    print(&format!(
        "\ndemo done. Open {} (the model, metrics.json, predictions.csv and figures/ are beside it).\nNext: iotids evaluate --model {} FILE --out DIR, or iotids predict --model {} FILE",
        model_dir.join("report.html").display(),
        model_dir.display(),
        model_dir.display()
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// Time per cloud round for each device count.
fn bench_federation(
    cfg: &iotids_federation::bench::FederationBenchConfig,
    json: bool,
) -> Result<ExitCode> {
    let rows = iotids_federation::bench::round_time(cfg)?;
    if json {
        return print_json(&rows).map(|()| ExitCode::SUCCESS);
    }
    let mut out = format!(
        "federated cloud round, {} training rows + {} validation rows, window {}, 1 local epoch, 1 edge round, iid; medians of {} rounds\n",
        cfg.rows, cfg.validation_rows, cfg.window, cfg.rounds
    );
    out += "devices edges  round s  training s  aggregation s  validation s  aggregation/device µs  other/device µs  bytes/round\n";
    for r in &rows {
        out += &format!(
            "{:>7} {:>5} {:>8.3} {:>11.3} {:>14.4} {:>13.3} {:>22.1} {:>16.1} {:>12}\n",
            r.devices,
            r.edges,
            r.round_seconds,
            r.training_seconds,
            r.aggregation_seconds,
            r.evaluation_seconds,
            r.aggregation_per_device_us,
            r.other_per_device_us,
            r.bytes_per_round
        );
    }
    print(out.trim_end())?;
    Ok(ExitCode::SUCCESS)
}

/// Ingest + clean throughput and peak memory, median of `repeat` runs.
fn bench(
    file: &Path,
    ingest: &IngestArgs,
    repeat: usize,
    json: bool,
    cli: &Cli,
) -> Result<ExitCode> {
    let opts = ingest.options(cli.threads)?;
    let bytes = std::fs::metadata(file)
        .with_context(|| format!("{}: cannot read", file.display()))?
        .len();
    let mut secs = Vec::new();
    let mut rows = 0;
    let mut dups = 0;
    for _ in 0..repeat.max(1) {
        let t = Instant::now();
        let mut ds = read_csv(file, &opts)?;
        dups = iotids_data::clean::dedup(&mut ds, iotids_data::clean::Dedup::Exact);
        secs.push(t.elapsed().as_secs_f64());
        rows = ds.n_rows();
    }
    secs.sort_by(f64::total_cmp);
    let median = secs[secs.len() / 2];
    let peak = peak_rss_bytes();
    let threads = if cli.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        cli.threads
    };
    let result = serde_json::json!({
        "tool": "iotids",
        "file": file.display().to_string(),
        "bytes": bytes,
        "rows_kept": rows,
        "duplicates_removed": dups,
        "threads": threads,
        "seconds_median": median,
        "seconds_all": secs,
        "mb_per_s": bytes as f64 / 1e6 / median,
        "peak_rss_bytes": peak,
    });
    if json {
        print_json(&result)?;
    } else {
        print(&format!(
            "{}: {:.1} MB in {:.3} s (median of {}) = {:.0} MB/s, {} rows kept, {} duplicates removed, peak RSS {:.0} MB, {} threads",
            file.display(),
            bytes as f64 / 1e6,
            median,
            secs.len(),
            bytes as f64 / 1e6 / median,
            rows,
            dups,
            peak.unwrap_or(0) as f64 / 1e6,
            threads
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// GRU throughput, latency and memory; see [`iotids_model::bench::gru_throughput`].
fn bench_gru(args: &GruBenchArgs, cli: &Cli) -> Result<ExitCode> {
    use iotids_model::bench::{GruBenchConfig, gru_throughput};
    let cfg = GruBenchConfig {
        batch: args.batch,
        windows: args.windows.clone(),
        repeat: args.repeat,
        min_seconds: args.seconds,
        threads: (cli.threads > 0).then_some(cli.threads),
        ..GruBenchConfig::default()
    };
    let bar = progress::step("measuring the GRU (a minute or so)", cli.quiet);
    let r = gru_throughput(&cfg);
    bar.finish_and_clear();
    let r = r?;
    if args.json {
        return print_json(&r).map(|()| ExitCode::SUCCESS);
    }
    let mut text = format!(
        "GRU {} features, hidden {}, {} layer, {} classes, batch {}, {} threads, {} kernels\n",
        cfg.input, cfg.hidden, cfg.layers, cfg.classes, cfg.batch, r.threads, r.simd
    );
    for w in &r.windows {
        text += &format!(
            "T={:<3} train {:>10.0} samples/s   infer {:>10.0} samples/s (through burn {:.0})\n",
            w.seq, w.train_samples_per_s, w.infer_samples_per_s, w.infer_burn_samples_per_s
        );
    }
    let kib = |k: Option<u64>| k.map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0));
    text += &format!(
        "latency T=1 {:.2} µs (through burn {:.2} µs); peak memory: inference {}, overall {}",
        r.latency_t1_us,
        r.latency_t1_burn_us,
        kib(r.peak_rss_inference_kib),
        kib(r.peak_rss_kib)
    );
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Peak resident set size of this process (Linux `VmHWM`), when known.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
