//! The Sentry plugin over real HTTP: a local endpoint poses as the DSN's
//! host and records every envelope sentry's own HTTP transport sends; the
//! events must carry the trace context of the responses (and of the
//! exported spans), the tags, and no raw personal data anywhere. Sentry's
//! Python SDK (`tests/peers/sentry_envelope.py`) decodes the same bytes.

use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::routing::get;
use faultline::Engine;
use faultline::axum::{Error, FaultlineLayer};
use faultline::error::{AppError, ErrorCode, Severity};
use faultline::export::InMemoryExporter;
use faultline::sentry::{Sentry, SentryConfig};
use http::{HeaderMap, StatusCode, Uri};
use serde_json::Value;

use crate::common::quiet_config;
use crate::peers::run_python;

const EMAIL: &str = "maria.lopez@example.org";
const CARD: &str = "4111 1111 1111 1111";
const CARD_DIGITS: &str = "4111111111111111";
const PHONE: &str = "+1 415 555 0134";
const PHONE_DIGITS: &str = "4155550134";
const PUBLIC_KEY: &str = "3f9c2a7e5b1d4c6e8a0b2d4f6e8c0a1b";
const PARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN: &str = "00f067aa0ba902b7";

const ORDER_FAILED: ErrorCode =
    ErrorCode::new(3001, "ORDER_FAILED", StatusCode::INTERNAL_SERVER_ERROR);
const SLOW_DOWN: ErrorCode = ErrorCode::new(3002, "SLOW_DOWN", StatusCode::TOO_MANY_REQUESTS);

/// One HTTP request the fake Sentry host received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    path: String,
    auth: String,
    /// The body as sent on the wire, before any content-encoding is undone.
    wire: Vec<u8>,
    /// The envelope (the body decoded).
    body: Vec<u8>,
}

pub(crate) type Log = Arc<Mutex<Vec<Received>>>;

