//! The console exporter: one line per span on standard output (or any writer).

use std::fmt::Write as _;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanKind, Status};
use opentelemetry::{KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use super::{ExportError, Exporter};
use crate::config::ConsoleFormat;

/// Writes one line per span, human-readable ([`ConsoleFormat::Pretty`]) or
/// JSON ([`ConsoleFormat::Json`]), to standard output or a given writer.
#[derive(Clone)]
pub struct ConsoleExporter {
    format: ConsoleFormat,
    out: Arc<Mutex<Box<dyn Write + Send>>>,
    service: String,
}

impl std::fmt::Debug for ConsoleExporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleExporter")
            .field("format", &self.format)
            .finish()
    }
}

impl ConsoleExporter {
    /// A console exporter writing to standard output.
    pub fn stdout(format: ConsoleFormat) -> Self {
        Self::to_writer(format, std::io::stdout())
    }

    /// A console exporter writing to `writer`.
    pub fn to_writer(format: ConsoleFormat, writer: impl Write + Send + 'static) -> Self {
        ConsoleExporter {
            format,
            out: Arc::new(Mutex::new(Box::new(writer))),
            service: String::new(),
        }
    }

    /// Renders one span as this exporter would write it (without the newline).
    pub fn render(&self, span: &SpanData) -> String {
        match self.format {
            ConsoleFormat::Pretty => render_pretty(&self.service, span),
            ConsoleFormat::Json => render_json(&self.service, span),
        }
    }
}

#[async_trait::async_trait]
impl Exporter for ConsoleExporter {
    fn name(&self) -> &str {
        "console"
    }

    fn set_resource(&mut self, resource: &Resource) {
        if let Some(name) = resource.get(&opentelemetry::Key::from_static_str("service.name")) {
            self.service = name.to_string();
        }
    }

    async fn export(&self, batch: &[SpanData]) -> Result<(), ExportError> {
        let mut text = String::with_capacity(batch.len() * 256);
        for span in batch {
            text.push_str(&self.render(span));
            text.push('\n');
        }
        let mut out = self
            .out
            .lock()
            .map_err(|_| ExportError::permanent("console writer poisoned"))?;
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| ExportError::transient(format!("console: {e}")).with_source(e))
    }
}

fn kind_name(kind: &SpanKind) -> &'static str {
    match kind {
        SpanKind::Server => "SERVER",
        SpanKind::Client => "CLIENT",
        SpanKind::Producer => "PRODUCER",
        SpanKind::Consumer => "CONSUMER",
        SpanKind::Internal => "INTERNAL",
    }
}

fn duration_text(span: &SpanData) -> String {
    let d = span
        .end_time
        .duration_since(span.start_time)
        .unwrap_or_default();
    let micros = d.as_micros();
    if micros >= 1_000_000 {
        format!("{:.3}s", d.as_secs_f64())
    } else if micros >= 1000 {
        format!("{:.3}ms", micros as f64 / 1000.0)
    } else {
        format!("{micros}µs")
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{:?}", s.as_str()),
        other => other.to_string(),
    }
}

fn attrs_text(out: &mut String, attrs: &[KeyValue]) {
    for kv in attrs {
        let _ = write!(out, " {}={}", kv.key, value_text(&kv.value));
    }
}

