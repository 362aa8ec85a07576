//! DNS over UDP: devices resolving names (and the background lookups mixed into
//! attack flows), plus the real file's MITM rows whose mDNS fields slid into the
//! wrong columns.

use rand::Rng;

use crate::network::{DNS_NAMES, GATEWAY, Ip};
use crate::row::{Column, Field, Row};
use crate::traffic::{Flow, GenState};

/// One query for `DNS_NAMES[name]` from `src` to the gateway, `delta_us` after the
/// stream's previous packet (0: the first).
pub(crate) fn query(
    row: &mut Row,
    state: &mut GenState,
    src: Ip,
    name: usize,
    stream: u64,
    delta_us: u64,
) {
    row.hosts(src, GATEWAY);
    row.num(Column::UdpPort, 53u16);
    row.num(Column::UdpStream, stream);
    row.set(
        Column::UdpTimeDelta,
        if delta_us == 0 {
            Field::Absent
        } else {
            Field::Micros(delta_us)
        },
    );
    let name = DNS_NAMES[name];
    row.set(Column::DnsQryName, Field::Str(name));
    row.num(Column::DnsQryNameLen, name.len() as u64);
    row.num(
        Column::DnsQryType,
        if state.rng.random_bool(0.7) { 1u8 } else { 28 },
    );
}

/// A device resolving one name: A and AAAA queries, some retransmitted.
pub(crate) fn lookup(row: &mut Row, flow: &mut Flow, state: &mut GenState) {
    let delta = if flow.step == 0 {
        0
    } else {
        state.rng.random_range(150..=1_500_000)
    };
    query(
        row,
        state,
        flow.client,
        flow.choice as usize,
        flow.udp_stream,
        delta,
    );
    if flow.step > 0 && state.rng.random_bool(0.15) {
        row.num(Column::DnsRetransmission, 1u8);
        row.num(Column::DnsRetransmitRequest, 1u8);
        let back = state
            .rng
            .random_range(1..=40)
            .min(state.frame.saturating_sub(1))
            .max(1);
        row.num(Column::DnsRetransmitRequestIn, state.frame - back);
    }
}

/// The real file's MITM rows whose mDNS fields slid into the wrong columns.
pub(crate) fn shifted_mdns(row: &mut Row, flow: &mut Flow, state: &mut GenState) {
    row.set(
        Column::FrameTime,
        Field::Str(if state.rng.random_bool(0.5) {
            "0.0"
        } else {
            "6.0"
        }),
    );
    row.set(Column::IpSrcHost, Field::Ip(flow.client));
    row.set(Column::IpDstHost, Field::Str("0.0"));
    row.set(Column::TcpSrcport, Field::Str("_ipps._tcp.local"));
    row.set(Column::UdpPort, Field::Str("_ipp._tcp.local"));
    row.set(Column::TcpLen, Field::Str("5353.0"));
    row.set(Column::TcpOptions, Field::Str("5353.0"));
    row.set(Column::UdpStream, Field::Str("16.0"));
}
