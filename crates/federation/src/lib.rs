//! Hierarchical federated training of the GRU detector (issue 4): devices hold their own
//! rows and train locally; edge aggregators combine their devices' models; a cloud
//! combines the edges and sends the global model down (HierFAVG). Only weight vectors
//! cross a tier. The hierarchy runs in one process ([`federate`]) or across machines
//! (the `iotids-net` crate: cloud, edge and device processes over gRPC with mutual TLS);
//! both run this crate's round logic unchanged, behind its transport seam.
//!
//! - [`roles`] is the round logic: a [`roles::Device`] trains on its rows (and, if
//!   malicious, poisons its update), an [`roles::Edge`] samples its devices and aggregates
//!   what arrives, the [`roles::Cloud`] aggregates the edges, steps the server optimiser,
//!   scores each round and keeps the best.
//! - [`message`] is what crosses a tier, as plain serialisable data: the model going down
//!   with the cloud's plan, device and edge updates coming up with their accounting.
//! - [`transport`] is how it crosses: the [`transport::Link`] trait, and the in-process
//!   links that simulate failures, stragglers past a deadline, device speeds, bandwidth
//!   and bytes.
//! - [`simulate`] sets up a run in one process ([`federate`]): partition, poisoners,
//!   roles over in-process links.
//! - [`partition`] deals the training rows to devices: iid, Dirichlet label skew, quantity
//!   skew, or by source host; flows stay whole.
//! - [`aggregate`] is how a tier combines what it receives: the sample-weighted mean, or the
//!   robust coordinate-wise median, trimmed mean and multi-Krum.
//! - [`strategy`] names the strategies as Flower does (FedAvg, FedProx, FedAvgM, FedAdam,
//!   FedYogi) and runs the adaptive ones' server optimiser at the cloud.
//! - [`config`] is a run's settings, from flags or a TOML file.
//! - [`experiments`] sets a run beside central training of the same network and beside
//!   every aggregation rule under poisoning.
//!
//! # Where to add things
//!
//! - **An aggregation rule**: [`aggregate`] only (a variant of
//!   [`aggregate::Aggregation`], its arm in `aggregate`, its spelling in `Display` and
//!   `FromStr`, and `is_unweighted`). Rules are pure functions of the received vectors and
//!   their sample counts; edges and the cloud pick theirs from the config.
//! - **A transport** (gRPC, Flower, a secure-aggregation layer): [`transport`] only, or a
//!   crate of its own: implement [`transport::Link`] for the edge→devices exchange
//!   (`Link<DeviceUpdate>`) and/or the cloud→edges one (`Link<EdgeUpdate>`), and call the
//!   roles on the far side ([`roles::Device::train`], [`roles::Edge::round`]). The round
//!   logic, aggregation and strategies stay as they are; the module docs of [`transport`]
//!   sketch a tonic link.
//! - **A server strategy**: [`strategy`] only.

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
pub mod message;
pub mod partition;
pub mod private;
pub mod roles;
pub mod simulate;
pub mod strategy;
pub mod transport;

pub use config::{Attack, FederationConfig, LocalOptimizer, PipelineFit, ValidationSite};
pub use error::{Error, Result};
pub use iotids_privacy::PrivacyReport;
pub use simulate::{Local, Outcome, RoundRecord, Task, deal, federate, federate_dealt};
