//! One `tracing::info!` with three fields inside a request, through
//! faultline and through the usual peer set-up, in the same criterion
//! group (only the ratio means something).
//!
//! * `logs/faultline`: faultline's subscriber (`faultline::tracing::layers_with`
//!   with a `LogLayer` writing JSON lines to `io::sink`): the event masked
//!   (message and fields, the secret-key rule), a JSON line with the trace
//!   and span ids, a span event on the request's span, and a log record
//!   queued for the engine's log export (a log exporter that discards, on
//!   the export thread);
//! * `logs/peer`: `tracing-subscriber`'s JSON formatter (to `io::sink`)
//!   plus `opentelemetry-appender-tracing`'s bridge into an
//!   `SdkLoggerProvider` with the SDK's batch log processor around an
//!   exporter that discards: no masking, no ids on the line, no span event.
//!
//! Each iteration is a request's life as far as logging sees it: a server
//! span started (faultline's engine tracer, or an `SdkTracerProvider` with a
//! batch span processor around an exporter that discards), its context made
//! current, the event, the span ended. `span/faultline` and `span/peer` do
//! the same without the event, so that the event's own cost is the
//! difference.
//!
//! Counting mode, for instruction counts under callgrind (no criterion):
//!
//! ```text
//! FAULTLINE_BENCH_COUNT=N FAULTLINE_BENCH_WHICH=faultline|peer|faultline-span|peer-span <bench binary>
//! ```
//!
//! runs N iterations, flushing both signals every 1,000 (callgrind runs
//! one thread at a time: without the flushes the batch threads would not
//! run and their queues would overflow), then shuts down. Two values of N,
//! the difference of the counts divided by the difference of N: the
//! instructions per iteration without the set-up (docs/BENCHMARKS.md,
//! "Logs").

use std::hint::black_box;
use std::time::Duration;

use criterion::Criterion;
use faultline::Engine;
use faultline::config::{LogFormat, TracingConfig};
use faultline::export::{ExportError, LogExporter, LogRecord, NoneExporter};
use opentelemetry::trace::{SpanKind, TraceContextExt as _, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::logs::{LogBatch, SdkLoggerProvider};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider, SpanData, SpanExporter};
use tracing_subscriber::layer::SubscriberExt as _;

/// Discards log records (faultline's side).
#[derive(Debug)]
struct DiscardLogs;

#[async_trait::async_trait]
impl LogExporter for DiscardLogs {
    fn name(&self) -> &str {
        "discard"
    }
    async fn export(&self, batch: &[LogRecord]) -> Result<(), ExportError> {
        black_box(batch.len());
        Ok(())
    }
}

/// Discards log records (the SDK's side).
#[derive(Debug)]
struct DiscardSdkLogs;

impl opentelemetry_sdk::logs::LogExporter for DiscardSdkLogs {
    fn export(&self, batch: LogBatch<'_>) -> impl Future<Output = OTelSdkResult> + Send {
        black_box(batch.iter().count());
        std::future::ready(Ok(()))
    }
}

/// Discards spans (the SDK's side).
#[derive(Debug)]
struct DiscardSpans;

impl SpanExporter for DiscardSpans {
    fn export(&self, batch: Vec<SpanData>) -> impl Future<Output = OTelSdkResult> + Send {
        black_box(batch.len());
        std::future::ready(Ok(()))
    }
}

/// One side: its tracer, its subscriber, and how to flush and close it.
struct Side {
    tracer: SdkTracer,
    dispatch: tracing::Dispatch,
    flush: Box<dyn Fn()>,
    close: Box<dyn FnOnce()>,
}

