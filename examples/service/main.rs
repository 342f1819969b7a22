//! The reference service: the same routes on axum, poem or warp, for tests,
//! benchmarks and outside tools (the W3C trace-context harness, load
//! generators, a collector, Prometheus). Its contract is the project's
//! service contract: routes, configuration, shutdown, logs.
//!
//! ```text
//! cargo run --release --example service -- --framework axum|poem|warp|actix [--port 8080] [--no-tracing]
//! ```
//!
//! Without `--port`, `PORT` or 8080 (`--port 0` picks a free port). Once
//! listening it prints `listening on http://ADDRESS` on standard output; its
//! SIGINT and SIGTERM handlers are in place by then, so a signal sent as soon
//! as that line appears gets the graceful shutdown.
//! Configuration comes from the environment (`OTEL_*`, `FAULTLINE_*`);
//! a bad value stops it at start with one line naming the variable.
//! SIGINT or SIGTERM stop it gracefully, the same way on every framework: it
//! stops accepting, lets the requests in flight finish for 3 s at most
//! ([`GRACE`]) and drops those still running (their spans end, marked
//! cancelled), flushes every pending span (within the shutdown deadline,
//! 5 s by default), and exits: within 10 s even when every backend is down.
//!
//! It logs to standard error through `tracing` and faultline's subscriber,
//! filtered by `RUST_LOG` (default `info`; `off` prints nothing): text, or
//! JSON lines with `FAULTLINE_LOG_FORMAT=json`, each with the trace and span
//! ids of the span current where it was written, masked; the same events
//! become span events and OTLP log records (`OTEL_LOGS_EXPORTER`, default
//! `otlp`). The dependencies whose debug logs can hold request data or
//! credentials print `info` at most, whatever `RUST_LOG` asks
//! ([`faultline::tracing::CAPPED_TARGETS`]). A panic is logged at error level with its
//! message masked, never raw; with `--no-tracing` a handler's panic still
//! answers 500 problem+json, code 5000, as the traced service does (without
//! a trace id).

mod actix_app;
mod axum_app;
mod poem_app;
#[path = "../common/process.rs"]
mod process;
mod warp_app;

pub use process::GRACE;
use process::{
    Args, DROP_DEADLINE, Stop, drain, init_plain_logging, log_panics, set_panic_masker, shut_down,
};

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use faultline::Engine;
use faultline::config::ExporterKind;
use faultline::error::{AppError, ErrorCode, ProblemDetails, Severity, codes};
use faultline::masking::PiiMasker;
use faultline::reqwest::reqwest_middleware::{self, ClientWithMiddleware};
use faultline::setup::{Faultline, Setup};
use http::StatusCode;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, TraceContextExt, Tracer as _};
use serde::Deserialize;

/// The gap between two events of `GET /stream`.
pub const EVENT_GAP: Duration = Duration::from_millis(200);

/// `GET /stream`: five server-sent events `data: N` (N = 1..=5),
/// [`EVENT_GAP`] apart, then the end of the body (`text/event-stream`).
pub fn events()
-> impl futures_util::Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + Sync + 'static {
    futures_util::stream::unfold(1u8, |n| async move {
        if n > 5 {
            return None;
        }
        if n > 1 {
            tokio::time::sleep(EVENT_GAP).await;
        }
        Some((Ok(bytes::Bytes::from(format!("data: {n}\n\n"))), n + 1))
    })
}

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
        match id.parse::<i64>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(serde_json::json!({ "id": load_user(n) })),
            parsed => {
                // Straight in the handler, outside any span of its own: an
                // event of the request's server span.
                match parsed {
                    Ok(n) => tracing::warn!(user.id = n, "user not found"),
                    Err(_) => tracing::warn!(user.id = id, "user not found"),
                }
                Err(AppError::new(
                    USER_NOT_FOUND,
                    format!("no user with id {id}"),
                ))
            }
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
        // Raw values too: the log line, the span event and the log record
        // are masked by faultline.
        tracing::warn!(email = %body.email, card = %body.card, "payment declined");
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

/// Finds a user: a `tracing` span of its own (a child of the request's
/// server span) with one event.
#[tracing::instrument(name = "load_user")]
fn load_user(id: i64) -> i64 {
    tracing::info!(user.id = id, "loading user");
    id
}

/// faultline in one call: configuration from the environment, the
/// exporters it names, Prometheus metrics (served on `/metrics` by every
/// adapter), Sentry when `SENTRY_DSN` is set, and faultline's `tracing`
/// subscriber writing to standard error (`FAULTLINE_LOG_FORMAT`).
fn set_up() -> Result<Faultline, String> {
    Setup::new("faultline-service")
        .configure(|c| {
            c.service_version(env!("CARGO_PKG_VERSION"))
                .exporters([ExporterKind::OTLP])
        })
        .log_writer(
            std::io::stderr,
            std::io::IsTerminal::is_terminal(&std::io::stderr()),
        )
        .init()
        .map_err(|e| e.to_string())
}

/// The answer to a handler's panic with `--no-tracing`: what the traced
/// adapters answer (500 problem+json, code 5000, nothing of the panic text),
/// without a trace id since nothing is traced.
pub fn panic_problem() -> ProblemDetails {
    ProblemDetails::new(codes::INTERNAL, faultline::request::INTERNAL_DETAIL)
}

/// The frameworks `--framework` names.
const FRAMEWORKS: [&str; 4] = ["axum", "poem", "warp", "actix"];

fn main() -> ExitCode {
    log_panics();
    let usage = "service --framework axum|poem|warp|actix [--port 8080] [--no-tracing]";
    let args = match Args::parse(usage, 8080, &FRAMEWORKS) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("service: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.tracing {
        init_plain_logging();
    }
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
    let masker = match &engine {
        Some(engine) => faultline::masking::from_config(engine.config()),
        None => Arc::new(PiiMasker::new()),
    };
    set_panic_masker(masker);
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let client = match &engine {
        Some(engine) => faultline::reqwest::client(engine, plain),
        None => reqwest_middleware::ClientBuilder::new(plain).build(),
    };
    let code = runtime.block_on(async {
        let listener = match process::listen("service", args.port).await {
            Ok(l) => l,
            Err(code) => return code,
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
        // Before the line that tells the world the service is up.
        let stop = match Stop::listen() {
            Ok(stop) => stop,
            Err(e) => {
                eprintln!("service: cannot listen for SIGINT/SIGTERM: {e}");
                return ExitCode::from(1);
            }
        };
        println!("listening on http://127.0.0.1:{}", local.port());
        let signal = stop.clone().requested();
        let served = match args.framework.as_deref().unwrap_or_default() {
            "axum" => drain(axum_app::serve(app, listener, signal), stop).await,
            "poem" => drain(poem_app::serve(app, listener, signal), stop).await,
            // actix-web drains for `GRACE` itself, and returns once the
            // requests it cut short are dropped (their spans ended).
            "actix" => actix_app::serve(app, listener, signal).await,
            _ => drain(warp_app::serve(app, listener, signal), stop).await,
        };
        if let Err(e) = served {
            tracing::error!("serving stopped: {e}");
            return ExitCode::from(1);
        }
        ExitCode::SUCCESS
    });
    // The requests still in flight are dropped here, before the span flush,
    // so that their spans (ended as cancelled) are flushed too.
    runtime.shutdown_timeout(DROP_DEADLINE);
    drop(engine);
    if let Some(faultline) = faultline {
        shut_down(faultline);
    }
    code
}
