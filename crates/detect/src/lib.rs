//! Online detection for iotids: packets in, alerts out.
//!
//! [`Engine`] takes packets in capture order (from files or a live interface), turns each
//! into the 61 tshark columns ([`iotids_packets::Extractor`]), feeds them through the
//! record-source seam ([`iotids_data::DatasetBuilder`], read the way the model's training
//! file was) in small batches, builds the model's flow windows online
//! ([`iotids_model::detect::StreamWindows`], each flow's last records carried from batch
//! to batch) and scores them with the trained [`iotids_model::artifact::Detector`]: the
//! same rows, features, windows and decisions as `iotids predict` on `iotids extract`'s
//! CSV of the same packets. Flows live in a bounded [`flows::FlowTable`]: a flow idle
//! longer than the timeout, or the least recently seen one when the table is full, is
//! evicted and its carried window dropped.
//!
//! Outputs: Suricata EVE JSON ([`eve`]): an `alert` line for a packet whose window is
//! judged an attack or unknown, at most one per flow and class per alert interval (as
//! Suricata's `threshold: type limit, track by_flow`; the packets suppressed are counted),
//! and `stats` lines at an interval; a verdict CSV row for every packet (with its label
//! when the captures are labelled); a [`Summary`], and the [`Activity`] a report shows.

pub mod engine;
pub mod eve;
pub mod flows;

pub use engine::{
    Accuracy, Activity, ClassRecall, Config, Engine, FlowAlerts, Summary, UnknownPacket,
};

/// Why detection stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Data(#[from] iotids_data::Error),
    #[error(transparent)]
    Model(#[from] iotids_model::Error),
    #[error("{what}: {source}")]
    Write {
        what: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Csv(#[from] csv::Error),
    /// A setting that does not fit the model.
    #[error("{0}")]
    Config(String),
}

pub type Result<T> = std::result::Result<T, Error>;
