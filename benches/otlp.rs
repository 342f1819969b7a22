//! OTLP export throughput: spans per second delivered into a loopback OTLP
//! gRPC receiver, through the faultline engine and through bare
//! `opentelemetry-otlp`, in the same criterion group, so that the two
//! figures come from the same process and the same run and only their ratio
//! is meaningful.
//!
//! One run: two threads produce `N` spans (default 200,000) as fast as they
//! can, each the server span of `benches/span.rs` (8 HTTP attributes); then
//! the side is flushed, and the run ends when the receiver has counted all
//! `N`. The figure is `N / (end − start)`: delivered spans per second,
//! production, batching, export and decoding included. Both sides use the
//! same batch settings (`max_queue_size` 262,144, so that the producers never
//! lose a span at a full queue, `max_export_batch_size` 2,048, delay 200 ms),
//! OTLP over gRPC without compression to the same receiver.
//!
//! * `otlp/engine`: `faultline::setup::engine_builder` with the OTLP
//!   exporter, defaults otherwise (PII masking on); the engine's own buffer
//!   (`export_buffer_capacity`) as large as the queue. Spans through
//!   `Engine::start_server_span` + `cx.span().end()`.
//! * `otlp/engine-nomask`: the same with PII masking off, to tell the cost
//!   of masking from the cost of the pipeline.
//! * `otlp/sdk`: `opentelemetry_otlp::SpanExporter` (tonic) in a
//!   `BatchSpanProcessor` of a bare `SdkTracerProvider`, the exporter built
//!   inside a one-worker Tokio runtime (tonic's channel lives there). Spans
//!   as in `benches/span.rs`: the SDK's propagators extract, then
//!   `span_builder(..).with_kind(Server).with_attributes(..)`.
//!
//! The receiver (the OTLP `TraceService/Export` gRPC method on tonic, on
//! 127.0.0.1, a free port, its own one-worker Tokio runtime) decodes each
//! `ExportTraceServiceRequest` down to its spans, which it counts without
//! decoding them (prost skips their fields), and the resource's
//! `service.name`. It also serves `LogsService/Export` the same way
//! (log records counted, not decoded), so that a service exporting its logs
//! over OTLP to the same endpoint gets answers rather than errors. It shares the machine with the side being measured, so
//! its work counts against both sides alike.
//!
//! At the end the bench prints, for each side, the median spans/s and the
//! CPU time per span of the process without the receiver's thread
//! (`/proc/self/stat`), split by thread (`/proc/self/task/*/schedstat`):
//! `batch` (the batch span processor), `export` (the engine's export
//! thread), `tonic` (the SDK side's runtime), `receiver`; the rest is the
//! producers. Then the ratios engine/sdk of both. On a shared machine the
//! CPU figures move less than the wall-clock ones.
//!
//! Environment:
//!
//! ```text
//! FAULTLINE_BENCH_OTLP_SPANS=N     spans per run (default 200000; at most
//!                                  4000 in criterion's test mode, as
//!                                  under `cargo test --benches`)
//! FAULTLINE_BENCH_OTLP_BATCH=N     max_export_batch_size (default 2048)
//! FAULTLINE_BENCH_OTLP_ROUNDS=K    no criterion: K rounds, each side once a
//!                                  round, interleaved; prints every run
//! FAULTLINE_BENCH_OTLP_ONLY=a,b    with ROUNDS: only these sides
//!                                  (engine, engine-nomask, sdk), e.g. under
//!                                  callgrind
//! FAULTLINE_BENCH_OTLP_RECEIVER=fast|slow|blackhole
//!                                  no bench: serve a receiver for
//!                                  scripts/bench-slow-backend (see below)
//! ```
//!
//! Receiver mode prints `ready PORT` once listening on 127.0.0.1 (port
//! `FAULTLINE_BENCH_OTLP_PORT`, default a free one), then serves until
//! SIGTERM or SIGINT and prints `received S spans in R requests` on exit,
//! then `received N spans from service NAME` for each resource `service.name`,
//! then `received L log records in Q requests` if logs came. The port
//! serves OTLP/gRPC and OTLP/HTTP with protobuf bodies (`POST /v1/traces`,
//! `POST /v1/logs`, HTTP/1.1) alike.
//! `fast` answers at once; `slow` waits `FAULTLINE_BENCH_OTLP_DELAY_MS`
//! (default 2000) before answering each export; `blackhole` accepts TCP
//! connections and never reads or answers.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput};
use faultline::Engine;
use faultline::config::{ExporterKind, TracingConfig};
use faultline::otlp::{OtlpConfig, OtlpProtocol};
use opentelemetry::propagation::{Extractor, TextMapCompositePropagator, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceResponse;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::any_value;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider,
};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;

