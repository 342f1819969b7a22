//! The adapter core: what every HTTP adapter does around a request, once,
//! over `http` types (in the style of tower-http), so that an adapter is
//! only its framework's glue.
//!
//! # How an adapter uses it
//!
//! 1. A metrics scrape is answered first, untraced: [`scrape`].
//! 2. [`Exchange::start`] with the request's [`RequestInfo`] (method, URI,
//!    headers, the route template when the router already knows it, the
//!    peer address). On an [excluded route](crate::config::TracingConfig::excluded_routes)
//!    the exchange has no span: the incoming context is only made current.
//!    An adapter that asks [`Engine::excludes`] first takes the cheaper
//!    [`Excluded`] path instead: nothing of the request is converted or
//!    recorded, and only an error or a panic comes to an [`Exchange`].
//! 3. The handler runs inside [`Exchange::instrument`], which makes the
//!    request's context current and catches a panic. Handlers read the
//!    request's trace through [`RequestContext::current`] (or the
//!    [`Exchange::context`] an adapter puts in the request's data), wrapped
//!    in the adapter's `RequestTrace` extractor ([`HandlerTrace`]).
//! 4. A route learnt after the handler ran: [`Exchange::set_route`]. A
//!    framework error the adapter recognizes (an unreadable JSON body, ...)
//!    goes on the response as a [`FrameworkRejection`] extension; a handler's
//!    error travels as a [`HandlerError`] extension (the adapter's `Error`
//!    type puts it there: [`HandlerError::fallback_response`]).
//! 5. The outcome (the response, or the [`CaughtPanic`]) goes to
//!    [`Exchange::respond`], which records the error or panic, writes RFC 9457
//!    problem details (handler errors, panics, the framework's own plain-text
//!    error responses, keeping their other headers), adds `traceresponse`, and
//!    returns the response with its body wrapped in a [`TracedBody`]: the
//!    span and the request's duration end when the body ends. An adapter
//!    that cannot box a future on every request calls the steps itself:
//!    [`Exchange::answer`], then [`Exchange::rewrite`] only when
//!    [`Exchange::rewrites`] says so, then [`Exchange::finish`].
//! 6. The adapter turns the `http::Response<TracedBody<B>>` into its
//!    framework's response (`TracedBody` is an `http_body::Body`;
//!    [`TracedBody::into_framework`] gives the framework's own body back
//!    when no span waits on it, so that nothing is boxed on the usual path).
//!
//! A framework on other types than `http` 1's (actix-web 4 has its own)
//! converts the method, hands [`RequestInfo::from_parts`] its URI's parts
//! and its headers as they are ([`HeaderPairs`]), converts the URI only
//! for an answer that needs it ([`Exchange::set_uri`]), and maps the
//! response both ways ([`copy_headers`], [`Exchange::finish_head`],
//! [`Exchange::finish_foreign`], [`Excluded::into_foreign_exchange`]);
//! everything else is the same. Its `Error` and
//! `RequestTrace` types come from [`handler_types!`](crate::handler_types).
//!
//! What adapters share besides: their two middleware types
//! ([`middleware_types!`](crate::middleware_types), and
//! [`tower_layer!`](crate::tower_layer) for a tower layer), the route of
//! the last path or pattern seen ([`LastSeen`]), a framework's chunk stream
//! as an `http_body::Body` ([`ChunkBody`]), actix-router's and poem's route
//! syntaxes in the `{param}` form ([`braced_route`], [`colon_route`]), one
//! request's whole future without a box ([`Answering`], for a server that
//! takes any future, or a framework that moves its handlers' futures; how
//! it reads the framework's responses: [`Rules`], [`HttpRules`]), and,
//! for an adapter that serves connections itself, the connection's peer
//! address lent while it is polled ([`WithPeer`], [`current_peer`]) and
//! what a failed accept does ([`accept_error`]).
//!
//! ```no_run
//! use bytes::Bytes;
//! use faultline_engine::Engine;
//! use faultline_engine::request::RequestInfo;
//! use faultline_engine::request::adapter::{self, Exchange, TracedBody};
//!
//! /// A whole adapter for a "framework" whose handlers are async functions
//! /// from `http::Request<B>` to `http::Response<B>`.
//! async fn serve<B, F>(
//!     engine: &Engine,
//!     request: http::Request<B>,
//!     handler: impl FnOnce(http::Request<B>) -> F,
//! ) -> http::Response<TracedBody<B>>
//! where
//!     B: http_body::Body<Data = Bytes> + From<String>,
//!     F: Future<Output = http::Response<B>>,
//! {
//!     if let Some(metrics) = adapter::scrape(engine, request.method(), request.uri().path(), request.headers()) {
//!         return metrics.map(|text| TracedBody::new(B::from(text)));
//!     }
//!     let info = RequestInfo::new(request.method(), request.uri(), request.version(), request.headers());
//!     let exchange = Exchange::start(engine, &info, request.uri().clone());
//!     let handled = exchange.instrument(handler(request)).await;
//!     exchange.respond(handled, true).await
//! }
//! ```
//!
//! # What ends the span
//!
//! The span ends when the response body ends (the last frame is handed to
//! the server, or the body ends empty), with `http.response.body.size` = the
//! body bytes sent: server-sent events, chunked downloads and long bodies
//! are timed to their end. A body of known length up to [`SMALL_BODY`]
//! (16 KiB: a usual JSON or text answer, already in memory) goes out whole
//! as the server takes it: its span ends there, at no cost of a wrapper,
//! and without `http.response.body.size` (an opt-in attribute of the
//! conventions; the response's `Content-Length` says it, and recording it on
//! every request costs about 2.5% of a traced `GET /hello`). A body dropped before its end (the client went
//! away mid-body) ends the span with `error.type` =
//! [`CLIENT_DISCONNECTED`]; a body that fails, [`BODY_FAILED`]. A response
//! without a body to send ends the span at once: a `HEAD` request, `204`,
//! `304`, and `101 Switching Protocols` (a WebSocket upgrade: the span
//! covers the handshake, not the connection that follows).

