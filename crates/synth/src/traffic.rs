//! Flows: what kinds of traffic make up each class, the state of one flow, and the
//! pool of flows that interleave in the output. A class is a weighted mix of flow
//! kinds; a flow is one conversation between two endpoints, so a sequence model has
//! something to learn that single packets do not show.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::class::{CLASSES, Class, NCLASSES};
use crate::network::{
    ATTACKERS, BACKDOOR_PORTS, BROKER, DNS_NAMES, FLOOD_TCP_PORTS, FLOOD_UDP_PORTS, GATEWAY, Ip,
    PLCS, PROBE_PORTS, RANSOMWARE_PORTS, TOPICS, WEB_SERVERS, bot, device, ephemeral, pick, victim,
};

/// Active flows interleaved at any time.
const POOL: usize = 16;

/// What a flow does; a class is a mix of kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A full TCP connection: handshake, a body that depends on the session, FIN
    /// exchange.
    Session(Session),
    // Normal
    DnsLookup,
    Ping,
    // Attacks
    UdpFlood,
    IcmpFlood,
    SynFlood,
    PortScan,
    OsProbe,
    ArpSpoof,
    MdnsShifted,
}

/// The flow kinds that are full TCP connections (see [`Kind::Session`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Session {
    // Normal
    MqttSensor,
    ModbusPoll,
    HttpBrowse,
    // Attacks
    HttpFlood,
    SqlInjection,
    Xss,
    Upload,
    HttpBrute,
    MqttBrute,
    VulnScan,
    Backdoor,
    Ransomware,
}

impl Kind {
    /// Packets per flow (inclusive).
    pub(crate) fn len_range(self) -> (u32, u32) {
        match self {
            Kind::Session(session) => session.len_range(),
            Kind::DnsLookup => (1, 6),
            Kind::Ping => (2, 10),
            Kind::UdpFlood | Kind::IcmpFlood => (10, 60),
            Kind::SynFlood => (3, 12),
            Kind::PortScan => (6, 40),
            Kind::OsProbe => (3, 20),
            Kind::ArpSpoof => (3, 30),
            Kind::MdnsShifted => (2, 12),
        }
    }

    /// Carried over TCP: a background packet in such a flow is a bare ACK.
    pub(crate) fn is_tcp(self) -> bool {
        matches!(
            self,
            Kind::Session(_) | Kind::SynFlood | Kind::PortScan | Kind::OsProbe
        )
    }
}

impl Session {
    /// Packets per flow (inclusive). At least 6: handshake, one body packet, and the
    /// two closing packets.
    fn len_range(self) -> (u32, u32) {
        match self {
            Session::MqttSensor => (12, 60),
            Session::ModbusPoll => (9, 45),
            Session::HttpBrowse => (8, 24),
            Session::HttpFlood => (6, 20),
            Session::SqlInjection | Session::Xss | Session::HttpBrute => (8, 40),
            Session::Upload => (10, 50),
            Session::MqttBrute | Session::VulnScan => (6, 30),
            Session::Backdoor | Session::Ransomware => (10, 60),
        }
    }
}

/// The flow kinds a class is made of, with relative weights.
fn class_kinds(class: Class) -> &'static [(Kind, u32)] {
    match class {
        Class::Normal => &[
            (Kind::Session(Session::MqttSensor), 40),
            (Kind::Session(Session::ModbusPoll), 25),
            (Kind::DnsLookup, 15),
            (Kind::Session(Session::HttpBrowse), 17),
            (Kind::Ping, 3),
        ],
        Class::DdosUdp => &[(Kind::UdpFlood, 1)],
        Class::DdosIcmp => &[(Kind::IcmpFlood, 1)],
        Class::SqlInjection => &[(Kind::Session(Session::SqlInjection), 1)],
        Class::Password => &[
            (Kind::Session(Session::HttpBrute), 60),
            (Kind::Session(Session::MqttBrute), 40),
        ],
        Class::VulnerabilityScanner => &[(Kind::Session(Session::VulnScan), 1)],
        Class::DdosTcp => &[(Kind::SynFlood, 1)],
        Class::DdosHttp => &[(Kind::Session(Session::HttpFlood), 1)],
        Class::Uploading => &[(Kind::Session(Session::Upload), 1)],
        Class::Backdoor => &[(Kind::Session(Session::Backdoor), 1)],
        Class::PortScanning => &[(Kind::PortScan, 1)],
        Class::Xss => &[(Kind::Session(Session::Xss), 1)],
        Class::Ransomware => &[(Kind::Session(Session::Ransomware), 1)],
        Class::Mitm => &[(Kind::ArpSpoof, 65), (Kind::MdnsShifted, 35)],
        Class::Fingerprinting => &[(Kind::OsProbe, 1)],
    }
}

