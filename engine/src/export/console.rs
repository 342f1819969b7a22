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

    use opentelemetry::Array;
    use opentelemetry::trace::{Event, Link, SpanContext, SpanId, TraceFlags, TraceId};
    use std::borrow::Cow;

    fn context(trace: u128, span: u64) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            false,
            Default::default(),
        )
    }

    /// A client span with a parent, an error, typed attributes, an event
    /// and a link, lasting `micros`.
    fn span(kind: SpanKind, micros: u64) -> SpanData {
        let start = UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let mut events = opentelemetry_sdk::trace::SpanEvents::default();
        events.events.push(Event::new(
            "retry",
            start,
            vec![KeyValue::new("attempt", 2i64)],
            0,
        ));
        let mut links = opentelemetry_sdk::trace::SpanLinks::default();
        links.links.push(Link::new(
            context(7, 8),
            vec![KeyValue::new("why", "batch")],
            0,
        ));
        SpanData {
            span_context: context(0xabc, 0xdef),
            parent_span_id: SpanId::from(0x123),
            parent_span_is_remote: false,
            span_kind: kind,
            name: Cow::Borrowed("GET payments"),
            start_time: start,
            end_time: start + Duration::from_micros(micros),
            attributes: vec![
                KeyValue::new("note", "two\nlines"),
                KeyValue::new("ids", Value::Array(Array::I64(vec![1, 2]))),
                KeyValue::new("flags", Value::Array(Array::Bool(vec![true]))),
                KeyValue::new("weights", Value::Array(Array::F64(vec![0.5, f64::NAN]))),
                KeyValue::new("names", Value::Array(Array::String(vec!["a".into()]))),
                KeyValue::new("ratio", f64::INFINITY),
                KeyValue::new("ok", false),
            ],
            dropped_attributes_count: 0,
            events,
            links,
            status: Status::error("declined"),
            instrumentation_scope: Default::default(),
        }
    }

    #[test]
    fn pretty_lines_carry_ids_parent_duration_status_attributes_events_and_links_on_one_line() {
        let exporter = ConsoleExporter::to_writer(ConsoleFormat::Pretty, std::io::sink());
        let line = exporter.render(&span(SpanKind::Client, 1_500));
        assert!(!line.contains('\n'), "{line}");
        for part in [
            "2026-11-18T11:06:40.000Z  CLIENT \"GET payments\"",
            "trace_id=00000000000000000000000000000abc span_id=0000000000000def",
            "parent_id=0000000000000123",
            "duration=1.500ms",
            "status=ERROR(\"declined\")",
            "note=\"two\\nlines\"",
            "ids=[1,2]",
            "| event \"retry\" attempt=2",
            "| link trace_id=00000000000000000000000000000007 span_id=0000000000000008",
        ] {
            assert!(line.contains(part), "{part} missing from {line}");
        }
        for (kind, micros, name, duration) in [
            (SpanKind::Server, 12, "SERVER", "duration=12µs"),
            (SpanKind::Producer, 2_500_000, "PRODUCER", "duration=2.500s"),
            (SpanKind::Consumer, 0, "CONSUMER", "duration=0µs"),
            (SpanKind::Internal, 999, "INTERNAL", "duration=999µs"),
        ] {
            let line = exporter.render(&span(kind, micros));
            assert!(line.contains(name) && line.contains(duration), "{line}");
        }
        let mut ok = span(SpanKind::Server, 1);
        ok.status = Status::Ok;
        ok.parent_span_id = SpanId::INVALID;
        let line = exporter.render(&ok);
        assert!(
            line.contains("status=OK") && !line.contains("parent_id="),
            "{line}"
        );
        ok.status = Status::Unset;
        assert!(!exporter.render(&ok).contains("status="));
    }

    #[test]
    fn json_lines_are_objects_with_typed_attributes() {
        let exporter = ConsoleExporter::to_writer(ConsoleFormat::Json, std::io::sink());
        let v: serde_json::Value =
            serde_json::from_str(&exporter.render(&span(SpanKind::Client, 1_500))).expect("JSON");
        assert_eq!(v["kind"], "CLIENT");
        assert_eq!(v["parent_span_id"], "0000000000000123");
        assert_eq!(v["duration_us"], 1_500);
        assert_eq!(v["status"], "error");
        assert_eq!(v["status_description"], "declined");
        let attributes = &v["attributes"];
        assert_eq!(attributes["note"], "two\nlines");
        assert_eq!(attributes["ids"], serde_json::json!([1, 2]));
        assert_eq!(attributes["flags"], serde_json::json!([true]));
        assert_eq!(attributes["weights"], serde_json::json!([0.5, null]));
        assert_eq!(attributes["names"], serde_json::json!(["a"]));
        assert_eq!(attributes["ratio"], serde_json::Value::Null);
        assert_eq!(attributes["ok"], false);
        assert_eq!(v["events"][0]["name"], "retry");
        assert_eq!(v["events"][0]["attributes"]["attempt"], 2);
        assert_eq!(v["links"][0]["attributes"]["why"], "batch");
        let mut ok = span(SpanKind::Server, 1);
        ok.status = Status::Ok;
        ok.parent_span_id = SpanId::INVALID;
        let v: serde_json::Value = serde_json::from_str(&exporter.render(&ok)).expect("JSON");
        assert_eq!(v["status"], "ok");
        assert_eq!(v["parent_span_id"], serde_json::Value::Null);
    }

    #[tokio::test]
    async fn export_writes_a_line_a_span_with_the_resource_service() {
        let sink = crate::export::TestWriter::default();
        let mut exporter = ConsoleExporter::to_writer(ConsoleFormat::Json, sink.clone());
        assert!(format!("{exporter:?}").contains("Json"));
        exporter.set_resource(
            &Resource::builder_empty()
                .with_service_name("checkout")
                .build(),
        );
        exporter
            .export(&[span(SpanKind::Server, 1), span(SpanKind::Client, 2)])
            .await
            .expect("written");
        let text = sink.text();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| l["service"] == "checkout"), "{text}");
    }

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
