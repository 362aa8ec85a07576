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
    #[error("cannot reach the SuperLink at {url}: {}", chain(.source))]
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
    /// A key file cannot be read, parsed or written.
    #[error("node key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The connection settings are unusable (e.g. unreadable root certificates).
    #[error("{0}")]
    Config(String),
    /// The TLS handshake with the SuperLink failed (wrong CA, wrong host name, expired
    /// certificate, or a SuperLink not serving TLS). Not retried: it will not fix itself.
    #[error(
        "TLS with the SuperLink at {superlink} failed: {reason}; the SuperLink's certificate was checked against {roots}{hint}"
    )]
    Tls {
        /// The SuperLink's URL.
        superlink: String,
        /// What the certificate was checked against (the root-certificate file, or the
        /// built-in web roots).
        roots: String,
        /// The TLS library's reason.
        reason: String,
        /// What to check, starting with `". "`, or empty.
        hint: String,
    },
    /// The SuperLink does not know this node's pre-registered key (`ActivateNode` refused).
    #[error(
        "the SuperLink at {superlink} refused to activate this node (HTTP {status} from /v1/fleet/activate-node: {body}): its public key is not registered{note}. Register it first: put this line in a file and run `flwr supernode register <file> <SuperLink connection>`: {public_key}"
    )]
    NotRegistered {
        /// The SuperLink's URL.
        superlink: String,
        /// The HTTP status.
        status: u16,
        /// The start of the SuperLink's answer.
        body: String,
        /// The node's OpenSSH public-key line.
        public_key: String,
        /// `" (…)"`: why registering itself did not help, or empty.
        note: String,
    },
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

/// An error and its sources, `": "`-separated (reqwest's own message hides the cause:
/// "error sending request for url (…)"). Looks inside `io::Error`s, whose `source()` skips
/// their payload.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let msg = e.to_string();
        if !out.contains(&msg) {
            out.push_str(": ");
            out.push_str(&msg);
        }
        cur = match e
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            Some(inner) => inner.source(),
            None => e.source(),
        };
    }
    out
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
