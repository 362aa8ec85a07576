//! The application-layer columns over TCP (HTTP, MQTT, Modbus/TCP), filled to tshark's
//! rules: which dissector reads a conversation's bytes, how each reads its PDUs, and how
//! tshark prints the values.
//!
//! A dissector is picked per call as tshark's `decode_tcp_ports` does: the conversation's
//! own dissector when a heuristic set one, else the server port (the destination of the
//! SYN), then the lower port, then the higher; a dissector that rejects the bytes (Modbus
//! on a payload that does not look like Modbus) passes them on, and what nobody takes is
//! tried with the HTTP heuristic (a first line starting or ending with `HTTP/1.x`), which
//! then claims the conversation. Ports: MQTT 1883, Modbus/TCP 502, DNS 53 and 5353, HTTP
//! 80, 631, 1900, 2710, 2869, 3128, 3132, 3689, 5985, 8080, 8088, 11371 (`tshark -G
//! decodes`).
//!
//! Values are printed as `tshark -T fields` prints them: unsigned numbers in decimal,
//! hex flags as `0x%02x`, byte fields as lower-case hex, strings decoded (UTF-8 with
//! U+FFFD for bad bytes, or ASCII with U+FFFD for every byte above 0x7f), cut at a NUL,
//! with backspace, tab, LF, form feed and CR written as `\b`, `\t`, `\n`, `\f`, `\r`. With `-E occurrence=f` each column
//! holds its field's first occurrence in the frame, whichever PDU it came from.

use crate::reassembly::{Desegment, Dissect, More};

pub mod dns;
pub mod http;
pub mod mbtcp;
pub mod mqtt;

/// The columns [`AppFields`] holds, in tshark-fields.sh's order.
pub const APP: [&str; 25] = [
    "http.file_data",
    "http.content_length",
    "http.request.uri.query",
    "http.request.method",
    "http.referer",
    "http.request.full_uri",
    "http.request.version",
    "http.response",
    "http.tls_port",
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

/// One application column, by its place in [`APP`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Col {
    HttpFileData,
    HttpContentLength,
    HttpQuery,
    HttpMethod,
    HttpReferer,
    HttpFullUri,
    HttpVersion,
    HttpResponse,
    HttpTlsPort,
    MqttConackFlags,
    MqttCleanSession,
    MqttConflags,
    MqttHdrflags,
    MqttLen,
    MqttMsgDecodedAs,
    MqttMsg,
    MqttMsgtype,
    MqttProtoLen,
    MqttProtoname,
    MqttTopic,
    MqttTopicLen,
    MqttVer,
    MbtcpLen,
    MbtcpTransId,
    MbtcpUnitId,
}

/// One frame's application columns: each field's first occurrence (`None`: absent; a
/// field can be present and empty, and then hides later occurrences).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppFields(pub [Option<String>; APP.len()]);

impl AppFields {
    /// Sets `col` unless an earlier PDU of the frame already did.
    pub fn set(&mut self, col: Col, value: impl FnOnce() -> String) {
        let slot = &mut self.0[col as usize];
        if slot.is_none() {
            *slot = Some(value());
        }
    }

    /// The columns as tshark prints them (absent as empty).
    pub fn into_strings(self) -> [String; APP.len()] {
        self.0.map(Option::unwrap_or_default)
    }
}

/// Per-conversation application state (MQTT's protocol version, HTTP's heuristic claim
/// and pending requests).
#[derive(Debug, Default)]
pub struct AppState {
    /// The destination port of the conversation's SYN.
    pub server_port: Option<u16>,
    /// The HTTP heuristic claimed the conversation.
    http_claimed: bool,
    /// MQTT's protocol version from CONNECT (0: none seen).
    mqtt_version: u8,
    /// MQTT v5 topic aliases.
    mqtt_aliases: rustc_hash::FxHashMap<u16, String>,
    http: http::Conv,
    /// DNS over TCP: requests by ID.
    dns: crate::fields::DnsTable<((), u16)>,
}

/// The TCP ports whose default dissector is HTTP.
pub const HTTP_PORTS: [u16; 12] = [
    80, 631, 1900, 2710, 2869, 3128, 3132, 3689, 5985, 8080, 8088, 11371,
];

/// tshark's default dissector of a TCP port among the ones iotids reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http,
    Mqtt,
    Mbtcp,
    Dns,
}

fn by_port(port: u16) -> Option<Proto> {
    match port {
        0 => None,
        1883 => Some(Proto::Mqtt),
        502 => Some(Proto::Mbtcp),
        53 | 5353 => Some(Proto::Dns),
        p if HTTP_PORTS.contains(&p) => Some(Proto::Http),
        _ => None,
    }
}

