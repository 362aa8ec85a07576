//! nmap: SYN port scans and OS fingerprinting probes (TCP with odd flags and
//! options, ICMP echo and timestamp requests).

use rand::Rng;

use super::tcp::{self, ACK, CWR, ECE, FIN, PSH, RST, SYN, URG};
use crate::network::pick;
use crate::row::{Column, Row};
use crate::traffic::{Flow, GenState};

/// The ports a scan tries first.
const SCAN_PORTS: [u16; 30] = [
    21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 443, 445, 993, 995, 1723, 3306, 3389, 5900,
    8080, 1883, 502, 8883, 5683, 161, 554, 8000, 8443, 9100, 49152,
];

/// TCP options (hex, as tshark prints them) of nmap's OS-detection probes.
const OS_PROBE_OPTIONS: [&str; 6] = [
    "03030a0102040578080affffffff000000000402",
    "020405780303000402080affffffff0000000000",
    "080affffffff0000000001010303050102040280",
    "0402080affffffff000000000303",
    "020402180402080affffffff0000000003030a00",
    "0303000102040109080affffffff",
];

/// SYN scan: SYN to a new port, then RST/ACK (closed) or SYN/ACK (open).
pub(crate) fn port_scan(row: &mut Row, flow: &mut Flow, state: &mut GenState) {
    if flow.step.is_multiple_of(2) {
        // The well-known ports first (from a per-flow offset), then random ones.
        let position = flow.counter as usize % SCAN_PORTS.len() + flow.step as usize / 2;
        flow.server_port = match SCAN_PORTS.get(position) {
            Some(&port) => port,
            None => state.rng.random_range(1..=65535),
        };
        (flow.client_seq, flow.server_seq) = (0, 0);
        tcp::segment(row, flow, state, true, SYN, 0);
        row.options("020405b4");
    } else if state.rng.random_bool(0.85) {
        tcp::segment(row, flow, state, false, RST | ACK, 0);
    } else {
        tcp::segment(row, flow, state, false, SYN | ACK, 0);
        row.options("020405b4");
    }
}

/// OS detection: SYNs with odd options, ECN, NULL, FIN/PSH/URG and ACK probes,
/// the target's answers, and ICMP echo / timestamp probes.
pub(crate) fn os_probe(row: &mut Row, flow: &mut Flow, state: &mut GenState) {
    const WEIGHTS: [u32; 9] = [3, 2, 1, 1, 1, 2, 1, 1, 1];
    let mut draw = state.rng.random_range(0..WEIGHTS.iter().sum::<u32>());
    let mut probe = 0;
    while draw >= WEIGHTS[probe] {
        draw -= WEIGHTS[probe];
        probe += 1;
    }
    let odd_options = pick(&mut state.rng, &OS_PROBE_OPTIONS);
    match probe {
        0 | 1 => {
            flow.client_seq = 0;
            let flags = if probe == 0 { SYN } else { SYN | ECE | CWR };
            tcp::segment(row, flow, state, true, flags, 0);
            row.options(odd_options);
            let raw = state.rng.random::<u32>();
            row.num(Column::TcpAckRaw, raw);
        }
        2 => tcp::segment(row, flow, state, true, 0, 0),
        3 => {
            tcp::segment(row, flow, state, true, FIN | PSH | URG, 0);
            row.options(odd_options);
        }
        4 => tcp::segment(row, flow, state, true, ACK, 0),
        5 => tcp::segment(row, flow, state, false, RST, 0),
        6 => tcp::segment(row, flow, state, false, SYN | ACK, 0),
        7 => {
            row.hosts(flow.client, flow.server);
            let checksum = state.rng.random_range(1..=u16::MAX);
            row.word(Column::IcmpChecksum, checksum);
            row.num(Column::IcmpSeqLe, 295u16.swap_bytes());
        }
        _ => {
            row.hosts(flow.client, flow.server);
            let checksum = state.rng.random_range(1..=u16::MAX);
            row.word(Column::IcmpChecksum, checksum);
            let ms = state.rng.random_range(1..86_400_000u32);
            row.num(Column::IcmpTransmitTimestamp, ms);
        }
    }
}
