//! Log records, the third OpenTelemetry signal: the [`LogRecord`] faultline
//! makes of a `tracing` event (already masked), the [`LogExporter`] plugin
//! point, and the built-in `console` and in-memory log exporters.
//!
//! Records take the same road as spans, off the request path: a bounded
//! queue (in records and bytes; a full queue drops the newest record,
//! counted, and never blocks), then the engine's resilient export (retry
//! with back-off, a bounded buffer per exporter, drop counters, a flush at
//! shutdown), on the engine's export thread.
//!
//! Log exporters are registered by name, so that `OTEL_LOGS_EXPORTER` can
//! name any of them, a plugin's or the application's own:
//!
//! ```
//! use faultline_engine::config::TracingConfig;
//! use faultline_engine::export::{InMemoryLogExporter, LogRecord, LogSeverity};
//! use faultline_engine::Engine;
//!
//! let records = InMemoryLogExporter::default();
//! let config = TracingConfig::builder().exporters([]).logs_exporters(["memory"]).build()?;
//! let for_engine = records.clone();
//! let engine = Engine::builder(config)
//!     .log_exporter_factory("memory", move |_config| Ok(Box::new(for_engine)))
//!     .install_global(false)
//!     .build()?;
//! assert!(engine.emit_log(LogRecord::new(LogSeverity::Info, "checkout", "paid")));
//! engine.force_flush();
//! assert_eq!(records.records()[0].body, "paid");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::borrow::Cow;
use std::fmt::{Debug, Write as _};
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use opentelemetry::trace::{SpanId, TraceFlags, TraceId};
use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::Resource;

use super::ExportError;

/// A log record's severity, with the OpenTelemetry log data model's
/// numbers (`SeverityNumber`): TRACE 1, DEBUG 5, INFO 9, WARN 13, ERROR 17.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum LogSeverity {
    /// `TRACE` (1).
    Trace,
    /// `DEBUG` (5).
    Debug,
    /// `INFO` (9).
    Info,
    /// `WARN` (13).
    Warn,
    /// `ERROR` (17).
    Error,
}

impl LogSeverity {
    /// The OpenTelemetry severity number.
    pub fn number(self) -> u8 {
        match self {
            LogSeverity::Trace => 1,
            LogSeverity::Debug => 5,
            LogSeverity::Info => 9,
            LogSeverity::Warn => 13,
            LogSeverity::Error => 17,
        }
    }

    /// The severity text (`INFO`, `WARN`, ...).
    pub fn text(self) -> &'static str {
        match self {
            LogSeverity::Trace => "TRACE",
            LogSeverity::Debug => "DEBUG",
            LogSeverity::Info => "INFO",
            LogSeverity::Warn => "WARN",
            LogSeverity::Error => "ERROR",
        }
    }
}

/// One log record: a `tracing` event as faultline exports it. Its body and
/// attribute values are already masked when the engine receives it.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct LogRecord {
    /// When the event happened.
    pub time: SystemTime,
    /// When faultline saw it (the same instant for a `tracing` event).
    pub observed_time: SystemTime,
    /// The severity.
    pub severity: LogSeverity,
    /// Where it comes from (the `tracing` target, a module path): the
    /// instrumentation scope of the exported record.
    pub target: Cow<'static, str>,
    /// The message.
    pub body: String,
    /// The event's fields, typed.
    pub attributes: Vec<KeyValue>,
    /// The trace of the span current where it was emitted (invalid: none).
    pub trace_id: TraceId,
    /// That span's id (invalid: none).
    pub span_id: SpanId,
    /// That span's trace flags.
    pub trace_flags: TraceFlags,
}

