use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::time::Duration;

use opentelemetry::trace::{Span as _, Tracer as _};

use super::*;
use crate::Engine;
use crate::config::TracingConfig;
use crate::export::InMemoryExporter;

/// An exporter whose backend can be switched down and up, recording what it
/// delivered, in order.
#[derive(Debug, Clone, Default)]
struct Backend {
    up: Arc<AtomicBool>,
    calls: Arc<AtomicUsize>,
    fail_first: usize,
    permanent: bool,
    delay: Duration,
    /// While set, every export waits (a backend that hangs until released).
    hold: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<String>>>,
}

#[async_trait::async_trait]
impl Exporter for Backend {
    fn name(&self) -> &str {
        "backend"
    }
    async fn export(&self, batch: &[SpanData]) -> Result<(), ExportError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst);
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        while self.hold.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if call < self.fail_first || !self.up.load(Ordering::SeqCst) {
            return Err(if self.permanent {
                ExportError::permanent("rejected")
            } else {
                ExportError::transient("connection refused")
            });
        }
        self.seen
            .lock()
            .unwrap()
            .extend(batch.iter().map(|s| s.name.to_string()));
        Ok(())
    }
}

fn backend(up: bool) -> Backend {
    let b = Backend::default();
    b.up.store(up, Ordering::SeqCst);
    b
}

/// An engine exporting to `backend` with short back-offs and deadlines,
/// the rest of its configuration from `configure`.
fn engine_from(
    backend: impl Exporter + 'static,
    configure: impl FnOnce(crate::config::TracingConfigBuilder) -> crate::config::TracingConfigBuilder,
) -> Engine {
    let config = configure(
        TracingConfig::builder()
            .service_name("pipeline-test")
            .exporters([])
            .backoff(Duration::from_millis(2), Duration::from_millis(20))
            .shutdown_timeout(Duration::from_millis(500)),
    )
    .build()
    .unwrap();
    Engine::builder(config)
        .exporter(backend)
        .install_global(false)
        .build()
        .unwrap()
}

fn engine_with(backend: impl Exporter + 'static, capacity: usize, batch: usize) -> Engine {
    engine_from(backend, |c| {
        c.max_export_retries(3)
            .export_buffer_capacity(capacity)
            .export_timeout(Duration::from_millis(300))
            .batch(8192, batch, Duration::from_secs(600))
    })
}

/// Ends a span named `name` with one `payload` attribute (a large span).
fn big_span(engine: &Engine, name: String, payload: &str) {
    let mut span = engine.tracer().start(name);
    span.set_attribute(opentelemetry::KeyValue::new("payload", payload.to_owned()));
    span.end();
}

