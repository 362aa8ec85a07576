//! What the columns of a file mean: which dataset layout it is, which column is the
//! label, which columns identify hosts or time (dropped as features, but used to
//! build flow keys), and which are categorical.
//!
//! The lists come from the datasets' authors (Edge-IIoTset's own preprocessing
//! recipe; BoT-IoT's identifier fields). They are defaults: `--drop` and `--keep`
//! override them.

use serde::{Deserialize, Serialize};

/// A dataset layout, detected from the header or forced with `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Edge-IIoTset DNN/ML CSVs and the raw per-attack CSVs (63 columns).
    EdgeIiot,
    /// BoT-IoT full / 5 % (46 columns) and 10-best (19 columns) CSVs.
    BotIot,
    /// `tshark-fields.sh` output: the Edge-IIoTset packet fields plus a `label` column.
    Tshark,
    /// Any other labelled CSV; needs `--label COLUMN`.
    Generic,
}

spelled!(Format, "format", {
    EdgeIiot => "edge-iiot" | "edge-iiotset" | "edgeiiot",
    BotIot => "bot-iot" | "botiot",
    Tshark => "tshark",
    Generic => "generic" | "csv",
});

impl Format {
    /// Parses a layout's name or alias ([`std::str::FromStr`] says what is allowed).
    pub fn parse(s: &str) -> Option<Format> {
        s.parse().ok()
    }

    /// Recognises a layout from the header names.
    pub fn detect(header: &[String]) -> Format {
        let has = |n: &str| header.iter().any(|h| h == n);
        if has("Attack_type") && has("frame.time") {
            Format::EdgeIiot
        } else if has("pkSeqID") && has("category") {
            Format::BotIot
        } else if has("frame.time") && has("ip.src_host") && has("label") {
            Format::Tshark
        } else {
            Format::Generic
        }
    }

    /// The default label column of this layout.
    pub fn default_label(self) -> Option<&'static str> {
        match self {
            Format::EdgeIiot => Some("Attack_type"),
            Format::BotIot => Some("category"),
            Format::Tshark => Some("label"),
            Format::Generic => None,
        }
    }

    /// Columns that hold a label (the target or another one): never features.
    pub fn label_columns(self) -> &'static [&'static str] {
        match self {
            Format::EdgeIiot => &["Attack_label", "Attack_type"],
            Format::BotIot => &["attack", "category", "subcategory"],
            Format::Tshark => &["label"],
            Format::Generic => &[],
        }
    }

    /// Columns dropped as identifiers or label leaks (the dataset authors' lists).
    pub fn identifier_columns(self) -> &'static [&'static str] {
        match self {
            Format::EdgeIiot | Format::Tshark => EDGE_DROP,
            Format::BotIot => BOT_DROP,
            Format::Generic => &[],
        }
    }

    /// Columns that may hold each record's time, in order of preference: the source of
    /// the per-flow timing features (see [`crate::timing`]).
    pub fn time_columns(self) -> &'static [&'static str] {
        match self {
            Format::EdgeIiot | Format::Tshark => &["frame.time", "frame.time_epoch"],
            Format::BotIot => &["stime"],
            Format::Generic => &[
                "frame.time",
                "frame.time_epoch",
                "stime",
                "timestamp",
                "Timestamp",
                "time",
            ],
        }
    }

    /// Columns known to be categorical (one-hot encoded).
    pub fn categorical_columns(self) -> &'static [&'static str] {
        match self {
            Format::EdgeIiot | Format::Tshark => EDGE_CATEGORICAL,
            Format::BotIot => &["proto", "flgs", "state"],
            Format::Generic => &[],
        }
    }

    /// Columns that make up a flow key: (source host, destination host, source
    /// port, destination port, protocol). Ports and protocol may be absent.
    pub fn flow_columns(self) -> FlowColumns {
        match self {
            Format::EdgeIiot | Format::Tshark => FlowColumns {
                src_host: &["ip.src_host", "arp.src.proto_ipv4"],
                dst_host: &["ip.dst_host", "arp.dst.proto_ipv4"],
                src_port: &["tcp.srcport", "udp.port"],
                dst_port: &["tcp.dstport"],
                proto: &[],
            },
            Format::BotIot => FlowColumns {
                src_host: &["saddr"],
                dst_host: &["daddr"],
                src_port: &["sport"],
                dst_port: &["dport"],
                proto: &["proto"],
            },
            Format::Generic => FlowColumns {
                src_host: &[
                    "src_ip",
                    "srcip",
                    "saddr",
                    "ip.src",
                    "ip.src_host",
                    "Src IP",
                    "source",
                ],
                dst_host: &[
                    "dst_ip",
                    "dstip",
                    "daddr",
                    "ip.dst",
                    "ip.dst_host",
                    "Dst IP",
                    "destination",
                ],
                src_port: &["src_port", "sport", "srcport", "Src Port"],
                dst_port: &["dst_port", "dport", "dstport", "Dst Port"],
                proto: &["proto", "protocol", "Protocol"],
            },
        }
    }
}

