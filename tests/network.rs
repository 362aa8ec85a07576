//! The federation across machines, end to end: a cloud, edges and devices as separate
//! `iotids` processes on 127.0.0.1 (ports chosen free by the OS: every node listens on
//! port 0 and says where), mutual TLS with certificates made for the test, and the faults
//! of issue 14: devices and edges killed mid-round, a cloud restarted from its checkpoint,
//! a device with a foreign certificate and one assigned to another edge. Processes are
//! started and stopped by their own ids; a guard kills whatever is left on every exit.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[path = "support/run.rs"]
mod run;
use run::{iotids, json, ok, predictions};

/// The processes of a test, killed (by id) when it ends, however it ends.
struct Nodes {
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for (_, c) in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // A failed test shows what every node said.
        if std::thread::panicking() {
            let mut names: Vec<&str> = self.children.iter().map(|(n, _)| n.as_str()).collect();
            names.dedup();
            for name in names {
                let log = self.log(name);
                let tail: Vec<&str> = log.lines().rev().take(15).collect();
                eprintln!("---- {name} (last lines) ----");
                for l in tail.iter().rev() {
                    eprintln!("{l}");
                }
            }
        }
    }
}

impl Nodes {
    fn new(dir: &Path) -> Nodes {
        Nodes {
            dir: dir.to_path_buf(),
            children: Vec::new(),
        }
    }

    /// Starts `iotids ARGS` as node `name`; its output goes to NAME.out / NAME.err.
    fn start(&mut self, name: &str, args: &[String]) {
        let out = std::fs::File::create(self.dir.join(format!("{name}.out"))).unwrap();
        let err = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(format!("{name}.err")))
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_iotids"))
            .arg("--quiet")
            .args(args)
            .env("IOTIDS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("start iotids");
        self.children.push((name.to_string(), child));
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.err"))).unwrap_or_default()
    }

