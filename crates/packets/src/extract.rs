//! The 61 Edge-IIoTset columns of every packet, in `tshark-fields.sh`'s order, and its CSV.
//!
//! [`Extractor`] takes a capture's packets in order and returns each one's row; it keeps
//! the conversation state ([`Conversations`]) and the TCP reassembly
//! ([`Reassembler`]) the stateful columns need. [`write_csv`] writes a whole capture as
//! `tshark-fields.sh` does: the header, then one line per packet, a value holding `,` or
//! `"` quoted with its `"` doubled, every other value bare.

use std::io::Write;
use std::path::PathBuf;

use etherparse::TransportSlice;
use rustc_hash::FxHashMap;

use crate::app::{APP, AppFields, AppState, Dispatch};
use crate::decode::{Decoded, decode, tcp_flags};
use crate::fields::{
    CONVERSATION, Conversations, DNS, DNS_TRANSACTIONS, Ends, STATELESS, addresses, dns, ends,
    stateless, tcp_len,
};
use crate::reader::{CaptureReader, Packet, ReadError};
use crate::reassembly::{Limits, Reassembler, Segment, Stats};

/// The columns of a row, as `tshark-fields.sh` names and orders them.
pub const COLUMNS: [&str; 61] = [
    "frame.time",
    "ip.src_host",
    "ip.dst_host",
    "arp.dst.proto_ipv4",
    "arp.opcode",
    "arp.hw.size",
    "arp.src.proto_ipv4",
    "icmp.checksum",
    "icmp.seq_le",
    "icmp.transmit_timestamp",
    "icmp.unused",
    "http.file_data",
    "http.content_length",
    "http.request.uri.query",
    "http.request.method",
    "http.referer",
    "http.request.full_uri",
    "http.request.version",
    "http.response",
    "http.tls_port",
    "tcp.ack",
    "tcp.ack_raw",
    "tcp.checksum",
    "tcp.connection.fin",
    "tcp.connection.rst",
    "tcp.connection.syn",
    "tcp.connection.synack",
    "tcp.dstport",
    "tcp.flags",
    "tcp.flags.ack",
    "tcp.len",
    "tcp.options",
    "tcp.payload",
    "tcp.seq",
    "tcp.srcport",
    "udp.port",
    "udp.stream",
    "udp.time_delta",
    "dns.qry.name",
    "dns.qry.name.len",
    "dns.qry.qu",
    "dns.qry.type",
    "dns.retransmission",
    "dns.retransmit_request",
    "dns.retransmit_request_in",
    "mqtt.conack.flags",
    "mqtt.conflag.cleansess",
    "mqtt.conflags",
    "mqtt.hdrflags",
    "mqtt.len",
    "mqtt.msg_decoded_as",
    "mqtt.msg",
    "mqtt.msgtype",
    "mqtt.proto_len",
    "mqtt.protoname",
    "mqtt.topic",
    "mqtt.topic_len",
    "mqtt.ver",
    "mbtcp.len",
    "mbtcp.trans_id",
    "mbtcp.unit_id",
];

/// `tcp.payload`'s place in [`STATELESS`].
const TCP_PAYLOAD: usize = 21;

/// One packet's row, in [`COLUMNS`] order; empty where tshark prints nothing.
pub type Row = [String; COLUMNS.len()];

/// A packet iotids could not read whole, by number and layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub packet: u64,
    /// `link`, `network`, `transport`, or the application protocol (`mqtt`, `mbtcp`).
    pub layer: &'static str,
    pub reason: String,
}

/// Problems kept with their details; past this only counted.
const KEPT_PROBLEMS: usize = 1000;

/// The columns of every packet of a capture, fed in order.
#[derive(Debug)]
pub struct Extractor {
    conversations: Conversations,
    tcp: Reassembler<Ends, AppState>,
    /// Where each of [`COLUMNS`] comes from in the parts' concatenation.
    order: [usize; COLUMNS.len()],
    problems: Vec<Problem>,
    counts: FxHashMap<&'static str, u64>,
    online: Option<Online>,
}

