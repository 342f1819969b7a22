//! Hostile input: huge or malformed trace headers never crash a request or
//! continue a bogus trace; huge spans are cut to the configured limits, and
//! every cut is counted.

use faultline::Engine;
use faultline::export::InMemoryExporter;
use http::{HeaderMap, HeaderValue, StatusCode};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer as _,
};
use opentelemetry::{Context, KeyValue, Value};

use crate::common::{memory_engine, quiet_config, start_get};

fn engine(
    limits: impl FnOnce(
        faultline::config::TracingConfigBuilder,
    ) -> faultline::config::TracingConfigBuilder,
) -> (Engine, InMemoryExporter) {
    let spans = InMemoryExporter::default();
    let engine = memory_engine(limits(quiet_config()).build().unwrap(), &spans);
    (engine, spans)
}

#[test]
fn huge_spans_are_cut_to_the_limits_and_every_cut_is_counted() {
    let (engine, exported) = engine(|c| {
        c.attribute_value_length_limit(1024)
            .span_count_limits(16, 8, 4)
    });
    let tracer = engine.tracer();
    let mut span = tracer.start_with_context("huge", &Context::new());
    let megabyte = "é".repeat(512 * 1024); // 1 MiB of two-byte characters
    span.set_attribute(KeyValue::new("payload", megabyte.clone()));
    span.set_attribute(KeyValue::new(
        "list",
        Value::Array(opentelemetry::Array::String(vec![
            opentelemetry::StringValue::from(megabyte.clone()),
            opentelemetry::StringValue::from("short"),
        ])),
    ));
    for i in 0..100 {
        span.set_attribute(KeyValue::new(format!("attr.{i}"), i as i64));
    }
    for i in 0..1000 {
        span.add_event(
            format!("event {i}"),
            vec![KeyValue::new("detail", megabyte.clone())],
        );
    }
    for i in 0..50u64 {
        span.add_link(
            SpanContext::new(
                TraceId::from(u128::from(i) + 1),
                SpanId::from(i + 1),
                TraceFlags::SAMPLED,
                true,
                TraceState::NONE,
            ),
            vec![],
        );
    }
    span.set_status(opentelemetry::trace::Status::error(megabyte.clone()));
    span.end();
    engine.force_flush();

    let spans = exported.spans();
    assert_eq!(spans.len(), 1);
    let s = &spans[0];
    assert_eq!(s.attributes.len(), 16);
    assert_eq!(s.events.events.len(), 8);
    assert_eq!(s.links.links.len(), 4);
    let payload = s
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "payload")
        .unwrap()
        .value
        .as_str()
        .into_owned();
    assert!(
        payload.len() <= 1024 && payload.ends_with('…'),
        "{}",
        payload.len()
    );
    assert!(payload.starts_with("éé"));
    for event in &s.events.events {
        for kv in &event.attributes {
            assert!(kv.value.as_str().len() <= 1024);
        }
    }
    match &s.status {
        opentelemetry::trace::Status::Error { description } => assert!(description.len() <= 1024),
        other => panic!("{other:?}"),
    }

    let limits = engine.export_stats().limits;
    // payload, the long list element, 8 event values and the status.
    assert_eq!(limits.values_truncated, 1 + 1 + 8 + 1, "{limits:?}");
    assert_eq!(limits.attributes_dropped, 102 - 16, "{limits:?}");
    assert_eq!(limits.events_dropped, 1000 - 8, "{limits:?}");
    assert_eq!(limits.links_dropped, 50 - 4, "{limits:?}");
}

fn request(engine: &Engine, headers: &HeaderMap) -> (String, Option<String>) {
    let span = start_get(engine, "/x", "/x", headers, None);
    let trace = span.trace_id().unwrap();
    let baggage = faultline::request::RequestContext::of(&span)
        .baggage("k")
        .map(str::to_owned);
    span.finish(StatusCode::OK, &HeaderMap::new());
    (trace, baggage)
}

