//! The middleware against poem's `TestClient` and a real poem server, with
//! the spans read back from an in-memory exporter.

use std::time::Duration;

use faultline_engine::Engine;
use faultline_engine::config::{TracingConfig, TracingConfigBuilder};
use faultline_engine::error::{AppError, ErrorCode, PROBLEM_JSON};
use faultline_engine::export::InMemoryExporter;
use opentelemetry::Value;
use opentelemetry::trace::{SpanId, SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use poem::test::{TestClient, TestResponse};
use poem::web::{Json, Path};
use poem::{EndpointExt, Route, get, handler, post};

use super::*;
use http::StatusCode;

const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", StatusCode::NOT_FOUND).with_title("User not found");
const PAYMENT_DECLINED: ErrorCode =
    ErrorCode::new(2001, "PAYMENT_DECLINED", StatusCode::PAYMENT_REQUIRED);

const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Masks the word "bob" (the adapter's job is to route details through the
/// engine's masker; the PII detectors are the engine's, tested there).
#[derive(Debug)]
struct BobMasker;

impl faultline_engine::masking::Masker for BobMasker {
    fn mask<'a>(&self, text: &'a str) -> std::borrow::Cow<'a, str> {
        if text.contains("bob") {
            std::borrow::Cow::Owned(text.replace("bob", "***"))
        } else {
            std::borrow::Cow::Borrowed(text)
        }
    }
    fn is_secret_key(&self, _key: &str) -> bool {
        false
    }
}

fn engine() -> (Engine, InMemoryExporter) {
    engine_with(|b| b)
}

fn engine_with(
    f: impl FnOnce(faultline_engine::EngineBuilder) -> faultline_engine::EngineBuilder,
) -> (Engine, InMemoryExporter) {
    configured(|c| c, f)
}

/// An engine exporting into memory, its configuration and then its
/// builder set by `config` and `f`.
fn configured(
    config: impl FnOnce(TracingConfigBuilder) -> TracingConfigBuilder,
    f: impl FnOnce(faultline_engine::EngineBuilder) -> faultline_engine::EngineBuilder,
) -> (Engine, InMemoryExporter) {
    let spans = InMemoryExporter::default();
    let config = config(TracingConfig::builder().service_name("t").exporters([]))
        .build()
        .unwrap();
    let engine = f(Engine::builder(config))
        .exporter(spans.clone())
        .install_global(false)
        .build()
        .unwrap();
    (engine, spans)
}

#[handler]
fn hello() -> &'static str {
    "hello"
}

#[handler]
fn user(Path(id): Path<String>) -> Result<Json<serde_json::Value>, Error> {
    match id.parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(Json(serde_json::json!({ "id": n }))),
        _ => Err(AppError::new(USER_NOT_FOUND, format!("no user with id {id}")).into()),
    }
}

#[derive(Debug, serde::Deserialize)]
struct Checkout {
    email: String,
    #[allow(dead_code)]
    card: String,
}

/// Returns the error itself (not in a `Result`).
#[handler]
fn checkout(Json(body): Json<Checkout>) -> Error {
    AppError::new(
        PAYMENT_DECLINED,
        format!("payment declined for {}", body.email),
    )
    .into()
}

/// A `poem::Result` handler, the error going through `?`.
#[handler]
fn order() -> poem::Result<String> {
    Err(Error::from(AppError::new(PAYMENT_DECLINED, "no funds")))?
}

/// An error without a code.
#[handler]
fn io_failure() -> Result<String, Error> {
    Err(std::io::Error::other("disk /var/secret full").into())
}

/// A poem error through `?` in a `Result<_, Error>` handler.
#[handler]
fn forbidden() -> Result<String, Error> {
    Err(poem::Error::from_status(StatusCode::FORBIDDEN))?
}

/// poem's JSON error through `?` in a `Result<_, Error>` handler.
#[handler]
async fn manual_json(body: poem::Body) -> Result<String, Error> {
    let parsed: Checkout = body.into_json().await?;
    Ok(parsed.email)
}

#[handler]
fn panics() -> &'static str {
    panic!("payment worker crashed for alice@example.com");
}

