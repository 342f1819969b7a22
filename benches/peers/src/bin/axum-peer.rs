//! The reference service's `GET /hello` and `GET /users/{id}` on axum,
//! traced by axum-tracing-opentelemetry: `OtelAxumLayer` (a server span per
//! request, W3C context extracted from the request) and
//! `OtelInResponseLayer` (the trace context in the response), as that
//! crate's README sets them up, with the subscriber and the exporter from
//! its companion crate's preset, `init_tracing_opentelemetry::
//! TracingConfig::production()`: tracing-subscriber with a JSON log layer on
//! standard output, tracing-opentelemetry's layer, an opentelemetry-otlp
//! span exporter behind the SDK's batch span processor, propagators from
//! `OTEL_PROPAGATORS` (default `tracecontext,baggage`), the sampler from
//! `OTEL_TRACES_SAMPLER`, the endpoint and protocol from
//! `OTEL_EXPORTER_OTLP_*`, the service name from `OTEL_SERVICE_NAME`.
//!
//! ```text
//! axum-peer [--port 8080]
//! ```

#[path = "../common.rs"]
mod common;

use std::net::SocketAddr;
use std::process::ExitCode;

use axum::extract::Path;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use axum_tracing_opentelemetry::middleware::{OtelAxumLayer, OtelInResponseLayer};

async fn hello() -> &'static str {
    "hello"
}

async fn user(Path(id): Path<String>) -> Response {
    match common::user(&id) {
        Some(body) => Json(body).into_response(),
        None => (StatusCode::NOT_FOUND, Json(common::not_found(&id))).into_response(),
    }
}

fn main() -> ExitCode {
    let port = match common::port() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("axum-peer: {e}");
            return ExitCode::from(2);
        }
    };
    common::runtime().block_on(async move {
        // The exporter's gRPC channel needs the runtime: set up inside it.
        let guard = match init_tracing_opentelemetry::TracingConfig::production().init_subscriber() {
            Ok(g) => g,
            Err(e) => {
                eprintln!("axum-peer: {e}");
                return ExitCode::from(2);
            }
        };
        let listener = match common::listen(port).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("axum-peer: cannot listen on port {port}: {e}");
                return ExitCode::from(1);
            }
        };
        let app = Router::new()
            .route("/hello", get(hello))
            .route("/users/{id}", get(user))
            .layer(OtelInResponseLayer)
            .layer(OtelAxumLayer::default());
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(common::shutdown_signal())
        .await;
        // Dropping the guard flushes and shuts the tracer provider down.
        drop(guard);
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("axum-peer: {e}");
                ExitCode::from(1)
            }
        }
    })
}
