//! `tracing` spans opened in a handler, and tasks spawned from it, land in
//! the request's trace.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use faultline::axum::{FaultlineLayer, RequestTrace};
use faultline::export::InMemoryExporter;
use opentelemetry::trace::{FutureExt as _, TraceContextExt as _};
use tower::ServiceExt as _;
use tracing::Instrument as _;
use tracing_subscriber::layer::SubscriberExt as _;

use crate::common::{memory_engine, quiet_config};

async fn handler(trace: RequestTrace) -> &'static str {
    async {
        tracing::info!("querying");
    }
    .instrument(tracing::info_span!("db.query"))
    .await;
    let cx = trace.context();
    tokio::spawn(
        async {
            let cx = opentelemetry::Context::current();
            let span = cx.span();
            span.add_event("spawned task ran in the request's context", vec![]);
        }
        .with_context(cx),
    )
    .await
    .unwrap();
    "ok"
}

#[test]
fn tracing_spans_and_spawned_tasks_join_the_request_trace() {
    let spans = InMemoryExporter::default();
    let engine = memory_engine(quiet_config().build().unwrap(), &spans);
    let subscriber = tracing_subscriber::registry().with(faultline::tracing::layers_with(
        &engine,
        faultline::tracing::LogLayer::new(&engine).without_lines(),
    ));
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = Router::new()
        .route("/jobs", get(handler))
        .layer(FaultlineLayer::new(engine.clone()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let response = rt.block_on(async {
        app.oneshot(
            http::Request::get("/jobs")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
    });
    assert_eq!(response.status(), 200);
    engine.force_flush();
    let exported = spans.wait_for(2, Duration::from_secs(5));
    let server = exported
        .iter()
        .find(|s| s.name == "GET /jobs")
        .expect("server span");
    let db = exported
        .iter()
        .find(|s| s.name == "db.query")
        .expect("the tracing span");
    assert_eq!(db.span_context.trace_id(), server.span_context.trace_id());
    assert_eq!(db.parent_span_id, server.span_context.span_id());
    // Events inside the tracing span are events of its OpenTelemetry span.
    assert!(
        db.events.iter().any(|e| e.name == "querying"),
        "{:?}",
        db.events
    );
    assert!(
        server
            .events
            .iter()
            .any(|e| e.name == "spawned task ran in the request's context"),
        "{:?}",
        server.events
    );
}
