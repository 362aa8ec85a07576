//! Ingest on fixtures this test writes itself: the quirks of real IoT CSVs, bad
//! rows, block boundaries, and files that are not usable at all.

use std::path::{Path, PathBuf};

use iotids_data::table::ColumnData;
use iotids_data::{Dataset, Error, Format, IngestOptions, read_csv};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn numeric<'a>(ds: &'a Dataset, name: &str) -> &'a [f32] {
    match &ds
        .column(name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .data
    {
        ColumnData::Numeric(v) => v,
        ColumnData::Categorical { .. } => panic!("{name} is categorical"),
    }
}

fn category(ds: &Dataset, name: &str, row: usize) -> String {
    match &ds.column(name).unwrap().data {
        ColumnData::Categorical { codes, levels } => levels[codes[row] as usize].clone(),
        ColumnData::Numeric(_) => panic!("{name} is numeric"),
    }
}

/// A generic CSV with every quirk at once: CRLF, quoted fields with commas,
/// doubled quotes and a newline, a 250,000-character field, hex, placeholder
/// spellings, a short row, an empty label, label variants, no final newline.
fn quirky_csv() -> Vec<u8> {
    let long = "ab".repeat(125_000);
    let rows = [
        "src_ip,dst_ip,flags,size,method,payload,label".to_string(),
        "10.0.0.1,10.0.0.2,0x0018,60.0,GET,\"a, b\",normal".to_string(),
        "10.0.0.2,10.0.0.1,0x0010,0,POST,\"say \"\"hi\"\"\nnext line\",Normal".to_string(),
        "10.0.0.3,10.0.0.2,,0.0,0,plain,DDoS".to_string(),
        "10.0.0.3,10.0.0.2,0x0002,1500".to_string(),
        format!("10.0.0.3,10.0.0.2,0x0002,1.5e3,GET,{long},ddos"),
        "10.0.0.4,10.0.0.2,0x0002,12,GET,x,".to_string(),
        "10.0.0.4,10.0.0.2,NaN,_ipps._tcp.local,1.0,x, DDoS ".to_string(),
    ];
    rows.join("\r\n").into_bytes()
}

fn opts() -> IngestOptions {
    IngestOptions {
        label: Some("label".into()),
        drop: vec!["payload".into()],
        categorical: vec!["method".into()],
        ..IngestOptions::default()
    }
}

#[test]
fn reads_every_quirk_and_counts_rejects() {
    let dir = tempfile::tempdir().unwrap();
    let rejects = dir.path().join("rejects.csv");
    let path = write(dir.path(), "quirky.csv", &quirky_csv());
    let ds = read_csv(
        &path,
        &IngestOptions {
            rejects_path: Some(rejects.clone()),
            ..opts()
        },
    )
    .unwrap();
    assert_eq!(ds.format, Format::Generic);
    assert_eq!(ds.report.rows_read, 7);
    assert_eq!(ds.report.rows_rejected, 2);
    assert_eq!(ds.n_rows(), 5);
    // Variants fold into the first spelling seen: normal/Normal, DDoS/ddos/" DDoS ".
    assert_eq!(ds.classes, vec!["normal", "DDoS"]);
    assert_eq!(ds.labels, vec![0, 0, 1, 1, 1]);
    // Physical lines: the quoted newline makes row 3 span lines 3-4.
    assert_eq!(ds.lines, vec![2, 3, 5, 7, 9]);
    assert_eq!(&numeric(&ds, "flags")[..4], &[24.0, 16.0, 0.0, 2.0]);
    assert!(numeric(&ds, "flags")[4].is_nan());
    let size = numeric(&ds, "size");
    assert_eq!(&size[..4], &[60.0, 0.0, 0.0, 1500.0]);
    assert!(
        size[4].is_nan(),
        "text in a numeric column is missing, not zero"
    );
    assert_eq!(ds.column("size").unwrap().text_cells, 1);
    assert_eq!(ds.column("flags").unwrap().missing_cells, 1);
    assert_eq!(category(&ds, "method", 0), "GET");
    assert_eq!(
        category(&ds, "method", 2),
        "",
        "`0` in a categorical column is absent"
    );
    assert_eq!(category(&ds, "method", 4), "1", "`1.0` is canonicalised");
    assert!(ds.column("payload").is_none());
    assert!(ds.column("label").is_none());
    // The src_ip/dst_ip pair builds flows, direction-free: rows 0 and 1 are one flow.
    let flows = ds.flows.as_ref().unwrap();
    assert_eq!(flows[0], flows[1]);
    assert_ne!(flows[0], flows[2]);
    // Each row's host is the source of its flow's first record: row 1 (from 10.0.0.2)
    // belongs to the flow 10.0.0.1 opened.
    assert_eq!(ds.hosts.as_deref(), Some(&[0, 0, 1, 1, 2][..]));
    // Rejects: the short row (line 6) and the empty label (line 8), with reasons.
    let r = &ds.report.first_rejects;
    assert_eq!(
        (r[0].line, r[0].reason.as_str()),
        (6, "expected 7 fields, found 4")
    );
    assert_eq!(r[1].line, 8);
    assert!(r[1].reason.contains("unusable label"), "{}", r[1].reason);
    let text = std::fs::read_to_string(&rejects).unwrap();
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let recs: Vec<csv::StringRecord> = rdr.records().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 2);
    assert_eq!(&recs[0][0], "6");
    assert_eq!(&recs[0][2], "10.0.0.3,10.0.0.2,0x0002,1500");
}

