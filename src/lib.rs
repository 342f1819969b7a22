//! # faultline
//!
//! Distributed tracing for Rust web services that engineers trust in
//! production: every request traced across services with OpenTelemetry,
//! every error tied to its trace id, personal data masked before anything
//! leaves the process.
//!
//! Add one dependency, `faultline`, with the features you need: `axum`,
//! `poem`, `warp` (adapters), `reqwest` (outgoing calls), `tracing` (`tracing` spans, events and log lines with trace ids, OTLP logs), `otlp`, `jaeger` (exporters), `sentry`,
//! `prometheus` (correlation), or `full`.
//!
//! ```
//! use faultline::config::{ExporterKind, TracingConfig};
//! use faultline::Engine;
//!
//! // Defaults, then the standard OTEL_* and FAULTLINE_* variables.
//! let config = TracingConfig::builder()
//!     .service_name("checkout")
//!     .exporters([ExporterKind::Console])
//!     .build()?;
//! let engine = Engine::builder(config).install_global(false).build()?;
//! // ... serve requests through an adapter ...
//! let report = engine.shutdown();
//! assert!(!report.already_shut_down);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub use faultline_engine::*;

pub mod setup;

/// The axum adapter (feature `axum`).
#[cfg(feature = "axum")]
pub use faultline_axum as axum;
/// The Jaeger exporter (feature `jaeger`).
#[cfg(feature = "jaeger")]
pub use faultline_jaeger as jaeger;
#[cfg(feature = "tracing")]
pub mod tracing;
/// The OTLP exporter (feature `otlp`).
#[cfg(feature = "otlp")]
pub use faultline_otlp as otlp;
/// The poem adapter (feature `poem`).
#[cfg(feature = "poem")]
pub use faultline_poem as poem;
/// The Prometheus correlator (feature `prometheus`).
#[cfg(feature = "prometheus")]
pub use faultline_prometheus as prometheus;
/// The outbound reqwest integration (feature `reqwest`).
#[cfg(feature = "reqwest")]
pub use faultline_reqwest as reqwest;
/// The Sentry correlator (feature `sentry`).
#[cfg(feature = "sentry")]
pub use faultline_sentry as sentry;
/// The warp adapter (feature `warp`).
#[cfg(feature = "warp")]
pub use faultline_warp as warp;