/// An online extractor's bounds: conversations idle longer than `idle` seconds (packet
/// time), or the least recently seen past `max`, are forgotten with everything kept for
/// them (relative sequence bases, UDP stream, DNS requests, reassembly). A conversation
/// that comes back after that is numbered and reassembled afresh, where tshark, which
/// keeps every conversation of a file, would continue it: `extract` keeps everything, as
/// tshark; `detect` on an endless stream cannot.
#[derive(Debug)]
struct Online {
    idle: i64,
    max: usize,
    /// Each conversation's last packet time, seconds.
    last: FxHashMap<Ends, i64>,
    /// Packet time of the last sweep.
    swept: i64,
    /// Conversations forgotten so far.
    forgotten: u64,
}

/// What an [`Extractor`] holds now, for bounds checks and stats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Held {
    /// Conversations with a last-seen time (online extractors only).
    pub conversations: usize,
    /// Entries of the conversation columns' tables (TCP, UDP, DNS requests).
    pub conversation_entries: usize,
    /// TCP conversations in reassembly, and the bytes they hold.
    pub reassembly_flows: usize,
    pub reassembly_bytes: usize,
    /// Conversations forgotten (online extractors only).
    pub forgotten: u64,
}

impl Default for Extractor {
    fn default() -> Self {
        Extractor::new(Limits::default())
    }
}

impl Extractor {
    /// An extractor whose TCP reassembly keeps to `limits`.
    pub fn new(limits: Limits) -> Extractor {
        let parts: Vec<&str> = STATELESS
            .iter()
            .chain(&CONVERSATION)
            .chain(&DNS)
            .chain(&DNS_TRANSACTIONS)
            .chain(&APP)
            .copied()
            .collect();
        let order = COLUMNS.map(|c| parts.iter().position(|p| *p == c).unwrap_or(0));
        Extractor {
            conversations: Conversations::default(),
            tcp: Reassembler::new(limits),
            order,
            problems: Vec::new(),
            counts: FxHashMap::default(),
            online: None,
        }
    }

    /// An extractor for an endless stream: as [`Extractor::new`], but a conversation idle
    /// for `idle_seconds` of packet time, or the least recently seen when more than
    /// `max_conversations` are held, is forgotten (see the bounds above), so what it holds
    /// stays bounded. The reassembly tracks at most `max_conversations` TCP
    /// conversations too.
    pub fn online(mut limits: Limits, idle_seconds: u64, max_conversations: usize) -> Extractor {
        let max = max_conversations.max(1);
        limits.flows = limits.flows.min(max);
        let mut x = Extractor::new(limits);
        x.online = Some(Online {
            idle: idle_seconds.min(i64::MAX as u64) as i64,
            max,
            last: FxHashMap::default(),
            swept: i64::MIN,
            forgotten: 0,
        });
        x
    }

    /// What this extractor holds now.
    pub fn held(&self) -> Held {
        Held {
            conversations: self.online.as_ref().map_or(0, |o| o.last.len()),
            conversation_entries: self.conversations.len(),
            reassembly_flows: self.tcp.flows(),
            reassembly_bytes: self.tcp.buffered(),
            forgotten: self.online.as_ref().map_or(0, |o| o.forgotten),
        }
    }

    /// Online: notes the conversation of `d` as seen now and forgets idle ones.
    fn touch(&mut self, p: &Packet<'_>, d: &Decoded<'_>) {
        let Some(online) = &mut self.online else {
            return;
        };
        let now = p.seconds;
        if let Some(s) = &d.sliced
            && let Some((src, dst)) = addresses(s)
        {
            let ports = match &s.transport {
                Some(TransportSlice::Tcp(t)) => Some((t.source_port(), t.destination_port())),
                Some(TransportSlice::Udp(u)) => Some((u.source_port(), u.destination_port())),
                _ => None,
            };
            if let Some((sp, dp)) = ports {
                online.last.insert(ends(src, sp, dst, dp).0, now);
            }
        }
        let step = (online.idle / 4).max(1);
        let due = now.saturating_sub(online.swept) >= step;
        if !due && online.last.len() <= online.max {
            return;
        }
        let mut gone: Vec<Ends> = Vec::new();
        if due {
            online.swept = now;
            let cut = now.saturating_sub(online.idle);
            online.last.retain(|k, t| {
                let keep = *t >= cut;
                if !keep {
                    gone.push(*k);
                }
                keep
            });
        }
        if online.last.len() > online.max {
            // The least recently seen, down to three quarters of the bound, so the next
            // packets do not each pay for a sort.
            let mut by_time: Vec<(i64, Ends)> = online.last.iter().map(|(k, t)| (*t, *k)).collect();
            by_time.sort_unstable();
            let drop = online.last.len() - online.max * 3 / 4;
            for (_, k) in by_time.into_iter().take(drop) {
                online.last.remove(&k);
                gone.push(k);
            }
        }
        if gone.is_empty() {
            return;
        }
        online.forgotten += gone.len() as u64;
        for k in &gone {
            self.tcp.forget(k);
        }
        let gone: rustc_hash::FxHashSet<Ends> = gone.into_iter().collect();
        self.conversations.retain(|k| !gone.contains(k));
    }

