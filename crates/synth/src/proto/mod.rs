//! Packet builders, one module per protocol. Each fills the columns of one packet of
//! a flow into a [`Row`] and advances the flow's state; this module picks the builder
//! for the flow's kind, and mixes in the background packets that make attack flows
//! ambiguous packet by packet.
//!
//! The builders draw from the generator's one RNG, so the order of draws is part of
//! the output: reordering two draws changes every row after them.

mod arp;
mod dns;
mod http;
mod icmp;
mod modbus;
mod mqtt;
mod scan;
mod tcp;
mod udp;

use rand::Rng;

use crate::class::Class;
use crate::network::DNS_NAMES;
use crate::row::Row;
use crate::traffic::{Flow, GenState, Kind, Session};

/// Share of an attack flow's packets replaced by ordinary background packets (a
/// pure TCP ACK, or a DNS query): the per-packet ambiguity a flow model resolves.
const NOISE: f64 = 0.10;

/// Emits `flow`'s next packet into `row`.
pub(crate) fn next_packet(row: &mut Row, flow: &mut Flow, state: &mut GenState) {
    let noisy = flow.class != Class::Normal
        && flow.kind != Kind::MdnsShifted
        && state.rng.random_bool(NOISE);
    if noisy {
        background(row, flow, state);
    } else {
        match flow.kind {
            Kind::Session(session) => tcp::session(row, flow, state, |row, flow, state, index| {
                session_body(row, flow, state, session, index);
            }),
            Kind::DnsLookup => dns::lookup(row, flow, state),
            Kind::Ping | Kind::IcmpFlood => icmp::echo(row, flow, state),
            Kind::UdpFlood => udp::flood(row, flow, state),
            Kind::SynFlood => tcp::syn_flood(row, flow, state),
            Kind::PortScan => scan::port_scan(row, flow, state),
            Kind::OsProbe => scan::os_probe(row, flow, state),
            Kind::ArpSpoof => arp::spoof(row, flow, state),
            Kind::MdnsShifted => dns::shifted_mdns(row, flow, state),
        }
    }
    flow.step += 1;
}

/// A packet every class sends: a bare ACK inside a TCP flow, else a DNS lookup.
fn background(row: &mut Row, flow: &mut Flow, state: &mut GenState) {
    if flow.kind.is_tcp() {
        let from_client = state.rng.random_bool(0.5);
        tcp::segment(row, flow, state, from_client, tcp::ACK, 0);
        let (client_ts, server_ts) = flow.timestamps();
        row.options_ts(client_ts, server_ts);
    } else {
        state.next_stream += 1;
        let name = state.rng.random_range(0..DNS_NAMES.len());
        let stream = state.next_stream;
        dns::query(row, state, flow.client, name, stream, 0);
    }
}

/// Body packet `index` (0-based, after the handshake) of a session.
fn session_body(
    row: &mut Row,
    flow: &mut Flow,
    state: &mut GenState,
    session: Session,
    index: u32,
) {
    match session {
        Session::HttpBrowse => http::browse(row, flow, state, index),
        Session::HttpFlood => http::flood(row, flow, state, index),
        Session::SqlInjection => http::sql_injection(row, flow, state, index),
        Session::Xss => http::xss(row, flow, state, index),
        Session::Upload => http::upload(row, flow, state, index),
        Session::HttpBrute => http::brute_force(row, flow, state, index),
        Session::VulnScan => http::vulnerability_scan(row, flow, state, index),
        Session::MqttSensor => mqtt::sensor(row, flow, state, index),
        Session::MqttBrute => mqtt::brute_force(row, flow, state, index),
        Session::ModbusPoll => modbus::poll(row, flow, state, index),
        Session::Backdoor => tcp::backdoor(row, flow, state, index),
        Session::Ransomware => tcp::ransomware(row, flow, state, index),
    }
}
