//! Jaeger export over UDP: spans per second that the Jaeger exporter maps,
//! encodes (thrift compact), packs into datagrams of at most 65,000 bytes
//! and sends to a loopback socket that a thread drains, measured beside the
//! floor set by the kernel: the very same datagrams, already encoded, sent
//! on a plain UDP socket. Both run in one criterion group, in one process,
//! one after the other, so their ratio is what to read.
//!
//! * `jaeger/export`: `JaegerExporter::export(&batch)` for a batch of 512
//!   server spans (the SDK's default batch size), on a Tokio current-thread
//!   runtime as on the engine's export thread. Each span is what the engine
//!   makes for a request: name `GET /users/{id}`, kind server, 9 HTTP
//!   semantic-convention attributes, scope `faultline` with a version, and
//!   for one span in eight an error status with an `exception` event.
//! * `jaeger/send_only`: the datagrams of one such export, captured once,
//!   sent again with `tokio::net::UdpSocket::send` on a connected socket.
//!
//! Throughput is in spans (elements) per second. The receiving thread
//! counts what arrives; the loopback may drop datagrams when it falls
//! behind, which does not slow the sender (UDP has no back-pressure).
//!
//! Counting mode, for instruction counts under callgrind (no criterion):
//!
//! ```text
//! FAULTLINE_BENCH_COUNT=N <bench binary>
//! ```
//!
//! exports the batch N times and exits. Two runs, N1 and N2, give the
//! export thread's instructions per span: (I(N2) - I(N1)) / ((N2 - N1) * 512).

use std::hint::black_box;
use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use criterion::{Criterion, Throughput, criterion_group};
use faultline::export::Exporter;
use faultline::jaeger::JaegerExporter;
use opentelemetry::trace::{
    Event, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};

const BATCH: usize = 512;

fn span(i: usize) -> SpanData {
    let start = SystemTime::now();
    let error = i % 8 == 7;
    let mut events = SpanEvents::default();
    if error {
        events.events.push(Event::new(
            "exception",
            start,
            vec![
                KeyValue::new("exception.type", "UserNotFound"),
                KeyValue::new("exception.message", "user 1234 not found"),
                KeyValue::new("error.code", 1001_i64),
            ],
            0,
        ));
    }
    SpanData {
        span_context: SpanContext::new(
            TraceId::from(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736 + i as u128),
            SpanId::from(0x00f0_67aa_0ba9_02b7 + i as u64),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        ),
        parent_span_id: SpanId::from(0x5fb3_97be_34d2_6b51),
        parent_span_is_remote: true,
        span_kind: SpanKind::Server,
        name: "GET /users/{id}".into(),
        start_time: start,
        end_time: start + Duration::from_micros(850),
        attributes: vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", "/users/{id}"),
            KeyValue::new("url.path", format!("/users/{}", i % 1000)),
            KeyValue::new("url.scheme", "http"),
            KeyValue::new("server.address", "api.example.com"),
            KeyValue::new("server.port", 8080_i64),
            KeyValue::new("network.protocol.version", "1.1"),
            KeyValue::new("user_agent.original", "curl/8.5.0"),
            KeyValue::new(
                "http.response.status_code",
                if error { 404_i64 } else { 200 },
            ),
        ],
        dropped_attributes_count: 0,
        events,
        links: SpanLinks::default(),
        status: if error {
            Status::error("user not found")
        } else {
            Status::Unset
        },
        instrumentation_scope: InstrumentationScope::builder("faultline")
            .with_version("0.1.0")
            .build(),
    }
}

/// A UDP socket on 127.0.0.1 with a receive buffer large enough for the
/// burst of datagrams of one export (the kernel caps it at net.core.rmem_max).
fn loopback_socket() -> UdpSocket {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    let _ = socket.set_recv_buffer_size(8 << 20);
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    socket.into()
}

