//! sextant-connector
