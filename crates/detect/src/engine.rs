//! The detection loop: packets -> rows -> batches -> windows -> decisions -> outputs.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant, SystemTime};

use iotids_data::pipeline::Input;
use iotids_data::window::WindowBy;
use iotids_data::{DatasetBuilder, IngestOptions};
use iotids_model::artifact::Detector;
use iotids_model::detect::StreamWindows;
use iotids_model::examples::SCORE_BATCH;
use iotids_packets::{COLUMNS, Endpoints, Extractor, Packet, decode};
use serde::Serialize;

use crate::eve::{
    self, Alert, AlertEvent, CaptureStats, DecoderStats, DetectStats, FlowRecord, FlowStats,
    Metadata, Own, Stats, StatsEvent,
};
use crate::flows::{Flow, FlowTable, nanos};
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
    /// At most one EVE alert line per flow and decided class in this many seconds of
    /// packet time (Suricata's `threshold: type limit, track by_flow, count 1, seconds
    /// N`); the packets judged in between are counted, in the next line's
    /// `packets_since_last` and the summary. 0: a line for every packet judged an attack
    /// or unknown. By default, 60 s.
    pub alert_interval: u64,
    /// An EVE `stats` line every this many seconds: of packet time when reading files
    /// (from the first packet), of wall time on a live capture; and one at the end. 0:
    /// none. By default, 60 s (Suricata's `stats.interval` is 8 s).
    pub stats_interval: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            batch_packets: 1024,
            max_flows: 65_536,
            idle_seconds: 600,
            model: String::new(),
            hop: 1,
            alert_interval: 60,
            stats_interval: 60,
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
    /// EVE alert lines per decided class (`unknown` included): at most one per flow and
    /// class per alert interval.
    pub alerts: BTreeMap<String, u64>,
    /// Packets judged an attack or unknown, per decided class: written or suppressed.
    pub alert_packets: BTreeMap<String, u64>,
    /// Packets per decided class.
    pub decided: BTreeMap<String, u64>,
    /// Packets decided `unknown` (by the unknown-traffic test).
    pub unknown: u64,
    /// EVE stats lines written.
    pub stats_lines: u64,
    /// With labelled captures: how the packet decisions match the labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accuracy: Option<Accuracy>,
    pub seconds: f64,
    pub packets_per_second: f64,
    /// The most each stage held at once (measured after every batch; see [`Held`]).
    pub held_peak: Held,
}

impl Summary {
    /// Alert lines in all.
    pub fn alert_total(&self) -> u64 {
        self.alerts.values().sum()
    }

    /// Packets judged an attack or unknown in all.
    pub fn alert_packet_total(&self) -> u64 {
        self.alert_packets.values().sum()
    }

    /// Packets judged an attack or unknown whose line the alert interval suppressed.
    pub fn alerts_suppressed(&self) -> u64 {
        self.alert_packet_total() - self.alert_total()
    }
}

/// Packet decisions against the labels of labelled captures.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Accuracy {
    /// Labelled packets scored.
    pub packets: u64,
    /// Of them, decided their label's class.
    pub correct: u64,
    pub accuracy: f64,
    /// Per label: its packets, how many were decided that class (recall) and how many
    /// `unknown`.
    pub classes: BTreeMap<String, ClassRecall>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ClassRecall {
    pub packets: u64,
    pub correct: u64,
    pub recall: f64,
    pub unknown: u64,
}

/// What the report shows beyond the summary, bounded: the flows with the most packets
/// judged an attack or unknown, alerts per minute and the first unknowns.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activity {
    /// At most [`TOP_FLOWS`], most alerting packets first.
    pub top_flows: Vec<FlowAlerts>,
    /// Per minute (packet time, seconds since 1970 of its start) and decided class: EVE
    /// lines written and packets judged.
    pub timeline: BTreeMap<i64, BTreeMap<String, (u64, u64)>>,
    /// The first [`MAX_UNKNOWNS`] packets decided `unknown`.
    pub unknowns: Vec<UnknownPacket>,
    /// The captures read (files or the interface).
    pub captures: Vec<String>,
}

/// Flows the report lists.
pub const TOP_FLOWS: usize = 25;
/// Unknown packets the report lists.
pub const MAX_UNKNOWNS: usize = 100;

/// One flow's alerts.
#[derive(Debug, Clone, PartialEq)]
pub struct FlowAlerts {
    pub flow_id: u64,
    pub client: String,
    pub server: String,
    pub proto: String,
    pub pkts_toserver: u64,
    pub pkts_toclient: u64,
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
    /// Per decided class: lines written, packets judged, first and last packet judged
    /// (EVE timestamps).
    pub classes: Vec<(String, u64, u64, String, String)>,
    /// Packets judged an attack or unknown.
    pub alert_packets: u64,
}

