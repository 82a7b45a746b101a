//! sextant-gateway