/// Undoes the request's content-encoding (sentry's reqwest transport sends
/// identity today; gzip and deflate are handled should that change).
fn decode_body(headers: &HeaderMap, wire: &[u8]) -> Vec<u8> {
    let encoding = headers
        .get(http::header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    let mut out = Vec::new();
    match encoding.as_str() {
        "" | "identity" => out.extend_from_slice(wire),
        "gzip" => {
            flate2::read::GzDecoder::new(wire)
                .read_to_end(&mut out)
                .expect("gzip body");
        }
        "deflate" => {
            flate2::read::ZlibDecoder::new(wire)
                .read_to_end(&mut out)
                .expect("deflate body");
        }
        other => panic!("the fake Sentry host cannot decode content-encoding {other:?}"),
    }
    out
}

/// The fake Sentry host: answers every POST with 200 and records it.
pub(crate) async fn start_fake_sentry() -> (u16, Log) {
    let log: Log = Arc::default();
    let recorder = log.clone();
    let app = Router::new().fallback(move |uri: Uri, headers: HeaderMap, wire: Bytes| {
        let log = recorder.clone();
        async move {
            let body = decode_body(&headers, &wire);
            log.lock().unwrap().push(Received {
                path: uri.path().to_owned(),
                auth: headers
                    .get("x-sentry-auth")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned(),
                wire: wire.to_vec(),
                body,
            });
            (StatusCode::OK, r#"{"id":"ok"}"#)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, log)
}

/// An envelope: header, then items (header and payload), newline-delimited;
/// an item header with `length` gives its payload's size in bytes.
#[derive(Debug)]
struct Envelope {
    items: Vec<(Value, Vec<u8>)>,
}

fn parse_envelope(body: &[u8]) -> Envelope {
    fn line(body: &[u8], at: &mut usize) -> Option<Vec<u8>> {
        if *at >= body.len() {
            return None;
        }
        let end = body[*at..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |p| *at + p);
        let l = body[*at..end].to_vec();
        *at = end + 1;
        Some(l)
    }
    let mut at = 0;
    let header = line(body, &mut at).expect("an envelope header");
    let _: Value = serde_json::from_slice(&header).expect("the envelope header is JSON");
    let mut items = Vec::new();
    while let Some(item_header) = line(body, &mut at) {
        if item_header.is_empty() {
            continue;
        }
        let item_header: Value = serde_json::from_slice(&item_header).expect("item header JSON");
        let payload = match item_header.get("length").and_then(Value::as_u64) {
            Some(len) => {
                let len = len as usize;
                let p = body[at..at + len].to_vec();
                at += len + 1;
                p
            }
            None => line(body, &mut at).unwrap_or_default(),
        };
        items.push((item_header, payload));
    }
    Envelope { items }
}

/// The events among the envelopes sent to `project`.
pub(crate) fn events(log: &Log, project: &str) -> Vec<Value> {
    let path = format!("/api/{project}/envelope/");
    log.lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == path)
        .flat_map(|r| parse_envelope(&r.body).items)
        .filter(|(h, _)| h["type"] == "event")
        .map(|(_, p)| serde_json::from_slice(&p).expect("the event payload is JSON"))
        .collect()
}

/// The envelopes sent to `project`, as hex (for `tests/peers/sentry_envelope.py`).
pub(crate) fn envelopes_hex(log: &Log, project: &str) -> Vec<String> {
    let path = format!("/api/{project}/envelope/");
    log.lock()
        .unwrap()
        .iter()
        .filter(|r| r.path == path)
        .map(|r| r.body.iter().map(|b| format!("{b:02x}")).collect())
        .collect()
}

/// The events of requests (they name a transaction). The panic hook is
/// process-wide: a panic of another test outside a request may add its own.
fn request_events(all: &[Value]) -> Vec<Value> {
    all.iter()
        .filter(|e| e["transaction"].is_string())
        .cloned()
        .collect()
}

pub(crate) fn wait_for_events(log: &Log, project: &str, count: usize) -> Vec<Value> {
    // A hang-catching deadline only: the flush already waited for the sends.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = events(log, project);
        if found.len() >= count || Instant::now() > deadline {
            return found;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

async fn order(axum::extract::Path(id): axum::extract::Path<u32>) -> Result<&'static str, Error> {
    Err(AppError::new(
        ORDER_FAILED,
        format!("charging order {id} failed for {EMAIL}, card {CARD}, phone {PHONE}"),
    )
    .into())
}

async fn crash() -> &'static str {
    if EMAIL.contains('@') {
        panic!("inventory worker crashed for {EMAIL}");
    }
    "unreachable"
}

async fn slow_down() -> Result<&'static str, Error> {
    Err(AppError::new(SLOW_DOWN, format!("too many requests from {EMAIL}")).into())
}

struct App {
    engine: Engine,
    sentry: Sentry,
    spans: InMemoryExporter,
    port: u16,
}

async fn start_app(sentry_port: u16, project: &str, min: Severity) -> App {
    let config = SentryConfig::new()
        .dsn(format!(
            "http://{PUBLIC_KEY}@127.0.0.1:{sentry_port}/{project}"
        ))
        .environment("it")
        .release("faultline-it@1")
        .min_severity(min);
    let tracing = quiet_config().service_name("it-sentry").build().unwrap();
    let sentry = Sentry::new(config, faultline::masking::from_config(&tracing)).unwrap();
    let spans = InMemoryExporter::default();
    let engine = Engine::builder(tracing)
        .exporter(spans.clone())
        .correlator(sentry.clone())
        .install_global(false)
        .build()
        .unwrap();
    let app = Router::new()
        .route("/orders/{id}", get(order))
        .route("/crash", get(crash))
        .route("/slow", get(slow_down))
        .layer(FaultlineLayer::new(engine.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await;
    });
    App {
        engine,
        sentry,
        spans,
        port,
    }
}

/// What a response tells: status, trace id (problem+json body) and server
/// span id (`traceresponse`).
#[derive(Debug)]
struct Reply {
    status: u16,
    trace_id: String,
    span_id: String,
}

async fn call(client: &reqwest::Client, port: u16, path: &str, traceparent: bool) -> Reply {
    let mut req = client.get(format!("http://127.0.0.1:{port}{path}"));
    if traceparent {
        req = req.header("traceparent", format!("00-{PARENT_TRACE}-{PARENT_SPAN}-01"));
    }
    let response = req.send().await.expect("request");
    let status = response.status().as_u16();
    let tr = response.headers()["traceresponse"]
        .to_str()
        .unwrap()
        .to_owned();
    let parts: Vec<&str> = tr.split('-').collect();
    let body: Value = response.json().await.expect("problem+json");
    let trace_id = body["trace_id"].as_str().expect("trace_id").to_owned();
    assert_eq!(parts[1], trace_id, "traceresponse and body agree");
    Reply {
        status,
        trace_id,
        span_id: parts[2].to_owned(),
    }
}

fn event_for<'a>(events: &'a [Value], trace_id: &str) -> &'a Value {
    let matching: Vec<&Value> = events
        .iter()
        .filter(|e| e["contexts"]["trace"]["trace_id"] == trace_id)
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "one event for trace {trace_id}: {events:#?}"
    );
    matching[0]
}

