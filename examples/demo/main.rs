//! faultline's demo: two services on loopback, traced end to end.
//!
//! ```text
//! cargo run --example demo                      # the backend on poem
//! cargo run --example demo -- --backend warp    # the backend on warp
//! cargo run --example demo -- --serve           # then keep the trace viewer open
//! OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4317 cargo run --example demo
//! ```
//!
//! A gateway on axum calls a backend through faultline's reqwest
//! integration. The demo sends a scripted set of requests to the gateway
//! (a success, an application error with its code, a panic in the backend,
//! personal data in the inputs), then prints each request's trace as a
//! waterfall (both services' spans in one tree, masked as any exporter
//! receives them) and the problem+json bodies the client received, each
//! with the trace id that leads to its trace. The same traces go to
//! faultline's trace viewer, whose address it prints (`FAULTLINE_VIEWER_ADDR`,
//! else `127.0.0.1:16686`, else any free port): it finishes by itself, or
//! with `--serve` keeps the viewer open on the demo's traces until Ctrl-C.
//!
//! Configuration comes from the environment (`OTEL_*`, `FAULTLINE_*`) over
//! the demo's defaults: spans are kept in memory for the waterfall and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`)
//! is set, exported over OTLP too (`OTEL_TRACES_EXPORTER` chooses other
//! exporters). The services are named `gateway` and `backend`;
//! `OTEL_SERVICE_NAME`, when set, is the first part of both names
//! (`shop-gateway`, `shop-backend`). A bad variable stops the demo at
//! start with one line naming it (exit status 2). `RUST_LOG` turns on logs
//! (standard error).

mod services;
mod waterfall;

/// `println!` that ignores a closed standard output (`demo | head`): the
/// demo goes on and shuts its engines down cleanly.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!`, likewise.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use faultline::config::ExporterKind;
use faultline::error::{PROBLEM_JSON, ProblemDetails};
use faultline::export::InMemoryExporter;
use faultline::masking::Masker;
use faultline::setup::{Faultline, Setup, SetupError};
use faultline::viewer::{Viewer, ViewerConfig};
use faultline::{Engine, ShutdownReport};
use tokio::sync::watch;

use services::{Backend, Gateway, PANIC_SKU, Payment};
use waterfall::{ServiceSpan, Style};

const USAGE: &str = "usage: demo [--backend poem|warp] [--serve]";

/// The framework the backend runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BackendFramework {
    Poem,
    Warp,
}

impl BackendFramework {
    fn name(self) -> &'static str {
        match self {
            BackendFramework::Poem => "poem",
            BackendFramework::Warp => "warp",
        }
    }
}

/// The command line: the backend's framework, and whether to keep the
/// viewer open at the end (`--serve`).
fn parse_args() -> Result<(BackendFramework, bool), String> {
    let mut framework = BackendFramework::Poem;
    let mut serve = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = match arg.as_str() {
            "--serve" => {
                serve = true;
                continue;
            }
            "--backend" => args.next().ok_or("--backend needs a value: poem or warp")?,
            other if other.starts_with("--backend=") => other["--backend=".len()..].to_owned(),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?} ({USAGE})")),
        };
        framework = match value.as_str() {
            "poem" => BackendFramework::Poem,
            "warp" => BackendFramework::Warp,
            _ => {
                return Err(format!(
                    "--backend: invalid value {value:?}: must be poem or warp"
                ));
            }
        };
    }
    Ok((framework, serve))
}

/// The trace viewer both services export to: `FAULTLINE_VIEWER_ADDR`, else
/// the default address, else (taken, by Jaeger say) any free loopback
/// port. `None`, with a line on standard error, when it cannot start.
fn start_viewer(config: ViewerConfig, masker: Option<Arc<dyn Masker>>) -> Option<Viewer> {
    let explicit = env(faultline::viewer::ENV_ADDR).is_some();
    let started = Viewer::start(config.clone(), masker.clone()).or_else(|e| {
        if explicit {
            return Err(e);
        }
        Viewer::start(
            config.with_addr(SocketAddr::from(([127, 0, 0, 1], 0))),
            masker,
        )
    });
    match started {
        Ok(viewer) => Some(viewer),
        Err(e) => {
            eprintln!("demo: no trace viewer: {e}");
            None
        }
    }
}