use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll, ready};

use bytes::Bytes;
use http::response::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::Context;

use super::{HandlerError, RequestContext, RequestInfo, RequestSpan, TRACERESPONSE};
/// Plumbing the adapters share with the server side, reached from here.
pub use super::{method_name, rejection_code};

/// A request's whole future, unboxed, for an adapter whose server takes any future.
mod answering;
use crate::Engine;
use crate::carrier::Carrier;
use crate::error::{PROBLEM_JSON, ProblemDetails};
use crate::panic::{CatchPanic, CaughtPanic};
use crate::propagation::w3c::TraceParent;
pub use answering::{Answering, Call, Deferred, HttpRules, Rules};

#[cfg(doc)]
use super::HandlerTrace;

/// The `error.type` of a span whose response body was dropped before its
/// end: the client went away (or the server dropped the connection).
pub const CLIENT_DISCONNECTED: &str = "client_disconnected";

/// The `error.type` of a span whose response body failed while sent.
pub const BODY_FAILED: &str = "response_body_failed";

/// The largest body of known length that ends the span as the server takes
/// it (its bytes go out in one write), without a wrapper to wait for its end.
pub const SMALL_BODY: u64 = 16 * 1024;

/// The largest framework error body read to become a problem's detail.
const MAX_REJECTION_BODY: usize = 4096;

/// The answer to a metrics scrape: when `method` is `GET` (or `HEAD`) and
/// `path` is the engine's [metrics path](Engine::metrics_path), the
/// rendering for the request's `Accept` header (with its content type);
/// otherwise `None` and the request goes on as any other. A scrape is not
/// traced.
pub fn scrape(
    engine: &Engine,
    method: &Method,
    path: &str,
    headers: &dyn Carrier,
) -> Option<http::Response<String>> {
    if (method != Method::GET && method != Method::HEAD) || engine.metrics_path()? != path {
        return None;
    }
    let accept = headers.header(&header::ACCEPT);
    let (content_type, body) = match engine.render_metrics(accept) {
        Some(metrics) => (metrics.content_type, metrics.body),
        None => ("text/plain; charset=utf-8", String::new()),
    };
    let mut response = http::Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    Some(response)
}

