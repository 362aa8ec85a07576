//! Edge-IIoTset's packet-field columns, filled to tshark's rules (`tshark -n -T fields
//! -E occurrence=f`, TShark 4.0; `shared/docs/research/capture.md` section 2).
//!
//! This first part fills the columns a packet's own headers decide: the frame's time, the
//! outer IPv4 addresses, ARP, the outer ICMP checksum, the TCP header fields tshark prints
//! without conversation state, and UDP's first port. The stateful columns (relative TCP
//! sequence numbers, conversation indices, time deltas, DNS retransmissions) and the
//! reassembled application layers come next.

use chrono::DateTime;
use etherparse::{LaxNetSlice, TransportSlice};
use rustc_hash::FxHashMap;

use crate::decode::{Decoded, dns_message, tcp_flags};
use crate::reader::Packet;

/// The columns [`stateless`] fills, in the order it returns them.
pub const STATELESS: [&str; 25] = [
    "frame.time",
    "ip.src_host",
    "ip.dst_host",
    "arp.dst.proto_ipv4",
    "arp.opcode",
    "arp.hw.size",
    "arp.src.proto_ipv4",
    "icmp.checksum",
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
    "tcp.srcport",
    "udp.port",
    "tcp.options",
    "tcp.payload",
    "icmp.seq_le",
    "icmp.unused",
    "icmp.transmit_timestamp",
];

/// `frame.time` as tshark prints it in UTC: `Jul 10, 2010 21:43:30.035265000 UTC` (the
/// day padded with a space, always nine fraction digits).
///
/// The part up to the seconds is formatted once per second of packet time (packets come in
/// runs within a second; chrono's formatting was a tenth of `extract`'s time).
pub fn frame_time(seconds: i64, nanos: u32) -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> =
            const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    if nanos >= 1_000_000_000 {
        // A leap second's nanoseconds: chrono's own rendering.
        return match DateTime::from_timestamp(seconds, nanos) {
            Some(t) => format!("{} UTC", t.format("%b %e, %Y %H:%M:%S.%f")),
            None => String::new(),
        };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != seconds {
            let Some(t) = DateTime::from_timestamp(seconds, 0) else {
                return String::new();
            };
            *last = (seconds, t.format("%b %e, %Y %H:%M:%S.").to_string());
        }
        let mut out = String::with_capacity(last.1.len() + 13);
        out.push_str(&last.1);
        let mut digits = itoa::Buffer::new();
        let n = digits.format(nanos);
        for _ in n.len()..9 {
            out.push('0');
        }
        out.push_str(n);
        out.push_str(" UTC");
        out
    })
}

