//! sextant-feature-store