/// A variable of the process environment; empty counts as unset, as the
/// OpenTelemetry specification says.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// One service's faultline, through the one-call setup: the environment
/// over the demo's defaults, with an in-memory exporter beside whatever the
/// configuration names. Two engines live in this process, so neither
/// becomes the OpenTelemetry global: the adapters and the reqwest client
/// are handed their engine.
fn set_up(
    role: &'static str,
    memory: InMemoryExporter,
    viewer: Option<&Viewer>,
) -> Result<Faultline, SetupError> {
    let otlp = env("OTEL_EXPORTER_OTLP_ENDPOINT").is_some()
        || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_some();
    let mut setup = Setup::new(role);
    if let Some(viewer) = viewer {
        setup = setup.exporter(viewer.exporter());
    }
    setup
        .install_global(false)
        .panic_hook(false)
        .metrics_recorder(false)
        .exporter(memory)
        .configure(move |c| {
            c.service_version(env!("CARGO_PKG_VERSION"))
                .exporters(if otlp {
                    vec![ExporterKind::OTLP]
                } else {
                    vec![]
                })
                .batch(2048, 512, Duration::from_millis(100))
                .shutdown_timeout(Duration::from_secs(2))
                .capture_request_header("authorization")
        })
        .env_from(move |name| match name {
            "OTEL_SERVICE_NAME" => Some(match env(name) {
                Some(base) => format!("{}-{role}", base.trim()),
                None => role.to_owned(),
            }),
            _ => env(name),
        })
        .init()
}

/// One scripted request and what came back.
struct Exchange {
    what: &'static str,
    method: &'static str,
    path: String,
    status: u16,
    content_type: String,
    body: String,
    trace_id: Option<String>,
}

/// The personal data the script sends (the test checks none of it is printed).
const EMAIL: &str = "jane.doe@example.com";
const PHONE: &str = "+1 (555) 123-4567";
const CARD: &str = "4111 1111 1111 1111";
const TOKEN: &str = "Bearer demo-secret-token-8f2a";

/// Sends the script to the gateway, printing a line per request.
async fn script(gateway: &str, masker: &dyn Masker, style: Style) -> Result<Vec<Exchange>, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| format!("HTTP client: {e}"))?;
    let payment = Payment {
        email: EMAIL.to_owned(),
        phone: PHONE.to_owned(),
        card: CARD.to_owned(),
    };
    let steps: Vec<(&'static str, &'static str, String, Option<&Payment>)> = vec![
        (
            "success: the gateway calls the backend twice",
            "GET",
            "/orders/7".to_owned(),
            None,
        ),
        (
            "application error: the backend's code, passed on by the gateway",
            "GET",
            "/orders/999".to_owned(),
            None,
        ),
        (
            "panic in the backend: 500 there, 502 from the gateway",
            "GET",
            format!("/orders/{PANIC_SKU}"),
            None,
        ),
        (
            "personal data in the inputs (email, phone, card, a token)",
            "POST",
            "/checkout".to_owned(),
            Some(&payment),
        ),
    ];
    let mut exchanges = Vec::new();
    for (n, (what, method, path, body)) in steps.into_iter().enumerate() {
        let url = format!("{gateway}{path}");
        let request = match body {
            Some(body) => client
                .post(&url)
                .header(http::header::AUTHORIZATION, TOKEN)
                .json(body),
            None => client.get(&url),
        };
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        // traceresponse: 00-{trace id}-{server span id}-{flags}
        let trace_id = header("traceresponse")
            .and_then(|v| v.split('-').nth(1).map(str::to_owned))
            .filter(|t| t.len() == 32);
        let content_type = header("content-type").unwrap_or_default();
        let text = response
            .text()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status_text = format!("{status}");
        say!(
            "  [{}] {:<4} {:<12} -> {}  {}",
            n + 1,
            method,
            path,
            if status < 400 {
                style.green(&status_text)
            } else if status < 500 {
                style.yellow(&status_text)
            } else {
                style.red(&status_text)
            },
            style.dim(what)
        );
        if let Some(body) = body {
            // What was sent, shown masked: the raw values appear nowhere.
            let sent = serde_json::to_string(body).unwrap_or_default();
            say!(
                "      {}",
                style.dim(&format!(
                    "sent (shown masked here): authorization: {}  body: {}",
                    masker
                        .mask(&format!("Authorization: {TOKEN}"))
                        .trim_start_matches("Authorization: "),
                    masker.mask(&sent)
                ))
            );
        }
        exchanges.push(Exchange {
            what,
            method,
            path,
            status,
            content_type,
            body: text,
            trace_id,
        });
    }
    Ok(exchanges)
}

