//! TCP: one segment's columns, the framing of a session (handshake and FIN
//! exchange around a body the caller supplies), SYN floods, and the two sessions
//! whose payload is opaque (a backdoor shell, ransomware transfers).

use rand::Rng;

use crate::row::{Column, Field, Row, push_hex_digits};
use crate::traffic::{Flow, GenState};

pub(crate) const FIN: u16 = 0x001;
pub(crate) const SYN: u16 = 0x002;
pub(crate) const RST: u16 = 0x004;
pub(crate) const PSH: u16 = 0x008;
pub(crate) const ACK: u16 = 0x010;
pub(crate) const URG: u16 = 0x020;
pub(crate) const ECE: u16 = 0x040;
pub(crate) const CWR: u16 = 0x080;

/// Fills the TCP fields of one segment of `len` payload bytes and advances the
/// sender's sequence number.
pub(crate) fn segment(
    row: &mut Row,
    flow: &mut Flow,
    state: &mut GenState,
    from_client: bool,
    flags: u16,
    len: u32,
) {
    let (src, dst, src_port, dst_port, seq, ack, other_initial_seq) = if from_client {
        (
            flow.client,
            flow.server,
            flow.client_port,
            flow.server_port,
            flow.client_seq,
            flow.server_seq,
            flow.server_initial_seq,
        )
    } else {
        (
            flow.server,
            flow.client,
            flow.server_port,
            flow.client_port,
            flow.server_seq,
            flow.client_seq,
            flow.client_initial_seq,
        )
    };
    row.hosts(src, dst);
    row.num(Column::TcpSrcport, src_port);
    row.num(Column::TcpDstport, dst_port);
    row.num(Column::TcpSeq, seq);
    if flags & ACK != 0 {
        row.num(Column::TcpAck, ack);
        row.num(Column::TcpAckRaw, other_initial_seq.wrapping_add(ack));
        row.num(Column::TcpFlagsAck, 1u8);
    }
    row.word(Column::TcpFlags, flags);
    let checksum = state.rng.random_range(1..=u16::MAX);
    row.word(Column::TcpChecksum, checksum);
    row.num(Column::TcpLen, len);
    let syn = flags & SYN != 0;
    if syn && flags & ACK == 0 {
        row.num(Column::TcpConnectionSyn, 1u8);
    }
    if syn && flags & ACK != 0 {
        row.num(Column::TcpConnectionSynack, 1u8);
    }
    if flags & FIN != 0 {
        row.num(Column::TcpConnectionFin, 1u8);
    }
    if flags & RST != 0 {
        row.num(Column::TcpConnectionRst, 1u8);
    }
    let advance = len + u32::from(syn) + u32::from(flags & FIN != 0);
    if from_client {
        flow.client_seq = flow.client_seq.wrapping_add(advance);
    } else {
        flow.server_seq = flow.server_seq.wrapping_add(advance);
    }
    if len > 0 {
        let seed = state.rng.random();
        row.payload(len, seed);
    }
}

/// Handshake, body, FIN exchange. `body` builds body packet `index` (0-based); a
/// body packet that sets no TCP options of its own gets the timestamps option.
pub(crate) fn session(
    row: &mut Row,
    flow: &mut Flow,
    state: &mut GenState,
    body: impl FnOnce(&mut Row, &mut Flow, &mut GenState, u32),
) {
    let (step, len) = (flow.step, flow.len);
    let (client_ts, server_ts) = flow.timestamps();
    if step == 0 {
        segment(row, flow, state, true, SYN, 0);
        row.text(Column::TcpOptions, |out| {
            out.extend_from_slice(b"020405b40402080a");
            push_hex_digits(out, client_ts, 8);
            out.extend_from_slice(b"0000000001030307");
        });
    } else if step == 1 {
        segment(row, flow, state, false, SYN | ACK, 0);
        row.text(Column::TcpOptions, |out| {
            out.extend_from_slice(b"020405b40402080a");
            push_hex_digits(out, server_ts, 8);
            push_hex_digits(out, client_ts, 8);
            out.extend_from_slice(b"01030307");
        });
    } else if step == 2 {
        segment(row, flow, state, true, ACK, 0);
        row.options_ts(client_ts, server_ts);
    } else if step + 2 == len {
        segment(row, flow, state, true, FIN | ACK, 0);
        row.options_ts(client_ts, server_ts);
    } else if step + 1 == len {
        segment(row, flow, state, false, FIN | ACK, 0);
        row.options_ts(server_ts, client_ts);
    } else {
        body(row, flow, state, step - 3);
        if !matches!(row.get(Column::TcpOptions), Field::Scratch(..)) {
            row.options_ts(client_ts, server_ts);
        }
    }
}

/// SYN flood from one bot port: SYNs (sequence number reset each time, raw ACK
/// field random as hping3 leaves it), some SYN/ACKs back, some RSTs.
pub(crate) fn syn_flood(row: &mut Row, flow: &mut Flow, state: &mut GenState) {
    let draw = state.rng.random_range(0..100);
    if draw < 25 {
        flow.server_seq = 0;
        segment(row, flow, state, false, SYN | ACK, 0);
    } else if draw < 33 {
        segment(row, flow, state, true, RST, 0);
    } else {
        flow.client_seq = 0;
        let payload_len = flow.choice;
        segment(row, flow, state, true, SYN, payload_len);
        if state.rng.random_bool(0.7) {
            let raw = state.rng.random::<u32>();
            row.num(Column::TcpAckRaw, raw);
        }
    }
}

/// A bind shell: short commands in, output of any size back.
pub(crate) fn backdoor(row: &mut Row, flow: &mut Flow, state: &mut GenState, index: u32) {
    match index % 3 {
        0 => {
            let len = state.rng.random_range(1..=120);
            segment(row, flow, state, true, PSH | ACK, len);
        }
        1 => {
            let len = state.rng.random_range(20..=1200);
            segment(row, flow, state, false, PSH | ACK, len);
        }
        _ => segment(row, flow, state, true, ACK, 0),
    }
}

/// Payload delivery and exfiltration: big segments both ways.
pub(crate) fn ransomware(row: &mut Row, flow: &mut Flow, state: &mut GenState, index: u32) {
    match index % 4 {
        0 => {
            let len = state.rng.random_range(700..=1448);
            segment(row, flow, state, true, PSH | ACK, len);
        }
        1 => segment(row, flow, state, false, ACK, 0),
        2 => {
            let len = state.rng.random_range(200..=1448);
            segment(row, flow, state, false, PSH | ACK, len);
        }
        _ => segment(row, flow, state, true, ACK, 0),
    }
}
