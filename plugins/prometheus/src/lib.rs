//! faultline's Prometheus plugin: error metrics with trace ids and exemplars.
//!
//! Status: the correlator arrives with the correlation work; today the crate only re-exports the engine.
//!
//! This crate is part of [faultline](https://docs.rs/faultline). Applications
//! depend on `faultline` with the feature `prometheus` rather than on this crate.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use faultline_engine as engine;