/// The running services.
struct Running {
    gateway_addr: SocketAddr,
    backend_addr: SocketAddr,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn start(
    framework: BackendFramework,
    gateway: &Faultline,
    backend: &Faultline,
) -> std::io::Result<Running> {
    let (stop, stopped) = watch::channel(false);
    let mut tasks = Vec::new();

    // The backend, on poem or warp, with its own engine.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let backend_addr = listener.local_addr()?;
    let logic = Backend::new(backend.engine().clone());
    let signal = services::stopped(stopped.clone());
    match framework {
        BackendFramework::Poem => {
            let endpoint = services::backend_poem::endpoint(logic, backend.poem_middleware());
            let acceptor = poem::listener::TcpAcceptor::from_tokio(listener)?;
            tasks.push(tokio::spawn(async move {
                let _ = poem::Server::new_with_acceptor(acceptor)
                    .run_with_graceful_shutdown(endpoint, signal, Some(Duration::from_secs(1)))
                    .await;
            }));
        }
        BackendFramework::Warp => {
            let server = backend
                .warp(services::backend_warp::routes(logic))
                .serve(listener)
                .graceful(signal);
            tasks.push(tokio::spawn(server.run()));
        }
    }

    // The gateway on axum, calling the backend through the traced client.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gateway_addr = listener.local_addr()?;
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(std::io::Error::other)?;
    let client = faultline::reqwest::client(gateway.engine(), plain);
    let app = services::gateway::router(
        Gateway::new(format!("http://{backend_addr}"), client),
        gateway.axum_layer(),
    );
    let signal = services::stopped(stopped);
    tasks.push(tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(signal)
        .await;
    }));
    Ok(Running {
        gateway_addr,
        backend_addr,
        stop,
        tasks,
    })
}

fn main() -> ExitCode {
    let started = Instant::now();
    let (framework, serve) = match parse_args() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    let style = Style::detect();
    if env("RUST_LOG").is_some() {
        use std::io::IsTerminal as _;
        use tracing_subscriber::layer::SubscriberExt as _;
        use tracing_subscriber::util::SubscriberInitExt as _;
        // faultline's filters: `RUST_LOG`, with the dependencies whose
        // debug logs hold request data or credentials capped at `info`.
        let (asked, cap) = faultline::tracing::default_filters();
        tracing_subscriber::registry()
            .with(asked)
            .with(cap)
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal() && style.colored()),
            )
            .init();
    }

    let viewer_config = match ViewerConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    // What the viewer's OTLP receiver takes is masked like the services'
    // spans (a bad variable is reported by the set-up below).
    let masker = faultline::config::TracingConfig::from_env()
        .ok()
        .map(|c| faultline::masking::from_config(&c));
    let viewer = start_viewer(viewer_config, masker);

    let gateway_spans = InMemoryExporter::default();
    let backend_spans = InMemoryExporter::default();
    let set_up_both = set_up("gateway", gateway_spans.clone(), viewer.as_ref())
        .and_then(|g| set_up("backend", backend_spans.clone(), viewer.as_ref()).map(|b| (g, b)));
    let (gateway, backend) = match set_up_both {
        Ok(pair) => pair,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(2);
        }
    };
    let tracing_on = gateway.config().enabled();
    let names = [
        gateway.config().service_name().to_owned(),
        backend.config().service_name().to_owned(),
    ];
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("demo: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };

    say!(
        "{}",
        style.bold("faultline demo: two services on loopback, traced end to end")
    );
    let outcome = runtime.block_on(async {
        let running = start(framework, &gateway, &backend)
            .await
            .map_err(|e| format!("cannot start the services: {e}"))?;
        say!(
            "  {}  axum  http://{}  calls  {}  {}  http://{}  through faultline::reqwest",
            style.service(0, &names[0]),
            running.gateway_addr,
            style.service(1, &names[1]),
            framework.name(),
            running.backend_addr
        );
        say!("  exporters: {}", exporters_text(gateway.engine()));
        match &viewer {
            Some(v) => say!("  viewer: {}  (the same traces in your browser)\n", v.url()),
            None => say!(""),
        }
        say!("{}", style.bold("Requests"));
        let exchanges = tokio::time::timeout(
            Duration::from_secs(20),
            script(
                &format!("http://{}", running.gateway_addr),
                gateway.engine().masker(),
                style,
            ),
        )
        .await
        .map_err(|_| "the scripted requests took longer than 20 s".to_owned())
        .and_then(|r| r);
        let _ = running.stop.send(true);
        for task in running.tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        exchanges
    });
    let exchanges = match outcome {
        Ok(e) => e,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::from(1);
        }
    };

    // Flush and close both engines (side by side: each has its own deadline).
    let (gateway_report, backend_report) = std::thread::scope(|s| {
        let g = s.spawn(move || gateway.shutdown());
        let b = s.spawn(move || backend.shutdown());
        (g.join().ok(), b.join().ok())
    });

    let mut spans: Vec<ServiceSpan> = Vec::new();
    for (index, memory) in [&gateway_spans, &backend_spans].into_iter().enumerate() {
        spans.extend(memory.spans().into_iter().map(|span| ServiceSpan {
            service_index: index,
            service: names[index].clone(),
            span,
        }));
    }
    // Why a trace id can lead to no exported span.
    let left_out = if tracing_on {
        "the sampler left it out: OTEL_TRACES_SAMPLER"
    } else {
        "tracing is off: OTEL_SDK_DISABLED"
    };
    print_traces(&exchanges, &spans, left_out, style);
    print_problems(&exchanges, &spans, left_out, style);
    say!("{}", style.bold("Export"));
    for (name, report) in [(&names[0], &gateway_report), (&names[1], &backend_report)] {
        say!("  {}", export_text(name, report.as_ref()));
    }
    say!("\ndone in {:.1} s", started.elapsed().as_secs_f64());
    if let Some(viewer) = &viewer {
        if serve {
            say!(
                "\n{} {}  (Ctrl-C to stop)",
                style.bold("Trace viewer open:"),
                viewer.url()
            );
            let _ = runtime.block_on(tokio::signal::ctrl_c());
        } else {
            say!(
                "see these traces in the browser: {}",
                style.dim("cargo run --example demo -- --serve")
            );
        }
        viewer.stop();
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    ExitCode::SUCCESS
}

