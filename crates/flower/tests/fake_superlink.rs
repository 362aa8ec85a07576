//! `FleetClient` against an in-process stand-in for a SuperLink (plain HTTP or TLS with a
//! throwaway CA): TLS trust, the version check, protocol errors naming the RPC, and the
//! pre-registered-key flow. The real SuperLink runs in examples/flower/auth_smoke.sh.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use iotids_flower::{Backoff, Error, FleetClient, FleetConfig, NodeKey, VersionPolicy, proto};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// An answer: status, content type, body.
type Answer = (u16, &'static str, Vec<u8>);
type Respond = dyn Fn(&str, &[u8]) -> Answer + Send + Sync;

/// A one-connection-at-a-time HTTP/1.1 server that records request paths.
struct Fake {
    addr: std::net::SocketAddr,
    paths: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    async fn start(tls: Option<Arc<rustls::ServerConfig>>, respond: Arc<Respond>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let paths = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&paths);
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let (respond, seen, tls) = (Arc::clone(&respond), Arc::clone(&seen), tls.clone());
                tokio::spawn(async move {
                    match tls {
                        Some(cfg) => {
                            // A failed handshake (the client distrusts us) just ends here.
                            if let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await {
                                serve(s, &*respond, &seen).await;
                            }
                        }
                        None => serve(tcp, &*respond, &seen).await,
                    }
                });
            }
        });
        Self { addr, paths, task }
    }

    fn paths(&self) -> Vec<String> {
        self.paths.lock().unwrap().clone()
    }
}

/// Serves requests on one connection until the client closes it.
async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    respond: &Respond,
    seen: &Mutex<Vec<String>>,
) {
    let mut buf = Vec::new();
    loop {
        let head_end = loop {
            if buf.first() == Some(&0x16) {
                // A TLS ClientHello on plain HTTP: answer like uvicorn does.
                let _ = s
                    .write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
                    .await;
                return;
            }
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let path = head
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let len: usize = head
            .lines()
            .find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse().ok())?
            })
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head_end..head_end + len].to_vec();
        buf.drain(..head_end + len);
        seen.lock().unwrap().push(path.clone());
        let (status, ctype, answer) = respond(&path, &body);
        let out = format!(
            "HTTP/1.1 {status} X\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        if s.write_all(out.as_bytes()).await.is_err() || s.write_all(&answer).await.is_err() {
            return;
        }
        let _ = s.flush().await;
    }
}

/// The SuperLink's FastAPI description, as flwr 1.42 serves it at `/openapi.json`.
fn openapi(version: &str) -> Answer {
    (
        200,
        "application/json",
        format!(r#"{{"openapi":"3.1.0","info":{{"title":"SuperLink API","version":"{version}"}},"paths":{{}}}}"#)
            .into_bytes(),
    )
}

fn protobuf(m: &impl prost::Message) -> Answer {
    (200, "application/protobuf", m.encode_to_vec())
}

/// A CA, and a server certificate for 127.0.0.1 it signed, as rustls config + CA PEM.
fn tls_server() -> (Arc<rustls::ServerConfig>, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    // A distinct name per CA, so a wrong CA is an unknown issuer.
    let name = format!("test CA {}", rand::random::<u64>());
    ca_params.distinguished_name.push(DnType::CommonName, name);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.subject_alt_names = vec![SanType::IpAddress([127, 0, 0, 1].into())];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    let der_key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], der_key.into())
    .unwrap();
    (Arc::new(cfg), ca_cert.pem())
}

/// A config that gives up quickly on transient errors.
fn config(superlink: String) -> FleetConfig {
    let mut c = FleetConfig::new(superlink);
    c.backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
        give_up_after: Some(Duration::from_millis(300)),
    };
    c.request_timeout = Duration::from_secs(5);
    c
}

/// The usual SuperLink: reports 1.42.0, activates any key as node 7.
fn superlink_142(path: &str, _body: &[u8]) -> Answer {
    match path {
        "/openapi.json" => openapi("1.42.0"),
        "/v1/fleet/activate-node" => protobuf(&proto::ActivateNodeResponse { node_id: 7 }),
        "/v1/fleet/register-node" => protobuf(&proto::RegisterNodeFleetResponse { node_id: 7 }),
        _ => (
            404,
            "application/json",
            br#"{"detail":"Not Found"}"#.to_vec(),
        ),
    }
}

