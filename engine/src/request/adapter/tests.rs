//! The adapter core over plain `http` types, with the spans read back from
//! an in-memory exporter.

use std::collections::VecDeque;
use std::convert::Infallible;

use opentelemetry::Value;
use opentelemetry_sdk::trace::SpanData;

use super::*;
use crate::config::TracingConfigBuilder;
use crate::error::{AppError, ErrorCode};
use crate::export::InMemoryExporter;

/// A body of the given frames, then its end; of known length when `exact`
/// (an answer already in memory), else of unknown length (a stream).
#[derive(Debug)]
struct Frames {
    frames: VecDeque<Bytes>,
    exact: bool,
}

impl Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.frames.pop_front().map(|b| Ok(Frame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        match self.exact {
            true => SizeHint::with_exact(self.frames.iter().map(|f| f.len() as u64).sum()),
            false => SizeHint::default(),
        }
    }
}

/// One frame of known length.
fn whole(bytes: Bytes) -> Frames {
    Frames {
        frames: VecDeque::from([bytes]),
        exact: true,
    }
}

#[tokio::test]
async fn a_small_body_of_known_length_ends_the_span_as_the_server_takes_it() {
    let (engine, spans) = engine(|b| b);
    let small = whole(Bytes::from_static(b"hello"));
    let exchange = start(&engine, Method::GET, "/hello", Some("/hello"));
    let response = exchange.respond(Ok(http::Response::new(small)), true).await;
    // No wrapper left to wait for: the adapter hands its own body on.
    assert!(response.into_body().into_framework().is_ok());
    let large = whole(Bytes::from(vec![b'x'; SMALL_BODY as usize + 1]));
    let exchange = start(&engine, Method::GET, "/large", Some("/large"));
    let response = exchange.respond(Ok(http::Response::new(large)), true).await;
    let all = exported(&engine, &spans);
    assert_eq!(all.len(), 1, "the large body is still to be sent");
    assert_eq!(all[0].name, "GET /hello");
    // Gone out whole: no wrapper counted its bytes.
    assert_eq!(attribute(&all[0], "http.response.body.size"), None);
    let mut body = std::pin::pin!(response.into_body().into_framework().unwrap_err());
    let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await;
    assert!(frame.is_some());
    let all = exported(&engine, &spans);
    assert_eq!(all.len(), 2);
    let large = all.iter().find(|s| s.name == "GET /large").unwrap();
    let size = Value::I64(SMALL_BODY as i64 + 1);
    assert_eq!(attribute(large, "http.response.body.size"), Some(size));
    engine.shutdown();
}

fn frames(parts: &[&'static str]) -> Frames {
    let frames = parts.iter().map(|p| Bytes::from_static(p.as_bytes()));
    Frames {
        frames: frames.collect(),
        exact: false,
    }
}

fn engine(
    configure: impl FnOnce(TracingConfigBuilder) -> TracingConfigBuilder,
) -> (Engine, InMemoryExporter) {
    crate::export::test_engine(|builder| configure(builder.service_name("adapter-core")))
}

fn exported(engine: &Engine, spans: &InMemoryExporter) -> Vec<SpanData> {
    engine.force_flush();
    spans.spans()
}

fn attribute(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .rev()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

fn start(engine: &Engine, method: Method, uri: &str, route: Option<&str>) -> Exchange {
    let uri: Uri = uri.parse().unwrap();
    let headers = HeaderMap::new();
    let info = RequestInfo::new(&method, &uri, http::Version::HTTP_11, &headers).with_route(route);
    Exchange::start(engine, &info, uri.clone())
}

async fn respond(
    exchange: Exchange,
    response: http::Response<Frames>,
) -> http::Response<TracedBody<Frames>> {
    exchange.respond(Ok(response), true).await
}

async fn next(body: &mut Pin<&mut TracedBody<Frames>>) -> Option<Bytes> {
    let frame = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await?;
    frame.ok()?.into_data().ok()
}

#[tokio::test]
async fn the_span_ends_with_the_body_and_counts_its_bytes() {
    let (engine, spans) = engine(|b| b);
    let exchange = start(&engine, Method::GET, "/events", Some("/events"));
    let response = respond(exchange, http::Response::new(frames(&["ab", "cde", "f"]))).await;
    assert!(response.headers().contains_key(TRACERESPONSE));
    let body = std::pin::pin!(response.into_body());
    let mut body = body;
    assert_eq!(next(&mut body).await.as_deref(), Some(&b"ab"[..]));
    assert_eq!(next(&mut body).await.as_deref(), Some(&b"cde"[..]));
    assert!(
        exported(&engine, &spans).is_empty(),
        "not before the body's end"
    );
    // The last frame: the body says it is at its end, the span ends.
    assert_eq!(next(&mut body).await.as_deref(), Some(&b"f"[..]));
    let all = exported(&engine, &spans);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].name, "GET /events");
    assert_eq!(
        attribute(&all[0], "http.response.body.size"),
        Some(Value::I64(6))
    );
    assert_eq!(attribute(&all[0], "error.type"), None);
    engine.shutdown();
}

