//! Shipping finished spans: the [`Exporter`] plugin point, the built-in
//! exporters, and the masking step every span passes before any exporter
//! sees it.

mod console;
mod memory;
pub(crate) mod pipeline;

use std::borrow::Cow;
use std::fmt::Debug;
use std::time::Duration;

use opentelemetry::{Array, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use crate::masking::{Masker, REDACTED};

pub use console::ConsoleExporter;
pub use memory::InMemoryExporter;
pub use pipeline::ExportStats;

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
/// a secret key's value of any type becomes [`REDACTED`]), event names and
/// attributes, link attributes and the status description. Integers of ten
/// digits or more are masked as their decimal text (a card or phone number
/// stored as a number), and become strings only when that changes them.
pub fn mask_span(masker: &dyn Masker, span: &mut SpanData) {
    if let Cow::Owned(name) = masker.mask(&span.name) {
        span.name = Cow::Owned(name);
    }
    mask_attributes(masker, &mut span.attributes);
    for event in span.events.events.iter_mut() {
        if let Cow::Owned(name) = masker.mask(&event.name) {
            event.name = Cow::Owned(name);
        }
        mask_attributes(masker, &mut event.attributes);
    }
    for link in span.links.links.iter_mut() {
        mask_attributes(masker, &mut link.attributes);
    }
    if let opentelemetry::trace::Status::Error { description } = &mut span.status
        && let Cow::Owned(masked) = masker.mask(description)
    {
        *description = Cow::Owned(masked);
    }
}

/// Masks attribute values in place, as [`mask_span`] does.
pub fn mask_attributes(masker: &dyn Masker, attributes: &mut [KeyValue]) {
    for kv in attributes.iter_mut() {
        let key = kv.key.as_str();
        if masker.is_secret_key(key) {
            if !matches!(&kv.value, Value::String(s) if s.as_str() == REDACTED) {
                kv.value = Value::String(StringValue::from(REDACTED));
            }
            continue;
        }
        match &mut kv.value {
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