    /// The next packet's row.
    pub fn packet(&mut self, p: &Packet<'_>) -> Row {
        self.decoded(p, &decode(p))
    }

    /// The next packet's row, from its layers `d` (`decode(p)`, for a caller that needs
    /// them too: one decoding a packet).
    pub fn decoded(&mut self, p: &Packet<'_>, d: &Decoded<'_>) -> Row {
        if let Some((layer, reason)) = &d.problem {
            self.problem(p.number, layer.name(), reason.clone());
        }
        let (app, tcp_dns, hide_payload) = self.app(p, d);
        self.touch(p, d);
        let mut parts: Vec<String> = Vec::with_capacity(COLUMNS.len());
        parts.extend(stateless(p, d));
        if hide_payload {
            parts[TCP_PAYLOAD].clear();
        }
        parts.extend(self.conversations.fill(p, d));
        match tcp_dns {
            Some(columns) => parts.extend(columns),
            None => {
                parts.extend(dns(d));
                parts.extend(self.conversations.dns(p, d));
            }
        }
        parts.extend(app.into_strings());
        std::array::from_fn(|i| std::mem::take(&mut parts[self.order[i]]))
    }

    /// The application columns of a TCP segment, after reassembly, the DNS columns of a
    /// DNS message over TCP, and whether tshark hides the segment's `tcp.payload` (a FIN
    /// whose data ends a body read to the FIN).
    fn app(&mut self, p: &Packet<'_>, d: &Decoded<'_>) -> (AppFields, Option<[String; 7]>, bool) {
        let mut fields = AppFields::default();
        let Some(s) = &d.sliced else {
            return (fields, None, false);
        };
        let (Some(TransportSlice::Tcp(t)), Some((src, dst))) = (&s.transport, addresses(s)) else {
            return (fields, None, false);
        };
        let (key, lower) = ends(src, t.source_port(), dst, t.destination_port());
        let flags = tcp_flags(t);
        let payload = t.payload();
        let seg = Segment {
            number: p.number,
            seq: t.sequence_number(),
            ack: t.acknowledgment_number(),
            flags,
            payload,
            reported: tcp_len(s, t).unwrap_or(payload.len()),
        };
        let mut dispatch = Dispatch {
            src_port: t.source_port(),
            dst_port: t.destination_port(),
            packet: *p,
            fields: &mut fields,
            dns: None,
            malformed: Vec::new(),
        };
        let hide_payload = self
            .tcp
            .segment(&key, usize::from(!lower), seg, &mut dispatch);
        let malformed = std::mem::take(&mut dispatch.malformed);
        let tcp_dns = dispatch.dns.take();
        if flags & 0x02 != 0
            && let Some(state) = self.tcp.state_mut(&key)
        {
            state.server_port = Some(if flags & 0x10 != 0 {
                t.source_port()
            } else {
                t.destination_port()
            });
        }
        for layer in malformed {
            self.problem(p.number, layer, "message ends early".into());
        }
        (fields, tcp_dns, hide_payload)
    }

    fn problem(&mut self, packet: u64, layer: &'static str, reason: String) {
        *self.counts.entry(layer).or_default() += 1;
        if self.problems.len() < KEPT_PROBLEMS {
            self.problems.push(Problem {
                packet,
                layer,
                reason,
            });
        }
    }

