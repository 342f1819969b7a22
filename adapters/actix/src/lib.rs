//! faultline's actix-web adapter: one actix-web middleware traces every request.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use faultline_actix::{Error, FaultlineMiddleware, RequestTrace};
//! use faultline_engine::error::{AppError, ErrorCode};
//! use faultline_engine::{Engine, config::TracingConfig};
//!
//! const USER_NOT_FOUND: ErrorCode =
//!     ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND);
//!
//! async fn user(id: web::Path<u32>, trace: RequestTrace) -> Result<String, Error> {
//!     // Err(..) becomes RFC 9457 problem+json with `code` and `trace_id`.
//!     Err(AppError::new(USER_NOT_FOUND, format!("no user {id} (trace {:?})", trace.trace_id())).into())
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let engine = Engine::builder(TracingConfig::from_env()?).build()?;
//! HttpServer::new(move || {
//!     App::new()
//!         .route("/users/{id}", web::get().to(user))
//!         .wrap(FaultlineMiddleware::new(engine.clone()))
//! })
//! .bind(("127.0.0.1", 8080))?
//! .run()
//! .await?;
//! # Ok(()) }
//! ```
//!
//! For every request the middleware extracts the incoming trace context,
//! starts a server span named `"{METHOD} {route}"` (the route template of
//! actix's resource map, in the `{param}` form: `{id:\d+}` is `{id}`, a tail
//! `{rest}*` is `{*rest}`), runs the rest of the application inside the
//! span's context, catches a panic (answering 500 problem+json, nothing of
//! the panic text in it), turns handler errors ([`Error`]) and actix-web's
//! own error responses (no route, wrong method, unreadable body, ...) into
//! problem details carrying the trace id, adds `traceresponse`, and ends
//! the span. Wrap it around the whole `App` (`App::wrap`), so that requests
//! no route matched are traced too.
//!
//! When a correlator serves metrics (the Prometheus plugin), the middleware
//! also answers `GET /metrics` (the configured
//! [`metrics_path`](faultline_engine::config::TracingConfig::metrics_path))
//! itself, untraced.
//!
//! A panic leaves actix-web no request to answer with, so that answer (and
//! the answer to an error an inner middleware returned) reaches middleware
//! wrapped outside this one as an `Err` whose response is the problem.
//!
//! actix-web 4 is built on the `http` 0.2 types; the adapter converts the
//! method, version, status and headers to the `http` 1 types of the engine.
//! Code in a handler that spawns a task carries the request's context along
//! with `opentelemetry::trace::FutureExt::with_context(fut, trace.context())`
//! (or attaches it inside the task).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::rc::Rc;

use actix_web::body::{BoxBody, EitherBody, MessageBody, to_bytes_limited};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform, forward_ready};
use actix_web::error::JsonPayloadError;
use actix_web::http::{StatusCode, Version, header as ax};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use faultline_engine::Engine;
use faultline_engine::error::{PROBLEM_JSON, ProblemDetails};
use faultline_engine::request::{
    HandlerError, RequestContext, RequestInfo, RequestSpan, is_framework_error_body,
};
use futures_util::future::LocalBoxFuture;

/// The actix-web crate this adapter is built on, for code that names its types.
pub use actix_web;
pub use faultline_engine as engine;

/// The largest framework error body read to become a problem's detail.
const MAX_REJECTION_BODY: usize = 4096;

/// The actix-web middleware: wrap an `App` with
/// `.wrap(FaultlineMiddleware::new(engine))`.
#[derive(Debug, Clone)]
pub struct FaultlineMiddleware {
    engine: Engine,
}

impl FaultlineMiddleware {
    /// A middleware tracing with `engine`.
    pub fn new(engine: Engine) -> Self {
        FaultlineMiddleware { engine }
    }
}

impl<S, B> Transform<S, ServiceRequest> for FaultlineMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = FaultlineService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, inner: S) -> Self::Future {
        ready(Ok(FaultlineService {
            inner: Rc::new(inner),
            engine: self.engine.clone(),
        }))
    }
}