fn spans(engine: &Engine, prefix: &str, n: usize) {
    for i in 0..n {
        engine.tracer().start(format!("{prefix}{i:03}")).end();
    }
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_failing_attempt_is_retried_and_delivered_in_order() {
    let mut b = backend(true);
    b.fail_first = 2;
    let engine = engine_with(b.clone(), 1000, 10);
    spans(&engine, "s", 30);
    engine.force_flush();
    let seen = b.seen.lock().unwrap().clone();
    let want: Vec<String> = (0..30).map(|i| format!("s{i:03}")).collect();
    assert_eq!(seen, want);
    let stats = engine.export_stats();
    assert_eq!(stats.retries, 2);
    assert_eq!(stats.export_errors, 2);
    assert_eq!(stats.spans_exported, 30);
    assert_eq!(stats.spans_failed, 0);
    assert!(engine.shutdown().is_clean());
}

#[test]
fn a_backend_down_then_up_gets_every_buffered_span_in_order() {
    let b = backend(false);
    let engine = engine_with(b.clone(), 10_000, 25);
    spans(&engine, "a", 100);
    engine.force_flush(); // spends the retries, then reports the backend down
    spans(&engine, "b", 100);
    engine.force_flush();
    let stats = engine.export_stats();
    assert_eq!(stats.spans_buffered, 200, "{stats:?}");
    assert_eq!(stats.spans_exported, 0);
    assert!(stats.retries >= 3);
    b.up.store(true, Ordering::SeqCst);
    wait_until("the buffer to drain", || {
        engine.export_stats().spans_buffered == 0
    });
    let seen = b.seen.lock().unwrap().clone();
    let want: Vec<String> = (0..100)
        .map(|i| format!("a{i:03}"))
        .chain((0..100).map(|i| format!("b{i:03}")))
        .collect();
    assert_eq!(seen, want, "every span once, oldest first");
    let stats = engine.export_stats();
    assert_eq!((stats.spans_exported, stats.spans_failed), (200, 0));
    assert!(engine.shutdown().is_clean());
}

#[test]
fn an_overflowing_buffer_drops_exactly_the_oldest_spans() {
    let b = backend(false);
    let engine = engine_with(b.clone(), 100, 50);
    for round in 0..5 {
        spans(&engine, &format!("r{round}-"), 50);
        engine.force_flush();
    }
    let stats = engine.export_stats();
    assert_eq!(stats.spans_received, 250);
    assert_eq!(stats.spans_buffered, 100);
    assert_eq!(
        stats.spans_failed, 150,
        "exactly the overflow is dropped: {stats:?}"
    );
    b.up.store(true, Ordering::SeqCst);
    wait_until("the buffer to drain", || {
        engine.export_stats().spans_buffered == 0
    });
    let seen = b.seen.lock().unwrap().clone();
    let want: Vec<String> = (3..5)
        .flat_map(|r| (0..50).map(move |i| format!("r{r}-{i:03}")))
        .collect();
    assert_eq!(seen, want, "the newest 100 survive, in order");
    let stats = engine.export_stats();
    assert_eq!(
        stats.spans_exported + stats.spans_failed,
        stats.spans_received
    );
}

#[test]
fn large_spans_are_bounded_by_memory_dropping_the_oldest_whole_batches() {
    let b = backend(false);
    let engine = engine_from(b.clone(), |c| {
        c.max_export_retries(1)
            .export_buffer_capacity(10_000)
            .export_buffer_bytes(250_000)
            .batch(8192, 10, Duration::from_secs(600))
    });
    // About 10 kB a span, 100 kB a batch of ten: two batches fit, three not.
    let payload = "x".repeat(10_000);
    for round in 0..10 {
        for i in 0..10 {
            big_span(&engine, format!("r{round}-{i}"), &payload);
        }
        engine.force_flush();
    }
    let stats = engine.export_stats();
    assert_eq!(stats.spans_received, 100);
    assert_eq!(stats.spans_buffered, 20, "{stats:?}");
    assert_eq!(stats.spans_failed, 80, "{stats:?}");
    let bytes = stats.exporters[0].buffered_bytes;
    assert!((200_000..=250_000).contains(&bytes), "{stats:?}");
    b.up.store(true, Ordering::SeqCst);
    wait_until("the buffer to drain", || {
        engine.export_stats().spans_buffered == 0
    });
    let seen = b.seen.lock().unwrap().clone();
    let want: Vec<String> = (8..10)
        .flat_map(|r| (0..10).map(move |i| format!("r{r}-{i}")))
        .collect();
    assert_eq!(seen, want, "the newest two batches survive, in order");
    assert_eq!(engine.export_stats().exporters[0].buffered_bytes, 0);
}

#[test]
fn one_batch_larger_than_the_byte_limit_is_still_kept() {
    let b = backend(false);
    let engine = engine_from(b.clone(), |c| {
        c.max_export_retries(1)
            .export_buffer_bytes(0)
            .batch(8192, 10, Duration::from_secs(600))
    });
    for round in 0..3 {
        spans(&engine, &format!("r{round}-"), 10);
        engine.force_flush();
    }
    let stats = engine.export_stats();
    assert_eq!(
        (stats.spans_buffered, stats.spans_failed),
        (10, 20),
        "{stats:?}"
    );
    b.up.store(true, Ordering::SeqCst);
    wait_until("the buffer to drain", || {
        engine.export_stats().spans_buffered == 0
    });
    let want: Vec<String> = (0..10).map(|i| format!("r2-{i:03}")).collect();
    assert_eq!(b.seen.lock().unwrap().clone(), want);
}

#[test]
fn the_queue_gate_bounds_spans_and_bytes_past_one_batch() {
    // Queue of 4 spans, batches of 2, 100 bytes.
    let gate = QueueGate::new(4, 2, 100);
    assert!(gate.admit(1_000), "below a batch: any size");
    assert!(gate.admit(1_000), "still below a batch");
    assert!(
        !gate.admit(1),
        "a batch waits and the bytes are past the bound"
    );
    gate.release(2, 2_000);
    assert!(gate.admit(40));
    assert!(gate.admit(50));
    assert!(gate.admit(10), "100 bytes: at the bound, not past it");
    assert!(!gate.admit(1), "bytes full");
    gate.release(1, 50);
    assert!(gate.admit(10));
    assert!(gate.admit(1));
    assert!(!gate.admit(1), "four spans: count full");
    gate.release(4, 61);
    assert_eq!(gate.spans.load(Ordering::Relaxed), 0);
    assert_eq!(gate.bytes.load(Ordering::Relaxed), 0);
}

#[test]
fn a_burst_of_large_spans_is_bounded_in_the_batch_queue_by_memory() {
    /// Holds the batch thread in the masking step while `hold` is set, so
    /// that spans pile up in the queue in front of it.
    #[derive(Debug)]
    struct Stuck {
        hold: Arc<AtomicBool>,
    }
    impl crate::masking::Masker for Stuck {
        fn mask<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
            while self.hold.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            std::borrow::Cow::Borrowed(text)
        }
        fn is_secret_key(&self, _key: &str) -> bool {
            false
        }
    }
    let hold = Arc::new(AtomicBool::new(true));
    let spans_seen = InMemoryExporter::default();
    let config = TracingConfig::builder()
        .service_name("pipeline-test")
        .exporters([])
        .batch(8192, 10, Duration::from_secs(600))
        .build()
        .unwrap();
    let engine = Engine::builder(config)
        .exporter(spans_seen.clone())
        .masker(Stuck { hold: hold.clone() })
        .install_global(false)
        .build()
        .unwrap();
    let payload = "x".repeat(10_000);
    // 1,000 spans of about 10 kB: 10 MB, past the queue's 8 MiB.
    for i in 0..1000 {
        big_span(&engine, format!("burst-{i}"), &payload);
    }
    hold.store(false, Ordering::SeqCst);
    engine.force_flush();
    let stats = engine.export_stats();
    assert_eq!(stats.spans_ended, 1000);
    let admitted = stats.spans_received;
    assert!(
        (700..1000).contains(&admitted),
        "about 8 MiB of 10 kB spans admitted, the rest refused: {stats:?}"
    );
    assert_eq!(spans_seen.len() as u64, admitted);
    // What left the queue was counted out: it takes a new burst again.
    for i in 0..10 {
        big_span(&engine, format!("after-{i}"), &payload);
    }
    engine.force_flush();
    let stats = engine.export_stats();
    assert_eq!(stats.spans_received, admitted + 10, "{stats:?}");
    assert!(engine.shutdown().is_clean());
}

