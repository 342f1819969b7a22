use std::time::Duration;

use axum::Router;
use axum::routing::get;
use faultline_engine::Engine;
use faultline_engine::config::TracingConfig;
use faultline_engine::error::PROBLEM_JSON;
use faultline_engine::export::InMemoryExporter;
use faultline_engine::request::TRACERESPONSE;
use http::header;
use opentelemetry::trace::TraceContextExt as _;
use tower::ServiceExt;

use super::*;

fn engine() -> (Engine, InMemoryExporter) {
    let spans = InMemoryExporter::default();
    let config = TracingConfig::builder()
        .service_name("axum-adapter")
        .exporters([])
        .build()
        .unwrap();
    let engine = Engine::builder(config)
        .exporter(spans.clone())
        .install_global(false)
        .build()
        .unwrap();
    (engine, spans)
}

#[tokio::test]
async fn a_request_dropped_before_its_answer_ends_its_span_as_cancelled() {
    let (engine, spans) = engine();
    let app = Router::new()
        .route("/slow", get(std::future::pending::<&'static str>))
        .layer(FaultlineLayer::new(engine.clone()));
    let request = Request::get("/slow").body(Body::empty()).unwrap();
    // Polled until the timeout, then dropped, as when a client goes away.
    let answer = tokio::time::timeout(Duration::from_millis(50), app.oneshot(request)).await;
    assert!(answer.is_err());
    engine.force_flush();
    let exported = spans.wait_for(1, Duration::from_secs(5));
    assert_eq!(exported.len(), 1);
    assert_eq!(exported[0].name, "GET /slow");
    assert!(
        exported[0]
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "faultline.request.cancelled"),
        "{:?}",
        exported[0].attributes
    );
    engine.shutdown();
}

async fn ids(trace: RequestTrace) -> String {
    // A span of the handler's own made current: the request's context
    // is still the server span's.
    let under_own_span = {
        let _own = opentelemetry::Context::current()
            .with_remote_span_context(opentelemetry::trace::SpanContext::new(
                opentelemetry::trace::TraceId::from(7),
                opentelemetry::trace::SpanId::from(7),
                opentelemetry::trace::TraceFlags::SAMPLED,
                false,
                Default::default(),
            ))
            .attach();
        RequestContext::current().and_then(|c| c.span_id())
    };
    assert_eq!(under_own_span, trace.span_id());
    format!(
        "{}|{}|{}",
        trace.trace_id().unwrap_or_default(),
        trace.span_id().unwrap_or_default(),
        trace.baggage("tenant").unwrap_or_default()
    )
}

#[tokio::test]
async fn the_request_trace_extractor_gives_the_server_spans_ids_and_baggage() {
    let (engine, _spans) = engine();
    let app = Router::new()
        .route("/ids", get(ids))
        .layer(FaultlineLayer::new(engine.clone()));
    let response = app
        .oneshot(
            Request::get("/ids")
                .header("baggage", "tenant=acme")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let traceresponse = response.headers()[TRACERESPONSE]
        .to_str()
        .unwrap()
        .to_owned();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    let parts: Vec<&str> = traceresponse.split('-').collect();
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        format!("{}|{}|acme", parts[1], parts[2])
    );
    // Without the layer: nothing.
    let bare = Router::new().route("/ids", get(ids));
    let response = bare
        .oneshot(Request::get("/ids").body(Body::empty()).unwrap())
        .await
        .unwrap();
    let body = axum::body::to_bytes(response.into_body(), 1024)
        .await
        .unwrap();
    assert_eq!(&body[..], b"||");
    engine.shutdown();
}

#[tokio::test]
async fn answers_and_axum_rejections_end_their_spans_with_traceresponse() {
    let (engine, spans) = engine();
    let app = Router::new()
        .route("/ok", get(|| async { "ok" }))
        .layer(FaultlineLayer::new(engine.clone()));
    let ok = app
        .clone()
        .oneshot(Request::get("/ok").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert!(ok.headers().contains_key(TRACERESPONSE));
    // A wrong method: axum's own 405, rewritten into problem details
    // through the boxed step, its `Allow` header kept.
    let rejected = app
        .oneshot(Request::post("/ok").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(rejected.status(), 405);
    assert!(rejected.headers().contains_key(TRACERESPONSE));
    assert!(rejected.headers().contains_key(header::ALLOW));
    assert_eq!(
        rejected.headers().get(header::CONTENT_TYPE).unwrap(),
        PROBLEM_JSON
    );
    // Small bodies of known length: the spans end as the server takes them.
    for response in [ok, rejected] {
        axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
    }
    engine.force_flush();
    let exported = spans.wait_for(2, Duration::from_secs(5));
    assert_eq!(exported.len(), 2);
    assert!(
        exported
            .iter()
            .all(|s| s.name == "GET /ok" || s.name.starts_with("POST"))
    );
    let size = |s: &opentelemetry_sdk::trace::SpanData| {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == "http.response.body.size")
            .map(|kv| kv.value.clone())
    };
    // Gone out whole: no wrapper counted its bytes.
    let ok_span = exported.iter().find(|s| s.name == "GET /ok").unwrap();
    assert_eq!(size(ok_span), None);
    engine.shutdown();
}
