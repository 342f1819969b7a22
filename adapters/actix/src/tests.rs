//! The middleware against actix-web's test service and a real actix-web
//! server, with the spans read back from an in-memory exporter.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::dev::Service as _;
use actix_web::test::{TestRequest, call_service, init_service, read_body};
use actix_web::{App, HttpResponse, web};
use faultline_engine::Engine;
use faultline_engine::config::TracingConfig;
use faultline_engine::correlate::{Correlator, Exposition, RequestOutcome};
use faultline_engine::error::{AppError, ErrorCode, PROBLEM_JSON};
use faultline_engine::export::{ExportStats, InMemoryExporter};
use opentelemetry::Value;
use opentelemetry::trace::{SpanKind, Status};
use opentelemetry_sdk::trace::SpanData;
use serde_json::json;

use super::*;

const USER_NOT_FOUND: ErrorCode =
    ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND)
        .with_title("User not found");
const PAYMENT_DECLINED: ErrorCode =
    ErrorCode::new(2001, "PAYMENT_DECLINED", http::StatusCode::PAYMENT_REQUIRED);

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// Serves metrics and remembers the routes of the requests it heard of.
#[derive(Debug, Default)]
struct Metrics(Mutex<Vec<String>>);

impl Correlator for Metrics {
    fn on_request_end(&self, outcome: &RequestOutcome<'_>) {
        if let Ok(mut routes) = self.0.lock() {
            routes.push(format!("{} {}", outcome.route, outcome.status));
        }
    }
    fn serves_metrics(&self) -> bool {
        true
    }
    fn render_metrics(&self, _accept: Option<&str>, _stats: &ExportStats) -> Option<Exposition> {
        Some(Exposition::new(
            "text/plain; version=0.0.4",
            "requests 1\n".to_owned(),
        ))
    }
}

struct Harness {
    engine: Engine,
    spans: InMemoryExporter,
    metrics: Arc<Metrics>,
}

impl Harness {
    fn new() -> Self {
        Self::with(|c| c)
    }

    fn with(
        configure: impl FnOnce(
            faultline_engine::config::TracingConfigBuilder,
        ) -> faultline_engine::config::TracingConfigBuilder,
    ) -> Self {
        let spans = InMemoryExporter::default();
        let metrics = Arc::new(Metrics::default());
        let config = configure(TracingConfig::builder().service_name("actix-adapter"))
            .exporters([])
            .build()
            .unwrap();
        let engine = Engine::builder(config)
            .exporter(spans.clone())
            .correlator(metrics.clone())
            .install_global(false)
            .build()
            .unwrap();
        Harness {
            engine,
            spans,
            metrics,
        }
    }

    /// The spans exported so far (waiting for `n`).
    fn spans(&self, n: usize) -> Vec<SpanData> {
        self.engine.force_flush();
        self.spans.wait_for(n, Duration::from_secs(5))
    }

    fn only_span(&self) -> SpanData {
        let spans = self.spans(1);
        assert_eq!(spans.len(), 1, "{spans:#?}");
        spans.into_iter().next().unwrap()
    }
}

/// The test application, traced by the harness's engine.
macro_rules! traced {
    ($h:expr) => {
        init_service(self::app().wrap(FaultlineMiddleware::new($h.engine.clone()))).await
    };
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.engine.shutdown();
    }
}

async fn hello() -> &'static str {
    "hello"
}

async fn user(id: web::Path<String>) -> Result<web::Json<serde_json::Value>, Error> {
    match id.parse::<u32>() {
        Ok(n) if (1..=1000).contains(&n) => Ok(web::Json(json!({ "id": n }))),
        _ => Err(AppError::new(USER_NOT_FOUND, format!("no user with id {id}")).into()),
    }
}

#[derive(Debug, serde::Deserialize)]
struct Checkout {
    email: String,
}

async fn checkout(body: web::Json<Checkout>) -> Result<HttpResponse, Error> {
    let message = format!("payment declined for {}", body.email);
    Err(AppError::new(PAYMENT_DECLINED, message).into())
}

async fn io_failure() -> Result<String, Error> {
    Err(std::io::Error::other("disk /var/secret full").into())
}

async fn panics() -> &'static str {
    panic!("payment worker crashed for alice@example.com")
}

async fn internal() -> Result<String, actix_web::Error> {
    Err(actix_web::error::ErrorInternalServerError(
        "database shard orders-7 is down",
    ))
}

