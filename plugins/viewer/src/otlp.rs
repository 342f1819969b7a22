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

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_engine::config::TracingConfig;
    use faultline_engine::masking::PiiMasker;
    use opentelemetry_proto::tonic::common::v1::{
        ArrayValue, InstrumentationScope as Scope, KeyValueList,
    };
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Status as ProtoStatus};
    use serde_json::{Value as Json, json};

    const TRACE: [u8; 16] = [0x4b; 16];
    const ROOT: [u8; 8] = [0x01; 8];
    const CHILD: [u8; 8] = [0x02; 8];

    fn text(s: &str) -> AnyValue {
        AnyValue {
            value: Some(any_value::Value::StringValue(s.into())),
        }
    }

    fn pair(key: impl Into<String>, value: Option<AnyValue>) -> ProtoKeyValue {
        ProtoKeyValue {
            key: key.into(),
            value,
            ..Default::default()
        }
    }

    fn kv(key: &str, value: any_value::Value) -> ProtoKeyValue {
        pair(key, Some(AnyValue { value: Some(value) }))
    }

    fn array(values: Vec<any_value::Value>) -> any_value::Value {
        any_value::Value::ArrayValue(ArrayValue {
            values: values
                .into_iter()
                .map(|v| AnyValue { value: Some(v) })
                .collect(),
        })
    }

    fn resource(service: Option<&str>) -> Option<Resource> {
        Some(Resource {
            attributes: service
                .map(|s| vec![pair("service.name", Some(text(s)))])
                .unwrap_or_default(),
            ..Default::default()
        })
    }

    fn span(span_id: [u8; 8], parent: &[u8], kind: span::SpanKind, name: &str) -> Span {
        Span {
            trace_id: TRACE.to_vec(),
            span_id: span_id.to_vec(),
            parent_span_id: parent.to_vec(),
            name: name.into(),
            kind: kind as i32,
            start_time_unix_nano: 1_000,
            end_time_unix_nano: 5_000,
            ..Default::default()
        }
    }

    fn traces(service: Option<&str>, spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: resource(service),
                scope_spans: vec![ScopeSpans {
                    scope: Some(Scope {
                        name: "checkout-lib".into(),
                        ..Default::default()
                    }),
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    fn masker() -> Arc<dyn Masker> {
        Arc::new(PiiMasker::from_config(&TracingConfig::default()))
    }

    fn stored(store: &ViewerStore) -> Json {
        store.trace_json(&hex(&TRACE)).expect("the trace is held")
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn attribute<'a>(list: &'a Json, key: &str) -> &'a Json {
        list.as_array()
            .and_then(|l| l.iter().find(|a| a["key"] == key))
            .map(|a| &a["value"])
            .unwrap_or_else(|| panic!("no attribute {key} in {list}"))
    }

    #[test]
    fn a_span_keeps_its_kind_parent_status_events_links_and_typed_attributes() {
        let store = ViewerStore::new(1 << 20);
        let mut root = span(ROOT, &[], span::SpanKind::Server, "GET /checkout");
        root.status = Some(ProtoStatus {
            code: status::StatusCode::Error as i32,
            message: "declined".into(),
        });
        root.attributes = vec![
            kv("http.response.status_code", any_value::Value::IntValue(402)),
            kv("retry", any_value::Value::BoolValue(true)),
            kv("ratio", any_value::Value::DoubleValue(0.5)),
            kv(
                "tags",
                array(vec![
                    any_value::Value::StringValue("a".into()),
                    any_value::Value::StringValue("b".into()),
                ]),
            ),
            kv(
                "flags",
                array(vec![
                    any_value::Value::BoolValue(true),
                    any_value::Value::BoolValue(false),
                ]),
            ),
            kv(
                "sizes",
                array(vec![
                    any_value::Value::IntValue(1),
                    any_value::Value::IntValue(2),
                ]),
            ),
            kv("weights", array(vec![any_value::Value::DoubleValue(1.5)])),
            kv(
                "mixed",
                array(vec![
                    any_value::Value::IntValue(1),
                    any_value::Value::StringValue("x".into()),
                ]),
            ),
            kv("raw", any_value::Value::BytesValue(vec![0xde, 0xad])),
            kv(
                "map",
                any_value::Value::KvlistValue(KeyValueList {
                    values: vec![pair("k", Some(text("v")))],
                }),
            ),
            pair("empty", None),
        ];
        root.events = vec![span::Event {
            time_unix_nano: 2_000,
            name: "payment declined".into(),
            attributes: vec![kv("amount", any_value::Value::IntValue(12))],
            dropped_attributes_count: 0,
        }];
        root.links = vec![
            span::Link {
                trace_id: [0x7a; 16].to_vec(),
                span_id: [0x03; 8].to_vec(),
                ..Default::default()
            },
            // A link with malformed ids is left out, the span kept.
            span::Link {
                trace_id: vec![1, 2],
                span_id: [0x03; 8].to_vec(),
                ..Default::default()
            },
        ];
        let mut child = span(CHILD, &ROOT, span::SpanKind::Client, "GET payments");
        child.status = Some(ProtoStatus {
            code: status::StatusCode::Ok as i32,
            message: String::new(),
        });
        // An end before the start is read as the start.
        child.end_time_unix_nano = 10;
        let producer = span([0x04; 8], &ROOT, span::SpanKind::Producer, "publish");
        let consumer = span([0x05; 8], &ROOT, span::SpanKind::Consumer, "consume");
        let internal = span([0x06; 8], &ROOT, span::SpanKind::Unspecified, "work");

        let received = store_traces(
            &store,
            None,
            traces(
                Some("checkout"),
                vec![root, child, producer, consumer, internal],
            ),
        );
        assert_eq!(
            received,
            Received {
                accepted: 5,
                rejected: 0
            }
        );

        let trace = stored(&store);
        let spans = trace["spans"].as_array().expect("spans");
        let by_name = |name: &str| {
            spans
                .iter()
                .find(|s| s["name"] == name)
                .expect(name)
                .clone()
        };
        let root = by_name("GET /checkout");
        assert_eq!(root["kind"], "server");
        assert_eq!(root["service"], "checkout");
        assert_eq!(root["scope"], "checkout-lib");
        assert_eq!(root["status"], "error");
        assert_eq!(root["status_message"], "declined");
        assert_eq!(root["parent_span_id"], Json::Null);
        let attrs = &root["attributes"];
        assert_eq!(attribute(attrs, "http.response.status_code"), &json!(402));
        assert_eq!(attribute(attrs, "retry"), &json!(true));
        assert_eq!(attribute(attrs, "ratio"), &json!(0.5));
        assert_eq!(attribute(attrs, "tags"), &json!(["a", "b"]));
        assert_eq!(attribute(attrs, "flags"), &json!([true, false]));
        assert_eq!(attribute(attrs, "sizes"), &json!([1, 2]));
        assert_eq!(attribute(attrs, "weights"), &json!([1.5]));
        assert_eq!(attribute(attrs, "mixed"), &json!("[1, x]"));
        assert_eq!(attribute(attrs, "raw"), &json!("dead"));
        assert_eq!(attribute(attrs, "map"), &json!("{k=v}"));
        assert_eq!(attribute(attrs, "empty"), &json!(""));
        assert_eq!(root["events"][0]["name"], "payment declined");
        assert_eq!(
            attribute(&root["events"][0]["attributes"], "amount"),
            &json!(12)
        );
        assert_eq!(root["links"].as_array().map(Vec::len), Some(1));
        assert_eq!(root["links"][0]["trace_id"], hex(&[0x7a; 16]));

        let child = by_name("GET payments");
        assert_eq!(child["kind"], "client");
        assert_eq!(child["status"], "ok");
        assert_eq!(child["parent_span_id"], hex(&ROOT));
        assert_eq!(child["duration_ns"], json!(0));
        assert_eq!(by_name("publish")["kind"], "producer");
        assert_eq!(by_name("consume")["kind"], "consumer");
        assert_eq!(by_name("work")["kind"], "internal");
        assert_eq!(by_name("work")["status"], "unset");
    }

    #[test]
    fn spans_with_malformed_ids_are_counted_as_rejected_and_the_rest_kept() {
        let store = ViewerStore::new(1 << 20);
        let mut short_trace = span(CHILD, &ROOT, span::SpanKind::Internal, "short trace id");
        short_trace.trace_id = vec![1; 15];
        let mut zero_span = span([0; 8], &ROOT, span::SpanKind::Internal, "all-zero span id");
        zero_span.span_id = vec![0; 8];
        let good = span(ROOT, &[], span::SpanKind::Server, "GET /ok");
        let received = store_traces(
            &store,
            None,
            traces(None, vec![short_trace, zero_span, good]),
        );
        assert_eq!(
            received,
            Received {
                accepted: 1,
                rejected: 2
            }
        );
        let trace = stored(&store);
        assert_eq!(trace["spans"].as_array().map(Vec::len), Some(1));
        // A resource without `service.name` is OpenTelemetry's unknown service.
        assert_eq!(trace["spans"][0]["service"], UNKNOWN_SERVICE);
    }

    #[test]
    fn the_masker_covers_service_names_attributes_events_and_log_bodies() {
        let store = ViewerStore::new(1 << 20);
        let masker = masker();
        let mut root = span(ROOT, &[], span::SpanKind::Server, "GET /users");
        root.attributes = vec![kv(
            "user.email",
            any_value::Value::StringValue("jane.doe@example.com".into()),
        )];
        root.events = vec![span::Event {
            time_unix_nano: 2_000,
            name: "lookup".into(),
            attributes: vec![kv(
                "card",
                any_value::Value::StringValue("4111 1111 1111 1111".into()),
            )],
            dropped_attributes_count: 0,
        }];
        store_traces(
            &store,
            Some(&masker),
            traces(Some("svc-jane.doe@example.com"), vec![root]),
        );
        let logs = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: resource(Some("svc")),
                scope_logs: vec![ScopeLogs {
                    log_records: vec![LogRecord {
                        // No time: the observed time stands in.
                        observed_time_unix_nano: 3_000,
                        severity_number: 13,
                        severity_text: "WARN".into(),
                        body: Some(text("call 555-867-5309 about jane.doe@example.com")),
                        attributes: vec![kv(
                            "password",
                            any_value::Value::StringValue("hunter2".into()),
                        )],
                        trace_id: TRACE.to_vec(),
                        span_id: ROOT.to_vec(),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let received = store_logs(&store, Some(&masker), logs);
        assert_eq!(
            received,
            Received {
                accepted: 1,
                rejected: 0
            }
        );

        let trace = stored(&store);
        let text = trace.to_string();
        for raw in [
            "jane.doe@example.com",
            "4111 1111 1111 1111",
            "555-867-5309",
            "hunter2",
        ] {
            assert!(!text.contains(raw), "{raw} reached the store: {text}");
        }
        let span = &trace["spans"][0];
        assert_eq!(span["service"], "s***@example.com");
        assert_eq!(
            attribute(&span["attributes"], "user.email"),
            &json!("j***@example.com")
        );
        let log = &trace["logs"][0];
        assert_eq!(log["severity_number"], 13);
        assert_eq!(log["severity_text"], "WARN");
        assert_eq!(log["time_unix_nano"], 3_000);
        assert_eq!(log["span_id"], hex(&ROOT));
        assert!(
            log["body"]
                .as_str()
                .is_some_and(|b| b.contains("***-***-5309")),
            "{log}"
        );
    }

    #[test]
    fn without_a_masker_values_are_stored_as_sent() {
        let store = ViewerStore::new(1 << 20);
        let mut root = span(ROOT, &[], span::SpanKind::Server, "GET /users");
        root.attributes = vec![kv(
            "user.email",
            any_value::Value::StringValue("jane.doe@example.com".into()),
        )];
        store_traces(&store, None, traces(Some("svc"), vec![root]));
        let trace = stored(&store);
        assert_eq!(
            attribute(&trace["spans"][0]["attributes"], "user.email"),
            &json!("jane.doe@example.com")
        );
        assert_eq!(any_text(&AnyValue { value: None }), "");
        assert_eq!(
            any_text(&AnyValue {
                value: Some(any_value::Value::IntValue(7))
            }),
            "7"
        );
        assert_eq!(
            any_text(&AnyValue {
                value: Some(any_value::Value::BoolValue(false))
            }),
            "false"
        );
        assert_eq!(
            any_text(&AnyValue {
                value: Some(any_value::Value::DoubleValue(1.25))
            }),
            "1.25"
        );
        assert_eq!(
            any_text(&AnyValue {
                value: Some(array(vec![any_value::Value::IntValue(1)]))
            }),
            "[1]"
        );
    }
}
