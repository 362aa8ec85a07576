//! Human-readable output of iotids results.
//!
//! The data and model crates produce plain structs (serialisable to JSON for
//! machines); this crate turns them into what a person reads: terminal tables
//! ([`text`]), pictures ([`charts`], SVG and PNG) and one self-contained HTML page
//! ([`html`]).

pub mod charts;
pub mod compare;
pub mod federation;
pub mod html;
pub mod pages;
pub mod text;

pub use text::{
    render_audit, render_classification_report, render_description, render_pipeline, render_split,
};