#[tokio::test]
async fn a_body_dropped_before_its_end_ends_the_span_as_cut_short() {
    let (engine, spans) = engine(|b| b);
    let exchange = start(&engine, Method::GET, "/events", Some("/events"));
    let response = respond(exchange, http::Response::new(frames(&["ab", "cde"]))).await;
    {
        let mut body = std::pin::pin!(response.into_body());
        next(&mut body).await;
    }
    let all = exported(&engine, &spans);
    assert_eq!(all.len(), 1);
    let error_type = attribute(&all[0], "error.type");
    assert_eq!(error_type, Some(Value::from(CLIENT_DISCONNECTED)));
    assert_eq!(
        attribute(&all[0], "http.response.body.size"),
        Some(Value::I64(2))
    );
    assert!(matches!(
        all[0].status,
        opentelemetry::trace::Status::Error { .. }
    ));
    engine.shutdown();
}

#[tokio::test]
async fn nothing_to_send_ends_the_span_at_once() {
    let (engine, spans) = engine(|b| b);
    // HEAD (the server sends no body), an upgrade, and an empty body.
    let head = start(&engine, Method::HEAD, "/events", None);
    let head = respond(head, http::Response::new(frames(&["ab"]))).await;
    let mut switching = http::Response::new(frames(&[]));
    *switching.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let upgrade = respond(start(&engine, Method::GET, "/ws", None), switching).await;
    let empty = start(&engine, Method::GET, "/empty", None);
    let empty = respond(empty, http::Response::new(frames(&[]))).await;
    let all = exported(&engine, &spans);
    assert_eq!(all.len(), 3, "ended before their bodies were read");
    drop((head, upgrade, empty));
    assert_eq!(exported(&engine, &spans).len(), 3, "nothing ends twice");
    engine.shutdown();
}

const NOT_FOUND: ErrorCode = ErrorCode::new(1001, "USER_NOT_FOUND", StatusCode::NOT_FOUND);

async fn json(response: http::Response<TracedBody<Frames>>) -> (Parts, serde_json::Value) {
    let (parts, body) = response.into_parts();
    let text = read_limited(body, 1 << 16).await;
    (parts, serde_json::from_str(&text).unwrap())
}

#[tokio::test]
async fn errors_rejections_and_framework_text_become_problem_details() {
    let (engine, spans) = engine(|b| b);
    // A handler's error, in the response's extensions.
    let error = HandlerError::new(AppError::new(NOT_FOUND, "no user 7"));
    let handled = error.fallback_response().map(|_| frames(&[]));
    let exchange = start(&engine, Method::GET, "/users/7", Some("/users/{id}"));
    let (parts, body) = json(respond(exchange, handled).await).await;
    assert_eq!(parts.status, 404);
    assert_eq!(parts.headers[header::CONTENT_TYPE], PROBLEM_JSON);
    assert_eq!(body["code"], 1001);
    assert_eq!(body["detail"], "no user 7");
    assert!(parts.extensions.get::<HandlerError>().is_none());
    // A framework's plain-text 405: its text and its Allow header kept.
    let mut rejected = http::Response::new(frames(&["Method ", "Not Allowed"]));
    *rejected.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    let headers = rejected.headers_mut();
    headers.insert(header::ALLOW, HeaderValue::from_static("GET"));
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("18"));
    let exchange = start(&engine, Method::POST, "/users/7", None);
    let (parts, body) = json(respond(exchange, rejected).await).await;
    assert_eq!(parts.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(parts.headers[header::ALLOW], "GET");
    assert!(parts.headers.get(header::CONTENT_LENGTH).is_none());
    assert_eq!(body["code"], 4050);
    assert_eq!(body["detail"], "Method Not Allowed");
    // A rejection the adapter recognized.
    let mut recognized = http::Response::new(frames(&[]));
    recognized
        .extensions_mut()
        .insert(FrameworkRejection::json_content_type());
    let exchange = start(&engine, Method::POST, "/users", None);
    let (parts, body) = json(respond(exchange, recognized).await).await;
    assert_eq!(parts.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body["code"], 4150);
    let all = exported(&engine, &spans);
    assert_eq!(all.len(), 3);
    let handler = all.iter().find(|s| s.name == "GET /users/{id}").unwrap();
    let error_type = attribute(handler, "error.type");
    assert_eq!(error_type, Some(Value::from("USER_NOT_FOUND")));
    engine.shutdown();
}

#[tokio::test]
async fn an_excluded_route_gets_no_span_and_no_traceresponse_but_keeps_the_callers_context() {
    let (engine, spans) = engine(|b| b.excluded_routes(["/health", "/internal/*"]));
    let uri: Uri = "/internal/ready".parse().unwrap();
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    let info = RequestInfo::new(&Method::GET, &uri, http::Version::HTTP_11, &headers);
    let exchange = Exchange::start(&engine, &info, uri.clone());
    assert!(exchange.span().is_excluded());
    let seen = exchange
        .instrument(async {
            use opentelemetry::trace::TraceContextExt as _;
            let cx = opentelemetry::Context::current();
            cx.span().span_context().trace_id().to_string()
        })
        .await
        .unwrap();
    assert_eq!(seen, "4bf92f3577b34da6a3ce929d0e0e4736");
    let response = respond(exchange, http::Response::new(frames(&["ok"]))).await;
    assert!(response.headers().get(TRACERESPONSE).is_none());
    drop(response);
    // A request on a route that is not excluded, for comparison.
    let traced = start(&engine, Method::GET, "/healthz", None);
    drop(respond(traced, http::Response::new(frames(&[]))).await);
    let all = exported(&engine, &spans);
    assert_eq!(all.len(), 1);
    assert_eq!(
        attribute(&all[0], "url.path"),
        Some(Value::from("/healthz"))
    );
    engine.shutdown();
}