/// `problem` as a response: its status, `application/problem+json`, the
/// JSON body.
pub fn problem_response(problem: &ProblemDetails) -> http::Response<String> {
    let mut response = http::Response::new(problem.to_json());
    *response.status_mut() = problem.status_code();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

impl HandlerError {
    /// The response of a handler's error (an adapter's `Error` type answers
    /// with it): safe problem details (the code and its title, no message)
    /// for when no faultline layer is there, with the error itself in the
    /// extensions, where [`Exchange::answer`] finds it, records it and
    /// writes the real problem details.
    pub fn fallback_response(self) -> http::Response<String> {
        let mut response = problem_response(&self.fallback_problem());
        *response.status_mut() = self.status();
        response.extensions_mut().insert(self);
        response
    }
}

/// A framework's own error that an adapter recognized (an unreadable JSON
/// body, ...), with its status and client-facing detail, worded alike on
/// every framework. An adapter puts it in the response's extensions;
/// [`Exchange::answer`] turns the response into problem details with it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FrameworkRejection {
    /// The response status.
    pub status: StatusCode,
    /// The detail (masked before it is sent); empty: the code's title.
    pub detail: String,
}

impl FrameworkRejection {
    /// A rejection with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        FrameworkRejection {
            status,
            detail: detail.into(),
        }
    }
}

/// `route` (a route template) as a shared string made once per route, for
/// adapters that keep the route of a request beyond the framework's own
/// data; a copy when the route is longer than 128 bytes or after 1,024
/// different routes.
pub fn shared_route(route: &str) -> Cow<'static, str> {
    match super::names::shared_route(route) {
        Some(route) => Cow::Borrowed(route),
        None => Cow::Owned(route.to_owned()),
    }
}

/// One request through an adapter, from its start to its response (see the
/// [module](self) for the steps).
#[derive(Debug)]
pub struct Exchange {
    span: RequestSpan,
    uri: Uri,
    matched: bool,
}

impl Exchange {
    /// Starts the request: its span (none on an excluded route), named by
    /// `info.route` when the router already knows it. `uri` is the request's
    /// as the client sent it (its path is each problem's `instance`).
    pub fn start(engine: &Engine, info: &RequestInfo<'_>, uri: Uri) -> Exchange {
        Exchange {
            span: engine.start_request(info),
            uri,
            matched: info.route.is_some(),
        }
    }

    /// Sets the request's URI after [`start`](Self::start), for an adapter
    /// that converts its framework's URI to build the [`RequestInfo`]: the
    /// converted one moves in once the info is done with, instead of a
    /// clone of it.
    pub fn set_uri(&mut self, uri: Uri) {
        self.uri = uri;
    }

    /// Whether [`finish`](Self::finish) reads the response's headers (some
    /// are configured to be recorded on the span): an adapter that converts
    /// its framework's headers for it skips that when not, and hands
    /// [`finish`](Self::finish) an empty map.
    pub fn reads_response_headers(&self) -> bool {
        !self.span.is_excluded()
            && !self
                .span
                .engine
                .config()
                .capture_response_headers()
                .is_empty()
    }

    /// The request's span.
    pub fn span(&self) -> &RequestSpan {
        &self.span
    }

    /// The request's context, for an adapter that hands it to handlers
    /// through the request's data.
    pub fn context(&self) -> RequestContext {
        RequestContext::of(&self.span)
    }

    /// Runs `handler` with the request's context current, catching a panic.
    pub fn instrument<F: Future>(&self, handler: F) -> CatchPanic<F> {
        self.span.instrument(handler)
    }

    /// Sets the route template once the router has matched it: renames
    /// the span, and a 404 is then the handler's "no such thing" rather
    /// than "no such route".
    pub fn set_route(&mut self, route: &str) {
        self.span.set_route(route);
        self.matched = true;
    }

    /// Steps 1 to 3 of the response: [`answer`](Self::answer), then
    /// [`rewrite`](Self::rewrite) if it [`rewrites`](Self::rewrites) (reading
    /// the framework's text when `read_text`), then [`finish`](Self::finish).
    pub async fn respond<B>(
        mut self,
        handled: Result<http::Response<B>, CaughtPanic>,
        read_text: bool,
    ) -> http::Response<TracedBody<B>>
    where
        B: Body<Data = Bytes>,
    {
        let response = self.answer(handled);
        if !Self::rewrites(&response) {
            return self.finish(response);
        }
        // Boxed: only a framework error response takes this step, and the
        // future of every other request stays small (it is moved several
        // times on its way to the server).
        Box::pin(async move {
            let response = self.rewrite(response, read_text).await;
            self.finish(response)
        })
        .await
    }