fn exporters_text(engine: &Engine) -> String {
    let config = engine.config();
    let mut list = vec!["memory (for the waterfall below)".to_owned()];
    if !config.enabled() {
        return "none: tracing is off (OTEL_SDK_DISABLED)".to_owned();
    }
    for kind in config.exporters() {
        let otlp = faultline::otlp::OtlpConfig::from_env()
            .and_then(|otlp| otlp.resolve(faultline::otlp::Signal::Traces));
        list.push(
            if let (true, Ok(otlp)) = (*kind == ExporterKind::OTLP, otlp) {
                format!("otlp {} to {}", otlp.protocol().as_str(), otlp.endpoint())
            } else {
                kind.as_str().to_owned()
            },
        );
    }
    list.join(" + ")
}

fn export_text(name: &str, report: Option<&ShutdownReport>) -> String {
    let Some(report) = report else {
        return format!("{name}: shutdown failed");
    };
    let per: Vec<String> = report
        .stats
        .exporters
        .iter()
        .map(|e| {
            let mut t = format!("{} {} delivered", e.name, e.delivered);
            if e.buffered > 0 || e.dropped > 0 {
                t.push_str(&format!(", {} buffered, {} dropped", e.buffered, e.dropped));
            }
            t
        })
        .collect();
    let mut text = format!(
        "{name}: {} spans handed to export, {}; flushed in {} ms",
        report.stats.spans_received,
        if per.is_empty() {
            "no exporter".to_owned()
        } else {
            per.join(", ")
        },
        report.elapsed.as_millis()
    );
    if report.timed_out {
        text.push_str(" (deadline reached: FAULTLINE_SHUTDOWN_TIMEOUT_MS)");
    }
    for error in &report.errors {
        text.push_str(&format!("\n    export error: {error}"));
    }
    text
}

/// The spans of each request's trace, grouped by trace id.
fn by_trace(spans: &[ServiceSpan]) -> HashMap<String, Vec<&ServiceSpan>> {
    let mut map: HashMap<String, Vec<&ServiceSpan>> = HashMap::new();
    for s in spans {
        map.entry(s.span.span_context.trace_id().to_string())
            .or_default()
            .push(s);
    }
    map
}