#[tokio::test]
async fn tls_with_the_right_ca_connects_and_reads_the_version() {
    let (tls, ca_pem) = tls_server();
    let fake = Fake::start(Some(tls), Arc::new(superlink_142)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &ca_pem).unwrap();
    // host:port + root certificates: https.
    let c = config(fake.addr.to_string()).root_certificates_file(&ca);
    let client = FleetClient::new(c, NodeKey::generate()).unwrap();
    assert_eq!(client.base_url(), format!("https://{}", fake.addr));
    assert_eq!(client.connect(false).await.unwrap(), 7);
    assert_eq!(client.reported_version().as_deref(), Some("1.42.0"));
    // A pre-registered key: ActivateNode only, never RegisterNode.
    assert_eq!(fake.paths(), ["/openapi.json", "/v1/fleet/activate-node"]);

    // The same CA given as bytes.
    let c = config(fake.addr.to_string()).root_certificates_pem(ca_pem.into_bytes());
    let client = FleetClient::new(c, NodeKey::generate()).unwrap();
    assert_eq!(client.connect(true).await.unwrap(), 7);
}

#[tokio::test]
async fn tls_with_the_wrong_ca_fails_at_once_naming_the_superlink_and_the_file() {
    let (tls, _) = tls_server();
    let (_, other_ca) = tls_server();
    let fake = Fake::start(Some(tls), Arc::new(superlink_142)).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("other-ca.pem");
    std::fs::write(&ca, other_ca).unwrap();
    let mut c = config(fake.addr.to_string()).root_certificates_file(&ca);
    // Would retry for a minute if the error were (wrongly) transient.
    c.backoff.give_up_after = Some(Duration::from_secs(60));
    let client = FleetClient::new(c, NodeKey::generate()).unwrap();
    let started = std::time::Instant::now();
    let e = client.connect(false).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(matches!(e, Error::Tls { .. }), "{e:?}");
    assert!(!e.is_transient());
    let msg = e.to_string();
    assert!(msg.contains(&format!("https://{}", fake.addr)), "{msg}");
    assert!(msg.contains(&ca.display().to_string()), "{msg}");
    assert!(msg.contains("UnknownIssuer"), "{msg}");
}

#[tokio::test]
async fn tls_client_against_a_plain_http_superlink_says_so() {
    let fake = Fake::start(None, Arc::new(superlink_142)).await;
    let (_, ca_pem) = tls_server();
    let c = config(fake.addr.to_string()).root_certificates_pem(ca_pem.into_bytes());
    let client = FleetClient::new(c, NodeKey::generate()).unwrap();
    let e = client.connect(false).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Tls { .. }), "{msg}");
    assert!(msg.contains("Is the SuperLink serving TLS?"), "{msg}");
}

#[tokio::test]
async fn no_root_certificates_means_plain_http() {
    let fake = Fake::start(None, Arc::new(superlink_142)).await;
    let client = FleetClient::new(config(fake.addr.to_string()), NodeKey::generate()).unwrap();
    assert_eq!(client.base_url(), format!("http://{}", fake.addr));
    assert_eq!(client.connect(true).await.unwrap(), 7);
    assert_eq!(
        fake.paths(),
        [
            "/openapi.json",
            "/v1/fleet/register-node",
            "/v1/fleet/activate-node"
        ]
    );
}

#[test]
fn unusable_root_certificates_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let not_cert = dir.path().join("key.pub");
    std::fs::write(&not_cert, "ecdsa-sha2-nistp384 AAAA x\n").unwrap();
    for (path, want) in [
        (&missing, "cannot read it"),
        (&not_cert, "no PEM certificate"),
    ] {
        let c = FleetConfig::new("127.0.0.1:1").root_certificates_file(path);
        let e = FleetClient::new(c, NodeKey::generate())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains(want),
            "{e}"
        );
    }
    // Certificates with an explicit http:// address contradict each other.
    let c = FleetConfig::new("http://127.0.0.1:1").root_certificates_pem(b"x".to_vec());
    let e = FleetClient::new(c, NodeKey::generate())
        .unwrap_err()
        .to_string();
    assert!(e.contains("plain http://"), "{e}");
}

