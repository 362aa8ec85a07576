//! iotids on Flower without Flower: the nodes' Flower handlers ([`FlowerDevice`],
//! [`FlowerEdge`]) driven in process by a test that plays the ServerApp and a stock FedAvgM
//! in iotids' own arithmetic, with the server steps (`iotids flower server`) as the app
//! calls them. The run must equal `federate` with the same settings to the last bit: then
//! whatever a real Flower run (examples/flower/run.sh, in CI) changes comes from Flower's
//! own arithmetic (numpy's float64 averaging), not from how iotids answers its messages.
//! Edges serve real `iotids device` processes over mutual TLS on 127.0.0.1, stopped by
//! their ids however the test ends.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use iotids_federation::FederationConfig;
use iotids_federation::aggregate::{Aggregation, Update};
use iotids_federation::strategy::ServerOptimizer;
use iotids_flower::{ArraySpec, Config, ConfigValue, Handler, Parameters};
use iotids_net::flower::{ANSWER, CONTEXT, FlowerDevice, FlowerEdge, REQUEST, SERVER_ROUND, TASK};

#[path = "support/run.rs"]
mod run;
use run::{iotids, json, ok, predictions};

/// The JSON line a server step prints last.
fn step(args: &[&str]) -> serde_json::Value {
    let text = ok(&iotids(args));
    serde_json::from_str(text.lines().last().unwrap()).unwrap()
}

const LEARN: [&str; 9] = [
    "--window",
    "4",
    "--hidden",
    "8",
    "--split",
    "flow",
    "--no-flow-timing",
    "--seed",
    "7",
];

/// Device processes, killed by id when the test ends.
struct Devices(Vec<Child>);

impl Drop for Devices {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn bytes_of(v: &serde_json::Value) -> Vec<u8> {
    std::fs::read(v.as_str().unwrap()).unwrap()
}

fn rounds(dir: &Path, col: &str) -> Vec<String> {
    let mut r = csv::Reader::from_path(dir.join("rounds.csv")).unwrap();
    let i = r.headers().unwrap().iter().position(|h| h == col).unwrap();
    r.records().map(|x| x.unwrap()[i].to_string()).collect()
}

fn flower_equals_federate(config: &str, edges: usize, devices: usize, n_rounds: usize) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = d.join("synth.csv");
    ok(&iotids(&[
        "synth",
        "--rows",
        "3000",
        "--out",
        data.to_str().unwrap(),
        "--seed",
        "5",
    ]));
    let settings = d.join("run.toml");
    std::fs::write(&settings, config).unwrap();
    let deal = d.join("deal");
    let mut args = vec![
        "deal",
        data.to_str().unwrap(),
        "--out",
        deal.to_str().unwrap(),
        "--config",
        settings.to_str().unwrap(),
    ];
    args.extend(LEARN);
    ok(&iotids(&args));

    // The simulation.
    let sim = d.join("sim");
    let mut args = vec![
        "federate",
        data.to_str().unwrap(),
        "--out",
        sim.to_str().unwrap(),
        "--config",
        settings.to_str().unwrap(),
        "--no-central",
    ];
    args.extend(LEARN);
    ok(&iotids(&args));

    // The nodes.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut procs = Devices(Vec::new());
    let mut nodes: Vec<Box<dyn Handler>> = Vec::new();
    if edges == 0 {
        for dev in 0..devices {
            let path = deal.join(format!("device-{dev}.csv"));
            nodes.push(Box::new(FlowerDevice::new(
                dev,
                Box::new(move |o| iotids_data::read_csv(&path, o).map_err(|e| e.to_string())),
            )));
        }
    } else {
        let certs = d.join("certs");
        ok(&iotids(&[
            "certs",
            "--out",
            certs.to_str().unwrap(),
            "--edges",
            &edges.to_string(),
            "--devices",
            &devices.to_string(),
        ]));
        let tls = |node: &str| iotids_net::certs::TlsFiles {
            ca: certs.join("ca.pem"),
            cert: certs.join(format!("{node}.pem")),
            key: certs.join(format!("{node}.key")),
        };
        let mut urls = Vec::new();
        for e in 0..edges {
            let (listener, addr) = iotids_net::edge::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            urls.push(format!("https://{addr}"));
            let server = iotids_net::tls::server_config(&tls(&format!("edge-{e}"))).unwrap();
            let handle = rt.handle().clone();
            let refused = Arc::new(AtomicU64::new(0));
            let serve = {
                let (handle, refused) = (handle.clone(), refused.clone());
                Box::new(move |hub| {
                    iotids_net::edge::serve(&handle, listener, server, hub, refused, 64 << 20)
                })
            };
            nodes.push(Box::new(FlowerEdge::new(e, handle, refused, serve)));
        }
        for dev in 0..devices {
            let node = format!("device-{dev}");
            let t = tls(&node);
            let log = std::fs::File::create(d.join(format!("{node}.log"))).unwrap();
            procs.0.push(
                Command::new(env!("CARGO_BIN_EXE_iotids"))
                    .args(["--quiet", "device", "--edge", &urls[dev * edges / devices]])
                    .args(["--data", deal.join(format!("{node}.csv")).to_str().unwrap()])
                    .args(["--ca", t.ca.to_str().unwrap()])
                    .args(["--cert", t.cert.to_str().unwrap()])
                    .args(["--key", t.key.to_str().unwrap()])
                    .stdout(Stdio::null())
                    .stderr(log)
                    .spawn()
                    .unwrap(),
            );
        }
    }

