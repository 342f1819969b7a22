//! faultline's poem adapter: one poem [`Middleware`] traces every request.
//!
//! ```no_run
//! use faultline_engine::error::{AppError, ErrorCode};
//! use faultline_engine::Engine;
//! use faultline_engine::config::{ExporterKind, TracingConfig};
//! use faultline_poem::{Error, FaultlineMiddleware, RequestTrace};
//! use poem::listener::TcpListener;
//! use poem::web::Path;
//! use poem::{EndpointExt, Route, Server, get, handler};
//!
//! const USER_NOT_FOUND: ErrorCode =
//!     ErrorCode::new(1001, "USER_NOT_FOUND", http::StatusCode::NOT_FOUND);
//!
//! #[handler]
//! async fn user(Path(id): Path<u32>, trace: RequestTrace) -> Result<String, Error> {
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
//! let app = Route::new()
//!     // poem's `:id` is reported as `/users/{id}` (span name and `http.route`).
//!     .at("/users/:id", get(user))
//!     .with(FaultlineMiddleware::new(engine.clone()));
//! Server::new(TcpListener::bind("127.0.0.1:8080")).run(app).await?;
//! # Ok(()) }
//! ```
//!
//! For every request the middleware extracts the incoming trace context,
//! starts a server span, runs the endpoint inside the span's context,
//! catches a panic (answering 500 problem+json, nothing of the panic text in
//! it), turns handler errors ([`Error`]) and poem's own errors (no route,
//! wrong method, unreadable body, ...) into problem details carrying the
//! trace id, adds `traceresponse`, and ends the span.
//!
//! The span ends when the response body ends (a streamed body is timed to
//! its last byte), and requests on the configured excluded routes are not
//! traced: see the engine's adapter core (`faultline_engine::request::adapter`),
//! which every faultline HTTP adapter shares.
//!
//! # The route
//!
//! poem's router tells the route it matched ([`PathPattern`]) only to what
//! runs *inside* it, and on the response (or error) it returns. Around a
//! whole `Route`, the middleware names the span `"{METHOD} {route}"` from
//! the response's pattern, written in the `{param}` form (`:id` and
//! `:id<regex>` become `{id}`, `*rest` becomes `{*rest}`, an unnamed
//! `<regex>` becomes `{_}`); without a matched route the span is named by
//! the method alone. A handler that panics returns no response, so its
//! span learns the route only when something ran inside the router: the
//! [`RequestTrace`] extractor, or [`RecordRoute`] on the route's endpoint
//! (`get(handler).with(RecordRoute)`), which only tells the outer
//! middleware the route and hands the endpoint's own future on, at no cost
//! of a wrapper future. The same middleware applied to the route's endpoint
//! as well (`get(handler).with(middleware.clone())`) also only records the
//! route for the outer one; applied to endpoints alone, without the outer
//! one, it traces those endpoints completely (but not the requests no
//! route matched).
//!
//! When a correlator serves metrics (the Prometheus plugin), the outer
//! middleware also answers `GET /metrics` (the configured
//! [`metrics_path`](faultline_engine::config::TracingConfig::metrics_path))
//! itself, untraced.
//!
//! Code in a handler that spawns a task carries the request's context along
//! with `opentelemetry::trace::FutureExt::with_context(fut, trace.context().clone())`
//! (or attaches it inside the task).
#![deny(missing_docs)]
#![warn(unreachable_pub)]
#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use faultline_engine::request::adapter::{
    self, Answering, Exchange, Excluded, FrameworkRejection, LastSeen, Rules, TracedBody,
    colon_route, shared_route, with_notes,
};
use faultline_engine::request::{
    HandlerError, HandlerTrace, RequestContext, RequestInfo, TRACERESPONSE,
};
use futures_util::FutureExt as _;
use futures_util::future::Either;
use http::Uri;
use http_body_util::combinators::BoxBody;
use poem::PathPattern;
use poem::error::{MethodNotAllowedError, NotFoundError, ParseJsonError};
use poem::{Endpoint, FromRequest, IntoResponse, Middleware, Request, RequestBody, Response};

