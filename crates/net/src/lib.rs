//! The federation across machines (issue 14).

#[allow(missing_docs, clippy::all, missing_debug_implementations)]
pub mod proto {
    tonic::include_proto!("iotids.federation.v1");
}

pub mod certs;
pub mod client;
pub mod cloud;
pub mod context;
pub mod device;
pub mod edge;
pub mod error;
pub mod flower;
pub mod hub;
pub mod link;
pub mod secure;
pub mod tls;
pub mod wire;

pub use error::{Error, Result};
