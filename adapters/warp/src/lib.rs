//! faultline's warp adapter: a filter wrapper that traces every request.
//!
//! Status: the wrapper arrives with the adapters work; today the crate only re-exports the engine.
//!
//! This crate is part of [faultline](https://docs.rs/faultline). Applications
//! depend on `faultline` with the feature `warp` rather than on this crate.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use faultline_engine as engine;
