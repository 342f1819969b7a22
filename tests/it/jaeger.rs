//! The Jaeger exporter against an independent decoder: what faultline sends
//! over UDP (compact protocol, to an agent) and over HTTP (binary protocol,
//! to a collector) is decoded by Apache Thrift's Python library with the
//! types Jaeger generated from its IDL (`tests/peers/jaeger_decode.py`), and
//! checked field by field.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, UdpSocket};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use faultline::Engine;
use faultline::config::{ExporterKind, TracingConfig, TracingConfigBuilder};
use faultline::jaeger::JaegerConfig;
use opentelemetry::trace::{
    Link, Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Array, Context, InstrumentationScope, KeyValue, Value};
use serde_json::{Value as Json, json};

use crate::peers::run_python;

/// The Jaeger agent's packet limit, which the exporter keeps by default.
const MAX_PACKET: usize = 65_000;

fn config() -> TracingConfigBuilder {
    TracingConfig::builder()
        .service_name("jaeger-it")
        .service_version("1.2.3")
        .resource_attribute("deployment.region", "eu-west-1")
        .exporters([ExporterKind::JAEGER])
}

fn engine(config: TracingConfigBuilder, jaeger: JaegerConfig) -> Engine {
    jaeger
        .register(Engine::builder(config.build().unwrap()))
        .install_global(false)
        .build()
        .unwrap()
}

