//! The node's identity: an ECDSA P-384 key that signs every Fleet request.
//!
//! Flower's `NodeAuthMiddleware` (flwr 1.40+) rejects any Fleet request without three
//! headers, even with node authentication off: `flwr-public-key` (base64 of the PEM
//! SubjectPublicKeyInfo), `flwr-timestamp` (ISO-8601 UTC, within 300 s of the SuperLink's
//! clock) and `flwr-signature` (base64 of the DER ECDSA-SHA256 signature over the timestamp's
//! ASCII bytes). With `--enable-supernode-auth` the key must be registered beforehand, so it
//! can be loaded from a PEM file ([`NodeKey::from_pem`]).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p384::ecdsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use p384::ecdsa::{Signature, SigningKey, VerifyingKey};
use p384::pkcs8::{DecodePrivateKey, EncodePublicKey, LineEnding};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Header carrying the base64 PEM public key.
pub const PUBLIC_KEY_HEADER: &str = "flwr-public-key";
/// Header carrying the signed ISO-8601 timestamp.
pub const TIMESTAMP_HEADER: &str = "flwr-timestamp";
/// Header carrying the base64 DER signature of the timestamp.
pub const SIGNATURE_HEADER: &str = "flwr-signature";

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

    /// Loads a pre-registered key from PEM: PKCS#8 (`BEGIN PRIVATE KEY`) or SEC1
    /// (`BEGIN EC PRIVATE KEY`). Its public key must be the one registered with
    /// `flwr supernode register`.
    pub fn from_pem(pem: &str) -> Result<Self> {
        if let Ok(k) = SigningKey::from_pkcs8_pem(pem) {
            return Ok(Self::from_signing(k));
        }
        let secret = p384::SecretKey::from_sec1_pem(pem)
            .map_err(|e| Error::Key(format!("not a P-384 PKCS#8 or SEC1 PEM private key ({e})")))?;
        Ok(Self::from_signing(secret.into()))
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

    #[test]
    fn pem_round_trip_keeps_the_identity() {
        use p384::pkcs8::EncodePrivateKey;
        let key = NodeKey::generate();
        let pem = key.signing.to_pkcs8_pem(LineEnding::LF).unwrap();
        let back = NodeKey::from_pem(&pem).unwrap();
        assert_eq!(back.public_pem(), key.public_pem());
        assert!(NodeKey::from_pem("not a key").is_err());
    }

    #[test]
    fn timestamp_has_python_isoformat_shape() {
        let ts = iso_timestamp_now();
        assert_eq!(ts.len(), "2026-04-01T12:00:00.123456+00:00".len(), "{ts}");
        assert!(ts.ends_with("+00:00"));
        assert_eq!(&ts[10..11], "T");
    }
}
