//! Feldman's verifiable secret sharing over Ristretto255: Shamir's t-of-n scheme with the
//! polynomial's coefficients committed in the group, so a receiver checks its share on
//! arrival and the aggregator checks every share revealed to it.
//!
//! A dealer draws `f(x) = s + a₁x + … + a_{t−1}x^{t−1}` over the scalar field of
//! Ristretto255 (order ℓ ≈ 2²⁵²), gives holder `i` the share `f(i)`, and publishes
//! `Cⱼ = aⱼ·G`. A share is valid iff `f(i)·G = Σⱼ iʲ·Cⱼ`; any `t` valid shares give `s` by
//! Lagrange interpolation at 0, fewer give nothing about it. The group arithmetic is
//! curve25519-dalek's; what is here is the scheme (Shamir 1979, Feldman 1987).

use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::VartimeMultiscalarMul;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

/// The public commitments `Cⱼ = aⱼ·G` of one dealing, `C₀` first (the secret's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commitment(pub Vec<[u8; 32]>);

impl Commitment {
    /// The threshold the dealing was made for (its polynomial's coefficients).
    pub fn threshold(&self) -> usize {
        self.0.len()
    }

    fn points(&self) -> Option<Vec<RistrettoPoint>> {
        self.0
            .iter()
            .map(|c| CompressedRistretto(*c).decompress())
            .collect()
    }
}

/// A uniformly random scalar.
pub fn random_scalar<R: RngCore + CryptoRng>(rng: &mut R) -> Scalar {
    let mut wide = [0u8; 64];
    rng.fill_bytes(&mut wide);
    let s = Scalar::from_bytes_mod_order_wide(&wide);
    zeroize::Zeroize::zeroize(&mut wide);
    s
}

/// Shares of `secret` for the holders at `points` (nonzero, distinct x-coordinates),
/// any `threshold` of which rebuild it, and the commitment to check them by.
pub fn deal<R: RngCore + CryptoRng>(
    secret: Scalar,
    threshold: usize,
    points: &[u64],
    rng: &mut R,
) -> (Vec<Scalar>, Commitment) {
    let mut coefficients = Vec::with_capacity(threshold.max(1));
    coefficients.push(secret);
    for _ in 1..threshold.max(1) {
        coefficients.push(random_scalar(rng));
    }
    let commitment = Commitment(
        coefficients
            .iter()
            .map(|a| RistrettoPoint::mul_base(a).compress().to_bytes())
            .collect(),
    );
    let shares = points
        .iter()
        .map(|&x| {
            let x = Scalar::from(x);
            // Horner: f(x) = (…(a_{t−1}·x + a_{t−2})·x + …)·x + a₀.
            coefficients
                .iter()
                .rev()
                .fold(Scalar::ZERO, |acc, a| acc * x + a)
        })
        .collect();
    for a in &mut coefficients {
        zeroize::Zeroize::zeroize(a);
    }
    (shares, commitment)
}

/// Whether `share` is holder `x`'s share of the dealing committed to by `commitment`.
pub fn verify(share: &Scalar, x: u64, commitment: &Commitment) -> bool {
    let Some(points) = commitment.points() else {
        return false;
    };
    let x = Scalar::from(x);
    let mut power = Scalar::ONE;
    let mut powers = Vec::with_capacity(points.len());
    for _ in 0..points.len() {
        powers.push(power);
        power *= x;
    }
    let expected = RistrettoPoint::vartime_multiscalar_mul(&powers, &points);
    RistrettoPoint::mul_base(share) == expected
}

/// The secret from shares `(x, f(x))` at distinct nonzero points (at least the dealing's
/// threshold of them, or the result is not the secret): Lagrange interpolation at 0.
pub fn combine(shares: &[(u64, Scalar)]) -> Scalar {
    let mut secret = Scalar::ZERO;
    for (i, (xi, yi)) in shares.iter().enumerate() {
        let xi = Scalar::from(*xi);
        let (mut num, mut den) = (Scalar::ONE, Scalar::ONE);
        for (j, (xj, _)) in shares.iter().enumerate() {
            if i != j {
                let xj = Scalar::from(*xj);
                num *= xj;
                den *= xj - xi;
            }
        }
        secret += yi * num * den.invert();
    }
    secret
}

/// Whether `secret`'s commitment is `commitment`'s first point.
pub fn opens(secret: &Scalar, commitment: &Commitment) -> bool {
    commitment
        .0
        .first()
        .is_some_and(|c0| RistrettoPoint::mul_base(secret).compress().to_bytes() == *c0)
}

/// The identity's encoding (an invalid commitment to no secret), for tests.
#[cfg(test)]
pub(crate) fn identity() -> [u8; 32] {
    use curve25519_dalek::traits::Identity;
    RistrettoPoint::identity().compress().to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn any_threshold_shares_rebuild_the_secret_and_fewer_do_not() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let secret = random_scalar(&mut rng);
        let xs: Vec<u64> = (1..=7).collect();
        let (shares, commitment) = deal(secret, 4, &xs, &mut rng);
        assert_eq!(commitment.threshold(), 4);
        assert!(opens(&secret, &commitment));
        let pts: Vec<(u64, Scalar)> = xs.iter().copied().zip(shares.iter().copied()).collect();
        for start in 0..4 {
            assert_eq!(combine(&pts[start..start + 4]), secret);
        }
        assert_eq!(combine(&[pts[6], pts[1], pts[4], pts[2]]), secret);
        assert_ne!(combine(&pts[..3]), secret);
        for (x, s) in &pts {
            assert!(verify(s, *x, &commitment));
        }
    }

    #[test]
    fn a_wrong_share_fails_its_check() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let secret = random_scalar(&mut rng);
        let (mut shares, commitment) = deal(secret, 3, &[1, 2, 3, 4], &mut rng);
        shares[2] += Scalar::ONE;
        assert!(verify(&shares[0], 1, &commitment));
        assert!(!verify(&shares[2], 3, &commitment));
        // Another holder's share is not this holder's.
        assert!(!verify(&shares[0], 2, &commitment));
        let bad = Commitment(vec![[0xff; 32]; 3]);
        assert!(!verify(&shares[0], 1, &bad));
        assert!(!opens(&secret, &Commitment(vec![identity()])));
    }
}
