//! The node's identity: an ECDSA P-384 key that signs every Fleet request.
//!
//! Flower's `NodeAuthMiddleware` (flwr 1.40+) rejects any Fleet request without three
//! headers, even with node authentication off: `flwr-public-key` (base64 of the PEM
//! SubjectPublicKeyInfo), `flwr-timestamp` (ISO-8601 UTC, within 300 s of the SuperLink's
//! clock) and `flwr-signature` (base64 of the DER ECDSA-SHA256 signature over the timestamp's
//! ASCII bytes).
//!
//! With `--enable-supernode-auth` the SuperLink refuses `RegisterNode`: the key must be
//! registered beforehand with `flwr supernode register <public key file> <SuperLink
//! connection>` (flwr 1.42), which reads an OpenSSH public-key line
//! (`ecdsa-sha2-nistp384 AAAA… comment`, see [`NodeKey::openssh_public_key`]). The node then
//! loads its private key from a file ([`NodeKey::from_file`]) in any of the formats flwr
//! and OpenSSL write: OpenSSH (`ssh-keygen -t ecdsa -b 384`, what the stock SuperNode's
//! `--auth-supernode-private-key` reads), PKCS#8 PEM and SEC1 PEM, all unencrypted.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p384::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use p384::elliptic_curve::sec1::ToEncodedPoint as _;
use p384::elliptic_curve::zeroize::Zeroizing;
use p384::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey, LineEnding};
use sha2::{Digest, Sha256};
use ssh_key::private::{EcdsaKeypair, EcdsaPrivateKey, KeypairData};

use crate::error::{Error, Result};

/// Header carrying the base64 PEM public key.
pub const PUBLIC_KEY_HEADER: &str = "flwr-public-key";
/// Header carrying the signed ISO-8601 timestamp.
pub const TIMESTAMP_HEADER: &str = "flwr-timestamp";
/// Header carrying the base64 DER signature of the timestamp.
pub const SIGNATURE_HEADER: &str = "flwr-signature";

/// A private-key file format [`NodeKey`] reads and writes (all unencrypted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFormat {
    /// `-----BEGIN OPENSSH PRIVATE KEY-----`: `ssh-keygen -t ecdsa -b 384`, and what
    /// `flower-supernode --auth-supernode-private-key` reads.
    OpenSsh,
    /// `-----BEGIN PRIVATE KEY-----`: PKCS#8 (flwr's `private_key_to_bytes`,
    /// `openssl genpkey`).
    Pkcs8,
    /// `-----BEGIN EC PRIVATE KEY-----`: SEC1 (`openssl ecparam -genkey`).
    Sec1,
}

impl std::str::FromStr for KeyFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "openssh" | "ssh" => Ok(Self::OpenSsh),
            "pkcs8" => Ok(Self::Pkcs8),
            "sec1" | "ec" => Ok(Self::Sec1),
            other => Err(Error::Key(format!(
                "unknown key format {other:?} (want openssh, pkcs8 or sec1)"
            ))),
        }
    }
}

/// A SuperNode's signing key and its public key as the SuperLink sees it (PEM bytes).
#[derive(Clone)]
pub struct NodeKey {
    signing: SigningKey,
    public_pem: Vec<u8>,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeKey")
            .field("public_pem", &String::from_utf8_lossy(&self.public_pem))
            .finish_non_exhaustive()
    }
}

/// The three signature headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    /// `flwr-public-key`.
    pub public_key: String,
    /// `flwr-timestamp`.
    pub timestamp: String,
    /// `flwr-signature`.
    pub signature: String,
}

impl NodeKey {
    /// A fresh random key (for a SuperLink without `--enable-supernode-auth`, where the node
    /// registers itself).
    #[must_use]
    pub fn generate() -> Self {
        // p384 0.13 uses rand_core 0.6; getrandom-backed OsRng via its re-export.
        Self::from_signing(SigningKey::random(
            &mut p384::elliptic_curve::rand_core::OsRng,
        ))
    }