#[test]
fn block_boundaries_and_threads_do_not_change_the_result() {
    let dir = tempfile::tempdir().unwrap();
    // Many rows with quoted newlines, so cuts land inside quotes.
    let mut text = String::from("a,b,note,label\n");
    for i in 0..3000 {
        let note = if i % 7 == 0 {
            format!("\"x,\ny \"\"{i}\"\"\"")
        } else {
            format!("n{i}")
        };
        text.push_str(&format!(
            "{i},0x{:x},{note},{}\r\n",
            i * 3,
            if i % 3 == 0 { "a" } else { "b" }
        ));
    }
    let path = write(dir.path(), "many.csv", text.as_bytes());
    let base = IngestOptions {
        label: Some("label".into()),
        threads: 1,
        block_size: 1 << 20,
        ..IngestOptions::default()
    };
    let one = read_csv(&path, &base).unwrap();
    assert_eq!(one.n_rows(), 3000);
    assert_eq!(one.report.rows_rejected, 0);
    for (threads, block) in [(1, 1024), (2, 1024), (3, 4096), (2, 1500)] {
        let other = read_csv(
            &path,
            &IngestOptions {
                threads,
                block_size: block,
                ..base.clone()
            },
        )
        .unwrap();
        assert_eq!(other.labels, one.labels, "threads {threads}, block {block}");
        assert_eq!(other.lines, one.lines);
        assert_eq!(other.row_hashes, one.row_hashes);
        assert_eq!(numeric(&other, "b"), numeric(&one, "b"));
    }
    assert_eq!(numeric(&one, "b")[2999], (2999 * 3) as f32);
}

#[test]
fn unusable_files_fail_with_one_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.csv", b"");
    assert!(matches!(
        read_csv(&empty, &opts()),
        Err(Error::Empty { .. })
    ));
    let blank = write(dir.path(), "blank.csv", b"\r\n  \n");
    assert!(matches!(
        read_csv(&blank, &opts()),
        Err(Error::Empty { .. })
    ));
    let binary = write(
        dir.path(),
        "capture.pcap",
        &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0],
    );
    let e = read_csv(&binary, &opts()).unwrap_err();
    assert!(matches!(e, Error::NotCsv { .. }), "{e}");
    let nolabel = write(dir.path(), "nolabel.csv", b"a,b\n1,2\n");
    let e = read_csv(&nolabel, &opts()).unwrap_err();
    assert!(e.to_string().contains("no label column `label`"), "{e}");
    assert!(e.to_string().contains("nolabel.csv"), "{e}");
    let generic = write(dir.path(), "generic.csv", b"a,b\n1,2\n");
    let e = read_csv(&generic, &IngestOptions::default()).unwrap_err();
    assert!(matches!(e, Error::UnknownFormat { .. }), "{e}");
    let only_bad = write(dir.path(), "bad.csv", b"a,label\n1\n2\n");
    let e = read_csv(&only_bad, &opts_label()).unwrap_err();
    assert!(matches!(e, Error::NoRows { rejected: 2, .. }), "{e}");
}

