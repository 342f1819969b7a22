//! faultline's actix-web adapter: one actix-web middleware traces every request.
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use faultline_actix::{Error, FaultlineMiddleware, RequestTrace};
//! use faultline_engine::error::{AppError, ErrorCode};
//! use faultline_engine::Engine;
//! use faultline_engine::config::{ExporterKind, TracingConfig};
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
//! // The engine alone knows the console exporter; in an application,
//! // `faultline::setup::engine_builder(config)` registers the exporters
//! // compiled into faultline (`otlp`, the default, `jaeger`, ...) by name.
//! let config = TracingConfig::builder()
//!     .service_name("users")
//!     .exporters([ExporterKind::CONSOLE])
//!     .build()?;
//! let engine = Engine::builder(config).build()?;
//! HttpServer::new(move || {
//!     App::new()
//!         .service(web::resource("/users/{id}").get(user))
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
//! The span ends when the response body ends (a streamed body included),
//! through the engine's adapter core (`faultline_engine::request::adapter`): the
//! adapter only converts between actix-web's types and the `http` 1 types
//! of the core (actix-web 4 is built on `http` 0.2). The request's headers
//! and URI are read in place; a response that passes as it is keeps
//! actix-web's own head (only `traceresponse` is added, its headers copied
//! only when some are recorded); an error's answer is copied at the edge.
//!
//! A panic leaves actix-web no request to answer with, so that answer (and
//! the answer to an error an inner middleware returned) reaches middleware
//! wrapped outside this one as an `Err` whose response is the problem.
//!
//! Code in a handler that spawns a task carries the request's context along
//! with `opentelemetry::trace::FutureExt::with_context(fut, trace.context())`
//! (or attaches it inside the task).
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::{InternalError, JsonPayloadError};
use actix_web::http::{StatusCode, Version, header as ax};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use bytes::Bytes;
use faultline_engine::panic::CaughtPanic;
use faultline_engine::request::RequestInfo;
use faultline_engine::request::adapter::{
    self, ChunkBody, Chunks, Exchange, Excluded, FrameworkRejection, HeaderPairs, LastSeen,
    TracedBody, braced_route, copy_headers, http_response, method_of, status,
};
use futures_util::future::LocalBoxFuture;

/// The actix-web crate this adapter is built on, for code that names its types.
pub use actix_web;
pub use faultline_engine as engine;

faultline_engine::middleware_types! {
    /// The actix-web middleware: wrap an `App` with
    /// `.wrap(FaultlineMiddleware::new(engine))`. Cheap to clone.
    pub struct FaultlineMiddleware;
    /// The service [`FaultlineMiddleware`] wraps around an application: the
    /// application's service and the route of the path it saw last (its
    /// `inner`), and the engine.
    pub struct FaultlineService;
}

/// What a [`FaultlineService`] holds besides the engine: the application's
/// service, and the route of the path it saw last.
type Inner<S> = (Rc<S>, LastSeen<String, Route>);

impl<S, B> Transform<S, ServiceRequest> for FaultlineMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<ResponseBody>;
    type Error = actix_web::Error;
    type Transform = FaultlineService<Inner<S>>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, inner: S) -> Self::Future {
        ready(Ok(self.wrap((Rc::new(inner), LastSeen::new()))))
    }
}

/// A request's route template, when a resource matched its path.
type Route = Option<Cow<'static, str>>;

/// What a [`FaultlineService`] answers with.
type Answer = Result<ServiceResponse<ResponseBody>, actix_web::Error>;