    /// Parses a private key in any [`KeyFormat`]: OpenSSH, PKCS#8 PEM or SEC1 PEM. The key
    /// must be an unencrypted ECDSA P-384 key (flwr's default curve, and the one this node
    /// signs with).
    pub fn from_pem(text: &str) -> Result<Self> {
        let trimmed = text.trim_start();
        if trimmed.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----") {
            return Self::from_openssh(trimmed);
        }
        if trimmed.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
            return Err(Error::Key(
                "an encrypted PKCS#8 key; flwr reads unencrypted keys only \
                 (decrypt it with `openssl pkcs8 -in KEY -out PLAIN`)"
                    .into(),
            ));
        }
        if trimmed.starts_with("-----BEGIN PRIVATE KEY-----") {
            return SigningKey::from_pkcs8_pem(trimmed)
                .map(Self::from_signing)
                .map_err(|e| Error::Key(format!("not an ECDSA P-384 PKCS#8 private key ({e})")));
        }
        if trimmed.starts_with("-----BEGIN EC PRIVATE KEY-----") {
            if trimmed.contains("Proc-Type: 4,ENCRYPTED") {
                return Err(Error::Key(
                    "an encrypted SEC1 key; flwr reads unencrypted keys only".into(),
                ));
            }
            return p384::SecretKey::from_sec1_pem(trimmed)
                .map(|k| Self::from_signing(k.into()))
                .map_err(|e| Error::Key(format!("not a P-384 SEC1 private key ({e})")));
        }
        if trimmed.starts_with("ecdsa-sha2-") || trimmed.starts_with("-----BEGIN PUBLIC KEY") {
            return Err(Error::Key(
                "a public key, not a private key (the node needs the private half)".into(),
            ));
        }
        Err(Error::Key(
            "not a private key: expected an OpenSSH (-----BEGIN OPENSSH PRIVATE KEY-----), \
             PKCS#8 (-----BEGIN PRIVATE KEY-----) or SEC1 (-----BEGIN EC PRIVATE KEY-----) \
             ECDSA P-384 key"
                .into(),
        ))
    }

    /// Parses an OpenSSH private key (`-----BEGIN OPENSSH PRIVATE KEY-----`), as
    /// `ssh-keygen -t ecdsa -b 384 -N ''` writes it.
    pub fn from_openssh(text: &str) -> Result<Self> {
        let key = ssh_key::PrivateKey::from_openssh(text)
            .map_err(|e| Error::Key(format!("not a readable OpenSSH private key ({e})")))?;
        if key.is_encrypted() {
            return Err(Error::Key(
                "a passphrase-protected OpenSSH key; flwr reads unencrypted keys only \
                 (remove the passphrase with `ssh-keygen -p -N '' -f KEY`)"
                    .into(),
            ));
        }
        let (public, private) = match key.key_data() {
            KeypairData::Ecdsa(EcdsaKeypair::NistP384 { public, private }) => (public, private),
            KeypairData::Ecdsa(other) => {
                return Err(Error::Key(format!(
                    "an ECDSA {} key; this node signs with P-384 only \
                     (make one with `ssh-keygen -t ecdsa -b 384`)",
                    other.curve()
                )));
            }
            other => {
                return Err(Error::Key(format!(
                    "an OpenSSH {} key; flwr needs an ECDSA key \
                     (make one with `ssh-keygen -t ecdsa -b 384`)",
                    other
                        .algorithm()
                        .map_or_else(|_| "unknown".into(), |a| a.to_string())
                )));
            }
        };
        let secret = p384::SecretKey::from_slice(private.as_slice()).map_err(|e| {
            Error::Key(format!("bad P-384 private scalar in the OpenSSH key ({e})"))
        })?;
        if secret.public_key().to_encoded_point(false) != *public {
            return Err(Error::Key(
                "the OpenSSH key's public half does not match its private half".into(),
            ));
        }
        Ok(Self::from_signing(secret.into()))
    }

    /// Loads a private key from a file in any [`KeyFormat`]; errors name the file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bad = |reason: String| Error::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(format!("cannot read it: {e}")))?;
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| bad("not a text (PEM or OpenSSH) key file".into()))?;
        Self::from_pem(text).map_err(|e| match e {
            Error::Key(reason) => bad(reason),
            other => other,
        })
    }

    /// The private key in `format` (unencrypted). `comment` goes into OpenSSH keys only.
    pub fn to_private_pem(&self, format: KeyFormat, comment: &str) -> Result<Zeroizing<String>> {
        let secret = p384::SecretKey::from(&self.signing);
        match format {
            KeyFormat::OpenSsh => {
                let keypair = EcdsaKeypair::NistP384 {
                    public: secret.public_key().to_encoded_point(false),
                    private: EcdsaPrivateKey::from(secret),
                };
                ssh_key::PrivateKey::new(KeypairData::Ecdsa(keypair), comment)
                    .and_then(|k| k.to_openssh(ssh_key::LineEnding::LF))
                    .map_err(|e| Error::Key(format!("cannot encode an OpenSSH key: {e}")))
            }
            KeyFormat::Pkcs8 => self
                .signing
                .to_pkcs8_pem(LineEnding::LF)
                .map_err(|e| Error::Key(format!("cannot encode a PKCS#8 key: {e}"))),
            KeyFormat::Sec1 => secret
                .to_sec1_pem(LineEnding::LF)
                .map_err(|e| Error::Key(format!("cannot encode a SEC1 key: {e}"))),
        }
    }

    /// The public key as one OpenSSH line, `ecdsa-sha2-nistp384 AAAA… comment`: what
    /// `flwr supernode register <file> <connection>` reads (flwr parses it with
    /// `cryptography`'s `load_ssh_public_key`).
    #[must_use]
    pub fn openssh_public_key(&self, comment: &str) -> String {
        let public = ssh_key::public::EcdsaPublicKey::from(self.verifying_key());
        let mut line = ssh_key::PublicKey::new(ssh_key::public::KeyData::Ecdsa(public), comment)
            .to_openssh()
            // Encoding a valid P-384 point cannot fail.
            .unwrap_or_default();
        line.push('\n');
        line
    }

    /// Writes the private key to `path` in `format` (readable by the owner only, on Unix)
    /// and the OpenSSH public-key line to `path` + `.pub` (what `flwr supernode register`
    /// takes). Returns the public-key file's path.
    pub fn write_files(
        &self,
        path: impl AsRef<Path>,
        format: KeyFormat,
        comment: &str,
    ) -> Result<PathBuf> {
        let path = path.as_ref();
        let mut pub_path = path.as_os_str().to_owned();
        pub_path.push(".pub");
        let pub_path = PathBuf::from(pub_path);
        let io = |p: &Path, e: std::io::Error| Error::KeyFile {
            path: p.display().to_string(),
            reason: format!("cannot write it: {e}"),
        };
        let private = self.to_private_pem(format, comment)?;
        write_private(path, private.as_bytes()).map_err(|e| io(path, e))?;
        std::fs::write(&pub_path, self.openssh_public_key(comment))
            .map_err(|e| io(&pub_path, e))?;
        Ok(pub_path)
    }

    fn from_signing(signing: SigningKey) -> Self {
        let public_pem = VerifyingKey::from(&signing)
            .to_public_key_pem(LineEnding::LF)
            .map(String::into_bytes)
            // Encoding a valid curve point as SPKI cannot fail.
            .unwrap_or_default();
        Self {
            signing,
            public_pem,
        }
    }

    /// The public key as PEM SubjectPublicKeyInfo bytes (what `RegisterNode` and
    /// `ActivateNode` carry).
    #[must_use]
    pub fn public_pem(&self) -> &[u8] {
        &self.public_pem
    }

    /// The verifying half of the key.
    #[must_use]
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey::from(&self.signing)
    }

    /// DER ECDSA-SHA256 signature over `message` (Flower signs with SHA-256 on every curve).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>> {
        let digest = Sha256::digest(message);
        let sig: Signature = self
            .signing
            .sign_prehash(&digest)
            .map_err(|e| Error::Key(format!("signing failed: {e}")))?;
        Ok(sig.to_der().as_bytes().to_vec())
    }

    /// The headers for a request sent now.
    pub fn signed_headers(&self) -> Result<SignedHeaders> {
        self.signed_headers_at(&iso_timestamp_now())
    }

    /// The headers for a request signed with the given timestamp.
    pub fn signed_headers_at(&self, timestamp: &str) -> Result<SignedHeaders> {
        Ok(SignedHeaders {
            public_key: STANDARD.encode(&self.public_pem),
            timestamp: timestamp.to_owned(),
            signature: STANDARD.encode(self.sign(timestamp.as_bytes())?),
        })
    }
}

