//! faultline on a plain warp app: the few lines it takes.
//!
//! ```text
//! cargo run --example quickstart_warp
//! curl -i localhost:3000/users/7      # 200, with a traceresponse header
//! curl -i localhost:3000/users/8      # 404 problem+json with "code": 1001 and the trace id
//! curl localhost:3000/metrics         # Prometheus metrics, errors by code with their trace ids
//! ```
//!
//! Spans go to standard output here (the example's own default); set
//! `OTEL_TRACES_EXPORTER=otlp` (and `OTEL_EXPORTER_OTLP_ENDPOINT`) to send
//! them to a collector, `SENTRY_DSN` to send errors to Sentry.

use faultline::config::ExporterKind;
use faultline::error::{AppError, ErrorCode};
use faultline::warp::{Error, RequestTrace};
use warp::{Filter, Rejection};

const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND)
        .with_title("User not found");

async fn user(id: u32, trace: RequestTrace) -> Result<String, Rejection> {
    if id == 7 {
        Ok(format!(
            "user 7, trace {}\n",
            trace.trace_id().unwrap_or_default()
        ))
    } else {
        // Becomes 404 application/problem+json with "code": 1001 and "trace_id".
        Err(Error::from(AppError::new(
            USER_NOT_FOUND,
            format!("no user with id {id}"),
        ))
        .into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Configuration from OTEL_* / FAULTLINE_* / SENTRY_DSN, engine, exporters, metrics.
    let faultline = faultline::setup::Setup::new("quickstart-warp")
        .configure(|c| c.exporters([ExporterKind::CONSOLE]))
        .init()?;
    // 2. Routes name their template; `faultline.warp` traces them all and serves GET /metrics.
    let users = warp::path!("users" / u32)
        .and(faultline::warp::route("/users/{id}"))
        .and(warp::get())
        .and(faultline::warp::trace())
        .and_then(user);
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    eprintln!("listening on http://{}", listener.local_addr()?);
    faultline
        .warp(users)
        .serve(listener)
        .graceful(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .run()
        .await;
    // 3. Flush what is pending before the process ends.
    faultline.shutdown_async().await;
    Ok(())
}
