//! The reference service: the same routes on axum, poem or warp, for tests,
//! benchmarks and outside tools (the W3C trace-context harness, load
//! generators, a collector, Prometheus). Its contract is the project's
//! service contract: routes, configuration, shutdown, logs.
//!
//! ```text
//! cargo run --release --example service -- --framework axum|poem|warp [--port 8080] [--no-tracing]
//! ```
//!
//! Without `--port`, `PORT` or 8080 (`--port 0` picks a free port). Once
//! listening it prints `listening on http://ADDRESS` on standard output.
//! Configuration comes from the environment (`OTEL_*`, `FAULTLINE_*`);
//! a bad value stops it at start with one line naming the variable.
//! SIGINT or SIGTERM stop it gracefully: it stops accepting, finishes the
//! requests in flight, flushes every pending span, and exits (within 10 s
//! even when every backend is down).

mod axum_app;
mod poem_app;
mod warp_app;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use faultline::Engine;
use faultline::config::ExporterKind;
use faultline::error::{AppError, ErrorCode, Severity};
use faultline::reqwest::reqwest_middleware::{self, ClientWithMiddleware};
use faultline::setup::{Faultline, Setup};
use http::StatusCode;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
use serde::Deserialize;

/// `GET /users/{id}` for an id outside 1..=1000.
pub const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", StatusCode::NOT_FOUND).with_title("User not found");
/// `POST /checkout` always fails with this.
pub const PAYMENT_DECLINED: ErrorCode =
    ErrorCode::new(2001, "PAYMENT_DECLINED", StatusCode::PAYMENT_REQUIRED)
        .with_title("Payment declined")
        .with_severity(Severity::Warning);

/// What every framework's handlers share.
#[derive(Clone)]
pub struct App {
    /// The engine, `None` with `--no-tracing`.
    pub engine: Option<Engine>,
    /// The outgoing HTTP client (traced unless `--no-tracing`).
    pub client: ClientWithMiddleware,
    /// Where `GET /downstream` goes.
    pub downstream_url: Arc<str>,
}

/// The body of `POST /checkout`.
#[derive(Debug, Deserialize)]
pub struct Checkout {
    /// The customer's email.
    pub email: String,
    /// The customer's phone.
    pub phone: String,
    /// The card number.
    pub card: String,
}

/// One entry of the W3C harness's `POST /test` body.
#[derive(Debug, Deserialize)]
pub struct HarnessCall {
    /// Where to post.
    pub url: String,
    /// What to post, as JSON.
    pub arguments: serde_json::Value,
}

impl App {
    /// `GET /users/{id}`.
    pub fn user(&self, id: &str) -> Result<serde_json::Value, AppError> {
        match id.parse::<u32>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(serde_json::json!({ "id": n })),
            _ => Err(AppError::new(
                USER_NOT_FOUND,
                format!("no user with id {id}"),
            )),
        }
    }

    /// `POST /checkout`: records the raw values on the span (masking is
    /// faultline's job, not the handler's), then declines.
    pub fn checkout(&self, body: &Checkout) -> AppError {
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        span.set_attribute(KeyValue::new("app.customer.email", body.email.clone()));
        span.set_attribute(KeyValue::new("app.customer.phone", body.phone.clone()));
        span.set_attribute(KeyValue::new("app.payment.card", body.card.clone()));
        // A child span made in the handler: the card charge that declines.
        if let Some(engine) = &self.engine {
            let mut charge = engine.tracer().start_with_context("charge card", &cx);
            charge.set_attribute(KeyValue::new("app.payment.outcome", "declined"));
            charge.end();
        }
        AppError::new(
            PAYMENT_DECLINED,
            format!(
                "payment declined for {} with card {}",
                body.email, body.card
            ),
        )
    }

    /// `GET /panic`.
    pub fn panic(&self) -> ! {
        panic!("payment worker crashed for alice@example.com");
    }

    /// `GET /downstream`: calls the downstream through the traced client.
    pub async fn downstream(&self) -> serde_json::Value {
        let status = match self.client.get(&*self.downstream_url).send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 502,
        };
        let trace_id =
            faultline::Engine::trace_id(&opentelemetry::Context::current()).unwrap_or_default();
        serde_json::json!({ "downstream_status": status, "trace_id": trace_id })
    }

    /// `POST /test`: the W3C harness asks for one call per entry, each with
    /// its own CLIENT span.
    pub async fn harness(&self, calls: Vec<HarnessCall>) {
        for call in calls {
            let _ = self
                .client
                .post(&call.url)
                .json(&call.arguments)
                .send()
                .await;
        }
    }
}

