//! The reference service's `GET /hello` and `GET /users/{id}` on poem,
//! traced by poem's own middleware (feature `opentelemetry`):
//! `OpenTelemetryMetrics` and `OpenTelemetryTracing`, paired as poem's
//! OpenTelemetry example pairs them (the metrics middleware records to the
//! global meter provider, which the example, like this peer, leaves as
//! OpenTelemetry's no-op one). The tracer comes from an SDK tracer provider
//! (OpenTelemetry 0.30, the version poem 3.1 is built on) with an
//! opentelemetry-otlp gRPC span exporter behind the batch span processor,
//! the W3C trace-context propagator set globally, the sampler from
//! `OTEL_TRACES_SAMPLER`, the endpoint from `OTEL_EXPORTER_OTLP_*` and the
//! service name from `OTEL_SERVICE_NAME` (the SDK's defaults read them).
//!
//! ```text
//! poem-peer [--port 8080]
//! ```

#[path = "../common.rs"]
mod common;

use std::process::ExitCode;
use std::time::Duration;

use opentelemetry_030::global;
use opentelemetry_030::trace::TracerProvider as _;
use opentelemetry_sdk_030::Resource;
use opentelemetry_sdk_030::propagation::TraceContextPropagator;
use opentelemetry_sdk_030::trace::SdkTracerProvider;
use poem::http::StatusCode;
use poem::listener::TcpAcceptor;
use poem::middleware::{OpenTelemetryMetrics, OpenTelemetryTracing};
use poem::web::{Json, Path};
use poem::{EndpointExt, IntoResponse, Response, Route, Server, get, handler};

#[handler]
async fn hello() -> &'static str {
    "hello"
}

#[handler]
async fn user(Path(id): Path<String>) -> Response {
    match common::user(&id) {
        Some(body) => Json(body).into_response(),
        None => Json(common::not_found(&id))
            .with_status(StatusCode::NOT_FOUND)
            .into_response(),
    }
}

fn tracer_provider() -> Result<SdkTracerProvider, String> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = opentelemetry_otlp_030::SpanExporter::builder()
        .with_tonic()
        .build()
        .map_err(|e| e.to_string())?;
    Ok(SdkTracerProvider::builder()
        .with_resource(Resource::builder().build())
        .with_batch_exporter(exporter)
        .build())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let port = match common::args(&[]) {
        Ok((p, _)) => p,
        Err(e) => {
            eprintln!("poem-peer: {e}");
            return ExitCode::from(2);
        }
    };
    common::runtime().block_on(async move {
        // The exporter's gRPC channel needs the runtime: set up inside it.
        let provider = match tracer_provider() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("poem-peer: {e}");
                return ExitCode::from(2);
            }
        };
        let listener = match common::listen(port).await {
            Ok(l) => l,
            Err(e) => {
                eprintln!("poem-peer: cannot listen on port {port}: {e}");
                return ExitCode::from(1);
            }
        };
        let app = Route::new()
            .at("/hello", get(hello))
            .at("/users/:id", get(user))
            .with(OpenTelemetryMetrics::new())
            .with(OpenTelemetryTracing::new(provider.tracer("poem-peer")));
        let served = match TcpAcceptor::from_tokio(listener) {
            Ok(acceptor) => {
                Server::new_with_acceptor(acceptor)
                    .run_with_graceful_shutdown(
                        app,
                        common::shutdown_signal(),
                        Some(Duration::from_secs(3)),
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        if let Err(e) = provider.shutdown() {
            eprintln!("poem-peer: shutdown: {e}");
        }
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("poem-peer: {e}");
                ExitCode::from(1)
            }
        }
    })
}
