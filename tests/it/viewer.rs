//! The trace viewer (plugins/viewer): its store's bound, its JSON API, its
//! OTLP/HTTP receiver (protobuf and JSON bodies built by the
//! `opentelemetry-proto` crate), masking, the token and the refusal of a
//! non-loopback address without one; and the page itself in a real browser
//! (tests/peers/viewer_browser.py: headless Chromium through Playwright).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::{SystemTime, UNIX_EPOCH};

use faultline::Engine;
use faultline::config::{ExporterKind, TracingConfig};
use faultline::viewer::{MIN_MAX_BYTES, Viewer, ViewerConfig};
use opentelemetry::trace::{Span as _, SpanKind, Status, TraceContextExt, Tracer as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue as ProtoKeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message as _;
use serde_json::{Value, json};

use crate::peers::run_python;

/// Markup that would run if the page ever parsed a value as HTML.
const XSS_ATTR: &str = r#"<img src=x onerror="window.__pwned=1">"#;
const XSS_LOG_BODY: &str = "<script>window.__pwned=2</script> user lookup failed";
const XSS_LOG_FIELD: &str = r#"<img src=x onerror="window.__pwned=3"><b>bold</b>"#;
const EMAIL: &str = "alice@example.com";
const MASKED_EMAIL: &str = "a***@example.com";
const CARD: &str = "4111 1111 1111 1111";

fn masker() -> std::sync::Arc<dyn faultline::masking::Masker> {
    faultline::masking::from_config(&TracingConfig::default())
}

fn start(config: ViewerConfig) -> Viewer {
    Viewer::start(
        config.with_addr("127.0.0.1:0".parse().unwrap()),
        Some(masker()),
    )
    .unwrap()
}

/// An engine of `service` whose configuration names the `viewer` exporter,
/// registered by name and feeding `viewer`.
fn engine_for(viewer: &Viewer, service: &str) -> Engine {
    let config = TracingConfig::builder()
        .service_name(service)
        .exporters([ExporterKind::VIEWER])
        .build()
        .unwrap();
    let exporter = viewer.exporter();
    Engine::builder(config)
        .exporter_factory(ExporterKind::VIEWER, move |_| Ok(Box::new(exporter)))
        .install_global(false)
        .build()
        .unwrap()
}

struct TwoServiceTrace {
    trace_id: String,
    /// root (gateway server), client (gateway), backend server, backend internal.
    span_ids: [String; 4],
}

/// A trace across two services, through both engines' export pipelines:
/// gateway `GET /users/{id}` -> its CLIENT span -> backend server span (an
/// error, code 1001) -> backend `load_user` with an exception event.
fn two_service_trace(viewer: &Viewer) -> TwoServiceTrace {
    let gateway = engine_for(viewer, "gateway");
    let backend = engine_for(viewer, "backend");
    let g = gateway.tracer();
    let b = backend.tracer();
    let root = g
        .span_builder("GET /users/{id}")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.route", "/users/{id}"),
            KeyValue::new("http.response.status_code", 404),
            KeyValue::new("app.customer.email", EMAIL),
            KeyValue::new("app.note", XSS_ATTR),
        ])
        .start(g);
    let root_cx = Context::new().with_span(root);
    let client = g
        .span_builder("GET")
        .with_kind(SpanKind::Client)
        .start_with_context(g, &root_cx);
    let client_cx = root_cx.with_span(client);
    let mut server = b
        .span_builder("GET /db/users/{id}")
        .with_kind(SpanKind::Server)
        .with_attributes([
            KeyValue::new("http.route", "/db/users/{id}"),
            KeyValue::new("faultline.error.code", 1001),
            KeyValue::new("faultline.error.name", "USER_NOT_FOUND"),
            KeyValue::new("app.payment.card", CARD),
        ])
        .start_with_context(b, &client_cx);
    server.set_status(Status::error(format!("no user for {EMAIL}")));
    let server_cx = client_cx.with_span(server);
    let mut load = b
        .span_builder("load_user")
        .with_kind(SpanKind::Internal)
        .start_with_context(b, &server_cx);
    load.add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", "UserNotFound"),
            KeyValue::new("exception.message", format!("no user {EMAIL}")),
            KeyValue::new("faultline.error.code", 1001),
            KeyValue::new("faultline.error.name", "USER_NOT_FOUND"),
        ],
    );
    let load_cx = server_cx.with_span(load);
    let id = |cx: &Context| cx.span().span_context().span_id().to_string();
    let ids = [id(&root_cx), id(&client_cx), id(&server_cx), id(&load_cx)];
    let trace_id = root_cx.span().span_context().trace_id().to_string();
    load_cx.span().end();
    server_cx.span().end();
    client_cx.span().end();
    root_cx.span().end();
    gateway.force_flush();
    backend.force_flush();
    gateway.shutdown();
    backend.shutdown();
    TwoServiceTrace {
        trace_id,
        span_ids: ids,
    }
}

