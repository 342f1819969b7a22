//! faultline's axum adapter: a tower Layer that traces every request.
//!
//! Status: the layer arrives with the adapters work; today the crate only re-exports the engine.
//!
//! This crate is part of [faultline](https://docs.rs/faultline). Applications
//! depend on `faultline` with the feature `axum` rather than on this crate.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use faultline_engine as engine;
