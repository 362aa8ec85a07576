//! Running the `iotids` binary from the end-to-end tests (tests/network.rs,
//! tests/flower.rs).

use std::path::Path;
use std::process::{Command, Output};

/// `iotids --quiet ARGS`, run to the end.
pub fn iotids(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_iotids"))
        .arg("--quiet")
        .args(args)
        .output()
        .expect("run iotids")
}

/// Its standard output, after asserting it succeeded (showing both streams if not).
pub fn ok(o: &Output) -> String {
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    text
}

/// A JSON file.
pub fn json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// `iotids evaluate FILE --model MODEL --out OUT`: the predictions.csv it writes (every
/// probability of every row, as printed), to compare models by what they compute.
pub fn predictions(file: &Path, model: &Path, out: &Path) -> String {
    ok(&iotids(&[
        "evaluate",
        file.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    std::fs::read_to_string(out.join("predictions.csv")).unwrap()
}
