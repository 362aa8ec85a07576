//! The `bench*` commands: ingest throughput, GRU throughput, federated round time. The
//! measuring is the libraries'; this prints it.

use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use iotids_data::clean::{Dedup, dedup};
use iotids_data::read_csv;
use iotids_federation::bench::{FederationBenchConfig, round_time};
use iotids_model::bench::{GruBenchConfig, gru_throughput, peak_rss_kib};

use crate::job::{BenchJob, BenchPacketsJob, Ui};
use crate::output::{print, print_json};
use crate::progress;

/// Ingest + clean throughput and peak memory, median of `repeat` runs.
pub fn ingest(job: &BenchJob) -> Result<ExitCode> {
    let file = &job.input.path;
    let opts = &job.input.ingest;
    let bytes = std::fs::metadata(file)
        .with_context(|| format!("{}: cannot read", file.display()))?
        .len();
    let mut secs = Vec::new();
    let mut rows = 0;
    let mut dups = 0;
    for _ in 0..job.repeat {
        let t = Instant::now();
        let mut ds = read_csv(file, opts)?;
        dups = dedup(&mut ds, Dedup::Exact);
        secs.push(t.elapsed().as_secs_f64());
        rows = ds.n_rows();
    }
    secs.sort_by(f64::total_cmp);
    let median = secs[secs.len() / 2];
    let peak = peak_rss_kib().map(|kib| kib * 1024);
    let threads = if opts.threads == 0 {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    } else {
        opts.threads
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
    if job.json {
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
pub fn gru(cfg: &GruBenchConfig, json: bool, ui: Ui) -> Result<ExitCode> {
    let bar = progress::step("measuring the GRU (a minute or so)", ui.quiet);
    let r = gru_throughput(cfg);
    bar.finish_and_clear();
    let r = r?;
    if json {
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

/// Time per cloud round for each device count.
pub fn federation(cfg: &FederationBenchConfig, json: bool) -> Result<ExitCode> {
    let rows = round_time(cfg)?;
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

/// `iotids bench-secagg`: secure against plain aggregation, per edge round.
pub fn secagg(cfg: &iotids_federation::bench::SecAggBenchConfig, json: bool) -> Result<ExitCode> {
    let rows = iotids_federation::bench::secure_aggregation_cost(cfg)?;
    if json {
        return print_json(&rows).map(|()| ExitCode::SUCCESS);
    }
    let mut out = format!(
        "one edge round, updates of {} weights, {:.0} % of devices dropping after dealing; medians of {} runs, one thread\n",
        cfg.weights,
        cfg.dropout * 100.0,
        cfg.repeats
    );
    out += "devices  k   t  summed | plain: device ms  edge ms  device kB  edge MB | secure: device ms  edge ms  device kB  edge MB\n";
    for r in &rows {
        out += &format!(
            "{:>7} {:>3} {:>3} {:>7} | {:>16.3} {:>8.2} {:>10.1} {:>8.2} | {:>17.1} {:>8.1} {:>10.1} {:>8.2}\n",
            r.devices,
            r.neighbours,
            r.threshold,
            r.included,
            r.plain_device_ms,
            r.plain_edge_ms,
            r.plain_device_bytes as f64 / 1e3,
            r.plain_edge_bytes as f64 / 1e6,
            r.secure_device_ms,
            r.secure_edge_ms,
            r.secure_device_bytes as f64 / 1e3,
            r.secure_edge_bytes as f64 / 1e6,
        );
    }
    print(out.trim_end())?;
    Ok(ExitCode::SUCCESS)
}

/// The median of `runs` timings of `f`, in seconds, and `f`'s last result.
fn median_of<T>(runs: usize, mut f: impl FnMut() -> Result<T>) -> Result<(f64, T)> {
    let mut secs = Vec::new();
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        last = Some(f()?);
        secs.push(t.elapsed().as_secs_f64());
    }
    secs.sort_by(f64::total_cmp);
    let out = last.context("no run")?;
    Ok((secs[secs.len() / 2], out))
}

/// `extract` against tshark-fields.sh on one capture, and `detect` with a model.
pub fn packets(job: &BenchPacketsJob) -> Result<ExitCode> {
    let capture = &job.capture;
    let (extract_s, packets) = median_of(job.repeat, || {
        let s = iotids_packets::write_csv_files(
            std::slice::from_ref(capture),
            &mut std::io::sink(),
            |_| (),
        )?;
        Ok(s.iter().map(|c| c.packets).sum::<u64>())
    })?;
    let extract_pps = packets as f64 / extract_s;
    let tshark = match &job.tshark_script {
        Some(script) => {
            let (s, ()) = median_of(job.repeat, || {
                let st = std::process::Command::new(script)
                    .arg(capture)
                    .stdout(std::process::Stdio::null())
                    .status()
                    .with_context(|| format!("{}: cannot run", script.display()))?;
                anyhow::ensure!(st.success(), "{}: {st}", script.display());
                Ok(())
            })?;
            Some(s)
        }
        None => None,
    };
    let detect = match &job.model {
        Some(dir) => {
            let detector = iotids_model::artifact::Detector::load(dir)?;
            let (s, summary) = median_of(job.repeat, || {
                let mut engine = iotids_detect::Engine::new(
                    &detector,
                    iotids_detect::Config {
                        hop: job.hop,
                        ..iotids_detect::Config::default()
                    },
                    None,
                    None,
                )?;
                engine.start_capture(&capture.display().to_string(), false);
                let mut reader = iotids_packets::CaptureReader::open(capture)?;
                reader.for_each(|p| -> Result<()> { Ok(engine.packet(p)?) })?;
                Ok(engine.finish()?)
            })?;
            Some((s, summary, detector.card.window))
        }
        None => None,
    };
    let replay = match (&job.model, job.replay_seconds) {
        (Some(dir), Some(secs)) => Some(replay(capture, dir, secs, job.hop)?),
        _ => None,
    };
    let peak = peak_rss_kib().map(|kib| kib * 1024);
    let threads = rayon::current_num_threads();
    let v = serde_json::json!({
        "replay": replay,
        "capture": capture,
        "packets": packets,
        "repeat": job.repeat,
        "extract_seconds": extract_s,
        "extract_packets_per_second": extract_pps,
        "tshark_script": job.tshark_script,
        "tshark_seconds": tshark,
        "tshark_packets_per_second": tshark.map(|s| packets as f64 / s),
        "extract_speedup": tshark.map(|s| s / extract_s),
        "detect_seconds": detect.as_ref().map(|d| d.0),
        "detect_packets_per_second": detect.as_ref().map(|d| packets as f64 / d.0),
        "detect_window": detect.as_ref().map(|d| d.2),
        "detect_hop": job.hop,
        "detect_alerts": detect.as_ref().map(|d| d.1.alert_total()),
        "threads": threads,
        "peak_rss_bytes": peak,
    });
    if job.json {
        print_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = format!(
        "{}: {packets} packets; extract {:.3} s = {:.0} packets/s (median of {})",
        capture.display(),
        extract_s,
        extract_pps,
        job.repeat
    );
    match tshark {
        Some(s) => text.push_str(&format!(
            "; tshark-fields.sh {:.3} s = {:.0} packets/s: extract {:.1}x",
            s,
            packets as f64 / s,
            s / extract_s
        )),
        None => {
            text.push_str("; tshark-fields.sh not timed (no --tshark-script, no ../shared/data)")
        }
    }
    if let Some((s, _, k)) = &detect {
        text.push_str(&format!(
            "; detect (window {k}, hop {}) {:.3} s = {:.0} packets/s on {threads} threads",
            job.hop,
            s,
            packets as f64 / s
        ));
    }
    text.push_str(&format!(
        "; peak RSS {:.0} MB",
        peak.unwrap_or(0) as f64 / 1e6
    ));
    if let Some(r) = &replay {
        let mb = |kib: u64| kib as f64 * 1024.0 / 1e6;
        text.push_str(&format!(
            "\nreplay: {} passes in {:.0} s, {} packets ({:.0} packets/s), {} flows ({} evicted, at most {} held); resident memory after pass 1 {:.1} MB, after the last {:.1} MB, most {:.1} MB (sampled after every pass)",
            r.passes,
            r.seconds,
            r.packets,
            r.packets as f64 / r.seconds.max(1e-9),
            r.flows,
            r.flows_evicted,
            r.held_peak.flows,
            mb(r.rss_kib.first().copied().unwrap_or(0)),
            mb(r.rss_kib.last().copied().unwrap_or(0)),
            mb(r.rss_kib.iter().copied().max().unwrap_or(0)),
        ));
    }
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// What a replay measured.
#[derive(Debug, serde::Serialize)]
struct Replay {
    passes: u64,
    seconds: f64,
    packets: u64,
    flows: u64,
    flows_evicted: u64,
    /// Resident memory after each pass, KiB.
    rss_kib: Vec<u64>,
    held_peak: iotids_detect::engine::Held,
}

/// Replays `capture` into one detector with `model` for `seconds` of wall time. Pass `n`
/// moves every packet `n` times the capture's span plus the idle timeout later, and adds
/// `n` to the second byte of both addresses of every IPv4 packet (the second and third of
/// IPv6), a bijection that keeps each flow whole while making it new, so the flow table,
/// conversations and windows see an endless stream of new flows.
fn replay(
    capture: &std::path::Path,
    model: &std::path::Path,
    seconds: u64,
    hop: usize,
) -> Result<Replay> {
    let detector = iotids_model::artifact::Detector::load(model)?;
    let config = iotids_detect::Config {
        hop,
        ..iotids_detect::Config::default()
    };
    let mut packets: Vec<(i64, u32, iotids_packets::LinkType, Vec<u8>, u32)> = Vec::new();
    let mut reader = iotids_packets::CaptureReader::open(capture)?;
    reader.for_each(|p| -> Result<()> {
        packets.push((p.seconds, p.nanos, p.link, p.data.to_vec(), p.original_len));
        Ok(())
    })?;
    anyhow::ensure!(
        !packets.is_empty(),
        "{}: no packets to replay",
        capture.display()
    );
    let first = packets.iter().map(|p| p.0).min().unwrap_or(0);
    let last = packets.iter().map(|p| p.0).max().unwrap_or(0);
    let shift = (last - first) + config.idle_seconds as i64 + 1;
    let offsets: Vec<Option<(usize, bool)>> = packets
        .iter()
        .map(|(s, n, link, data, len)| {
            let p = iotids_packets::Packet {
                number: 0,
                seconds: *s,
                nanos: *n,
                link: *link,
                data,
                original_len: *len,
            };
            iotids_packets::decode::ip_header_offset(&p)
        })
        .collect();
    let mut engine = iotids_detect::Engine::new(&detector, config, None, None)?;
    engine.start_capture(&capture.display().to_string(), false);
    let started = Instant::now();
    let mut rss = Vec::new();
    let mut pass: u64 = 0;
    let mut frame = Vec::new();
    while started.elapsed().as_secs() < seconds {
        for ((s, n, link, data, len), off) in packets.iter().zip(&offsets) {
            frame.clear();
            frame.extend_from_slice(data);
            if let Some((at, v4)) = *off {
                let bump = pass as u8;
                // Source and destination: IPv4 at 12 and 16, IPv6 at 8 and 24.
                let (src, dst) = if v4 { (12, 16) } else { (8, 24) };
                for a in [at + src + 1, at + dst + 1] {
                    if let Some(b) = frame.get_mut(a) {
                        *b = b.wrapping_add(bump);
                    }
                }
                if !v4 {
                    let hi = (pass >> 8) as u8;
                    for a in [at + src + 2, at + dst + 2] {
                        if let Some(b) = frame.get_mut(a) {
                            *b = b.wrapping_add(hi);
                        }
                    }
                }
            }
            let p = iotids_packets::Packet {
                number: 0,
                seconds: s + shift * pass as i64,
                nanos: *n,
                link: *link,
                data: &frame,
                original_len: *len,
            };
            engine.packet(&p)?;
        }
        engine.flush()?;
        pass += 1;
        rss.push(iotids_model::bench::rss_kib().unwrap_or(0));
    }
    let secs = started.elapsed().as_secs_f64();
    let s = engine.finish()?;
    Ok(Replay {
        passes: pass,
        seconds: secs,
        packets: s.packets,
        flows: s.flows,
        flows_evicted: s.flows_evicted,
        rss_kib: rss,
        held_peak: s.held_peak,
    })
}
