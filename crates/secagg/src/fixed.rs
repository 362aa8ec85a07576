//! Fixed-point encoding of real vectors into the ring ℤ/2⁶⁴, where masks are added and
//! cancel: `x ↦ round(x · 2^bits)` as a two's-complement 64-bit word. Sums of encodings,
//! wrapping, decode to the sum of the values as long as it stays below `2^(63 − bits)`
//! in magnitude; each encoding rounds by at most `2^−(bits+1)`.

use serde::{Deserialize, Serialize};

use crate::Error;

/// The encoding's precision: fractional bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fixed {
    /// Fractional bits (the default 24: a resolution of 6·10⁻⁸).
    pub bits: u32,
}

impl Default for Fixed {
    fn default() -> Self {
        Fixed { bits: 24 }
    }
}

impl Fixed {
    /// The largest rounding error of one encoded value: half a step, `2^−(bits+1)`.
    pub fn rounding(self) -> f64 {
        0.5 / self.scale()
    }

    /// The largest magnitude a value, or a sum of values, may have: `2^(62 − bits)`
    /// (one bit of headroom below the sign).
    pub fn limit(self) -> f64 {
        2f64.powi(62 - self.bits as i32)
    }

    fn scale(self) -> f64 {
        2f64.powi(self.bits as i32)
    }

    /// `values` as ring elements.
    ///
    /// # Errors
    ///
    /// [`Error::Value`] naming the first value that is not finite or exceeds [`Fixed::limit`].
    pub fn encode(self, values: &[f64]) -> crate::Result<Vec<u64>> {
        let (scale, limit) = (self.scale(), self.limit());
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                if !v.is_finite() || v.abs() >= limit {
                    return Err(Error::Value {
                        index: i,
                        value: v,
                        allowed: format!("a finite value of magnitude below {limit:e}"),
                    });
                }
                Ok((v * scale).round() as i64 as u64)
            })
            .collect()
    }

    /// Ring elements (a sum of encodings) as values.
    pub fn decode(self, words: &[u64]) -> Vec<f64> {
        let scale = self.scale();
        words.iter().map(|&w| w as i64 as f64 / scale).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_of_encodings_decode_to_sums_within_the_rounding() {
        let f = Fixed::default();
        let a = [0.1, -3.25, 1e-9, 1234.5678, -0.0];
        let b = [-0.3, 3.25, 2e-9, -1234.0, 7.0];
        let (ea, eb) = (f.encode(&a).unwrap(), f.encode(&b).unwrap());
        let sum: Vec<u64> = ea
            .iter()
            .zip(&eb)
            .map(|(x, y)| x.wrapping_add(*y))
            .collect();
        for (i, got) in f.decode(&sum).into_iter().enumerate() {
            assert!(
                (got - (a[i] + b[i])).abs() <= 2.0 * f.rounding(),
                "{i}: {got}"
            );
        }
        assert_eq!(f.decode(&f.encode(&[-2.5]).unwrap()), vec![-2.5]);
        assert_eq!(f.rounding(), 2f64.powi(-25));
    }

    #[test]
    fn values_it_cannot_carry_are_errors_naming_them() {
        let f = Fixed::default();
        let err = f.encode(&[1.0, f64::NAN]).unwrap_err().to_string();
        assert!(err.contains("value 1") && err.contains("NaN"), "{err}");
        assert!(f.encode(&[f.limit()]).is_err());
        assert!(f.encode(&[f.limit() / 2.0]).is_ok());
    }
}
