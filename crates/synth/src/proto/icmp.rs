//! ICMP echo: normal pings and the DDoS ICMP flood.

use rand::Rng;

use crate::row::{Column, Row};
use crate::traffic::{Flow, GenState, Kind};

/// Echo requests (and for pings, replies). `icmp.seq_le` is the sequence number
/// read little-endian, as tshark's field is.
pub(crate) fn echo(row: &mut Row, flow: &mut Flow, state: &mut GenState) {
    let reply = match flow.kind {
        Kind::Ping => flow.step % 2 == 1,
        _ => state.rng.random_bool(0.08),
    };
    if reply {
        row.hosts(flow.server, flow.client);
    } else {
        row.hosts(flow.client, flow.server);
        flow.counter = flow.counter.wrapping_add(1) & 0xffff;
    }
    let checksum = state.rng.random_range(1..=u16::MAX);
    row.word(Column::IcmpChecksum, checksum);
    row.num(Column::IcmpSeqLe, (flow.counter as u16).swap_bytes());
}
