//! `FleetClient`: the Fleet API's RPCs over HTTP, each request signed by the node's key.
//!
//! Every RPC is `POST <base>/v1/fleet/<kebab-rpc>` with a protobuf body
//! (`content-type: application/protobuf`). Errors name the RPC and the status
//! (`HTTP 401 from /v1/fleet/pull-messages: …`); transient ones (unreachable, 5xx) are
//! retried by the callers with [`Backoff`].
//!
//! **TLS.** With root certificates ([`FleetConfig::root_certificates_file`], like the stock
//! SuperNode's `--root-certificates`) a `host:port` SuperLink is reached over `https://`,
//! trusting only those certificates; without them over plain `http://` (a SuperLink started
//! with `--insecure`). A failed handshake is an [`Error::Tls`] naming the SuperLink and the
//! certificate file, and is not retried.
//!
//! **Version check.** flwr 1.42's SuperLink does not put its version on Fleet responses
//! (its Fleet router only *reads* the caller's `flwr-package-version` header, and accepts
//! callers without one). It does serve its FastAPI description, unauthenticated, at
//! `GET /openapi.json`, whose `info` is `{"title": "SuperLink API", "version": "1.42.0"}`.
//! [`FleetClient::connect`] reads that before registering (see [`VersionPolicy`]); a version
//! header on any Fleet response, should a later flwr send one, is checked the same way. A
//! SuperLink that reports nothing is used with a warning, and a protocol mismatch then
//! surfaces as an error naming the RPC ([`Error::Http`], [`Error::Decode`]).

use std::collections::HashMap;
use std::path::PathBuf;
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

/// What to do when the SuperLink reports a flwr version outside [`SUPPORTED_FLWR`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VersionPolicy {
    /// Fail with [`Error::UnsupportedVersion`] (the default: the Fleet API changes between
    /// minor releases, and a half-working run is worse than a clear refusal).
    #[default]
    Refuse,
    /// Log a warning and go on (to try a newer SuperLink).
    Warn,
    /// Do not ask the SuperLink for its version.
    Skip,
}

/// How to reach the SuperLink.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// `host:port` or a full `http://` / `https://` URL. A `host:port` is reached over
    /// `https://` when [`root_certificates`](Self::root_certificates) are set and over plain
    /// `http://` (a SuperLink started with `--insecure`) otherwise.
    pub superlink: String,
    /// PEM root certificates to trust for TLS (one or more); only these are trusted. With
    /// [`root_certificates_file`](Self::root_certificates_file) unset, errors call them
    /// "given as PEM bytes". Neither set: plain HTTP for a `host:port`, the built-in web
    /// roots for an `https://` URL.
    pub root_certificates: Option<Vec<u8>>,
    /// A PEM file of root certificates (like the SuperNode's `--root-certificates`), read
    /// by [`FleetClient::new`] unless [`root_certificates`](Self::root_certificates) already
    /// holds its bytes; TLS errors name it.
    pub root_certificates_file: Option<PathBuf>,
    /// What to do with a SuperLink reporting an unsupported flwr version.
    pub version_policy: VersionPolicy,
    /// The heartbeat interval the node declares, in seconds (the SuperLink drops a node
    /// silent for 2× this).
    pub heartbeat_interval: f64,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Retry policy for transient failures.
    pub backoff: Backoff,
}

impl FleetConfig {
    /// Defaults for a SuperLink at `superlink`: plain HTTP unless it is an `https://` URL,
    /// 30 s heartbeats, 60 s timeout, unsupported versions refused.
    #[must_use]
    pub fn new(superlink: impl Into<String>) -> Self {
        Self {
            superlink: superlink.into(),
            root_certificates: None,
            root_certificates_file: None,
            version_policy: VersionPolicy::default(),
            heartbeat_interval: 30.0,
            request_timeout: Duration::from_secs(60),
            backoff: Backoff::default(),
        }
    }

