//! From a finished request to a Sentry event.

use std::borrow::Cow;

use faultline_engine::correlate::{FailureKind, RequestError, RequestOutcome};
use faultline_engine::error::Severity;
use faultline_engine::opentelemetry::trace::{SpanId, TraceId};
use sentry::protocol::{
    Context, Event, Exception, Level, Map, Mechanism, ResponseContext, SpanStatus, TraceContext,
    Value,
};

/// The `op` of the trace context of request events.
pub const OP_HTTP_SERVER: &str = "http.server";
/// The `origin` of the trace context of request events (the integration
/// that filled it).
pub const ORIGIN: &str = "auto.http.faultline";

/// The Sentry level of a severity: `debug`, `info`, `warning`, `error`, and
/// `fatal` for `Critical`.
pub fn level_for(severity: Severity) -> Level {
    match severity {
        Severity::Debug => Level::Debug,
        Severity::Info => Level::Info,
        Severity::Warning => Level::Warning,
        Severity::Critical => Level::Fatal,
        // `Error`, and any level added later.
        _ => Level::Error,
    }
}

/// The Sentry span status of an HTTP response status (the mapping Sentry's
/// SDKs use): `ok` below 400; 400 `invalid_argument`, 401
/// `unauthenticated`, 403 `permission_denied`, 404 `not_found`, 409
/// `already_exists`, 413 `failed_precondition`, 429 `resource_exhausted`,
/// 499 `cancelled`, other 4xx `invalid_argument`; 501 `unimplemented`, 503
/// `unavailable`, 504 `deadline_exceeded`, other 5xx `internal_error`;
/// anything else `unknown_error`.
pub fn span_status_for(status: u16) -> SpanStatus {
    match status {
        100..=399 => SpanStatus::Ok,
        401 => SpanStatus::Unauthenticated,
        403 => SpanStatus::PermissionDenied,
        404 => SpanStatus::NotFound,
        409 => SpanStatus::AlreadyExists,
        413 => SpanStatus::FailedPrecondition,
        429 => SpanStatus::ResourceExhausted,
        499 => SpanStatus::Cancelled,
        400..=498 => SpanStatus::InvalidArgument,
        501 => SpanStatus::Unimplemented,
        503 => SpanStatus::Unavailable,
        504 => SpanStatus::DeadlineExceeded,
        500..=599 => SpanStatus::InternalError,
        _ => SpanStatus::UnknownError,
    }
}

/// Whether a request error becomes an event: every panic, and errors at or
/// above `min_severity`.
pub fn is_reported(error: &RequestError<'_>, min_severity: Severity) -> bool {
    error.kind == FailureKind::Panic || error.severity >= min_severity
}

/// The trace context of a request: the OpenTelemetry ids, byte for byte.
pub fn trace_context(
    trace_id: TraceId,
    span_id: SpanId,
    parent_span_id: Option<SpanId>,
    op: Option<&str>,
    status: Option<SpanStatus>,
    description: Option<String>,
) -> TraceContext {
    TraceContext {
        trace_id: trace_id.to_bytes().into(),
        span_id: span_id.to_bytes().into(),
        parent_span_id: parent_span_id
            .filter(|p| *p != SpanId::INVALID)
            .map(|p| p.to_bytes().into()),
        op: op.map(str::to_owned),
        status,
        description,
        origin: Some(ORIGIN.to_owned()),
        data: Map::new(),
    }
}

/// `"METHOD route"`, or the method alone when no route matched.
pub fn transaction_name(method: &str, route: &str) -> String {
    if route.is_empty() {
        method.to_owned()
    } else {
        format!("{method} {route}")
    }
}

