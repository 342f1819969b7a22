//! OpenTelemetry spans and resources to Jaeger spans and processes,
//! following the OpenTelemetry specification's Jaeger mapping
//! (`specification/trace/sdk_exporters/jaeger.md`) and its rules for
//! non-OTLP formats (`specification/common/mapping-to-non-otlp.md`).

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{SpanId, SpanKind, Status, TraceId};
use opentelemetry::{Array, KeyValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SpanData;

use crate::model::{Log, Process, RefType, Span, SpanRef, Tag, TagValue};

/// Process tag keys that are never copied from the resource (they become
/// `Process.serviceName`).
const SERVICE_NAME: &str = "service.name";

/// The service name used when the resource has none.
pub(crate) const UNKNOWN_SERVICE: &str = "unknown_service";

/// The Jaeger process of `resource`: `serviceName` from `service.name`, every
/// other attribute as a process tag with its type kept.
pub(crate) fn process(resource: &Resource, fallback_service_name: &str) -> Process {
    let mut service_name = None;
    let mut tags = Vec::with_capacity(resource.len());
    for (key, value) in resource.iter() {
        if key.as_str() == SERVICE_NAME {
            service_name = Some(value.as_str().into_owned());
        } else {
            tags.push(Tag {
                key: Cow::Owned(key.as_str().to_owned()),
                value: owned_value(tag_value(value)),
            });
        }
    }
    Process {
        service_name: service_name
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| fallback_service_name.to_owned()),
        tags,
    }
}

fn owned_value(value: TagValue<'_>) -> TagValue<'static> {
    match value {
        TagValue::Str(s) => TagValue::Str(Cow::Owned(s.into_owned())),
        TagValue::Double(d) => TagValue::Double(d),
        TagValue::Bool(b) => TagValue::Bool(b),
        TagValue::Long(n) => TagValue::Long(n),
    }
}

/// `(traceIdHigh, traceIdLow)`: the big-endian halves reinterpreted as i64.
pub(crate) fn trace_id_halves(id: TraceId) -> (i64, i64) {
    let b = id.to_bytes();
    let mut high = [0u8; 8];
    let mut low = [0u8; 8];
    high.copy_from_slice(&b[..8]);
    low.copy_from_slice(&b[8..]);
    (i64::from_be_bytes(high), i64::from_be_bytes(low))
}

/// A span id as i64 (big-endian, reinterpreted).
pub(crate) fn span_id(id: SpanId) -> i64 {
    i64::from_be_bytes(id.to_bytes())
}

/// Microseconds since the epoch (0 for a time before it).
fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A typed tag value: strings, booleans, i64 (`LONG`) and f64 (`DOUBLE`)
/// keep their type; arrays become JSON text.
fn tag_value(value: &Value) -> TagValue<'_> {
    match value {
        Value::String(s) => TagValue::Str(Cow::Borrowed(s.as_str())),
        Value::Bool(b) => TagValue::Bool(*b),
        Value::I64(n) => TagValue::Long(*n),
        Value::F64(d) => TagValue::Double(*d),
        Value::Array(array) => TagValue::Str(Cow::Owned(array_json(array))),
        other => TagValue::Str(Cow::Owned(other.to_string())),
    }
}

/// An array as a JSON list (`["a","b"]`, `[1,2]`, `[true]`, `[1.5]`); a
/// non-finite float, which JSON cannot hold, becomes `null`.
fn array_json(array: &Array) -> String {
    let json = match array {
        Array::Bool(v) => serde_json::to_string(v),
        Array::I64(v) => serde_json::to_string(v),
        Array::F64(v) => serde_json::to_string(v),
        Array::String(v) => {
            serde_json::to_string(&v.iter().map(|s| s.as_str()).collect::<Vec<_>>())
        }
        other => return serde_json::Value::String(other.to_string()).to_string(),
    };
    json.unwrap_or_else(|_| "[]".to_owned())
}

fn attribute_tags<'a>(attributes: &'a [KeyValue], out: &mut Vec<Tag<'a>>, skip: Option<&str>) {
    for kv in attributes {
        let key = kv.key.as_str();
        if skip == Some(key) {
            continue;
        }
        out.push(Tag {
            key: Cow::Borrowed(key),
            value: tag_value(&kv.value),
        });
    }
}