#[test]
fn errors_and_panics_reach_a_sentry_host_over_http_with_the_trace_context_and_no_pii() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (log, default_app, warning_app, replies) = rt.block_on(async {
        let (sentry_port, log) = start_fake_sentry().await;
        let default_app = start_app(sentry_port, "1", Severity::Error).await;
        let warning_app = start_app(sentry_port, "2", Severity::Warning).await;
        // Panics outside requests are reported by the hook; those inside are
        // left to the request path (reported once, with the trace context).
        default_app.sentry.install_panic_hook();
        let client = reqwest::Client::new();
        let mut replies = Vec::new();
        for app in [&default_app, &warning_app] {
            let order = call(&client, app.port, "/orders/42", true).await;
            let crash = call(&client, app.port, "/crash", false).await;
            let slow = call(&client, app.port, "/slow", false).await;
            replies.push((order, crash, slow));
        }
        // The application's own captures, raw personal data included, go
        // through the same masking client.
        let hub = default_app.sentry.hub();
        hub.add_breadcrumb(faultline::sentry::sentry::Breadcrumb {
            message: Some(format!("looked up {EMAIL} by phone {PHONE}")),
            ..Default::default()
        });
        hub.capture_message(
            &format!("manual note: refund to card {CARD} for {EMAIL}"),
            faultline::sentry::sentry::Level::Warning,
        );
        (log, default_app, warning_app, replies)
    });
    // Blocking flushes, off the runtime's tasks (its workers keep serving).
    default_app.engine.force_flush();
    warning_app.engine.force_flush();

    let (order, crash, slow) = &replies[0];
    assert_eq!((order.status, crash.status, slow.status), (500, 500, 429));
    assert_eq!(order.trace_id, PARENT_TRACE);

    // The default threshold (error): the error and the panic, not the warning.
    let all_default_events = wait_for_events(&log, "1", 3);
    let default_events = request_events(&all_default_events);
    assert_eq!(default_events.len(), 2, "{default_events:#?}");
    let e = event_for(&default_events, &order.trace_id);
    let trace = &e["contexts"]["trace"];
    assert_eq!(trace["type"], "trace");
    assert_eq!(trace["span_id"], order.span_id.as_str());
    assert_eq!(trace["parent_span_id"], PARENT_SPAN);
    assert_eq!(trace["op"], "http.server");
    assert_eq!(trace["status"], "internal_error");
    // sentry leaves out the default level, `error`.
    assert_eq!(e["level"].as_str().unwrap_or("error"), "error");
    assert_eq!(e["transaction"], "GET /orders/{id}");
    assert_eq!(e["environment"], "it");
    assert_eq!(e["release"], "faultline-it@1");
    assert_eq!(e["tags"]["error.code"], "3001");
    assert_eq!(e["tags"]["error.name"], "ORDER_FAILED");
    assert_eq!(e["tags"]["http.route"], "/orders/{id}");
    assert_eq!(e["tags"]["http.request.method"], "GET");
    assert_eq!(e["tags"]["http.response.status_code"], "500");
    let exception = &e["exception"]["values"][0];
    let value = exception["value"].as_str().unwrap();
    assert!(
        value.starts_with("charging order 42 failed for "),
        "{value}"
    );
    assert!(
        value.contains("@example.org"),
        "masked, not removed: {value}"
    );

    // The ids are those of the exported server span.
    default_app.spans.wait_for(1, Duration::from_secs(10));
    let spans = default_app.spans.spans();
    let server = spans
        .iter()
        .find(|s| s.name == "GET /orders/{id}")
        .expect("the server span");
    assert_eq!(server.span_context.trace_id().to_string(), order.trace_id);
    assert_eq!(server.span_context.span_id().to_string(), order.span_id);
    assert_eq!(server.parent_span_id.to_string(), PARENT_SPAN);

    let p = event_for(&default_events, &crash.trace_id);
    assert_eq!(p["level"], "fatal");
    assert_eq!(p["contexts"]["trace"]["span_id"], crash.span_id.as_str());
    assert!(p["contexts"]["trace"].get("parent_span_id").is_none());
    assert_eq!(p["exception"]["values"][0]["mechanism"]["type"], "panic");
    assert_eq!(p["tags"]["error.code"], "5000");
    assert_eq!(p["tags"]["http.route"], "/crash");
    assert!(
        !default_events
            .iter()
            .any(|e| e["contexts"]["trace"]["trace_id"] == slow.trace_id),
        "a warning is below the default threshold"
    );

    // The warning threshold: all three.
    let (order2, crash2, slow2) = &replies[1];
    let warning_events = request_events(&wait_for_events(&log, "2", 3));
    assert_eq!(warning_events.len(), 3, "{warning_events:#?}");
    event_for(&warning_events, &order2.trace_id);
    event_for(&warning_events, &crash2.trace_id);
    let w = event_for(&warning_events, &slow2.trace_id);
    assert_eq!(w["level"], "warning");
    assert_eq!(w["tags"]["error.code"], "3002");
    assert_eq!(w["contexts"]["trace"]["status"], "resource_exhausted");
    assert_eq!(w["contexts"]["trace"]["span_id"], slow2.span_id.as_str());

    let received = log.lock().unwrap().clone();
    for r in &received {
        // The DSN's key authenticates the request, as Sentry expects...
        assert!(
            r.auth.contains(&format!("sentry_key={PUBLIC_KEY}")),
            "{}",
            r.auth
        );
        // ...and no raw personal data is anywhere in what was sent.
        for bytes in [&r.wire, &r.body] {
            let text = String::from_utf8_lossy(bytes);
            for item in [
                EMAIL,
                CARD,
                CARD_DIGITS,
                PHONE,
                PHONE_DIGITS,
                "415 555 0134",
            ] {
                assert!(!text.contains(item), "{item} sent to Sentry: {text}");
            }
        }
    }
    // The request's panic was reported once (the hook left it alone).
    let crash_reports = all_default_events
        .iter()
        .filter(|e| {
            e["exception"]["values"][0]["value"]
                .as_str()
                .is_some_and(|v| v.contains("inventory worker crashed"))
        })
        .count();
    assert_eq!(crash_reports, 1);
    let manual = all_default_events
        .iter()
        .find(|e| {
            e["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("manual note"))
        })
        .expect("the application's own capture arrived");
    assert_eq!(
        manual["breadcrumbs"]["values"][0]["message"]
            .as_str()
            .map(|m| m.starts_with("looked up")),
        Some(true),
        "{manual:#}"
    );

    // Sentry's own envelope parser reads the same bytes the same way.
    let bodies: Vec<String> = received
        .iter()
        .filter(|r| r.path == "/api/1/envelope/" || r.path == "/api/2/envelope/")
        .map(|r| r.body.iter().map(|b| format!("{b:02x}")).collect())
        .collect();
    let decoded = run_python(
        "sentry_envelope.py",
        &serde_json::json!({ "envelopes": bodies }),
    );
    let peer_events: Vec<&Value> = decoded["envelopes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["items"].as_array().unwrap())
        .filter(|i| i["type"] == "event" && i["event"]["transaction"].is_string())
        .map(|i| &i["event"])
        .collect();
    assert_eq!(peer_events.len(), 5, "{decoded:#}");
    for reply in [order, crash, order2, crash2, slow2] {
        let seen: Vec<&&Value> = peer_events
            .iter()
            .filter(|e| e["contexts"]["trace"]["span_id"] == reply.span_id.as_str())
            .collect();
        assert_eq!(seen.len(), 1, "the peer sees span {}", reply.span_id);
        assert_eq!(
            seen[0]["contexts"]["trace"]["trace_id"],
            reply.trace_id.as_str()
        );
    }
    let peer_order = peer_events
        .iter()
        .find(|e| e["contexts"]["trace"]["span_id"] == order.span_id.as_str())
        .unwrap();
    assert_eq!(
        peer_order["contexts"]["trace"]["parent_span_id"],
        PARENT_SPAN
    );
    assert_eq!(peer_order["tags"]["error.code"], "3001");

    drop(rt);
}
