//! Hostile input: arbitrary bytes as frames of every link type, and as capture files,
//! never panic; arbitrary TCP segments keep the reassembler within its caps. Decoding and every field extractor see each frame; the reader either
//! reads packets or returns an error. Bounded case counts, so CI runs them every time.

use iotids_packets::app::{Tvb, dissect_pdus};
use iotids_packets::fields::{Conversations, dns, stateless};
use iotids_packets::reassembly::{Desegment, Dissect, Limits, Reassembler, Segment};
use iotids_packets::{CaptureReader, Extractor, LinkType, Packet, ReadError, decode};
use proptest::prelude::*;

const LINKS: [LinkType; 7] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::Null,
    LinkType::Loop,
    LinkType::Raw,
    LinkType::Other(147),
];

/// Every extractor on one frame; returns how many columns came out non-empty.
fn extract_all(c: &mut Conversations, p: &Packet<'_>) -> usize {
    let d = decode(p);
    let mut filled = 0;
    for v in stateless(p, &d)
        .iter()
        .chain(c.fill(p, &d).iter())
        .chain(dns(&d).iter())
        .chain(c.dns(p, &d).iter())
    {
        filled += usize::from(!v.is_empty());
    }
    filled
}

/// An IPv4 header announcing `proto`, followed by `rest`: arbitrary transport bytes
/// behind a plausible network header, so the transport parsers see them.
fn ipv4(proto: u8, rest: &[u8]) -> Vec<u8> {
    let len = (20 + rest.len()).min(usize::from(u16::MAX)) as u16;
    let mut f = vec![
        0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    f[2..4].copy_from_slice(&len.to_be_bytes());
    f.extend(rest);
    f
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_frames_decode_without_panicking(
        link in 0..LINKS.len(),
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        seconds in any::<i64>(),
        nanos in 0u32..1_000_000_000,
    ) {
        let mut c = Conversations::default();
        let p = Packet { number: 1, seconds, nanos, link: LINKS[link], data: &bytes, original_len: bytes.len() as u32 };
        // frame.time is always there (or empty for a time chrono cannot show).
        let filled = extract_all(&mut c, &p);
        prop_assert!(filled <= 40);
    }

    #[test]
    fn arbitrary_transport_bytes_behind_ipv4(
        proto in prop_oneof![Just(1u8), Just(6u8), Just(17u8), any::<u8>()],
        rest in proptest::collection::vec(any::<u8>(), 0..300),
        cut in 0usize..400,
    ) {
        let frame = ipv4(proto, &rest);
        let frame = &frame[..cut.min(frame.len())];
        let mut c = Conversations::default();
        for number in 1..=3 {
            let p = Packet { number, seconds: 1, nanos: 0, link: LinkType::Raw, data: frame, original_len: 2000 };
            extract_all(&mut c, &p);
        }
    }

    #[test]
    fn arbitrary_capture_files_read_or_fail_cleanly(
        magic in prop_oneof![
            Just(vec![0xd4u8, 0xc3, 0xb2, 0xa1]),
            Just(vec![0x4d, 0x3c, 0xb2, 0xa1]),
            Just(vec![0x0a, 0x0d, 0x0d, 0x0a]),
        ],
        body in proptest::collection::vec(any::<u8>(), 0..2000),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pcap");
        std::fs::write(&path, [magic, body].concat()).unwrap();
        if let Ok(mut r) = CaptureReader::open(&path) {
            let mut c = Conversations::default();
            let mut numbers = Vec::new();
            let result = r.for_each(|p| {
                numbers.push(p.number);
                extract_all(&mut c, p);
                Ok::<_, ReadError>(())
            });
            // Packets are numbered 1, 2, 3... in file order, whatever comes after them.
            prop_assert!(numbers.iter().copied().eq(1..=numbers.len() as u64));
            if let Err(e) = result {
                // A read error names the file.
                prop_assert!(e.to_string().contains("x.pcap"), "{e}");
            }
        }
    }
}

/// A dissector of `[n, n bytes...]` PDUs for the reassembler properties: counts what
/// it reads.
struct Counting(usize);

impl Dissect<()> for Counting {
    fn dissect(&mut self, _: &mut (), data: &[u8], reported: usize, can: bool) -> Desegment {
        let len = |t: Tvb<'_>| t.u8(0).map(|n| u64::from(n) + 1);
        dissect_pdus(Tvb { data, reported }, can, 1, len, |t| {
            self.0 += t.data.len()
        })
    }
}

/// A TCP segment from 10.0.0.`a`:`sport` to 10.0.0.`b`:`dport`, raw IPv4.
fn tcp_frame(a: u8, sport: u16, b: u8, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend(sport.to_be_bytes());
    t.extend(dport.to_be_bytes());
    t.extend(seq.to_be_bytes());
    t.extend(7u32.to_be_bytes());
    t.extend([0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend(payload);
    let mut f = ipv4(6, &t);
    f[15] = a;
    f[19] = b;
    f
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// Arbitrary segments (few conversations, sequence numbers near each other so they
    /// overlap, repeat and leave gaps; arbitrary flags) never panic, and the reassembler
    /// stays within its caps: flows, bytes held in all.
    #[test]
    fn reassembly_of_arbitrary_segments_stays_bounded(
        out_of_order in any::<bool>(),
        segs in proptest::collection::vec(
            (0u8..8, 0usize..2, prop_oneof![0u32..300, any::<u32>()], any::<u16>(),
             proptest::collection::vec(any::<u8>(), 0..48), 0usize..4),
            0..80,
        ),
    ) {
        let limits = Limits { flows: 4, pdu_bytes: 64, total_bytes: 160, out_of_order, out_of_order_bytes: 40 };
        let mut r: Reassembler<u8, ()> = Reassembler::new(limits);
        let mut d = Counting(0);
        let mut fed = 0usize;
        for (n, (key, dir, seq, flags, payload, cut)) in segs.iter().enumerate() {
            // Some frames cut by the snap length.
            let captured = &payload[..payload.len().saturating_sub(*cut)];
            let seg = Segment { number: n as u64 + 1, seq: *seq, ack: seq.wrapping_add(5), flags: flags & 0xfff, payload: captured, reported: payload.len() };
            r.segment(key, *dir, seg, &mut d);
            fed += payload.len();
            prop_assert!(r.flows() <= 4);
            prop_assert!(r.buffered() <= 160, "{} bytes held", r.buffered());
        }
        // Whatever was dissected came from the bytes fed, at most once each, except
        // for PDUs re-read whole after asking for more (bounded by the PDU cap).
        prop_assert!(d.0 <= fed * 2 + 64 * segs.len());
    }

    /// The Extractor on arbitrary TCP payloads to and from the ports it decodes (MQTT,
    /// Modbus, HTTP, DNS, another): no panic, 61 values a row, none with a raw tab or line
    /// break (the CSV stays one line a packet).
    #[test]
    fn extractor_rows_of_arbitrary_tcp_payloads(
        segs in proptest::collection::vec(
            (prop_oneof![Just(1883u16), Just(502), Just(80), Just(53), Just(7777)], any::<bool>(),
             0u32..400, prop_oneof![Just(0x18u8), Just(0x10), Just(0x02), Just(0x12), Just(0x11), Just(0x04), any::<u8>()],
             (prop_oneof![
                 Just(&b""[..]),
                 Just(&b"GET /a?b HTTP/1.1\r\nHost: h\r\nContent-Length: 30\r\n\r\n"[..]),
                 Just(&b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n"[..]),
                 Just(&b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n\x1f\x8b"[..]),
                 Just(&b"\r\nHost: x\r\n"[..]),
                 Just(&b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"[..]),
                 Just(&b"\x30\x7f\x00\x03a/b"[..]),
                 Just(&b"\x00\x01\x00\x00\x00\x06\x01\x03"[..]),
                 Just(&b"\x00\x1d\x12\x34\x01\x00\x00\x01"[..]),
             ], proptest::collection::vec(any::<u8>(), 0..120))
                 .prop_map(|(head, tail)| [head, &tail[..]].concat()),
             prop_oneof![Just(0usize), 0usize..60]),
            1..40,
        ),
    ) {
        let mut x = Extractor::default();
        for (n, (port, reply, seq, flags, payload, cut)) in segs.iter().enumerate() {
            let frame = if *reply {
                tcp_frame(2, *port, 1, 40000, 9000 + seq, *flags, payload)
            } else {
                tcp_frame(1, 40000, 2, *port, 1000 + seq, *flags, payload)
            };
            // Some frames cut by a snap length (the IP header still gives the whole length).
            let frame = &frame[..frame.len() - cut.min(&payload.len())];
            let p = Packet { number: n as u64 + 1, seconds: 1, nanos: 0, link: LinkType::Raw, data: frame, original_len: 2000 };
            let row = x.packet(&p);
            prop_assert_eq!(row.len(), 61);
            for v in &row {
                prop_assert!(!v.contains(['\n', '\r', '\t']), "{v:?}");
            }
        }
    }
}
