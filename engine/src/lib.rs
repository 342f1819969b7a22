//! faultline's engine: everything framework- and vendor-neutral.
//!
//! It holds the validated [`config::TracingConfig`], the five plugin points
//! ([`propagation::Propagator`], [`masking::Masker`],
//! [`exception::ExceptionRecorder`], [`export::Exporter`],
//! [`correlate::Correlator`]), the OpenTelemetry SDK set-up behind
//! [`Engine`], and the error model ([`error`]).
//!
//! ```
//! use faultline_engine::config::{ExporterKind, TracingConfig};
//! use faultline_engine::export::InMemoryExporter;
//! use faultline_engine::Engine;
//! use opentelemetry::trace::{Span, TraceContextExt, Tracer};
//! use opentelemetry::KeyValue;
//!
//! let config = TracingConfig::builder()
//!     .service_name("checkout")
//!     .exporters([])                       // no configured exporter...
//!     .secret_key("card_cvv")
//!     .build()?;
//! let spans = InMemoryExporter::default();  // ...only an in-memory one
//! let engine = Engine::builder(config).exporter(spans.clone()).install_global(false).build()?;
//!
//! let headers = http::HeaderMap::new();
//! let cx = engine.start_server_span("POST /checkout", vec![KeyValue::new("card_cvv", "123")], &headers);
//! cx.span().end();
//! engine.force_flush();
//!
//! let exported = spans.spans();
//! assert_eq!(exported[0].name, "POST /checkout");
//! assert_eq!(exported[0].attributes[0].value.as_str(), "[REDACTED]");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]
#![warn(unreachable_pub)]
// `deny`, not `forbid`: one audited exception, `TraceParent::to_header_value`.
#![deny(unsafe_code)]

pub mod carrier;
pub mod config;
pub mod correlate;
mod engine;
pub mod error;
pub mod exception;
pub mod export;
// Hidden, not private: the Prometheus plugin keys its per-thread handles
// with the same hasher; not an API for applications.
#[doc(hidden)]
pub mod fasthash;
pub mod masking;
pub mod panic;
pub mod percent;
pub mod propagation;
pub mod request;
pub mod resource;

pub use engine::{
    BoxError, Engine, EngineBuilder, EngineError, ExporterContext, ExporterFactory, SCOPE_NAME,
    SamplerFactory, ShutdownError, ShutdownReport,
};

/// The OpenTelemetry API crate faultline is built on (use it rather than a
/// second copy).
pub use opentelemetry;
/// The OpenTelemetry SDK crate faultline is built on.
pub use opentelemetry_sdk;
