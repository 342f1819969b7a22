//! The OTLP/HTTP receiver's decoding: `ExportTraceServiceRequest` and
//! `ExportLogsServiceRequest` (protobuf or JSON, decoded by
//! `opentelemetry-proto`) into the SDK's span data and the store's log
//! records, masked by the engine's masker exactly as the export pipeline
//! masks spans.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use faultline_engine::export::{mask_attributes, mask_span};
use faultline_engine::masking::Masker;
use faultline_engine::opentelemetry::trace::{
    Event, Link, SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use faultline_engine::opentelemetry::{Array, InstrumentationScope, KeyValue, Value};
use faultline_engine::opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanLinks};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as ProtoKeyValue, any_value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{Span, span, status};

use crate::store::{StoredLogRecord, ViewerStore};

/// The service name of a resource without one (OpenTelemetry's default).
const UNKNOWN_SERVICE: &str = "unknown_service";

/// What one request carried: items kept and items refused (malformed ids).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    pub(crate) accepted: usize,
    pub(crate) rejected: usize,
}

/// Stores the spans of `request`, masked.
pub(crate) fn store_traces(
    store: &ViewerStore,
    masker: Option<&Arc<dyn Masker>>,
    request: ExportTraceServiceRequest,
) -> Received {
    let mut received = Received::default();
    for resource_spans in request.resource_spans {
        let service = service_name(resource_spans.resource.as_ref());
        let service = mask_text(masker, &service);
        let mut spans = Vec::new();
        for scope_spans in resource_spans.scope_spans {
            let scope = InstrumentationScope::builder(
                scope_spans.scope.map(|s| s.name).unwrap_or_default(),
            )
            .build();
            for proto in scope_spans.spans {
                match span_data(proto, &scope) {
                    Some(mut data) => {
                        if let Some(m) = masker {
                            mask_span(m.as_ref(), &mut data);
                        }
                        spans.push(data);
                    }
                    None => received.rejected += 1,
                }
            }
        }
        received.accepted += spans.len();
        store.add_spans(&service, &spans);
    }
    received
}

/// Stores the log records of `request`, masked.
pub(crate) fn store_logs(
    store: &ViewerStore,
    masker: Option<&Arc<dyn Masker>>,
    request: ExportLogsServiceRequest,
) -> Received {
    let mut received = Received::default();
    for resource_logs in request.resource_logs {
        let service = service_name(resource_logs.resource.as_ref());
        let service = mask_text(masker, &service);
        for scope_logs in resource_logs.scope_logs {
            for proto in scope_logs.log_records {
                let nanos = if proto.time_unix_nano != 0 {
                    proto.time_unix_nano
                } else {
                    proto.observed_time_unix_nano
                };
                let body = proto.body.as_ref().map(any_text).unwrap_or_default();
                let mut record = StoredLogRecord::new(
                    time(nanos),
                    proto.severity_number,
                    mask_text(masker, &body),
                );
                record.severity_text = proto.severity_text;
                record.attributes = key_values(proto.attributes);
                if let Some(m) = masker {
                    mask_attributes(m.as_ref(), &mut record.attributes);
                }
                record.trace_id = trace_id(&proto.trace_id);
                record.span_id = span_id(&proto.span_id);
                record.service = service.clone();
                received.accepted += 1;
                store.add_log_record(record);
            }
        }
    }
    received
}

fn mask_text(masker: Option<&Arc<dyn Masker>>, text: &str) -> String {
    match masker {
        Some(m) => m.mask(text).into_owned(),
        None => text.to_owned(),
    }
}

fn service_name(resource: Option<&Resource>) -> String {
    resource
        .and_then(|r| r.attributes.iter().find(|kv| kv.key == "service.name"))
        .and_then(|kv| kv.value.as_ref())
        .map(any_text)
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| UNKNOWN_SERVICE.to_owned())
}

fn time(nanos: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(nanos)
}

fn trace_id(bytes: &[u8]) -> Option<TraceId> {
    <[u8; 16]>::try_from(bytes)
        .ok()
        .map(TraceId::from_bytes)
        .filter(|t| *t != TraceId::INVALID)
}

fn span_id(bytes: &[u8]) -> Option<SpanId> {
    <[u8; 8]>::try_from(bytes)
        .ok()
        .map(SpanId::from_bytes)
        .filter(|s| *s != SpanId::INVALID)
}

fn context(trace: &[u8], span: &[u8]) -> Option<SpanContext> {
    Some(SpanContext::new(
        trace_id(trace)?,
        span_id(span)?,
        TraceFlags::SAMPLED,
        true,
        TraceState::NONE,
    ))
}