fn opts_label() -> IngestOptions {
    IngestOptions {
        label: Some("label".into()),
        ..IngestOptions::default()
    }
}

#[test]
fn edge_iiotset_layout_drops_identifiers_and_folds_fingerprinting() {
    let dir = tempfile::tempdir().unwrap();
    let header = "frame.time,ip.src_host,ip.dst_host,tcp.srcport,tcp.dstport,tcp.flags,mqtt.topic,Attack_label,Attack_type";
    let text = format!(
        "{header}\r\n 2021 22:49:20.400794000 ,192.168.0.1,192.168.0.2,1883.0,40000.0,0x0018,0,0,Normal\r\n 2021 22:49:21.0 ,192.168.0.3,192.168.0.2,5000.0,80.0,0x0002,0.0,1,OS_Fingerprinting\r\n 2021 22:49:22.0 ,192.168.0.3,192.168.0.2,5001.0,81.0,0x0002,0.0,1,Fingerprinting"
    );
    let path = write(dir.path(), "edge.csv", text.as_bytes());
    let ds = read_csv(&path, &IngestOptions::default()).unwrap();
    assert_eq!(ds.format, Format::EdgeIiot);
    assert_eq!(ds.classes, vec!["Normal", "Fingerprinting"]);
    let names: Vec<&str> = ds.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["tcp.flags", "mqtt.topic"]);
    // mqtt.topic is categorical; `0` and `0.0` are the same absent value...
    assert_eq!(
        category(&ds, "mqtt.topic", 0),
        category(&ds, "mqtt.topic", 1)
    );
    // ...but the spelling per class is remembered for audit.
    let sp = &ds.column("mqtt.topic").unwrap().spellings;
    assert_eq!(sp[0], [0, 1, 0, 0]);
    assert_eq!(sp[1], [0, 0, 2, 0]);
    assert_eq!(ds.report.flows, Some(3));
}

#[test]
fn bot_iot_tab_separated_with_hex_ports() {
    let dir = tempfile::tempdir().unwrap();
    let text = "pkSeqID\tproto\tsaddr\tsport\tdaddr\tdport\tseq\tmean\tattack\tcategory\tsubcategory\r\n\
                1\ticmp\t192.168.100.150\t0x0303\t192.168.100.3\t0x2600\t5\t4.4\t1\tDoS\tUDP\r\n\
                2\tudp\t192.168.100.150\t48516\t192.168.100.3\t80\t6\t3.8\t1\tDDoS\tUDP";
    let path = write(dir.path(), "bot.csv", text.as_bytes());
    let ds = read_csv(&path, &IngestOptions::default()).unwrap();
    assert_eq!(ds.format, Format::BotIot);
    assert_eq!(ds.label_column, "category");
    assert_eq!(ds.classes, vec!["DoS", "DDoS"]);
    let names: Vec<&str> = ds.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["proto", "mean"]);
    assert_eq!(numeric(&ds, "mean"), &[4.4f32, 3.8]);
    let sub = read_csv(
        &path,
        &IngestOptions {
            label: Some("subcategory".into()),
            ..IngestOptions::default()
        },
    )
    .unwrap();
    assert_eq!(sub.classes, vec!["UDP"]);
    assert!(
        sub.column("category").is_none(),
        "the other label columns are never features"
    );
}

