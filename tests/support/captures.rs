//! Labelled packet captures these tests generate themselves (no shared data needed): a
//! directory whose subfolders are classes, as `../shared/data/pcaps/mqttset-reduced` is.
//!
//! - `benign/` (163 packets): MQTT sensors (CONNECT, CONNACK, PUBLISH with QoS 1 and PUBACK, PINGREQ),
//!   a DNS query, an ARP request and an ICMP echo request.
//! - `bruteforce/` (192): one client trying MQTT passwords, a new connection per attempt, each
//!   refused (CONNACK 0x05) and closed.
//! - `scan/` (184): a SYN scan of the broker's ports, closed ports answering RST and 1883 SYN-ACK;
//!   its last frame is cut by the snap length inside the TCP header (counted, not fatal).
//!
//! Bytes are fixed (a seeded generator, fixed timestamps), so tshark's CSV of them is
//! pinned in `tests/golden/expected/extract-fixture.csv` (made with
//! `../shared/data/tshark-fields.sh` on each file, one header kept; the shared-data test
//! `extract_fixture_golden_is_tsharks` checks it is still what tshark writes).

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use etherparse::PacketBuilder;

const BROKER: [u8; 4] = [10, 0, 0, 1];
const BROKER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];

/// A capture being written: frames with their timestamps (microseconds since the epoch).
struct Capture {
    frames: Vec<(u64, Vec<u8>, u32)>,
    now: u64,
}

impl Capture {
    fn new(start_us: u64) -> Capture {
        Capture {
            frames: Vec::new(),
            now: start_us,
        }
    }

    fn push(&mut self, gap_us: u64, frame: Vec<u8>) {
        self.now += gap_us;
        let len = frame.len() as u32;
        self.frames.push((self.now, frame, len));
    }

    /// Legacy pcap, microseconds, little-endian, Ethernet; `snap` cuts frames.
    fn bytes(&self, snap: usize) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend(0xa1b2_c3d4u32.to_le_bytes());
        out.extend(2u16.to_le_bytes());
        out.extend(4u16.to_le_bytes());
        out.extend([0; 8]);
        out.extend(65535u32.to_le_bytes());
        out.extend(1u32.to_le_bytes());
        for (t, data, orig) in &self.frames {
            let cut = &data[..data.len().min(snap)];
            out.extend(((t / 1_000_000) as u32).to_le_bytes());
            out.extend(((t % 1_000_000) as u32).to_le_bytes());
            out.extend((cut.len() as u32).to_le_bytes());
            out.extend(orig.to_le_bytes());
            out.extend(cut);
        }
        out
    }
}

/// A small linear congruential generator: the same numbers everywhere.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn mac(ip: [u8; 4]) -> [u8; 6] {
    [2, 0, ip[0], ip[1], ip[2], ip[3]]
}

/// One TCP connection between a client and the broker.
struct Tcp {
    client: [u8; 4],
    port: u16,
    server: [u8; 4],
    server_port: u16,
    cseq: u32,
    sseq: u32,
}

#[derive(Clone, Copy)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    PshAck,
    FinAck,
    RstAck,
}

impl Tcp {
    fn frame(&self, from_client: bool, flags: Flags, payload: &[u8]) -> Vec<u8> {
        let (src, sport, dst, dport, seq, ack) = if from_client {
            (
                self.client,
                self.port,
                self.server,
                self.server_port,
                self.cseq,
                self.sseq,
            )
        } else {
            (
                self.server,
                self.server_port,
                self.client,
                self.port,
                self.sseq,
                self.cseq,
            )
        };
        let b = PacketBuilder::ethernet2(mac(src), mac(dst))
            .ipv4(src, dst, 64)
            .tcp(sport, dport, seq, 64240);
        let b = match flags {
            Flags::Syn => b.syn(),
            Flags::SynAck => b.syn().ack(ack),
            Flags::Ack => b.ack(ack),
            Flags::PshAck => b.psh().ack(ack),
            Flags::FinAck => b.fin().ack(ack),
            Flags::RstAck => b.rst().ack(ack),
        };
        let mut out = Vec::with_capacity(b.size(payload.len()));
        b.write(&mut out, payload).expect("a frame");
        out
    }