fn faultline_side() -> Side {
    let config = TracingConfig::builder()
        .service_name("bench")
        .exporters([])
        .build()
        .expect("config");
    let engine = Engine::builder(config)
        .exporter(NoneExporter)
        .log_exporter(DiscardLogs)
        .install_global(false)
        .build()
        .expect("engine");
    let events = faultline::tracing::LogLayer::new(&engine)
        .format(LogFormat::Json)
        .ansi(false)
        .writer(std::io::sink);
    let subscriber =
        tracing_subscriber::registry().with(faultline::tracing::layers_with(&engine, events));
    let (flushed, closed) = (engine.clone(), engine.clone());
    Side {
        tracer: engine.tracer().clone(),
        dispatch: tracing::Dispatch::new(subscriber),
        flush: Box::new(move || flushed.force_flush()),
        close: Box::new(move || {
            closed.shutdown();
        }),
    }
}

fn peer_side() -> Side {
    let tracers = SdkTracerProvider::builder()
        .with_batch_exporter(DiscardSpans)
        .build();
    let loggers = SdkLoggerProvider::builder()
        .with_batch_exporter(DiscardSdkLogs)
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_ansi(false)
                .with_writer(std::io::sink),
        )
        .with(opentelemetry_appender_tracing::layer::OpenTelemetryTracingBridge::new(&loggers));
    let (t, l) = (tracers.clone(), loggers.clone());
    Side {
        tracer: tracers.tracer("bench"),
        dispatch: tracing::Dispatch::new(subscriber),
        flush: Box::new(move || {
            let _ = t.force_flush();
            let _ = l.force_flush();
        }),
        close: Box::new(move || {
            let _ = tracers.shutdown();
            let _ = loggers.shutdown();
        }),
    }
}

/// One request: a server span made current, the event (or not), the end.
#[inline]
fn request(tracer: &SdkTracer, log: bool) {
    let span = tracer
        .span_builder("GET /orders/{id}")
        .with_kind(SpanKind::Server)
        .with_attributes([KeyValue::new("http.request.method", "GET")])
        .start(tracer);
    let cx = Context::current_with_span(span);
    {
        let _attached = cx.clone().attach();
        if log {
            tracing::info!(
                user.id = 42i64,
                email = "jane.doe@example.com",
                order = "A-1001",
                "order placed"
            );
        }
    }
    cx.span().end();
}

fn side(which: &str) -> Side {
    if which.starts_with("faultline") {
        faultline_side()
    } else {
        peer_side()
    }
}

fn count(n: u64, which: &str) {
    let log = !which.ends_with("-span");
    let side = side(which);
    tracing::dispatcher::with_default(&side.dispatch, || {
        for i in 0..n {
            request(&side.tracer, log);
            if (i + 1).is_multiple_of(1000) {
                (side.flush)();
            }
        }
    });
    (side.flush)();
    (side.close)();
}

fn bench(c: &mut Criterion) {
    for (group, log) in [("logs", true), ("span", false)] {
        let mut g = c.benchmark_group(group);
        g.measurement_time(Duration::from_secs(5));
        for which in ["faultline", "peer"] {
            let side = side(which);
            tracing::dispatcher::with_default(&side.dispatch, || {
                g.bench_function(which, |b| {
                    let mut i = 0u64;
                    b.iter(|| {
                        request(&side.tracer, log);
                        i += 1;
                        if i.is_multiple_of(1000) {
                            (side.flush)();
                        }
                    })
                });
            });
            (side.close)();
        }
        g.finish();
    }
}

fn main() {
    if let Ok(n) = std::env::var("FAULTLINE_BENCH_COUNT") {
        let n: u64 = n.parse().expect("FAULTLINE_BENCH_COUNT: a number");
        let which = std::env::var("FAULTLINE_BENCH_WHICH").unwrap_or_else(|_| "faultline".into());
        match which.as_str() {
            "faultline" | "peer" | "faultline-span" | "peer-span" => count(n, &which),
            other => {
                eprintln!(
                    "FAULTLINE_BENCH_WHICH must be faultline, peer, faultline-span or peer-span, not `{other}`"
                );
                std::process::exit(2);
            }
        }
        return;
    }
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c);
    c.final_summary();
}