    /// Step 1: a panic becomes a 500 problem (nothing of its text in it);
    /// a [`HandlerError`] in the response's extensions is recorded and becomes
    /// its problem details; a [`FrameworkRejection`] becomes its problem
    /// details, keeping the response's other headers. Any other response
    /// passes through. The extensions are kept (less those two).
    pub fn answer<B>(
        &mut self,
        handled: Result<http::Response<B>, CaughtPanic>,
    ) -> http::Response<TracedBody<B>> {
        let response = match handled {
            Ok(response) => response,
            Err(panic) => {
                self.span.record_panic(&panic);
                let problem = self.span.problem_for_panic(self.uri.path());
                return problem_response(&problem).map(TracedBody::text);
            }
        };
        let (mut parts, body) = response.into_parts();
        if let Some(error) = parts.extensions.remove::<HandlerError>() {
            self.span.record_error(&error);
            let problem = self.span.problem_for_error(&error, self.uri.path());
            parts.headers.clear();
            return with_problem(parts, &problem);
        }
        if let Some(rejection) = parts.extensions.remove::<FrameworkRejection>() {
            let problem = self.span.rejection_problem(
                rejection.status,
                &rejection.detail,
                self.matched,
                self.uri.path(),
            );
            return with_problem(parts, &problem);
        }
        http::Response::from_parts(parts, TracedBody::new(body))
    }

    /// Whether `response` is a framework's own error response that
    /// [`rewrite`](Self::rewrite) turns into problem details: a 4xx or 5xx,
    /// plain text or without content type (an application's own JSON or
    /// HTML error body is kept as it is).
    pub fn rewrites<B>(response: &http::Response<B>) -> bool {
        let status = response.status();
        (status.is_client_error() || status.is_server_error())
            && response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .is_none_or(|c| c.is_empty() || c.starts_with("text/plain"))
    }

    /// Step 2: a framework's own error response (no route, wrong method,
    /// unreadable body, an empty 5xx) becomes problem details, the same on
    /// every adapter ([`RequestSpan::rejection_problem`]): its text as the
    /// detail when `read_text` (an adapter passes `false` where the
    /// framework's text could name internals), its status and its other
    /// headers (`Allow` on a 405, ...) kept. Other responses pass through.
    pub async fn rewrite<B>(
        &self,
        response: http::Response<TracedBody<B>>,
        read_text: bool,
    ) -> http::Response<TracedBody<B>>
    where
        B: Body<Data = Bytes>,
    {
        if !Self::rewrites(&response) {
            return response;
        }
        let (parts, body) = response.into_parts();
        let text = match read_text {
            true => read_limited(body, MAX_REJECTION_BODY).await,
            false => String::new(),
        };
        let problem =
            self.span
                .rejection_problem(parts.status, &text, self.matched, self.uri.path());
        with_problem(parts, &problem)
    }

    /// Step 3: records the response on the span, adds `traceresponse`, and
    /// hands the span to the body, which ends it when it ends (at once for
    /// a response with nothing to send; see the [module](self)). On an
    /// excluded route the response is left as it is.
    pub fn finish<B: Body>(
        self,
        mut response: http::Response<TracedBody<B>>,
    ) -> http::Response<TracedBody<B>> {
        let mut span = self.span;
        if span.is_excluded() {
            return response;
        }
        let status = response.status();
        if let Some(value) = span.record_response(status, response.headers()) {
            response.headers_mut().insert(TRACERESPONSE, value);
        }
        let nothing_to_send =
            *span.method() == Method::HEAD || matches!(status.as_u16(), 101 | 204 | 304);
        let body = response.body_mut();
        if nothing_to_send || body.inner.goes_out_whole() {
            span.end(None, None);
        } else {
            body.end = Some(Box::new(BodyEnd {
                span: Some(span),
                sent: 0,
            }));
        }
        response
    }

