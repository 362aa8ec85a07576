//! An edge process: serves its devices (the ones the cloud assigns it) and is a client of
//! the cloud. On the cloud's statistics request it asks its devices and sends up their
//! merged summary; on a model it runs its edge rounds
//! ([`iotids_federation::roles::Edge::round`], the simulation's code) over its link to
//! its devices and sends up the edge model and its devices' accounting.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use iotids_data::federated::Summary;
use iotids_federation::aggregate::Aggregation;
use iotids_federation::roles::Edge;
use tokio::runtime::Runtime;

use crate::certs::{Node, TlsFiles};
use crate::client::{Upstream, is_refusal};
use crate::error::{Error, Result};
use crate::hub::{Hub, Policy, Service, Tier};
use crate::link::DeviceLink;
use crate::proto;
use crate::wire;

/// How an edge runs.
#[derive(Debug, Clone)]
pub struct EdgeOptions {
    /// Where it serves its devices.
    pub listen: SocketAddr,
    /// The cloud, `https://host:port`.
    pub cloud: String,
    /// Its certificate and the federation's CA.
    pub tls: TlsFiles,
    /// Largest message, bytes.
    pub message_limit: usize,
    /// Gives up after the cloud has been unreachable this long.
    pub give_up: Duration,
}

/// What an edge did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EdgeReport {
    /// Cloud rounds it answered.
    pub rounds: usize,
    /// Connections and requests it refused.
    pub refused: u64,
    /// Device answers it rejected.
    pub rejected: u64,
    /// Why the run ended.
    pub finished: String,
}

/// Serves `hub` on `listener` with mutual TLS until the runtime stops.
pub fn serve(
    runtime: &tokio::runtime::Handle,
    listener: std::net::TcpListener,
    tls: Arc<rustls::ServerConfig>,
    hub: Arc<Hub>,
    refused: Arc<AtomicU64>,
    limit: usize,
) -> Result<()> {
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Transport(e.to_string()))?;
    let _guard = runtime.enter();
    let listener =
        tokio::net::TcpListener::from_std(listener).map_err(|e| Error::Transport(e.to_string()))?;
    let incoming = crate::tls::incoming(listener, tls, refused);
    let svc = proto::aggregator_server::AggregatorServer::new(Service::new(hub))
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit);
    runtime.spawn(async move {
        if let Err(e) = tonic::transport::Server::builder()
            .http2_keepalive_interval(Some(Duration::from_secs(5)))
            .http2_keepalive_timeout(Some(Duration::from_secs(10)))
            .add_service(svc)
            .serve_with_incoming(incoming)
            .await
        {
            tracing::error!(error = %e, "server stopped");
        }
    });
    Ok(())
}

/// Binds `addr` (port 0: a free port), returning the listener and the address bound.
///
/// # Errors
///
/// The address can't be bound.
pub fn bind(addr: SocketAddr) -> Result<(std::net::TcpListener, SocketAddr)> {
    let l = std::net::TcpListener::bind(addr).map_err(|e| {
        Error::config(
            "listen",
            addr,
            format!("an address this host can bind ({e})"),
        )
    })?;
    let bound = l
        .local_addr()
        .map_err(|e| Error::Transport(e.to_string()))?;
    Ok((l, bound))
}