impl LogRecord {
    /// A record of now, outside any span, without attributes.
    pub fn new(
        severity: LogSeverity,
        target: impl Into<Cow<'static, str>>,
        body: impl Into<String>,
    ) -> Self {
        let now = SystemTime::now();
        LogRecord {
            time: now,
            observed_time: now,
            severity,
            target: target.into(),
            body: body.into(),
            attributes: Vec::new(),
            trace_id: TraceId::INVALID,
            span_id: SpanId::INVALID,
            trace_flags: TraceFlags::default(),
        }
    }

    /// Whether the record carries the ids of a span.
    pub fn has_span(&self) -> bool {
        self.trace_id != TraceId::INVALID && self.span_id != SpanId::INVALID
    }

    /// The memory the record holds, estimated (the queue and the export
    /// buffers are bounded with it).
    pub fn estimated_size(&self) -> usize {
        std::mem::size_of::<LogRecord>()
            + self.target.len()
            + self.body.len()
            + super::attributes_size(&self.attributes)
    }

    /// Appends the record as one JSON object (no newline): `timestamp`,
    /// `level`, `target`, `message`, then the fields at the top level, then
    /// `trace_id` and `span_id` (32 and 16 lowercase hex) when the record
    /// has a span. A field named like one of those keys is written under
    /// `field.{name}`.
    pub fn write_json(&self, out: &mut String) {
        out.push_str("{\"timestamp\":\"");
        super::console::write_rfc3339(out, self.time, true);
        out.push_str("\",\"level\":\"");
        out.push_str(self.severity.text());
        out.push_str("\",\"target\":");
        push_json_str(out, &self.target);
        out.push_str(",\"message\":");
        push_json_str(out, &self.body);
        for kv in &self.attributes {
            let key = kv.key.as_str();
            out.push(',');
            if matches!(
                key,
                "timestamp" | "level" | "target" | "message" | "trace_id" | "span_id"
            ) {
                out.push_str("\"field.");
                push_json_content(out, key);
                out.push('"');
            } else {
                push_json_str(out, key);
            }
            out.push(':');
            push_json_value(out, &kv.value);
        }
        if self.has_span() {
            let _ = write!(
                out,
                ",\"trace_id\":\"{}\",\"span_id\":\"{}\"",
                self.trace_id, self.span_id
            );
        }
        out.push('}');
    }

    /// Appends the record as one human-readable line (no newline):
    /// `timestamp LEVEL target: message key=value ... trace_id=… span_id=…`,
    /// the level coloured when `ansi`. Line breaks in the message are shown as
    /// `⏎`; string fields are quoted and escaped (`"a\nb"`).
    pub fn write_text(&self, out: &mut String, ansi: bool) {
        super::console::write_rfc3339(out, self.time, true);
        out.push(' ');
        let (colour, pad) = match self.severity {
            LogSeverity::Trace => ("\x1b[35m", ""),
            LogSeverity::Debug => ("\x1b[34m", ""),
            LogSeverity::Info => ("\x1b[32m", " "),
            LogSeverity::Warn => ("\x1b[33m", " "),
            LogSeverity::Error => ("\x1b[31m", ""),
        };
        out.push_str(pad);
        if ansi {
            out.push_str(colour);
            out.push_str(self.severity.text());
            out.push_str("\x1b[0m");
        } else {
            out.push_str(self.severity.text());
        }
        out.push(' ');
        out.push_str(&self.target);
        out.push_str(": ");
        push_one_line(out, &self.body);
        for kv in &self.attributes {
            out.push(' ');
            out.push_str(kv.key.as_str());
            out.push('=');
            match &kv.value {
                // Quoted and escaped: a line break in it is `\n`.
                Value::String(s) => {
                    let _ = write!(out, "{:?}", s.as_str());
                }
                other => {
                    let _ = write!(out, "{other}");
                }
            }
        }
        if self.has_span() {
            let _ = write!(out, " trace_id={} span_id={}", self.trace_id, self.span_id);
        }
    }
}

fn push_one_line(out: &mut String, text: &str) {
    if text.contains(['\n', '\r']) {
        out.push_str(&text.replace("\r\n", "⏎").replace(['\n', '\r'], "⏎"));
    } else {
        out.push_str(text);
    }
}

