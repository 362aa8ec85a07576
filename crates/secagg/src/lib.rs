//! Secure aggregation for the edge tier: devices mask their updates so that the edge
//! learns the sum of the updates of the devices that stayed, and nothing about any one of
//! them, even when some drop mid-round (Bonawitz et al., CCS 2017, with the sparse
//! neighbourhoods of SecAgg+, Bell et al., CCS 2020, the variant Flower ships).
//!
//! # The protocol, one aggregation
//!
//! The edge ([`Server`]) fixes a [`RoundSpec`]: the participants, a context that binds
//! every key, share and mask to this aggregation (run, round, edge round, edge), the
//! neighbourhood size `k` and the threshold `t`. Each device ([`Client`]) then goes
//! through four stages, the edge relaying every message (devices never talk directly):
//!
//! 1. **setup**: it draws two X25519 key pairs (one for the share channel, one for the
//!    pairwise masks) and a self-mask seed, and advertises the public keys ([`Keys`]);
//! 2. **share keys**: with its neighbours' public keys ([`KeyBook`]) it splits its
//!    self-mask seed and its mask secret key t-of-k by Feldman's verifiable secret
//!    sharing ([`vss`]), and seals each neighbour's two shares with ChaCha20-Poly1305 under
//!    a key HKDF-SHA256 derives from their X25519 agreement ([`Shares`]);
//! 3. **collect masked vectors**: it opens the shares routed to it ([`Inbox`]), checks
//!    each against its dealer's commitment (a device whose share fails is *rejected*: it
//!    is reported and left out, never fatal), and sends its quantised update plus its
//!    self mask plus, for every neighbour that shared, a pairwise mask that the neighbour
//!    adds with the other sign ([`Masked`]); masks are ChaCha20 streams keyed by HKDF of
//!    the seed or of the X25519 agreement, words of the ring ℤ/2⁶⁴;
//! 4. **unmask**: told who survived and who dropped ([`UnmaskRequest`]), it reveals its
//!    shares of the survivors' self-mask seeds and of the dropped devices' mask keys,
//!    never both for one device, and answers once ([`Reveal`]).
//!
//! The edge rebuilds each survivor's seed and each dropped device's key from `t` revealed
//! shares and checks the result against the dealer's commitment (on a mismatch it checks
//! every share and rebuilds from the valid ones), removes the self masks and
//! the dropped devices' dangling pairwise masks, and is left with the sum of the
//! survivors' vectors ([`Aggregate`]). Dropouts after stage 2 cost nothing as long as every
//! neighbourhood keeps `t` survivors; below that the aggregation fails (the edge round
//! yields nothing) rather than reveal a vector.
//!
//! What it protects against, and what not: an edge that follows the protocol (however
//! curious) learns only the sum; so does an edge colluding with fewer than `t` of a
//! device's neighbours. It does not protect the sum itself (differential privacy does),
//! and it does not stop a device from sending a wrong but well-formed update (robust
//! aggregation does, and needs each update: the two exclude each other). With `t` above
//! half the neighbourhood, an edge that lies about who dropped still cannot obtain both a
//! device's self-mask seed and its mask key. Real values travel in fixed point
//! ([`fixed`]).

mod client;
pub mod fixed;
mod message;
mod server;
pub mod vss;

use hkdf::Hkdf;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

pub use client::Client;
pub use fixed::Fixed;
pub use message::{
    Inbox, KeyBook, Keys, Masked, Reveal, Sealed, Shares, UnmaskRequest, decode, encode,
};
pub use server::{Aggregate, Server};

