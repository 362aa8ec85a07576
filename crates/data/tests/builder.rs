//! The record-source seam: `DatasetBuilder` fed record by record gives the table that
//! `read_csv` gives for the same records, and the CSV reader reads from any `Read` and
//! from standard input.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use iotids_data::ingest::{DatasetBuilder, read_csv_batches, read_csv_batches_from, read_csv_from};
use iotids_data::table::ColumnData;
use iotids_data::{Dataset, Error, Format, IngestOptions, read_csv};

/// A tshark-layout capture of `n` packets: flows in both directions, a time column
/// (with an unreadable time), a categorical method, a free-text column, label
/// variants, a quoted field with a newline, a short record and an unusable label.
/// Returns the records and the CSV text written from them.
fn capture(n: usize) -> (Vec<String>, Vec<Vec<String>>, Vec<u8>) {
    let header: Vec<String> = [
        "frame.time",
        "ip.src_host",
        "ip.dst_host",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.len",
        "tcp.flags",
        "http.request.method",
        "info",
        "label",
    ]
    .map(String::from)
    .to_vec();
    let mut records = Vec::new();
    for i in 0..n {
        let client = 10 + i % 13;
        let (src, dst, sport, dport) = if i % 3 == 0 {
            (
                "10.0.0.2".to_string(),
                format!("10.0.0.{client}"),
                "1883".to_string(),
                format!("{}", 40000 + client),
            )
        } else {
            (
                format!("10.0.0.{client}"),
                "10.0.0.2".to_string(),
                format!("{}", 40000 + client),
                "1883".to_string(),
            )
        };
        let us = 1_000 * i as u64 + (i as u64 % 7) * 13;
        let time = if i == 17 {
            "not a time".to_string()
        } else {
            format!(
                "Jun 12, 2020 09:{:02}:{:02}.{:06}000 UTC",
                us / 60_000_000 % 60,
                us / 1_000_000 % 60,
                us % 1_000_000
            )
        };
        let label = match i % 5 {
            0 => "bruteforce",
            1 => "Bruteforce",
            _ => "benign",
        };
        let mut r = vec![
            time,
            src,
            dst,
            sport,
            dport,
            if i % 4 == 0 {
                "0".into()
            } else {
                format!("{}", i % 97)
            },
            ["0x0018", "0x0010", "0.0", ""][i % 4].to_string(),
            ["GET", "POST", "0", "get"][i % 4].to_string(),
            if i == 5 {
                "two\nlines, \"quoted\"".to_string()
            } else {
                format!("note {}", i % 11)
            },
            label.to_string(),
        ];
        if i == 9 {
            r.truncate(4); // a short record
        }
        if i == 23 {
            r[9] = String::new(); // an unusable label
        }
        records.push(r);
    }
    let mut w = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    w.write_record(&header).unwrap();
    for r in &records {
        w.write_record(r).unwrap();
    }
    let text = w.into_inner().unwrap();
    (header, records, text)
}

/// The physical line each record starts on, as the CSV reader counts them.
fn lines_of(records: &[Vec<String>]) -> Vec<u64> {
    let mut line = 2;
    records
        .iter()
        .map(|r| {
            let start = line;
            line += 1 + r
                .iter()
                .map(|f| f.matches('\n').count() as u64)
                .sum::<u64>();
            start
        })
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn timed() -> IngestOptions {
    IngestOptions {
        flow_timing: iotids_data::FlowTiming::On,
        categorical: vec!["info".into()],
        ..IngestOptions::default()
    }
}

/// Every field of two tables, as text (NaN prints as NaN, so missing cells compare).
fn same(a: &Dataset, b: &Dataset) {
    let mut b = b.clone();
    b.path.clone_from(&a.path);
    assert_eq!(format!("{a:?}"), format!("{b:?}"));
}

fn numeric<'a>(ds: &'a Dataset, name: &str) -> &'a [f32] {
    match &ds.column(name).unwrap().data {
        ColumnData::Numeric(v) => v,
        ColumnData::Categorical { .. } => panic!("{name} is categorical"),
    }
}

