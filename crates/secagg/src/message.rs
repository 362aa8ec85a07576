//! The protocol's messages, in the order they travel. Each is plain data with a compact
//! binary encoding ([`encode`], [`decode`]; postcard), which is what a transport carries
//! and what its byte counts count.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::vss::Commitment;

/// Stage 1, device → edge: its public keys for this aggregation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Keys {
    /// The device.
    pub id: u64,
    /// X25519 public key of its share channel.
    pub cipher: [u8; 32],
    /// X25519 public key of its pairwise masks.
    pub mask: [u8; 32],
}

/// Stage 1, edge → device: the keys its circle advertised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyBook {
    /// One entry per neighbour that advertised (the device itself included).
    pub keys: Vec<Keys>,
}

/// One neighbour's two shares, sealed for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sealed {
    /// The dealer.
    pub from: u64,
    /// The holder.
    pub to: u64,
    /// ChaCha20-Poly1305 of the holder's share of the dealer's self-mask seed and of its
    /// mask key (64 bytes and a 16-byte tag).
    pub ciphertext: Vec<u8>,
}

/// Stage 2, device → edge: the commitments of its two dealings and a sealed pair of
/// shares for each neighbour in its key book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shares {
    /// The dealer.
    pub id: u64,
    /// Commitment to the self-mask seed's polynomial.
    pub seed: Commitment,
    /// Commitment to the mask key's polynomial.
    pub key: Commitment,
    /// One per neighbour, itself not included (it keeps its own shares).
    pub sealed: Vec<Sealed>,
}

/// Stage 2, edge → device: what its neighbours dealt it, with their commitments. The edge
/// routes a pair only both ways (`a` gets `b`'s shares iff `b` gets `a`'s), so two devices
/// agree on whether they mask against each other.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbox {
    /// Per dealer: its seed and key commitments and the pair sealed for this device.
    pub from: Vec<(Commitment, Commitment, Sealed)>,
}

/// Stage 3, device → edge: its masked vector and the dealers whose shares it rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Masked {
    /// The device.
    pub id: u64,
    /// The masked words, little-endian, 8 bytes each.
    pub words: Vec<u8>,
    /// Dealers whose shares did not open or failed their commitment: it did not mask
    /// against them, and the edge leaves them out.
    pub rejected: Vec<u64>,
}

impl Masked {
    /// The masked words.
    pub fn vector(&self) -> Vec<u64> {
        self.words
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                u64::from_le_bytes(b)
            })
            .collect()
    }

    pub(crate) fn pack(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }
}

/// Stage 4, edge → device: whose self-mask seeds and whose mask keys to reveal shares of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnmaskRequest {
    /// Devices whose masked vectors are in the sum: reveal shares of their seeds.
    pub survivors: Vec<u64>,
    /// Devices that shared but whose vectors are not in the sum (dropped, late or
    /// rejected): reveal shares of their mask keys.
    pub dropped: Vec<u64>,
}

/// Stage 4, device → edge: the shares asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reveal {
    /// The device revealing.
    pub id: u64,
    /// `(owner, share)` of survivors' self-mask seeds.
    pub seeds: Vec<(u64, [u8; 32])>,
    /// `(owner, share)` of dropped devices' mask keys.
    pub keys: Vec<(u64, [u8; 32])>,
}

/// A message's bytes.
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    // postcard serialises these plain structs into a Vec without failing.
    postcard::to_allocvec(message).unwrap_or_default()
}

/// A message from its bytes.
///
/// # Errors
///
/// [`crate::Error::Decode`] when they are not one.
pub fn decode<T: DeserializeOwned>(kind: &'static str, bytes: &[u8]) -> crate::Result<T> {
    postcard::from_bytes(bytes).map_err(|e| crate::Error::Decode {
        kind,
        reason: e.to_string(),
    })
}
