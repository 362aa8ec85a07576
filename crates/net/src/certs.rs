//! Who may talk: the federation's certificate authority, one certificate per node, and a
//! node's identity read back from its certificate.
//!
//! `iotids certs` makes a CA (ECDSA P-256, via rcgen) and signs one certificate per node.
//! A node's name is its certificate's common name: `cloud`, `edge-<e>`, `device-<d>`;
//! nothing in a message can claim another. Every certificate carries both TLS uses
//! (server and client), since an edge serves its devices and is a client of the cloud.
//! Server names: `localhost`, `127.0.0.1`, `::1`, the node's own name and every extra
//! name given (`--san`), so a node is reachable by its name in compose or Kubernetes.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::error::{Error, Result};

/// A node of the hierarchy, as its certificate names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// The cloud aggregator.
    Cloud,
    /// Edge aggregator `e`.
    Edge(usize),
    /// Device `d`.
    Device(usize),
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Node::Cloud => f.write_str("cloud"),
            Node::Edge(e) => write!(f, "edge-{e}"),
            Node::Device(d) => write!(f, "device-{d}"),
        }
    }
}

impl FromStr for Node {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Node, String> {
        let id = |rest: &str| {
            rest.parse::<usize>()
                .ok()
                .filter(|_| !rest.starts_with('+') && (rest == "0" || !rest.starts_with('0')))
        };
        if s == "cloud" {
            return Ok(Node::Cloud);
        }
        if let Some(e) = s.strip_prefix("edge-").and_then(id) {
            return Ok(Node::Edge(e));
        }
        if let Some(d) = s.strip_prefix("device-").and_then(id) {
            return Ok(Node::Device(d));
        }
        Err(format!(
            "`{s}` names no node: expected cloud, edge-<n> or device-<n>"
        ))
    }
}

/// The three files a node presents: the federation's CA, its certificate, its key (PEM).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The CA certificate every peer must be signed by.
    pub ca: PathBuf,
    /// This node's certificate.
    pub cert: PathBuf,
    /// This node's private key.
    pub key: PathBuf,
}

impl TlsFiles {
    /// `DIR/ca.pem`, `DIR/<node>.pem`, `DIR/<node>.key`: the layout `iotids certs` writes.
    pub fn in_dir(dir: &Path, node: Node) -> TlsFiles {
        TlsFiles {
            ca: dir.join("ca.pem"),
            cert: dir.join(format!("{node}.pem")),
            key: dir.join(format!("{node}.key")),
        }
    }
}

/// Days a certificate is valid by default.
pub const DEFAULT_DAYS: u32 = 365;

/// What [`make`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Every file, in the order written.
    pub files: Vec<PathBuf>,
}

