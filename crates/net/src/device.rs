//! A device process: joins its edge, answers the statistics round over its own rows,
//! trains on its own rows when asked ([`iotids_federation::roles::Device::train`], the
//! simulation's code) and sends back only the update. Its traffic never leaves it. Under
//! secure aggregation ([`crate::secure`]) it also goes through the protocol's stages with
//! its edge, and sends its update only masked.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use iotids_data::Dataset;
use iotids_data::federated::SummaryRequest;
use iotids_federation::roles::Device;
use iotids_model::examples::Examples;
use iotids_model::gru::GruConfig;
use tokio::runtime::Runtime;

use crate::certs::{Node, TlsFiles};
use crate::client::{Upstream, is_refusal};
use crate::context::{Reader, RunContext, Windows, ingest_options, windows};
use crate::error::{Error, Result};
use crate::proto;
use crate::secure::DeviceSecAgg;
use crate::wire;

/// How a device runs.
#[derive(Debug, Clone)]
pub struct DeviceOptions {
    /// Its edge, `https://host:port`.
    pub edge: String,
    /// Its certificate (its identity) and the federation's CA.
    pub tls: TlsFiles,
    /// Largest message, bytes.
    pub message_limit: usize,
    /// Gives up after its edge has been unreachable this long.
    pub give_up: Duration,
    /// Shared by the devices of one process (`iotids device-pool`): at most so many of
    /// them train at once. None (a device process of its own): it trains when asked.
    pub slots: Option<Arc<TrainSlots>>,
}

/// A counting semaphore over local training, for many devices in one process: a device
/// asked to train waits for a slot (heartbeating, so its edge counts it late, not gone),
/// trains, and frees it. The training itself uses the process's rayon pool, so one slot
/// already keeps every core busy on a large model, and on a small one a few slots keep
/// the pool from being oversubscribed by hundreds of devices at once.
#[derive(Debug)]
pub struct TrainSlots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl TrainSlots {
    /// `slots` trainings at once (at least one).
    pub fn new(slots: usize) -> Arc<TrainSlots> {
        Arc::new(TrainSlots {
            free: Mutex::new(slots.max(1)),
            freed: Condvar::new(),
        })
    }

    /// Runs `f` once a slot is free, holding it meanwhile.
    pub fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        {
            let mut free = self
                .free
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            while *free == 0 {
                free = self
                    .freed
                    .wait(free)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            *free -= 1;
        }
        // Freed however `f` ends (a panic included).
        struct Release<'a>(&'a TrainSlots);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                *self
                    .0
                    .free
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) += 1;
                self.0.freed.notify_one();
            }
        }
        let _release = Release(self);
        f()
    }
}

/// What a device did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeviceReport {
    /// Summaries it answered.
    pub summaries: usize,
    /// Updates it sent, and of those the edge accepted.
    pub updates: usize,
    /// Updates the edge accepted.
    pub accepted: usize,
    /// Times it (re)joined.
    pub joins: usize,
    /// Why the run ended.
    pub finished: String,
}

/// The device's data as the run context asks for it.
pub(crate) struct Local {
    pub(crate) id: usize,
    pub(crate) read: Reader,
    /// Read for the statistics round: (digest of the ingest spec and split, table, the
    /// rows it trains on).
    pub(crate) raw: Option<(String, Dataset, Vec<usize>)>,
    /// Ready to train: (context digest, prepared).
    pub(crate) ready: Option<(String, Prepared)>,
}

pub(crate) struct Prepared {
    pub(crate) windows: Windows,
    /// The windows it trains on (all labelled ones, unless it validates).
    pub(crate) train: Vec<usize>,
    /// The windows it scores each round's model on (None: the cloud validates).
    pub(crate) validation: Option<Vec<usize>>,
    pub(crate) class_weights: Vec<f64>,
    pub(crate) network: GruConfig,
}

impl Prepared {
    /// The labelled windows of `rows`.
    fn examples<'a>(&'a self, rows: &'a [usize]) -> Examples<'a> {
        Examples {
            sequences: &self.windows.sequences,
            labels: &self.windows.labels,
            rows,
        }
    }

    /// Device `id` training on its training windows (and scoring its validation ones).
    pub(crate) fn device(&self, id: usize) -> Device<'_> {
        let device = Device::new(
            id,
            &self.network,
            &self.class_weights,
            self.examples(&self.train),
        );
        match &self.validation {
            Some(rows) => device.with_validation(self.examples(rows)),
            None => device,
        }
    }

    /// Its validation windows (None: the cloud validates).
    pub(crate) fn validation_examples(&self) -> Option<Examples<'_>> {
        self.validation.as_deref().map(|rows| self.examples(rows))
    }

    /// Every labelled window, training and validation alike.
    pub(crate) fn all_examples(&self) -> Examples<'_> {
        self.examples(&self.windows.rows)
    }
}

