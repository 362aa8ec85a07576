//! Mutual TLS on every link, with rustls (ring) and no OpenSSL.
//!
//! A server accepts connections itself ([`incoming`]) rather than through tonic's TLS
//! layer, so that every handshake it refuses (a certificate another CA signed, no
//! certificate, a certificate naming no node) is logged with the peer's address and the
//! reason, and counted; an accepted connection carries its peer's address and node name
//! ([`Peer`]) into every request it makes. Clients use tonic's rustls client with the
//! federation's CA as the only root and their own certificate as identity.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::server::Connected;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::certs::{Node, TlsFiles, node_of};
use crate::error::{Error, Result};

/// Seconds a peer has to finish its TLS handshake.
const HANDSHAKE_SECONDS: u64 = 10;

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &std::path::Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::file(path, e))
}

fn certs(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>> {
    let pem = read(path)?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::tls(path.display().to_string(), e))?;
    if certs.is_empty() {
        return Err(Error::tls(
            path.display().to_string(),
            "no PEM certificate in it",
        ));
    }
    Ok(certs)
}

/// The node `files` names (its certificate's common name).
///
/// # Errors
///
/// The certificate can't be read or names no node.
pub fn own_node(files: &TlsFiles) -> Result<Node> {
    let cert = certs(&files.cert)?;
    node_of(&cert[0]).map_err(|e| Error::tls(files.cert.display().to_string(), e))
}

/// A server's rustls configuration: its certificate, and client certificates required,
/// signed by the federation's CA.
///
/// # Errors
///
/// A file that can't be read, or a certificate or key rustls refuses.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>> {
    let mut roots = RootCertStore::empty();
    for ca in certs(&files.ca)? {
        roots
            .add(ca)
            .map_err(|e| Error::tls(files.ca.display().to_string(), e))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .build()
        .map_err(|e| Error::tls(files.ca.display().to_string(), e))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&files.key)?)
        .map_err(|e| Error::tls(files.key.display().to_string(), e))?;
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::tls("TLS versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&files.cert)?, key)
        .map_err(|e| Error::tls(files.cert.display().to_string(), e))?;
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(cfg))
}

/// A client channel to `url` (`https://host:port`), presenting `files`' certificate and
/// trusting only the federation's CA. Lazy: it connects on first use and reconnects
/// after a broken connection.
///
/// # Errors
///
/// A bad URL or unreadable files.
pub fn channel(url: &str, files: &TlsFiles) -> Result<Channel> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(&files.ca)?))
        .identity(Identity::from_pem(read(&files.cert)?, read(&files.key)?));
    let endpoint = Endpoint::from_shared(url.to_string())
        .map_err(|e| Error::config("url", url, format!("an https://host:port address ({e})")))?;
    if !url.starts_with("https://") {
        return Err(Error::config(
            "url",
            url,
            "an https://host:port address (every link is TLS)",
        ));
    }
    let endpoint = endpoint
        .tls_config(tls)
        .map_err(|e| Error::tls("client TLS", e))?
        .connect_timeout(Duration::from_secs(5))
        .tcp_nodelay(true)
        // Detects a dead or partitioned link within seconds, not at the kernel's leisure.
        .http2_keep_alive_interval(Duration::from_secs(5))
        .keep_alive_timeout(Duration::from_secs(10))
        .keep_alive_while_idle(true);
    Ok(endpoint.connect_lazy())
}

/// Who is at the other end of an accepted connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its address.
    pub addr: SocketAddr,
    /// The node its certificate names.
    pub node: Node,
}

/// An accepted, authenticated connection.
#[derive(Debug)]
pub struct Conn {
    io: TlsStream<TcpStream>,
    peer: Peer,
}

impl Connected for Conn {
    type ConnectInfo = Peer;

    fn connect_info(&self) -> Peer {
        self.peer.clone()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// Accepts connections on `listener`, completes each TLS handshake (mutual, under a
/// timeout) and yields the authenticated ones. A refused handshake is logged with the
/// peer's address and the reason and counted in `refused`; it never stops the server.
pub fn incoming(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    refused: Arc<AtomicU64>,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<Conn>> {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    let acceptor = TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let (tcp, addr) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let (acceptor, tx, refused) = (acceptor.clone(), tx.clone(), refused.clone());
            tokio::spawn(async move {
                let refuse = |reason: String| {
                    refused.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(peer = %addr, %reason, "refused connection");
                };
                let shake = tokio::time::timeout(
                    Duration::from_secs(HANDSHAKE_SECONDS),
                    acceptor.accept(tcp),
                )
                .await;
                let io = match shake {
                    Err(_) => {
                        return refuse(format!("no TLS handshake within {HANDSHAKE_SECONDS} s"));
                    }
                    Ok(Err(e)) => return refuse(format!("TLS handshake failed: {e}")),
                    Ok(Ok(io)) => io,
                };
                let node = match io.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    None => Err("no client certificate".to_string()),
                    Some(cert) => node_of(cert),
                };
                match node {
                    Ok(node) => {
                        let _ = tx
                            .send(Ok(Conn {
                                io,
                                peer: Peer { addr, node },
                            }))
                            .await;
                    }
                    Err(reason) => refuse(reason),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}