/// `text` as a JSON string, quotes included.
pub(crate) fn push_json_str(out: &mut String, text: &str) {
    out.push('"');
    push_json_content(out, text);
    out.push('"');
}

fn push_json_content(out: &mut String, text: &str) {
    let bytes = text.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&text[start..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.push_str(escape);
        }
        start = i + 1;
    }
    out.push_str(&text[start..]);
}

fn push_json_value(out: &mut String, value: &Value) {
    match value {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::I64(i) => {
            let _ = write!(out, "{i}");
        }
        Value::F64(f) if f.is_finite() => {
            let _ = write!(out, "{f}");
        }
        Value::F64(_) => out.push_str("null"),
        Value::String(s) => push_json_str(out, s.as_str()),
        Value::Array(array) => {
            out.push('[');
            match array {
                Array::Bool(v) => join(out, v, |out, b| push_json_value(out, &Value::Bool(*b))),
                Array::I64(v) => join(out, v, |out, i| push_json_value(out, &Value::I64(*i))),
                Array::F64(v) => join(out, v, |out, f| push_json_value(out, &Value::F64(*f))),
                Array::String(v) => join(out, v, |out, s| push_json_str(out, s.as_str())),
                _ => {}
            }
            out.push(']');
        }
        other => push_json_str(out, &other.to_string()),
    }
}

fn join<T>(out: &mut String, items: &[T], mut f: impl FnMut(&mut String, &T)) {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        f(out, item);
    }
}

/// Ships log records somewhere: the log exporter plugin point.
///
/// Register one by name with
/// [`EngineBuilder::log_exporter_factory`](crate::EngineBuilder::log_exporter_factory)
/// (then `OTEL_LOGS_EXPORTER` can name it) or add one with
/// [`EngineBuilder::log_exporter`](crate::EngineBuilder::log_exporter). The
/// engine wraps it in the same resilient export as span exporters, so the
/// contract is [`Exporter`](super::Exporter)'s: `export` is never called
/// concurrently, ends in bounded time, classifies failures as transient or
/// permanent, never panics; `shutdown` releases resources. The records it
/// receives are already masked; it runs on the engine's export thread,
/// inside a Tokio runtime.
#[async_trait::async_trait]
pub trait LogExporter: Send + Sync + Debug {
    /// A short name for logs and counters (`otlp`, `console`, ...).
    fn name(&self) -> &str;

    /// Receives the resource (the traces' own) once, before the first export.
    fn set_resource(&mut self, _resource: &Resource) {}

    /// Ships `batch`.
    async fn export(&self, batch: &[LogRecord]) -> Result<(), ExportError>;

    /// Flushes and releases resources.
    async fn shutdown(&self) -> Result<(), ExportError> {
        Ok(())
    }

    /// What the backend rejected in the exports that succeeded since the
    /// pipeline last asked (OTLP's partial success), taken once; `None`
    /// when nothing was rejected. The pipeline counts the rejected records
    /// ([`LogExportStats`]'s exporters' `rejected`) and logs the first
    /// message, masked.
    fn take_partial_success(&self) -> Option<super::PartialSuccess> {
        None
    }
}

/// Makes a log exporter from what a span exporter's factory gets too, the
/// configuration and the engine's masker (how plugins register themselves
/// by name; see
/// [`EngineBuilder::log_exporter_factory`](crate::EngineBuilder::log_exporter_factory)).
pub type LogExporterFactory = Box<
    dyn FnOnce(&crate::ExporterContext<'_>) -> Result<Box<dyn LogExporter>, crate::BoxError> + Send,
>;

/// The `console` log exporter: each record as a JSON line on standard
/// output (or a given writer).
#[derive(Clone)]
pub struct ConsoleLogExporter {
    out: Arc<Mutex<Box<dyn Write + Send>>>,
}

impl Debug for ConsoleLogExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleLogExporter").finish_non_exhaustive()
    }
}