impl<S, B> Service<ServiceRequest> for FaultlineService<Inner<S>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<ResponseBody>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Answer>;

    fn poll_ready(&self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.0.poll_ready(cx)
    }

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let scrape = self.engine.metrics_path() == Some(req.path());
        let inner = Rc::clone(&self.inner.0);
        if self.engine.excludes(req.path()) && !scrape {
            // An excluded route: no span, no conversion to `http` types; the
            // incoming context is made current around the application, and
            // only an error or a panic goes through the adapter core.
            let client = req.peer_addr().map(|a| a.ip());
            let excluded = Excluded::start(&self.engine, &HeaderPairs(req.headers()), client);
            // For an error's answer (the URI's text is shared, not copied;
            // the request itself must stay unshared for the router).
            let (method, uri, engine) =
                (req.method().clone(), req.uri().clone(), self.engine.clone());
            let handler = excluded.instrument(async move { inner.call(req).await });
            return Box::pin(async move {
                let handled = match handler.await {
                    Ok(Ok(response)) if passes(&response) => {
                        return Ok(response.map_body(|_, body| ResponseBody::plain(body)));
                    }
                    handled => handled,
                };
                let matched =
                    matches!(&handled, Ok(Ok(r)) if r.request().match_pattern().is_some());
                let exchange = excluded.into_foreign_exchange(&engine, method.as_str(), matched);
                // Boxed: an error's step does not make every request's future larger.
                Box::pin(answer(exchange, &uri, handled)).await
            });
        }
        // actix-web's headers are read in place, never converted.
        let headers = HeaderPairs(req.headers());
        let method = method_of(req.method().as_str());
        if scrape
            && let Some(metrics) = adapter::scrape(&self.engine, &method, req.path(), &headers)
        {
            let metrics = metrics.map(ResponseBody::plain);
            return Box::pin(ready(Ok(req.into_response(to_actix(head(), metrics)))));
        }
        let version = match req.version() {
            Version::HTTP_10 => http::Version::HTTP_10,
            Version::HTTP_2 => http::Version::HTTP_2,
            _ => http::Version::HTTP_11,
        };
        // The resource map's pattern, found before routing (which needs the
        // request to itself): the span is named from its start. In the
        // `{param}` form, kept for the path seen last, so that the same path
        // again (a probe, a busy endpoint) is not matched against the whole
        // map again and its pattern made anew as a string.
        let route: Route = self.inner.1.get_text(req.path(), || {
            let route = req.match_pattern();
            route.map(|p| adapter::shared_route(&braced_route(&p)))
        });
        // The URI read in place (its text is shared, not copied), converted
        // only for an answer that needs it.
        let uri = req.uri().clone();
        let parts = (uri.path(), uri.query());
        let origin = (uri.scheme_str(), uri.authority().map(|a| a.as_str()));
        let info = RequestInfo::from_parts(&method, parts, origin, version, &headers)
            .with_route(route.as_deref())
            .with_client_address(req.peer_addr().map(|a| a.ip()));
        let exchange = Exchange::start(&self.engine, &info, http::Uri::default());
        // Called inside the instrumented future: actix-web runs extractors
        // while building its future, and those must see the context too.
        let handler = exchange.instrument(async move { inner.call(req).await });
        Box::pin(async move {
            match handler.await {
                // Nothing to answer for (no error, nothing to rewrite): the
                // core's last step on actix-web's own head.
                Ok(Ok(response)) if passes(&response) => Ok(finish(exchange, response)),
                // Boxed, as above.
                handled => Box::pin(answer(exchange, &uri, handled)).await,
            }
        })
    }
}

/// Whether `response` passes as it is: no error status, no error to answer for.
fn passes<B>(response: &ServiceResponse<B>) -> bool {
    response.status().as_u16() < 400 && response.response().error().is_none()
}

/// The answer to a request whose application ran (`handled`), through the
/// adapter core.
async fn answer<B: MessageBody + 'static>(
    mut exchange: Exchange,
    uri: &actix_web::http::Uri,
    handled: Result<Result<ServiceResponse<B>, actix_web::Error>, CaughtPanic>,
) -> Answer {
    let (request, head, handled) = match handled {
        Ok(Ok(response)) => {
            let (request, response) = response.into_parts();
            let (head, response) = to_core(response.map_into_boxed_body());
            (Some(request), head, Ok(response))
        }
        Ok(Err(error)) => {
            let (head, response) = to_core(error.error_response());
            (None, head, Ok(response))
        }
        Err(panic) => (None, head(), Err(panic)),
    };
    // Each problem's `instance` is the URI's path (all the core reads of it).
    exchange.set_uri(http::Uri::try_from(uri.path()).unwrap_or_default());
    // A 5xx's text (an error's `Display`) may name internals: not read.
    let read_text = handled.as_ref().is_ok_and(|r| r.status().as_u16() < 500);
    let response = exchange.respond(handled, read_text).await;
    let response = to_actix(head, response.map(ResponseBody));
    match request {
        Some(request) => Ok(ServiceResponse::new(request, response)),
        // No request is left to answer with (a panic, an inner
        // middleware's error): the answer travels as an error.
        None => Err(InternalError::from_response("", response.map_into_boxed_body()).into()),
    }
}

/// The core's [`Exchange::finish`] on a response that passes as it is:
/// only the status (and the headers when some are recorded) go to the
/// core, and only what it adds (`traceresponse`) comes back onto
/// actix-web's own head.
fn finish<B: MessageBody + 'static>(
    exchange: Exchange,
    response: ServiceResponse<B>,
) -> ServiceResponse<ResponseBody> {
    let (request, response) = response.into_parts();
    let (mut head, body) = response.into_parts();
    let body = TracedBody::new(ChunkBody(ActixBody(body.boxed())));
    let (traceresponse, body) =
        exchange.finish_foreign(head.status().as_u16(), head.headers(), body);
    if let Some(value) = traceresponse {
        head.headers_mut().insert(TRACERESPONSE_NAME, value);
    }
    ServiceResponse::new(request, head.set_body(ResponseBody(body)))
}

/// `traceresponse` as actix-web's header name, made once (made from the
/// text each time, a custom name allocates).
const TRACERESPONSE_NAME: ax::HeaderName = ax::HeaderName::from_static("traceresponse");

/// An empty response head, for an answer that has none of its own.
fn head() -> HttpResponse<()> {
    HttpResponse::Ok().finish().drop_body()
}

