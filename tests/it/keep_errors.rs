//! Error-keeping sampling: an unsampled request that ends in an error is
//! exported with all its local spans; a successful one is not; the caps
//! bound what waits, and count what they cut.

use faultline::Engine;
use faultline::config::TracingConfigBuilder;
use faultline::error::{AppError, ErrorCode};
use faultline::export::{InMemoryExporter, KEPT_ATTRIBUTE};
use faultline::request::{HandlerError, RequestInfo, RequestSpan};
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version};
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
use opentelemetry_sdk::trace::SpanData;

use crate::common::quiet_config;

const NOT_FOUND: ErrorCode = ErrorCode::new(1001, "USER_NOT_FOUND", StatusCode::NOT_FOUND);

fn engine(config: TracingConfigBuilder) -> (Engine, InMemoryExporter) {
    let spans = InMemoryExporter::default();
    let engine = Engine::builder(config.build().unwrap())
        .exporter(spans.clone())
        .install_global(false)
        .build()
        .unwrap();
    (engine, spans)
}

/// Never samples a new trace (the production case this is for is 1% or 10%).
fn unsampled() -> TracingConfigBuilder {
    quiet_config().sample_rate(0.0)
}

fn start(engine: &Engine, headers: &HeaderMap) -> RequestSpan {
    engine.start_request(&RequestInfo {
        method: &Method::GET,
        route: Some("/users/{id}"),
        path: "/users/0",
        query: None,
        scheme: "http",
        version: Version::HTTP_11,
        headers,
        authority: None,
        client_address: None,
    })
}

/// A child span made in the handler, ended before the request.
fn child(engine: &Engine, request: &RequestSpan, name: &'static str) {
    let mut span = engine.tracer().start_with_context(name, request.context());
    span.end();
}

fn problem_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/problem+json"),
    );
    h
}

fn of_trace(spans: &[SpanData], trace_id: &str) -> Vec<SpanData> {
    spans
        .iter()
        .filter(|s| s.span_context.trace_id().to_string() == trace_id)
        .cloned()
        .collect()
}

#[test]
fn an_unsampled_request_that_fails_is_exported_with_its_local_spans() {
    let (engine, exported) = engine(unsampled());
    let headers = HeaderMap::new();

    // Fails: kept.
    let mut failing = start(&engine, &headers);
    assert!(!failing.context().span().span_context().is_sampled());
    let failing_trace = failing.trace_id().unwrap();
    child(&engine, &failing, "load user");
    child(&engine, &failing, "query db");
    failing.record_error(&HandlerError::new(AppError::new(NOT_FOUND, "no user 0")));
    failing.finish(StatusCode::NOT_FOUND, &problem_headers());

    // Succeeds: discarded.
    let ok = start(&engine, &headers);
    let ok_trace = ok.trace_id().unwrap();
    child(&engine, &ok, "load user");
    ok.finish(StatusCode::OK, &HeaderMap::new());

    // A plain 404 body that is not problem details and no recorded error:
    // not an error response faultline handed a trace id with.
    let plain = start(&engine, &headers);
    let plain_trace = plain.trace_id().unwrap();
    let mut text = HeaderMap::new();
    text.insert("content-type", HeaderValue::from_static("text/html"));
    plain.finish(StatusCode::NOT_FOUND, &text);

    engine.force_flush();
    let spans = exported.spans();
    let kept = of_trace(&spans, &failing_trace);
    let mut names: Vec<&str> = kept.iter().map(|s| s.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        ["GET /users/{id}", "load user", "query db"],
        "{kept:#?}"
    );
    for span in &kept {
        assert!(
            span.span_context.is_sampled(),
            "exported spans carry the sampled flag"
        );
    }
    let root = kept.iter().find(|s| s.name == "GET /users/{id}").unwrap();
    assert!(
        root.attributes
            .iter()
            .any(|kv| kv.key.as_str() == KEPT_ATTRIBUTE && kv.value.as_str() == "error"),
        "{root:#?}"
    );
    assert!(of_trace(&spans, &ok_trace).is_empty());
    assert!(of_trace(&spans, &plain_trace).is_empty());

    let stats = engine.export_stats().error_keeping;
    assert_eq!(stats.traces_kept, 1);
    assert_eq!(stats.traces_discarded, 2);
    assert_eq!(stats.traces_waiting, 0);
    assert_eq!(stats.spans_cut, 0);
}