#[test]
fn a_permanent_error_drops_without_retrying() {
    let mut b = backend(false);
    b.permanent = true;
    let engine = engine_with(b.clone(), 1000, 10);
    spans(&engine, "p", 20);
    engine.force_flush();
    let stats = engine.export_stats();
    assert_eq!(stats.spans_failed, 20);
    assert_eq!(stats.retries, 0, "a permanent error is never retried");
    // One failed attempt per batch; how the 20 spans were batched depends on
    // the batch processor's timing (10 + 10, or 10 + 9 + 1, ...).
    let calls = b.calls.load(Ordering::SeqCst) as u64;
    assert_eq!(stats.export_errors, calls);
    assert!((2..=20).contains(&calls), "{calls} attempts");
    assert_eq!(stats.spans_buffered, 0);
}

#[test]
fn a_slow_exporter_never_holds_up_another() {
    // The slow exporter hangs until released: the fast one must still get
    // every span meanwhile (no timing assumption: the order of events shows it).
    let slow = backend(true);
    slow.hold.store(true, Ordering::SeqCst);
    let memory = InMemoryExporter::default();
    let config = TracingConfig::builder()
        .service_name("pipeline-test")
        .exporters([])
        .batch(2048, 1, Duration::from_millis(1))
        .build()
        .unwrap();
    let engine = Engine::builder(config)
        .exporter(slow.clone())
        .exporter(memory.clone())
        .install_global(false)
        .build()
        .unwrap();
    for i in 0..5 {
        engine.tracer().start(format!("x{i}")).end();
    }
    let got = memory.wait_for(5, Duration::from_secs(30));
    assert_eq!(
        got.len(),
        5,
        "the fast exporter got every span while the slow one hung"
    );
    assert!(
        slow.seen.lock().unwrap().is_empty(),
        "the slow one is still hanging"
    );
    slow.hold.store(false, Ordering::SeqCst);
    engine.force_flush();
    assert_eq!(slow.seen.lock().unwrap().len(), 5);
}

