//! `tracing` spans as OpenTelemetry spans on faultline's pipeline (feature
//! `tracing`): spans a handler opens with `tracing::info_span!` become
//! children of the request's server span, and are masked and exported like
//! every other span.
//!
//! ```no_run
//! use tracing_subscriber::layer::SubscriberExt;
//! # fn run(engine: faultline::Engine) {
//! let subscriber = tracing_subscriber::registry().with(faultline::tracing::layer(&engine));
//! tracing::subscriber::set_global_default(subscriber).expect("one global subscriber");
//! # }
//! ```
//!
//! Inside a request, the adapters make the request's context current while
//! the handler runs, so a `tracing` span opened there finds its parent. A
//! task spawned from a handler carries the context along with
//! `opentelemetry::trace::FutureExt::with_context(task, cx)`, where `cx` is
//! the request's context (from the adapter's `RequestTrace` extractor).

use faultline_engine::Engine;
use faultline_engine::opentelemetry_sdk::trace::SdkTracer;
use tracing_opentelemetry::OpenTelemetryLayer;

/// A `tracing-subscriber` layer that records `tracing` spans through the
/// engine's tracer.
pub fn layer<S>(engine: &Engine) -> OpenTelemetryLayer<S, SdkTracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(engine.tracer().clone())
}
