//! The edge's side of one aggregation: it routes, and in the end unmasks the sum.

use std::collections::{BTreeMap, BTreeSet};

use curve25519_dalek::scalar::Scalar;
use x25519_dalek::PublicKey;

use crate::client::{mask_secret, pair_key, point, self_key};
use crate::message::{Inbox, KeyBook, Keys, Masked, Reveal, Shares, UnmaskRequest};
use crate::vss::{self, Commitment};
use crate::{Error, RoundSpec, apply_mask};

/// The sum the edge is left with, and who is in it.
#[derive(Debug, Clone, PartialEq)]
pub struct Aggregate {
    /// The sum of the included devices' vectors, in the ring.
    pub sum: Vec<u64>,
    /// Devices whose vectors are in the sum, ascending.
    pub included: Vec<u64>,
    /// Devices that shared keys but whose vectors are not in it (dropped or late).
    pub dropped: Vec<u64>,
    /// Devices left out for misbehaving, with why (ascending by id).
    pub excluded: Vec<(u64, String)>,
}

/// The edge in one aggregation. It sees public keys, sealed shares, commitments, masked
/// vectors, and at the end the shares that unmask the sum: never one device's vector.
#[derive(Debug)]
pub struct Server {
    spec: RoundSpec,
    circles: BTreeMap<u64, Vec<u64>>,
    keys: BTreeMap<u64, Keys>,
    /// Dealers whose shares were routed, with their commitments.
    dealt: BTreeMap<u64, (Commitment, Commitment)>,
    /// Pairs routed both ways (lo, hi).
    routed: BTreeSet<(u64, u64)>,
    masked: BTreeMap<u64, Masked>,
    excluded: BTreeMap<u64, String>,
    request: Option<UnmaskRequest>,
}

impl Server {
    /// The edge's side of `spec`.
    pub fn new(spec: RoundSpec) -> Server {
        Server {
            circles: spec.circles(),
            spec,
            keys: BTreeMap::new(),
            dealt: BTreeMap::new(),
            routed: BTreeSet::new(),
            masked: BTreeMap::new(),
            excluded: BTreeMap::new(),
            request: None,
        }
    }

    /// The spec, which every participant needs before stage 1.
    pub fn spec(&self) -> &RoundSpec {
        &self.spec
    }

    fn exclude(&mut self, id: u64, why: impl Into<String>) {
        self.excluded.entry(id).or_insert_with(|| why.into());
    }

    /// Stage 1: the advertised keys (one per participant; a stranger's, a second one or a
    /// key another device also advertised is left out) and each advertiser's key book.
    pub fn receive_keys(&mut self, keys: Vec<Keys>) -> BTreeMap<u64, KeyBook> {
        let mut seen: BTreeMap<[u8; 32], u64> = BTreeMap::new();
        for k in keys {
            if !self.circles.contains_key(&k.id) {
                continue;
            }
            if self.keys.contains_key(&k.id) {
                self.exclude(k.id, "advertised keys twice");
                continue;
            }
            let mut clash = None;
            for pk in [k.cipher, k.mask] {
                if let Some(&other) = seen.get(&pk) {
                    clash = Some(other);
                }
            }
            if k.cipher == k.mask {
                clash = Some(k.id);
            }
            if let Some(other) = clash {
                self.exclude(
                    k.id,
                    format!("advertised a key also advertised by device {other}"),
                );
                self.exclude(
                    other,
                    format!("advertised a key also advertised by device {}", k.id),
                );
                continue;
            }
            seen.insert(k.cipher, k.id);
            seen.insert(k.mask, k.id);
            self.keys.insert(k.id, k);
        }
        for id in self.excluded.keys() {
            self.keys.remove(id);
        }
        self.keys
            .keys()
            .map(|&id| {
                let keys = self.circles[&id]
                    .iter()
                    .filter_map(|n| self.keys.get(n).cloned())
                    .collect();
                (id, KeyBook { keys })
            })
            .collect()
    }

