//! Shipping finished spans: the [`Exporter`] plugin point, the built-in
//! exporters, and the masking step every span passes before any exporter
//! sees it.

mod console;
pub(crate) mod keep;
pub(crate) mod logs;
mod memory;
pub(crate) mod pipeline;

use std::borrow::Cow;
use std::fmt::Debug;
use std::time::Duration;

use opentelemetry::{Array, Key, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use crate::BoxError;
use crate::masking::{Masker, REDACTED, mask_query};

pub use console::ConsoleExporter;
pub use keep::{ErrorKeepingStats, KEPT_ATTRIBUTE};
pub use logs::{
    ConsoleLogExporter, InMemoryLogExporter, LogExportStats, LogExporter, LogExporterFactory,
    LogRecord, LogSeverity,
};
pub use memory::InMemoryExporter;
pub use pipeline::{ExportStats, ExporterStats, LimitStats};

/// Why an export failed.
///
/// [`Transient`](ExportError::Transient) and
/// [`Permanent`](ExportError::Permanent) are made with
/// [`ExportError::transient`] / [`ExportError::permanent`] and may keep the
/// error that caused them ([`ExportError::with_source`]), returned by
/// [`std::error::Error::source`]. The message (`reason`) already says what
/// happened, the cause included, so logging the error alone loses nothing.
///
/// ```
/// use faultline_engine::export::ExportError;
///
/// let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
/// let e = ExportError::transient(format!("collector: {io}")).with_source(io);
/// assert_eq!(e.to_string(), "export failed, may succeed later: collector: connection refused");
/// assert!(std::error::Error::source(&e).is_some());
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// A failure that may pass (connection refused, 503, timeout): worth a retry.
    #[error("export failed, may succeed later: {reason}")]
    #[non_exhaustive]
    Transient {
        /// What happened.
        reason: String,
        /// The error that caused it, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// A failure that will not pass by retrying (rejected data, bad credentials).
    #[error("export rejected: {reason}")]
    #[non_exhaustive]
    Permanent {
        /// What happened.
        reason: String,
        /// The error that caused it, when there is one.
        #[source]
        source: Option<BoxError>,
    },
    /// A transient failure whose server asked for the next attempt to
    /// wait (HTTP `Retry-After`, gRPC `RetryInfo`): the next attempt comes
    /// no earlier than `retry_after`, within the maximum back-off; a longer
    /// ask moves the batch to the buffer.
    #[error("export throttled, retry after {retry_after:?}: {reason}")]
    Throttled {
        /// What the server answered.
        reason: String,
        /// The delay the server asked for.
        retry_after: Duration,
    },
    /// The attempt took longer than allowed.
    #[error("export timed out after {0:?}")]
    Timeout(Duration),
    /// The exporter was shut down.
    #[error("exporter is shut down")]
    ShutDown,
}

impl ExportError {
    /// A failure that may pass ([`ExportError::Transient`]).
    pub fn transient(reason: impl Into<String>) -> Self {
        ExportError::Transient {
            reason: reason.into(),
            source: None,
        }
    }

    /// A failure that will not pass by retrying ([`ExportError::Permanent`]).
    pub fn permanent(reason: impl Into<String>) -> Self {
        ExportError::Permanent {
            reason: reason.into(),
            source: None,
        }
    }

    /// Keeps `cause` as this error's source (for `Transient` and
    /// `Permanent`; the other variants are returned unchanged).
    pub fn with_source(mut self, cause: impl Into<BoxError>) -> Self {
        if let ExportError::Transient { source, .. } | ExportError::Permanent { source, .. } =
            &mut self
        {
            *source = Some(cause.into());
        }
        self
    }

    /// What the exporter said happened: the reason of `Transient`,
    /// `Permanent` and `Throttled`, `None` for the others.
    pub fn reason(&self) -> Option<&str> {
        match self {
            ExportError::Transient { reason, .. }
            | ExportError::Permanent { reason, .. }
            | ExportError::Throttled { reason, .. } => Some(reason),
            _ => None,
        }
    }

    /// The delay the server asked for, for [`ExportError::Throttled`].
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ExportError::Throttled { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }
}

/// Spans or log records a backend accepted in a request but then rejected
/// (OTLP's partial success: `rejected_spans` or `rejected_log_records`, and
/// `error_message`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PartialSuccess {
    /// How many spans (or log records) were rejected.
    pub rejected: u64,
    /// Why, as the backend said (header values already taken out by the
    /// exporter; the pipeline masks it before logging).
    pub message: String,
}

