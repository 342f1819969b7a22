//! Error-keeping sampling: an unsampled request that ends in an error is
//! exported with all its local spans; a successful one is not; the caps
//! bound what waits, and count what they cut.

use faultline::Engine;
use faultline::config::TracingConfigBuilder;
use faultline::error::{AppError, ErrorCode};
use faultline::export::{InMemoryExporter, KEPT_ATTRIBUTE};
use faultline::request::{HandlerError, RequestSpan};
use http::{HeaderMap, HeaderValue, StatusCode};
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
use opentelemetry_sdk::trace::SpanData;

use crate::common::{memory_engine, quiet_config, start_get};

const NOT_FOUND: ErrorCode = ErrorCode::new(1001, "USER_NOT_FOUND", StatusCode::NOT_FOUND);

fn engine(config: TracingConfigBuilder) -> (Engine, InMemoryExporter) {
    let spans = InMemoryExporter::default();
    let engine = memory_engine(config.build().unwrap(), &spans);
    (engine, spans)
}

/// Never samples a new trace (the production case this is for is 1% or 10%).
fn unsampled() -> TracingConfigBuilder {
    quiet_config().sample_rate(0.0)
}

fn start(engine: &Engine, headers: &HeaderMap) -> RequestSpan {
    start_get(engine, "/users/{id}", "/users/0", headers, None)
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

pub(crate) fn of_trace(spans: &[SpanData], trace_id: &str) -> Vec<SpanData> {
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
    panicked.record_panic(&faultline::panic::CaughtPanic::new("boom"));
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

/// The promise end to end: the reference service at 1% sampling exports,
/// to an OTLP receiver built on the official protobufs, every trace whose
/// id it handed out with an error (with the handler's child span), and
/// about 1% of the successful ones.
#[test]
fn at_one_percent_every_error_trace_reaches_an_otlp_receiver() {
    use std::collections::{BTreeSet, HashMap};

    use crate::otlp::Receiver;
    use crate::service::Service;

    let receiver = Receiver::start(&[]);
    let endpoint = format!("http://127.0.0.1:{}", receiver.grpc_port);
    let svc = Service::start(
        "axum",
        &[
            ("OTEL_TRACES_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.01"),
        ],
    );
    const ERRORS: usize = 25;
    const SUCCESSES: usize = 1000;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (checkouts, not_found) = rt.block_on(async {
        let client = reqwest::Client::new();
        let mut checkouts = Vec::new();
        let mut not_found = Vec::new();
        for _ in 0..ERRORS {
            let r = client
                .post(svc.url("/checkout"))
                .json(&serde_json::json!({
                    "email": "dana@example.com", "phone": "415-555-0134", "card": "4111111111111111"
                }))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 402);
            let p: serde_json::Value = r.json().await.unwrap();
            checkouts.push(p["trace_id"].as_str().unwrap().to_owned());
            let r = client.get(svc.url("/users/0")).send().await.unwrap();
            assert_eq!(r.status(), 404);
            let p: serde_json::Value = r.json().await.unwrap();
            not_found.push(p["trace_id"].as_str().unwrap().to_owned());
        }
        for _ in 0..SUCCESSES {
            let r = client.get(svc.url("/hello")).send().await.unwrap();
            assert_eq!(r.status(), 200);
        }
        (checkouts, not_found)
    });
    let (clean, _) = svc.stop();
    assert!(clean, "clean exit");

    let spans = receiver.spans(3 * ERRORS);
    let mut by_trace: HashMap<&str, Vec<&serde_json::Value>> = HashMap::new();
    for s in &spans {
        by_trace
            .entry(s["trace_id"].as_str().unwrap())
            .or_default()
            .push(s);
    }
    let kept = |s: &serde_json::Value| {
        s["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["key"] == KEPT_ATTRIBUTE && a["value"] == "error")
    };
    let sampled_flag = |s: &serde_json::Value| s["flags"].as_u64().unwrap() & 1 == 1;
    let mut kept_roots = 0;
    for trace in &checkouts {
        let got = by_trace
            .get(trace.as_str())
            .unwrap_or_else(|| panic!("checkout trace {trace} not exported"));
        let root = got
            .iter()
            .find(|s| s["name"] == "POST /checkout")
            .unwrap_or_else(|| panic!("no server span in {got:#?}"));
        let charge = got
            .iter()
            .find(|s| s["name"] == "charge card")
            .unwrap_or_else(|| panic!("no child span in {got:#?}"));
        assert_eq!(charge["parent_span_id"], root["span_id"]);
        assert!(sampled_flag(root) && sampled_flag(charge), "{root}");
        kept_roots += usize::from(kept(root));
    }
    for trace in &not_found {
        let got = by_trace
            .get(trace.as_str())
            .unwrap_or_else(|| panic!("404 trace {trace} not exported"));
        let root = got.iter().find(|s| s["name"] == "GET /users/{id}").unwrap();
        kept_roots += usize::from(kept(root));
    }
    // Nearly all were kept for their error (the 1% the sampler took are not marked).
    assert!(
        kept_roots >= 2 * ERRORS - 5,
        "{kept_roots} of {} kept",
        2 * ERRORS
    );
    let hello_traces: BTreeSet<&str> = spans
        .iter()
        .filter(|s| s["name"] == "GET /hello")
        .map(|s| s["trace_id"].as_str().unwrap())
        .collect();
    // 1% of 1000: 10 expected; the bounds leave about 5 standard deviations.
    assert!(
        (1..=30).contains(&hello_traces.len()),
        "{} of {SUCCESSES} successful requests exported",
        hello_traces.len()
    );
    assert!(
        hello_traces
            .iter()
            .all(|t| by_trace[t].iter().all(|s| !kept(s))),
        "successful traces are exported by the sampler, not kept"
    );
}