#[tokio::test]
async fn a_superlink_outside_the_supported_range_is_refused_naming_both_versions() {
    for version in ["1.43.0", "1.39.2", "2.0.0"] {
        let fake = Fake::start(
            None,
            Arc::new(move |path: &str, body: &[u8]| match path {
                "/openapi.json" => openapi(version),
                _ => superlink_142(path, body),
            }),
        )
        .await;
        let client = FleetClient::new(config(fake.addr.to_string()), NodeKey::generate()).unwrap();
        let e = client.connect(true).await.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, Error::UnsupportedVersion(_)), "{msg}");
        assert!(
            msg.contains(version) && msg.contains(">=1.40, <1.43"),
            "{msg}"
        );
        // Refused before any Fleet RPC.
        assert_eq!(fake.paths(), ["/openapi.json"], "{version}");

        // VersionPolicy::Warn goes on.
        let mut c = config(fake.addr.to_string());
        c.version_policy = VersionPolicy::Warn;
        let client = FleetClient::new(c, NodeKey::generate()).unwrap();
        assert_eq!(client.connect(true).await.unwrap(), 7);
        assert_eq!(client.reported_version().as_deref(), Some(version));
    }
}

#[tokio::test]
async fn a_superlink_that_does_not_report_its_version_is_used_anyway() {
    let fake = Fake::start(
        None,
        Arc::new(|path: &str, body: &[u8]| match path {
            "/openapi.json" => (404, "application/json", b"{}".to_vec()),
            _ => superlink_142(path, body),
        }),
    )
    .await;
    let client = FleetClient::new(config(fake.addr.to_string()), NodeKey::generate()).unwrap();
    assert_eq!(client.connect(true).await.unwrap(), 7);
    assert_eq!(client.reported_version(), None);
}

#[tokio::test]
async fn protocol_errors_name_the_rpc() {
    let fake = Fake::start(
        None,
        Arc::new(|path: &str, body: &[u8]| match path {
            // Undecodable protobuf (a truncated varint field).
            "/v1/fleet/send-node-heartbeat" => (200, "application/protobuf", vec![0x08, 0xff]),
            "/v1/fleet/pull-messages" => (
                422,
                "application/json",
                br#"{"detail":"unexpected field"}"#.to_vec(),
            ),
            _ => superlink_142(path, body),
        }),
    )
    .await;
    let client = FleetClient::new(config(fake.addr.to_string()), NodeKey::generate()).unwrap();
    client.connect(true).await.unwrap();

    let e = client.heartbeat().await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Decode { .. }), "{msg}");
    assert!(msg.contains("/v1/fleet/send-node-heartbeat"), "{msg}");
    assert!(msg.contains("the SuperLink reports flwr 1.42.0"), "{msg}");

    let e = client.pull_message().await.unwrap_err().to_string();
    assert!(
        e.contains("HTTP 422 from /v1/fleet/pull-messages") && e.contains("unexpected field"),
        "{e}"
    );

    let e = client.get_run(1).await.unwrap_err().to_string();
    assert!(
        e.contains("HTTP 404 from /v1/fleet/get-run") && e.contains("no such Fleet RPC"),
        "{e}"
    );
}

#[tokio::test]
async fn an_unregistered_key_is_a_clear_error_and_never_registers() {
    // Like flwr 1.42 with --enable-supernode-auth: RegisterNode disabled (code 2001),
    // ActivateNode of an unknown key refused (HTTP 412, code 2004).
    let respond = |path: &str, body: &[u8]| match path {
        "/v1/fleet/register-node" => (
            412,
            "application/json",
            br#"{"code":2001,"detail":"SuperNode registration is disabled."}"#.to_vec(),
        ),
        "/v1/fleet/activate-node" => (
            412,
            "application/json",
            br#"{"code":2004,"detail":"Failed to activate SuperNode."}"#.to_vec(),
        ),
        _ => superlink_142(path, body),
    };
    let fake = Fake::start(None, Arc::new(respond)).await;
    let key = NodeKey::generate();
    let line = key.openssh_public_key("");
    let client = FleetClient::new(config(fake.addr.to_string()), key.clone()).unwrap();
    let e = client.connect(false).await.unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::NotRegistered { .. }), "{msg}");
    assert!(!e.is_transient());
    assert!(
        msg.contains("not registered") && msg.contains("flwr supernode register"),
        "{msg}"
    );
    assert!(msg.contains(line.trim_end()), "{msg}");
    assert!(!fake.paths().iter().any(|p| p.contains("register-node")));

    // A node that tries to register itself learns why that did not help.
    let client = FleetClient::new(config(fake.addr.to_string()), key).unwrap();
    let msg = client.connect(true).await.unwrap_err().to_string();
    assert!(msg.contains("--enable-supernode-auth"), "{msg}");
}