#[test]
fn an_exporter_that_panics_or_hangs_is_retried() {
    #[derive(Debug)]
    struct Wild(AtomicUsize, Arc<Mutex<usize>>);
    #[async_trait::async_trait]
    impl Exporter for Wild {
        fn name(&self) -> &str {
            "wild"
        }
        async fn export(&self, batch: &[SpanData]) -> Result<(), ExportError> {
            match self.0.fetch_add(1, Ordering::SeqCst) {
                0 => panic!("exporter bug"),
                1 => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(())
                }
                _ => {
                    *self.1.lock().unwrap() += batch.len();
                    Ok(())
                }
            }
        }
    }
    let delivered = Arc::new(Mutex::new(0));
    let engine = engine_with(Wild(AtomicUsize::new(0), delivered.clone()), 1000, 10);
    spans(&engine, "w", 10);
    engine.force_flush();
    assert_eq!(*delivered.lock().unwrap(), 10);
    let stats = engine.export_stats();
    assert_eq!(
        (stats.export_errors, stats.retries, stats.spans_exported),
        (2, 2, 10)
    );
}

#[test]
fn shutdown_with_the_backend_down_keeps_its_deadline_and_says_what_was_lost() {
    let b = backend(false);
    let engine = engine_with(b, 1000, 10);
    spans(&engine, "d", 40);
    let started = Instant::now();
    let report = engine.shutdown();
    assert!(
        started.elapsed() < Duration::from_secs(10), // only catches a hang, not a timing target
        "{:?}",
        started.elapsed()
    );
    assert!(!report.is_clean());
    assert_eq!(report.stats.spans_failed, 40, "{report:?}");
    assert!(
        report.errors.iter().any(|e| matches!(
            e,
            crate::ShutdownError::Undelivered {
                count: 40,
                unit: "spans",
                ..
            }
        ) && e.to_string().contains("40 spans not delivered")),
        "{:?}",
        report.errors
    );
}

#[test]
fn a_backend_that_comes_back_before_the_shutdown_deadline_gets_everything() {
    let b = backend(false);
    let engine = engine_with(b.clone(), 1000, 10);
    spans(&engine, "s", 40);
    // The backend comes back once shutdown has tried at least once: the
    // order of events, not a time, decides.
    let up = b.up.clone();
    let calls = b.calls.clone();
    let reviver = std::thread::spawn(move || {
        let seen = calls.load(Ordering::SeqCst);
        while calls.load(Ordering::SeqCst) < seen + 2 {
            std::thread::sleep(Duration::from_millis(1));
        }
        up.store(true, Ordering::SeqCst);
    });
    let report = engine.shutdown();
    reviver.join().unwrap();
    assert_eq!(report.stats.spans_exported, 40, "{report:?}");
    assert_eq!(report.stats.spans_failed, 0, "{report:?}");
    assert_eq!(b.seen.lock().unwrap().len(), 40);
}

#[test]
fn texts_remembered_as_clean_never_let_personal_data_through() {
    let (engine, spans) =
        crate::export::test_engine(|builder| builder.service_name("pipeline-test"));
    let tracer = engine.tracer();
    for round in 0..3 {
        let mut span = tracer.start(format!("round {round}"));
        span.set_attribute(opentelemetry::KeyValue::new(
            "user_agent.original",
            "curl/8.0",
        ));
        span.set_attribute(opentelemetry::KeyValue::new("note", "mail ann@example.com"));
        span.end();
        engine.force_flush();
    }
    let exported = spans.spans();
    assert_eq!(exported.len(), 3);
    for s in &exported {
        let value = |key: &str| {
            s.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.as_str().into_owned())
                .unwrap()
        };
        assert_eq!(value("user_agent.original"), "curl/8.0");
        let note = value("note");
        assert!(!note.contains("ann@example.com"), "{note}");
    }
}

/// An exporter whose backend accepted requests but rejected some of what
/// they held: spans or log records.
#[derive(Debug, Default)]
struct Rejecting(Mutex<Vec<crate::export::PartialSuccess>>);