/// A protobuf span as the SDK's span data; `None` when its ids are malformed.
fn span_data(proto: Span, scope: &InstrumentationScope) -> Option<SpanData> {
    let span_context = context(&proto.trace_id, &proto.span_id)?;
    let mut events = SpanEvents::default();
    events.dropped_count = proto.dropped_events_count;
    events.events = proto
        .events
        .into_iter()
        .map(|e| {
            Event::new(
                e.name,
                time(e.time_unix_nano),
                key_values(e.attributes),
                e.dropped_attributes_count,
            )
        })
        .collect();
    let mut links = SpanLinks::default();
    links.dropped_count = proto.dropped_links_count;
    links.links = proto
        .links
        .into_iter()
        .filter_map(|l| {
            Some(Link::new(
                context(&l.trace_id, &l.span_id)?,
                key_values(l.attributes),
                l.dropped_attributes_count,
            ))
        })
        .collect();
    let status = match proto.status {
        Some(s) if s.code == status::StatusCode::Error as i32 => Status::error(s.message),
        Some(s) if s.code == status::StatusCode::Ok as i32 => Status::Ok,
        _ => Status::Unset,
    };
    Some(SpanData {
        span_context,
        parent_span_id: span_id(&proto.parent_span_id).unwrap_or(SpanId::INVALID),
        parent_span_is_remote: false,
        span_kind: match span::SpanKind::try_from(proto.kind) {
            Ok(span::SpanKind::Server) => SpanKind::Server,
            Ok(span::SpanKind::Client) => SpanKind::Client,
            Ok(span::SpanKind::Producer) => SpanKind::Producer,
            Ok(span::SpanKind::Consumer) => SpanKind::Consumer,
            _ => SpanKind::Internal,
        },
        name: Cow::Owned(proto.name),
        start_time: time(proto.start_time_unix_nano),
        end_time: time(proto.end_time_unix_nano.max(proto.start_time_unix_nano)),
        attributes: key_values(proto.attributes),
        dropped_attributes_count: proto.dropped_attributes_count,
        events,
        links,
        status,
        instrumentation_scope: scope.clone(),
    })
}

fn key_values(list: Vec<ProtoKeyValue>) -> Vec<KeyValue> {
    list.into_iter()
        .map(|kv| {
            let value = kv.value.map(any_value).unwrap_or(Value::String("".into()));
            KeyValue::new(kv.key, value)
        })
        .collect()
}

/// An OTLP value as an OpenTelemetry one: scalars as they are, arrays of one
/// scalar type as arrays, anything else (maps, mixed arrays, bytes) as text.
fn any_value(v: AnyValue) -> Value {
    match v.value {
        Some(any_value::Value::BoolValue(b)) => Value::Bool(b),
        Some(any_value::Value::IntValue(i)) => Value::I64(i),
        Some(any_value::Value::DoubleValue(f)) => Value::F64(f),
        Some(any_value::Value::StringValue(s)) => Value::String(s.into()),
        Some(any_value::Value::ArrayValue(a)) => {
            let items: Vec<Value> = a.values.into_iter().map(any_value).collect();
            homogeneous_array(&items)
                .unwrap_or_else(|| Value::String(text_of_values(&items).into()))
        }
        other => Value::String(any_text(&AnyValue { value: other }).into()),
    }
}

fn homogeneous_array(items: &[Value]) -> Option<Value> {
    macro_rules! all {
        ($variant:ident, $array:ident) => {
            items
                .iter()
                .map(|v| match v {
                    Value::$variant(x) => Some(x.clone()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(|xs| Value::Array(Array::$array(xs)))
        };
    }
    all!(String, String)
        .or_else(|| all!(Bool, Bool))
        .or_else(|| all!(I64, I64))
        .or_else(|| all!(F64, F64))
}

fn text_of_values(items: &[Value]) -> String {
    let parts: Vec<String> = items.iter().map(|v| v.to_string()).collect();
    format!("[{}]", parts.join(", "))
}

/// An OTLP value as text (a log body, a service name).
fn any_text(v: &AnyValue) -> String {
    match &v.value {
        None => String::new(),
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::DoubleValue(f)) => f.to_string(),
        Some(any_value::Value::BytesValue(b)) => b.iter().map(|x| format!("{x:02x}")).collect(),
        Some(any_value::Value::ArrayValue(a)) => {
            let parts: Vec<String> = a.values.iter().map(any_text).collect();
            format!("[{}]", parts.join(", "))
        }
        Some(any_value::Value::KvlistValue(kv)) => {
            let parts: Vec<String> = kv
                .values
                .iter()
                .map(|kv| {
                    let value = kv.value.as_ref().map(any_text).unwrap_or_default();
                    format!("{}={}", kv.key, value)
                })
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        Some(_) => String::new(),
    }
}