fn dotted(a: &[u8]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// The [`STATELESS`] columns of a packet, empty where tshark prints nothing.
pub fn stateless(packet: &Packet<'_>, d: &Decoded<'_>) -> [String; STATELESS.len()] {
    let mut out: [String; STATELESS.len()] = Default::default();
    out[0] = frame_time(packet.seconds, packet.nanos);
    let Some(s) = &d.sliced else {
        return out;
    };
    // Bytes of the IPv4 header, and the IP payload length it declares (for tcp.len).
    let mut ip_payload: Option<usize> = None;
    match &s.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            out[1] = dotted(&h.source());
            out[2] = dotted(&h.destination());
            ip_payload = (usize::from(h.total_len())).checked_sub(usize::from(h.ihl()) * 4);
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let ext: usize = ip.extensions().slice().len();
            ip_payload = usize::from(ip.header().payload_length()).checked_sub(ext);
        }
        Some(LaxNetSlice::Arp(arp)) => {
            let b = arp.slice();
            let (hw, proto) = (usize::from(b[4]), usize::from(b[5]));
            out[4] = u16::from_be_bytes([b[6], b[7]]).to_string();
            out[5] = hw.to_string();
            if proto == 4 {
                let sender = 8 + hw;
                let target = sender + proto + hw;
                if let Some(a) = b.get(sender..sender + 4) {
                    out[6] = dotted(a);
                }
                if let Some(a) = b.get(target..target + 4) {
                    out[3] = dotted(a);
                }
            }
        }
        None => {}
    }
    match &s.transport {
        Some(TransportSlice::Icmpv4(i)) => out[7] = format!("0x{:04x}", i.checksum()),
        Some(TransportSlice::Tcp(t)) => {
            let b = t.slice();
            let flags = tcp_flags(t);
            let (syn, ack, fin, rst) = (
                flags & 0x02 != 0,
                flags & 0x10 != 0,
                flags & 0x01 != 0,
                flags & 0x04 != 0,
            );
            let one = |on: bool| if on { "1".to_string() } else { String::new() };
            out[8] = t.acknowledgment_number().to_string();
            out[9] = format!("0x{:04x}", t.checksum());
            out[10] = one(fin);
            out[11] = one(rst);
            out[12] = one(syn && !ack);
            out[13] = one(syn && ack);
            out[14] = t.destination_port().to_string();
            out[15] = format!("0x{flags:04x}");
            out[16] = u8::from(ack).to_string();
            // The length the IP header declares, not what was captured.
            if let Some(n) =
                ip_payload.and_then(|n| n.checked_sub(usize::from(t.data_offset()) * 4))
            {
                out[17] = n.to_string();
            }
            out[18] = t.source_port().to_string();
            // The option bytes captured; tshark's literal `<MISSING>` when the header
            // announces options the snap length cut off entirely.
            let header = usize::from(t.data_offset()) * 4;
            if header > 20 {
                out[20] = match b.get(20..header.min(b.len())) {
                    Some(o) if !o.is_empty() => hex(o),
                    _ => "<MISSING>".into(),
                };
            }
            out[21] = hex(t.payload());
        }
        Some(TransportSlice::Udp(u)) => out[19] = u.source_port().to_string(),
        _ => {}
    }
    out[22] = icmp_seq_le(s).map_or(String::new(), |n| n.to_string());
    if let Some(TransportSlice::Icmpv4(i)) = &s.transport {
        let b = i.slice();
        out[23] = icmp_unused(b).map_or(String::new(), hex);
        // Timestamp request and reply: the transmit timestamp, milliseconds since midnight.
        if matches!(b[0], 13 | 14)
            && let Some(t) = b.get(16..20)
        {
            out[24] = u32::from_be_bytes([t[0], t[1], t[2], t[3]]).to_string();
        }
    }
    out
}

/// `icmp.unused`'s first occurrence: the bytes of an error's second word that carry
/// nothing. With RFC 4884's length of the original datagram set (byte 5), destination
/// unreachable and time exceeded leave byte 4 unused and parameter problem bytes 6-7;
/// without it, the whole word, but for "fragmentation needed" (bytes 4-5, then the MTU)
/// and parameter problem (bytes 5-7, after the pointer). `None` for other types or
/// bytes the capture lacks.
fn icmp_unused(b: &[u8]) -> Option<&[u8]> {
    let (kind, code, length) = (*b.first()?, *b.get(1)?, *b.get(5)?);
    let range = match (kind, length > 0) {
        (3 | 11, true) => 4..5,
        (3, false) if code == 4 => 4..6,
        (3 | 11, false) => 4..8,
        (12, true) => 6..8,
        (12, false) => 5..8,
        _ => return None,
    };
    b.get(range)
}

/// Lower-case hex of `bytes`, as tshark prints byte fields.
use crate::app::hex;

/// `icmp.seq_le`: the sequence number read little-endian, from the packet's own echo,
/// timestamp, information or address-mask message or, in an error (destination
/// unreachable, source quench, redirect, time exceeded, parameter problem), from such a
/// message it quotes.
fn icmp_seq_le(s: &etherparse::LaxSlicedPacket<'_>) -> Option<u16> {
    let Some(TransportSlice::Icmpv4(i)) = &s.transport else {
        return None;
    };
    let b = i.slice();
    let echo = |b: &[u8]| match b.first() {
        Some(0 | 8 | 13..=18) => b.get(6..8).map(|q| u16::from_le_bytes([q[0], q[1]])),
        _ => None,
    };
    match b.first()? {
        0 | 8 | 13..=18 => echo(b),
        3 | 4 | 5 | 11 | 12 => {
            // 8 bytes of ICMP header, then the quoted IPv4 header and its first bytes.
            let quoted = b.get(8..)?;
            let ihl = usize::from(quoted.first()? & 0x0f) * 4;
            if quoted.first()? >> 4 != 4 || quoted.get(9) != Some(&1) {
                return None;
            }
            echo(quoted.get(ihl..)?)
        }
        _ => None,
    }
}

