//! A device's side of one aggregation.

use std::collections::BTreeMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use curve25519_dalek::scalar::Scalar;
use rand::{CryptoRng, RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroize;

use crate::message::{Inbox, KeyBook, Keys, Masked, Reveal, Sealed, Shares, UnmaskRequest};
use crate::vss::{self, Commitment};
use crate::{Error, RoundSpec, apply_mask, derive};

/// Where a client is in the four stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Advertised,
    Shared,
    Masked,
    Done,
}

/// The shares a neighbour dealt this device, once checked.
#[derive(Debug, Clone)]
struct Held {
    seed: Scalar,
    key: Scalar,
}

/// One device in one aggregation. Its secrets live only here and are wiped on drop.
pub struct Client {
    id: u64,
    spec: RoundSpec,
    circle: Vec<u64>,
    cipher: StaticSecret,
    mask_scalar: Scalar,
    mask: StaticSecret,
    seed: Scalar,
    stage: Stage,
    /// Neighbours' advertised keys, by id.
    book: BTreeMap<u64, Keys>,
    /// Checked shares held, by dealer (itself included).
    held: BTreeMap<u64, Held>,
    rng: ChaCha20Rng,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("id", &self.id)
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.mask_scalar.zeroize();
        self.seed.zeroize();
        for h in self.held.values_mut() {
            h.seed.zeroize();
            h.key.zeroize();
        }
    }
}

/// The AEAD key for shares dealt by `from` to `to`, from their channel agreement.
fn channel(spec: &RoundSpec, shared: &[u8; 32], from: u64, to: u64) -> ChaCha20Poly1305 {
    let mut key = derive(
        shared,
        &[b"share".as_slice(), &spec.context].concat(),
        &[from, to],
    );
    let cipher = ChaCha20Poly1305::new(Key::from_slice(&key));
    key.zeroize();
    cipher
}

/// The pairwise mask key of `a` and `b` from their mask agreement.
pub(crate) fn pair_key(spec: &RoundSpec, shared: &[u8; 32], a: u64, b: u64) -> [u8; 32] {
    let (lo, hi) = (a.min(b), a.max(b));
    derive(
        shared,
        &[b"pair".as_slice(), &spec.context].concat(),
        &[lo, hi],
    )
}

/// The self-mask key of a seed.
pub(crate) fn self_key(spec: &RoundSpec, seed: &Scalar, id: u64) -> [u8; 32] {
    derive(
        seed.as_bytes(),
        &[b"self".as_slice(), &spec.context].concat(),
        &[id],
    )
}

/// The x-coordinate of a device's shares.
pub(crate) fn point(id: u64) -> u64 {
    id + 1
}

/// The X25519 secret of a mask scalar (its 32 bytes; X25519 clamps them).
pub(crate) fn mask_secret(s: &Scalar) -> StaticSecret {
    StaticSecret::from(s.to_bytes())
}

impl Client {
    /// Device `id` joins the aggregation `spec` (stage 1): draws its keys and seed from
    /// `rng` and returns what it advertises.
    ///
    /// # Errors
    ///
    /// [`Error::Protocol`] when `id` is not a participant.
    pub fn new<R: RngCore + CryptoRng>(
        id: u64,
        spec: RoundSpec,
        rng: &mut R,
    ) -> crate::Result<(Client, Keys)> {
        let circle = spec.circle(id);
        if circle.is_empty() {
            return Err(Error::Protocol {
                who: format!("device {id}"),
                problem: "not a participant of this aggregation".into(),
                expected: format!("one of {:?}", spec.participants),
            });
        }
        let mut seed32 = [0u8; 32];
        rng.fill_bytes(&mut seed32);
        let mut own = ChaCha20Rng::from_seed(seed32);
        seed32.zeroize();
        let mut bytes = [0u8; 32];
        own.fill_bytes(&mut bytes);
        let cipher = StaticSecret::from(bytes);
        bytes.zeroize();
        let mask_scalar = vss::random_scalar(&mut own);
        let mask = mask_secret(&mask_scalar);
        let seed = vss::random_scalar(&mut own);
        let keys = Keys {
            id,
            cipher: PublicKey::from(&cipher).to_bytes(),
            mask: PublicKey::from(&mask).to_bytes(),
        };
        Ok((
            Client {
                id,
                spec,
                circle,
                cipher,
                mask_scalar,
                mask,
                seed,
                stage: Stage::Advertised,
                book: BTreeMap::new(),
                held: BTreeMap::new(),
                rng: own,
            },
            keys,
        ))
    }

