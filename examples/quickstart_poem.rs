//! faultline on a plain poem app: the few lines it takes.
//!
//! ```text
//! cargo run --example quickstart_poem
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
use faultline::poem::{Error, RequestTrace};
use poem::listener::TcpListener;
use poem::web::Path;
use poem::{EndpointExt, Route, Server, get, handler};

const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND)
        .with_title("User not found");

#[handler]
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
    let faultline = faultline::setup::Setup::new("quickstart-poem")
        .configure(|c| c.exporters([ExporterKind::CONSOLE]))
        .init()?;
    // 2. One middleware: spans, problem+json errors with the trace id, GET /metrics.
    let app = Route::new()
        .at("/users/:id", get(user))
        .with(faultline.poem_middleware());
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    eprintln!("listening on http://127.0.0.1:{port}");
    Server::new(TcpListener::bind(format!("127.0.0.1:{port}")))
        .run_with_graceful_shutdown(
            app,
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
            None,
        )
        .await?;
    // 3. Flush what is pending before the process ends.
    faultline.shutdown_async().await;
    Ok(())
}
