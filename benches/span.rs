//! One server span's life: extract the parent from the request headers,
//! start a `Server` span with 8 attributes, end it (handing it to the batch
//! span processor), measured through the faultline engine and through the
//! bare OpenTelemetry SDK in the same criterion group, so that the two
//! figures come from the same process and the same run and only their ratio
//! is meaningful.
//!
//! * `span/engine`: `Engine::start_server_span` + `cx.span().end()`, engine
//!   built with no configured exporter and `NoneExporter` added (so the
//!   export pipeline, with PII masking on, still runs on its own threads).
//! * `span/sdk`: the same work written against `opentelemetry_sdk` directly,
//!   as an integration built by hand does it: extract with the SDK's default
//!   propagators (`tracecontext,baggage`: `TraceContextPropagator` then
//!   `BaggagePropagator`, composed), `span_builder(..).with_kind(Server)
//!   .with_attributes(..).start_with_context(..)`, the span put into a
//!   `Context` for the handler (`parent.with_span(span)`), then
//!   `cx.span().end()`, through an `SdkTracerProvider` with a
//!   `BatchSpanProcessor` around a no-op `SpanExporter` and
//!   `ParentBased(AlwaysOn)`.
//!
//! Both use the default batch settings (queue 2048, batch 512, delay 5 s).
//! At full speed the producer can outrun the batch thread; the queue then
//! fills and further spans are dropped (a failed `try_send`), the same way
//! for both.
//!
//! Counting mode, for instruction counts under callgrind (no criterion):
//!
//! ```text
//! FAULTLINE_BENCH_COUNT=N FAULTLINE_BENCH_WHICH=engine|sdk <bench binary>
//! ```
//!
//! sets the chosen side up, runs N spans, shuts it down and exits, printing
//! how many spans reached the exporter on stderr. Every
//! `FAULTLINE_BENCH_FLUSH_EVERY` spans (default 1000; 0 for never) it calls
//! `force_flush`, so that the queue (2048) never fills and every span is
//! exported: callgrind runs one thread at a time, and without the flushes
//! the batch thread would not run until the end and all spans past the
//! 2048th would be dropped. Running it for two values of N and dividing the
//! difference of the instruction counts by the difference of N gives
//! instructions per span without the set-up costs (`scripts/bench-span`
//! does this).

use std::borrow::Cow;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::Criterion;
use faultline::Engine;
use faultline::config::TracingConfig;
use faultline::export::NoneExporter;
use opentelemetry::propagation::TextMapCompositePropagator;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{SpanKind, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::propagation::{BaggagePropagator, TraceContextPropagator};
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{
    BatchSpanProcessor, Sampler, SdkTracer, SdkTracerProvider, SpanData, SpanExporter,
};

const SPAN_NAME: &str = "GET /users/{id}";

/// The 8 attributes of a typical HTTP server span, built afresh for every
/// span (as an adapter does), the same for both sides.
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

// ---------------------------------------------------------------- engine

fn build_engine() -> Engine {
    let config = TracingConfig::builder()
        .service_name("bench")
        .exporters([])
        .build()
        .expect("valid bench configuration");
    Engine::builder(config)
        .exporter(NoneExporter)
        .install_global(false)
        .build()
        .expect("engine builds")
}

#[inline(never)]
fn engine_span(engine: &Engine, headers: &http::HeaderMap) {
    let cx = engine.start_server_span(SPAN_NAME, attributes(), headers);
    cx.span().end();
    black_box(&cx);
}

// ---------------------------------------------------------------- bare SDK

/// A span exporter that drops every batch at once (and counts the spans).
#[derive(Debug, Default)]
struct NoopSpanExporter {
    spans: Arc<AtomicU64>,
}

impl SpanExporter for NoopSpanExporter {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        self.spans.fetch_add(batch.len() as u64, Ordering::Relaxed);
        drop(batch);
        std::future::ready(Ok(()))
    }
}

/// `http::HeaderMap` as an OpenTelemetry `Extractor` (what
/// `opentelemetry-http`'s `HeaderExtractor` does).
struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct Sdk {
    provider: SdkTracerProvider,
    tracer: SdkTracer,
    propagator: TextMapCompositePropagator,
    exported: Arc<AtomicU64>,
}

