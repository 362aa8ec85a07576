//! One CSV row: the 63 Edge-IIoTset columns, the typed fields a packet fills in, and
//! how each is spelled. The spelling is where the real file's quirks live (floats for
//! integers, hex flags, the `0` / `0.0` label leak, empty fields, the broken
//! `frame.time`), so protocol code sets values and never thinks about text.
//!
//! Rows are built without allocation: text goes into one scratch buffer that is
//! reused from row to row, and numbers are formatted by hand.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::network::Ip;

/// Absent non-leak fields written as an empty field instead of `0.0`: 2 % of them.
const EMPTY_BELOW: u32 = u32::MAX / 50;
const DAY_US: u64 = 86_400 * 1_000_000;

/// Number of columns.
pub(crate) const NCOLS: usize = 63;

/// The Edge-IIoTset DNN CSV header, in order.
#[rustfmt::skip]
pub(crate) const HEADER: [&str; NCOLS] = [
    "frame.time", "ip.src_host", "ip.dst_host", "arp.dst.proto_ipv4", "arp.opcode",
    "arp.hw.size", "arp.src.proto_ipv4", "icmp.checksum", "icmp.seq_le",
    "icmp.transmit_timestamp", "icmp.unused", "http.file_data", "http.content_length",
    "http.request.uri.query", "http.request.method", "http.referer",
    "http.request.full_uri", "http.request.version", "http.response", "http.tls_port",
    "tcp.ack", "tcp.ack_raw", "tcp.checksum", "tcp.connection.fin", "tcp.connection.rst",
    "tcp.connection.syn", "tcp.connection.synack", "tcp.dstport", "tcp.flags",
    "tcp.flags.ack", "tcp.len", "tcp.options", "tcp.payload", "tcp.seq", "tcp.srcport",
    "udp.port", "udp.stream", "udp.time_delta", "dns.qry.name", "dns.qry.name.len",
    "dns.qry.qu", "dns.qry.type", "dns.retransmission", "dns.retransmit_request",
    "dns.retransmit_request_in", "mqtt.conack.flags", "mqtt.conflag.cleansess",
    "mqtt.conflags", "mqtt.hdrflags", "mqtt.len", "mqtt.msg_decoded_as", "mqtt.msg",
    "mqtt.msgtype", "mqtt.proto_len", "mqtt.protoname", "mqtt.topic", "mqtt.topic_len",
    "mqtt.ver", "mbtcp.len", "mbtcp.trans_id", "mbtcp.unit_id", "Attack_label",
    "Attack_type",
];

/// Column positions, in header order (the discriminant is the index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // Every column is named; a few (tls_port, icmp.unused, ...) stay absent.
#[rustfmt::skip]
pub(crate) enum Column {
    FrameTime, IpSrcHost, IpDstHost, ArpDstProtoIpv4, ArpOpcode, ArpHwSize,
    ArpSrcProtoIpv4, IcmpChecksum, IcmpSeqLe, IcmpTransmitTimestamp, IcmpUnused,
    HttpFileData, HttpContentLength, HttpRequestUriQuery, HttpRequestMethod, HttpReferer,
    HttpRequestFullUri, HttpRequestVersion, HttpResponse, HttpTlsPort, TcpAck, TcpAckRaw,
    TcpChecksum, TcpConnectionFin, TcpConnectionRst, TcpConnectionSyn,
    TcpConnectionSynack, TcpDstport, TcpFlags, TcpFlagsAck, TcpLen, TcpOptions,
    TcpPayload, TcpSeq, TcpSrcport, UdpPort, UdpStream, UdpTimeDelta, DnsQryName,
    DnsQryNameLen, DnsQryQu, DnsQryType, DnsRetransmission, DnsRetransmitRequest,
    DnsRetransmitRequestIn, MqttConackFlags, MqttConflagCleansess, MqttConflags,
    MqttHdrflags, MqttLen, MqttMsgDecodedAs, MqttMsg, MqttMsgtype, MqttProtoLen,
    MqttProtoname, MqttTopic, MqttTopicLen, MqttVer, MbtcpLen, MbtcpTransId, MbtcpUnitId,
    AttackLabel, AttackType,
}

/// Columns whose absent value the real capture scripts spelled `0` in normal rows
/// and `0.0` in attack rows: a label leak that `audit` must find.
pub(crate) const LEAK_COLUMNS: [Column; 9] = [
    Column::HttpRequestMethod,
    Column::HttpReferer,
    Column::HttpRequestVersion,
    Column::MqttConackFlags,
    Column::MqttProtoname,
    Column::MqttTopic,
    Column::DnsQryNameLen,
    Column::TcpConnectionFin,
    Column::TcpConnectionRst,
];