/// A UDP "agent" on 127.0.0.1 with a free port and a large receive buffer
/// (a batch of large spans arrives as a burst of 65 kB datagrams).
fn agent() -> (UdpSocket, u16) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).unwrap();
    // The kernel caps this at net.core.rmem_max; a thread drains it too.
    let _ = socket.set_recv_buffer_size(8 << 20);
    socket
        .bind(
            &"127.0.0.1:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
    let socket: UdpSocket = socket.into();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

/// Receives datagrams on a thread until `stop` is told, then returns them.
fn drain(socket: UdpSocket) -> (mpsc::Sender<()>, std::thread::JoinHandle<Vec<Vec<u8>>>) {
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let handle = std::thread::spawn(move || {
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut datagrams = Vec::new();
        let mut buf = vec![0u8; 70_000];
        let mut stopping = false;
        loop {
            match socket.recv(&mut buf) {
                Ok(n) => datagrams.push(buf[..n].to_vec()),
                // Stop after the first empty wait once told to stop.
                Err(_) if stopping => break,
                Err(_) => {}
            }
            if !stopping && stop_rx.try_recv().is_ok() {
                stopping = true;
            }
        }
        datagrams
    });
    (stop_tx, handle)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn decode(protocol: &str, messages: &[Vec<u8>]) -> Vec<Json> {
    let input = json!({
        "protocol": protocol,
        "messages": messages.iter().map(|m| hex(m)).collect::<Vec<_>>(),
    });
    let out = run_python("jaeger_decode.py", &input);
    out["messages"].as_array().unwrap().clone()
}

fn halves(id: TraceId) -> (i64, i64) {
    let b = id.to_bytes();
    (
        i64::from_be_bytes(b[..8].try_into().unwrap()),
        i64::from_be_bytes(b[8..].try_into().unwrap()),
    )
}

fn sid(id: SpanId) -> i64 {
    i64::from_be_bytes(id.to_bytes())
}

fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_micros() as i64
}

/// The tag `key` of a decoded tag list: `(type, value)`, checking that the
/// one value field of that type is the only one set.
fn tag(tags: &Json, key: &str) -> Option<(String, Json)> {
    let all: Vec<&Json> = tags
        .as_array()?
        .iter()
        .filter(|t| t["key"] == key)
        .collect();
    assert!(all.len() <= 1, "tag {key} appears {} times", all.len());
    let t = all.first()?;
    let ty = t["type"].as_str().unwrap().to_owned();
    let field = match ty.as_str() {
        "STRING" => "vStr",
        "DOUBLE" => "vDouble",
        "BOOL" => "vBool",
        "LONG" => "vLong",
        other => panic!("unexpected tag type {other}"),
    };
    assert_eq!(t["set"], json!([field]), "tag {key}: value fields set");
    Some((ty, t["value"].clone()))
}

fn has(tags: &Json, key: &str, ty: &str, value: Json) {
    assert_eq!(
        tag(tags, key),
        Some((ty.to_owned(), value.clone())),
        "tag {key} in {tags}"
    );
}

/// What the test made, to check the decoded spans against.
struct Made {
    remote_parent: SpanContext,
    linked: SpanContext,
    server: SpanContext,
    client: SpanContext,
    root: SpanContext,
    t0: SystemTime,
}

/// A server span (remote parent, OK status), its client child (attributes
/// of every type, two events, a link with attributes, error status, its own
/// scope) and an internal root span in a trace of its own.
fn make_spans(engine: &Engine) -> Made {
    let t0 = UNIX_EPOCH + Duration::from_micros(1_750_000_000_123_456);
    let remote_parent = SpanContext::new(
        TraceId::from(0xfedc_ba98_7654_3210_0123_4567_89ab_cdef),
        SpanId::from(0x8000_0000_0000_0001),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let linked = SpanContext::new(
        TraceId::from(0x1111_2222_3333_4444_5555_6666_7777_8888),
        SpanId::from(0x0102_0304_0506_0708),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let tracer = engine.tracer();
    let remote_cx = Context::new().with_remote_span_context(remote_parent.clone());
    let server = tracer.build_with_context(
        tracer
            .span_builder("GET /orders/{id}")
            .with_kind(SpanKind::Server)
            .with_start_time(t0)
            .with_attributes([KeyValue::new("http.route", "/orders/{id}")]),
        &remote_cx,
    );
    let server_cx = remote_cx.with_span(server);

    let scoped = engine.tracer_provider().tracer_with_scope(
        InstrumentationScope::builder("it-scope")
            .with_version("9.9")
            .build(),
    );
    let mut client = scoped.build_with_context(
        scoped
            .span_builder("charge card")
            .with_kind(SpanKind::Client)
            .with_start_time(t0 + Duration::from_micros(100))
            .with_links(vec![Link::new(
                linked.clone(),
                vec![KeyValue::new("link.reason", "batch")],
                0,
            )])
            .with_attributes([
                KeyValue::new("app.str", "hello"),
                KeyValue::new("app.bool", true),
                KeyValue::new("app.int", 42_i64),
                KeyValue::new("app.neg", -7_i64),
                KeyValue::new("app.float", 1.5_f64),
                KeyValue::new(
                    "app.strs",
                    Value::Array(Array::String(vec!["a".into(), "b\"c".into()])),
                ),
                KeyValue::new("app.ints", Value::Array(Array::I64(vec![1, 2, 3]))),
                KeyValue::new("app.floats", Value::Array(Array::F64(vec![0.5, 2.25]))),
                KeyValue::new("app.bools", Value::Array(Array::Bool(vec![true, false]))),
            ]),
        &server_cx,
    );
    client.add_event_with_timestamp(
        "cache.miss",
        t0 + Duration::from_micros(150),
        vec![
            KeyValue::new("cache.entry", "order:7"),
            KeyValue::new("attempt", 2_i64),
        ],
    );
    client.add_event_with_timestamp("retry", t0 + Duration::from_micros(200), vec![]);
    client.set_status(Status::error("payment declined"));
    let client_cx = client.span_context().clone();
    client.end_with_timestamp(t0 + Duration::from_micros(900));

    server_cx.span().set_status(Status::Ok);
    let server_sc = server_cx.span().span_context().clone();
    server_cx
        .span()
        .end_with_timestamp(t0 + Duration::from_micros(1_000));

    let root = tracer.build_with_context(
        tracer
            .span_builder("recompute totals")
            .with_start_time(t0 + Duration::from_micros(2_000)),
        &Context::new(),
    );
    let root_sc = root.span_context().clone();
    let root_cx = Context::new().with_span(root);
    root_cx
        .span()
        .end_with_timestamp(t0 + Duration::from_micros(2_500));

    Made {
        remote_parent,
        linked,
        server: server_sc,
        client: client_cx,
        root: root_sc,
        t0,
    }
}

fn find_span<'a>(spans: &'a [Json], id: &SpanContext) -> &'a Json {
    let want = sid(id.span_id());
    let found: Vec<&Json> = spans.iter().filter(|s| s["spanId"] == want).collect();
    assert_eq!(
        found.len(),
        1,
        "span {} decoded {} times",
        id.span_id(),
        found.len()
    );
    found[0]
}

/// Checks every field of the decoded batch against what `make_spans` made.
fn check_batch(batch: &Json, made: &Made) {
    // The process: serviceName from service.name, the rest as typed tags.
    let process = &batch["process"];
    assert_eq!(process["serviceName"], "jaeger-it");
    let ptags = &process["tags"];
    has(ptags, "service.version", "STRING", json!("1.2.3"));
    has(ptags, "deployment.region", "STRING", json!("eu-west-1"));
    has(ptags, "telemetry.sdk.language", "STRING", json!("rust"));
    assert!(tag(ptags, "service.name").is_none());

    let spans = batch["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 3, "{batch}");
    let t0 = micros(made.t0);

    // The server span: remote parent as parentSpanId and first CHILD_OF reference.
    let server = find_span(spans, &made.server);
    let (high, low) = halves(made.server.trace_id());
    assert_eq!(made.server.trace_id(), made.remote_parent.trace_id());
    assert_eq!(server["traceIdHigh"], high);
    assert_eq!(server["traceIdLow"], low);
    assert!(
        high < 0,
        "the high half's top bit is set: stored as a negative i64"
    );
    assert_eq!(server["parentSpanId"], sid(made.remote_parent.span_id()));
    assert_eq!(server["operationName"], "GET /orders/{id}");
    assert_eq!(
        server["references"],
        json!([{"refType": "CHILD_OF", "traceIdLow": low, "traceIdHigh": high,
                "spanId": sid(made.remote_parent.span_id())}])
    );
    assert_eq!(server["flags"], 1);
    assert_eq!(server["startTime"], t0);
    assert_eq!(server["duration"], 1_000);
    let stags = &server["tags"];
    has(stags, "span.kind", "STRING", json!("server"));
    has(stags, "otel.status_code", "STRING", json!("OK"));
    has(stags, "http.route", "STRING", json!("/orders/{id}"));
    has(stags, "otel.scope.name", "STRING", json!("faultline"));
    assert!(tag(stags, "otel.scope.version").is_some());
    assert!(tag(stags, "error").is_none());
    assert!(tag(stags, "otel.status_description").is_none());
    assert_eq!(server["logs"], Json::Null);

    // The client span: local parent, a link, every attribute type, events, error.
    let client = find_span(spans, &made.client);
    assert_eq!(client["traceIdHigh"], high);
    assert_eq!(client["traceIdLow"], low);
    assert_eq!(client["parentSpanId"], sid(made.server.span_id()));
    assert_eq!(client["operationName"], "charge card");
    let (link_high, link_low) = halves(made.linked.trace_id());
    assert_eq!(
        client["references"],
        json!([
            {"refType": "CHILD_OF", "traceIdLow": low, "traceIdHigh": high,
             "spanId": sid(made.server.span_id())},
            {"refType": "FOLLOWS_FROM", "traceIdLow": link_low, "traceIdHigh": link_high,
             "spanId": sid(made.linked.span_id())},
        ])
    );
    assert_eq!(client["flags"], 1);
    assert_eq!(client["startTime"], t0 + 100);
    assert_eq!(client["duration"], 800);
    let ctags = &client["tags"];
    has(ctags, "app.str", "STRING", json!("hello"));
    has(ctags, "app.bool", "BOOL", json!(true));
    has(ctags, "app.int", "LONG", json!(42));
    has(ctags, "app.neg", "LONG", json!(-7));
    has(ctags, "app.float", "DOUBLE", json!(1.5));
    has(ctags, "app.strs", "STRING", json!(r#"["a","b\"c"]"#));
    has(ctags, "app.ints", "STRING", json!("[1,2,3]"));
    has(ctags, "app.floats", "STRING", json!("[0.5,2.25]"));
    has(ctags, "app.bools", "STRING", json!("[true,false]"));
    has(ctags, "span.kind", "STRING", json!("client"));
    has(ctags, "otel.status_code", "STRING", json!("ERROR"));
    has(
        ctags,
        "otel.status_description",
        "STRING",
        json!("payment declined"),
    );
    has(ctags, "error", "BOOL", json!(true));
    has(ctags, "otel.scope.name", "STRING", json!("it-scope"));
    has(ctags, "otel.scope.version", "STRING", json!("9.9"));
    let logs = client["logs"].as_array().unwrap();
    assert_eq!(
        logs.len(),
        3,
        "two events and the link's attributes: {logs:?}"
    );
    assert_eq!(logs[0]["timestamp"], t0 + 150);
    has(&logs[0]["fields"], "event", "STRING", json!("cache.miss"));
    has(
        &logs[0]["fields"],
        "cache.entry",
        "STRING",
        json!("order:7"),
    );
    has(&logs[0]["fields"], "attempt", "LONG", json!(2));
    assert_eq!(logs[0]["fields"].as_array().unwrap().len(), 3);
    assert_eq!(logs[1]["timestamp"], t0 + 200);
    assert_eq!(
        logs[1]["fields"],
        json!([{"key": "event", "type": "STRING", "value": "retry", "set": ["vStr"]}])
    );
    assert_eq!(logs[2]["timestamp"], t0 + 100);
    has(&logs[2]["fields"], "event", "STRING", json!("link"));
    has(
        &logs[2]["fields"],
        "trace_id",
        "STRING",
        json!(made.linked.trace_id().to_string()),
    );
    has(
        &logs[2]["fields"],
        "span_id",
        "STRING",
        json!(made.linked.span_id().to_string()),
    );
    has(&logs[2]["fields"], "link.reason", "STRING", json!("batch"));

    // The internal root: no parent, no references, no kind, no status.
    let root = find_span(spans, &made.root);
    let (root_high, root_low) = halves(made.root.trace_id());
    assert_ne!(made.root.trace_id(), made.server.trace_id());
    assert_eq!(root["traceIdHigh"], root_high);
    assert_eq!(root["traceIdLow"], root_low);
    assert_eq!(root["parentSpanId"], 0);
    assert_eq!(root["references"], Json::Null);
    assert_eq!(root["flags"], 1);
    assert_eq!(root["startTime"], t0 + 2_000);
    assert_eq!(root["duration"], 500);
    assert!(tag(&root["tags"], "span.kind").is_none());
    assert!(tag(&root["tags"], "otel.status_code").is_none());
    assert!(tag(&root["tags"], "error").is_none());
}

#[test]
fn udp_to_an_agent_decodes_field_by_field() {
    let (socket, port) = agent();
    let (stop, receiver) = drain(socket);
    let engine = engine(config(), JaegerConfig::new().agent("127.0.0.1", port));
    let made = make_spans(&engine);
    engine.force_flush();
    stop.send(()).unwrap();
    let datagrams = receiver.join().unwrap();
    assert_eq!(datagrams.len(), 1, "three small spans fit one datagram");

    let messages = decode("compact", &datagrams);
    let m = &messages[0];
    assert_eq!(m["name"], "emitBatch");
    assert_eq!(m["type"], "ONEWAY");
    assert_eq!(m["trailing"], 0, "nothing after the message");
    check_batch(&m["batch"], &made);
    let report = engine.shutdown();
    assert!(report.is_clean(), "{report:?}");
}

/// One HTTP request as the collector saw it.
struct Request {
    head: String,
    body: Vec<u8>,
}

/// A collector on 127.0.0.1 with a free port that answers each request
/// with `status` and hands it to the test.
fn collector(status: &'static str) -> (String, mpsc::Receiver<Request>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/api/traces",
        listener.local_addr().unwrap().port()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut head = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                head.push_str(&line);
                if line == "\r\n" {
                    break;
                }
            }
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
            );
            if tx.send(Request { head, body }).is_err() {
                return;
            }
        }
    });
    (url, rx)
}