/// Creates (or truncates) `path` with owner-only permissions and writes `bytes`.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path)?.write_all(bytes)
}

/// Verifies a DER ECDSA-SHA256 signature as the SuperLink does (used by the tests).
#[must_use]
pub fn verify(key: &VerifyingKey, message: &[u8], der_signature: &[u8]) -> bool {
    let Ok(sig) = Signature::from_der(der_signature) else {
        return false;
    };
    key.verify_prehash(&Sha256::digest(message), &sig).is_ok()
}

/// The current UTC time as Python's `datetime.now(timezone.utc).isoformat()` writes it
/// (`2026-04-01T12:00:00.123456+00:00`), which the SuperLink parses with `fromisoformat`.
#[must_use]
pub fn iso_timestamp_now() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.6f+00:00")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use p384::pkcs8::DecodePublicKey;
    use std::path::Path;

    #[test]
    fn signature_verifies_with_the_public_key_from_the_header() {
        let key = NodeKey::generate();
        let ts = "2026-04-01T12:00:00.123456+00:00";
        let h = key.signed_headers_at(ts).unwrap();
        assert_eq!(h.timestamp, ts);
        // Rebuild the key the way the SuperLink does: base64 -> PEM -> public key.
        let pem = STANDARD.decode(&h.public_key).unwrap();
        let pem = String::from_utf8(pem).unwrap();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let vk = VerifyingKey::from_public_key_pem(&pem).unwrap();
        let sig = STANDARD.decode(&h.signature).unwrap();
        assert_eq!(sig[0], 0x30, "DER SEQUENCE");
        assert!(verify(&vk, ts.as_bytes(), &sig));
        assert!(!verify(&vk, b"2026-04-01T12:00:01.123456+00:00", &sig));
        let other = NodeKey::generate();
        assert!(!verify(&other.verifying_key(), ts.as_bytes(), &sig));
    }

    const FORMATS: [KeyFormat; 3] = [KeyFormat::OpenSsh, KeyFormat::Pkcs8, KeyFormat::Sec1];

    fn fixture(name: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name)
    }

    #[test]
    fn generated_keys_round_trip_in_every_format() {
        let key = NodeKey::generate();
        let ts = "2026-04-01T12:00:00.123456+00:00";
        for format in FORMATS {
            let text = key.to_private_pem(format, "round-trip").unwrap();
            let header = match format {
                KeyFormat::OpenSsh => "-----BEGIN OPENSSH PRIVATE KEY-----\n",
                KeyFormat::Pkcs8 => "-----BEGIN PRIVATE KEY-----\n",
                KeyFormat::Sec1 => "-----BEGIN EC PRIVATE KEY-----\n",
            };
            assert!(text.starts_with(header), "{format:?}: {}", &text[..40]);
            let back = NodeKey::from_pem(&text).unwrap();
            assert_eq!(back.public_pem(), key.public_pem(), "{format:?}");
            // Same private key: what one signs, the other's public key verifies.
            let sig = back.sign(ts.as_bytes()).unwrap();
            assert!(
                verify(&key.verifying_key(), ts.as_bytes(), &sig),
                "{format:?}"
            );
        }
    }

    #[test]
    fn written_files_load_back_and_the_public_line_is_openssh() {
        let dir = tempfile::tempdir().unwrap();
        for format in FORMATS {
            let key = NodeKey::generate();
            let path = dir.path().join(format!("node-{format:?}"));
            let pub_path = key.write_files(&path, format, "node 1").unwrap();
            assert_eq!(pub_path, dir.path().join(format!("node-{format:?}.pub")));
            let back = NodeKey::from_file(&path).unwrap();
            assert_eq!(back.public_pem(), key.public_pem(), "{format:?}");
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode();
                assert_eq!(
                    mode & 0o077,
                    0,
                    "{format:?}: private key readable by others"
                );
            }
            // The .pub line is what `flwr supernode register` reads: an OpenSSH
            // ecdsa-sha2-nistp384 key whose point is the node's public key.
            let line = std::fs::read_to_string(&pub_path).unwrap();
            assert!(line.starts_with("ecdsa-sha2-nistp384 AAAA"), "{line}");
            assert!(line.ends_with(" node 1\n"), "{line:?}");
            let parsed = ssh_key::PublicKey::from_openssh(line.trim_end()).unwrap();
            let vk = VerifyingKey::try_from(parsed.key_data().ecdsa().unwrap()).unwrap();
            assert_eq!(vk, key.verifying_key());
        }
    }

    #[test]
    fn ssh_keygen_key_loads_in_all_three_formats_as_flwr_registers_it() {
        // One ssh-keygen key, converted to SEC1 and PKCS#8 by ssh-keygen itself.
        let openssh = NodeKey::from_file(fixture("p384_openssh")).unwrap();
        let sec1 = NodeKey::from_file(fixture("p384_sec1.pem")).unwrap();
        let pkcs8 = NodeKey::from_file(fixture("p384_pkcs8.pem")).unwrap();
        assert_eq!(openssh.public_pem(), sec1.public_pem());
        assert_eq!(openssh.public_pem(), pkcs8.public_pem());
        // The header bytes equal what flwr stored when the .pub file was registered (the
        // SuperLink compares them byte for byte).
        let flwr = std::fs::read(fixture("p384_spki_flwr.pem")).unwrap();
        assert_eq!(openssh.public_pem(), flwr.as_slice());
        // And the public line we write equals ssh-keygen's, comment and all.
        let pub_line = std::fs::read_to_string(fixture("p384_openssh.pub")).unwrap();
        assert_eq!(openssh.openssh_public_key("iotids-test-fixture"), pub_line);
    }

    fn key_file_error(path: &Path) -> String {
        match NodeKey::from_file(path) {
            Err(e @ Error::KeyFile { .. }) => e.to_string(),
            other => panic!("{}: want a KeyFile error, got {other:?}", path.display()),
        }
    }

    #[test]
    fn files_that_are_not_usable_keys_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8], &str); 6] = [
            ("notes.txt", b"hello, not a key\n", "not a private key"),
            ("empty", b"", "not a private key"),
            ("binary", &[0xff, 0xfe, 0x00, 0x80], "not a text"),
            (
                "key.pub",
                b"ecdsa-sha2-nistp384 AAAAE2VjZHNh x\n",
                "a public key, not a private key",
            ),
            (
                "truncated",
                b"-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
                "not a readable OpenSSH private key",
            ),
            (
                "bad.pem",
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                "not an ECDSA P-384 PKCS#8 private key",
            ),
        ];
        for (name, bytes, want) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            let e = key_file_error(&path);
            assert!(e.contains(&path.display().to_string()), "{name}: {e}");
            assert!(e.contains(want), "{name}: {e}");
        }
        let missing = dir.path().join("missing");
        let e = key_file_error(&missing);
        assert!(
            e.contains(&missing.display().to_string()) && e.contains("cannot read"),
            "{e}"
        );

        let e = key_file_error(&fixture("p384_openssh_encrypted"));
        assert!(
            e.contains("p384_openssh_encrypted") && e.contains("passphrase"),
            "{e}"
        );
        let e = key_file_error(&fixture("p256_openssh"));
        assert!(e.contains("p256_openssh") && e.contains("P-384"), "{e}");
        assert!(NodeKey::from_pem("not a key").is_err());
    }

    #[test]
    fn key_format_names_parse() {
        assert_eq!("openssh".parse::<KeyFormat>().unwrap(), KeyFormat::OpenSsh);
        assert_eq!("PKCS8".parse::<KeyFormat>().unwrap(), KeyFormat::Pkcs8);
        assert_eq!("sec1".parse::<KeyFormat>().unwrap(), KeyFormat::Sec1);
        assert!("der".parse::<KeyFormat>().is_err());
    }

    #[test]
    fn timestamp_has_python_isoformat_shape() {
        let ts = iso_timestamp_now();
        assert_eq!(ts.len(), "2026-04-01T12:00:00.123456+00:00".len(), "{ts}");
        assert!(ts.ends_with("+00:00"));
        assert_eq!(&ts[10..11], "T");
    }
}