    /// Stage 2: each dealer's shares, checked for shape (commitments of the threshold's
    /// length, one sealed pair per neighbour that advertised, addressed right), and each
    /// dealer's inbox: the pairs dealt to it by neighbours it also dealt to.
    pub fn receive_shares(&mut self, shares: Vec<Shares>) -> BTreeMap<u64, Inbox> {
        let t = self.spec.threshold;
        let mut good: BTreeMap<u64, Shares> = BTreeMap::new();
        for s in shares {
            if !self.keys.contains_key(&s.id) || good.contains_key(&s.id) {
                if good.contains_key(&s.id) {
                    self.exclude(s.id, "dealt twice");
                }
                continue;
            }
            let neighbours: Vec<u64> = self.circles[&s.id]
                .iter()
                .copied()
                .filter(|n| *n != s.id && self.keys.contains_key(n))
                .collect();
            let mut to: Vec<u64> = s.sealed.iter().map(|x| x.to).collect();
            to.sort_unstable();
            let problem = if s.seed.threshold() != t || s.key.threshold() != t {
                Some(format!(
                    "commitments of {} and {} points, not {t}",
                    s.seed.threshold(),
                    s.key.threshold()
                ))
            } else if s.sealed.iter().any(|x| x.from != s.id) {
                Some("a sealed pair from another dealer".into())
            } else if to != neighbours {
                Some(format!(
                    "pairs for {to:?}, not its neighbours {neighbours:?}"
                ))
            } else {
                None
            };
            match problem {
                Some(p) => self.exclude(s.id, format!("dealt badly: {p}")),
                None => {
                    good.insert(s.id, s);
                }
            }
        }
        for id in self.excluded.keys() {
            good.remove(id);
        }
        let mut inboxes: BTreeMap<u64, Inbox> = good
            .keys()
            .map(|&id| (id, Inbox { from: Vec::new() }))
            .collect();
        for (&id, s) in &good {
            for sealed in &s.sealed {
                if good.contains_key(&sealed.to) {
                    self.routed.insert((id.min(sealed.to), id.max(sealed.to)));
                    if let Some(inbox) = inboxes.get_mut(&sealed.to) {
                        inbox
                            .from
                            .push((s.seed.clone(), s.key.clone(), sealed.clone()));
                    }
                }
            }
        }
        self.dealt = good
            .into_iter()
            .map(|(id, s)| (id, (s.seed, s.key)))
            .collect();
        inboxes
    }

    /// Stage 3: the masked vectors that arrived (those of devices that dealt; a wrong
    /// length or a second one excludes the device), and the request that unmasks them.
    ///
    /// # Errors
    ///
    /// [`Error::Failed`] when fewer devices remain than the threshold: the sum of so few
    /// would say too much about each, so the aggregation stops here.
    pub fn receive_masked(&mut self, masked: Vec<Masked>) -> crate::Result<UnmaskRequest> {
        let words = self.spec.length * 8;
        for m in masked {
            if !self.dealt.contains_key(&m.id) {
                continue;
            }
            let length = m.words.len();
            match self.masked.entry(m.id) {
                std::collections::btree_map::Entry::Occupied(_) => {
                    self.exclude(m.id, "sent two masked vectors");
                }
                std::collections::btree_map::Entry::Vacant(_) if length != words => {
                    self.exclude(
                        m.id,
                        format!("a masked vector of {length} bytes, not {words}"),
                    );
                }
                std::collections::btree_map::Entry::Vacant(slot) => {
                    slot.insert(m);
                }
            }
        }
        // A dealer some neighbour rejected is left out (its vector and the neighbour's
        // disagree on their pairwise mask); its dangling masks are removed with its key.
        let rejections: Vec<(u64, u64)> = self
            .masked
            .values()
            .flat_map(|m| m.rejected.iter().map(move |&r| (m.id, r)))
            .collect();
        for (by, r) in rejections {
            if self.dealt.contains_key(&r) && self.routed.contains(&(by.min(r), by.max(r))) {
                self.exclude(r, format!("its shares for device {by} did not check out"));
            }
        }
        let excluded: Vec<u64> = self.excluded.keys().copied().collect();
        for id in &excluded {
            self.masked.remove(id);
        }
        let survivors: Vec<u64> = self.masked.keys().copied().collect();
        let dropped: Vec<u64> = self
            .dealt
            .keys()
            .copied()
            .filter(|d| !self.masked.contains_key(d))
            .collect();
        if survivors.len() < self.spec.threshold {
            return Err(Error::Failed(format!(
                "{} of {} devices sent masked vectors, the threshold is {}",
                survivors.len(),
                self.spec.participants.len(),
                self.spec.threshold
            )));
        }
        let request = UnmaskRequest { survivors, dropped };
        self.request = Some(request.clone());
        Ok(request)
    }

    /// Whether `a` masked against `b`: both dealt, routed both ways, and `a` did not
    /// reject `b`.
    fn masked_against(&self, a: u64, b: u64) -> bool {
        self.routed.contains(&(a.min(b), a.max(b)))
            && self
                .masked
                .get(&a)
                .is_some_and(|m| !m.rejected.contains(&b))
    }

