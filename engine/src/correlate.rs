//! Hearing about finished requests and errors, with their trace and span ids.
//!
//! Correlators tie other signals to traces: the Prometheus plugin counts
//! errors with their trace id, the Sentry plugin sends events carrying the
//! trace context. The engine calls every registered correlator once per
//! finished request, after the response is known.

use std::fmt::Debug;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};

use crate::error::{ErrorCode, Severity};
use crate::export::{ExportStats, LogRecord};

/// How a failed request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FailureKind {
    /// The handler returned an error.
    Error,
    /// The handler panicked.
    Panic,
}

/// The error a request ended with. Its message is already masked.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestError<'a> {
    /// Error value or panic.
    pub kind: FailureKind,
    /// The application error code, when the error has one (a panic's is
    /// `INTERNAL`, 5000).
    pub code: Option<ErrorCode>,
    /// How bad it is: the code's severity; `Error` for an error without a
    /// code, `Critical` for a panic.
    pub severity: Severity,
    /// The error's type name as the handler returned it (`"panic"` for a
    /// panic).
    pub type_name: &'a str,
    /// The error message, masked.
    pub message: &'a str,
}

impl<'a> RequestError<'a> {
    /// An error of `kind` and `severity`, without a code (set
    /// [`code`](Self::code) when it has one).
    pub fn new(
        kind: FailureKind,
        severity: Severity,
        type_name: &'a str,
        message: &'a str,
    ) -> Self {
        RequestError {
            kind,
            code: None,
            severity,
            type_name,
            message,
        }
    }
}

/// One finished request, as correlators see it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestOutcome<'a> {
    /// The request's trace id.
    pub trace_id: TraceId,
    /// The id of the request's server span.
    pub span_id: SpanId,
    /// The id of the server span's parent, when it has one (an incoming span).
    pub parent_span_id: Option<SpanId>,
    /// Whether the trace is exported: sampled, or kept for its error by
    /// error-keeping sampling. Correlators point only at exported traces
    /// (exemplars, links).
    pub sampled: bool,
    /// The HTTP method.
    pub method: &'a str,
    /// The route template (`/users/{id}`), or empty when no route matched.
    pub route: &'a str,
    /// The response status code.
    pub status: u16,
    /// How long the request took.
    pub duration: Duration,
    /// The error, when the request failed.
    pub error: Option<RequestError<'a>>,
}

impl<'a> RequestOutcome<'a> {
    /// A request that ended with `status` after `duration`, without a
    /// parent span and without an error (set
    /// [`parent_span_id`](Self::parent_span_id) and [`error`](Self::error)
    /// when it has them).
    pub fn new(
        trace_id: TraceId,
        span_id: SpanId,
        sampled: bool,
        method: &'a str,
        route: &'a str,
        status: u16,
        duration: Duration,
    ) -> Self {
        RequestOutcome {
            trace_id,
            span_id,
            parent_span_id: None,
            sampled,
            method,
            route,
            status,
            duration,
            error: None,
        }
    }
}

/// One finished RPC (a gRPC call), as correlators see it: the request as
/// for HTTP (method `POST`, route and status the RPC method and the HTTP
/// status its status code stands for), and the RPC's own names.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RpcOutcome<'a> {
    /// The call as a request: ids, sampling, duration, error.
    pub request: RequestOutcome<'a>,
    /// The RPC system (`rpc.system.name`: `grpc`).
    pub system: &'a str,
    /// The fully qualified method (`rpc.method`: `helloworld.Greeter/SayHello`).
    pub method: &'a str,
    /// The status code name (`rpc.response.status_code`: `OK`, `NOT_FOUND`, ...).
    pub status_code: &'a str,
}

impl<'a> RpcOutcome<'a> {
    /// The call `request` of `system`'s `method`, ended with `status_code`.
    pub fn new(
        request: RequestOutcome<'a>,
        system: &'a str,
        method: &'a str,
        status_code: &'a str,
    ) -> Self {
        RpcOutcome {
            request,
            system,
            method,
            status_code,
        }
    }
}