/// The DNS columns [`dns`] fills, in its order.
pub const DNS: [&str; 4] = [
    "dns.qry.name",
    "dns.qry.name.len",
    "dns.qry.qu",
    "dns.qry.type",
];

/// The first question of a DNS message over UDP port 53, or of an mDNS message (port
/// 5353, which also gives `dns.qry.qu`, the question's unicast-response bit): its name as
/// dotted text, the name's length, the bit and the numeric type. Empty for a message with
/// no question or one cut before the question ends.
pub fn dns(d: &Decoded<'_>) -> [String; DNS.len()] {
    match dns_message(d) {
        Some((u, mdns)) => dns_question(u.payload(), mdns),
        None => Default::default(),
    }
}

/// The [`DNS`] columns of DNS message `m` (at least its 12-byte header, else empty).
pub(crate) fn dns_question(m: &[u8], mdns: bool) -> [String; DNS.len()] {
    let mut out: [String; DNS.len()] = Default::default();
    if m.len() < 12 || u16::from_be_bytes([m[4], m[5]]) == 0 {
        return out;
    }
    let Some((name, len, end)) = question_name(m, 12) else {
        return out;
    };
    let Some(q) = m.get(end..end + 4) else {
        return out;
    };
    out[1] = len.to_string();
    out[0] = name;
    if mdns {
        out[2] = (q[2] >> 7).to_string();
    }
    out[3] = u16::from_be_bytes([q[0], q[1]]).to_string();
    out
}

