//! Ingest, describe and audit on the real third-party files in `../shared/data`
//! (never committed; CI has them). Compiled only with `--features shared-data`;
//! then a missing file fails the test rather than skipping it.
#![cfg(feature = "shared-data")]

use std::path::PathBuf;

use iotids_data::audit::{AuditOptions, FindingKind, audit};
use iotids_data::clean::count_duplicates;
use iotids_data::describe::describe;
use iotids_data::prepare::{PrepareConfig, prepare};
use iotids_data::split::SplitMethod;
use iotids_data::{Format, IngestOptions, read_csv};

fn shared(rel: &str) -> PathBuf {
    let root = std::env::var_os("IOTIDS_SHARED_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"));
    let p = root.join(rel);
    assert!(
        p.exists(),
        "{} is missing: the shared-data tests need ../shared/data (or IOTIDS_SHARED_DATA)",
        p.display()
    );
    p
}

fn counts(ds: &iotids_data::Dataset) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = ds.classes.iter().cloned().zip(ds.class_counts()).collect();
    v.sort();
    v
}

#[test]
fn edge_iiotset_mitm_file_keeps_shifted_rows_and_finds_duplicates() {
    let ds = read_csv(
        &shared("edge-iiotset/MITM_attack.csv"),
        &IngestOptions::default(),
    )
    .unwrap();
    assert_eq!(ds.format, Format::EdgeIiot);
    assert_eq!(ds.report.rows_read, 1229);
    assert_eq!(ds.report.rows_rejected, 0);
    assert_eq!(ds.n_rows(), 1229, "shifted rows survive");
    assert_eq!(counts(&ds), vec![("MITM".to_string(), 1229)]);
    let d = count_duplicates(&ds);
    assert_eq!(d.exact, 819);
    // Shifted rows put DNS names under port headers; kept on request, they survive.
    let kept = read_csv(
        &shared("edge-iiotset/MITM_attack.csv"),
        &IngestOptions {
            keep: vec!["tcp.srcport".into()],
            ..IngestOptions::default()
        },
    )
    .unwrap();
    match &kept.column("tcp.srcport").unwrap().data {
        iotids_data::ColumnData::Categorical { levels, .. } => {
            assert!(levels.iter().any(|l| l == "_ipps._tcp.local"), "{levels:?}")
        }
        iotids_data::ColumnData::Numeric(_) => panic!("tcp.srcport holds names in this file"),
    }
    // 15 identifier columns and 1 other label column are not features.
    assert_eq!(ds.columns.len(), 63 - 15 - 2);
    let a = audit(&ds, &AuditOptions::default());
    let exact = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::ExactDuplicates)
        .unwrap();
    assert!(
        exact.detail.starts_with("819 of 1229 rows"),
        "{}",
        exact.detail
    );
    assert!(a.findings.iter().any(|f| f.kind == FindingKind::Identifier
        && f.column.as_deref() == Some("ip.src_host")
        && f.mitigated));
}

#[test]
fn bot_iot_sample_has_the_documented_classes() {
    let path = shared("bot-iot/bot_iot_sample.csv");
    let ds = read_csv(&path, &IngestOptions::default()).unwrap();
    assert_eq!(ds.format, Format::BotIot);
    assert_eq!(ds.n_rows(), 999);
    assert_eq!(ds.report.rows_rejected, 0);
    assert_eq!(
        counts(&ds),
        vec![
            ("DDoS".to_string(), 522),
            ("DoS".to_string(), 450),
            ("Reconnaissance".to_string(), 27)
        ]
    );
    let names: Vec<&str> = ds.columns.iter().map(|c| c.name.as_str()).collect();
    for gone in [
        "pkSeqID",
        "saddr",
        "sport",
        "daddr",
        "dport",
        "seq",
        "attack",
        "category",
        "subcategory",
    ] {
        assert!(!names.contains(&gone), "{gone} must not be a feature");
    }
    assert_eq!(ds.columns.len(), 19 - 9);
    let sub = read_csv(
        &path,
        &IngestOptions {
            label: Some("subcategory".into()),
            ..IngestOptions::default()
        },
    )
    .unwrap();
    assert_eq!(
        sub.n_classes(),
        5,
        "TCP, UDP, HTTP, Service_Scan, OS_Fingerprint"
    );
    let d = describe(&ds);
    let mean = d.numeric.iter().find(|s| s.name == "mean").unwrap();
    assert_eq!(mean.count, 999);
    assert_eq!(d.duplicates.exact, 0);
}