/// A packet decided `unknown`.
#[derive(Debug, Clone, PartialEq)]
pub struct UnknownPacket {
    pub timestamp: String,
    pub capture: String,
    pub packet: u64,
    pub flow_id: u64,
    pub src: String,
    pub dest: String,
    pub proto: String,
    /// The benign probability refused.
    pub probability: f64,
    pub novelty: Option<f64>,
}

fn endpoint(ip: std::net::IpAddr, port: u16) -> String {
    match ip {
        std::net::IpAddr::V6(_) => format!("[{ip}]:{port}"),
        std::net::IpAddr::V4(_) => format!("{ip}:{port}"),
    }
}

impl FlowAlerts {
    fn of(f: &Flow, classes: &[String]) -> FlowAlerts {
        FlowAlerts {
            flow_id: f.id,
            client: endpoint(f.client.0, f.client.1),
            server: endpoint(f.server.0, f.server.1),
            proto: Endpoints {
                src: f.client.0,
                dst: f.server.0,
                src_port: f.client.1,
                dst_port: f.server.1,
                protocol: f.protocol,
            }
            .protocol_name(),
            pkts_toserver: f.pkts_toserver,
            pkts_toclient: f.pkts_toclient,
            bytes_toserver: f.bytes_toserver,
            bytes_toclient: f.bytes_toclient,
            classes: f
                .alerts
                .iter()
                .map(|a| {
                    (
                        classes[usize::from(a.class)].clone(),
                        a.lines,
                        a.judged,
                        eve::timestamp(a.first.0, a.first.1),
                        eve::timestamp(a.last.0, a.last.1),
                    )
                })
                .collect(),
            alert_packets: f.alert_packets(),
        }
    }
}

/// Keeps `f` among the top flows if it alerted (bounded: sorted and cut when twice full).
fn offer(top: &mut Vec<FlowAlerts>, f: &Flow, classes: &[String]) {
    if f.alerts.is_empty() {
        return;
    }
    top.push(FlowAlerts::of(f, classes));
    if top.len() >= 2 * TOP_FLOWS {
        cut(top);
    }
}

fn cut(top: &mut Vec<FlowAlerts>) {
    top.sort_by(|a, b| {
        b.alert_packets
            .cmp(&a.alert_packets)
            .then(a.flow_id.cmp(&b.flow_id))
    });
    top.truncate(TOP_FLOWS);
}

/// Now, as EVE's timestamp.
fn now() -> String {
    let d = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    eve::timestamp(d.as_secs() as i64, d.subsec_nanos())
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
    /// Decoding stopped early.
    invalid: bool,
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
    /// The label, with labelled captures (no column otherwise).
    #[serde(rename = "true", skip_serializing_if = "Option::is_none")]
    truth: Option<&'a str>,
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
    /// Capture names (files, or the interface), by index, with their label's index in
    /// `labels` for labelled captures.
    captures: Vec<(String, Option<usize>)>,
    /// Labels seen, each with the index of the decision class of that name, and its
    /// packets, correct and unknown decisions.
    labels: Vec<(String, Option<usize>, ClassRecall)>,
    live: bool,
    decoder: DecoderStats,
    capture_stats: Option<CaptureStats>,
    /// Files: the first packet's time and the next stats line's (nanoseconds).
    stats_clock: Option<(i128, i128)>,
    /// Live: when the next stats line is due.
    stats_due: Option<Instant>,
    /// Time of the last packet accounted.
    last_time: Option<(i64, u32)>,
    activity: Activity,
    eve: Option<Box<dyn Write + Send>>,
    verdicts: Option<csv::Writer<Box<dyn Write + Send>>>,
    decided: Vec<String>,
    normal: Option<usize>,
    summary: Summary,
    started: Instant,
    evicted: Vec<(u32, Flow)>,
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
        m(&mut b.host_pairs, c.host_pairs);
        m(&mut b.levels, c.levels);
    }
}