/// Expected packets per flow of a class, used to turn row quotas into flow-start
/// weights.
fn mean_flow_len(class: Class) -> f64 {
    let kinds = class_kinds(class);
    let total: u32 = kinds.iter().map(|k| k.1).sum();
    kinds
        .iter()
        .map(|&(kind, weight)| {
            let (lo, hi) = kind.len_range();
            f64::from(weight) * f64::from(lo + hi) / 2.0
        })
        .sum::<f64>()
        / f64::from(total)
}

/// Generator state the packet builders share.
#[derive(Debug)]
pub(crate) struct GenState {
    pub(crate) rng: ChaCha8Rng,
    /// The last `udp.stream` number handed out.
    pub(crate) next_stream: u64,
    /// 1-based number of the row being built (for `dns.retransmit_request_in`).
    pub(crate) frame: u64,
}

/// One active flow. `client` opened it (attacker, bot, or device); `server` is the
/// other end. Sequence numbers are relative, as tshark prints them.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flow {
    pub(crate) class: Class,
    pub(crate) kind: Kind,
    pub(crate) client: Ip,
    pub(crate) server: Ip,
    pub(crate) client_port: u16,
    pub(crate) server_port: u16,
    /// Packets emitted so far / planned.
    pub(crate) step: u32,
    pub(crate) len: u32,
    pub(crate) client_seq: u32,
    pub(crate) server_seq: u32,
    /// Initial sequence numbers (raw values = initial + relative).
    pub(crate) client_initial_seq: u32,
    pub(crate) server_initial_seq: u32,
    /// TCP timestamp option base.
    pub(crate) timestamp: u32,
    pub(crate) udp_stream: u64,
    /// Kind-specific counter: Modbus transaction id, ICMP sequence, scan position.
    pub(crate) counter: u32,
    /// Kind-specific choice: topic, unit id, DNS name, SYN payload size.
    pub(crate) choice: u32,
}

impl Flow {
    /// A new flow of `class`: its kind, endpoints and length.
    fn new(state: &mut GenState, class: Class) -> Flow {
        let rng = &mut state.rng;
        let kinds = class_kinds(class);
        let total: u32 = kinds.iter().map(|k| k.1).sum();
        let mut draw = rng.random_range(0..total);
        let mut kind = kinds[0].0;
        for &(candidate, weight) in kinds {
            if draw < weight {
                kind = candidate;
                break;
            }
            draw -= weight;
        }
        let (lo, hi) = kind.len_range();
        let source_port = ephemeral(rng);
        let (client, server, client_port, server_port) = match kind {
            Kind::Session(Session::MqttSensor) => (device(rng), BROKER, source_port, 1883),
            Kind::Session(Session::ModbusPoll) => (device(rng), pick(rng, &PLCS), source_port, 502),
            Kind::DnsLookup => (device(rng), GATEWAY, 0, 53),
            Kind::Session(Session::HttpBrowse) => {
                (device(rng), pick(rng, &WEB_SERVERS), source_port, 80)
            }
            Kind::Ping => (device(rng), victim(rng), 0, 0),
            Kind::UdpFlood => (bot(rng), victim(rng), 0, pick(rng, &FLOOD_UDP_PORTS)),
            Kind::IcmpFlood => (bot(rng), victim(rng), 0, 0),
            Kind::SynFlood => (
                bot(rng),
                victim(rng),
                source_port,
                pick(rng, &FLOOD_TCP_PORTS),
            ),
            Kind::Session(Session::HttpFlood) => {
                (bot(rng), pick(rng, &WEB_SERVERS), source_port, 80)
            }
            Kind::Session(
                Session::SqlInjection
                | Session::Xss
                | Session::Upload
                | Session::HttpBrute
                | Session::VulnScan,
            ) => (
                pick(rng, &ATTACKERS),
                pick(rng, &WEB_SERVERS),
                source_port,
                80,
            ),
            Kind::Session(Session::MqttBrute) => (pick(rng, &ATTACKERS), BROKER, source_port, 1883),
            Kind::Session(Session::Backdoor) => (
                pick(rng, &ATTACKERS),
                device(rng),
                source_port,
                pick(rng, &BACKDOOR_PORTS),
            ),
            Kind::Session(Session::Ransomware) => (
                pick(rng, &ATTACKERS),
                victim(rng),
                source_port,
                pick(rng, &RANSOMWARE_PORTS),
            ),
            Kind::PortScan => (pick(rng, &ATTACKERS), victim(rng), source_port, 0),
            Kind::OsProbe => (
                pick(rng, &ATTACKERS),
                victim(rng),
                source_port,
                pick(rng, &PROBE_PORTS),
            ),
            // An ARP spoofer claims the gateway's (or broker's) address towards a victim.
            Kind::ArpSpoof => (pick(rng, &[GATEWAY, BROKER]), device(rng), 0, 0),
            Kind::MdnsShifted => (device(rng), GATEWAY, 0, 5353),
        };
        let udp_stream = if matches!(kind, Kind::DnsLookup | Kind::UdpFlood) {
            state.next_stream += 1;
            state.next_stream
        } else {
            0
        };
        let rng = &mut state.rng;
        let choice = match kind {
            Kind::Session(Session::MqttSensor) => rng.random_range(0..TOPICS.len() as u32),
            Kind::Session(Session::ModbusPoll) => rng.random_range(1..=3),
            Kind::DnsLookup => rng.random_range(0..DNS_NAMES.len() as u32),
            // hping3-style floods: half send bare SYNs, half SYNs with data.
            Kind::SynFlood => {
                if rng.random_bool(0.5) {
                    0
                } else {
                    rng.random_range(64..=512)
                }
            }
            _ => 0,
        };
        // The fields are drawn in this order: keep it, or the output changes.
        Flow {
            class,
            kind,
            client,
            server,
            client_port,
            server_port,
            step: 0,
            len: rng.random_range(lo..=hi),
            client_seq: 0,
            server_seq: 0,
            client_initial_seq: rng.random(),
            server_initial_seq: rng.random(),
            timestamp: rng.random(),
            udp_stream,
            counter: rng.random_range(0..=u32::from(u16::MAX)),
            choice,
        }
    }