    // The ServerApp: the statistics round over query messages.
    let out = d.join("flower");
    let validation = deal.join("validation.csv");
    let test = deal.join("test.csv");
    let mut server: Vec<&str> = vec![
        "--validation",
        validation.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--config",
        settings.to_str().unwrap(),
        "--test",
        test.to_str().unwrap(),
    ];
    if edges == 0 {
        server.push("--flat");
    }
    server.extend(LEARN);
    let call = |name: &str, extra: &[&str]| {
        let mut a = vec!["flower", "server", name];
        a.extend(extra);
        a.extend(server.iter().copied());
        step(&a)
    };
    let mut next = call("begin", &[]);
    assert_eq!(next["nodes"], if edges == 0 { devices } else { edges });
    let mut k = 0;
    while next["next"] == "query" {
        k += 1;
        let config = Config::from([
            (
                CONTEXT.into(),
                ConfigValue::Bytes(bytes_of(&next["context"])),
            ),
            (TASK.into(), ConfigValue::Bytes(bytes_of(&next["task"]))),
            (
                REQUEST.into(),
                ConfigValue::Bytes(bytes_of(&next["request"])),
            ),
        ]);
        let mut files = Vec::new();
        for (i, n) in nodes.iter_mut().enumerate() {
            let (reply, _) = n.query(&config).unwrap();
            let Some(ConfigValue::Bytes(b)) = reply.get(ANSWER) else {
                panic!("no answer in {reply:?}")
            };
            let p = d.join(format!("answer-{k}-{i}.json"));
            std::fs::write(&p, b).unwrap();
            files.push(p.display().to_string());
        }
        let files: Vec<&str> = files.iter().map(String::as_str).collect();
        next = call("absorb", &files);
    }
    assert_eq!(next["next"], "train");

    // The rounds: FedAvgM over the nodes' replies weighted by num-examples, in iotids'
    // arithmetic (the edge-round mean of `federate`, then its server step).
    let cfg = FederationConfig::from_toml_file(&settings).unwrap();
    let (mut global, _, _) =
        iotids_flower::records::npy_decode(&bytes_of(&next["initial"])).unwrap();
    let mut opt = ServerOptimizer::new(cfg.strategy, cfg.server());
    let mut tested = 0;
    for r in 1..=n_rounds {
        let config = Config::from([
            (
                CONTEXT.into(),
                ConfigValue::Bytes(bytes_of(&next["context"])),
            ),
            (TASK.into(), ConfigValue::Bytes(bytes_of(&next["task"]))),
            (SERVER_ROUND.into(), ConfigValue::Int(r as i64)),
        ]);
        let params = Parameters {
            values: global.clone(),
            arrays: vec![ArraySpec {
                name: "gru".into(),
                shape: vec![global.len() as i64],
                dtype: "float32".into(),
            }],
        };
        let replies: Vec<(Parameters, u64)> = nodes
            .iter_mut()
            .map(|n| {
                let (p, examples, metrics) = n.train(&params, &config).unwrap();
                assert!(metrics.contains_key("train_loss"), "{metrics:?}");
                (p, examples)
            })
            .collect();
        let updates: Vec<Update<'_>> = replies
            .iter()
            .map(|(p, n)| Update {
                weights: &p.values,
                samples: *n as f64,
            })
            .collect();
        let mean = Aggregation::Mean.aggregate(&updates).unwrap();
        global = opt.step(&global, &mean);
        let npy = d.join(format!("round-{r}.npy"));
        std::fs::write(
            &npy,
            iotids_flower::records::npy_encode(&global, &[global.len() as i64], "float32").unwrap(),
        )
        .unwrap();
        let s = call(
            "score",
            &[
                "--round",
                &r.to_string(),
                "--weights",
                npy.to_str().unwrap(),
            ],
        );
        assert_eq!(s["round"], r);
        tested += usize::from(s["macro_f1"].is_number());
    }
    assert_eq!(tested, n_rounds);
    let done = call("finish", &[]);
    assert_eq!(done["rounds_completed"], n_rounds);