#[handler]
fn panics_with_trace(_trace: RequestTrace) -> &'static str {
    panic!("payment worker crashed for alice@example.com");
}

#[handler]
fn missing() -> StatusCode {
    StatusCode::NOT_FOUND
}

#[handler]
fn unavailable() -> StatusCode {
    StatusCode::SERVICE_UNAVAILABLE
}

#[handler]
fn teapot() -> Response {
    Response::builder()
        .status(StatusCode::IM_A_TEAPOT)
        .content_type("application/json")
        .body(r#"{"mine":true}"#)
}

#[handler]
fn trace(trace: RequestTrace) -> Json<serde_json::Value> {
    let current = faultline_engine::Engine::trace_id(&opentelemetry::Context::current());
    Json(serde_json::json!({
        "trace_id": trace.trace_id(),
        "span_id": trace.span_id(),
        "tenant": trace.baggage("tenant"),
        "context_trace_id": faultline_engine::Engine::trace_id(&trace.context()),
        "current_trace_id": current,
    }))
}

#[handler]
fn file(Path(path): Path<String>) -> String {
    path
}

fn routes() -> Route {
    Route::new()
        .at("/hello", get(hello))
        .at("/users/:id", get(user))
        .at("/checkout", post(checkout))
        .at("/order", get(order))
        .at("/io", get(io_failure))
        .at("/forbidden", get(forbidden))
        .at("/manual", post(manual_json))
        .at("/panic", get(panics))
        .at("/panic-trace", get(panics_with_trace))
        .at("/missing", get(missing))
        .at("/unavailable", get(unavailable))
        .at("/teapot", get(teapot))
        .at("/trace", get(trace))
        .at("/files/*path", get(file))
        .at("/n/:num<\\d+>", get(hello))
        .nest("/api", Route::new().at("/items/:item", get(hello)))
}

fn client(engine: &Engine) -> TestClient<impl Endpoint> {
    TestClient::new(routes().with(FaultlineMiddleware::new(engine.clone())))
}

fn flushed(engine: &Engine, spans: &InMemoryExporter) -> Vec<SpanData> {
    engine.force_flush();
    spans.spans()
}

fn only_span(engine: &Engine, spans: &InMemoryExporter) -> SpanData {
    let all = flushed(engine, spans);
    assert_eq!(
        all.len(),
        1,
        "{:?}",
        all.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    all.into_iter().next().unwrap()
}

fn attr<'a>(span: &'a SpanData, key: &str) -> Option<&'a Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| &kv.value)
}

fn attr_str(span: &SpanData, key: &str) -> Option<String> {
    attr(span, key).map(|v| v.as_str().into_owned())
}

fn attr_i64(span: &SpanData, key: &str) -> Option<i64> {
    match attr(span, key) {
        Some(Value::I64(n)) => Some(*n),
        _ => None,
    }
}

fn header(resp: &TestResponse, name: &str) -> Option<String> {
    resp.0
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

async fn problem(resp: TestResponse) -> serde_json::Value {
    assert_eq!(header(&resp, "content-type").as_deref(), Some(PROBLEM_JSON));
    resp.0.into_body().into_json().await.unwrap()
}

fn trace_id(span: &SpanData) -> String {
    span.span_context.trace_id().to_string()
}

#[tokio::test]
async fn a_matched_route_names_the_span_with_its_template_and_http_attributes() {
    let (engine, spans) = engine();
    let resp = client(&engine)
        .get("/users/42")
        .query("q", &"1")
        .header("user-agent", "curl/8")
        .header("host", "api.example.com:8443")
        .send()
        .await;
    resp.assert_status_is_ok();
    let traceresponse = header(&resp, "traceresponse").expect("traceresponse");
    resp.assert_json(serde_json::json!({ "id": 42 })).await;

    let span = only_span(&engine, &spans);
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(
        attr_str(&span, "http.request.method").as_deref(),
        Some("GET")
    );
    assert_eq!(
        attr_str(&span, "http.route").as_deref(),
        Some("/users/{id}")
    );
    assert_eq!(attr_str(&span, "url.path").as_deref(), Some("/users/42"));
    assert_eq!(attr_str(&span, "url.query").as_deref(), Some("q=1"));
    assert_eq!(attr_str(&span, "url.scheme").as_deref(), Some("http"));
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(200));
    assert_eq!(
        attr_str(&span, "server.address").as_deref(),
        Some("api.example.com")
    );
    assert_eq!(attr_i64(&span, "server.port"), Some(8443));
    assert_eq!(
        attr_str(&span, "network.protocol.version").as_deref(),
        Some("1.1")
    );
    assert_eq!(
        attr_str(&span, "user_agent.original").as_deref(),
        Some("curl/8")
    );
    assert!(attr(&span, "error.type").is_none());
    assert_eq!(span.status, Status::Unset);
    assert_eq!(
        traceresponse,
        format!("00-{}-{}-01", trace_id(&span), span.span_context.span_id())
    );
}