fn string(s: &str) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(any_value::Value::StringValue(s.to_owned())),
    })
}

fn kv(key: &str, value: Option<AnyValue>) -> ProtoKeyValue {
    ProtoKeyValue {
        key: key.to_owned(),
        value,
        ..Default::default()
    }
}

fn resource(service: &str) -> Option<Resource> {
    Some(Resource {
        attributes: vec![kv("service.name", string(service))],
        ..Default::default()
    })
}

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64
}

/// Two log records of the backend span, sent newest first.
fn logs_request(trace: &TwoServiceTrace) -> ExportLogsServiceRequest {
    let now = nanos(SystemTime::now());
    let record =
        |time: u64, severity: i32, text: &str, body: &str, fields: Vec<ProtoKeyValue>| LogRecord {
            time_unix_nano: time,
            severity_number: severity,
            severity_text: text.to_owned(),
            body: string(body),
            attributes: fields,
            trace_id: unhex(&trace.trace_id),
            span_id: unhex(&trace.span_ids[2]),
            ..Default::default()
        };
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("backend"),
            scope_logs: vec![ScopeLogs {
                log_records: vec![
                    record(
                        now,
                        13,
                        "WARN",
                        XSS_LOG_BODY,
                        vec![
                            kv("user.email", string(EMAIL)),
                            kv("detail", string(XSS_LOG_FIELD)),
                        ],
                    ),
                    record(
                        now - 1_000_000,
                        9,
                        "INFO",
                        &format!("loading user for {EMAIL}"),
                        vec![kv(
                            "user.id",
                            Some(AnyValue {
                                value: Some(any_value::Value::IntValue(42)),
                            }),
                        )],
                    ),
                ],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn spans_request(
    service: &str,
    trace_id: &[u8; 16],
    spans: Vec<Span>,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: resource(service),
            scope_spans: vec![ScopeSpans {
                spans: spans
                    .into_iter()
                    .map(|mut s| {
                        s.trace_id = trace_id.to_vec();
                        s
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn proto_span(
    span_id: u64,
    parent: Option<u64>,
    name: &str,
    attributes: Vec<ProtoKeyValue>,
) -> Span {
    let now = nanos(SystemTime::now());
    Span {
        span_id: span_id.to_be_bytes().to_vec(),
        parent_span_id: parent.map(|p| p.to_be_bytes().to_vec()).unwrap_or_default(),
        name: name.to_owned(),
        kind: 2,
        start_time_unix_nano: now - 2_000_000,
        end_time_unix_nano: now,
        attributes,
        ..Default::default()
    }
}

async fn post(
    url: &str,
    content_type: &str,
    body: Vec<u8>,
    extra: &[(&str, &str)],
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", content_type)
        .body(body);
    for (k, v) in extra {
        request = request.header(*k, *v);
    }
    request.send().await.unwrap()
}

async fn get_json(url: &str) -> (u16, Value) {
    let response = reqwest::get(url).await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

#[tokio::test]
async fn the_api_shows_a_two_service_trace_with_its_log_records_masked() {
    let viewer = start(ViewerConfig::default());
    let base = viewer.url();
    let trace = two_service_trace(&viewer);
    let response = post(
        &format!("{base}v1/logs"),
        "application/x-protobuf",
        logs_request(&trace).encode_to_vec(),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");

    let (status, list) = get_json(&format!("{base}api/traces")).await;
    assert_eq!(status, 200);
    let summary = list["traces"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["trace_id"] == trace.trace_id)
        .expect("the trace is listed")
        .clone();
    assert_eq!(summary["name"], "GET /users/{id}");
    assert_eq!(summary["has_root"], true);
    assert_eq!(summary["services"], json!(["backend", "gateway"]));
    assert_eq!(summary["span_count"], 4);
    assert_eq!(summary["log_count"], 2);
    assert_eq!(summary["status"], "error");
    assert_eq!(summary["error_code"], 1001);
    assert_eq!(summary["error_name"], "USER_NOT_FOUND");
    assert_eq!(summary["route"], "/users/{id}");
    assert!(summary["duration_ns"].as_u64().unwrap() > 0);
    assert_eq!(list["services"], json!(["backend", "gateway"]));

    // Filters.
    for (query, listed) in [
        ("service=backend", true),
        ("service=nobody", false),
        ("route=/users/{id}", true),
        ("route=/other", false),
        ("status=error", true),
        ("status=ok", false),
        ("code=1001", true),
        ("code=2001", false),
        (&format!("q={}", &trace.trace_id[..8]), true),
        ("q=ffffffff", false),
    ] {
        let (_, found) = get_json(&format!("{base}api/traces?{query}")).await;
        let ids: Vec<&str> = found["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["trace_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids.contains(&trace.trace_id.as_str()), listed, "{query}");
    }

    let (status, detail) = get_json(&format!("{base}api/traces/{}", trace.trace_id)).await;
    assert_eq!(status, 200);
    let spans = detail["spans"].as_array().unwrap();
    let by_id = |id: &str| spans.iter().find(|s| s["span_id"] == id).unwrap();
    let [root, client, server, load] = trace.span_ids.each_ref().map(|id| by_id(id));
    assert_eq!(root["parent_span_id"], Value::Null);
    assert_eq!(client["parent_span_id"], trace.span_ids[0]);
    assert_eq!(server["parent_span_id"], trace.span_ids[1]);
    assert_eq!(load["parent_span_id"], trace.span_ids[2]);
    assert_eq!(
        [
            &root["service"],
            &client["service"],
            &server["service"],
            &load["service"]
        ],
        ["gateway", "gateway", "backend", "backend"]
    );
    assert_eq!(
        [
            &root["kind"],
            &client["kind"],
            &server["kind"],
            &load["kind"]
        ],
        ["server", "client", "server", "internal"]
    );
    assert_eq!(server["status"], "error");
    assert_eq!(load["events"][0]["name"], "exception");
    let attribute = |span: &Value, key: &str| {
        span["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"].clone())
    };
    // Masked by the export pipeline before the viewer saw them.
    assert_eq!(attribute(root, "app.customer.email").unwrap(), MASKED_EMAIL);
    assert_eq!(attribute(root, "app.note").unwrap(), XSS_ATTR);
    assert_eq!(
        attribute(server, "app.payment.card").unwrap(),
        "****-****-****-1111"
    );
    // Log records in time order, masked by the receiver.
    let logs = detail["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0]["severity_text"], "INFO");
    assert_eq!(logs[0]["body"], format!("loading user for {MASKED_EMAIL}"));
    assert_eq!(logs[1]["body"], XSS_LOG_BODY);
    assert_eq!(logs[1]["span_id"], trace.span_ids[2]);
    assert_eq!(logs[1]["service"], "backend");
    assert_eq!(attribute(&logs[1], "user.email").unwrap(), MASKED_EMAIL);
    assert_eq!(attribute(&logs[0], "user.id").unwrap(), 42);
    let text = detail.to_string();
    assert!(!text.contains(EMAIL) && !text.contains(CARD), "{text}");

    let (status, missing) = get_json(&format!("{base}api/traces/{}", "0".repeat(32))).await;
    assert_eq!(status, 404);
    assert!(missing["error"].is_string());

    let (_, errors) = get_json(&format!("{base}api/errors")).await;
    let error = errors["errors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["span_id"] == trace.span_ids[2])
        .expect("the backend's error is listed");
    assert_eq!(error["trace_id"], trace.trace_id);
    assert_eq!(error["code"], 1001);
    assert_eq!(error["name"], "USER_NOT_FOUND");
    assert_eq!(error["route"], "/users/{id}");

    let (_, stats) = get_json(&format!("{base}api/stats")).await;
    assert_eq!(stats["spans"], 4);
    assert_eq!(stats["logs"], 2);

    // The page and its pieces.
    for (path, content_type) in [
        ("", "text/html; charset=utf-8"),
        ("errors", "text/html; charset=utf-8"),
        (
            &format!("traces/{}", trace.trace_id),
            "text/html; charset=utf-8",
        ),
        ("assets/app.js", "text/javascript; charset=utf-8"),
        ("assets/app.css", "text/css; charset=utf-8"),
        ("favicon.ico", "image/svg+xml"),
    ] {
        let response = reqwest::get(format!("{base}{path}")).await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["content-type"], content_type, "{path}");
    }
    let page = reqwest::get(&base).await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'"), "{csp}");
}

#[tokio::test]
async fn the_receiver_takes_protobuf_json_and_gzip_and_masks_what_it_stores() {
    let viewer = start(ViewerConfig::default());
    let base = viewer.url();
    let trace_id = [7u8; 16];
    let hex_id = "07".repeat(16);
    let attrs = || {
        vec![
            kv("user.email", string(EMAIL)),
            kv("password", string("hunter2-hunter2")),
            kv("http.route", string("/py/{id}")),
        ]
    };
    // JSON, as OTLP/JSON writes it (hex ids, camelCase), from the proto crate's serde.
    let request = spans_request(
        "python-svc",
        &trace_id,
        vec![proto_span(
            1,
            None,
            &format!("GET /py for {EMAIL}"),
            attrs(),
        )],
    );
    let body = serde_json::to_vec(&request).unwrap();
    assert!(String::from_utf8_lossy(&body).contains(&hex_id));
    let response = post(&format!("{base}v1/traces"), "application/json", body, &[]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.json::<Value>().await.unwrap(), json!({}));

    // Protobuf, gzip-compressed: a child of the first span.
    let request = spans_request(
        "python-svc",
        &trace_id,
        vec![proto_span(2, Some(1), "child", attrs())],
    );
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&request.encode_to_vec()).unwrap();
    let response = post(
        &format!("{base}v1/traces"),
        "application/x-protobuf",
        gz.finish().unwrap(),
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(response.status(), 200);

    // A span with a malformed id is refused, and said so.
    let mut bad = proto_span(3, None, "bad", vec![]);
    bad.span_id = vec![1, 2, 3];
    let response = post(
        &format!("{base}v1/traces"),
        "application/x-protobuf",
        spans_request("python-svc", &trace_id, vec![bad]).encode_to_vec(),
        &[],
    )
    .await;
    let answer =
        opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse::decode(
            response.bytes().await.unwrap(),
        )
        .unwrap();
    assert_eq!(answer.partial_success.unwrap().rejected_spans, 1);

    let (status, detail) = get_json(&format!("{base}api/traces/{hex_id}")).await;
    assert_eq!(status, 200);
    let spans = detail["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 2);
    assert_eq!(spans[0]["service"], "python-svc");
    assert_eq!(spans[0]["name"], format!("GET /py for {MASKED_EMAIL}"));
    let text = detail.to_string();
    assert!(!text.contains(EMAIL), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("[REDACTED]"), "{text}");
    assert_eq!(detail["summary"]["route"], "/py/{id}");

    // JSON logs too.
    let mut logs = ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            resource: resource("python-svc"),
            scope_logs: vec![ScopeLogs {
                log_records: vec![LogRecord {
                    observed_time_unix_nano: nanos(SystemTime::now()),
                    severity_number: 17,
                    body: string(&format!("card {CARD} declined")),
                    trace_id: trace_id.to_vec(),
                    span_id: 1u64.to_be_bytes().to_vec(),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    let response = post(
        &format!("{base}v1/logs"),
        "application/json",
        serde_json::to_vec(&logs).unwrap(),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);
    let (_, detail) = get_json(&format!("{base}api/traces/{hex_id}")).await;
    assert_eq!(
        detail["logs"][0]["body"],
        "card ****-****-****-1111 declined"
    );
    assert_eq!(detail["logs"][0]["severity_number"], 17);

    // A record outside any trace is counted, not kept.
    logs.resource_logs[0].scope_logs[0].log_records[0]
        .trace_id
        .clear();
    post(
        &format!("{base}v1/logs"),
        "application/x-protobuf",
        logs.encode_to_vec(),
        &[],
    )
    .await;
    let (_, stats) = get_json(&format!("{base}api/stats")).await;
    assert_eq!(stats["logs_without_trace"], 1);

    // Bodies it cannot read.
    let response = post(
        &format!("{base}v1/traces"),
        "application/json",
        b"{not json".to_vec(),
        &[],
    )
    .await;
    assert_eq!(response.status(), 400);
    let response = post(
        &format!("{base}v1/traces"),
        "application/x-protobuf",
        vec![0xff, 0xff, 0xff],
        &[],
    )
    .await;
    assert_eq!(response.status(), 400);
    let response = post(
        &format!("{base}v1/traces"),
        "text/plain",
        b"hello".to_vec(),
        &[],
    )
    .await;
    assert_eq!(response.status(), 415);
    let response = post(
        &format!("{base}v1/traces"),
        "application/x-protobuf",
        b"not gzip".to_vec(),
        &[("content-encoding", "gzip")],
    )
    .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn the_store_is_bounded_in_bytes_evicting_the_oldest_traces_and_counting_them() {
    let viewer = start(ViewerConfig::default().with_max_bytes(MIN_MAX_BYTES));
    let base = viewer.url();
    const TRACES: u32 = 200;
    let padding = "x".repeat(1000);
    for n in 1..=TRACES {
        let mut trace_id = [0u8; 16];
        trace_id[12..].copy_from_slice(&n.to_be_bytes());
        let request = spans_request(
            "load",
            &trace_id,
            vec![proto_span(
                1,
                None,
                "work",
                vec![kv("pad", string(&padding))],
            )],
        );
        let response = post(
            &format!("{base}v1/traces"),
            "application/x-protobuf",
            request.encode_to_vec(),
            &[],
        )
        .await;
        assert_eq!(response.status(), 200);
    }
    let (_, stats) = get_json(&format!("{base}api/stats")).await;
    let held = stats["traces"].as_u64().unwrap();
    let evicted = stats["evicted_traces"].as_u64().unwrap();
    assert!(
        stats["bytes"].as_u64().unwrap() <= MIN_MAX_BYTES as u64,
        "{stats}"
    );
    assert!(evicted > 0, "{stats}");
    assert!(held > 0, "{stats}");
    assert_eq!(held + evicted, u64::from(TRACES), "{stats}");
    assert!(stats["evicted_bytes"].as_u64().unwrap() > 0);
    let id = |n: u32| format!("{:024x}{n:08x}", 0);
    assert_eq!(
        get_json(&format!("{base}api/traces/{}", id(TRACES)))
            .await
            .0,
        200
    );
    assert_eq!(
        get_json(&format!("{base}api/traces/{}", id(1))).await.0,
        404
    );
    // The list says the same.
    let (_, list) = get_json(&format!("{base}api/traces?limit=5000")).await;
    assert_eq!(list["traces"].as_array().unwrap().len() as u64, held);
}

#[tokio::test]
async fn with_a_token_every_request_needs_it() {
    const TOKEN: &str = "s3cret-viewer-token-0123";
    let viewer = start(ViewerConfig::default().with_token(TOKEN));
    let base = viewer.url();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for path in [
        "",
        "errors",
        "api/traces",
        "api/stats",
        "assets/app.js",
        "favicon.ico",
    ] {
        let response = client.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let response = client
            .get(format!("{base}{path}"))
            .header("authorization", "Bearer wrong-token-wrong-token")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{path}");
        let response = client
            .get(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{path}");
    }
    let request = spans_request("t", &[9; 16], vec![proto_span(1, None, "x", vec![])]);
    let response = post(
        &format!("{base}v1/traces"),
        "application/x-protobuf",
        request.encode_to_vec(),
        &[],
    )
    .await;
    assert_eq!(response.status(), 401);
    let response = post(
        &format!("{base}v1/traces"),
        "application/x-protobuf",
        request.encode_to_vec(),
        &[("authorization", &format!("Bearer {TOKEN}"))],
    )
    .await;
    assert_eq!(response.status(), 200);

    // A browser: `/?token=` once, then the cookie it was given.
    let response = client
        .get(format!("{base}?token={TOKEN}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().unwrap();
    let response = client
        .get(format!("{base}api/traces"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = client
        .get(format!("{base}api/traces"))
        .header("cookie", "faultline_viewer_token=guess-guess-guess-gu")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}

/// Runs an example binary with `env` (nothing else of faultline's) and
/// returns its exit code and standard error once it ends by itself.
fn run_until_exit(
    binary: std::path::PathBuf,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let mut command = Command::new(binary);
    command.args(args);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("OTEL_") || name.starts_with("FAULTLINE_") {
            command.env_remove(&name);
        }
    }
    let out = command
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo build --all-features --examples` (scripts/test does)",
        path.display()
    );
    path
}

#[test]
fn a_non_loopback_address_without_a_token_stops_start_up_with_one_line() {
    let err = Viewer::start(
        ViewerConfig::default().with_addr("0.0.0.0:0".parse().unwrap()),
        None,
    )
    .unwrap_err();
    let message = err.to_string();
    assert!(!message.contains('\n'), "{message}");
    assert!(message.contains("FAULTLINE_VIEWER_TOKEN"), "{message}");

    let err = ViewerConfig::with_env_from(|name| {
        (name == "FAULTLINE_VIEWER_ADDR").then(|| "0.0.0.0:16686".into())
    })
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("FAULTLINE_VIEWER_ADDR: invalid value \"0.0.0.0:16686\""),
        "{err}"
    );
    assert!(err.to_string().contains("FAULTLINE_VIEWER_TOKEN"), "{err}");

    // The viewer on its own, and the reference service exporting to it.
    let env = [
        ("FAULTLINE_VIEWER_ADDR", "0.0.0.0:0"),
        ("OTEL_TRACES_EXPORTER", "viewer"),
    ];
    for (binary, args) in [
        (example("viewer"), &[][..]),
        (
            crate::service::binary(),
            &["--framework", "axum", "--port", "0"][..],
        ),
    ] {
        let (code, stderr) = run_until_exit(binary.clone(), args, &env);
        assert_eq!(code, Some(2), "{}: {stderr}", binary.display());
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{}: {stderr}", binary.display());
        assert!(lines[0].contains("FAULTLINE_VIEWER_TOKEN"), "{stderr}");
    }
    // With a token it starts.
    let token = ViewerConfig::default()
        .with_addr("0.0.0.0:0".parse().unwrap())
        .with_token("a-long-enough-token-123");
    let viewer = Viewer::start(token, None).unwrap();
    assert!(viewer.addr().ip().is_unspecified());
}

#[tokio::test]
async fn the_page_in_a_real_browser_renders_values_as_text() {
    let viewer = start(ViewerConfig::default());
    let base = viewer.url();
    let trace = two_service_trace(&viewer);
    let response = post(
        &format!("{base}v1/logs"),
        "application/x-protobuf",
        logs_request(&trace).encode_to_vec(),
        &[],
    )
    .await;
    assert_eq!(response.status(), 200);

    let new_trace_id = format!("{:032x}", u128::from_be_bytes(*b"python-new-trace"));
    let input = json!({
        "base": base,
        "trace_id": trace.trace_id,
        "new_trace_id": new_trace_id,
        "new_parent_span_id": "00000000000000a1",
        "new_child_span_id": "00000000000000b2",
        "raw": [EMAIL, CARD],
    });
    let seen = tokio::task::spawn_blocking(move || run_python("viewer_browser.py", &input))
        .await
        .unwrap();

    // The list: the new trace appeared, then its row updated when the root came.
    assert_eq!(seen["new_row_before_root"]["name"], "python child");
    assert_eq!(seen["new_row_before_root"]["pending"], true);
    assert_eq!(seen["new_row_after_root"]["name"], "GET /python/{id}");
    assert_eq!(seen["new_row_after_root"]["pending"], false);
    assert_eq!(seen["same_document"], true, "no reload");
    assert_eq!(seen["first_row"], new_trace_id, "newest first");
    assert_eq!(seen["error_filter_rows"], json!([trace.trace_id]));

    // The waterfall of both services, nested.
    let spans = seen["spans"].as_array().unwrap();
    let shown: Vec<(String, String, u64)> = spans
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["service"].as_str().unwrap().to_owned(),
                s["depth"].as_u64().unwrap(),
            )
        })
        .collect();
    let expected = [
        ("GET /users/{id}", "gateway", 0),
        ("GET", "gateway", 1),
        ("GET /db/users/{id}", "backend", 2),
        ("load_user", "backend", 3),
    ]
    .map(|(n, s, d)| (n.to_owned(), s.to_owned(), d));
    assert_eq!(shown, expected);
    assert_eq!(
        spans
            .iter()
            .map(|s| s["error"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        [false, false, true, true],
        "failed: the error status, and the exception recorded"
    );
    assert_eq!(
        spans[0]["bar_width"], "100%",
        "the root spans the whole trace"
    );
    assert_eq!(seen["trace_id_shown"], trace.trace_id);
    let heading = seen["heading_error"].as_str().unwrap();
    assert!(heading.contains("1001 USER_NOT_FOUND"), "{heading}");

    // Attributes on selection: masked, and the markup shown as characters.
    let root = &seen["details"][&trace.span_ids[0]]["attributes"];
    let attrs: Vec<(String, String)> = serde_json::from_value(root.clone()).unwrap();
    assert!(
        attrs.contains(&("app.customer.email".into(), MASKED_EMAIL.into())),
        "{attrs:?}"
    );
    assert!(
        attrs.contains(&("app.note".into(), XSS_ATTR.into())),
        "{attrs:?}"
    );
    let exceptions = seen["details"][&trace.span_ids[3]]["exceptions"].to_string();
    assert!(exceptions.contains("UserNotFound"), "{exceptions}");
    assert!(exceptions.contains(MASKED_EMAIL), "{exceptions}");

    // Log records in time order, as text.
    let logs = seen["logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0]["body"], format!("loading user for {MASKED_EMAIL}"));
    assert_eq!(logs[1]["body"], XSS_LOG_BODY);
    assert!(
        logs[1]["fields"]
            .as_array()
            .unwrap()
            .contains(&json!(["detail", XSS_LOG_FIELD]))
    );

    // Nothing ran, nothing was parsed as markup, nothing raw shown.
    assert_eq!(seen["pwned"], false);
    assert_eq!(seen["pwned_at_end"], false);
    assert_eq!(seen["img_elements"], 0);
    assert_eq!(seen["script_elements"], json!(["/assets/app.js"]));
    assert_eq!(seen["raw_in_page"], json!([]));
    assert_eq!(
        seen["narrow_overflow_px"], 0,
        "a narrow window needs no sideways scroll"
    );

    // The errors page links to the trace, and the link leads there.
    let link = format!("/traces/{}", trace.trace_id);
    assert!(
        seen["error_links"]
            .as_array()
            .unwrap()
            .contains(&json!(link)),
        "{}",
        seen["error_links"]
    );
    let rows = seen["error_rows"].to_string();
    assert!(
        rows.contains("1001") && rows.contains("USER_NOT_FOUND"),
        "{rows}"
    );
    assert_eq!(seen["followed_error_link"], trace.trace_id);

    assert_eq!(seen["console_errors"], json!([]));
}

/// `cargo run --example demo -- --serve`: the demo's traces stay in the
/// viewer until Ctrl-C (without the flag the demo ends by itself:
/// tests/it/demo.rs).
#[tokio::test]
async fn the_demo_with_serve_keeps_the_viewer_open_on_its_traces() {
    use std::io::{BufRead as _, BufReader};

    let mut command = Command::new(example("demo"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy().into_owned();
        if name.starts_with("OTEL_") || name.starts_with("FAULTLINE_") || name == "RUST_LOG" {
            command.env_remove(&name);
        }
    }
    let mut child = command
        .arg("--serve")
        .env("FAULTLINE_VIEWER_ADDR", "127.0.0.1:0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let url = tokio::task::spawn_blocking(move || {
        let mut printed = String::new();
        for line in BufReader::new(stdout).lines() {
            let line = line.unwrap();
            printed.push_str(&line);
            printed.push('\n');
            if let Some(rest) = line.strip_prefix("Trace viewer open: ") {
                return rest.split_whitespace().next().unwrap().to_owned();
            }
        }
        panic!("the demo ended without keeping the viewer open:\n{printed}");
    })
    .await
    .unwrap();
    let (status, list) = get_json(&format!("{url}api/traces")).await;
    assert_eq!(status, 200);
    let traces = list["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 4, "the demo's four requests: {list}");
    assert!(
        traces
            .iter()
            .all(|t| t["services"] == json!(["backend", "gateway"])),
        "{list}"
    );
    assert!(!list.to_string().contains("jane.doe@example.com"), "masked");
    // Ctrl-C ends it.
    // SAFETY: a plain kill(2) of the child this test started.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "{status}");
}

/// The reference service with `OTEL_TRACES_EXPORTER=viewer` and
/// `OTEL_LOGS_EXPORTER=viewer` on every framework: its own spans and its
/// `tracing` events (the contract's "Logs" section) reach one viewer, the
/// log records beside their trace, on the spans they were emitted in,
/// masked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_service_sends_its_spans_and_log_records_to_the_viewer() {
    for framework in ["axum", "poem", "warp", "actix"] {
        let port = crate::common::free_port();
        let addr = format!("127.0.0.1:{port}");
        let svc = crate::service::Service::start(
            framework,
            &[
                ("OTEL_TRACES_EXPORTER", "viewer"),
                ("OTEL_LOGS_EXPORTER", "viewer"),
                ("FAULTLINE_VIEWER_ADDR", &addr),
            ],
        );
        let client = reqwest::Client::new();
        let trace_of = |response: &reqwest::Response| {
            let header = response.headers()["traceresponse"].to_str().unwrap();
            header.split('-').nth(1).unwrap().to_owned()
        };
        let found = client.get(svc.url("/users/5")).send().await.unwrap();
        assert_eq!(found.status(), 200, "{framework}");
        let found = trace_of(&found);
        let declined = client
            .post(svc.url("/checkout"))
            .json(&json!({"email": EMAIL, "phone": "555-867-5309", "card": CARD}))
            .send()
            .await
            .unwrap();
        assert_eq!(declined.status(), 402, "{framework}");
        let declined = trace_of(&declined);

        // Waits until the trace has its server span and `logs` records.
        let detail = |trace_id: String, logs: usize| {
            let url = format!("http://{addr}/api/traces/{trace_id}");
            async move {
                for _ in 0..200 {
                    let (status, detail) = get_json(&url).await;
                    if status == 200
                        && detail["logs"].as_array().is_some_and(|l| l.len() >= logs)
                        && detail["spans"]
                            .as_array()
                            .is_some_and(|s| s.iter().any(|s| s["parent_span_id"] == Value::Null))
                    {
                        return detail;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
                panic!(
                    "{framework}: trace {trace_id} with {logs} log records never reached the viewer"
                );
            }
        };
        let user = detail(found, 1).await;
        let load_user = user["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "load_user")
            .unwrap_or_else(|| panic!("{framework}: no load_user span: {user}"));
        let record = &user["logs"][0];
        assert_eq!(record["body"], "loading user", "{framework}");
        assert_eq!(record["severity_text"], "INFO", "{framework}");
        assert_eq!(record["span_id"], load_user["span_id"], "{framework}");

        let checkout = detail(declined, 1).await;
        let root = checkout["spans"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["parent_span_id"] == Value::Null)
            .unwrap()
            .clone();
        let record = checkout["logs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["body"] == "payment declined")
            .unwrap_or_else(|| panic!("{framework}: {checkout}"))
            .clone();
        assert_eq!(record["severity_text"], "WARN", "{framework}");
        // Emitted straight in the handler: on the server span.
        assert_eq!(record["span_id"], root["span_id"], "{framework}");
        let text = checkout.to_string();
        assert!(
            !text.contains(EMAIL) && !text.contains(CARD),
            "{framework}: {text}"
        );
        assert!(text.contains(MASKED_EMAIL), "{framework}: {text}");
        assert!(svc.stop().0, "{framework}: clean exit");
    }
}