impl Local {
    /// Its table as the statistics round reads it, and the rows it trains on (all of
    /// them unless it validates): what its summaries cover. Read and cut once a run.
    pub(crate) fn raw(&mut self, ctx: &RunContext) -> Result<(&Dataset, &[usize])> {
        let key = crate::context::digest(
            &serde_json::to_vec(&(&ctx.ingest, &ctx.validation)).unwrap_or_default(),
        );
        let held = match self.raw.take() {
            Some(held) if held.0 == key => held,
            _ => {
                let ds =
                    (self.read)(&ingest_options(&ctx.ingest)).map_err(|reason| Error::Peer {
                        peer: format!("device-{}'s data", self.id),
                        reason,
                    })?;
                let (train, _) = ctx.device_rows(&ds)?;
                (key, ds, train)
            }
        };
        let (_, ds, train) = self.raw.insert(held);
        Ok((ds, train))
    }

    pub(crate) fn prepared(&mut self, digest: &str, ctx: &RunContext) -> Result<&Prepared> {
        let held = match self.ready.take() {
            Some((d, p)) if d == digest => (d, p),
            _ => {
                let (Some(pipeline), Some(network)) = (&ctx.pipeline, &ctx.network) else {
                    return Err(Error::Peer {
                        peer: "the edge".into(),
                        reason: "asked to train before the run's pipeline was agreed".into(),
                    });
                };
                // Read with the pipeline's column kinds, as `predict` reads a file.
                let ds = (self.read)(&iotids_model::detect::ingest_options(pipeline, 0, false))
                    .map_err(|reason| Error::Peer {
                        peer: format!("device-{}'s data", self.id),
                        reason,
                    })?;
                let windows = windows(&ds, pipeline, ctx.window, ctx.window_by)?;
                let (train, validation) = match ctx.validation {
                    Some(_) => {
                        let (train, validation) = ctx.device_rows(&ds)?;
                        (
                            windows.labelled(&train),
                            Some(windows.labelled(&validation)),
                        )
                    }
                    None => (windows.rows.clone(), None),
                };
                // Training needs only the windows: the table read for the statistics round goes.
                self.raw = None;
                (
                    digest.to_string(),
                    Prepared {
                        windows,
                        train,
                        validation,
                        class_weights: pipeline.class_weights.clone(),
                        network: network.clone(),
                    },
                )
            }
        };
        Ok(&self.ready.insert(held).1)
    }
}

