//! One module per subcommand. Each takes its checked job from [`crate::job`], calls the
//! library crates, and prints or writes through [`crate::output`]; it returns the exit code.

mod audit;
mod bench;
mod compare;
mod demo;
mod describe;
mod detect;
mod evaluate;
mod extract;
mod federate;
mod flower;
mod network;
mod predict;
mod prepare;
mod synth;
mod train;

use std::process::ExitCode;

use anyhow::Result;

use crate::job::{Job, Ui};

/// Runs `job`.
pub fn run(job: Job, ui: Ui) -> Result<ExitCode> {
    match job {
        Job::Privacy {
            sampling_rate,
            noise,
            steps,
            delta,
        } => {
            let json = iotids_privacy::privacy_json(sampling_rate, steps, delta, noise)?;
            println!("{json}");
            Ok(ExitCode::SUCCESS)
        }
        Job::Describe { input, json } => describe::run(&input, json, ui),
        Job::Audit(job) => audit::run(&job, ui),
        Job::Synth(job) => synth::run(&job, ui).map(|()| ExitCode::SUCCESS),
        Job::Prepare(job) => prepare::run(&job, ui),
        Job::Train(job) => train::run(&job, ui),
        Job::Federate(job) => federate::run(&job, ui),
        Job::Certs {
            out,
            edges,
            devices,
            sans,
            days,
        } => network::certs(&out, edges, devices, &sans, days),
        Job::Deal(job) => network::deal(&job, ui),
        Job::Cloud(job) => network::cloud(&job, ui),
        Job::Edge(job) => network::edge(&job),
        Job::Device(job) => network::device(&job, ui),
        Job::DevicePool(job) => network::device_pool(&job),
        Job::FlowerDevice { flower, id, data } => flower::device(&flower, id, &data, ui),
        Job::FlowerEdge {
            flower,
            node,
            listen,
        } => flower::edge(&flower, &node, listen),
        Job::FlowerServer(job) => flower::server(&job, ui),
        Job::FlowerProtocol => {
            crate::output::print_json(&iotids_flower::protocol::vendored())?;
            Ok(ExitCode::SUCCESS)
        }
        Job::FlowerKeygen {
            out,
            format,
            comment,
        } => flower::keygen(&out, format, &comment),
        Job::Compare(job) => compare::run(&job, ui),
        Job::Evaluate(job) => evaluate::run(&job, ui),
        Job::Predict(job) => predict::run(&job, ui),
        Job::Demo(job) => demo::run(&job, ui),
        Job::Extract(job) => extract::run(&job, ui),
        Job::Detect(job) => detect::run(&job, ui),
        Job::BenchGru { config, json } => bench::gru(&config, json, ui),
        Job::BenchFederation { config, json } => bench::federation(&config, json),
        Job::BenchSecagg { config, json } => bench::secagg(&config, json),
        Job::Bench(job) => bench::ingest(&job),
        Job::BenchPackets(job) => bench::packets(&job),
    }
}