const SPAN_NAME: &str = "GET /users/{id}";
/// The receiver's thread (the CPU figures leave it out).
const RECEIVER_THREAD: &str = "otlp-receiver";
const PRODUCERS: u64 = 2;
const QUEUE: usize = 262_144;
const DELAY: Duration = Duration::from_millis(200);
/// The longest a run may take before it is reported as incomplete.
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// The 8 attributes of a typical HTTP server span (as in `benches/span.rs`).
#[inline(never)]
fn attributes() -> Vec<KeyValue> {
    vec![
        KeyValue::new("http.request.method", "GET"),
        KeyValue::new("http.route", "/users/{id}"),
        KeyValue::new("url.path", "/users/42"),
        KeyValue::new("url.scheme", "http"),
        KeyValue::new("server.address", "api.example.com"),
        KeyValue::new("server.port", 8080_i64),
        KeyValue::new("network.protocol.version", "1.1"),
        KeyValue::new("user_agent.original", "bench-client/1.0"),
    ]
}

// ---------------------------------------------------------------- receiver

/// What a receiver has counted.
#[derive(Debug, Default)]
struct Counts {
    spans: AtomicU64,
    requests: AtomicU64,
    /// Spans by the `service.name` of their resource (receiver mode prints
    /// them, so that a load test can tell which service's spans arrived).
    by_service: Mutex<BTreeMap<String, u64>>,
    /// Log records and `LogsService/Export` requests.
    log_records: AtomicU64,
    log_requests: AtomicU64,
}

/// The OTLP services: count spans and log records, answer after `delay`.
struct Counting {
    counts: Arc<Counts>,
    delay: Option<Duration>,
}

// What the receiver decodes of an `ExportTraceServiceRequest`: the same
// field numbers as opentelemetry-proto's types (collector/trace/v1 and
// trace/v1), but a span is a message of no fields, so that prost walks
// each span's fields and skips them (the wire format checked, nothing
// allocated) instead of building its strings and attribute lists. A full
// decode took about 1.4 us a span, on the core that the load generator
// shares with the receiver in scripts/bench-peers. An
// `ExportLogsServiceRequest` has the same layout (`resource_logs` = 1,
// `resource` = 1, `scope_logs` = 2, `log_records` = 2), so the same types
// count its log records.

/// `ExportTraceServiceRequest`: `resource_spans` = 1.
#[derive(Clone, PartialEq, prost::Message)]
struct CountedRequest {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<CountedResourceSpans>,
}

/// `ResourceSpans`: `resource` = 1, `scope_spans` = 2.
#[derive(Clone, PartialEq, prost::Message)]
struct CountedResourceSpans {
    #[prost(message, optional, tag = "1")]
    resource: Option<opentelemetry_proto::tonic::resource::v1::Resource>,
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<CountedScopeSpans>,
}

/// `ScopeSpans`: `spans` = 2.
#[derive(Clone, PartialEq, prost::Message)]
struct CountedScopeSpans {
    #[prost(message, repeated, tag = "2")]
    spans: Vec<SkippedSpan>,
}

/// A `Span`, every field skipped.
#[derive(Clone, PartialEq, prost::Message)]
struct SkippedSpan {}

