//! The `iotids` binary end to end, on files this test writes: exit codes, error
//! messages, JSON outputs, the prepare artifacts and the demo.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn iotids(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iotids"))
        .arg("--quiet")
        .args(args)
        .output()
        .expect("run iotids")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn synth(dir: &Path, rows: u64) -> PathBuf {
    let p = dir.join("synth.csv");
    let o = iotids(&[
        "synth",
        "--rows",
        &rows.to_string(),
        "--out",
        p.to_str().unwrap(),
        "--seed",
        "3",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    p
}

#[test]
fn bad_input_exits_2_with_file_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let empty = write(dir.path(), "empty.csv", "");
    let o = iotids(&["describe", empty.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("empty.csv: the file is empty"),
        "{}",
        stderr(&o)
    );

    let nolabel = write(dir.path(), "x.csv", "a,b\n1,2\n");
    let o = iotids(&["describe", nolabel.to_str().unwrap(), "--label", "y"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no label column `y`"), "{}", stderr(&o));

    let o = iotids(&["describe", dir.path().join("missing.csv").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("missing.csv"), "{}", stderr(&o));

    let o = iotids(&[
        "prepare",
        nolabel.to_str().unwrap(),
        "--label",
        "b",
        "--out",
        "x",
        "--scaler",
        "log",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--scaler log"), "{}", stderr(&o));
}

#[test]
fn describe_json_counts_rows_rejects_and_classes() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "d.csv",
        "x,proto,label\n1,tcp,a\n2,udp,a\n3\n4,tcp,b\n4,tcp,b\n,tcp,b",
    );
    let rejects = dir.path().join("rejects.csv");
    let o = iotids(&[
        "describe",
        f.to_str().unwrap(),
        "--label",
        "label",
        "--json",
        "--rejects",
        rejects.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let d: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(d["rows_read"], 6);
    assert_eq!(d["rows_rejected"], 1);
    assert_eq!(d["rows_kept"], 5);
    assert_eq!(d["duplicates"]["exact"], 1);
    assert_eq!(d["classes"][0]["name"], "a");
    assert_eq!(d["classes"][1]["count"], 3);
    // n = 5, k = 2: weight(b) = 5 / (2 * 3).
    let w = d["classes"][1]["weight"].as_f64().unwrap();
    assert!((w - 5.0 / 6.0).abs() < 1e-12);
    let x = &d["numeric"][0];
    assert_eq!(x["name"], "x");
    assert_eq!(x["count"], 5);
    assert_eq!(x["max"], 4.0);
    assert_eq!(x["min"], 0.0, "an empty field is absent (0)");
    assert_eq!(d["categorical"][0]["top"], "tcp");
    assert_eq!(d["first_rejects"][0]["line"], 4);
    let r = std::fs::read_to_string(&rejects).unwrap();
    assert!(r.starts_with("line,reason,record\n4,"), "{r}");
}

#[test]
fn audit_exit_code_gates_on_findings() {
    let dir = tempfile::tempdir().unwrap();
    let clean = write(
        dir.path(),
        "clean.csv",
        "x,label\n1,a\n2,a\n3,b\n4,b\n5,a\n6,b\n",
    );
    let o = iotids(&["audit", clean.to_str().unwrap(), "--label", "label"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
    assert!(stdout(&o).contains("no findings"));

    // `src_ip` identifies hosts; `leak` equals the label.
    let mut text = String::from("src_ip,leak,noise,label\n");
    for i in 0..400 {
        let c = if i % 3 == 0 { "attack" } else { "normal" };
        text += &format!(
            "10.0.0.{},{},{},{c}\n",
            i % 200,
            if c == "attack" { 7 } else { 1 },
            i
        );
    }
    let leaky = write(dir.path(), "leaky.csv", &text);
    let o = iotids(&[
        "audit",
        leaky.to_str().unwrap(),
        "--label",
        "label",
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let a: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let findings = a["findings"].as_array().unwrap();
    let has = |kind: &str, col: &str| {
        findings
            .iter()
            .any(|f| f["kind"] == kind && f["column"] == col)
    };
    assert!(has("identifier", "src_ip"), "{findings:?}");
    assert!(has("single-column-predictor", "leak"), "{findings:?}");
    assert!(!has("single-column-predictor", "noise"), "{findings:?}");
    // With src_ip dropped the identifier finding is handled; the predictor is not.
    let o = iotids(&[
        "audit",
        leaky.to_str().unwrap(),
        "--label",
        "label",
        "--drop",
        "src_ip",
        "--fail-on",
        "unmitigated",
    ]);
    assert_eq!(o.status.code(), Some(1));
    let o = iotids(&[
        "audit",
        leaky.to_str().unwrap(),
        "--label",
        "label",
        "--drop",
        "src_ip,leak",
        "--fail-on",
        "unmitigated",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));
}

#[test]
fn audit_finds_the_edge_iiotset_spelling_leak_in_generated_data() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth(dir.path(), 6000);
    let o = iotids(&["audit", f.to_str().unwrap(), "--json"]);
    assert_eq!(o.status.code(), Some(1));
    let a: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let leak = a["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "placeholder-spelling" && f["column"] == "mqtt.topic")
        .expect("mqtt.topic spelling leak");
    assert_eq!(leak["mitigated"], true);
    assert!(
        leak["detail"].as_str().unwrap().contains("(Normal)"),
        "{leak}"
    );
}

#[test]
fn prepare_writes_a_reloadable_reproducible_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let f = synth(dir.path(), 5000);
    let out1 = dir.path().join("p1");
    let out2 = dir.path().join("p2");
    for out in [&out1, &out2] {
        let o = iotids(&[
            "prepare",
            f.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--split",
            "flow",
            "--write-features",
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("Class weights"));
    }
    let p1 = std::fs::read_to_string(out1.join("pipeline.json")).unwrap();
    assert_eq!(
        p1,
        std::fs::read_to_string(out2.join("pipeline.json")).unwrap(),
        "same seed, same pipeline"
    );
    assert_eq!(
        std::fs::read(out1.join("features-test.csv")).unwrap(),
        std::fs::read(out2.join("features-test.csv")).unwrap()
    );
    let p: serde_json::Value = serde_json::from_str(&p1).unwrap();
    assert_eq!(p["format_version"], 1);
    assert_eq!(p["classes"].as_array().unwrap().len(), 15);
    assert_eq!(p["ingest"]["label"], "Attack_type");
    let prep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out1.join("prepare.json")).unwrap()).unwrap();
    let c = &prep["counts"];
    let sides = c["train"].as_u64().unwrap()
        + c["validation"].as_u64().unwrap()
        + c["test"].as_u64().unwrap();
    assert_eq!(sides + c["duplicates_removed"].as_u64().unwrap(), 5000);
    // Features are scaled with training min/max: training values lie in [0, 1].
    let train = std::fs::read_to_string(out1.join("features-train.csv")).unwrap();
    for line in train.lines().skip(1).take(500) {
        for v in line.split(',').rev().skip(1) {
            let x: f32 = v.parse().unwrap();
            assert!((0.0..=1.0).contains(&x), "{x} in {line}");
        }
    }
}

#[test]
fn demo_runs_the_data_pipeline_on_generated_data() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("demo");
    let o = iotids(&["demo", "--out", out.to_str().unwrap(), "--rows", "4000"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.contains("== describe (generated data) =="));
    assert!(s.contains("== audit =="));
    assert!(s.contains("placeholder-spelling leak"));
    for f in [
        "describe.json",
        "audit.json",
        "prepared/pipeline.json",
        "prepared/split.json",
    ] {
        assert!(out.join(f).exists(), "{f} missing");
    }
    let d: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("describe.json")).unwrap()).unwrap();
    assert_eq!(d["rows_kept"], 4000);
    assert_eq!(d["classes"].as_array().unwrap().len(), 15);
}
