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
//! * `by-hand`: the `otlp` floor plus, in the handler, by hand with the
//!   SDK, the least work the reference services' contract asks of every
//!   traced request (see [`by_hand`]): the parent extracted from
//!   `traceparent`/`tracestate`, the span started as its child with the
//!   request's attributes and made current while the handler runs, the
//!   status recorded after it, `traceresponse` on the answer, and the
//!   latency observed in a Prometheus histogram with the trace id as its
//!   exemplar. No middleware, no masking, no panic catching, no error
//!   keeping: what using the SDK directly costs for what faultline does on
//!   a request, written the plain way its API invites.
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
//! FAULTLINE_BENCH_FLOOR=untraced|span|otlp|by-hand <bench binary> --port 0
//! ```
//!
//! Prints `listening on http://127.0.0.1:PORT`, serves until SIGTERM or
//! SIGINT, then prints `floor: exported N spans` (every mode but `untraced`; the
//! count the exporter accepted, so a load test can tell that no span was
//! dropped). Without `FAULTLINE_BENCH_FLOOR` (`cargo test` runs bench
//! targets so) it checks itself instead: three requests answered, three
//! spans exported, in the `span` mode and in the `by-hand` handler.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use faultline::config::TracingConfig;
use faultline::export::Exporter as _;
use faultline::otlp::{OtlpConfig, OtlpExporter};
use http::header::{HOST, HeaderValue};
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{KeyValue, Value};
use opentelemetry_http::HeaderExtractor;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::{OTelSdkError, OTelSdkResult};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::exemplar::HistogramWithExemplars;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::exponential_buckets;

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

/// The labels of the `by-hand` latency histogram.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LatencyLabels {
    http_request_method: &'static str,
    http_route: &'static str,
    http_response_status_code: u16,
}

/// The exemplar of a `by-hand` latency sample.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TraceExemplar {
    trace_id: String,
}

/// What the `by-hand` handler shares.
#[derive(Clone)]
struct ByHand {
    tracer: SdkTracer,
    propagator: TraceContextPropagator,
    latency: Family<LatencyLabels, HistogramWithExemplars<TraceExemplar>>,
}

impl ByHand {
    fn new(tracer: SdkTracer) -> Self {
        ByHand {
            tracer,
            propagator: TraceContextPropagator::new(),
            latency: Family::new_with_constructor(|| {
                HistogramWithExemplars::new(exponential_buckets(0.001, 2.0, 12))
            }),
        }
    }
}