/// The service [`FaultlineMiddleware`] wraps around an application.
#[derive(Debug)]
pub struct FaultlineService<S> {
    inner: Rc<S>,
    engine: Engine,
}

impl<S, B> Service<ServiceRequest> for FaultlineService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, Self::Error>>;

    forward_ready!(inner);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let method = http::Method::from_bytes(req.method().as_str().as_bytes()).unwrap_or_default();
        let headers = to_http_headers(req.headers());
        if let Some(metrics) = self.engine.scrape(&method, req.path(), &headers) {
            let response = HttpResponse::Ok()
                .content_type(metrics.content_type)
                .body(metrics.body);
            return Box::pin(ready(Ok(req.into_response(response).map_into_right_body())));
        }
        // The resource map's pattern, found before routing (which needs the
        // request to itself): the span is named from its start.
        let pattern = req.match_pattern();
        let route = pattern.as_deref().map(route_template);
        let span = self.engine.start_request(&RequestInfo {
            method: &method,
            route: route.as_deref(),
            path: req.path(),
            query: Some(req.query_string()),
            scheme: req.uri().scheme_str().unwrap_or("http"),
            version: to_http_version(req.version()),
            headers: &headers,
            authority: req.uri().authority().map(|a| a.as_str()),
            client_address: req.peer_addr().map(|a| a.ip()),
        });
        let (path, matched) = (req.path().to_owned(), pattern.is_some());
        let inner = Rc::clone(&self.inner);
        // Called inside the instrumented future: actix-web runs extractors
        // while building its future, and those must see the context too.
        let handler = span.instrument(async move { inner.call(req).await });
        Box::pin(async move {
            let mut span = span;
            match handler.await {
                Ok(Ok(response)) => Ok(respond(span, response, matched, &path).await),
                // No request to answer with: the answer travels as an error.
                Ok(Err(error)) => {
                    let answer = rewrite(&span, error.error_response(), matched, &path).await;
                    Err(Answer::from(finish(span, answer)).into())
                }
                Err(panic) => {
                    span.record_panic(&panic);
                    let answer = problem_response(&span.problem_for_panic(&path));
                    Err(Answer::from(finish(span, answer)).into())
                }
            }
        })
    }
}

/// Records a handler error and writes its problem details, or turns
/// actix-web's own error responses into problem details; ends the span.
async fn respond<B: MessageBody + 'static>(
    mut span: RequestSpan,
    response: ServiceResponse<B>,
    matched: bool,
    path: &str,
) -> ServiceResponse<EitherBody<B>> {
    let status = response.status();
    let handler_error = response
        .response()
        .error()
        .and_then(|e| e.as_error::<Error>());
    if let Some(Error(error)) = handler_error.cloned() {
        span.record_error(&error);
        let problem = problem_response(&span.problem_for_error(&error, path));
        return finish(span, response.into_response(problem).map_into_right_body());
    }
    if !status.is_client_error() && !status.is_server_error() {
        return finish(span, response.map_into_left_body());
    }
    let (request, answer) = response.into_parts();
    let answer = rewrite(&span, answer, matched, path).await;
    finish(span, ServiceResponse::new(request, answer))
}

/// actix-web's own error responses (no route, wrong method, unreadable
/// body, an empty 5xx) are plain text or empty; they become problem details
/// ([`RequestSpan::rejection_problem`]). A response that already has
/// another content type is the application's and is kept as it is.
async fn rewrite<B: MessageBody + 'static>(
    span: &RequestSpan,
    response: HttpResponse<B>,
    matched: bool,
    path: &str,
) -> HttpResponse<EitherBody<B>> {
    let content_type = response.headers().get(ax::CONTENT_TYPE);
    if !is_framework_error_body(content_type.and_then(|v| v.to_str().ok())) {
        return response.map_into_left_body();
    }
    let known = response.error().and_then(known_rejection);
    let (head, body) = response.into_parts();
    let (status, text) = match known {
        Some(known) => known,
        None => match to_bytes_limited(body, MAX_REJECTION_BODY).await {
            Ok(Ok(bytes)) => (head.status(), String::from_utf8_lossy(&bytes).into_owned()),
            _ => (head.status(), String::new()),
        },
    };
    let status = to_http_status(status);
    let mut out = problem_response(&span.rejection_problem(status, &text, matched, path));
    // Keep what the framework said beyond the body (Allow on a 405, ...).
    for (name, value) in head.headers() {
        if name != ax::CONTENT_TYPE && name != ax::CONTENT_LENGTH {
            out.headers_mut().append(name.clone(), value.clone());
        }
    }
    out.map_into_right_body()
}