    // The same pipeline, the same rounds' scores, the same kept model to the last bit.
    let (a, b) = (
        json(&sim.join("pipeline.json")),
        json(&out.join("pipeline.json")),
    );
    assert_eq!(a["selected"], b["selected"]);
    assert_eq!(a["features"], b["features"]);
    assert_eq!(a["classes"], b["classes"]);
    assert_eq!(
        rounds(&sim, "validation_macro_f1"),
        rounds(&out, "validation_macro_f1")
    );
    assert_eq!(
        rounds(&sim, "validation_loss"),
        rounds(&out, "validation_loss")
    );
    let (fs, ff) = (
        json(&sim.join("federation.json")),
        json(&out.join("federation.json")),
    );
    assert_eq!(ff["mode"], "flower");
    assert_eq!(fs["best_round"], ff["best_round"]);
    assert_eq!(ff["best_round"], done["best_round"]);
    let (a, b) = (
        predictions(&test, &sim, &d.join("eval-sim")),
        predictions(&test, &out, &d.join("eval-flower")),
    );
    assert!(a.lines().count() > 300, "{}", a.lines().count());
    assert!(
        a == b,
        "the Flower-path model predicts otherwise than federate's"
    );

    // A device's answer to an `evaluate` message scores the model on its own rows as
    // `iotids evaluate` scores its file.
    if edges == 0 {
        let best = done["best_round"].as_u64().unwrap();
        let (kept, _, _) = iotids_flower::records::npy_decode(
            &std::fs::read(
                out.join("flower")
                    .join("rounds")
                    .join(format!("{best}.npy")),
            )
            .unwrap(),
        )
        .unwrap();
        let params = Parameters {
            arrays: vec![ArraySpec {
                name: "gru".into(),
                shape: vec![kept.len() as i64],
                dtype: "float32".into(),
            }],
            values: kept,
        };
        let config = Config::from([
            (
                CONTEXT.into(),
                ConfigValue::Bytes(bytes_of(&next["context"])),
            ),
            (TASK.into(), ConfigValue::Bytes(bytes_of(&next["task"]))),
        ]);
        let (loss, n, metrics) = nodes[0].evaluate(&params, &config).unwrap();
        assert!(loss.is_finite() && loss > 0.0, "{loss}");
        assert!(n > 0);
        let o = d.join("eval-device-0");
        ok(&iotids(&[
            "evaluate",
            deal.join("device-0.csv").to_str().unwrap(),
            "--model",
            out.to_str().unwrap(),
            "--out",
            o.to_str().unwrap(),
        ]));
        let m = json(&o.join("metrics.json"));
        assert!(
            (metrics["accuracy"] - m["accuracy"].as_f64().unwrap()).abs() < 1e-12,
            "{metrics:?} {m}"
        );
        assert!(
            (metrics["macro_f1"] - m["macro_f1"].as_f64().unwrap()).abs() < 1e-12,
            "{metrics:?} {m}"
        );
    }
}

#[test]
fn flat_flower_rounds_through_the_device_handlers_equal_federate() {
    flower_equals_federate(
        "devices = 3\nedges = 1\nrounds = 3\nedge_rounds = 1\nnormalized_averaging = false\n",
        0,
        3,
        3,
    );
}

#[test]
fn hierarchical_flower_rounds_through_the_edge_handlers_equal_federate() {
    flower_equals_federate(
        "devices = 4\nedges = 2\nrounds = 3\nedge_rounds = 2\n",
        2,
        4,
        3,
    );
}

#[test]
fn hierarchical_flower_rounds_with_secure_aggregation_at_the_edges_equal_federate() {
    flower_equals_federate(
        "devices = 4\nedges = 2\nrounds = 2\nedge_rounds = 2\nsecure_aggregation = true\n",
        2,
        4,
        2,
    );
}

#[test]
fn a_flat_run_refuses_settings_that_need_edges_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("synth.csv");
    ok(&iotids(&[
        "synth",
        "--rows",
        "500",
        "--out",
        data.to_str().unwrap(),
        "--seed",
        "5",
    ]));
    for (flags, setting) in [
        (
            vec!["--edges", "1", "--edge-rounds", "1"],
            "normalized_averaging",
        ),
        (
            vec![
                "--edges",
                "1",
                "--edge-rounds",
                "2",
                "--normalized-averaging",
                "false",
            ],
            "edge_rounds",
        ),
        (
            vec![
                "--edges",
                "1",
                "--edge-rounds",
                "1",
                "--normalized-averaging",
                "false",
                "--secure-aggregation",
            ],
            "secure_aggregation",
        ),
    ] {
        let out = dir.path().join("out");
        let mut args = vec![
            "flower",
            "server",
            "begin",
            "--flat",
            "--validation",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(flags);
        let o = iotids(&args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{setting}: accepted");
        assert!(
            err.contains(setting) && err.contains("flat"),
            "{setting}: {err}"
        );
    }
}