    /// The first problems found (at most 1000), in packet order.
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// How many problems each layer had.
    pub fn problem_counts(&self) -> Vec<(&'static str, u64)> {
        let mut v: Vec<_> = self.counts.iter().map(|(k, n)| (*k, *n)).collect();
        v.sort();
        v
    }

    /// The TCP reassembly's counters.
    pub fn reassembly(&self) -> Stats {
        self.tcp.stats()
    }
}

/// Writes one CSV line of `values` as `tshark-fields.sh` does.
pub fn write_line<W: Write>(w: &mut W, values: &[impl AsRef<str>]) -> std::io::Result<()> {
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        let v = v.as_ref();
        // memchr's SIMD scan: payload hex makes most of a row's bytes.
        if memchr::memchr2(b',', b'"', v.as_bytes()).is_some() {
            w.write_all(b"\"")?;
            w.write_all(v.replace('"', "\"\"").as_bytes())?;
            w.write_all(b"\"")?;
        } else {
            w.write_all(v.as_bytes())?;
        }
    }
    w.write_all(b"\n")
}

/// Why [`write_csv`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error("writing the CSV: {0}")]
    Write(#[from] std::io::Error),
}

/// Writes every packet of `reader` as `tshark-fields.sh` writes the capture: the header
/// line, then one row per packet. Returns the extractor, with its problems and counters.
///
/// # Errors
///
/// The capture's read error, or the writer's.
pub fn write_csv<W: Write>(reader: &mut CaptureReader, w: &mut W) -> Result<Extractor, CsvError> {
    write_line(w, &COLUMNS)?;
    write_rows(reader, w)
}

/// Writes one row per packet of `reader`, without the header. Returns the extractor, with
/// its problems and counters.
///
/// # Errors
///
/// The capture's read error, or the writer's.
pub fn write_rows<W: Write>(reader: &mut CaptureReader, w: &mut W) -> Result<Extractor, CsvError> {
    let mut x = Extractor::default();
    reader.for_each(|p| {
        let row = x.packet(p);
        write_line(w, &row).map_err(CsvError::from)
    })?;
    Ok(x)
}

