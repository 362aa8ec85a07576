//! The detection loop: packets -> rows -> batches -> windows -> decisions -> outputs.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::time::Instant;

use iotids_data::pipeline::Input;
use iotids_data::{DatasetBuilder, IngestOptions};
use iotids_model::artifact::Detector;
use iotids_model::detect::StreamWindows;
use iotids_model::examples::SCORE_BATCH;
use iotids_packets::{COLUMNS, Endpoints, Extractor, Packet, decode};
use serde::Serialize;

use crate::eve::{self, Alert, AlertEvent, FlowRecord, Metadata, Own};
use crate::flows::FlowTable;
use crate::{Error, Result};

/// How detection runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Packets per scored batch: a packet's verdict is written when its batch is full
    /// (or at [`Engine::flush`], which a live capture calls on a timer). By default, 1024.
    pub batch_packets: usize,
    /// Most flows held; past it the least recently seen flow is evicted. By default,
    /// 65,536.
    pub max_flows: usize,
    /// A flow idle this long (packet time) is evicted: its next packet starts a new
    /// window and a new EVE flow. By default, 600 s.
    pub idle_seconds: u64,
    /// The model's name in alerts (its directory).
    pub model: String,
    /// Score one window in `hop` of each flow: within a batch, a flow's last packet and
    /// every `hop`-th before it end a scored window, and every packet takes the decision
    /// of the first scored window of its flow at or after it, a window that holds it
    /// (`hop` is at most the model's window). 1 (the default) scores every packet's own
    /// window, the decisions `predict` makes; more trades that for speed (the GRU is most
    /// of detection's time).
    pub hop: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            batch_packets: 1024,
            max_flows: 65_536,
            idle_seconds: 600,
            model: String::new(),
            hop: 1,
        }
    }
}

/// What a run saw.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub packets: u64,
    /// Packets scored (the others were rejected by the ingest: counted in `rejected`).
    pub scored: u64,
    pub rejected: u64,
    /// Packets not read whole (scored with the columns before the cut, as tshark).
    pub problems: u64,
    pub flows: u64,
    pub flows_evicted: u64,
    pub flows_peak: usize,
    /// Alerts per decided class (`unknown` included).
    pub alerts: BTreeMap<String, u64>,
    /// Packets per decided class.
    pub decided: BTreeMap<String, u64>,
    pub seconds: f64,
    pub packets_per_second: f64,
    /// The most each stage held at once (measured after every batch; see [`Held`]).
    pub held_peak: Held,
}

impl Summary {
    /// Alerts in all.
    pub fn alert_total(&self) -> u64 {
        self.alerts.values().sum()
    }
}

/// A packet waiting for its batch.
#[derive(Debug, Clone)]
struct Meta {
    row: u64,
    number: u64,
    time: (i64, u32),
    len: u64,
    ends: Option<Endpoints>,
    capture: usize,
}

/// One verdict row.
#[derive(Debug, Serialize)]
struct Verdict<'a> {
    row: u64,
    capture: &'a str,
    packet: u64,
    timestamp: String,
    flow_id: u64,
    src_ip: String,
    src_port: u16,
    dest_ip: String,
    dest_port: u16,
    proto: String,
    predicted: &'a str,
    probability: String,
    decision: &'static str,
}

/// The detection loop over one model.
pub struct Engine<'d> {
    detector: &'d Detector,
    config: Config,
    builder: DatasetBuilder,
    extractor: Extractor,
    stream: StreamWindows,
    flows: FlowTable,
    metas: VecDeque<Meta>,
    row: u64,
    /// Capture names (files, or the interface), by index.
    captures: Vec<String>,
    live: bool,
    eve: Option<Box<dyn Write + Send>>,
    verdicts: Option<csv::Writer<Box<dyn Write + Send>>>,
    decided: Vec<String>,
    normal: Option<usize>,
    summary: Summary,
    started: Instant,
    evicted: Vec<u32>,
}

impl std::fmt::Debug for Engine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("config", &self.config)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

/// Values a categorical column's dictionary holds before it starts afresh (at a batch
/// boundary; see [`DatasetBuilder::streaming`]).
pub const MAX_LEVELS: usize = 4096;

/// The extractor of an endless stream: conversations forgotten as the flow table forgets
/// flows (idle for the same time, at most as many).
fn online_extractor(config: &Config) -> Extractor {
    Extractor::online(
        iotids_packets::reassembly::Limits::default(),
        config.idle_seconds,
        config.max_flows,
    )
}

/// What the engine holds across packets, stage by stage: each is bounded by
/// [`Config::max_flows`] (flows, conversations, carried windows, timing state) or a
/// constant (dictionaries, reassembly bytes), so memory stays flat on an endless stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Held {
    pub flows: usize,
    pub windows: usize,
    pub extractor: iotids_packets::Held,
    pub builder: iotids_data::ingest::BuilderHeld,
}