#[test]
fn batches_cover_the_file_once_with_stable_ids() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("src_ip,dst_ip,size,proto,label\n");
    for i in 0..5000 {
        let proto = ["tcp", "udp", "icmp"][i % 3];
        text.push_str(&format!(
            "10.0.0.{},10.0.1.1,{},{proto},{}\n",
            i % 7,
            i,
            if i % 5 == 0 { "scan" } else { "normal" }
        ));
    }
    let path = write(dir.path(), "stream.csv", text.as_bytes());
    let base = IngestOptions {
        label: Some("label".into()),
        block_size: 4096,
        threads: 2,
        ..IngestOptions::default()
    };
    let whole = read_csv(&path, &base).unwrap();
    let mut sizes = Vec::new();
    let (mut labels, mut flows, mut hosts, mut sizes_col, mut protos) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let report = iotids_data::ingest::read_csv_batches(&path, &base, 700, |b| {
        sizes.push(b.n_rows());
        labels.extend(b.labels.iter().map(|&l| b.classes[l as usize].clone()));
        flows.extend_from_slice(b.flows.as_ref().unwrap());
        hosts.extend_from_slice(b.hosts.as_ref().unwrap());
        sizes_col.extend_from_slice(numeric(&b, "size"));
        for r in 0..b.n_rows() {
            protos.push(category(&b, "proto", r));
        }
        Ok::<(), Error>(())
    })
    .unwrap();
    assert_eq!(report.rows_kept, 5000);
    assert_eq!(sizes.iter().sum::<usize>(), 5000);
    assert!(sizes.len() >= 5, "{sizes:?}");
    assert!(
        sizes[..sizes.len() - 1].iter().all(|&s| s >= 700),
        "{sizes:?}"
    );
    let whole_labels: Vec<String> = whole
        .labels
        .iter()
        .map(|&l| whole.classes[l as usize].clone())
        .collect();
    assert_eq!(labels, whole_labels);
    assert_eq!(
        &flows,
        whole.flows.as_ref().unwrap(),
        "flow ids are stable across batches"
    );
    assert_eq!(&hosts, whole.hosts.as_ref().unwrap());
    assert_eq!(sizes_col, numeric(&whole, "size"));
    assert_eq!(protos[..6], ["tcp", "udp", "icmp", "tcp", "udp", "icmp"]);
}

#[test]
fn unlabelled_files_are_read_when_the_label_is_optional() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "live.csv", b"size,proto\n1,tcp\n2,udp\n");
    let strict = IngestOptions {
        label: Some("label".into()),
        ..IngestOptions::default()
    };
    assert!(matches!(
        read_csv(&path, &strict),
        Err(Error::MissingLabel { .. })
    ));
    let lenient = IngestOptions {
        label_optional: true,
        numeric: vec!["proto".into()],
        ..strict
    };
    let ds = read_csv(&path, &lenient).unwrap();
    assert_eq!(ds.classes, vec![iotids_data::ingest::UNLABELLED]);
    assert_eq!(ds.n_rows(), 2);
    // Forced numeric: the text becomes NaN and is counted, as the model expects.
    assert!(numeric(&ds, "proto")[0].is_nan());
    assert_eq!(ds.column("proto").unwrap().text_cells, 2);
}

// Per-flow timing features (--flow-timing): inter-arrival time and index in the flow,
// derived from frame.time before it is dropped.

/// A tshark-layout file: three flows (A: 10.0.0.1:40000 <-> 10.0.0.2:1883, both
/// directions; B: 10.0.0.3:40001 <-> 10.0.0.2:1883; C: 10.0.0.1:40002 <-> 10.0.0.2:1883,
/// A's hosts on other ports), an unreadable time and a short row.
const TIMED: &str = "\
frame.time,ip.src_host,ip.dst_host,tcp.srcport,tcp.dstport,tcp.len,label
\"Jun 12, 2020 09:40:01.000000000 UTC\",10.0.0.1,10.0.0.2,40000,1883,0,benign
\"Jun 12, 2020 09:40:01.000250000 UTC\",10.0.0.2,10.0.0.1,1883,40000,10,benign
\"Jun 12, 2020 09:40:02.500000000 UTC\",10.0.0.3,10.0.0.2,40001,1883,0,bruteforce
not a time,10.0.0.1,10.0.0.2,40000,1883,5,benign
\"Jun 12, 2020 09:40:03.000000000 UTC\",10.0.0.1,10.0.0.2,40000,1883,0,benign
\"Jun 12, 2020 09:40:03.000000000 UTC\",10.0.0.3,10.0.0.2
\"Jun 12, 2020 11:40:03.500000000 CEST\",10.0.0.2,10.0.0.3,1883,40001,0,bruteforce
\"Jun 12, 2020 09:40:03.000100400 UTC\",10.0.0.1,10.0.0.2,40002,1883,0,benign
";