/// actix-web's response as the core's: its head (kept for the answer), and
/// the status, headers and body as an `http` response, with the handler's
/// [`Error`] or actix-web's JSON error in its extensions.
fn to_core(response: HttpResponse) -> (HttpResponse<()>, http::Response<CoreBody>) {
    let error = response.error();
    let handler_error = error.and_then(|e| e.as_error::<Error>().map(|e| e.0.clone()));
    let rejection = match error.and_then(|e| e.as_error::<JsonPayloadError>()) {
        Some(JsonPayloadError::ContentType) => Some(FrameworkRejection::json_content_type()),
        Some(JsonPayloadError::Deserialize(e)) => Some(FrameworkRejection::json_body(e)),
        _ => None,
    };
    let (head, body) = response.into_parts();
    let code = head.status().as_u16();
    let mut out = http_response(code, head.headers(), ChunkBody(ActixBody(body)));
    handler_error.map(|e| out.extensions_mut().insert(e));
    rejection.map(|r| out.extensions_mut().insert(r));
    (head, out)
}

/// The core's response as actix-web's, on the head it came with.
fn to_actix<T>(mut head: HttpResponse<()>, response: http::Response<T>) -> HttpResponse<T> {
    let (parts, body) = response.into_parts();
    *head.status_mut() = status(parts.status.as_u16());
    let headers = head.headers_mut();
    headers.clear();
    copy_headers(&parts.headers, |name, value| headers.append(name, value));
    head.set_body(body)
}

/// actix-web's body as the core's [`Chunks`] (an `http_body::Body` as a
/// [`ChunkBody`]).
#[derive(Debug)]
struct ActixBody(BoxBody);

impl Chunks for ActixBody {
    type Error = Box<dyn std::error::Error>;

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.0).poll_next(cx)
    }

    fn exact_len(&self) -> Option<u64> {
        match self.0.size() {
            BodySize::None => Some(0),
            BodySize::Sized(n) => Some(n),
            BodySize::Stream => None,
        }
    }
}

/// actix-web's body as an `http_body::Body`, for the adapter core.
type CoreBody = ChunkBody<ActixBody>;

/// The body of a traced response: the application's (or a problem's
/// text), ending the request's span when it ends; the application's own,
/// as it is, when no span waits on it.
#[derive(Debug)]
pub struct ResponseBody(TracedBody<CoreBody>);

impl ResponseBody {
    /// actix-web's body, with no span waiting on it.
    fn plain(body: impl MessageBody + 'static) -> Self {
        ResponseBody(TracedBody::new(ChunkBody(ActixBody(body.boxed()))))
    }
}

impl MessageBody for ResponseBody {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        match self.0.framework() {
            // actix-web's own size: "no body" stays apart from an empty one.
            Some(ChunkBody(ActixBody(body))) => body.size(),
            None => {
                let exact = http_body::Body::size_hint(&self.0).exact();
                exact.map_or(BodySize::Stream, BodySize::Sized)
            }
        }
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        self.0.poll_chunk(cx)
    }

    fn try_into_bytes(self) -> Result<Bytes, Self> {
        match self.0.into_framework() {
            Ok(ChunkBody(ActixBody(body))) => body.try_into_bytes().map_err(ResponseBody::plain),
            Err(traced) => Err(ResponseBody(traced)),
        }
    }
}

faultline_engine::handler_types! {
    /// A handler error: any error converts into it with `?` or `.into()`, and
    /// it is an actix-web `ResponseError`, so a handler returns
    /// `Result<T, faultline_actix::Error>`. The middleware records it on the
    /// span and answers RFC 9457 problem+json with the error's code (found on
    /// the error or its source chain; 500 and code 5000 without one), the
    /// masked detail and the trace id. (`actix_web::Error` is not `Send`, so
    /// it does not convert: a handler returning it keeps it, and its answer
    /// becomes problem details by its status, like actix-web's own errors.)
    pub struct Error;
    /// The request's trace, as an extractor: trace id, span id, baggage and the
    /// OpenTelemetry context (to carry into spawned tasks), through
    /// [`HandlerTrace`](faultline_engine::request::HandlerTrace)'s methods.
    /// Without the middleware, everything is `None`. It is the request's
    /// context as the middleware's future holds it
    /// ([`RequestContext::current`](faultline_engine::request::RequestContext::current)):
    /// extract it in the handler (or a middleware inside this one), not in
    /// a task the handler spawns.
    pub struct RequestTrace;
}

impl ResponseError for Error {
    fn status_code(&self) -> StatusCode {
        status(self.0.status().as_u16())
    }

    fn error_response(&self) -> HttpResponse {
        // Without the middleware, a safe body: the code and its title only.
        let response = self.0.clone().fallback_response();
        to_actix(head(), response).map_into_boxed_body()
    }
}

impl FromRequest for RequestTrace {
    type Error = Infallible;
    type Future = Ready<Result<Self, Infallible>>;

    fn from_request(_req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(Ok(RequestTrace::current()))
    }
}

#[cfg(test)]
mod tests;