impl Counting {
    fn count(&self, request: &CountedRequest) {
        let mut spans = 0;
        for rs in &request.resource_spans {
            let n: usize = rs.scope_spans.iter().map(|ss| ss.spans.len()).sum();
            spans += n;
            let name = rs
                .resource
                .as_ref()
                .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| match &v.value {
                    Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
                    _ => None,
                })
                .unwrap_or("");
            let mut by_service = self.counts.by_service.lock().expect("counts");
            match by_service.get_mut(name) {
                Some(count) => *count += n as u64,
                None => {
                    by_service.insert(name.to_owned(), n as u64);
                }
            }
        }
        self.counts.spans.fetch_add(spans as u64, Ordering::Relaxed);
        self.counts.requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// What one OTLP service of the receiver answers and counts.
trait Signal: Send + Sync + 'static {
    /// The gRPC service name (`Export` is its one method).
    const NAME: &'static str;
    /// The export response of the service.
    type Response: prost::Message + Default + Send + 'static;
    /// Counts one export request.
    fn count(counting: &Counting, request: &CountedRequest);
}

/// `TraceService`: spans, by `service.name`.
struct Traces;

impl Signal for Traces {
    const NAME: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    type Response = ExportTraceServiceResponse;
    fn count(counting: &Counting, request: &CountedRequest) {
        counting.count(request);
    }
}

/// `LogsService`: log records.
struct Logs;

impl Signal for Logs {
    const NAME: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    type Response = ExportLogsServiceResponse;
    fn count(counting: &Counting, request: &CountedRequest) {
        let records: usize = request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        let counts = &counting.counts;
        counts
            .log_records
            .fetch_add(records as u64, Ordering::Relaxed);
        counts.log_requests.fetch_add(1, Ordering::Relaxed);
    }
}

/// The `Export` gRPC method of the signal's service with [`CountedRequest`]
/// as its request type (tonic's generated servers fix the full one).
struct CountingServer<S>(Arc<Counting>, std::marker::PhantomData<S>);

impl<S> CountingServer<S> {
    fn new(counting: Arc<Counting>) -> Self {
        CountingServer(counting, std::marker::PhantomData)
    }
}

impl<S> Clone for CountingServer<S> {
    fn clone(&self) -> Self {
        CountingServer::new(self.0.clone())
    }
}

impl<S: Signal> tonic::server::NamedService for CountingServer<S> {
    const NAME: &'static str = S::NAME;
}

impl<S: Signal> tonic::server::UnaryService<CountedRequest> for CountingServer<S> {
    type Response = S::Response;
    type Future = std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<tonic::Response<S::Response>, tonic::Status>>
                + Send,
        >,
    >;

    fn call(&mut self, request: tonic::Request<CountedRequest>) -> Self::Future {
        let counting = self.0.clone();
        Box::pin(async move {
            if let Some(delay) = counting.delay {
                tokio::time::sleep(delay).await;
            }
            S::count(&counting, request.get_ref());
            Ok(tonic::Response::new(S::Response::default()))
        })
    }
}

/// The answer of the receiver's HTTP-level services (gRPC and OTLP/HTTP).
type HttpAnswer = std::pin::Pin<
    Box<
        dyn std::future::Future<
                Output = Result<http::Response<tonic::body::Body>, std::convert::Infallible>,
            > + Send,
    >,
>;

impl<S, B> tower::Service<http::Request<B>> for CountingServer<S>
where
    S: Signal,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = HttpAnswer;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = self.clone();
        Box::pin(async move {
            let path = request.uri().path();
            if path
                .strip_prefix('/')
                .and_then(|p| p.strip_suffix("/Export"))
                != Some(S::NAME)
            {
                return Ok(tonic::Status::unimplemented("only Export").into_http());
            }
            let codec = tonic_prost::ProstCodec::<S::Response, CountedRequest>::default();
            let mut grpc = tonic::server::Grpc::new(codec)
                .apply_max_message_size_config(Some(256 << 20), None);
            Ok(grpc.unary(method, request).await)
        })
    }
}

/// OTLP/HTTP with protobuf bodies (`POST /v1/traces`, `POST /v1/logs`),
/// served by the same server as gRPC: tonic routes a path to the service
/// whose name is its first segment, so this one is named `v1`.
#[derive(Clone)]
struct HttpCounting(Arc<Counting>);