#[tokio::test]
async fn wildcard_regex_and_nested_routes_get_param_templates() {
    let (engine, spans) = engine();
    let cli = client(&engine);
    cli.get("/files/a/b.txt")
        .send()
        .await
        .assert_text("a/b.txt")
        .await;
    cli.get("/n/7").send().await.assert_status_is_ok();
    cli.get("/api/items/3").send().await.assert_status_is_ok();
    let mut names: Vec<String> = flushed(&engine, &spans)
        .iter()
        .map(|s| format!("{} {:?}", s.name, attr_str(s, "url.path")))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "GET /api/items/{item} Some(\"/api/items/3\")",
            "GET /files/{*path} Some(\"/files/a/b.txt\")",
            "GET /n/{num} Some(\"/n/7\")",
        ]
    );
}

#[tokio::test]
async fn an_incoming_traceparent_is_the_parent() {
    let (engine, spans) = engine();
    let resp = client(&engine)
        .get("/hello")
        .header("traceparent", PARENT)
        .send()
        .await;
    resp.assert_status_is_ok();
    let traceresponse = header(&resp, "traceresponse").unwrap();
    // The span ends with the body.
    resp.assert_text("hello").await;
    let span = only_span(&engine, &spans);
    assert_eq!(trace_id(&span), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert_eq!(
        traceresponse,
        format!(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
            span.span_context.span_id()
        )
    );
}

#[tokio::test]
async fn a_malformed_traceparent_starts_a_new_trace() {
    let (engine, spans) = engine();
    let resp = client(&engine)
        .get("/hello")
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        )
        .send()
        .await;
    resp.assert_status_is_ok();
    resp.assert_text("hello").await;
    let span = only_span(&engine, &spans);
    assert_ne!(trace_id(&span), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(span.parent_span_id, SpanId::INVALID);
    assert!(span.span_context.is_valid());
}

#[tokio::test]
async fn a_handler_error_is_problem_json_with_its_code_and_the_trace_id() {
    let (engine, spans) = engine();
    let resp = client(&engine).get("/users/9999").send().await;
    resp.assert_status(StatusCode::NOT_FOUND);
    assert!(header(&resp, "traceresponse").is_some());
    let body = problem(resp).await;
    let span = only_span(&engine, &spans);
    assert_eq!(body["code"], 1001);
    assert_eq!(body["status"], 404);
    assert_eq!(body["title"], "User not found");
    assert_eq!(body["detail"], "no user with id 9999");
    assert_eq!(body["instance"], "/users/9999");
    assert_eq!(body["trace_id"], trace_id(&span));
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(404));
    assert_eq!(
        attr_str(&span, "error.type").as_deref(),
        Some("USER_NOT_FOUND")
    );
    assert!(span.events.iter().any(|e| e.name == "exception"));
    // A 4xx is the client's error: the server span's status stays unset.
    assert_eq!(span.status, Status::Unset);
}