/// What goes wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting out of range.
    #[error("secure aggregation: {name} = {value} is not allowed: {allowed}")]
    Setting {
        /// The setting.
        name: &'static str,
        /// Its value.
        value: String,
        /// What is allowed.
        allowed: String,
    },
    /// A value the fixed-point encoding cannot carry.
    #[error("secure aggregation: value {index} is {value}; allowed: {allowed}")]
    Value {
        /// Its index in the vector.
        index: usize,
        /// The value.
        value: f64,
        /// What is allowed.
        allowed: String,
    },
    /// A message out of turn or that does not fit this aggregation.
    #[error("secure aggregation: {who}: {problem} (expected {expected})")]
    Protocol {
        /// Whose message or which step.
        who: String,
        /// What is wrong.
        problem: String,
        /// What was expected.
        expected: String,
    },
    /// The aggregation cannot complete: too few survivors or shares.
    #[error("secure aggregation failed: {0}")]
    Failed(String),
    /// A message's bytes do not decode.
    #[error("secure aggregation: a {kind} message does not decode: {reason}")]
    Decode {
        /// The message type.
        kind: &'static str,
        /// postcard's reason.
        reason: String,
    },
}

/// The crate's result.
pub type Result<T> = std::result::Result<T, Error>;

/// How large a device's neighbourhood is and how many of it rebuild a secret.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Neighbourhood size `k`, the device included (None: [`default_neighbours`]).
    pub neighbours: Option<usize>,
    /// Shares that rebuild a secret `t` (None: `⌊k/2⌋ + 1`, a majority).
    pub threshold: Option<usize>,
    /// The fixed-point encoding of the vectors.
    #[serde(default)]
    pub fixed: Fixed,
}

/// The default neighbourhood for `n` participants: everyone (SecAgg) up to 64, then
/// `max(64, 2⌈3·log₂ n⌉ + 1)` (SecAgg+'s logarithmic neighbourhoods, sized so that with a
/// third of the devices dropping, a neighbourhood keeps a majority with overwhelming
/// probability).
pub fn default_neighbours(n: usize) -> usize {
    if n <= 64 {
        return n;
    }
    let log = (n as f64).log2();
    (2 * (3.0 * log).ceil() as usize + 1).max(64).min(n)
}

/// One aggregation's public parameters, which the edge sends every participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundSpec {
    /// Binds keys, shares and masks to this aggregation (a hash of run, round, edge round
    /// and edge): nothing carries over to another.
    pub context: [u8; 32],
    /// The participants' ids, ascending, distinct.
    pub participants: Vec<u64>,
    /// Neighbourhood size `k`, the device included.
    pub neighbours: usize,
    /// Shares that rebuild a secret.
    pub threshold: usize,
    /// Words per vector.
    pub length: usize,
    /// The fixed-point encoding.
    pub fixed: Fixed,
}

impl RoundSpec {
    /// The spec for `participants` (sorted and deduplicated here) summing vectors of
    /// `length` words, under `settings`.
    ///
    /// # Errors
    ///
    /// [`Error::Setting`] for fewer than 2 participants, a neighbourhood outside
    /// `2..=participants` (or above 255), a threshold outside `2..=k`, or an id of
    /// `u64::MAX`.
    pub fn new(
        context: [u8; 32],
        mut participants: Vec<u64>,
        length: usize,
        settings: Settings,
    ) -> Result<RoundSpec> {
        participants.sort_unstable();
        participants.dedup();
        let n = participants.len();
        if n < 2 {
            return Err(Error::Setting {
                name: "participants",
                value: n.to_string(),
                allowed: "at least 2: the sum of one update is the update".into(),
            });
        }
        if participants.last() == Some(&u64::MAX) {
            return Err(Error::Setting {
                name: "participant id",
                value: u64::MAX.to_string(),
                allowed: "below u64::MAX".into(),
            });
        }
        let k = settings.neighbours.unwrap_or_else(|| default_neighbours(n));
        if k < 2 || k > n || k > 255 {
            return Err(Error::Setting {
                name: "neighbours",
                value: k.to_string(),
                allowed: format!("2 to {} (the participants, at most 255)", n.min(255)),
            });
        }
        let t = settings.threshold.unwrap_or(k / 2 + 1);
        if t < 2 || t > k {
            return Err(Error::Setting {
                name: "threshold",
                value: t.to_string(),
                allowed: format!("2 to {k} (the neighbourhood)"),
            });
        }
        Ok(RoundSpec {
            context,
            participants,
            neighbours: k,
            threshold: t,
            length,
            fixed: settings.fixed,
        })
    }

