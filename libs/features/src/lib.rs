//! sextant-features