#[tokio::test]
async fn an_error_returned_as_the_response_or_through_poem_result_is_recorded() {
    let (engine, spans) = engine_with(|b| b.masker(BobMasker));
    let cli = client(&engine);
    let resp = cli
        .post("/checkout")
        .body_json(&serde_json::json!({ "email": "bob@example.com", "card": "4111111111111111" }))
        .send()
        .await;
    resp.assert_status(StatusCode::PAYMENT_REQUIRED);
    let checkout_body = problem(resp).await;
    assert_eq!(checkout_body["code"], 2001);
    // The detail names the email: masked before it leaves.
    let detail = checkout_body["detail"].as_str().unwrap();
    assert_eq!(detail, "payment declined for ***@example.com");

    let resp = cli.get("/order").send().await;
    resp.assert_status(StatusCode::PAYMENT_REQUIRED);
    let order_body = problem(resp).await;
    assert_eq!(order_body["code"], 2001);
    assert_eq!(order_body["detail"], "no funds");

    let all = flushed(&engine, &spans);
    assert_eq!(all.len(), 2);
    for span in &all {
        assert!(
            span.events.iter().any(|e| e.name == "exception"),
            "{}",
            span.name
        );
        assert_eq!(
            attr_str(span, "error.type").as_deref(),
            Some("PAYMENT_DECLINED")
        );
    }
    let names: Vec<&str> = all.iter().map(|s| s.name.as_ref()).collect();
    assert!(names.contains(&"POST /checkout") && names.contains(&"GET /order"));
    let checkout_span = all.iter().find(|s| s.name == "POST /checkout").unwrap();
    assert_eq!(checkout_body["trace_id"], trace_id(checkout_span));
}

#[tokio::test]
async fn an_error_without_a_code_is_a_500_with_a_generic_detail_and_an_error_status() {
    let (engine, spans) = engine();
    let resp = client(&engine).get("/io").send().await;
    resp.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    let body = problem(resp).await;
    assert_eq!(body["code"], 5000);
    assert!(!body.to_string().contains("secret"), "{body}");
    let span = only_span(&engine, &spans);
    assert_eq!(body["trace_id"], trace_id(&span));
    assert!(
        matches!(span.status, Status::Error { .. }),
        "{:?}",
        span.status
    );
}

#[tokio::test]
async fn no_route_is_4040_and_the_span_is_named_by_the_method() {
    let (engine, spans) = engine();
    let resp = client(&engine).get("/nope").send().await;
    resp.assert_status(StatusCode::NOT_FOUND);
    assert!(header(&resp, "traceresponse").is_some());
    let body = problem(resp).await;
    let span = only_span(&engine, &spans);
    assert_eq!(body["code"], 4040);
    assert_eq!(body["detail"], "Not Found");
    assert_eq!(body["trace_id"], trace_id(&span));
    assert_eq!(span.name, "GET");
    assert!(attr(&span, "http.route").is_none());
    assert_eq!(attr_i64(&span, "http.response.status_code"), Some(404));
    assert_eq!(span.status, Status::Unset);
}

#[tokio::test]
async fn a_handlers_own_404_on_a_matched_route_is_4041() {
    let (engine, spans) = engine();
    let resp = client(&engine).get("/missing").send().await;
    resp.assert_status(StatusCode::NOT_FOUND);
    let body = problem(resp).await;
    assert_eq!(body["code"], 4041);
    let span = only_span(&engine, &spans);
    assert_eq!(span.name, "GET /missing");
    assert_eq!(body["trace_id"], trace_id(&span));
}

#[tokio::test]
async fn a_wrong_method_is_4050() {
    let (engine, spans) = engine();
    let resp = client(&engine).post("/hello").send().await;
    resp.assert_status(StatusCode::METHOD_NOT_ALLOWED);
    let body = problem(resp).await;
    let span = only_span(&engine, &spans);
    assert_eq!(body["code"], 4050);
    assert_eq!(body["status"], 405);
    assert_eq!(body["detail"], "Method Not Allowed");
    assert_eq!(body["trace_id"], trace_id(&span));
    assert_eq!(span.name, "POST /hello");
    assert_eq!(span.status, Status::Unset);
}