/// A DNS label as tshark shows it (`format_text`): UTF-8 (bad bytes as U+FFFD), with
/// control characters and DEL escaped C-style (`\t`, `\n`..., else three octal digits).
fn label_text(label: &[u8]) -> String {
    let mut out = String::with_capacity(label.len());
    for c in String::from_utf8_lossy(label).chars() {
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\{:03o}", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// The name at `at` of DNS message `m` (labels joined by dots, compression pointers
/// followed, `<Root>` for the root as tshark shows it), its length in bytes as sent
/// (`dns.qry.name.len`) and where the name ends in place.
fn question_name(m: &[u8], at: usize) -> Option<(String, usize, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut raw_len = 0usize;
    let mut pos = at;
    let mut end = None;
    // A pointer must point backwards; at most as many jumps as the message has bytes.
    for _ in 0..m.len() {
        let len = *m.get(pos)?;
        match len >> 6 {
            0 if len == 0 => {
                let end = end.unwrap_or(pos + 1);
                let (name, len) = if labels.is_empty() {
                    ("<Root>".to_string(), 6)
                } else {
                    (labels.join("."), raw_len + labels.len() - 1)
                };
                return Some((name, len, end));
            }
            0 => {
                let label = m.get(pos + 1..pos + 1 + usize::from(len))?;
                raw_len += label.len();
                labels.push(label_text(label));
                pos += 1 + usize::from(len);
            }
            3 => {
                let target = usize::from(u16::from_be_bytes([len, *m.get(pos + 1)?]) & 0x3fff);
                end.get_or_insert(pos + 2);
                if target >= pos {
                    return None;
                }
                pos = target;
            }
            _ => return None,
        }
    }
    None
}

/// The DNS transaction columns [`Conversations::dns`] fills, in its order.
pub const DNS_TRANSACTIONS: [&str; 3] = [
    "dns.retransmission",
    "dns.retransmit_request",
    "dns.retransmit_request_in",
];

/// Seconds within which tshark takes a repeated unanswered query for a retransmission
/// (`dns.retransmission_timer`).
const DNS_RETRANSMISSION_SECONDS: i64 = 5;

/// The latest DNS transaction of one ID in one conversation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DnsTransaction {
    request: u64,
    at: (i64, u32),
    answered: Option<u64>,
}

/// The columns [`Conversations::fill`] fills, in its order.
pub const CONVERSATION: [&str; 4] = ["tcp.seq", "tcp.ack", "udp.stream", "udp.time_delta"];

/// The two ends of a conversation, the lower first, so both directions find it.
pub(crate) type Ends = ([u8; 16], u16, [u8; 16], u16);

pub(crate) fn ends(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16) -> (Ends, bool) {
    if (src, sport) <= (dst, dport) {
        ((src, sport, dst, dport), true)
    } else {
        ((dst, dport, src, sport), false)
    }
}

/// A TCP conversation's relative-number bases, one per direction (the lower end's
/// first).
#[derive(Debug, Default, Clone, Copy)]
struct Tcp {
    base: [Option<u32>; 2],
}

#[derive(Debug, Clone, Copy)]
struct Udp {
    stream: u64,
    last: (i64, u32),
}

/// What tshark keeps across a capture's packets for the conversation columns: TCP's
/// relative sequence and acknowledgement numbers, UDP's conversation index and time
/// since the conversation's previous packet.
#[derive(Debug, Default)]
pub struct Conversations {
    tcp: FxHashMap<Ends, Tcp>,
    udp: FxHashMap<Ends, Udp>,
    /// UDP conversations numbered so far (tshark's `udp.stream` counter).
    udp_streams: u64,
    dns: DnsTable<(Ends, u16)>,
}

impl Conversations {
    /// The [`CONVERSATION`] columns of the next packet of the capture.
    pub fn fill(&mut self, packet: &Packet<'_>, d: &Decoded<'_>) -> [String; CONVERSATION.len()] {
        let mut out: [String; CONVERSATION.len()] = Default::default();
        let Some(s) = &d.sliced else {
            return out;
        };
        let Some((src, dst)) = addresses(s) else {
            return out;
        };
        match &s.transport {
            Some(TransportSlice::Tcp(t)) => {
                let (key, lower) = ends(src, t.source_port(), dst, t.destination_port());
                let (me, other) = if lower { (0, 1) } else { (1, 0) };
                let flags = tcp_flags(t);
                let (syn, ack) = (flags & 0x02 != 0, flags & 0x10 != 0);
                let seq = t.sequence_number();
                let conv = self.tcp.entry(key).or_default();
                // A SYN (not SYN+ACK) with another initial number starts a new
                // conversation on the same ports.
                if syn && !ack && conv.base[me].is_some_and(|b| b != seq) {
                    *conv = Tcp::default();
                }
                let base =
                    *conv.base[me].get_or_insert(if syn { seq } else { seq.wrapping_sub(1) });
                out[0] = seq.wrapping_sub(base).to_string();
                let raw = t.acknowledgment_number();
                out[1] = if ack {
                    let reverse = *conv.base[other].get_or_insert(raw.wrapping_sub(1));
                    raw.wrapping_sub(reverse).to_string()
                } else {
                    raw.to_string()
                };
            }
            Some(TransportSlice::Udp(u)) => {
                let (key, _) = ends(src, u.source_port(), dst, u.destination_port());
                let now = (packet.seconds, packet.nanos);
                let conv = self.udp.entry(key).or_insert_with(|| {
                    self.udp_streams += 1;
                    Udp {
                        stream: self.udp_streams - 1,
                        last: now,
                    }
                });
                out[2] = conv.stream.to_string();
                out[3] = seconds_between(conv.last, now);
                conv.last = now;
            }
            _ => {}
        }
        out
    }
}

impl Conversations {
    /// Keeps only the conversations (TCP, UDP, and DNS requests in them) whose ends
    /// `keep` accepts.
    pub(crate) fn retain(&mut self, keep: impl Fn(&Ends) -> bool) {
        self.tcp.retain(|k, _| keep(k));
        self.udp.retain(|k, _| keep(k));
        self.dns.retain(|(k, _), _| keep(k));
    }

    /// Entries held: TCP and UDP conversations, DNS requests.
    pub fn len(&self) -> usize {
        self.tcp.len() + self.udp.len() + self.dns.len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The [`DNS_TRANSACTIONS`] columns of the next packet, as tshark tracks requests
    /// per conversation and DNS ID: a query repeating an unanswered one within 5 seconds
    /// is a retransmission of it (its frame number in `dns.retransmit_request_in`); a
    /// second answer to an answered query is a retransmitted response.
    pub fn dns(
        &mut self,
        packet: &Packet<'_>,
        d: &Decoded<'_>,
    ) -> [String; DNS_TRANSACTIONS.len()] {
        let out: [String; DNS_TRANSACTIONS.len()] = Default::default();
        let Some(s) = &d.sliced else {
            return out;
        };
        let Some((src, dst)) = addresses(s) else {
            return out;
        };
        let Some((u, _)) = dns_message(d) else {
            return out;
        };
        let (key, _) = ends(src, u.source_port(), dst, u.destination_port());
        track_dns(&mut self.dns, key, u.payload(), packet)
    }
}

/// Requests tracked per conversation and DNS ID (see [`Conversations::dns`]).
pub(crate) type DnsTable<K> = FxHashMap<K, DnsTransaction>;

/// tshark's request tracking for DNS message `m` (at least 12 bytes) of `packet` in the
/// conversation `key`: the [`DNS_TRANSACTIONS`] columns.
pub(crate) fn track_dns<K: std::hash::Hash + Eq>(
    table: &mut DnsTable<(K, u16)>,
    key: K,
    m: &[u8],
    packet: &Packet<'_>,
) -> [String; DNS_TRANSACTIONS.len()] {
    let mut out: [String; DNS_TRANSACTIONS.len()] = Default::default();
    if m.len() < 12 {
        return out;
    }
    let id = u16::from_be_bytes([m[0], m[1]]);
    let response = m[2] & 0x80 != 0;
    let now = (packet.seconds, packet.nanos);
    let key = (key, id);
    let latest = table.get_mut(&key);
    if response {
        if let Some(t) = latest {
            match t.answered {
                None => t.answered = Some(packet.number),
                Some(n) if n != packet.number => out[0] = "1".into(),
                Some(_) => {}
            }
        }
        return out;
    }
    let within = |t: &DnsTransaction| {
        let (s0, n0) = t.at;
        let ns = (i128::from(now.0) - i128::from(s0)) * 1_000_000_000 + i128::from(now.1)
            - i128::from(n0);
        ns < i128::from(DNS_RETRANSMISSION_SECONDS) * 1_000_000_000
    };
    match latest {
        Some(t) if t.answered.is_none() && within(t) => {
            out[0] = "1".into();
            out[1] = "1".into();
            out[2] = t.request.to_string();
        }
        _ => {
            table.insert(
                key,
                DnsTransaction {
                    request: packet.number,
                    at: now,
                    answered: None,
                },
            );
        }
    }
    out
}

/// The outer IP header's source and destination, IPv4 mapped into IPv6's space.
pub(crate) fn addresses(s: &etherparse::LaxSlicedPacket<'_>) -> Option<([u8; 16], [u8; 16])> {
    match s.net.as_ref()? {
        LaxNetSlice::Ipv4(ip) => {
            let h = ip.header();
            Some((v6_mapped(h.source()), v6_mapped(h.destination())))
        }
        LaxNetSlice::Ipv6(ip) => {
            let h = ip.header();
            Some((h.source(), h.destination()))
        }
        LaxNetSlice::Arp(_) => None,
    }
}

/// An IPv4 address in IPv6's space (`::ffff:a.b.c.d`), so one key type holds both.
fn v6_mapped(a: [u8; 4]) -> [u8; 16] {
    let mut out = [0; 16];
    out[10] = 0xff;
    out[11] = 0xff;
    out[12..].copy_from_slice(&a);
    out
}

/// `tcp.len`: the TCP payload's length the IP header declares (not what was captured).
pub(crate) fn tcp_len(
    s: &etherparse::LaxSlicedPacket<'_>,
    t: &etherparse::TcpSlice<'_>,
) -> Option<usize> {
    let ip_payload = match s.net.as_ref()? {
        LaxNetSlice::Ipv4(ip) => {
            let h = ip.header();
            usize::from(h.total_len()).checked_sub(usize::from(h.ihl()) * 4)
        }
        LaxNetSlice::Ipv6(ip) => {
            let ext: usize = ip.extensions().slice().len();
            usize::from(ip.header().payload_length()).checked_sub(ext)
        }
        LaxNetSlice::Arp(_) => None,
    }?;
    ip_payload.checked_sub(usize::from(t.data_offset()) * 4)
}

/// `to − from` in seconds with nine decimals, as tshark prints relative times.
fn seconds_between(from: (i64, u32), to: (i64, u32)) -> String {
    let ns = (i128::from(to.0) - i128::from(from.0)) * 1_000_000_000 + i128::from(to.1)
        - i128::from(from.1);
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs();
    format!("{sign}{}.{:09}", ns / 1_000_000_000, ns % 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::decode::decode;
    use crate::link::LinkType;

    /// Raw IPv4 from 10.0.0.`a`:`sport` to 10.0.0.`b`:`dport` carrying TCP with `seq`,
    /// `ack` and `flags`.
    fn tcp(a: u8, sport: u16, b: u8, dport: u16, seq: u32, ack: u32, flags: u8) -> Vec<u8> {
        let mut f = vec![
            0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, a, 10, 0, 0, b,
        ];
        f.extend(sport.to_be_bytes());
        f.extend(dport.to_be_bytes());
        f.extend(seq.to_be_bytes());
        f.extend(ack.to_be_bytes());
        f.extend([0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
        f
    }

    fn fill(c: &mut Conversations, frame: &[u8], seconds: i64, nanos: u32) -> Vec<String> {
        let p = Packet {
            number: 1,
            seconds,
            nanos,
            link: LinkType::Raw,
            data: frame,
            original_len: frame.len() as u32,
        };
        c.fill(&p, &decode(&p)).to_vec()
    }

    /// A handshake from initial numbers 1000 (client) and 5000 (server): the SYN is 0,
    /// the SYN+ACK 0 acking 1, the ACK 1 acking 1. A capture that starts mid-stream counts
    /// from the first segment (shown 1) and from its acknowledgement minus one. A new SYN
    /// on the same ports with another initial number starts over.
    #[test]
    fn relative_numbers_by_hand() {
        let (syn, ack, synack) = (0x02, 0x10, 0x12);
        let mut c = Conversations::default();
        let rows = [
            tcp(1, 40000, 2, 1883, 1000, 0, syn),
            tcp(2, 1883, 1, 40000, 5000, 1001, synack),
            tcp(1, 40000, 2, 1883, 1001, 5001, ack),
            tcp(1, 40000, 2, 1883, 1040, 5001, ack),
        ];
        let got: Vec<(String, String)> = rows
            .iter()
            .map(|f| {
                let r = fill(&mut c, f, 0, 0);
                (r[0].clone(), r[1].clone())
            })
            .collect();
        let want = [("0", "0"), ("0", "1"), ("1", "1"), ("40", "1")];
        assert_eq!(got, want.map(|(a, b)| (a.to_string(), b.to_string())));
        // Mid-stream: no SYN seen. The ACK flag clear: tcp.ack is the raw value.
        let r = fill(&mut c, &tcp(3, 1, 4, 2, 7000, 9000, ack), 0, 0);
        assert_eq!((r[0].as_str(), r[1].as_str()), ("1", "1"));
        let r = fill(&mut c, &tcp(4, 2, 3, 1, 8999, 7000, ack), 0, 0);
        assert_eq!((r[0].as_str(), r[1].as_str()), ("0", "1"));
        let r = fill(&mut c, &tcp(5, 1, 6, 2, 10, 77, 0x02), 0, 0);
        assert_eq!(r[1], "77");
        // Port reuse: a new SYN with another initial number.
        let r = fill(&mut c, &tcp(1, 40000, 2, 1883, 90_000, 0, syn), 0, 0);
        assert_eq!((r[0].as_str(), r[1].as_str()), ("0", "0"));
        let r = fill(&mut c, &tcp(2, 1883, 1, 40000, 123, 90_001, synack), 0, 0);
        assert_eq!((r[0].as_str(), r[1].as_str()), ("0", "1"));
    }

    /// UDP conversations are numbered from 0 in order of first appearance, either
    /// direction, and each packet gets the time since its conversation's previous one.
    #[test]
    fn udp_streams_and_deltas_by_hand() {
        let udp = |a: u8, sport: u16, b: u8, dport: u16| {
            let mut f = vec![
                0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, a, 10, 0, 0, b,
            ];
            f.extend(sport.to_be_bytes());
            f.extend(dport.to_be_bytes());
            f.extend([0, 8, 0, 0]);
            f
        };
        let mut c = Conversations::default();
        let r = fill(&mut c, &udp(1, 5353, 2, 53), 100, 0);
        assert_eq!(r[2..], ["0", "0.000000000"]);
        let r = fill(&mut c, &udp(3, 9, 2, 53), 100, 500);
        assert_eq!(r[2..], ["1", "0.000000000"]);
        let r = fill(&mut c, &udp(2, 53, 1, 5353), 101, 250_000_000);
        assert_eq!(r[2..], ["0", "1.250000000"]);
        // TCP and UDP columns stay apart.
        assert_eq!(r[..2], ["", ""]);
    }

    /// mdns.pcap's pattern by hand: query 1, its repeat 2 (a retransmission of 1), the
    /// answer 3, a new query 4 (1 was answered), its repeat 6 s later (past the timer: a
    /// new request), a second answer to 5 (a retransmitted response).
    #[test]
    fn dns_transactions_by_hand() {
        let dns = |response: bool| {
            let mut f = vec![
                0x45, 0, 0, 40, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 7, 224, 0, 0, 251,
            ];
            f.extend(5353u16.to_be_bytes());
            f.extend(5353u16.to_be_bytes());
            f.extend([0, 20, 0, 0]);
            f.extend([0, 0, if response { 0x84 } else { 0 }, 0]);
            f.extend([0; 8]);
            f
        };
        let mut c = Conversations::default();
        let mut at = |number: u64, seconds: i64, response: bool| {
            let frame = dns(response);
            let p = Packet {
                number,
                seconds,
                nanos: 0,
                link: LinkType::Raw,
                data: &frame,
                original_len: frame.len() as u32,
            };
            c.dns(&p, &decode(&p)).to_vec()
        };
        let none = ["", "", ""];
        assert_eq!(at(1, 100, false), none);
        assert_eq!(at(2, 101, false), ["1", "1", "1"]);
        assert_eq!(at(3, 102, true), none);
        assert_eq!(at(4, 103, false), none);
        assert_eq!(at(5, 109, false), none);
        assert_eq!(at(6, 110, true), none);
        assert_eq!(at(7, 111, true), ["1", "", ""]);
    }

    #[test]
    fn icmp_unused_by_type_code_and_rfc_4884_length() {
        let icmp = |kind: u8, code: u8, word: [u8; 4]| {
            let mut b = vec![kind, code, 0, 0];
            b.extend(word);
            b
        };
        let unused = |b: Vec<u8>| icmp_unused(&b).map(hex);
        assert_eq!(unused(icmp(11, 0, [0, 0, 0, 0])), Some("00000000".into()));
        assert_eq!(unused(icmp(11, 0, [0xff, 0x17, 0, 0])), Some("ff".into()));
        assert_eq!(unused(icmp(3, 3, [1, 0, 3, 4])), Some("01000304".into()));
        assert_eq!(unused(icmp(3, 4, [1, 0, 5, 220])), Some("0100".into()));
        assert_eq!(unused(icmp(3, 4, [1, 9, 5, 220])), Some("01".into()));
        assert_eq!(unused(icmp(12, 0, [20, 0, 7, 8])), Some("000708".into()));
        assert_eq!(unused(icmp(12, 0, [20, 9, 7, 8])), Some("0708".into()));
        assert_eq!(unused(icmp(8, 0, [0, 1, 0, 2])), None);
        assert_eq!(icmp_unused(&[11, 0, 0, 0, 0]), None, "cut before byte 5");
    }

    /// A timestamp reply (type 14) with sequence 0x0102 and transmit timestamp 43,200,000
    /// ms (noon), and an echo request quoted in a time-exceeded error.
    #[test]
    fn icmp_timestamps_and_quoted_sequence_numbers() {
        let ip = |payload: &[u8]| {
            let mut f = vec![
                0x45, 0, 0, 0, 0, 0, 0, 0, 64, 1, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
            ];
            let len = (f.len() + payload.len()) as u16;
            f[2..4].copy_from_slice(&len.to_be_bytes());
            f.extend(payload);
            f
        };
        let column = |frame: &[u8], name: &str| {
            let p = Packet {
                number: 1,
                seconds: 0,
                nanos: 0,
                link: LinkType::Raw,
                data: frame,
                original_len: frame.len() as u32,
            };
            let at = STATELESS.iter().position(|c| *c == name).unwrap();
            stateless(&p, &decode(&p))[at].clone()
        };
        let mut reply = vec![14, 0, 0, 0, 0, 7, 0x01, 0x02];
        reply.extend([0; 8]);
        reply.extend(43_200_000u32.to_be_bytes());
        let frame = ip(&reply);
        assert_eq!(column(&frame, "icmp.transmit_timestamp"), "43200000");
        assert_eq!(column(&frame, "icmp.seq_le"), "513");
        assert_eq!(column(&frame, "icmp.unused"), "");
        // Time exceeded quoting an echo request whose sequence bytes are 00 34: 52 read
        // big-endian, 13312 read little-endian as seq_le does.
        let echo = ip(&[8, 0, 0, 0, 0, 1, 0x00, 0x34]);
        let mut error = vec![11, 0, 0, 0, 0, 0, 0, 0];
        error.extend(&echo);
        let frame = ip(&error);
        assert_eq!(column(&frame, "icmp.seq_le"), "13312");
        assert_eq!(column(&frame, "icmp.unused"), "00000000");
        assert_eq!(column(&frame, "icmp.transmit_timestamp"), "");
    }

    #[test]
    fn dns_question_names_follow_pointers_and_stop_at_bad_ones() {
        // www.espn.com, then a name that points back to "espn.com".
        let mut m = vec![0u8; 12];
        m.extend(b"\x03www\x04espn\x03com\x00");
        m.extend([0xc0, 16]);
        assert_eq!(question_name(&m, 12), Some(("www.espn.com".into(), 12, 26)));
        assert_eq!(question_name(&m, 26), Some(("espn.com".into(), 8, 28)));
        assert_eq!(question_name(&[0], 0), Some(("<Root>".into(), 6, 1)));
        // Control bytes C-escaped, DEL in octal, a bad UTF-8 byte as U+FFFD; the length
        // counts the bytes sent.
        let odd = b"\x05a\x01\x7f\t\xff\x00";
        assert_eq!(
            question_name(odd, 0),
            Some(("a\\001\\177\\t\u{fffd}".into(), 5, 7))
        );
        // A pointer to itself or forward, a label past the end: no name.
        assert_eq!(question_name(&[0xc0, 0], 0), None);
        assert_eq!(question_name(&[5, b'a'], 0), None);
    }

    #[test]
    fn seconds_between_prints_nine_decimals_and_a_sign() {
        assert_eq!(seconds_between((10, 0), (10, 0)), "0.000000000");
        assert_eq!(seconds_between((10, 999_999_999), (12, 1)), "1.000000002");
        assert_eq!(seconds_between((12, 1), (10, 999_999_999)), "-1.000000002");
    }

    #[test]
    fn frame_time_pads_the_day_and_prints_nine_digits() {
        assert_eq!(
            frame_time(1_278_798_210, 35_265_000),
            "Jul 10, 2010 21:43:30.035265000 UTC"
        );
        assert_eq!(
            frame_time(1_491_423_344, 641_377_000),
            "Apr  5, 2017 20:15:44.641377000 UTC"
        );
        assert_eq!(frame_time(0, 0), "Jan  1, 1970 00:00:00.000000000 UTC");
    }
}
