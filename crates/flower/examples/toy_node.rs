//! A toy Flower SuperNode for protocol tests: its "training" adds `index` to every received
//! value, and it reports `num-examples` given on the command line, so FedAvg's result is
//! known in advance: after each round the global model grows by
//! `Σ index·examples / Σ examples`.
//!
//! Usage:
//!
//! ```text
//! toy_node --superlink 127.0.0.1:8000 --index 1 --examples 10
//!          [--heartbeat SECS] [--max-messages N]
//!          [--root-certificates CA.pem]      TLS (like flower-supernode --root-certificates);
//!                                            without it: plain HTTP (--insecure)
//!          [--auth-key KEY [--register]]     sign with a key from a file (OpenSSH, PKCS#8 or
//!                                            SEC1): pre-registered with `flwr supernode
//!                                            register KEY.pub <connection>`, so no
//!                                            RegisterNode (unless --register) and no
//!                                            UnregisterNode; without it: a fresh key that
//!                                            registers itself
//!          [--version-policy refuse|warn|skip]
//! toy_node --gen-key KEY [--key-format openssh|pkcs8|sec1] [--comment TEXT]
//!                                            write a new P-384 key to KEY and its OpenSSH
//!                                            public line to KEY.pub, then exit
//! toy_node --auth-key KEY --print-public-key print KEY's OpenSSH public line and exit
//! ```

use std::process::ExitCode;

use iotids_flower::{
    Config, FleetClient, FleetConfig, Handler, KeyFormat, Metrics, NodeKey, Parameters, SuperNode,
    VersionPolicy,
};

#[derive(Debug)]
struct Toy {
    index: f32,
    examples: u64,
}

impl Handler for Toy {
    fn train(
        &mut self,
        params: &Parameters,
        config: &Config,
    ) -> Result<(Parameters, u64, Metrics), iotids_flower::supernode::HandlerError> {
        let values = params.values.iter().map(|v| v + self.index).collect();
        let round = config.get("server-round").and_then(|v| v.as_f64());
        tracing::info!("train: {} values, round {round:?}", params.values.len());
        let metrics = Metrics::from([("node-index".to_owned(), f64::from(self.index))]);
        Ok((params.with_values(values)?, self.examples, metrics))
    }

    fn evaluate(
        &mut self,
        params: &Parameters,
        _config: &Config,
    ) -> Result<(f64, u64, Metrics), iotids_flower::supernode::HandlerError> {
        #[allow(clippy::cast_precision_loss)]
        let mean = params.values.iter().map(|&v| f64::from(v)).sum::<f64>()
            / params.values.len().max(1) as f64;
        Ok((
            mean,
            self.examples,
            Metrics::from([("mean".to_owned(), mean)]),
        ))
    }
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args: Vec<String> = std::env::args().collect();
    let superlink = arg(&args, "--superlink").unwrap_or_else(|| "127.0.0.1:8000".into());
    let parse = |name: &str, default: f64| {
        arg(&args, name).map_or(Ok(default), |v| {
            v.parse::<f64>().map_err(|e| format!("{name} {v}: {e}"))
        })
    };
    let (index, examples, heartbeat) = match (
        parse("--index", 1.0),
        parse("--examples", 10.0),
        parse("--heartbeat", 30.0),
    ) {
        (Ok(i), Ok(e), Ok(h)) => (i, e, h),
        (Err(e), ..) | (_, Err(e), _) | (.., Err(e)) => {
            eprintln!("toy_node: {e}");
            return ExitCode::from(2);
        }
    };
    let flag = |name: &str| args.iter().any(|a| a == name);
    let comment = arg(&args, "--comment").unwrap_or_else(|| "iotids-flower toy_node".into());
    if let Some(path) = arg(&args, "--gen-key") {
        let format = match arg(&args, "--key-format").map_or(Ok(KeyFormat::OpenSsh), |f| f.parse())
        {
            Ok(f) => f,
            Err(e) => {
                eprintln!("toy_node: {e}");
                return ExitCode::from(2);
            }
        };
        return match NodeKey::generate().write_files(&path, format, &comment) {
            Ok(pub_path) => {
                println!("{}", pub_path.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("toy_node: {e}");
                ExitCode::FAILURE
            }
        };
    }
    let (key, register) = match arg(&args, "--auth-key") {
        Some(path) => match NodeKey::from_file(&path) {
            Ok(k) => (k, flag("--register")),
            Err(e) => {
                eprintln!("toy_node: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => (NodeKey::generate(), true),
    };
    if flag("--print-public-key") {
        print!("{}", key.openssh_public_key(&comment));
        return ExitCode::SUCCESS;
    }
    let max_messages = arg(&args, "--max-messages").and_then(|v| v.parse().ok());
    let mut config = FleetConfig::new(superlink);
    config.heartbeat_interval = heartbeat;
    if let Some(ca) = arg(&args, "--root-certificates") {
        config = config.root_certificates_file(ca);
    }
    config.version_policy = match arg(&args, "--version-policy").as_deref() {
        None | Some("refuse") => VersionPolicy::Refuse,
        Some("warn") => VersionPolicy::Warn,
        Some("skip") => VersionPolicy::Skip,
        Some(other) => {
            eprintln!("toy_node: --version-policy {other}: want refuse, warn or skip");
            return ExitCode::from(2);
        }
    };
    let client = match FleetClient::new(config, key) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("toy_node: {e}");
            return ExitCode::FAILURE;
        }
    };
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let toy = Toy {
        index: index as f32,
        examples: examples as u64,
    };
    match SuperNode::new(client, register)
        .max_messages(max_messages)
        .run(toy)
        .await
    {
        Ok(stats) => {
            println!("toy_node done: {stats:?}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("toy_node: {e}");
            ExitCode::FAILURE
        }
    }
}