/// Runs a device until its edge says the run is over.
///
/// # Errors
///
/// Its certificate names no device, the edge refuses it, the edge stays unreachable past
/// `give_up`, or its data can't be read.
pub fn run(options: &DeviceOptions, read: Reader, runtime: &Runtime) -> Result<DeviceReport> {
    let id = match crate::tls::own_node(&options.tls)? {
        Node::Device(d) => d,
        other => {
            return Err(Error::tls(
                options.tls.cert.display().to_string(),
                format!("names {other}, not a device"),
            ));
        }
    };
    // The channel spawns its connection task: make it inside the runtime.
    let mut up = runtime.block_on(async {
        Upstream::new(
            &options.edge,
            &options.tls,
            options.message_limit,
            options.give_up,
        )
    })?;
    let mut local = Local {
        id,
        read,
        raw: None,
        ready: None,
    };
    let mut report = DeviceReport::default();
    let mut ctx: Option<(String, Arc<RunContext>)> = None;
    let mut secagg = DeviceSecAgg::new(id);
    loop {
        let digest = ctx.as_ref().map_or(String::new(), |(d, _)| d.clone());
        let joined = runtime.block_on(up.join(&digest))?;
        report.joins += 1;
        tracing::info!(edge = %options.edge, run = %joined.run, "device-{id} joined");
        loop {
            let digest = ctx.as_ref().map_or(String::new(), |(d, _)| d.clone());
            let task = match runtime.block_on(up.pull(&digest)) {
                Ok(t) => t,
                Err(s) if is_refusal(&s) => {
                    return Err(Error::Peer {
                        peer: options.edge.clone(),
                        reason: format!("refused us: {}", s.message()),
                    });
                }
                Err(s) => {
                    tracing::info!(edge = %options.edge, status = %s.message(), "lost the edge; rejoining");
                    break;
                }
            };
            if !task.context.is_empty() {
                let c: RunContext =
                    serde_json::from_slice(&task.context).map_err(|e| Error::Peer {
                        peer: options.edge.clone(),
                        reason: format!("sent a run context that is not valid JSON ({e})"),
                    })?;
                ctx = Some((task.context_digest.clone(), Arc::new(c)));
            }
            let training = matches!(task.kind, Some(proto::task::Kind::Train(_)));
            let stage = task
                .kind
                .as_ref()
                .and_then(|k| secagg.answer_stage(&task.id, k));
            let answer = match (task.kind, stage) {
                (None | Some(proto::task::Kind::Idle(_)), _) => continue,
                (Some(proto::task::Kind::Finish(f)), _) => {
                    report.finished = f.reason;
                    return Ok(report);
                }
                // A secure-aggregation stage needs neither data nor training.
                (_, Some(Ok(k))) => k,
                (_, Some(Err(reason))) => {
                    tracing::error!(%reason, task = %task.id, "refused a secure-aggregation stage");
                    proto::answer::Kind::Failure(proto::Failure {
                        reason: format!("device-{id}: {reason}"),
                    })
                }
                (Some(kind), None) => {
                    let Some((digest, c)) = ctx.clone() else {
                        return Err(Error::Peer {
                            peer: options.edge.clone(),
                            reason: "sent a task without the run context".into(),
                        });
                    };
                    let work = || -> Result<proto::answer::Kind> {
                        Ok(match kind {
                            proto::task::Kind::Summarize(s) => {
                                secagg.forget();
                                let request: SummaryRequest = serde_json::from_slice(&s.request)
                                    .map_err(|e| Error::Peer {
                                        peer: options.edge.clone(),
                                        reason: format!(
                                            "sent a summary request that is not valid JSON ({e})"
                                        ),
                                    })?;
                                // Only the rows it trains on: a fitted transform sees no
                                // validation row.
                                let (ds, train) = local.raw(&c)?;
                                let summary = request.answer(ds, train)?;
                                report.summaries += 1;
                                proto::answer::Kind::Summary(proto::SummaryAnswer {
                                    summary: serde_json::to_vec(&summary).unwrap_or_default(),
                                    device_rows: [(id as u32, summary.rows())].into(),
                                    categorical: Vec::new(),
                                })
                            }
                            proto::task::Kind::Train(t) => {
                                let model = wire::model_from_wire(t.model.unwrap_or_default())
                                    .map_err(|reason| Error::Peer {
                                        peer: options.edge.clone(),
                                        reason: format!("sent a bad model: {reason}"),
                                    })?;
                                let refuse = |reason: String| Error::Peer {
                                    peer: options.edge.clone(),
                                    reason,
                                };
                                // Under secure aggregation the update leaves only masked:
                                // the turn and the inbox are checked before training.
                                let inbox = if !t.secagg_inbox.is_empty() {
                                    Some(secagg.inbox(&task.id, &t.secagg_inbox).map_err(refuse)?)
                                } else if model.plan.secure.is_some() {
                                    return Err(refuse(
                                        "asked for a plain update under a plan with secure aggregation (no inbox)".into(),
                                    ));
                                } else {
                                    secagg.forget();
                                    None
                                };
                                let device = local.prepared(&digest, &c)?.device(id);
                                // Heartbeats while it trains, so the edge knows it is late,
                                // not gone.
                                let beat = {
                                    let mut up = up.clone();
                                    let task = task.id.clone();
                                    let every =
                                        Duration::from_secs_f64(joined.heartbeat_seconds.max(0.1));
                                    runtime.spawn(async move {
                                        loop {
                                            tokio::time::sleep(every).await;
                                            up.heartbeat(&task).await;
                                        }
                                    })
                                };
                                let update = match &options.slots {
                                    Some(slots) => slots.run(|| device.train(&model)),
                                    None => device.train(&model),
                                };
                                beat.abort();
                                let update = update?;
                                report.updates += 1;
                                match inbox {
                                    Some(inbox) => secagg
                                        .mask(&task.id, &inbox, &model, &update)
                                        .map_err(refuse)?,
                                    None => proto::answer::Kind::DeviceUpdate(
                                        wire::device_update_to_wire(&update),
                                    ),
                                }
                            }
                            proto::task::Kind::Idle(_) | proto::task::Kind::Finish(_) => {
                                return Err(Error::Peer {
                                    peer: options.edge.clone(),
                                    reason: "sent a task that needs no answer".into(),
                                });
                            }
                            proto::task::Kind::SecaggSetup(_)
                            | proto::task::Kind::SecaggShareKeys(_)
                            | proto::task::Kind::SecaggUnmask(_) => {
                                return Err(Error::Peer {
                                    peer: options.edge.clone(),
                                    reason: "sent a secure-aggregation stage out of place".into(),
                                });
                            }
                        })
                    };
                    match work() {
                        Ok(k) => k,
                        Err(e) => {
                            // The edge hears why and counts this device failed for the task.
                            tracing::error!(error = %e, task = %task.id, "could not do the task");
                            proto::answer::Kind::Failure(proto::Failure {
                                reason: e.to_string(),
                            })
                        }
                    }
                }
            };
            let answer = proto::Answer {
                task: task.id.clone(),
                kind: Some(answer),
            };
            match runtime.block_on(up.push(answer)) {
                Ok(ack) if ack.accepted => {
                    if training {
                        report.accepted += 1;
                    }
                }
                Ok(ack) => {
                    tracing::warn!(edge = %options.edge, reason = %ack.reason, "the edge rejected our answer")
                }
                Err(s) if is_refusal(&s) => {
                    return Err(Error::Peer {
                        peer: options.edge.clone(),
                        reason: format!("refused us: {}", s.message()),
                    });
                }
                Err(s) => {
                    tracing::info!(edge = %options.edge, status = %s.message(), "could not deliver our answer; rejoining");
                    break;
                }
            }
        }
    }
}