/// The status and detail of actix-web's JSON errors, worded as on the
/// other frameworks so that a client gets the same problem whichever one
/// serves it (a body that parses but does not fit the handler's type is
/// 422, not 400; a wrong content type 415).
fn known_rejection(error: &actix_web::Error) -> Option<(StatusCode, String)> {
    Some(match error.as_error::<JsonPayloadError>()? {
        JsonPayloadError::ContentType => (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected request with `Content-Type: application/json`".to_owned(),
        ),
        JsonPayloadError::Deserialize(e) if e.is_data() => (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("Failed to deserialize the JSON body into the target type: {e}"),
        ),
        JsonPayloadError::Deserialize(e) => (
            StatusCode::BAD_REQUEST,
            format!("Failed to parse the request body as JSON: {e}"),
        ),
        _ => return None,
    })
}

/// Ends the span and adds `traceresponse`.
fn finish<R: Answered>(span: RequestSpan, mut response: R) -> R {
    let status = to_http_status(response.status());
    if let Some(value) = span.finish(status, &to_http_headers(response.headers()))
        && let Ok(value) = ax::HeaderValue::from_bytes(value.as_bytes())
    {
        response.headers_mut().insert(TRACERESPONSE, value);
    }
    response
}

/// The `traceresponse` header name, in actix-web's type.
const TRACERESPONSE: ax::HeaderName = ax::HeaderName::from_static("traceresponse");

/// What [`finish`] reads and writes: an actix-web response, with or without
/// its request.
trait Answered {
    fn status(&self) -> StatusCode;
    fn headers(&self) -> &ax::HeaderMap;
    fn headers_mut(&mut self) -> &mut ax::HeaderMap;
}

impl<B> Answered for HttpResponse<B> {
    fn status(&self) -> StatusCode {
        HttpResponse::status(self)
    }
    fn headers(&self) -> &ax::HeaderMap {
        HttpResponse::headers(self)
    }
    fn headers_mut(&mut self) -> &mut ax::HeaderMap {
        HttpResponse::headers_mut(self)
    }
}

impl<B> Answered for ServiceResponse<B> {
    fn status(&self) -> StatusCode {
        ServiceResponse::status(self)
    }
    fn headers(&self) -> &ax::HeaderMap {
        ServiceResponse::headers(self)
    }
    fn headers_mut(&mut self) -> &mut ax::HeaderMap {
        ServiceResponse::headers_mut(self)
    }
}

fn problem_response(problem: &ProblemDetails) -> HttpResponse {
    HttpResponse::build(
        StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
    )
    .content_type(PROBLEM_JSON)
    .body(problem.to_json())
}

/// A whole answer carried as an actix-web error, when there is no request
/// left to answer with (a panic, an inner middleware's error).
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    headers: ax::HeaderMap,
    body: String,
}

impl<B: MessageBody> From<HttpResponse<B>> for Answer {
    fn from(response: HttpResponse<B>) -> Self {
        let (head, body) = response.into_parts();
        let body = body
            .try_into_bytes()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        Answer {
            status: head.status(),
            headers: head.headers().clone(),
            body,
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "answered {} by faultline", self.status)
    }
}