impl tonic::server::NamedService for HttpCounting {
    const NAME: &'static str = "v1";
}

impl<B> tower::Service<http::Request<B>> for HttpCounting
where
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = HttpAnswer;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let counting = self.0.clone();
        Box::pin(async move {
            let answer = |status: http::StatusCode, body: Vec<u8>| {
                let mut response = http::Response::new(tonic::body::Body::new(
                    http_body_util::Full::new(bytes::Bytes::from(body)),
                ));
                *response.status_mut() = status;
                response.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/x-protobuf"),
                );
                Ok(response)
            };
            let logs = match (request.method(), request.uri().path()) {
                (&http::Method::POST, "/v1/traces") => false,
                (&http::Method::POST, "/v1/logs") => true,
                _ => return answer(http::StatusCode::NOT_FOUND, Vec::new()),
            };
            let body = match http_body_util::BodyExt::collect(request.into_body()).await {
                Ok(body) => body.to_bytes(),
                Err(_) => return answer(http::StatusCode::BAD_REQUEST, Vec::new()),
            };
            let Ok(decoded) = <CountedRequest as prost::Message>::decode(body) else {
                return answer(http::StatusCode::BAD_REQUEST, Vec::new());
            };
            if let Some(delay) = counting.delay {
                tokio::time::sleep(delay).await;
            }
            let encoded = if logs {
                Logs::count(&counting, &decoded);
                prost::Message::encode_to_vec(&ExportLogsServiceResponse::default())
            } else {
                Traces::count(&counting, &decoded);
                prost::Message::encode_to_vec(&ExportTraceServiceResponse::default())
            };
            answer(http::StatusCode::OK, encoded)
        })
    }
}

/// A loopback OTLP receiver (gRPC and HTTP/protobuf on one port) on its
/// own Tokio runtime.
struct Receiver {
    port: u16,
    counts: Arc<Counts>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Receiver {
    fn start(port: u16, delay: Option<Duration>) -> Receiver {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(RECEIVER_THREAD)
            .enable_all()
            .build()
            .expect("receiver runtime");
        let incoming = runtime
            .block_on(async { TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], port))) })
            .unwrap_or_else(|e| panic!("bind 127.0.0.1:{port}: {e}"))
            .with_nodelay(Some(true));
        let port = incoming.local_addr().expect("receiver address").port();
        let counts = Arc::new(Counts::default());
        let counting = Arc::new(Counting {
            counts: counts.clone(),
            delay,
        });
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        runtime.spawn(
            Server::builder()
                // OTLP/HTTP comes over HTTP/1.1.
                .accept_http1(true)
                .add_service(CountingServer::<Traces>::new(counting.clone()))
                .add_service(CountingServer::<Logs>::new(counting.clone()))
                .add_service(HttpCounting(counting))
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                }),
        );
        Receiver {
            port,
            counts,
            stop: Some(stop),
            runtime: Some(runtime),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn spans(&self) -> u64 {
        self.counts.spans.load(Ordering::Relaxed)
    }

    /// Waits until the receiver has counted `target` spans in all; false
    /// when `deadline` passed first.
    fn wait_for(&self, target: u64, deadline: Instant) -> bool {
        loop {
            if self.spans() >= target {
                return true;
            }
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_timeout(Duration::from_secs(1));
        }
    }
}

// ---------------------------------------------------------------- the sides

fn batch_size() -> usize {
    env_number("FAULTLINE_BENCH_OTLP_BATCH", 2048) as usize
}

fn build_engine(endpoint: &str, masking: bool) -> Engine {
    let config = TracingConfig::builder()
        .service_name("bench")
        .exporters([ExporterKind::OTLP])
        .batch(QUEUE, batch_size(), DELAY)
        .export_buffer_capacity(QUEUE)
        .pii_masking(masking)
        .build()
        .expect("valid bench configuration");
    OtlpConfig::new()
        .protocol(OtlpProtocol::Grpc)
        .endpoint(endpoint)
        .register(Engine::builder(config))
        .install_global(false)
        .build()
        .expect("engine builds")
}

