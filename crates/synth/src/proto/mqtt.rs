//! MQTT over TCP: sensors publishing to the broker, and brute-force CONNECTs
//! against it.

use rand::Rng;

use super::tcp::{self, ACK, PSH};
use crate::network::TOPICS;
use crate::row::{Column, Field, Row, push_u64};
use crate::traffic::{Flow, GenState};

/// A sensor: CONNECT, CONNACK, then PUBLISH / broker ACK pairs with pings.
pub(crate) fn sensor(row: &mut Row, flow: &mut Flow, state: &mut GenState, index: u32) {
    match index {
        0 => {
            let len = state.rng.random_range(14..=22);
            tcp::segment(row, flow, state, true, PSH | ACK, len);
            connect(row, len - 2, 0x02);
        }
        1 => connack(row, flow, state),
        _ if index.is_multiple_of(2) && state.rng.random_bool(0.1) => {
            tcp::segment(row, flow, state, true, PSH | ACK, 2);
            header(row, 12, 0xc0, 0);
        }
        _ if index.is_multiple_of(2) => publish(row, flow, state),
        _ if state.rng.random_bool(0.1) => {
            tcp::segment(row, flow, state, false, PSH | ACK, 2);
            header(row, 13, 0xd0, 0);
        }
        _ => tcp::segment(row, flow, state, false, ACK, 0),
    }
}

/// One reading published to the flow's topic, as a bare number or a JSON object.
fn publish(row: &mut Row, flow: &mut Flow, state: &mut GenState) {
    let topic = TOPICS[flow.choice as usize];
    let json = state.rng.random_bool(0.5);
    let (reading, id) = (
        state.rng.random_range(0..1000u64),
        state.rng.random_range(1..=64u64),
    );
    let start = row.text_len();
    row.text(Column::MqttMsg, |out| {
        if json {
            out.extend_from_slice(b"\"{\"\"id\"\":");
            push_u64(out, id);
            out.extend_from_slice(b", \"\"value\"\":");
            push_u64(out, reading / 10);
            out.push(b'.');
            push_u64(out, reading % 10);
            out.extend_from_slice(b", \"\"unit\"\":\"\"C\"\"}\"");
        } else {
            push_u64(out, reading / 10);
            out.push(b'.');
            push_u64(out, reading % 10);
        }
    });
    let msg_len = (row.text_len() - start) as u32;
    let mqtt_len = 2 + topic.len() as u32 + msg_len;
    tcp::segment(row, flow, state, true, PSH | ACK, mqtt_len + 2);
    let qos1 = state.rng.random_bool(0.3);
    header(row, 3, if qos1 { 0x32 } else { 0x30 }, mqtt_len);
    row.set(Column::MqttTopic, Field::Str(topic));
    row.num(Column::MqttTopicLen, topic.len() as u64);
}

/// Password guessing: CONNECTs with user name and password flags, refused.
pub(crate) fn brute_force(row: &mut Row, flow: &mut Flow, state: &mut GenState, index: u32) {
    match index % 3 {
        0 => {
            let len = state.rng.random_range(30..=80);
            tcp::segment(row, flow, state, true, PSH | ACK, len);
            connect(row, len - 2, 0xc2);
        }
        1 => connack(row, flow, state),
        _ => tcp::segment(row, flow, state, true, ACK, 0),
    }
}

fn header(row: &mut Row, msgtype: u8, hdrflags: u8, len: u32) {
    row.num(Column::MqttMsgtype, msgtype);
    row.set(Column::MqttHdrflags, Field::Hex(u32::from(hdrflags), 8));
    row.num(Column::MqttLen, len);
}

fn connect(row: &mut Row, len: u32, conflags: u8) {
    header(row, 1, 0x10, len);
    row.set(Column::MqttConflags, Field::Hex(u32::from(conflags), 8));
    row.num(Column::MqttConflagCleansess, 1u8);
    row.set(Column::MqttProtoname, Field::Str("MQTT"));
    row.num(Column::MqttProtoLen, 4u8);
    row.num(Column::MqttVer, 4u8);
}

fn connack(row: &mut Row, flow: &mut Flow, state: &mut GenState) {
    tcp::segment(row, flow, state, false, PSH | ACK, 4);
    header(row, 2, 0x20, 2);
    row.set(Column::MqttConackFlags, Field::Hex(0, 8));
}
