//! sextant-trainer