fn render_pretty(service: &str, span: &SpanData) -> String {
    let mut out = String::with_capacity(256);
    let sc = &span.span_context;
    let _ = write!(
        out,
        "{} {} {} {:?} trace_id={} span_id={}",
        rfc3339(span.start_time),
        service,
        kind_name(&span.span_kind),
        span.name,
        sc.trace_id(),
        sc.span_id(),
    );
    if span.parent_span_id != opentelemetry::trace::SpanId::INVALID {
        let _ = write!(out, " parent_id={}", span.parent_span_id);
    }
    let _ = write!(out, " duration={}", duration_text(span));
    match &span.status {
        Status::Unset => {}
        Status::Ok => out.push_str(" status=OK"),
        Status::Error { description } => {
            let _ = write!(out, " status=ERROR({description:?})");
        }
    }
    attrs_text(&mut out, &span.attributes);
    for event in span.events.iter() {
        let _ = write!(out, " | event {:?}", event.name);
        attrs_text(&mut out, &event.attributes);
    }
    for link in span.links.iter() {
        let _ = write!(
            out,
            " | link trace_id={} span_id={}",
            link.span_context.trace_id(),
            link.span_context.span_id()
        );
    }
    // One line per span, whatever the values hold.
    out.replace(['\n', '\r'], "⏎")
}

fn json_value(v: &Value) -> serde_json::Value {
    use opentelemetry::Array;
    match v {
        Value::Bool(b) => (*b).into(),
        Value::I64(i) => (*i).into(),
        Value::F64(f) => {
            serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into)
        }
        Value::String(s) => s.as_str().into(),
        Value::Array(Array::Bool(a)) => a.clone().into(),
        Value::Array(Array::I64(a)) => a.clone().into(),
        Value::Array(Array::F64(a)) => a
            .iter()
            .map(|f| serde_json::Number::from_f64(*f).map_or(serde_json::Value::Null, Into::into))
            .collect(),
        Value::Array(Array::String(a)) => a
            .iter()
            .map(|s| serde_json::Value::from(s.as_str()))
            .collect(),
        other => other.to_string().into(),
    }
}

fn json_attrs(attrs: &[KeyValue]) -> serde_json::Value {
    attrs
        .iter()
        .map(|kv| (kv.key.to_string(), json_value(&kv.value)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

fn render_json(service: &str, span: &SpanData) -> String {
    let sc = &span.span_context;
    let parent = (span.parent_span_id != opentelemetry::trace::SpanId::INVALID)
        .then(|| span.parent_span_id.to_string());
    let (status, description) = match &span.status {
        Status::Unset => ("unset", None),
        Status::Ok => ("ok", None),
        Status::Error { description } => ("error", Some(description.to_string())),
    };
    serde_json::json!({
        "service": service,
        "name": span.name,
        "kind": kind_name(&span.span_kind),
        "trace_id": sc.trace_id().to_string(),
        "span_id": sc.span_id().to_string(),
        "parent_span_id": parent,
        "start": rfc3339(span.start_time),
        "duration_us": span.end_time.duration_since(span.start_time).unwrap_or_default().as_micros() as u64,
        "status": status,
        "status_description": description,
        "attributes": json_attrs(&span.attributes),
        "events": span.events.iter().map(|e| serde_json::json!({
            "name": e.name,
            "time": rfc3339(e.timestamp),
            "attributes": json_attrs(&e.attributes),
        })).collect::<Vec<_>>(),
        "links": span.links.iter().map(|l| serde_json::json!({
            "trace_id": l.span_context.trace_id().to_string(),
            "span_id": l.span_context.span_id().to_string(),
            "attributes": json_attrs(&l.attributes),
        })).collect::<Vec<_>>(),
    })
    .to_string()
}

/// Formats a time as RFC 3339 in UTC with milliseconds.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339(&mut out, t, false);
    out
}

/// Appends a time as RFC 3339 in UTC, with milliseconds or (`micros`)
/// microseconds.
pub(crate) fn write_rfc3339(out: &mut String, t: SystemTime, micros: bool) {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (proleptic Gregorian), after H. Hinnant's algorithm.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60,
    );
    let _ = if micros {
        write!(out, "{:06}Z", d.subsec_micros())
    } else {
        write!(out, "{:03}Z", d.subsec_millis())
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_millis(951_782_400_123)),
            "2000-02-29T00:00:00.123Z"
        );
        assert_eq!(
            rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_000_000)),
            "2026-11-18T11:06:40.000Z"
        );
    }
}
