//! Prints the ε that a DP-SGD / DP-FedAvg run spends, as one line of JSON.
//!
//! ```text
//! cargo run -p iotids-privacy --example epsilon -- \
//!     --sampling-rate 0.01 --noise-multiplier 1.1 --steps 10000 --delta 1e-5
//! cargo run -p iotids-privacy --example epsilon -- \
//!     --sampling-rate 0.01 --target-epsilon 3 --steps 10000 --delta 1e-5
//! ```
//!
//! With `--target-epsilon` instead of `--noise-multiplier`, the smallest noise
//! multiplier that meets the target is computed and printed in the JSON. The flags are
//! those of `iotids privacy`; `tests/reference/check_dp.py` checks either against
//! dp-accounting.

use std::process::ExitCode;

use iotids_privacy::{Noise, privacy_json};

const USAGE: &str = "usage: epsilon --sampling-rate Q (--noise-multiplier S | --target-epsilon E) \
                     --steps T --delta D";

#[derive(Debug, Default)]
struct Args {
    sampling_rate: Option<f64>,
    noise_multiplier: Option<f64>,
    target_epsilon: Option<f64>,
    steps: Option<u64>,
    delta: Option<f64>,
}

fn parse<T: std::str::FromStr>(flag: &str, value: Option<String>) -> Result<T, String> {
    let value = value.ok_or_else(|| format!("{flag} needs a value"))?;
    value
        .parse()
        .map_err(|_| format!("{flag}: cannot parse {value:?}"))
}

fn parse_args(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args::default();
    while let Some(flag) = argv.next() {
        let (flag, inline) = match flag.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (flag, None),
        };
        let value = inline.or_else(|| argv.next());
        match flag.as_str() {
            "--sampling-rate" => args.sampling_rate = Some(parse(&flag, value)?),
            "--noise-multiplier" => args.noise_multiplier = Some(parse(&flag, value)?),
            "--target-epsilon" => args.target_epsilon = Some(parse(&flag, value)?),
            "--steps" => args.steps = Some(parse(&flag, value)?),
            "--delta" => args.delta = Some(parse(&flag, value)?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(args)
}

fn run() -> Result<String, String> {
    let args = parse_args(std::env::args().skip(1))?;
    let sampling_rate = args.sampling_rate.ok_or("--sampling-rate is required")?;
    let steps = args.steps.ok_or("--steps is required")?;
    let delta = args.delta.ok_or("--delta is required")?;
    let noise = match (args.noise_multiplier, args.target_epsilon) {
        (Some(sigma), None) => Noise::Multiplier(sigma),
        (None, Some(target)) => Noise::TargetEpsilon(target),
        _ => return Err("give exactly one of --noise-multiplier and --target-epsilon".into()),
    };
    let json = privacy_json(sampling_rate, steps, delta, noise).map_err(|e| e.to_string())?;
    Ok(json.to_string())
}

fn main() -> ExitCode {
    match run() {
        Ok(line) => {
            println!("{line}");
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            ExitCode::from(2)
        }
    }
}