    fn send(
        &mut self,
        cap: &mut Capture,
        gap: u64,
        from_client: bool,
        flags: Flags,
        payload: &[u8],
    ) {
        let f = self.frame(from_client, flags, payload);
        cap.push(gap, f);
        let advance = payload.len() as u32
            + u32::from(matches!(flags, Flags::Syn | Flags::SynAck | Flags::FinAck));
        if from_client {
            self.cseq = self.cseq.wrapping_add(advance);
        } else {
            self.sseq = self.sseq.wrapping_add(advance);
        }
    }

    fn open(&mut self, cap: &mut Capture, rng: &mut Lcg) {
        self.send(cap, 1000 + rng.below(5000), true, Flags::Syn, &[]);
        self.send(cap, 200 + rng.below(300), false, Flags::SynAck, &[]);
        self.send(cap, 100 + rng.below(200), true, Flags::Ack, &[]);
    }

    fn close(&mut self, cap: &mut Capture, rng: &mut Lcg) {
        self.send(cap, 500 + rng.below(500), true, Flags::FinAck, &[]);
        self.send(cap, 200 + rng.below(300), false, Flags::FinAck, &[]);
        self.send(cap, 100 + rng.below(200), true, Flags::Ack, &[]);
    }
}

fn mqtt_string(s: &[u8]) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend(s);
    v
}

/// An MQTT 3.1.1 CONNECT with a client id and, if given, a user name and password.
fn connect(client_id: &str, login: Option<(&str, &str)>) -> Vec<u8> {
    let mut body = mqtt_string(b"MQTT");
    body.push(4);
    body.push(if login.is_some() { 0xc2 } else { 0x02 });
    body.extend(60u16.to_be_bytes());
    body.extend(mqtt_string(client_id.as_bytes()));
    if let Some((user, password)) = login {
        body.extend(mqtt_string(user.as_bytes()));
        body.extend(mqtt_string(password.as_bytes()));
    }
    let mut m = vec![0x10, body.len() as u8];
    m.extend(body);
    m
}

fn publish_qos1(topic: &str, id: u16, message: &[u8]) -> Vec<u8> {
    let mut body = mqtt_string(topic.as_bytes());
    body.extend(id.to_be_bytes());
    body.extend(message);
    let mut m = vec![0x32, body.len() as u8];
    m.extend(body);
    m
}

fn benign(rng: &mut Lcg) -> Capture {
    let mut cap = Capture::new(1_600_000_000_000_000);
    // ARP for the broker, a DNS lookup of its name, a ping.
    let me = [192, 168, 1, 10];
    let arp = PacketBuilder::ethernet2(mac(me), [0xff; 6]).arp(
        etherparse::ArpPacket::new(
            etherparse::ArpHardwareId::ETHERNET,
            etherparse::EtherType::IPV4,
            etherparse::ArpOperation::REQUEST,
            &mac(me),
            &me,
            &[0; 6],
            &BROKER,
        )
        .expect("an ARP packet"),
    );
    let mut f = Vec::new();
    arp.write(&mut f).expect("an ARP frame");
    cap.push(0, f);
    let mut dns = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    dns.extend(b"\x06broker\x04home\x00\x00\x01\x00\x01");
    let b = PacketBuilder::ethernet2(mac(me), BROKER_MAC)
        .ipv4(me, [192, 168, 1, 1], 64)
        .udp(53_000, 53);
    let mut f = Vec::new();
    b.write(&mut f, &dns).expect("a DNS frame");
    cap.push(800, f);
    let b = PacketBuilder::ethernet2(mac(me), BROKER_MAC)
        .ipv4(me, BROKER, 64)
        .icmpv4_echo_request(7, 1);
    let mut f = Vec::new();
    b.write(&mut f, b"abcdefgh").expect("an ICMP frame");
    cap.push(900, f);
    for sensor in 0..4u8 {
        let mut c = Tcp {
            client: [192, 168, 1, 10 + sensor],
            port: 40_000 + u16::from(sensor) * 7,
            server: BROKER,
            server_port: 1883,
            cseq: 1000 * u32::from(sensor) + 17,
            sseq: 900_000 + u32::from(sensor),
        };
        c.open(&mut cap, rng);
        c.send(
            &mut cap,
            300,
            true,
            Flags::PshAck,
            &connect(&format!("sensor-{sensor}"), None),
        );
        c.send(&mut cap, 400, false, Flags::PshAck, &[0x20, 2, 0, 0]);
        for i in 0..14u16 {
            let reading = format!("{{\"t\":{}.{}}}", 18 + rng.below(8), rng.below(10));
            let topic = format!("home/room{sensor}/temperature");
            c.send(
                &mut cap,
                200_000 + rng.below(100_000),
                true,
                Flags::PshAck,
                &publish_qos1(&topic, i + 1, reading.as_bytes()),
            );
            let id = (i + 1).to_be_bytes();
            c.send(
                &mut cap,
                300 + rng.below(300),
                false,
                Flags::PshAck,
                &[0x40, 2, id[0], id[1]],
            );
            if i % 5 == 4 {
                c.send(&mut cap, 1000, true, Flags::PshAck, &[0xc0, 0]);
                c.send(&mut cap, 300, false, Flags::PshAck, &[0xd0, 0]);
            }
        }
        c.close(&mut cap, rng);
    }
    cap
}

