//! `iotids detect`: packets from captures or an interface, scored, alerts written.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use iotids_detect::{Activity, Engine, Summary};
use iotids_model::artifact::Detector;
use iotids_packets::bpf::Filter;
use iotids_packets::labelled::Walk;
use iotids_packets::live::Live;
use iotids_packets::{CaptureReader, Packet};
use iotids_report::html::{Block, Report};

use crate::job::{DetectJob, Ui};
use crate::output::{print_json, write_file};

/// libpcap's counters of `live`, for the stats lines' `capture` object.
fn kernel_counters(live: &mut Live) -> Result<iotids_detect::eve::CaptureStats> {
    let (kernel_packets, kernel_drops, kernel_ifdrops) = live.stats()?;
    Ok(iotids_detect::eve::CaptureStats {
        kernel_packets,
        kernel_drops,
        kernel_ifdrops,
    })
}

/// A writer on `path` (`-`: standard output).
fn sink(path: &Path) -> Result<Box<dyn Write + Send>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(BufWriter::new(std::io::stdout())));
    }
    let f = File::create(path).with_context(|| format!("{}: cannot create", path.display()))?;
    Ok(Box::new(BufWriter::with_capacity(1 << 16, f)))
}

pub fn run(job: &DetectJob, ui: Ui) -> Result<ExitCode> {
    let detector = Detector::load(&job.model)?;
    // Open the interface before any output file is created: a missing interface or a
    // permission problem is the whole message.
    let live = match &job.interface {
        Some(i) => Some(Live::open(i, job.bpf.as_deref(), 200)?),
        None => None,
    };
    let eve = job.eve.as_deref().map(sink).transpose()?;
    let verdicts = job.verdicts.as_deref().map(sink).transpose()?;
    if let Some(r) = &job.report {
        // Fail before the captures are read, not after.
        File::create(r).with_context(|| format!("--report {}: cannot create", r.display()))?;
    }
    let mut engine =
        Engine::new(&detector, job.config.clone(), eve, verdicts).with_context(|| {
            format!(
                "{}: cannot read packets with this model",
                job.model.display()
            )
        })?;
    let mut filtered = 0u64;
    let limit = job.count.unwrap_or(u64::MAX);
    let mut seen = 0u64;
    match live {
        Some(mut live) => {
            let stop = Arc::new(AtomicBool::new(false));
            let flag = stop.clone();
            ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))
                .context("cannot install the Ctrl-C handler")?;
            engine.start_capture(job.interface.as_deref().unwrap_or("-"), true);
            let mut last_flush = Instant::now();
            while !stop.load(Ordering::SeqCst) && seen < limit {
                let got = live.next(|p| -> Result<()> {
                    seen += 1;
                    engine.packet(p)?;
                    Ok(())
                })?;
                if !got || last_flush.elapsed() >= Duration::from_secs(1) {
                    engine.flush()?;
                    engine.set_capture_stats(kernel_counters(&mut live)?);
                    engine.tick()?;
                    engine.flush_outputs()?;
                    last_flush = Instant::now();
                }
            }
            // The counters at the end, for the last stats line.
            engine.set_capture_stats(kernel_counters(&mut live)?);
        }
        None => {
            let mut filter = job
                .bpf
                .as_deref()
                .map(Filter::new)
                .transpose()
                .map_err(|e| {
                    anyhow::anyhow!("--bpf `{}`: {e}", job.bpf.as_deref().unwrap_or(""))
                })?;
            // A packet read: --bpf first, then scored; false once --count are.
            let mut one = |engine: &mut Engine<'_>, p: &Packet<'_>, path: &Path| -> Result<bool> {
                if let Some(f) = &mut filter {
                    let keep = f
                        .matches(p.link, p.data)
                        .map_err(|e| anyhow::anyhow!("--bpf on {}: {e}", path.display()))?;
                    if !keep {
                        filtered += 1;
                        return Ok(true);
                    }
                }
                seen += 1;
                engine.packet(p)?;
                Ok(seen < limit)
            };
            let mut go = true;
            for path in &job.captures {
                let mut reader = CaptureReader::open(path)?;
                engine.start_capture(&path.display().to_string(), false);
                reader.for_each(|p| -> Result<()> {
                    if go {
                        go = one(&mut engine, p, path)?;
                    }
                    Ok(())
                })?;
                if !go {
                    break;
                }
            }
            // Labelled captures: each entry's time range and filter as `train` applies
            // them, packets numbered among those kept.
            for l in &job.labelled {
                if !go {
                    break;
                }
                let mut path = std::path::PathBuf::new();
                l.walk(|w| -> Result<bool> {
                    match w {
                        Walk::File { path: f, class } => {
                            path = f.to_path_buf();
                            engine.start_labelled_capture(&f.display().to_string(), class);
                            Ok(true)
                        }
                        Walk::Packet(p) => {
                            go = one(&mut engine, p, &path)?;
                            Ok(go)
                        }
                    }
                })?;
            }
        }
    }
    let (summary, activity) = engine.finish_with_activity()?;
    if let Some(r) = &job.report {
        write_file(r, report(job, &summary, &activity, filtered).to_html())?;
    }
    if job.json {
        print_json(&summary)?;
    }
    if !ui.quiet {
        eprint!("{}", summary_text(&summary, filtered));
    }
    Ok(ExitCode::SUCCESS)
}