/// The event for a request that ended with `error`.
pub fn request_event(outcome: &RequestOutcome<'_>, error: &RequestError<'_>) -> Event<'static> {
    let transaction = transaction_name(outcome.method, outcome.route);
    let panic = error.kind == FailureKind::Panic;
    // A panic is fatal for the request, as sentry's own panic handler
    // reports it; an error's level follows its severity.
    let level = if panic {
        Level::Fatal
    } else {
        level_for(error.severity)
    };
    let error_name = error
        .code
        .map(|c| c.name().to_owned())
        .unwrap_or_else(|| error.type_name.to_owned());

    let mut tags = Map::new();
    if let Some(code) = error.code {
        tags.insert("error.code".to_owned(), code.code().to_string());
    }
    tags.insert("error.name".to_owned(), error_name.clone());
    tags.insert(
        "error.severity".to_owned(),
        error.severity.as_str().to_owned(),
    );
    if !outcome.route.is_empty() {
        tags.insert("http.route".to_owned(), outcome.route.to_owned());
    }
    tags.insert("http.request.method".to_owned(), outcome.method.to_owned());
    tags.insert(
        "http.response.status_code".to_owned(),
        outcome.status.to_string(),
    );

    let mut contexts = Map::new();
    if outcome.trace_id != TraceId::INVALID {
        let mut trace = trace_context(
            outcome.trace_id,
            outcome.span_id,
            outcome.parent_span_id,
            Some(OP_HTTP_SERVER),
            Some(span_status_for(outcome.status)),
            Some(transaction.clone()),
        );
        trace
            .data
            .insert("sampled".to_owned(), Value::Bool(outcome.sampled));
        contexts.insert("trace".to_owned(), Context::Trace(Box::new(trace)));
    }
    contexts.insert(
        "response".to_owned(),
        Context::Response(Box::new(ResponseContext {
            status_code: Some(u64::from(outcome.status)),
            ..Default::default()
        })),
    );

    let mut extra = Map::new();
    extra.insert(
        "duration_ms".to_owned(),
        Value::from(outcome.duration.as_secs_f64() * 1000.0),
    );

    // Issues group by code (or error type) and route, not by message: the
    // message varies with every occurrence. Panics add their message.
    let mut fingerprint: Vec<Cow<'static, str>> = vec![
        "faultline".into(),
        if panic {
            "panic".into()
        } else {
            error_name.clone().into()
        },
        transaction.clone().into(),
    ];
    if panic {
        fingerprint.push(error.message.to_owned().into());
    }

    Event {
        level,
        message: None,
        exception: vec![Exception {
            ty: error.type_name.to_owned(),
            value: Some(error.message.to_owned()),
            mechanism: Some(Mechanism {
                ty: if panic { "panic" } else { "faultline" }.to_owned(),
                handled: Some(!panic),
                ..Default::default()
            }),
            ..Default::default()
        }]
        .into(),
        transaction: Some(transaction),
        tags,
        contexts,
        extra,
        fingerprint: Cow::Owned(fingerprint),
        request: Some(sentry::protocol::Request {
            method: Some(outcome.method.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use faultline_engine::error::{ErrorCode, codes};
    use std::time::Duration;

    #[test]
    fn status_mapping() {
        for (status, expected) in [
            (200, SpanStatus::Ok),
            (204, SpanStatus::Ok),
            (302, SpanStatus::Ok),
            (400, SpanStatus::InvalidArgument),
            (401, SpanStatus::Unauthenticated),
            (403, SpanStatus::PermissionDenied),
            (404, SpanStatus::NotFound),
            (409, SpanStatus::AlreadyExists),
            (413, SpanStatus::FailedPrecondition),
            (422, SpanStatus::InvalidArgument),
            (429, SpanStatus::ResourceExhausted),
            (499, SpanStatus::Cancelled),
            (500, SpanStatus::InternalError),
            (501, SpanStatus::Unimplemented),
            (502, SpanStatus::InternalError),
            (503, SpanStatus::Unavailable),
            (504, SpanStatus::DeadlineExceeded),
            (600, SpanStatus::UnknownError),
            (42, SpanStatus::UnknownError),
        ] {
            assert_eq!(span_status_for(status), expected, "{status}");
        }
        // The wire names are Sentry's.
        assert_eq!(
            serde_json::to_value(span_status_for(504)).unwrap(),
            "deadline_exceeded"
        );
    }

    fn error(kind: FailureKind, severity: Severity) -> RequestError<'static> {
        RequestError::new(kind, severity, "E", "m")
    }

    #[test]
    fn severity_threshold() {
        use Severity::*;
        let all = [Debug, Info, Warning, Error, Critical];
        for min in all {
            for sev in all {
                assert_eq!(
                    is_reported(&error(FailureKind::Error, sev), min),
                    sev >= min,
                    "{sev} at min {min}"
                );
                assert!(is_reported(&error(FailureKind::Panic, sev), min));
            }
        }
        assert!(!is_reported(&error(FailureKind::Error, Warning), Error));
        assert!(is_reported(&error(FailureKind::Error, Error), Error));
    }

    #[test]
    fn levels() {
        assert_eq!(level_for(Severity::Debug), Level::Debug);
        assert_eq!(level_for(Severity::Info), Level::Info);
        assert_eq!(level_for(Severity::Warning), Level::Warning);
        assert_eq!(level_for(Severity::Error), Level::Error);
        assert_eq!(level_for(Severity::Critical), Level::Fatal);
    }

    const PAY: ErrorCode = ErrorCode::new(2001, "PAYMENT_FAILED", http::StatusCode::BAD_GATEWAY);

    fn outcome<'a>(error: Option<RequestError<'a>>, route: &'a str) -> RequestOutcome<'a> {
        let mut o = RequestOutcome::new(
            TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
            SpanId::from_hex("00f067aa0ba902b7").unwrap(),
            true,
            "POST",
            route,
            502,
            Duration::from_millis(12),
        );
        o.parent_span_id = Some(SpanId::from_hex("53995c3f42cd8ad8").unwrap());
        o.error = error;
        o
    }

    #[test]
    fn request_event_carries_the_trace_context_tags_and_exception() {
        let mut err = RequestError::new(
            FailureKind::Error,
            Severity::Error,
            "faultline_engine::error::AppError",
            "gateway said no for j***@example.com",
        );
        err.code = Some(PAY);
        let o = outcome(Some(err.clone()), "/orders/{id}/pay");
        let event = request_event(&o, &err);
        let v = serde_json::to_value(&event).unwrap();
        let trace = &v["contexts"]["trace"];
        assert_eq!(trace["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(trace["span_id"], "00f067aa0ba902b7");
        assert_eq!(trace["parent_span_id"], "53995c3f42cd8ad8");
        assert_eq!(trace["op"], "http.server");
        assert_eq!(trace["status"], "internal_error");
        assert_eq!(trace["type"], "trace");
        assert_eq!(v["transaction"], "POST /orders/{id}/pay");
        assert_eq!(event.level, Level::Error);
        assert_eq!(v["tags"]["error.code"], "2001");
        assert_eq!(v["tags"]["error.name"], "PAYMENT_FAILED");
        assert_eq!(v["tags"]["http.route"], "/orders/{id}/pay");
        assert_eq!(v["tags"]["http.request.method"], "POST");
        assert_eq!(v["tags"]["http.response.status_code"], "502");
        let exc = &v["exception"]["values"][0];
        assert_eq!(exc["type"], "faultline_engine::error::AppError");
        assert_eq!(exc["value"], "gateway said no for j***@example.com");
        assert_eq!(exc["mechanism"]["handled"], true);
        assert_eq!(
            v["fingerprint"],
            serde_json::json!(["faultline", "PAYMENT_FAILED", "POST /orders/{id}/pay"])
        );
    }

    /// A panic as the engine reports it.
    pub(crate) fn panic_error() -> RequestError<'static> {
        let mut err = RequestError::new(FailureKind::Panic, Severity::Critical, "panic", "boom");
        err.code = Some(codes::INTERNAL);
        err
    }

    #[test]
    fn panic_event_is_fatal_and_unhandled_and_no_route_means_method_only() {
        let err = panic_error();
        let mut o = outcome(Some(err.clone()), "");
        o.parent_span_id = None;
        o.status = 500;
        let v = serde_json::to_value(request_event(&o, &err)).unwrap();
        assert_eq!(v["level"], "fatal");
        assert_eq!(v["transaction"], "POST");
        assert!(v["tags"].get("http.route").is_none());
        assert!(v["contexts"]["trace"].get("parent_span_id").is_none());
        assert_eq!(v["exception"]["values"][0]["mechanism"]["type"], "panic");
        assert_eq!(v["exception"]["values"][0]["mechanism"]["handled"], false);
        assert_eq!(v["tags"]["error.code"], "5000");
    }
}
