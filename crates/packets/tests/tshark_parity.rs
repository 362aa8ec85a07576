//! The fields iotids fills, compared with tshark's on every shared capture: tshark writes
//! the Edge-IIoTset columns with `../shared/data/tshark-fields.sh` (CI installs tshark),
//! iotids reads the same capture, and every packet's value must be tshark's. Prints the
//! parity of each column.
#![cfg(feature = "shared-data")]

use std::path::{Path, PathBuf};
use std::process::Command;

use iotids_packets::fields::{
    CONVERSATION, Conversations, DNS, DNS_TRANSACTIONS, STATELESS, dns, stateless,
};
use iotids_packets::{CaptureReader, ReadError, decode};

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

#[test]
fn filled_columns_equal_tsharks_on_every_shared_capture() {
    let files = captures();
    assert_eq!(files.len(), 34);
    let columns: Vec<&str> = STATELESS
        .iter()
        .chain(&CONVERSATION)
        .chain(&DNS)
        .chain(&DNS_TRANSACTIONS)
        .copied()
        .collect();
    let mut same = vec![0u64; columns.len()];
    let mut total = 0u64;
    let mut differences: Vec<String> = Vec::new();
    for file in &files {
        let rows = tshark(file);
        let header = &rows[0];
        let at: Vec<usize> = columns
            .iter()
            .map(|c| header.iter().position(|h| h == *c).unwrap())
            .collect();
        let mut reader = CaptureReader::open(file).unwrap();
        let mut conversations = Conversations::default();
        reader
            .for_each(|p| {
                let d = decode(p);
                let ours: Vec<String> = stateless(p, &d)
                    .into_iter()
                    .chain(conversations.fill(p, &d))
                    .chain(dns(&d))
                    .chain(conversations.dns(p, &d))
                    .collect();
                let theirs = &rows[p.number as usize];
                for (k, (&i, mine)) in at.iter().zip(&ours).enumerate() {
                    if &theirs[i] == mine {
                        same[k] += 1;
                    } else if differences.len() < 40 {
                        differences.push(format!(
                            "{} packet {}: {} tshark {:?}, iotids {:?}",
                            file.file_name().unwrap().to_string_lossy(),
                            p.number,
                            columns[k],
                            truncate(&theirs[i]),
                            truncate(mine)
                        ));
                    }
                }
                Ok::<_, ReadError>(())
            })
            .unwrap();
        assert_eq!(
            reader.packets() as usize,
            rows.len() - 1,
            "{}",
            file.display()
        );
        total += reader.packets();
    }
    println!(
        "column parity with tshark on {total} packets of {} captures:",
        files.len()
    );
    for (c, n) in columns.iter().zip(&same) {
        println!("  {c:24} {:8.4} %", *n as f64 * 100.0 / total as f64);
    }
    assert!(differences.is_empty(), "{differences:#?}");
    assert!(same.iter().all(|&n| n == total));
}