    /// Its id.
    pub fn id(&self) -> u64 {
        self.id
    }

    fn out_of_turn(&self, step: &str) -> Error {
        Error::Protocol {
            who: format!("device {}", self.id),
            problem: format!("asked to {step} at stage {:?}", self.stage),
            expected: "setup, share keys, masked vector, unmask, in that order, once each".into(),
        }
    }

    /// Stage 2: deals its seed and mask key to the neighbours in `book` (entries from
    /// outside its circle, or twice, are ignored).
    ///
    /// # Errors
    ///
    /// Out of turn; fewer neighbours advertised than the threshold needs.
    pub fn share_keys(&mut self, book: &KeyBook) -> crate::Result<Shares> {
        if self.stage != Stage::Advertised {
            return Err(self.out_of_turn("share keys"));
        }
        for k in &book.keys {
            if k.id != self.id && self.circle.binary_search(&k.id).is_ok() {
                self.book.entry(k.id).or_insert_with(|| k.clone());
            }
        }
        let t = self.spec.threshold;
        if self.book.len() + 1 < t {
            return Err(Error::Failed(format!(
                "device {}: {} neighbours advertised keys, the threshold needs {}",
                self.id,
                self.book.len(),
                t - 1
            )));
        }
        let holders: Vec<u64> = std::iter::once(self.id)
            .chain(self.book.keys().copied())
            .collect();
        let points: Vec<u64> = holders.iter().map(|&h| point(h)).collect();
        let (seed_shares, seed_c) = vss::deal(self.seed, t, &points, &mut self.rng);
        let (key_shares, key_c) = vss::deal(self.mask_scalar, t, &points, &mut self.rng);
        let mut sealed = Vec::with_capacity(holders.len() - 1);
        for (i, &h) in holders.iter().enumerate() {
            if h == self.id {
                self.held.insert(
                    h,
                    Held {
                        seed: seed_shares[i],
                        key: key_shares[i],
                    },
                );
                continue;
            }
            let peer = PublicKey::from(self.book[&h].cipher);
            let shared = self.cipher.diffie_hellman(&peer);
            let aead = channel(&self.spec, shared.as_bytes(), self.id, h);
            let mut plain = [0u8; 64];
            plain[..32].copy_from_slice(seed_shares[i].as_bytes());
            plain[32..].copy_from_slice(key_shares[i].as_bytes());
            let aad = [self.id.to_le_bytes(), h.to_le_bytes()].concat();
            let ciphertext = aead
                .encrypt(
                    Nonce::from_slice(&[0u8; 12]),
                    Payload {
                        msg: &plain,
                        aad: &aad,
                    },
                )
                .map_err(|_| Error::Failed("sealing a share failed".into()))?;
            plain.zeroize();
            sealed.push(Sealed {
                from: self.id,
                to: h,
                ciphertext,
            });
        }
        self.stage = Stage::Shared;
        Ok(Shares {
            id: self.id,
            seed: seed_c,
            key: key_c,
            sealed,
        })
    }

    /// Opens and checks one dealt pair; None when it does not open or fails a commitment.
    fn open(&self, seed_c: &Commitment, key_c: &Commitment, s: &Sealed) -> Option<Held> {
        let t = self.spec.threshold;
        if s.to != self.id || seed_c.threshold() != t || key_c.threshold() != t {
            return None;
        }
        let keys = self.book.get(&s.from)?;
        let shared = self.cipher.diffie_hellman(&PublicKey::from(keys.cipher));
        let aead = channel(&self.spec, shared.as_bytes(), s.from, self.id);
        let aad = [s.from.to_le_bytes(), self.id.to_le_bytes()].concat();
        let mut plain = aead
            .decrypt(
                Nonce::from_slice(&[0u8; 12]),
                Payload {
                    msg: &s.ciphertext,
                    aad: &aad,
                },
            )
            .ok()?;
        if plain.len() != 64 {
            plain.zeroize();
            return None;
        }
        let mut a = [0u8; 32];
        let mut b = [0u8; 32];
        a.copy_from_slice(&plain[..32]);
        b.copy_from_slice(&plain[32..]);
        plain.zeroize();
        let seed = Option::<Scalar>::from(Scalar::from_canonical_bytes(a))?;
        let key = Option::<Scalar>::from(Scalar::from_canonical_bytes(b))?;
        let x = point(self.id);
        (vss::verify(&seed, x, seed_c) && vss::verify(&key, x, key_c)).then_some(Held { seed, key })
    }

