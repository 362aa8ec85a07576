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