    /// Every participant's circle: the devices it shares with and masks against, itself
    /// included, ascending. Participants sit on a ring in an order drawn from the context
    /// and each takes the `k − 1` nearest around it (a Harary graph, as SecAgg+ builds
    /// it), so whom a device shares with is fixed before anyone speaks; with an even `k`
    /// the ring is lopsided, and the circles are made symmetric (`a` in `b`'s iff `b` in
    /// `a`'s).
    pub fn circles(&self) -> std::collections::BTreeMap<u64, Vec<u64>> {
        let n = self.participants.len();
        if self.neighbours >= n {
            return self
                .participants
                .iter()
                .map(|&p| (p, self.participants.clone()))
                .collect();
        }
        let ring = self.ring();
        let (below, above) = ((self.neighbours - 1) / 2, self.neighbours / 2);
        let mut circles: std::collections::BTreeMap<u64, Vec<u64>> =
            self.participants.iter().map(|&p| (p, vec![p])).collect();
        for (at, &id) in ring.iter().enumerate() {
            for j in 1..=above.max(below) {
                for other in [
                    (j <= above).then(|| ring[(at + j) % n]),
                    (j <= below).then(|| ring[(at + n - j) % n]),
                ]
                .into_iter()
                .flatten()
                {
                    for (a, b) in [(id, other), (other, id)] {
                        if let Some(c) = circles.get_mut(&a) {
                            c.push(b);
                        }
                    }
                }
            }
        }
        for c in circles.values_mut() {
            c.sort_unstable();
            c.dedup();
        }
        circles
    }

    /// `id`'s circle ([`RoundSpec::circles`]); empty for an id not participating.
    pub fn circle(&self, id: u64) -> Vec<u64> {
        self.circles().remove(&id).unwrap_or_default()
    }

    fn ring(&self) -> Vec<u64> {
        let mut ring = self.participants.clone();
        let mut rng = ChaCha20Rng::from_seed(derive(&self.context, b"ring", &[]));
        for i in (1..ring.len()).rev() {
            let j = rng.random_range(0..=i);
            ring.swap(i, j);
        }
        ring
    }
}

/// The context of one aggregation: SHA-256 of a label and the numbers that name it.
pub fn context(label: &str, numbers: &[u64]) -> [u8; 32] {
    use sha2::Digest;
    let mut h = Sha256::new();
    h.update(b"iotids-secagg/v1\0");
    h.update(label.as_bytes());
    h.update([0]);
    for n in numbers {
        h.update(n.to_le_bytes());
    }
    h.finalize().into()
}

/// 32 bytes HKDF-SHA256 derives from `secret` for `purpose` in `context`, and `ids`.
pub(crate) fn derive(secret: &[u8], purpose: &[u8], ids: &[u64]) -> [u8; 32] {
    let hk = Hkdf::<Sha256>::new(Some(b"iotids-secagg/v1"), secret);
    let mut info = Vec::with_capacity(purpose.len() + 8 * ids.len());
    info.extend_from_slice(purpose);
    for id in ids {
        info.extend_from_slice(&id.to_le_bytes());
    }
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's limit of 255 · 32.
    if hk.expand(&info, &mut out).is_err() {
        unreachable!("HKDF-SHA256 expands 32 bytes");
    }
    out
}

/// Adds (`sign` true) or subtracts the ChaCha20 mask keyed `key` to `words`.
pub(crate) fn apply_mask(words: &mut [u64], key: [u8; 32], add: bool) {
    use rand::RngCore;
    let mut rng = ChaCha20Rng::from_seed(key);
    for w in words.iter_mut() {
        let m = rng.next_u64();
        *w = if add {
            w.wrapping_add(m)
        } else {
            w.wrapping_sub(m)
        };
    }
}

#[cfg(test)]
mod tests;
