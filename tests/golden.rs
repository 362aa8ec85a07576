//! Golden outputs: the same seed gives the same `pipeline.json`, `metrics.json`,
//! `predictions.csv`, `predict`'s CSV and `rounds.csv` as the files in
//! tests/golden/expected/, byte for byte. They were made by tests/golden/make.sh with the
//! code of before the architecture refactor (issue 11), so a refactor that changes what a
//! user sees fails here.
//!
//! Normalised before comparing: the run's directory is written `$RUN` (paths appear in
//! metrics.json), and rounds.csv loses its wall-time columns (seconds, training_seconds,
//! aggregation_seconds, evaluation_seconds), which no two runs share.
//! `UPDATE_GOLDEN=1 cargo test --test golden` rewrites the expected files.
//!
//! Byte-identical holds on a CPU with the SIMD features of the machine that made the files
//! (expected/cpu.txt): the GRU's kernels and burn's matrix products pick their code path
//! by CPU feature at run time, and another path sums in another order. On a CPU with other
//! features the test says so and compares numbers within a relative 1e-4 instead, text
//! exactly, and the ROC curves by their area only: near-tied scores that one path rounds
//! apart and the other together add or remove curve points (seen on an AVX-512 machine
//! against files made without it), which moves no area by more than the tolerance.

use std::path::{Path, PathBuf};
use std::process::Command;

use iotids_model::golden::{cpu_signature, numbers_agree as agree_within};

/// (file made by make.sh, name under expected/)
const PINNED: [(&str, &str); 8] = [
    ("train/pipeline.json", "train-pipeline.json"),
    ("train/metrics.json", "train-metrics.json"),
    ("train/predictions.csv", "train-predictions.csv"),
    ("predict.csv", "predict.csv"),
    ("evaluate/metrics.json", "evaluate-metrics.json"),
    ("federate/pipeline.json", "federate-pipeline.json"),
    ("federate/metrics.json", "federate-metrics.json"),
    ("federate/rounds.csv", "federate-rounds.csv"),
];

const WALL_TIME_COLUMNS: [&str; 4] = [
    "seconds",
    "training_seconds",
    "aggregation_seconds",
    "evaluation_seconds",
];

/// A metrics file without its ROC curves' points (`roc[].fpr`, `roc[].tpr`), their areas
/// kept; other JSON unchanged.
fn without_curve_points(text: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text) else {
        return text.to_string();
    };
    if let Some(curves) = v.get_mut("roc").and_then(|r| r.as_array_mut()) {
        for c in curves.iter_mut().filter_map(|c| c.as_object_mut()) {
            c.remove("fpr");
            c.remove("tpr");
        }
    }
    serde_json::to_string_pretty(&v).unwrap_or_else(|_| text.to_string())
}

#[test]
fn curve_points_are_left_out_and_areas_kept() {
    let a = r#"{"roc": [{"auc": 0.5, "fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}], "x": 1}"#;
    let b = r#"{"roc": [{"auc": 0.5, "fpr": [0.0, 0.3, 1.0], "tpr": [0.0, 0.3, 1.0]}], "x": 1}"#;
    assert_eq!(without_curve_points(a), without_curve_points(b));
    let c = r#"{"roc": [{"auc": 0.6, "fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}], "x": 1}"#;
    assert!(!agree_within(
        &without_curve_points(a),
        &without_curve_points(c),
        1e-4
    ));
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// rounds.csv without its wall-time columns.
fn without_wall_times(text: &str) -> String {
    let mut r = csv::Reader::from_reader(text.as_bytes());
    let header = r.headers().expect("rounds.csv header").clone();
    let keep: Vec<usize> = (0..header.len())
        .filter(|&i| !WALL_TIME_COLUMNS.contains(&&header[i]))
        .collect();
    assert_eq!(
        keep.len() + WALL_TIME_COLUMNS.len(),
        header.len(),
        "rounds.csv lacks a wall-time column: {header:?}"
    );
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(keep.iter().map(|&i| &header[i])).unwrap();
    for rec in r.records() {
        let rec = rec.expect("rounds.csv record");
        w.write_record(keep.iter().map(|&i| &rec[i])).unwrap();
    }
    String::from_utf8(w.into_inner().unwrap()).unwrap()
}

fn normalised(run: &Path, made: &str) -> String {
    let text = std::fs::read_to_string(run.join(made)).unwrap_or_else(|e| panic!("{made}: {e}"));
    let text = text.replace(&run.display().to_string(), "$RUN");
    if made.ends_with("rounds.csv") {
        without_wall_times(&text)
    } else {
        text
    }
}

#[test]
fn same_seed_gives_the_pinned_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let status = Command::new("bash")
        .arg(root().join("tests/golden/make.sh"))
        .arg(env!("CARGO_BIN_EXE_iotids"))
        .arg(&run)
        .status()
        .expect("run tests/golden/make.sh");
    assert!(status.success(), "tests/golden/make.sh failed");
    let expected_dir = root().join("tests/golden/expected");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let cpu_path = expected_dir.join("cpu.txt");
    let exact = if update {
        std::fs::create_dir_all(&expected_dir).unwrap();
        std::fs::write(&cpu_path, cpu_signature()).unwrap();
        true
    } else {
        let made_on = std::fs::read_to_string(&cpu_path).unwrap_or_default();
        let same = made_on == cpu_signature();
        if !same {
            eprintln!(
                "golden: made on `{}`, running on `{}`: numbers compared within 1e-4, not byte for byte",
                made_on.trim(),
                cpu_signature().trim()
            );
        }
        same
    };
    let mut differ = Vec::new();
    for (made, name) in PINNED {
        let got = normalised(&run, made);
        let path = expected_dir.join(name);
        if update {
            std::fs::create_dir_all(&expected_dir).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 makes it)", path.display()));
        let same = if exact {
            got == want
        } else if name.ends_with(".json") {
            agree_within(
                &without_curve_points(&got),
                &without_curve_points(&want),
                1e-4,
            )
        } else {
            agree_within(&got, &want, 1e-4)
        };
        if !same {
            let line = got
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .map_or("length".to_string(), |i| format!("line {}", i + 1));
            differ.push(format!("{name} ({line})"));
        }
    }
    assert!(
        differ.is_empty(),
        "outputs differ from tests/golden/expected: {differ:?}"
    );
}