impl PartialSuccess {
    /// `rejected` spans (or log records) rejected for `message`.
    pub fn new(rejected: u64, message: impl Into<String>) -> Self {
        PartialSuccess {
            rejected,
            message: message.into(),
        }
    }
}

/// Ships finished spans somewhere.
///
/// Exporters run off the request path, on the engine's export thread, inside
/// a Tokio runtime (so they may use Tokio I/O and timers). The spans they
/// receive are already masked.
///
/// An implementation must guarantee:
/// * `export` is never called concurrently on one exporter, but must be
///   `Sync` because the engine shares it;
/// * `export` ends in bounded time (the engine also cuts it off after the
///   configured export timeout) and reports failure as an [`ExportError`],
///   classifying it as transient or permanent so that retries are sensible;
/// * it never panics (a panic is caught and counted as a failed export, but
///   the batch is lost for this exporter);
/// * `shutdown` flushes what it holds and releases its resources; later
///   exports return [`ExportError::ShutDown`].
#[async_trait::async_trait]
pub trait Exporter: Send + Sync + Debug {
    /// A short name for logs and counters (`otlp`, `jaeger`, `console`, ...).
    fn name(&self) -> &str;

    /// Receives the resource (service name, version, ...) once, before the first export.
    fn set_resource(&mut self, _resource: &Resource) {}

    /// Ships `batch`.
    async fn export(&self, batch: &[SpanData]) -> Result<(), ExportError>;

    /// What the backend rejected in the exports that succeeded since the
    /// last call (OTLP partial success), summed; `None` when nothing was.
    /// The pipeline calls it after each successful export, counts the
    /// rejected spans ([`ExporterStats::rejected`]) and logs the first
    /// message, masked.
    fn take_partial_success(&self) -> Option<PartialSuccess> {
        None
    }

    /// Ships anything held back.
    async fn force_flush(&self) -> Result<(), ExportError> {
        Ok(())
    }

    /// Flushes and releases resources.
    async fn shutdown(&self) -> Result<(), ExportError> {
        Ok(())
    }
}

/// An exporter that discards everything (`OTEL_TRACES_EXPORTER=none`, or a
/// placeholder in tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoneExporter;

#[async_trait::async_trait]
impl Exporter for NoneExporter {
    fn name(&self) -> &str {
        "none"
    }
    async fn export(&self, _batch: &[SpanData]) -> Result<(), ExportError> {
        Ok(())
    }
}

/// Masks every string of `span` in place: the name, attribute values (by key:
/// a secret key's value of any type becomes [`REDACTED`]; `url.query` and
/// `url.full` query strings parameter by parameter), event names and
/// attributes, link attributes and the status description. Integers of ten
/// digits or more are masked as their decimal text (a card or phone number
/// stored as a number), and become strings only when that changes them.
pub fn mask_span(masker: &dyn Masker, span: &mut SpanData) {
    mask_span_with(masker, span, &mut |key| masker.is_secret_key(key.as_str()));
}

/// [`mask_span`] with the secret-key decision supplied (the pipeline caches it).
pub(crate) fn mask_span_with(
    masker: &dyn Masker,
    span: &mut SpanData,
    is_secret: &mut dyn FnMut(&Key) -> bool,
) {
    if let Cow::Owned(name) = masker.mask(&span.name) {
        span.name = Cow::Owned(name);
    }
    mask_attributes_with(masker, &mut span.attributes, is_secret);
    for event in span.events.events.iter_mut() {
        if let Cow::Owned(name) = masker.mask(&event.name) {
            event.name = Cow::Owned(name);
        }
        mask_attributes_with(masker, &mut event.attributes, is_secret);
    }
    for link in span.links.links.iter_mut() {
        mask_attributes_with(masker, &mut link.attributes, is_secret);
    }
    if let opentelemetry::trace::Status::Error { description } = &mut span.status
        && let Cow::Owned(masked) = masker.mask(description)
    {
        *description = Cow::Owned(masked);
    }
}