fn timed_opts() -> IngestOptions {
    IngestOptions {
        flow_timing: iotids_data::FlowTiming::On,
        ..IngestOptions::default()
    }
}

#[test]
fn a_capped_flow_index_counts_up_to_its_cap_and_a_retimed_subset_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "timed.csv", TIMED.as_bytes());
    let capped = IngestOptions {
        flow_index_cap: Some(2),
        keep_timing_source: true,
        ..timed_opts()
    };
    let ds = read_csv(&path, &capped).unwrap();
    // Uncapped A counts 0, 1, 2, 3; capped at 2 its fourth packet stays at 2.
    assert_eq!(
        numeric(&ds, "flow.index"),
        [0.0, 1.0, 0.0, 2.0, 2.0, 1.0, 0.0]
    );
    assert_eq!(ds.report.timing.as_ref().unwrap().index_cap, Some(2));
    // The cap counts packets only: the inter-arrival times are the uncapped read's.
    let plain = read_csv(&path, &timed_opts()).unwrap();
    assert_eq!(plain.report.timing.as_ref().unwrap().index_cap, None);
    for name in ["flow.iat_us", "host.iat_us"] {
        let (a, b) = (numeric(&ds, name), numeric(&plain, name));
        assert!(
            a.iter()
                .zip(b.iter())
                .all(|(x, y)| x == y || (x.is_nan() && y.is_nan())),
            "{name}: {a:?} vs {b:?}"
        );
    }
    // A table of A's packets alone, timed again over its own rows, is capped as well.
    let mut a_only = ds.subset(&[0, 1, 3, 4]);
    assert!(a_only.retime());
    assert_eq!(numeric(&a_only, "flow.index"), [0.0, 1.0, 2.0, 2.0]);
}

#[test]
fn flow_timing_measures_each_flow_from_frame_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "timed.csv", TIMED.as_bytes());
    let ds = read_csv(&path, &timed_opts()).unwrap();
    assert_eq!(ds.format, Format::Tshark);
    assert!(
        ds.column("frame.time").is_none(),
        "frame.time stays dropped"
    );
    assert_eq!(ds.report.rows_rejected, 1, "the short row");
    let iat = numeric(&ds, "flow.iat_us");
    // A: first packet; 250 us later (other direction, same flow); B: first packet;
    // A: unreadable (missing); A: from the last readable time, 09:40:01.000250;
    // B: 11:40:03.5 CEST is 09:40:03.5 UTC, one second after B's first packet; C: first.
    assert_eq!(iat[..3], [0.0, 250.0, 0.0]);
    assert!(iat[3].is_nan());
    assert_eq!(iat[4..], [1_999_750.0, 1_000_000.0, 0.0]);
    assert_eq!(
        numeric(&ds, "flow.index"),
        [0.0, 1.0, 0.0, 2.0, 3.0, 1.0, 0.0]
    );
    // Between the same hosts, any ports: as the flows, except C, 100.4 us (rounded to
    // 100) after A's last packet.
    let host = numeric(&ds, "host.iat_us");
    assert_eq!(host[..3], [0.0, 250.0, 0.0]);
    assert!(host[3].is_nan());
    assert_eq!(host[4..], [1_999_750.0, 1_000_000.0, 100.0]);
    let col = ds.column("flow.iat_us").unwrap();
    assert_eq!(
        col.missing_cells, 1,
        "the unreadable time is counted as missing"
    );
    let t = ds.report.timing.as_ref().unwrap();
    assert_eq!((t.parsed, t.unparsed, t.backwards), (6, 1, 0));
    assert_eq!(t.column, "frame.time");
    assert_eq!(t.first_problems.len(), 1);
    assert_eq!(t.first_problems[0].line, 5);
    let reason = &t.first_problems[0].reason;
    assert!(
        reason.contains("`frame.time`") && reason.contains("`not a time`"),
        "names column and value: {reason}"
    );

    // Without the option nothing is derived; a derived column can be dropped.
    let plain = read_csv(&path, &IngestOptions::default()).unwrap();
    assert!(plain.column("flow.iat_us").is_none());
    assert!(plain.report.timing.is_none());
    let no_index = read_csv(
        &path,
        &IngestOptions {
            drop: vec!["flow.index".into()],
            ..timed_opts()
        },
    )
    .unwrap();
    assert!(no_index.column("flow.index").is_none());
    assert_eq!(numeric(&no_index, "flow.iat_us")[1], 250.0);
}

