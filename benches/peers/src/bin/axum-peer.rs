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
//!
//! With `--lean`, the same pieces of init-tracing-opentelemetry (the OTLP
//! tracer provider from the environment, the propagators, the resource) and
//! the same tracing-opentelemetry layer, composed by hand so that the JSON
//! log layer sees only what `RUST_LOG` lets through: the preset's log
//! layer also sees the request span (the global filter lets the
//! `otel::tracing` target through at TRACE, for the OpenTelemetry layer)
//! and formats its fields as JSON on every request, even when no log line
//! is printed. A measure of what the preset's logging costs, not how its
//! documentation sets it up.
//!
//! ```text
//! axum-peer [--port 8080] [--lean]
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
use init_tracing_opentelemetry::opentelemetry;
use init_tracing_opentelemetry::opentelemetry::trace::TracerProvider as _;
use init_tracing_opentelemetry::opentelemetry_sdk::trace::SdkTracerProvider;
use init_tracing_opentelemetry::tracing_opentelemetry;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

async fn hello() -> &'static str {
    "hello"
}

async fn user(Path(id): Path<String>) -> Response {
    match common::user(&id) {
        Some(body) => Json(body).into_response(),
        None => (StatusCode::NOT_FOUND, Json(common::not_found(&id))).into_response(),
    }
}

/// `--lean`: the OpenTelemetry layer sees the `otel::tracing` target, the
/// JSON log layer only what `RUST_LOG` allows (per-layer filters).
/// Returns the tracer provider, to shut down at the end.
fn init_lean() -> Result<SdkTracerProvider, String> {
    let resource = init_tracing_opentelemetry::resource::DetectResource::default().build();
    let provider = init_tracing_opentelemetry::otlp::traces::init_tracerprovider(
        resource,
        init_tracing_opentelemetry::otlp::traces::identity,
    )
    .map_err(|e| e.to_string())?;
    init_tracing_opentelemetry::init_propagator().map_err(|e| e.to_string())?;
    let otel = tracing_opentelemetry::layer()
        .with_error_records_to_exceptions(true)
        .with_tracer(provider.tracer("axum-peer"))
        .with_filter(Targets::new().with_target("otel::tracing", LevelFilter::TRACE));
    let logs = tracing_subscriber::fmt::layer()
        .json()
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")));
    tracing_subscriber::registry()
        .with(otel)
        .with(logs)
        .try_init()
        .map_err(|e| e.to_string())?;
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(provider)
}

/// What has to stay alive until the end: the preset's guard, or the provider.
enum Telemetry {
    Preset(#[allow(dead_code)] init_tracing_opentelemetry::Guard),
    Lean(SdkTracerProvider),
}

fn main() -> ExitCode {
    let (port, lean) = match common::args(&["--lean"]) {
        Ok((p, flags)) => (p, !flags.is_empty()),
        Err(e) => {
            eprintln!("axum-peer: {e}");
            return ExitCode::from(2);
        }
    };
    common::runtime().block_on(async move {
        // The exporter's gRPC channel needs the runtime: set up inside it.
        let telemetry = if lean {
            init_lean().map(Telemetry::Lean)
        } else {
            init_tracing_opentelemetry::TracingConfig::production()
                .init_subscriber()
                .map(Telemetry::Preset)
                .map_err(|e| e.to_string())
        };
        let telemetry = match telemetry {
            Ok(t) => t,
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
        match telemetry {
            Telemetry::Preset(guard) => drop(guard),
            Telemetry::Lean(provider) => {
                if let Err(e) = provider.shutdown() {
                    eprintln!("axum-peer: shutdown: {e}");
                }
            }
        }
        match served {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("axum-peer: {e}");
                ExitCode::from(1)
            }
        }
    })
}