/// The memory a finished span holds, estimated from its structures and
/// the lengths of its strings (every string counted, even a `&'static`
/// one that costs nothing: an estimate on the high side). The batch
/// queue's and the export buffer's byte limits are kept with it, and it
/// is above what the span takes encoded (OTLP, Thrift), so exporters can
/// use it to keep requests under a backend's message size limit.
pub fn estimated_size(span: &SpanData) -> usize {
    use opentelemetry::trace::{Event, Link, Status};
    let mut size =
        std::mem::size_of::<SpanData>() + span.name.len() + attributes_size(&span.attributes);
    for event in &span.events.events {
        size +=
            std::mem::size_of::<Event>() + event.name.len() + attributes_size(&event.attributes);
    }
    for link in &span.links.links {
        size += std::mem::size_of::<Link>() + attributes_size(&link.attributes);
    }
    if let Status::Error { description } = &span.status {
        size += description.len();
    }
    size
}

pub(crate) fn attributes_size(attributes: &[KeyValue]) -> usize {
    let mut size = std::mem::size_of_val(attributes);
    for kv in attributes {
        size += kv.key.as_str().len();
        size += match &kv.value {
            Value::String(s) => s.as_str().len(),
            Value::Array(Array::String(values)) => values
                .iter()
                .map(|s| std::mem::size_of::<StringValue>() + s.as_str().len())
                .sum(),
            Value::Array(Array::Bool(values)) => values.len(),
            Value::Array(Array::I64(values)) => values.len() * 8,
            Value::Array(Array::F64(values)) => values.len() * 8,
            _ => 0,
        };
    }
    size
}

/// Removes, from the span's attributes and from each event's and link's,
/// every attribute whose key is set again later in the same list, so that
/// the value set last is the one exported; returns how many were removed.
///
/// The SDK appends on every `set_attribute` (it does not look for the key,
/// to stay cheap), while OTLP requires the keys of a list to be unique and
/// the OpenTelemetry API says a value set again replaces the earlier one:
/// a handler that sets `http.route` or its own attribute twice would
/// otherwise export both values, and backends keep either.
pub(crate) fn dedupe_span_attributes(span: &mut SpanData) -> usize {
    let mut removed = 0;
    for_each_attribute_list(span, |list| removed += dedupe_attributes(list));
    removed
}

/// Calls `f` with the span's attribute list, then each event's and each
/// link's (plain loops: an iterator chain cost about 50 instructions a
/// span more on the export thread).
#[inline]
fn for_each_attribute_list(span: &mut SpanData, mut f: impl FnMut(&mut Vec<KeyValue>)) {
    f(&mut span.attributes);
    for event in span.events.events.iter_mut() {
        f(&mut event.attributes);
    }
    for link in span.links.links.iter_mut() {
        f(&mut link.attributes);
    }
}