/// What one capture of [`write_csv_files`] held.
#[derive(Debug, Clone)]
pub struct CaptureSummary {
    pub path: PathBuf,
    pub packets: u64,
    /// The first problems (at most 1000), in packet order.
    pub problems: Vec<Problem>,
    /// Problems per layer, all of them.
    pub problem_counts: Vec<(&'static str, u64)>,
}

impl CaptureSummary {
    /// Packets with a problem, all of them.
    pub fn problem_total(&self) -> u64 {
        self.problem_counts.iter().map(|(_, n)| n).sum()
    }
}

/// Writes the captures at `paths` one after another as one CSV: the header once, then
/// each capture's rows as `tshark-fields.sh` writes them for that capture alone (each
/// capture starts afresh: packet numbers, conversation indices and reassembly are the
/// capture's own, as in a separate tshark run). `on_capture` is told each capture's
/// summary when it is done.
///
/// # Errors
///
/// The first capture that cannot be opened or read (its path in the message), or the
/// writer's error.
pub fn write_csv_files<W: Write>(
    paths: &[PathBuf],
    w: &mut W,
    mut on_capture: impl FnMut(&CaptureSummary),
) -> Result<Vec<CaptureSummary>, CsvError> {
    write_line(w, &COLUMNS)?;
    let mut out = Vec::with_capacity(paths.len());
    for path in paths {
        let mut reader = CaptureReader::open(path)?;
        let x = write_rows(&mut reader, w)?;
        let summary = CaptureSummary {
            path: path.clone(),
            packets: reader.packets(),
            problems: x.problems().to_vec(),
            problem_counts: x.problem_counts(),
        };
        on_capture(&summary);
        out.push(summary);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::LinkType;

    /// Raw IPv4 from 10.0.0.`a`:`sport` to 10.0.0.`b`:`dport`: TCP with `seq`, PSH+ACK,
    /// `payload`.
    fn tcp(a: u8, sport: u16, b: u8, dport: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let len = (40 + payload.len()) as u16;
        let mut f = vec![
            0x45, 0, 0, 0, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, a, 10, 0, 0, b,
        ];
        f[2..4].copy_from_slice(&len.to_be_bytes());
        f.extend(sport.to_be_bytes());
        f.extend(dport.to_be_bytes());
        f.extend(seq.to_be_bytes());
        f.extend(1u32.to_be_bytes());
        f.extend([0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
        f.extend(payload);
        f
    }

    fn rows(frames: &[Vec<u8>]) -> Vec<Row> {
        let mut x = Extractor::default();
        frames
            .iter()
            .enumerate()
            .map(|(n, f)| {
                let p = Packet {
                    number: n as u64 + 1,
                    seconds: 0,
                    nanos: 0,
                    link: LinkType::Raw,
                    data: f,
                    original_len: f.len() as u32,
                };
                x.packet(&p)
            })
            .collect()
    }

    fn col<'r>(row: &'r Row, name: &str) -> &'r str {
        &row[COLUMNS.iter().position(|c| *c == name).unwrap()]
    }

    /// One segment with a CONNACK, a PUBLISH with an empty message and a PUBLISH "hi" on
    /// topic "z": each column is its field's first occurrence, so the flags are
    /// CONNACK's, the topic the first PUBLISH's and the message the empty one's
    /// `<MISSING>`, as tshark 4.0.17 shows such a segment.
    #[test]
    fn mqtt_fields_are_each_fields_first_occurrence() {
        let mut seg = vec![0x20, 2, 0, 0];
        seg.extend([0x30, 5, 0, 3, b'x', b'/', b'y']);
        seg.extend([0x30, 5, 0, 1, b'z', b'h', b'i']);
        let r = rows(&[tcp(2, 1883, 1, 40000, 500, &seg)]);
        assert_eq!(col(&r[0], "mqtt.hdrflags"), "0x20");
        assert_eq!(col(&r[0], "mqtt.msgtype"), "2");
        assert_eq!(col(&r[0], "mqtt.len"), "2");
        assert_eq!(col(&r[0], "mqtt.conack.flags"), "0x00");
        assert_eq!(col(&r[0], "mqtt.topic"), "x/y");
        assert_eq!(col(&r[0], "mqtt.topic_len"), "3");
        assert_eq!(col(&r[0], "mqtt.msg"), "<MISSING>");
    }

    /// An HTTP request over two segments: nothing in the first frame, everything in the
    /// second; two blanks after the method leave the URI empty (so the version is the
    /// rest of the line), the Host's blanks are trimmed in the full URI.
    #[test]
    fn http_request_on_the_frame_completing_its_headers() {
        let req = b"GET  /sp  HTTP/1.1\r\nHost:  h \r\nReferer: r\r\n\r\n";
        let r = rows(&[
            tcp(1, 40000, 2, 80, 100, &req[..10]),
            tcp(1, 40000, 2, 80, 110, &req[10..]),
        ]);
        assert!(r[0][11..20].iter().all(String::is_empty));
        assert_eq!(col(&r[1], "http.request.method"), "GET");
        assert_eq!(col(&r[1], "http.request.version"), "/sp  HTTP/1.1");
        assert_eq!(col(&r[1], "http.request.full_uri"), "http://h");
        assert_eq!(col(&r[1], "http.referer"), "r");
        assert_eq!(col(&r[1], "tcp.payload"), hex_of(&req[10..]));
    }

    fn hex_of(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn every_column_has_a_source_and_quoting_follows_the_script() {
        let parts: Vec<&str> = STATELESS
            .iter()
            .chain(&CONVERSATION)
            .chain(&DNS)
            .chain(&DNS_TRANSACTIONS)
            .chain(&APP)
            .copied()
            .collect();
        assert_eq!(parts.len(), COLUMNS.len());
        assert_eq!(STATELESS[TCP_PAYLOAD], "tcp.payload");
        for c in COLUMNS {
            assert_eq!(parts.iter().filter(|p| **p == c).count(), 1, "{c}");
        }
        let mut out = Vec::new();
        write_line(&mut out, &["a", "b,c", "say \"hi\"", ""]).unwrap();
        assert_eq!(out, b"a,\"b,c\",\"say \"\"hi\"\"\",\n");
    }
}