impl ResponseError for Answer {
    fn status_code(&self) -> StatusCode {
        self.status
    }
    fn error_response(&self) -> HttpResponse<BoxBody> {
        let mut response =
            HttpResponse::with_body(self.status, self.body.clone()).map_into_boxed_body();
        for (name, value) in &self.headers {
            response.headers_mut().append(name.clone(), value.clone());
        }
        response
    }
}

/// actix-web's route pattern in the `{param}` form: `{id:\d+}` is `{id}`
/// (a regex may hold braces of its own), a tail segment `{rest}*` is
/// `{*rest}`. Follows actix-router's own parser.
fn route_template(pattern: &str) -> Cow<'_, str> {
    if !pattern.contains(':') && !pattern.ends_with("}*") {
        // Nothing to rewrite.
        return Cow::Borrowed(pattern);
    }
    let mut out = String::with_capacity(pattern.len());
    let mut rest = pattern;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let mut depth = 0usize;
        let close = rest[open..].find(|c| {
            depth = match c {
                '{' => depth + 1,
                '}' => depth.saturating_sub(1),
                _ => depth,
            };
            c == '}' && depth == 0
        });
        let Some(close) = close.map(|i| open + i) else {
            break;
        };
        let name = rest[open + 1..close].split(':').next().unwrap_or_default();
        rest = &rest[close + 1..];
        if rest == "*" {
            rest = "";
            out.extend(["{*", name, "}"]);
        } else {
            out.extend(["{", name, "}"]);
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}

fn to_http_version(version: Version) -> http::Version {
    match version {
        Version::HTTP_09 => http::Version::HTTP_09,
        Version::HTTP_10 => http::Version::HTTP_10,
        Version::HTTP_2 => http::Version::HTTP_2,
        Version::HTTP_3 => http::Version::HTTP_3,
        _ => http::Version::HTTP_11,
    }
}

fn to_http_status(status: StatusCode) -> http::StatusCode {
    http::StatusCode::from_u16(status.as_u16()).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR)
}

/// actix-web's headers as an `http` 1 map (names and values are the same bytes).
fn to_http_headers(headers: &ax::HeaderMap) -> http::HeaderMap {
    let mut out = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_str().as_bytes()),
            http::HeaderValue::from_bytes(value.as_bytes()),
        ) {
            out.append(name, value);
        }
    }
    out
}

/// A handler error: any error converts into it with `?` or `.into()`, and
/// it is an actix-web `ResponseError`, so a handler returns
/// `Result<T, faultline_actix::Error>`. The middleware records it on the
/// span and answers RFC 9457 problem+json with the error's code (found on
/// the error or its source chain; 500 and code 5000 without one), the
/// masked detail and the trace id.
#[derive(Debug, Clone)]
pub struct Error(pub HandlerError);

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Self {
        Error(HandlerError::new(error))
    }
}

impl std::fmt::Display for Error {
    /// The code's name only: a logging middleware in between sees nothing unmasked.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let problem = self.0.fallback_problem();
        write!(f, "{} (code {})", problem.title, problem.code)
    }
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.0.status().as_u16()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse<BoxBody> {
        // Without the middleware, a safe body: the code and its title only.
        problem_response(&self.0.fallback_problem())
    }
}

/// The request's trace, as an extractor: trace id, span id, baggage and the
/// OpenTelemetry context (to carry into spawned tasks), through
/// [`engine::request::RequestTrace`]'s methods. Without the middleware,
/// everything is `None`. It is the request's context as the middleware's
/// future holds it ([`RequestContext::current`]): extract it in the handler
/// (or a middleware inside this one), not in a task the handler spawns.
#[derive(Debug, Clone)]
pub struct RequestTrace(pub faultline_engine::request::RequestTrace);

impl std::ops::Deref for RequestTrace {
    type Target = faultline_engine::request::RequestTrace;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRequest for RequestTrace {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(_req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(Ok(RequestTrace(
            faultline_engine::request::RequestTrace::new(RequestContext::current()),
        )))
    }
}

#[cfg(test)]
mod tests;