#[tokio::test]
async fn the_excluded_path_keeps_the_callers_context_and_answers_only_errors() {
    let (engine, spans) = engine(|b| b.excluded_routes(["/internal/*"]));
    assert!(engine.excludes("/internal/ready"));
    assert!(!engine.excludes("/internals"));
    let mut headers = HeaderMap::new();
    headers.insert(
        "traceparent",
        HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    let excluded = Excluded::start(&engine, &headers, None);
    let (seen, current) = excluded
        .instrument(async {
            use opentelemetry::trace::TraceContextExt as _;
            let cx = opentelemetry::Context::current();
            let seen = cx.span().span_context().trace_id().to_string();
            (seen, RequestContext::current().and_then(|c| c.trace_id()))
        })
        .await
        .unwrap();
    assert_eq!(seen, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(current.as_deref(), Some(seen.as_str()));

    // A success goes back as it is; an error, a rejection or a 4xx does not.
    assert!(Excluded::passes(&http::Response::new(())));
    let mut failed = http::Response::new(());
    failed
        .extensions_mut()
        .insert(HandlerError::new(AppError::new(NOT_FOUND, "no user 7")));
    assert!(!Excluded::passes(&failed));
    let mut rejected = http::Response::new(());
    rejected
        .extensions_mut()
        .insert(FrameworkRejection::new(StatusCode::BAD_REQUEST, "bad"));
    assert!(!Excluded::passes(&rejected));
    let mut missing = http::Response::new(());
    *missing.status_mut() = StatusCode::NOT_FOUND;
    assert!(!Excluded::passes(&missing));

    // An error is answered as problem details, without a trace id, and no
    // span is made.
    let uri: Uri = "/internal/users/7".parse().unwrap();
    let exchange = excluded.into_exchange(&engine, &Method::GET, uri, true);
    let response = exchange
        .respond(Ok(failed.map(|()| frames(&[]))), true)
        .await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert!(response.headers().get(TRACERESPONSE).is_none());
    let body = read_limited(response.into_body(), 4096).await;
    let problem: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(problem["code"], 1001);
    assert_eq!(problem["instance"], "/internal/users/7");
    assert!(problem.get("trace_id").is_none(), "{problem}");
    assert!(exported(&engine, &spans).is_empty());
    engine.shutdown();
}

#[tokio::test]
async fn notes_are_lent_to_the_polling_thread_and_come_back_even_after_a_panic() {
    assert!(with_notes(|notes| notes.is_none()));
    let first = Notes {
        route: Some(Cow::Borrowed("/users/{id}")),
        ..Notes::default()
    };
    let noted = Noted::new(
        async {
            // Seen and written inside, as a router's filter would.
            let seen = with_notes(|notes| notes.and_then(|n| n.route.clone()));
            with_notes(|notes| {
                if let Some(notes) = notes {
                    notes.replied = true;
                }
            });
            tokio::task::yield_now().await;
            seen
        },
        first,
    );
    let (seen, notes) = noted.await;
    assert_eq!(seen.as_deref(), Some("/users/{id}"));
    assert!(notes.replied);
    assert!(with_notes(|notes| notes.is_none()), "nothing left behind");

    // A panic inside (caught outside the `Noted`) gives the notes back to
    // the future, and nothing stays on the thread.
    let mut noted = std::pin::pin!(Noted::new(
        async {
            with_notes(|notes| notes.map(|n| n.replied = true));
            panic!("handler crashed");
        },
        Notes::default(),
    ));
    let waker = std::task::Waker::noop();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let _ = noted.as_mut().poll(&mut TaskContext::from_waker(waker));
    }));
    assert!(caught.is_err());
    assert!(with_notes(|notes| notes.is_none()));
    assert!(noted.notes.as_ref().is_some_and(|n| n.replied));
}

#[test]
fn json_body_rejections_are_worded_alike_everywhere() {
    let syntax = serde_json::from_str::<serde_json::Value>("{x").unwrap_err();
    let shape = serde_json::from_str::<u32>("\"x\"").unwrap_err();
    let (syntax, shape) = (
        FrameworkRejection::json_body(&syntax),
        FrameworkRejection::json_body(&shape),
    );
    assert_eq!(syntax.status, StatusCode::BAD_REQUEST);
    assert!(
        syntax
            .detail
            .starts_with("Failed to parse the request body as JSON: ")
    );
    assert_eq!(shape.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        shape
            .detail
            .starts_with("Failed to deserialize the JSON body")
    );
}