#[test]
fn mqttset_class_counts_match_its_readme() {
    let ds = read_csv(
        &shared("mqttset/mqttset-train.csv"),
        &IngestOptions::default(),
    )
    .unwrap();
    assert_eq!(ds.format, Format::Tshark);
    assert_eq!(ds.n_rows(), 30_979);
    assert_eq!(ds.report.rows_rejected, 0);
    assert_eq!(
        counts(&ds),
        vec![
            ("benign".to_string(), 6375),
            ("bruteforce".to_string(), 8918),
            ("flood".to_string(), 58),
            ("malariados".to_string(), 1866),
            ("malformed".to_string(), 7315),
            ("slowite".to_string(), 6447),
        ]
    );
    // Hosts (for federation's host partition): the source of each flow's first packet,
    // constant within a flow. MQTTset's flows were opened by 10 hosts (checked with
    // Python over the raw ip.src_host/ports columns).
    let (flows, hosts) = (ds.flows.as_ref().unwrap(), ds.hosts.as_ref().unwrap());
    let mut host_of_flow = std::collections::HashMap::new();
    for (&f, &h) in flows.iter().zip(hosts) {
        assert_eq!(*host_of_flow.entry(f).or_insert(h), h, "flow {f}");
    }
    let distinct: std::collections::HashSet<u32> = hosts.iter().copied().collect();
    assert_eq!(distinct.len(), 10);
    // Hex flags are numbers, not text.
    let flags = ds.column("tcp.flags").unwrap();
    assert!(flags.is_numeric());
    assert_eq!(flags.text_cells, 0);
    // A flow split keeps every flow on one side.
    let cfg = PrepareConfig {
        split: iotids_data::split::SplitConfig {
            method: SplitMethod::Flow,
            ..Default::default()
        },
        ..PrepareConfig::default()
    };
    let p = prepare(ds, &IngestOptions::default(), &cfg).unwrap();
    let flows = p.dataset.flows.as_ref().unwrap();
    let mut side = std::collections::HashMap::new();
    for (s, rows) in [
        (0, &p.split.train),
        (1, &p.split.validation),
        (2, &p.split.test),
    ] {
        for &r in rows {
            assert_eq!(
                *side.entry(flows[r]).or_insert(s),
                s,
                "flow {} straddles the split",
                flows[r]
            );
        }
    }
    assert!(
        p.split.test.len() > 3000,
        "test side: {}",
        p.split.test.len()
    );
}

#[test]
fn flow_timing_on_mqttset_and_the_edge_iiotset_mitm_file() {
    let timed = IngestOptions {
        flow_timing: iotids_data::FlowTiming::On,
        ..IngestOptions::default()
    };
    let ds = read_csv(&shared("mqttset/mqttset-train.csv"), &timed).unwrap();
    let t = ds.report.timing.as_ref().unwrap();
    assert_eq!((t.parsed, t.unparsed, t.incomparable), (30_979, 0, 0));
    let numeric = |name: &str| match &ds.column(name).unwrap().data {
        iotids_data::ColumnData::Numeric(v) => v.clone(),
        iotids_data::ColumnData::Categorical { .. } => panic!("{name} is categorical"),
    };
    // Lines 2-4: one flow (192.168.0.151:39937 <-> 10.16.100.73:1883) at
    // 09:40:01.290201, .290213, .290223; line 5 opens the next sensor's flow at .298875.
    assert_eq!(numeric("flow.iat_us")[..4], [0.0, 12.0, 10.0, 0.0]);
    assert_eq!(numeric("flow.index")[..4], [0.0, 1.0, 2.0, 0.0]);
    assert_eq!(numeric("host.iat_us")[..4], [0.0, 12.0, 10.0, 0.0]);

    // The MITM file's frame.time holds 0.0 (absent) in 888 rows and 6.0 in 341.
    let mitm = read_csv(&shared("edge-iiotset/MITM_attack.csv"), &timed).unwrap();
    let t = mitm.report.timing.as_ref().unwrap();
    assert_eq!((t.parsed, t.unparsed), (341, 888));
    assert_eq!(t.first_problems[0].line, 2);
    assert!(
        t.first_problems[0].reason.contains("`0.0`"),
        "{:?}",
        t.first_problems[0]
    );
    let missing = mitm.column("flow.iat_us").unwrap().missing_cells;
    assert!(
        missing >= 888,
        "every unreadable time is a missing gap: {missing}"
    );
}