fn print_traces(exchanges: &[Exchange], spans: &[ServiceSpan], left_out: &str, style: Style) {
    let traces = by_trace(spans);
    say!(
        "\n{}  {}",
        style.bold("Traces"),
        style.dim("(as exported, masked; status error is OpenTelemetry's: 4xx leave it unset, shown ok, with their code)")
    );
    for (n, x) in exchanges.iter().enumerate() {
        say!(
            "\n  [{}] {} {} -> {}  {}",
            n + 1,
            x.method,
            x.path,
            x.status,
            style.dim(x.what)
        );
        let Some(trace_id) = &x.trace_id else {
            say!("      no trace: the response carried no traceresponse (tracing is off)");
            continue;
        };
        let Some(trace) = traces.get(trace_id) else {
            say!("      trace {trace_id}: no span exported ({left_out})");
            continue;
        };
        let services: std::collections::BTreeSet<(usize, &str)> = trace
            .iter()
            .map(|s| (s.service_index, s.service.as_str()))
            .collect();
        say!(
            "      trace {}  {}",
            style.bold(trace_id),
            style.dim(&format!(
                "{} spans from {}",
                trace.len(),
                services
                    .into_iter()
                    .map(|(_, name)| name)
                    .collect::<Vec<_>>()
                    .join(" and ")
            ))
        );
        say_raw!("{}", waterfall::render(trace, style));
    }
}

/// Where an error in a trace came from: the deepest span with an `exception` event.
fn origin<'a>(trace: &[&'a ServiceSpan]) -> Option<(&'a ServiceSpan, waterfall::Exception)> {
    let parent: HashMap<_, _> = trace
        .iter()
        .map(|s| (s.span.span_context.span_id(), s.span.parent_span_id))
        .collect();
    let depth = |s: &ServiceSpan| {
        let mut d = 0;
        let mut id = s.span.parent_span_id;
        while let Some(p) = parent.get(&id) {
            d += 1;
            id = *p;
            if d > 64 {
                break;
            }
        }
        d
    };
    trace
        .iter()
        .filter_map(|s| waterfall::exceptions(&s.span).pop().map(|e| (*s, e)))
        .max_by_key(|(s, _)| depth(s))
}

fn print_problems(exchanges: &[Exchange], spans: &[ServiceSpan], left_out: &str, style: Style) {
    let traces = by_trace(spans);
    say!(
        "\n{}  {}",
        style.bold("Problem details"),
        style.dim(&format!("(the bodies the client received, {PROBLEM_JSON})"))
    );
    for (n, x) in exchanges.iter().enumerate() {
        if !x.content_type.starts_with(PROBLEM_JSON) {
            continue;
        }
        say!("\n  [{}] {} {} -> {}", n + 1, x.method, x.path, x.status);
        say!("      {}", x.body.trim());
        let problem: Option<ProblemDetails> = serde_json::from_str(&x.body).ok();
        let Some(trace_id) = problem.as_ref().and_then(|p| p.trace_id.clone()) else {
            say!("      (no trace id: the request was not traced)");
            continue;
        };
        let code = problem.as_ref().map_or(0, |p| p.code);
        match traces.get(&trace_id) {
            Some(trace) => {
                let ids: std::collections::HashSet<_> = trace
                    .iter()
                    .map(|s| s.span.span_context.span_id())
                    .collect();
                let root = trace
                    .iter()
                    .find(|s| !ids.contains(&s.span.parent_span_id))
                    .unwrap_or(&trace[0]);
                say!(
                    "      {} {} -> trace [{}] above: code {code}, answered by {} {}",
                    style.dim("trace_id"),
                    style.bold(&trace_id),
                    n + 1,
                    style.service(root.service_index, &root.service),
                    root.span.name
                );
                if let Some((span, e)) = origin(trace) {
                    say!(
                        "      {} {} {}: exception {}: {}",
                        style.dim("the error began in"),
                        style.service(span.service_index, &span.service),
                        span.span.name,
                        e.type_name,
                        e.message
                    );
                }
            }
            None => say!("      trace_id {trace_id}: not exported ({left_out})"),
        }
    }
    say!(
        "\n  {}\n",
        style.dim(
            "With OTEL_EXPORTER_OTLP_ENDPOINT set, the same traces are in your tracing backend: search for the trace_id."
        )
    );
}
