//! `FleetClient`: the Fleet API's RPCs over HTTP, each request signed by the node's key.
//!
//! Every RPC is `POST <base>/v1/fleet/<kebab-rpc>` with a protobuf body
//! (`content-type: application/protobuf`). Errors name the RPC and the status
//! (`HTTP 401 from /v1/fleet/pull-messages: …`); transient ones (unreachable, 5xx) are
//! retried by the callers with [`Backoff`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rand::Rng as _;

use crate::auth::{NodeKey, PUBLIC_KEY_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::error::{Error, Result};
use crate::objects::{ObjectSet, object_id, post_order};
use crate::proto;
use crate::{SUPPORTED_FLWR, SUPPORTED_MINOR_RANGE};

/// Response header in which a flwr component may report its version.
pub const VERSION_HEADER: &str = "flwr-package-version";

/// Exponential backoff with full jitter, capped.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Give up after this long in total (`None`: retry forever).
    pub give_up_after: Option<Duration>,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(30),
            give_up_after: None,
        }
    }
}

impl Backoff {
    /// The delay before retry number `attempt` (0-based): uniform in
    /// `[d/2, d]` where `d = min(max, initial · 2^attempt)`.
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let d = self
            .initial
            .saturating_mul(1u32 << attempt.min(20))
            .min(self.max);
        let half = d / 2;
        half + d.saturating_sub(half).mul_f64(rand::rng().random::<f64>())
    }

    /// Runs `f` until it succeeds or fails with a non-transient error (or time runs out).
    pub async fn retry<T, F, Fut>(&self, what: &str, mut f: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let start = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            match f().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_transient() => {
                    if self.give_up_after.is_some_and(|g| start.elapsed() >= g) {
                        return Err(e);
                    }
                    let d = self.delay(attempt);
                    tracing::warn!("{what}: {e}; retrying in {:.1} s", d.as_secs_f64());
                    tokio::time::sleep(d).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// How to reach the SuperLink.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// `host:port` (plain HTTP, like `--insecure`) or a full `http://` / `https://` URL.
    pub superlink: String,
    /// PEM root certificates to trust for `https://` (like the SuperNode's
    /// `--root-certificates`); `None`: the built-in web roots.
    pub root_certificates: Option<Vec<u8>>,
    /// The heartbeat interval the node declares, in seconds (the SuperLink drops a node
    /// silent for 2× this).
    pub heartbeat_interval: f64,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Retry policy for transient failures.
    pub backoff: Backoff,
}

impl FleetConfig {
    /// Defaults for a SuperLink at `superlink`: 30 s heartbeats, 60 s timeout.
    #[must_use]
    pub fn new(superlink: impl Into<String>) -> Self {
        Self {
            superlink: superlink.into(),
            root_certificates: None,
            heartbeat_interval: 30.0,
            request_timeout: Duration::from_secs(60),
            backoff: Backoff::default(),
        }
    }
}

/// A message pulled from the SuperLink with every object of its tree, verified.
#[derive(Debug, Clone)]
pub struct PulledMessage {
    /// Its metadata as the SuperLink sent it.
    pub metadata: proto::Metadata,
    /// Its object bytes by id (each id checked against the SHA-256 of the bytes).
    pub objects: HashMap<String, Vec<u8>>,
}

/// A client of one SuperLink's Fleet API, as one node.
#[derive(Debug)]
pub struct FleetClient {
    http: reqwest::Client,
    base: String,
    key: NodeKey,
    config: FleetConfig,
    node_id: AtomicU64,
    reported_version: Mutex<Option<String>>,
}

impl FleetClient {
    /// A client signing with `key`. Makes no request yet.
    pub fn new(config: FleetConfig, key: NodeKey) -> Result<Self> {
        let base = if config.superlink.contains("://") {
            config.superlink.trim_end_matches('/').to_owned()
        } else {
            format!("http://{}", config.superlink)
        };
        let mut b = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(10));
        if let Some(pem) = &config.root_certificates {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| Error::Key(format!("root certificates: {e}")))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| Error::Key(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            key,
            config,
            node_id: AtomicU64::new(0),
            reported_version: Mutex::new(None),
        })
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &FleetConfig {
        &self.config
    }

    /// The node id the SuperLink gave (0 before activation).
    #[must_use]
    pub fn node_id(&self) -> u64 {
        self.node_id.load(Ordering::Relaxed)
    }

    fn node(&self) -> Option<proto::Node> {
        Some(proto::Node {
            node_id: self.node_id(),
        })
    }

    /// The flwr version the SuperLink reported in a response header, if it did.
    #[must_use]
    pub fn reported_version(&self) -> Option<String> {
        self.reported_version.lock().ok().and_then(|v| v.clone())
    }

    /// One signed RPC.
    pub async fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        rpc: &'static str,
        req: &Req,
    ) -> Result<Resp> {
        let url = format!("{}/v1/fleet/{rpc}", self.base);
        let h = self.key.signed_headers()?;
        let resp = self
            .http
            .post(&url)
            .header("content-type", "application/protobuf")
            .header("accept", "application/protobuf")
            .header(PUBLIC_KEY_HEADER, h.public_key)
            .header(TIMESTAMP_HEADER, h.timestamp)
            .header(SIGNATURE_HEADER, h.signature)
            .body(req.encode_to_vec())
            .send()
            .await
            .map_err(|source| Error::Transport {
                url: url.clone(),
                source,
            })?;
        if let Some(v) = resp
            .headers()
            .get(VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            self.check_version(v)?;
        }
        let status = resp.status();
        let body = resp.bytes().await.map_err(|source| Error::Transport {
            url: url.clone(),
            source,
        })?;
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let mut text: String = text.chars().take(300).collect();
            if status.as_u16() == 404 {
                text.push_str(&format!(
                    " (no such Fleet RPC: is this a flwr {SUPPORTED_FLWR} SuperLink?)"
                ));
            }
            return Err(Error::Http {
                rpc,
                status: status.as_u16(),
                body: text,
            });
        }
        Resp::decode(body.as_ref()).map_err(|source| Error::Decode {
            rpc,
            source,
            reported: self
                .reported_version()
                .map(|v| format!("; the SuperLink reports flwr {v}"))
                .unwrap_or_default(),
        })
    }

    fn check_version(&self, v: &str) -> Result<()> {
        if let Ok(mut slot) = self.reported_version.lock()
            && slot.as_deref() != Some(v)
        {
            tracing::info!("SuperLink reports flwr {v}");
            *slot = Some(v.to_owned());
        }
        let mut parts = v.split('.').map(|p| p.parse::<u64>().ok());
        if let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) {
            let (lo, hi) = SUPPORTED_MINOR_RANGE;
            if (major, minor) < lo || (major, minor) > hi {
                return Err(Error::UnsupportedVersion(v.to_owned()));
            }
        }
        Ok(())
    }

    /// `RegisterNode`: registers this node's public key (SuperLinks without
    /// `--enable-supernode-auth`). Returns the node id.
    pub async fn register(&self) -> Result<u64> {
        let r: proto::RegisterNodeFleetResponse = self
            .call(
                "register-node",
                &proto::RegisterNodeFleetRequest {
                    public_key: self.key.public_pem().to_vec(),
                },
            )
            .await?;
        Ok(r.node_id)
    }

    /// `ActivateNode`: marks the node online, declaring the heartbeat interval. Stores and
    /// returns the node id.
    pub async fn activate(&self) -> Result<u64> {
        let r: proto::ActivateNodeResponse = self
            .call(
                "activate-node",
                &proto::ActivateNodeRequest {
                    public_key: self.key.public_pem().to_vec(),
                    heartbeat_interval: self.config.heartbeat_interval,
                },
            )
            .await?;
        self.node_id.store(r.node_id, Ordering::Relaxed);
        Ok(r.node_id)
    }

    /// Registers (unless the key is pre-registered) and activates, retrying while the
    /// SuperLink is unreachable. Returns the node id.
    pub async fn connect(&self, register: bool) -> Result<u64> {
        self.config
            .backoff
            .retry("connecting to the SuperLink", || async {
                if register {
                    match self.register().await {
                        Ok(_) => {}
                        // Already registered (e.g. a reconnect): activation decides.
                        Err(Error::Http { status, .. }) if status < 500 => {}
                        Err(e) => return Err(e),
                    }
                }
                self.activate().await
            })
            .await
    }

    /// `SendNodeHeartbeat`. Returns the SuperLink's `success` flag.
    pub async fn heartbeat(&self) -> Result<bool> {
        let r: proto::SendNodeHeartbeatResponse = self
            .call(
                "send-node-heartbeat",
                &proto::SendNodeHeartbeatRequest {
                    node: self.node(),
                    heartbeat_interval: self.config.heartbeat_interval,
                },
            )
            .await?;
        Ok(r.success)
    }

    /// `DeactivateNode`: the node goes offline (it stays registered).
    pub async fn deactivate(&self) -> Result<()> {
        let _: proto::DeactivateNodeResponse = self
            .call(
                "deactivate-node",
                &proto::DeactivateNodeRequest {
                    node_id: self.node_id(),
                },
            )
            .await?;
        Ok(())
    }

    /// `UnregisterNode`: forgets the node.
    pub async fn unregister(&self) -> Result<()> {
        let _: proto::UnregisterNodeFleetResponse = self
            .call(
                "unregister-node",
                &proto::UnregisterNodeFleetRequest {
                    node_id: self.node_id(),
                },
            )
            .await?;
        Ok(())
    }

    /// `GetRun`: the run's description (FAB id and version, config).
    pub async fn get_run(&self, run_id: u64) -> Result<Option<proto::Run>> {
        let r: proto::GetRunResponse = self
            .call(
                "get-run",
                &proto::GetRunRequest {
                    node: self.node(),
                    run_id,
                },
            )
            .await?;
        Ok(r.run)
    }

    /// `PullMessages` and, for the first message, every object of its tree
    /// (`PullObject`, each checked against its id) and `ConfirmMessageReceived`.
    pub async fn pull_message(&self) -> Result<Option<PulledMessage>> {
        let r: proto::PullMessagesResponse = self
            .call(
                "pull-messages",
                &proto::PullMessagesRequest {
                    node: self.node(),
                    message_ids: Vec::new(),
                },
            )
            .await?;
        let (Some(msg), Some(tree)) = (
            r.messages_list.into_iter().next(),
            r.message_object_trees.into_iter().next(),
        ) else {
            return Ok(None);
        };
        let metadata = msg.metadata.ok_or_else(|| Error::Object {
            id: tree.object_id.clone(),
            reason: "pulled message has no metadata".into(),
        })?;
        let run_id = metadata.run_id;
        let mut objects = HashMap::new();
        for id in post_order(&tree) {
            let bytes = self.pull_object(run_id, &id).await?;
            let actual = object_id(&bytes);
            if actual != id {
                return Err(Error::Object {
                    id,
                    reason: format!("content hashes to {actual}"),
                });
            }
            objects.insert(id, bytes);
        }
        let _: proto::ConfirmMessageReceivedResponse = self
            .call(
                "confirm-message-received",
                &proto::ConfirmMessageReceivedRequest {
                    node: self.node(),
                    run_id,
                    message_object_id: metadata.message_id.clone(),
                },
            )
            .await?;
        Ok(Some(PulledMessage { metadata, objects }))
    }

    /// `PullObject`, polling until the object is available (30 s at most).
    pub async fn pull_object(&self, run_id: u64, id: &str) -> Result<Vec<u8>> {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let r: proto::PullObjectResponse = self
                .call(
                    "pull-object",
                    &proto::PullObjectRequest {
                        node: self.node(),
                        run_id,
                        object_id: id.to_owned(),
                    },
                )
                .await?;
            if r.object_available {
                return Ok(r.object_content);
            }
            if !r.object_found || std::time::Instant::now() > deadline {
                return Err(Error::Object {
                    id: id.to_owned(),
                    reason: if r.object_found {
                        "not available after 30 s".into()
                    } else {
                        "the SuperLink does not know it".into()
                    },
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Pushes a reply: `PushMessages` (metadata and object tree, with an empty content as
    /// the SuperLink requires), then `PushObject` for each id it asks for.
    /// `metadata.message_id` must be `root`, the `Message` object's id.
    pub async fn push_reply(
        &self,
        metadata: proto::Metadata,
        objects: &ObjectSet,
        root: &str,
        runtime_secs: f64,
    ) -> Result<usize> {
        let run_id = metadata.run_id;
        let r: proto::PushMessagesResponse = self
            .call(
                "push-messages",
                &proto::PushMessagesRequest {
                    node: self.node(),
                    messages_list: vec![proto::Message {
                        metadata: Some(metadata),
                        content: Some(proto::RecordDict::default()),
                        error: None,
                    }],
                    message_object_trees: vec![objects.tree(root)],
                    clientapp_runtime_list: vec![runtime_secs],
                },
            )
            .await?;
        for id in &r.objects_to_push {
            let content = objects.content.get(id).ok_or_else(|| Error::Object {
                id: id.clone(),
                reason: "the SuperLink asked for an object not in the reply".into(),
            })?;
            let _: proto::PushObjectResponse = self
                .call(
                    "push-object",
                    &proto::PushObjectRequest {
                        node: self.node(),
                        run_id,
                        object_id: id.clone(),
                        object_content: content.clone(),
                        session_id: r.session_id.clone(),
                    },
                )
                .await?;
        }
        Ok(r.objects_to_push.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(2),
            give_up_after: None,
        };
        for attempt in 0..10 {
            let d = b.delay(attempt);
            let full = Duration::from_millis(100 * (1 << attempt)).min(Duration::from_secs(2));
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert!(b.delay(30) <= Duration::from_secs(2));
    }

    #[test]
    fn version_outside_range_is_refused() {
        let c = FleetClient::new(FleetConfig::new("127.0.0.1:1"), NodeKey::generate()).unwrap();
        assert!(c.check_version("1.42.0").is_ok());
        assert!(c.check_version("1.40.2").is_ok());
        let e = c.check_version("1.43.0").unwrap_err().to_string();
        assert!(e.contains("1.43.0") && e.contains(">=1.40"), "{e}");
        assert!(c.check_version("1.39.9").is_err());
    }

    #[tokio::test]
    async fn unreachable_superlink_is_a_transient_error_naming_the_url() {
        let c = FleetClient::new(FleetConfig::new("127.0.0.1:1"), NodeKey::generate()).unwrap();
        let e = c.heartbeat().await.unwrap_err();
        assert!(e.is_transient());
        assert!(
            e.to_string()
                .contains("http://127.0.0.1:1/v1/fleet/send-node-heartbeat"),
            "{e}"
        );
    }
}
