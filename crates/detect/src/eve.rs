//! Suricata EVE JSON `alert` and `stats` lines (OISF/suricata `etc/schema.json`).
//!
//! Suricata's schema allows no top-level key of its own besides the ones it lists, so
//! iotids' fields (class, probability, unknown, novelty, model, packets since the last
//! line) are under `alert.metadata.iotids`, where the schema allows any key. Its `stats`
//! object allows no key of its own at any depth (`additionalProperties: false`
//! throughout), so a stats line holds only Suricata's counters that iotids can fill
//! honestly; iotids' own counters are in the summary (`--json`) and the report.

use serde::Serialize;

use crate::flows::Flow;

/// EVE's generator id for iotids' alerts.
pub const GID: u32 = 1;
/// Signature ids: this plus a stable number per class name, below 1,000,000 apart.
pub const SID_BASE: u64 = 9_000_000;

/// A stable signature id for `class` (the same in every model and run).
pub fn signature_id(class: &str) -> u64 {
    SID_BASE + xxhash_rust::xxh3::xxh3_64(class.as_bytes()) % 1_000_000
}

/// EVE's timestamp: `2017-04-07T22:24:37.251547+0000`.
pub fn timestamp(seconds: i64, nanos: u32) -> String {
    match chrono::DateTime::from_timestamp(seconds, nanos) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%S%.6f+0000").to_string(),
        None => "1970-01-01T00:00:00.000000+0000".into(),
    }
}

/// One `event_type: "alert"` line.
#[derive(Debug, Clone, Serialize)]
pub struct AlertEvent<'a> {
    pub timestamp: String,
    pub flow_id: u64,
    /// Where the packets came from: the capture file's packet number, or the live
    /// capture's.
    pub pcap_cnt: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_iface: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture_file: Option<&'a str>,
    pub event_type: &'static str,
    pub src_ip: String,
    pub src_port: u16,
    pub dest_ip: String,
    pub dest_port: u16,
    pub proto: String,
    pub pkt_src: &'static str,
    pub alert: Alert<'a>,
    pub flow: FlowRecord,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alert<'a> {
    pub action: &'static str,
    pub gid: u32,
    pub signature_id: u64,
    pub rev: u32,
    pub signature: String,
    pub category: &'static str,
    pub severity: u8,
    pub metadata: Metadata<'a>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Metadata<'a> {
    pub iotids: Own<'a>,
}

/// iotids' own fields.
#[derive(Debug, Clone, Serialize)]
pub struct Own<'a> {
    /// The decided class (`unknown` for the unknown-traffic test's alerts).
    pub class: &'a str,
    /// The model's probability of that class (for `unknown`: of benign, refused).
    pub probability: f64,
    pub unknown: bool,
    /// Distance to the decided class's traffic, with an unknown-traffic test.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub novelty: Option<f64>,
    /// The model directory.
    pub model: &'a str,
    /// Packets of this flow judged this class since its previous line, this one
    /// included (the ones in between were suppressed by the alert interval).
    pub packets_since_last: u64,
}

/// One `event_type: "stats"` line.
#[derive(Debug, Clone, Serialize)]
pub struct StatsEvent {
    pub timestamp: String,
    pub event_type: &'static str,
    pub stats: Stats,
}

/// Suricata's `stats` object, the keys iotids can fill.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Stats {
    /// Seconds since the first packet (files: packet time) or the start (live).
    pub uptime: u64,
    /// libpcap's counters on a live capture.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureStats>,
    pub decoder: DecoderStats,
    pub flow: FlowStats,
    pub detect: DetectStats,
}

/// libpcap's `pcap_stats` on a live capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CaptureStats {
    /// Packets the kernel received (`ps_recv`).
    pub kernel_packets: u64,
    /// Dropped for lack of buffer room (`ps_drop`).
    pub kernel_drops: u64,
    /// Dropped by the interface or its driver (`ps_ifdrop`).
    pub kernel_ifdrops: u64,
}

/// Packets read and what their layers were.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DecoderStats {
    pub pkts: u64,
    /// Bytes on the wire (original lengths).
    pub bytes: u64,
    /// Packets whose decoding stopped early (cut by the snap length, malformed).
    pub invalid: u64,
    pub ipv4: u64,
    pub ipv6: u64,
    pub tcp: u64,
    pub udp: u64,
    pub icmpv4: u64,
    pub icmpv6: u64,
    pub avg_pkt_size: u64,
    pub max_pkt_size: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowStats {
    /// Flows held now.
    pub active: u64,
    /// Flows seen in all.
    pub total: u64,
    pub tcp: u64,
    pub udp: u64,
    pub icmpv4: u64,
    pub icmpv6: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DetectStats {
    /// Alert lines written.
    pub alert: u64,
    /// Packets judged an attack or unknown whose line the alert interval suppressed
    /// (Suricata: "alerts not logged due to ... thresholding").
    pub alerts_suppressed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct FlowRecord {
    pub pkts_toserver: u64,
    pub pkts_toclient: u64,
    pub bytes_toserver: u64,
    pub bytes_toclient: u64,
    pub start: String,
    pub src_ip: String,
    pub dest_ip: String,
    pub src_port: u16,
    pub dest_port: u16,
}

impl FlowRecord {
    pub fn of(f: &Flow) -> FlowRecord {
        FlowRecord {
            pkts_toserver: f.pkts_toserver,
            pkts_toclient: f.pkts_toclient,
            bytes_toserver: f.bytes_toserver,
            bytes_toclient: f.bytes_toclient,
            start: timestamp(f.start.0, f.start.1),
            src_ip: f.client.0.to_string(),
            dest_ip: f.server.0.to_string(),
            src_port: f.client.1,
            dest_port: f.server.1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_and_signature_ids() {
        assert_eq!(
            timestamp(1_491_603_877, 251_547_000),
            "2017-04-07T22:24:37.251547+0000"
        );
        assert_eq!(signature_id("scan"), signature_id("scan"));
        assert_ne!(signature_id("scan"), signature_id("bruteforce"));
        assert!((SID_BASE..SID_BASE + 1_000_000).contains(&signature_id("x")));
    }
}