#[test]
fn flow_timing_needs_a_time_column_and_flows() {
    let dir = tempfile::tempdir().unwrap();
    let no_time = write(
        dir.path(),
        "no_time.csv",
        b"src_ip,dst_ip,size,label\n10.0.0.1,10.0.0.2,3,a\n",
    );
    let opts = IngestOptions {
        label: Some("label".into()),
        ..timed_opts()
    };
    let e = read_csv(&no_time, &opts).unwrap_err();
    assert!(matches!(e, Error::FlowTiming { .. }), "{e}");
    assert!(
        e.to_string().contains("no_time.csv") && e.to_string().contains("timestamp"),
        "{e}"
    );
    let no_flows = write(dir.path(), "no_flows.csv", b"timestamp,size,label\n7,3,a\n");
    let e = read_csv(&no_flows, &opts).unwrap_err();
    assert!(e.to_string().contains("need flows"), "{e}");
    // Auto reads both files without the features, and the report says none were derived.
    let auto = IngestOptions {
        flow_timing: iotids_data::FlowTiming::Auto,
        ..opts
    };
    for path in [&no_time, &no_flows] {
        let ds = read_csv(path, &auto).unwrap();
        assert!(ds.report.timing.is_none());
        assert!(ds.column("flow.iat_us").is_none());
        assert_eq!(ds.n_rows(), 1);
    }
}

#[test]
fn flow_timing_is_the_same_in_batches_as_in_one_read() {
    // 3000 packets over 7 flows, 1 ms apart in file order, the clock crossing midnight
    // in Edge-IIoTset's broken time-of-day form; read in 1 KiB blocks and 100-row batches.
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("frame.time,ip.src_host,ip.dst_host,tcp.len,label\n");
    let start_ms: u64 = 86_400_000 - 1_500;
    for i in 0..3000u64 {
        let ms = (start_ms + i) % 86_400_000;
        let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
        text.push_str(&format!(
            " 2021 {h:02}:{m:02}:{s:02}.{:03}000000 ,10.0.0.{},10.0.1.1,{i},{}\n",
            ms % 1000,
            i % 7,
            if i % 2 == 0 { "a" } else { "b" }
        ));
    }
    let path = write(dir.path(), "midnight.csv", text.as_bytes());
    let opts = IngestOptions {
        block_size: 1024,
        threads: 2,
        ..timed_opts()
    };
    let whole = read_csv(&path, &opts).unwrap();
    let iat = numeric(&whole, "flow.iat_us");
    let index = numeric(&whole, "flow.index");
    // Packet i is flow i % 7's (i / 7)-th; after the first, 7 ms after the previous.
    for i in 0..3000 {
        let expect = if i < 7 { 0.0 } else { 7_000.0 };
        assert_eq!(iat[i], expect, "row {i}");
        assert_eq!(index[i], (i / 7) as f32, "row {i}");
    }
    assert_eq!(
        numeric(&whole, "host.iat_us"),
        iat,
        "no ports: host pairs are the flows"
    );
    let (mut b_iat, mut b_index, mut b_host, mut batches) = (Vec::new(), Vec::new(), Vec::new(), 0);
    iotids_data::ingest::read_csv_batches(&path, &opts, 100, |b| {
        batches += 1;
        b_iat.extend_from_slice(numeric(&b, "flow.iat_us"));
        b_index.extend_from_slice(numeric(&b, "flow.index"));
        b_host.extend_from_slice(numeric(&b, "host.iat_us"));
        Ok::<(), Error>(())
    })
    .unwrap();
    assert!(batches > 10, "{batches} batches");
    assert_eq!(b_iat, iat);
    assert_eq!(b_index, index);
    assert_eq!(b_host, iat);
    assert_eq!(whole.report.timing.as_ref().unwrap().backwards, 0);
}