fn summary_text(s: &Summary, filtered: u64) -> String {
    let mut t = format!(
        "detect: {} packets ({} scored, {} rejected by the ingest, {} not read whole{}), {} flows ({} evicted, at most {} held), {} alert lines for {} packets judged an attack or unknown, {} unknown",
        s.packets,
        s.scored,
        s.rejected,
        s.problems,
        if filtered > 0 {
            format!(", {filtered} more left out by --bpf")
        } else {
            String::new()
        },
        s.flows,
        s.flows_evicted,
        s.flows_peak,
        s.alert_total(),
        s.alert_packet_total(),
        s.unknown,
    );
    t.push_str(&format!(
        "; {:.1} s, {:.0} packets/s\n",
        s.seconds, s.packets_per_second
    ));
    if !s.alert_packets.is_empty() {
        let by: Vec<String> = s
            .alert_packets
            .iter()
            .map(|(c, n)| {
                let lines = s.alerts.get(c).copied().unwrap_or(0);
                format!("{c} {lines} lines for {n} packets")
            })
            .collect();
        t.push_str(&format!(
            "  alerts: {} ({} suppressed by the alert interval)\n",
            by.join(", "),
            s.alerts_suppressed()
        ));
    }
    if let Some(a) = &s.accuracy {
        let by: Vec<String> = a
            .classes
            .iter()
            .map(|(c, r)| {
                let unknown = if r.unknown > 0 {
                    format!(" ({} unknown)", r.unknown)
                } else {
                    String::new()
                };
                format!("{c} {:.1}% of {}{unknown}", 100.0 * r.recall, r.packets)
            })
            .collect();
        t.push_str(&format!(
            "  accuracy: {:.1}% of {} labelled packets; recall {}\n",
            100.0 * a.accuracy,
            a.packets,
            by.join(", ")
        ));
    }
    t
}