/// `LEAK[i]`: column `i` is one of [`LEAK_COLUMNS`].
pub(crate) const LEAK: [bool; NCOLS] = {
    let mut table = [false; NCOLS];
    let mut i = 0;
    while i < LEAK_COLUMNS.len() {
        table[LEAK_COLUMNS[i] as usize] = true;
        i += 1;
    }
    table
};

/// One field of the row being built. Text lives in the row's scratch buffer so a
/// row costs no allocation.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Field {
    /// Absent: `0` or `0.0` depending on column and label, sometimes empty.
    Absent,
    /// A number written as a float: `1883.0`.
    Num(u64),
    /// A number written as an integer: `1`.
    Int(u64),
    /// Microseconds written as seconds with six decimals: `0.000012`.
    Micros(u64),
    /// Hex with a fixed number of digits: `0x0018`.
    Hex(u32, u8),
    Ip(Ip),
    Str(&'static str),
    /// A byte range of the scratch buffer, already CSV-escaped.
    Scratch(u32, u32),
    /// Microseconds since midnight, in the real file's broken `frame.time` form.
    Time(u64),
}

/// The fields of the row being built (one packet, plus the label columns).
#[derive(Debug)]
pub(crate) struct Row {
    fields: [Field; NCOLS],
    scratch: Vec<u8>,
    /// This row writes flags and checksums in hex.
    hex: bool,
}

impl Row {
    pub(crate) fn new() -> Self {
        Row {
            fields: [Field::Absent; NCOLS],
            scratch: Vec::with_capacity(8 << 10),
            hex: false,
        }
    }

    /// Empties the row for the next packet.
    pub(crate) fn reset(&mut self, hex: bool) {
        self.fields = [Field::Absent; NCOLS];
        self.scratch.clear();
        self.hex = hex;
    }

    pub(crate) fn get(&self, column: Column) -> Field {
        self.fields[column as usize]
    }

    pub(crate) fn set(&mut self, column: Column, value: Field) {
        self.fields[column as usize] = value;
    }

    /// A number; zero is absent (that is how tshark exports leave it).
    pub(crate) fn num(&mut self, column: Column, value: impl Into<u64>) {
        let value = value.into();
        self.set(
            column,
            if value == 0 {
                Field::Absent
            } else {
                Field::Num(value)
            },
        );
    }

    /// Flags and checksums: hex in hex rows, decimal floats otherwise.
    pub(crate) fn word(&mut self, column: Column, value: u16) {
        if self.hex {
            self.set(column, Field::Hex(u32::from(value), 4));
        } else {
            self.num(column, value);
        }
    }

    /// Text built into the scratch buffer by `write`, which must leave it CSV-escaped.
    pub(crate) fn text(&mut self, column: Column, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.scratch.len();
        write(&mut self.scratch);
        let end = self.scratch.len();
        // The scratch buffer holds one row (< 4 GiB).
        self.set(column, Field::Scratch(start as u32, end as u32));
    }

    /// Bytes of text built so far for this row.
    pub(crate) fn text_len(&self) -> usize {
        self.scratch.len()
    }

    pub(crate) fn is_tcp(&self) -> bool {
        matches!(self.get(Column::TcpSrcport), Field::Num(_))
    }

    pub(crate) fn hosts(&mut self, src: Ip, dst: Ip) {
        self.set(Column::IpSrcHost, Field::Ip(src));
        self.set(Column::IpDstHost, Field::Ip(dst));
    }

    /// `len` bytes of pseudo-random payload as lowercase hex (xorshift: cheap, and
    /// its one seed comes from the row's RNG, so output stays deterministic).
    pub(crate) fn payload(&mut self, len: u32, seed: u64) {
        self.text(Column::TcpPayload, |out| {
            push_random_hex(out, len as usize, seed);
        });
    }

    pub(crate) fn options(&mut self, options: &'static str) {
        self.set(Column::TcpOptions, Field::Str(options));
    }

    /// Timestamps option of an established connection: NOP NOP TS(val, ecr).
    pub(crate) fn options_ts(&mut self, val: u32, ecr: u32) {
        self.text(Column::TcpOptions, |out| {
            out.extend_from_slice(b"0101080a");
            push_hex_digits(out, val, 8);
            push_hex_digits(out, ecr, 8);
        });
    }