#[test]
fn a_subset_retimed_is_what_a_read_of_its_rows_alone_gives() {
    // 600 packets of 12 flows between 4 client hosts (3 ports each) and one broker,
    // 1 to 7 ms apart in file order; one unreadable time. A device of a federation
    // holding every third flow (one of each host's three) computes its timing over its
    // own packets only.
    let dir = tempfile::tempdir().unwrap();
    let header = "frame.time,ip.src_host,ip.dst_host,tcp.srcport,tcp.dstport,tcp.len,label\n";
    let (mut all, mut mine) = (String::from(header), String::from(header));
    let mut rows = Vec::new();
    let mut us: u64 = 0;
    for i in 0..600u64 {
        us += 1_000 + (i * 7919) % 6_000;
        let flow = (i * 5 + i / 13) % 12;
        let time = if i == 77 {
            "not a time".to_string()
        } else {
            format!(
                "\"Jun 12, 2020 09:40:{:02}.{:06}000 UTC\"",
                us / 1_000_000,
                us % 1_000_000
            )
        };
        let line = format!(
            "{time},10.0.0.{},10.0.1.1,{},1883,{i},{}\n",
            flow % 4,
            40_000 + flow,
            if flow % 5 == 0 { "a" } else { "b" }
        );
        all.push_str(&line);
        if flow % 3 == 0 {
            mine.push_str(&line);
            rows.push(i as usize);
        }
    }
    let keep = IngestOptions {
        keep_timing_source: true,
        ..timed_opts()
    };
    let whole = read_csv(&write(dir.path(), "all.csv", all.as_bytes()), &keep).unwrap();
    // Kept only when asked.
    let lean = read_csv(&dir.path().join("all.csv"), &timed_opts()).unwrap();
    assert!(lean.timing_source.is_none());
    assert_eq!(whole.timing_source.as_ref().unwrap().stamps.len(), 600);
    let alone = read_csv(
        &write(dir.path(), "mine.csv", mine.as_bytes()),
        &timed_opts(),
    )
    .unwrap();
    let mut sub = whole.subset(&rows);
    assert_eq!(sub.n_rows(), alone.n_rows());
    // Before retiming, the host inter-arrival times are the whole file's: shorter.
    let pooled_host: f32 = numeric(&sub, "host.iat_us")
        .iter()
        .filter(|v| !v.is_nan())
        .sum();
    let alone_host: f32 = numeric(&alone, "host.iat_us")
        .iter()
        .filter(|v| !v.is_nan())
        .sum();
    assert!(pooled_host < alone_host, "{pooled_host} vs {alone_host}");
    assert!(sub.retime());
    for name in ["flow.iat_us", "flow.index", "host.iat_us"] {
        let (a, b) = (numeric(&sub, name), numeric(&alone, name));
        for (r, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                x == y || (x.is_nan() && y.is_nan()),
                "{name} row {r}: {x} vs {y}"
            );
        }
    }
    assert_eq!(numeric(&sub, "tcp.len"), numeric(&alone, "tcp.len"));
    assert_eq!(sub.labels.len(), rows.len());
    // A table read without the timing features has nothing to retime.
    let mut plain = read_csv(&dir.path().join("all.csv"), &IngestOptions::default()).unwrap();
    assert!(plain.timing_source.is_none());
    assert!(!plain.retime());
    // Deduplication keeps the sources in step with the rows.
    let mut twice = whole.clone();
    twice.select_rows(&[3, 5, 7]);
    assert_eq!(twice.timing_source.as_ref().unwrap().stamps.len(), 3);
}