async fn bad_input() -> HttpResponse {
    HttpResponse::BadRequest().body("quantity must be positive")
}

async fn own_error_body() -> HttpResponse {
    HttpResponse::Conflict().json(json!({ "reason": "taken" }))
}

/// Three chunks, the last one only when `release` says so.
async fn stream(release: web::Data<tokio::sync::Semaphore>) -> HttpResponse {
    let chunks = futures_util::stream::unfold(0u8, move |n| {
        let release = release.clone();
        async move {
            if n == 2 {
                release.acquire().await.ok()?.forget();
            }
            (n < 3).then(|| {
                (
                    Ok::<_, Infallible>(bytes::Bytes::from(format!("chunk {n}\n"))),
                    n + 1,
                )
            })
        }
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(chunks)
}

async fn ids(trace: RequestTrace) -> String {
    format!(
        "{}|{}|{}",
        trace.trace_id().unwrap_or_default(),
        trace.span_id().unwrap_or_default(),
        trace.baggage("tenant").unwrap_or_default()
    )
}

/// The server span's ids as `opentelemetry::Context::current()` shows them
/// to the handler (and so to `tracing` and outgoing calls).
async fn current() -> String {
    use opentelemetry::trace::TraceContextExt as _;
    let cx = opentelemetry::Context::current();
    let sc = cx.span().span_context().clone();
    format!("{}-{}", sc.trace_id(), sc.span_id())
}

fn app() -> App<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .service(web::resource("/hello").get(hello))
        .service(web::resource("/users/{id}").get(user))
        .service(web::resource("/checkout").post(checkout))
        .service(web::resource("/io").get(io_failure))
        .service(web::resource("/panic").get(panics))
        .service(web::resource("/bad").get(bad_input))
        .service(web::resource("/internal").get(internal))
        .service(web::resource("/own").get(own_error_body))
        .service(web::resource("/ids").get(ids))
        .service(web::resource("/current").get(current))
        .service(web::resource("/stream").get(stream))
        .app_data(web::Data::new(tokio::sync::Semaphore::new(0)))
        .service(
            web::scope("/api/v{version}")
                .service(web::resource(r"/orders/{id:\d+}").get(hello))
                .service(web::resource("/files/{path}*").get(hello)),
        )
}

fn header(response: &ServiceResponse<impl MessageBody>, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The trace id and span id of a `traceresponse` header.
fn traceresponse(value: &str) -> (String, String) {
    let parts: Vec<&str> = value.split('-').collect();
    assert_eq!(parts.len(), 4, "{value}");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// A problem+json response's body, checked for the members every problem has.
async fn problem(response: ServiceResponse<impl MessageBody>, status: u16) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some(PROBLEM_JSON)
    );
    let (trace, _) = traceresponse(&header(&response, "traceresponse").expect("traceresponse"));
    let body: serde_json::Value = serde_json::from_slice(&read_body(response).await).unwrap();
    assert_eq!(body["status"], status, "{body}");
    assert_eq!(body["trace_id"], trace, "{body}");
    body
}

fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

fn exception_attr(span: &SpanData, key: &str) -> Option<Value> {
    let exception = span.events.iter().find(|e| e.name == "exception")?;
    exception
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

#[actix_web::test]
async fn a_matched_route_names_the_span_with_its_template_and_http_attributes() {
    let h = Harness::new();
    let app = traced!(h);
    let request = TestRequest::get()
        .uri("/users/42?page=2")
        .insert_header(("user-agent", "tests/1"))
        .insert_header(("host", "shop.example:8443"))
        .peer_addr("10.1.2.3:5000".parse().unwrap())
        .to_request();
    let response = call_service(&app, request).await;
    assert_eq!(response.status().as_u16(), 200);
    let (trace, span_id) = traceresponse(&header(&response, "traceresponse").unwrap());
    assert_eq!(&read_body(response).await[..], br#"{"id":42}"#);
    let span = h.only_span();
    assert_eq!(span.name, "GET /users/{id}");
    assert_eq!(span.span_kind, SpanKind::Server);
    assert_eq!(span.span_context.trace_id().to_string(), trace);
    assert_eq!(span.span_context.span_id().to_string(), span_id);
    for (key, value) in [
        ("http.request.method", Value::from("GET")),
        ("http.route", Value::from("/users/{id}")),
        ("url.path", Value::from("/users/42")),
        ("url.query", Value::from("page=2")),
        ("url.scheme", Value::from("http")),
        ("server.address", Value::from("shop.example")),
        ("server.port", Value::from(8443_i64)),
        ("network.protocol.version", Value::from("1.1")),
        ("user_agent.original", Value::from("tests/1")),
        ("client.address", Value::from("10.1.2.3")),
        ("http.response.status_code", Value::from(200_i64)),
    ] {
        assert_eq!(attr(&span, key), Some(value), "{key}");
    }
    assert_eq!(span.status, Status::Unset);
    assert_eq!(h.metrics.0.lock().unwrap().as_slice(), ["/users/{id} 200"]);
}

#[actix_web::test]
async fn scopes_regex_segments_and_tails_get_param_templates() {
    let h = Harness::new();
    let app = traced!(h);
    for uri in ["/api/v2/orders/7", "/api/v2/files/a/b/c.txt"] {
        let response = call_service(&app, TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(response.status().as_u16(), 200, "{uri}");
        assert_eq!(&read_body(response).await[..], b"hello");
    }
    let mut names: Vec<String> = h
        .spans(2)
        .into_iter()
        .map(|s| s.name.into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "GET /api/v{version}/files/{*path}",
            "GET /api/v{version}/orders/{id}"
        ]
    );
}

/// The service keeps the route of the path it saw last: the same path
/// again, another path, a path no route matches, and back, each named by
/// its own route.
#[actix_web::test]
async fn each_request_is_named_by_its_own_path_when_paths_repeat_and_alternate() {
    let h = Harness::new();
    let app = traced!(h);
    let uris = [
        "/hello",
        "/hello",
        "/api/v2/orders/7",
        "/nowhere",
        "/nowhere",
        "/api/v2/orders/7",
        "/hello",
        "/api/v3/files/x",
    ];
    for uri in uris {
        let response = call_service(&app, TestRequest::get().uri(uri).to_request()).await;
        let expected = if uri == "/nowhere" { 404 } else { 200 };
        assert_eq!(response.status().as_u16(), expected, "{uri}");
        read_body(response).await;
    }
    let mut names: Vec<String> = h
        .spans(uris.len())
        .into_iter()
        .map(|s| s.name.into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "GET",
            "GET",
            "GET /api/v{version}/files/{*path}",
            "GET /api/v{version}/orders/{id}",
            "GET /api/v{version}/orders/{id}",
            "GET /hello",
            "GET /hello",
            "GET /hello",
        ]
    );
}

#[actix_web::test]
async fn an_incoming_traceparent_is_the_parent_and_the_handler_runs_in_the_span() {
    let h = Harness::new();
    let app = traced!(h);
    let request = TestRequest::get()
        .uri("/current")
        .insert_header(("traceparent", PARENT))
        .to_request();
    let response = call_service(&app, request).await;
    let (trace, span_id) = traceresponse(&header(&response, "traceresponse").unwrap());
    assert_eq!(trace, TRACE);
    let body = read_body(response).await;
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        format!("{trace}-{span_id}")
    );
    let span = h.only_span();
    assert_eq!(span.parent_span_id.to_string(), "00f067aa0ba902b7");
    // A malformed one starts a new trace.
    let request = TestRequest::get()
        .uri("/hello")
        .insert_header(("traceparent", "00-xyz-00f067aa0ba902b7-01"))
        .to_request();
    let response = call_service(&app, request).await;
    assert_ne!(
        traceresponse(&header(&response, "traceresponse").unwrap()).0,
        TRACE
    );
}

#[actix_web::test]
async fn a_handler_error_is_problem_json_with_its_code_masked_detail_and_trace_id() {
    let h = Harness::new();
    let app = traced!(h);
    let response = call_service(&app, TestRequest::get().uri("/users/0").to_request()).await;
    let body = problem(response, 404).await;
    assert_eq!(body["code"], 1001);
    assert_eq!(body["title"], "User not found");
    assert_eq!(body["detail"], "no user with id 0");
    assert_eq!(body["instance"], "/users/0");
    let span = h.only_span();
    assert_eq!(span.span_context.trace_id().to_string(), body["trace_id"]);
    assert_eq!(
        attr(&span, "error.type"),
        Some(Value::from("USER_NOT_FOUND"))
    );
    assert_eq!(
        exception_attr(&span, "faultline.error.code"),
        Some(Value::from(1001_i64))
    );
    assert_eq!(span.status, Status::Unset, "a 4xx leaves the status unset");

    // The detail goes through the engine's masker.
    let request = TestRequest::post()
        .uri("/checkout")
        .set_json(json!({ "email": "bob@example.com" }))
        .to_request();
    let body = problem(call_service(&app, request).await, 402).await;
    assert_eq!(body["code"], 2001);
    assert!(!body.to_string().contains("bob@example.com"), "{body}");
}

#[actix_web::test]
async fn an_error_without_a_code_is_a_500_with_a_generic_detail() {
    let h = Harness::new();
    let app = traced!(h);
    let response = call_service(&app, TestRequest::get().uri("/io").to_request()).await;
    let body = problem(response, 500).await;
    assert_eq!(body["code"], 5000);
    assert!(!body.to_string().contains("secret"), "{body}");
    assert!(matches!(h.only_span().status, Status::Error { .. }));
}

#[actix_web::test]
async fn a_panic_is_a_500_without_its_text_and_the_service_keeps_serving() {
    let h = Harness::new();
    let app = traced!(h);
    let request = TestRequest::get().uri("/panic").to_request();
    // No request is left to answer with: the answer is the error's response.
    let error = app.call(request).await.expect_err("answered as an error");
    let response =
        ServiceResponse::new(TestRequest::get().to_http_request(), error.error_response());
    let body = problem(response, 500).await;
    assert_eq!(body["code"], 5000);
    let text = body.to_string();
    assert!(
        !text.contains("alice") && !text.contains("crashed"),
        "{text}"
    );
    let span = h.only_span();
    assert_eq!(span.name, "GET /panic");
    assert!(matches!(span.status, Status::Error { .. }));
    assert_eq!(attr(&span, "error.type"), Some(Value::from("panic")));
    let message = exception_attr(&span, "exception.message")
        .unwrap()
        .to_string();
    assert!(!message.contains("alice@example.com"), "{message}");
    let response = call_service(&app, TestRequest::get().uri("/hello").to_request()).await;
    assert_eq!(response.status().as_u16(), 200);
}

#[actix_web::test]
async fn actix_rejections_become_problem_json() {
    let h = Harness::new();
    let app = traced!(h);
    // No route: 4040, the span named by the method alone.
    let response = call_service(&app, TestRequest::get().uri("/no/such").to_request()).await;
    assert_eq!(problem(response, 404).await["code"], 4040);
    let span = h.only_span();
    assert_eq!(span.name, "GET");
    assert_eq!(attr(&span, "http.route"), None);
    // A wrong method: 4050, actix's `Allow` kept.
    let response = call_service(&app, TestRequest::post().uri("/hello").to_request()).await;
    assert_eq!(header(&response, "allow").as_deref(), Some("GET"));
    assert_eq!(problem(response, 405).await["code"], 4050);
    // JSON bodies: unparsable 400, the wrong shape 422, no JSON type 415,
    // worded as on the other frameworks.
    for (body, content_type, status, code) in [
        ("{not json", "application/json", 400, 4000),
        (r#"{"name": 1}"#, "application/json", 422, 4220),
        (r#"{"email": "a"}"#, "text/plain", 415, 4150),
    ] {
        let request = TestRequest::post()
            .uri("/checkout")
            .insert_header(("content-type", content_type))
            .set_payload(body)
            .to_request();
        let problem = problem(call_service(&app, request).await, status).await;
        assert_eq!(problem["code"], code, "{problem}");
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("Failed to") || detail.starts_with("Expected request"),
            "{detail}"
        );
    }
    // A handler's own plain-text 400: its text is the detail.
    let response = call_service(&app, TestRequest::get().uri("/bad").to_request()).await;
    let body = problem(response, 400).await;
    assert_eq!(body["detail"], "quantity must be positive");
    // actix-web's own 5xx: its text may name internals, and is left out.
    let response = call_service(&app, TestRequest::get().uri("/internal").to_request()).await;
    let body = problem(response, 500).await;
    assert_eq!(body["code"], 5000);
    assert!(!body.to_string().contains("orders-7"), "{body}");
    // A handler's own JSON error body is kept.
    let response = call_service(&app, TestRequest::get().uri("/own").to_request()).await;
    assert_eq!(response.status().as_u16(), 409);
    assert!(header(&response, "traceresponse").is_some());
    assert_eq!(&read_body(response).await[..], br#"{"reason":"taken"}"#);
}

#[actix_web::test]
async fn an_inner_middlewares_error_is_answered_as_problem_json() {
    let h = Harness::new();
    let app = init_service(
        app()
            .wrap_fn(|req, service| {
                let refused = req.headers().get("authorization").is_none();
                let answer = service.call(req);
                async move {
                    if refused {
                        return Err(actix_web::error::ErrorUnauthorized("no credentials"));
                    }
                    answer.await
                }
            })
            .wrap(FaultlineMiddleware::new(h.engine.clone())),
    )
    .await;
    let error = app
        .call(TestRequest::get().uri("/hello").to_request())
        .await
        .expect_err("answered as an error");
    let response =
        ServiceResponse::new(TestRequest::get().to_http_request(), error.error_response());
    let body = problem(response, 401).await;
    assert_eq!(body["code"], 4010);
    assert_eq!(body["detail"], "no credentials");
    assert_eq!(h.only_span().name, "GET /hello");
}

#[actix_web::test]
async fn the_request_trace_extractor_gives_the_server_spans_ids_and_baggage() {
    let h = Harness::new();
    let app = traced!(h);
    let request = TestRequest::get()
        .uri("/ids")
        .insert_header(("baggage", "tenant=acme"))
        .to_request();
    let response = call_service(&app, request).await;
    let (trace, span_id) = traceresponse(&header(&response, "traceresponse").unwrap());
    let body = read_body(response).await;
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        format!("{trace}|{span_id}|acme")
    );
    // Without the middleware: nothing, and a handler error's body is safe.
    let bare = init_service(self::app()).await;
    let response = call_service(&bare, TestRequest::get().uri("/ids").to_request()).await;
    assert_eq!(&read_body(response).await[..], b"||");
    let response = call_service(&bare, TestRequest::get().uri("/io").to_request()).await;
    assert_eq!(response.status().as_u16(), 500);
    let body: serde_json::Value = serde_json::from_slice(&read_body(response).await).unwrap();
    assert_eq!(body["code"], 5000);
    assert!(body.get("trace_id").is_none() && !body.to_string().contains("secret"));
}

#[actix_web::test]
async fn the_metrics_path_is_answered_untraced() {
    let h = Harness::new();
    let app = traced!(h);
    let response = call_service(&app, TestRequest::get().uri("/metrics").to_request()).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(header(&response, "traceresponse").is_none());
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("text/plain; version=0.0.4")
    );
    assert_eq!(&read_body(response).await[..], b"requests 1\n");
    h.engine.force_flush();
    assert!(h.spans.spans().is_empty(), "a scrape is not traced");
}

#[actix_web::test]
async fn a_request_dropped_before_its_answer_ends_its_span_as_cancelled() {
    let h = Harness::new();
    let app = init_service(
        App::new()
            .route("/slow", web::get().to(std::future::pending::<&'static str>))
            .wrap(FaultlineMiddleware::new(h.engine.clone())),
    )
    .await;
    let answer = app.call(TestRequest::get().uri("/slow").to_request());
    assert!(
        tokio::time::timeout(Duration::from_millis(50), answer)
            .await
            .is_err()
    );
    let span = h.only_span();
    assert_eq!(span.name, "GET /slow");
    assert_eq!(
        attr(&span, "faultline.request.cancelled"),
        Some(Value::from(true))
    );
}

#[actix_web::test]
async fn a_real_server_reports_the_client_address_and_answers_with_traceresponse() {
    let h = Harness::new();
    let engine = h.engine.clone();
    let server = actix_web::HttpServer::new(move || {
        App::new()
            .service(web::resource("/hello").get(hello))
            .wrap(FaultlineMiddleware::new(engine.clone()))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let port = server.addrs()[0].port();
    let server = server.run();
    let handle = server.handle();
    let running = actix_web::rt::spawn(server);
    let answer = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut text = String::new();
        stream.read_to_string(&mut text).unwrap();
        text
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("traceresponse: 00-"), "{answer}");
    handle.stop(true).await;
    running.await.unwrap().unwrap();
    let span = h.only_span();
    assert_eq!(
        attr(&span, "client.address"),
        Some(Value::from("127.0.0.1"))
    );
}

#[actix_web::test]
async fn a_streamed_body_ends_the_span_when_it_ends() {
    let h = Harness::new();
    let release = web::Data::new(tokio::sync::Semaphore::new(0));
    let app = init_service(
        self::app()
            .app_data(release.clone())
            .wrap(FaultlineMiddleware::new(h.engine.clone())),
    )
    .await;
    let response = call_service(&app, TestRequest::get().uri("/stream").to_request()).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(header(&response, "traceresponse").is_some());
    let mut body = std::pin::pin!(response.into_body());
    for n in 0..2 {
        let chunk = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await;
        assert_eq!(chunk.unwrap().unwrap(), format!("chunk {n}\n"));
    }
    // The body has not ended: neither has the span.
    h.engine.force_flush();
    assert!(h.spans.spans().is_empty(), "{:?}", h.spans.spans());
    release.add_permits(1);
    let last = std::future::poll_fn(|cx| body.as_mut().poll_next(cx)).await;
    assert_eq!(last.unwrap().unwrap(), "chunk 2\n");
    assert!(
        std::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .is_none()
    );
    let span = h.only_span();
    assert_eq!(span.name, "GET /stream");
    assert_eq!(
        attr(&span, "http.response.body.size"),
        Some(Value::from(24_i64))
    );
    assert_eq!(attr(&span, "error.type"), None);

    // A client that goes away after the first chunk.
    h.spans.reset();
    let response = call_service(&app, TestRequest::get().uri("/stream").to_request()).await;
    let mut body = Box::pin(response.into_body());
    assert!(
        std::future::poll_fn(|cx| body.as_mut().poll_next(cx))
            .await
            .is_some()
    );
    drop(body);
    let span = h.only_span();
    assert_eq!(
        attr(&span, "error.type"),
        Some(Value::from("client_disconnected"))
    );
    assert_eq!(
        attr(&span, "http.response.body.size"),
        Some(Value::from(8_i64))
    );
}

#[actix_web::test]
async fn an_excluded_route_gets_no_span_and_no_traceresponse() {
    let h = Harness::with(|c| c.excluded_routes(["/users/{id}"]));
    let app = traced!(h);
    let response = call_service(&app, TestRequest::get().uri("/users/7").to_request()).await;
    assert_eq!(response.status().as_u16(), 200);
    assert!(header(&response, "traceresponse").is_none());
    // An error there is still problem+json, without a trace id.
    let response = call_service(&app, TestRequest::get().uri("/users/0").to_request()).await;
    assert_eq!(response.status().as_u16(), 404);
    assert!(header(&response, "traceresponse").is_none());
    let body: serde_json::Value = serde_json::from_slice(&read_body(response).await).unwrap();
    assert_eq!(body["code"], 1001);
    assert!(body.get("trace_id").is_none(), "{body}");
    let response = call_service(&app, TestRequest::get().uri("/hello").to_request()).await;
    assert!(header(&response, "traceresponse").is_some());
    assert_eq!(&read_body(response).await[..], b"hello");
    assert_eq!(h.only_span().name, "GET /hello");
    assert_eq!(h.metrics.0.lock().unwrap().as_slice(), ["/hello 200"]);
}

#[actix_web::test]
async fn a_passing_response_keeps_its_head_and_records_the_captured_headers() {
    // Not configured: the response's own headers are left as they are,
    // with `traceresponse` added.
    let h = Harness::new();
    let app = traced!(h);
    let response = call_service(&app, TestRequest::get().uri("/hello").to_request()).await;
    assert_eq!(response.status().as_u16(), 200);
    let content_type = header(&response, "content-type");
    assert_eq!(content_type.as_deref(), Some("text/plain; charset=utf-8"));
    let (trace, span_id) = traceresponse(&header(&response, "traceresponse").unwrap());
    assert_eq!(&read_body(response).await[..], b"hello");
    let span = h.only_span();
    assert_eq!(span.span_context.trace_id().to_string(), trace);
    assert_eq!(span.span_context.span_id().to_string(), span_id);
    assert_eq!(attr(&span, "http.response.header.content-type"), None);
    drop(h);

    // Configured: the captured header is recorded from the passing response.
    let h = Harness::with(|c| c.capture_response_header("content-type"));
    let app = traced!(h);
    let response = call_service(&app, TestRequest::get().uri("/hello").to_request()).await;
    assert!(header(&response, "traceresponse").is_some());
    assert_eq!(
        header(&response, "content-type").as_deref(),
        Some("text/plain; charset=utf-8")
    );
    let span = h.only_span();
    assert_eq!(
        attr(&span, "http.response.header.content-type"),
        Some(Value::Array(opentelemetry::Array::String(vec![
            "text/plain; charset=utf-8".into()
        ])))
    );
}