pub use faultline_engine as engine;

/// poem's response body as an `http` one.
type Body = BoxBody<Bytes, std::io::Error>;
/// poem's response as an `http` one.
type HttpResponse = http::Response<Body>;
/// The poem crate this adapter is built on, for code that names its types.
pub use poem;

faultline_engine::middleware_types! {
    /// The poem middleware: add it to a `Route` with
    /// `.with(FaultlineMiddleware::new(engine))`.
    pub struct FaultlineMiddleware;
    /// The endpoint [`FaultlineMiddleware`] wraps around another.
    pub struct FaultlineEndpoint;
}

impl<E: Endpoint> Middleware<E> for FaultlineMiddleware {
    type Output = FaultlineEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        self.wrap(ep)
    }
}

/// Tells the outer faultline endpoint the route of `pattern`, when one
/// traces the request being polled on this thread.
fn record_route(pattern: Option<&PathPattern>) {
    with_notes(|notes| {
        if let (Some(notes), Some(pattern)) = (notes, pattern) {
            notes.route = Some(route_of(pattern));
        }
    });
}

/// Tells an outer [`FaultlineMiddleware`] the route poem matched, from
/// inside the router, and adds nothing else: put on each route's endpoint
/// (`get(handler).with(RecordRoute)`), so that the span of a handler that
/// panics (and returns no response to read the route from) still has its
/// route. The cheapest way: the endpoint's own future is returned as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordRoute;

impl<E: Endpoint> Middleware<E> for RecordRoute {
    type Output = RecordRouteEndpoint<E>;

    fn transform(&self, ep: E) -> Self::Output {
        RecordRouteEndpoint(ep)
    }
}

/// The endpoint [`RecordRoute`] wraps around a route's endpoint.
#[derive(Debug)]
pub struct RecordRouteEndpoint<E>(E);

impl<E: Endpoint> Endpoint for RecordRouteEndpoint<E> {
    type Output = E::Output;

    #[inline]
    fn call(&self, req: Request) -> impl Future<Output = poem::Result<E::Output>> + Send {
        record_route(req.data::<PathPattern>());
        self.0.call(req)
    }
}

thread_local! {
    /// The last pattern this thread saw and its route: a request for the
    /// same route (poem hands out the router's own `Arc` each time) skips
    /// the rewrite and the interning.
    static LAST_ROUTE: LastSeen<Arc<str>, Cow<'static, str>> = const { LastSeen::new() };
}

/// The route template of `pattern`, shared (see [`shared_route`]).
fn route_of(pattern: &PathPattern) -> Cow<'static, str> {
    LAST_ROUTE.with(|last| {
        last.get(
            // The same `Arc` (kept alive here, so never another string at
            // the same address).
            |seen| Arc::ptr_eq(seen, &pattern.0),
            |_| (pattern.0.clone(), shared_route(&colon_route(&pattern.0))),
        )
    })
}

impl<E: Endpoint> Endpoint for FaultlineEndpoint<E> {
    type Output = Response;