    pub(crate) fn done(&self) -> bool {
        self.step >= self.len
    }

    /// TCP timestamp values of the client and the server at this step.
    pub(crate) fn timestamps(&self) -> (u32, u32) {
        (
            self.timestamp.wrapping_add(self.step * 7),
            self.timestamp.wrapping_add(self.step * 5),
        )
    }
}

/// The active flows, and how a finished one is replaced.
#[derive(Debug)]
pub(crate) struct Pool {
    flows: Vec<Flow>,
    mean_len: [f64; NCLASSES],
}

impl Pool {
    /// A full pool, or an empty one when no rows are owed.
    pub(crate) fn new(remaining: &[u64; NCLASSES], state: &mut GenState) -> Pool {
        let mut pool = Pool {
            flows: Vec::with_capacity(POOL),
            mean_len: std::array::from_fn(|i| mean_flow_len(CLASSES[i].0)),
        };
        if remaining.iter().any(|&rows| rows > 0) {
            for _ in 0..POOL {
                let flow = pool.spawn(remaining, state);
                pool.flows.push(flow);
            }
        }
        pool
    }

    /// A new flow of a class drawn by remaining quota / mean flow length: each
    /// class then emits rows at a rate proportional to what it still owes. With no
    /// quota left at all (never the case while rows are owed) the draw falls back to
    /// Normal.
    fn spawn(&self, remaining: &[u64; NCLASSES], state: &mut GenState) -> Flow {
        let weights: [f64; NCLASSES] =
            std::array::from_fn(|i| remaining[i] as f64 / self.mean_len[i]);
        let total: f64 = weights.iter().sum();
        let mut draw = state.rng.random::<f64>() * total;
        let mut drawn = None;
        for (i, &weight) in weights.iter().enumerate() {
            if weight > 0.0 {
                drawn = Some(i);
                if draw < weight {
                    break;
                }
                draw -= weight;
            }
        }
        Flow::new(state, CLASSES[drawn.unwrap_or(0)].0)
    }

    /// The flow that sends the next packet: one drawn at random, replaced first if
    /// it is finished or its class owes no more rows. The pool must not be empty.
    pub(crate) fn next(&mut self, remaining: &[u64; NCLASSES], state: &mut GenState) -> &mut Flow {
        let index = state.rng.random_range(0..self.flows.len());
        let flow = self.flows[index];
        if flow.done() || remaining[flow.class as usize] == 0 {
            self.flows[index] = self.spawn(remaining, state);
        }
        &mut self.flows[index]
    }
}