/// The batch rows (of `rows`, window keys `flows`: flows or host pairs, as the model's
/// windows follow) whose windows are scored with `hop`, in order, and for every row the
/// place in that list of the window deciding it: per key, its last row and every `hop`-th
/// before it; a row is decided by the first chosen row of its key at or after it (at most
/// `hop - 1` rows later, so inside that window).
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
            labels: Vec::new(),
            live: false,
            decoder: DecoderStats::default(),
            capture_stats: None,
            stats_clock: None,
            stats_due: None,
            last_time: None,
            activity: Activity::default(),
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
        self.captures.push((name.to_string(), None));
        self.activity.captures.push(name.to_string());
        if live && !self.live && self.config.stats_interval > 0 {
            self.stats_due = Some(Instant::now() + Duration::from_secs(self.config.stats_interval));
        }
        self.live = live;
    }

    /// As [`Engine::start_capture`] for a file of labelled captures whose packets are all
    /// `class`: their verdicts get a `true` column and the summary the accuracy.
    pub fn start_labelled_capture(&mut self, name: &str, class: &str) {
        self.start_capture(name, false);
        let i = match self.labels.iter().position(|(c, ..)| c == class) {
            Some(i) => i,
            None => {
                let decided = self.decided.iter().position(|c| c == class);
                self.labels
                    .push((class.to_string(), decided, ClassRecall::default()));
                self.labels.len() - 1
            }
        };
        if let Some(c) = self.captures.last_mut() {
            c.1 = Some(i);
        }
    }

    /// libpcap's counters on a live capture, for the next stats lines.
    pub fn set_capture_stats(&mut self, stats: CaptureStats) {
        self.capture_stats = Some(stats);
    }

    /// On a live capture: writes a stats line if one is due (wall time). A live capture
    /// calls this on its timer.
    ///
    /// # Errors
    ///
    /// Writing failed.
    pub fn tick(&mut self) -> Result<()> {
        let Some(due) = self.stats_due else {
            return Ok(());
        };
        let at = Instant::now();
        if at < due || self.eve.is_none() {
            return Ok(());
        }
        let every = Duration::from_secs(self.config.stats_interval);
        let mut next = due + every;
        while next <= at {
            next += every;
        }
        self.stats_due = Some(next);
        let uptime = self.started.elapsed().as_secs();
        self.write_stats(now(), uptime)
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
        let decoded = decode(p);
        let fields = self.extractor.decoded(p, &decoded);
        self.metas.push_back(Meta {
            row: self.row,
            number: p.number,
            time: (p.seconds, p.nanos),
            len: u64::from(p.original_len),
            ends: decoded.endpoints(),
            capture: self.captures.len() - 1,
            invalid: decoded.problem.is_some(),
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
        let by = self.detector.card.window_by;
        let rows = ds.n_rows();
        if rows > 0 {
            let all: Vec<usize> = (0..rows).collect();
            let features = self.detector.pipeline.transform(&ds, &all)?;
            let keys = ds.window_keys(by);
            let (seq, range) = self.stream.next_batch(features, keys)?;
            // Host pairs the builder forgot (past its bound) while reading this batch: with
            // windows by host pair their carried windows go (a later packet of the pair
            // has a new id). Taken whatever the windows follow, so the list stays bounded.
            let forgotten = self.builder.take_forgotten_host_pairs();
            if by == WindowBy::HostPair {
                for id in forgotten {
                    self.stream.forget(id);
                }
            }
            let ends: Vec<usize> = range.collect();
            let (chosen, cover) = hop_plan(keys, rows, self.config.hop);
            let scored: Vec<usize> = chosen.iter().map(|&i| ends[i]).collect();
            let c = self.detector.classify(&seq, &scored, SCORE_BATCH);
            for i in 0..rows {
                let line = ds.lines[i];
                while self.metas.front().is_some_and(|m| m.row < line) {
                    if let Some(m) = self.metas.pop_front() {
                        self.account(&m)?;
                    }
                    self.summary.rejected += 1;
                }
                let Some(meta) = self.metas.pop_front() else {
                    break;
                };
                self.account(&meta)?;
                let key = ds.flows.as_ref().map_or(0, |f| f[i]);
                let j = cover[i];
                let probs = c.scores.row(j);
                let p = c.predicted[j] as usize;
                let novelty = c.novelty.get(j).copied();
                self.decide(&meta, key, p, probs, novelty)?;
            }
        }
        while let Some(m) = self.metas.pop_front() {
            self.account(&m)?;
            self.summary.rejected += 1;
        }
        let now = self.held();
        self.summary.held_peak.raise(&now);
        Ok(())
    }

    /// Counts a packet in the stats (scored or rejected), in capture order; first writes
    /// the stats line due before it (files: packet time).
    fn account(&mut self, meta: &Meta) -> Result<()> {
        if !self.live && self.config.stats_interval > 0 && self.eve.is_some() {
            let t = nanos(meta.time);
            let every = i128::from(self.config.stats_interval) * 1_000_000_000;
            match self.stats_clock {
                None => self.stats_clock = Some((t, t + every)),
                Some((first, due)) if t >= due => {
                    // The last boundary at or before this packet: the counters are those
                    // of every packet before it, so of that moment.
                    let k = (t - first) / every;
                    let at = first + k * every;
                    self.stats_clock = Some((first, at + every));
                    let (s, n) = (at.div_euclid(1_000_000_000), at.rem_euclid(1_000_000_000));
                    self.write_stats(
                        eve::timestamp(s as i64, n as u32),
                        (k * every / 1_000_000_000) as u64,
                    )?;
                }
                Some(_) => {}
            }
        }
        self.last_time = Some(self.last_time.map_or(meta.time, |l| l.max(meta.time)));
        let d = &mut self.decoder;
        d.pkts += 1;
        d.bytes += meta.len;
        d.max_pkt_size = d.max_pkt_size.max(meta.len);
        d.avg_pkt_size = d.bytes / d.pkts;
        d.invalid += u64::from(meta.invalid);
        if let Some(e) = &meta.ends {
            if e.src.is_ipv4() {
                d.ipv4 += 1;
            } else {
                d.ipv6 += 1;
            }
            match e.protocol {
                6 => d.tcp += 1,
                17 => d.udp += 1,
                1 => d.icmpv4 += 1,
                58 => d.icmpv6 += 1,
                _ => {}
            }
        }
        Ok(())
    }

    /// The stats now.
    fn stats(&self, uptime: u64) -> Stats {
        let [tcp, udp, icmpv4, icmpv6] = self.flows.by_protocol;
        Stats {
            uptime,
            capture: if self.live { self.capture_stats } else { None },
            decoder: self.decoder.clone(),
            flow: FlowStats {
                active: self.flows.len() as u64,
                total: self.flows.seen,
                tcp,
                udp,
                icmpv4,
                icmpv6,
            },
            detect: DetectStats {
                alert: self.summary.alert_total(),
                alerts_suppressed: self.summary.alerts_suppressed(),
            },
        }
    }

    fn write_stats(&mut self, timestamp: String, uptime: u64) -> Result<()> {
        let event = StatsEvent {
            timestamp,
            event_type: "stats",
            stats: self.stats(uptime),
        };
        if let Some(w) = &mut self.eve {
            write_line(w, &event)?;
            self.summary.stats_lines += 1;
        }
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
        self.summary.scored += 1;
        let unknown = p >= self.detector.card.classes.len();
        // An unknown window's probability is the benign one it was refused (as predict).
        let probability = match probs.get(p) {
            Some(v) => f64::from(*v),
            None => self.normal.map_or(0.0, |n| f64::from(probs[n])),
        };
        let alert = unknown || Some(p) != self.normal;
        let interval = self.config.alert_interval;
        let want_record = self.eve.is_some();
        let flow = self.flows.packet(
            key,
            meta.ends.as_ref(),
            meta.time,
            meta.len,
            &mut self.evicted,
        );
        let flow_id = flow.id;
        // Judged an attack or unknown: Some(line written, with the packets since the
        // last one) or Some(None), suppressed.
        let judged = alert.then(|| flow.judge(p as u16, meta.time, interval));
        let record = (want_record && matches!(judged, Some(Some(_)))).then(|| FlowRecord::of(flow));
        if !self.evicted.is_empty() {
            let ids: Vec<u32> = self.evicted.iter().map(|(k, _)| *k).collect();
            self.builder.forget_flows(&ids);
            let by_flow = self.detector.card.window_by == WindowBy::Flow;
            for (k, f) in self.evicted.drain(..) {
                if by_flow {
                    self.stream.forget(k);
                }
                offer(&mut self.activity.top_flows, &f, &self.decided);
            }
        }
        let class = &self.decided[p];
        *self.summary.decided.entry(class.clone()).or_default() += 1;
        self.summary.unknown += u64::from(unknown);
        let (capture, label) = &self.captures[meta.capture];
        let truth = label.map(|l| {
            let (name, decided, r) = &mut self.labels[l];
            r.packets += 1;
            r.correct += u64::from(*decided == Some(p));
            r.unknown += u64::from(unknown);
            name.as_str()
        });
        let ends = meta.ends.unwrap_or(Endpoints {
            src: std::net::IpAddr::from([0u8, 0, 0, 0]),
            dst: std::net::IpAddr::from([0u8, 0, 0, 0]),
            src_port: 0,
            dst_port: 0,
            protocol: 0,
        });
        if let Some(w) = &mut self.verdicts {
            w.serialize(Verdict {
                row: meta.row,
                capture,
                packet: meta.number,
                timestamp: eve::timestamp(meta.time.0, meta.time.1),
                flow_id,
                src_ip: ends.src.to_string(),
                src_port: ends.src_port,
                dest_ip: ends.dst.to_string(),
                dest_port: ends.dst_port,
                proto: ends.protocol_name(),
                predicted: class,
                probability: format!("{probability:.6}"),
                decision: if alert { "alert" } else { "pass" },
                truth,
            })?;
        }
        let Some(written) = judged else {
            return Ok(());
        };
        *self.summary.alert_packets.entry(class.clone()).or_default() += 1;
        let minute = meta.time.0.div_euclid(60) * 60;
        let slot = self
            .activity
            .timeline
            .entry(minute)
            .or_default()
            .entry(class.clone())
            .or_default();
        slot.1 += 1;
        if unknown && self.activity.unknowns.len() < MAX_UNKNOWNS {
            self.activity.unknowns.push(UnknownPacket {
                timestamp: eve::timestamp(meta.time.0, meta.time.1),
                capture: capture.clone(),
                packet: meta.number,
                flow_id,
                src: endpoint(ends.src, ends.src_port),
                dest: endpoint(ends.dst, ends.dst_port),
                proto: ends.protocol_name(),
                probability,
                novelty,
            });
        }
        let Some(since) = written else {
            return Ok(());
        };
        slot.0 += 1;
        *self.summary.alerts.entry(class.clone()).or_default() += 1;
        if let (Some(w), Some(flow)) = (&mut self.eve, record) {
            let event = AlertEvent {
                timestamp: eve::timestamp(meta.time.0, meta.time.1),
                flow_id,
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
                            packets_since_last: since,
                        },
                    },
                },
                flow,
            };
            write_line(w, &event)?;
        }
        Ok(())
    }

    /// Scores what is left, flushes the outputs and returns the summary.
    ///
    /// # Errors
    ///
    /// As [`Engine::flush`], and flushing the outputs.
    pub fn finish(self) -> Result<Summary> {
        Ok(self.finish_with_activity()?.0)
    }

    /// As [`Engine::finish`], with what the report shows: writes the last stats line
    /// (its counters are the summary's).
    ///
    /// # Errors
    ///
    /// As [`Engine::flush`], and flushing the outputs.
    pub fn finish_with_activity(mut self) -> Result<(Summary, Activity)> {
        self.flush()?;
        if self.config.stats_interval > 0 && self.eve.is_some() {
            let (at, uptime) = if self.live {
                (now(), self.started.elapsed().as_secs())
            } else {
                match (self.last_time, self.stats_clock) {
                    (Some(t), Some((first, _))) => (
                        eve::timestamp(t.0, t.1),
                        ((nanos(t) - first) / 1_000_000_000) as u64,
                    ),
                    _ => (now(), 0),
                }
            };
            self.write_stats(at, uptime)?;
        }
        self.flush_outputs()?;
        let mut s = std::mem::take(&mut self.summary);
        s.problems += self.problem_count();
        s.flows = self.flows.seen;
        s.flows_evicted = self.flows.evicted;
        s.flows_peak = self.flows.peak;
        if !self.labels.is_empty() {
            let mut a = Accuracy::default();
            for (name, _, r) in &self.labels {
                a.packets += r.packets;
                a.correct += r.correct;
                let mut r = r.clone();
                r.recall = r.correct as f64 / r.packets.max(1) as f64;
                a.classes.insert(name.clone(), r);
            }
            a.accuracy = a.correct as f64 / a.packets.max(1) as f64;
            s.accuracy = Some(a);
        }
        s.seconds = self.started.elapsed().as_secs_f64();
        s.packets_per_second = s.packets as f64 / s.seconds.max(1e-9);
        let mut activity = std::mem::take(&mut self.activity);
        for (_, f) in self.flows.iter() {
            offer(&mut activity.top_flows, f, &self.decided);
        }
        cut(&mut activity.top_flows);
        Ok((s, activity))
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

/// Writes `event` as one EVE line.
fn write_line(w: &mut Box<dyn Write + Send>, event: &impl Serialize) -> Result<()> {
    let line = serde_json::to_string(event).map_err(|e| Error::Write {
        what: "an EVE line".into(),
        source: e.into(),
    })?;
    writeln!(w, "{line}").map_err(|source| Error::Write {
        what: "the EVE file".into(),
        source,
    })
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