#[test]
fn records_pushed_one_by_one_give_the_table_read_csv_gives() {
    let dir = tempfile::tempdir().unwrap();
    // More records than the sample (5,000) and than a chunk (8,192).
    let (header, records, text) = capture(12_000);
    let path = write(dir.path(), "capture.csv", &text);
    let from_csv = read_csv(&path, &timed()).unwrap();
    assert_eq!(from_csv.format, Format::Tshark);
    assert_eq!(from_csv.report.rows_rejected, 2);
    assert_eq!(from_csv.n_rows(), 11_998);

    let mut b = DatasetBuilder::new(&path, &header, &timed()).unwrap();
    assert_eq!(b.format(), Format::Tshark);
    for (line, r) in lines_of(&records).into_iter().zip(&records) {
        b.push(line, r).unwrap();
    }
    b.add_bytes(text.len() as u64);
    let built = b.finish().unwrap();
    same(&from_csv, &built);

    // What the comparison covers, spelled out.
    assert_eq!(built.classes, vec!["bruteforce", "benign"]);
    assert_eq!(
        built.lines[..8],
        [2, 3, 4, 5, 6, 7, 9, 10],
        "the quoted newline"
    );
    let names: Vec<&str> = built.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "tcp.len",
            "tcp.flags",
            "http.request.method",
            "info",
            "flow.iat_us",
            "flow.index",
            "host.iat_us"
        ]
    );
    assert_eq!(built.report.flows, Some(13));
    assert_eq!(built.hosts.as_ref().unwrap()[..3], [0, 1, 2]);
    assert_eq!(numeric(&built, "flow.index")[..3], [0.0, 0.0, 0.0]);
    assert_eq!(built.report.timing.as_ref().unwrap().unparsed, 1);
    let r = &built.report.first_rejects;
    assert_eq!(
        (r[0].line, r[0].reason.as_str()),
        (12, "expected 10 fields, found 4")
    );
    assert_eq!(r[1].line, 26);
    assert!(r[1].reason.starts_with("unusable label"), "{}", r[1].reason);
}

#[test]
fn batches_from_the_builder_concatenate_to_the_whole() {
    let (header, records, _) = capture(3_000);
    let lines = lines_of(&records);
    let whole = {
        let mut b = DatasetBuilder::new("capture", &header, &timed()).unwrap();
        b.extend(lines.iter().copied().zip(&records)).unwrap();
        b.finish().unwrap()
    };
    let mut b = DatasetBuilder::new("capture", &header, &timed()).unwrap();
    let (mut labels, mut flows, mut iat, mut sizes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut take = |ds: Dataset| {
        sizes.push(ds.n_rows());
        labels.extend(ds.labels.iter().map(|&l| ds.classes[l as usize].clone()));
        flows.extend_from_slice(ds.flows.as_ref().unwrap());
        iat.extend_from_slice(numeric(&ds, "flow.iat_us"));
        ds.report
    };
    for (line, r) in lines.iter().zip(&records) {
        b.push(*line, r).unwrap();
        if b.pending_rows() >= 700 {
            take(b.take_batch().unwrap());
        }
    }
    let report = take(b.finish().unwrap());
    assert_eq!(sizes.iter().sum::<usize>(), whole.n_rows());
    assert!(sizes.len() >= 4, "{sizes:?}");
    let whole_labels: Vec<String> = whole
        .labels
        .iter()
        .map(|&l| whole.classes[l as usize].clone())
        .collect();
    assert_eq!(labels, whole_labels);
    assert_eq!(&flows, whole.flows.as_ref().unwrap());
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&iat), bits(numeric(&whole, "flow.iat_us")));
    assert_eq!(report.rows_kept, whole.report.rows_kept);
    assert_eq!(report.rows_rejected, 2);
}

