//! Shipping finished spans: the [`Exporter`] plugin point, the built-in
//! exporters, and the masking step every span passes before any exporter
//! sees it.

mod console;
pub(crate) mod keep;
mod memory;
pub(crate) mod pipeline;

use std::borrow::Cow;
use std::fmt::Debug;
use std::time::Duration;

use opentelemetry::{Array, Key, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use crate::masking::{Masker, REDACTED};

pub use console::ConsoleExporter;
pub use keep::{ErrorKeepingStats, KEPT_ATTRIBUTE};
pub use memory::InMemoryExporter;
pub use pipeline::{ExportStats, ExporterStats, LimitStats};

/// Why an export failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExportError {
    /// A failure that may pass (connection refused, 503, timeout): worth a retry.
    #[error("export failed, may succeed later: {0}")]
    Transient(String),
    /// A failure that will not pass by retrying (rejected data, bad credentials).
    #[error("export rejected: {0}")]
    Permanent(String),
    /// The attempt took longer than allowed.
    #[error("export timed out after {0:?}")]
    Timeout(Duration),
    /// The exporter was shut down.
    #[error("exporter is shut down")]
    ShutDown,
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

/// Cuts every string value of `span` (attributes, event and link
/// attributes, string arrays, the status description) longer than `limit`
/// bytes at a character boundary, marked with a trailing `…`; returns how
/// many were cut.
pub(crate) fn truncate_span_values(span: &mut SpanData, limit: usize) -> u64 {
    let mut cut = truncate_values(&mut span.attributes, limit);
    for event in span.events.events.iter_mut() {
        cut += truncate_values(&mut event.attributes, limit);
    }
    for link in span.links.links.iter_mut() {
        cut += truncate_values(&mut link.attributes, limit);
    }
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
/// it fits.
fn truncated(text: &str, limit: usize) -> Option<String> {
    const MARK: &str = "…";
    if text.len() <= limit {
        return None;
    }
    let mut end = limit.saturating_sub(MARK.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end + MARK.len());
    out.push_str(&text[..end]);
    out.push_str(MARK);
    Some(out)
}

/// Attributes whose values faultline itself sets from a closed set or a
/// route template, never from request data: masking them could only cost.
fn is_enumerated(key: &str) -> bool {
    matches!(
        key,
        "http.request.method"
            | "http.route"
            | "url.scheme"
            | "network.protocol.version"
            | "error.type"
            | KEPT_ATTRIBUTE
            | crate::exception::keys::SEVERITY
    )
}

/// Masks attribute values in place, as [`mask_span`] does.
pub fn mask_attributes(masker: &dyn Masker, attributes: &mut [KeyValue]) {
    mask_attributes_with(masker, attributes, &mut |key| {
        masker.is_secret_key(key.as_str())
    });
}

fn mask_attributes_with(
    masker: &dyn Masker,
    attributes: &mut [KeyValue],
    is_secret: &mut dyn FnMut(&Key) -> bool,
) {
    for kv in attributes.iter_mut() {
        if matches!(&kv.value, Value::String(_)) && is_enumerated(kv.key.as_str()) {
            continue;
        }
        if is_secret(&kv.key) {
            if !matches!(&kv.value, Value::String(s) if s.as_str() == REDACTED) {
                kv.value = Value::String(StringValue::from(REDACTED));
            }
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

/// Masks a URL query string parameter by parameter: the value of a secret
/// key becomes [`REDACTED`]; other values are percent-decoded, masked, and
/// encoded again when masking changed them. Borrowed when nothing changes.
pub fn mask_query<'a>(masker: &dyn Masker, query: &'a str) -> Cow<'a, str> {
    let mut out: Option<String> = None;
    let mut pos = 0;
    for (i, pair) in query.split('&').enumerate() {
        let start = pos;
        pos += pair.len() + 1;
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded_key = decode_component(key);
        let replacement: Option<String> = if masker.is_secret_key(&decoded_key) && !value.is_empty()
        {
            (value != REDACTED).then(|| REDACTED.to_owned())
        } else {
            let decoded = decode_component(value);
            match masker.mask_value(&decoded_key, &decoded) {
                Cow::Owned(masked) => Some(encode_component(&masked)),
                Cow::Borrowed(_) => None,
            }
        };
        match (replacement, &mut out) {
            (Some(new_value), out) => {
                let buf = out.get_or_insert_with(|| query[..start].to_owned());
                if i > 0 && !buf.is_empty() && !buf.ends_with('&') {
                    buf.push('&');
                }
                buf.push_str(key);
                buf.push('=');
                buf.push_str(&new_value);
            }
            (None, Some(buf)) => {
                if i > 0 {
                    buf.push('&');
                }
                buf.push_str(pair);
            }
            (None, None) => {}
        }
    }
    match out {
        Some(s) => Cow::Owned(s),
        None => Cow::Borrowed(query),
    }
}

fn decode_component(text: &str) -> Cow<'_, str> {
    if !text.contains(['%', '+']) {
        return Cow::Borrowed(text);
    }
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(b[i + 1]), hex(b[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &c in text.as_bytes() {
        if c.is_ascii_alphanumeric() || b"-._~*[]@".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TracingConfig;
    use crate::masking::BasicMasker;

    #[test]
    fn query_strings_are_masked_per_parameter() {
        let config = TracingConfig::builder()
            .pii_pattern("acct", r"ACCT-\d+")
            .build()
            .unwrap();
        let m = BasicMasker::from_config(&config);
        assert!(matches!(
            mask_query(&m, "page=2&sort=asc"),
            Cow::Borrowed(_)
        ));
        assert_eq!(
            mask_query(&m, "token=abc&page=2"),
            "token=[REDACTED]&page=2"
        );
        assert_eq!(
            mask_query(&m, "page=2&api_key=k1&x=1"),
            "page=2&api_key=[REDACTED]&x=1"
        );
        assert_eq!(mask_query(&m, "a=ACCT-12&b=ok"), "a=[REDACTED]&b=ok");
        assert_eq!(mask_query(&m, "a=ACCT%2D12"), "a=[REDACTED]");
        assert_eq!(mask_query(&m, "password="), "password=");
        assert_eq!(mask_query(&m, "flag&token=t"), "flag&token=[REDACTED]");
        assert_eq!(mask_query(&m, ""), "");
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