fn build_sdk() -> Sdk {
    let exported = Arc::new(AtomicU64::new(0));
    let exporter = NoopSpanExporter {
        spans: exported.clone(),
    };
    // The same resource the engine builds for `service_name("bench")`.
    let resource = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_service_name("bench")
        .build();
    let provider = SdkTracerProvider::builder()
        .with_resource(resource)
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)))
        .with_span_processor(BatchSpanProcessor::builder(exporter).build())
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
        exported,
    }
}

#[inline(never)]
fn sdk_span(sdk: &Sdk, headers: &http::HeaderMap) {
    let parent_cx: Context = sdk.propagator.extract(&HeaderExtractor(headers));
    let span = sdk
        .tracer
        .span_builder(Cow::Borrowed(SPAN_NAME))
        .with_kind(SpanKind::Server)
        .with_attributes(attributes())
        .start_with_context(&sdk.tracer, &parent_cx);
    let cx = parent_cx.with_span(span);
    cx.span().end();
    black_box(&cx);
}

// ---------------------------------------------------------------- criterion

fn bench_span(c: &mut Criterion) {
    let headers = http::HeaderMap::new();
    let mut group = c.benchmark_group("span");
    group
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(5))
        .sample_size(100);

    let engine = build_engine();
    let mut started = 0_u64;
    group.bench_function("engine", |b| {
        b.iter(|| {
            started += 1;
            engine_span(&engine, &headers)
        })
    });
    let report = engine.shutdown();
    report_drops("engine", started, report.stats.spans_received);
    drop(engine);

    let sdk = build_sdk();
    let mut started = 0_u64;
    group.bench_function("sdk", |b| {
        b.iter(|| {
            started += 1;
            sdk_span(&sdk, &headers)
        })
    });
    let _ = sdk.provider.shutdown();
    report_drops("sdk", started, sdk.exported.load(Ordering::Relaxed));
    drop(sdk);

    group.finish();
}

fn report_drops(which: &str, started: u64, exported: u64) {
    let dropped = started.saturating_sub(exported);
    eprintln!(
        "{which}: {started} spans started (warm-up included), {exported} exported, \
         {dropped} dropped at the full batch queue ({:.1}%)",
        100.0 * dropped as f64 / started.max(1) as f64
    );
}

// ---------------------------------------------------------------- counting mode

fn count_mode(n: u64, which: &str, flush_every: u64) {
    let headers = http::HeaderMap::new();
    let due = |i: u64| flush_every != 0 && (i + 1).is_multiple_of(flush_every);
    match which {
        "engine" => {
            let engine = build_engine();
            for i in 0..n {
                engine_span(&engine, &headers);
                if due(i) {
                    engine.force_flush();
                }
            }
            let report = engine.shutdown();
            eprintln!(
                "engine: {n} spans started, {} reached the export pipeline",
                report.stats.spans_received
            );
        }
        "sdk" => {
            let sdk = build_sdk();
            for i in 0..n {
                sdk_span(&sdk, &headers);
                if due(i) {
                    let _ = sdk.provider.force_flush();
                }
            }
            let _ = sdk.provider.shutdown();
            eprintln!(
                "sdk: {n} spans started, {} reached the exporter",
                sdk.exported.load(Ordering::Relaxed)
            );
        }
        other => {
            eprintln!("FAULTLINE_BENCH_WHICH must be `engine` or `sdk`, not `{other}`");
            std::process::exit(2);
        }
    }
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
    if std::env::var_os("FAULTLINE_BENCH_COUNT").is_some() {
        let n = env_number("FAULTLINE_BENCH_COUNT", 0);
        let flush_every = env_number("FAULTLINE_BENCH_FLUSH_EVERY", 1000);
        let which = std::env::var("FAULTLINE_BENCH_WHICH").unwrap_or_else(|_| "engine".to_owned());
        count_mode(n, &which, flush_every);
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    bench_span(&mut criterion);
    criterion.final_summary();
}