/// `http::HeaderMap` as an OpenTelemetry `Extractor`.
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Bare OpenTelemetry: `opentelemetry-otlp` in a `BatchSpanProcessor`.
struct Sdk {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TextMapCompositePropagator,
    /// tonic's channel runs here; the batch thread blocks on its futures.
    _runtime: tokio::runtime::Runtime,
}

fn build_sdk(endpoint: &str) -> Sdk {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sdk-otlp")
        .enable_all()
        .build()
        .expect("sdk runtime");
    let exporter = {
        let _entered = runtime.enter();
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .with_timeout(Duration::from_secs(10))
            .build()
            .expect("opentelemetry-otlp exporter")
    };
    let resource = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_service_name("bench")
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(
            BatchConfigBuilder::default()
                .with_max_queue_size(QUEUE)
                .with_max_export_batch_size(batch_size())
                .with_scheduled_delay(DELAY)
                .build(),
        )
        .build();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_span_processor(processor)
        .build();
    let tracer = provider.tracer_with_scope(
        InstrumentationScope::builder("bench-sdk")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build(),
    );
    Sdk {
        provider,
        tracer,
        propagator: TextMapCompositePropagator::new(vec![
            Box::new(TraceContextPropagator::new()),
            Box::new(BaggagePropagator::new()),
        ]),
        _runtime: runtime,
    }
}

/// One side of the comparison, ready to run.
enum Side {
    Engine(Engine),
    Sdk(Sdk),
}

impl Side {
    #[inline(never)]
    fn span(&self, headers: &http::HeaderMap) {
        match self {
            Side::Engine(engine) => {
                let cx = engine.start_server_span(SPAN_NAME, attributes(), headers);
                cx.span().end();
                black_box(&cx);
            }
            Side::Sdk(sdk) => {
                let parent: Context = sdk.propagator.extract(&HeaderExtractor(headers));
                let span = sdk
                    .tracer
                    .span_builder(Cow::Borrowed(SPAN_NAME))
                    .with_kind(SpanKind::Server)
                    .with_attributes(attributes())
                    .start_with_context(&sdk.tracer, &parent);
                let cx = parent.with_span(span);
                cx.span().end();
                black_box(&cx);
            }
        }
    }

    fn flush(&self) {
        match self {
            Side::Engine(engine) => engine.force_flush(),
            Side::Sdk(sdk) => {
                let _ = sdk.provider.force_flush();
            }
        }
    }

    fn shutdown(self) -> String {
        match self {
            Side::Engine(engine) => {
                let report = engine.shutdown();
                let s = &report.stats;
                format!(
                    "received {}, exported {}, dropped {}, retries {}, failed attempts {}",
                    s.spans_received, s.spans_exported, s.spans_failed, s.retries, s.export_errors
                )
            }
            Side::Sdk(sdk) => match sdk.provider.shutdown() {
                Ok(()) => "shut down cleanly".to_owned(),
                Err(e) => format!("shutdown: {e}"),
            },
        }
    }
}

/// What one run measured.
#[derive(Debug, Clone)]
struct Run {
    /// From the start until every span was counted at the receiver.
    total: Duration,
    /// From the start until the producers were done.
    produced: Duration,
    delivered: u64,
    /// CPU time of the whole process during the run, less the receiver's.
    cpu_side: Duration,
    /// CPU time of the receiver's thread during the run.
    cpu_receiver: Duration,
    /// CPU time of each of [`THREADS`] during the run, by label.
    threads: BTreeMap<&'static str, Duration>,
}

impl Run {
    fn rate(&self, n: u64) -> f64 {
        n as f64 / self.total.as_secs_f64()
    }
    /// CPU microseconds per span, the receiver left out.
    fn cpu_per_span(&self, n: u64) -> f64 {
        self.cpu_side.as_secs_f64() * 1e6 / n as f64
    }
    /// CPU microseconds per span of each thread that did some work.
    fn per_thread(&self, n: u64) -> String {
        self.threads
            .iter()
            .filter(|(_, d)| d.as_micros() > 0)
            .map(|(label, d)| format!("{label} {:.2}", d.as_secs_f64() * 1e6 / n as f64))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

// ---------------------------------------------------------------- CPU time

/// CPU time (user + system) of this process so far, threads that have
/// exited included (`/proc/self/stat`, in clock ticks of 10 ms).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    // After the command: state is field 3, utime 14, stime 15.
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(14) + ticks(15)) * 10)
}

