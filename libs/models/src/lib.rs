//! sextant-models