/// [`dedupe_span_attributes`] for one list: the order of the attributes
/// kept is unchanged.
pub(crate) fn dedupe_attributes(attributes: &mut Vec<KeyValue>) -> usize {
    /// Slots of the screening table; lists of up to half as many keys are
    /// screened without allocating (a span's usual dozen costs a hash and
    /// a probe or two a key).
    const SLOTS: usize = 64;
    let n = attributes.len();
    if n < 2 {
        return 0;
    }
    if n <= SLOTS / 2 {
        // Open addressing over indices (+1; 0 is empty): a key compared
        // with another only when their slots meet.
        let mut table = [0u8; SLOTS];
        let mut repeated = false;
        'keys: for (i, kv) in attributes.iter().enumerate() {
            let key = kv.key.as_str();
            let mut slot = key_slot(key.as_bytes());
            loop {
                match table[slot] {
                    0 => {
                        table[slot] = (i + 1) as u8;
                        break;
                    }
                    j if attributes[usize::from(j) - 1].key.as_str() == key => {
                        repeated = true;
                        break 'keys;
                    }
                    _ => slot = (slot + 1) % SLOTS,
                }
            }
        }
        if !repeated {
            return 0;
        }
    }
    // Some key is repeated (or the list is long): keep each key's last.
    let mut last: std::collections::HashMap<&str, usize, crate::fasthash::FastBuildHasher> =
        std::collections::HashMap::with_capacity_and_hasher(n, Default::default());
    for (i, kv) in attributes.iter().enumerate() {
        last.insert(kv.key.as_str(), i);
    }
    if last.len() == n {
        return 0;
    }
    let keep: Vec<bool> = attributes
        .iter()
        .enumerate()
        .map(|(i, kv)| last.get(kv.key.as_str()) == Some(&i))
        .collect();
    drop(last);
    let mut index = 0;
    attributes.retain(|_| {
        index += 1;
        keep[index - 1]
    });
    n - attributes.len()
}

