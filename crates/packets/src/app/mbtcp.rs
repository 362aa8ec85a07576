//! Modbus/TCP (tshark's `packet-mbtcp.c`, TCP port 502): the MBAP header of every ADU.
//!
//! The dissector takes a buffer only when it looks like Modbus/TCP at its start (8 bytes,
//! protocol identifier 0, length at least 2); otherwise the bytes go on to other
//! dissectors. The ADUs after the first in the same buffer are read by their length
//! alone.

use super::{Col, Dispatch, Tvb, dissect_pdus};
use crate::reassembly::Desegment;

/// The ADUs in `tvb`, or `None` when it does not look like Modbus/TCP.
pub(super) fn dissect(
    d: &mut Dispatch<'_>,
    tvb: Tvb<'_>,
    can_desegment: bool,
) -> Option<Desegment> {
    let head = tvb.bytes(0, 8).ok()?;
    let protocol = u16::from_be_bytes([head[2], head[3]]);
    let len = u16::from_be_bytes([head[4], head[5]]);
    if protocol != 0 || len < 2 {
        return None;
    }
    let pdu_len = |t: Tvb<'_>| t.u16(4).map(|l| u64::from(l) + 6);
    Some(dissect_pdus(tvb, can_desegment, 6, pdu_len, |adu| {
        // The header's 8 bytes are read before any field is added.
        match adu.bytes(0, 8) {
            Ok(h) => {
                let f = &mut *d.fields;
                f.set(Col::MbtcpTransId, || {
                    u16::from_be_bytes([h[0], h[1]]).to_string()
                });
                f.set(Col::MbtcpLen, || {
                    u16::from_be_bytes([h[4], h[5]]).to_string()
                });
                f.set(Col::MbtcpUnitId, || h[6].to_string());
            }
            Err(_) => d.malformed.push("mbtcp"),
        }
    }))
}