impl ConsoleLogExporter {
    /// Writing to standard output.
    pub fn stdout() -> Self {
        Self::to_writer(std::io::stdout())
    }

    /// Writing to `writer`.
    pub fn to_writer(writer: impl Write + Send + 'static) -> Self {
        ConsoleLogExporter {
            out: Arc::new(Mutex::new(Box::new(writer))),
        }
    }
}

#[async_trait::async_trait]
impl LogExporter for ConsoleLogExporter {
    fn name(&self) -> &str {
        "console"
    }

    async fn export(&self, batch: &[LogRecord]) -> Result<(), ExportError> {
        let mut text = String::with_capacity(batch.len() * 200);
        for record in batch {
            record.write_json(&mut text);
            text.push('\n');
        }
        let mut out = self.out.lock().unwrap_or_else(|e| e.into_inner());
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| ExportError::transient(format!("console log export: {e}")).with_source(e))
    }
}

/// Keeps every exported record in memory (tests). Clones share the store.
#[derive(Debug, Clone, Default)]
pub struct InMemoryLogExporter {
    store: Arc<Mutex<(Vec<LogRecord>, Option<Resource>)>>,
}

impl InMemoryLogExporter {
    fn lock(&self) -> MutexGuard<'_, (Vec<LogRecord>, Option<Resource>)> {
        self.store.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every record exported so far, in export order.
    pub fn records(&self) -> Vec<LogRecord> {
        self.lock().0.clone()
    }

    /// The resource the engine gave the exporter.
    pub fn resource(&self) -> Option<Resource> {
        self.lock().1.clone()
    }

