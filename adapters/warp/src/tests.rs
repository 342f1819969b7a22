use std::borrow::Cow;
use std::net::SocketAddr;
use std::time::Duration;

use faultline_engine::config::TracingConfig;
use faultline_engine::error::{AppError, ErrorCode, codes};
use faultline_engine::export::InMemoryExporter;
use faultline_engine::masking::Masker;
use faultline_engine::opentelemetry::trace::{SpanKind, Status, TraceContextExt};
use faultline_engine::opentelemetry::{KeyValue, Value};
use faultline_engine::opentelemetry_sdk::trace::SpanData;
use serde::Deserialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::*;
use faultline_engine::error::PROBLEM_JSON;
use faultline_engine::request::{HandlerError, TRACERESPONSE};
use http::header;
use http_body_util::BodyExt;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", StatusCode::NOT_FOUND).with_title("User not found");
const PAYMENT_DECLINED: ErrorCode =
    ErrorCode::new(2001, "PAYMENT_DECLINED", StatusCode::PAYMENT_REQUIRED);

fn engine() -> (Engine, InMemoryExporter) {
    engine_with(faultline_engine::masking::NoMasker)
}

fn engine_with(masker: impl Masker + 'static) -> (Engine, InMemoryExporter) {
    let spans = InMemoryExporter::default();
    let engine = Engine::builder(
        TracingConfig::builder()
            .service_name("t")
            .exporters([])
            .build()
            .unwrap(),
    )
    .masker(masker)
    .exporter(spans.clone())
    .install_global(false)
    .build()
    .unwrap();
    (engine, spans)
}

/// Masks the two personal values the tests send.
#[derive(Debug)]
struct TestMasker;

impl Masker for TestMasker {
    fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if text.contains("bob@example.com") || text.contains("4111111111111111") {
            Cow::Owned(
                text.replace("bob@example.com", "[EMAIL]")
                    .replace("4111111111111111", "[CARD]"),
            )
        } else {
            Cow::Borrowed(text)
        }
    }
    fn is_secret_key(&self, _key: &str) -> bool {
        false
    }
}

#[derive(Debug, Deserialize)]
struct Checkout {
    email: String,
    card: String,
}

#[derive(Debug)]
struct Teapot;
impl warp::reject::Reject for Teapot {}

async fn user(id: u32) -> Result<impl Reply, Rejection> {
    if id > 1000 {
        Err(Error::from(AppError::new(
            USER_NOT_FOUND,
            format!("no user with id {id}"),
        )))?;
    }
    Ok(warp::reply::json(&json!({ "id": id })))
}

