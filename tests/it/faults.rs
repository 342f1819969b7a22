//! Faults under load: the OTLP backend flaps while spans keep coming, and
//! every span is still accounted for.
//!
//! The engine exports OTLP/gRPC to the Python receiver of `otlp.rs` (the
//! official protobufs). Three threads produce spans for about 5 s while the
//! receiver is killed (SIGKILL, a crash: no goodbye to the client) and
//! started again on the same port, again and again. At the end (receiver
//! up, flush, shutdown):
//!
//! * the batch processor lost nothing silently: the pipeline received every
//!   span produced;
//! * distinct span ids received + spans the exporter counted as dropped ==
//!   spans produced, and every id received was produced;
//! * spans received more than once are allowed by the exporter's
//!   at-least-once delivery only where an attempt failed after the receiver
//!   had already taken the batch (it printed the request, then was killed
//!   before the answer reached the client): so duplicates are at most the
//!   failed attempts times the batch size.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use faultline::Engine;
use faultline::config::{ExporterKind, TracingConfig};
use faultline::otlp::{OtlpConfig, OtlpProtocol};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, Tracer as _};
use serde_json::Value as Json;

use crate::common::free_port;
use crate::otlp::Receiver;

/// How long the producers run.
const PRODUCE_FOR: Duration = Duration::from_secs(5);
/// The receiver crashes once a second, after at least this long up (a
/// start takes 0.3 to 0.9 s).
const MIN_UP: Duration = Duration::from_millis(200);
const PRODUCERS: usize = 3;
/// Spans each producer makes every [`PACE`]: 3 × 4 / 5 ms = 2,400 spans/s.
const SPANS_PER_TICK: usize = 4;
const PACE: Duration = Duration::from_millis(5);
const BATCH: usize = 256;

/// Kills `receiver` and returns every request it printed, once its output
/// has been read to the end.
fn crash(receiver: Receiver) -> Vec<Json> {
    let requests = receiver.requests.clone();
    drop(receiver);
    // The reader thread holds the other reference until it reads EOF.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&requests) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut got = requests.lock().unwrap();
    std::mem::take(&mut *got)
}

/// What one flapping run left behind.
struct Outcome {
    restarts: usize,
    produced: HashSet<String>,
    /// How many times each span id arrived.
    seen: HashMap<String, usize>,
    report: faultline::ShutdownReport,
    /// The OTLP exporter's counters.
    otlp: Counters,
}

/// One exporter's counters (`ExportStats::exporters` holds them; their
/// type is not exported by name).
struct Counters {
    delivered: u64,
    dropped: u64,
    failed_attempts: u64,
    retries: u64,
}

impl Outcome {
    fn duplicates(&self) -> usize {
        self.seen.values().sum::<usize>() - self.seen.len()
    }
}