    /// TLS, trusting the PEM certificate(s) in `path` (like `--root-certificates`).
    #[must_use]
    pub fn root_certificates_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.root_certificates_file = Some(path.into());
        self
    }

    /// TLS, trusting the PEM certificate(s) in `pem`.
    #[must_use]
    pub fn root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates = Some(pem.into());
        self
    }

    /// Whether the node uses TLS with its own root certificates.
    #[must_use]
    pub fn has_root_certificates(&self) -> bool {
        self.root_certificates.is_some() || self.root_certificates_file.is_some()
    }

    /// How errors name the root certificates.
    fn describe_roots(&self) -> String {
        match (&self.root_certificates_file, &self.root_certificates) {
            (Some(p), _) => format!("the root certificate(s) in {}", p.display()),
            (None, Some(_)) => "the root certificate(s) given as PEM bytes".into(),
            (None, None) => {
                "the built-in web root certificates (no root certificates given)".into()
            }
        }
    }

    /// The root certificates, parsed (`None`: none given). An unreadable file, or PEM
    /// without a certificate, is an [`Error::Config`] naming it.
    fn load_roots(&self) -> Result<Option<Vec<reqwest::Certificate>>> {
        let what = match &self.root_certificates_file {
            Some(p) => p.display().to_string(),
            None => "given as PEM bytes".into(),
        };
        let pem = match (&self.root_certificates, &self.root_certificates_file) {
            (Some(b), _) => b.clone(),
            (None, Some(p)) => std::fs::read(p).map_err(|e| {
                Error::Config(format!("root certificates {what}: cannot read it: {e}"))
            })?,
            (None, None) => return Ok(None),
        };
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| Error::Config(format!("root certificates {what}: {e}")))?;
        if certs.is_empty() {
            return Err(Error::Config(format!(
                "root certificates {what}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it"
            )));
        }
        Ok(Some(certs))
    }

    /// The base URL the node talks to (`http(s)://host:port`).
    pub fn base_url(&self) -> Result<String> {
        let s = self.superlink.trim_end_matches('/');
        if let Some((scheme, _)) = s.split_once("://") {
            if scheme == "http" && self.has_root_certificates() {
                return Err(Error::Config(format!(
                    "root certificates are set but the SuperLink address {s} is plain http://: \
                     use https:// (or a bare host:port) for TLS, or drop the certificates"
                )));
            }
            if scheme != "http" && scheme != "https" {
                return Err(Error::Config(format!(
                    "SuperLink address {s}: want host:port, http:// or https://"
                )));
            }
            Ok(s.to_owned())
        } else if self.has_root_certificates() {
            Ok(format!("https://{s}"))
        } else {
            Ok(format!("http://{s}"))
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
    /// What the SuperLink's certificate is checked against, for [`Error::Tls`].
    roots: String,
    key: NodeKey,
    config: FleetConfig,
    node_id: AtomicU64,
    reported_version: Mutex<Option<String>>,
}

impl FleetClient {
    /// A client signing with `key`. Makes no request yet; reads the root certificates (an
    /// unreadable file, or one without a certificate, is an [`Error::Config`] naming it).
    pub fn new(config: FleetConfig, key: NodeKey) -> Result<Self> {
        let base = config.base_url()?;
        let mut b = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(Duration::from_secs(10));
        if let Some(certs) = config.load_roots()? {
            // Like gRPC's root_certificates: trust these, not the web roots.
            b = b.tls_built_in_root_certs(false);
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let roots = config.describe_roots();
        let http = b
            .build()
            .map_err(|e| Error::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            http,
            base,
            roots,
            key,
            config,
            node_id: AtomicU64::new(0),
            reported_version: Mutex::new(None),
        })
    }

    /// The SuperLink's base URL (`http(s)://host:port`).
    #[must_use]
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The node's key.
    #[must_use]
    pub fn key(&self) -> &NodeKey {
        &self.key
    }

    /// A transport error, or an [`Error::Tls`] when TLS is what failed.
    fn send_error(&self, url: &str, source: reqwest::Error) -> Error {
        match tls_failure(&source) {
            Some(tls) => Error::Tls {
                superlink: self.base.clone(),
                roots: self.roots.clone(),
                reason: tls.to_string(),
                hint: tls_hint(tls),
            },
            None => Error::Transport {
                url: url.to_owned(),
                source,
            },
        }
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

    /// The flwr version the SuperLink reported (its `GET /openapi.json` description, or a
    /// version header on a Fleet response), if it did.
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
            .map_err(|source| self.send_error(&url, source))?;
        if let Some(v) = resp
            .headers()
            .get(VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            self.check_version(v)?;
        }
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|source| self.send_error(&url, source))?;
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

    /// Records a version the SuperLink reported and applies the [`VersionPolicy`] to it.
    fn check_version(&self, v: &str) -> Result<()> {
        let first = match self.reported_version.lock() {
            Ok(mut slot) if slot.as_deref() != Some(v) => {
                *slot = Some(v.to_owned());
                true
            }
            _ => false,
        };
        if version_supported(v) != Some(false) {
            if first {
                tracing::info!("the SuperLink at {} runs flwr {v}", self.base);
            }
            return Ok(());
        }
        match self.config.version_policy {
            VersionPolicy::Refuse => Err(Error::UnsupportedVersion(v.to_owned())),
            VersionPolicy::Warn | VersionPolicy::Skip => {
                if first {
                    tracing::warn!(
                        "the SuperLink at {} runs flwr {v}; this node supports flwr \
                         {SUPPORTED_FLWR}: going on anyway (VersionPolicy::Warn)",
                        self.base
                    );
                }
                Ok(())
            }
        }
    }

    /// Asks the SuperLink for its flwr version (`GET /openapi.json`, unauthenticated; see the
    /// module docs) and applies the [`VersionPolicy`]. `Ok(None)`: it did not say (the
    /// version check is then skipped, with a warning). Unreachable: a transient error.
    pub async fn probe_version(&self) -> Result<Option<String>> {
        if self.config.version_policy == VersionPolicy::Skip {
            return Ok(None);
        }
        let url = format!("{}/openapi.json", self.base);
        let resp = self
            .http
            .get(&url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|source| {
                // Connected, then dropped without an answer: typically a TLS SuperLink
                // spoken to in plain HTTP.
                if self.base.starts_with("http://") && !source.is_connect() && !source.is_timeout()
                {
                    tracing::warn!(
                        "the SuperLink at {} closed the connection without answering plain \
                         HTTP; if it serves TLS (started without --insecure), give the node \
                         its root certificate",
                        self.base
                    );
                }
                self.send_error(&url, source)
            })?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|source| self.send_error(&url, source))?;
        let reported = status
            .is_success()
            .then(|| superlink_version_from_openapi(&body))
            .flatten();
        let Some(v) = reported else {
            tracing::warn!(
                "the SuperLink at {} does not report its flwr version (GET /openapi.json: \
                 HTTP {status}); going on without a version check (this node supports flwr \
                 {SUPPORTED_FLWR})",
                self.base
            );
            return Ok(None);
        };
        self.check_version(&v)?;
        Ok(Some(v))
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

    /// Checks the SuperLink's version ([`probe_version`](Self::probe_version)), registers
    /// the key (`register = true`; skipped for a key pre-registered with
    /// `flwr supernode register`) and activates, retrying while the SuperLink is
    /// unreachable. Returns the node id.
    ///
    /// A SuperLink with `--enable-supernode-auth` refuses `RegisterNode`; the node then
    /// still tries `ActivateNode`, which succeeds if the key was registered beforehand. An
    /// `ActivateNode` refused for an unknown key is an [`Error::NotRegistered`].
    pub async fn connect(&self, register: bool) -> Result<u64> {
        self.config
            .backoff
            .retry("connecting to the SuperLink", || async {
                self.probe_version().await?;
                let mut note = String::new();
                if register {
                    match self.register().await {
                        Ok(_) => {}
                        // Already registered (a reconnect), or registration disabled
                        // (`--enable-supernode-auth`): activation decides.
                        Err(Error::Http { status, body, .. }) if status < 500 => {
                            tracing::debug!("RegisterNode refused (HTTP {status}: {body})");
                            if flower_error_code(&body)
                                == Some(FLEET_SUPERNODE_REGISTRATION_DISABLED)
                            {
                                note = " (and the SuperLink refuses RegisterNode: it runs with \
                                        --enable-supernode-auth)"
                                    .into();
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                match self.activate().await {
                    Err(Error::Http { status, body, .. })
                        if (400..500).contains(&status)
                            && flower_error_code(&body)
                                .is_none_or(|c| c == FLEET_NODE_ACTIVATION_FAILED) =>
                    {
                        Err(Error::NotRegistered {
                            superlink: self.base.clone(),
                            status,
                            body,
                            public_key: self.key.openssh_public_key("").trim_end().to_owned(),
                            note,
                        })
                    }
                    other => other,
                }
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

/// flwr's `ApiErrorCode.FLEET_SUPERNODE_REGISTRATION_DISABLED` (RegisterNode with
/// `--enable-supernode-auth`).
const FLEET_SUPERNODE_REGISTRATION_DISABLED: i64 = 2001;
/// flwr's `ApiErrorCode.FLEET_NODE_ACTIVATION_FAILED` (ActivateNode for an unknown key).
const FLEET_NODE_ACTIVATION_FAILED: i64 = 2004;

/// The `code` of a flwr error body (`{"code": 2004, "detail": "…"}`), if it is one.
fn flower_error_code(body: &str) -> Option<i64> {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()?
        .get("code")?
        .as_i64()
}

/// Whether `version` (`1.42.0`, `1.43.0rc1`, …) lies in [`SUPPORTED_MINOR_RANGE`];
/// `None` when it does not parse as `major.minor`.
#[must_use]
pub fn version_supported(version: &str) -> Option<bool> {
    let mut parts = version.trim().split('.').map(|p| {
        let digits: String = p.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u64>().ok()
    });
    let (Some(Some(major)), Some(Some(minor))) = (parts.next(), parts.next()) else {
        return None;
    };
    let (lo, hi) = SUPPORTED_MINOR_RANGE;
    Some((major, minor) >= lo && (major, minor) <= hi)
}

/// The version in a SuperLink's FastAPI description (`{"info": {"title": "SuperLink API",
/// "version": "1.42.0"}}`), if that is what `body` is.
fn superlink_version_from_openapi(body: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let info = v.get("info")?;
    let title = info.get("title")?.as_str()?;
    if !title.contains("SuperLink") {
        return None;
    }
    Some(info.get("version")?.as_str()?.to_owned())
}

/// The rustls error somewhere in `err`'s chain, if TLS is what failed. (`io::Error` hides its
/// payload from `source()`, so look inside it too.)
fn tls_failure<'a>(err: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            cur = Some(inner);
            continue;
        }
        cur = e.source();
    }
    None
}

/// What to check for a TLS failure (starts with `". "`).
fn tls_hint(tls: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    let hint = match tls {
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            "Is it the CA certificate that signed the SuperLink's --ssl-certfile?"
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            "The SuperLink's certificate does not name the host of the address: connect with a \
             host name or IP address in its subjectAltName"
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "The SuperLink's certificate has expired"
        }
        rustls::Error::InvalidMessage(_) => {
            "Is the SuperLink serving TLS? One started with --insecure speaks plain HTTP \
             (then give the node no root certificates)"
        }
        _ => return String::new(),
    };
    format!(". {hint}")
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

    #[test]
    fn versions_parse_loosely_and_compare_by_minor() {
        assert_eq!(version_supported("1.42.0"), Some(true));
        assert_eq!(version_supported("1.40.0rc1"), Some(true));
        assert_eq!(version_supported("1.42.3.dev0"), Some(true));
        assert_eq!(version_supported("1.43.0"), Some(false));
        assert_eq!(version_supported("1.39.9"), Some(false));
        assert_eq!(version_supported("0.42"), Some(false));
        assert_eq!(version_supported("unknown"), None);
        assert_eq!(version_supported(""), None);
    }

    #[test]
    fn the_version_is_read_from_a_superlink_openapi_description_only() {
        let doc = br#"{"openapi":"3.1.0","info":{"title":"SuperLink API","version":"1.42.0"}}"#;
        assert_eq!(
            superlink_version_from_openapi(doc).as_deref(),
            Some("1.42.0")
        );
        let other = br#"{"info":{"title":"Some proxy","version":"3.0"}}"#;
        assert_eq!(superlink_version_from_openapi(other), None);
        assert_eq!(superlink_version_from_openapi(b"<html>"), None);
    }

    #[test]
    fn root_certificates_select_https_for_a_bare_address() {
        let plain = FleetConfig::new("127.0.0.1:8000");
        assert_eq!(plain.base_url().unwrap(), "http://127.0.0.1:8000");
        let tls = FleetConfig::new("127.0.0.1:8000").root_certificates_file("ca.pem");
        assert_eq!(tls.base_url().unwrap(), "https://127.0.0.1:8000");
        let web = FleetConfig::new("https://flower.example:443/");
        assert_eq!(web.base_url().unwrap(), "https://flower.example:443");
        assert!(
            FleetConfig::new("http://h:1")
                .root_certificates_pem(b"x".to_vec())
                .base_url()
                .is_err()
        );
        assert!(FleetConfig::new("grpc://h:1").base_url().is_err());
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