/// Candidate column names for each part of a flow key; the first present wins
/// per row (a non-absent value in an earlier candidate is preferred).
#[derive(Debug, Clone, Copy)]
pub struct FlowColumns {
    pub src_host: &'static [&'static str],
    pub dst_host: &'static [&'static str],
    pub src_port: &'static [&'static str],
    pub dst_port: &'static [&'static str],
    pub proto: &'static [&'static str],
}

/// The Edge-IIoTset authors' drop list (their published preprocessing recipe).
pub const EDGE_DROP: &[&str] = &[
    "frame.time",
    "ip.src_host",
    "ip.dst_host",
    "arp.src.proto_ipv4",
    "arp.dst.proto_ipv4",
    "http.file_data",
    "http.request.full_uri",
    "icmp.transmit_timestamp",
    "http.request.uri.query",
    "tcp.options",
    "tcp.payload",
    "tcp.srcport",
    "tcp.dstport",
    "udp.port",
    "mqtt.msg",
];

/// The Edge-IIoTset authors' categorical columns (one-hot encoded in their recipe).
pub const EDGE_CATEGORICAL: &[&str] = &[
    "http.request.method",
    "http.referer",
    "http.request.version",
    "dns.qry.name.len",
    "mqtt.conack.flags",
    "mqtt.protoname",
    "mqtt.topic",
];

/// BoT-IoT identifier and time fields.
pub const BOT_DROP: &[&str] = &[
    "pkSeqID", "stime", "ltime", "saddr", "daddr", "sport", "dport", "seq", "smac", "dmac", "soui",
    "doui", "sco", "dco",
];

/// The 15 Edge-IIoTset classes, in the order of the seed's Table 1.
pub const EDGE_CLASSES: &[&str] = &[
    "Normal",
    "DDoS_UDP",
    "DDoS_ICMP",
    "SQL_injection",
    "Password",
    "Vulnerability_scanner",
    "DDoS_TCP",
    "DDoS_HTTP",
    "Uploading",
    "Backdoor",
    "Port_Scanning",
    "XSS",
    "Ransomware",
    "MITM",
    "Fingerprinting",
];

/// BoT-IoT categories.
pub const BOT_CLASSES: &[&str] = &["Normal", "DDoS", "DoS", "Reconnaissance", "Theft"];

/// The key a class name is matched on: case, spaces, `-` and `_` do not matter.
pub fn class_key(name: &str) -> String {
    name.chars()
        .filter(|c| !matches!(c, ' ' | '_' | '-' | '\t'))
        .flat_map(char::to_lowercase)
        .collect()
}

