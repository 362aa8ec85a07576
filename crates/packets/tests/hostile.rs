//! Hostile input: arbitrary bytes as frames of every link type, and as capture files,
//! never panic. Decoding and every field extractor see each frame; the reader either
//! reads packets or returns an error. Bounded case counts, so CI runs them every time.

use iotids_packets::fields::{Conversations, dns, stateless};
use iotids_packets::{CaptureReader, LinkType, Packet, ReadError, decode};
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