#[test]
fn rejects_are_counted_with_line_and_reason_and_written_out() {
    let dir = tempfile::tempdir().unwrap();
    let rejects = dir.path().join("rejects.csv");
    let opts = IngestOptions {
        label: Some("label".into()),
        rejects_path: Some(rejects.clone()),
        ..IngestOptions::default()
    };
    let mut b = DatasetBuilder::new("packets", &["src_ip", "dst_ip", "size", "label"], &opts)
        .unwrap()
        .with_sample_size(2);
    b.push(1, ["10.0.0.1", "10.0.0.2", "60", "normal"]).unwrap();
    b.reject(2, "truncated packet (14 of 60 bytes)", "")
        .unwrap();
    b.push(3, ["10.0.0.1", "10.0.0.2", "61"]).unwrap();
    b.push(4, [""]).unwrap(); // blank: not a record
    b.push(5, ["10.0.0.2", "10.0.0.1", "62", "normal"]).unwrap();
    b.push(6, ["10.0.0.3", "10.0.0.1", "63", " "]).unwrap();
    b.reject(7, "not IP", "ff ff").unwrap();
    let ds = b.finish().unwrap();
    assert_eq!(ds.lines, vec![1, 5]);
    assert_eq!(ds.report.rows_read, 6);
    assert_eq!(ds.report.rows_kept, 2);
    assert_eq!(ds.report.rows_rejected, 4);
    let shown: Vec<(u64, &str)> = ds
        .report
        .first_rejects
        .iter()
        .map(|r| (r.line, r.reason.as_str()))
        .collect();
    assert_eq!(
        shown,
        [
            (2, "truncated packet (14 of 60 bytes)"),
            (3, "expected 4 fields, found 3"),
            (6, "unusable label `` in column 4"),
            (7, "not IP"),
        ]
    );
    let text = std::fs::read_to_string(&rejects).unwrap();
    assert_eq!(
        text,
        "line,reason,record\n\
         2,truncated packet (14 of 60 bytes),\n\
         3,\"expected 4 fields, found 3\",\"10.0.0.1,10.0.0.2,61\"\n\
         6,unusable label `` in column 4,\"10.0.0.3,10.0.0.1,63, \"\n\
         7,not IP,ff ff\n"
    );
}

#[test]
fn kinds_come_from_the_sample_unless_given() {
    let opts = IngestOptions {
        label: Some("label".into()),
        ..IngestOptions::default()
    };
    let header = ["size", "proto", "label"];
    let rows = [["1", "tcp", "a"], ["2", "udp", "b"], ["3", "7", "a"]];
    let read = |b: DatasetBuilder| {
        let mut b = b;
        for (i, r) in rows.iter().enumerate() {
            b.push(i as u64 + 2, r).unwrap();
        }
        b.finish().unwrap()
    };
    let inferred = read(DatasetBuilder::new("t", &header, &opts).unwrap());
    assert!(
        !inferred.column("proto").unwrap().is_numeric(),
        "text: categorical"
    );
    assert!(inferred.column("size").unwrap().is_numeric());
    assert_eq!(inferred.report.profiles[1].sampled, 3);
    // No sample: every feature not declared categorical is numeric, text counted.
    let unsampled = read(
        DatasetBuilder::new("t", &header, &opts)
            .unwrap()
            .with_sample_size(0),
    );
    assert_eq!(numeric(&unsampled, "proto")[2], 7.0);
    assert_eq!(unsampled.column("proto").unwrap().text_cells, 2);
    assert_eq!(unsampled.report.profiles[1].sampled, 0);
    let declared = read(
        DatasetBuilder::new(
            "t",
            &header,
            &IngestOptions {
                categorical: vec!["proto".into()],
                ..opts.clone()
            },
        )
        .unwrap()
        .with_sample_size(0),
    );
    assert!(!declared.column("proto").unwrap().is_numeric());
}

#[test]
fn a_builder_refuses_what_read_csv_refuses() {
    let opts = IngestOptions {
        label: Some("label".into()),
        ..IngestOptions::default()
    };
    let none: [&str; 0] = [];
    assert!(matches!(
        DatasetBuilder::new("t", &none, &opts),
        Err(Error::Empty { .. })
    ));
    let e = DatasetBuilder::new("capture", &["a", "b"], &opts).unwrap_err();
    assert!(matches!(e, Error::MissingLabel { .. }), "{e}");
    assert!(e.to_string().starts_with("capture: "), "{e}");
    let e = DatasetBuilder::new(
        "capture",
        &["a", "label"],
        &IngestOptions {
            drop: vec!["b".into()],
            ..opts.clone()
        },
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "capture: `drop` names the column `b`, which is not in the header (columns: a, label)"
    );
    let mut b = DatasetBuilder::new("capture", &["a", "label"], &opts).unwrap();
    b.push(2, ["1"]).unwrap();
    assert!(matches!(b.finish(), Err(Error::NoRows { rejected: 1, .. })));
}

/// A reader that hands out a few bytes at a time and is sometimes interrupted, as a
/// pipe or a socket can be.
struct Trickle<'a> {
    bytes: &'a [u8],
    calls: usize,
}

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.calls += 1;
        if self.calls.is_multiple_of(5) {
            return Err(std::io::ErrorKind::Interrupted.into());
        }
        let n = buf.len().min(self.bytes.len()).min(1 + self.calls % 700);
        buf[..n].copy_from_slice(&self.bytes[..n]);
        self.bytes = &self.bytes[n..];
        Ok(n)
    }
}