#[tokio::test]
async fn unreadable_json_bodies_are_400_415_and_422() {
    let (engine, spans) = engine();
    let cli = client(&engine);

    let resp = cli
        .post("/checkout")
        .content_type("application/json")
        .body("{not json")
        .send()
        .await;
    resp.assert_status(StatusCode::BAD_REQUEST);
    let syntax = problem(resp).await;
    assert_eq!(syntax["code"], 4000);
    assert_eq!(
        syntax["detail"],
        "Failed to parse the request body as JSON: key must be a string at line 1 column 2"
    );

    let resp = cli.post("/checkout").body("{}").send().await;
    resp.assert_status(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let media = problem(resp).await;
    assert_eq!(media["code"], 4150);
    assert_eq!(
        media["detail"],
        "Expected request with `Content-Type: application/json`"
    );

    let resp = cli
        .post("/checkout")
        .content_type("application/json")
        .body(r#"{"email":"a@b.c"}"#)
        .send()
        .await;
    resp.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    let data = problem(resp).await;
    assert_eq!(data["code"], 4220);
    assert_eq!(
        data["detail"],
        "Failed to deserialize the JSON body into the target type: missing field `card` at line 1 column 17"
    );

    let all = flushed(&engine, &spans);
    assert_eq!(all.len(), 3);
    for (span, body) in all.iter().zip([&syntax, &media, &data]) {
        assert_eq!(span.name, "POST /checkout");
        assert_eq!(body["trace_id"], trace_id(span));
        assert_eq!(span.status, Status::Unset);
    }
}

#[tokio::test]
async fn a_poem_error_through_the_error_type_keeps_poems_status() {
    let (engine, spans) = engine();
    let cli = client(&engine);
    let resp = cli.get("/forbidden").send().await;
    resp.assert_status(StatusCode::FORBIDDEN);
    let body = problem(resp).await;
    assert_eq!(body["code"], 4030);
    let resp = cli
        .post("/manual")
        .body(r#"{"email":"a@b.c"}"#)
        .send()
        .await;
    resp.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(problem(resp).await["code"], 4220);
    let all = flushed(&engine, &spans);
    assert_eq!(all.len(), 2);
    for span in &all {
        // The client's error, not the application's: no exception event.
        assert!(span.events.is_empty(), "{}: {:?}", span.name, span.events);
        assert_eq!(span.status, Status::Unset);
    }
    assert_eq!(trace_id(&all[0]), body["trace_id"].as_str().unwrap());
}

#[tokio::test]
async fn a_panic_is_a_500_without_its_text_and_the_service_keeps_serving() {
    let (engine, spans) = engine();
    let cli = client(&engine);
    let resp = cli.get("/panic").send().await;
    resp.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    assert!(header(&resp, "traceresponse").is_some());
    let body = problem(resp).await;
    assert_eq!(body["code"], 5000);
    let text = body.to_string();
    assert!(
        !text.contains("alice") && !text.contains("crashed"),
        "{text}"
    );

    cli.get("/hello").send().await.assert_text("hello").await;

    let all = flushed(&engine, &spans);
    assert_eq!(all.len(), 2);
    let span = all.iter().find(|s| s.name != "GET /hello").unwrap();
    assert_eq!(body["trace_id"], trace_id(span));
    assert_eq!(attr_str(span, "error.type").as_deref(), Some("panic"));
    assert_eq!(attr_i64(span, "http.response.status_code"), Some(500));
    assert!(
        matches!(span.status, Status::Error { .. }),
        "{:?}",
        span.status
    );
    assert!(span.events.iter().any(|e| e.name == "exception"));
    // Outside the router a panic leaves no response to read the route from.
    assert_eq!(span.name, "GET");
    assert_eq!(attr_str(span, "url.path").as_deref(), Some("/panic"));
}

#[tokio::test]
async fn a_panicking_handler_keeps_its_route_when_something_ran_inside_the_router() {
    let (engine, spans) = engine();
    let mw = FaultlineMiddleware::new(engine.clone());
    let app = Route::new()
        .at("/panic/:n", get(panics).with(mw.clone()))
        .at("/panic-trace/:n", get(panics_with_trace))
        .at("/panic-noted/:n", get(panics).with(RecordRoute))
        .with(mw);
    let cli = TestClient::new(app);
    for path in ["/panic/1", "/panic-trace/2", "/panic-noted/3"] {
        let resp = cli.get(path).send().await;
        resp.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(problem(resp).await["code"], 5000);
    }
    // The inner application only recorded the route: one span a request.
    let mut names: Vec<String> = flushed(&engine, &spans)
        .iter()
        .map(|s| format!("{} {:?}", s.name, attr_str(s, "http.route")))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "GET /panic-noted/{n} Some(\"/panic-noted/{n}\")",
            "GET /panic-trace/{n} Some(\"/panic-trace/{n}\")",
            "GET /panic/{n} Some(\"/panic/{n}\")",
        ]
    );
}

#[tokio::test]
async fn record_route_alone_answers_as_the_endpoint_does() {
    let plain = TestClient::new(Route::new().at("/users/:id", get(user)));
    let noted = TestClient::new(Route::new().at("/users/:id", get(user).with(RecordRoute)));
    for path in ["/users/7", "/users/0"] {
        let (a, b) = (plain.get(path).send().await, noted.get(path).send().await);
        assert_eq!(a.0.status(), b.0.status(), "{path}");
        assert_eq!(header(&a, "content-type"), header(&b, "content-type"));
        assert!(header(&b, "traceresponse").is_none());
        let (a, b) = (a.0.into_body(), b.0.into_body());
        assert_eq!(
            a.into_string().await.unwrap(),
            b.into_string().await.unwrap()
        );
    }
}

#[tokio::test]
async fn applied_to_an_endpoint_alone_it_traces_that_endpoint_with_its_route() {
    let (engine, spans) = engine();
    let mw = FaultlineMiddleware::new(engine.clone());
    let app = Route::new()
        .at("/panic/:n", get(panics).with(mw.clone()))
        .at("/users/:id", get(user).with(mw));
    let cli = TestClient::new(app);
    let resp = cli.get("/panic/1").send().await;
    assert_eq!(problem(resp).await["code"], 5000);
    let resp = cli.get("/users/0").send().await;
    assert_eq!(problem(resp).await["code"], 1001);
    // Not traced: no faultline endpoint where no route matched.
    cli.get("/nope")
        .send()
        .await
        .assert_status(StatusCode::NOT_FOUND);
    let mut names: Vec<String> = flushed(&engine, &spans)
        .iter()
        .map(|s| s.name.to_string())
        .collect();
    names.sort();
    assert_eq!(names, ["GET /panic/{n}", "GET /users/{id}"]);
}

#[tokio::test]
async fn a_plain_5xx_becomes_problem_json_with_an_error_status() {
    let (engine, spans) = engine();
    let resp = client(&engine).get("/unavailable").send().await;
    resp.assert_status(StatusCode::SERVICE_UNAVAILABLE);
    let body = problem(resp).await;
    assert_eq!(body["code"], 5030);
    let span = only_span(&engine, &spans);
    assert_eq!(body["trace_id"], trace_id(&span));
    assert!(
        matches!(span.status, Status::Error { .. }),
        "{:?}",
        span.status
    );
    assert_eq!(attr_str(&span, "error.type").as_deref(), Some("503"));
}

#[tokio::test]
async fn an_application_error_body_with_its_own_content_type_is_kept() {
    let (engine, spans) = engine();
    let resp = client(&engine).get("/teapot").send().await;
    resp.assert_status(StatusCode::IM_A_TEAPOT);
    assert!(header(&resp, "traceresponse").is_some());
    resp.assert_text(r#"{"mine":true}"#).await;
    assert_eq!(only_span(&engine, &spans).name, "GET /teapot");
}

#[tokio::test]
async fn the_request_trace_extractor_sees_the_request_span_and_baggage() {
    let (engine, spans) = engine();
    let resp = client(&engine)
        .get("/trace")
        .header("traceparent", PARENT)
        .header("baggage", "tenant=acme")
        .send()
        .await;
    resp.assert_status_is_ok();
    let body: serde_json::Value = resp.0.into_body().into_json().await.unwrap();
    let span = only_span(&engine, &spans);
    assert_eq!(body["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(body["span_id"], span.span_context.span_id().to_string());
    assert_eq!(body["tenant"], "acme");
    assert_eq!(body["context_trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    // The handler runs with the request's context current.
    assert_eq!(body["current_trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
}

#[tokio::test]
async fn without_the_middleware_the_extractor_is_empty_and_errors_are_safe() {
    let cli = TestClient::new(routes());
    let resp = cli.get("/trace").send().await;
    let body: serde_json::Value = resp.0.into_body().into_json().await.unwrap();
    assert!(body["trace_id"].is_null() && body["span_id"].is_null());
    let resp = cli.get("/users/0").send().await;
    resp.assert_status(StatusCode::NOT_FOUND);
    let body = problem(resp).await;
    assert_eq!(body["code"], 1001);
    assert_eq!(body["detail"], "User not found");
}

/// Over a real socket: the client address and the Host header.
#[tokio::test]
async fn a_real_server_reports_the_client_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let (engine, spans) = engine();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let acceptor = poem::listener::TcpAcceptor::from_tokio(listener).unwrap();
    let app = routes().with(FaultlineMiddleware::new(engine.clone()));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        poem::Server::new_with_acceptor(acceptor)
            .run_with_graceful_shutdown(
                app,
                async {
                    let _ = stopped.await;
                },
                Some(Duration::from_secs(1)),
            )
            .await
    });

    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let request = format!(
        "GET /users/7 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: raw\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).await.unwrap();
    assert!(raw.starts_with("HTTP/1.1 200"), "{raw}");
    assert!(
        raw.to_ascii_lowercase().contains("traceresponse: 00-"),
        "{raw}"
    );

    let _ = stop.send(());
    server.await.unwrap().unwrap();
    let span = only_span(&engine, &spans);
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(
        attr_str(&span, "client.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        attr_str(&span, "server.address").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(attr_i64(&span, "server.port"), Some(i64::from(port)));
    assert_eq!(attr_str(&span, "url.path").as_deref(), Some("/users/7"));
    assert_eq!(
        attr_str(&span, "network.protocol.version").as_deref(),
        Some("1.1")
    );
}

/// Excluded routes: no span and no `traceresponse`; what passes goes back
/// as the endpoint made it, and errors, poem's own rejections and panics
/// are still answered as problem details (without a trace id), a handler's
/// own 404 told apart from no route.
#[tokio::test]
async fn excluded_routes_answer_without_a_span() {
    let excluded = [
        "/hello",
        "/users/{id}",
        "/panic",
        "/missing",
        "/forbidden",
        "/nowhere",
    ];
    let (engine, spans) = configured(|c| c.excluded_routes(excluded), |b| b);
    let cli = client(&engine);

    let ok = cli.get("/hello").send().await;
    ok.assert_status_is_ok();
    assert!(header(&ok, "traceresponse").is_none());
    ok.assert_text("hello").await;

    // A handler's error: its code, no trace id.
    let unknown = cli.get("/users/4242").send().await;
    unknown.assert_status(StatusCode::NOT_FOUND);
    assert!(header(&unknown, "traceresponse").is_none());
    let body = problem(unknown).await;
    assert_eq!(body["code"], 1001);
    assert!(body.get("trace_id").is_none(), "{body}");

    // A handler's own 404 (a route matched) against no route at all.
    let own = problem(cli.get("/missing").send().await).await;
    assert_eq!(own["code"], 4041);
    let nowhere = problem(cli.get("/nowhere").send().await).await;
    assert_eq!(nowhere["code"], 4040);
    // A poem error through `?`, and a wrong method.
    let denied = cli.get("/forbidden").send().await;
    denied.assert_status(StatusCode::FORBIDDEN);
    assert!(problem(denied).await.get("trace_id").is_none());
    let post = cli.post("/hello").send().await;
    post.assert_status(StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(problem(post).await["code"], 4050);

    // A panic: 500, nothing of its text.
    let panicked = cli.get("/panic").send().await;
    panicked.assert_status(StatusCode::INTERNAL_SERVER_ERROR);
    let body = problem(panicked).await;
    assert!(!body.to_string().contains("alice"), "{body}");
    assert!(body.get("trace_id").is_none(), "{body}");

    // A traced request after them: the only span exported is its own.
    let traced = cli.get("/n/5").send().await;
    assert!(header(&traced, "traceresponse").is_some());
    let span = only_span(&engine, &spans);
    assert_eq!(span.name, "GET /n/{num}");
}