/// Runs an edge until the cloud says the run is over. `listener`: see [`bind`].
///
/// # Errors
///
/// Its certificate names no edge, the cloud refuses it or stays unreachable past
/// `give_up`.
pub fn run(
    options: &EdgeOptions,
    listener: std::net::TcpListener,
    runtime: &Runtime,
) -> Result<EdgeReport> {
    let id = match crate::tls::own_node(&options.tls)? {
        Node::Edge(e) => e,
        other => {
            return Err(Error::tls(
                options.tls.cert.display().to_string(),
                format!("names {other}, not an edge"),
            ));
        }
    };
    let refused = Arc::new(AtomicU64::new(0));
    // The channel spawns its connection task: make it inside the runtime.
    let mut up = runtime.block_on(async {
        Upstream::new(
            &options.cloud,
            &options.tls,
            options.message_limit,
            options.give_up,
        )
    })?;
    let mut hub: Option<Arc<Hub>> = None;
    let mut listener = Some(listener);
    let mut report = EdgeReport::default();
    let mut digest = String::new();
    loop {
        let joined = runtime.block_on(up.join(&digest))?;
        tracing::info!(cloud = %options.cloud, run = %joined.run, roster = ?joined.roster, "edge-{id} joined");
        // The devices' hub and server start once the cloud has said who the devices are.
        let devices = match &hub {
            Some(h) => h.clone(),
            None => {
                let h = Hub::new(
                    Tier::Devices { edge: id },
                    joined.run.clone(),
                    refused.clone(),
                );
                let l = listener.take().ok_or_else(|| {
                    Error::Transport("the devices' listener was already served".into())
                })?;
                serve(
                    runtime.handle(),
                    l,
                    crate::tls::server_config(&options.tls)?,
                    h.clone(),
                    refused.clone(),
                    options.message_limit,
                )?;
                hub = Some(h.clone());
                h
            }
        };
        devices.set_roster(joined.roster.iter().map(|&d| d as usize));
        loop {
            let task = match runtime.block_on(up.pull(&digest)) {
                Ok(t) => t,
                Err(s) if is_refusal(&s) => {
                    return Err(Error::Peer {
                        peer: options.cloud.clone(),
                        reason: format!("refused us: {}", s.message()),
                    });
                }
                Err(s) => {
                    tracing::info!(cloud = %options.cloud, status = %s.message(), "lost the cloud; rejoining");
                    break;
                }
            };
            if !task.context.is_empty() {
                digest = task.context_digest.clone();
                devices.set_context(digest.clone(), Arc::new(task.context.clone()));
            }
            let kind = match task.kind {
                None | Some(proto::task::Kind::Idle(_)) => continue,
                Some(proto::task::Kind::Finish(f)) => {
                    devices.finish(&f.reason);
                    // Devices long-polling hear it at once; give them a moment to.
                    std::thread::sleep(Duration::from_secs(2));
                    report.finished = f.reason;
                    report.refused = devices.refused();
                    report.rejected = devices.rejected();
                    return Ok(report);
                }
                Some(k) => k,
            };
            let beat = {
                let mut up = up.clone();
                let t = task.id.clone();
                let every = Duration::from_secs_f64(joined.heartbeat_seconds.max(0.1));
                runtime.spawn(async move {
                    loop {
                        tokio::time::sleep(every).await;
                        up.heartbeat(&t).await;
                    }
                })
            };
            let answer = match kind {
                proto::task::Kind::Summarize(s) => {
                    summarize(&devices, &task.id, s, runtime.handle())
                }
                proto::task::Kind::Train(t) => {
                    train(id, &devices, &joined.run, t, runtime).map(|u| {
                        report.rounds += 1;
                        proto::answer::Kind::EdgeUpdate(wire::edge_update_to_wire(
                            &u,
                            devices.refused(),
                        ))
                    })
                }
                proto::task::Kind::Idle(_) | proto::task::Kind::Finish(_) => {
                    unreachable!("handled above")
                }
                proto::task::Kind::SecaggSetup(_)
                | proto::task::Kind::SecaggShareKeys(_)
                | proto::task::Kind::SecaggUnmask(_) => Err(Error::Peer {
                    peer: options.cloud.clone(),
                    reason: "sent a secure-aggregation stage, which only devices answer".into(),
                }),
            };
            beat.abort();
            let answer = match answer {
                Ok(a) => a,
                Err(e) => {
                    // Not this edge's fault to die for (a device's bad data, say): the
                    // cloud hears why and counts this edge failed for the task.
                    tracing::error!(error = %e, task = %task.id, "could not answer the cloud");
                    proto::answer::Kind::Failure(proto::Failure {
                        reason: format!("edge-{id}: {e}"),
                    })
                }
            };
            let answer = proto::Answer {
                task: task.id.clone(),
                kind: Some(answer),
            };
            match runtime.block_on(up.push(answer)) {
                Ok(ack) if ack.accepted => {}
                Ok(ack) => tracing::warn!(reason = %ack.reason, "the cloud rejected our answer"),
                Err(s) if is_refusal(&s) => {
                    return Err(Error::Peer {
                        peer: options.cloud.clone(),
                        reason: format!("refused us: {}", s.message()),
                    });
                }
                Err(s) => {
                    tracing::info!(status = %s.message(), "could not deliver our answer; rejoining");
                    break;
                }
            }
        }
    }
}