struct Args {
    framework: String,
    port: u16,
    tracing: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut framework = None;
    let mut port = None;
    let mut tracing = true;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--framework" => framework = args.next(),
            "--port" => {
                let p = args.next().ok_or("--port needs a value")?;
                port = Some(
                    p.parse::<u16>()
                        .map_err(|_| format!("--port: invalid value {p:?}"))?,
                );
            }
            "--no-tracing" => tracing = false,
            "-h" | "--help" => {
                return Err(
                    "usage: service --framework axum|poem|warp [--port 8080] [--no-tracing]".into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    let framework = framework.ok_or("--framework axum|poem|warp is required")?;
    if !["axum", "poem", "warp"].contains(&framework.as_str()) {
        return Err(format!(
            "--framework: invalid value {framework:?}: must be axum, poem or warp"
        ));
    }
    let port = match port {
        Some(p) => p,
        None => match std::env::var("PORT") {
            Ok(p) if !p.trim().is_empty() => p
                .trim()
                .parse()
                .map_err(|_| format!("PORT: invalid value {p:?}"))?,
            _ => 8080,
        },
    };
    Ok(Args {
        framework,
        port,
        tracing,
    })
}

/// faultline in one call: configuration from the environment, the
/// exporters it names, Prometheus metrics (served on `/metrics` by every
/// adapter), Sentry when `SENTRY_DSN` is set.
fn set_up() -> Result<Faultline, String> {
    Setup::new("faultline-service")
        .configure(|c| {
            c.service_version(env!("CARGO_PKG_VERSION"))
                .exporters([ExporterKind::Otlp])
        })
        .init()
        .map_err(|e| e.to_string())
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

fn main() -> ExitCode {
    // Logs go to standard error through `tracing`, filtered by RUST_LOG
    // (default `info`); standard output carries the console exporter's spans.
    // Dependencies that log request data or credentials at debug level
    // (raw query strings, body errors, export headers) are capped at info,
    // whatever RUST_LOG says: nothing the service prints may hold a secret
    // or raw personal data.
    let mut filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    for capped in [
        "warp",
        "poem",
        "hyper",
        "hyper_util",
        "h2",
        "tonic",
        "tower",
        "reqwest",
        "opentelemetry",
        "opentelemetry_sdk",
        "opentelemetry_otlp",
        "opentelemetry_http",
    ] {
        if let Ok(directive) = format!("{capped}=info").parse() {
            filter = filter.add_directive(directive);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("service: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let faultline = if args.tracing {
        match set_up() {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("service: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    let engine = faultline.as_ref().map(|f| f.engine().clone());
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let client = match &engine {
        Some(engine) => faultline::reqwest::client(engine, plain),
        None => reqwest_middleware::ClientBuilder::new(plain).build(),
    };
    let code =
        runtime.block_on(async {
            let listener =
                match tokio::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], args.port)))
                    .await
                {
                    Ok(l) => l,
                    Err(e) => {
                        eprintln!("service: cannot listen on port {}: {e}", args.port);
                        return ExitCode::from(1);
                    }
                };
            let local = listener.local_addr().expect("local address");
            let downstream_url: Arc<str> = std::env::var("DOWNSTREAM_URL")
                .ok()
                .filter(|u| !u.trim().is_empty())
                .unwrap_or_else(|| format!("http://127.0.0.1:{}/hello", local.port()))
                .into();
            let app = App {
                engine: engine.clone(),
                client,
                downstream_url,
            };
            println!("listening on http://127.0.0.1:{}", local.port());
            let served = match args.framework.as_str() {
                "axum" => axum_app::serve(app, listener).await,
                "poem" => poem_app::serve(app, listener).await,
                _ => warp_app::serve(app, listener).await,
            };
            if let Err(e) = served {
                eprintln!("service: {e}");
                return ExitCode::from(1);
            }
            ExitCode::SUCCESS
        });
    drop(engine);
    if let Some(faultline) = faultline {
        let report = faultline.shutdown();
        if !report.is_clean() {
            eprintln!(
                "service: shutdown: {} spans exported, {} not delivered{}",
                report.stats.spans_exported,
                report.stats.spans_received - report.stats.spans_exported,
                if report.timed_out {
                    " (deadline reached)"
                } else {
                    ""
                }
            );
        }
    }
    // Requests still open after the deadline do not hold the process.
    runtime.shutdown_timeout(Duration::from_secs(1));
    code
}
