//! The fields iotids fills, compared with tshark's on every shared capture: tshark writes
//! the Edge-IIoTset columns with `../shared/data/tshark-fields.sh` (CI installs tshark),
//! iotids reads the same capture, and every packet's value must be tshark's. Prints the
//! parity of each column.
#![cfg(feature = "shared-data")]

use std::path::{Path, PathBuf};
use std::process::Command;

use iotids_packets::{COLUMNS, CaptureReader, Extractor, ReadError, Row, write_csv};

fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data")
}

fn captures() -> Vec<PathBuf> {
    let readme = std::fs::read_to_string(shared().join("pcaps/README.md")).unwrap();
    readme
        .lines()
        .filter(|l| l.starts_with("| `"))
        .map(|l| l.split('|').map(str::trim).collect::<Vec<&str>>())
        .filter(|cells| cells.len() == 11)
        .map(|cells| shared().join("pcaps").join(cells[1].trim_matches('`')))
        .collect()
}

/// tshark's rows for `capture`: header, then one row per packet.
fn tshark(capture: &Path) -> Vec<csv::StringRecord> {
    let out = Command::new(shared().join("tshark-fields.sh"))
        .arg(capture)
        .env("TZ", "UTC")
        .output()
        .expect("tshark-fields.sh needs tshark on the PATH (apt-get install tshark)");
    assert!(
        out.status.success(),
        "{}: {}",
        capture.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(out.stdout.as_slice())
        .records()
        .map(Result::unwrap)
        .collect()
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

/// The rows of `capture` as iotids's [`Extractor`] fills them.
fn ours(capture: &Path) -> Vec<Row> {
    let mut reader = CaptureReader::open(capture).unwrap();
    let mut x = Extractor::default();
    let mut rows = Vec::new();
    reader
        .for_each(|p| {
            rows.push(x.packet(p));
            Ok::<_, ReadError>(())
        })
        .unwrap();
    rows
}

#[test]
fn every_column_equals_tsharks_on_every_shared_capture() {
    let files = captures();
    assert_eq!(files.len(), 34);
    let mut same = vec![0u64; COLUMNS.len()];
    let mut total = 0u64;
    let mut differences: Vec<String> = Vec::new();
    for file in &files {
        let rows = tshark(file);
        assert_eq!(
            rows[0].iter().collect::<Vec<_>>(),
            COLUMNS,
            "{}",
            file.display()
        );
        let mine = ours(file);
        assert_eq!(mine.len(), rows.len() - 1, "{}", file.display());
        for (n, (theirs, mine)) in rows[1..].iter().zip(&mine).enumerate() {
            for (k, mine) in mine.iter().enumerate() {
                if &theirs[k] == mine {
                    same[k] += 1;
                } else if differences.len() < 40 {
                    differences.push(format!(
                        "{} packet {}: {} tshark {:?}, iotids {:?}",
                        file.file_name().unwrap().to_string_lossy(),
                        n + 1,
                        COLUMNS[k],
                        truncate(&theirs[k]),
                        truncate(mine)
                    ));
                }
            }
        }
        total += mine.len() as u64;
    }
    assert_eq!(total, 49_085);
    println!(
        "column parity with tshark on {total} packets of {} captures:",
        files.len()
    );
    for (c, n) in COLUMNS.iter().zip(&same) {
        println!("  {c:26} {:8.4} %", *n as f64 * 100.0 / total as f64);
    }
    assert!(differences.is_empty(), "{differences:#?}");
    assert!(same.iter().all(|&n| n == total));
}

/// The CSV [`write_csv`] writes is tshark-fields.sh's stdout, byte for byte (header,
/// quoting, escapes, U+FFFD), on captures with HTTP bodies, quotes and commas, several MQTT
/// messages per segment, Modbus and mDNS.
#[test]
fn csv_bytes_equal_tshark_fields_sh_stdout() {
    for name in [
        "chrissanders-packets/http_post.pcapng",
        "chrissanders-packets/http_dvwa_sqlinjection.pcapng",
        "chrissanders-packets/tcp_ports.pcapng",
        "mqttset-reduced/malariados/malariados-train.pcap",
        "zeek-traces/http/cooper-grill-dvwa.pcapng",
        "zeek-traces/modbus/modbus-and-non-modbus-p502.pcap",
        "zeek-traces/dns/mdns.pcap",
    ] {
        let capture = shared().join("pcaps").join(name);
        let out = Command::new(shared().join("tshark-fields.sh"))
            .arg(&capture)
            .env("TZ", "UTC")
            .output()
            .expect("tshark-fields.sh needs tshark on the PATH (apt-get install tshark)");
        assert!(out.status.success(), "{name}");
        let mut reader = CaptureReader::open(&capture).unwrap();
        let mut mine = Vec::new();
        write_csv(&mut reader, &mut mine).unwrap();
        if mine != out.stdout {
            let line = mine
                .split(|&b| b == b'\n')
                .zip(out.stdout.split(|&b| b == b'\n'))
                .position(|(a, b)| a != b);
            panic!("{name}: the CSVs differ first at line {line:?}");
        }
    }
}