    /// [`finish`](Self::finish) for an adapter whose framework keeps the
    /// response's head itself (actix-web): the response's `status` and
    /// `headers` (an empty map when
    /// [`reads_response_headers`](Self::reads_response_headers) says they are
    /// not read) are recorded, and the `traceresponse` comes back as the ids
    /// it carries, for the adapter to write as its framework's own header
    /// value ([`TraceParent::write`]), with the body that ends the span; no
    /// response is built around them.
    pub fn finish_head<B: Body>(
        self,
        status: StatusCode,
        headers: &HeaderMap,
        mut body: TracedBody<B>,
    ) -> (Option<TraceParent>, TracedBody<B>) {
        let mut span = self.span;
        if span.is_excluded() {
            return (None, body);
        }
        let value = span.record_response_ids(status, headers);
        // As `finish` does it (written there in place: a call would copy
        // the span on every request of the other adapters).
        let nothing_to_send =
            *span.method() == Method::HEAD || matches!(status.as_u16(), 101 | 204 | 304);
        if nothing_to_send || body.inner.goes_out_whole() {
            span.end(None, None);
        } else {
            body.end = Some(Box::new(BodyEnd {
                span: Some(span),
                sent: 0,
            }));
        }
        (value, body)
    }
}

/// What an adapter learns from inside the framework while a request's
/// future is polled: the route its router matched, whether the user's code
/// replied (rather than the framework rejected). Kept with the request's
/// future ([`Noted`]) and lent to the thread that polls it, so that nothing
/// is allocated or inserted into the request for it; code inside reaches
/// it through [`with_notes`].
#[derive(Debug, Default, Clone)]
#[non_exhaustive]
pub struct Notes {
    /// The route template, once known (the last one written wins).
    pub route: Option<Cow<'static, str>>,
    /// Whether the user's code replied.
    pub replied: bool,
}

thread_local! {
    /// The notes of the request whose future is being polled on this thread.
    static NOTES: std::cell::Cell<Option<Notes>> = const { std::cell::Cell::new(None) };
}

/// Calls `f` with the [`Notes`] of the request whose [`Noted`] future is
/// being polled on this thread: `None` elsewhere (no faultline layer, an
/// excluded route, a spawned task).
pub fn with_notes<T>(f: impl FnOnce(Option<&mut Notes>) -> T) -> T {
    NOTES.with(|current| {
        let mut notes = current.take();
        let out = f(notes.as_mut());
        current.set(notes);
        out
    })
}

/// Sets the route template in the [`Notes`] of the request whose [`Noted`]
/// future is being polled on this thread; nothing elsewhere (see
/// [`with_notes`]).
#[expect(
    clippy::ptr_arg,
    reason = "cloned only into notes that are there: a shared route costs nothing"
)]
pub fn note_route(route: &Cow<'static, str>) {
    with_notes(|notes| {
        if let Some(notes) = notes {
            notes.route = Some(Cow::clone(route));
        }
    });
}

pin_project_lite::pin_project! {
    /// A request's future with its [`Notes`] lent to the polling thread
    /// ([`with_notes`]) while it is polled; ready with the future's output
    /// and the notes.
    pub struct Noted<F> {
        #[pin]
        inner: F,
        notes: Option<Notes>,
    }
}

impl<F> Noted<F> {
    /// `inner` with `notes` to begin with.
    pub fn new(inner: F, notes: Notes) -> Self {
        Noted {
            inner,
            notes: Some(notes),
        }
    }
}

impl<F> std::fmt::Debug for Noted<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Noted")
            .field("notes", &self.notes)
            .finish_non_exhaustive()
    }
}

/// Puts the notes back from the thread (and the ones they replaced) when
/// a poll ends, a panic included.
struct Lent<'a> {
    slot: &'a mut Option<Notes>,
    outer: Option<Notes>,
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        *self.slot = NOTES.with(|current| current.replace(self.outer.take()));
    }
}

