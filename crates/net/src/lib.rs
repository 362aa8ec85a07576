//! The federation across machines (issue 14).

#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod proto {
    tonic::include_proto!("iotids.federation.v1");
}

pub mod certs;
pub mod error;
pub mod tls;

pub use error::{Error, Result};
