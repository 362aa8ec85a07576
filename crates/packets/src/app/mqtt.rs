//! MQTT (tshark's `packet-mqtt.c`, TCP port 1883): the fixed header of every message,
//! CONNECT's protocol name, version and flags, CONNACK's flags, PUBLISH's topic and
//! message, and SUBSCRIBE's and UNSUBSCRIBE's first topic.
//!
//! A message's length is its remaining-length varint (read as tshark reads it: up to 10
//! bytes, length 0 when all 10 continue) plus the header; a varint cut off at the end of
//! the segment is tshark's uncaught exception, so the rest of that segment is lost. A
//! message that ends early keeps the fields read before the end.

use super::{AppState, Bounds, Col, Dispatch, Tvb, dissect_pdus, hex, utf8};
use crate::reassembly::Desegment;

const CONNECT: u8 = 1;
const CONNACK: u8 = 2;
const PUBLISH: u8 = 3;
const SUBSCRIBE: u8 = 8;
const UNSUBSCRIBE: u8 = 10;

/// The MQTT messages in `tvb`.
pub(super) fn dissect(
    d: &mut Dispatch<'_>,
    state: &mut AppState,
    tvb: Tvb<'_>,
    can_desegment: bool,
) -> Desegment {
    let pdu_len = |t: Tvb<'_>| {
        let (len, n) = t.varint(1)?;
        Ok(len.wrapping_add(n as u64).wrapping_add(1))
    };
    dissect_pdus(tvb, can_desegment, 2, pdu_len, |pdu| {
        if message(d, state, pdu).is_err() {
            d.malformed.push("mqtt");
        }
    })
}

/// One MQTT message.
fn message(d: &mut Dispatch<'_>, state: &mut AppState, t: Tvb<'_>) -> Result<(), Bounds> {
    let f = &mut *d.fields;
    let header = t.u8(0)?;
    let kind = header >> 4;
    let (len, n) = t.varint(1)?;
    f.set(Col::MqttHdrflags, || format!("0x{header:02x}"));
    f.set(Col::MqttMsgtype, || kind.to_string());
    f.set(Col::MqttLen, || len.to_string());
    let mut at = 1 + n;
    match kind {
        CONNECT => {
            let name_len = usize::from(t.u16(at)?);
            f.set(Col::MqttProtoLen, || name_len.to_string());
            at += 2;
            let name = t.bytes(at, name_len)?;
            f.set(Col::MqttProtoname, || utf8(name));
            at += name_len;
            let version = t.u8(at)?;
            state.mqtt_version = version;
            f.set(Col::MqttVer, || version.to_string());
            at += 1;
            let flags = t.u8(at)?;
            f.set(Col::MqttConflags, || format!("0x{flags:02x}"));
            f.set(Col::MqttCleanSession, || ((flags >> 1) & 1).to_string());
        }
        // MQTT 3.1's CONNACK has a reserved byte there, not flags.
        CONNACK if state.mqtt_version != 3 => {
            let flags = t.u8(at)?;
            f.set(Col::MqttConackFlags, || format!("0x{flags:02x}"));
        }
        PUBLISH => {
            let topic_len = usize::from(t.u16(at)?);
            f.set(Col::MqttTopicLen, || topic_len.to_string());
            at += 2;
            let mut topic = None;
            if topic_len > 0 {
                let bytes = t.bytes(at, topic_len)?;
                let s = utf8(bytes);
                f.set(Col::MqttTopic, || s.clone());
                topic = Some(s);
                at += topic_len;
            }
            if header & 0x06 != 0 {
                t.bytes(at, 2)?;
                at += 2;
            }
            if state.mqtt_version == 5 {
                let (skip, alias) = properties(t, at)?;
                at += skip;
                if alias != 0 {
                    match topic {
                        Some(s) => {
                            state.mqtt_aliases.insert(alias, s);
                        }
                        None => {
                            let s = state.mqtt_aliases.get(&alias).cloned().unwrap_or_default();
                            f.set(Col::MqttTopic, || s);
                        }
                    }
                }
            }
            let msg_len = t.reported.checked_sub(at).ok_or(Bounds)?;
            let msg = t.bytes(at, msg_len)?;
            // An empty byte field at the end of the data prints as tshark's `<MISSING>`.
            f.set(Col::MqttMsg, || {
                if msg.is_empty() {
                    "<MISSING>".into()
                } else {
                    hex(msg)
                }
            });
        }
        SUBSCRIBE | UNSUBSCRIBE => {
            t.bytes(at, 2)?;
            at += 2;
            if state.mqtt_version == 5 {
                at += properties(t, at)?.0;
            }
            while at < t.reported {
                let topic_len = usize::from(t.u16(at)?);
                f.set(Col::MqttTopicLen, || topic_len.to_string());
                at += 2;
                if topic_len > 0 {
                    let bytes = t.bytes(at, topic_len)?;
                    f.set(Col::MqttTopic, || utf8(bytes));
                    at += topic_len;
                }
                if kind == SUBSCRIBE {
                    t.u8(at)?;
                    at += 1;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// MQTT v5 properties at `at`: how many bytes they take (length varint included) and the
/// topic alias among them (0 if none), read as tshark reads them.
fn properties(t: Tvb<'_>, at: usize) -> Result<(usize, u16), Bounds> {
    let (len, n) = t.varint(at)?;
    let len = len as u32 as usize;
    let total = n.checked_add(len).ok_or(Bounds)?;
    t.bytes(at, total)?;
    let mut alias = 0u16;
    let mut pos = at + n;
    let end = pos + len;
    while pos < end {
        let id = t.u8(pos)?;
        pos += 1;
        let string = |p: usize| -> Result<usize, Bounds> {
            let l = usize::from(t.u16(p)?);
            t.bytes(p + 2, l)?;
            Ok(2 + l)
        };
        pos += match id {
            0x01 | 0x17 | 0x19 | 0x25 | 0x28 | 0x29 | 0x2a | 0x24 => {
                t.u8(pos)?;
                1
            }
            0x23 => {
                alias = t.u16(pos)?;
                2
            }
            0x13 | 0x21 | 0x22 => {
                t.u16(pos)?;
                2
            }
            0x02 | 0x11 | 0x18 | 0x27 => {
                t.bytes(pos, 4)?;
                4
            }
            0x0b => match t.varint(pos)? {
                (_, 0) => return Err(Bounds),
                (_, k) => k,
            },
            0x03 | 0x08 | 0x09 | 0x12 | 0x15 | 0x16 | 0x1a | 0x1c | 0x1f => string(pos)?,
            0x26 => {
                let k = string(pos)?;
                k + string(pos + k)?
            }
            _ => end - pos,
        };
    }
    Ok((total, alias))
}