/// Asks every assigned device the statistics request and merges what they answer (in
/// device order).
pub(crate) fn summarize(
    devices: &Arc<Hub>,
    task: &str,
    s: proto::Summarize,
    runtime: &tokio::runtime::Handle,
) -> Result<proto::answer::Kind> {
    let roster: Vec<usize> = devices.roster();
    let down = proto::Task {
        id: task.to_string(),
        kind: Some(proto::task::Kind::Summarize(s.clone())),
        ..proto::Task::default()
    };
    let check: crate::hub::Check = Box::new(|_, a| match &a.kind {
        Some(proto::answer::Kind::Summary(s)) if !s.categorical.is_empty() => Ok(()),
        Some(proto::answer::Kind::Summary(s)) => serde_json::from_slice::<Summary>(&s.summary)
            .map(|_| ())
            .map_err(|e| format!("a summary that is not valid JSON ({e})")),
        _ => Err("not a summary".into()),
    });
    let c = runtime.block_on(devices.exchange(
        roster.iter().map(|&d| (d, down.clone())).collect(),
        Policy::new(s.deadline_seconds, roster.len()),
        check,
    ));
    if !c.failures.is_empty() {
        return Err(Error::Peer {
            peer: "devices".into(),
            reason: c
                .failures
                .iter()
                .map(|(d, r)| format!("device-{d}: {r}"))
                .collect::<Vec<_>>()
                .join("; "),
        });
    }
    let mut summaries = Vec::new();
    let mut rows = std::collections::HashMap::new();
    for (d, a) in c.answers {
        let Some(proto::answer::Kind::Summary(s)) = a.kind else {
            continue;
        };
        let summary: Summary = serde_json::from_slice(&s.summary)
            .map_err(|e| Error::Transport(format!("device-{d}'s summary: {e}")))?;
        rows.insert(d as u32, summary.rows());
        summaries.push(summary);
    }
    let merged = match crate::context::merge_all(summaries)? {
        Ok(m) => m,
        Err(categorical) => {
            return Ok(proto::answer::Kind::Summary(proto::SummaryAnswer {
                summary: Vec::new(),
                device_rows: rows,
                categorical,
            }));
        }
    };
    let Some(merged) = merged else {
        return Err(Error::Peer {
            peer: "devices".into(),
            reason: "none of the assigned devices answered the statistics request".into(),
        });
    };
    Ok(proto::answer::Kind::Summary(proto::SummaryAnswer {
        summary: serde_json::to_vec(&merged).unwrap_or_default(),
        device_rows: rows,
        categorical: Vec::new(),
    }))
}

/// Runs the edge rounds of one cloud round with the devices that answer.
fn train(
    id: usize,
    devices: &Arc<Hub>,
    run: &str,
    t: proto::Train,
    runtime: &Runtime,
) -> Result<iotids_federation::message::EdgeUpdate> {
    let model =
        wire::model_from_wire(t.model.unwrap_or_default()).map_err(|reason| Error::Peer {
            peer: "the cloud".into(),
            reason: format!("sent a bad model: {reason}"),
        })?;
    let rule: Aggregation = t.aggregation.parse().map_err(|_| Error::Peer {
        peer: "the cloud".into(),
        reason: format!("named an unknown aggregation rule `{}`", t.aggregation),
    })?;
    // The noise an edge adds under differential privacy comes from the operating system's
    // generator (`Edge`'s default): a seeded one would let anyone who knows the seed
    // subtract it.
    let edge = Edge::new(id, t.members.iter().map(|&d| d as usize).collect(), rule);
    let mut link = DeviceLink::new(
        devices.clone(),
        runtime.handle().clone(),
        run.to_string(),
        t.device_deadline,
    );
    Ok(edge.round(&model, &mut link)?)
}