/// The screening slot (0..64) of an attribute key: its length and its
/// first and last eight bytes (or fewer), mixed by one multiply. Not a
/// hash of every byte: keys that share both ends and the length meet and
/// are then compared in full, which only costs time.
#[inline]
fn key_slot(key: &[u8]) -> usize {
    let n = key.len();
    let word = |bytes: &[u8]| {
        let mut w = [0u8; 8];
        w[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(w)
    };
    let (head, tail) = if n >= 8 {
        (word(&key[..8]), word(&key[n - 8..]))
    } else {
        (word(key), 0)
    };
    let mixed =
        (head ^ tail.rotate_left(31) ^ ((n as u64) << 56)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (mixed >> 58) as usize
}

/// Cuts every string value of `span` (attributes, event and link
/// attributes, string arrays, the status description) longer than `limit`
/// bytes at a character boundary, marked with a trailing `…`; returns how
/// many were cut.
pub(crate) fn truncate_span_values(span: &mut SpanData, limit: usize) -> u64 {
    let mut cut = 0;
    for_each_attribute_list(span, |list| cut += truncate_values(list, limit));
    if let opentelemetry::trace::Status::Error { description } = &mut span.status
        && let Some(short) = truncated(description, limit)
    {
        *description = Cow::Owned(short);
        cut += 1;
    }
    cut
}

fn truncate_values(attributes: &mut [KeyValue], limit: usize) -> u64 {
    let mut cut = 0;
    for kv in attributes.iter_mut() {
        match &mut kv.value {
            Value::String(s) => {
                if let Some(short) = truncated(s.as_str(), limit) {
                    *s = StringValue::from(short);
                    cut += 1;
                }
            }
            Value::Array(Array::String(values)) => {
                for s in values.iter_mut() {
                    if let Some(short) = truncated(s.as_str(), limit) {
                        *s = StringValue::from(short);
                        cut += 1;
                    }
                }
            }
            _ => {}
        }
    }
    cut
}

/// `text` cut to at most `limit` bytes (the mark included), or `None` when
/// it fits. The length check is inlined into every caller (a span's dozen
/// values fit, and a call each cost about 10 instructions); the cut is not.
#[inline]
fn truncated(text: &str, limit: usize) -> Option<String> {
    if text.len() <= limit {
        return None;
    }
    cut(text, limit)
}

#[cold]
#[inline(never)]
fn cut(text: &str, limit: usize) -> Option<String> {
    const MARK: &str = "…";
    let mut end = limit.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + MARK.len());
    out.push_str(&text[..end]);
    out.push_str(MARK);
    Some(out)
}

/// Whether `text`, the value of the attribute `key`, is one of the closed
/// set of texts the engine sets under that key (a method name, a scheme, a
/// protocol version, a status code's digits, a severity): such a text holds
/// nothing to mask, whoever set it, and is not scanned. The decision is on
/// the value, never on the key alone: an application's own value under one
/// of these keys (an `http.route` or an `error.type` it set itself, say) is
/// masked as any other. The route template and error code names are not
/// a closed set: they go through the masker (which remembers clean texts).
fn is_engine_text(key: &str, text: &str) -> bool {
    match key {
        "http.request.method" => matches!(
            text,
            "GET"
                | "POST"
                | "PUT"
                | "DELETE"
                | "HEAD"
                | "OPTIONS"
                | "PATCH"
                | "CONNECT"
                | "TRACE"
                | "_OTHER"
        ),
        "url.scheme" => matches!(text, "http" | "https"),
        "network.protocol.version" => matches!(text, "0.9" | "1.0" | "1.1" | "2" | "3"),
        "error.type" => {
            text == "panic" || (text.len() == 3 && text.bytes().all(|b| b.is_ascii_digit()))
        }
        KEPT_ATTRIBUTE => text == "error",
        crate::exception::keys::SEVERITY => {
            matches!(text, "debug" | "info" | "warning" | "error" | "critical")
        }
        _ => false,
    }
}

/// Numeric attributes faultline sets from a port, a status code or a byte
/// count: below the masker's number threshold such a value is neither a
/// secret nor personal data, so neither the secret-key decision nor the
/// number rule applies to it.
fn is_engine_number(key: &str, value: &Value) -> bool {
    matches!(value, Value::I64(n) if n.unsigned_abs() < 1_000_000_000)
        && matches!(
            key,
            "server.port" | "client.port" | "http.response.status_code" | "http.response.body.size"
        )
}

/// Masks attribute values in place, as [`mask_span`] does.
pub fn mask_attributes(masker: &dyn Masker, attributes: &mut [KeyValue]) {
    mask_attributes_with(masker, attributes, &mut |key| {
        masker.is_secret_key(key.as_str())
    });
}

/// A secret's value replaced whole, keeping its shape: a text becomes
/// `[REDACTED]`, a list (a captured header's values) a list of as many
/// `[REDACTED]` (the semantic conventions' type for header attributes).
fn redact(value: &mut Value) {
    let items = match value {
        Value::String(s) if s.as_str() == REDACTED => return,
        Value::Array(Array::String(items)) => {
            for s in items.iter_mut().filter(|s| s.as_str() != REDACTED) {
                *s = StringValue::from(REDACTED);
            }
            return;
        }
        Value::Array(Array::Bool(items)) => items.len(),
        Value::Array(Array::I64(items)) => items.len(),
        Value::Array(Array::F64(items)) => items.len(),
        _ => {
            *value = Value::String(StringValue::from(REDACTED));
            return;
        }
    };
    *value = Value::Array(Array::String(vec![StringValue::from(REDACTED); items]));
}

fn mask_attributes_with(
    masker: &dyn Masker,
    attributes: &mut [KeyValue],
    is_secret: &mut dyn FnMut(&Key) -> bool,
) {
    for kv in attributes.iter_mut() {
        if matches!(&kv.value, Value::String(s) if is_engine_text(kv.key.as_str(), s.as_str()))
            || is_engine_number(kv.key.as_str(), &kv.value)
        {
            continue;
        }
        if is_secret(&kv.key) {
            redact(&mut kv.value);
            continue;
        }
        let key = kv.key.as_str();
        match &mut kv.value {
            Value::String(s) if key == "url.query" => {
                if let Cow::Owned(masked) = mask_query(masker, s.as_str()) {
                    *s = StringValue::from(masked);
                }
            }
            Value::String(s) if key == "url.full" => {
                let text = s.as_str();
                if let Some((before, query)) = text.split_once('?')
                    && let Cow::Owned(q) = mask_query(masker, query)
                {
                    let mut out = masker.mask(before).into_owned();
                    out.push('?');
                    out.push_str(&q);
                    *s = StringValue::from(out);
                } else if let Cow::Owned(masked) = masker.mask(text) {
                    *s = StringValue::from(masked);
                }
            }
            Value::String(s) => {
                if let Cow::Owned(masked) = masker.mask(s.as_str()) {
                    *s = StringValue::from(masked);
                }
            }
            Value::I64(n) if n.unsigned_abs() >= 1_000_000_000 => {
                let text = n.to_string();
                if let Cow::Owned(masked) = masker.mask(&text) {
                    kv.value = Value::String(StringValue::from(masked));
                }
            }
            Value::Array(Array::String(items)) => {
                for s in items.iter_mut() {
                    if let Cow::Owned(masked) = masker.mask(s.as_str()) {
                        *s = StringValue::from(masked);
                    }
                }
            }
            Value::Array(Array::I64(items)) => {
                let big = items.iter().any(|n| n.unsigned_abs() >= 1_000_000_000);
                if big {
                    let texts: Vec<String> = items.iter().map(i64::to_string).collect();
                    let masked: Vec<Cow<'_, str>> = texts.iter().map(|t| masker.mask(t)).collect();
                    if masked.iter().any(|m| matches!(m, Cow::Owned(_))) {
                        kv.value = Value::Array(Array::String(
                            masked
                                .into_iter()
                                .map(|m| StringValue::from(m.into_owned()))
                                .collect(),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
}

/// An engine for tests, exporting into memory (returned beside it): no
/// exporter of its own, not installed globally; `configure` adds to its
/// configuration (a service name, excluded routes, ...).
#[cfg(test)]
pub(crate) fn test_engine(
    configure: impl FnOnce(crate::config::TracingConfigBuilder) -> crate::config::TracingConfigBuilder,
) -> (crate::Engine, InMemoryExporter) {
    let spans = InMemoryExporter::default();
    let builder = crate::config::TracingConfig::builder()
        .service_name("test")
        .exporters([]);
    let engine = crate::Engine::builder(configure(builder).build().unwrap())
        .exporter(spans.clone())
        .install_global(false)
        .build()
        .unwrap();
    (engine, spans)
}

/// A writer the exporters' tests read back (clones share the text), or
/// one whose every write fails ([`TestWriter::failing`]).
#[cfg(test)]
#[derive(Clone, Default)]
pub(crate) struct TestWriter {
    written: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    failing: bool,
}

#[cfg(test)]
impl TestWriter {
    /// A writer whose writes fail with "disk full".
    pub(crate) fn failing() -> Self {
        TestWriter {
            failing: true,
            ..Self::default()
        }
    }

    /// What was written, as text.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.written.lock().unwrap().clone()).unwrap()
    }
}

#[cfg(test)]
impl std::io::Write for TestWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failing {
            return Err(std::io::Error::other("disk full"));
        }
        self.written.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TracingConfig;
    use crate::masking::BasicMasker;

    fn test_span() -> SpanData {
        use opentelemetry::trace::{SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId};
        SpanData {
            span_context: SpanContext::new(
                TraceId::from(1),
                SpanId::from(2),
                TraceFlags::SAMPLED,
                false,
                Default::default(),
            ),
            parent_span_id: SpanId::INVALID,
            parent_span_is_remote: false,
            span_kind: SpanKind::Server,
            name: Cow::Borrowed("GET /x"),
            start_time: std::time::SystemTime::UNIX_EPOCH,
            end_time: std::time::SystemTime::UNIX_EPOCH,
            attributes: Vec::new(),
            dropped_attributes_count: 0,
            events: Default::default(),
            links: Default::default(),
            status: Status::Unset,
            instrumentation_scope: Default::default(),
        }
    }

    fn kvs(pairs: &[(&str, i64)]) -> Vec<KeyValue> {
        pairs
            .iter()
            .map(|(k, v)| KeyValue::new(k.to_string(), *v))
            .collect()
    }

    /// The reference: each key's last value, in the order of those last.
    fn last_of_each(list: &[KeyValue]) -> Vec<KeyValue> {
        list.iter()
            .enumerate()
            .filter(|(i, kv)| !list[i + 1..].iter().any(|later| later.key == kv.key))
            .map(|(_, kv)| kv.clone())
            .collect()
    }

    #[test]
    fn an_attribute_set_again_keeps_only_its_last_value() {
        let mut list = kvs(&[("a", 1), ("b", 2), ("a", 3), ("c", 4), ("b", 5)]);
        assert_eq!(dedupe_attributes(&mut list), 2);
        assert_eq!(list, kvs(&[("a", 3), ("c", 4), ("b", 5)]));

        let mut unique = kvs(&[("a", 1), ("b", 2), ("c", 3)]);
        assert_eq!(dedupe_attributes(&mut unique), 0);
        assert_eq!(unique, kvs(&[("a", 1), ("b", 2), ("c", 3)]));
        for short in [kvs(&[]), kvs(&[("a", 1)])] {
            let mut list = short.clone();
            assert_eq!(dedupe_attributes(&mut list), 0);
            assert_eq!(list, short);
        }
    }

    #[test]
    fn long_attribute_lists_are_deduplicated_too() {
        // More keys than the screening table takes: the map path alone.
        let keys: Vec<String> = (0..100).map(|i| format!("key.{i}")).collect();
        let mut pairs: Vec<(&str, i64)> = keys.iter().map(|k| (k.as_str(), 0)).collect();
        let mut list = kvs(&pairs);
        assert_eq!(dedupe_attributes(&mut list), 0);
        assert_eq!(list.len(), 100);
        pairs.push(("key.7", 1));
        let mut list = kvs(&pairs);
        assert_eq!(dedupe_attributes(&mut list), 1);
        assert_eq!(list.len(), 100);
        assert_eq!(list[99], KeyValue::new("key.7", 1));
        assert!(!list[..99].iter().any(|kv| kv.key.as_str() == "key.7"));
    }

    #[test]
    fn engine_numbers_skip_the_secret_key_decision_but_not_the_number_rule() {
        let masker = BasicMasker::from_config(&TracingConfig::default());
        let mut seen = Vec::new();
        let mut attributes = kvs(&[
            ("server.port", 8080),
            ("http.response.status_code", 500),
            ("server.port", 4_111_111_111_111_111),
            ("app.count", 3),
        ]);
        mask_attributes_with(&masker, &mut attributes, &mut |key| {
            seen.push(key.as_str().to_owned());
            false
        });
        assert_eq!(attributes[0], KeyValue::new("server.port", 8080));
        assert_eq!(
            attributes[1],
            KeyValue::new("http.response.status_code", 500)
        );
        // A number too big for a port goes through the secret-key decision
        // and the number rule as any other.
        assert_eq!(
            seen,
            ["server.port", "app.count"],
            "only these were decided"
        );
    }

    #[test]
    fn a_secrets_value_is_redacted_keeping_its_shape() {
        let masker = crate::masking::from_config(&TracingConfig::default());
        let strings = |items: &[&str]| {
            Value::Array(Array::String(
                items
                    .iter()
                    .map(|s| StringValue::from(s.to_string()))
                    .collect(),
            ))
        };
        let mut attributes = vec![
            KeyValue::new(
                "http.request.header.authorization",
                strings(&["Bearer a", "b"]),
            ),
            KeyValue::new("http.request.header.x-user", strings(&["bob@example.com"])),
            KeyValue::new("app.token", "t0ken"),
            KeyValue::new("app.pins", Value::Array(Array::I64(vec![1234, 5678]))),
        ];
        mask_attributes_with(masker.as_ref(), &mut attributes, &mut |key| {
            key.as_str() != "http.request.header.x-user"
        });
        assert_eq!(attributes[0].value, strings(&[REDACTED, REDACTED]));
        assert_eq!(attributes[1].value, strings(&["b***@example.com"]));
        assert_eq!(attributes[2].value, Value::from(REDACTED));
        assert_eq!(attributes[3].value, strings(&[REDACTED, REDACTED]));
    }

    #[test]
    fn events_and_links_are_deduplicated_with_the_span() {
        let mut span = test_span();
        span.attributes = kvs(&[("http.route", 1), ("http.route", 2)]);
        let mut event = opentelemetry::trace::Event::with_name("e");
        event.attributes = kvs(&[("x", 1), ("x", 2), ("y", 3)]);
        span.events.events.push(event);
        assert_eq!(dedupe_span_attributes(&mut span), 2);
        assert_eq!(span.attributes, kvs(&[("http.route", 2)]));
        assert_eq!(span.events.events[0].attributes, kvs(&[("x", 2), ("y", 3)]));
    }

    proptest::proptest! {
        #[test]
        fn deduplication_keeps_each_keys_last_value_in_order(
            keys in proptest::collection::vec(0u8..48, 0..70),
        ) {
            // Keys from a small alphabet, so lists of every length repeat some.
            let list: Vec<KeyValue> = keys
                .iter()
                .enumerate()
                .map(|(i, k)| KeyValue::new(format!("k{k}"), i as i64))
                .collect();
            let expected = last_of_each(&list);
            let mut got = list.clone();
            let removed = dedupe_attributes(&mut got);
            proptest::prop_assert_eq!(removed, list.len() - expected.len());
            proptest::prop_assert_eq!(got, expected);
        }
    }

    #[test]
    fn an_application_value_under_an_engine_key_is_still_masked() {
        let masker = crate::masking::from_config(&TracingConfig::default());
        let mut span = test_span();
        // What the engine sets, then the same keys set again by the
        // application (the SDK appends; the last value is exported).
        span.attributes = vec![
            KeyValue::new("http.request.method", "GET"),
            KeyValue::new("http.route", "/users/{id}"),
            KeyValue::new("url.scheme", "https"),
            KeyValue::new("network.protocol.version", "1.1"),
            KeyValue::new("error.type", "500"),
            KeyValue::new("http.route", "/users/bob@example.com"),
            KeyValue::new("error.type", "bob@example.com"),
            KeyValue::new("url.scheme", "call 555-867-5309"),
            KeyValue::new("http.request.method", "bob@example.com"),
        ];
        dedupe_span_attributes(&mut span);
        mask_span(masker.as_ref(), &mut span);
        let value = |key: &str| {
            span.attributes
                .iter()
                .find(|kv| kv.key.as_str() == key)
                .map(|kv| kv.value.as_str().into_owned())
        };
        assert_eq!(value("network.protocol.version").as_deref(), Some("1.1"));
        for key in ["http.route", "error.type", "http.request.method"] {
            let v = value(key).unwrap();
            assert!(!v.contains("bob@example.com"), "{key} not masked: {v}");
            assert!(v.contains("@example.com"), "{key}: {v}");
        }
        assert!(!value("url.scheme").unwrap().contains("867-5309"));

        // The engine's own values are exported as they are.
        let mut span = test_span();
        span.attributes = vec![
            KeyValue::new("http.request.method", "_OTHER"),
            KeyValue::new("http.route", "/users/{id}"),
            KeyValue::new("error.type", "503"),
            KeyValue::new(KEPT_ATTRIBUTE, "error"),
        ];
        let before = span.attributes.clone();
        mask_span(masker.as_ref(), &mut span);
        assert_eq!(span.attributes, before);
    }

    #[test]
    fn url_attributes_use_query_masking() {
        let m = BasicMasker::from_config(&TracingConfig::default());
        let mut attrs = vec![
            KeyValue::new("url.query", "session=s1&q=shoes"),
            KeyValue::new("url.full", "https://shop.example/search?q=shoes&token=t1"),
        ];
        mask_attributes(&m, &mut attrs);
        assert_eq!(attrs[0].value.as_str(), "session=[REDACTED]&q=shoes");
        assert_eq!(
            attrs[1].value.as_str(),
            "https://shop.example/search?q=shoes&token=[REDACTED]"
        );
    }
}