/// Turns a raw label into its class name, or `None` when the label is unusable.
///
/// Known variants are folded into the dataset's spelling: `OS_Fingerprinting` ->
/// `Fingerprinting`, `ddos_udp` -> `DDoS_UDP`, `normal` -> `Normal`. Unknown names
/// are kept as written (trimmed); the caller unifies variants of those by
/// [`class_key`].
pub fn canonical_label(format: Format, raw: &str) -> Option<String> {
    let t = raw.trim().trim_matches('"').trim();
    if t.is_empty() || is_missing_token(t) {
        return None;
    }
    let key = class_key(t);
    let known: &[&str] = match format {
        Format::EdgeIiot | Format::Tshark => EDGE_CLASSES,
        Format::BotIot => BOT_CLASSES,
        Format::Generic => &[],
    };
    if matches!(format, Format::EdgeIiot) && key == "osfingerprinting" {
        return Some("Fingerprinting".to_string());
    }
    for k in known {
        if class_key(k) == key {
            return Some((*k).to_string());
        }
    }
    Some(t.to_string())
}

/// Spellings that mean "this value is missing" (not "absent"): imputed later.
pub fn is_missing_token(t: &str) -> bool {
    matches!(
        t,
        "nan"
            | "NaN"
            | "NAN"
            | "NA"
            | "N/A"
            | "n/a"
            | "na"
            | "null"
            | "NULL"
            | "Null"
            | "None"
            | "none"
            | "?"
            | "-"
            | "inf"
            | "-inf"
            | "Infinity"
            | "-Infinity"
    )
}

/// The benign class among `classes` (`Normal`, `benign`, in any spelling
/// [`class_key`] folds), if there is one: attacks are every other class.
pub fn normal_class(classes: &[String]) -> Option<usize> {
    classes
        .iter()
        .position(|c| matches!(class_key(c).as_str(), "normal" | "benign" | "benigntraffic"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn detects_formats_from_header() {
        assert_eq!(
            Format::detect(&header(&[
                "frame.time",
                "ip.src_host",
                "Attack_label",
                "Attack_type"
            ])),
            Format::EdgeIiot
        );
        assert_eq!(
            Format::detect(&header(&["pkSeqID", "proto", "saddr", "category"])),
            Format::BotIot
        );
        assert_eq!(
            Format::detect(&header(&["frame.time", "ip.src_host", "label"])),
            Format::Tshark
        );
        assert_eq!(Format::detect(&header(&["a", "b", "y"])), Format::Generic);
    }

    #[test]
    fn folds_class_name_variants() {
        assert_eq!(
            canonical_label(Format::EdgeIiot, "OS_Fingerprinting").as_deref(),
            Some("Fingerprinting")
        );
        assert_eq!(
            canonical_label(Format::EdgeIiot, " ddos-udp ").as_deref(),
            Some("DDoS_UDP")
        );
        assert_eq!(
            canonical_label(Format::BotIot, "reconnaissance").as_deref(),
            Some("Reconnaissance")
        );
        assert_eq!(
            canonical_label(Format::Generic, "Weird Class").as_deref(),
            Some("Weird Class")
        );
        assert_eq!(canonical_label(Format::Generic, "  "), None);
        assert_eq!(canonical_label(Format::Generic, "NaN"), None);
    }

    #[test]
    fn the_normal_class_is_found_in_any_spelling() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(normal_class(&names(&["DDoS", "Normal"])), Some(1));
        assert_eq!(normal_class(&names(&["bruteforce", "benign"])), Some(1));
        assert_eq!(normal_class(&names(&["BENIGN", "x"])), Some(0));
        assert_eq!(normal_class(&names(&["DDoS", "DoS"])), None);
    }

    #[test]
    fn formats_spell_by_name_and_alias() {
        for f in Format::ALL {
            assert_eq!(f.to_string().parse::<Format>().unwrap(), *f);
            assert_eq!(
                serde_json::to_string(f).unwrap(),
                format!("\"{}\"", f.name())
            );
        }
        assert_eq!(Format::parse("Edge_IIoTset"), Some(Format::EdgeIiot));
        assert_eq!(Format::parse("csv"), Some(Format::Generic));
        assert_eq!(Format::parse("pcap"), None);
        let e = "pcap".parse::<Format>().unwrap_err();
        assert_eq!(
            e.to_string(),
            "invalid setting `format` = pcap: must be one of edge-iiot, bot-iot, tshark, generic"
        );
    }
}