/// CPU time of this process's live threads by name
/// (`/proc/self/task/*/schedstat`, ns; names as the kernel keeps them, at
/// most 15 bytes).
fn threads_cpu() -> BTreeMap<String, Duration> {
    let mut by_name = BTreeMap::new();
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
            let sched = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            let ns = sched
                .split_whitespace()
                .next()
                .and_then(|ns| ns.parse::<u64>().ok())
                .unwrap_or(0);
            *by_name
                .entry(comm.trim_end().to_owned())
                .or_insert(Duration::ZERO) += Duration::from_nanos(ns);
        }
    }
    by_name
}

/// The threads whose CPU time the bench reports, as (kernel name, label).
const THREADS: [(&str, &str); 4] = [
    ("OpenTelemetry.T", "batch"),
    ("faultline-expor", "export"),
    ("sdk-otlp", "tonic"),
    (RECEIVER_THREAD, "receiver"),
];

/// Produces `n` spans from [`PRODUCERS`] threads, flushes, and waits until
/// the receiver counted them.
fn run_once(side: &Side, receiver: &Receiver, n: u64) -> Run {
    let before = receiver.spans();
    let target = before + n;
    let (cpu0, threads0) = (process_cpu(), threads_cpu());
    let headers = http::HeaderMap::new();
    let gate = Barrier::new(PRODUCERS as usize + 1);
    let (start, produced) = std::thread::scope(|scope| {
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|i| {
                let (gate, headers) = (&gate, &headers);
                let count = n / PRODUCERS + u64::from(i < n % PRODUCERS);
                scope.spawn(move || {
                    gate.wait();
                    for _ in 0..count {
                        side.span(headers);
                    }
                })
            })
            .collect();
        gate.wait();
        let start = Instant::now();
        for p in producers {
            p.join().expect("producer thread");
        }
        (start, start.elapsed())
    });
    side.flush();
    let complete = receiver.wait_for(target, start + RUN_LIMIT);
    let total = start.elapsed();
    let delivered = receiver.spans() - before;
    let cpu_side = process_cpu().saturating_sub(cpu0);
    let threads: BTreeMap<&'static str, Duration> = {
        let now = threads_cpu();
        THREADS
            .iter()
            .map(|(name, label)| {
                let after = now.get(*name).copied().unwrap_or_default();
                let before = threads0.get(*name).copied().unwrap_or_default();
                (*label, after.saturating_sub(before))
            })
            .collect()
    };
    let cpu_receiver = threads["receiver"];
    let cpu_side = cpu_side.saturating_sub(cpu_receiver);
    if !complete {
        eprintln!("warning: only {delivered} of {n} spans arrived within {RUN_LIMIT:?}");
    }
    Run {
        total,
        produced,
        delivered,
        cpu_side,
        cpu_receiver,
        threads,
    }
}

const SIDES: [&str; 3] = ["engine", "engine-nomask", "sdk"];

fn build_side(which: &str, receiver: &Receiver) -> Side {
    match which {
        "engine" => Side::Engine(build_engine(&receiver.endpoint(), true)),
        "engine-nomask" => Side::Engine(build_engine(&receiver.endpoint(), false)),
        "sdk" => Side::Sdk(build_sdk(&receiver.endpoint())),
        other => {
            eprintln!("unknown side `{other}`: one of {SIDES:?}");
            std::process::exit(2);
        }
    }
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    match rates.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => rates[len / 2],
        len => (rates[len / 2 - 1] + rates[len / 2]) / 2.0,
    }
}