/// The dissector of one frame's TCP payload: picks the protocol per call and writes the
/// fields it finds into `fields`.
#[derive(Debug)]
pub struct Dispatch<'f> {
    pub src_port: u16,
    pub dst_port: u16,
    /// The frame (for DNS over TCP's request tracking).
    pub packet: crate::reader::Packet<'f>,
    pub fields: &'f mut AppFields,
    /// DNS over TCP's columns ([`crate::fields::DNS`] then
    /// [`crate::fields::DNS_TRANSACTIONS`]), first message's.
    pub dns: Option<[String; 7]>,
    /// PDUs found malformed in this frame (tshark's exceptions), by layer name.
    pub malformed: Vec<&'static str>,
}

impl Dissect<AppState> for Dispatch<'_> {
    fn dissect(
        &mut self,
        state: &mut AppState,
        data: &[u8],
        reported: usize,
        can_desegment: bool,
    ) -> Desegment {
        let tvb = Tvb { data, reported };
        if state.http_claimed {
            return http::dissect(self, state, tvb, can_desegment);
        }
        let (low, high) = if self.src_port > self.dst_port {
            (self.dst_port, self.src_port)
        } else {
            (self.src_port, self.dst_port)
        };
        for port in [state.server_port.unwrap_or(0), low, high] {
            match by_port(port) {
                Some(Proto::Mqtt) => return mqtt::dissect(self, state, tvb, can_desegment),
                Some(Proto::Http) => return http::dissect(self, state, tvb, can_desegment),
                Some(Proto::Dns) => return dns::dissect(self, state, tvb, can_desegment),
                Some(Proto::Mbtcp) => {
                    if let Some(d) = mbtcp::dissect(self, tvb, can_desegment) {
                        return d;
                    }
                }
                None => {}
            }
        }
        if http::heuristic(tvb) {
            state.http_claimed = true;
            return http::dissect(self, state, tvb, can_desegment);
        }
        Desegment::Done
    }
}

/// tshark's view of a buffer: the bytes captured and the length reported on the wire
/// (reading past the captured bytes throws, as reading past the reported length does).
#[derive(Debug, Clone, Copy)]
pub struct Tvb<'a> {
    pub data: &'a [u8],
    pub reported: usize,
}

/// A read past the end of a [`Tvb`]: tshark's bounds exceptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds;

impl<'a> Tvb<'a> {
    pub fn bytes(&self, at: usize, len: usize) -> Result<&'a [u8], Bounds> {
        let end = at.checked_add(len).ok_or(Bounds)?;
        self.data.get(at..end).ok_or(Bounds)
    }

    pub fn u8(&self, at: usize) -> Result<u8, Bounds> {
        self.data.get(at).copied().ok_or(Bounds)
    }

    pub fn u16(&self, at: usize) -> Result<u16, Bounds> {
        let b = self.bytes(at, 2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// The sub-buffer from `at` on, `len` reported bytes long.
    pub fn sub(&self, at: usize, len: usize) -> Tvb<'a> {
        let data = self.data.get(at..).unwrap_or(&[]);
        Tvb {
            data: &data[..data.len().min(len)],
            reported: len,
        }
    }

    /// A protobuf-style varint at `at` (at most 10 bytes): its value and length, the
    /// length 0 when all 10 bytes carry a continuation bit (`tvb_get_varint`).
    pub fn varint(&self, at: usize) -> Result<(u64, usize), Bounds> {
        let mut value = 0u64;
        for i in 0..10 {
            let b = self.u8(at + i)?;
            value |= u64::from(b & 0x7f).checked_shl(7 * i as u32).unwrap_or(0);
            if b < 0x80 {
                return Ok((value, i + 1));
            }
        }
        Ok((value, 0))
    }
}