/// Produces spans for [`PRODUCE_FOR`] while the receiver crashes and comes
/// back every second; then flushes and shuts the engine down with the
/// receiver up. `buffer` is the engine's export buffer capacity.
fn flap(buffer: Option<usize>) -> Outcome {
    let started = Instant::now();
    let port = free_port();
    let grpc_port = port.to_string();
    let args = ["--grpc-port", grpc_port.as_str()];
    let mut receiver = Receiver::start(&args);
    let mut config = TracingConfig::builder()
        .service_name("faults")
        .exporters([ExporterKind::OTLP])
        .export_timeout(Duration::from_secs(2))
        .backoff(Duration::from_millis(20), Duration::from_millis(250))
        .batch(65_536, BATCH, Duration::from_millis(20));
    if let Some(spans) = buffer {
        config = config.export_buffer_capacity(spans);
    }
    let otlp = OtlpConfig::new()
        .protocol(OtlpProtocol::Grpc)
        .endpoint(format!("http://127.0.0.1:{port}"));
    let engine = otlp
        .register(Engine::builder(config.build().unwrap()))
        .install_global(false)
        .build()
        .unwrap();

    let stop = AtomicBool::new(false);
    let produced_ids: Mutex<HashSet<String>> = Mutex::new(HashSet::new());
    let mut requests: Vec<Json> = Vec::new();
    let mut restarts = 0;
    let receiver = std::thread::scope(|scope| {
        for t in 0..PRODUCERS {
            let (engine, stop, produced_ids) = (&engine, &stop, &produced_ids);
            scope.spawn(move || {
                let tracer = engine.tracer();
                let mut ids = Vec::new();
                let mut seq = 0_i64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..SPANS_PER_TICK {
                        let mut span = tracer
                            .span_builder("flap")
                            .with_attributes([
                                KeyValue::new("producer", t as i64),
                                KeyValue::new("seq", seq),
                            ])
                            .start(tracer);
                        ids.push(span.span_context().span_id().to_string());
                        span.end();
                        seq += 1;
                    }
                    std::thread::sleep(PACE);
                }
                produced_ids.lock().unwrap().extend(ids);
            });
        }
        // The flapping, while the producers run: a crash every second (or,
        // when a start took longer, once the receiver has been up for
        // MIN_UP), then a start on the same port.
        let begin = Instant::now();
        for second in 1..PRODUCE_FOR.as_secs() {
            let due = begin + Duration::from_secs(second);
            let up_since = Instant::now();
            std::thread::sleep(
                due.saturating_duration_since(up_since)
                    .max(MIN_UP.saturating_sub(up_since.elapsed())),
            );
            requests.extend(crash(receiver));
            receiver = Receiver::start(&args);
            restarts += 1;
        }
        std::thread::sleep((begin + PRODUCE_FOR).saturating_duration_since(Instant::now()));
        stop.store(true, Ordering::Relaxed);
        receiver
    });
    let produced = produced_ids.into_inner().unwrap();

    engine.force_flush();
    let report = engine.shutdown();
    requests.extend(crash(receiver));

    let mut seen: HashMap<String, usize> = HashMap::new();
    for request in requests.iter().filter(|r| r["rejected"] == false) {
        for span in request["spans"].as_array().unwrap() {
            *seen
                .entry(span["span_id"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    let otlp = report
        .stats
        .exporters
        .iter()
        .find(|e| e.name == "otlp")
        .map(|e| Counters {
            delivered: e.delivered,
            dropped: e.dropped,
            failed_attempts: e.failed_attempts,
            retries: e.retries,
        })
        .unwrap();
    let outcome = Outcome {
        restarts,
        produced,
        seen,
        report,
        otlp,
    };
    eprintln!(
        "flapping OTLP backend, export buffer {}: {} crashes and restarts in {:.1} s; \
         {} spans produced, {} distinct received ({} duplicates), {} dropped; \
         exporter: {} delivered, {} failed attempts, {} retries",
        buffer.map_or("default".to_owned(), |b| b.to_string()),
        outcome.restarts,
        started.elapsed().as_secs_f64(),
        outcome.produced.len(),
        outcome.seen.len(),
        outcome.duplicates(),
        outcome.otlp.dropped,
        outcome.otlp.delivered,
        outcome.otlp.failed_attempts,
        outcome.otlp.retries,
    );
    outcome
}

/// What every flapping run must show: it flapped, nothing was lost
/// silently, every span received was produced here, and duplicates stay
/// within at-least-once delivery.
fn check_accounting(o: &Outcome) {
    assert_eq!(o.restarts, 4, "the receiver flapped");
    assert!(
        o.otlp.failed_attempts > 0,
        "exports failed while it was down: {:?}",
        o.report
    );
    assert_eq!(
        o.report.stats.spans_received as usize,
        o.produced.len(),
        "the batch processor handed every span to the pipeline (none lost at its queue)"
    );
    let strangers = o.seen.keys().filter(|id| !o.produced.contains(*id)).count();
    assert_eq!(strangers, 0, "every span received was produced here");
    assert!(
        o.duplicates() <= o.otlp.failed_attempts as usize * BATCH,
        "{} duplicates: more than at-least-once delivery allows ({} failed attempts of at most {BATCH} spans)",
        o.duplicates(),
        o.otlp.failed_attempts
    );
}

#[test]
fn every_span_is_accounted_for_while_the_otlp_backend_flaps() {
    let o = flap(None);
    check_accounting(&o);
    assert_eq!(
        o.seen.len() + o.otlp.dropped as usize,
        o.produced.len(),
        "received (distinct) + dropped == produced: {:?}",
        o.report
    );
    assert_eq!(o.otlp.dropped, 0, "the default buffer outlasts each outage");
    assert!(o.report.is_clean(), "{:?}", o.report);
}

#[test]
fn spans_beyond_the_export_buffer_are_dropped_and_counted_while_the_backend_flaps() {
    // 2,400 spans/s against a 300-span buffer: every outage overflows it.
    let o = flap(Some(300));
    check_accounting(&o);
    assert!(o.otlp.dropped > 0, "the small buffer overflowed");
    // A span is counted dropped when the engine gave up on it; it may still
    // have arrived if an attempt that carried it failed only after the
    // receiver had printed it (then the entry waited out its back-off, not
    // in flight, and overflow cut it). Such overlap is bounded like
    // duplicates.
    let accounted = o.seen.len() + o.otlp.dropped as usize;
    assert!(
        accounted >= o.produced.len(),
        "received (distinct) + dropped covers every span produced: {accounted} < {}",
        o.produced.len()
    );
    assert!(
        accounted - o.produced.len() <= o.otlp.failed_attempts as usize * BATCH,
        "received and dropped overlap by more than failed attempts allow"
    );
    assert_eq!(
        o.report.stats.spans_failed, o.otlp.dropped,
        "the totals carry the drops"
    );
}