fn bruteforce(rng: &mut Lcg) -> Capture {
    let mut cap = Capture::new(1_600_100_000_000_000);
    let words = [
        "admin", "123456", "password", "root", "mqtt", "qwerty", "letmein", "guest",
    ];
    for attempt in 0..24u32 {
        let mut c = Tcp {
            client: [192, 168, 1, 66],
            port: 50_000 + attempt as u16,
            server: BROKER,
            server_port: 1883,
            cseq: 77_000 + attempt * 13,
            sseq: 5_000_000 + attempt * 101,
        };
        c.open(&mut cap, rng);
        let pw = format!(
            "{}{}",
            words[rng.below(words.len() as u64) as usize],
            attempt
        );
        c.send(
            &mut cap,
            300,
            true,
            Flags::PshAck,
            &connect("bf", Some(("admin", &pw))),
        );
        c.send(&mut cap, 400, false, Flags::PshAck, &[0x20, 2, 0, 5]);
        c.send(&mut cap, 200, false, Flags::FinAck, &[]);
        c.send(&mut cap, 150, true, Flags::FinAck, &[]);
        c.send(&mut cap, 100, false, Flags::Ack, &[]);
    }
    cap
}

fn scan(rng: &mut Lcg) -> Capture {
    let mut cap = Capture::new(1_600_200_000_000_000);
    let mut ports: Vec<u16> = (1..=90).map(|i| i * 11).collect();
    ports.push(1883);
    for (i, port) in ports.iter().enumerate() {
        let mut c = Tcp {
            client: [192, 168, 1, 99],
            port: 61_000,
            server: BROKER,
            server_port: *port,
            cseq: 424_242 + i as u32,
            sseq: 10_000 * i as u32,
        };
        c.send(&mut cap, 100 + rng.below(400), true, Flags::Syn, &[]);
        if *port == 1883 {
            c.send(&mut cap, 150, false, Flags::SynAck, &[]);
            c.send(&mut cap, 100, true, Flags::RstAck, &[]);
        } else {
            c.send(&mut cap, 100 + rng.below(100), false, Flags::RstAck, &[]);
        }
    }
    // A last SYN cut by the snap length inside its TCP header.
    let c = Tcp {
        client: [192, 168, 1, 99],
        port: 61_000,
        server: BROKER,
        server_port: 8883,
        cseq: 1,
        sseq: 0,
    };
    let f = c.frame(true, Flags::Syn, &[]);
    cap.push(300, f);
    cap
}

/// The snap length that cuts the scan's last frame: Ethernet 14 + IPv4 20 + 1 byte of
/// TCP's 20 (tshark shows a TCP port from a header cut after the ports; iotids does not).
const CUT: usize = 35;

/// Writes the three classes under `dir` (`benign/benign.pcap`, `bruteforce/...`,
/// `scan/scan.pcap`) and returns the files in the order a directory of classes is read
/// (classes by name).
pub fn write_classes(dir: &Path) -> Vec<(String, PathBuf)> {
    let mut rng = Lcg(2024);
    let b = benign(&mut rng);
    let f = bruteforce(&mut rng);
    let s = scan(&mut rng);
    let mut out = Vec::new();
    for (class, cap, snap) in [
        ("benign", &b, usize::MAX),
        ("bruteforce", &f, usize::MAX),
        ("scan", &s, usize::MAX),
    ] {
        let d = dir.join(class);
        std::fs::create_dir_all(&d).expect("a class folder");
        let mut bytes = cap.bytes(snap);
        if class == "scan" {
            // Only the last frame is cut: rewrite it with the snap length.
            let last = cap.frames.len() - 1;
            let whole = Capture {
                frames: cap.frames[..last].to_vec(),
                now: 0,
            }
            .bytes(usize::MAX);
            let cut = Capture {
                frames: cap.frames[last..].to_vec(),
                now: 0,
            }
            .bytes(CUT);
            bytes = whole;
            bytes.extend(&cut[24..]);
        }
        let p = d.join(format!("{class}.pcap"));
        std::fs::write(&p, bytes).expect("a capture");
        out.push((class.to_string(), p));
    }
    out
}