    // Not an `async fn`, whose future would keep the request (hundreds of
    // bytes) for the whole request: the adapter core's `Answering`, which
    // poem moves several times on its way to the server (inlined, so that
    // the future is built where it is kept rather than copied there).
    #[inline(always)]
    fn call(&self, mut req: Request) -> impl Future<Output = poem::Result<Response>> + Send {
        let pattern = req.data::<PathPattern>();
        if RequestContext::is_current() {
            // Applied again inside the router, under an outer faultline
            // endpoint: that one traces the request (and learns the route
            // here), or left it untraced (an excluded route).
            record_route(pattern);
            let nested = self
                .inner
                .call(req)
                .map(|r| r.map(IntoResponse::into_response));
            return Either::Right(nested);
        }
        let (method, uri) = (req.method(), request_uri(&req));
        if let Some(metrics) = adapter::scrape(&self.engine, method, uri.path(), req.headers()) {
            return Either::Left(Answering::ready(Ok(poem_response(metrics))));
        }
        let client = req.remote_addr().as_socket_addr().map(|a| a.ip());
        let call = |req| move || self.inner.call(req);
        if self.engine.excludes(uri.path()) {
            // No span, no route recorded, nothing in the request's data.
            let excluded = Excluded::start(&self.engine, req.headers(), client);
            let (method, uri) = (method.clone(), uri.clone());
            let answering = Answering::excluded(excluded, &self.engine, method, uri, call(req));
            return Either::Left(answering);
        }
        let route = pattern.map(route_of);
        let info = RequestInfo::new(method, uri, req.version(), req.headers())
            .with_route(route.as_deref())
            .with_scheme(req.scheme().as_str())
            .with_client_address(client);
        let exchange = Exchange::start(&self.engine, &info, uri.clone());
        req.set_data(exchange.context());
        let answering: Answering<_, Body, Poem<E::Output>> = Answering::traced(exchange, call(req));
        Either::Left(answering)
    }
}

/// How the adapter core reads poem's responses (`T`: the endpoint's).
struct Poem<T>(PhantomData<T>);

impl<T: IntoResponse> Rules<Body> for Poem<T> {
    type Handled = poem::Result<T>;
    type Passed = Response;
    type Output = poem::Result<Response>;

    /// poem's own errors recognized.
    fn pass(handled: Self::Handled) -> Result<Response, HttpResponse> {
        let response = poem_handled(handled);
        if response.status().as_u16() < 400 && response.data::<HandlerError>().is_none() {
            Ok(response)
        } else {
            Err(HttpResponse::from(wrapped_rejection(response)))
        }
    }

    fn passed(response: Response) -> Self::Output {
        Ok(response)
    }

    /// On poem's own response: its head read in place, its body wrapped.
    fn finish(mut exchange: Exchange, mut response: Response) -> Self::Output {
        if let Some(pattern) = response.data::<PathPattern>() {
            exchange.set_route(&route_of(pattern));
        }
        let body = TracedBody::new(Body::from(response.take_body()));
        let (ids, body) = exchange.finish_head(response.status(), response.headers(), body);
        if let Some(ids) = ids {
            response
                .headers_mut()
                .insert(TRACERESPONSE, ids.to_header_value());
        }
        response.set_body(poem_body(body));
        Ok(response)
    }

    fn from_http(response: http::Response<TracedBody<Body>>) -> Self::Output {
        Ok(poem_response(response.map(poem_body)))
    }

    fn route(response: &HttpResponse) -> Option<Cow<'static, str>> {
        response.extensions().get::<PathPattern>().map(route_of)
    }

    /// A route matched: poem's router puts its pattern on what it returns.
    fn replied(response: &HttpResponse) -> bool {
        response.extensions().get::<PathPattern>().is_some()
    }

    fn read_text(_: http::StatusCode, _: bool) -> bool {
        true
    }
}

/// The body of an answered response: poem's own when nothing waits on it,
/// else the wrapper boxed as it is, its size known (poem's own conversion
/// loses it).
fn poem_body(body: TracedBody<Body>) -> poem::Body {
    match body.into_framework() {
        Ok(framework) => framework.into(),
        Err(traced) => BoxBody::new(traced).into(),
    }
}

/// An endpoint's outcome as poem's response, poem's own errors recognized.
fn poem_handled<T: IntoResponse>(result: poem::Result<T>) -> Response {
    result.map_or_else(
        |error| {
            let known = known_rejection(&error);
            let mut response = error.into_response();
            if let Some(rejection) = known {
                response.set_data(rejection);
            }
            response
        },
        IntoResponse::into_response,
    )
}