/// The routes of the tests: the reference service's, and a few more.
fn routes()
-> impl Filter<Extract = (impl Reply,), Error = Rejection> + Clone + Send + Sync + 'static {
    let hello = warp::path!("hello")
        .and(route("/hello"))
        .and(warp::get())
        .map(|| "hello");
    let users = warp::path!("users" / u32)
        .and(route("/users/{id}"))
        .and(warp::get())
        .and_then(user);
    let checkout = warp::path!("checkout")
        .and(route("/checkout"))
        .and(warp::post())
        .and(warp::body::json())
        .map(|body: Checkout| {
            let cx = faultline_engine::opentelemetry::Context::current();
            cx.span()
                .set_attribute(KeyValue::new("app.customer.email", body.email.clone()));
            Error::from(AppError::new(
                PAYMENT_DECLINED,
                format!(
                    "payment declined for {} with card {}",
                    body.email, body.card
                ),
            ))
        });
    let panic = warp::path!("panic")
        .and(route("/panic"))
        .and(warp::get())
        .map(|| -> &'static str { panic!("payment worker crashed for alice@example.com") });
    let whoami = warp::path!("whoami")
        .and(route("/whoami"))
        .and(trace())
        .and(remote())
        .map(|trace: RequestTrace, peer: Option<SocketAddr>| {
            let current = faultline_engine::opentelemetry::Context::current();
            let current = current.span().span_context().span_id().to_string();
            warp::reply::json(&json!({
                "trace_id": trace.trace_id(),
                "span_id": trace.span_id(),
                "current_span_id": current,
                "context_span_id": trace.context().span().span_context().span_id().to_string(),
                "user": trace.baggage("user"),
                "peer": peer.map(|p| p.ip().to_string()),
            }))
        });
    let unavailable = warp::path!("unavailable")
        .and(route("/unavailable"))
        .map(|| warp::reply::with_status("database down", StatusCode::SERVICE_UNAVAILABLE));
    let gone = warp::path!("gone").and(route("/gone")).map(|| {
        warp::reply::with_status(
            warp::reply::json(&json!({"app": "own body"})),
            StatusCode::GONE,
        )
    });
    let teapot = warp::path!("teapot")
        .and(route("/teapot"))
        .and_then(|| async { Err::<String, _>(warp::reject::custom(Teapot)) });
    let plain = warp::path!("plain" / String).and_then(|_: String| async {
        Err::<String, Rejection>(Error::from(std::io::Error::other("secret internals")).into())
    });
    hello
        .or(users)
        .or(checkout)
        .or(panic)
        .or(whoami)
        .or(unavailable)
        .or(gone)
        .or(teapot)
        .or(plain)
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `traceresponse` trace and span ids.
    fn traceresponse(&self) -> (String, String) {
        let value = self.headers[TRACERESPONSE].to_str().unwrap();
        let parts: Vec<&str> = value.split('-').collect();
        assert_eq!(parts.len(), 4, "{value}");
        (parts[1].to_owned(), parts[2].to_owned())
    }

    /// Checks a problem+json answer; returns its trace id.
    fn problem(&self, status: u16, code: u32) -> String {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.headers[header::CONTENT_TYPE], PROBLEM_JSON);
        let p = self.json();
        for member in ["type", "title", "status", "detail", "code", "trace_id"] {
            assert!(p.get(member).is_some(), "no {member}: {p}");
        }
        assert_eq!(p["status"], status);
        assert_eq!(p["code"], code, "{p}");
        let trace_id = p["trace_id"].as_str().unwrap().to_owned();
        assert_eq!(self.traceresponse().0, trace_id);
        trace_id
    }
}