/// tshark's `tcp_dissect_pdus`: PDUs back to back in `tvb`, each `pdu_len` long (read
/// from at least `fixed` bytes), each handed to `pdu`; an unfinished last one is asked
/// to be reassembled when `can_desegment`.
pub fn dissect_pdus(
    tvb: Tvb<'_>,
    can_desegment: bool,
    fixed: usize,
    pdu_len: impl Fn(Tvb<'_>) -> Result<u64, Bounds>,
    mut pdu: impl FnMut(Tvb<'_>),
) -> Desegment {
    let mut offset = 0usize;
    while offset < tvb.reported {
        let captured = tvb.data.len().saturating_sub(offset);
        if captured == 0 {
            return Desegment::Abort;
        }
        if can_desegment && captured < fixed {
            return Desegment::More {
                offset,
                more: More::OneMoreSegment,
            };
        }
        let rest = Tvb {
            data: &tvb.data[offset..],
            reported: tvb.reported - offset,
        };
        let Ok(plen) = pdu_len(rest) else {
            return Desegment::Abort;
        };
        // tshark keeps the length in an unsigned int.
        let plen = plen as u32 as usize;
        if plen == 0 {
            return if can_desegment {
                Desegment::More {
                    offset,
                    more: More::OneMoreSegment,
                }
            } else {
                Desegment::Done
            };
        }
        if plen < fixed {
            return Desegment::Done;
        }
        if can_desegment && captured < plen {
            return Desegment::More {
                offset,
                more: More::Bytes((plen - captured) as u32),
            };
        }
        pdu(rest.sub(0, plen));
        let Some(next) = offset.checked_add(plen) else {
            break;
        };
        offset = next;
    }
    Desegment::Done
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    ::hex::encode(bytes)
}

/// Escapes a string value as `tshark -T fields` prints it: backspace, tab, LF, form
/// feed and CR as two characters each (`\b`, `\t`, `\n`, `\f`, `\r`), everything else
/// (other control bytes, DEL, backslash, quotes) as is.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

/// A UTF-8 string field: bad sequences as U+FFFD, cut at a NUL, escaped.
pub fn utf8(bytes: &[u8]) -> String {
    let bytes = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
    escape(&String::from_utf8_lossy(bytes))
}

/// An ASCII string field: bytes above 0x7f as U+FFFD, cut at a NUL, escaped.
pub fn ascii(bytes: &[u8]) -> String {
    let bytes = bytes.split(|&b| b == 0).next().unwrap_or(&[]);
    let s: String = bytes
        .iter()
        .map(|&b| if b < 0x80 { char::from(b) } else { '\u{fffd}' })
        .collect();
    escape(&s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_print_as_tshark_prints_them() {
        assert_eq!(
            utf8(b"a\tb\nc\rd\\e\x01f\x7fg\xffh\xc3\xa9i"),
            "a\\tb\\nc\\rd\\e\x01f\x7fg\u{fffd}h\u{e9}i"
        );
        assert_eq!(
            ascii(b"r\x01\xff\xc3\xa9\\z"),
            "r\x01\u{fffd}\u{fffd}\u{fffd}\\z"
        );
        assert_eq!(ascii(b"ab\x00cd"), "ab");
        assert_eq!(
            utf8(b"a\x07b\x08c\x0bd\x0ce\x1bf"),
            "a\x07b\\bc\x0bd\\fe\x1bf"
        );
        assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    }

    #[test]
    fn varints_stop_at_ten_bytes() {
        let t = Tvb {
            data: &[0x80, 0x01],
            reported: 2,
        };
        assert_eq!(t.varint(0), Ok((128, 2)));
        let t = Tvb {
            data: &[0xff; 10],
            reported: 10,
        };
        assert_eq!(t.varint(0).map(|v| v.1), Ok(0));
        let t = Tvb {
            data: &[0xff; 3],
            reported: 3,
        };
        assert_eq!(t.varint(0), Err(Bounds));
    }

    /// Two 4-byte PDUs (length in byte 1) and half of a third: two dissected, the third
    /// asked for; cut short without reassembly: dissected as far as it goes.
    #[test]
    fn pdus_back_to_back_and_the_unfinished_one() {
        let data = [9, 4, 0, 0, 9, 4, 1, 1, 9, 6, 2];
        let len = |t: Tvb<'_>| t.u8(1).map(u64::from);
        let mut seen = Vec::new();
        let d = dissect_pdus(
            Tvb {
                data: &data,
                reported: 11,
            },
            true,
            2,
            len,
            |t| seen.push((t.data.to_vec(), t.reported)),
        );
        assert_eq!(
            d,
            Desegment::More {
                offset: 8,
                more: More::Bytes(3)
            }
        );
        assert_eq!(seen, [(vec![9, 4, 0, 0], 4), (vec![9, 4, 1, 1], 4)]);
        seen.clear();
        let d = dissect_pdus(
            Tvb {
                data: &data,
                reported: 11,
            },
            false,
            2,
            len,
            |t| seen.push((t.data.to_vec(), t.reported)),
        );
        assert_eq!(d, Desegment::Done);
        assert_eq!(seen[2], (vec![9, 6, 2], 6));
        // One byte: the fixed part needs one more segment.
        let d = dissect_pdus(
            Tvb {
                data: &[9],
                reported: 1,
            },
            true,
            2,
            len,
            |_| {},
        );
        assert_eq!(
            d,
            Desegment::More {
                offset: 0,
                more: More::OneMoreSegment
            }
        );
    }
}