/// `GET /hello` traced by hand with the SDK: the parent extracted, a server
/// span with the attributes faultline gives such a request (the six of the
/// floor, `server.address`, `server.port` and `client.address`), the
/// context current while the handler runs, the status, `traceresponse`
/// and a latency sample with the trace id as exemplar. The route answers
/// `GET` alone: its method and route are known texts, as in [`hello`].
async fn by_hand(State(state): State<ByHand>, request: Request) -> Response {
    let started = SystemTime::now();
    let headers = request.headers();
    let parent = state.propagator.extract(&HeaderExtractor(headers));
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let (address, port) = match host.rsplit_once(':') {
        Some((address, port)) => (address, port.parse::<i64>().ok()),
        None => (host, None),
    };
    let mut attributes = Vec::with_capacity(10);
    attributes.push(KeyValue::new("http.request.method", "GET"));
    attributes.push(KeyValue::new("http.route", "/hello"));
    attributes.push(KeyValue::new("url.path", "/hello"));
    attributes.push(KeyValue::new("url.scheme", "http"));
    attributes.push(KeyValue::new("server.address", address.to_owned()));
    if let Some(port) = port {
        attributes.push(KeyValue::new("server.port", port));
    }
    attributes.push(KeyValue::new(
        "network.protocol.version",
        match request.version() {
            http::Version::HTTP_10 => "1.0",
            http::Version::HTTP_2 => "2",
            _ => "1.1",
        },
    ));
    if let Some(ConnectInfo(client)) = request.extensions().get::<ConnectInfo<SocketAddr>>() {
        attributes.push(KeyValue::new("client.address", client.ip().to_string()));
    }
    let mut builder = state.tracer.span_builder("GET /hello");
    builder.span_kind = Some(SpanKind::Server);
    builder.start_time = Some(started);
    builder.attributes = Some(attributes);
    let span = state.tracer.build_with_context(builder, &parent);
    let cx = parent.with_span(span);
    let mut response = {
        let _current = cx.clone().attach();
        "hello".into_response()
    };
    let status = response.status();
    let span = cx.span();
    span.set_attribute(KeyValue::new(
        "http.response.status_code",
        i64::from(status.as_u16()),
    ));
    let ids = span.span_context();
    if let Ok(value) = HeaderValue::try_from(format!(
        "00-{}-{}-{:02x}",
        ids.trace_id(),
        ids.span_id(),
        ids.trace_flags().to_u8()
    )) {
        response.headers_mut().insert("traceresponse", value);
    }
    let ended = SystemTime::now();
    state
        .latency
        .get_or_create(&LatencyLabels {
            http_request_method: "GET",
            http_route: "/hello",
            http_response_status_code: status.as_u16(),
        })
        .observe(
            ended
                .duration_since(started)
                .unwrap_or_default()
                .as_secs_f64(),
            Some(TraceExemplar {
                trace_id: ids.trace_id().to_string(),
            }),
            None,
        );
    span.end_with_timestamp(ended);
    response
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

/// What a mode does.
#[derive(Clone, Copy, Debug)]
struct Mode {
    /// A span per request (all but `untraced`).
    traced: bool,
    /// The spans exported over OTLP (otherwise counted and dropped).
    otlp: bool,
    /// The [`by_hand`] handler instead of [`hello`].
    by_hand: bool,
}

impl Mode {
    fn named(name: &str) -> Option<Mode> {
        let (traced, otlp, by_hand) = match name {
            "untraced" => (false, false, false),
            "span" => (true, false, false),
            "otlp" => (true, true, false),
            "by-hand" => (true, true, true),
            _ => return None,
        };
        Some(Mode {
            traced,
            otlp,
            by_hand,
        })
    }
}

/// Serves the mode until `stop` resolves; returns the spans the exporter
/// accepted (after the provider's shutdown flushed them).
fn serve(
    mode: Mode,
    listener: std::net::TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> u64 {
    let exported = Arc::new(AtomicU64::new(0));
    let otlp = mode.otlp.then(|| {
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
        (exporter, runtime)
    });
    let provider = mode.traced.then(|| {
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
        let app = match tracer {
            Some(tracer) if mode.by_hand => Router::new()
                .route("/hello", get(by_hand))
                .with_state(ByHand::new(tracer)),
            tracer => Router::new().route("/hello", get(hello)).with_state(tracer),
        };
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
/// serve the `span` mode, then the `by-hand` handler (its spans counted,
/// not exported), answer three requests each, and check that each was
/// answered and its span reached the exporter; the `by-hand` answers carry
/// a `traceresponse` that continues the request's `traceparent`.
fn self_check() {
    let parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let by_hand = Mode {
        otlp: false,
        ..Mode::named("by-hand").expect("a mode")
    };
    for (mode, request) in [
        (
            Mode::named("span").expect("a mode"),
            "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".to_owned(),
        ),
        (
            by_hand,
            format!(
                "GET /hello HTTP/1.1\r\nHost: 127.0.0.1:80\r\ntraceparent: {parent}\r\nConnection: close\r\n\r\n"
            ),
        ),
    ] {
        let answers = serve_three(mode, &request);
        for answer in answers {
            assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
            assert!(answer.ends_with("hello"), "{answer}");
            let traceresponse = answer
                .lines()
                .find_map(|l| l.strip_prefix("traceresponse: "));
            if mode.by_hand {
                let traceresponse = traceresponse.expect("a traceresponse header");
                assert!(
                    traceresponse.starts_with("00-0af7651916cd43dd8448eb211c80319c-")
                        && !traceresponse.contains("b7ad6b7169203331")
                        && traceresponse.ends_with("-01"),
                    "the server span continues the trace: {traceresponse}"
                );
            } else {
                assert_eq!(traceresponse, None, "{answer}");
            }
        }
    }
    println!("floor: self-check passed (3 requests, 3 spans; by hand: the same, traceresponse)");
}

/// Serves `mode` for three connections each sending `request`; returns
/// the answers, after checking that three spans reached the exporter.
fn serve_three(mode: Mode, request: &str) -> Vec<String> {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = listener.local_addr().expect("address").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = std::thread::spawn(move || {
        serve(mode, listener, async {
            let _ = stopped.await;
        })
    });
    let answers = (0..3)
        .map(|_| {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
            stream.write_all(request.as_bytes()).expect("request");
            let mut answer = String::new();
            stream.read_to_string(&mut answer).expect("answer");
            answer
        })
        .collect();
    let _ = stop.send(());
    let exported = server.join().expect("server thread");
    assert_eq!(
        exported, 3,
        "{mode:?}: one span per request reached the exporter"
    );
    answers
}

fn main() {
    let name = std::env::var("FAULTLINE_BENCH_FLOOR").unwrap_or_default();
    if name.is_empty() {
        self_check();
        return;
    }
    let Some(mode) = Mode::named(&name) else {
        eprintln!("FAULTLINE_BENCH_FLOOR must be untraced, span, otlp or by-hand, not `{name}`");
        std::process::exit(2)
    };
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port())))
        .unwrap_or_else(|e| {
            eprintln!("floor: bind: {e}");
            std::process::exit(1)
        });
    println!(
        "listening on http://127.0.0.1:{}",
        listener.local_addr().expect("address").port()
    );
    let exported = serve(mode, listener, async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    });
    if mode.traced {
        println!("floor: exported {exported} spans");
    }
}
