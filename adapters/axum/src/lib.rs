//! faultline's axum adapter: one tower [`Layer`] traces every request.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use faultline_axum::{Error, FaultlineLayer, RequestTrace};
//! use faultline_engine::{Engine, config::TracingConfig};
//! use faultline_engine::error::{AppError, ErrorCode};
//!
//! const USER_NOT_FOUND: ErrorCode =
//!     ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND);
//!
//! async fn user(trace: RequestTrace) -> Result<String, Error> {
//!     // Err(..) becomes RFC 9457 problem+json with `code` and `trace_id`.
//!     Err(AppError::new(USER_NOT_FOUND, format!("no user (trace {:?})", trace.trace_id())).into())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::builder(TracingConfig::from_env()?).build()?;
//! let app = Router::new()
//!     .route("/users/{id}", get(user))
//!     .layer(FaultlineLayer::new(engine.clone()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(()) }
//! ```
//!
//! For every request the layer extracts the incoming trace context, starts
//! a server span named `"{METHOD} {route}"` (the route template from
//! [`MatchedPath`]), runs the handler inside the span's context, catches a
//! panic (answering 500 problem+json, nothing of the panic text in it),
//! turns handler errors ([`Error`]) and axum's own rejections into problem
//! details carrying the trace id, adds `traceresponse`, and ends the span.
//!
//! When a correlator serves metrics (the Prometheus plugin), the layer also
//! answers `GET /metrics` (the configured
//! [`metrics_path`](faultline_engine::config::TracingConfig::metrics_path))
//! itself, untraced, on any router it wraps.
//!
//! Code in a handler that spawns a task carries the request's context along
//! with `opentelemetry::trace::FutureExt::with_context(fut, trace.context().clone())`
//! (or attaches it inside the task).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::response::{IntoResponse, Response};
use faultline_engine::Engine;
use faultline_engine::correlate::Exposition;
use faultline_engine::error::{PROBLEM_JSON, ProblemDetails};
use faultline_engine::panic::CatchPanic;
use faultline_engine::request::{
    HandlerError, RequestContext, RequestInfo, RequestSpan, TRACERESPONSE, is_framework_error_body,
};
use http::request::Parts;
use http::{HeaderValue, Request, Uri, header};
use tower::{Layer, Service};

/// The axum crate this adapter is built on, for code that names its types.
pub use axum;
pub use faultline_engine as engine;

/// The largest framework error body read to become a problem's detail.
const MAX_REJECTION_BODY: usize = 4096;

/// The tower layer: add it to a `Router` with `.layer(FaultlineLayer::new(engine))`.
#[derive(Debug, Clone)]
pub struct FaultlineLayer {
    engine: Engine,
}

impl FaultlineLayer {
    /// A layer tracing with `engine`.
    pub fn new(engine: Engine) -> Self {
        FaultlineLayer { engine }
    }
}

impl<S> Layer<S> for FaultlineLayer {
    type Service = FaultlineService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FaultlineService {
            inner,
            engine: self.engine.clone(),
        }
    }
}

/// The service [`FaultlineLayer`] wraps around each route.
#[derive(Debug, Clone)]
pub struct FaultlineService<S> {
    inner: S,
    engine: Engine,
}

impl<S> Service<Request<Body>> for FaultlineService<S>
where
    S: Service<Request<Body>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        // `self.inner` is ready (`poll_ready` above) and is called here, not
        // in a future that would own it: no clone (a route's clone is an
        // allocation).
        if let Some(metrics) = self
            .engine
            .scrape(req.method(), req.uri().path(), req.headers())
        {
            return ResponseFuture {
                state: State::Ready {
                    response: Some(metrics_response(metrics)),
                },
            };
        }
        // `MatchedPath` is shared: cloning it copies no text.
        let route = req.extensions().get::<MatchedPath>().cloned();
        let uri = req.uri().clone();
        let span = self.engine.start_request(&RequestInfo {
            method: req.method(),
            route: route.as_ref().map(MatchedPath::as_str),
            path: uri.path(),
            query: uri.query(),
            scheme: uri.scheme_str().unwrap_or("http"),
            version: req.version(),
            headers: req.headers(),
            authority: uri.authority().map(|a| a.as_str()),
            client_address: req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip()),
        });
        // Handlers find the request's context through `RequestTrace`, which
        // reads it from the span's future (`RequestContext::current`): no
        // extension to insert (a box and, past three extensions, a bigger
        // table on every request).
        let handler = span.instrument(self.inner.call(req));
        ResponseFuture {
            state: State::Handler {
                handler,
                span: Some(span),
                uri,
                matched: route.is_some(),
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The future of [`FaultlineService`]: the handler's, then the span's
    /// end. Not boxed: only a framework error response, whose body is read
    /// to become a problem's detail, takes a boxed step.
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
    }
}

