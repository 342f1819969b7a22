//! faultline's Jaeger exporter plugin (thrift compact over UDP, binary over HTTP).
//!
//! Status: the exporter arrives with the exporter work; today the crate only re-exports the engine.
//!
//! This crate is part of [faultline](https://docs.rs/faultline). Applications
//! depend on `faultline` with the feature `jaeger` rather than on this crate.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use faultline_engine as engine;
