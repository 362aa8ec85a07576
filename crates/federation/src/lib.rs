//! Hierarchical federated training of the GRU detector (issue 4), simulated in one process.
//!
//! Devices hold their own rows and train locally; edge aggregators combine their devices'
//! models; a cloud combines the edges and sends the global model down (HierFAVG). Only
//! weight vectors cross a tier.
//!
//! - [`partition`] deals the training rows to devices: iid, Dirichlet label skew, quantity
//!   skew, or by source host; flows stay whole.
//! - [`aggregate`] is how a tier combines what it receives: the sample-weighted mean, or the
//!   robust coordinate-wise median, trimmed mean and multi-Krum.
//! - [`strategy`] names the strategies as Flower does (FedAvg, FedProx, FedAvgM, FedAdam,
//!   FedYogi) and runs the adaptive ones' server optimiser at the cloud.
//! - [`config`] is a run's settings, from flags or a TOML file.
//! - [`simulate`] runs the rounds: sampling, device failures, stragglers past a deadline,
//!   poisoning devices, bytes on each tier, the global model's validation scores per round.
//! - [`experiments`] sets a run beside central training of the same network and beside
//!   every aggregation rule under poisoning.

/// `ALL`, `name()`, `Display` and `FromStr` for a field-less enum the config spells by name.
macro_rules! spelled {
    ($ty:ident, $field:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every value, in the docs' order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The config's spelling.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }

        impl std::str::FromStr for $ty {
            type Err = crate::Error;
            fn from_str(s: &str) -> crate::Result<Self> {
                let s = s.trim().to_ascii_lowercase();
                Self::ALL
                    .iter()
                    .copied()
                    .find(|k| k.name() == s)
                    .ok_or_else(|| crate::Error::config($field, s, concat!("one of:", $(" ", $name),+)))
            }
        }
    };
}

pub mod aggregate;
pub mod bench;
pub mod config;
pub mod error;
pub mod experiments;
pub mod partition;
pub mod simulate;
pub mod strategy;

pub use config::{Attack, FederationConfig};
pub use error::{Error, Result};
pub use simulate::{Outcome, RoundRecord, Task, federate};