pin_project_lite::pin_project! {
    #[project = StateProj]
    enum State<F> {
        // A response made without the handler (a metrics scrape).
        Ready { response: Option<Response> },
        // The handler runs inside the span's context.
        Handler {
            #[pin]
            handler: CatchPanic<F>,
            span: Option<RequestSpan>,
            uri: Uri,
            matched: bool,
        },
        // A framework error response becoming problem details.
        Rewriting { future: Pin<Box<dyn Future<Output = Response> + Send>> },
    }
}

impl<F> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        loop {
            let rewrite: Pin<Box<dyn Future<Output = Response> + Send>> =
                match self.as_mut().project().state.project() {
                    StateProj::Ready { response } => {
                        return Poll::Ready(Ok(response.take().unwrap_or_default()));
                    }
                    StateProj::Rewriting { future } => return future.as_mut().poll(cx).map(Ok),
                    StateProj::Handler {
                        handler,
                        span,
                        uri,
                        matched,
                    } => {
                        let result = std::task::ready!(handler.poll(cx));
                        let Some(mut span) = span.take() else {
                            // Polled again after it answered.
                            return Poll::Ready(Ok(Response::default()));
                        };
                        let response = match result {
                            Ok(Ok(response)) => response,
                            Ok(Err(never)) => match never {},
                            Err(panic) => {
                                span.record_panic(&panic);
                                problem_response(&span.problem_for_panic(uri.path()))
                            }
                        };
                        if let Some(error) = response.extensions().get::<HandlerError>().cloned() {
                            span.record_error(&error);
                            let response =
                                problem_response(&span.problem_for_error(&error, uri.path()));
                            return Poll::Ready(Ok(end(span, response)));
                        }
                        let status = response.status();
                        if !status.is_client_error() && !status.is_server_error() {
                            return Poll::Ready(Ok(end(span, response)));
                        }
                        // axum's own error response: its body becomes the detail.
                        let (uri, matched) = (std::mem::take(uri), *matched);
                        Box::pin(async move {
                            let response =
                                rewrite_rejection(&span, response, matched, uri.path()).await;
                            end(span, response)
                        })
                    }
                };
            self.as_mut()
                .project()
                .state
                .set(State::Rewriting { future: rewrite });
        }
    }
}

/// Ends the span and adds `traceresponse`.
fn end(span: RequestSpan, mut response: Response) -> Response {
    if let Some(value) = span.finish(response.status(), response.headers()) {
        response.headers_mut().insert(TRACERESPONSE, value);
    }
    response
}

/// axum's own error responses (no route, wrong method, unreadable body,
/// an empty 5xx) are plain text or empty; they become problem details
/// ([`RequestSpan::rejection_problem`]). A response that already has another
/// content type is the application's and is kept as it is.
async fn rewrite_rejection(
    span: &RequestSpan,
    response: Response,
    matched: bool,
    path: &str,
) -> Response {
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if !is_framework_error_body(content_type) {
        return response;
    }
    let status = response.status();
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, MAX_REJECTION_BODY).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        Err(_) => String::new(),
    };
    let mut out = problem_response(&span.rejection_problem(status, &text, matched, path));
    // Keep what the framework said beyond the body (Allow on a 405, ...).
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out
}

/// A scrape's answer (not traced).
fn metrics_response(metrics: Exposition) -> Response {
    let mut response = Response::new(Body::from(metrics.body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(metrics.content_type),
    );
    response
}

fn problem_response(problem: &ProblemDetails) -> Response {
    let mut response = Response::new(Body::from(problem.to_json()));
    *response.status_mut() = problem.status_code();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

/// A handler error: any error converts into it with `?` or `.into()`. The
/// layer records it on the span and answers RFC 9457 problem+json with the
/// error's code (found on the error or its source chain; 500 and code 5000
/// without one), the masked detail and the trace id.
#[derive(Debug, Clone)]
pub struct Error(pub HandlerError);

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        Error(HandlerError::new(error))
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        // Without the layer, a safe body: the code and its title only.
        let mut response = problem_response(&self.0.fallback_problem());
        *response.status_mut() = self.0.status();
        response.extensions_mut().insert(self.0);
        response
    }
}

/// The request's trace, as an extractor: trace id, span id, baggage and the
/// OpenTelemetry context (to carry into spawned tasks), through
/// [`engine::request::RequestTrace`]'s methods. Without the layer,
/// everything is `None`. It is the request's context as the layer's future
/// holds it ([`RequestContext::current`]): extract it in the handler (or a
/// middleware inside the layer), not in a task the handler spawns.
#[derive(Debug, Clone)]
pub struct RequestTrace(pub faultline_engine::request::RequestTrace);