fn count_tag(key: &'static str, count: u32) -> Option<Tag<'static>> {
    (count > 0).then(|| Tag::new(key, TagValue::Long(i64::from(count))))
}

/// The Jaeger span of `span`.
///
/// * ids: trace id as `traceIdHigh`/`traceIdLow`, span and parent ids as
///   i64 (parent 0 for a root); the parent is also the first reference
///   (`CHILD_OF`), links follow as `FOLLOWS_FROM`;
/// * `flags`: 1 when sampled;
/// * times in microseconds;
/// * tags: the attributes (types kept, arrays as JSON), then
///   `otel.scope.name`/`otel.scope.version`, `span.kind` (not for
///   internal spans), `otel.status_code` (`OK`/`ERROR`, none when unset),
///   `otel.status_description` and `error=true` on error (the error tag
///   replaces an attribute named `error`), and
///   `otel.dropped_{attributes,events,links}_count` when not zero;
/// * logs: each event, with its name as the `event` field (an attribute
///   named `event` takes precedence) and
///   `otel.dropped_attributes_count`; then, for each link with attributes,
///   a log `event=link` at the span's start with `trace_id`, `span_id` and
///   the link's attributes (references cannot carry attributes).
pub(crate) fn span(span: &SpanData) -> Span<'_> {
    let cx = &span.span_context;
    let (trace_id_high, trace_id_low) = trace_id_halves(cx.trace_id());
    let start_time = micros(span.start_time);
    let end_time = micros(span.end_time);
    let is_error = matches!(span.status, Status::Error { .. });

    let mut references = Vec::with_capacity(1 + span.links.links.len());
    let parent_span_id = if span.parent_span_id != SpanId::INVALID {
        let parent = span_id(span.parent_span_id);
        references.push(SpanRef {
            ref_type: RefType::ChildOf,
            trace_id_low,
            trace_id_high,
            span_id: parent,
        });
        parent
    } else {
        0
    };
    for link in span.links.iter() {
        let (high, low) = trace_id_halves(link.span_context.trace_id());
        references.push(SpanRef {
            ref_type: RefType::FollowsFrom,
            trace_id_low: low,
            trace_id_high: high,
            span_id: span_id(link.span_context.span_id()),
        });
    }

    let mut tags = Vec::with_capacity(span.attributes.len() + 8);
    attribute_tags(&span.attributes, &mut tags, is_error.then_some("error"));
    let attribute_count = tags.len();
    let scope = &span.instrumentation_scope;
    if !scope.name().is_empty() {
        tags.push(Tag::str("otel.scope.name", scope.name()));
    }
    if let Some(version) = scope.version() {
        tags.push(Tag::str("otel.scope.version", version));
    }
    let kind = match span.span_kind {
        SpanKind::Server => Some("server"),
        SpanKind::Client => Some("client"),
        SpanKind::Producer => Some("producer"),
        SpanKind::Consumer => Some("consumer"),
        SpanKind::Internal => None,
    };
    if let Some(kind) = kind {
        tags.push(Tag::str("span.kind", kind));
    }
    match &span.status {
        Status::Unset => {}
        Status::Ok => tags.push(Tag::str("otel.status_code", "OK")),
        Status::Error { description } => {
            tags.push(Tag::str("otel.status_code", "ERROR"));
            if !description.is_empty() {
                tags.push(Tag::str("otel.status_description", description.as_ref()));
            }
            tags.push(Tag::new("error", TagValue::Bool(true)));
        }
    }
    tags.extend(count_tag(
        "otel.dropped_attributes_count",
        span.dropped_attributes_count,
    ));
    tags.extend(count_tag(
        "otel.dropped_events_count",
        span.events.dropped_count,
    ));
    tags.extend(count_tag(
        "otel.dropped_links_count",
        span.links.dropped_count,
    ));

    let mut logs = Vec::with_capacity(span.events.len());
    for event in span.events.iter() {
        let mut fields = Vec::with_capacity(event.attributes.len() + 2);
        if !event.attributes.iter().any(|kv| kv.key.as_str() == "event") {
            fields.push(Tag::str("event", event.name.as_ref()));
        }
        attribute_tags(&event.attributes, &mut fields, None);
        fields.extend(count_tag(
            "otel.dropped_attributes_count",
            event.dropped_attributes_count,
        ));
        logs.push(Log {
            timestamp: micros(event.timestamp),
            fields,
        });
    }
    for link in span
        .links
        .iter()
        .filter(|l| !l.attributes.is_empty() || l.dropped_attributes_count > 0)
    {
        let mut fields = Vec::with_capacity(link.attributes.len() + 4);
        fields.push(Tag::str("event", "link"));
        fields.push(Tag::str(
            "trace_id",
            link.span_context.trace_id().to_string(),
        ));
        fields.push(Tag::str("span_id", link.span_context.span_id().to_string()));
        attribute_tags(&link.attributes, &mut fields, None);
        fields.extend(count_tag(
            "otel.dropped_attributes_count",
            link.dropped_attributes_count,
        ));
        logs.push(Log {
            timestamp: start_time,
            fields,
        });
    }

    Span {
        trace_id_low,
        trace_id_high,
        span_id: span_id(cx.span_id()),
        parent_span_id,
        operation_name: Cow::Borrowed(span.name.as_ref()),
        references,
        flags: i32::from(cx.trace_flags().is_sampled()),
        start_time,
        duration: end_time.saturating_sub(start_time).max(0),
        tags,
        attribute_tags: attribute_count,
        logs,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::InstrumentationScope;
    use opentelemetry::trace::{Event, Link, SpanContext, TraceFlags, TraceState};
    use opentelemetry_sdk::trace::{SpanEvents, SpanLinks};
    use std::time::Duration;

    fn ctx(trace: u128, span: u64) -> SpanContext {
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::SAMPLED,
            false,
            TraceState::default(),
        )
    }

    pub(crate) fn span_data() -> SpanData {
        let start = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let mut events = SpanEvents::default();
        events.events.push(Event::new(
            "retry",
            start + Duration::from_micros(10),
            vec![KeyValue::new("attempt", 2)],
            1,
        ));
        events.events.push(Event::new(
            "ignored-name",
            start,
            vec![KeyValue::new("event", "custom")],
            0,
        ));
        let mut links = SpanLinks::default();
        links.links.push(Link::new(ctx(5, 6), vec![], 0));
        links
            .links
            .push(Link::new(ctx(7, 8), vec![KeyValue::new("why", "batch")], 0));
        SpanData {
            span_context: ctx(0xff00_0000_0000_0000_0000_0000_0000_0001, 0x10),
            parent_span_id: SpanId::from(0x20),
            parent_span_is_remote: false,
            span_kind: SpanKind::Client,
            name: "GET /x".into(),
            start_time: start,
            end_time: start + Duration::from_micros(1500),
            attributes: vec![
                KeyValue::new("s", "v"),
                KeyValue::new("i", 7),
                KeyValue::new("f", 1.5),
                KeyValue::new("b", true),
                KeyValue::new("error", "user's"),
                KeyValue::new(
                    "arr",
                    Value::Array(Array::String(vec!["a".into(), "b\"".into()])),
                ),
            ],
            dropped_attributes_count: 3,
            events,
            links,
            status: Status::error("boom"),
            instrumentation_scope: InstrumentationScope::builder("lib")
                .with_version("1.2")
                .build(),
        }
    }

    fn find<'a>(tags: &'a [Tag<'_>], key: &str) -> Option<&'a TagValue<'a>> {
        tags.iter().find(|t| t.key == key).map(|t| &t.value)
    }

    #[test]
    fn ids_times_and_references() {
        let data = span_data();
        let s = span(&data);
        assert_eq!(
            s.trace_id_high,
            i64::from_be_bytes([0xff, 0, 0, 0, 0, 0, 0, 0])
        );
        assert_eq!(s.trace_id_low, 1);
        assert_eq!((s.span_id, s.parent_span_id), (0x10, 0x20));
        assert_eq!(s.flags, 1);
        assert_eq!(s.start_time, 1_700_000_000_123_456);
        assert_eq!(s.duration, 1500);
        assert_eq!(s.references.len(), 3);
        assert_eq!(s.references[0].ref_type, RefType::ChildOf);
        assert_eq!(s.references[0].span_id, 0x20);
        assert_eq!(s.references[1].ref_type, RefType::FollowsFrom);
        assert_eq!(
            (s.references[1].trace_id_low, s.references[1].span_id),
            (5, 6)
        );
        assert_eq!(
            (s.references[2].trace_id_low, s.references[2].span_id),
            (7, 8)
        );
    }

    #[test]
    fn tags_keep_types_and_carry_kind_status_scope() {
        let data = span_data();
        let s = span(&data);
        assert_eq!(find(&s.tags, "s"), Some(&TagValue::Str("v".into())));
        assert_eq!(find(&s.tags, "i"), Some(&TagValue::Long(7)));
        assert_eq!(find(&s.tags, "f"), Some(&TagValue::Double(1.5)));
        assert_eq!(find(&s.tags, "b"), Some(&TagValue::Bool(true)));
        assert_eq!(
            find(&s.tags, "arr"),
            Some(&TagValue::Str(r#"["a","b\""]"#.into()))
        );
        assert_eq!(
            find(&s.tags, "span.kind"),
            Some(&TagValue::Str("client".into()))
        );
        assert_eq!(
            find(&s.tags, "otel.status_code"),
            Some(&TagValue::Str("ERROR".into()))
        );
        assert_eq!(
            find(&s.tags, "otel.status_description"),
            Some(&TagValue::Str("boom".into()))
        );
        assert_eq!(s.tags.iter().filter(|t| t.key == "error").count(), 1);
        assert_eq!(find(&s.tags, "error"), Some(&TagValue::Bool(true)));
        assert_eq!(
            find(&s.tags, "otel.scope.name"),
            Some(&TagValue::Str("lib".into()))
        );
        assert_eq!(
            find(&s.tags, "otel.scope.version"),
            Some(&TagValue::Str("1.2".into()))
        );
        assert_eq!(
            find(&s.tags, "otel.dropped_attributes_count"),
            Some(&TagValue::Long(3))
        );
        assert_eq!(s.attribute_tags, 5);
    }

    #[test]
    fn events_and_attributed_links_become_logs() {
        let data = span_data();
        let s = span(&data);
        assert_eq!(s.logs.len(), 3);
        assert_eq!(s.logs[0].timestamp, 1_700_000_000_123_466);
        assert_eq!(
            find(&s.logs[0].fields, "event"),
            Some(&TagValue::Str("retry".into()))
        );
        assert_eq!(find(&s.logs[0].fields, "attempt"), Some(&TagValue::Long(2)));
        assert_eq!(
            find(&s.logs[0].fields, "otel.dropped_attributes_count"),
            Some(&TagValue::Long(1))
        );
        // An `event` attribute wins over the event's name.
        assert_eq!(s.logs[1].fields.len(), 1);
        assert_eq!(
            find(&s.logs[1].fields, "event"),
            Some(&TagValue::Str("custom".into()))
        );
        // Only the link with attributes gets a log.
        assert_eq!(
            find(&s.logs[2].fields, "event"),
            Some(&TagValue::Str("link".into()))
        );
        assert_eq!(
            find(&s.logs[2].fields, "why"),
            Some(&TagValue::Str("batch".into()))
        );
        assert_eq!(
            find(&s.logs[2].fields, "span_id"),
            Some(&TagValue::Str("0000000000000008".into()))
        );
        assert_eq!(s.logs[2].timestamp, s.start_time);
    }

    #[test]
    fn roots_internal_spans_and_unset_status_add_nothing() {
        let mut data = span_data();
        data.parent_span_id = SpanId::INVALID;
        data.span_kind = SpanKind::Internal;
        data.status = Status::Unset;
        data.links = SpanLinks::default();
        data.span_context = SpanContext::new(
            TraceId::from(1),
            SpanId::from(2),
            TraceFlags::default(),
            false,
            TraceState::default(),
        );
        let s = span(&data);
        assert_eq!(s.parent_span_id, 0);
        assert!(s.references.is_empty());
        assert_eq!(s.flags, 0);
        assert!(find(&s.tags, "span.kind").is_none());
        assert!(find(&s.tags, "otel.status_code").is_none());
        assert_eq!(
            find(&s.tags, "error"),
            Some(&TagValue::Str("user's".into()))
        );
    }

    #[test]
    fn process_from_resource() {
        let resource = Resource::builder_empty()
            .with_attributes([
                KeyValue::new("service.name", "checkout"),
                KeyValue::new("host.name", "h1"),
                KeyValue::new("process.pid", 42),
            ])
            .build();
        let p = process(&resource, "fallback");
        assert_eq!(p.service_name, "checkout");
        assert_eq!(
            find(&p.tags, "host.name"),
            Some(&TagValue::Str("h1".into()))
        );
        assert_eq!(find(&p.tags, "process.pid"), Some(&TagValue::Long(42)));
        assert!(find(&p.tags, "service.name").is_none());
        let empty = process(&Resource::builder_empty().build(), "fallback");
        assert_eq!(empty.service_name, "fallback");
    }
}