/// Hears about finished requests.
///
/// An implementation must guarantee:
/// * `on_request_end` returns quickly and never blocks on I/O (it runs on
///   the request's task; hand slow work to a background task);
/// * it never panics;
/// * what it sends out of the process is masked (the outcome's message
///   already is; anything else it adds must go through the engine's masker).
pub trait Correlator: Send + Sync + Debug {
    /// Called once per finished request.
    fn on_request_end(&self, outcome: &RequestOutcome<'_>);

    /// Called once per finished RPC instead of
    /// [`on_request_end`](Correlator::on_request_end); unless overridden, it
    /// hands the call to `on_request_end` as a request.
    fn on_rpc_end(&self, outcome: &RpcOutcome<'_>) {
        self.on_request_end(&outcome.request)
    }

    /// Whether this correlator serves metrics (the adapters then answer
    /// `GET` on the configured metrics path, `/metrics` by default, with
    /// [`render_metrics`](Correlator::render_metrics)). `false` unless
    /// overridden.
    fn serves_metrics(&self) -> bool {
        false
    }

    /// Renders this correlator's metrics for one scrape. `accept` is the
    /// scraper's `Accept` header (Prometheus asks for
    /// `application/openmetrics-text` first); `stats` are the export
    /// pipeline's counters at this moment. Called off the request path of
    /// traced requests (a scrape is not traced). `None` unless overridden.
    fn render_metrics(&self, accept: Option<&str>, stats: &ExportStats) -> Option<Exposition> {
        let _ = (accept, stats);
        None
    }

    /// Receives the engine's resource (the one its spans and log records
    /// carry) once, when the engine is built, so that what the correlator
    /// sends out describes the same service (the Prometheus plugin's
    /// `target_info`). Does nothing unless overridden.
    fn set_resource(&self, resource: &opentelemetry_sdk::Resource) {
        let _ = resource;
    }

    /// Sends whatever the correlator holds back (queued events), waiting
    /// `timeout` at most. The engine calls it from
    /// [`Engine::force_flush`](crate::Engine::force_flush) and
    /// [`Engine::shutdown`](crate::Engine::shutdown) (blocking). Does
    /// nothing unless overridden.
    fn flush(&self, timeout: Duration) {
        let _ = timeout;
    }

    /// Hears about a log record (already masked) as it is emitted, on the
    /// emitting thread: the Sentry plugin keeps a request's records as the
    /// breadcrumbs of its event. Must return quickly. Does nothing unless
    /// overridden.
    fn on_log(&self, record: &LogRecord) {
        let _ = record;
    }
}

/// Shared correlators work too (the caller keeps a handle).
impl<T: Correlator + ?Sized> Correlator for std::sync::Arc<T> {
    fn on_request_end(&self, outcome: &RequestOutcome<'_>) {
        (**self).on_request_end(outcome)
    }
    fn on_rpc_end(&self, outcome: &RpcOutcome<'_>) {
        (**self).on_rpc_end(outcome)
    }
    fn serves_metrics(&self) -> bool {
        (**self).serves_metrics()
    }
    fn render_metrics(&self, accept: Option<&str>, stats: &ExportStats) -> Option<Exposition> {
        (**self).render_metrics(accept, stats)
    }
    fn set_resource(&self, resource: &opentelemetry_sdk::Resource) {
        (**self).set_resource(resource)
    }
    fn flush(&self, timeout: Duration) {
        (**self).flush(timeout)
    }
    fn on_log(&self, record: &LogRecord) {
        (**self).on_log(record)
    }
}

/// One rendering of a metrics endpoint: what the adapters send back to a
/// scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Exposition {
    /// The response's `Content-Type` (with its version and charset
    /// parameters).
    pub content_type: &'static str,
    /// The response body.
    pub body: String,
}

impl Exposition {
    /// A rendering of `body` served as `content_type`.
    pub fn new(content_type: &'static str, body: String) -> Self {
        Exposition { content_type, body }
    }
}