/// Writes an endless-stream stand-in to `path`: `flows` TCP connections to the broker,
/// each from a new client address and port, one starting every half second (so the
/// stream spans `flows / 2` seconds), each a handshake, an MQTT CONNECT, a PUBLISH on a
/// topic of its own and one UDP datagram; every other connection never closes (it only
/// goes idle). What a detector holds must not grow with `flows`.
pub fn write_endless(path: &Path, flows: u32) {
    let mut cap = Capture::new(1_700_000_000_000_000);
    for i in 0..flows {
        let client = [172, 16 + (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let port = 20_000 + (i % 40_000) as u16;
        let mut c = Tcp {
            client,
            port,
            server: BROKER,
            server_port: 1883,
            cseq: 1000 + i,
            sseq: 900_000 + i,
        };
        c.send(&mut cap, 500_000, true, Flags::Syn, &[]);
        c.send(&mut cap, 100, false, Flags::SynAck, &[]);
        c.send(&mut cap, 100, true, Flags::Ack, &[]);
        c.send(
            &mut cap,
            100,
            true,
            Flags::PshAck,
            &connect(&format!("dev{i}"), None),
        );
        let topic = format!("plant/{i}/temperature");
        c.send(
            &mut cap,
            100,
            true,
            Flags::PshAck,
            &publish_qos1(&topic, 1, b"21.5"),
        );
        let b = PacketBuilder::ethernet2(mac(client), BROKER_MAC)
            .ipv4(client, BROKER, 64)
            .udp(port, 5683);
        let mut f = Vec::with_capacity(b.size(4));
        b.write(&mut f, b"ping").expect("a UDP frame");
        cap.push(100, f);
        if i % 2 == 0 {
            c.send(&mut cap, 100, true, Flags::FinAck, &[]);
        }
    }
    std::fs::write(path, cap.bytes(usize::MAX)).expect("a capture");
}

/// A flood of one flow: MQTT password guesses from the same client port, each attempt
/// (SYN, SYN-ACK, ACK, CONNECT with a password, CONNACK refused, FIN-ACK both ways, ACK)
/// 8 frames, every frame `gap_us` after the one before, from 1,600,300,000 s: `attempts`
/// attempts last `(8 * attempts - 1) * gap_us` µs; `port` is the client's. Written to
/// `path`.
pub fn write_flood(path: &Path, attempts: u32, gap_us: u64, port: u16) {
    let mut cap = Capture::new(1_600_300_000_000_000 - gap_us);
    for attempt in 0..attempts {
        let mut c = Tcp {
            client: [192, 168, 1, 77],
            port,
            server: BROKER,
            server_port: 1883,
            cseq: 77_000 + attempt * 1013,
            sseq: 5_000_000 + attempt * 101,
        };
        c.send(&mut cap, gap_us, true, Flags::Syn, &[]);
        c.send(&mut cap, gap_us, false, Flags::SynAck, &[]);
        c.send(&mut cap, gap_us, true, Flags::Ack, &[]);
        let pw = format!("guess{attempt}");
        c.send(
            &mut cap,
            gap_us,
            true,
            Flags::PshAck,
            &connect("bf", Some(("admin", &pw))),
        );
        c.send(&mut cap, gap_us, false, Flags::PshAck, &[0x20, 2, 0, 5]);
        c.send(&mut cap, gap_us, false, Flags::FinAck, &[]);
        c.send(&mut cap, gap_us, true, Flags::FinAck, &[]);
        c.send(&mut cap, gap_us, false, Flags::Ack, &[]);
    }
    std::fs::write(path, cap.bytes(usize::MAX)).expect("a capture");
}