#[test]
fn http_to_a_collector_decodes_field_by_field() {
    let (url, requests) = collector("202 Accepted");
    let engine = engine(config(), JaegerConfig::new().endpoint(url));
    let made = make_spans(&engine);
    engine.force_flush();
    let request = requests.recv_timeout(Duration::from_secs(10)).unwrap();
    let head = request.head.to_ascii_lowercase();
    assert!(head.starts_with("post /api/traces http/1.1\r\n"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/vnd.apache.thrift.binary\r\n"),
        "{head}"
    );

    let messages = decode("binary", &[request.body]);
    assert_eq!(messages[0]["trailing"], 0, "nothing after the batch");
    check_batch(&messages[0]["batch"], &made);
    let report = engine.shutdown();
    assert!(report.is_clean(), "{report:?}");
    assert!(requests.try_recv().is_err(), "one batch, one request");
}

#[test]
fn many_large_spans_are_split_into_datagrams_within_the_limit() {
    let (socket, port) = agent();
    let (stop, receiver) = drain(socket);
    // Values far past the 16 KiB default limit: the Jaeger exporter's own
    // datagram handling is what this test is about.
    let engine = engine(
        config().attribute_value_length_limit(1024 * 1024),
        JaegerConfig::new().agent("127.0.0.1", port),
    );
    let tracer = engine.tracer();
    let mut made = HashSet::new();
    for i in 0..300 {
        let mut span = tracer.start_with_context(format!("work {i}"), &Context::new());
        span.set_attribute(KeyValue::new(
            "app.blob",
            "x".repeat(1_500 + (i * 53) % 2_000),
        ));
        span.add_event("step", vec![KeyValue::new("app.n", i as i64)]);
        made.insert(sid(span.span_context().span_id()));
        span.end();
    }
    // One span larger than a datagram on its own: trimmed, not lost.
    let mut big = tracer.start_with_context("huge", &Context::new());
    big.set_attribute(KeyValue::new("app.dump", "y".repeat(100_000)));
    big.set_attribute(KeyValue::new("app.small", "kept"));
    let big_id = sid(big.span_context().span_id());
    made.insert(big_id);
    big.end();

    let started = Instant::now();
    engine.force_flush();
    stop.send(()).unwrap();
    let datagrams = receiver.join().unwrap();
    assert!(
        datagrams.len() >= 8,
        "about 600 kB of spans in {} datagrams",
        datagrams.len()
    );
    for d in &datagrams {
        assert!(d.len() <= MAX_PACKET, "a datagram of {} bytes", d.len());
    }

    let messages = decode("compact", &datagrams);
    let mut seen = Vec::new();
    let mut seqids = HashSet::new();
    for m in &messages {
        assert_eq!(m["name"], "emitBatch");
        assert_eq!(m["trailing"], 0);
        assert!(
            seqids.insert(m["seqid"].as_i64().unwrap()),
            "seqid repeated"
        );
        assert_eq!(m["batch"]["process"]["serviceName"], "jaeger-it");
        for s in m["batch"]["spans"].as_array().unwrap() {
            let id = s["spanId"].as_i64().unwrap();
            seen.push(id);
            if id == big_id {
                assert!(tag(&s["tags"], "app.dump").is_none());
                has(&s["tags"], "app.small", "STRING", json!("kept"));
                has(&s["tags"], "faultline.jaeger.truncated", "LONG", json!(1));
                assert_eq!(s["operationName"], "huge");
            } else {
                assert!(tag(&s["tags"], "faultline.jaeger.truncated").is_none());
                assert_eq!(s["logs"].as_array().unwrap().len(), 1);
            }
        }
    }
    let unique: HashSet<i64> = seen.iter().copied().collect();
    assert_eq!(seen.len(), unique.len(), "a span arrived twice");
    assert_eq!(unique, made, "every span arrives exactly once");
    let report = engine.shutdown();
    assert!(report.is_clean(), "{report:?}");
    assert!(started.elapsed() < Duration::from_secs(30));
}
