//! The crate's errors: each says which RPC failed and why, so an operator can act on it.

use crate::SUPPORTED_FLWR;

/// What can go wrong talking to a SuperLink or decoding what it sent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The SuperLink answered with a non-200 status.
    #[error("HTTP {status} from /v1/fleet/{rpc}: {body}")]
    Http {
        /// The kebab-case RPC path, e.g. `pull-messages`.
        rpc: &'static str,
        /// The HTTP status code.
        status: u16,
        /// The start of the response body (the SuperLink's error detail).
        body: String,
    },
    /// The request never got an answer (connection refused, reset, timeout).
    #[error("cannot reach the SuperLink at {url}: {source}")]
    Transport {
        /// The URL called.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// A 200 response whose body is not the expected protobuf: most likely another protocol
    /// version.
    #[error(
        "cannot decode the SuperLink's answer to /v1/fleet/{rpc} ({source}); this node supports flwr {SUPPORTED_FLWR}{reported}"
    )]
    Decode {
        /// The RPC path.
        rpc: &'static str,
        /// The protobuf decoding error.
        #[source]
        source: prost::DecodeError,
        /// `"; the SuperLink reports flwr X"` when it said so, else empty.
        reported: String,
    },
    /// The SuperLink reports a flwr version outside the supported range.
    #[error("the SuperLink runs flwr {0}; this node supports flwr {SUPPORTED_FLWR}")]
    UnsupportedVersion(String),
    /// A malformed object of the message's object tree.
    #[error("bad object {id}: {reason}")]
    Object {
        /// The object id (or a description of where it sat).
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A record the handler needs is missing or malformed.
    #[error("bad record: {0}")]
    Record(String),
    /// A `.npy` array that cannot be read or written.
    #[error("npy: {0}")]
    Npy(String),
    /// The node's key cannot be loaded or used.
    #[error("node key: {0}")]
    Key(String),
    /// The handler failed on a message.
    #[error("handler: {0}")]
    Handler(String),
}

impl Error {
    /// Whether retrying later may help: the SuperLink unreachable, restarting (5xx), or
    /// rate-limiting (429). Client errors (4xx) and decoding errors are not retried.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Transport { .. } => true,
            Error::Http { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            _ => false,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