#[test]
fn a_panic_and_a_5xx_are_kept_too_and_sampled_requests_are_unchanged() {
    let (engine, exported) = engine(unsampled());
    let headers = HeaderMap::new();
    let mut panicked = start(&engine, &headers);
    let panic_trace = panicked.trace_id().unwrap();
    panicked.record_panic(&faultline::panic::CaughtPanic {
        message: "boom".into(),
        location: None,
        backtrace: None,
    });
    panicked.finish(StatusCode::INTERNAL_SERVER_ERROR, &problem_headers());
    let bare_5xx = start(&engine, &headers);
    let bare_trace = bare_5xx.trace_id().unwrap();
    bare_5xx.finish(StatusCode::BAD_GATEWAY, &HeaderMap::new());

    // An incoming sampled parent: exported as always, nothing marked.
    let mut sampled_headers = HeaderMap::new();
    sampled_headers.insert(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    let sampled = start(&engine, &sampled_headers);
    sampled.finish(StatusCode::OK, &HeaderMap::new());

    engine.force_flush();
    let spans = exported.spans();
    assert_eq!(of_trace(&spans, &panic_trace).len(), 1);
    assert_eq!(of_trace(&spans, &bare_trace).len(), 1);
    let s = of_trace(&spans, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(s.len(), 1);
    assert!(
        !s[0]
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == KEPT_ATTRIBUTE)
    );
    assert_eq!(engine.export_stats().error_keeping.traces_kept, 2);
}

#[test]
fn the_caps_bound_what_waits_and_count_what_they_cut() {
    let (engine, exported) = engine(unsampled().keep_errors_caps(16, 2));
    let headers = HeaderMap::new();

    // Spans per trace: 2 of 5 children wait; 3 are cut; the root is never cut.
    let mut one = start(&engine, &headers);
    let trace = one.trace_id().unwrap();
    for _ in 0..5 {
        child(&engine, &one, "step");
    }
    one.record_error(&HandlerError::new(AppError::new(NOT_FOUND, "none")));
    one.finish(StatusCode::NOT_FOUND, &problem_headers());
    engine.force_flush();
    assert_eq!(of_trace(&exported.spans(), &trace).len(), 3);
    assert_eq!(engine.export_stats().error_keeping.spans_cut, 3);

    // Traces waiting: many requests in flight at once, each with a child
    // ended; at most 16 wait, the rest of the children are cut, counted.
    let open: Vec<RequestSpan> = (0..200).map(|_| start(&engine, &headers)).collect();
    for request in &open {
        child(&engine, request, "step");
    }
    let stats = engine.export_stats().error_keeping;
    assert!(stats.traces_waiting <= 16, "{stats:?}");
    assert!(stats.traces_waiting >= 1, "{stats:?}");
    assert_eq!(stats.spans_cut, 3 + 200 - stats.traces_waiting, "{stats:?}");
    for request in open {
        request.finish(StatusCode::OK, &HeaderMap::new());
    }
    let stats = engine.export_stats().error_keeping;
    assert_eq!(
        stats.traces_waiting, 0,
        "nothing waits after its root ended"
    );
    assert_eq!(stats.traces_discarded, 200);
}

#[test]
fn turned_off_an_unsampled_error_is_not_exported() {
    let (engine, exported) = engine(unsampled().keep_errors(false));
    let mut failing = start(&engine, &HeaderMap::new());
    assert!(!failing.context().span().is_recording(), "nothing recorded");
    failing.record_error(&HandlerError::new(AppError::new(NOT_FOUND, "no user 0")));
    failing.finish(StatusCode::NOT_FOUND, &problem_headers());
    engine.force_flush();
    assert!(exported.spans().is_empty());
    assert_eq!(engine.export_stats().error_keeping.traces_kept, 0);
}