    /// Stage 3: opens the shares in `inbox`, then masks `vector` (already in the ring, of
    /// the spec's length): its self mask, and a pairwise mask for every neighbour whose
    /// shares checked out.
    ///
    /// # Errors
    ///
    /// Out of turn; a vector of another length.
    pub fn mask(&mut self, inbox: &Inbox, vector: &[u64]) -> crate::Result<Masked> {
        if self.stage != Stage::Shared {
            return Err(self.out_of_turn("mask"));
        }
        if vector.len() != self.spec.length {
            return Err(Error::Protocol {
                who: format!("device {}", self.id),
                problem: format!("a vector of {} words", vector.len()),
                expected: format!("{} words", self.spec.length),
            });
        }
        let mut rejected = Vec::new();
        let mut pairs = Vec::new();
        for (seed_c, key_c, s) in &inbox.from {
            if s.from == self.id || self.held.contains_key(&s.from) {
                continue;
            }
            match self.open(seed_c, key_c, s) {
                Some(h) => {
                    self.held.insert(s.from, h);
                    pairs.push(s.from);
                }
                None => rejected.push(s.from),
            }
        }
        let mut words = vector.to_vec();
        apply_mask(&mut words, self_key(&self.spec, &self.seed, self.id), true);
        for &p in &pairs {
            let shared = self
                .mask
                .diffie_hellman(&PublicKey::from(self.book[&p].mask));
            let key = pair_key(&self.spec, shared.as_bytes(), self.id, p);
            apply_mask(&mut words, key, self.id < p);
        }
        rejected.sort_unstable();
        rejected.dedup();
        self.stage = Stage::Masked;
        Ok(Masked {
            id: self.id,
            words: Masked::pack(&words),
            rejected,
        })
    }

    /// Stage 4: reveals its shares of the survivors' seeds and of the dropped devices'
    /// keys, once.
    ///
    /// # Errors
    ///
    /// Out of turn or asked twice; a request that names a device both ways, leaves this
    /// device out of the survivors, or has fewer survivors than the threshold (an edge
    /// that asks that is trying to read one vector).
    pub fn unmask(&mut self, request: &UnmaskRequest) -> crate::Result<Reveal> {
        if self.stage != Stage::Masked {
            return Err(self.out_of_turn("unmask"));
        }
        let refuse = |problem: String| Error::Protocol {
            who: format!("device {}", self.id),
            problem,
            expected: format!(
                "disjoint survivors (this device among them, at least {}) and dropped devices",
                self.spec.threshold
            ),
        };
        if let Some(both) = request
            .survivors
            .iter()
            .find(|s| request.dropped.contains(s))
        {
            return Err(refuse(format!(
                "device {both} named as survivor and dropped"
            )));
        }
        if !request.survivors.contains(&self.id) {
            return Err(refuse("this device not among the survivors".into()));
        }
        let mut distinct = request.survivors.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() < self.spec.threshold {
            return Err(refuse(format!("{} survivors", distinct.len())));
        }
        self.stage = Stage::Done;
        let seeds = distinct
            .iter()
            .filter_map(|s| self.held.get(s).map(|h| (*s, h.seed.to_bytes())))
            .collect();
        let keys = request
            .dropped
            .iter()
            .filter_map(|d| self.held.get(d).map(|h| (*d, h.key.to_bytes())))
            .collect();
        Ok(Reveal {
            id: self.id,
            seeds,
            keys,
        })
    }
}