fn summary(n: u64, runs: &[(&str, Vec<Run>)], notes: &[(&str, String)]) {
    println!(
        "OTLP export throughput, {n} spans a run from {PRODUCERS} threads, batch {}, medians of the runs:",
        batch_size()
    );
    let mut medians = Vec::new();
    for (side, rs) in runs {
        if rs.is_empty() {
            continue;
        }
        let rates: Vec<f64> = rs.iter().map(|r| r.rate(n)).collect();
        let m = median(rates.clone());
        let produce = median(
            rs.iter()
                .map(|r| n as f64 / r.produced.as_secs_f64())
                .collect(),
        );
        let cpu = median(rs.iter().map(|r| r.cpu_per_span(n)).collect());
        let receiver = median(
            rs.iter()
                .map(|r| r.cpu_receiver.as_secs_f64() * 1e6 / n as f64)
                .collect(),
        );
        let threads: Vec<String> = THREADS
            .iter()
            .filter_map(|(_, label)| {
                let us = median(
                    rs.iter()
                        .map(|r| r.threads[label].as_secs_f64() * 1e6 / n as f64)
                        .collect(),
                );
                (us >= 0.005).then(|| format!("{label} {us:.2}"))
            })
            .collect();
        let incomplete = match rs.iter().filter(|r| r.delivered < n).count() {
            0 => String::new(),
            k => format!(", {k} runs INCOMPLETE"),
        };
        let by_thread = threads.join(", ");
        println!(
            "  {side:<14} {m:>9.0} spans/s delivered (min {:.0}, max {:.0}, {} runs{incomplete}); \
             CPU {cpu:.2} us/span without the receiver (receiver {receiver:.2}; by thread: {by_thread}); \
             produced at {produce:.0} spans/s",
            rates.iter().copied().fold(f64::INFINITY, f64::min),
            rates.iter().copied().fold(0.0, f64::max),
            rs.len(),
        );
        medians.push((*side, m, cpu));
    }
    let get = |s: &str| {
        medians
            .iter()
            .find(|(k, ..)| *k == s)
            .map(|(_, m, c)| (*m, *c))
    };
    for other in ["engine", "engine-nomask"] {
        if let (Some((e, ec)), Some((s, sc))) = (get(other), get("sdk")) {
            println!(
                "  {other}/sdk: spans/s {:.2}, CPU per span {:.2}",
                e / s,
                ec / sc
            );
        }
    }
    if let Some((e, _)) = get("engine") {
        println!(
            "  target 200000 spans/s (engine): {}",
            if e >= 200_000.0 { "met" } else { "NOT met" }
        );
    }
    for (side, note) in notes {
        println!("  {side:<14} at the end: {note}");
    }
}

// ---------------------------------------------------------------- criterion

fn bench_otlp(c: &mut Criterion, n: u64, testing: bool) {
    let receiver = Receiver::start(0, None);
    let mut group = c.benchmark_group("otlp");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(10))
        .throughput(Throughput::Elements(n));
    let mut all = Vec::new();
    let mut notes = Vec::new();
    for which in SIDES {
        let side = build_side(which, &receiver);
        let runs = Mutex::new(Vec::new());
        group.bench_function(which, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let run = run_once(&side, &receiver, n);
                    total += run.total;
                    runs.lock().unwrap().push(run);
                }
                total
            })
        });
        notes.push((which, side.shutdown()));
        all.push((which, runs.into_inner().unwrap()));
    }
    group.finish();
    if testing {
        println!("otlp: test mode ({n} spans a run), no figures");
    } else {
        summary(n, &all, &notes);
    }
}

