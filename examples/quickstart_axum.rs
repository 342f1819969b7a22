//! faultline on a plain axum app: the few lines it takes.
//!
//! ```text
//! cargo run --example quickstart_axum
//! curl -i localhost:3000/users/7      # 200, with a traceresponse header
//! curl -i localhost:3000/users/8      # 404 problem+json with "code": 1001 and the trace id
//! curl localhost:3000/metrics         # Prometheus metrics, errors by code with their trace ids
//! ```
//!
//! Spans go to standard output here (the example's own default); set
//! `OTEL_TRACES_EXPORTER=otlp` (and `OTEL_EXPORTER_OTLP_ENDPOINT`) to send
//! them to a collector, `SENTRY_DSN` to send errors to Sentry.

use axum::Router;
use axum::extract::Path;
use axum::routing::get;
use faultline::axum::{Error, RequestTrace};
use faultline::config::ExporterKind;
use faultline::error::{AppError, ErrorCode};

const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND)
        .with_title("User not found");

async fn user(Path(id): Path<u32>, trace: RequestTrace) -> Result<String, Error> {
    if id == 7 {
        Ok(format!(
            "user 7, trace {}\n",
            trace.trace_id().unwrap_or_default()
        ))
    } else {
        // Becomes 404 application/problem+json with "code": 1001 and "trace_id".
        Err(AppError::new(USER_NOT_FOUND, format!("no user with id {id}")).into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Configuration from OTEL_* / FAULTLINE_* / SENTRY_DSN, engine, exporters, metrics.
    let faultline = faultline::setup::Setup::new("quickstart-axum")
        .configure(|c| c.exporters([ExporterKind::CONSOLE]))
        .init()?;
    // 2. One layer: spans, problem+json errors with the trace id, GET /metrics.
    let app = Router::new()
        .route("/users/{id}", get(user))
        .layer(faultline.axum_layer());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    // 3. Flush what is pending before the process ends.
    faultline.shutdown_async().await;
    Ok(())
}
