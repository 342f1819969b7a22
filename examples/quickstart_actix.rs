//! faultline on a plain actix-web app: the few lines it takes.
//!
//! ```text
//! cargo run --example quickstart_actix
//! curl -i localhost:3000/users/7      # 200, with a traceresponse header
//! curl -i localhost:3000/users/8      # 404 problem+json with "code": 1001 and the trace id
//! curl localhost:3000/metrics         # Prometheus metrics, errors by code with their trace ids
//! ```
//!
//! Spans go to standard output here (the example's own default); set
//! `OTEL_TRACES_EXPORTER=otlp` (and `OTEL_EXPORTER_OTLP_ENDPOINT`) to send
//! them to a collector, `SENTRY_DSN` to send errors to Sentry.

use actix_web::{App, HttpServer, web};
use faultline::actix::{Error, RequestTrace};
use faultline::config::ExporterKind;
use faultline::error::{AppError, ErrorCode};

const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND)
        .with_title("User not found");

async fn user(id: web::Path<u32>, trace: RequestTrace) -> Result<String, Error> {
    match id.into_inner() {
        7 => Ok(format!(
            "user 7, trace {}\n",
            trace.trace_id().unwrap_or_default()
        )),
        // Becomes 404 application/problem+json with "code": 1001 and "trace_id".
        id => Err(AppError::new(USER_NOT_FOUND, format!("no user with id {id}")).into()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Configuration from OTEL_* / FAULTLINE_* / SENTRY_DSN, engine, exporters, metrics.
    let faultline = faultline::setup::Setup::new("quickstart-actix")
        .configure(|c| c.exporters([ExporterKind::CONSOLE]))
        .init()?;
    // 2. One middleware around the whole app: spans, problem+json errors
    //    with the trace id, GET /metrics.
    let middleware = faultline.actix_middleware();
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    eprintln!("listening on http://127.0.0.1:{port}");
    // actix-web's workers run on threads of their own; it stops gracefully
    // on SIGINT and SIGTERM by itself.
    HttpServer::new(move || {
        App::new()
            .service(web::resource("/users/{id}").get(user))
            .wrap(middleware.clone())
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await?;
    // 3. Flush what is pending before the process ends.
    faultline.shutdown_async().await;
    Ok(())
}
