//! sextant-e2e