/// `FAULTLINE_BENCH_OTLP_ROUNDS`: the sides interleaved, one run each a round.
fn rounds(k: u64, n: u64) {
    let receiver = Receiver::start(0, None);
    let only = std::env::var("FAULTLINE_BENCH_OTLP_ONLY").unwrap_or_else(|_| SIDES.join(","));
    let which: Vec<&str> = SIDES
        .into_iter()
        .filter(|s| only.split(',').any(|o| o.trim() == *s))
        .collect();
    let sides: Vec<(&str, Side)> = which
        .iter()
        .map(|w| (*w, build_side(w, &receiver)))
        .collect();
    let mut all: Vec<(&str, Vec<Run>)> = which.iter().map(|w| (*w, Vec::new())).collect();
    for round in 1..=k {
        for (i, (name, side)) in sides.iter().enumerate() {
            let run = run_once(side, &receiver, n);
            println!(
                "round {round} {name:<14} {:>9.0} spans/s delivered, {:>9.0} produced ({:.3} s, {} spans); \
                 CPU us/span: {:.2} without the receiver; by thread: {}",
                run.rate(n),
                n as f64 / run.produced.as_secs_f64(),
                run.total.as_secs_f64(),
                run.delivered,
                run.cpu_per_span(n),
                run.per_thread(n),
            );
            all[i].1.push(run);
        }
    }
    let notes: Vec<(&str, String)> = sides.into_iter().map(|(w, s)| (w, s.shutdown())).collect();
    summary(n, &all, &notes);
}

// ---------------------------------------------------------------- receiver mode

fn serve(kind: &str) {
    let port = env_number("FAULTLINE_BENCH_OTLP_PORT", 0) as u16;
    let delay = Duration::from_millis(env_number("FAULTLINE_BENCH_OTLP_DELAY_MS", 2000));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (port, counts, _keep) = match kind {
        "fast" | "slow" => {
            let receiver = Receiver::start(port, (kind == "slow").then_some(delay));
            (receiver.port, receiver.counts.clone(), Some(receiver))
        }
        "blackhole" => {
            let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("bind");
            let port = listener.local_addr().expect("address").port();
            let counts = Arc::new(Counts::default());
            let accepted = counts.clone();
            std::thread::spawn(move || {
                // Connections are kept open, never read, never answered.
                let mut held = Vec::new();
                for stream in listener.incoming().flatten() {
                    accepted.requests.fetch_add(1, Ordering::Relaxed);
                    held.push(stream);
                }
            });
            (port, counts, None)
        }
        other => {
            eprintln!(
                "FAULTLINE_BENCH_OTLP_RECEIVER must be fast, slow or blackhole, not `{other}`"
            );
            std::process::exit(2);
        }
    };
    println!("ready {port}");
    let _ = std::io::stdout().flush();
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("signal");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    });
    let what = if kind == "blackhole" {
        "connections"
    } else {
        "requests"
    };
    println!(
        "received {} spans in {} {what}",
        counts.spans.load(Ordering::Relaxed),
        counts.requests.load(Ordering::Relaxed)
    );
    for (service, spans) in counts.by_service.lock().expect("counts").iter() {
        println!("received {spans} spans from service {service}");
    }
    let log_requests = counts.log_requests.load(Ordering::Relaxed);
    if log_requests > 0 {
        println!(
            "received {} log records in {log_requests} requests",
            counts.log_records.load(Ordering::Relaxed)
        );
    }
    let _ = std::io::stdout().flush();
    // The slow receiver may hold requests for seconds: do not wait for them.
    std::process::exit(0);
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Err(_) => default,
        Ok(text) => text.trim().parse().unwrap_or_else(|_| {
            eprintln!("{name} must be a number, not `{text}`");
            std::process::exit(2);
        }),
    }
}

fn main() {
    if let Ok(kind) = std::env::var("FAULTLINE_BENCH_OTLP_RECEIVER") {
        serve(&kind);
        return;
    }
    let mut n = env_number("FAULTLINE_BENCH_OTLP_SPANS", 200_000).max(PRODUCERS);
    if std::env::var_os("FAULTLINE_BENCH_OTLP_ROUNDS").is_some() {
        rounds(env_number("FAULTLINE_BENCH_OTLP_ROUNDS", 3), n);
        return;
    }
    // `cargo test --benches` runs each benchmark once as a smoke test
    // (criterion's test mode: no `--bench`, or `--test`): keep it short.
    let args: Vec<String> = std::env::args().collect();
    let testing = args.iter().any(|a| a == "--test") || !args.iter().any(|a| a == "--bench");
    if testing {
        n = n.min(4_000);
    }
    let mut criterion = Criterion::default().configure_from_args();
    bench_otlp(&mut criterion, n, testing);
    criterion.final_summary();
}
