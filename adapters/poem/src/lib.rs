//! faultline's poem adapter: a Middleware that traces every request.
//!
//! Status: the middleware arrives with the adapters work; today the crate only re-exports the engine.
//!
//! This crate is part of [faultline](https://docs.rs/faultline). Applications
//! depend on `faultline` with the feature `poem` rather than on this crate.
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use faultline_engine as engine;