impl Held {
    /// Each count the larger of `self`'s and `other`'s.
    fn raise(&mut self, o: &Held) {
        let m = |a: &mut usize, b: usize| *a = (*a).max(b);
        m(&mut self.flows, o.flows);
        m(&mut self.windows, o.windows);
        let (x, y) = (&mut self.extractor, &o.extractor);
        m(&mut x.conversations, y.conversations);
        m(&mut x.conversation_entries, y.conversation_entries);
        m(&mut x.reassembly_flows, y.reassembly_flows);
        m(&mut x.reassembly_bytes, y.reassembly_bytes);
        x.forgotten = x.forgotten.max(y.forgotten);
        let (b, c) = (&mut self.builder, &o.builder);
        m(&mut b.flows, c.flows);
        m(&mut b.flow_clocks, c.flow_clocks);
        m(&mut b.host_clocks, c.host_clocks);
        m(&mut b.levels, c.levels);
    }
}

/// The batch rows (of `rows`, flows `flows`) whose windows are scored with `hop`, in
/// order, and for every row the place in that list of the window deciding it: per flow,
/// its last row and every `hop`-th before it; a row is decided by the first chosen row of
/// its flow at or after it (at most `hop - 1` rows later, so inside that window).
fn hop_plan(flows: Option<&[u32]>, rows: usize, hop: usize) -> (Vec<usize>, Vec<usize>) {
    let Some(flows) = flows.filter(|_| hop > 1) else {
        return ((0..rows).collect(), (0..rows).collect());
    };
    // Per flow, walking backwards: the chosen row deciding the rows met, and how many
    // rows it decides so far.
    let mut open: rustc_hash::FxHashMap<u32, (usize, usize)> = Default::default();
    let mut decider = vec![0usize; rows];
    let mut chosen_back = Vec::new();
    for i in (0..rows).rev() {
        let e = open.entry(flows[i]).or_insert((i, hop));
        if e.1 == hop {
            *e = (i, 0);
            chosen_back.push(i);
        }
        e.1 += 1;
        decider[i] = e.0;
    }
    chosen_back.reverse();
    let mut place = vec![usize::MAX; rows];
    for (j, &i) in chosen_back.iter().enumerate() {
        place[i] = j;
    }
    let cover = decider.iter().map(|&d| place[d]).collect();
    (chosen_back, cover)
}

/// How packets are read for `detector`: its training file's settings, with every input
/// of its pipeline given its kind (numeric or categorical), so no sample is needed to
/// infer kinds and the first packet is scored as soon as its batch is.
pub fn ingest_options(detector: &Detector) -> IngestOptions {
    let mut opts = detector.ingest_options(1, true);
    for i in &detector.pipeline.inputs {
        if let Input::Categorical { name, .. } = i
            && !opts.categorical.contains(name)
        {
            opts.categorical.push(name.clone());
        }
    }
    opts
}

