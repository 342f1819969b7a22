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
mod warp_app;

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use faultline::Engine;
use faultline::config::ExporterKind;
use faultline::error::{AppError, ErrorCode, ProblemDetails, Severity, codes};
use faultline::masking::{Masker, PiiMasker};
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
                    "usage: service --framework axum|poem|warp|actix [--port 8080] [--no-tracing]"
                        .into(),
                );
            }
            other => return Err(format!("unknown argument {other:?} (try --help)")),
        }
    }
    let framework = framework.ok_or("--framework axum|poem|warp|actix is required")?;
    if !["axum", "poem", "warp", "actix"].contains(&framework.as_str()) {
        return Err(format!(
            "--framework: invalid value {framework:?}: must be axum, poem, warp or actix"
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

/// How long the requests in flight may run on after SIGINT/SIGTERM, on
/// every framework. Those still running then are dropped (their spans end,
/// marked cancelled) and the span flush follows, within its own deadline
/// (`FAULTLINE_SHUTDOWN_TIMEOUT_MS`, 5 s by default).
pub const GRACE: Duration = Duration::from_secs(3);

/// How long the runtime may take to drop what is still running after
/// [`GRACE`] (it waits for nothing else).
const DROP_DEADLINE: Duration = Duration::from_millis(500);

/// Whether SIGINT or SIGTERM has arrived: each framework's graceful shutdown
/// waits on [`requested`](Stop::requested).
#[derive(Clone)]
pub struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    /// Starts listening for SIGINT and SIGTERM (inside the runtime). The
    /// handlers are in place when this returns: a signal that comes at any
    /// time after it is a graceful shutdown, never the signal's default
    /// action (killed, exit status 143).
    fn listen() -> std::io::Result<Stop> {
        let (tx, rx) = tokio::sync::watch::channel(false);
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut interrupt = signal(SignalKind::interrupt())?;
            let mut terminate = signal(SignalKind::terminate())?;
            tokio::spawn(async move {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
                let _ = tx.send(true);
            });
        }
        #[cfg(not(unix))]
        tokio::spawn(async move {
            let _ = tokio::signal::ctrl_c().await;
            let _ = tx.send(true);
        });
        Ok(Stop(rx))
    }

    /// Resolves once SIGINT or SIGTERM has arrived (at once if one already has).
    pub async fn requested(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }
}

/// Runs a framework's server until it returns, or, once `stop` is
/// requested, for [`GRACE`] at most: its graceful shutdown (which waits for
/// every request in flight, however long) is then dropped with the
/// requests it was waiting for.
async fn drain(
    serving: impl Future<Output = std::io::Result<()>>,
    stop: Stop,
) -> std::io::Result<()> {
    let mut serving = std::pin::pin!(serving);
    tokio::select! {
        served = &mut serving => return served,
        () = stop.requested() => {}
    }
    match tokio::time::timeout(GRACE, serving).await {
        Ok(served) => served,
        Err(_) => {
            tracing::warn!(
                "shutdown: requests still in flight after {} s are dropped",
                GRACE.as_secs()
            );
            Ok(())
        }
    }
}

/// The answer to a handler's panic with `--no-tracing`: what the traced
/// adapters answer (500 problem+json, code 5000, nothing of the panic text),
/// without a trace id since nothing is traced.
pub fn panic_problem() -> ProblemDetails {
    ProblemDetails::new(codes::INTERNAL, faultline::request::INTERNAL_DETAIL)
}

/// What a panic's message is masked with before it is logged: the engine's
/// masker when tracing, else (and until the engine is up) faultline's
/// built-in PII rules.
static PANIC_MASKER: OnceLock<Arc<dyn Masker>> = OnceLock::new();

/// Logs every panic through `tracing` at error level (filtered by
/// `RUST_LOG` like every other line) with its message masked: the default
/// hook would print it raw on standard error, and a panic message can hold
/// personal data (`/panic`'s does). A traced request's panic does not reach
/// this hook: the adapters log it themselves, masked, with its trace id.
fn log_panics() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(a panic with a non-text payload)");
        let builtin;
        let masker: &dyn Masker = match PANIC_MASKER.get() {
            Some(masker) => masker.as_ref(),
            None => {
                builtin = PiiMasker::new();
                &builtin
            }
        };
        let message = masker.mask(message);
        match info.location() {
            Some(at) => tracing::error!(
                "panicked at {}:{}:{}: {message}",
                at.file(),
                at.line(),
                at.column()
            ),
            None => tracing::error!("panicked: {message}"),
        }
    }));
}

/// With `--no-tracing`, logs go to standard error through `tracing-subscriber`'s
/// own formatter, with the filters faultline's subscriber uses (`RUST_LOG`,
/// default `info`, and [`faultline::tracing::CAPPED_TARGETS`] at `info` at
/// most). Traced, faultline's subscriber writes them (see [`set_up`]).
/// Standard output carries the `listening on` line and the console
/// exporter's spans.
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;

    let (asked, cap) = faultline::tracing::default_filters();
    tracing_subscriber::registry()
        .with(asked)
        .with(cap)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .init();
}

fn main() -> ExitCode {
    log_panics();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("service: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.tracing {
        init_logging();
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
    let _ = PANIC_MASKER.set(masker);
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
            let served = match args.framework.as_str() {
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
        let report = faultline.shutdown();
        if !report.is_clean() {
            tracing::warn!(
                "shutdown: {} spans exported, {} not delivered{}",
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
    code
}