impl<F: Future> Future for Noted<F> {
    type Output = (F::Output, Notes);

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let polled = {
            let outer = NOTES.with(|current| current.replace(this.notes.take()));
            let _lent = Lent {
                slot: this.notes,
                outer,
            };
            this.inner.poll(cx)
        };
        match polled {
            Poll::Ready(out) => Poll::Ready((out, this.notes.take().unwrap_or_default())),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A request on an excluded route, found by the adapter before anything
/// else ([`Engine::excludes`] on its path): no span, no exchange, only the
/// incoming context, made current around the handler
/// ([`instrument`](Self::instrument)), so that outgoing calls carry the
/// caller's trace. A response that [`passes`](Self::passes) goes back as it
/// is; any other (an error, a panic) is answered as on a traced route,
/// without a trace id, by the [`Exchange`] of
/// [`into_exchange`](Self::into_exchange).
#[derive(Debug)]
pub struct Excluded {
    cx: Context,
}

impl Excluded {
    /// Starts the request: extracts its incoming context from `headers`
    /// (any [`Carrier`]; `client`, the peer's address, for the trusted-peer
    /// rules).
    pub fn start(engine: &Engine, headers: &dyn Carrier, client: Option<IpAddr>) -> Excluded {
        Excluded {
            cx: engine.extract_from(headers, client).0,
        }
    }

    /// Runs `handler` with the incoming context current (also as
    /// [`RequestContext::current`]), catching a panic.
    pub fn instrument<F: Future>(&self, handler: F) -> CatchPanic<F> {
        crate::panic::install_hook();
        CatchPanic::for_request(handler, self.cx.clone())
    }

    /// Whether `response` goes back as it is: not an error (its status is
    /// below 400), and without a [`HandlerError`] or [`FrameworkRejection`]
    /// to answer.
    pub fn passes<B>(response: &http::Response<B>) -> bool {
        response.status().as_u16() < 400
            && response.extensions().get::<HandlerError>().is_none()
            && response.extensions().get::<FrameworkRejection>().is_none()
    }

    /// The exchange that answers an error or a panic: `method` and `uri` the
    /// request's; `matched`, whether a route matched (a 404 is then the
    /// handler's "no such thing").
    pub fn into_exchange(
        self,
        engine: &Engine,
        method: &Method,
        uri: Uri,
        matched: bool,
    ) -> Exchange {
        Exchange {
            span: RequestSpan::without_span(engine, self.cx, method.clone()),
            uri,
            matched,
        }
    }
}

/// The response of `parts` (extensions kept, headers but the content's)
/// with `problem` as its status and body.
fn with_problem<B>(mut parts: Parts, problem: &ProblemDetails) -> http::Response<TracedBody<B>> {
    parts.status = problem.status_code();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts
        .headers
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    http::Response::from_parts(parts, TracedBody::text(problem.to_json()))
}

/// The body as text, or empty when it fails or is longer than `limit`.
async fn read_limited<B: Body<Data = Bytes>>(body: B, limit: usize) -> String {
    let mut body = std::pin::pin!(body);
    let mut bytes = Vec::new();
    while let Some(frame) = std::future::poll_fn(|cx| body.as_mut().poll_frame(cx)).await {
        let Ok(frame) = frame else {
            return String::new();
        };
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > limit {
                return String::new();
            }
            bytes.extend_from_slice(&data);
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

pin_project_lite::pin_project! {
    /// A response body that ends the request's span when it ends: the
    /// framework's own body, or a problem's text. Made by [`Exchange`];
    /// [`TracedBody::new`] wraps a body that no span waits on (a scrape).
    pub struct TracedBody<B> {
        #[pin]
        inner: Inner<B>,
        // Boxed: only a body that streams carries one, and the wrapper
        // stays small for those that do not.
        end: Option<Box<BodyEnd>>,
    }
}

pin_project_lite::pin_project! {
    #[project = InnerProj]
    enum Inner<B> {
        Framework { #[pin] body: B },
        Text { text: Option<Bytes> },
    }
}

impl<B> std::fmt::Debug for TracedBody<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TracedBody")
            .field("traced", &self.end.is_some())
            .finish_non_exhaustive()
    }
}

impl<B> TracedBody<B> {
    /// `body`, with no span waiting on it.
    pub fn new(body: B) -> Self {
        TracedBody {
            inner: Inner::Framework { body },
            end: None,
        }
    }

    /// The framework's own body, when no span waits on it (it went out whole,
    /// or the route is excluded): an adapter hands it on as it is, without
    /// boxing the wrapper. Otherwise the wrapper itself.
    pub fn into_framework(self) -> Result<B, Self> {
        match self {
            TracedBody {
                inner: Inner::Framework { body },
                end: None,
            } => Ok(body),
            traced => Err(traced),
        }
    }

    /// The framework's own body by reference, when no span waits on it
    /// (as [`into_framework`](Self::into_framework)): an adapter reads what
    /// its framework knows of it (its own size, say).
    pub fn framework(&self) -> Option<&B> {
        match self {
            TracedBody {
                inner: Inner::Framework { body },
                end: None,
            } => Some(body),
            _ => None,
        }
    }

    /// [`framework`](Self::framework), mutably: an adapter polls the
    /// framework's own body through its own trait, without the wrapper.
    pub fn framework_mut(&mut self) -> Option<&mut B> {
        match self {
            TracedBody {
                inner: Inner::Framework { body },
                end: None,
            } => Some(body),
            _ => None,
        }
    }

    fn text(text: String) -> Self {
        TracedBody {
            inner: Inner::Text {
                text: (!text.is_empty()).then(|| Bytes::from(text)),
            },
            end: None,
        }
    }
}

impl<B: Body> Inner<B> {
    fn is_end_stream(&self) -> bool {
        match self {
            Inner::Framework { body } => body.is_end_stream(),
            Inner::Text { text } => text.is_none(),
        }
    }

    /// Whether the body goes out whole as the server takes it: it is
    /// already at its end, or of an exact length up to [`SMALL_BODY`].
    fn goes_out_whole(&self) -> bool {
        match self {
            Inner::Framework { body } => {
                body.is_end_stream() || body.size_hint().exact().is_some_and(|n| n <= SMALL_BODY)
            }
            Inner::Text { .. } => true,
        }
    }
}

/// The span a body ends: at its end, or, dropped before it, as cut short.
#[derive(Debug)]
struct BodyEnd {
    span: Option<RequestSpan>,
    sent: u64,
}

impl BodyEnd {
    fn end(&mut self, cut_short: Option<&'static str>) {
        if let Some(span) = self.span.take() {
            span.end(Some(self.sent), cut_short);
        }
    }
}

impl Drop for BodyEnd {
    fn drop(&mut self) {
        self.end(Some(CLIENT_DISCONNECTED));
    }
}

impl<B: Body<Data = Bytes>> Body for TracedBody<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut TaskContext<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let polled = match this.inner.as_mut().project() {
            InnerProj::Framework { body } => ready!(body.poll_frame(cx)),
            InnerProj::Text { text } => text.take().map(|t| Ok(Frame::data(t))),
        };
        if let Some(end) = this.end {
            match &polled {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        end.sent += data.len() as u64;
                    }
                    if this.inner.is_end_stream() {
                        end.end(None);
                    }
                }
                Some(Err(_)) => end.end(Some(BODY_FAILED)),
                None => end.end(None),
            }
        }
        Poll::Ready(polled)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Framework { body } => body.size_hint(),
            Inner::Text { text } => {
                SizeHint::with_exact(text.as_ref().map_or(0, |t| t.len() as u64))
            }
        }
    }
}

