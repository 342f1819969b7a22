//! The floor under tracing `GET /hello` on axum with OpenTelemetry: a
//! service for `scripts/bench-peers`, not a criterion bench.
//!
//! The handler itself starts a server span with the OpenTelemetry SDK's
//! tracer and ends it before answering: no middleware, no context
//! extraction or injection, no masking, no metrics, no exception or error
//! handling. The SDK's batch span processor (its defaults) hands the spans
//! to the exporter of the mode:
//!
//! * `untraced`: no span (this binary's baseline);
//! * `span`: an exporter that counts the spans and drops them: what the
//!   SDK's span and batch processor cost, no export at all;
//! * `otlp`: faultline's OTLP exporter (`faultline::otlp::OtlpExporter`,
//!   gRPC to `OTEL_EXPORTER_OTLP_ENDPOINT`), called by the batch processor
//!   directly: what exporting every span costs with the fastest OTLP
//!   encoder and transport we have, with none of the rest of faultline
//!   (no masking, no retries, no buffer).
//!
//! The span carries the six attributes HTTP semantic conventions make
//! required or recommended for a server span with a route
//! (`http.request.method`, `http.route`, `url.path`, `url.scheme`,
//! `network.protocol.version`, `http.response.status_code`). Any tracer on
//! the SDK that records such a span for every request and exports it does
//! at least this much; `scripts/bench-peers` measures the three modes beside
//! the reference service and reports their ratios as the floor for
//! "traced throughput as a fraction of untraced".
//!
//! ```text
//! FAULTLINE_BENCH_FLOOR=untraced|span|otlp <bench binary> --port 0
//! ```
//!
//! Prints `listening on http://127.0.0.1:PORT`, serves until SIGTERM or
//! SIGINT, then prints `floor: exported N spans` (`span` and `otlp`; the
//! count the exporter accepted, so a load test can tell that no span was
//! dropped). Without `FAULTLINE_BENCH_FLOOR` (`cargo test` runs bench
//! targets so) it checks itself instead: three requests answered, three
//! spans exported.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use faultline::config::TracingConfig;
use faultline::export::Exporter as _;
use faultline::otlp::{OtlpConfig, OtlpExporter};
use opentelemetry::trace::{SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};

/// The SDK's exporter interface in front of the mode's exporter.
#[derive(Debug)]
struct Floor {
    exported: Arc<AtomicU64>,
    /// `otlp`: faultline's OTLP exporter and a runtime of its own to drive
    /// it on the batch processor's thread.
    otlp: Option<(OtlpExporter, tokio::runtime::Runtime)>,
}

impl SpanExporter for Floor {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        let result = match &self.otlp {
            None => Ok(()),
            Some((exporter, runtime)) => runtime
                .block_on(exporter.export(&batch))
                .map_err(|e| OTelSdkError::InternalFailure(e.to_string())),
        };
        if result.is_ok() {
            self.exported
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
        std::future::ready(result)
    }
}

async fn hello(State(tracer): State<Option<SdkTracer>>) -> &'static str {
    if let Some(tracer) = &tracer {
        // Ended when dropped, before the answer is written.
        let _span = tracer
            .span_builder("GET /hello")
            .with_kind(SpanKind::Server)
            .with_attributes([
                KeyValue::new("http.request.method", "GET"),
                KeyValue::new("http.route", "/hello"),
                KeyValue::new("url.path", "/hello"),
                KeyValue::new("url.scheme", "http"),
                KeyValue::new("network.protocol.version", "1.1"),
                KeyValue::new("http.response.status_code", Value::I64(200)),
            ])
            .start(tracer);
    }
    "hello"
}

fn port() -> u16 {
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--port" {
            return args.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        }
    }
    0
}

/// Serves the mode until `stop` resolves; returns the spans the exporter
/// accepted (after the provider's shutdown flushed them).
fn serve(
    mode: &str,
    listener: std::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> u64 {
    let exported = Arc::new(AtomicU64::new(0));
    let otlp = match mode {
        "untraced" | "span" => None,
        "otlp" => {
            let config = TracingConfig::from_env().unwrap_or_else(|e| {
                eprintln!("floor: {e}");
                std::process::exit(2)
            });
            let otlp = OtlpConfig::from_env().unwrap_or_else(|e| {
                eprintln!("floor: {e}");
                std::process::exit(2)
            });
            let mut exporter = OtlpExporter::new(&otlp, &config).unwrap_or_else(|e| {
                eprintln!("floor: {e}");
                std::process::exit(2)
            });
            exporter.set_resource(
                &Resource::builder_empty()
                    .with_service_name(config.service_name().to_string())
                    .build(),
            );
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("export runtime");
            Some((exporter, runtime))
        }
        other => {
            eprintln!("FAULTLINE_BENCH_FLOOR must be untraced, span or otlp, not `{other}`");
            std::process::exit(2)
        }
    };
    let provider = (mode != "untraced").then(|| {
        SdkTracerProvider::builder()
            .with_span_processor(
                BatchSpanProcessor::builder(Floor {
                    exported: exported.clone(),
                    otlp,
                })
                .build(),
            )
            .build()
    });
    let tracer = provider.as_ref().map(|p| p.tracer("floor"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async move {
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
        let app = Router::new().route("/hello", get(hello)).with_state(tracer);
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stop)
        .await
        .expect("serve");
    });
    if let Some(provider) = provider
        && let Err(e) = provider.shutdown()
    {
        eprintln!("floor: shutdown: {e}");
    }
    exported.load(Ordering::Relaxed)
}

/// Without `FAULTLINE_BENCH_FLOOR` (as `cargo test` runs bench targets):
/// serve the `span` mode, answer three requests, and check that each was
/// answered and its span reached the exporter.
fn self_check() {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        serve("span", listener, async {
            let _ = stopped.await;
        })
    });
    for _ in 0..3 {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .expect("request");
        let mut answer = String::new();
        stream.read_to_string(&mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("hello"), "{answer}");
    }
    let _ = stop.send(());
    let exported = server.join().expect("server thread");
    assert_eq!(exported, 3, "one span per request reached the exporter");
    println!("floor: self-check passed (3 requests, 3 spans)");
}

fn main() {
    let mode = std::env::var("FAULTLINE_BENCH_FLOOR").unwrap_or_default();
    if mode.is_empty() {
        self_check();
        return;
    }
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port())))
        .unwrap_or_else(|e| {
            eprintln!("floor: bind: {e}");
            std::process::exit(1)
        });
    println!(
        "listening on http://127.0.0.1:{}",
        listener.local_addr().expect("address").port()
    );
    let exported = serve(&mode, listener, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
    if mode != "untraced" {
        println!("floor: exported {exported} spans");
    }
}