    /// Appends the row (no line terminator) to `out`. `rng` decides which absent
    /// fields are written empty.
    pub(crate) fn render(&self, out: &mut Vec<u8>, normal: bool, rng: &mut ChaCha8Rng) {
        for (i, field) in self.fields.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match *field {
                Field::Absent => {
                    if LEAK[i] {
                        out.extend_from_slice(if normal { b"0" } else { b"0.0" });
                    } else if rng.random::<u32>() >= EMPTY_BELOW {
                        out.extend_from_slice(b"0.0");
                    }
                }
                Field::Num(value) => {
                    push_u64(out, value);
                    out.extend_from_slice(b".0");
                }
                Field::Int(value) => push_u64(out, value),
                Field::Micros(us) => {
                    push_u64(out, us / 1_000_000);
                    out.push(b'.');
                    push_padded(out, us % 1_000_000, 6);
                }
                Field::Hex(value, width) => {
                    out.extend_from_slice(b"0x");
                    push_hex_digits(out, value, width);
                }
                Field::Ip(ip) => push_ip(out, ip),
                Field::Str(text) => out.extend_from_slice(text.as_bytes()),
                Field::Scratch(start, end) => {
                    out.extend_from_slice(&self.scratch[start as usize..end as usize]);
                }
                Field::Time(us) => {
                    // The real field lost "Mon dd," to a comma split: " 2021 22:49:20.400794000 ".
                    let us = us % DAY_US;
                    let secs = us / 1_000_000;
                    out.extend_from_slice(b" 2021 ");
                    push_padded(out, secs / 3600, 2);
                    out.push(b':');
                    push_padded(out, secs / 60 % 60, 2);
                    out.push(b':');
                    push_padded(out, secs % 60, 2);
                    out.push(b'.');
                    push_padded(out, us % 1_000_000, 6);
                    out.extend_from_slice(b"000 ");
                }
            }
        }
    }
}

// Formatting without allocation.

pub(crate) fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Zero-padded to `width` digits (wider values are written in full).
fn push_padded(out: &mut Vec<u8>, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut i = digits.len();
    let mut rest = value;
    loop {
        i -= 1;
        digits[i] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    let start = i.min(digits.len() - width.min(digits.len()));
    out.extend_from_slice(&digits[start..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The low `width` hex digits of `value`, lowercase.
pub(crate) fn push_hex_digits(out: &mut Vec<u8>, value: u32, width: u8) {
    for k in (0..u32::from(width)).rev() {
        let nibble = if k < 8 { (value >> (4 * k)) & 0xf } else { 0 };
        out.push(HEX[nibble as usize]);
    }
}

pub(crate) fn push_ip(out: &mut Vec<u8>, ip: Ip) {
    for (k, octet) in ip.iter().enumerate() {
        if k > 0 {
            out.push(b'.');
        }
        push_u64(out, u64::from(*octet));
    }
}

/// `len` pseudo-random bytes as hex (xorshift64*).
fn push_random_hex(out: &mut Vec<u8>, len: usize, seed: u64) {
    let mut state = seed | 1;
    out.reserve(2 * len);
    let mut left = len;
    while left > 0 {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_f491_4f6c_dd1d);
        for byte in word.to_le_bytes().iter().take(left.min(8)) {
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        }
        left = left.saturating_sub(8);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_positions_match_the_header() {
        assert_eq!(HEADER.len(), 63);
        assert_eq!(Column::AttackType as usize, 62);
        for (column, name) in [
            (Column::FrameTime, "frame.time"),
            (Column::IcmpUnused, "icmp.unused"),
            (Column::HttpTlsPort, "http.tls_port"),
            (Column::TcpSrcport, "tcp.srcport"),
            (Column::UdpTimeDelta, "udp.time_delta"),
            (Column::DnsRetransmitRequestIn, "dns.retransmit_request_in"),
            (Column::MqttTopic, "mqtt.topic"),
            (Column::MbtcpUnitId, "mbtcp.unit_id"),
            (Column::AttackLabel, "Attack_label"),
        ] {
            assert_eq!(HEADER[column as usize], name);
        }
    }

    #[test]
    fn numbers_are_spelled_like_the_real_file() {
        let mut out = Vec::new();
        push_padded(&mut out, 7, 2);
        out.push(b' ');
        push_padded(&mut out, 1234, 2);
        out.push(b' ');
        push_hex_digits(&mut out, 0x18, 4);
        out.push(b' ');
        push_ip(&mut out, [192, 168, 0, 1]);
        out.push(b' ');
        push_u64(&mut out, u64::MAX);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "07 1234 0018 192.168.0.1 18446744073709551615"
        );
    }
}
