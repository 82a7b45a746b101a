//! The `sextant` umbrella CLI as a library: the local suite and the demo.
//!
//! # Layout
//! - [`suite`]: the org simulator and the four services on loopback.
//! - [`demo`]: sync → train → score every account → summary.

pub mod demo;
pub mod suite;