impl<'d> Engine<'d> {
    /// An engine scoring with `detector`, writing EVE alert lines to `eve` and verdict
    /// rows to `verdicts` (either may be absent).
    ///
    /// # Errors
    ///
    /// The model's ingest settings do not fit the 61 packet columns (a model trained on
    /// another layout: the error names the columns), or writing the verdicts' header.
    pub fn new(
        detector: &'d Detector,
        config: Config,
        eve: Option<Box<dyn Write + Send>>,
        verdicts: Option<Box<dyn Write + Send>>,
    ) -> Result<Engine<'d>> {
        let window = detector.card.window;
        if config.hop == 0 || config.hop > window {
            return Err(Error::Config(format!(
                "--hop {}: a window holds {window} packets in this model, so the hop is 1 to {window}",
                config.hop
            )));
        }
        let builder = DatasetBuilder::new("packets", &COLUMNS, &ingest_options(detector))?
            .with_sample_size(0)
            .streaming(MAX_LEVELS, config.max_flows);
        let k = detector.card.window;
        Ok(Engine {
            detector,
            stream: StreamWindows::new(k, detector.card.features.len()),
            flows: FlowTable::new(config.max_flows, config.idle_seconds),
            extractor: online_extractor(&config),
            config,
            builder,
            metas: VecDeque::new(),
            row: 0,
            captures: Vec::new(),
            live: false,
            eve,
            verdicts: verdicts.map(csv::Writer::from_writer),
            decided: detector.decision_classes(),
            normal: detector.normal_index(),
            summary: Summary::default(),
            started: Instant::now(),
            evicted: Vec::new(),
        })
    }

    /// The next packets come from a new capture (a file, or the interface with `live`):
    /// packet numbers, conversation indices and reassembly start afresh, as in a separate
    /// tshark run; flows and windows carry on, as in one CSV of all captures.
    pub fn start_capture(&mut self, name: &str, live: bool) {
        self.summary.problems += self.problem_count();
        self.extractor = online_extractor(&self.config);
        self.captures.push(name.to_string());
        self.live = live;
    }

    fn problem_count(&self) -> u64 {
        self.extractor.problem_counts().iter().map(|(_, n)| n).sum()
    }

    /// Reads one packet; scores its batch when full.
    ///
    /// # Errors
    ///
    /// Scoring or writing failed.
    pub fn packet(&mut self, p: &Packet<'_>) -> Result<()> {
        if self.captures.is_empty() {
            self.start_capture("-", false);
        }
        self.summary.packets += 1;
        self.row += 1;
        let fields = self.extractor.packet(p);
        self.metas.push_back(Meta {
            row: self.row,
            number: p.number,
            time: (p.seconds, p.nanos),
            len: u64::from(p.original_len),
            ends: decode(p).endpoints(),
            capture: self.captures.len() - 1,
        });
        self.builder
            .push(self.row, fields.iter().map(String::as_str))?;
        if self.metas.len() >= self.config.batch_packets {
            self.flush()?;
        }
        Ok(())
    }

    /// What the engine holds now (see [`Held`]).
    pub fn held(&self) -> Held {
        Held {
            flows: self.flows.len(),
            windows: self.stream.flows_tracked(),
            extractor: self.extractor.held(),
            builder: self.builder.held(),
        }
    }

    /// Packets waiting for their batch.
    pub fn pending(&self) -> usize {
        self.metas.len()
    }

    /// Scores the packets read so far and writes their verdicts and alerts.
    ///
    /// # Errors
    ///
    /// Applying the model, or writing.
    pub fn flush(&mut self) -> Result<()> {
        if self.metas.is_empty() {
            return Ok(());
        }
        let ds = self.builder.take_batch()?;
        let rows = ds.n_rows();
        if rows > 0 {
            let all: Vec<usize> = (0..rows).collect();
            let features = self.detector.pipeline.transform(&ds, &all)?;
            let (seq, range) = self.stream.next_batch(features, ds.flows.as_deref())?;
            let ends: Vec<usize> = range.collect();
            let (chosen, cover) = hop_plan(ds.flows.as_deref(), rows, self.config.hop);
            let scored: Vec<usize> = chosen.iter().map(|&i| ends[i]).collect();
            let c = self.detector.classify(&seq, &scored, SCORE_BATCH);
            for i in 0..rows {
                let line = ds.lines[i];
                while self.metas.front().is_some_and(|m| m.row < line) {
                    self.metas.pop_front();
                    self.summary.rejected += 1;
                }
                let Some(meta) = self.metas.pop_front() else {
                    break;
                };
                let key = ds.flows.as_ref().map_or(0, |f| f[i]);
                let j = cover[i];
                let probs = c.scores.row(j);
                let p = c.predicted[j] as usize;
                let novelty = c.novelty.get(j).copied();
                self.decide(&meta, key, p, probs, novelty)?;
            }
        }
        self.summary.rejected += self.metas.len() as u64;
        self.metas.clear();
        let now = self.held();
        self.summary.held_peak.raise(&now);
        Ok(())
    }

    fn decide(
        &mut self,
        meta: &Meta,
        key: u32,
        p: usize,
        probs: &[f32],
        novelty: Option<f64>,
    ) -> Result<()> {
        let flow = self
            .flows
            .packet(
                key,
                meta.ends.as_ref(),
                meta.time,
                meta.len,
                &mut self.evicted,
            )
            .clone();
        if !self.evicted.is_empty() {
            for &e in &self.evicted {
                self.stream.forget(e);
            }
            self.builder.forget_flows(&self.evicted);
            self.evicted.clear();
        }
        self.summary.scored += 1;
        let class = &self.decided[p];
        let unknown = p >= self.detector.card.classes.len();
        // An unknown window's probability is the benign one it was refused (as predict).
        let probability = match probs.get(p) {
            Some(v) => f64::from(*v),
            None => self.normal.map_or(0.0, |n| f64::from(probs[n])),
        };
        let alert = unknown || Some(p) != self.normal;
        *self.summary.decided.entry(class.clone()).or_default() += 1;
        let ends = meta.ends.unwrap_or(Endpoints {
            src: std::net::IpAddr::from([0u8, 0, 0, 0]),
            dst: std::net::IpAddr::from([0u8, 0, 0, 0]),
            src_port: 0,
            dst_port: 0,
            protocol: 0,
        });
        let capture = &self.captures[meta.capture];
        if let Some(w) = &mut self.verdicts {
            w.serialize(Verdict {
                row: meta.row,
                capture,
                packet: meta.number,
                timestamp: eve::timestamp(meta.time.0, meta.time.1),
                flow_id: flow.id,
                src_ip: ends.src.to_string(),
                src_port: ends.src_port,
                dest_ip: ends.dst.to_string(),
                dest_port: ends.dst_port,
                proto: ends.protocol_name(),
                predicted: class,
                probability: format!("{probability:.6}"),
                decision: if alert { "alert" } else { "pass" },
            })?;
        }
        if !alert {
            return Ok(());
        }
        *self.summary.alerts.entry(class.clone()).or_default() += 1;
        if let Some(w) = &mut self.eve {
            let event = AlertEvent {
                timestamp: eve::timestamp(meta.time.0, meta.time.1),
                flow_id: flow.id,
                pcap_cnt: meta.number,
                in_iface: self.live.then_some(capture.as_str()),
                capture_file: (!self.live).then_some(capture.as_str()),
                event_type: "alert",
                src_ip: ends.src.to_string(),
                src_port: ends.src_port,
                dest_ip: ends.dst.to_string(),
                dest_port: ends.dst_port,
                proto: ends.protocol_name(),
                pkt_src: if self.live {
                    "wire/pcap"
                } else {
                    "wire/pcap-file"
                },
                alert: Alert {
                    action: "allowed",
                    gid: eve::GID,
                    signature_id: eve::signature_id(class),
                    rev: 1,
                    signature: format!("iotids: {class}"),
                    category: if unknown {
                        "Unknown traffic (iotids unknown-traffic test)"
                    } else {
                        "Network intrusion (iotids model)"
                    },
                    severity: if unknown { 2 } else { 1 },
                    metadata: Metadata {
                        iotids: Own {
                            class,
                            probability,
                            unknown,
                            novelty,
                            model: &self.config.model,
                        },
                    },
                },
                flow: FlowRecord::of(&flow),
            };
            let line = serde_json::to_string(&event).map_err(|e| Error::Write {
                what: "an EVE line".into(),
                source: e.into(),
            })?;
            writeln!(w, "{line}").map_err(|source| Error::Write {
                what: "the EVE file".into(),
                source,
            })?;
        }
        Ok(())
    }

    /// Scores what is left, flushes the outputs and returns the summary.
    ///
    /// # Errors
    ///
    /// As [`Engine::flush`], and flushing the outputs.
    pub fn finish(mut self) -> Result<Summary> {
        self.flush()?;
        self.flush_outputs()?;
        let mut s = std::mem::take(&mut self.summary);
        s.problems += self.problem_count();
        s.flows = self.flows.seen;
        s.flows_evicted = self.flows.evicted;
        s.flows_peak = self.flows.peak;
        s.seconds = self.started.elapsed().as_secs_f64();
        s.packets_per_second = s.packets as f64 / s.seconds.max(1e-9);
        Ok(s)
    }

    /// Flushes the EVE and verdict writers (a live capture's timer calls this too).
    ///
    /// # Errors
    ///
    /// Writing failed.
    pub fn flush_outputs(&mut self) -> Result<()> {
        if let Some(w) = &mut self.eve {
            w.flush().map_err(|source| Error::Write {
                what: "the EVE file".into(),
                source,
            })?;
        }
        if let Some(w) = &mut self.verdicts {
            w.flush().map_err(|source| Error::Write {
                what: "the verdicts".into(),
                source,
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::hop_plan;

    #[test]
    fn hop_scores_each_flows_last_row_and_every_hopth_before_it() {
        // Flows A B A A B A A A.
        let (a, b) = (1, 2);
        let flows = [a, b, a, a, b, a, a, a];
        let (chosen, cover) = hop_plan(Some(&flows), 8, 2);
        assert_eq!(chosen, [2, 4, 5, 7]);
        assert_eq!(cover, [0, 1, 0, 2, 1, 2, 3, 3]);
        // Every row is decided by a chosen row of its flow at most hop - 1 rows on.
        for (i, &j) in cover.iter().enumerate() {
            let c = chosen[j];
            assert_eq!(flows[c], flows[i]);
            let between = (i..=c).filter(|&r| flows[r] == flows[i]).count();
            assert!((1..=2).contains(&between));
        }
        let (chosen, cover) = hop_plan(Some(&flows), 8, 3);
        assert_eq!(chosen, [3, 4, 7]);
        assert_eq!(cover, [0, 1, 0, 0, 1, 2, 2, 2]);
        // Hop 1, or no flows: every row its own window.
        let all: Vec<usize> = (0..8).collect();
        assert_eq!(hop_plan(Some(&flows), 8, 1), (all.clone(), all.clone()));
        assert_eq!(hop_plan(None, 8, 4), (all.clone(), all));
    }
}