#[test]
fn hostile_trace_headers_never_panic_and_never_continue_a_bogus_trace() {
    let (engine, _) = engine(|c| c);
    const GOOD: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let huge = "a".repeat(64 * 1024);
    let many_members: String = (0..5000)
        .map(|i| format!("k{i}=v{i}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut cases: Vec<(&str, HeaderMap, bool)> = Vec::new();

    let mut h = HeaderMap::new();
    h.insert("traceparent", HeaderValue::from_str(&huge).unwrap());
    cases.push(("64 KB traceparent", h, false));

    let mut h = HeaderMap::new();
    h.insert(
        "traceparent",
        HeaderValue::from_str(&format!("{GOOD}{huge}")).unwrap(),
    );
    cases.push(("a valid traceparent followed by 64 KB", h, false));

    let mut h = HeaderMap::new();
    h.insert(
        "traceparent",
        HeaderValue::from_bytes(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033\xff1-01")
            .unwrap(),
    );
    cases.push(("non-UTF-8 traceparent", h, false));

    let mut h = HeaderMap::new();
    h.append("traceparent", HeaderValue::from_static(GOOD));
    h.append(
        "traceparent",
        HeaderValue::from_static("00-11111111111111111111111111111111-2222222222222222-01"),
    );
    cases.push(("repeated traceparent", h, false));

    let mut h = HeaderMap::new();
    h.insert("traceparent", HeaderValue::from_static(GOOD));
    h.insert("tracestate", HeaderValue::from_str(&many_members).unwrap());
    h.insert(
        "baggage",
        HeaderValue::from_str(&format!("k=v,{}", "x=y,".repeat(20_000))).unwrap(),
    );
    cases.push(("5000 tracestate members and a 80 KB baggage", h, true));

    let mut h = HeaderMap::new();
    h.insert("traceparent", HeaderValue::from_static(GOOD));
    for _ in 0..1000 {
        h.append("tracestate", HeaderValue::from_static("a=1"));
        h.append("baggage", HeaderValue::from_bytes(b"k=\xff\xfe").unwrap());
    }
    cases.push((
        "1000 repeated tracestate and non-UTF-8 baggage headers",
        h,
        true,
    ));

    for (what, headers, continues) in cases {
        let (trace, baggage) = request(&engine, &headers);
        assert_eq!(trace.len(), 32, "{what}");
        assert_ne!(trace, "0".repeat(32), "{what}");
        if continues {
            assert_eq!(
                trace, "0af7651916cd43dd8448eb211c80319c",
                "{what}: a valid parent is kept"
            );
        } else {
            assert_ne!(
                trace, "0af7651916cd43dd8448eb211c80319c",
                "{what}: a new trace"
            );
            assert_ne!(
                trace, "11111111111111111111111111111111",
                "{what}: a new trace"
            );
        }
        // Members are read whole within the limits (180 members, 8192
        // bytes), never partly: the first member of the huge header
        // survives; undecodable headers give nothing.
        let expected = what.contains("80 KB").then(|| "v".to_owned());
        assert_eq!(baggage, expected, "{what}");
    }
}

#[test]
fn what_a_full_batch_queue_drops_is_counted() {
    let (engine, exported) = engine(|c| c.batch(16, 16, std::time::Duration::from_secs(60)));
    for _ in 0..2000 {
        engine
            .tracer()
            .start_with_context("burst", &Context::new())
            .end();
    }
    engine.force_flush();
    let stats = engine.export_stats();
    assert_eq!(stats.spans_ended, 2000);
    assert_eq!(stats.spans_received, exported.spans().len() as u64);
    assert!(
        stats.spans_received < 2000,
        "a 16-span queue cannot hold a 2000-span burst: {stats:?}"
    );
}

#[test]
fn only_trusted_peers_continue_a_trace_or_force_it_sampled() {
    use faultline::config::PeerNet;
    // Never samples a trace of its own: only a trusted parent can make a
    // request sampled.
    let (engine, _) = engine(|c| {
        c.sample_rate(0.0)
            .keep_errors(false)
            .trusted_peers([PeerNet::parse("10.0.0.0/8").unwrap()])
    });
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        HeaderValue::from_static("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    );
    headers.insert("baggage", HeaderValue::from_static("k=v"));
    let from = |ip: &str| {
        let span = start_get(&engine, "/x", "/x", &headers, ip.parse().ok());
        let sc = span.context().span().span_context().clone();
        let baggage = faultline::request::RequestContext::of(&span)
            .baggage("k")
            .map(str::to_owned);
        span.finish(StatusCode::OK, &HeaderMap::new());
        (sc.trace_id().to_string(), sc.is_sampled(), baggage)
    };
    let (trace, sampled, baggage) = from("10.1.2.3");
    assert_eq!(trace, "0af7651916cd43dd8448eb211c80319c");
    assert!(sampled, "a trusted sampled parent is followed");
    assert_eq!(baggage.as_deref(), Some("v"));
    for outsider in ["203.0.113.9", "unknown"] {
        let (trace, sampled, baggage) = from(outsider);
        assert_ne!(trace, "0af7651916cd43dd8448eb211c80319c", "{outsider}");
        assert!(
            !sampled,
            "{outsider}: an outside sampled flag forces nothing"
        );
        assert_eq!(baggage, None, "{outsider}");
    }
}
