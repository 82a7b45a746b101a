//! sextant
