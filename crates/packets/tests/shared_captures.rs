//! Every capture in `../shared/data/pcaps` read and decoded: packet count, link type and
//! per-protocol counts equal to what tshark counted (the folder's README table, made with
//! `tshark-fields.sh`), and no packet left undecoded.
#![cfg(feature = "shared-data")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use iotids_packets::{CaptureReader, LinkType, ReadError, Transport, decode};

fn pcaps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/pcaps")
}

/// One row of the README table: file, packets, link type, tshark's counts.
struct Expected {
    file: String,
    packets: u64,
    link: String,
    counts: BTreeMap<String, u64>,
}

fn table() -> Vec<Expected> {
    let readme = std::fs::read_to_string(pcaps().join("README.md")).expect("pcaps/README.md");
    readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').map(str::trim).collect::<Vec<&str>>())
        // The captures' table (the sources' table above it has fewer columns).
        .filter(|cells| cells.len() == 11)
        .map(|cells| {
            // | file | source | bytes | packets | link type | duration | first | counts | content |
            let counts = cells[8]
                .split_whitespace()
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.parse().unwrap())
                })
                .collect();
            Expected {
                file: cells[1].trim_matches('`').to_string(),
                packets: cells[4].replace(',', "").parse().unwrap(),
                link: cells[5].to_string(),
                counts,
            }
        })
        .collect()
}

#[test]
fn every_shared_capture_decodes_like_tshark_counts_it() {
    let rows = table();
    assert_eq!(rows.len(), 34, "the README lists 34 captures");
    for row in rows {
        let path = pcaps().join(&row.file);
        let mut reader = CaptureReader::open(&path).unwrap();
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        let mut links = BTreeMap::new();
        let mut problems = Vec::new();
        let mut last = (i64::MIN, 0);
        reader
            .for_each(|p| {
                *links.entry(p.link).or_insert(0u64) += 1;
                assert!(
                    p.data.len() as u64 <= u64::from(p.original_len),
                    "{} packet {}",
                    row.file,
                    p.number
                );
                assert!(p.nanos < 1_000_000_000);
                last = last.max((p.seconds, p.nanos));
                let d = decode(p);
                if let Some((layer, why)) = &d.problem {
                    problems.push(format!(
                        "packet {} at the {} layer: {why}",
                        p.number,
                        layer.name()
                    ));
                }
                let mut bump = |k: &str| *counts.entry(k.to_string()).or_insert(0) += 1;
                if d.is_arp() {
                    bump("arp");
                }
                match d.transport() {
                    Some(Transport::Tcp { flags, .. }) => {
                        bump("tcp");
                        if flags == 0x0002 {
                            bump("syn");
                        }
                    }
                    Some(Transport::Udp { .. }) => bump("udp"),
                    Some(Transport::Icmpv4 { .. }) => bump("icmp"),
                    _ => {}
                }
                Ok::<_, ReadError>(())
            })
            .unwrap();
        assert_eq!(reader.packets(), row.packets, "{}", row.file);
        let want_link = match row.link.as_str() {
            "ether" => LinkType::Ethernet,
            "linux-sll" => LinkType::LinuxSll,
            other => panic!(
                "{}: link type {other} not in the table's vocabulary",
                row.file
            ),
        };
        assert_eq!(
            links.keys().copied().collect::<Vec<_>>(),
            [want_link],
            "{}",
            row.file
        );
        // The application-layer counts (dns, http, mqtt, modbus) are the field extractor's.
        let want: BTreeMap<String, u64> = row
            .counts
            .into_iter()
            .filter(|(k, _)| ["arp", "tcp", "syn", "udp", "icmp"].contains(&k.as_str()))
            .collect();
        assert_eq!(counts, want, "{}", row.file);
        assert!(problems.is_empty(), "{}: {problems:?}", row.file);
        assert!(
            last.0 > 1_000_000_000,
            "{}: timestamps after 2001",
            row.file
        );
    }
}

/// Real packets cut at every length and with bytes flipped: decoding and every field
/// extractor take them without panicking (the hostile-input tests, seeded from the
/// shared captures).
#[test]
fn real_packets_cut_and_flipped_never_panic() {
    use iotids_packets::Packet;
    use iotids_packets::fields::{Conversations, dns, stateless};
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut frames = 0u64;
    for row in table() {
        let mut reader = CaptureReader::open(&pcaps().join(&row.file)).unwrap();
        let mut c = Conversations::default();
        reader
            .for_each(|p| {
                if p.number > 40 {
                    return Ok(());
                }
                let mut bytes = p.data.to_vec();
                // At most about 48 cuts a packet: the flood capture has 65 kB frames.
                for cut in (0..=bytes.len()).step_by((bytes.len() / 48).max(1)) {
                    let q = Packet {
                        data: &bytes[..cut],
                        ..*p
                    };
                    let d = decode(&q);
                    let _ = (stateless(&q, &d), c.fill(&q, &d), dns(&d), c.dns(&q, &d));
                    frames += 1;
                }
                for _ in 0..8 {
                    if !bytes.is_empty() {
                        let at = (next() % bytes.len() as u64) as usize;
                        bytes[at] ^= next() as u8 | 1;
                    }
                    let q = Packet { data: &bytes, ..*p };
                    let d = decode(&q);
                    let _ = (stateless(&q, &d), c.fill(&q, &d), dns(&d), c.dns(&q, &d));
                    frames += 1;
                }
                Ok::<_, ReadError>(())
            })
            .unwrap();
    }
    assert!(frames > 10_000, "{frames} mutated frames");
}