#[test]
fn any_reader_gives_the_table_the_file_gives() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, mut text) = capture(4_000);
    // A byte-order mark, as spreadsheet exports write.
    text.splice(0..0, [0xEF, 0xBB, 0xBF]);
    let path = write(dir.path(), "capture.csv", &text);
    let opts = IngestOptions {
        block_size: 8192,
        threads: 2,
        ..timed()
    };
    let from_file = read_csv(&path, &opts).unwrap();
    assert_eq!(from_file.report.bytes, text.len() as u64);
    let from_slice = read_csv_from(&text[..], Path::new("memory"), &opts).unwrap();
    assert_eq!(from_slice.path, Path::new("memory"));
    same(&from_file, &from_slice);
    let trickle = Trickle {
        bytes: &text,
        calls: 0,
    };
    let from_trickle = read_csv_from(trickle, Path::new("pipe"), &opts).unwrap();
    same(&from_file, &from_trickle);

    // Batches from a reader, with the caller's own error type stopping the read.
    #[derive(Debug)]
    enum Mine {
        Data(Error),
        Enough(usize),
    }
    impl From<Error> for Mine {
        fn from(e: Error) -> Self {
            Mine::Data(e)
        }
    }
    let mut seen = 0;
    let r = read_csv_batches_from(&text[..], Path::new("memory"), &opts, 500, |b| {
        seen += b.n_rows();
        if seen >= 1_000 {
            return Err(Mine::Enough(seen));
        }
        Ok(())
    });
    assert!(matches!(r, Err(Mine::Enough(n)) if n >= 1_000), "{r:?}");
    let r = read_csv_batches(&dir.path().join("missing.csv"), &opts, 500, |_| {
        Ok::<(), Mine>(())
    });
    assert!(matches!(r, Err(Mine::Data(Error::Io { .. }))), "{r:?}");
}

/// Set in the child process of [`dash_reads_standard_input`].
const CHILD: &str = "IOTIDS_DATA_TEST_STDIN_CHILD";

#[test]
fn dash_reads_standard_input() {
    if std::env::var_os(CHILD).is_some() {
        let ds = read_csv(Path::new("-"), &timed()).unwrap();
        println!(
            "path={} rows={} rejected={} bytes={} flows={:?}",
            ds.path.display(),
            ds.n_rows(),
            ds.report.rows_rejected,
            ds.report.bytes,
            ds.report.flows
        );
        return;
    }
    let (_, _, text) = capture(2_000);
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "dash_reads_standard_input",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || stdin.write_all(&text).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success());
    let out = String::from_utf8_lossy(&out.stdout);
    let (_, _, text) = capture(2_000);
    let want = format!(
        "path=<stdin> rows=1998 rejected=2 bytes={} flows=Some(13)",
        text.len()
    );
    assert!(out.contains(&want), "{out}");
}

/// Two connections between the same two hosts (ports 40001 then 40002) and one between
/// others, interleaved; no time column (host pairs do not need one).
fn tshark() -> IngestOptions {
    IngestOptions {
        format: Some(Format::Tshark),
        ..IngestOptions::default()
    }
}

fn two_connections() -> (Vec<String>, Vec<Vec<String>>) {
    let header: Vec<String> = [
        "ip.src_host",
        "ip.dst_host",
        "tcp.srcport",
        "tcp.dstport",
        "tcp.len",
        "label",
    ]
    .map(String::from)
    .to_vec();
    let rec = |src: &str, dst: &str, sport: u32, dport: u32, len: u32| {
        vec![
            src.to_string(),
            dst.to_string(),
            sport.to_string(),
            dport.to_string(),
            len.to_string(),
            "benign".to_string(),
        ]
    };
    let records = vec![
        rec("10.0.0.5", "10.0.0.2", 40001, 1883, 0),
        rec("10.0.0.2", "10.0.0.5", 1883, 40001, 0),
        rec("10.0.0.7", "10.0.0.2", 50000, 1883, 0),
        rec("10.0.0.5", "10.0.0.2", 40001, 1883, 12),
        // A new connection between the same hosts, in the other direction first.
        rec("10.0.0.2", "10.0.0.5", 1883, 40002, 0),
        rec("10.0.0.5", "10.0.0.2", 40002, 1883, 14),
        rec("10.0.0.7", "10.0.0.2", 50000, 1883, 3),
    ];
    (header, records)
}