impl Rejecting {
    fn with_answers() -> Self {
        use crate::export::PartialSuccess;
        Rejecting(Mutex::new(vec![
            PartialSuccess::new(1, "one more, from bob@example.com"),
            PartialSuccess::new(2, "2 too old, first from alice@example.com"),
        ]))
    }
}

#[async_trait::async_trait]
impl Exporter for Rejecting {
    fn name(&self) -> &str {
        "rejecting"
    }
    async fn export(&self, _batch: &[SpanData]) -> Result<(), ExportError> {
        Ok(())
    }
    fn take_partial_success(&self) -> Option<crate::export::PartialSuccess> {
        self.0.lock().unwrap().pop()
    }
}

#[async_trait::async_trait]
impl crate::export::LogExporter for Rejecting {
    fn name(&self) -> &str {
        "rejecting"
    }
    async fn export(&self, _batch: &[crate::export::LogRecord]) -> Result<(), ExportError> {
        Ok(())
    }
    fn take_partial_success(&self) -> Option<crate::export::PartialSuccess> {
        self.0.lock().unwrap().pop()
    }
}

#[derive(Clone, Default)]
struct Logged(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Logged {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Asks `exporter` three times for its partial success (it has two): the
/// rejected count, and what was logged.
fn note_partial_success_three_times<T: Send + Sync + 'static>(
    exporter: Box<dyn Ship<T>>,
) -> (u64, String) {
    let counters = Arc::new(Counters::default());
    let masker: Arc<dyn Masker> = Arc::new(crate::masking::PiiMasker::default());
    let mut task: Task<T> = Task {
        exporter,
        lane: Arc::new(Lane::default()),
        counters: counters.clone(),
        retry: *TracingConfig::default().export_retry(),
        rng: 7,
        masker: Some(masker),
        partial_logged: false,
    };
    let logged = Logged::default();
    let writer = logged.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        for _ in 0..3 {
            task.note_partial_success();
        }
    });
    let text = String::from_utf8(logged.0.lock().unwrap().clone()).unwrap();
    (counters.rejected.load(Ordering::Relaxed), text)
}

#[test]
fn partial_success_is_counted_every_time_and_logged_once_masked() {
    let spans: Box<dyn Exporter> = Box::new(Rejecting::with_answers());
    let logs: Box<dyn crate::export::LogExporter> = Box::new(Rejecting::with_answers());
    for ((rejected, text), unit, metric) in [
        (
            note_partial_success_three_times::<SpanData>(Box::new(spans)),
            "rejected some spans",
            "faultline_export_spans_rejected_total",
        ),
        (
            note_partial_success_three_times::<crate::export::LogRecord>(Box::new(logs)),
            "rejected some log records",
            "faultline_export_log_records_rejected_total",
        ),
    ] {
        assert_eq!(rejected, 3);
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("rejected=2"), "{text}");
        assert!(text.contains(unit) && text.contains(metric), "{text}");
        assert!(text.contains("2 too old"), "{text}");
        assert!(!text.contains("alice@example.com"), "{text}");
        assert!(!text.contains("bob@example.com"), "{text}");
    }
}

#[test]
fn a_servers_delay_is_never_shortened_and_never_past_the_longest_back_off() {
    let config = TracingConfig::builder()
        .backoff(Duration::from_millis(10), Duration::from_secs(2))
        .build()
        .unwrap();
    let mut task: Task<SpanData> = Task {
        exporter: Box::new(Box::new(Rejecting::default()) as Box<dyn Exporter>),
        lane: Arc::new(Lane::default()),
        counters: Arc::new(Counters::default()),
        retry: *config.export_retry(),
        rng: 0x9e37_79b9,
        masker: None,
        partial_logged: false,
    };
    for asked in [0, 1, 10, 500, 1000, 1900, 2000] {
        let asked = Duration::from_millis(asked);
        let mut longer = false;
        for _ in 0..200 {
            let d = task.at_least(asked);
            assert!(d >= asked, "{d:?} < {asked:?}");
            assert!(d <= Duration::from_secs(2), "{d:?}");
            assert!(d <= asked + asked / 4, "{d:?} for {asked:?}");
            longer |= d > asked;
        }
        // The jitter adds something (where there is room for it).
        if asked >= Duration::from_millis(10) && asked < Duration::from_secs(2) {
            assert!(longer, "{asked:?}");
        }
    }
}