/// The `--report` page. Every string from the traffic or the command line (capture
/// names, classes, labels) goes through the page's escaping.
fn report(job: &DetectJob, s: &Summary, a: &Activity, filtered: u64) -> Report {
    let source = match &job.interface {
        Some(i) => format!("interface {i}"),
        None => format!("{} capture files", a.captures.len()),
    };
    let mut r = Report::new(
        "iotids detect",
        format!("model {}, {source}", job.model.display()),
    );
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let mut kv = vec![
        ("packets".to_string(), s.packets.to_string()),
        ("scored".into(), s.scored.to_string()),
        ("rejected by the ingest".into(), s.rejected.to_string()),
        ("not read whole".into(), s.problems.to_string()),
        ("left out by --bpf".into(), filtered.to_string()),
        ("flows".into(), s.flows.to_string()),
        ("flows evicted".into(), s.flows_evicted.to_string()),
        ("most flows held".into(), s.flows_peak.to_string()),
        ("alert lines".into(), s.alert_total().to_string()),
        (
            "packets judged an attack or unknown".into(),
            s.alert_packet_total().to_string(),
        ),
        (
            "suppressed by the alert interval".into(),
            s.alerts_suppressed().to_string(),
        ),
        (
            "alert interval".into(),
            format!("{} s", job.config.alert_interval),
        ),
        ("unknown".into(), s.unknown.to_string()),
        ("stats lines".into(), s.stats_lines.to_string()),
        ("seconds".into(), format!("{:.2}", s.seconds)),
        ("packets/s".into(), format!("{:.0}", s.packets_per_second)),
    ];
    if let Some(acc) = &s.accuracy {
        kv.push((
            "accuracy (labelled packets)".into(),
            format!("{} of {}", pct(acc.accuracy), acc.packets),
        ));
    }
    r.push(Block::Heading("Summary".into()))
        .push(Block::KeyValues(kv));

    r.push(Block::Heading("Alerts per class".into()));
    r.push(Block::Paragraph(format!(
        "At most one EVE alert line per flow and class every {} s of packet time; the packets judged in between are counted, not written.",
        job.config.alert_interval
    )));
    let rows: Vec<Vec<String>> = s
        .decided
        .iter()
        .map(|(c, n)| {
            vec![
                c.clone(),
                s.alerts.get(c).copied().unwrap_or(0).to_string(),
                s.alert_packets.get(c).copied().unwrap_or(0).to_string(),
                n.to_string(),
            ]
        })
        .collect();
    r.push(Block::Table {
        header: vec![
            "class".into(),
            "alert lines".into(),
            "packets judged".into(),
            "packets decided".into(),
        ],
        rows,
    });

    if let Some(acc) = &s.accuracy {
        r.push(Block::Heading("Accuracy on the labelled captures".into()));
        r.push(Block::Table {
            header: vec![
                "label".into(),
                "packets".into(),
                "decided the label".into(),
                "recall".into(),
                "unknown".into(),
            ],
            rows: acc
                .classes
                .iter()
                .map(|(c, x)| {
                    vec![
                        c.clone(),
                        x.packets.to_string(),
                        x.correct.to_string(),
                        pct(x.recall),
                        x.unknown.to_string(),
                    ]
                })
                .collect(),
        });
    }

    r.push(Block::Heading("Top flows by alerts".into()));
    if a.top_flows.is_empty() {
        r.push(Block::Paragraph("No flow alerted.".into()));
    } else {
        r.push(Block::Paragraph(format!(
            "The {} flows with the most packets judged an attack or unknown (a flow evicted and seen again is a new flow).",
            a.top_flows.len()
        )));
        r.push(Block::Table {
            header: [
                "flow_id",
                "client",
                "server",
                "proto",
                "packets to server",
                "packets to client",
                "bytes to server",
                "bytes to client",
                "classes (lines / packets judged)",
                "first alert",
                "last alert",
            ]
            .iter()
            .map(|h| h.to_string())
            .collect(),
            rows: a
                .top_flows
                .iter()
                .map(|f| {
                    let classes: Vec<String> = f
                        .classes
                        .iter()
                        .map(|(c, lines, judged, ..)| format!("{c} {lines} / {judged}"))
                        .collect();
                    let first = f.classes.iter().map(|c| c.3.as_str()).min().unwrap_or("");
                    let last = f.classes.iter().map(|c| c.4.as_str()).max().unwrap_or("");
                    vec![
                        f.flow_id.to_string(),
                        f.client.clone(),
                        f.server.clone(),
                        f.proto.clone(),
                        f.pkts_toserver.to_string(),
                        f.pkts_toclient.to_string(),
                        f.bytes_toserver.to_string(),
                        f.bytes_toclient.to_string(),
                        classes.join(", "),
                        first.to_string(),
                        last.to_string(),
                    ]
                })
                .collect(),
        });
    }

    r.push(Block::Heading("Alerts per minute".into()));
    let classes: std::collections::BTreeSet<&String> =
        a.timeline.values().flat_map(|m| m.keys()).collect();
    if classes.is_empty() {
        r.push(Block::Paragraph("No alerts.".into()));
    } else {
        r.push(Block::Paragraph(
            "Per minute of packet time with alerts: alert lines / packets judged.".into(),
        ));
        let mut header = vec!["minute (UTC)".to_string()];
        header.extend(classes.iter().map(|c| c.to_string()));
        let rows = a
            .timeline
            .iter()
            .map(|(minute, by)| {
                let mut row =
                    vec![iotids_detect::eve::timestamp(*minute, 0)[..16].replace('T', " ")];
                row.extend(classes.iter().map(|c| match by.get(*c) {
                    Some((lines, judged)) => format!("{lines} / {judged}"),
                    None => String::new(),
                }));
                row
            })
            .collect();
        r.push(Block::Table { header, rows });
    }

    r.push(Block::Heading("Unknowns".into()));
    r.push(Block::Paragraph(format!(
        "{} packets decided unknown by the unknown-traffic test{}.",
        s.unknown,
        if s.unknown as usize > a.unknowns.len() {
            format!("; the first {} listed", a.unknowns.len())
        } else {
            String::new()
        }
    )));
    if !a.unknowns.is_empty() {
        r.push(Block::Table {
            header: [
                "time",
                "capture",
                "packet",
                "flow_id",
                "source",
                "destination",
                "proto",
                "benign probability refused",
                "novelty",
            ]
            .iter()
            .map(|h| h.to_string())
            .collect(),
            rows: a
                .unknowns
                .iter()
                .map(|u| {
                    vec![
                        u.timestamp.clone(),
                        u.capture.clone(),
                        u.packet.to_string(),
                        u.flow_id.to_string(),
                        u.src.clone(),
                        u.dest.clone(),
                        u.proto.clone(),
                        format!("{:.4}", u.probability),
                        u.novelty.map_or(String::new(), |n| format!("{n:.4}")),
                    ]
                })
                .collect(),
        });
    }

    r.push(Block::Heading("Captures".into()));
    r.push(Block::Table {
        header: vec!["capture".into()],
        rows: a.captures.iter().map(|c| vec![c.clone()]).collect(),
    });
    r
}