    /// Rebuilds the secret `owner` dealt from the revealed `shares` that check against
    /// `commitment`, and confirms it opens it.
    fn rebuild(
        &self,
        owner: u64,
        what: &str,
        shares: &[(u64, [u8; 32])],
        commitment: &Commitment,
    ) -> crate::Result<Scalar> {
        let t = self.spec.threshold;
        let parsed: Vec<(u64, Scalar)> = shares
            .iter()
            .filter_map(|(holder, b)| {
                Option::<Scalar>::from(Scalar::from_canonical_bytes(*b))
                    .map(|s| (point(*holder), s))
            })
            .collect();
        // The first t shares, if they rebuild a secret that opens the commitment (its
        // first point binds the secret), are right; only otherwise is each share checked
        // and the wrong ones dropped.
        if parsed.len() >= t {
            let secret = vss::combine(&parsed[..t]);
            if vss::opens(&secret, commitment) {
                return Ok(secret);
            }
        }
        let valid: Vec<(u64, Scalar)> = parsed
            .into_iter()
            .filter(|(x, s)| vss::verify(s, *x, commitment))
            .collect();
        if valid.len() < t {
            return Err(Error::Failed(format!(
                "{} valid shares of device {owner}'s {what}, the threshold is {t}",
                valid.len()
            )));
        }
        let secret = vss::combine(&valid[..t]);
        if !vss::opens(&secret, commitment) {
            return Err(Error::Failed(format!(
                "device {owner}'s {what} does not open its commitment"
            )));
        }
        Ok(secret)
    }

    /// Stage 4: the revealed shares (from survivors only; a share that fails its
    /// commitment is dropped), and the sum.
    ///
    /// # Errors
    ///
    /// Out of turn; [`Error::Failed`] when a survivor's seed or a dropped device's key
    /// cannot be rebuilt from the valid shares revealed (too many left).
    pub fn finish(mut self, reveals: Vec<Reveal>) -> crate::Result<Aggregate> {
        let Some(request) = self.request.take() else {
            return Err(Error::Protocol {
                who: "the edge".into(),
                problem: "unmasking before the masked vectors".into(),
                expected: "receive_keys, receive_shares, receive_masked, then finish".into(),
            });
        };
        let survivors: BTreeSet<u64> = request.survivors.iter().copied().collect();
        let mut seeds: BTreeMap<u64, Vec<(u64, [u8; 32])>> = BTreeMap::new();
        let mut keys: BTreeMap<u64, Vec<(u64, [u8; 32])>> = BTreeMap::new();
        let mut answered = BTreeSet::new();
        for r in reveals {
            if !survivors.contains(&r.id) || !answered.insert(r.id) {
                continue;
            }
            for (owner, share) in r.seeds {
                seeds.entry(owner).or_default().push((r.id, share));
            }
            for (owner, share) in r.keys {
                keys.entry(owner).or_default().push((r.id, share));
            }
        }
        let mut sum = vec![0u64; self.spec.length];
        for m in self.masked.values() {
            for (s, w) in sum.iter_mut().zip(m.vector()) {
                *s = s.wrapping_add(w);
            }
        }
        for &u in &request.survivors {
            let commitment = &self.dealt[&u].0;
            let seed = self.rebuild(
                u,
                "self-mask seed",
                seeds.get(&u).map_or(&[][..], |v| v),
                commitment,
            )?;
            apply_mask(&mut sum, self_key(&self.spec, &seed, u), false);
        }
        for &d in &request.dropped {
            let partners: Vec<u64> = request
                .survivors
                .iter()
                .copied()
                .filter(|&v| self.masked_against(v, d))
                .collect();
            if partners.is_empty() {
                continue;
            }
            let commitment = &self.dealt[&d].1;
            let scalar = self.rebuild(
                d,
                "mask key",
                keys.get(&d).map_or(&[][..], |v| v),
                commitment,
            )?;
            let secret = mask_secret(&scalar);
            if PublicKey::from(&secret).to_bytes() != self.keys[&d].mask {
                return Err(Error::Failed(format!(
                    "device {d}'s rebuilt mask key does not match the key it advertised"
                )));
            }
            for v in partners {
                let shared = secret.diffie_hellman(&PublicKey::from(self.keys[&v].mask));
                // v added its mask with d under the sign v < d: take it back out.
                apply_mask(
                    &mut sum,
                    pair_key(&self.spec, shared.as_bytes(), d, v),
                    v >= d,
                );
            }
        }
        Ok(Aggregate {
            sum,
            included: request.survivors,
            dropped: request.dropped,
            excluded: self.excluded.into_iter().collect(),
        })
    }
}
