//! Edge-IIoTset's packet-field columns, filled to tshark's rules (`tshark -n -T fields
//! -E occurrence=f`, TShark 4.0; `shared/docs/research/capture.md` section 2).
//!
//! This first part fills the columns a packet's own headers decide: the frame's time, the
//! outer IPv4 addresses, ARP, the outer ICMP checksum, the TCP header fields tshark prints
//! without conversation state, and UDP's first port. The stateful columns (relative TCP
//! sequence numbers, conversation indices, time deltas, DNS retransmissions) and the
//! reassembled application layers come next.

use chrono::DateTime;
use etherparse::{LaxNetSlice, TransportSlice};

use crate::decode::Decoded;
use crate::reader::Packet;

/// The columns [`stateless`] fills, in the order it returns them.
pub const STATELESS: [&str; 20] = [
    "frame.time",
    "ip.src_host",
    "ip.dst_host",
    "arp.dst.proto_ipv4",
    "arp.opcode",
    "arp.hw.size",
    "arp.src.proto_ipv4",
    "icmp.checksum",
    "tcp.ack_raw",
    "tcp.checksum",
    "tcp.connection.fin",
    "tcp.connection.rst",
    "tcp.connection.syn",
    "tcp.connection.synack",
    "tcp.dstport",
    "tcp.flags",
    "tcp.flags.ack",
    "tcp.len",
    "tcp.srcport",
    "udp.port",
];

/// `frame.time` as tshark prints it in UTC: `Jul 10, 2010 21:43:30.035265000 UTC` (the
/// day padded with a space, always nine fraction digits).
pub fn frame_time(seconds: i64, nanos: u32) -> String {
    match DateTime::from_timestamp(seconds, nanos) {
        Some(t) => format!("{} UTC", t.format("%b %e, %Y %H:%M:%S.%f")),
        None => String::new(),
    }
}

fn dotted(a: &[u8]) -> String {
    format!("{}.{}.{}.{}", a[0], a[1], a[2], a[3])
}

/// The [`STATELESS`] columns of a packet, empty where tshark prints nothing.
pub fn stateless(packet: &Packet<'_>, d: &Decoded<'_>) -> [String; STATELESS.len()] {
    let mut out: [String; STATELESS.len()] = Default::default();
    out[0] = frame_time(packet.seconds, packet.nanos);
    let Some(s) = &d.sliced else {
        return out;
    };
    // Bytes of the IPv4 header, and the IP payload length it declares (for tcp.len).
    let mut ip_payload: Option<usize> = None;
    match &s.net {
        Some(LaxNetSlice::Ipv4(ip)) => {
            let h = ip.header();
            out[1] = dotted(&h.source());
            out[2] = dotted(&h.destination());
            ip_payload = (usize::from(h.total_len())).checked_sub(usize::from(h.ihl()) * 4);
        }
        Some(LaxNetSlice::Ipv6(ip)) => {
            let ext: usize = ip.extensions().slice().len();
            ip_payload = usize::from(ip.header().payload_length()).checked_sub(ext);
        }
        Some(LaxNetSlice::Arp(arp)) => {
            let b = arp.slice();
            let (hw, proto) = (usize::from(b[4]), usize::from(b[5]));
            out[4] = u16::from_be_bytes([b[6], b[7]]).to_string();
            out[5] = hw.to_string();
            if proto == 4 {
                let sender = 8 + hw;
                let target = sender + proto + hw;
                if let Some(a) = b.get(sender..sender + 4) {
                    out[6] = dotted(a);
                }
                if let Some(a) = b.get(target..target + 4) {
                    out[3] = dotted(a);
                }
            }
        }
        None => {}
    }
    match &s.transport {
        Some(TransportSlice::Icmpv4(i)) => out[7] = format!("0x{:04x}", i.checksum()),
        Some(TransportSlice::Tcp(t)) => {
            let b = t.slice();
            let flags = u16::from_be_bytes([b[12], b[13]]) & 0x0fff;
            let (syn, ack, fin, rst) = (
                flags & 0x02 != 0,
                flags & 0x10 != 0,
                flags & 0x01 != 0,
                flags & 0x04 != 0,
            );
            let one = |on: bool| if on { "1".to_string() } else { String::new() };
            out[8] = t.acknowledgment_number().to_string();
            out[9] = format!("0x{:04x}", t.checksum());
            out[10] = one(fin);
            out[11] = one(rst);
            out[12] = one(syn && !ack);
            out[13] = one(syn && ack);
            out[14] = t.destination_port().to_string();
            out[15] = format!("0x{flags:04x}");
            out[16] = u8::from(ack).to_string();
            // The length the IP header declares, not what was captured.
            if let Some(n) =
                ip_payload.and_then(|n| n.checked_sub(usize::from(t.data_offset()) * 4))
            {
                out[17] = n.to_string();
            }
            out[18] = t.source_port().to_string();
        }
        Some(TransportSlice::Udp(u)) => out[19] = u.source_port().to_string(),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_time_pads_the_day_and_prints_nine_digits() {
        assert_eq!(
            frame_time(1_278_798_210, 35_265_000),
            "Jul 10, 2010 21:43:30.035265000 UTC"
        );
        assert_eq!(
            frame_time(1_491_423_344, 641_377_000),
            "Apr  5, 2017 20:15:44.641377000 UTC"
        );
        assert_eq!(frame_time(0, 0), "Jan  1, 1970 00:00:00.000000000 UTC");
    }
}
