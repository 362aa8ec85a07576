//! ARP: the spoofing half of the MITM class.

use rand::Rng;

use crate::row::{Column, Field, Row};
use crate::traffic::{Flow, GenState};

/// Replies (mostly) and requests claiming the flow's client address (the gateway's
/// or the broker's) towards its server, the victim.
pub(crate) fn spoof(row: &mut Row, flow: &mut Flow, state: &mut GenState) {
    row.num(
        Column::ArpOpcode,
        if state.rng.random_bool(0.75) { 2u8 } else { 1 },
    );
    row.num(Column::ArpHwSize, 6u8);
    row.set(Column::ArpSrcProtoIpv4, Field::Ip(flow.client));
    row.set(Column::ArpDstProtoIpv4, Field::Ip(flow.server));
}