impl FrameworkRejection {
    /// A JSON request body that does not fit, worded alike on every
    /// adapter: 400 when it does not parse, 422 when it parses into the
    /// wrong shape.
    pub fn json_body(error: &serde_json::Error) -> Self {
        match error.classify() {
            serde_json::error::Category::Data => FrameworkRejection::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("Failed to deserialize the JSON body into the target type: {error}"),
            ),
            _ => FrameworkRejection::new(
                StatusCode::BAD_REQUEST,
                format!("Failed to parse the request body as JSON: {error}"),
            ),
        }
    }

    /// A JSON body sent without `Content-Type: application/json` (415).
    pub fn json_content_type() -> Self {
        FrameworkRejection::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Expected request with `Content-Type: application/json`",
        )
    }
}

impl FrameworkRejection {
    /// A request body the framework could not read, from its `error`: worded
    /// as [`json_body`](Self::json_body) when its source is a JSON error,
    /// otherwise 400 with the error's text.
    pub fn body(error: &(dyn std::error::Error + 'static)) -> Self {
        let json = error
            .source()
            .and_then(|e| e.downcast_ref::<serde_json::Error>());
        match json {
            Some(e) => FrameworkRejection::json_body(e),
            None => FrameworkRejection::new(StatusCode::BAD_REQUEST, error.to_string()),
        }
    }
}

/// Declares the two types every adapter gives its handlers, with the docs
/// the adapter writes: `Error`, a handler error that any error converts
/// into (it wraps a [`HandlerError`](crate::request::HandlerError); the
/// adapter makes it a response with
/// [`HandlerError::fallback_response`](crate::request::HandlerError::fallback_response);
/// its `Display` is the code's title only, nothing unmasked),
/// and `RequestTrace`, the extractor that dereferences to a
/// [`HandlerTrace`](crate::request::HandlerTrace) (the adapter implements
/// its framework's extractor trait for it).
///
/// ```
/// faultline_engine::handler_types! {
///     /// A handler error.
///     pub struct Error;
///     /// The request's trace.
///     pub struct RequestTrace;
/// }
///
/// let error = Error::from(std::io::Error::other("disk"));
/// assert_eq!(error.0.status(), http::StatusCode::INTERNAL_SERVER_ERROR);
/// assert!(RequestTrace(Default::default()).trace_id().is_none());
/// ```
// Hidden: adapter plumbing like the rest of this module.
#[doc(hidden)]
#[macro_export]
macro_rules! handler_types {
    (
        $(#[$error_attr:meta])* pub struct Error;
        $(#[$trace_attr:meta])* pub struct RequestTrace;
    ) => {
        $(#[$error_attr])*
        #[derive(Debug, Clone)]
        pub struct Error(pub $crate::request::HandlerError);

        impl<E: ::std::error::Error + Send + Sync + 'static> From<E> for Error {
            fn from(error: E) -> Self {
                Error($crate::request::HandlerError::new(error))
            }
        }

        impl ::std::fmt::Display for Error {
            /// The code's title only: a logging middleware in between sees
            /// nothing unmasked.
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.0.fallback_problem().title)
            }
        }

        $(#[$trace_attr])*
        #[derive(Debug, Clone)]
        pub struct RequestTrace(pub $crate::request::HandlerTrace);

        impl ::std::ops::Deref for RequestTrace {
            type Target = $crate::request::HandlerTrace;
            fn deref(&self) -> &Self::Target {
                &self.0
            }
        }

        impl RequestTrace {
            /// The trace of the request whose future is being polled on
            /// this thread (the engine's `RequestContext::current`).
            #[allow(dead_code)]
            fn current() -> Self {
                RequestTrace($crate::request::HandlerTrace::new(
                    $crate::request::RequestContext::current(),
                ))
            }
        }
    };
}

/// Declares an adapter's tower layer and the service it wraps around the
/// inner service, with the docs the adapter writes: the layer holds the
/// engine and is made with `new(engine)`; its `tower::Layer` impl gives the
/// service `{ inner, engine }`, for which the adapter implements
/// `tower::Service` (the request path). The adapter's crate depends on
/// `tower`.
// Hidden: adapter plumbing like the rest of this module.
#[doc(hidden)]
#[macro_export]
macro_rules! tower_layer {
    (
        $(#[$layer_attr:meta])* pub struct $layer:ident;
        $(#[$service_attr:meta])* pub struct $service:ident;
    ) => {
        $crate::middleware_types! {
            $(#[$layer_attr])* pub struct $layer;
            $(#[$service_attr])* pub struct $service;
        }

        impl<S> ::tower::Layer<S> for $layer {
            type Service = $service<S>;

            fn layer(&self, inner: S) -> Self::Service {
                self.wrap(inner)
            }
        }
    };
}

mod middleware;

// Header maps and URIs of other types (a framework on `http` 0.2): read
// in place, or copied at the edge.
mod foreign;
pub use foreign::{HeaderPairs, copy_headers, http_response, method_of, status};

// The value made for the key seen last (an adapter's route of a path).
mod last;
pub use last::LastSeen;

// Route patterns of a router's own syntax in the `{param}` form.
mod route;
pub use route::{braced_route, colon_route};

// Bodies that yield data chunks rather than frames (actix-web's).
mod chunks;
pub use chunks::{ChunkBody, Chunks};

// For an adapter that serves connections itself: the peer address of the
// connection being served, lent while polled; failed accepts.
mod serve;
pub use serve::{WithPeer, accept_error, current_peer};

#[cfg(test)]
mod tests;