/// A poem error that went through [`Error`] (`?` on a `Result<_, Error>`):
/// answered as if returned directly.
fn wrapped_rejection(mut response: Response) -> Response {
    let Some(poem_error) = response
        .data::<HandlerError>()
        .and_then(|e| e.error().downcast_ref::<poem::Error>())
    else {
        return response;
    };
    let rejection = known_rejection(poem_error)
        .unwrap_or_else(|| FrameworkRejection::new(poem_error.status(), poem_error.to_string()));
    response.extensions_mut().remove::<HandlerError>();
    response.set_data(rejection);
    response
}

/// A response of the adapter core as poem's.
fn poem_response<B: Into<poem::Body>>(response: http::Response<B>) -> Response {
    let (parts, body) = response.into_parts();
    let mut out = Response::from(body.into());
    out.set_status(parts.status);
    out.set_version(parts.version);
    *out.headers_mut() = parts.headers;
    *out.extensions_mut() = parts.extensions;
    out
}

/// The request's URI as the client sent it: poem's `Route::nest` strips
/// its prefix from `uri()` (the middleware may sit inside a nest), while
/// `original_uri()` is empty on requests built without a server (tests).
fn request_uri(req: &Request) -> &Uri {
    let original = req.original_uri();
    let current = req.uri();
    if original.path().len() > current.path().len() && original.path().ends_with(current.path()) {
        original
    } else {
        current
    }
}

/// The status and detail of poem's own errors that faultline knows, worded
/// as on the other frameworks so that a client gets the same problem
/// whichever one serves it: no route and a wrong method (poem's text only
/// restates the status: the code's title), and an unreadable JSON body (a
/// body that parses but does not fit the handler's type is 422, not 400).
fn known_rejection(error: &poem::Error) -> Option<FrameworkRejection> {
    if error.is::<NotFoundError>() || error.is::<MethodNotAllowedError>() {
        return Some(FrameworkRejection::new(error.status(), ""));
    }
    Some(match error.downcast_ref::<ParseJsonError>()? {
        ParseJsonError::InvalidContentType(_) | ParseJsonError::ContentTypeRequired => {
            FrameworkRejection::json_content_type()
        }
        ParseJsonError::Parse(e) => FrameworkRejection::json_body(e),
    })
}

faultline_engine::handler_types! {
    /// A handler error: any error converts into it with `?` or `.into()`, and
    /// it converts into `poem::Error`, so a handler returns
    /// `Result<T, faultline_poem::Error>` or `poem::Result<T>`. The middleware
    /// records it on the span and answers RFC 9457 problem+json with the error's
    /// code (found on the error or its source chain; 500 and code 5000 without
    /// one), the masked detail and the trace id.
    pub struct Error;
    /// The request's trace, as an extractor: trace id, span id, baggage and the
    /// OpenTelemetry context (to carry into spawned tasks), through
    /// [`HandlerTrace`]'s methods. Without the middleware, everything is
    /// `None`. (On a traced route the same [`RequestContext`] is in the
    /// request's data: `poem::web::Data<&RequestContext>`; an excluded
    /// route's request carries nothing in its data.)
    pub struct RequestTrace;
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        // Without the middleware, a safe body: the code and its title only.
        poem_response(self.0.fallback_response())
    }
}

impl From<Error> for poem::Error {
    fn from(error: Error) -> Self {
        // Built from a response, the poem error's `Display` is its status
        // alone: a logging middleware in between sees nothing unmasked.
        let handler_error = error.0.clone();
        let mut out = poem::Error::from_response(error.into_response());
        out.set_data(handler_error);
        out
    }
}

impl<'a> FromRequest<'a> for RequestTrace {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        // Running inside the router, tell the middleware the route (the
        // span keeps it even if the handler then panics).
        record_route(req.data::<PathPattern>());
        // Not in the data on an excluded route: the context the middleware
        // made current around the endpoint.
        let context = req
            .data::<RequestContext>()
            .cloned()
            .or_else(RequestContext::current);
        Ok(RequestTrace(HandlerTrace::new(context)))
    }
}

#[cfg(test)]
mod tests;