impl std::ops::Deref for RequestTrace {
    type Target = faultline_engine::request::RequestTrace;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for RequestTrace {
    type Rejection = Infallible;

    async fn from_request_parts(_parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(RequestTrace(faultline_engine::request::RequestTrace::new(
            RequestContext::current(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::routing::get;
    use faultline_engine::config::TracingConfig;
    use faultline_engine::export::InMemoryExporter;
    use opentelemetry::trace::TraceContextExt as _;
    use tower::ServiceExt;

    use super::*;

    fn engine() -> (Engine, InMemoryExporter) {
        let spans = InMemoryExporter::default();
        let config = TracingConfig::builder()
            .service_name("axum-adapter")
            .exporters([])
            .build()
            .unwrap();
        let engine = Engine::builder(config)
            .exporter(spans.clone())
            .install_global(false)
            .build()
            .unwrap();
        (engine, spans)
    }

    #[tokio::test]
    async fn a_request_dropped_before_its_answer_ends_its_span_as_cancelled() {
        let (engine, spans) = engine();
        let app = Router::new()
            .route("/slow", get(std::future::pending::<&'static str>))
            .layer(FaultlineLayer::new(engine.clone()));
        let request = Request::get("/slow").body(Body::empty()).unwrap();
        // Polled until the timeout, then dropped, as when a client goes away.
        let answer = tokio::time::timeout(Duration::from_millis(50), app.oneshot(request)).await;
        assert!(answer.is_err());
        engine.force_flush();
        let exported = spans.wait_for(1, Duration::from_secs(5));
        assert_eq!(exported.len(), 1);
        assert_eq!(exported[0].name, "GET /slow");
        assert!(
            exported[0]
                .attributes
                .iter()
                .any(|kv| kv.key.as_str() == "faultline.request.cancelled"),
            "{:?}",
            exported[0].attributes
        );
        engine.shutdown();
    }

    async fn ids(trace: RequestTrace) -> String {
        // A span of the handler's own made current: the request's context
        // is still the server span's.
        let under_own_span = {
            let _own = opentelemetry::Context::current()
                .with_remote_span_context(opentelemetry::trace::SpanContext::new(
                    opentelemetry::trace::TraceId::from(7),
                    opentelemetry::trace::SpanId::from(7),
                    opentelemetry::trace::TraceFlags::SAMPLED,
                    false,
                    Default::default(),
                ))
                .attach();
            RequestContext::current().and_then(|c| c.span_id())
        };
        assert_eq!(under_own_span, trace.span_id());
        format!(
            "{}|{}|{}",
            trace.trace_id().unwrap_or_default(),
            trace.span_id().unwrap_or_default(),
            trace.baggage("tenant").unwrap_or_default()
        )
    }

    #[tokio::test]
    async fn the_request_trace_extractor_gives_the_server_spans_ids_and_baggage() {
        let (engine, _spans) = engine();
        let app = Router::new()
            .route("/ids", get(ids))
            .layer(FaultlineLayer::new(engine.clone()));
        let response = app
            .oneshot(
                Request::get("/ids")
                    .header("baggage", "tenant=acme")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        let traceresponse = response.headers()[TRACERESPONSE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let parts: Vec<&str> = traceresponse.split('-').collect();
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            format!("{}|{}|acme", parts[1], parts[2])
        );
        // Without the layer: nothing.
        let bare = Router::new().route("/ids", get(ids));
        let response = bare
            .oneshot(Request::get("/ids").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], b"||");
        engine.shutdown();
    }

    #[tokio::test]
    async fn answers_and_axum_rejections_end_their_spans_with_traceresponse() {
        let (engine, spans) = engine();
        let app = Router::new()
            .route("/ok", get(|| async { "ok" }))
            .layer(FaultlineLayer::new(engine.clone()));
        let ok = app
            .clone()
            .oneshot(Request::get("/ok").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        assert!(ok.headers().contains_key(TRACERESPONSE));
        // A wrong method: axum's own 405, rewritten into problem details
        // through the boxed step, its `Allow` header kept.
        let rejected = app
            .oneshot(Request::post("/ok").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(rejected.status(), 405);
        assert!(rejected.headers().contains_key(TRACERESPONSE));
        assert!(rejected.headers().contains_key(header::ALLOW));
        assert_eq!(
            rejected.headers().get(header::CONTENT_TYPE).unwrap(),
            PROBLEM_JSON
        );
        engine.force_flush();
        let exported = spans.wait_for(2, Duration::from_secs(5));
        assert_eq!(exported.len(), 2);
        assert!(
            exported
                .iter()
                .all(|s| s.name == "GET /ok" || s.name.starts_with("POST"))
        );
        engine.shutdown();
    }
}