async fn send<F, R>(traced: &Traced<F>, req: Request<String>) -> Answer
where
    F: Filter<Extract = (R,), Error = Rejection> + Clone + Send + Sync + 'static,
    R: Reply + 'static,
{
    let response = traced.clone().call(req).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Answer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn get(uri: &str) -> http::request::Builder {
    Request::builder()
        .uri(uri)
        .header(header::HOST, "api.test:8443")
}

/// The exported span of `trace_id` (flushing first).
fn span_of(engine: &Engine, spans: &InMemoryExporter, trace_id: &str) -> SpanData {
    engine.force_flush();
    let all = spans.spans();
    let mine: Vec<SpanData> = all
        .into_iter()
        .filter(|s| s.span_context.trace_id().to_string() == trace_id)
        .collect();
    assert_eq!(mine.len(), 1, "{mine:#?}");
    mine.into_iter().next().unwrap()
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn text(span: &SpanData, key: &str) -> String {
    attr(span, key)
        .unwrap_or_else(|| panic!("no {key}: {:?}", span.attributes))
        .as_str()
        .into_owned()
}

fn int(span: &SpanData, key: &str) -> i64 {
    match attr(span, key) {
        Some(Value::I64(v)) => *v,
        other => panic!("{key}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_span_is_named_by_the_route_template_with_the_http_attributes() {
    let (engine, spans) = engine();
    let traced = traced(engine.clone(), routes());
    let peer: SocketAddr = "10.1.2.3:45678".parse().unwrap();
    let r = send(
        &traced,
        get("/users/42?page=2")
            .header(header::USER_AGENT, "unit/1")
            .extension(ClientAddr(peer))
            .body(String::new())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json(), json!({"id": 42}));
    let (trace_id, span_id) = r.traceresponse();
    let span = span_of(&engine, &spans, &trace_id);
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(span.span_context.span_id().to_string(), span_id);
    assert_eq!(text(&span, "http.request.method"), "GET");
    assert_eq!(text(&span, "http.route"), "/users/{id}");
    assert_eq!(text(&span, "url.path"), "/users/42");
    assert_eq!(text(&span, "url.query"), "page=2");
    assert_eq!(text(&span, "url.scheme"), "http");
    assert_eq!(int(&span, "http.response.status_code"), 200);
    assert_eq!(text(&span, "server.address"), "api.test");
    assert_eq!(int(&span, "server.port"), 8443);
    assert_eq!(text(&span, "network.protocol.version"), "1.1");
    assert_eq!(text(&span, "user_agent.original"), "unit/1");
    assert_eq!(text(&span, "client.address"), "10.1.2.3");
    assert_eq!(span.status, Status::Unset);
    assert!(attr(&span, "error.type").is_none());
    assert!(span.events.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_incoming_traceparent_is_the_parent_and_a_malformed_one_starts_a_new_trace() {
    let (engine, spans) = engine();
    let traced = traced(engine.clone(), routes());
    let r = send(
        &traced,
        get("/hello")
            .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
            .body(String::new())
            .unwrap(),
    )
    .await;
    assert_eq!((r.status, r.body.as_str()), (StatusCode::OK, "hello"));
    let (trace_id, _) = r.traceresponse();
    assert_eq!(trace_id, TRACE);
    let span = span_of(&engine, &spans, TRACE);
    assert_eq!(span.name, "GET /hello");
    assert_eq!(span.parent_span_id.to_string(), PARENT);
    assert!(span.parent_span_is_remote);

    for bad in [
        format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
        format!("00-{TRACE}-0000000000000000-01"),
        "garbage".to_owned(),
    ] {
        let r = send(
            &traced,
            get("/hello")
                .header("traceparent", &bad)
                .body(String::new())
                .unwrap(),
        )
        .await;
        let (trace_id, _) = r.traceresponse();
        assert_ne!(trace_id, TRACE, "{bad}");
        let span = span_of(&engine, &spans, &trace_id);
        assert_eq!(
            span.parent_span_id,
            faultline_engine::opentelemetry::trace::SpanId::INVALID,
            "{bad}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_error_is_problem_json_with_its_code_and_the_exported_trace_id() {
    let (engine, spans) = engine_with(TestMasker);
    let traced = traced(engine.clone(), routes());
    let r = send(&traced, get("/users/9999").body(String::new()).unwrap()).await;
    let trace_id = r.problem(404, 1001);
    let p = r.json();
    assert_eq!(p["title"], "User not found");
    assert_eq!(p["detail"], "no user with id 9999");
    assert_eq!(p["instance"], "/users/9999");
    let span = span_of(&engine, &spans, &trace_id);
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(int(&span, "http.response.status_code"), 404);
    assert_eq!(text(&span, "error.type"), "USER_NOT_FOUND");
    assert_eq!(span.status, Status::Unset, "a 4xx leaves the status unset");
    let event = &span.events[0];
    assert_eq!(event.name, "exception");
    assert!(
        event
            .attributes
            .iter()
            .any(|kv| kv.key.as_str() == "faultline.error.code" && kv.value == Value::I64(1001))
    );

    // An `Error` returned as a reply; its message is masked in the body.
    let r = send(
        &traced,
        Request::post("/checkout")
            .header(header::CONTENT_TYPE, "application/json")
            .body(json!({"email": "bob@example.com", "card": "4111111111111111"}).to_string())
            .unwrap(),
    )
    .await;
    let trace_id = r.problem(402, 2001);
    assert_eq!(
        r.json()["detail"],
        "payment declined for [EMAIL] with card [CARD]",
        "the detail is masked"
    );
    let span = span_of(&engine, &spans, &trace_id);
    assert_eq!(span.name, "POST /checkout");
    assert_eq!(text(&span, "error.type"), "PAYMENT_DECLINED");
    assert!(attr(&span, "app.customer.email").is_some());

    // An error without a code: 500, code 5000, none of its message.
    let r = send(&traced, get("/plain/x").body(String::new()).unwrap()).await;
    let trace_id = r.problem(500, 5000);
    assert!(!r.body.contains("secret internals"), "{}", r.body);
    let span = span_of(&engine, &spans, &trace_id);
    assert_eq!(span.name, "GET", "a route without `route` keeps the method");
    assert_eq!(span.events.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warp_rejections_are_problem_json() {
    let (engine, spans) = engine();
    let traced = traced(engine.clone(), routes());

    // No route: 404, code 4040, the span named by the method alone.
    let r = send(&traced, get("/nope").body(String::new()).unwrap()).await;
    let trace_id = r.problem(404, 4040);
    let span = span_of(&engine, &spans, &trace_id);
    assert_eq!(span.name, "GET");
    assert!(attr(&span, "http.route").is_none());
    assert_eq!(span.status, Status::Unset);

    // A path parameter that does not parse: no route either.
    let r = send(&traced, get("/users/abc").body(String::new()).unwrap()).await;
    r.problem(404, 4040);

    // Wrong method on a known path: 405, code 4050, the route named.
    let r = send(
        &traced,
        Request::post("/hello").body(String::new()).unwrap(),
    )
    .await;
    let trace_id = r.problem(405, 4050);
    assert_eq!(r.json()["detail"], "Method Not Allowed");
    let span = span_of(&engine, &spans, &trace_id);
    assert_eq!(span.name, "POST /hello");
    assert_eq!(int(&span, "http.response.status_code"), 405);

    // JSON that does not parse: 400; JSON of the wrong shape: 422.
    let r = send(
        &traced,
        Request::post("/checkout")
            .header(header::CONTENT_TYPE, "application/json")
            .body("{not json".to_owned())
            .unwrap(),
    )
    .await;
    let trace_id = r.problem(400, 4000);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .starts_with("Failed to parse the request body as JSON: "),
        "{}",
        r.body
    );
    let span = span_of(&engine, &spans, &trace_id);
    assert_eq!(span.name, "POST /checkout");
    assert!(span.events.is_empty(), "a rejection is not an exception");
    let r = send(
        &traced,
        Request::post("/checkout")
            .header(header::CONTENT_TYPE, "application/json")
            .body(r#"{"email": "bob@example.com"}"#.to_owned())
            .unwrap(),
    )
    .await;
    r.problem(422, 4220);
    assert!(
        r.json()["detail"]
            .as_str()
            .unwrap()
            .contains("missing field `card`")
    );

    // A content type the body filter does not read: 415.
    let r = send(
        &traced,
        Request::post("/checkout")
            .header(header::CONTENT_TYPE, "text/plain")
            .body("{}".to_owned())
            .unwrap(),
    )
    .await;
    r.problem(415, 4150);

    // An unhandled custom rejection: 500 with nothing of its Debug form.
    let r = send(&traced, get("/teapot").body(String::new()).unwrap()).await;
    let trace_id = r.problem(500, 5000);
    assert!(!r.body.contains("Teapot"), "{}", r.body);
    assert_eq!(
        r.json()["detail"],
        faultline_engine::request::INTERNAL_DETAIL
    );
    let span = span_of(&engine, &spans, &trace_id);
    assert_eq!(span.name, "GET /teapot");
    assert!(matches!(span.status, Status::Error { .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_is_a_500_without_its_text_and_the_service_keeps_serving() {
    let (engine, spans) = engine();
    let traced = traced(engine.clone(), routes());
    let r = send(&traced, get("/panic").body(String::new()).unwrap()).await;
    let trace_id = r.problem(500, 5000);
    assert!(
        !r.body.contains("alice") && !r.body.contains("crashed"),
        "{}",
        r.body
    );
    let span = span_of(&engine, &spans, &trace_id);
    assert_eq!(span.name, "GET /panic");
    assert!(
        matches!(span.status, Status::Error { .. }),
        "{:?}",
        span.status
    );
    assert_eq!(text(&span, "error.type"), "panic");
    assert_eq!(span.events.len(), 1);
    assert_eq!(span.events[0].name, "exception");

    let r = send(&traced, get("/hello").body(String::new()).unwrap()).await;
    assert_eq!(r.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_filter_gives_the_request_trace_and_the_context_is_current() {
    let (engine, spans) = engine();
    let traced = traced(engine.clone(), routes());
    let r = send(
        &traced,
        get("/whoami")
            .header("traceparent", format!("00-{TRACE}-{PARENT}-01"))
            .header("baggage", "user=alice,tier=gold")
            .body(String::new())
            .unwrap(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let body = r.json();
    let (trace_id, span_id) = r.traceresponse();
    assert_eq!(body["trace_id"], TRACE);
    assert_eq!(trace_id, TRACE);
    assert_eq!(body["span_id"], span_id.as_str());
    assert_eq!(body["current_span_id"], span_id.as_str());
    assert_eq!(body["context_span_id"], span_id.as_str());
    assert_eq!(body["user"], "alice");
    assert_eq!(body["peer"], serde_json::Value::Null);
    let span = span_of(&engine, &spans, TRACE);
    assert_eq!(span.name, "GET /whoami");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_5xx_marks_the_span_as_error_and_application_bodies_are_kept() {
    let (engine, spans) = engine();
    let traced = traced(engine.clone(), routes());

    // The application's own plain-text 503: problem+json with its text.
    let r = send(&traced, get("/unavailable").body(String::new()).unwrap()).await;
    let trace_id = r.problem(503, 5030);
    assert_eq!(r.json()["detail"], "database down");
    let span = span_of(&engine, &spans, &trace_id);
    assert!(matches!(span.status, Status::Error { .. }));
    assert_eq!(text(&span, "error.type"), "503");

    // The application's own JSON error body is left as it is.
    let r = send(&traced, get("/gone").body(String::new()).unwrap()).await;
    assert_eq!(r.status, StatusCode::GONE);
    assert_eq!(r.json(), json!({"app": "own body"}));
    let (trace_id, _) = r.traceresponse();
    let span = span_of(&engine, &spans, &trace_id);
    assert_eq!(span.status, Status::Unset);
    assert_eq!(int(&span, "http.response.status_code"), 410);
}

#[tokio::test]
async fn without_traced_the_filters_do_nothing_and_recover_answers_safely() {
    let filter = warp::path!("users" / u32)
        .and(route("/users/{id}"))
        .and(trace())
        .and_then(|id: u32, trace: RequestTrace| async move {
            assert!(trace.trace_id().is_none());
            assert!(trace.span_id().is_none());
            assert!(trace.baggage("user").is_none());
            user(id).await
        })
        .recover(recover);
    let r = warp::test::request().path("/users/7").reply(&filter).await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = warp::test::request()
        .path("/users/7777")
        .reply(&filter)
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    let p: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert_eq!(p["code"], 1001);
    assert_eq!(
        p["detail"], "User not found",
        "no message without the service"
    );
    assert!(p.get("trace_id").is_none());
    // Other rejections stay warp's.
    let r = warp::test::request().path("/nope").reply(&filter).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r.body().is_empty());
}

#[test]
fn an_error_converts_from_any_error_and_keeps_its_code() {
    let e = Error::from(AppError::new(USER_NOT_FOUND, "x"));
    assert_eq!(e.0.code(), Some(USER_NOT_FOUND));
    let rejection: Rejection = e.into();
    assert!(rejection.find::<Error>().is_some());
    let e = Error::from(std::io::Error::other("disk"));
    assert_eq!(e.0.code(), None);
    assert_eq!(e.0.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let response = e.into_response();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(response.extensions().get::<HandlerError>().is_some());
    assert_eq!(codes::INTERNAL.code(), 5000);
}

/// One HTTP/2 request (prior knowledge) on a fresh connection: the
/// response's head and body.
async fn h2_get(addr: SocketAddr, path: &str) -> (http::response::Parts, Vec<u8>) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(stream).await.unwrap();
    let connection = tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let request = http::Request::get(format!("http://{addr}{path}"))
        .body(())
        .unwrap();
    let (response, _) = client.send_request(request, true).unwrap();
    let (head, mut body) = response.await.unwrap().into_parts();
    let mut bytes = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        body.flow_control().release_capacity(chunk.len()).unwrap();
        bytes.extend_from_slice(&chunk);
    }
    drop(client);
    connection.abort();
    (head, bytes)
}

/// One raw HTTP/1.1 request on a fresh connection (`Connection: close`).
async fn raw_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: raw/1\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_records_the_peer_and_shuts_down_gracefully() {
    let (engine, spans) = engine();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        traced(engine.clone(), routes())
            .serve(listener)
            .graceful(async {
                let _ = stopped.await;
            })
            .run(),
    );

    let (status, head, body) = raw_get(addr, "/whoami").await;
    assert_eq!(status, 200, "{head}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        body["peer"], "127.0.0.1",
        "remote() under faultline's server"
    );
    let trace_id = body["trace_id"].as_str().unwrap().to_owned();
    assert!(
        head.contains(&format!("traceresponse: 00-{trace_id}-")),
        "{head}"
    );
    let span = span_of(&engine, &spans, &trace_id);
    assert_eq!(text(&span, "client.address"), "127.0.0.1");
    assert_eq!(text(&span, "server.address"), "127.0.0.1");
    assert_eq!(int(&span, "server.port"), i64::from(addr.port()));
    assert_eq!(text(&span, "user_agent.original"), "raw/1");
    assert_eq!(text(&span, "network.protocol.version"), "1.1");

    let (status, _, _) = raw_get(addr, "/panic").await;
    assert_eq!(status, 500);
    let (status, _, body) = raw_get(addr, "/hello").await;
    assert_eq!((status, body.as_str()), (200, "hello"));

    // HTTP/2 (prior knowledge): each stream is spawned as a task of its
    // own, and still sees the connection's peer.
    let (head, body) = h2_get(addr, "/whoami").await;
    assert_eq!(head.status, 200);
    let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["peer"], "127.0.0.1", "remote() over HTTP/2");
    let span = span_of(&engine, &spans, body["trace_id"].as_str().unwrap());
    assert_eq!(text(&span, "network.protocol.version"), "2");
    assert_eq!(text(&span, "client.address"), "127.0.0.1");

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops on the signal")
        .unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

/// Excluded routes: no span and no `traceresponse`; what passes goes back
/// as the filter made it, and errors, rejections and panics are still
/// answered as problem details (without a trace id).
#[tokio::test]
async fn excluded_routes_answer_without_a_span() {
    let spans = InMemoryExporter::default();
    let config = TracingConfig::builder()
        .service_name("t")
        .exporters([])
        .excluded_routes([
            "/hello",
            "/users/{id}",
            "/panic",
            "/unavailable",
            "/nowhere",
        ])
        .build()
        .unwrap();
    let engine = Engine::builder(config)
        .exporter(spans.clone())
        .install_global(false)
        .build()
        .unwrap();
    let traced = traced(engine.clone(), routes());

    let hello = send(&traced, get("/hello").body(String::new()).unwrap()).await;
    assert_eq!(
        (hello.status, hello.body.as_str()),
        (StatusCode::OK, "hello")
    );
    assert!(hello.headers.get(TRACERESPONSE).is_none());

    // A handler's error: its code, no trace id.
    let missing = send(&traced, get("/users/4242").body(String::new()).unwrap()).await;
    let problem = missing.json();
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.headers[header::CONTENT_TYPE], PROBLEM_JSON);
    assert_eq!(problem["code"], 1001);
    assert!(problem.get("trace_id").is_none(), "{problem}");
    assert!(missing.headers.get(TRACERESPONSE).is_none());

    // A panic: 500, nothing of its text.
    let panicked = send(&traced, get("/panic").body(String::new()).unwrap()).await;
    assert_eq!(panicked.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(!panicked.body.contains("alice"), "{}", panicked.body);
    assert!(panicked.json().get("trace_id").is_none());

    // The filter's own error reply keeps its text; warp's 404 says no more.
    let down = send(&traced, get("/unavailable").body(String::new()).unwrap()).await;
    assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(down.json()["detail"], "database down");
    let nowhere = send(&traced, get("/nowhere").body(String::new()).unwrap()).await;
    assert_eq!(nowhere.status, StatusCode::NOT_FOUND);
    assert_eq!(nowhere.headers[header::CONTENT_TYPE], PROBLEM_JSON);
    assert_eq!(nowhere.json()["code"], 4040);
    // A wrong method on an excluded route: warp's 405, its `Allow` kept.
    let post = send(
        &traced,
        Request::post("/hello").body(String::new()).unwrap(),
    )
    .await;
    assert_eq!(post.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(post.json()["code"], 4050);
    assert!(post.headers.get(TRACERESPONSE).is_none());

    // A traced request after them: the only span exported is its own.
    let traced_hello = send(&traced, get("/whoami").body(String::new()).unwrap()).await;
    assert!(traced_hello.headers.get(TRACERESPONSE).is_some());
    engine.force_flush();
    let exported = spans.spans();
    assert_eq!(exported.len(), 1, "{exported:#?}");
    assert_eq!(exported[0].name, "GET /whoami");
}
