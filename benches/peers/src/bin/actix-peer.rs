//! The reference service's `GET /hello` and `GET /users/{id}` on actix-web,
//! traced by opentelemetry-instrumentation-actix-web (the successor of the
//! deprecated actix-web-opentelemetry): `RequestTracing` (a server span per
//! request, W3C context extracted from the request) and `RequestMetrics`,
//! paired as that crate's example pairs them (the metrics middleware
//! records to the global meter provider, left as OpenTelemetry's no-op one,
//! as for poem-peer). The tracer provider is init-tracing-opentelemetry's
//! OTLP one, as for `axum-peer --lean` (OpenTelemetry 0.33, the version the
//! instrumentation is built on): an opentelemetry-otlp span exporter behind
//! the SDK's batch span processor, the sampler from `OTEL_TRACES_SAMPLER`,
//! the endpoint and protocol from `OTEL_EXPORTER_OTLP_*`, the service name
//! from `OTEL_SERVICE_NAME`, propagators from `OTEL_PROPAGATORS` (default
//! `tracecontext,baggage`), set globally.
//!
//! ```text
//! actix-peer [--port 8080]
//! ```

#[path = "../common.rs"]
mod common;

use std::process::ExitCode;

use actix_web::{App, HttpResponse, HttpServer, web};
use init_tracing_opentelemetry::opentelemetry;
use opentelemetry_instrumentation_actix_web::{RequestMetrics, RequestTracing};

async fn hello() -> &'static str {
    "hello"
}

async fn user(id: web::Path<String>) -> HttpResponse {
    match common::user(&id) {
        Some(body) => HttpResponse::Ok().json(body),
        None => HttpResponse::NotFound().json(common::not_found(&id)),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let served = common::args(&[]).and_then(|(port, _)| common::runtime().block_on(serve(port)));
    served.map_or_else(
        |e| {
            eprintln!("actix-peer: {e}");
            ExitCode::FAILURE
        },
        |()| ExitCode::SUCCESS,
    )
}

/// Serves until SIGINT or SIGTERM, then flushes the spans.
async fn serve(port: u16) -> Result<(), String> {
    use init_tracing_opentelemetry::{init_propagator, otlp::traces, resource::DetectResource};
    // The exporter's gRPC channel needs the runtime: set up inside it.
    let resource = DetectResource::default().build();
    let provider =
        traces::init_tracerprovider(resource, traces::identity).map_err(|e| e.to_string())?;
    init_propagator().map_err(|e| e.to_string())?;
    opentelemetry::global::set_tracer_provider(provider.clone());
    let listener = common::listen(port).await.and_then(|l| l.into_std());
    let listener = listener.map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    // actix-web's workers run on threads of their own, each with its own
    // single-threaded runtime, started from this one.
    let server = HttpServer::new(|| {
        App::new()
            .wrap(RequestTracing::new())
            .wrap(RequestMetrics::default())
            .service(web::resource("/hello").get(hello))
            .service(web::resource("/users/{id}").get(user))
    })
    .disable_signals()
    .shutdown_timeout(3)
    .listen(listener)
    .map_err(|e| e.to_string())?
    .run();
    let handle = server.handle();
    let stopping = async move {
        common::shutdown_signal().await;
        handle.stop(true).await;
    };
    let (served, ()) = tokio::join!(server, stopping);
    let flushed = provider.shutdown().map_err(|e| format!("shutdown: {e}"));
    served.map_err(|e| e.to_string()).and(flushed)
}
