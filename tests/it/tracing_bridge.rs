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

/// A handler's work: a `tracing` span, and a task spawned with the
/// request's context `cx`.
async fn work(cx: opentelemetry::Context) -> &'static str {
    async {
        tracing::info!("querying");
    }
    .instrument(tracing::info_span!("db.query"))
    .await;
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

async fn handler(trace: RequestTrace) -> &'static str {
    work(trace.context()).await
}

/// The server span `GET /jobs`, the `tracing` span its child and the
/// spawned task's event on it.
fn assert_joined(engine: &faultline::Engine, spans: &InMemoryExporter) {
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
    let status = rt.block_on(async {
        let response = app
            .oneshot(
                http::Request::get("/jobs")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        // The server span ends with the response body.
        let status = response.status();
        axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        status
    });
    assert_eq!(status, 200);
    assert_joined(&engine, &spans);
}

#[test]
fn tracing_spans_and_spawned_tasks_join_the_request_trace_on_actix_web() {
    use actix_web::{App, test, web};
    let spans = InMemoryExporter::default();
    let engine = memory_engine(quiet_config().build().unwrap(), &spans);
    let subscriber = tracing_subscriber::registry().with(faultline::tracing::layers_with(
        &engine,
        faultline::tracing::LogLayer::new(&engine).without_lines(),
    ));
    let _guard = tracing::subscriber::set_default(subscriber);
    let traced = engine.clone();
    actix_web::rt::System::new().block_on(async move {
        let app = App::new()
            .service(
                web::resource("/jobs")
                    .get(|trace: faultline::actix::RequestTrace| work(trace.context())),
            )
            .wrap(faultline::actix::FaultlineMiddleware::new(traced));
        let app = test::init_service(app).await;
        let request = test::TestRequest::get().uri("/jobs").to_request();
        let response = test::call_service(&app, request).await;
        // The server span ends with the response body.
        assert_eq!(&test::read_body(response).await[..], b"ok");
    });
    assert_joined(&engine, &spans);
}