    fn out(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(format!("{name}.out"))).unwrap_or_default()
    }

    /// The address node `name` says it listens on.
    fn address(&self, name: &str) -> String {
        let until = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(addr) = self
                .out(name)
                .lines()
                .find_map(|l| l.split("listening on ").nth(1))
            {
                return format!("https://{}", addr.trim());
            }
            assert!(
                Instant::now() < until,
                "{name} never said where it listens:\n{}",
                self.log(name)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn child(&mut self, name: &str) -> &mut Child {
        &mut self
            .children
            .iter_mut()
            .rev()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no node {name}"))
            .1
    }

    /// Kills node `name` by its id.
    fn kill(&mut self, name: &str) {
        let c = self.child(name);
        c.kill().unwrap();
        c.wait().unwrap();
    }

    /// Waits for node `name` to exit; its exit status.
    fn wait(&mut self, name: &str, limit: Duration) -> std::process::ExitStatus {
        let until = Instant::now() + limit;
        loop {
            if let Some(s) = self.child(name).try_wait().unwrap() {
                return s;
            }
            if Instant::now() > until {
                let log = self.log(name);
                panic!("{name} still running after {limit:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

const LEARN: [&str; 10] = [
    "--window",
    "4",
    "--hidden",
    "8",
    "--split",
    "flow",
    "--no-flow-timing",
    "--seed",
    "7",
    "--quiet",
];

fn learn() -> Vec<String> {
    LEARN[..9].iter().map(|s| s.to_string()).collect()
}

/// [`learn`] with the defaults for the split (by time) and the timing features (on).
fn learn_timed() -> Vec<String> {
    learn()
        .into_iter()
        .filter(|a| !matches!(a.as_str(), "--split" | "flow" | "--no-flow-timing"))
        .collect()
}

/// Generated traffic dealt to devices, and certificates for `edges` and `devices`.
struct Federation {
    deal: PathBuf,
    certs: PathBuf,
    data: PathBuf,
    config: PathBuf,
    /// The learning flags it was dealt with, which the cloud gets too.
    learn: Vec<String>,
}

fn federation(dir: &Path, rows: u64, config: &str, edges: usize, devices: usize) -> Federation {
    federation_with(dir, rows, config, edges, devices, &learn())
}

/// [`federation`] dealt with the learning flags `learn`.
fn federation_with(
    dir: &Path,
    rows: u64,
    config: &str,
    edges: usize,
    devices: usize,
    learn: &[String],
) -> Federation {
    let data = dir.join("synth.csv");
    ok(&iotids(&[
        "synth",
        "--rows",
        &rows.to_string(),
        "--out",
        data.to_str().unwrap(),
        "--seed",
        "5",
    ]));
    let config_path = dir.join("run.toml");
    std::fs::write(&config_path, config).unwrap();
    let deal = dir.join("deal");
    let mut args = vec![
        "deal".to_string(),
        data.display().to_string(),
        "--out".into(),
        deal.display().to_string(),
        "--config".into(),
        config_path.display().to_string(),
    ];
    args.extend(learn.iter().cloned());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let text = ok(&iotids(&args));
    assert!(
        text.contains(&format!("to {devices} devices ({edges} edges)")),
        "{text}"
    );
    let certs = dir.join("certs");
    ok(&iotids(&[
        "certs",
        "--out",
        certs.to_str().unwrap(),
        "--edges",
        &edges.to_string(),
        "--devices",
        &devices.to_string(),
    ]));
    Federation {
        deal,
        certs,
        data,
        config: config_path,
        learn: learn.to_vec(),
    }
}

fn tls(certs: &Path, node: &str) -> Vec<String> {
    vec![
        "--ca".into(),
        certs.join("ca.pem").display().to_string(),
        "--cert".into(),
        certs.join(format!("{node}.pem")).display().to_string(),
        "--key".into(),
        certs.join(format!("{node}.key")).display().to_string(),
    ]
}

fn cloud_args(f: &Federation, out: &Path, listen: &str, extra: &[&str]) -> Vec<String> {
    let mut a = vec![
        "cloud".to_string(),
        "--validation".into(),
        f.deal.join("validation.csv").display().to_string(),
        "--test".into(),
        f.deal.join("test.csv").display().to_string(),
        "--out".into(),
        out.display().to_string(),
        "--config".into(),
        f.deal.join("federation.toml").display().to_string(),
        "--listen".into(),
        listen.into(),
    ];
    a.extend(tls(&f.certs, "cloud"));
    a.extend(f.learn.iter().cloned());
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn start_edge(nodes: &mut Nodes, f: &Federation, e: usize, cloud: &str, listen: &str) {
    let mut a = vec![
        "edge".to_string(),
        "--cloud".into(),
        cloud.into(),
        "--listen".into(),
        listen.into(),
    ];
    a.extend(tls(&f.certs, &format!("edge-{e}")));
    nodes.start(&format!("edge-{e}"), &a);
}

fn start_device(nodes: &mut Nodes, f: &Federation, d: usize, edge: &str) {
    let mut a = vec![
        "device".to_string(),
        "--edge".into(),
        edge.into(),
        "--data".into(),
        f.deal.join(format!("device-{d}.csv")).display().to_string(),
    ];
    a.extend(tls(&f.certs, &format!("device-{d}")));
    nodes.start(&format!("device-{d}"), &a);
}

/// Starts the cloud (more arguments: `extra`) and `edges` edges on free ports; their URLs.
fn start_cloud_and_edges(
    nodes: &mut Nodes,
    f: &Federation,
    out: &Path,
    extra: &[&str],
    edges: usize,
) -> (String, Vec<String>) {
    nodes.start("cloud", &cloud_args(f, out, "127.0.0.1:0", extra));
    let cloud = nodes.address("cloud");
    for e in 0..edges {
        start_edge(nodes, f, e, &cloud, "127.0.0.1:0");
    }
    let urls = (0..edges)
        .map(|e| nodes.address(&format!("edge-{e}")))
        .collect();
    (cloud, urls)
}

impl Nodes {
    /// Asserts that each of `names` exits successfully within 30 s.
    fn finish_ok(&mut self, names: &[&str]) {
        for n in names {
            let ok = self.wait(n, Duration::from_secs(30)).success();
            assert!(ok, "{n}: {}", self.log(n));
        }
    }
}

/// Rounds the cloud has checkpointed.
fn checkpointed(out: &Path) -> usize {
    std::fs::read_to_string(out.join("checkpoint").join("cloud.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["records"].as_array().map(Vec::len))
        .unwrap_or(0)
}

fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let until = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < until, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_networked_run_equals_federate_bit_for_bit() {
    let (fed, _) = networked_equals_federate(3, &[], &learn(), "");
    assert_eq!(fed["secure_aggregation"]["enabled"], false);
    assert_eq!(fed["privacy"], serde_json::Value::Null);
}

/// Secure aggregation's masks cancel exactly in ℤ/2⁶⁴ whatever the keys (drawn from the
/// OS on every device), so the edges unmask the very sums the simulation does.
#[test]
fn a_secure_networked_run_equals_federate_secure_bit_for_bit() {
    let (fed, _) = networked_equals_federate(2, &["--secure-aggregation"], &learn(), "");
    let secure = &fed["secure_aggregation"];
    assert_eq!(secure["enabled"], true, "{secure}");
    assert_eq!(secure["failed_edge_rounds"], 0, "{secure}");
    assert_eq!(secure["excluded_devices"], 0, "{secure}");
}

/// With the default time split and timing features, each device computes its timing
/// over its own rows, the cloud its validation file's and the test file's on their own:
/// `federate --node-tables` cuts the same tables, so the runs agree to the last bit, test score
/// included (a connection cut by the split starts afresh in the validation and test
/// files, and no window reaches back over another node's rows).
#[test]
fn a_networked_run_with_timing_features_equals_federate_bit_for_bit() {
    let (_, pipeline) = networked_equals_federate(2, &[], &learn_timed(), "");
    let inputs = pipeline["features"].to_string();
    assert!(
        inputs.contains("host.iat_us") && inputs.contains("flow.iat_us"),
        "the timing features are inputs: {inputs}"
    );
}

/// Windows by host pair (`--window-by host-pair`, not a federation's default): the
/// cloud tells the devices in the run's context, each windows its own rows by host pair,
/// the cloud its validation and test files; `federate` does the same, to the last bit.
#[test]
fn a_networked_run_by_host_pair_equals_federate_bit_for_bit() {
    let mut learn = learn_timed();
    learn.extend(["--window-by".to_string(), "host-pair".to_string()]);
    let (fed, _) = networked_equals_federate(2, &[], &learn, "");
    assert_eq!(fed["window_by"], "host-pair", "{fed}");
}

/// Validation on the devices: each device cuts its own dealt file into earlier rows it
/// trains on and later ones it scores each round's model on, the edges sum the scores
/// (here under secure aggregation, so only from the unmasked sum) and the cloud keeps the
/// round by them. `federate` cuts the same tables, so the runs agree to the last bit,
/// every round's validation score and the kept model included.
#[test]
fn devices_validating_over_the_network_equal_federate_bit_for_bit() {
    let (fed, _) = networked_equals_federate(
        3,
        &["--secure-aggregation"],
        &learn_timed(),
        "validate_on = \"devices\"\n",
    );
    assert_eq!(fed["secure_aggregation"]["enabled"], true);
    assert_eq!(fed["secure_aggregation"]["failed_edge_rounds"], 0);
    assert_eq!(
        fed["settings"]["validate_on"], "devices",
        "{}",
        fed["settings"]
    );
}

/// A networked run and `iotids federate --node-tables` with the same file, settings
/// (`extra_config` added to the federation TOML), seed, learning flags `learn` and `flags`
/// (`n_rounds` rounds of 2 edge rounds, 4 devices on 2 edges) give the same model to the
/// last bit and the same test score; the networked run's federation.json and
/// pipeline.json.
fn networked_equals_federate(
    n_rounds: usize,
    flags: &[&str],
    learn: &[String],
    extra_config: &str,
) -> (serde_json::Value, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        "devices = 4\nedges = 2\nrounds = {n_rounds}\nedge_rounds = 2\nlocal_epochs = 1\n{extra_config}"
    );
    let f = federation_with(dir.path(), 3000, &config, 2, 4, learn);

    // The simulation.
    let sim = dir.path().join("sim");
    let mut args = vec![
        "federate".to_string(),
        f.data.display().to_string(),
        "--out".into(),
        sim.display().to_string(),
        "--config".into(),
        f.config.display().to_string(),
        "--no-central".into(),
        "--node-tables".into(),
    ];
    args.extend(learn.iter().cloned());
    args.extend(flags.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    ok(&iotids(&args));

    // The same run over the network.
    let net = dir.path().join("net");
    let mut nodes = Nodes::new(dir.path());
    let (_, edges) = start_cloud_and_edges(&mut nodes, &f, &net, flags, 2);
    for d in 0..4 {
        start_device(&mut nodes, &f, d, &edges[d * 2 / 4]);
    }
    let status = nodes.wait("cloud", Duration::from_secs(600));
    assert!(status.success(), "{}", nodes.log("cloud"));
    nodes.finish_ok(&[
        "edge-0", "edge-1", "device-0", "device-1", "device-2", "device-3",
    ]);
    assert!(
        nodes.out("device-3").contains("accepted"),
        "{}",
        nodes.out("device-3")
    );

    // The same pipeline, the same rounds, the same model to the last bit.
    let (a, b) = (
        json(&sim.join("pipeline.json")),
        json(&net.join("pipeline.json")),
    );
    assert_eq!(a["selected"], b["selected"]);
    assert_eq!(a["classes"], b["classes"]);
    assert_eq!(a["features"], b["features"]);
    let pipeline = b;
    let rounds = |dir: &Path, col: &str| -> Vec<String> {
        let mut r = csv::Reader::from_path(dir.join("rounds.csv")).unwrap();
        let i = r.headers().unwrap().iter().position(|h| h == col).unwrap();
        r.records().map(|x| x.unwrap()[i].to_string()).collect()
    };
    for col in ["train_loss", "validation_macro_f1", "accepted", "sampled"] {
        assert_eq!(rounds(&sim, col), rounds(&net, col), "{col}");
    }
    // Every round was scored (on the cloud's rows, or the devices').
    assert!(
        rounds(&net, "validation_macro_f1")
            .iter()
            .all(|f| f.parse::<f64>().is_ok_and(|f| f > 0.0)),
        "{:?}",
        rounds(&net, "validation_macro_f1")
    );
    let numbered: Vec<String> = (1..=n_rounds).map(|r| r.to_string()).collect();
    assert_eq!(rounds(&net, "round"), numbered);
    // What each round cost on the wire and in wall time (shown with --nocapture).
    eprintln!(
        "{flags:?}: rounds.csv\n{}",
        std::fs::read_to_string(net.join("rounds.csv")).unwrap()
    );
    // weights.bpk files differ in burn's random parameter ids, so the models are compared
    // by what they compute: every probability of every test row, as printed (shortest
    // round-trip f32).
    let test = f.deal.join("test.csv");
    let (a, b) = (
        predictions(&test, &sim, &dir.path().join("eval-sim")),
        predictions(&test, &net, &dir.path().join("eval-net")),
    );
    assert!(a.lines().count() > 500, "{}", a.lines().count());
    assert!(
        a == b,
        "the networked model predicts otherwise than the simulated one"
    );
    let fed = json(&net.join("federation.json"));
    assert_eq!(fed["mode"], "network");
    assert_eq!(fed["rounds_completed"], n_rounds);
    assert_eq!(fed["network"]["refused_connections"], 0);
    assert!(
        fed["network"]["bytes"]["devices_to_edges"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(fed["test"]["macro_f1"].as_f64().unwrap() > 0.0);
    let sim_fed = json(&sim.join("federation.json"));
    assert_eq!(
        fed["secure_aggregation"]["enabled"],
        sim_fed["secure_aggregation"]["enabled"]
    );
    assert_eq!(sim_fed["node_tables"], true);
    // federate scores its test rows as the cloud scores the dealt test file: on their own.
    for key in ["accuracy", "macro_f1"] {
        assert_eq!(
            fed["test"][key], sim_fed["federated"]["test"][key],
            "test {key}"
        );
    }
    let report = std::fs::read_to_string(net.join("report.html")).unwrap();
    assert!(report.contains("Privacy"));
    (fed, pipeline)
}

/// The port of `https://127.0.0.1:PORT`, to restart a node where its peers look for it.
fn listen_of(url: &str) -> String {
    url.trim_start_matches("https://").to_string()
}

fn edge_outcomes(fed: &serde_json::Value, edge: u64) -> Vec<(u64, String)> {
    fed["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| {
            let round = r["round"].as_u64()?;
            r["outcomes"]
                .as_array()?
                .iter()
                .find(|o| o["peer"] == edge)
                .map(|o| (round, o["delivery"].as_str().unwrap().to_string()))
        })
        .collect()
}

#[test]
fn dead_devices_and_edges_are_waited_out_and_strangers_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    // 12 rounds: room for edge 1's restart and its devices' return after the two rounds
    // it misses. With 8, an idle machine could end the run before it came back.
    let config = "devices = 6\nedges = 2\nrounds = 12\nedge_rounds = 1\nlocal_epochs = 1\n";
    let f = federation(dir.path(), 3000, config, 2, 6);
    let out = dir.path().join("net");
    let mut nodes = Nodes::new(dir.path());
    // Edges wait 4 s for their devices, the cloud 12 s for its edges.
    let (cloud, edges) = start_cloud_and_edges(
        &mut nodes,
        &f,
        &out,
        &["--deadline", "4", "--edge-deadline", "12"],
        2,
    );
    for d in 0..6 {
        start_device(&mut nodes, &f, d, &edges[d * 2 / 6]);
    }

    // Device 1 vanishes after round 1: from then on every round of its edge waits out the
    // deadline for it and counts it failed. (Killed before the stranger checks below,
    // which take a while, so the rounds after it are not already over.)
    wait_for("round 1", Duration::from_secs(300), || {
        checkpointed(&out) >= 1
    });
    nodes.kill("device-1");

    // Edge 1 crashes; the cloud goes on without it; it comes back where its devices look.
    // (Also killed before the stranger checks, which take a while under load: killed
    // after them, the last round could be over before it, leaving no round to miss.)
    wait_for("round 3", Duration::from_secs(300), || {
        checkpointed(&out) >= 3
    });
    nodes.kill("edge-1");
    // It may have answered the round under way before it died: the round after that
    // one certainly ran without it.
    let before = checkpointed(&out);

    // A device whose certificate another CA signed, and one assigned to the other edge.
    let other = dir.path().join("other-ca");
    ok(&iotids(&[
        "certs",
        "--out",
        other.to_str().unwrap(),
        "--edges",
        "1",
        "--devices",
        "1",
    ]));
    let stranger = {
        let mut a = vec![
            "device".to_string(),
            "--edge".into(),
            edges[0].clone(),
            "--data".into(),
            f.deal.join("device-0.csv").display().to_string(),
            "--give-up".into(),
            "20".into(),
        ];
        a.extend(tls(&other, "device-0"));
        // The foreign CA's own ca.pem: the device trusts nobody of this federation either.
        a[8] = f.certs.join("ca.pem").display().to_string();
        a
    };
    nodes.start("stranger", &stranger);
    let mut misplaced = vec![
        "device".to_string(),
        "--edge".into(),
        edges[0].clone(),
        "--data".into(),
        f.deal.join("device-4.csv").display().to_string(),
    ];
    misplaced.extend(tls(&f.certs, "device-4"));
    nodes.start("misplaced", &misplaced);
    assert!(!nodes.wait("stranger", Duration::from_secs(60)).success());
    assert!(!nodes.wait("misplaced", Duration::from_secs(60)).success());
    let log = nodes.log("stranger");
    assert!(
        log.contains("refused us") || log.contains("certificate"),
        "{log}"
    );
    let log = nodes.log("misplaced");
    assert!(log.contains("device-4 is not assigned to edge-0"), "{log}");
    let edge_log = nodes.log("edge-0");
    assert!(
        edge_log.contains("refused connection") && edge_log.contains("peer=127.0.0.1:"),
        "{edge_log}"
    );
    assert!(edge_log.contains("TLS handshake failed"), "{edge_log}");

    wait_for("a round without edge 1", Duration::from_secs(120), || {
        checkpointed(&out) > before + 1
    });
    start_edge(&mut nodes, &f, 1, &cloud, &listen_of(&edges[1]));

    let status = nodes.wait("cloud", Duration::from_secs(600));
    assert!(status.success(), "{}", nodes.log("cloud"));
    let fed = json(&out.join("federation.json"));
    assert_eq!(fed["rounds_completed"], 12);
    let e1 = edge_outcomes(&fed, 1);
    let failed = e1.iter().find(|(_, d)| d != "accepted").map(|(r, _)| *r);
    let back = e1
        .iter()
        .rev()
        .find(|(_, d)| d == "accepted")
        .map(|(r, _)| *r);
    assert!(
        failed.is_some() && back > failed,
        "edge 1 should miss a round and come back: {e1:?}"
    );
    // The vanished device: every later round of its edge counts it failed.
    let mut r = csv::Reader::from_path(out.join("rounds.csv")).unwrap();
    let i = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "failed")
        .unwrap();
    let failed: usize = r
        .records()
        .map(|x| x.unwrap()[i].parse::<usize>().unwrap())
        .sum();
    assert!(failed >= 3, "failed devices over the run: {failed}");
    // Devices of the crashed edge rejoined it.
    for d in [3, 4, 5] {
        let name = format!("device-{d}");
        assert!(
            nodes.wait(&name, Duration::from_secs(30)).success(),
            "{}",
            nodes.log(&name)
        );
        let text = nodes.out(&name);
        assert!(
            text.contains("joined 2 time(s)") || text.contains("joined 3 time(s)"),
            "{text}"
        );
    }
    assert!(nodes.wait("edge-0", Duration::from_secs(30)).success());
    // The stranger's handshakes (it may retry while a reset hides the TLS alert) and the
    // misplaced device, each counted.
    let text = nodes.out("edge-0");
    let refused: u64 = text
        .split("refused ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(refused >= 2, "{text}");
}

#[test]
fn a_restarted_cloud_resumes_from_its_checkpoint_losing_and_repeating_no_round() {
    let dir = tempfile::tempdir().unwrap();
    let config = "devices = 4\nedges = 2\nrounds = 5\nedge_rounds = 1\nlocal_epochs = 1\n";
    let f = federation(dir.path(), 2500, config, 2, 4);
    let out = dir.path().join("net");
    let mut nodes = Nodes::new(dir.path());
    let (cloud, edges) = start_cloud_and_edges(&mut nodes, &f, &out, &[], 2);
    for d in 0..4 {
        start_device(&mut nodes, &f, d, &edges[d * 2 / 4]);
    }
    wait_for("round 2", Duration::from_secs(300), || {
        checkpointed(&out) >= 2
    });
    nodes.kill("cloud");
    let saved = checkpointed(&out);
    std::thread::sleep(Duration::from_secs(1));
    nodes.start("cloud", &cloud_args(&f, &out, &listen_of(&cloud), &[]));
    let status = nodes.wait("cloud", Duration::from_secs(600));
    assert!(status.success(), "{}", nodes.log("cloud"));
    let fed = json(&out.join("federation.json"));
    assert_eq!(fed["rounds_completed"], 5);
    assert_eq!(fed["resumed_after_round"].as_u64().unwrap() as usize, saved);
    let mut r = csv::Reader::from_path(out.join("rounds.csv")).unwrap();
    let rounds: Vec<String> = r.records().map(|x| x.unwrap()[0].to_string()).collect();
    assert_eq!(rounds, ["1", "2", "3", "4", "5"]);
    assert!(nodes.log("cloud").contains("resuming from the checkpoint"));
    nodes.finish_ok(&["edge-0", "edge-1"]);
}

#[test]
fn a_device_pool_runs_many_devices_in_one_process() {
    let dir = tempfile::tempdir().unwrap();
    let config = "devices = 4\nedges = 2\nrounds = 2\nedge_rounds = 1\nlocal_epochs = 1\npartition = \"iid\"\n";
    let f = federation(dir.path(), 2500, config, 2, 4);
    let out = dir.path().join("net");
    let mut nodes = Nodes::new(dir.path());
    let (_, edges) = start_cloud_and_edges(&mut nodes, &f, &out, &[], 2);
    let pool: Vec<String> = [
        "device-pool",
        "--deal",
        f.deal.to_str().unwrap(),
        "--certs",
        f.certs.to_str().unwrap(),
        "--devices",
        "0..4",
        "--train-slots",
        "2",
        "--edge",
        edges[0].as_str(),
        "--edge",
        edges[1].as_str(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    nodes.start("pool", &pool);
    let status = nodes.wait("cloud", Duration::from_secs(600));
    assert!(status.success(), "{}", nodes.log("cloud"));
    assert!(
        nodes.wait("pool", Duration::from_secs(60)).success(),
        "{}",
        nodes.log("pool")
    );
    let text = nodes.out("pool");
    for d in 0..4 {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("device-{d}: ")))
            .unwrap_or_else(|| panic!("no line for device-{d}:\n{text}"));
        assert!(line.contains("2 updates (2 accepted)"), "{line}");
    }
    assert!(
        text.contains("device-pool: 4 devices (0..4), 0 failed;")
            && text.contains("8 updates (8 accepted)"),
        "{text}"
    );
    let fed = json(&out.join("federation.json"));
    assert_eq!(fed["rounds_completed"], 2);
    assert_eq!(fed["network"]["refused_connections"], 0);
    assert!(
        fed["network"]["statistics_round"]["seconds"][0]
            .as_f64()
            .unwrap()
            > 0.0
    );
    let mut r = csv::Reader::from_path(out.join("rounds.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|x| x == name).unwrap();
    let (accepted, failed) = (col("accepted"), col("failed"));
    for rec in r.records() {
        let rec = rec.unwrap();
        assert_eq!(&rec[accepted], "4", "{rec:?}");
        assert_eq!(&rec[failed], "0", "{rec:?}");
    }
    nodes.finish_ok(&["edge-0", "edge-1"]);
}

#[test]
fn device_pool_flags_are_checked_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = "devices = 4\nedges = 2\nrounds = 1\npartition = \"iid\"\n";
    let f = federation(dir.path(), 1500, config, 2, 4);
    let pool = |devices: &str, edges: &[&str]| -> String {
        let mut a = vec![
            "device-pool",
            "--deal",
            f.deal.to_str().unwrap(),
            "--certs",
            f.certs.to_str().unwrap(),
            "--devices",
            devices,
        ];
        for e in edges {
            a.extend(["--edge", *e]);
        }
        let o = iotids(&a);
        assert!(!o.status.success(), "{devices} {edges:?} was accepted");
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let two = ["https://127.0.0.1:9", "https://127.0.0.1:9"];
    let err = pool("3..3", &two);
    assert!(err.contains("--devices") && err.contains("A..B"), "{err}");
    let err = pool("0..x", &two);
    assert!(err.contains("`x` is not a device id"), "{err}");
    let err = pool("2..=4", &two);
    assert!(err.contains("has 4 devices (ids 0 to 3)"), "{err}");
    let err = pool("0..4", &two[..1]);
    assert!(
        err.contains("--edge given 1 time(s)") && err.contains("has 2 edges"),
        "{err}"
    );
}

/// ε after `steps` steps at sampling rate 1 and noise multiplier `sigma`, as the
/// accountant on the command line says.
fn epsilon(sigma: f64, steps: usize) -> f64 {
    let text = ok(&iotids(&[
        "privacy",
        "--sampling-rate",
        "1",
        "--noise-multiplier",
        &sigma.to_string(),
        "--steps",
        &steps.to_string(),
        "--delta",
        "1e-5",
    ]));
    let v: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
    v["epsilon"]
        .as_f64()
        .unwrap_or_else(|| panic!("no epsilon in {text}"))
}

/// Secure aggregation and DP over the network: a device vanishes early in the run; its
/// edge's secure rounds go on with the other two (the sum of theirs unmasked, the device
/// counted failed), and the cloud stops where the privacy budget does.
#[test]
fn a_secure_round_survives_a_dead_device_and_the_cloud_stops_at_the_privacy_budget() {
    let dir = tempfile::tempdir().unwrap();
    let config = "devices = 6\nedges = 2\nrounds = 4\nedge_rounds = 1\nlocal_epochs = 1\n";
    let f = federation(dir.path(), 3000, config, 2, 6);
    // A budget that three rounds fit in, not four.
    let (three, four) = (epsilon(1.0, 3), epsilon(1.0, 4));
    assert!(three < four, "{three} {four}");
    let target = ((three + four) / 2.0).to_string();
    let out = dir.path().join("net");
    let mut nodes = Nodes::new(dir.path());
    let (_, edges) = start_cloud_and_edges(
        &mut nodes,
        &f,
        &out,
        &[
            "--secure-aggregation",
            "--dp-noise-multiplier",
            "1",
            "--dp-delta",
            "1e-5",
            "--dp-target-epsilon",
            &target,
            "--deadline",
            "4",
        ],
        2,
    );
    for d in 0..6 {
        start_device(&mut nodes, &f, d, &edges[d * 2 / 6]);
    }
    // Killed as soon as the preprocessing is agreed: in round 1 or 2 at the latest
    // (rounds take a fraction of a second), in whichever stage of the protocol; every
    // round after that runs without it.
    let agreed = || {
        std::fs::read_to_string(out.join("checkpoint").join("cloud.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|v| !v["context"]["pipeline"].is_null())
    };
    let until = Instant::now() + Duration::from_secs(300);
    while !agreed() {
        assert!(Instant::now() < until, "timed out waiting for the pipeline");
        std::thread::sleep(Duration::from_millis(10));
    }
    nodes.kill("device-1");
    let status = nodes.wait("cloud", Duration::from_secs(600));
    assert!(status.success(), "{}", nodes.log("cloud"));
    nodes.finish_ok(&["edge-0", "edge-1", "device-0", "device-2"]);

    let fed = json(&out.join("federation.json"));
    assert_eq!(fed["rounds_completed"], 3, "the budget allows three rounds");
    let privacy = &fed["privacy"];
    let spent = privacy["epsilon"].as_f64().unwrap();
    assert!(spent <= target.parse::<f64>().unwrap(), "{privacy}");
    assert!((spent - three).abs() < 1e-6 * three, "{spent} vs {three}");
    let secure = &fed["secure_aggregation"];
    assert_eq!(secure["enabled"], true, "{secure}");
    assert_eq!(secure["failed_edge_rounds"], 0, "{secure}");
    let mut r = csv::Reader::from_path(out.join("rounds.csv")).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|x| x == name).unwrap();
    let (accepted, failed) = (col("accepted"), col("failed"));
    let recs: Vec<csv::StringRecord> = r.records().map(Result::unwrap).collect();
    assert_eq!(recs.len(), 3);
    // Round 3 certainly ran without device 1: the five others' sum, device 1 failed.
    eprintln!("secure + DP, device 1 killed: {h:?}\n{recs:?}");
    assert_eq!(&recs[2][accepted], "5", "{h:?}\n{recs:?}");
    assert_eq!(&recs[2][failed], "1", "{h:?}\n{recs:?}");
    let edge0 = nodes.log("edge-0");
    assert!(!edge0.contains("secure aggregation failed"), "{edge0}");
    let report = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(
        report.contains("privacy budget"),
        "no budget line in report.html"
    );
}