    /// Waits until at least `count` records arrived or `timeout` passed,
    /// and returns what arrived.
    pub fn wait_for(&self, count: usize, timeout: Duration) -> Vec<LogRecord> {
        let deadline = Instant::now() + timeout;
        loop {
            let records = self.records();
            if records.len() >= count || Instant::now() >= deadline {
                return records;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[async_trait::async_trait]
impl LogExporter for InMemoryLogExporter {
    fn name(&self) -> &str {
        "memory"
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.lock().1 = Some(resource.clone());
    }

    async fn export(&self, batch: &[LogRecord]) -> Result<(), ExportError> {
        self.lock().0.extend_from_slice(batch);
        Ok(())
    }
}

/// The counters of log export, readable at any time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogExportStats {
    /// Records the engine accepted into its queue.
    pub records_queued: u64,
    /// Records the full queue refused (a log storm): dropped, counted.
    pub records_dropped_by_queue: u64,
    /// Each log exporter's counters (in records).
    pub exporters: Vec<super::ExporterStats>,
}

/// The bounded queue between the `tracing` layer (any thread, never
/// blocked) and the export thread.
#[derive(Debug)]
pub(crate) struct LogQueue {
    state: Mutex<(Vec<LogRecord>, usize)>,
    max_records: usize,
    batch: usize,
    max_bytes: usize,
    pub(crate) queued: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) wake: tokio::sync::Notify,
    pub(crate) closed: AtomicBool,
}

impl LogQueue {
    pub(crate) fn new(max_records: usize, batch: usize, max_bytes: usize) -> Self {
        LogQueue {
            state: Mutex::new((Vec::new(), 0)),
            max_records,
            batch: batch.max(1),
            max_bytes,
            queued: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    /// The most records shipped in one batch.
    pub(crate) fn batch_size(&self) -> usize {
        self.batch
    }

    /// Queues `record` unless the queue is full or closed.
    pub(crate) fn push(&self, record: LogRecord) -> bool {
        let size = record.estimated_size();
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let (records, bytes) = &mut *state;
        if self.closed.load(Ordering::Relaxed)
            || records.len() >= self.max_records
            || (records.len() >= self.batch && *bytes + size > self.max_bytes)
        {
            drop(state);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        records.push(record);
        *bytes += size;
        let full_batch = records.len() == self.batch;
        drop(state);
        self.queued.fetch_add(1, Ordering::Relaxed);
        if full_batch {
            self.wake.notify_one();
        }
        true
    }

    /// Everything queued, with its estimated bytes.
    pub(crate) fn take(&self) -> (Vec<LogRecord>, usize) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        std::mem::take(&mut *state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> LogRecord {
        let mut r = LogRecord::new(LogSeverity::Warn, "svc", "user \"x\"\nnot found");
        r.time = SystemTime::UNIX_EPOCH + Duration::from_micros(1_795_000_000_123_456);
        r.attributes = vec![
            KeyValue::new("user.id", 42i64),
            KeyValue::new("ok", true),
            KeyValue::new("message", "shadow"),
            KeyValue::new("ratio", 0.5),
        ];
        r.trace_id = TraceId::from(0xabc_u128);
        r.span_id = SpanId::from(0xdef_u64);
        r
    }

    #[test]
    fn json_lines_carry_ids_and_typed_fields_at_the_top_level() {
        let mut out = String::new();
        record().write_json(&mut out);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["timestamp"], "2026-11-18T11:06:40.123456Z");
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["message"], "user \"x\"\nnot found");
        assert_eq!(v["user.id"], 42);
        assert_eq!(v["ok"], true);
        assert_eq!(v["ratio"], 0.5);
        assert_eq!(v["field.message"], "shadow");
        assert_eq!(v["trace_id"], "00000000000000000000000000000abc");
        assert_eq!(v["span_id"], "0000000000000def");
        let mut none = String::new();
        LogRecord::new(LogSeverity::Info, "t", "m").write_json(&mut none);
        let v: serde_json::Value = serde_json::from_str(&none).unwrap();
        assert!(v.get("trace_id").is_none(), "{none}");
    }

    #[test]
    fn text_lines_are_one_line_with_ids() {
        let mut out = String::new();
        record().write_text(&mut out, false);
        assert!(!out.contains('\n'), "{out}");
        assert!(
            out.starts_with(
                "2026-11-18T11:06:40.123456Z  WARN svc: user \"x\"⏎not found user.id=42"
            ),
            "{out}"
        );
        assert!(
            out.ends_with("trace_id=00000000000000000000000000000abc span_id=0000000000000def"),
            "{out}"
        );
        let mut coloured = String::new();
        record().write_text(&mut coloured, true);
        assert!(coloured.contains("\x1b[33mWARN\x1b[0m"), "{coloured}");
    }

    #[test]
    fn json_escapes_control_characters_and_writes_arrays_and_odd_numbers() {
        let mut r = LogRecord::new(
            LogSeverity::Error,
            "svc\t1",
            "bell\u{7} tab\t cr\r back\\slash",
        );
        r.attributes = vec![
            KeyValue::new("ids", Value::Array(Array::I64(vec![1, 2]))),
            KeyValue::new("flags", Value::Array(Array::Bool(vec![true, false]))),
            KeyValue::new("weights", Value::Array(Array::F64(vec![0.25, f64::NAN]))),
            KeyValue::new(
                "names",
                Value::Array(Array::String(vec!["a\"b".into(), "c".into()])),
            ),
            KeyValue::new("infinite", f64::INFINITY),
            KeyValue::new("trace_id", "a field, not the record's"),
        ];
        let mut out = String::new();
        r.write_json(&mut out);
        let v: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
        assert!(out.contains("\\u0007"), "{out}");
        assert_eq!(v["message"], "bell\u{7} tab\t cr\r back\\slash");
        assert_eq!(v["target"], "svc\t1");
        assert_eq!(v["level"], "ERROR");
        assert_eq!(v["ids"], serde_json::json!([1, 2]));
        assert_eq!(v["flags"], serde_json::json!([true, false]));
        assert_eq!(v["weights"], serde_json::json!([0.25, null]));
        assert_eq!(v["names"], serde_json::json!(["a\"b", "c"]));
        assert_eq!(v["infinite"], serde_json::Value::Null);
        assert_eq!(v["field.trace_id"], "a field, not the record's");
        assert!(v.get("trace_id").is_none(), "no span: no ids, {out}");
    }

    #[test]
    fn text_lines_escape_a_multi_line_field_and_colour_every_level() {
        let mut r = LogRecord::new(LogSeverity::Info, "svc", "m");
        r.attributes = vec![
            KeyValue::new("sql", "select 1\r\nfrom t\nwhere x"),
            KeyValue::new("n", 3i64),
        ];
        let mut out = String::new();
        r.write_text(&mut out, false);
        assert!(!out.contains(['\n', '\r']), "{out}");
        assert!(
            out.contains(r#"sql="select 1\r\nfrom t\nwhere x" n=3"#),
            "{out}"
        );
        assert!(!out.contains("trace_id="), "no span: no ids, {out}");
        for (severity, colour) in [
            (LogSeverity::Trace, "\x1b[35mTRACE"),
            (LogSeverity::Debug, "\x1b[34mDEBUG"),
            (LogSeverity::Info, "\x1b[32mINFO"),
            (LogSeverity::Error, "\x1b[31mERROR"),
        ] {
            let mut line = String::new();
            LogRecord::new(severity, "t", "m").write_text(&mut line, true);
            assert!(line.contains(colour), "{line}");
        }
    }

    #[tokio::test]
    async fn the_console_log_exporter_writes_one_json_line_a_record_and_reports_write_errors() {
        let sink = crate::export::TestWriter::default();
        let exporter = ConsoleLogExporter::to_writer(sink.clone());
        assert_eq!(exporter.name(), "console");
        assert!(format!("{exporter:?}").contains("ConsoleLogExporter"));
        let batch = [record(), LogRecord::new(LogSeverity::Info, "t", "second")];
        exporter.export(&batch).await.expect("written");
        let text = sink.text();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[1]["message"], "second");
        assert!(exporter.shutdown().await.is_ok());
        assert!(exporter.take_partial_success().is_none());

        let failing = ConsoleLogExporter::to_writer(crate::export::TestWriter::failing());
        let error = failing.export(&batch).await.expect_err("the write fails");
        assert!(error.to_string().contains("disk full"), "{error}");
        assert!(std::error::Error::source(&error).is_some());
    }

    #[tokio::test]
    async fn the_in_memory_log_exporter_keeps_records_and_the_resource() {
        let exporter = InMemoryLogExporter::default();
        let mut shared = exporter.clone();
        shared.set_resource(&Resource::builder_empty().with_service_name("svc").build());
        shared.export(&[record()]).await.expect("kept");
        assert_eq!(exporter.records().len(), 1);
        assert!(exporter.resource().is_some());
        // Waiting for more than arrives ends at the timeout with what came.
        assert_eq!(exporter.wait_for(2, Duration::from_millis(20)).len(), 1);
    }

    #[test]
    fn the_queue_is_bounded_and_counts_what_it_refuses() {
        let q = LogQueue::new(3, 2, usize::MAX);
        for _ in 0..5 {
            q.push(LogRecord::new(LogSeverity::Info, "t", "m"));
        }
        assert_eq!(q.queued.load(Ordering::Relaxed), 3);
        assert_eq!(q.dropped.load(Ordering::Relaxed), 2);
        assert_eq!(q.take().0.len(), 3);
        // Bytes: past a batch, a record that would pass the bound is refused.
        let q = LogQueue::new(100, 1, 10);
        assert!(q.push(LogRecord::new(LogSeverity::Info, "t", "m")));
        assert!(!q.push(LogRecord::new(LogSeverity::Info, "t", "m")));
        assert_eq!(LogSeverity::Error.number(), 17);
    }
}
