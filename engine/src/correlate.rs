//! Hearing about finished requests and errors, with their trace and span ids.
//!
//! Correlators tie other signals to traces: the Prometheus plugin counts
//! errors with their trace id, the Sentry plugin sends events carrying the
//! trace context. The engine calls every registered correlator once per
//! finished request, after the response is known.

use std::fmt::Debug;
use std::time::Duration;

use opentelemetry::trace::{SpanId, TraceId};

use crate::error::ErrorCode;

/// How a failed request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The handler returned an error.
    Error,
    /// The handler panicked.
    Panic,
}

/// The error a request ended with. Its message is already masked.
#[derive(Debug, Clone)]
pub struct RequestError<'a> {
    /// Error value or panic.
    pub kind: FailureKind,
    /// The application error code, when the error has one.
    pub code: Option<ErrorCode>,
    /// The error message, masked.
    pub message: &'a str,
}

/// One finished request, as correlators see it.
#[derive(Debug, Clone)]
pub struct RequestOutcome<'a> {
    /// The request's trace id.
    pub trace_id: TraceId,
    /// The id of the request's server span.
    pub span_id: SpanId,
    /// The id of the server span's parent, when it has one (an incoming span).
    pub parent_span_id: Option<SpanId>,
    /// Whether the trace is exported.
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
}

/// Shared correlators work too (the caller keeps a handle).
impl<T: Correlator + ?Sized> Correlator for std::sync::Arc<T> {
    fn on_request_end(&self, outcome: &RequestOutcome<'_>) {
        (**self).on_request_end(outcome)
    }
}
