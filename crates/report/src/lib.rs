//! Human-readable output of iotids results.
//!
//! The data and model crates produce plain structs (serialisable to JSON for
//! machines); this crate turns them into what a person reads: terminal tables
//! now, pictures and the HTML report as the model side arrives.

pub mod charts;
pub mod text;

pub use text::{render_audit, render_description, render_pipeline, render_split};