/// Makes a federation's CA and a certificate for the cloud, `edges` edges and `devices`
/// devices in `dir` (created if missing), valid for `days` days. `sans`: more server
/// names for every node.
///
/// # Errors
///
/// [`Error::File`] when a file can't be written (an existing CA is never overwritten:
/// a second CA would lock every node of the first one out), [`Error::Tls`] when rcgen
/// fails.
pub fn make(
    dir: &Path,
    edges: usize,
    devices: usize,
    sans: &[String],
    days: u32,
) -> Result<Written> {
    std::fs::create_dir_all(dir).map_err(|e| Error::file(dir, e))?;
    let ca_key_path = dir.join("ca.key");
    if ca_key_path.exists() {
        return Err(Error::file(
            &ca_key_path,
            "exists: a federation keeps one CA (remove the folder to start another)",
        ));
    }
    let now = time_now();
    let until = now + std::time::Duration::from_secs(u64::from(days) * 86_400);

    let mut ca_params =
        CertificateParams::new(Vec::<String>::new()).map_err(|e| Error::tls("CA parameters", e))?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "iotids federation CA");
    dn.push(DnType::OrganizationName, "iotids");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = now.into();
    ca_params.not_after = until.into();
    let ca_key = KeyPair::generate().map_err(|e| Error::tls("CA key", e))?;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|e| Error::tls("CA certificate", e))?;
    let issuer = Issuer::new(ca_params, &ca_key);

    let mut files = Vec::new();
    let mut write = |name: &str, text: String, secret: bool| -> Result<()> {
        let path = dir.join(name);
        write_file(&path, text.as_bytes(), secret)?;
        files.push(path);
        Ok(())
    };
    write("ca.pem", ca_cert.pem(), false)?;
    write("ca.key", ca_key.serialize_pem(), true)?;

    let nodes = std::iter::once(Node::Cloud)
        .chain((0..edges).map(Node::Edge))
        .chain((0..devices).map(Node::Device));
    for node in nodes {
        let mut names = vec![
            "localhost".to_string(),
            "127.0.0.1".into(),
            "::1".into(),
            node.to_string(),
        ];
        names.extend(sans.iter().cloned());
        names.dedup();
        let mut params = CertificateParams::new(Vec::<String>::new())
            .map_err(|e| Error::tls(format!("{node} parameters"), e))?;
        params.subject_alt_names = names
            .iter()
            .map(|n| match n.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => n
                    .clone()
                    .try_into()
                    .map(SanType::DnsName)
                    .map_err(|e| Error::tls(format!("server name `{n}`"), e)),
            })
            .collect::<Result<_>>()?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, node.to_string());
        dn.push(DnType::OrganizationName, "iotids");
        params.distinguished_name = dn;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.not_before = now.into();
        params.not_after = until.into();
        let key = KeyPair::generate().map_err(|e| Error::tls(format!("{node} key"), e))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|e| Error::tls(format!("{node} certificate"), e))?;
        write(&format!("{node}.pem"), cert.pem(), false)?;
        write(&format!("{node}.key"), key.serialize_pem(), true)?;
    }
    Ok(Written { files })
}

fn time_now() -> std::time::SystemTime {
    // A minute back, so a peer whose clock is a little behind accepts it at once.
    std::time::SystemTime::now() - std::time::Duration::from_secs(60)
}

/// Writes `bytes` to `path` atomically; keys readable by their owner only.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).map_err(|e| Error::file(&tmp, e))?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| Error::file(&tmp, e))?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    std::fs::rename(&tmp, path).map_err(|e| Error::file(path, e))
}

/// The node a certificate (DER) names: its subject's common name.
///
/// # Errors
///
/// A string saying why it names none (unparseable, no common name, not a node name).
pub fn node_of(der: &[u8]) -> std::result::Result<Node, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der)
        .map_err(|e| format!("an unreadable certificate ({e})"))?;
    let cn = cert
        .subject()
        .iter_common_name()
        .next()
        .ok_or("a certificate without a common name")?
        .as_str()
        .map_err(|e| format!("a common name that is not text ({e})"))?;
    cn.parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn node_names_round_trip_and_reject_lookalikes() {
        for n in [Node::Cloud, Node::Edge(0), Node::Edge(12), Node::Device(7)] {
            assert_eq!(n.to_string().parse::<Node>(), Ok(n));
        }
        for bad in [
            "edge-", "edge-01", "edge--1", "device-x", "Cloud", "edge-+1", "",
        ] {
            assert!(bad.parse::<Node>().is_err(), "{bad}");
        }
    }

    #[test]
    fn certs_name_their_node_and_refuse_a_second_ca() {
        let dir = tempfile::tempdir().unwrap();
        let w = make(dir.path(), 2, 3, &["iotids.example".into()], 30).unwrap();
        // ca.pem, ca.key, then a pair per node: cloud, 2 edges, 3 devices.
        assert_eq!(w.files.len(), 2 + 2 * 6);
        for node in [Node::Cloud, Node::Edge(1), Node::Device(2)] {
            let pem = std::fs::read(TlsFiles::in_dir(dir.path(), node).cert).unwrap();
            let der = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
                .next()
                .unwrap()
                .unwrap();
            assert_eq!(node_of(&der), Ok(node));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("device-0.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let again = make(dir.path(), 1, 1, &[], 30).unwrap_err().to_string();
        assert!(again.contains("one CA"), "{again}");
    }
}