/// A loopback socket drained by a thread, which counts what it receives.
struct Sink {
    port: u16,
    stop: Arc<AtomicBool>,
    received: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sink {
    fn start() -> Sink {
        let socket = loopback_socket();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let port = socket.local_addr().unwrap().port();
        let stop = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let (s, r) = (stop.clone(), received.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_536];
            while !s.load(Ordering::Relaxed) {
                if socket.recv(&mut buf).is_ok() {
                    r.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Sink {
            port,
            stop,
            received,
            thread: Some(thread),
        }
    }
}

impl Sink {
    /// Waits until nothing more arrives, then returns how many datagrams came in all.
    fn settle(&self) -> u64 {
        let mut last = self.received.load(Ordering::Relaxed);
        loop {
            std::thread::sleep(Duration::from_millis(200));
            let now = self.received.load(Ordering::Relaxed);
            if now == last {
                return now;
            }
            last = now;
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The datagrams one export of `batch` sends (captured on a socket of our own).
fn capture(rt: &tokio::runtime::Runtime, resource: &Resource, batch: &[SpanData]) -> Vec<Vec<u8>> {
    let socket = loopback_socket();
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut exporter = JaegerExporter::builder()
        .agent("127.0.0.1", socket.local_addr().unwrap().port())
        .build()
        .unwrap();
    exporter.set_resource(resource);
    rt.block_on(exporter.export(batch)).unwrap();
    let mut datagrams = Vec::new();
    let mut buf = vec![0u8; 65_536];
    while let Ok(n) = socket.recv(&mut buf) {
        datagrams.push(buf[..n].to_vec());
    }
    assert_eq!(datagrams.len() as u64, exporter.stats().packets_sent);
    datagrams
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resource = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_service_name("bench")
        .with_attribute(KeyValue::new("service.version", "1.0.0"))
        .build();
    let batch: Vec<SpanData> = (0..BATCH).map(span).collect();
    let datagrams = capture(&rt, &resource, &batch);
    let bytes: usize = datagrams.iter().map(Vec::len).sum();
    eprintln!(
        "jaeger bench: {BATCH} spans -> {} datagrams, {bytes} bytes ({:.0} bytes/span)",
        datagrams.len(),
        bytes as f64 / BATCH as f64
    );

    let sink = Sink::start();
    let mut exporter = JaegerExporter::builder()
        .agent("127.0.0.1", sink.port)
        .build()
        .unwrap();
    exporter.set_resource(&resource);
    let sender = rt.block_on(async {
        let s = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        s.connect(("127.0.0.1", sink.port)).await.unwrap();
        s
    });

    let sent_plain = AtomicU64::new(0);
    let mut group = c.benchmark_group("jaeger");
    group
        .throughput(Throughput::Elements(BATCH as u64))
        .warm_up_time(Duration::from_secs(3))
        .measurement_time(Duration::from_secs(5));
    group.bench_function("export", |b| {
        b.iter(|| rt.block_on(exporter.export(black_box(&batch))).unwrap())
    });
    let received_export = sink.settle();
    group.bench_function("send_only", |b| {
        b.iter(|| {
            rt.block_on(async {
                for d in &datagrams {
                    sender.send(black_box(d)).await.unwrap();
                }
            });
            sent_plain.fetch_add(datagrams.len() as u64, Ordering::Relaxed);
        })
    });
    group.finish();
    let received_plain = sink.settle() - received_export;

    let stats = exporter.stats();
    eprintln!(
        "jaeger bench: export sent {} datagrams ({} spans, {} errors), the sink received {received_export}; \
         send_only sent {}, the sink received {received_plain}",
        stats.packets_sent,
        stats.spans_sent,
        stats.export_errors,
        sent_plain.load(Ordering::Relaxed),
    );
}

/// Counting mode, for instruction counts under callgrind (no criterion):
/// `FAULTLINE_BENCH_COUNT=N <bench binary>` exports the batch N times and
/// exits. Two runs (N1, N2) give instructions per span of the export
/// thread: (I(N2) - I(N1)) / ((N2 - N1) * 512).
fn count_mode(n: usize) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let resource = Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_service_name("bench")
        .with_attribute(KeyValue::new("service.version", "1.0.0"))
        .build();
    let batch: Vec<SpanData> = (0..BATCH).map(span).collect();
    let sink = Sink::start();
    let mut exporter = JaegerExporter::builder()
        .agent("127.0.0.1", sink.port)
        .build()
        .unwrap();
    exporter.set_resource(&resource);
    for _ in 0..n {
        rt.block_on(exporter.export(black_box(&batch))).unwrap();
    }
    eprintln!(
        "jaeger count mode: {} spans sent",
        exporter.stats().spans_sent
    );
}

criterion_group!(benches, bench);

fn main() {
    if let Some(n) = std::env::var("FAULTLINE_BENCH_COUNT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        count_mode(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