#[test]
fn host_pair_windows_reach_across_the_connections_of_two_hosts() {
    use iotids_data::window::{PAD, WindowBy, flow_windows};
    let (header, records) = two_connections();
    let lines: Vec<u64> = (2..).take(records.len()).collect();
    let mut b = DatasetBuilder::new("pairs", &header, &tshark()).unwrap();
    b.extend(lines.iter().copied().zip(&records)).unwrap();
    let ds = b.finish().unwrap();
    assert_eq!(ds.flows.as_deref(), Some(&[0, 0, 1, 0, 2, 2, 1][..]));
    assert_eq!(ds.host_pairs.as_deref(), Some(&[0, 0, 1, 0, 0, 0, 1][..]));
    assert_eq!(ds.window_keys(WindowBy::Flow), ds.flows.as_deref());
    assert_eq!(ds.window_keys(WindowBy::HostPair), ds.host_pairs.as_deref());

    // Window 3 of the second connection's first packet (row 4): by flow it stands alone,
    // by host pair it follows the hosts' earlier connection.
    let by_flow = flow_windows(ds.window_keys(WindowBy::Flow), ds.n_rows(), 3).unwrap();
    let by_pair = flow_windows(ds.window_keys(WindowBy::HostPair), ds.n_rows(), 3).unwrap();
    assert_eq!(by_flow[4 * 3..5 * 3], [PAD, PAD, 4]);
    assert_eq!(by_pair[4 * 3..5 * 3], [1, 3, 4]);
    assert_eq!(by_pair[5 * 3..6 * 3], [3, 4, 5]);
    // The other hosts' packets stay in their own windows.
    assert_eq!(by_pair[6 * 3..7 * 3], [PAD, 2, 6]);

    // Batches number host pairs as the whole read does.
    let mut b = DatasetBuilder::new("pairs", &header, &tshark()).unwrap();
    let mut ids = Vec::new();
    for (line, r) in lines.iter().zip(&records) {
        b.push(*line, r).unwrap();
        if b.pending_rows() == 2 {
            ids.extend(b.take_batch().unwrap().host_pairs.unwrap());
        }
    }
    ids.extend(b.finish().unwrap().host_pairs.unwrap());
    assert_eq!(ids, [0, 0, 1, 0, 0, 0, 1]);
}

#[test]
fn a_stream_bounds_its_host_pairs_and_names_the_ones_it_forgets() {
    let (header, records) = two_connections();
    let third = vec![
        "10.0.0.9".to_string(),
        "10.0.0.2".to_string(),
        "50001".to_string(),
        "1883".to_string(),
        "0".to_string(),
        "benign".to_string(),
    ];
    // At most 2 host pairs: the third forgets the least recently seen.
    let mut b = DatasetBuilder::new("pairs", &header, &tshark())
        .unwrap()
        .with_sample_size(0)
        .streaming(1_000, 2);
    for (line, r) in (2..).zip(&records) {
        b.push(line, r).unwrap();
    }
    let first = b.take_batch().unwrap();
    assert_eq!(
        first.host_pairs.as_deref(),
        Some(&[0, 0, 1, 0, 0, 0, 1][..])
    );
    assert!(b.take_forgotten_host_pairs().is_empty());
    assert_eq!(b.held().host_pairs, 2);
    b.push(9, &third).unwrap();
    let second = b.take_batch().unwrap();
    assert_eq!(second.host_pairs.as_deref(), Some(&[2][..]));
    // Past the bound it keeps three quarters of it (here the pair just seen): both
    // earlier pairs go, least recently seen first.
    assert_eq!(b.take_forgotten_host_pairs(), [0, 1]);
    assert!(b.take_forgotten_host_pairs().is_empty(), "taken once");
    b.push(10, &records[0]).unwrap();
    let third = b.take_batch().unwrap();
    // A forgotten pair comes back under a new id.
    assert_eq!(third.host_pairs.as_deref(), Some(&[3][..]));
    assert!(b.take_forgotten_host_pairs().is_empty());
    assert!(b.held().host_pairs <= 2, "{:?}", b.held());
}
