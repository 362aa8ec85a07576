//! The client side of a link (a device toward its edge, an edge toward the cloud): join,
//! pull, push and heartbeat over one mutual-TLS channel, with retries, backoff with
//! jitter, and timeouts, so a restarted or partitioned peer is waited out rather than
//! fatal; and a refusal (a certificate the peer does not accept, a node it does not
//! admit, another protocol) is told apart and ends the node with a clear message.

use std::time::{Duration, Instant};

use rand::Rng;
use tonic::transport::Channel;
use tonic::{Code, Status};

use crate::certs::TlsFiles;
use crate::error::{Error, Result};
use crate::hub::PROTOCOL;
use crate::proto;
use crate::proto::aggregator_client::AggregatorClient;

/// Exponential backoff with full jitter: waits a random time up to min(cap, base · 2^n).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    attempt: u32,
    /// When the first of the current run of failures happened.
    since: Option<Instant>,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            base: Duration::from_millis(200),
            cap: Duration::from_secs(5),
            attempt: 0,
            since: None,
        }
    }
}

impl Backoff {
    /// The next wait, growing with the failures since the last success.
    pub fn next_wait(&mut self) -> Duration {
        self.since.get_or_insert_with(Instant::now);
        let ceiling = self
            .base
            .saturating_mul(1 << self.attempt.min(16))
            .min(self.cap);
        self.attempt = self.attempt.saturating_add(1);
        ceiling.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// How long the failures have lasted.
    pub fn failing_for(&self) -> Duration {
        self.since.map_or(Duration::ZERO, |t| t.elapsed())
    }

    /// A success: start over.
    pub fn reset(&mut self) {
        self.attempt = 0;
        self.since = None;
    }
}

/// True when retrying cannot help: the peer refused who we are or how we speak.
pub fn is_refusal(status: &Status) -> bool {
    if matches!(
        status.code(),
        Code::PermissionDenied | Code::FailedPrecondition | Code::Unauthenticated
    ) {
        return true;
    }
    // A TLS alert (the server does not accept our certificate, or we don't accept its).
    let text = format!("{status:?}").to_ascii_lowercase();
    text.contains("alert")
        || text.contains("invalid peer certificate")
        || text.contains("unknownissuer")
}

/// A node's connection to its upstream aggregator.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// Where (for messages).
    pub url: String,
    client: AggregatorClient<Channel>,
    /// Seconds of failures after which the node gives up.
    pub give_up: Duration,
}

/// The longest message either way, bytes.
pub fn message_limit(mb: usize) -> usize {
    mb.saturating_mul(1 << 20)
}

impl Upstream {
    /// A connection to `url` with `files`' identity; messages up to `limit` bytes.
    ///
    /// # Errors
    ///
    /// A bad URL or unreadable certificate files.
    pub fn new(url: &str, files: &TlsFiles, limit: usize, give_up: Duration) -> Result<Self> {
        let channel = crate::tls::channel(url, files)?;
        Ok(Upstream {
            url: url.to_string(),
            client: AggregatorClient::new(channel)
                .max_decoding_message_size(limit)
                .max_encoding_message_size(limit),
            give_up,
        })
    }

    fn refused(&self, status: &Status) -> Error {
        Error::Peer {
            peer: self.url.clone(),
            reason: format!(
                "refused us: {}",
                status.message().trim().to_string() + &tls_hint(status)
            ),
        }
    }

    fn gone(&self, backoff: &Backoff, status: &Status) -> Error {
        Error::Peer {
            peer: self.url.clone(),
            reason: format!(
                "unreachable for {:.0} s (last: {}); giving up",
                backoff.failing_for().as_secs_f64(),
                status.message()
            ),
        }
    }

    /// Joins, retrying with backoff until it succeeds, is refused or `give_up` passes.
    ///
    /// # Errors
    ///
    /// A refusal, or the upstream unreachable for longer than `give_up`.
    pub async fn join(&mut self, digest: &str) -> Result<proto::JoinReply> {
        let mut backoff = Backoff::default();
        loop {
            let req = tonic::Request::new(proto::JoinRequest {
                protocol: PROTOCOL,
                context_digest: digest.to_string(),
            });
            match timed(self.client.join(req), Duration::from_secs(20)).await {
                Ok(r) => return Ok(r),
                Err(s) if is_refusal(&s) => return Err(self.refused(&s)),
                Err(s) => {
                    if backoff.failing_for() > self.give_up {
                        return Err(self.gone(&backoff, &s));
                    }
                    let wait = backoff.next_wait();
                    tracing::info!(upstream = %self.url, status = %s.message(), wait_ms = wait.as_millis() as u64, "cannot join yet; retrying");
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// One long poll for the next task.
    ///
    /// # Errors
    ///
    /// The call's status (the caller rejoins on a transport error).
    pub async fn pull(&mut self, digest: &str) -> std::result::Result<proto::Task, Status> {
        let req = proto::PullRequest {
            context_digest: digest.to_string(),
        };
        timed(self.client.pull(req), Duration::from_secs(40)).await
    }

    /// Pushes an answer, retrying a few times with backoff on transport errors.
    ///
    /// # Errors
    ///
    /// A refusal, or every attempt failed.
    pub async fn push(&mut self, answer: proto::Answer) -> std::result::Result<proto::Ack, Status> {
        let mut backoff = Backoff::default();
        let mut last = None;
        for _ in 0..5 {
            match timed(self.client.push(answer.clone()), Duration::from_secs(60)).await {
                Ok(ack) => return Ok(ack),
                Err(s) if is_refusal(&s) => return Err(s),
                Err(s) => {
                    last = Some(s);
                    tokio::time::sleep(backoff.next_wait()).await;
                }
            }
        }
        Err(last.unwrap_or_else(|| Status::unavailable("no attempt")))
    }

    /// One heartbeat (failures are ignored: the next one may pass).
    pub async fn heartbeat(&mut self, task: &str) {
        let req = proto::HeartbeatRequest {
            task: task.to_string(),
        };
        let _ = timed(self.client.heartbeat(req), Duration::from_secs(5)).await;
    }
}

fn tls_hint(status: &Status) -> String {
    let text = format!("{status:?}").to_ascii_lowercase();
    if text.contains("alert") || text.contains("certificate") {
        format!(" (TLS: {})", short_source(status))
    } else {
        String::new()
    }
}

fn short_source(status: &Status) -> String {
    let mut s: &dyn std::error::Error = status;
    let mut last = status.message().to_string();
    while let Some(next) = s.source() {
        last = next.to_string();
        s = next;
    }
    last
}

async fn timed<T>(
    call: impl std::future::Future<Output = std::result::Result<tonic::Response<T>, Status>>,
    limit: Duration,
) -> std::result::Result<T, Status> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r.map(tonic::Response::into_inner),
        Err(_) => Err(Status::deadline_exceeded(format!(
            "no answer within {} s",
            limit.as_secs()
        ))),
    }
}
