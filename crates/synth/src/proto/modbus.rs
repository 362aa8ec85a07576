//! Modbus/TCP: a device polling a PLC's holding registers.

use rand::Rng;

use super::tcp::{self, ACK, PSH};
use crate::row::{Column, Row};
use crate::traffic::{Flow, GenState};

/// Read request, response with 1-10 registers, ACK; the transaction id counts up.
pub(crate) fn poll(row: &mut Row, flow: &mut Flow, state: &mut GenState, index: u32) {
    match index % 3 {
        0 => {
            flow.counter = flow.counter.wrapping_add(1) & 0xffff;
            tcp::segment(row, flow, state, true, PSH | ACK, 12);
            fields(row, flow, 6);
        }
        1 => {
            let registers = state.rng.random_range(1..=10);
            tcp::segment(row, flow, state, false, PSH | ACK, 9 + 2 * registers);
            fields(row, flow, 3 + 2 * registers);
        }
        _ => tcp::segment(row, flow, state, true, ACK, 0),
    }
}

/// The MBAP header: length, transaction id, unit id (the flow's choice).
fn fields(row: &mut Row, flow: &Flow, len: u32) {
    row.num(Column::MbtcpLen, len);
    row.num(Column::MbtcpTransId, flow.counter);
    row.num(Column::MbtcpUnitId, flow.choice);
}
